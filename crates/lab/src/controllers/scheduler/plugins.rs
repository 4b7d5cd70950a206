//! The scheduler's filter and score plugins, pure, over a [`Snapshot`] of the nodes and the
//! pods bound to them. They mirror upstream `pkg/scheduler/framework/plugins/`:
//!
//! Filters, in the default profile's order; the first plugin that rejects a node names
//! the reason(s):
//! 1. `nodeunschedulable`: a cordoned node (`spec.unschedulable`) takes only pods that
//!    tolerate `node.kubernetes.io/unschedulable:NoSchedule`.
//! 2. `tainttoleration`: every NoSchedule and NoExecute taint must be tolerated.
//! 3. `nodeaffinity`: `nodeSelector` and the required node affinity terms (ORed terms of
//!    ANDed `matchExpressions`/`matchFields`).
//! 4. `noderesources` (Fit): the pod count, CPU and memory requests within allocatable.
//! 5. `podtopologyspread`: each `DoNotSchedule` constraint's skew stays within `maxSkew`.
//! 6. `interpodaffinity`: required pod affinity and anti-affinity, both the incoming pod's
//!    and the existing pods' anti-affinity.
//!
//! Scores (higher wins): `noderesources` LeastAllocated (weight 1, requests defaulted to
//! 100m CPU / 200Mi as upstream's non-zero defaults) and `podtopologyspread` (weight 2)
//! with the pod's `ScheduleAnyway` constraints, or upstream's system defaults (hostname
//! skew 3, zone skew 5) for a pod with a controller.

use std::collections::HashMap;

use k8s_openapi::api::core::v1::{Node, Pod, PodAffinityTerm, Taint, TopologySpreadConstraint};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use crate::controllers::hpa::milli_value;
use crate::controllers::labels::{Labels, node_requirement, selects};
use crate::controllers::taints::{UNSCHEDULABLE, untolerated};

/// A node as the scheduler sees it.
#[derive(Debug, Clone)]
pub struct NodeInfo {
    /// Node name.
    pub name: String,
    /// Node labels.
    pub labels: Labels,
    /// `spec.unschedulable`.
    pub unschedulable: bool,
    /// `spec.taints`.
    pub taints: Vec<Taint>,
    /// Allocatable resources.
    pub allocatable: Resources,
    /// Pods bound here and not finished (terminating ones included: they still hold room);
    /// changed only through [`NodeInfo::add_pod`] and [`NodeInfo::remove_pod`], which keep
    /// the sums below in step (upstream `NodeInfo.Requested` / `NonZeroRequested`).
    pods: Vec<Pod>,
    /// The sum of the pods' requests.
    requested: Resources,
    /// The same with upstream's non-zero defaults (for scoring).
    non_zero_requested: Resources,
    /// How many of the pods carry required pod anti-affinity (upstream
    /// `PodsWithRequiredAntiAffinity`): the existing-pods check skips nodes without any.
    with_required_anti_affinity: usize,
}

impl NodeInfo {
    /// From a stored Node.
    pub fn new(node: &Node) -> NodeInfo {
        let spec = node.spec.clone().unwrap_or_default();
        let alloc = node.status.as_ref().and_then(|s| s.allocatable.as_ref());
        let quantity = |k: &str| alloc.and_then(|a| a.get(k)).and_then(|q| milli_value(&q.0));
        NodeInfo {
            name: node.metadata.name.clone().unwrap_or_default(),
            labels: node.metadata.labels.clone().unwrap_or_default(),
            unschedulable: spec.unschedulable.unwrap_or(false),
            taints: spec.taints.unwrap_or_default(),
            allocatable: Resources {
                cpu: quantity("cpu").unwrap_or(0),
                memory: quantity("memory").unwrap_or(0) / 1000,
                pods: quantity("pods").unwrap_or(0) / 1000,
            },
            pods: Vec::new(),
            requested: Resources::default(),
            non_zero_requested: Resources::default(),
            with_required_anti_affinity: 0,
        }
    }

