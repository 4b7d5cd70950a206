//! kubectl against the lab: discovery, get/describe, apply, patch, scale, delete, jsonpath
//! and watch. Each test skips (with a note) when `kubectl` is not on PATH. kubectl gets a
//! temporary kubeconfig and discovery cache, never the user's.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, PostParams};
use serde_json::json;
use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;

use crate::support::start_api_only_lab;

/// kubectl wired to one lab.
pub(crate) struct Kubectl {
    kubeconfig: PathBuf,
    cache: PathBuf,
    _dir: TempDir,
}

impl Kubectl {
    /// None (and a printed note) when kubectl is not installed.
    pub(crate) fn for_lab(lab: &resil_lab::Lab) -> Option<Kubectl> {
        if !crate::support::kubectl_on_path() {
            eprintln!("note: kubectl is not on PATH; skipping the kubectl test");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = dir.path().join("kubeconfig");
        std::fs::write(&kubeconfig, lab.kubeconfig_yaml()).unwrap();
        let cache = dir.path().join("cache");
        Some(Kubectl {
            kubeconfig,
            cache,
            _dir: dir,
        })
    }

    pub(crate) fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("kubectl");
        cmd.arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--cache-dir")
            .arg(&self.cache)
            .args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .env("HOME", self._dir.path())
            .kill_on_drop(true);
        cmd
    }

    /// Runs kubectl (bounded at 30 s) and returns stdout, panicking with stderr on failure.
    pub(crate) async fn ok(&self, args: &[&str], stdin: Option<&str>) -> String {
        let (ok, out, err) = self.run(args, stdin).await;
        assert!(ok, "kubectl {args:?} failed:\n{err}\n{out}");
        out
    }

    pub(crate) async fn run(&self, args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
        let mut cmd = self.command(args);
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("kubectl starts");
        let mut input = child.stdin.take().unwrap();
        if let Some(text) = stdin {
            input.write_all(text.as_bytes()).await.unwrap();
        }
        drop(input);
        let out = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
            .await
            .unwrap_or_else(|_| panic!("kubectl {args:?} did not finish within 30 s"))
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

fn deployment(name: &str, replicas: i32) -> Deployment {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "web", "image": "resil-demo:1"}]},
            },
        },
    }))
    .unwrap()
}

const DEPLOYMENT_YAML: &str = "\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: applied
  labels:
    app: applied
spec:
  replicas: 2
  selector:
    matchLabels:
      app: applied
  template:
    metadata:
      labels:
        app: applied
    spec:
      containers:
      - name: web
        image: resil-demo:1
        ports:
        - containerPort: 8080
";

#[tokio::test]
async fn kubectl_gets_describes_and_reads_jsonpath() {
    let (lab, client, _dir) = start_api_only_lab().await;
    let Some(kubectl) = Kubectl::for_lab(&lab) else {
        return;
    };
    let deployments: Api<Deployment> = Api::default_namespaced(client);
    deployments
        .create(&PostParams::default(), &deployment("web", 2))
        .await
        .unwrap();

    let out = kubectl.ok(&["get", "deployments"], None).await;
    assert!(
        out.contains("web") && out.contains("UP-TO-DATE"),
        "server-side columns: {out}"
    );
    let pods: Api<Pod> = Api::default_namespaced(deployments.clone().into_client());
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "web-1"}, "spec": {"containers": [{"name": "a", "image": "resil-demo"}]},
    }))
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
    let out = kubectl.ok(&["get", "pods", "-A"], None).await;
    let row = out
        .lines()
        .find(|l| l.contains("web-1"))
        .unwrap_or_default();
    assert!(
        row.starts_with("default") && row.contains("0/1") && row.contains("Pending"),
        "{out}"
    );
    let out = kubectl.ok(&["describe", "pod", "web-1"], None).await;
    assert!(out.contains("Pending"), "{out}");
    let out = kubectl
        .ok(
            &["get", "deploy", "web", "-o", "jsonpath={.spec.replicas}"],
            None,
        )
        .await;
    assert_eq!(out.trim(), "2");
    let out = kubectl.ok(&["get", "ns"], None).await;
    assert!(out.contains("default"), "{out}");
    let out = kubectl.ok(&["describe", "deployment", "web"], None).await;
    assert!(out.contains("web") && out.contains("resil-demo:1"), "{out}");
    let out = kubectl.ok(&["version", "-o", "json"], None).await;
    assert!(out.contains("serverVersion"), "{out}");
    lab.shutdown().await;
}

