#!/usr/bin/env bash
# Runs one coverage-guided fuzz target (libFuzzer via cargo-fuzz) on the stable toolchain.
#
#   fuzz/run.sh TARGET [SECONDS] [extra libFuzzer flags...]     # TARGET: codec | range_proof | scenario
#
# Env: CARGO_TARGET_DIR (default fuzz/target), FUZZ_SANITIZER (address | none; default address),
#      FUZZ_TIMEOUT (seconds one input may take before libFuzzer reports a hang; default 60),
#      FUZZ_JOBS (parallel fuzzing processes; default 1).
# The corpus grows in fuzz/corpus/TARGET; a failing input is written to fuzz/artifacts/TARGET/
# and can be replayed with: fuzz/run.sh TARGET 0 fuzz/artifacts/TARGET/crash-...
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
# a replay (input files given) ignores max_total_time; a fuzzing run stops after SECONDS
if [ "$secs" != 0 ]; then flags+=(-max_total_time="$secs"); fi
if [ "${FUZZ_JOBS:-1}" -gt 1 ]; then flags+=(-fork="$FUZZ_JOBS"); fi
mkdir -p "fuzz/corpus/$target"
exec cargo fuzz run --sanitizer "${FUZZ_SANITIZER:-address}" --target-dir "$target_dir" \
    "$target" -- "${flags[@]}" "$@"
