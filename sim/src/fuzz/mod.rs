//! `syncsim fuzz`: swarm testing. Each run draws a scenario from its seed ([`gen`]), runs it,
//! and checks the invariants ([`Invariant`]); a failing scenario is shrunk ([`shrink`]) and
//! written as a minimal scenario file that `syncsim run` reproduces.
//!
//! Wall time only bounds the campaign (`--time`) and measures its speed; it never reaches a
//! run, so one seed always means one scenario and one trace.

pub mod gen;
pub mod shrink;

use crate::cli::{EXIT_FAILED, EXIT_OK, EXIT_USAGE};
use crate::report::Report;
use crate::runner::{run, RunOptions};
use crate::scenario::Scenario;
use std::collections::BTreeMap;
use std::fmt;
use std::io::Write;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::Instant;
use syncsim_node::sync::PlantedBug;

/// Runs allowed for shrinking one failure.
pub const SHRINK_BUDGET: u32 = 200;

/// Arguments of `syncsim fuzz`.
#[derive(clap::Args, Debug, Clone)]
pub struct FuzzArgs {
    /// How many seeds to draw: S, S+1, ..., S+N-1 (with --shard, only this shard's share runs).
    #[arg(long, default_value_t = 100)]
    pub runs: u64,
    /// The first seed S; run i uses seed S+i, which names its scenario and its run.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Stop the campaign after this much wall time, e.g. "90s" or "10m" (it never changes a run).
    #[arg(long, value_name = "DURATION", value_parser = parse_time)]
    pub time: Option<std::time::Duration>,
    /// Run only the seeds with seed % N == I, so a campaign spreads over machines.
    #[arg(long, value_name = "I/N", value_parser = parse_shard)]
    pub shard: Option<Shard>,
    /// Directory for the minimal failing scenarios (fail-SEED-INVARIANT.toml).
    #[arg(long, value_name = "DIR", default_value = "fuzz-failures")]
    pub out: PathBuf,
    /// Draw variations of this scenario (rates, counts, sizes) instead of random scenarios.
    #[arg(long, value_name = "SCENARIO.toml")]
    pub base: Option<PathBuf>,
    /// Test-only: plant a known bug in the node (storage-no-retry, requested-never-reset,
    /// skip-final-check, known-block-fatal, retry-loses-root).
    #[arg(long, hide = true, value_name = "BUG", value_parser = parse_plant)]
    pub plant: Option<PlantedBug>,
    /// Run this one scenario file with the fuzz invariants (and --plant), to reproduce a failure.
    #[arg(long, hide = true, value_name = "SCENARIO.toml")]
    pub replay: Option<PathBuf>,
    /// Stop the campaign after this many failures (each is shrunk, which takes a while).
    #[arg(long, value_name = "N")]
    pub max_failures: Option<usize>,
    /// Print a line per run (seed, verdict, virtual and wall time).
    #[arg(long, short)]
    pub verbose: bool,
}

/// `--shard I/N`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// I: this shard.
    pub index: u64,
    /// N: shards in all (> I).
    pub count: u64,
}

impl Shard {
    /// Whether `seed` belongs to this shard.
    pub fn owns(&self, seed: u64) -> bool {
        seed % self.count == self.index
    }
}

fn parse_shard(s: &str) -> Result<Shard, String> {
    let (i, n) = s.split_once('/').ok_or_else(|| format!("expected I/N such as 0/4, got {s:?}"))?;
    let index: u64 = i.trim().parse().map_err(|_| format!("bad shard index {i:?}"))?;
    let count: u64 = n.trim().parse().map_err(|_| format!("bad shard count {n:?}"))?;
    if count == 0 || index >= count {
        return Err(format!("shard {s}: need 0 <= I < N"));
    }
    Ok(Shard { index, count })
}

fn parse_time(s: &str) -> Result<std::time::Duration, String> {
    let d: crate::units::Duration = s.parse().map_err(|e| format!("{e}"))?;
    if d.is_zero() {
        return Err("must be positive".into());
    }
    Ok(d.as_std())
}

