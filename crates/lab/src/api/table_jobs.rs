//! kubectl's table for Jobs: NAME STATUS COMPLETIONS DURATION AGE, and with `-o wide`
//! CONTAINERS IMAGES SELECTOR, as upstream's `pkg/printers/internalversion/printers.go`
//! prints them (`printJob`). Called by `table.rs`.

use serde_json::{Value, json};

use super::table::{at, text};

fn column(name: &str, ty: &str, priority: u8) -> Value {
    json!({"name": name, "type": ty, "format": if name == "Name" { "name" } else { "" },
        "description": name, "priority": priority})
}

/// The columns of `kubectl get jobs`.
pub(super) fn columns() -> Vec<Value> {
    let s = |n: &str| column(n, "string", 0);
    let wide = |n: &str| column(n, "string", 1);
    vec![
        s("Name"),
        s("Status"),
        s("Completions"),
        s("Duration"),
        s("Age"),
        wide("Containers"),
        wide("Images"),
        wide("Selector"),
    ]
}

fn condition(o: &Value, type_: &str) -> bool {
    at(o, "/status/conditions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|c| c["type"] == type_ && c["status"] == "True")
}

/// `Complete`, `Failed`, `Suspended`, `Terminating` or `Running` (upstream's order).
fn status(o: &Value) -> &'static str {
    if condition(o, "Suspended") {
        "Suspended"
    } else if condition(o, "Complete") {
        "Complete"
    } else if condition(o, "Failed") {
        "Failed"
    } else if at(o, "/metadata/deletionTimestamp").is_some() {
        "Terminating"
    } else {
        "Running"
    }
}

/// `succeeded/completions`, or without completions `succeeded/1 of parallelism`.
fn completions(o: &Value) -> String {
    let succeeded = at(o, "/status/succeeded")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    match at(o, "/spec/completions").and_then(Value::as_i64) {
        Some(n) => format!("{succeeded}/{n}"),
        None => {
            let parallelism = at(o, "/spec/parallelism")
                .and_then(Value::as_i64)
                .unwrap_or(1);
            if parallelism > 1 {
                format!("{succeeded}/1 of {parallelism}")
            } else {
                format!("{succeeded}/1")
            }
        }
    }
}

/// From `startTime` to `completionTime` (or now while it runs); empty before it starts.
fn duration(o: &Value) -> String {
    let parse = |p: &str| chrono::DateTime::parse_from_rfc3339(text(o, p)).ok();
    let Some(start) = parse("/status/startTime") else {
        return String::new();
    };
    let end = parse("/status/completionTime")
        .map_or_else(chrono::Utc::now, |t| t.with_timezone(&chrono::Utc));
    let secs = (end - start.with_timezone(&chrono::Utc))
        .num_seconds()
        .max(0);
    // kubectl's HumanDuration: the same steps as the AGE column.
    super::table::age(&(chrono::Utc::now() - chrono::Duration::seconds(secs)).to_rfc3339())
}

/// One row of `kubectl get jobs`.
pub(super) fn cells(o: &Value, age: String) -> Vec<Value> {
    let containers = at(o, "/spec/template/spec/containers").and_then(Value::as_array);
    let list = |key: &str| {
        containers
            .into_iter()
            .flatten()
            .map(|c| c[key].as_str().unwrap_or_default().to_string())
            .collect::<Vec<_>>()
            .join(",")
    };
    let selector = at(o, "/spec/selector/matchLabels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect::<Vec<_>>()
                .join(",")
        })
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "<none>".into());
    vec![
        json!(text(o, "/metadata/name")),
        json!(status(o)),
        json!(completions(o)),
        json!(duration(o)),
        json!(age),
        json!(list("name")),
        json!(list("image")),
        json!(selector),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_finished_indexed_job_reads_like_kubectl_prints_it() {
        let job = json!({"metadata": {"name": "w"},
            "spec": {"completions": 2, "parallelism": 2, "selector": {"matchLabels": {"a": "b"}},
                "template": {"spec": {"containers": [{"name": "worker", "image": "resil-demo:latest"}]}}},
            "status": {"succeeded": 2, "startTime": "2026-01-01T00:00:00Z",
                "completionTime": "2026-01-01T00:00:12Z",
                "conditions": [{"type": "Complete", "status": "True"}]}});
        let row = cells(&job, "1m".into());
        assert_eq!(row[1], "Complete");
        assert_eq!(row[2], "2/2");
        assert_eq!(row[3], "12s");
        assert_eq!(row[7], "a=b");
    }
}
