#!/usr/bin/env bash
# Runs one coverage-guided fuzz target (libFuzzer via cargo-fuzz) on the stable toolchain.
#
#   fuzz/run.sh TARGET [SECONDS] [extra libFuzzer flags...]     # TARGET: codec | range_proof | scenario
#
# Env: CARGO_TARGET_DIR (default fuzz/target), FUZZ_SANITIZER (address | none; default address),
#      FUZZ_TIMEOUT (seconds one input may take before libFuzzer reports a hang; default 60),
#      FUZZ_JOBS (parallel fuzzing processes; default 1).
# The corpus grows in fuzz/corpus/TARGET; a failing input is written to fuzz/artifacts/TARGET/
# and is replayed (SECONDS = 0) with:  fuzz/run.sh TARGET 0 fuzz/artifacts/TARGET/crash-...
# (for `scenario`, FUZZ_SHOW=1 prints the scenario TOML the input stands for).
set -euo pipefail
target=${1:?usage: fuzz/run.sh TARGET [SECONDS] [libFuzzer flags...]  (TARGET: codec, range_proof, scenario)}
secs=${2:-60}
shift $(( $# >= 2 ? 2 : 1 ))
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
# cargo-fuzz passes nightly-only -Z flags (sanitizers, coverage instrumentation);
# RUSTC_BOOTSTRAP lets the stable toolchain accept them.
export RUSTC_BOOTSTRAP=1
target_dir=${CARGO_TARGET_DIR:-$root/fuzz/target}
flags=(-timeout="${FUZZ_TIMEOUT:-60}" -print_final_stats=1)
[ -f "fuzz/dict/$target.dict" ] && flags+=(-dict="fuzz/dict/$target.dict")
# structured targets read their decisions from the input: let inputs be long from the start
# (libFuzzer otherwise grows the length limit from 4 bytes, far too slowly for a short run)
case "$target" in
    range_proof) flags+=(-max_len=2048 -len_control=0) ;;
    scenario) flags+=(-max_len=512 -len_control=0) ;;
esac
run=(cargo fuzz run --sanitizer "${FUZZ_SANITIZER:-address}" --target-dir "$target_dir" "$target")
if [ "$secs" = 0 ]; then
    # replay: the remaining arguments are input files (or corpus directories), each run once
    exec "${run[@]}" "$@" -- "${flags[@]}" -runs=0
fi
flags+=(-max_total_time="$secs")
if [ "${FUZZ_JOBS:-1}" -gt 1 ]; then flags+=(-fork="$FUZZ_JOBS"); fi
mkdir -p "fuzz/corpus/$target"
exec "${run[@]}" -- "${flags[@]}" "$@"
