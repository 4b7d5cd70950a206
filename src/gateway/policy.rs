//! The gateway's active/passive policy: given the result of each health check of each
//! region, decide which region gets traffic — and say why.
//!
//! Pure and clock-injected (`now` is passed in), like the watcher's failover policy
//! (`src/watch/failover.rs`). Regions are listed by priority (first = preferred). Rules:
//! 1. **Failover**: the active region has failed `fail_after` checks in a row and another
//!    region is healthy (its last check passed) → move to the healthy region of highest
//!    priority.
//! 2. **Never into the dark**: no other region is healthy → stay, and raise the alarm once
//!    per outage.
//! 3. **Fail back**: a region of higher priority than the active one has passed every
//!    check for `failback_after` without a break → move back to it. Any failed check
//!    restarts its window, so a flapping region never gets traffic back.
//!
//! With weights (`--weight`), every region serves at once, each its share, and the rules
//! become per region:
//! 1. **Eject**: a serving region has failed `fail_after` checks in a row and another region
//!    still serves → it gets no more traffic; the others share it by their weights.
//! 2. **Never into the dark**: it is the last region serving → it keeps serving (a region
//!    that may answer beats none), and the alarm is raised once per outage.
//! 3. **Restore**: an ejected region has passed every check for `failback_after` without a
//!    break → it serves its share again.

use std::time::{Duration, Instant};

/// The knobs of the policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Consecutive failed checks that make the active region down.
    pub fail_after: u32,
    /// How long a preferred region must pass every check before traffic returns to it.
    pub failback_after: Duration,
}

/// What to do, with the rule that led there and the inputs it read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// `failover`, `failback` or `alarm`; with weights `eject`, `restore` or `alarm`.
    pub action: &'static str,
    /// The region traffic moves to (`None` for an alarm, and with weights).
    pub to: Option<usize>,
    /// The region traffic leaves (with weights: the region ejected or restored).
    pub from: usize,
    /// The rule, in words.
    pub rule: String,
    /// Consecutive failures per region when it was decided.
    pub failures: Vec<u32>,
}

#[derive(Debug, Clone, Default)]
struct Health {
    failures: u32,
    /// Since when every check has passed (`None`: the last one failed, or none ran).
    ok_since: Option<Instant>,
}

/// The policy plus what it remembers between checks.
#[derive(Debug, Clone)]
pub struct GatewayPolicy {
    policy: Policy,
    regions: Vec<Health>,
    active: usize,
    alarmed: bool,
    /// With weights: each region's weight, and whether it serves now.
    weights: Option<Vec<u32>>,
    serving: Vec<bool>,
}

impl GatewayPolicy {
    /// `regions` regions, the first active; nothing checked yet.
    pub fn new(policy: Policy, regions: usize) -> GatewayPolicy {
        GatewayPolicy {
            policy,
            regions: vec![Health::default(); regions.max(1)],
            active: 0,
            alarmed: false,
            weights: None,
            serving: vec![true; regions.max(1)],
        }
    }

    /// Every region serving at once, region `i` its `weights[i]` share.
    pub fn weighted(policy: Policy, weights: Vec<u32>) -> GatewayPolicy {
        let mut p = GatewayPolicy::new(policy, weights.len());
        p.weights = Some(weights);
        p
    }

    /// The region that gets traffic now (active/passive).
    pub fn active(&self) -> usize {
        self.active
    }

    /// Each region's share of the traffic now: its weight while it serves, else 0; without
    /// weights, 1 for the active region.
    pub fn shares(&self) -> Vec<u32> {
        match &self.weights {
            Some(w) => w
                .iter()
                .zip(&self.serving)
                .map(|(w, on)| if *on { *w } else { 0 })
                .collect(),
            None => (0..self.regions.len())
                .map(|i| u32::from(i == self.active))
                .collect(),
        }
    }

