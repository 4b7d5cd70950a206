//! A multi-node lab: Node objects with zones and Leases, the scheduler's filters and
//! spreading, cordon, a stopped node's pods evicted by the node lifecycle controller, and
//! `kubectl drain` held back by a PodDisruptionBudget. Pods are real `resil demo-app`
//! processes where their running matters; kubectl is the real one (skipped, with a note,
//! when not on PATH). Every wait is bounded.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Event, Node, Pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use resil_lab::{Lab, LabConfig, NodeLayout};
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::process::Command;

use crate::support::{client_for, eventually};

/// A lab of `nodes` nodes over zones a, b, c, running the demo program.
async fn lab(nodes: usize, grace: Duration, toleration: i64) -> (Lab, kube::Client, TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = LabConfig::new(dir.path());
    config.pod_program = PathBuf::from(env!("CARGO_BIN_EXE_resil"));
    config.nodes = NodeLayout::new(nodes);
    config.node_monitor_grace_period = grace;
    config.default_toleration_seconds = toleration;
    let lab = Lab::start(config).await.expect("lab starts");
    let client = client_for(&lab).await;
    (lab, client, dir)
}

/// kubectl wired to one lab, with its own kubeconfig and discovery cache.
struct Kubectl {
    dir: TempDir,
}

impl Kubectl {
    fn for_lab(lab: &Lab) -> Option<Kubectl> {
        let found = std::env::var_os("PATH")
            .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join("kubectl").is_file()));
        if !found {
            eprintln!("note: kubectl is not on PATH; skipping the kubectl part");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("kubeconfig"), lab.kubeconfig_yaml()).unwrap();
        Some(Kubectl { dir })
    }

    /// Runs kubectl, bounded at `limit`: (success, stdout, stderr).
    async fn run(&self, args: &[&str], limit: Duration) -> (bool, String, String) {
        let child = Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(self.dir.path().join("kubeconfig"))
            .arg("--cache-dir")
            .arg(self.dir.path().join("cache"))
            .args(args)
            .env("HOME", self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("kubectl starts");
        let out = tokio::time::timeout(limit, child.wait_with_output())
            .await
            .unwrap_or_else(|_| panic!("kubectl {args:?} did not finish within {limit:?}"))
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    async fn ok(&self, args: &[&str]) -> String {
        let (ok, out, err) = self.run(args, Duration::from_secs(30)).await;
        assert!(ok, "kubectl {args:?} failed:\n{err}\n{out}");
        out
    }
}

fn deployment(name: &str, replicas: i32, pod_spec: Value) -> Deployment {
    let mut spec = pod_spec;
    spec["terminationGracePeriodSeconds"] = json!(1);
    spec["containers"] = json!([{
        "name": "web", "image": "resil-demo:1",
        "readinessProbe": {"httpGet": {"path": "/readyz", "port": 8080}, "periodSeconds": 1},
    }]);
    serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": spec},
        },
    }))
    .unwrap()
}

fn bare_pod(name: &str, spec: Value) -> Pod {
    let mut spec = spec;
    spec["containers"] = json!([{"name": "web", "image": "resil-demo:1"}]);
    spec["terminationGracePeriodSeconds"] = json!(1);
    serde_json::from_value(json!({"metadata": {"name": name}, "spec": spec})).unwrap()
}

fn node_of(pod: &Pod) -> Option<String> {
    pod.spec.as_ref().and_then(|s| s.node_name.clone())
}

/// Waits until `app` has `n` ready pods; returns them.
async fn ready_pods(pods: &Api<Pod>, app: &str, n: usize, limit: Duration) -> Vec<Pod> {
    eventually(limit, &format!("{n} ready pods of {app}"), || async {
        let live = crate::support::live_pods(pods, app).await;
        (live.len() == n && live.iter().all(crate::support::pod_ready)).then_some(live)
    })
    .await
}

async fn patch_node(nodes: &Api<Node>, name: &str, patch: Value) {
    nodes
        .patch(name, &PatchParams::default(), &Patch::Merge(patch))
        .await
        .unwrap();
}

