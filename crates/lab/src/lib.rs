//! The embedded multi-node cluster: an HTTPS API server that speaks the Kubernetes API
//! on 127.0.0.1, a store with resourceVersions and watches, the Deployment, Endpoints,
//! HPA, node lifecycle and disruption controllers, a scheduler, a kubelet that runs demo
//! pods as local processes on each node, and a NodePort proxy.
//!
//! A world of its own: nothing here imports the toolkit modules (`cluster`, `demo`,
//! `chaos`, `load`, `watch`, `run`, `report`, `cost`, `results`). Toolkit code reaches the
//! lab only over its API, through kube-rs, exactly as it reaches a real cluster; the only
//! entry points it may name are the types re-exported here.

mod api;
pub mod args;
mod command;
pub(crate) mod controllers;
mod daemon;
mod fleet;
#[cfg(feature = "internals")]
pub mod in_process;
mod kubeconfig;
pub(crate) mod kubelet;
mod labs;
mod metrics;
pub(crate) mod nodes;
#[cfg(feature = "internals")]
pub mod patch;
#[cfg(not(feature = "internals"))]
mod patch;
mod proxy;
mod server;
#[cfg(feature = "internals")]
pub mod store;
#[cfg(not(feature = "internals"))]
mod store;
mod tls;

pub use nodes::{NodeLayout, STOPPED as NODE_STOPPED_ANNOTATION};
pub use server::{Lab, LabConfig, LabError};
#[cfg(feature = "internals")]
pub use store::Store;

use resil_common::Exit;

use args::{Globals, LabArgs};

/// `resil lab ...`
pub async fn command(args: LabArgs, global: &Globals) -> anyhow::Result<Exit> {
    command::run(args, global).await
}
