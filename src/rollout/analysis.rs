//! The rollout's analysis: `--analysis "error_rate<1%,p99<200ms"` judged once per
//! `--interval` on the one-second buckets of the load the rollout generates (or the
//! scenario's load). The grammar is the judge's (`src/judge/expr.rs`); the keys are
//! `error_rate` (errors ÷ requests over the interval) and `p50`, `p90`, `p99`, `max` (the
//! worst one-second figure of the interval: conservative, a percentile of the whole
//! interval is never above the worst second's — as `src/judge/window.rs` judges windows).
//!
//! Pure: the clock is passed in ([`Analyst::tick`]); the engine feeds buckets and asks.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::judge::expr::{self, Op};
use crate::results::timeline::{Event, EventKind};

/// The keys an analysis may judge.
pub const VALID_KEYS: &str = "error_rate, p50, p90, p99, max";

/// What a check measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Metric {
    ErrorRate,
    P50,
    P90,
    P99,
    Max,
}

/// One comparison, its limit in the metric's unit (a ratio, or µs).
#[derive(Debug, Clone, PartialEq)]
struct Check {
    metric: Metric,
    op: Op,
    limit: f64,
    /// As written, for messages.
    text: String,
}

/// A parsed `--analysis` with its interval.
#[derive(Debug, Clone, PartialEq)]
pub struct Analysis {
    checks: Vec<Check>,
    /// How long each judged interval lasts.
    pub interval: Duration,
}

impl Analysis {
    /// Parses `error_rate<1%,p99<200ms`; the error names the bad expression and what is
    /// valid.
    pub fn parse(text: &str, interval: Duration) -> Result<Analysis, String> {
        if interval < Duration::from_secs(1) {
            return Err(format!(
                "--interval {}: the load reports once a second, so give 1s or more",
                humantime::format_duration(interval)
            ));
        }
        let checks = expr::expressions(text)
            .map(parse_check)
            .collect::<Result<Vec<_>, _>>()?;
        if checks.is_empty() {
            return Err(format!(
                "--analysis {text:?} has no check; write e.g. \"error_rate<1%,p99<200ms\" \
                 (keys: {VALID_KEYS})"
            ));
        }
        Ok(Analysis { checks, interval })
    }
}

fn parse_check(text: &str) -> Result<Check, String> {
    let bad = |why: &str| {
        format!(
            "--analysis {text:?}: {why}; write e.g. \"error_rate<1%,p99<200ms\" (keys: {VALID_KEYS})"
        )
    };
    let c = expr::split(text).ok_or_else(|| bad("no comparison (<, <=, >, >=)"))?;
    let metric = match c.key {
        "error_rate" => Metric::ErrorRate,
        "p50" => Metric::P50,
        "p90" => Metric::P90,
        "p99" => Metric::P99,
        "max" => Metric::Max,
        other => return Err(bad(&format!("unknown key {other:?}"))),
    };
    let limit = if metric == Metric::ErrorRate {
        expr::parse_ratio(c.value).ok_or_else(|| bad("give a ratio such as 1% or 0.01"))?
    } else {
        let d = expr::parse_duration(c.value)
            .ok_or_else(|| bad("give a duration with a unit such as 200ms"))?;
        d.as_secs_f64() * 1e6
    };
    Ok(Check {
        metric,
        op: c.op,
        limit,
        text: text.to_string(),
    })
}

/// One second of load, as the analysis reads it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bucket {
    /// The second's start.
    pub ts: DateTime<Utc>,
    pub requests: u64,
    pub errors: u64,
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
}

impl Bucket {
    /// The bucket of a `load_bucket` event; `None` for any other event.
    pub fn of(event: &Event) -> Option<Bucket> {
        match &event.kind {
            EventKind::LoadBucket {
                requests,
                errors,
                p50_us,
                p90_us,
                p99_us,
                max_us,
                ..
            } => Some(Bucket {
                ts: event.ts,
                requests: *requests,
                errors: *errors,
                p50_us: *p50_us,
                p90_us: *p90_us,
                p99_us: *p99_us,
                max_us: *max_us,
            }),
            _ => None,
        }
    }

    fn latency_us(&self, metric: Metric) -> u64 {
        match metric {
            Metric::P50 => self.p50_us,
            Metric::P90 => self.p90_us,
            Metric::P99 => self.p99_us,
            Metric::Max | Metric::ErrorRate => self.max_us,
        }
    }
}

/// One judged interval.
#[derive(Debug, Clone, PartialEq)]
pub struct IntervalVerdict {
    /// 1-based, counted over the whole rollout.
    pub number: u32,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub requests: u64,
    pub errors: u64,
    /// The worst one-second p99 (µs).
    pub p99_us: u64,
    /// Each failed check with what was measured (`error_rate<1%: measured 31.0%`).
    pub failures: Vec<String>,
    /// Whether any request was answered in the interval (else nothing was judged).
    pub judged: bool,
    /// The first second that breached a failed check on its own, else the interval's end.
    pub breached_at: DateTime<Utc>,
}

impl IntervalVerdict {
    /// Whether every check held (an interval without requests holds: nothing to judge).
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }

    /// The failures in one line.
    pub fn reason(&self) -> String {
        self.failures.join("; ")
    }
}

/// Accumulates buckets and judges one interval at a time.
#[derive(Debug, Clone)]
pub struct Analyst {
    analysis: Analysis,
    started: DateTime<Utc>,
    judged: u32,
    buckets: Vec<Bucket>,
}

impl Analyst {
    /// Starts the first interval at `now`.
    pub fn new(analysis: Analysis, now: DateTime<Utc>) -> Analyst {
        Analyst {
            analysis,
            started: now,
            judged: 0,
            buckets: Vec::new(),
        }
    }

