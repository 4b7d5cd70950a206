//! A container's environment as strings, resolved the way the kubelet does before it
//! starts the container (upstream `pkg/kubelet/kubelet_pods.go`,
//! `makeEnvironmentVariables`):
//!
//! 1. `envFrom` sources in order: every key of the ConfigMap's `data` or the Secret's
//!    (decoded) `data`, with the source's `prefix`; keys that are not environment variable
//!    names are skipped and named in a warning; a missing source is an error unless
//!    `optional`.
//! 2. `env` in order, overriding: literal `value`s with `$(VAR)` references to variables
//!    defined so far expanded (`$$` escapes a `$`); `configMapKeyRef` / `secretKeyRef`
//!    (a missing object or key is an error unless `optional`, then the variable is
//!    left out); downward-API `fieldRef`s (`metadata.name`, `metadata.namespace`,
//!    `metadata.uid`, `metadata.labels['k']`, `metadata.annotations['k']`,
//!    `spec.nodeName`, `spec.serviceAccountName`, `status.podIP`, `status.hostIP`).
//!
//! An [`EnvError`] carries upstream's message (`configmap "x" not found`, `couldn't find
//! key k in ConfigMap ns/x`); the kubelet reports it as the container waiting with
//! `CreateContainerConfigError` and tries again, so the pod starts once the object
//! appears. Objects are read through a [`Sources`] lookup (the store, in the kubelet).
//!
//! A pod is a process on the user's machine, not in a container image, so variables that
//! make the dynamic loader run other code ([`is_loader_variable`]: `LD_*`, `DYLD_*`,
//! `GCONV_PATH`) never reach it: [`without_loader_variables`] drops them and names them,
//! and the process layer drops them again before it executes anything.

use std::collections::{BTreeMap, HashMap};

use base64::Engine;
use k8s_openapi::api::core::v1::{Container, EnvFromSource, EnvVar, Pod};
use serde_json::Value;

/// Why a container's environment cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvError {
    /// A `valueFrom` source the lab cannot serve.
    #[error("env {name}: {what} is not available in the resil lab; use a literal `value`")]
    Unsupported {
        /// The variable.
        name: String,
        /// `resourceFieldRef`, ...
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
    /// A referenced ConfigMap or Secret that does not exist.
    #[error("{} \"{name}\" not found", from.noun())]
    NotFound {
        /// ConfigMap or Secret.
        from: Source,
        /// Its name.
        name: String,
    },
    /// A referenced key the ConfigMap or Secret does not hold.
    #[error("couldn't find key {key} in {} {namespace}/{name}", from.kind())]
    MissingKey {
        /// ConfigMap or Secret.
        from: Source,
        /// The pod's namespace.
        namespace: String,
        /// The object's name.
        name: String,
        /// The key asked for.
        key: String,
    },
}

/// Where a variable's value may come from besides the pod itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// A ConfigMap's `data`.
    ConfigMap,
    /// A Secret's `data`, decoded.
    Secret,
}

impl Source {
    /// The store's resource plural.
    pub fn plural(self) -> &'static str {
        match self {
            Source::ConfigMap => "configmaps",
            Source::Secret => "secrets",
        }
    }

    fn kind(self) -> &'static str {
        match self {
            Source::ConfigMap => "ConfigMap",
            Source::Secret => "Secret",
        }
    }

    /// The word upstream's not-found message uses.
    fn noun(self) -> &'static str {
        match self {
            Source::ConfigMap => "configmap",
            Source::Secret => "secret",
        }
    }

    /// The string values of a stored object: a ConfigMap's `data`, a Secret's `data`
    /// base64-decoded (invalid UTF-8 replaced).
    pub fn data_of(self, obj: &Value) -> BTreeMap<String, String> {
        let engine = base64::engine::general_purpose::STANDARD;
        obj.get("data")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
            .filter_map(|(k, v)| {
                let v = v.as_str()?;
                let text = match self {
                    Source::ConfigMap => v.to_string(),
                    Source::Secret => String::from_utf8_lossy(&engine.decode(v).ok()?).into(),
                };
                Some((k.clone(), text))
            })
            .collect()
    }
}

