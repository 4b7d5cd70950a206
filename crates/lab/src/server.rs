//! The lab as one value: start it on 127.0.0.1 (in-process, for `lab up --foreground` and
//! for tests), ask where it listens and how to reach it, shut it down.
//!
//! Start loads or creates the credentials (`tls.rs`) and the store (`store/persist.rs`),
//! binds the port, then serves HTTPS — one task accepts TCP connections, each connection
//! gets a TLS handshake and an HTTP/1.1 connection serving the axum router (`api/`) — and
//! a second task persists the store; a third deletes expired Events. Shutdown cancels
//! them, closes open watches and writes the state one last time.
//!
//! Connections are bounded ([`ConnectionLimits`]): a client that connects and stays silent,
//! or sends half a request, is disconnected after a timeout, and at most
//! [`MAX_CONNECTIONS`] are served at once — further ones wait in the listen queue until a
//! slot frees, rather than being refused, so a burst of honest clients is delayed, not
//! failed, while a flood of silent ones can hold slots only as long as the timeouts allow.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use base64::Engine;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use super::api::{self, App};
use super::kubelet::probe::error_chain;
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
    /// Pods each node runs at once (the kubelet's `--max-pods`, default 110); more stay
    /// Pending, Unschedulable.
    pub max_pods: usize,
    /// The nodes: how many, in which zones and region (default one node; `lab up`
    /// defaults to three over zones a, b, c).
    pub nodes: crate::nodes::NodeLayout,
    /// How long a node may go without renewing its Lease before it is marked
    /// unreachable (upstream `--node-monitor-grace-period`, 40 s).
    pub node_monitor_grace_period: Duration,
    /// `tolerationSeconds` of the `not-ready`/`unreachable` NoExecute tolerations pod
    /// admission adds (upstream `--default-not-ready-toleration-seconds`, 300).
    pub default_toleration_seconds: i64,
    /// Run the controllers and the kubelet (pods as processes). Off, the lab is an API
    /// server alone: what its protocol tests need, where a running pod would change the
    /// answer (graceful deletion, server-made Endpoints).
    pub runtime: bool,
    /// Timeouts and the cap on the API's connections.
    pub connections: ConnectionLimits,
    /// Where Services get their node ports when they name none (30000-32767; a named lab
    /// gets a slice of its own, so that two labs on one machine never pick the same).
    pub node_ports: std::ops::RangeInclusive<u16>,
}

/// Time and count bounds on the API's connections; [`ConnectionLimits::default`] holds the
/// lab's values (tests shorten them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Longest wait for a TLS handshake after the TCP connection is accepted.
    pub handshake: Duration,
    /// Longest wait for a whole request header, counted from when the server starts
    /// waiting for it: after the handshake, and again after each response while the
    /// connection is kept alive — so it is the idle timeout too.
    pub header_read: Duration,
    /// Longest wait for a request body to arrive once its header has.
    pub body_read: Duration,
    /// Most connections served at once.
    pub max_connections: usize,
}

impl Default for ConnectionLimits {
    fn default() -> ConnectionLimits {
        ConnectionLimits {
            handshake: HANDSHAKE_TIMEOUT,
            header_read: HEADER_READ_TIMEOUT,
            body_read: BODY_READ_TIMEOUT,
            max_connections: MAX_CONNECTIONS,
        }
    }
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
            nodes: crate::nodes::NodeLayout::new(1),
            node_monitor_grace_period: Duration::from_secs(40),
            default_toleration_seconds: 300,
            runtime: true,
            connections: ConnectionLimits::default(),
            node_ports: super::store::DEFAULT_NODE_PORTS,
        }
    }
}

