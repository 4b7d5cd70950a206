//! The pod subresources that move pods between nodes: `POST pods/{name}/binding` (core/v1
//! Binding: what the scheduler does, `controllers/scheduler/`) and `POST
//! pods/{name}/eviction` (policy/v1 Eviction, mirroring upstream
//! `pkg/registry/core/pod/storage/eviction.go`): a pod no PodDisruptionBudget covers is
//! deleted; one covered by a budget is deleted only while the budget's
//! `status.disruptionsAllowed` is above zero, which the eviction decrements (recording
//! the pod in `status.disruptedPods` so the disruption controller does not count it
//! healthy meanwhile); otherwise 429 TooManyRequests. Pods that are terminal, pending or
//! already terminating, and unready pods while the budget holds, are deleted without
//! spending the budget. Called by `handlers.rs`.

use axum::http::StatusCode;
use axum::response::Response;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use serde_json::{Value, json};

use super::App;
use super::handlers::{Target, ns};
use super::status::{ApiError, ApiResult, json_response};
use crate::controllers::labels::selects;
use crate::controllers::pods::is_ready;
use crate::controllers::scheduler::{self, BindError};
use crate::store::kinds::kind;
use crate::store::{DeleteOptions, StoreError, WriteMode};

/// Upstream's message when a budget forbids the eviction.
pub const VIOLATES_BUDGET: &str =
    "Cannot evict pod as it would violate the pod's disruption budget.";

fn success() -> Response {
    json_response(
        StatusCode::CREATED,
        &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                "code": 201}),
    )
}

/// `POST pods/{name}/binding`.
pub(super) fn binding(app: &App, target: &Target, name: &str, body: &[u8]) -> ApiResult<Response> {
    let binding: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("the Binding is not valid JSON: {e}")))?;
    let node = binding
        .pointer("/target/name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| {
            ApiError::invalid(
                kind("pods"),
                name,
                &[("target.name".into(), "Required value".into())],
            )
        })?;
    match scheduler::bind(&app.store, ns(target), name, node) {
        Ok(()) => Ok(success()),
        Err(BindError::NotFound(_)) => Err(ApiError::not_found(target.kind, name)),
        Err(e @ BindError::Assigned { .. }) => Err(ApiError {
            code: StatusCode::CONFLICT,
            reason: "Conflict",
            message: format!("Operation cannot be fulfilled on pods/binding \"{name}\": {e}"),
            details: Some(json!({"name": name, "kind": "pods/binding"})),
        }),
        Err(BindError::Store(e)) => Err(e.into()),
    }
}

/// `POST pods/{name}/eviction`. The body (an Eviction, possibly with `deleteOptions`) is
/// read when it is JSON; a body in another encoding evicts with default options.
pub(super) fn eviction(app: &App, target: &Target, name: &str, body: &[u8]) -> ApiResult<Response> {
    let namespace = ns(target);
    let live = app
        .store
        .get("pods", namespace, name)
        .ok_or_else(|| ApiError::not_found(target.kind, name))?;
    let opts = delete_options(body);
    let pod: Pod = serde_json::from_value(live.clone())
        .map_err(|e| ApiError::bad_request(format!("cannot read pod {name}: {e}")))?;
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    let ignores_budget = pod.metadata.deletion_timestamp.is_some()
        || matches!(phase, Some("Succeeded" | "Failed" | "Pending") | None);
    if !ignores_budget {
        // A budget written by another eviction meanwhile is read again, as upstream's
        // `EvictionsRetry` does, so the loser of a race gets the budget's answer (429).
        let mut attempts = 0;
        loop {
            match spend_budget(app, namespace, &pod) {
                Err(e) if e.code == StatusCode::CONFLICT && attempts < 5 => attempts += 1,
                done => break done?,
            }
        }
    }
    match app.store.delete(kind("pods"), namespace, name, &opts) {
        Ok(_) | Err(StoreError::NotFound { .. }) => Ok(success()),
        Err(e) => Err(e.into()),
    }
}

