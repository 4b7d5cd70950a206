//! The scenario runner: one process, one clock. Deploys, then runs the watcher, the load
//! and the timed chaos steps concurrently, reverts every fault it injected (also on
//! Ctrl-C and on an abort rule), and leaves a complete results directory behind.
//!
//! It drives the same engines the commands use — `watch::controller`, `load::run`,
//! `chaos::injector` — so a scenario measures exactly what the commands measure. Called
//! by `run::command`, which renders the report and turns the SLO verdict into the exit code.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::fail_fast::FailFast;
use super::scenario::{Scenario, Step, StepAction, WaitEvent, WatchMode};
use crate::autoscale::{AutoscalePlan, Report as AutoscaleReport};
use crate::chaos::execute::Scope;
use crate::chaos::injector::Injector;
use crate::chaos::journal::{self, Entry, Journal};
use crate::chaos::plan::{Amount, Faults, ProxyFault, Selection};
use crate::cluster::{Target, error_chain};
use crate::domain::Color;
use crate::load::{LoadPlan, LoadReport};
use crate::results::timeline::{Event, EventKind};
use crate::results::{RunDir, RunMeta, RunStatus};
use crate::watch::controller::{self as watcher, Update, WatchPlan};
use crate::watch::failover::Policy;
use crate::watch::{eject, outliers};

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
}

