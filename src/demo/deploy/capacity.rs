//! How many demo pods a cluster can hold, and why the ones that do not fit are waiting:
//! `--replicas` is checked against the Nodes' allocatable pods (not a fixed cap), and
//! a rollout wait says which pods stay Pending and the Event that says why, instead of
//! waiting silently until its timeout.
//!
//! Called by `deploy::command`; the checks are pure over what it lists, and nothing
//! here prints.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Event, Node, Pod};
use kube::api::{Api, ListParams};

use crate::cluster::Target;

/// A node's pod capacity when it states none: the kubelet's default `--max-pods`, which
/// the embedded lab's node uses too.
pub const DEFAULT_NODE_PODS: i64 = 110;

/// How long a pod may be Pending before the rollout wait mentions it.
pub const PENDING_GRACE: chrono::Duration = chrono::Duration::seconds(5);

/// What the cluster says about its room for pods.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PodCapacity {
    /// The sum of the listed Nodes' allocatable pods.
    Nodes { nodes: usize, pods: i64 },
    /// The cluster lists no Nodes (the lab before it serves them, or no permission).
    Unlisted,
}

/// Reads the Nodes' allocatable pods; any failure to list them reads as
/// [`PodCapacity::Unlisted`] (deploying does not need Nodes).
pub async fn pod_capacity(target: &Target) -> PodCapacity {
    let nodes: Api<Node> = Api::all(target.client.clone());
    match nodes.list(&ListParams::default()).await {
        Ok(list) => capacity_of(&list.items),
        Err(_) => PodCapacity::Unlisted,
    }
}

/// [`PodCapacity`] of a Node list: allocatable pods, else capacity, else the default.
pub fn capacity_of(nodes: &[Node]) -> PodCapacity {
    if nodes.is_empty() {
        return PodCapacity::Unlisted;
    }
    let pods = nodes
        .iter()
        .map(|node| {
            let status = node.status.as_ref();
            status
                .and_then(|s| s.allocatable.as_ref()?.get("pods"))
                .or_else(|| status.and_then(|s| s.capacity.as_ref()?.get("pods")))
                .and_then(|q| q.0.trim().parse::<i64>().ok())
                .unwrap_or(DEFAULT_NODE_PODS)
        })
        .sum();
    PodCapacity::Nodes {
        nodes: nodes.len(),
        pods,
    }
}

/// Whether `replicas` per colour for `colours` Deployments fit; the refusal says why and
/// what fits.
pub fn check_replicas(replicas: i32, colours: usize, capacity: PodCapacity) -> Result<(), String> {
    let colours = colours.max(1);
    let needed = i64::from(replicas) * colours as i64;
    match capacity {
        PodCapacity::Nodes { nodes, pods } if needed > pods => Err(format!(
            "--replicas {replicas} for {colours} colour(s) needs {needed} pods, but the \
             cluster's {nodes} node(s) hold at most {pods} (their allocatable pods); give \
             --replicas {} or fewer",
            pods / colours as i64
        )),
        PodCapacity::Unlisted if i64::from(replicas) > DEFAULT_NODE_PODS => Err(format!(
            "--replicas {replicas} is more than a node's default capacity of \
             {DEFAULT_NODE_PODS} pods, and the cluster lists no nodes to say it holds more; \
             give --replicas {DEFAULT_NODE_PODS} or fewer"
        )),
        _ => Ok(()),
    }
}

/// One line per reason some of the demo's pods are Pending, e.g. `2 pod(s) Pending —
/// FailedScheduling: 0/1 nodes are available: 1 Too many pods. (web-blue-a, web-blue-b)`.
pub async fn pending(target: &Target, selector: &str) -> Vec<String> {
    let pods: Api<Pod> = Api::namespaced(target.client.clone(), &target.namespace);
    let events: Api<Event> = Api::namespaced(target.client.clone(), &target.namespace);
    let Ok(pods) = pods.list(&ListParams::default().labels(selector)).await else {
        return Vec::new();
    };
    if !pods.items.iter().any(is_pending) {
        return Vec::new();
    }
    // The lab filters Events by name only, so they are matched to pods here.
    let events = events
        .list(&ListParams::default())
        .await
        .map(|l| l.items)
        .unwrap_or_default();
    pending_lines(&pods.items, &events, chrono::Utc::now())
}

fn is_pending(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_none()
        && pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Pending")
}

