//! Chaos: kill pods, outages with guaranteed restore, degraded pods, CPU burn, proxy
//! latency — each one planned, printed, journaled, executed and reverted.
//!
//! The flow of every action: `<X>Args` → the safety guard (skipped with `--dry-run`,
//! checked on the kubeconfig before any request) → a plan ([`plan`]: targets chosen with a
//! seeded shuffle) → printed → stop here with `--dry-run` → a journal entry written
//! *before* acting, refused while another fault is open on a target ([`journal`]) → the
//! action ([`execute`], kube-rs only) → wait for the duration or Ctrl-C/SIGTERM → revert
//! (compare-and-restore) → journal entry closed. `resil chaos revert` undoes whatever a
//! killed resil left open, guarded like every action. This file is the command layer; the scenario
//! runner drives the same pieces.

pub mod execute;
mod infra;
pub mod injector;
pub mod journal;
pub mod nodes;
pub mod plan;
pub mod region;

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use futures::FutureExt;
use rand::RngExt;
use rand::SeedableRng;
use rand::rngs::StdRng;

use crate::Exit;
use crate::cli::{
    ChaosArgs, ChaosCommand, ChaosCommonArgs, CpuBurnArgs, DegradeArgs, GlobalArgs, KillPodsArgs,
    LatencyArgs, OutageArgs, RevertArgs, TargetArgs,
};
use crate::results::RunDir;
use execute::Scope;
use injector::Injector;
use journal::{Entry, Journal};
use plan::{Amount, Faults, ProxyFault, Selection};

/// The most rounds `kill-pods --every` will run.
const MAX_ROUNDS: u32 = 1000;

/// `resil chaos ...`
pub async fn command(args: ChaosArgs, global: &GlobalArgs) -> anyhow::Result<Exit> {
    match args.command {
        ChaosCommand::KillPods(a) => kill_pods(a, global).await,
        ChaosCommand::Outage(a) => outage(a, global).await,
        ChaosCommand::Degrade(a) => degrade(a, global).await,
        ChaosCommand::CpuBurn(a) => cpu_burn(a, global).await,
        ChaosCommand::Latency(a) => latency(a, global).await,
        ChaosCommand::Revert(a) => revert(a, global).await,
        ChaosCommand::NodeFailure(a) => infra::node_failure(a, global).await,
        ChaosCommand::ZoneOutage(a) => infra::zone_outage(a, global).await,
        ChaosCommand::Drain(a) => infra::drain(a, global).await,
        ChaosCommand::RegionOutage(a) => infra::region_outage(a, global).await,
    }
}

/// A connected injector plus the command line's dry-run switch.
struct Session {
    injector: Injector,
    dry_run: bool,
}

impl Session {
    async fn open(common: &ChaosCommonArgs, global: &GlobalArgs) -> anyhow::Result<Session> {
        // A dry run changes nothing, so it works anywhere; anything else asks the guard
        // before the first request, on the kubeconfig alone.
        let guard = if common.dry_run {
            None
        } else {
            Some(crate::cluster::Guard::from_environment(
                &global.allow_context,
            )?)
        };
        let target = crate::cluster::connect(
            &crate::cluster::ConnectOptions::from_global(global),
            guard.as_ref(),
        )
        .await?;
        let state_dir = common
            .state_dir
            .clone()
            .unwrap_or_else(journal::default_state_dir);
        let out = match &common.out {
            Some(dir) => Some(
                RunDir::join_or_start(dir, "chaos")
                    .with_context(|| format!("creating results directory {}", dir.display()))?
                    .0,
            ),
            None => None,
        };
        Ok(Session {
            injector: Injector {
                scope: Scope {
                    client: target.client,
                    namespace: target.namespace,
                },
                context: target.context,
                journal: Journal::new(&state_dir),
                out,
            },
            dry_run: common.dry_run,
        })
    }

    fn context(&self) -> &str {
        &self.injector.context
    }

    /// Prints the plan; says whether to go on (not with `--dry-run`).
    fn announce(&self, lines: &[String]) -> bool {
        println!(
            "plan (context {}, namespace {}):",
            self.context(),
            self.injector.scope.namespace
        );
        for line in lines {
            println!("  {line}");
        }
        if self.dry_run {
            println!("dry run: nothing was changed");
        }
        !self.dry_run
    }

    /// Holds a timed fault for `duration`, then reverts it — also on Ctrl-C or SIGTERM,
    /// including one that came while the fault was being injected.
    async fn hold_and_revert(
        &self,
        entry: Entry,
        duration: Duration,
        mut interruption: Interruption,
    ) -> anyhow::Result<Exit> {
        eprintln!(
            "injected {} ({}); reverting in {} — Ctrl-C reverts now",
            entry.action,
            entry.id,
            humantime::format_duration(duration)
        );
        let interrupted = tokio::select! {
            // The fault ran its course.
            () = tokio::time::sleep(duration) => false,
            // The user (or a supervisor) wants out: revert first, then leave.
            () = &mut interruption.0 => true,
        };
        let undone = self.injector.restore(&entry).await?;
        if !undone.gone.is_empty() {
            anyhow::bail!(
                "{} disappeared during the {}: nothing was left to restore there{} (the \
                 journal entry {} is closed)",
                undone.gone.join(", "),
                entry.action,
                if undone.gone.len() < entry.targets.len() {
                    "; the other targets were reverted"
                } else {
                    ""
                },
                entry.id
            );
        }
        println!("{}", reverted_line(&entry, &undone));
        Ok(if interrupted {
            Exit::Interrupted
        } else {
            Exit::Ok
        })
    }
}

