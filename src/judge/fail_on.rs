//! `resil load --fail-on` thresholds: `p99<250ms,error_rate<1%,rps>=1000` parsed into
//! checks and evaluated against a finished load's `LoadSummary`. Each expression states
//! what must hold; a run that does not meet one has breached it (the command exits 1).
//! Its keys and units are the load's own (`max`, `mean`, `rps`; latency in µs), not the
//! SLOs' (`max_latency`, ms). A load with `--out` records them in `run.json`, and
//! [`verdicts`] judges them again from that directory for `resil report`, on the same
//! figures. Pure: no I/O; called by `load` (as `load::thresholds`) and [`super::judge`].

use std::fmt;

use super::LatencyStat;
pub use super::expr::Op;
use super::expr::{self as grammar};
use crate::report::model::{LoadFigures, Report, SloVerdict};
use crate::results::summary::{LoadSummary, Percentiles};

/// The keys `--fail-on` understands, for error messages.
pub const VALID_KEYS: &str = "p50, p75, p90, p99, p999, max, mean (durations like 250ms or 1.5s), \
     error_rate (1% or 0.01), rps / achieved_rate (requests per second)";

/// What a threshold looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// A latency quantile or statistic, in microseconds.
    Latency(LatencyStat),
    /// Failed requests ÷ requests, as a fraction.
    ErrorRate,
    /// Achieved requests per second.
    Rps,
}

/// One parsed threshold.
#[derive(Debug, Clone, PartialEq)]
pub struct Threshold {
    pub metric: Metric,
    pub op: Op,
    /// µs for latency, a fraction for error_rate, requests per second for rps.
    pub limit: f64,
    /// The key as written (`p99`, `rps`, ...).
    key: String,
}

impl fmt::Display for Threshold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}{}{}",
            self.key,
            self.op.symbol(),
            format_value(self.metric, self.limit)
        )
    }
}

fn format_value(metric: Metric, v: f64) -> String {
    match metric {
        Metric::Latency(_) => {
            if v >= 1_000_000.0 {
                format!("{}s", round3(v / 1_000_000.0))
            } else if v >= 1_000.0 {
                format!("{}ms", round3(v / 1_000.0))
            } else {
                format!("{}us", round3(v))
            }
        }
        Metric::ErrorRate => format!("{}%", round3(v * 100.0)),
        Metric::Rps => format!("{}", round3(v)),
    }
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

/// A threshold the run did not meet.
#[derive(Debug, Clone, PartialEq)]
pub struct Breach {
    /// The threshold as written, e.g. `p99<250ms`.
    pub threshold: String,
    /// The measured value, e.g. `312.4ms`.
    pub actual: String,
}

/// A `--fail-on` expression that does not parse (`load::LoadError` names the valid keys).
#[derive(Debug, Clone, PartialEq)]
pub struct InvalidThreshold {
    pub expr: String,
    pub reason: String,
}

/// Parses a comma-separated list of thresholds.
pub fn parse(text: &str) -> Result<Vec<Threshold>, InvalidThreshold> {
    let out = grammar::expressions(text)
        .map(parse_one)
        .collect::<Result<Vec<_>, _>>()?;
    if out.is_empty() {
        return Err(invalid(text, "no threshold given"));
    }
    Ok(out)
}

fn invalid(expr: &str, reason: &str) -> InvalidThreshold {
    InvalidThreshold {
        expr: expr.to_string(),
        reason: reason.to_string(),
    }
}

fn parse_one(expr: &str) -> Result<Threshold, InvalidThreshold> {
    let grammar::Comparison { key, op, value } =
        grammar::split(expr).ok_or_else(|| invalid(expr, "expected KEY<VALUE or KEY>VALUE"))?;
    let key = key.to_ascii_lowercase();
    let metric = match key.as_str() {
        "p50" => Metric::Latency(LatencyStat::P50),
        "p75" => Metric::Latency(LatencyStat::P75),
        "p90" => Metric::Latency(LatencyStat::P90),
        "p99" => Metric::Latency(LatencyStat::P99),
        "p999" | "p99.9" => Metric::Latency(LatencyStat::P999),
        "max" => Metric::Latency(LatencyStat::Max),
        "mean" => Metric::Latency(LatencyStat::Mean),
        "error_rate" => Metric::ErrorRate,
        "rps" | "achieved_rate" => Metric::Rps,
        _ => return Err(invalid(expr, &format!("unknown key {key:?}"))),
    };
    let limit = match metric {
        Metric::Latency(_) => grammar::parse_duration(value)
            .map(|d| d.as_secs_f64() * 1_000_000.0)
            .ok_or_else(|| invalid(expr, &format!("{value:?} is not a duration like 250ms")))?,
        Metric::ErrorRate => grammar::parse_ratio(value)
            .ok_or_else(|| invalid(expr, &format!("{value:?} is not a rate like 1% or 0.01")))?,
        Metric::Rps => value
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite() && *v >= 0.0)
            .ok_or_else(|| invalid(expr, &format!("{value:?} is not a number")))?,
    };
    Ok(Threshold {
        metric,
        op,
        limit,
        key,
    })
}

