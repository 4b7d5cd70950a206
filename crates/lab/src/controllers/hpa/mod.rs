//! The HorizontalPodAutoscaler algorithm (autoscaling/v2, CPU), as pure code: one call per
//! sync decides the new size and the new status; the controller loop does the I/O.
//!
//! In plain words, each sync:
//! 1. If the target has 0 replicas (and `minReplicas` is not 0), autoscaling is off:
//!    nothing happens and `ScalingActive` says so. If the target is above `maxReplicas` or
//!    below `minReplicas`, it is brought back into range without looking at metrics.
//! 2. Otherwise every metric proposes a size and the largest proposal wins. For CPU
//!    utilization: utilization = Σ usage / Σ requests over the pods with usable samples
//!    (integer percent), ratio = utilization / target. Within 10 % of the target nothing
//!    changes; else the proposal is `ceil(ratio · ready pods)`. Pods are grouped first:
//!    pods being deleted or failed are left out; pending pods, and pods whose sample may
//!    still reflect start-up (within 5 min of starting: not ready, or measured less than one
//!    window after becoming ready; later: unready and never ready within 30 s of starting)
//!    are "unready"; running pods without a sample are "missing". When there are missing
//!    pods, or unready pods during a scale-up, the ratio is recomputed pessimistically —
//!    missing pods at 100 % on a scale-down and 0 % on a scale-up, unready pods at 0 % on a
//!    scale-up — and the size stays put if that lands within tolerance or flips direction.
//! 3. The proposal is then normalized. Without `spec.behavior`: the highest proposal of the
//!    last 5 min wins (slow scale-down), clamped to `[min, min(max, max(2·current, 4))]`.
//!    With `spec.behavior` (unset fields take the API defaults): scale-up takes the lowest
//!    proposal within its stabilization window (default 0 s) and scale-down the highest
//!    within its window (default 5 min); then each direction's policies cap the change per
//!    period — Pods adds/removes N pods, Percent N % of the size at the start of the period
//!    — combined by `selectPolicy` (Max: most permissive, Min: least, Disabled: none).
//! 4. A changed size means a rescale: the caller writes the scale subresource, emits
//!    `SuccessfulRescale` and records the event (for the policies' period accounting).
//!
//! Errors do not abort: they become `ScalingActive=False` with upstream's reason (e.g.
//! `FailedGetResourceMetric` for a container without a CPU request) and Warning events.
//!
//! Mirrors kubernetes `pkg/controller/podautoscaler` (`horizontal.go`,
//! `replica_calculator.go`, `metrics/utilization.go`). Only CPU is measured in the lab, so
//! other metric sources report a clear error. Called by the lab's HPA controller loop,
//! which owns a [`History`] per HPA and passes the time in; this module does no I/O.

mod behavior;
mod facts;
mod replicas;
mod status;

use std::time::Duration;

use k8s_openapi::api::autoscaling::v2::{
    HorizontalPodAutoscaler, HorizontalPodAutoscalerCondition, HorizontalPodAutoscalerStatus,
    MetricStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

pub use behavior::{
    Bounds, History, Normalized, Policy, PolicyKind, Recommendation, ResolvedBehavior, ScaleEvent,
    ScalingRules, SelectPolicy, resolve_behavior,
};
pub use facts::{
    ConditionStatus, ContainerRequest, CpuSample, PodFacts, PodPhase, ReadyCondition,
    approximate_f64, milli_quantity, milli_value,
};
pub use replicas::{ReplicaError, Tolerances};

use status::{ABLE_TO_SCALE, SCALING_ACTIVE, SCALING_LIMITED, set_condition};

/// The controller's knobs. Defaults are upstream's; a lab shortens them to see scaling
/// within seconds.
#[derive(Debug, Clone, PartialEq)]
pub struct HpaTuning {
    /// How often each HPA is synced (`--horizontal-pod-autoscaler-sync-period`, 15 s).
    pub sync_period: Duration,
    /// Ratio band around 1.0 that counts as on target (0.1), unless the HPA's behavior sets
    /// a per-direction `tolerance`.
    pub tolerance: f64,
    /// How long after a pod starts its CPU samples are treated with suspicion (5 min).
    pub cpu_initialization_period: Duration,
    /// A pod that turned unready within this long of starting counts as never ready (30 s).
    pub initial_readiness_delay: Duration,
    /// Scale-down stabilization window when the HPA does not set one (5 min).
    pub downscale_stabilization_window: Duration,
    /// Period of the default behavior policies (15 s), used when `behavior` is set but a
    /// direction's `policies` are not.
    pub default_policy_period: Duration,
}

impl Default for HpaTuning {
    fn default() -> HpaTuning {
        HpaTuning {
            sync_period: Duration::from_secs(15),
            tolerance: 0.1,
            cpu_initialization_period: Duration::from_secs(5 * 60),
            initial_readiness_delay: Duration::from_secs(30),
            downscale_stabilization_window: Duration::from_secs(5 * 60),
            default_policy_period: Duration::from_secs(15),
        }
    }
}

/// Everything one sync reads.
#[derive(Debug, Clone, Copy)]
pub struct SyncInput<'a> {
    /// The HPA as stored (spec and the previous status).
    pub hpa: &'a HorizontalPodAutoscaler,
    /// The scale target's `spec.replicas` (its scale subresource).
    pub current_replicas: i32,
    /// The pods matching the scale target's selector.
    pub pods: &'a [PodFacts],
    /// The time of this sync.
    pub now: Timestamp,
    /// The controller's knobs.
    pub tuning: &'a HpaTuning,
}

