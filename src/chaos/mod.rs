//! Chaos: kill pods, outages with guaranteed restore, degraded pods, CPU burn, proxy
//! latency — each one planned, printed, journaled, executed and reverted.
//!
//! The flow of every action: `<X>Args` → a plan ([`plan`]: targets chosen with a seeded
//! shuffle) → printed → stop here with `--dry-run` → the safety guard → a journal entry
//! written *before* acting ([`journal`]) → the action ([`execute`], kube-rs only) → wait
//! for the duration or Ctrl-C/SIGTERM → revert → journal entry closed. `resil chaos revert`
//! undoes whatever a killed resil left open. This file is the command layer; the scenario
//! runner drives the same pieces.

pub mod execute;
pub mod journal;
pub mod plan;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use rand::RngExt;
use rand::SeedableRng;
use rand::rngs::StdRng;

use crate::Exit;
use crate::cli::{
    ChaosArgs, ChaosCommand, ChaosCommonArgs, CpuBurnArgs, DegradeArgs, GlobalArgs, KillPodsArgs,
    LatencyArgs, OutageArgs, TargetArgs,
};
use crate::cluster::events::{self, Involved, Severity};
use crate::results::RunDir;
use crate::results::timeline::{Event, EventKind};
use execute::Scope;
use journal::{Entry, Journal, Undo};
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
    }
}

/// Everything an action needs once connected.
struct Session {
    scope: Scope,
    context: String,
    journal: Journal,
    out: Option<RunDir>,
    dry_run: bool,
}

impl Session {
    async fn open(common: &ChaosCommonArgs, global: &GlobalArgs) -> anyhow::Result<Session> {
        let target = crate::watch::connect(global).await?;
        let state_dir = common
            .state_dir
            .clone()
            .unwrap_or_else(journal::default_state_dir);
        let out = match &common.out {
            Some(dir) => Some(
                RunDir::create(dir)
                    .with_context(|| format!("creating results directory {}", dir.display()))?,
            ),
            None => None,
        };
        Ok(Session {
            scope: Scope {
                client: target.client,
                namespace: global
                    .namespace
                    .clone()
                    .unwrap_or_else(|| crate::watch::DEMO_NAMESPACE.to_string()),
            },
            context: target.context,
            journal: Journal::new(&state_dir),
            out,
            dry_run: common.dry_run,
        })
    }

    /// Prints the plan; says whether to go on (not with `--dry-run`).
    fn announce(&self, lines: &[String]) -> bool {
        println!(
            "plan (context {}, namespace {}):",
            self.context, self.scope.namespace
        );
        for line in lines {
            println!("  {line}");
        }
        if self.dry_run {
            println!("dry run: nothing was changed");
        }
        !self.dry_run
    }

    fn entry(&self, action: &str, targets: Vec<String>, detail: String, undo: Undo) -> Entry {
        let now = crate::results::now_ms();
        Entry {
            id: format!("{action}-{}", uuid::Uuid::new_v4().simple()),
            action: action.to_string(),
            context: self.context.clone(),
            namespace: self.scope.namespace.clone(),
            targets,
            detail,
            injected_at: now,
            revert_at: None,
            undo,
            reverted_at: None,
        }
    }

    /// Journals, acts, records. When the action fails half-way, what it did is reverted.
    async fn inject<F>(
        &self,
        mut entry: Entry,
        duration: Option<Duration>,
        act: F,
    ) -> anyhow::Result<Entry>
    where
        F: AsyncFnOnce(&Scope) -> Result<(), execute::ExecuteError>,
    {
        entry.revert_at = duration.and_then(|d| {
            chrono::Duration::from_std(d)
                .ok()
                .map(|d| entry.injected_at + d)
        });
        self.journal.record(&entry)?;
        if let Err(e) = act(&self.scope).await {
            let _ = self.scope.revert(&entry).await;
            self.journal.close(&entry.id, crate::results::now_ms())?;
            return Err(anyhow::Error::new(e).context(format!("injecting {}", entry.action)));
        }
        self.timeline(EventKind::ChaosInjected {
            id: entry.id.clone(),
            action: entry.action.clone(),
            targets: entry.targets.clone(),
            detail: entry.detail.clone(),
        })?;
        self.event(&entry, Severity::Warning, "ChaosInjected", &entry.detail)
            .await;
        Ok(entry)
    }

