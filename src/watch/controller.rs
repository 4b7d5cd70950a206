//! The watch controller: kube-rs watchers over the demo's pods, Endpoints, Service,
//! Deployments and HPAs feed a [`DemoState`]; after every change the [`FailoverPolicy`]
//! decides and the [`Recorder`] derives the figures. Decisions are acted on (Service
//! selector patch, standby scale-up), explained in the timeline, and emitted as Kubernetes
//! Events on the Service — by the watcher holding the [`lease`] only; a standby records
//! and keeps the time-based rules current, so it can act at once when it takes over.
//!
//! Event-driven, not polled: a change reaches the policy as soon as the API server streams
//! it. A short tick re-evaluates only the time-based rule (the fail-back stable window) and
//! keeps pod-seconds current. Reaches the cluster only through the `kube::Client` it is
//! given; never prints (updates go to the command layer over a channel).

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use kube::Client;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::watcher::{self, Event as WatchEvent};
use serde_json::json;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::failover::{Decision, FailoverPolicy, Observation, Policy};
use super::lease::{self, ElectionConfig, Leadership};
use super::recorder::Recorder;
use super::state::{DemoState, Watched};
use super::streams::{self, Change};
use crate::cluster::events::{self, Involved, Severity};
use crate::domain::Color;
use crate::results::summary::{Failover, WatchSummary};
use crate::results::timeline::{Event, EventKind, TimelineWriter};
use crate::results::{RunDir, now_ms};

/// The field manager resil's watcher writes with.
const MANAGER: &str = "resil-watch";
/// How often the time-based rule (fail-back window) is re-evaluated.
const TICK: Duration = Duration::from_millis(200);
/// How often summary.json is rewritten while running (an interrupted run keeps it).
const SUMMARY_EVERY: Duration = Duration::from_secs(2);

/// A duration rounded up to whole seconds, for messages.
fn round_s(d: Duration) -> Duration {
    Duration::from_secs(d.as_secs() + u64::from(d.subsec_nanos() > 0))
}

/// Patch parameters naming resil's watcher as the field manager.
fn manager() -> PatchParams {
    PatchParams {
        field_manager: Some(MANAGER.to_string()),
        ..PatchParams::default()
    }
}

/// What the watcher does, resolved from the command line or a scenario.
#[derive(Debug, Clone)]
pub struct WatchPlan {
    pub namespace: String,
    /// The Service whose selector picks the active colour.
    pub service: String,
    pub policy: Policy,
    /// Record and explain, but never change the cluster.
    pub observe_only: bool,
    /// Stop after the first completed failover.
    pub once: bool,
    /// Stop after this long.
    pub timeout: Option<Duration>,
}

/// What the command layer hears while the watcher runs.
#[derive(Debug, Clone)]
pub enum Update {
    /// The current picture, after any change.
    Snapshot(Snapshot),
    /// A decision other than "stay", explained.
    Decision { rule: String, action: String },
    /// A failover or fail-back completed.
    Failover(Failover),
    /// Something the user must know (no healthy colour, an action that failed).
    Warning(String),
}

/// The live view's content.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub selected: Option<Color>,
    pub ready: [(Color, u32); 2],
    /// Pods of each colour the Deployment asks for (0 before it is seen).
    pub desired: [(Color, u32); 2],
    pub serving: u32,
    /// (colour, current, desired, cpu %) per HPA.
    pub hpas: Vec<(Color, i32, i32, Option<i32>)>,
    pub last_failover: Option<Failover>,
}

/// Why the watcher stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// `--once` and a failover completed.
    FailoverCompleted,
    /// The timeout ran out.
    TimedOut,
    /// The caller cancelled (Ctrl-C, the scenario ended).
    Cancelled,
}

/// The outcome of a watch.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub ended: Ended,
    pub summary: WatchSummary,
}

/// Errors of the watcher.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// The API server stopped answering the watches.
    #[error("lost the watch on {what}")]
    Watch {
        what: &'static str,
        #[source]
        source: watcher::Error,
    },
    /// Writing the results directory failed.
    #[error("writing the results")]
    Results(#[from] crate::results::ResultsError),
}

