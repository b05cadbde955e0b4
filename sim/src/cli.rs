//! Command-line interface: argument definitions and the small subcommands.

use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};
use syncsim_node::primitives::B256;

/// Exit code: success / all expectations held.
pub const EXIT_OK: i32 = 0;
/// Exit code: the run worked but a check failed.
pub const EXIT_FAILED: i32 = 1;
/// Exit code: bad input or usage.
pub const EXIT_USAGE: i32 = 2;

/// syncsim: run a real snap/1 state downloader against a deterministic simulated network.
///
/// Scenarios (TOML) describe the start state, the chain, the peers and their behaviours, the
/// network faults, the downloader settings and what to expect. Every run is reproducible from
/// its scenario and seed; its report carries a trace hash that proves it.
#[derive(Parser, Debug)]
#[command(name = "syncsim", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run scenarios and check their expectations.
    ///
    /// With several scenarios, --report writes one JSON list, while --trace and --plot write
    /// one file per scenario, numbered from 0 in command-line order before the extension:
    /// --plot p.svg gives p.0.svg, p.1.svg, ...
    ///
    /// Example: syncsim run scenarios/quickstart.toml --report out.json --set faults.drop=0.05
    Run {
        /// Scenario files.
        #[arg(required = true)]
        scenarios: Vec<PathBuf>,
        /// Seed (overrides the scenario's).
        #[arg(long)]
        seed: Option<u64>,
        /// Write the JSON report here (a list when several scenarios ran).
        #[arg(long)]
        report: Option<PathBuf>,
        /// Write every event as JSON lines here (FILE.0.jsonl, FILE.1.jsonl, ... for several
        /// scenarios).
        #[arg(long)]
        trace: Option<PathBuf>,
        /// Write an SVG plot of sync progress over virtual time: one line per phase that ran,
        /// markers for pivot moves, crashes and reorgs (FILE.0.svg, FILE.1.svg, ... for several
        /// scenarios). Recording it changes neither the trace nor the report.
        #[arg(long)]
        plot: Option<PathBuf>,
        /// Override any scenario key, e.g. --set sync.account_bytes=128KiB (repeatable).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
        /// No progress bar.
        #[arg(long)]
        quiet: bool,
        /// Test-only: plant a known bug in the node, to reproduce a `syncsim fuzz --plant`
        /// finding (storage-no-retry, requested-never-reset, skip-final-check,
        /// known-block-fatal, retry-loses-root).
        #[arg(long, hide = true, value_name = "BUG", value_parser = crate::fuzz::parse_plant)]
        plant: Option<syncsim_node::sync::PlantedBug>,
    },
    /// Swarm-test random scenarios; shrink each failure to a minimal scenario file in --out.
    ///
    /// Example: syncsim fuzz --runs 500 --seed 1 --time 10m --out fuzz-out
    Fuzz {
        #[command(flatten)]
        args: crate::fuzz::FuzzArgs,
    },
    /// Run a scenario over a grid of settings and seeds; write sweep.csv, sweep.json, sweep.svg.
    ///
    /// Example: syncsim sweep scenarios/many-peers.toml --set sync.account_bytes=64KiB,512KiB --seeds 3
    Sweep {
        /// The scenario file.
        scenario: PathBuf,
        /// A key and its values, e.g. --set sync.concurrency=4,16 (several make a product).
        #[arg(long = "set", value_name = "KEY=V1,V2,...", required = true)]
        set: Vec<String>,
        /// Seeds per setting: the base seed (the scenario's or --seed) plus 0..N.
        #[arg(long, default_value_t = 3)]
        seeds: u32,
        /// Base seed (overrides the scenario's).
        #[arg(long)]
        seed: Option<u64>,
        /// Output directory (created if missing).
        #[arg(long, default_value = "sweep-out")]
        out: PathBuf,
    },
    /// Print the state root of a genesis alloc file (geth/reth/besu style JSON).
    ///
    /// A file of named cases prints one `NAME ROOT` line per case; FILE#NAME selects one.
    StateRoot {
        /// The genesis file.
        genesis: String,
    },
    /// Verify one range proof given as JSON with go-ethereum's VerifyRangeProof semantics.
    ///
    /// Input: {"root":"0x..","first_key":"0x..","keys":["0x.."],"values":["0x.."],"proof":["0x.."]}.
    /// Prints {"valid":true,"has_more":B} (exit 0) or {"valid":false,"error":".."} (exit 1).
    VerifyRange {
        /// The case file.
        case: PathBuf,
    },
}

/// The `--trace` / `--plot` file of the `i`-th of `n` scenarios: the path as given for one
/// scenario; for several, the 0-based index goes before the extension (`out.svg` ->
/// `out.0.svg`, `out.1.svg`; `out` -> `out.0`).
pub fn numbered(p: &std::path::Path, i: usize, n: usize) -> std::path::PathBuf {
    if n <= 1 {
        return p.to_path_buf();
    }
    let stem = p.file_stem().map_or_else(|| "out".into(), |s| s.to_string_lossy());
    match p.extension() {
        Some(ext) => p.with_file_name(format!("{stem}.{i}.{}", ext.to_string_lossy())),
        None => p.with_file_name(format!("{stem}.{i}")),
    }
}

/// Parses `0x`-prefixed (or bare) hex: ASCII hex digits only, an even number of them.
fn hex_bytes(s: &str) -> Result<Vec<u8>, String> {
    let h = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")).unwrap_or(s).as_bytes();
    if !h.len().is_multiple_of(2) {
        return Err(format!("odd-length hex {s:?}"));
    }
    let digit = |c: u8| char::from(c).to_digit(16).map(|d| d as u8);
    h.chunks_exact(2)
        .map(|pair| match (digit(pair[0]), digit(pair[1])) {
            (Some(hi), Some(lo)) => Ok(hi << 4 | lo),
            _ => Err(format!("bad hex {s:?}")),
        })
        .collect()
}

