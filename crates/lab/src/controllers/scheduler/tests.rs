use k8s_openapi::api::core::v1::{Node, Pod};
use serde_json::{Value, json};

use super::*;
use crate::nodes::{Capacity, NodeLayout, node_object};

fn nodes(n: usize, pods: usize) -> Vec<Node> {
    NodeLayout::new(n)
        .nodes()
        .iter()
        .map(|s| {
            let mut v = node_object(s, Capacity::for_pods(pods), "2026-01-01T00:00:00Z");
            v["metadata"]["uid"] = json!(s.name);
            serde_json::from_value(v).unwrap()
        })
        .collect()
}

fn pod(name: &str, spec: Value) -> Pod {
    let mut spec = spec;
    spec["containers"] = json!([{"name": "web", "image": "resil-demo:1"}]);
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "default", "uid": name,
                     "labels": {"app": "web"}},
        "spec": spec,
    }))
    .unwrap()
}

fn first(n: usize) -> usize {
    let _ = n;
    0
}

/// Schedules `pods` one after another like a pass does; returns their nodes.
fn place(nodes: &[Node], pods: &[Pod]) -> Vec<Decision> {
    let mut snap = snapshot(nodes, &[]);
    pods.iter()
        .map(|p| {
            let d = decide(p, &snap, &mut first);
            if let Decision::Bind(n) = &d {
                let mut bound = p.clone();
                bound.spec.as_mut().unwrap().node_name = Some(n.clone());
                snap.node_mut(n).unwrap().add_pod(bound);
            }
            d
        })
        .collect()
}

fn bound(d: &Decision) -> &str {
    match d {
        Decision::Bind(n) => n,
        Decision::Unschedulable(m) => panic!("unschedulable: {m}"),
    }
}

#[test]
fn a_zone_spread_constraint_puts_one_replica_in_each_zone() {
    let spread = json!({"topologySpreadConstraints": [{
        "maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone",
        "whenUnsatisfiable": "DoNotSchedule", "labelSelector": {"matchLabels": {"app": "web"}}}]});
    let pods: Vec<Pod> = (0..3)
        .map(|i| pod(&format!("w{i}"), spread.clone()))
        .collect();
    let mut got: Vec<&str> = Vec::new();
    let decisions = place(&nodes(3, 110), &pods);
    got.extend(decisions.iter().map(bound));
    got.sort();
    assert_eq!(got, ["lab-node-1", "lab-node-2", "lab-node-3"]);
}

#[test]
fn pods_without_constraints_spread_by_least_allocation() {
    let pods: Vec<Pod> = (0..3).map(|i| pod(&format!("w{i}"), json!({}))).collect();
    let decisions = place(&nodes(3, 110), &pods);
    let mut got: Vec<&str> = decisions.iter().map(bound).collect();
    got.sort();
    got.dedup();
    assert_eq!(got.len(), 3);
}

#[test]
fn node_selector_and_required_affinity_pick_the_matching_node() {
    let p = pod(
        "a",
        json!({"nodeSelector": {"topology.kubernetes.io/zone": "lab-b"}}),
    );
    assert_eq!(
        place(&nodes(3, 110), &[p]),
        [Decision::Bind("lab-node-2".into())]
    );
    let p = pod(
        "b",
        json!({"affinity": {"nodeAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{
            "matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "NotIn",
                                  "values": ["lab-node-1", "lab-node-2"]}]}]}}}}),
    );
    assert_eq!(
        place(&nodes(3, 110), &[p]),
        [Decision::Bind("lab-node-3".into())]
    );
}

#[test]
fn taints_and_cordons_keep_pods_off_unless_tolerated() {
    let mut ns = nodes(2, 110);
    ns[0].spec.as_mut().unwrap().unschedulable = Some(true);
    ns[1].spec.as_mut().unwrap().taints = Some(vec![
        serde_json::from_value(json!({"key": "dedicated", "value": "db", "effect": "NoSchedule"}))
            .unwrap(),
    ]);
    let [d] = &place(&ns, &[pod("a", json!({}))])[..] else {
        panic!()
    };
    assert_eq!(
        d,
        &Decision::Unschedulable(
            "0/2 nodes are available: 1 node(s) had untolerated taint {dedicated: db}, 1 node(s) \
             were unschedulable. preemption: 0/2 nodes are available: 2 Preemption is not \
             helpful for scheduling."
                .into()
        )
    );
    let tolerant = pod(
        "b",
        json!({"tolerations": [{"key": "dedicated", "operator": "Exists"}]}),
    );
    assert_eq!(
        place(&ns, &[tolerant]),
        [Decision::Bind("lab-node-2".into())]
    );
}

#[test]
fn a_full_node_says_too_many_pods_as_upstream() {
    let pods: Vec<Pod> = (0..2).map(|i| pod(&format!("w{i}"), json!({}))).collect();
    let d = place(&nodes(1, 1), &pods);
    assert_eq!(
        d[1],
        Decision::Unschedulable(
            "0/1 nodes are available: 1 Too many pods. preemption: 0/1 nodes are available: 1 \
             No preemption victims found for incoming pod."
                .into()
        )
    );
}

