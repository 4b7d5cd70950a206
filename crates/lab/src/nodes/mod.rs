//! The lab's nodes as objects: how many, in which zones, with which names, labels,
//! capacity, addresses and conditions — the core/v1 Node a kind or GKE node shows — and
//! the node agent (`agent.rs`) that registers them, renews their Leases in
//! `kube-node-lease` and honours the lab's stop switch.
//!
//! **The stop switch.** A Node annotated `lab.resil.dev/stopped: "true"` ([`STOPPED`]) is
//! a node whose machine is off: its agent stops renewing the Lease and posting status, and
//! the kubelet stops its pods' processes (they stay in the store as a dead node's pods
//! do). Removing the annotation starts it again. This is the lab's internal API for
//! tests and chaos: anything with kube-rs can patch it.
//!
//! Node `i` (from 1) is `lab-node-i`, in zone `zones[(i-1) % len]`, labelled
//! `topology.kubernetes.io/zone=<region>-<zone>` the way GKE names zones
//! (`us-central1-a`). Its InternalIP, which its pods listen on, is `127.0.(i-1).1` on
//! Linux, where all of 127/8 is loopback (so node 1 keeps 127.0.0.1), and `127.0.0.1`
//! elsewhere.

pub(crate) mod agent;

use serde_json::{Value, json};

/// The annotation that stops a node (value `"true"`); see the module docs.
pub const STOPPED: &str = "lab.resil.dev/stopped";
/// Where node Leases live, as upstream.
pub const LEASE_NAMESPACE: &str = "kube-node-lease";
/// Label keys upstream sets on every node.
pub const HOSTNAME_LABEL: &str = "kubernetes.io/hostname";
/// The zone label the scheduler's spreading reads.
pub const ZONE_LABEL: &str = "topology.kubernetes.io/zone";
/// The region label.
pub const REGION_LABEL: &str = "topology.kubernetes.io/region";
/// The kubelet version nodes report (matches `/version`'s minor).
pub const KUBELET_VERSION: &str = "v1.32.0-resil";

/// How many nodes, over which zones, in which region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeLayout {
    /// Number of nodes (at least 1).
    pub count: usize,
    /// Zone suffixes, used round-robin (`a`, `b`, `c`).
    pub zones: Vec<String>,
    /// The region (`lab`).
    pub region: String,
}

impl NodeLayout {
    /// `count` nodes over zones `a,b,c` in region `lab`.
    pub fn new(count: usize) -> NodeLayout {
        NodeLayout {
            count,
            zones: ["a", "b", "c"].map(String::from).to_vec(),
            region: "lab".to_string(),
        }
    }

    /// The nodes, in order.
    pub fn nodes(&self) -> Vec<NodeSpec> {
        (1..=self.count.max(1))
            .map(|i| {
                let zone = self
                    .zones
                    .get((i - 1) % self.zones.len().max(1))
                    .cloned()
                    .unwrap_or_else(|| "a".to_string());
                NodeSpec {
                    name: format!("lab-node-{i}"),
                    zone: format!("{}-{zone}", self.region),
                    region: self.region.clone(),
                    ip: node_ip(i),
                }
            })
            .collect()
    }
}

/// One node of the layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeSpec {
    /// `lab-node-i`.
    pub name: String,
    /// `<region>-<zone>`.
    pub zone: String,
    /// The region.
    pub region: String,
    /// Its InternalIP.
    pub ip: String,
}

/// Node `i`'s address: `127.0.(i-1).1` where the whole loopback /8 answers (Linux), so
/// the first node — the only one of a one-node lab — keeps 127.0.0.1; elsewhere every
/// node has 127.0.0.1.
fn node_ip(i: usize) -> String {
    if cfg!(target_os = "linux") && (1..=256).contains(&i) {
        format!("127.0.{}.1", i - 1)
    } else {
        "127.0.0.1".to_string()
    }
}

/// What a node offers (the kubelet's capacity, all allocatable).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capacity {
    /// Pods at once (`--max-pods`).
    pub pods: usize,
    /// CPU in millicores.
    pub cpu_millis: i64,
    /// Memory in bytes.
    pub memory_bytes: i64,
}

impl Capacity {
    /// The machine's CPUs and 16 GiB of memory per node, with room for `pods` pods.
    pub fn for_pods(pods: usize) -> Capacity {
        let cpus = std::thread::available_parallelism().map_or(4, |n| n.get()) as i64;
        Capacity {
            pods,
            cpu_millis: cpus.max(4) * 1000,
            memory_bytes: 16 << 30,
        }
    }
}

