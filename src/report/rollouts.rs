//! The rollouts of a run (`resil rollout`, a scenario's `rollout` step), from the
//! timeline: each step, the analysis intervals, and — first, since it is what a reader
//! looks for — a rollback's timing: from the breach (the first second that broke a check)
//! and from its detection (the judged interval's end) to the rollback's start and end.
//! Built by `build.rs`; shown by the sections renderers through [`rollout_section`].

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::model::Report;
use super::sections::{Grid, Section, strings};
use crate::results::{Event, EventKind};

/// One rollout as the report shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RolloutFigures {
    /// The Deployment rolled (`web-blue`).
    pub deployment: String,
    /// `complete`, `rolled_back`, `failed` or `unfinished` (no end recorded).
    pub outcome: String,
    /// The Deployment's revision at the end.
    pub revision: Option<i64>,
    pub started_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    /// From the first step to the end.
    pub duration_ms: Option<u64>,
    pub steps: Vec<RolloutStepFigures>,
    /// Analysis intervals judged, and how many breached.
    pub intervals: u32,
    pub intervals_failed: u32,
    /// The rollback, when a breach caused one.
    pub rollback: Option<RollbackFigures>,
}

/// One step of a rollout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RolloutStepFigures {
    pub at: DateTime<Utc>,
    /// `canary`, `update`, `promote`.
    pub step: String,
    pub weight_percent: u32,
    pub detail: String,
}

/// When a rollback happened, measured from the breach.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RollbackFigures {
    /// The interval that breached, and why.
    pub interval: u32,
    pub reason: String,
    pub breached_at: DateTime<Utc>,
    pub detected_at: DateTime<Utc>,
    pub started_at: DateTime<Utc>,
    pub done_at: Option<DateTime<Utc>>,
    /// Breach → rollback start.
    pub breach_to_start_ms: u64,
    /// Breach → rollback done (the previous release serving everywhere again).
    pub breach_to_done_ms: Option<u64>,
    /// The interval's end (the verdict) → rollback start.
    pub detection_to_start_ms: u64,
}

fn ms_between(a: DateTime<Utc>, b: DateTime<Utc>) -> u64 {
    u64::try_from((b - a).num_milliseconds()).unwrap_or(0)
}

/// The rollouts recorded in `events`, in the order they started.
pub fn rollouts(events: &[Event]) -> Vec<RolloutFigures> {
    let mut out: Vec<RolloutFigures> = Vec::new();
    for e in events {
        // A step after a finished rollout of the same Deployment starts a new one.
        let open = |out: &mut Vec<RolloutFigures>, deployment: &str| {
            let fresh = !out
                .iter()
                .any(|r| r.deployment == deployment && r.ended_at.is_none());
            if fresh {
                out.push(RolloutFigures {
                    deployment: deployment.to_string(),
                    outcome: "unfinished".into(),
                    revision: None,
                    started_at: e.ts,
                    ended_at: None,
                    duration_ms: None,
                    steps: Vec::new(),
                    intervals: 0,
                    intervals_failed: 0,
                    rollback: None,
                });
            }
            let at = out
                .iter()
                .rposition(|r| r.deployment == deployment && r.ended_at.is_none());
            at.unwrap_or(out.len() - 1)
        };
        match &e.kind {
            EventKind::RolloutStep {
                deployment,
                step,
                weight_percent,
                detail,
            } => {
                let i = open(&mut out, deployment);
                out[i].steps.push(RolloutStepFigures {
                    at: e.ts,
                    step: step.clone(),
                    weight_percent: *weight_percent,
                    detail: detail.clone(),
                });
            }
            EventKind::AnalysisInterval {
                deployment, passed, ..
            } => {
                let i = open(&mut out, deployment);
                out[i].intervals += 1;
                out[i].intervals_failed += u32::from(!passed);
            }
            EventKind::RollbackStarted {
                deployment,
                interval,
                reason,
                breached_at,
                detected_at,
                ..
            } => {
                let i = open(&mut out, deployment);
                out[i].rollback = Some(RollbackFigures {
                    interval: *interval,
                    reason: reason.clone(),
                    breached_at: *breached_at,
                    detected_at: *detected_at,
                    started_at: e.ts,
                    done_at: None,
                    breach_to_start_ms: ms_between(*breached_at, e.ts),
                    breach_to_done_ms: None,
                    detection_to_start_ms: ms_between(*detected_at, e.ts),
                });
            }
            EventKind::RolloutFinished {
                deployment,
                outcome,
                revision,
                ..
            } => {
                let i = open(&mut out, deployment);
                let r = &mut out[i];
                r.outcome = outcome.clone();
                r.revision = *revision;
                r.ended_at = Some(e.ts);
                r.duration_ms = Some(ms_between(r.started_at, e.ts));
                if let Some(rb) = r.rollback.as_mut() {
                    rb.done_at = Some(e.ts);
                    rb.breach_to_done_ms = Some(ms_between(rb.breached_at, e.ts));
                }
            }
            _ => {}
        }
    }
    out
}

