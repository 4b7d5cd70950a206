//! One pod on the lab's node: starts a supervisor per container (demo image) or reports the
//! image pull failure (any other image), turns the supervisors' events into the pod's
//! status (phase, conditions, containerStatuses, podIP/hostIP, startTime), the port
//! annotation and Events, samples CPU and memory into PodMetrics, and on a stop request
//! stops the containers with the grace asked for and — if the pod is being deleted —
//! removes it from the store. Spawned by `controller.rs`.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::{
    Container, ContainerState, ContainerStateRunning, ContainerStateTerminated,
    ContainerStateWaiting, ContainerStatus, HostIP, Pod, PodCondition, PodIP, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use serde_json::json;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::backoff::Backoff;
use super::controller::Node;
use super::logs::DEFAULT_LOG_CAP;
use super::process::{PodLaunch, ProcessExit};
use super::supervisor::{ContainerEvent, ContainerHandle, ContainerSpec, Restart};
use super::usage::UsageMeter;
use super::{env, image};
use crate::controllers::events;
use crate::controllers::hpa::milli_value;
use crate::controllers::pods::PORT_ANNOTATION;
use crate::controllers::runtime::{to_value, write_status};
use crate::metrics::{self, ContainerUsage};
use crate::store::WriteMode;
use crate::store::kinds::kind;

/// How often CPU and memory are sampled (the PodMetrics window).
const METRICS_PERIOD: Duration = Duration::from_secs(1);
const IP: &str = "127.0.0.1";

/// One container's state as the status reports it.
struct Slot {
    container: Container,
    state: ContainerState,
    last: Option<ContainerState>,
    ready: bool,
    restarts: i32,
    started: bool,
    ever_ran: bool,
    pid: Option<i32>,
    meter: Option<UsageMeter>,
    /// Image pull state of a non-demo image.
    pull: Option<Pull>,
    /// When to try again to build an environment that failed (`CreateContainerConfigError`).
    config_retry: Option<Instant>,
    /// Finished for good under `restartPolicy` Never or OnFailure.
    done: bool,
}

/// How soon the kubelet tries again to start a container whose ConfigMap or Secret was
/// missing (upstream: the pod worker's next sync).
const CONFIG_RETRY: Duration = Duration::from_secs(1);

/// A non-demo image: every attempt fails (`ErrImagePull`), the next sync shows the
/// back-off (`ImagePullBackOff`), and the next attempt comes after the back-off.
struct Pull {
    backoff: Backoff,
    /// When the next step (show back-off, or attempt again) is due.
    next: Instant,
    /// The last step was an attempt (the state shows `ErrImagePull`).
    failed_attempt: bool,
    /// When the next attempt is due.
    attempt_at: Instant,
}

/// How soon after a failed pull the status moves on to `ImagePullBackOff` (upstream: the
/// pod worker's next sync).
const PULL_RESYNC: Duration = Duration::from_secs(1);