#[tokio::test]
async fn kubectl_apply_creates_configures_and_server_side_applies() {
    let (lab, client, _dir) = start_api_only_lab().await;
    let Some(kubectl) = Kubectl::for_lab(&lab) else {
        return;
    };
    let out = kubectl
        .ok(
            &["apply", "--dry-run=server", "-f", "-"],
            Some(DEPLOYMENT_YAML),
        )
        .await;
    assert!(out.contains("server dry run"), "{out}");
    let out = kubectl
        .ok(&["apply", "-f", "-"], Some(DEPLOYMENT_YAML))
        .await;
    assert!(out.contains("created"), "{out}");
    let deployments: Api<Deployment> = Api::default_namespaced(client);
    let d = deployments.get("applied").await.unwrap();
    assert_eq!(d.spec.replicas, Some(2));
    let annotations = d.metadata.annotations.unwrap_or_default();
    assert!(annotations.contains_key("kubectl.kubernetes.io/last-applied-configuration"));
    let out = kubectl
        .ok(&["apply", "-f", "-"], Some(DEPLOYMENT_YAML))
        .await;
    assert!(out.contains("unchanged"), "{out}");

    // A changed manifest goes out as a three-way strategic merge patch.
    let three = DEPLOYMENT_YAML.replace("replicas: 2", "replicas: 3");
    let out = kubectl.ok(&["apply", "-f", "-"], Some(&three)).await;
    assert!(out.contains("configured"), "{out}");
    assert_eq!(
        deployments.get("applied").await.unwrap().spec.replicas,
        Some(3)
    );

    // Server-side apply takes the object over for field manager "kubectl".
    let four = DEPLOYMENT_YAML.replace("replicas: 2", "replicas: 4");
    let out = kubectl
        .ok(
            &["apply", "--server-side", "--force-conflicts", "-f", "-"],
            Some(&four),
        )
        .await;
    assert!(out.contains("serverside-applied"), "{out}");
    assert_eq!(
        deployments.get("applied").await.unwrap().spec.replicas,
        Some(4)
    );
    lab.shutdown().await;
}

#[tokio::test]
async fn kubectl_patches_scales_and_deletes() {
    let (lab, client, _dir) = start_api_only_lab().await;
    let Some(kubectl) = Kubectl::for_lab(&lab) else {
        return;
    };
    let deployments: Api<Deployment> = Api::default_namespaced(client.clone());
    deployments
        .create(&PostParams::default(), &deployment("web", 1))
        .await
        .unwrap();

    kubectl
        .ok(
            &[
                "patch",
                "deployment",
                "web",
                "--type=merge",
                "-p",
                r#"{"metadata":{"labels":{"team":"a"}}}"#,
            ],
            None,
        )
        .await;
    kubectl
        .ok(
            &[
                "patch",
                "deployment",
                "web",
                "--type=json",
                "-p",
                r#"[{"op":"replace","path":"/spec/replicas","value":3}]"#,
            ],
            None,
        )
        .await;
    let d = deployments.get("web").await.unwrap();
    assert_eq!(d.metadata.labels.unwrap()["team"], "a");
    assert_eq!(d.spec.replicas, Some(3));
    // kubectl's default patch type is strategic merge: containers merge by name.
    let image =
        r#"{"spec":{"template":{"spec":{"containers":[{"name":"web","image":"resil-demo:2"}]}}}}"#;
    kubectl
        .ok(&["patch", "deployment", "web", "-p", image], None)
        .await;
    let d = deployments.get("web").await.unwrap();
    let containers = d.spec.template.spec.unwrap().containers;
    assert_eq!(containers.len(), 1);
    assert_eq!(containers[0].image.as_deref(), Some("resil-demo:2"));
    assert_eq!(d.metadata.generation, Some(3), "two spec changes so far");

    let out = kubectl
        .ok(&["scale", "deployment", "web", "--replicas=5"], None)
        .await;
    assert!(out.contains("scaled"), "{out}");
    assert_eq!(deployments.get("web").await.unwrap().spec.replicas, Some(5));

    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "p"}, "spec": {"containers": [{"name": "a", "image": "resil-demo"}]},
    }))
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
    kubectl
        .ok(&["delete", "pod", "p", "--force", "--grace-period=0"], None)
        .await;
    assert!(pods.get_opt("p").await.unwrap().is_none());
    let out = kubectl.ok(&["delete", "deployment", "web"], None).await;
    assert!(out.contains("deleted"), "{out}");
    assert!(deployments.get_opt("web").await.unwrap().is_none());
    let (ok, _, err) = kubectl.run(&["get", "deployment", "web"], None).await;
    assert!(!ok && err.contains("NotFound"), "{err}");
    lab.shutdown().await;
}

