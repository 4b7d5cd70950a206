//! Chaos: plan → dry-run → execute → journal → revert for kill-pods, outage, degrade, cpu-burn and proxy latency.

use crate::Exit;
use crate::cli::{ChaosArgs, GlobalArgs};

/// `resil chaos`
pub async fn command(_args: ChaosArgs, _global: &GlobalArgs) -> anyhow::Result<Exit> {
    Err(crate::not_implemented("chaos"))
}