    /// Reverts and closes an entry.
    async fn revert(&self, entry: &Entry) -> anyhow::Result<()> {
        self.scope
            .revert(entry)
            .await
            .with_context(|| format!("reverting {} ({})", entry.action, entry.id))?;
        self.journal.close(&entry.id, crate::results::now_ms())?;
        self.timeline(EventKind::ChaosReverted {
            id: entry.id.clone(),
            action: entry.action.clone(),
            targets: entry.targets.clone(),
            detail: entry.detail.clone(),
        })?;
        self.event(
            entry,
            Severity::Normal,
            "ChaosReverted",
            &format!("reverted: {}", entry.detail),
        )
        .await;
        Ok(())
    }

    fn timeline(&self, kind: EventKind) -> anyhow::Result<()> {
        if let Some(dir) = &self.out {
            dir.timeline()?.append(&Event::now("chaos", kind))?;
        }
        Ok(())
    }

    async fn event(&self, entry: &Entry, severity: Severity, reason: &str, message: &str) {
        for target in &entry.targets {
            let (kind, name) = match target.split_once('/') {
                Some(("deployment", n)) => ("Deployment", n),
                Some(("service", n)) => ("Service", n),
                Some((_, n)) => ("Pod", n),
                None => ("Pod", target.as_str()),
            };
            let api_version = if kind == "Deployment" {
                "apps/v1"
            } else {
                "v1"
            };
            let involved = Involved {
                api_version,
                kind,
                name,
            };
            events::emit(
                &self.scope.client,
                &self.scope.namespace,
                involved,
                severity,
                reason,
                message,
                execute::MANAGER,
            )
            .await;
        }
    }

    /// Holds a timed fault for `duration`, then reverts it — also on Ctrl-C or SIGTERM.
    async fn hold_and_revert(&self, entry: Entry, duration: Duration) -> anyhow::Result<Exit> {
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
            () = interrupt() => true,
        };
        self.revert(&entry).await?;
        println!("reverted {} ({})", entry.action, entry.id);
        Ok(if interrupted {
            Exit::Interrupted
        } else {
            Exit::Ok
        })
    }
}

/// Resolves on Ctrl-C or SIGTERM.
async fn interrupt() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        // Ctrl-C in the terminal.
        _ = tokio::signal::ctrl_c() => {}
        // `kill` or a supervisor stopping us.
        () = term => {}
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

