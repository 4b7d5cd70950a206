//! `resil chaos region-outage`: on the lab every node goes off at once and comes back;
//! where nodes cannot be powered off, every Deployment is scaled to zero and restored.

use k8s_openapi::api::core::v1::Node;

use super::*;

/// Whether every node carries the lab's stop switch (`true`) or none does (`false`).
async fn nodes_stopped(client: &kube::Client) -> Option<bool> {
    let nodes: Api<Node> = Api::all(client.clone());
    let list = nodes.list(&ListParams::default()).await.ok()?;
    let stopped: Vec<bool> = list
        .items
        .iter()
        .map(|n| {
            n.metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get("lab.resil.dev/stopped"))
                .is_some_and(|v| v == "true")
        })
        .collect();
    match (stopped.iter().all(|s| *s), stopped.iter().any(|s| *s)) {
        (true, _) if !stopped.is_empty() => Some(true),
        (_, false) => Some(false),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn region_outage_on_the_lab_powers_every_node_off_then_on_and_the_service_returns() {
    let demo = Demo::running(1).await;
    assert!(demo.through_node_port().await.is_some(), "serves before");
    let run = demo.spawn(&["region-outage", "--duration", "3s"]);
    eventually(
        Duration::from_secs(10),
        "every node off and the Service unanswered",
        || async {
            let off = nodes_stopped(&demo.client).await == Some(true);
            (off && demo.through_node_port().await != Some(200)).then_some(())
        },
    )
    .await;
    assert_eq!(run.await.unwrap(), Exit::Ok);
    assert_eq!(
        nodes_stopped(&demo.client).await,
        Some(false),
        "every node back on"
    );
    eventually(
        Duration::from_secs(60),
        "the Service to answer again",
        || async { (demo.through_node_port().await == Some(200)).then_some(()) },
    )
    .await;
    let entries = demo.journal().entries().unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].action, "region-outage");
    assert!(entries[0].reverted_at.is_some());
    demo.lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn region_outage_of_workloads_scales_every_deployment_to_zero_and_restores_it() {
    let demo = Demo::api_only(2).await;
    let run = demo.spawn(&["region-outage", "--workloads-only", "--duration", "2s"]);
    eventually(Duration::from_secs(10), "both colours at 0", || async {
        (demo.replicas("blue").await == 0 && demo.replicas("green").await == 0).then_some(())
    })
    .await;
    assert_eq!(run.await.unwrap(), Exit::Ok);
    assert_eq!(demo.replicas("blue").await, 2);
    assert_eq!(demo.replicas("green").await, 2);
    assert!(demo.journal().open_entries().unwrap().is_empty());
    demo.lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_plane_outage_refuses_the_api_while_pods_keep_serving_then_ends() {
    let demo = Demo::running(1).await;
    let pods: Api<Pod> = Api::namespaced(support::client_without_retry(&demo.lab).await, NS);
    let run = demo.spawn(&["region-outage", "--control-plane", "--duration", "3s"]);
    let refused = eventually(Duration::from_secs(10), "the API to refuse", || async {
        match pods.list(&ListParams::default()).await {
            Err(kube::Error::Api(s)) if s.code == 503 => Some(s.message),
            _ => None,
        }
    })
    .await;
    assert!(refused.contains("control plane is down"), "{refused}");
    assert_eq!(
        demo.through_node_port().await,
        Some(200),
        "pods keep serving"
    );
    assert_eq!(run.await.unwrap(), Exit::Ok);
    assert!(
        pods.list(&ListParams::default()).await.is_ok(),
        "the API is back"
    );
    let entries = demo.journal().entries().unwrap();
    assert!(entries[0].reverted_at.is_some());
    demo.lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_plane_outage_reverted_early_brings_the_api_back_at_once() {
    let demo = Demo::running(1).await;
    let pods: Api<Pod> = Api::namespaced(support::client_without_retry(&demo.lab).await, NS);
    let run = demo.spawn(&["region-outage", "--control-plane", "--duration", "60s"]);
    eventually(Duration::from_secs(10), "the API to refuse", || async {
        pods.list(&ListParams::default())
            .await
            .is_err()
            .then_some(())
    })
    .await;
    run.abort();
    // The journal holds the open fault; revert reaches the switch though the API is down.
    assert_eq!(demo.run(&["chaos", "revert"]).await, Exit::Ok);
    assert!(
        pods.list(&ListParams::default()).await.is_ok(),
        "the API is back"
    );
    demo.lab.shutdown().await;
}
