//! The lab's Kubernetes API over HTTP: the axum router, bearer-token authentication, body
//! reading (size, time and nesting-depth limits, JSON, YAML or protobuf) and the lab's own status
//! endpoint. Resource requests
//! are routed by `handlers.rs` (PATCH in `patching.rs`, `/scale` and pod metrics in
//! `subresources.rs`, `/log` in `logs.rs`), watches streamed by `watch.rs`, discovery
//! answered by `discovery.rs`, Table printing in `table.rs`, selectors in `selector.rs`,
//! validation in `validate.rs`, errors rendered by `status.rs`, `/metrics` in `metrics.rs`. Built by `server.rs`; it
//! does not know about TLS or sockets. All state lives in the store.

mod discovery;
mod eviction;
mod handlers;
mod logs;
mod metrics;
pub mod outage;
mod patching;
mod protobuf;
mod proxy;
mod selector;
mod status;
mod subresources;
mod table;
mod table_jobs;
mod table_kinds;
mod table_nodes;
mod validate;
mod validate_job;
mod watch;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::store::bounds::{self, MAX_DEPTH};
use crate::store::{Kind, Store};
use status::{ApiError, ApiResult, json_response};

/// Largest accepted request body (the upstream API server's limit is 3 MiB too).
pub const MAX_BODY: usize = 3 * 1024 * 1024;

/// What every handler can reach.
#[derive(Debug)]
pub struct App {
    /// The objects.
    pub store: Arc<Store>,
    /// The bearer token requests must carry.
    pub token: String,
    /// Cancelled when the lab shuts down (ends open watches).
    pub shutdown: CancellationToken,
    /// When the lab started (RFC 3339).
    pub started_at: String,
    /// Where the API listens.
    pub addr: SocketAddr,
    /// The lab's state directory (pod logs live under `pods/`).
    pub state_dir: std::path::PathBuf,
    /// How often a watch with allowWatchBookmarks gets a BOOKMARK.
    pub bookmark_interval: Duration,
    /// Longest wait for a request body once its header has arrived.
    pub body_timeout: Duration,
}

/// The whole API as one router.
pub fn router(app: Arc<App>) -> Router {
    let api_metrics = Arc::new(metrics::ApiMetrics::new(app.store.clone()));
    let control_plane = outage::ControlPlane::new(app.store.clone());
    let scraped = api_metrics.clone();
    Router::new()
        .route(
            "/metrics",
            get(move |headers: HeaderMap| async move { metrics::scrape(&scraped, &headers) }),
        )
        .route("/version", get(|| async { discovery::version() }))
        .route("/version/", get(|| async { discovery::version() }))
        .route("/api", get(|| async { discovery::core_versions() }))
        .route("/api/", get(|| async { discovery::core_versions() }))
        .route("/apis", get(|| async { discovery::groups() }))
        .route("/apis/", get(|| async { discovery::groups() }))
        .route("/openapi/v3", get(|| async { discovery::openapi_v3() }))
        .route("/openapi/v2", get(|| async { discovery::openapi_v2() }))
        .route("/resil/v1/status", get(lab_status))
        .fallback(handlers::dispatch)
        .layer(middleware::from_fn(json_errors))
        // After json_errors: a pod's own bodiless 404 or 405 passes back untouched.
        .merge(proxy::routes())
        // Inside authentication: only the lab's own clients learn the control plane is down.
        .layer(middleware::from_fn_with_state(control_plane, outage::gate))
        .layer(middleware::from_fn_with_state(app.clone(), authenticate))
        // Outermost: refused requests (401) are counted too, as the API server counts them.
        .layer(middleware::from_fn_with_state(api_metrics, metrics::record))
        .with_state(app)
}

/// Refuses requests without the lab's bearer token (401 Status).
async fn authenticate(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match presented {
        // An empty lab token would let every "Bearer " in; the credentials loader refuses
        // one, and this keeps it refused whatever builds the App.
        Some(t)
            if !app.token.is_empty() && constant_time_eq(t.as_bytes(), app.token.as_bytes()) =>
        {
            next.run(req).await
        }
        _ => ApiError::unauthorized().into_response(),
    }
}

/// Gives the router's own bodiless answers (a wrong method on a fixed route such as
/// `POST /version`) a Status body, so every error a client sees is JSON.
async fn json_errors(req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let res = next.run(req).await;
    if res.headers().contains_key(header::CONTENT_TYPE) {
        return res;
    }
    match res.status() {
        StatusCode::METHOD_NOT_ALLOWED => {
            ApiError::method_not_allowed(method.as_str(), &path).into_response()
        }
        StatusCode::NOT_FOUND => ApiError::no_route().into_response(),
        _ => res,
    }
}

