//! `syncsim sweep`: runs a scenario over a grid of `--set KEY=V1,V2,...` values and several
//! seeds, writes `sweep.csv`, `sweep.json` and `sweep.svg`, and prints a table with the best
//! setting.
//!
//! Runs are independent and deterministic, so they run one after another: the same grid and
//! seeds give the same results (wall times aside).

use crate::cli::{EXIT_FAILED, EXIT_OK, EXIT_USAGE};
use crate::report::Requests;
use crate::runner::{run, RunOptions};
use crate::scenario::{parse_override, Location, Scenario};
use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;
use std::fmt::Write as _;
use std::path::Path;

/// One swept key and its values, in the order given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Axis {
    /// Dotted scenario key, e.g. `sync.account_bytes`.
    pub key: String,
    /// Values as written, e.g. `["16KiB", "256KiB"]`.
    pub values: Vec<String>,
}

/// Splits a value list on the commas outside brackets, braces and quotes, trimming each value:
/// `16KiB, 256KiB` gives two values, `{ median = "80ms", p99 = "1s" },50ms` too.
pub fn split_values(list: &str) -> Result<Vec<String>, String> {
    let mut values = Vec::new();
    let mut depth: Vec<char> = Vec::new();
    let mut quote: Option<char> = None;
    let mut escaped = false;
    let mut start = 0;
    for (i, c) in list.char_indices() {
        if let Some(q) = quote {
            if escaped {
                escaped = false;
            } else if c == '\\' && q == '"' {
                escaped = true;
            } else if c == q {
                quote = None;
            }
            continue;
        }
        match c {
            '"' | '\'' => quote = Some(c),
            '[' | '{' => depth.push(c),
            ']' | '}' => {
                let open = if c == ']' { '[' } else { '{' };
                if depth.pop() != Some(open) {
                    return Err(format!("unbalanced '{c}' in {list:?}"));
                }
            }
            ',' if depth.is_empty() => {
                values.push(list[start..i].trim().to_string());
                start = i + 1;
            }
            _ => {}
        }
    }
    if let Some(q) = quote {
        return Err(format!("unterminated {q} quote in {list:?}"));
    }
    if let Some(open) = depth.last() {
        return Err(format!("unclosed '{open}' in {list:?}"));
    }
    values.push(list[start..].trim().to_string());
    if values.iter().any(|v| v.is_empty()) {
        return Err(format!("empty value in {list:?} (write \"\" for an empty string)"));
    }
    Ok(values)
}

/// Parses one `--set KEY=V1,V2,...` argument.
pub fn parse_set(arg: &str) -> Result<Axis, String> {
    let (key, list) = parse_override(arg)?;
    Ok(Axis { key, values: split_values(&list)? })
}

/// Parses every `--set` argument; a key may be swept only once.
pub fn parse_sets(args: &[String]) -> Result<Vec<Axis>, String> {
    let mut axes: Vec<Axis> = Vec::new();
    for arg in args {
        let axis = parse_set(arg).map_err(|e| format!("--set {arg}: {e}"))?;
        if axes.iter().any(|a| a.key == axis.key) {
            return Err(format!("--set {arg}: key '{}' is swept twice", axis.key));
        }
        axes.push(axis);
    }
    Ok(axes)
}

/// The cartesian product of the axes: one list of `(KEY, VALUE)` overrides per grid point,
/// the first key varying slowest. No axes give one point with no overrides.
pub fn grid(axes: &[Axis]) -> Vec<Vec<(String, String)>> {
    let mut points: Vec<Vec<(String, String)>> = vec![Vec::new()];
    for axis in axes {
        points = points
            .iter()
            .flat_map(|p| {
                axis.values.iter().map(move |v| {
                    let mut q = p.clone();
                    q.push((axis.key.clone(), v.clone()));
                    q
                })
            })
            .collect()
    }
    points
}

/// `k1=v1, k2=v2`: how a grid point is shown.
pub fn label(params: &[(String, String)]) -> String {
    if params.is_empty() {
        return "(as written)".to_string();
    }
    params.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(", ")
}

