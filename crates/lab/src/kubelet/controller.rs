//! The kubelet controller: drives the process layer (`supervisor.rs` and friends) from the
//! store, for every node of the lab at once, keyed by `spec.nodeName` (the scheduler,
//! `controllers/scheduler/`, binds pods). On every change of pods or nodes it
//! - starts a pod worker (`pod_worker.rs`) for each bound pod it does not run yet — the
//!   worker runs the containers, writes the pod's status and metrics;
//! - finishes graceful deletions: a pod marked with `deletionTimestamp` gets SIGTERM, its
//!   grace period, SIGKILL, and is then removed from the store by its worker;
//! - stops at once the processes of pods that vanished (force deletion, namespace gone);
//! - on a stopped node (annotation `lab.resil.dev/stopped`, `nodes/mod.rs`) stops its
//!   pods' processes at once and then leaves its pods alone — no status, no deletion —
//!   as a powered-off machine would, until the node starts again.
//!
//! At start it kills pod processes a previous, killed lab left behind (`pods.json`) and
//! claims pod deletions in the store ([`Store::set_pod_terminator`]); at shutdown it kills
//! every pod process. Started by `controllers::runtime::start`.

use std::collections::{HashMap, HashSet};
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
use crate::controllers::runtime::{Wake, to_value, write_status};
use crate::store::Store;

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
    /// Pods bound to each node at once (not counting finished ones).
    pub max_pods: usize,
    /// The lab's nodes.
    pub nodes: Vec<crate::nodes::NodeSpec>,
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
        nodes: config.nodes.nodes(),
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
    let wake = Wake::on(&node.store, &["pods", "nodes"], &shutdown);
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
    let pods: Vec<Arc<Pod>> = node.store.list_parsed("pods");
    let stopped: HashSet<String> = node
        .store
        .list("nodes", None)
        .items
        .iter()
        .filter(|n| crate::nodes::is_stopped(n))
        .filter_map(|n| n["metadata"]["name"].as_str().map(str::to_string))
        .collect();
    // Pods with a process running, per node: a pod bound by hand (`spec.nodeName` set at
    // create) skips the scheduler, so the node checks its capacity again, as upstream's
    // kubelet admission does.
    let mut running: HashMap<String, usize> = HashMap::new();
    for p in &pods {
        let key = pod_key(p);
        let ours = workers
            .get(&key)
            .is_some_and(|w| Some(&w.uid) == p.metadata.uid.as_ref());
        if ours && !finished(p) {
            *running.entry(bound_to(p).unwrap_or_default()).or_default() += 1;
        }
    }
    let mut seen = HashSet::new();
    for pod in pods {
        let Some(host) = bound_to(&pod) else {
            if pod.metadata.deletion_timestamp.is_some() {
                // Never ran: nothing to stop.
                let (ns, name) = pod_key(&pod);
                let _ = node.store.remove("pods", &ns, &name);
            }
            continue;
        };
        if !node.nodes.iter().any(|n| n.name == host) || stopped.contains(&host) {
            // Not a node of this lab, or a node that is off: nothing runs there.
            continue;
        }
        seen.insert(pod_key(&pod));
        let used = running.entry(host).or_default();
        sync_pod(node, workers, pod, used);
    }
    // Pods removed from the store without a grace period, or on a node that stopped:
    // stop their processes now.
    workers.retain(|key, w| {
        let keep = seen.contains(key);
        if !keep {
            let _ = w.stop.send(Some(Duration::ZERO));
        }
        keep
    });
}

fn pod_key(pod: &Pod) -> (String, String) {
    (
        pod.metadata.namespace.clone().unwrap_or_default(),
        pod.metadata.name.clone().unwrap_or_default(),
    )
}

fn bound_to(pod: &Pod) -> Option<String> {
    pod.spec.as_ref().and_then(|s| s.node_name.clone())
}

/// One pod bound to a running node of this lab: start, stop or finish it. `running` is
/// its node's count of pods with a process.
fn sync_pod(
    node: &Arc<Node>,
    workers: &mut HashMap<(String, String), Worker>,
    pod: Arc<Pod>,
    running: &mut usize,
) {
    let key = pod_key(&pod);
    let (ns, name) = key.clone();
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let deleting = pod.metadata.deletion_timestamp.is_some();
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
        (None, false) if *running >= node.max_pods => out_of_pods(node, &pod, *running),
        (None, false) => {
            *running += 1;
            if let Some(old) = workers.remove(&key) {
                // Same name, new pod: the old one's processes go at once.
                let _ = old.stop.send(Some(Duration::ZERO));
            }
            let (stop, stop_rx) = watch::channel(None);
            let pod = Arc::unwrap_or_clone(pod);
            let task = tokio::spawn(pod_worker::run(node.clone(), pod, stop_rx));
            workers.insert(key, Worker { uid, stop, task });
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
