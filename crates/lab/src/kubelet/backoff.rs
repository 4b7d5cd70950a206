//! Restart and image-pull back-off, as the upstream kubelet computes them
//! (`k8s.io/client-go/util/flowcontrol.Backoff` with the kubelet's 10 s initial and
//! 300 s maximum): pure values over caller-supplied instants, so they are tested without
//! waiting. A scale factor shortens every duration for tests and quick labs.
//!
//! Crash loops (`restartPolicy: Always`): the first restart is immediate, then each
//! further crash waits 10 s, 20 s, 40 s ... capped at 300 s; when the container ran more
//! than 10 minutes (twice the cap) since the previous crash, the sequence starts over.
//! Image pulls: each failed pull waits 10 s, 20 s ... 300 s before the next attempt.

use std::time::{Duration, Instant};

/// The durations of a back-off.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BackoffPolicy {
    /// First back-off.
    pub initial: Duration,
    /// Longest back-off.
    pub max: Duration,
    /// Events further apart than this start the sequence over (upstream: 2 × max).
    pub reset_after: Duration,
}

impl BackoffPolicy {
    /// The kubelet's: 10 s doubling to 300 s, reset after 10 minutes.
    pub fn kubelet() -> BackoffPolicy {
        BackoffPolicy {
            initial: Duration::from_secs(10),
            max: Duration::from_secs(300),
            reset_after: Duration::from_secs(600),
        }
    }

    /// Every duration multiplied by `factor` (e.g. 0.01 turns 10 s into 100 ms).
    /// Non-finite or negative factors are treated as 1.
    pub fn scaled(self, factor: f64) -> BackoffPolicy {
        let factor = if factor.is_finite() && factor >= 0.0 {
            factor
        } else {
            1.0
        };
        BackoffPolicy {
            initial: self.initial.mul_f64(factor),
            max: self.max.mul_f64(factor),
            reset_after: self.reset_after.mul_f64(factor),
        }
    }
}

/// One back-off sequence (one container, or one image of one pod).
#[derive(Debug, Clone)]
pub struct Backoff {
    policy: BackoffPolicy,
    /// The current back-off and when it was last advanced.
    entry: Option<(Duration, Instant)>,
}

impl Backoff {
    /// A fresh sequence.
    pub fn new(policy: BackoffPolicy) -> Backoff {
        Backoff {
            policy,
            entry: None,
        }
    }

    /// The back-off in force for an event at `at`, if any (none yet, or expired).
    fn current(&self, at: Instant) -> Option<Duration> {
        let (backoff, last) = self.entry?;
        (at.saturating_duration_since(last) <= self.policy.reset_after).then_some(backoff)
    }

    /// Advances the sequence for an event at `at` and returns the new back-off
    /// (upstream `Next`): initial when fresh or expired, else doubled up to the cap.
    fn advance(&mut self, at: Instant) -> Duration {
        let next = match self.current(at) {
            Some(backoff) => (backoff * 2).min(self.policy.max),
            None => self.policy.initial,
        };
        self.entry = Some((next, at));
        next
    }

    /// A container exited at `exited_at`: how long to wait before starting it again.
    pub fn after_crash(&mut self, exited_at: Instant) -> Duration {
        let wait = self.current(exited_at).unwrap_or(Duration::ZERO);
        self.advance(exited_at);
        wait
    }

    /// An image pull failed at `failed_at`: how long to wait before the next attempt.
    pub fn after_pull_failure(&mut self, failed_at: Instant) -> Duration {
        self.advance(failed_at)
    }
}

/// The `CrashLoopBackOff` waiting message, as the kubelet words it.
pub fn crash_loop_message(
    wait: Duration,
    container: &str,
    pod: &str,
    namespace: &str,
    uid: &str,
) -> String {
    format!(
        "back-off {} restarting failed container={container} pod={pod}_{namespace}({uid})",
        go_duration(wait)
    )
}

/// A duration the way Go prints it (`10s`, `1m20s`, `5m0s`, `150ms`).
pub fn go_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let secs = d.as_secs_f64();
    if secs < 60.0 {
        return format!("{}s", trim(secs));
    }
    let minutes = (secs / 60.0).floor();
    format!("{}m{}s", minutes as u64, trim(secs - minutes * 60.0))
}

fn trim(secs: f64) -> String {
    let text = format!("{secs:.3}");
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn crash_loop_restarts_at_once_then_doubles_from_10s_to_300s() {
        let mut backoff = Backoff::new(BackoffPolicy::kubelet());
        let mut now = Instant::now();
        let mut waits = Vec::new();
        for _ in 0..9 {
            let wait = backoff.after_crash(now);
            waits.push(wait.as_secs());
            // Crashes right after each restart.
            now += wait + secs(1);
        }
        assert_eq!(waits, vec![0, 10, 20, 40, 80, 160, 300, 300, 300]);
    }

    #[test]
    fn ten_minutes_of_running_resets_the_crash_loop() {
        let mut backoff = Backoff::new(BackoffPolicy::kubelet());
        let start = Instant::now();
        backoff.after_crash(start);
        assert_eq!(backoff.after_crash(start + secs(5)), secs(10));
        assert_eq!(backoff.after_crash(start + secs(20)), secs(20));
        // Ran 11 minutes before crashing again: back to an immediate restart.
        let later = start + secs(20 + 660);
        assert_eq!(backoff.after_crash(later), Duration::ZERO);
        assert_eq!(backoff.after_crash(later + secs(1)), secs(10));
    }

    #[test]
    fn image_pull_failures_wait_10s_doubling() {
        let mut backoff = Backoff::new(BackoffPolicy::kubelet());
        let mut now = Instant::now();
        let mut waits = Vec::new();
        for _ in 0..7 {
            let wait = backoff.after_pull_failure(now);
            waits.push(wait.as_secs());
            now += wait;
        }
        assert_eq!(waits, vec![10, 20, 40, 80, 160, 300, 300]);
    }

    #[test]
    fn scaling_shortens_every_duration() {
        let policy = BackoffPolicy::kubelet().scaled(0.01);
        assert_eq!(policy.initial, Duration::from_millis(100));
        assert_eq!(policy.max, secs(3));
        assert_eq!(policy.reset_after, secs(6));
        assert_eq!(
            BackoffPolicy::kubelet().scaled(f64::NAN),
            BackoffPolicy::kubelet()
        );
    }

    #[test]
    fn messages_read_like_the_kubelets() {
        assert_eq!(
            crash_loop_message(secs(20), "web", "web-abc", "default", "u-1"),
            "back-off 20s restarting failed container=web pod=web-abc_default(u-1)"
        );
        assert_eq!(go_duration(secs(300)), "5m0s");
        assert_eq!(go_duration(secs(80)), "1m20s");
        assert_eq!(go_duration(Duration::from_millis(150)), "150ms");
        assert_eq!(go_duration(Duration::from_millis(2500)), "2.5s");
    }
}
