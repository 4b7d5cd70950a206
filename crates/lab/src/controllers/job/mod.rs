//! The Job controller's decision, as pure code: given a Job, its pods and the time, which
//! pods to create and delete and the status to write.
//!
//! Mirrors kubernetes `pkg/controller/job/job_controller.go` (`syncJob`, `manageJob`,
//! `getNewFinishedPods`, the `BackoffLimitExceeded` and `DeadlineExceeded` failures, the
//! `SuccessCriteriaMet`/`Complete` and `FailureTarget`/`Failed` condition pairs),
//! `indexed_job_utils.go` (completion indexes in the annotation and label
//! `batch.kubernetes.io/job-completion-index`, `JOB_COMPLETION_INDEX` from a fieldRef to
//! that annotation, pods named `<job>-<index>-<suffix>`, `completedIndexes` as
//! intervals, the lowest pending indexes first) and `backoff_utils.go` (failures of
//! `restartPolicy: OnFailure` pods are their container restarts).
//!
//! Lab simplifications: finished pods are counted while they exist (no
//! `batch.kubernetes.io/job-tracking` finalizer; counts never go down, so a finished pod
//! deleted before the controller saw it is not counted); a failed pod is replaced at
//! once, without upstream's exponential back-off; no `podFailurePolicy`,
//! `successPolicy`, `backoffLimitPerIndex`, suspend or `ttlSecondsAfterFinished`. The
//! loop doing the store I/O is `job_loop.rs`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use k8s_openapi::api::batch::v1::{Job, JobCondition, JobStatus};
use k8s_openapi::api::core::v1::{EnvVar, EnvVarSource, ObjectFieldSelector, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};
use k8s_openapi::jiff::Timestamp;

use super::pods::{in_deletion_order, is_ready, restart_count};

/// Annotation (and label) holding an Indexed Job pod's completion index.
pub const COMPLETION_INDEX: &str = "batch.kubernetes.io/job-completion-index";
/// The env variable a pod of an Indexed Job reads its index from.
pub const COMPLETION_INDEX_ENV: &str = "JOB_COMPLETION_INDEX";

/// What one sync of one Job decided.
#[derive(Debug, Clone, PartialEq)]
pub struct JobPlan {
    /// Pods to create, complete objects.
    pub create: Vec<Pod>,
    /// Names of active pods to delete (surplus, or the Job finished).
    pub delete: Vec<String>,
    /// The status to write (compare with the stored one before writing).
    pub status: JobStatus,
    /// Events to record on the Job: (type, reason, message).
    pub events: Vec<(&'static str, &'static str, String)>,
    /// Sync again after this long even without a change (`activeDeadlineSeconds`).
    pub requeue_after: Option<Duration>,
}

/// The ownerReference that makes the Job the controller of its pods.
pub fn controller_ref(job: &Job) -> OwnerReference {
    OwnerReference {
        api_version: "batch/v1".to_string(),
        kind: "Job".to_string(),
        name: job.metadata.name.clone().unwrap_or_default(),
        uid: job.metadata.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

fn phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("Pending")
}

fn is_indexed(job: &Job) -> bool {
    job.spec.as_ref().and_then(|s| s.completion_mode.as_deref()) == Some("Indexed")
}

/// A pod's completion index, when it has a valid one below `completions`.
fn index_of(pod: &Pod, completions: i32) -> Option<i32> {
    let i: i32 = pod
        .metadata
        .annotations
        .as_ref()?
        .get(COMPLETION_INDEX)?
        .parse()
        .ok()?;
    (0..completions).contains(&i).then_some(i)
}

/// Whether the Job has a True condition of `type_`.
pub fn has_condition(job: &Job, type_: &str) -> bool {
    job.status
        .iter()
        .flat_map(|s| s.conditions.iter().flatten())
        .any(|c| c.type_ == type_ && c.status == "True")
}

/// Pod counts of one sync.
struct Counts<'a> {
    active: Vec<&'a Pod>,
    terminating: i32,
    succeeded: i32,
    failed: i32,
    /// Indexed: indexes with a Succeeded pod.
    succeeded_indexes: BTreeSet<i32>,
}

fn count<'a>(job: &Job, pods: &'a [Pod]) -> Counts<'a> {
    let completions = job.spec.as_ref().and_then(|s| s.completions).unwrap_or(0);
    let indexed = is_indexed(job);
    let mut c = Counts {
        active: Vec::new(),
        terminating: 0,
        succeeded: 0,
        failed: 0,
        succeeded_indexes: BTreeSet::new(),
    };
    for pod in pods {
        match phase(pod) {
            "Succeeded" => {
                c.succeeded += 1;
                if indexed && let Some(i) = index_of(pod, completions) {
                    c.succeeded_indexes.insert(i);
                }
            }
            "Failed" => c.failed += 1,
            _ if pod.metadata.deletion_timestamp.is_some() => c.terminating += 1,
            _ => c.active.push(pod),
        }
    }
    if indexed {
        c.succeeded = c.succeeded_indexes.len() as i32;
    }
    let previous = job.status.clone().unwrap_or_default();
    // Counts never go down (finished pods may be deleted by hand).
    c.succeeded = c.succeeded.max(previous.succeeded.unwrap_or(0));
    c.failed = c.failed.max(previous.failed.unwrap_or(0));
    c
}

