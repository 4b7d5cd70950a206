//! The watch controller: kube-rs watchers over the demo's pods, Endpoints, Service,
//! Deployments and HPAs feed a [`DemoState`]; after every change the [`FailoverPolicy`]
//! decides and the [`Recorder`] derives the figures. Decisions are acted on (Service
//! selector patch, standby scale-up), explained in the timeline, and emitted as Kubernetes
//! Events on the Service.
//!
//! Event-driven, not polled: a change reaches the policy as soon as the API server streams
//! it. A short tick re-evaluates only the time-based rule (the fail-back stable window) and
//! keeps pod-seconds current. Reaches the cluster only through the `kube::Client` it is
//! given; never prints (updates go to the command layer over a channel).

use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::{Stream, StreamExt, stream::BoxStream};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{Endpoints, Pod, Service};
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::watcher::{self, Event as WatchEvent};
use kube::{Client, Resource};
use serde::de::DeserializeOwned;
use serde_json::json;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::failover::{Decision, FailoverPolicy, Observation, Policy};
use super::recorder::Recorder;
use super::state::DemoState;
use crate::cli::Color;
use crate::cluster::events::{self, Involved, Severity};
use crate::results::summary::{Failover, WatchSummary};
use crate::results::timeline::{Event, EventKind, TimelineWriter};
use crate::results::{RunDir, now_ms};

/// The field manager resil's watcher writes with.
const MANAGER: &str = "resil-watch";
/// How often the time-based rule (fail-back window) is re-evaluated.
const TICK: Duration = Duration::from_millis(200);
/// How often summary.json is rewritten while running (an interrupted run keeps it).
const SUMMARY_EVERY: Duration = Duration::from_secs(2);

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

/// One change from any of the watches.
enum Change {
    Pod(WatchEvent<Pod>),
    Service(WatchEvent<Service>),
    Endpoints(WatchEvent<Endpoints>),
    Deployment(WatchEvent<Deployment>),
    Hpa(WatchEvent<HorizontalPodAutoscaler>),
}

type Changes = BoxStream<'static, Result<Change, WatchError>>;

fn watch<K>(
    api: Api<K>,
    config: watcher::Config,
    what: &'static str,
    wrap: fn(WatchEvent<K>) -> Change,
) -> impl Stream<Item = Result<Change, WatchError>>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    watcher::watcher(api, config).map(move |event| {
        event
            .map(wrap)
            .map_err(|source| WatchError::Watch { what, source })
    })
}

fn changes(client: &Client, plan: &WatchPlan) -> Changes {
    let ns = plan.namespace.as_str();
    let by_name = || watcher::Config::default().fields(&format!("metadata.name={}", plan.service));
    let app = watcher::Config::default().labels("app=web");
    futures::stream::select_all([
        watch(
            Api::namespaced(client.clone(), ns),
            app.clone(),
            "pods",
            Change::Pod,
        )
        .boxed(),
        watch(
            Api::namespaced(client.clone(), ns),
            by_name(),
            "services",
            Change::Service,
        )
        .boxed(),
        watch(
            Api::namespaced(client.clone(), ns),
            by_name(),
            "endpoints",
            Change::Endpoints,
        )
        .boxed(),
        watch(
            Api::namespaced(client.clone(), ns),
            app,
            "deployments",
            Change::Deployment,
        )
        .boxed(),
        watch(
            Api::namespaced(client.clone(), ns),
            watcher::Config::default(),
            "horizontalpodautoscalers",
            Change::Hpa,
        )
        .boxed(),
    ])
    .boxed()
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
}

/// Runs the watcher until `--once` completes, the timeout, or `shutdown`.
pub async fn run(
    client: Client,
    plan: WatchPlan,
    out: Option<RunDir>,
    updates: mpsc::UnboundedSender<Update>,
    shutdown: CancellationToken,
) -> Result<Outcome, WatchError> {
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
        plan,
    };
    let mut changes = changes(&client, &watcher.plan);
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
                    Ok(change) => watcher.apply(change)?,
                    // The watcher retries by itself; a failed attempt is worth a warning.
                    Err(e) => watcher.warn(format!("{:#}", anyhow::Error::from(e))),
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
            // Keep summary.json current so an interrupted watch leaves its figures.
            _ = save.tick() => watcher.save_summary()?,
        }
    };
    watcher.save_summary()?;
    Ok(Outcome {
        ended,
        summary: watcher.recorder.summary(&watcher.state),
    })
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
        let events = match change {
            Change::Pod(WatchEvent::Apply(p) | WatchEvent::InitApply(p)) => state.apply_pod(&p),
            Change::Pod(WatchEvent::Delete(p)) => {
                state.delete_pod(p.metadata.name.as_deref().unwrap_or_default())
            }
            Change::Pod(WatchEvent::Init) => {
                state.pods_relist_started();
                Vec::new()
            }
            Change::Pod(WatchEvent::InitDone) => state.pods_relist_done(),
            Change::Service(WatchEvent::Apply(s) | WatchEvent::InitApply(s)) => {
                state.apply_service(&s)
            }
            Change::Endpoints(WatchEvent::Apply(e) | WatchEvent::InitApply(e)) => {
                state.apply_endpoints(&e)
            }
            Change::Endpoints(WatchEvent::Delete(e)) => {
                state.delete_endpoints(e.metadata.name.as_deref().unwrap_or_default())
            }
            Change::Deployment(WatchEvent::Apply(d) | WatchEvent::InitApply(d)) => {
                state.apply_deployment(&d)
            }
            Change::Hpa(WatchEvent::Apply(h) | WatchEvent::InitApply(h)) => state.apply_hpa(&h),
            _ => Vec::new(),
        };
        self.record(events)?;
        let _ = self.updates.send(Update::Snapshot(self.snapshot()));
        Ok(())
    }

    fn snapshot(&self) -> Snapshot {
        Snapshot {
            selected: self.state.selected,
            ready: [Color::Blue, Color::Green].map(|c| (c, self.state.ready(c))),
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

    fn warn(&self, message: String) {
        tracing::warn!("{message}");
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

        if !self.state.service_seen {
            // No Service yet (not deployed, or the watch is still listing).
            return Ok(failover_done);
        }
        let observation = Observation {
            active: self.state.selected,
            ready_blue: self.state.ready(Color::Blue),
            ready_green: self.state.ready(Color::Green),
        };
        let decision = self
            .policy
            .decide(&observation, tokio::time::Instant::now().into_std());
        self.act(decision, &observation).await?;
        Ok(failover_done)
    }

    async fn act(&mut self, decision: Decision, seen: &Observation) -> Result<(), WatchError> {
        let inputs = json!({
            "active": seen.active.map(Color::as_str),
            "ready": {"blue": seen.ready_blue, "green": seen.ready_green},
            "ready_min": self.plan.policy.ready_min,
        });
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
