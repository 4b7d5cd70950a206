//! The resource types the lab serves, as one table: group, version, plural, kind, scope,
//! whether a `/status` subresource exists, short names. Discovery, routing, the store's
//! write rules and the status errors all read it, so adding a type is one entry here.

/// One served resource type.
#[derive(Debug, PartialEq, Eq)]
pub struct Kind {
    /// API group; empty for core.
    pub group: &'static str,
    /// API version inside the group.
    pub version: &'static str,
    /// Plural resource name used in URLs, also the store's key for the type.
    pub plural: &'static str,
    /// Singular name (discovery).
    pub singular: &'static str,
    /// Object kind, e.g. `Deployment`.
    pub kind: &'static str,
    /// Namespaced or cluster-scoped.
    pub namespaced: bool,
    /// Has a `/status` subresource: main writes keep the live status, status writes keep
    /// everything else.
    pub status: bool,
    /// kubectl short names.
    pub short_names: &'static [&'static str],
    /// Kept in the store (false for computed types such as pod metrics).
    pub stored: bool,
}

impl Kind {
    /// `apiVersion` of objects of this kind: `v1` or `group/version`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `plural` or `plural.group`, the way Kubernetes names a resource in messages.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.plural.to_string()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }
}

const fn entry(
    (group, version): (&'static str, &'static str),
    plural: &'static str,
    singular: &'static str,
    kind: &'static str,
    namespaced: bool,
    status: bool,
    short_names: &'static [&'static str],
) -> Kind {
    Kind {
        group,
        version,
        plural,
        singular,
        kind,
        namespaced,
        status,
        short_names,
        stored: true,
    }
}

/// Every served type. Plurals of stored types are unique, so the plural alone keys the
/// store.
pub static KINDS: &[Kind] = &[
    entry(
        ("", "v1"),
        "namespaces",
        "namespace",
        "Namespace",
        false,
        true,
        &["ns"],
    ),
    entry(("", "v1"), "pods", "pod", "Pod", true, true, &["po"]),
    entry(
        ("", "v1"),
        "services",
        "service",
        "Service",
        true,
        true,
        &["svc"],
    ),
    entry(
        ("", "v1"),
        "endpoints",
        "endpoints",
        "Endpoints",
        true,
        false,
        &["ep"],
    ),
    entry(("", "v1"), "events", "event", "Event", true, false, &["ev"]),
    entry(
        ("apps", "v1"),
        "deployments",
        "deployment",
        "Deployment",
        true,
        true,
        &["deploy"],
    ),
    entry(
        ("apps", "v1"),
        "replicasets",
        "replicaset",
        "ReplicaSet",
        true,
        true,
        &["rs"],
    ),
    entry(
        ("autoscaling", "v2"),
        "horizontalpodautoscalers",
        "horizontalpodautoscaler",
        "HorizontalPodAutoscaler",
        true,
        true,
        &["hpa"],
    ),
    entry(
        ("coordination.k8s.io", "v1"),
        "leases",
        "lease",
        "Lease",
        true,
        false,
        &[],
    ),
    entry(("", "v1"), "nodes", "node", "Node", false, true, &["no"]),
    entry(
        ("policy", "v1"),
        "poddisruptionbudgets",
        "poddisruptionbudget",
        "PodDisruptionBudget",
        true,
        true,
        &["pdb"],
    ),
    entry(
        ("", "v1"),
        "configmaps",
        "configmap",
        "ConfigMap",
        true,
        false,
        &["cm"],
    ),
    entry(("", "v1"), "secrets", "secret", "Secret", true, false, &[]),
    entry(
        ("discovery.k8s.io", "v1"),
        "endpointslices",
        "endpointslice",
        "EndpointSlice",
        true,
        false,
        &[],
    ),
    Kind {
        group: "metrics.k8s.io",
        version: "v1beta1",
        plural: "pods",
        singular: "",
        kind: "PodMetrics",
        namespaced: true,
        status: false,
        short_names: &[],
        stored: false,
    },
    Kind {
        group: "metrics.k8s.io",
        version: "v1beta1",
        plural: "nodes",
        singular: "",
        kind: "NodeMetrics",
        namespaced: false,
        status: false,
        short_names: &[],
        stored: false,
    },
    entry(("batch", "v1"), "jobs", "job", "Job", true, true, &[]),
];

/// The type served at `group/version/plural`.
pub fn lookup(group: &str, version: &str, plural: &str) -> Option<&'static Kind> {
    KINDS
        .iter()
        .find(|k| k.group == group && k.version == version && k.plural == plural)
}

/// The stored type with this plural (the store's key).
pub fn stored(plural: &str) -> Option<&'static Kind> {
    KINDS.iter().find(|k| k.stored && k.plural == plural)
}

/// The stored type with this plural, for the lab's own code, which names only the plurals
/// of its own stored types (every one of them is in [`KINDS`]).
pub fn kind(plural: &str) -> &'static Kind {
    // Callers pass literals like "pods" from the table above; a typo fails the first test
    // that reaches that line.
    stored(plural).expect("a stored resource")
}

/// The group/versions served, in discovery order (core first).
pub fn group_versions() -> Vec<(&'static str, &'static str)> {
    let mut out: Vec<(&'static str, &'static str)> = Vec::new();
    for k in KINDS {
        if !out.contains(&(k.group, k.version)) {
            out.push((k.group, k.version));
        }
    }
    out
}
