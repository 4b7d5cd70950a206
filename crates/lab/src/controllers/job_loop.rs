//! The Job controller's loop: on every change of Jobs or Pods (and at least once a
//! second), syncs every Job with the pure decision of `job/` and writes it through the
//! store: pods created and deleted (with upstream's `SuccessfulCreate` /
//! `SuccessfulDelete` Events), the status, and the Job's own Events (`Completed`,
//! `BackoffLimitExceeded`, `DeadlineExceeded`). A Job's pods go with it through the
//! store's garbage collector (their ownerReference).

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use tokio_util::sync::CancellationToken;

use super::runtime::{BATCH, RESYNC, Wake, controller_uid, to_value, typed, write_status};
use super::{events, job, pods};
use crate::store::kinds::kind;
use crate::store::{DeleteOptions, Store};

const AGENT: &str = "job-controller";

/// Runs until `shutdown`.
pub(crate) async fn run(store: Arc<Store>, shutdown: CancellationToken) {
    let wake = Wake::on(&store, &["jobs", "pods"], &shutdown);
    loop {
        let wait = sync_jobs(&store).unwrap_or(RESYNC).min(RESYNC);
        tokio::select! {
            // Something changed: sync again (after a short batching pause).
            _ = wake.changed() => tokio::time::sleep(BATCH).await,
            // Nothing changed for a while, or a deadline comes.
            _ = tokio::time::sleep(wait) => {}
            // The lab stops.
            _ = shutdown.cancelled() => return,
        }
    }
}

/// One pass over every Job; returns the earliest requested requeue.
pub(crate) fn sync_jobs(store: &Store) -> Option<Duration> {
    let now = Timestamp::now();
    let jobs: Vec<Job> = typed(store.list("jobs", None).items);
    if jobs.is_empty() {
        return None;
    }
    let owned: Vec<Pod> = typed(
        store
            .list("pods", None)
            .items
            .into_iter()
            .filter(|p| {
                controller_uid(p)
                    .is_some_and(|u| jobs.iter().any(|j| j.metadata.uid.as_deref() == Some(u)))
            })
            .collect(),
    );
    let mut requeue: Option<Duration> = None;
    for j in &jobs {
        let uid = j.metadata.uid.as_deref();
        let mine: Vec<Pod> = owned
            .iter()
            .filter(|p| pods::controller_of(&p.metadata) == uid)
            .cloned()
            .collect();
        let plan = job::reconcile(j, &mine, now, &mut pods::random_suffix);
        apply(store, j, &plan);
        if let Some(r) = plan.requeue_after {
            requeue = Some(requeue.map_or(r, |q| q.min(r)));
        }
    }
    requeue
}

fn apply(store: &Store, j: &Job, plan: &job::JobPlan) {
    let ns = j.metadata.namespace.clone().unwrap_or_default();
    let name = j.metadata.name.clone().unwrap_or_default();
    let jv = to_value(j);
    for pod in &plan.create {
        match store.create(kind("pods"), &ns, to_value(pod)) {
            Ok(created) => {
                let msg = format!(
                    "Created pod: {}",
                    created["metadata"]["name"].as_str().unwrap_or_default()
                );
                events::record(store, &jv, "Normal", "SuccessfulCreate", &msg, AGENT);
            }
            Err(e) => tracing::warn!("job {ns}/{name}: creating a pod failed: {e}"),
        }
    }
    for pod in &plan.delete {
        // Already gone or already terminating: nothing to do.
        if store
            .delete(kind("pods"), &ns, pod, &DeleteOptions::default())
            .is_ok()
        {
            let msg = format!("Deleted pod: {pod}");
            events::record(store, &jv, "Normal", "SuccessfulDelete", &msg, AGENT);
        }
    }
    for (type_, reason, message) in &plan.events {
        events::record(store, &jv, type_, reason, message, AGENT);
    }
    if j.status.as_ref() != Some(&plan.status) {
        write_status(store, "jobs", &ns, &name, to_value(&plan.status));
    }
}