struct PodRun {
    node: Arc<Node>,
    pod: Pod,
    ns: String,
    name: String,
    slots: Vec<Slot>,
    /// The InternalIP of the pod's node.
    host_ip: String,
    start_time: Timestamp,
    /// (type, status, lastTransitionTime)
    conditions: Vec<(&'static str, bool, Timestamp)>,
}

/// Runs the pod until a stop is requested.
pub(crate) async fn run(node: Arc<Node>, pod: Pod, mut stop: watch::Receiver<Option<Duration>>) {
    let mut run = PodRun::new(node.clone(), pod);
    if let Err(message) = admit(&run.pod) {
        // Nothing runs: wait for the pod's deletion (or the lab's end) to finish it.
        run.reject(&message);
        let grace = stop_requested(&mut stop).await;
        run.stop(Vec::new(), grace).await;
        return;
    }
    let (tx, mut rx) = mpsc::channel::<(usize, ContainerEvent)>(64);
    let mut handles: Vec<Option<ContainerHandle>> = Vec::new();
    for i in 0..run.slots.len() {
        handles.push(run.start_container(i, &tx));
    }
    run.write();
    let mut metrics_tick = tokio::time::interval(METRICS_PERIOD);
    let grace = loop {
        let next_pull = run
            .slots
            .iter()
            .filter_map(|s| s.pull.as_ref().map(|p| p.next))
            .min();
        let next_config = run.slots.iter().filter_map(|s| s.config_retry).min();
        tokio::select! {
            // Stop requested: deletion (with its grace), pod gone or lab shutdown (zero).
            grace = stop_requested(&mut stop) => break grace,
            // A container reported.
            Some((i, event)) = rx.recv() => run.on_event(i, event),
            // A non-demo image's next pull attempt is due.
            _ = tokio::time::sleep_until(next_pull.unwrap_or_else(Instant::now)), if next_pull.is_some() => {
                run.retry_pulls();
            }
            // A container waiting for a ConfigMap or Secret tries again.
            _ = tokio::time::sleep_until(next_config.unwrap_or_else(Instant::now)), if next_config.is_some() => {
                run.retry_config(&mut handles, &tx);
            }
            // Sample CPU and memory.
            _ = metrics_tick.tick() => run.sample(),
        }
    };
    run.stop(handles, grace).await;
}

/// Reason of a pod the kubelet refuses to run because of a container name.
const INVALID_NAME_REASON: &str = "InvalidContainerName";

/// The kubelet's own admission check: container names become log file names, so each
/// must be a DNS-1123 label, unique in the pod (the API checks this too; this is the
/// kubelet not relying on it). `Err` says what is wrong.
fn admit(pod: &Pod) -> Result<(), String> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or_default();
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    let mut seen = std::collections::HashSet::new();
    for c in pod.spec.iter().flat_map(|s| &s.containers) {
        if let Err(e) = super::logs::check_names(ns, name, &c.name) {
            return Err(e.to_string());
        }
        if !seen.insert(c.name.as_str()) {
            return Err(format!(
                "container name {:?} is used twice in the pod",
                c.name
            ));
        }
    }
    Ok(())
}

async fn stop_requested(stop: &mut watch::Receiver<Option<Duration>>) -> Duration {
    match stop.wait_for(Option::is_some).await {
        Ok(g) => g.unwrap_or(Duration::ZERO),
        // The controller is gone: stop at once.
        Err(_) => Duration::ZERO,
    }
}

impl PodRun {
    fn new(node: Arc<Node>, pod: Pod) -> PodRun {
        let containers = pod
            .spec
            .as_ref()
            .map(|s| s.containers.clone())
            .unwrap_or_default();
        let slots = containers
            .into_iter()
            .map(|container| Slot {
                container,
                state: waiting("ContainerCreating", None),
                last: None,
                ready: false,
                restarts: 0,
                started: false,
                ever_ran: false,
                pid: None,
                meter: None,
                pull: None,
                config_retry: None,
                done: false,
            })
            .collect();
        let now = Timestamp::now();
        let on = pod.spec.as_ref().and_then(|s| s.node_name.as_deref());
        let host_ip = node
            .nodes
            .iter()
            .find(|n| Some(n.name.as_str()) == on)
            .map_or_else(|| IP.to_string(), |n| n.ip.clone());
        // The env's `status.podIP` reads it before the first status write.
        let mut pod = pod;
        let status = pod.status.get_or_insert_with(PodStatus::default);
        status.pod_ip = Some(host_ip.clone());
        status.host_ip = Some(host_ip.clone());
        PodRun {
            host_ip,
            ns: pod.metadata.namespace.clone().unwrap_or_default(),
            name: pod.metadata.name.clone().unwrap_or_default(),
            node,
            pod,
            slots,
            start_time: now,
            conditions: vec![
                ("PodReadyToStartContainers", true, now),
                ("Initialized", true, now),
                ("Ready", false, now),
                ("ContainersReady", false, now),
                ("PodScheduled", true, now),
            ],
        }
    }

