//! PATCH requests: picks the patch type from the Content-Type (415 otherwise), applies it
//! with `crate::patch` to the live object (or to its Scale view), and writes the result
//! through the store's rules; server-side apply creates a missing object. Patches without
//! their own resourceVersion are retried on a conflicting concurrent write, as upstream.
//! Called by `handlers.rs`.

use std::collections::HashMap;

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};

use super::App;
use super::handlers::{
    Target, check_body, keep_server_fields, mode, ns, store_create, store_update,
};
use super::status::{ApiError, ApiResult, json_response};
use super::subresources::{scale_of, set_replicas};
use super::{BodyFormat, parse_value, validate};
use crate::patch::{self, Patch};
use crate::store::WriteMode;

const PATCH_TYPES: &[&str] = &[
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
    "application/apply-patch+yaml",
];

pub(super) fn patch(
    app: &App,
    target: &Target,
    name: &str,
    content_type: &str,
    bytes: &[u8],
    query: &HashMap<String, String>,
) -> ApiResult<Response> {
    let format = if content_type == "application/apply-patch+yaml" {
        BodyFormat::Yaml
    } else {
        BodyFormat::Json
    };
    if !PATCH_TYPES.contains(&content_type) {
        return Err(ApiError::unsupported_media_type(content_type, PATCH_TYPES));
    }
    let doc = parse_value(bytes, format, target.kind, name)?;
    let manager = query.get("fieldManager").map(String::as_str).unwrap_or("");
    let patch = match content_type {
        "application/json-patch+json" => Patch::Json(&doc),
        "application/merge-patch+json" => Patch::Merge(&doc),
        "application/strategic-merge-patch+json" => Patch::Strategic(&doc),
        _ => {
            if manager.is_empty() {
                return Err(ApiError::bad_request(
                    "PATCH with apply requires the fieldManager query parameter",
                ));
            }
            Patch::Apply {
                body: &doc,
                manager,
            }
        }
    };
    if !matches!(patch, Patch::Json(_)) && !doc.is_object() {
        return Err(ApiError::bad_request(
            "the patch document must be a JSON object",
        ));
    }
    // A patch without its own resourceVersion is applied to the latest object, retried a
    // few times if a concurrent write wins the race, as the upstream server does.
    let pins_rv = String::from_utf8_lossy(bytes).contains("resourceVersion");
    let mut attempts = 0;
    loop {
        attempts += 1;
        let current = app.store.get(target.kind.plural, ns(target), name);
        let result = patch_once(app, target, name, current, patch);
        match result {
            Err(e)
                if e.code == StatusCode::CONFLICT
                    && e.reason == "Conflict"
                    && !pins_rv
                    && attempts < 5 =>
            {
                continue;
            }
            other => return other,
        }
    }
}

fn patch_once(
    app: &App,
    target: &Target,
    name: &str,
    current: Option<Value>,
    patch: Patch<'_>,
) -> ApiResult<Response> {
    let kind = target.kind;
    if target.sub.as_deref() == Some("scale") {
        let deploy = current.ok_or_else(|| ApiError::not_found(kind, name))?;
        let scale = scale_of(&deploy);
        let patched = patch::apply(Some(&scale), patch, "Scale")
            .map_err(|e| ApiError::from_patch(kind, name, e))?;
        let rv = patched
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let replicas = patched
            .pointer("/spec/replicas")
            .cloned()
            .unwrap_or(json!(null));
        return set_replicas(app, target, name, &replicas, &rv);
    }
    let is_apply = matches!(patch, Patch::Apply { .. });
    if current.is_none() && (!is_apply || target.sub.is_some()) {
        return Err(ApiError::not_found(kind, name));
    }
    if let Patch::Apply { body, .. } = patch {
        check_body(kind, target, body, false)?;
        let body_name = body
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("");
        if body_name != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name})"
            )));
        }
    }
    let mut result = patch::apply(current.as_ref(), patch, kind.kind)
        .map_err(|e| ApiError::from_patch(kind, name, e))?;
    if !result.is_object() {
        return Err(ApiError::bad_request(
            "the patch does not produce an object",
        ));
    }
    if mode(target) == WriteMode::Main {
        keep_server_fields(kind, current.as_ref(), &mut result);
    }
    if current.is_none() {
        validate::check(kind, &result)?;
        let created = store_create(app, target, result)?;
        return Ok(json_response(StatusCode::CREATED, &created));
    }
    if mode(target) == WriteMode::Main {
        validate::check(kind, &result)?;
    }
    let updated = store_update(app, target, name, result, mode(target))?;
    Ok(json_response(StatusCode::OK, &updated))
}
