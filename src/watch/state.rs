//! What the watcher knows about the demo: pods per colour and their readiness, the colour
//! the Service selects, its ready endpoints, each colour's Deployment and HPA.
//!
//! Pure: the controller feeds it the objects its kube-rs watchers deliver and gets back the
//! changes worth a timeline line ([`EventKind`]). Readiness per colour comes from the pods
//! themselves (the Service's Endpoints only ever hold the selected colour; the standby's
//! health must be known before traffic moves to it). The Service's own Endpoints say when
//! the data plane actually follows a switch.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{Endpoints, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;

use crate::cluster;
use crate::cost::quantity;
use crate::domain::Color;
use crate::results::summary::PodRequests;
use crate::results::timeline::EventKind;

/// The label that names a pod's colour.
pub const COLOR_LABEL: &str = "version";

/// The watches whose full relists the state follows: after a watch restarts (a dropped
/// stream, or 410 Expired), whatever the relist no longer holds went while nobody looked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Watched {
    Pods,
    Service,
    Endpoints,
    EndpointSlices,
    Deployments,
    Hpas,
}

impl Watched {
    /// The resource's plural, as the API names it.
    pub fn resource(self) -> &'static str {
        match self {
            Watched::Pods => "pods",
            Watched::Service => "services",
            Watched::Endpoints => "endpoints",
            Watched::EndpointSlices => "endpointslices",
            Watched::Deployments => "deployments",
            Watched::Hpas => "horizontalpodautoscalers",
        }
    }
}

/// One pod, as far as failover and cost care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PodFact {
    pub color: Option<Color>,
    /// Ready condition true and not terminating.
    pub ready: bool,
    /// Phase Running and not terminating: it costs money.
    pub running: bool,
}

/// Replica counts of one colour's Deployment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeploymentFact {
    pub desired: i32,
    pub ready: i32,
    pub available: i32,
}

/// One colour's HPA status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HpaFact {
    pub current: i32,
    pub desired: i32,
    pub min: i32,
    pub max: i32,
    pub cpu_utilization: Option<i32>,
}

/// The demo as the watcher last saw it.
#[derive(Debug, Clone, Default)]
pub struct DemoState {
    service: String,
    pods: BTreeMap<String, PodFact>,
    /// Per watch being relisted: the keys (pod names, object names, colours) seen since
    /// it restarted, to drop the ones it no longer holds.
    relisting: BTreeMap<Watched, BTreeSet<String>>,
    /// Watches whose first full list is in. Before the pods' is, "no ready pod" means
    /// "not heard yet", and nothing may be decided on it.
    listed: BTreeSet<Watched>,
    /// The Service has been seen.
    pub service_seen: bool,
    /// The colour the Service selects (`None`: no Service yet, or no colour in it).
    pub selected: Option<Color>,
    /// The newest resourceVersion of the Service taken in (from a watch or from the
    /// answer to our own patch), when it is numeric.
    service_version: Option<u64>,
    /// The pods behind the ready addresses of each endpoint source: the Service's
    /// Endpoints (keyed by the Service's name) or each of its EndpointSlices (by slice).
    endpoint_sources: BTreeMap<String, Vec<Option<String>>>,
    /// Ready addresses in the Service's Endpoints, by the colour of the pod behind them.
    pub endpoints_ready: BTreeMap<Color, u32>,
    pub deployments: BTreeMap<Color, DeploymentFact>,
    pub hpas: BTreeMap<Color, HpaFact>,
    /// CPU and memory requests of one pod of each colour (from the Deployment template).
    pub pod_requests: BTreeMap<Color, PodRequests>,
}

impl DemoState {
    /// An empty state for the Service named `service`.
    pub fn new(service: &str) -> DemoState {
        DemoState {
            service: service.to_string(),
            ..DemoState::default()
        }
    }

    /// Ready pods of one colour.
    pub fn ready(&self, color: Color) -> u32 {
        count(
            self.pods
                .values()
                .filter(|p| p.color == Some(color) && p.ready),
        )
    }

    /// Running pods of one colour (what costs money right now).
    pub fn running(&self, color: Color) -> u32 {
        count(
            self.pods
                .values()
                .filter(|p| p.color == Some(color) && p.running),
        )
    }

