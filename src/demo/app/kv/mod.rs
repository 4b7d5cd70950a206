//! The demo app's write path, so that a region holds state and RPO can be measured:
//! `PUT /kv/{key}` stores the body and acknowledges the write in this region (its ack id is
//! `REGION@STORE:SEQ`: a restarted process has a new store whose sequence starts again), `GET /kv/{key}` reads it back, `GET /kv?after=N` is the change feed that
//! `resil replicate` copies from, and `/admin/replica` names a replica that every write is
//! copied to *before* it is acknowledged (synchronous replication). The store itself is
//! [`store`]; the routes are mounted by `app/routes.rs`. Paths and bodies are documented
//! in `app/mod.rs`.

pub mod store;

use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;

pub use store::{Feed, FeedEntry, KvError, KvLimits, KvSnapshot, KvStore, validate_key};

use super::routes::{AppState, error};

/// The acknowledgement of a write: `REGION@STORE:SEQ`.
pub static ACK_HEADER: HeaderName = HeaderName::from_static("x-resil-ack");
/// The region that answered a `/kv` request.
pub static REGION_HEADER: HeaderName = HeaderName::from_static("x-resil-region");
/// On a `PUT /kv/{key}`: this write is a copy of one acknowledged in the named region;
/// store it, never copy it on (so two regions replicating to each other cannot loop).
pub static REPLICATED_HEADER: HeaderName = HeaderName::from_static("x-resil-replicated-from");

/// How long a synchronous copy may take when `/admin/replica` does not say.
pub const DEFAULT_REPLICA_TIMEOUT: Duration = Duration::from_secs(2);

/// The reply to an acknowledged `PUT /kv/{key}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteAck {
    pub key: String,
    /// The region that acknowledged it.
    pub region: String,
    /// The store's sequence number for it.
    pub seq: u64,
    /// The store that holds it (random per process).
    pub store: String,
    /// `REGION@STORE:SEQ`, also in the `x-resil-ack` header.
    pub ack: String,
    /// When it was stored (RFC 3339, ms).
    pub acked_at: String,
    /// Value bytes stored.
    pub bytes: u64,
    /// The replica that holds a copy already (synchronous replication), if any.
    pub replicated_to: Option<String>,
}

/// A synchronous replica: the base URL of another demo app.
#[derive(Debug)]
pub struct Replica {
    url: Arc<str>,
    client: reqwest::Client,
    /// Bounds each copy, and the wait for an earlier write of the same key.
    timeout: Duration,
}

/// The body of `PUT /admin/replica`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReplicaSpec {
    url: String,
    #[serde(default, with = "humantime_serde")]
    timeout: Option<Duration>,
}

impl Replica {
    /// A replica at `url` (`http://host:port`), each copy bounded by `timeout`.
    pub fn new(url: &str, timeout: Duration) -> Result<Replica, String> {
        let url = url.trim_end_matches('/');
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| format!("replica URL {url:?} must start with http://"))?;
        if rest.is_empty() || rest.contains('/') {
            return Err(format!(
                "replica URL {url:?} must be a base URL without a path, e.g. http://127.0.0.1:8081"
            ));
        }
        if timeout.is_zero() {
            return Err("a replica timeout must be greater than 0".into());
        }
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| format!("cannot build an HTTP client: {e}"))?;
        Ok(Replica {
            url: url.into(),
            client,
            timeout,
        })
    }

    /// Copies one write; `Err` says why it was not taken.
    async fn copy(&self, key: &str, value: Bytes, origin: &HeaderValue) -> Result<(), String> {
        let response = self
            .client
            .put(format!("{}/kv/{key}", self.url))
            .header(REPLICATED_HEADER.clone(), origin.clone())
            .body(value)
            .send()
            .await
            .map_err(|e| format!("{e}"))?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else {
            let body = response.text().await.unwrap_or_default();
            Err(format!("{status}: {}", body.trim()))
        }
    }
}

/// Locks that order a synchronous write's copy and store per key (by the key's hash).
const WRITE_STRIPES: usize = 64;

