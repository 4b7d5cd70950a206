//! The node lifecycle controller with taint-based eviction, mirroring upstream
//! `pkg/controller/nodelifecycle/node_lifecycle_controller.go` (`monitorNodeHealth`,
//! `tryUpdateNodeHealth`, `doNoExecuteTaintingPass`, `MarkPodsNotReady`),
//! `pkg/controller/tainteviction/taint_eviction.go` and the orphan half of
//! `pkg/controller/podgc`. Every monitor period it:
//!
//! 1. Reads each node's last heartbeat: the later of its Lease's `renewTime` and its Ready
//!    condition's `lastHeartbeatTime`.
//! 2. A node silent for longer than the grace period (`--node-monitor-grace-period`) gets
//!    every condition set to `Unknown`, reason `NodeStatusUnknown`, "Kubelet stopped
//!    posting node status.", and its pods' Ready condition set to False (so Endpoints drop
//!    them at once).
//! 3. Taints follow the conditions ([`desired_taints`]): Ready=Unknown →
//!    `node.kubernetes.io/unreachable` NoExecute and NoSchedule; Ready=False →
//!    `node.kubernetes.io/not-ready` likewise; `spec.unschedulable` →
//!    `node.kubernetes.io/unschedulable:NoSchedule`. A node that reports again loses them.
//! 4. Each pod on a node with NoExecute taints is deleted when its tolerations run out
//!    ([`eviction_due`]): at once if a taint is not tolerated, after the least
//!    `tolerationSeconds` counted from the taint's `timeAdded`, never if tolerated without
//!    a limit. A `TaintManagerEviction` Event says so.
//! 5. Pods bound to a node that no longer exists are deleted at once.
//!
//! [`desired_taints`] and [`eviction_due`] are pure (time passed in); [`run`] is the loop,
//! started by `controllers::cluster_start`.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod, Taint};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::events;
use super::runtime::{Wake, to_value, typed, write_status};
use super::taints::{NOT_READY, UNREACHABLE, UNSCHEDULABLE, toleration_time};
use crate::nodes::LEASE_NAMESPACE;
use crate::store::kinds::kind;
use crate::store::{DeleteOptions, Store, WriteMode};

/// The controller's settings.
#[derive(Debug, Clone, Copy)]
pub struct Lifecycle {
    /// How long a node may be silent.
    pub grace: Duration,
    /// How often nodes are looked at (upstream `--node-monitor-period`, 5 s).
    pub period: Duration,
}

/// When a pod on tainted node must go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Eviction {
    /// No NoExecute taint, or every one tolerated forever.
    Never,
    /// At this time (now or in the past: at once).
    At(Timestamp),
}

/// The node's taints as they should be: the user's own kept, the lifecycle ones following
/// the Ready condition and the cordon. `now` stamps a NoExecute taint added now.
pub fn desired_taints(node: &Node, now: Timestamp) -> Vec<Taint> {
    let current = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default();
    let managed = |k: &str| matches!(k, NOT_READY | UNREACHABLE | UNSCHEDULABLE);
    let mut out: Vec<Taint> = current
        .iter()
        .filter(|t| !managed(&t.key))
        .cloned()
        .collect();
    let ready = ready_status(node);
    let key = match ready.as_deref() {
        Some("True") => None,
        Some("False") => Some(NOT_READY),
        _ => Some(UNREACHABLE),
    };
    let keep_or = |key: &str, effect: &str| {
        current
            .iter()
            .find(|t| t.key == key && t.effect == effect)
            .cloned()
            .unwrap_or_else(|| Taint {
                key: key.to_string(),
                effect: effect.to_string(),
                time_added: (effect == "NoExecute").then_some(Time(now)),
                value: None,
            })
    };
    if let Some(key) = key {
        out.push(keep_or(key, "NoSchedule"));
        out.push(keep_or(key, "NoExecute"));
    }
    if node.spec.as_ref().and_then(|s| s.unschedulable) == Some(true) {
        out.push(keep_or(UNSCHEDULABLE, "NoSchedule"));
    }
    out
}

fn ready_status(node: &Node) -> Option<String> {
    node.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| c.status.clone())
}

/// When the pod must leave a node with `taints`, given its tolerations.
pub fn eviction_due(pod: &Pod, taints: &[Taint], now: Timestamp) -> Eviction {
    let no_execute: Vec<&Taint> = taints.iter().filter(|t| t.effect == "NoExecute").collect();
    if no_execute.is_empty() {
        return Eviction::Never;
    }
    let tolerations = pod
        .spec
        .as_ref()
        .and_then(|s| s.tolerations.clone())
        .unwrap_or_default();
    match toleration_time(&no_execute, &tolerations) {
        None => Eviction::At(now),
        Some(None) => Eviction::Never,
        Some(Some(secs)) => {
            let since = no_execute
                .iter()
                .filter_map(|t| t.time_added.as_ref().map(|t| t.0))
                .min()
                .unwrap_or(now);
            let at = since
                .checked_add(k8s_openapi::jiff::SignedDuration::from_secs(secs))
                .unwrap_or(now);
            Eviction::At(at)
        }
    }
}

