//! Normalization tests. Each names the upstream rule (horizontal.go, autoscaling/v2
//! defaults.go) it pins.

use k8s_openapi::api::autoscaling::v2::HPAScalingPolicy;

use super::*;

const NOW: i64 = 100_000;
const FIVE_MIN: Duration = Duration::from_secs(300);
const FIFTEEN_S: Duration = Duration::from_secs(15);

fn ts(second: i64) -> Timestamp {
    Timestamp::from_second(second).unwrap()
}

fn recs(list: &[(i32, i64)]) -> History {
    History {
        recommendations: list
            .iter()
            .map(|&(replicas, at)| Recommendation {
                replicas,
                at: ts(at),
            })
            .collect(),
        ..History::default()
    }
}

const WIDE: Bounds = Bounds { min: 1, max: 100 };

fn without(history: &mut History, current: i32, recommended: i32, bounds: Bounds) -> Normalized {
    normalize_without_behavior(history, current, recommended, bounds, FIVE_MIN, ts(NOW))
}

fn rules(up: Option<HPAScalingRules>, down: Option<HPAScalingRules>) -> ResolvedBehavior {
    let behavior = HorizontalPodAutoscalerBehavior {
        scale_up: up,
        scale_down: down,
    };
    resolve_behavior(&behavior, FIVE_MIN, FIFTEEN_S)
}

fn select(policy: &str) -> HPAScalingRules {
    HPAScalingRules {
        select_policy: Some(policy.to_string()),
        ..Default::default()
    }
}

fn policies(list: &[(&str, i32, i32)]) -> HPAScalingRules {
    HPAScalingRules {
        policies: Some(
            list.iter()
                .map(|&(type_, value, period_seconds)| HPAScalingPolicy {
                    type_: type_.to_string(),
                    value,
                    period_seconds,
                })
                .collect(),
        ),
        stabilization_window_seconds: Some(0),
        ..Default::default()
    }
}

fn with(
    history: &mut History,
    rules: &ResolvedBehavior,
    current: i32,
    recommended: i32,
) -> Normalized {
    normalize_with_behavior(history, rules, current, recommended, WIDE, ts(NOW))
}

#[test]
fn scale_down_stabilization_holds_the_max_of_the_window() {
    // Upstream stabilizeRecommendation: max of the recommendations not older than the
    // downscale window; the oldest expired slot is reused for the new one.
    let mut history = recs(&[(7, NOW - 400), (5, NOW - 200), (3, NOW - 100)]);
    let n = without(&mut history, 5, 2, WIDE);
    assert_eq!(n.desired, 5);
    assert_eq!(n.able_to_scale.0, "ScaleDownStabilized");
    assert_eq!(
        history.recommendations[0],
        Recommendation {
            replicas: 2,
            at: ts(NOW)
        }
    );
    assert_eq!(history.recommendations.len(), 3);

    // Once the higher recommendations age out, the scale-down goes through.
    let mut history = recs(&[(5, NOW - 400), (3, NOW - 301)]);
    let n = without(&mut history, 5, 2, WIDE);
    assert_eq!((n.desired, n.able_to_scale.0), (2, "ReadyForNewScale"));
}

#[test]
fn scale_up_is_not_stabilized_without_behavior() {
    // Upstream: only the max is taken, so a higher recommendation applies at once.
    let mut history = recs(&[(2, NOW - 10)]);
    assert_eq!(without(&mut history, 2, 4, WIDE).desired, 4);
}

#[test]
fn desired_is_clamped_to_min_and_max() {
    // Upstream convertDesiredReplicasWithRules: TooFewReplicas / TooManyReplicas /
    // DesiredWithinRange, and ScalingLimited is True only when clamping changed the value.
    let bounds = Bounds { min: 2, max: 8 };
    let cases = [
        (1, 2, true, "TooFewReplicas"),
        (9, 8, true, "TooManyReplicas"),
        (6, 6, false, "DesiredWithinRange"),
    ];
    for (recommended, want, limited, reason) in cases {
        let n = without(&mut History::default(), 5, recommended, bounds);
        assert_eq!(
            (n.desired, n.scaling_limited.0, n.scaling_limited.1),
            (want, limited, reason),
            "{recommended}"
        );
    }
}