fn delete_options(body: &[u8]) -> DeleteOptions {
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let grace = v
        .pointer("/deleteOptions/gracePeriodSeconds")
        .and_then(Value::as_i64);
    DeleteOptions {
        grace_period: grace,
        ..DeleteOptions::default()
    }
}

fn too_many(message: String) -> ApiError {
    ApiError {
        code: StatusCode::TOO_MANY_REQUESTS,
        reason: "TooManyRequests",
        message: VIOLATES_BUDGET.to_string(),
        details: Some(json!({"causes": [{"reason": "DisruptionBudget", "message": message}]})),
    }
}

/// Checks the pod's budget and takes one disruption from it (upstream
/// `checkAndDecrement`); `Err` when the eviction must not happen.
fn spend_budget(app: &App, namespace: &str, pod: &Pod) -> ApiResult<()> {
    let labels = pod.metadata.labels.clone().unwrap_or_default();
    let budgets: Vec<PodDisruptionBudget> = app
        .store
        .list("poddisruptionbudgets", Some(namespace))
        .items
        .into_iter()
        .filter_map(|v| serde_json::from_value(v).ok())
        .filter(|b: &PodDisruptionBudget| {
            selects(b.spec.as_ref().and_then(|s| s.selector.as_ref()), &labels)
        })
        .collect();
    let budget = match budgets.as_slice() {
        [] => return Ok(()),
        [one] => one,
        _ => {
            return Err(ApiError {
                code: StatusCode::INTERNAL_SERVER_ERROR,
                reason: "InternalError",
                message: "This pod has more than one PodDisruptionBudget, which the eviction \
                          subresource does not support."
                    .into(),
                details: None,
            });
        }
    };
    let pdb_name = budget.metadata.name.clone().unwrap_or_default();
    // Decide on the object the write carries the resourceVersion of: two evictions at once
    // (kubectl drain evicts in parallel) must not both spend the last disruption on a
    // status read before either wrote. The loser gets a conflict (409) and retries.
    let mut live = app
        .store
        .get("poddisruptionbudgets", namespace, &pdb_name)
        .ok_or_else(|| ApiError::not_found(kind("poddisruptionbudgets"), &pdb_name))?;
    let budget: PodDisruptionBudget =
        serde_json::from_value(live.clone()).unwrap_or_else(|_| budget.clone());
    let status = budget.status.clone().unwrap_or_default();
    let (allowed, desired, healthy) = (
        status.disruptions_allowed.unwrap_or(0),
        status.desired_healthy.unwrap_or(0),
        status.current_healthy.unwrap_or(0),
    );
    if status.observed_generation.unwrap_or(0) < budget.metadata.generation.unwrap_or(0) {
        return Err(too_many(format!(
            "The disruption budget {pdb_name} is still being processed by the server."
        )));
    }
    // An unready pod may go while the budget is met (unhealthyPodEvictionPolicy
    // IfHealthyBudget, the default), without spending it.
    if !is_ready(pod) && healthy >= desired {
        return Ok(());
    }
    if allowed <= 0 {
        return Err(too_many(format!(
            "The disruption budget {pdb_name} needs {desired} healthy pods and has {healthy} \
             currently"
        )));
    }
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    live["status"]["disruptionsAllowed"] = json!(allowed - 1);
    let pod_name = pod.metadata.name.clone().unwrap_or_default();
    if !live["status"]["disruptedPods"].is_object() {
        live["status"]["disruptedPods"] = json!({});
    }
    live["status"]["disruptedPods"][pod_name] = json!(now);
    // Carries the resourceVersion of the object decided on: a concurrent eviction gets a
    // conflict (409) and retries, as upstream's does.
    app.store.update(
        kind("poddisruptionbudgets"),
        namespace,
        &pdb_name,
        live,
        WriteMode::Status,
    )?;
    Ok(())
}
