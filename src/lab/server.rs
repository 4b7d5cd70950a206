//! The lab as one value: start it on 127.0.0.1 (in-process, for `lab up --foreground` and
//! for tests), ask where it listens and how to reach it, shut it down.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// How to start a lab.
#[derive(Debug, Clone)]
pub struct LabConfig {
    /// State, certificates, token, logs.
    pub state_dir: PathBuf,
    /// API port on 127.0.0.1; 0 picks a free one.
    pub port: u16,
    /// The program the kubelet runs for demo pods (`<program> demo-app`).
    pub pod_program: PathBuf,
    /// HPA sync period (upstream default 15 s).
    pub hpa_sync_period: Duration,
    /// Image name prefixes that count as the demo image (default `resil-demo`).
    pub demo_image_prefixes: Vec<String>,
}

impl LabConfig {
    /// Defaults for a state directory: ephemeral port, this binary as the pod program.
    pub fn new(state_dir: impl Into<PathBuf>) -> LabConfig {
        LabConfig {
            state_dir: state_dir.into(),
            port: 0,
            pod_program: std::env::current_exe().unwrap_or_else(|_| PathBuf::from("resil")),
            hpa_sync_period: Duration::from_secs(15),
            demo_image_prefixes: vec!["resil-demo".to_string()],
        }
    }
}

/// Why the lab could not start or stop.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// Not built yet.
    #[error("the lab is not implemented yet")]
    NotImplemented,
}

/// A running lab.
#[derive(Debug)]
pub struct Lab {
    addr: SocketAddr,
}

impl Lab {
    /// Starts the lab and returns once its API answers.
    pub async fn start(_config: LabConfig) -> Result<Lab, LabError> {
        Err(LabError::NotImplemented)
    }

    /// Where the API listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A kubeconfig (YAML) with cluster, user and context `resil-lab`.
    pub fn kubeconfig_yaml(&self) -> String {
        String::new()
    }

    /// Stops the API, the controllers and every pod process; persists state.
    pub async fn shutdown(self) {}
}
