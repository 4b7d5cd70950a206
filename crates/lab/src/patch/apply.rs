//! Server-side apply (`application/apply-patch+yaml`) for any number of field managers,
//! after sigs.k8s.io/structured-merge-diff's `Updater.Apply`.
//!
//! The applied configuration is merged into the live object (objects field by field, keyed
//! lists and sets element by element using the `keys` table, everything else replaced);
//! the manager's field set is recorded in `metadata.managedFields` (operation `Apply`,
//! FieldsV1); fields the manager applied last time but no longer applies are removed unless
//! another manager's set still holds them. Apply is an upsert: with no live object the
//! result is the object to create.
//!
//! Ownership follows upstream: fields set to the value they already had are shared with
//! their other owners; fields the apply adds or changes are taken from other managers; the
//! fields of an object no manager has touched yet first go to `before-first-apply`.
//!
//! Not done: conflicts. Upstream answers 409 Conflict when an apply changes a field another
//! manager owns, unless `force=true`; here every apply acts as forced (the last applier
//! wins and takes the field) and `force` changes nothing. Writes through PUT/POST/PATCH
//! (operation `Update`) are not recorded by this module; entries already on the object are
//! kept and respected.
//! Called by `patch::apply` for `Patch::Apply`.

use std::collections::{HashMap, HashSet, VecDeque};

use serde_json::{Map, Value};

use super::PatchError;
use super::fieldset::{self, FieldSet};
use super::keys::{self, Shape};

/// Applies `body` for `manager` to `live` (an object of `kind`), stamping the manager's
/// entry with the current time.
pub(super) fn apply(
    live: Option<&Value>,
    body: &Value,
    manager: &str,
    kind: &str,
) -> Result<Value, PatchError> {
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    apply_at(live, body, manager, kind, &now)
}

/// `apply` with the time given, so tests can pin it.
fn apply_at(
    live: Option<&Value>,
    body: &Value,
    manager: &str,
    kind: &str,
    now: &str,
) -> Result<Value, PatchError> {
    let config = applied_config(body, manager, kind)?;
    let api_version = config
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let applied = FieldSet::of_applied(&config, kind)?;

    let (before, entries) = match live {
        None => (Map::new(), Vec::new()),
        Some(Value::Object(object)) => split_managed_fields(object.clone()),
        Some(_) => {
            return Err(PatchError::Invalid(
                "the stored object is not a JSON object".to_string(),
            ));
        }
    };
    let merged = Merger { kind }.map(before.clone(), &config, &mut Vec::new())?;
    let mut object = Value::Object(merged);

    let mut entries: Vec<Value> = entries.into_iter().filter(Value::is_object).collect();
    if live.is_some() && entries.is_empty() {
        // Upstream hands every field of an object no manager has touched yet to the
        // placeholder manager `before-first-apply`, so a later apply that drops a field it
        // never changed does not delete it.
        let existing = FieldSet::of_applied(&before, kind).unwrap_or_default();
        if existing.has_members() {
            let api_version = before.get("apiVersion").cloned().unwrap_or_default();
            entries.push(entry(
                BEFORE_FIRST_APPLY,
                "Update",
                api_version,
                now,
                &existing,
            ));
        }
    }
    let mine = |entry: &Value| is_own_entry(entry, manager);
    let old_entry = entries.iter().find(|entry| mine(entry));
    let previous = old_entry
        .map(|entry| FieldSet::from_fields_v1(&entry["fieldsV1"]))
        .unwrap_or_default();

    // Every apply acts as forced: the fields it adds or changes are taken from the other
    // managers (upstream would answer 409 Conflict without `force`). Fields it sets to the
    // value they already had stay shared.
    let before_value = Value::Object(before.clone());
    let taken = fieldset::changed(
        kind,
        &applied,
        Some(&before_value),
        Some(&object),
        &mut Vec::new(),
    );
    let others = hand_over(entries.iter().filter(|entry| !mine(entry)), &taken);
    let mut keep = applied.clone();
    for other in &others {
        keep.union(&FieldSet::from_fields_v1(&other["fieldsV1"]));
    }

    let removed = previous.difference(&applied);
    fieldset::prune(kind, &mut object, &removed, Some(&keep), &mut Vec::new());

    // Upstream moves the timestamp when the manager's fields or the object change.
    let time = match old_entry {
        Some(old) if previous == applied && object == before_value => old["time"].clone(),
        _ => Value::String(now.to_string()),
    };
    let mut entries = others;
    if applied.has_members() {
        let mut own = entry(manager, "Apply", Value::String(api_version), now, &applied);
        own["time"] = time;
        entries.push(own);
    }
    sort_entries(&mut entries);
    if let Value::Object(map) = &mut object {
        set_managed_fields(map, entries);
    }
    Ok(object)
}

