//! The blue/green demo: its manifests (embedded from `manifests/`), `resil deploy`,
//! `resil status`, `resil undeploy`, and the demo web app every pod runs.

pub mod deploy;
pub mod manifests;
pub mod status;
pub mod undeploy;

use crate::Exit;
use crate::cli::{DemoAppArgs, DeployArgs, GlobalArgs, StatusArgs, UndeployArgs};

/// `resil deploy`
pub async fn deploy_command(args: DeployArgs, global: &GlobalArgs) -> anyhow::Result<Exit> {
    deploy::command(args, global).await
}

/// `resil status`
pub async fn status_command(args: StatusArgs, global: &GlobalArgs) -> anyhow::Result<Exit> {
    status::command(args, global).await
}

/// `resil undeploy`
pub async fn undeploy_command(args: UndeployArgs, global: &GlobalArgs) -> anyhow::Result<Exit> {
    undeploy::command(args, global).await
}

/// `resil demo-app`
pub async fn app_command(_args: DemoAppArgs) -> anyhow::Result<Exit> {
    Err(crate::not_implemented("demo-app"))
}
