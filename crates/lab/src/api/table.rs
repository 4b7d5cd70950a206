//! Server-side printing: `meta.k8s.io/v1` Table answers for clients that ask for them
//! (`Accept: application/json;as=Table;...`, what `kubectl get` sends), with the columns
//! kubectl shows for real clusters (pods READY/STATUS/RESTARTS, deployments
//! READY/UP-TO-DATE/AVAILABLE, services TYPE/CLUSTER-IP/PORT(S), ...). Used by list, get
//! and watch.

use axum::http::{HeaderMap, header};
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{Map, Value, json};

use crate::store::Kind;

/// What a client wants in each row's `object`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowObject {
    /// `PartialObjectMetadata` (the default).
    Metadata,
    /// The full object.
    Object,
    /// Nothing.
    None,
}

/// Whether the request asks for a Table, and what to include per row.
pub fn wanted(headers: &HeaderMap, include: Option<&str>) -> Option<RowObject> {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let table = accept
        .split(',')
        .any(|media| media.split(';').any(|p| p.trim() == "as=Table"));
    if !table {
        return None;
    }
    Some(match include {
        Some("Object") => RowObject::Object,
        Some("None") => RowObject::None,
        _ => RowObject::Metadata,
    })
}

fn column(name: &str, ty: &str, priority: u8) -> Value {
    let format = if name == "Name" { "name" } else { "" };
    json!({"name": name, "type": ty, "format": format, "description": name, "priority": priority})
}

fn columns(kind: &Kind) -> Vec<Value> {
    let s = |n: &str| column(n, "string", 0);
    let wide = |n: &str| column(n, "string", 1);
    let i = |n: &str| column(n, "integer", 0);
    match kind.plural {
        "pods" => vec![
            s("Name"),
            s("Ready"),
            s("Status"),
            i("Restarts"),
            s("Age"),
            wide("IP"),
            wide("Node"),
        ],
        "deployments" => vec![
            s("Name"),
            s("Ready"),
            i("Up-to-date"),
            i("Available"),
            s("Age"),
            wide("Containers"),
            wide("Images"),
            wide("Selector"),
        ],
        "replicasets" => vec![
            s("Name"),
            i("Desired"),
            i("Current"),
            i("Ready"),
            s("Age"),
            wide("Containers"),
            wide("Images"),
            wide("Selector"),
        ],
        "services" => vec![
            s("Name"),
            s("Type"),
            s("Cluster-IP"),
            s("External-IP"),
            s("Port(s)"),
            s("Age"),
            wide("Selector"),
        ],
        "endpoints" => vec![s("Name"), s("Endpoints"), s("Age")],
        "events" => vec![
            s("Last Seen"),
            s("Type"),
            s("Reason"),
            s("Object"),
            s("Message"),
        ],
        "horizontalpodautoscalers" => vec![
            s("Name"),
            s("Reference"),
            s("Targets"),
            i("MinPods"),
            i("MaxPods"),
            i("Replicas"),
            s("Age"),
        ],
        "namespaces" => vec![s("Name"), s("Status"), s("Age")],
        "leases" => vec![s("Name"), s("Holder"), s("Age")],
        "nodes" => super::table_nodes::node_columns(),
        "poddisruptionbudgets" => super::table_nodes::pdb_columns(),
        "configmaps" => vec![s("Name"), i("Data"), s("Age")],
        "secrets" => vec![s("Name"), s("Type"), i("Data"), s("Age")],
        "endpointslices" => vec![
            s("Name"),
            s("AddressType"),
            s("Ports"),
            s("Endpoints"),
            s("Age"),
        ],
        "jobs" => super::table_jobs::columns(),
        _ => vec![s("Name"), s("Age")],
    }
}

/// The value at `path` (a JSON pointer such as `/status/podIP`, of plain field names),
/// found without the allocations of [`Value::pointer`], which unescapes every segment: a
/// Table over a thousand pods looks up some ten fields of each.
pub(super) fn at<'a>(obj: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('/').skip(1).try_fold(obj, |v, segment| match v {
        Value::Object(map) => map.get(segment),
        Value::Array(items) => segment.parse::<usize>().ok().and_then(|i| items.get(i)),
        _ => None,
    })
}

/// The string at `path`, or "".
pub(super) fn text<'a>(obj: &'a Value, path: &str) -> &'a str {
    at(obj, path).and_then(Value::as_str).unwrap_or("")
}

fn int(obj: &Value, path: &str) -> i64 {
    at(obj, path).and_then(Value::as_i64).unwrap_or(0)
}

