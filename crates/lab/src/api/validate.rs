//! Validation of written objects (422 Invalid with one cause per field), limited to what
//! the lab's controllers and kubelet depend on: pods need containers with images and with
//! names that are DNS-1123 labels, unique in the pod (the kubelet makes file names of
//! them), deployments a selector matching their template, services valid ports, HPAs a
//! target and sane bounds. Called by the create/replace/patch handlers before the store.

use serde_json::Value;

use super::status::{ApiError, ApiResult};
use crate::store::Kind;

pub(super) type Causes = Vec<(String, String)>;

fn required(causes: &mut Causes, field: &str) {
    causes.push((field.to_string(), "Required value".to_string()));
}

/// Longest DNS-1123 label.
const LABEL_MAX: usize = 63;

/// Why `name` is not a DNS-1123 label (upstream `IsDNS1123Label`), or None if it is one.
pub(super) fn dns_label_problem(name: &str) -> Option<String> {
    if name.len() > LABEL_MAX {
        return Some(format!(
            "Invalid value: {name:?}: must be no more than {LABEL_MAX} characters"
        ));
    }
    (!crate::kubelet::logs::is_dns1123_label(name)).then(|| {
        format!(
            "Invalid value: {name:?}: a lowercase RFC 1123 label must consist of lower case \
             alphanumeric characters or '-', and must start and end with an alphanumeric \
             character (e.g. 'my-name',  or '123-abc', regex used for validation is \
             '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
        )
    })
}

/// Containers and init containers: each needs an image and a name that is a DNS-1123
/// label not used by another container of the pod (upstream `validateContainers`,
/// `validateInitContainers`).
pub(super) fn pod_spec(spec: Option<&Value>, at: &str, causes: &mut Causes) {
    let list = |key: &str| spec.and_then(|s| s.get(key)).and_then(Value::as_array);
    if list("containers").is_none_or(|l| l.is_empty()) {
        required(causes, &format!("{at}.containers"));
    }
    let mut seen = std::collections::HashSet::new();
    for key in ["containers", "initContainers"] {
        for (i, c) in list(key).into_iter().flatten().enumerate() {
            let field = format!("{at}.{key}[{i}]");
            let name = c.get("name").and_then(Value::as_str).unwrap_or("");
            if name.is_empty() {
                required(causes, &format!("{field}.name"));
            } else if let Some(problem) = dns_label_problem(name) {
                causes.push((format!("{field}.name"), problem));
            } else if !seen.insert(name) {
                causes.push((
                    format!("{field}.name"),
                    format!("Duplicate value: {name:?}"),
                ));
            }
            if c.get("image")
                .and_then(Value::as_str)
                .unwrap_or("")
                .is_empty()
            {
                required(causes, &format!("{field}.image"));
            }
        }
    }
}

fn port_ok(v: Option<&Value>) -> bool {
    v.and_then(Value::as_i64)
        .is_some_and(|p| (1..=65_535).contains(&p))
}

