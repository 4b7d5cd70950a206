//! Speed floors for the lab API (debug build, shared machine — bounds are ~20x what was
//! measured, so only a real regression trips them). Prints the figures:
//! `cargo nextest run --no-capture -E 'test(/lab_api::perf/)'`.

use std::time::{Duration, Instant};

use futures::TryStreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, PostParams};
use kube::runtime::watcher;
use serde_json::json;

use super::pod;
use crate::support;

#[tokio::test]
async fn creates_lists_and_watch_notifications_are_fast() {
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let lab = support::start_api_only_lab_in(&dir).await;
    let first_start = started.elapsed();
    let pods: Api<Pod> = Api::default_namespaced(support::client_for(&lab).await);

    let t = Instant::now();
    for i in 0..300 {
        pods.create(
            &PostParams::default(),
            &pod(&format!("p{i}"), json!({"app": "bulk"})),
        )
        .await
        .unwrap();
    }
    let creates = t.elapsed();
    let t = Instant::now();
    for _ in 0..20 {
        assert_eq!(
            pods.list(&ListParams::default()).await.unwrap().items.len(),
            300
        );
    }
    let list = t.elapsed() / 20;

    let mut stream = Box::pin(watcher(
        pods.clone(),
        watcher::Config::default().labels("app=w"),
    ));
    while !matches!(
        stream.try_next().await.unwrap(),
        Some(watcher::Event::InitDone)
    ) {}
    let mut latencies = Vec::new();
    for i in 0..30 {
        let t = Instant::now();
        pods.create(
            &PostParams::default(),
            &pod(&format!("w{i}"), json!({"app": "w"})),
        )
        .await
        .unwrap();
        while !matches!(
            stream.try_next().await.unwrap(),
            Some(watcher::Event::Apply(_))
        ) {}
        latencies.push(t.elapsed());
    }
    latencies.sort();
    let t = Instant::now();
    lab.shutdown().await;
    let shutdown = t.elapsed();
    let t = Instant::now();
    let lab = support::start_api_only_lab_in(&dir).await;
    let restart = t.elapsed();
    lab.shutdown().await;

    let per_second = 300.0 / creates.as_secs_f64();
    let (p50, max) = (latencies[15], latencies[29]);
    eprintln!(
        "lab API: first start {first_start:?}; 300 creates {creates:?} ({per_second:.0}/s); \
         list of 300 pods {list:?}; create->watch event p50 {p50:?} max {max:?}; \
         shutdown {shutdown:?}; restart with 330 objects {restart:?}"
    );
    assert!(per_second > 50.0, "creates/s {per_second:.0}");
    assert!(list < Duration::from_millis(500), "list {list:?}");
    assert!(p50 < Duration::from_millis(100), "watch p50 {p50:?}");
    assert!(restart < Duration::from_secs(3), "restart {restart:?}");
}
