//! Service address allocation: a cluster IP from 10.96.0.0/16 and node ports from the
//! lab's range (30000-32767, or a named lab's slice of it), unique across Services, kept
//! when an update omits them. Called by the store's create and update.

use serde_json::Value;

use super::{State, meta};

/// Allocates cluster IP and node ports for a Service, avoiding other Services'.
pub(super) fn allocate(state: &State, obj: &mut Value, skip: Option<&str>) {
    let namespace = obj
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let mut ips = Vec::new();
    let mut ports = Vec::new();
    for ((r, ns, name), v) in &state.objects {
        if *r != "services" || (Some(name.as_str()) == skip && *ns == namespace) {
            continue;
        }
        let (ip, p) = meta::service_allocations(v);
        ips.extend(ip);
        ports.extend(p);
    }
    meta::allocate_service(obj, &ips, &ports, state.node_ports.clone());
}

/// A Service update that omits its cluster IP or node ports keeps the allocated ones.
pub(super) fn keep_allocations(live: &Value, new: &mut Value) {
    let Some(spec) = new.get_mut("spec") else {
        return;
    };
    if spec
        .get("clusterIP")
        .and_then(Value::as_str)
        .unwrap_or("")
        .is_empty()
        && let Some(ip) = live.pointer("/spec/clusterIP")
    {
        spec["clusterIP"] = ip.clone();
        if let Some(ips) = live.pointer("/spec/clusterIPs") {
            spec["clusterIPs"] = ips.clone();
        }
    }
    let live_ports = live
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
        for p in ports {
            if p.get("nodePort").is_some() {
                continue;
            }
            let same = live_ports.iter().find(|lp| lp.get("port") == p.get("port"));
            if let Some(n) = same.and_then(|lp| lp.get("nodePort")) {
                p["nodePort"] = n.clone();
            }
        }
    }
}
