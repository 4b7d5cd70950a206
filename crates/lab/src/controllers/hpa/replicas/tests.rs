//! Replica calculator tests. Each names the upstream rule (replica_calculator.go /
//! metrics/utilization.go) it pins.

use std::time::Duration;

use super::*;
use crate::controllers::hpa::facts::{ContainerRequest, CpuSample, ReadyCondition};

const NOW: i64 = 100_000;

fn ts(second: i64) -> Timestamp {
    Timestamp::from_second(second).unwrap()
}

/// A pod started an hour ago, ready for most of it, requesting `request` millicores and
/// using `usage` (None: no sample).
fn pod(name: &str, request: i64, usage: Option<i64>) -> PodFacts {
    PodFacts {
        name: name.to_string(),
        phase: PodPhase::Running,
        ready: Some(ReadyCondition {
            status: ConditionStatus::True,
            last_transition_time: Some(ts(NOW - 3000)),
        }),
        start_time: Some(ts(NOW - 3600)),
        deletion_timestamp: None,
        containers: vec![ContainerRequest {
            name: "web".to_string(),
            cpu_millicores: Some(request),
        }],
        cpu: usage.map(|u| CpuSample {
            usage_millicores: u,
            timestamp: ts(NOW - 5),
            window: Duration::from_secs(15),
        }),
    }
}

fn pending(name: &str, request: i64) -> PodFacts {
    PodFacts {
        phase: PodPhase::Pending,
        ready: None,
        start_time: None,
        cpu: None,
        ..pod(name, request, None)
    }
}

/// A pod that started 10 s ago and is not ready yet, burning CPU while it starts.
fn starting(name: &str, request: i64, usage: i64) -> PodFacts {
    let mut p = pod(name, request, Some(usage));
    p.start_time = Some(ts(NOW - 10));
    p.ready = Some(ReadyCondition {
        status: ConditionStatus::False,
        last_transition_time: Some(ts(NOW - 10)),
    });
    p
}

fn pods(n: usize, request: i64, usage: i64) -> Vec<PodFacts> {
    (0..n)
        .map(|i| pod(&format!("web-{i}"), request, Some(usage)))
        .collect()
}

const TOLERANCE: Tolerances = Tolerances {
    scale_down: 0.1,
    scale_up: 0.1,
};

fn utilization(
    current: i32,
    target: i32,
    pods: &[PodFacts],
) -> Result<UtilizationRecommendation, ReplicaError> {
    cpu_utilization_replicas(
        current,
        target,
        pods,
        TOLERANCE,
        ts(NOW),
        &HpaTuning::default(),
    )
}

#[test]
fn within_tolerance_keeps_current_replicas() {
    // Upstream: tolerances.isWithin(usageRatio) → currentReplicas; the band is inclusive.
    // 10 pods requesting 1 CPU, target 50 %: (usage per pod, expected replicas).
    let cases = [
        (400, 8),
        (449, 9),
        (450, 10),
        (500, 10),
        (550, 10),
        (559, 10),
        (560, 12),
    ];
    for (usage, want) in cases {
        let rec = utilization(10, 50, &pods(10, 1000, usage)).unwrap();
        assert_eq!(rec.replicas, want, "usage {usage}m per pod");
    }
}

#[test]
fn scale_up_is_ceil_of_ratio_times_ready_pods() {
    // Upstream: int32(math.Ceil(usageRatio * float64(readyPodCount))).
    let rec = utilization(3, 50, &pods(3, 1000, 900)).unwrap();
    assert_eq!(
        rec,
        UtilizationRecommendation {
            replicas: 6,
            utilization: 90,
            average_millicores: 900
        }
    );
}

#[test]
fn utilization_is_truncated_percent_of_summed_requests() {
    // Upstream GetResourceUtilizationRatio: int32(Σusage·100 / Σrequests), a ratio of sums.
    let mixed = vec![pod("a", 500, Some(500)), pod("b", 1500, Some(0))];
    let rec = utilization(2, 50, &mixed).unwrap();
    assert_eq!(rec.utilization, 25);
    assert_eq!(rec.average_millicores, 250);
    let thirds = vec![
        pod("a", 1000, Some(333)),
        pod("b", 1000, Some(333)),
        pod("c", 1000, Some(334)),
    ];
    assert_eq!(utilization(3, 50, &thirds).unwrap().utilization, 33);
}