/// Whether `entry` is the Apply entry of `manager` for the main resource.
fn is_own_entry(entry: &Value, manager: &str) -> bool {
    entry["manager"] == manager
        && entry["operation"] == "Apply"
        && entry
            .get("subresource")
            .and_then(Value::as_str)
            .unwrap_or("")
            .is_empty()
}

/// The other managers' entries without the fields `taken` from them; a manager left
/// owning nothing loses its entry, as upstream.
fn hand_over<'e>(others: impl Iterator<Item = &'e Value>, taken: &FieldSet) -> Vec<Value> {
    let mut kept = Vec::new();
    for other in others {
        let owned = FieldSet::from_fields_v1(&other["fieldsV1"]);
        let left = owned.difference(taken);
        if !left.has_members() {
            continue;
        }
        let mut other = other.clone();
        if left != owned
            && let Some(map) = other.as_object_mut()
        {
            map.insert("fieldsV1".to_string(), left.to_fields_v1());
        }
        kept.push(other);
    }
    kept
}

/// The placeholder owner upstream gives the fields of an object on its first apply.
const BEFORE_FIRST_APPLY: &str = "before-first-apply";

/// One `metadata.managedFields` entry.
fn entry(
    manager: &str,
    operation: &str,
    api_version: Value,
    time: &str,
    fields: &FieldSet,
) -> Value {
    serde_json::json!({
        "manager": manager,
        "operation": operation,
        "apiVersion": api_version,
        "time": time,
        "fieldsType": "FieldsV1",
        "fieldsV1": fields.to_fields_v1(),
    })
}

/// Checks the apply body and returns it without any `managedFields` it carried (those are
/// the server's to write, never the client's).
fn applied_config(
    body: &Value,
    manager: &str,
    kind: &str,
) -> Result<Map<String, Value>, PatchError> {
    let bad = |message: String| Err(PatchError::BadRequest(message));
    if manager.is_empty() {
        return bad("server-side apply needs a field manager (?fieldManager=NAME)".to_string());
    }
    let Value::Object(config) = body else {
        return bad(format!(
            "an apply patch must be an object with apiVersion, kind and metadata, not {body}"
        ));
    };
    if !config.get("apiVersion").is_some_and(Value::is_string) {
        return bad("an apply patch needs apiVersion (for example apps/v1)".to_string());
    }
    match config.get("kind").and_then(Value::as_str) {
        Some(k) if k == kind => {}
        Some(k) => return bad(format!("the apply patch is a {k}, but this is a {kind}")),
        None => return bad(format!("an apply patch needs kind ({kind})")),
    }
    if let Some(directive) = find_directive(body) {
        return bad(format!(
            "{directive} is a strategic-merge-patch directive; an apply patch is the plain \
             object you want (send it as application/strategic-merge-patch+json instead)"
        ));
    }
    let mut config = config.clone();
    if let Some(Value::Object(metadata)) = config.get_mut("metadata") {
        metadata.remove("managedFields");
    }
    Ok(config)
}

/// The first `$...` key anywhere in `value`.
fn find_directive(value: &Value) -> Option<&str> {
    match value {
        Value::Object(map) => map.iter().find_map(|(k, v)| {
            if k.starts_with('$') {
                Some(k.as_str())
            } else {
                find_directive(v)
            }
        }),
        Value::Array(items) => items.iter().find_map(find_directive),
        _ => None,
    }
}

/// The object without `metadata.managedFields`, and those entries.
fn split_managed_fields(mut object: Map<String, Value>) -> (Map<String, Value>, Vec<Value>) {
    let entries = match object.get_mut("metadata") {
        Some(Value::Object(metadata)) => match metadata.remove("managedFields") {
            Some(Value::Array(entries)) => entries,
            _ => Vec::new(),
        },
        _ => Vec::new(),
    };
    (object, entries)
}

fn set_managed_fields(object: &mut Map<String, Value>, entries: Vec<Value>) {
    if entries.is_empty() {
        return;
    }
    let metadata = object
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    if !metadata.is_object() {
        *metadata = Value::Object(Map::new());
    }
    if let Value::Object(metadata) = metadata {
        metadata.insert("managedFields".to_string(), Value::Array(entries));
    }
}

/// Upstream's order: by operation, time, manager, apiVersion, subresource.
fn sort_entries(entries: &mut [Value]) {
    let field = |entry: &Value, name: &str| {
        entry
            .get(name)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    entries.sort_by_key(|entry| {
        ["operation", "time", "manager", "apiVersion", "subresource"].map(|name| field(entry, name))
    });
}

/// Merges an applied configuration into a live object (structured-merge-diff `merge`).
struct Merger<'k> {
    kind: &'k str,
}

