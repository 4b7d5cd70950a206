//! The failover policy: given what the watcher sees (which colour the Service selects and
//! how many ready endpoints each colour has), decide whether to stay, switch, fail back,
//! prepare the standby, or raise the alarm — and say why.
//!
//! Pure and clock-injected: the watcher feeds it observations and `Instant`s, so every rule
//! is tested without a cluster or real time. The rules:
//! 1. **Failover**: the active colour has fewer than `ready_min` ready endpoints and the
//!    other colour has at least one → switch to the other colour.
//! 2. **Never into the dark**: if the other colour has no ready endpoint either, do not
//!    switch; raise the alarm (once per outage, not on every observation).
//! 3. **Fail back**: when the active colour is not the primary, switch back to the primary
//!    only after the primary has had at least `ready_min` ready endpoints without a break
//!    for `stable_for`. Any dip restarts the window, so a flapping primary never gets
//!    traffic back.
//! 4. **Capacity-aware** (`prepare_standby`): before moving traffic to a standby that has
//!    fewer ready replicas than the active colour was serving with, scale the standby up.
//!    If the active colour still serves (degraded, not dead), wait for the standby to be
//!    ready at that size, then switch; if the active colour has no ready endpoint at all,
//!    switch at once (a small standby beats no service) and scale it in the same breath.
//!
//! Called by the watch controller on every change it observes.

use std::time::{Duration, Instant};

use crate::domain::Color;

/// The knobs of the policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// The colour to fail back to.
    pub primary: Color,
    /// A colour with fewer ready endpoints than this is unhealthy.
    pub ready_min: u32,
    /// How long the primary must be healthy before failing back.
    pub stable_for: Duration,
    /// Scale the standby to the active colour's serving size before switching.
    pub prepare_standby: bool,
}

/// What the watcher currently sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Observation {
    /// The colour the Service selects (`None`: the selector names no known colour).
    pub active: Option<Color>,
    /// Ready endpoints of the blue pods.
    pub ready_blue: u32,
    /// Ready endpoints of the green pods.
    pub ready_green: u32,
}

impl Observation {
    /// Ready endpoints of one colour.
    pub fn ready(&self, color: Color) -> u32 {
        match color {
            Color::Blue => self.ready_blue,
            Color::Green => self.ready_green,
        }
    }
}

/// What to do, with the rule that led there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Nothing to do.
    Stay,
    /// Point the Service at `to`.
    Switch {
        to: Color,
        /// `failover` or `failback`.
        direction: Direction,
        reason: String,
    },
    /// Scale `color` to at least `replicas` ready pods (capacity-aware mode); when
    /// `then_switch` is set the switch follows once they are ready.
    Prepare {
        color: Color,
        replicas: u32,
        then_switch: bool,
        reason: String,
    },
    /// Both colours are down: nothing safe to switch to. Said once per outage.
    Alarm { reason: String },
}

/// Whether a switch moves away from a failing colour or back to the primary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Failover,
    Failback,
}

impl Direction {
    /// The word used in events and summaries.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Failover => "failover",
            Direction::Failback => "failback",
        }
    }
}

/// The policy plus the little it must remember between observations.
#[derive(Debug, Clone)]
pub struct FailoverPolicy {
    policy: Policy,
    /// Since when the primary has been continuously healthy (`None`: it is not).
    primary_healthy_since: Option<Instant>,
    /// Ready endpoints the active colour had while it was last healthy: the size the
    /// standby must match in capacity-aware mode.
    serving_size: u32,
    /// The alarm was raised for the current outage.
    alarmed: bool,
    /// A preparation is under way for this colour and size.
    preparing: Option<(Color, u32)>,
}

impl FailoverPolicy {
    /// A policy with nothing observed yet.
    pub fn new(policy: Policy) -> FailoverPolicy {
        FailoverPolicy {
            policy,
            primary_healthy_since: None,
            serving_size: 0,
            alarmed: false,
            preparing: None,
        }
    }

    /// The knobs.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The standby scale-up under way (capacity-aware mode): colour and target size.
    pub fn preparing(&self) -> Option<(Color, u32)> {
        self.preparing
    }

    fn healthy(&self, obs: &Observation, color: Color) -> bool {
        obs.ready(color) >= self.policy.ready_min.max(1)
    }

    /// Takes in `obs` without deciding anything: what a standby watcher (one that does
    /// not hold the lease) does, so that on taking over it knows how long the primary has
    /// been healthy and how big the active colour was.
    pub fn track(&mut self, obs: &Observation, now: Instant) {
        if self.healthy(obs, self.policy.primary) {
            self.primary_healthy_since.get_or_insert(now);
        } else {
            self.primary_healthy_since = None;
        }
        if let Some(active) = obs.active.filter(|c| self.healthy(obs, *c)) {
            self.serving_size = self.serving_size.max(obs.ready(active));
        }
    }

