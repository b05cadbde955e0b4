//! The `syncsim` binary.

use clap::Parser;
use std::process::ExitCode;
use syncsim::cli::{self, Cli, Command, EXIT_FAILED, EXIT_OK, EXIT_USAGE};
use syncsim::runner::{run, RunOptions};
use syncsim::scenario::{parse_override, Scenario};

/// mimalloc: the simulator allocates and frees millions of small buffers (messages, nodes,
/// slots); glibc's allocator spent a fifth of a large run consolidating them.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `mi_option_purge_delay` (mimalloc.h, v3; the binding names no constant for it).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Keeps memory the run frees for its own later allocations instead of handing it back to
/// the kernel (mimalloc purges freed pages after a delay by default). A sync grows large
/// buffers by doubling and frees the old ones; purged, every reuse costs a fresh page fault
/// and a kernel page clear, which on this project's VM cost about 6% of a 1M-account sync.
/// A run is short-lived, so nothing needs returning early.
fn keep_freed_memory() {
    // SAFETY: sets a process-wide allocator option; called first thing in `main`, and mimalloc
    // allows changing it at any time.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
}

fn main() -> ExitCode {
    keep_freed_memory();
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { EXIT_USAGE } else { EXIT_OK };
            let _ = e.print();
            return ExitCode::from(code as u8);
        }
    };
    let code = match cli.command {
        Command::Sweep { scenario, set, seeds, seed, out } => {
            syncsim::sweep::main(&scenario, &set, seeds, seed, &out)
        }
        Command::Fuzz { args } => syncsim::fuzz::main(&args),
        Command::StateRoot { genesis } => cli::state_root(&genesis),
        Command::VerifyRange { case } => cli::verify_range(&case),
        Command::Run { scenarios, seed, report, trace, plot, set, quiet, plant } => {
            run_cmd(&scenarios, seed, report, trace, plot, &set, quiet, plant)
        }
    };
    ExitCode::from(code as u8)
}

#[allow(clippy::too_many_arguments)] // one per `run` option
fn run_cmd(
    files: &[std::path::PathBuf],
    seed: Option<u64>,
    report: Option<std::path::PathBuf>,
    trace: Option<std::path::PathBuf>,
    plot: Option<std::path::PathBuf>,
    set: &[String],
    quiet: bool,
    plant: Option<syncsim_node::sync::PlantedBug>,
) -> i32 {
    let mut overrides = Vec::new();
    for s in set {
        match parse_override(s) {
            Ok(kv) => overrides.push(kv),
            Err(e) => {
                eprintln!("error: --set {s}: {e}");
                return EXIT_USAGE;
            }
        }
    }
    let mut scenarios = Vec::new();
    for f in files {
        match Scenario::load_with_overrides(f, &overrides) {
            Ok(s) => scenarios.push(s),
            Err(e) => {
                eprintln!("error: {e}");
                return EXIT_USAGE;
            }
        }
    }
    let mut reports = Vec::new();
    let mut code = EXIT_OK;
    for (i, sc) in scenarios.iter().enumerate() {
        let trace_path = trace.as_ref().map(|t| cli::numbered(t, i, scenarios.len()));
        match run(
            sc,
            &RunOptions {
                seed,
                trace: trace_path,
                progress: !quiet && std::io::IsTerminal::is_terminal(&std::io::stderr()),
                planted: plant,
                timeline: plot.is_some(),
                ..Default::default()
            },
        ) {
            Ok(r) => {
                print!("{}", r.summary());
                if !r.passed() {
                    code = EXIT_FAILED;
                }
                if let Some(p) = &plot {
                    let p = cli::numbered(p, i, scenarios.len());
                    if let Err(e) = std::fs::write(&p, syncsim::plot::progress_svg(&r)) {
                        eprintln!("error: cannot write {}: {e}", p.display());
                        return EXIT_USAGE;
                    }
                }
                reports.push(r);
            }
            Err(e) => {
                eprintln!("error: {}: {e}", files[i].display());
                return EXIT_USAGE;
            }
        }
    }
    if let Some(path) = report {
        let json = if reports.len() == 1 {
            serde_json::to_string_pretty(&reports[0])
        } else {
            serde_json::to_string_pretty(&reports)
        };
        if let Err(e) =
            json.map_err(|e| e.to_string()).and_then(|j| std::fs::write(&path, j).map_err(|e| e.to_string()))
        {
            eprintln!("error: cannot write {}: {e}", path.display());
            return EXIT_USAGE;
        }
    }
    code
}
