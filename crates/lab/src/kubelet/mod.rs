//! The kubelet's process layer: everything the kubelet controller needs to run demo pods
//! as local processes, without the store. The controller (which watches Pods in the
//! store and writes their status) drives these pieces:
//!
//! - [`process`]: [`PodProcess`] — spawn `<program> demo-app --bind NODE_IP --port P`
//!   with the pod's env in its own process group, capture its output, terminate it with a
//!   grace period or kill it at once, see its exit.
//! - [`logs`]: [`ContainerLogs`] — the capped, rotated log files `kubectl logs` and
//!   `--previous` read.
//! - [`registry`]: [`PodRegistry`] / [`kill_orphans`] — `pods.json`, so pod processes
//!   never outlive a killed lab.
//! - [`ports`]: [`free_port`] — a port for each container instance.
//! - [`backoff`]: [`Backoff`] — CrashLoopBackOff and image-pull back-off.
//! - [`probe`]: probe workers and checks, reporting over a channel.
//! - [`usage`]: per-process CPU (nanocores) and memory for metrics and the HPA.
//! - [`image`]: which images are the demo image, and how other images fail.
//! - [`env`]: a container's env resolved to strings.
//! - [`supervisor`]: [`ContainerHandle`] — the above composed: one container kept
//!   running under `restartPolicy: Always`, reporting [`ContainerEvent`]s.
//!
//! It knows nothing of the API or the store, and nothing of the toolkit.

// The kubelet controller that calls these pieces lands with the store; until then only
// the tests use them.
#![allow(dead_code, unused_imports)]

pub mod backoff;
pub mod env;
pub mod image;
pub mod logs;
pub mod ports;
pub mod probe;
pub mod process;
pub mod registry;
pub mod supervisor;
pub mod usage;

pub mod controller;
mod pod_worker;

use std::io;
use std::path::PathBuf;

pub use backoff::{Backoff, BackoffPolicy};
pub use logs::{ContainerLogs, DEFAULT_LOG_CAP};
pub use ports::free_port;
pub use probe::{ProbeCheck, ProbeKind, ProbeSettings, ProbeUpdate, run_probe};
pub use process::{PodLaunch, PodProcess, ProcessExit};
pub use registry::{PodRecord, PodRegistry, kill_orphans};
pub use supervisor::{ContainerEvent, ContainerHandle, ContainerSpec, Restart};
pub use usage::{Usage, UsageMeter};

/// Open files a running pod holds in the lab: its two output pipes, its pidfd, its log.
pub const FILES_PER_POD: u64 = 4;

/// What to do about a failed spawn: the lab out of file descriptors is the lab's limit,
/// not a wrong program.
fn spawn_hint(error: &io::Error) -> String {
    let errno = error.raw_os_error().map(nix::errno::Errno::from_raw);
    match errno {
        Some(nix::errno::Errno::EMFILE) => format!(
            "the lab has as many files open as its limit allows (each pod holds {FILES_PER_POD}); \
             start the lab again with a higher hard limit (resil raises its soft limit to it: \
             `ulimit -Hn` before `resil lab up`, LimitNOFILE= for a service)"
        ),
        Some(nix::errno::Errno::ENFILE) => {
            "the system is out of open files (fs.file-max); stop some pods or processes".into()
        }
        _ => "is it the resil binary?".into(),
    }
}

/// Why a pod process could not be started.
#[derive(Debug, thiserror::Error)]
pub enum KubeletError {
    /// The program could not be executed.
    #[error("cannot start {program}: {hint}", program = program.display(), hint = spawn_hint(source))]
    Spawn {
        /// The program.
        program: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The log directory or file could not be prepared.
    #[error("cannot prepare pod logs in {path}", path = path.display())]
    Logs {
        /// The pod's log directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// `pods.json` could not be written, so the process was not left running.
    #[error("cannot record the pod process in pods.json")]
    Registry {
        /// The OS error.
        #[source]
        source: io::Error,
    },
}
