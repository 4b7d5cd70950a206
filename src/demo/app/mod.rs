//! The demo web app every demo pod runs (`resil demo-app`): a small axum server whose
//! behaviour chaos can degrade at runtime, and whose every response says which pod,
//! colour and version answered it. The lab's kubelet starts it as a child process; the
//! container image runs it on real clusters. The command layer (`demo::app_command`)
//! resolves flags into an [`AppConfig`], binds, prints the address and calls [`serve`].
//! It does not know about Kubernetes: pod name, colour, version and region come from its
//! environment.
//!
//! # HTTP surface
//! | Path | Answer |
//! |------|--------|
//! | `GET /` | a small HTML page in the colour of `COLOR`, with version, region, pod and time |
//! | `GET /healthz` | liveness: `200 ok` while the process serves |
//! | `GET /readyz` | readiness: `200 ready`, or `503 not ready` while the `unready` fault is on |
//! | `GET /work?ms=N` | burns N ms of CPU time (default 100, capped by `--max-work`, default 10 s) on a blocking thread, within the app's CPU limit (`--cpu-limit`); answers JSON `{"burned_ms":N,"capped":bool}` |
//! | `GET /admin/state` | identity, faults in force and request counters (below) |
//! | `GET /admin/faults` | the faults in force |
//! | `PUT /admin/faults` | replace the faults in force (body below); answers the faults now in force |
//! | `DELETE /admin/faults` | clear every fault (and stop a CPU burn); answers the cleared faults |
//! | `PUT /kv/{key}` | store the body as the key's value and acknowledge the write in this region (below) |
//! | `GET /kv/{key}` | the value stored (`application/octet-stream`), or `404` |
//! | `GET /kv?after=N&limit=M&min_age_ms=L` | the change feed: the latest write of each key with a sequence number above N, oldest first, at most M (≤ 1000), none younger than L ms; a write copied to the synchronous replica says so (`copied_to`) |
//! | `GET/PUT/DELETE /admin/replica` | the synchronous replica: `{"url":"http://HOST:PORT","timeout":"2s"}`; a PUT answers `since_seq`, the last sequence number when it took effect |
//!
//! Every response, errors and 404s included, carries `x-resil-pod`, `x-resil-color` and
//! `x-resil-version`; the load engine counts responses per colour from these names.
//!
//! # Admin API
//! `PUT /admin/faults` takes a JSON object; every field is optional and a missing field
//! means "off", so a PUT replaces the whole set (unknown fields are rejected, to catch
//! typos):
//! ```json
//! {"unready": true, "error_rate": 0.3, "latency_ms": 200, "jitter_ms": 50,
//!  "hang": false, "cpu_burn_percent": 0, "until": "2030-01-01T12:00:00Z"}
//! ```
//! - `unready`: `/readyz` answers 503.
//! - `error_rate` (0.0–1.0): that fraction of traffic requests (`/`, `/work`, unknown
//!   paths) answer `500` with a JSON body, chosen at random per request.
//! - `latency_ms`, `jitter_ms` (each ≤ 600000): traffic requests wait `latency_ms` plus a
//!   uniform random `0..=jitter_ms` before being served.
//! - `hang`: every request except `/admin/*` is accepted and not answered until the
//!   switch goes off (then it is served normally) or the app shuts down (then `503`).
//!   Probes hang too, as they would against a stuck process.
//! - `cpu_burn_percent` (0–100): a background thread keeps that share of one core busy.
//! - `until` (RFC 3339) or `for` (a duration such as `"30s"`, measured on the app's own
//!   clock, which avoids clock skew): the whole set reverts to "no faults" at that time
//!   even if nobody calls back, so a fault outlives neither its deadline nor a crashed
//!   chaos command. The answer carries the absolute `until`. Not both; not in the past.
//!
//! # A release that misbehaves on purpose
//! `FAIL_RATE` (`0.3` or `30%`) answers that fraction of traffic requests `500`, `LATENCY`
//! (`150ms`) delays each one, and a `VERSION` ending in `-bad` (`v2-bad`) implies a
//! `FAIL_RATE` of 0.3. The probes never see it: a bad release stays Ready, as real ones
//! do, and only a rollout's analysis of its traffic catches it. `DELETE /admin/faults`
//! leaves it alone (it is the release, not a fault); `/admin/state` shows it as `release`.
//!
//! # The write path
//! `PUT /kv/{key}` stores the body (any bytes) and answers `201` (a new key) or `200` (an
//! overwrite) with `{"key","region","seq","store","ack":"REGION@STORE:SEQ","acked_at","bytes",
//! "replicated_to"}` and the headers `x-resil-ack: REGION@STORE:SEQ` and `x-resil-region`: the
//! write is acknowledged *in this region*, with this region's next sequence number. A key
//! is 1–256 characters of `A-Z a-z 0-9 - . _ ~`, taken from the raw path (nothing is
//! percent-decoded, so `/`, `%2F` and non-UTF-8 never reach the store): anything else is
//! `400`. A value over `--kv-max-value` is `413` (refused from its `Content-Length`
//! before it is read); a write past `--kv-max-keys` or `--kv-max-bytes` is `507`. The
//! store is in memory: a restarted app is empty.
//! With a replica set (`--replica-url`, `REPLICA_URL` or `PUT /admin/replica`) a write is
//! first copied to the replica's `PUT /kv/{key}` (marked `x-resil-replicated-from`, which
//! the replica stores without copying on) and acknowledged only once the replica took it;
//! if it did not, the answer is `503` and the write is not stored here. `resil replicate`
//! copies asynchronously from the change feed instead.
//!
//! Health probes (`/healthz`, `/readyz`) and `/admin/*` never get injected errors or
//! latency, so a degraded pod stays alive and can always be switched back.
//! A bad body answers `400 {"error":"..."}`.
//!
//! `GET /admin/state` answers:
//! ```json
//! {"pod":"web-blue-7d9f-abcde","color":"blue","version":"v1","region":"local",
//!  "started_at":"RFC 3339","faults":{...same fields as above, "until":null...},
//!  "release":{"fail_rate":0.0,"latency_ms":0},
//!  "requests":{"total":120,"by_class":{"root":100,"work":0,"healthz":10,"readyz":10,
//!  "admin":0,"other":0,"kv":0},"by_status":{"200":120}},
//!  "kv":{"keys":0,"bytes":0,"last_seq":0,"replica":null}}
//! ```
//! Counters count responses produced since start (a request counts once its response
//! is ready, so a state request is not in its own figures; requests whose client went
//! away before the answer are not counted).

