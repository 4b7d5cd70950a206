//! Object metadata rules of the store: what the server fills at create, what a write may
//! not change, per-kind defaults (the ones kubectl and the lab's controllers rely on), name
//! validation, and small accessors. Pure functions over `serde_json::Value`; called only by
//! the store.

use serde_json::{Map, Value, json};

use super::StoreError;
use super::kinds::Kind;

/// `metadata.name` or "".
pub fn name(obj: &Value) -> &str {
    str_at(obj, "/metadata/name")
}

/// `metadata.resourceVersion` or "".
pub fn rv(obj: &Value) -> &str {
    str_at(obj, "/metadata/resourceVersion")
}

/// `metadata.uid` or "".
pub fn uid(obj: &Value) -> &str {
    str_at(obj, "/metadata/uid")
}

fn str_at<'a>(obj: &'a Value, pointer: &str) -> &'a str {
    obj.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

/// Sets `metadata.resourceVersion`.
pub fn set_rv(obj: &mut Value, rv: u64) {
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert("resourceVersion".into(), Value::String(rv.to_string()));
    }
}

/// `metadata.deletionTimestamp`, if the object is being deleted.
pub fn deletion_timestamp(obj: &Value) -> Option<&str> {
    obj.pointer("/metadata/deletionTimestamp")
        .and_then(Value::as_str)
}

/// `metadata.finalizers`.
pub fn finalizers(obj: &Value) -> Vec<String> {
    obj.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|f| f.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// A pod that has finished (nothing left to stop).
pub fn pod_finished(obj: &Value) -> bool {
    matches!(
        obj.pointer("/status/phase").and_then(Value::as_str),
        Some("Succeeded" | "Failed")
    )
}

/// The pod's own grace period (upstream default 30 s).
pub fn pod_grace(obj: &Value) -> i64 {
    obj.pointer("/spec/terminationGracePeriodSeconds")
        .and_then(Value::as_i64)
        .unwrap_or(30)
}

/// Longest grace period the lab honours: about 100 years, so that a client's
/// `gracePeriodSeconds` (any int64) cannot overflow the deletion time or push it past the
/// year 9999 that RFC 3339 timestamps can write.
const MAX_GRACE_SECONDS: i64 = 100 * 366 * 24 * 60 * 60;

/// Marks an object as being deleted, `grace` seconds from now.
pub fn mark_deleted(obj: &mut Value, grace: i64) {
    let grace = grace.clamp(0, MAX_GRACE_SECONDS);
    let at = chrono::Utc::now() + chrono::Duration::seconds(grace);
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert("deletionTimestamp".into(), json!(timestamp(at)));
        meta.insert("deletionGracePeriodSeconds".into(), json!(grace));
    }
}

/// RFC 3339 in UTC with seconds, the way Kubernetes writes times.
pub fn timestamp(at: chrono::DateTime<chrono::Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Drops ownerReferences naming `uid` (orphaning).
pub fn drop_owner(obj: &mut Value, uid: &str) {
    if let Some(refs) = obj
        .pointer_mut("/metadata/ownerReferences")
        .and_then(Value::as_array_mut)
    {
        refs.retain(|r| r.get("uid").and_then(Value::as_str) != Some(uid));
    }
}

/// Equal apart from resourceVersion (a no-op write).
pub fn same_ignoring_rv(a: &Value, b: &Value) -> bool {
    let mut a = a.clone();
    let mut b = b.clone();
    for v in [&mut a, &mut b] {
        if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.remove("resourceVersion");
        }
    }
    a == b
}

fn invalid(kind: &Kind, name: &str, field: &str, message: impl Into<String>) -> StoreError {
    StoreError::Invalid {
        resource: kind.plural,
        name: name.to_string(),
        causes: vec![(field.to_string(), message.into())],
    }
}

fn metadata_mut<'a>(
    kind: &Kind,
    obj: &'a mut Value,
) -> Result<&'a mut Map<String, Value>, StoreError> {
    let Some(map) = obj.as_object_mut() else {
        return Err(invalid(kind, "", "", "the object must be a JSON object"));
    };
    let meta = map.entry("metadata").or_insert_with(|| json!({}));
    if !meta.is_object() {
        return Err(invalid(kind, "", "metadata", "must be an object"));
    }
    // Checked just above.
    Ok(meta.as_object_mut().expect("metadata is an object"))
}