/// Chooses pods now; an empty choice is an error that says what matched.
async fn choose(
    session: &Session,
    selection: &Selection,
    seed: u64,
) -> anyhow::Result<Vec<String>> {
    let candidates = session.scope.candidates(&selection.selector).await?;
    let chosen = selection.choose(&candidates, Utc::now(), seed);
    if chosen.is_empty() {
        anyhow::bail!(
            "no pod to target: {} pod(s) match `{}` in {}, none eligible (terminating or \
             younger than --min-age). Is the demo deployed (`resil status`)?",
            candidates.len(),
            selection.selector,
            session.scope.namespace
        );
    }
    Ok(chosen)
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
    let selection = selection(&args.target, args.min_age)?;
    let seed = seed(&args.target);
    let mut rng = StdRng::seed_from_u64(seed);
    let how = if args.force {
        "force-delete (grace 0)"
    } else {
        "delete (graceful)"
    };
    let first = choose(&session, &selection, rng.random()).await?;
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
    guard(&session, global)?;
    let mut chosen = first;
    for round in 1..=args.times {
        if round > 1 {
            let every = args.every.unwrap_or_default();
            let jitter = every.mul_f64(rng.random_range(0.0..0.2));
            tokio::select! {
                // The interval between rounds.
                () = tokio::time::sleep(every + jitter) => {}
                // Stop between rounds; nothing is left to revert.
                () = interrupt() => return Ok(Exit::Interrupted),
            }
            chosen = match choose(&session, &selection, rng.random()).await {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("round {round}: {e:#}");
                    continue;
                }
            };
        }
        let entry = session.entry(
            "kill-pods",
            chosen.iter().map(|p| format!("pod/{p}")).collect(),
            format!("{how} {}", chosen.join(", ")),
            Undo::Nothing,
        );
        let force = args.force;
        let pods = chosen.clone();
        let entry = session
            .inject(entry, None, async move |scope: &Scope| {
                for pod in &pods {
                    scope.kill(pod, force).await?;
                }
                Ok(())
            })
            .await?;
        session.journal.close(&entry.id, crate::results::now_ms())?;
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
    let replicas = session.scope.replicas(&deployment).await?;
    if replicas == 0 {
        anyhow::bail!(
            "deployment/{deployment} already has 0 replicas: nothing to take down (is another \
             outage open? `resil chaos revert` restores it)"
        );
    }
    let lines = [format!(
        "scale deployment/{deployment} from {replicas} to 0 for {}, then back to {replicas}",
        humantime::format_duration(args.duration)
    )];
    if !session.announce(&lines) {
        return Ok(Exit::Ok);
    }
    guard(&session, global)?;
    let entry = session.entry(
        "outage",
        vec![format!("deployment/{deployment}")],
        format!("{deployment} scaled {replicas} → 0"),
        Undo::Replicas {
            deployment: deployment.clone(),
            replicas,
        },
    );
    let target = deployment.clone();
    let entry = session
        .inject(entry, Some(args.duration), async move |scope: &Scope| {
            scope.scale(&target, 0).await
        })
        .await?;
    session.hold_and_revert(entry, args.duration).await
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
    let chosen = choose(&session, &selection, seed).await?;
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
    guard(&session, global)?;
    // The app's own deadline: a safety net if neither we nor `chaos revert` come back.
    let until: DateTime<Utc> = Utc::now() + chrono::Duration::from_std(duration)?;
    let faults = Faults {
        until: Some(until),
        ..faults
    };
    let entry = session.entry(
        action,
        chosen.iter().map(|p| format!("pod/{p}")).collect(),
        format!("{faults} on {}", chosen.join(", ")),
        Undo::PodFaults {
            pods: chosen.clone(),
            faults: faults.clone(),
        },
    );
    let entry = session
        .inject(entry, Some(duration), async move |scope: &Scope| {
            for pod in &chosen {
                scope.set_faults(pod, &faults).await?;
            }
            Ok(())
        })
        .await?;
    session.hold_and_revert(entry, duration).await
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
    let previous = session.scope.proxy_fault(&args.service).await?;
    let mut lines = vec![format!(
        "service/{}: {} on the lab's Service proxy for {}",
        args.service,
        fault.annotation(),
        humantime::format_duration(args.duration)
    )];
    if session.context != "resil-lab" {
        lines.push(format!(
            "note: proxy latency is a lab-only fault; on {} the annotation is set but no \
             proxy honours it (use a service mesh or tc netem there)",
            session.context
        ));
    }
    if !session.announce(&lines) {
        return Ok(Exit::Ok);
    }
    guard(&session, global)?;
    let entry = session.entry(
        "latency",
        vec![format!("service/{}", args.service)],
        fault.annotation(),
        Undo::ProxyFault {
            service: args.service.clone(),
            previous,
        },
    );
    let service = args.service.clone();
    let value = fault.annotation();
    let entry = session
        .inject(entry, Some(args.duration), async move |scope: &Scope| {
            scope.set_proxy_fault(&service, Some(&value)).await
        })
        .await?;
    session.hold_and_revert(entry, args.duration).await
}

async fn revert(common: ChaosCommonArgs, global: &GlobalArgs) -> anyhow::Result<Exit> {
    let state_dir: PathBuf = common
        .state_dir
        .clone()
        .unwrap_or_else(journal::default_state_dir);
    let journal = Journal::new(&state_dir);
    let open = journal.open_entries()?;
    if open.is_empty() {
        println!(
            "nothing to revert ({} has no open fault)",
            journal.path().display()
        );
        return Ok(Exit::Ok);
    }
    let session = Session::open(&common, global).await?;
    for entry in &open {
        println!(
            "revert {} ({}) in {} / {}: {}",
            entry.action, entry.id, entry.context, entry.namespace, entry.detail
        );
    }
    if session.dry_run {
        println!("dry run: nothing was changed");
        return Ok(Exit::Ok);
    }
    let mut failed = 0;
    for entry in &open {
        if entry.context != session.context {
            eprintln!(
                "skipping {}: it was injected into context {}, not {} (pass --context {})",
                entry.id, entry.context, session.context, entry.context
            );
            failed += 1;
            continue;
        }
        let scoped = Session {
            scope: Scope {
                client: session.scope.client.clone(),
                namespace: entry.namespace.clone(),
            },
            context: session.context.clone(),
            journal: journal.clone(),
            out: session.out.clone(),
            dry_run: false,
        };
        match scoped.revert(entry).await {
            Ok(()) => println!("reverted {} ({})", entry.action, entry.id),
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

/// The safety guard every mutating path goes through.
fn guard(session: &Session, global: &GlobalArgs) -> anyhow::Result<()> {
    crate::watch::guard_mutation(&session.context, global)
}

fn stamp(at: DateTime<Utc>) -> String {
    at.format("%H:%M:%S%.3f").to_string()
}
