//! The runner's timed steps: each chaos step injected at its offset from the start of the
//! load, timed faults reverted when their duration runs out, `wait-for` steps waiting on
//! the watcher's failover count; and the teardown's revert of whatever is still open.
//! Reports what it does as [`Progress`]; prints nothing. Called by the runner's
//! `timed_steps` and `teardown` phases.

use std::sync::Mutex;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::{broadcast, mpsc, mpsc::UnboundedSender, watch};

use super::{Progress, lock};
use crate::chaos::injector::Injector;
use crate::chaos::journal::Entry;
use crate::chaos::plan::{Amount, Faults, ProxyFault, Selection};
use crate::chaos::region::RegionDown;
use crate::cluster::error_chain;
use crate::results::Event;
use crate::run::scenario::{Step, StepAction, WaitEvent};

/// The injectors of a run: the target's, and in a multi-region run one per region (each
/// journaling with its region's context, so a revert goes back to the same cluster).
#[derive(Clone)]
pub(crate) struct Injectors {
    pub(crate) main: Injector,
    pub(crate) regions: Vec<(String, Injector)>,
}

impl Injectors {
    /// Where a step injects: its region's, else the target's.
    fn for_step(&self, step: &Step) -> anyhow::Result<&Injector> {
        match &step.region {
            None => Ok(&self.main),
            Some(region) => self
                .regions
                .iter()
                .find(|(name, _)| name == region)
                .map(|(_, injector)| injector)
                .with_context(|| format!("no region {region:?} in this run")),
        }
    }

    /// The injector of the cluster an entry was injected in.
    fn for_entry(&self, entry: &Entry) -> &Injector {
        self.regions
            .iter()
            .map(|(_, injector)| injector)
            .find(|injector| injector.context == entry.context)
            .unwrap_or(&self.main)
    }
}

/// Failovers seen so far, per event `wait-for` waits for (the watcher's and the
/// gateway's).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Seen([u32; 4]);

impl Seen {
    fn slot(event: WaitEvent) -> usize {
        match event {
            WaitEvent::Failover => 0,
            WaitEvent::Failback => 1,
            WaitEvent::RegionFailover => 2,
            WaitEvent::RegionFailback => 3,
        }
    }

    /// How many of `event` were seen.
    pub(crate) fn of(&self, event: WaitEvent) -> u32 {
        self.0[Seen::slot(event)]
    }

    /// One more `event`.
    pub(crate) fn bump(&mut self, event: WaitEvent) {
        self.0[Seen::slot(event)] += 1;
    }
}

/// Runs the steps at their offsets, adding every fault injected to `injected` as soon as
/// it is (timed ones are reverted here when their duration runs out).
pub(super) async fn run_steps(
    steps: &[Step],
    injectors: &Injectors,
    seed: u64,
    failovers: watch::Receiver<Seen>,
    injected: &Mutex<Vec<Entry>>,
    buckets: &broadcast::Sender<Event>,
    progress: &UnboundedSender<Progress>,
) -> anyhow::Result<()> {
    let start = tokio::time::Instant::now();
    let mut steps: Vec<&Step> = steps.iter().collect();
    steps.sort_by_key(|s| s.at);
    let mut reverts = tokio::task::JoinSet::new();
    // Failovers already waited for: a `wait-for` waits for the next one, even when it
    // completed before the step's own offset (a fast watcher beats a same-second step).
    let mut waited = Seen::default();
    for (i, step) in steps.into_iter().enumerate() {
        tokio::time::sleep_until(start + step.at).await;
        if step.action == StepAction::WaitFor {
            waited = wait_for(step, failovers.clone(), waited, progress).await;
            continue;
        }
        let injector = injectors.for_step(step)?;
        if step.action == StepAction::Rollout {
            rollout(step, injector, buckets.subscribe(), progress).await?;
            continue;
        }
        let entry = inject(step, injector, seed.wrapping_add(i as u64)).await?;
        let _ = progress.send(Progress::Injected {
            step: i + 1,
            detail: entry.detail.clone(),
            id: entry.id.clone(),
            open: entry.is_open(),
        });
        if let Some(d) = step.duration.filter(|_| entry.is_open()) {
            let injector = injector.clone();
            let progress = progress.clone();
            let timed = entry.clone();
            reverts.spawn(async move {
                tokio::time::sleep(d).await;
                let id = timed.id.clone();
                let _ = progress.send(match injector.revert(&timed).await {
                    Ok(()) => Progress::TimedReverted { id },
                    Err(error) => Progress::TimedRevertFailed { id, error },
                });
            });
        }
        lock(injected).push(entry);
    }
    // Timed faults run their course before the steps count as done.
    while reverts.join_next().await.is_some() {}
    Ok(())
}