    /// The same node with `node`'s labels, taints, cordon and allocatable, and this one's
    /// pods.
    pub fn with_node(&self, node: &Node) -> NodeInfo {
        let fresh = NodeInfo::new(node);
        NodeInfo {
            pods: self.pods.clone(),
            requested: self.requested,
            non_zero_requested: self.non_zero_requested,
            with_required_anti_affinity: self.with_required_anti_affinity,
            ..fresh
        }
    }

    /// Whether the scheduler sees the same node in both: labels, cordon, taints,
    /// allocatable (status heartbeats change none of them).
    pub fn same_node(&self, other: &NodeInfo) -> bool {
        self.name == other.name
            && self.labels == other.labels
            && self.unschedulable == other.unschedulable
            && self.taints == other.taints
            && self.allocatable == other.allocatable
    }

    /// The pods bound here.
    pub fn pods(&self) -> &[Pod] {
        &self.pods
    }

    /// Counts `pod` on this node.
    pub fn add_pod(&mut self, pod: Pod) {
        self.requested = self.requested.plus(requests(&pod, false));
        self.non_zero_requested = self.non_zero_requested.plus(requests(&pod, true));
        if !required_terms(&pod, true).is_empty() {
            self.with_required_anti_affinity += 1;
        }
        self.pods.push(pod);
    }

    /// Stops counting pod `namespace/name` here; returns it if it was.
    pub fn remove_pod(&mut self, namespace: &str, name: &str) -> Option<Pod> {
        let at = self.pods.iter().position(|p| {
            p.metadata.namespace.as_deref().unwrap_or_default() == namespace
                && p.metadata.name.as_deref() == Some(name)
        })?;
        let pod = self.pods.swap_remove(at);
        self.requested = self.requested.minus(requests(&pod, false));
        self.non_zero_requested = self.non_zero_requested.minus(requests(&pod, true));
        if !required_terms(&pod, true).is_empty() {
            self.with_required_anti_affinity -= 1;
        }
        Some(pod)
    }

    fn requested(&self, non_zero: bool) -> Resources {
        if non_zero {
            self.non_zero_requested
        } else {
            self.requested
        }
    }
}

/// CPU (millicores), memory (bytes) and pods.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Resources {
    /// Millicores.
    pub cpu: i64,
    /// Bytes.
    pub memory: i64,
    /// Pod count.
    pub pods: i64,
}

impl Resources {
    fn plus(self, o: Resources) -> Resources {
        Resources {
            cpu: self.cpu + o.cpu,
            memory: self.memory + o.memory,
            pods: self.pods + o.pods,
        }
    }

    fn minus(self, o: Resources) -> Resources {
        Resources {
            cpu: self.cpu - o.cpu,
            memory: self.memory - o.memory,
            pods: self.pods - o.pods,
        }
    }
}

/// A pod's requests (sum over its containers); with `non_zero`, a container without a
/// request counts upstream's scoring defaults (100m CPU, 200 MiB).
pub fn requests(pod: &Pod, non_zero: bool) -> Resources {
    let mut total = Resources {
        pods: 1,
        ..Resources::default()
    };
    for c in pod.spec.iter().flat_map(|s| &s.containers) {
        let req = c.resources.as_ref().and_then(|r| r.requests.as_ref());
        let get = |k: &str| req.and_then(|r| r.get(k)).and_then(|q| milli_value(&q.0));
        let (cpu, memory) = (get("cpu"), get("memory").map(|m| m / 1000));
        total.cpu += cpu.unwrap_or(if non_zero { 100 } else { 0 });
        total.memory += memory.unwrap_or(if non_zero { 200 << 20 } else { 0 });
    }
    total
}

/// Every node, with the pods bound to each.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// The nodes, in name order.
    pub nodes: Vec<NodeInfo>,
}

