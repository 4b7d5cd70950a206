//! The scheduler: binds pods without `spec.nodeName` to a node, mirroring upstream
//! `pkg/scheduler` (`schedule_one.go`: filter, then score, then bind; `framework/types.go`
//! `FitError` for the message; `eventhandlers.go`, `backend/queue/scheduling_queue.go` and
//! `backend/cache/cache.go` for what it keeps between pods). One pod at a time:
//!
//! 1. Watch events keep two things up to date (`event_handlers.rs`): the cache of nodes and
//!    the pods bound to them (`cache.rs`, read by the plugins as a `plugins::Snapshot`),
//!    and the scheduling queue of pods that need a node (`queue.rs`: no `nodeName`, not
//!    being deleted, `schedulerName` ours).
//! 2. Pop the oldest pod of the active queue and run the filters on every node
//!    (`plugins::filter_by`). No node fits: the pod gets `PodScheduled=False` reason
//!    `Unschedulable` and a `FailedScheduling` Event with upstream's message (`0/3 nodes
//!    are available: 1 node(s) were unschedulable, 2 Too many pods. preemption: ...`),
//!    written again only when the message changes, and is parked until a cluster event
//!    one of the rejecting plugins cares about (a node added or changed, a bound pod
//!    deleted, ...), or for at most `queue::MAX_UNSCHEDULABLE`. Nothing is retried in a
//!    loop: a lab with a pod no node takes stays quiet.
//! 3. Otherwise score the nodes that fit (LeastAllocated + 2 × PodTopologySpread,
//!    normalised to 0..=100 each) and bind to the best, a random one among equals, as
//!    upstream's `selectHost` does. The binding ([`bind`]) is what `POST
//!    pods/{name}/binding` does too; the cache then counts the pod on its node at once
//!    (upstream's assume), so consecutive pods of a Deployment spread.
//!
//! The cost of one pod is the filters and scores over the nodes, each reading sums the
//! cache keeps (requests per node, pods per topology domain counted once per pod), not a
//! copy of every pod and node.
//!
//! [`decide`] is the pure part; [`run`] the loop. Started by `controllers::runtime::start`.

mod cache;
mod event_handlers;
pub mod plugins;
pub mod queue;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::events;
use super::runtime::{to_value, write_status};
use crate::store::kinds::kind;
use crate::store::{Ended, Store, StoreError, Subscription, WatchStart, WriteMode};
use event_handlers::Scheduler;
use plugins::{Failure, NodeInfo, Plugins, Snapshot};

/// The scheduler's name, on Events and in `spec.schedulerName`.
pub const SCHEDULER: &str = "default-scheduler";

/// Longest the loop schedules pods without yielding to the rest of the lab.
const SLICE: Duration = Duration::from_millis(50);

/// What to do with one pending pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Bind it to this node.
    Bind(String),
    /// No node fits: the FailedScheduling message.
    Unschedulable(String),
}

/// Filters and scores every node for `pod` (pure; `pick` chooses among equal best scores).
#[cfg(test)]
pub fn decide(pod: &Pod, snap: &Snapshot, pick: &mut dyn FnMut(usize) -> usize) -> Decision {
    attempt(pod, snap, pick).0
}

/// [`decide`], with the plugins that rejected a node (empty when the pod is bound).
pub fn attempt(
    pod: &Pod,
    snap: &Snapshot,
    pick: &mut dyn FnMut(usize) -> usize,
) -> (Decision, Plugins) {
    let mut failures: Vec<Vec<Failure>> = Vec::new();
    let mut rejected_by = Plugins::default();
    let mut feasible: Vec<&NodeInfo> = Vec::new();
    for node in &snap.nodes {
        match plugins::filter_by(pod, node, snap) {
            None => feasible.push(node),
            Some((plugin, f)) => {
                rejected_by.insert(plugin);
                failures.push(f);
            }
        }
    }
    if feasible.is_empty() {
        let message = fit_error(snap.nodes.len(), &failures);
        return (Decision::Unschedulable(message), rejected_by);
    }
    let spread = plugins::spread_raw(pod, &feasible, snap);
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
    (Decision::Bind(chosen.name.clone()), Plugins::default())
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

/// Builds a snapshot from nodes and pods at once (the loop keeps one up to date in its
/// cache instead).
#[cfg(test)]
pub fn snapshot(nodes: &[k8s_openapi::api::core::v1::Node], pods: &[Pod]) -> Snapshot {
    let mut infos: Vec<NodeInfo> = nodes.iter().map(NodeInfo::new).collect();
    infos.sort_by(|a, b| a.name.cmp(&b.name));
    for p in pods {
        let on = p.spec.as_ref().and_then(|s| s.node_name.as_deref());
        if let Some(info) = infos.iter_mut().find(|n| Some(n.name.as_str()) == on)
            && !finished(p)
        {
            info.add_pod(p.clone());
        }
    }
    Snapshot { nodes: infos }
}

/// Whether the pod ran to its end: it holds no room on its node.
pub(crate) fn finished(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

/// The scheduler loop: take in the pod and node events already delivered, then schedule
/// the next pod of the active queue; with none, wait for an event (or the queue's next
/// deadline). A lagged watch starts over from a fresh list.
pub async fn run(store: Arc<Store>, shutdown: CancellationToken) {
    'watch: loop {
        let (Ok(mut pods), Ok(mut nodes)) = (
            store.watch("pods", None, WatchStart::Now),
            store.watch("nodes", None, WatchStart::Now),
        ) else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        // The watches start with an ADDED event per object: the state is rebuilt from them.
        let mut sched = Scheduler::new();
        loop {
            // Pods one after another for up to a slice, the events in between taken in
            // (binds are cheap; a burst of them then wakes the other loops once, not once
            // per pod).
            let slice = Instant::now();
            let mut scheduled = false;
            loop {
                match take_delivered(&mut sched, &mut pods, &mut nodes) {
                    Ok(()) => {}
                    Err(Ended::Lagged) => continue 'watch,
                    Err(Ended::Closed) => return,
                }
                if slice.elapsed() >= SLICE || !sched.schedule_next(&store, Instant::now()) {
                    break;
                }
                scheduled = true;
            }
            if scheduled {
                // Let the API and the other loops run.
                tokio::task::yield_now().await;
                continue;
            }
            let due = sched.next_due();
            let event = tokio::select! {
                // A pod changed.
                e = pods.next() => e.map(|e| sched.on_pod(&e)),
                // A node changed.
                e = nodes.next() => e.map(|e| sched.on_node(&e)),
                // A backoff ended or a parked pod is due (pop and flush pick them up).
                _ = tokio::time::sleep_until(due.unwrap_or_else(Instant::now).into()),
                    if due.is_some() => {
                        sched.flush(Instant::now());
                        Ok(())
                    }
                // The lab stops.
                _ = shutdown.cancelled() => return,
            };
            match event {
                Ok(()) => {}
                Err(Ended::Lagged) => continue 'watch,
                Err(Ended::Closed) => return,
            }
        }
    }
}

/// Applies the pod and node events already delivered.
fn take_delivered(
    sched: &mut Scheduler,
    pods: &mut Subscription,
    nodes: &mut Subscription,
) -> Result<(), Ended> {
    while let Some(event) = pods.try_next() {
        let event = event?;
        sched.on_pod(&event);
    }
    while let Some(event) = nodes.try_next() {
        let event = event?;
        sched.on_node(&event);
    }
    Ok(())
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
pub(crate) fn unschedulable(store: &Store, pod: &Pod, message: &str) {
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
