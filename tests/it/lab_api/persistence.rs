//! Restarts on the same state directory, and a corrupt state file.

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, PostParams};

use super::deployment;
use crate::support::{self, start_lab};

#[tokio::test]
async fn objects_survive_a_restart_on_the_same_state_dir() {
    let (lab, client, dir) = start_lab().await;
    let deployments: Api<Deployment> = Api::default_namespaced(client);
    let created = deployments
        .create(&PostParams::default(), &deployment("web", 3))
        .await
        .unwrap();
    let token = lab.token().to_string();
    lab.shutdown().await;

    let lab = support::start_lab_in(&dir).await;
    assert_eq!(lab.token(), token, "the token is reused");
    let deployments: Api<Deployment> = Api::default_namespaced(support::client_for(&lab).await);
    let again = deployments.get("web").await.unwrap();
    assert_eq!(again.metadata.uid, created.metadata.uid);
    assert_eq!(again.spec.replicas, Some(3));
    let d = deployments
        .create(&PostParams::default(), &deployment("next", 1))
        .await
        .unwrap();
    let rv: u64 = d.metadata.resource_version.unwrap().parse().unwrap();
    let old: u64 = created.metadata.resource_version.unwrap().parse().unwrap();
    assert!(rv > old, "resourceVersion keeps increasing across restarts");
    lab.shutdown().await;
}

#[tokio::test]
async fn a_corrupt_state_file_fails_start_and_is_kept_aside() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("state.json"), b"{\"objects\": [tru").unwrap();
    let err = resil_lab::Lab::start(resil_lab::LabConfig::new(dir.path()))
        .await
        .unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains("state.json") && message.contains("corrupt"),
        "{message}"
    );
    let aside: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with("state.json.corrupt-"))
        .collect();
    assert_eq!(aside.len(), 1, "the corrupt file is kept");
    assert!(
        message.contains(&aside[0]),
        "the message names the moved file: {message}"
    );
    assert_eq!(
        std::fs::read(dir.path().join(&aside[0])).unwrap(),
        b"{\"objects\": [tru"
    );
}
