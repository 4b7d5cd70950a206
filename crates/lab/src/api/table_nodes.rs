//! Table columns and cells for Nodes and PodDisruptionBudgets, as kubectl prints them for
//! a real cluster (upstream `pkg/printers/internalversion/printers.go`: `printNode`,
//! `printPodDisruptionBudget`). Called by `table.rs`.

use serde_json::{Value, json};

use super::table::{age, at, text};

fn column(name: &str, ty: &str, priority: u8) -> Value {
    let format = if name == "Name" { "name" } else { "" };
    json!({"name": name, "type": ty, "format": format, "description": name, "priority": priority})
}

/// NAME STATUS ROLES AGE VERSION; wide: INTERNAL-IP EXTERNAL-IP OS-IMAGE KERNEL-VERSION
/// CONTAINER-RUNTIME.
pub fn node_columns() -> Vec<Value> {
    let s = |n: &str| column(n, "string", 0);
    let wide = |n: &str| column(n, "string", 1);
    vec![
        s("Name"),
        s("Status"),
        s("Roles"),
        s("Age"),
        s("Version"),
        wide("Internal-IP"),
        wide("External-IP"),
        wide("OS-Image"),
        wide("Kernel-Version"),
        wide("Container-Runtime"),
    ]
}

/// `Ready`, `NotReady` or `Unknown`, then `,SchedulingDisabled` when cordoned.
pub fn node_status(o: &Value) -> String {
    let ready = at(o, "/status/conditions")
        .and_then(Value::as_array)
        .and_then(|c| c.iter().find(|c| c["type"] == "Ready"))
        .map(|c| c["status"].as_str().unwrap_or(""));
    let mut status = match ready {
        Some("True") => "Ready",
        Some("False") => "NotReady",
        _ => "Unknown",
    }
    .to_string();
    if at(o, "/spec/unschedulable") == Some(&json!(true)) {
        status.push_str(",SchedulingDisabled");
    }
    status
}

fn address(o: &Value, type_: &str) -> String {
    at(o, "/status/addresses")
        .and_then(Value::as_array)
        .and_then(|a| a.iter().find(|a| a["type"] == type_))
        .and_then(|a| a["address"].as_str())
        .unwrap_or("<none>")
        .to_string()
}

fn roles(o: &Value) -> String {
    let mut roles: Vec<&str> = at(o, "/metadata/labels")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter_map(|(k, _)| k.strip_prefix("node-role.kubernetes.io/"))
        .collect();
    roles.sort();
    if roles.is_empty() {
        "<none>".to_string()
    } else {
        roles.join(",")
    }
}

/// One node's cells.
pub fn node_cells(o: &Value) -> Vec<Value> {
    let info = |k: &str| text(o, &format!("/status/nodeInfo/{k}")).to_string();
    vec![
        json!(text(o, "/metadata/name")),
        json!(node_status(o)),
        json!(roles(o)),
        json!(age(text(o, "/metadata/creationTimestamp"))),
        json!(info("kubeletVersion")),
        json!(address(o, "InternalIP")),
        json!(address(o, "ExternalIP")),
        json!(info("osImage")),
        json!(info("kernelVersion")),
        json!(info("containerRuntimeVersion")),
    ]
}

/// NAME MIN AVAILABLE MAX UNAVAILABLE ALLOWED DISRUPTIONS AGE
pub fn pdb_columns() -> Vec<Value> {
    vec![
        column("Name", "string", 0),
        column("Min Available", "string", 0),
        column("Max Unavailable", "string", 0),
        column("Allowed Disruptions", "integer", 0),
        column("Age", "string", 0),
    ]
}

/// One budget's cells; an unset bound prints `N/A`.
pub fn pdb_cells(o: &Value) -> Vec<Value> {
    let bound = |k: &str| match at(o, &format!("/spec/{k}")) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => "N/A".to_string(),
    };
    vec![
        json!(text(o, "/metadata/name")),
        json!(bound("minAvailable")),
        json!(bound("maxUnavailable")),
        json!(
            at(o, "/status/disruptionsAllowed")
                .and_then(Value::as_i64)
                .unwrap_or(0)
        ),
        json!(age(text(o, "/metadata/creationTimestamp"))),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cordoned_ready_node_reads_ready_scheduling_disabled() {
        let node = json!({"spec": {"unschedulable": true},
            "status": {"conditions": [{"type": "Ready", "status": "True"}]}});
        assert_eq!(node_status(&node), "Ready,SchedulingDisabled");
        let silent = json!({"status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}});
        assert_eq!(node_status(&silent), "Unknown");
    }

    #[test]
    fn a_budget_prints_n_a_for_the_bound_it_lacks() {
        let pdb = json!({"metadata": {"name": "web"}, "spec": {"minAvailable": 1},
                         "status": {"disruptionsAllowed": 1}});
        let cells = pdb_cells(&pdb);
        assert_eq!(cells[1], "1");
        assert_eq!(cells[2], "N/A");
        assert_eq!(cells[3], 1);
    }
}
