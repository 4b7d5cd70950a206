//! The disruption controller: keeps each PodDisruptionBudget's status, mirroring upstream
//! `pkg/controller/disruption/disruption.go` (`trySync`, `getExpectedPodCount`,
//! `countHealthyPods`, `buildDisruptedPodMap`, `updatePdbStatus`). For each budget:
//!
//! 1. The pods it selects, in its namespace (an empty selector selects all of them).
//! 2. Expected and desired healthy: with an integer `minAvailable`, the expected count is
//!    the number of pods and desired is `minAvailable`; with a percentage, or with
//!    `maxUnavailable`, the expected count is the sum of the pods' controllers' replicas
//!    (Deployments here) and desired is `ceil(minAvailable% · expected)` or
//!    `expected − maxUnavailable` (a percentage rounded up).
//! 3. Current healthy: pods Ready, not being deleted and not just evicted
//!    (`status.disruptedPods`, which the eviction subresource fills; an entry lapses when
//!    its pod is deleting or gone, or after two minutes).
//! 4. `disruptionsAllowed = max(currentHealthy − desiredHealthy, 0)`, condition
//!    `DisruptionAllowed` (True `SufficientPods` / False `InsufficientPods`), and
//!    `observedGeneration`.
//!
//! [`budget_status`] is pure (time passed in); [`run`] is the loop. The eviction side is
//! `api/eviction.rs`.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::labels::selects;
use super::pods::is_ready;
use super::runtime::{Wake, to_value, typed};
use crate::store::kinds::kind;
use crate::store::{Store, WriteMode};

/// How long an evicted pod stays out of the healthy count while its deletion has not shown
/// (upstream `DeletionTimeout`).
const DELETION_TIMEOUT: SignedDuration = SignedDuration::from_secs(120);
/// Longest wait without a change.
const RESYNC: Duration = Duration::from_secs(1);
/// Least time between passes under a burst.
const BATCH: Duration = Duration::from_millis(20);

/// The loop: wakes on every change of budgets, pods or Deployments.
pub async fn run(store: Arc<Store>, shutdown: CancellationToken) {
    let wake = Wake::on(
        &store,
        &["poddisruptionbudgets", "pods", "deployments"],
        &shutdown,
    );
    loop {
        pass(&store, Timestamp::now());
        tokio::select! {
            // Something changed (bursts folded into one pass).
            _ = wake.changed() => tokio::time::sleep(BATCH).await,
            // Safety net, and disrupted-pod entries lapsing.
            _ = tokio::time::sleep(RESYNC) => {}
            // The lab stops.
            _ = shutdown.cancelled() => return,
        }
    }
}

/// One pass: every budget's status, written when it changed.
pub fn pass(store: &Store, now: Timestamp) {
    let budgets: Vec<PodDisruptionBudget> = typed(store.list("poddisruptionbudgets", None).items);
    if budgets.is_empty() {
        return;
    }
    let pods: Vec<Arc<Pod>> = store.list_parsed("pods");
    let deploys: Vec<Deployment> = typed(store.list("deployments", None).items);
    for pdb in &budgets {
        let ns = pdb.metadata.namespace.clone().unwrap_or_default();
        let mine: Vec<&Pod> = pods
            .iter()
            .map(|p| &**p)
            .filter(|p| p.metadata.namespace.as_deref() == Some(ns.as_str()))
            .filter(|p| {
                selects(
                    pdb.spec.as_ref().and_then(|s| s.selector.as_ref()),
                    &p.metadata.labels.clone().unwrap_or_default(),
                )
            })
            .collect();
        let want = budget_status(pdb, &mine, &deploys, now);
        let have = pdb.status.clone().unwrap_or_default();
        if same_status(&have, &want) {
            continue;
        }
        let name = pdb.metadata.name.as_deref().unwrap_or_default();
        // With the resourceVersion read: an eviction that spent the budget meanwhile
        // (`api/eviction.rs`) wins, and the next pass starts from what it wrote, rather
        // than this pass handing back the disruption it took.
        let obj = json!({
            "metadata": {"name": name, "resourceVersion": pdb.metadata.resource_version},
            "status": to_value(&want),
        });
        if let Err(e) = store.update(
            kind("poddisruptionbudgets"),
            &ns,
            name,
            obj,
            WriteMode::Status,
        ) {
            tracing::debug!("poddisruptionbudget {ns}/{name}: status write failed: {e}");
        }
    }
}

/// Equal but for condition transition times.
fn same_status(a: &PodDisruptionBudgetStatus, b: &PodDisruptionBudgetStatus) -> bool {
    let strip = |s: &PodDisruptionBudgetStatus| {
        let mut s = s.clone();
        for c in s.conditions.iter_mut().flatten() {
            c.last_transition_time = Time(Timestamp::UNIX_EPOCH);
        }
        s
    };
    strip(a) == strip(b)
}

