use super::*;
use k8s_openapi::api::core::v1::{PodCondition, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde_json::json;

fn t(s: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + s).unwrap()
}

fn rs(replicas: i32, min_ready: i32) -> ReplicaSet {
    serde_json::from_value(json!({
        "metadata": {"name": "web-abc", "namespace": "default", "uid": "rs-1", "generation": 3},
        "spec": {
            "replicas": replicas,
            "minReadySeconds": min_ready,
            "selector": {"matchLabels": {"app": "web", "pod-template-hash": "abc"}},
            "template": {
                "metadata": {"labels": {"app": "web", "pod-template-hash": "abc"}},
                "spec": {"containers": [{"name": "web", "image": "resil-demo:1"}]}
            }
        }
    }))
    .unwrap()
}

fn counter() -> impl FnMut() -> String {
    let mut n = 0;
    move || {
        n += 1;
        format!("p{n:04}")
    }
}

fn ready(mut pod: Pod, at: i64) -> Pod {
    pod.spec.as_mut().unwrap().node_name = Some("lab-node-1".into());
    pod.metadata.creation_timestamp = Some(Time(t(at)));
    pod.status = Some(PodStatus {
        phase: Some("Running".into()),
        conditions: Some(vec![PodCondition {
            type_: "Ready".into(),
            status: "True".into(),
            last_transition_time: Some(Time(t(at))),
            ..PodCondition::default()
        }]),
        ..PodStatus::default()
    });
    pod
}

fn pods_of(set: &ReplicaSet, n: usize, at: i64) -> Vec<Pod> {
    reconcile::<Pod>(set, &[], t(0), &mut counter())
        .create
        .into_iter()
        .take(n)
        .enumerate()
        .map(|(i, p)| ready(p, at + i as i64))
        .collect()
}

#[test]
fn missing_replicas_are_created_owned_by_the_replicaset_with_its_labels() {
    let plan = reconcile::<Pod>(&rs(2, 0), &[], t(0), &mut counter());
    assert_eq!(plan.create.len(), 2);
    let pod = &plan.create[0];
    assert_eq!(pod.metadata.name.as_deref(), Some("web-abc-p0001"));
    assert_eq!(
        pod.metadata.labels.as_ref().unwrap()["pod-template-hash"],
        "abc"
    );
    let owner = &pod.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.uid.as_str()),
        ("ReplicaSet", "rs-1")
    );
    assert_eq!(
        (owner.controller, owner.block_owner_deletion),
        (Some(true), Some(true))
    );
}

#[test]
fn surplus_goes_not_ready_first_then_newest() {
    let set = rs(3, 0);
    let mut pods = pods_of(&set, 3, 0);
    let mut pending = reconcile::<Pod>(&set, &[], t(0), &mut || "pend1".into())
        .create
        .remove(0);
    pending.metadata.creation_timestamp = Some(Time(t(1)));
    pods.push(pending);
    let extra = pods_of(&set, 1, 50).remove(0);
    let mut extra = extra;
    extra.metadata.name = Some("web-abc-newest".into());
    pods.push(extra);
    let plan = reconcile(&set, &pods, t(100), &mut counter());
    assert_eq!(plan.delete, vec!["web-abc-pend1", "web-abc-newest"]);
    assert!(plan.create.is_empty());
}

#[test]
fn orphans_matching_the_selector_are_adopted_and_mismatched_pods_released() {
    let set = rs(2, 0);
    let mut pods = pods_of(&set, 2, 0);
    pods[0].metadata.owner_references = None;
    pods[1]
        .metadata
        .labels
        .as_mut()
        .unwrap()
        .insert("app".into(), "other".into());
    let plan = reconcile(&set, &pods, t(10), &mut counter());
    assert_eq!(plan.adopt, vec!["web-abc-p0001"]);
    assert_eq!(plan.release, vec!["web-abc-p0002"]);
    assert_eq!(plan.create.len(), 1, "the released pod no longer counts");
}

#[test]
fn status_counts_ready_and_available_after_min_ready_seconds() {
    let set = rs(3, 10);
    let pods = pods_of(&set, 3, 0);
    let plan = reconcile(&set, &pods, t(11), &mut counter());
    let s = plan.status;
    assert_eq!(s.replicas, 3);
    assert_eq!(s.ready_replicas, Some(3));
    assert_eq!(
        s.available_replicas,
        Some(2),
        "the last pod is ready since t=2, so not yet"
    );
    assert_eq!(s.fully_labeled_replicas, Some(3));
    assert_eq!(s.observed_generation, Some(3));
    assert_eq!(plan.requeue_after, Some(std::time::Duration::from_secs(2)));
}