#[test]
fn unready_pods_count_as_zero_on_scale_up() {
    // Upstream: scaleUpWithUnready → unready pods at 0 %, then the direction check.
    // Two ready pods at 70 % (ratio 1.4) and two starting pods burning 100 %: counting the
    // starting pods' real usage would scale to 7, ignoring them to 3; at 0 % the ratio drops
    // to 0.7, which flips direction, so the size stays 4.
    let mut set = pods(2, 1000, 700);
    set.push(starting("new-1", 1000, 1000));
    set.push(starting("new-2", 1000, 1000));
    assert_eq!(utilization(4, 50, &set).unwrap().replicas, 4);

    // A pending pod counts at 0 % too, but a strong scale-up still goes ahead:
    // 2000m over 3 requests = 66 % → ratio 1.65 → ceil(1.65 · 3) = 5.
    let mut set = pods(2, 1000, 1000);
    set.push(pending("new-1", 1000));
    assert_eq!(utilization(3, 40, &set).unwrap().replicas, 5);
}

#[test]
fn missing_metrics_count_as_full_request_on_scale_down() {
    // Upstream: on a scale-down, missing pods use max(100, target) % of their request.
    // Three pods at 10 % and one silent: 1300m / 4000m = 32 % → ratio 0.64 → 3 (not 1).
    let mut set = pods(3, 1000, 100);
    set.push(pod("silent", 1000, None));
    assert_eq!(utilization(4, 50, &set).unwrap().replicas, 3);

    // With a target above 100 % silent pods are assumed at the target: five pods at 30 % and
    // five silent at 150 % = 90 % → ratio 0.6 → 6 (at 100 % it would be 65 % → 5).
    let mut set = pods(5, 1000, 300);
    for i in 0..5 {
        set.push(pod(&format!("silent-{i}"), 1000, None));
    }
    assert_eq!(utilization(10, 150, &set).unwrap().replicas, 6);
}

#[test]
fn missing_metrics_count_as_zero_on_scale_up() {
    // Upstream: on a scale-up, missing pods use 0 %. 3000m / 4000m = 75 % → 1.5 → 6
    // (at 100 % it would be 8).
    let mut set = pods(3, 1000, 1000);
    set.push(pod("silent", 1000, None));
    assert_eq!(utilization(4, 50, &set).unwrap().replicas, 6);
}

#[test]
fn direction_flip_after_rebalancing_keeps_current() {
    // Upstream: (usageRatio > 1 && newUsageRatio < 1) → currentReplicas.
    // One pod at 60 % (ratio 1.2) and three silent ones at 0 %: 15 % → 0.3, a flip.
    let mut set = pods(1, 1000, 600);
    for i in 0..3 {
        set.push(pod(&format!("silent-{i}"), 1000, None));
    }
    assert_eq!(utilization(4, 50, &set).unwrap().replicas, 4);
}

#[test]
fn rebalanced_result_within_tolerance_keeps_current() {
    // Upstream: tolerances.isWithin(newUsageRatio) → currentReplicas. Nineteen pods at 45 %
    // (ratio 0.9) and one silent counted at 100 %: 47 % → 0.94, within tolerance, so 20
    // stays (ceil(0.94 · 20) would be 19).
    let mut set = pods(19, 1000, 450);
    set.push(pod("silent", 1000, None));
    assert_eq!(utilization(20, 50, &set).unwrap().replicas, 20);
}

#[test]
fn pods_group_into_ready_unready_missing_and_ignored() {
    // Upstream groupPods for CPU: deleted/failed ignored; pending unready; no sample
    // missing; no Ready condition or start time unready; within the 5-min initialization
    // period unready unless ready and sampled a full window after becoming ready; after it,
    // unready only if the pod turned unready within 30 s of starting (never ready).
    let ready_at = |p: &mut PodFacts, status, at| {
        p.ready = Some(ReadyCondition {
            status,
            last_transition_time: Some(ts(at)),
        });
    };
    let mut deleted = pod("deleted", 1000, Some(500));
    deleted.deletion_timestamp = Some(ts(NOW - 1));
    let mut failed = pod("failed", 1000, Some(500));
    failed.phase = PodPhase::Failed;
    let mut no_condition = pod("no-condition", 1000, Some(500));
    no_condition.ready = None;
    let mut no_start = pod("no-start", 1000, Some(500));
    no_start.start_time = None;
    let young_unready = starting("young-unready", 1000, 500);
    let mut young_fresh = starting("young-fresh", 1000, 500);
    // Ready 10 s ago; the sample (5 s ago, 15 s window) still covers start-up time.
    ready_at(&mut young_fresh, ConditionStatus::True, NOW - 10);
    young_fresh.start_time = Some(ts(NOW - 60));
    let mut young_settled = starting("young-settled", 1000, 500);
    ready_at(&mut young_settled, ConditionStatus::True, NOW - 40);
    young_settled.start_time = Some(ts(NOW - 60));
    let mut never_ready = pod("never-ready", 1000, Some(500));
    ready_at(&mut never_ready, ConditionStatus::False, NOW - 3600 + 20);
    let mut went_unready = pod("went-unready", 1000, Some(500));
    ready_at(&mut went_unready, ConditionStatus::False, NOW - 100);
    let set = vec![
        deleted,
        failed,
        pending("pending", 1000),
        pod("silent", 1000, None),
        no_condition,
        no_start,
        young_unready,
        young_fresh,
        young_settled,
        never_ready,
        went_unready,
        pod("steady", 1000, Some(500)),
    ];
    let groups = group_pods(&set, ts(NOW), &HpaTuning::default());
    assert_eq!(groups.ignored, BTreeSet::from(["deleted", "failed"]));
    assert_eq!(
        groups.unready,
        BTreeSet::from([
            "pending",
            "no-condition",
            "no-start",
            "young-unready",
            "young-fresh",
            "never-ready"
        ])
    );
    assert_eq!(groups.missing, BTreeSet::from(["silent"]));
    // young-settled, went-unready, steady.
    assert_eq!(groups.ready, 3);
}

