//! Objects that real clients can trust: every object the lab serves validates against the
//! upstream OpenAPI schema of the Kubernetes version the lab reports, checked by
//! `kubernetes-validate --strict` (PyPI; `.ci/run` installs it).
//!
//! The walk starts from discovery, so a kind the lab begins to serve is checked without
//! this file changing: every listable resource of every group, every item of its list,
//! with the `apiVersion` and `kind` a list's items leave out put back, as kubectl does.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::support::raw;

/// The `kubernetes-validate` program, or `None` (with a note) outside CI when it is not
/// installed. In CI its absence fails the test: the check must run somewhere.
pub fn validator() -> Option<&'static str> {
    let program = "kubernetes-validate";
    let found = Command::new(program)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if found {
        return Some(program);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "kubernetes-validate is not installed; `pip install kubernetes-validate` (.ci/run does)"
    );
    eprintln!("note: kubernetes-validate not installed; skipping the OpenAPI check");
    None
}

/// The lab's `major.minor.0`, as kubernetes-validate names schema versions.
async fn served_version(client: &kube::Client) -> String {
    let (_, _, version) = raw(client, "GET", "/version", None, Vec::new()).await;
    let major = version["major"].as_str().unwrap_or("1");
    let minor = version["minor"].as_str().unwrap_or_default();
    format!("{major}.{}.0", minor.trim_end_matches('+'))
}

/// `(list path, apiVersion)` for every listable resource discovery names.
async fn listable(client: &kube::Client) -> Vec<(String, String)> {
    let mut versions = vec!["/api/v1".to_string()];
    let (_, _, groups) = raw(client, "GET", "/apis", None, Vec::new()).await;
    for group in groups["groups"].as_array().into_iter().flatten() {
        for version in group["versions"].as_array().into_iter().flatten() {
            if let Some(gv) = version["groupVersion"].as_str() {
                versions.push(format!("/apis/{gv}"));
            }
        }
    }
    let mut out = Vec::new();
    for base in versions {
        let (_, _, list) = raw(client, "GET", &base, None, Vec::new()).await;
        let api_version = list["groupVersion"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        for resource in list["resources"].as_array().into_iter().flatten() {
            let name = resource["name"].as_str().unwrap_or_default();
            let lists = resource["verbs"]
                .as_array()
                .is_some_and(|v| v.iter().any(|v| v == "list"));
            // metrics.k8s.io is not part of the core OpenAPI document.
            if lists && !name.contains('/') && !api_version.starts_with("metrics.k8s.io") {
                out.push((format!("{base}/{name}"), api_version.clone()));
            }
        }
    }
    out
}

/// Writes every object the lab serves into `dir` (one file each) and returns how many
/// of each resource there were.
async fn dump(client: &kube::Client, dir: &Path) -> Vec<(String, usize)> {
    let mut counts = Vec::new();
    for (path, api_version) in listable(client).await {
        let (status, _, list) = raw(client, "GET", &path, None, Vec::new()).await;
        assert_eq!(status, 200, "GET {path}: {list}");
        let kind = list["kind"]
            .as_str()
            .unwrap_or_default()
            .trim_end_matches("List")
            .to_string();
        let items = list["items"].as_array().cloned().unwrap_or_default();
        for (i, mut item) in items.iter().cloned().enumerate() {
            item["apiVersion"] = Value::from(api_version.clone());
            item["kind"] = Value::from(kind.clone());
            let file = dir.join(format!("{}-{i}.json", path.replace('/', "_")));
            std::fs::write(file, serde_json::to_vec_pretty(&item).unwrap()).unwrap();
        }
        counts.push((path, items.len()));
    }
    counts
}

/// Asserts that every object the lab serves validates strictly against the upstream
/// schema of the version it reports; returns the resources it saw, with counts.
pub async fn every_object_validates(client: &kube::Client) -> Vec<(String, usize)> {
    let Some(program) = validator() else {
        return Vec::new();
    };
    let dir = tempfile::tempdir().unwrap();
    let counts = dump(client, dir.path()).await;
    let mut files: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "the lab served no objects: {counts:?}");
    let version = served_version(client).await;
    let out = Command::new(program)
        .args(["--strict", "--quiet", "-k", &version])
        .args(&files)
        .output()
        .expect("kubernetes-validate runs");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let failures: Vec<&str> = said.lines().filter(|l| l.starts_with("ERROR")).collect();
    assert!(
        out.status.success() && failures.is_empty(),
        "objects that do not validate against Kubernetes {version}:\n{said}\n\
         (checked {} objects: {counts:?})",
        files.len()
    );
    counts
}

/// One object of every kind a user creates, as kubectl users write them.
const EVERY_KIND: &str = "\
apiVersion: v1
kind: Namespace
metadata: {name: shapes}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: settings, namespace: shapes}
data: {GREETING: hello}
---
apiVersion: v1
kind: Secret
metadata: {name: token, namespace: shapes}
stringData: {TOKEN: s3cret}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shapes}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: resil-demo:1
        ports: [{containerPort: 8080}]
        env:
        - name: GREETING
          valueFrom: {configMapKeyRef: {name: settings, key: GREETING}}
        envFrom: [{secretRef: {name: token}}]
        resources: {requests: {cpu: 50m, memory: 32Mi}}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shapes}
spec:
  type: NodePort
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: web, namespace: shapes}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  minReplicas: 2
  maxReplicas: 4
  metrics:
  - type: Resource
    resource: {name: cpu, target: {type: Utilization, averageUtilization: 80}}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: web, namespace: shapes}
spec:
  minAvailable: 1
  selector: {matchLabels: {app: web}}
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_object_of_every_kind_validates_against_the_upstream_schema() {
    if validator().is_none() || !crate::support::kubectl_on_path() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut config = resil_lab::LabConfig::new(dir.path());
    config.pod_program = std::path::PathBuf::from(env!("CARGO_BIN_EXE_resil"));
    config.nodes = resil_lab::NodeLayout::new(3);
    let lab = resil_lab::Lab::start(config).await.expect("lab starts");
    let client = crate::support::client_for(&lab).await;
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig, lab.kubeconfig_yaml()).unwrap();
    let applied = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .args(["apply", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(EVERY_KIND.as_bytes())?;
            child.wait_with_output()
        })
        .unwrap();
    assert!(applied.status.success(), "{applied:?}");
    // Running pods, their ReplicaSet, slices, Events, Leases and the PDB's status exist
    // once both pods are ready.
    let pods: kube::Api<k8s_openapi::api::core::v1::Pod> =
        kube::Api::namespaced(client.clone(), "shapes");
    crate::support::eventually(Duration::from_secs(30), "both pods ready", || async {
        let list = pods.list(&Default::default()).await.ok()?;
        let ready = list
            .items
            .iter()
            .filter(|p| crate::support::pod_ready(p))
            .count();
        (ready == 2).then_some(())
    })
    .await;
    let counts = every_object_validates(&client).await;
    for kind in [
        "nodes",
        "leases",
        "configmaps",
        "secrets",
        "poddisruptionbudgets",
    ] {
        assert!(
            counts
                .iter()
                .any(|(path, n)| path.ends_with(kind) && *n > 0),
            "no {kind} were checked: {counts:?}"
        );
    }
    lab.shutdown().await;
}
