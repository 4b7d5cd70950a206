//! SLOs on a window of the load (`window_slos`): "once the fault was handled, the error
//! rate is back under 1 %" — what a whole-run SLO cannot say, since the seconds before
//! the remedy count too. Judged from the one-second load buckets in the run's timeline.
//!
//! Pure: parsing and judging. [`super::judge`] calls [`judge`] with the window SLOs
//! recorded in `run.json` (so `resil run` and `resil report` give the same verdicts);
//! `--fail-fast` calls it as windows are decided, the runner's abort rules parse with
//! [`WindowCheck::parse_with`].

use std::time::Duration;

use crate::report::model::SloVerdict;
use crate::results::WindowSlo;
use crate::results::timeline::{Event, EventKind};

/// What a window SLO bounds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum WindowCheck {
    /// errors ÷ requests over the window, below this fraction.
    ErrorRate(f64),
    /// The worst one-second p99 in the window, below this (conservative: a percentile of
    /// the whole window is never above the worst second's).
    P99(Duration),
}

impl WindowCheck {
    /// Parses `error_rate<1%` or `p99<300ms`.
    pub fn parse(text: &str) -> Result<WindowCheck, String> {
        WindowCheck::parse_with(text, '<').ok_or_else(|| {
            format!(
                "{text:?}: use error_rate<PCT% (e.g. error_rate<1%) or p99<DURATION (e.g. \
                 p99<300ms)"
            )
        })
    }

    /// Parses `error_rate OP PCT%` or `p99 OP DURATION` with the operator `op` (`<` for a
    /// window SLO, `>` for an abort rule).
    pub fn parse_with(text: &str, op: char) -> Option<WindowCheck> {
        let (key, value) = text.split_once(op)?;
        let value = value.trim();
        match key.trim() {
            "error_rate" => {
                let pct: f64 = value.trim_end_matches('%').parse().ok()?;
                Some(WindowCheck::ErrorRate(pct / 100.0))
            }
            "p99" => Some(WindowCheck::P99(humantime::parse_duration(value).ok()?)),
            _ => None,
        }
    }

    /// The metric's name, bound and unit as a report's verdicts give them.
    fn figures(self) -> (&'static str, f64, &'static str) {
        match self {
            WindowCheck::ErrorRate(max) => ("error_rate", max, "ratio"),
            WindowCheck::P99(max) => ("p99", max.as_secs_f64() * 1000.0, "ms"),
        }
    }
}

/// One window SLO's verdict.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowVerdict {
    /// `error_rate<1% from 20s to 40s`.
    pub expression: String,
    pub passed: bool,
    /// What was measured, in words (`0.4% of 1200 requests`).
    pub actual: String,
    /// The measured value in the check's unit (`None`: no requests in the window).
    pub value: Option<f64>,
    /// The check, when the expression parses.
    check: Option<WindowCheck>,
}

impl WindowVerdict {
    /// As a report verdict, beside the whole-run SLOs'.
    pub fn into_verdict(self) -> SloVerdict {
        let (metric, threshold, unit) =
            self.check.map_or(("window", 0.0, "ratio"), |c| c.figures());
        let verdict = if self.passed { "holds" } else { "FAILED" };
        SloVerdict {
            message: format!("{}: {}: {verdict}", self.expression, self.actual),
            expression: self.expression,
            metric: metric.to_string(),
            threshold,
            actual: self.value,
            unit: unit.to_string(),
            passed: self.passed,
        }
    }
}

/// Judges `slos` on the load buckets of `events` (bucket `second` counts from the start
/// of the load). A window without requests fails: it has not shown anything.
pub fn judge(slos: &[WindowSlo], events: &[Event]) -> Vec<WindowVerdict> {
    slos.iter()
        .map(|w| {
            let from = w.from.as_secs_f64();
            let to = w.to.map_or(f64::INFINITY, |t| t.as_secs_f64());
            let (mut requests, mut errors, mut worst_p99) = (0u64, 0u64, 0u64);
            for e in events {
                if let EventKind::LoadBucket {
                    second,
                    requests: r,
                    errors: x,
                    p99_us,
                    ..
                } = &e.kind
                {
                    let t = *second as f64;
                    if t >= from && t < to {
                        requests += r;
                        errors += x;
                        if *r > 0 {
                            worst_p99 = worst_p99.max(*p99_us);
                        }
                    }
                }
            }
            let expression = format!(
                "{} from {}{}",
                w.slo,
                humantime::format_duration(w.from),
                w.to.map(|t| format!(" to {}", humantime::format_duration(t)))
                    .unwrap_or_default()
            );
            // Validated when the scenario was read; an unparsable one cannot pass.
            let check = WindowCheck::parse(&w.slo);
            let (passed, actual, value) = match &check {
                _ if requests == 0 => (false, "no requests in the window".to_string(), None),
                Ok(WindowCheck::ErrorRate(max)) => {
                    let rate = errors as f64 / requests as f64;
                    (
                        rate < *max,
                        format!("{:.2}% of {requests} requests", rate * 100.0),
                        Some(rate),
                    )
                }
                Ok(WindowCheck::P99(max)) => {
                    let p99 = Duration::from_micros(worst_p99);
                    let ms = p99.as_secs_f64() * 1000.0;
                    (
                        p99 < *max,
                        format!("worst second's p99 {ms:.1} ms"),
                        Some(ms),
                    )
                }
                Err(e) => (false, e.clone(), None),
            };
            WindowVerdict {
                expression,
                passed,
                actual,
                value,
                check: check.ok(),
            }
        })
        .collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A load bucket of `requests` with `errors` and a `p99_us`, at `second`.
    pub(crate) fn bucket(second: u64, requests: u64, errors: u64, p99_us: u64) -> Event {
        Event::now(
            "load",
            EventKind::test_bucket(second, requests, errors, p99_us, Default::default()),
        )
    }

    /// The window SLO `slo` over seconds [`from`, `to`) of the load.
    pub(crate) fn window(from: u64, to: Option<u64>, slo: &str) -> WindowSlo {
        WindowSlo {
            from: Duration::from_secs(from),
            to: to.map(Duration::from_secs),
            slo: slo.to_string(),
        }
    }

    #[test]
    fn a_window_slo_counts_only_the_seconds_inside_the_window() {
        let events = [
            bucket(0, 100, 0, 1_000),
            bucket(1, 100, 40, 900_000),
            bucket(2, 100, 0, 2_000),
            bucket(3, 100, 1, 3_000),
        ];
        let v = judge(&[window(2, None, "error_rate<1%")], &events);
        assert!(v[0].passed, "{v:?}");
        assert!(v[0].actual.contains("0.50% of 200"), "{v:?}");
        let v = judge(&[window(1, Some(3), "error_rate<1%")], &events);
        assert!(!v[0].passed);
        let v = judge(&[window(2, None, "p99<10ms")], &events);
        assert!(v[0].passed, "{v:?}");
        let v = judge(&[window(0, Some(2), "p99<10ms")], &events);
        assert!(!v[0].passed, "{v:?}");
    }

    #[test]
    fn an_empty_window_fails_and_a_bad_expression_says_what_is_valid() {
        let v = judge(&[window(9, None, "error_rate<1%")], &[bucket(0, 10, 0, 0)]);
        assert!(!v[0].passed);
        assert!(v[0].actual.contains("no requests"));
        let err = WindowCheck::parse("errors<1").unwrap_err();
        assert!(err.contains("error_rate<PCT%"), "{err}");
    }
}