    /// Ready addresses of `color` behind the Service.
    pub fn serving(&self, color: Color) -> u32 {
        self.endpoints_ready.get(&color).copied().unwrap_or(0)
    }

    /// A pod was added or changed.
    pub fn apply_pod(&mut self, pod: &Pod) -> Vec<EventKind> {
        let Some(name) = pod.metadata.name.clone() else {
            return Vec::new();
        };
        self.seen(Watched::Pods, &name);
        let fact = pod_fact(pod);
        let color = fact.color.map(|c| c.as_str().to_string());
        let before = self.pods.insert(name.clone(), fact);
        let mut out = Vec::new();
        if before.is_none() {
            out.push(EventKind::PodCreated {
                pod: name.clone(),
                color: color.clone(),
            });
        }
        let was_ready = before.is_some_and(|b| b.ready);
        if fact.ready && !was_ready {
            out.push(EventKind::PodReady { pod: name, color });
        } else if !fact.ready && was_ready {
            out.push(EventKind::PodUnready { pod: name, color });
        }
        out
    }

    /// A pod is gone.
    pub fn delete_pod(&mut self, name: &str) -> Vec<EventKind> {
        match self.pods.remove(name) {
            Some(fact) => vec![EventKind::PodDeleted {
                pod: name.to_string(),
                color: fact.color.map(|c| c.as_str().to_string()),
            }],
            None => Vec::new(),
        }
    }

    /// Whether `watched` has delivered its first full list.
    pub fn listed(&self, watched: Watched) -> bool {
        self.listed.contains(&watched)
    }

    /// A watch restarted: a full list follows.
    pub fn relist_started(&mut self, watched: Watched) {
        self.relisting.insert(watched, BTreeSet::new());
    }

    fn seen(&mut self, watched: Watched, key: &str) {
        if let Some(seen) = self.relisting.get_mut(&watched) {
            seen.insert(key.to_string());
        }
    }

    /// The full list is in: what it did not contain was deleted while we were not looking.
    pub fn relist_done(&mut self, watched: Watched) -> Vec<EventKind> {
        self.listed.insert(watched);
        let Some(seen) = self.relisting.remove(&watched) else {
            return Vec::new();
        };
        let service = self.service.clone();
        match watched {
            Watched::Pods => {
                let gone: Vec<String> = self
                    .pods
                    .keys()
                    .filter(|name| !seen.contains(*name))
                    .cloned()
                    .collect();
                gone.iter().flat_map(|name| self.delete_pod(name)).collect()
            }
            Watched::Service if !seen.contains(&service) => self.delete_service(&service),
            Watched::Endpoints if !seen.contains(&service) => self.delete_endpoints(&service),
            Watched::EndpointSlices => {
                self.endpoint_sources.retain(|name, _| seen.contains(name));
                self.count_endpoints()
            }
            Watched::Deployments => {
                self.deployments.retain(|c, _| seen.contains(c.as_str()));
                Vec::new()
            }
            Watched::Hpas => {
                self.hpas.retain(|c, _| seen.contains(c.as_str()));
                Vec::new()
            }
            Watched::Service | Watched::Endpoints => Vec::new(),
        }
    }

    /// The Service changed (or appeared).
    pub fn apply_service(&mut self, service: &Service) -> Vec<EventKind> {
        if service.metadata.name.as_deref() != Some(self.service.as_str()) {
            return Vec::new();
        }
        self.seen(Watched::Service, &self.service.clone());
        // A relist that started before our own switch can deliver the Service as it was
        // before it; taking that in would undo the switch in our picture and switch again.
        // resourceVersions are opaque to clients in general, but every API server we talk
        // to (etcd revisions, the lab's counter) sends increasing integers; anything else
        // is taken as it comes.
        let version = service
            .metadata
            .resource_version
            .as_deref()
            .and_then(|v| v.parse::<u64>().ok());
        match (version, self.service_version) {
            (Some(v), Some(newest)) if v < newest => return Vec::new(),
            (Some(v), _) => self.service_version = Some(v),
            (None, _) => {}
        }
        self.service_seen = true;
        let selected = service
            .spec
            .as_ref()
            .and_then(|s| s.selector.as_ref())
            .and_then(|s| s.get(COLOR_LABEL))
            .and_then(|v| parse_color(v));
        let before = std::mem::replace(&mut self.selected, selected);
        match (before, selected) {
            (Some(from), Some(to)) if from != to => vec![EventKind::SelectorSwitched {
                service: self.service.clone(),
                from: Some(from.as_str().to_string()),
                to: to.as_str().to_string(),
                reason: "observed on the Service".to_string(),
            }],
            _ => Vec::new(),
        }
    }

