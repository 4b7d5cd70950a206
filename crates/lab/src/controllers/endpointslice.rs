//! The EndpointSlice controller: keeps `discovery.k8s.io/v1` EndpointSlices beside the
//! Endpoints of every Service with a selector, as upstream's
//! `pkg/controller/endpointslice/endpointslice_controller.go` and
//! `staging/src/k8s.io/endpointslice/reconciler.go` do (kubectl 1.32's `describe svc`
//! reads the slices, not the Endpoints).
//!
//! The decision ([`slices_for`]) is pure:
//! 1. Pods of the Service's namespace that its selector selects, that have an IP and have
//!    not finished, become endpoints; pods being deleted stay, marked terminating
//!    (upstream `ShouldPodBeInEndpoints(pod, true)`).
//! 2. Each endpoint has `addresses: [podIP]`, `conditions` (`ready`: Ready and not
//!    terminating; `serving`: Ready; `terminating`), `targetRef` to the pod, `nodeName`
//!    and `zone` (the node's `topology.kubernetes.io/zone` label, when the lab has Node
//!    objects).
//! 3. Endpoints are grouped by their port set (a lab pod listens on a port of its own:
//!    see `endpoints.rs`), one slice per set, at most [`MAX_ENDPOINTS`] endpoints each.
//!    A Service whose pods are all gone keeps one empty slice with its ports unset.
//!
//! The loop ([`run`]) reconciles: an existing slice of the Service (label
//! `kubernetes.io/service-name`, managed by this controller) with the same ports is
//! updated when it differs, missing slices are created (`generateName: <service>-`,
//! owned by the Service), surplus ones deleted. Slices of a deleted Service go with it
//! through the garbage collector (ownerReference).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, Service};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::endpoints::{resolve_target_port, selects};
use super::pods::{is_ready, lab_port};
use super::runtime::{Wake, selected_pods, typed};
use crate::store::kinds::kind;
use crate::store::{DeleteOptions, Store, WriteMode};

/// The label naming a slice's Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// The label naming a slice's manager.
pub const MANAGED_BY_LABEL: &str = "endpointslice.kubernetes.io/managed-by";
/// This controller's name in [`MANAGED_BY_LABEL`].
pub const MANAGED_BY: &str = "endpointslice-controller.k8s.io";
/// Most endpoints per slice (upstream `--max-endpoints-per-slice` default).
pub const MAX_ENDPOINTS: usize = 100;
/// The node label giving an endpoint's zone.
const ZONE_LABEL: &str = "topology.kubernetes.io/zone";
/// Longest the loop sleeps without a change.
const RESYNC: Duration = Duration::from_secs(1);
/// Batching pause after a change (pods starting in a burst).
const BATCH: Duration = Duration::from_millis(5);

/// One desired slice: its ports and endpoints (the object's other fields come from the
/// Service).
#[derive(Debug, Clone, PartialEq)]
pub struct DesiredSlice {
    /// `ports` as stored.
    pub ports: Value,
    /// `endpoints` as stored.
    pub endpoints: Vec<Value>,
}

/// The slices `service` should have, or `None` when it has no selector (upstream leaves
/// such Services' slices to their owners). `zone_of` maps a node name to its zone.
pub fn slices_for<P: std::borrow::Borrow<Pod>>(
    service: &Service,
    pods: &[P],
    zone_of: &dyn Fn(&str) -> Option<String>,
) -> Option<Vec<DesiredSlice>> {
    let spec = service.spec.as_ref()?;
    let selector = spec.selector.as_ref().filter(|s| !s.is_empty())?;
    let service_ports = spec.ports.clone().unwrap_or_default();
    let mut groups: BTreeMap<String, (Value, Vec<Value>)> = BTreeMap::new();
    for pod in pods.iter().map(P::borrow) {
        if pod.metadata.namespace != service.metadata.namespace || !selects(selector, pod) {
            continue;
        }
        let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
        if matches!(phase, Some("Succeeded" | "Failed")) {
            continue;
        }
        let Some(ip) = pod.status.as_ref().and_then(|s| s.pod_ip.clone()) else {
            continue;
        };
        let ports: Vec<Value> = service_ports
            .iter()
            .filter_map(|sp| {
                let port = lab_port(pod)
                    .map(i32::from)
                    .or_else(|| resolve_target_port(sp, pod))?;
                Some(
                    json!({"name": sp.name.clone().unwrap_or_default(), "port": port,
                    "protocol": sp.protocol.clone().unwrap_or_else(|| "TCP".into())}),
                )
            })
            .collect();
        if ports.len() != service_ports.len() {
            continue; // a named targetPort this pod does not declare
        }
        let ports = Value::Array(ports);
        let entry = groups
            .entry(ports.to_string())
            .or_insert_with(|| (ports, Vec::new()));
        entry.1.push(endpoint(pod, ip, zone_of));
    }
    let mut out: Vec<DesiredSlice> = Vec::new();
    for (_, (ports, endpoints)) in groups {
        for chunk in endpoints.chunks(MAX_ENDPOINTS) {
            out.push(DesiredSlice {
                ports: ports.clone(),
                endpoints: chunk.to_vec(),
            });
        }
    }
    if out.is_empty() {
        out.push(DesiredSlice {
            ports: Value::Null,
            endpoints: Vec::new(),
        });
    }
    Some(out)
}

