//! The scheduling queue: which pending pod the scheduler tries next, and which pods wait
//! for the cluster to change before they are worth trying again. It mirrors upstream
//! `pkg/scheduler/backend/queue/scheduling_queue.go` (`PriorityQueue`), with its
//! `active_queue.go`, `backoff_queue.go` and `unschedulable_pods.go`:
//!
//! 1. A pod that needs a node enters the active queue ([`SchedulingQueue::add`]), ordered
//!    oldest first (creation time, then namespace and name: upstream's PrioritySort
//!    without priorities, which the lab does not have).
//! 2. The scheduler pops one pod at a time ([`SchedulingQueue::pop`]); while it decides,
//!    the pod is in none of the queues.
//! 3. No node fits: the pod is parked among the unschedulable pods
//!    ([`SchedulingQueue::park`]) with the filter plugins that rejected it. It is not tried
//!    again on every change, only on a cluster event one of those plugins cares about
//!    ([`ClusterEvent::interests`], upstream's `EventsToRegister`):
//!    [`SchedulingQueue::on_event`] moves it back to the active queue. A pod parked with
//!    no plugin named (there were no nodes) moves on any event.
//! 4. A pod parked longer than [`MAX_UNSCHEDULABLE`] moves back anyway
//!    ([`SchedulingQueue::flush`], upstream `flushUnschedulablePodsLeftover` with
//!    `DefaultPodMaxInUnschedulablePodsDuration`): a safety net for an event the queue
//!    cannot see.
//! 5. A pod whose binding failed for another reason than the pod itself (the store refused
//!    the write) waits [`BACKOFF`] in the backoff queue, then is active again.
//! 6. A change to a queued pod's spec or labels makes it active again (it may fit now);
//!    a status-only change (the scheduler's own `PodScheduled=False`) keeps it parked, so
//!    the scheduler never wakes itself.
//!
//! Left out from upstream: priorities and preemption, per-pod exponential backoff (one
//! fixed [`BACKOFF`]), queueing hints finer than "which plugin", and the in-flight event
//! log (the lab's scheduler handles events only between two pods, so none can be missed
//! while one is decided).
//!
//! Pure: the clock is passed in. Used by the scheduler loop in `mod.rs`.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;

use super::plugins::{Plugin, Plugins};

/// How long a pod may stay parked without an event that moves it (upstream's default).
pub const MAX_UNSCHEDULABLE: Duration = Duration::from_secs(5 * 60);
/// How long a pod waits after a failed binding (upstream's initial pod backoff).
pub const BACKOFF: Duration = Duration::from_secs(1);

/// A pod's identity: namespace and name.
pub type PodKey = (String, String);

/// The key of `pod`.
pub fn key(pod: &Pod) -> PodKey {
    (
        pod.metadata.namespace.clone().unwrap_or_default(),
        pod.metadata.name.clone().unwrap_or_default(),
    )
}

/// A change of the cluster that can make a parked pod fit (upstream `ClusterEvent`s).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClusterEvent {
    /// A node appeared.
    NodeAdd,
    /// A node's labels, taints, cordon or allocatable changed.
    NodeUpdate,
    /// A pod was bound to a node.
    AssignedPodAdd,
    /// A bound pod's labels or requests changed.
    AssignedPodUpdate,
    /// A bound pod was deleted or ran to its end: its room is free.
    AssignedPodDelete,
}

impl ClusterEvent {
    /// The plugins whose verdict the event can change.
    pub fn interests(self) -> Plugins {
        use Plugin::*;
        match self {
            ClusterEvent::NodeAdd | ClusterEvent::NodeUpdate => Plugins::ALL,
            // A new neighbour can satisfy pod affinity or a spread constraint's minimum;
            // it never frees room.
            ClusterEvent::AssignedPodAdd => Plugins::of(&[PodTopologySpread, InterPodAffinity]),
            ClusterEvent::AssignedPodUpdate | ClusterEvent::AssignedPodDelete => {
                Plugins::of(&[NodeResourcesFit, PodTopologySpread, InterPodAffinity])
            }
        }
    }
}

/// Where a queued pod waits.
#[derive(Debug, Clone, Copy)]
enum Place {
    /// In the active queue under this order.
    Active,
    /// In the backoff queue until this instant.
    Backoff(Instant),
    /// Parked since this instant, rejected by these plugins.
    Unschedulable(Instant, Plugins),
}

/// Order of the active queue: creation time, namespace, name.
type Order = (Option<Timestamp>, String, String);

