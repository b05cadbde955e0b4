//! Every scenario in `scenarios/` runs and meets its expectations (the stalled one must fail
//! in bounded virtual time).

use std::path::PathBuf;
use syncsim::runner::{run, RunOptions};
use syncsim::scenario::Scenario;

fn scenario(name: &str) -> Scenario {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scenarios").join(format!("{name}.toml"));
    Scenario::load(&path).unwrap_or_else(|e| panic!("{e}"))
}

fn passes(name: &str) -> syncsim::report::Report {
    let r = run(&scenario(name), &RunOptions::default()).expect("run");
    assert!(r.passed(), "{}", r.summary());
    assert!(r.converged, "{}", r.summary());
    r
}

#[test]
fn quickstart() {
    passes("quickstart");
}

#[test]
fn one_honest_peer() {
    passes("one-honest-peer");
}

#[test]
fn many_peers() {
    passes("many-peers");
}

#[test]
fn geth_failures() {
    passes("geth-failures");
}

#[test]
fn gapped_and_wrong() {
    passes("gapped-and-wrong");
}

#[test]
fn uneven_storage() {
    passes("uneven-storage");
}

#[test]
fn network_faults() {
    passes("network-faults");
}

#[test]
fn churn_moves_the_pivot() {
    let r = passes("churn");
    assert!(r.pivot_moves >= 3, "only {} pivot moves\n{}", r.pivot_moves, r.summary());
}

#[test]
fn crashes_resume() {
    let r = passes("crashes");
    assert_eq!(r.crashes, 2, "{}", r.summary());
}

#[test]
fn holesky_and_hoodi() {
    passes("holesky");
    passes("hoodi");
}

#[test]
fn stalled_sync_fails_in_bounded_time() {
    let r = run(&scenario("stalled"), &RunOptions::default()).expect("run");
    assert!(!r.converged);
    assert!(!r.passed());
    assert!(r.failure.as_deref().unwrap_or("").contains("stalled"), "{}", r.summary());
    assert!(r.virtual_time_ms <= 30 * 60 * 1000, "{}", r.summary());
}
