//! The lab's Service proxy (its kube-proxy): every NodePort Service port gets a TCP
//! listener on 127.0.0.1:<nodePort> that splices each connection to a ready endpoint.
//!
//! - Endpoints are taken round-robin; an endpoint that refuses or resets the connect is
//!   skipped for the next one. No ready endpoint (or none reachable): the client
//!   connection is reset at once, as kube-proxy rejects traffic for a Service without
//!   endpoints.
//! - Routes are swapped in place by [`ServiceProxy::apply`], so a changed Endpoints object
//!   or selector takes effect for the next connection; open connections keep their
//!   backend.
//! - The Service annotation `resil.dev/proxy-fault: delay=200ms,jitter=50ms,loss=5`
//!   delays each new connection by `delay ± jitter` and drops `loss` % of them (reset).
//!   This is how `resil chaos latency` acts on the lab.
//!
//! - A node port that cannot be bound (something else listens there) is retried on every
//!   [`ServiceProxy::apply`]; the runtime shows the failure on the Service (annotation
//!   [`NODE_PORT_ERROR_ANNOTATION`] and a `NodePortBindFailed` Event), so traffic sent to
//!   that port is known to reach someone else, not this lab.
//!
//! Plain TCP, not HTTP: the proxy never looks into the bytes. Routes come from the
//! Service and Endpoints objects through [`routes`] (pure); the runtime calls `apply` on
//! every change of either. Not a load balancer beyond round-robin.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Endpoints, Service};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Service annotation with the proxy fault.
pub const FAULT_ANNOTATION: &str = "resil.dev/proxy-fault";
/// Service annotation set while a node port of the Service cannot be bound:
/// `"<port>: <OS error>"` (several joined by `; `); removed once every port listens.
pub const NODE_PORT_ERROR_ANNOTATION: &str = "resil.dev/node-port-error";
/// Service annotation naming where its node ports listen: `127.0.0.1:<port>` (several
/// joined by `,`).
pub const NODE_PORT_LISTENING_ANNOTATION: &str = "resil.dev/node-port-listening";
/// Longest wait for one backend connect before trying the next.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Why a proxy fault annotation or a listener was refused.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ProxyError {
    /// The annotation does not parse.
    #[error(
        "bad {FAULT_ANNOTATION} annotation {text:?}: {reason}; expected e.g. \
         \"delay=200ms,jitter=50ms,loss=5\""
    )]
    BadFault {
        /// The annotation value.
        text: String,
        /// What is wrong.
        reason: String,
    },
    /// The node port could not be bound.
    #[error("cannot listen on 127.0.0.1:{port} for Service {service}: {message}")]
    Bind {
        /// The node port.
        port: u16,
        /// `namespace/name`.
        service: String,
        /// The OS error text.
        message: String,
    },
}

/// Faults injected on new connections of one Service.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ProxyFault {
    /// Added before connecting to the backend.
    pub delay: Duration,
    /// Uniform ± spread around `delay`.
    pub jitter: Duration,
    /// Percentage (0–100) of connections reset instead of forwarded.
    pub loss_percent: f64,
}

impl ProxyFault {
    /// Parses `delay=200ms,jitter=50ms,loss=5` (any subset, any order).
    pub fn parse(text: &str) -> Result<ProxyFault, ProxyError> {
        let bad = |reason: String| ProxyError::BadFault {
            text: text.to_string(),
            reason,
        };
        let mut fault = ProxyFault::default();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (key, value) = part
                .split_once('=')
                .ok_or_else(|| bad(format!("{part:?} is not key=value")))?;
            let duration =
                || humantime::parse_duration(value.trim()).map_err(|e| bad(format!("{key}: {e}")));
            match key.trim() {
                "delay" => fault.delay = duration()?,
                "jitter" => fault.jitter = duration()?,
                "loss" => {
                    let v: f64 = value
                        .trim()
                        .trim_end_matches('%')
                        .parse()
                        .map_err(|_| bad(format!("loss {value:?} is not a number")))?;
                    if !(0.0..=100.0).contains(&v) {
                        return Err(bad(format!("loss {v} is not between 0 and 100")));
                    }
                    fault.loss_percent = v;
                }
                other => return Err(bad(format!("unknown key {other:?}"))),
            }
        }
        Ok(fault)
    }

    fn delay_now(&self) -> Duration {
        if self.jitter.is_zero() {
            return self.delay;
        }
        let j = self.jitter.as_secs_f64();
        let d = self.delay.as_secs_f64() + rand::random_range(-j..=j);
        Duration::from_secs_f64(d.max(0.0))
    }

    fn drop_now(&self) -> bool {
        self.loss_percent > 0.0 && rand::random_bool((self.loss_percent / 100.0).min(1.0))
    }
}