/// One run of the sweep: a `sweep.json` entry and a `sweep.csv` row.
#[derive(Debug, Clone, Serialize)]
pub struct SweepRun {
    /// The grid point: `{KEY: value as written}`, in `--set` order.
    #[serde(serialize_with = "ordered_map")]
    pub params: Vec<(String, String)>,
    /// Seed of this run.
    pub seed: u64,
    /// The node's root matched the oracle's.
    pub converged: bool,
    /// Every expectation of the scenario held.
    pub passed: bool,
    /// Virtual time of the run.
    pub virtual_time_ms: u64,
    /// The bandwidth/latency lower bound.
    pub lower_bound_ms: u64,
    /// lower_bound_ms / virtual_time_ms.
    pub efficiency: f64,
    /// Requests by kind, as in the run report.
    pub requests: Requests,
    /// Requests sent over all kinds.
    pub requests_total: u64,
    /// Wall time of the run.
    pub wall_time_ms: u64,
}

fn ordered_map<S: Serializer>(params: &[(String, String)], s: S) -> Result<S::Ok, S::Error> {
    let mut m = s.serialize_map(Some(params.len()))?;
    for (k, v) in params {
        m.serialize_entry(k, v)?;
    }
    m.end()
}

/// Runs every grid point with seeds `base + 0..seeds`, where `base` is `seed` or else the
/// point's scenario seed. Every point is loaded before anything runs, so a bad key or value
/// fails at once; the error names the `--set`. `progress` gets one line per run.
pub fn run_grid(
    path: &Path,
    axes: &[Axis],
    seeds: u32,
    seed: Option<u64>,
    progress: &mut dyn FnMut(&str),
) -> Result<Vec<SweepRun>, String> {
    let points = grid(axes);
    let mut scenarios = Vec::with_capacity(points.len());
    for point in &points {
        let sc = Scenario::load_with_overrides(path, point).map_err(|e| {
            if matches!(e.location, Location::Override(_)) || point.is_empty() {
                e.to_string()
            } else {
                let sets: Vec<String> = point.iter().map(|(k, v)| format!("--set {k}={v}")).collect();
                format!("{e} (with {})", sets.join(" "))
            }
        })?;
        scenarios.push(sc);
    }
    let total = points.len() * seeds as usize;
    let mut runs = Vec::with_capacity(total);
    for (point, sc) in points.iter().zip(&scenarios) {
        let base = seed.unwrap_or(sc.seed);
        for i in 0..u64::from(seeds) {
            let s = base.wrapping_add(i);
            let r = run(sc, &RunOptions { seed: Some(s), ..Default::default() })
                .map_err(|e| format!("{}: {}: {e}", path.display(), label(point)))?;
            let done = runs.len() + 1;
            progress(&format!(
                "[{done}/{total}] {} seed {s}: {} in {:.3} s virtual ({} ms wall)",
                label(point),
                if r.converged { "converged" } else { "NOT converged" },
                r.virtual_time_ms as f64 / 1000.0,
                r.wall_time_ms
            ));
            runs.push(SweepRun {
                params: point.clone(),
                seed: s,
                converged: r.converged,
                passed: r.passed(),
                virtual_time_ms: r.virtual_time_ms,
                lower_bound_ms: r.lower_bound_ms,
                efficiency: r.efficiency,
                requests_total: r.requests.total_sent(),
                requests: r.requests,
                wall_time_ms: r.wall_time_ms,
            });
        }
    }
    Ok(runs)
}

/// The runs of one grid point, summarised.
#[derive(Debug, Clone, PartialEq)]
pub struct PointSummary {
    /// The grid point.
    pub params: Vec<(String, String)>,
    /// Runs (seeds).
    pub runs: usize,
    /// Runs that converged.
    pub converged: usize,
    /// Median virtual time (ms) over the seeds.
    pub median_ms: f64,
    /// Least virtual time (ms).
    pub min_ms: u64,
    /// Greatest virtual time (ms).
    pub max_ms: u64,
    /// Median efficiency.
    pub median_efficiency: f64,
    /// Median requests sent.
    pub median_requests: f64,
    /// Median lower bound (ms).
    pub median_lower_bound_ms: f64,
}

