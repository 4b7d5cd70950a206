//! Unit tests of the board: what the page is sent for a given state, at a given time.

use super::*;
use crate::report::model::{ChaosAction, Decision, FailoverEpisode};
use crate::results::timeline::{ColorLatency, Served};
use crate::watch::controller::Snapshot;

fn at(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(1_800_000_000_000 + ms).unwrap()
}

fn bucket(ms: i64, blue: u64, green: u64) -> Input {
    let served = |n| Served {
        requests: n,
        errors: 0,
        timed: 0,
        latency_sum_us: 0,
    };
    Input::Event(Event {
        ts: at(ms),
        source: "load".to_string(),
        kind: EventKind::LoadBucket {
            second: (ms / 1000) as u64,
            requests: blue + green,
            errors: 0,
            p50_us: 2_000,
            p90_us: 3_000,
            p99_us: 9_000,
            max_us: 20_000,
            by_color: [
                ("blue".to_string(), served(blue)),
                ("green".to_string(), served(green)),
            ]
            .into(),
            by_pod: BTreeMap::new(),
            latency_by_color: [
                (
                    "blue".to_string(),
                    ColorLatency {
                        p50_us: 1_000,
                        p99_us: 5_000,
                    },
                ),
                (
                    "green".to_string(),
                    ColorLatency {
                        p50_us: 3_000,
                        p99_us: 12_000,
                    },
                ),
            ]
            .into(),
        },
    })
}

fn report_with_failover() -> Report {
    let json = serde_json::json!({
        "report_schema_version": 1,
        "run": {"run_id": "r", "command": "run", "resil_version": "0", "started_at": at(0),
                "ended_at": at(60_000), "status": "complete", "partial": false,
                "partial_reason": null, "context": null, "target_url": null, "scenario": null,
                "duration_s": 60.0},
        "load": null, "failovers": [], "downtime": [], "scaling": [], "replica_seconds": {},
        "replica_seconds_source": "none", "cost": null, "chaos": [], "decisions": [],
        "slos": [], "slos_passed": true
    });
    let mut report: Report = serde_json::from_value(json).unwrap();
    report.chaos.push(ChaosAction {
        at: at(10_000),
        action: "kill-pods".to_string(),
        targets: vec!["web-blue-1".to_string()],
        reverted_at: None,
    });
    report.decisions.push(Decision {
        at: at(10_050),
        controller: "watch".to_string(),
        rule: "active colour has no ready pod".to_string(),
        action: "switch to green".to_string(),
        inputs: serde_json::Value::Null,
    });
    report.failovers.push(FailoverEpisode {
        from: "blue".to_string(),
        to: "green".to_string(),
        direction: "failover".to_string(),
        started_at: at(10_000),
        completed_at: at(10_080),
        control_plane_ms: 80,
        client_downtime_ms: Some(40),
        downtime_unbounded: false,
        errors_during: 3,
    });
    report
}

#[test]
fn a_snapshot_sets_the_switch_and_the_tiles() {
    let mut board = Board::new(false);
    board.apply(Input::Watch(Update::Snapshot(Snapshot {
        selected: Some(Color::Green),
        ready: [(Color::Blue, 0), (Color::Green, 2)],
        desired: [(Color::Blue, 2), (Color::Green, 2)],
        serving: 2,
        hpas: Vec::new(),
        last_failover: None,
    })));
    let json = serde_json::to_value(board.frame(at(0))).unwrap();
    assert_eq!(json["selected"], "green");
    assert_eq!(
        json["tiles"],
        serde_json::json!([
            {"color": "blue", "ready": 0, "total": 2},
            {"color": "green", "ready": 2, "total": 2}
        ])
    );
    assert_eq!(json["replay"], false);
    assert_eq!(json["now_ms"], at(0).timestamp_millis());
}

#[test]
fn charts_hold_the_last_two_minutes_only() {
    let mut board = Board::new(false);
    for s in 0..200 {
        board.apply(bucket(s * 1000, 100, 5));
    }
    let frame = board.frame(at(199_500));
    assert_eq!(frame.points.len(), 120, "two minutes of one-second points");
    assert_eq!(frame.points[0].at_ms, at(80_000).timestamp_millis());
    let json = serde_json::to_value(&frame.points[0]).unwrap();
    assert_eq!(
        json["requests"],
        serde_json::json!({"blue": 100, "green": 5})
    );
    assert_eq!(json["p99_ms"], 9.0);
}

#[test]
fn markers_come_from_the_report_as_the_clock_reaches_them() {
    let mut board = Board::new(true);
    board.apply(Input::Report {
        report: Box::new(report_with_failover()),
        complete: false,
    });
    assert!(board.frame(at(9_999)).markers.is_empty());
    let kinds: Vec<String> = board
        .frame(at(10_080))
        .markers
        .into_iter()
        .map(|m| m.kind)
        .collect();
    assert_eq!(kinds, ["fault", "failover"]);
    let failover = &board.frame(at(20_000)).markers[1];
    assert_eq!(failover.label, "failover blue → green in 80 ms");
    assert_eq!(
        failover.reason,
        "active colour has no ready pod: switch to green"
    );
}

