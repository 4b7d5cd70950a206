//! The predictive autoscaler (`resil autoscale --predictive`): forecasts the demo's demand
//! and raises the HPA's minReplicas *ahead* of it, within a cost budget, restoring the
//! original minReplicas on exit (and through the chaos journal after a crash).
//!
//! [`forecast`] holds the demand models behind the `Forecaster` trait; [`planner`] turns a
//! forecast into a minReplicas with its explanation (pure); [`source`] reads demand (load
//! buckets of a results directory, or CPU from the metrics API); [`controller`] patches the
//! HPA, journals and records. This file resolves `AutoscaleArgs` into an
//! [`AutoscalePlan`], offers [`launch`] and [`drive`] (the non-printing loop a scenario
//! runner can call), and is the command layer: it runs the loop until `--duration`, Ctrl-C
//! or SIGTERM, restores, and prints the decisions.

pub mod controller;
pub mod forecast;
pub mod planner;
pub mod source;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use kube::api::Api;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub use controller::{Controller, Settings, Tick};

use crate::Exit;
use crate::chaos::execute::{ExecuteError, Scope};
use crate::chaos::journal::{self, Journal, JournalError};
use crate::cli::{AutoscaleArgs, GlobalArgs};
use crate::cluster::{self, ConnectOptions, Guard, error_chain};
use crate::cost::pricing::PricingProfile;
use crate::results::{ResultsError, RunDir};
use crate::spec::autoscale_defaults as defaults;
use source::Demand;