#[tokio::test]
async fn kubectl_get_watch_prints_new_objects() {
    let (lab, client, _dir) = start_api_only_lab().await;
    let Some(kubectl) = Kubectl::for_lab(&lab) else {
        return;
    };
    let mut cmd = kubectl.command(&["get", "pods", "-w", "--request-timeout=20s"]);
    cmd.stdout(Stdio::piped()).stderr(Stdio::null());
    let mut child = cmd.spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let pods: Api<Pod> = Api::default_namespaced(client);
    // Let kubectl list and start watching before the pod appears.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "watched"}, "spec": {"containers": [{"name": "a", "image": "resil-demo"}]},
    }))
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
    let seen = tokio::time::timeout(Duration::from_secs(15), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line.contains("watched") {
                return true;
            }
        }
        false
    })
    .await;
    let _ = child.kill().await;
    assert_eq!(seen, Ok(true), "kubectl get -w printed the new pod");
    lab.shutdown().await;
}

#[tokio::test]
async fn kubectl_rollout_status_follows_deployment_status() {
    let (lab, client, _dir) = start_api_only_lab().await;
    let Some(kubectl) = Kubectl::for_lab(&lab) else {
        return;
    };
    let deployments: Api<Deployment> = Api::default_namespaced(client);
    deployments
        .create(&PostParams::default(), &deployment("web", 2))
        .await
        .unwrap();
    let mut cmd = kubectl.command(&["rollout", "status", "deployment/web", "--timeout=20s"]);
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let child = cmd.spawn().unwrap();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    // What the deployment controller reports once both replicas are up.
    let status = json!({"status": {
        "observedGeneration": 1, "replicas": 2, "updatedReplicas": 2, "readyReplicas": 2, "availableReplicas": 2,
        "conditions": [
            {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"},
            {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"},
        ],
    }});
    deployments
        .patch_status(
            "web",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&status),
        )
        .await
        .unwrap();
    let out = tokio::time::timeout(Duration::from_secs(25), child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("successfully rolled out"), "{stdout}");
    lab.shutdown().await;
}

#[tokio::test]
async fn kubectl_top_pods_reads_pod_metrics() {
    let (lab, client, _dir) = start_api_only_lab().await;
    let Some(kubectl) = Kubectl::for_lab(&lab) else {
        return;
    };
    let pods: Api<Pod> = Api::default_namespaced(client);
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "web-1", "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "web", "image": "resil-demo"}]},
    }))
    .unwrap();
    let pod = pods.create(&PostParams::default(), &pod).await.unwrap();
    // What the kubelet publishes for a running pod.
    lab.store().set_pod_metrics(
        "default",
        "web-1",
        Some(json!({
            "kind": "PodMetrics", "apiVersion": "metrics.k8s.io/v1beta1",
            "metadata": {"name": "web-1", "namespace": "default", "labels": {"app": "web"},
                         "creationTimestamp": pod.metadata.creation_timestamp},
            "timestamp": "2026-01-01T00:00:00Z", "window": "15s",
            "containers": [{"name": "web", "usage": {"cpu": "12000000n", "memory": "20480Ki"}}],
        })),
    );
    let out = kubectl.ok(&["top", "pods"], None).await;
    assert!(
        out.contains("web-1") && out.contains("12m") && out.contains("20Mi"),
        "{out}"
    );
    lab.shutdown().await;
}

