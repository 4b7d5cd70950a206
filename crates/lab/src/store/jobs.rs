//! What the API server fills into a new batch/v1 Job before storing it: upstream's
//! `SetDefaults_Job` (`pkg/apis/batch/v1/defaults.go`: completions and parallelism 1 when
//! both are unset, parallelism 1, backoffLimit 6, completionMode `NonIndexed`, suspend
//! false, podReplacementPolicy `TerminatingOrFailed`) and the generated selector of
//! `pkg/registry/batch/job/strategy.go` (`generateSelector`): unless
//! `spec.manualSelector` is true, the template gets the labels
//! `batch.kubernetes.io/controller-uid`, `batch.kubernetes.io/job-name` (and the legacy
//! `controller-uid`, `job-name`) and the selector matches the uid. A Job without labels
//! takes its template's, as upstream's defaulting on read gives it.

use serde_json::{Value, json};

/// Label and selector key naming the Job's uid.
pub const CONTROLLER_UID_LABEL: &str = "batch.kubernetes.io/controller-uid";
/// Label naming the Job.
pub const JOB_NAME_LABEL: &str = "batch.kubernetes.io/job-name";

fn default(obj: &mut Value, key: &str, value: Value) {
    if let Some(m) = obj.as_object_mut() {
        m.entry(key).or_insert(value);
    }
}

/// Fills the defaults and the generated selector into a Job about to be created (its
/// `metadata.uid` and `metadata.name` are set).
pub fn defaults(obj: &mut Value) {
    let uid = obj["metadata"]["uid"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let name = obj["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let Some(spec) = obj.get_mut("spec").filter(|s| s.is_object()) else {
        return;
    };
    if spec.get("completions").is_none() && spec.get("parallelism").is_none() {
        spec["completions"] = json!(1);
    }
    default(spec, "parallelism", json!(1));
    let per_index = spec.get("backoffLimitPerIndex").is_some();
    default(
        spec,
        "backoffLimit",
        json!(if per_index { i32::MAX } else { 6 }),
    );
    default(spec, "completionMode", json!("NonIndexed"));
    default(spec, "suspend", json!(false));
    let replacement = if spec.get("podFailurePolicy").is_some() {
        "Failed"
    } else {
        "TerminatingOrFailed"
    };
    default(spec, "podReplacementPolicy", json!(replacement));
    if spec["manualSelector"] != json!(true) {
        if !spec["template"].is_object() {
            spec["template"] = json!({});
        }
        let template = &mut spec["template"];
        if !template["metadata"].is_object() {
            template["metadata"] = json!({});
        }
        if !template["metadata"]["labels"].is_object() {
            template["metadata"]["labels"] = json!({});
        }
        let labels = &mut template["metadata"]["labels"];
        for (k, v) in [
            (CONTROLLER_UID_LABEL, &uid),
            (JOB_NAME_LABEL, &name),
            ("controller-uid", &uid),
            ("job-name", &name),
        ] {
            labels[k] = json!(v);
        }
        spec["selector"] = json!({"matchLabels": {CONTROLLER_UID_LABEL: uid}});
    }
    if let Some(pod) = spec.pointer_mut("/template/spec") {
        super::meta::pod_spec_defaults(pod);
    }
    let template_labels = spec.pointer("/template/metadata/labels").cloned();
    let meta = &mut obj["metadata"];
    let unlabelled = meta
        .get("labels")
        .and_then(Value::as_object)
        .is_none_or(|l| l.is_empty());
    if unlabelled && let Some(labels) = template_labels {
        meta["labels"] = labels;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bare_job_gets_upstreams_defaults_and_a_generated_selector() {
        let mut job = json!({"metadata": {"name": "w", "uid": "u1"},
            "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "x:1"}]}}}});
        defaults(&mut job);
        let spec = &job["spec"];
        assert_eq!(spec["completions"], 1);
        assert_eq!(spec["parallelism"], 1);
        assert_eq!(spec["backoffLimit"], 6);
        assert_eq!(spec["completionMode"], "NonIndexed");
        assert_eq!(spec["selector"]["matchLabels"][CONTROLLER_UID_LABEL], "u1");
        assert_eq!(spec["template"]["metadata"]["labels"]["job-name"], "w");
        assert_eq!(job["metadata"]["labels"][JOB_NAME_LABEL], "w");
    }

    #[test]
    fn parallelism_alone_leaves_completions_unset() {
        let mut job = json!({"metadata": {"name": "w", "uid": "u"},
            "spec": {"parallelism": 3, "template": {}}});
        defaults(&mut job);
        assert!(job["spec"].get("completions").is_none());
        assert_eq!(job["spec"]["parallelism"], 3);
    }
}
