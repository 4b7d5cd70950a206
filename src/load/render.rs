//! How `resil load` shows itself: the live progress line (a TTY only) and the summary
//! table at the end. Only the command layer calls this; it writes to the writers given.

use std::io::{self, Write};
use std::time::Duration;

use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use indicatif::{ProgressBar, ProgressStyle};

use super::stats::UNKNOWN;
use super::thresholds::Breach;
use crate::results::summary::{ColorLoad, LoadSummary, Percentiles};
use crate::results::{Event, EventKind};

/// A region's row name (`through a`); [`UNKNOWN`] holds the answers that named none.
pub fn through(region: &str) -> String {
    match region {
        UNKNOWN => "through no region".to_string(),
        region => format!("through {region}"),
    }
}

/// A latency in µs as `842µs`, `12.4ms` or `1.52s`.
pub fn duration_us(us: u64) -> String {
    if us >= 1_000_000 {
        format!("{:.2}s", us as f64 / 1e6)
    } else if us >= 1_000 {
        format!("{:.1}ms", us as f64 / 1e3)
    } else {
        format!("{us}µs")
    }
}

/// The live line on stderr: rps, errors, p99 of the last second, elapsed. Hidden unless
/// stderr is a terminal, so CI logs stay clean.
pub struct Progress {
    bar: ProgressBar,
    requests: u64,
    errors: u64,
    total: Option<Duration>,
}

