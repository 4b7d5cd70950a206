//! The ReplicaSet controller's loop: on every change of ReplicaSets or Pods (and at least
//! once a second), syncs every ReplicaSet with the pure decision of `replicaset.rs` and
//! writes it through the store: adoptions and releases, pods created and deleted (with
//! upstream's `SuccessfulCreate` / `SuccessfulDelete` Events), the status.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use k8s_openapi::jiff::Timestamp;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::runtime::{BATCH, RESYNC, Wake, to_value, typed, write_status};
use super::{events, pods, replicaset};
use crate::store::kinds::kind;
use crate::store::{DeleteOptions, Store, WriteMode};

/// Runs until `shutdown`.
pub(crate) async fn run(store: Arc<Store>, shutdown: CancellationToken) {
    let wake = Wake::on(&store, &["replicasets", "pods"], &shutdown);
    loop {
        let wait = sync_replicasets(&store).unwrap_or(RESYNC).min(RESYNC);
        tokio::select! {
            // Something changed: sync again (after a short batching pause).
            _ = wake.changed() => tokio::time::sleep(BATCH).await,
            // Nothing changed for a while, or a pod turns available now.
            _ = tokio::time::sleep(wait) => {}
            // The lab stops.
            _ = shutdown.cancelled() => return,
        }
    }
}

/// One pass over every ReplicaSet; returns the earliest requested requeue.
pub(crate) fn sync_replicasets(store: &Store) -> Option<Duration> {
    let now = Timestamp::now();
    let rses: Vec<ReplicaSet> = typed(store.list("replicasets", None).items);
    if rses.is_empty() {
        return None;
    }
    // Parsed once per write to a pod (the store keeps the parse), not on every pass.
    let all: Vec<Arc<Pod>> = store.list_parsed("pods");
    let mut requeue: Option<Duration> = None;
    for rs in &rses {
        let ns = rs.metadata.namespace.clone().unwrap_or_default();
        // `reconcile` reads only the pods of the ReplicaSet's namespace.
        let plan = replicaset::reconcile(rs, &all, now, &mut pods::random_suffix);
        apply(store, rs, &ns, &plan);
        if let Some(r) = plan.requeue_after {
            requeue = Some(requeue.map_or(r, |q| q.min(r)));
        }
    }
    requeue
}

fn apply(store: &Store, rs: &ReplicaSet, ns: &str, plan: &replicaset::ReplicaSetPlan) {
    let name = rs.metadata.name.clone().unwrap_or_default();
    let owner = replicaset::controller_ref("ReplicaSet", &rs.metadata);
    for pod in &plan.adopt {
        set_controller(store, "pods", ns, pod, Some(&owner));
    }
    for pod in &plan.release {
        set_controller(store, "pods", ns, pod, None);
    }
    let rv = to_value(rs);
    for pod in &plan.create {
        match store.create(kind("pods"), ns, to_value(pod)) {
            Ok(created) => {
                let msg = format!(
                    "Created pod: {}",
                    created["metadata"]["name"].as_str().unwrap_or_default()
                );
                events::record(
                    store,
                    &rv,
                    "Normal",
                    "SuccessfulCreate",
                    &msg,
                    "replicaset-controller",
                );
            }
            Err(e) => tracing::warn!("replicaset {ns}/{name}: creating a pod failed: {e}"),
        }
    }
    for pod in &plan.delete {
        // Already gone or already terminating: nothing to do.
        if store
            .delete(kind("pods"), ns, pod, &DeleteOptions::default())
            .is_ok()
        {
            let msg = format!("Deleted pod: {pod}");
            events::record(
                store,
                &rv,
                "Normal",
                "SuccessfulDelete",
                &msg,
                "replicaset-controller",
            );
        }
    }
    if rs.status.as_ref() != Some(&plan.status) {
        write_status(store, "replicasets", ns, &name, to_value(&plan.status));
    }
}

/// Makes `owner` the controller of a stored object (adoption), or with `None` drops the
/// controller reference (release). Written with the live resourceVersion: a concurrent
/// write wins and the next pass redoes this.
pub(crate) fn set_controller(
    store: &Store,
    resource: &'static str,
    ns: &str,
    name: &str,
    owner: Option<&OwnerReference>,
) {
    let Some(mut live) = store.get(resource, ns, name) else {
        return;
    };
    let mut refs: Vec<Value> = live["metadata"]["ownerReferences"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    refs.retain(|r| r["controller"] != json!(true));
    refs.extend(owner.map(to_value));
    live["metadata"]["ownerReferences"] = json!(refs);
    if let Err(e) = store.update(kind(resource), ns, name, live, WriteMode::Main) {
        tracing::debug!("{resource} {ns}/{name}: owner change failed: {e}");
    }
}
