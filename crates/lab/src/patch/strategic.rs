//! Strategic merge patch, following k8s.io/apimachinery/pkg/util/strategicpatch
//! (`mergeMap`, `mergeSlice`, `normalizeElementOrder`) closely enough that the patches
//! `kubectl patch` and `kubectl apply` send give the result a real API server gives.
//!
//! Maps merge recursively and `null` deletes a key; lists with a merge key (from `keys`)
//! merge element-wise; sets of scalars merge without duplicates; every other list is
//! replaced. The directives `$patch` (replace / delete / merge), `$retainKeys`,
//! `$deleteFromPrimitiveList/<field>` and `$setElementOrder/<field>` are honoured and never
//! survive into the result.
//!
//! `kubectl_tests` checks the results against `kubectl patch --local` (the upstream code)
//! case by case. Deliberate differences, all stricter or cleaner than upstream: values taken
//! whole from the patch have their nulls and directives removed too (upstream stores
//! `null`, which a typed decode drops anyway); an unknown `$...` key or a
//! `$deleteFromPrimitiveList/` value that is not a list is a BadRequest (upstream stores
//! or ignores it); `$patch: delete` of the whole object is a BadRequest.
//! Called by `patch::apply` for `Patch::Strategic`.

use serde_json::{Map, Value};

use super::PatchError;
use super::keys::{self, Shape};

const DIRECTIVE: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const DELETE_FROM_PRIMITIVE_LIST: &str = "$deleteFromPrimitiveList/";
const SET_ELEMENT_ORDER: &str = "$setElementOrder/";

/// Applies a strategic merge patch to `live`, an object of `kind`.
pub(super) fn merge(live: &Value, patch: &Value, kind: &str) -> Result<Value, PatchError> {
    let Value::Object(patch) = patch else {
        return Err(bad("a strategic merge patch must be a JSON object"));
    };
    let Value::Object(live) = live else {
        return Err(PatchError::Invalid(
            "the stored object is not a JSON object".to_string(),
        ));
    };
    if patch.get(DIRECTIVE).and_then(Value::as_str) == Some("delete") {
        return Err(bad(
            "a strategic merge patch cannot delete the whole object; send DELETE instead",
        ));
    }
    let merger = Merger { kind };
    Ok(Value::Object(merger.map(
        live.clone(),
        patch,
        &mut Vec::new(),
    )?))
}

fn bad(message: impl Into<String>) -> PatchError {
    PatchError::BadRequest(message.into())
}

/// The walk over one patch; `path` is the field path of the value being merged.
struct Merger<'k> {
    kind: &'k str,
}

