//! The Deployment's status and its conditions: counts summed from the ReplicaSets,
//! `Available`, `Progressing` (NewReplicaSetCreated, FoundNewReplicaSet,
//! ReplicaSetUpdated, NewReplicaSetAvailable, ProgressDeadlineExceeded, DeploymentPaused,
//! DeploymentResumed) and when to look again for a deadline. Mirrors kubernetes
//! `pkg/controller/deployment/progress.go` (`syncRolloutStatus`,
//! `requeueStuckDeployment`), `sync.go` (`calculateStatus`, `checkPausedConditions`) and
//! `util/deployment_util.go` (`DeploymentComplete`, `DeploymentProgressing`,
//! `DeploymentTimedOut`, `SetDeploymentCondition`).

use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentCondition, DeploymentStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use super::rolling::max_unavailable;
use super::{Sync, name, rs_replicas};

/// Whether the rollout has a progress deadline: `progressDeadlineSeconds` defaults to 600
/// (as the API server defaults it) and `i32::MAX` means none.
pub(crate) fn has_progress_deadline(d: &Deployment) -> bool {
    d.spec.progress_deadline_seconds.unwrap_or(600) != i32::MAX
}

impl Sync<'_> {
    /// The current `Progressing` condition.
    pub(crate) fn progressing(&self) -> Option<&DeploymentCondition> {
        self.conditions
            .iter()
            .find(|c| c.type_.as_deref() == Some("Progressing"))
    }
}

/// Sets `Progressing` to Unknown when pausing or resuming (upstream
/// `checkPausedConditions`).
pub(crate) fn check_paused(s: &mut Sync<'_>) {
    if !has_progress_deadline(s.d) {
        return;
    }
    let reason = s.progressing().and_then(|c| c.reason.clone());
    let paused = s.d.spec.paused == Some(true);
    let (reason, message) = match reason.as_deref() {
        r if paused && r != Some("DeploymentPaused") => {
            ("DeploymentPaused", "Deployment is paused")
        }
        Some("DeploymentPaused") if !paused => ("DeploymentResumed", "Deployment is resumed"),
        _ => return,
    };
    set_condition(
        &mut s.conditions,
        "Progressing",
        "Unknown",
        reason,
        message,
        s.now,
    );
}

/// The status from the ReplicaSets, with `Available` set (upstream `calculateStatus`).
pub(crate) fn calculate_status(s: &Sync<'_>) -> DeploymentStatus {
    let sum = |f: &dyn Fn(&k8s_openapi::api::apps::v1::ReplicaSetStatus) -> i32| -> i32 {
        s.rses
            .iter()
            .filter_map(|rs| rs.status.as_ref())
            .map(f)
            .sum()
    };
    let available = sum(&|st| st.available_replicas.unwrap_or(0));
    let total: i32 = s.rses.iter().map(rs_replicas).sum();
    let replicas = s.replicas();
    let mut conditions = s.conditions.clone();
    if available >= replicas - max_unavailable(s.d, replicas) {
        let msg = "Deployment has minimum availability.";
        set_condition(
            &mut conditions,
            "Available",
            "True",
            "MinimumReplicasAvailable",
            msg,
            s.now,
        );
    } else {
        let msg = "Deployment does not have minimum availability.";
        set_condition(
            &mut conditions,
            "Available",
            "False",
            "MinimumReplicasUnavailable",
            msg,
            s.now,
        );
    }
    conditions.sort_by_key(|c| c.type_.as_deref() != Some("Available"));
    DeploymentStatus {
        observed_generation: s.d.metadata.generation,
        replicas: Some(sum(&|st| st.replicas)),
        updated_replicas: Some(
            s.new
                .and_then(|n| s.rses[n].status.as_ref())
                .map_or(0, |st| st.replicas),
        ),
        ready_replicas: Some(sum(&|st| st.ready_replicas.unwrap_or(0))),
        available_replicas: Some(available),
        unavailable_replicas: Some((total - available).max(0)),
        collision_count: s.collision_count,
        conditions: Some(conditions),
        terminating_replicas: None,
    }
}

/// Whether the rollout is done: every replica updated and available, nothing old left
/// (upstream `DeploymentComplete`, on the status this sync computes).
pub(crate) fn complete(s: &Sync<'_>) -> bool {
    is_complete(s.d, &calculate_status(s))
}

fn is_complete(d: &Deployment, st: &DeploymentStatus) -> bool {
    let replicas = d.spec.replicas.unwrap_or(1).max(0);
    st.updated_replicas == Some(replicas)
        && st.replicas == Some(replicas)
        && st.available_replicas == Some(replicas)
        && st.observed_generation >= d.metadata.generation
}

