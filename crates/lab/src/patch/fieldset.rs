//! Field sets: which fields of an object a field manager owns, in the FieldsV1 format of
//! `metadata.managedFields[].fieldsV1` (sigs.k8s.io/structured-merge-diff `fieldpath`).
//!
//! A set is a tree whose edges are path elements: `f:<field>` for an object field,
//! `k:{"name":"web"}` for the element of a keyed list (the key fields as compact JSON,
//! sorted by name), `v:<json>` for the element of a set of scalars. A node is a *member*
//! when the manager owns that value itself; in FieldsV1 a member leaf is `{}` and a
//! member with children carries `".": {}`. As upstream's `ToFieldSet`, the set of an
//! applied configuration has its scalars, atomic values (lists without a key, atomic
//! structs) and keyed/set list elements as members, never the objects that merely contain
//! them (so an empty object owns nothing).
//!
//! Also here: `prune`, which removes from an object the fields of a set. Used by `apply`.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::PatchError;
use super::keys::{self, Shape};

/// Fields upstream never records as owned (the `stripMeta` field manager): they are
/// identity or bookkeeping, not configuration.
const UNOWNED_ROOT: &[&str] = &["apiVersion", "kind"];
const UNOWNED_METADATA: &[&str] = &[
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "selfLink",
    "managedFields",
];

/// A set of field paths; see the module documentation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct FieldSet {
    member: bool,
    children: BTreeMap<String, FieldSet>,
}

impl FieldSet {
    /// The fields an applied configuration of `kind` sets. As upstream, identity metadata
    /// is never owned, nor `status` of a kind with a status subresource (an apply to the
    /// main resource does not write it).
    pub(super) fn of_applied(config: &Map<String, Value>, kind: &str) -> Result<Self, PatchError> {
        let mut set = FieldSet::default();
        let mut path = Vec::new();
        let skip_status = keys::has_status_subresource(kind);
        for (field, value) in config {
            if UNOWNED_ROOT.contains(&field.as_str()) || (skip_status && field == "status") {
                continue;
            }
            path.push(field.clone());
            walk(kind, value, &mut path, set.child_mut(field))?;
            path.pop();
        }
        if let Some(metadata) = set.children.get_mut("f:metadata") {
            for field in UNOWNED_METADATA {
                metadata.children.remove(&format!("f:{field}"));
            }
        }
        set.compact();
        Ok(set)
    }

    /// Reads a `fieldsV1` value. Anything that is not an object counts as empty: a stored
    /// entry this lab did not write must not make every later apply fail.
    pub(super) fn from_fields_v1(value: &Value) -> Self {
        let mut set = FieldSet::default();
        if let Value::Object(map) = value {
            for (name, inner) in map {
                if name == "." {
                    set.member = true;
                    continue;
                }
                let mut child = FieldSet::from_fields_v1(inner);
                if inner.as_object().is_none_or(Map::is_empty) {
                    child.member = true;
                }
                set.children.insert(name.clone(), child);
            }
        }
        set
    }

    /// The `fieldsV1` value of this set.
    pub(super) fn to_fields_v1(&self) -> Value {
        let mut out = Map::new();
        for (name, child) in &self.children {
            let mut inner = match child.to_fields_v1() {
                Value::Object(map) => map,
                _ => Map::new(),
            };
            if child.member && !child.children.is_empty() {
                inner.insert(".".to_string(), Value::Object(Map::new()));
            }
            out.insert(name.clone(), Value::Object(inner));
        }
        Value::Object(out)
    }

    /// Adds every member of `other`.
    pub(super) fn union(&mut self, other: &FieldSet) {
        self.member |= other.member;
        for (name, child) in &other.children {
            self.children.entry(name.clone()).or_default().union(child);
        }
    }

