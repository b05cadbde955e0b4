//! SVG plots, written by hand (no plotting dependency): sync progress over virtual time.

use crate::report::Report;

/// A timeline of the run's phases over virtual time, one bar per phase.
pub fn progress_svg(r: &Report) -> String {
    let total = r.virtual_time_ms.max(1) as f64;
    let (w, h) = (800.0, 60.0 + 30.0 * r.stages.len() as f64);
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"10\" y=\"20\" font-size=\"14\">{} (seed {}): virtual time by phase, {:.1} s total</text>\n",
        xml(&r.scenario),
        r.seed,
        total / 1000.0
    );
    let colors = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948"];
    for (i, (name, ms)) in r.stages.iter().enumerate() {
        let y = 40.0 + 30.0 * i as f64;
        let bw = (*ms as f64 / total * 600.0).max(1.0);
        s += &format!(
            "<text x=\"10\" y=\"{}\">{}</text><rect x=\"120\" y=\"{y}\" width=\"{bw:.1}\" height=\"20\" fill=\"{}\"/>\
             <text x=\"{:.1}\" y=\"{}\">{:.1} s</text>\n",
            y + 15.0,
            xml(name),
            colors[i % colors.len()],
            125.0 + bw,
            y + 15.0,
            *ms as f64 / 1000.0
        );
    }
    s += "</svg>\n";
    s
}

fn xml(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}