impl Snapshot {
    /// The node called `name`.
    pub fn node_mut(&mut self, name: &str) -> Option<&mut NodeInfo> {
        let at = self
            .nodes
            .binary_search_by(|n| n.name.as_str().cmp(name))
            .ok()?;
        self.nodes.get_mut(at)
    }
}

/// Why a filter rejected a node, and whether evicting lower-priority pods could help
/// (upstream `Unschedulable` vs `UnschedulableAndUnresolvable`; it shapes the preemption
/// half of the message).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Preemption could help.
    Resolvable(String),
    /// Preemption cannot help.
    Unresolvable(String),
}

impl Failure {
    /// The reason text.
    pub fn reason(&self) -> &str {
        match self {
            Failure::Resolvable(r) | Failure::Unresolvable(r) => r,
        }
    }
}

/// Upstream's reason texts.
pub const REASON_UNSCHEDULABLE: &str = "node(s) were unschedulable";
/// `nodeaffinity`'s reason.
pub const REASON_AFFINITY: &str = "node(s) didn't match Pod's node affinity/selector";
/// `podtopologyspread`'s reason.
pub const REASON_SPREAD: &str = "node(s) didn't match pod topology spread constraints";
/// `podtopologyspread`'s reason when the node lacks the topology label.
pub const REASON_SPREAD_LABEL: &str =
    "node(s) didn't match pod topology spread constraints (missing required label)";
/// `interpodaffinity`'s reasons.
pub const REASON_ANTI_AFFINITY: &str = "node(s) didn't match pod anti-affinity rules";
/// The existing pods' anti-affinity.
pub const REASON_EXISTING_ANTI: &str = "node(s) didn't satisfy existing pods anti-affinity rules";
/// Required pod affinity.
pub const REASON_POD_AFFINITY: &str = "node(s) didn't match pod affinity rules";

/// The filter plugins, in the default profile's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plugin {
    /// `nodeunschedulable`.
    NodeUnschedulable,
    /// `tainttoleration`.
    TaintToleration,
    /// `nodeaffinity`.
    NodeAffinity,
    /// `noderesources` (Fit).
    NodeResourcesFit,
    /// `podtopologyspread`.
    PodTopologySpread,
    /// `interpodaffinity`.
    InterPodAffinity,
}

/// A set of [`Plugin`]s (upstream's `UnschedulablePlugins` of a queued pod).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Plugins(u8);

impl Plugins {
    /// Every plugin.
    pub const ALL: Plugins = Plugins(0b11_1111);

    /// The set of these plugins.
    pub fn of(plugins: &[Plugin]) -> Plugins {
        Plugins(plugins.iter().fold(0, |acc, p| acc | 1 << *p as u8))
    }

    /// Adds one.
    pub fn insert(&mut self, plugin: Plugin) {
        self.0 |= 1 << plugin as u8;
    }