    /// The Service is gone: nothing to steer until it is back.
    pub fn delete_service(&mut self, name: &str) -> Vec<EventKind> {
        if name == self.service {
            self.service_seen = false;
            self.selected = None;
            self.service_version = None;
        }
        Vec::new()
    }

    /// The Service's Endpoints changed.
    pub fn apply_endpoints(&mut self, endpoints: &Endpoints) -> Vec<EventKind> {
        if endpoints.metadata.name.as_deref() != Some(self.service.as_str()) {
            return Vec::new();
        }
        let service = self.service.clone();
        self.seen(Watched::Endpoints, &service);
        let ready = cluster::endpoints::from_endpoints(endpoints).ready;
        self.endpoint_sources.insert(service, ready);
        self.count_endpoints()
    }

    /// The Service's Endpoints are gone.
    pub fn delete_endpoints(&mut self, name: &str) -> Vec<EventKind> {
        if name != self.service {
            return Vec::new();
        }
        self.endpoint_sources.remove(name);
        self.count_endpoints()
    }

    /// One of the Service's EndpointSlices changed (or appeared).
    pub fn apply_endpoint_slice(&mut self, slice: &EndpointSlice) -> Vec<EventKind> {
        let service = slice
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(cluster::endpoints::SERVICE_NAME_LABEL));
        if service != Some(&self.service) {
            return Vec::new();
        }
        let name = slice.metadata.name.clone().unwrap_or_default();
        self.seen(Watched::EndpointSlices, &name);
        let ready = cluster::endpoints::from_slices(std::slice::from_ref(slice)).ready;
        self.endpoint_sources.insert(name, ready);
        self.count_endpoints()
    }

    /// One of the Service's EndpointSlices is gone.
    pub fn delete_endpoint_slice(&mut self, name: &str) -> Vec<EventKind> {
        if self.endpoint_sources.remove(name).is_none() {
            return Vec::new();
        }
        self.count_endpoints()
    }

    /// Ready addresses over every source, by colour. An address names its pod; the pod
    /// names its colour. An address whose pod we have not seen yet belongs to the colour
    /// the Service selects.
    fn count_endpoints(&mut self) -> Vec<EventKind> {
        let mut ready: BTreeMap<Color, u32> = BTreeMap::new();
        for pod in self.endpoint_sources.values().flatten() {
            let color = pod
                .as_deref()
                .and_then(|name| self.pods.get(name))
                .and_then(|p| p.color)
                .or(self.selected);
            if let Some(color) = color {
                *ready.entry(color).or_default() += 1;
            }
        }
        self.set_endpoints(ready)
    }

    fn set_endpoints(&mut self, ready: BTreeMap<Color, u32>) -> Vec<EventKind> {
        if ready == self.endpoints_ready {
            return Vec::new();
        }
        self.endpoints_ready = ready;
        vec![EventKind::EndpointsChanged {
            service: self.service.clone(),
            ready: self
                .endpoints_ready
                .iter()
                .map(|(c, n)| (c.as_str().to_string(), *n))
                .collect(),
        }]
    }

    /// A Deployment changed.
    pub fn apply_deployment(&mut self, deployment: &Deployment) -> Vec<EventKind> {
        let Some(color) = object_color(&deployment.metadata.labels) else {
            return Vec::new();
        };
        self.seen(Watched::Deployments, color.as_str());
        let status = deployment.status.as_ref();
        let fact = DeploymentFact {
            desired: deployment.spec.replicas.unwrap_or(1),
            ready: status.and_then(|s| s.ready_replicas).unwrap_or(0),
            available: status.and_then(|s| s.available_replicas).unwrap_or(0),
        };
        if let Some(requests) = template_requests(deployment) {
            self.pod_requests.insert(color, requests);
        }
        if self.deployments.insert(color, fact) == Some(fact) {
            return Vec::new();
        }
        vec![EventKind::DeploymentReplicas {
            deployment: deployment.metadata.name.clone().unwrap_or_default(),
            color: Some(color.as_str().to_string()),
            desired: fact.desired,
            ready: fact.ready,
            available: fact.available,
        }]
    }

    /// A colour's Deployment is gone.
    pub fn delete_deployment(&mut self, deployment: &Deployment) -> Vec<EventKind> {
        if let Some(color) = object_color(&deployment.metadata.labels) {
            self.deployments.remove(&color);
        }
        Vec::new()
    }

    /// A colour's HPA is gone.
    pub fn delete_hpa(&mut self, hpa: &HorizontalPodAutoscaler) -> Vec<EventKind> {
        if let Some(color) = hpa_color(hpa) {
            self.hpas.remove(&color);
        }
        Vec::new()
    }

    /// An HPA changed.
    pub fn apply_hpa(&mut self, hpa: &HorizontalPodAutoscaler) -> Vec<EventKind> {
        let Some(color) = hpa_color(hpa) else {
            return Vec::new();
        };
        self.seen(Watched::Hpas, color.as_str());
        let status = hpa.status.as_ref();
        let fact = HpaFact {
            current: status.and_then(|s| s.current_replicas).unwrap_or(0),
            desired: status.map(|s| s.desired_replicas).unwrap_or(0),
            min: hpa.spec.min_replicas.unwrap_or(1),
            max: hpa.spec.max_replicas,
            cpu_utilization: crate::cluster::hpa::cpu_current_utilization(hpa),
        };
        if self.hpas.insert(color, fact) == Some(fact) {
            return Vec::new();
        }
        vec![EventKind::HpaReplicas {
            hpa: hpa.metadata.name.clone().unwrap_or_default(),
            color: Some(color.as_str().to_string()),
            current: fact.current,
            desired: fact.desired,
            cpu_utilization: fact.cpu_utilization,
        }]
    }
}

