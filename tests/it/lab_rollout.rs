//! Deployment rollouts on the lab, the way a user drives them: ReplicaSets served to
//! `kubectl get rs`, `kubectl set image` rolling to a new ReplicaSet and revision without
//! dropping ready pods (maxUnavailable 0), `kubectl rollout status|history|undo|pause|
//! resume|restart`, a bad image running into `progressDeadlineSeconds`,
//! `revisionHistoryLimit` trimming old ReplicaSets, and deleting a Deployment taking its
//! ReplicaSets and pods with it. An in-process lab runs real demo pods; kubectl (skipped
//! with a note when not installed) gets its own kubeconfig. Every wait is bounded.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use resil_lab::{Lab, LabConfig};
use serde_json::json;
use tempfile::TempDir;

use crate::support::{client_for, eventually};

/// A lab running the demo program, kubectl wired to it.
struct Env {
    lab: Lab,
    client: kube::Client,
    dir: TempDir,
}

impl Env {
    async fn start() -> Option<Env> {
        if !crate::support::kubectl_on_path() {
            eprintln!("note: kubectl is not on PATH; skipping the rollout test");
            return None;
        }
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = LabConfig::new(dir.path());
        config.pod_program = PathBuf::from(env!("CARGO_BIN_EXE_resil"));
        let lab = Lab::start(config).await.expect("lab starts");
        std::fs::write(dir.path().join("kubeconfig"), lab.kubeconfig_yaml()).unwrap();
        let client = client_for(&lab).await;
        Some(Env { lab, client, dir })
    }