/// Parses a planted bug's name (`--plant`).
pub fn parse_plant(s: &str) -> Result<PlantedBug, String> {
    PlantedBug::from_name(s).ok_or_else(|| {
        let names: Vec<&str> = PlantedBug::ALL.iter().map(|b| b.name()).collect();
        format!("unknown planted bug {s:?} (expected one of: {})", names.join(", "))
    })
}

/// The properties every fuzzed run must have. Each failure is labelled with one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Invariant {
    /// The run did not panic.
    NoPanic,
    /// The run could start (a runtime, a genesis file).
    RunError,
    /// No peer without a hostile behaviour was dropped (the report's expectation). Labelled
    /// before the others: a dropped honest peer is usually why a sync then stalls.
    NoHonestPeerDropped,
    /// The node ended by itself within the virtual-time bound: no time-limit cut-off and, when
    /// an honest peer can serve the state, no stall.
    BoundedTime,
    /// When an honest peer can serve the state, the node converged to the oracle's root with
    /// its whole trie stored.
    Converge,
    /// Once converged, the blocks after the pivot executed to the canonical head root (the
    /// report's `head_root_ok`, part of the `converge` expectation).
    HeadRootOk,
    /// Every request the node sent was within the protocol's caps (the report's
    /// `over_cap_requests` is 0).
    RequestsWithinCaps,
    /// Every snap request ended exactly one way: `sent == ok + failed + timed_out + cancelled`
    /// for account, storage, code and trie-node requests.
    TasksAccounted,
}

impl Invariant {
    /// Every invariant, in labelling priority.
    pub const ALL: [Invariant; 8] = [
        Invariant::NoPanic,
        Invariant::RunError,
        Invariant::NoHonestPeerDropped,
        Invariant::BoundedTime,
        Invariant::Converge,
        Invariant::HeadRootOk,
        Invariant::RequestsWithinCaps,
        Invariant::TasksAccounted,
    ];

    /// The label used in output and file names.
    pub fn name(self) -> &'static str {
        match self {
            Invariant::NoPanic => "no_panic",
            Invariant::RunError => "run_error",
            Invariant::BoundedTime => "bounded_time",
            Invariant::Converge => "converge",
            Invariant::HeadRootOk => "head_root_ok",
            Invariant::NoHonestPeerDropped => "no_honest_peer_dropped",
            Invariant::RequestsWithinCaps => "requests_within_caps",
            Invariant::TasksAccounted => "tasks_accounted",
        }
    }
}

impl Invariant {
    /// Whether a violation makes the scenario's own expectations fail, so that `syncsim run`
    /// exits 1 on the failure file (a panic aborts it instead; `head_root_ok` is only shown).
    pub fn is_expectation(self) -> bool {
        matches!(
            self,
            Invariant::NoHonestPeerDropped
                | Invariant::BoundedTime
                | Invariant::Converge
                | Invariant::HeadRootOk
        )
    }
}

impl fmt::Display for Invariant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One violated invariant, with what showed it.
#[derive(Debug, Clone)]
pub struct Violation {
    /// Which.
    pub invariant: Invariant,
    /// Details (the report's failure or expectation detail, the panic message).
    pub detail: String,
}

/// The outcome of one checked run.
#[derive(Debug, Clone)]
pub struct Verdict {
    /// Violations, in [`Invariant::ALL`] order; empty when the run is fine.
    pub violations: Vec<Violation>,
    /// The report, when the run finished.
    pub report: Option<Report>,
}

impl Verdict {
    /// Whether some invariant was violated.
    pub fn failed(&self) -> bool {
        !self.violations.is_empty()
    }

    /// The invariant a failure is labelled with (the first violated).
    pub fn label(&self) -> Option<&Violation> {
        self.violations.first()
    }

    /// Whether `inv` was violated.
    pub fn violates(&self, inv: Invariant) -> bool {
        self.violations.iter().any(|v| v.invariant == inv)
    }
}

