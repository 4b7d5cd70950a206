//! The scheduler's state and what each watch event does to it, mirroring upstream
//! `pkg/scheduler/eventhandlers.go` and `schedule_one.go`:
//!
//! - A pod that needs a node (no `nodeName`, ours by `schedulerName`, not being deleted)
//!   goes to the queue (`addPodToSchedulingQueue` / `updatePodInSchedulingQueue`).
//! - A bound pod goes to the cache (`addPodToCache` / `updatePodInCache`); deleted or run
//!   to its end, it leaves it (`deletePodFromCache`). A node likewise (`addNodeToCache`,
//!   `updateNodeInCache`, `deleteNodeFromCache`).
//! - Each cache change that can make a parked pod fit is passed to the queue as a
//!   [`ClusterEvent`] (`MoveAllToActiveOrBackoffQueue`).
//! - A bound pod's status write (the kubelet reporting Running, Ready, ...) is skipped
//!   before the pod is even parsed: most events of a busy lab are those.
//!
//! [`Scheduler::schedule_next`] is `scheduleOne`: pop, decide on the cache, bind and
//! assume, or park with the plugins that said no. Used by the loop in `mod.rs`.

use std::time::Instant;

use k8s_openapi::api::core::v1::{Node, Pod};
use serde::Deserialize;
use serde_json::Value;

use super::cache::Cache;
use super::queue::{ClusterEvent, SchedulingQueue, key};
use super::{BindError, Decision, SCHEDULER, attempt, bind, finished, unschedulable};
use crate::store::{EventType, Store, StoredEvent};

/// The cache and the queue.
#[derive(Debug, Default)]
pub(super) struct Scheduler {
    cache: Cache,
    queue: SchedulingQueue,
}

impl Scheduler {
    pub(super) fn new() -> Scheduler {
        Scheduler::default()
    }

    /// A pod event.
    pub(super) fn on_pod(&mut self, e: &StoredEvent) {
        if e.kind == EventType::Modified
            && let Some(previous) = &e.previous
            && bound_status_write(previous, &e.object)
        {
            return;
        }
        let Ok(pod) = Pod::deserialize(&*e.object) else {
            return;
        };
        let k = key(&pod);
        let event = if e.kind == EventType::Deleted {
            self.queue.delete(&k);
            self.cache.remove_pod(&k)
        } else if pod.spec.as_ref().is_some_and(|s| s.node_name.is_some()) {
            self.queue.delete(&k);
            if finished(&pod) {
                self.cache.remove_pod(&k)
            } else {
                self.cache.add_pod(pod)
            }
        } else if needs_scheduling(&pod) {
            self.queue.add(pod);
            None
        } else {
            self.queue.delete(&k);
            None
        };
        self.moved(event);
    }

    /// A node event.
    pub(super) fn on_node(&mut self, e: &StoredEvent) {
        if e.kind == EventType::Deleted {
            let name = e.object.pointer("/metadata/name").and_then(Value::as_str);
            self.cache.remove_node(name.unwrap_or_default());
            return;
        }
        let Ok(node) = Node::deserialize(&*e.object) else {
            return;
        };
        let event = self.cache.set_node(&node);
        self.moved(event);
    }

    fn moved(&mut self, event: Option<ClusterEvent>) {
        if let Some(event) = event {
            self.queue.on_event(event);
        }
    }

    /// Schedules the next active pod, if there is one.
    pub(super) fn schedule_next(&mut self, store: &Store, now: Instant) -> bool {
        let Some(pod) = self.queue.pop(now) else {
            return false;
        };
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        let name = pod.metadata.name.clone().unwrap_or_default();
        let pick = &mut |n: usize| rand::random_range(0..n);
        match attempt(&pod, self.cache.snapshot(), pick) {
            (Decision::Bind(node), _) => match bind(store, &ns, &name, &node) {
                Ok(()) => {
                    let mut bound = pod;
                    if let Some(s) = bound.spec.as_mut() {
                        s.node_name = Some(node);
                    }
                    let event = self.cache.add_pod(bound);
                    self.moved(event);
                }
                // Deleted, or bound by someone else: the pod's own event says so.
                Err(BindError::NotFound(_) | BindError::Assigned { .. }) => {}
                Err(BindError::Store(e)) => {
                    tracing::debug!("binding {ns}/{name} to {node} failed: {e}");
                    self.queue.back_off(pod, now);
                }
            },
            (Decision::Unschedulable(message), rejected_by) => {
                unschedulable(store, &pod, &message);
                self.queue.park(pod, rejected_by, now);
            }
        }
        true
    }

    /// When the loop must look at the queue again without an event.
    pub(super) fn next_due(&self) -> Option<Instant> {
        self.queue.next_due()
    }

    /// Moves the pods parked too long back to the active queue.
    pub(super) fn flush(&mut self, now: Instant) {
        self.queue.flush(now);
    }
}

/// Whether the pod is the scheduler's to place.
fn needs_scheduling(pod: &Pod) -> bool {
    let spec = pod.spec.as_ref();
    spec.is_some_and(|s| s.node_name.is_none())
        && spec
            .and_then(|s| s.scheduler_name.as_deref())
            .is_none_or(|s| s == SCHEDULER)
        && pod.metadata.deletion_timestamp.is_none()
}

/// Whether a change of a pod bound before and after touches nothing the scheduler reads:
/// the same spec, labels, deletion mark and phase.
fn bound_status_write(previous: &Value, now: &Value) -> bool {
    let same = |path: &str| previous.pointer(path) == now.pointer(path);
    let bound = |v: &Value| v.pointer("/spec/nodeName").is_some_and(Value::is_string);
    bound(previous)
        && bound(now)
        && same("/spec")
        && same("/metadata/labels")
        && same("/metadata/deletionTimestamp")
        && same("/status/phase")
}
