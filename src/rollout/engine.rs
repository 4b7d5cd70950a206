//! The rollout's loop: each step (canary shares, then the Deployment itself) applied,
//! waited for like `kubectl rollout status`, held and judged interval by interval on the
//! load's one-second buckets; on a breach, the rollback (`kubectl rollout undo`'s copy of
//! the previous ReplicaSet's template, and the canary deleted), waited for too. Every
//! ReplicaSet's replicas are recorded as they change (polled every [`POLL`]), with each
//! step, interval and the rollback, into the results directory's timeline.
//!
//! Engines don't print: it reports [`Update`]s over a channel; the decisions are
//! `decide.rs`'s and `analysis.rs`'s, the API calls `src/cluster/release.rs`'s.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, bail};
use chrono::Utc;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use tokio::sync::{broadcast, mpsc::UnboundedSender};

use super::analysis::{Analyst, Bucket, IntervalVerdict};
use super::decide::{self, Status};
use super::plan::{RolloutPlan, canary_object};
use crate::cluster::release::{Releases, TRACK_LABEL};
use crate::results::timeline::{Event, EventKind, TimelineWriter};

/// How often the Deployment and its ReplicaSets are read while a step runs.
pub const POLL: Duration = Duration::from_millis(200);

/// What the rollout is doing, for the command layer (or the scenario runner) to show.
#[derive(Debug, Clone, PartialEq)]
pub enum Update {
    /// A step began.
    Step {
        step: String,
        weight: u32,
        detail: String,
    },
    /// What the step waits for, when it changes.
    Waiting(String),
    /// One analysis interval judged.
    Interval(IntervalVerdict),
    /// A breach: rolling back.
    RollingBack {
        interval: u32,
        reason: String,
        to_revision: Option<i64>,
    },
    /// How it ended.
    Finished(Outcome),
}

impl std::fmt::Display for Update {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Update::Step {
                step,
                weight,
                detail,
            } => write!(f, "{step} ({weight}%): {detail}"),
            Update::Waiting(what) => write!(f, "waiting: {what}"),
            Update::Interval(v) if !v.judged => {
                write!(
                    f,
                    "interval {}: no requests answered, nothing judged",
                    v.number
                )
            }
            Update::Interval(v) => write!(
                f,
                "interval {}: {} requests, {} errors, p99 {:.1}ms: {}",
                v.number,
                v.requests,
                v.errors,
                v.p99_us as f64 / 1000.0,
                if v.passed() {
                    "pass".to_string()
                } else {
                    format!("BREACH ({})", v.reason())
                }
            ),
            Update::RollingBack {
                interval,
                reason,
                to_revision,
            } => write!(
                f,
                "interval {interval} breached ({reason}): rolling back{}",
                to_revision
                    .map(|r| format!(" to revision {r}"))
                    .unwrap_or_default()
            ),
            Update::Finished(outcome) => write!(f, "{outcome}"),
        }
    }
}

/// How a rollout ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The new release is out everywhere; the Deployment's revision.
    Complete { revision: i64 },
    /// A breach rolled it back; the Deployment's revision afterwards.
    RolledBack {
        interval: u32,
        reason: String,
        /// The revision whose template was written back (`None`: only canary pods went).
        to_revision: Option<i64>,
        /// The Deployment's revision afterwards (a rollback is a new revision).
        revision: i64,
        rollback_ms: u64,
    },
    /// The Deployment already ran this release.
    Unchanged,
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Complete { revision } => write!(f, "rolled out: revision {revision}"),
            Outcome::RolledBack {
                interval,
                reason,
                to_revision,
                revision,
                rollback_ms,
            } => {
                match to_revision {
                    Some(to) => {
                        write!(f, "rolled back to revision {to} (now revision {revision})")?
                    }
                    None => write!(f, "rolled back: canary pods removed (revision {revision})")?,
                }
                write!(
                    f,
                    " in {:.1}s after interval {interval} breached: {reason}",
                    *rollback_ms as f64 / 1000.0
                )
            }
            Outcome::Unchanged => write!(
                f,
                "the deployment already runs this release: nothing rolled"
            ),
        }
    }
}

/// How a held step ended.
enum Held {
    Done,
    Breach(IntervalVerdict),
}