#[test]
fn shorter_initialization_period_trusts_young_pods_sooner() {
    // The lab shortens upstream's 5-min CPU initialization period; the rule is the same.
    // A pod started 60 s ago, ready 15 s ago, sampled 5 s ago over 15 s: inside the
    // default period the sample still covers start-up, so it is unready; past a 5 s
    // period only "unready and never ready" matters, so it counts.
    let mut p = starting("young", 1000, 500);
    p.start_time = Some(ts(NOW - 60));
    p.ready = Some(ReadyCondition {
        status: ConditionStatus::True,
        last_transition_time: Some(ts(NOW - 15)),
    });
    let default_groups = group_pods(std::slice::from_ref(&p), ts(NOW), &HpaTuning::default());
    assert_eq!((default_groups.ready, default_groups.unready.len()), (0, 1));
    let tuning = HpaTuning {
        cpu_initialization_period: Duration::from_secs(5),
        ..HpaTuning::default()
    };
    let short_groups = group_pods(std::slice::from_ref(&p), ts(NOW), &tuning);
    assert_eq!((short_groups.ready, short_groups.unready.len()), (1, 0));
}

#[test]
fn missing_cpu_request_is_an_error() {
    // Upstream calculateRequests: "missing request for cpu in container %s of Pod %s".
    let mut set = pods(2, 1000, 500);
    set[1].containers.push(ContainerRequest {
        name: "sidecar".to_string(),
        cpu_millicores: None,
    });
    let err = utilization(2, 50, &set).unwrap_err();
    assert_eq!(
        err.to_string(),
        "missing request for cpu in container sidecar of Pod web-1"
    );
}

#[test]
fn no_samples_or_only_unready_samples_are_errors() {
    // Upstream: the metrics API returned nothing / every sampled pod was left out.
    let silent = vec![pod("a", 1000, None)];
    assert_eq!(
        utilization(1, 50, &silent).unwrap_err(),
        ReplicaError::NoMetrics
    );
    let unready = vec![starting("a", 1000, 500)];
    assert_eq!(
        utilization(1, 50, &unready).unwrap_err(),
        ReplicaError::NoUsableMetrics
    );
    // Zero requests in total cannot give a percentage.
    let free = vec![pod("a", 0, Some(500))];
    assert_eq!(
        utilization(1, 50, &free).unwrap_err(),
        ReplicaError::NoMatchingRequests
    );
}

#[test]
fn per_direction_tolerances_widen_one_side_only() {
    // Upstream Tolerances{scaleDown, scaleUp} from behavior.scale{Down,Up}.tolerance.
    let wide_up = Tolerances {
        scale_down: 0.1,
        scale_up: 0.5,
    };
    let now = ts(NOW);
    let tuning = HpaTuning::default();
    let up = cpu_utilization_replicas(4, 50, &pods(4, 1000, 700), wide_up, now, &tuning).unwrap();
    assert_eq!(up.replicas, 4, "ratio 1.4 is within +50 %");
    let down = cpu_utilization_replicas(4, 50, &pods(4, 1000, 300), wide_up, now, &tuning).unwrap();
    assert_eq!(down.replicas, 3, "ratio 0.6 is outside -10 %");
}

#[test]
fn average_value_target_scales_on_millicores_per_pod() {
    // Upstream GetRawResourceReplicas → calcPlainMetricReplicas: usage = Σ/len, same rules.
    let tuning = HpaTuning::default();
    let rec = cpu_average_value_replicas(2, 300, &pods(2, 1000, 600), TOLERANCE, ts(NOW), &tuning)
        .unwrap();
    assert_eq!(
        rec,
        AverageValueRecommendation {
            replicas: 4,
            average_millicores: 600
        }
    );
    // A silent pod counts at exactly the target on a scale-down: (100 + 300) / 2 = 200 →
    // 0.67 → ceil(1.33) = 2, so the size stays.
    let set = vec![pod("a", 1000, Some(100)), pod("b", 1000, None)];
    let rec = cpu_average_value_replicas(2, 300, &set, TOLERANCE, ts(NOW), &tuning).unwrap();
    assert_eq!(rec.replicas, 2);
}
