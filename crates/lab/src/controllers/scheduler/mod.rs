//! The scheduler: binds pods without `spec.nodeName` to a node, mirroring upstream
//! `pkg/scheduler` (`schedule_one.go`: filter, then score, then bind; `framework/types.go`
//! `FitError` for the message). On every change of pods or nodes, one pass:
//!
//! 1. Snapshot the nodes and the pods bound to them (`plugins::Snapshot`).
//! 2. Take the pending pods (no `nodeName`, not being deleted, `schedulerName` ours),
//!    oldest first.
//! 3. For each: run the filters on every node (`plugins::filter`). No node fits: the pod
//!    gets `PodScheduled=False` reason `Unschedulable` and a `FailedScheduling` Event with
//!    upstream's message (`0/3 nodes are available: 1 node(s) were unschedulable, 2 Too
//!    many pods. preemption: ...`), written again only when the message changes.
//! 4. Otherwise score the nodes that fit (LeastAllocated + 2 × PodTopologySpread,
//!    normalised to 0..=100 each) and bind to the best, a random one among equals, as
//!    upstream's `selectHost` does. The binding ([`bind`]) is what `POST
//!    pods/{name}/binding` does too; the snapshot then counts the pod on its node, so one
//!    pass spreads a whole Deployment.
//!
//! [`decide`] is the pure part; [`run`] the loop. Started by `controllers::runtime::start`.

pub mod plugins;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::events;
use super::runtime::{Wake, to_value, typed, write_status};
use crate::store::kinds::kind;
use crate::store::{Store, StoreError, WriteMode};
use plugins::{Failure, NodeInfo, Snapshot};

/// The scheduler's name, on Events and in `spec.schedulerName`.
pub const SCHEDULER: &str = "default-scheduler";
/// Longest wait without a change.
const RESYNC: Duration = Duration::from_secs(1);
/// Least time between passes under a burst.
const BATCH: Duration = Duration::from_millis(20);

/// What to do with one pending pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Bind it to this node.
    Bind(String),
    /// No node fits: the FailedScheduling message.
    Unschedulable(String),
}

/// Filters and scores every node for `pod` (pure; `pick` chooses among equal best scores).
pub fn decide(pod: &Pod, snap: &Snapshot, pick: &mut dyn FnMut(usize) -> usize) -> Decision {
    let mut failures: Vec<Vec<Failure>> = Vec::new();
    let mut feasible: Vec<&NodeInfo> = Vec::new();
    for node in &snap.nodes {
        let f = plugins::filter(pod, node, snap);
        if f.is_empty() {
            feasible.push(node);
        } else {
            failures.push(f);
        }
    }
    if feasible.is_empty() {
        return Decision::Unschedulable(fit_error(snap.nodes.len(), &failures));
    }
    let spread: Vec<f64> = feasible
        .iter()
        .map(|n| plugins::spread_raw(pod, n, snap))
        .collect();
    let (lo, hi) = spread
        .iter()
        .fold((f64::MAX, f64::MIN), |(lo, hi), s| (lo.min(*s), hi.max(*s)));
    let scores: Vec<i64> = feasible
        .iter()
        .zip(&spread)
        .map(|(n, s)| {
            let spread_score = if hi > lo {
                (100.0 * (hi - s) / (hi - lo)) as i64
            } else {
                100
            };
            plugins::least_allocated(pod, n) + 2 * spread_score
        })
        .collect();
    let best = scores.iter().copied().max().unwrap_or(0);
    let top: Vec<&NodeInfo> = feasible
        .iter()
        .zip(&scores)
        .filter(|(_, s)| **s == best)
        .map(|(n, _)| *n)
        .collect();
    let chosen = top[pick(top.len()).min(top.len() - 1)];
    Decision::Bind(chosen.name.clone())
}

/// Upstream's FitError text: a histogram of reasons, sorted, then the preemption half.
pub fn fit_error(total: usize, failures: &[Vec<Failure>]) -> String {
    let mut reasons: BTreeMap<&str, usize> = BTreeMap::new();
    let (mut resolvable, mut unresolvable) = (0, 0);
    for f in failures {
        for r in f {
            *reasons.entry(r.reason()).or_default() += 1;
        }
        if f.iter().any(|r| matches!(r, Failure::Unresolvable(_))) {
            unresolvable += 1;
        } else {
            resolvable += 1;
        }
    }
    let mut parts: Vec<String> = reasons.iter().map(|(r, n)| format!("{n} {r}")).collect();
    parts.sort();
    let mut preemption = Vec::new();
    if resolvable > 0 {
        preemption.push(format!(
            "{resolvable} No preemption victims found for incoming pod"
        ));
    }
    if unresolvable > 0 {
        preemption.push(format!(
            "{unresolvable} Preemption is not helpful for scheduling"
        ));
    }
    preemption.sort();
    format!(
        "0/{total} nodes are available: {}. preemption: 0/{total} nodes are available: {}.",
        parts.join(", "),
        preemption.join(", ")
    )
}

/// Builds the snapshot from the store's nodes and pods.
pub fn snapshot(nodes: &[Node], pods: &[Pod]) -> Snapshot {
    let mut infos: Vec<NodeInfo> = nodes.iter().map(NodeInfo::new).collect();
    infos.sort_by(|a, b| a.name.cmp(&b.name));
    for p in pods {
        let on = p.spec.as_ref().and_then(|s| s.node_name.as_deref());
        if let Some(info) = infos.iter_mut().find(|n| Some(n.name.as_str()) == on)
            && !finished(p)
        {
            info.pods.push(p.clone());
        }
    }
    Snapshot { nodes: infos }
}