/// Event type, as in `core/v1` Event `type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// `Normal`.
    Normal,
    /// `Warning`.
    Warning,
}

impl EventType {
    /// The string stored in the Event.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

/// An Event to record against the HPA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HpaEvent {
    /// Normal or Warning.
    pub type_: EventType,
    /// e.g. `SuccessfulRescale`, `FailedGetResourceMetric`.
    pub reason: String,
    /// e.g. `New size: 4; reason: cpu resource utilization (percentage of request) above target`.
    pub message: String,
}

impl HpaEvent {
    fn new(type_: EventType, reason: &str, message: impl Into<String>) -> HpaEvent {
        HpaEvent {
            type_,
            reason: reason.to_string(),
            message: message.into(),
        }
    }
}

/// What one sync decided.
///
/// If `rescale` is true the caller writes `desired_replicas` to the target's scale
/// subresource, then either calls [`Decision::record_rescale`] (write succeeded) or
/// replaces the decision with [`Decision::rescale_failed`]; then it writes `status` to the
/// HPA's status subresource (when it differs from the stored one) and records `events`.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// The size the target should have after this sync.
    pub desired_replicas: i32,
    /// Whether to write the scale subresource.
    pub rescale: bool,
    /// The HPA's new status.
    pub status: HorizontalPodAutoscalerStatus,
    /// Events to record, in order.
    pub events: Vec<HpaEvent>,
    /// The error upstream's sync would return (worth logging); the status already says it.
    pub error: Option<String>,
    pending: Option<PendingRescale>,
}

/// What a failed scale write needs to rebuild the status, and what a successful one records.
#[derive(Debug, Clone, PartialEq)]
struct PendingRescale {
    from: i32,
    to: i32,
    reason: String,
    reference: String,
    /// The longest policy period of the direction scaled in; `None` without behavior
    /// (upstream records no scale events then).
    longest_period: Option<Duration>,
    conditions: Vec<HorizontalPodAutoscalerCondition>,
    metrics: Option<Vec<MetricStatus>>,
    previous_desired: i32,
    previous_last_scale_time: Option<Time>,
    events: Vec<HpaEvent>,
    now: Timestamp,
}

impl Decision {
    /// Records a written rescale in the history (upstream `storeScaleEvent`). Call only
    /// after the scale write succeeded; does nothing for a decision without a rescale.
    pub fn record_rescale(&self, history: &mut History) {
        if let Some(p) = &self.pending
            && let Some(period) = p.longest_period
        {
            history.record_scale(p.from, p.to, period, p.now);
        }
    }

    /// The decision to apply instead when writing the scale failed: `AbleToScale=False`
    /// (`FailedUpdateScale`), a `FailedRescale` Warning, the target left at its current
    /// size, and the status keeping its previous desired size and last scale time.
    pub fn rescale_failed(self, error: &str) -> Decision {
        let Some(p) = self.pending else { return self };
        let mut conditions = p.conditions;
        set_condition(
            &mut conditions,
            ABLE_TO_SCALE,
            false,
            "FailedUpdateScale",
            format!("the HPA controller was unable to update the target scale: {error}"),
            p.now,
        );
        let mut events = p.events;
        events.push(HpaEvent::new(
            EventType::Warning,
            "FailedRescale",
            format!("New size: {}; reason: {}; error: {error}", p.to, p.reason),
        ));
        Decision {
            desired_replicas: p.from,
            rescale: false,
            status: status::build(
                p.from,
                p.previous_desired,
                p.metrics,
                p.previous_last_scale_time,
                conditions,
            ),
            events,
            error: Some(format!("failed to rescale {}: {error}", p.reference)),
            pending: None,
        }
    }
}