/// An HPA's colour: its label, else the colour its target's name ends in.
fn hpa_color(hpa: &HorizontalPodAutoscaler) -> Option<Color> {
    object_color(&hpa.metadata.labels).or_else(|| {
        hpa.spec
            .scale_target_ref
            .name
            .rsplit('-')
            .next()
            .and_then(parse_color)
    })
}

fn count<'a>(pods: impl Iterator<Item = &'a PodFact>) -> u32 {
    u32::try_from(pods.count()).unwrap_or(u32::MAX)
}

/// `blue` / `green` → the colour.
pub fn parse_color(value: &str) -> Option<Color> {
    match value {
        "blue" => Some(Color::Blue),
        "green" => Some(Color::Green),
        _ => None,
    }
}

fn object_color(labels: &Option<BTreeMap<String, String>>) -> Option<Color> {
    labels
        .as_ref()
        .and_then(|l| l.get(COLOR_LABEL))
        .and_then(|v| parse_color(v))
}

/// Readiness and cost-relevance of one pod.
pub fn pod_fact(pod: &Pod) -> PodFact {
    let terminating = pod.metadata.deletion_timestamp.is_some();
    let status = pod.status.as_ref();
    let ready = status
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .any(|c| c.type_ == "Ready" && c.status == "True");
    let running = status.and_then(|s| s.phase.as_deref()) == Some("Running");
    PodFact {
        color: object_color(&pod.metadata.labels),
        ready: ready && !terminating,
        running: running && !terminating,
    }
}

