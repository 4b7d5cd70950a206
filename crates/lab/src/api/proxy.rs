//! The pod proxy: `/api/v1/namespaces/{ns}/pods/{name}[:{port}]/proxy[/{path}]` forwards
//! any request — method, path, query string, headers and body — to the pod, and passes its
//! answer back (status, headers and body, streamed), as the upstream API server's
//! `pods/proxy` subresource does (kubernetes `pkg/registry/core/pod/rest/subresources.go`,
//! `ResourceLocation` in `pkg/registry/core/pod/strategy.go`). This is how
//! `kubectl get --raw .../pods/NAME:8080/proxy/healthz` and the chaos commands reach a
//! pod's own endpoints.
//!
//! The name is `name`, `name:port` or `scheme:name:port` (upstream `SplitSchemeNamePort`);
//! without a port the pod's first declared container port is meant. Lab-specific: every
//! pod is a process on 127.0.0.1 with a port of its own, so the container port named in
//! the URL (which must be one the pod spec declares) is mapped to that real port. The
//! real port is the pod annotation `resil.dev/port`, which only the kubelet writes: the
//! API ignores every client write to it (`handlers::keep_server_fields`), so a client
//! cannot point the proxy at another loopback port. Errors are Status
//! bodies like upstream's: a malformed name → 400 BadRequest; no such pod → 404 NotFound;
//! a pod with no process to reach (pending, finished, no port yet), a port its container
//! does not declare, or a connection that fails → 503 ServiceUnavailable "error trying to
//! reach service: ...". Not served: `https` to pods (the lab's pods speak plain HTTP) and
//! connection upgrades (exec, attach and port-forward are other subresources).
//!
//! Registered by the router in `mod.rs`, behind authentication; the lab's bearer token is
//! not passed on to the pod (upstream drops `Authorization` once it has authenticated).

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use k8s_openapi::api::core::v1::Pod;

use super::App;
use super::status::ApiError;
use crate::controllers::pods::lab_port;
use crate::kubelet::probe::error_chain;
use crate::store::kinds;

/// The route of the proxy subresource (axum path syntax).
const ROUTE: &str = "/api/v1/namespaces/{namespace}/pods/{pod}/proxy";
/// Longest wait for the pod to accept the connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// The proxy's routes, for the router to merge: with and without a path after `proxy`.
pub fn routes() -> Router<Arc<App>> {
    Router::new()
        .route(ROUTE, any(forward))
        .route(&format!("{ROUTE}/"), any(forward))
        .route(&format!("{ROUTE}/{{*path}}"), any(forward))
}

async fn forward(State(app): State<Arc<App>>, req: Request) -> Response {
    match proxy(&app, req).await {
        Ok(res) => res,
        Err(e) => e.into_response(),
    }
}

async fn proxy(app: &App, req: Request) -> Result<Response, ApiError> {
    let (parts, body) = req.into_parts();
    let path = ProxyPath::parse(parts.uri.path())?;
    let id = PodId::parse(&path.id)?;
    let pods = kinds::stored("pods").ok_or_else(ApiError::no_route)?;
    let object = app
        .store
        .get("pods", &path.namespace, &id.name)
        .ok_or_else(|| ApiError::not_found(pods, &id.name))?;
    let pod: Pod = serde_json::from_value(object)
        .map_err(|e| internal(format!("pod {:?} is unreadable: {e}", id.name)))?;
    let port = real_port(&pod, &id)?;
    // The pod's own address: its node's loopback address where the OS has one per node.
    let ip = pod
        .status
        .as_ref()
        .and_then(|s| s.pod_ip.clone())
        .unwrap_or_else(|| "127.0.0.1".to_string());

    let mut uri = format!("http://{ip}:{port}{}", path.rest);
    if let Some(q) = parts.uri.query() {
        uri.push('?');
        uri.push_str(q);
    }
    let mut outbound = axum::http::Request::builder()
        .method(parts.method)
        .uri(&uri)
        .body(body)
        .map_err(|e| ApiError::bad_request(format!("cannot forward to {uri}: {e}")))?;
    *outbound.headers_mut() = forwarded_headers(&parts.headers);
    outbound.headers_mut().insert(
        header::HOST,
        HeaderValue::from_str(&format!("{ip}:{port}")).map_err(|e| internal(e.to_string()))?,
    );
    let res = client()
        .request(outbound)
        .await
        .map_err(|e| unreachable(format!("dial tcp {ip}:{port}: {}", error_chain(&e))))?;
    let (mut head, incoming) = res.into_parts();
    head.headers = forwarded_headers(&head.headers);
    Ok(Response::from_parts(head, Body::new(incoming)))
}

