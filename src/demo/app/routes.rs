//! The demo app's router: handlers for each path and one middleware (`frame`) that every
//! request passes through — it applies the injected faults, stamps the identity headers
//! and counts the response. The paths and the admin API are documented in `app/mod.rs`.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::burn::{CpuQuota, burn_cpu};
use super::counters::{Counters, PathClass};
use super::faults::{FaultSpec, FaultSwitch};
use super::kv::{self, Kv};
use super::{AdminState, AppConfig, IdentityHeaders};
use crate::html::escape;

/// Default `/work` burn when `ms` is not given.
const DEFAULT_WORK_MS: u64 = 100;

static POD_HEADER: HeaderName = HeaderName::from_static("x-resil-pod");
static COLOR_HEADER: HeaderName = HeaderName::from_static("x-resil-color");
static VERSION_HEADER: HeaderName = HeaderName::from_static("x-resil-version");

/// Everything the handlers share.
#[derive(Debug)]
pub(crate) struct Shared {
    pub config: AppConfig,
    pub headers: IdentityHeaders,
    pub faults: FaultSwitch,
    /// The CPU limit `/work` and the CPU burn share.
    pub cpu: Arc<CpuQuota>,
    pub counters: Counters,
    /// The write path: the key-value store and its synchronous replica.
    pub kv: Kv,
    pub started_at: DateTime<Utc>,
    /// Cancelled when the app begins to shut down: releases hung requests.
    pub stopping: CancellationToken,
    /// Cancelled at the shutdown signal, a drain period before `stopping`: responses
    /// close their connections and `/readyz` fails.
    pub draining: CancellationToken,
}

pub(crate) type AppState = Arc<Shared>;

pub(crate) fn new_state(config: AppConfig, headers: IdentityHeaders, kv: Kv) -> AppState {
    let cpu = Arc::new(CpuQuota::new(config.cpu_limit_millicores));
    Arc::new(Shared {
        kv,
        config,
        headers,
        faults: FaultSwitch::new(Arc::clone(&cpu)),
        cpu,
        counters: Counters::new(),
        started_at: Utc::now(),
        stopping: CancellationToken::new(),
        draining: CancellationToken::new(),
    })
}

/// The whole app as a router.
pub(crate) fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/work", get(work))
        .route("/kv", get(kv::feed))
        .route("/kv/{*key}", get(kv::get).put(kv::put))
        .route("/admin/state", get(admin_state))
        .route(
            "/admin/faults",
            get(get_faults).put(put_faults).delete(delete_faults),
        )
        .route(
            "/admin/replica",
            get(kv::get_replica)
                .put(kv::put_replica)
                .delete(kv::delete_replica),
        )
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(state.clone(), frame))
        .with_state(state)
}

/// Applies faults, then stamps identity headers and counts — on every response.
async fn frame(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let class = PathClass::of(request.uri().path());
    let mut response = if class == PathClass::Admin {
        next.run(request).await
    } else {
        faulted(&state, class, request, next).await
    };
    let headers = response.headers_mut();
    headers.insert(POD_HEADER.clone(), state.headers.pod.clone());
    headers.insert(COLOR_HEADER.clone(), state.headers.color.clone());
    headers.insert(VERSION_HEADER.clone(), state.headers.version.clone());
    if state.draining.is_cancelled() {
        headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    state.counters.record(class, response.status().as_u16());
    tracing::info!(
        path = class.as_str(),
        status = response.status().as_u16(),
        "request"
    );
    response
}

async fn faulted(state: &Shared, class: PathClass, request: Request, next: Next) -> Response {
    let mut faults = state.faults.current();
    if faults.hang {
        tokio::select! {
            // Switched off or reverted: serve as usual with whatever is in force now.
            () = state.faults.hang_released() => faults = state.faults.current(),
            // Shutting down: a hung request must not hold up the exit.
            () = state.stopping.cancelled() => {
                return error(StatusCode::SERVICE_UNAVAILABLE, "shutting down");
            }
        }
    }
    if class.is_traffic() {
        let release = state.config.release;
        let mut delay = faults.latency_ms + release.latency_ms;
        if faults.jitter_ms > 0 {
            delay += rand::random_range(0..=faults.jitter_ms);
        }
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
        if faults.error_rate > 0.0 && rand::random_bool(faults.error_rate) {
            return error(StatusCode::INTERNAL_SERVER_ERROR, "injected error");
        }
        if release.fail_rate > 0.0 && rand::random_bool(release.fail_rate) {
            return error(StatusCode::INTERNAL_SERVER_ERROR, "this release fails");
        }
    }
    next.run(request).await
}

pub(crate) fn error(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(json!({ "error": message }))).into_response()
}

async fn index(State(state): State<AppState>) -> Response {
    let html = page(&state.config.identity, Utc::now());
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        Body::from(html),
    )
        .into_response()
}

