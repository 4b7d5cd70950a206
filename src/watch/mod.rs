//! The failover watcher (kube::runtime watchers over the demo) and the recorder of failover time and scaling latency.

use crate::Exit;
use crate::cli::{GlobalArgs, WatchArgs};

/// `resil watch`
pub async fn command(_args: WatchArgs, _global: &GlobalArgs) -> anyhow::Result<Exit> {
    Err(crate::not_implemented("watch"))
}
