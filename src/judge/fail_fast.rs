//! `resil run --fail-fast`: the SLO breaches a run can see while it runs and that nothing
//! later can undo, so the run stops at the first one, reverts its faults and fails,
//! instead of running on to a verdict that is already decided.
//!
//! Decided as soon as seen:
//! - `downtime` and `failover_time` bounded above (`<`, `<=`): each is the longest episode
//!   or failover of the run, so one over the bound decides it (a downtime episode when it
//!   ends: the load reports episodes as they close);
//! - a window SLO `p99<DUR`: the worst second in its window decides it;
//! - a window SLO `error_rate<PCT%` with an end (`to`): decided once the load is past it.
//!
//! The rest (the whole run's error rate and percentiles, cost, scaling latency, windows
//! that run to the end) cannot be decided early and are judged at the end, as without
//! the flag; what this module decides early, [`super::judge`] decides the same way at the
//! end. Pure: the runner feeds it the load's events and the watcher's failovers.

use std::time::Duration;

use super::slo::{self, Metric, Op, Slo};
use super::window::{self, WindowCheck};
use crate::results::WindowSlo;
use crate::results::timeline::{Event, EventKind};

/// The SLOs of one run that can be decided while it runs.
#[derive(Debug)]
pub struct FailFast {
    /// `downtime` and `failover_time` SLOs with an upper bound.
    longest: Vec<Slo>,
    windows: Vec<Window>,
    /// The load's one-second buckets so far, for judging windows.
    buckets: Vec<Event>,
}

#[derive(Debug)]
struct Window {
    slo: WindowSlo,
    check: WindowCheck,
    decided: bool,
}

impl FailFast {
    /// From a run's `slos` and `window_slos` (validated when the scenario was read; an
    /// expression that does not parse is left to the end-of-run verdict).
    pub fn new(slos: &[String], windows: &[WindowSlo]) -> FailFast {
        let longest = slos
            .iter()
            .filter_map(|s| slo::parse(s).ok())
            .filter(|s| matches!(s.metric, Metric::Downtime | Metric::FailoverTime))
            .filter(|s| matches!(s.op, Op::Lt | Op::Le))
            .collect();
        let windows = windows
            .iter()
            .filter_map(|w| {
                let check = WindowCheck::parse(&w.slo).ok()?;
                let decidable = match check {
                    WindowCheck::P99(_) => true,
                    WindowCheck::ErrorRate(_) => w.to.is_some(),
                };
                decidable.then(|| Window {
                    slo: w.clone(),
                    check,
                    decided: false,
                })
            })
            .collect();
        FailFast {
            longest,
            windows,
            buckets: Vec::new(),
        }
    }

    /// Whether any SLO of the run can be decided early.
    pub fn is_empty(&self) -> bool {
        self.longest.is_empty() && self.windows.is_empty()
    }

    /// The breach this event of the load decides, if any.
    pub fn event(&mut self, event: &Event) -> Option<String> {
        match &event.kind {
            EventKind::Downtime {
                duration_ms: Some(ms),
                ..
            } => self.longest(Metric::Downtime, *ms, "a downtime episode"),
            EventKind::LoadBucket {
                second,
                requests,
                p99_us,
                ..
            } => {
                self.buckets.push(event.clone());
                let (second, requests, p99_us) = (*second, *requests, *p99_us);
                self.window(second, requests, p99_us)
            }
            _ => None,
        }
    }

    /// The breach a completed failover (or fail-back) of `ms` decides, if any.
    pub fn failover(&self, ms: u64) -> Option<String> {
        self.longest(Metric::FailoverTime, ms, "a failover")
    }

    fn longest(&self, metric: Metric, ms: u64, what: &str) -> Option<String> {
        self.longest
            .iter()
            .find(|s| s.metric == metric && !s.op.holds(ms as f64, s.threshold))
            .map(|s| format!("SLO {} failed: {what} took {ms} ms", s.expression))
    }

