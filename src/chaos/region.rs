//! A region outage, decided then injected: every node of the region's cluster off at
//! once (the lab's stop switch, or a provider hook), or — where no node can be powered
//! off — every Deployment of the namespace scaled to zero. Deciding first lets `resil
//! chaos region-outage` print the plan before it acts; the runner's `region-outage`
//! step injects it at once. Both journal it, so a revert brings the region back.

use std::collections::BTreeMap;
use std::time::Duration;

use super::execute::{ExecuteError, Scope};
use super::injector::Injector;
use super::journal::Entry;
use super::nodes::Power;

/// How a region goes down.
#[derive(Debug, Clone)]
pub struct RegionDown {
    /// Every node of the cluster (none with `workloads_only`).
    pub nodes: Vec<String>,
    /// How they are powered off; `None`: the workloads are scaled to zero instead.
    pub how: Option<Power>,
    /// With `how` = `None`: each Deployment's replicas, to scale back to.
    pub workloads: BTreeMap<String, i32>,
}

impl RegionDown {
    /// Decides how `region` (the context, for messages) goes down: its nodes by the lab's
    /// switch or `hook`, else (or with `workloads_only`) its workloads.
    pub async fn decide(
        scope: &Scope,
        hook: Option<&str>,
        workloads_only: bool,
        region: &str,
    ) -> anyhow::Result<RegionDown> {
        let nodes = match workloads_only {
            true => Vec::new(),
            false => scope.node_names().await?,
        };
        let how = match nodes.is_empty() {
            true => None,
            false => match scope.power(&nodes, hook).await {
                Ok(how) => Some(how),
                // A real cluster without a hook: its workloads go down instead.
                Err(ExecuteError::NoNode(_)) => None,
                Err(e) => return Err(e.into()),
            },
        };
        let workloads = match how {
            Some(_) => BTreeMap::new(),
            None => {
                let w = scope.scaled_deployments().await?;
                if w.is_empty() {
                    anyhow::bail!(
                        "region {region}: no node can be powered off and no Deployment in {} \
                         has replicas to take down (deploy the demo there first, or give \
                         --hook)",
                        scope.namespace
                    );
                }
                w
            }
        };
        Ok(RegionDown {
            nodes,
            how,
            workloads,
        })
    }

    /// What it will do, in words.
    pub fn describe(&self, namespace: &str) -> String {
        match &self.how {
            Some(Power::Lab) => format!(
                "power off every node ({}) with the lab's stop switch",
                self.nodes.join(", ")
            ),
            Some(Power::Hook(h)) => format!(
                "power off every node ({}) with hook `{h}`",
                self.nodes.join(", ")
            ),
            None => format!(
                "scale every Deployment of {namespace} to zero ({})",
                self.workloads
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }

    /// Takes the region down for `duration`, journaled by `injector`.
    pub async fn inject(&self, injector: &Injector, duration: Duration) -> anyhow::Result<Entry> {
        match &self.how {
            Some(how) => {
                injector
                    .node_failure("region-outage", &self.nodes, how, duration)
                    .await
            }
            None => injector.workloads_outage(&self.workloads, duration).await,
        }
    }
}
