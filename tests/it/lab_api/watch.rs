//! Watches (kube's watcher and raw streams) and list selectors.

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::json;

use super::{api_error, pod};
use crate::support::{self, raw, start_api_only_lab};

#[tokio::test]
async fn watcher_sees_added_modified_deleted_in_order() {
    let (lab, client, _dir) = start_api_only_lab().await;
    let pods: Api<Pod> = Api::default_namespaced(client);
    let stream = watcher(pods.clone(), watcher::Config::default().labels("app=web"));
    let mut stream = Box::pin(stream);
    // The initial list completes (InitDone) before any change is made.
    loop {
        let ev = tokio::time::timeout(Duration::from_secs(10), stream.try_next())
            .await
            .unwrap()
            .unwrap();
        if matches!(ev, Some(watcher::Event::InitDone)) {
            break;
        }
    }
    pods.create(&PostParams::default(), &pod("web-1", json!({"app": "web"})))
        .await
        .unwrap();
    pods.create(&PostParams::default(), &pod("other", json!({"app": "db"})))
        .await
        .unwrap();
    pods.patch(
        "web-1",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"annotations": {"a": "b"}}})),
    )
    .await
    .unwrap();
    pods.delete("web-1", &DeleteParams::default())
        .await
        .unwrap();

    let mut seen = Vec::new();
    while seen.len() < 3 {
        let ev = tokio::time::timeout(Duration::from_secs(10), stream.try_next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        match ev {
            watcher::Event::Apply(p) => {
                let annotated = p.metadata.annotations.is_some();
                seen.push(format!(
                    "{}:{}",
                    if annotated { "modified" } else { "added" },
                    p.metadata.name.unwrap()
                ));
            }
            watcher::Event::Delete(p) => seen.push(format!("deleted:{}", p.metadata.name.unwrap())),
            _ => {}
        }
    }
    assert_eq!(seen, ["added:web-1", "modified:web-1", "deleted:web-1"]);
    lab.shutdown().await;
}

#[tokio::test]
async fn raw_watch_streams_json_lines_and_ends_at_timeout() {
    let (lab, client, _dir) = start_api_only_lab().await;
    let path = "/api/v1/namespaces/default/pods?watch=true&timeoutSeconds=1&resourceVersion=0";
    let req = axum::http::Request::get(path)
        .body(kube::client::Body::empty())
        .unwrap();
    let res = client.send(req).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/json");
    let started = std::time::Instant::now();
    let body = tokio::time::timeout(Duration::from_secs(5), res.into_body().collect_bytes())
        .await
        .unwrap()
        .unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "stream stays open until the timeout"
    );
    assert!(body.is_empty(), "no pods, no events: {body:?}");
    lab.shutdown().await;
}

