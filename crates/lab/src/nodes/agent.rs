//! The node agent: the part of each node's kubelet that talks about the node itself
//! (upstream `pkg/kubelet/kubelet_node_status.go` and `pkg/kubelet/nodelease`). At start
//! it registers every node of the layout (creating its Node, or refreshing the status of
//! one kept from an earlier run while keeping its spec — cordons and taints survive a
//! restart) and removes the lab's Nodes no longer in the layout. Then, every renew period,
//! for each node not stopped ([`super::STOPPED`]) it renews the node's Lease in
//! `kube-node-lease` and, when the Ready condition is not `True` (a node coming back) or
//! its heartbeat is older than [`STATUS_REPORT`], posts a fresh Ready status. A stopped
//! node posts nothing, so the node lifecycle controller sees it go silent.
//!
//! Started by `controllers::runtime::start` with the other loops.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::{Capacity, LEASE_NAMESPACE, NodeSpec, is_stopped, node_object, ready_conditions};
use crate::controllers::runtime::write_status;
use crate::store::kinds::kind;
use crate::store::{DeleteOptions, Store, WriteMode};

/// How long a Lease is valid (upstream `--node-lease-duration-seconds`, 40).
pub const LEASE_SECONDS: i64 = 40;
/// The longest a healthy node goes without posting its status (upstream
/// `nodeStatusReportFrequency`, 5 min; the Lease is the heartbeat in between).
pub const STATUS_REPORT: Duration = Duration::from_secs(60);

/// The agent's settings.
#[derive(Debug, Clone)]
pub struct Agent {
    /// The nodes of the layout.
    pub nodes: Vec<NodeSpec>,
    /// What each offers.
    pub capacity: Capacity,
    /// How often Leases are renewed.
    pub renew: Duration,
}

/// The Lease renew period for a node monitor grace period: a quarter of it (upstream
/// renews every 10 s against 40 s), at most 10 s and at least 100 ms.
pub fn renew_period(grace: Duration) -> Duration {
    (grace / 4).clamp(Duration::from_millis(100), Duration::from_secs(10))
}

/// Registers the nodes now (so the scheduler finds them at once), then keeps them alive
/// until `shutdown`.
pub async fn run(store: Arc<Store>, agent: Agent, shutdown: CancellationToken) {
    register(&store, &agent);
    let mut tick = tokio::time::interval(agent.renew);
    loop {
        tokio::select! {
            // Time to renew.
            _ = tick.tick() => heartbeat(&store, &agent),
            // The lab stops.
            _ = shutdown.cancelled() => return,
        }
    }
}

/// Creates or refreshes every node of the layout and removes the lab's other nodes.
pub fn register(store: &Store, agent: &Agent) {
    store.ensure_namespace(LEASE_NAMESPACE);
    let now = now_secs();
    for spec in &agent.nodes {
        let want = node_object(spec, agent.capacity, &now);
        match store.get("nodes", "", &spec.name) {
            None => create(store, spec, agent.capacity),
            Some(mut live) => {
                // Labels refreshed, the user's spec and annotations kept.
                for (k, v) in want["metadata"]["labels"].as_object().into_iter().flatten() {
                    live["metadata"]["labels"][k] = v.clone();
                }
                let _ = store.update(kind("nodes"), "", &spec.name, live, WriteMode::Main);
                write_status(store, "nodes", "", &spec.name, want["status"].clone());
            }
        }
    }
    for node in store.list("nodes", None).items {
        let name = node["metadata"]["name"].as_str().unwrap_or_default();
        if !agent.nodes.iter().any(|n| n.name == name) {
            let _ = store.delete(kind("nodes"), "", name, &DeleteOptions::default());
            let _ = store.delete(
                kind("leases"),
                LEASE_NAMESPACE,
                name,
                &DeleteOptions::default(),
            );
        }
    }
}

/// One renewal round over the running nodes.
fn heartbeat(store: &Store, agent: &Agent) {
    for spec in &agent.nodes {
        let Some(node) = store.get("nodes", "", &spec.name) else {
            // Deleted by hand: a kubelet registers itself again.
            create(store, spec, agent.capacity);
            continue;
        };
        if is_stopped(&node) {
            continue;
        }
        renew_lease(store, &node);
        if status_due(&node, chrono::Utc::now()) {
            post_ready(store, spec, agent.capacity, &node);
        }
    }
}

