//! The lab's HTTP API as an in-process service: the very router `server.rs` serves over
//! TLS, without a socket, TLS, controllers, kubelet or persister. For the fuzz targets
//! (`fuzz/`), which drive requests through the real handlers with
//! `tower::ServiceExt::oneshot`; `resil lab up` never calls it.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::api::{self, App};
use super::store::Store;

/// The API router over `store`, answering requests that carry `Bearer <token>`.
///
/// `shutdown` ends open watches and log follows (pass a cancelled token so that every
/// stream ends at once); `state_dir` is where pod logs are looked up.
pub fn api_router(
    store: Arc<Store>,
    token: &str,
    state_dir: impl Into<PathBuf>,
    shutdown: CancellationToken,
) -> axum::Router {
    api::router(Arc::new(App {
        store,
        token: token.to_string(),
        shutdown,
        started_at: "1970-01-01T00:00:00Z".to_string(),
        addr: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
        state_dir: state_dir.into(),
        bookmark_interval: Duration::from_secs(30),
        body_timeout: crate::server::BODY_READ_TIMEOUT,
    }))
}