    /// Whether the two sets share a plugin.
    pub fn intersects(self, other: Plugins) -> bool {
        self.0 & other.0 != 0
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

/// One filter plugin: the reasons it rejects the node for, none if it fits.
type FilterPlugin = fn(&Pod, &NodeInfo, &Snapshot) -> Vec<Failure>;

/// The first plugin that rejects `node`, with its reasons; none if the node fits.
pub fn filter_by(pod: &Pod, node: &NodeInfo, snap: &Snapshot) -> Option<(Plugin, Vec<Failure>)> {
    let checks: [(Plugin, FilterPlugin); 6] = [
        (Plugin::NodeUnschedulable, node_unschedulable),
        (Plugin::TaintToleration, taint_toleration),
        (Plugin::NodeAffinity, node_affinity_filter),
        (Plugin::NodeResourcesFit, resources_fit),
        (Plugin::PodTopologySpread, topology_spread_filter),
        (Plugin::InterPodAffinity, inter_pod_affinity),
    ];
    checks
        .iter()
        .map(|(plugin, check)| (*plugin, check(pod, node, snap)))
        .find(|(_, f)| !f.is_empty())
}

fn tolerations(pod: &Pod) -> Vec<k8s_openapi::api::core::v1::Toleration> {
    pod.spec
        .as_ref()
        .and_then(|s| s.tolerations.clone())
        .unwrap_or_default()
}

fn node_unschedulable(pod: &Pod, node: &NodeInfo, _: &Snapshot) -> Vec<Failure> {
    let cordon = Taint {
        key: UNSCHEDULABLE.into(),
        effect: "NoSchedule".into(),
        ..Taint::default()
    };
    if node.unschedulable && untolerated(&[cordon], &tolerations(pod), &["NoSchedule"]).is_some() {
        return vec![Failure::Unresolvable(REASON_UNSCHEDULABLE.into())];
    }
    Vec::new()
}

fn taint_toleration(pod: &Pod, node: &NodeInfo, _: &Snapshot) -> Vec<Failure> {
    match untolerated(
        &node.taints,
        &tolerations(pod),
        &["NoSchedule", "NoExecute"],
    ) {
        Some(t) => vec![Failure::Unresolvable(format!(
            "node(s) had untolerated taint {{{}: {}}}",
            t.key,
            t.value.as_deref().unwrap_or("")
        ))],
        None => Vec::new(),
    }
}

/// `nodeSelector` and required node affinity hold for the node.
pub fn node_affinity_matches(pod: &Pod, node: &NodeInfo) -> bool {
    let Some(spec) = pod.spec.as_ref() else {
        return true;
    };
    let selector_ok = spec
        .node_selector
        .iter()
        .flatten()
        .all(|(k, v)| node.labels.get(k) == Some(v));
    let required = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|n| {
            n.required_during_scheduling_ignored_during_execution
                .as_ref()
        });
    let fields: Labels = [("metadata.name".to_string(), node.name.clone())].into();
    let affinity_ok = required.is_none_or(|r| {
        r.node_selector_terms.iter().any(|term| {
            let exprs = term.match_expressions.as_deref().unwrap_or_default();
            let by_fields = term.match_fields.as_deref().unwrap_or_default();
            (!exprs.is_empty() || !by_fields.is_empty())
                && exprs.iter().all(|e| node_requirement(e, &node.labels))
                && by_fields.iter().all(|e| node_requirement(e, &fields))
        })
    });
    selector_ok && affinity_ok
}

fn node_affinity_filter(pod: &Pod, node: &NodeInfo, _: &Snapshot) -> Vec<Failure> {
    if node_affinity_matches(pod, node) {
        Vec::new()
    } else {
        vec![Failure::Unresolvable(REASON_AFFINITY.into())]
    }
}

fn resources_fit(pod: &Pod, node: &NodeInfo, _: &Snapshot) -> Vec<Failure> {
    let want = requests(pod, false);
    let used = node.requested(false);
    let alloc = node.allocatable;
    let mut out = Vec::new();
    if used.pods + 1 > alloc.pods {
        out.push(Failure::Resolvable("Too many pods".into()));
    }
    if want.cpu > 0 && used.cpu + want.cpu > alloc.cpu {
        out.push(Failure::Resolvable("Insufficient cpu".into()));
    }
    if want.memory > 0 && used.memory + want.memory > alloc.memory {
        out.push(Failure::Resolvable("Insufficient memory".into()));
    }
    out
}

/// No labels.
static NO_LABELS: Labels = Labels::new();

fn pod_labels(pod: &Pod) -> &Labels {
    pod.metadata.labels.as_ref().unwrap_or(&NO_LABELS)
}

fn same_namespace(a: &Pod, b: &Pod) -> bool {
    a.metadata.namespace == b.metadata.namespace
}

/// Per topology domain (value of `key`) over the nodes that match the pod's node affinity:
/// the pods in the pod's namespace that `selector` selects, not being deleted. Every such
/// domain is present, with 0 if it holds none (upstream's PreFilter/PreScore state).
fn domain_counts<'a>(
    pod: &Pod,
    snap: &'a Snapshot,
    key: &str,
    selector: Option<&LabelSelector>,
) -> HashMap<&'a str, i64> {
    let mut counts: HashMap<&str, i64> = HashMap::new();
    for n in &snap.nodes {
        let Some(value) = n.labels.get(key) else {
            continue;
        };
        if !node_affinity_matches(pod, n) {
            continue;
        }
        let here = n
            .pods
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none() && same_namespace(p, pod))
            .filter(|p| selects(selector, pod_labels(p)))
            .count() as i64;
        *counts.entry(value.as_str()).or_default() += here;
    }
    counts
}

