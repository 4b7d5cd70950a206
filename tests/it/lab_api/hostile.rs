//! Hostile values in otherwise ordinary requests: container names that are paths, a pod
//! port a client tries to choose, watch timeouts that overflow, grace periods that do.

use std::time::Duration;

use http_body_util::BodyExt;
use resil_lab::store::{WriteMode, kinds};
use serde_json::{Value, json};

use crate::support::{raw, start_api_only_lab};

const PODS: &str = "/api/v1/namespaces/default/pods";
const PORT: &str = "resil.dev/port";

fn pod_named(container: &str) -> Vec<u8> {
    json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web"},
        "spec": {"containers": [{"name": container, "image": "resil-demo:1"}]},
    })
    .to_string()
    .into_bytes()
}

#[tokio::test]
async fn a_pod_with_a_container_named_like_a_path_is_refused_with_422() {
    let (lab, client, _dir) = start_api_only_lab().await;
    for bad in ["../../../../../ESCAPED", "a/b", ".."] {
        let (code, _, body) = raw(&client, "POST", PODS, None, pod_named(bad)).await;
        assert_eq!(
            (code, body["reason"].as_str()),
            (422, Some("Invalid")),
            "{body}"
        );
        let cause = &body["details"]["causes"][0];
        assert_eq!(cause["field"], "spec.containers[0].name", "{body}");
        assert_eq!(cause["reason"], "FieldValueInvalid", "{body}");
    }
    let (code, _, _) = raw(&client, "POST", PODS, None, pod_named("web")).await;
    assert_eq!(code, 201);
    // A patch cannot rename it into a path either.
    let patch = json!({"spec": {"containers": [{"name": "../x", "image": "i"}]}});
    let (code, _, body) = raw(
        &client,
        "PATCH",
        &format!("{PODS}/web"),
        Some("application/merge-patch+json"),
        patch.to_string().into(),
    )
    .await;
    assert_eq!(code, 422, "{body}");
    lab.shutdown().await;
}

fn port_of(pod: &Value) -> Option<&str> {
    pod["metadata"]["annotations"][PORT].as_str()
}

#[tokio::test]
async fn a_client_cannot_choose_the_port_the_pod_proxy_connects_to() {
    let (lab, client, _dir) = start_api_only_lab().await;
    let body = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web", "annotations": {PORT: "22", "keep": "me"}},
        "spec": {"containers": [{"name": "web", "image": "resil-demo:1",
                                 "ports": [{"containerPort": 8080}]}]},
    });
    let (code, _, created) = raw(&client, "POST", PODS, None, body.to_string().into()).await;
    assert_eq!(code, 201);
    assert_eq!(port_of(&created), None, "{created}");
    assert_eq!(created["metadata"]["annotations"]["keep"], "me");

    // The kubelet publishes the real port (straight into the store, as it does).
    let pods = kinds::stored("pods").unwrap();
    let mut live = lab.store().get("pods", "default", "web").unwrap();
    live["metadata"]["annotations"][PORT] = json!("41234");
    lab.store()
        .update(pods, "default", "web", live, WriteMode::Main)
        .unwrap();

    let web = format!("{PODS}/web");
    let writes: [(&str, Option<&str>, Value); 4] = [
        (
            "PATCH",
            Some("application/merge-patch+json"),
            json!({"metadata": {"annotations": {PORT: "22"}}}),
        ),
        (
            "PATCH",
            Some("application/strategic-merge-patch+json"),
            json!({"metadata": {"annotations": {PORT: null}}}),
        ),
        (
            "PATCH",
            Some("application/json-patch+json"),
            json!([{"op": "remove", "path": "/metadata/annotations"}]),
        ),
        ("PUT", None, body.clone()),
    ];
    for (method, ct, write) in writes {
        let (code, _, after) = raw(&client, method, &web, ct, write.to_string().into()).await;
        assert_eq!(code, 200, "{method} {ct:?}: {after}");
        assert_eq!(port_of(&after), Some("41234"), "{method} {ct:?}: {after}");
    }

    // Nor through a Deployment's pod template.
    let deployment = json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
        "spec": {"selector": {"matchLabels": {"app": "d"}}, "template": {
            "metadata": {"labels": {"app": "d"}, "annotations": {PORT: "22"}},
            "spec": {"containers": [{"name": "web", "image": "resil-demo:1"}]}}},
    });
    let (code, _, created) = raw(
        &client,
        "POST",
        "/apis/apps/v1/namespaces/default/deployments",
        None,
        deployment.to_string().into(),
    )
    .await;
    assert_eq!(code, 201, "{created}");
    assert_eq!(
        created["spec"]["template"]["metadata"]["annotations"][PORT],
        Value::Null,
        "{created}"
    );
    lab.shutdown().await;
}

#[tokio::test]
async fn a_watch_with_an_overflowing_timeout_is_served_and_nonsense_is_400() {
    let (lab, client, _dir) = start_api_only_lab().await;
    let base = "/api/v1/namespaces?watch=true&resourceVersion=0&timeoutSeconds=";
    let (code, _, body) = raw(&client, "GET", &format!("{base}soon"), None, vec![]).await;
    assert_eq!((code, body["reason"].as_str()), (400, Some("BadRequest")));

    let req = axum::http::Request::builder()
        .uri(format!("{base}18446744073709551615"))
        .body(kube::client::Body::empty())
        .unwrap();
    let res = client.send(req).await.unwrap();
    assert_eq!(res.status(), 200);
    let mut body = res.into_body();
    // The stream's first line is the synthetic ADDED for namespace `default`: the watch
    // task is alive (it used to panic computing its deadline, ending the stream empty).
    let first = tokio::time::timeout(Duration::from_secs(5), body.frame())
        .await
        .expect("a first event within 5 s")
        .expect("the stream has a first chunk")
        .unwrap()
        .into_data()
        .unwrap();
    let line: Value = serde_json::from_slice(first.trim_ascii_end()).unwrap();
    assert_eq!(line["type"], "ADDED", "{line}");
    lab.shutdown().await;
}

#[tokio::test]
async fn a_delete_with_an_overflowing_grace_period_is_answered() {
    let (lab, client, _dir) = start_api_only_lab().await;
    lab.store().set_pod_terminator(true);
    let (code, _, _) = raw(&client, "POST", PODS, None, pod_named("web")).await;
    assert_eq!(code, 201);
    let (code, _, body) = raw(
        &client,
        "DELETE",
        &format!("{PODS}/web?gracePeriodSeconds=9223372036854775807"),
        None,
        vec![],
    )
    .await;
    assert_eq!(code, 200, "{body}");
    let at = body["metadata"]["deletionTimestamp"].as_str().unwrap();
    assert!(chrono::DateTime::parse_from_rfc3339(at).is_ok(), "{at}");
    lab.shutdown().await;
}
