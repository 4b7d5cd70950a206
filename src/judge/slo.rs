//! SLO expressions and their verdicts: `failover_time<2s,downtime<1s,error_rate<1%,
//! p99<300ms,cost_per_1m<0.50`, from `--slo` or the run's `slos`.
//!
//! Judged against the figures the report builder derived from the results directory
//! (failovers, downtime, scaling, load, cost). A metric that was not measured (no failover
//! happened, no load ran) fails its SLO: a CI job asking for `failover_time<2s` of a run
//! that never failed over has not shown it. Pure; called by [`super::judge`].

use super::LatencyStat;
pub use super::expr::Op;
use super::expr::{self as grammar};
use crate::report::model::{Report, SloVerdict};

/// A parsed SLO: `metric op threshold`.
#[derive(Debug, Clone, PartialEq)]
pub struct Slo {
    pub expression: String,
    pub metric: Metric,
    pub op: Op,
    /// In the metric's unit: ms, ratio (0.01 = 1%) or usd.
    pub threshold: f64,
}

/// What an SLO measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// Longest control-plane failover (ms).
    FailoverTime,
    /// Longest client-observed downtime episode (ms).
    Downtime,
    /// Longest scale-up until the new pods were Ready (ms).
    ScalingLatency,
    /// errors ÷ requests.
    ErrorRate,
    /// An overall latency percentile (ms); every [`LatencyStat`] but the mean.
    Latency(LatencyStat),
    /// Total cost per million successful requests (usd).
    CostPer1m,
    /// Acknowledged writes lost (`--write-ratio`'s read-back): RPO in writes.
    Rpo,
    /// From the oldest lost write's acknowledgement to the newest (ms): RPO in time.
    RpoWindow,
    /// The longest client-observed recovery of the run's faults (ms): injection → the
    /// first of N successes in a row (the report's recovery per fault).
    Rto,
}

/// Every metric name with its kind, for parsing and for the error listing them.
const METRICS: &[(&str, Metric)] = &[
    ("failover_time", Metric::FailoverTime),
    ("downtime", Metric::Downtime),
    ("scaling_latency", Metric::ScalingLatency),
    ("error_rate", Metric::ErrorRate),
    ("p50", Metric::Latency(LatencyStat::P50)),
    ("p75", Metric::Latency(LatencyStat::P75)),
    ("p90", Metric::Latency(LatencyStat::P90)),
    ("p99", Metric::Latency(LatencyStat::P99)),
    ("p999", Metric::Latency(LatencyStat::P999)),
    ("max_latency", Metric::Latency(LatencyStat::Max)),
    ("cost_per_1m", Metric::CostPer1m),
    ("rpo", Metric::Rpo),
    ("rpo_window", Metric::RpoWindow),
    ("rto", Metric::Rto),
];

impl Metric {
    /// The name SLO expressions use.
    pub fn name(self) -> &'static str {
        METRICS
            .iter()
            .find(|(_, m)| *m == self)
            .map(|(n, _)| *n)
            .unwrap_or("?")
    }

    /// The unit of thresholds and actual values.
    pub fn unit(self) -> &'static str {
        match self {
            Metric::ErrorRate => "ratio",
            Metric::CostPer1m => "usd",
            Metric::Rpo => "writes",
            _ => "ms",
        }
    }
}

/// An SLO expression that does not parse.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("SLO {expression:?}: {message}")]
pub struct SloParseError {
    pub expression: String,
    pub message: String,
}

/// Parses a comma-separated list of SLO expressions.
pub fn parse_list(text: &str) -> Result<Vec<Slo>, SloParseError> {
    grammar::expressions(text).map(parse).collect()
}

