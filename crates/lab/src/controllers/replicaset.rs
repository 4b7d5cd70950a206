//! The ReplicaSet controller's decision, as pure code: given a ReplicaSet, the pods of its
//! namespace and the time, which pods to adopt, release, create and delete, and the status
//! to write.
//!
//! Mirrors kubernetes `pkg/controller/replicaset/replica_set.go` (`syncReplicaSet`,
//! `manageReplicas`, `getPodsToDelete`), `replica_set_utils.go` (`calculateStatus`) and the
//! claim rules of `pkg/controller/controller_ref_manager.go`: a pod without a controller
//! whose labels match the selector is adopted (unless either is being deleted); an owned
//! pod whose labels stop matching is released. Lab simplifications: no slow-start batches
//! and no `burstReplicas` cap (creating a pod is a store write); no `ReplicaFailure`
//! condition. The loop that does the store I/O is `replicaset_loop.rs`.

use std::time::Duration;

use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetStatus};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::jiff::Timestamp;

use super::pods::{
    available_after, controller_of, in_deletion_order, is_active, is_available, is_ready, selects,
};

/// What one sync of one ReplicaSet decided.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplicaSetPlan {
    /// Names of orphan pods to adopt (add this ReplicaSet as their controller).
    pub adopt: Vec<String>,
    /// Names of owned pods whose labels no longer match (drop the ownerReference).
    pub release: Vec<String>,
    /// Pods to create, complete objects.
    pub create: Vec<Pod>,
    /// Names of pods to delete, in deletion order.
    pub delete: Vec<String>,
    /// The status to write (compare with the stored one before writing).
    pub status: ReplicaSetStatus,
    /// Sync again after this long even without a change (`minReadySeconds`).
    pub requeue_after: Option<Duration>,
}

/// The ownerReference that makes `meta`'s object the controller of a dependent.
pub fn controller_ref(kind: &str, meta: &ObjectMeta) -> OwnerReference {
    OwnerReference {
        api_version: "apps/v1".to_string(),
        kind: kind.to_string(),
        name: meta.name.clone().unwrap_or_default(),
        uid: meta.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// One sync. `pods` may hold any pods of the namespace. `suffix` makes pod name suffixes
/// (random in the loop, fixed in tests).
pub fn reconcile<P: std::borrow::Borrow<Pod>>(
    rs: &ReplicaSet,
    pods: &[P],
    now: Timestamp,
    suffix: &mut dyn FnMut() -> String,
) -> ReplicaSetPlan {
    let uid = rs.metadata.uid.as_deref().unwrap_or_default();
    let spec = rs.spec.clone();
    let selector = spec.selector.match_labels.clone().unwrap_or_default();
    let deleting = rs.metadata.deletion_timestamp.is_some();
    let mut adopt = Vec::new();
    let mut release = Vec::new();
    let mut owned: Vec<&Pod> = Vec::new();
    for pod in pods
        .iter()
        .map(P::borrow)
        .filter(|p| p.metadata.namespace == rs.metadata.namespace)
    {
        let matches = selects(&selector, pod.metadata.labels.as_ref());
        match controller_of(&pod.metadata) {
            Some(u) if u == uid && matches => owned.push(pod),
            Some(u) if u == uid => release.push(name_of(pod)),
            None if matches && !deleting && is_active(pod) => {
                adopt.push(name_of(pod));
                owned.push(pod);
            }
            _ => {}
        }
    }
    let active: Vec<&Pod> = owned.iter().copied().filter(|p| is_active(p)).collect();
    let replicas = spec.replicas.unwrap_or(1).max(0) as usize;
    let min_ready = Duration::from_secs(spec.min_ready_seconds.unwrap_or(0).max(0) as u64);
    let mut create = Vec::new();
    let mut delete = Vec::new();
    if !deleting {
        if active.len() < replicas {
            create = (active.len()..replicas)
                .map(|_| new_pod(rs, &suffix()))
                .collect();
        } else if active.len() > replicas {
            delete = in_deletion_order(&active)
                .into_iter()
                .take(active.len() - replicas)
                .map(name_of)
                .collect();
        }
    }
    let status = status(rs, &active, min_ready, now);
    ReplicaSetPlan {
        adopt,
        release,
        create,
        delete,
        status,
        requeue_after: available_after(&active, min_ready, now),
    }
}

/// Status from the active pods (upstream `calculateStatus`); conditions are kept.
fn status(
    rs: &ReplicaSet,
    active: &[&Pod],
    min_ready: Duration,
    now: Timestamp,
) -> ReplicaSetStatus {
    let template_labels = rs
        .spec
        .template
        .as_ref()
        .and_then(|t| t.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    let count = |f: &dyn Fn(&Pod) -> bool| active.iter().filter(|p| f(p)).count() as i32;
    let previous = rs.status.clone().unwrap_or_default();
    ReplicaSetStatus {
        replicas: active.len() as i32,
        fully_labeled_replicas: Some(count(&|p| {
            template_labels.is_empty() || selects(&template_labels, p.metadata.labels.as_ref())
        })),
        ready_replicas: Some(count(&is_ready)),
        available_replicas: Some(count(&|p| is_available(p, min_ready, now))),
        observed_generation: rs.metadata.generation,
        conditions: previous.conditions,
        terminating_replicas: None,
    }
}

/// A pod made from the ReplicaSet's template (upstream `GetPodFromTemplate`), named
/// `<replicaset>-<suffix>`.
fn new_pod(rs: &ReplicaSet, suffix: &str) -> Pod {
    let template = rs.spec.template.clone().unwrap_or_default();
    let tm = template.metadata.unwrap_or_default();
    let name = rs.metadata.name.as_deref().unwrap_or_default();
    Pod {
        metadata: ObjectMeta {
            name: Some(format!("{name}-{suffix}")),
            generate_name: Some(format!("{name}-")),
            namespace: rs.metadata.namespace.clone(),
            labels: tm.labels,
            annotations: tm.annotations,
            owner_references: Some(vec![controller_ref("ReplicaSet", &rs.metadata)]),
            ..ObjectMeta::default()
        },
        spec: template.spec,
        status: None,
    }
}

fn name_of(pod: &Pod) -> String {
    pod.metadata.name.clone().unwrap_or_default()
}

#[cfg(test)]
#[path = "replicaset_tests.rs"]
mod tests;
