//! batch/v1 Jobs on an in-process lab, through kube-rs and the real kubectl (skipped with
//! a note when it is not installed): an Indexed Job runs each index to completion with
//! its index in the pod's env, annotation and label; a failing pod is replaced until the
//! backoff limit fails the Job; `kubectl create job`, `kubectl get jobs` and `kubectl
//! delete job` (its pods going with it). Pods run the demo image's `resil load-worker`
//! as real processes; every wait is bounded.

use std::path::Path;
use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, LogParams, PostParams};
use resil_lab::Lab;
use serde_json::json;

use crate::support::{eventually, kubectl_on_path, start_lab};

const WAIT: Duration = Duration::from_secs(60);

/// A Job of `completions` pods running `resil load-worker ARGS` from the demo image.
fn worker_job(name: &str, completions: i32, backoff: i32, args: &[&str]) -> Job {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "completions": completions, "parallelism": completions,
            "completionMode": "Indexed", "backoffLimit": backoff,
            "template": {"spec": {
                "restartPolicy": "Never", "terminationGracePeriodSeconds": 1,
                "containers": [{"name": "worker", "image": "resil-demo:latest",
                                "command": ["resil", "load-worker"], "args": args}],
            }},
        },
    }))
    .unwrap()
}

fn condition(job: &Job, type_: &str) -> Option<String> {
    job.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_ && c.status == "True")
        .map(|c| c.reason.clone().unwrap_or_default())
}

async fn job_pods(client: &kube::Client, job: &str) -> Vec<Pod> {
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    pods.list(&ListParams::default().labels(&format!("batch.kubernetes.io/job-name={job}")))
        .await
        .unwrap()
        .items
}

async fn kubectl(lab: &Lab, dir: &Path, args: &[&str]) -> String {
    let kubeconfig = dir.join("kubectl-config");
    std::fs::write(&kubeconfig, lab.kubeconfig_yaml()).unwrap();
    let out = tokio::time::timeout(
        Duration::from_secs(30),
        tokio::process::Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .arg("--cache-dir")
            .arg(dir.join("kubectl-cache"))
            .args(args)
            .env("HOME", dir)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("kubectl finishes")
    .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "kubectl {args:?}: {}{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_indexed_job_runs_every_index_to_completion() {
    let (lab, client, dir) = start_lab().await;
    let jobs: Api<Job> = Api::default_namespaced(client.clone());
    jobs.create(
        &PostParams::default(),
        &worker_job("done", 2, 0, &["--help"]),
    )
    .await
    .unwrap();
    let job = eventually(WAIT, "the Job completes", || async {
        let j = jobs.get("done").await.unwrap();
        condition(&j, "Complete").map(|_| j)
    })
    .await;
    let status = job.status.clone().unwrap();
    assert_eq!(status.succeeded, Some(2));
    assert_eq!(status.completed_indexes.as_deref(), Some("0-1"));
    assert!(status.start_time.is_some() && status.completion_time.is_some());
    assert_eq!(status.active, None);
    let selector = job.spec.as_ref().unwrap().selector.clone().unwrap();
    assert!(
        selector
            .match_labels
            .unwrap()
            .contains_key("batch.kubernetes.io/controller-uid")
    );
    let pods = job_pods(&client, "done").await;
    let mut indexes: Vec<String> = pods
        .iter()
        .map(|p| {
            assert_eq!(
                p.status.as_ref().unwrap().phase.as_deref(),
                Some("Succeeded")
            );
            let owner = &p.metadata.owner_references.as_ref().unwrap()[0];
            assert_eq!((owner.kind.as_str(), owner.controller), ("Job", Some(true)));
            p.metadata.annotations.as_ref().unwrap()["batch.kubernetes.io/job-completion-index"]
                .clone()
        })
        .collect();
    indexes.sort();
    assert_eq!(indexes, ["0", "1"]);
    if kubectl_on_path() {
        let table = kubectl(&lab, dir.path(), &["get", "jobs"]).await;
        let row = table
            .lines()
            .find(|l| l.starts_with("done "))
            .expect(&table);
        let cells: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(&cells[1..3], ["Complete", "2/2"], "{table}");
        assert!(table.starts_with("NAME"), "{table}");
        kubectl(&lab, dir.path(), &["delete", "job", "done"]).await;
        eventually(WAIT, "the Job's pods go with it", || async {
            job_pods(&client, "done").await.is_empty().then_some(())
        })
        .await;
    }
    lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_pod_is_replaced_until_the_backoff_limit_fails_the_job() {
    let (lab, client, _dir) = start_lab().await;
    let jobs: Api<Job> = Api::default_namespaced(client.clone());
    // Nothing listens on port 9 of loopback: the worker says hello, then fails.
    let args = [
        "http://127.0.0.1:9/",
        "--rate",
        "1",
        "-d",
        "1s",
        "--workers",
        "1",
        "--threads",
        "1",
        "--start-at",
        "2026-01-01T00:00:00Z",
    ];
    jobs.create(&PostParams::default(), &worker_job("fails", 1, 1, &args))
        .await
        .unwrap();
    let job = eventually(WAIT, "the Job fails", || async {
        let j = jobs.get("fails").await.unwrap();
        condition(&j, "Failed").map(|reason| (j, reason))
    })
    .await;
    assert_eq!(job.1, "BackoffLimitExceeded");
    assert_eq!(job.0.status.unwrap().failed, Some(2));
    let pods = job_pods(&client, "fails").await;
    assert_eq!(pods.len(), 2, "the failed pod was replaced once");
    // The index reached the process through JOB_COMPLETION_INDEX.
    let api: Api<Pod> = Api::default_namespaced(client.clone());
    let name = pods[0].metadata.name.clone().unwrap();
    let log = api.logs(&name, &LogParams::default()).await.unwrap();
    assert!(log.contains(r#""resil_worker":"hello","index":0"#), "{log}");
    let exit = pods[0]
        .status
        .as_ref()
        .unwrap()
        .container_statuses
        .as_ref()
        .unwrap()[0]
        .state
        .as_ref()
        .unwrap()
        .terminated
        .clone()
        .unwrap();
    assert_ne!(exit.exit_code, 0);
    lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_create_job_runs_the_worker_image() {
    if !kubectl_on_path() {
        eprintln!("note: kubectl is not on PATH; skipping");
        return;
    }
    let (lab, client, dir) = start_lab().await;
    kubectl(
        &lab,
        dir.path(),
        &[
            "create",
            "job",
            "hello",
            "--image=resil-demo:latest",
            "--",
            "resil",
            "load-worker",
            "--help",
        ],
    )
    .await;
    let jobs: Api<Job> = Api::default_namespaced(client.clone());
    eventually(WAIT, "the Job completes", || async {
        condition(&jobs.get("hello").await.unwrap(), "Complete")
    })
    .await;
    let wide = kubectl(&lab, dir.path(), &["get", "job", "hello", "-o", "wide"]).await;
    assert!(wide.contains("resil-demo:latest"), "{wide}");
    assert!(
        wide.contains("batch.kubernetes.io/controller-uid="),
        "{wide}"
    );
    lab.shutdown().await;
}
