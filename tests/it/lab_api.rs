//! The lab's Kubernetes API, exercised the way clients use it: kube-rs typed APIs and
//! watchers over HTTPS with the lab's kubeconfig, raw requests for error paths, restarts
//! on the same state directory, and kubectl. Shared object builders live here.

mod connections;
mod crud;
mod depth;
mod errors;
mod hostile;
pub(crate) mod kubectl;
mod perf;
mod persistence;
mod properties;
mod protobuf;
mod watch;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use serde_json::{Value, json};

pub fn pod(name: &str, labels: Value) -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": labels},
        "spec": {"containers": [{"name": "web", "image": "resil-demo:1"}]},
    }))
    .unwrap()
}

pub fn deployment(name: &str, replicas: i32) -> Deployment {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "web", "image": "resil-demo:1"}]},
            },
        },
    }))
    .unwrap()
}

pub fn api_error(err: kube::Error) -> kube::core::Status {
    match err {
        kube::Error::Api(s) => *s,
        other => panic!("expected an API error, got {other:?}"),
    }
}