/// The write path's state: the store and the synchronous replica.
#[derive(Debug)]
pub struct Kv {
    pub store: KvStore,
    /// Read on every write, set by the admin API: a std `RwLock` held for a clone only.
    replica: RwLock<Option<Arc<Replica>>>,
    /// A synchronous write holds its key's stripe from the copy to the store, so two
    /// writes of one key reach the replica in the order the store keeps them (the feed
    /// marks both as held by the replica, and the replicator does not copy them again).
    stripes: Box<[tokio::sync::Mutex<()>]>,
    /// Keyed per process, so keys cannot be chosen to share a stripe with a given one.
    stripe_hasher: std::hash::RandomState,
}

impl Kv {
    pub fn new(limits: KvLimits, replica: Option<Replica>) -> Kv {
        Kv {
            store: KvStore::new(limits),
            replica: RwLock::new(replica.map(Arc::new)),
            stripes: (0..WRITE_STRIPES)
                .map(|_| tokio::sync::Mutex::new(()))
                .collect(),
            stripe_hasher: std::hash::RandomState::new(),
        }
    }

    /// The lock that orders synchronous writes of `key`.
    fn stripe(&self, key: &str) -> &tokio::sync::Mutex<()> {
        let hash = std::hash::BuildHasher::hash_one(&self.stripe_hasher, key);
        &self.stripes[(hash % self.stripes.len() as u64) as usize]
    }

    fn replica(&self) -> Option<Arc<Replica>> {
        self.replica
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn set_replica(&self, replica: Option<Replica>) {
        *self
            .replica
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = replica.map(Arc::new);
    }

    /// Counts and the replica for `/admin/state`.
    pub fn snapshot(&self) -> KvSnapshot {
        KvSnapshot {
            replica: self.replica().map(|r| r.url.to_string()),
            ..self.store.snapshot()
        }
    }
}

fn kv_error(err: &KvError) -> Response {
    let status = match err {
        KvError::BadKey { .. } => StatusCode::BAD_REQUEST,
        KvError::ValueTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        KvError::Full { .. } => StatusCode::INSUFFICIENT_STORAGE,
    };
    error(status, &err.to_string())
}

/// The key from the raw path (`/kv/{key}`), not percent-decoded: see [`validate_key`].
fn key_of(request: &Request) -> Result<String, KvError> {
    let raw = request.uri().path().strip_prefix("/kv/").unwrap_or("");
    validate_key(raw).map(str::to_string)
}

/// `PUT /kv/{key}`.
pub(crate) async fn put(State(state): State<AppState>, request: Request) -> Response {
    let key = match key_of(&request) {
        Ok(key) => key,
        Err(err) => return kv_error(&err),
    };
    let kv = &state.kv;
    let announced = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if let Some(len) = announced
        && let Err(err) = kv.store.check_size(len)
    {
        return kv_error(&err);
    }
    let copied_from = request.headers().get(&REPLICATED_HEADER).cloned();
    let max = kv.store.limits().max_value_bytes;
    let value = match axum::body::to_bytes(request.into_body(), max).await {
        Ok(value) => value,
        Err(err) if is_length_limit(&err) => {
            return kv_error(&KvError::ValueTooLarge { len: None, max });
        }
        Err(err) => {
            return error(
                StatusCode::BAD_REQUEST,
                &format!("reading the body failed: {err}"),
            );
        }
    };
    let region = &state.config.identity.region;
    // A copy from another region is stored as it is; only this region's own writes go on
    // to the replica, before they are acknowledged.
    let replica = if copied_from.is_none() {
        kv.replica()
    } else {
        None
    };
    // Held until the write is stored (dropped at the end of this function); the wait is
    // bounded like a copy, so writes queued behind a replica that does not answer fail
    // after one timeout each, not after all the copies before them.
    let _ordered = match &replica {
        Some(replica) => {
            match tokio::time::timeout(replica.timeout, kv.stripe(&key).lock()).await {
                Ok(guard) => Some(guard),
                Err(_) => {
                    return error(
                        StatusCode::SERVICE_UNAVAILABLE,
                        &format!(
                            "not acknowledged: the writes ahead of this one (of this key, or of one \
                             sharing its turn) held the replica {} for the whole timeout ({}); retry",
                            replica.url,
                            humantime::format_duration(replica.timeout)
                        ),
                    );
                }
            }
        }
        None => None,
    };
    if let Some(replica) = &replica {
        if let Err(err) = kv.store.check(&key, value.len()) {
            return kv_error(&err);
        }
        if let Err(reason) = replica
            .copy(&key, value.clone(), &state.headers.region)
            .await
        {
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                &format!(
                    "not acknowledged: the replica {} did not take the write ({reason}); \
                     retry, or stop synchronous replication with DELETE /admin/replica",
                    replica.url
                ),
            );
        }
    }
    let bytes = value.len() as u64;
    let copied_to = replica.as_ref().map(|r| r.url.clone());
    let stored = match kv.store.put_copied(&key, value, Utc::now(), copied_to) {
        Ok(stored) => stored,
        Err(err) => return kv_error(&err),
    };
    let ack = ack_id(region, &kv.store, stored.seq);
    let status = if stored.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let body = WriteAck {
        key,
        region: region.clone(),
        seq: stored.seq,
        store: kv.store.id().to_string(),
        ack: ack.clone(),
        acked_at: stored.at.to_rfc3339_opts(SecondsFormat::Millis, true),
        bytes,
        replicated_to: replica.map(|r| r.url.to_string()),
    };
    let mut response = (status, axum::Json(body)).into_response();
    stamp(response.headers_mut(), &state, Some(&ack));
    response
}

