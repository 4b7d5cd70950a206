//! The dashboard's HTTP server: one page, its script and styles (compiled into the binary),
//! and `/events`, a Server-Sent Events stream of frames. Every response forbids loading
//! anything from another origin (`Content-Security-Policy: default-src 'self'`), so the page
//! works offline and reaches no other host. Started by `crate::dashboard`; serves until
//! its shutdown token is cancelled.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures::Stream;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

const PAGE: &str = include_str!("page/index.html");
const SCRIPT: &str = include_str!("page/app.js");
const STYLE: &str = include_str!("page/app.css");

/// The longest the page waits for a frame: a frame is sent at least this often, even when
/// nothing changed, so the page's clock and rolling charts keep moving (≥ 4 per second).
pub const FRAME_INTERVAL: Duration = Duration::from_millis(200);

/// The latest frame, as JSON.
pub type Frames = watch::Receiver<Arc<String>>;

/// Serves the page on `listener` until `shutdown`.
pub async fn serve(
    listener: TcpListener,
    frames: Frames,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let app = Router::new()
        .route(
            "/",
            get(|| async { asset(PAGE, "text/html; charset=utf-8") }),
        )
        .route(
            "/app.js",
            get(|| async { asset(SCRIPT, "text/javascript; charset=utf-8") }),
        )
        .route(
            "/app.css",
            get(|| async { asset(STYLE, "text/css; charset=utf-8") }),
        )
        .route("/events", get(events))
        .with_state(frames);
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}

fn asset(body: &'static str, content_type: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'self'"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// `/events`: the current frame at once, then every new one, at least every
/// [`FRAME_INTERVAL`].
async fn events(
    State(frames): State<Frames>,
) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    let stream = futures::stream::unfold((frames, true), |(mut frames, first)| async move {
        if !first {
            // A closed channel (the dashboard is stopping) ends the stream.
            let changed = tokio::time::timeout(FRAME_INTERVAL, frames.changed()).await;
            if let Ok(Err(_)) = changed {
                return None;
            }
        }
        let frame = frames.borrow_and_update().clone();
        Some((
            Ok(SseEvent::default().data(frame.as_str())),
            (frames, false),
        ))
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}