impl PointSummary {
    /// Every seed converged.
    pub fn all_converged(&self) -> bool {
        self.runs > 0 && self.converged == self.runs
    }
}

/// The median (mean of the middle two for an even count); 0 for none.
pub fn median(values: &[f64]) -> f64 {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| !x.is_nan()).collect();
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Groups the runs by grid point, in the order the points first appear.
pub fn summarize(runs: &[SweepRun]) -> Vec<PointSummary> {
    let mut order: Vec<&Vec<(String, String)>> = Vec::new();
    for r in runs {
        if !order.contains(&&r.params) {
            order.push(&r.params);
        }
    }
    order
        .into_iter()
        .map(|params| {
            let rs: Vec<&SweepRun> = runs.iter().filter(|r| &r.params == params).collect();
            let of = |f: &dyn Fn(&SweepRun) -> f64| median(&rs.iter().map(|r| f(r)).collect::<Vec<_>>());
            PointSummary {
                params: params.clone(),
                runs: rs.len(),
                converged: rs.iter().filter(|r| r.converged).count(),
                median_ms: of(&|r| r.virtual_time_ms as f64),
                min_ms: rs.iter().map(|r| r.virtual_time_ms).min().unwrap_or(0),
                max_ms: rs.iter().map(|r| r.virtual_time_ms).max().unwrap_or(0),
                median_efficiency: of(&|r| r.efficiency),
                median_requests: of(&|r| r.requests_total as f64),
                median_lower_bound_ms: of(&|r| r.lower_bound_ms as f64),
            }
        })
        .collect()
}

/// The point with the least median virtual time among those where every seed converged (the
/// first of equals); `None` if no point converged on every seed.
pub fn best(points: &[PointSummary]) -> Option<usize> {
    let mut best: Option<usize> = None;
    for (i, p) in points.iter().enumerate() {
        if p.all_converged() && best.is_none_or(|b| p.median_ms < points[b].median_ms) {
            best = Some(i);
        }
    }
    best
}

fn secs(ms: f64) -> String {
    format!("{:.3}", ms / 1000.0)
}

/// The table printed to stdout: one row per grid point.
pub fn table(axes: &[Axis], points: &[PointSummary]) -> String {
    let mut head: Vec<String> = axes.iter().map(|a| a.key.clone()).collect();
    let nkeys = head.len();
    head.extend(
        ["runs", "converged", "median s", "min s", "max s", "efficiency", "requests"].map(String::from),
    );
    let rows: Vec<Vec<String>> = points
        .iter()
        .map(|p| {
            let mut row: Vec<String> = p.params.iter().map(|(_, v)| v.clone()).collect();
            row.extend([
                p.runs.to_string(),
                format!("{}/{}", p.converged, p.runs),
                secs(p.median_ms),
                secs(p.min_ms as f64),
                secs(p.max_ms as f64),
                format!("{:.3}", p.median_efficiency),
                format!("{:.0}", p.median_requests),
            ]);
            row
        })
        .collect();
    let widths: Vec<usize> = (0..head.len())
        .map(|c| {
            rows.iter().map(|r| r[c].chars().count()).chain([head[c].chars().count()]).max().unwrap_or(0)
        })
        .collect();
    let line = |cells: &[String]| {
        let mut s = String::new();
        for (c, cell) in cells.iter().enumerate() {
            let pad = widths[c] - cell.chars().count();
            if c > 0 {
                s.push_str("  ");
            }
            // The swept values read left-aligned, the numbers right-aligned.
            if c < nkeys {
                s.push_str(cell);
                s.push_str(&" ".repeat(pad));
            } else {
                s.push_str(&" ".repeat(pad));
                s.push_str(cell);
            }
        }
        s.trim_end().to_string() + "\n"
    };
    let mut out = line(&head);
    for r in &rows {
        out += &line(r);
    }
    out
}