/// Checks `obj` as a `kind`; Err is a 422 Status listing every problem found.
pub fn check(kind: &Kind, obj: &Value) -> ApiResult<()> {
    let mut causes = Causes::new();
    let spec = obj.get("spec");
    match kind.plural {
        "pods" => pod_spec(spec, "spec", &mut causes),
        "deployments" | "replicasets" => {
            let match_labels = spec
                .and_then(|s| s.pointer("/selector/matchLabels"))
                .and_then(Value::as_object);
            let template_labels = spec
                .and_then(|s| s.pointer("/template/metadata/labels"))
                .and_then(Value::as_object);
            match (match_labels, template_labels) {
                (None, _) => required(&mut causes, "spec.selector"),
                (Some(sel), labels) => {
                    let all = sel
                        .iter()
                        .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v));
                    if sel.is_empty() || !all {
                        causes.push((
                            "spec.template.metadata.labels".into(),
                            "Invalid value: `selector` does not match template `labels`".into(),
                        ));
                    }
                }
            }
            if let Some(r) = spec.and_then(|s| s.get("replicas"))
                && r.as_i64().is_none_or(|n| n < 0)
            {
                causes.push((
                    "spec.replicas".into(),
                    format!("Invalid value: {r}: must be greater than or equal to 0"),
                ));
            }
            pod_spec(
                spec.and_then(|s| s.pointer("/template/spec")),
                "spec.template.spec",
                &mut causes,
            );
        }
        "jobs" => super::validate_job::check(spec, &mut causes),
        "services" => {
            let ports = spec.and_then(|s| s.get("ports")).and_then(Value::as_array);
            for (i, p) in ports.into_iter().flatten().enumerate() {
                if !port_ok(p.get("port")) {
                    causes.push((
                        format!("spec.ports[{i}].port"),
                        "Invalid value: must be between 1 and 65535".into(),
                    ));
                }
                if let Some(n) = p.get("nodePort")
                    && n.as_i64().is_none_or(|n| !(30_000..=32_767).contains(&n))
                {
                    causes.push((
                        format!("spec.ports[{i}].nodePort"),
                        format!("Invalid value: {n}: provided port is not in the valid range. The range of valid ports is 30000-32767"),
                    ));
                }
            }
            let ty = spec
                .and_then(|s| s.get("type"))
                .and_then(Value::as_str)
                .unwrap_or("ClusterIP");
            if !matches!(
                ty,
                "ClusterIP" | "NodePort" | "LoadBalancer" | "ExternalName"
            ) {
                causes.push(("spec.type".into(), format!("Unsupported value: {ty:?}")));
            }
        }
        "horizontalpodautoscalers" => {
            for key in ["kind", "name"] {
                if spec
                    .and_then(|s| s.pointer(&format!("/scaleTargetRef/{key}")))
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .is_empty()
                {
                    required(&mut causes, &format!("spec.scaleTargetRef.{key}"));
                }
            }
            let max = spec
                .and_then(|s| s.get("maxReplicas"))
                .and_then(Value::as_i64);
            let min = spec
                .and_then(|s| s.get("minReplicas"))
                .and_then(Value::as_i64)
                .unwrap_or(1);
            match max {
                None => required(&mut causes, "spec.maxReplicas"),
                Some(m) if m < 1 || m < min => causes.push((
                    "spec.maxReplicas".into(),
                    format!("Invalid value: {m}: must be greater than or equal to minReplicas ({min}) and 1"),
                )),
                Some(_) => {}
            }
        }
        _ => {}
    }
    if causes.is_empty() {
        Ok(())
    } else {
        let name = obj
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("");
        Err(ApiError::invalid(kind, name, &causes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::kinds;
    use axum::http::StatusCode;
    use serde_json::json;

    fn causes_of(kind: &str, obj: Value) -> Vec<(String, String, String)> {
        let err = check(kinds::stored(kind).unwrap(), &obj).unwrap_err();
        assert_eq!(
            (err.code, err.reason),
            (StatusCode::UNPROCESSABLE_ENTITY, "Invalid")
        );
        let details = err.details.unwrap();
        details["causes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                let s = |k: &str| c[k].as_str().unwrap().to_string();
                (s("field"), s("reason"), s("message"))
            })
            .collect()
    }

    fn pod(containers: Value, init: Value) -> Value {
        json!({"metadata": {"name": "p"},
               "spec": {"containers": containers, "initContainers": init}})
    }

    #[test]
    fn a_container_named_like_a_path_is_refused_with_its_field() {
        for bad in [
            "../../../../../ESCAPED",
            "a/b",
            "..",
            "Web",
            "-web",
            "web-",
            "web.1",
        ] {
            let causes = causes_of("pods", pod(json!([{"name": bad, "image": "i"}]), json!([])));
            assert_eq!(causes.len(), 1, "{bad}: {causes:?}");
            assert_eq!(causes[0].0, "spec.containers[0].name", "{bad}");
            assert_eq!(causes[0].1, "FieldValueInvalid");
            assert!(causes[0].2.contains("RFC 1123 label"), "{:?}", causes[0]);
        }
        let long = "a".repeat(64);
        let causes = causes_of(
            "pods",
            pod(json!([{"name": long, "image": "i"}]), json!([])),
        );
        assert!(causes[0].2.contains("no more than 63"), "{causes:?}");
    }

    #[test]
    fn container_names_are_unique_across_containers_and_init_containers() {
        let causes = causes_of(
            "pods",
            pod(
                json!([{"name": "web", "image": "i"}, {"name": "web", "image": "i"}]),
                json!([{"name": "web", "image": "i"}, {"name": "../x", "image": "i"}]),
            ),
        );
        let fields: Vec<_> = causes
            .iter()
            .map(|c| (c.0.as_str(), c.1.as_str()))
            .collect();
        assert_eq!(
            fields,
            [
                ("spec.containers[1].name", "FieldValueDuplicate"),
                ("spec.initContainers[0].name", "FieldValueDuplicate"),
                ("spec.initContainers[1].name", "FieldValueInvalid"),
            ]
        );
    }

    #[test]
    fn deployment_templates_get_the_same_container_checks() {
        let obj = json!({"metadata": {"name": "d"}, "spec": {
            "selector": {"matchLabels": {"app": "d"}},
            "template": {"metadata": {"labels": {"app": "d"}},
                         "spec": {"containers": [{"name": "a/b", "image": "i"}]}}}});
        let causes = causes_of("deployments", obj);
        assert_eq!(causes[0].0, "spec.template.spec.containers[0].name");
    }

    #[test]
    fn good_names_pass() {
        let ok = pod(
            json!([{"name": "web", "image": "i"}, {"name": "a-1", "image": "i"}]),
            json!([{"name": "0init", "image": "i"}]),
        );
        check(kinds::stored("pods").unwrap(), &ok).unwrap();
    }
}
