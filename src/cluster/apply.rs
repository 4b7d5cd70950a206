//! Server-side apply of one object as field manager `resil`, refusing objects that are not
//! resil's, and telling created / configured / unchanged apart so a second deploy can say
//! it changed nothing.

use std::fmt::Debug;

use kube::api::{Api, Patch, PatchParams};
use kube::core::ObjectMeta;
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::{ClusterError, FIELD_MANAGER, MANAGED_BY_LABEL, MANAGED_BY_VALUE, Result};

/// What an apply did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ApplyOutcome {
    /// The object did not exist.
    Created,
    /// The object existed and changed.
    Configured,
    /// The object existed and nothing about it changed.
    Unchanged,
    /// The object existed and the manifests no longer hold it (`deploy --no-pdb`).
    Deleted,
}

impl std::fmt::Display for ApplyOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ApplyOutcome::Created => "created",
            ApplyOutcome::Configured => "configured",
            ApplyOutcome::Unchanged => "unchanged",
            ApplyOutcome::Deleted => "deleted",
        })
    }
}

/// Ok when an existing object may be changed by resil: it carries the managed-by label
/// and, if namespaced, lives in `namespace`.
pub fn ensure_managed(kind: &str, meta: &ObjectMeta, namespace: Option<&str>) -> Result<()> {
    let name = meta.name.as_deref().unwrap_or("?");
    if let (Some(expected), Some(actual)) = (namespace, meta.namespace.as_deref())
        && expected != actual
    {
        return Err(ClusterError::NotManaged(format!(
            "{kind} {name} is in namespace {actual}, outside the demo namespace {expected}; \
             resil changes only the demo namespace"
        )));
    }
    let labelled = meta
        .labels
        .as_ref()
        .and_then(|l| l.get(MANAGED_BY_LABEL))
        .is_some_and(|v| v == MANAGED_BY_VALUE);
    if labelled {
        return Ok(());
    }
    let ns_flag = meta
        .namespace
        .as_deref()
        .map(|ns| format!(" -n {ns}"))
        .unwrap_or_default();
    Err(ClusterError::NotManaged(format!(
        "{kind} {name} already exists and is not resil's (it lacks the label \
         {MANAGED_BY_LABEL}={MANAGED_BY_VALUE}), so resil leaves it alone. Delete it, or hand it \
         over with `kubectl label {kind} {name}{ns_flag} {MANAGED_BY_LABEL}={MANAGED_BY_VALUE}`"
    )))
}

/// Server-side applies `object` (field manager `resil`, forced) after checking that any
/// existing object of that name is resil's. `kind` names it in messages (`deployment`).
pub async fn apply<K>(api: &Api<K>, kind: &str, object: &K) -> Result<ApplyOutcome>
where
    K: Resource + Clone + DeserializeOwned + Serialize + Debug,
{
    let name = object.name_any();
    let before = api
        .get_opt(&name)
        .await
        .map_err(|e| ClusterError::api(format!("reading {kind} {name}"), e))?;
    if let Some(live) = &before {
        ensure_managed(kind, live.meta(), object.meta().namespace.as_deref())?;
    }
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let after = api
        .patch(&name, &params, &Patch::Apply(object))
        .await
        .map_err(|e| ClusterError::api(format!("applying {kind} {name}"), e))?;
    Ok(match before {
        None => ApplyOutcome::Created,
        Some(before) if unchanged(&before, &after, object) => ApplyOutcome::Unchanged,
        Some(_) => ApplyOutcome::Configured,
    })
}

/// Same resourceVersion, or the same desired state (spec, and the labels and annotations
/// resil applies) — some servers bump the version on a no-op apply, and controllers write
/// their own annotations (a Deployment's revision) between our read and our apply, so the
/// content resil owns is the final word.
fn unchanged<K: Resource + Serialize>(before: &K, after: &K, applied: &K) -> bool {
    if before.meta().resource_version.is_some()
        && before.meta().resource_version == after.meta().resource_version
    {
        return true;
    }
    desired_state(before, applied) == desired_state(after, applied)
}

fn desired_state<K: Resource + Serialize>(object: &K, applied: &K) -> Value {
    let Ok(Value::Object(mut map)) = serde_json::to_value(object) else {
        return Value::Null;
    };
    map.remove("status");
    let own = |keys: &Option<std::collections::BTreeMap<String, String>>,
               live: &Option<std::collections::BTreeMap<String, String>>| {
        let keys = keys.clone().unwrap_or_default();
        let live = live.clone().unwrap_or_default();
        keys.keys()
            .map(|k| (k.clone(), live.get(k).cloned()))
            .collect::<Vec<_>>()
    };
    let labels = own(&applied.meta().labels, &object.meta().labels);
    let annotations = own(&applied.meta().annotations, &object.meta().annotations);
    map.insert(
        "metadata".to_string(),
        serde_json::json!({"labels": labels, "annotations": annotations}),
    );
    Value::Object(map)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::Deployment;

    fn deployment(rv: &str, replicas: i32, labelled: bool) -> Deployment {
        let mut labels = std::collections::BTreeMap::new();
        if labelled {
            labels.insert(MANAGED_BY_LABEL.to_string(), MANAGED_BY_VALUE.to_string());
        }
        Deployment {
            metadata: ObjectMeta {
                name: Some("web-blue".into()),
                namespace: Some("distributed-resilience".into()),
                resource_version: Some(rv.into()),
                labels: Some(labels),
                ..Default::default()
            },
            spec: k8s_openapi::api::apps::v1::DeploymentSpec {
                replicas: Some(replicas),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn same_content_under_a_new_resource_version_counts_as_unchanged() {
        let applied = deployment("", 1, true);
        assert!(unchanged(
            &deployment("1", 1, true),
            &deployment("2", 1, true),
            &applied
        ));
        assert!(!unchanged(
            &deployment("1", 1, true),
            &deployment("2", 3, true),
            &applied
        ));
    }

    #[test]
    fn an_annotation_a_controller_wrote_is_not_a_change_of_ours() {
        let applied = deployment("", 1, true);
        let before = deployment("1", 1, true);
        let mut after = deployment("2", 1, true);
        after.metadata.annotations = Some(
            [(
                "deployment.kubernetes.io/revision".to_string(),
                "2".to_string(),
            )]
            .into(),
        );
        assert!(unchanged(&before, &after, &applied));
    }

    #[test]
    fn objects_without_the_managed_by_label_are_refused_with_the_fix() {
        let d = deployment("1", 1, false);
        let text = ensure_managed("deployment", &d.metadata, Some("distributed-resilience"))
            .unwrap_err()
            .to_string();
        assert!(text.contains("not resil's"), "{text}");
        assert!(text.contains("kubectl label deployment web-blue"), "{text}");
        assert!(ensure_managed("deployment", &deployment("1", 1, true).metadata, None).is_ok());
    }

    #[test]
    fn objects_outside_the_demo_namespace_are_refused() {
        let d = deployment("1", 1, true);
        let text = ensure_managed("deployment", &d.metadata, Some("other"))
            .unwrap_err()
            .to_string();
        assert!(text.contains("outside the demo namespace other"), "{text}");
    }
}