/// The `best:` line.
pub fn best_line(points: &[PointSummary]) -> String {
    match best(points) {
        Some(i) => {
            let p = &points[i];
            format!(
                "best: {} (median {} s over {} seed{})",
                label(&p.params),
                secs(p.median_ms),
                p.runs,
                if p.runs == 1 { "" } else { "s" }
            )
        }
        None => "best: none (no setting converged on every seed)".to_string(),
    }
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// `sweep.csv`: one row per run.
pub fn csv(axes: &[Axis], runs: &[SweepRun]) -> String {
    let mut head: Vec<String> = axes.iter().map(|a| csv_field(&a.key)).collect();
    head.extend(
        [
            "seed",
            "converged",
            "virtual_time_ms",
            "lower_bound_ms",
            "efficiency",
            "requests_total",
            "wall_time_ms",
        ]
        .map(String::from),
    );
    let mut s = head.join(",") + "\n";
    for r in runs {
        let mut row: Vec<String> = r.params.iter().map(|(_, v)| csv_field(v)).collect();
        row.extend([
            r.seed.to_string(),
            r.converged.to_string(),
            r.virtual_time_ms.to_string(),
            r.lower_bound_ms.to_string(),
            format!("{:.6}", r.efficiency),
            r.requests_total.to_string(),
            r.wall_time_ms.to_string(),
        ]);
        s += &(row.join(",") + "\n");
    }
    s
}

/// Writes `sweep.csv`, `sweep.json` and `sweep.svg` into `dir`, creating it if missing.
pub fn write_outputs(dir: &Path, title: &str, axes: &[Axis], runs: &[SweepRun]) -> Result<(), String> {
    let err = |p: &Path, e: &dyn std::fmt::Display| format!("cannot write {}: {e}", p.display());
    std::fs::create_dir_all(dir).map_err(|e| err(dir, &e))?;
    let json = serde_json::to_string_pretty(runs).map_err(|e| err(&dir.join("sweep.json"), &e))? + "\n";
    let points = summarize(runs);
    for (name, text) in [
        ("sweep.csv", csv(axes, runs)),
        ("sweep.json", json),
        ("sweep.svg", sweep_svg(title, axes, runs, &points)),
    ] {
        let p = dir.join(name);
        std::fs::write(&p, text).map_err(|e| err(&p, &e))?;
    }
    Ok(())
}

/// `syncsim sweep SCENARIO.toml --set KEY=V1,V2,... [--seeds N] [--seed S] [--out DIR]`;
/// returns the exit code.
pub fn main(scenario: &Path, set: &[String], seeds: u32, seed: Option<u64>, out: &Path) -> i32 {
    if seeds == 0 {
        eprintln!("error: --seeds must be at least 1");
        return EXIT_USAGE;
    }
    let axes = match parse_sets(set) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_USAGE;
        }
    };
    let runs = match run_grid(scenario, &axes, seeds, seed, &mut |line| eprintln!("{line}")) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_USAGE;
        }
    };
    let name = Scenario::load(scenario).map(|s| s.name).unwrap_or_else(|_| scenario.display().to_string());
    if let Err(e) = write_outputs(out, &name, &axes, &runs) {
        eprintln!("error: {e}");
        return EXIT_USAGE;
    }
    let points = summarize(&runs);
    print!("{}", table(&axes, &points));
    println!("{}", best_line(&points));
    eprintln!(
        "wrote {}",
        ["sweep.csv", "sweep.json", "sweep.svg"].map(|f| out.join(f).display().to_string()).join(", ")
    );
    if best(&points).is_some() {
        EXIT_OK
    } else {
        EXIT_FAILED
    }
}

// ------------------------------------------------------------------------------------ SVG

fn xml(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// Approximate width in pixels of `s` in a sans-serif font of size `px`.
fn text_width(s: &str, px: f64) -> f64 {
    s.chars().count() as f64 * px * 0.6
}

/// A "nice" tick step (1, 2 or 5 times a power of ten) for about five ticks up to `max`.
fn nice_step(max: f64) -> f64 {
    let raw = (max / 5.0).max(1e-9);
    let mag = 10f64.powf(raw.log10().floor());
    let f = raw / mag;
    let m = if f <= 1.0 {
        1.0
    } else if f <= 2.0 {
        2.0
    } else if f <= 5.0 {
        5.0
    } else {
        10.0
    };
    m * mag
}

/// Shortens a label to `max` characters with an ellipsis.
fn clip(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        s.chars().take(max - 1).collect::<String>() + "…"
    }
}