impl Progress {
    pub fn new(total: Option<Duration>) -> Progress {
        use std::io::IsTerminal;
        let bar = if io::stderr().is_terminal() {
            let bar = ProgressBar::new_spinner();
            bar.set_style(
                ProgressStyle::with_template("{spinner} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.enable_steady_tick(Duration::from_millis(250));
            bar
        } else {
            ProgressBar::hidden()
        };
        Progress {
            bar,
            requests: 0,
            errors: 0,
            total,
        }
    }

    /// Updates the line from a timeline event.
    pub fn event(&mut self, event: &Event) {
        let EventKind::LoadBucket {
            second,
            requests,
            errors,
            p99_us,
            ..
        } = &event.kind
        else {
            return;
        };
        self.requests += requests;
        self.errors += errors;
        let elapsed = Duration::from_secs(second + 1);
        let of = self
            .total
            .map(|t| format!(" / {}", clock(t)))
            .unwrap_or_default();
        self.bar.set_message(format!(
            "{requests} req/s · {} requests · {} errors · p99 {} · {}{of}",
            self.requests,
            self.errors,
            duration_us(*p99_us),
            clock(elapsed)
        ));
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

fn clock(d: Duration) -> String {
    let s = d.as_secs();
    format!("{:02}:{:02}", s / 60, s % 60)
}

/// The summary table.
pub fn table(
    out: &mut dyn Write,
    s: &LoadSummary,
    breaches: &[Breach],
    partial: bool,
) -> io::Result<()> {
    let mut t = Table::new();
    t.load_style(UTF8_FULL_CONDENSED);
    t.set_header(vec!["load", ""]);
    let title = if partial {
        format!("{} (partial: interrupted)", s.url)
    } else {
        s.url.clone()
    };
    t.add_row(vec!["target".to_string(), title]);
    let model = match s.target_rate {
        Some(r) => format!("{} (target {r} req/s)", s.model),
        None => s.model.clone(),
    };
    t.add_row(vec!["model".to_string(), model]);
    t.add_row(vec![
        "duration".to_string(),
        format!("{:.2}s", s.duration_s),
    ]);
    t.add_row(vec![
        "requests".to_string(),
        format!(
            "{} ({:.1} req/s), {} ok, {} errors ({:.2}%)",
            s.requests,
            s.achieved_rate,
            s.successes,
            s.errors,
            if s.requests > 0 {
                s.errors as f64 * 100.0 / s.requests as f64
            } else {
                0.0
            }
        ),
    ]);
    if !s.error_kinds.is_empty() {
        let kinds: Vec<String> = s
            .error_kinds
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        t.add_row(vec!["error kinds".to_string(), kinds.join(", ")]);
    }
    let codes: Vec<String> = s
        .status_codes
        .iter()
        .map(|(k, n)| format!("{k}: {n}"))
        .collect();
    t.add_row(vec!["status codes".to_string(), codes.join(", ")]);
    t.add_row(vec!["latency".to_string(), latency_line(&s.latency)]);
    if let Some(u) = &s.latency_uncorrected {
        t.add_row(vec!["latency (uncorrected)".to_string(), latency_line(u)]);
        t.add_row(vec![
            "late sends (>1ms)".to_string(),
            s.late_sends.to_string(),
        ]);
        if s.dropped_sends > 0 {
            t.add_row(vec![
                "dropped sends (run over)".to_string(),
                s.dropped_sends.to_string(),
            ]);
        }
    }
    let served = |c: &ColorLoad| {
        format!(
            "{} requests, {} errors, p99 {}",
            c.requests,
            c.errors,
            duration_us(c.latency.p99_us)
        )
    };
    for (color, c) in &s.by_color {
        t.add_row(vec![format!("served by {color}"), served(c)]);
    }
    for (region, c) in &s.by_region {
        t.add_row(vec![through(region), served(c)]);
    }
    if let Some(w) = &s.writes {
        for (name, value) in write_rows(w) {
            t.add_row(vec![name.to_string(), value]);
        }
    }
    if !s.downtime.is_empty() {
        let open = s.downtime.iter().any(|d| d.ended_at.is_none());
        t.add_row(vec![
            "downtime".to_string(),
            format!(
                "{} episode(s), {} ms in total{}",
                s.downtime_episodes,
                s.downtime_total_ms,
                if open {
                    ", still failing at the end"
                } else {
                    ""
                }
            ),
        ]);
        for d in s.downtime.iter().take(5) {
            t.add_row(vec![
                String::new(),
                format!(
                    "{} for {} ({} failed)",
                    d.started_at.format("%H:%M:%S%.3f"),
                    d.duration_ms
                        .map_or("—".to_string(), |ms| format!("{ms} ms")),
                    d.failed_requests
                ),
            ]);
        }
    }
    for b in breaches {
        t.add_row(vec![
            "threshold breached".to_string(),
            format!("{} (measured {})", b.threshold, b.actual),
        ]);
    }
    writeln!(out, "{t}")
}

fn latency_line(p: &Percentiles) -> String {
    format!(
        "p50 {} · p90 {} · p99 {} · p99.9 {} · max {} · mean {}",
        duration_us(p.p50_us),
        duration_us(p.p90_us),
        duration_us(p.p99_us),
        duration_us(p.p999_us),
        duration_us(p.max_us),
        duration_us(p.mean_us.round() as u64)
    )
}

/// The write figures of `--write-ratio`: what was acknowledged, and what the read-back
/// found (the RPO and any correctness error).
pub fn write_rows(w: &crate::results::summary::WriteSummary) -> Vec<(&'static str, String)> {
    let mut rows = vec![(
        "writes",
        format!(
            "{} sent ({:.0}% of requests), {} acknowledged, {} not acknowledged",
            w.attempted,
            w.write_ratio * 100.0,
            w.acknowledged,
            w.unacknowledged
        ),
    )];
    match &w.verify_url {
        Some(url) => {
            rows.push((
                "read back",
                format!(
                    "from {}: {} kept, {} lost, {} unreadable{}",
                    url.replace(',', ", "),
                    w.verified,
                    w.lost,
                    w.unverified,
                    if w.untracked > 0 {
                        format!(", {} past the tracking limit", w.untracked)
                    } else {
                        String::new()
                    }
                ),
            ));
            rows.push((
                "RPO",
                match w.rpo_window_ms {
                    Some(ms) => format!("{} writes lost, acknowledged within {ms} ms", w.lost),
                    None => "0 writes lost".to_string(),
                },
            ));
        }
        None => rows.push(("read back", "not verified (no --verify-url)".to_string())),
    }
    if w.correctness_errors() > 0 {
        rows.push((
            "correctness errors",
            format!(
                "{} read back wrong, {} ack ids given twice",
                w.wrong_value, w.acked_twice
            ),
        ));
    }
    for example in w.examples.iter().take(5) {
        rows.push(("", example.clone()));
    }
    rows
}