/// Ctrl-C or SIGTERM, listened for from the moment this is made: a signal that arrives
/// while a fault is being injected is kept, and the fault is reverted as soon as it is in
/// place, instead of the default handler ending the process with the fault set.
struct Interruption(Pin<Box<dyn Future<Output = ()> + Send>>);

impl Interruption {
    fn listen() -> Interruption {
        let mut signal: Pin<Box<dyn Future<Output = ()> + Send>> =
            Box::pin(crate::exit::interrupted());
        // tokio installs the signal handlers when the future is first polled.
        let _ = FutureExt::now_or_never(&mut signal);
        Interruption(signal)
    }
}

fn seed(target: &TargetArgs) -> u64 {
    target.seed.unwrap_or_else(rand::random)
}

fn selection(target: &TargetArgs, min_age: Option<Duration>) -> anyhow::Result<Selection> {
    let amount = Amount::from_flags(target.count, target.percent)?;
    Ok(Selection::new(
        target.color,
        target.selector.as_deref(),
        amount,
        min_age,
    )?)
}

async fn kill_pods(args: KillPodsArgs, global: &GlobalArgs) -> anyhow::Result<Exit> {
    if args.times == 0 || args.times > MAX_ROUNDS {
        anyhow::bail!("--times must be between 1 and {MAX_ROUNDS}");
    }
    if args.times > 1 && args.every.is_none() {
        anyhow::bail!(
            "--times {} needs --every INTERVAL between rounds",
            args.times
        );
    }
    let session = Session::open(&args.common, global).await?;
    let injector = &session.injector;
    let selection = selection(&args.target, args.min_age)?;
    let seed = seed(&args.target);
    let mut rng = StdRng::seed_from_u64(seed);
    let how = if args.force {
        "force-delete (grace 0)"
    } else {
        "delete (graceful)"
    };
    let first = injector.choose(&selection, rng.random()).await?;
    let mut lines = vec![
        format!(
            "{how} {} pod(s) matching `{}`: {}",
            first.len(),
            selection.selector,
            first.join(", ")
        ),
        format!("seed {seed} (pass --seed {seed} to repeat these choices)"),
    ];
    if let Some(every) = args.every {
        lines.push(format!(
            "{} round(s), every {} with up to 20% random jitter; later rounds choose again",
            args.times,
            humantime::format_duration(every)
        ));
    }
    if !session.announce(&lines) {
        return Ok(Exit::Ok);
    }
    let mut chosen = first;
    for round in 1..=args.times {
        if round > 1 {
            let every = args.every.unwrap_or_default();
            let jitter = every.mul_f64(rng.random_range(0.0..0.2));
            tokio::select! {
                // The interval between rounds.
                () = tokio::time::sleep(every + jitter) => {}
                // Stop between rounds; nothing is left to revert.
                () = crate::exit::interrupted() => return Ok(Exit::Interrupted),
            }
            chosen = match injector.choose(&selection, rng.random()).await {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("round {round}: {e:#}");
                    continue;
                }
            };
        }
        let entry = injector.kill_pods(&chosen, args.force).await?;
        println!(
            "{} round {round}/{}: killed {}",
            stamp(entry.injected_at),
            args.times,
            chosen.join(", ")
        );
    }
    Ok(Exit::Ok)
}

async fn outage(args: OutageArgs, global: &GlobalArgs) -> anyhow::Result<Exit> {
    let session = Session::open(&args.common, global).await?;
    let deployment = format!("web-{}", args.color.as_str());
    let replicas = session.injector.scope.replicas(&deployment).await?;
    let lines = [format!(
        "scale deployment/{deployment} from {replicas} to 0 for {}, then back to {replicas}",
        humantime::format_duration(args.duration)
    )];
    if !session.announce(&lines) {
        return Ok(Exit::Ok);
    }
    let interruption = Interruption::listen();
    let entry = session.injector.outage(args.color, args.duration).await?;
    session
        .hold_and_revert(entry, args.duration, interruption)
        .await
}

