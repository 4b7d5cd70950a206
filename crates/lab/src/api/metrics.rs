//! `GET /metrics`: the lab's own Prometheus metrics, behind the same bearer token as the
//! rest of its API. API requests by verb, resource and code with their latency (to the
//! response head: a watch's stream is not its latency), open watches, object counts per
//! resource and pods per node.
//!
//! The request series mirror the API server's `apiserver_request_total` and
//! `apiserver_request_duration_seconds` (kubernetes/kubernetes
//! `staging/src/k8s.io/apiserver/pkg/endpoints/metrics/metrics.go`), with verbs named as
//! it names them (`GET`, `LIST`, `WATCH`, `POST`, `PUT`, `PATCH`, `DELETE`,
//! `DELETECOLLECTION`) and the resource read from the path as
//! `staging/src/k8s.io/apiserver/pkg/endpoints/request/requestinfo.go` reads it. Object
//! counts and pods per node are read from the store at scrape time. Encoding and format
//! negotiation are `resil_common::exposition`'s. Built by `api/mod.rs`'s router.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};
use resil_common::exposition::{self, Format};

use crate::store::Store;

/// Upper bounds (seconds) of the request latency buckets: a subset of the API server's.
const DURATION_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// What one request was, as the API server's metrics name it.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub verb: String,
    pub resource: String,
    pub subresource: String,
    pub code: String,
}

/// The latency series' labels (no code: a histogram per outcome is too many series).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub verb: String,
    pub resource: String,
    pub subresource: String,
}

/// The lab API's metrics and the registry that serves them.
#[derive(Debug)]
pub struct ApiMetrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    durations: Family<RouteLabels, Histogram, fn() -> Histogram>,
    watches: Gauge,
}

fn duration_histogram() -> Histogram {
    Histogram::new(DURATION_BUCKETS)
}

impl ApiMetrics {
    /// The registry over `store`.
    pub fn new(store: Arc<Store>) -> ApiMetrics {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        let durations = Family::<RouteLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            duration_histogram,
        );
        let watches = Gauge::default();
        registry.register(
            "resil_lab_api_requests",
            "API requests by verb, resource, subresource and HTTP code",
            requests.clone(),
        );
        registry.register_with_unit(
            "resil_lab_api_request_duration",
            "API request latency to the response head, by verb and resource",
            Unit::Seconds,
            durations.clone(),
        );
        registry.register("resil_lab_api_watches", "Watches open now", watches.clone());
        registry.register_collector(Box::new(StoreCollector(store)));
        ApiMetrics {
            registry,
            requests,
            durations,
            watches,
        }
    }

    /// The registry in `format`.
    pub fn encode(&self, format: Format) -> String {
        exposition::encode(&self.registry, format).unwrap_or_default()
    }

    fn observe(&self, route: RouteLabels, code: StatusCode, seconds: f64) {
        self.durations.get_or_create(&route).observe(seconds);
        let labels = RequestLabels {
            verb: route.verb,
            resource: route.resource,
            subresource: route.subresource,
            code: code.as_u16().to_string(),
        };
        self.requests.get_or_create(&labels).inc();
    }
}

/// The verb, resource and subresource of a request, read from its method and path.
pub fn classify(method: &Method, path: &str, query: Option<&str>) -> RouteLabels {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    // `/api/v1/...` or `/apis/GROUP/VERSION/...`; anything else is a non-resource URL.
    let rest: &[&str] = match parts.as_slice() {
        ["api", _version, rest @ ..] => rest,
        ["apis", _group, _version, rest @ ..] => rest,
        _ => {
            return RouteLabels {
                verb: method.as_str().to_string(),
                resource: String::new(),
                subresource: String::new(),
            };
        }
    };
    // `namespaces/NS/RESOURCE/...` names a namespaced resource; `namespaces/NS` alone is
    // the namespace itself (and `namespaces/NS/status` its subresource).
    let rest = match rest {
        ["namespaces", _ns, resource, tail @ ..] if !matches!(*resource, "status" | "finalize") => {
            let mut v = vec![*resource];
            v.extend_from_slice(tail);
            v
        }
        other => other.to_vec(),
    };
    let resource = rest.first().copied().unwrap_or_default();
    let name = rest.get(1).copied();
    let subresource = rest.get(2).copied().unwrap_or_default();
    let watch = query.is_some_and(|q| q.split('&').any(|kv| kv == "watch=true" || kv == "watch=1"));
    let verb = match (method, name) {
        (&Method::GET, None) if watch => "WATCH",
        (&Method::GET, None) => "LIST",
        (&Method::GET, Some(_)) => "GET",
        (&Method::POST, _) => "POST",
        (&Method::PUT, _) => "PUT",
        (&Method::PATCH, _) => "PATCH",
        (&Method::DELETE, None) => "DELETECOLLECTION",
        (&Method::DELETE, Some(_)) => "DELETE",
        (other, _) => other.as_str(),
    };
    RouteLabels {
        verb: verb.to_string(),
        resource: resource.to_string(),
        subresource: subresource.to_string(),
    }
}

