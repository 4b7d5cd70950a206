//! The scenario runner: one process, one clock. Deploys, then runs the watcher, the load
//! and the timed chaos steps concurrently, reverts every fault it injected (also on
//! Ctrl-C and on an abort rule), and leaves a complete results directory behind.
//!
//! It drives the same engines the commands use — `watch::controller`, `load::run`,
//! `chaos::injector`, and across regions `gateway` and `replicate` — so a scenario
//! measures exactly what the commands measure. A [`Runner`] goes through named phases
//! (start the gateway and replicator of a multi-region run, start the autoscaler, start
//! the watch, start the load, the timed steps, teardown) and reports what happens as [`Progress`] over a
//! channel; it prints nothing. Called by `run::command`, which prints the progress
//! (`run::progress`), renders the report and turns the SLO verdict into the exit code.

mod steps;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use tokio::sync::mpsc::{self, UnboundedSender};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::fail_fast::FailFast;
use super::scenario::{Scenario, WaitEvent, WatchMode};
use crate::autoscale::{AutoscalePlan, Report as AutoscaleReport};
use crate::chaos::execute::Scope;
use crate::chaos::injector::Injector;
use crate::chaos::journal::{self, Entry, Journal};
use crate::cluster::{Target, error_chain};
use crate::domain::Color;
use crate::load::{LoadError, LoadPlan, LoadReport};
use crate::results::timeline::{Event, EventKind, TimelineWriter};
use crate::results::{RunDir, RunMeta, RunStatus};
use crate::watch::controller::{self as watcher, Outcome, Update, WatchError, WatchPlan};
use crate::watch::failover::Policy;
use crate::watch::{eject, outliers};
pub(crate) use steps::{Injectors, Seen};

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    Complete,
    Interrupted,
    Aborted(String),
    /// A step could not inject its fault: the run did not measure what it claims.
    StepFailed(String),
}

/// The resolved engines a run drives beside the watcher.
#[derive(Debug)]
pub struct Engines {
    pub load: LoadPlan,
    /// The predictive autoscaler (reading the load's buckets in the run directory).
    pub autoscale: Option<AutoscalePlan>,
    /// `--fail-fast`: stop at the first SLO breach that is decided while the run runs.
    pub fail_fast: bool,
    /// A multi-region run: the gateway and the replication across the regions, and each
    /// region's cluster (where its steps inject faults).
    pub regions: Option<RegionRun>,
}

/// What a multi-region run works across.
#[derive(Debug)]
pub struct RegionRun {
    pub plan: super::regions::Plan,
    /// Each region's name and cluster, in the scenario's order.
    pub targets: Vec<(String, Target)>,
}

