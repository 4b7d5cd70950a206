//! The lab's patch engine: the four PATCH content types of the Kubernetes API applied to a
//! stored object, as pure functions over `serde_json::Value` (no I/O, no async).
//!
//! - `application/merge-patch+json`: RFC 7386, by the `json-patch` crate.
//! - `application/json-patch+json`: RFC 6902, by the `json-patch` crate.
//! - `application/strategic-merge-patch+json`: Kubernetes strategic merge (`strategic`),
//!   what `kubectl patch` sends by default and `kubectl apply` sends as a three-way patch.
//! - `application/apply-patch+yaml`: server-side apply with `metadata.managedFields`
//!   (`apply`).
//!
//! Called by the API server's PATCH handler, which parses the body, looks up the live
//! object and afterwards enforces what this module deliberately does not: immutable
//! metadata (name, namespace, uid, creationTimestamp), resourceVersion preconditions and
//! the status-subresource rule. Merge-key knowledge lives in one table (`keys`).
//!
//! Bounds: every result is at most [`MAX_DEPTH`] levels deep ([`PatchError::TooDeep`]
//! otherwise). A JSON patch is applied one operation at a time, each checked before it
//! runs, because `copy` can double the depth (and the size) per operation: unchecked, a
//! dozen operations build a value that overflows the stack when cloned or dropped. The
//! bytes copied by `copy` operations are capped at [`MAX_COPIED_BYTES`] in all, as
//! upstream caps them (`AccumulatedCopySizeLimit`, the request size limit), and a patch
//! has at most [`MAX_JSON_PATCH_OPERATIONS`] operations.

mod apply;
mod fieldset;
mod keys;
mod strategic;

use serde_json::Value;

use crate::store::bounds::{self, MAX_DEPTH};

/// Most bytes (as JSON) that the `copy` operations of one JSON patch may copy in all: the
/// API's request size limit, as upstream sets it.
pub const MAX_COPIED_BYTES: usize = 3 * 1024 * 1024;
/// Most operations in one JSON patch (upstream's `maxJSONPatchOperations`).
pub const MAX_JSON_PATCH_OPERATIONS: usize = 10_000;

/// A patch document and its type, as the PATCH handler received it.
#[derive(Debug, Clone, Copy)]
pub enum Patch<'a> {
    /// `application/merge-patch+json` (RFC 7386).
    Merge(&'a Value),
    /// `application/json-patch+json` (RFC 6902).
    Json(&'a Value),
    /// `application/strategic-merge-patch+json`.
    Strategic(&'a Value),
    /// `application/apply-patch+yaml`, the body already parsed from JSON or YAML. Every
    /// apply acts as forced, so the `force` query parameter is accepted and ignored
    /// (conflicts between field managers are never reported; the applier takes the fields
    /// it changes).
    Apply {
        /// The applied configuration.
        body: &'a Value,
        /// The `fieldManager` query parameter.
        manager: &'a str,
    },
}

/// Why a patch could not be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatchError {
    /// The patch document is malformed (wrong JSON shape, unknown directive, missing merge
    /// key); the API answers 400 BadRequest.
    #[error("{0}")]
    BadRequest(String),
    /// The document is well formed but cannot be applied to this object (a failed JSON
    /// patch `test`, a path that does not exist); the API answers 422 Invalid.
    #[error("{0}")]
    Invalid(String),
    /// The result would nest more than [`MAX_DEPTH`] levels deep, first at `field`; the
    /// API answers 422 Invalid.
    #[error("{field}: {}", bounds::depth_message())]
    TooDeep {
        /// Field path of the first value past the limit.
        field: String,
    },
    /// A JSON patch with more than [`MAX_JSON_PATCH_OPERATIONS`] operations; the API
    /// answers 413 as upstream does.
    #[error(
        "The allowed maximum operations in a JSON patch is {MAX_JSON_PATCH_OPERATIONS}, got \
         {count}"
    )]
    TooManyOperations {
        /// How many the patch has.
        count: usize,
    },
}