/// The thresholds `summary` does not meet.
pub fn check(thresholds: &[Threshold], summary: &LoadSummary) -> Vec<Breach> {
    let figures = Figures::of_summary(summary);
    thresholds
        .iter()
        .filter_map(|t| {
            let actual = figures.measured(t.metric);
            (!t.op.holds(actual, t.limit)).then(|| Breach {
                threshold: t.to_string(),
                actual: format_value(t.metric, actual),
            })
        })
        .collect()
}

/// The verdict of each threshold on a report's figures of the load's run (what
/// `resil report` of a load's directory gives: the verdicts the load gave).
pub fn verdicts(thresholds: &[Threshold], report: &Report) -> Vec<SloVerdict> {
    thresholds
        .iter()
        .map(|t| {
            let (unit, scale) = match t.metric {
                Metric::Latency(_) => ("ms", 0.001),
                Metric::ErrorRate => ("ratio", 1.0),
                Metric::Rps => ("per_s", 1.0),
            };
            let actual = report
                .load
                .as_ref()
                .map(|l| Figures::of_report(l).measured(t.metric));
            let passed = actual.is_some_and(|a| t.op.holds(a, t.limit));
            let message = match actual {
                Some(a) => format!(
                    "{} {} {} {}: {}",
                    t.key,
                    format_value(t.metric, a),
                    if passed { t.op.symbol() } else { "vs" },
                    format_value(t.metric, t.limit),
                    if passed { "holds" } else { "FAILED" }
                ),
                None => format!("{} not measured: no load ran", t.key),
            };
            SloVerdict {
                expression: t.to_string(),
                metric: t.key.clone(),
                threshold: t.limit * scale,
                actual: actual.map(|a| a * scale),
                unit: unit.to_string(),
                passed,
                message,
            }
        })
        .collect()
}

/// What a threshold is judged on: the load's totals and overall latency.
struct Figures {
    /// All zero when no request succeeded, as the load's summary has it.
    latency: Percentiles,
    requests: u64,
    errors: u64,
    achieved_rate: f64,
}

impl Figures {
    fn of_summary(s: &LoadSummary) -> Figures {
        Figures {
            latency: s.latency,
            requests: s.requests,
            errors: s.errors,
            achieved_rate: s.achieved_rate,
        }
    }

    fn of_report(l: &LoadFigures) -> Figures {
        Figures {
            latency: l.latency.unwrap_or_default(),
            requests: l.requests,
            errors: l.errors,
            achieved_rate: l.achieved_rate,
        }
    }

    fn measured(&self, metric: Metric) -> f64 {
        match metric {
            Metric::Latency(stat) => stat.of(&self.latency),
            Metric::ErrorRate => {
                if self.requests == 0 {
                    0.0
                } else {
                    self.errors as f64 / self.requests as f64
                }
            }
            Metric::Rps => self.achieved_rate,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::summary::Percentiles;

    fn summary(p99_us: u64, requests: u64, errors: u64, rate: f64) -> LoadSummary {
        LoadSummary {
            url: "http://x/".into(),
            model: "closed".into(),
            started_at: chrono::Utc::now(),
            duration_s: 1.0,
            target_rate: None,
            achieved_rate: rate,
            requests,
            successes: requests - errors,
            errors,
            error_kinds: Default::default(),
            status_codes: Default::default(),
            latency: Percentiles {
                p99_us,
                ..Default::default()
            },
            latency_uncorrected: None,
            by_color: Default::default(),
            by_region: Default::default(),
            late_sends: 0,
            dropped_sends: 0,
            downtime: Vec::new(),
            downtime_episodes: 0,
            downtime_total_ms: 0,
            writes: None,
        }
    }

    #[test]
    fn thresholds_parse_with_units_percentages_and_operators() {
        let t = parse("p99<250ms, error_rate<1%,rps>=1000,max<=1.5s,p50<800us").unwrap();
        assert_eq!(t.len(), 5);
        assert_eq!(t[0].metric, Metric::Latency(LatencyStat::P99));
        assert_eq!(t[0].limit, 250_000.0);
        assert_eq!(t[1].limit, 0.01);
        assert_eq!((t[2].op, t[2].limit), (Op::Ge, 1000.0));
        assert_eq!(t[3].limit, 1_500_000.0);
        assert_eq!(t[0].to_string(), "p99<250ms");
        assert_eq!(t[1].to_string(), "error_rate<1%");
    }

    #[test]
    fn a_bad_expression_names_the_valid_keys() {
        for bad in ["p98<1ms", "p99<fast", "p99=1ms", "error_rate<150%", ""] {
            let err = crate::load::LoadError::from(parse(bad).unwrap_err()).to_string();
            assert!(err.contains("error_rate"), "{bad}: {err}");
        }
    }

    #[test]
    fn breaches_are_reported_with_the_measured_value() {
        let t = parse("p99<250ms,error_rate<1%").unwrap();
        assert!(check(&t, &summary(200_000, 1000, 5, 10.0)).is_empty());
        let b = check(&t, &summary(312_400, 1000, 20, 10.0));
        assert_eq!(b.len(), 2);
        assert_eq!(b[0].threshold, "p99<250ms");
        assert_eq!(b[0].actual, "312.4ms");
        assert_eq!(b[1].actual, "2%");
    }
}
