//! `resil chaos node-failure`, `zone-outage` and `drain` on a lab with several nodes and
//! short node timeouts: a powered-off node goes Unknown and tainted, its pods are
//! replaced elsewhere, and the revert brings it back Ready and untainted; a zone outage
//! takes exactly the zone's nodes; an unknown zone is refused naming the zones; a drain
//! that a PodDisruptionBudget refuses waits for a Ready replacement and says how often it
//! was refused, or times out, stays cordoned and says so.

use k8s_openapi::api::core::v1::Node;
use resil_lab::{LabConfig, NodeLayout};

use super::*;

/// A lab of `nodes` nodes over `zones` with a 1 s grace period and 2 s toleration, and
/// the demo deployed with `replicas` pods per colour.
async fn demo_on_nodes(nodes: usize, zones: &[&str], replicas: u32) -> Demo {
    let state = tempfile::tempdir().unwrap();
    let mut config = LabConfig::new(state.path());
    config.pod_program = PathBuf::from(env!("CARGO_BIN_EXE_resil"));
    config.nodes = NodeLayout {
        zones: zones.iter().map(|z| z.to_string()).collect(),
        ..NodeLayout::new(nodes)
    };
    config.node_monitor_grace_period = Duration::from_secs(1);
    config.default_toleration_seconds = 2;
    let lab = Lab::start(config).await.expect("lab starts");
    Demo::deployed(lab, state, true, replicas).await
}

/// The node's Ready condition status, its taint keys and whether its stop switch is on.
async fn node_state(client: &kube::Client, name: &str) -> (String, Vec<String>, bool) {
    let node = Api::<Node>::all(client.clone()).get(name).await.unwrap();
    let ready = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
        .map(|c| c.status.clone())
        .unwrap_or_default();
    let taints = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.as_ref())
        .map(|t| t.iter().map(|t| t.key.clone()).collect())
        .unwrap_or_default();
    let stopped = node
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get("lab.resil.dev/stopped"))
        .is_some_and(|v| v == "true");
    (ready, taints, stopped)
}

/// Ready, live pods of `color` with their nodes.
async fn placed(demo: &Demo, color: &str) -> Vec<(String, String)> {
    let pods: Api<Pod> = Api::namespaced(demo.client.clone(), NS);
    support::live_pods(&pods, "web")
        .await
        .into_iter()
        .filter(|p| p.metadata.labels.as_ref().unwrap()["version"] == color)
        .filter(support::pod_ready)
        .map(|p| {
            let node = p
                .spec
                .as_ref()
                .unwrap()
                .node_name
                .clone()
                .unwrap_or_default();
            (p.metadata.name.unwrap(), node)
        })
        .collect()
}

