//! The chart: a self-contained SVG drawn by hand from the results document.
//!
//! Panel 1 is the latency distribution: percentile curves (x on a "nines" scale, so p90, p99,
//! p99.9 are equally spaced; y in ms on a log scale) of the origin and of each cache. Panel 2,
//! in load mode, is throughput (req/s, log scale) against connections (log scale), one line per
//! size and target.

use std::fmt::Write as _;

use s3cached::model::size::ByteSize;

use crate::report::Document;
use crate::stats::LatencyStats;

const WIDTH: f64 = 960.0;
const PANEL_HEIGHT: f64 = 380.0;
const MARGIN_LEFT: f64 = 80.0;
const PLOT_WIDTH: f64 = 620.0;
const PLOT_HEIGHT: f64 = 280.0;
const TOP: f64 = 50.0;
const COLORS: [&str; 8] = [
    "#d62728", "#1f77b4", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
];

struct Series {
    name: String,
    color: &'static str,
    dashed: bool,
    /// Points in axis units (already transformed to the scale).
    points: Vec<(f64, f64)>,
}

struct Panel {
    title: String,
    x_label: String,
    y_label: String,
    x_ticks: Vec<(f64, String)>,
    y_ticks: Vec<(f64, String)>,
    x_range: (f64, f64),
    y_range: (f64, f64),
    series: Vec<Series>,
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// `-log10(1 - p/100)`: 0 at p0, 1 at p90, 2 at p99, 3 at p99.9.
fn nines(p: f64) -> f64 {
    -(1.0 - (p / 100.0).min(0.99999)).log10()
}

fn decade_ticks(lo: f64, hi: f64, unit: &str) -> Vec<(f64, String)> {
    let mut ticks = Vec::new();
    let mut e = lo.floor() as i32;
    while f64::from(e) <= hi.ceil() && ticks.len() < 12 {
        let v = 10f64.powi(e);
        let label = if v >= 1.0 {
            format!("{v:.0}{unit}")
        } else {
            format!("{}{unit}", trim_float(v))
        };
        ticks.push((f64::from(e), label));
        e += 1;
    }
    ticks
}

fn trim_float(v: f64) -> String {
    let s = format!("{v:.6}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

fn log_range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in values.filter(|v| *v > 0.0 && v.is_finite()) {
        lo = lo.min(v.log10());
        hi = hi.max(v.log10());
    }
    if !lo.is_finite() {
        return (-1.0, 1.0);
    }
    (lo.floor(), hi.ceil().max(lo.floor() + 1.0))
}

fn curve(stats: &LatencyStats) -> Vec<(f64, f64)> {
    stats
        .curve
        .iter()
        .filter(|[p, ms]| *p < 100.0 && *ms > 0.0)
        .map(|[p, ms]| (nines(*p), ms.log10()))
        .collect()
}

fn latency_panel(doc: &Document) -> Panel {
    let mut series = Vec::new();
    let mut all: Vec<f64> = Vec::new();
    let mut add = |name: String, dashed: bool, color: Option<usize>, stats: &LatencyStats, series: &mut Vec<Series>| {
        all.extend(stats.curve.iter().map(|[_, ms]| *ms));
        let color = COLORS[color.unwrap_or(series.len()) % COLORS.len()];
        series.push(Series {
            name,
            color,
            dashed,
            points: curve(stats),
        });
    };
    let mut title = "Latency distribution".to_owned();
    if let Some(c) = &doc.classic {
        title = format!(
            "Latency distribution: {} sequential GETs of {}",
            c.objects,
            ByteSize(c.size_bytes)
        );
        add("origin".to_owned(), false, None, &c.origin, &mut series);
        for s in &c.caches {
            add(format!("{} hit", s.tier), false, None, &s.hit, &mut series);
            add(format!("{} miss", s.tier), true, None, &s.miss, &mut series);
        }
    }
    if let Some(l) = &doc.load {
        let conc = l
            .steps
            .iter()
            .map(|s| s.concurrency)
            .min_by_key(|c| c.abs_diff(64))
            .unwrap_or(1);
        title = format!("Latency distribution at {conc} connections (cache solid, origin dashed)");
        for (i, size) in l.sizes.iter().enumerate() {
            for s in l
                .steps
                .iter()
                .filter(|s| s.size_bytes == size.size_bytes && s.concurrency == conc)
            {
                add(
                    format!("{} {}", s.target, ByteSize(s.size_bytes)),
                    s.target == "origin",
                    Some(i),
                    &s.latency,
                    &mut series,
                );
            }
        }
    }
    let y_range = log_range(all.into_iter());
    let x_max = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.0))
        .fold(2.0f64, f64::max)
        .ceil();
    let x_ticks = [
        (0.0, "p0"),
        (nines(50.0), "p50"),
        (1.0, "p90"),
        (2.0, "p99"),
        (3.0, "p99.9"),
        (4.0, "p99.99"),
        (5.0, "p99.999"),
    ]
    .into_iter()
    .filter(|(x, _)| *x <= x_max)
    .map(|(x, l)| (x, l.to_owned()))
    .collect();
    Panel {
        title,
        x_label: "percentile".to_owned(),
        y_label: "latency (log)".to_owned(),
        x_ticks,
        y_ticks: decade_ticks(y_range.0, y_range.1, " ms"),
        x_range: (0.0, x_max),
        y_range,
        series,
    }
}

