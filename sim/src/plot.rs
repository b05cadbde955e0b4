//! SVG plots, written by hand (no plotting dependency): sync progress over virtual time.

use crate::report::Report;
use crate::timeline::{Marker, Series, Timeline};
use std::fmt::Write;

/// Canvas size.
const WIDTH: f64 = 900.0;
const HEIGHT: f64 = 480.0;
/// The plot area: left, right, top, bottom edges.
const X0: f64 = 60.0;
const X1: f64 = 700.0;
const Y0: f64 = 50.0;
const Y1: f64 = 420.0;
/// One colour per series, in [`Series::ALL`] order.
const COLORS: [&str; 7] = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#b07aa1", "#9c755f"];
/// Tick steps for the time axis (ms), smallest first.
const TIME_STEPS: [u64; 19] = [
    100, 200, 500, 1_000, 2_000, 5_000, 10_000, 15_000, 30_000, 60_000, 120_000, 300_000, 600_000, 900_000,
    1_800_000, 3_600_000, 7_200_000, 10_800_000, 21_600_000,
];
/// Marker labels are drawn only up to this many markers (else the lines alone).
const MAX_LABELLED_MARKERS: usize = 16;

/// Sync progress over virtual time: one line per phase that ran (accounts, storage slots and
/// codes as a share of the start state's; healing, headers and bodies as a share of the bytes
/// the run received for them; execution as a share of the blocks executed), vertical markers
/// for pivot moves, crashes and reorgs, and the scenario, seed and verdict in the title. A
/// report without a recorded timeline gives the axes and title only.
pub fn progress_svg(r: &Report) -> String {
    let empty = Timeline::default();
    let tl = r.timeline.as_ref().unwrap_or(&empty);
    let total_ms = r.virtual_time_ms.max(tl.samples.last().map_or(0, |s| s.t_ms)).max(1);
    let mut s = header(r);
    axes(&mut s, total_ms);
    markers(&mut s, tl, total_ms);
    let mut legend_y = Y0 + 10.0;
    for (i, color) in COLORS.iter().enumerate() {
        if !tl.ran(i) {
            continue;
        }
        polyline(&mut s, tl, i, total_ms);
        legend_entry(&mut s, legend_y, color, &series_label(tl, i));
        legend_y += 22.0;
    }
    for m in [Marker::PivotMove, Marker::Crash, Marker::Reorg] {
        let n = tl.markers.iter().filter(|(_, k)| *k == m).count();
        if n > 0 {
            marker_legend(&mut s, legend_y, m, n);
            legend_y += 22.0;
        }
    }
    s += "</svg>\n";
    s
}

fn header(r: &Report) -> String {
    let verdict = if r.passed() { "PASS" } else { "FAIL" };
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{HEIGHT}\" \
         font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{X0}\" y=\"24\" font-size=\"15\">{} (seed {}): {verdict}, {} of virtual time</text>\n",
        xml(&r.scenario),
        r.seed,
        duration_label(r.virtual_time_ms),
    )
}

/// Axes, grid, time ticks (s or min) and percent ticks.
fn axes(s: &mut String, total_ms: u64) {
    let _ = writeln!(
        s,
        "<rect x=\"{X0}\" y=\"{Y0}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"#444\"/>",
        X1 - X0,
        Y1 - Y0
    );
    for pct in [0u32, 25, 50, 75, 100] {
        let y = y_of(f64::from(pct) / 100.0);
        let _ = writeln!(
            s,
            "<line x1=\"{X0}\" y1=\"{y:.1}\" x2=\"{X1}\" y2=\"{y:.1}\" stroke=\"#ddd\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{pct}%</text>",
            X0 - 6.0,
            y + 4.0
        );
    }
    let step = time_step(total_ms);
    let mut t = 0;
    while t <= total_ms {
        let x = x_of(t, total_ms);
        let _ = writeln!(
            s,
            "<line x1=\"{x:.1}\" y1=\"{Y0}\" x2=\"{x:.1}\" y2=\"{Y1}\" stroke=\"#eee\"/>\
             <line x1=\"{x:.1}\" y1=\"{Y1}\" x2=\"{x:.1}\" y2=\"{:.1}\" stroke=\"#444\"/>\
             <text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
            Y1 + 5.0,
            Y1 + 18.0,
            tick_label(t, step)
        );
        t += step;
    }
    let _ = writeln!(
        s,
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">virtual time</text>\
         <text x=\"14\" y=\"{:.1}\" text-anchor=\"middle\" transform=\"rotate(-90 14 {:.1})\">progress (% of total)</text>",
        (X0 + X1) / 2.0,
        Y1 + 40.0,
        (Y0 + Y1) / 2.0,
        (Y0 + Y1) / 2.0
    );
}