/// One rollout, from its plan to its [`Outcome`].
pub struct Engine {
    releases: Releases,
    plan: RolloutPlan,
    /// The load's events; one-second buckets feed the analysis.
    buckets: Option<broadcast::Receiver<Event>>,
    timeline: Option<TimelineWriter>,
    updates: UnboundedSender<Update>,
    analyst: Option<Analyst>,
    /// Each ReplicaSet's last recorded (desired, ready, available).
    seen: BTreeMap<String, (i32, i32, i32)>,
    /// The `app=web,version=<colour>` selector of the colour's ReplicaSets.
    selector: String,
}

impl Engine {
    /// An engine for `plan`, reading load buckets from `buckets` and recording into
    /// `timeline`.
    pub fn new(
        releases: Releases,
        plan: RolloutPlan,
        buckets: broadcast::Receiver<Event>,
        timeline: Option<TimelineWriter>,
        updates: UnboundedSender<Update>,
    ) -> Engine {
        let analyst = plan.analysis.clone().map(|a| Analyst::new(a, Utc::now()));
        let selector = format!("app=web,version={}", plan.color);
        Engine {
            releases,
            plan,
            buckets: Some(buckets),
            timeline,
            updates,
            analyst,
            seen: BTreeMap::new(),
            selector,
        }
    }

    /// Runs the rollout to its end: complete, rolled back, or an error (a missing
    /// Deployment, an exceeded progress deadline, a step that outlived --timeout).
    pub async fn run(mut self) -> anyhow::Result<Outcome> {
        let name = self.plan.deployment();
        let main = self.releases.deployment(&name).await?.with_context(|| {
            format!("deployment {name} not found: deploy the demo first (`resil deploy`)")
        })?;
        let original = main.spec.template.clone();
        let mut template = original.clone();
        if !self.plan.change.apply(&mut template) {
            self.send(Update::Finished(Outcome::Unchanged));
            return Ok(Outcome::Unchanged);
        }
        let stable = main.spec.replicas.unwrap_or(1);
        for percent in self.plan.canary.clone().unwrap_or_default() {
            if percent >= 100 {
                break;
            }
            let replicas = decide::canary_replicas(stable, percent);
            let weight = decide::canary_share(stable, replicas);
            let detail = format!(
                "{replicas} canary pod(s) of {} beside {stable} stable",
                self.plan.change.describe()
            );
            self.step("canary", weight, detail);
            let canary = canary_object(&main, &self.plan.change, replicas);
            self.releases.apply(&canary).await?;
            if let Held::Breach(v) = self
                .hold(&self.plan.canary_deployment(), self.plan.pause)
                .await?
            {
                return self.roll_back(&v, None).await;
            }
        }
        let step = if self.plan.canary.is_some() {
            "promote"
        } else {
            "update"
        };
        self.step(
            step,
            100,
            format!("{name} to {}", self.plan.change.describe()),
        );
        let cause = format!("resil rollout: {}", self.plan.change.describe());
        let (surge, unavailable) = (
            self.plan.max_surge.clone(),
            self.plan.max_unavailable.clone(),
        );
        self.releases
            .set_template(
                &name,
                &template,
                surge.as_ref(),
                unavailable.as_ref(),
                &cause,
            )
            .await?;
        if let Held::Breach(v) = self.hold(&name, Duration::ZERO).await? {
            return self.roll_back(&v, Some(&original)).await;
        }
        self.drop_canary().await?;
        let revision = self.revision(&name).await?;
        self.finish("complete", revision, String::new());
        let outcome = Outcome::Complete { revision };
        self.send(Update::Finished(outcome.clone()));
        Ok(outcome)
    }

