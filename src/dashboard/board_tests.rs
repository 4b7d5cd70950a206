//! Unit tests of the board: what the page is sent for a given state, at a given time.

use super::*;
use crate::report::model::{ChaosAction, Decision, FailoverEpisode};
use crate::results::timeline::Served;
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
