//! Scenario files and the runner that orchestrates deploy, watch, load and chaos on one clock.

pub mod scenario;

use crate::Exit;
use crate::cli::{GlobalArgs, RunArgs};

/// `resil run`
pub async fn command(_args: RunArgs, _global: &GlobalArgs) -> anyhow::Result<Exit> {
    Err(crate::not_implemented("run"))
}
