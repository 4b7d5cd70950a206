//! The store's indexes for the garbage collector: owner uid → the keys of its dependents
//! (objects whose `metadata.ownerReferences` name that uid), and uid → key. Kept in step
//! with the object map by [`State::put`] and [`State::take`], the only two ways an object
//! enters or leaves the store, so a cascade finds the dependents of an owner without
//! scanning every object (upstream keeps the same graph in the garbage collector's
//! `GraphBuilder`, `pkg/controller/garbagecollector/graph_builder.go`).

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use serde_json::Value;

use super::{Key, State, meta};

/// Owner uid → dependent keys, and uid → key.
#[derive(Debug, Default)]
pub(crate) struct OwnerIndex {
    dependents: HashMap<String, BTreeSet<Key>>,
    by_uid: HashMap<String, Key>,
}

impl OwnerIndex {
    /// Indexes every object of a freshly loaded map.
    pub(crate) fn build<'a>(objects: impl Iterator<Item = (&'a Key, &'a Value)>) -> OwnerIndex {
        let mut index = OwnerIndex::default();
        for (key, obj) in objects {
            index.add(key, obj);
        }
        index
    }

    fn add(&mut self, key: &Key, obj: &Value) {
        for owner in owner_uids(obj) {
            self.dependents
                .entry(owner.to_string())
                .or_default()
                .insert(key.clone());
        }
        let uid = meta::uid(obj);
        if !uid.is_empty() {
            self.by_uid.insert(uid.to_string(), key.clone());
        }
    }

    fn forget(&mut self, key: &Key, obj: &Value) {
        for owner in owner_uids(obj) {
            if let Some(set) = self.dependents.get_mut(owner) {
                set.remove(key);
                if set.is_empty() {
                    self.dependents.remove(owner);
                }
            }
        }
        let uid = meta::uid(obj);
        if self.by_uid.get(uid) == Some(key) {
            self.by_uid.remove(uid);
        }
    }

    /// Keys of the objects that name `uid` as an owner.
    pub(crate) fn dependents_of(&self, uid: &str) -> Vec<Key> {
        self.dependents
            .get(uid)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// The key of the object with this uid.
    pub(crate) fn key_of(&self, uid: &str) -> Option<&Key> {
        self.by_uid.get(uid)
    }
}

/// The uids `obj`'s ownerReferences name.
pub(crate) fn owner_uids(obj: &Value) -> impl Iterator<Item = &str> {
    obj.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|r| r.get("uid").and_then(Value::as_str))
}

/// Whether `obj` names `uid` as an owner with `blockOwnerDeletion: true` (a dependent a
/// foreground deletion of that owner waits for).
pub(crate) fn blocks(obj: &Value, uid: &str) -> bool {
    obj.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .is_some_and(|refs| {
            refs.iter().any(|r| {
                r.get("uid").and_then(Value::as_str) == Some(uid)
                    && r.get("blockOwnerDeletion").and_then(Value::as_bool) == Some(true)
            })
        })
}

impl State {
    /// Stores `obj` under `key`, keeping the indexes in step; returns the previous value.
    pub(crate) fn put(&mut self, key: Key, obj: Arc<Value>) -> Option<Arc<Value>> {
        let previous = self.objects.insert(key.clone(), obj);
        if let Some(old) = &previous {
            self.owners.forget(&key, old);
            self.event_ages.forget(&key, old);
        }
        if let Some(new) = self.objects.get(&key) {
            self.owners.add(&key, new);
            self.event_ages.add(&key, new);
        }
        previous
    }

    /// Removes the object under `key`, keeping the indexes in step.
    pub(crate) fn take(&mut self, key: &Key) -> Option<Value> {
        let obj = self.objects.remove(key)?;
        self.owners.forget(key, &obj);
        self.event_ages.forget(key, &obj);
        Some(Arc::unwrap_or_clone(obj))
    }
}
