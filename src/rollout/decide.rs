//! The rollout's decisions, as pure code with the clock passed in: whether a Deployment
//! has rolled out (the test `kubectl rollout status` applies, mirrored from kubectl's
//! `pkg/polymorphichelpers/rollout_status.go`, `DeploymentStatusViewer.Status`), how many
//! canary pods give a step its share, which ReplicaSet `kubectl rollout undo` goes back
//! to (kubectl's `pkg/polymorphichelpers/rollback.go`, `DeploymentRollbacker`), and when
//! a step may give way to the next.

use std::time::Duration;

use chrono::{DateTime, Utc};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};

/// The revision annotation the Deployment controller writes on Deployments and their
/// ReplicaSets.
pub const REVISION_ANNOTATION: &str = "deployment.kubernetes.io/revision";

/// Where a Deployment's rollout stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// Still rolling; what it waits for, as kubectl says it.
    Waiting(String),
    /// Every new pod available, no old one left, the latest spec observed.
    Complete,
    /// `progressDeadlineSeconds` ran out (the `Progressing` condition is False).
    Failed(String),
}

/// kubectl's rollout status test.
pub fn rollout_status(d: &Deployment) -> Status {
    let name = d.metadata.name.as_deref().unwrap_or("deployment");
    let status = d.status.clone().unwrap_or_default();
    let generation = d.metadata.generation.unwrap_or(0);
    if generation > status.observed_generation.unwrap_or(0) {
        return Status::Waiting("waiting for the rollout to be observed".into());
    }
    let deadline_exceeded = status.conditions.iter().flatten().any(|c| {
        c.type_.as_deref() == Some("Progressing")
            && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
    });
    if deadline_exceeded {
        return Status::Failed(format!(
            "deployment {name:?} exceeded its progress deadline (Progressing=False, \
             ProgressDeadlineExceeded)"
        ));
    }
    let desired = d.spec.replicas.unwrap_or(1);
    let updated = status.updated_replicas.unwrap_or(0);
    let total = status.replicas.unwrap_or(0);
    let available = status.available_replicas.unwrap_or(0);
    if updated < desired {
        Status::Waiting(format!("{updated} of {desired} new replicas updated"))
    } else if total > updated {
        Status::Waiting(format!(
            "{} old replicas pending termination",
            total - updated
        ))
    } else if available < updated {
        Status::Waiting(format!(
            "{available} of {updated} updated replicas available"
        ))
    } else {
        Status::Complete
    }
}

/// The revision annotation of an object (0 when absent or unreadable).
pub fn revision(annotations: Option<&std::collections::BTreeMap<String, String>>) -> i64 {
    annotations
        .and_then(|a| a.get(REVISION_ANNOTATION))
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

/// The ReplicaSet `kubectl rollout undo` goes back to: the one with the highest revision
/// below the Deployment's current one (`None`: no earlier revision).
pub fn previous_replica_set(current: i64, owned: &[ReplicaSet]) -> Option<&ReplicaSet> {
    owned
        .iter()
        .filter(|rs| revision(rs.metadata.annotations.as_ref()) < current)
        .max_by_key(|rs| revision(rs.metadata.annotations.as_ref()))
}

/// Canary pods that give the new release `percent` of the colour's pods beside `stable`
/// pods that stay as they are (extra pods, like maxSurge): the count nearest to
/// `canary ÷ (stable + canary) = percent`, at least one. `percent` is below 100.
pub fn canary_replicas(stable: i32, percent: u32) -> i32 {
    let p = f64::from(percent.min(99)) / 100.0;
    let exact = f64::from(stable.max(1)) * p / (1.0 - p);
    exact.round().max(1.0) as i32
}

/// The share the canary pods actually have.
pub fn canary_share(stable: i32, canary: i32) -> u32 {
    let total = stable + canary;
    if total <= 0 {
        0
    } else {
        (f64::from(canary) * 100.0 / f64::from(total)).round() as u32
    }
}

/// Parses `--canary 10,50,100`: rising percentages, each 1–100, ending at 100 (added when
/// left out).
pub fn parse_steps(text: &str) -> Result<Vec<u32>, String> {
    let mut steps = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let p: u32 = part
            .trim_end_matches('%')
            .parse()
            .map_err(|_| format!("--canary {text:?}: {part:?} is not a percentage"))?;
        if p == 0 || p > 100 {
            return Err(format!(
                "--canary {text:?}: each step is 1 to 100 (%), got {p}"
            ));
        }
        if steps.last().is_some_and(|&last| p <= last) {
            return Err(format!(
                "--canary {text:?}: the steps must rise, e.g. 10,50,100"
            ));
        }
        steps.push(p);
    }
    if steps.is_empty() {
        return Err(format!("--canary {text:?}: give the steps, e.g. 10,50,100"));
    }
    if steps.last() != Some(&100) {
        steps.push(100);
    }
    Ok(steps)
}

