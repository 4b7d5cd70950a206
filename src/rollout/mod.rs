//! `resil rollout`: change the release of one colour under load and judge it — a rolling
//! update through the Deployment (waited for as `kubectl rollout status` waits), or canary
//! steps by share of pods (`--canary 10,50,100`: canary pods beside the stable ones behind
//! the same Service, no mesh); with `--analysis`, the command generates load against the
//! demo Service itself, judges it once per `--interval` and on the first breach rolls back
//! to the previous revision as `kubectl rollout undo` does, then exits 1. Every
//! ReplicaSet's replicas, each step, interval and the rollback land in a results
//! directory that `resil report` reads.
//!
//! Split: [`plan`] checks the flags (shared with a scenario's `rollout` step), [`analysis`]
//! judges intervals, [`decide`] holds the pure decisions, [`engine`] runs the loop; this
//! file connects, runs the load, prints and picks the exit code.

pub mod analysis;
pub mod decide;
pub mod engine;
pub mod plan;

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;

pub use engine::{Engine, Outcome, Update};
pub use plan::{RolloutPlan, RolloutSpec};

use crate::Exit;
use crate::cli::{GlobalArgs, RolloutArgs};
use crate::cluster::release::Releases;
use crate::cluster::{ConnectOptions, Guard, Target};
use crate::load::{LoadPlan, LoadReport};
use crate::results::{RunDir, RunMeta, RunStatus};
use crate::spec::LoadSpec;

/// Load buckets queued for the analysis before the oldest is dropped.
const BUCKET_QUEUE: usize = 64;

/// `resil rollout`
pub async fn command(args: RolloutArgs, global: &GlobalArgs) -> anyhow::Result<Exit> {
    let plan = RolloutPlan::resolve(args.color, &args.spec).map_err(anyhow::Error::msg)?;
    let guard = Guard::from_environment(&global.allow_context)?;
    let target =
        crate::cluster::connect(&ConnectOptions::from_global(global), Some(&guard)).await?;
    let dir = match &args.out {
        Some(path) => {
            RunDir::start(path).with_context(|| format!("creating {}", path.display()))?
        }
        None => RunDir::create_new(Path::new("results"), &format!("rollout-{}", plan.color))
            .context("creating a run directory under results/")?,
    };
    let mut meta = RunMeta::start(
        dir.path()
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        "rollout",
    );
    meta.context = Some(target.context.clone());
    dir.write_meta(&meta)?;
    eprintln!(
        "rollout {} to {} on {}{}",
        plan.deployment(),
        plan.change.describe(),
        target.context,
        plan.analysis.as_ref().map_or(String::new(), |a| format!(
            ", judged every {} at {} req/s",
            humantime::format_duration(a.interval),
            args.rate
        ))
    );
    let (buckets, _) = broadcast::channel(BUCKET_QUEUE);
    let cancel = CancellationToken::new();
    let load = match plan.analysis {
        Some(_) => {
            let keepalive = plan.canary.is_none();
            let load = load_plan(&target, args.url.clone(), args.rate, keepalive).await?;
            meta.target_url = Some(load.url.clone());
            dir.write_meta(&meta)?;
            Some(start_load(load, &dir, buckets.clone(), cancel.clone())?)
        }
        None => None,
    };
    let (tx, mut rx) = mpsc::unbounded_channel();
    let printer = tokio::spawn(async move {
        while let Some(update) = rx.recv().await {
            // The outcome is printed on stdout, once.
            if !matches!(update, Update::Finished(_)) {
                eprintln!("  {update}");
            }
        }
    });
    let engine = Engine::new(
        Releases::new(target.client.clone(), &target.namespace),
        plan,
        buckets.subscribe(),
        Some(dir.timeline()?),
        tx,
    );
    let outcome = tokio::select! {
        outcome = engine.run() => outcome,
        () = crate::exit::interrupted() => Err(anyhow::anyhow!(
            "interrupted: the rollout stopped where it was; `kubectl rollout undo` reverts it"
        )),
    };
    let _ = printer.await;
    cancel.cancel();
    drop(buckets);
    let report = match load {
        Some(task) => Some(task.await.context("the load task")??),
        None => None,
    };
    finish(&dir, meta, report.as_ref(), outcome.as_ref().err())?;
    let outcome = outcome?;
    println!("{outcome}");
    if let Some(r) = &report {
        println!(
            "load: {} requests, {} errors ({:.3}%) at {:.0} req/s",
            r.summary.requests,
            r.summary.errors,
            r.summary.errors as f64 * 100.0 / r.summary.requests.max(1) as f64,
            r.summary.achieved_rate
        );
    }
    println!(
        "results: {} (`resil report` shows them)",
        dir.path().display()
    );
    Ok(match outcome {
        Outcome::RolledBack { .. } => Exit::SloFailed,
        Outcome::Complete { .. } | Outcome::Unchanged => Exit::Ok,
    })
}

/// The analysis load: `rate` req/s at `url`, or at the demo Service's NodePort once it
/// answered from this cluster's demo. Stopped by the command, so its length is a bound.
/// A canary gets its share only of new connections (the Service balances per
/// connection), so a canary's load opens one per request (`keepalive` false).
async fn load_plan(
    target: &Target,
    url: Option<String>,
    rate: f64,
    keepalive: bool,
) -> anyhow::Result<LoadPlan> {
    let url = match url {
        Some(url) => url,
        None => {
            let port = crate::run::plans::node_port(target).await;
            crate::demo::deploy::confirmed_service_url(target, port)
                .await?
                .url
        }
    };
    let spec = LoadSpec {
        url: Some(url),
        duration: Some(Duration::from_secs(6 * 3600)),
        requests: None,
        concurrency: None,
        rate: Some(rate),
        ramp: None,
        path: None,
        method: "GET".into(),
        headers: vec![],
        body: None,
        timeout: Some(Duration::from_secs(2)),
        keepalive,
        workers: None,
        recovery_successes: None,
        write_ratio: None,
        verify_url: None,
    };
    Ok(LoadPlan::from_spec(&spec)?)
}

/// Runs the load until `cancel`, appending its events to the timeline and sending its
/// one-second buckets to the analysis.
fn start_load(
    plan: LoadPlan,
    dir: &RunDir,
    buckets: broadcast::Sender<crate::results::Event>,
    cancel: CancellationToken,
) -> anyhow::Result<tokio::task::JoinHandle<anyhow::Result<LoadReport>>> {
    let mut timeline = dir.timeline()?;
    Ok(tokio::spawn(async move {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let forward = async {
            while let Some(event) = rx.recv().await {
                let _ = timeline.append(&event);
                let _ = buckets.send(event);
            }
        };
        let (report, ()) = tokio::join!(crate::load::run(&plan, cancel, tx), forward);
        Ok(report?)
    }))
}

/// Writes the load's files and closes `run.json` (partial when the rollout failed).
fn finish(
    dir: &RunDir,
    mut meta: RunMeta,
    report: Option<&LoadReport>,
    error: Option<&anyhow::Error>,
) -> anyhow::Result<()> {
    if let Some(report) = report {
        crate::load::report::write_load_files(dir, report)?;
    }
    meta.ended_at = Some(crate::results::now_ms());
    match error {
        None => meta.status = RunStatus::Complete,
        Some(e) => {
            meta.status = RunStatus::Partial;
            meta.partial_reason = Some(format!("the rollout failed: {e:#}"));
        }
    }
    dir.write_meta(&meta)?;
    Ok(())
}
