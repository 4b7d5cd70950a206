//! Scenario files and the runner that orchestrates deploy, watch, load and chaos on one
//! clock. This file is the command layer: it resolves the target (starting the lab when
//! the scenario wants it), and for each `--repeat` round and each variant deploys, waits
//! for the steady state, runs [`runner`], prints the report (a variant against the first)
//! with every SLO verdict ([`crate::judge`], the same as `resil report` gives later); then
//! puts the variants side by side ([`compare`]) and returns the worst verdict as the exit
//! code.

pub mod compare;
pub mod lab;
pub mod plans;
pub mod progress;
pub mod regions;
pub mod resolve;
pub mod runner;
pub mod scenario;

/// The verdict modules the runner and the scenario checks use, under their old paths.
pub use crate::judge::{fail_fast, window};

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::Api;
use tokio_util::sync::CancellationToken;

use crate::Exit;
use crate::cli::{GlobalArgs, RunArgs};
use crate::cluster::{self, ConnectOptions, Guard, LAB_CONTEXT, Target};
use crate::results::RunDir;
use runner::Ending;
use scenario::Scenario;

/// `resil run`
pub async fn command(args: RunArgs, global: &GlobalArgs) -> anyhow::Result<Exit> {
    if args.explain {
        print!("{}", scenario::EXPLAIN);
        return Ok(Exit::Ok);
    }
    if args.repeat == 0 || args.repeat > 100 {
        anyhow::bail!("--repeat must be between 1 and 100");
    }
    let scenario = Scenario::load(&args.scenario)?;
    let runs = checked_runs(&scenario, &args)?;

    let mut global = global.clone();
    let multi_region = !scenario.regions.is_empty();
    if multi_region && global.context.is_some() {
        anyhow::bail!(
            "{} names the context of each of its regions (regions:); leave out --context",
            args.scenario.display()
        );
    }
    let use_lab = scenario.target.lab && global.context.is_none() && !multi_region;
    if use_lab {
        ensure_lab(&scenario.target.lab_up_args()).await?;
        global.context = Some(LAB_CONTEXT.to_string());
    } else if let Some(context) = &scenario.target.context {
        global.context.get_or_insert(context.clone());
    }
    let guard = Guard::from_environment(&global.allow_context)?;
    let regions = match multi_region {
        true => regions::connect(&scenario, &global, &guard).await?,
        false => Vec::new(),
    };
    let target = match regions.first() {
        // The first region is the active one: the watcher and the dashboard follow it.
        Some(first) => {
            global.context = Some(first.spec.context());
            first.target.clone()
        }
        None => cluster::connect(&ConnectOptions::from_global(&global), Some(&guard)).await?,
    };
    let lab_settings = lab::applies(&target, &scenario.target).await?;
    if lab_settings {
        // Every region is a lab set up alike; one cluster is the target.
        let labs: Vec<&Target> = match regions.is_empty() {
            true => vec![&target],
            false => regions.iter().map(|r| &r.target).collect(),
        };
        for lab in labs {
            lab::check_layout(lab, &scenario.target).await?;
        }
    }
    eprintln!(
        "scenario {} on {} ({}){}",
        scenario.name,
        target.context,
        target.server,
        if args.time_scale == 1.0 {
            String::new()
        } else {
            format!(", durations × {}", args.time_scale)
        }
    );
    // The autoscaler's flags are checked before anything is deployed.
    let state_dir = crate::chaos::journal::default_state_dir();
    for run in &runs {
        plans::autoscale_plan(run, &target, Path::new("."), &state_dir)
            .with_context(|| format!("the autoscale section of {}", run.name))?;
    }

    let seed = args.seed.unwrap_or_else(rand::random);
    eprintln!("seed {seed} (pass --seed {seed} to repeat the random choices)");
    let interrupt = CancellationToken::new();
    {
        let interrupt = interrupt.clone();
        tokio::spawn(async move {
            crate::exit::interrupted().await;
            interrupt.cancel();
        });
    }
    let mut metrics = crate::metrics::Metrics::new();
    let load_metrics = metrics.register_load();
    let run_metrics = crate::metrics::control::RunMetrics::register(metrics.registry());
    let exporter = crate::metrics::serve_if_asked(&args.metrics, metrics).await?;
    let session = Session {
        metrics: exporter.as_ref().map(|_| (load_metrics, run_metrics)),
        args: &args,
        scenario: &scenario,
        global: &global,
        target: &target,
        state_dir: &state_dir,
        seed,
        interrupt,
        lab_settings,
        regions: &regions,
    };
    let exit = session.rounds(&runs).await;
    drop(exporter);
    exit
}

