//! The worker pods of a distributed load run (`resil load --workers N`): one batch/v1
//! Job, Indexed, N completions run at once, no retries (a worker restarted mid-run could
//! not rejoin the schedule; its seconds are reported missing instead), each pod running
//! `resil load-worker ARGS` from the demo image (whose entrypoint is `resil demo-app`) and
//! reading its segment from `JOB_COMPLETION_INDEX`. The coordinator follows each pod's
//! log and deletes the Job (and so its pods) when it is done.

use std::time::Duration;

use futures::{AsyncBufReadExt, Stream, StreamExt, TryStreamExt};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams, LogParams, PostParams, PropagationPolicy};
use kube::{Client, ResourceExt};
use serde_json::json;

use super::{ClusterError, MANAGED_BY_LABEL, MANAGED_BY_VALUE};

/// The image worker pods run: the one the Dockerfile builds (and the lab maps to its
/// own binary).
pub const WORKER_IMAGE: &str = "resil-demo:latest";
/// The label naming a pod's completion index (Kubernetes ≥ 1.28, and the lab).
const INDEX_LABEL: &str = "batch.kubernetes.io/job-completion-index";
/// How often a pod's state is polled while waiting for it to start.
const POLL: Duration = Duration::from_millis(100);

/// A created worker Job.
#[derive(Clone)]
pub struct WorkerJob {
    jobs: Api<Job>,
    pods: Api<Pod>,
    /// The Job's name.
    pub name: String,
}

/// The Job: `count` pods, pod `i` runs `resil load-worker ARGS` with
/// `JOB_COMPLETION_INDEX=i`.
pub fn job_manifest(name: &str, count: u32, image: &str, args: &[String]) -> Job {
    let labels =
        json!({MANAGED_BY_LABEL: MANAGED_BY_VALUE, "app.kubernetes.io/name": "resil-load-worker"});
    serde_json::from_value(json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "completions": count,
            "parallelism": count,
            "completionMode": "Indexed",
            "backoffLimit": 0,
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "restartPolicy": "Never",
                    "terminationGracePeriodSeconds": 5,
                    "containers": [{
                        "name": "worker",
                        "image": image,
                        "imagePullPolicy": "IfNotPresent",
                        "command": ["resil", "load-worker"],
                        "args": args,
                    }],
                },
            },
        },
    }))
    .expect("a literal Job manifest")
}

/// How a worker pod ended, when it did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodEnd {
    pub phase: String,
    pub exit_code: Option<i32>,
    pub reason: Option<String>,
}

impl WorkerJob {
    /// Creates the Job in `namespace`.
    pub async fn create(
        client: &Client,
        namespace: &str,
        job: &Job,
    ) -> Result<WorkerJob, ClusterError> {
        let jobs: Api<Job> = Api::namespaced(client.clone(), namespace);
        let created = jobs
            .create(&PostParams::default(), job)
            .await
            .map_err(|e| ClusterError::api(format!("creating Job {}", job.name_any()), e))?;
        Ok(WorkerJob {
            jobs,
            pods: Api::namespaced(client.clone(), namespace),
            name: created.name_any(),
        })
    }

    /// Waits (until `deadline`) for pod `index` to have run: Running or finished.
    pub async fn started_pod(
        &self,
        index: u32,
        deadline: tokio::time::Instant,
    ) -> Result<Option<Pod>, ClusterError> {
        let selector = format!(
            "batch.kubernetes.io/job-name={},{INDEX_LABEL}={index}",
            self.name
        );
        let params = ListParams::default().labels(&selector);
        loop {
            let pods = self
                .pods
                .list(&params)
                .await
                .map_err(|e| ClusterError::api("listing worker pods", e))?;
            let started = pods.items.into_iter().find(|p| {
                let phase = p.status.as_ref().and_then(|s| s.phase.as_deref());
                matches!(phase, Some("Running" | "Succeeded" | "Failed"))
            });
            if started.is_some() {
                return Ok(started);
            }
            if tokio::time::Instant::now() >= deadline {
                return Ok(None);
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// The pod's output, line by line, followed until the container ends.
    pub async fn follow(
        &self,
        pod: &str,
    ) -> Result<impl Stream<Item = std::io::Result<String>> + use<>, ClusterError> {
        let params = LogParams {
            follow: true,
            ..LogParams::default()
        };
        let reader = self
            .pods
            .log_stream(pod, &params)
            .await
            .map_err(|e| ClusterError::api(format!("following the log of pod {pod}"), e))?;
        Ok(reader
            .lines()
            .into_stream()
            .map_err(std::io::Error::other)
            .boxed())
    }

    /// How the pod ended (`None` while it runs or when it is gone).
    pub async fn end_of(&self, pod: &str) -> Option<PodEnd> {
        let p = self.pods.get_opt(pod).await.ok().flatten()?;
        let status = p.status?;
        let phase = status.phase.unwrap_or_default();
        if !matches!(phase.as_str(), "Succeeded" | "Failed") {
            return None;
        }
        let terminated = status
            .container_statuses
            .into_iter()
            .flatten()
            .find_map(|c| c.state?.terminated);
        Some(PodEnd {
            phase,
            exit_code: terminated.as_ref().map(|t| t.exit_code),
            reason: terminated.and_then(|t| t.reason),
        })
    }

    /// Deletes the Job and its pods (background propagation, which batch/v1 does not
    /// default to).
    pub async fn delete(&self) -> Result<(), ClusterError> {
        let params = DeleteParams {
            propagation_policy: Some(PropagationPolicy::Background),
            grace_period_seconds: Some(0),
            ..DeleteParams::default()
        };
        match self.jobs.delete(&self.name, &params).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
            Err(e) => Err(ClusterError::api(format!("deleting Job {}", self.name), e)),
        }
    }
}
