//! Every scenario in `scenarios/` runs and meets its expectations (the stalled one must fail
//! in bounded virtual time).

use std::path::PathBuf;
use syncsim::runner::{run, RunOptions};
use syncsim::scenario::Scenario;

fn scenario(name: &str) -> Scenario {
    with(name, &[])
}

/// A scenario file with `--set KEY=VALUE` overrides.
fn with(name: &str, sets: &[(&str, &str)]) -> Scenario {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scenarios").join(format!("{name}.toml"));
    let sets: Vec<(String, String)> = sets.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    Scenario::load_with_overrides(&path, &sets).unwrap_or_else(|e| panic!("{e}"))
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

/// Resuming keeps what was fetched: the state bytes downloaded with two crashes stay close to
/// those of the same run without (the persisted progress may lag the data a little, never lose
/// it wholesale).
#[test]
fn crashes_resume_without_refetching() {
    let state_bytes =
        |r: &syncsim::report::Report| r.requests.account_range.bytes_in + r.requests.storage_ranges.bytes_in;
    let crashed = passes("crashes");
    let mut clean = scenario("crashes");
    clean.faults.crash = 0;
    let clean = run(&clean, &RunOptions::default()).expect("run");
    assert!(clean.converged, "{}", clean.summary());
    assert!(
        state_bytes(&crashed) * 10 <= state_bytes(&clean) * 12,
        "refetched after crashes: {} vs {} bytes",
        state_bytes(&crashed),
        state_bytes(&clean)
    );
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

fn inline(body: &str) -> Scenario {
    Scenario::parse(body, &PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scenarios/inline.toml"))
        .unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn genesis_scenarios_report_the_published_roots() {
    for (file, root) in [
        ("mainnet.json", "0xd7f8974fb5ac78d9ac099b9ad5018bedc2ce0a72dad1827a1709da30580f0544"),
        ("sepolia-genesis.json", "0x5eb6e371a698b8d68f665192350ffcecbbbf322916f4b51bd79bb6887da3f494"),
        ("holesky-genesis.json", "0x69d8c9d72f6fa4ad42d4702b433707212f90db395eb54dc20bc85de253788783"),
        ("hoodi-genesis.json", "0xda87d7f5f91c51508791bbcbd4aa5baf04917830b86985eeb9ad3d5bfb657576"),
        // the named cases of ethereum/tests' GenesisTests (`file#case`)
        (
            "basic_genesis_tests.json#test1",
            "0xdd406a973a0a5a9826d00da276e996d28426d24f12b8fa683723e9db532b8c59",
        ),
        (
            "basic_genesis_tests.json#test2",
            "0x9178d0f23c965d81f0834a4c72c6253ce6830f4022b1359aaebfc1ecba442d4e",
        ),
        (
            "basic_genesis_tests.json#test3",
            "0x56e81f171bcc55a6ff8345e692c0f86e5b48e01b996cadc001622fb5e363b421",
        ),
    ] {
        let sc = inline(&format!(
            "name = \"{file}\"\n[state]\ngenesis = \"../../shared/fixtures/genesis/{file}\"\n[[peers]]\ncount = 2\n"
        ));
        let r = run(&sc, &RunOptions::default()).expect("run");
        assert_eq!(r.expected_root, root, "{file}");
        assert!(r.converged, "{}", r.summary());
    }
}

#[test]
fn clean_small_sync_heals_only_the_root() {
    let sc = inline("name = \"tiny\"\n[state]\naccounts = 100\n[[peers]]\ncount = 1\n");
    let r = run(&sc, &RunOptions::default()).expect("run");
    assert!(r.converged, "{}", r.summary());
    assert_eq!(r.requests.trie_nodes.sent, 1, "{}", r.summary());
    assert_eq!(r.healed_nodes, 1);
}

/// `scenarios/chunk-boundaries.toml`: a synthetic state with `boundary_keys = true` (keys on
/// every chunk's edges) and 1 KiB fixed budgets, so replies end at or next to the edges.
#[test]
fn chunk_boundaries_scenario() {
    let sc = scenario("chunk-boundaries");
    let state = syncsim::runner::initial_state(&sc, sc.seed).expect("state");
    for k in syncsim::chain::boundary_keys() {
        assert!(state.accounts.contains_key(&k), "edge key {k} missing");
    }
    let r = passes("chunk-boundaries");
    assert!(r.head_root_ok, "{}", r.summary());
    assert!(r.requests.account_range.ok >= 16, "{}", r.summary());
}

#[test]
fn keys_exactly_on_chunk_boundaries() {
    use syncsim_node::primitives::{B256, U256};
    use syncsim_node::state::{AccountData, State};
    let mut state = State::default();
    let mut put = |k: B256, i: u64| {
        let mut a = AccountData::plain(i, U256::from(i + 1));
        if i.is_multiple_of(3) {
            a.storage.insert(B256::ZERO, U256::from(i + 7));
            a.storage.insert(B256::repeat_byte(0xff), U256::from(i + 9));
        }
        state.accounts.insert(k, a);
    };
    let mut i = 0;
    for chunk in 0u8..16 {
        let mut first = [0u8; 32];
        first[0] = chunk << 4;
        let mut last = [0xffu8; 32];
        last[0] = (chunk << 4) | 0x0f;
        for k in [first, last] {
            put(B256::from(k), i);
            i += 1;
        }
        let mut near = last;
        near[31] = 0xfe;
        put(B256::from(near), i);
        i += 1;
    }
    let sc = inline("name = \"boundaries\"\n[state]\naccounts = 1\n[[peers]]\ncount = 2\n[sync]\nrequest_sizing = \"fixed\"\naccount_bytes = \"1B\"\nstorage_bytes = \"1B\"\n");
    let r = syncsim::runner::run_with_state(&sc, &RunOptions::default(), state, std::time::Instant::now())
        .expect("run");
    assert!(r.converged, "{}", r.summary());
    assert!(r.requests.account_range.ok >= 48, "one account per reply: {}", r.summary());
}

fn at_head(name: &str) -> syncsim::report::Report {
    let r = passes(name);
    assert!(r.head_root_ok, "{}", r.summary());
    r
}

#[test]
fn staged_sync_reaches_the_head() {
    let r = at_head("staged-clean");
    assert!(r.head_block > r.pivot_block);
    assert!(r.stages.contains_key("execution"), "{:?}", r.stages);
    at_head("staged-duplicate-blocks");
    at_head("staged-duplicate-block-peers");
}

/// `bad-headers` peers are dropped, not only penalised: a peer whose header chain did not link
/// is probed again until its faults add up, over several seeds; honest peers are kept.
#[test]
fn bad_headers_peers_are_dropped() {
    for seed in 0..3 {
        let opts = RunOptions { seed: Some(seed), ..Default::default() };
        let r = run(&scenario("staged-bad-headers"), &opts).expect("run");
        assert!(r.passed() && r.converged && r.head_root_ok, "seed {seed}: {}", r.summary());
        for p in &r.peers {
            let bad = p.behaviour == "bad-headers";
            assert_eq!(p.dropped, bad, "seed {seed}: {} peer {}\n{}", p.behaviour, p.id, r.summary());
        }
    }
}

/// Slow honest peers (64 KiB/s) and big bodies (200 changes a block): body requests are sized
/// by bytes and timed from the measured rate, so bodies arrive and the node reaches the head
/// (they timed out forever with a fixed 128-block batch and a fixed timeout).
#[test]
fn slow_honest_peers_deliver_bodies() {
    let sc = inline(
        "name = \"slow-bodies\"\n[state]\naccounts = 2000\n[chain]\nblocks = 40\nchanges_per_block = 200\n\
         [[peers]]\ncount = 3\nlatency = \"30ms..120ms\"\nbandwidth = \"64KiB/s\"\n",
    );
    let r = run(&sc, &RunOptions::default()).expect("run");
    assert!(r.converged && r.head_root_ok, "{}", r.summary());
    assert!(r.requests.bodies.ok >= 3, "{}", r.summary());
    assert!(r.requests.bodies.timed_out * 4 <= r.requests.bodies.sent, "{}", r.summary());
    assert!(r.virtual_time_ms <= 300_000, "{}", r.summary());
}

/// A configured `request_timeout` shorter than any reply takes does not make the sync
/// impossible: header and body deadlines follow what the transfer needs (the run only stopped
/// at the 6 h virtual cap before).
#[test]
fn too_short_request_timeout_still_syncs() {
    let sc = with("network-faults", &[("sync.request_timeout", "100ms")]);
    let r = run(&sc, &RunOptions { seed: Some(2), ..Default::default() }).expect("run");
    assert!(r.converged && r.head_root_ok, "{}", r.summary());
    assert!(r.virtual_time_ms <= 600_000, "{}", r.summary());
}

/// A chain far too fast to follow (a block every 10 ms) makes the node stop with a clear
/// failure in bounded virtual time instead of running until the virtual cap.
#[test]
fn cannot_keep_up_with_a_runaway_chain() {
    let sc = with("staged-clean", &[("chain.block_time", "10ms")]);
    let r = run(&sc, &RunOptions::default()).expect("run");
    assert!(!r.passed() && !r.converged, "{}", r.summary());
    let failure = r.failure.as_deref().unwrap_or("");
    assert!(failure.contains("cannot keep up with the chain: head grows"), "{}", r.summary());
    assert!(r.virtual_time_ms <= 15 * 60 * 1000, "{}", r.summary());
}

/// Liars announce the head while holding a chain eight blocks behind it. Beside honest and
/// stale peers on a lossy network, every liar ends penalised or dropped (most dropped for
/// lacking headers they announced), no other peer (the stale one included) is dropped, and the
/// sync reaches the head.
#[test]
fn liars_are_caught_and_honest_peers_kept() {
    let r = at_head("staged-liars");
    let liars: Vec<_> = r.peers.iter().filter(|p| p.behaviour == "liar").collect();
    assert_eq!(liars.len(), 2, "{}", r.summary());
    assert!(liars.iter().all(|p| p.dropped || p.penalised), "{}", r.summary());
    assert!(liars.iter().any(|p| p.dropped), "no liar dropped\n{}", r.summary());
    for p in r.peers.iter().filter(|p| p.behaviour != "liar") {
        assert!(!p.dropped, "{} peer {} dropped\n{}", p.behaviour, p.id, r.summary());
    }
}

/// `liar` and `stale` are different behaviours: the same scenario with the liars made stale
/// gives another trace, and its stale peers (which announce the old head they really have) are
/// not dropped.
#[test]
fn liar_and_stale_give_different_traces() {
    use syncsim::scenario::Behaviour;
    let liars = scenario("staged-liars");
    let mut stale = liars.clone();
    for g in &mut stale.peers {
        for b in &mut g.behaviour {
            if *b == Behaviour::Liar {
                *b = Behaviour::Stale;
            }
        }
    }
    let a = run(&liars, &RunOptions::default()).expect("run");
    let b = run(&stale, &RunOptions::default()).expect("run");
    assert_ne!(a.trace_hash, b.trace_hash);
    assert!(b.converged && b.passed(), "{}", b.summary());
    assert!(b.peers.iter().all(|p| !p.dropped), "{}", b.summary());
    assert!(a.peers.iter().any(|p| p.behaviour == "liar" && p.dropped), "{}", a.summary());
}

#[test]
fn staged_sync_follows_a_reorg() {
    let r = at_head("staged-reorg");
    assert!(r.stages.contains_key("unwind"), "no unwind: {:?}", r.stages);
}

#[test]
fn crash_during_block_insertion_resumes() {
    let opts = RunOptions { crash_on_phase: Some(("execution".into(), 300)), ..Default::default() };
    let r = run(&scenario("staged-clean"), &opts).expect("run");
    assert_eq!(r.crashes, 1, "{}", r.summary());
    assert!(r.converged && r.head_root_ok, "{}", r.summary());
}

/// The same crash as a scenario file: `[faults] crash_in = "execution"`.
#[test]
fn crash_in_execution_scenario_resumes() {
    let r = at_head("staged-crash-insertion");
    assert!(r.crashes >= 1, "{}", r.summary());
    assert!(r.stages.contains_key("execution"), "{:?}", r.stages);
}

/// Regression guard for the classic failure: a known block made insertion fail and stopped
/// the whole sync. Planting it back must be caught.
#[test]
fn known_block_treated_as_fatal_is_caught() {
    use syncsim_node::sync::PlantedBug;
    let opts = RunOptions { planted: Some(PlantedBug::KnownBlockFatal), ..Default::default() };
    let r = run(&scenario("staged-duplicate-block-peers"), &opts).expect("run");
    assert!(!r.passed(), "the planted known-block bug went unnoticed\n{}", r.summary());
    assert!(r.failure.as_deref().unwrap_or("").contains("already known"), "{}", r.summary());
    // and the real code shrugs the same duplicates off
    at_head("staged-duplicate-block-peers");
}

/// Every fuzz finding kept in `tests/regressions/` (each file says what it found and what fixed
/// it) now converges and meets its expectations.
#[test]
fn fuzz_regressions_converge() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/regressions");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("regressions dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    assert!(files.len() >= 6, "{files:?}");
    for f in files {
        let sc = Scenario::load(&f).unwrap_or_else(|e| panic!("{e}"));
        let r = run(&sc, &RunOptions::default()).expect("run");
        assert!(r.converged && r.expectations.iter().all(|e| e.ok), "{}: {}", f.display(), r.summary());
    }
}
