use super::*;
use k8s_openapi::api::core::v1::{PodCondition, PodStatus};
use serde_json::json;

fn t(s: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + s).unwrap()
}

fn deployment(replicas: i32, image: &str) -> Deployment {
    serde_json::from_value(json!({
        "metadata": {"name": "web", "namespace": "default", "uid": "d-1", "generation": 1},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": image,
                    "ports": [{"containerPort": 8080, "name": "http"}]}]}
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

/// Runs the pod through the kubelet's lifecycle: scheduled, running, ready since `at`.
fn ready(mut pod: Pod, at: Timestamp) -> Pod {
    pod.spec.as_mut().unwrap().node_name = Some("lab-node-1".into());
    pod.metadata.creation_timestamp = Some(Time(at));
    pod.status = Some(PodStatus {
        phase: Some("Running".into()),
        conditions: Some(vec![PodCondition {
            type_: "Ready".into(),
            status: "True".into(),
            last_transition_time: Some(Time(at)),
            ..PodCondition::default()
        }]),
        ..PodStatus::default()
    });
    pod
}

fn pending(mut pod: Pod, at: Timestamp) -> Pod {
    pod.metadata.creation_timestamp = Some(Time(at));
    pod
}

#[test]
fn a_new_deployment_creates_its_replicas_with_hash_label_and_owner() {
    let d = deployment(2, "resil-demo:1");
    let plan = reconcile(&d, &[], t(0), &mut counter());
    assert_eq!(plan.create.len(), 2);
    let hash = template_hash(&d.spec.template);
    assert_eq!(hash.len(), 10);
    let pod = &plan.create[0];
    assert_eq!(
        pod.metadata.name.as_deref(),
        Some(format!("web-{hash}-p0001").as_str())
    );
    let labels = pod.metadata.labels.as_ref().unwrap();
    assert_eq!(labels["app"], "web");
    assert_eq!(labels[TEMPLATE_HASH_LABEL], hash);
    assert!(controlled_by(pod, "d-1"));
    assert_eq!(
        pod.spec.as_ref().unwrap().containers[0].image.as_deref(),
        Some("resil-demo:1")
    );
    assert!(plan.delete.is_empty());
    assert_eq!(
        plan.events,
        vec![format!("Scaled up replica set web-{hash} to 2")]
    );
    let ann = plan.annotations.unwrap();
    assert_eq!(ann[REVISION_ANNOTATION], "1");
}

#[test]
fn template_hash_is_stable_and_changes_with_the_template() {
    let a = deployment(1, "resil-demo:1");
    let b = deployment(3, "resil-demo:1");
    let c = deployment(1, "resil-demo:2");
    let h = |d: &Deployment| template_hash(&d.spec.template);
    assert_eq!(h(&a), h(&b));
    assert_ne!(h(&a), h(&c));
}

#[test]
fn status_reports_available_and_complete_once_pods_are_ready() {
    let d = deployment(2, "resil-demo:1");
    let pods: Vec<Pod> = reconcile(&d, &[], t(0), &mut counter())
        .create
        .into_iter()
        .map(|p| ready(p, t(1)))
        .collect();
    let plan = reconcile(&d, &pods, t(2), &mut counter());
    assert!(plan.create.is_empty() && plan.delete.is_empty());
    let s = plan.status;
    assert_eq!(s.observed_generation, Some(1));
    assert_eq!(
        (
            s.replicas,
            s.updated_replicas,
            s.ready_replicas,
            s.available_replicas,
            s.unavailable_replicas
        ),
        (Some(2), Some(2), Some(2), Some(2), Some(0))
    );
    let conds = s.conditions.unwrap();
    let progressing = conds
        .iter()
        .find(|c| c.type_.as_deref() == Some("Progressing"))
        .unwrap();
    assert_eq!(
        progressing.reason.as_deref(),
        Some("NewReplicaSetAvailable")
    );
    let available = conds
        .iter()
        .find(|c| c.type_.as_deref() == Some("Available"))
        .unwrap();
    assert_eq!(
        (available.status.as_deref(), available.reason.as_deref()),
        (Some("True"), Some("MinimumReplicasAvailable"))
    );
}

#[test]
fn pending_pods_leave_the_deployment_progressing_and_unavailable() {
    let d = deployment(2, "resil-demo:1");
    let pods: Vec<Pod> = reconcile(&d, &[], t(0), &mut counter())
        .create
        .into_iter()
        .map(|p| pending(p, t(0)))
        .collect();
    let s = reconcile(&d, &pods, t(1), &mut counter()).status;
    assert_eq!(s.available_replicas, Some(0));
    assert_eq!(s.unavailable_replicas, Some(2));
    let conds = s.conditions.unwrap();
    let available = conds
        .iter()
        .find(|c| c.type_.as_deref() == Some("Available"))
        .unwrap();
    assert_eq!(
        available.reason.as_deref(),
        Some("MinimumReplicasUnavailable")
    );
    let progressing = conds
        .iter()
        .find(|c| c.type_.as_deref() == Some("Progressing"))
        .unwrap();
    assert_eq!(progressing.reason.as_deref(), Some("ReplicaSetUpdated"));
}

#[test]
fn min_ready_seconds_delays_availability_and_asks_for_a_requeue() {
    let mut d = deployment(1, "resil-demo:1");
    d.spec.min_ready_seconds = Some(10);
    let pods: Vec<Pod> = reconcile(&d, &[], t(0), &mut counter())
        .create
        .into_iter()
        .map(|p| ready(p, t(0)))
        .collect();
    let plan = reconcile(&d, &pods, t(3), &mut counter());
    assert_eq!(plan.status.ready_replicas, Some(1));
    assert_eq!(plan.status.available_replicas, Some(0));
    assert_eq!(plan.requeue_after, Some(Duration::from_secs(8)));
    let later = reconcile(&d, &pods, t(10), &mut counter());
    assert_eq!(later.status.available_replicas, Some(1));
}

#[test]
fn scale_down_deletes_unready_then_newest_pods_first() {
    let d = deployment(4, "resil-demo:1");
    let made = reconcile(&d, &[], t(0), &mut counter()).create;
    let pods = vec![
        ready(made[0].clone(), t(0)),
        ready(made[1].clone(), t(50)),  // newest ready
        pending(made[2].clone(), t(0)), // not ready
        ready(made[3].clone(), t(10)),
    ];
    let d2 = deployment(2, "resil-demo:1");
    let plan = reconcile(&d2, &pods, t(60), &mut counter());
    let names = |i: usize| made[i].metadata.name.clone().unwrap();
    assert_eq!(plan.delete, vec![names(2), names(1)]);
    assert!(plan.create.is_empty());
}

#[test]
fn scaling_to_zero_deletes_every_pod_and_reports_zero() {
    let d = deployment(2, "resil-demo:1");
    let pods: Vec<Pod> = reconcile(&d, &[], t(0), &mut counter())
        .create
        .into_iter()
        .map(|p| ready(p, t(0)))
        .collect();
    let plan = reconcile(&deployment(0, "resil-demo:1"), &pods, t(5), &mut counter());
    assert_eq!(plan.delete.len(), 2);
    let s = reconcile(&deployment(0, "resil-demo:1"), &[], t(6), &mut counter()).status;
    assert_eq!((s.replicas, s.available_replicas), (Some(0), Some(0)));
}

#[test]
fn pods_of_other_owners_and_terminating_pods_do_not_count() {
    let d = deployment(1, "resil-demo:1");
    let mut mine = ready(
        reconcile(&d, &[], t(0), &mut counter()).create.remove(0),
        t(0),
    );
    let mut foreign = mine.clone();
    foreign.metadata.owner_references.as_mut().unwrap()[0].uid = "other".into();
    mine.metadata.deletion_timestamp = Some(Time(t(1)));
    let plan = reconcile(&d, &[mine, foreign], t(2), &mut counter());
    assert_eq!(
        plan.create.len(),
        1,
        "a terminating pod is replaced at once"
    );
}

#[test]
fn rolling_update_surges_then_removes_old_pods_keeping_availability() {
    // 4 replicas, defaults: maxSurge 1, maxUnavailable 1.
    let v1 = deployment(4, "resil-demo:1");
    let old: Vec<Pod> = reconcile(&v1, &[], t(0), &mut counter())
        .create
        .into_iter()
        .map(|p| ready(p, t(0)))
        .collect();
    let mut v2 = deployment(4, "resil-demo:2");
    v2.metadata.generation = Some(2);
    v2.metadata.annotations = reconcile(&v1, &old, t(0), &mut counter()).annotations;
    let step = reconcile(&v2, &old, t(10), &mut counter());
    assert_eq!(step.create.len(), 1, "surge by maxSurge");
    assert!(
        step.delete.is_empty(),
        "scale-up returns before scaling old down"
    );
    assert_eq!(step.annotations.unwrap()[REVISION_ANNOTATION], "2");

    let mut pods = old.clone();
    pods.push(pending(step.create[0].clone(), t(10)));
    let step2 = reconcile(&v2, &pods, t(11), &mut counter());
    // 5 pods, 4 available, minAvailable 3, 1 new unavailable: may delete 1 old.
    assert_eq!(step2.create.len(), 0);
    assert_eq!(step2.delete.len(), 1);
    assert!(
        old.iter()
            .any(|p| p.metadata.name.as_ref() == Some(&step2.delete[0]))
    );
    let s = step2.status;
    assert_eq!((s.replicas, s.updated_replicas), (Some(5), Some(1)));
    let progressing = s.conditions.unwrap();
    let p = progressing
        .iter()
        .find(|c| c.type_.as_deref() == Some("Progressing"))
        .unwrap();
    assert_eq!(p.reason.as_deref(), Some("ReplicaSetUpdated"));
}

#[test]
fn rolling_update_runs_to_completion() {
    let v1 = deployment(3, "resil-demo:1");
    let mut pods: Vec<Pod> = reconcile(&v1, &[], t(0), &mut counter())
        .create
        .into_iter()
        .map(|p| ready(p, t(0)))
        .collect();
    let v2 = deployment(3, "resil-demo:2");
    let mut names = counter();
    let mut min_available = i32::MAX;
    for step in 1..50 {
        let plan = reconcile(&v2, &pods, t(step), &mut names);
        if plan.create.is_empty() && plan.delete.is_empty() {
            let s = plan.status;
            assert_eq!(s.updated_replicas, Some(3));
            assert_eq!(s.replicas, Some(3));
            assert_eq!(s.available_replicas, Some(3));
            assert!(min_available >= 2, "never below replicas - maxUnavailable");
            return;
        }
        pods.retain(|p| !plan.delete.contains(p.metadata.name.as_ref().unwrap()));
        // New pods become ready one step later.
        pods.extend(plan.create.into_iter().map(|p| ready(p, t(step))));
        min_available = min_available.min(pods.iter().filter(|p| is_ready(p)).count() as i32);
    }
    panic!("rolling update did not finish");
}

#[test]
fn recreate_deletes_old_pods_before_creating_new_ones() {
    let v1 = deployment(2, "resil-demo:1");
    let old: Vec<Pod> = reconcile(&v1, &[], t(0), &mut counter())
        .create
        .into_iter()
        .map(|p| ready(p, t(0)))
        .collect();
    let mut v2 = deployment(2, "resil-demo:2");
    v2.spec.strategy = Some(k8s_openapi::api::apps::v1::DeploymentStrategy {
        type_: Some("Recreate".into()),
        rolling_update: None,
    });
    let plan = reconcile(&v2, &old, t(1), &mut counter());
    assert_eq!(plan.delete.len(), 2);
    assert!(plan.create.is_empty());
    let mut terminating = old[0].clone();
    terminating.metadata.deletion_timestamp = Some(Time(t(1)));
    let plan = reconcile(&v2, &[terminating], t(2), &mut counter());
    assert!(plan.create.is_empty(), "waits for old pods to terminate");
    let plan = reconcile(&v2, &[], t(3), &mut counter());
    assert_eq!(plan.create.len(), 2);
}

#[test]
fn fenceposts_follow_upstream_rounding() {
    let spec =
        |surge: IntOrString, unavail: IntOrString| k8s_openapi::api::apps::v1::DeploymentSpec {
            strategy: Some(k8s_openapi::api::apps::v1::DeploymentStrategy {
                type_: Some("RollingUpdate".into()),
                rolling_update: Some(k8s_openapi::api::apps::v1::RollingUpdateDeployment {
                    max_surge: Some(surge),
                    max_unavailable: Some(unavail),
                }),
            }),
            ..Default::default()
        };
    let pct = |s: &str| IntOrString::String(s.into());
    assert_eq!(fenceposts(&Default::default(), 10), (3, 2));
    assert_eq!(fenceposts(&spec(pct("25%"), pct("25%")), 1), (1, 0));
    assert_eq!(
        fenceposts(&spec(IntOrString::Int(0), IntOrString::Int(0)), 3),
        (0, 1)
    );
}

#[test]
fn an_unchanged_status_keeps_condition_times() {
    let mut d = deployment(1, "resil-demo:1");
    let pods: Vec<Pod> = reconcile(&d, &[], t(0), &mut counter())
        .create
        .into_iter()
        .map(|p| ready(p, t(0)))
        .collect();
    let first = reconcile(&d, &pods, t(1), &mut counter()).status;
    d.status = Some(first.clone());
    let second = reconcile(&d, &pods, t(30), &mut counter()).status;
    assert_eq!(first, second);
}
