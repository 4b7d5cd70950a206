//! The store's namespace lifecycle, as upstream's namespace registry
//! (`pkg/registry/core/namespace/storage/storage.go`) and lifecycle admission
//! (`plugin/pkg/admission/namespace/lifecycle/admission.go`) define it:
//!
//! 1. A namespace is created with the `kubernetes` finalizer in `spec.finalizers`.
//! 2. Deleting it marks it: `deletionTimestamp` and `status.phase: Terminating`. The
//!    system namespaces ([`PROTECTED`]) are never deleted (403).
//! 3. Creating anything in a Terminating namespace is refused (403, cause
//!    `NamespaceTerminating`); updates and deletions go on.
//! 4. The namespace controller (`controllers/namespace.rs`) deletes what is in it and
//!    then drops the `kubernetes` finalizer with [`Store::finalize_namespace`]; with no
//!    finalizer left, the namespace goes.

use serde_json::{Value, json};

use super::{Key, Propagation, Store, StoreError, kinds, meta};

/// The namespace finalizer the namespace controller owns.
pub const KUBERNETES_FINALIZER: &str = "kubernetes";

/// Namespaces that may not be deleted (upstream's lifecycle admission keeps the same set).
pub const PROTECTED: &[&str] = &["default", "kube-system", "kube-public", "kube-node-lease"];

/// Refuses deleting a system namespace.
pub(super) fn check_deletable(name: &str) -> Result<(), StoreError> {
    if PROTECTED.contains(&name) {
        return Err(StoreError::Forbidden(format!(
            "namespaces \"{name}\" is forbidden: this namespace may not be deleted"
        )));
    }
    Ok(())
}

/// Sets `spec.finalizers: [kubernetes]` on a namespace being created.
pub(super) fn default_finalizers(obj: &mut Value) {
    if !obj.get("spec").is_some_and(Value::is_object) {
        obj["spec"] = json!({});
    }
    obj["spec"]["finalizers"] = json!([KUBERNETES_FINALIZER]);
}

/// Puts the live `spec.finalizers` into a namespace being written.
pub(super) fn keep_spec_finalizers(live: &Value, new: &mut Value) {
    let kept = live.pointer("/spec/finalizers").cloned();
    if !new.get("spec").is_some_and(Value::is_object) {
        if kept.is_none() {
            return;
        }
        new["spec"] = json!({});
    }
    if let Some(spec) = new["spec"].as_object_mut() {
        match kept {
            Some(f) => spec.insert("finalizers".into(), f),
            None => spec.remove("finalizers"),
        };
    }
}

/// `spec.finalizers` of a namespace.
pub(super) fn spec_finalizers(obj: &Value) -> Vec<&str> {
    obj.pointer("/spec/finalizers")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// Whether a namespace object is being deleted.
pub fn terminating(ns: &Value) -> bool {
    meta::deletion_timestamp(ns).is_some()
        || ns.pointer("/status/phase").and_then(Value::as_str) == Some("Terminating")
}

impl Store {
    /// Marks namespace `name` Terminating (its controller empties and finalizes it).
    pub(super) fn mark_terminating(&self, name: &str, live: Value) -> Result<Value, StoreError> {
        let mut marked = live;
        meta::mark_deleted(&mut marked, 0);
        marked["status"] = json!({"phase": "Terminating"});
        if !spec_finalizers(&marked).contains(&KUBERNETES_FINALIZER) {
            // A namespace stored before finalizers were defaulted still gets emptied.
            default_finalizers(&mut marked);
        }
        let marked = self.write_marked(kinds::kind("namespaces"), "", name, marked)?;
        if spec_finalizers(&marked).is_empty() && meta::finalizers(&marked).is_empty() {
            self.remove_with(
                kinds::kind("namespaces"),
                "",
                name,
                Propagation::Background,
                None,
            )?;
        }
        Ok(marked)
    }

    /// Keys of every object in `namespace`.
    pub fn namespace_contents(&self, namespace: &str) -> Vec<Key> {
        self.lock()
            .objects
            .keys()
            .filter(|(r, ns, _)| *r != "namespaces" && ns == namespace)
            .cloned()
            .collect()
    }

    /// Drops the `kubernetes` finalizer of a Terminating namespace; the namespace goes
    /// when no finalizer is left. Returns whether it is gone.
    pub fn finalize_namespace(&self, name: &str) -> Result<bool, StoreError> {
        let kind = kinds::kind("namespaces");
        let live = self
            .get("namespaces", "", name)
            .ok_or_else(|| StoreError::NotFound {
                resource: kind.plural,
                name: name.to_string(),
            })?;
        let mut done = live.clone();
        if let Some(list) = done
            .pointer_mut("/spec/finalizers")
            .and_then(Value::as_array_mut)
        {
            list.retain(|f| f != KUBERNETES_FINALIZER);
        }
        if spec_finalizers(&done).is_empty() && meta::finalizers(&done).is_empty() {
            self.remove_with(kind, "", name, Propagation::Background, Some(live))?;
            return Ok(true);
        }
        self.write_marked(kind, "", name, done)?;
        Ok(false)
    }
}
