//! The kind-stand-in: a minimal API server (plain HTTP on 127.0.0.1:0, or called
//! in-process as a tower service) with one HPA `web-blue`, its Deployment, three blue pods
//! and Events, recording every minReplicas patch, pod deletion and Event reason.

use std::path::Path;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use serde_json::{Value, json};

pub(crate) const NS: &str = "distributed-resilience";

/// The kind-stand-in cluster: one HPA `web-blue` and its Deployment.
#[derive(Clone)]
pub(crate) struct Cluster {
    pub(crate) hpa: Arc<Mutex<Value>>,
    /// Every minReplicas a PATCH set, in order.
    pub(crate) patches: Arc<Mutex<Vec<i64>>>,
    /// Reasons of the Events posted.
    pub(crate) events: Arc<Mutex<Vec<String>>>,
    /// Pods deleted, in order.
    pub(crate) deleted: Arc<Mutex<Vec<String>>>,
}

impl Cluster {
    pub(crate) fn min(&self) -> i64 {
        self.hpa.lock().unwrap()["spec"]["minReplicas"]
            .as_i64()
            .unwrap()
    }

    pub(crate) fn patches(&self) -> Vec<i64> {
        self.patches.lock().unwrap().clone()
    }
}

pub(crate) fn hpa_object(min: i64) -> Value {
    json!({
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "web-blue", "namespace": NS, "resourceVersion": "1"},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web-blue"},
            "minReplicas": min,
            "maxReplicas": 50,
            "metrics": [{"type": "Resource", "resource": {"name": "cpu",
                "target": {"type": "Utilization", "averageUtilization": 50}}}]
        },
        "status": {"currentReplicas": 2, "desiredReplicas": 2}
    })
}

pub(crate) fn deployment_object() -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web-blue", "namespace": NS, "resourceVersion": "1"},
        "spec": {
            "selector": {"matchLabels": {"app": "web", "version": "blue"}},
            "template": {
                "metadata": {"labels": {"app": "web", "version": "blue"}},
                "spec": {"containers": [{"name": "web", "image": "resil",
                    "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}}}]}
            }
        }
    })
}

fn not_found(name: &str) -> (StatusCode, axum::Json<Value>) {
    (
        StatusCode::NOT_FOUND,
        axum::Json(json!({"kind": "Status", "apiVersion": "v1", "metadata": {},
            "status": "Failure", "reason": "NotFound", "code": 404,
            "message": format!("\"{name}\" not found")})),
    )
}

async fn get_hpa(
    State(c): State<Cluster>,
    UrlPath((_, name)): UrlPath<(String, String)>,
) -> (StatusCode, axum::Json<Value>) {
    if name != "web-blue" {
        return not_found(&name);
    }
    (StatusCode::OK, axum::Json(c.hpa.lock().unwrap().clone()))
}

async fn patch_hpa(
    State(c): State<Cluster>,
    UrlPath((_, name)): UrlPath<(String, String)>,
    axum::Json(patch): axum::Json<Value>,
) -> (StatusCode, axum::Json<Value>) {
    if name != "web-blue" {
        return not_found(&name);
    }
    let mut hpa = c.hpa.lock().unwrap();
    json_patch::merge(&mut hpa, &patch);
    if let Some(min) = patch["spec"]["minReplicas"].as_i64() {
        c.patches.lock().unwrap().push(min);
    }
    (StatusCode::OK, axum::Json(hpa.clone()))
}

async fn get_deployment(
    UrlPath((_, name)): UrlPath<(String, String)>,
) -> (StatusCode, axum::Json<Value>) {
    if name != "web-blue" {
        return not_found(&name);
    }
    (StatusCode::OK, axum::Json(deployment_object()))
}

pub(crate) const PODS: [&str; 3] = ["web-blue-a", "web-blue-b", "web-blue-c"];

async fn list_pods(State(c): State<Cluster>) -> axum::Json<Value> {
    let deleted = c.deleted.lock().unwrap().clone();
    let items: Vec<Value> = PODS
        .iter()
        .filter(|p| !deleted.iter().any(|d| d == *p))
        .map(|p| {
            json!({"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": p, "namespace": NS, "resourceVersion": "1",
                    "labels": {"app": "web", "version": "blue"}},
                "spec": {"containers": [{"name": "web", "image": "resil"}]}})
        })
        .collect();
    axum::Json(json!({"apiVersion": "v1", "kind": "PodList",
        "metadata": {"resourceVersion": "1"}, "items": items}))
}

async fn delete_pod(
    State(c): State<Cluster>,
    UrlPath((_, name)): UrlPath<(String, String)>,
) -> (StatusCode, axum::Json<Value>) {
    if !PODS.contains(&name.as_str()) {
        return not_found(&name);
    }
    c.deleted.lock().unwrap().push(name.clone());
    (
        StatusCode::OK,
        axum::Json(json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": NS, "resourceVersion": "2"},
            "spec": {"containers": [{"name": "web", "image": "resil"}]}})),
    )
}

async fn post_event(
    State(c): State<Cluster>,
    axum::Json(mut event): axum::Json<Value>,
) -> (StatusCode, axum::Json<Value>) {
    c.events
        .lock()
        .unwrap()
        .push(event["reason"].as_str().unwrap_or_default().to_string());
    event["metadata"]["name"] = json!("e1");
    (StatusCode::CREATED, axum::Json(event))
}

/// The stand-in's state and its routes (served on a port, or called in-process).
pub(crate) fn stand_in(hpa: Value) -> (Cluster, Router) {
    let state = Cluster {
        hpa: Arc::new(Mutex::new(hpa)),
        patches: Arc::default(),
        events: Arc::default(),
        deleted: Arc::default(),
    };
    let app = Router::new()
        .route(
            "/apis/autoscaling/v2/namespaces/{ns}/horizontalpodautoscalers/{name}",
            get(get_hpa).patch(patch_hpa),
        )
        .route(
            "/apis/apps/v1/namespaces/{ns}/deployments/{name}",
            get(get_deployment),
        )
        .route("/api/v1/namespaces/{ns}/events", post(post_event))
        .route("/api/v1/namespaces/{ns}/pods", get(list_pods))
        .route(
            "/api/v1/namespaces/{ns}/pods/{name}",
            axum::routing::delete(delete_pod),
        )
        .with_state(state.clone());
    (state, app)
}

/// Starts the kind-stand-in on 127.0.0.1:0 and writes a kubeconfig for it into `dir`.
pub(crate) async fn cluster(dir: &Path) -> (Cluster, std::path::PathBuf) {
    cluster_with(dir, hpa_object(1)).await
}

/// The kind-stand-in with a given HPA object.
pub(crate) async fn cluster_with(dir: &Path, hpa: Value) -> (Cluster, std::path::PathBuf) {
    // The in-process `resil chaos revert` connects too; it needs the crypto provider the
    // binary's commands install.
    resil::crypto::ensure_crypto_provider();
    let (state, app) = stand_in(hpa);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let kubeconfig = dir.join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: kind-stand-in\n  cluster:\n    \
             server: http://{addr}\nusers:\n- name: kind-stand-in\n  user:\n    token: t\n\
             contexts:\n- name: kind-kind-stand-in\n  context:\n    cluster: kind-stand-in\n    user: \
             kind-stand-in\ncurrent-context: kind-kind-stand-in\n"
        ),
    )
    .unwrap();
    (state, kubeconfig)
}
