//! kubectl's table cells for ConfigMaps (NAME DATA AGE), Secrets (NAME TYPE DATA AGE) and
//! EndpointSlices (NAME ADDRESSTYPE PORTS ENDPOINTS AGE), as upstream's
//! `pkg/printers/internalversion/printers.go` prints them (`printConfigMap`,
//! `printSecret`, `printEndpointSlice`). Called by `table.rs`.

use serde_json::{Value, json};

/// Cells of one row of `plural` (`configmaps`, `secrets` or `endpointslices`).
pub(super) fn cells(plural: &str, o: &Value, name: &str, age: String) -> Vec<Value> {
    let count = |field: &str| {
        o.get(field)
            .and_then(Value::as_object)
            .map_or(0, |m| m.len())
    };
    match plural {
        "configmaps" => vec![
            json!(name),
            json!(count("data") + count("binaryData")),
            json!(age),
        ],
        "secrets" => vec![
            json!(name),
            json!(o.get("type").and_then(Value::as_str).unwrap_or("")),
            json!(count("data")),
            json!(age),
        ],
        _ => vec![
            json!(name),
            json!(o.get("addressType").and_then(Value::as_str).unwrap_or("")),
            json!(ports(o)),
            json!(endpoints(o)),
            json!(age),
        ],
    }
}

/// At most three entries, then "+ N more..."; `<unset>` when empty (`listWithMoreString`).
fn list_with_more(items: Vec<String>) -> String {
    const MAX: usize = 3;
    if items.is_empty() {
        return "<unset>".into();
    }
    let shown = items[..items.len().min(MAX)].join(",");
    if items.len() > MAX {
        format!("{shown} + {} more...", items.len() - MAX)
    } else {
        shown
    }
}

fn ports(o: &Value) -> String {
    let ports = o
        .get("ports")
        .and_then(Value::as_array)
        .into_iter()
        .flatten();
    list_with_more(
        ports
            .map(
                |p| match (p.get("port").and_then(Value::as_i64), p.get("name")) {
                    (Some(n), _) => n.to_string(),
                    (None, Some(Value::String(n))) => n.clone(),
                    _ => "*".into(),
                },
            )
            .collect(),
    )
}

fn endpoints(o: &Value) -> String {
    let eps = o
        .get("endpoints")
        .and_then(Value::as_array)
        .into_iter()
        .flatten();
    list_with_more(
        eps.flat_map(|e| {
            e.get("addresses")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
        })
        .filter_map(|a| a.as_str().map(str::to_string))
        .collect(),
    )
}
