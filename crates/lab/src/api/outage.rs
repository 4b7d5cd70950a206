//! The control plane's off switch, for `resil chaos region-outage --control-plane`: while
//! Namespace `kube-system` carries `lab.resil.dev/api-outage-until: <RFC 3339 time>`
//! ([`OUTAGE_UNTIL`]) in the future, the API answers every request 503, as an API server
//! that is down — while pods, their probes and the Service proxy keep serving (they do not
//! go through the API). The switch ends by itself at that time; the one request let
//! through is to `kube-system` itself, so the switch can be set and removed early.
//!
//! The deadline is read from the store once at start and again after every write to
//! `kube-system`, so a request pays one atomic load.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use axum::extract::{Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::status::ApiError;
use crate::store::Store;

/// The annotation on Namespace `kube-system` that takes the API down until its time.
pub const OUTAGE_UNTIL: &str = "lab.resil.dev/api-outage-until";
/// The one path the switch leaves open (reading, setting and removing it).
const SWITCH_PATH: &str = "/api/v1/namespaces/kube-system";

/// When the API comes back (Unix ms; 0: it is up).
#[derive(Debug)]
pub struct ControlPlane {
    store: Arc<Store>,
    down_until_ms: AtomicI64,
}

impl ControlPlane {
    /// The switch as the store has it now.
    pub fn new(store: Arc<Store>) -> Arc<ControlPlane> {
        let cp = Arc::new(ControlPlane {
            store,
            down_until_ms: AtomicI64::new(0),
        });
        cp.reload();
        cp
    }

    fn reload(&self) {
        let until = self
            .store
            .get("namespaces", "", "kube-system")
            .as_ref()
            .and_then(deadline)
            .unwrap_or(0);
        self.down_until_ms.store(until, Ordering::SeqCst);
    }

    /// Whether the API is down at `now_ms`.
    fn down(&self, now_ms: i64) -> Option<i64> {
        let until = self.down_until_ms.load(Ordering::Relaxed);
        (until > now_ms).then_some(until)
    }
}

/// The deadline a `kube-system` Namespace object carries, if any.
fn deadline(namespace: &Value) -> Option<i64> {
    let text = namespace["metadata"]["annotations"][OUTAGE_UNTIL].as_str()?;
    let at = chrono::DateTime::parse_from_rfc3339(text).ok()?;
    Some(at.timestamp_millis())
}

/// Answers 503 while the control plane is switched off; reloads the switch after a write
/// to `kube-system`.
pub async fn gate(State(cp): State<Arc<ControlPlane>>, req: Request, next: Next) -> Response {
    let path = req.uri().path().trim_end_matches('/');
    let switch = path == SWITCH_PATH;
    if !switch && let Some(until) = cp.down(chrono::Utc::now().timestamp_millis()) {
        let at = chrono::DateTime::from_timestamp_millis(until).unwrap_or_default();
        let message = format!(
            "the control plane is down (chaos: {OUTAGE_UNTIL} on namespace kube-system) \
             until {}",
            at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        );
        return ApiError::service_unavailable(message).into_response();
    }
    let write = req.method() != Method::GET && req.method() != Method::HEAD;
    let res = next.run(req).await;
    if switch && write {
        cp.reload();
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_deadline_comes_from_the_annotation_and_a_bad_one_is_none() {
        let ns = |v: Value| serde_json::json!({"metadata": {"annotations": {OUTAGE_UNTIL: v}}});
        assert_eq!(
            deadline(&ns("2026-12-05T10:00:00Z".into())),
            Some(1_796_464_800_000)
        );
        assert_eq!(deadline(&ns("soon".into())), None);
        assert_eq!(deadline(&serde_json::json!({"metadata": {}})), None);
    }
}
