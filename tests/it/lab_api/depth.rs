//! Deeply nested bodies and patch results: refused with a 422 naming the limit, before
//! they can overflow a stack or be saved in a form that no longer loads; whatever is
//! accepted reloads after a restart.

use serde_json::{Value, json};

use crate::support::{self, raw, start_api_only_lab};

const PODS: &str = "/api/v1/namespaces/default/pods";

/// `{"a":{"a":...{"a":1}}}` with `levels` objects.
fn nested(levels: usize) -> Value {
    let mut v = json!(1);
    for _ in 0..levels {
        v = json!({ "a": v });
    }
    v
}

/// A pod whose whole body is `depth` levels deep (root, spec, then `spec.x`).
fn deep_pod(name: &str, depth: usize) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"containers": [{"name": "web", "image": "resil-demo:1"}], "x": nested(depth - 2)},
    })
}

fn assert_too_deep(code: u16, body: &Value) {
    assert_eq!(code, 422, "{body}");
    assert_eq!(body["reason"], "Invalid", "{body}");
    let message = body["message"].as_str().unwrap_or("");
    assert!(message.contains("64 levels"), "{message}");
}

#[tokio::test]
async fn a_body_nested_125_levels_is_refused_with_422_by_every_write_and_the_state_reloads() {
    let (lab, client, dir) = start_api_only_lab().await;
    let deep = deep_pod("deep", 125);
    let (code, _, body) = raw(&client, "POST", PODS, None, deep.to_string().into_bytes()).await;
    assert_too_deep(code, &body);
    let field = body["details"]["causes"][0]["field"].as_str().unwrap();
    assert!(
        field.starts_with("spec.x.a.a"),
        "the cause names the field: {field}"
    );
    // YAML is JSON too, for the YAML parser.
    let (code, _, body) = raw(
        &client,
        "POST",
        PODS,
        Some("application/yaml"),
        deep.to_string().into_bytes(),
    )
    .await;
    assert_too_deep(code, &body);

    let (code, _, _) = raw(
        &client,
        "POST",
        PODS,
        None,
        deep_pod("web", 5).to_string().into(),
    )
    .await;
    assert_eq!(code, 201);
    let web = format!("{PODS}/web");
    let put = deep_pod("web", 125).to_string().into_bytes();
    let (code, _, body) = raw(&client, "PUT", &web, None, put).await;
    assert_too_deep(code, &body);
    let patch = json!({"spec": {"x": nested(123)}}).to_string();
    for ct in [
        "application/merge-patch+json",
        "application/strategic-merge-patch+json",
    ] {
        let (code, _, body) = raw(&client, "PATCH", &web, Some(ct), patch.clone().into()).await;
        assert_too_deep(code, &body);
    }
    let apply = deep_pod("web", 125).to_string().into_bytes();
    let (code, _, body) = raw(
        &client,
        "PATCH",
        &format!("{web}?fieldManager=t"),
        Some("application/apply-patch+yaml"),
        apply,
    )
    .await;
    assert_too_deep(code, &body);
    let add = json!([{"op": "add", "path": "/spec/x", "value": nested(123)}]).to_string();
    let (code, _, body) = raw(
        &client,
        "PATCH",
        &web,
        Some("application/json-patch+json"),
        add.into(),
    )
    .await;
    assert_too_deep(code, &body);

    lab.shutdown().await;
    let lab = support::start_api_only_lab_in(&dir).await;
    let client = support::client_for(&lab).await;
    let (code, _, body) = raw(&client, "GET", &web, None, vec![]).await;
    assert_eq!((code, &body["spec"]["x"]), (200, &nested(3)));
    lab.shutdown().await;
}

#[tokio::test]
async fn a_json_patch_that_doubles_the_depth_by_copying_is_refused_and_the_lab_keeps_serving() {
    let (lab, client, dir) = start_api_only_lab().await;
    let (code, _, _) = raw(
        &client,
        "POST",
        PODS,
        None,
        deep_pod("web", 42).to_string().into(),
    )
    .await;
    assert_eq!(code, 201);
    // Each operation copies `spec.x` over its own innermost value: the depth doubles per
    // operation, past 160,000 levels after twelve.
    let ops: Vec<Value> = (0..12)
        .map(|k| {
            let innermost = format!("/spec/x{}", "/a".repeat(40 << k));
            json!({"op": "copy", "from": "/spec/x", "path": innermost})
        })
        .collect();
    let web = format!("{PODS}/web");
    let (code, _, body) = raw(
        &client,
        "PATCH",
        &web,
        Some("application/json-patch+json"),
        Value::from(ops).to_string().into(),
    )
    .await;
    assert_too_deep(code, &body);
    let field = body["details"]["causes"][0]["field"].as_str().unwrap();
    assert!(field.starts_with("spec.x.a.a"), "{field}");

    let (code, _, body) = raw(&client, "GET", &web, None, vec![]).await;
    assert_eq!((code, &body["spec"]["x"]), (200, &nested(40)));
    lab.shutdown().await;
    let lab = support::start_api_only_lab_in(&dir).await;
    let client = support::client_for(&lab).await;
    let (code, _, _) = raw(&client, "GET", &web, None, vec![]).await;
    assert_eq!(code, 200);
    lab.shutdown().await;
}

#[tokio::test]
async fn a_body_nested_64_levels_is_accepted_and_reloads() {
    let (lab, client, dir) = start_api_only_lab().await;
    let body = deep_pod("web", 64);
    let (code, _, created) = raw(&client, "POST", PODS, None, body.to_string().into()).await;
    assert_eq!(code, 201, "{created}");
    lab.shutdown().await;
    let lab = support::start_api_only_lab_in(&dir).await;
    let client = support::client_for(&lab).await;
    let (code, _, again) = raw(&client, "GET", &format!("{PODS}/web"), None, vec![]).await;
    assert_eq!((code, &again["spec"]["x"]), (200, &body["spec"]["x"]));
    lab.shutdown().await;
}
