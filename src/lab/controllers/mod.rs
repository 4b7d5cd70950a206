//! The lab's controllers: the logic that makes stored objects behave like a cluster's.
//!
//! Each controller's decision logic is pure (objects and the time in, a decision out) so it
//! can be tested without a store: `deployment.rs`, `endpoints.rs`, `hpa/`. The loops that
//! feed them from the store and write their decisions back are in `runtime.rs` (Deployment,
//! Endpoints + proxy) and `hpa_loop.rs`; `start` spawns them all, with the kubelet.
//! Nothing here imports toolkit modules.
//!
//! Until the store and the kubelet's process layer are in this branch, `runtime.rs`,
//! `hpa_loop.rs` and `events.rs` are not declared (they need the store); the pure modules are.

#[allow(dead_code)]
pub(crate) mod deployment;
#[allow(dead_code)]
pub(crate) mod endpoints;
#[allow(dead_code, unused_imports)]
pub(crate) mod hpa;
#[allow(dead_code)]
pub(crate) mod pods;