async fn bound_node(pods: &Api<Pod>, name: &str) -> String {
    eventually(
        Duration::from_secs(10),
        &format!("{name} bound"),
        || async { pods.get(name).await.ok().and_then(|p| node_of(&p)) },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_lists_the_nodes_with_zones_leases_and_cordons() {
    let (lab, client, _dir) = lab(3, Duration::from_secs(40), 300).await;
    let nodes: Api<Node> = Api::all(client.clone());
    let listed = nodes.list(&ListParams::default()).await.unwrap().items;
    let zones: Vec<String> = listed
        .iter()
        .map(|n| n.metadata.labels.as_ref().unwrap()["topology.kubernetes.io/zone"].clone())
        .collect();
    assert_eq!(zones, ["lab-a", "lab-b", "lab-c"]);
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    eventually(Duration::from_secs(10), "a lease per node", || async {
        (leases.list(&ListParams::default()).await.ok()?.items.len() == 3).then_some(())
    })
    .await;
    let Some(kubectl) = Kubectl::for_lab(&lab) else {
        lab.shutdown().await;
        return;
    };
    let wide = kubectl.ok(&["get", "nodes", "-o", "wide"]).await;
    let header = wide.lines().next().unwrap();
    for column in [
        "NAME",
        "STATUS",
        "ROLES",
        "AGE",
        "VERSION",
        "INTERNAL-IP",
        "EXTERNAL-IP",
        "OS-IMAGE",
        "KERNEL-VERSION",
        "CONTAINER-RUNTIME",
    ] {
        assert!(header.contains(column), "{wide}");
    }
    let rows: Vec<&str> = wide.lines().skip(1).collect();
    assert_eq!(rows.len(), 3, "{wide}");
    // Every node shows its status, version, address and runtime.
    for row in rows {
        assert!(row.contains(" Ready ") && row.contains("v1.32"), "{wide}");
        assert!(
            row.contains("127.0.") && row.contains("resil://process"),
            "{wide}"
        );
    }
    let labelled = kubectl
        .ok(&["get", "nodes", "-L", "topology.kubernetes.io/zone"])
        .await;
    assert!(labelled.contains("lab-c"), "{labelled}");
    kubectl.ok(&["cordon", "lab-node-2"]).await;
    let after = kubectl.ok(&["get", "node", "lab-node-2"]).await;
    assert!(after.contains("Ready,SchedulingDisabled"), "{after}");
    let described = kubectl.ok(&["describe", "node", "lab-node-2"]).await;
    assert!(
        described
            .lines()
            .any(|l| l.starts_with("Unschedulable:") && l.ends_with("true")),
        "{described}"
    );
    kubectl.ok(&["uncordon", "lab-node-2"]).await;
    let back = kubectl.ok(&["get", "node", "lab-node-2"]).await;
    assert!(!back.contains("SchedulingDisabled"), "{back}");
    lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zone_spread_deployment_lands_one_ready_pod_per_zone() {
    let (lab, client, _dir) = lab(3, Duration::from_secs(40), 300).await;
    let deploys: Api<Deployment> = Api::default_namespaced(client.clone());
    let spread = json!({"topologySpreadConstraints": [{
        "maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone",
        "whenUnsatisfiable": "DoNotSchedule",
        "labelSelector": {"matchLabels": {"app": "web"}}}]});
    deploys
        .create(&PostParams::default(), &deployment("web", 3, spread))
        .await
        .unwrap();
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    let ready = ready_pods(&pods, "web", 3, Duration::from_secs(30)).await;
    let mut on: Vec<String> = ready.iter().filter_map(node_of).collect();
    on.sort();
    assert_eq!(on, ["lab-node-1", "lab-node-2", "lab-node-3"]);
    // Each pod reports its node's address as its host IP.
    let nodes: Api<Node> = Api::all(client);
    for p in &ready {
        let node = nodes.get(&node_of(p).unwrap()).await.unwrap();
        let internal = node.status.unwrap().addresses.unwrap()[0].address.clone();
        assert_eq!(
            p.status.as_ref().unwrap().host_ip.as_deref(),
            Some(&*internal)
        );
    }
    lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_selectors_taints_and_cordons_steer_pods_and_misfits_fail_scheduling() {
    let (lab, client, _dir) = lab(3, Duration::from_secs(40), 300).await;
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    let nodes: Api<Node> = Api::all(client.clone());
    let pp = PostParams::default();
    let zone_c = json!({"nodeSelector": {"topology.kubernetes.io/zone": "lab-c"}});
    pods.create(&pp, &bare_pod("in-c", zone_c)).await.unwrap();
    assert_eq!(bound_node(&pods, "in-c").await, "lab-node-3");

    // Node 1 tainted, node 2 cordoned: new pods go to node 3 only, unless tolerant.
    let taint = json!({"spec": {"taints": [{"key": "dedicated", "value": "db",
                                             "effect": "NoSchedule"}]}});
    patch_node(&nodes, "lab-node-1", taint).await;
    patch_node(
        &nodes,
        "lab-node-2",
        json!({"spec": {"unschedulable": true}}),
    )
    .await;
    for i in 0..3 {
        let name = format!("plain-{i}");
        pods.create(&pp, &bare_pod(&name, json!({}))).await.unwrap();
        assert_eq!(bound_node(&pods, &name).await, "lab-node-3");
    }
    let tolerant = json!({"tolerations": [{"key": "dedicated", "operator": "Equal",
                                           "value": "db", "effect": "NoSchedule"}],
                          "nodeSelector": {"kubernetes.io/hostname": "lab-node-1"}});
    pods.create(&pp, &bare_pod("tolerant", tolerant))
        .await
        .unwrap();
    assert_eq!(bound_node(&pods, "tolerant").await, "lab-node-1");

    // No node in zone z: Unschedulable with upstream's message and a FailedScheduling Event.
    let nowhere = json!({"nodeSelector": {"topology.kubernetes.io/zone": "lab-z"}});
    pods.create(&pp, &bare_pod("nowhere", nowhere))
        .await
        .unwrap();
    let want = "0/3 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, \
                1 node(s) had untolerated taint {dedicated: db}, 1 node(s) were unschedulable. \
                preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling.";
    let events: Api<Event> = Api::default_namespaced(client.clone());
    eventually(Duration::from_secs(10), "FailedScheduling", || async {
        let listed = events.list(&ListParams::default()).await.ok()?.items;
        listed
            .iter()
            .find(|e| {
                e.reason.as_deref() == Some("FailedScheduling")
                    && e.involved_object.name.as_deref() == Some("nowhere")
            })
            .map(|e| assert_eq!(e.message.as_deref(), Some(want)))
    })
    .await;
    let pod = pods.get("nowhere").await.unwrap();
    let cond = pod.status.unwrap().conditions.unwrap();
    assert!(cond.iter().any(|c| c.type_ == "PodScheduled"
        && c.status == "False"
        && c.reason.as_deref() == Some("Unschedulable")));
    lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_nodes_pods_are_evicted_and_replaced_on_other_nodes() {
    let grace = Duration::from_secs(2);
    let toleration = 3;
    let (lab, client, _dir) = lab(3, grace, toleration).await;
    let deploys: Api<Deployment> = Api::default_namespaced(client.clone());
    deploys
        .create(&PostParams::default(), &deployment("web", 3, json!({})))
        .await
        .unwrap();
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    let before = ready_pods(&pods, "web", 3, Duration::from_secs(30)).await;
    let victim = node_of(&before[0]).unwrap();
    let doomed: Vec<String> = before
        .iter()
        .filter(|p| node_of(p).as_deref() == Some(&victim))
        .filter_map(|p| p.metadata.name.clone())
        .collect();
    let nodes: Api<Node> = Api::all(client.clone());
    let stopped_at = Instant::now();
    patch_node(
        &nodes,
        &victim,
        json!({"metadata": {"annotations": {"lab.resil.dev/stopped": "true"}}}),
    )
    .await;
    // Unknown after the grace period, tainted unreachable.
    eventually(Duration::from_secs(10), "node unreachable", || async {
        let n = nodes.get(&victim).await.ok()?;
        let taints = n.spec.as_ref()?.taints.clone().unwrap_or_default();
        taints
            .iter()
            .any(|t| t.key == "node.kubernetes.io/unreachable" && t.effect == "NoExecute")
            .then_some(())
    })
    .await;
    // Replaced elsewhere within grace + toleration + slack.
    let limit = grace + Duration::from_secs(toleration as u64) + Duration::from_secs(15);
    let after = eventually(limit, "replacements ready elsewhere", || async {
        let live = crate::support::live_pods(&pods, "web").await;
        let moved = live.len() == 3
            && live.iter().all(crate::support::pod_ready)
            && live.iter().all(|p| node_of(p).as_deref() != Some(&victim));
        moved.then_some(live)
    })
    .await;
    let took = stopped_at.elapsed();
    // The silence is counted from the last renewal, up to a renew period (grace / 4)
    // before the stop, and the toleration from the taint's timeAdded, which a Time keeps
    // to the second.
    let earliest =
        grace + Duration::from_secs(toleration as u64) - grace / 4 - Duration::from_secs(1);
    assert!(
        took >= earliest,
        "replaced after {took:?}, before {earliest:?}"
    );
    assert!(
        after
            .iter()
            .all(|p| !doomed.contains(p.metadata.name.as_ref().unwrap()))
    );
    // Started again: Ready, untainted, and the evicted pods finish terminating.
    patch_node(
        &nodes,
        &victim,
        json!({"metadata": {"annotations": {"lab.resil.dev/stopped": null}}}),
    )
    .await;
    eventually(Duration::from_secs(10), "node back", || async {
        let n = nodes.get(&victim).await.ok()?;
        let ready = n
            .status
            .as_ref()?
            .conditions
            .as_ref()?
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True");
        let clean = n
            .spec
            .as_ref()?
            .taints
            .as_ref()
            .is_none_or(|t| t.is_empty());
        let gone = pods
            .list(&ListParams::default())
            .await
            .ok()?
            .items
            .iter()
            .all(|p| !doomed.contains(p.metadata.name.as_ref().unwrap()));
        (ready && clean && gone).then_some(())
    })
    .await;
    lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_drain_evicts_one_pod_at_a_time_under_a_budget() {
    let (lab, client, _dir) = lab(3, Duration::from_secs(40), 300).await;
    let Some(kubectl) = Kubectl::for_lab(&lab) else {
        lab.shutdown().await;
        return;
    };
    // Both replicas on node 1: the others are cordoned while they are placed.
    kubectl.ok(&["cordon", "lab-node-2", "lab-node-3"]).await;
    let deploys: Api<Deployment> = Api::default_namespaced(client.clone());
    deploys
        .create(&PostParams::default(), &deployment("web", 2, json!({})))
        .await
        .unwrap();
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    let before = ready_pods(&pods, "web", 2, Duration::from_secs(30)).await;
    assert!(
        before
            .iter()
            .all(|p| node_of(p).as_deref() == Some("lab-node-1"))
    );
    kubectl.ok(&["uncordon", "lab-node-2", "lab-node-3"]).await;
    let pdbs: Api<PodDisruptionBudget> = Api::default_namespaced(client.clone());
    let pdb = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "web"}}},
    }))
    .unwrap();
    pdbs.create(&PostParams::default(), &pdb).await.unwrap();
    eventually(Duration::from_secs(10), "budget allows one", || async {
        let s = pdbs.get("web").await.ok()?.status?;
        (s.disruptions_allowed == Some(1) && s.current_healthy == Some(2)).then_some(())
    })
    .await;
    let table = kubectl.ok(&["get", "pdb"]).await;
    assert!(
        table.contains("MIN AVAILABLE") && table.contains("ALLOWED DISRUPTIONS"),
        "{table}"
    );

    let (ok, out, err) = kubectl
        .run(
            &[
                "drain",
                "lab-node-1",
                "--ignore-daemonsets",
                "--timeout=90s",
            ],
            Duration::from_secs(100),
        )
        .await;
    assert!(ok, "drain failed:\n{err}\n{out}");
    assert!(
        err.contains("Cannot evict pod as it would violate the pod's disruption budget."),
        "the second eviction waited for the budget:\n{err}"
    );
    assert_eq!(out.matches("evicted").count(), 2, "{out}");
    let after = ready_pods(&pods, "web", 2, Duration::from_secs(30)).await;
    assert!(
        after
            .iter()
            .all(|p| node_of(p).as_deref() != Some("lab-node-1"))
    );
    let node = kubectl.ok(&["get", "node", "lab-node-1"]).await;
    assert!(node.contains("SchedulingDisabled"), "{node}");
    lab.shutdown().await;
}