/// The watcher's moving parts while it runs.
struct Watcher {
    client: Client,
    plan: WatchPlan,
    state: DemoState,
    policy: FailoverPolicy,
    recorder: Recorder,
    out: Option<(RunDir, TimelineWriter)>,
    updates: mpsc::UnboundedSender<Update>,
    /// A standby scale-up under way: colour, target, when it started.
    preparing: Option<(Color, u32, DateTime<Utc>)>,
    /// Observe-only: the switch last recorded as one it would make (direction, colour),
    /// so an unchanged one is not recorded again on every event until the decision changes.
    would_switch: Option<(&'static str, Color)>,
    /// Watch streams that failed and have not delivered since, and since when.
    streams_down: BTreeMap<&'static str, DateTime<Utc>>,
    /// The Lease this watcher competes for (`None`: it acts alone).
    election: Option<ElectionConfig>,
    /// This watcher holds the Lease (always true without an election).
    leading: bool,
}

/// The default Lease of watchers of `service` (one per Service, in its namespace).
pub fn lease_name(service: &str) -> String {
    format!("resil-watch-{service}")
}

/// Runs the watcher until `--once` completes, the timeout, or `shutdown`, taking part in
/// the default leader election ([`lease_name`], 15 s, this process's identity) unless the
/// plan only observes.
pub async fn run(
    client: Client,
    plan: WatchPlan,
    out: Option<RunDir>,
    updates: mpsc::UnboundedSender<Update>,
    shutdown: CancellationToken,
) -> Result<Outcome, WatchError> {
    let election = ElectionConfig::new(
        &lease_name(&plan.service),
        &lease::default_identity(),
        Duration::from_secs(15),
    );
    run_with(client, plan, Some(election), out, updates, shutdown).await
}

/// [`run`] with an explicit election (`None`: act without a Lease). A watcher that does
/// not hold the Lease records everything but changes nothing, and takes over when the
/// holder stops renewing; an observe-only plan never takes part.
pub async fn run_with(
    client: Client,
    plan: WatchPlan,
    election: Option<ElectionConfig>,
    out: Option<RunDir>,
    updates: mpsc::UnboundedSender<Update>,
    shutdown: CancellationToken,
) -> Result<Outcome, WatchError> {
    let election = election.filter(|_| !plan.observe_only);
    let out = match out {
        Some(dir) => {
            let timeline = dir.timeline()?;
            Some((dir, timeline))
        }
        None => None,
    };
    let mut watcher = Watcher {
        state: DemoState::new(&plan.service),
        policy: FailoverPolicy::new(plan.policy),
        recorder: Recorder::new(plan.policy.primary, plan.policy.ready_min, now_ms()),
        client: client.clone(),
        out,
        updates,
        preparing: None,
        would_switch: None,
        streams_down: BTreeMap::new(),
        leading: election.is_none(),
        election: election.clone(),
        plan,
    };
    // The election runs beside the watches and stops (releasing the Lease) with them.
    let lease_stop = shutdown.child_token();
    let (mut standing, lease_task) = match election {
        Some(config) => {
            let (tx, rx) = watch::channel(Leadership::Pending);
            let task = tokio::spawn(lease::run(
                client.clone(),
                watcher.plan.namespace.clone(),
                config,
                tx,
                lease_stop.clone(),
            ));
            (Some(rx), Some(task))
        }
        None => (None, None),
    };
    let slices = crate::cluster::endpoints::serves_slices(&client).await;
    let mut changes = streams::changes(&client, &watcher.plan, slices);
    let deadline = watcher
        .plan
        .timeout
        .map(|t| tokio::time::Instant::now() + t);
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut save = tokio::time::interval(SUMMARY_EVERY);
    let ended = loop {
        tokio::select! {
            // The caller is done with us: Ctrl-C or the scenario finished.
            () = shutdown.cancelled() => break Ended::Cancelled,
            // The timeout ran out (never fires without one).
            () = sleep_until(deadline) => break Ended::TimedOut,
            // A change from one of the watches: the main path.
            change = changes.next() => {
                let Some(change) = change else { break Ended::Cancelled };
                match change {
                    Ok(change) => {
                        watcher.stream_alive(change.watched())?;
                        watcher.apply(change)?;
                    }
                    // kube's watcher retries by itself (after a backoff); say so once per
                    // outage of each stream, not once per attempt.
                    Err(e) => watcher.stream_failed(e),
                }
                if watcher.step().await? && watcher.plan.once {
                    break Ended::FailoverCompleted;
                }
            }
            // Time passes: the fail-back window may have closed.
            _ = tick.tick() => {
                if watcher.step().await? && watcher.plan.once {
                    break Ended::FailoverCompleted;
                }
            }
            // The Lease changed hands, or could not be renewed: act, stand by, or stop.
            alive = standing_changed(&mut standing) => {
                match standing.as_ref().filter(|_| alive) {
                    Some(rx) => {
                        let now = rx.borrow().clone();
                        watcher.standing(&now).await?;
                    }
                    // The election ended (it only does when stopped): nothing more to hear.
                    None => standing = None,
                }
                if watcher.step().await? && watcher.plan.once {
                    break Ended::FailoverCompleted;
                }
            }
            // Keep summary.json current so an interrupted watch leaves its figures.
            _ = save.tick() => watcher.save_summary()?,
        }
    };
    lease_stop.cancel();
    if let Some(task) = lease_task {
        // The release inside has its own timeout; this bounds everything else.
        let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
    }
    watcher.save_summary()?;
    Ok(Outcome {
        ended,
        summary: watcher.recorder.summary(&watcher.state),
    })
}

/// Waits for the next change of standing; `false` when the election ended. Never returns
/// without an election.
async fn standing_changed(standing: &mut Option<watch::Receiver<Leadership>>) -> bool {
    match standing {
        Some(rx) => rx.changed().await.is_ok(),
        None => std::future::pending().await,
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

impl Watcher {
    fn apply(&mut self, change: Change) -> Result<(), WatchError> {
        let state = &mut self.state;
        let watched = change.watched();
        let name = |meta: &kube::core::ObjectMeta| meta.name.clone().unwrap_or_default();
        let events = match change {
            // A (re)list starts or ends: whatever it no longer holds went while the
            // stream was down (dropped, or expired with 410).
            Change::Pod(WatchEvent::Init)
            | Change::Service(WatchEvent::Init)
            | Change::Endpoints(WatchEvent::Init)
            | Change::EndpointSlice(WatchEvent::Init)
            | Change::Deployment(WatchEvent::Init)
            | Change::Hpa(WatchEvent::Init) => {
                state.relist_started(watched);
                Vec::new()
            }
            Change::Pod(WatchEvent::InitDone)
            | Change::Service(WatchEvent::InitDone)
            | Change::Endpoints(WatchEvent::InitDone)
            | Change::EndpointSlice(WatchEvent::InitDone)
            | Change::Deployment(WatchEvent::InitDone)
            | Change::Hpa(WatchEvent::InitDone) => state.relist_done(watched),
            Change::Pod(WatchEvent::Apply(p) | WatchEvent::InitApply(p)) => state.apply_pod(&p),
            Change::Pod(WatchEvent::Delete(p)) => state.delete_pod(&name(&p.metadata)),
            Change::Service(WatchEvent::Apply(s) | WatchEvent::InitApply(s)) => {
                state.apply_service(&s)
            }
            Change::Service(WatchEvent::Delete(s)) => state.delete_service(&name(&s.metadata)),
            Change::Endpoints(WatchEvent::Apply(e) | WatchEvent::InitApply(e)) => {
                state.apply_endpoints(&e)
            }
            Change::Endpoints(WatchEvent::Delete(e)) => state.delete_endpoints(&name(&e.metadata)),
            Change::EndpointSlice(WatchEvent::Apply(e) | WatchEvent::InitApply(e)) => {
                state.apply_endpoint_slice(&e)
            }
            Change::EndpointSlice(WatchEvent::Delete(e)) => {
                state.delete_endpoint_slice(&name(&e.metadata))
            }
            Change::Deployment(WatchEvent::Apply(d) | WatchEvent::InitApply(d)) => {
                state.apply_deployment(&d)
            }
            Change::Deployment(WatchEvent::Delete(d)) => state.delete_deployment(&d),
            Change::Hpa(WatchEvent::Apply(h) | WatchEvent::InitApply(h)) => state.apply_hpa(&h),
            Change::Hpa(WatchEvent::Delete(h)) => state.delete_hpa(&h),
        };
        self.record(events)?;
        let _ = self.updates.send(Update::Snapshot(self.snapshot()));
        Ok(())
    }

    fn snapshot(&self) -> Snapshot {
        Snapshot {
            selected: self.state.selected,
            ready: [Color::Blue, Color::Green].map(|c| (c, self.state.ready(c))),
            desired: [Color::Blue, Color::Green].map(|c| {
                let desired = self.state.deployments.get(&c).map_or(0, |d| d.desired);
                (c, u32::try_from(desired).unwrap_or(0))
            }),
            serving: self.state.endpoints_ready.values().sum(),
            hpas: self
                .state
                .hpas
                .iter()
                .map(|(c, h)| (*c, h.current, h.desired, h.cpu_utilization))
                .collect(),
            last_failover: self.recorder.failovers().last().cloned(),
        }
    }

    fn record(&mut self, kinds: Vec<EventKind>) -> Result<(), WatchError> {
        if let Some((_, timeline)) = &mut self.out {
            for kind in kinds {
                timeline.append(&Event::now("watch", kind))?;
            }
        }
        Ok(())
    }

    /// A watch stream failed (dropped, refused, or 410 Expired before its relist).
    fn stream_failed(&mut self, error: WatchError) {
        let WatchError::Watch { what, source } = &error else {
            return self.warn(format!("{:#}", anyhow::Error::from(error)));
        };
        // 410 Expired always gets its line: it says a relist follows.
        let expired = matches!(source, watcher::Error::WatchError(s) if s.code == 410);
        if self.streams_down.contains_key(what) && !expired {
            tracing::debug!("{:#}", anyhow::Error::from(error));
            return;
        }
        self.streams_down.entry(what).or_insert_with(now_ms);
        self.warn(format!(
            "{:#}; resuming (relisting if the server expired it)",
            anyhow::Error::from(error)
        ));
    }

    /// A watch stream delivered: if it had failed, note in the timeline how long it was down.
    fn stream_alive(&mut self, watched: Watched) -> Result<(), WatchError> {
        let Some(since) = self.streams_down.remove(watched.resource()) else {
            return Ok(());
        };
        let ms = (now_ms() - since).num_milliseconds().max(0);
        tracing::info!("the watch on {} resumed after {ms} ms", watched.resource());
        self.record(vec![EventKind::Note {
            message: format!("the watch on {} resumed after {ms} ms", watched.resource()),
        }])
    }

    /// Hands a warning to whoever shows the updates (`resil watch`, a run's progress, the
    /// dashboard), once: the log has it only at debug level, or it would print twice.
    fn warn(&self, message: String) {
        tracing::debug!("{message}");
        let _ = self.updates.send(Update::Warning(message));
    }

    fn save_summary(&self) -> Result<(), WatchError> {
        if let Some((dir, _)) = &self.out {
            let summary = self.recorder.summary(&self.state);
            dir.update_summary(|s| s.watch = Some(summary))?;
        }
        Ok(())
    }

    /// Lets the recorder and the policy see the current state; acts on the decision.
    /// Returns whether a failover (not a fail-back) completed.
    async fn step(&mut self) -> Result<bool, WatchError> {
        let completed = self.recorder.observe(&self.state, now_ms());
        let failover_done = completed
            .iter()
            .any(|e| matches!(e, EventKind::FailoverCompleted { .. }));
        self.record(completed)?;
        if let Some(last) = self.recorder.failovers().last().filter(|_| failover_done) {
            let _ = self.updates.send(Update::Failover(last.clone()));
        }
        let failover_done = failover_done
            && self
                .recorder
                .failovers()
                .last()
                .is_some_and(|f| f.direction == "failover");

        if !self.state.service_seen || !self.state.listed(Watched::Pods) {
            // No Service yet (not deployed, or the watch is still listing), or the pods
            // not listed yet: the streams arrive in any order, and a Service seen before
            // the pods would read as "no colour has a ready pod".
            return Ok(failover_done);
        }
        let observation = Observation {
            active: self.state.selected,
            ready_blue: self.state.ready(Color::Blue),
            ready_green: self.state.ready(Color::Green),
        };
        let now = tokio::time::Instant::now().into_std();
        if !self.plan.observe_only && !self.leading {
            // A standby keeps the time-based rules current but leaves acting to the holder.
            self.policy.track(&observation, now);
            return Ok(failover_done);
        }
        let decision = self.policy.decide(&observation, now);
        self.act(decision, &observation).await?;
        Ok(failover_done)
    }

    async fn act(&mut self, decision: Decision, seen: &Observation) -> Result<(), WatchError> {
        let inputs = json!({
            "active": seen.active.map(Color::as_str),
            "ready": {"blue": seen.ready_blue, "green": seen.ready_green},
            "ready_min": self.plan.policy.ready_min,
        });
        if !matches!(decision, Decision::Switch { .. }) {
            self.would_switch = None;
        }
        match decision {
            Decision::Stay => Ok(()),
            Decision::Alarm { reason } => {
                self.explain(inputs, "never-into-the-dark", "alarm", &reason)?;
                self.emit(Severity::Warning, "NoHealthyColor", &reason)
                    .await;
                self.warn(reason);
                Ok(())
            }
            Decision::Prepare {
                color,
                replicas,
                reason,
                ..
            } => {
                let action = format!("scale web-{color} to {replicas}", color = color.as_str());
                self.explain(inputs, "capacity-aware", &action, &reason)?;
                if !self.plan.observe_only {
                    self.prepare(color, replicas).await;
                }
                Ok(())
            }
            Decision::Switch {
                to,
                direction,
                reason,
            } => {
                if self.plan.observe_only {
                    let would = (direction.as_str(), to);
                    if self.would_switch.replace(would) == Some(would) {
                        return Ok(());
                    }
                }
                let action = format!("switch service/{} to {}", self.plan.service, to.as_str());
                self.explain(inputs, direction.as_str(), &action, &reason)?;
                if self.plan.observe_only {
                    return Ok(());
                }
                if let Some((_, _, started)) = self.preparing.filter(|(c, _, _)| *c == to) {
                    let ms = (now_ms() - started).num_milliseconds().max(0) as u64;
                    self.recorder.standby_prepared(to, ms);
                    self.preparing = None;
                }
                self.switch(to, direction.as_str(), &reason).await?;
                // Capacity-aware with the active colour dead: switched at once; now make
                // the standby as big as what it replaces.
                if let Some((color, want)) = self.policy.preparing().filter(|(c, _)| *c == to) {
                    self.prepare(color, want).await;
                }
                Ok(())
            }
        }
    }

    /// Reports a change of standing in the election and acts (or stops acting) on it.
    async fn standing(&mut self, now: &Leadership) -> Result<(), WatchError> {
        let Some(config) = self.election.clone() else {
            return Ok(());
        };
        let was_leading = std::mem::replace(&mut self.leading, now.leading());
        let lease = format!("{}/{}", self.plan.namespace, config.lease);
        let inputs = json!({"lease": lease, "identity": config.identity});
        match now {
            Leadership::Leading => {
                self.explain(
                    inputs,
                    "leader-election",
                    "act",
                    &format!("holding lease {lease} as {}", config.identity),
                )?;
                self.emit(
                    Severity::Normal,
                    "LeaderElected",
                    &format!("{} holds lease {lease} and acts", config.identity),
                )
                .await;
            }
            Leadership::Standby {
                holder,
                takes_over_after,
            } => self.explain(
                inputs,
                "leader-election",
                "stand by",
                &format!(
                    "lease {lease} is held by {holder}; {} records but does not act, and \
                     takes over if the lease goes unrenewed for {}",
                    config.identity,
                    humantime::format_duration(round_s(*takes_over_after))
                ),
            )?,
            Leadership::Unreachable { reason } => {
                let doing = if was_leading {
                    "stopped acting"
                } else {
                    "not acting"
                };
                self.explain(inputs, "leader-election", "stand by", reason)?;
                self.warn(format!(
                    "lease {lease} cannot be taken or renewed ({reason}): {doing} until it \
                     can (a watcher that must act alone can run with --no-lease)"
                ));
            }
            Leadership::Pending => {}
        }
        Ok(())
    }

    fn explain(
        &mut self,
        inputs: serde_json::Value,
        rule: &str,
        action: &str,
        reason: &str,
    ) -> Result<(), WatchError> {
        tracing::info!(rule, action, reason, "decision");
        let _ = self.updates.send(Update::Decision {
            rule: rule.to_string(),
            action: if self.plan.observe_only {
                format!("would {action} (observe-only): {reason}")
            } else {
                format!("{action}: {reason}")
            },
        });
        self.record(vec![EventKind::Decision {
            controller: "watch".to_string(),
            inputs,
            rule: rule.to_string(),
            action: action.to_string(),
        }])
    }

    async fn switch(&mut self, to: Color, direction: &str, reason: &str) -> Result<(), WatchError> {
        let api: Api<Service> = Api::namespaced(self.client.clone(), &self.plan.namespace);
        let patch = json!({"spec": {"selector": {"version": to.as_str()}}});
        let from = self.state.selected;
        match api
            .patch(&self.plan.service, &manager(), &Patch::Merge(&patch))
            .await
        {
            Ok(service) => {
                // Take the switch in at once (the watch echo follows) so the next decision
                // does not ask for it again.
                self.state.apply_service(&service);
                self.state.selected = Some(to);
                self.record(vec![EventKind::SelectorSwitched {
                    service: self.plan.service.clone(),
                    from: from.map(|c| c.as_str().to_string()),
                    to: to.as_str().to_string(),
                    reason: reason.to_string(),
                }])?;
                let kind = if direction == "failback" {
                    "Failback"
                } else {
                    "Failover"
                };
                self.emit(
                    Severity::Normal,
                    kind,
                    &format!("selector → {}: {reason}", to.as_str()),
                )
                .await;
            }
            Err(e) => self.warn(format!(
                "could not switch service/{} to {}: {e}",
                self.plan.service,
                to.as_str()
            )),
        }
        Ok(())
    }

    async fn prepare(&mut self, color: Color, replicas: u32) {
        let name = format!("web-{}", color.as_str());
        let desired = self.state.deployments.get(&color).map(|d| d.desired);
        if desired.is_some_and(|d| d >= replicas as i32) {
            return;
        }
        let api: Api<Deployment> = Api::namespaced(self.client.clone(), &self.plan.namespace);
        let patch = json!({"spec": {"replicas": replicas}});
        match api.patch(&name, &manager(), &Patch::Merge(&patch)).await {
            Ok(_) => {
                self.preparing = Some((color, replicas, now_ms()));
                self.emit(
                    Severity::Normal,
                    "PrepareStandby",
                    &format!("scaled {name} to {replicas} before moving traffic to it"),
                )
                .await;
            }
            Err(e) => self.warn(format!("could not scale {name} to {replicas}: {e}")),
        }
    }

    /// Emits a Kubernetes Event on the Service so `kubectl get events` tells the story.
    async fn emit(&self, severity: Severity, reason: &str, message: &str) {
        let involved = Involved {
            api_version: "v1",
            kind: "Service",
            name: &self.plan.service,
        };
        events::emit(
            &self.client,
            &self.plan.namespace,
            involved,
            severity,
            reason,
            message,
            MANAGER,
        )
        .await;
    }
}