/// A client for one forwarded request. No connection pool: pod ports come and go with
/// their processes (a pooled connection could outlive its pod and a port be reused by
/// another), and proxied requests are rare enough that a fresh connection costs nothing.
fn client() -> Client<HttpConnector, Body> {
    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
    connector.set_nodelay(true);
    Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(0)
        .build(connector)
}

/// The parts of a proxy URL.
#[derive(Debug, PartialEq)]
struct ProxyPath {
    namespace: String,
    /// `name`, `name:port` or `scheme:name:port`.
    id: String,
    /// The path to request from the pod, starting with `/` (still percent-encoded).
    rest: String,
}

impl ProxyPath {
    fn parse(path: &str) -> Result<ProxyPath, ApiError> {
        let parsed = (|| {
            let rest = path.strip_prefix("/api/v1/namespaces/")?;
            let (namespace, rest) = rest.split_once('/')?;
            let rest = rest.strip_prefix("pods/")?;
            let (id, rest) = rest.split_once('/')?;
            let rest = rest.strip_prefix("proxy")?;
            if !(rest.is_empty() || rest.starts_with('/')) {
                return None;
            }
            Some(ProxyPath {
                namespace: namespace.to_string(),
                // Clients may escape the colons of `name:port`.
                id: id.replace("%3A", ":").replace("%3a", ":"),
                rest: if rest.is_empty() { "/" } else { rest }.to_string(),
            })
        })();
        parsed.ok_or_else(ApiError::no_route)
    }
}

/// A pod named with an optional scheme and port.
#[derive(Debug, PartialEq)]
struct PodId {
    scheme: String,
    name: String,
    port: Option<String>,
}

impl PodId {
    /// Upstream `SplitSchemeNamePort`: `name`, `name:port` or `scheme:name:port`, with
    /// scheme `http`, `https` or empty and a non-empty name.
    fn parse(id: &str) -> Result<PodId, ApiError> {
        let parts: Vec<&str> = id.split(':').collect();
        let (scheme, name, port) = match parts.as_slice() {
            [name] => ("", *name, ""),
            [name, port] => ("", *name, *port),
            [scheme, name, port] => (*scheme, *name, *port),
            _ => ("", "", ""),
        };
        if name.is_empty() || !matches!(scheme, "" | "http" | "https") {
            return Err(ApiError::bad_request(format!("invalid pod request {id:?}")));
        }
        Ok(PodId {
            scheme: scheme.to_string(),
            name: name.to_string(),
            port: (!port.is_empty()).then(|| port.to_string()),
        })
    }
}

/// The 127.0.0.1 port that stands for the container port `id` names.
fn real_port(pod: &Pod, id: &PodId) -> Result<u16, ApiError> {
    if id.scheme == "https" {
        return Err(unreachable(
            "the lab's pods serve plain HTTP, not https".to_string(),
        ));
    }
    let phase = pod
        .status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("Pending");
    let real = match lab_port(pod) {
        Some(p) if phase == "Running" => p,
        _ => {
            return Err(unreachable(format!(
                "pod {:?} has no running process to connect to (phase {phase})",
                id.name
            )));
        }
    };
    let containers = pod.spec.as_ref().map(|s| &s.containers[..]).unwrap_or(&[]);
    // The lab runs the first container as the pod's one process; its listener stands
    // for every port that container declares.
    let first = containers
        .first()
        .and_then(|c| c.ports.clone())
        .unwrap_or_default();
    let any_declared = containers
        .iter()
        .any(|c| c.ports.as_ref().is_some_and(|p| !p.is_empty()));
    let Some(asked) = &id.port else {
        // Upstream: no port means the first declared one; none declared, the pod's IP.
        return Ok(real);
    };
    if !any_declared
        || first
            .iter()
            .any(|p| p.container_port.to_string() == *asked || p.name.as_deref() == Some(asked))
    {
        return Ok(real);
    }
    let declared: Vec<String> = first.iter().map(|p| p.container_port.to_string()).collect();
    Err(unreachable(format!(
        "dial tcp 127.0.0.1:{asked}: connection refused (pod {:?} listens on container \
         port {})",
        id.name,
        if declared.is_empty() {
            "none".to_string()
        } else {
            declared.join(", ")
        }
    )))
}

/// Headers minus the hop-by-hop ones (and those the `Connection` header names), minus
/// `Host` and the credentials meant for the API server.
fn forwarded_headers(headers: &HeaderMap) -> HeaderMap {
    const HOP_BY_HOP: &[&str] = &[
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "authorization",
    ];
    let named: Vec<String> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|v| v.trim().to_ascii_lowercase())
        .collect();
    let mut out = HeaderMap::new();
    for (name, value) in headers {
        let n = name.as_str();
        if !HOP_BY_HOP.contains(&n) && !named.iter().any(|c| c == n) {
            out.append(name.clone(), value.clone());
        }
    }
    out
}