    /// The members of `self` that are not members of `other`.
    pub(super) fn difference(&self, other: &FieldSet) -> FieldSet {
        let empty = FieldSet::default();
        let mut out = FieldSet {
            member: self.member && !other.member,
            children: BTreeMap::new(),
        };
        for (name, child) in &self.children {
            let rest = child.difference(other.children.get(name).unwrap_or(&empty));
            if rest.has_members() {
                out.children.insert(name.clone(), rest);
            }
        }
        out
    }

    /// Whether this node or anything below it is a member.
    pub(super) fn has_members(&self) -> bool {
        self.member || self.children.values().any(FieldSet::has_members)
    }

    fn child_mut(&mut self, field: &str) -> &mut FieldSet {
        self.children.entry(format!("f:{field}")).or_default()
    }

    /// Drops nodes that own nothing, so no empty `f:metadata: {}` is written.
    fn compact(&mut self) {
        for child in self.children.values_mut() {
            child.compact();
        }
        self.children.retain(|_, child| child.has_members());
    }
}

/// Records the fields of `value`, found at `path`, under `node`.
fn walk(
    kind: &str,
    value: &Value,
    path: &mut Vec<String>,
    node: &mut FieldSet,
) -> Result<(), PatchError> {
    let shape = keys::shape(kind, path);
    match value {
        // An empty object owns nothing, as upstream's `ToFieldSet` (only atomic ones count).
        Value::Object(map) if shape != Shape::Atomic => {
            for (field, inner) in map {
                path.push(field.clone());
                let child = node.children.entry(format!("f:{field}")).or_default();
                walk(kind, inner, path, child)?;
                path.pop();
            }
        }
        Value::Array(items) if matches!(shape, Shape::Keyed { .. } | Shape::Set) => {
            for item in items {
                let name = element_name(shape, item)
                    .map_err(|why| PatchError::BadRequest(format!("{}: {why}", path.join("."))))?
                    .unwrap_or_default();
                let child = node.children.entry(name.clone()).or_default();
                if child.member {
                    return Err(PatchError::BadRequest(format!(
                        "{}: duplicate entries for {name}",
                        path.join(".")
                    )));
                }
                child.member = true;
                // The element's own fields; list elements add no component to the path.
                if let Value::Object(fields) = item {
                    for (field, inner) in fields {
                        path.push(field.clone());
                        let grandchild = child.children.entry(format!("f:{field}")).or_default();
                        walk(kind, inner, path, grandchild)?;
                        path.pop();
                    }
                }
            }
        }
        // Scalars, nulls, atomic values and lists without a key.
        _ => node.member = true,
    }
    Ok(())
}

/// The path element of a list element: `k:{...}` in a keyed list, `v:...` in a set,
/// `None` in any other list (which is atomic and never descended into).
pub(super) fn element_name(shape: Shape, item: &Value) -> Result<Option<String>, String> {
    match shape {
        Shape::Keyed { keys, .. } => {
            let Value::Object(fields) = item else {
                return Err(format!("element {item} of a keyed list is not an object"));
            };
            let mut key = Map::new();
            for (field, default) in keys {
                let value = match (fields.get(*field), default) {
                    (Some(value), _) => value.clone(),
                    (None, Some(default)) => Value::String((*default).to_string()),
                    (None, None) => {
                        return Err(format!("element {item} omits the key field {field}"));
                    }
                };
                key.insert((*field).to_string(), value);
            }
            // serde_json keeps object keys sorted, as upstream sorts key fields by name.
            Ok(Some(format!("k:{}", Value::Object(key))))
        }
        Shape::Set => match item {
            Value::Object(_) | Value::Array(_) | Value::Null => Err(format!(
                "element {item} of a set of scalars is not a scalar"
            )),
            scalar => Ok(Some(format!("v:{scalar}"))),
        },
        Shape::Atomic | Shape::Plain => Ok(None),
    }
}