fn constraints(pod: &Pod, when: &str) -> Vec<TopologySpreadConstraint> {
    pod.spec
        .iter()
        .flat_map(|s| s.topology_spread_constraints.iter().flatten())
        .filter(|c| c.when_unsatisfiable == when)
        .cloned()
        .collect()
}

fn topology_spread_filter(pod: &Pod, node: &NodeInfo, snap: &Snapshot) -> Vec<Failure> {
    for c in constraints(pod, "DoNotSchedule") {
        let Some(value) = node.labels.get(&c.topology_key) else {
            return vec![Failure::Unresolvable(REASON_SPREAD_LABEL.into())];
        };
        let sel = c.label_selector.as_ref();
        let counts = domain_counts(pod, snap, &c.topology_key, sel);
        let min = counts.values().copied().min().unwrap_or(0);
        let own = i64::from(selects(sel, pod_labels(pod)));
        let here = counts.get(value.as_str()).copied().unwrap_or(0);
        let skew = here + own - min;
        if skew > i64::from(c.max_skew) {
            return vec![Failure::Resolvable(REASON_SPREAD.into())];
        }
    }
    Vec::new()
}

/// Whether some pod in `node`'s domain of `term.topologyKey` matches `term` (namespaces
/// default to the owner pod's own).
fn term_matches_near(
    term: &PodAffinityTerm,
    owner: &Pod,
    node: &NodeInfo,
    snap: &Snapshot,
) -> bool {
    let Some(value) = node.labels.get(&term.topology_key) else {
        return false;
    };
    let namespaces = term.namespaces.clone().unwrap_or_default();
    snap.nodes
        .iter()
        .filter(|n| n.labels.get(&term.topology_key) == Some(value))
        .flat_map(|n| &n.pods)
        .any(|p| {
            let ns_ok = if namespaces.is_empty() {
                same_namespace(p, owner)
            } else {
                p.metadata
                    .namespace
                    .as_ref()
                    .is_some_and(|ns| namespaces.contains(ns))
            };
            ns_ok && selects(term.label_selector.as_ref(), pod_labels(p))
        })
}

fn required_terms(pod: &Pod, anti: bool) -> Vec<PodAffinityTerm> {
    let affinity = pod.spec.as_ref().and_then(|s| s.affinity.as_ref());
    let terms = if anti {
        affinity
            .and_then(|a| a.pod_anti_affinity.as_ref())
            .and_then(|a| {
                a.required_during_scheduling_ignored_during_execution
                    .clone()
            })
    } else {
        affinity
            .and_then(|a| a.pod_affinity.as_ref())
            .and_then(|a| {
                a.required_during_scheduling_ignored_during_execution
                    .clone()
            })
    };
    terms.unwrap_or_default()
}

