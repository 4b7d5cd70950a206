//! The Endpoints controller's decision, as pure code: for a Service with a selector and
//! the pods of its namespace, the Endpoints object (same name) that lists them.
//!
//! Ready pods (condition `Ready=True`) go to `addresses`, the others to
//! `notReadyAddresses`; pods without an IP, finished pods and pods being deleted are left
//! out (upstream `ShouldPodBeInEndpoints` without `publishNotReadyAddresses`). Each address
//! has `ip`, `nodeName` and `targetRef {kind: Pod, name, namespace, uid}`.
//!
//! Lab-specific port mapping: a lab pod has its node's loopback IP (shared with the node's
//! other pods) and listens on a port of its own, published by the kubelet in the pod annotation `resil.dev/port`. The Endpoints port
//! of such a pod is that real port (so the proxy and any client can reach it); pods without
//! the annotation get the Service's `targetPort` resolved against their container ports
//! (by number, or by port name) as upstream does. Pods with the same ports share a subset,
//! so on the lab there is usually one subset per pod.
//!
//! Called by the controller loop in `runtime.rs`.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    EndpointAddress, EndpointPort, EndpointSubset, Endpoints, ObjectReference, Pod, Service,
    ServicePort,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::pods::{is_active, is_ready, lab_port};

/// The Endpoints for `service`, or `None` when it has no selector (such Services'
/// Endpoints are managed by hand upstream, and left alone here).
pub fn endpoints_for<P: std::borrow::Borrow<Pod>>(
    service: &Service,
    pods: &[P],
) -> Option<Endpoints> {
    let spec = service.spec.as_ref()?;
    let selector = spec.selector.as_ref().filter(|s| !s.is_empty())?;
    let namespace = service.metadata.namespace.clone();
    let service_ports = spec.ports.clone().unwrap_or_default();
    // Ports → (ready, not ready) addresses; BTreeMap keeps subsets in a stable order.
    let mut subsets: BTreeMap<Vec<PortKey>, Subset> = BTreeMap::new();
    for pod in pods.iter().map(P::borrow) {
        if pod.metadata.namespace != namespace || !selects(selector, pod) || !is_active(pod) {
            continue;
        }
        let Some(ip) = pod.status.as_ref().and_then(|s| s.pod_ip.clone()) else {
            continue;
        };
        let ports: Vec<_> = service_ports
            .iter()
            .filter_map(|sp| {
                let port = lab_port(pod)
                    .map(i32::from)
                    .or_else(|| resolve_target_port(sp, pod))?;
                Some((sp.name.clone(), port, sp.protocol.clone()))
            })
            .collect();
        if ports.len() != service_ports.len() {
            // A named targetPort this pod does not declare: upstream skips the pod.
            continue;
        }
        let address = EndpointAddress {
            ip,
            node_name: pod.spec.as_ref().and_then(|s| s.node_name.clone()),
            target_ref: Some(ObjectReference {
                kind: Some("Pod".to_string()),
                name: pod.metadata.name.clone(),
                namespace: pod.metadata.namespace.clone(),
                uid: pod.metadata.uid.clone(),
                ..ObjectReference::default()
            }),
            hostname: None,
        };
        let subset = subsets.entry(ports).or_default();
        if is_ready(pod) {
            subset.ready.push(address);
        } else {
            subset.not_ready.push(address);
        }
    }
    let subsets: Vec<EndpointSubset> = subsets
        .into_iter()
        .map(|(ports, mut s)| {
            let by_name = |a: &EndpointAddress| a.target_ref.as_ref().and_then(|r| r.name.clone());
            s.ready.sort_by_key(by_name);
            s.not_ready.sort_by_key(by_name);
            EndpointSubset {
                addresses: (!s.ready.is_empty()).then_some(s.ready),
                not_ready_addresses: (!s.not_ready.is_empty()).then_some(s.not_ready),
                ports: Some(
                    ports
                        .into_iter()
                        .map(|(name, port, protocol)| EndpointPort {
                            name,
                            port,
                            protocol: Some(protocol.unwrap_or_else(|| "TCP".to_string())),
                            app_protocol: None,
                        })
                        .collect(),
                ),
            }
        })
        .collect();
    Some(Endpoints {
        metadata: ObjectMeta {
            name: service.metadata.name.clone(),
            namespace,
            labels: service.metadata.labels.clone(),
            ..ObjectMeta::default()
        },
        subsets: (!subsets.is_empty()).then_some(subsets),
    })
}

/// One resolved port: (name, number, protocol).
type PortKey = (Option<String>, i32, Option<String>);

#[derive(Default)]
struct Subset {
    ready: Vec<EndpointAddress>,
    not_ready: Vec<EndpointAddress>,
}

/// Every selector label is on the pod.
pub fn selects(selector: &BTreeMap<String, String>, pod: &Pod) -> bool {
    let labels = pod.metadata.labels.as_ref();
    selector
        .iter()
        .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
}

