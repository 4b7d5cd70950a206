//! The HPA status pieces: conditions (set the way upstream's `setCondition` does), the
//! status object, and the per-metric proposals with their `currentMetrics` entries and
//! error conditions (upstream `computeReplicasForMetrics` / `computeReplicasForMetric`).
//!
//! Used only by [`super::sync`].

use k8s_openapi::api::autoscaling::v2::{
    HorizontalPodAutoscalerCondition, HorizontalPodAutoscalerSpec, HorizontalPodAutoscalerStatus,
    MetricSpec, MetricStatus, MetricTarget, MetricValueStatus, ResourceMetricSource,
    ResourceMetricStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use super::facts::{approximate_f64, milli_quantity, milli_value};
use super::replicas::{self, Tolerances};
use super::{EventType, HpaEvent, HpaTuning, PodFacts};

/// Condition type: can the controller read and write the target's scale.
pub const ABLE_TO_SCALE: &str = "AbleToScale";
/// Condition type: can the controller compute a size from the metrics.
pub const SCALING_ACTIVE: &str = "ScalingActive";
/// Condition type: was the computed size cut by bounds or rate limits.
pub const SCALING_LIMITED: &str = "ScalingLimited";

/// Sets a condition in place, appending it if absent; the transition time changes only
/// when the status does (upstream `setConditionInList`).
pub fn set_condition(
    conditions: &mut Vec<HorizontalPodAutoscalerCondition>,
    type_: &str,
    status: bool,
    reason: &str,
    message: impl Into<String>,
    now: Timestamp,
) {
    let index = match conditions.iter().position(|c| c.type_ == type_) {
        Some(i) => i,
        None => {
            conditions.push(HorizontalPodAutoscalerCondition {
                type_: type_.to_string(),
                ..Default::default()
            });
            conditions.len() - 1
        }
    };
    let condition = &mut conditions[index];
    let status = if status { "True" } else { "False" };
    if condition.status != status {
        condition.last_transition_time = Some(Time(now));
    }
    condition.status = status.to_string();
    condition.reason = Some(reason.to_string());
    condition.message = Some(message.into());
}

/// A fresh status (upstream `setStatus`); empty lists and a zero current count are left
/// out, as Go's `omitempty` does.
pub fn build(
    current: i32,
    desired: i32,
    metrics: Option<Vec<MetricStatus>>,
    last_scale_time: Option<Time>,
    conditions: Vec<HorizontalPodAutoscalerCondition>,
) -> HorizontalPodAutoscalerStatus {
    HorizontalPodAutoscalerStatus {
        current_replicas: (current != 0).then_some(current),
        desired_replicas: desired,
        last_scale_time,
        current_metrics: metrics.filter(|m| !m.is_empty()),
        conditions: (!conditions.is_empty()).then_some(conditions),
        observed_generation: None,
    }
}

/// The combined proposal of all metrics.
pub struct MetricsOutcome {
    /// The largest valid proposal; `None` when the HPA cannot act (upstream's `-1`).
    pub replicas: Option<i32>,
    /// Description of the metric that proposed it, for the rescale reason.
    pub metric: String,
    /// One entry per metric spec; failed metrics leave an empty entry, as upstream does.
    pub statuses: Vec<MetricStatus>,
    /// `invalid metrics (N invalid out of M), first error is: ...` if any metric failed.
    pub error: Option<String>,
}

/// Why one metric produced no proposal.
struct MetricFailure {
    /// Condition and event reason, e.g. `FailedGetResourceMetric`.
    reason: &'static str,
    /// The error as the condition and event carry it.
    detail: String,
    /// The error as wrapped for the combined message.
    wrapped: String,
}

/// One metric's proposal.
struct MetricProposal {
    replicas: i32,
    metric: String,
    status: MetricStatus,
}

/// The metrics to use: the spec's, or CPU at 80 % (the API default) when none are set.
fn metric_specs(spec: &HorizontalPodAutoscalerSpec) -> Vec<MetricSpec> {
    match spec.metrics.as_deref() {
        Some(metrics) if !metrics.is_empty() => metrics.to_vec(),
        _ => vec![MetricSpec {
            type_: "Resource".to_string(),
            resource: Some(ResourceMetricSource {
                name: "cpu".to_string(),
                target: MetricTarget {
                    type_: "Utilization".to_string(),
                    average_utilization: Some(80),
                    ..Default::default()
                },
            }),
            ..Default::default()
        }],
    }
}

/// The tolerances for this HPA: the controller's, overridden per direction by the
/// behavior's `tolerance` fields.
fn tolerances(spec: &HorizontalPodAutoscalerSpec, default: f64) -> Tolerances {
    let behavior = spec.behavior.as_ref();
    let read = |rules: Option<&k8s_openapi::api::autoscaling::v2::HPAScalingRules>| {
        rules
            .and_then(|r| r.tolerance.as_ref())
            .and_then(|q| approximate_f64(&q.0))
            .filter(|t| t.is_finite() && *t >= 0.0)
            .unwrap_or(default)
    };
    Tolerances {
        scale_down: read(behavior.and_then(|b| b.scale_down.as_ref())),
        scale_up: read(behavior.and_then(|b| b.scale_up.as_ref())),
    }
}

/// All metrics' proposals combined (upstream `computeReplicasForMetrics`); sets
/// `ScalingActive` and records a Warning per failed metric.
pub fn compute_metrics(
    spec: &HorizontalPodAutoscalerSpec,
    current: i32,
    pods: &[PodFacts],
    now: Timestamp,
    tuning: &HpaTuning,
    conditions: &mut Vec<HorizontalPodAutoscalerCondition>,
    events: &mut Vec<HpaEvent>,
) -> MetricsOutcome {
    let specs = metric_specs(spec);
    let tolerances = tolerances(spec, tuning.tolerance);
    let mut statuses = vec![MetricStatus::default(); specs.len()];
    let (mut replicas, mut metric) = (0, String::new());
    let mut invalid = 0;
    let mut first_failure: Option<MetricFailure> = None;
    for (i, metric_spec) in specs.iter().enumerate() {
        match compute_metric(metric_spec, current, pods, tolerances, now, tuning) {
            Ok(proposal) => {
                statuses[i] = proposal.status;
                if replicas == 0 || proposal.replicas > replicas {
                    replicas = proposal.replicas;
                    metric = proposal.metric;
                }
            }
            Err(failure) => {
                events.push(HpaEvent::new(
                    EventType::Warning,
                    failure.reason,
                    failure.detail.clone(),
                ));
                invalid += 1;
                first_failure.get_or_insert(failure);
            }
        }
    }
    let error = first_failure.as_ref().map(|f| {
        format!(
            "invalid metrics ({invalid} invalid out of {}), first error is: {}",
            specs.len(),
            f.wrapped
        )
    });
    if let Some(failure) = &first_failure
        && (invalid >= specs.len() || replicas < current)
    {
        // All metrics failed, or the valid ones would scale down on partial information.
        let message = format!(
            "the HPA was unable to compute the replica count: {}",
            failure.detail
        );
        set_condition(
            conditions,
            SCALING_ACTIVE,
            false,
            failure.reason,
            message,
            now,
        );
        return MetricsOutcome {
            replicas: None,
            metric: String::new(),
            statuses,
            error,
        };
    }
    let message =
        format!("the HPA was able to successfully calculate a replica count from {metric}");
    set_condition(
        conditions,
        SCALING_ACTIVE,
        true,
        "ValidMetricFound",
        message,
        now,
    );
    MetricsOutcome {
        replicas: Some(replicas),
        metric,
        statuses,
        error,
    }
}

/// One metric's proposal (upstream `computeReplicasForMetric`). The lab measures CPU only,
/// so every other source fails with upstream's reason for that source.
fn compute_metric(
    spec: &MetricSpec,
    current: i32,
    pods: &[PodFacts],
    tolerances: Tolerances,
    now: Timestamp,
    tuning: &HpaTuning,
) -> Result<MetricProposal, MetricFailure> {
    let unsupported = |reason, detail: String, wrapped: &dyn Fn(&str) -> String| MetricFailure {
        reason,
        wrapped: wrapped(&detail),
        detail,
    };
    match spec.type_.as_str() {
        "Resource" => resource_metric(spec, current, pods, tolerances, now, tuning),
        "ContainerResource" => {
            let container = spec
                .container_resource
                .as_ref()
                .map_or("", |c| c.container.as_str());
            Err(unsupported(
                "FailedGetContainerResourceMetric",
                "unable to get container metrics: the lab's metrics API reports whole pods only"
                    .to_string(),
                &|d| format!("failed to get {container} container metric value: {d}"),
            ))
        }
        "Pods" => {
            let name = spec.pods.as_ref().map_or("", |p| p.metric.name.as_str());
            Err(unsupported(
                "FailedGetPodsMetric",
                format!("unable to get metric {name}: the lab serves no custom metrics API"),
                &|d| format!("failed to get pods metric value: {d}"),
            ))
        }
        "Object" => {
            let name = spec.object.as_ref().map_or("", |o| o.metric.name.as_str());
            Err(unsupported(
                "FailedGetObjectMetric",
                format!("unable to get metric {name}: the lab serves no custom metrics API"),
                &|d| format!("failed to get object metric value: {d}"),
            ))
        }
        "External" => {
            let name = spec
                .external
                .as_ref()
                .map_or("", |e| e.metric.name.as_str());
            Err(unsupported(
                "FailedGetExternalMetric",
                format!(
                    "unable to get external metric {name}: the lab serves no external metrics API"
                ),
                &|d| format!("failed to get {name} external metric value: {d}"),
            ))
        }
        other => Err(unsupported(
            "InvalidMetricSourceType",
            format!("unknown metric source type {other:?}"),
            &|d| d.to_string(),
        )),
    }
}

/// A `Resource` metric (upstream `computeStatusForResourceMetricGeneric`).
fn resource_metric(
    spec: &MetricSpec,
    current: i32,
    pods: &[PodFacts],
    tolerances: Tolerances,
    now: Timestamp,
    tuning: &HpaTuning,
) -> Result<MetricProposal, MetricFailure> {
    let fail = |resource: &str, detail: String| MetricFailure {
        reason: "FailedGetResourceMetric",
        wrapped: format!("failed to get {resource} resource metric value: {detail}"),
        detail,
    };
    let Some(source) = spec.resource.as_ref() else {
        return Err(fail(
            "",
            "invalid resource metric source: no resource set".to_string(),
        ));
    };
    let resource = source.name.as_str();
    let target = &source.target;
    if let Some(average) = target.average_value.as_ref() {
        if resource != "cpu" {
            return Err(fail(resource, lab_measures_cpu_only(resource, "usage")));
        }
        let Some(target_millicores) = milli_value(&average.0) else {
            let detail = format!(
                "failed to get cpu usage: averageValue {:?} is not a quantity",
                average.0
            );
            return Err(fail(resource, detail));
        };
        let rec = replicas::cpu_average_value_replicas(
            current,
            target_millicores,
            pods,
            tolerances,
            now,
            tuning,
        )
        .map_err(|e| fail(resource, format!("failed to get cpu usage: {e}")))?;
        return Ok(MetricProposal {
            replicas: rec.replicas,
            metric: "cpu resource".to_string(),
            status: resource_status(MetricValueStatus {
                average_value: Some(milli_quantity(rec.average_millicores)),
                ..Default::default()
            }),
        });
    }
    let Some(target_utilization) = target.average_utilization else {
        let detail = "invalid resource metric source: neither an average utilization target nor an average value (usage) target was set";
        return Err(fail(resource, detail.to_string()));
    };
    if resource != "cpu" {
        return Err(fail(
            resource,
            lab_measures_cpu_only(resource, "utilization"),
        ));
    }
    let rec = replicas::cpu_utilization_replicas(
        current,
        target_utilization,
        pods,
        tolerances,
        now,
        tuning,
    )
    .map_err(|e| fail(resource, format!("failed to get cpu utilization: {e}")))?;
    Ok(MetricProposal {
        replicas: rec.replicas,
        metric: "cpu resource utilization (percentage of request)".to_string(),
        status: resource_status(MetricValueStatus {
            average_utilization: Some(rec.utilization),
            average_value: Some(milli_quantity(rec.average_millicores)),
            ..Default::default()
        }),
    })
}

fn lab_measures_cpu_only(resource: &str, what: &str) -> String {
    format!(
        "failed to get {resource} {what}: unable to get metrics for resource {resource}: the lab measures cpu only"
    )
}

fn resource_status(current: MetricValueStatus) -> MetricStatus {
    MetricStatus {
        type_: "Resource".to_string(),
        resource: Some(ResourceMetricStatus {
            name: "cpu".to_string(),
            current,
        }),
        ..Default::default()
    }
}