fn or_none(s: String) -> String {
    if s.is_empty() {
        "<none>".to_string()
    } else {
        s
    }
}

/// kubectl's short age: 45s, 3m20s, 12m, 5h3m, 20h, 3d4h, 40d, 2y.
pub fn age(since: &str) -> String {
    let Ok(t) = chrono::DateTime::parse_from_rfc3339(since) else {
        return "<unknown>".to_string();
    };
    let secs = (chrono::Utc::now() - t.with_timezone(&chrono::Utc))
        .num_seconds()
        .max(0);
    let (m, h, d) = (secs / 60, secs / 3600, secs / 86_400);
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 600 => format!("{m}m{}s", s % 60),
        s if s < 3 * 3600 => format!("{m}m"),
        s if s < 8 * 3600 => format!("{h}h{}m", m % 60),
        s if s < 48 * 3600 => format!("{h}h"),
        s if s < 8 * 86_400 => format!("{d}d{}h", h % 24),
        s if s < 730 * 86_400 => format!("{d}d"),
        _ => format!("{}y", d / 365),
    }
}

fn pod_status(pod: &Value) -> String {
    if at(pod, "/metadata/deletionTimestamp").is_some() {
        return "Terminating".to_string();
    }
    let statuses = at(pod, "/status/containerStatuses").and_then(Value::as_array);
    for cs in statuses.into_iter().flatten() {
        let waiting = text(cs, "/state/waiting/reason");
        if !waiting.is_empty() && waiting != "ContainerCreating" {
            return waiting.to_string();
        }
        let terminated = text(cs, "/state/terminated/reason");
        if !terminated.is_empty() {
            return terminated.to_string();
        }
    }
    let reason = text(pod, "/status/reason");
    if !reason.is_empty() {
        return reason.to_string();
    }
    let phase = text(pod, "/status/phase");
    if phase == "Pending" && statuses.is_some() {
        return "ContainerCreating".to_string();
    }
    if phase.is_empty() {
        "Pending".to_string()
    } else {
        phase.to_string()
    }
}

fn cells(kind: &Kind, o: &Value) -> Vec<Value> {
    let name = text(o, "/metadata/name");
    let age = age(text(o, "/metadata/creationTimestamp"));
    match kind.plural {
        "pods" => pod_cells(o),
        "deployments" => deployment_cells(o),
        "replicasets" => replicaset_cells(o),
        "services" => service_cells(o),
        "endpoints" => endpoints_cells(o),
        "events" => event_cells(o),
        "horizontalpodautoscalers" => hpa_cells(o),
        "namespaces" => vec![json!(name), json!(text(o, "/status/phase")), json!(age)],
        "leases" => vec![
            json!(name),
            json!(text(o, "/spec/holderIdentity")),
            json!(age),
        ],
        "nodes" => super::table_nodes::node_cells(o),
        "poddisruptionbudgets" => super::table_nodes::pdb_cells(o),
        "configmaps" | "secrets" | "endpointslices" => {
            super::table_kinds::cells(kind.plural, o, name, age)
        }
        "jobs" => super::table_jobs::cells(o, age),
        _ => vec![json!(name), json!(age)],
    }
}

/// NAME READY STATUS RESTARTS AGE IP NODE
fn pod_cells(o: &Value) -> Vec<Value> {
    let name = text(o, "/metadata/name");
    let age = age(text(o, "/metadata/creationTimestamp"));
    let total = at(o, "/spec/containers")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    let statuses = at(o, "/status/containerStatuses").and_then(Value::as_array);
    let ready = statuses
        .into_iter()
        .flatten()
        .filter(|c| c["ready"] == true)
        .count();
    let restarts: i64 = statuses
        .into_iter()
        .flatten()
        .map(|c| int(c, "/restartCount"))
        .sum();
    vec![
        json!(name),
        json!(format!("{ready}/{total}")),
        json!(pod_status(o)),
        json!(restarts),
        json!(age),
        json!(or_none(text(o, "/status/podIP").to_string())),
        json!(or_none(text(o, "/spec/nodeName").to_string())),
    ]
}

