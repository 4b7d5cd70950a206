//! Shared fixtures: an in-process lab on 127.0.0.1:0 with a temporary state directory, a
//! kube client for it, and a raw HTTPS request helper for what kube's typed API cannot
//! send (no token, malformed bodies, odd content types).

#![allow(dead_code)]

use std::time::Duration;

use resil_lab::{Lab, LabConfig};
use serde_json::Value;
use tempfile::TempDir;

/// A running lab in a fresh temporary state directory, and a client for it.
pub async fn start_lab() -> (Lab, kube::Client, TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let lab = start_lab_in(&dir).await;
    let client = client_for(&lab).await;
    (lab, client, dir)
}

/// A lab on an existing state directory.
pub async fn start_lab_in(dir: &TempDir) -> Lab {
    let mut config = LabConfig::new(dir.path());
    config.pod_program = std::path::PathBuf::from(env!("CARGO_BIN_EXE_resil"));
    Lab::start(config).await.expect("lab starts")
}

/// A lab that is an API server alone (no controllers, no pods run): for protocol tests
/// whose answers a running pod would change.
pub async fn start_api_only_lab() -> (Lab, kube::Client, TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let lab = start_api_only_lab_in(&dir).await;
    let client = client_for(&lab).await;
    (lab, client, dir)
}

/// [`start_api_only_lab`] in a given state directory.
pub async fn start_api_only_lab_in(dir: &TempDir) -> Lab {
    let mut config = LabConfig::new(dir.path());
    config.runtime = false;
    Lab::start(config).await.expect("lab starts")
}

/// A kube client built from the lab's kubeconfig, exactly as a user's would be.
pub async fn client_for(lab: &Lab) -> kube::Client {
    let config = config_for(lab).await;
    kube::Client::try_from(config).expect("client")
}

/// Like [`client_for`], but a 429 or 503 comes back as it is, not retried by kube-rs's
/// default policy: for tests that assert what the lab answered.
pub async fn client_without_retry(lab: &Lab) -> kube::Client {
    let mut config = config_for(lab).await;
    config.default_retry = false;
    kube::Client::try_from(config).expect("client")
}

/// The kube config for the lab's kubeconfig.
pub async fn config_for(lab: &Lab) -> kube::Config {
    let kubeconfig =
        kube::config::Kubeconfig::from_yaml(&lab.kubeconfig_yaml()).expect("kubeconfig parses");
    kube::Config::from_custom_kubeconfig(kubeconfig, &kube::config::KubeConfigOptions::default())
        .await
        .expect("kube config")
}

/// Sends one request and returns status, Content-Type and the body as JSON (Null when the
/// body is not JSON).
pub async fn raw(
    client: &kube::Client,
    method: &str,
    path: &str,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> (u16, String, Value) {
    let mut req = axum::http::Request::builder().method(method).uri(path);
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    let req = req.body(kube::client::Body::from(body)).expect("request");
    let res = tokio::time::timeout(Duration::from_secs(10), client.send(req))
        .await
        .expect("answer within 10 s")
        .expect("response");
    let status = res.status().as_u16();
    let ct = res
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let bytes = res.into_body().collect_bytes().await.expect("body");
    (
        status,
        ct,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// A free port in the NodePort range (the API accepts only 30000-32767), so a test's
/// demo is out of the way of other labs' demos.
pub fn free_node_port() -> u16 {
    for _ in 0..200 {
        let p = rand::random_range(30_000..=32_767u16);
        if std::net::TcpListener::bind(("127.0.0.1", p)).is_ok() {
            return p;
        }
    }
    panic!("no free port in 30000-32767");
}

/// Copies the shipped manifests into `dir` (created) with the Service on a free
/// NodePort instead of 30080, for `resil deploy --manifests dir`; returns the port.
pub fn manifests_on_a_free_node_port(dir: &std::path::Path) -> u16 {
    let node_port = free_node_port();
    std::fs::create_dir(dir).unwrap();
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("manifests");
    for entry in std::fs::read_dir(src).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(
            dir.join(path.file_name().unwrap()),
            text.replace("nodePort: 30080", &format!("nodePort: {node_port}")),
        )
        .unwrap();
    }
    node_port
}

/// Polls `check` every 100 ms until it yields a value; fails the test after `limit`,
/// naming `what` it waited for.
pub async fn eventually<T, F, Fut>(limit: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The reasons of every Event `events` lists, in list order.
pub async fn event_reasons(events: &kube::Api<k8s_openapi::api::core::v1::Event>) -> Vec<String> {
    events
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|e| e.reason)
        .collect()
}

/// Whether `kubectl` is on PATH (kubectl tests skip, and say so, without it).
pub fn kubectl_on_path() -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join("kubectl").is_file()))
}

/// Whether the pod's Ready condition is True.
pub fn pod_ready(pod: &k8s_openapi::api::core::v1::Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// The live (not terminating) pods labelled `app=<app>`.
pub async fn live_pods(
    pods: &kube::Api<k8s_openapi::api::core::v1::Pod>,
    app: &str,
) -> Vec<k8s_openapi::api::core::v1::Pod> {
    pods.list(&kube::api::ListParams::default().labels(&format!("app={app}")))
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect()
}
