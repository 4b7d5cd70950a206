//! Scenario files and the runner that orchestrates deploy, watch, load and chaos on one
//! clock. This file is the command layer: it resolves the target (starting the lab when
//! the scenario wants it), deploys, waits for the steady state, runs [`runner`] once per
//! `--repeat`, prints the report and returns the SLO verdict as the exit code.

pub mod runner;
pub mod scenario;

use std::io::IsTerminal;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::Api;
use tokio_util::sync::CancellationToken;

use crate::Exit;
use crate::cli::{Cli, Command, GlobalArgs, RunArgs};
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
    for rule in &scenario.abort {
        runner::AbortRule::parse(rule)?;
    }
    let slos = scenario.slos.join(",");
    if !slos.is_empty() {
        crate::report::slo::parse_list(&slos)
            .with_context(|| format!("the slos of {}", args.scenario.display()))?;
    }

    let mut global = global.clone();
    let use_lab = scenario.target.lab && global.context.is_none();
    if use_lab {
        ensure_lab().await?;
        global.context = Some(LAB_CONTEXT.to_string());
    } else if let Some(context) = &scenario.target.context {
        global.context.get_or_insert(context.clone());
    }
    let guard = Guard::from_environment(&global.allow_context)?;
    let target = cluster::connect(&ConnectOptions::from_global(&global), Some(&guard)).await?;
    eprintln!(
        "scenario {} on {} ({})",
        scenario.name, target.context, target.server
    );

    if !scenario.deploy.skip {
        deploy(&scenario, &global).await?;
    }
    let active = scenario.deploy.active.unwrap_or(crate::cli::Color::Blue);
    steady_state(&target, active, &scenario.steady_state, "before the load").await?;

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

    let mut worst = Exit::Ok;
    for round in 1..=args.repeat {
        let dir = RunDir::create_new(&args.out, &scenario.name)
            .with_context(|| format!("creating a run directory under {}", args.out.display()))?;
        if args.repeat > 1 {
            eprintln!("run {round}/{}: {}", args.repeat, dir.path().display());
        }
        let plan = load_plan(&scenario, &target).await?;
        let ending = runner::run(&scenario, &target, &dir, plan, seed, interrupt.clone()).await?;
        if ending == Ending::Complete
            && let Err(e) =
                steady_state(&target, active, &scenario.steady_state, "after the load").await
        {
            eprintln!("warning: {e:#}");
        }
        let exit = report(&dir)?;
        println!("results: {}", dir.path().display());
        worst = match (&ending, exit) {
            (Ending::Interrupted, _) => return Ok(Exit::Interrupted),
            (Ending::Aborted(_), _) | (_, Exit::SloFailed) => Exit::SloFailed,
            (_, e) if worst == Exit::Ok => e,
            _ => worst,
        };
        if args.fail_fast && worst != Exit::Ok {
            break;
        }
    }
    Ok(worst)
}

/// Starts the lab in the background unless one already answers (`resil lab up` is
/// idempotent: a running lab says so and exits 0).
async fn ensure_lab() -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("finding the resil binary")?;
    let status = tokio::process::Command::new(exe)
        .args(["lab", "up"])
        .status()
        .await
        .context("running `resil lab up`")?;
    if !status.success() {
        anyhow::bail!("`resil lab up` failed ({status}); see its message above");
    }
    Ok(())
}

/// Deploys the demo with the scenario's options, as `resil deploy` would.
async fn deploy(scenario: &Scenario, global: &GlobalArgs) -> anyhow::Result<()> {
    let mut argv = vec!["resil".to_string(), "deploy".to_string()];
    if let Some(r) = scenario.deploy.replicas {
        argv.extend(["--replicas".to_string(), r.to_string()]);
    }
    if let Some(c) = scenario.deploy.active {
        argv.extend(["--active".to_string(), c.as_str().to_string()]);
    }
    if let Some(i) = &scenario.deploy.image {
        argv.extend(["--image".to_string(), i.clone()]);
    }
    let Command::Deploy(args) = Cli::try_parse_from(argv)?.command else {
        unreachable!("parsed a deploy command line");
    };
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

/// The load plan of the scenario, through the same flags `resil load` takes.
async fn load_plan(scenario: &Scenario, target: &Target) -> anyhow::Result<crate::load::LoadPlan> {
    let load = &scenario.load;
    let url = match &load.url {
        Some(url) => url.clone(),
        None => crate::demo::deploy::service_url(target, 30080).await.url,
    };
    let mut argv = vec![
        "resil".to_string(),
        "load".to_string(),
        url,
        "--duration".to_string(),
        humantime::format_duration(load.duration).to_string(),
    ];
    if let Some(rate) = load.rate {
        argv.extend(["--rate".to_string(), rate.to_string()]);
    }
    if let Some(c) = load.concurrency {
        argv.extend(["--concurrency".to_string(), c.to_string()]);
    }
    if let Some(ramp) = &load.ramp {
        argv.extend(["--ramp".to_string(), ramp.clone()]);
    }
    if let Some(path) = &load.path {
        argv.extend(["--path".to_string(), path.clone()]);
    }
    if let Some(t) = load.timeout {
        argv.extend([
            "--timeout".to_string(),
            humantime::format_duration(t).to_string(),
        ]);
    }
    let Command::Load(args) = Cli::try_parse_from(argv)?.command else {
        unreachable!("parsed a load command line");
    };
    Ok(crate::load::LoadPlan::from_args(&args)?)
}

/// Prints the run's report; its SLO verdict is the exit code.
fn report(dir: &RunDir) -> anyhow::Result<Exit> {
    let stdout = std::io::stdout();
    let format = if stdout.is_terminal() {
        crate::cli::ReportFormat::Table
    } else {
        crate::cli::ReportFormat::Markdown
    };
    let plan = crate::report::ReportPlan {
        dir: dir.path().to_path_buf(),
        format,
        slos: None,
        baseline: None,
        pricing: None,
    };
    let mut out = stdout.lock();
    Ok(crate::report::generate(&plan, &mut out)?)
}