/// Where one node port leads.
#[derive(Debug, Clone, PartialEq)]
pub struct NodePortRoute {
    /// The listening port on 127.0.0.1.
    pub node_port: u16,
    /// `namespace/name` of the Service (for messages).
    pub service: String,
    /// Ready endpoints, in the Endpoints object's order.
    pub endpoints: Vec<SocketAddr>,
    /// Injected fault.
    pub fault: ProxyFault,
}

/// The routes for every NodePort Service port, with the ready addresses of the
/// Service's Endpoints (same namespace and name) on the matching port name. A bad fault
/// annotation is reported and the Service routed without a fault.
pub fn routes(
    services: &[Service],
    endpoints: &[Endpoints],
) -> (Vec<NodePortRoute>, Vec<ProxyError>) {
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for svc in services {
        let Some(spec) = &svc.spec else { continue };
        if spec.type_.as_deref() != Some("NodePort")
            && spec.type_.as_deref() != Some("LoadBalancer")
        {
            continue;
        }
        let name = format!(
            "{}/{}",
            svc.metadata.namespace.as_deref().unwrap_or_default(),
            svc.metadata.name.as_deref().unwrap_or_default()
        );
        let fault = match svc
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(FAULT_ANNOTATION))
        {
            Some(text) => ProxyFault::parse(text).unwrap_or_else(|e| {
                errors.push(e);
                ProxyFault::default()
            }),
            None => ProxyFault::default(),
        };
        let ep = endpoints.iter().find(|e| {
            e.metadata.namespace == svc.metadata.namespace && e.metadata.name == svc.metadata.name
        });
        let ports = spec.ports.as_deref().unwrap_or_default();
        for sp in ports {
            let Some(node_port) = sp.node_port.and_then(|p| u16::try_from(p).ok()) else {
                continue;
            };
            let mut addrs = Vec::new();
            for subset in ep.iter().flat_map(|e| e.subsets.iter().flatten()) {
                let sub_ports = subset.ports.as_deref().unwrap_or_default();
                let port = sub_ports
                    .iter()
                    .find(|p| p.name == sp.name || sub_ports.len() == 1 && ports.len() == 1);
                let Some(port) = port.and_then(|p| u16::try_from(p.port).ok()) else {
                    continue;
                };
                for a in subset.addresses.iter().flatten() {
                    if let Ok(ip) = a.ip.parse::<std::net::IpAddr>() {
                        addrs.push(SocketAddr::new(ip, port));
                    }
                }
            }
            out.push(NodePortRoute {
                node_port,
                service: name.clone(),
                endpoints: addrs,
                fault,
            });
        }
    }
    (out, errors)
}

/// What a listener reads for each new connection.
#[derive(Debug, Default)]
struct RouteState {
    route: RwLock<(Vec<SocketAddr>, ProxyFault)>,
    next: AtomicUsize,
}

struct Listener {
    state: Arc<RouteState>,
    stop: CancellationToken,
}

/// The running listeners, one per node port. Owned by the runtime's proxy loop.
pub struct ServiceProxy {
    listeners: HashMap<u16, Listener>,
    shutdown: CancellationToken,
    tasks: TaskTracker,
}

impl ServiceProxy {
    /// No listeners yet; every task stops when `shutdown` is cancelled.
    pub fn new(shutdown: CancellationToken) -> ServiceProxy {
        ServiceProxy {
            listeners: HashMap::new(),
            shutdown,
            tasks: TaskTracker::new(),
        }
    }

