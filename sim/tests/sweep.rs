//! `syncsim sweep`: value-list splitting, the grid, the summaries and best choice, the files
//! written, and the binary's output and exit codes.

use std::path::{Path, PathBuf};
use std::process::Command;
use syncsim::report::Requests;
use syncsim::sweep::{
    best, best_line, grid, parse_set, parse_sets, run_grid, split_values, summarize, write_outputs, Axis,
    PointSummary, SweepRun,
};

const TINY: &str = r#"
name = "sweep-tiny"
seed = 9

[state]
accounts = 300

[chain]
blocks = 4

[[peers]]
count = 2
behaviour = "honest"
latency = "20ms..60ms"
bandwidth = "2MiB/s"
"#;

/// A fresh directory holding the tiny scenario.
fn tiny(name: &str) -> (PathBuf, PathBuf) {
    let dir = std::env::temp_dir().join(format!("syncsim-sweep-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("tiny.toml");
    std::fs::write(&path, TINY).unwrap();
    (dir, path)
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn axis(key: &str, values: &[&str]) -> Axis {
    Axis { key: key.into(), values: strings(values) }
}

#[test]
fn values_split_on_top_level_commas_only() {
    assert_eq!(split_values("16KiB,256KiB").unwrap(), strings(&["16KiB", "256KiB"]));
    assert_eq!(split_values(" 1 , 2,3 ").unwrap(), strings(&["1", "2", "3"]));
    assert_eq!(split_values("0.05").unwrap(), strings(&["0.05"]));
    assert_eq!(
        split_values(r#"{ median = "80ms", p99 = "1s" },50ms..200ms"#).unwrap(),
        strings(&[r#"{ median = "80ms", p99 = "1s" }"#, "50ms..200ms"])
    );
    assert_eq!(
        split_values(r#"["slow", "starving"],honest,{ a = [1, 2], b = { c = 3 } }"#).unwrap(),
        strings(&[r#"["slow", "starving"]"#, "honest", "{ a = [1, 2], b = { c = 3 } }"])
    );
    // Commas and brackets inside quotes are text.
    assert_eq!(
        split_values(r#""a,b","c]\",d",'e,{f'"#).unwrap(),
        strings(&[r#""a,b""#, r#""c]\",d""#, "'e,{f'"])
    );
    for bad in ["1,,2", "1,", ",1", "", "{ a = 1", "[1, 2]]", "[1}", "\"open"] {
        assert!(split_values(bad).is_err(), "{bad:?} should be rejected");
    }
}

#[test]
fn set_arguments_parse_into_axes() {
    assert_eq!(
        parse_set("peers[0].latency={ median = \"80ms\", p99 = \"1s\" },50ms").unwrap(),
        axis("peers[0].latency", &["{ median = \"80ms\", p99 = \"1s\" }", "50ms"])
    );
    assert_eq!(parse_set(" sync.concurrency =4,16").unwrap(), axis("sync.concurrency", &["4", "16"]));
    assert!(parse_set("novalue").is_err());
    let e = parse_sets(&strings(&["a=1,2", "b=3", "a=4"])).unwrap_err();
    assert!(e.contains("--set a=4") && e.contains("twice"), "{e}");
    let e = parse_sets(&strings(&["a=1,,2"])).unwrap_err();
    assert!(e.contains("--set a=1,,2"), "{e}");
}

#[test]
fn several_keys_make_the_product() {
    let g = grid(&[axis("a", &["1", "2", "3"]), axis("b", &["x", "y"])]);
    let shown: Vec<String> =
        g.iter().map(|p| p.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" ")).collect();
    assert_eq!(shown, ["a=1 b=x", "a=1 b=y", "a=2 b=x", "a=2 b=y", "a=3 b=x", "a=3 b=y"]);
    assert_eq!(grid(&[axis("a", &["1", "2"])]).len(), 2);
    assert_eq!(grid(&[]), vec![Vec::new()]);
}

fn point(value: &str, times: &[u64], converged: &[bool]) -> Vec<SweepRun> {
    times
        .iter()
        .zip(converged)
        .enumerate()
        .map(|(i, (&t, &c))| SweepRun {
            params: vec![("k".into(), value.into())],
            seed: i as u64,
            converged: c,
            passed: c,
            virtual_time_ms: t,
            lower_bound_ms: 100,
            efficiency: 100.0 / t as f64,
            requests: Requests::default(),
            requests_total: t / 10,
            wall_time_ms: 1,
        })
        .collect()
}

#[test]
fn best_is_the_lowest_median_among_fully_converged_points() {
    let mut runs = point("slow", &[3000, 1000, 2000], &[true; 3]);
    runs.extend(point("fast-but-flaky", &[500, 600, 700], &[true, false, true]));
    runs.extend(point("steady", &[1600, 1400, 1500], &[true; 3]));
    runs.extend(point("even", &[1200, 1800, 1300, 1900], &[true; 4]));
    let points = summarize(&runs);
    assert_eq!(points.len(), 4);
    let slow = &points[0];
    assert_eq!((slow.runs, slow.converged, slow.min_ms, slow.max_ms), (3, 3, 1000, 3000));
    assert_eq!(slow.median_ms, 2000.0);
    assert_eq!(slow.median_requests, 200.0);
    assert_eq!(points[3].median_ms, 1550.0, "an even count takes the mean of the middle two");
    assert!(!points[1].all_converged());
    assert_eq!(best(&points), Some(2), "{points:?}");
    assert_eq!(best_line(&points), "best: k=steady (median 1.500 s over 3 seeds)");

    // Ties go to the first; nothing fully converged gives none.
    let tie = summarize(&[point("a", &[1000], &[true]), point("b", &[1000], &[true])].concat());
    assert_eq!(best(&tie), Some(0));
    let none: Vec<PointSummary> = summarize(&point("x", &[10, 20], &[false, true]));
    assert_eq!(best(&none), None);
    assert!(best_line(&none).starts_with("best: none"), "{}", best_line(&none));
}

#[test]
fn sweep_runs_the_grid_and_writes_the_files() {
    let (dir, path) = tiny("files");
    let axes = vec![axis("sync.account_bytes", &["16KiB", "256KiB"]), axis("sync.concurrency", &["2", "8"])];
    let mut lines = Vec::new();
    let runs = run_grid(&path, &axes, 2, None, &mut |l| lines.push(l.to_string())).unwrap();
    assert_eq!(runs.len(), 8);
    assert_eq!(lines.len(), 8, "one progress line per run");
    assert!(lines[0].starts_with("[1/8] sync.account_bytes=16KiB, sync.concurrency=2 seed 9"), "{lines:?}");
    let seeds: Vec<u64> = runs.iter().map(|r| r.seed).collect();
    assert_eq!(seeds, [9, 10, 9, 10, 9, 10, 9, 10], "seeds are the scenario's plus 0..N");
    assert_eq!(
        runs[2].params,
        vec![("sync.account_bytes".into(), "16KiB".into()), ("sync.concurrency".into(), "8".into())]
    );
    assert!(runs.iter().all(|r| r.converged && r.virtual_time_ms > 0 && r.requests_total > 0));

    // Deterministic: the same point and seed give the same run.
    let again = run_grid(&path, &axes, 1, Some(9), &mut |_| {}).unwrap();
    assert_eq!(again[0].virtual_time_ms, runs[0].virtual_time_ms);
    assert_eq!(again[0].requests_total, runs[0].requests_total);

    let out = dir.join("out/nested");
    write_outputs(&out, "sweep-tiny", &axes, &runs).unwrap();

    let csv = std::fs::read_to_string(out.join("sweep.csv")).unwrap();
    let rows: Vec<&str> = csv.lines().collect();
    assert_eq!(rows.len(), 1 + 8);
    assert_eq!(
        rows[0],
        "sync.account_bytes,sync.concurrency,seed,converged,virtual_time_ms,lower_bound_ms,efficiency,\
         requests_total,wall_time_ms"
    );
    assert!(rows[1].starts_with("16KiB,2,9,true,"), "{}", rows[1]);
    assert!(rows.iter().all(|r| r.split(',').count() == 9));

    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("sweep.json")).unwrap()).unwrap();
    let list = json.as_array().expect("a list");
    assert_eq!(list.len(), 8);
    for (o, r) in list.iter().zip(&runs) {
        for field in ["params", "seed", "converged", "virtual_time_ms", "efficiency", "requests"] {
            assert!(o.get(field).is_some(), "missing {field}: {o}");
        }
        assert_eq!(o["seed"], r.seed);
        assert_eq!(o["virtual_time_ms"], r.virtual_time_ms);
        assert!(o["requests"]["account_range"]["sent"].as_u64().unwrap() > 0, "{o}");
    }
    assert_eq!(
        list[3]["params"],
        serde_json::json!({"sync.account_bytes": "16KiB", "sync.concurrency": "8"})
    );

    let svg = std::fs::read_to_string(out.join("sweep.svg")).unwrap();
    assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""), "{}", &svg[..80]);
    assert!(svg.trim_end().ends_with("</svg>"));
    assert!(svg.contains("virtual sync time (s)"));
    assert!(svg.contains("sync.account_bytes=256KiB,") && svg.contains("sync.concurrency=8"));
    assert_eq!(svg.matches("<circle").count(), 8 + 1, "a dot per run and the legend's");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_bad_key_or_value_names_the_set() {
    let (dir, path) = tiny("bad");
    let e = run_grid(&path, &[axis("sync.no_such_key", &["1", "2"])], 1, None, &mut |_| {}).unwrap_err();
    assert!(e.contains("--set sync.no_such_key=1"), "{e}");
    let e =
        run_grid(&path, &[axis("sync.account_bytes", &["16KiB", "lots"])], 1, None, &mut |_| {}).unwrap_err();
    assert!(e.contains("--set sync.account_bytes=lots"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_syncsim"))
}

fn exists(p: &Path) -> bool {
    std::fs::metadata(p).is_ok_and(|m| m.len() > 0)
}

#[test]
fn the_binary_prints_the_table_and_the_best_setting() {
    let (dir, path) = tiny("bin");
    let out = dir.join("out");
    let o = bin()
        .arg("sweep")
        .arg(&path)
        .args(["--set", "sync.account_bytes=16KiB,256KiB", "--seeds", "2", "--seed", "11", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert_eq!(o.status.code(), Some(0), "{stdout}\n{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines[0].starts_with("sync.account_bytes") && lines[0].contains("median s"), "{stdout}");
    assert!(lines[1].starts_with("16KiB ") && lines[2].starts_with("256KiB "), "{stdout}");
    let best = lines.iter().find(|l| l.starts_with("best: ")).expect("a best: line");
    assert!(best.starts_with("best: sync.account_bytes=") && best.ends_with("over 2 seeds)"), "{best}");
    assert_eq!(stderr.lines().filter(|l| l.starts_with('[')).count(), 4, "{stderr}");
    for f in ["sweep.csv", "sweep.json", "sweep.svg"] {
        assert!(exists(&out.join(f)), "{f} missing");
    }
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("sweep.json")).unwrap()).unwrap();
    let seeds: Vec<u64> = json.as_array().unwrap().iter().map(|o| o["seed"].as_u64().unwrap()).collect();
    assert_eq!(seeds, [11, 12, 11, 12]);

    let o =
        bin().arg("sweep").arg(&path).args(["--set", "sync.nope=1,2", "--out"]).arg(&out).output().unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--set sync.nope=1"), "{stderr}");
    let o =
        bin().arg("sweep").arg(&path).args(["--set", "sync.concurrency=4", "--seeds", "0"]).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    let _ = std::fs::remove_dir_all(&dir);
}