/// The Node object the agent registers for `spec` (metadata, spec and status).
pub fn node_object(spec: &NodeSpec, capacity: Capacity, now: &str) -> Value {
    let resources = json!({
        "cpu": format!("{}m", capacity.cpu_millis),
        "memory": format!("{}Ki", capacity.memory_bytes / 1024),
        "pods": capacity.pods.to_string(),
        "ephemeral-storage": "100Gi",
    });
    json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": spec.name,
            "labels": {
                "kubernetes.io/arch": go_arch(),
                "kubernetes.io/os": "linux",
                "beta.kubernetes.io/arch": go_arch(),
                "beta.kubernetes.io/os": "linux",
                HOSTNAME_LABEL: spec.name,
                ZONE_LABEL: spec.zone,
                REGION_LABEL: spec.region,
            },
            "annotations": {"node.alpha.kubernetes.io/ttl": "0"},
        },
        "spec": {"podCIDR": pod_cidr(&spec.ip), "podCIDRs": [pod_cidr(&spec.ip)]},
        "status": {
            "capacity": resources,
            "allocatable": resources,
            "addresses": [
                {"type": "InternalIP", "address": spec.ip},
                {"type": "Hostname", "address": spec.name},
            ],
            "conditions": ready_conditions(now),
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": node_info(&spec.name),
            "phase": "Running",
        },
    })
}

/// The four pressure conditions and Ready, as a healthy kubelet posts them.
pub fn ready_conditions(now: &str) -> Value {
    let c = |type_: &str, status: &str, reason: &str, message: &str| {
        json!({"type": type_, "status": status, "reason": reason, "message": message,
               "lastHeartbeatTime": now, "lastTransitionTime": now})
    };
    json!([
        c(
            "MemoryPressure",
            "False",
            "KubeletHasSufficientMemory",
            "kubelet has sufficient memory available"
        ),
        c(
            "DiskPressure",
            "False",
            "KubeletHasNoDiskPressure",
            "kubelet has no disk pressure"
        ),
        c(
            "PIDPressure",
            "False",
            "KubeletHasSufficientPID",
            "kubelet has sufficient PID available"
        ),
        c(
            "Ready",
            "True",
            "KubeletReady",
            "kubelet is posting ready status"
        ),
    ])
}

fn pod_cidr(ip: &str) -> String {
    // 127.0.n.1 → 127.0.n.0/24; the fallback address shares 127.0.0.0/24.
    let prefix = ip.rsplit_once('.').map_or("127.0.0", |(p, _)| p);
    format!("{prefix}.0/24")
}

fn node_info(name: &str) -> Value {
    json!({
        "architecture": go_arch(),
        "bootID": uuid::Uuid::new_v4().to_string(),
        "containerRuntimeVersion": "resil://process",
        "kernelVersion": kernel_version(),
        "kubeProxyVersion": KUBELET_VERSION,
        "kubeletVersion": KUBELET_VERSION,
        "machineID": name,
        "operatingSystem": "linux",
        "osImage": "resil lab (local processes)",
        "systemUUID": name,
    })
}

fn kernel_version() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| std::env::consts::OS.to_string())
}

fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// Whether the node carries the stop switch.
pub fn is_stopped(node: &Value) -> bool {
    node.pointer("/metadata/annotations")
        .and_then(|a| a.get(STOPPED))
        .and_then(Value::as_str)
        == Some("true")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_are_named_and_spread_over_zones_round_robin() {
        let nodes = NodeLayout::new(4).nodes();
        let names: Vec<&str> = nodes.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(
            names,
            ["lab-node-1", "lab-node-2", "lab-node-3", "lab-node-4"]
        );
        let zones: Vec<&str> = nodes.iter().map(|n| n.zone.as_str()).collect();
        assert_eq!(zones, ["lab-a", "lab-b", "lab-c", "lab-a"]);
    }

    #[test]
    fn a_node_object_carries_the_upstream_labels_and_capacity() {
        let spec = &NodeLayout::new(1).nodes()[0];
        let node = node_object(spec, Capacity::for_pods(7), "2026-01-01T00:00:00Z");
        assert_eq!(node["metadata"]["labels"][ZONE_LABEL], "lab-a");
        assert_eq!(node["metadata"]["labels"][HOSTNAME_LABEL], "lab-node-1");
        assert_eq!(node["status"]["allocatable"]["pods"], "7");
        assert_eq!(node["status"]["addresses"][0]["address"], spec.ip.as_str());
        assert!(!is_stopped(&node));
    }
}
