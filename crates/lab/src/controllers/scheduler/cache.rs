//! The scheduler's cache: the nodes and the pods bound to them, kept up to date one event at
//! a time instead of rebuilt from the store for every pod. It mirrors upstream
//! `pkg/scheduler/backend/cache/cache.go` (`AddNode`/`UpdateNode`/`RemoveNode`,
//! `AddPod`/`UpdatePod`/`RemovePod`, `AssumePod`) and `snapshot.go`:
//!
//! - The cache *is* the snapshot the plugins read ([`Cache::snapshot`]): the lab's
//!   scheduler decides one pod at a time on its own task, so there is no concurrent
//!   reader to hand a copy to, and no generation numbers to compare.
//! - A binding is assumed at once ([`Cache::add_pod`] right after the write), so the next
//!   pod sees it; the watch event of the same binding then changes nothing.
//! - Pods bound to a node the cache does not know (yet, or any more) wait aside and join
//!   it when it appears, as upstream keeps a node's pods after the node is removed.
//! - Each change reports the [`ClusterEvent`] it amounts to, if any, for the queue: a
//!   node whose labels, taints, cordon and allocatable stay the same (a status heartbeat)
//!   is no event; nor is a bound pod's status write.
//!
//! Used by the scheduler loop in `mod.rs`.

use std::collections::{BTreeMap, HashMap};

use k8s_openapi::api::core::v1::{Node, Pod};

use super::plugins::{NodeInfo, Snapshot, requests};
use super::queue::{ClusterEvent, PodKey, key};

/// Nodes and bound pods.
#[derive(Debug, Default)]
pub struct Cache {
    snap: Snapshot,
    /// Which node each counted pod is on.
    bound: HashMap<PodKey, String>,
    /// Pods bound to nodes not in the snapshot, by node name.
    aside: BTreeMap<String, Vec<Pod>>,
}

impl Cache {
    /// What the plugins read.
    pub fn snapshot(&self) -> &Snapshot {
        &self.snap
    }

    /// A node appeared or changed.
    pub fn set_node(&mut self, node: &Node) -> Option<ClusterEvent> {
        let fresh = NodeInfo::new(node);
        match self
            .snap
            .nodes
            .binary_search_by(|n| n.name.cmp(&fresh.name))
        {
            Ok(at) => {
                let old = &self.snap.nodes[at];
                if old.same_node(&fresh) {
                    return None;
                }
                let updated = old.with_node(node);
                self.snap.nodes[at] = updated;
                Some(ClusterEvent::NodeUpdate)
            }
            Err(at) => {
                let mut info = fresh;
                for pod in self.aside.remove(&info.name).unwrap_or_default() {
                    info.add_pod(pod);
                }
                self.snap.nodes.insert(at, info);
                Some(ClusterEvent::NodeAdd)
            }
        }
    }

    /// A node was deleted: its pods wait aside in case it comes back.
    pub fn remove_node(&mut self, name: &str) {
        if let Ok(at) = self
            .snap
            .nodes
            .binary_search_by(|n| n.name.as_str().cmp(name))
        {
            let info = self.snap.nodes.remove(at);
            self.aside.insert(info.name.clone(), info.pods().to_vec());
        }
    }

    /// A pod bound to `spec.nodeName` and not finished, new or changed (or assumed by the
    /// scheduler's own binding).
    pub fn add_pod(&mut self, pod: Pod) -> Option<ClusterEvent> {
        let node = pod.spec.as_ref().and_then(|s| s.node_name.clone())?;
        let k = key(&pod);
        let old = self.take(&k);
        let event = match &old {
            None => Some(ClusterEvent::AssignedPodAdd),
            Some((was_on, old)) => {
                let same = *was_on == node
                    && old.metadata.labels == pod.metadata.labels
                    && old.metadata.deletion_timestamp.is_some()
                        == pod.metadata.deletion_timestamp.is_some()
                    && requests(old, false) == requests(&pod, false);
                (!same).then_some(ClusterEvent::AssignedPodUpdate)
            }
        };
        self.bound.insert(k, node.clone());
        match self.snap.node_mut(&node) {
            Some(info) => info.add_pod(pod),
            None => self.aside.entry(node).or_default().push(pod),
        }
        event
    }

    /// A bound pod was deleted or finished: its room is free.
    pub fn remove_pod(&mut self, k: &PodKey) -> Option<ClusterEvent> {
        self.take(k).map(|_| ClusterEvent::AssignedPodDelete)
    }

    fn take(&mut self, k: &PodKey) -> Option<(String, Pod)> {
        let node = self.bound.remove(k)?;
        let pod = match self.snap.node_mut(&node) {
            Some(info) => info.remove_pod(&k.0, &k.1),
            None => {
                let pods = self.aside.get_mut(&node)?;
                let at = pods.iter().position(|p| key(p) == *k)?;
                Some(pods.swap_remove(at))
            }
        }?;
        Some((node, pod))
    }
}