/// Errors of the autoscaler engine.
#[derive(Debug, thiserror::Error)]
pub enum AutoscaleError {
    #[error("{what}")]
    Api {
        what: String,
        #[source]
        source: kube::Error,
    },
    #[error(
        "horizontalpodautoscaler/{hpa} not found in namespace {namespace}: is the demo \
         deployed (`resil deploy`)? Name another HPA with --hpa"
    )]
    NoHpa { hpa: String, namespace: String },
    #[error(
        "deployment/{deployment} has no CPU or memory requests, so a pod has no price and \
         --budget cannot be enforced: add requests to its pod template or drop --budget"
    )]
    NoPrice { deployment: String },
    #[error(transparent)]
    Execute(#[from] ExecuteError),
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error("reading or writing the timeline")]
    Timeline(#[source] ResultsError),
    #[error(transparent)]
    Model(#[from] forecast::ModelError),
    #[error(transparent)]
    Plan(#[from] planner::PlanError),
}

/// Ticks in a row that may fail (API hiccups) before the autoscaler gives up.
pub const MAX_FAILED_TICKS: u32 = 3;

/// `20%`, `20` (percent) → 0.2.
pub fn parse_headroom(text: &str) -> anyhow::Result<f64> {
    let number = text.trim().trim_end_matches('%').trim();
    match number.parse::<f64>() {
        Ok(v) if v.is_finite() && (0.0..=1000.0).contains(&v) => Ok(v / 100.0),
        _ => anyhow::bail!("--headroom {text:?} is not a percentage: write e.g. 20%"),
    }
}

/// `0.10/h`, `$0.10/h`, `0.10` → dollars per hour.
pub fn parse_budget(text: &str) -> anyhow::Result<f64> {
    let t = text.trim();
    let t = t.strip_prefix('$').unwrap_or(t);
    let t = t
        .strip_suffix("/h")
        .or_else(|| t.strip_suffix("/hour"))
        .unwrap_or(t);
    match t.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => anyhow::bail!(
            "--budget {text:?} is not a cost per hour: write dollars per hour, e.g. 0.10/h"
        ),
    }
}

/// The resolved command line.
#[derive(Debug, Clone)]
pub struct AutoscalePlan {
    pub settings: Settings,
    pub from: Option<PathBuf>,
    pub out: Option<PathBuf>,
    pub interval: Duration,
    pub duration: Option<Duration>,
    pub state_dir: PathBuf,
}

impl AutoscalePlan {
    /// Resolves the command line (`namespace` and `context` come from the connection).
    pub fn from_args(
        args: &AutoscaleArgs,
        namespace: &str,
        context: &str,
    ) -> anyhow::Result<AutoscalePlan> {
        let spec = &args.spec;
        if !spec.predictive {
            anyhow::bail!(
                "`resil autoscale` needs --predictive (the HPA on its own is the reactive \
                 baseline; there is nothing to run without it)"
            );
        }
        // A scenario leaves out what it does not change: the flags' defaults apply.
        let interval = spec.interval.unwrap_or(defaults::INTERVAL);
        if interval.is_zero() {
            anyhow::bail!("--interval must be longer than zero (e.g. 5s)");
        }
        if let Some(c) = spec.capacity
            && !(c.is_finite() && c > 0.0)
        {
            anyhow::bail!("--capacity must be a positive rate, e.g. --capacity 25 (req/s per pod)");
        }
        let pricing_name = spec.pricing.as_deref().unwrap_or(defaults::PRICING);
        let pricing = PricingProfile::resolve(pricing_name)
            .with_context(|| format!("resolving --pricing {pricing_name}"))?;
        let sample_step = spec.sample_step.unwrap_or(defaults::SAMPLE_STEP);
        if sample_step.is_zero() {
            anyhow::bail!("--sample-step must be longer than zero (e.g. 10s)");
        }
        let smoothing = forecast::Smoothing {
            step_s: sample_step.as_secs_f64(),
            ..forecast::Smoothing::default()
        };
        let color = spec.color.unwrap_or(defaults::COLOR);
        Ok(AutoscalePlan {
            settings: Settings {
                namespace: namespace.to_string(),
                context: context.to_string(),
                hpa: spec.hpa.clone().unwrap_or_else(|| format!("web-{color}")),
                headroom: parse_headroom(spec.headroom.as_deref().unwrap_or(defaults::HEADROOM))?,
                look_ahead: spec.look_ahead.unwrap_or(defaults::LOOK_AHEAD),
                max_replicas: spec.max_replicas,
                budget_per_hour: spec.budget.as_deref().map(parse_budget).transpose()?,
                pricing,
                smoothing,
                period: spec.period,
                capacity: spec.capacity,
            },
            from: spec.from.clone(),
            out: args.out.clone().or_else(|| spec.from.clone()),
            interval,
            duration: args.duration,
            state_dir: args
                .state_dir
                .clone()
                .unwrap_or_else(journal::default_state_dir),
        })
    }
}

/// The label selector of the pods an HPA scales (for the metrics API).
async fn pod_selector(client: &kube::Client, namespace: &str, hpa: &str) -> anyhow::Result<String> {
    let hpa_api: Api<HorizontalPodAutoscaler> = Api::namespaced(client.clone(), namespace);
    let target = hpa_api
        .get(hpa)
        .await
        .with_context(|| format!("reading horizontalpodautoscaler/{hpa} in {namespace}"))?
        .spec
        .scale_target_ref
        .name;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    let labels = deployments
        .get(&target)
        .await
        .with_context(|| format!("reading deployment/{target}"))?
        .spec
        .selector
        .match_labels
        .unwrap_or_default();
    if labels.is_empty() {
        anyhow::bail!("deployment/{target} has no matchLabels selector to read pod metrics by");
    }
    Ok(labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(","))
}

fn results_dir(path: &PathBuf) -> anyhow::Result<RunDir> {
    let (dir, _) = RunDir::join_or_start(path, "autoscale")
        .with_context(|| format!("creating results directory {}", path.display()))?;
    Ok(dir)
}

/// Connects the pieces a plan names: the demand source, the results directory, the
/// journal, and the controller (which journals the HPA's original minReplicas). For the
/// command below and for a scenario runner that drives the autoscaler beside its load.
pub async fn launch(client: kube::Client, plan: &AutoscalePlan) -> anyhow::Result<Controller> {
    let settings = plan.settings.clone();
    let demand = match &plan.from {
        Some(path) => Demand::timeline(results_dir(path)?),
        None => {
            let selector = pod_selector(&client, &settings.namespace, &settings.hpa).await?;
            Demand::metrics(client.clone(), &settings.namespace, selector)
        }
    };
    let out = plan.out.as_ref().map(results_dir).transpose()?;
    let scope = Scope {
        client,
        namespace: settings.namespace.clone(),
    };
    let hpa = settings.hpa.clone();
    Controller::start(scope, settings, Journal::new(&plan.state_dir), demand, out)
        .await
        .with_context(|| format!("starting the autoscaler on hpa/{hpa}"))
}

/// What the driving loop reports.
#[derive(Debug, Clone)]
pub enum Report {
    /// One round's outcome (boxed: a tick with its plan is far larger than a failure).
    Tick(Box<Tick>),
    /// A round failed; `attempt` of [`MAX_FAILED_TICKS`] in a row.
    Failed { error: String, attempt: u32 },
}

/// Why the driving loop stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// The duration is over.
    Elapsed,
    /// `shutdown` was cancelled.
    Cancelled,
}