/// What a run reports while it runs, in the order it happens; the command layer prints
/// each as one line on stderr (`run::progress`).
#[derive(Debug)]
pub enum Progress {
    /// A watcher update: a snapshot, decision, warning or completed failover.
    Watch(Update),
    /// Step `step` (1-based, in time order) injected its fault, journaled as `id`; `open`
    /// while it stays in place until reverted (a pod kill is done at once).
    Injected {
        step: usize,
        detail: String,
        id: String,
        open: bool,
    },
    /// A timed fault was reverted when its duration ran out.
    TimedReverted { id: String },
    /// A `wait-for` step saw no such event within its timeout; the steps go on.
    WaitTimedOut { event: WaitEvent, timeout: Duration },
    /// A step could not inject its fault; the run stops.
    StepFailed(String),
    /// An abort rule or a decided SLO breach stops the load; teardown reverts.
    Stopping(String),
    /// The predictive autoscaler's rounds.
    Autoscale(AutoscaleReport),
    /// Teardown: the autoscaler put minReplicas back to this value.
    AutoscaleRestored(i32),
    /// Teardown: the autoscaler failed, and minReplicas may still be raised.
    AutoscaleFailed(anyhow::Error),
    /// A background task ended with an error (`task` names it, e.g. `watcher`).
    TaskFailed { task: &'static str, error: String },
    /// A `rollout` step's progress: a step, an analysis interval, a rollback, the outcome.
    Rollout(String),
    /// A timed fault could not be reverted when its duration ran out.
    TimedRevertFailed { id: String, error: anyhow::Error },
    /// Teardown reverted a fault still open.
    Reverted { action: String, id: String },
    /// Teardown could not revert a fault; `resil chaos revert` can.
    RevertFailed {
        action: String,
        id: String,
        error: anyhow::Error,
    },
    /// Teardown could not read the chaos journal, so reverted nothing.
    JournalUnreadable(String),
    /// A multi-region run: the regions, the front door and the replication it started.
    Regions(String),
    /// A decision of the gateway, with its rule.
    Gateway(String),
    /// Teardown: what the replicator copied, in all.
    Replicated(String),
}

/// Runs `scenario` against `target`, writing into `dir` and reporting to `progress`.
pub async fn run(
    scenario: &Scenario,
    target: &Target,
    dir: &RunDir,
    engines: Engines,
    seed: u64,
    interrupt: CancellationToken,
    progress: UnboundedSender<Progress>,
) -> anyhow::Result<Ending> {
    let Engines {
        load,
        autoscale,
        fail_fast,
        regions,
    } = engines;
    let mut meta = RunMeta::start(
        dir.path()
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        "run",
    );
    meta.context = Some(target.context.clone());
    meta.target_url = Some(load.url.clone());
    meta.scenario = Some(serde_json::to_value(scenario)?);
    meta.slos = scenario.slos.clone();
    meta.window_slos = scenario.window_slos.clone();
    dir.write_meta(&meta)?;

    let runner = Runner::new(scenario, target, dir, fail_fast, interrupt, progress);
    // Checked before anything starts, so a bad rule leaves nothing running.
    let abort_rules = scenario
        .abort
        .iter()
        .map(|r| AbortRule::parse(r))
        .collect::<Result<Vec<_>, _>>()?;
    let timeline = dir.timeline()?;
    // The predictive autoscaler first: it journals the HPA's minReplicas before anything
    // else starts, and a failure to start leaves nothing running.
    let across = match &regions {
        Some(r) => Some(runner.start_regions(&r.plan).await?),
        None => None,
    };
    let autoscaler = match runner.start_autoscaler(autoscale).await {
        Ok(a) => a,
        Err(e) => {
            if let Some(engines) = across {
                let _ = engines.stop(dir).await;
            }
            return Err(e);
        }
    };
    let watch = runner.start_watch();
    let load = runner.start_load(load, abort_rules, timeline);
    let injector = runner.injectors(regions.as_ref());
    // Every fault a step injects lands here at once, so an abort, Ctrl-C or the end of
    // the load — which drop the steps mid-way — still know what to revert.
    let injected = Mutex::new(Vec::<Entry>::new());
    let (step_failed, load) = runner.timed_steps(seed, &injector, &injected, load).await;
    let injected = injected
        .into_inner()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let torn_down = runner
        .teardown(load, watch, autoscaler, &injector, &injected)
        .await;
    // The gateway and the replicator stop whether teardown succeeded or not.
    if let Some(engines) = across {
        match engines.stop(dir).await {
            Ok(Some(r)) => drop(
                runner
                    .progress
                    .send(Progress::Replicated(crate::replicate::progress_line(&r))),
            ),
            Ok(None) => {}
            Err(e) => drop(runner.progress.send(Progress::TaskFailed {
                task: "regions",
                error: format!("{e:#}"),
            })),
        }
    }
    let (report, aborted) = torn_down?;

    let report: LoadReport = report.context("running the load")?;
    let ending = if runner.interrupt.is_cancelled() {
        Ending::Interrupted
    } else if let Some(why) = step_failed {
        Ending::StepFailed(why)
    } else if let Some(reason) = aborted {
        Ending::Aborted(reason)
    } else {
        Ending::Complete
    };
    // The run.json written at the start already names the scenario, context and SLOs;
    // add the load's files and close it.
    crate::load::report::write_load_files(dir, &report)?;
    meta.ended_at = Some(crate::results::now_ms());
    (meta.status, meta.partial_reason) = match &ending {
        Ending::Complete => (RunStatus::Complete, None),
        Ending::Interrupted => (RunStatus::Partial, Some("interrupted".to_string())),
        Ending::Aborted(why) => (RunStatus::Partial, Some(format!("aborted: {why}"))),
        Ending::StepFailed(why) => (RunStatus::Partial, Some(format!("a step failed: {why}"))),
    };
    if report.interrupted && meta.status == RunStatus::Complete {
        meta.status = RunStatus::Partial;
        meta.partial_reason = Some("the load stopped early".to_string());
    }
    dir.write_meta(&meta)?;
    crate::load::coordinator::mark_partial(dir)?;
    Ok(ending)
}

/// One run of a scenario: what it runs against, and the signals and channels its tasks
/// share. The phases, in order: [`Runner::start_regions`] (several regions only),
/// [`Runner::start_autoscaler`], [`Runner::start_watch`], [`Runner::start_load`],
/// [`Runner::timed_steps`], [`Runner::teardown`].
struct Runner<'a> {
    scenario: &'a Scenario,
    target: &'a Target,
    /// The run directory every engine records into (one timeline, one clock).
    dir: &'a RunDir,
    /// Ctrl-C, from the command layer: ends the steps and stops the load; teardown still
    /// reverts every fault and the results are kept, marked partial.
    interrupt: CancellationToken,
    /// Progress to the command layer, which prints it; each task holds a clone, so the
    /// channel closes when the last task is done.
    progress: UnboundedSender<Progress>,
    /// Stops the load (its token is the load's cancel token) for the first abort rule or
    /// decided SLO breach, and keeps that reason for the results.
    stop: Arc<Stop>,
    /// `--fail-fast`'s judge, fed failovers by the watch task and buckets by the load
    /// task (`None` without `--fail-fast`).
    fail_fast: Arc<Mutex<Option<FailFast>>>,
    /// Ends the watcher and the outlier ejector in teardown, once the load is over.
    watch_cancel: CancellationToken,
    /// Ends the autoscaler's loop in teardown; it then restores minReplicas.
    autoscale_stop: CancellationToken,
    /// The load's one-second buckets, for `rollout` steps' analysis.
    buckets: tokio::sync::broadcast::Sender<Event>,
    /// Failovers so far (the watcher's and the gateway's), for `wait-for`.
    seen: Arc<watch::Sender<Seen>>,
}

