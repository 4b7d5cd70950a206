//! Infrastructure faults on nodes, through kube-rs only: a node or a whole zone powered
//! off (`node-failure`, `zone-outage`) and a drain (`drain`: cordon, then evictions).
//!
//! **Powering a node off.** The lab is told apart by what its nodes report
//! (`status.nodeInfo.containerRuntimeVersion` `resil://process`); there a node is switched
//! off with the lab's stop switch, the annotation `lab.resil.dev/stopped: "true"`: the node
//! stops heartbeating and its pod processes are killed, as a machine losing power, until
//! the annotation goes. A real cluster has no such switch: powering off a VM is the
//! provider's business, so a fault there needs a hook (`--hook CMD`), a command run once
//! per node as `sh -c CMD` with `RESIL_NODE_ACTION=stop|start`, `RESIL_NODE` and
//! `RESIL_ZONE` set (for example `gcloud compute instances stop $RESIL_NODE` and `start`).
//!
//! **Draining.** Upstream `kubectl drain` (`staging/src/k8s.io/kubectl/pkg/drain/drain.go`):
//! cordon (`spec.unschedulable`), then one Eviction per pod on the node (DaemonSet and
//! mirror pods are left, as kubectl leaves them), retrying those a PodDisruptionBudget
//! refuses (429) with a backoff until `timeout`, then waiting for the evicted pods to go.
//! The revert uncordons. kube-rs's client retries a 429 by itself with a growing backoff,
//! so each eviction attempt is bounded ([`ATTEMPT`]) and the drain keeps its own count.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::ResourceExt;
use kube::api::{Api, EvictParams, ListParams, Patch};
use serde_json::json;

use super::execute::{ExecuteError, Scope};

/// The lab's stop switch (see `crates/lab/src/nodes/mod.rs`), set through the API.
pub const STOPPED_ANNOTATION: &str = "lab.resil.dev/stopped";
/// The lab's control-plane switch on Namespace `kube-system` (see
/// `crates/lab/src/api/outage.rs`): the API answers 503 until the time it holds.
pub const API_OUTAGE_ANNOTATION: &str = "lab.resil.dev/api-outage-until";
/// The zone label nodes carry.
pub const ZONE_LABEL: &str = "topology.kubernetes.io/zone";
/// What the lab's nodes report as their container runtime.
const LAB_RUNTIME: &str = "resil://";
/// Longest one eviction attempt may take (kube-rs retries 429s inside it).
const ATTEMPT: Duration = Duration::from_millis(250);
/// The drain's backoff between rounds of refused evictions: first and longest.
const BACKOFF: (Duration, Duration) = (Duration::from_millis(200), Duration::from_secs(2));
/// Longest a provider hook may run.
const HOOK_TIMEOUT: Duration = Duration::from_secs(300);

type Result<T> = std::result::Result<T, ExecuteError>;

fn api_err(what: impl Into<String>) -> impl FnOnce(kube::Error) -> ExecuteError {
    let what = what.into();
    move |source| ExecuteError::Api { what, source }
}

/// What a drain did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Drained {
    /// Pods whose eviction was accepted (`namespace/name`), in order.
    pub evicted: Vec<String>,
    /// Refusals by a disruption budget (429) per pod, for pods refused at least once.
    pub refused: BTreeMap<String, u32>,
    /// From the cordon to the last eviction accepted and every evicted pod gone.
    pub waited: Duration,
    /// Pods still on the node when `timeout` ran out.
    pub left: Vec<String>,
}

impl Drained {
    /// One line: `evicted 3 pod(s) in 4.2 s; a PodDisruptionBudget refused web-blue-x 5×`.
    pub fn summary(&self) -> String {
        let mut line = format!(
            "evicted {} pod(s) in {:.1} s",
            self.evicted.len(),
            self.waited.as_secs_f64()
        );
        if !self.refused.is_empty() {
            let refused: Vec<String> = self
                .refused
                .iter()
                .map(|(pod, n)| format!("{pod} {n}×"))
                .collect();
            line.push_str(&format!(
                "; PodDisruptionBudgets refused evictions of {}",
                refused.join(", ")
            ));
        }
        if !self.left.is_empty() {
            line.push_str(&format!(
                "; timed out with {} still on the node",
                self.left.join(", ")
            ));
        }
        line
    }
}