#[test]
fn required_anti_affinity_on_hostname_allows_one_per_node() {
    let anti = json!({"affinity": {"podAntiAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": [{
            "labelSelector": {"matchLabels": {"app": "web"}},
            "topologyKey": "kubernetes.io/hostname"}]}}});
    let pods: Vec<Pod> = (0..3)
        .map(|i| pod(&format!("w{i}"), anti.clone()))
        .collect();
    let d = place(&nodes(2, 110), &pods);
    assert_ne!(bound(&d[0]), bound(&d[1]));
    let Decision::Unschedulable(m) = &d[2] else {
        panic!("{:?}", d[2])
    };
    assert!(
        m.starts_with("0/2 nodes are available: 2 node(s) didn't match pod anti-affinity rules."),
        "{m}"
    );
}

#[test]
fn requests_beyond_allocatable_say_insufficient_cpu() {
    let mut p = pod("big", json!({}));
    p.spec.as_mut().unwrap().containers[0].resources =
        Some(serde_json::from_value(json!({"requests": {"cpu": "100000"}})).unwrap());
    let [Decision::Unschedulable(m)] = &place(&nodes(3, 110), &[p])[..] else {
        panic!()
    };
    assert!(
        m.starts_with("0/3 nodes are available: 3 Insufficient cpu."),
        "{m}"
    );
}

/// The loop over a store: `n` nodes of `max_pods` each, and the scheduler running.
mod queue_loop {
    use std::sync::Arc;
    use std::time::Duration;

    use serde_json::json;
    use tokio_util::sync::CancellationToken;

    use super::super::run;
    use crate::nodes::{Capacity, NodeLayout, node_object};
    use crate::store::kinds::kind;
    use crate::store::{DeleteOptions, Store, WriteMode};

    /// Registers a node as its agent does: the object, then its status.
    fn join(store: &Store, spec: &crate::nodes::NodeSpec, max_pods: usize) {
        let node = node_object(spec, Capacity::for_pods(max_pods), "2026-01-01T00:00:00Z");
        store.create(kind("nodes"), "", node.clone()).unwrap();
        store
            .update(kind("nodes"), "", &spec.name, node, WriteMode::Status)
            .unwrap();
    }

    fn lab(n: usize, max_pods: usize) -> (Arc<Store>, CancellationToken) {
        let store = Arc::new(Store::new());
        for spec in NodeLayout::new(n).nodes().iter().take(n) {
            join(&store, spec, max_pods);
        }
        let shutdown = CancellationToken::new();
        tokio::spawn(run(store.clone(), shutdown.clone()));
        (store, shutdown)
    }

    fn create_pod(store: &Store, name: &str) {
        let pod = json!({"metadata": {"name": name},
            "spec": {"containers": [{"name": "web", "image": "resil-demo:1"}]}});
        store.create(kind("pods"), "default", pod).unwrap();
    }

    fn node_of(store: &Store, name: &str) -> Option<String> {
        let pod = store.get("pods", "default", name)?;
        pod.pointer("/spec/nodeName")?.as_str().map(str::to_string)
    }

    /// Waits (bounded) until `name` is bound; its node.
    async fn bound(store: &Store, name: &str) -> String {
        for _ in 0..500 {
            if let Some(n) = node_of(store, name) {
                return n;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("{name} was not bound in 5 s");
    }

    /// Waits until `name` carries `PodScheduled=False`.
    async fn parked(store: &Store, name: &str) {
        for _ in 0..500 {
            let pod = store.get("pods", "default", name).unwrap();
            let conditions = pod.pointer("/status/conditions").cloned();
            if conditions.is_some_and(|c| c.to_string().contains("Unschedulable")) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("{name} was not marked unschedulable in 5 s");
    }

    /// The store's version stays put for a while: nothing writes in a loop.
    async fn quiet(store: &Store) {
        let before = store.resource_version();
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(
            store.resource_version(),
            before,
            "the scheduler keeps writing"
        );
    }

    #[tokio::test]
    async fn a_parked_pod_is_bound_once_a_bound_pod_is_deleted() {
        let (store, shutdown) = lab(1, 1);
        create_pod(&store, "first");
        assert_eq!(bound(&store, "first").await, "lab-node-1");
        create_pod(&store, "second");
        parked(&store, "second").await;
        quiet(&store).await;
        store
            .delete(kind("pods"), "default", "first", &DeleteOptions::default())
            .unwrap();
        assert_eq!(bound(&store, "second").await, "lab-node-1");
        shutdown.cancel();
    }

    /// Sets `spec.unschedulable` of `node`, as `kubectl cordon` / `uncordon` do.
    fn cordon(store: &Store, node: &str, unschedulable: bool) {
        let mut object = store.get("nodes", "", node).unwrap();
        object["spec"]["unschedulable"] = json!(unschedulable);
        store
            .update(kind("nodes"), "", node, object, WriteMode::Main)
            .unwrap();
    }

    #[tokio::test]
    async fn a_parked_pod_is_bound_once_its_node_is_uncordoned() {
        let (store, shutdown) = lab(1, 10);
        cordon(&store, "lab-node-1", true);
        create_pod(&store, "web");
        parked(&store, "web").await;
        quiet(&store).await;
        cordon(&store, "lab-node-1", false);
        assert_eq!(bound(&store, "web").await, "lab-node-1");
        shutdown.cancel();
    }

    #[tokio::test]
    async fn a_node_that_joins_takes_the_pods_no_node_took() {
        let (store, shutdown) = lab(0, 10);
        create_pod(&store, "early");
        parked(&store, "early").await;
        quiet(&store).await;
        join(&store, &NodeLayout::new(1).nodes()[0], 10);
        assert_eq!(bound(&store, "early").await, "lab-node-1");
        shutdown.cancel();
    }
}