impl Merger<'_> {
    fn map(
        &self,
        mut live: Map<String, Value>,
        applied: &Map<String, Value>,
        path: &mut Vec<String>,
    ) -> Result<Map<String, Value>, PatchError> {
        for (field, value) in applied {
            // An explicit null clears the field (upstream stores null, which decodes as
            // absent).
            if value.is_null() {
                live.remove(field);
                continue;
            }
            path.push(field.clone());
            let merged = self.value(live.remove(field), value, path)?;
            path.pop();
            live.insert(field.clone(), merged);
        }
        Ok(live)
    }

    fn value(
        &self,
        live: Option<Value>,
        applied: &Value,
        path: &mut Vec<String>,
    ) -> Result<Value, PatchError> {
        let shape = keys::shape(self.kind, path);
        Ok(match (live, applied) {
            (_, applied) if shape == Shape::Atomic => without_nulls(applied),
            (Some(Value::Object(live)), Value::Object(applied)) => {
                Value::Object(self.map(live, applied, path)?)
            }
            (_, Value::Object(applied)) => Value::Object(self.map(Map::new(), applied, path)?),
            (live, Value::Array(applied)) if matches!(shape, Shape::Keyed { .. } | Shape::Set) => {
                let live = match live {
                    Some(Value::Array(items)) => items,
                    _ => Vec::new(),
                };
                Value::Array(self.list(live, applied, shape, path)?)
            }
            (_, applied) => without_nulls(applied),
        })
    }

    /// Merges a keyed list or set: shared elements merge and follow the applied order,
    /// live-only elements stay where they were (structured-merge-diff
    /// `mergingWalker.visitListItems`, ported step by step).
    fn list(
        &self,
        lhs: Vec<Value>,
        rhs: &[Value],
        shape: Shape,
        path: &mut Vec<String>,
    ) -> Result<Vec<Value>, PatchError> {
        let name_of = |item: &Value| fieldset::element_name(shape, item);
        let rhs_names = rhs
            .iter()
            .map(|item| match name_of(item) {
                Ok(Some(name)) => Ok(name),
                Ok(None) => Ok(String::new()),
                Err(why) => Err(PatchError::BadRequest(format!("{}: {why}", path.join(".")))),
            })
            .collect::<Result<Vec<String>, _>>()?;
        // A live element without a usable key gets a name no applied element can have.
        let lhs_names: Vec<String> = lhs
            .iter()
            .enumerate()
            .map(|(i, item)| match name_of(item) {
                Ok(Some(name)) => name,
                _ => format!("#{i}"),
            })
            .collect();
        let mut lhs_at: HashMap<&str, usize> = HashMap::new();
        for (i, name) in lhs_names.iter().enumerate().rev() {
            lhs_at.insert(name, i);
        }
        let in_rhs: HashSet<&str> = rhs_names.iter().map(String::as_str).collect();
        let mut shared: VecDeque<&str> = rhs_names
            .iter()
            .map(String::as_str)
            .filter(|name| lhs_at.contains_key(name))
            .collect();
        let mut next_shared = shared.pop_front();
        let mut merged_rhs: HashSet<&str> = HashSet::new();

        let mut out = Vec::with_capacity(lhs.len().max(rhs.len()));
        let (mut li, mut ri) = (0, 0);
        while li < lhs.len() || ri < rhs.len() {
            if li < lhs.len() && ri < rhs.len() {
                let name = lhs_names[li].as_str();
                if name == rhs_names[ri] {
                    merged_rhs.insert(name);
                    out.push(self.value(Some(lhs[li].clone()), &rhs[ri], path)?);
                    li += 1;
                    ri += 1;
                    next_shared = shared.pop_front();
                    continue;
                }
                // A shared element, but not the one whose turn it is.
                if in_rhs.contains(name) && next_shared.is_some_and(|next| next != name) {
                    li += 1;
                    continue;
                }
            }
            if li < lhs.len() {
                let name = lhs_names[li].as_str();
                if !in_rhs.contains(name) {
                    out.push(lhs[li].clone());
                    li += 1;
                    continue;
                }
                if merged_rhs.contains(name) {
                    li += 1;
                    continue;
                }
            }
            if ri < rhs.len() {
                let name = rhs_names[ri].as_str();
                merged_rhs.insert(name);
                let live = lhs_at.get(name).map(|&i| lhs[i].clone());
                out.push(self.value(live, &rhs[ri], path)?);
                ri += 1;
                if next_shared == Some(name) {
                    next_shared = shared.pop_front();
                }
            }
        }
        Ok(out)
    }
}

/// A value as stored: object entries that are null dropped, at every depth.
fn without_nulls(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), without_nulls(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(without_nulls).collect()),
        scalar => scalar.clone(),
    }
}

#[cfg(test)]
#[path = "apply_tests.rs"]
mod tests;
