//! The Deployment controller's decision, as pure code: given a Deployment, the pods it
//! owns and the time, which pods to create, which to delete, and the status to write.
//!
//! Lab simplification (documented): there are no ReplicaSets. The Deployment owns its pods
//! directly (`ownerReferences` → the Deployment, `controller: true`); each pod carries the
//! `pod-template-hash` label of the template it was made from, so "the new ReplicaSet" is
//! the set of pods with the current hash and "old ReplicaSets" are the others. Pod names
//! keep the upstream shape `<deployment>-<hash10>-<rand5>`. Orphan adoption, `paused`
//! and `progressDeadlineSeconds` are not modelled.
//!
//! Mirrors kubernetes `pkg/controller/deployment` (`rolling.go`, `recreate.go`, `sync.go`,
//! `util/deployment_util.go`) and the pod deletion order of `pkg/controller/replicaset`.
//! Called by the controller loop in `runtime.rs`, which does the store I/O.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentCondition, DeploymentStatus};
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;

use super::pods::{is_active, is_ready, ready_since, restart_count};

/// Label naming the template a pod was made from.
pub const TEMPLATE_HASH_LABEL: &str = "pod-template-hash";
/// Deployment annotation counting template changes (`kubectl rollout history`).
pub const REVISION_ANNOTATION: &str = "deployment.kubernetes.io/revision";
/// Deployment annotation remembering which template hash the revision belongs to.
pub const HASH_ANNOTATION: &str = "resil.dev/template-hash";

/// Characters of generated names (upstream `rand.SafeEncodeString`: no vowels, no
/// look-alikes).
const SAFE_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// What one reconcile of one Deployment decided.
#[derive(Debug, Clone, PartialEq)]
pub struct DeploymentPlan {
    /// Pods to create, complete objects.
    pub create: Vec<Pod>,
    /// Names of pods to delete, in deletion order.
    pub delete: Vec<String>,
    /// The status to write (compare with the stored one before writing).
    pub status: DeploymentStatus,
    /// Annotations the Deployment should carry (revision bookkeeping); `None` when the
    /// stored ones are already right.
    pub annotations: Option<BTreeMap<String, String>>,
    /// `ScalingReplicaSet` event messages.
    pub events: Vec<String>,
    /// Reconcile again after this long even without a change (a ready pod turns
    /// available after `minReadySeconds`).
    pub requeue_after: Option<Duration>,
}

/// The template's stable hash: ten characters of the safe alphabet from a FNV-1a hash of
/// the template's JSON (field order is fixed by the types, maps are sorted).
pub fn template_hash(template: &PodTemplateSpec) -> String {
    let json = serde_json::to_string(template).unwrap_or_default();
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in json.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    let mut out = String::with_capacity(10);
    for _ in 0..10 {
        out.push(SAFE_ALPHABET[(h % SAFE_ALPHABET.len() as u64) as usize] as char);
        h /= SAFE_ALPHABET.len() as u64;
    }
    out
}

/// Five random characters of the safe alphabet (the pod name suffix).
pub fn random_suffix() -> String {
    (0..5)
        .map(|_| SAFE_ALPHABET[rand::random_range(0..SAFE_ALPHABET.len())] as char)
        .collect()
}

/// Whether `pod` is controlled by the object with this uid.
pub fn controlled_by(pod: &Pod, uid: &str) -> bool {
    pod.metadata
        .owner_references
        .iter()
        .flatten()
        .any(|o| o.uid == uid && o.controller == Some(true))
}