/// One sync. `pods` are the pods this Job controls. `suffix` makes pod name suffixes
/// (random in the loop, fixed in tests).
pub fn reconcile(
    job: &Job,
    pods: &[Pod],
    now: Timestamp,
    suffix: &mut dyn FnMut() -> String,
) -> JobPlan {
    let spec = job.spec.clone().unwrap_or_default();
    let previous = job.status.clone().unwrap_or_default();
    let c = count(job, pods);
    let start = previous.start_time.clone().map_or(now, |t| t.0);
    let finished = has_condition(job, "Complete") || has_condition(job, "Failed");
    let mut plan = JobPlan {
        create: Vec::new(),
        delete: Vec::new(),
        status: previous.clone(),
        events: Vec::new(),
        requeue_after: None,
    };
    let mut conditions = previous.conditions.clone().unwrap_or_default();
    if !finished && job.metadata.deletion_timestamp.is_none() {
        let backoff = spec.backoff_limit.unwrap_or(6);
        // `OnFailure` pods fail in place: their restarts count as failures.
        let restarts: i32 = c.active.iter().map(|p| restart_count(p)).sum();
        let on_failure = spec
            .template
            .spec
            .as_ref()
            .and_then(|s| s.restart_policy.as_deref())
            == Some("OnFailure");
        let failures = c.failed + if on_failure { restarts } else { 0 };
        let deadline = spec.active_deadline_seconds.map(|s| s.max(0));
        let elapsed = now.as_second() - start.as_second();
        let failure = if failures > backoff {
            Some((
                "BackoffLimitExceeded",
                "Job has reached the specified backoff limit",
            ))
        } else if deadline.is_some_and(|d| elapsed >= d) {
            Some((
                "DeadlineExceeded",
                "Job was active longer than specified deadline",
            ))
        } else {
            None
        };
        if let Some(d) = deadline.filter(|_| failure.is_none()) {
            plan.requeue_after = Some(Duration::from_secs((d - elapsed).max(0) as u64 + 1));
        }
        let done = complete(job, &c);
        if let Some((reason, message)) = failure {
            plan.delete = c.active.iter().map(|p| name_of(p)).collect();
            for type_ in ["FailureTarget", "Failed"] {
                set_condition(&mut conditions, type_, reason, message, now);
            }
            plan.events.push(("Warning", reason, message.to_string()));
        } else if done {
            plan.delete = c.active.iter().map(|p| name_of(p)).collect();
            for type_ in ["SuccessCriteriaMet", "Complete"] {
                set_condition(
                    &mut conditions,
                    type_,
                    "CompletionsReached",
                    "Reached expected number of succeeded pods",
                    now,
                );
            }
            plan.status.completion_time = Some(Time(now));
            plan.events
                .push(("Normal", "Completed", "Job completed".to_string()));
        } else {
            manage(job, &c, suffix, &mut plan);
        }
    }
    let deleting: BTreeSet<&String> = plan.delete.iter().collect();
    let active = c
        .active
        .iter()
        .filter(|p| !deleting.contains(&name_of(p)))
        .count();
    let s = &mut plan.status;
    s.start_time = Some(Time(start));
    s.active = Some((active + plan.create.len()) as i32).filter(|n| *n > 0);
    s.ready = Some(c.active.iter().filter(|p| is_ready(p)).count() as i32);
    s.terminating = Some(c.terminating + deleting.len() as i32);
    s.succeeded = Some(c.succeeded).filter(|n| *n > 0);
    s.failed = Some(c.failed).filter(|n| *n > 0);
    s.conditions = Some(conditions).filter(|c| !c.is_empty());
    if is_indexed(job) {
        s.completed_indexes = Some(intervals(&c.succeeded_indexes));
    }
    plan
}

/// Whether the Job's success criteria are met.
fn complete(job: &Job, c: &Counts) -> bool {
    let spec = job.spec.clone().unwrap_or_default();
    match spec.completions {
        Some(n) if is_indexed(job) => c.succeeded_indexes.len() as i32 >= n,
        Some(n) => c.succeeded >= n,
        // Without completions: the first success ends the Job once nothing runs.
        None => c.succeeded > 0 && c.active.is_empty(),
    }
}