/// The node's last sign of life: its Lease's renewal or its Ready heartbeat; for a node
/// that never reported, its creation (upstream's first probe timestamp).
pub fn last_heartbeat(node: &Node, lease: Option<&Lease>) -> Option<Timestamp> {
    let renew = lease
        .and_then(|l| l.spec.as_ref())
        .and_then(|s| s.renew_time.as_ref())
        .map(|t| t.0);
    let beat = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
        .and_then(|c| c.last_heartbeat_time.as_ref())
        .map(|t| t.0);
    let created = node.metadata.creation_timestamp.as_ref().map(|t| t.0);
    renew.max(beat).or(created)
}

/// The controller loop.
pub async fn run(store: Arc<Store>, lifecycle: Lifecycle, shutdown: CancellationToken) {
    // Node changes (a cordon, a node reporting again) are acted on at once; silence is
    // noticed on the tick.
    let wake = Wake::on(&store, &["nodes"], &shutdown);
    let mut tick = tokio::time::interval(lifecycle.period);
    loop {
        pass(&store, &lifecycle, Timestamp::now());
        tokio::select! {
            // Time for a pass.
            _ = tick.tick() => {}
            // A node changed.
            _ = wake.changed() => {}
            // The lab stops.
            _ = shutdown.cancelled() => return,
        }
    }
}

/// One pass over every node and the pods on it.
pub fn pass(store: &Store, lifecycle: &Lifecycle, now: Timestamp) {
    let nodes: Vec<Node> = typed(store.list("nodes", None).items);
    let leases: Vec<Lease> = typed(store.list("leases", Some(LEASE_NAMESPACE)).items);
    let pods: Vec<Arc<Pod>> = store.list_parsed("pods");
    for node in &nodes {
        let name = node.metadata.name.clone().unwrap_or_default();
        let lease = leases
            .iter()
            .find(|l| l.metadata.name.as_deref() == Some(&name));
        let on_node: Vec<&Pod> = pods
            .iter()
            .map(|p| &**p)
            .filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(&name))
            .collect();
        let silent = last_heartbeat(node, lease)
            .is_none_or(|t| now.duration_since(t).as_secs_f64() > lifecycle.grace.as_secs_f64());
        let mut node = node.clone();
        if silent && ready_status(&node).as_deref() != Some("Unknown") {
            mark_unknown(store, &mut node, now);
            for p in &on_node {
                mark_pod_not_ready(store, p, now);
            }
        }
        let taints = sync_taints(store, &node, now);
        for p in &on_node {
            evict_if_due(store, p, &taints, now);
        }
    }
    // Pods bound to a node that is gone.
    for p in &pods {
        let Some(on) = p.spec.as_ref().and_then(|s| s.node_name.as_deref()) else {
            continue;
        };
        if !nodes.iter().any(|n| n.metadata.name.as_deref() == Some(on)) {
            let ns = p.metadata.namespace.as_deref().unwrap_or_default();
            let name = p.metadata.name.as_deref().unwrap_or_default();
            let opts = DeleteOptions {
                grace_period: Some(0),
                ..DeleteOptions::default()
            };
            let _ = store.delete(kind("pods"), ns, name, &opts);
        }
    }
}

/// Sets every condition of a silent node to Unknown (upstream `tryUpdateNodeHealth`).
/// The node's conditions in `node` are updated too, for the rest of the pass.
fn mark_unknown(store: &Store, node: &mut Node, now: Timestamp) {
    let name = node.metadata.name.clone().unwrap_or_default();
    let Some(status) = node.status.as_mut() else {
        return;
    };
    for c in status.conditions.iter_mut().flatten() {
        if c.status != "Unknown" {
            c.last_transition_time = Some(Time(now));
        }
        c.status = "Unknown".into();
        c.reason = Some("NodeStatusUnknown".into());
        c.message = Some("Kubelet stopped posting node status.".into());
    }
    // With the live resourceVersion: if the node just reported, its report wins.
    if let Some(mut live) = store.get("nodes", "", &name) {
        live["status"]["conditions"] = to_value(&status.conditions);
        let _ = store.update(kind("nodes"), "", &name, live, WriteMode::Status);
    }
}