/// One pod as an endpoint.
fn endpoint(pod: &Pod, ip: String, zone_of: &dyn Fn(&str) -> Option<String>) -> Value {
    let ready = is_ready(pod);
    let terminating = pod.metadata.deletion_timestamp.is_some();
    let node = pod.spec.as_ref().and_then(|s| s.node_name.clone());
    let mut e = json!({
        "addresses": [ip],
        "conditions": {"ready": ready && !terminating, "serving": ready,
                       "terminating": terminating},
        "targetRef": {"kind": "Pod", "name": pod.metadata.name, "namespace":
                      pod.metadata.namespace, "uid": pod.metadata.uid},
    });
    if let Some(node) = node {
        if let Some(zone) = zone_of(&node) {
            e["zone"] = json!(zone);
        }
        e["nodeName"] = json!(node);
    }
    e
}

/// The full slice object for `service` with `desired`'s content.
fn slice_object(service: &Service, desired: &DesiredSlice) -> Value {
    let name = service.metadata.name.clone().unwrap_or_default();
    let mut obj = json!({
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "generateName": format!("{name}-"),
            "labels": {SERVICE_NAME_LABEL: name, MANAGED_BY_LABEL: MANAGED_BY},
            "ownerReferences": [{"apiVersion": "v1", "kind": "Service", "name": name,
                "uid": service.metadata.uid, "controller": true, "blockOwnerDeletion": true}],
        },
        "addressType": "IPv4",
        "endpoints": desired.endpoints,
    });
    if !desired.ports.is_null() {
        obj["ports"] = desired.ports.clone();
    }
    obj
}

/// Runs the controller until `shutdown`.
pub async fn run(store: Arc<Store>, shutdown: CancellationToken) {
    let wake = Wake::on(&store, &["services", "pods", "endpointslices"], &shutdown);
    loop {
        sync(&store);
        tokio::select! {
            // Something changed: reconcile again after a short batching pause.
            _ = wake.changed() => tokio::time::sleep(BATCH).await,
            // Nothing changed for a while.
            _ = tokio::time::sleep(RESYNC) => {}
            // The lab stops.
            _ = shutdown.cancelled() => return,
        }
    }
}

/// One pass over every Service.
pub fn sync(store: &Store) {
    let services: Vec<Service> = typed(store.list("services", None).items);
    let pods = selected_pods(store, &services);
    let slices = store.list("endpointslices", None).items;
    let zone_of = |node: &str| {
        store
            .get("nodes", "", node)?
            .pointer(&format!(
                "/metadata/labels/{}",
                ZONE_LABEL.replace('/', "~1")
            ))?
            .as_str()
            .map(str::to_string)
    };
    for svc in &services {
        if svc.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let Some(desired) = slices_for(svc, &pods, &zone_of) else {
            continue;
        };
        let ns = svc.metadata.namespace.clone().unwrap_or_default();
        let name = svc.metadata.name.clone().unwrap_or_default();
        let mut existing: Vec<&Value> = slices
            .iter()
            .filter(|s| {
                s.pointer("/metadata/namespace").and_then(Value::as_str) == Some(ns.as_str())
                    && label(s, SERVICE_NAME_LABEL) == Some(name.as_str())
                    && label(s, MANAGED_BY_LABEL) == Some(MANAGED_BY)
            })
            .collect();
        for want in &desired {
            reconcile_one(store, svc, &ns, want, &mut existing);
        }
        for surplus in existing {
            let slice_name = surplus["metadata"]["name"].as_str().unwrap_or_default();
            let _ = store.delete(
                kind("endpointslices"),
                &ns,
                slice_name,
                &DeleteOptions::default(),
            );
        }
    }
}