#[test]
fn without_behavior_scale_up_is_capped_at_double_or_four() {
    // Upstream calculateScaleUpLimit: max(2·current, 4), reason ScaleUpLimit; when
    // maxReplicas is lower it is the limit instead (TooManyReplicas).
    let cases = [(1, 10, 4), (3, 10, 6), (10, 50, 20), (30, 100, 60)];
    for (current, recommended, want) in cases {
        let n = without(&mut History::default(), current, recommended, WIDE);
        assert_eq!(
            (n.desired, n.scaling_limited.1),
            (want, "ScaleUpLimit"),
            "from {current}"
        );
    }
    let n = without(&mut History::default(), 10, 50, Bounds { min: 1, max: 15 });
    assert_eq!((n.desired, n.scaling_limited.1), (15, "TooManyReplicas"));
}

#[test]
fn default_scale_up_policies_allow_4_pods_or_100_percent_per_period() {
    // Upstream defaults: Pods 4/15s and Percent 100/15s; selectPolicy Max takes the larger
    // limit, Min the smaller.
    let max = rules(None, None);
    let min = rules(Some(select("Min")), None);
    // (current, Max limit, Min limit): Pods gives current+4, Percent 2·current.
    let cases = [(1, 5, 2), (2, 6, 4), (4, 8, 8), (10, 20, 14)];
    for (current, want_max, want_min) in cases {
        let n = with(&mut History::default(), &max, current, 100);
        assert_eq!(
            (n.desired, n.scaling_limited.1),
            (want_max, "ScaleUpLimit"),
            "Max from {current}"
        );
        let n = with(&mut History::default(), &min, current, 100);
        assert_eq!(n.desired, want_min, "Min from {current}");
    }
}

#[test]
fn scale_events_within_the_period_use_up_the_allowance() {
    // Upstream: periodStartReplicas = current − added + removed within periodSeconds.
    let rules = rules(None, None);
    // 2 → 6 five seconds ago: the period started at 2, so Max(2+4, 2·2) = 6 allows nothing.
    let mut history = History {
        scale_up_events: vec![ScaleEvent {
            change: 4,
            at: ts(NOW - 5),
            outdated: false,
        }],
        ..History::default()
    };
    let n = with(&mut history, &rules, 6, 20);
    assert_eq!((n.desired, n.scaling_limited.1), (6, "ScaleUpLimit"));
    // Twenty seconds later the event is outside the 15 s period: 6 → 12.
    history.scale_up_events[0].at = ts(NOW - 20);
    assert_eq!(with(&mut history, &rules, 6, 20).desired, 12);
}

#[test]
fn scale_down_percent_policy_rounds_down_and_select_policy_picks() {
    // Upstream calculateScaleDownLimitWithBehaviors: Pods start−v, Percent
    // int32(start·(1−v/100)); Max keeps the lowest limit (biggest change), Min the highest.
    let down = policies(&[("Percent", 50, 15), ("Pods", 1, 15)]);
    let max = rules(None, Some(down.clone()));
    let n = with(&mut History::default(), &max, 5, 1);
    assert_eq!((n.desired, n.scaling_limited.1), (2, "ScaleDownLimit"));
    let min = rules(
        None,
        Some(HPAScalingRules {
            select_policy: Some("Min".into()),
            ..down
        }),
    );
    assert_eq!(with(&mut History::default(), &min, 5, 1).desired, 4);
}

#[test]
fn pods_and_percent_scale_up_policies_with_select_max_and_min() {
    // Upstream calculateScaleUpLimitWithScalingRules: Pods start+v, Percent
    // ceil(start·(1+v/100)).
    let up = policies(&[("Pods", 4, 15), ("Percent", 100, 15)]);
    let max = rules(Some(up.clone()), None);
    let min = rules(
        Some(HPAScalingRules {
            select_policy: Some("Min".into()),
            ..up
        }),
        None,
    );
    assert_eq!(with(&mut History::default(), &max, 3, 30).desired, 7);
    assert_eq!(with(&mut History::default(), &min, 3, 30).desired, 6);
    // Percent rounds up, so 10 % of 3 still adds a pod.
    let tenth = rules(Some(policies(&[("Percent", 10, 15)])), None);
    assert_eq!(with(&mut History::default(), &tenth, 3, 30).desired, 4);
}