    /// Starts container `i` under a supervisor, or records why it cannot start.
    fn start_container(
        &mut self,
        i: usize,
        tx: &mpsc::Sender<(usize, ContainerEvent)>,
    ) -> Option<ContainerHandle> {
        let c = self.slots[i].container.clone();
        let image_name = c.image.clone().unwrap_or_default();
        if !image::is_demo_image(&image_name, &self.node.demo_images) {
            self.slots[i].pull = Some(Pull {
                backoff: Backoff::new(self.node.backoff),
                next: Instant::now(),
                failed_attempt: false,
                attempt_at: Instant::now(),
            });
            self.pull_step(i);
            return None;
        }
        let args = match image::program_args(c.command.as_deref(), c.args.as_deref()) {
            Ok(args) => args,
            Err(message) => {
                self.slots[i].state = waiting("RunContainerError", Some(message.clone()));
                self.event("Warning", "Failed", &format!("Error: {message}"));
                return None;
            }
        };
        let env = match self.container_env(&c) {
            Ok(env) => env,
            Err(e) => {
                let message = e.to_string();
                let repeated = self.slots[i].config_retry.is_some()
                    && self.slots[i]
                        .state
                        .waiting
                        .as_ref()
                        .is_some_and(|w| w.message.as_deref() == Some(message.as_str()));
                self.slots[i].state = waiting(env::CONFIG_ERROR_REASON, Some(message.clone()));
                self.slots[i].config_retry = Some(Instant::now() + CONFIG_RETRY);
                if !repeated {
                    self.event("Warning", "Failed", &format!("Error: {message}"));
                }
                return None;
            }
        };
        self.slots[i].config_retry = None;
        for warning in &env.warnings {
            self.event("Warning", "InvalidEnvironmentVariableNames", warning);
        }
        let (env, dropped) = env::without_loader_variables(env.vars);
        if !dropped.is_empty() {
            self.event(
                "Warning",
                "LoaderEnvDropped",
                &format!(
                    "Container {}: dropped {}: variables that make the dynamic loader load \
                     other code never reach a lab pod (it runs as a process on this machine)",
                    c.name,
                    dropped.join(", ")
                ),
            );
        }
        let grace = self
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.termination_grace_period_seconds)
            .unwrap_or(30);
        let spec = ContainerSpec {
            launch: PodLaunch {
                program: self.node.program.clone(),
                namespace: self.ns.clone(),
                pod: self.name.clone(),
                container: c.name.clone(),
                ip: self
                    .host_ip
                    .parse()
                    .unwrap_or(std::net::Ipv4Addr::LOCALHOST),
                port: 0,
                env,
                state_dir: self.node.state_dir.clone(),
                log_cap: DEFAULT_LOG_CAP,
                cpu_limit_millicores: cpu_limit(&c),
                args,
            },
            pod_uid: self.pod.metadata.uid.clone().unwrap_or_default(),
            startup: c.startup_probe.clone(),
            readiness: c.readiness_probe.clone(),
            liveness: c.liveness_probe.clone(),
            backoff: self.node.backoff,
            restart_grace: Duration::from_secs(grace.max(0) as u64),
            restart: Restart::of(
                self.pod
                    .spec
                    .as_ref()
                    .and_then(|s| s.restart_policy.as_deref()),
            ),
        };
        let (ctx, mut crx) = mpsc::channel(16);
        let tx = tx.clone();
        // Tags the container's events with its index for the pod's one event loop.
        tokio::spawn(async move {
            while let Some(e) = crx.recv().await {
                if tx.send((i, e)).await.is_err() {
                    return;
                }
            }
        });
        Some(ContainerHandle::start(
            spec,
            self.node.registry.clone(),
            ctx,
        ))
    }

    fn on_event(&mut self, i: usize, event: ContainerEvent) {
        let image_name = self.slots[i].container.image.clone().unwrap_or_default();
        let cname = self.slots[i].container.name.clone();
        match event {
            ContainerEvent::Started {
                restart_count,
                pid,
                port,
                started_at,
            } => {
                let slot = &mut self.slots[i];
                slot.restarts = restart_count as i32;
                slot.state = ContainerState {
                    running: Some(ContainerStateRunning {
                        started_at: Some(time(started_at)),
                    }),
                    ..ContainerState::default()
                };
                slot.started = true;
                slot.ever_ran = true;
                slot.ready = false;
                slot.pid = Some(pid);
                slot.meter = Some(UsageMeter::new(pid));
                if i == 0 {
                    self.set_port(port);
                }
                self.event(
                    "Normal",
                    "Pulled",
                    &format!("Container image \"{image_name}\" already present on machine"),
                );
                self.event("Normal", "Created", &format!("Created container: {cname}"));
                self.event("Normal", "Started", &format!("Started container {cname}"));
            }
            ContainerEvent::Ready(ready) => self.slots[i].ready = ready,
            ContainerEvent::Unhealthy { message } => self.event("Warning", "Unhealthy", &message),
            ContainerEvent::Killing { message } => self.event("Normal", "Killing", &message),
            ContainerEvent::Exited(exit) => {
                let slot = &mut self.slots[i];
                let started_at = slot
                    .state
                    .running
                    .as_ref()
                    .and_then(|r| r.started_at.clone());
                let terminated = terminated(&exit, started_at, slot.pid);
                slot.last = Some(terminated.clone());
                slot.state = terminated;
                slot.ready = false;
                slot.started = false;
                slot.pid = None;
                slot.meter = None;
            }
            ContainerEvent::BackOff { message, .. } => {
                self.slots[i].state = waiting("CrashLoopBackOff", Some(message));
                self.event(
                    "Warning",
                    "BackOff",
                    &format!(
                        "Back-off restarting failed container {cname} in pod {}_{}",
                        self.name, self.ns
                    ),
                );
            }
            ContainerEvent::StartFailed { message } => {
                self.slots[i].state = waiting("StartError", Some(message.clone()));
                self.event("Warning", "Failed", &format!("Error: {message}"));
            }
            // The supervisor ended on its own: the container is finished for good.
            ContainerEvent::Stopped(_) => self.slots[i].done = true,
        }
        self.write();
    }

    /// Runs the pull steps that are due.
    fn retry_pulls(&mut self) {
        let now = Instant::now();
        let due: Vec<usize> = (0..self.slots.len())
            .filter(|&i| self.slots[i].pull.as_ref().is_some_and(|p| p.next <= now))
            .collect();
        for i in due {
            self.pull_step(i);
        }
        self.write();
    }

    /// One step of a non-demo image's pull cycle: an attempt that fails, or the back-off.
    fn pull_step(&mut self, i: usize) {
        let image_name = self.slots[i].container.image.clone().unwrap_or_default();
        let Some(pull) = self.slots[i].pull.as_mut() else {
            return;
        };
        let now = Instant::now();
        let (state, events) = if pull.failed_attempt || now < pull.attempt_at {
            pull.failed_attempt = false;
            pull.next = pull.attempt_at;
            let w = image::image_pull_back_off(&image_name);
            (
                waiting(w.reason, Some(w.message)),
                image::back_off_events(&image_name),
            )
        } else {
            let wait = pull.backoff.after_pull_failure(std::time::Instant::now());
            pull.failed_attempt = true;
            pull.attempt_at = now + wait;
            pull.next = now + PULL_RESYNC.min(wait);
            let w = image::err_image_pull(&image_name, &self.node.demo_images);
            (
                waiting(w.reason, Some(w.message)),
                image::pull_attempt_events(&image_name, &self.node.demo_images),
            )
        };
        self.slots[i].state = state;
        for e in events {
            self.event(e.kind, e.reason, &e.message);
        }
    }

    /// The container's environment, reading ConfigMaps and Secrets from the store.
    fn container_env(&self, c: &Container) -> Result<env::ContainerEnv, env::EnvError> {
        let store = &self.node.store;
        let lookup = |source: env::Source, name: &str| {
            let obj = store.get(source.plural(), &self.ns, name)?;
            Some(source.data_of(&obj))
        };
        env::container_env(c, &self.pod, &lookup)
    }

    /// Tries again to start the containers whose environment could not be built.
    fn retry_config(
        &mut self,
        handles: &mut [Option<ContainerHandle>],
        tx: &mpsc::Sender<(usize, ContainerEvent)>,
    ) {
        let now = Instant::now();
        let due: Vec<usize> = (0..self.slots.len())
            .filter(|&i| self.slots[i].config_retry.is_some_and(|at| at <= now))
            .collect();
        for i in due {
            handles[i] = self.start_container(i, tx);
        }
        self.write();
    }

    /// Publishes the first container's listening port (Endpoints and the proxy use it).
    fn set_port(&self, port: u16) {
        let store = &self.node.store;
        // Two tries: a concurrent status write may bump the resourceVersion in between.
        for _ in 0..2 {
            let Some(mut live) = store.get("pods", &self.ns, &self.name) else {
                return;
            };
            if live["metadata"]["uid"] != json!(self.pod.metadata.uid) {
                return;
            }
            if live["metadata"]
                .get("annotations")
                .is_none_or(|a| !a.is_object())
            {
                live["metadata"]["annotations"] = json!({});
            }
            live["metadata"]["annotations"][PORT_ANNOTATION] = json!(port.to_string());
            if store
                .update(kind("pods"), &self.ns, &self.name, live, WriteMode::Main)
                .is_ok()
            {
                return;
            }
        }
    }

    fn sample(&mut self) {
        let mut usages = Vec::new();
        let mut window = METRICS_PERIOD;
        for s in &mut self.slots {
            if let Some(u) = s.meter.as_mut().and_then(UsageMeter::poll) {
                window = u.window;
                usages.push(ContainerUsage {
                    name: s.container.name.clone(),
                    nanocores: u.nanocores,
                    memory_bytes: u.memory_bytes,
                });
            }
        }
        let running = self.slots.iter().filter(|s| s.meter.is_some()).count();
        // Like metrics-server: a pod reports only when every running container has a sample.
        let m = (running > 0 && usages.len() == running)
            .then(|| metrics::pod_metrics(&self.pod, &usages, window, Timestamp::now()));
        if m.is_some() || running == 0 {
            self.node.store.set_pod_metrics(&self.ns, &self.name, m);
        }
    }

    /// Writes the pod status as it is now (unchanged writes are dropped by the store).
    fn write(&mut self) {
        let now = Timestamp::now();
        let all_ready = !self.slots.is_empty() && self.slots.iter().all(|s| s.ready);
        for (type_, ok, at) in &mut self.conditions {
            if matches!(*type_, "Ready" | "ContainersReady") && *ok != all_ready {
                *ok = all_ready;
                *at = now;
            }
        }
        let status = PodStatus {
            phase: Some(self.phase().to_string()),
            conditions: Some(
                self.conditions
                    .iter()
                    .map(|(t, ok, at)| PodCondition {
                        type_: t.to_string(),
                        status: if *ok { "True" } else { "False" }.to_string(),
                        last_transition_time: Some(Time(*at)),
                        reason: (!*ok && matches!(*t, "Ready" | "ContainersReady"))
                            .then(|| "ContainersNotReady".to_string()),
                        ..PodCondition::default()
                    })
                    .collect(),
            ),
            container_statuses: Some(self.slots.iter().map(container_status).collect()),
            host_ip: Some(self.host_ip.clone()),
            host_ips: Some(vec![HostIP {
                ip: self.host_ip.clone(),
            }]),
            pod_ip: Some(self.host_ip.clone()),
            pod_ips: Some(vec![PodIP {
                ip: self.host_ip.clone(),
            }]),
            start_time: Some(Time(self.start_time)),
            qos_class: Some("BestEffort".to_string()),
            ..PodStatus::default()
        };
        self.publish(&status);
    }

    /// Upstream `getPhase`: every container finished for good is `Succeeded` when each
    /// exited 0, else `Failed`; otherwise `Pending` until each container ran once, then
    /// `Running`.
    fn phase(&self) -> &'static str {
        if !self.slots.is_empty() && self.slots.iter().all(|s| s.done) {
            let code = |s: &Slot| s.state.terminated.as_ref().map(|t| t.exit_code);
            return if self.slots.iter().all(|s| code(s) == Some(0)) {
                "Succeeded"
            } else {
                "Failed"
            };
        }
        if self.slots.iter().any(|s| !s.ever_ran) {
            "Pending"
        } else {
            "Running"
        }
    }

    /// Marks the pod Failed without running anything (the kubelet refused it), with the
    /// reason and a Warning Event.
    fn reject(&self, message: &str) {
        let now = Timestamp::now();
        let status = PodStatus {
            phase: Some("Failed".to_string()),
            reason: Some(INVALID_NAME_REASON.to_string()),
            message: Some(message.to_string()),
            conditions: Some(vec![PodCondition {
                type_: "PodScheduled".to_string(),
                status: "True".to_string(),
                last_transition_time: Some(Time(now)),
                ..PodCondition::default()
            }]),
            host_ip: Some(self.host_ip.clone()),
            start_time: Some(Time(self.start_time)),
            qos_class: Some("BestEffort".to_string()),
            ..PodStatus::default()
        };
        if !self.publish(&status) {
            return;
        }
        self.event("Warning", "Failed", &format!("Error: {message}"));
    }

    /// Writes `status` while the stored pod is still this worker's (not deleted and made
    /// again under the same name); says whether it wrote.
    fn publish(&self, status: &PodStatus) -> bool {
        if !self.still_ours() {
            return false;
        }
        write_status(
            &self.node.store,
            "pods",
            &self.ns,
            &self.name,
            to_value(status),
        );
        true
    }

    fn still_ours(&self) -> bool {
        self.node
            .store
            .get("pods", &self.ns, &self.name)
            .is_some_and(|p| p["metadata"]["uid"] == json!(self.pod.metadata.uid))
    }

    fn event(&self, type_: &str, reason: &str, message: &str) {
        events::record(
            &self.node.store,
            &to_value(&self.pod),
            type_,
            reason,
            message,
            "kubelet",
        );
    }

    /// Stops every container with `grace`; then, if the pod is being deleted, removes it.
    async fn stop(mut self, handles: Vec<Option<ContainerHandle>>, grace: Duration) {
        let deleting = self
            .node
            .store
            .get("pods", &self.ns, &self.name)
            .filter(|p| p["metadata"]["uid"] == json!(self.pod.metadata.uid))
            .is_some_and(|p| p["metadata"].get("deletionTimestamp").is_some());
        if deleting {
            for s in &self.slots {
                if s.pid.is_some() {
                    self.event(
                        "Normal",
                        "Killing",
                        &format!("Stopping container {}", s.container.name),
                    );
                }
            }
        }
        futures::future::join_all(handles.into_iter().flatten().map(|h| h.stop(grace))).await;
        for s in &mut self.slots {
            s.meter = None;
        }
        self.node.store.set_pod_metrics(&self.ns, &self.name, None);
        if deleting {
            // Still ours and still marked: finish the deletion.
            let _ = self.node.store.remove("pods", &self.ns, &self.name);
        }
    }
}