    /// Decides what to do about `obs`, seen at `now`.
    pub fn decide(&mut self, obs: &Observation, now: Instant) -> Decision {
        self.track(obs, now);

        // A selector that names no colour is treated as pointing at the primary's rival
        // being unknown: steer to whichever colour is healthy, primary first.
        let Some(active) = obs.active else {
            return self.switch_to_any_healthy(obs);
        };
        let standby = active.other();

        if self.healthy(obs, active) {
            self.alarmed = false;
            if self.preparing.is_some_and(|(c, _)| c == active) {
                self.preparing = None;
            }
            return self.maybe_fail_back(obs, active, now);
        }

        // The active colour is below `ready_min`.
        if obs.ready(standby) == 0 {
            if self.alarmed {
                return Decision::Stay;
            }
            self.alarmed = true;
            return Decision::Alarm {
                reason: format!(
                    "{active} has {} ready endpoint(s) (minimum {}) and {standby} has none: \
                     not switching to a colour that cannot serve",
                    obs.ready(active),
                    self.policy.ready_min
                ),
            };
        }
        self.alarmed = false;

        if self.policy.prepare_standby {
            let want = self.serving_size.max(obs.ready(active));
            if obs.ready(standby) < want {
                let active_dead = obs.ready(active) == 0;
                if active_dead {
                    // Switch now and scale in the same breath; the watcher issues both.
                    self.preparing = Some((standby, want));
                    return Decision::Switch {
                        to: standby,
                        direction: Direction::Failover,
                        reason: format!(
                            "{active} has no ready endpoint; {standby} has {} ready \
                             (scaling it to {want} to match what {active} served)",
                            obs.ready(standby)
                        ),
                    };
                }
                if self.preparing == Some((standby, want)) {
                    return Decision::Stay;
                }
                self.preparing = Some((standby, want));
                return Decision::Prepare {
                    color: standby,
                    replicas: want,
                    then_switch: true,
                    reason: format!(
                        "{active} is degraded ({} ready, minimum {}); {standby} has {} ready, \
                         fewer than the {want} {active} served with: scaling {standby} first",
                        obs.ready(active),
                        self.policy.ready_min,
                        obs.ready(standby)
                    ),
                };
            }
        }

        self.preparing = None;
        Decision::Switch {
            to: standby,
            direction: Direction::Failover,
            reason: format!(
                "{active} has {} ready endpoint(s), below the minimum of {}; {standby} has {}",
                obs.ready(active),
                self.policy.ready_min,
                obs.ready(standby)
            ),
        }
    }

    fn maybe_fail_back(&mut self, obs: &Observation, active: Color, now: Instant) -> Decision {
        let primary = self.policy.primary;
        if active == primary {
            return Decision::Stay;
        }
        let Some(since) = self.primary_healthy_since else {
            return Decision::Stay;
        };
        let stable = now.saturating_duration_since(since);
        if stable < self.policy.stable_for {
            return Decision::Stay;
        }
        self.serving_size = obs.ready(primary);
        Decision::Switch {
            to: primary,
            direction: Direction::Failback,
            reason: format!(
                "{primary} has had {} ready endpoint(s) for {} (stable window {})",
                obs.ready(primary),
                humantime::format_duration(round_ms(stable)),
                humantime::format_duration(self.policy.stable_for)
            ),
        }
    }

    fn switch_to_any_healthy(&mut self, obs: &Observation) -> Decision {
        let primary = self.policy.primary;
        for color in [primary, primary.other()] {
            if obs.ready(color) > 0 {
                return Decision::Switch {
                    to: color,
                    direction: Direction::Failover,
                    reason: format!(
                        "the Service selects no known colour; {color} has {} ready",
                        obs.ready(color)
                    ),
                };
            }
        }
        if self.alarmed {
            return Decision::Stay;
        }
        self.alarmed = true;
        Decision::Alarm {
            reason: "the Service selects no known colour and neither colour has a ready \
                     endpoint"
                .to_string(),
        }
    }
}

