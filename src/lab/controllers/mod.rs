//! The lab's controllers: the logic that makes stored objects behave like a cluster's.
//!
//! Each controller's decision logic is pure (objects and the time in, a decision out) so it
//! can be tested without a store; the loops that feed them live with the store.
//! Nothing here imports toolkit modules.

// The controller loops are wired in with the store; until then only tests call these.
#[allow(dead_code, unused_imports)]
pub(crate) mod deployment;
#[allow(dead_code)]
pub(crate) mod endpoints;
#[allow(dead_code, unused_imports)]
pub(crate) mod hpa;
#[allow(dead_code)]
pub(crate) mod pods;