/// The decision when the scale target could not be read (upstream: `FailedGetScale`):
/// nothing scales, `AbleToScale=False`, a Warning event.
pub fn scale_target_unavailable(
    hpa: &HorizontalPodAutoscaler,
    error: &str,
    now: Timestamp,
) -> Decision {
    let mut status = hpa.status.clone().unwrap_or_default();
    let mut conditions = status.conditions.take().unwrap_or_default();
    set_condition(
        &mut conditions,
        ABLE_TO_SCALE,
        false,
        "FailedGetScale",
        format!("the HPA controller was unable to get the target's current scale: {error}"),
        now,
    );
    status.conditions = Some(conditions);
    Decision {
        desired_replicas: status.desired_replicas,
        rescale: false,
        status,
        events: vec![HpaEvent::new(EventType::Warning, "FailedGetScale", error)],
        error: Some(format!(
            "failed to query scale subresource for {}: {error}",
            reference(hpa)
        )),
        pending: None,
    }
}

/// One sync of one HPA (upstream `reconcileAutoscaler` after the scale was read).
pub fn sync(input: &SyncInput<'_>, history: &mut History) -> Decision {
    let SyncInput {
        hpa,
        current_replicas: current,
        now,
        tuning,
        ..
    } = *input;
    let previous = hpa.status.clone().unwrap_or_default();
    let mut conditions = previous.conditions.clone().unwrap_or_default();
    let mut events = Vec::new();
    let spec = &hpa.spec;
    set_condition(
        &mut conditions,
        ABLE_TO_SCALE,
        true,
        "SucceededGetScale",
        "the HPA controller was able to get the target's current scale",
        now,
    );
    history.record_initial(current, now);
    let min = spec.min_replicas.unwrap_or(1);
    let behavior = spec.behavior.as_ref().map(|b| {
        resolve_behavior(
            b,
            tuning.downscale_stabilization_window,
            tuning.default_policy_period,
        )
    });

    let proposal = if current == 0 && min != 0 {
        set_condition(
            &mut conditions,
            SCALING_ACTIVE,
            false,
            "ScalingDisabled",
            "scaling is disabled since the replica count of the target is zero",
            now,
        );
        Proposal::keep(0)
    } else if current > spec.max_replicas {
        Proposal::bound(
            spec.max_replicas,
            "Current number of replicas above Spec.MaxReplicas",
        )
    } else if current < min {
        Proposal::bound(min, "Current number of replicas below Spec.MinReplicas")
    } else {
        match from_metrics(input, &behavior, history, &mut conditions, &mut events) {
            Ok(proposal) => proposal,
            Err(failed) => {
                return Decision {
                    desired_replicas: current,
                    rescale: false,
                    status: status::build(
                        current,
                        previous.desired_replicas,
                        Some(failed.statuses),
                        previous.last_scale_time,
                        conditions,
                    ),
                    events,
                    error: Some(failed.error),
                    pending: None,
                };
            }
        }
    };

    if !proposal.rescale {
        return Decision {
            desired_replicas: current,
            rescale: false,
            status: status::build(
                current,
                current,
                proposal.metrics,
                previous.last_scale_time,
                conditions,
            ),
            events,
            error: proposal.error,
            pending: None,
        };
    }
    rescale(input, &previous, behavior, proposal, conditions, events)
}

/// What one sync proposes before any write: the size, whether it differs from the
/// current one, and why.
struct Proposal {
    desired: i32,
    rescale: bool,
    /// The rescale reason upstream logs and puts in the `SuccessfulRescale` Event.
    reason: String,
    metrics: Option<Vec<MetricStatus>>,
    /// A partial metrics failure that still let the HPA act.
    error: Option<String>,
}

impl Proposal {
    /// No rescale: scaling is disabled.
    fn keep(desired: i32) -> Proposal {
        Proposal {
            desired,
            rescale: false,
            reason: String::new(),
            metrics: None,
            error: None,
        }
    }

    /// Back within `minReplicas..=maxReplicas`, whatever the metrics say.
    fn bound(desired: i32, reason: &str) -> Proposal {
        Proposal {
            desired,
            rescale: true,
            reason: reason.to_string(),
            metrics: None,
            error: None,
        }
    }
}

/// No metric gave a proposal: the statuses to keep and the error to report.
struct MetricsFailed {
    statuses: Vec<MetricStatus>,
    error: String,
}