mod burn;
mod counters;
mod faults;
pub mod kv;
mod release;
mod routes;

use std::future::Future;
use std::io;
use std::time::Duration;

use axum::http::HeaderValue;
use axum::serve::ListenerExt;
use tokio::net::TcpListener;

pub use counters::{CounterSnapshot, PathClass};
pub use faults::{FaultError, FaultSpec, Faults};
pub use release::{BAD_VERSION_FAIL_RATE, Release, parse_fail_rate};

/// The body of `GET /admin/state` (also what chaos and load read back).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AdminState {
    /// Pod name.
    pub pod: String,
    /// Colour.
    pub color: String,
    /// Version.
    pub version: String,
    /// Region.
    pub region: String,
    /// When the app started.
    pub started_at: chrono::DateTime<chrono::Utc>,
    /// The faults in force.
    pub faults: Faults,
    /// How this release answers traffic (`FAIL_RATE`, `LATENCY`, a `-bad` version).
    #[serde(default)]
    pub release: Release,
    /// Responses counted since start.
    pub requests: CounterSnapshot,
    /// The key-value store's counts and synchronous replica.
    #[serde(default)]
    pub kv: kv::KvSnapshot,
}

/// Who this instance is: shown on the page and sent in every response's headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// Pod name (`POD_NAME`, else the host name).
    pub pod: String,
    /// Colour (`COLOR`), e.g. `blue`.
    pub color: String,
    /// Version (`VERSION`).
    pub version: String,
    /// Region (`REGION`): on the page, and in the write path's acknowledgements.
    pub region: String,
}