    /// Takes in one check of `region` (`ok`: its `/readyz` answered 200) made at `now`;
    /// returns the decision it led to, if any (the active region is then changed).
    pub fn observe(&mut self, region: usize, ok: bool, now: Instant) -> Option<Decision> {
        let health = self.regions.get_mut(region)?;
        if ok {
            health.failures = 0;
            health.ok_since.get_or_insert(now);
        } else {
            health.failures = health.failures.saturating_add(1);
            health.ok_since = None;
        }
        match self.weights.is_some() {
            true => self.decide_weighted(region, now),
            false => self.decide(now),
        }
    }

    /// The weighted rules, for the region just checked.
    fn decide_weighted(&mut self, region: usize, now: Instant) -> Option<Decision> {
        let failures: Vec<u32> = self.regions.iter().map(|h| h.failures).collect();
        let decision = |action, rule: String| Decision {
            action,
            to: None,
            from: region,
            rule,
            failures: failures.clone(),
        };
        if self.serving[region] && failures[region] >= self.policy.fail_after {
            let others = (0..self.serving.len()).any(|i| i != region && self.serving[i]);
            if !others {
                if self.alarmed {
                    return None;
                }
                self.alarmed = true;
                let rule = format!(
                    "it failed {} checks in a row (>= {}) but is the last region serving: \
                     it keeps its traffic, never switch into the dark",
                    failures[region], self.policy.fail_after
                );
                return Some(decision("alarm", rule));
            }
            self.serving[region] = false;
            let rule = format!(
                "it failed {} checks in a row (>= fail-after {}); the regions still serving \
                 share its traffic by weight",
                failures[region], self.policy.fail_after
            );
            return Some(decision("eject", rule));
        }
        let window = self.policy.failback_after;
        let stable = self.regions[region]
            .ok_since
            .is_some_and(|since| now.duration_since(since) >= window);
        if !self.serving[region] && stable {
            self.serving[region] = true;
            self.alarmed = false;
            let rule = format!(
                "it has passed every check for {} (>= failback-after): it serves its share again",
                humantime::format_duration(window)
            );
            return Some(decision("restore", rule));
        }
        None
    }