/// Parses one expression such as `p99<300ms` or `error_rate<=0.5%`.
pub fn parse(expression: &str) -> Result<Slo, SloParseError> {
    let err = |message: String| SloParseError {
        expression: expression.to_string(),
        message,
    };
    let grammar::Comparison {
        key: name,
        op,
        value,
    } = grammar::split(expression)
        .ok_or_else(|| err("expected METRIC<VALUE, e.g. p99<300ms".into()))?;
    let metric = METRICS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, m)| *m)
        .ok_or_else(|| {
            let names: Vec<&str> = METRICS.iter().map(|(n, _)| *n).collect();
            err(format!(
                "unknown metric {name:?}; use one of {}",
                names.join(", ")
            ))
        })?;
    let threshold = match metric.unit() {
        "ratio" => grammar::parse_ratio(value)
            .ok_or_else(|| format!("{value:?} is not a rate like 1% or 0.01")),
        "usd" => parse_usd(value),
        "writes" => value
            .parse::<u64>()
            .map(|n| n as f64)
            .map_err(|_| format!("{value:?} is not a number of writes like 1 or 0")),
        _ => grammar::parse_duration(value)
            .map(|d| d.as_secs_f64() * 1000.0)
            .ok_or_else(|| format!("{value:?} is not a duration like 300ms or 2s")),
    }
    .map_err(err)?;
    Ok(Slo {
        expression: expression.trim().to_string(),
        metric,
        op,
        threshold,
    })
}

fn parse_usd(value: &str) -> Result<f64, String> {
    let bad = || format!("{value:?} is not an amount of dollars like 0.50");
    let v = value
        .strip_prefix('$')
        .unwrap_or(value)
        .parse::<f64>()
        .map_err(|_| bad())?;
    (v.is_finite() && v >= 0.0).then_some(v).ok_or_else(bad)
}

/// The measured value of `metric` in `report`, or why there is none.
fn actual(metric: Metric, report: &Report) -> Result<f64, String> {
    let max = |values: Vec<f64>| {
        values
            .into_iter()
            .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))))
    };
    match metric {
        Metric::FailoverTime => max(report
            .failovers
            .iter()
            .map(|f| f.control_plane_ms as f64)
            .collect())
        .ok_or_else(|| "no failover was recorded".to_string()),
        Metric::Downtime => {
            if report.load.is_none() {
                return Err("no load ran, so no client saw anything".into());
            }
            // An episode still open at the end lasted at least until the run ended.
            let end = report.run.started_at
                + chrono::Duration::milliseconds((report.run.duration_s * 1000.0) as i64);
            Ok(max(report
                .downtime
                .iter()
                .map(|d| match d.duration_ms {
                    Some(ms) => ms as f64,
                    None => (end - d.started_at).num_milliseconds().max(0) as f64,
                })
                .collect())
            .unwrap_or(0.0))
        }
        Metric::ScalingLatency => {
            if report.scaling.is_empty() {
                return Err("no scale-up was recorded".into());
            }
            report
                .scaling
                .iter()
                .map(|s| s.latency_ms.map(|ms| ms as f64))
                .collect::<Option<Vec<f64>>>()
                .and_then(max)
                .ok_or_else(|| "a scale-up had not become Ready when the run ended".into())
        }
        Metric::ErrorRate => report
            .load
            .as_ref()
            .filter(|l| l.requests > 0)
            .map(|l| l.error_rate)
            .ok_or_else(|| "no requests were recorded".into()),
        Metric::Latency(stat) => {
            let p = report
                .load
                .as_ref()
                .and_then(|l| l.latency)
                .ok_or_else(|| "no latency was recorded".to_string())?;
            Ok(stat.of(&p) / 1000.0)
        }
        Metric::CostPer1m => report
            .cost
            .as_ref()
            .and_then(|c| c.run.total.cost_per_1m)
            .ok_or_else(|| "no cost per request (no pod-seconds or no successful requests)".into()),
        Metric::Rto => {
            if report.recovery.is_empty() {
                return Err("no fault was injected, so no recovery was measured".into());
            }
            if let Some(r) = report.recovery.iter().find(|r| !r.recovered) {
                return Err(format!(
                    "clients had not recovered from {} ({}) when the load ended",
                    r.action, r.id
                ));
            }
            // A fault no request noticed recovered at once.
            Ok(report
                .recovery
                .iter()
                .map(|r| r.rto_ms.unwrap_or(0) as f64)
                .fold(0.0, f64::max))
        }
        Metric::Rpo | Metric::RpoWindow => {
            let w = report
                .writes
                .as_ref()
                .filter(|w| w.verify_url.is_some())
                .ok_or_else(|| "no writes were read back (resil load --write-ratio)".to_string())?;
            Ok(match metric {
                Metric::Rpo => w.lost as f64,
                // No write lost: a window of nothing.
                _ => w.rpo_window_ms.unwrap_or(0) as f64,
            })
        }
    }
}

