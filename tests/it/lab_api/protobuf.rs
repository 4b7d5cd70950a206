//! Protobuf request bodies over HTTPS: a kubectl-made body creates its object and the
//! answer is JSON; a broken one is a 400 Status; other media types stay 415 and name the
//! ones the lab takes. kubectl itself is exercised in `kubectl.rs`.

use crate::support::{raw, start_api_only_lab};

const PROTOBUF: &str = "application/vnd.kubernetes.protobuf";

/// `kubectl create namespace pb-fixture` as kubectl v1.32 sent it.
const NAMESPACE: &[u8] = include_bytes!("../../../crates/lab/tests/fixtures/protobuf/namespace.pb");

#[tokio::test]
async fn a_protobuf_create_is_answered_in_json() {
    let (lab, client, _dir) = start_api_only_lab().await;
    let (code, ct, body) = raw(
        &client,
        "POST",
        "/api/v1/namespaces",
        Some(PROTOBUF),
        NAMESPACE.to_vec(),
    )
    .await;
    assert_eq!((code, ct.as_str()), (201, "application/json"), "{body}");
    assert_eq!(body["metadata"]["name"], "pb-fixture");
    assert_eq!(body["kind"], "Namespace");
    lab.shutdown().await;
}

#[tokio::test]
async fn broken_protobuf_is_a_400_and_other_media_types_a_415() {
    let (lab, client, _dir) = start_api_only_lab().await;
    let cut = NAMESPACE[..NAMESPACE.len() - 3].to_vec();
    for body in [
        cut,
        b"{\"kind\":\"Namespace\"}".to_vec(),
        b"k8s\0\xff".to_vec(),
    ] {
        let (code, _, status) =
            raw(&client, "POST", "/api/v1/namespaces", Some(PROTOBUF), body).await;
        assert_eq!((code, status["reason"].as_str()), (400, Some("BadRequest")));
        assert!(status["message"].as_str().unwrap().contains("protobuf"));
    }
    let (code, _, status) = raw(
        &client,
        "POST",
        "/api/v1/namespaces",
        Some("application/cbor"),
        b"{}".to_vec(),
    )
    .await;
    assert_eq!(code, 415);
    assert!(status["message"].as_str().unwrap().contains(PROTOBUF));
    lab.shutdown().await;
}
