//! From the metrics' raw recommendation to the replica count the HPA will actually set:
//! stabilization windows, scaling policies (rate limits), and the min/max clamp.
//!
//! Mirrors upstream `horizontal.go` (`normalizeDesiredReplicas`,
//! `normalizeDesiredReplicasWithBehaviors`, `stabilizeRecommendation*`,
//! `convertDesiredReplicasWith*`, `calculateScale{Up,Down}Limit*`, `storeScaleEvent`) and the
//! API defaults for `spec.behavior` (`pkg/apis/autoscaling/v2/defaults.go`). The per-HPA
//! memory those functions need is [`History`], owned by the controller loop and passed in.

use std::time::Duration;

use k8s_openapi::api::autoscaling::v2::{HPAScalingRules, HorizontalPodAutoscalerBehavior};
use k8s_openapi::jiff::Timestamp;

use super::before;

/// The controller's memory for one HPA, kept between syncs (upstream keeps the same three
/// lists per HPA key). Drop it when the HPA is deleted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct History {
    /// Unstabilized recommendations, oldest slots reused once outside every window.
    pub recommendations: Vec<Recommendation>,
    /// Scale-ups performed (only recorded when the HPA has `behavior`).
    pub scale_up_events: Vec<ScaleEvent>,
    /// Scale-downs performed (only recorded when the HPA has `behavior`).
    pub scale_down_events: Vec<ScaleEvent>,
}

/// One raw recommendation and when it was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recommendation {
    /// Recommended replicas before stabilization.
    pub replicas: i32,
    /// When.
    pub at: Timestamp,
}

/// One performed rescale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScaleEvent {
    /// Replicas added (scale-up) or removed (scale-down); never negative.
    pub change: i32,
    /// When.
    pub at: Timestamp,
    /// Older than the longest policy period: its slot may be reused.
    pub outdated: bool,
}

impl History {
    /// Seeds the recommendations with the current size on the first sync, so the first
    /// scale-down still waits a whole window (upstream `recordInitialRecommendation`).
    pub(super) fn record_initial(&mut self, current: i32, now: Timestamp) {
        if self.recommendations.is_empty() {
            self.recommendations.push(Recommendation {
                replicas: current,
                at: now,
            });
        }
    }

    fn store_recommendation(&mut self, old_slot: Option<usize>, replicas: i32, now: Timestamp) {
        let rec = Recommendation { replicas, at: now };
        match old_slot {
            Some(i) => self.recommendations[i] = rec,
            None => self.recommendations.push(rec),
        }
    }

    /// Records a rescale that was written, for the policies' period accounting
    /// (upstream `storeScaleEvent`). `longest_period` is the longest policy period of the
    /// direction scaled in.
    pub(super) fn record_scale(
        &mut self,
        from: i32,
        to: i32,
        longest_period: Duration,
        now: Timestamp,
    ) {
        let (events, change) = if to > from {
            (&mut self.scale_up_events, to - from)
        } else {
            (&mut self.scale_down_events, from - to)
        };
        let cutoff = before(now, longest_period);
        for event in events.iter_mut() {
            if event.at < cutoff {
                event.outdated = true;
            }
        }
        let new_event = ScaleEvent {
            change,
            at: now,
            outdated: false,
        };
        match events.iter().rposition(|e| e.outdated) {
            Some(i) => events[i] = new_event,
            None => events.push(new_event),
        }
    }
}

/// How `selectPolicy` picks among the policies' limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SelectPolicy {
    /// The policy allowing the biggest change (default).
    Max,
    /// The policy allowing the smallest change.
    Min,
    /// No scaling in this direction.
    Disabled,
}

/// What a policy's value counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyKind {
    /// Absolute number of pods.
    Pods,
    /// Percent of the replicas at the start of the period.
    Percent,
    /// Anything else (rejected by API validation; upstream then reuses the previous limit).
    Unknown,
}

/// One scaling policy: at most `value` pods or percent per `period`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Pods or Percent.
    pub kind: PolicyKind,
    /// The amount.
    pub value: i32,
    /// The period the amount applies to.
    pub period: Duration,
}

