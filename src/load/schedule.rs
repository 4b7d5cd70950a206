//! The open model's arrival schedule: when the k-th request is meant to leave.
//!
//! A pure function of the pace, so the coordinated-omission correction (latency from the
//! *intended* send time) and the ramp shape can be tested without a clock. Used by the
//! engine's per-thread dispatcher; the closed model has no schedule.
//!
//! Ramp: each stage moves the rate linearly from the previous stage's rate (0 before the
//! first stage) to its own over its duration; after the last stage the last rate holds.
//! The k-th send is at the time t where the integral of the rate from 0 to t equals k.

use std::time::Duration;

use super::plan::{Pace, RampStage};

/// Intended send offsets from the start of the run.
#[derive(Debug, Clone)]
pub struct Schedule {
    /// Piecewise-linear segments, in order.
    segments: Vec<Segment>,
    /// Rate after the last segment (0: nothing more is sent).
    tail_rate: f64,
    /// Sends before the tail.
    tail_from: f64,
    /// Start of the tail, in seconds.
    tail_start: f64,
}

#[derive(Debug, Clone, Copy)]
struct Segment {
    start_s: f64,
    duration_s: f64,
    from_rate: f64,
    to_rate: f64,
    /// Sends scheduled before this segment.
    before: f64,
}

impl Segment {
    fn sends(&self) -> f64 {
        (self.from_rate + self.to_rate) / 2.0 * self.duration_s
    }
}

impl Schedule {
    /// The schedule of an open-model pace; `None` for the closed model.
    pub fn for_pace(pace: &Pace) -> Option<Schedule> {
        match pace {
            Pace::Closed { .. } => None,
            Pace::Rate(rate) => Some(Schedule::ramp(&[], *rate)),
            Pace::Ramp(stages) => {
                let last = stages.last().map_or(0.0, |s| s.rate);
                Some(Schedule::ramp(stages, last))
            }
        }
    }

    fn ramp(stages: &[RampStage], tail_rate: f64) -> Schedule {
        let mut segments = Vec::with_capacity(stages.len());
        let (mut start_s, mut before, mut from_rate) = (0.0, 0.0, 0.0);
        for stage in stages {
            let segment = Segment {
                start_s,
                duration_s: stage.duration.as_secs_f64(),
                from_rate,
                to_rate: stage.rate,
                before,
            };
            start_s += segment.duration_s;
            before += segment.sends();
            from_rate = stage.rate;
            segments.push(segment);
        }
        Schedule {
            segments,
            tail_rate,
            tail_from: before,
            tail_start: start_s,
        }
    }

    /// When send number `k` (0-based) is meant to leave, from the start of the run;
    /// `None` if the schedule never reaches it (a ramp ending at rate 0).
    pub fn offset(&self, k: u64) -> Option<Duration> {
        let k = k as f64;
        for seg in &self.segments {
            let m = k - seg.before;
            if m < seg.sends() {
                let accel = (seg.to_rate - seg.from_rate) / seg.duration_s;
                // Solve from·τ + accel·τ²/2 = m for τ ≥ 0, in the form that stays exact when
                // accel is 0 and does not cancel when it is small.
                let root = (seg.from_rate * seg.from_rate + 2.0 * accel * m)
                    .max(0.0)
                    .sqrt();
                let denom = seg.from_rate + root;
                let tau = if denom > 0.0 { 2.0 * m / denom } else { 0.0 };
                return Some(Duration::from_secs_f64(
                    seg.start_s + tau.min(seg.duration_s),
                ));
            }
        }
        if self.tail_rate <= 0.0 {
            return None;
        }
        let tau = (k - self.tail_from) / self.tail_rate;
        Some(Duration::from_secs_f64(self.tail_start + tau))
    }

    /// The rate (requests per second) the schedule asks for at `t`.
    pub fn rate_at(&self, t: Duration) -> f64 {
        let t = t.as_secs_f64();
        for seg in &self.segments {
            if t < seg.start_s + seg.duration_s {
                let frac = (t - seg.start_s) / seg.duration_s;
                return seg.from_rate + (seg.to_rate - seg.from_rate) * frac;
            }
        }
        self.tail_rate
    }

    /// How many sends the schedule holds before `t` (what a perfect generator sends).
    pub fn sends_before(&self, t: Duration) -> u64 {
        let t = t.as_secs_f64();
        for seg in &self.segments {
            if t < seg.start_s + seg.duration_s {
                let tau = t - seg.start_s;
                let accel = (seg.to_rate - seg.from_rate) / seg.duration_s;
                return (seg.before + seg.from_rate * tau + accel * tau * tau / 2.0).ceil() as u64;
            }
        }
        (self.tail_from + self.tail_rate * (t - self.tail_start)).ceil() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(d: Option<Duration>) -> f64 {
        d.expect("scheduled").as_secs_f64()
    }

    #[test]
    fn a_constant_rate_spaces_sends_evenly_from_time_zero() {
        let s = Schedule::for_pace(&Pace::Rate(1000.0)).unwrap();
        assert_eq!(secs(s.offset(0)), 0.0);
        assert!((secs(s.offset(1)) - 0.001).abs() < 1e-12);
        assert!((secs(s.offset(60_000)) - 60.0).abs() < 1e-9);
        assert_eq!(s.sends_before(Duration::from_secs(10)), 10_000);
    }

    #[test]
    fn a_ramp_rises_linearly_from_zero_then_from_the_previous_stage() {
        // 10 s from 0 to 100/s (500 sends), then 30 s from 100/s to 1000/s (16 500 sends).
        let stages = super::super::plan::parse_ramp("10s:100,30s:1000").unwrap();
        let s = Schedule::for_pace(&Pace::Ramp(stages)).unwrap();
        assert!((s.rate_at(Duration::from_secs(5)) - 50.0).abs() < 1e-9);
        assert!((s.rate_at(Duration::from_secs(25)) - 550.0).abs() < 1e-9);
        assert_eq!(s.sends_before(Duration::from_secs(10)), 500);
        assert_eq!(s.sends_before(Duration::from_secs(40)), 17_000);
        // Send 500 is the first of stage two, at exactly 10 s.
        assert!((secs(s.offset(500)) - 10.0).abs() < 1e-9);
        // Send 125 is where 50·t²/10 = 125 → t = 5 s.
        assert!((secs(s.offset(125)) - 5.0).abs() < 1e-9);
        // After the ramp the last rate holds: 1000 more sends take one more second.
        assert!((secs(s.offset(18_000)) - 41.0).abs() < 1e-9);
        // Offsets never go backwards.
        let mut last = 0.0;
        for k in 0..17_500 {
            let t = secs(s.offset(k));
            assert!(t >= last, "send {k} at {t} before {last}");
            last = t;
        }
    }

    #[test]
    fn a_ramp_down_to_zero_ends_the_schedule() {
        let stages = super::super::plan::parse_ramp("1s:100,1s:0").unwrap();
        let s = Schedule::for_pace(&Pace::Ramp(stages)).unwrap();
        // 50 sends rising, 50 falling; nothing after.
        assert!(s.offset(99).is_some());
        assert!(secs(s.offset(99)) <= 2.0);
        assert_eq!(s.offset(100), None);
    }
}
