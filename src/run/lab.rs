//! The lab a scenario asks for (`target: {nodes, zones, node_monitor_grace_period,
//! default_toleration_seconds}`): the `resil lab up` that starts it, and the checks that
//! a lab already running is that lab. A running lab keeps the settings it was started
//! with, so a node-failure scenario on a lab with the upstream 300 s toleration would
//! wait five minutes for an eviction it expects in seconds; it is refused instead, with
//! what to do.
//!
//! Checked through the API alone (the lab's internals are not the toolkit's): the node
//! count and each node's zone label, and the `tolerationSeconds` the lab's admission
//! put on a demo pod. The grace period is not visible through the API; the report's
//! recovery phases show the one in force. On a cluster that is not a lab (its nodes do
//! not report the lab's runtime) the settings do not apply and a note says so. Called by
//! `run::command` and `Session::one`.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::ResourceExt;
use kube::api::{Api, ListParams};

use super::scenario;
use crate::cluster::Target;

/// What the lab's nodes report as their container runtime.
const LAB_RUNTIME: &str = "resil://";
/// The zone label.
const ZONE_LABEL: &str = "topology.kubernetes.io/zone";
/// The taint key whose default toleration the lab's admission adds.
const UNREACHABLE: &str = "node.kubernetes.io/unreachable";

/// Errors checking the lab against the scenario.
#[derive(Debug, thiserror::Error)]
pub enum LabCheckError {
    #[error("listing {what}")]
    Api {
        what: &'static str,
        #[source]
        source: kube::Error,
    },
    #[error(
        "this scenario needs a lab of {wanted}; the running one has {found}. Stop it with \
         `resil lab down` and run the scenario again (it starts the lab it needs)"
    )]
    Layout { wanted: String, found: String },
    #[error(
        "this scenario needs a lab whose pods tolerate an unreachable node for {wanted} s; \
         the running one gives {found} s. Stop it with `resil lab down` and run the \
         scenario again (it starts the lab it needs)"
    )]
    Toleration { wanted: u32, found: String },
}

/// Whether the scenario's lab settings apply here: every node is the lab's. A note says
/// so when they do not.
pub async fn applies(target: &Target, settings: &scenario::Target) -> Result<bool, LabCheckError> {
    if !settings.has_lab_settings() {
        return Ok(false);
    }
    let nodes = nodes(target).await?;
    let lab = !nodes.is_empty()
        && nodes.iter().all(|n| {
            n.status
                .as_ref()
                .and_then(|s| s.node_info.as_ref())
                .is_some_and(|i| i.container_runtime_version.starts_with(LAB_RUNTIME))
        });
    if !lab {
        eprintln!(
            "note: the scenario's lab settings (nodes, zones, grace period, toleration) do not \
             apply on {}: its own nodes and timings hold",
            target.context
        );
    }
    Ok(lab)
}

async fn nodes(target: &Target) -> Result<Vec<Node>, LabCheckError> {
    Api::<Node>::all(target.client.clone())
        .list(&ListParams::default())
        .await
        .map(|l| l.items)
        .map_err(|source| LabCheckError::Api {
            what: "nodes",
            source,
        })
}

/// The running lab has the scenario's nodes in its zones.
pub async fn check_layout(
    target: &Target,
    settings: &scenario::Target,
) -> Result<(), LabCheckError> {
    let Some(wanted) = settings.node_zones() else {
        return Ok(());
    };
    let found: Vec<String> = nodes(target)
        .await?
        .iter()
        .map(|n| n.labels().get(ZONE_LABEL).cloned().unwrap_or_default())
        .collect();
    let (wanted, found) = (layout(&wanted), layout(&found));
    if wanted != found {
        return Err(LabCheckError::Layout { wanted, found });
    }
    Ok(())
}

/// `4 node(s): 3 in lab-a, 1 in lab-b`.
fn layout(zones: &[String]) -> String {
    let mut per: BTreeMap<&str, usize> = BTreeMap::new();
    for z in zones {
        *per.entry(z.as_str()).or_default() += 1;
    }
    let parts: Vec<String> = per.iter().map(|(z, n)| format!("{n} in {z}")).collect();
    format!("{} node(s): {}", zones.len(), parts.join(", "))
}

/// The demo's pods carry the scenario's toleration of an unreachable node (checked on
/// the pods of `color`'s Deployment once they exist).
pub async fn check_toleration(
    target: &Target,
    settings: &scenario::Target,
    color: &str,
) -> Result<(), LabCheckError> {
    let Some(wanted) = settings.default_toleration_seconds else {
        return Ok(());
    };
    let pods: Api<Pod> = Api::namespaced(target.client.clone(), &target.namespace);
    let list = pods
        .list(&ListParams::default().labels(&format!("app=web,version={color}")))
        .await
        .map_err(|source| LabCheckError::Api {
            what: "the demo's pods",
            source,
        })?;
    let found = list.items.iter().find_map(|p| {
        p.spec
            .as_ref()?
            .tolerations
            .as_ref()?
            .iter()
            .find(|t| t.key.as_deref() == Some(UNREACHABLE))
            .map(|t| t.toleration_seconds)
    });
    match found {
        Some(Some(s)) if s == i64::from(wanted) => Ok(()),
        // A pod that tolerates the taint for ever, or none: not what the scenario needs.
        Some(s) => Err(LabCheckError::Toleration {
            wanted,
            found: s.map_or("no limit".into(), |s| s.to_string()),
        }),
        None if list.items.is_empty() => Ok(()),
        None => Err(LabCheckError::Toleration {
            wanted,
            found: "no toleration".into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_layout_counts_nodes_per_zone() {
        let zones = ["lab-a", "lab-b", "lab-a", "lab-a"].map(String::from);
        assert_eq!(layout(&zones), "4 node(s): 3 in lab-a, 1 in lab-b");
    }

    #[test]
    fn settings_give_lab_up_flags_and_the_zone_of_each_node() {
        let s = scenario::Scenario::parse(
            "name: t\ntarget: {nodes: 4, zones: [a, a, b], node_monitor_grace_period: 2s, \
             default_toleration_seconds: 3}\nload: {rate: 1, duration: 1s}\n",
        )
        .unwrap();
        assert_eq!(
            s.target.lab_up_args(),
            [
                "--nodes",
                "4",
                "--zones",
                "a,a,b",
                "--node-monitor-grace-period",
                "2000ms",
                "--default-toleration-seconds",
                "3"
            ]
        );
        assert_eq!(
            s.target.node_zones().unwrap(),
            ["lab-a", "lab-a", "lab-b", "lab-a"]
        );
    }

    #[test]
    fn lab_settings_off_the_lab_or_out_of_range_are_refused() {
        let with = |target: &str| {
            scenario::Scenario::parse(&format!(
                "name: t\ntarget: {target}\nload: {{rate: 1, duration: 1s}}\n"
            ))
        };
        let err = with("{lab: false, context: kind-x, nodes: 3}").unwrap_err();
        assert!(err.contains("need `lab: true`"), "{err}");
        assert!(
            with("{nodes: 0}")
                .unwrap_err()
                .contains("between 1 and 250")
        );
        assert!(with("{zones: []}").unwrap_err().contains("target.zones"));
        assert!(
            with("{zones: [\"a b\"]}")
                .unwrap_err()
                .contains("target.zones")
        );
        let err = with("{node_monitor_grace_period: 0s}").unwrap_err();
        assert!(err.contains("longer than zero"), "{err}");
        assert!(with("{nodes: 2, zones: [a]}").is_ok());
    }
}