/// Applies `patch` to the live object of `kind` (e.g. `"Deployment"`) and returns the whole
/// new object.
///
/// `live` is `None` only for `Patch::Apply`, which is an upsert: the result is then the
/// object to create. For the other types a missing object is the caller's 404.
pub fn apply(live: Option<&Value>, patch: Patch<'_>, kind: &str) -> Result<Value, PatchError> {
    let object = patched(live, patch, kind)?;
    if let Some(field) = bounds::deeper_than(&object, MAX_DEPTH) {
        return Err(PatchError::TooDeep { field });
    }
    if !object.is_object() {
        return Err(PatchError::Invalid(format!(
            "the patched {kind} is {object}, not a JSON object"
        )));
    }
    Ok(object)
}

fn patched(live: Option<&Value>, patch: Patch<'_>, kind: &str) -> Result<Value, PatchError> {
    match patch {
        Patch::Apply { body, manager, .. } => apply::apply(live, body, manager, kind),
        Patch::Merge(doc) => {
            let live = existing(live, "merge")?;
            if !doc.is_object() {
                return Err(PatchError::BadRequest(
                    "a merge patch must be a JSON object".to_string(),
                ));
            }
            let mut object = live.clone();
            json_patch::merge(&mut object, doc);
            Ok(object)
        }
        Patch::Json(doc) => {
            let live = existing(live, "JSON")?;
            let operations: json_patch::Patch =
                serde_json::from_value(doc.clone()).map_err(|e| {
                    PatchError::BadRequest(format!(
                        "a JSON patch must be an array of operations \
                         ({{\"op\":\"replace\",\"path\":\"/spec/replicas\",\"value\":3}}): {e}"
                    ))
                })?;
            json_patch_bounded(live, &operations)
        }
        Patch::Strategic(doc) => strategic::merge(existing(live, "strategic merge")?, doc, kind),
    }
}

/// Applies RFC 6902 operations to a copy of `live`, one by one, checking before each what
/// it would insert (see the module comment). All or nothing, like `json_patch::patch`: on
/// an error the copy is dropped.
///
/// An operation that puts a value `v` at a path of `k` tokens makes the object
/// `max(depth, k + depth(v))` deep, so measuring `v` alone is exact and keeps the work
/// linear in what the patch adds or copies. A `move` to a deeper path measures the moved
/// value; at most [`MAX_JSON_PATCH_OPERATIONS`] operations bound that work.
fn json_patch_bounded(live: &Value, operations: &json_patch::Patch) -> Result<Value, PatchError> {
    use json_patch::PatchOperation as Op;
    if operations.len() > MAX_JSON_PATCH_OPERATIONS {
        return Err(PatchError::TooManyOperations {
            count: operations.len(),
        });
    }
    let mut object = live.clone();
    let mut copied = 0usize;
    for (i, op) in operations.iter().enumerate() {
        match op {
            Op::Add(add) => fits(add.path.as_str(), &add.value)?,
            Op::Replace(replace) => fits(replace.path.as_str(), &replace.value)?,
            Op::Copy(copy) => {
                if let Some(from) = object.pointer(copy.from.as_str()) {
                    copied = copied.saturating_add(bounds::encoded_len(from));
                    if copied > MAX_COPIED_BYTES {
                        return Err(PatchError::Invalid(format!(
                            "operation '/{i}': the copy operations copy more than \
                             {MAX_COPIED_BYTES} bytes in all"
                        )));
                    }
                    fits(copy.path.as_str(), from)?;
                }
            }
            Op::Move(mv) if tokens(mv.path.as_str()) > tokens(mv.from.as_str()) => {
                if let Some(from) = object.pointer(mv.from.as_str()) {
                    fits(mv.path.as_str(), from)?;
                }
            }
            _ => {}
        }
        json_patch::patch_unsafe(&mut object, std::slice::from_ref(op)).map_err(|e| {
            PatchError::Invalid(format!(
                "operation '/{i}' failed at path '{}': {}",
                e.path, e.kind
            ))
        })?;
    }
    Ok(object)
}