fn order(pod: &Pod) -> Order {
    let (ns, name) = key(pod);
    (
        pod.metadata.creation_timestamp.as_ref().map(|t| t.0),
        ns,
        name,
    )
}

#[derive(Debug)]
struct Queued {
    pod: Pod,
    place: Place,
}

/// The pending pods, each in exactly one of the active queue, the backoff queue or the
/// unschedulable pods.
#[derive(Debug, Default)]
pub struct SchedulingQueue {
    pods: HashMap<PodKey, Queued>,
    active: BTreeSet<Order>,
}

impl SchedulingQueue {
    /// An empty queue.
    #[cfg(test)]
    pub fn new() -> SchedulingQueue {
        SchedulingQueue::default()
    }

    /// A pod that needs a node, new or changed: a new one is active; a queued one keeps
    /// its place unless its spec or labels changed, which makes it active.
    pub fn add(&mut self, pod: Pod) {
        let k = key(&pod);
        match self.pods.get_mut(&k) {
            Some(queued) => {
                let changed = queued.pod.spec != pod.spec
                    || queued.pod.metadata.labels != pod.metadata.labels;
                queued.pod = pod;
                if changed && !matches!(queued.place, Place::Active) {
                    queued.place = Place::Active;
                    self.active.insert(order(&queued.pod));
                }
            }
            None => {
                self.active.insert(order(&pod));
                self.pods.insert(
                    k,
                    Queued {
                        pod,
                        place: Place::Active,
                    },
                );
            }
        }
    }

    /// Forgets a pod (bound, deleted, or no longer ours).
    pub fn delete(&mut self, k: &PodKey) {
        if let Some(q) = self.pods.remove(k)
            && matches!(q.place, Place::Active)
        {
            self.active.remove(&order(&q.pod));
        }
    }

    /// The next pod to try, out of the queue; backoffs that ended first become active.
    pub fn pop(&mut self, now: Instant) -> Option<Pod> {
        for q in self.pods.values_mut() {
            if matches!(q.place, Place::Backoff(until) if until <= now) {
                q.place = Place::Active;
                self.active.insert(order(&q.pod));
            }
        }
        let (_, ns, name) = self.active.pop_first()?;
        self.pods.remove(&(ns, name)).map(|q| q.pod)
    }

    /// Parks a pod no node took, rejected by `by`.
    pub fn park(&mut self, pod: Pod, by: Plugins, now: Instant) {
        self.put(pod, Place::Unschedulable(now, by));
    }

    /// Puts a pod whose binding failed in the backoff queue.
    pub fn back_off(&mut self, pod: Pod, now: Instant) {
        self.put(pod, Place::Backoff(now + BACKOFF));
    }

    fn put(&mut self, pod: Pod, place: Place) {
        let k = key(&pod);
        self.delete(&k);
        self.pods.insert(k, Queued { pod, place });
    }

    /// Moves the parked pods that `event` may make fit to the active queue; returns how
    /// many moved.
    pub fn on_event(&mut self, event: ClusterEvent) -> usize {
        let wanted = event.interests();
        self.activate(|_, by| by.is_empty() || by.intersects(wanted))
    }

    /// Moves the pods parked longer than [`MAX_UNSCHEDULABLE`] to the active queue.
    pub fn flush(&mut self, now: Instant) -> usize {
        self.activate(|since, _| now.saturating_duration_since(since) >= MAX_UNSCHEDULABLE)
    }

    fn activate(&mut self, moves: impl Fn(Instant, Plugins) -> bool) -> usize {
        let mut moved = 0;
        for q in self.pods.values_mut() {
            if let Place::Unschedulable(since, by) = q.place
                && moves(since, by)
            {
                q.place = Place::Active;
                self.active.insert(order(&q.pod));
                moved += 1;
            }
        }
        moved
    }

    /// When the loop must look again without an event: the end of the earliest backoff,
    /// or of the earliest parking.
    pub fn next_due(&self) -> Option<Instant> {
        self.pods
            .values()
            .filter_map(|q| match q.place {
                Place::Active => None,
                Place::Backoff(until) => Some(until),
                Place::Unschedulable(since, _) => Some(since + MAX_UNSCHEDULABLE),
            })
            .min()
    }

    /// Pods in the active queue.
    #[cfg(test)]
    pub fn active_len(&self) -> usize {
        self.active.len()
    }