/// Whether the pod ran to its end: it holds no room on its node.
fn finished(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

/// The scheduler loop.
pub async fn run(store: Arc<Store>, shutdown: CancellationToken) {
    let wake = Wake::on(&store, &["pods", "nodes"], &shutdown);
    loop {
        pass(&store);
        tokio::select! {
            // A pod or node changed (bursts folded into one pass).
            _ = wake.changed() => tokio::time::sleep(BATCH).await,
            // Safety net.
            _ = tokio::time::sleep(RESYNC) => {}
            // The lab stops.
            _ = shutdown.cancelled() => return,
        }
    }
}

/// One scheduling pass.
pub fn pass(store: &Store) {
    let pods = store.list("pods", None).items;
    // Most wake-ups are pod status writes with nothing to bind: look before paying for
    // typed copies of every pod and node.
    let unbound = |p: &serde_json::Value| {
        p.pointer("/spec/nodeName")
            .is_none_or(serde_json::Value::is_null)
            && p.pointer("/metadata/deletionTimestamp").is_none()
    };
    if !pods.iter().any(unbound) {
        return;
    }
    let nodes: Vec<Node> = typed(store.list("nodes", None).items);
    let pods: Vec<Pod> = typed(pods);
    let mut snap = snapshot(&nodes, &pods);
    let mut pending: Vec<&Pod> = pods
        .iter()
        .filter(|p| {
            let spec = p.spec.as_ref();
            spec.is_some_and(|s| s.node_name.is_none())
                && spec
                    .and_then(|s| s.scheduler_name.as_deref())
                    .is_none_or(|s| s == SCHEDULER)
                && p.metadata.deletion_timestamp.is_none()
        })
        .collect();
    pending.sort_by(|a, b| {
        let created = |p: &Pod| p.metadata.creation_timestamp.as_ref().map(|t| t.0);
        created(a)
            .cmp(&created(b))
            .then_with(|| a.metadata.namespace.cmp(&b.metadata.namespace))
            .then_with(|| a.metadata.name.cmp(&b.metadata.name))
    });
    for pod in pending {
        let ns = pod.metadata.namespace.as_deref().unwrap_or_default();
        let name = pod.metadata.name.as_deref().unwrap_or_default();
        match decide(pod, &snap, &mut |n| rand::random_range(0..n)) {
            Decision::Bind(node) => {
                if bind(store, ns, name, &node).is_ok()
                    && let Some(info) = snap.nodes.iter_mut().find(|n| n.name == node)
                {
                    let mut bound = pod.clone();
                    if let Some(s) = bound.spec.as_mut() {
                        s.node_name = Some(node.clone());
                    }
                    info.pods.push(bound);
                }
            }
            Decision::Unschedulable(message) => unschedulable(store, pod, &message),
        }
    }
}

/// Why a binding was refused.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    /// The pod does not exist.
    #[error("pods \"{0}\" not found")]
    NotFound(String),
    /// The pod is bound already.
    #[error("pod {pod} is already assigned to node \"{node}\"")]
    Assigned {
        /// The pod.
        pod: String,
        /// Its node.
        node: String,
    },
    /// The store refused the write.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Binds pod `ns/name` to `node` (what a core/v1 Binding does): sets `spec.nodeName` and
/// records a `Scheduled` Event. A pod already bound is refused, as upstream's
/// `assignPod` refuses it.
pub fn bind(store: &Store, ns: &str, name: &str, node: &str) -> Result<(), BindError> {
    let mut live = store
        .get("pods", ns, name)
        .ok_or_else(|| BindError::NotFound(name.to_string()))?;
    if let Some(on) = live.pointer("/spec/nodeName").and_then(|n| n.as_str()) {
        return Err(BindError::Assigned {
            pod: name.to_string(),
            node: on.to_string(),
        });
    }
    live["spec"]["nodeName"] = json!(node);
    let bound = store.update(kind("pods"), ns, name, live, WriteMode::Main)?;
    events::record(
        store,
        &bound,
        "Normal",
        "Scheduled",
        &format!("Successfully assigned {ns}/{name} to {node}"),
        SCHEDULER,
    );
    Ok(())
}

/// Marks a pod no node takes: `PodScheduled=False`, reason `Unschedulable`, and a
/// `FailedScheduling` Event — again only when the message changes.
fn unschedulable(store: &Store, pod: &Pod, message: &str) {
    let already = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| {
            c.iter().any(|c| {
                c.type_ == "PodScheduled"
                    && c.status == "False"
                    && c.message.as_deref() == Some(message)
            })
        });
    if already {
        return;
    }
    let ns = pod.metadata.namespace.as_deref().unwrap_or_default();
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let status = json!({
        "phase": "Pending",
        "qosClass": "BestEffort",
        "conditions": [{
            "type": "PodScheduled",
            "status": "False",
            "reason": "Unschedulable",
            "message": message,
            "lastTransitionTime": now,
        }],
    });
    write_status(store, "pods", ns, name, status);
    events::record(
        store,
        &to_value(pod),
        "Warning",
        "FailedScheduling",
        message,
        SCHEDULER,
    );
}

#[cfg(test)]
mod tests;