    /// Waits for `deployment` to roll out, then holds it `pause` (and at least one whole
    /// analysis interval), judging every interval that ends meanwhile.
    async fn hold(&mut self, deployment: &str, pause: Duration) -> anyhow::Result<Held> {
        let deadline = tokio::time::Instant::now() + self.plan.timeout;
        let (mut ready_at, mut since_ready, mut waiting) = (None, 0u32, String::new());
        loop {
            self.next_bucket_or_poll().await;
            let now = Utc::now();
            if let Some(v) = self.analyst.as_mut().and_then(|a| a.tick(now)) {
                self.interval(&v);
                if !v.passed() {
                    return Ok(Held::Breach(v));
                }
                // Only an interval with requests, all of them sent once the step's pods
                // were ready, says anything about the step.
                since_ready += u32::from(v.judged && ready_at.is_some_and(|r| v.from >= r));
            }
            self.record_replica_sets().await?;
            let d = self.releases.deployment(deployment).await?;
            let d =
                d.with_context(|| format!("deployment {deployment} disappeared mid-rollout"))?;
            match decide::rollout_status(&d) {
                Status::Complete => {
                    ready_at.get_or_insert(now);
                }
                Status::Waiting(what) if what != waiting => {
                    self.send(Update::Waiting(format!("{deployment}: {what}")));
                    waiting = what;
                }
                Status::Waiting(_) => {}
                Status::Failed(why) => {
                    bail!("{why}; see `kubectl describe deployment {deployment}`")
                }
            }
            let analysed = self.analyst.is_some();
            if decide::step_done(ready_at, pause, since_ready, analysed, now) {
                return Ok(Held::Done);
            }
            if tokio::time::Instant::now() >= deadline {
                bail!(
                    "{deployment} did not roll out within {} ({waiting}); raise --timeout",
                    humantime::format_duration(self.plan.timeout)
                );
            }
        }
    }

    /// Waits for the next load bucket (fed to the analysis) or [`POLL`], whichever first.
    async fn next_bucket_or_poll(&mut self) {
        let Some(rx) = self.buckets.as_mut() else {
            tokio::time::sleep(POLL).await;
            return;
        };
        tokio::select! {
            got = rx.recv() => match got {
                Ok(event) => {
                    if let (Some(a), Some(b)) = (self.analyst.as_mut(), Bucket::of(&event)) {
                        a.add(b);
                    }
                }
                // Fell behind: the missed buckets are lost to this interval only.
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                // The load is over: poll from now on.
                Err(broadcast::error::RecvError::Closed) => self.buckets = None,
            },
            () = tokio::time::sleep(POLL) => {}
        }
    }

    /// Rolls back after the breach `v`: the Deployment to its previous revision (when its
    /// template was changed: `original` is what it ran before), the canary deleted; waits
    /// for both.
    async fn roll_back(
        &mut self,
        v: &IntervalVerdict,
        original: Option<&PodTemplateSpec>,
    ) -> anyhow::Result<Outcome> {
        let started = tokio::time::Instant::now();
        let name = self.plan.deployment();
        let target = match original {
            Some(original) => Some(self.undo_target(&name, original).await?),
            None => None,
        };
        let to_revision = target.as_ref().and_then(|(_, r)| *r);
        let reason = v.reason();
        self.send(Update::RollingBack {
            interval: v.number,
            reason: reason.clone(),
            to_revision,
        });
        self.record(EventKind::RollbackStarted {
            deployment: name.clone(),
            interval: v.number,
            reason: reason.clone(),
            breached_at: v.breached_at,
            detected_at: v.to,
            to_revision,
        });
        if let Some((template, revision)) = &target {
            let cause = match revision {
                Some(r) => format!("resil rollout: rolled back to revision {r} ({reason})"),
                None => format!("resil rollout: rolled back ({reason})"),
            };
            self.releases
                .set_template(&name, template, None, None, &cause)
                .await?;
        }
        self.drop_canary().await?;
        if target.is_some() {
            // The analysis has said its word: the rollback is waited for, not judged.
            self.analyst = None;
            self.hold(&name, Duration::ZERO).await?;
        }
        let revision = self.revision(&name).await?;
        let rollback_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.finish("rolled_back", revision, reason.clone());
        let outcome = Outcome::RolledBack {
            interval: v.number,
            reason,
            to_revision,
            revision,
            rollback_ms,
        };
        self.send(Update::Finished(outcome.clone()));
        Ok(outcome)
    }

    /// What `kubectl rollout undo` writes back: the template of the ReplicaSet with the
    /// highest revision below the current one (without its `pod-template-hash`), and that
    /// revision; `original` when no earlier ReplicaSet is left.
    async fn undo_target(
        &self,
        name: &str,
        original: &PodTemplateSpec,
    ) -> anyhow::Result<(PodTemplateSpec, Option<i64>)> {
        let Some(d) = self.releases.deployment(name).await? else {
            bail!("deployment {name} disappeared mid-rollout");
        };
        let current = decide::revision(d.metadata.annotations.as_ref());
        let owned = self.releases.owned_by(&d).await?;
        Ok(match decide::previous_replica_set(current, &owned) {
            Some(rs) => (
                template_of(rs),
                Some(decide::revision(rs.metadata.annotations.as_ref())),
            ),
            None => (original.clone(), None),
        })
    }

