//! Inputs the fuzz targets (`fuzz/`, `scripts/fuzz.sh`) found crashing, replayed as plain
//! tests so they stay fixed without a fuzzer. Each names the file under `fuzz/regressions/`
//! that holds the fuzzer's own input (replay it with `cargo fuzz run TARGET FILE`).

use resil_lab::patch::{self, Patch, PatchError};
use serde_json::json;

use crate::support::{raw, start_api_only_lab};

/// `fuzz/regressions/patch_apply/json-patch-move-failing-midway-panics-undo`: a `move`
/// whose add fails has already removed its source, so undoing the earlier `move` of that
/// same path failed, and the JSON-patch library panicked instead of answering.
fn move_failing_midway() -> serde_json::Value {
    json!([
        {"op": "move", "from": "/metadata/labels/a", "path": "/metadata/labels/a"},
        {"op": "move", "from": "/metadata/labels/a", "path": "/nowhere/x"}
    ])
}

#[test]
fn a_json_patch_whose_move_fails_halfway_is_invalid_not_a_panic() {
    let live = json!({"kind": "Deployment", "metadata": {"name": "web", "labels": {"a": "b"}}});
    let ops = move_failing_midway();
    let result = patch::apply(Some(&live), Patch::Json(&ops), "Deployment");
    match result {
        Err(PatchError::Invalid(message)) => assert!(message.contains("nowhere"), "{message}"),
        other => panic!("expected Invalid, got {other:?}"),
    }
}

#[tokio::test]
async fn a_json_patch_whose_move_fails_halfway_is_refused_with_422_and_changes_nothing() {
    let (lab, client, _dir) = start_api_only_lab().await;
    let path = "/api/v1/namespaces/default";
    let label = json!({"metadata": {"labels": {"a": "b"}}});
    let (status, _, _) = raw(
        &client,
        "PATCH",
        path,
        Some("application/merge-patch+json"),
        label.to_string().into_bytes(),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _, body) = raw(
        &client,
        "PATCH",
        path,
        Some("application/json-patch+json"),
        move_failing_midway().to_string().into_bytes(),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["reason"], "Invalid", "{body}");
    let (_, _, ns) = raw(&client, "GET", path, None, Vec::new()).await;
    assert_eq!(ns["metadata"]["labels"], json!({"a": "b"}), "{ns}");
    lab.shutdown().await;
}