/// Σ container requests of the Deployment's pod template.
fn template_requests(deployment: &Deployment) -> Option<PodRequests> {
    let containers = &deployment.spec.template.spec.as_ref()?.containers;
    let mut total = PodRequests {
        cpu_millis: 0,
        memory_bytes: 0,
    };
    for container in containers {
        let Some(requests) = container
            .resources
            .as_ref()
            .and_then(|r| r.requests.as_ref())
        else {
            continue;
        };
        if let Some(cpu) = requests.get("cpu") {
            total.cpu_millis += quantity::parse_cpu_millis(&cpu.0).ok()?;
        }
        if let Some(memory) = requests.get("memory") {
            total.memory_bytes += quantity::parse_memory_bytes(&memory.0).ok()?;
        }
    }
    Some(total)
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use serde_json::json;

    fn pod(name: &str, color: &str, ready: bool) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": name, "labels": {"app": "web", "version": color}},
            "status": {"phase": "Running", "conditions": [
                {"type": "Ready", "status": if ready { "True" } else { "False" }}
            ]}
        }))
        .unwrap()
    }

    fn service(color: &str) -> Service {
        serde_json::from_value(json!({
            "metadata": {"name": "web"},
            "spec": {"selector": {"app": "web", "version": color}}
        }))
        .unwrap()
    }

    /// The Service's Endpoints with one ready address per named pod.
    pub(in crate::watch) fn endpoints(pods: &[&str]) -> Endpoints {
        let addresses: Vec<_> = pods
            .iter()
            .map(|p| json!({"ip": "127.0.0.1", "targetRef": {"kind": "Pod", "name": p}}))
            .collect();
        serde_json::from_value(json!({"metadata": {"name": "web"},
            "subsets": [{"addresses": addresses}]}))
        .unwrap()
    }

    /// One EndpointSlice of the Service `web` with one ready endpoint per named pod.
    fn slice(name: &str, pods: &[&str]) -> EndpointSlice {
        let endpoints: Vec<_> = pods
            .iter()
            .map(|p| {
                json!({"addresses": ["127.0.1.2"], "conditions": {"ready": true},
                            "targetRef": {"kind": "Pod", "name": p}})
            })
            .collect();
        serde_json::from_value(json!({
            "metadata": {"name": name, "labels": {"kubernetes.io/service-name": "web"}},
            "addressType": "IPv4", "endpoints": endpoints}))
        .unwrap()
    }

    #[test]
    fn endpoint_slices_of_the_service_add_up_and_a_relist_drops_the_gone_ones() {
        let mut state = DemoState::new("web");
        state.apply_pod(&pod("b1", "blue", true));
        state.apply_pod(&pod("b2", "blue", true));
        state.apply_pod(&pod("g1", "green", true));
        state.apply_endpoint_slice(&slice("web-a", &["b1"]));
        state.apply_endpoint_slice(&slice("web-b", &["b2", "g1"]));
        let mut other = slice("other-a", &["b1"]);
        other.metadata.labels = Some(
            [(
                "kubernetes.io/service-name".to_string(),
                "other".to_string(),
            )]
            .into(),
        );
        assert!(
            state.apply_endpoint_slice(&other).is_empty(),
            "another Service's slice"
        );
        let both = BTreeMap::from([(Color::Blue, 2), (Color::Green, 1)]);
        assert_eq!(state.endpoints_ready, both);
        state.delete_endpoint_slice("web-b");
        assert_eq!(state.endpoints_ready, BTreeMap::from([(Color::Blue, 1)]));
        // The stream restarts and the relist no longer holds web-a: it went unseen.
        state.apply_endpoint_slice(&slice("web-b", &["g1"]));
        state.relist_started(Watched::EndpointSlices);
        state.apply_endpoint_slice(&slice("web-b", &["g1"]));
        state.relist_done(Watched::EndpointSlices);
        assert_eq!(state.endpoints_ready, BTreeMap::from([(Color::Green, 1)]));
    }

    #[test]
    fn readiness_is_counted_per_colour_and_transitions_are_reported() {
        let mut state = DemoState::new("web");
        let created = state.apply_pod(&pod("b1", "blue", false));
        assert!(matches!(created[..], [EventKind::PodCreated { .. }]));
        let ready = state.apply_pod(&pod("b1", "blue", true));
        assert!(matches!(ready[..], [EventKind::PodReady { .. }]));
        state.apply_pod(&pod("g1", "green", true));
        assert_eq!(
            (state.ready(Color::Blue), state.ready(Color::Green)),
            (1, 1)
        );
        assert!(state.apply_pod(&pod("b1", "blue", true)).is_empty());
        let unready = state.apply_pod(&pod("b1", "blue", false));
        assert!(matches!(unready[..], [EventKind::PodUnready { .. }]));
        assert_eq!(state.ready(Color::Blue), 0);
    }

    #[test]
    fn a_terminating_pod_is_neither_ready_nor_running() {
        let mut p = pod("b1", "blue", true);
        p.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            k8s_openapi::jiff::Timestamp::now(),
        ));
        let fact = pod_fact(&p);
        assert!(!fact.ready && !fact.running);
    }

    #[test]
    fn a_relist_drops_pods_deleted_while_the_watch_was_down() {
        let mut state = DemoState::new("web");
        state.apply_pod(&pod("b1", "blue", true));
        state.apply_pod(&pod("b2", "blue", true));
        state.relist_started(Watched::Pods);
        state.apply_pod(&pod("b2", "blue", true));
        let gone = state.relist_done(Watched::Pods);
        assert!(matches!(&gone[..], [EventKind::PodDeleted { pod, .. }] if pod == "b1"));
        assert_eq!(state.ready(Color::Blue), 1);
    }

    #[test]
    fn pods_count_as_listed_from_their_first_full_list_on() {
        let mut state = DemoState::new("web");
        state.apply_service(&service("blue"));
        // The first list has begun but not ended: zero ready pods is not yet a figure.
        state.relist_started(Watched::Pods);
        state.apply_pod(&pod("b1", "blue", true));
        assert!(!state.listed(Watched::Pods));
        state.relist_done(Watched::Pods);
        assert!(state.listed(Watched::Pods) && !state.listed(Watched::Endpoints));
        // A later relist (a dropped stream) keeps what is known meanwhile.
        state.relist_started(Watched::Pods);
        assert!(state.listed(Watched::Pods));
        assert_eq!(state.ready(Color::Blue), 1);
    }

    #[test]
    fn a_selector_change_is_reported_once() {
        let mut state = DemoState::new("web");
        assert!(state.apply_service(&service("blue")).is_empty());
        let switched = state.apply_service(&service("green"));
        assert!(matches!(&switched[..], [EventKind::SelectorSwitched { to, .. }] if to == "green"));
        assert!(state.apply_service(&service("green")).is_empty());
        assert_eq!(state.selected, Some(Color::Green));
    }

    #[test]
    fn a_service_older_than_the_one_taken_in_is_ignored() {
        let mut state = DemoState::new("web");
        let at = |color: &str, rv: &str| {
            let mut s = service(color);
            s.metadata.resource_version = Some(rv.to_string());
            s
        };
        state.apply_service(&at("blue", "10"));
        // Our own switch's answer, then a relist's stale copy from before it.
        state.apply_service(&at("green", "12"));
        assert!(state.apply_service(&at("blue", "11")).is_empty());
        assert_eq!(state.selected, Some(Color::Green));
        state.apply_service(&at("blue", "13"));
        assert_eq!(state.selected, Some(Color::Blue));
    }

    #[test]
    fn endpoints_are_attributed_to_the_colour_of_their_pod() {
        let mut state = DemoState::new("web");
        state.apply_service(&service("blue"));
        state.apply_pod(&pod("g1", "green", true));
        let endpoints = endpoints(&["g1", "unknown"]);
        assert_eq!(state.apply_endpoints(&endpoints).len(), 1);
        assert_eq!(
            (state.serving(Color::Green), state.serving(Color::Blue)),
            (1, 1)
        );
        assert!(state.apply_endpoints(&endpoints).is_empty());
    }

    #[test]
    fn a_relist_without_the_service_or_its_endpoints_forgets_them() {
        let mut state = DemoState::new("web");
        state.apply_service(&service("blue"));
        state.apply_pod(&pod("b1", "blue", true));
        state.apply_endpoints(&endpoints(&["b1"]));
        for watched in [Watched::Service, Watched::Endpoints] {
            state.relist_started(watched);
        }
        assert!(state.relist_done(Watched::Service).is_empty());
        assert!(!state.service_seen && state.selected.is_none());
        assert_eq!(state.relist_done(Watched::Endpoints).len(), 1);
        assert_eq!(state.serving(Color::Blue), 0);
    }
}
