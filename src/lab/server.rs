//! The lab as one value: start it on 127.0.0.1 (in-process, for `lab up --foreground` and
//! for tests), ask where it listens and how to reach it, shut it down.
//!
//! Start loads or creates the credentials (`tls.rs`) and the store (`store/persist.rs`),
//! binds the port, then serves HTTPS — one task accepts TCP connections, each connection
//! gets a TLS handshake and an HTTP/1.1 connection serving the axum router (`api/`) — and
//! a second task persists the store. Shutdown cancels both, closes open watches and writes
//! the state one last time.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use base64::Engine;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use super::api::{self, App};
use super::store::Store;
use super::store::persist::{self, PersistError};
use super::tls::{Credentials, TlsError};

/// How to start a lab.
#[derive(Debug, Clone)]
pub struct LabConfig {
    /// State, certificates, token, logs.
    pub state_dir: PathBuf,
    /// API port on 127.0.0.1; 0 picks a free one.
    pub port: u16,
    /// The program the kubelet runs for demo pods (`<program> demo-app`).
    pub pod_program: PathBuf,
    /// HPA sync period (upstream default 15 s).
    pub hpa_sync_period: Duration,
    /// Image name prefixes that count as the demo image (default `resil-demo`).
    pub demo_image_prefixes: Vec<String>,
    /// Pods the node runs at once (the kubelet's `--max-pods`, default 110); more stay
    /// Pending, Unschedulable.
    pub max_pods: usize,
    /// Run the controllers and the kubelet (pods as processes). Off, the lab is an API
    /// server alone: what its protocol tests need, where a running pod would change the
    /// answer (graceful deletion, server-made Endpoints).
    pub runtime: bool,
}

impl LabConfig {
    /// Defaults for a state directory: ephemeral port, this binary as the pod program.
    pub fn new(state_dir: impl Into<PathBuf>) -> LabConfig {
        LabConfig {
            state_dir: state_dir.into(),
            port: 0,
            pod_program: std::env::current_exe().unwrap_or_else(|_| PathBuf::from("resil")),
            hpa_sync_period: Duration::from_secs(15),
            demo_image_prefixes: vec!["resil-demo".to_string()],
            max_pods: 110,
            runtime: true,
        }
    }
}