/// The members of `set` whose value was added or modified between `old` and `new` (both
/// found at `path`), as structured-merge-diff's `Compare` sees it: a leaf changed when its
/// value differs; a list element or object that has fields of its own in `set` counts as
/// changed only when it is new, its fields are compared one by one.
pub(super) fn changed(
    kind: &str,
    set: &FieldSet,
    old: Option<&Value>,
    new: Option<&Value>,
    path: &mut Vec<String>,
) -> FieldSet {
    let mut out = FieldSet {
        member: set.member
            && if set.children.is_empty() {
                old != new
            } else {
                old.is_none() && new.is_some()
            },
        children: BTreeMap::new(),
    };
    for (name, child) in &set.children {
        let before = child_value(kind, old, name, path);
        let after = child_value(kind, new, name, path);
        let field = name.strip_prefix("f:");
        if let Some(field) = field {
            path.push(field.to_string());
        }
        let inner = changed(kind, child, before, after, path);
        if field.is_some() {
            path.pop();
        }
        if inner.has_members() {
            out.children.insert(name.clone(), inner);
        }
    }
    out
}

/// The value a path element names inside `value` (found at `path`).
fn child_value<'v>(
    kind: &str,
    value: Option<&'v Value>,
    name: &str,
    path: &[String],
) -> Option<&'v Value> {
    let value = value?;
    if let Some(field) = name.strip_prefix("f:") {
        return value.as_object()?.get(field);
    }
    let shape = keys::shape(kind, path);
    value
        .as_array()?
        .iter()
        .find(|item| element_name(shape, item).ok().flatten().as_deref() == Some(name))
}

