//! The predictive autoscaler (`resil autoscale --predictive`): forecasts the demo's demand
//! and raises the HPA's minReplicas *ahead* of it, within a cost budget, restoring the
//! original minReplicas on exit (and through the chaos journal after a crash).
//!
//! [`forecast`] holds the demand models behind the `Forecaster` trait; [`planner`] turns a
//! forecast into a minReplicas with its explanation (pure); [`source`] reads demand (load
//! buckets of a results directory, or CPU from the metrics API); [`controller`] patches the
//! HPA, journals and records. This file is the command layer: it resolves
//! `AutoscaleArgs`, connects, runs the loop until `--duration`, Ctrl-C or SIGTERM, and
//! prints the decisions.

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
use tokio::time::Instant;

pub use controller::{Controller, Settings, Tick};

use crate::Exit;
use crate::chaos::execute::{ExecuteError, Scope};
use crate::chaos::journal::{self, Journal, JournalError};
use crate::cli::{AutoscaleArgs, GlobalArgs};
use crate::cost::pricing::PricingProfile;
use crate::results::{ResultsError, RunDir, RunMeta};
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
const MAX_FAILED_TICKS: u32 = 3;

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
    /// Resolves the command line (`context` comes from the connection).
    pub fn from_args(
        args: &AutoscaleArgs,
        global: &GlobalArgs,
        context: &str,
    ) -> anyhow::Result<AutoscalePlan> {
        if !args.predictive {
            anyhow::bail!(
                "`resil autoscale` needs --predictive (the HPA on its own is the reactive \
                 baseline; there is nothing to run without it)"
            );
        }
        if args.interval.is_zero() {
            anyhow::bail!("--interval must be longer than zero (e.g. 5s)");
        }
        if let Some(c) = args.capacity
            && !(c.is_finite() && c > 0.0)
        {
            anyhow::bail!("--capacity must be a positive rate, e.g. --capacity 25 (req/s per pod)");
        }
        let pricing = PricingProfile::resolve(&args.pricing)
            .with_context(|| format!("resolving --pricing {}", args.pricing))?;
        if args.sample_step.is_zero() {
            anyhow::bail!("--sample-step must be longer than zero (e.g. 10s)");
        }
        let smoothing = forecast::Smoothing {
            step_s: args.sample_step.as_secs_f64(),
            ..forecast::Smoothing::default()
        };
        Ok(AutoscalePlan {
            settings: Settings {
                namespace: global
                    .namespace
                    .clone()
                    .unwrap_or_else(|| crate::watch::DEMO_NAMESPACE.to_string()),
                context: context.to_string(),
                hpa: args
                    .hpa
                    .clone()
                    .unwrap_or_else(|| format!("web-{}", args.color)),
                headroom: parse_headroom(&args.headroom)?,
                look_ahead: args.look_ahead,
                max_replicas: args.max_replicas,
                budget_per_hour: args.budget.as_deref().map(parse_budget).transpose()?,
                pricing,
                smoothing,
                period: args.period,
                capacity: args.capacity,
            },
            from: args.from.clone(),
            out: args.out.clone().or_else(|| args.from.clone()),
            interval: args.interval,
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
    let dir = RunDir::create(path)
        .with_context(|| format!("creating results directory {}", path.display()))?;
    if dir.read_meta().is_err() {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        dir.write_meta(&RunMeta::start(name, "autoscale"))?;
    }
    Ok(dir)
}

/// `resil autoscale`
pub async fn command(args: AutoscaleArgs, global: &GlobalArgs) -> anyhow::Result<Exit> {
    // kube's rustls needs one process-wide crypto provider and cannot pick one when more
    // than one is compiled in; choose ring (an Err only means one is installed already).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let target = crate::watch::connect(global).await?;
    let plan = AutoscalePlan::from_args(&args, global, &target.context)?;
    let settings = plan.settings.clone();
    let scope = Scope {
        client: target.client.clone(),
        namespace: settings.namespace.clone(),
    };
    let demand = match &plan.from {
        Some(path) => Demand::timeline(results_dir(path)?),
        None => {
            let selector = pod_selector(&target.client, &settings.namespace, &settings.hpa).await?;
            Demand::metrics(target.client.clone(), &settings.namespace, selector)
        }
    };
    let out = plan.out.as_ref().map(results_dir).transpose()?;
    let journal = Journal::new(&plan.state_dir);
    let mut controller = Controller::start(scope, settings.clone(), journal, demand, out)
        .await
        .with_context(|| format!("starting the autoscaler on hpa/{}", settings.hpa))?;
    eprintln!(
        "autoscale: driving hpa/{} in {} (original minReplicas {}, journaled in {}); {}",
        settings.hpa,
        settings.namespace,
        controller.original_min(),
        plan.state_dir.display(),
        match plan.duration {
            Some(d) => format!("stopping after {}", humantime::format_duration(d)),
            None => "Ctrl-C stops and restores".to_string(),
        }
    );

    let result = run(&mut controller, &plan).await;
    // Restore whatever happened in the loop: the HPA must not keep a raised floor.
    let restored = controller.restore().await;
    match &restored {
        Ok(min) => println!(
            "autoscale: restored minReplicas of hpa/{} to {min}",
            settings.hpa
        ),
        Err(e) => eprintln!(
            "resil: could not restore minReplicas ({e:#}); run `resil chaos revert` to retry"
        ),
    }
    let exit = result?;
    restored.context("restoring minReplicas")?;
    Ok(exit)
}

/// Ticks until the duration is over, an interrupt arrives, or ticks keep failing.
async fn run(controller: &mut Controller, plan: &AutoscalePlan) -> anyhow::Result<Exit> {
    let deadline = plan.duration.map(|d| Instant::now() + d);
    let mut ticker = tokio::time::interval(plan.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failed = 0;
    let mut last_waiting: Option<String> = None;
    let interrupt = crate::chaos::interrupt();
    tokio::pin!(interrupt);
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
            // --duration is over: leave (the caller restores).
            () = until_deadline => return Ok(Exit::Ok),
            // Ctrl-C or SIGTERM: leave at once; the caller restores.
            () = &mut interrupt => return Ok(Exit::Interrupted),
        }
        match controller.tick().await {
            Ok(tick) => {
                failed = 0;
                report(&tick, &mut last_waiting);
            }
            Err(e) => {
                failed += 1;
                eprintln!("autoscale: tick failed ({failed}/{MAX_FAILED_TICKS}): {e:#}");
                if failed >= MAX_FAILED_TICKS {
                    return Err(anyhow::Error::new(e).context("the autoscaler kept failing"));
                }
            }
        }
    }
}

/// Prints a tick when it changes something or starts waiting for a new reason.
fn report(tick: &Tick, last_waiting: &mut Option<String>) {
    if let Some(why) = &tick.waiting {
        if last_waiting.as_ref() != Some(why) {
            eprintln!("autoscale: waiting: {why}");
            *last_waiting = Some(why.clone());
        }
        return;
    }
    *last_waiting = None;
    if let (Some(plan), true) = (&tick.plan, tick.patched) {
        println!("autoscale: {} — {}", plan.action, plan.rule);
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
