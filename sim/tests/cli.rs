//! The binary as users drive it: exit codes, messages, JSON output, determinism across
//! processes.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_syncsim"))
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn fixture(rel: &str) -> PathBuf {
    let p = root().join("../shared/fixtures").join(rel);
    if p.exists() {
        p
    } else {
        Path::new("/work/shared/fixtures").join(rel)
    }
}

fn text(o: &Output) -> (String, String) {
    (String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned())
}

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("syncsim-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

#[test]
fn state_root_of_every_genesis_fixture() {
    for (file, root) in [
        ("genesis/mainnet.json", "0xd7f8974fb5ac78d9ac099b9ad5018bedc2ce0a72dad1827a1709da30580f0544"),
        (
            "genesis/sepolia-genesis.json",
            "0x5eb6e371a698b8d68f665192350ffcecbbbf322916f4b51bd79bb6887da3f494",
        ),
        (
            "genesis/holesky-genesis.json",
            "0x69d8c9d72f6fa4ad42d4702b433707212f90db395eb54dc20bc85de253788783",
        ),
        ("genesis/hoodi-genesis.json", "0xda87d7f5f91c51508791bbcbd4aa5baf04917830b86985eeb9ad3d5bfb657576"),
    ] {
        let o = bin().arg("state-root").arg(fixture(file)).output().unwrap();
        assert_eq!(o.status.code(), Some(0), "{file}: {:?}", text(&o));
        assert_eq!(text(&o).0.trim(), root, "{file}");
    }
    let o = bin().arg("state-root").arg(fixture("genesis/basic_genesis_tests.json")).output().unwrap();
    let out = text(&o).0;
    assert!(
        out.contains("test1 0xdd406a973a0a5a9826d00da276e996d28426d24f12b8fa683723e9db532b8c59"),
        "{out}"
    );
    assert!(
        out.contains("test2 0x9178d0f23c965d81f0834a4c72c6253ce6830f4022b1359aaebfc1ecba442d4e"),
        "{out}"
    );
    assert!(
        out.contains("test3 0x56e81f171bcc55a6ff8345e692c0f86e5b48e01b996cadc001622fb5e363b421"),
        "{out}"
    );
    let sel = format!("{}#test1", fixture("genesis/basic_genesis_tests.json").display());
    let o = bin().arg("state-root").arg(sel).output().unwrap();
    assert_eq!(text(&o).0.trim(), "0xdd406a973a0a5a9826d00da276e996d28426d24f12b8fa683723e9db532b8c59");
    let o = bin().arg("state-root").arg(fixture("genesis/mainnet-genesishashestest.json")).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    let o = bin().arg("state-root").arg("/nonexistent.json").output().unwrap();
    assert_eq!(o.status.code(), Some(2));
}

fn verify_case(json: &str) -> (Option<i32>, String, String) {
    let p = tmp(&format!("case-{:x}.json", alloy_primitives::keccak256(json.as_bytes()).0[0]));
    std::fs::write(&p, json).unwrap();
    let o = bin().arg("verify-range").arg(&p).output().unwrap();
    let (a, b) = text(&o);
    (o.status.code(), a, b)
}

#[test]
fn verify_range_valid_invalid_and_malformed() {
    use syncsim_node::primitives::B256;
    use syncsim_node::trie::{build::build, prove_range, MemNodes};
    let leaves: Vec<(B256, Vec<u8>)> = (1..=50u8).map(|i| (B256::repeat_byte(i * 5), vec![i; 40])).collect();
    let mut db = MemNodes::default();
    let root = build(&leaves, &mut |n| db.insert_hashed(n.hash, n.rlp));
    let (keys, values): (Vec<_>, Vec<_>) = leaves[10..20].iter().cloned().unzip();
    let proof = prove_range(&db, root, &keys[0], keys.last()).unwrap();
    let hex = |b: &[u8]| format!("0x{}", b.iter().map(|x| format!("{x:02x}")).collect::<String>());
    let case = |vals: &[Vec<u8>]| {
        serde_json::json!({
            "root": hex(root.as_slice()),
            "first_key": hex(keys[0].as_slice()),
            "keys": keys.iter().map(|k| hex(k.as_slice())).collect::<Vec<_>>(),
            "values": vals.iter().map(|v| hex(v)).collect::<Vec<_>>(),
            "proof": proof.iter().map(|p| hex(p)).collect::<Vec<_>>(),
        })
        .to_string()
    };
    let (code, out, _) = verify_case(&case(&values));
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(out.trim(), r#"{"has_more":true,"valid":true}"#);
    let mut bad = values.clone();
    bad[3][0] ^= 1;
    let (code, out, _) = verify_case(&case(&bad));
    assert_eq!(code, Some(1));
    assert!(out.contains(r#""valid":false"#), "{out}");
    for malformed in [
        "",
        "{",
        "[]",
        r#"{"root":"0x00"}"#,
        r#"{"root":"zz","first_key":"0x","keys":[],"values":[],"proof":[]}"#,
        "\u{0}\u{1}garbage",
        // a multi-byte character inside hex, a sign, an unknown key, a non-string element
        "{\"root\":\"a\u{e9}0\",\"first_key\":\"0x\",\"keys\":[],\"values\":[],\"proof\":[]}",
        r#"{"root":"0x+1+2","first_key":"0x","keys":[],"values":[],"proof":[]}"#,
        r#"{"root":"0x00","first_key":"0x00","keys":[],"values":[],"proof":[],"extra":1}"#,
        r#"{"root":"0x00","first_key":"0x00","keys":[7],"values":[],"proof":[]}"#,
    ] {
        let (code, _, err) = verify_case(malformed);
        assert_eq!(code, Some(2), "{malformed:?}");
        assert!(err.contains("error"), "{err}");
    }
}

fn scenario_error(body: &str) -> (Option<i32>, String) {
    let p = tmp(&format!("bad-{:x}.toml", alloy_primitives::keccak256(body.as_bytes()).0[0]));
    std::fs::write(&p, body).unwrap();
    let o = bin().arg("run").arg(&p).output().unwrap();
    (o.status.code(), text(&o).1)
}

#[test]
fn bad_scenarios_exit_2_naming_file_line_and_key() {
    let base = "name = \"x\"\n[state]\naccounts = 10\n[[peers]]\ncount = 1\n";
    let cases = [
        (format!("{base}bogus = 1\n"), "6", "peers[0].bogus"),
        ("name = \"x\"\n[state]\naccounts = \"many\"\n[[peers]]\n".to_string(), "3", "state.accounts"),
        ("name = \"x\"\n[state]\naccounts = 10\n[[peers]]\ncount = -1\n".to_string(), "5", "peers[0].count"),
        ("name = \"x\"\n[state]\ngenesis = \"missing.json\"\n[[peers]]\n".to_string(), "3", "state.genesis"),
        ("name = \"x\"\n[state]\naccounts = 10\npeers = []\n".to_string(), "", "peers"),
        ("name = \"x\"\n[state]\naccounts = 10\n".to_string(), "", "peers"),
        (
            format!(
                "name = \"x\"\n[state]\ngenesis = \"{}#nope\"\n[[peers]]\n",
                root().join("../shared/fixtures/genesis/basic_genesis_tests.json").display()
            ),
            "3",
            "state.genesis",
        ),
        (
            "name = \"x\"\n[state]\naccounts = 10\n[sync]\nrequest_timeout = \"10us\"\n[[peers]]\n"
                .to_string(),
            "5",
            "sync.request_timeout",
        ),
    ];
    for (body, line, key) in cases {
        let (code, err) = scenario_error(&body);
        assert_eq!(code, Some(2), "{body}\n{err}");
        assert!(err.contains(".toml"), "no file in {err:?}");
        assert!(err.contains(&format!(":{line}")), "no line {line} in {err:?}");
        assert!(err.contains(key), "no key {key} in {err:?}");
    }
}

fn run_report(seed: &str, name: &str) -> serde_json::Value {
    let report = tmp(name);
    let o = bin()
        .args(["run", root().join("scenarios/quickstart.toml").to_str().unwrap(), "--seed", seed, "--report"])
        .arg(&report)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{:?}", text(&o));
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    for k in ["wall_time_ms", "sync_wall_ms", "oracle_root_ms"] {
        v.as_object_mut().unwrap().remove(k);
    }
    v
}

#[test]
fn same_seed_same_trace_in_separate_processes() {
    let a = run_report("7", "det-a.json");
    let b = run_report("7", "det-b.json");
    assert_eq!(a, b, "reports differ between two processes");
    let c = run_report("8", "det-c.json");
    assert_ne!(a["trace_hash"], c["trace_hash"], "a different seed gave the same trace");
}

#[test]
fn run_writes_report_trace_and_plot() {
    let (r, t, p) = (tmp("r.json"), tmp("t.jsonl"), tmp("p.svg"));
    let o = bin()
        .args(["run", root().join("scenarios/one-honest-peer.toml").to_str().unwrap(), "--report"])
        .arg(&r)
        .arg("--trace")
        .arg(&t)
        .arg("--plot")
        .arg(&p)
        .args(["--set", "sync.account_bytes=128KiB"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{:?}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&r).unwrap()).unwrap();
    for key in [
        "scenario",
        "seed",
        "converged",
        "pivot_block",
        "head_block",
        "expected_root",
        "local_root",
        "head_root_ok",
        "virtual_time_ms",
        "wall_time_ms",
        "sync_wall_ms",
        "oracle_root_ms",
        "lower_bound_ms",
        "state",
        "requests",
        "healed_nodes",
        "pivot_moves",
        "crashes",
        "peers",
        "expectations",
        "events",
        "trace_hash",
    ] {
        assert!(v.get(key).is_some(), "report lacks {key}");
    }
    assert_eq!(v["requests"]["trie_nodes"]["sent"], 1, "a clean sync heals exactly the root");
    let lines = std::fs::read_to_string(&t).unwrap();
    assert!(lines.lines().count() as u64 == v["events"].as_u64().unwrap());
    assert!(std::fs::read_to_string(&p).unwrap().starts_with("<svg"));
    let o = bin().args(["run", "x.toml", "--set", "nonsense"]).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
}

/// Inputs the coverage-guided fuzzers found (fuzz/artifacts-found): each once crashed or
/// stalled the node; now each must end with a verdict, never a panic.
#[test]
fn fuzzer_findings_stay_fixed() {
    let dir = root().join("fuzz/artifacts-found");
    for case in
        ["range-proof-hashbuilder-panic-left-edge.json", "range-proof-hashbuilder-panic-right-edge.json"]
    {
        let o = bin().arg("verify-range").arg(dir.join(case)).output().unwrap();
        assert_eq!(o.status.code(), Some(1), "{case}: {:?}", text(&o));
        assert!(text(&o).0.contains(r#""valid":false"#));
    }
    for case in [
        "scenario-request-timeout-200ms.toml",
        "scenario-stateless-forever-one-peer.toml",
        "scenario-stateless-forever-corrupt.toml",
    ] {
        let o = bin().arg("run").arg(dir.join(case)).output().unwrap();
        assert_eq!(o.status.code(), Some(0), "{case}: {:?}", text(&o));
    }
}

/// `--plot` writes a well-formed SVG with one polyline per phase that ran, one file per
/// scenario when several run, and recording it changes neither the trace hash nor any
/// deterministic report field.
#[test]
fn plot_draws_each_phase_and_leaves_the_run_unchanged() {
    let scenario = root().join("scenarios/crashes.toml");
    let run = |plot: Option<&Path>, report: &Path| {
        let mut cmd = bin();
        cmd.args(["run", scenario.to_str().unwrap(), "--quiet", "--report"]).arg(report);
        if let Some(p) = plot {
            cmd.arg("--plot").arg(p);
        }
        let o = cmd.output().unwrap();
        assert_eq!(o.status.code(), Some(0), "{:?}", text(&o));
        let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(report).unwrap()).unwrap();
        for k in ["wall_time_ms", "sync_wall_ms", "oracle_root_ms"] {
            v.as_object_mut().unwrap().remove(k);
        }
        v
    };
    let svg_path = tmp("progress.svg");
    let with = run(Some(&svg_path), &tmp("plot-with.json"));
    let without = run(None, &tmp("plot-without.json"));
    assert_eq!(with["trace_hash"], without["trace_hash"], "--plot changed the trace");
    assert_eq!(with, without, "--plot changed the report");

    let svg = std::fs::read_to_string(&svg_path).unwrap();
    assert_well_formed(&svg);
    assert!(svg.contains("crashes (seed"), "title lacks scenario and seed");
    assert!(svg.contains("PASS"), "title lacks the verdict");
    // the state phases and the staged pipeline all ran in this scenario
    let series: Vec<&str> = svg
        .match_indices("data-series=\"")
        .map(|(i, m)| svg[i + m.len()..].split('"').next().unwrap())
        .collect();
    assert_eq!(svg.matches("<polyline").count(), series.len());
    for phase in ["accounts", "storage", "bytecodes", "headers", "bodies", "execution"] {
        assert_eq!(series.iter().filter(|s| **s == phase).count(), 1, "{phase}: {series:?}");
    }
    assert_eq!(with["crashes"], 2);
    assert!(svg.contains(">crash x2<"), "crash markers missing");
    // every polyline has points, the last at 100% of its scale or below
    for (i, _) in svg.match_indices("points=\"") {
        let pts = svg[i + 8..].split('"').next().unwrap();
        assert!(pts.split(' ').count() >= 2, "a line with fewer than two points");
    }

    // several scenarios: one plot each, numbered from 0
    let multi = tmp("multi.svg");
    let o = bin()
        .args(["run", "--quiet"])
        .arg(root().join("scenarios/one-honest-peer.toml"))
        .arg(root().join("scenarios/one-honest-peer.toml"))
        .arg("--plot")
        .arg(&multi)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{:?}", text(&o));
    for i in 0..2 {
        let p = multi.with_file_name(format!("multi.{i}.svg"));
        assert_well_formed(&std::fs::read_to_string(&p).unwrap());
    }
    assert!(!multi.exists());
}

/// A small XML check: one root `svg` element, every tag closed in order, attributes quoted.
fn assert_well_formed(svg: &str) {
    assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""), "not an SVG");
    let mut open: Vec<&str> = Vec::new();
    let mut rest = svg;
    while let Some(i) = rest.find('<') {
        let j = rest[i..].find('>').expect("unclosed tag") + i;
        let tag = &rest[i + 1..j];
        assert!(!tag.contains('<'), "'<' inside a tag: {tag}");
        assert_eq!(tag.matches('"').count() % 2, 0, "unbalanced quotes: {tag}");
        if let Some(name) = tag.strip_prefix('/') {
            assert_eq!(open.pop(), Some(name), "mismatched </{name}>");
        } else if !tag.ends_with('/') {
            open.push(tag.split_whitespace().next().unwrap());
        }
        rest = &rest[j + 1..];
    }
    assert!(open.is_empty(), "unclosed elements {open:?}");
    assert!(svg.trim_end().ends_with("</svg>"));
}
