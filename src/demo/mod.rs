//! The blue/green demo: its manifests (embedded from `manifests/`), `resil deploy`,
//! `resil status`, `resil undeploy`, and the demo web app every pod runs.

pub mod manifests;

use crate::Exit;
use crate::cli::{DemoAppArgs, DeployArgs, GlobalArgs, StatusArgs, UndeployArgs};

/// `resil deploy`
pub async fn deploy_command(_args: DeployArgs, _global: &GlobalArgs) -> anyhow::Result<Exit> {
    Err(crate::not_implemented("deploy"))
}

/// `resil status`
pub async fn status_command(_args: StatusArgs, _global: &GlobalArgs) -> anyhow::Result<Exit> {
    Err(crate::not_implemented("status"))
}

/// `resil undeploy`
pub async fn undeploy_command(_args: UndeployArgs, _global: &GlobalArgs) -> anyhow::Result<Exit> {
    Err(crate::not_implemented("undeploy"))
}

/// `resil demo-app`
pub async fn app_command(_args: DemoAppArgs) -> anyhow::Result<Exit> {
    Err(crate::not_implemented("demo-app"))
}
