//! The lab's controllers: the logic that makes stored objects behave like a cluster's.
//!
//! Each controller's decision logic is pure (objects and the time in, a decision out) so it
//! can be tested without a store: `deployment/`, `replicaset.rs`, `endpoints.rs`, `hpa/`. The loops that
//! feed them from the store and write their decisions back are in `runtime.rs` (Deployment,
//! Endpoints + proxy) and `hpa_loop.rs`; [`start`] spawns them all, with the kubelet.
//! Nothing here imports toolkit modules.

pub(crate) mod deployment;
pub(crate) mod deployment_loop;
pub(crate) mod endpoints;
pub(crate) mod events;
#[allow(unused_imports)]
pub(crate) mod hpa;
pub(crate) mod hpa_loop;
pub(crate) mod pods;
pub(crate) mod replicaset;
pub(crate) mod replicaset_loop;
pub(crate) mod runtime;

pub use runtime::start;
