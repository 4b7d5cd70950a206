//! A scenario's sections as the plans of the commands they stand for — `resil deploy`,
//! `resil load`, `resil autoscale --predictive`. Each section is the command's own spec
//! type ([`crate::spec`]), resolved by the command's own `Plan`, so a scenario accepts
//! exactly what the command accepts and is validated the same way. Called by
//! `run::command`.

use std::path::Path;

use k8s_openapi::api::core::v1::Service;
use kube::api::Api;

use super::scenario::Scenario;
use crate::autoscale::AutoscalePlan;
use crate::cli::{AutoscaleArgs, DeployArgs};
use crate::cluster::Target;
use crate::load::LoadPlan;
use crate::spec::{AutoscaleSpec, ROLLOUT_TIMEOUT};

/// `resil deploy` with the scenario's options (and `--manifests`, when given), waiting
/// for the rollouts as the command does by default.
pub fn deploy_args(scenario: &Scenario, manifests: Option<&Path>) -> DeployArgs {
    DeployArgs {
        manifests: manifests.map(Path::to_path_buf),
        spec: scenario.deploy.clone(),
        timeout: ROLLOUT_TIMEOUT,
        no_wait: false,
    }
}

/// The load plan of the scenario; without a `url`, the load goes to the demo Service's
/// NodePort once this cluster is confirmed to serve the demo there.
pub async fn load_plan(scenario: &Scenario, target: &Target) -> anyhow::Result<LoadPlan> {
    let mut spec = scenario.load.clone();
    if spec.url.is_none() {
        let port = node_port(target).await;
        let url = crate::demo::deploy::confirmed_service_url(target, port).await?;
        spec.url = Some(url.url);
    }
    Ok(LoadPlan::from_spec(&spec)?)
}

/// The NodePort of the demo's Service `web` (the built-in manifests' 30080 when it
/// cannot be read: the load's connection error then names the URL).
pub(crate) async fn node_port(target: &Target) -> i32 {
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
    let Some(args) = autoscale_args(scenario, dir, state_dir) else {
        return Ok(None);
    };
    Ok(Some(AutoscalePlan::from_args(
        &args,
        &target.namespace,
        &target.context,
    )?))
}

/// `resil autoscale --predictive --from DIR --state-dir STATE` with the scenario's knobs.
fn autoscale_args(scenario: &Scenario, dir: &Path, state_dir: &Path) -> Option<AutoscaleArgs> {
    let spec = scenario.autoscale.as_ref().filter(|a| a.predictive)?;
    Some(AutoscaleArgs {
        spec: AutoscaleSpec {
            from: Some(dir.to_path_buf()),
            ..spec.clone()
        },
        duration: None,
        out: None,
        state_dir: Some(state_dir.to_path_buf()),
        metrics: Default::default(),
    })
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
        let args = deploy_args(&scenario, None);
        assert_eq!(args.spec.node_port, Some(31_234));
        let scenario = Scenario::parse("name: np\nload: {rate: 1, duration: 1s}\n").unwrap();
        assert_eq!(deploy_args(&scenario, None).spec.node_port, None);
    }

    /// The command a command line (split at spaces) parses to.
    fn command(line: &str) -> crate::cli::Command {
        use clap::Parser;
        crate::cli::Cli::try_parse_from(line.split(' '))
            .unwrap()
            .command
    }

    #[test]
    fn a_scenarios_load_makes_the_plan_its_flags_make() {
        let scenario = Scenario::parse(
            "name: l\nload: {url: \"http://127.0.0.1:9/a\", ramp: \"1s:5,2s:10\", \
             duration: 4s, path: /work, timeout: 3s, keepalive: false}\n",
        )
        .unwrap();
        let crate::cli::Command::Load(args) = command(concat!(
            "resil load http://127.0.0.1:9/a --ramp 1s:5,2s:10 -d 4s --path /work ",
            "--timeout 3s --no-keepalive"
        )) else {
            panic!("not a load command")
        };
        let from_flags = LoadPlan::from_args(&args).unwrap();
        assert_eq!(LoadPlan::from_spec(&scenario.load).unwrap(), from_flags);
        assert!(!from_flags.keepalive);
    }

    #[test]
    fn a_scenarios_autoscale_makes_the_plan_its_flags_make() {
        let scenario = Scenario::parse(
            "name: a\nload: {rate: 1, duration: 1s}\nautoscale: {color: green, \
             headroom: 50%, look_ahead: 30s, max_replicas: 4, interval: 2s}\n",
        )
        .unwrap();
        let args = autoscale_args(&scenario, Path::new("out"), Path::new("state")).unwrap();
        let crate::cli::Command::Autoscale(flags) = command(concat!(
            "resil autoscale --predictive --color green --headroom 50% --look-ahead 30s ",
            "--max-replicas 4 --interval 2s --from out --state-dir state"
        )) else {
            panic!("not an autoscale command")
        };
        let plan = |a| format!("{:?}", AutoscalePlan::from_args(a, "ns", "ctx").unwrap());
        assert_eq!(plan(&args), plan(&flags));
        let off = Scenario::parse(
            "name: a\nload: {rate: 1, duration: 1s}\nautoscale: {predictive: false}\n",
        )
        .unwrap();
        assert!(autoscale_args(&off, Path::new("out"), Path::new("state")).is_none());
    }
}
