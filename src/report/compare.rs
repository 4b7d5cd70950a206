//! Comparison with a baseline run: the headline metrics side by side, with deltas, and
//! regressions flagged. A metric regresses when it is worse than the baseline by more than
//! [`TOLERANCE_PERCENT`] of the baseline *and* by more than its absolute floor (so 2 ms →
//! 3 ms of p50 is noise, not a 50% regression). Requests and rate are context, never
//! regressions. Pure; called by `report::generate`.

use super::model::{Comparison, Delta, Report};

/// Relative worsening tolerated before a metric counts as a regression.
pub const TOLERANCE_PERCENT: f64 = 10.0;

/// Whether a bigger value is worse, and the smallest absolute worsening that counts.
struct Rule {
    metric: &'static str,
    unit: &'static str,
    higher_is_worse: Option<bool>,
    floor: f64,
    value: fn(&Report) -> Option<f64>,
}

fn latency(r: &Report, pick: fn(&crate::results::summary::Percentiles) -> u64) -> Option<f64> {
    r.load
        .as_ref()
        .and_then(|l| l.latency.as_ref())
        .map(|p| pick(p) as f64 / 1000.0)
}

/// The run's writes, when they were read back (an RPO was measured).
fn verified_writes(r: &Report) -> Option<&crate::results::summary::WriteSummary> {
    r.writes.as_ref().filter(|w| w.verify_url.is_some())
}

fn max_of(values: impl Iterator<Item = f64>) -> Option<f64> {
    values.fold(None, |m, v| Some(m.map_or(v, |m: f64| m.max(v))))
}

const RULES: &[Rule] = &[
    Rule {
        metric: "requests",
        unit: "count",
        higher_is_worse: None,
        floor: 0.0,
        value: |r| r.load.as_ref().map(|l| l.requests as f64),
    },
    Rule {
        metric: "error_rate",
        unit: "ratio",
        higher_is_worse: Some(true),
        floor: 0.001,
        value: |r| r.load.as_ref().map(|l| l.error_rate),
    },
    Rule {
        metric: "p50",
        unit: "ms",
        higher_is_worse: Some(true),
        floor: 1.0,
        value: |r| latency(r, |p| p.p50_us),
    },
    Rule {
        metric: "p99",
        unit: "ms",
        higher_is_worse: Some(true),
        floor: 1.0,
        value: |r| latency(r, |p| p.p99_us),
    },
    Rule {
        metric: "failover_time_max",
        unit: "ms",
        higher_is_worse: Some(true),
        floor: 50.0,
        value: |r| max_of(r.failovers.iter().map(|f| f.control_plane_ms as f64)),
    },
    Rule {
        metric: "downtime_max",
        unit: "ms",
        higher_is_worse: Some(true),
        floor: 50.0,
        value: |r| {
            r.load.as_ref()?;
            Some(
                max_of(
                    r.downtime
                        .iter()
                        .filter_map(|d| d.duration_ms.map(|v| v as f64)),
                )
                .unwrap_or(0.0),
            )
        },
    },
    Rule {
        metric: "rto_max",
        unit: "ms",
        higher_is_worse: Some(true),
        floor: 50.0,
        value: |r| {
            // A fault clients never recovered from has no RTO to compare.
            (!r.recovery.is_empty() && r.recovery.iter().all(|f| f.recovered))
                .then(|| max_of(r.recovery.iter().map(|f| f.rto_ms.unwrap_or(0) as f64)))
                .flatten()
        },
    },
    Rule {
        metric: "writes_lost",
        unit: "count",
        higher_is_worse: Some(true),
        floor: 1.0,
        value: |r| verified_writes(r).map(|w| w.lost as f64),
    },
    Rule {
        metric: "rpo_window",
        unit: "ms",
        higher_is_worse: Some(true),
        floor: 50.0,
        value: |r| verified_writes(r).map(|w| w.rpo_window_ms.unwrap_or(0) as f64),
    },
    Rule {
        metric: "scaling_latency_max",
        unit: "ms",
        higher_is_worse: Some(true),
        floor: 500.0,
        value: |r| {
            max_of(
                r.scaling
                    .iter()
                    .filter_map(|s| s.latency_ms.map(|v| v as f64)),
            )
        },
    },
    Rule {
        metric: "replica_seconds",
        unit: "s",
        higher_is_worse: Some(true),
        floor: 1.0,
        value: |r| (!r.replica_seconds.is_empty()).then(|| r.replica_seconds.values().sum()),
    },
    Rule {
        metric: "cost_per_1m",
        unit: "usd",
        higher_is_worse: Some(true),
        floor: 0.0001,
        value: |r| r.cost.as_ref().and_then(|c| c.run.total.cost_per_1m),
    },
];

/// Compares `current` with `baseline`; metrics neither run measured are left out.
pub fn compare(current: &Report, baseline: &Report) -> Comparison {
    let deltas: Vec<Delta> = RULES
        .iter()
        .filter_map(|rule| {
            let (now, then) = ((rule.value)(current), (rule.value)(baseline));
            if now.is_none() && then.is_none() {
                return None;
            }
            let delta = now.zip(then).map(|(n, t)| n - t);
            let delta_percent = delta
                .zip(then)
                .filter(|(_, t)| *t != 0.0)
                .map(|(d, t)| d / t.abs() * 100.0);
            let regression = match (rule.higher_is_worse, delta) {
                (Some(higher_is_worse), Some(d)) => {
                    let worse_by = if higher_is_worse { d } else { -d };
                    worse_by > rule.floor
                        && delta_percent.is_none_or(|p| p.abs() > TOLERANCE_PERCENT)
                }
                _ => false,
            };
            Some(Delta {
                metric: rule.metric.to_string(),
                unit: rule.unit.to_string(),
                baseline: then,
                current: now,
                delta,
                delta_percent,
                regression,
            })
        })
        .collect();
    Comparison {
        baseline_run_id: baseline.run.run_id.clone(),
        baseline_partial: baseline.run.partial,
        regressions: deltas.iter().filter(|d| d.regression).count(),
        deltas,
    }
}