/// Refuses shapes no Kubernetes client could decode (and that later writes could not
/// index into): labels and annotations must map strings to strings; `spec` and `status`
/// must be objects; a Service's ports a list of objects.
fn check_shape(kind: &Kind, obj: &Value) -> Result<(), StoreError> {
    let name = self::name(obj);
    for field in ["labels", "annotations"] {
        if let Some(map) = obj.pointer(&format!("/metadata/{field}"))
            && !map.is_null()
            && !map
                .as_object()
                .is_some_and(|m| m.values().all(Value::is_string))
        {
            let msg = "must be a map of string keys to string values";
            return Err(invalid(kind, name, &format!("metadata.{field}"), msg));
        }
    }
    let list_of = |pointer: &str, ok: fn(&Value) -> bool| {
        obj.pointer(pointer)
            .is_none_or(|v| v.is_null() || v.as_array().is_some_and(|a| a.iter().all(ok)))
    };
    if !list_of("/metadata/finalizers", Value::is_string) {
        return Err(invalid(
            kind,
            name,
            "metadata.finalizers",
            "must be a list of strings",
        ));
    }
    if !list_of("/metadata/ownerReferences", Value::is_object) {
        return Err(invalid(
            kind,
            name,
            "metadata.ownerReferences",
            "must be a list of objects",
        ));
    }
    for field in ["spec", "status"] {
        if let Some(v) = obj.get(field)
            && !v.is_object()
            && !v.is_null()
        {
            return Err(invalid(kind, name, field, "must be an object"));
        }
    }
    if kind.plural == "services"
        && let Some(ports) = obj.pointer("/spec/ports")
        && !ports
            .as_array()
            .is_some_and(|a| a.iter().all(Value::is_object))
    {
        return Err(invalid(
            kind,
            name,
            "spec.ports",
            "must be a list of port objects",
        ));
    }
    Ok(())
}

/// A new object as the server stores it (without resourceVersion).
pub fn prepare_create(kind: &Kind, namespace: &str, mut obj: Value) -> Result<Value, StoreError> {
    check_shape(kind, &obj)?;
    let meta = metadata_mut(kind, &mut obj)?;
    let mut name = meta
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if name.is_empty() {
        let prefix = meta
            .get("generateName")
            .and_then(Value::as_str)
            .unwrap_or("");
        if prefix.is_empty() {
            return Err(invalid(
                kind,
                "",
                "metadata.name",
                "name or generateName is required",
            ));
        }
        name = format!("{prefix}{}", random_suffix());
    }
    validate_name(kind, &name)?;
    meta.insert("name".into(), json!(name));
    if kind.namespaced {
        meta.insert("namespace".into(), json!(namespace));
    } else {
        meta.remove("namespace");
    }
    meta.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
    meta.insert(
        "creationTimestamp".into(),
        json!(timestamp(chrono::Utc::now())),
    );
    meta.insert("generation".into(), json!(1));
    for k in [
        "resourceVersion",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "selfLink",
    ] {
        meta.remove(k);
    }
    set_type(kind, &mut obj);
    if kind.status {
        let status = match kind.plural {
            "pods" => json!({"phase": "Pending"}),
            "namespaces" => json!({"phase": "Active"}),
            // `desiredReplicas` is required by the schema (upstream serializes the int32
            // zero value); the HPA controller fills real figures at its first sync.
            "horizontalpodautoscalers" => json!({"currentReplicas": 0, "desiredReplicas": 0}),
            _ => json!({}),
        };
        obj["status"] = status;
    }
    defaults(kind, &mut obj);
    Ok(obj)
}

