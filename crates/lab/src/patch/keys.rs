//! The schema facts both strategic merge patch and server-side apply need: which lists are
//! merged element-wise (and by which key), which are sets of scalars, and which values are
//! atomic (replaced whole). One table keyed on the object kind and the field path, read
//! from the `patchMergeKey` / `listType` / `listMapKey` / `structType` markers of the
//! Kubernetes API types the lab serves.
//!
//! It does not know every Kubernetes type: a list not in the table is atomic (replaced),
//! which is what both kubectl's strategic merge and structured-merge-diff do for a list
//! they know nothing about. Called by `strategic`, `apply` and `fieldset`.

/// How a value at some field path merges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    /// A list of objects merged element by element. `patch_key` is the strategic merge
    /// key; `keys` are the server-side apply key fields, each with the default it takes
    /// when the element omits it (container ports are keyed by containerPort *and*
    /// protocol, protocol defaulting to TCP).
    Keyed {
        patch_key: &'static str,
        keys: &'static [(&'static str, Option<&'static str>)],
    },
    /// A list of scalars merged as a set (union without duplicates).
    Set,
    /// Replaced whole, never merged into (lists without a key, atomic structs and maps).
    Atomic,
    /// Nothing special: objects merge field by field, other lists are replaced.
    Plain,
}

/// Which part of which objects a rule's path is relative to.
#[derive(Debug, Clone, Copy)]
enum Scope {
    /// Every kind, path from the object root.
    AnyKind,
    /// These kinds only, path from the object root.
    Kinds(&'static [&'static str]),
    /// Relative to a PodSpec, wherever the kind keeps one (see `pod_spec_prefix`).
    PodSpec,
    /// Relative to a Container in a PodSpec's `containers`, `initContainers` or
    /// `ephemeralContainers`.
    Container,
}

const NAME: &[(&str, Option<&str>)] = &[("name", None)];

const fn keyed(
    patch_key: &'static str,
    keys: &'static [(&'static str, Option<&'static str>)],
) -> Shape {
    Shape::Keyed { patch_key, keys }
}

/// The table. Paths name object fields only; list elements add no component, so
/// `containers.ports` is the `ports` field of every element of `containers`.
const RULES: &[(Scope, &str, Shape)] = &[
    (
        Scope::AnyKind,
        "metadata.ownerReferences",
        keyed("uid", &[("uid", None)]),
    ),
    (Scope::AnyKind, "metadata.finalizers", Shape::Set),
    (
        Scope::AnyKind,
        "status.conditions",
        keyed("type", &[("type", None)]),
    ),
    (Scope::PodSpec, "containers", keyed("name", NAME)),
    (Scope::PodSpec, "initContainers", keyed("name", NAME)),
    (Scope::PodSpec, "ephemeralContainers", keyed("name", NAME)),
    (Scope::PodSpec, "volumes", keyed("name", NAME)),
    (Scope::PodSpec, "imagePullSecrets", keyed("name", NAME)),
    (Scope::PodSpec, "hostAliases", keyed("ip", &[("ip", None)])),
    (Scope::PodSpec, "tolerations", Shape::Atomic),
    (Scope::PodSpec, "nodeSelector", Shape::Atomic),
    (
        Scope::Container,
        "ports",
        keyed(
            "containerPort",
            &[("containerPort", None), ("protocol", Some("TCP"))],
        ),
    ),
    (Scope::Container, "env", keyed("name", NAME)),
    // The reference structs under env[].valueFrom are `+structType=atomic`.
    (Scope::Container, "env.valueFrom.fieldRef", Shape::Atomic),
    (
        Scope::Container,
        "env.valueFrom.resourceFieldRef",
        Shape::Atomic,
    ),
    (
        Scope::Container,
        "env.valueFrom.configMapKeyRef",
        Shape::Atomic,
    ),
    (
        Scope::Container,
        "env.valueFrom.secretKeyRef",
        Shape::Atomic,
    ),
    (
        Scope::Container,
        "volumeMounts",
        keyed("mountPath", &[("mountPath", None)]),
    ),
    (
        Scope::Kinds(&["Service"]),
        "spec.ports",
        keyed("port", &[("port", None), ("protocol", Some("TCP"))]),
    ),
    (Scope::Kinds(&["Service"]), "spec.selector", Shape::Atomic),
    (Scope::Kinds(&["Endpoints"]), "subsets", Shape::Atomic),
    (
        Scope::Kinds(&["HorizontalPodAutoscaler"]),
        "spec.metrics",
        Shape::Atomic,
    ),
    // metav1.LabelSelector is `+structType=atomic`.
    (
        Scope::Kinds(&[
            "Deployment",
            "ReplicaSet",
            "StatefulSet",
            "DaemonSet",
            "Job",
        ]),
        "spec.selector",
        Shape::Atomic,
    ),
];

