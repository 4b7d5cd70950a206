//! One container kept running, as the kubelet keeps it under `restartPolicy: Always`:
//! start an instance on a fresh port, run its startup, readiness and liveness probes,
//! restart it when it exits or fails liveness (CrashLoopBackOff back-off between
//! restarts), and stop it with a grace period when told to. Everything that happens is
//! reported as a [`ContainerEvent`] over a channel; the kubelet controller turns those
//! into `containerStatuses`, pod conditions and Events. It holds no store and no API.
//!
//! A probe the lab cannot run (`exec`, `grpc`, `https`) is reported once as `Unhealthy`
//! and then ignored, so such a pod still runs rather than failing in a loop.
//! Without a readiness probe the container counts as ready once its process listens.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::Probe;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::backoff::{Backoff, BackoffPolicy, crash_loop_message};
use super::ports::free_port;
use super::probe::{
    ProbeCheck, ProbeKind, ProbeSettings, ProbeUpdate, error_chain, probe_client, run_probe,
};
use super::process::{PodLaunch, PodProcess, ProcessExit};
use super::registry::PodRegistry;

/// What to keep running.
#[derive(Debug, Clone)]
pub struct ContainerSpec {
    /// How to start an instance (its `port` is replaced by a fresh one per instance).
    pub launch: PodLaunch,
    /// The pod's uid (for back-off messages).
    pub pod_uid: String,
    /// `startupProbe`.
    pub startup: Option<Probe>,
    /// `readinessProbe`.
    pub readiness: Option<Probe>,
    /// `livenessProbe`.
    pub liveness: Option<Probe>,
    /// Restart back-off (the kubelet's, possibly scaled).
    pub backoff: BackoffPolicy,
    /// Grace for a restart after a failed liveness or startup probe
    /// (`terminationGracePeriodSeconds`).
    pub restart_grace: Duration,
    /// The pod's `restartPolicy`: whether an instance that exited starts again.
    pub restart: Restart,
}

/// A pod's `restartPolicy` (upstream `kubecontainer.ShouldContainerBeRestarted`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restart {
    /// Every exit starts the container again (the default).
    Always,
    /// Only a non-zero exit (or a start that failed) starts it again.
    OnFailure,
    /// The first exit is the container's end.
    Never,
}

impl Restart {
    /// From `spec.restartPolicy` (unset or unknown: `Always`).
    pub fn of(policy: Option<&str>) -> Restart {
        match policy {
            Some("OnFailure") => Restart::OnFailure,
            Some("Never") => Restart::Never,
            _ => Restart::Always,
        }
    }

    /// Whether the container starts again after `exit` (`None`: it never started).
    fn again(self, exit: Option<&ProcessExit>) -> bool {
        match self {
            Restart::Always => true,
            Restart::OnFailure => exit.is_none_or(|e| e.exit_code() != 0),
            Restart::Never => false,
        }
    }
}

/// What happened to the container.
#[derive(Debug, Clone, PartialEq)]
pub enum ContainerEvent {
    /// An instance started (`restart_count` 0 for the first).
    Started {
        /// Restarts before this instance.
        restart_count: u32,
        /// Its pid (for CPU and memory sampling).
        pid: i32,
        /// The port it listens on at the pod's IP (the pod's endpoint port).
        port: u16,
        /// `state.running.startedAt`.
        started_at: DateTime<Utc>,
    },
    /// Readiness changed (`Ready` / `ContainersReady`; Endpoints follow it).
    Ready(bool),
    /// One probe attempt failed (Warning Event `Unhealthy`).
    Unhealthy {
        /// "Readiness probe failed: ...".
        message: String,
    },
    /// A liveness or startup failure: the instance is being killed (Normal Event
    /// `Killing`).
    Killing {
        /// "Container web failed liveness probe, will be restarted".
        message: String,
    },
    /// An instance ended (`lastState.terminated`).
    Exited(ProcessExit),
    /// Waiting before the next start (`state.waiting` reason `CrashLoopBackOff`).
    BackOff {
        /// How long.
        wait: Duration,
        /// The kubelet's message.
        message: String,
    },
    /// An instance could not be started (it will be retried after back-off).
    StartFailed {
        /// Why.
        message: String,
    },
    /// Stopped for good; the last event.
    Stopped(Option<ProcessExit>),
}

/// The running supervisor of one container. Dropping it without [`stop`] kills the
/// current instance (its `PodProcess` is dropped with the task).
///
/// [`stop`]: ContainerHandle::stop
#[derive(Debug)]
pub struct ContainerHandle {
    stop: watch::Sender<Option<Duration>>,
    task: Option<JoinHandle<()>>,
}

