//! The Deployment controller's loop: on every change of Deployments, ReplicaSets or Pods
//! (and at least once a second), syncs every Deployment with the pure decision of
//! `deployment/` and writes it through the store: ReplicaSets adopted, released, created,
//! resized and deleted, the revision annotation, `ScalingReplicaSet` Events, the status.
//!
//! Deleting a Deployment needs nothing here: the store's delete cascades by
//! ownerReference (background propagation) to its ReplicaSets and from them to their pods.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::jiff::Timestamp;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::replicaset::controller_ref;
use super::replicaset_loop::set_controller;
use super::runtime::{BATCH, RESYNC, Wake, controller_uid, to_value, typed, write_status};
use super::{deployment, events};
use crate::store::kinds::kind;
use crate::store::{DeleteOptions, Store, WriteMode};

/// Runs until `shutdown`.
pub(crate) async fn run(store: Arc<Store>, shutdown: CancellationToken) {
    let wake = Wake::on(&store, &["deployments", "replicasets", "pods"], &shutdown);
    loop {
        let wait = sync_deployments(&store).unwrap_or(RESYNC).min(RESYNC);
        tokio::select! {
            // Something changed: sync again (after a short batching pause).
            _ = wake.changed() => tokio::time::sleep(BATCH).await,
            // Nothing changed for a while, or a deadline passes now.
            _ = tokio::time::sleep(wait) => {}
            // The lab stops.
            _ = shutdown.cancelled() => return,
        }
    }
}

/// One pass over every Deployment; returns the earliest requested requeue.
pub(crate) fn sync_deployments(store: &Store) -> Option<Duration> {
    let now = Timestamp::now();
    let deploys: Vec<Deployment> = typed(store.list("deployments", None).items);
    if deploys.is_empty() {
        return None;
    }
    let rses: Vec<ReplicaSet> = typed(store.list("replicasets", None).items);
    let pods_of = pods_per_controller(store);
    let mut requeue: Option<Duration> = None;
    for d in &deploys {
        let plan = deployment::reconcile(d, &rses, &pods_of, now);
        apply(store, d, &plan);
        if let Some(r) = plan.requeue_after {
            requeue = Some(requeue.map_or(r, |q| q.min(r)));
        }
    }
    requeue
}

/// Pods not Succeeded or Failed (terminating ones included) per controller uid, read on
/// raw JSON.
fn pods_per_controller(store: &Store) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for p in store.list_shared("pods", None).0 {
        let finished = matches!(
            p.pointer("/status/phase").and_then(Value::as_str),
            Some("Succeeded" | "Failed")
        );
        if let Some(uid) = controller_uid(&p).filter(|_| !finished) {
            *out.entry(uid.to_string()).or_insert(0) += 1;
        }
    }
    out
}

fn apply(store: &Store, d: &Deployment, plan: &deployment::DeploymentPlan) {
    let ns = d.metadata.namespace.clone().unwrap_or_default();
    let name = d.metadata.name.clone().unwrap_or_default();
    let owner = controller_ref("Deployment", &d.metadata);
    for rs in &plan.adopt {
        set_controller(store, "replicasets", &ns, rs, Some(&owner));
    }
    for rs in &plan.release {
        set_controller(store, "replicasets", &ns, rs, None);
    }
    if let Some(rs) = &plan.create
        && let Err(e) = store.create(kind("replicasets"), &ns, to_value(rs))
    {
        tracing::warn!("deployment {ns}/{name}: creating a replica set failed: {e}");
    }
    for rs in &plan.update {
        let rs_name = rs.metadata.name.as_deref().unwrap_or_default();
        let Some(mut live) = store.get("replicasets", &ns, rs_name) else {
            continue;
        };
        live["spec"]["replicas"] = json!(rs.spec.replicas);
        live["metadata"]["annotations"] = json!(rs.metadata.annotations);
        // With the live resourceVersion: a concurrent write wins, the next pass redoes this.
        let _ = store.update(kind("replicasets"), &ns, rs_name, live, WriteMode::Main);
    }
    for rs in &plan.delete {
        // Already gone: fine. Its pods go with it (the store cascades).
        let _ = store.delete(kind("replicasets"), &ns, rs, &DeleteOptions::default());
    }
    let dv = to_value(d);
    for message in &plan.events {
        events::record(
            store,
            &dv,
            "Normal",
            "ScalingReplicaSet",
            message,
            "deployment-controller",
        );
    }
    if let Some(annotations) = &plan.annotations
        && let Some(mut live) = store.get("deployments", &ns, &name)
    {
        live["metadata"]["annotations"] = json!(annotations);
        let _ = store.update(kind("deployments"), &ns, &name, live, WriteMode::Main);
    }
    if d.status.as_ref() != Some(&plan.status) {
        write_status(store, "deployments", &ns, &name, to_value(&plan.status));
    }
}