/// The container port a Service port reaches on `pod`: `targetPort` as a number, or the
/// container port with that name; no `targetPort` means the Service `port`.
pub fn resolve_target_port(sp: &ServicePort, pod: &Pod) -> Option<i32> {
    match &sp.target_port {
        None => Some(sp.port),
        Some(IntOrString::Int(n)) => Some(*n),
        Some(IntOrString::String(name)) => pod
            .spec
            .as_ref()?
            .containers
            .iter()
            .flat_map(|c| c.ports.iter().flatten())
            .find(|p| p.name.as_deref() == Some(name))
            .map(|p| p.container_port),
    }
}

/// Whether two Endpoints differ in what a writer controls (subsets and labels), so an
/// unchanged result is not written again.
pub fn same_endpoints(a: &Endpoints, b: &Endpoints) -> bool {
    let empty = |s: &Option<Vec<EndpointSubset>>| s.as_ref().is_none_or(Vec::is_empty);
    (a.subsets == b.subsets || (empty(&a.subsets) && empty(&b.subsets)))
        && a.metadata.labels == b.metadata.labels
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn service(target_port: serde_json::Value) -> Service {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"selector": {"app": "web"},
                     "ports": [{"name": "http", "port": 80, "targetPort": target_port}]}
        }))
        .unwrap()
    }

    fn pod(name: &str, ready: bool, port_annotation: Option<u16>) -> Pod {
        let mut annotations = serde_json::Map::new();
        if let Some(p) = port_annotation {
            annotations.insert("resil.dev/port".into(), json!(p.to_string()));
        }
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}"),
                         "labels": {"app": "web"}, "annotations": annotations},
            "spec": {"nodeName": "lab-node-1", "containers": [{"name": "web", "image": "resil-demo",
                     "ports": [{"name": "http", "containerPort": 8080}]}]},
            "status": {"phase": "Running", "podIP": "127.0.0.1",
                       "conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}}]}
        }))
        .unwrap()
    }

    fn addresses(ep: &Endpoints, ready: bool) -> Vec<(String, i32)> {
        let mut out = Vec::new();
        for s in ep.subsets.iter().flatten() {
            let list = if ready {
                &s.addresses
            } else {
                &s.not_ready_addresses
            };
            for a in list.iter().flatten() {
                let name = a.target_ref.as_ref().unwrap().name.clone().unwrap();
                out.push((name, s.ports.as_ref().unwrap()[0].port));
            }
        }
        out.sort();
        out
    }

    #[test]
    fn ready_pods_are_addresses_with_their_lab_port_and_unready_pods_are_not_ready() {
        let pods = [pod("a", true, Some(41001)), pod("b", false, Some(41002))];
        let ep = endpoints_for(&service(json!(8080)), &pods).unwrap();
        assert_eq!(ep.metadata.name.as_deref(), Some("web"));
        assert_eq!(addresses(&ep, true), vec![("a".to_string(), 41001)]);
        assert_eq!(addresses(&ep, false), vec![("b".to_string(), 41002)]);
        let subset = &ep.subsets.as_ref().unwrap()[0];
        let a = &subset.addresses.as_ref().unwrap()[0];
        assert_eq!(a.ip, "127.0.0.1");
        assert_eq!(a.node_name.as_deref(), Some("lab-node-1"));
        let r = a.target_ref.as_ref().unwrap();
        assert_eq!(
            (r.kind.as_deref(), r.uid.as_deref(), r.namespace.as_deref()),
            (Some("Pod"), Some("uid-a"), Some("default"))
        );
        assert_eq!(
            subset.ports.as_ref().unwrap()[0].name.as_deref(),
            Some("http")
        );
    }

    #[test]
    fn target_ports_resolve_by_number_or_name_without_the_lab_annotation() {
        let pods = [pod("a", true, None)];
        let by_name = endpoints_for(&service(json!("http")), &pods).unwrap();
        assert_eq!(addresses(&by_name, true), vec![("a".to_string(), 8080)]);
        let by_number = endpoints_for(&service(json!(9090)), &pods).unwrap();
        assert_eq!(addresses(&by_number, true), vec![("a".to_string(), 9090)]);
        let unknown = endpoints_for(&service(json!("metrics")), &pods).unwrap();
        assert!(
            unknown.subsets.is_none(),
            "a pod without the named port is skipped"
        );
    }

    #[test]
    fn terminating_unmatched_and_ipless_pods_are_left_out() {
        let mut terminating = pod("t", true, Some(1));
        terminating.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
            ));
        let mut other = pod("o", true, Some(2));
        other.metadata.labels = Some([("app".to_string(), "db".to_string())].into());
        let mut no_ip = pod("n", true, Some(3));
        no_ip.status.as_mut().unwrap().pod_ip = None;
        let ep = endpoints_for(&service(json!(8080)), &[terminating, other, no_ip]).unwrap();
        assert!(ep.subsets.is_none());
    }

    #[test]
    fn a_service_without_selector_gets_no_managed_endpoints() {
        let mut svc = service(json!(8080));
        svc.spec.as_mut().unwrap().selector = None;
        assert!(endpoints_for(&svc, &[pod("a", true, Some(1))]).is_none());
    }
}
