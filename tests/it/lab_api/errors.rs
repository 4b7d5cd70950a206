//! Status errors: 401, 400, 404, 405, 409, 413, 415, 422 — never a panic or a hang.

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, PostParams};
use serde_json::json;

use super::{api_error, pod};
use crate::support::{self, raw, start_api_only_lab};

#[tokio::test]
async fn requests_without_the_token_get_a_401_status() {
    let (lab, _client, _dir) = start_api_only_lab().await;
    let mut config = support::config_for(&lab).await;
    config.auth_info.token = None;
    let anonymous = kube::Client::try_from(config).unwrap();
    let (code, ct, body) = raw(&anonymous, "GET", "/api/v1/namespaces", None, vec![]).await;
    assert_eq!(code, 401);
    assert_eq!(ct, "application/json");
    assert_eq!(body["kind"], "Status");
    assert_eq!(body["reason"], "Unauthorized");
    lab.shutdown().await;
}

#[tokio::test]
async fn stale_replace_is_a_409_conflict_and_taken_name_is_already_exists() {
    let (lab, client, _dir) = start_api_only_lab().await;
    let pods: Api<Pod> = Api::default_namespaced(client);
    let pp = PostParams::default();
    let first = pods.create(&pp, &pod("web-1", json!({}))).await.unwrap();
    let err = api_error(
        pods.create(&pp, &pod("web-1", json!({})))
            .await
            .unwrap_err(),
    );
    assert_eq!((err.code, err.reason.as_str()), (409, "AlreadyExists"));

    let mut fresh = first.clone();
    fresh.metadata.labels = Some([("v".to_string(), "1".to_string())].into());
    pods.replace("web-1", &pp, &fresh).await.unwrap();
    let mut stale = first;
    stale.metadata.labels = Some([("v".to_string(), "2".to_string())].into());
    let err = api_error(pods.replace("web-1", &pp, &stale).await.unwrap_err());
    assert_eq!((err.code, err.reason.as_str()), (409, "Conflict"));

    let err = api_error(pods.get("nope").await.unwrap_err());
    assert_eq!((err.code, err.reason.as_str()), (404, "NotFound"));
    assert!(pods.get_opt("nope").await.unwrap().is_none());
    lab.shutdown().await;
}

#[tokio::test]
async fn bad_requests_get_status_errors_not_panics() {
    let (lab, client, _dir) = start_api_only_lab().await;
    let pods = "/api/v1/namespaces/default/pods";
    let (code, ct, body) = raw(
        &client,
        "POST",
        pods,
        Some("application/json"),
        b"{not json".to_vec(),
    )
    .await;
    assert_eq!(
        (code, ct.as_str(), body["reason"].as_str()),
        (400, "application/json", Some("BadRequest"))
    );
    let (code, _, body) = raw(
        &client,
        "POST",
        pods,
        Some("application/yaml"),
        b"a: [1, 2\n  b".to_vec(),
    )
    .await;
    assert_eq!((code, body["kind"].as_str()), (400, Some("Status")));
    let (code, _, body) = raw(
        &client,
        "GET",
        "/apis/apps/v1/namespaces/default/widgets",
        None,
        vec![],
    )
    .await;
    assert_eq!((code, body["reason"].as_str()), (404, Some("NotFound")));
    let (code, _, body) = raw(
        &client,
        "PATCH",
        &format!("{pods}/x"),
        Some("text/plain"),
        b"{}".to_vec(),
    )
    .await;
    assert_eq!(
        (code, body["reason"].as_str()),
        (415, Some("UnsupportedMediaType"))
    );
    let (code, _, body) = raw(
        &client,
        "PUT",
        pods,
        Some("application/json"),
        b"{}".to_vec(),
    )
    .await;
    assert_eq!(
        (code, body["reason"].as_str()),
        (405, Some("MethodNotAllowed"))
    );
    let big = vec![b' '; 3 * 1024 * 1024 + 10];
    let (code, _, body) = raw(&client, "POST", pods, Some("application/json"), big).await;
    assert_eq!(
        (code, body["reason"].as_str()),
        (413, Some("RequestEntityTooLarge"))
    );
    let invalid = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "Bad_Name"}, "spec": {"containers": [{"name": "a"}]}});
    let (code, _, body) = raw(
        &client,
        "POST",
        pods,
        Some("application/json"),
        invalid.to_string().into_bytes(),
    )
    .await;
    assert_eq!((code, body["reason"].as_str()), (422, Some("Invalid")));
    let fields: Vec<&str> = body["details"]["causes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["field"].as_str().unwrap())
        .collect();
    assert!(fields.contains(&"spec.containers[0].image"), "{body}");
    // The connection still serves after all of that.
    let (code, _, _) = raw(&client, "GET", pods, None, vec![]).await;
    assert_eq!(code, 200);
    lab.shutdown().await;
}

