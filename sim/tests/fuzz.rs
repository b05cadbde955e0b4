//! `syncsim fuzz`: the generator is deterministic and valid, the real code passes a small
//! campaign, every reachable planted bug is found, shrunk and reproduced, and every run either
//! converges or fails with a labelled invariant.
//!
//! Planted bugs covered: storage-no-retry, requested-never-reset, skip-final-check,
//! retry-loses-root and known-block-fatal (reachable because generated scenarios sometimes
//! follow a few blocks past the head, when announced blocks arrive again).

use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;
use std::path::PathBuf;
use std::process::Command;
use syncsim::fuzz::gen::{self, can_serve, pivot_window_blocks, MAX_VIRTUAL_TIME, MIN_PIVOT_WINDOW_SECS};
use syncsim::fuzz::{campaign, check, Config, Invariant};
use syncsim::scenario::{Behaviour, Scenario, StateSpec};
use syncsim_node::sync::PlantedBug;

fn tmp(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("fuzz").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn repo_file(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join(rel)
}

/// The generator's ranges (the brief of `syncsim fuzz`).
fn assert_in_ranges(sc: &Scenario) {
    let ctx = sc.to_toml_string();
    assert!((1..=4).contains(&sc.peers.len()), "{ctx}");
    assert!(sc.peers.iter().all(|g| (1..=4).contains(&g.count)), "{ctx}");
    assert!(
        sc.peers
            .iter()
            .any(|g| g.behaviour == [Behaviour::Honest] && g.join_at.is_none() && g.leave_at.is_none()),
        "no honest anchor group\n{ctx}"
    );
    assert!(can_serve(sc) && sc.expect.converge, "{ctx}");
    assert_eq!(sc.expect.max_virtual_time, Some(MAX_VIRTUAL_TIME), "{ctx}");
    let f = &sc.faults;
    assert!(f.drop <= 0.1 && f.duplicate <= 0.1 && f.reorder <= 0.1 && f.corrupt <= 0.02, "{ctx}");
    assert!(f.crash <= 2, "{ctx}");
    let StateSpec::Synthetic { accounts, contracts, .. } = sc.state else { panic!("genesis state\n{ctx}") };
    assert!((50..=3000).contains(&accounts) && contracts <= accounts, "{ctx}");
    let c = &sc.chain;
    assert!(c.blocks <= 80 && c.changes_per_block <= 50, "{ctx}");
    assert!((1..=12).contains(&(c.block_time.as_millis() / 1000)), "{ctx}");
    assert!((16..=128).contains(&c.state_history), "{ctx}");
    let y = &sc.sync;
    assert!(y.pivot_distance >= 4 && y.pivot_distance * 2 < c.state_history, "{ctx}");
    let window_ms = pivot_window_blocks(y.pivot_distance) * c.block_time.as_millis();
    assert!(window_ms >= MIN_PIVOT_WINDOW_SECS * 1000, "{ctx}");
    assert!((1..=16).contains(&y.concurrency), "{ctx}");
    for b in [y.account_bytes.0, y.storage_bytes.0] {
        assert!((1024..=1 << 20).contains(&b), "{ctx}");
    }
}

#[test]
fn generator_is_deterministic_valid_and_varied() {
    let mut texts = std::collections::BTreeSet::new();
    for seed in 0..300u64 {
        let a = gen::scenario(seed, None);
        let b = gen::scenario(seed, None);
        let text = a.to_toml_string();
        assert_eq!(text, b.to_toml_string(), "seed {seed} drew two scenarios");
        assert_eq!(a.seed, seed);
        let parsed =
            Scenario::parse(&text, std::path::Path::new("gen.toml")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(parsed, a, "seed {seed} does not round-trip\n{text}");
        assert_in_ranges(&a);
        texts.insert(text);
    }
    assert_eq!(texts.len(), 300, "different seeds drew the same scenario");
    // Swarm testing: across seeds every kind of feature is switched on somewhere, and off.
    let all: Vec<Scenario> = (0..300).map(|s| gen::scenario(s, None)).collect();
    let some = |f: &dyn Fn(&Scenario) -> bool| all.iter().any(f) && !all.iter().all(f);
    assert!(some(&|s| s.faults.drop > 0.0));
    assert!(some(&|s| s.faults.corrupt > 0.0));
    assert!(some(&|s| s.faults.disconnect.is_some()));
    assert!(some(&|s| s.faults.crash > 0));
    assert!(some(&|s| s.chain.reorg.is_some()));
    assert!(some(&|s| s.peers.len() == 4));
    assert!(some(&|s| s.peers.iter().any(|g| g.behaviour.len() > 1)));
    for b in Behaviour::ALL {
        assert!(all.iter().any(|s| s.peers.iter().any(|g| g.behaviour.contains(b))), "{b} never drawn");
    }
}

#[test]
fn variations_of_a_base_are_deterministic_and_valid() {
    let base = Scenario::load(&repo_file("scenarios/quickstart.toml")).expect("quickstart");
    for seed in 0..50u64 {
        let a = gen::scenario(seed, Some(&base));
        assert_eq!(a.to_toml_string(), gen::scenario(seed, Some(&base)).to_toml_string());
        let parsed = Scenario::parse(&a.to_toml_string(), std::path::Path::new("v.toml")).expect("parses");
        assert_eq!(parsed, a);
        assert!(can_serve(&a) && a.expect.converge);
        assert!(a.expect.dropped.is_none() && a.expect.max_requests.is_none());
    }
}

#[test]
fn small_campaign_on_the_real_code_finds_nothing() {
    let out = tmp("clean");
    let sum = campaign(&Config::new(20, 1, &out), &mut std::io::sink()).expect("campaign");
    let found: Vec<String> =
        sum.failures.iter().map(|f| format!("seed {} {}: {}", f.seed, f.invariant, f.detail)).collect();
    assert_eq!(sum.runs, 20);
    assert!(found.is_empty(), "failures on the real code:\n{}", found.join("\n"));
    assert!(!out.exists(), "nothing to write without failures");
}

#[test]
fn shards_split_the_seeds() {
    let mut total = 0;
    for index in 0..3 {
        let mut cfg = Config::new(7, 100, tmp("shards"));
        cfg.shard = Some(syncsim::fuzz::Shard { index, count: 3 });
        let sum = campaign(&cfg, &mut std::io::sink()).expect("campaign");
        assert_eq!(sum.runs, (100..107u64).filter(|s| s % 3 == index).count() as u64);
        total += sum.runs;
    }
    assert_eq!(total, 7);
}

/// Finds the planted bug within 200 seeds, shrinks it to at most 3 peer groups, and checks the
/// written file: it fails again with the plant, and passes without it (the plant is the cause).
fn finds_and_shrinks(bug: PlantedBug) {
    let out = tmp(bug.name());
    let mut cfg = Config::new(200, 1, &out);
    cfg.plant = Some(bug);
    cfg.max_failures = Some(1);
    let sum = campaign(&cfg, &mut std::io::sink()).expect("campaign");
    let f = sum.failures.first().unwrap_or_else(|| panic!("{} not found in {} runs", bug.name(), sum.runs));
    assert!(f.shrunk.peers.len() <= 3, "{}", f.shrunk.to_toml_string());
    assert!(f.shrunk.peer_count() <= f.original.peer_count());
    assert_eq!(f.shrunk.seed, f.seed);
    assert_eq!(f.path, out.join(format!("fail-{}-{}.toml", f.seed, f.invariant.name())));
    assert!(f.reproduce.contains(&format!("--plant {}", bug.name())), "{}", f.reproduce);

    let written = Scenario::load(&f.path).expect("the failure file parses");
    assert_eq!(written.peers, f.shrunk.peers);
    let again = check(&written, Some(bug));
    assert!(again.violates(f.invariant), "shrunk scenario no longer fails: {:?}", again.violations);
    let report = again.report.as_ref().expect("report");
    assert!(!report.passed(), "the scenario's own expectations must fail too\n{}", report.summary());
    let clean = check(&written, None);
    assert!(!clean.failed(), "fails without the plant too: {:?}", clean.violations);
    assert!(!check(&f.original, None).failed(), "seed {} fails without the plant", f.seed);
}

#[test]
fn finds_storage_no_retry() {
    finds_and_shrinks(PlantedBug::StorageNoRetry);
}

#[test]
fn finds_requested_never_reset() {
    finds_and_shrinks(PlantedBug::RequestedNeverReset);
}

#[test]
fn finds_skip_final_check() {
    finds_and_shrinks(PlantedBug::SkipFinalCheck);
}

#[test]
fn finds_known_block_fatal() {
    finds_and_shrinks(PlantedBug::KnownBlockFatal);
}

#[test]
fn finds_retry_loses_root() {
    finds_and_shrinks(PlantedBug::RetryLosesRoot);
}

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_syncsim"))
}

#[test]
fn cli_campaign_files_and_exit_codes() {
    let out = tmp("cli");
    let o = bin().args(["fuzz", "--runs", "3", "--seed", "1", "--out"]).arg(&out).output().expect("runs");
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{stdout}{}", String::from_utf8_lossy(&o.stderr));
    assert!(stdout.lines().any(|l| l == "3 runs, 0 failures"), "{stdout}");
    assert!(stdout.contains("runs/s"), "{stdout}");

    // A planted bug: exit 1, a failure file, and a command that reproduces it.
    let o = bin()
        .args([
            "fuzz",
            "--runs",
            "50",
            "--seed",
            "1",
            "--max-failures",
            "1",
            "--plant",
            "skip-final-check",
            "--out",
        ])
        .arg(&out)
        .output()
        .expect("runs");
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("converge "), "{stdout}");
    let line = stdout.lines().find(|l| l.trim_start().starts_with("reproduce: ")).expect("a reproduce line");
    let cmd: Vec<&str> = line.trim_start().trim_start_matches("reproduce: ").split(' ').collect();
    assert_eq!(&cmd[..2], ["syncsim", "run"], "{line}");
    assert_eq!(&cmd[3..], ["--plant", "skip-final-check"], "{line}");
    let file = std::path::PathBuf::from(cmd[2]);
    assert!(file.is_file(), "{stdout}");
    // `syncsim run` reproduces it, and so does the fuzz replay
    let o = bin()
        .args(["run", "--quiet"])
        .arg(&file)
        .args(["--plant", "skip-final-check"])
        .output()
        .expect("runs");
    assert_eq!(o.status.code(), Some(1), "{}", String::from_utf8_lossy(&o.stdout));
    let o =
        bin().args(["fuzz", "--plant", "skip-final-check", "--replay"]).arg(&file).output().expect("runs");
    assert_eq!(o.status.code(), Some(1), "{}", String::from_utf8_lossy(&o.stdout));
    // Without the plant the minimal scenario is fine: the plant is the bug.
    let o = bin().arg("run").arg(&file).output().expect("runs");
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stdout));

    // Bad arguments: exit 2.
    for bad in [
        vec!["fuzz", "--shard", "3/2"],
        vec!["fuzz", "--shard", "x"],
        vec!["fuzz", "--time", "soon"],
        vec!["fuzz", "--plant", "no-such-bug"],
        vec!["fuzz", "--runs", "-1"],
        vec!["fuzz", "--base", "/nonexistent/base.toml"],
        vec!["fuzz", "--max-failures", "0"],
        vec!["fuzz", "--out", "Cargo.toml"],
    ] {
        let o = bin().args(&bad).output().expect("runs");
        assert_eq!(o.status.code(), Some(2), "{bad:?}: {}", String::from_utf8_lossy(&o.stderr));
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 24,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct("proptest-regressions/fuzz.txt"))),
        ..ProptestConfig::default()
    })]

    /// Every generated run holds every invariant on the real code: it converges, reaches the
    /// head with every expectation held, and its report agrees (a run failing here is shrunk by
    /// `syncsim fuzz` over the same generator; its seed is persisted in
    /// `proptest-regressions/fuzz.txt`).
    #[test]
    fn every_generated_run_holds_every_invariant(seed in any::<u64>()) {
        let sc = gen::scenario(seed, None);
        let v = check(&sc, None);
        let r = v.report.as_ref().expect("a report");
        prop_assert!(!v.failed(), "seed {seed}: {:?}\n{}", v.violations, r.summary());
        prop_assert!(r.converged && r.head_root_ok && r.passed(), "seed {seed}: unlabelled failure\n{}", r.summary());
        for x in &v.violations {
            prop_assert!(Invariant::ALL.contains(&x.invariant) && !x.detail.is_empty());
        }
    }
}