/// The notes (`drain ...`) the timeline under `out` holds.
fn notes(out: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(out.join("timeline.jsonl")).unwrap_or_default();
    text.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|e| e["message"].as_str().map(str::to_string))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_node_goes_unknown_its_pods_are_replaced_and_the_revert_brings_it_back_ready() {
    let demo = demo_on_nodes(3, &["a", "b", "c"], 3).await;
    let before = placed(&demo, "blue").await;
    assert_eq!(before.len(), 3, "{before:?}");
    let (_, node) = before[0].clone();
    let run = demo.spawn(&["node-failure", "--node", &node, "--duration", "10s"]);
    eventually(
        Duration::from_secs(10),
        "the node Unknown and tainted unreachable",
        || async {
            let (ready, taints, stopped) = node_state(&demo.client, &node).await;
            let unreachable = taints.iter().any(|t| t == "node.kubernetes.io/unreachable");
            (stopped && ready == "Unknown" && unreachable).then_some(())
        },
    )
    .await;
    // Evicted after the 2 s toleration and replaced on the other nodes.
    let after = eventually(
        Duration::from_secs(20),
        "three Ready blue pods, none on the failed node",
        || async {
            let now = placed(&demo, "blue").await;
            (now.len() == 3 && now.iter().all(|(_, n)| *n != node)).then_some(now)
        },
    )
    .await;
    assert!(
        !after.iter().any(|(p, _)| *p == before[0].0),
        "the failed node's pod was replaced: {before:?} → {after:?}"
    );
    assert_eq!(run.await.unwrap(), Exit::Ok);
    eventually(
        Duration::from_secs(10),
        "the node Ready again, untainted",
        || async {
            let (ready, taints, stopped) = node_state(&demo.client, &node).await;
            (!stopped && ready == "True" && taints.is_empty()).then_some(())
        },
    )
    .await;
    assert!(demo.all_answer(5, 200).await, "the Service answers");
    let entries = demo.journal().entries().unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].action, "node-failure");
    assert!(entries[0].reverted_at.is_some());
    demo.lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zone_outage_stops_exactly_the_zones_nodes_and_an_unknown_zone_names_the_zones() {
    let demo = demo_on_nodes(4, &["a", "a", "b"], 1).await;
    assert_eq!(
        demo.run(&[
            "chaos",
            "zone-outage",
            "--zone",
            "lab-x",
            "--duration",
            "1s"
        ])
        .await,
        Exit::Error,
        "an unknown zone is refused"
    );
    assert!(demo.journal().entries().unwrap_or_default().is_empty());
    // lab-a: nodes 1, 2 and 4; lab-b: node 3.
    let run = demo.spawn(&["zone-outage", "--zone", "lab-a", "--duration", "3s"]);
    eventually(Duration::from_secs(10), "lab-a's nodes off", || async {
        let mut off = Vec::new();
        for n in 1..=4 {
            off.push(node_state(&demo.client, &format!("lab-node-{n}")).await.2);
        }
        (off == [true, true, false, true]).then_some(())
    })
    .await;
    assert_eq!(run.await.unwrap(), Exit::Ok);
    for n in 1..=4 {
        let (_, _, stopped) = node_state(&demo.client, &format!("lab-node-{n}")).await;
        assert!(!stopped, "lab-node-{n} is back on");
    }
    let entries = demo.journal().entries().unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].action, "zone-outage");
    assert_eq!(
        entries[0].targets,
        ["node/lab-node-1", "node/lab-node-2", "node/lab-node-4"]
    );
    demo.lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_refused_by_the_pdb_times_out_cordoned_then_waits_for_a_ready_replacement() {
    // One blue pod and a budget of minAvailable 1: its eviction is refused for as long
    // as no other blue pod is Ready.
    let demo = demo_on_nodes(2, &["a", "b"], 1).await;
    let (_, node) = placed(&demo, "blue").await[0].clone();
    let out = demo.dir.path().join("drain-out");
    let out_arg = out.to_str().unwrap();
    let refused = demo
        .run(&[
            "chaos",
            "drain",
            "--node",
            &node,
            "--timeout",
            "2s",
            "--out",
            out_arg,
        ])
        .await;
    assert_eq!(refused, Exit::Error, "a drain that times out is an error");
    let said = notes(&out);
    assert!(
        said.iter().any(
            |n| n.contains("refused evictions of distributed-resilience/web-blue")
                && n.contains("timed out with")
        ),
        "{said:?}"
    );
    assert_eq!(placed(&demo, "blue").await.len(), 1, "blue still serves");
    let cordoned = Api::<Node>::all(demo.client.clone())
        .get(&node)
        .await
        .unwrap()
        .spec
        .and_then(|s| s.unschedulable);
    assert_eq!(cordoned, Some(true), "it stays cordoned");
    assert_eq!(demo.run(&["chaos", "revert"]).await, Exit::Ok, "uncordons");

    // With time to wait, the drain goes on once a second blue pod is Ready elsewhere.
    let out = demo.dir.path().join("drain-out-2");
    let out_arg = out.to_str().unwrap().to_string();
    let node2 = node.clone();
    let run = demo.spawn(&[
        "drain",
        "--node",
        &node2,
        "--timeout",
        "60s",
        "--duration",
        "1s",
        "--out",
        &out_arg,
    ]);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let scale = json!({"spec": {"replicas": 2}});
    demo.deployments()
        .patch(
            "web-blue",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&scale),
        )
        .await
        .unwrap();
    assert_eq!(run.await.unwrap(), Exit::Ok);
    let said = notes(&out);
    assert!(
        said.iter()
            .any(|n| n.starts_with(&format!("drain {node}: evicted"))
                && n.contains("refused evictions of distributed-resilience/web-blue")
                && !n.contains("timed out")),
        "{said:?}"
    );
    let now = placed(&demo, "blue").await;
    assert!(now.iter().all(|(_, n)| *n != node), "{now:?}");
    demo.lab.shutdown().await;
}
