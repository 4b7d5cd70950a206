//! Watch streams: 200, chunked, one compact JSON event per line, flushed per event.
//! Starts from "now" (synthetic ADDED events) for resourceVersion ""/"0" or
//! `sendInitialEvents=true` (then a BOOKMARK marked `k8s.io/initial-events-end`), or from a
//! specific resourceVersion; a too-old one gets a single ERROR 410 Expired event. Applies
//! label/field selectors with Kubernetes semantics (an object leaving the selection is
//! DELETED for this watcher). Ends at `timeoutSeconds`, at lab shutdown, or when the client
//! goes away.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::App;
use super::handlers::Target;
use super::selector::Selector;
use super::status::{ApiError, ApiResult};
use super::table::{self, RowObject};
use crate::store::{EventType, Kind, StoredEvent, Subscription, WatchStart, watch_line as line};

/// How long a watch stays open when the client names no timeout (or 0), and the most it
/// stays open whatever the client names: upstream's `--min-request-timeout` (1800 s). A
/// client asking for more simply watches again, as it does after any timeout.
const MAX_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// Starts a watch response for `target` (a collection URL with `watch=true`).
pub fn serve(
    app: Arc<App>,
    target: &Target,
    query: &HashMap<String, String>,
    table: Option<RowObject>,
) -> ApiResult<Response> {
    let kind = target.kind;
    let sel = Selector::parse(
        query.get("labelSelector").map(String::as_str),
        query.get("fieldSelector").map(String::as_str),
        kind.plural,
    )
    .map_err(ApiError::bad_request)?;
    tracing::debug!(labels = %sel, "watch on {}", kind.plural);
    let flag = |k: &str| query.get(k).is_some_and(|v| v == "true" || v == "1");
    let send_initial = flag("sendInitialEvents");
    let bookmarks = flag("allowWatchBookmarks");
    let rv = query
        .get("resourceVersion")
        .map(String::as_str)
        .unwrap_or("");
    let start =
        match rv {
            _ if send_initial => WatchStart::Now,
            "" | "0" => WatchStart::Now,
            other => WatchStart::After(other.parse().map_err(|_| {
                ApiError::bad_request(format!("invalid resourceVersion {other:?}"))
            })?),
        };
    let timeout = watch_timeout(query.get("timeoutSeconds").map(String::as_str))?;
    let (tx, rx) = mpsc::channel::<Bytes>(256);
    match app
        .store
        .watch(kind.plural, target.namespace.as_deref(), start)
    {
        Ok(sub) => {
            let stream = Stream {
                app: app.clone(),
                kind,
                sel,
                tx,
                bookmarks,
                send_initial,
                timeout,
                table,
            };
            tokio::spawn(stream.run(sub));
        }
        Err(oldest) => {
            let requested = rv.to_string();
            // Capacity is 256 and this is the only message: it cannot be full.
            let _ = tx.try_send(line("ERROR", &expired(&requested, oldest)));
        }
    }
    let body = Body::from_stream(futures::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|b| (Ok::<_, std::convert::Infallible>(b), rx))
    }));
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response())
}

/// The watch's duration from `timeoutSeconds`: a whole number of seconds (400 otherwise),
/// 0 or absent meaning the default, clamped to [`MAX_TIMEOUT`] so no deadline can overflow.
fn watch_timeout(value: Option<&str>) -> ApiResult<Duration> {
    let Some(text) = value else {
        return Ok(MAX_TIMEOUT);
    };
    let seconds: u64 = text.parse().map_err(|_| {
        ApiError::bad_request(format!(
            "invalid timeoutSeconds {text:?}: must be a whole number of seconds"
        ))
    })?;
    Ok(match seconds {
        0 => MAX_TIMEOUT,
        s => Duration::from_secs(s).min(MAX_TIMEOUT),
    })
}

fn expired(requested: &str, oldest: u64) -> Value {
    json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": format!("too old resource version: {requested} ({oldest})"),
        "reason": "Expired", "code": 410,
    })
}

struct Stream {
    app: Arc<App>,
    kind: &'static Kind,
    sel: Selector,
    tx: mpsc::Sender<Bytes>,
    bookmarks: bool,
    send_initial: bool,
    timeout: Duration,
    /// Send each object as a one-row Table (`kubectl get -w`).
    table: Option<RowObject>,
}