#[test]
fn a_live_failover_is_shown_once_when_the_report_catches_up() {
    let mut board = Board::new(false);
    let failover = crate::results::summary::Failover {
        from: "blue".to_string(),
        to: "green".to_string(),
        direction: "failover".to_string(),
        started_at: at(10_000),
        completed_at: at(10_080),
        duration_ms: 80,
        standby_prepared: false,
        prepare_ms: None,
    };
    board.apply(Input::Watch(Update::Failover(failover)));
    assert_eq!(board.frame(at(11_000)).markers.len(), 1);
    board.apply(Input::Report {
        report: Box::new(report_with_failover()),
        complete: true,
    });
    let frame = board.frame(at(11_000));
    let failovers = frame
        .markers
        .iter()
        .filter(|m| m.kind == "failover")
        .count();
    assert_eq!(failovers, 1, "{:?}", frame.markers);
    assert!(frame.complete);
}

#[test]
fn a_point_carries_each_colours_p50_and_p99() {
    let mut board = Board::new(false);
    board.apply(bucket(1_000, 100, 50));
    let json = serde_json::to_value(&board.frame(at(1_500)).points[0]).unwrap();
    assert_eq!(
        json["latency"],
        serde_json::json!({
            "blue": {"p50_ms": 1.0, "p99_ms": 5.0},
            "green": {"p50_ms": 3.0, "p99_ms": 12.0}
        })
    );
}

#[test]
fn rollout_steps_and_a_rollback_are_markers_with_their_reasons() {
    use crate::report::rollouts::{RollbackFigures, RolloutFigures, RolloutStepFigures};
    let mut report = report_with_failover();
    let step = |ms, step: &str, weight| RolloutStepFigures {
        at: at(ms),
        step: step.to_string(),
        weight_percent: weight,
        detail: format!("{step} to v2"),
    };
    report.rollouts.push(RolloutFigures {
        deployment: "web-blue".to_string(),
        outcome: "rolled_back".to_string(),
        revision: Some(3),
        started_at: at(20_000),
        ended_at: Some(at(31_000)),
        duration_ms: Some(11_000),
        steps: vec![step(20_000, "canary", 10), step(25_000, "canary", 50)],
        intervals: 3,
        intervals_failed: 1,
        rollback: Some(RollbackFigures {
            interval: 3,
            reason: "error_rate 0.2 > 0.01".to_string(),
            breached_at: at(28_000),
            detected_at: at(29_000),
            started_at: at(29_100),
            done_at: Some(at(31_000)),
            breach_to_start_ms: 1_100,
            breach_to_done_ms: Some(3_000),
            detection_to_start_ms: 100,
        }),
    });
    let mut board = Board::new(true);
    board.apply(Input::Report {
        report: Box::new(report),
        complete: false,
    });
    let markers = board.frame(at(30_000)).markers;
    let kinds: Vec<&str> = markers.iter().map(|m| m.kind.as_str()).collect();
    assert_eq!(
        kinds,
        ["fault", "failover", "rollout", "rollout", "rollback"]
    );
    assert_eq!(markers[3].label, "web-blue canary at 50%");
    assert_eq!(markers[3].reason, "canary to v2");
    assert_eq!(
        markers[4].label,
        "rollback web-blue, done 3000 ms after the breach"
    );
    assert_eq!(markers[4].reason, "interval 3: error_rate 0.2 > 0.01");
    assert_eq!(
        board.frame(at(24_000)).markers.len(),
        3,
        "not before its time"
    );
}

fn pod(name: &str, color: &str, node: Option<&str>, ready: bool) -> Input {
    Input::Pods(Change::Pod(PodSeen {
        name: name.to_string(),
        color: Some(color.to_string()),
        node: node.map(str::to_string),
        ready,
    }))
}

fn node(name: &str, zone: &str, ready: bool) -> NodeSeen {
    NodeSeen {
        name: name.to_string(),
        zone: Some(zone.to_string()),
        ready,
    }
}

#[test]
fn pod_tiles_are_grouped_by_zone_and_node_and_a_deleted_pod_stays_red_briefly() {
    let mut board = Board::new(false);
    board.apply(Input::Pods(Change::Nodes(vec![
        node("lab-node-2", "lab-b", true),
        node("lab-node-1", "lab-a", true),
        node("lab-node-3", "lab-c", false),
    ])));
    board.apply(pod("web-blue-1", "blue", Some("lab-node-2"), true));
    board.apply(pod("web-green-1", "green", Some("lab-node-1"), false));
    board.apply(pod("web-blue-2", "blue", None, false));
    board.apply(Input::Pods(Change::PodGone {
        name: "web-blue-1".to_string(),
        at: at(1_000),
    }));
    let json = serde_json::to_value(board.frame(at(2_000)).nodes).unwrap();
    assert_eq!(
        json,
        serde_json::json!([
            {"node": "lab-node-1", "zone": "lab-a", "ready": true,
             "pods": [{"name": "web-green-1", "color": "green", "state": "not ready"}]},
            {"node": "lab-node-2", "zone": "lab-b", "ready": true,
             "pods": [{"name": "web-blue-1", "color": "blue", "state": "deleted"}]},
            {"node": "lab-node-3", "zone": "lab-c", "ready": false, "pods": []},
            {"node": null, "zone": null, "ready": true,
             "pods": [{"name": "web-blue-2", "color": "blue", "state": "not ready"}]},
        ])
    );
    board.apply(pod("web-green-1", "green", Some("lab-node-1"), true));
    let later = board.frame(at(1_000 + GONE_SHOWN_MS + 1));
    let states: Vec<(&str, &str)> = later
        .nodes
        .iter()
        .flat_map(|n| n.pods.iter().map(|p| (p.name.as_str(), p.state)))
        .collect();
    assert_eq!(
        states,
        [("web-green-1", "ready"), ("web-blue-2", "not ready")],
        "the deleted pod is gone after {GONE_SHOWN_MS} ms"
    );
}
