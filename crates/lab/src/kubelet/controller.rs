//! The kubelet controller: drives the process layer (`supervisor.rs` and friends) from the
//! store. On every store change it
//! - binds unscheduled pods to the lab's one node (it is the scheduler too), oldest first,
//!   while the node has room (`LabConfig::max_pods`, the kubelet's `--max-pods`):
//!   `spec.nodeName = resil-lab` and a `Scheduled` Event. A pod beyond the capacity stays
//!   Pending with `PodScheduled=False` (reason `Unschedulable`) and one `FailedScheduling`
//!   Event, as upstream's scheduler leaves it on a full node, until a pod goes;
//! - starts a pod worker (`pod_worker.rs`) for each bound pod it does not run yet — the
//!   worker runs the containers, writes the pod's status and metrics;
//! - finishes graceful deletions: a pod marked with `deletionTimestamp` gets SIGTERM, its
//!   grace period, SIGKILL, and is then removed from the store by its worker;
//! - stops at once the processes of pods that vanished (force deletion, namespace gone).
//!
//! At start it kills pod processes a previous, killed lab left behind (`pods.json`) and
//! claims pod deletions in the store ([`Store::set_pod_terminator`]); at shutdown it kills
//! every pod process. Started by `controllers::runtime::start`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use serde_json::json;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::backoff::BackoffPolicy;
use super::pod_worker;
use super::registry::{PodRegistry, kill_orphans};
use crate::LabConfig;
use crate::controllers::events;
use crate::controllers::runtime::{Wake, to_value, typed, write_status};
use crate::store::kinds::kind;
use crate::store::{Store, WriteMode};

/// The lab's single node.
pub const NODE_NAME: &str = "resil-lab";
/// Longest wait without a store change.
const RESYNC: Duration = Duration::from_secs(1);
/// Least time between two passes under a burst of pod changes.
const BATCH: Duration = Duration::from_millis(20);
/// Longest wait for pod processes at shutdown.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(3);

/// What every pod worker needs.
#[derive(Debug)]
pub(crate) struct Node {
    pub store: Arc<Store>,
    /// Pods bound to the node at once (not counting finished ones).
    pub max_pods: usize,
    pub program: PathBuf,
    pub state_dir: PathBuf,
    pub demo_images: Vec<String>,
    pub registry: Arc<PodRegistry>,
    pub backoff: BackoffPolicy,
}

/// One running pod worker.
struct Worker {
    uid: String,
    /// `Some(grace)` asks the worker to stop its containers with that grace.
    stop: watch::Sender<Option<Duration>>,
    task: JoinHandle<()>,
}

/// Spawns the kubelet loop on `tasks`.
pub fn start(
    store: Arc<Store>,
    config: &LabConfig,
    shutdown: CancellationToken,
    tasks: &TaskTracker,
) {
    match kill_orphans(&config.state_dir) {
        Ok(killed) if !killed.is_empty() => {
            tracing::info!(
                "killed {} pod processes left by a previous lab",
                killed.len()
            );
        }
        Ok(_) => {}
        Err(e) => tracing::warn!("cannot clean up pod processes of a previous lab: {e}"),
    }
    store.set_pod_terminator(true);
    let node = Arc::new(Node {
        store,
        max_pods: config.max_pods.max(1),
        program: config.pod_program.clone(),
        state_dir: config.state_dir.clone(),
        demo_images: config.demo_image_prefixes.clone(),
        registry: Arc::new(PodRegistry::new(&config.state_dir)),
        backoff: BackoffPolicy::kubelet(),
    });
    tasks.spawn(run(node, shutdown));
}