    /// Parked pods.
    #[cfg(test)]
    pub fn unschedulable_len(&self) -> usize {
        self.pods
            .values()
            .filter(|q| matches!(q.place, Place::Unschedulable(..)))
            .count()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn pod(name: &str, created: &str) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "default", "creationTimestamp": created},
            "spec": {"containers": [{"name": "web", "image": "resil-demo:1"}]},
        }))
        .unwrap()
    }

    fn names(q: &mut SchedulingQueue, now: Instant) -> Vec<String> {
        std::iter::from_fn(|| q.pop(now))
            .map(|p| p.metadata.name.unwrap())
            .collect()
    }

    #[test]
    fn the_oldest_pod_is_tried_first() {
        let mut q = SchedulingQueue::new();
        q.add(pod("b", "2026-01-01T00:00:02Z"));
        q.add(pod("c", "2026-01-01T00:00:01Z"));
        q.add(pod("a", "2026-01-01T00:00:02Z"));
        assert_eq!(names(&mut q, Instant::now()), ["c", "a", "b"]);
    }

    #[test]
    fn a_parked_pod_waits_for_an_event_its_plugins_care_about() {
        let now = Instant::now();
        let mut q = SchedulingQueue::new();
        let fit = Plugins::of(&[Plugin::NodeResourcesFit]);
        q.park(pod("full", "2026-01-01T00:00:00Z"), fit, now);
        assert_eq!(q.pop(now).map(|p| p.metadata.name), None);
        // A new neighbour frees no room.
        assert_eq!(q.on_event(ClusterEvent::AssignedPodAdd), 0);
        assert_eq!(q.unschedulable_len(), 1);
        // A deleted one does.
        assert_eq!(q.on_event(ClusterEvent::AssignedPodDelete), 1);
        assert_eq!(names(&mut q, now), ["full"]);
    }

    #[test]
    fn a_cordoned_out_pod_moves_on_a_node_update_only() {
        let now = Instant::now();
        let mut q = SchedulingQueue::new();
        let cordon = Plugins::of(&[Plugin::NodeUnschedulable]);
        q.park(pod("p", "2026-01-01T00:00:00Z"), cordon, now);
        assert_eq!(q.on_event(ClusterEvent::AssignedPodDelete), 0);
        assert_eq!(q.on_event(ClusterEvent::NodeUpdate), 1);
        assert_eq!(q.active_len(), 1);
    }

    #[test]
    fn a_status_write_keeps_a_parked_pod_parked_and_a_spec_change_does_not() {
        let now = Instant::now();
        let mut q = SchedulingQueue::new();
        let p = pod("p", "2026-01-01T00:00:00Z");
        q.park(p.clone(), Plugins::of(&[Plugin::TaintToleration]), now);
        let mut status = p.clone();
        status.status = Some(Default::default());
        q.add(status);
        assert_eq!((q.active_len(), q.unschedulable_len()), (0, 1));
        let mut tolerant = p;
        tolerant.spec.as_mut().unwrap().tolerations = Some(vec![Default::default()]);
        q.add(tolerant);
        assert_eq!((q.active_len(), q.unschedulable_len()), (1, 0));
    }

    #[test]
    fn parked_pods_come_back_after_the_longest_wait_and_backoffs_after_theirs() {
        let now = Instant::now();
        let mut q = SchedulingQueue::new();
        q.park(pod("parked", "2026-01-01T00:00:00Z"), Plugins::ALL, now);
        q.back_off(pod("refused", "2026-01-01T00:00:01Z"), now);
        assert_eq!(q.next_due(), Some(now + BACKOFF));
        assert_eq!(q.pop(now).map(|p| p.metadata.name), None);
        assert_eq!(names(&mut q, now + BACKOFF), ["refused"]);
        assert_eq!(q.flush(now + MAX_UNSCHEDULABLE / 2), 0);
        assert_eq!(q.flush(now + MAX_UNSCHEDULABLE), 1);
        assert_eq!(names(&mut q, now + MAX_UNSCHEDULABLE), ["parked"]);
        assert_eq!(q.next_due(), None);
    }

    #[test]
    fn a_deleted_pod_leaves_every_queue() {
        let now = Instant::now();
        let mut q = SchedulingQueue::new();
        q.add(pod("a", "2026-01-01T00:00:00Z"));
        q.park(pod("b", "2026-01-01T00:00:00Z"), Plugins::ALL, now);
        q.delete(&("default".into(), "a".into()));
        q.delete(&("default".into(), "b".into()));
        assert_eq!(q.on_event(ClusterEvent::NodeAdd), 0);
        assert_eq!(q.pop(now).map(|p| p.metadata.name), None);
    }
}