/// A resolved demo-app configuration.
#[derive(Debug, Clone)]
pub struct AppConfig {
    /// Who this instance is.
    pub identity: Identity,
    /// The longest burn `/work?ms=` performs; longer requests are capped to it.
    pub max_work: Duration,
    /// How long to go on serving after the shutdown signal (see `resil demo-app --drain`).
    pub drain: Duration,
    /// The CPU limit in thousandths of a core that `/work` and the CPU burn share
    /// (`resil demo-app --cpu-limit`); `None` is unlimited.
    pub cpu_limit_millicores: Option<u64>,
    /// How this release answers traffic, on top of any fault chaos injects.
    pub release: Release,
    /// How much the key-value store holds.
    pub kv_limits: kv::KvLimits,
    /// Copy every write here before acknowledging it (synchronous replication).
    pub replica_url: Option<String>,
}

/// Why the demo app could not start or serve.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// An identity value cannot travel in an HTTP header.
    #[error("{name} {value:?} cannot be sent in an HTTP header: use visible ASCII characters only")]
    BadHeaderValue {
        /// Which value (`POD_NAME`, `COLOR`, `VERSION`).
        name: &'static str,
        /// The offending value.
        value: String,
    },
    /// `--replica-url` is not a plain `http://HOST:PORT`.
    #[error("invalid --replica-url: {0}")]
    BadReplica(String),
    /// The server stopped with an I/O error.
    #[error("serving HTTP failed")]
    Serve(#[source] io::Error),
}

/// The three identity headers, validated once at start.
#[derive(Debug, Clone)]
pub(crate) struct IdentityHeaders {
    pub pod: HeaderValue,
    pub color: HeaderValue,
    pub version: HeaderValue,
    pub region: HeaderValue,
}

impl IdentityHeaders {
    fn new(identity: &Identity) -> Result<IdentityHeaders, AppError> {
        let value = |name: &'static str, value: &str| {
            HeaderValue::from_str(value).map_err(|_| AppError::BadHeaderValue {
                name,
                value: value.to_string(),
            })
        };
        Ok(IdentityHeaders {
            pod: value("POD_NAME", &identity.pod)?,
            color: value("COLOR", &identity.color)?,
            version: value("VERSION", &identity.version)?,
            region: value("REGION", &identity.region)?,
        })
    }
}

/// Serves the demo app on `listener` until `shutdown` completes, then stops accepting,
/// releases hung requests, finishes in-flight ones and returns.
pub async fn serve(
    listener: TcpListener,
    config: AppConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), AppError> {
    let headers = IdentityHeaders::new(&config.identity)?;
    let replica = match &config.replica_url {
        Some(url) => {
            Some(kv::Replica::new(url, kv::DEFAULT_REPLICA_TIMEOUT).map_err(AppError::BadReplica)?)
        }
        None => None,
    };
    let store = kv::Kv::new(config.kv_limits, replica);
    let state = routes::new_state(config, headers, store);
    let expiry = tokio::spawn(state.faults.clone().run_expiry(state.stopping.clone()));
    let router = routes::router(state.clone());
    let listener = listener.tap_io(|tcp| {
        // Small answers on keep-alive connections: never wait for Nagle.
        let _ = tcp.set_nodelay(true);
    });
    let stopping = state.stopping.clone();
    let draining = state.draining.clone();
    let drain = state.config.drain;
    let result = axum::serve(listener, router)
        .with_graceful_shutdown(async move {
            shutdown.await;
            // Go on answering for a while, each response closing its connection: a client
            // with an idle keep-alive connection here would otherwise send its next
            // request just as the connection closes, and see an error instead of moving
            // to another pod.
            draining.cancel();
            tokio::time::sleep(drain).await;
            // Hung requests and the CPU burn must not hold up a graceful exit.
            stopping.cancel();
        })
        .await;
    state.stopping.cancel();
    state.faults.clear_burn();
    let _ = expiry.await;
    result.map_err(AppError::Serve)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_values_that_cannot_be_headers_are_rejected_with_their_name() {
        let identity = Identity {
            pod: "web\n1".into(),
            color: "blue".into(),
            version: "v1".into(),
            region: "local".into(),
        };
        let err = IdentityHeaders::new(&identity).unwrap_err();
        assert!(err.to_string().contains("POD_NAME"), "{err}");
    }
}
