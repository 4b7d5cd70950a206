//! The namespace controller: empties Terminating namespaces and finalizes them, as
//! upstream's `pkg/controller/namespace/deletion/namespaced_resources_deleter.go`
//! (`Delete`: delete every namespaced resource, then, once nothing is left, remove the
//! `kubernetes` finalizer). Started with every lab, runtime or not, by `server.rs`:
//! without it a deleted namespace would stay Terminating.
//!
//! Each pass, for each namespace with a `deletionTimestamp`:
//! 1. delete every object in it with the default options (pods gracefully: the kubelet
//!    stops them, then removes them), dependents in the background;
//! 2. while anything is left, set the `NamespaceContentRemaining` condition and wait for
//!    the next pass;
//! 3. when nothing is left, drop the `kubernetes` finalizer; the store then removes the
//!    namespace.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::runtime::Wake;
use crate::store::kinds::{self, kind};
use crate::store::{DeleteOptions, Store, WriteMode};

/// Longest the loop sleeps without a change (a pod's grace period runs out unseen).
const RESYNC: Duration = Duration::from_secs(1);

/// Runs the namespace controller until `shutdown`.
pub async fn run(store: Arc<Store>, shutdown: CancellationToken) {
    let wake = Wake::on(&store, &["namespaces", "pods"], &shutdown);
    loop {
        sync(&store);
        tokio::select! {
            // A namespace or pod changed: look again.
            _ = wake.changed() => {}
            // Nothing changed for a while.
            _ = tokio::time::sleep(RESYNC) => {}
            // The lab stops.
            _ = shutdown.cancelled() => return,
        }
    }
}

/// One pass over every Terminating namespace; returns how many are gone now.
pub fn sync(store: &Store) -> usize {
    let terminating: Vec<String> = store
        .list("namespaces", None)
        .items
        .iter()
        .filter(|ns| ns.pointer("/metadata/deletionTimestamp").is_some())
        .filter_map(|ns| ns.pointer("/metadata/name")?.as_str().map(str::to_string))
        .collect();
    let mut gone = 0;
    for ns in terminating {
        if empty(store, &ns) {
            match store.finalize_namespace(&ns) {
                Ok(true) => gone += 1,
                Ok(false) => {}
                Err(e) => tracing::debug!("namespace {ns}: finalize: {e}"),
            }
        }
    }
    gone
}

/// Deletes what is left in `ns`; true when nothing was left.
fn empty(store: &Store, ns: &str) -> bool {
    let contents = store.namespace_contents(ns);
    if contents.is_empty() {
        return true;
    }
    let mut remaining: BTreeMap<&str, usize> = BTreeMap::new();
    for (resource, ns, name) in &contents {
        *remaining.entry(resource).or_default() += 1;
        let Some(k) = kinds::stored(resource) else {
            continue;
        };
        // Gone already, or marked and waiting: either is progress.
        let _ = store.delete(k, ns, name, &DeleteOptions::default());
    }
    set_remaining(store, ns, &remaining);
    false
}

/// Records what the namespace still holds, as upstream's `NamespaceContentRemaining`.
fn set_remaining(store: &Store, ns: &str, resources: &BTreeMap<&str, usize>) {
    let Some(live) = store.get("namespaces", "", ns) else {
        return;
    };
    let message = format!(
        "Some resources are remaining: {}",
        resources
            .iter()
            .map(|(r, n)| format!("{} has {n} resource instances", kind(r).qualified()))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let condition = |type_: &str, status: &str, reason: &str, message: &str| -> Value {
        json!({"type": type_, "status": status, "reason": reason, "message": message,
               "lastTransitionTime": live.pointer("/metadata/deletionTimestamp")})
    };
    let status = json!({
        "phase": "Terminating",
        "conditions": [
            condition("NamespaceDeletionDiscoveryFailure", "False", "ResourcesDiscovered",
                "All resources successfully discovered"),
            condition("NamespaceDeletionContentFailure", "False", "ContentDeleted",
                "All content successfully deleted, may be waiting on finalization"),
            condition("NamespaceContentRemaining", "True", "SomeResourcesRemain", &message),
        ],
    });
    if live.get("status") == Some(&status) {
        return;
    }
    let obj = json!({"metadata": {"name": ns}, "status": status});
    if let Err(e) = store.update(kind("namespaces"), "", ns, obj, WriteMode::Status) {
        tracing::debug!("namespace {ns}: status: {e}");
    }
}