fn label<'a>(obj: &'a Value, key: &str) -> Option<&'a str> {
    obj.pointer("/metadata/labels")?.get(key)?.as_str()
}

/// Writes one desired slice into the existing one with the same ports (taking it out of
/// `existing`), or creates it.
fn reconcile_one(
    store: &Store,
    svc: &Service,
    ns: &str,
    want: &DesiredSlice,
    existing: &mut Vec<&Value>,
) {
    let ports_of = |s: &Value| s.get("ports").cloned().unwrap_or(Value::Null);
    let found = existing.iter().position(|s| ports_of(s) == want.ports);
    let mut obj = slice_object(svc, want);
    let result = match found.map(|i| existing.remove(i)) {
        None => store.create(kind("endpointslices"), ns, obj).map(drop),
        Some(live) if live.get("endpoints") == obj.get("endpoints") => Ok(()),
        Some(live) => {
            let slice_name = live["metadata"]["name"].as_str().unwrap_or_default();
            obj["metadata"]["name"] = json!(slice_name);
            obj["metadata"]["resourceVersion"] = live["metadata"]["resourceVersion"].clone();
            store
                .update(kind("endpointslices"), ns, slice_name, obj, WriteMode::Main)
                .map(drop)
        }
    };
    if let Err(e) = result {
        tracing::debug!("endpointslices of {ns}/{:?}: {e}", svc.metadata.name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, ready: bool, deleting: bool, port: &str) -> Pod {
        let mut p = json!({
            "metadata": {"name": name, "namespace": "demo", "uid": format!("u-{name}"),
                         "labels": {"app": "web"}, "annotations": {"resil.dev/port": port}},
            "spec": {"containers": [{"name": "web"}], "nodeName": "node-a"},
            "status": {"phase": "Running", "podIP": "127.0.0.1",
                       "conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}}]}
        });
        if deleting {
            p["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        }
        serde_json::from_value(p).unwrap()
    }

    fn service() -> Service {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "demo", "uid": "svc-uid"},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}
        }))
        .unwrap()
    }

    #[test]
    fn endpoints_carry_conditions_node_zone_and_ports_per_port_set() {
        let pods = [
            pod("a", true, false, "31001"),
            pod("b", false, false, "31002"),
            pod("c", true, true, "31003"),
        ];
        let zone = |n: &str| (n == "node-a").then(|| "zone-1".to_string());
        let slices = slices_for(&service(), &pods, &zone).unwrap();
        assert_eq!(slices.len(), 3, "one slice per port set");
        let cond = |i: usize| slices[i].endpoints[0]["conditions"].clone();
        assert_eq!(
            cond(0),
            json!({"ready": true, "serving": true, "terminating": false})
        );
        assert_eq!(
            cond(1),
            json!({"ready": false, "serving": false, "terminating": false})
        );
        assert_eq!(
            cond(2),
            json!({"ready": false, "serving": true, "terminating": true})
        );
        assert_eq!(slices[0].endpoints[0]["zone"], "zone-1");
        assert_eq!(slices[0].endpoints[0]["nodeName"], "node-a");
        assert_eq!(
            slices[0].ports,
            json!([{"name": "", "port": 31001, "protocol": "TCP"}])
        );
        let obj = slice_object(&service(), &slices[0]);
        assert_eq!(obj["metadata"]["labels"][MANAGED_BY_LABEL], MANAGED_BY);
        assert_eq!(obj["metadata"]["ownerReferences"][0]["uid"], "svc-uid");
    }

    #[test]
    fn a_service_without_pods_keeps_one_empty_slice() {
        let slices = slices_for::<Pod>(&service(), &[], &|_| None).unwrap();
        assert_eq!(slices.len(), 1);
        assert!(slices[0].endpoints.is_empty());
        assert!(slice_object(&service(), &slices[0]).get("ports").is_none());
    }
}