/// Whether the node's Ready status must be posted now.
fn status_due(node: &Value, now: chrono::DateTime<chrono::Utc>) -> bool {
    let Some(ready) = condition(node, "Ready") else {
        return true;
    };
    if ready["status"] != "True" {
        return true;
    }
    let beat = ready["lastHeartbeatTime"]
        .as_str()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok());
    beat.is_none_or(|b| now.signed_duration_since(b).to_std().unwrap_or_default() > STATUS_REPORT)
}

/// The node's condition of `type_`.
pub fn condition<'a>(node: &'a Value, type_: &str) -> Option<&'a Value> {
    node.pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
}

/// Creates the node, then writes its status (a create starts with an empty one).
fn create(store: &Store, spec: &NodeSpec, capacity: Capacity) {
    let want = node_object(spec, capacity, &now_secs());
    let status = want["status"].clone();
    match store.create(kind("nodes"), "", want) {
        Ok(_) => write_status(store, "nodes", "", &spec.name, status),
        Err(e) => tracing::warn!("registering node {}: {e}", spec.name),
    }
}

/// Posts the node's whole status with healthy conditions, keeping each condition's
/// transition time when its status does not change.
fn post_ready(store: &Store, spec: &NodeSpec, capacity: Capacity, node: &Value) {
    let name = spec.name.as_str();
    let mut status = node_object(spec, capacity, &now_secs())["status"].take();
    let mut conditions = ready_conditions(&now_secs());
    for c in conditions.as_array_mut().into_iter().flatten() {
        let type_ = c["type"].as_str().unwrap_or_default().to_string();
        if let Some(old) = condition(node, &type_)
            && old["status"] == c["status"]
        {
            c["lastTransitionTime"] = old["lastTransitionTime"].clone();
        }
    }
    // The boot ID of a running node stays the same.
    if let Some(boot) = node.pointer("/status/nodeInfo/bootID") {
        status["nodeInfo"]["bootID"] = boot.clone();
    }
    status["conditions"] = conditions;
    write_status(store, "nodes", "", name, status);
}

/// Creates or renews the node's Lease.
fn renew_lease(store: &Store, node: &Value) {
    let name = node["metadata"]["name"].as_str().unwrap_or_default();
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    match store.get("leases", LEASE_NAMESPACE, name) {
        Some(mut lease) => {
            lease["spec"]["renewTime"] = json!(now);
            lease["spec"]["holderIdentity"] = json!(name);
            let _ = store.update(
                kind("leases"),
                LEASE_NAMESPACE,
                name,
                lease,
                WriteMode::Main,
            );
        }
        None => {
            let lease = json!({
                "metadata": {
                    "name": name,
                    "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": name,
                                         "uid": node["metadata"]["uid"]}],
                },
                "spec": {"holderIdentity": name, "leaseDurationSeconds": LEASE_SECONDS,
                         "renewTime": now},
            });
            if let Err(e) = store.create(kind("leases"), LEASE_NAMESPACE, lease) {
                tracing::debug!("creating the lease of node {name}: {e}");
            }
        }
    }
}

fn now_secs() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewals_come_four_times_per_grace_period_within_bounds() {
        assert_eq!(
            renew_period(Duration::from_secs(40)),
            Duration::from_secs(10)
        );
        assert_eq!(
            renew_period(Duration::from_secs(2)),
            Duration::from_millis(500)
        );
        assert_eq!(
            renew_period(Duration::from_millis(10)),
            Duration::from_millis(100)
        );
    }

    #[test]
    fn a_not_ready_or_stale_node_posts_its_status() {
        let now = chrono::Utc::now();
        let at = |t: chrono::DateTime<chrono::Utc>| {
            json!({"status": {"conditions": ready_conditions(
                &t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))}})
        };
        assert!(!status_due(&at(now), now));
        assert!(status_due(&at(now - chrono::Duration::seconds(61)), now));
        let mut unknown = at(now);
        unknown["status"]["conditions"][3]["status"] = json!("Unknown");
        assert!(status_due(&unknown, now));
    }
}