/// Scaling rules for one direction with every default filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScalingRules {
    /// Window over which recommendations are stabilized.
    pub stabilization_window: Duration,
    /// How the policies combine.
    pub select_policy: SelectPolicy,
    /// Rate limits.
    pub policies: Vec<Policy>,
}

impl ScalingRules {
    /// The longest policy period: events older than this no longer matter.
    pub fn longest_period(&self) -> Duration {
        self.policies
            .iter()
            .map(|p| p.period)
            .max()
            .unwrap_or_default()
    }
}

/// Both directions' rules, defaults applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedBehavior {
    /// Rules for scaling up.
    pub scale_up: ScalingRules,
    /// Rules for scaling down.
    pub scale_down: ScalingRules,
}

/// Fills the behavior's unset fields the way the API server's defaulting does: scale-up
/// stabilization 0 with Pods 4 and Percent 100 per period; scale-down stabilization from the
/// controller's window with Percent 100 per period; selectPolicy Max. The 15 s period of the
/// default policies is `default_period` so a lab can shorten it.
pub fn resolve_behavior(
    behavior: &HorizontalPodAutoscalerBehavior,
    downscale_window: Duration,
    default_period: Duration,
) -> ResolvedBehavior {
    let policy = |kind, value| Policy {
        kind,
        value,
        period: default_period,
    };
    ResolvedBehavior {
        scale_up: resolve_rules(
            behavior.scale_up.as_ref(),
            Duration::ZERO,
            vec![
                policy(PolicyKind::Pods, 4),
                policy(PolicyKind::Percent, 100),
            ],
        ),
        scale_down: resolve_rules(
            behavior.scale_down.as_ref(),
            downscale_window,
            vec![policy(PolicyKind::Percent, 100)],
        ),
    }
}

fn resolve_rules(
    rules: Option<&HPAScalingRules>,
    window: Duration,
    policies: Vec<Policy>,
) -> ScalingRules {
    let seconds = |s: i32| Duration::from_secs(u64::try_from(s).unwrap_or(0));
    let select_policy = match rules.and_then(|r| r.select_policy.as_deref()) {
        Some("Disabled") => SelectPolicy::Disabled,
        Some("Min") => SelectPolicy::Min,
        _ => SelectPolicy::Max,
    };
    let policies = match rules.and_then(|r| r.policies.as_ref()) {
        Some(given) => given
            .iter()
            .map(|p| Policy {
                kind: match p.type_.as_str() {
                    "Pods" => PolicyKind::Pods,
                    "Percent" => PolicyKind::Percent,
                    _ => PolicyKind::Unknown,
                },
                value: p.value,
                period: seconds(p.period_seconds),
            })
            .collect(),
        None => policies,
    };
    let stabilization_window = rules
        .and_then(|r| r.stabilization_window_seconds)
        .map_or(window, seconds);
    ScalingRules {
        stabilization_window,
        select_policy,
        policies,
    }
}

/// The outcome of normalization, with the condition texts upstream sets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Normalized {
    /// Replicas to scale to.
    pub desired: i32,
    /// Reason and message for `AbleToScale=True`.
    pub able_to_scale: (&'static str, &'static str),
    /// Whether `ScalingLimited` is True, with its reason and message.
    pub scaling_limited: (bool, &'static str, &'static str),
}

const READY_FOR_NEW_SCALE: (&str, &str) =
    ("ReadyForNewScale", "recommended size matches current size");
const SCALE_DOWN_STABILIZED: (&str, &str) = (
    "ScaleDownStabilized",
    "recent recommendations were higher than current one, applying the highest recent recommendation",
);
const SCALE_UP_STABILIZED: (&str, &str) = (
    "ScaleUpStabilized",
    "recent recommendations were lower than current one, applying the lowest recent recommendation",
);
const WITHIN_RANGE: (&str, &str) = (
    "DesiredWithinRange",
    "the desired count is within the acceptable range",
);
const TOO_FEW: (&str, &str) = (
    "TooFewReplicas",
    "the desired replica count is less than the minimum replica count",
);
const TOO_MANY: (&str, &str) = (
    "TooManyReplicas",
    "the desired replica count is more than the maximum replica count",
);
const SCALE_UP_LIMIT: (&str, &str) = (
    "ScaleUpLimit",
    "the desired replica count is increasing faster than the maximum scale rate",
);
const SCALE_DOWN_LIMIT: (&str, &str) = (
    "ScaleDownLimit",
    "the desired replica count is decreasing faster than the maximum scale rate",
);

