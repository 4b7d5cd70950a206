//! A Service's endpoints as the toolkit reads them: from its EndpointSlices
//! (discovery.k8s.io/v1) where the cluster serves them — every current cluster does, and
//! core/v1 Endpoints are deprecated upstream since 1.33 — and from its Endpoints object
//! otherwise.
//!
//! A Service may have several slices (the upstream controller caps a slice at 100
//! endpoints); they are found by the `kubernetes.io/service-name` label and read as one.
//! An endpoint's `ready` condition left unset counts as ready, as
//! `discovery/v1/types.go` asks consumers to read it; a terminating endpoint is never
//! ready (the controller sets `ready: false` for it).
//!
//! Called by `demo status` (one read) and the watcher (which watches the slices itself and
//! hands each one to [`from_slices`]).

use k8s_openapi::api::core::v1::Endpoints;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Client;
use kube::api::{Api, ListParams};

/// The label that ties an EndpointSlice to its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// The group/version that serves EndpointSlices.
const DISCOVERY_V1: &str = "discovery.k8s.io/v1";

/// A Service's endpoints, whichever API they came from: the pod behind each address
/// (`None` when the address names none).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceEndpoints {
    pub ready: Vec<Option<String>>,
    pub not_ready: Vec<Option<String>>,
}

/// Whether the cluster serves EndpointSlices. A cluster that cannot be asked is read
/// through Endpoints, which every cluster still serves.
pub async fn serves_slices(client: &Client) -> bool {
    match client.list_api_group_resources(DISCOVERY_V1).await {
        Ok(list) => list.resources.iter().any(|r| r.name == "endpointslices"),
        Err(_) => false,
    }
}

/// The label selector that finds a Service's slices.
pub fn slice_selector(service: &str) -> String {
    format!("{SERVICE_NAME_LABEL}={service}")
}

/// Reads `service`'s endpoints in `namespace`: slices when `slices`, else Endpoints.
/// `None` when there are none to read (no Endpoints object, or no slice).
pub async fn read(
    client: &Client,
    namespace: &str,
    service: &str,
    slices: bool,
) -> Result<Option<ServiceEndpoints>, kube::Error> {
    if slices {
        let api: Api<EndpointSlice> = Api::namespaced(client.clone(), namespace);
        let list = api
            .list(&ListParams::default().labels(&slice_selector(service)))
            .await?;
        if list.items.is_empty() {
            return Ok(None);
        }
        return Ok(Some(from_slices(&list.items)));
    }
    let api: Api<Endpoints> = Api::namespaced(client.clone(), namespace);
    Ok(api.get_opt(service).await?.as_ref().map(from_endpoints))
}

/// The addresses of a core/v1 Endpoints object.
pub fn from_endpoints(endpoints: &Endpoints) -> ServiceEndpoints {
    let mut out = ServiceEndpoints::default();
    for subset in endpoints.subsets.iter().flatten() {
        let pod = |a: &k8s_openapi::api::core::v1::EndpointAddress| {
            a.target_ref.as_ref().and_then(|r| r.name.clone())
        };
        out.ready.extend(subset.addresses.iter().flatten().map(pod));
        out.not_ready
            .extend(subset.not_ready_addresses.iter().flatten().map(pod));
    }
    out
}

/// The endpoints of one Service's slices, read as one.
pub fn from_slices(slices: &[EndpointSlice]) -> ServiceEndpoints {
    let mut out = ServiceEndpoints::default();
    for endpoint in slices.iter().flat_map(|s| s.endpoints.iter().flatten()) {
        let pod = endpoint.target_ref.as_ref().and_then(|r| r.name.clone());
        let conditions = endpoint.conditions.as_ref();
        let ready = conditions.and_then(|c| c.ready).unwrap_or(true)
            && !conditions.and_then(|c| c.terminating).unwrap_or(false);
        // One entry per address, as Endpoints has one per address.
        for _ in 0..endpoint.addresses.len().max(1) {
            if ready {
                out.ready.push(pod.clone());
            } else {
                out.not_ready.push(pod.clone());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn slice(endpoints: serde_json::Value) -> EndpointSlice {
        serde_json::from_value(json!({
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": "web-abc", "labels": {SERVICE_NAME_LABEL: "web"}},
            "addressType": "IPv4",
            "endpoints": endpoints,
        }))
        .unwrap()
    }

    #[test]
    fn slices_count_unset_ready_as_ready_and_terminating_as_not() {
        let a = slice(json!([
            {"addresses": ["127.0.1.2"], "conditions": {"ready": true},
             "targetRef": {"kind": "Pod", "name": "b1"}},
            {"addresses": ["127.0.1.3"], "targetRef": {"kind": "Pod", "name": "b2"}},
        ]));
        let b = slice(json!([
            {"addresses": ["127.0.2.2"], "conditions": {"ready": false},
             "targetRef": {"kind": "Pod", "name": "b3"}},
            {"addresses": ["127.0.2.3"], "conditions": {"ready": true, "terminating": true},
             "targetRef": {"kind": "Pod", "name": "b4"}},
        ]));
        let read = from_slices(&[a, b]);
        assert_eq!(read.ready, [Some("b1".into()), Some("b2".into())]);
        assert_eq!(read.not_ready, [Some("b3".into()), Some("b4".into())]);
    }

    #[test]
    fn endpoints_and_slices_holding_the_same_pods_read_the_same() {
        let endpoints: Endpoints = serde_json::from_value(json!({
            "metadata": {"name": "web"},
            "subsets": [{
                "addresses": [{"ip": "127.0.1.2", "targetRef": {"kind": "Pod", "name": "b1"}}],
                "notReadyAddresses": [{"ip": "127.0.1.3", "targetRef": {"kind": "Pod", "name": "b2"}}],
                "ports": [{"port": 8080}],
            }],
        }))
        .unwrap();
        let slices = [slice(json!([
            {"addresses": ["127.0.1.2"], "conditions": {"ready": true},
             "targetRef": {"kind": "Pod", "name": "b1"}},
            {"addresses": ["127.0.1.3"], "conditions": {"ready": false},
             "targetRef": {"kind": "Pod", "name": "b2"}},
        ]))];
        assert_eq!(from_endpoints(&endpoints), from_slices(&slices));
    }
}
