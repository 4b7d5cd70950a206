//! The pricing model, cost per request from a run, and the monthly cost-scenario calculator. Pure.

use crate::Exit;
use crate::cli::{CostArgs, GlobalArgs};

/// `resil cost`
pub async fn command(_args: CostArgs, _global: &GlobalArgs) -> anyhow::Result<Exit> {
    Err(crate::not_implemented("cost"))
}
