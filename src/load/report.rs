//! What a load run produced, in the results-directory vocabulary: the [`LoadReport`]
//! (summary + tagged histograms), the timeline events, and writing them into a run
//! directory. Built by the engine; written by the command layer or the scenario runner.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::collector::{self, Collector, percentiles};
use super::plan::{LoadPlan, Pace};
use super::stats::{Bucket, Episode};
use crate::results::hdr::{self, TaggedHistogram};
use crate::results::summary::LoadSummary;
use crate::results::timeline::ColorLatency;
use crate::results::{Event, EventKind, ResultsError, RunDir, RunMeta, RunStatus, now_ms};

/// The source name of load events in the timeline.
pub const SOURCE: &str = "load";

/// Everything a finished (or interrupted) run measured.
#[derive(Debug, Clone)]
pub struct LoadReport {
    /// The `load` section of `summary.json`.
    pub summary: LoadSummary,
    /// `overall`, `uncorrected` (open model) and `color=<c>` latency histograms (µs).
    pub histograms: Vec<TaggedHistogram>,
    /// Stopped by cancellation before the plan was done; the figures are partial.
    pub interrupted: bool,
}

/// Builds the report from the collector's totals.
pub(super) fn build(
    plan: &LoadPlan,
    collector: Collector,
    started_at: DateTime<Utc>,
    duration: Duration,
    window: Duration,
    interrupted: bool,
) -> LoadReport {
    let open = !matches!(plan.pace, Pace::Closed { .. });
    let secs = duration.as_secs_f64();
    let window_s = window.as_secs_f64();
    let summary = LoadSummary {
        url: plan.url.clone(),
        model: plan.pace.model().to_string(),
        started_at,
        duration_s: secs,
        target_rate: match plan.pace {
            Pace::Rate(r) => Some(r),
            _ => None,
        },
        achieved_rate: if window_s > 0.0 {
            collector.requests as f64 / window_s
        } else {
            0.0
        },
        requests: collector.requests,
        successes: collector.successes,
        errors: collector.errors,
        error_kinds: collector.error_kinds(),
        status_codes: collector
            .status_codes
            .iter()
            .map(|(c, n)| (c.to_string(), *n))
            .collect(),
        latency: percentiles(&collector.overall),
        latency_uncorrected: open.then(|| percentiles(&collector.uncorrected)),
        by_color: collector.color_summary(),
        by_region: collector.region_summary(),
        late_sends: collector.late_sends,
        dropped_sends: collector.dropped_sends,
        downtime: collector
            .episodes
            .iter()
            .map(|e| collector::episode_at(started_at, e))
            .collect(),
        downtime_episodes: collector.episodes_total,
        downtime_total_ms: collector.downtime_total.as_millis() as u64,
        // Filled in by the read-back after the run (`writes::verify`).
        writes: None,
    };
    let start = Duration::from_millis(started_at.timestamp_millis().max(0) as u64);
    let tagged = |tag: String, histogram| TaggedHistogram {
        tag,
        start,
        duration,
        histogram,
    };
    let mut histograms = vec![tagged("overall".into(), collector.overall.clone())];
    if open {
        histograms.push(tagged("uncorrected".into(), collector.uncorrected.clone()));
    }
    for (color, (_, h)) in &collector.by_color {
        histograms.push(tagged(format!("color={}", tag_safe(color)), h.clone()));
    }
    LoadReport {
        summary,
        histograms,
        interrupted,
    }
}

/// Histogram tags may not hold spaces or commas; colour names come from a server.
fn tag_safe(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The timeline event of one second of load.
pub(super) fn bucket_event(started_at: DateTime<Utc>, b: &Bucket) -> Event {
    let p = percentiles(&b.latency);
    Event {
        ts: started_at + chrono::Duration::seconds(b.second as i64),
        source: SOURCE.to_string(),
        kind: EventKind::LoadBucket {
            second: b.second,
            requests: b.requests,
            errors: b.errors,
            p50_us: p.p50_us,
            p90_us: p.p90_us,
            p99_us: p.p99_us,
            max_us: p.max_us,
            by_color: b.by_color.clone(),
            by_pod: b.by_pod.clone(),
            latency_by_color: b
                .latency_by_color
                .iter()
                .map(|(color, h)| {
                    let p = percentiles(h);
                    let latency = ColorLatency {
                        p50_us: p.p50_us,
                        p99_us: p.p99_us,
                    };
                    (color.clone(), latency)
                })
                .collect(),
        },
    }
}

/// The timeline event of a downtime episode (stamped when it started).
pub(super) fn downtime_event(started_at: DateTime<Utc>, e: &Episode) -> Event {
    let d = collector::episode_at(started_at, e);
    Event {
        ts: d.started_at,
        source: SOURCE.to_string(),
        kind: EventKind::Downtime {
            started_at: d.started_at,
            ended_at: d.ended_at,
            duration_ms: d.duration_ms,
            failed_requests: d.failed_requests,
        },
    }
}

/// The timeline event of a recovery episode (stamped when it started): the first failure
/// to the first of `needed` successes in a row.
pub(super) fn recovery_event(started_at: DateTime<Utc>, e: &Episode, needed: u32) -> Event {
    let d = collector::episode_at(started_at, e);
    Event {
        ts: d.started_at,
        source: SOURCE.to_string(),
        kind: EventKind::Recovery {
            started_at: d.started_at,
            recovered_at: d.ended_at,
            failed_requests: d.failed_requests,
            successes_needed: needed,
        },
    }
}

/// The `run.json` a load run starts with (status `running`).
pub fn start_meta(plan: &LoadPlan, run_id: &str) -> RunMeta {
    let mut meta = RunMeta::start(run_id, "load");
    meta.target_url = Some(plan.url.clone());
    meta.slos = plan.threshold_text.clone();
    meta
}

/// Writes what load measured into `dir`: `latency.hdr` and the `load` section of
/// `summary.json` (other producers' sections kept). For callers that own `run.json`
/// themselves (the scenario runner).
pub fn write_load_files(dir: &RunDir, report: &LoadReport) -> Result<(), ResultsError> {
    hdr::write(&dir.file(crate::results::LATENCY_FILE), &report.histograms)?;
    dir.update_summary(|s| s.load = Some(report.summary.clone()))
}

/// Writes the end of a `resil load` run into `dir`: [`write_load_files`], then `run.json`
/// marked complete or partial.
pub fn write_results(
    dir: &RunDir,
    mut meta: RunMeta,
    report: &LoadReport,
) -> Result<(), ResultsError> {
    write_load_files(dir, report)?;
    meta.ended_at = Some(now_ms());
    if report.interrupted {
        meta.status = RunStatus::Partial;
        meta.partial_reason = Some("interrupted".into());
    } else {
        meta.status = RunStatus::Complete;
    }
    dir.write_meta(&meta)
}