async fn run(node: Arc<Node>, shutdown: CancellationToken) {
    let mut workers: HashMap<(String, String), Worker> = HashMap::new();
    let wake = Wake::on(&node.store, &["pods"], &shutdown);
    loop {
        sync(&node, &mut workers);
        tokio::select! {
            // A pod changed (bursts batched a little: binding 200 pods is one pass).
            _ = wake.changed() => tokio::time::sleep(BATCH).await,
            // Safety net.
            _ = tokio::time::sleep(RESYNC) => {}
            // The lab stops.
            _ = shutdown.cancelled() => break,
        }
    }
    // Shutdown: kill every pod process now; state stays in the store for the next start.
    for w in workers.values() {
        let _ = w.stop.send(Some(Duration::ZERO));
    }
    let all = futures::future::join_all(workers.into_values().map(|w| w.task));
    if tokio::time::timeout(SHUTDOWN_WAIT, all).await.is_err() {
        tracing::warn!("some pod processes did not stop within {SHUTDOWN_WAIT:?}");
    }
    node.store.set_pod_terminator(false);
}

/// One pass over the pods.
fn sync(node: &Arc<Node>, workers: &mut HashMap<(String, String), Worker>) {
    workers.retain(|_, w| !w.task.is_finished());
    let pods: Vec<Pod> = typed(node.store.list("pods", None).items);
    schedule(node, &pods);
    // Pods with a process running here: a pod bound by hand (`spec.nodeName` set at
    // create) skips the scheduler, so the node checks its capacity again, as upstream's
    // kubelet admission does.
    let mut running = pods
        .iter()
        .filter(|p| {
            let key = (
                p.metadata.namespace.clone().unwrap_or_default(),
                p.metadata.name.clone().unwrap_or_default(),
            );
            !finished(p)
                && workers
                    .get(&key)
                    .is_some_and(|w| Some(&w.uid) == p.metadata.uid.as_ref())
        })
        .count();
    let mut seen = std::collections::HashSet::new();
    for pod in pods {
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        let name = pod.metadata.name.clone().unwrap_or_default();
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let key = (ns.clone(), name.clone());
        let node_name = pod.spec.as_ref().and_then(|s| s.node_name.clone());
        let deleting = pod.metadata.deletion_timestamp.is_some();
        if node_name.is_none() {
            if deleting {
                // Never ran: nothing to stop.
                let _ = node.store.remove("pods", &ns, &name);
            }
            continue;
        }
        if node_name.as_deref() != Some(NODE_NAME) {
            continue;
        }
        seen.insert(key.clone());
        let current = workers.get(&key).filter(|w| w.uid == uid);
        match (current, deleting) {
            (Some(w), true) => {
                let grace = grace_period(&pod);
                // Only the first request counts (a later, shorter grace wins, like upstream).
                w.stop.send_if_modified(|g| match g {
                    Some(old) if *old <= grace => false,
                    _ => {
                        *g = Some(grace);
                        true
                    }
                });
            }
            (None, true) => {
                // Nothing runs for it (never started, or its worker already ended).
                let _ = node.store.remove("pods", &ns, &name);
            }
            (Some(_), false) => {}
            (None, false) if finished(&pod) => {}
            (None, false) if running >= node.max_pods => out_of_pods(node, &pod, running),
            (None, false) => {
                running += 1;
                if let Some(old) = workers.remove(&key) {
                    // Same name, new pod: the old one's processes go at once.
                    let _ = old.stop.send(Some(Duration::ZERO));
                }
                let (stop, stop_rx) = watch::channel(None);
                let task = tokio::spawn(pod_worker::run(node.clone(), pod, stop_rx));
                workers.insert(key, Worker { uid, stop, task });
            }
        }
    }
    // Pods removed from the store without a grace period: stop their processes now.
    for (key, w) in workers.iter() {
        if !seen.contains(key) {
            let _ = w.stop.send(Some(Duration::ZERO));
        }
    }
}