#[tokio::test]
async fn kubectl_logs_reads_and_follows_container_output() {
    let (lab, client, dir) = start_api_only_lab().await;
    let Some(kubectl) = Kubectl::for_lab(&lab) else {
        return;
    };
    let pods: Api<Pod> = Api::default_namespaced(client);
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "web-1"}, "spec": {"containers": [{"name": "web", "image": "resil-demo"}]},
    }))
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
    let (ok, _, err) = kubectl.run(&["logs", "web-1"], None).await;
    assert!(!ok && err.contains("waiting to start"), "{err}");

    // The layout the kubelet writes: current instance, rotated older part.
    let logs = dir.path().join("pods/default_web-1");
    std::fs::create_dir_all(&logs).unwrap();
    std::fs::write(logs.join("web.log.1"), "one\n").unwrap();
    std::fs::write(logs.join("web.log"), "two\nthree\n").unwrap();
    assert_eq!(
        kubectl.ok(&["logs", "web-1"], None).await,
        "one\ntwo\nthree\n"
    );
    assert_eq!(
        kubectl.ok(&["logs", "web-1", "--tail=1"], None).await,
        "three\n"
    );
    let (ok, _, err) = kubectl.run(&["logs", "web-1", "--previous"], None).await;
    assert!(
        !ok && err.contains("previous terminated container"),
        "{err}"
    );

    let mut cmd = kubectl.command(&["logs", "-f", "web-1", "-c", "web"]);
    cmd.stdout(Stdio::piped()).stderr(Stdio::null());
    let mut child = cmd.spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.as_deref(), Some("one"));
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(logs.join("web.log"))
        .unwrap();
    std::io::Write::write_all(&mut f, b"four\n").unwrap();
    let followed = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line == "four" {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(followed, Ok(true), "-f shows output appended later");
    pods.delete("web-1", &kube::api::DeleteParams::default())
        .await
        .unwrap();
    let ended = tokio::time::timeout(Duration::from_secs(10), child.wait()).await;
    assert!(ended.is_ok(), "-f ends when the pod is gone");
    lab.shutdown().await;
}

#[tokio::test]
async fn kubectl_create_sends_protobuf_and_the_lab_stores_what_it_meant() {
    use k8s_openapi::api::core::v1::{Namespace, Service};
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
    let (lab, client, _dir) = start_api_only_lab().await;
    let Some(kubectl) = Kubectl::for_lab(&lab) else {
        return;
    };
    // Each of these is a typed-client create: kubectl sends
    // application/vnd.kubernetes.protobuf and accepts the lab's JSON answer.
    let out = kubectl.ok(&["create", "namespace", "foo"], None).await;
    assert!(out.contains("namespace/foo created"), "{out}");
    let args = [
        "create",
        "deployment",
        "nginx",
        "--image=nginx",
        "--replicas=0",
    ];
    kubectl.ok(&args, None).await;
    kubectl
        .ok(&["create", "service", "clusterip", "x", "--tcp=80"], None)
        .await;

    Api::<Namespace>::all(client.clone())
        .get("foo")
        .await
        .unwrap();
    let d = Api::<Deployment>::default_namespaced(client.clone())
        .get("nginx")
        .await
        .unwrap();
    let spec = d.spec;
    // An explicit zero of a pointer field survives; the template is kubectl's.
    assert_eq!(spec.replicas, Some(0));
    let pod = spec.template.spec.unwrap();
    assert_eq!(pod.containers[0].image.as_deref(), Some("nginx"));
    let svc = Api::<Service>::default_namespaced(client)
        .get("x")
        .await
        .unwrap();
    let port = &svc.spec.unwrap().ports.unwrap()[0];
    assert_eq!(port.port, 80);
    assert_eq!(port.target_port, Some(IntOrString::Int(80)));
}