/// Upstream `manageJob`: create pods up to the wanted active count, delete the surplus.
fn manage(job: &Job, c: &Counts, suffix: &mut dyn FnMut() -> String, plan: &mut JobPlan) {
    let spec = job.spec.clone().unwrap_or_default();
    let parallelism = spec.parallelism.unwrap_or(1).max(0);
    let active = c.active.len() as i32;
    if is_indexed(job) {
        let completions = spec.completions.unwrap_or(0);
        let running: BTreeSet<i32> = c
            .active
            .iter()
            .filter_map(|p| index_of(p, completions))
            .collect();
        let pending =
            (0..completions).filter(|i| !c.succeeded_indexes.contains(i) && !running.contains(i));
        let room = (parallelism - active).max(0) as usize;
        plan.create = pending
            .take(room)
            .map(|i| new_pod(job, Some(i), &suffix()))
            .collect();
        // Pods without a valid index, or for an index already done, go.
        plan.delete = c
            .active
            .iter()
            .filter(|p| index_of(p, completions).is_none_or(|i| c.succeeded_indexes.contains(&i)))
            .map(|p| name_of(p))
            .collect();
        return;
    }
    let wanted = match spec.completions {
        Some(n) => parallelism.min((n - c.succeeded).max(0)),
        None if c.succeeded > 0 => 0,
        None => parallelism,
    };
    if active < wanted {
        plan.create = (active..wanted)
            .map(|_| new_pod(job, None, &suffix()))
            .collect();
    } else if active > wanted {
        plan.delete = in_deletion_order(&c.active)
            .into_iter()
            .take((active - wanted) as usize)
            .map(name_of)
            .collect();
    }
}

fn set_condition(
    conditions: &mut Vec<JobCondition>,
    type_: &str,
    reason: &str,
    message: &str,
    now: Timestamp,
) {
    conditions.retain(|c| c.type_ != type_);
    conditions.push(JobCondition {
        type_: type_.to_string(),
        status: "True".to_string(),
        reason: Some(reason.to_string()),
        message: Some(message.to_string()),
        last_probe_time: Some(Time(now)),
        last_transition_time: Some(Time(now)),
    });
}

/// Sorted indexes as upstream's compressed intervals: `0-2,4`.
pub fn intervals(indexes: &BTreeSet<i32>) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut run: Option<(i32, i32)> = None;
    for &i in indexes {
        run = match run {
            Some((a, b)) if i == b + 1 => Some((a, i)),
            Some((a, b)) => {
                out.push(if a == b {
                    a.to_string()
                } else {
                    format!("{a}-{b}")
                });
                Some((i, i))
            }
            None => Some((i, i)),
        };
    }
    if let Some((a, b)) = run {
        out.push(if a == b {
            a.to_string()
        } else {
            format!("{a}-{b}")
        });
    }
    out.join(",")
}

/// A pod made from the Job's template, owned by it; an Indexed Job's pod carries its
/// index (annotation, label, env) and is named `<job>-<index>-<suffix>`.
fn new_pod(job: &Job, index: Option<i32>, suffix: &str) -> Pod {
    let template = job.spec.clone().unwrap_or_default().template;
    let tm = template.metadata.unwrap_or_default();
    let name = job.metadata.name.as_deref().unwrap_or_default();
    let prefix = match index {
        Some(i) => format!("{name}-{i}-"),
        None => format!("{name}-"),
    };
    let mut labels = tm.labels.unwrap_or_default();
    let mut annotations = tm.annotations.unwrap_or_default();
    let mut spec = template.spec;
    if let Some(i) = index {
        labels.insert(COMPLETION_INDEX.to_string(), i.to_string());
        annotations.insert(COMPLETION_INDEX.to_string(), i.to_string());
        if let Some(spec) = spec.as_mut() {
            for c in spec
                .containers
                .iter_mut()
                .chain(spec.init_containers.iter_mut().flatten())
            {
                add_index_env(&mut c.env);
            }
        }
    }
    Pod {
        metadata: ObjectMeta {
            name: Some(format!("{prefix}{suffix}")),
            generate_name: Some(prefix),
            namespace: job.metadata.namespace.clone(),
            labels: Some(labels),
            annotations: Some(annotations).filter(|a: &BTreeMap<_, _>| !a.is_empty()),
            owner_references: Some(vec![controller_ref(job)]),
            ..ObjectMeta::default()
        },
        spec,
        status: None,
    }
}

/// Upstream `addCompletionIndexEnvVariable`: unless the container sets it itself.
fn add_index_env(env: &mut Option<Vec<EnvVar>>) {
    let env = env.get_or_insert_with(Vec::new);
    if env.iter().any(|e| e.name == COMPLETION_INDEX_ENV) {
        return;
    }
    env.push(EnvVar {
        name: COMPLETION_INDEX_ENV.to_string(),
        value: None,
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                api_version: None,
                field_path: format!("metadata.annotations['{COMPLETION_INDEX}']"),
            }),
            ..EnvVarSource::default()
        }),
    });
}

fn name_of(pod: &Pod) -> String {
    pod.metadata.name.clone().unwrap_or_default()
}

#[cfg(test)]
mod tests;
