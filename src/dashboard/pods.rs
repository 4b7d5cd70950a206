//! The pods behind the dashboard's tiles, by node and zone: a kube-rs watcher over the
//! demo's pods (`app=web`, their node from `spec.nodeName`, Ready from their conditions)
//! and one over the Nodes (their zone from the `topology.kubernetes.io/zone` label, their
//! Ready condition). Observes only. A cluster that does not let resil list Nodes still
//! gets pod tiles, grouped by node name without a zone.
//!
//! Every change goes to the board as an [`Input`]; a relist (a watch that restarted)
//! replaces what the board held, so a pod that went while the watch was down disappears.
//! Started by `crate::dashboard` next to the observing watcher.

use chrono::{DateTime, Utc};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::Client;
use kube::api::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event as WatchEvent};
use serde::Serialize;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::board::Input;
use crate::watch::state::{COLOR_LABEL, pod_fact};
use crate::watch::streams::{Reconnect, WATCH_TIMEOUT_S};

/// The label a node's zone is read from.
pub const ZONE_LABEL: &str = "topology.kubernetes.io/zone";

/// One pod, as its tile shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PodSeen {
    pub name: String,
    /// `blue`, `green`, or another `version` label.
    pub color: Option<String>,
    /// The node it is bound to (`None`: not scheduled yet).
    pub node: Option<String>,
    /// Ready condition true and not terminating.
    pub ready: bool,
}

/// One node: its zone and whether it is Ready.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeSeen {
    pub name: String,
    pub zone: Option<String>,
    pub ready: bool,
}

/// What a pod or node watch tells the board.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    Pod(PodSeen),
    /// A pod was deleted; `at`: when the watch said so.
    PodGone {
        name: String,
        at: DateTime<Utc>,
    },
    /// A full relist: every pod there is.
    Pods(Vec<PodSeen>),
    Node(NodeSeen),
    NodeGone(String),
    /// A full relist: every node there is.
    Nodes(Vec<NodeSeen>),
}

/// The tile of `pod`.
pub fn pod_seen(pod: &Pod) -> PodSeen {
    PodSeen {
        name: pod.metadata.name.clone().unwrap_or_default(),
        color: pod
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(COLOR_LABEL))
            .cloned(),
        node: pod.spec.as_ref().and_then(|s| s.node_name.clone()),
        ready: pod_fact(pod).ready,
    }
}

/// The zone and readiness of `node`.
pub fn node_seen(node: &Node) -> NodeSeen {
    let ready = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .any(|c| c.type_ == "Ready" && c.status == "True");
    NodeSeen {
        name: node.metadata.name.clone().unwrap_or_default(),
        zone: node
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(ZONE_LABEL))
            .cloned(),
        ready,
    }
}

/// A watch's events as board changes: `Init … InitApply … InitDone` becomes one relist.
struct Relist<T> {
    pending: Option<Vec<T>>,
}

impl<T> Relist<T> {
    fn new() -> Relist<T> {
        Relist { pending: None }
    }

    fn take<K>(
        &mut self,
        event: WatchEvent<K>,
        seen: fn(&K) -> T,
        name: fn(&K) -> String,
        apply: fn(T) -> Change,
        gone: fn(String, DateTime<Utc>) -> Change,
        all: fn(Vec<T>) -> Change,
    ) -> Option<Change> {
        match event {
            WatchEvent::Init => {
                self.pending = Some(Vec::new());
                None
            }
            WatchEvent::InitApply(object) => {
                self.pending
                    .get_or_insert_with(Vec::new)
                    .push(seen(&object));
                None
            }
            WatchEvent::InitDone => Some(all(self.pending.take().unwrap_or_default())),
            WatchEvent::Apply(object) => Some(apply(seen(&object))),
            WatchEvent::Delete(object) => Some(gone(name(&object), Utc::now())),
        }
    }
}

fn pod_name(pod: &Pod) -> String {
    pod.metadata.name.clone().unwrap_or_default()
}

fn node_name(node: &Node) -> String {
    node.metadata.name.clone().unwrap_or_default()
}

fn pod_gone(name: String, at: DateTime<Utc>) -> Change {
    Change::PodGone { name, at }
}

fn node_gone(name: String, _: DateTime<Utc>) -> Change {
    Change::NodeGone(name)
}

/// Follows the demo's pods in `namespace` and the cluster's nodes until `shutdown`.
pub async fn run(
    client: Client,
    namespace: String,
    inputs: mpsc::UnboundedSender<Input>,
    shutdown: CancellationToken,
) {
    let config = |labels: Option<&str>| {
        let config = watcher::Config::default().timeout(WATCH_TIMEOUT_S);
        match labels {
            Some(labels) => config.labels(labels),
            None => config,
        }
    };
    let pods = watcher::watcher(
        Api::<Pod>::namespaced(client.clone(), &namespace),
        config(Some("app=web")),
    )
    .backoff(Reconnect::default());
    let nodes =
        watcher::watcher(Api::<Node>::all(client), config(None)).backoff(Reconnect::default());
    let (mut pods, mut nodes) = (pods.boxed(), nodes.boxed());
    let (mut pod_list, mut node_list) = (Relist::new(), Relist::new());
    let mut nodes_open = true;
    loop {
        let change = tokio::select! {
            // The dashboard is closing.
            _ = shutdown.cancelled() => return,
            // A pod changed (a failed attempt is retried by the watcher's backoff).
            event = pods.next() => match event {
                Some(Ok(event)) => pod_list.take(
                    event, pod_seen, pod_name, Change::Pod, pod_gone, Change::Pods,
                ),
                Some(Err(err)) => {
                    tracing::debug!("dashboard pod watch: {err}");
                    None
                }
                None => return,
            },
            // A node changed; a cluster that forbids listing nodes ends this watch only.
            event = nodes.next(), if nodes_open => match event {
                Some(Ok(event)) => node_list.take(
                    event, node_seen, node_name, Change::Node, node_gone, Change::Nodes,
                ),
                Some(Err(err)) => {
                    if matches!(&err, watcher::Error::InitialListFailed(kube::Error::Api(s))
                        if s.code == 403)
                    {
                        tracing::info!("the dashboard may not list nodes: tiles without zones");
                        nodes_open = false;
                    }
                    None
                }
                None => {
                    nodes_open = false;
                    None
                }
            },
        };
        if let Some(change) = change
            && inputs.send(Input::Pods(change)).is_err()
        {
            return;
        }
    }
}