    fn decide(&mut self, now: Instant) -> Option<Decision> {
        let failures: Vec<u32> = self.regions.iter().map(|h| h.failures).collect();
        let from = self.active;
        let healthy = |i: usize| self.regions[i].ok_since.is_some();
        if failures[from] >= self.policy.fail_after {
            let Some(to) = (0..self.regions.len()).find(|&i| i != from && healthy(i)) else {
                if self.alarmed {
                    return None;
                }
                self.alarmed = true;
                let rule = format!(
                    "the active region failed {} checks in a row (>= {}) and no other region \
                     is healthy: stay, never switch into the dark",
                    failures[from], self.policy.fail_after
                );
                return Some(Decision {
                    action: "alarm",
                    to: None,
                    from,
                    rule,
                    failures,
                });
            };
            self.active = to;
            self.alarmed = false;
            let rule = format!(
                "the active region failed {} checks in a row (>= fail-after {}); the first \
                 healthy region by priority takes the traffic",
                failures[from], self.policy.fail_after
            );
            return Some(Decision {
                action: "failover",
                to: Some(to),
                from,
                rule,
                failures,
            });
        }
        let window = self.policy.failback_after;
        let preferred = (0..from).find(|&i| {
            self.regions[i]
                .ok_since
                .is_some_and(|since| now.duration_since(since) >= window)
        })?;
        self.active = preferred;
        let rule = format!(
            "a region of higher priority has passed every check for {} (>= failback-after)",
            humantime::format_duration(window)
        );
        Some(Decision {
            action: "failback",
            to: Some(preferred),
            from,
            rule,
            failures,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weighted_regions_eject_a_failing_one_keep_the_last_and_restore_after_the_window() {
        let policy = Policy {
            fail_after: 2,
            failback_after: Duration::from_secs(1),
        };
        let mut p = GatewayPolicy::weighted(policy, vec![3, 1]);
        let t = Instant::now();
        assert_eq!(p.shares(), [3, 1]);
        assert_eq!(p.observe(0, true, t), None);
        assert_eq!(p.observe(1, false, t), None);
        let d = p
            .observe(1, false, t + MS)
            .expect("second failure in a row");
        assert_eq!((d.action, d.from, d.to), ("eject", 1, None));
        assert_eq!(p.shares(), [3, 0]);
        // The last region serving keeps its traffic, and the alarm is raised once.
        p.observe(0, false, t + 2 * MS);
        let d = p.observe(0, false, t + 3 * MS).unwrap();
        assert_eq!(d.action, "alarm");
        assert_eq!(p.observe(0, false, t + 4 * MS), None);
        assert_eq!(p.shares(), [3, 0]);
        // Region 1 comes back: it serves again only after a clean window.
        assert_eq!(p.observe(1, true, t + 5 * MS), None);
        assert_eq!(p.observe(1, true, t + Duration::from_millis(500)), None);
        let d = p.observe(1, true, t + Duration::from_millis(1005)).unwrap();
        assert_eq!((d.action, d.from), ("restore", 1));
        assert_eq!(p.shares(), [3, 1]);
    }

    const MS: Duration = Duration::from_millis(1);

    fn policy() -> GatewayPolicy {
        GatewayPolicy::new(
            Policy {
                fail_after: 3,
                failback_after: Duration::from_secs(2),
            },
            2,
        )
    }

    #[test]
    fn fails_over_after_k_consecutive_failures_only() {
        let mut p = policy();
        let t = Instant::now();
        assert_eq!(p.observe(1, true, t), None);
        assert_eq!(p.observe(0, false, t), None);
        assert_eq!(p.observe(0, true, t + MS), None, "a pass resets the count");
        assert_eq!(p.observe(0, false, t + 2 * MS), None);
        assert_eq!(p.observe(0, false, t + 3 * MS), None);
        let d = p
            .observe(0, false, t + 4 * MS)
            .expect("third failure in a row");
        assert_eq!((d.action, d.from, d.to), ("failover", 0, Some(1)));
        assert_eq!(d.failures, [3, 0]);
        assert!(d.rule.contains("fail-after 3"), "{}", d.rule);
        assert_eq!(p.active(), 1);
    }

    #[test]
    fn never_fails_into_the_dark_and_alarms_once() {
        let mut p = policy();
        let t = Instant::now();
        p.observe(1, false, t);
        for i in 0..2 {
            assert_eq!(p.observe(0, false, t + i * MS), None);
        }
        let d = p.observe(0, false, t + 3 * MS).unwrap();
        assert_eq!((d.action, d.to), ("alarm", None));
        assert_eq!(p.observe(0, false, t + 4 * MS), None, "once per outage");
        assert_eq!(p.active(), 0);
    }

    #[test]
    fn fails_back_after_a_stable_window_and_a_flap_restarts_it() {
        let mut p = policy();
        let t = Instant::now();
        p.observe(1, true, t);
        for i in 0..3 {
            p.observe(0, false, t + i * MS);
        }
        assert_eq!(p.active(), 1);
        let back = t + Duration::from_secs(1);
        assert_eq!(p.observe(0, true, back), None);
        assert_eq!(
            p.observe(0, false, back + Duration::from_secs(1)),
            None,
            "flap"
        );
        let again = back + Duration::from_secs(2);
        assert_eq!(p.observe(0, true, again), None);
        assert_eq!(
            p.observe(0, true, again + Duration::from_millis(1999)),
            None
        );
        let d = p.observe(0, true, again + Duration::from_secs(2)).unwrap();
        assert_eq!((d.action, d.from, d.to), ("failback", 1, Some(0)));
        assert_eq!(p.active(), 0);
    }
}
