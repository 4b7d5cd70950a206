//! Deletion rules of the store: preconditions, finalizers, pod graceful deletion (the
//! terminator seam described in the store's module docs), cascading to dependents by
//! ownerReference, and namespace contents. Part of `Store`'s implementation.

use serde_json::Value;

use super::{
    DeleteOptions, Deleted, EventType, Key, Kind, Propagation, Store, StoreError, kinds, meta,
};
use std::sync::atomic::Ordering;

impl Store {
    /// Deletes an object following Kubernetes rules: objects with finalizers and pods with a
    /// grace period (when a pod terminator is present) are marked; everything else goes
    /// at once, cascading to dependents per `opts.propagation`. Deleting a namespace deletes
    /// everything in it.
    pub fn delete(
        &self,
        kind: &'static Kind,
        namespace: &str,
        name: &str,
        opts: &DeleteOptions,
    ) -> Result<Deleted, StoreError> {
        let namespace = if kind.namespaced { namespace } else { "" };
        if kind.plural == "namespaces" && name == "default" {
            return Err(StoreError::Forbidden(
                "namespaces \"default\" is forbidden: this namespace may not be deleted"
                    .to_string(),
            ));
        }
        let live = self
            .get(kind.plural, namespace, name)
            .ok_or_else(|| StoreError::NotFound {
                resource: kind.plural,
                name: name.to_string(),
            })?;
        let conflict = || StoreError::Conflict {
            resource: kind.plural,
            name: name.to_string(),
        };
        if opts
            .precondition_uid
            .as_deref()
            .is_some_and(|u| u != meta::uid(&live))
        {
            return Err(conflict());
        }
        if opts
            .precondition_rv
            .as_deref()
            .is_some_and(|r| r != meta::rv(&live))
        {
            return Err(conflict());
        }
        let graceful_pod = kind.plural == "pods"
            && opts.grace_period != Some(0)
            && self.pod_terminator.load(Ordering::SeqCst)
            && !meta::pod_finished(&live);
        if graceful_pod || !meta::finalizers(&live).is_empty() {
            if meta::deletion_timestamp(&live).is_some()
                && !(kind.plural == "pods" && opts.grace_period == Some(0))
            {
                return Ok(Deleted::Pending(live));
            }
            if graceful_pod {
                let mut marked = live.clone();
                let grace = opts.grace_period.unwrap_or_else(|| meta::pod_grace(&live));
                meta::mark_deleted(&mut marked, grace);
                let marked = self.write_marked(kind, namespace, name, marked)?;
                return Ok(Deleted::Pending(marked));
            }
            if meta::finalizers(&live).iter().any(|f| !f.is_empty()) {
                let mut marked = live.clone();
                meta::mark_deleted(&mut marked, 0);
                let marked = self.write_marked(kind, namespace, name, marked)?;
                return Ok(Deleted::Pending(marked));
            }
        }
        if kind.plural == "namespaces" {
            self.delete_namespace_contents(name);
        }
        self.remove_with(kind, namespace, name, opts.propagation, None)
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

    fn write_marked(
        &self,
        kind: &'static Kind,
        namespace: &str,
        name: &str,
        mut obj: Value,
    ) -> Result<Value, StoreError> {
        let mut state = self.lock();
        let key = (kind.plural, namespace.to_string(), name.to_string());
        let previous = state.objects.get(&key).cloned();
        meta::set_rv(&mut obj, state.rv + 1);
        state.objects.insert(key, obj.clone());
        self.record(
            &mut state,
            EventType::Modified,
            kind,
            namespace,
            obj.clone(),
            previous,
        );
        Ok(obj)
    }

    fn delete_namespace_contents(&self, namespace: &str) {
        let keys: Vec<Key> = self
            .lock()
            .objects
            .keys()
            .filter(|(_, ns, _)| ns == namespace)
            .cloned()
            .collect();
        for (resource, ns, name) in keys {
            if let Some(kind) = kinds::stored(resource) {
                // Already gone through a cascade: fine.
                let _ = self.remove_with(kind, &ns, &name, Propagation::Background, None);
            }
        }
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
            let Some(mut obj) = state.objects.remove(&key) else {
                return Err(StoreError::NotFound {
                    resource: kind.plural,
                    name: name.to_string(),
                });
            };
            meta::set_rv(&mut obj, state.rv + 1);
            self.record(
                &mut state,
                EventType::Deleted,
                kind,
                namespace,
                obj.clone(),
                previous,
            );
            obj
        };
        self.set_pod_metrics(namespace, name, None);
        let uid = meta::uid(&removed).to_string();
        if !uid.is_empty() {
            self.cascade(&uid, propagation);
        }
        Ok(Deleted::Gone(removed))
    }

    /// Deletes (or orphans) every object owned by `uid`.
    fn cascade(&self, uid: &str, propagation: Propagation) {
        let dependents: Vec<(Key, Value)> = self
            .lock()
            .objects
            .iter()
            .filter(|(_, v)| meta::owned_by(v, uid))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for ((resource, ns, name), obj) in dependents {
            let Some(kind) = kinds::stored(resource) else {
                continue;
            };
            if propagation == Propagation::Orphan {
                let mut orphan = obj;
                meta::drop_owner(&mut orphan, uid);
                let _ = self.write_marked(kind, &ns, &name, orphan);
            } else {
                // A dependent may already be gone or marked; either is fine.
                let _ = self.delete(kind, &ns, &name, &DeleteOptions::default());
            }
        }
    }
}