/// The HPA bounds for one normalization.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    /// `spec.minReplicas` (default 1).
    pub min: i32,
    /// `spec.maxReplicas`.
    pub max: i32,
}

/// Normalization without `spec.behavior` (upstream `normalizeDesiredReplicas`): take the
/// highest recommendation of the last `downscale_window`, then clamp to
/// `[min, min(max, max(2·current, 4))]`.
pub fn normalize_without_behavior(
    history: &mut History,
    current: i32,
    recommended: i32,
    bounds: Bounds,
    downscale_window: Duration,
    now: Timestamp,
) -> Normalized {
    let cutoff = before(now, downscale_window);
    let mut stabilized = recommended;
    let mut old_slot = None;
    for (i, rec) in history.recommendations.iter().enumerate() {
        if rec.at < cutoff {
            old_slot = Some(i);
        } else if rec.replicas > stabilized {
            stabilized = rec.replicas;
        }
    }
    history.store_recommendation(old_slot, recommended, now);
    let able_to_scale = if stabilized != recommended {
        SCALE_DOWN_STABILIZED
    } else {
        READY_FOR_NEW_SCALE
    };

    // Caps a sudden jump (upstream: protects against bogus usage reports).
    let scale_up_limit = (2 * i64::from(current)).max(4).min(i64::from(i32::MAX)) as i32;
    let (maximum, limit_reason) = if bounds.max > scale_up_limit {
        (scale_up_limit, SCALE_UP_LIMIT)
    } else {
        (bounds.max, TOO_MANY)
    };
    let (desired, reason) = if stabilized < bounds.min {
        (bounds.min, TOO_FEW)
    } else if stabilized > maximum {
        (maximum, limit_reason)
    } else {
        (stabilized, WITHIN_RANGE)
    };
    Normalized {
        desired,
        able_to_scale,
        scaling_limited: (desired != stabilized, reason.0, reason.1),
    }
}

/// Normalization with `spec.behavior` (upstream `normalizeDesiredReplicasWithBehaviors`):
/// stabilize (scale-up takes the lowest recommendation within its window, scale-down the
/// highest within its window), then apply the direction's rate limits and min/max.
pub fn normalize_with_behavior(
    history: &mut History,
    rules: &ResolvedBehavior,
    current: i32,
    recommended: i32,
    bounds: Bounds,
    now: Timestamp,
) -> Normalized {
    let up_cutoff = before(now, rules.scale_up.stabilization_window);
    let down_cutoff = before(now, rules.scale_down.stabilization_window);
    let (mut up_rec, mut down_rec) = (recommended, recommended);
    let mut old_slot = None;
    for (i, rec) in history.recommendations.iter().enumerate() {
        if rec.at > up_cutoff {
            up_rec = up_rec.min(rec.replicas);
        }
        if rec.at > down_cutoff {
            down_rec = down_rec.max(rec.replicas);
        }
        if rec.at < up_cutoff && rec.at < down_cutoff {
            old_slot = Some(i);
        }
    }
    let stabilized = current.max(up_rec).min(down_rec);
    history.store_recommendation(old_slot, recommended, now);
    let able_to_scale = if stabilized == recommended {
        READY_FOR_NEW_SCALE
    } else if recommended >= current {
        SCALE_UP_STABILIZED
    } else {
        SCALE_DOWN_STABILIZED
    };

    let (desired, reason) = apply_rate_limits(history, rules, current, stabilized, bounds, now);
    Normalized {
        desired,
        able_to_scale,
        scaling_limited: (desired != stabilized, reason.0, reason.1),
    }
}