/// `syncsim state-root`.
pub fn state_root(arg: &str) -> i32 {
    let (file, case) = match arg.rsplit_once('#') {
        Some((f, c)) if !Path::new(arg).exists() => (f, Some(c)),
        _ => (arg, None),
    };
    match syncsim_node::genesis::load_genesis(Path::new(file)) {
        Err(e) => {
            eprintln!("error: {e}");
            EXIT_USAGE
        }
        Ok(states) => {
            let selected: Vec<_> =
                states.iter().filter(|(name, _)| case.is_none() || name.as_deref() == case).collect();
            if selected.is_empty() {
                eprintln!("error: {file}: no case named {:?}", case.unwrap_or(""));
                return EXIT_USAGE;
            }
            for (name, state) in selected {
                match (name, case) {
                    (Some(n), None) => println!("{n} {}", state.root()),
                    _ => println!("{}", state.root()),
                }
            }
            EXIT_OK
        }
    }
}

/// `syncsim verify-range`.
pub fn verify_range(path: &Path) -> i32 {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {}: {e}", path.display());
            return EXIT_USAGE;
        }
    };
    let v: serde_json::Value = match serde_json::from_str(&text) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("error: {}:{}:{}: {e}", path.display(), e.line(), e.column());
            return EXIT_USAGE;
        }
    };
    let line_of =
        |key: &str| text.find(&format!("\"{key}\"")).map_or(1, |off| text[..off].matches('\n').count() + 1);
    const KEYS: [&str; 5] = ["root", "first_key", "keys", "values", "proof"];
    let Some(obj) = v.as_object() else {
        eprintln!("error: {}:1: expected an object with keys {}", path.display(), KEYS.join(", "));
        return EXIT_USAGE;
    };
    if let Some(extra) = obj.keys().find(|k| !KEYS.contains(&k.as_str())) {
        eprintln!(
            "error: {}:{}: unknown key '{extra}' (expected {})",
            path.display(),
            line_of(extra),
            KEYS.join(", ")
        );
        return EXIT_USAGE;
    }
    let field = |key: &str| -> Result<&serde_json::Value, String> {
        v.get(key).ok_or_else(|| format!("{}:1: missing key '{key}'", path.display()))
    };
    // the line of a value: its first occurrence after its key (the key's line if not found)
    let line_at = |key: &str, val: &serde_json::Value| {
        let base = text.find(&format!("\"{key}\"")).unwrap_or(0);
        let off = match val.as_str() {
            Some(s) => text[base..].find(&serde_json::Value::from(s).to_string()).map_or(base, |o| base + o),
            None => base,
        };
        text[..off].matches('\n').count() + 1
    };
    let hex_of = |key: &str, name: &str, val: &serde_json::Value| -> Result<Vec<u8>, String> {
        let line = line_at(key, val);
        let s = val
            .as_str()
            .ok_or_else(|| format!("{}:{line}: key '{name}': expected a hex string", path.display()))?;
        hex_bytes(s).map_err(|e| format!("{}:{line}: key '{name}': {e}", path.display()))
    };
    let list_of = |key: &str| -> Result<Vec<Vec<u8>>, String> {
        let arr = field(key)?
            .as_array()
            .ok_or_else(|| format!("{}:{}: key '{key}': expected a list", path.display(), line_of(key)))?;
        arr.iter().enumerate().map(|(i, x)| hex_of(key, &format!("{key}[{i}]"), x)).collect()
    };
    let parsed = (|| -> Result<_, String> {
        let root = hex_of("root", "root", field("root")?)?;
        let first = hex_of("first_key", "first_key", field("first_key")?)?;
        Ok((root, first, list_of("keys")?, list_of("values")?, list_of("proof")?))
    })();
    let (root, first, keys, values, proof) = match parsed {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_USAGE;
        }
    };
    let invalid = |msg: String| {
        println!("{}", serde_json::json!({"valid": false, "error": msg}));
        EXIT_FAILED
    };
    if root.len() != 32 {
        return invalid(format!("root has {} bytes, expected 32", root.len()));
    }
    if first.len() != 32 {
        return invalid(format!("first_key has {} bytes, expected 32", first.len()));
    }
    if let Some((i, k)) = keys.iter().enumerate().find(|(_, k)| k.len() != 32) {
        return invalid(format!("key {i} has {} bytes, expected 32", k.len()));
    }
    let keys: Vec<B256> = keys.iter().map(|k| B256::from_slice(k)).collect();
    match syncsim_node::trie::verify_range(
        B256::from_slice(&root),
        &B256::from_slice(&first),
        &keys,
        &values,
        &proof,
    ) {
        Ok(has_more) => {
            println!("{}", serde_json::json!({"valid": true, "has_more": has_more}));
            EXIT_OK
        }
        Err(e) => invalid(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::numbered;
    use std::path::{Path, PathBuf};

    #[test]
    fn several_scenarios_number_their_files() {
        assert_eq!(numbered(Path::new("d/p.svg"), 0, 1), PathBuf::from("d/p.svg"));
        assert_eq!(numbered(Path::new("d/p.svg"), 1, 3), PathBuf::from("d/p.1.svg"));
        assert_eq!(numbered(Path::new("t.jsonl"), 0, 2), PathBuf::from("t.0.jsonl"));
        assert_eq!(numbered(Path::new("plain"), 2, 3), PathBuf::from("plain.2"));
    }
}