    fn window(&mut self, second: u64, requests: u64, p99_us: u64) -> Option<String> {
        let t = Duration::from_secs(second);
        for w in self.windows.iter_mut().filter(|w| !w.decided) {
            let inside = t >= w.slo.from && w.slo.to.is_none_or(|to| t < to);
            let decides = match w.check {
                WindowCheck::P99(max) => {
                    inside && requests > 0 && Duration::from_micros(p99_us) >= max
                }
                WindowCheck::ErrorRate(_) => w.slo.to.is_some_and(|to| t >= to),
            };
            if !decides {
                continue;
            }
            // An error-rate window is complete now, pass or fail; a p99 window is
            // decided only by a failure.
            let verdict = window::judge(std::slice::from_ref(&w.slo), &self.buckets).pop();
            w.decided = matches!(w.check, WindowCheck::ErrorRate(_))
                || verdict.as_ref().is_some_and(|v| !v.passed);
            if let Some(v) = verdict.filter(|v| !v.passed) {
                return Some(format!("window SLO {} failed: {}", v.expression, v.actual));
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::judge::window::tests::{bucket, window};

    fn downtime(ms: u64) -> Event {
        Event::now(
            "load",
            EventKind::Downtime {
                started_at: chrono::Utc::now(),
                ended_at: Some(chrono::Utc::now()),
                duration_ms: Some(ms),
                failed_requests: 3,
            },
        )
    }

    #[test]
    fn the_first_episode_or_failover_over_an_upper_bound_decides_it() {
        let mut f = FailFast::new(
            &[
                "downtime<1s".into(),
                "failover_time<=2s".into(),
                "error_rate<1%".into(),
            ],
            &[],
        );
        assert!(f.event(&downtime(999)).is_none());
        let why = f.event(&downtime(1000)).expect("1000 ms is not under 1s");
        assert!(
            why.contains("downtime<1s") && why.contains("1000 ms"),
            "{why}"
        );
        assert!(f.failover(2000).is_none());
        let why = f.failover(2001).expect("over 2 s");
        assert!(why.contains("failover_time<=2s"), "{why}");
        // The whole run's error rate can recover: nothing decides it early.
        assert!(f.event(&bucket(0, 100, 100, 1_000)).is_none());
    }

    #[test]
    fn slos_that_cannot_be_decided_early_leave_nothing_to_check() {
        let f = FailFast::new(
            &[
                "error_rate<1%".into(),
                "p99<300ms".into(),
                "downtime>1s".into(),
                "cost_per_1m<0.50".into(),
            ],
            &[window(10, None, "error_rate<1%")],
        );
        assert!(f.is_empty(), "{f:?}");
    }

    #[test]
    fn a_window_p99_fails_at_its_first_slow_second_inside_the_window() {
        let mut f = FailFast::new(&[], &[window(2, Some(4), "p99<10ms")]);
        // Slow, but before the window opens.
        assert!(f.event(&bucket(1, 100, 0, 50_000)).is_none());
        assert!(f.event(&bucket(2, 100, 0, 9_000)).is_none());
        let why = f
            .event(&bucket(3, 100, 0, 12_000))
            .expect("12 ms in the window");
        assert!(why.contains("p99<10ms from 2s to 4s"), "{why}");
        assert!(why.contains("12.0 ms"), "{why}");
        // Decided once: later seconds say nothing more.
        assert!(f.event(&bucket(3, 100, 0, 40_000)).is_none());
    }

    #[test]
    fn a_window_error_rate_is_decided_only_once_the_load_is_past_its_end() {
        let mut f = FailFast::new(&[], &[window(1, Some(3), "error_rate<1%")]);
        // Errors inside the window can still be diluted by later seconds in it.
        assert!(f.event(&bucket(1, 100, 5, 1_000)).is_none());
        assert!(f.event(&bucket(2, 100, 0, 1_000)).is_none());
        let why = f
            .event(&bucket(3, 100, 0, 1_000))
            .expect("2.5% over the window");
        assert!(why.contains("2.50% of 200 requests"), "{why}");

        let mut held = FailFast::new(&[], &[window(1, Some(3), "error_rate<1%")]);
        for s in 0..6 {
            assert!(
                held.event(&bucket(s, 1000, 1, 1_000)).is_none(),
                "second {s}"
            );
        }
    }
}