/// Ticks every `interval` until `duration` is over or `shutdown` is cancelled, sending each
/// round to `reports`. Fails after [`MAX_FAILED_TICKS`] failed rounds in a row. Never
/// restores: the caller calls [`Controller::restore`] whatever this returns.
pub async fn drive(
    controller: &mut Controller,
    interval: Duration,
    duration: Option<Duration>,
    shutdown: &CancellationToken,
    reports: &mpsc::UnboundedSender<Report>,
) -> Result<Ended, AutoscaleError> {
    let deadline = duration.map(|d| Instant::now() + d);
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failed = 0;
    loop {
        let until_deadline = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            // The next round.
            _ = ticker.tick() => {}
            // The duration is over.
            () = until_deadline => return Ok(Ended::Elapsed),
            // Ctrl-C, SIGTERM, or the scenario is over.
            () = shutdown.cancelled() => return Ok(Ended::Cancelled),
        }
        match controller.tick().await {
            Ok(tick) => {
                failed = 0;
                let _ = reports.send(Report::Tick(Box::new(tick)));
            }
            Err(e) => {
                failed += 1;
                if failed >= MAX_FAILED_TICKS {
                    return Err(e);
                }
                let _ = reports.send(Report::Failed {
                    error: error_chain(&e),
                    attempt: failed,
                });
            }
        }
    }
}

/// `resil autoscale`
pub async fn command(args: AutoscaleArgs, global: &GlobalArgs) -> anyhow::Result<Exit> {
    // Patching an HPA is a mutation: only local labs, or contexts the user allowed.
    let guard = Guard::from_environment(&global.allow_context)?;
    let target = cluster::connect(&ConnectOptions::from_global(global), Some(&guard)).await?;
    let plan = AutoscalePlan::from_args(&args, &target.namespace, &target.context)?;
    let hpa = plan.settings.hpa.clone();
    let mut controller = launch(target.client.clone(), &plan).await?;
    eprintln!(
        "autoscale: driving hpa/{hpa} in {} (original minReplicas {}, journaled in {}); {}",
        plan.settings.namespace,
        controller.original_min(),
        plan.state_dir.display(),
        match plan.duration {
            Some(d) => format!("stopping after {}", humantime::format_duration(d)),
            None => "Ctrl-C stops and restores".to_string(),
        }
    );

    let shutdown = CancellationToken::new();
    let watcher = {
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            crate::exit::interrupted().await;
            shutdown.cancel();
        })
    };
    let mut metrics = crate::metrics::Metrics::new();
    let control = crate::metrics::control::ControlMetrics::register(metrics.registry());
    let exporter = crate::metrics::serve_if_asked(&args.metrics, metrics).await?;
    let control = exporter.as_ref().map(|_| control);
    let (tx, rx) = mpsc::unbounded_channel();
    let printer = tokio::spawn(print_reports(rx, control));
    let result = drive(
        &mut controller,
        plan.interval,
        plan.duration,
        &shutdown,
        &tx,
    )
    .await;
    watcher.abort();
    drop(tx);
    let _ = printer.await;
    // Restore whatever happened in the loop: the HPA must not keep a raised floor.
    let restored = controller.restore().await;
    match &restored {
        Ok(min) => println!("autoscale: restored minReplicas of hpa/{hpa} to {min}"),
        Err(e) => eprintln!(
            "resil: could not restore minReplicas ({}); run `resil chaos revert` to retry",
            error_chain(e)
        ),
    }
    let ended = result.context("the autoscaler kept failing")?;
    restored.context("restoring minReplicas")?;
    Ok(match ended {
        Ended::Elapsed => Exit::Ok,
        Ended::Cancelled => Exit::Interrupted,
    })
}

/// Prints a round when it changes something, starts waiting for a new reason, or failed.
async fn print_reports(
    mut rx: mpsc::UnboundedReceiver<Report>,
    metrics: Option<std::sync::Arc<crate::metrics::control::ControlMetrics>>,
) {
    let mut last_waiting: Option<String> = None;
    while let Some(report) = rx.recv().await {
        if let Some(m) = &metrics {
            m.autoscale(&report);
        }
        let tick = match report {
            Report::Tick(tick) => *tick,
            Report::Failed { error, attempt } => {
                eprintln!("autoscale: tick failed ({attempt}/{MAX_FAILED_TICKS}): {error}");
                continue;
            }
        };
        if let Some(why) = &tick.waiting {
            if last_waiting.as_ref() != Some(why) {
                eprintln!("autoscale: waiting: {why}");
                last_waiting = Some(why.clone());
            }
            continue;
        }
        last_waiting = None;
        if let (Some(plan), true) = (&tick.plan, tick.patched) {
            println!("autoscale: {} — {}", plan.action, plan.rule);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headroom_and_budget_parse_as_users_write_them() {
        assert_eq!(parse_headroom("20%").unwrap(), 0.2);
        assert_eq!(parse_headroom("50").unwrap(), 0.5);
        assert!(
            parse_headroom("lots")
                .unwrap_err()
                .to_string()
                .contains("20%")
        );
        assert_eq!(parse_budget("0.10/h").unwrap(), 0.10);
        assert_eq!(parse_budget("$2/hour").unwrap(), 2.0);
        assert_eq!(parse_budget("0.5").unwrap(), 0.5);
        assert!(
            parse_budget("-1/h")
                .unwrap_err()
                .to_string()
                .contains("0.10/h")
        );
    }
}