    /// Adds one second of load to the interval under way.
    pub fn add(&mut self, bucket: Bucket) {
        self.buckets.push(bucket);
    }

    /// When the interval under way ends.
    pub fn due_at(&self) -> DateTime<Utc> {
        self.started + chrono::Duration::from_std(self.analysis.interval).unwrap_or_default()
    }

    /// Intervals judged so far.
    pub fn judged(&self) -> u32 {
        self.judged
    }

    /// Judges the interval under way when it is over at `now`, and starts the next.
    pub fn tick(&mut self, now: DateTime<Utc>) -> Option<IntervalVerdict> {
        (now >= self.due_at()).then(|| self.judge(now))
    }

    /// Judges the interval under way now (over or not) and starts the next at `now`.
    pub fn judge(&mut self, now: DateTime<Utc>) -> IntervalVerdict {
        self.judged += 1;
        let buckets = std::mem::take(&mut self.buckets);
        let requests: u64 = buckets.iter().map(|b| b.requests).sum();
        let errors: u64 = buckets.iter().map(|b| b.errors).sum();
        let p99_us = buckets.iter().map(|b| b.p99_us).max().unwrap_or(0);
        let mut failures = Vec::new();
        let mut breached_at: Option<DateTime<Utc>> = None;
        if requests > 0 {
            for check in &self.analysis.checks {
                let (actual, shown) = measured(check.metric, &buckets, requests, errors);
                if check.op.holds(actual, check.limit) {
                    continue;
                }
                failures.push(format!("{}: measured {shown}", check.text));
                let first = buckets.iter().find(|b| {
                    let (v, _) =
                        measured(check.metric, std::slice::from_ref(b), b.requests, b.errors);
                    b.requests > 0 && !check.op.holds(v, check.limit)
                });
                if let Some(b) = first {
                    breached_at = Some(breached_at.map_or(b.ts, |t| t.min(b.ts)));
                }
            }
        }
        let verdict = IntervalVerdict {
            number: self.judged,
            from: self.started,
            to: now,
            requests,
            errors,
            p99_us,
            failures,
            judged: requests > 0,
            breached_at: breached_at.unwrap_or(now),
        };
        self.started = now;
        verdict
    }
}

/// The metric's value over `buckets` in its unit, and as shown to a reader.
fn measured(metric: Metric, buckets: &[Bucket], requests: u64, errors: u64) -> (f64, String) {
    if metric == Metric::ErrorRate {
        let rate = errors as f64 / requests.max(1) as f64;
        return (rate, format!("{:.1}% of {requests}", rate * 100.0));
    }
    let worst = buckets
        .iter()
        .map(|b| b.latency_us(metric))
        .max()
        .unwrap_or(0);
    (worst as f64, format!("{:.1}ms", worst as f64 / 1000.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_900_000_000 + s, 0).unwrap()
    }

    fn bucket(s: i64, requests: u64, errors: u64, p99_ms: u64) -> Bucket {
        Bucket {
            ts: at(s),
            requests,
            errors,
            p50_us: 1_000,
            p90_us: 2_000,
            p99_us: p99_ms * 1000,
            max_us: p99_ms * 1000,
        }
    }

    fn analyst(text: &str, secs: u64) -> Analyst {
        Analyst::new(
            Analysis::parse(text, Duration::from_secs(secs)).unwrap(),
            at(0),
        )
    }

    #[test]
    fn an_interval_is_judged_only_once_it_is_over() {
        let mut a = analyst("error_rate<1%,p99<200ms", 5);
        a.add(bucket(0, 100, 0, 10));
        assert_eq!(a.tick(at(4)), None);
        let v = a.tick(at(5)).unwrap();
        assert!(v.passed() && v.judged, "{v:?}");
        assert_eq!((v.number, v.requests, v.from, v.to), (1, 100, at(0), at(5)));
        // The next interval starts where this one was judged.
        assert_eq!(a.due_at(), at(10));
    }

    #[test]
    fn a_breach_says_which_check_failed_with_what_and_when_it_began() {
        let mut a = analyst("error_rate<1%,p99<200ms", 5);
        a.tick(at(5)).unwrap();
        a.add(bucket(5, 100, 0, 10));
        a.add(bucket(6, 100, 30, 10));
        a.add(bucket(7, 100, 30, 250));
        let v = a.tick(at(10)).unwrap();
        assert!(!v.passed());
        assert_eq!(v.number, 2);
        assert_eq!(
            v.failures,
            vec![
                "error_rate<1%: measured 20.0% of 300".to_string(),
                "p99<200ms: measured 250.0ms".to_string()
            ]
        );
        assert_eq!(v.breached_at, at(6));
    }

    #[test]
    fn an_interval_without_requests_judges_nothing_and_holds() {
        let mut a = analyst("error_rate<1%", 2);
        let v = a.tick(at(2)).unwrap();
        assert!(v.passed() && !v.judged);
    }

    #[test]
    fn bad_expressions_and_intervals_are_refused_with_what_is_valid() {
        let err = |t: &str| Analysis::parse(t, Duration::from_secs(5)).unwrap_err();
        assert!(err("latency<1s").contains("unknown key"));
        assert!(err("latency<1s").contains(VALID_KEYS));
        assert!(err("error_rate=1%").contains("no comparison"));
        assert!(err("error_rate<lots").contains("ratio"));
        assert!(err("p99<200").contains("unit"));
        assert!(err("").contains("no check"));
        let short = Analysis::parse("p99<1s", Duration::from_millis(500)).unwrap_err();
        assert!(short.contains("1s or more"), "{short}");
    }
}