/// One reconcile. `pods` may hold any pods of the namespace; only those the Deployment
/// controls count. `suffix` makes pod name suffixes (random in the loop, fixed in tests).
pub fn reconcile(
    deploy: &Deployment,
    pods: &[Pod],
    now: Timestamp,
    suffix: &mut dyn FnMut() -> String,
) -> DeploymentPlan {
    let uid = deploy.metadata.uid.as_deref().unwrap_or_default();
    let spec = &deploy.spec;
    let replicas = spec.replicas.unwrap_or(1).max(0);
    let min_ready = Duration::from_secs(spec.min_ready_seconds.unwrap_or(0).max(0) as u64);
    let hash = template_hash(&spec.template);
    let owned: Vec<&Pod> = pods.iter().filter(|p| controlled_by(p, uid)).collect();
    let terminating_old = owned
        .iter()
        .any(|p| !is_active(p) && pod_hash(p) != Some(hash.as_str()));
    let active: Vec<&Pod> = owned.iter().copied().filter(|p| is_active(p)).collect();
    let (new, old): (Vec<&Pod>, Vec<&Pod>) = active
        .iter()
        .copied()
        .partition(|p| pod_hash(p) == Some(hash.as_str()));
    let available = |p: &&Pod| is_available(p, min_ready, now);
    let rolling = spec
        .strategy
        .as_ref()
        .and_then(|s| s.type_.as_deref())
        .unwrap_or("RollingUpdate")
        != "Recreate";
    let (surge, unavailable) = if rolling {
        fenceposts(spec, replicas)
    } else {
        (0, 0)
    };

    let mut create = 0usize;
    let mut delete: Vec<&Pod> = Vec::new();
    if old.is_empty() {
        // Steady state or a plain scale: bring the new pods to `replicas`.
        let n = new.len() as i32;
        if n < replicas {
            create = (replicas - n) as usize;
        } else if n > replicas {
            delete = in_deletion_order(&new)
                .into_iter()
                .take((n - replicas) as usize)
                .collect();
        }
    } else if !rolling {
        // Recreate: every old pod goes, and nothing new starts until they are gone.
        delete = old.clone();
    } else {
        let total = active.len() as i32;
        let n = new.len() as i32;
        if n < replicas {
            // reconcileNewReplicaSet: grow the new pods within the surge budget.
            let room = replicas + surge - total;
            create = room.min(replicas - n).max(0) as usize;
        } else if n > replicas {
            delete = in_deletion_order(&new)
                .into_iter()
                .take((n - replicas) as usize)
                .collect();
        }
        if create == 0 {
            delete.extend(old_to_delete(&new, &old, replicas, unavailable, &available));
        }
    }
    if !rolling && terminating_old {
        create = 0;
    }

    let create: Vec<Pod> = (0..create)
        .map(|_| new_pod(deploy, &spec.template, &hash, &suffix()))
        .collect();
    let rs_name = format!("{}-{hash}", name(deploy));
    let events = scale_events(deploy, &rs_name, &hash, new.len(), create.len(), &delete);
    let status = status(
        deploy,
        &active,
        &new,
        replicas,
        unavailable,
        min_ready,
        &rs_name,
        now,
    );
    let requeue_after = requeue_after(&active, min_ready, now);
    DeploymentPlan {
        create,
        delete: delete.iter().map(|p| name_of(p)).collect(),
        status,
        annotations: revision_annotations(deploy, &hash),
        events,
        requeue_after,
    }
}

/// The `ScalingReplicaSet` Event messages for one reconcile, worded as upstream's.
fn scale_events(
    deploy: &Deployment,
    rs_name: &str,
    hash: &str,
    new: usize,
    created: usize,
    delete: &[&Pod],
) -> Vec<String> {
    let mut events = Vec::new();
    if created > 0 {
        events.push(format!(
            "Scaled up replica set {rs_name} to {}",
            new + created
        ));
    }
    let new_deleted = delete.iter().filter(|p| pod_hash(p) == Some(hash)).count();
    if new_deleted > 0 {
        events.push(format!(
            "Scaled down replica set {rs_name} to {}",
            new - new_deleted
        ));
    }
    if delete.len() > new_deleted {
        events.push(format!(
            "Scaled down old replica sets of {} by {}",
            name(deploy),
            delete.len() - new_deleted
        ));
    }
    events
}

/// When to look again: the first moment a Ready pod passes `minReadySeconds` and counts
/// as available.
fn requeue_after(active: &[&Pod], min_ready: Duration, now: Timestamp) -> Option<Duration> {
    active
        .iter()
        .filter(|p| is_ready(p) && !is_available(p, min_ready, now))
        .filter_map(|p| ready_since(p))
        .map(|since| {
            let left = since.as_second() + min_ready.as_secs() as i64 - now.as_second();
            Duration::from_secs(left.max(0) as u64 + 1)
        })
        .min()
}

/// Old pods a rolling update may delete now (upstream `reconcileOldReplicaSets`): first
/// unavailable old pods, then available ones while enough pods stay available.
fn old_to_delete<'a>(
    new: &[&'a Pod],
    old: &[&'a Pod],
    replicas: i32,
    max_unavailable: i32,
    available: &dyn Fn(&&Pod) -> bool,
) -> Vec<&'a Pod> {
    let total = (new.len() + old.len()) as i32;
    let min_available = replicas - max_unavailable;
    let new_unavailable = new.iter().filter(|p| !available(p)).count() as i32;
    let max_scaled_down = total - min_available - new_unavailable;
    if max_scaled_down <= 0 {
        return Vec::new();
    }
    let ordered = in_deletion_order(old);
    let mut out: Vec<&Pod> = ordered
        .iter()
        .copied()
        .filter(|p| !available(p))
        .take(max_scaled_down as usize)
        .collect();
    let all_available = new.iter().chain(old).filter(|p| available(p)).count() as i32;
    let more = (all_available - min_available).max(0) as usize;
    out.extend(
        ordered
            .iter()
            .copied()
            .filter(|p| available(p))
            .take(more.min(max_scaled_down as usize - out.len())),
    );
    out
}