#[test]
fn disabled_select_policy_blocks_that_direction_only() {
    // Upstream: selectPolicy Disabled → the limit is the current size.
    let no_up = rules(
        Some(select("Disabled")),
        Some(policies(&[("Percent", 100, 15)])),
    );
    let n = with(&mut History::default(), &no_up, 3, 10);
    assert_eq!((n.desired, n.scaling_limited.1), (3, "ScaleUpLimit"));
    assert_eq!(with(&mut History::default(), &no_up, 3, 1).desired, 1);

    let mut down = select("Disabled");
    down.stabilization_window_seconds = Some(0);
    let no_down = rules(None, Some(down));
    let n = with(&mut History::default(), &no_down, 3, 1);
    assert_eq!((n.desired, n.scaling_limited.1), (3, "ScaleDownLimit"));
}

#[test]
fn scale_up_stabilization_takes_the_min_of_its_window() {
    // Upstream stabilizeRecommendationWithBehaviors: scale-up takes the lowest
    // recommendation within scaleUp.stabilizationWindowSeconds.
    let up = HPAScalingRules {
        stabilization_window_seconds: Some(60),
        ..Default::default()
    };
    let rules = rules(Some(up), None);
    let mut history = recs(&[(4, NOW - 30), (9, NOW - 10)]);
    let n = with(&mut history, &rules, 3, 8);
    assert_eq!((n.desired, n.able_to_scale.0), (4, "ScaleUpStabilized"));
    assert_eq!(history.recommendations.len(), 3, "the raw 8 is remembered");
}

#[test]
fn behavior_scale_down_window_defaults_to_the_controller_window() {
    // Upstream: scaleDown.stabilizationWindowSeconds unset → the controller's
    // --horizontal-pod-autoscaler-downscale-stabilization (5 min; shorter in a lab).
    let rules_default = rules(None, None);
    let mut history = recs(&[(6, NOW - 200)]);
    let n = with(&mut history, &rules_default, 6, 2);
    assert_eq!((n.desired, n.able_to_scale.0), (6, "ScaleDownStabilized"));

    let short = resolve_behavior(
        &HorizontalPodAutoscalerBehavior::default(),
        Duration::from_secs(60),
        FIFTEEN_S,
    );
    let mut history = recs(&[(6, NOW - 200)]);
    assert_eq!(with(&mut history, &short, 6, 2).desired, 2);
}

#[test]
fn partial_behavior_takes_the_api_defaults_for_unset_fields() {
    // Upstream GenerateHPAScale{Up,Down}Rules: copy set fields over the defaults.
    let resolved = rules(Some(select("Min")), Some(policies(&[("Pods", 1, 60)])));
    let pod = |kind, value, secs| Policy {
        kind,
        value,
        period: Duration::from_secs(secs),
    };
    assert_eq!(
        resolved.scale_up,
        ScalingRules {
            stabilization_window: Duration::ZERO,
            select_policy: SelectPolicy::Min,
            policies: vec![
                pod(PolicyKind::Pods, 4, 15),
                pod(PolicyKind::Percent, 100, 15)
            ],
        }
    );
    assert_eq!(
        resolved.scale_down,
        ScalingRules {
            stabilization_window: Duration::ZERO,
            select_policy: SelectPolicy::Max,
            policies: vec![pod(PolicyKind::Pods, 1, 60)],
        }
    );
    let empty = rules(None, None);
    assert_eq!(empty.scale_down.stabilization_window, FIVE_MIN);
    assert_eq!(
        empty.scale_down.policies,
        vec![pod(PolicyKind::Percent, 100, 15)]
    );
}

#[test]
fn recorded_scale_events_reuse_outdated_slots() {
    // Upstream storeScaleEvent/markScaleEventsOutdated: events older than the longest
    // policy period are marked outdated and the last of them is overwritten.
    let mut history = History::default();
    history.record_scale(2, 6, FIFTEEN_S, ts(NOW - 100));
    history.record_scale(6, 8, FIFTEEN_S, ts(NOW - 50));
    assert_eq!(history.scale_up_events.len(), 1);
    assert_eq!(
        history.scale_up_events[0],
        ScaleEvent {
            change: 2,
            at: ts(NOW - 50),
            outdated: false
        }
    );
    history.record_scale(8, 9, FIFTEEN_S, ts(NOW - 45));
    history.record_scale(9, 3, FIFTEEN_S, ts(NOW));
    assert_eq!(history.scale_up_events.len(), 2);
    assert_eq!(
        history.scale_down_events,
        vec![ScaleEvent {
            change: 6,
            at: ts(NOW),
            outdated: false
        }]
    );
}