/// The page: one coloured card naming pod, version, region and time.
fn page(identity: &super::Identity, now: DateTime<Utc>) -> String {
    let background = css_color(&identity.color);
    let color = escape(&identity.color);
    let version = escape(&identity.version);
    let region = escape(&identity.region);
    let pod = escape(&identity.pod);
    let time = now.to_rfc3339_opts(SecondsFormat::Millis, true);
    format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>resil demo — {color}</title>\n\
         <style>body{{margin:0;font-family:system-ui,sans-serif;background:{background};color:#fff;\
         display:flex;align-items:center;justify-content:center;height:100vh}}\
         main{{text-align:center}}h1{{font-size:4em;margin:0}}dl{{font-size:1.4em}}\
         dt{{opacity:.7}}dd{{margin:0 0 .5em 0}}</style></head>\n\
         <body><main><h1>{color}</h1><dl><dt>version</dt><dd>{version}</dd>\
         <dt>region</dt><dd>{region}</dd><dt>pod</dt><dd>{pod}</dd>\
         <dt>time</dt><dd>{time}</dd></dl></main></body></html>\n"
    )
}

/// A CSS colour for the page background: the demo's two colours get readable shades,
/// other simple names are passed through, anything else is grey.
fn css_color(name: &str) -> &str {
    match name {
        "blue" => "#1d5fbf",
        "green" => "#1e8a4c",
        n if !n.is_empty() && n.len() <= 20 && n.chars().all(|c| c.is_ascii_alphabetic()) => n,
        _ => "#555",
    }
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(state): State<AppState>) -> Response {
    if state.draining.is_cancelled() {
        (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n").into_response()
    } else if state.faults.current().unready {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n").into_response()
    } else {
        "ready\n".into_response()
    }
}

async fn work(State(state): State<AppState>, request: Request) -> Response {
    let requested = match work_ms(request.uri().query()) {
        Ok(ms) => ms,
        Err(message) => return error(StatusCode::BAD_REQUEST, &message),
    };
    let cap = u64::try_from(state.config.max_work.as_millis()).unwrap_or(u64::MAX);
    let burned = requested.min(cap);
    let cpu = Arc::clone(&state.cpu);
    let spun =
        tokio::task::spawn_blocking(move || burn_cpu(Duration::from_millis(burned), &cpu)).await;
    if spun.is_err() {
        return error(StatusCode::INTERNAL_SERVER_ERROR, "the work thread failed");
    }
    axum::Json(json!({ "burned_ms": burned, "capped": burned < requested })).into_response()
}

/// Reads `ms` from a query string (`ms=N`); absent means the default.
fn work_ms(query: Option<&str>) -> Result<u64, String> {
    let value = query
        .unwrap_or("")
        .split('&')
        .find_map(|pair| pair.strip_prefix("ms="));
    match value {
        None => Ok(DEFAULT_WORK_MS),
        Some(text) => text.parse().map_err(|_| {
            format!("ms must be a whole number of milliseconds, e.g. /work?ms=50; got {text:?}")
        }),
    }
}

async fn admin_state(State(state): State<AppState>) -> Response {
    let identity = &state.config.identity;
    axum::Json(AdminState {
        pod: identity.pod.clone(),
        color: identity.color.clone(),
        version: identity.version.clone(),
        region: identity.region.clone(),
        started_at: state.started_at,
        faults: state.faults.current(),
        release: state.config.release,
        requests: state.counters.snapshot(),
        kv: state.kv.snapshot(),
    })
    .into_response()
}

async fn get_faults(State(state): State<AppState>) -> Response {
    axum::Json(state.faults.current()).into_response()
}

/// Reads the body itself (not `Json<_>`) so a missing content type is fine (plain
/// `curl -d`) and every refusal is the same JSON error shape.
async fn put_faults(State(state): State<AppState>, body: Bytes) -> Response {
    let spec: FaultSpec = match serde_json::from_slice(&body) {
        Ok(spec) => spec,
        Err(err) => {
            return error(
                StatusCode::BAD_REQUEST,
                &format!("the body must be a JSON fault object: {err}"),
            );
        }
    };
    match spec.resolve(Utc::now()) {
        Ok(faults) => {
            state.faults.set(faults);
            tracing::info!(?faults, "faults set");
            axum::Json(faults).into_response()
        }
        Err(err) => error(StatusCode::BAD_REQUEST, &err.to_string()),
    }
}

async fn delete_faults(State(state): State<AppState>) -> Response {
    state.faults.set(Default::default());
    tracing::info!("faults cleared");
    axum::Json(state.faults.current()).into_response()
}

async fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "no such path")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn work_ms_reads_the_query_and_explains_bad_values() {
        assert_eq!(work_ms(None), Ok(DEFAULT_WORK_MS));
        assert_eq!(work_ms(Some("ms=25")), Ok(25));
        assert_eq!(work_ms(Some("x=1&ms=7")), Ok(7));
        assert!(
            work_ms(Some("ms=lots"))
                .unwrap_err()
                .contains("whole number")
        );
    }

    #[test]
    fn the_page_escapes_environment_values() {
        let identity = super::super::Identity {
            pod: "<script>".into(),
            color: "blue".into(),
            version: "v1".into(),
            region: "eu".into(),
        };
        let html = page(&identity, Utc::now());
        assert!(html.contains("&lt;script&gt;"));
        assert!(!html.contains("<script>"));
        assert!(html.contains("#1d5fbf"));
    }
}
