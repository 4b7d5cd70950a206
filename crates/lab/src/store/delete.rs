//! Deletion rules of the store: preconditions, finalizers, pod graceful deletion (the
//! terminator seam described in the store's module docs), namespaces (marked
//! `Terminating`, emptied by the namespace controller, see `namespaces.rs`) and the
//! garbage collector for ownerReferences. Part of `Store`'s implementation.
//!
//! The garbage collector mirrors `pkg/controller/garbagecollector/garbagecollector.go`
//! (`attemptToDeleteItem`, `processDeletingDependentsItem`, `orphanDependents`), run
//! synchronously inside the store with the owner → dependents index of `owners.rs`:
//!
//! 1. **Background** (the default): the owner goes at once, then each dependent is
//!    deleted (pods gracefully, and their own dependents in turn).
//! 2. **Foreground**: an owner with dependents is marked (`deletionTimestamp` and the
//!    `foregroundDeletion` finalizer) and its dependents are deleted in the foreground
//!    too; once no dependent with `blockOwnerDeletion: true` is left, the finalizer is
//!    dropped and the owner goes. A dependent leaving the store re-checks its owners.
//! 3. **Orphan**: each dependent's ownerReference to the owner is removed, then the owner
//!    goes (upstream does the same through the `orphan` finalizer).

use serde_json::{Value, json};

use super::owners;
use super::{
    DeleteOptions, Deleted, EventType, Key, Kind, Propagation, Store, StoreError, kinds, meta,
};
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// The finalizer that holds an owner deleted in the foreground.
pub const FOREGROUND_FINALIZER: &str = "foregroundDeletion";

impl Store {
    /// Deletes an object following Kubernetes rules: objects with finalizers and pods with a
    /// grace period (when a pod terminator is present) are marked; namespaces are marked
    /// `Terminating`; everything else goes at once, and dependents follow per
    /// `opts.propagation`.
    pub fn delete(
        &self,
        kind: &'static Kind,
        namespace: &str,
        name: &str,
        opts: &DeleteOptions,
    ) -> Result<Deleted, StoreError> {
        let namespace = if kind.namespaced { namespace } else { "" };
        if kind.plural == "namespaces" {
            super::namespaces::check_deletable(name)?;
        }
        let live = self
            .get(kind.plural, namespace, name)
            .ok_or_else(|| StoreError::NotFound {
                resource: kind.plural,
                name: name.to_string(),
            })?;
        check_preconditions(kind, name, &live, opts)?;
        let force_pod = kind.plural == "pods" && opts.grace_period == Some(0);
        if meta::deletion_timestamp(&live).is_some() && !force_pod {
            return Ok(Deleted::Pending(live));
        }
        let uid = meta::uid(&live).to_string();
        if opts.propagation == Propagation::Orphan {
            self.orphan_dependents(&uid);
        }
        if kind.plural == "namespaces" {
            return self.mark_terminating(name, live).map(Deleted::Pending);
        }
        let graceful_pod = kind.plural == "pods"
            && !force_pod
            && self.pod_terminator.load(Ordering::SeqCst)
            && !meta::pod_finished(&live);
        let foreground = opts.propagation == Propagation::Foreground && self.has_dependents(&uid);
        let finalizers = meta::finalizers(&live).iter().any(|f| !f.is_empty());
        if !(graceful_pod || foreground || finalizers) {
            return self.remove_with(kind, namespace, name, opts.propagation, None);
        }
        let mut marked = live.clone();
        let grace = if graceful_pod {
            opts.grace_period.unwrap_or_else(|| meta::pod_grace(&live))
        } else {
            0
        };
        meta::mark_deleted(&mut marked, grace);
        if foreground {
            add_finalizer(&mut marked, FOREGROUND_FINALIZER);
        }
        let marked = self.write_marked(kind, namespace, name, marked)?;
        if !foreground {
            return Ok(Deleted::Pending(marked));
        }
        self.delete_dependents(&uid, Propagation::Foreground);
        self.finish_foreground(&uid);
        Ok(match self.get(kind.plural, namespace, name) {
            Some(still) => Deleted::Pending(still),
            None => Deleted::Gone(marked),
        })
    }

    /// Removes an object at once, ignoring finalizers and grace periods — the end of a
    /// graceful deletion (the kubelet calls this for pods it has stopped). Dependents are
    /// deleted in the background.
    pub fn remove(
        &self,
        resource: &str,
        namespace: &str,
        name: &str,
    ) -> Result<Deleted, StoreError> {
        let kind = kinds::stored(resource).ok_or_else(|| StoreError::NotFound {
            resource: "resources",
            name: resource.to_string(),
        })?;
        self.remove_with(kind, namespace, name, Propagation::Background, None)
    }

    pub(super) fn write_marked(
        &self,
        kind: &'static Kind,
        namespace: &str,
        name: &str,
        mut obj: Value,
    ) -> Result<Value, StoreError> {
        let mut state = self.lock();
        let key = (kind.plural, namespace.to_string(), name.to_string());
        if !state.objects.contains_key(&key) {
            return Err(StoreError::NotFound {
                resource: kind.plural,
                name: name.to_string(),
            });
        }
        meta::set_rv(&mut obj, state.rv + 1);
        let shared = Arc::new(obj);
        let previous = state.put(key, shared.clone());
        self.record(
            &mut state,
            EventType::Modified,
            kind,
            namespace,
            shared.clone(),
            previous,
        );
        Ok(Arc::unwrap_or_clone(shared))
    }

