//! Tests of the probe state machine and worker (under paused time) and of the checks.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use super::*;

fn settings(initial: u64, period: u64, success: u32, failure: u32) -> ProbeSettings {
    ProbeSettings {
        initial_delay: Duration::from_secs(initial),
        period: Duration::from_secs(period),
        timeout: Duration::from_secs(1),
        success_threshold: success,
        failure_threshold: failure,
    }
}

#[test]
fn defaults_match_kubernetes() {
    let probe = Probe::default();
    assert_eq!(
        ProbeSettings::from_probe(&probe, ProbeKind::Readiness),
        settings(0, 10, 1, 3)
    );
    let custom = Probe {
        initial_delay_seconds: Some(5),
        period_seconds: Some(2),
        timeout_seconds: Some(3),
        success_threshold: Some(2),
        failure_threshold: Some(4),
        ..Probe::default()
    };
    let liveness = ProbeSettings::from_probe(&custom, ProbeKind::Liveness);
    assert_eq!(liveness.initial_delay, Duration::from_secs(5));
    assert_eq!(liveness.timeout, Duration::from_secs(3));
    assert_eq!(
        liveness.success_threshold, 1,
        "liveness success threshold is always 1"
    );
    assert_eq!(liveness.failure_threshold, 4);
    assert_eq!(
        ProbeSettings::from_probe(&custom, ProbeKind::Readiness).success_threshold,
        2
    );
}

#[test]
fn results_flip_only_after_their_threshold_of_agreeing_attempts() {
    let mut readiness = ProbeTracker::new(ProbeKind::Readiness, settings(0, 1, 2, 3));
    assert!(!readiness.healthy(), "readiness starts not ready");
    assert_eq!(readiness.observe(true), None);
    assert_eq!(readiness.observe(false), None, "a failure breaks the run");
    assert_eq!(readiness.observe(true), None);
    assert_eq!(readiness.observe(true), Some(true));
    assert_eq!(readiness.observe(true), None, "no repeat while unchanged");
    assert_eq!(readiness.observe(false), None);
    assert_eq!(readiness.observe(false), None);
    assert_eq!(readiness.observe(false), Some(false));

    let liveness = ProbeTracker::new(ProbeKind::Liveness, settings(0, 1, 1, 3));
    assert!(liveness.healthy(), "liveness starts healthy");
}

/// A check that plays back scripted outcomes and records when it ran.
fn scripted(
    outcomes: &[bool],
) -> (
    impl FnMut() -> std::future::Ready<ProbeOutcome>,
    Arc<Mutex<Vec<Instant>>>,
) {
    let queue = Arc::new(Mutex::new(
        outcomes.iter().copied().collect::<VecDeque<_>>(),
    ));
    let times = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&times);
    let check = move || {
        seen.lock().unwrap().push(Instant::now());
        let ok = queue.lock().unwrap().pop_front().unwrap_or(true);
        std::future::ready(if ok {
            ProbeOutcome::pass()
        } else {
            ProbeOutcome::fail("HTTP probe failed with statuscode: 503")
        })
    };
    (check, times)
}

