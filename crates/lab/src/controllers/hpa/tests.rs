//! Whole-sync tests: one call of [`sync`] from HPA object and pod facts to status and
//! events. Each names the upstream rule (horizontal.go `reconcileAutoscaler` and friends)
//! it pins.

use std::time::Duration;

use k8s_openapi::api::autoscaling::v2::{
    CrossVersionObjectReference, HPAScalingRules, HorizontalPodAutoscalerBehavior,
    HorizontalPodAutoscalerSpec, MetricIdentifier, MetricSpec, MetricTarget, PodsMetricSource,
    ResourceMetricSource,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::json;

use super::*;

const NOW: i64 = 100_000;

fn ts(second: i64) -> Timestamp {
    Timestamp::from_second(second).unwrap()
}

fn cpu_metric(target: i32) -> MetricSpec {
    MetricSpec {
        type_: "Resource".to_string(),
        resource: Some(ResourceMetricSource {
            name: "cpu".to_string(),
            target: MetricTarget {
                type_: "Utilization".to_string(),
                average_utilization: Some(target),
                ..Default::default()
            },
        }),
        ..Default::default()
    }
}

/// `web` HPA on Deployment `web`, 1..=10 replicas, CPU target 50 %.
fn hpa() -> HorizontalPodAutoscaler {
    HorizontalPodAutoscaler {
        metadata: ObjectMeta {
            name: Some("web".to_string()),
            namespace: Some("default".to_string()),
            ..Default::default()
        },
        spec: HorizontalPodAutoscalerSpec {
            scale_target_ref: CrossVersionObjectReference {
                api_version: Some("apps/v1".to_string()),
                kind: "Deployment".to_string(),
                name: "web".to_string(),
            },
            min_replicas: None,
            max_replicas: 10,
            metrics: Some(vec![cpu_metric(50)]),
            behavior: None,
        },
        status: None,
    }
}

/// `n` long-running ready pods requesting 1 CPU and using `usage` millicores each.
fn pods(n: usize, usage: i64) -> Vec<PodFacts> {
    (0..n)
        .map(|i| PodFacts {
            name: format!("web-{i}"),
            phase: PodPhase::Running,
            ready: Some(ReadyCondition {
                status: ConditionStatus::True,
                last_transition_time: Some(ts(NOW - 3000)),
            }),
            start_time: Some(ts(NOW - 3600)),
            deletion_timestamp: None,
            containers: vec![ContainerRequest {
                name: "web".to_string(),
                cpu_millicores: Some(1000),
            }],
            cpu: Some(CpuSample {
                usage_millicores: usage,
                timestamp: ts(NOW - 5),
                window: Duration::from_secs(15),
            }),
        })
        .collect()
}

fn run(
    hpa: &HorizontalPodAutoscaler,
    current: i32,
    pods: &[PodFacts],
    at: i64,
    history: &mut History,
) -> Decision {
    let tuning = HpaTuning::default();
    let input = SyncInput {
        hpa,
        current_replicas: current,
        pods,
        now: ts(at),
        tuning: &tuning,
    };
    sync(&input, history)
}

fn condition(status: &HorizontalPodAutoscalerStatus, type_: &str) -> (String, String, String) {
    let c = status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == type_)
        .expect(type_);
    (
        c.status.clone(),
        c.reason.clone().unwrap_or_default(),
        c.message.clone().unwrap_or_default(),
    )
}

fn triple(status: &str, reason: &str, message: &str) -> (String, String, String) {
    (status.to_string(), reason.to_string(), message.to_string())
}