/// Why the lab could not start or stop.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// The state directory could not be created.
    #[error("cannot create the lab's state directory {path}: {source}")]
    StateDir {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Certificates or token could not be created or loaded.
    #[error(transparent)]
    Credentials(#[from] TlsError),
    /// The saved objects could not be loaded (a corrupt file is moved aside first).
    #[error(transparent)]
    State(#[from] PersistError),
    /// The API port could not be bound.
    #[error("cannot listen on {addr}: {source}; pick another port or stop what uses it")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// How often watches that allow bookmarks receive one.
const BOOKMARK_INTERVAL: Duration = Duration::from_secs(30);
/// Longest wait for a TLS handshake before the connection is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest wait for open connections and the final save at shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// A running lab.
#[derive(Debug)]
pub struct Lab {
    addr: SocketAddr,
    config: LabConfig,
    credentials: Credentials,
    store: Arc<Store>,
    shutdown: CancellationToken,
    tasks: TaskTracker,
}

impl Lab {
    /// Starts the lab and returns once its API answers.
    pub async fn start(config: LabConfig) -> Result<Lab, LabError> {
        let dir = config.state_dir.clone();
        std::fs::create_dir_all(&dir).map_err(|source| LabError::StateDir {
            path: dir.clone(),
            source,
        })?;
        let credentials = Credentials::load_or_create(&dir)?;
        let tls = TlsAcceptor::from(credentials.server_config(&dir)?);
        let store = Arc::new(persist::load(&dir)?);
        let bind = SocketAddr::from((Ipv4Addr::LOCALHOST, config.port));
        let listener = TcpListener::bind(bind)
            .await
            .map_err(|source| LabError::Bind { addr: bind, source })?;
        let addr = listener
            .local_addr()
            .map_err(|source| LabError::Bind { addr: bind, source })?;
        let shutdown = CancellationToken::new();
        let tasks = TaskTracker::new();
        let app = Arc::new(App {
            store: store.clone(),
            token: credentials.token.clone(),
            shutdown: shutdown.clone(),
            started_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            addr,
            state_dir: dir.clone(),
            bookmark_interval: BOOKMARK_INTERVAL,
        });
        let router = api::router(app);
        tasks.spawn(accept_loop(
            listener,
            tls,
            router,
            shutdown.clone(),
            tasks.clone(),
        ));
        tasks.spawn(persist::run(store.clone(), dir.clone(), shutdown.clone()));
        // Runtime: controllers, kubelet and NodePort proxy (src/lab/controllers/runtime.rs).
        if config.runtime {
            super::controllers::start(store.clone(), &config, shutdown.clone(), &tasks);
        }
        let lab = Lab {
            addr,
            config,
            credentials,
            store,
            shutdown,
            tasks,
        };
        // The lab's own kubeconfig, for `resil lab kubeconfig` and humans; not fatal if the
        // directory is read-only (the kubeconfig is also available from the value).
        let path = dir.join("kubeconfig");
        if let Err(e) =
            crate::atomic::write_with_mode(&path, lab.kubeconfig_yaml().as_bytes(), Some(0o600))
        {
            tracing::warn!("cannot write {}: {e}", path.display());
        }
        Ok(lab)
    }

    /// Where the API listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `https://127.0.0.1:PORT`.
    pub fn server_url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// The CA certificate (PEM) clients must trust.
    pub fn ca_pem(&self) -> &str {
        &self.credentials.ca_pem
    }

    /// The bearer token.
    pub fn token(&self) -> &str {
        &self.credentials.token
    }

    /// The state directory.
    pub fn state_dir(&self) -> &std::path::Path {
        &self.config.state_dir
    }

    /// The store, for in-lab controllers and the kubelet (they bypass HTTP).
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// Runs a background part of the lab (a controller, the kubelet) built from the store
    /// and the lab's shutdown signal. [`Lab::shutdown`] cancels the signal and waits for the
    /// task (up to a grace period), so the task must return soon after the signal fires.
    pub fn spawn_task<F>(&self, make: impl FnOnce(Arc<Store>, CancellationToken) -> F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        self.tasks
            .spawn(make(self.store.clone(), self.shutdown.clone()));
    }

    /// A kubeconfig (YAML) with cluster, user and context `resil-lab`.
    pub fn kubeconfig_yaml(&self) -> String {
        let ca =
            base64::engine::general_purpose::STANDARD.encode(self.credentials.ca_pem.as_bytes());
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: resil-lab\n  cluster:\n    server: {}\n    \
             certificate-authority-data: {ca}\nusers:\n- name: resil-lab\n  user:\n    token: {}\n\
             contexts:\n- name: resil-lab\n  context:\n    cluster: resil-lab\n    user: resil-lab\n    \
             namespace: default\ncurrent-context: resil-lab\npreferences: {{}}\n",
            self.server_url(),
            self.credentials.token,
        )
    }

    /// Stops the API, the controllers and every pod process; persists state.
    pub async fn shutdown(self) {
        self.shutdown.cancel();
        self.tasks.close();
        if tokio::time::timeout(SHUTDOWN_GRACE, self.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("some lab connections did not close within {SHUTDOWN_GRACE:?}");
            // The persister may be among them; make sure the last state is on disk.
            if let Err(e) = persist::save(&self.store, &self.config.state_dir) {
                tracing::error!("{e}");
            }
        }
    }
}

/// Accepts connections until `shutdown`; each one is served on its own task.
async fn accept_loop(
    listener: TcpListener,
    tls: TlsAcceptor,
    router: axum::Router,
    shutdown: CancellationToken,
    tasks: TaskTracker,
) {
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => {
                    tasks.spawn(serve_connection(tcp, tls.clone(), router.clone(), shutdown.clone()));
                }
                Err(e) => {
                    // Usually out of file descriptors: back off instead of spinning.
                    tracing::warn!("accepting a connection failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            // Shutdown: stop accepting; open connections wind down on their own tasks.
            _ = shutdown.cancelled() => return,
        }
    }
}

/// TLS handshake, then HTTP/1.1 over the router until the client leaves or the lab stops.
async fn serve_connection(
    tcp: tokio::net::TcpStream,
    tls: TlsAcceptor,
    router: axum::Router,
    shutdown: CancellationToken,
) {
    let _ = tcp.set_nodelay(true);
    let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.accept(tcp)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            tracing::debug!("TLS handshake failed: {e}");
            return;
        }
        Err(_) => return,
    };
    let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
        router.clone().oneshot(req.map(Body::new))
    });
    let conn =
        hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    tokio::select! {
        // The connection ended (client closed, or an I/O error).
        _ = conn.as_mut() => {}
        // Shutdown: finish the in-flight request, then close.
        _ = shutdown.cancelled() => {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(SHUTDOWN_GRACE, conn).await;
        }
    }
}