/// One scenario per variant, every duration shortened or stretched by --time-scale, with
/// their abort rules and SLOs checked (and a note when --fail-fast can decide nothing).
fn checked_runs(scenario: &Scenario, args: &RunArgs) -> anyhow::Result<Vec<Scenario>> {
    let runs = scenario
        .runs()
        .iter()
        .map(|s| s.scaled(args.time_scale))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow::anyhow!(e))?;
    if args.fail_fast
        && runs
            .iter()
            .all(|r| fail_fast::FailFast::new(&r.slos, &r.window_slos).is_empty())
    {
        eprintln!(
            "note: --fail-fast: no SLO of this scenario can be decided before a run ends \
             (only downtime<, failover_time<, p99< windows and error_rate< windows with a \
             `to` can), so it stops only between runs"
        );
    }
    for run in &runs {
        for rule in &run.abort {
            runner::AbortRule::parse(rule)?;
        }
        let slos = run.slos.join(",");
        if !slos.is_empty() {
            crate::judge::slo::parse_list(&slos)
                .with_context(|| format!("the slos of {}", args.scenario.display()))?;
        }
    }
    Ok(runs)
}

/// What every run of one `resil run` shares.
struct Session<'a> {
    args: &'a RunArgs,
    scenario: &'a Scenario,
    global: &'a GlobalArgs,
    target: &'a Target,
    /// The chaos journal's directory (the autoscaler journals there too).
    state_dir: &'a Path,
    seed: u64,
    /// Cancelled on Ctrl-C.
    interrupt: CancellationToken,
    /// Whether the scenario's lab settings apply (the target is a lab and it sets some).
    lab_settings: bool,
    /// A multi-region scenario's regions (the first is `target`); empty otherwise.
    regions: &'a [regions::Region],
    /// `--metrics-addr`: where the load publishes, and what the progress feeds.
    metrics: Option<(
        std::sync::Arc<crate::metrics::load::LoadMetrics>,
        crate::metrics::control::RunMetrics,
    )>,
}