/// Generated scenarios whose only sources of state are `starving` peers (rare: the generator
/// usually keeps an honest group; variations of a base and shrinks can get there) leave at least
/// `MIN_STARVING_PIVOT_WINDOW_SECS` between pivot moves on a churning chain, and static sizing
/// policies on churning chains keep a usable budget and concurrency.
#[test]
fn generator_keeps_churn_within_what_the_sources_can_heal() {
    for seed in 0..3000 {
        let sc = gen::scenario(seed, None);
        if sc.chain.changes_per_block == 0 {
            continue;
        }
        let sources: Vec<_> = sc.peers.iter().filter(|g| gen::serves(g)).collect();
        if !sources.is_empty() && sources.iter().all(|g| g.behaviour.contains(&Behaviour::Starving)) {
            let window_ms = pivot_window_blocks(sc.sync.pivot_distance) * sc.chain.block_time.as_millis();
            assert!(window_ms >= gen::MIN_STARVING_PIVOT_WINDOW_SECS * 1000, "seed {seed}: {window_ms} ms");
        }
        if sc.sync.request_sizing != "adaptive".parse().unwrap() {
            assert!(sc.sync.account_bytes.0 >= gen::MIN_CHURN_BUDGET, "seed {seed}");
            assert!(sc.sync.concurrency >= gen::MIN_CHURN_CONCURRENCY, "seed {seed}");
        }
    }
}