/// The object a write produces from the live one: immutable metadata kept, status or
/// everything-but-status kept per `mode`, generation bumped on a spec change.
pub fn prepare_update(
    kind: &Kind,
    live: &Value,
    mut obj: Value,
    mode: super::WriteMode,
) -> Result<Value, StoreError> {
    let name = self::name(live).to_string();
    check_shape(kind, &obj)?;
    if mode == super::WriteMode::Status {
        let mut new = live.clone();
        match obj.get_mut("status").map(Value::take) {
            Some(status) => new["status"] = status,
            None => {
                if let Some(m) = new.as_object_mut() {
                    m.remove("status");
                }
            }
        }
        return Ok(new);
    }
    let meta = metadata_mut(kind, &mut obj)?;
    let sent_name = meta.get("name").and_then(Value::as_str).unwrap_or("");
    if !sent_name.is_empty() && sent_name != name {
        return Err(invalid(kind, &name, "metadata.name", "field is immutable"));
    }
    for k in [
        "name",
        "namespace",
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "generateName",
    ] {
        match live.pointer(&format!("/metadata/{k}")) {
            Some(v) => {
                meta.insert(k.into(), v.clone());
            }
            None => {
                meta.remove(k);
            }
        }
    }
    set_type(kind, &mut obj);
    if kind.status {
        match live.get("status") {
            Some(s) => obj["status"] = s.clone(),
            None => {
                if let Some(m) = obj.as_object_mut() {
                    m.remove("status");
                }
            }
        }
    }
    defaults(kind, &mut obj);
    let generation = live
        .pointer("/metadata/generation")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    let changed = obj.get("spec") != live.get("spec");
    obj["metadata"]["generation"] = json!(if changed { generation + 1 } else { generation });
    Ok(obj)
}

fn set_type(kind: &Kind, obj: &mut Value) {
    obj["apiVersion"] = json!(kind.api_version());
    obj["kind"] = json!(kind.kind);
}

fn validate_name(kind: &Kind, name: &str) -> Result<(), StoreError> {
    // Namespaces and services are DNS labels; the rest DNS subdomains.
    let label = matches!(kind.plural, "namespaces" | "services");
    let max = if label { 63 } else { 253 };
    let part_ok = |p: &str| {
        !p.is_empty()
            && p.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !p.starts_with('-')
            && !p.ends_with('-')
    };
    let ok = name.len() <= max
        && if label {
            part_ok(name)
        } else {
            name.split('.').all(part_ok)
        };
    if ok {
        Ok(())
    } else {
        let what = if label {
            "RFC 1123 label"
        } else {
            "RFC 1123 subdomain"
        };
        Err(invalid(
            kind,
            name,
            "metadata.name",
            format!(
                "Invalid value: \"{name}\": a lowercase {what} must consist of lower case \
                 alphanumeric characters, '-' or '.', and must start and end with an \
                 alphanumeric character (at most {max} characters)"
            ),
        ))
    }
}

fn random_suffix() -> String {
    // The alphabet Kubernetes uses for generateName (no vowels, no confusable digits).
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let bytes = uuid::Uuid::new_v4().into_bytes();
    bytes[..5]
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect()
}

/// Sets `obj[key] = value` when absent.
fn default(obj: &mut Value, key: &str, value: Value) {
    if let Some(m) = obj.as_object_mut() {
        m.entry(key).or_insert(value);
    }
}

/// The defaults the upstream API server fills that clients in this project read.
fn defaults(kind: &Kind, obj: &mut Value) {
    match kind.plural {
        "pods" => {
            if let Some(spec) = obj.get_mut("spec") {
                pod_spec_defaults(spec);
            }
        }
        "deployments" => {
            let Some(spec) = obj.get_mut("spec") else {
                return;
            };
            default(spec, "replicas", json!(1));
            default(spec, "revisionHistoryLimit", json!(10));
            default(spec, "progressDeadlineSeconds", json!(600));
            strategy_defaults(spec);
            if let Some(pod) = spec.pointer_mut("/template/spec") {
                pod_spec_defaults(pod);
            }
        }
        "services" => {
            let Some(spec) = obj.get_mut("spec") else {
                return;
            };
            default(spec, "type", json!("ClusterIP"));
            default(spec, "sessionAffinity", json!("None"));
            if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
                for p in ports {
                    default(p, "protocol", json!("TCP"));
                    if let Some(port) = p.get("port").cloned() {
                        default(p, "targetPort", port);
                    }
                }
            }
        }
        "jobs" => super::jobs::defaults(obj),
        "horizontalpodautoscalers" => {
            let Some(spec) = obj.get_mut("spec") else {
                return;
            };
            default(spec, "minReplicas", json!(1));
            let empty = spec
                .get("metrics")
                .and_then(Value::as_array)
                .is_none_or(Vec::is_empty);
            if empty {
                spec["metrics"] = json!([{"type": "Resource", "resource": {"name": "cpu",
                    "target": {"type": "Utilization", "averageUtilization": 80}}}]);
            }
        }
        _ => {}
    }
}