impl Stream {
    /// The line this watcher sends for `event`, if any (after its selector): the event's
    /// own line, encoded once for every watcher, when it goes out as it is.
    fn event_line(&self, event: &StoredEvent) -> Option<Bytes> {
        let (ty, obj) = self.translate(event.kind, &event.object, event.previous.as_deref())?;
        Some(match self.table {
            Some(include) => line(ty, &table::table(self.kind, [obj], None, include)),
            None if ty == event.kind.as_str() => event.line(),
            None => line(ty, obj),
        })
    }

    fn bookmark(&self, rv: u64, initial_end: bool) -> Bytes {
        let mut meta = json!({"resourceVersion": rv.to_string()});
        if initial_end {
            meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        line(
            "BOOKMARK",
            &json!({"kind": self.kind.kind, "apiVersion": self.kind.api_version(), "metadata": meta}),
        )
    }

    async fn run(self, mut sub: Subscription) {
        let deadline = tokio::time::Instant::now() + self.timeout;
        let mut last_rv = sub.start_rv();
        // Initial events (synthetic ADDED or replayed history) are already queued in the
        // subscription; send them before any bookmark.
        let mut initial = sub.initial_remaining();
        if initial == 0
            && self.send_initial
            && self.bookmarks
            && self.tx.send(self.bookmark(last_rv, true)).await.is_err()
        {
            return;
        }
        let mut tick = tokio::time::interval(self.app.bookmark_interval);
        tick.reset();
        loop {
            tokio::select! {
                // The next store event (initial ones first).
                event = sub.next() => {
                    let Ok(event) = event else {
                        // Lagged: events were lost; tell the client to relist.
                        let _ = self.tx.send(line("ERROR", &expired(&last_rv.to_string(), last_rv))).await;
                        return;
                    };
                    last_rv = last_rv.max(event.rv);
                    if let Some(bytes) = self.event_line(&event)
                        && self.tx.send(bytes).await.is_err()
                    {
                        return;
                    }
                    if initial > 0 {
                        initial -= 1;
                        if initial == 0 && self.send_initial && self.bookmarks
                            && self.tx.send(self.bookmark(last_rv, true)).await.is_err()
                        {
                            return;
                        }
                    }
                }
                // Periodic bookmark so the client's resume point stays fresh.
                _ = tick.tick(), if self.bookmarks => {
                    if self.tx.send(self.bookmark(last_rv, false)).await.is_err() {
                        return;
                    }
                }
                // The client's timeoutSeconds elapsed: end the stream normally.
                _ = tokio::time::sleep_until(deadline) => return,
                // The lab is shutting down.
                _ = self.app.shutdown.cancelled() => return,
                // The client went away.
                _ = self.tx.closed() => return,
            }
        }
    }

    /// The event this watcher sees, after its selector: a change that moves an object into
    /// the selection is ADDED, out of it DELETED.
    fn translate<'a>(
        &self,
        kind: EventType,
        obj: &'a Value,
        previous: Option<&'a Value>,
    ) -> Option<(&'static str, &'a Value)> {
        let now = self.sel.matches(obj);
        match kind {
            EventType::Modified if !self.sel.is_empty() => {
                let before = previous.is_none_or(|p| self.sel.matches(p));
                match (before, now) {
                    (true, true) => Some(("MODIFIED", obj)),
                    (false, true) => Some(("ADDED", obj)),
                    (true, false) => Some(("DELETED", obj)),
                    (false, false) => None,
                }
            }
            _ if now => Some((kind.as_str(), obj)),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeout_seconds_is_clamped_and_nonsense_is_a_bad_request() {
        assert_eq!(watch_timeout(None).unwrap(), MAX_TIMEOUT);
        assert_eq!(watch_timeout(Some("0")).unwrap(), MAX_TIMEOUT);
        assert_eq!(
            watch_timeout(Some("290")).unwrap(),
            Duration::from_secs(290)
        );
        assert_eq!(
            watch_timeout(Some("18446744073709551615")).unwrap(),
            MAX_TIMEOUT
        );
        for bad in ["-1", "1.5", "soon", "", "18446744073709551616"] {
            let e = watch_timeout(Some(bad)).unwrap_err();
            assert_eq!(
                (e.code, e.reason),
                (StatusCode::BAD_REQUEST, "BadRequest"),
                "{bad}"
            );
        }
    }
}