/// The watcher's tasks, joined in teardown.
struct WatchTasks {
    /// The watch controller, recording failovers and scaling into the run directory.
    watcher: JoinHandle<Result<Outcome, WatchError>>,
    /// The outlier ejector, when the scenario asks for one.
    ejector: Option<JoinHandle<()>>,
    /// Forwards the watcher's updates as progress, counts failovers for `wait-for` and
    /// feeds fail-fast; ends when the watcher and the ejector drop their senders.
    updates: JoinHandle<()>,
}

/// The load's tasks.
struct LoadTasks {
    /// The load engine; `Stop`'s token (and Ctrl-C, through it) cancels it.
    engine: JoinHandle<Result<LoadReport, LoadError>>,
    /// Appends the load's events to the timeline and checks them against the abort rules
    /// and fail-fast; ends when the engine drops its sender.
    events: JoinHandle<()>,
    /// The engine's result, when the steps phase saw it finish first.
    finished: Option<Result<Result<LoadReport, LoadError>, tokio::task::JoinError>>,
}

impl<'a> Runner<'a> {
    fn new(
        scenario: &'a Scenario,
        target: &'a Target,
        dir: &'a RunDir,
        fail_fast: bool,
        interrupt: CancellationToken,
        progress: UnboundedSender<Progress>,
    ) -> Runner<'a> {
        let stop = Arc::new(Stop {
            state: Mutex::default(),
            cancel: CancellationToken::new(),
            progress: progress.clone(),
        });
        let fail_fast = fail_fast.then(|| FailFast::new(&scenario.slos, &scenario.window_slos));
        Runner {
            scenario,
            target,
            dir,
            interrupt,
            progress,
            stop,
            fail_fast: Arc::new(Mutex::new(fail_fast)),
            watch_cancel: CancellationToken::new(),
            autoscale_stop: CancellationToken::new(),
            buckets: tokio::sync::broadcast::channel(64).0,
            seen: Arc::new(watch::Sender::new(Seen::default())),
        }
    }

    fn scope(&self) -> Scope {
        Scope {
            client: self.target.client.clone(),
            namespace: self.target.namespace.clone(),
        }
    }

    /// Phase 1: launches the predictive autoscaler, if the scenario has one; it restores
    /// minReplicas when `autoscale_stop` ends it.
    async fn start_autoscaler(
        &self,
        plan: Option<AutoscalePlan>,
    ) -> anyhow::Result<Option<JoinHandle<anyhow::Result<i32>>>> {
        let Some(plan) = plan else {
            return Ok(None);
        };
        let controller = crate::autoscale::launch(self.target.client.clone(), &plan).await?;
        Ok(Some(tokio::spawn(drive_autoscaler(
            controller,
            plan.interval,
            self.autoscale_stop.clone(),
            self.progress.clone(),
        ))))
    }

    /// Phase 2: the watcher (and the outlier ejector), recording into the run directory.
    /// Its failovers count for `wait-for` in `seen`.
    fn start_watch(&self) -> WatchTasks {
        let scenario = self.scenario;
        let (updates_tx, mut updates_rx) = mpsc::unbounded_channel();
        let failovers_tx = Arc::clone(&self.seen);
        let plan = WatchPlan {
            namespace: self.target.namespace.clone(),
            service: "web".to_string(),
            policy: Policy {
                primary: scenario.watch.primary.unwrap_or(Color::Blue),
                ready_min: scenario.watch.ready_min.max(1),
                stable_for: scenario.watch.stable_for,
                prepare_standby: scenario.watch.mode == WatchMode::CapacityAware,
            },
            observe_only: scenario.watch.mode == WatchMode::ObserveOnly,
            once: false,
            timeout: None,
        };
        let ejector = scenario.watch.eject_outliers.then(|| {
            // Never under 2 s: fewer one-second buckets say nothing about a pod.
            let window = scenario.watch.eject_window.max(Duration::from_secs(2));
            let plan = eject::EjectPlan {
                dir: self.dir.clone(),
                window,
                settings: outliers::Settings::default(),
            };
            let (updates, cancel) = (updates_tx.clone(), self.watch_cancel.clone());
            tokio::spawn(eject::run(self.scope(), plan, updates, cancel))
        });
        let watcher = tokio::spawn(watcher::run(
            self.target.client.clone(),
            plan,
            Some(self.dir.clone()),
            updates_tx,
            self.watch_cancel.clone(),
        ));
        let (stop, fail_fast) = (Arc::clone(&self.stop), Arc::clone(&self.fail_fast));
        let progress = self.progress.clone();
        let updates = tokio::spawn(async move {
            while let Some(update) = updates_rx.recv().await {
                // Announced before a fail-fast stop it may cause, as it happened.
                let _ = progress.send(Progress::Watch(update.clone()));
                if let Update::Failover(f) = &update {
                    let event = match f.direction.as_str() {
                        "failback" => WaitEvent::Failback,
                        _ => WaitEvent::Failover,
                    };
                    failovers_tx.send_modify(|seen| seen.bump(event));
                    let breach = lock(&fail_fast)
                        .as_ref()
                        .and_then(|ff| ff.failover(f.duration_ms));
                    if let Some(why) = breach {
                        stop.stop(format!("fail-fast: {why}"));
                    }
                }
            }
        });
        WatchTasks {
            watcher,
            ejector,
            updates,
        }
    }

    /// Phase 0, in a multi-region run: the gateway and the replicator; the gateway's
    /// decisions become progress and count for `wait-for`.
    async fn start_regions(
        &self,
        plan: &super::regions::Plan,
    ) -> anyhow::Result<super::regions::Engines> {
        let (tx, mut rx) = mpsc::unbounded_channel::<(&'static str, String)>();
        let engines = super::regions::start(plan, self.dir, tx).await?;
        let _ = self.progress.send(Progress::Regions(plan.describe()));
        let (progress, seen) = (self.progress.clone(), Arc::clone(&self.seen));
        tokio::spawn(async move {
            while let Some((action, line)) = rx.recv().await {
                let _ = progress.send(Progress::Gateway(line));
                let event = match action {
                    "failover" => WaitEvent::RegionFailover,
                    "failback" => WaitEvent::RegionFailback,
                    _ => continue,
                };
                seen.send_modify(|s| s.bump(event));
            }
        });
        Ok(engines)
    }

    /// Phase 3: the load, its events appended to the timeline and checked against the
    /// abort rules and fail-fast.
    fn start_load(
        &self,
        plan: LoadPlan,
        abort_rules: Vec<AbortRule>,
        mut timeline: TimelineWriter,
    ) -> LoadTasks {
        let (events_tx, mut events_rx) = mpsc::unbounded_channel::<Event>();
        let (stop, fail_fast) = (Arc::clone(&self.stop), Arc::clone(&self.fail_fast));
        let buckets = self.buckets.clone();
        let events = tokio::spawn(async move {
            while let Some(event) = events_rx.recv().await {
                let _ = timeline.append(&event);
                if matches!(event.kind, EventKind::LoadBucket { .. }) {
                    let _ = buckets.send(event.clone());
                }
                if let Some(breach) = abort_rules.iter().find_map(|r| r.breached(&event.kind)) {
                    stop.stop(breach);
                } else if let Some(why) = lock(&fail_fast).as_mut().and_then(|ff| ff.event(&event))
                {
                    stop.stop(format!("fail-fast: {why}"));
                }
            }
        });
        let cancel = self.stop.cancel.clone();
        let (client, namespace) = (self.target.client.clone(), self.target.namespace.clone());
        let dir = self.dir.clone();
        let engine = tokio::spawn(async move {
            crate::load::coordinator::run_here_or_on_workers(
                &plan, &client, &namespace, &dir, cancel, events_tx,
            )
            .await
        });
        LoadTasks {
            engine,
            events,
            finished: None,
        }
    }

    /// The injectors the steps and teardown share, journaling every fault: the target's,
    /// and in a multi-region run one per region.
    fn injectors(&self, regions: Option<&RegionRun>) -> Injectors {
        let injector = |target: &Target| Injector {
            scope: Scope {
                client: target.client.clone(),
                namespace: target.namespace.clone(),
            },
            context: target.context.clone(),
            journal: Journal::new(&journal::default_state_dir()),
            out: Some(self.dir.clone()),
        };
        Injectors {
            main: injector(self.target),
            regions: regions
                .map(|r| {
                    (r.targets.iter())
                        .map(|(name, target)| (name.clone(), injector(target)))
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    /// Phase 4: the steps, on the load's clock, until they are done, Ctrl-C, a stop, or
    /// the end of the load. Returns why a step failed (the load is then stopped).
    async fn timed_steps(
        &self,
        seed: u64,
        injector: &Injectors,
        injected: &Mutex<Vec<Entry>>,
        mut load: LoadTasks,
    ) -> (Option<String>, LoadTasks) {
        let steps = &self.scenario.steps;
        let steps = steps::run_steps(
            steps,
            injector,
            seed,
            self.seen.subscribe(),
            injected,
            &self.buckets,
            &self.progress,
        );
        let step_result = tokio::select! {
            // The steps finished (timed faults are reverted inside).
            r = steps => r,
            // Ctrl-C: stop the load; faults are reverted in teardown.
            () = self.interrupt.cancelled() => {
                self.stop.cancel.cancel();
                Ok(())
            }
            // An abort rule stopped the load before the steps were done.
            () = self.stop.cancel.cancelled() => Ok(()),
            // The load is over: a step still waiting (a `wait-for`, a timed fault) has
            // nothing left to measure; what it injected is reverted in teardown.
            r = &mut load.engine => {
                load.finished = Some(r);
                Ok(())
            }
        };
        let Err(e) = step_result else {
            return (None, load);
        };
        let why = format!("{e:#}");
        let _ = self.progress.send(Progress::StepFailed(why.clone()));
        self.stop.cancel.cancel();
        (Some(why), load)
    }

    /// Phase 5: waits for the load, stops the watcher and the autoscaler (which restores
    /// minReplicas), and reverts every fault still open. Returns the load's result and
    /// why it was stopped early, if it was.
    async fn teardown(
        &self,
        load: LoadTasks,
        watch: WatchTasks,
        autoscaler: Option<JoinHandle<anyhow::Result<i32>>>,
        injector: &Injectors,
        injected: &[Entry],
    ) -> anyhow::Result<(Result<LoadReport, LoadError>, Option<String>)> {
        let report = match load.finished {
            Some(r) => r,
            None => load.engine.await,
        }
        .context("the load task")?;
        let _ = load.events.await;
        // The load is over: a breach the watcher reports from now on has nothing left to
        // stop, and the end-of-run verdict judges it.
        let aborted = self.stop.close();
        // Give the watcher a moment to record the end state, then stop it.
        tokio::time::sleep(Duration::from_millis(500)).await;
        self.watch_cancel.cancel();
        let failed = |task, error| Progress::TaskFailed { task, error };
        match watch.watcher.await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => drop(self.progress.send(failed("watcher", error_chain(&e)))),
            Err(e) => drop(self.progress.send(failed("watcher task", e.to_string()))),
        }
        if let Some(task) = watch.ejector {
            let _ = task.await;
        }
        let _ = watch.updates.await;
        self.autoscale_stop.cancel();
        if let Some(task) = autoscaler {
            let _ = self.progress.send(match task.await {
                Ok(Ok(min)) => Progress::AutoscaleRestored(min),
                Ok(Err(e)) => Progress::AutoscaleFailed(e),
                Err(e) => failed("autoscale task", e.to_string()),
            });
        }
        steps::revert_all(injector, injected, &self.progress).await;
        Ok((report, aborted))
    }
}

/// Stops the load for the first reason given (an abort rule, a decided SLO breach).
struct Stop {
    state: Mutex<StopState>,
    cancel: CancellationToken,
    /// Where the stop is announced.
    progress: UnboundedSender<Progress>,
}

#[derive(Default)]
struct StopState {
    reason: Option<String>,
    /// The load has ended: nothing is left to stop.
    closed: bool,
}

impl Stop {
    fn stop(&self, why: String) {
        let mut state = lock(&self.state);
        if state.reason.is_none() && !state.closed {
            let _ = self.progress.send(Progress::Stopping(why.clone()));
            state.reason = Some(why);
            self.cancel.cancel();
        }
    }

    /// Ends stopping (the load is over) and returns why the load was stopped, if it was.
    fn close(&self) -> Option<String> {
        let mut state = lock(&self.state);
        state.closed = true;
        state.reason.take()
    }
}

/// A lock that a panicked holder left poisoned still holds usable data here.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Drives the predictive autoscaler until `stop`, reporting its rounds; always restores
/// minReplicas and returns the restored value.
async fn drive_autoscaler(
    mut controller: crate::autoscale::Controller,
    interval: Duration,
    stop: CancellationToken,
    progress: UnboundedSender<Progress>,
) -> anyhow::Result<i32> {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let forward = tokio::spawn(async move {
        while let Some(report) = rx.recv().await {
            let _ = progress.send(Progress::Autoscale(report));
        }
    });
    let driven = crate::autoscale::drive(&mut controller, interval, None, &stop, &tx).await;
    drop(tx);
    let _ = forward.await;
    // Restore whatever the loop did: the HPA must not keep a raised floor.
    let restored = controller.restore().await;
    driven.context("the autoscaler kept failing")?;
    restored.context("restoring minReplicas")
}

/// An abort rule: `error_rate>50%` or `p99>2s`, checked on every one-second load bucket.
#[derive(Debug, Clone, PartialEq)]
pub enum AbortRule {
    ErrorRate(f64),
    P99(Duration),
}

impl AbortRule {
    /// Parses one rule.
    pub fn parse(text: &str) -> anyhow::Result<AbortRule> {
        match super::window::WindowCheck::parse_with(text, '>') {
            Some(super::window::WindowCheck::ErrorRate(max)) => Ok(AbortRule::ErrorRate(max)),
            Some(super::window::WindowCheck::P99(max)) => Ok(AbortRule::P99(max)),
            None => anyhow::bail!(
                "abort rule `{text}`: use error_rate>PCT% (e.g. error_rate>50%) or p99>DURATION \
                 (e.g. p99>2s)"
            ),
        }
    }

    /// The breach this bucket shows, if any.
    pub fn breached(&self, kind: &EventKind) -> Option<String> {
        let EventKind::LoadBucket {
            second,
            requests,
            errors,
            p99_us,
            ..
        } = kind
        else {
            return None;
        };
        match self {
            AbortRule::ErrorRate(max) if *requests > 0 => {
                let rate = *errors as f64 / *requests as f64;
                (rate > *max).then(|| {
                    format!(
                        "error rate {:.1}% > {:.1}% in second {second}",
                        rate * 100.0,
                        max * 100.0
                    )
                })
            }
            AbortRule::P99(max) if *requests > 0 => {
                let p99 = Duration::from_micros(*p99_us);
                (p99 > *max).then(|| format!("p99 {p99:?} > {max:?} in second {second}"))
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bucket(requests: u64, errors: u64, p99_us: u64) -> EventKind {
        crate::run::window::tests::bucket(3, requests, errors, p99_us).kind
    }

    #[test]
    fn abort_rules_trip_on_the_bucket_that_breaches_them() {
        let rate = AbortRule::parse("error_rate>50%").unwrap();
        assert!(rate.breached(&bucket(100, 50, 0)).is_none());
        assert!(
            rate.breached(&bucket(100, 51, 0))
                .unwrap()
                .contains("51.0%")
        );
        assert!(rate.breached(&bucket(0, 0, 0)).is_none());
        let p99 = AbortRule::parse("p99>2s").unwrap();
        assert!(p99.breached(&bucket(10, 0, 2_500_000)).is_some());
        assert!(p99.breached(&bucket(10, 0, 1_000_000)).is_none());
    }

    #[test]
    fn the_first_reason_stops_the_load_and_none_counts_once_the_load_is_over() {
        let (progress, mut said) = mpsc::unbounded_channel();
        let stop = Stop {
            state: Mutex::default(),
            cancel: CancellationToken::new(),
            progress: progress.clone(),
        };
        stop.stop("first".into());
        stop.stop("second".into());
        assert!(stop.cancel.is_cancelled());
        assert_eq!(stop.close().as_deref(), Some("first"));

        let ended = Stop {
            state: Mutex::default(),
            cancel: CancellationToken::new(),
            progress,
        };
        assert_eq!(ended.close(), None);
        // A failover the watcher reports after the load ended: the verdict at the end
        // judges it, and the complete load is not marked stopped.
        ended.stop("late".into());
        assert!(!ended.cancel.is_cancelled());
        assert_eq!(ended.close(), None);
        drop(ended);

        // Only the stop that counted is announced.
        let mut announced = Vec::new();
        while let Ok(p) = said.try_recv() {
            announced.push(format!("{p:?}"));
        }
        assert_eq!(announced, [r#"Stopping("first")"#]);
    }

    #[test]
    fn a_bad_abort_rule_says_what_is_valid() {
        for bad in ["errors>5", "error_rate<5%", "p99>soon"] {
            let err = AbortRule::parse(bad).unwrap_err().to_string();
            assert!(err.contains("error_rate>PCT%"), "{bad}: {err}");
        }
    }
}