/// Whether a step is over at `now`: its pods have been ready since `ready_at` for at least
/// `pause`, and — when analysed — at least one whole interval was judged since then.
pub fn step_done(
    ready_at: Option<DateTime<Utc>>,
    pause: Duration,
    intervals_since_ready: u32,
    analysed: bool,
    now: DateTime<Utc>,
) -> bool {
    let Some(ready_at) = ready_at else {
        return false;
    };
    let paused = now - ready_at >= chrono::Duration::from_std(pause).unwrap_or_default();
    paused && (!analysed || intervals_since_ready >= 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::{DeploymentCondition, DeploymentSpec, DeploymentStatus};
    use kube::core::ObjectMeta;

    fn deployment(generation: i64, replicas: i32, updated: i32, available: i32) -> Deployment {
        Deployment {
            metadata: ObjectMeta {
                name: Some("web-blue".into()),
                generation: Some(generation),
                ..Default::default()
            },
            spec: DeploymentSpec {
                replicas: Some(3),
                ..Default::default()
            },
            status: Some(DeploymentStatus {
                observed_generation: Some(2),
                replicas: Some(replicas),
                updated_replicas: Some(updated),
                available_replicas: Some(available),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn the_status_waits_like_kubectl_rollout_status() {
        assert!(
            matches!(rollout_status(&deployment(3, 3, 3, 3)), Status::Waiting(w) if w.contains("observed"))
        );
        assert!(
            matches!(rollout_status(&deployment(2, 3, 1, 3)), Status::Waiting(w) if w.contains("1 of 3 new"))
        );
        assert!(
            matches!(rollout_status(&deployment(2, 4, 3, 3)), Status::Waiting(w) if w.contains("1 old"))
        );
        assert!(
            matches!(rollout_status(&deployment(2, 3, 3, 2)), Status::Waiting(w) if w.contains("2 of 3 updated"))
        );
        assert_eq!(rollout_status(&deployment(2, 3, 3, 3)), Status::Complete);
    }

    #[test]
    fn a_progress_deadline_exceeded_fails_the_rollout() {
        let mut d = deployment(2, 4, 1, 3);
        d.status.as_mut().unwrap().conditions = Some(vec![DeploymentCondition {
            type_: Some("Progressing".into()),
            status: Some("False".into()),
            reason: Some("ProgressDeadlineExceeded".into()),
            ..Default::default()
        }]);
        assert!(matches!(rollout_status(&d), Status::Failed(m) if m.contains("progress deadline")));
    }

    fn rs(name: &str, revision: &str) -> ReplicaSet {
        ReplicaSet {
            metadata: ObjectMeta {
                name: Some(name.into()),
                annotations: Some([(REVISION_ANNOTATION.to_string(), revision.to_string())].into()),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn undo_goes_back_to_the_highest_revision_below_the_current_one() {
        let owned = [rs("a", "1"), rs("c", "3"), rs("b", "2")];
        assert_eq!(
            previous_replica_set(3, &owned).and_then(|r| r.metadata.name.as_deref()),
            Some("b")
        );
        assert!(previous_replica_set(1, &owned).is_none());
    }

    #[test]
    fn canary_pods_give_at_least_the_share_asked_beside_the_stable_ones() {
        assert_eq!(canary_replicas(10, 10), 1); // 1/11 = 9%, nearer than 2/12 = 17%
        assert_eq!(canary_replicas(9, 10), 1); // 1/10
        assert_eq!(canary_replicas(10, 50), 10);
        assert_eq!(canary_replicas(2, 10), 1);
        assert_eq!(canary_share(10, 10), 50);
        assert_eq!(canary_share(2, 1), 33);
    }

    #[test]
    fn canary_steps_rise_to_one_hundred() {
        assert_eq!(parse_steps("10,50,100"), Ok(vec![10, 50, 100]));
        assert_eq!(parse_steps("25%, 50%"), Ok(vec![25, 50, 100]));
        assert!(parse_steps("50,10").unwrap_err().contains("rise"));
        assert!(parse_steps("0,100").unwrap_err().contains("1 to 100"));
        assert!(parse_steps("ten").unwrap_err().contains("percentage"));
    }

    #[test]
    fn a_step_ends_after_its_pause_and_one_judged_interval_once_ready() {
        let t = |s: i64| DateTime::from_timestamp(1_900_000_000 + s, 0).unwrap();
        let pause = Duration::from_secs(10);
        assert!(!step_done(None, pause, 5, true, t(100)));
        assert!(!step_done(Some(t(0)), pause, 1, true, t(9)));
        assert!(!step_done(Some(t(0)), pause, 0, true, t(10)));
        assert!(step_done(Some(t(0)), pause, 1, true, t(10)));
        assert!(step_done(Some(t(0)), pause, 0, false, t(10)));
    }
}