fn secs(ms: u64) -> String {
    format!("{:.2}s", ms as f64 / 1000.0)
}

/// The rollouts section: the rollback's timing first, then every step.
pub(super) fn rollout_section(report: &Report) -> Option<Section> {
    if report.rollouts.is_empty() {
        return None;
    }
    let mut notes = Vec::new();
    let mut rows = Vec::new();
    for r in &report.rollouts {
        if let Some(rb) = &r.rollback {
            notes.push(format!(
                "{} ROLLED BACK: interval {} breached ({}); breach → rollback start {}, → \
                 rollback done {} (verdict → start {})",
                r.deployment,
                rb.interval,
                rb.reason,
                secs(rb.breach_to_start_ms),
                rb.breach_to_done_ms.map_or_else(|| "—".into(), secs),
                secs(rb.detection_to_start_ms),
            ));
        }
        notes.push(format!(
            "{}: {}{}, {} analysis interval(s), {} breached{}",
            r.deployment,
            r.outcome.replace('_', " "),
            r.revision
                .map(|v| format!(" at revision {v}"))
                .unwrap_or_default(),
            r.intervals,
            r.intervals_failed,
            r.duration_ms
                .map(|d| format!(", {} in all", secs(d)))
                .unwrap_or_default()
        ));
        for s in &r.steps {
            rows.push(vec![
                s.at.format("%H:%M:%S%.3f").to_string(),
                r.deployment.clone(),
                s.step.clone(),
                format!("{}%", s.weight_percent),
                s.detail.clone(),
            ]);
        }
        if let Some(rb) = &r.rollback {
            rows.push(vec![
                rb.started_at.format("%H:%M:%S%.3f").to_string(),
                r.deployment.clone(),
                "rollback".into(),
                "0%".into(),
                format!("interval {}: {}", rb.interval, rb.reason),
            ]);
        }
    }
    Some(Section {
        title: "Rollouts".into(),
        notes,
        grid: Some(Grid {
            header: strings(&["at", "deployment", "step", "new release", "detail"]),
            rows,
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: i64) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(1_900_000_000_000 + ms).unwrap()
    }

    fn event(ms: i64, kind: EventKind) -> Event {
        Event {
            ts: at(ms),
            source: "rollout".into(),
            kind,
        }
    }

    #[test]
    fn a_rollback_is_timed_from_the_breach_and_from_its_detection() {
        let d = || "web-blue".to_string();
        let events = [
            event(
                0,
                EventKind::RolloutStep {
                    deployment: d(),
                    step: "update".into(),
                    weight_percent: 100,
                    detail: "web-blue to version v2-bad".into(),
                },
            ),
            event(
                5_000,
                EventKind::RollbackStarted {
                    deployment: d(),
                    interval: 1,
                    reason: "error_rate<1%: measured 30.0% of 500".into(),
                    breached_at: at(1_000),
                    detected_at: at(4_990),
                    to_revision: Some(1),
                },
            ),
            event(
                7_000,
                EventKind::RolloutFinished {
                    deployment: d(),
                    outcome: "rolled_back".into(),
                    revision: Some(3),
                    detail: String::new(),
                },
            ),
        ];
        let got = rollouts(&events);
        assert_eq!(got.len(), 1);
        let rb = got[0].rollback.as_ref().unwrap();
        assert_eq!(
            (rb.breach_to_start_ms, rb.detection_to_start_ms),
            (4_000, 10)
        );
        assert_eq!(rb.breach_to_done_ms, Some(6_000));
        assert_eq!(got[0].outcome, "rolled_back");
        assert_eq!(got[0].duration_ms, Some(7_000));
    }
}
