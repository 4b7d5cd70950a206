//! Validation of written objects (422 Invalid with one cause per field), limited to what
//! the lab's controllers and kubelet depend on: pods need named containers with images,
//! deployments a selector matching their template, services valid ports, HPAs a target
//! and sane bounds. Called by the create/replace/patch handlers before the store.

use serde_json::Value;

use super::status::{ApiError, ApiResult};
use crate::lab::store::Kind;

type Causes = Vec<(String, String)>;

fn required(causes: &mut Causes, field: &str) {
    causes.push((field.to_string(), "Required value".to_string()));
}

fn pod_spec(spec: Option<&Value>, at: &str, causes: &mut Causes) {
    let containers = spec
        .and_then(|s| s.get("containers"))
        .and_then(Value::as_array);
    match containers {
        None => required(causes, &format!("{at}.containers")),
        Some(list) if list.is_empty() => required(causes, &format!("{at}.containers")),
        Some(list) => {
            for (i, c) in list.iter().enumerate() {
                for key in ["name", "image"] {
                    if c.get(key).and_then(Value::as_str).unwrap_or("").is_empty() {
                        required(causes, &format!("{at}.containers[{i}].{key}"));
                    }
                }
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
        "deployments" => {
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
