//! `resil replicate` between two demo apps on loopback, and `resil load --write-ratio`'s
//! read-back: asynchronous replication at lag L loses the writes of the source's last L
//! when it dies, synchronous replication loses none, and the load's RPO counts exactly
//! the acknowledged writes the surviving region does not hold.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use resil::load::LoadPlan;
use resil::replicate::{ReplicatePlan, engine};
use tokio_util::sync::CancellationToken;

use crate::demo_app::{DemoApp, client};

fn plan(from: &DemoApp, to: &DemoApp, lag: Duration, sync: bool) -> ReplicatePlan {
    ReplicatePlan {
        from: from.base.clone(),
        to: to.base.clone(),
        lag,
        sync,
        poll: Duration::from_millis(20),
        timeout: Duration::from_secs(2),
        duration: Some(Duration::from_secs(60)),
    }
}

/// Runs `plan` in the background until the token is cancelled.
fn replicate(
    plan: ReplicatePlan,
) -> (
    tokio::task::JoinHandle<Result<engine::ReplicaReport, resil::replicate::ReplicateError>>,
    CancellationToken,
) {
    let cancel = CancellationToken::new();
    let stop = cancel.clone();
    let task = tokio::spawn(async move { engine::run(&plan, stop, |_| {}).await });
    (task, cancel)
}

/// Writes `count` keys to `app`, one every `every`; returns each acknowledged key with
/// the instant its acknowledgement arrived.
async fn write_steadily(app: &DemoApp, count: usize, every: Duration) -> Vec<(String, Instant)> {
    let c = client();
    let mut tick = tokio::time::interval(every);
    let mut acked = Vec::with_capacity(count);
    for i in 0..count {
        tick.tick().await;
        let key = format!("k-{i}");
        let put = c
            .put(app.url(&format!("/kv/{key}")))
            .body(key.clone())
            .send()
            .await;
        if put.is_ok_and(|r| r.status().is_success()) {
            acked.push((key, Instant::now()));
        }
    }
    acked
}

/// The acknowledged keys that `app` does not hold.
async fn missing(app: &DemoApp, acked: &[(String, Instant)]) -> HashSet<String> {
    let c = client();
    let mut gone = HashSet::new();
    for (key, _) in acked {
        let r = c.get(app.url(&format!("/kv/{key}"))).send().await.unwrap();
        match r.status().as_u16() {
            200 => assert_eq!(r.text().await.unwrap(), *key, "{key} read back wrong"),
            404 => {
                gone.insert(key.clone());
            }
            other => panic!("reading {key}: status {other}"),
        }
    }
    gone
}

#[tokio::test]
async fn async_lag_loses_the_writes_of_the_last_lag_when_the_source_dies() {
    let mut source = DemoApp::start_with(&["--region", "region-a"]);
    let target = DemoApp::start_with(&["--region", "region-b"]);
    let lag = Duration::from_millis(500);
    let (replicating, cancel) = replicate(plan(&source, &target, lag, false));
    let started = Instant::now();
    let acked = write_steadily(&source, 300, Duration::from_millis(5)).await;
    let rate = acked.len() as f64 / started.elapsed().as_secs_f64();
    // The source region dies with whatever it has not handed over.
    source.child.kill().unwrap();
    let died = Instant::now();
    tokio::time::sleep(Duration::from_millis(300)).await;
    cancel.cancel();
    let report = replicating.await.unwrap().unwrap();
    assert!(
        report.source_errors > 0,
        "the dead source was noticed: {report:?}"
    );

    let gone = missing(&target, &acked).await;
    let age = |at: &Instant| died.saturating_duration_since(*at);
    // Younger than the lag at the death: never eligible to be copied.
    for (key, at) in &acked {
        if age(at) + Duration::from_millis(50) < lag {
            assert!(
                gone.contains(key),
                "{key} ({:?} old) cannot have been copied",
                age(at)
            );
        }
        // Older than the lag plus a poll and scheduling slack: copied.
        if age(at) > lag + Duration::from_millis(250) {
            assert!(
                !gone.contains(key),
                "{key} ({:?} old) should have been copied",
                age(at)
            );
        }
    }
    // About rate × lag, give or take the writes of one poll and of a stalled moment on a
    // busy machine (a stall bunches acknowledgements, so the bound is loose; the per-key
    // checks above are the exact ones).
    let expected = rate * lag.as_secs_f64();
    let lost = gone.len() as f64;
    assert!(
        lost >= expected * 0.25 && lost <= acked.len() as f64 * 0.9,
        "lost {lost} writes; write rate {rate:.0}/s × lag {lag:?} = {expected:.0}"
    );
    assert_eq!(report.copied as usize, acked.len() - gone.len());
    assert!(report.lag_mean_ms >= 500, "{report:?}");
}

