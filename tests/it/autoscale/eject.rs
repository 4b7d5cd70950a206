//! Outlier ejection (`resil watch --eject-outliers`'s runner): against the stand-in, the
//! one blue pod answering 30 % errors in the load buckets is deleted and its siblings are
//! not; on the lab, a pod switched to 30 % errors through the demo app's admin port is
//! ejected within 5 s under real load and the error rate falls back under 1 %.

use std::time::Duration;

use chrono::Utc;
use clap::Parser;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::api::{Api, ListParams, PostParams};
use resil::chaos::execute::Scope;
use resil::cli::Cli;
use resil::results::RunDir;
use resil::results::timeline::{Event, EventKind, Served};
use resil::watch::controller::Update;
use resil::watch::eject::{self, EjectPlan};
use resil::watch::outliers::Settings;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::stand_in::{NS, PODS, cluster};
use crate::support::eventually;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pod_answering_30_percent_errors_is_ejected_and_its_siblings_are_not() {
    let dir = tempfile::tempdir().unwrap();
    let (cluster, kubeconfig) = cluster(dir.path()).await;
    // Five seconds of load: 50 req/s per pod, web-blue-c failing 15 of them.
    let run = RunDir::create(dir.path().join("results")).unwrap();
    let mut timeline = run.timeline().unwrap();
    for i in 0..5u64 {
        let by_pod = PODS
            .iter()
            .map(|p| {
                let errors = if *p == "web-blue-c" { 15 } else { 0 };
                (p.to_string(), Served::counts(50, errors))
            })
            .collect();
        timeline
            .append(&Event {
                ts: Utc::now() - chrono::Duration::seconds(5 - i as i64),
                source: "load".to_string(),
                kind: EventKind::LoadBucket {
                    second: i,
                    requests: 150,
                    errors: 15,
                    p50_us: 1000,
                    p90_us: 2000,
                    p99_us: 3000,
                    max_us: 4000,
                    by_color: Default::default(),
                    by_pod,
                    latency_by_color: Default::default(),
                },
            })
            .unwrap();
    }
    let config = kube::Config::from_custom_kubeconfig(
        kube::config::Kubeconfig::read_from(&kubeconfig).unwrap(),
        &Default::default(),
    )
    .await
    .unwrap();
    let scope = Scope {
        client: kube::Client::try_from(config).unwrap(),
        namespace: NS.to_string(),
    };
    let plan = EjectPlan {
        dir: run.clone(),
        window: Duration::from_secs(10),
        settings: Settings::default(),
    };
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(eject::run(scope, plan, tx, shutdown.clone()));
    let started = std::time::Instant::now();
    for _ in 0..100 {
        if !cluster.deleted.lock().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let ejected_after = started.elapsed();
    // A second tick must not eject a sibling in its place.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    shutdown.cancel();
    task.await.unwrap();
    assert_eq!(*cluster.deleted.lock().unwrap(), ["web-blue-c"]);
    assert!(ejected_after < Duration::from_secs(5), "{ejected_after:?}");
    match rx.recv().await.unwrap() {
        Update::Decision { rule, action } => {
            assert!(action.starts_with("eject pod web-blue-c"), "{action}");
            assert!(rule.contains("ErrorRate 0.300"), "{rule}");
        }
        other => panic!("{other:?}"),
    }
    let recorded = run
        .read_timeline()
        .unwrap()
        .into_iter()
        .filter(|e| matches!(&e.kind, EventKind::Decision { controller, .. } if controller == "outliers"))
        .count();
    assert_eq!(recorded, 1);
    assert_eq!(*cluster.events.lock().unwrap(), ["OutlierEjected"]);
}

/// Four blue demo pods behind a NodePort Service (port allocated by the lab).
fn blue_objects() -> (Deployment, Service) {
    let deployment = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web-blue"},
        "spec": {
            "replicas": 4,
            "selector": {"matchLabels": {"app": "web", "version": "blue"}},
            "template": {
                "metadata": {"labels": {"app": "web", "version": "blue"}},
                "spec": {"terminationGracePeriodSeconds": 1, "containers": [{
                    "name": "web", "image": "resil-demo:1",
                    "ports": [{"name": "http", "containerPort": 8080}],
                    "env": [{"name": "COLOR", "value": "blue"}],
                    "readinessProbe": {"httpGet": {"path": "/readyz", "port": 8080},
                                       "periodSeconds": 1, "failureThreshold": 1}}]}
            }
        }
    }))
    .unwrap();
    let service = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "web"},
        "spec": {"type": "NodePort", "selector": {"app": "web", "version": "blue"},
                 "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}
    }))
    .unwrap();
    (deployment, service)
}