/// maxSurge (rounded up) and maxUnavailable (rounded down) for `replicas`; both zero
/// makes maxUnavailable 1 (upstream `ResolveFenceposts`).
pub fn fenceposts(spec: &k8s_openapi::api::apps::v1::DeploymentSpec, replicas: i32) -> (i32, i32) {
    let ru = spec
        .strategy
        .as_ref()
        .and_then(|s| s.rolling_update.as_ref());
    let quarter = IntOrString::String("25%".to_string());
    let surge = ru.and_then(|r| r.max_surge.as_ref()).unwrap_or(&quarter);
    let unavailable = ru
        .and_then(|r| r.max_unavailable.as_ref())
        .unwrap_or(&quarter);
    let surge = scaled(surge, replicas, true);
    let mut unavailable = scaled(unavailable, replicas, false);
    if surge == 0 && unavailable == 0 {
        unavailable = 1;
    }
    (surge, unavailable.min(replicas))
}

fn scaled(v: &IntOrString, total: i32, round_up: bool) -> i32 {
    match v {
        IntOrString::Int(n) => *n,
        IntOrString::String(s) => {
            let pct: i64 = s.trim_end_matches('%').parse().unwrap_or(25);
            let x = pct * i64::from(total);
            (if round_up { (x + 99) / 100 } else { x / 100 }) as i32
        }
    }
}

/// Pods sorted the way upstream's ReplicaSet controller picks victims: unscheduled before
/// scheduled, Pending before Running, not ready before ready, ready for less time first,
/// more restarts first, newer first.
pub fn in_deletion_order<'a>(pods: &[&'a Pod]) -> Vec<&'a Pod> {
    let mut v = pods.to_vec();
    v.sort_by(|a, b| deletion_rank(a, b).then_with(|| name_of(a).cmp(&name_of(b))));
    v
}

fn deletion_rank(a: &Pod, b: &Pod) -> Ordering {
    let scheduled = |p: &Pod| p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some();
    let phase = |p: &Pod| match p.status.as_ref().and_then(|s| s.phase.as_deref()) {
        Some("Pending") | None => 0,
        Some("Unknown") => 1,
        _ => 2,
    };
    let created = |p: &Pod| p.metadata.creation_timestamp.as_ref().map(|t| t.0);
    scheduled(a)
        .cmp(&scheduled(b))
        .then_with(|| phase(a).cmp(&phase(b)))
        .then_with(|| is_ready(a).cmp(&is_ready(b)))
        // Ready more recently (later transition) goes first.
        .then_with(|| ready_since(b).cmp(&ready_since(a)))
        .then_with(|| restart_count(b).cmp(&restart_count(a)))
        // Newer (later creation) goes first.
        .then_with(|| created(b).cmp(&created(a)))
}

/// Ready for at least `min_ready` (upstream `IsPodAvailable`).
pub fn is_available(pod: &Pod, min_ready: Duration, now: Timestamp) -> bool {
    if !is_ready(pod) {
        return false;
    }
    if min_ready.is_zero() {
        return true;
    }
    ready_since(pod)
        .is_some_and(|since| since.as_second() + min_ready.as_secs() as i64 <= now.as_second())
}

/// A pod made from the template: labels plus `pod-template-hash`, owned by the Deployment.
fn new_pod(deploy: &Deployment, template: &PodTemplateSpec, hash: &str, suffix: &str) -> Pod {
    let tm = template.metadata.clone().unwrap_or_default();
    let mut labels = tm.labels.unwrap_or_default();
    labels.insert(TEMPLATE_HASH_LABEL.to_string(), hash.to_string());
    Pod {
        metadata: ObjectMeta {
            name: Some(format!("{}-{hash}-{suffix}", name(deploy))),
            namespace: deploy.metadata.namespace.clone(),
            labels: Some(labels),
            annotations: tm.annotations,
            owner_references: Some(vec![OwnerReference {
                api_version: "apps/v1".to_string(),
                kind: "Deployment".to_string(),
                name: name(deploy).to_string(),
                uid: deploy.metadata.uid.clone().unwrap_or_default(),
                controller: Some(true),
                block_owner_deletion: Some(true),
            }]),
            ..ObjectMeta::default()
        },
        spec: template.spec.clone(),
        status: None,
    }
}

