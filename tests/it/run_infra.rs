//! `resil run` of the infrastructure-fault scenarios (node failure, drain with a
//! PodDisruptionBudget, a zone outage with and without spread constraints), each on an
//! in-process lab set up as the scenario's `target` asks (nodes, zones, grace period,
//! toleration), shortened with `--time-scale`: the exit code is the SLO verdict, and the
//! figures the report gives (recovery phases, drain refusals, ready endpoints left) are
//! what the lab did. A lab that is not the one a scenario needs is refused with what to
//! do.
//!
//! The real binary runs with `--context resil-lab` and a temporary kubeconfig pointing at
//! the in-process lab, with HOME, XDG_STATE_HOME (chaos journal) and the results
//! directory in a temporary directory.

use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use resil::run::scenario::Scenario;
use resil_lab::{LabConfig, NodeLayout};
use serde_json::Value;

use crate::run::RunLab;
use crate::support;

const NS: &str = "distributed-resilience";

fn scenario(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scenarios")
        .join(name)
}

/// A lab as `scenario`'s target describes it.
async fn lab_for(path: &Path) -> RunLab {
    let target = Scenario::load(path).expect("scenario parses").target;
    let mut config_of = move |config: &mut LabConfig| {
        let mut layout = NodeLayout::new(target.nodes.unwrap_or(3) as usize);
        if let Some(zones) = target.zones.clone() {
            layout.zones = zones;
        }
        config.nodes = layout;
        if let Some(grace) = target.node_monitor_grace_period {
            config.node_monitor_grace_period = grace;
        }
        if let Some(s) = target.default_toleration_seconds {
            config.default_toleration_seconds = i64::from(s);
        }
    };
    RunLab::start_with(&mut config_of).await
}

/// `resil report DIR -o json`, parsed.
pub(crate) fn report_json(dir: &Path) -> Value {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_resil"))
        .arg("report")
        .arg(dir)
        .args(["-o", "json"])
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("report JSON: {e}\n{}", String::from_utf8_lossy(&out.stderr)))
}

