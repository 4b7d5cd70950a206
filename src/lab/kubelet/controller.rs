//! The kubelet controller: drives the process layer (`supervisor.rs` and friends) from the
//! store. On every store change it
//! - binds unscheduled pods to the lab's one node (it is the scheduler too):
//!   `spec.nodeName = resil-lab` and a `Scheduled` Event;
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
use crate::lab::LabConfig;
use crate::lab::controllers::events;
use crate::lab::controllers::runtime::{Wake, kind, typed};
use crate::lab::store::{Store, WriteMode};

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
    let mut seen = std::collections::HashSet::new();
    for pod in pods {
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        let name = pod.metadata.name.clone().unwrap_or_default();
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let key = (ns.clone(), name.clone());
        let node_name = pod.spec.as_ref().and_then(|s| s.node_name.clone());
        let deleting = pod.metadata.deletion_timestamp.is_some();
        let finished = matches!(
            pod.status.as_ref().and_then(|s| s.phase.as_deref()),
            Some("Succeeded" | "Failed")
        );
        if node_name.is_none() {
            if deleting {
                // Never ran: nothing to stop.
                let _ = node.store.remove("pods", &ns, &name);
            } else {
                bind(&node.store, &ns, &name);
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
            (None, false) if finished => {}
            (None, false) => {
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

/// The scheduler's part: assign the pod to the lab's node and say so.
fn bind(store: &Store, ns: &str, name: &str) {
    let Some(mut live) = store.get("pods", ns, name) else {
        return;
    };
    live["spec"]["nodeName"] = json!(NODE_NAME);
    // With the live resourceVersion: if someone else wrote meanwhile, the next pass binds.
    match store.update(kind("pods"), ns, name, live, WriteMode::Main) {
        Ok(bound) => events::record(
            store,
            &bound,
            "Normal",
            "Scheduled",
            &format!("Successfully assigned {ns}/{name} to {NODE_NAME}"),
            "default-scheduler",
        ),
        Err(e) => tracing::debug!("binding pod {ns}/{name}: {e}"),
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
