//! The failover watcher (kube::runtime watchers over the demo) and the recorder of
//! failover time and scaling latency.
//!
//! [`failover`] holds the decision rules as a pure, clock-injected policy; [`state`] the
//! watcher's picture of the demo; [`recorder`] derives the figures; [`streams`] are the
//! resumable kube-rs watches; [`lease`] is the leader election that keeps two watchers from
//! fighting; [`controller`] runs the watches and acts; [`outliers`] is the pure outlier-ejection rule and [`eject`] runs it
//! beside the controller (`--eject-outliers`). This file is the command layer: it resolves `WatchArgs` into a
//! [`WatchPlan`], connects, and renders what the controller reports.

pub mod controller;
pub mod eject;
pub mod failover;
pub mod lease;
pub mod outliers;
pub mod recorder;
pub mod state;
pub mod streams;

use std::io::IsTerminal;

use anyhow::Context;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub use controller::{Ended, Outcome, Update, WatchPlan};

use crate::Exit;
use crate::cli::{GlobalArgs, WatchArgs};
use crate::cluster::{self, ConnectOptions, Guard};
use crate::results::{RunDir, RunStatus};

impl WatchPlan {
    /// Resolves the command line.
    pub fn from_args(args: &WatchArgs, global: &GlobalArgs) -> anyhow::Result<WatchPlan> {
        if args.once && args.timeout.is_none() {
            anyhow::bail!(
                "--once needs --timeout so it cannot wait forever (e.g. `resil watch --once \
                 --timeout 2m`)"
            );
        }
        Ok(WatchPlan {
            namespace: ConnectOptions::from_global(global).namespace,
            service: "web".to_string(),
            policy: failover::Policy {
                primary: args.primary,
                ready_min: args.ready_min.max(1),
                stable_for: args.stable_for,
                prepare_standby: args.prepare_standby,
            },
            observe_only: args.observe_only,
            once: args.once,
            timeout: args.timeout,
        })
    }
}

/// The leader election `resil watch` takes part in (`None` with `--no-lease`).
pub fn election_from_args(args: &WatchArgs, plan: &WatchPlan) -> Option<lease::ElectionConfig> {
    if args.no_lease || plan.observe_only {
        return None;
    }
    let identity = args
        .identity
        .clone()
        .unwrap_or_else(lease::default_identity);
    Some(lease::ElectionConfig::new(
        &controller::lease_name(&plan.service),
        &identity,
        args.lease_duration,
    ))
}

/// `resil watch`
pub async fn command(args: WatchArgs, global: &GlobalArgs) -> anyhow::Result<Exit> {
    let plan = WatchPlan::from_args(&args, global)?;
    let election = election_from_args(&args, &plan);
    // Observing needs no permission; switching the Service goes through the guard.
    let guard = if plan.observe_only {
        None
    } else {
        Some(Guard::from_environment(&global.allow_context)?)
    };
    let target = cluster::connect(&ConnectOptions::from_global(global), guard.as_ref()).await?;
    let out = match &args.out {
        Some(path) => {
            let (dir, mut meta) = RunDir::join_or_start(path, "watch")
                .with_context(|| format!("creating results directory {}", path.display()))?;
            meta.context = Some(target.context.clone());
            dir.write_meta(&meta)?;
            Some(dir)
        }
        None => None,
    };

    let (tx, rx) = mpsc::unbounded_channel();
    let shutdown = CancellationToken::new();
    let interrupted = CancellationToken::new();
    {
        let (shutdown, interrupted) = (shutdown.clone(), interrupted.clone());
        tokio::spawn(async move {
            crate::exit::interrupted().await;
            interrupted.cancel();
            shutdown.cancel();
        });
    }
    let mut metrics = crate::metrics::Metrics::new();
    let control = crate::metrics::control::ControlMetrics::register(metrics.registry());
    let exporter = crate::metrics::serve_if_asked(&args.metrics, metrics).await?;
    let control = exporter.as_ref().map(|_| control);
    let view = tokio::spawn(render(rx, std::io::stderr().is_terminal(), control));
    let lease_line = match &election {
        Some(e) => format!(
            "; lease {}/{} as {} ({} lease)",
            plan.namespace,
            e.lease,
            e.identity,
            humantime::format_duration(e.duration)
        ),
        None => String::new(),
    };
    eprintln!(
        "watching service/{} in {} on {} (primary {}, ready-min {}, stable-for {}{}){lease_line}",
        plan.service,
        plan.namespace,
        target.context,
        plan.policy.primary.as_str(),
        plan.policy.ready_min,
        humantime::format_duration(plan.policy.stable_for),
        if plan.observe_only {
            ", observe-only"
        } else if plan.policy.prepare_standby {
            ", capacity-aware"
        } else {
            ""
        }
    );
    let once = plan.once;
    let ejector = match (&out, args.eject_outliers) {
        (Some(dir), true) => {
            let scope = crate::chaos::execute::Scope {
                client: target.client.clone(),
                namespace: plan.namespace.clone(),
            };
            let eject = eject::EjectPlan {
                dir: dir.clone(),
                window: std::time::Duration::from_secs(10),
                settings: outliers::Settings::default(),
            };
            Some(tokio::spawn(eject::run(
                scope,
                eject,
                tx.clone(),
                shutdown.clone(),
            )))
        }
        _ => None,
    };
    let stop_ejector = shutdown.clone();
    let result = controller::run_with(
        target.client.clone(),
        plan,
        election,
        out.clone(),
        tx,
        shutdown,
    )
    .await;
    // The ejector holds a sender too: stop it so the view sees the channel close.
    stop_ejector.cancel();
    if let Some(task) = ejector {
        let _ = task.await;
    }
    let _ = view.await;
    let outcome = result.context("watching the demo")?;

    if let Some(dir) = &out {
        let mut meta = dir.read_meta()?;
        meta.ended_at = Some(crate::results::now_ms());
        meta.status = match outcome.ended {
            Ended::Cancelled if interrupted.is_cancelled() => RunStatus::Partial,
            _ => RunStatus::Complete,
        };
        if meta.status == RunStatus::Partial {
            meta.partial_reason = Some("interrupted".to_string());
        }
        dir.write_meta(&meta)?;
    }
    print_figures(&outcome);
    Ok(match outcome.ended {
        Ended::Cancelled if interrupted.is_cancelled() => Exit::Interrupted,
        // `--once` that saw no failover within its timeout: the SLO "it fails over" failed.
        Ended::TimedOut if once => Exit::SloFailed,
        _ => Exit::Ok,
    })
}