/// Runs `sc` (with `plant`) and checks the invariants. Never panics.
pub fn check(sc: &Scenario, plant: Option<PlantedBug>) -> Verdict {
    let opts = RunOptions { planted: plant, ..RunOptions::default() };
    let report = match catch_unwind(AssertUnwindSafe(|| run(sc, &opts))) {
        Err(payload) => {
            let msg = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "panic".into());
            let v = Violation { invariant: Invariant::NoPanic, detail: msg };
            return Verdict { violations: vec![v], report: None };
        }
        Ok(Err(e)) => {
            let v = Violation { invariant: Invariant::RunError, detail: e.to_string() };
            return Verdict { violations: vec![v], report: None };
        }
        Ok(Ok(r)) => r,
    };
    Verdict { violations: judge(sc, &report), report: Some(report) }
}

/// The invariants a finished run violated.
pub fn judge(sc: &Scenario, r: &Report) -> Vec<Violation> {
    let must_converge = sc.expect.converge && gen::can_serve(sc);
    let failure = r.failure.clone().unwrap_or_default();
    let expectation = |name: &str| r.expectations.iter().find(|e| e.name == name);
    let mut out = Vec::new();
    let mut add = |invariant, detail: String| out.push(Violation { invariant, detail });

    if let Some(e) = expectation("no_honest_peer_dropped").filter(|e| !e.ok) {
        add(Invariant::NoHonestPeerDropped, format!("honest peers dropped: {}", e.detail));
    }
    let cut_off = failure.contains("virtual time limit");
    let stalled = failure.starts_with("stalled");
    let over_time = expectation("max_virtual_time").filter(|e| !e.ok);
    if cut_off || (stalled && must_converge) {
        add(Invariant::BoundedTime, failure.clone());
    } else if let Some(e) = over_time {
        add(Invariant::BoundedTime, format!("virtual time: {}", e.detail));
    }
    if must_converge && !r.converged && !(cut_off || stalled) {
        let detail = if failure.is_empty() { "not converged".to_string() } else { failure.clone() };
        add(Invariant::Converge, detail);
    }
    if must_converge && r.converged && !r.head_root_ok {
        add(
            Invariant::HeadRootOk,
            format!("state right at pivot #{}, wrong at head #{}", r.pivot_block, r.head_block),
        );
    }
    if r.over_cap_requests > 0 {
        add(
            Invariant::RequestsWithinCaps,
            format!(
                "{} request(s) over the protocol's caps, the first: {}",
                r.over_cap_requests,
                r.over_cap_first.as_deref().unwrap_or("?")
            ),
        );
    }
    let q = &r.requests;
    let books: Vec<String> = [
        ("account_range", &q.account_range),
        ("storage_ranges", &q.storage_ranges),
        ("bytecodes", &q.bytecodes),
        ("trie_nodes", &q.trie_nodes),
    ]
    .iter()
    .filter(|(_, k)| k.unaccounted() != 0)
    .map(|(n, k)| {
        format!(
            "{n}: sent {} != ok {} + failed {} + timed out {} + cancelled {}",
            k.sent, k.ok, k.failed, k.timed_out, k.cancelled
        )
    })
    .collect();
    if !books.is_empty() {
        add(Invariant::TasksAccounted, books.join("; "));
    }
    out
}

/// A campaign's settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// Seeds S..S+runs are drawn (this shard's share of them runs).
    pub runs: u64,
    /// S.
    pub seed: u64,
    /// Wall-time bound of the campaign.
    pub time: Option<std::time::Duration>,
    /// Only this shard's seeds.
    pub shard: Option<Shard>,
    /// Where failure files go.
    pub out: PathBuf,
    /// Variations of this scenario instead of random ones.
    pub base: Option<Scenario>,
    /// Planted bug (test-only).
    pub plant: Option<PlantedBug>,
    /// Stop after this many failures (library use; the CLI never stops early for failures).
    pub max_failures: Option<usize>,
    /// Runs allowed for shrinking one failure.
    pub shrink_budget: u32,
    /// Log a line per run.
    pub verbose: bool,
}

impl Config {
    /// `runs` seeds from `seed`, everything else off; failures go to `out`.
    pub fn new(runs: u64, seed: u64, out: impl Into<PathBuf>) -> Self {
        Config {
            runs,
            seed,
            time: None,
            shard: None,
            out: out.into(),
            base: None,
            plant: None,
            max_failures: None,
            shrink_budget: SHRINK_BUDGET,
            verbose: false,
        }
    }
}

