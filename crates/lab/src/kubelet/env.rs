//! A container's environment as strings, resolved the way the kubelet does before it
//! starts the container: literal `value`s with `$(VAR)` references to earlier variables
//! expanded (`$$` escapes a `$`), and downward-API `fieldRef`s (`metadata.name`,
//! `metadata.namespace`, `metadata.uid`, `metadata.labels['k']`,
//! `metadata.annotations['k']`, `spec.nodeName`, `spec.serviceAccountName`,
//! `status.podIP`, `status.hostIP`). The lab has no ConfigMaps, Secrets or resource
//! fields to read: such a variable (unless marked optional) is an [`EnvError`], which the
//! kubelet reports as the container waiting with `CreateContainerConfigError`, as a real
//! node does for a missing ConfigMap.
//!
//! A pod is a process on the user's machine, not in a container image, so variables that
//! make the dynamic loader run other code ([`is_loader_variable`]: `LD_*`, `DYLD_*`,
//! `GCONV_PATH`) never reach it: [`without_loader_variables`] drops them and names them,
//! and the process layer drops them again before it executes anything.

use std::collections::HashMap;

use k8s_openapi::api::core::v1::{Container, EnvVar, Pod};

/// Why a container's environment cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvError {
    /// A `valueFrom` source the lab cannot serve.
    #[error("env {name}: {what} is not available in the resil lab; use a literal `value`")]
    Unsupported {
        /// The variable.
        name: String,
        /// `configMapKeyRef`, `secretKeyRef`, ...
        what: &'static str,
    },
    /// A `fieldRef` path that is not a downward-API field.
    #[error("env {name}: unsupported fieldPath {path:?}")]
    FieldPath {
        /// The variable.
        name: String,
        /// The path asked for.
        path: String,
    },
}

/// The reason a real kubelet gives when it cannot build the environment.
pub const CONFIG_ERROR_REASON: &str = "CreateContainerConfigError";

/// Resolves `container.env` for `pod`, running on a node and pod IP of 127.0.0.1.
pub fn container_env(container: &Container, pod: &Pod) -> Result<Vec<(String, String)>, EnvError> {
    let mut resolved: Vec<(String, String)> = Vec::new();
    let mut seen: HashMap<String, String> = HashMap::new();
    for var in container.env.iter().flatten() {
        let Some(value) = resolve(var, pod, &seen)? else {
            continue; // optional and absent
        };
        seen.insert(var.name.clone(), value.clone());
        resolved.retain(|(name, _)| *name != var.name);
        resolved.push((var.name.clone(), value));
    }
    Ok(resolved)
}

/// Whether a variable changes what the dynamic loader loads into a process (`LD_PRELOAD`,
/// `LD_LIBRARY_PATH`, `LD_AUDIT`, ..., macOS's `DYLD_INSERT_LIBRARIES`, ..., and glibc's
/// `GCONV_PATH`, which loads conversion modules).
pub fn is_loader_variable(name: &str) -> bool {
    name.starts_with("LD_") || name.starts_with("DYLD_") || name == "GCONV_PATH"
}

/// `env` without the loader variables, and the names of those it dropped.
pub fn without_loader_variables(
    env: Vec<(String, String)>,
) -> (Vec<(String, String)>, Vec<String>) {
    let (dropped, kept): (Vec<_>, Vec<_>) = env
        .into_iter()
        .partition(|(name, _)| is_loader_variable(name));
    (kept, dropped.into_iter().map(|(name, _)| name).collect())
}

fn resolve(
    var: &EnvVar,
    pod: &Pod,
    seen: &HashMap<String, String>,
) -> Result<Option<String>, EnvError> {
    let Some(source) = &var.value_from else {
        return Ok(Some(expand(var.value.as_deref().unwrap_or(""), seen)));
    };
    let unsupported = |what| EnvError::Unsupported {
        name: var.name.clone(),
        what,
    };
    if let Some(field) = &source.field_ref {
        return field_value(&field.field_path, pod)
            .map(Some)
            .ok_or_else(|| EnvError::FieldPath {
                name: var.name.clone(),
                path: field.field_path.clone(),
            });
    }
    if let Some(cm) = &source.config_map_key_ref {
        return if cm.optional == Some(true) {
            Ok(None)
        } else {
            Err(unsupported("configMapKeyRef"))
        };
    }
    if let Some(secret) = &source.secret_key_ref {
        return if secret.optional == Some(true) {
            Ok(None)
        } else {
            Err(unsupported("secretKeyRef"))
        };
    }
    if source.resource_field_ref.is_some() {
        return Err(unsupported("resourceFieldRef"));
    }
    Err(unsupported("this valueFrom source"))
}