impl ContainerHandle {
    /// Starts supervising; events go to `events` (the supervisor stops if it is closed).
    pub fn start(
        spec: ContainerSpec,
        registry: Arc<PodRegistry>,
        events: mpsc::Sender<ContainerEvent>,
    ) -> ContainerHandle {
        let (stop, stop_rx) = watch::channel(None);
        let task = tokio::spawn(supervise(spec, registry, events, stop_rx));
        ContainerHandle {
            stop,
            task: Some(task),
        }
    }

    /// SIGTERM, up to `grace`, then SIGKILL (zero grace: SIGKILL at once); returns once
    /// the instance is gone and `Stopped` was sent.
    pub async fn stop(mut self, grace: Duration) {
        let _ = self.stop.send(Some(grace));
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for ContainerHandle {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// Completes with the grace once a stop is asked for (a dropped handle: zero grace).
async fn stop_requested(stop: &mut watch::Receiver<Option<Duration>>) -> Duration {
    match stop.wait_for(Option::is_some).await {
        Ok(grace) => grace.unwrap_or(Duration::ZERO),
        Err(_) => Duration::ZERO,
    }
}

/// Ends the loop: the stop was asked for or nobody listens any more.
struct Done;

async fn supervise(
    spec: ContainerSpec,
    registry: Arc<PodRegistry>,
    events: mpsc::Sender<ContainerEvent>,
    mut stop: watch::Receiver<Option<Duration>>,
) {
    let mut backoff = Backoff::new(spec.backoff);
    let client = probe_client();
    let mut restart_count = 0u32;
    let mut last_exit = None;
    loop {
        match run_instance(&spec, &registry, &client, &events, &mut stop, restart_count).await {
            Ok(exit) => last_exit = exit,
            Err(Done) => break,
        }
        if !spec.restart.again(last_exit.as_ref()) {
            // Finished for good (`restartPolicy` Never, or OnFailure after success).
            let _ = events.send(ContainerEvent::Stopped(last_exit)).await;
            // Stays until told to stop, so the handle's stop finds it waiting.
            let _ = stop_requested(&mut stop).await;
            return;
        }
        let wait = backoff.after_crash(std::time::Instant::now());
        restart_count += 1;
        if !wait.is_zero() {
            let launch = &spec.launch;
            let message = crash_loop_message(
                wait,
                &launch.container,
                &launch.pod,
                &launch.namespace,
                &spec.pod_uid,
            );
            if events
                .send(ContainerEvent::BackOff { wait, message })
                .await
                .is_err()
            {
                break;
            }
        }
        tokio::select! {
            // Told to stop while backing off: nothing is running.
            _ = stop_requested(&mut stop) => {
                let _ = events.send(ContainerEvent::Stopped(None)).await;
                return;
            }
            () = tokio::time::sleep(wait) => {}
        }
    }
    let _ = events.send(ContainerEvent::Stopped(last_exit)).await;
}

/// Runs one instance until it exits (`Ok`) or the supervisor must end (`Err(Done)`,
/// after stopping the instance).
async fn run_instance(
    spec: &ContainerSpec,
    registry: &Arc<PodRegistry>,
    client: &reqwest::Client,
    events: &mpsc::Sender<ContainerEvent>,
    stop: &mut watch::Receiver<Option<Duration>>,
    restart_count: u32,
) -> Result<Option<ProcessExit>, Done> {
    let send = |event| async move { events.send(event).await.map_err(|_| Done) };
    let mut launch = spec.launch.clone();
    let spawned = free_port(launch.ip)
        .map_err(|err| format!("no free port on {}: {err}", launch.ip))
        .and_then(|port| {
            launch.port = port;
            PodProcess::spawn(&launch, registry).map_err(|err| error_chain(&err))
        });
    let process = match spawned {
        Ok(process) => process,
        Err(message) => {
            send(ContainerEvent::StartFailed { message }).await?;
            return Ok(None);
        }
    };
    let started = tokio::time::Instant::now();
    send(ContainerEvent::Started {
        restart_count,
        pid: process.pid(),
        port: process.port(),
        started_at: process.started_at(),
    })
    .await?;

    let probes = CancellationToken::new();
    // Stops this instance's probe workers however the instance ends.
    let _probes_guard = probes.clone().drop_guard();
    let (probe_tx, mut probe_rx) = mpsc::channel(16);
    let mut ready = false;
    let mut probing_started = false;
    loop {
        tokio::select! {
            // Told to stop: terminate with the grace asked for.
            grace = stop_requested(stop) => {
                let exit = if grace.is_zero() {
                    process.kill_now();
                    process.exited().await
                } else {
                    process.terminate(grace).await
                };
                let _ = events.send(ContainerEvent::Exited(exit)).await;
                let _ = events.send(ContainerEvent::Stopped(Some(exit))).await;
                return Err(Done);
            }
            // The instance died on its own (crash, OOM, external kill).
            exit = process.exited() => {
                if ready {
                    send(ContainerEvent::Ready(false)).await?;
                }
                send(ContainerEvent::Exited(exit)).await?;
                return Ok(Some(exit));
            }
            // It listens: probing can begin.
            addr = process.listening(), if !probing_started => {
                probing_started = true;
                let Some(addr) = addr else { continue };
                let first = if spec.startup.is_some() { Stage::Startup } else { Stage::Running };
                let unsupported = start_probes(spec, first, addr, client, started, &probe_tx, &probes);
                for message in unsupported {
                    send(ContainerEvent::Unhealthy { message }).await?;
                }
                if first == Stage::Running && !has_probe(spec, ProbeKind::Readiness, addr, client) {
                    ready = true;
                    send(ContainerEvent::Ready(true)).await?;
                }
            }
            // A probe worker reported.
            Some(update) = probe_rx.recv() => match update {
                ProbeUpdate::Failed { message, .. } => send(ContainerEvent::Unhealthy { message }).await?,
                ProbeUpdate::Changed { kind: ProbeKind::Readiness, healthy } => {
                    ready = healthy;
                    send(ContainerEvent::Ready(healthy)).await?;
                }
                ProbeUpdate::Changed { kind: ProbeKind::Startup, healthy: true } => {
                    if let Some(addr) = process.listening().await {
                        let unsupported =
                            start_probes(spec, Stage::Running, addr, client, started, &probe_tx, &probes);
                        for message in unsupported {
                            send(ContainerEvent::Unhealthy { message }).await?;
                        }
                        if !has_probe(spec, ProbeKind::Readiness, addr, client) {
                            ready = true;
                            send(ContainerEvent::Ready(true)).await?;
                        }
                    }
                }
                ProbeUpdate::Changed { kind, healthy: false } => {
                    let what = if kind == ProbeKind::Liveness { "liveness" } else { "startup" };
                    let message = format!(
                        "Container {} failed {what} probe, will be restarted",
                        spec.launch.container
                    );
                    send(ContainerEvent::Killing { message }).await?;
                    probes.cancel();
                    if ready {
                        send(ContainerEvent::Ready(false)).await?;
                    }
                    let exit = process.terminate(spec.restart_grace).await;
                    send(ContainerEvent::Exited(exit)).await?;
                    return Ok(Some(exit));
                }
                ProbeUpdate::Changed { .. } => {}
            },
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Startup,
    Running,
}

fn probe_of(spec: &ContainerSpec, kind: ProbeKind) -> Option<&Probe> {
    match kind {
        ProbeKind::Startup => spec.startup.as_ref(),
        ProbeKind::Readiness => spec.readiness.as_ref(),
        ProbeKind::Liveness => spec.liveness.as_ref(),
    }
}

/// Whether a runnable probe of this kind exists (an unsupported one counts as absent).
fn has_probe(
    spec: &ContainerSpec,
    kind: ProbeKind,
    addr: std::net::SocketAddr,
    client: &reqwest::Client,
) -> bool {
    probe_of(spec, kind).is_some_and(|p| ProbeCheck::from_probe(p, addr, client).is_ok())
}

/// Starts the workers of a stage; returns messages for probes that cannot run.
fn start_probes(
    spec: &ContainerSpec,
    stage: Stage,
    addr: std::net::SocketAddr,
    client: &reqwest::Client,
    started: tokio::time::Instant,
    updates: &mpsc::Sender<ProbeUpdate>,
    stop: &CancellationToken,
) -> Vec<String> {
    let kinds: &[ProbeKind] = match stage {
        Stage::Startup => &[ProbeKind::Startup],
        Stage::Running => &[ProbeKind::Readiness, ProbeKind::Liveness],
    };
    let mut unsupported = Vec::new();
    for &kind in kinds {
        let Some(probe) = probe_of(spec, kind) else {
            continue;
        };
        match ProbeCheck::from_probe(probe, addr, client) {
            Ok(check) => {
                let settings = ProbeSettings::from_probe(probe, kind);
                tokio::spawn(run_probe(
                    kind,
                    settings,
                    started,
                    move || {
                        let check = check.clone();
                        async move { check.check().await }
                    },
                    updates.clone(),
                    stop.clone(),
                ));
            }
            Err(err) => unsupported.push(format!("{} probe ignored: {err}", kind.as_str())),
        }
    }
    unsupported
}

#[cfg(test)]
#[path = "supervisor_tests.rs"]
mod tests;