impl Session<'_> {
    /// Every `--repeat` round of every variant; the worst verdict.
    async fn rounds(&self, runs: &[Scenario]) -> anyhow::Result<Exit> {
        let args = self.args;
        let mut worst = Exit::Ok;
        for round in 1..=args.repeat {
            if args.repeat > 1 {
                eprintln!("round {round}/{}", args.repeat);
            }
            let mut done: Vec<compare::VariantRun> = Vec::new();
            let mut stopped = false;
            for (run, variant) in runs.iter().zip(variant_names(self.scenario)) {
                if let Some(v) = &variant {
                    eprintln!("variant {v}");
                }
                let baseline = done.first().map(|first| first.dir.clone());
                let (dir, ending, exit) = self.one(run, baseline).await?;
                worst = match (&ending, exit) {
                    (Ending::Interrupted, _) => return Ok(Exit::Interrupted),
                    (Ending::StepFailed(_), _) => Exit::Error,
                    (_, _) if worst == Exit::Error => Exit::Error,
                    (Ending::Aborted(_), _) | (_, Exit::SloFailed) => Exit::SloFailed,
                    (_, e) if worst == Exit::Ok => e,
                    _ => worst,
                };
                done.push(compare::VariantRun {
                    variant: variant.unwrap_or_else(|| run.name.clone()),
                    dir,
                });
                if args.fail_fast && worst != Exit::Ok {
                    stopped = true;
                    break;
                }
            }
            if done.len() > 1 {
                side_by_side(self.scenario, &done)?;
            }
            if stopped {
                eprintln!("--fail-fast: stopping after the first failed run");
                break;
            }
        }
        Ok(worst)
    }

    /// One run: deploys, waits for the steady state, runs, prints its report (against
    /// `baseline`); its directory, how it ended and the report's verdict.
    async fn one(
        &self,
        run: &Scenario,
        baseline: Option<PathBuf>,
    ) -> anyhow::Result<(PathBuf, Ending, Exit)> {
        let (args, target) = (self.args, self.target);
        // Every run starts from the scenario's deployment: a previous run may have
        // failed over, scaled or killed pods.
        if !run.deploy.skip {
            match self.regions.is_empty() {
                true => deploy(run, args.manifests.as_deref(), self.global).await?,
                false => regions::deploy(run, self.regions, args.manifests.as_deref()).await?,
            }
        }
        let active = run.deploy.active.unwrap_or(crate::cli::Color::Blue);
        steady_state(target, active, &run.steady_state, "before the load").await?;
        for region in self.regions.iter().skip(1) {
            let when = format!("before the load, in region {}", region.spec.name);
            steady_state(&region.target, active, &run.steady_state, &when).await?;
        }
        if self.lab_settings {
            lab::check_toleration(target, &self.scenario.target, active.as_str()).await?;
        }
        let dir = RunDir::create_new(&args.out, &run.name)
            .with_context(|| format!("creating a run directory under {}", args.out.display()))?;
        let across = self.region_run(run).await?;
        let mut load = match &across {
            Some(across) => {
                let mut through = run.clone();
                through.load.url = Some(format!("{}/", across.plan.load_base()));
                if through.load.write_ratio.is_some() && through.load.verify_url.is_none() {
                    through.load.verify_url = Some(across.plan.verify_urls());
                }
                plans::load_plan(&through, target).await?
            }
            None => plans::load_plan(run, target).await?,
        };
        if let Some((sink, _)) = &self.metrics {
            load.metrics = crate::metrics::load::LoadSink::to(sink.clone());
        }
        let autoscale = plans::autoscale_plan(run, target, dir.path(), self.state_dir)?;
        let engines = runner::Engines {
            load,
            autoscale,
            fail_fast: args.fail_fast,
            regions: across,
        };
        // The command line's `--dashboard` wins over the scenario's `dashboard:`.
        let dashboard = match args.dashboard.or(run.dashboard.port()) {
            Some(port) => Some(self.dashboard(port, &dir).await?),
            None => None,
        };
        let observe = |p: &runner::Progress| {
            if let Some((_, m)) = &self.metrics {
                m.progress(p);
            }
        };
        let ending = progress::printed_observed(
            |progress| {
                runner::run(
                    run,
                    target,
                    &dir,
                    engines,
                    self.seed,
                    self.interrupt.clone(),
                    progress,
                )
            },
            observe,
        )
        .await?;
        if ending == Ending::Complete
            && let Err(e) = steady_state(target, active, &run.steady_state, "after the load").await
        {
            eprintln!("warning: {e:#}");
        }
        // Every verdict, window SLOs included, is the report's: `resil report DIR` gives
        // the same later.
        let exit = report(&dir, baseline)?;
        if let Some(dashboard) = dashboard {
            dashboard.finish().await;
        }
        println!("results: {}", dir.path().display());
        Ok((dir.path().to_path_buf(), ending, exit))
    }
}

impl Session<'_> {
    /// A multi-region run's plan across the regions (`None` for one cluster).
    async fn region_run(&self, run: &Scenario) -> anyhow::Result<Option<runner::RegionRun>> {
        if self.regions.is_empty() {
            return Ok(None);
        }
        Ok(Some(runner::RegionRun {
            plan: regions::Plan {
                urls: regions::urls(self.regions).await?,
                gateway: run.gateway.clone(),
                replication: run.replication.clone(),
            },
            targets: (self.regions.iter())
                .map(|r| (r.spec.name.clone(), r.target.clone()))
                .collect(),
        }))
    }

    /// `--dashboard`: the live page of this run, following the cluster and `dir`.
    async fn dashboard(
        &self,
        port: u16,
        dir: &RunDir,
    ) -> anyhow::Result<crate::dashboard::Dashboard> {
        let plan = crate::dashboard::DashboardPlan {
            port,
            watch: Some(crate::dashboard::observer(
                ConnectOptions::from_global(self.global).namespace,
            )),
            follow: Some(dir.path().to_path_buf()),
            replay: None,
        };
        let dashboard = crate::dashboard::start(plan, Some(self.target.client.clone()))
            .await
            .context("starting the dashboard")?;
        eprintln!("dashboard at {}", dashboard.url());
        Ok(dashboard)
    }
}