impl Merger<'_> {
    /// `mergeMap`: merges `patch` into `original`.
    fn map(
        &self,
        mut original: Map<String, Value>,
        patch: &Map<String, Value>,
        path: &mut Vec<String>,
    ) -> Result<Map<String, Value>, PatchError> {
        match patch.get(DIRECTIVE) {
            None => {}
            Some(Value::String(d)) if d == "replace" => {
                let mut replacement = patch.clone();
                replacement.remove(DIRECTIVE);
                return self.map(Map::new(), &replacement, path);
            }
            // Upstream answers `$patch: delete` on a map with an empty map, not a removal.
            Some(Value::String(d)) if d == "delete" => return Ok(Map::new()),
            // Upstream rejects `merge` here too, although merging is what happens anyway.
            Some(other) => {
                return Err(bad(format!(
                    "unknown {DIRECTIVE} value {other} at {}; use \"replace\" or \"delete\" \
                     (or leave it out to merge)",
                    show(path)
                )));
            }
        }
        retain_keys(&mut original, patch, path)?;
        let ordered = self.set_element_order(&mut original, patch, path)?;

        for (key, value) in patch {
            if key == DIRECTIVE
                || key == RETAIN_KEYS
                || key.starts_with(SET_ELEMENT_ORDER)
                || ordered.contains(key)
            {
                continue;
            }
            if let Some(field) = key.strip_prefix(DELETE_FROM_PRIMITIVE_LIST) {
                let Value::Array(remove) = value else {
                    return Err(bad(format!("{key} at {} must be a list", show(path))));
                };
                if let Some(Value::Array(list)) = original.get_mut(field) {
                    list.retain(|item| !remove.contains(item));
                }
                continue;
            }
            if key.starts_with('$') {
                return Err(bad(format!(
                    "unknown directive {key} at {}; strategic merge patch knows $patch, \
                     $retainKeys, $deleteFromPrimitiveList/ and $setElementOrder/",
                    show(path)
                )));
            }
            if value.is_null() {
                original.remove(key);
                continue;
            }
            path.push(key.clone());
            let merged = match (original.remove(key), value) {
                (Some(Value::Object(o)), Value::Object(p)) => Value::Object(self.map(o, p, path)?),
                (Some(Value::Array(o)), Value::Array(p)) => Value::Array(self.list(o, p, path)?),
                // Absent, or a different type: the patch value replaces it.
                _ => self.clean(value, path)?,
            };
            path.pop();
            original.insert(key.clone(), merged);
        }
        Ok(original)
    }

    /// A value taken whole from the patch, with its nulls and directives resolved by
    /// merging it into nothing.
    fn clean(&self, value: &Value, path: &mut Vec<String>) -> Result<Value, PatchError> {
        Ok(match value {
            Value::Object(o) => Value::Object(self.map(Map::new(), o, path)?),
            Value::Array(a) => Value::Array(self.list(Vec::new(), a, path)?),
            scalar => scalar.clone(),
        })
    }

    /// `mergeSliceHandler`: merges a list by the shape the table gives its path.
    fn list(
        &self,
        original: Vec<Value>,
        patch: &[Value],
        path: &mut Vec<String>,
    ) -> Result<Vec<Value>, PatchError> {
        match keys::shape(self.kind, path) {
            Shape::Keyed { patch_key, .. } => self.keyed_list(original, patch, patch_key, path),
            Shape::Set => set_list(original, patch, path),
            Shape::Atomic | Shape::Plain => patch
                .iter()
                // Upstream drops the `$patch` elements of a list it replaces.
                .filter(|item| item.get(DIRECTIVE).is_none())
                .map(|item| match item {
                    // An element of an element has no field path of its own.
                    Value::Array(inner) => Ok(Value::Array(
                        inner
                            .iter()
                            .map(|v| self.clean(v, &mut Vec::new()))
                            .collect::<Result<_, _>>()?,
                    )),
                    other => self.clean(other, path),
                })
                .collect(),
        }
    }

    /// `mergeSlice` for a list of objects with a merge key.
    fn keyed_list(
        &self,
        mut original: Vec<Value>,
        patch: &[Value],
        key: &str,
        path: &mut Vec<String>,
    ) -> Result<Vec<Value>, PatchError> {
        let mut plain = Vec::new();
        let mut replace = false;
        for item in patch {
            let element = match item {
                Value::Object(o) => o,
                Value::Array(_) => {
                    return Err(PatchError::Invalid(format!(
                        "{}: lists of lists are not supported in a list merged by {key}",
                        show(path)
                    )));
                }
                other => {
                    return Err(bad(format!(
                        "{}: element {other} must be an object with the merge key {key}",
                        show(path)
                    )));
                }
            };
            match element.get(DIRECTIVE) {
                None => plain.push(element),
                Some(Value::String(d)) if d == "delete" => {
                    let wanted = merge_key(element, key, path)?;
                    original.retain(|o| o.get(key) != Some(wanted));
                }
                Some(Value::String(d)) if d == "replace" => replace = true,
                Some(Value::String(d)) if d == "merge" => {
                    return Err(bad(format!(
                        "{}: {DIRECTIVE}: merge is not supported in a list",
                        show(path)
                    )));
                }
                Some(other) => {
                    return Err(bad(format!(
                        "unknown {DIRECTIVE} value {other} in {}; use \"replace\" or \"delete\"",
                        show(path)
                    )));
                }
            }
        }
        if replace {
            return plain
                .into_iter()
                .map(|o| Ok(Value::Object(self.map(Map::new(), o, path)?)))
                .collect();
        }

        let server_order = original.clone();
        let mut merged = original;
        let mut patch_keys = Vec::new();
        for element in plain {
            let wanted = merge_key(element, key, path)?;
            patch_keys.push(wanted.clone());
            let found = merged.iter_mut().find_map(|o| match o {
                Value::Object(m) if m.get(key) == Some(wanted) => Some(m),
                _ => None,
            });
            match found {
                Some(live) => {
                    let taken = std::mem::take(live);
                    *live = self.map(taken, element, path)?;
                }
                None => merged.push(Value::Object(self.map(Map::new(), element, path)?)),
            }
        }
        Ok(normalize_order(
            merged,
            &patch_keys,
            &server_order,
            Some(key),
        ))
    }

    /// Handles every `$setElementOrder/<field>` of `patch`: merges that field's list and
    /// puts it in the given order. Returns the fields it merged.
    fn set_element_order(
        &self,
        original: &mut Map<String, Value>,
        patch: &Map<String, Value>,
        path: &mut Vec<String>,
    ) -> Result<Vec<String>, PatchError> {
        let mut done = Vec::new();
        for (directive, order) in patch {
            let Some(field) = directive.strip_prefix(SET_ELEMENT_ORDER) else {
                continue;
            };
            let Value::Array(order) = order else {
                return Err(bad(format!("{directive} at {} must be a list", show(path))));
            };
            let patch_list = match patch.get(field) {
                Some(Value::Array(list)) => list.as_slice(),
                None => &[],
                // `null` deletes the field, a scalar replaces it: the main loop does both.
                Some(_) => continue,
            };
            let server_order = match original.get(field) {
                Some(Value::Array(list)) => list.clone(),
                _ if patch_list.is_empty() => continue,
                _ => Vec::new(),
            };
            path.push(field.to_string());
            let shape = keys::shape(self.kind, path);
            let merged = self.list(server_order.clone(), patch_list, path)?;
            path.pop();
            let key = match shape {
                Shape::Keyed { patch_key, .. } => Some(patch_key),
                _ => None,
            };
            let order = match key {
                Some(key) => order
                    .iter()
                    .map(|item| match item.get(key) {
                        Some(value) => Ok(value.clone()),
                        None => Err(bad(format!(
                            "{directive} at {}: every element needs the merge key {key}",
                            show(path)
                        ))),
                    })
                    .collect::<Result<Vec<_>, _>>()?,
                None => order.clone(),
            };
            let ordered = normalize_order(merged, &order, &server_order, key);
            original.insert(field.to_string(), Value::Array(ordered));
            done.push(field.to_string());
        }
        Ok(done)
    }
}