/// How nodes are switched off and on here.
#[derive(Debug, Clone, PartialEq)]
pub enum Power {
    /// The lab's stop switch.
    Lab,
    /// A provider hook (`sh -c CMD`).
    Hook(String),
}

impl Scope {
    fn nodes(&self) -> Api<Node> {
        Api::all(self.client.clone())
    }

    /// The names of every node (sorted).
    pub async fn node_names(&self) -> Result<Vec<String>> {
        let all = self
            .nodes()
            .list(&ListParams::default())
            .await
            .map_err(api_err("listing nodes"))?;
        let mut names: Vec<String> = all.items.iter().map(|n| n.name_any()).collect();
        names.sort();
        Ok(names)
    }

    /// The names of the nodes of `zone` (sorted); none is an error naming the zones.
    pub async fn nodes_in_zone(&self, zone: &str) -> Result<Vec<String>> {
        let all = self
            .nodes()
            .list(&ListParams::default())
            .await
            .map_err(api_err("listing nodes"))?;
        let mut zones: Vec<String> = Vec::new();
        let mut names: Vec<String> = Vec::new();
        for node in &all.items {
            let z = node.labels().get(ZONE_LABEL).cloned().unwrap_or_default();
            if z == zone {
                names.push(node.name_any());
            }
            if !z.is_empty() && !zones.contains(&z) {
                zones.push(z);
            }
        }
        if names.is_empty() {
            zones.sort();
            return Err(ExecuteError::NoNode(format!(
                "no node is in zone {zone} (label {ZONE_LABEL}); the zones are: {}",
                if zones.is_empty() {
                    "none labelled".to_string()
                } else {
                    zones.join(", ")
                }
            )));
        }
        names.sort();
        Ok(names)
    }

    /// The node, or an error naming the nodes there are.
    async fn node(&self, name: &str) -> Result<Node> {
        match self.nodes().get_opt(name).await {
            Ok(Some(node)) => Ok(node),
            Ok(None) => {
                let all = self
                    .nodes()
                    .list(&ListParams::default())
                    .await
                    .map_err(api_err("listing nodes"))?;
                let names: Vec<String> = all.items.iter().map(|n| n.name_any()).collect();
                Err(ExecuteError::NoNode(format!(
                    "node {name} not found; the nodes are: {}",
                    names.join(", ")
                )))
            }
            Err(e) => Err(api_err(format!("reading node/{name}"))(e)),
        }
    }

    /// How `nodes` can be powered off: the lab's switch where they are the lab's, else
    /// the hook; neither is an error that says what is needed.
    pub async fn power(&self, nodes: &[String], hook: Option<&str>) -> Result<Power> {
        if let Some(hook) = hook.filter(|h| !h.trim().is_empty()) {
            return Ok(Power::Hook(hook.to_string()));
        }
        for name in nodes {
            let node = self.node(name).await?;
            let runtime = node
                .status
                .as_ref()
                .and_then(|s| s.node_info.as_ref())
                .map(|i| i.container_runtime_version.as_str())
                .unwrap_or_default();
            if !runtime.starts_with(LAB_RUNTIME) {
                return Err(ExecuteError::NoNode(format!(
                    "node/{name} is a real machine (runtime {runtime}): powering it off is the \
                     provider's business. Give a hook that does it, e.g. --hook 'gcloud compute \
                     instances $RESIL_NODE_ACTION $RESIL_NODE' (run with RESIL_NODE_ACTION=stop \
                     or start, RESIL_NODE, RESIL_ZONE), or use `resil chaos drain`, which works \
                     on any cluster"
                )));
            }
        }
        Ok(Power::Lab)
    }