/// 503 ServiceUnavailable, worded as upstream's proxy transport words it.
fn unreachable(why: String) -> ApiError {
    ApiError {
        code: StatusCode::SERVICE_UNAVAILABLE,
        reason: "ServiceUnavailable",
        message: format!("error trying to reach service: {why}"),
        details: None,
    }
}

fn internal(message: String) -> ApiError {
    ApiError {
        code: StatusCode::INTERNAL_SERVER_ERROR,
        reason: "InternalError",
        message,
        details: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(phase: &str, port: Option<&str>, ports: serde_json::Value) -> Pod {
        let mut p = json!({
            "metadata": {"name": "web-1", "namespace": "ns"},
            "spec": {"containers": [{"name": "web", "ports": ports}]},
            "status": {"phase": phase},
        });
        if let Some(port) = port {
            p["metadata"]["annotations"] = json!({"resil.dev/port": port});
        }
        serde_json::from_value(p).unwrap()
    }

    fn id(text: &str) -> PodId {
        PodId::parse(text).unwrap()
    }

    #[test]
    fn proxy_paths_split_into_namespace_pod_and_the_pods_own_path() {
        let p =
            ProxyPath::parse("/api/v1/namespaces/ns/pods/web-1:8080/proxy/admin/faults").unwrap();
        assert_eq!(
            p,
            ProxyPath {
                namespace: "ns".into(),
                id: "web-1:8080".into(),
                rest: "/admin/faults".into()
            }
        );
        let bare = ProxyPath::parse("/api/v1/namespaces/ns/pods/web-1%3A8080/proxy").unwrap();
        assert_eq!((bare.id.as_str(), bare.rest.as_str()), ("web-1:8080", "/"));
        assert!(ProxyPath::parse("/api/v1/namespaces/ns/pods/web-1/proxyx").is_err());
    }

    #[test]
    fn pod_names_take_an_optional_scheme_and_port_as_upstream() {
        assert_eq!(id("web-1").port, None);
        assert_eq!(id("web-1:8080").port.as_deref(), Some("8080"));
        assert_eq!(id("http:web-1:8080").scheme, "http");
        for bad in [":8080", "ftp:web-1:80", "a:b:c:d", ""] {
            let e = PodId::parse(bad).unwrap_err();
            assert_eq!(
                (e.code, e.reason),
                (StatusCode::BAD_REQUEST, "BadRequest"),
                "{bad}"
            );
        }
    }

    #[test]
    fn the_container_port_maps_to_the_pods_real_port() {
        let ports = json!([{"name": "http", "containerPort": 8080}]);
        let running = pod("Running", Some("41234"), ports.clone());
        assert_eq!(real_port(&running, &id("web-1:8080")).unwrap(), 41234);
        assert_eq!(real_port(&running, &id("web-1:http")).unwrap(), 41234);
        assert_eq!(real_port(&running, &id("web-1")).unwrap(), 41234);
        let wrong = real_port(&running, &id("web-1:9090")).unwrap_err();
        assert_eq!(
            (wrong.code, wrong.reason),
            (StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable")
        );
        assert!(wrong.message.contains("8080"), "{}", wrong.message);
        let undeclared = pod("Running", Some("41234"), json!([]));
        assert_eq!(real_port(&undeclared, &id("web-1:80")).unwrap(), 41234);
    }

    #[test]
    fn a_pod_without_a_running_process_is_unavailable() {
        let ports = json!([{"containerPort": 8080}]);
        for p in [
            pod("Pending", None, ports.clone()),
            pod("Failed", Some("41234"), ports.clone()),
        ] {
            let e = real_port(&p, &id("web-1:8080")).unwrap_err();
            assert_eq!(e.code, StatusCode::SERVICE_UNAVAILABLE);
            assert!(e.message.starts_with("error trying to reach service"));
        }
        let tls = real_port(
            &pod("Running", Some("41234"), ports),
            &id("https:web-1:8080"),
        );
        assert_eq!(tls.unwrap_err().code, StatusCode::SERVICE_UNAVAILABLE);
    }

    #[test]
    fn hop_by_hop_headers_and_credentials_stay_behind() {
        let mut h = HeaderMap::new();
        h.insert(
            "connection",
            HeaderValue::from_static("keep-alive, x-private"),
        );
        h.insert("x-private", HeaderValue::from_static("1"));
        h.insert("authorization", HeaderValue::from_static("Bearer secret"));
        h.insert("content-type", HeaderValue::from_static("application/json"));
        h.insert("transfer-encoding", HeaderValue::from_static("chunked"));
        let out = forwarded_headers(&h);
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(out["content-type"], "application/json");
    }
}