/// Upstream `convertDesiredReplicasWithBehaviorRate`.
fn apply_rate_limits(
    history: &History,
    rules: &ResolvedBehavior,
    current: i32,
    desired: i32,
    bounds: Bounds,
    now: Timestamp,
) -> (i32, (&'static str, &'static str)) {
    if desired > current {
        let limit = scale_up_limit(history, &rules.scale_up, current, now).max(current);
        let (maximum, reason) = if bounds.max > limit {
            (limit, SCALE_UP_LIMIT)
        } else {
            (bounds.max, TOO_MANY)
        };
        if desired > maximum {
            return (maximum, reason);
        }
    } else if desired < current {
        let limit = scale_down_limit(history, &rules.scale_down, current, now).min(current);
        let (minimum, reason) = if bounds.min < limit {
            (limit, SCALE_DOWN_LIMIT)
        } else {
            (bounds.min, TOO_FEW)
        };
        if desired < minimum {
            return (minimum, reason);
        }
    }
    (desired, WITHIN_RANGE)
}

/// Sum of the changes recorded within the last `period`.
fn change_in_period(events: &[ScaleEvent], period: Duration, now: Timestamp) -> i32 {
    let cutoff = before(now, period);
    events
        .iter()
        .filter(|e| e.at > cutoff)
        .map(|e| e.change)
        .fold(0, i32::saturating_add)
}

/// Replicas at the start of a policy's period: undo what was added and removed since.
fn period_start(history: &History, period: Duration, current: i32, now: Timestamp) -> i64 {
    i64::from(current) - i64::from(change_in_period(&history.scale_up_events, period, now))
        + i64::from(change_in_period(&history.scale_down_events, period, now))
}

/// The most replicas the scale-up policies allow now (upstream
/// `calculateScaleUpLimitWithScalingRules`).
fn scale_up_limit(history: &History, rules: &ScalingRules, current: i32, now: Timestamp) -> i32 {
    let pick: fn(i64, i64) -> i64 = match rules.select_policy {
        SelectPolicy::Disabled => return current,
        SelectPolicy::Min => i64::min,
        SelectPolicy::Max => i64::max,
    };
    let mut result = if rules.select_policy == SelectPolicy::Min {
        i64::from(i32::MAX)
    } else {
        i64::from(i32::MIN)
    };
    // An unknown policy kind repeats the previous proposal, as upstream's loop variable does.
    let mut proposed = 0i64;
    for policy in &rules.policies {
        let start = period_start(history, policy.period, current, now);
        match policy.kind {
            PolicyKind::Pods => proposed = start + i64::from(policy.value),
            // Rounded up, or a small Percent would never add a pod.
            PolicyKind::Percent => {
                proposed = (start as f64 * (1.0 + f64::from(policy.value) / 100.0)).ceil() as i64;
            }
            PolicyKind::Unknown => {}
        }
        result = pick(result, proposed);
    }
    clamp_i32(result)
}

/// The fewest replicas the scale-down policies allow now (upstream
/// `calculateScaleDownLimitWithBehaviors`).
fn scale_down_limit(history: &History, rules: &ScalingRules, current: i32, now: Timestamp) -> i32 {
    let pick: fn(i64, i64) -> i64 = match rules.select_policy {
        SelectPolicy::Disabled => return current,
        SelectPolicy::Min => i64::max,
        SelectPolicy::Max => i64::min,
    };
    let mut result = if rules.select_policy == SelectPolicy::Min {
        i64::from(i32::MIN)
    } else {
        i64::from(i32::MAX)
    };
    let mut proposed = 0i64;
    for policy in &rules.policies {
        let start = period_start(history, policy.period, current, now);
        match policy.kind {
            PolicyKind::Pods => proposed = start - i64::from(policy.value),
            // Truncated toward zero, as upstream's int32 conversion does.
            PolicyKind::Percent => {
                proposed = (start as f64 * (1.0 - f64::from(policy.value) / 100.0)) as i64;
            }
            PolicyKind::Unknown => {}
        }
        result = pick(result, proposed);
    }
    clamp_i32(result)
}

fn clamp_i32(value: i64) -> i32 {
    value.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32
}

#[cfg(test)]
mod tests;