/// Formats a value in a metric's unit for messages.
pub fn format_value(metric: Metric, value: f64) -> String {
    match metric.unit() {
        "ratio" => format!("{:.3}%", value * 100.0),
        "usd" => crate::cost::usd(value),
        "writes" => format!("{value:.0} writes"),
        _ => format!("{value:.1}ms"),
    }
}

/// Judges every whole-run SLO against the report's figures.
pub fn evaluate(slos: &[Slo], report: &Report) -> Vec<SloVerdict> {
    slos.iter()
        .map(|slo| {
            let name = slo.metric.name();
            let threshold = format_value(slo.metric, slo.threshold);
            let (actual, passed, message) = match actual(slo.metric, report) {
                Ok(v) => {
                    let passed = slo.op.holds(v, slo.threshold);
                    let verdict = if passed { "holds" } else { "FAILED" };
                    let message = format!(
                        "{name} {} {} {threshold}: {verdict}",
                        format_value(slo.metric, v),
                        if passed { slo.op.symbol() } else { "vs" },
                    );
                    (Some(v), passed, message)
                }
                Err(why) => (None, false, format!("{name} not measured: {why}")),
            };
            SloVerdict {
                expression: slo.expression.clone(),
                metric: name.to_string(),
                threshold: slo.threshold,
                actual,
                unit: slo.metric.unit().to_string(),
                passed,
                message,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_example_parses_with_units_normalised() {
        let slos =
            parse_list("failover_time<2s,downtime<1s,error_rate<1%,p99<300ms,cost_per_1m<0.50")
                .unwrap();
        let got: Vec<(&str, Op, f64)> = slos
            .iter()
            .map(|s| (s.metric.name(), s.op, s.threshold))
            .collect();
        assert_eq!(
            got,
            vec![
                ("failover_time", Op::Lt, 2000.0),
                ("downtime", Op::Lt, 1000.0),
                ("error_rate", Op::Lt, 0.01),
                ("p99", Op::Lt, 300.0),
                ("cost_per_1m", Op::Lt, 0.5),
            ]
        );
    }

    #[test]
    fn operators_spaces_and_alternative_forms_parse() {
        let s = parse(" p50 <= 20ms ").unwrap();
        assert_eq!((s.op, s.threshold), (Op::Le, 20.0));
        assert_eq!(parse("error_rate<0.005").unwrap().threshold, 0.005);
        assert_eq!(parse("cost_per_1m>=$1.25").unwrap().op, Op::Ge);
        assert_eq!(parse("max_latency>1s").unwrap().op, Op::Gt);
    }

    #[test]
    fn rpo_is_a_count_of_writes_and_rpo_window_a_duration() {
        let slos = parse_list("rpo<1,rpo_window<=500ms").unwrap();
        assert_eq!((slos[0].metric, slos[0].threshold), (Metric::Rpo, 1.0));
        assert_eq!(
            (slos[1].metric, slos[1].threshold),
            (Metric::RpoWindow, 500.0)
        );
        assert!(
            parse("rpo<1s")
                .unwrap_err()
                .to_string()
                .contains("number of writes")
        );
        assert_eq!(format_value(Metric::Rpo, 3.0), "3 writes");
    }

    #[test]
    fn bad_expressions_say_what_is_wrong() {
        let cases = [
            ("p98<300ms", "unknown metric \"p98\""),
            ("p99=300ms", "expected METRIC<VALUE"),
            ("p99<300", "not a duration"),
            ("error_rate<150%", "not a rate"),
            ("cost_per_1m<cheap", "not an amount"),
        ];
        for (expr, want) in cases {
            let err = parse_list(expr).unwrap_err().to_string();
            assert!(err.contains(want) && err.contains(expr), "{expr}: {err}");
        }
    }
}