#[allow(clippy::too_many_arguments)]
fn status(
    deploy: &Deployment,
    active: &[&Pod],
    new: &[&Pod],
    replicas: i32,
    max_unavailable: i32,
    min_ready: Duration,
    rs_name: &str,
    now: Timestamp,
) -> DeploymentStatus {
    let count = |it: &mut dyn Iterator<Item = &&Pod>| it.count() as i32;
    let ready = count(&mut active.iter().filter(|p| is_ready(p)));
    let available = count(&mut active.iter().filter(|p| is_available(p, min_ready, now)));
    let updated = new.len() as i32;
    let total = active.len() as i32;
    let previous = deploy.status.clone().unwrap_or_default();
    let mut conditions = previous.conditions.unwrap_or_default();
    if available >= replicas - max_unavailable {
        set_condition(
            &mut conditions,
            "Available",
            true,
            "MinimumReplicasAvailable",
            "Deployment has minimum availability.",
            now,
        );
    } else {
        set_condition(
            &mut conditions,
            "Available",
            false,
            "MinimumReplicasUnavailable",
            "Deployment does not have minimum availability.",
            now,
        );
    }
    let complete = updated == replicas && total == replicas && available == replicas;
    if complete {
        set_condition(
            &mut conditions,
            "Progressing",
            true,
            "NewReplicaSetAvailable",
            &format!("ReplicaSet \"{rs_name}\" has successfully progressed."),
            now,
        );
    } else {
        set_condition(
            &mut conditions,
            "Progressing",
            true,
            "ReplicaSetUpdated",
            &format!("ReplicaSet \"{rs_name}\" is progressing."),
            now,
        );
    }
    conditions.sort_by_key(|c| {
        if c.type_.as_deref() == Some("Available") {
            0
        } else {
            1
        }
    });
    DeploymentStatus {
        observed_generation: deploy.metadata.generation,
        replicas: Some(total),
        updated_replicas: Some(updated),
        ready_replicas: Some(ready),
        available_replicas: Some(available),
        unavailable_replicas: Some((replicas - available).max(0)),
        conditions: Some(conditions),
        ..DeploymentStatus::default()
    }
}

/// Sets a condition, keeping `lastTransitionTime` while the status stays and both times
/// while nothing changes (so an unchanged status is not rewritten).
fn set_condition(
    conditions: &mut Vec<DeploymentCondition>,
    type_: &str,
    ok: bool,
    reason: &str,
    message: &str,
    now: Timestamp,
) {
    let status = if ok { "True" } else { "False" };
    let at = Some(Time(now));
    match conditions
        .iter_mut()
        .find(|c| c.type_.as_deref() == Some(type_))
    {
        Some(c) if c.status.as_deref() == Some(status) => {
            if c.reason.as_deref() != Some(reason) || c.message.as_deref() != Some(message) {
                c.reason = Some(reason.to_string());
                c.message = Some(message.to_string());
                c.last_update_time = at;
            }
        }
        Some(c) => {
            *c = condition(type_, status, reason, message, now);
        }
        None => conditions.push(condition(type_, status, reason, message, now)),
    }
}

fn condition(
    type_: &str,
    status: &str,
    reason: &str,
    message: &str,
    now: Timestamp,
) -> DeploymentCondition {
    DeploymentCondition {
        type_: Some(type_.to_string()),
        status: Some(status.to_string()),
        reason: Some(reason.to_string()),
        message: Some(message.to_string()),
        last_transition_time: Some(Time(now)),
        last_update_time: Some(Time(now)),
    }
}

/// The revision annotations for template `hash`: unchanged → `None`; a new template bumps
/// the revision.
fn revision_annotations(deploy: &Deployment, hash: &str) -> Option<BTreeMap<String, String>> {
    let annotations = deploy.metadata.annotations.clone().unwrap_or_default();
    if annotations.get(HASH_ANNOTATION).map(String::as_str) == Some(hash) {
        return None;
    }
    let revision: u64 = annotations
        .get(REVISION_ANNOTATION)
        .and_then(|r| r.parse().ok())
        .unwrap_or(0);
    let mut out = annotations;
    out.insert(REVISION_ANNOTATION.to_string(), (revision + 1).to_string());
    out.insert(HASH_ANNOTATION.to_string(), hash.to_string());
    Some(out)
}

fn pod_hash(pod: &Pod) -> Option<&str> {
    pod.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(TEMPLATE_HASH_LABEL))
        .map(String::as_str)
}

fn name(deploy: &Deployment) -> &str {
    deploy.metadata.name.as_deref().unwrap_or_default()
}

fn name_of(pod: &Pod) -> String {
    pod.metadata.name.clone().unwrap_or_default()
}

#[cfg(test)]
#[path = "deployment_tests.rs"]
mod tests;
