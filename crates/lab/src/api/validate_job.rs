//! Validation of a batch/v1 Job, the part the lab's Job controller and kubelet rely on
//! (upstream `pkg/apis/batch/validation/validation.go`, `validateJobSpec`): a template
//! whose pod spec passes the pod checks, `restartPolicy` `OnFailure` or `Never`,
//! non-negative `parallelism`, `completions` and `backoffLimit`, and `completions` set
//! when `completionMode` is `Indexed`. Called from `validate.rs`.

use serde_json::Value;

use super::validate::{Causes, pod_spec};

/// Adds a cause per problem of the Job's `spec`.
pub(super) fn check(spec: Option<&Value>, causes: &mut Causes) {
    let Some(spec) = spec else {
        causes.push(("spec.template".into(), "Required value".into()));
        return;
    };
    for key in ["parallelism", "completions", "backoffLimit"] {
        if let Some(v) = spec.get(key)
            && v.as_i64().is_none_or(|n| n < 0)
        {
            causes.push((
                format!("spec.{key}"),
                format!("Invalid value: {v}: must be greater than or equal to 0"),
            ));
        }
    }
    let mode = spec.get("completionMode").and_then(Value::as_str);
    match mode {
        None | Some("NonIndexed") => {}
        Some("Indexed") => {
            if spec.get("completions").is_none_or(Value::is_null) {
                causes.push((
                    "spec.completions".into(),
                    "Required value: when completion mode is Indexed".into(),
                ));
            }
        }
        Some(other) => causes.push((
            "spec.completionMode".into(),
            format!("Unsupported value: {other:?}: supported values: \"NonIndexed\", \"Indexed\""),
        )),
    }
    let Some(template) = spec.get("template") else {
        causes.push(("spec.template".into(), "Required value".into()));
        return;
    };
    // Unset, it defaults to Always, which a Job refuses.
    let policy = template
        .pointer("/spec/restartPolicy")
        .and_then(Value::as_str)
        .unwrap_or("Always");
    if !matches!(policy, "OnFailure" | "Never") {
        causes.push((
            "spec.template.spec.restartPolicy".into(),
            format!("Unsupported value: {policy:?}: supported values: \"OnFailure\", \"Never\""),
        ));
    }
    pod_spec(template.get("spec"), "spec.template.spec", causes);
}
