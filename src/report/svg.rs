//! Line charts as inline SVG, drawn by hand so the HTML report needs no script or external
//! resource: axes with round ticks, one polyline (or step line) per series, and vertical
//! markers for chaos injections and selector switches. Long series are thinned to one
//! point per pixel column (keeping each column's highest value, so spikes survive).
//! Called by the HTML renderer.

use std::fmt::Write;

use super::model::{Marker, MarkerKind};
use crate::html::escape;

const WIDTH: f64 = 1000.0;
const HEIGHT: f64 = 260.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 28.0;
const BOTTOM: f64 = 36.0;

/// One series of a chart.
#[derive(Debug, Clone)]
pub struct Line {
    pub name: String,
    /// CSS colour.
    pub color: String,
    /// (x seconds, y) sorted by x.
    pub points: Vec<(f64, f64)>,
    /// Draw as a step function held until the next point (and to the end of the x axis).
    pub step: bool,
}

/// A whole chart.
#[derive(Debug, Clone)]
pub struct Chart<'a> {
    pub title: &'a str,
    pub y_unit: &'a str,
    pub x_max: f64,
    pub lines: Vec<Line>,
    pub markers: &'a [Marker],
}

/// A round tick step (1, 2 or 5 × 10^k) giving about `target` ticks over `range`.
fn tick_step(range: f64, target: f64) -> f64 {
    if range <= 0.0 || !range.is_finite() {
        return 1.0;
    }
    let raw = range / target;
    let magnitude = 10f64.powf(raw.log10().floor());
    let unit = raw / magnitude;
    let nice = if unit <= 1.0 {
        1.0
    } else if unit <= 2.0 {
        2.0
    } else if unit <= 5.0 {
        5.0
    } else {
        10.0
    };
    nice * magnitude
}