/// The replica count the metrics recommend, normalized by the bounds, the stabilization
/// window and the behavior's policies (upstream `computeReplicasForMetrics` and
/// `normalizeDesiredReplicas[WithBehaviors]`).
fn from_metrics(
    input: &SyncInput<'_>,
    behavior: &Option<ResolvedBehavior>,
    history: &mut History,
    conditions: &mut Vec<HorizontalPodAutoscalerCondition>,
    events: &mut Vec<HpaEvent>,
) -> Result<Proposal, MetricsFailed> {
    let SyncInput {
        hpa,
        current_replicas: current,
        pods,
        now,
        tuning,
    } = *input;
    let spec = &hpa.spec;
    let outcome = status::compute_metrics(spec, current, pods, now, tuning, conditions, events);
    let Some(proposal) = outcome.replicas else {
        let message = outcome.error.unwrap_or_default();
        events.push(HpaEvent::new(
            EventType::Warning,
            "FailedComputeMetricsReplicas",
            message.clone(),
        ));
        return Err(MetricsFailed {
            statuses: outcome.statuses,
            error: format!(
                "failed to compute desired number of replicas based on listed metrics for {}: \
                 {message}",
                reference(hpa)
            ),
        });
    };
    let (mut recommended, mut metric) = (0, String::new());
    if proposal > recommended {
        recommended = proposal;
        metric = outcome.metric;
    }
    let mut reason = String::new();
    if recommended > current {
        reason = format!("{metric} above target");
    }
    if recommended < current {
        reason = "All metrics below target".to_string();
    }
    let bounds = Bounds {
        min: spec.min_replicas.unwrap_or(1),
        max: spec.max_replicas,
    };
    let normalized = match behavior {
        None => behavior::normalize_without_behavior(
            history,
            current,
            recommended,
            bounds,
            tuning.downscale_stabilization_window,
            now,
        ),
        Some(rules) => {
            behavior::normalize_with_behavior(history, rules, current, recommended, bounds, now)
        }
    };
    let (able_reason, able_message) = normalized.able_to_scale;
    set_condition(
        conditions,
        ABLE_TO_SCALE,
        true,
        able_reason,
        able_message,
        now,
    );
    let (limited, limited_reason, limited_message) = normalized.scaling_limited;
    set_condition(
        conditions,
        SCALING_LIMITED,
        limited,
        limited_reason,
        limited_message,
        now,
    );
    Ok(Proposal {
        desired: normalized.desired,
        rescale: normalized.desired != current,
        reason,
        metrics: Some(outcome.statuses),
        error: outcome.error,
    })
}

/// The decision to write the scale: the new status, the `SuccessfulRescale` Event, and
/// what to finish once the write is done.
fn rescale(
    input: &SyncInput<'_>,
    previous: &HorizontalPodAutoscalerStatus,
    behavior: Option<ResolvedBehavior>,
    proposal: Proposal,
    mut conditions: Vec<HorizontalPodAutoscalerCondition>,
    mut events: Vec<HpaEvent>,
) -> Decision {
    let (current, now) = (input.current_replicas, input.now);
    let Proposal {
        desired,
        reason,
        metrics,
        error,
        ..
    } = proposal;
    let pending = PendingRescale {
        from: current,
        to: desired,
        reason: reason.clone(),
        reference: reference(input.hpa),
        longest_period: behavior.map(|rules| {
            if desired > current {
                rules.scale_up.longest_period()
            } else {
                rules.scale_down.longest_period()
            }
        }),
        conditions: conditions.clone(),
        metrics: metrics.clone(),
        previous_desired: previous.desired_replicas,
        previous_last_scale_time: previous.last_scale_time.clone(),
        events: events.clone(),
        now,
    };
    set_condition(
        &mut conditions,
        ABLE_TO_SCALE,
        true,
        "SucceededRescale",
        format!("the HPA controller was able to update the target scale to {desired}"),
        now,
    );
    events.push(HpaEvent::new(
        EventType::Normal,
        "SuccessfulRescale",
        format!("New size: {desired}; reason: {reason}"),
    ));
    Decision {
        desired_replicas: desired,
        rescale: true,
        status: status::build(current, desired, metrics, Some(Time(now)), conditions),
        events,
        error,
        pending: Some(pending),
    }
}

/// `Kind/namespace/name` of the scale target, as upstream names it in errors.
fn reference(hpa: &HorizontalPodAutoscaler) -> String {
    let target = &hpa.spec.scale_target_ref;
    let namespace = hpa.metadata.namespace.as_deref().unwrap_or("");
    format!("{}/{namespace}/{}", target.kind, target.name)
}

/// `t + d`, saturating at the end of time.
pub(crate) fn after(t: Timestamp, d: Duration) -> Timestamp {
    // Adding a plain duration can only fail by overflow, which saturates here.
    t.saturating_add(d).unwrap_or(Timestamp::MAX)
}

/// `t - d`, saturating at the beginning of time.
pub(crate) fn before(t: Timestamp, d: Duration) -> Timestamp {
    // Subtracting a plain duration can only fail by overflow, which saturates here.
    t.saturating_sub(d).unwrap_or(Timestamp::MIN)
}

#[cfg(test)]
mod tests;
