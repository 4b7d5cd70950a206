//! Waiting for Deployments to finish rolling out, on a kube-rs watcher (no polling), with
//! every change reported to a callback so the command layer can draw progress.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::Api;
use kube::runtime::{WatchStreamExt, watcher};

use super::{ClusterError, Result};

/// One Deployment's rollout as last seen.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RolloutProgress {
    /// Deployment name.
    pub name: String,
    /// `spec.replicas`.
    pub desired: i32,
    /// `status.updatedReplicas`.
    pub updated: i32,
    /// `status.readyReplicas`.
    pub ready: i32,
    /// `status.availableReplicas`.
    pub available: i32,
    /// Whether the rollout is complete (the new pods all available, no old ones left, the
    /// controller has seen the latest spec).
    pub complete: bool,
}

impl RolloutProgress {
    /// Reads the progress from a Deployment.
    pub fn of(deployment: &Deployment) -> RolloutProgress {
        let desired = deployment.spec.replicas.unwrap_or(1);
        let status = deployment.status.clone().unwrap_or_default();
        let generation = deployment.metadata.generation.unwrap_or(0);
        let observed = status.observed_generation.unwrap_or(0);
        let updated = status.updated_replicas.unwrap_or(0);
        let ready = status.ready_replicas.unwrap_or(0);
        let available = status.available_replicas.unwrap_or(0);
        let total = status.replicas.unwrap_or(0);
        // The same test `kubectl rollout status` applies.
        let complete = observed >= generation
            && updated >= desired
            && total <= updated
            && available >= updated;
        RolloutProgress {
            name: deployment.metadata.name.clone().unwrap_or_default(),
            desired,
            updated,
            ready,
            available,
            complete,
        }
    }
}

impl std::fmt::Display for RolloutProgress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {}/{} ready, {} updated, {} available",
            self.name, self.ready, self.desired, self.updated, self.available
        )
    }
}

/// Waits until every named Deployment in `api`'s namespace has rolled out, calling
/// `on_progress` whenever one of them changes. Gives up after `timeout` with the counts of
/// what is still pending.
pub async fn wait_for_rollouts(
    api: Api<Deployment>,
    names: &[String],
    timeout: Duration,
    mut on_progress: impl FnMut(&RolloutProgress),
) -> Result<()> {
    let mut seen: BTreeMap<String, RolloutProgress> = names
        .iter()
        .map(|n| {
            (
                n.clone(),
                RolloutProgress {
                    name: n.clone(),
                    ..Default::default()
                },
            )
        })
        .collect();
    let all_done = |seen: &BTreeMap<String, RolloutProgress>| seen.values().all(|p| p.complete);
    let stream = watcher(api, watcher::Config::default())
        .default_backoff()
        .applied_objects();
    let mut stream = std::pin::pin!(stream);
    let deadline = tokio::time::Instant::now() + timeout;
    while !all_done(&seen) {
        let next = tokio::time::timeout_at(deadline, stream.next()).await;
        let deployment = match next {
            // Deadline passed: report what is still pending.
            Err(_) => break,
            // The watcher only ends when its API client is gone.
            Ok(None) => break,
            Ok(Some(Err(err))) => {
                tracing::debug!("rollout watch error (retrying): {err}");
                continue;
            }
            Ok(Some(Ok(deployment))) => deployment,
        };
        let progress = RolloutProgress::of(&deployment);
        if let Some(slot) = seen.get_mut(&progress.name)
            && *slot != progress
        {
            *slot = progress;
            on_progress(slot);
        }
    }
    if all_done(&seen) {
        return Ok(());
    }
    let pending = seen
        .values()
        .filter(|p| !p.complete)
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ");
    Err(ClusterError::RolloutTimeout {
        waited: timeout,
        pending,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::{DeploymentSpec, DeploymentStatus};
    use kube::core::ObjectMeta;

    fn deployment(gen_: i64, observed: i64, replicas: i32, updated: i32, avail: i32) -> Deployment {
        Deployment {
            metadata: ObjectMeta {
                name: Some("web-blue".into()),
                generation: Some(gen_),
                ..Default::default()
            },
            spec: DeploymentSpec {
                replicas: Some(2),
                ..Default::default()
            },
            status: Some(DeploymentStatus {
                observed_generation: Some(observed),
                replicas: Some(replicas),
                updated_replicas: Some(updated),
                ready_replicas: Some(avail),
                available_replicas: Some(avail),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn a_rollout_is_complete_only_when_all_new_pods_are_available() {
        assert!(RolloutProgress::of(&deployment(2, 2, 2, 2, 2)).complete);
        assert!(!RolloutProgress::of(&deployment(2, 2, 2, 2, 1)).complete);
    }

    #[test]
    fn a_rollout_the_controller_has_not_seen_yet_is_not_complete() {
        assert!(!RolloutProgress::of(&deployment(3, 2, 2, 2, 2)).complete);
    }

    #[test]
    fn old_pods_still_running_keep_the_rollout_open() {
        assert!(!RolloutProgress::of(&deployment(2, 2, 3, 2, 2)).complete);
    }
}
