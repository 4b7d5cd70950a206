//! Small facts about pods that several controllers read: active, ready, since when,
//! restarts, the lab's listening port, available after `minReadySeconds`, the order in
//! which surplus pods go, owners and selectors. Pure helpers over k8s-openapi types.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::jiff::Timestamp;

/// Pod annotation the kubelet sets to the port the pod's process listens on at its IP.
/// Lab-specific: a node's pods share its IP, so Endpoints and the proxy use this port
/// instead of the container port.
pub const PORT_ANNOTATION: &str = "resil.dev/port";

/// Not being deleted and not finished (upstream `IsPodActive`).
pub fn is_active(pod: &Pod) -> bool {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    pod.metadata.deletion_timestamp.is_none() && !matches!(phase, Some("Succeeded" | "Failed"))
}

/// Condition `Ready` is `True`.
pub fn is_ready(pod: &Pod) -> bool {
    ready_condition(pod).is_some_and(|c| c.status == "True")
}

/// When the pod last became ready (the Ready condition's transition time, if ready).
pub fn ready_since(pod: &Pod) -> Option<Timestamp> {
    ready_condition(pod)
        .filter(|c| c.status == "True")
        .and_then(|c| c.last_transition_time.as_ref())
        .map(|t| t.0)
}

/// Sum of container restarts.
pub fn restart_count(pod: &Pod) -> i32 {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .map(|cs| cs.iter().map(|c| c.restart_count).sum())
        .unwrap_or(0)
}

/// The port the pod's process listens on at its IP (annotation [`PORT_ANNOTATION`]).
pub fn lab_port(pod: &Pod) -> Option<u16> {
    pod.metadata
        .annotations
        .as_ref()?
        .get(PORT_ANNOTATION)?
        .parse()
        .ok()
}

fn ready_condition(pod: &Pod) -> Option<&k8s_openapi::api::core::v1::PodCondition> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")
}

/// Characters of generated names (upstream `rand.SafeEncodeString`: no vowels, no
/// look-alikes).
pub const SAFE_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// Five random characters of the safe alphabet (a generated name's suffix).
pub fn random_suffix() -> String {
    (0..5)
        .map(|_| SAFE_ALPHABET[rand::random_range(0..SAFE_ALPHABET.len())] as char)
        .collect()
}

/// The uid of the object's controller (the ownerReference with `controller: true`).
pub fn controller_of(meta: &ObjectMeta) -> Option<&str> {
    meta.owner_references
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true))
        .map(|o| o.uid.as_str())
}

/// Whether every `matchLabels` pair is among `labels` (an empty selector selects
/// nothing, as upstream's controllers treat it). `matchExpressions` are not evaluated.
pub fn selects(
    selector: &BTreeMap<String, String>,
    labels: Option<&BTreeMap<String, String>>,
) -> bool {
    !selector.is_empty()
        && selector
            .iter()
            .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
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

/// When to look again: the first moment a Ready pod passes `minReadySeconds` and counts
/// as available.
pub fn available_after(pods: &[&Pod], min_ready: Duration, now: Timestamp) -> Option<Duration> {
    pods.iter()
        .filter(|p| is_ready(p) && !is_available(p, min_ready, now))
        .filter_map(|p| ready_since(p))
        .map(|since| {
            let left = since.as_second() + min_ready.as_secs() as i64 - now.as_second();
            Duration::from_secs(left.max(0) as u64 + 1)
        })
        .min()
}

/// Pods sorted the way upstream's ReplicaSet controller picks victims
/// (`controller.ActivePods`): unscheduled before scheduled, Pending before Unknown before
/// Running, not ready before ready, ready for less time first, more restarts first, newer
/// first.
pub fn in_deletion_order<'a>(pods: &[&'a Pod]) -> Vec<&'a Pod> {
    let mut v = pods.to_vec();
    v.sort_by(|a, b| deletion_rank(a, b).then_with(|| a.metadata.name.cmp(&b.metadata.name)));
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