#[tokio::test]
async fn selectors_filter_lists() {
    let (lab, client, _dir) = start_api_only_lab().await;
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    let pp = PostParams::default();
    pods.create(&pp, &pod("a", json!({"app": "web", "track": "blue"})))
        .await
        .unwrap();
    pods.create(&pp, &pod("b", json!({"app": "web", "track": "green"})))
        .await
        .unwrap();
    pods.create(&pp, &pod("c", json!({"app": "db"})))
        .await
        .unwrap();
    let names = |l: kube::core::ObjectList<Pod>| {
        l.items
            .into_iter()
            .map(|p| p.metadata.name.unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        names(
            pods.list(&ListParams::default().labels("app=web"))
                .await
                .unwrap()
        ),
        ["a", "b"]
    );
    assert_eq!(
        names(
            pods.list(&ListParams::default().labels("track in (green),app"))
                .await
                .unwrap()
        ),
        ["b"]
    );
    assert_eq!(
        names(
            pods.list(&ListParams::default().labels("!track"))
                .await
                .unwrap()
        ),
        ["c"]
    );
    assert_eq!(
        names(
            pods.list(&ListParams::default().fields("metadata.name=c"))
                .await
                .unwrap()
        ),
        ["c"]
    );
    let err = api_error(
        pods.list(&ListParams::default().fields("spec.bogus=1"))
            .await
            .unwrap_err(),
    );
    assert_eq!((err.code, err.reason.as_str()), (400, "BadRequest"));
    lab.shutdown().await;
}

#[tokio::test]
async fn watch_streams_keep_up_with_many_changes() {
    let (lab, client, _dir) = start_api_only_lab().await;
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    let stream = watcher(pods.clone(), watcher::Config::default()).applied_objects();
    let mut stream = Box::pin(stream);
    for i in 0..50 {
        pods.create(&PostParams::default(), &pod(&format!("p{i}"), json!({})))
            .await
            .unwrap();
    }
    let mut names = std::collections::BTreeSet::new();
    while names.len() < 50 {
        let p = tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        names.insert(p.metadata.name.unwrap());
    }
    lab.shutdown().await;
}

#[tokio::test]
async fn watch_from_before_a_restart_gets_an_expired_error_event() {
    let (lab, client, dir) = start_api_only_lab().await;
    let pods: Api<Pod> = Api::default_namespaced(client);
    let created = pods
        .create(&PostParams::default(), &pod("a", json!({})))
        .await
        .unwrap();
    let old_rv = created.metadata.resource_version.unwrap();
    lab.shutdown().await;
    let lab = support::start_lab_in(&dir).await;
    let client = support::client_for(&lab).await;
    let path = format!(
        "/api/v1/namespaces/default/pods?watch=true&resourceVersion={}",
        old_rv.parse::<u64>().unwrap() - 1
    );
    let (code, ct, body) = raw(&client, "GET", &path, None, vec![]).await;
    assert_eq!(
        (code, ct.as_str()),
        (200, "application/json"),
        "a watch stays 200"
    );
    assert_eq!(body["type"], "ERROR");
    assert_eq!(body["object"]["code"], 410);
    assert_eq!(body["object"]["reason"], "Expired");
    lab.shutdown().await;
}

#[tokio::test]
async fn streaming_list_watchers_get_initial_events_then_changes() {
    let (lab, client, _dir) = start_api_only_lab().await;
    let pods: Api<Pod> = Api::default_namespaced(client);
    pods.create(&PostParams::default(), &pod("before", json!({})))
        .await
        .unwrap();
    let stream = watcher(pods.clone(), watcher::Config::default().streaming_lists());
    let mut stream = Box::pin(stream);
    let mut initial = Vec::new();
    loop {
        let ev = tokio::time::timeout(Duration::from_secs(10), stream.try_next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        match ev {
            watcher::Event::InitApply(p) => initial.push(p.metadata.name.unwrap()),
            watcher::Event::InitDone => break,
            _ => {}
        }
    }
    assert_eq!(initial, ["before"]);
    pods.create(&PostParams::default(), &pod("after", json!({})))
        .await
        .unwrap();
    let ev = tokio::time::timeout(Duration::from_secs(10), stream.try_next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    match ev {
        watcher::Event::Apply(p) => assert_eq!(p.metadata.name.as_deref(), Some("after")),
        other => panic!("expected the new pod, got {other:?}"),
    }
    lab.shutdown().await;
}

#[tokio::test]
async fn an_object_leaving_a_watched_selection_is_deleted_for_that_watcher() {
    let (lab, client, _dir) = start_api_only_lab().await;
    let pods: Api<Pod> = Api::default_namespaced(client);
    pods.create(&PostParams::default(), &pod("a", json!({"track": "blue"})))
        .await
        .unwrap();
    let mut stream = Box::pin(watcher(
        pods.clone(),
        watcher::Config::default().labels("track=blue"),
    ));
    loop {
        let ev = tokio::time::timeout(Duration::from_secs(10), stream.try_next())
            .await
            .unwrap()
            .unwrap();
        if matches!(ev, Some(watcher::Event::InitDone)) {
            break;
        }
    }
    let relabel = json!({"metadata": {"labels": {"track": "green"}}});
    pods.patch("a", &PatchParams::default(), &Patch::Merge(&relabel))
        .await
        .unwrap();
    let ev = tokio::time::timeout(Duration::from_secs(10), stream.try_next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(
        matches!(ev, watcher::Event::Delete(ref p) if p.metadata.name.as_deref() == Some("a")),
        "{ev:?}"
    );
    let back = json!({"metadata": {"labels": {"track": "blue"}}});
    pods.patch("a", &PatchParams::default(), &Patch::Merge(&back))
        .await
        .unwrap();
    let ev = tokio::time::timeout(Duration::from_secs(10), stream.try_next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(matches!(ev, watcher::Event::Apply(_)), "{ev:?}");
    lab.shutdown().await;
}

#[tokio::test]
async fn shutdown_ends_open_watches_promptly() {
    let (lab, client, _dir) = start_api_only_lab().await;
    let req = axum::http::Request::get("/api/v1/pods?watch=true")
        .body(kube::client::Body::empty())
        .unwrap();
    let res = client.send(req).await.unwrap();
    let body = tokio::spawn(res.into_body().collect_bytes());
    let started = std::time::Instant::now();
    lab.shutdown().await;
    let ended = tokio::time::timeout(Duration::from_secs(5), body).await;
    assert!(ended.is_ok(), "the watch stream ended with the lab");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "shutdown took {:?}",
        started.elapsed()
    );
}