#[tokio::test]
async fn every_error_answer_is_a_json_status() {
    let (lab, client, _dir) = start_api_only_lab().await;
    for (method, path) in [
        ("POST", "/version"),
        ("DELETE", "/apis"),
        ("GET", "/nothing/here"),
        ("GET", "/api/v2"),
    ] {
        let (code, ct, body) = raw(&client, method, path, None, vec![]).await;
        assert!(code >= 400, "{method} {path}: {code}");
        assert_eq!(ct, "application/json", "{method} {path}");
        assert_eq!(body["kind"], "Status", "{method} {path}: {body}");
    }
    lab.shutdown().await;
}

#[tokio::test]
async fn concurrent_read_modify_write_loses_no_update() {
    let (lab, client, _dir) = start_api_only_lab().await;
    let pods: Api<Pod> = Api::default_namespaced(client);
    pods.create(&PostParams::default(), &pod("counter", json!({"n": "0"})))
        .await
        .unwrap();
    let mut writers = Vec::new();
    for _ in 0..4 {
        let pods = pods.clone();
        writers.push(tokio::spawn(async move {
            let mut done = 0;
            let mut attempts = 0;
            while done < 10 && attempts < 500 {
                attempts += 1;
                let mut p = pods.get("counter").await.unwrap();
                let labels = p.metadata.labels.get_or_insert_with(Default::default);
                let n: u32 = labels["n"].parse().unwrap();
                labels.insert("n".into(), (n + 1).to_string());
                match pods.replace("counter", &PostParams::default(), &p).await {
                    Ok(_) => done += 1,
                    Err(kube::Error::Api(s)) if s.code == 409 => continue,
                    Err(e) => panic!("{e}"),
                }
            }
            done
        }));
    }
    let mut total = 0;
    for w in writers {
        total += w.await.unwrap();
    }
    let p = pods.get("counter").await.unwrap();
    assert_eq!(
        p.metadata.labels.unwrap()["n"],
        total.to_string(),
        "every successful write counted once"
    );
    assert_eq!(total, 40);
    lab.shutdown().await;
}

#[tokio::test]
async fn objects_of_the_wrong_shape_are_invalid_not_a_crash() {
    let (lab, client, _dir) = start_api_only_lab().await;
    let cases = [
        (
            "/api/v1/namespaces/default/services",
            json!({"metadata": {"name": "s"}, "spec": "x"}),
        ),
        (
            "/api/v1/namespaces/default/services",
            json!({"metadata": {"name": "s"}, "spec": {"type": "NodePort", "ports": [80]}}),
        ),
        (
            "/api/v1/namespaces/default/pods",
            json!({"metadata": {"name": "p", "labels": {"a": 1}},
            "spec": {"containers": [{"name": "a", "image": "resil-demo"}]}}),
        ),
        (
            "/api/v1/namespaces/default/endpoints",
            json!({"metadata": {"name": "e"}, "status": 3}),
        ),
        ("/api/v1/namespaces/default/events", json!([1, 2])),
    ];
    for (path, body) in cases {
        let (code, _, status) = raw(
            &client,
            "POST",
            path,
            Some("application/json"),
            body.to_string().into(),
        )
        .await;
        assert!(code == 422 || code == 400, "{body}: {code} {status}");
        assert_eq!(status["kind"], "Status");
    }
    let (code, _, _) = raw(
        &client,
        "GET",
        "/api/v1/namespaces/default/services",
        None,
        vec![],
    )
    .await;
    assert_eq!(code, 200, "the server still answers");
    lab.shutdown().await;
}