/// Runs `scenario` against `target`, writing into `dir`.
pub async fn run(
    scenario: &Scenario,
    target: &Target,
    dir: &RunDir,
    engines: Engines,
    seed: u64,
    interrupt: CancellationToken,
) -> anyhow::Result<Ending> {
    let Engines {
        load: load_plan,
        autoscale,
        fail_fast,
    } = engines;
    let mut meta = RunMeta::start(
        dir.path()
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        "run",
    );
    meta.context = Some(target.context.clone());
    meta.target_url = Some(load_plan.url.clone());
    meta.scenario = Some(serde_json::to_value(scenario)?);
    meta.slos = scenario.slos.clone();
    dir.write_meta(&meta)?;

    // The predictive autoscaler first: it journals the HPA's minReplicas before anything
    // else starts, and a failure to start leaves nothing running.
    let autoscale_stop = CancellationToken::new();
    let autoscaler = match autoscale {
        Some(plan) => {
            let controller = crate::autoscale::launch(target.client.clone(), &plan).await?;
            Some(tokio::spawn(drive_autoscaler(
                controller,
                plan.interval,
                autoscale_stop.clone(),
            )))
        }
        None => None,
    };

    // An abort rule or, with --fail-fast, a decided SLO breach stops the load; the first
    // reason is kept for the results.
    let load_cancel = CancellationToken::new();
    let stop = Arc::new(Stop {
        state: Mutex::default(),
        cancel: load_cancel.clone(),
    });
    let fail_fast = Arc::new(Mutex::new(
        fail_fast.then(|| FailFast::new(&scenario.slos, &scenario.window_slos)),
    ));

    // The watcher, recording into the same directory.
    let watch_cancel = CancellationToken::new();
    let (updates_tx, mut updates_rx) = mpsc::unbounded_channel();
    let (failovers_tx, failovers_rx) = watch::channel((0u32, 0u32));
    let plan = WatchPlan {
        namespace: target.namespace.clone(),
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
        let scope = Scope {
            client: target.client.clone(),
            namespace: target.namespace.clone(),
        };
        // Never under 2 s: fewer one-second buckets say nothing about a pod.
        let window = scenario.watch.eject_window.max(Duration::from_secs(2));
        tokio::spawn(eject::run(
            scope,
            eject::EjectPlan {
                dir: dir.clone(),
                window,
                settings: outliers::Settings::default(),
            },
            updates_tx.clone(),
            watch_cancel.clone(),
        ))
    });
    let watch_task = tokio::spawn(watcher::run(
        target.client.clone(),
        plan,
        Some(dir.clone()),
        updates_tx,
        watch_cancel.clone(),
    ));
    // Watcher updates: print decisions, count failovers for `wait-for`.
    let printer = {
        let (stop, fail_fast) = (Arc::clone(&stop), Arc::clone(&fail_fast));
        tokio::spawn(async move {
            let (mut over, mut back) = (0, 0);
            while let Some(update) = updates_rx.recv().await {
                match update {
                    Update::Decision { rule, action } => eprintln!("watch [{rule}] {action}"),
                    Update::Warning(w) => eprintln!("watch warning: {w}"),
                    Update::Failover(f) => {
                        eprintln!(
                            "watch: {} {} → {} in {} ms",
                            f.direction, f.from, f.to, f.duration_ms
                        );
                        if f.direction == "failback" {
                            back += 1;
                        } else {
                            over += 1;
                        }
                        let _ = failovers_tx.send((over, back));
                        if let Some(why) = lock(&fail_fast)
                            .as_ref()
                            .and_then(|ff| ff.failover(f.duration_ms))
                        {
                            stop.stop(format!("fail-fast: {why}"));
                        }
                    }
                    Update::Snapshot(_) => {}
                }
            }
        })
    };

    // The load, its events appended to the timeline and checked against abort rules.
    let (events_tx, mut events_rx) = mpsc::unbounded_channel::<Event>();
    let abort_rules = scenario
        .abort
        .iter()
        .map(|r| AbortRule::parse(r))
        .collect::<Result<Vec<_>, _>>()?;
    let mut timeline = dir.timeline()?;
    let consumer = {
        let (stop, fail_fast) = (Arc::clone(&stop), Arc::clone(&fail_fast));
        tokio::spawn(async move {
            while let Some(event) = events_rx.recv().await {
                let _ = timeline.append(&event);
                if let Some(breach) = abort_rules.iter().find_map(|r| r.breached(&event.kind)) {
                    stop.stop(breach);
                } else if let Some(why) = lock(&fail_fast).as_mut().and_then(|ff| ff.event(&event))
                {
                    stop.stop(format!("fail-fast: {why}"));
                }
            }
        })
    };
    let mut load = {
        let cancel = load_cancel.clone();
        tokio::spawn(async move { crate::load::run(&load_plan, cancel, events_tx).await })
    };

    // The steps, on the load's clock.
    let injector = Injector {
        scope: Scope {
            client: target.client.clone(),
            namespace: target.namespace.clone(),
        },
        context: target.context.clone(),
        journal: Journal::new(&journal::default_state_dir()),
        out: Some(dir.clone()),
    };
    // Every fault a step injects lands here at once, so an abort, Ctrl-C or the end of
    // the load — which drop the steps mid-way — still know what to revert.
    let injected = Mutex::new(Vec::<Entry>::new());
    let steps = run_steps(&scenario.steps, &injector, seed, failovers_rx, &injected);
    let mut load_result = None;
    let step_result = tokio::select! {
        // The steps finished (timed faults are reverted inside).
        r = steps => r,
        // Ctrl-C: stop the load; faults are reverted below.
        () = interrupt.cancelled() => {
            load_cancel.cancel();
            Ok(())
        }
        // An abort rule stopped the load before the steps were done.
        () = load_cancel.cancelled() => Ok(()),
        // The load is over: a step still waiting (a `wait-for`, a timed fault) has nothing
        // left to measure; what it injected is reverted below.
        r = &mut load => {
            load_result = Some(r);
            Ok(())
        }
    };
    let mut step_failed = None;
    if let Err(e) = step_result {
        eprintln!("step failed: {e:#}; stopping the run");
        step_failed = Some(format!("{e:#}"));
        load_cancel.cancel();
    }

    let report = match load_result {
        Some(r) => r,
        None => load.await,
    }
    .context("the load task")?;
    let _ = consumer.await;
    // The load is over: a breach the watcher reports from now on has nothing left to
    // stop, and the end-of-run verdict judges it.
    let aborted = stop.close();
    // Give the watcher a moment to record the end state, then stop it.
    tokio::time::sleep(Duration::from_millis(500)).await;
    watch_cancel.cancel();
    match watch_task.await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => eprintln!("watcher: {}", error_chain(&e)),
        Err(e) => eprintln!("watcher task: {e}"),
    }
    if let Some(task) = ejector {
        let _ = task.await;
    }
    let _ = printer.await;
    autoscale_stop.cancel();
    if let Some(task) = autoscaler {
        match task.await {
            Ok(Ok(min)) => eprintln!("autoscale: restored minReplicas to {min}"),
            Ok(Err(e)) => eprintln!("autoscale: {e:#} — run `resil chaos revert` to restore"),
            Err(e) => eprintln!("autoscale task: {e}"),
        }
    }
    let injected = injected
        .into_inner()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    revert_all(&injector, &injected).await;

    let report: LoadReport = report.context("running the load")?;
    let ending = if interrupt.is_cancelled() {
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
    Ok(ending)
}