/// NAME READY UP-TO-DATE AVAILABLE AGE CONTAINERS IMAGES SELECTOR
fn deployment_cells(o: &Value) -> Vec<Value> {
    let name = text(o, "/metadata/name");
    let age = age(text(o, "/metadata/creationTimestamp"));
    let containers = at(o, "/spec/template/spec/containers").and_then(Value::as_array);
    let list = |key: &str| {
        containers
            .into_iter()
            .flatten()
            .map(|c| text(c, &format!("/{key}")).to_string())
            .collect::<Vec<_>>()
            .join(",")
    };
    vec![
        json!(name),
        json!(format!(
            "{}/{}",
            int(o, "/status/readyReplicas"),
            int(o, "/spec/replicas")
        )),
        json!(int(o, "/status/updatedReplicas")),
        json!(int(o, "/status/availableReplicas")),
        json!(age),
        json!(list("name")),
        json!(list("image")),
        json!(selector(at(o, "/spec/selector/matchLabels"))),
    ]
}

/// NAME DESIRED CURRENT READY AGE CONTAINERS IMAGES SELECTOR
fn replicaset_cells(o: &Value) -> Vec<Value> {
    let mut cells = deployment_cells(o);
    cells.splice(
        1..4,
        [
            json!(int(o, "/spec/replicas")),
            json!(int(o, "/status/replicas")),
            json!(int(o, "/status/readyReplicas")),
        ],
    );
    cells
}

/// NAME TYPE CLUSTER-IP EXTERNAL-IP PORT(S) AGE SELECTOR
fn service_cells(o: &Value) -> Vec<Value> {
    let name = text(o, "/metadata/name");
    let age = age(text(o, "/metadata/creationTimestamp"));
    let ports: Vec<String> = at(o, "/spec/ports")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|p| {
            let proto = p.get("protocol").and_then(Value::as_str).unwrap_or("TCP");
            match p.get("nodePort").and_then(Value::as_i64) {
                Some(n) => format!("{}:{n}/{proto}", int(p, "/port")),
                None => format!("{}/{proto}", int(p, "/port")),
            }
        })
        .collect();
    vec![
        json!(name),
        json!(text(o, "/spec/type")),
        json!(or_none(text(o, "/spec/clusterIP").to_string())),
        json!("<none>"),
        json!(or_none(ports.join(","))),
        json!(age),
        json!(selector(at(o, "/spec/selector"))),
    ]
}

/// NAME ENDPOINTS AGE
fn endpoints_cells(o: &Value) -> Vec<Value> {
    let name = text(o, "/metadata/name");
    let age = age(text(o, "/metadata/creationTimestamp"));
    let mut addrs = Vec::new();
    for subset in o
        .get("subsets")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        for a in subset
            .get("addresses")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            for p in subset
                .get("ports")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                addrs.push(format!("{}:{}", text(a, "/ip"), int(p, "/port")));
            }
        }
    }
    vec![json!(name), json!(or_none(addrs.join(","))), json!(age)]
}

/// LAST SEEN TYPE REASON OBJECT MESSAGE
fn event_cells(o: &Value) -> Vec<Value> {
    let last = [
        text(o, "/lastTimestamp"),
        text(o, "/eventTime"),
        text(o, "/metadata/creationTimestamp"),
    ]
    .into_iter()
    .find(|t| !t.is_empty())
    .unwrap_or("");
    vec![
        json!(age(last)),
        json!(text(o, "/type")),
        json!(text(o, "/reason")),
        json!(format!(
            "{}/{}",
            text(o, "/involvedObject/kind").to_lowercase(),
            text(o, "/involvedObject/name")
        )),
        json!(text(o, "/message")),
    ]
}

/// NAME REFERENCE TARGETS MINPODS MAXPODS REPLICAS AGE
fn hpa_cells(o: &Value) -> Vec<Value> {
    let name = text(o, "/metadata/name");
    let age = age(text(o, "/metadata/creationTimestamp"));
    vec![
        json!(name),
        json!(format!(
            "{}/{}",
            text(o, "/spec/scaleTargetRef/kind"),
            text(o, "/spec/scaleTargetRef/name")
        )),
        json!(hpa_targets(o)),
        json!(
            at(o, "/spec/minReplicas")
                .and_then(Value::as_i64)
                .unwrap_or(1)
        ),
        json!(int(o, "/spec/maxReplicas")),
        json!(int(o, "/status/currentReplicas")),
        json!(age),
    ]
}

fn selector(labels: Option<&Value>) -> String {
    let s: Vec<String> = labels
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
        .collect();
    or_none(s.join(","))
}

