use k8s_openapi::api::batch::v1::JobSpec;
use k8s_openapi::api::core::v1::{Container, PodSpec, PodStatus, PodTemplateSpec};

use super::*;

fn job(completions: i32, parallelism: i32, indexed: bool) -> Job {
    Job {
        metadata: ObjectMeta {
            name: Some("w".into()),
            namespace: Some("default".into()),
            uid: Some("uid-w".into()),
            ..ObjectMeta::default()
        },
        spec: Some(JobSpec {
            completions: Some(completions),
            parallelism: Some(parallelism),
            backoff_limit: Some(1),
            completion_mode: Some(if indexed { "Indexed" } else { "NonIndexed" }.into()),
            template: PodTemplateSpec {
                metadata: None,
                spec: Some(PodSpec {
                    restart_policy: Some("Never".into()),
                    containers: vec![Container {
                        name: "worker".into(),
                        image: Some("resil-demo:latest".into()),
                        ..Container::default()
                    }],
                    ..PodSpec::default()
                }),
            },
            ..JobSpec::default()
        }),
        status: None,
    }
}

fn with_phase(mut pod: Pod, phase: &str) -> Pod {
    pod.status = Some(PodStatus {
        phase: Some(phase.into()),
        ..PodStatus::default()
    });
    pod
}

fn now() -> Timestamp {
    Timestamp::from_second(1_800_000_000).unwrap()
}

fn fixed() -> impl FnMut() -> String {
    let mut n = 0;
    move || {
        n += 1;
        format!("s{n}")
    }
}

#[test]
fn an_indexed_job_starts_one_pod_per_index_with_its_index_in_env_and_annotation() {
    let j = job(3, 2, true);
    let plan = reconcile(&j, &[], now(), &mut fixed());
    let names: Vec<_> = plan.create.iter().map(name_of).collect();
    assert_eq!(names, ["w-0-s1", "w-1-s2"]);
    let pod = &plan.create[1];
    assert_eq!(
        pod.metadata.annotations.as_ref().unwrap()[COMPLETION_INDEX],
        "1"
    );
    let env = pod.spec.as_ref().unwrap().containers[0]
        .env
        .as_ref()
        .unwrap();
    assert_eq!(env[0].name, COMPLETION_INDEX_ENV);
    assert_eq!(plan.status.active, Some(2));
    assert_eq!(
        pod.metadata.owner_references.as_ref().unwrap()[0].kind,
        "Job"
    );
}

#[test]
fn a_failed_pod_is_replaced_until_the_backoff_limit_then_the_job_fails() {
    let j = job(1, 1, false);
    let first = reconcile(&j, &[], now(), &mut fixed()).create.remove(0);
    let failed = with_phase(first.clone(), "Failed");
    let plan = reconcile(&j, std::slice::from_ref(&failed), now(), &mut fixed());
    assert_eq!(plan.create.len(), 1, "one failure is within backoffLimit 1");
    let mut second = with_phase(plan.create[0].clone(), "Failed");
    second.metadata.name = Some("w-other".into());
    let plan = reconcile(&j, &[failed, second], now(), &mut fixed());
    assert!(plan.create.is_empty());
    let conditions = plan.status.conditions.unwrap();
    let failed = conditions.iter().find(|c| c.type_ == "Failed").unwrap();
    assert_eq!(failed.reason.as_deref(), Some("BackoffLimitExceeded"));
    assert_eq!(plan.status.failed, Some(2));
}

#[test]
fn every_index_succeeded_completes_the_job() {
    let j = job(2, 2, true);
    let pods: Vec<Pod> = reconcile(&j, &[], now(), &mut fixed())
        .create
        .into_iter()
        .map(|p| with_phase(p, "Succeeded"))
        .collect();
    let plan = reconcile(&j, &pods, now(), &mut fixed());
    assert!(plan.create.is_empty());
    assert_eq!(plan.status.succeeded, Some(2));
    assert_eq!(plan.status.completed_indexes.as_deref(), Some("0-1"));
    assert!(plan.status.completion_time.is_some());
    let types: Vec<_> = plan
        .status
        .conditions
        .unwrap()
        .into_iter()
        .map(|c| c.type_)
        .collect();
    assert_eq!(types, ["SuccessCriteriaMet", "Complete"]);
}

#[test]
fn indexes_compress_into_intervals() {
    let set: BTreeSet<i32> = [0, 1, 2, 4, 6, 7].into_iter().collect();
    assert_eq!(intervals(&set), "0-2,4,6-7");
    assert_eq!(intervals(&BTreeSet::new()), "");
}
