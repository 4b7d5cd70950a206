//! The failover watcher (kube::runtime watchers over the demo) and the recorder of
//! failover time and scaling latency.
//!
//! [`failover`] holds the decision rules as a pure, clock-injected policy; the controller
//! that feeds it from the cluster and acts on its decisions comes with the watch command.

pub mod failover;

use crate::Exit;
use crate::cli::{GlobalArgs, WatchArgs};

/// `resil watch`
pub async fn command(_args: WatchArgs, _global: &GlobalArgs) -> anyhow::Result<Exit> {
    Err(crate::not_implemented("watch"))
}
