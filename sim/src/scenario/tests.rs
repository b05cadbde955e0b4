use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;

const FILE: &str = "scenarios/x.toml";

/// The smallest valid scenario (synthetic state, so no file is needed).
const MINIMAL: &str = "name = \"t\"\n[state]\naccounts = 10\n[[peers]]\ncount = 1\n";

fn parse(text: &str) -> Result<Scenario, ScenarioError> {
    Scenario::parse(text, Path::new(FILE))
}

fn err(text: &str) -> ScenarioError {
    match parse(text) {
        Ok(s) => panic!("parsed, expected an error:\n{text}\n=> {s:?}"),
        Err(e) => e,
    }
}

/// Checks the error's line, key, kind and that its message contains `msg`,
/// and that Display has the `FILE:LINE: key 'KEY': ` shape.
#[track_caller]
fn check(text: &str, line: usize, key: &str, kind: ErrorKind, msg: &str) -> ScenarioError {
    let e = err(text);
    let shown = e.to_string();
    assert_eq!(e.location, Location::Line(line), "{shown}");
    assert_eq!(e.key, key, "{shown}");
    assert_eq!(e.kind, kind, "{shown}");
    assert!(e.message.contains(msg), "{shown:?} lacks {msg:?}");
    let prefix = format!("{FILE}:{line}: key '{key}': ");
    assert!(shown.starts_with(&prefix), "{shown:?} lacks {prefix:?}");
    e
}