/// Stops the load for the first reason given (an abort rule, a decided SLO breach).
struct Stop {
    state: Mutex<StopState>,
    cancel: CancellationToken,
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
            eprintln!("abort: {why}; stopping the run and reverting");
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

/// Drives the predictive autoscaler until `stop`, printing what it changes; always
/// restores minReplicas and returns the restored value.
async fn drive_autoscaler(
    mut controller: crate::autoscale::Controller,
    interval: Duration,
    stop: CancellationToken,
) -> anyhow::Result<i32> {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let printer = tokio::spawn(async move {
        while let Some(report) = rx.recv().await {
            match report {
                AutoscaleReport::Tick(tick) => {
                    if let (Some(plan), true) = (&tick.plan, tick.patched) {
                        eprintln!("autoscale: {} — {}", plan.action, plan.rule);
                    }
                }
                AutoscaleReport::Failed { error, attempt } => eprintln!(
                    "autoscale: tick failed ({attempt}/{}): {error}",
                    crate::autoscale::MAX_FAILED_TICKS
                ),
            }
        }
    });
    let driven = crate::autoscale::drive(&mut controller, interval, None, &stop, &tx).await;
    drop(tx);
    let _ = printer.await;
    // Restore whatever the loop did: the HPA must not keep a raised floor.
    let restored = controller.restore().await;
    driven.context("the autoscaler kept failing")?;
    restored.context("restoring minReplicas")
}

/// Runs the steps at their offsets, adding every fault injected to `injected` as soon as
/// it is (timed ones are reverted here when their duration runs out).
async fn run_steps(
    steps: &[Step],
    injector: &Injector,
    seed: u64,
    failovers: watch::Receiver<(u32, u32)>,
    injected: &Mutex<Vec<Entry>>,
) -> anyhow::Result<()> {
    let start = tokio::time::Instant::now();
    let mut steps: Vec<&Step> = steps.iter().collect();
    steps.sort_by_key(|s| s.at);
    let mut reverts = tokio::task::JoinSet::new();
    // Failovers already waited for: a `wait-for` waits for the next one, even when it
    // completed before the step's own offset (a fast watcher beats a same-second step).
    let mut waited = (0u32, 0u32);
    for (i, step) in steps.into_iter().enumerate() {
        tokio::time::sleep_until(start + step.at).await;
        let step_seed = seed.wrapping_add(i as u64);
        let entry = match step.action {
            StepAction::WaitFor => {
                waited = wait_for(step, failovers.clone(), waited).await;
                continue;
            }
            StepAction::KillPods => {
                let pods = injector.choose(&selection(step)?, step_seed).await?;
                injector.kill_pods(&pods, step.force).await?
            }
            StepAction::Outage => {
                let color = step.color.context("outage needs color")?;
                injector.outage(color, duration(step)).await?
            }
            StepAction::Degrade | StepAction::CpuBurn => {
                let faults = if step.action == StepAction::Degrade {
                    Faults::from_mode(step.mode.as_deref().unwrap_or_default())?
                } else {
                    Faults {
                        cpu_burn_percent: step.load.unwrap_or(100),
                        ..Faults::default()
                    }
                };
                let pods = injector.choose(&selection(step)?, step_seed).await?;
                let action = if step.action == StepAction::Degrade {
                    "degrade"
                } else {
                    "cpu-burn"
                };
                injector
                    .pod_faults(action, &pods, faults, duration(step))
                    .await?
            }
            StepAction::Latency => {
                let fault = ProxyFault::new(
                    step.delay.unwrap_or_default(),
                    step.jitter,
                    step.loss.unwrap_or(0.0),
                )?;
                injector.proxy_fault("web", &fault, duration(step)).await?
            }
        };
        eprintln!("step {}: {} ({})", i + 1, entry.detail, entry.id);
        if let Some(d) = step.duration.filter(|_| entry.is_open()) {
            let scope = injector.scope.clone();
            let journal = injector.journal.clone();
            let out = injector.out.clone();
            let context = injector.context.clone();
            let timed = entry.clone();
            reverts.spawn(async move {
                tokio::time::sleep(d).await;
                let injector = Injector {
                    scope,
                    context,
                    journal,
                    out,
                };
                if let Err(e) = injector.revert(&timed).await {
                    eprintln!("reverting {}: {e:#}", timed.id);
                }
            });
        }
        lock(injected).push(entry);
    }
    // Timed faults run their course before the steps count as done.
    while reverts.join_next().await.is_some() {}
    Ok(())
}

/// Reverts whatever is still open among `entries` (Ctrl-C, abort, a failed step).
async fn revert_all(injector: &Injector, entries: &[Entry]) {
    let open: Vec<String> = match injector.journal.open_entries() {
        Ok(open) => open.into_iter().map(|e| e.id).collect(),
        Err(e) => {
            eprintln!("reading the chaos journal: {}", error_chain(&e));
            return;
        }
    };
    for entry in entries.iter().filter(|e| open.contains(&e.id)) {
        match injector.revert(entry).await {
            Ok(()) => eprintln!("reverted {} ({})", entry.action, entry.id),
            Err(e) => eprintln!(
                "could not revert {} ({}): {e:#} — run `resil chaos revert`",
                entry.action, entry.id
            ),
        }
    }
}

/// Waits for one more failover (or fail-back) than `before` counted; returns the counts.
async fn wait_for(
    step: &Step,
    mut failovers: watch::Receiver<(u32, u32)>,
    before: (u32, u32),
) -> (u32, u32) {
    let timeout = step.timeout.unwrap_or(Duration::from_secs(60));
    let event = step.event.unwrap_or(WaitEvent::Failover);
    let seen = tokio::time::timeout(timeout, async {
        loop {
            let (over, back) = *failovers.borrow();
            let done = match event {
                WaitEvent::Failover => over > before.0,
                WaitEvent::Failback => back > before.1,
            };
            if done || failovers.changed().await.is_err() {
                return done;
            }
        }
    })
    .await;
    if !matches!(seen, Ok(true)) {
        eprintln!(
            "wait-for {event:?}: none within {}",
            humantime::format_duration(timeout)
        );
    }
    let (over, back) = *failovers.borrow();
    match event {
        WaitEvent::Failover => (over.min(before.0 + 1), before.1),
        WaitEvent::Failback => (before.0, back.min(before.1 + 1)),
    }
}

fn selection(step: &Step) -> anyhow::Result<Selection> {
    Ok(Selection::new(
        step.color,
        step.selector.as_deref(),
        Amount::from_flags(step.count, step.percent)?,
        None,
    )?)
}

fn duration(step: &Step) -> Duration {
    step.duration.unwrap_or(Duration::from_secs(10))
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
        let stop = Stop {
            state: Mutex::default(),
            cancel: CancellationToken::new(),
        };
        stop.stop("first".into());
        stop.stop("second".into());
        assert!(stop.cancel.is_cancelled());
        assert_eq!(stop.close().as_deref(), Some("first"));

        let ended = Stop {
            state: Mutex::default(),
            cancel: CancellationToken::new(),
        };
        assert_eq!(ended.close(), None);
        // A failover the watcher reports after the load ended: the verdict at the end
        // judges it, and the complete load is not marked stopped.
        ended.stop("late".into());
        assert!(!ended.cancel.is_cancelled());
        assert_eq!(ended.close(), None);
    }

    #[test]
    fn a_bad_abort_rule_says_what_is_valid() {
        for bad in ["errors>5", "error_rate<5%", "p99>soon"] {
            let err = AbortRule::parse(bad).unwrap_err().to_string();
            assert!(err.contains("error_rate>PCT%"), "{bad}: {err}");
        }
    }
}
