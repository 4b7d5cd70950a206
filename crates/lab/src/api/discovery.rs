//! Discovery documents built from the kinds table: `/version`, `/api` (APIVersions),
//! `/apis` (APIGroupList), `/api/v1` and `/apis/{group}/{version}` (APIResourceList), and
//! the minimal `/openapi/v3` and `/openapi/v2` answers that let `kubectl apply` proceed.
//! Aggregated-discovery requests get the legacy documents, which kubectl accepts as a
//! fallback.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::status::json_response;
use crate::store::kinds::{self, KINDS, Kind};

/// `/version` with every field k8s-openapi's `Info` requires.
pub fn version() -> Response {
    json_response(
        StatusCode::OK,
        &json!({
            "major": "1",
            "minor": "32",
            "gitVersion": concat!("v1.32.0-resil.", env!("CARGO_PKG_VERSION")),
            "gitCommit": "0000000000000000000000000000000000000000",
            "gitTreeState": "clean",
            "buildDate": "2026-01-01T00:00:00Z",
            "goVersion": "go1.23.0",
            "compiler": "gc",
            "platform": format!("{}/{}", std::env::consts::OS, go_arch()),
        }),
    )
}

fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// `/api`.
pub fn core_versions() -> Response {
    json_response(
        StatusCode::OK,
        &json!({
            "kind": "APIVersions",
            "apiVersion": "v1",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}],
        }),
    )
}

/// `/apis`.
pub fn groups() -> Response {
    let groups: Vec<Value> = kinds::group_versions()
        .into_iter()
        .filter(|(g, _)| !g.is_empty())
        .map(|(g, v)| {
            let gv = json!({"groupVersion": format!("{g}/{v}"), "version": v});
            json!({"name": g, "versions": [gv.clone()], "preferredVersion": gv})
        })
        .collect();
    json_response(
        StatusCode::OK,
        &json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}),
    )
}

/// `/api/v1` or `/apis/{group}/{version}`; None if not served.
pub fn resources(group: &str, version: &str) -> Option<Response> {
    let served: Vec<&Kind> = KINDS
        .iter()
        .filter(|k| k.group == group && k.version == version)
        .collect();
    if served.is_empty() {
        return None;
    }
    let mut list = Vec::new();
    for k in served {
        let verbs: &[&str] = if k.stored {
            &[
                "create",
                "delete",
                "deletecollection",
                "get",
                "list",
                "patch",
                "update",
                "watch",
            ]
        } else {
            &["get", "list"]
        };
        let mut r = json!({
            "name": k.plural,
            "singularName": k.singular,
            "namespaced": k.namespaced,
            "kind": k.kind,
            "verbs": verbs,
        });
        if !k.short_names.is_empty() {
            r["shortNames"] = json!(k.short_names);
        }
        if matches!(
            k.plural,
            "pods" | "services" | "deployments" | "horizontalpodautoscalers" | "replicasets"
        ) && k.stored
        {
            r["categories"] = json!(["all"]);
        }
        list.push(r);
        if k.status {
            list.push(json!({
                "name": format!("{}/status", k.plural),
                "singularName": "",
                "namespaced": k.namespaced,
                "kind": k.kind,
                "verbs": ["get", "patch", "update"],
            }));
        }
        if k.plural == "pods" && k.stored {
            list.push(json!({
                "name": "pods/log",
                "singularName": "",
                "namespaced": true,
                "kind": "Pod",
                "verbs": ["get"],
            }));
            // Served by `eviction.rs`.
            list.push(
                json!({"name": "pods/binding", "singularName": "", "namespaced": true,
                             "kind": "Binding", "verbs": ["create"]}),
            );
            list.push(
                json!({"name": "pods/eviction", "singularName": "", "namespaced": true,
                             "group": "policy", "version": "v1", "kind": "Eviction",
                             "verbs": ["create"]}),
            );
            // Served by `proxy.rs`; upstream lists the connect verbs this way.
            list.push(json!({
                "name": "pods/proxy",
                "singularName": "",
                "namespaced": true,
                "kind": "PodProxyOptions",
                "verbs": ["create", "delete", "get", "patch", "update"],
            }));
        }
        if matches!(k.plural, "deployments" | "replicasets") {
            list.push(json!({
                "name": format!("{}/scale", k.plural),
                "singularName": "",
                "namespaced": true,
                "group": "autoscaling",
                "version": "v1",
                "kind": "Scale",
                "verbs": ["get", "patch", "update"],
            }));
        }
    }
    let group_version = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(json_response(
        StatusCode::OK,
        &json!({
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": group_version,
            "resources": list,
        }),
    ))
}

/// `/openapi/v3`: an empty path list (kubectl then skips client-side schema checks).
pub fn openapi_v3() -> Response {
    json_response(StatusCode::OK, &json!({"paths": {}}))
}

/// `/openapi/v2`: an empty body; kubectl needs a 200 with a parseable media type here.
pub fn openapi_v2() -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/octet-stream")],
        Vec::<u8>::new(),
    )
        .into_response()
}