fn tmpdir() -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let d = std::env::temp_dir().join(format!(
        "syncsim-scenario-test-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The format's example, with `reorg` and a genesis file next to it.
const FULL: &str = r#"name = "flaky-network"            # required
description = "lossy links, \"bad\" peers"
seed = 7

[state]
genesis = "../fixtures/genesis.json"

[chain]
blocks = 32
block_time = "12s"
changes_per_block = 20
state_history = 128
reorg = { depth = 5, at = "30s" }

[[peers]]
count = 4
behaviour = "honest"
latency = "50ms..200ms"
bandwidth = "5MiB/s"
join_at = "0s"
leave_at = "10m"

[[peers]]
count = 2
behaviour = ["slow", "duplicate-blocks"]
latency = { median = "80ms", p99 = "1s" }
bandwidth = 1000

[faults]
drop = 0.02
duplicate = 0.01
reorder = 0.05
corrupt = 0.001
disconnect = { every = "2m", downtime = "10s" }
duplicate_blocks = 0.05
crash = 1

[sync]
request_sizing = "geth"
account_bytes = "128KiB"
storage_bytes = "1.5MiB"
max_codes = 50
max_trie_nodes = 512
concurrency = 8
request_timeout = "1.5s"
pivot_distance = 32

[expect]
converge = false
max_virtual_time = "1h"
max_requests = 5000
dropped = ["corrupt-proof"]
"#;

/// Writes FULL at `<tmp>/scenarios/flaky.toml` with its genesis file.
fn full_on_disk() -> (PathBuf, PathBuf) {
    let dir = tmpdir();
    std::fs::create_dir_all(dir.join("scenarios")).unwrap();
    std::fs::create_dir_all(dir.join("fixtures")).unwrap();
    let genesis = dir.join("fixtures/genesis.json");
    std::fs::write(&genesis, "{}").unwrap();
    let path = dir.join("scenarios/flaky.toml");
    std::fs::write(&path, FULL).unwrap();
    (path, genesis)
}

fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

// ------------------------------------------------------------------ valid

#[test]
fn full_example() {
    let (path, genesis) = full_on_disk();
    let s = Scenario::load(&path).unwrap();
    assert_eq!(s.name, "flaky-network");
    assert_eq!(s.description.as_deref(), Some("lossy links, \"bad\" peers"));
    assert_eq!(s.seed, 7);
    assert_eq!(s.state, StateSpec::Genesis { path: build::normalize(&genesis), case: None });
    assert_eq!(
        s.chain,
        ChainSpec {
            blocks: 32,
            block_time: ms(12_000),
            changes_per_block: 20,
            state_history: 128,
            reorg: Some(Reorg { depth: 5, at: ms(30_000) }),
        }
    );
    assert_eq!(
        s.peers,
        vec![
            PeerGroup {
                count: 4,
                behaviour: vec![Behaviour::Honest],
                latency: Latency::Uniform { min: ms(50), max: ms(200) },
                bandwidth: Bandwidth(5 << 20),
                join_at: Some(Duration::ZERO),
                leave_at: Some(ms(600_000)),
            },
            PeerGroup {
                count: 2,
                behaviour: vec![Behaviour::Slow, Behaviour::DuplicateBlocks],
                latency: Latency::LogNormal { median: ms(80), p99: ms(1000) },
                bandwidth: Bandwidth(1000),
                join_at: None,
                leave_at: None,
            },
        ]
    );
    assert_eq!(s.peer_count(), 6);
    assert_eq!(
        s.faults,
        Faults {
            drop: 0.02,
            duplicate: 0.01,
            reorder: 0.05,
            corrupt: 0.001,
            disconnect: Some(Disconnect { every: ms(120_000), downtime: ms(10_000) }),
            duplicate_blocks: 0.05,
            crash: 1,
            crash_in: None,
        }
    );
    assert_eq!(
        s.sync,
        SyncSpec {
            request_sizing: SizingPolicy::Geth,
            account_bytes: Size(128 << 10),
            storage_bytes: Size(3 << 19),
            max_codes: 50,
            max_trie_nodes: 512,
            concurrency: 8,
            request_timeout: ms(1500),
            pivot_distance: 32,
            follow_blocks: 0,
        }
    );
    assert_eq!(
        s.expect,
        Expect {
            converge: false,
            max_virtual_time: Some(ms(3_600_000)),
            max_requests: Some(5000),
            dropped: Some(vec![Behaviour::CorruptProof]),
        }
    );
}

#[test]
fn defaults() {
    let s = parse(MINIMAL).unwrap();
    assert_eq!(s.description, None);
    assert_eq!(s.seed, 0);
    assert_eq!(
        s.state,
        StateSpec::Synthetic {
            accounts: 10,
            contracts: 0,
            storage_slots: 0,
            storage_skew: 0.0,
            code_size: (100, 24 * 1024),
            unique_codes: 1,
            boundary_keys: false,
        }
    );
    assert_eq!(s.chain, ChainSpec::default());
    assert_eq!(s.chain.blocks, 0);
    assert_eq!(s.chain.block_time, ms(12_000));
    assert_eq!(s.chain.changes_per_block, 0);
    assert_eq!(s.chain.state_history, 128);
    assert_eq!(s.chain.reorg, None);
    assert_eq!(s.peers, vec![PeerGroup::default()]);
    let g = &s.peers[0];
    assert_eq!(g.count, 1);
    assert_eq!(g.behaviour, vec![Behaviour::Honest]);
    assert_eq!(g.latency, Latency::Uniform { min: ms(20), max: ms(80) });
    assert_eq!(g.bandwidth, Bandwidth(10 << 20));
    assert_eq!((g.join_at, g.leave_at), (None, None));
    assert_eq!(s.faults, Faults::default());
    assert_eq!(s.faults.drop, 0.0);
    assert_eq!(s.faults.disconnect, None);
    assert_eq!(s.faults.crash, 0);
    let y = &s.sync;
    assert_eq!(y.request_sizing, SizingPolicy::Adaptive);
    assert_eq!(y.account_bytes, Size(512 * 1024));
    assert_eq!(y.storage_bytes, Size(512 * 1024));
    assert_eq!(y.max_codes, 84);
    assert_eq!(y.max_trie_nodes, 1024);
    assert_eq!(y.concurrency, 16);
    assert_eq!(y.request_timeout, ms(10_000));
    assert_eq!(y.pivot_distance, 64);
    assert_eq!(s.expect, Expect::default());
    assert!(s.expect.converge);
    assert_eq!(s.expect.dropped, None);
}

#[test]
fn synthetic_state_keys() {
    let s = parse(
        "name = \"t\"\n[state]\naccounts = 100\ncontracts = 20\nstorage_slots = 5000\n\
         storage_skew = 1\ncode_size = [\"1KiB\", 2048]\n[[peers]]\n",
    )
    .unwrap();
    assert_eq!(
        s.state,
        StateSpec::Synthetic {
            accounts: 100,
            contracts: 20,
            storage_slots: 5000,
            storage_skew: 1.0,
            code_size: (1024, 2048),
            unique_codes: 20,
            boundary_keys: false,
        }
    );
    assert_eq!(s.peers, vec![PeerGroup::default()]);
}

#[test]
fn small_forms() {
    let s = parse(
        "name = \"t\"\nseed = \"18446744073709551615\"\n[state]\naccounts = 1\n\
         [[peers]]\nlatency = \"80ms\"\n[faults]\ndrop = 1\ncorrupt = 0\n\
         [expect]\ndropped = []\n",
    )
    .unwrap();
    assert_eq!(s.seed, u64::MAX);
    assert_eq!(s.peers[0].latency, Latency::Uniform { min: ms(80), max: ms(80) });
    assert_eq!(s.faults.drop, 1.0);
    assert_eq!(s.expect.dropped, Some(vec![]));
    assert_eq!(parse(&s.to_toml_string()).unwrap(), s);
}

#[test]
fn behaviour_names() {
    assert_eq!(Behaviour::ALL.len(), 17);
    for b in Behaviour::ALL {
        assert_eq!(b.name().parse::<Behaviour>().unwrap(), *b);
        assert_eq!(b.to_string(), b.name());
    }
    assert_eq!("capped-code".parse::<Behaviour>(), Ok(Behaviour::CappedCode));
    assert!("Honest".parse::<Behaviour>().is_err());
    assert_eq!(serde_json::to_string(&Behaviour::BadHeaders).unwrap(), "\"bad-headers\"");
    let b: Vec<Behaviour> = serde_json::from_str("[\"liar\",\"stale\"]").unwrap();
    assert_eq!(b, vec![Behaviour::Liar, Behaviour::Stale]);
    assert!(serde_json::from_str::<Behaviour>("\"nope\"").is_err());
    for p in SizingPolicy::ALL {
        assert_eq!(p.name().parse::<SizingPolicy>().unwrap(), *p);
    }
}

// ------------------------------------------------------------ round trip

#[test]
fn round_trip_full() {
    let (path, _) = full_on_disk();
    let s = Scenario::load(&path).unwrap();
    let text = s.to_toml_string();
    // Absolute genesis path: parses back from anywhere.
    let again = Scenario::parse(&text, Path::new("elsewhere/y.toml")).unwrap();
    assert_eq!(again, s);
    assert_eq!(again.to_toml_string(), text);

    // Relative genesis path for a file written into another directory.
    let dest = path.parent().unwrap().join("min/failing.toml");
    let text = s.to_toml_string_for(&dest);
    assert!(text.contains("genesis = \"../../fixtures/genesis.json\""), "{text}");
    std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
    std::fs::write(&dest, &text).unwrap();
    assert_eq!(Scenario::load(&dest).unwrap(), s);
}

#[test]
fn round_trip_synthetic_and_odd_values() {
    let mut s = parse(MINIMAL).unwrap();
    s.description = Some("tab\there\nnewline \\ \u{7f} ünï".into());
    s.state = StateSpec::Synthetic {
        accounts: 1000,
        contracts: 10,
        storage_slots: 77,
        storage_skew: 1.1,
        code_size: (1536, 5_000_000),
        unique_codes: 3,
        boundary_keys: true,
    };
    s.faults.drop = 0.1 + 0.2;
    s.faults.corrupt = 1e-9;
    s.peers[0].behaviour = vec![Behaviour::CorruptProof];
    s.peers.push(PeerGroup {
        count: 3,
        behaviour: vec![Behaviour::Flapping, Behaviour::Liar],
        latency: Latency::LogNormal { median: Duration::from_nanos(1), p99: Duration::from_micros(1500) },
        bandwidth: Bandwidth(1),
        join_at: Some(ms(1)),
        leave_at: Some(ms(1001)),
    });
    s.seed = u64::MAX - 1;
    s.expect.max_requests = Some(0);
    let text = s.to_toml_string();
    assert_eq!(parse(&text).unwrap(), s, "{text}");
}

// -------------------------------------------------------------- overrides

fn set(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

#[test]
fn overrides_apply() {
    let (path, _) = full_on_disk();
    let s = Scenario::load_with_overrides(
        &path,
        &set(&[
            ("sync.account_bytes", "128KiB"),
            ("peers[0].count", "8"),
            ("peers.1.count", "9"),
            ("faults.drop", "0.1"),
            ("seed", "3"),
            ("chain.reorg", "{ depth = 2, at = \"1m\" }"),
            ("peers[1].behaviour", "[\"stale\"]"),
            ("peers[0].latency", "10ms..20ms"),
            ("expect.converge", "true"),
            ("name", "renamed"),
        ]),
    )
    .unwrap();
    assert_eq!(s.sync.account_bytes, Size(128 << 10));
    assert_eq!(s.peers[0].count, 8);
    assert_eq!(s.peers[1].count, 9);
    assert_eq!(s.faults.drop, 0.1);
    assert_eq!(s.seed, 3);
    assert_eq!(s.chain.reorg, Some(Reorg { depth: 2, at: ms(60_000) }));
    assert_eq!(s.peers[1].behaviour, vec![Behaviour::Stale]);
    assert_eq!(s.peers[0].latency, Latency::Uniform { min: ms(10), max: ms(20) });
    assert!(s.expect.converge);
    assert_eq!(s.name, "renamed");
}

#[test]
fn overrides_create_tables_and_groups() {
    let p = Path::new(FILE);
    let s = Scenario::parse_with_overrides(
        MINIMAL,
        p,
        &set(&[
            ("faults.disconnect.every", "1m"),
            ("faults.disconnect.downtime", "5s"),
            ("peers[1].behaviour", "slow"),
            ("sync.account_bytes", "1000"),
        ]),
    )
    .unwrap();
    assert_eq!(s.faults.disconnect, Some(Disconnect { every: ms(60_000), downtime: ms(5000) }));
    assert_eq!(s.peers.len(), 2);
    assert_eq!(s.peers[1].behaviour, vec![Behaviour::Slow]);
    assert_eq!(s.sync.account_bytes, Size(1000));
    assert_eq!(parse_override("a.b=c=d"), Ok(("a.b".into(), "c=d".into())));
    assert!(parse_override("novalue").is_err());
}

#[track_caller]
fn check_override(pairs: &[(&str, &str)], key: &str, kind: ErrorKind, msg: &str) {
    let e = Scenario::parse_with_overrides(MINIMAL, Path::new(FILE), &set(pairs)).unwrap_err();
    let shown = e.to_string();
    let (k, v) = pairs.last().unwrap();
    let kv = format!("{k}={v}");
    assert_eq!(e.location, Location::Override(kv.clone()), "{shown}");
    assert_eq!(e.key, key, "{shown}");
    assert_eq!(e.kind, kind, "{shown}");
    assert!(e.message.contains(msg), "{shown:?} lacks {msg:?}");
    let prefix = format!("{FILE}: --set {kv}: key '{key}': ");
    assert!(shown.starts_with(&prefix), "{shown:?} lacks {prefix:?}");
}

#[test]
fn override_errors() {
    use ErrorKind::*;
    check_override(&[("sync.foo", "1")], "sync.foo", UnknownKey, "unknown key");
    check_override(&[("bogus", "1")], "bogus", UnknownKey, "unknown key");
    check_override(&[("peers[0].speed", "1")], "peers[0].speed", UnknownKey, "unknown key");
    check_override(
        &[("peers[0].count", "0")],
        "peers[0].count",
        InvalidValue,
        "expected a positive integer, got 0",
    );
    check_override(
        &[("sync.concurrency", "lots")],
        "sync.concurrency",
        WrongType,
        "expected a positive integer, got string \"lots\"",
    );
    check_override(&[("faults.drop", "2")], "faults.drop", InvalidValue, "probability");
    check_override(
        &[("sync.request_timeout", "10x")],
        "sync.request_timeout",
        InvalidValue,
        "unknown unit 'x'",
    );
    check_override(
        &[("seed", "1"), ("seed.x", "1")],
        "seed.x",
        BadOverride,
        "'seed' is an integer, not a table",
    );
    check_override(&[("seed.x", "1")], "seed", WrongType, "got a table");
    check_override(&[("peers[5].count", "1")], "peers[5].count", BadOverride, "out of range");
    check_override(&[("peers.count", "1")], "peers.count", BadOverride, "index it: peers[0].count");
    check_override(&[("peers..x", "1")], "peers..x", BadOverride, "key path");
    check_override(&[("state.contracts", "11")], "state.contracts", Conflict, "must not exceed accounts");
    check_override(&[("state.genesis", "g.json")], "state.genesis", Conflict, "exclude each other");
    // The later override is the one named.
    check_override(&[("seed", "1"), ("peers[0].count", "-2")], "peers[0].count", InvalidValue, "got -2");
}

#[test]
fn file_errors_keep_lines_with_overrides() {
    let text = "name = \"t\"\n[state]\naccounts = 10\n[[peers]]\ncount = 0\n";
    // The file is validated on its own first, even if an override would fix it.
    let e =
        Scenario::parse_with_overrides(text, Path::new(FILE), &set(&[("peers[0].count", "3")])).unwrap_err();
    assert_eq!(e.location, Location::Line(5));
    assert_eq!(e.key, "peers[0].count");
    // A file value blamed after an override still names its line.
    let text = "name = \"t\"\n[state]\naccounts = 10\n[[peers]]\n[[peers]]\nleave_at = \"5s\"\n";
    let e = Scenario::parse_with_overrides(text, Path::new(FILE), &set(&[("peers[1].join_at", "1m")]))
        .unwrap_err();
    assert_eq!(e.location, Location::Line(6), "{e}");
    assert_eq!(e.key, "peers[1].leave_at");
}

// ----------------------------------------------------------------- errors

#[test]
fn error_display_example() {
    let e = err(&format!("{MINIMAL}[sync]\nconcurrency = -3\n"));
    assert_eq!(
        e.to_string(),
        "scenarios/x.toml:7: key 'sync.concurrency': expected a positive integer, got -3"
    );
    assert_eq!(ScenarioError::EXIT_CODE, 2);
}

#[test]
fn unknown_key_top_level() {
    check(
        "name = \"t\"\nbogus = 1\n[state]\naccounts = 1\n[[peers]]\n",
        2,
        "bogus",
        ErrorKind::UnknownKey,
        "unknown key (expected one of: name, description, seed",
    );
}

#[test]
fn unknown_key_in_table() {
    check(
        &format!("{MINIMAL}[sync]\nconcurrency = 2\nfoo = 1\n"),
        8,
        "sync.foo",
        ErrorKind::UnknownKey,
        "unknown key",
    );
    check(
        &format!("{MINIMAL}[faults]\ndisconnect = {{ every = \"1m\", downtime = \"1s\", x = 1 }}\n"),
        7,
        "faults.disconnect.x",
        ErrorKind::UnknownKey,
        "expected one of: every, downtime",
    );
    check(&format!("{MINIMAL}[oops]\n"), 6, "oops", ErrorKind::UnknownKey, "unknown key");
}

#[test]
fn unknown_key_in_peer_group() {
    check(
        &format!("{MINIMAL}\n[[peers]]\ncount = 2\nspeed = \"fast\"\n"),
        9,
        "peers[1].speed",
        ErrorKind::UnknownKey,
        "expected one of: count, behaviour, latency",
    );
    check(
        &format!("{MINIMAL}latency = {{ median = \"1ms\", p98 = \"2ms\" }}\n"),
        6,
        "peers[0].latency.p98",
        ErrorKind::UnknownKey,
        "unknown key",
    );
}

#[test]
fn wrong_types() {
    check(
        &format!("{MINIMAL}[sync]\nconcurrency = \"16\"\n"),
        7,
        "sync.concurrency",
        ErrorKind::WrongType,
        "expected a positive integer, got string \"16\"",
    );
    check(
        "name = 5\n[state]\naccounts = 1\n[[peers]]\n",
        1,
        "name",
        ErrorKind::WrongType,
        "expected a string, got 5",
    );
    check(
        &format!("{MINIMAL}[chain]\nblock_time = 12\n"),
        7,
        "chain.block_time",
        ErrorKind::WrongType,
        "expected a duration string such as \"12s\", got 12",
    );
    check(
        &format!("{MINIMAL}[faults]\ndrop = \"2%\"\n"),
        7,
        "faults.drop",
        ErrorKind::WrongType,
        "expected a probability in [0, 1], got string \"2%\"",
    );
    check(
        &format!("{MINIMAL}[expect]\nconverge = \"yes\"\n"),
        7,
        "expect.converge",
        ErrorKind::WrongType,
        "expected true or false",
    );
    check(
        "name = \"t\"\n[state]\naccounts = 1.5\n[[peers]]\n",
        3,
        "state.accounts",
        ErrorKind::WrongType,
        "got float 1.5",
    );
    check(
        "name = \"t\"\n[state]\naccounts = 1\n[peers]\ncount = 1\n",
        4,
        "peers",
        ErrorKind::WrongType,
        "expected an array of tables ([[peers]]), got a table",
    );
    check(
        "name = \"t\"\nstate = 3\n[[peers]]\n",
        2,
        "state",
        ErrorKind::WrongType,
        "expected a table, got 3",
    );
}

#[test]
fn negative_and_zero_counts() {
    check(
        &format!("{MINIMAL}\n[[peers]]\ncount = -1\n"),
        8,
        "peers[1].count",
        ErrorKind::InvalidValue,
        "expected a positive integer, got -1",
    );
    check(
        "name = \"t\"\n[state]\naccounts = 1\n[[peers]]\ncount = 0\n",
        5,
        "peers[0].count",
        ErrorKind::InvalidValue,
        "expected a positive integer, got 0",
    );
    check(
        &format!("{MINIMAL}[faults]\ncrash = 1\ncrash_in = \"insertion\"\n"),
        8,
        "faults.crash_in",
        ErrorKind::InvalidValue,
        "unknown phase \"insertion\" (expected one of: headers, state, verify, execution)",
    );
    check(
        &format!("{MINIMAL}[faults]\ncrash = -1\n"),
        7,
        "faults.crash",
        ErrorKind::InvalidValue,
        "expected a non-negative integer, got -1",
    );
    check(
        &format!("{MINIMAL}[sync]\nmax_codes = 0\n"),
        7,
        "sync.max_codes",
        ErrorKind::InvalidValue,
        "expected a positive integer, got 0",
    );
    check(
        &format!("{MINIMAL}[[peers]]\ncount = 5000000000\n"),
        7,
        "peers[1].count",
        ErrorKind::InvalidValue,
        "no larger than 4294967295",
    );
}

#[test]
fn bad_unit_strings() {
    check(
        &format!("{MINIMAL}[sync]\nrequest_timeout = \"10 parsecs\"\n"),
        7,
        "sync.request_timeout",
        ErrorKind::InvalidValue,
        "invalid duration \"10 parsecs\": unknown unit 'parsecs'",
    );
    check(
        &format!("{MINIMAL}[sync]\naccount_bytes = \"512KiBB\"\n"),
        7,
        "sync.account_bytes",
        ErrorKind::InvalidValue,
        "invalid size \"512KiBB\"",
    );
    check(
        &format!("{MINIMAL}[sync]\naccount_bytes = 0\n"),
        7,
        "sync.account_bytes",
        ErrorKind::InvalidValue,
        "above zero",
    );
    // kept in milliseconds by the node: a sub-millisecond timeout would truncate to zero
    check(
        &format!("{MINIMAL}[sync]\nrequest_timeout = \"999us\"\n"),
        7,
        "sync.request_timeout",
        ErrorKind::InvalidValue,
        "at least 1ms",
    );
    check(
        &format!("{MINIMAL}bandwidth = \"5MiB\"\n"),
        6,
        "peers[0].bandwidth",
        ErrorKind::InvalidValue,
        "invalid bandwidth",
    );
    check(
        &format!("{MINIMAL}latency = \"200ms..50ms\"\n"),
        6,
        "peers[0].latency",
        ErrorKind::InvalidValue,
        "below the minimum",
    );
    check(
        &format!("{MINIMAL}latency = {{ median = \"1s\", p99 = \"80ms\" }}\n"),
        6,
        "peers[0].latency.p99",
        ErrorKind::InvalidValue,
        "below the median",
    );
    check(
        "name = \"t\"\n[state]\naccounts = 1\ncode_size = [\"1KiB\", \"x\"]\n[[peers]]\n",
        4,
        "state.code_size[1]",
        ErrorKind::InvalidValue,
        "invalid size \"x\"",
    );
    check(
        &format!("{MINIMAL}leave_at = \"0s\"\n"),
        6,
        "peers[0].leave_at",
        ErrorKind::InvalidValue,
        "must be after join_at",
    );
    check(
        &format!("{MINIMAL}[chain]\nreorg = {{ depth = 3 }}\n"),
        7,
        "chain.reorg.at",
        ErrorKind::Missing,
        "needs both",
    );
}

#[test]
fn unknown_behaviour() {
    check(
        &format!("{MINIMAL}behaviour = \"evil\"\n"),
        6,
        "peers[0].behaviour",
        ErrorKind::InvalidValue,
        "unknown behaviour \"evil\" (expected one of: honest, empty,",
    );
    check(
        &format!("{MINIMAL}behaviour = [\"slow\",\n  \"evil\"]\n"),
        7,
        "peers[0].behaviour[1]",
        ErrorKind::InvalidValue,
        "unknown behaviour \"evil\"",
    );
    check(
        &format!("{MINIMAL}[expect]\ndropped = [\"nice\"]\n"),
        7,
        "expect.dropped[0]",
        ErrorKind::InvalidValue,
        "unknown behaviour",
    );
    check(&format!("{MINIMAL}behaviour = []\n"), 6, "peers[0].behaviour", ErrorKind::InvalidValue, "empty");
    check(
        &format!("{MINIMAL}[sync]\nrequest_sizing = \"greedy\"\n"),
        7,
        "sync.request_sizing",
        ErrorKind::InvalidValue,
        "unknown request sizing policy \"greedy\"",
    );
}

#[test]
fn probability_out_of_range() {
    check(
        &format!("{MINIMAL}[faults]\ndrop = 1.5\n"),
        7,
        "faults.drop",
        ErrorKind::InvalidValue,
        "expected a probability in [0, 1], got 1.5",
    );
    check(
        &format!("{MINIMAL}[faults]\ncorrupt = -0.001\n"),
        7,
        "faults.corrupt",
        ErrorKind::InvalidValue,
        "got -0.001",
    );
    check(
        &format!("{MINIMAL}[faults]\nduplicate_blocks = 2\n"),
        7,
        "faults.duplicate_blocks",
        ErrorKind::InvalidValue,
        "got 2",
    );
    check(
        &format!("{MINIMAL}[faults]\nreorder = nan\n"),
        7,
        "faults.reorder",
        ErrorKind::InvalidValue,
        "got NaN",
    );
}

#[test]
fn missing_name() {
    check("# a comment\n[state]\naccounts = 1\n[[peers]]\n", 1, "name", ErrorKind::Missing, "needs a name");
    check("name = \"\"\n[state]\naccounts = 1\n[[peers]]\n", 1, "name", ErrorKind::InvalidValue, "empty");
}

#[test]
fn genesis_and_accounts() {
    check(
        "name = \"t\"\n[state]\ngenesis = \"g.json\"\naccounts = 1\n[[peers]]\n",
        4,
        "state.accounts",
        ErrorKind::Conflict,
        "'state.genesis' and 'state.accounts' exclude each other",
    );
    check(
        "name = \"t\"\n[state]\ngenesis = \"g.json\"\ncontracts = 1\n[[peers]]\n",
        4,
        "state.contracts",
        ErrorKind::Conflict,
        "only to a synthetic state",
    );
}

#[test]
fn neither_genesis_nor_accounts() {
    check(
        "name = \"t\"\n\n[state]\ncontracts = 1\n[[peers]]\n",
        3,
        "state",
        ErrorKind::Missing,
        "give either 'genesis'",
    );
    check("name = \"t\"\n[[peers]]\n", 1, "state", ErrorKind::Missing, "missing [state]");
}

#[test]
fn contracts_exceed_accounts() {
    check(
        "name = \"t\"\n[state]\naccounts = 5\ncontracts = 6\n[[peers]]\n",
        4,
        "state.contracts",
        ErrorKind::Conflict,
        "contracts (6) must not exceed accounts (5)",
    );
    check(
        "name = \"t\"\n[state]\naccounts = 5\nstorage_slots = 6\n[[peers]]\n",
        4,
        "state.storage_slots",
        ErrorKind::Conflict,
        "need at least one contract",
    );
    check(
        "name = \"t\"\n[state]\naccounts = 5\ncontracts = 2\nunique_codes = 3\n[[peers]]\n",
        5,
        "state.unique_codes",
        ErrorKind::Conflict,
        "must not exceed contracts",
    );
    check(
        "name = \"t\"\n[state]\naccounts = 0\n[[peers]]\n",
        3,
        "state.accounts",
        ErrorKind::InvalidValue,
        "expected a positive integer, got 0",
    );
}

#[test]
fn missing_genesis_file() {
    let dir = tmpdir();
    let path = dir.join("s.toml");
    std::fs::write(&path, "name = \"t\"\n\n[state]\ngenesis = \"../nowhere/genesis.json\"\n[[peers]]\n")
        .unwrap();
    let e = Scenario::load(&path).unwrap_err();
    assert_eq!(e.location, Location::Line(4));
    assert_eq!(e.key, "state.genesis");
    assert_eq!(e.kind, ErrorKind::MissingFile);
    let shown = e.to_string();
    assert!(shown.starts_with(&format!("{}:4: key 'state.genesis': ", path.display())), "{shown}");
    assert!(shown.contains("../nowhere/genesis.json"), "{shown}");

    // Resolved against the scenario's directory, not the current one.
    std::fs::create_dir_all(dir.join("nowhere")).unwrap();
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    std::fs::write(dir.join("nowhere/genesis.json"), "{}").unwrap();
    let nested = dir.join("sub/s.toml");
    std::fs::write(&nested, "name = \"t\"\n[state]\ngenesis = \"../nowhere/genesis.json\"\n[[peers]]\n")
        .unwrap();
    let s = Scenario::load(&nested).unwrap();
    assert_eq!(
        s.state,
        StateSpec::Genesis { path: build::normalize(&dir.join("nowhere/genesis.json")), case: None }
    );
}

#[test]
fn empty_peer_list() {
    check(
        "name = \"t\"\npeers = []\n[state]\naccounts = 1\n",
        2,
        "peers",
        ErrorKind::InvalidValue,
        "the peer list is empty",
    );
    check(
        "name = \"t\"\n[state]\naccounts = 1\n",
        1,
        "peers",
        ErrorKind::Missing,
        "add at least one [[peers]] group",
    );
}

#[test]
fn toml_syntax_errors() {
    check(
        &format!("{MINIMAL}[sync]\nconcurrency = = 3\n"),
        7,
        "sync.concurrency",
        ErrorKind::Syntax,
        "TOML syntax error",
    );
    check("name = \"t\nseed = 1\n", 1, "name", ErrorKind::Syntax, "TOML syntax error");
    check(
        &format!("{MINIMAL}\n[[peers]]\ncount = 1\ncount = 2\n"),
        9,
        "peers[1].count",
        ErrorKind::Syntax,
        "TOML syntax error",
    );
    check(&format!("{MINIMAL}[sync\n"), 6, "sync", ErrorKind::Syntax, "TOML syntax error");
}

#[test]
fn unreadable_file() {
    let path = tmpdir().join("absent.toml");
    let e = Scenario::load(&path).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Io);
    assert_eq!(e.location, Location::File);
    assert!(e.to_string().starts_with(&format!("{}: cannot read", path.display())));
}

/// `crash_in` names the phase one crash happens in; it survives the canonical writer.
#[test]
fn crash_in_phase_parses_and_round_trips() {
    let s = Scenario::parse(
        &format!("{MINIMAL}[faults]\ncrash = 1\ncrash_in = \"execution\"\n"),
        Path::new(FILE),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(s.faults.crash_in, Some(Phase::Execution));
    let text = s.to_toml_string();
    assert!(text.contains("crash_in = \"execution\""), "{text}");
    let again = Scenario::parse(&text, Path::new(FILE)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(again.faults, s.faults);
    let none = Scenario::parse(MINIMAL, Path::new(FILE)).unwrap_or_else(|e| panic!("{e}"));
    assert!(!none.to_toml_string().contains("crash_in"));
}