/// One recovery phase's length in ms, by name.
fn phase_ms(recovery: &Value, name: &str) -> u64 {
    recovery["phases"]
        .as_array()
        .and_then(|p| p.iter().find(|p| p["name"] == name))
        .and_then(|p| p["ms"].as_u64())
        .unwrap_or_else(|| panic!("no phase {name:?} in {recovery:#}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_failure_scenario_reschedules_the_pods_and_splits_recovery_into_grace_toleration_and_start()
 {
    let path = scenario("node-failure.yaml");
    let lab = lab_for(&path).await;
    let ran = lab.run(&path, "0.5", &[]).await;
    assert_eq!(ran.code, Some(0), "{}", ran.explain());
    let report = report_json(&lab.run_dir("node-failure"));
    let recovery = &report["recovery"][0];
    assert_eq!(recovery["action"], "node-failure", "{report:#}");
    // The lab's grace period is 2 s, counted from the node's last heartbeat (renewed
    // every 500 ms); the toleration 3 s, counted from the taint; a demo pod starts in
    // well under 5 s.
    let grace = phase_ms(recovery, "unreachable (grace)");
    assert!((1_000..=3_500).contains(&grace), "grace {grace} ms");
    let toleration = phase_ms(recovery, "eviction (toleration)");
    assert!(
        (2_500..=4_500).contains(&toleration),
        "toleration {toleration} ms"
    );
    let start = phase_ms(recovery, "pod start");
    assert!(start < 5_000, "pod start {start} ms");
    assert_eq!(recovery["recovered"], true, "{recovery:#}");
    // The pod lab-node-1 held was replaced on another node.
    let pods: Api<Pod> = Api::namespaced(lab.client.clone(), NS);
    let blue: Vec<Pod> = support::live_pods(&pods, "web")
        .await
        .into_iter()
        .filter(|p| p.metadata.labels.as_ref().unwrap()["version"] == "blue")
        .filter(support::pod_ready)
        .collect();
    assert_eq!(blue.len(), 3, "{blue:#?}");
    assert!(
        blue.iter()
            .all(|p| p.spec.as_ref().unwrap().node_name.as_deref() != Some("lab-node-1")),
        "{blue:#?}"
    );
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_with_pdb_scenario_holds_the_second_drain_until_a_replacement_is_ready() {
    let path = scenario("drain-with-pdb.yaml");
    let lab = lab_for(&path).await;
    let ran = lab.run(&path, "0.5", &[]).await;
    assert_eq!(ran.code, Some(0), "{}", ran.explain());
    let report = report_json(&lab.run_dir("drain-with-pdb"));
    let drains: Vec<&Value> = report["recovery"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["action"] == "drain")
        .collect();
    assert_eq!(drains.len(), 2, "{report:#}");
    let notes = |r: &Value| -> Vec<String> {
        r["control_plane"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|c| c["what"].as_str())
            .filter(|w| w.starts_with("drain "))
            .map(str::to_string)
            .collect()
    };
    // The second drain found the last Ready blue pod on its node: the budget refused it
    // until lab-node-1 was back with a Ready replacement, and the drain then finished.
    let second = notes(drains[1]);
    assert!(
        second.iter().any(|n| n.contains("lab-node-2")
            && n.contains("refused evictions of distributed-resilience/web-blue")
            && !n.contains("timed out")),
        "{second:?}\n{}",
        ran.explain()
    );
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zone_outage_with_spread_keeps_two_ready_pods_where_without_it_keeps_one() {
    let path = scenario("zone-outage-spread-vs-not.yaml");
    let lab = lab_for(&path).await;
    let ran = lab.run(&path, "0.5", &[]).await;
    assert_eq!(ran.code, Some(0), "{}", ran.explain());
    assert!(
        ran.stdout.contains("variants side by side"),
        "{}",
        ran.explain()
    );
    let table: Value = serde_json::from_str(
        &std::fs::read_to_string(
            lab.run_dir("zone-outage-spread-vs-not-no-spread")
                .join("comparison.json"),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(
        table["variants"],
        serde_json::json!(["spread", "no-spread"])
    );
    let row = table["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["metric"] == "ready_endpoints_min")
        .unwrap_or_else(|| panic!("{table:#}"));
    // Four pods over lab-a (three nodes) and lab-b (one): 2 + 2 with the constraint,
    // 3 + 1 by node without; losing lab-a leaves 2 or 1.
    assert_eq!(row["values"], serde_json::json!([2.0, 1.0]), "{table:#}");
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_lab_without_the_scenarios_layout_is_refused_with_what_to_do() {
    // Three nodes over three zones (as `resil lab up` starts), where the zone scenario
    // needs four over two.
    let lab = RunLab::start_with(&mut |c| c.nodes = NodeLayout::new(3)).await;
    let ran = lab
        .run(&scenario("zone-outage-spread-vs-not.yaml"), "0.5", &[])
        .await;
    assert_eq!(ran.code, Some(2), "{}", ran.explain());
    for text in [
        "needs a lab of 4 node(s): 3 in lab-a, 1 in lab-b",
        "the running one has 3 node(s)",
        "resil lab down",
    ] {
        assert!(ran.stderr.contains(text), "{text:?}\n{}", ran.explain());
    }
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_lab_with_the_upstream_toleration_is_refused_before_the_load() {
    // Three nodes over three zones, as node-failure.yaml needs, but pods tolerate an
    // unreachable node for 300 s (upstream's default) where the scenario expects 3.
    let lab = RunLab::start_with(&mut |c| {
        c.nodes = NodeLayout::new(3);
        c.default_toleration_seconds = 300;
    })
    .await;
    let ran = lab.run(&scenario("node-failure.yaml"), "0.5", &[]).await;
    assert_eq!(ran.code, Some(2), "{}", ran.explain());
    let text = "tolerate an unreachable node for 3 s; the running one gives 300 s";
    assert!(ran.stderr.contains(text), "{}", ran.explain());
    assert!(
        !ran.stderr.contains("chaos"),
        "nothing was injected:\n{}",
        ran.explain()
    );
    lab.stop().await;
}