/// Whether the pod ran to its end (`Succeeded` or `Failed`): it holds no place on the node.
fn finished(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

/// The scheduler's pass: binds unscheduled pods, oldest first, while the node has room;
/// marks the others unschedulable. Pods being deleted still hold their place until they
/// are gone, as upstream counts them.
fn schedule(node: &Node, pods: &[Pod]) {
    let mut placed = pods
        .iter()
        .filter(|p| {
            p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(NODE_NAME) && !finished(p)
        })
        .count();
    let mut waiting: Vec<&Pod> = pods
        .iter()
        .filter(|p| {
            p.spec.as_ref().is_some_and(|s| s.node_name.is_none())
                && p.metadata.deletion_timestamp.is_none()
        })
        .collect();
    waiting.sort_by(|a, b| {
        let created = |p: &Pod| p.metadata.creation_timestamp.as_ref().map(|t| t.0);
        created(a)
            .cmp(&created(b))
            .then_with(|| a.metadata.namespace.cmp(&b.metadata.namespace))
            .then_with(|| a.metadata.name.cmp(&b.metadata.name))
    });
    for pod in waiting {
        let ns = pod.metadata.namespace.as_deref().unwrap_or_default();
        let name = pod.metadata.name.as_deref().unwrap_or_default();
        if placed < node.max_pods {
            if bind(&node.store, ns, name) {
                placed += 1;
            }
        } else {
            unschedulable(&node.store, pod);
        }
    }
}

/// Upstream's message for a pod that no node has room for, on a one-node cluster.
pub const TOO_MANY_PODS: &str = "0/1 nodes are available: 1 Too many pods. preemption: 0/1 \
     nodes are available: 1 No preemption victims found for incoming pod.";

/// Marks a pod the full node cannot take: `PodScheduled=False`, reason `Unschedulable`,
/// and a `FailedScheduling` Event — once, when it becomes so.
fn unschedulable(store: &Store, pod: &Pod) {
    let already = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| {
            c.iter().any(|c| {
                c.type_ == "PodScheduled"
                    && c.status == "False"
                    && c.reason.as_deref() == Some("Unschedulable")
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
            "message": TOO_MANY_PODS,
            "lastTransitionTime": now,
        }],
    });
    write_status(store, "pods", ns, name, status);
    events::record(
        store,
        &to_value(pod),
        "Warning",
        "FailedScheduling",
        TOO_MANY_PODS,
        "default-scheduler",
    );
}

/// Rejects a pod bound to the full node past the scheduler: `Failed`, reason
/// `OutOfpods`, as upstream's kubelet admission rejects it, with a Warning Event.
fn out_of_pods(node: &Node, pod: &Pod, used: usize) {
    let ns = pod.metadata.namespace.as_deref().unwrap_or_default();
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    let message = format!(
        "Pod was rejected: Node didn't have enough resource: pods, requested: 1, used: {used}, \
         capacity: {}",
        node.max_pods
    );
    let status = json!({
        "phase": "Failed",
        "reason": "OutOfpods",
        "message": message,
        "qosClass": "BestEffort",
    });
    write_status(&node.store, "pods", ns, name, status);
    events::record(
        &node.store,
        &to_value(pod),
        "Warning",
        "OutOfpods",
        &format!(
            "Node didn't have enough resource: pods, requested: 1, used: {used}, capacity: {}",
            node.max_pods
        ),
        "kubelet",
    );
}

/// The scheduler's part: assign the pod to the lab's node and say so. Returns whether it
/// was bound.
fn bind(store: &Store, ns: &str, name: &str) -> bool {
    let Some(mut live) = store.get("pods", ns, name) else {
        return false;
    };
    live["spec"]["nodeName"] = json!(NODE_NAME);
    // With the live resourceVersion: if someone else wrote meanwhile, the next pass binds.
    match store.update(kind("pods"), ns, name, live, WriteMode::Main) {
        Ok(bound) => {
            events::record(
                store,
                &bound,
                "Normal",
                "Scheduled",
                &format!("Successfully assigned {ns}/{name} to {NODE_NAME}"),
                "default-scheduler",
            );
            true
        }
        Err(e) => {
            tracing::debug!("binding pod {ns}/{name}: {e}");
            false
        }
    }
}

/// The grace of a pod being deleted: `deletionGracePeriodSeconds`, else the spec's
/// `terminationGracePeriodSeconds`, else 30 s.
fn grace_period(pod: &Pod) -> Duration {
    let secs = pod
        .metadata
        .deletion_grace_period_seconds
        .or_else(|| {
            pod.spec
                .as_ref()
                .and_then(|s| s.termination_grace_period_seconds)
        })
        .unwrap_or(30);
    Duration::from_secs(secs.max(0) as u64)
}