/// [`pending`] over listed pods and Events: pods Pending for [`PENDING_GRACE`] or more,
/// grouped by the reason of their latest Warning Event (else their PodScheduled
/// condition), at most three names per line.
pub fn pending_lines(
    pods: &[Pod],
    events: &[Event],
    now: chrono::DateTime<chrono::Utc>,
) -> Vec<String> {
    let mut by_reason: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for pod in pods.iter().filter(|p| is_pending(p)) {
        let name = pod.metadata.name.clone().unwrap_or_default();
        let created = pod
            .metadata
            .creation_timestamp
            .as_ref()
            .and_then(|t| chrono::DateTime::from_timestamp_millis(t.0.as_millisecond()));
        if created.is_some_and(|c| now - c < PENDING_GRACE) {
            continue;
        }
        let event = events
            .iter()
            .rfind(|e| {
                e.involved_object.kind.as_deref() == Some("Pod")
                    && e.involved_object.name.as_deref() == Some(name.as_str())
                    && e.type_.as_deref() == Some("Warning")
            })
            .map(|e| {
                format!(
                    "{}: {}",
                    e.reason.as_deref().unwrap_or("Warning"),
                    e.message.as_deref().unwrap_or("").trim()
                )
            });
        let condition = || {
            let c = pod
                .status
                .as_ref()?
                .conditions
                .as_ref()?
                .iter()
                .find(|c| c.type_ == "PodScheduled" && c.status == "False")?;
            Some(format!(
                "{}: {}",
                c.reason.as_deref().unwrap_or("Unschedulable"),
                c.message.as_deref().unwrap_or("").trim()
            ))
        };
        let why = event
            .or_else(condition)
            .unwrap_or_else(|| "no Event says why yet".to_string());
        by_reason.entry(why).or_default().push(name);
    }
    by_reason
        .into_iter()
        .map(|(why, mut names)| {
            names.sort();
            let count = names.len();
            let shown = if count > 3 {
                format!("{}, ...", names[..3].join(", "))
            } else {
                names.join(", ")
            };
            format!("{count} pod(s) Pending — {why} ({shown})")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{NodeStatus, ObjectReference};
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

    fn node(allocatable: Option<&str>) -> Node {
        Node {
            status: Some(NodeStatus {
                allocatable: allocatable
                    .map(|p| BTreeMap::from([("pods".to_string(), Quantity(p.to_string()))])),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn replicas_follow_the_nodes_allocatable_pods() {
        let two = capacity_of(&[node(Some("110")), node(Some("250"))]);
        assert_eq!(
            two,
            PodCapacity::Nodes {
                nodes: 2,
                pods: 360
            }
        );
        assert!(check_replicas(180, 2, two).is_ok());
        let err = check_replicas(181, 2, two).unwrap_err();
        assert!(err.contains("needs 362 pods"), "{err}");
        assert!(err.contains("at most 360"), "{err}");
        assert!(err.contains("--replicas 180 or fewer"), "{err}");
        // A node that states nothing counts with the kubelet's default.
        assert_eq!(
            capacity_of(&[node(None)]),
            PodCapacity::Nodes {
                nodes: 1,
                pods: 110
            }
        );
    }

    #[test]
    fn without_nodes_the_cap_is_a_nodes_default_capacity_not_100() {
        assert_eq!(capacity_of(&[]), PodCapacity::Unlisted);
        assert!(check_replicas(110, 2, PodCapacity::Unlisted).is_ok());
        let err = check_replicas(5000, 2, PodCapacity::Unlisted).unwrap_err();
        assert!(err.contains("--replicas 110 or fewer"), "{err}");
    }

    fn pod(name: &str, phase: &str, age_s: i64, unschedulable: Option<&str>) -> Pod {
        let created = chrono::Utc::now() - chrono::Duration::seconds(age_s);
        let conditions: Vec<serde_json::Value> = unschedulable
            .map(|m| {
                serde_json::json!({"type": "PodScheduled", "status": "False",
                    "reason": "Unschedulable", "message": m})
            })
            .into_iter()
            .collect();
        serde_json::from_value(serde_json::json!({
            "metadata": {
                "name": name,
                "creationTimestamp": created.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            },
            "status": {"phase": phase, "conditions": conditions},
        }))
        .unwrap()
    }

    fn warning(pod: &str, reason: &str, message: &str) -> Event {
        Event {
            involved_object: ObjectReference {
                kind: Some("Pod".to_string()),
                name: Some(pod.to_string()),
                ..Default::default()
            },
            type_: Some("Warning".to_string()),
            reason: Some(reason.to_string()),
            message: Some(message.to_string()),
            ..Default::default()
        }
    }

    #[test]
    fn pending_pods_are_reported_with_their_events_reason_grouped() {
        let full = "0/1 nodes are available: 1 Too many pods.";
        let pods = [
            pod("web-blue-a", "Pending", 30, None),
            pod("web-blue-b", "Pending", 30, None),
            pod("web-blue-c", "Pending", 30, Some("0/1 nodes: no room")),
            pod("web-blue-d", "Pending", 1, None),
            pod("web-blue-e", "Running", 30, None),
        ];
        let events = [
            warning("web-blue-a", "FailedScheduling", full),
            warning("web-blue-b", "FailedScheduling", full),
        ];
        let lines = pending_lines(&pods, &events, chrono::Utc::now());
        assert_eq!(
            lines,
            [
                format!("2 pod(s) Pending — FailedScheduling: {full} (web-blue-a, web-blue-b)"),
                "1 pod(s) Pending — Unschedulable: 0/1 nodes: no room (web-blue-c)".to_string(),
            ]
        );
    }
}