async fn pod_faults(
    action: &str,
    target: &TargetArgs,
    faults: Faults,
    duration: Duration,
    common: &ChaosCommonArgs,
    global: &GlobalArgs,
) -> anyhow::Result<Exit> {
    let session = Session::open(common, global).await?;
    let selection = selection(target, None)?;
    let seed = seed(target);
    let chosen = session.injector.choose(&selection, seed).await?;
    let lines = [
        format!(
            "{faults} on {} pod(s) for {}: {}",
            chosen.len(),
            humantime::format_duration(duration),
            chosen.join(", ")
        ),
        format!("seed {seed} (pass --seed {seed} to repeat these choices)"),
        "the pods revert by themselves at the end even if resil is killed".to_string(),
    ];
    if !session.announce(&lines) {
        return Ok(Exit::Ok);
    }
    let interruption = Interruption::listen();
    let entry = session
        .injector
        .pod_faults(action, &chosen, faults, duration)
        .await?;
    session.hold_and_revert(entry, duration, interruption).await
}

async fn degrade(args: DegradeArgs, global: &GlobalArgs) -> anyhow::Result<Exit> {
    let faults = Faults::from_mode(&args.mode)?;
    pod_faults(
        "degrade",
        &args.target,
        faults,
        args.duration,
        &args.common,
        global,
    )
    .await
}

async fn cpu_burn(args: CpuBurnArgs, global: &GlobalArgs) -> anyhow::Result<Exit> {
    if args.load == 0 || args.load > 100 {
        anyhow::bail!(
            "--load is a share of one core in percent, 1 to 100, not {}",
            args.load
        );
    }
    let faults = Faults {
        cpu_burn_percent: args.load,
        ..Faults::default()
    };
    pod_faults(
        "cpu-burn",
        &args.target,
        faults,
        args.duration,
        &args.common,
        global,
    )
    .await
}

async fn latency(args: LatencyArgs, global: &GlobalArgs) -> anyhow::Result<Exit> {
    let fault = ProxyFault::new(args.delay, args.jitter, args.loss)?;
    let session = Session::open(&args.common, global).await?;
    let mut lines = vec![format!(
        "service/{}: {} on the lab's Service proxy for {}",
        args.service,
        fault.annotation(),
        humantime::format_duration(args.duration)
    )];
    if session.context() != "resil-lab" {
        lines.push(format!(
            "note: proxy latency is a lab-only fault; on {} the annotation is set but no \
             proxy honours it (use a service mesh or tc netem there)",
            session.context()
        ));
    }
    if !session.announce(&lines) {
        return Ok(Exit::Ok);
    }
    let interruption = Interruption::listen();
    let entry = session
        .injector
        .proxy_fault(&args.service, &fault, args.duration)
        .await?;
    session
        .hold_and_revert(entry, args.duration, interruption)
        .await
}

async fn revert(args: RevertArgs, global: &GlobalArgs) -> anyhow::Result<Exit> {
    let common = args.common;
    let state_dir: PathBuf = common
        .state_dir
        .clone()
        .unwrap_or_else(journal::default_state_dir);
    let journal = Journal::new(&state_dir);
    let mut open = journal.open_entries()?;
    if let Some(id) = &args.id {
        open.retain(|e| e.id == *id);
        if open.is_empty() {
            anyhow::bail!(
                "{} has no open fault with id {id}; `resil chaos revert --dry-run` lists the \
                 open ones",
                journal.path().display()
            );
        }
    }
    if open.is_empty() {
        println!(
            "nothing to revert ({} has no open fault)",
            journal.path().display()
        );
        return Ok(Exit::Ok);
    }
    for entry in &open {
        println!(
            "revert {} ({}) in {} / {}: {}",
            entry.action, entry.id, entry.context, entry.namespace, entry.detail
        );
    }
    if common.dry_run {
        println!("dry run: nothing was changed");
        return Ok(Exit::Ok);
    }
    let mut failed = 0;
    for entry in &open {
        // Each fault goes back to the cluster and namespace it was injected into, whatever
        // the current context is now.
        let mut scoped = global.clone();
        scoped.context = Some(entry.context.clone());
        scoped.namespace = Some(entry.namespace.clone());
        let reverted = async {
            // A revert changes the cluster like any fault: the guard decides (in `open`,
            // before any request), on the context as the kubeconfig has it now.
            let session = Session::open(&common, &scoped).await?;
            session.injector.restore(entry).await
        };
        match reverted.await {
            Ok(undone) => println!("{}", reverted_line(entry, &undone)),
            Err(e) => {
                eprintln!("error: {e:#}");
                failed += 1;
            }
        }
    }
    if failed > 0 {
        anyhow::bail!(
            "{failed} fault(s) still open; fix the cause and run `resil chaos revert` again"
        );
    }
    Ok(Exit::Ok)
}

/// `reverted ACTION (ID)`, plus what was gone or changed by someone else and left alone.
fn reverted_line(entry: &Entry, undone: &execute::Undone) -> String {
    let mut line = format!("reverted {} ({})", entry.action, entry.id);
    if !undone.gone.is_empty() {
        line.push_str(&format!(
            "; {} no longer exist(s): nothing to restore there",
            undone.gone.join(", ")
        ));
    }
    for changed in &undone.changed {
        line.push_str(&format!("; {changed}"));
    }
    line
}

fn stamp(at: DateTime<Utc>) -> String {
    at.format("%H:%M:%S%.3f").to_string()
}