/// `mergeSlice` for scalars: union in order, duplicates dropped.
fn set_list(
    original: Vec<Value>,
    patch: &[Value],
    path: &[String],
) -> Result<Vec<Value>, PatchError> {
    if let Some(item) = patch.iter().find(|v| v.is_object() || v.is_array()) {
        return Err(bad(format!(
            "{} is a set of scalars; {item} cannot be merged into it",
            show(path)
        )));
    }
    let server_order = original.clone();
    let mut merged: Vec<Value> = Vec::new();
    for item in original.into_iter().chain(patch.iter().cloned()) {
        if !merged.contains(&item) {
            merged.push(item);
        }
    }
    Ok(normalize_order(merged, patch, &server_order, None))
}

fn merge_key<'v>(
    element: &'v Map<String, Value>,
    key: &str,
    path: &[String],
) -> Result<&'v Value, PatchError> {
    element.get(key).ok_or_else(|| {
        bad(format!(
            "{}: element {} does not contain the merge key {key}",
            show(path),
            Value::Object(element.clone())
        ))
    })
}

/// What identifies an element: its merge-key value, or the scalar itself.
fn identity<'v>(item: &'v Value, key: Option<&str>) -> Option<&'v Value> {
    match key {
        Some(key) => item.get(key),
        None => Some(item),
    }
}

fn index_in(list: &[Value], item: &Value, key: Option<&str>) -> Option<usize> {
    let id = identity(item, key)?;
    list.iter().position(|o| identity(o, key) == Some(id))
}

/// `normalizeElementOrder`: the elements named in `order` come in that order; the others
/// ("server-only") keep their order from the live list and are interleaved where they
/// stood (`mergeSortedSlice`). `order` holds merge-key values (or scalars).
fn normalize_order(
    merged: Vec<Value>,
    order: &[Value],
    server_order: &[Value],
    key: Option<&str>,
) -> Vec<Value> {
    let position =
        |item: &Value| identity(item, key).and_then(|id| order.iter().position(|o| o == id));
    let (mut ordered, mut server_only): (Vec<Value>, Vec<Value>) = merged
        .into_iter()
        .partition(|item| position(item).is_some());
    ordered.sort_by_key(|item| position(item));
    server_only.sort_by_key(|item| index_in(server_order, item, key));

    let mut out = Vec::with_capacity(ordered.len() + server_only.len());
    let mut left = server_only.into_iter().peekable();
    let mut right = ordered.into_iter().peekable();
    loop {
        let take_left = match (left.peek(), right.peek()) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(l), Some(r)) => matches!(
                (index_in(server_order, l, key), index_in(server_order, r, key)),
                (Some(li), Some(ri)) if li < ri
            ),
        };
        let next = if take_left { left.next() } else { right.next() };
        out.extend(next);
    }
    out
}

/// `applyRetainKeysDirective`: keeps only the listed keys of `original`; every field the
/// patch sets must be listed.
fn retain_keys(
    original: &mut Map<String, Value>,
    patch: &Map<String, Value>,
    path: &[String],
) -> Result<(), PatchError> {
    let Some(retain) = patch.get(RETAIN_KEYS) else {
        return Ok(());
    };
    let malformed = || {
        bad(format!(
            "{RETAIN_KEYS} at {} must be a list of field names",
            show(path)
        ))
    };
    let Value::Array(retain) = retain else {
        return Err(malformed());
    };
    let retain = retain
        .iter()
        .map(|k| k.as_str().ok_or_else(malformed))
        .collect::<Result<Vec<&str>, _>>()?;
    if let Some(key) = patch
        .iter()
        .find(|(k, v)| !v.is_null() && !k.starts_with('$') && !retain.contains(&k.as_str()))
        .map(|(k, _)| k)
    {
        return Err(bad(format!(
            "{} sets {key}, which its {RETAIN_KEYS} list does not name",
            show(path)
        )));
    }
    original.retain(|k, _| retain.contains(&k.as_str()));
    Ok(())
}

/// A field path for messages: `spec.template.spec.containers`, or `the object`.
fn show(path: &[String]) -> String {
    if path.is_empty() {
        "the object".to_string()
    } else {
        path.join(".")
    }
}

#[cfg(test)]
#[path = "strategic_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "strategic_kubectl_tests.rs"]
mod kubectl_tests;