fn container_status(s: &Slot) -> ContainerStatus {
    let image_name = s.container.image.clone().unwrap_or_default();
    ContainerStatus {
        name: s.container.name.clone(),
        image: image_name.clone(),
        image_id: format!("resil-lab://{image_name}"),
        container_id: s.pid.map(|p| format!("resil://{p}")),
        ready: s.ready,
        started: Some(s.started),
        restart_count: s.restarts,
        state: Some(s.state.clone()),
        last_state: s.last.clone(),
        ..ContainerStatus::default()
    }
}

/// The container's `resources.limits.cpu` in thousandths of a core (an unparseable
/// quantity counts as no limit; the API server validates quantities on write).
fn cpu_limit(container: &Container) -> Option<i64> {
    let limits = container.resources.as_ref()?.limits.as_ref()?;
    milli_value(&limits.get("cpu")?.0)
}

fn waiting(reason: &str, message: Option<String>) -> ContainerState {
    ContainerState {
        waiting: Some(ContainerStateWaiting {
            reason: Some(reason.to_string()),
            message,
        }),
        ..ContainerState::default()
    }
}

fn terminated(exit: &ProcessExit, started_at: Option<Time>, pid: Option<i32>) -> ContainerState {
    ContainerState {
        terminated: Some(ContainerStateTerminated {
            exit_code: exit.exit_code(),
            signal: exit.signal,
            reason: Some(exit.reason().to_string()),
            started_at,
            finished_at: Some(time(exit.finished_at)),
            container_id: pid.map(|p| format!("resil://{p}")),
            message: None,
        }),
        ..ContainerState::default()
    }
}

fn time(t: DateTime<Utc>) -> Time {
    Time(Timestamp::from_millisecond(t.timestamp_millis()).unwrap_or(Timestamp::UNIX_EPOCH))
}