#[test]
fn scale_up_writes_status_and_successful_rescale_event() {
    // Upstream: SuccessfulRescale "New size: %d; reason: %s above target"; status with
    // currentMetrics (averageUtilization + averageValue), lastScaleTime and three conditions.
    let decision = run(&hpa(), 2, &pods(2, 900), NOW, &mut History::default());
    assert!(decision.rescale);
    assert_eq!(decision.desired_replicas, 4);
    assert_eq!(
        decision.events,
        vec![HpaEvent {
            type_: EventType::Normal,
            reason: "SuccessfulRescale".to_string(),
            message:
                "New size: 4; reason: cpu resource utilization (percentage of request) above target"
                    .to_string(),
        }]
    );
    let at = "1970-01-02T03:46:40Z";
    assert_eq!(
        serde_json::to_value(&decision.status).unwrap(),
        json!({
            "currentReplicas": 2,
            "desiredReplicas": 4,
            "lastScaleTime": at,
            "currentMetrics": [{
                "type": "Resource",
                "resource": {"name": "cpu", "current": {"averageUtilization": 90, "averageValue": "900m"}},
            }],
            "conditions": [
                {"type": "AbleToScale", "status": "True", "lastTransitionTime": at, "reason": "SucceededRescale",
                 "message": "the HPA controller was able to update the target scale to 4"},
                {"type": "ScalingActive", "status": "True", "lastTransitionTime": at, "reason": "ValidMetricFound",
                 "message": "the HPA was able to successfully calculate a replica count from cpu resource utilization (percentage of request)"},
                {"type": "ScalingLimited", "status": "False", "lastTransitionTime": at, "reason": "DesiredWithinRange",
                 "message": "the desired count is within the acceptable range"},
            ],
        })
    );
    assert_eq!(decision.error, None);
}

#[test]
fn zero_replicas_disables_autoscaling() {
    // Upstream: currentReplicas == 0 && minReplicas != 0 → ScalingDisabled, no rescale.
    let decision = run(&hpa(), 0, &pods(2, 900), NOW, &mut History::default());
    assert!(!decision.rescale);
    assert_eq!(decision.desired_replicas, 0);
    assert!(decision.events.is_empty());
    assert_eq!(
        condition(&decision.status, "ScalingActive"),
        triple(
            "False",
            "ScalingDisabled",
            "scaling is disabled since the replica count of the target is zero"
        )
    );
    assert_eq!(decision.status.current_metrics, None);
}

#[test]
fn missing_cpu_request_makes_scaling_inactive() {
    // Upstream: calculateRequests error → FailedGetResourceMetric condition and event, then
    // FailedComputeMetricsReplicas; the size is left alone and an empty metric status kept.
    let mut set = pods(2, 900);
    set[0].containers[0].cpu_millicores = None;
    let decision = run(&hpa(), 2, &set, NOW, &mut History::default());
    assert!(!decision.rescale);
    assert_eq!(decision.desired_replicas, 2);
    let cause =
        "failed to get cpu utilization: missing request for cpu in container web of Pod web-0";
    assert_eq!(
        condition(&decision.status, "ScalingActive"),
        triple(
            "False",
            "FailedGetResourceMetric",
            &format!("the HPA was unable to compute the replica count: {cause}")
        )
    );
    assert_eq!(
        condition(&decision.status, "AbleToScale"),
        triple(
            "True",
            "SucceededGetScale",
            "the HPA controller was able to get the target's current scale"
        )
    );
    let events: Vec<_> = decision
        .events
        .iter()
        .map(|e| (e.type_, e.reason.as_str(), e.message.as_str()))
        .collect();
    let combined = format!(
        "invalid metrics (1 invalid out of 1), first error is: failed to get cpu resource metric value: {cause}"
    );
    assert_eq!(
        events,
        [
            (EventType::Warning, "FailedGetResourceMetric", cause),
            (
                EventType::Warning,
                "FailedComputeMetricsReplicas",
                combined.as_str()
            ),
        ]
    );
    assert_eq!(
        decision.status.current_metrics,
        Some(vec![MetricStatus::default()])
    );
    assert!(decision.error.unwrap().ends_with(&combined));
}