fn is_ready(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_none()
        && pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_the_lab_a_pod_switched_to_30_percent_errors_is_ejected_within_5s_and_errors_fall_under_1_percent()
 {
    let (lab, client, dir) = crate::support::start_lab().await;
    let deployments: Api<Deployment> = Api::default_namespaced(client.clone());
    let services: Api<Service> = Api::default_namespaced(client.clone());
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    let (deployment, service) = blue_objects();
    deployments
        .create(&PostParams::default(), &deployment)
        .await
        .unwrap();
    let service = services
        .create(&PostParams::default(), &service)
        .await
        .unwrap();
    let node_port = service.spec.unwrap().ports.unwrap()[0].node_port.unwrap();
    let ready: Vec<Pod> = eventually(Duration::from_secs(30), "4 ready pods", || async {
        let list = pods
            .list(&ListParams::default().labels("app=web"))
            .await
            .ok()?;
        let ready: Vec<Pod> = list.items.into_iter().filter(is_ready).collect();
        (ready.len() == 4).then_some(ready)
    })
    .await;

    // Load through the NodePort with per-pod attribution, and the ejector reading it.
    // A connection per request, as scenarios/outlier-ejection.yaml does: the Service
    // balances connections, so with a few kept-alive ones (the open model's pool can
    // shrink to two per thread) some pods may get no traffic and the ejector would have
    // fewer than three siblings to compare.
    let results = dir.path().join("results");
    let run = RunDir::create(&results).unwrap();
    let load = tokio::spawn(resil::run(Cli::parse_from([
        "resil",
        "load",
        &format!("http://127.0.0.1:{node_port}/"),
        "--rate",
        "100",
        "--duration",
        "18s",
        "--no-keepalive",
        "--out",
        results.to_str().unwrap(),
    ])));
    let scope = Scope {
        client: client.clone(),
        namespace: "default".to_string(),
    };
    let plan = EjectPlan {
        dir: run.clone(),
        window: Duration::from_secs(10),
        settings: Settings::default(),
    };
    let (tx, _updates) = tokio::sync::mpsc::unbounded_channel();
    let shutdown = CancellationToken::new();
    let ejector = tokio::spawn(eject::run(scope, plan, tx, shutdown.clone()));

    // Five healthy seconds, then one pod answers 30 % of its requests with 500.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let victim = ready[0].metadata.name.clone().unwrap();
    let admin_port: u16 = ready[0].metadata.annotations.as_ref().unwrap()["resil.dev/port"]
        .parse()
        .unwrap();
    let switched = reqwest::Client::new()
        .put(format!("http://127.0.0.1:{admin_port}/admin/faults"))
        .json(&json!({"error_rate": 0.3}))
        .send()
        .await
        .unwrap();
    assert!(switched.status().is_success(), "{switched:?}");
    let faulted_at = std::time::Instant::now();
    eventually(
        Duration::from_secs(15),
        "the degraded pod ejected",
        || async {
            match pods.get_opt(&victim).await.ok()? {
                None => Some(()),
                Some(p) => p.metadata.deletion_timestamp.map(|_| ()),
            }
        },
    )
    .await;
    let ejected_after = faulted_at.elapsed();
    let ejected_ts = Utc::now();

    assert_eq!(load.await.unwrap(), resil::Exit::Ok);
    shutdown.cancel();
    ejector.await.unwrap();
    lab.shutdown().await;

    assert!(
        ejected_after < Duration::from_secs(5),
        "ejected {ejected_after:?} after the fault"
    );
    let events = run.read_timeline().unwrap();
    let ejections: Vec<String> = events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Decision {
                controller, action, ..
            } if controller == "outliers" && action.starts_with("eject") => Some(action.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(ejections.len(), 1, "only the degraded pod: {ejections:?}");
    assert!(ejections[0].contains(&victim), "{ejections:?}");
    // From 2 s after the ejection (the deleted pod's open connections end) to the end.
    let (requests, errors) = events
        .iter()
        .filter(|e| e.ts >= ejected_ts + chrono::Duration::seconds(2))
        .filter_map(|e| match &e.kind {
            EventKind::LoadBucket {
                requests, errors, ..
            } => Some((*requests, *errors)),
            _ => None,
        })
        .fold((0, 0), |(r, e), (r2, e2)| (r + r2, e + e2));
    assert!(
        requests > 300,
        "load kept running after the ejection: {requests}"
    );
    let rate = errors as f64 / requests as f64;
    eprintln!("ejected {ejected_after:?} after the fault; afterwards {errors}/{requests} errors");
    assert!(
        rate < 0.01,
        "error rate after the ejection {:.2} % ({errors}/{requests})",
        rate * 100.0
    );
}