/// One failure found by a campaign.
#[derive(Debug, Clone)]
pub struct Failure {
    /// The seed that drew it.
    pub seed: u64,
    /// Its label.
    pub invariant: Invariant,
    /// What showed it (of the original run).
    pub detail: String,
    /// The scenario drawn.
    pub original: Scenario,
    /// The shrunk scenario (written to `path`).
    pub shrunk: Scenario,
    /// Shrink steps accepted.
    pub shrink_steps: u32,
    /// Runs spent shrinking.
    pub shrink_runs: u32,
    /// The failure file.
    pub path: PathBuf,
    /// The command that reproduces it.
    pub reproduce: String,
}

/// What a campaign did.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    /// Runs done (shrinking runs not counted).
    pub runs: u64,
    /// Failures found.
    pub failures: Vec<Failure>,
    /// Wall time of the campaign.
    pub elapsed: std::time::Duration,
    /// Of which shrinking and writing failures.
    pub shrinking: std::time::Duration,
    /// Whether `--time` ended it early.
    pub timed_out: bool,
}

impl Summary {
    /// Failures per invariant.
    pub fn by_invariant(&self) -> BTreeMap<Invariant, usize> {
        let mut m = BTreeMap::new();
        for f in &self.failures {
            *m.entry(f.invariant).or_insert(0) += 1;
        }
        m
    }

    /// Runs per wall second, shrinking excluded.
    pub fn runs_per_sec(&self) -> f64 {
        let s = self.elapsed.saturating_sub(self.shrinking).as_secs_f64();
        if s > 0.0 {
            self.runs as f64 / s
        } else {
            0.0
        }
    }
}

/// Runs a campaign, printing a line per failure to `log`. `Err` when a failure file cannot be
/// written (or, a generator bug, a drawn scenario does not validate).
pub fn campaign(cfg: &Config, log: &mut dyn Write) -> Result<Summary, String> {
    let start = Instant::now();
    let deadline = cfg.time.map(|t| start + t);
    let mut sum = Summary::default();
    for i in 0..cfg.runs {
        let seed = cfg.seed.wrapping_add(i);
        if cfg.shard.is_some_and(|s| !s.owns(seed)) {
            continue;
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            sum.timed_out = true;
            break;
        }
        if cfg.max_failures.is_some_and(|m| sum.failures.len() >= m) {
            break;
        }
        let sc = gen::try_scenario(seed, cfg.base.as_ref())
            .map_err(|e| format!("seed {seed}: the generator made an invalid scenario: {e}"))?;
        let t0 = Instant::now();
        let verdict = check(&sc, cfg.plant);
        sum.runs += 1;
        if cfg.verbose {
            let _ = writeln!(
                log,
                "seed {seed}: {}  virtual {:.1}s  wall {} ms",
                verdict.label().map_or("ok".to_string(), |v| format!("FAIL {}", v.invariant)),
                verdict.report.as_ref().map_or(0.0, |r| r.virtual_time_ms as f64 / 1000.0),
                t0.elapsed().as_millis()
            );
        }
        let Some(label) = verdict.label() else { continue };
        let (inv, detail) = (label.invariant, label.detail.clone());
        let shrink_start = Instant::now();
        let shrunk = shrink::shrink(&sc, inv, cfg.plant, cfg.shrink_budget, deadline);
        let path = cfg.out.join(format!("fail-{seed}-{}.toml", inv.name()));
        write_failure(&path, &shrunk.scenario)?;
        let reproduce = match cfg.plant {
            None if inv.is_expectation() => format!("syncsim run {}", path.display()),
            None => format!("syncsim fuzz --replay {}", path.display()),
            Some(p) if inv.is_expectation() => format!("syncsim run {} --plant {}", path.display(), p.name()),
            Some(p) => format!("syncsim fuzz --replay {} --plant {}", path.display(), p.name()),
        };
        let _ = writeln!(
            log,
            "FAIL seed {seed}: {inv}: {}\n  shrunk in {} steps ({} runs) to {} group(s), {} peer(s): {}\n  reproduce: {reproduce}",
            one_line(&detail),
            shrunk.steps,
            shrunk.runs,
            shrunk.scenario.peers.len(),
            shrunk.scenario.peer_count(),
            path.display(),
        );
        sum.shrinking += shrink_start.elapsed();
        sum.failures.push(Failure {
            seed,
            invariant: inv,
            detail,
            original: sc,
            shrunk: shrunk.scenario,
            shrink_steps: shrunk.steps,
            shrink_runs: shrunk.runs,
            path,
            reproduce,
        });
    }
    sum.elapsed = start.elapsed();
    Ok(sum)
}

