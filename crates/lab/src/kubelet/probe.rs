//! Readiness, liveness and startup probes, as the kubelet's prober runs them: one worker
//! per probe and container instance, probing every `periodSeconds` after
//! `initialDelaySeconds`, each attempt bounded by `timeoutSeconds`, the result flipping
//! only after `successThreshold` / `failureThreshold` consecutive attempts agree.
//! Readiness starts "not ready", liveness and startup start "healthy". A liveness or
//! startup failure ends the worker (the container is restarted; its next instance gets a
//! new worker); a startup success ends it too (readiness and liveness begin then).
//!
//! [`ProbeTracker`] is the pure threshold state machine, [`run_probe`] the timed loop
//! (any async check; tested under `tokio::time::pause()`), [`HttpCheck`] / [`TcpCheck`]
//! the real checks. Workers report over an mpsc channel to the kubelet controller, which
//! turns them into pod conditions, restarts and `Unhealthy` Events.
//!
//! Every container instance listens on one port, so every probe port (number or name)
//! means that port on 127.0.0.1; `host` is ignored; `https`, `exec` and `grpc` probes
//! are refused with [`ProbeError`].

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use k8s_openapi::api::core::v1::Probe;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Which probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProbeKind {
    /// Ready for traffic (pod condition `Ready`, Endpoints).
    Readiness,
    /// Alive (failure restarts the container).
    Liveness,
    /// Started (gates the other two; failure restarts the container).
    Startup,
}

impl ProbeKind {
    /// `Readiness`, `Liveness`, `Startup`: how Events name it.
    pub fn as_str(self) -> &'static str {
        match self {
            ProbeKind::Readiness => "Readiness",
            ProbeKind::Liveness => "Liveness",
            ProbeKind::Startup => "Startup",
        }
    }
}

/// A probe's timing and thresholds, with Kubernetes' defaults filled in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeSettings {
    /// Before the first attempt, from container start (default 0).
    pub initial_delay: Duration,
    /// Between attempts (default 10 s).
    pub period: Duration,
    /// One attempt's limit (default 1 s).
    pub timeout: Duration,
    /// Consecutive successes to turn healthy (default 1; always 1 for liveness/startup).
    pub success_threshold: u32,
    /// Consecutive failures to turn unhealthy (default 3).
    pub failure_threshold: u32,
}

impl ProbeSettings {
    /// Reads a pod spec probe (non-positive values fall back to the defaults).
    pub fn from_probe(probe: &Probe, kind: ProbeKind) -> ProbeSettings {
        let secs = |v: Option<i32>, default: u64, min: u64| {
            Duration::from_secs(
                v.map_or(default, |v| u64::try_from(v).unwrap_or(default))
                    .max(min),
            )
        };
        let count = |v: Option<i32>, default: u32| {
            v.and_then(|v| u32::try_from(v).ok())
                .filter(|v| *v > 0)
                .unwrap_or(default)
        };
        ProbeSettings {
            initial_delay: secs(probe.initial_delay_seconds, 0, 0),
            period: secs(probe.period_seconds, 10, 1),
            timeout: secs(probe.timeout_seconds, 1, 1),
            success_threshold: match kind {
                ProbeKind::Readiness => count(probe.success_threshold, 1),
                // The API server rejects anything else for these two.
                ProbeKind::Liveness | ProbeKind::Startup => 1,
            },
            failure_threshold: count(probe.failure_threshold, 3),
        }
    }
}

/// What one attempt found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeOutcome {
    /// Passed.
    pub ok: bool,
    /// Why it failed (as the kubelet words it); empty on success.
    pub message: String,
}

impl ProbeOutcome {
    /// A pass.
    pub fn pass() -> ProbeOutcome {
        ProbeOutcome {
            ok: true,
            message: String::new(),
        }
    }

    /// A failure with its reason.
    pub fn fail(message: impl Into<String>) -> ProbeOutcome {
        ProbeOutcome {
            ok: false,
            message: message.into(),
        }
    }
}