/// Where a kind keeps its PodSpec, if it has one.
fn pod_spec_prefix(kind: &str) -> Option<&'static str> {
    match kind {
        "Pod" => Some("spec"),
        "PodTemplate" => Some("template.spec"),
        "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet" | "Job" => {
            Some("spec.template.spec")
        }
        "CronJob" => Some("spec.jobTemplate.spec.template.spec"),
        _ => None,
    }
}

/// Whether `kind` has a `/status` subresource. Upstream's field manager never records
/// `status` as owned by an apply to such an object's main resource.
pub(crate) fn has_status_subresource(kind: &str) -> bool {
    matches!(
        kind,
        "Pod"
            | "Deployment"
            | "ReplicaSet"
            | "StatefulSet"
            | "DaemonSet"
            | "Job"
            | "CronJob"
            | "Service"
            | "HorizontalPodAutoscaler"
            | "Namespace"
            | "Node"
            | "PersistentVolumeClaim"
    )
}

/// The shape of the value at `path` (field names from the object root) in an object of
/// `kind`.
pub(crate) fn shape(kind: &str, path: &[String]) -> Shape {
    let full = path.join(".");
    let in_pod_spec = pod_spec_prefix(kind)
        .and_then(|prefix| full.strip_prefix(prefix))
        .and_then(|rest| rest.strip_prefix('.'));
    let in_container = in_pod_spec.and_then(|rest| {
        ["containers.", "initContainers.", "ephemeralContainers."]
            .iter()
            .find_map(|list| rest.strip_prefix(list))
    });
    for (scope, rule_path, shape) in RULES {
        let relative = match scope {
            Scope::AnyKind => Some(full.as_str()),
            Scope::Kinds(kinds) if kinds.contains(&kind) => Some(full.as_str()),
            Scope::Kinds(_) => None,
            Scope::PodSpec => in_pod_spec,
            Scope::Container => in_container,
        };
        if relative == Some(*rule_path) {
            return *shape;
        }
    }
    Shape::Plain
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(kind: &str, path: &str) -> Shape {
        let path: Vec<String> = path.split('.').map(str::to_string).collect();
        shape(kind, &path)
    }

    #[test]
    fn containers_are_keyed_by_name_in_pods_and_deployment_templates() {
        let by_name = keyed("name", NAME);
        assert_eq!(at("Pod", "spec.containers"), by_name);
        assert_eq!(at("Deployment", "spec.template.spec.containers"), by_name);
        assert_eq!(at("Deployment", "spec.containers"), Shape::Plain);
    }

    #[test]
    fn container_fields_are_keyed_inside_every_container_list() {
        assert!(matches!(
            at("Deployment", "spec.template.spec.initContainers.ports"),
            Shape::Keyed {
                patch_key: "containerPort",
                ..
            }
        ));
        assert!(matches!(
            at("Pod", "spec.containers.env"),
            Shape::Keyed {
                patch_key: "name",
                ..
            }
        ));
        assert!(matches!(
            at("Pod", "spec.containers.volumeMounts"),
            Shape::Keyed {
                patch_key: "mountPath",
                ..
            }
        ));
    }

    #[test]
    fn kind_specific_rules_do_not_leak_to_other_kinds() {
        assert!(matches!(
            at("Service", "spec.ports"),
            Shape::Keyed {
                patch_key: "port",
                ..
            }
        ));
        assert_eq!(at("Deployment", "spec.ports"), Shape::Plain);
        assert_eq!(at("HorizontalPodAutoscaler", "spec.metrics"), Shape::Atomic);
        assert_eq!(at("Endpoints", "subsets"), Shape::Atomic);
    }

    #[test]
    fn metadata_and_conditions_rules_hold_for_every_kind() {
        assert_eq!(at("ConfigMap", "metadata.finalizers"), Shape::Set);
        assert!(matches!(
            at("HorizontalPodAutoscaler", "status.conditions"),
            Shape::Keyed {
                patch_key: "type",
                ..
            }
        ));
    }
}