/// Why the lab could not start or stop.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// The state directory could not be created.
    #[error("cannot create the lab's state directory {path}")]
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
    #[error("cannot listen on {addr}; pick another port or stop what uses it")]
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
/// Longest wait for a TLS handshake before the connection is dropped: a handshake on
/// loopback takes milliseconds, and Go's `crypto/tls` clients (kubectl) give up after 10 s.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest wait for a request header, and for the next one on an idle keep-alive
/// connection. Upstream's API server allows 32 s (`ReadHeaderTimeout`, "just shy of the
/// request timeout"); 30 s is hyper's own default and within that. Clients reconnect
/// transparently when an idle pooled connection is closed.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest wait for a request body: upstream's default request timeout (`--request-timeout`
/// 1 min); a 3 MiB body on loopback takes milliseconds.
pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(60);
/// Most API connections at once. A lab serves a handful of clients (kubectl, the toolkit's
/// watchers, each HTTP/1 watch holding one connection); 256 is far above that and keeps
/// the API's file descriptors well under the common soft limit of 1024, which the pods'
/// pipes and the NodePort proxy share.
pub const MAX_CONNECTIONS: usize = 256;
/// How often expired Events are looked for.
const EVENT_EXPIRY_PERIOD: Duration = super::store::EVENT_EXPIRY_PERIOD;
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
        store.set_default_toleration_seconds(config.default_toleration_seconds);
        store.set_node_port_range(config.node_ports.clone());
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
            body_timeout: config.connections.body_read,
        });
        let router = api::router(app);
        tasks.spawn(accept_loop(
            listener,
            Acceptor {
                tls,
                router,
                limits: config.connections,
            },
            shutdown.clone(),
            tasks.clone(),
        ));
        tasks.spawn(persist::run(store.clone(), dir.clone(), shutdown.clone()));
        tasks.spawn(super::store::run_event_expiry(
            store.clone(),
            super::store::EVENT_TTL,
            EVENT_EXPIRY_PERIOD,
            shutdown.clone(),
        ));
        // Namespace deletion finishes in every lab, runtime or not.
        tasks.spawn(super::controllers::namespace::run(
            store.clone(),
            shutdown.clone(),
        ));
        // Runtime: controllers, kubelet and NodePort proxy (controllers/runtime.rs).
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
        if let Err(e) = resil_common::atomic::write_with_mode(
            &path,
            lab.kubeconfig_yaml().as_bytes(),
            Some(0o600),
        ) {
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
                tracing::error!("{}", error_chain(&e));
            }
        }
    }
}

/// What every accepted connection is served with.
#[derive(Clone)]
struct Acceptor {
    tls: TlsAcceptor,
    router: axum::Router,
    limits: ConnectionLimits,
}

/// Accepts connections until `shutdown`, at most `limits.max_connections` at once; each
/// one is served on its own task.
async fn accept_loop(
    listener: TcpListener,
    acceptor: Acceptor,
    shutdown: CancellationToken,
    tasks: TaskTracker,
) {
    let slots = Arc::new(Semaphore::new(acceptor.limits.max_connections.max(1)));
    loop {
        let permit = tokio::select! {
            // A free slot: go on to accept. The semaphore is never closed.
            permit = slots.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => return,
            },
            // Shutdown while every slot is taken.
            _ = shutdown.cancelled() => return,
        };
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => {
                    let conn = serve_connection(tcp, acceptor.clone(), shutdown.clone());
                    tasks.spawn(async move {
                        conn.await;
                        // The slot frees when the connection is over.
                        drop(permit);
                    });
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

/// TLS handshake, then HTTP/1.1 over the router until the client leaves, a timeout of
/// `acceptor.limits` passes, or the lab stops.
async fn serve_connection(
    tcp: tokio::net::TcpStream,
    acceptor: Acceptor,
    shutdown: CancellationToken,
) {
    let _ = tcp.set_nodelay(true);
    let Acceptor {
        tls,
        router,
        limits,
    } = acceptor;
    let stream = match tokio::time::timeout(limits.handshake, tls.accept(tcp)).await {
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
    // hyper starts the header timer whenever it waits for a request head, including on an
    // idle keep-alive connection; it needs a timer to run it at all.
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read)
        .serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    tokio::select! {
        // The connection ended (client closed, a timeout, or an I/O error).
        _ = conn.as_mut() => {}
        // Shutdown: finish the in-flight request, then close.
        _ = shutdown.cancelled() => {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(SHUTDOWN_GRACE, conn).await;
        }
    }
}