/// The middleware: times each request to its response head and counts it; a watch is
/// counted open until its response body is dropped.
pub async fn record(State(metrics): State<Arc<ApiMetrics>>, req: Request, next: Next) -> Response {
    let route = classify(req.method(), req.uri().path(), req.uri().query());
    let started = Instant::now();
    let watch = route.verb == "WATCH";
    let response = next.run(req).await;
    let seconds = started.elapsed().as_secs_f64();
    metrics.observe(route, response.status(), seconds);
    if !(watch && response.status().is_success()) {
        return response;
    }
    let open = OpenWatch::new(metrics.watches.clone());
    let (parts, body) = response.into_parts();
    let body = Body::new(http_body_util::BodyExt::map_frame(body, move |frame| {
        // The guard lives as long as the body does: moved into the closure.
        let _ = &open;
        frame
    }));
    Response::from_parts(parts, body)
}

/// Counts a watch open while it lives.
struct OpenWatch(Gauge);

impl OpenWatch {
    fn new(gauge: Gauge) -> OpenWatch {
        gauge.inc();
        OpenWatch(gauge)
    }
}

impl Drop for OpenWatch {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// `GET /metrics`.
pub fn scrape(metrics: &ApiMetrics, headers: &HeaderMap) -> Response {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let format = Format::negotiate(accept);
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, format.content_type())],
        metrics.encode(format),
    )
        .into_response()
}

/// Object counts and pods per node, read from the store at each scrape.
#[derive(Debug)]
struct StoreCollector(Arc<Store>);

impl Collector for StoreCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let mut family = encoder.encode_descriptor(
            "resil_lab_objects",
            "Objects in the store, by resource",
            None,
            MetricType::Gauge,
        )?;
        for (resource, n) in self.0.counts() {
            let labels = [("resource", resource)];
            ConstGauge::new(n as i64).encode(family.encode_family(&labels)?)?;
        }
        let mut per_node: std::collections::BTreeMap<String, i64> = Default::default();
        for pod in self.0.list("pods", None).items {
            let node = pod["spec"]["nodeName"].as_str().unwrap_or("").to_string();
            *per_node.entry(node).or_default() += 1;
        }
        let mut family = encoder.encode_descriptor(
            "resil_lab_node_pods",
            "Pods bound to each node (node \"\": not yet scheduled)",
            None,
            MetricType::Gauge,
        )?;
        for (node, n) in &per_node {
            let labels = [("node", node.as_str())];
            ConstGauge::new(*n).encode(family.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verb_resource(method: Method, path: &str, query: Option<&str>) -> (String, String, String) {
        let r = classify(&method, path, query);
        (r.verb, r.resource, r.subresource)
    }

    #[test]
    fn requests_are_named_as_the_api_server_names_them() {
        let cases = [
            (
                Method::GET,
                "/api/v1/namespaces/d/pods",
                None,
                ("LIST", "pods", ""),
            ),
            (
                Method::GET,
                "/api/v1/pods",
                Some("watch=true"),
                ("WATCH", "pods", ""),
            ),
            (
                Method::GET,
                "/api/v1/namespaces/d/pods/p1",
                None,
                ("GET", "pods", ""),
            ),
            (
                Method::GET,
                "/api/v1/namespaces/d/pods/p1/log",
                None,
                ("GET", "pods", "log"),
            ),
            (
                Method::PATCH,
                "/apis/apps/v1/namespaces/d/deployments/web/scale",
                None,
                ("PATCH", "deployments", "scale"),
            ),
            (
                Method::DELETE,
                "/api/v1/namespaces/d/pods",
                None,
                ("DELETECOLLECTION", "pods", ""),
            ),
            (
                Method::POST,
                "/api/v1/namespaces",
                None,
                ("POST", "namespaces", ""),
            ),
            (
                Method::GET,
                "/api/v1/namespaces/d",
                None,
                ("GET", "namespaces", ""),
            ),
            (
                Method::PUT,
                "/api/v1/namespaces/d/finalize",
                None,
                ("PUT", "namespaces", "finalize"),
            ),
            (Method::GET, "/version", None, ("GET", "", "")),
        ];
        for (method, path, query, (verb, resource, sub)) in cases {
            let got = verb_resource(method, path, query);
            assert_eq!(
                got,
                (verb.to_string(), resource.to_string(), sub.to_string()),
                "{path}"
            );
        }
    }
}