#[test]
fn out_of_range_targets_return_to_bounds_without_metrics() {
    // Upstream: currentReplicas > maxReplicas / < minReplicas rescales straight to the bound.
    let decision = run(&hpa(), 12, &[], NOW, &mut History::default());
    assert_eq!((decision.rescale, decision.desired_replicas), (true, 10));
    assert_eq!(
        decision.events[0].message,
        "New size: 10; reason: Current number of replicas above Spec.MaxReplicas"
    );
    let mut three = hpa();
    three.spec.min_replicas = Some(3);
    let decision = run(&three, 1, &[], NOW, &mut History::default());
    assert_eq!((decision.rescale, decision.desired_replicas), (true, 3));
    assert_eq!(
        decision.events[0].message,
        "New size: 3; reason: Current number of replicas below Spec.MinReplicas"
    );
}

#[test]
fn first_sync_seeds_history_so_a_scale_down_waits_the_window() {
    // Upstream recordInitialRecommendation + stabilizeRecommendation: the current size is
    // the first recommendation, so a scale-down waits a full downscale window.
    let mut history = History::default();
    let idle = pods(4, 100);
    let decision = run(&hpa(), 4, &idle, NOW, &mut history);
    assert!(!decision.rescale);
    assert_eq!(
        condition(&decision.status, "AbleToScale").1,
        "ScaleDownStabilized"
    );
    let decision = run(&hpa(), 4, &idle, NOW + 299, &mut history);
    assert!(!decision.rescale);
    let decision = run(&hpa(), 4, &idle, NOW + 301, &mut history);
    assert_eq!((decision.rescale, decision.desired_replicas), (true, 1));
    assert_eq!(
        decision.events[0].message,
        "New size: 1; reason: All metrics below target"
    );
}

#[test]
fn a_lab_can_shorten_the_downscale_window() {
    // The window is the controller flag upstream; here it is HpaTuning.
    let tuning = HpaTuning {
        downscale_stabilization_window: Duration::from_secs(3),
        ..HpaTuning::default()
    };
    let mut history = History::default();
    let idle = pods(4, 100);
    let sync_at = |at, history: &mut History| {
        sync(
            &SyncInput {
                hpa: &hpa(),
                current_replicas: 4,
                pods: &idle,
                now: ts(at),
                tuning: &tuning,
            },
            history,
        )
    };
    assert!(!sync_at(NOW, &mut history).rescale);
    assert_eq!(sync_at(NOW + 4, &mut history).desired_replicas, 1);
}

#[test]
fn failed_scale_write_keeps_previous_status_and_warns() {
    // Upstream: Scales().Update error → FailedRescale Warning, AbleToScale=False
    // FailedUpdateScale, desiredReplicas and lastScaleTime unchanged, no scale event stored.
    let mut with_behavior = hpa();
    with_behavior.spec.behavior = Some(HorizontalPodAutoscalerBehavior::default());
    with_behavior.status = Some(HorizontalPodAutoscalerStatus {
        desired_replicas: 3,
        ..Default::default()
    });
    let mut history = History::default();
    let decision =
        run(&with_behavior, 2, &pods(2, 900), NOW, &mut history).rescale_failed("conflict");
    assert_eq!((decision.rescale, decision.desired_replicas), (false, 2));
    assert_eq!(decision.status.desired_replicas, 3);
    assert_eq!(decision.status.last_scale_time, None);
    assert_eq!(
        condition(&decision.status, "AbleToScale"),
        triple(
            "False",
            "FailedUpdateScale",
            "the HPA controller was unable to update the target scale: conflict"
        )
    );
    let reasons: Vec<_> = decision
        .events
        .iter()
        .map(|e| (e.type_, e.message.as_str()))
        .collect();
    assert_eq!(
        reasons,
        [(
            EventType::Warning,
            "New size: 4; reason: cpu resource utilization (percentage of request) above target; error: conflict"
        )]
    );
    decision.record_rescale(&mut history);
    assert!(history.scale_up_events.is_empty());
}