fn hpa_targets(o: &Value) -> String {
    let current = at(o, "/status/currentMetrics").and_then(Value::as_array);
    let targets: Vec<String> = at(o, "/spec/metrics")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|m| m["type"] == "Resource")
        .map(|m| {
            let res = text(m, "/resource/name");
            let target = at(m, "/resource/target/averageUtilization")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            let now = current
                .into_iter()
                .flatten()
                .find(|c| text(c, "/resource/name") == res)
                .and_then(|c| at(c, "/resource/current/averageUtilization"))
                .and_then(Value::as_i64)
                .map_or("<unknown>".to_string(), |v| format!("{v}%"));
            format!("{res}: {now}/{target}%")
        })
        .collect();
    or_none(targets.join(", "))
}

/// A Table answer over the store's objects, serialized straight from them: a row's
/// `object` (the whole object or its metadata) is written from the borrowed object, never
/// copied first, so `kubectl get pods -A` over a thousand pods costs one pass over them.
pub struct Table<'a> {
    kind: &'a Kind,
    rv: Option<u64>,
    rows: Vec<Row<'a>>,
}

/// A Table of `items`, consistent with `rv` (a list's; `None` for a single object or a
/// watch event).
pub fn table<'a>(
    kind: &'a Kind,
    items: impl IntoIterator<Item = &'a Value>,
    rv: Option<u64>,
    include: RowObject,
) -> Table<'a> {
    Table {
        kind,
        rv,
        rows: items
            .into_iter()
            .map(|object| Row {
                cells: cells(kind, object),
                object,
                include,
            })
            .collect(),
    }
}

impl Serialize for Table<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(5))?;
        m.serialize_entry("kind", "Table")?;
        m.serialize_entry("apiVersion", "meta.k8s.io/v1")?;
        match self.rv {
            Some(rv) => {
                m.serialize_entry("metadata", &json!({"resourceVersion": rv.to_string()}))?
            }
            None => m.serialize_entry("metadata", &Map::new())?,
        }
        m.serialize_entry("columnDefinitions", &columns(self.kind))?;
        m.serialize_entry("rows", &self.rows)?;
        m.end()
    }
}

/// One row: its cells and, as the client asked, the object or its metadata.
struct Row<'a> {
    cells: Vec<Value>,
    object: &'a Value,
    include: RowObject,
}

impl Serialize for Row<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("cells", &self.cells)?;
        match self.include {
            RowObject::Object => m.serialize_entry("object", self.object)?,
            RowObject::Metadata => {
                m.serialize_entry("object", &PartialObjectMetadata(self.object))?
            }
            RowObject::None => {}
        }
        m.end()
    }
}

/// `meta.k8s.io/v1` PartialObjectMetadata of an object: its kind and its metadata.
struct PartialObjectMetadata<'a>(&'a Value);

impl Serialize for PartialObjectMetadata<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(3))?;
        m.serialize_entry("kind", "PartialObjectMetadata")?;
        m.serialize_entry("apiVersion", "meta.k8s.io/v1")?;
        match self.0.get("metadata") {
            Some(meta) => m.serialize_entry("metadata", meta)?,
            None => m.serialize_entry("metadata", &Map::new())?,
        }
        m.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::kinds;

    #[test]
    fn pod_rows_show_ready_status_and_restarts() {
        let pod = json!({
            "metadata": {"name": "web-1", "creationTimestamp": "2020-01-01T00:00:00Z"},
            "spec": {"containers": [{"name": "web"}]},
            "status": {"phase": "Running", "containerStatuses": [
                {"name": "web", "ready": false, "restartCount": 3, "state": {"waiting": {"reason": "CrashLoopBackOff"}}},
            ]},
        });
        let t = serde_json::to_value(table(
            kinds::stored("pods").unwrap(),
            &[pod],
            Some(7),
            RowObject::Metadata,
        ))
        .unwrap();
        let cells = &t["rows"][0]["cells"];
        assert_eq!(cells[0], "web-1");
        assert_eq!(cells[1], "0/1");
        assert_eq!(cells[2], "CrashLoopBackOff");
        assert_eq!(cells[3], 3);
        assert_eq!(t["metadata"]["resourceVersion"], "7");
        assert_eq!(t["rows"][0]["object"]["kind"], "PartialObjectMetadata");
    }

    #[test]
    fn ages_read_like_kubectl() {
        let ago = |s: i64| {
            let t = chrono::Utc::now() - chrono::Duration::seconds(s);
            age(&t.to_rfc3339())
        };
        assert_eq!(ago(5), "5s");
        assert_eq!(ago(200), "3m20s");
        assert_eq!(ago(3 * 86_400 + 4 * 3600), "3d4h");
    }
}