/// Vertical dashed lines for pivot moves, crashes and reorgs (labels staggered over three rows
/// so close markers stay readable).
fn markers(s: &mut String, tl: &Timeline, total_ms: u64) {
    let labelled = tl.markers.len() <= MAX_LABELLED_MARKERS;
    for (k, (t, m)) in tl.markers.iter().enumerate() {
        let x = x_of(*t, total_ms);
        let (color, dash) = marker_style(*m);
        let _ = writeln!(
            s,
            "<line x1=\"{x:.1}\" y1=\"{Y0}\" x2=\"{x:.1}\" y2=\"{Y1}\" stroke=\"{color}\" stroke-dasharray=\"{dash}\"/>"
        );
        if labelled {
            let _ = writeln!(
                s,
                "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"10\" fill=\"{color}\">{}</text>",
                x + 2.0,
                Y0 + 10.0 + 11.0 * (k % 3) as f64,
                m.name()
            );
        }
    }
}

fn marker_style(m: Marker) -> (&'static str, &'static str) {
    match m {
        Marker::PivotMove => ("#888", "4 3"),
        Marker::Crash => ("#d62728", "2 2"),
        Marker::Reorg => ("#9467bd", "6 2"),
    }
}

/// One series as a polyline, scaled to its full scale.
fn polyline(s: &mut String, tl: &Timeline, i: usize, total_ms: u64) {
    let full = tl.full_scale(i).max(1) as f64;
    let mut pts = String::with_capacity(tl.samples.len() * 14);
    for sample in &tl.samples {
        let frac = (sample.values[i] as f64 / full).min(1.0);
        let _ = write!(pts, "{:.1},{:.1} ", x_of(sample.t_ms, total_ms), y_of(frac));
    }
    let _ = writeln!(
        s,
        "<polyline class=\"series\" data-series=\"{}\" fill=\"none\" stroke=\"{}\" stroke-width=\"1.8\" points=\"{}\"/>",
        Series::ALL[i].name(),
        COLORS[i],
        pts.trim_end()
    );
}

fn legend_entry(s: &mut String, y: f64, color: &str, label: &str) {
    let x = X1 + 15.0;
    let _ = writeln!(
        s,
        "<line x1=\"{x}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"{color}\" stroke-width=\"3\"/>\
         <text x=\"{:.1}\" y=\"{:.1}\">{}</text>",
        x + 20.0,
        x + 26.0,
        y + 4.0,
        xml(label)
    );
}

fn marker_legend(s: &mut String, y: f64, m: Marker, n: usize) {
    let x = X1 + 15.0;
    let (color, dash) = marker_style(m);
    let _ = writeln!(
        s,
        "<line x1=\"{x}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"{color}\" stroke-dasharray=\"{dash}\"/>\
         <text x=\"{:.1}\" y=\"{:.1}\">{} x{n}</text>",
        x + 20.0,
        x + 26.0,
        y + 4.0,
        m.name()
    );
}

/// `accounts 12000/12000`, `healing 1.2 MiB`, `execution 64 blocks`.
fn series_label(tl: &Timeline, i: usize) -> String {
    let series = Series::ALL[i];
    let last = tl.samples.last().map_or(0, |x| x.values[i]);
    match series {
        Series::Accounts | Series::Storage | Series::Bytecodes => {
            format!("{} {last}/{}", series.name(), tl.full_scale(i))
        }
        Series::Execution => format!("{} {last} blocks", series.name()),
        Series::Healing | Series::Headers | Series::Bodies => {
            format!("{} {}", series.name(), bytes_label(last))
        }
    }
}

fn bytes_label(b: u64) -> String {
    match b {
        b if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / f64::from(1u32 << 20)),
        b if b >= 1 << 10 => format!("{:.1} KiB", b as f64 / 1024.0),
        b => format!("{b} B"),
    }
}

fn x_of(t_ms: u64, total_ms: u64) -> f64 {
    X0 + (X1 - X0) * (t_ms as f64 / total_ms as f64).min(1.0)
}

fn y_of(frac: f64) -> f64 {
    Y1 - (Y1 - Y0) * frac
}

/// The smallest tick step giving at most ten ticks.
fn time_step(total_ms: u64) -> u64 {
    TIME_STEPS.iter().copied().find(|s| total_ms / s <= 10).unwrap_or_else(|| (total_ms / 10).max(1))
}

/// A tick's label: minutes once the step is whole minutes, else seconds.
fn tick_label(t_ms: u64, step: u64) -> String {
    if step.is_multiple_of(60_000) {
        format!("{}min", t_ms / 60_000)
    } else if step.is_multiple_of(1000) {
        format!("{}s", t_ms / 1000)
    } else {
        format!("{:.1}s", t_ms as f64 / 1000.0)
    }
}

fn duration_label(ms: u64) -> String {
    if ms >= 120_000 {
        format!("{:.1} min", ms as f64 / 60_000.0)
    } else {
        format!("{:.1} s", ms as f64 / 1000.0)
    }
}

fn xml(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_ticks_are_few_and_readable() {
        assert_eq!(time_step(800), 100);
        assert_eq!(time_step(45_000), 5_000);
        assert_eq!(time_step(3_600_000), 600_000);
        assert_eq!(tick_label(1_500, 500), "1.5s");
        assert_eq!(tick_label(30_000, 5_000), "30s");
        assert_eq!(tick_label(1_200_000, 600_000), "20min");
    }
}