#[test]
fn recorded_rescales_limit_the_next_scale_up_within_the_period() {
    // Upstream storeScaleEvent + calculateScaleUpLimitWithScalingRules with the default
    // behavior policies (Pods 4 / Percent 100 per 15 s). Usage at 5× the target.
    let mut busy = hpa();
    busy.spec.max_replicas = 50;
    busy.spec.metrics = Some(vec![cpu_metric(20)]);
    busy.spec.behavior = Some(HorizontalPodAutoscalerBehavior::default());
    let mut history = History::default();
    let decision = run(&busy, 2, &pods(2, 1000), NOW, &mut history);
    assert_eq!(decision.desired_replicas, 6);
    assert_eq!(
        condition(&decision.status, "ScalingLimited"),
        triple(
            "True",
            "ScaleUpLimit",
            "the desired replica count is increasing faster than the maximum scale rate"
        )
    );
    decision.record_rescale(&mut history);
    assert_eq!(history.scale_up_events.len(), 1);
    let decision = run(&busy, 6, &pods(6, 1000), NOW + 5, &mut history);
    assert!(!decision.rescale, "the period's allowance is used up");
    let decision = run(&busy, 6, &pods(6, 1000), NOW + 16, &mut history);
    assert_eq!(decision.desired_replicas, 12);
}

#[test]
fn condition_transition_time_moves_only_when_status_flips() {
    // Upstream setConditionInList: lastTransitionTime changes only with the status.
    let mut history = History::default();
    let first = run(&hpa(), 4, &pods(4, 500), NOW, &mut history);
    let mut again = hpa();
    again.status = Some(first.status);
    let second = run(&again, 4, &pods(4, 500), NOW + 15, &mut history);
    let active = |d: &Decision| {
        let c = d
            .status
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == "ScalingActive")
            .unwrap();
        c.last_transition_time.clone().unwrap().0
    };
    assert_eq!(active(&second), ts(NOW));
    let mut broken = again.clone();
    broken.status = Some(second.status);
    let mut set = pods(4, 500);
    set[0].containers[0].cpu_millicores = None;
    assert_eq!(
        active(&run(&broken, 4, &set, NOW + 30, &mut history)),
        ts(NOW + 30)
    );
}

#[test]
fn metrics_default_to_cpu_at_80_percent() {
    // Upstream API default: no metrics → Resource cpu Utilization 80.
    let mut defaulted = hpa();
    defaulted.spec.metrics = None;
    // 100 % / 80 % = 1.25 → ceil(1.25 · 4) = 5.
    assert_eq!(
        run(&defaulted, 4, &pods(4, 1000), NOW, &mut History::default()).desired_replicas,
        5
    );
}

#[test]
fn unsupported_metric_sources_fail_with_upstream_reasons() {
    // Upstream computeReplicasForMetric: one reason per source type. A valid metric that
    // scales up still acts; one that would scale down does not (partial information).
    let pods_metric = MetricSpec {
        type_: "Pods".to_string(),
        pods: Some(PodsMetricSource {
            metric: MetricIdentifier {
                name: "rps".to_string(),
                selector: None,
            },
            target: MetricTarget {
                type_: "AverageValue".to_string(),
                ..Default::default()
            },
        }),
        ..Default::default()
    };
    let mut only_pods = hpa();
    only_pods.spec.metrics = Some(vec![pods_metric.clone()]);
    let decision = run(&only_pods, 2, &pods(2, 900), NOW, &mut History::default());
    assert_eq!(
        condition(&decision.status, "ScalingActive").1,
        "FailedGetPodsMetric"
    );

    let mut mixed = hpa();
    mixed.spec.metrics = Some(vec![pods_metric, cpu_metric(50)]);
    let up = run(&mixed, 2, &pods(2, 900), NOW, &mut History::default());
    assert_eq!((up.rescale, up.desired_replicas), (true, 4));
    assert_eq!(condition(&up.status, "ScalingActive").1, "ValidMetricFound");
    assert!(
        up.error
            .unwrap()
            .starts_with("invalid metrics (1 invalid out of 2)")
    );
    let down = run(&mixed, 4, &pods(4, 100), NOW, &mut History::default());
    assert!(!down.rescale);
    assert_eq!(
        condition(&down.status, "ScalingActive").1,
        "FailedGetPodsMetric"
    );

    let mut memory = hpa();
    let mut memory_metric = cpu_metric(50);
    memory_metric.resource.as_mut().unwrap().name = "memory".to_string();
    memory.spec.metrics = Some(vec![memory_metric]);
    let decision = run(&memory, 2, &pods(2, 900), NOW, &mut History::default());
    assert_eq!(
        condition(&decision.status, "ScalingActive").1,
        "FailedGetResourceMetric"
    );
}