#[tokio::test]
async fn sync_replication_loses_no_acknowledged_write_when_the_source_dies() {
    for round in 0..3 {
        let mut source = DemoApp::start_with(&["--region", "region-a"]);
        let target = DemoApp::start_with(&["--region", "region-b"]);
        let c = client();
        // Written before replication starts: the catch-up copies it.
        c.put(source.url("/kv/early"))
            .body("early")
            .send()
            .await
            .unwrap();
        let (replicating, cancel) = replicate(plan(&source, &target, Duration::ZERO, true));
        // The source acknowledges through its replica once the replicator set it.
        until_replica_is(&source, &target).await;
        let mut acked = write_steadily(&source, 150, Duration::from_millis(2)).await;
        source.child.kill().unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        cancel.cancel();
        let report = replicating.await.unwrap().unwrap();
        assert!(report.sync);
        // The loop copied the early write only: the source had copied the others itself,
        // and the feed says so.
        assert_eq!(report.copied, 1, "round {round}: {report:#?}");
        assert!(report.held_already > 0, "round {round}: {report:#?}");
        acked.push(("early".into(), Instant::now()));
        let gone = missing(&target, &acked).await;
        assert!(
            gone.is_empty(),
            "round {round}: lost {} writes: {gone:?}",
            gone.len()
        );
        assert_eq!(
            acked.len(),
            151,
            "round {round}: every write was acknowledged"
        );
    }
}

#[tokio::test]
async fn the_load_counts_lost_writes_and_their_window_from_the_surviving_region() {
    let source = DemoApp::start_with(&["--region", "region-a"]);
    let survivor = DemoApp::start_with(&["--region", "region-b"]);
    let spec = resil::spec::LoadSpec {
        url: Some(source.url("/")),
        duration: Some(Duration::from_millis(800)),
        requests: None,
        concurrency: Some(2),
        rate: None,
        ramp: None,
        path: None,
        method: "GET".into(),
        headers: Vec::new(),
        body: None,
        timeout: Some(Duration::from_secs(5)),
        keepalive: true,
        workers: None,
        recovery_successes: None,
        write_ratio: Some(0.5),
        verify_url: Some(survivor.base.clone()),
    };
    let plan = LoadPlan::from_spec(&spec).unwrap();
    let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
    let report = resil::load::run(&plan, CancellationToken::new(), tx)
        .await
        .unwrap();
    let w = report.summary.writes.clone().expect("a write summary");
    let total = report.summary.requests;
    assert!(w.attempted > 20, "{w:?}");
    assert!(
        (w.attempted as f64 - total as f64 * 0.5).abs() <= 2.0,
        "half the requests write: {} of {total}",
        w.attempted
    );
    assert_eq!(w.acknowledged, w.attempted, "{w:?}");
    // Nothing was replicated: every acknowledged write is lost, over the run's span.
    assert_eq!(
        (w.lost, w.verified, w.correctness_errors()),
        (w.acknowledged, 0, 0)
    );
    let window = w.rpo_window_ms.unwrap();
    assert!((500..=1000).contains(&window), "window {window} ms: {w:?}");
    assert!(w.first_lost_at.unwrap() < w.last_lost_at.unwrap());

    // Read back from the region that took them: none lost.
    let mut spec = spec;
    spec.verify_url = None;
    let plan = LoadPlan::from_spec(&spec).unwrap();
    let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
    let report = resil::load::run(&plan, CancellationToken::new(), tx)
        .await
        .unwrap();
    let w = report.summary.writes.unwrap();
    assert_eq!(w.verify_url.as_deref(), Some(source.base.as_str()));
    assert_eq!((w.lost, w.verified), (0, w.acknowledged));
    assert_eq!(w.rpo_window_ms, None);
}