fn throughput_panel(doc: &Document) -> Option<Panel> {
    let l = doc.load.as_ref()?;
    let mut series: Vec<Series> = Vec::new();
    let mut targets: Vec<String> = l.steps.iter().map(|s| s.target.clone()).collect();
    targets.dedup();
    targets.sort();
    targets.dedup();
    for (i, size) in l.sizes.iter().enumerate() {
        for target in &targets {
            let points: Vec<(f64, f64)> = l
                .steps
                .iter()
                .filter(|s| s.size_bytes == size.size_bytes && &s.target == target && s.req_per_s > 0.0)
                .map(|s| ((s.concurrency as f64).log2(), s.req_per_s.log10()))
                .collect();
            if !points.is_empty() {
                series.push(Series {
                    name: format!("{target} {}", ByteSize(size.size_bytes)),
                    color: COLORS[i % COLORS.len()],
                    dashed: target == "origin",
                    points,
                });
            }
        }
    }
    let y_range = log_range(l.steps.iter().map(|s| s.req_per_s));
    let concs: Vec<usize> = {
        let mut c: Vec<usize> = l.steps.iter().map(|s| s.concurrency).collect();
        c.sort_unstable();
        c.dedup();
        c
    };
    let x_lo = concs.first().map_or(0.0, |c| (*c as f64).log2());
    let x_hi = concs.last().map_or(1.0, |c| (*c as f64).log2());
    let x_range = if x_hi > x_lo {
        (x_lo, x_hi)
    } else {
        (x_lo - 1.0, x_hi + 1.0)
    };
    Some(Panel {
        title: "Throughput against connections (cache solid, origin dashed)".to_owned(),
        x_label: "connections (log)".to_owned(),
        y_label: "requests/s (log)".to_owned(),
        x_ticks: concs.iter().map(|c| ((*c as f64).log2(), c.to_string())).collect(),
        y_ticks: decade_ticks(y_range.0, y_range.1, ""),
        x_range,
        y_range,
        series,
    })
}