    /// Runs kubectl (bounded at 90 s): success, stdout, stderr.
    async fn kubectl(&self, args: &[&str]) -> (bool, String, String) {
        let mut cmd = tokio::process::Command::new("kubectl");
        cmd.arg("--kubeconfig")
            .arg(self.dir.path().join("kubeconfig"))
            .arg("--cache-dir")
            .arg(self.dir.path().join("cache"))
            .args(args)
            .env("HOME", self.dir.path())
            .kill_on_drop(true);
        let out = tokio::time::timeout(Duration::from_secs(90), cmd.output())
            .await
            .unwrap_or_else(|_| panic!("kubectl {args:?} did not finish within 90 s"))
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    async fn ok(&self, args: &[&str]) -> String {
        let (ok, out, err) = self.kubectl(args).await;
        assert!(ok, "kubectl {args:?} failed:\n{err}\n{out}");
        out
    }

    fn deploys(&self) -> Api<Deployment> {
        Api::default_namespaced(self.client.clone())
    }

    async fn create(&self, d: Deployment) {
        self.deploys()
            .create(&PostParams::default(), &d)
            .await
            .unwrap();
    }

    /// The Deployment's ReplicaSets, oldest revision first.
    async fn replicasets(&self, app: &str) -> Vec<ReplicaSet> {
        let rses: Api<ReplicaSet> = Api::default_namespaced(self.client.clone());
        let mut list = rses
            .list(&ListParams::default().labels(&format!("app={app}")))
            .await
            .unwrap()
            .items;
        list.sort_by_key(revision);
        list
    }

    async fn ready_pods(&self, app: &str) -> i32 {
        ready_pods(&self.client, app).await
    }

    async fn progressing_reason(&self, name: &str) -> String {
        let d = self.deploys().get(name).await.unwrap();
        d.status
            .and_then(|s| s.conditions)
            .into_iter()
            .flatten()
            .find(|c| c.type_.as_deref() == Some("Progressing"))
            .and_then(|c| c.reason)
            .unwrap_or_default()
    }
}

/// Pods of `app` that are Ready and not terminating.
async fn ready_pods(client: &kube::Client, app: &str) -> i32 {
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    let list = pods
        .list(&ListParams::default().labels(&format!("app={app}")))
        .await
        .unwrap();
    list.items
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter(|p| {
            p.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
        })
        .count() as i32
}

fn revision(rs: &ReplicaSet) -> i64 {
    rs.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get("deployment.kubernetes.io/revision"))
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

fn image(rs: &ReplicaSet) -> String {
    rs.spec
        .template
        .as_ref()
        .and_then(|t| t.spec.as_ref())
        .and_then(|s| s.containers[0].image.clone())
        .unwrap_or_default()
}

fn deployment(name: &str, replicas: i32, spec: serde_json::Value) -> Deployment {
    let mut d = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "strategy": {"type": "RollingUpdate",
                         "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": {"metadata": {"labels": {"app": name}},
                         "spec": {"terminationGracePeriodSeconds": 2, "containers": [{
                "name": "web", "image": "resil-demo:1",
                "ports": [{"name": "http", "containerPort": 8080}],
                "readinessProbe": {"httpGet": {"path": "/readyz", "port": 8080},
                                   "periodSeconds": 1, "failureThreshold": 1},
            }]}},
        },
    });
    if let (Some(s), Some(extra)) = (d["spec"].as_object_mut(), spec.as_object()) {
        s.extend(extra.clone());
    }
    serde_json::from_value(d).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_image_rolls_to_a_new_replicaset_and_undo_goes_back() {
    let Some(env) = Env::start().await else {
        return;
    };
    env.create(deployment("web", 10, json!({}))).await;
    env.ok(&["rollout", "status", "deployment/web", "--timeout=90s"])
        .await;
    let table = env.ok(&["get", "rs", "-o", "wide"]).await;
    let first = env.replicasets("web").await;
    assert_eq!(first.len(), 1, "{table}");
    let rs_name = first[0].metadata.name.clone().unwrap();
    assert!(
        table.contains("DESIRED") && table.contains("SELECTOR"),
        "{table}"
    );
    assert!(
        table.lines().any(|l| l.starts_with(&rs_name)
            && l.split_whitespace()
                .take(4)
                .eq([rs_name.as_str(), "10", "10", "10"])),
        "{table}"
    );

    // Ready pods are watched through the whole rollout: maxUnavailable 0 keeps 10.
    let lowest = Arc::new(AtomicI32::new(i32::MAX));
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (client, lowest, stop) = (env.client.clone(), lowest.clone(), stop.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                lowest.fetch_min(ready_pods(&client, "web").await, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    let started = Instant::now();
    env.ok(&["set", "image", "deployment/web", "web=resil-demo:v2"])
        .await;
    env.ok(&["rollout", "status", "deployment/web", "--timeout=120s"])
        .await;
    stop.store(true, Ordering::SeqCst);
    watcher.await.unwrap();
    assert!(
        lowest.load(Ordering::SeqCst) >= 10,
        "ready pods fell to {lowest:?}"
    );
    println!(
        "10-replica rolling update (maxSurge 1, maxUnavailable 0) took {:?}",
        started.elapsed()
    );
    let rses = env.replicasets("web").await;
    assert_eq!(rses.len(), 2);
    assert_eq!(
        (revision(&rses[1]), image(&rses[1]).as_str()),
        (2, "resil-demo:v2")
    );
    assert_eq!(rses[0].spec.replicas, Some(0));

    let history = env.ok(&["rollout", "history", "deployment/web"]).await;
    assert!(
        history.lines().any(|l| l.trim_start().starts_with('1')),
        "{history}"
    );
    assert!(
        history.lines().any(|l| l.trim_start().starts_with('2')),
        "{history}"
    );
    env.ok(&["rollout", "undo", "deployment/web"]).await;
    env.ok(&["rollout", "status", "deployment/web", "--timeout=120s"])
        .await;
    let rses = env.replicasets("web").await;
    assert_eq!(rses.len(), 2, "undo reuses the first ReplicaSet");
    assert_eq!(rses[1].metadata.name.as_deref(), Some(rs_name.as_str()));
    assert_eq!(
        (revision(&rses[1]), image(&rses[1]).as_str()),
        (3, "resil-demo:1")
    );
    assert_eq!(env.ready_pods("web").await, 10);

    env.deploys()
        .delete("web", &DeleteParams::default())
        .await
        .unwrap();
    eventually(
        Duration::from_secs(30),
        "ReplicaSets and pods to go with the Deployment",
        || async {
            let pods: Api<Pod> = Api::default_namespaced(env.client.clone());
            let left = pods
                .list(&ListParams::default().labels("app=web"))
                .await
                .unwrap()
                .items
                .len();
            (env.replicasets("web").await.is_empty() && left == 0).then_some(())
        },
    )
    .await;
    env.lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_resume_restart_and_history_limit() {
    let Some(env) = Env::start().await else {
        return;
    };
    env.create(deployment(
        "pr",
        1,
        json!({"revisionHistoryLimit": 1, "progressDeadlineSeconds": 60}),
    ))
    .await;
    env.ok(&["rollout", "status", "deployment/pr", "--timeout=60s"])
        .await;
    env.ok(&["rollout", "pause", "deployment/pr"]).await;
    env.ok(&["set", "image", "deployment/pr", "web=resil-demo:v2"])
        .await;
    eventually(
        Duration::from_secs(10),
        "Progressing to say DeploymentPaused",
        || async { (env.progressing_reason("pr").await == "DeploymentPaused").then_some(()) },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        env.replicasets("pr").await.len(),
        1,
        "paused: no new ReplicaSet"
    );
    env.ok(&["rollout", "resume", "deployment/pr"]).await;
    env.ok(&["rollout", "status", "deployment/pr", "--timeout=60s"])
        .await;
    env.ok(&["rollout", "restart", "deployment/pr"]).await;
    env.ok(&["rollout", "status", "deployment/pr", "--timeout=60s"])
        .await;
    eventually(
        Duration::from_secs(15),
        "revisionHistoryLimit 1 to leave two ReplicaSets",
        || async {
            let revisions: Vec<i64> = env.replicasets("pr").await.iter().map(revision).collect();
            (revisions == [2, 3]).then_some(())
        },
    )
    .await;
    let history = env.ok(&["rollout", "history", "deployment/pr"]).await;
    assert!(
        !history.lines().any(|l| l.trim_start().starts_with("1 ")),
        "{history}"
    );
    env.lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_image_exceeds_the_progress_deadline_while_old_pods_serve() {
    let Some(env) = Env::start().await else {
        return;
    };
    env.create(deployment("bad", 2, json!({}))).await;
    env.ok(&["rollout", "status", "deployment/bad", "--timeout=60s"])
        .await;
    // Short only now: the first rollout on a busy machine may pause for seconds.
    let deadline = r#"{"spec":{"progressDeadlineSeconds":3}}"#;
    env.ok(&["patch", "deployment/bad", "-p", deadline]).await;
    env.ok(&["set", "image", "deployment/bad", "web=nginx:1.27"])
        .await;
    let (ok, out, err) = env
        .kubectl(&["rollout", "status", "deployment/bad", "--timeout=60s"])
        .await;
    assert!(
        !ok && err.contains("exceeded its progress deadline"),
        "{out}\n{err}"
    );
    assert_eq!(
        env.progressing_reason("bad").await,
        "ProgressDeadlineExceeded"
    );
    let pods = env.ok(&["get", "pods", "-l", "app=bad"]).await;
    assert!(
        pods.contains("ErrImagePull") || pods.contains("ImagePullBackOff"),
        "{pods}"
    );
    assert_eq!(env.ready_pods("bad").await, 2, "the old pods keep serving");
    env.lab.shutdown().await;
}

/// The issue's bar: a rolling update under `resil load` at 200 req/s, with maxUnavailable
/// 0 and readiness probes, fails no request. Traffic goes through the Service's NodePort
/// (the lab's kube-proxy), as a user's does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_update_under_load_fails_no_request() {
    let Some(env) = Env::start().await else {
        return;
    };
    env.create(deployment("web", 3, json!({}))).await;
    let port = crate::support::free_node_port();
    let svc = json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "web"},
        "spec": {"type": "NodePort", "selector": {"app": "web"},
                 "ports": [{"port": 80, "targetPort": 8080, "nodePort": port}]}});
    let services: Api<k8s_openapi::api::core::v1::Service> =
        Api::default_namespaced(env.client.clone());
    services
        .create(
            &PostParams::default(),
            &serde_json::from_value(svc).unwrap(),
        )
        .await
        .unwrap();
    env.ok(&["rollout", "status", "deployment/web", "--timeout=90s"])
        .await;
    let url = format!("http://127.0.0.1:{port}/");
    let load = tokio::process::Command::new(env!("CARGO_BIN_EXE_resil"))
        .args(["load", &url, "--rate", "200", "-d", "8s", "--no-color"])
        .env("NO_COLOR", "1")
        .kill_on_drop(true)
        .output();
    let roll = async {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        env.ok(&["set", "image", "deployment/web", "web=resil-demo:2"])
            .await;
        env.ok(&["rollout", "status", "deployment/web", "--timeout=60s"])
            .await;
    };
    let (out, ()) = tokio::join!(
        async {
            tokio::time::timeout(Duration::from_secs(60), load)
                .await
                .expect("load ends")
                .unwrap()
        },
        roll
    );
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{said}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains(" ok, 0 errors (0.00%)"), "{said}");
    // The rollout happened while the load ran: a second ReplicaSet holds every pod now.
    let rses = env.replicasets("web").await;
    assert_eq!(rses.len(), 2);
    assert_eq!(
        rses[1].status.as_ref().map(|s| s.ready_replicas),
        Some(Some(3))
    );
    env.lab.shutdown().await;
}
