//! Connecting to a cluster through kube-rs: kubeconfig and context selection, the safety
//! guard that keeps mutating commands on local labs, server-side apply and rollout waits.
//! Every toolkit command reaches any cluster — the lab included — only through here.
//!
//! What it does not do: print (it returns values and reports progress through callbacks
//! the command layer renders), or know about the demo's objects (that is `demo`).
//!
//! Called by the command layer: `connect` → [`Target`], then [`Guard::check`] before any
//! mutation, [`apply`] per object, [`wait_for_rollouts`] to see Deployments become ready.

mod apply;
mod connect;
pub mod endpoints;
pub mod events;
mod guard;
pub mod hpa;
pub mod release;
mod rollout;
pub mod workers;

pub use apply::{ApplyOutcome, apply, ensure_managed};
pub use connect::{
    ClusterKind, ConnectOptions, KubeconfigSource, Target, connect, error_chain, known_contexts,
    locate_kubeconfig, select_context,
};
pub use guard::{Guard, LOCAL_CONTEXT_PATTERNS, config_file_path, looks_local};
pub use rollout::{RolloutProgress, wait_for_rollouts};

use std::path::PathBuf;

/// The field manager resil's server-side applies use.
pub const FIELD_MANAGER: &str = "resil";
/// The label every object resil creates carries; resil mutates only objects that have it.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// The value of [`MANAGED_BY_LABEL`] on resil's objects.
pub const MANAGED_BY_VALUE: &str = "resil";
/// The context name `resil lab up` writes into the kubeconfig.
pub const LAB_CONTEXT: &str = "resil-lab";

/// Why resil could not reach, or refused to change, a cluster.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// No kubeconfig at any of the usual places.
    #[error(
        "no kubeconfig found (looked at {looked_at}). Start the embedded lab with `resil lab up` \
         (it writes a `resil-lab` context), or point --kubeconfig / KUBECONFIG at your cluster's \
         kubeconfig"
    )]
    NoKubeconfig {
        /// The places searched, for the message.
        looked_at: String,
    },

    /// `--kubeconfig FILE` names a file that does not exist.
    #[error("the kubeconfig {path} given with --kubeconfig does not exist; check the path")]
    KubeconfigMissing {
        /// The path given.
        path: PathBuf,
    },

    /// The kubeconfig could not be read or parsed.
    #[error(
        "the kubeconfig {path} could not be read as a kubeconfig: {reason}. Fix the file (try \
         `kubectl config view --kubeconfig {path}`) or point --kubeconfig at another one"
    )]
    KubeconfigInvalid {
        /// The offending file (or the KUBECONFIG list).
        path: String,
        /// What the parser said.
        reason: String,
    },

    /// No `--context` and no current-context in the kubeconfig.
    #[error(
        "the kubeconfig {path} has no current context; pass --context NAME (known: {known}) or \
         run `kubectl config use-context NAME`"
    )]
    NoCurrentContext {
        /// The kubeconfig.
        path: String,
        /// Known context names, comma-separated.
        known: String,
    },

    /// The requested context is not in the kubeconfig.
    #[error("{hint}")]
    UnknownContext {
        /// The requested context.
        context: String,
        /// The whole message (it depends on whether the lab's context is meant).
        hint: String,
    },

    /// The context exists but kube-rs could not build a client from it.
    #[error("the context `{context}` in {path} is not usable")]
    ContextUnusable {
        /// The context.
        context: String,
        /// The kubeconfig.
        path: String,
        /// kube's reason.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    /// The API server did not answer.
    #[error("cannot reach the API server {server} of context `{context}` ({reason}). {hint}")]
    Unreachable {
        /// The context.
        context: String,
        /// The server URL from the kubeconfig.
        server: String,
        /// The connection error.
        reason: String,
        /// What to do about it.
        hint: String,
    },

    /// The safety guard refused a mutating command.
    #[error(
        "refusing to change context `{context}`: it does not look like a local lab (allowed \
         without asking: {patterns}). If you really mean this cluster, pass --allow-context \
         {context} or list it under `allow_contexts:` in {config}"
    )]
    ContextNotAllowed {
        /// The refused context.
        context: String,
        /// The patterns of local-lab contexts.
        patterns: String,
        /// The config file that can allow it.
        config: String,
    },

    /// The context's name looks like a local lab, but its API server is elsewhere.
    #[error(
        "refusing to change context `{context}`: its name looks like a local lab, but its \
         API server {server} is not on this machine (local labs serve on 127.0.0.1, [::1], \
         localhost or their runtime's own address). If you really mean this cluster, pass \
         --allow-context {context} or list it under `allow_contexts:` in {config}"
    )]
    ServerNotLocal {
        /// The refused context.
        context: String,
        /// Its API server URL, from the kubeconfig.
        server: String,
        /// The config file that can allow it.
        config: String,
    },

    /// The guard's config file exists but does not parse.
    #[error(
        "the config file {path} is not valid: {reason}. It should look like `allow_contexts: \
         [my-context]`"
    )]
    ConfigInvalid {
        /// The file.
        path: PathBuf,
        /// What the parser said.
        reason: String,
    },

    /// An object resil would change is not resil's (no managed-by label) or lives outside
    /// the demo namespace.
    #[error("{0}")]
    NotManaged(String),

    /// A rollout did not finish in time.
    #[error("timed out after {waited:?} waiting for {pending}")]
    RolloutTimeout {
        /// How long we waited.
        waited: std::time::Duration,
        /// What was still rolling out, with its counts.
        pending: String,
    },

    /// An API request failed.
    #[error("{what}")]
    Api {
        /// What resil was doing.
        what: String,
        /// kube's error.
        #[source]
        source: kube::Error,
    },
}

/// Shorthand for results in this module.
pub type Result<T, E = ClusterError> = std::result::Result<T, E>;

impl ClusterError {
    /// Wraps a kube error with what resil was doing.
    pub fn api(what: impl Into<String>, source: kube::Error) -> ClusterError {
        ClusterError::Api {
            what: what.into(),
            source,
        }
    }
}