#[tokio::test(start_paused = true)]
async fn readiness_worker_honours_initial_delay_period_and_thresholds() {
    let start = Instant::now();
    let (check, times) = scripted(&[true, true, false, false, false, true]);
    let (tx, mut rx) = mpsc::channel(16);
    let stop = CancellationToken::new();
    let worker = tokio::spawn(run_probe(
        ProbeKind::Readiness,
        settings(5, 2, 1, 3),
        start,
        check,
        tx,
        stop.clone(),
    ));

    let mut seen = Vec::new();
    while seen.len() < 6 {
        let update = rx.recv().await.unwrap();
        seen.push((update, Instant::now() - start));
    }
    let secs = |s| Duration::from_secs(s);
    let changed = |healthy| ProbeUpdate::Changed {
        kind: ProbeKind::Readiness,
        healthy,
    };
    let failed = ProbeUpdate::Failed {
        kind: ProbeKind::Readiness,
        message: "Readiness probe failed: HTTP probe failed with statuscode: 503".into(),
    };
    assert_eq!(
        seen,
        vec![
            (changed(true), secs(5)),
            (failed.clone(), secs(9)),
            (failed.clone(), secs(11)),
            (failed, secs(13)),
            (changed(false), secs(13)),
            (changed(true), secs(15)),
        ]
    );
    let attempts: Vec<_> = times.lock().unwrap().iter().map(|t| *t - start).collect();
    assert_eq!(attempts[..3], [secs(5), secs(7), secs(9)]);
    stop.cancel();
    worker.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_liveness_failure_is_reported_once_and_ends_the_worker() {
    let (check, times) = scripted(&[false, false]);
    let (tx, mut rx) = mpsc::channel(16);
    let worker = tokio::spawn(run_probe(
        ProbeKind::Liveness,
        settings(0, 10, 1, 2),
        Instant::now(),
        check,
        tx,
        CancellationToken::new(),
    ));
    let mut updates = Vec::new();
    while let Some(update) = rx.recv().await {
        updates.push(update);
    }
    worker.await.unwrap();
    assert_eq!(updates.len(), 3, "{updates:?}");
    assert_eq!(
        updates[2],
        ProbeUpdate::Changed {
            kind: ProbeKind::Liveness,
            healthy: false
        }
    );
    assert_eq!(
        times.lock().unwrap().len(),
        2,
        "no attempts after the restart verdict"
    );
}

#[tokio::test(start_paused = true)]
async fn an_attempt_slower_than_the_timeout_fails() {
    let (tx, mut rx) = mpsc::channel(16);
    let check = || async {
        tokio::time::sleep(Duration::from_secs(30)).await;
        ProbeOutcome::pass()
    };
    let stop = CancellationToken::new();
    let worker = tokio::spawn(run_probe(
        ProbeKind::Readiness,
        settings(0, 10, 1, 1),
        Instant::now(),
        check,
        tx,
        stop.clone(),
    ));
    match rx.recv().await.unwrap() {
        ProbeUpdate::Failed { message, .. } => assert!(message.contains("timed out"), "{message}"),
        other => panic!("expected a failure, got {other:?}"),
    }
    stop.cancel();
    worker.await.unwrap();
}

#[test]
fn probes_the_lab_cannot_run_are_refused() {
    let addr: SocketAddr = "127.0.0.1:1".parse().unwrap();
    let client = probe_client();
    let exec: Probe =
        serde_json::from_value(serde_json::json!({"exec": {"command": ["true"]}})).unwrap();
    assert_eq!(
        ProbeCheck::from_probe(&exec, addr, &client).unwrap_err(),
        ProbeError::Unsupported("exec")
    );
    let https: Probe = serde_json::from_value(
        serde_json::json!({"httpGet": {"path": "/", "port": 8080, "scheme": "HTTPS"}}),
    )
    .unwrap();
    assert!(ProbeCheck::from_probe(&https, addr, &client).is_err());
    assert_eq!(
        ProbeCheck::from_probe(&Probe::default(), addr, &client).unwrap_err(),
        ProbeError::NoHandler
    );
}

#[tokio::test]
async fn http_and_tcp_checks_see_status_codes_and_refused_connections() {
    use axum::http::StatusCode;
    let router = axum::Router::new()
        .route("/ok", axum::routing::get(|| async { "ok" }))
        .route(
            "/moved",
            axum::routing::get(|| async { (StatusCode::FOUND, "") }),
        )
        .route(
            "/down",
            axum::routing::get(|| async { StatusCode::SERVICE_UNAVAILABLE }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, router).await });
    let client = probe_client();
    let http = |path: &str| HttpCheck::new(client.clone(), addr, path, Vec::new());
    assert!(http("/ok").check().await.ok);
    assert!(http("moved").check().await.ok, "3xx passes");
    let down = http("/down").check().await;
    assert_eq!(down.message, "HTTP probe failed with statuscode: 503");
    assert!(TcpCheck { addr }.check().await.ok);
    server.abort();
    let _ = server.await;

    let closed = crate::kubelet::free_port(std::net::Ipv4Addr::LOCALHOST).unwrap();
    let closed: SocketAddr = format!("127.0.0.1:{closed}").parse().unwrap();
    let refused = HttpCheck::new(client.clone(), closed, "/", Vec::new())
        .check()
        .await;
    assert!(!refused.ok);
    assert!(
        refused.message.starts_with("Get \"http://127.0.0.1:"),
        "{}",
        refused.message
    );
    assert!(!TcpCheck { addr: closed }.check().await.ok);
}