/// How many reference tokens a JSON pointer has (`/a/b`: 2; an escaped `/` is `~1`).
fn tokens(pointer: &str) -> usize {
    pointer.matches('/').count()
}

/// Whether `value` put at `pointer` stays within [`MAX_DEPTH`]; the error names the field.
fn fits(pointer: &str, value: &Value) -> Result<(), PatchError> {
    let room = MAX_DEPTH.saturating_sub(tokens(pointer));
    let Some(inner) = bounds::deeper_than(value, room) else {
        return Ok(());
    };
    let mut field: String = pointer
        .split('/')
        .skip(1)
        .map(|t| t.replace("~1", "/").replace("~0", "~"))
        .collect::<Vec<_>>()
        .join(".");
    if !inner.is_empty() {
        field = format!("{field}.{inner}");
    }
    crate::store::bounds::cut_path(&mut field);
    Err(PatchError::TooDeep { field })
}

/// The live object a non-apply patch needs.
fn existing<'v>(live: Option<&'v Value>, what: &str) -> Result<&'v Value, PatchError> {
    live.ok_or_else(|| {
        PatchError::BadRequest(format!(
            "a {what} patch needs an existing object; create it first or use server-side apply"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment() -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "labels": {"app": "web", "tier": "front"}},
            "spec": {"replicas": 2, "template": {"spec": {"containers": [
                {"name": "web", "image": "web:v1"},
                {"name": "sidecar", "image": "proxy:v1"}
            ]}}}
        })
    }

    #[test]
    fn merge_patch_null_deletes_a_key_and_keeps_the_rest() {
        let patch = json!({"metadata": {"labels": {"tier": null}}, "spec": {"replicas": 5}});
        let out = apply(Some(&deployment()), Patch::Merge(&patch), "Deployment").unwrap();
        assert_eq!(out["metadata"]["labels"], json!({"app": "web"}));
        assert_eq!(out["spec"]["replicas"], 5);
        assert_eq!(out["spec"]["template"], deployment()["spec"]["template"]);
    }

    #[test]
    fn merge_patch_replaces_lists_whole() {
        let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "only"}]}}}});
        let out = apply(Some(&deployment()), Patch::Merge(&patch), "Deployment").unwrap();
        assert_eq!(
            out["spec"]["template"]["spec"]["containers"],
            json!([{"name": "only"}])
        );
    }

    #[test]
    fn merge_patch_that_is_not_an_object_is_a_bad_request() {
        let err = apply(Some(&deployment()), Patch::Merge(&json!([1])), "Deployment");
        assert!(matches!(err, Err(PatchError::BadRequest(_))), "{err:?}");
    }

    #[test]
    fn json_patch_adds_replaces_and_removes() {
        let patch = json!([
            {"op": "add", "path": "/metadata/labels/version", "value": "blue"},
            {"op": "replace", "path": "/spec/replicas", "value": 4},
            {"op": "remove", "path": "/spec/template/spec/containers/1"}
        ]);
        let out = apply(Some(&deployment()), Patch::Json(&patch), "Deployment").unwrap();
        assert_eq!(out["metadata"]["labels"]["version"], "blue");
        assert_eq!(out["spec"]["replicas"], 4);
        assert_eq!(
            out["spec"]["template"]["spec"]["containers"],
            json!([{"name": "web", "image": "web:v1"}])
        );
    }

    #[test]
    fn json_patch_failed_test_is_invalid_and_changes_nothing() {
        let patch = json!([
            {"op": "replace", "path": "/spec/replicas", "value": 9},
            {"op": "test", "path": "/spec/replicas", "value": 3}
        ]);
        let err = apply(Some(&deployment()), Patch::Json(&patch), "Deployment").unwrap_err();
        let PatchError::Invalid(message) = err else {
            panic!("expected Invalid, got {err:?}")
        };
        assert!(message.contains("value did not match"), "{message}");
    }

    #[test]
    fn json_patch_that_replaces_the_whole_object_with_a_scalar_is_invalid() {
        let patch = json!([{"op": "replace", "path": "", "value": 3}]);
        let err = apply(Some(&deployment()), Patch::Json(&patch), "Deployment");
        assert!(matches!(err, Err(PatchError::Invalid(_))), "{err:?}");
    }

    #[test]
    fn json_patch_on_a_missing_path_is_invalid() {
        let patch = json!([{"op": "remove", "path": "/spec/nothing"}]);
        let err = apply(Some(&deployment()), Patch::Json(&patch), "Deployment");
        assert!(matches!(err, Err(PatchError::Invalid(_))), "{err:?}");
    }

    #[test]
    fn malformed_json_patch_is_a_bad_request() {
        for doc in [
            json!({"op": "add"}),
            json!([{"op": "frobnicate", "path": "/a"}]),
            json!([{"op": "add", "value": 1}]),
        ] {
            let err = apply(Some(&deployment()), Patch::Json(&doc), "Deployment");
            assert!(
                matches!(err, Err(PatchError::BadRequest(_))),
                "{doc}: {err:?}"
            );
        }
    }

    #[test]
    fn json_patch_copies_that_double_the_depth_stop_before_the_limit_is_passed() {
        let mut x = json!(1);
        for _ in 0..40 {
            x = json!({ "a": x });
        }
        let live = json!({"spec": {"x": x}});
        let innermost = format!("/spec/x{}", "/a".repeat(40));
        let patch = json!([{"op": "copy", "from": "/spec/x", "path": innermost}]);
        let err = apply(Some(&live), Patch::Json(&patch), "Lease").unwrap_err();
        let PatchError::TooDeep { field } = err else {
            panic!("{err:?}")
        };
        assert!(
            field.starts_with("spec.x.a.a") && field.len() <= 203,
            "{field}"
        );
        // An add or a deeper move is measured the same way.
        let add = json!([{"op": "add", "path": "/spec/y", "value": live["spec"]["x"]},
                         {"op": "add", "path": innermost, "value": live["spec"]["x"]}]);
        assert!(matches!(
            apply(Some(&live), Patch::Json(&add), "Lease"),
            Err(PatchError::TooDeep { .. })
        ));
        let mv = json!([{"op": "copy", "from": "/spec/x", "path": "/y"},
                        {"op": "move", "from": "/y", "path": innermost}]);
        assert!(matches!(
            apply(Some(&live), Patch::Json(&mv), "Lease"),
            Err(PatchError::TooDeep { .. })
        ));
        // Within the limit, the same operations apply.
        let from = format!("/spec/x{}", "/a".repeat(30));
        let fine = json!([{"op": "copy", "from": from, "path": "/spec/z"}]);
        apply(Some(&live), Patch::Json(&fine), "Lease").unwrap();
    }

    #[test]
    fn json_patch_with_too_many_operations_is_refused() {
        let ops: Vec<Value> = (0..=MAX_JSON_PATCH_OPERATIONS)
            .map(|_| json!({"op": "test", "path": "/spec/replicas", "value": 2}))
            .collect();
        let err = apply(
            Some(&deployment()),
            Patch::Json(&Value::from(ops)),
            "Deployment",
        );
        assert!(
            matches!(err, Err(PatchError::TooManyOperations { count: 10_001 })),
            "{err:?}"
        );
    }

    #[test]
    fn patches_other_than_apply_need_a_live_object() {
        let doc = json!({"spec": {}});
        for patch in [
            Patch::Merge(&doc),
            Patch::Strategic(&doc),
            Patch::Json(&json!([])),
        ] {
            assert!(matches!(
                apply(None, patch, "Deployment"),
                Err(PatchError::BadRequest(_))
            ));
        }
    }
}