    /// Makes the listeners match `routes`: binds new node ports, closes ports no longer
    /// routed, and swaps endpoints and faults of the others (effective for the next
    /// connection). Ports that cannot be bound are returned as errors.
    pub async fn apply(&mut self, routes: &[NodePortRoute]) -> Vec<ProxyError> {
        let mut errors = Vec::new();
        let wanted: HashMap<u16, &NodePortRoute> =
            routes.iter().map(|r| (r.node_port, r)).collect();
        self.listeners.retain(|port, l| {
            let keep = wanted.contains_key(port);
            if !keep {
                l.stop.cancel();
            }
            keep
        });
        for (port, route) in wanted {
            if let Some(l) = self.listeners.get(&port) {
                let mut w = l.state.route.write().unwrap_or_else(|e| e.into_inner());
                *w = (route.endpoints.clone(), route.fault);
                continue;
            }
            let listener = match TcpListener::bind((Ipv4Addr::LOCALHOST, port)).await {
                Ok(l) => l,
                Err(e) => {
                    errors.push(ProxyError::Bind {
                        port,
                        service: route.service.clone(),
                        message: e.to_string(),
                    });
                    continue;
                }
            };
            let state = Arc::new(RouteState {
                route: RwLock::new((route.endpoints.clone(), route.fault)),
                next: AtomicUsize::new(0),
            });
            let stop = self.shutdown.child_token();
            self.tasks.spawn(accept_loop(
                listener,
                state.clone(),
                stop.clone(),
                self.tasks.clone(),
            ));
            self.listeners.insert(port, Listener { state, stop });
        }
        errors
    }

    /// Whether the node port has a listener.
    pub fn is_listening(&self, port: u16) -> bool {
        self.listeners.contains_key(&port)
    }

    /// The node ports currently listening.
    #[cfg(test)]
    pub fn ports(&self) -> Vec<u16> {
        let mut v: Vec<u16> = self.listeners.keys().copied().collect();
        v.sort_unstable();
        v
    }

    /// Closes every listener and waits (bounded) for open connections to end.
    pub async fn stop(self) {
        for l in self.listeners.values() {
            l.stop.cancel();
        }
        self.tasks.close();
        let _ = tokio::time::timeout(Duration::from_secs(2), self.tasks.wait()).await;
    }
}

async fn accept_loop(
    listener: TcpListener,
    state: Arc<RouteState>,
    stop: CancellationToken,
    tasks: TaskTracker,
) {
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((client, _)) => {
                    tasks.spawn(forward(client, state.clone(), stop.clone()));
                }
                Err(e) => {
                    // Usually out of file descriptors: back off instead of spinning.
                    tracing::warn!("proxy accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            // The port is no longer routed, or the lab stops: close the listener.
            _ = stop.cancelled() => return,
        }
    }
}

/// One client connection: fault, pick a backend, splice until either side closes.
async fn forward(client: TcpStream, state: Arc<RouteState>, stop: CancellationToken) {
    let (endpoints, fault) = state
        .route
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    if fault.drop_now() {
        reset(client);
        return;
    }
    let delay = fault.delay_now();
    if !delay.is_zero() {
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            // Lab stopping: do not hold the client for the delay.
            _ = stop.cancelled() => return,
        }
    }
    let Some(mut backend) = connect_any(&endpoints, &state.next).await else {
        reset(client);
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = backend.set_nodelay(true);
    let mut client = client;
    tokio::select! {
        // Either side closed or failed: the splice is over.
        _ = tokio::io::copy_bidirectional(&mut client, &mut backend) => {}
        // Lab stopping (or the port removed): drop both sockets.
        _ = stop.cancelled() => {}
    }
}

/// Connects to the endpoints round-robin from the shared counter, skipping refused or
/// timed-out ones; `None` when none answers.
async fn connect_any(endpoints: &[SocketAddr], next: &AtomicUsize) -> Option<TcpStream> {
    if endpoints.is_empty() {
        return None;
    }
    let start = next.fetch_add(1, Ordering::Relaxed);
    for i in 0..endpoints.len() {
        let addr = endpoints[(start + i) % endpoints.len()];
        if let Ok(Ok(s)) = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
            if i > 0 {
                // Skipped a dead endpoint: continue after the one that answered, so the
                // dead one's turn does not double the load on its neighbour.
                next.store(start + i + 1, Ordering::Relaxed);
            }
            return Some(s);
        }
    }
    None
}

/// Closes the client with a reset, so it sees an error at once rather than an empty reply.
fn reset(client: TcpStream) {
    // Zero linger makes close send RST; it does not block.
    let _ = client.set_zero_linger();
    drop(client);
}

#[cfg(test)]
#[path = "proxy_tests.rs"]
mod tests;