/// Two evictions at once (kubectl drain sends them in parallel) under a budget that allows
/// one disruption: exactly one pod goes, the other is refused with 429 — never both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_evictions_at_once_spend_a_budget_of_one_only_once() {
    let (lab, client, _dir) = lab(1, Duration::from_secs(40), 300).await;
    let deploys: Api<Deployment> = Api::default_namespaced(client.clone());
    deploys
        .create(&PostParams::default(), &deployment("web", 2, json!({})))
        .await
        .unwrap();
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    let ready = ready_pods(&pods, "web", 2, Duration::from_secs(30)).await;
    let pdbs: Api<PodDisruptionBudget> = Api::default_namespaced(client.clone());
    let pdb = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "web"}}},
    }))
    .unwrap();
    pdbs.create(&PostParams::default(), &pdb).await.unwrap();
    eventually(Duration::from_secs(10), "budget allows one", || async {
        let s = pdbs.get("web").await.ok()?.status?;
        (s.disruptions_allowed == Some(1) && s.current_healthy == Some(2)).then_some(())
    })
    .await;
    // A client that does not retry a 429 by itself, so each answer is the lab's.
    let bare: Api<Pod> = Api::default_namespaced(crate::support::client_without_retry(&lab).await);
    let name = |i: usize| ready[i].metadata.name.clone().unwrap();
    let (a, b) = (name(0), name(1));
    let params = kube::api::EvictParams::default();
    let (first, second) = tokio::join!(bare.evict(&a, &params), bare.evict(&b, &params));
    let refused: Vec<u16> = [first, second]
        .into_iter()
        .filter_map(|r| match r {
            Ok(_) => None,
            Err(kube::Error::Api(s)) => Some(s.code),
            Err(e) => panic!("eviction failed: {e}"),
        })
        .collect();
    assert_eq!(refused, vec![429], "one eviction goes, one is refused");
    // The budget's status moves on at once (the disruption controller drops the evicted
    // pod and counts its replacement), so the pods say what happened: one of the two is
    // still there and not terminating.
    let mut standing = 0;
    for name in [&a, &b] {
        if let Some(p) = pods.get_opt(name).await.unwrap()
            && p.metadata.deletion_timestamp.is_none()
        {
            standing += 1;
        }
    }
    assert_eq!(standing, 1, "exactly one of {a} and {b} was evicted");
    lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_binding_assigns_a_pod_once_and_an_eviction_without_budget_deletes_it() {
    // An API server alone: no scheduler races the binding.
    let (lab, client, _dir) = crate::support::start_api_only_lab().await;
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    pods.create(&PostParams::default(), &bare_pod("p", json!({})))
        .await
        .unwrap();
    let path = "/api/v1/namespaces/default/pods/p/binding";
    let binding = |node: &str| {
        serde_json::to_vec(&json!({"apiVersion": "v1", "kind": "Binding",
            "metadata": {"name": "p"}, "target": {"kind": "Node", "name": node}}))
        .unwrap()
    };
    let (code, _, _) = crate::support::raw(&client, "POST", path, None, binding("n1")).await;
    assert_eq!(code, 201);
    assert_eq!(
        node_of(&pods.get("p").await.unwrap()).as_deref(),
        Some("n1")
    );
    let (code, _, body) = crate::support::raw(&client, "POST", path, None, binding("n2")).await;
    assert_eq!((code, body["reason"].as_str()), (409, Some("Conflict")));

    let eviction = serde_json::to_vec(&json!({"apiVersion": "policy/v1", "kind": "Eviction",
        "metadata": {"name": "p", "namespace": "default"}}))
    .unwrap();
    let evict = "/api/v1/namespaces/default/pods/p/eviction";
    let (code, _, _) = crate::support::raw(&client, "POST", evict, None, eviction).await;
    assert_eq!(code, 201);
    assert!(pods.get_opt("p").await.unwrap().is_none());
    lab.shutdown().await;
}

/// Time to Ready for many demo pods over ten nodes (`RESIL_BENCH_PODS`, default 1000):
/// `cargo nextest run -E 'test(/many_pods_over_ten_nodes/)' --run-ignored only`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "a benchmark: starts many processes"]
async fn many_pods_over_ten_nodes_become_ready() {
    let n: i32 = std::env::var("RESIL_BENCH_PODS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let (lab, client, _dir) = lab(10, Duration::from_secs(40), 300).await;
    let deploys: Api<Deployment> = Api::default_namespaced(client.clone());
    let started = Instant::now();
    deploys
        .create(&PostParams::default(), &deployment("web", n, json!({})))
        .await
        .unwrap();
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    let ready = ready_pods(&pods, "web", n as usize, Duration::from_secs(600)).await;
    let took = started.elapsed();
    let mut per_node = std::collections::BTreeMap::<String, usize>::new();
    for p in &ready {
        *per_node.entry(node_of(p).unwrap()).or_default() += 1;
    }
    eprintln!("{n} pods over 10 nodes ready in {took:?}; per node: {per_node:?}");
    assert_eq!(per_node.len(), 10);
    lab.shutdown().await;
}