/// Finds the data of a ConfigMap or Secret in the pod's namespace by name.
pub type Sources<'a> = &'a dyn Fn(Source, &str) -> Option<BTreeMap<String, String>>;

/// A resolved environment and the warnings met on the way.
#[derive(Debug, Default, PartialEq)]
pub struct ContainerEnv {
    /// (name, value) in definition order; a later definition replaces an earlier one.
    pub vars: Vec<(String, String)>,
    /// `InvalidEnvironmentVariableNames` event messages (keys an `envFrom` skipped).
    pub warnings: Vec<String>,
}

impl ContainerEnv {
    fn set(&mut self, name: String, value: String) {
        self.vars.retain(|(n, _)| *n != name);
        self.vars.push((name, value));
    }
}

/// The reason a real kubelet gives when it cannot build the environment.
pub const CONFIG_ERROR_REASON: &str = "CreateContainerConfigError";

/// Resolves `container.envFrom` and `container.env` for `pod`, on a node and pod IP of
/// 127.0.0.1, reading ConfigMaps and Secrets through `sources`.
pub fn container_env(
    container: &Container,
    pod: &Pod,
    sources: Sources<'_>,
) -> Result<ContainerEnv, EnvError> {
    let mut out = ContainerEnv::default();
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    for from in container.env_from.iter().flatten() {
        env_from(from, namespace, sources, &mut out)?;
    }
    for var in container.env.iter().flatten() {
        let seen: HashMap<String, String> = out.vars.iter().cloned().collect();
        let Some(value) = resolve(var, pod, &seen, sources)? else {
            continue; // optional and absent
        };
        out.set(var.name.clone(), value);
    }
    Ok(out)
}

/// One `envFrom` entry.
fn env_from(
    from: &EnvFromSource,
    namespace: &str,
    sources: Sources<'_>,
    out: &mut ContainerEnv,
) -> Result<(), EnvError> {
    let (source, name, optional) = match (&from.config_map_ref, &from.secret_ref) {
        (Some(cm), _) => (Source::ConfigMap, cm.name.as_str(), cm.optional),
        (None, Some(s)) => (Source::Secret, s.name.as_str(), s.optional),
        (None, None) => return Ok(()),
    };
    let Some(data) = sources(source, name) else {
        if optional == Some(true) {
            return Ok(());
        }
        return Err(EnvError::NotFound {
            from: source,
            name: name.to_string(),
        });
    };
    let prefix = from.prefix.as_deref().unwrap_or("");
    let mut invalid = Vec::new();
    for (k, v) in data {
        let key = format!("{prefix}{k}");
        if is_env_var_name(&key) {
            out.set(key, v);
        } else {
            invalid.push(key);
        }
    }
    if !invalid.is_empty() {
        invalid.sort();
        out.warnings.push(format!(
            "Keys [{}] from the EnvFrom {} {namespace}/{name} were skipped since they are \
             considered invalid environment variable names.",
            invalid.join(", "),
            source.noun(),
        ));
    }
    Ok(())
}