/// `SetDefaults_Deployment` (pkg/apis/apps/v1/defaults.go): a strategy with no type
/// (kubectl sends `strategy: {}`) is RollingUpdate, and a rolling update's unset bounds
/// are 25% each.
fn strategy_defaults(spec: &mut Value) {
    default(spec, "strategy", json!({}));
    let strategy = &mut spec["strategy"];
    if !strategy.is_object() {
        return;
    }
    let untyped = strategy
        .get("type")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty);
    if untyped {
        strategy["type"] = json!("RollingUpdate");
    }
    if strategy["type"] == "RollingUpdate" {
        default(strategy, "rollingUpdate", json!({}));
        let rolling = &mut strategy["rollingUpdate"];
        default(rolling, "maxUnavailable", json!("25%"));
        default(rolling, "maxSurge", json!("25%"));
    }
}

pub(super) fn pod_spec_defaults(spec: &mut Value) {
    default(spec, "restartPolicy", json!("Always"));
    default(spec, "terminationGracePeriodSeconds", json!(30));
    default(spec, "dnsPolicy", json!("ClusterFirst"));
    default(spec, "schedulerName", json!("default-scheduler"));
    if let Some(containers) = spec.get_mut("containers").and_then(Value::as_array_mut) {
        for c in containers {
            let image = c.get("image").and_then(Value::as_str).unwrap_or("");
            let latest =
                !image.rsplit('/').next().unwrap_or("").contains(':') || image.ends_with(":latest");
            default(
                c,
                "imagePullPolicy",
                json!(if latest { "Always" } else { "IfNotPresent" }),
            );
            default(c, "terminationMessagePath", json!("/dev/termination-log"));
            default(c, "terminationMessagePolicy", json!("File"));
            if let Some(ports) = c.get_mut("ports").and_then(Value::as_array_mut) {
                for p in ports {
                    default(p, "protocol", json!("TCP"));
                }
            }
        }
    }
}

/// Fills `spec.clusterIP` and missing NodePort `nodePort`s of a Service (from `range`),
/// avoiding those in `taken` (all services' cluster IPs and node ports).
pub fn allocate_service(
    obj: &mut Value,
    taken_ips: &[String],
    taken_ports: &[i64],
    range: std::ops::RangeInclusive<u16>,
) {
    let Some(spec) = obj.get_mut("spec") else {
        return;
    };
    if spec
        .get("clusterIP")
        .and_then(Value::as_str)
        .unwrap_or("")
        .is_empty()
    {
        let ip = (1..65_000u32)
            .map(|n| format!("10.96.{}.{}", n >> 8, n & 255))
            .find(|ip| !taken_ips.contains(ip) && !ip.ends_with(".0"));
        if let Some(ip) = ip {
            spec["clusterIP"] = json!(ip);
            spec["clusterIPs"] = json!([ip]);
        }
    }
    let node_port = matches!(
        spec.get("type").and_then(Value::as_str),
        Some("NodePort" | "LoadBalancer")
    );
    if !node_port {
        return;
    }
    let mut used: Vec<i64> = taken_ports.to_vec();
    if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
        for p in ports.iter() {
            if let Some(n) = p.get("nodePort").and_then(Value::as_i64) {
                used.push(n);
            }
        }
        for p in ports.iter_mut() {
            if p.get("nodePort").and_then(Value::as_i64).is_none()
                && let Some(n) = range.clone().map(i64::from).find(|n| !used.contains(n))
            {
                used.push(n);
                p["nodePort"] = json!(n);
            }
        }
    }
}

/// Cluster IPs and node ports of a Service.
pub fn service_allocations(obj: &Value) -> (Option<String>, Vec<i64>) {
    let ip = obj
        .pointer("/spec/clusterIP")
        .and_then(Value::as_str)
        .map(str::to_string);
    let ports = obj
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .map(|ps| {
            ps.iter()
                .filter_map(|p| p.get("nodePort").and_then(Value::as_i64))
                .collect()
        })
        .unwrap_or_default();
    (ip, ports)
}
