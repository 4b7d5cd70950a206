//! Subresources and computed resources: the Deployment `/scale` view (autoscaling/v1
//! Scale) read and written as `spec.replicas`, and metrics.k8s.io PodMetrics served from
//! the kubelet's latest samples in the store. Called by `handlers.rs` and `patching.rs`.

use std::collections::HashMap;

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};

use super::App;
use super::handlers::{Target, list_body, live, selector, store_update};
use super::status::{ApiError, ApiResult, json_response};
use crate::store::{StoreError, WriteMode};

/// The autoscaling/v1 Scale view of a Deployment.
pub(super) fn scale_of(deploy: &Value) -> Value {
    let meta = &deploy["metadata"];
    let selector = deploy
        .pointer("/spec/selector/matchLabels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": meta["name"], "namespace": meta["namespace"], "uid": meta["uid"],
            "resourceVersion": meta["resourceVersion"], "creationTimestamp": meta["creationTimestamp"],
        },
        "spec": {"replicas": deploy.pointer("/spec/replicas").cloned().unwrap_or(json!(1))},
        "status": {
            "replicas": deploy.pointer("/status/replicas").cloned().unwrap_or(json!(0)),
            "selector": selector,
        },
    })
}

pub(super) fn set_replicas(
    app: &App,
    target: &Target,
    name: &str,
    replicas: &Value,
    rv: &str,
) -> ApiResult<Response> {
    let Some(n) = replicas
        .as_i64()
        .filter(|n| *n >= 0 && *n <= i32::MAX as i64)
    else {
        return Err(ApiError::invalid(
            target.kind,
            name,
            &[(
                "spec.replicas".into(),
                format!("Invalid value: {replicas}: must be a non-negative integer"),
            )],
        ));
    };
    let mut deploy = live(app, target, name)?;
    if !rv.is_empty()
        && rv
            != deploy
                .pointer("/metadata/resourceVersion")
                .and_then(Value::as_str)
                .unwrap_or("")
    {
        return Err(StoreError::Conflict {
            resource: target.kind.plural,
            name: name.to_string(),
        }
        .into());
    }
    deploy["spec"]["replicas"] = json!(n);
    let updated = store_update(app, target, name, deploy, WriteMode::Main)?;
    Ok(json_response(StatusCode::OK, &scale_of(&updated)))
}

pub(super) fn metrics_list(
    app: &App,
    target: &Target,
    query: &HashMap<String, String>,
) -> ApiResult<Response> {
    if query.get("watch").is_some_and(|v| v == "true" || v == "1") {
        return Err(ApiError::method_not_allowed("WATCH", "metrics"));
    }
    let sel = selector(target, query)?;
    let items: Vec<Value> = metrics_objects(app, target)
        .into_iter()
        .filter(|o| sel.matches(o))
        .collect();
    Ok(json_response(
        StatusCode::OK,
        &list_body(target.kind, items, None),
    ))
}

/// The PodMetrics (in the target's namespace, or all) or the NodeMetrics of every node.
fn metrics_objects(app: &App, target: &Target) -> Vec<Value> {
    let pods = app.store.pod_metrics(target.namespace.as_deref());
    if target.kind.kind != "NodeMetrics" {
        return pods;
    }
    // Each pod's node, from one list of the pods rather than a read per sample.
    let node_of: std::collections::HashMap<(String, String), String> = app
        .store
        .list("pods", None)
        .items
        .iter()
        .filter_map(|p| {
            let key = |k: &str| {
                p.pointer(&format!("/metadata/{k}"))?
                    .as_str()
                    .map(str::to_string)
            };
            let node = p.pointer("/spec/nodeName")?.as_str()?.to_string();
            Some(((key("namespace")?, key("name")?), node))
        })
        .collect();
    let placed: Vec<(Option<&String>, Value)> = pods
        .into_iter()
        .map(|m| {
            let key = |k: &str| {
                m.pointer(&format!("/metadata/{k}"))
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string()
            };
            (node_of.get(&(key("namespace"), key("name"))), m)
        })
        .collect();
    let now = k8s_openapi::jiff::Timestamp::now();
    app.store
        .list("nodes", None)
        .items
        .iter()
        .filter_map(|n| n.pointer("/metadata/name")?.as_str().map(str::to_string))
        .map(|node| {
            let on: Vec<Value> = placed
                .iter()
                .filter(|(at, _)| at.is_some_and(|n| *n == node))
                .map(|(_, m)| m.clone())
                .collect();
            crate::metrics::node_metrics(&node, &on, now)
        })
        .collect()
}

pub(super) fn metrics_get(app: &App, target: &Target, name: &str) -> ApiResult<Response> {
    metrics_objects(app, target)
        .into_iter()
        .find(|o| o.pointer("/metadata/name").and_then(Value::as_str) == Some(name))
        .map(|o| json_response(StatusCode::OK, &o))
        .ok_or_else(|| ApiError::not_found(target.kind, name))
}