/// What a worker reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeUpdate {
    /// One attempt failed (the kubelet records a Warning `Unhealthy` Event per failure:
    /// "Readiness probe failed: HTTP probe failed with statuscode: 503").
    Failed {
        /// Which probe.
        kind: ProbeKind,
        /// The Event message.
        message: String,
    },
    /// The result changed: readiness ready/unready; liveness or startup `false` means
    /// restart the container; startup `true` means begin readiness and liveness.
    Changed {
        /// Which probe.
        kind: ProbeKind,
        /// The new result.
        healthy: bool,
    },
}

/// The threshold state machine of one worker (upstream `worker.doProbe`).
#[derive(Debug, Clone)]
pub struct ProbeTracker {
    kind: ProbeKind,
    settings: ProbeSettings,
    reported: bool,
    last: Option<bool>,
    run: u32,
}

impl ProbeTracker {
    /// Starts not ready (readiness) or healthy (liveness, startup).
    pub fn new(kind: ProbeKind, settings: ProbeSettings) -> ProbeTracker {
        ProbeTracker {
            kind,
            settings,
            reported: kind != ProbeKind::Readiness,
            last: None,
            run: 0,
        }
    }

    /// The result reported now.
    pub fn healthy(&self) -> bool {
        self.reported
    }

    /// Takes one attempt; returns the new result when it changes.
    pub fn observe(&mut self, ok: bool) -> Option<bool> {
        if self.last == Some(ok) {
            self.run = self.run.saturating_add(1);
        } else {
            self.last = Some(ok);
            self.run = 1;
        }
        let threshold = if ok {
            self.settings.success_threshold
        } else {
            self.settings.failure_threshold
        };
        if self.run < threshold || self.reported == ok {
            return None;
        }
        self.reported = ok;
        Some(ok)
    }

    /// Whether the worker is done after reporting `healthy` (upstream stops liveness and
    /// startup workers on failure, and startup workers on success).
    fn finished_after(&self, healthy: bool) -> bool {
        match self.kind {
            ProbeKind::Readiness => false,
            ProbeKind::Liveness => !healthy,
            ProbeKind::Startup => true,
        }
    }
}

/// Runs one probe worker until `stop`, the receiver going away, or (liveness/startup) a
/// final result. `started` is the container's start; `check` makes one attempt.
pub async fn run_probe<F, Fut>(
    kind: ProbeKind,
    settings: ProbeSettings,
    started: Instant,
    mut check: F,
    updates: mpsc::Sender<ProbeUpdate>,
    stop: CancellationToken,
) where
    F: FnMut() -> Fut,
    Fut: Future<Output = ProbeOutcome>,
{
    let mut tracker = ProbeTracker::new(kind, settings);
    let mut next = started + settings.initial_delay;
    loop {
        tokio::select! {
            // Container stopped or pod deleted.
            () = stop.cancelled() => return,
            // Time for the next attempt.
            () = tokio::time::sleep_until(next) => {}
        }
        let outcome = tokio::select! {
            () = stop.cancelled() => return,
            outcome = tokio::time::timeout(settings.timeout, check()) => outcome.unwrap_or_else(|_| {
                ProbeOutcome::fail(format!(
                    "probe timed out after {}s (context deadline exceeded)",
                    settings.timeout.as_secs()
                ))
            }),
        };
        if !outcome.ok {
            let message = format!("{} probe failed: {}", kind.as_str(), outcome.message);
            if updates
                .send(ProbeUpdate::Failed { kind, message })
                .await
                .is_err()
            {
                return;
            }
        }
        if let Some(healthy) = tracker.observe(outcome.ok) {
            if updates
                .send(ProbeUpdate::Changed { kind, healthy })
                .await
                .is_err()
            {
                return;
            }
            if tracker.finished_after(healthy) {
                return;
            }
        }
        // Fixed rate from the first attempt; a slow attempt does not shift the schedule,
        // and a missed slot is not made up.
        next += settings.period;
        let now = Instant::now();
        while next <= now {
            next += settings.period;
        }
    }
}

/// Why a probe cannot run in the lab.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProbeError {
    /// exec, grpc or https.
    #[error("{0} probes are not supported by the resil lab; use an httpGet or tcpSocket probe")]
    Unsupported(&'static str),
    /// No handler at all.
    #[error("the probe names no handler (httpGet, tcpSocket, exec or grpc)")]
    NoHandler,
}