/// Prints the live view: one line per decision, failover and warning; on a TTY also a
/// status line that updates in place. Feeds `metrics` (`--metrics-addr`) on the way.
async fn render(
    mut rx: mpsc::UnboundedReceiver<Update>,
    tty: bool,
    metrics: Option<std::sync::Arc<crate::metrics::control::ControlMetrics>>,
) {
    let bar = if tty {
        let bar = indicatif::ProgressBar::new_spinner();
        bar.enable_steady_tick(std::time::Duration::from_millis(200));
        Some(bar)
    } else {
        None
    };
    let say = |line: String| match &bar {
        Some(bar) => bar.println(line),
        None => eprintln!("{line}"),
    };
    while let Some(update) = rx.recv().await {
        if let Some(m) = &metrics {
            m.watch(&update);
        }
        match update {
            Update::Snapshot(s) => {
                if let Some(bar) = &bar {
                    bar.set_message(snapshot_line(&s));
                }
            }
            Update::Decision { rule, action } => say(format!("{} [{rule}] {action}", stamp())),
            Update::Failover(f) => say(format!(
                "{} {} {} → {} completed in {} ms{}",
                stamp(),
                f.direction,
                f.from,
                f.to,
                f.duration_ms,
                f.prepare_ms
                    .map(|ms| format!(" (standby prepared in {ms} ms)"))
                    .unwrap_or_default()
            )),
            Update::Warning(w) => say(format!("{} warning: {w}", stamp())),
        }
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
}

fn stamp() -> String {
    chrono::Utc::now().format("%H:%M:%S%.3f").to_string()
}

fn snapshot_line(s: &controller::Snapshot) -> String {
    let active = s.selected.map(|c| c.as_str()).unwrap_or("?");
    let ready: Vec<String> = s
        .ready
        .iter()
        .map(|(c, n)| format!("{}={n}", c.as_str()))
        .collect();
    let hpas: Vec<String> = s
        .hpas
        .iter()
        .map(|(c, cur, want, cpu)| {
            let cpu = cpu.map(|u| format!(" cpu {u}%")).unwrap_or_default();
            format!("{} {cur}→{want}{cpu}", c.as_str())
        })
        .collect();
    let last = s
        .last_failover
        .as_ref()
        .map(|f| format!(" | last {} {} ms", f.direction, f.duration_ms))
        .unwrap_or_default();
    format!(
        "active {active} ({} serving) | ready {} | hpa {}{last}",
        s.serving,
        ready.join(" "),
        if hpas.is_empty() {
            "-".to_string()
        } else {
            hpas.join(", ")
        }
    )
}

/// The figures at the end (stdout, so scripts can read them).
fn print_figures(outcome: &Outcome) {
    let summary = &outcome.summary;
    if summary.failovers.is_empty() {
        println!("no failover in {:.1} s", summary.duration_s);
    }
    for f in &summary.failovers {
        println!(
            "{} {} → {}: {} ms (started {}){}",
            f.direction,
            f.from,
            f.to,
            f.duration_ms,
            f.started_at.format("%H:%M:%S%.3f"),
            f.prepare_ms
                .map(|ms| format!(", standby prepared in {ms} ms"))
                .unwrap_or_default()
        );
    }
    for s in &summary.scaling {
        match s.latency_ms {
            Some(ms) => println!(
                "scale-up {} {} → {}: ready in {ms} ms",
                s.color, s.from_replicas, s.to_replicas
            ),
            None => println!(
                "scale-up {} {} → {}: not ready by the end",
                s.color, s.from_replicas, s.to_replicas
            ),
        }
    }
}