fn draw(panel: &Panel, top: f64, out: &mut String) {
    let (x0, x1) = panel.x_range;
    let (y0, y1) = panel.y_range;
    let px = |x: f64| MARGIN_LEFT + (x - x0) / (x1 - x0).max(1e-9) * PLOT_WIDTH;
    let py = |y: f64| top + PLOT_HEIGHT - (y - y0) / (y1 - y0).max(1e-9) * PLOT_HEIGHT;
    let _ = writeln!(
        out,
        r#"<text x="{MARGIN_LEFT}" y="{:.1}" class="title">{}</text>"#,
        top - 16.0,
        esc(&panel.title)
    );
    let _ = writeln!(
        out,
        r##"<rect x="{MARGIN_LEFT}" y="{top:.1}" width="{PLOT_WIDTH}" height="{PLOT_HEIGHT}" fill="#fafafa" stroke="#999"/>"##
    );
    for (y, label) in &panel.y_ticks {
        let yy = py(*y);
        let _ = writeln!(
            out,
            r##"<line x1="{MARGIN_LEFT}" y1="{yy:.1}" x2="{:.1}" y2="{yy:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
            MARGIN_LEFT + PLOT_WIDTH,
            MARGIN_LEFT - 6.0,
            yy + 4.0,
            esc(label)
        );
    }
    for (x, label) in &panel.x_ticks {
        let xx = px(*x);
        let _ = writeln!(
            out,
            r##"<line x1="{xx:.1}" y1="{top:.1}" x2="{xx:.1}" y2="{:.1}" stroke="#ddd"/><text x="{xx:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
            top + PLOT_HEIGHT,
            top + PLOT_HEIGHT + 16.0,
            esc(label)
        );
    }
    let _ = writeln!(
        out,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
        MARGIN_LEFT + PLOT_WIDTH / 2.0,
        top + PLOT_HEIGHT + 34.0,
        esc(&panel.x_label)
    );
    let _ = writeln!(
        out,
        r#"<text transform="translate(18 {:.1}) rotate(-90)" text-anchor="middle">{}</text>"#,
        top + PLOT_HEIGHT / 2.0,
        esc(&panel.y_label)
    );
    for (i, s) in panel.series.iter().enumerate() {
        let dash = if s.dashed { r#" stroke-dasharray="6 4""# } else { "" };
        let pts: Vec<String> = s
            .points
            .iter()
            .map(|(x, y)| format!("{:.1},{:.1}", px(*x), py(*y)))
            .collect();
        let _ = writeln!(
            out,
            r#"<polyline points="{}" fill="none" stroke="{}" stroke-width="2"{dash}/>"#,
            pts.join(" "),
            s.color
        );
        for (x, y) in &s.points {
            let _ = writeln!(
                out,
                r#"<circle cx="{:.1}" cy="{:.1}" r="2.5" fill="{}"/>"#,
                px(*x),
                py(*y),
                s.color
            );
        }
        let ly = top + 10.0 + i as f64 * 18.0;
        let lx = MARGIN_LEFT + PLOT_WIDTH + 20.0;
        let _ = writeln!(
            out,
            r#"<line x1="{lx:.1}" y1="{ly:.1}" x2="{:.1}" y2="{ly:.1}" stroke="{}" stroke-width="2"{dash}/><text x="{:.1}" y="{:.1}">{}</text>"#,
            lx + 24.0,
            s.color,
            lx + 30.0,
            ly + 4.0,
            esc(&s.name)
        );
    }
}

/// Renders the document's chart.
pub fn render(doc: &Document) -> String {
    let mut panels = vec![latency_panel(doc)];
    panels.extend(throughput_panel(doc));
    let height = PANEL_HEIGHT * panels.len() as f64 + 40.0;
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="12">
<style>.title {{ font-size: 15px; font-weight: bold; }}</style>
<rect width="100%" height="100%" fill="white"/>"#
    );
    for (i, p) in panels.iter().enumerate() {
        draw(p, TOP + PANEL_HEIGHT * i as f64, &mut out);
    }
    let _ = writeln!(
        out,
        r##"<text x="{MARGIN_LEFT}" y="{:.1}" fill="#666">{}: {}; origin {}</text>"##,
        height - 12.0,
        esc(&doc.tool),
        esc(doc.mode),
        esc(&doc.setup.origin)
    );
    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nines_scale() {
        assert!((nines(90.0) - 1.0).abs() < 1e-9);
        assert!((nines(99.0) - 2.0).abs() < 1e-9);
        assert!((nines(99.9) - 3.0).abs() < 1e-6);
    }

    #[test]
    fn ticks_cover_the_range() {
        let t = decade_ticks(-2.0, 1.0, " ms");
        let labels: Vec<&str> = t.iter().map(|(_, l)| l.as_str()).collect();
        assert_eq!(labels, ["0.01 ms", "0.1 ms", "1 ms", "10 ms"]);
        assert_eq!(esc("a<b&\"c\""), "a&lt;b&amp;&quot;c&quot;");
    }
}