/// Injects one step's fault; the journal entry says what to revert.
async fn inject(step: &Step, injector: &Injector, seed: u64) -> anyhow::Result<Entry> {
    Ok(match step.action {
        StepAction::KillPods => {
            let pods = injector.choose(&selection(step)?, seed).await?;
            injector.kill_pods(&pods, step.force).await?
        }
        StepAction::Outage => {
            let color = step.color.context("outage needs color")?;
            injector.outage(color, duration(step)).await?
        }
        StepAction::Degrade | StepAction::CpuBurn => {
            let (action, faults) = if step.action == StepAction::Degrade {
                let mode = step.mode.as_deref().unwrap_or_default();
                ("degrade", Faults::from_mode(mode)?)
            } else {
                let faults = Faults {
                    cpu_burn_percent: step.load.unwrap_or(100),
                    ..Faults::default()
                };
                ("cpu-burn", faults)
            };
            let pods = injector.choose(&selection(step)?, seed).await?;
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
        StepAction::NodeFailure | StepAction::ZoneOutage => {
            let nodes = match (&step.node, &step.zone) {
                (Some(node), _) => vec![node.clone()],
                (None, Some(zone)) => injector.scope.nodes_in_zone(zone).await?,
                (None, None) => anyhow::bail!("a node fault needs node or zone"),
            };
            let power = injector.scope.power(&nodes, None).await?;
            let action = if step.action == StepAction::ZoneOutage {
                "zone-outage"
            } else {
                "node-failure"
            };
            injector
                .node_failure(action, &nodes, &power, duration(step))
                .await?
        }
        StepAction::Drain => {
            let node = step.node.as_deref().context("drain needs node")?;
            let timeout = step.timeout.unwrap_or(Duration::from_secs(120));
            injector.drain(node, timeout, step.duration).await?.0
        }
        StepAction::RegionOutage => {
            let region = injector.context.clone();
            let down = RegionDown::decide(&injector.scope, None, false, &region).await?;
            down.inject(injector, duration(step)).await?
        }
        StepAction::WaitFor => anyhow::bail!("a wait-for step injects nothing"),
        StepAction::Rollout => anyhow::bail!("a rollout step injects nothing"),
    })
}

/// Runs a `rollout` step to its end, judged on the scenario's load (`buckets`) and
/// recorded into the run directory; a rollback is an outcome the report shows, not a
/// failed step.
async fn rollout(
    step: &Step,
    injector: &Injector,
    buckets: broadcast::Receiver<Event>,
    progress: &UnboundedSender<Progress>,
) -> anyhow::Result<()> {
    let color = step.color.context("a rollout step needs color")?;
    let spec = step
        .rollout
        .as_ref()
        .context("a rollout step needs rollout:")?;
    let plan = crate::rollout::RolloutPlan::resolve(color, spec).map_err(anyhow::Error::msg)?;
    let timeline = injector.out.as_ref().map(|d| d.timeline()).transpose()?;
    let (tx, mut rx) = mpsc::unbounded_channel::<crate::rollout::Update>();
    let forward = {
        let progress = progress.clone();
        tokio::spawn(async move {
            while let Some(update) = rx.recv().await {
                let _ = progress.send(Progress::Rollout(update.to_string()));
            }
        })
    };
    let scope = &injector.scope;
    let releases = crate::cluster::release::Releases::new(scope.client.clone(), &scope.namespace);
    let outcome = crate::rollout::Engine::new(releases, plan, buckets, timeline, tx)
        .run()
        .await;
    let _ = forward.await;
    outcome.map(drop)
}

/// Reverts whatever is still open among `entries` (Ctrl-C, abort, a failed step).
pub(super) async fn revert_all(
    injectors: &Injectors,
    entries: &[Entry],
    progress: &UnboundedSender<Progress>,
) {
    let open: Vec<String> = match injectors.main.journal.open_entries() {
        Ok(open) => open.into_iter().map(|e| e.id).collect(),
        Err(e) => {
            let _ = progress.send(Progress::JournalUnreadable(error_chain(&e)));
            return;
        }
    };
    for entry in entries.iter().filter(|e| open.contains(&e.id)) {
        let (action, id) = (entry.action.clone(), entry.id.clone());
        let _ = progress.send(match injectors.for_entry(entry).revert(entry).await {
            Ok(()) => Progress::Reverted { action, id },
            Err(error) => Progress::RevertFailed { action, id, error },
        });
    }
}

/// Waits for one more of the step's event than `before` counted; returns the counts.
async fn wait_for(
    step: &Step,
    mut failovers: watch::Receiver<Seen>,
    before: Seen,
    progress: &UnboundedSender<Progress>,
) -> Seen {
    let timeout = step.timeout.unwrap_or(Duration::from_secs(60));
    let event = step.event.unwrap_or(WaitEvent::Failover);
    let seen = tokio::time::timeout(timeout, async {
        loop {
            let done = failovers.borrow().of(event) > before.of(event);
            if done || failovers.changed().await.is_err() {
                return done;
            }
        }
    })
    .await;
    if !matches!(seen, Ok(true)) {
        let _ = progress.send(Progress::WaitTimedOut { event, timeout });
    }
    // Counted as waited for: at most the one more it waited for.
    let mut waited = before;
    if failovers.borrow().of(event) > before.of(event) {
        waited.bump(event);
    }
    waited
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