fn field_value(path: &str, pod: &Pod) -> Option<String> {
    let meta = &pod.metadata;
    let spec = pod.spec.as_ref();
    let keyed = |prefix: &str| -> Option<String> {
        let key = path.strip_prefix(prefix)?.strip_suffix("']")?;
        Some(key.to_string())
    };
    if let Some(key) = keyed("metadata.labels['") {
        return Some(meta.labels.as_ref()?.get(&key).cloned().unwrap_or_default());
    }
    if let Some(key) = keyed("metadata.annotations['") {
        return Some(
            meta.annotations
                .as_ref()?
                .get(&key)
                .cloned()
                .unwrap_or_default(),
        );
    }
    Some(match path {
        "metadata.name" => meta.name.clone().unwrap_or_default(),
        "metadata.namespace" => meta.namespace.clone().unwrap_or_else(|| "default".into()),
        "metadata.uid" => meta.uid.clone().unwrap_or_default(),
        "spec.nodeName" => spec.and_then(|s| s.node_name.clone()).unwrap_or_default(),
        "spec.serviceAccountName" => spec
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_else(|| "default".into()),
        "status.podIP" | "status.hostIP" | "status.podIPs" | "status.hostIPs" => pod
            .status
            .as_ref()
            .and_then(|s| s.pod_ip.clone())
            .unwrap_or_else(|| "127.0.0.1".into()),
        _ => return None,
    })
}

/// Expands `$(NAME)` from earlier variables; unknown references stay as written and
/// `$$` becomes `$` (the kubelet's `expansion.Expand` rules).
fn expand(input: &str, seen: &HashMap<String, String>) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some((name, tail)) = after.strip_prefix('(').and_then(|s| s.split_once(')')) {
            match seen.get(name) {
                Some(value) => out.push_str(value),
                None => {
                    out.push_str("$(");
                    out.push_str(name);
                    out.push(')');
                }
            }
            rest = tail;
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod() -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web-1", "namespace": "demo", "uid": "u-1",
                          "labels": {"version": "blue"}},
            "spec": {"containers": [], "nodeName": "lab-node-1"}
        }))
        .unwrap()
    }

    fn container(env: serde_json::Value) -> Container {
        serde_json::from_value(serde_json::json!({"name": "web", "env": env})).unwrap()
    }

    #[test]
    fn literals_downward_api_fields_and_references_resolve() {
        let c = container(serde_json::json!([
            {"name": "COLOR", "value": "blue"},
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
            {"name": "V", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['version']"}}},
            {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "GREETING", "value": "$(COLOR)-$(POD_NAME) costs $$5 $(NOPE)"},
        ]));
        let env = container_env(&c, &pod()).unwrap();
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("COLOR"), Some("blue"));
        assert_eq!(get("POD_NAME"), Some("web-1"));
        assert_eq!(get("NS"), Some("demo"));
        assert_eq!(get("V"), Some("blue"));
        assert_eq!(get("IP"), Some("127.0.0.1"));
        assert_eq!(get("GREETING"), Some("blue-web-1 costs $5 $(NOPE)"));
    }

    #[test]
    fn loader_variables_are_dropped_and_named() {
        let env = vec![
            ("LD_PRELOAD".to_string(), "/tmp/evil.so".to_string()),
            ("COLOR".to_string(), "blue".to_string()),
            (
                "DYLD_INSERT_LIBRARIES".to_string(),
                "/tmp/evil.dylib".to_string(),
            ),
            ("GCONV_PATH".to_string(), "/tmp".to_string()),
            ("OLD_PRELOAD".to_string(), "kept".to_string()),
        ];
        let (kept, dropped) = without_loader_variables(env);
        assert_eq!(
            kept,
            [("COLOR", "blue"), ("OLD_PRELOAD", "kept")]
                .map(|(k, v)| (k.to_string(), v.to_string()))
        );
        assert_eq!(
            dropped,
            ["LD_PRELOAD", "DYLD_INSERT_LIBRARIES", "GCONV_PATH"]
        );
    }

    #[test]
    fn sources_the_lab_lacks_are_config_errors_unless_optional() {
        let required = container(serde_json::json!([
            {"name": "DB", "valueFrom": {"secretKeyRef": {"name": "db", "key": "pw"}}},
        ]));
        let err = container_env(&required, &pod()).unwrap_err();
        assert!(err.to_string().contains("secretKeyRef"), "{err}");
        let optional = container(serde_json::json!([
            {"name": "DB", "valueFrom": {"configMapKeyRef": {"name": "db", "key": "k", "optional": true}}},
        ]));
        assert_eq!(container_env(&optional, &pod()).unwrap(), Vec::new());
        let bad_path = container(serde_json::json!([
            {"name": "X", "valueFrom": {"fieldRef": {"fieldPath": "spec.nope"}}},
        ]));
        assert!(matches!(
            container_env(&bad_path, &pod()),
            Err(EnvError::FieldPath { .. })
        ));
    }
}
