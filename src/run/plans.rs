//! A scenario's sections as the command lines of the commands they stand for — `resil
//! deploy`, `resil load`, `resil autoscale --predictive` — parsed by clap and resolved by
//! each command's own `Plan`, so a scenario accepts exactly what the commands accept and
//! validates it the same way. Called by `run::command`.

use std::path::Path;

use clap::Parser;
use k8s_openapi::api::core::v1::Service;
use kube::api::Api;

use super::scenario::Scenario;
use crate::autoscale::AutoscalePlan;
use crate::cli::{Cli, Command, DeployArgs};
use crate::cluster::Target;

fn d(duration: std::time::Duration) -> String {
    humantime::format_duration(duration).to_string()
}

/// `resil deploy` with the scenario's options (and `--manifests`, when given).
pub fn deploy_args(scenario: &Scenario, manifests: Option<&Path>) -> anyhow::Result<DeployArgs> {
    let mut argv = vec!["resil".to_string(), "deploy".to_string()];
    if let Some(dir) = manifests {
        argv.extend(["--manifests".to_string(), dir.display().to_string()]);
    }
    if let Some(r) = scenario.deploy.replicas {
        argv.extend(["--replicas".to_string(), r.to_string()]);
    }
    if let Some(c) = scenario.deploy.active {
        argv.extend(["--active".to_string(), c.as_str().to_string()]);
    }
    if let Some(i) = &scenario.deploy.image {
        argv.extend(["--image".to_string(), i.clone()]);
    }
    if let Some(p) = scenario.deploy.node_port {
        argv.extend(["--node-port".to_string(), p.to_string()]);
    }
    match Cli::try_parse_from(argv)?.command {
        Command::Deploy(args) => Ok(args),
        _ => unreachable!("parsed a deploy command line"),
    }
}

/// The load plan of the scenario, through the flags `resil load` takes.
pub async fn load_plan(
    scenario: &Scenario,
    target: &Target,
) -> anyhow::Result<crate::load::LoadPlan> {
    let load = &scenario.load;
    let url = match &load.url {
        Some(url) => url.clone(),
        None => {
            let port = node_port(target).await;
            crate::demo::deploy::confirmed_service_url(target, port)
                .await?
                .url
        }
    };
    let mut argv = vec![
        "resil".to_string(),
        "load".to_string(),
        url,
        "--duration".to_string(),
        d(load.duration),
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
        argv.extend(["--timeout".to_string(), d(t)]);
    }
    if !load.keepalive {
        argv.push("--no-keepalive".to_string());
    }
    let Command::Load(args) = Cli::try_parse_from(argv)?.command else {
        unreachable!("parsed a load command line");
    };
    Ok(crate::load::LoadPlan::from_args(&args)?)
}

/// The NodePort of the demo's Service `web` (the built-in manifests' 30080 when it
/// cannot be read: the load's connection error then names the URL).
async fn node_port(target: &Target) -> i32 {
    let api: Api<Service> = Api::namespaced(target.client.clone(), &target.namespace);
    api.get("web")
        .await
        .ok()
        .and_then(|s| s.spec?.ports?.first()?.node_port)
        .unwrap_or(DEFAULT_NODE_PORT)
}

/// The NodePort of the built-in manifests.
const DEFAULT_NODE_PORT: i32 = 30080;

/// The predictive autoscaler of the scenario (`None` when it has none or turns it off),
/// reading demand from and recording into `dir`, journaling into `state_dir`.
pub fn autoscale_plan(
    scenario: &Scenario,
    target: &Target,
    dir: &Path,
    state_dir: &Path,
) -> anyhow::Result<Option<AutoscalePlan>> {
    let Some(a) = scenario.autoscale.as_ref().filter(|a| a.predictive) else {
        return Ok(None);
    };
    let path = |p: &Path| p.display().to_string();
    let mut argv = vec![
        "resil".to_string(),
        "autoscale".to_string(),
        "--predictive".to_string(),
        "--from".to_string(),
        path(dir),
        "--state-dir".to_string(),
        path(state_dir),
    ];
    let mut flag = |name: &str, value: Option<String>| {
        if let Some(v) = value {
            argv.extend([format!("--{name}"), v]);
        }
    };
    flag("color", a.color.map(|c| c.as_str().to_string()));
    flag("headroom", a.headroom.clone());
    flag("look-ahead", a.look_ahead.map(d));
    flag("max-replicas", a.max_replicas.map(|r| r.to_string()));
    flag("budget", a.budget.clone());
    flag("pricing", a.pricing.clone());
    flag("capacity", a.capacity.map(|c| c.to_string()));
    flag("period", a.period.map(d));
    flag("interval", a.interval.map(d));
    flag("sample-step", a.sample_step.map(d));
    let Command::Autoscale(args) = Cli::try_parse_from(argv)?.command else {
        unreachable!("parsed an autoscale command line");
    };
    Ok(Some(AutoscalePlan::from_args(
        &args,
        &target.namespace,
        &target.context,
    )?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scenarios_node_port_reaches_resil_deploy() {
        let scenario = Scenario::parse(
            "name: np\ndeploy: {node_port: 31234}\nload: {rate: 1, duration: 1s}\n",
        )
        .unwrap();
        let args = deploy_args(&scenario, None).unwrap();
        assert_eq!(args.node_port, Some(31_234));
        let scenario = Scenario::parse("name: np\nload: {rate: 1, duration: 1s}\n").unwrap();
        assert_eq!(deploy_args(&scenario, None).unwrap().node_port, None);
    }
}