fn is_length_limit(err: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = source {
        if e.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = e.source();
    }
    false
}

/// `REGION@STORE:SEQ`.
fn ack_id(region: &str, store: &store::KvStore, seq: u64) -> String {
    format!("{region}@{}:{seq}", store.id())
}

fn stamp(headers: &mut HeaderMap, state: &AppState, ack: Option<&str>) {
    headers.insert(REGION_HEADER.clone(), state.headers.region.clone());
    // `REGION` was checked to be a header value at start and a number adds nothing a
    // header cannot carry, so this cannot fail; skipping the header would be harmless.
    if let Some(value) = ack.and_then(|a| HeaderValue::from_str(a).ok()) {
        headers.insert(ACK_HEADER.clone(), value);
    }
}

/// `GET /kv/{key}`.
pub(crate) async fn get(State(state): State<AppState>, request: Request) -> Response {
    let key = match key_of(&request) {
        Ok(key) => key,
        Err(err) => return kv_error(&err),
    };
    let region = &state.config.identity.region;
    let Some(found) = state.kv.store.get(&key) else {
        let mut response = error(
            StatusCode::NOT_FOUND,
            &format!("no key {key:?} in region {region}"),
        );
        stamp(response.headers_mut(), &state, None);
        return response;
    };
    let mut response = (
        [(header::CONTENT_TYPE, "application/octet-stream")],
        Body::from(found.value),
    )
        .into_response();
    stamp(
        response.headers_mut(),
        &state,
        Some(&ack_id(region, &state.kv.store, found.seq)),
    );
    response
}

/// `GET /kv?after=N&limit=M&min_age_ms=L`: the change feed.
pub(crate) async fn feed(State(state): State<AppState>, request: Request) -> Response {
    let query = match FeedQuery::parse(request.uri().query()) {
        Ok(query) => query,
        Err(message) => return error(StatusCode::BAD_REQUEST, &message),
    };
    let feed = state.kv.store.feed(
        query.after,
        query.limit,
        Duration::from_millis(query.min_age_ms),
        Utc::now(),
    );
    let mut response = axum::Json(feed).into_response();
    stamp(response.headers_mut(), &state, None);
    response
}

/// The change feed's query.
#[derive(Debug, PartialEq, Eq)]
struct FeedQuery {
    after: u64,
    limit: usize,
    min_age_ms: u64,
}