/// Compares without an early exit, so response timing does not reveal a token prefix.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `GET /resil/v1/status`: the lab's own health and object counts.
async fn lab_status(State(app): State<Arc<App>>) -> Response {
    json_response(
        StatusCode::OK,
        &json!({
            "pid": std::process::id(),
            "started_at": app.started_at,
            "address": app.addr.to_string(),
            "objects": app.store.counts(),
        }),
    )
}

/// A request body in the format its Content-Type names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFormat {
    /// JSON (also the default for a missing Content-Type).
    Json,
    /// YAML (a superset of JSON).
    Yaml,
    /// Kubernetes protobuf (`k8s\0` + `runtime.Unknown`), decoded to JSON by `protobuf.rs`.
    Protobuf,
}

/// Reads the whole body, refusing more than [`MAX_BODY`] bytes (413) and a body that takes
/// longer than `timeout` to arrive (408: a client trickling bytes would hold its connection
/// and its slot for as long as it liked).
pub async fn read_body(body: Body, timeout: Duration) -> ApiResult<bytes::Bytes> {
    let read = tokio::time::timeout(timeout, axum::body::to_bytes(body, MAX_BODY))
        .await
        .map_err(|_| ApiError::body_timeout(timeout))?;
    read.map_err(|e| {
        let too_large = std::error::Error::source(&e)
            .is_some_and(|s| s.is::<http_body_util::LengthLimitError>())
            || e.to_string().contains("length limit");
        if too_large {
            ApiError::too_large(MAX_BODY)
        } else {
            ApiError::bad_request(format!("cannot read the request body: {e}"))
        }
    })
}

/// Parses a body as JSON or YAML into an object (400 for anything else; 422 when nested
/// deeper than [`MAX_DEPTH`]). `kind` and `name` are what the request is about, for the
/// 422's details.
pub fn parse_object(bytes: &[u8], format: BodyFormat, kind: &Kind, name: &str) -> ApiResult<Value> {
    let value = parse_value(bytes, format, kind, name)?;
    if value.is_object() {
        Ok(value)
    } else {
        Err(ApiError::bad_request(
            "the request body must be a JSON or YAML object",
        ))
    }
}

/// Parses a body as JSON or YAML (400 on malformed input, 422 when nested deeper than
/// [`MAX_DEPTH`]). The depth is judged before a parser recurses: on the JSON text itself,
/// and by the YAML parser's own depth budget (which is also 64).
pub fn parse_value(bytes: &[u8], format: BodyFormat, kind: &Kind, name: &str) -> ApiResult<Value> {
    let too_deep =
        |field: String| ApiError::invalid(kind, name, &[(field, bounds::depth_message())]);
    let value = match format {
        BodyFormat::Json => {
            if let Some(field) = bounds::json_text_deeper_than(bytes, MAX_DEPTH) {
                return Err(too_deep(field));
            }
            serde_json::from_slice(bytes).map_err(|e| {
                ApiError::bad_request(format!("the request body is not valid JSON: {e}"))
            })?
        }
        BodyFormat::Yaml => {
            let text = std::str::from_utf8(bytes)
                .map_err(|_| ApiError::bad_request("the request body is not UTF-8"))?;
            serde_saphyr::from_str::<Value>(text).map_err(|e| {
                if yaml_too_deep(&e) {
                    too_deep(String::new())
                } else {
                    ApiError::bad_request(format!("the request body is not valid YAML: {e}"))
                }
            })?
        }
        BodyFormat::Protobuf => protobuf::decode(bytes).map_err(|e| match e {
            protobuf::DecodeError::TooDeep => too_deep(String::new()),
            e => ApiError::bad_request(format!("the request body is not valid protobuf: {e}")),
        })?,
    };
    match bounds::deeper_than(&value, MAX_DEPTH) {
        Some(field) => Err(too_deep(field)),
        None => Ok(value),
    }
}

fn yaml_too_deep(e: &serde_saphyr::Error) -> bool {
    matches!(
        e.without_snippet(),
        serde_saphyr::Error::Budget {
            breach: serde_saphyr::budget::BudgetBreach::Depth { .. },
            ..
        }
    )
}

/// The media type of the request (without parameters), lowercased.
pub fn content_type(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// The body format for create/replace requests (415 for unknown types).
pub fn write_format(headers: &HeaderMap) -> ApiResult<BodyFormat> {
    match content_type(headers).as_str() {
        "" | "application/json" => Ok(BodyFormat::Json),
        "application/yaml" | "application/x-yaml" | "text/yaml" => Ok(BodyFormat::Yaml),
        protobuf::MEDIA_TYPE => Ok(BodyFormat::Protobuf),
        other => Err(ApiError::unsupported_media_type(
            other,
            &["application/json", "application/yaml", protobuf::MEDIA_TYPE],
        )),
    }
}