/// Waits (10 s at most) until `source` names `target` its synchronous replica.
async fn until_replica_is(source: &DemoApp, target: &DemoApp) {
    let c = client();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let state: serde_json::Value = c
            .get(source.url("/admin/state"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if state["kv"]["replica"] == target.base.as_str() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the replica was never set: {state}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits (10 s at most) until `app` holds every one of `acked`; `what` names them.
async fn until_held(app: &DemoApp, acked: &[(String, Instant)], what: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !missing(app, acked).await.is_empty() {
        assert!(Instant::now() < deadline, "{what} never arrived");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The port of a demo app's base URL.
fn port_of(app: &DemoApp) -> u16 {
    app.base.rsplit(':').next().unwrap().parse().unwrap()
}

#[tokio::test]
async fn a_source_back_with_a_new_store_is_replicated_from_its_start_and_stays_synchronous() {
    for sync in [false, true] {
        let mut source = DemoApp::start_with(&["--region", "region-a"]);
        let target = DemoApp::start_with(&["--region", "region-b"]);
        let (replicating, cancel) = replicate(plan(&source, &target, Duration::ZERO, sync));
        let before = write_steadily(&source, 30, Duration::from_millis(2)).await;
        until_held(&target, &before, &format!("sync {sync}: the first writes")).await;
        // The region's pod is replaced: a new process on the same address, an empty
        // store whose sequence starts again at 1.
        let port = port_of(&source);
        source.child.kill().unwrap();
        source.child.wait().unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        let source = DemoApp::start_on(port, &["--region", "region-a"]);
        let c = client();
        if sync {
            // The replicator names itself the new process's replica again.
            until_replica_is(&source, &target).await;
        }
        let mut after = Vec::new();
        for i in 0..10 {
            let key = format!("again-{i}");
            let put = c
                .put(source.url(&format!("/kv/{key}")))
                .body(key.clone())
                .send()
                .await
                .unwrap();
            assert!(put.status().is_success());
            let ack: serde_json::Value = put.json().await.unwrap();
            if sync {
                assert_eq!(ack["replicated_to"], target.base.as_str(), "{ack:#}");
            }
            after.push((key, Instant::now()));
        }
        // Asynchronously, the new store's writes (sequence 1 to 10, below what was copied
        // of the old one) are copied too.
        until_held(&target, &after, &format!("sync {sync}: the new writes")).await;
        cancel.cancel();
        let report = replicating.await.unwrap().unwrap();
        assert_eq!(report.source_restarts, 1, "sync {sync}: {report:#?}");
    }
}

#[tokio::test]
async fn writes_marked_for_a_replica_that_restarted_empty_since_are_copied_again() {
    // A synchronous source whose replica took five writes...
    let mut target = DemoApp::start_with(&["--region", "region-b"]);
    let source = DemoApp::start_with(&["--region", "region-a", "--replica-url", &target.base]);
    let early = write_steadily(&source, 5, Duration::from_millis(1)).await;
    assert_eq!(early.len(), 5);
    assert!(missing(&target, &early).await.is_empty());
    // ...then lost them: the replica's pod replaced by an empty one at the same address.
    let port = port_of(&target);
    target.child.kill().unwrap();
    target.child.wait().unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let target = DemoApp::start_on(port, &["--region", "region-b"]);

    // The feed still marks them as copied to that address; a new replicator does not take
    // the word of a setting older than its own, and copies them.
    let (replicating, cancel) = replicate(plan(&source, &target, Duration::ZERO, true));
    until_held(&target, &early, "the writes the old replica lost").await;
    // Later writes are the source's own synchronous copies: held already, not copied.
    let c = client();
    let mut later = Vec::new();
    for i in 0..5 {
        let key = format!("later-{i}");
        let put = c.put(source.url(&format!("/kv/{key}"))).body(key.clone());
        let status = put.send().await.unwrap().status();
        assert!(status.is_success(), "{key}: {status}");
        later.push((key, Instant::now()));
    }
    until_held(&target, &later, "the later writes").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    cancel.cancel();
    let report = replicating.await.unwrap().unwrap();
    assert_eq!(
        (report.copied, report.caught_up, report.held_already),
        (5, 5, 5),
        "{report:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_overwritten_while_the_replicator_catches_up_end_with_the_sources_values() {
    let source = DemoApp::start_with(&["--region", "region-a"]);
    let target = DemoApp::start_with(&["--region", "region-b"]);
    let c = client();
    let keys: Vec<String> = (0..300).map(|i| format!("hot-{i}")).collect();
    for key in &keys {
        let put = c.put(source.url(&format!("/kv/{key}"))).body("old");
        assert!(put.send().await.unwrap().status().is_success());
    }
    // Synchronous replication starts with a catch-up of the 300 old values, while every
    // key is written again: the source copies the new values itself, and the loop's older
    // copies of the same keys may land after them.
    let (replicating, cancel) = replicate(plan(&source, &target, Duration::ZERO, true));
    until_replica_is(&source, &target).await;
    for key in &keys {
        let put = c.put(source.url(&format!("/kv/{key}"))).body("new");
        assert!(put.send().await.unwrap().status().is_success());
    }
    // The target ends with the value the source keeps, for every key.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut stale = Vec::new();
        for key in &keys {
            let r = c
                .get(target.url(&format!("/kv/{key}")))
                .send()
                .await
                .unwrap();
            if r.text().await.unwrap() != "new" {
                stale.push(key.clone());
            }
        }
        if stale.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the target kept older values of {} keys: {:?}",
            stale.len(),
            &stale[..stale.len().min(10)]
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    cancel.cancel();
    replicating.await.unwrap().unwrap();
}