/// The budget's status from the pods it selects and the Deployments in the cluster.
pub fn budget_status(
    pdb: &PodDisruptionBudget,
    pods: &[&Pod],
    deploys: &[Deployment],
    now: Timestamp,
) -> PodDisruptionBudgetStatus {
    let spec = pdb.spec.clone().unwrap_or_default();
    let old = pdb.status.clone().unwrap_or_default();
    let (expected, desired) = match (&spec.min_available, &spec.max_unavailable) {
        (Some(IntOrString::Int(n)), _) => (pods.len() as i32, *n),
        (Some(IntOrString::String(p)), _) => {
            let expected = controllers_scale(pods, deploys);
            (expected, scaled(p, expected))
        }
        (None, Some(max)) => {
            let expected = controllers_scale(pods, deploys);
            let max = match max {
                IntOrString::Int(n) => *n,
                IntOrString::String(p) => scaled(p, expected),
            };
            (expected, (expected - max).max(0))
        }
        (None, None) => (pods.len() as i32, 0),
    };
    let disrupted = disrupted_pods(&old, pods, now);
    let healthy = pods
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none() && is_ready(p))
        .filter(|p| !disrupted.contains_key(p.metadata.name.as_deref().unwrap_or_default()))
        .count() as i32;
    let allowed = (healthy - desired).max(0);
    let (status, reason) = if allowed > 0 {
        ("True", "SufficientPods")
    } else {
        ("False", "InsufficientPods")
    };
    let transition = old
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "DisruptionAllowed" && c.status == status)
        .map_or(Time(now), |c| c.last_transition_time.clone());
    PodDisruptionBudgetStatus {
        current_healthy: Some(healthy),
        desired_healthy: Some(desired),
        disruptions_allowed: Some(allowed),
        expected_pods: Some(expected),
        observed_generation: pdb.metadata.generation,
        disrupted_pods: (!disrupted.is_empty()).then_some(disrupted),
        conditions: Some(vec![Condition {
            type_: "DisruptionAllowed".into(),
            status: status.into(),
            reason: reason.into(),
            message: String::new(),
            last_transition_time: transition,
            observed_generation: pdb.metadata.generation,
        }]),
    }
}

/// `ceil(percent · total)` for "50%".
fn scaled(percent: &str, total: i32) -> i32 {
    let p: i64 = percent.trim_end_matches('%').parse().unwrap_or(0);
    ((p * i64::from(total) + 99) / 100) as i32
}

/// The sum of `spec.replicas` over the distinct Deployments controlling the pods (upstream
/// asks each controller's scale subresource).
fn controllers_scale(pods: &[&Pod], deploys: &[Deployment]) -> i32 {
    let owners: HashSet<&str> = pods
        .iter()
        .flat_map(|p| p.metadata.owner_references.iter().flatten())
        .filter(|o| o.controller == Some(true))
        .map(|o| o.uid.as_str())
        .collect();
    deploys
        .iter()
        .filter(|d| {
            d.metadata
                .uid
                .as_deref()
                .is_some_and(|u| owners.contains(u))
        })
        .map(|d| d.spec.replicas.unwrap_or(1))
        .sum()
}

/// The evicted pods still counted out: entries whose pod exists, is not yet deleting, and
/// was evicted less than [`DELETION_TIMEOUT`] ago.
fn disrupted_pods(
    old: &PodDisruptionBudgetStatus,
    pods: &[&Pod],
    now: Timestamp,
) -> BTreeMap<String, Time> {
    old.disrupted_pods
        .iter()
        .flatten()
        .filter(|(name, at)| {
            let live = pods.iter().any(|p| {
                p.metadata.name.as_deref() == Some(name.as_str())
                    && p.metadata.deletion_timestamp.is_none()
            });
            live && now.duration_since(at.0) < DELETION_TIMEOUT
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pdb(spec: serde_json::Value) -> PodDisruptionBudget {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "default", "generation": 1},
            "spec": spec,
        }))
        .unwrap()
    }

    fn pod(name: &str, ready: bool) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "default", "labels": {"app": "web"},
                         "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment",
                             "name": "web", "uid": "d1", "controller": true}]},
            "spec": {"containers": []},
            "status": {"conditions": [{"type": "Ready",
                                        "status": if ready { "True" } else { "False" }}]},
        }))
        .unwrap()
    }

    #[test]
    fn min_available_one_of_two_ready_pods_allows_one_disruption() {
        let (a, b) = (pod("a", true), pod("b", true));
        let s = budget_status(
            &pdb(json!({"minAvailable": 1, "selector": {"matchLabels": {"app": "web"}}})),
            &[&a, &b],
            &[],
            Timestamp::now(),
        );
        assert_eq!(
            (
                s.current_healthy,
                s.desired_healthy,
                s.disruptions_allowed,
                s.expected_pods
            ),
            (Some(2), Some(1), Some(1), Some(2))
        );
        assert_eq!(s.conditions.unwrap()[0].reason, "SufficientPods");
        assert_eq!(s.observed_generation, Some(1));
    }

    #[test]
    fn an_evicted_pod_is_not_healthy_until_its_entry_lapses() {
        let (a, b) = (pod("a", true), pod("b", true));
        let now = Timestamp::now();
        let mut budget = pdb(json!({"minAvailable": 1, "selector": {}}));
        budget.status = Some(PodDisruptionBudgetStatus {
            disrupted_pods: Some([("a".to_string(), Time(now))].into()),
            ..PodDisruptionBudgetStatus::default()
        });
        let s = budget_status(&budget, &[&a, &b], &[], now);
        assert_eq!(
            (s.current_healthy, s.disruptions_allowed),
            (Some(1), Some(0))
        );
        let later = now.checked_add(SignedDuration::from_secs(121)).unwrap();
        assert_eq!(
            budget_status(&budget, &[&a, &b], &[], later).current_healthy,
            Some(2)
        );
    }

    #[test]
    fn max_unavailable_counts_against_the_deployments_replicas() {
        let a = pod("a", true);
        let d: Deployment = serde_json::from_value(json!({
            "metadata": {"name": "web", "uid": "d1"}, "spec": {"replicas": 3,
            "selector": {}, "template": {}}}))
        .unwrap();
        let s = budget_status(
            &pdb(json!({"maxUnavailable": "34%", "selector": {}})),
            &[&a],
            &[d],
            Timestamp::now(),
        );
        assert_eq!(
            (s.expected_pods, s.desired_healthy, s.disruptions_allowed),
            (Some(3), Some(1), Some(0))
        );
    }
}