#[test]
fn behavior_tolerance_overrides_the_default_band() {
    // Upstream tolerancesForHpa: behavior.scaleUp.tolerance replaces 0.1 for scale-ups.
    let mut tolerant = hpa();
    tolerant.spec.behavior = Some(HorizontalPodAutoscalerBehavior {
        scale_up: Some(HPAScalingRules {
            tolerance: Some(Quantity("0.5".to_string())),
            ..Default::default()
        }),
        scale_down: None,
    });
    // Ratio 1.4 is within +50 %.
    assert!(!run(&tolerant, 4, &pods(4, 700), NOW, &mut History::default()).rescale);
    assert!(run(&hpa(), 4, &pods(4, 700), NOW, &mut History::default()).rescale);
}

#[test]
fn unreadable_scale_target_sets_able_to_scale_false() {
    // Upstream: FailedGetScale event and condition; nothing else changes.
    let decision = scale_target_unavailable(&hpa(), "deployments.apps \"web\" not found", ts(NOW));
    assert!(!decision.rescale);
    assert_eq!(
        condition(&decision.status, "AbleToScale"),
        triple(
            "False",
            "FailedGetScale",
            "the HPA controller was unable to get the target's current scale: deployments.apps \"web\" not found"
        )
    );
    assert_eq!(decision.events[0].reason, "FailedGetScale");
    assert_eq!(
        decision.error.as_deref(),
        Some(
            "failed to query scale subresource for Deployment/default/web: deployments.apps \"web\" not found"
        )
    );
}

#[test]
fn a_load_step_scales_up_then_back_down_after_the_window() {
    // The whole loop as a lab drives it, with a 1 s sync period and a 5 s downscale window:
    // demand of 3600m spread over the pods (1 CPU requested each, target 50 %) needs
    // ceil(3600 / 500) = 8 pods; the first step is capped at max(2·1, 4) = 4. When demand
    // drops to 400m at t=4 the size holds until the last high recommendation (t=3) is older
    // than the window (t=9), then falls to minReplicas.
    let tuning = HpaTuning {
        sync_period: Duration::from_secs(1),
        downscale_stabilization_window: Duration::from_secs(5),
        ..HpaTuning::default()
    };
    let period = tuning.sync_period.as_secs() as i64;
    let mut history = History::default();
    let mut stored = hpa();
    let mut replicas = 1;
    let mut sizes = Vec::new();
    for step in 0..12 {
        let demand = if step < 4 { 3600 } else { 400 };
        let load = pods(replicas as usize, demand / i64::from(replicas));
        let now = ts(NOW + step * period);
        let input = SyncInput {
            hpa: &stored,
            current_replicas: replicas,
            pods: &load,
            now,
            tuning: &tuning,
        };
        let decision = sync(&input, &mut history);
        if decision.rescale {
            decision.record_rescale(&mut history);
            replicas = decision.desired_replicas;
        }
        stored.status = Some(decision.status);
        sizes.push(replicas);
    }
    assert_eq!(sizes, [4, 8, 8, 8, 8, 8, 8, 8, 8, 1, 1, 1]);
}