    /// Sets the lab's control-plane switch to `until` (the API answers 503 until then), or
    /// removes it.
    pub async fn set_api_outage(&self, until: Option<chrono::DateTime<chrono::Utc>>) -> Result<()> {
        let value = until.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
        let patch = json!({"metadata": {"annotations": {API_OUTAGE_ANNOTATION: value}}});
        let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(self.client.clone());
        namespaces
            .patch(
                "kube-system",
                &super::execute::patch_params(),
                &Patch::Merge(&patch),
            )
            .await
            .map(|_| ())
            .map_err(api_err("annotating namespace/kube-system"))
    }

    /// Sets (or removes) the lab's stop switch on `node`.
    pub async fn set_stopped(&self, node: &str, stopped: bool) -> Result<()> {
        let value = stopped.then_some("true");
        let patch = json!({"metadata": {"annotations": {STOPPED_ANNOTATION: value}}});
        match self
            .nodes()
            .patch(node, &super::execute::patch_params(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if super::execute::is_not_found(&e) && !stopped => Ok(()),
            Err(e) => Err(api_err(format!("annotating node/{node}"))(e)),
        }
    }

    /// Whether the lab's stop switch is set on `node` (`None`: the node is gone).
    pub async fn is_stopped(&self, node: &str) -> Result<Option<bool>> {
        let live = self
            .nodes()
            .get_opt(node)
            .await
            .map_err(api_err(format!("reading node/{node}")))?;
        Ok(live
            .map(|n| n.annotations().get(STOPPED_ANNOTATION).map(String::as_str) == Some("true")))
    }

    /// Runs the provider hook for one node.
    pub async fn run_hook(&self, hook: &str, action: &str, node: &str) -> Result<()> {
        let zone = match self.nodes().get_opt(node).await {
            Ok(Some(n)) => n.labels().get(ZONE_LABEL).cloned().unwrap_or_default(),
            _ => String::new(),
        };
        let run = tokio::process::Command::new("sh")
            .arg("-c")
            .arg(hook)
            .env("RESIL_NODE_ACTION", action)
            .env("RESIL_NODE", node)
            .env("RESIL_ZONE", zone)
            .kill_on_drop(true)
            .output();
        let failed = |message: String| {
            ExecuteError::NoNode(format!(
                "the node hook `{hook}` ({action} {node}) {message}"
            ))
        };
        match tokio::time::timeout(HOOK_TIMEOUT, run).await {
            Err(_) => Err(failed(format!(
                "did not finish within {} s",
                HOOK_TIMEOUT.as_secs()
            ))),
            Ok(Err(e)) => Err(failed(format!("could not start: {e}"))),
            Ok(Ok(out)) if out.status.success() => Ok(()),
            Ok(Ok(out)) => Err(failed(format!(
                "failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ))),
        }
    }

    /// Cordons (or uncordons) `node`.
    pub async fn cordon(&self, node: &str, on: bool) -> Result<()> {
        let patch = json!({"spec": {"unschedulable": if on { json!(true) } else { json!(null) }}});
        match self
            .nodes()
            .patch(node, &super::execute::patch_params(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if super::execute::is_not_found(&e) && !on => Ok(()),
            Err(e) => Err(api_err(format!("cordoning node/{node}"))(e)),
        }
    }

    /// Whether `node` is cordoned (`None`: the node is gone).
    pub async fn is_cordoned(&self, node: &str) -> Result<Option<bool>> {
        let live = self
            .nodes()
            .get_opt(node)
            .await
            .map_err(api_err(format!("reading node/{node}")))?;
        Ok(live.map(|n| n.spec.and_then(|s| s.unschedulable).unwrap_or(false)))
    }

    /// The pods a drain evicts from `node`: every pod bound there, in every namespace,
    /// but DaemonSet and mirror pods and pods already finished or terminating.
    /// With `terminating`, pods being deleted count too (to wait for them to go).
    async fn drainable(&self, node: &str, terminating: bool) -> Result<Vec<(String, String)>> {
        let pods: Api<Pod> = Api::all(self.client.clone());
        let list = pods
            .list(&ListParams::default().fields(&format!("spec.nodeName={node}")))
            .await
            .map_err(api_err(format!("listing the pods on node/{node}")))?;
        Ok(list
            .items
            .into_iter()
            .filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(node))
            .filter(|p| terminating || p.metadata.deletion_timestamp.is_none())
            .filter(|p| {
                let phase = p.status.as_ref().and_then(|s| s.phase.as_deref());
                !matches!(phase, Some("Succeeded" | "Failed"))
            })
            .filter(|p| !p.annotations().contains_key("kubernetes.io/config.mirror"))
            .filter(|p| {
                !p.owner_references()
                    .iter()
                    .any(|o| o.kind == "DaemonSet" && o.controller == Some(true))
            })
            .map(|p| (p.namespace().unwrap_or_default(), p.name_any()))
            .collect())
    }

    /// One eviction: `Ok(true)` accepted (or the pod is gone), `Ok(false)` refused by a
    /// disruption budget (429, or no answer within [`ATTEMPT`] while kube-rs retries one).
    async fn evict(&self, namespace: &str, pod: &str) -> Result<bool> {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        match tokio::time::timeout(ATTEMPT, pods.evict(pod, &EvictParams::default())).await {
            Err(_) => Ok(false),
            Ok(Ok(_)) => Ok(true),
            Ok(Err(kube::Error::Api(s))) if s.code == 429 => Ok(false),
            Ok(Err(e)) if super::execute::is_not_found(&e) => Ok(true),
            Ok(Err(e)) => Err(api_err(format!("evicting pod {namespace}/{pod}"))(e)),
        }
    }

    /// Evicts every drainable pod of `node` (already cordoned), retrying refusals with a
    /// backoff, then waits for the evicted pods to be gone — all within `timeout`.
    pub async fn drain(&self, node: &str, timeout: Duration) -> Result<Drained> {
        let start = tokio::time::Instant::now();
        let deadline = start + timeout;
        let mut pending = self.drainable(node, false).await?;
        let mut out = Drained::default();
        let mut backoff = BACKOFF.0;
        while !pending.is_empty() {
            let mut refused = Vec::new();
            for (ns, pod) in pending {
                if self.evict(&ns, &pod).await? {
                    out.evicted.push(format!("{ns}/{pod}"));
                } else {
                    *out.refused.entry(format!("{ns}/{pod}")).or_default() += 1;
                    refused.push((ns, pod));
                }
            }
            pending = refused;
            let now = tokio::time::Instant::now();
            if pending.is_empty() || now >= deadline {
                break;
            }
            tokio::time::sleep(backoff.min(deadline - now)).await;
            backoff = (backoff * 2).min(BACKOFF.1);
        }
        out.left = pending.iter().map(|(ns, p)| format!("{ns}/{p}")).collect();
        // The evicted pods terminate (their grace period); the drain is done once they
        // are gone, as `kubectl drain` waits for them.
        loop {
            let gone = self.drainable(node, true).await?.is_empty() || !out.left.is_empty();
            let now = tokio::time::Instant::now();
            if gone || now >= deadline {
                if !gone {
                    out.left = self
                        .drainable(node, true)
                        .await?
                        .into_iter()
                        .map(|(ns, p)| format!("{ns}/{p}"))
                        .collect();
                }
                break;
            }
            tokio::time::sleep(Duration::from_millis(100).min(deadline - now)).await;
        }
        out.waited = start.elapsed();
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_drain_summary_names_refusals_and_what_was_left() {
        let mut d = Drained {
            evicted: vec!["ns/a".into(), "ns/b".into()],
            waited: Duration::from_millis(4200),
            ..Drained::default()
        };
        assert_eq!(d.summary(), "evicted 2 pod(s) in 4.2 s");
        d.refused.insert("ns/b".into(), 3);
        d.left.push("ns/c".into());
        let s = d.summary();
        assert!(s.contains("refused evictions of ns/b 3×"), "{s}");
        assert!(s.contains("timed out with ns/c still on the node"), "{s}");
    }
}
