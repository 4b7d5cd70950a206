//! The lab's controllers: the logic that makes stored objects behave like a cluster's.
//!
//! Each controller's decision logic is pure (objects and the time in, a decision out) so it
//! can be tested without a store; the loops that feed them live with the store.
//! Nothing here imports toolkit modules.

// The HPA controller loop is wired in with the store; until then only tests call this.
#[allow(dead_code, unused_imports)]
pub(crate) mod hpa;