/// Upstream `IsEnvVarName`: `[-._a-zA-Z][-._a-zA-Z0-9]*`.
fn is_env_var_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    let ok = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_');
    bytes.next().is_some_and(|b| ok(b) && !b.is_ascii_digit()) && bytes.all(ok)
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
    sources: Sources<'_>,
) -> Result<Option<String>, EnvError> {
    let Some(source) = &var.value_from else {
        return Ok(Some(expand(var.value.as_deref().unwrap_or(""), seen)));
    };
    if let Some(field) = &source.field_ref {
        return field_value(&field.field_path, pod)
            .map(Some)
            .ok_or_else(|| EnvError::FieldPath {
                name: var.name.clone(),
                path: field.field_path.clone(),
            });
    }
    let keyed = match (&source.config_map_key_ref, &source.secret_key_ref) {
        (Some(cm), _) => Some((Source::ConfigMap, &cm.name, &cm.key, cm.optional)),
        (None, Some(s)) => Some((Source::Secret, &s.name, &s.key, s.optional)),
        (None, None) => None,
    };
    if let Some((from, name, key, optional)) = keyed {
        let optional = optional == Some(true);
        let Some(data) = sources(from, name) else {
            return if optional {
                Ok(None)
            } else {
                Err(EnvError::NotFound {
                    from,
                    name: name.clone(),
                })
            };
        };
        return match data.get(key) {
            Some(v) => Ok(Some(v.clone())),
            None if optional => Ok(None),
            None => Err(EnvError::MissingKey {
                from,
                namespace: pod
                    .metadata
                    .namespace
                    .clone()
                    .unwrap_or_else(|| "default".into()),
                name: name.clone(),
                key: key.clone(),
            }),
        };
    }
    let what = if source.resource_field_ref.is_some() {
        "resourceFieldRef"
    } else {
        "this valueFrom source"
    };
    Err(EnvError::Unsupported {
        name: var.name.clone(),
        what,
    })
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

    fn none(_: Source, _: &str) -> Option<BTreeMap<String, String>> {
        None
    }

    fn resolved(c: &Container, sources: Sources<'_>) -> Vec<(String, String)> {
        container_env(c, &pod(), sources).unwrap().vars
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
        let env = resolved(&c, &none);
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

    /// A ConfigMap `settings` {COLOR: green, "bad key": x} and a Secret `db`
    /// {password: s3cret}.
    fn objects(source: Source, name: &str) -> Option<BTreeMap<String, String>> {
        let pairs: &[(&str, &str)] = match (source, name) {
            (Source::ConfigMap, "settings") => &[("COLOR", "green"), ("bad key", "x")],
            (Source::Secret, "db") => &[("password", "s3cret")],
            _ => return None,
        };
        Some(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn config_maps_and_secrets_feed_env_and_env_from() {
        let c: Container = serde_json::from_value(serde_json::json!({
            "name": "web",
            "envFrom": [{"configMapRef": {"name": "settings"}},
                        {"prefix": "DB_", "secretRef": {"name": "db"}},
                        {"configMapRef": {"name": "absent", "optional": true}}],
            "env": [{"name": "COLOR", "value": "$(COLOR)-$(DB_password)"},
                    {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}},
                    {"name": "NONE", "valueFrom": {"configMapKeyRef":
                        {"name": "settings", "key": "nope", "optional": true}}}]
        }))
        .unwrap();
        let env = container_env(&c, &pod(), &objects).unwrap();
        let get = |k: &str| {
            env.vars
                .iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("COLOR"), Some("green-s3cret"));
        assert_eq!(get("DB_password"), Some("s3cret"));
        assert_eq!(get("PW"), Some("s3cret"));
        assert_eq!(get("NONE"), None);
        assert_eq!(
            env.warnings,
            [
                "Keys [bad key] from the EnvFrom configmap demo/settings were skipped since they \
              are considered invalid environment variable names."
            ]
        );
    }

    #[test]
    fn missing_objects_and_keys_are_config_errors_unless_optional() {
        let required = container(serde_json::json!([
            {"name": "DB", "valueFrom": {"secretKeyRef": {"name": "gone", "key": "pw"}}},
        ]));
        let err = container_env(&required, &pod(), &objects).unwrap_err();
        assert_eq!(err.to_string(), "secret \"gone\" not found");
        let key = container(serde_json::json!([
            {"name": "X", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "k"}}},
        ]));
        let err = container_env(&key, &pod(), &objects).unwrap_err();
        assert_eq!(
            err.to_string(),
            "couldn't find key k in ConfigMap demo/settings"
        );
        let optional = container(serde_json::json!([
            {"name": "DB", "valueFrom": {"configMapKeyRef": {"name": "db", "key": "k", "optional": true}}},
        ]));
        assert_eq!(resolved(&optional, &objects), Vec::new());
        let bad_path = container(serde_json::json!([
            {"name": "X", "valueFrom": {"fieldRef": {"fieldPath": "spec.nope"}}},
        ]));
        assert!(matches!(
            container_env(&bad_path, &pod(), &none),
            Err(EnvError::FieldPath { .. })
        ));
    }
}
