//! `-o html`: one self-contained HTML file — inline CSS and inline SVG charts, no script,
//! no font, no image or stylesheet fetched from anywhere — with the report's tables and
//! three charts over time: requests/s and errors, latency p50/p99, and replicas per
//! colour, each marked with chaos injections and selector switches. Called by
//! `report::render`.

use std::io::{self, Write};

use super::model::{Report, Series};
use super::sections::{FAIL, REGRESSION, partial_banner, sections};
use super::svg::{Chart, Line, chart};
use crate::html::escape;

const STYLE: &str = "body{font:14px/1.45 system-ui,sans-serif;margin:24px auto;max-width:1040px;color:#111}\
h1{font-size:22px}h2{font-size:17px;margin-top:28px;border-bottom:1px solid #ddd}\
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}\
th{background:#f3f4f6}td.fail{background:#fee2e2;font-weight:bold;color:#991b1b}\
td.pass{color:#166534}td.regression{background:#fef3c7;font-weight:bold}\
.partial{background:#fef3c7;border:2px solid #d97706;padding:10px;font-weight:bold}\
.verdict-ok{color:#166534}.verdict-fail{color:#991b1b}\
svg.chart{display:block;margin:12px 0;background:#fff}svg .grid{stroke:#eee}svg .axis{stroke:#555}\
svg .tick,svg .legend{font-size:11px;fill:#333}svg .title{font-size:13px;font-weight:bold}\
svg .marker line{stroke-dasharray:4 3;stroke-width:1.5}svg .marker text{font-size:10px}\
svg .chaos line{stroke:#dc2626}svg .chaos text{fill:#dc2626}\
svg .switch line{stroke:#7c3aed}svg .switch text{fill:#7c3aed}";

/// Colours of the demo's colours in the replica chart; others cycle through the palette.
fn color_css(name: &str, index: usize) -> String {
    match name {
        "blue" => "#2563eb".into(),
        "green" => "#16a34a".into(),
        _ => ["#d97706", "#0891b2", "#db2777", "#4b5563"][index % 4].into(),
    }
}

/// Writes the report as one HTML document.
pub fn render(report: &Report, series: &Series, out: &mut dyn Write) -> io::Result<()> {
    let title = format!("resil report: {}", report.run.run_id);
    write!(
        out,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title><style>{STYLE}</style></head><body>\n",
        escape(&title)
    )?;
    writeln!(out, "<h1>{}</h1>", escape(&title))?;
    if let Some(banner) = partial_banner(report) {
        writeln!(out, "<p class=\"partial\">⚠ {}</p>", escape(&banner))?;
    }
    if !report.slos.is_empty() {
        let (class, text) = if report.slos_passed {
            ("verdict-ok", "All SLOs held")
        } else {
            ("verdict-fail", "SLOs failed")
        };
        writeln!(out, "<p class=\"{class}\"><strong>{text}</strong></p>")?;
    }
    for (i, section) in sections(report).iter().enumerate() {
        writeln!(out, "<h2>{}</h2>", escape(&section.title))?;
        for note in &section.notes {
            writeln!(out, "<p>{}</p>", escape(note))?;
        }
        if let Some(grid) = &section.grid {
            write!(out, "<table><thead><tr>")?;
            for h in &grid.header {
                write!(out, "<th>{}</th>", escape(h))?;
            }
            write!(out, "</tr></thead><tbody>")?;
            for row in &grid.rows {
                write!(out, "<tr>")?;
                for cell in row {
                    let class = match cell.as_str() {
                        FAIL => " class=\"fail\"",
                        "pass" => " class=\"pass\"",
                        REGRESSION => " class=\"regression\"",
                        _ => "",
                    };
                    write!(out, "<td{class}>{}</td>", escape(cell))?;
                }
                write!(out, "</tr>")?;
            }
            writeln!(out, "</tbody></table>")?;
        }
        // The charts follow the run overview so they are the first thing seen.
        if i == 0 {
            charts(series, out)?;
        }
    }
    writeln!(out, "</body></html>")
}

fn charts(series: &Series, out: &mut dyn Write) -> io::Result<()> {
    writeln!(out, "<h2>Over time</h2>")?;
    if !series.markers.is_empty() {
        writeln!(
            out,
            "<p>Dashed lines: <span style=\"color:#dc2626\">chaos injected</span>, <span style=\"color:#7c3aed\">Service selector switched</span>.</p>"
        )?;
    }
    let x_max = series.duration_s;
    let b = &series.buckets;
    let pts = |f: fn(&super::model::BucketPoint) -> f64| -> Vec<(f64, f64)> {
        b.iter().map(|p| (p.t, f(p))).collect()
    };
    if b.is_empty() {
        writeln!(out, "<p>No load was recorded in this run.</p>")?;
    } else {
        let traffic = Chart {
            title: "Requests and errors",
            y_unit: "per second",
            x_max,
            lines: vec![
                line("requests/s", "#2563eb", pts(|p| p.requests as f64)),
                line("errors/s", "#dc2626", pts(|p| p.errors as f64)),
            ],
            markers: &series.markers,
        };
        writeln!(out, "{}", chart(&traffic))?;
        let latency = Chart {
            title: "Latency",
            y_unit: "ms",
            x_max,
            lines: vec![
                line("p50", "#16a34a", pts(|p| p.p50_ms)),
                line("p99", "#9333ea", pts(|p| p.p99_ms)),
            ],
            markers: &series.markers,
        };
        writeln!(out, "{}", chart(&latency))?;
    }
    if series.replicas.is_empty() {
        writeln!(out, "<p>No replica counts were recorded in this run.</p>")?;
    } else {
        let lines = series
            .replicas
            .iter()
            .enumerate()
            .map(|(i, (color, points))| Line {
                name: color.clone(),
                color: color_css(color, i),
                points: points.clone(),
                step: true,
            })
            .collect();
        let replicas = Chart {
            title: "Ready replicas per colour",
            y_unit: "pods",
            x_max,
            lines,
            markers: &series.markers,
        };
        writeln!(out, "{}", chart(&replicas))?;
    }
    Ok(())
}

fn line(name: &str, color: &str, points: Vec<(f64, f64)>) -> Line {
    Line {
        name: name.into(),
        color: color.into(),
        points,
        step: false,
    }
}