fn inter_pod_affinity(pod: &Pod, node: &NodeInfo, snap: &Snapshot) -> Vec<Failure> {
    if required_terms(pod, true)
        .iter()
        .any(|t| term_matches_near(t, pod, node, snap))
    {
        return vec![Failure::Resolvable(REASON_ANTI_AFFINITY.into())];
    }
    // Existing pods whose anti-affinity the incoming pod would break.
    let breaks_existing = snap
        .nodes
        .iter()
        .filter(|host| host.with_required_anti_affinity > 0)
        .any(|host| {
            host.pods.iter().any(|p| {
                same_namespace(p, pod)
                    && required_terms(p, true).iter().any(|t| {
                        let here = host.labels.get(&t.topology_key);
                        here.is_some()
                            && here == node.labels.get(&t.topology_key)
                            && selects(t.label_selector.as_ref(), pod_labels(pod))
                    })
            })
        });
    if breaks_existing {
        return vec![Failure::Resolvable(REASON_EXISTING_ANTI.into())];
    }
    for t in required_terms(pod, false) {
        let anywhere = snap
            .nodes
            .iter()
            .any(|n| term_matches_near(&t, pod, n, snap));
        // A first pod matching its own term may go anywhere (upstream's special case).
        let self_match = selects(t.label_selector.as_ref(), pod_labels(pod));
        if !term_matches_near(&t, pod, node, snap) && (anywhere || !self_match) {
            return vec![Failure::Unresolvable(REASON_POD_AFFINITY.into())];
        }
    }
    Vec::new()
}

/// LeastAllocated: the mean free share of CPU and memory after placing the pod, 0..=100.
pub fn least_allocated(pod: &Pod, node: &NodeInfo) -> i64 {
    let used = node.requested(true).plus(requests(pod, true));
    let free = |alloc: i64, used: i64| {
        if alloc <= 0 {
            0
        } else {
            ((alloc - used).max(0) * 100) / alloc
        }
    };
    (free(node.allocatable.cpu, used.cpu) + free(node.allocatable.memory, used.memory)) / 2
}

/// The spreading constraints scoring uses: the pod's ScheduleAnyway ones, else (for a
/// pod with a controller) the system defaults over pods of the same controller.
fn scoring_constraints(pod: &Pod) -> Vec<(String, Option<LabelSelector>, i64)> {
    let own: Vec<_> = constraints(pod, "ScheduleAnyway")
        .into_iter()
        .map(|c| (c.topology_key, c.label_selector, i64::from(c.max_skew)))
        .collect();
    if !own.is_empty() || !constraints(pod, "DoNotSchedule").is_empty() {
        return own;
    }
    let has_controller = pod
        .metadata
        .owner_references
        .iter()
        .flatten()
        .any(|o| o.controller == Some(true));
    if !has_controller {
        return Vec::new();
    }
    let same = LabelSelector {
        match_labels: pod.metadata.labels.clone(),
        ..LabelSelector::default()
    };
    vec![
        ("kubernetes.io/hostname".into(), Some(same.clone()), 3),
        (crate::nodes::ZONE_LABEL.into(), Some(same), 5),
    ]
}

/// PodTopologySpread's raw score of each of `nodes`: matching pods in the node's domains,
/// weighted like upstream (`log(domains + 2)`); lower is better, normalised by the caller.
/// The pods are counted once per constraint, not once per node (upstream's PreScore).
pub fn spread_raw(pod: &Pod, nodes: &[&NodeInfo], snap: &Snapshot) -> Vec<f64> {
    let mut raw = vec![0.0; nodes.len()];
    for (key, sel, skew) in scoring_constraints(pod) {
        let mut domains: Vec<&String> = snap
            .nodes
            .iter()
            .filter_map(|n| n.labels.get(&key))
            .collect();
        domains.sort();
        domains.dedup();
        let weight = ((domains.len() + 2) as f64).ln();
        let counts = domain_counts(pod, snap, &key, sel.as_ref());
        for (score, node) in raw.iter_mut().zip(nodes) {
            let Some(value) = node.labels.get(&key) else {
                continue;
            };
            let count = counts.get(value.as_str()).copied().unwrap_or(0);
            *score += (count + skew - 1) as f64 * weight;
        }
    }
    raw
}