    /// Deletes the canary Deployment (when there is one) and waits until its pods are gone.
    async fn drop_canary(&mut self) -> anyhow::Result<()> {
        if self.plan.canary.is_none() {
            return Ok(());
        }
        let name = self.plan.canary_deployment();
        self.releases.delete(&name).await?;
        let selector = format!("{},{TRACK_LABEL}=canary", self.selector);
        let deadline = tokio::time::Instant::now() + self.plan.timeout;
        while self.releases.count_pods(&selector).await? > 0 {
            self.record_replica_sets().await?;
            if tokio::time::Instant::now() >= deadline {
                bail!(
                    "the pods of {name} were not gone within {:?}",
                    self.plan.timeout
                );
            }
            tokio::time::sleep(POLL).await;
        }
        self.record_replica_sets().await
    }

    /// Records every ReplicaSet of the colour whose replicas changed since last seen.
    async fn record_replica_sets(&mut self) -> anyhow::Result<()> {
        let sets = self.releases.replica_sets(&self.selector).await?;
        for rs in &sets {
            let name = rs.metadata.name.clone().unwrap_or_default();
            let status = rs.status.clone().unwrap_or_default();
            let desired = rs.spec.replicas.unwrap_or(0);
            let counts = (
                desired,
                status.ready_replicas.unwrap_or(0),
                status.available_replicas.unwrap_or(0),
            );
            if self.seen.get(&name) == Some(&counts) {
                continue;
            }
            self.seen.insert(name.clone(), counts);
            let deployment = rs
                .metadata
                .owner_references
                .iter()
                .flatten()
                .find(|o| o.controller == Some(true))
                .map(|o| o.name.clone())
                .unwrap_or_default();
            self.record(EventKind::ReplicaSetReplicas {
                deployment,
                replica_set: name,
                revision: decide::revision(rs.metadata.annotations.as_ref()),
                desired: counts.0,
                ready: counts.1,
                available: counts.2,
            });
        }
        Ok(())
    }

    async fn revision(&self, name: &str) -> anyhow::Result<i64> {
        let d: Option<Deployment> = self.releases.deployment(name).await?;
        Ok(d.map_or(0, |d| decide::revision(d.metadata.annotations.as_ref())))
    }

    fn step(&mut self, step: &str, weight: u32, detail: String) {
        self.send(Update::Step {
            step: step.into(),
            weight,
            detail: detail.clone(),
        });
        self.record(EventKind::RolloutStep {
            deployment: self.plan.deployment(),
            step: step.into(),
            weight_percent: weight,
            detail,
        });
    }

    fn interval(&mut self, v: &IntervalVerdict) {
        self.send(Update::Interval(v.clone()));
        self.record(EventKind::AnalysisInterval {
            deployment: self.plan.deployment(),
            interval: v.number,
            from: v.from,
            requests: v.requests,
            errors: v.errors,
            p99_us: v.p99_us,
            passed: v.passed(),
            reason: v.reason(),
        });
    }

    fn finish(&mut self, outcome: &str, revision: i64, detail: String) {
        self.record(EventKind::RolloutFinished {
            deployment: self.plan.deployment(),
            outcome: outcome.into(),
            revision: Some(revision),
            detail,
        });
    }

    fn send(&self, update: Update) {
        let _ = self.updates.send(update);
    }

    fn record(&mut self, kind: EventKind) {
        if let Some(t) = self.timeline.as_mut()
            && let Err(e) = t.append(&Event::now("rollout", kind))
        {
            tracing::warn!("recording the rollout: {e}");
        }
    }
}

/// A ReplicaSet's pod template without the `pod-template-hash` label its Deployment added
/// (what `kubectl rollout undo` writes back).
fn template_of(rs: &ReplicaSet) -> PodTemplateSpec {
    let mut template = rs.spec.template.clone().unwrap_or_default();
    if let Some(labels) = template.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
        labels.remove("pod-template-hash");
    }
    template
}