fn round_ms(d: Duration) -> Duration {
    Duration::from_millis(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(prepare_standby: bool) -> FailoverPolicy {
        FailoverPolicy::new(Policy {
            primary: Color::Blue,
            ready_min: 1,
            stable_for: Duration::from_secs(20),
            prepare_standby,
        })
    }

    fn obs(active: Color, blue: u32, green: u32) -> Observation {
        Observation {
            active: Some(active),
            ready_blue: blue,
            ready_green: green,
        }
    }

    #[test]
    fn healthy_active_colour_stays() {
        let mut p = policy(false);
        assert_eq!(
            p.decide(&obs(Color::Blue, 2, 2), Instant::now()),
            Decision::Stay
        );
    }

    #[test]
    fn active_without_ready_endpoints_fails_over_to_a_ready_standby() {
        let mut p = policy(false);
        let t = Instant::now();
        p.decide(&obs(Color::Blue, 2, 1), t);
        match p.decide(&obs(Color::Blue, 0, 1), t) {
            Decision::Switch {
                to,
                direction,
                reason,
            } => {
                assert_eq!(to, Color::Green);
                assert_eq!(direction, Direction::Failover);
                assert!(reason.contains("blue has 0 ready"), "{reason}");
            }
            other => panic!("expected a switch, got {other:?}"),
        }
    }

    #[test]
    fn both_colours_down_raises_the_alarm_once_and_never_switches() {
        let mut p = policy(false);
        let t = Instant::now();
        assert!(matches!(
            p.decide(&obs(Color::Blue, 0, 0), t),
            Decision::Alarm { .. }
        ));
        assert_eq!(p.decide(&obs(Color::Blue, 0, 0), t), Decision::Stay);
        // Green comes up: now the failover happens.
        assert!(matches!(
            p.decide(&obs(Color::Blue, 0, 1), t),
            Decision::Switch {
                to: Color::Green,
                ..
            }
        ));
    }

    #[test]
    fn fail_back_waits_for_the_whole_stable_window() {
        let mut p = policy(false);
        let t0 = Instant::now();
        p.decide(&obs(Color::Blue, 0, 2), t0); // switch to green
        // Blue recovers at t0+1s; green is active now.
        assert_eq!(
            p.decide(&obs(Color::Green, 1, 2), t0 + Duration::from_secs(1)),
            Decision::Stay
        );
        assert_eq!(
            p.decide(&obs(Color::Green, 1, 2), t0 + Duration::from_secs(20)),
            Decision::Stay
        );
        match p.decide(&obs(Color::Green, 1, 2), t0 + Duration::from_secs(21)) {
            Decision::Switch { to, direction, .. } => {
                assert_eq!(to, Color::Blue);
                assert_eq!(direction, Direction::Failback);
            }
            other => panic!("expected fail-back, got {other:?}"),
        }
    }

    #[test]
    fn a_flapping_primary_restarts_the_stable_window() {
        let mut p = policy(false);
        let t0 = Instant::now();
        let s = Duration::from_secs;
        p.decide(&obs(Color::Green, 1, 2), t0);
        p.decide(&obs(Color::Green, 0, 2), t0 + s(15)); // dip
        p.decide(&obs(Color::Green, 1, 2), t0 + s(16));
        assert_eq!(
            p.decide(&obs(Color::Green, 1, 2), t0 + s(30)),
            Decision::Stay
        );
        assert!(matches!(
            p.decide(&obs(Color::Green, 1, 2), t0 + s(36)),
            Decision::Switch {
                to: Color::Blue,
                ..
            }
        ));
    }

    #[test]
    fn ready_min_above_one_fails_over_a_degraded_colour() {
        let mut p = FailoverPolicy::new(Policy {
            ready_min: 2,
            ..*policy(false).policy()
        });
        assert!(matches!(
            p.decide(&obs(Color::Blue, 1, 3), Instant::now()),
            Decision::Switch {
                to: Color::Green,
                ..
            }
        ));
    }

    #[test]
    fn capacity_aware_prepares_the_standby_before_moving_a_degraded_colour() {
        let mut p = FailoverPolicy::new(Policy {
            ready_min: 3,
            ..*policy(true).policy()
        });
        let t = Instant::now();
        assert_eq!(p.decide(&obs(Color::Blue, 4, 1), t), Decision::Stay);
        match p.decide(&obs(Color::Blue, 2, 1), t) {
            Decision::Prepare {
                color,
                replicas,
                then_switch,
                ..
            } => {
                assert_eq!((color, replicas, then_switch), (Color::Green, 4, true));
            }
            other => panic!("expected prepare, got {other:?}"),
        }
        // Still scaling: no repeated order.
        assert_eq!(p.decide(&obs(Color::Blue, 2, 2), t), Decision::Stay);
        // Standby ready at size: switch.
        assert!(matches!(
            p.decide(&obs(Color::Blue, 2, 4), t),
            Decision::Switch {
                to: Color::Green,
                ..
            }
        ));
    }

    #[test]
    fn capacity_aware_switches_at_once_when_the_active_colour_is_dead() {
        let mut p = policy(true);
        let t = Instant::now();
        p.decide(&obs(Color::Blue, 3, 1), t);
        match p.decide(&obs(Color::Blue, 0, 1), t) {
            Decision::Switch { to, reason, .. } => {
                assert_eq!(to, Color::Green);
                assert!(reason.contains("scaling it to 3"), "{reason}");
            }
            other => panic!("expected an immediate switch, got {other:?}"),
        }
    }

    #[test]
    fn a_selector_naming_no_colour_is_steered_to_a_healthy_one() {
        let mut p = policy(false);
        let o = Observation {
            active: None,
            ready_blue: 0,
            ready_green: 2,
        };
        assert!(matches!(
            p.decide(&o, Instant::now()),
            Decision::Switch {
                to: Color::Green,
                ..
            }
        ));
    }
    #[test]
    fn a_standby_that_tracked_the_primary_fails_back_at_once_on_taking_over() {
        let mut p = policy(false);
        let t0 = Instant::now();
        // Not holding the lease: only watching; blue has been healthy since t0.
        p.track(&obs(Color::Green, 1, 2), t0);
        p.track(&obs(Color::Green, 1, 2), t0 + Duration::from_secs(10));
        // Takes over after the stable window: no second wait.
        assert!(matches!(
            p.decide(&obs(Color::Green, 1, 2), t0 + Duration::from_secs(21)),
            Decision::Switch {
                to: Color::Blue,
                direction: Direction::Failback,
                ..
            }
        ));
    }
}