/// Removes from `value` (found at `path` in an object of `kind`) every member of
/// `removed`, except where `keep` still owns the value or something inside it; then only
/// the removed parts inside are taken out.
pub(super) fn prune(
    kind: &str,
    value: &mut Value,
    removed: &FieldSet,
    keep: Option<&FieldSet>,
    path: &mut Vec<String>,
) {
    let kept = |name: &str| keep.and_then(|k| k.children.get(name));
    match value {
        Value::Object(map) => {
            for (name, gone) in &removed.children {
                let Some(field) = name.strip_prefix("f:") else {
                    continue;
                };
                let still = kept(name);
                if gone.member && !still.is_some_and(FieldSet::has_members) {
                    map.remove(field);
                } else if let Some(inner) = map.get_mut(field) {
                    path.push(field.to_string());
                    prune(kind, inner, gone, still, path);
                    path.pop();
                }
            }
        }
        Value::Array(items) => {
            let shape = keys::shape(kind, path);
            let mut out = Vec::with_capacity(items.len());
            for mut item in std::mem::take(items) {
                let name = element_name(shape, &item).ok().flatten();
                let Some((name, gone)) =
                    name.and_then(|n| removed.children.get(&n).map(|g| (n, g)))
                else {
                    out.push(item);
                    continue;
                };
                let still = kept(&name);
                if gone.member && !still.is_some_and(FieldSet::has_members) {
                    continue;
                }
                prune(kind, &mut item, gone, still, path);
                out.push(item);
            }
            *items = out;
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn set_of(kind: &str, config: Value) -> FieldSet {
        FieldSet::of_applied(config.as_object().unwrap(), kind).unwrap()
    }

    #[test]
    fn deployment_field_set_has_the_upstream_fields_v1_shape() {
        let set = set_of(
            "Deployment",
            json!({
                "apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
                "spec": {
                    "replicas": 2,
                    "selector": {"matchLabels": {"app": "web"}},
                    "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{
                        "name": "web", "image": "web:v1", "args": ["--port", "8080"],
                        "ports": [{"containerPort": 8080}],
                        "env": [{"name": "MODE", "value": "blue"}],
                        "resources": {}
                    }]}}
                }
            }),
        );
        assert_eq!(
            set.to_fields_v1(),
            json!({
                "f:metadata": {"f:labels": {"f:app": {}}},
                "f:spec": {
                    "f:replicas": {},
                    "f:selector": {},
                    "f:template": {
                        "f:metadata": {"f:labels": {"f:app": {}}},
                        "f:spec": {"f:containers": {"k:{\"name\":\"web\"}": {
                            ".": {},
                            "f:args": {},
                            "f:env": {"k:{\"name\":\"MODE\"}": {".": {}, "f:name": {}, "f:value": {}}},
                            "f:image": {},
                            "f:name": {},
                            "f:ports": {"k:{\"containerPort\":8080,\"protocol\":\"TCP\"}": {
                                ".": {}, "f:containerPort": {}
                            }}
                        }}}
                    }
                }
            })
        );
    }

    #[test]
    fn atomic_references_and_status_of_main_resources_are_recorded_as_upstream_does() {
        let pod = json!({
            "spec": {"containers": [{"name": "web", "env": [
                {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}
            ]}]},
            "status": {"phase": "Running"}
        });
        assert_eq!(
            set_of("Pod", pod.clone()).to_fields_v1(),
            json!({"f:spec": {"f:containers": {"k:{\"name\":\"web\"}": {
                ".": {}, "f:name": {},
                "f:env": {"k:{\"name\":\"NODE\"}": {
                    ".": {}, "f:name": {}, "f:valueFrom": {"f:fieldRef": {}}
                }}
            }}}})
        );
        // A kind without a status subresource owns what it applies under `status`.
        assert!(
            set_of("Thing", pod)
                .to_fields_v1()
                .get("f:status")
                .is_some()
        );
    }

    #[test]
    fn fields_v1_round_trips() {
        let v1 = json!({
            "f:metadata": {"f:finalizers": {"v:\"a\"": {}}},
            "f:spec": {"f:containers": {"k:{\"name\":\"web\"}": {".": {}, "f:image": {}}}}
        });
        assert_eq!(FieldSet::from_fields_v1(&v1).to_fields_v1(), v1);
    }

    #[test]
    fn difference_keeps_members_only_in_the_first_set() {
        let before = set_of(
            "Pod",
            json!({"spec": {"containers": [
                {"name": "web", "image": "a"}, {"name": "sidecar", "image": "b"}
            ]}}),
        );
        let after = set_of(
            "Pod",
            json!({"spec": {"containers": [{"name": "web", "image": "a"}]}}),
        );
        assert_eq!(
            before.difference(&after).to_fields_v1(),
            json!({"f:spec": {"f:containers": {"k:{\"name\":\"sidecar\"}": {
                ".": {}, "f:image": {}, "f:name": {}
            }}}})
        );
        assert!(!after.difference(&before).has_members());
    }

    #[test]
    fn keyed_elements_without_their_key_or_duplicated_are_bad_requests() {
        for config in [
            json!({"spec": {"containers": [{"image": "x"}]}}),
            json!({"spec": {"containers": [{"name": "a"}, {"name": "a"}]}}),
            json!({"metadata": {"finalizers": [{"a": 1}]}}),
        ] {
            let result = FieldSet::of_applied(config.as_object().unwrap(), "Pod");
            assert!(matches!(result, Err(PatchError::BadRequest(_))), "{config}");
        }
    }

    #[test]
    fn prune_removes_fields_unless_kept() {
        let mut object = json!({"spec": {"replicas": 3, "paused": true, "containers": [
            {"name": "web", "image": "a", "env": [{"name": "X", "value": "1"}]},
            {"name": "sidecar", "image": "b"}
        ]}});
        let removed = set_of(
            "Pod",
            json!({"spec": {"replicas": 3, "containers": [
                {"name": "sidecar", "image": "b"}, {"name": "web", "image": "a"}
            ]}}),
        );
        let keep = set_of(
            "Pod",
            json!({"spec": {"containers": [
                {"name": "web", "env": [{"name": "X", "value": "1"}]}
            ]}}),
        );
        prune("Pod", &mut object, &removed, Some(&keep), &mut Vec::new());
        assert_eq!(
            object,
            json!({"spec": {"paused": true, "containers": [
                {"name": "web", "env": [{"name": "X", "value": "1"}]}
            ]}})
        );
    }
}