/// `sweep.svg`: virtual sync time by setting. One x category per grid point (the values of a
/// single key, or `k1=v1, k2=v2`), each seed's run a dot (hollow red if it did not converge),
/// the median a bar (joined across values for a single key), the lower bound a dashed bar, and
/// the best setting shaded.
pub fn sweep_svg(title: &str, axes: &[Axis], runs: &[SweepRun], points: &[PointSummary]) -> String {
    const BLUE: &str = "#4e79a7";
    const RED: &str = "#e15759";
    let single = axes.len() == 1;
    // An x label per category: the value of a single key, else `k1=v1, k2=v2`, set one
    // `k=v` per line while that stays narrow, else on one line turned by 35 degrees.
    let label_px = 11.0;
    let line_h = 14.0;
    let n = points.len().max(1);
    let stacked: Vec<Vec<String>> = points
        .iter()
        .map(|p| {
            if p.params.is_empty() {
                vec![label(&p.params)]
            } else if single {
                vec![clip(&p.params[0].1, 60)]
            } else {
                let last = p.params.len().saturating_sub(1);
                p.params
                    .iter()
                    .enumerate()
                    .map(|(j, (k, v))| clip(&format!("{k}={v}{}", if j < last { "," } else { "" }), 60))
                    .collect()
            }
        })
        .collect();
    let widest_line = stacked.iter().flatten().map(|l| text_width(l, label_px)).fold(0.0, f64::max);
    let rotate = widest_line + 12.0 > 220.0 || (widest_line + 12.0) * n as f64 > 1600.0;
    let labels: Vec<Vec<String>> = if rotate && !single {
        points.iter().map(|p| vec![clip(&label(&p.params), 80)]).collect()
    } else {
        stacked
    };
    let widest = labels.iter().flatten().map(|l| text_width(l, label_px)).fold(0.0, f64::max);
    let lines = labels.iter().map(Vec::len).max().unwrap_or(1) as f64;

    // Horizontal layout: a slot per category, wide enough for its label unless turned.
    let slot = if rotate { 48.0_f64 } else { (widest + 12.0).max(64.0) }.max(360.0 / n as f64);
    let (sin, cos) = (35f64.to_radians().sin(), 35f64.to_radians().cos());
    // Turned labels hang left of their tick: the first must not run off the picture.
    let left = if rotate { (widest * cos - slot / 2.0 + 12.0).max(72.0) } else { 72.0 };
    let (right, top) = (150.0, 66.0);
    let plot_w = slot * n as f64;
    let plot_h = 320.0;
    let label_drop = if rotate { widest * sin + 20.0 } else { 6.0 + line_h * lines };
    let bottom = label_drop + 44.0;
    let keys = axes.iter().map(|a| a.key.as_str()).collect::<Vec<_>>().join(" × ");
    let heading =
        format!("{title}: virtual sync time by {}", if keys.is_empty() { "setting" } else { &keys });
    let seeds = points.iter().map(|p| p.runs).max().unwrap_or(0);
    let sub = format!(
        "{} setting{}, {seeds} seed{} each; dot = one run, bar = median",
        points.len(),
        if points.len() == 1 { "" } else { "s" },
        if seeds == 1 { "" } else { "s" }
    );
    let width = (left + plot_w + right).max(left + text_width(&heading, 15.0) * 1.1 + 20.0).ceil();
    let height = (top + plot_h + bottom).ceil();
    let (x0, y0) = (left, top + plot_h); // origin: bottom-left of the plot area

    // Vertical scale, in seconds.
    let max_s = runs
        .iter()
        .map(|r| r.virtual_time_ms.max(r.lower_bound_ms) as f64 / 1000.0)
        .fold(0.0, f64::max)
        .max(1e-3);
    let step = nice_step(max_s * 1.05);
    let top_s = (max_s * 1.05 / step).ceil() * step;
    let decimals = (-step.log10().floor()).max(0.0) as usize;
    let y = |s: f64| y0 - s / top_s * plot_h;
    let cx = |i: usize| x0 + slot * (i as f64 + 0.5);

    let mut s = String::new();
    let _ = writeln!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" \
         viewBox=\"0 0 {width} {height}\" font-family=\"sans-serif\" font-size=\"12\">"
    );
    let _ = writeln!(s, "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>");
    let _ = writeln!(
        s,
        "<text x=\"{left}\" y=\"24\" font-size=\"15\" font-weight=\"bold\">{}</text>",
        xml(&heading)
    );
    let _ = writeln!(s, "<text x=\"{left}\" y=\"44\" fill=\"#555\">{}</text>", xml(&sub));

    // The best setting, shaded behind everything else.
    let best_i = best(points);
    if let Some(b) = best_i {
        let _ = writeln!(
            s,
            "<rect x=\"{:.1}\" y=\"{top}\" width=\"{slot:.1}\" height=\"{plot_h}\" fill=\"#e6f4ea\"/>",
            x0 + slot * b as f64
        );
    }

    // Y axis: grid lines, ticks and labels.
    let ticks = (top_s / step).round() as usize;
    for t in 0..=ticks {
        let v = step * t as f64;
        let yy = y(v);
        let _ = writeln!(
            s,
            "<line x1=\"{x0}\" y1=\"{yy:.1}\" x2=\"{:.1}\" y2=\"{yy:.1}\" stroke=\"#e4e4e4\"/>\
             <line x1=\"{:.1}\" y1=\"{yy:.1}\" x2=\"{x0}\" y2=\"{yy:.1}\" stroke=\"#333\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{v:.decimals$}</text>",
            x0 + plot_w,
            x0 - 5.0,
            x0 - 8.0,
            yy + 4.0
        );
    }
    let _ = writeln!(
        s,
        "<text transform=\"translate({:.1} {:.1}) rotate(-90)\" text-anchor=\"middle\">virtual sync time (s)</text>",
        x0 - 54.0,
        top + plot_h / 2.0
    );

    // Medians joined across the values of a single key.
    if single && points.len() > 1 {
        let pts: Vec<String> = points
            .iter()
            .enumerate()
            .map(|(i, p)| format!("{:.1},{:.1}", cx(i), y(p.median_ms / 1000.0)))
            .collect();
        let _ = writeln!(s, "<polyline points=\"{}\" fill=\"none\" stroke=\"#999\"/>", pts.join(" "));
    }

    for (i, p) in points.iter().enumerate() {
        let c = cx(i);
        let half = (slot * 0.28).min(28.0);
        // Lower bound.
        let lb = y(p.median_lower_bound_ms / 1000.0);
        let _ = writeln!(
            s,
            "<line x1=\"{:.1}\" y1=\"{lb:.1}\" x2=\"{:.1}\" y2=\"{lb:.1}\" stroke=\"#777\" stroke-width=\"1.5\" \
             stroke-dasharray=\"4 3\"/>",
            c - half,
            c + half
        );
        // One dot per seed, spread sideways so equal times stay visible.
        let rs: Vec<&SweepRun> = runs.iter().filter(|r| r.params == p.params).collect();
        let spacing = if rs.len() > 1 { (slot * 0.4 / (rs.len() - 1) as f64).min(7.0) } else { 0.0 };
        for (j, r) in rs.iter().enumerate() {
            let dx = (j as f64 - (rs.len() - 1) as f64 / 2.0) * spacing;
            let (fill, stroke) = if r.converged { (BLUE, BLUE) } else { ("white", RED) };
            let _ = writeln!(
                s,
                "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"4\" fill=\"{fill}\" fill-opacity=\"0.75\" stroke=\"{stroke}\" \
                 stroke-width=\"1.5\"><title>seed {}: {:.3} s{}</title></circle>",
                c + dx,
                y(r.virtual_time_ms as f64 / 1000.0),
                r.seed,
                r.virtual_time_ms as f64 / 1000.0,
                if r.converged { "" } else { " (not converged)" }
            );
        }
        // Median.
        let m = y(p.median_ms / 1000.0);
        let _ = writeln!(
            s,
            "<line x1=\"{:.1}\" y1=\"{m:.1}\" x2=\"{:.1}\" y2=\"{m:.1}\" stroke=\"#222\" stroke-width=\"2.5\">\
             <title>median {:.3} s</title></line>",
            c - half,
            c + half,
            p.median_ms / 1000.0
        );
        // X tick and label.
        let ly = y0 + 16.0;
        let _ = writeln!(
            s,
            "<line x1=\"{c:.1}\" y1=\"{y0}\" x2=\"{c:.1}\" y2=\"{:.1}\" stroke=\"#333\"/>",
            y0 + 5.0
        );
        let weight = if best_i == Some(i) { " font-weight=\"bold\"" } else { "" };
        if rotate {
            let _ = writeln!(
                s,
                "<text x=\"{c:.1}\" y=\"{ly:.1}\" font-size=\"{label_px}\" text-anchor=\"end\"{weight} \
                 transform=\"rotate(-35 {c:.1} {ly:.1})\">{}</text>",
                xml(&labels[i][0])
            );
        } else {
            let _ = write!(s, "<text y=\"{ly:.1}\" font-size=\"{label_px}\" text-anchor=\"middle\"{weight}>");
            for (j, l) in labels[i].iter().enumerate() {
                let dy = if j == 0 { 0.0 } else { line_h };
                let _ = write!(s, "<tspan x=\"{c:.1}\" dy=\"{dy}\">{}</tspan>", xml(l));
            }
            let _ = writeln!(s, "</text>");
        }
    }

    // Axes.
    let _ = writeln!(
        s,
        "<line x1=\"{x0}\" y1=\"{top}\" x2=\"{x0}\" y2=\"{y0}\" stroke=\"#333\"/>\
         <line x1=\"{x0}\" y1=\"{y0}\" x2=\"{:.1}\" y2=\"{y0}\" stroke=\"#333\"/>",
        x0 + plot_w
    );
    let xtitle = if single { axes[0].key.clone() } else { "setting".to_string() };
    let _ = writeln!(
        s,
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
        x0 + plot_w / 2.0,
        y0 + label_drop + 26.0,
        xml(&xtitle)
    );

    // Legend, right of the plot.
    let lx = x0 + plot_w + 20.0;
    let ly = |k: usize| top + 8.0 + 22.0 * k as f64;
    let (dot, bar_end) = (lx + 10.0, lx + 20.0);
    let mut legend: Vec<(String, &str)> = Vec::new();
    legend.push((
        format!(
            "<circle cx=\"{dot:.1}\" cy=\"{:.1}\" r=\"4\" fill=\"{BLUE}\" fill-opacity=\"0.75\"/>",
            ly(0)
        ),
        "run (one seed)",
    ));
    if runs.iter().any(|r| !r.converged) {
        legend.push((
            format!(
                "<circle cx=\"{dot:.1}\" cy=\"{:.1}\" r=\"4\" fill=\"white\" stroke=\"{RED}\" stroke-width=\"1.5\"/>",
                ly(legend.len())
            ),
            "not converged",
        ));
    }
    let yy = ly(legend.len());
    legend.push((
        format!(
            "<line x1=\"{lx:.1}\" y1=\"{yy:.1}\" x2=\"{bar_end:.1}\" y2=\"{yy:.1}\" stroke=\"#222\" stroke-width=\"2.5\"/>"
        ),
        "median",
    ));
    let yy = ly(legend.len());
    legend.push((
        format!(
            "<line x1=\"{lx:.1}\" y1=\"{yy:.1}\" x2=\"{bar_end:.1}\" y2=\"{yy:.1}\" stroke=\"#777\" \
             stroke-width=\"1.5\" stroke-dasharray=\"4 3\"/>"
        ),
        "lower bound",
    ));
    if best_i.is_some() {
        legend.push((
            format!(
                "<rect x=\"{lx:.1}\" y=\"{:.1}\" width=\"20\" height=\"12\" fill=\"#e6f4ea\"/>",
                ly(legend.len()) - 6.0
            ),
            "best setting",
        ));
    }
    for (k, (mark, text)) in legend.iter().enumerate() {
        let _ = writeln!(s, "{mark}<text x=\"{:.1}\" y=\"{:.1}\">{text}</text>", lx + 28.0, ly(k) + 4.0);
    }
    s += "</svg>\n";
    s
}