fn label(v: f64) -> String {
    if v.fract() == 0.0 || v.abs() >= 100.0 {
        format!("{v:.0}")
    } else {
        let s = format!("{v:.2}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// Keeps one point per pixel column: the column's highest y, at its first x.
fn thin(points: &[(f64, f64)], x_max: f64, columns: f64) -> Vec<(f64, f64)> {
    if points.len() as f64 <= columns || x_max <= 0.0 {
        return points.to_vec();
    }
    let mut out: Vec<(f64, f64)> = Vec::with_capacity(columns as usize + 1);
    let mut current: Option<(i64, f64, f64)> = None;
    for &(x, y) in points {
        let col = (x / x_max * columns) as i64;
        match &mut current {
            Some((c, _, best)) if *c == col => *best = best.max(y),
            _ => {
                if let Some((_, cx, cy)) = current {
                    out.push((cx, cy));
                }
                current = Some((col, x, y));
            }
        }
    }
    if let Some((_, cx, cy)) = current {
        out.push((cx, cy));
    }
    out
}

/// The plot area and its scales, from the data.
struct Frame {
    plot_w: f64,
    plot_h: f64,
    x_max: f64,
    y_max: f64,
    y_step: f64,
}

impl Frame {
    fn new(c: &Chart) -> Frame {
        let x_max = if c.x_max > 0.0 { c.x_max } else { 1.0 };
        let y_data_max = c
            .lines
            .iter()
            .flat_map(|l| l.points.iter().map(|p| p.1))
            .fold(0.0f64, f64::max);
        // 5% headroom so a flat line at the maximum does not hide in the top border.
        let y_top = if y_data_max > 0.0 {
            y_data_max * 1.05
        } else {
            1.0
        };
        let y_step = tick_step(y_top, 4.0);
        Frame {
            plot_w: WIDTH - LEFT - RIGHT,
            plot_h: HEIGHT - TOP - BOTTOM,
            x_max,
            y_max: ((y_top / y_step).ceil() * y_step).max(y_step),
            y_step,
        }
    }

    fn sx(&self, x: f64) -> f64 {
        LEFT + (x.clamp(0.0, self.x_max) / self.x_max) * self.plot_w
    }

    fn sy(&self, y: f64) -> f64 {
        TOP + self.plot_h - (y / self.y_max).clamp(0.0, 1.0) * self.plot_h
    }

    /// The bottom of the plot area.
    fn bottom(&self) -> f64 {
        TOP + self.plot_h
    }
}

// `write!` into a String cannot fail; the results below are ignored for that reason.

/// Renders the chart as an `<svg>` element.
pub fn chart(c: &Chart) -> String {
    let frame = Frame::new(c);
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" role="img" aria-label="{t}"><title>{t}</title>"#,
        t = escape(c.title)
    );
    let _ = write!(
        s,
        r##"<text x="{LEFT}" y="18" class="title">{}</text>"##,
        escape(&format!("{} ({})", c.title, c.y_unit))
    );
    axes(&mut s, &frame);
    markers(&mut s, &frame, c.markers);
    series(&mut s, &frame, &c.lines);
    legend(&mut s, &c.lines);
    s.push_str("</svg>");
    s
}

/// The grid with y ticks, x ticks in seconds, and the two axes.
fn axes(s: &mut String, f: &Frame) {
    let mut y = 0.0;
    while y <= f.y_max + f.y_step / 2.0 {
        let py = f.sy(y);
        let _ = write!(
            s,
            r##"<line x1="{LEFT}" x2="{x2}" y1="{py:.1}" y2="{py:.1}" class="grid"/><text x="{tx}" y="{ty:.1}" class="tick" text-anchor="end">{l}</text>"##,
            x2 = WIDTH - RIGHT,
            tx = LEFT - 6.0,
            ty = py + 4.0,
            l = label(y)
        );
        y += f.y_step;
    }
    let x_step = tick_step(f.x_max, 8.0);
    let mut x = 0.0;
    while x <= f.x_max + x_step / 1000.0 {
        let px = f.sx(x);
        let _ = write!(
            s,
            r##"<line x1="{px:.1}" x2="{px:.1}" y1="{b}" y2="{b2}" class="axis"/><text x="{px:.1}" y="{ty}" class="tick" text-anchor="middle">{l}s</text>"##,
            b = f.bottom(),
            b2 = f.bottom() + 4.0,
            ty = f.bottom() + 18.0,
            l = label(x)
        );
        x += x_step;
    }
    let _ = write!(
        s,
        r##"<line x1="{LEFT}" x2="{LEFT}" y1="{TOP}" y2="{b}" class="axis"/><line x1="{LEFT}" x2="{r}" y1="{b}" y2="{b}" class="axis"/>"##,
        b = f.bottom(),
        r = WIDTH - RIGHT
    );
}

/// Markers, drawn under the lines; a label close to the previous one moves down a row so
/// nearby events (a kill and the switch it causes) stay readable.
fn markers(s: &mut String, f: &Frame, markers: &[Marker]) {
    let mut last_label: Option<(f64, usize)> = None;
    for m in markers {
        let px = f.sx(m.t);
        let row = match last_label {
            Some((x, row)) if px - x < 160.0 => (row + 1) % 3,
            _ => 0,
        };
        last_label = Some((px, row));
        let class = match m.kind {
            MarkerKind::Chaos => "marker chaos",
            MarkerKind::SelectorSwitch => "marker switch",
        };
        let short: String = m.label.chars().take(28).collect();
        let _ = write!(
            s,
            r##"<g class="{class}"><title>{full} at {t:.1}s</title><line x1="{px:.1}" x2="{px:.1}" y1="{TOP}" y2="{b}"/><text x="{tx:.1}" y="{ty}">{short}</text></g>"##,
            full = escape(&m.label),
            t = m.t,
            b = f.bottom(),
            tx = px + 3.0,
            ty = TOP + 10.0 + 12.0 * row as f64,
            short = escape(&short)
        );
    }
}

/// One path per series, thinned to the plot's pixel columns.
fn series(s: &mut String, f: &Frame, lines: &[Line]) {
    for line in lines {
        let points = thin(&line.points, f.x_max, f.plot_w);
        if points.is_empty() {
            continue;
        }
        let mut d = String::with_capacity(points.len() * 16);
        for (i, &(x, y)) in points.iter().enumerate() {
            let cmd = if i == 0 { 'M' } else { 'L' };
            if line.step && i > 0 {
                let _ = write!(d, "L{:.1} {:.1}", f.sx(x), f.sy(points[i - 1].1));
            }
            let _ = write!(d, "{cmd}{:.1} {:.1}", f.sx(x), f.sy(y));
        }
        if line.step
            && let Some(&(_, last)) = points.last()
        {
            let _ = write!(d, "L{:.1} {:.1}", f.sx(f.x_max), f.sy(last));
        }
        let _ = write!(
            s,
            r##"<path d="{d}" fill="none" stroke="{c}" stroke-width="1.5"><title>{n}</title></path>"##,
            c = escape(&line.color),
            n = escape(&line.name)
        );
    }
}

/// The legend, right-aligned in the title row.
fn legend(s: &mut String, lines: &[Line]) {
    let mut lx = WIDTH - RIGHT;
    for line in lines.iter().rev() {
        let w = 18.0 + 7.0 * line.name.chars().count() as f64;
        lx -= w;
        let _ = write!(
            s,
            r##"<rect x="{lx:.1}" y="9" width="10" height="10" fill="{c}"/><text x="{tx:.1}" y="18" class="legend">{n}</text>"##,
            c = escape(&line.color),
            tx = lx + 14.0,
            n = escape(&line.name)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_numbers() {
        assert_eq!(tick_step(100.0, 4.0), 50.0);
        assert_eq!(tick_step(3600.0, 8.0), 500.0);
        assert_eq!(tick_step(0.9, 4.0), 0.5);
    }

    #[test]
    fn long_series_are_thinned_keeping_spikes() {
        let mut points: Vec<(f64, f64)> = (0..3600).map(|i| (i as f64, 1.0)).collect();
        points[1234].1 = 99.0;
        let thinned = thin(&points, 3600.0, 900.0);
        assert!(thinned.len() <= 901, "{}", thinned.len());
        assert!(thinned.iter().any(|p| p.1 == 99.0));
    }

    #[test]
    fn a_chart_has_its_lines_markers_and_escaped_labels() {
        let markers = vec![Marker {
            t: 5.0,
            kind: MarkerKind::Chaos,
            label: "kill-pods <blue>".into(),
        }];
        let svg = chart(&Chart {
            title: "Requests",
            y_unit: "per second",
            x_max: 10.0,
            lines: vec![Line {
                name: "requests/s".into(),
                color: "#2563eb".into(),
                points: vec![(0.0, 10.0), (1.0, 12.0)],
                step: false,
            }],
            markers: &markers,
        });
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert!(svg.contains("<path d=\"M"));
        assert!(svg.contains("marker chaos"));
        assert!(svg.contains("kill-pods &lt;blue&gt;"));
    }
}