/// Sets the pod's Ready (and ContainersReady) condition to False (upstream
/// `MarkPodsNotReady`).
fn mark_pod_not_ready(store: &Store, pod: &Pod, now: Timestamp) {
    let Some(mut status) = pod.status.clone() else {
        return;
    };
    let mut changed = false;
    for c in status.conditions.iter_mut().flatten() {
        if c.type_ == "Ready" && c.status != "False" {
            c.status = "False".into();
            c.last_transition_time = Some(Time(now));
            changed = true;
        }
    }
    if changed {
        let ns = pod.metadata.namespace.as_deref().unwrap_or_default();
        let name = pod.metadata.name.as_deref().unwrap_or_default();
        write_status(store, "pods", ns, name, to_value(&status));
    }
}

/// Writes the node's taints when they differ from [`desired_taints`]; returns them.
fn sync_taints(store: &Store, node: &Node, now: Timestamp) -> Vec<Taint> {
    let want = desired_taints(node, now);
    let have = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default();
    if want == have {
        return want;
    }
    let name = node.metadata.name.as_deref().unwrap_or_default();
    if let Some(mut live) = store.get("nodes", "", name) {
        live["spec"]["taints"] = if want.is_empty() {
            Value::Null
        } else {
            to_value(&want)
        };
        if let Some(spec) = live["spec"].as_object_mut() {
            spec.retain(|_, v| !v.is_null());
        }
        // With the live resourceVersion: a concurrent write wins, the next pass redoes this.
        let _ = store.update(kind("nodes"), "", name, live, WriteMode::Main);
    }
    want
}

fn evict_if_due(store: &Store, pod: &Pod, taints: &[Taint], now: Timestamp) {
    if pod.metadata.deletion_timestamp.is_some() {
        return;
    }
    let Eviction::At(at) = eviction_due(pod, taints, now) else {
        return;
    };
    if at > now {
        return;
    }
    let ns = pod.metadata.namespace.as_deref().unwrap_or_default();
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    events::record(
        store,
        &to_value(pod),
        "Normal",
        "TaintManagerEviction",
        &format!("Marking for deletion Pod {ns}/{name}"),
        "taint-eviction-controller",
    );
    let _ = store.delete(kind("pods"), ns, name, &DeleteOptions::default());
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(ready: &str, unschedulable: bool, taints: Value) -> Node {
        serde_json::from_value(json!({
            "metadata": {"name": "n"},
            "spec": {"unschedulable": unschedulable, "taints": taints},
            "status": {"conditions": [{"type": "Ready", "status": ready}]},
        }))
        .unwrap()
    }

    fn keys(t: &[Taint]) -> Vec<String> {
        t.iter()
            .map(|t| format!("{}:{}", t.key, t.effect))
            .collect()
    }

    #[test]
    fn an_unknown_node_is_tainted_unreachable_and_a_ready_one_is_not() {
        let now = Timestamp::now();
        let own = json!([{"key": "dedicated", "effect": "NoSchedule"}]);
        let t = desired_taints(&node("Unknown", false, own.clone()), now);
        assert_eq!(
            keys(&t),
            [
                "dedicated:NoSchedule",
                "node.kubernetes.io/unreachable:NoSchedule",
                "node.kubernetes.io/unreachable:NoExecute"
            ]
        );
        assert_eq!(t[2].time_added, Some(Time(now)));
        let healed = node("True", true, to_value(&t));
        assert_eq!(
            keys(&desired_taints(&healed, now)),
            [
                "dedicated:NoSchedule",
                "node.kubernetes.io/unschedulable:NoSchedule"
            ]
        );
    }

    #[test]
    fn a_pod_goes_when_its_toleration_seconds_run_out() {
        let now = Timestamp::now();
        let added = now
            .checked_sub(k8s_openapi::jiff::SignedDuration::from_secs(2))
            .unwrap();
        let taint = Taint {
            key: UNREACHABLE.into(),
            effect: "NoExecute".into(),
            time_added: Some(Time(added)),
            value: None,
        };
        let pod = |tols: Value| -> Pod {
            serde_json::from_value(json!({"spec": {"containers": [], "tolerations": tols}}))
                .unwrap()
        };
        let three = pod(json!([{"key": UNREACHABLE, "operator": "Exists",
                                 "effect": "NoExecute", "tolerationSeconds": 3}]));
        let due = added
            .checked_add(k8s_openapi::jiff::SignedDuration::from_secs(3))
            .unwrap();
        assert_eq!(
            eviction_due(&three, std::slice::from_ref(&taint), now),
            Eviction::At(due)
        );
        assert_eq!(
            eviction_due(&pod(json!([])), std::slice::from_ref(&taint), now),
            Eviction::At(now)
        );
        let forever = pod(json!([{"operator": "Exists"}]));
        assert_eq!(eviction_due(&forever, &[taint], now), Eviction::Never);
    }
}