fn one_line(s: &str) -> String {
    let l = s.lines().next().unwrap_or("");
    if l.len() > 200 {
        let mut end = 200;
        while !l.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}...", &l[..end])
    } else {
        l.to_string()
    }
}

fn write_failure(path: &Path, sc: &Scenario) -> Result<(), String> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    std::fs::write(path, sc.to_toml_string_for(path))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// The summary lines: `N runs, K failures`, failures by invariant, speed.
pub fn summary_text(sum: &Summary) -> String {
    let mut s = format!("{} runs, {} failures\n", sum.runs, sum.failures.len());
    let by: Vec<String> = sum.by_invariant().iter().map(|(k, v)| format!("{k} {v}")).collect();
    s.push_str(&format!(
        "failures by invariant: {}\n",
        if by.is_empty() { "none".into() } else { by.join(", ") }
    ));
    s.push_str(&format!(
        "{:.1} runs/s ({:.1} s wall, {:.1} s of it shrinking{})\n",
        sum.runs_per_sec(),
        sum.elapsed.as_secs_f64(),
        sum.shrinking.as_secs_f64(),
        if sum.timed_out { "; stopped by --time" } else { "" }
    ));
    s
}

/// `syncsim fuzz`: exit 0 without failures, 1 with, 2 on bad arguments.
pub fn main(args: &FuzzArgs) -> i32 {
    if let Some(file) = &args.replay {
        return replay(file, args.plant);
    }
    if args.out.exists() && !args.out.is_dir() {
        eprintln!("error: --out {}: not a directory", args.out.display());
        return EXIT_USAGE;
    }
    if args.max_failures == Some(0) {
        eprintln!("error: --max-failures must be at least 1");
        return EXIT_USAGE;
    }
    let base = match &args.base {
        None => None,
        Some(p) => match Scenario::load(p) {
            Ok(s) => Some(s),
            Err(e) => {
                eprintln!("error: {e}");
                return EXIT_USAGE;
            }
        },
    };
    let cfg = Config {
        runs: args.runs,
        seed: args.seed,
        time: args.time,
        shard: args.shard,
        out: args.out.clone(),
        base,
        plant: args.plant,
        max_failures: args.max_failures,
        shrink_budget: SHRINK_BUDGET,
        verbose: args.verbose,
    };
    let last = cfg.seed.wrapping_add(cfg.runs.saturating_sub(1));
    println!(
        "fuzz: seeds {}..={last}{}{}{}",
        cfg.seed,
        cfg.shard.map_or(String::new(), |s| format!(", shard {}/{}", s.index, s.count)),
        args.base.as_ref().map_or(String::new(), |b| format!(", variations of {}", b.display())),
        cfg.plant.map_or(String::new(), |p| format!(", planted bug {}", p.name())),
    );
    let mut stdout = std::io::stdout();
    let sum = match campaign(&cfg, &mut stdout) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_USAGE;
        }
    };
    print!("{}", summary_text(&sum));
    if sum.failures.is_empty() {
        EXIT_OK
    } else {
        EXIT_FAILED
    }
}

/// `--replay FILE`: one run of a scenario file with the invariants (and the plant).
fn replay(file: &Path, plant: Option<PlantedBug>) -> i32 {
    let sc = match Scenario::load(file) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_USAGE;
        }
    };
    let v = check(&sc, plant);
    if let Some(r) = &v.report {
        print!("{}", r.summary());
    }
    for x in &v.violations {
        println!("violated {}: {}", x.invariant, one_line(&x.detail));
    }
    if v.failed() {
        EXIT_FAILED
    } else {
        EXIT_OK
    }
}
