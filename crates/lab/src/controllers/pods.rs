//! Small facts about pods that several controllers read: active, ready, since when,
//! restarts, the lab's listening port. Pure helpers over k8s-openapi types.

use k8s_openapi::api::core::v1::Pod;
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