impl FeedQuery {
    fn parse(query: Option<&str>) -> Result<FeedQuery, String> {
        let mut q = FeedQuery {
            after: 0,
            limit: store::MAX_FEED_PAGE,
            min_age_ms: 0,
        };
        for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let number = || {
                value.parse::<u64>().map_err(|_| {
                    format!("{name} must be a whole number, e.g. /kv?after=0&limit=500&min_age_ms=1000; got {value:?}")
                })
            };
            match name {
                "after" => q.after = number()?,
                "limit" => q.limit = usize::try_from(number()?).unwrap_or(usize::MAX),
                "min_age_ms" => q.min_age_ms = number()?,
                _ => {
                    return Err(format!(
                        "unknown parameter {name:?}: the feed takes after, limit and min_age_ms"
                    ));
                }
            }
        }
        if q.limit == 0 {
            return Err("limit must be at least 1".into());
        }
        Ok(q)
    }
}

/// `GET /admin/replica`.
pub(crate) async fn get_replica(State(state): State<AppState>) -> Response {
    axum::Json(json!({ "replica": state.kv.snapshot().replica })).into_response()
}

/// `PUT /admin/replica`: `{"url":"http://host:port","timeout":"2s"}`. The answer names
/// the replica and `since_seq`, the store's last sequence number once it was set: the feed's
/// `copied_to` marks of later writes are this setting's (earlier ones may be from an
/// earlier setting, whose replica may have lost them since).
pub(crate) async fn put_replica(State(state): State<AppState>, body: Bytes) -> Response {
    let spec: ReplicaSpec = match serde_json::from_slice(&body) {
        Ok(spec) => spec,
        Err(err) => {
            return error(
                StatusCode::BAD_REQUEST,
                &format!(
                    "the body must be {{\"url\":\"http://HOST:PORT\",\"timeout\":\"2s\"}}: {err}"
                ),
            );
        }
    };
    match Replica::new(&spec.url, spec.timeout.unwrap_or(DEFAULT_REPLICA_TIMEOUT)) {
        Ok(replica) => {
            tracing::info!(url = %replica.url, "synchronous replica set");
            state.kv.set_replica(Some(replica));
            let snapshot = state.kv.snapshot();
            axum::Json(json!({ "replica": snapshot.replica, "since_seq": snapshot.last_seq }))
                .into_response()
        }
        Err(message) => error(StatusCode::BAD_REQUEST, &message),
    }
}

/// `DELETE /admin/replica`: writes are acknowledged locally again.
pub(crate) async fn delete_replica(State(state): State<AppState>) -> Response {
    state.kv.set_replica(None);
    tracing::info!("synchronous replica cleared");
    get_replica(State(state)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_feed_query_reads_its_three_numbers_and_explains_the_rest() {
        assert_eq!(
            FeedQuery::parse(Some("after=5&limit=10&min_age_ms=250")),
            Ok(FeedQuery {
                after: 5,
                limit: 10,
                min_age_ms: 250
            })
        );
        assert_eq!(FeedQuery::parse(None).unwrap().after, 0);
        assert!(
            FeedQuery::parse(Some("after=x"))
                .unwrap_err()
                .contains("whole number")
        );
        assert!(FeedQuery::parse(Some("limit=0")).is_err());
        assert!(
            FeedQuery::parse(Some("since=1"))
                .unwrap_err()
                .contains("unknown")
        );
    }

    #[test]
    fn a_replica_is_a_plain_http_base_url() {
        assert!(Replica::new("http://127.0.0.1:8081/", DEFAULT_REPLICA_TIMEOUT).is_ok());
        for bad in ["https://x", "127.0.0.1:1", "http://", "http://h/kv"] {
            assert!(Replica::new(bad, DEFAULT_REPLICA_TIMEOUT).is_err(), "{bad}");
        }
        assert!(Replica::new("http://h:1", Duration::ZERO).is_err());
    }
}
