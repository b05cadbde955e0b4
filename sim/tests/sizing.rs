//! Request sizing: the lower bound holds and is tight where it should be, and the adaptive
//! policy meets its efficiency bars on the sizing study scenarios.

use std::path::{Path, PathBuf};
use syncsim::runner::{initial_state, lower_bound_ms, run, RunOptions};
use syncsim::scenario::Scenario;

fn scenario(name: &str) -> Scenario {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scenarios").join(format!("{name}.toml"));
    Scenario::load(&path).unwrap_or_else(|e| panic!("{e}"))
}

fn parse(text: &str) -> Scenario {
    Scenario::parse(text, Path::new("t.toml")).unwrap_or_else(|e| panic!("{e}"))
}

const STATE: &str = "[state]\naccounts = 2000\ncontracts = 20\nstorage_slots = 4000\n[chain]\nblocks = 0\nblock_time = \"1h\"\n";

#[test]
fn lower_bound_is_header_round_trip_plus_transfer_windows() {
    let one = parse(&format!(
        "name = \"t\"\n{STATE}[[peers]]\ncount = 1\nlatency = \"50ms\"\nbandwidth = \"1MiB/s\"\n"
    ));
    let state = initial_state(&one, 0).unwrap();
    let single = lower_bound_ms(&one, &state);
    // one peer: a header round trip (100 ms), a round trip before its first reply byte, then
    // the state's bytes at 1 MiB/s
    let bytes_ms = single as f64 - 200.0;
    assert!(bytes_ms > 100.0, "{single}");
    // twice the bandwidth: the transfer halves, the round trips stay
    let two = parse(&format!(
        "name = \"t\"\n{STATE}[[peers]]\ncount = 2\nlatency = \"50ms\"\nbandwidth = \"1MiB/s\"\n"
    ));
    let double = lower_bound_ms(&two, &state);
    assert!((double as f64 - (200.0 + bytes_ms / 2.0)).abs() <= 2.0, "{single} {double}");
    // a far peer adds little before its first reply could arrive
    let far = parse(&format!(
        "name = \"t\"\n{STATE}[[peers]]\ncount = 1\nlatency = \"50ms\"\nbandwidth = \"1MiB/s\"\n\
         [[peers]]\ncount = 1\nlatency = \"10s\"\nbandwidth = \"1MiB/s\"\n"
    ));
    assert_eq!(lower_bound_ms(&far, &state), single);
    // peers that never serve state add nothing; hostile ones count (their codes and trie
    // nodes are good), as could a slow peer's tenth of its bandwidth
    let useless = parse(&format!(
        "name = \"t\"\n{STATE}[[peers]]\ncount = 1\nlatency = \"50ms\"\nbandwidth = \"1MiB/s\"\n\
         [[peers]]\ncount = 3\nbehaviour = [\"empty\"]\nlatency = \"5ms\"\n\
         [[peers]]\ncount = 3\nbehaviour = \"unresponsive\"\nlatency = \"5ms\"\n"
    ));
    assert!(lower_bound_ms(&useless, &state) <= single);
    let hostile = parse(&format!(
        "name = \"t\"\n{STATE}[[peers]]\ncount = 1\nlatency = \"50ms\"\nbandwidth = \"1MiB/s\"\n\
         [[peers]]\ncount = 1\nbehaviour = \"corrupt-proof\"\nlatency = \"50ms\"\nbandwidth = \"1MiB/s\"\n"
    ));
    assert_eq!(lower_bound_ms(&hostile, &state), double);
    // log-normal latency: as short as the network's sampler can draw, so near zero
    let lognormal = parse(&format!(
        "name = \"t\"\n{STATE}[[peers]]\ncount = 1\nlatency = {{ median = \"300ms\", p99 = \"1.5s\" }}\nbandwidth = \"1MiB/s\"\n"
    ));
    assert!(lower_bound_ms(&lognormal, &state) < single);
}

#[test]
fn lower_bound_never_exceeds_a_real_sync() {
    for name in ["one-honest-peer", "many-peers", "uneven-storage", "gapped-and-wrong"] {
        for policy in ["adaptive", "geth"] {
            let mut sc = scenario(name);
            sc.sync.request_sizing = policy.parse().unwrap();
            let r = run(&sc, &RunOptions::default()).expect("run");
            assert!(r.converged, "{}", r.summary());
            assert!(r.lower_bound_ms <= r.virtual_time_ms && r.efficiency <= 1.0, "{}", r.summary());
        }
    }
}

#[test]
fn adaptive_sizing_meets_its_bars() {
    let r = run(&scenario("sizing-homogeneous"), &RunOptions::default()).expect("run");
    assert!(r.converged, "{}", r.summary());
    assert!(r.efficiency >= 0.85, "homogeneous: {}", r.summary());

    let het = scenario("sizing-heterogeneous");
    let adaptive = run(&het, &RunOptions::default()).expect("run");
    assert!(adaptive.converged, "{}", adaptive.summary());
    assert!(adaptive.efficiency >= 0.7, "heterogeneous: {}", adaptive.summary());
    let mut geth = het.clone();
    geth.sync.request_sizing = "geth".parse().unwrap();
    let geth = run(&geth, &RunOptions::default()).expect("run");
    assert!(geth.converged, "{}", geth.summary());
    assert!(
        adaptive.virtual_time_ms * 10 <= geth.virtual_time_ms * 8,
        "adaptive {} ms vs geth {} ms",
        adaptive.virtual_time_ms,
        geth.virtual_time_ms
    );
}