/// One attempt of a pod spec probe against a container listening on `addr`.
#[derive(Debug, Clone)]
pub enum ProbeCheck {
    /// `httpGet`.
    Http(HttpCheck),
    /// `tcpSocket`.
    Tcp(TcpCheck),
}

impl ProbeCheck {
    /// The check a pod spec probe asks for, against `addr` (see the module note on ports).
    pub fn from_probe(
        probe: &Probe,
        addr: SocketAddr,
        client: &reqwest::Client,
    ) -> Result<ProbeCheck, ProbeError> {
        if let Some(http) = &probe.http_get {
            if http
                .scheme
                .as_deref()
                .is_some_and(|s| s.eq_ignore_ascii_case("https"))
            {
                return Err(ProbeError::Unsupported("https"));
            }
            let path = http.path.as_deref().unwrap_or("/");
            let headers = http
                .http_headers
                .iter()
                .flatten()
                .map(|h| (h.name.clone(), h.value.clone()))
                .collect();
            return Ok(ProbeCheck::Http(HttpCheck::new(
                client.clone(),
                addr,
                path,
                headers,
            )));
        }
        if probe.tcp_socket.is_some() {
            return Ok(ProbeCheck::Tcp(TcpCheck { addr }));
        }
        if probe.exec.is_some() {
            return Err(ProbeError::Unsupported("exec"));
        }
        if probe.grpc.is_some() {
            return Err(ProbeError::Unsupported("grpc"));
        }
        Err(ProbeError::NoHandler)
    }

    /// Makes one attempt (no timeout of its own: [`run_probe`] bounds it).
    pub async fn check(&self) -> ProbeOutcome {
        match self {
            ProbeCheck::Http(http) => http.check().await,
            ProbeCheck::Tcp(tcp) => tcp.check().await,
        }
    }
}

/// A client suited to probes: no proxy, no redirects followed (3xx already passes), no
/// idle connections kept (the kubelet opens one connection per attempt).
pub fn probe_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(0)
        .user_agent("kube-probe/1.35")
        .build()
        // Only a TLS back-end or resolver failing to initialise makes `build` fail; this
        // crate's reqwest has no TLS and these options need no resolver.
        .unwrap_or_else(|_| reqwest::Client::new())
}

/// An HTTP GET: 200–399 passes, as upstream.
#[derive(Debug, Clone)]
pub struct HttpCheck {
    client: reqwest::Client,
    url: String,
    headers: Vec<(String, String)>,
}

impl HttpCheck {
    /// GET `http://addr/path` with extra headers.
    pub fn new(
        client: reqwest::Client,
        addr: SocketAddr,
        path: &str,
        headers: Vec<(String, String)>,
    ) -> HttpCheck {
        let path = if path.starts_with('/') {
            path.to_string()
        } else {
            format!("/{path}")
        };
        HttpCheck {
            client,
            url: format!("http://{addr}{path}"),
            headers,
        }
    }

    /// Makes one attempt.
    pub async fn check(&self) -> ProbeOutcome {
        let mut request = self.client.get(&self.url);
        for (name, value) in &self.headers {
            request = request.header(name, value);
        }
        match request.send().await {
            Ok(response) if (200..400).contains(&response.status().as_u16()) => {
                ProbeOutcome::pass()
            }
            Ok(response) => ProbeOutcome::fail(format!(
                "HTTP probe failed with statuscode: {}",
                response.status().as_u16()
            )),
            Err(err) => ProbeOutcome::fail(format!("Get \"{}\": {}", self.url, error_chain(&err))),
        }
    }
}

/// A TCP connect.
#[derive(Debug, Clone)]
pub struct TcpCheck {
    addr: SocketAddr,
}

impl TcpCheck {
    /// Makes one attempt.
    pub async fn check(&self) -> ProbeOutcome {
        match tokio::net::TcpStream::connect(self.addr).await {
            Ok(_) => ProbeOutcome::pass(),
            Err(err) => ProbeOutcome::fail(format!("dial tcp {}: {err}", self.addr)),
        }
    }
}

/// An error with its causes, `: `-separated (as Go prints wrapped errors).
pub(crate) fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
#[path = "probe_tests.rs"]
mod tests;