/// The status with `Progressing` brought up to date (upstream `syncRolloutStatus`).
pub(crate) fn rollout_status(s: &mut Sync<'_>) -> DeploymentStatus {
    let mut st = calculate_status(s);
    let mut conditions = st.conditions.take().unwrap_or_default();
    let current = s.progressing().cloned();
    if !has_progress_deadline(s.d) {
        conditions.retain(|c| c.type_.as_deref() != Some("Progressing"));
    }
    let done = st.replicas == st.updated_replicas
        && current.as_ref().and_then(|c| c.reason.as_deref()) == Some("NewReplicaSetAvailable");
    let rs_name = s.new.map(|n| name(&s.rses[n])).unwrap_or_default();
    if has_progress_deadline(s.d) && !done {
        if is_complete(s.d, &st) {
            let msg = format!("ReplicaSet \"{rs_name}\" has successfully progressed.");
            set_condition(
                &mut conditions,
                "Progressing",
                "True",
                "NewReplicaSetAvailable",
                &msg,
                s.now,
            );
        } else if made_progress(s.d, &st) {
            let msg = format!("ReplicaSet \"{rs_name}\" is progressing.");
            let mut c = condition("Progressing", "True", "ReplicaSetUpdated", &msg, s.now);
            if let Some(cur) = current
                .as_ref()
                .filter(|c| c.status.as_deref() == Some("True"))
            {
                c.last_transition_time = cur.last_transition_time.clone();
            }
            conditions.retain(|c| c.type_.as_deref() != Some("Progressing"));
            conditions.push(c);
        } else if timed_out(s.d, current.as_ref(), s.now) {
            let msg = format!("ReplicaSet \"{rs_name}\" has timed out progressing.");
            set_condition(
                &mut conditions,
                "Progressing",
                "False",
                "ProgressDeadlineExceeded",
                &msg,
                s.now,
            );
        }
    }
    conditions.sort_by_key(|c| c.type_.as_deref() != Some("Available"));
    st.conditions = Some(conditions);
    st
}

/// Whether this sync's counts moved since the stored status (upstream
/// `DeploymentProgressing`).
fn made_progress(d: &Deployment, new: &DeploymentStatus) -> bool {
    let old = d.status.clone().unwrap_or_default();
    let n = |v: Option<i32>| v.unwrap_or(0);
    let old_old = n(old.replicas) - n(old.updated_replicas);
    let new_old = n(new.replicas) - n(new.updated_replicas);
    n(new.updated_replicas) > n(old.updated_replicas)
        || new_old < old_old
        || n(new.ready_replicas) > n(old.ready_replicas)
        || n(new.available_replicas) > n(old.available_replicas)
}

/// Whether `progressDeadlineSeconds` passed since the last progress (upstream
/// `DeploymentTimedOut`).
fn timed_out(d: &Deployment, current: Option<&DeploymentCondition>, now: Timestamp) -> bool {
    let Some(c) = current else { return false };
    match c.reason.as_deref() {
        Some("NewReplicaSetAvailable") => false,
        Some("ProgressDeadlineExceeded") => true,
        _ => c.last_update_time.as_ref().is_some_and(|t| {
            let deadline = i64::from(d.spec.progress_deadline_seconds.unwrap_or(600));
            t.0.as_second() + deadline < now.as_second()
        }),
    }
}

/// When the progress deadline of an unfinished rollout passes (upstream
/// `requeueStuckDeployment`).
pub(crate) fn requeue_after(s: &Sync<'_>, st: &DeploymentStatus) -> Option<Duration> {
    if !has_progress_deadline(s.d) || is_complete(s.d, st) {
        return None;
    }
    let c = st
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_.as_deref() == Some("Progressing"))?;
    if matches!(
        c.reason.as_deref(),
        Some("ProgressDeadlineExceeded" | "DeploymentPaused")
    ) {
        return None;
    }
    let since = c.last_update_time.as_ref()?.0.as_second();
    let deadline = i64::from(s.d.spec.progress_deadline_seconds.unwrap_or(600));
    let left = since + deadline - s.now.as_second();
    Some(Duration::from_secs(left.max(0) as u64 + 1))
}

/// Sets a condition (upstream `SetDeploymentCondition`): same status and reason changes
/// nothing; same status keeps `lastTransitionTime`.
pub(crate) fn set_condition(
    conditions: &mut Vec<DeploymentCondition>,
    type_: &str,
    status: &str,
    reason: &str,
    message: &str,
    now: Timestamp,
) {
    let mut c = condition(type_, status, reason, message, now);
    if let Some(cur) = conditions
        .iter()
        .find(|c| c.type_.as_deref() == Some(type_))
    {
        if cur.status.as_deref() == Some(status) && cur.reason.as_deref() == Some(reason) {
            return;
        }
        if cur.status.as_deref() == Some(status) {
            c.last_transition_time = cur.last_transition_time.clone();
        }
    }
    conditions.retain(|c| c.type_.as_deref() != Some(type_));
    conditions.push(c);
}

fn condition(
    type_: &str,
    status: &str,
    reason: &str,
    message: &str,
    now: Timestamp,
) -> DeploymentCondition {
    DeploymentCondition {
        type_: Some(type_.to_string()),
        status: Some(status.to_string()),
        reason: Some(reason.to_string()),
        message: Some(message.to_string()),
        last_transition_time: Some(Time(now)),
        last_update_time: Some(Time(now)),
    }
}