    pub(super) fn remove_with(
        &self,
        kind: &'static Kind,
        namespace: &str,
        name: &str,
        propagation: Propagation,
        previous: Option<Value>,
    ) -> Result<Deleted, StoreError> {
        let removed = {
            let mut state = self.lock();
            let key = (kind.plural, namespace.to_string(), name.to_string());
            let Some(mut obj) = state.take(&key) else {
                return Err(StoreError::NotFound {
                    resource: kind.plural,
                    name: name.to_string(),
                });
            };
            meta::set_rv(&mut obj, state.rv + 1);
            let shared = Arc::new(obj);
            self.record(
                &mut state,
                EventType::Deleted,
                kind,
                namespace,
                shared.clone(),
                previous.map(Arc::new),
            );
            Arc::unwrap_or_clone(shared)
        };
        self.set_pod_metrics(namespace, name, None);
        let uid = meta::uid(&removed).to_string();
        if !uid.is_empty() {
            match propagation {
                Propagation::Orphan => self.orphan_dependents(&uid),
                _ => self.delete_dependents(&uid, Propagation::Background),
            }
        }
        for owner in owners::owner_uids(&removed) {
            self.finish_foreground(owner);
        }
        Ok(Deleted::Gone(removed))
    }

    /// Whether any object names `uid` as an owner.
    fn has_dependents(&self, uid: &str) -> bool {
        !uid.is_empty() && !self.lock().owners.dependents_of(uid).is_empty()
    }

    /// The dependents of `uid`, as (key, object).
    fn dependents(&self, uid: &str) -> Vec<(Key, Value)> {
        let state = self.lock();
        state
            .owners
            .dependents_of(uid)
            .into_iter()
            .filter_map(|k| state.objects.get(&k).map(|v| (k, Value::clone(v))))
            .collect()
    }

    /// Deletes every dependent of `uid` with `propagation`.
    fn delete_dependents(&self, uid: &str, propagation: Propagation) {
        for ((resource, ns, name), _) in self.dependents(uid) {
            let Some(kind) = kinds::stored(resource) else {
                continue;
            };
            let opts = DeleteOptions {
                propagation,
                ..DeleteOptions::default()
            };
            // A dependent may already be gone or marked; either is fine.
            let _ = self.delete(kind, &ns, &name, &opts);
        }
    }

    /// Drops every dependent's ownerReference to `uid`.
    fn orphan_dependents(&self, uid: &str) {
        for ((resource, ns, name), mut obj) in self.dependents(uid) {
            let Some(kind) = kinds::stored(resource) else {
                continue;
            };
            meta::drop_owner(&mut obj, uid);
            // Gone in between: nothing left to orphan.
            let _ = self.write_marked(kind, &ns, &name, obj);
        }
    }

    /// If the object with `uid` waits in a foreground deletion and no dependent blocks it
    /// any more, drops its `foregroundDeletion` finalizer (and so removes it when that was
    /// the last one).
    fn finish_foreground(&self, uid: &str) {
        let (key, owner) = {
            let state = self.lock();
            let Some(key) = state.owners.key_of(uid).cloned() else {
                return;
            };
            let Some(owner) = state.objects.get(&key).map(|v| Value::clone(v)) else {
                return;
            };
            let waiting = meta::deletion_timestamp(&owner).is_some()
                && meta::finalizers(&owner)
                    .iter()
                    .any(|f| f == FOREGROUND_FINALIZER);
            let blocked = state.owners.dependents_of(uid).iter().any(|k| {
                state
                    .objects
                    .get(k)
                    .is_some_and(|dep| owners::blocks(dep, uid))
            });
            if !waiting || blocked {
                return;
            }
            (key, owner)
        };
        let (resource, ns, name) = key;
        let Some(kind) = kinds::stored(resource) else {
            return;
        };
        let mut done = owner.clone();
        remove_finalizer(&mut done, FOREGROUND_FINALIZER);
        let result = if meta::finalizers(&done).is_empty() {
            self.remove_with(kind, &ns, &name, Propagation::Background, Some(owner))
                .map(drop)
        } else {
            self.write_marked(kind, &ns, &name, done).map(drop)
        };
        // Removed in between by someone else: the deletion is over either way.
        let _ = result;
    }
}

fn check_preconditions(
    kind: &'static Kind,
    name: &str,
    live: &Value,
    opts: &DeleteOptions,
) -> Result<(), StoreError> {
    let uid_differs = opts
        .precondition_uid
        .as_deref()
        .is_some_and(|u| u != meta::uid(live));
    let rv_differs = opts
        .precondition_rv
        .as_deref()
        .is_some_and(|r| r != meta::rv(live));
    if uid_differs || rv_differs {
        return Err(StoreError::Conflict {
            resource: kind.plural,
            name: name.to_string(),
        });
    }
    Ok(())
}

fn add_finalizer(obj: &mut Value, finalizer: &str) {
    let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) else {
        return;
    };
    let list = meta.entry("finalizers").or_insert_with(|| json!([]));
    if let Some(list) = list.as_array_mut()
        && !list.iter().any(|f| f == finalizer)
    {
        list.push(json!(finalizer));
    }
}

fn remove_finalizer(obj: &mut Value, finalizer: &str) {
    if let Some(list) = obj
        .pointer_mut("/metadata/finalizers")
        .and_then(Value::as_array_mut)
    {
        list.retain(|f| f != finalizer);
    }
}