/// The variant names in run order (`None` for a scenario without variants).
fn variant_names(scenario: &Scenario) -> Vec<Option<String>> {
    if scenario.variants.is_empty() {
        vec![None]
    } else {
        scenario
            .variants
            .iter()
            .map(|v| Some(v.name.clone()))
            .collect()
    }
}

/// Prints the variants side by side and stores the table (Markdown and JSON) in the last
/// variant's results directory.
fn side_by_side(scenario: &Scenario, runs: &[compare::VariantRun]) -> anyhow::Result<()> {
    let target = scenario.compare.p99_target.or_else(|| {
        scenario.slos.iter().find_map(|s| {
            use crate::judge::{LatencyStat, slo};
            let slo = slo::parse(s).ok()?;
            (slo.metric == slo::Metric::Latency(LatencyStat::P99))
                .then(|| Duration::from_secs_f64(slo.threshold / 1000.0))
        })
    });
    let table = compare::side_by_side(runs, target)?;
    let markdown = table.markdown();
    println!(
        "\n{}: variants side by side\n{}",
        scenario.name,
        table.terminal()
    );
    if let Some(last) = runs.last() {
        crate::atomic::write(&last.dir.join("comparison.md"), markdown.as_bytes())?;
        crate::atomic::write_json(&last.dir.join("comparison.json"), &table)?;
        println!("comparison: {}", last.dir.join("comparison.md").display());
    }
    Ok(())
}

/// Starts the lab in the background unless one already answers (`resil lab up` is
/// idempotent: a running lab says so and exits 0), with the scenario's `lab up` flags.
async fn ensure_lab(flags: &[String]) -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("finding the resil binary")?;
    let status = tokio::process::Command::new(exe)
        .args(["lab", "up"])
        .args(flags)
        .status()
        .await
        .context("running `resil lab up`")?;
    if !status.success() {
        anyhow::bail!("`resil lab up` failed ({status}); see its message above");
    }
    Ok(())
}

/// Deploys the demo with the scenario's options, as `resil deploy` would.
async fn deploy(
    scenario: &Scenario,
    manifests: Option<&Path>,
    global: &GlobalArgs,
) -> anyhow::Result<()> {
    let args = plans::deploy_args(scenario, manifests);
    let exit = crate::demo::deploy_command(args, global).await?;
    if exit != Exit::Ok {
        anyhow::bail!("deploying the demo did not succeed");
    }
    Ok(())
}

/// Waits until the active colour has the ready pods the steady state asks for.
async fn steady_state(
    target: &Target,
    active: crate::cli::Color,
    check: &scenario::SteadyState,
    when: &str,
) -> anyhow::Result<()> {
    let api: Api<Deployment> = Api::namespaced(target.client.clone(), &target.namespace);
    let name = format!("web-{}", active.as_str());
    let min = i32::try_from(check.ready_min).unwrap_or(i32::MAX);
    let wait = async {
        loop {
            if let Ok(d) = api.get(&name).await
                && d.status.and_then(|s| s.ready_replicas).unwrap_or(0) >= min
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    };
    tokio::time::timeout(check.timeout, wait)
        .await
        .map_err(|_| {
            anyhow::anyhow!(
                "steady state {when}: deployment/{name} did not have {min} ready pod(s) within {} \
                 (check `resil status`)",
                humantime::format_duration(check.timeout)
            )
        })
}

/// Prints the run's report as terminal tables, piped or not (a CI log is read as text;
/// `resil report DIR -o markdown` gives the Markdown); its SLO verdict is the exit code.
fn report(dir: &RunDir, baseline: Option<PathBuf>) -> anyhow::Result<Exit> {
    let stdout = std::io::stdout();
    let plan = crate::report::ReportPlan {
        dir: dir.path().to_path_buf(),
        format: crate::cli::ReportFormat::Table,
        slos: None,
        baseline,
        pricing: None,
    };
    let mut out = stdout.lock();
    Ok(crate::report::generate(&plan, &mut out)?)
}
