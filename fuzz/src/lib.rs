//! What the fuzz targets share: arbitrary JSON shaped like Kubernetes objects (keys and
//! values from a dictionary of the API's own words, so the fuzzer reaches the handlers'
//! and the patch engine's deep branches fast), and the repository's real objects as
//! templates. Used only by `fuzz_targets/*`; not part of resil.

use std::sync::LazyLock;

use arbitrary::{Arbitrary, Result, Unstructured};
use serde_json::{Map, Number, Value, json};

/// Deepest nesting an arbitrary value reaches by construction. Deeper bodies still come
/// from the raw-bytes bodies of the lab target.
const MAX_DEPTH: u32 = 10;

/// Object keys the lab, the patch engine and kubectl use.
pub const KEYS: &[&str] = &[
    "apiVersion",
    "kind",
    "metadata",
    "name",
    "namespace",
    "labels",
    "annotations",
    "spec",
    "status",
    "replicas",
    "selector",
    "matchLabels",
    "matchExpressions",
    "key",
    "operator",
    "values",
    "template",
    "containers",
    "image",
    "ports",
    "containerPort",
    "protocol",
    "env",
    "value",
    "resources",
    "requests",
    "limits",
    "cpu",
    "memory",
    "conditions",
    "type",
    "finalizers",
    "ownerReferences",
    "uid",
    "resourceVersion",
    "generation",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "creationTimestamp",
    "managedFields",
    "manager",
    "operation",
    "fieldsType",
    "fieldsV1",
    "$patch",
    "$retainKeys",
    "$setElementOrder/containers",
    "$setElementOrder/ports",
    "$setElementOrder/env",
    "$deleteFromPrimitiveList/finalizers",
    "strategy",
    "rollingUpdate",
    "maxSurge",
    "maxUnavailable",
    "minReadySeconds",
    "progressDeadlineSeconds",
    "revisionHistoryLimit",
    "paused",
    "minReplicas",
    "maxReplicas",
    "metrics",
    "scaleTargetRef",
    "target",
    "averageUtilization",
    "behavior",
    "scaleUp",
    "scaleDown",
    "policies",
    "periodSeconds",
    "selectPolicy",
    "stabilizationWindowSeconds",
    "readinessProbe",
    "livenessProbe",
    "startupProbe",
    "httpGet",
    "tcpSocket",
    "path",
    "port",
    "nodePort",
    "targetPort",
    "clusterIP",
    "sessionAffinity",
    "subsets",
    "addresses",
    "ip",
    "targetRef",
    "volumes",
    "volumeMounts",
    "mountPath",
    "args",
    "command",
    "restartPolicy",
    "terminationGracePeriodSeconds",
    "gracePeriodSeconds",
    "propagationPolicy",
    "orphanDependents",
    "preconditions",
    "dryRun",
    "holderIdentity",
    "leaseDurationSeconds",
    "renewTime",
    "involvedObject",
    "reason",
    "message",
    "count",
    "firstTimestamp",
    "lastTimestamp",
    "phase",
    "podIP",
    "hostIP",
    "containerStatuses",
    "ready",
    "restartCount",
    "observedGeneration",
    "availableReplicas",
    "readyReplicas",
    "updatedReplicas",
    "currentReplicas",
    "desiredReplicas",
    "resil.dev/port",
    "resil.dev/proxy-fault",
    "kubectl.kubernetes.io/last-applied-configuration",
    "tolerations",
    "nodeName",
    "hostname",
    "imagePullPolicy",
    "failureThreshold",
    "successThreshold",
    "initialDelaySeconds",
    "timeoutSeconds",
    "fieldRef",
    "fieldPath",
    "valueFrom",
    "items",
    "op",
    "from",
    "force",
];

/// String values with meaning somewhere in the lab.
pub const WORDS: &[&str] = &[
    "",
    "web",
    "web-blue",
    "default",
    "blue",
    "green",
    "v1",
    "apps/v1",
    "autoscaling/v2",
    "coordination.k8s.io/v1",
    "Deployment",
    "Pod",
    "Service",
    "Namespace",
    "Endpoints",
    "Event",
    "Lease",
    "HorizontalPodAutoscaler",
    "NodePort",
    "ClusterIP",
    "TCP",
    "UDP",
    "RollingUpdate",
    "Recreate",
    "100m",
    "0.5",
    "1",
    "1Gi",
    "128Mi",
    "1e3",
    "25%",
    "150%",
    "-1",
    "delete",
    "replace",
    "merge",
    "retainKeys",
    "Apply",
    "Update",
    "FieldsV1",
    "Utilization",
    "AverageValue",
    "Resource",
    "Pods",
    "Percent",
    "Max",
    "Min",
    "Disabled",
    "True",
    "False",
    "Unknown",
    "Always",
    "Never",
    "OnFailure",
    "IfNotPresent",
    "Background",
    "Foreground",
    "Orphan",
    "All",
    "/readyz",
    "/healthz",
    "http",
    "8080",
    "resil-demo:latest",
    "..",
    "../../../../ESCAPED",
    "a/b",
    "f:metadata",
    "f:spec",
    "k:{\"name\":\"web\"}",
    "v:\"a\"",
    ".",
    "i:0",
    "2026-01-01T00:00:00Z",
    "not-a-date",
    "add",
    "remove",
    "copy",
    "move",
    "test",
    "/spec",
    "/metadata/labels",
    "/spec/replicas",
    "/spec/template/spec/containers/0",
    "/spec/template/spec/containers/-",
    "~1",
    "~0",
    "\u{0}",
    "é",
    "app=web",
    "x-resil-color",
    "app in (web,x)",
    "!app",
    "app,version!=blue",
    "version notin (blue)",
    "metadata.name=web",
    "metadata.namespace!=default",
    "status.phase=Running",
    "spec.nodeName=",
    "a=b=c",
    "(",
    "app in ()",
];

/// A `serde_json::Value` built from the input, at most [`MAX_DEPTH`] deep.
#[derive(Debug, Clone)]
pub struct Json(pub Value);

impl<'a> Arbitrary<'a> for Json {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        Ok(Json(value(u, 0)?))
    }
}

/// One arbitrary value at `depth`.
pub fn value(u: &mut Unstructured<'_>, depth: u32) -> Result<Value> {
    let top = if depth >= MAX_DEPTH { 6 } else { 10 };
    Ok(match u.int_in_range(0..=top)? {
        0 => Value::Null,
        1 => Value::Bool(u.arbitrary()?),
        2 => json!(u.int_in_range(-2i64..=10)?),
        3 => number(u)?,
        4 => Value::String(word(u)?),
        5 => Value::String(u.arbitrary()?),
        6 => Value::String(key(u)?),
        7 | 8 => {
            let n = u.int_in_range(0..=4)?;
            let mut items = Vec::with_capacity(n);
            for _ in 0..n {
                items.push(value(u, depth + 1)?);
            }
            Value::Array(items)
        }
        _ => Value::Object(object(u, depth + 1)?),
    })
}

/// An object of up to five fields with dictionary keys (sometimes arbitrary ones).
pub fn object(u: &mut Unstructured<'_>, depth: u32) -> Result<Map<String, Value>> {
    let n = u.int_in_range(0..=5)?;
    let mut map = Map::new();
    for _ in 0..n {
        let k = if u.ratio(1, 8)? {
            u.arbitrary()?
        } else {
            key(u)?
        };
        map.insert(k, value(u, depth)?);
    }
    Ok(map)
}

fn number(u: &mut Unstructured<'_>) -> Result<Value> {
    Ok(match u.int_in_range(0..=4)? {
        0 => json!(u.arbitrary::<i64>()?),
        1 => json!(u.arbitrary::<u64>()?),
        2 => Number::from_f64(u.arbitrary()?).map_or(Value::Null, Value::Number),
        3 => json!(i64::MAX),
        _ => json!(u64::MAX),
    })
}

/// A dictionary key.
pub fn key(u: &mut Unstructured<'_>) -> Result<String> {
    Ok(u.choose(KEYS)?.to_string())
}

/// A dictionary word.
pub fn word(u: &mut Unstructured<'_>) -> Result<String> {
    Ok(u.choose(WORDS)?.to_string())
}

/// A JSON pointer into a template object: real paths first, then arbitrary ones.
pub fn pointer(u: &mut Unstructured<'_>) -> Result<String> {
    const POINTERS: &[&str] = &[
        "",
        "/metadata",
        "/metadata/name",
        "/metadata/namespace",
        "/metadata/labels",
        "/metadata/labels/app",
        "/metadata/annotations",
        "/metadata/finalizers",
        "/metadata/finalizers/0",
        "/metadata/resourceVersion",
        "/metadata/uid",
        "/metadata/managedFields",
        "/metadata/ownerReferences",
        "/spec",
        "/spec/replicas",
        "/spec/selector",
        "/spec/selector/matchLabels",
        "/spec/template",
        "/spec/template/metadata/labels",
        "/spec/template/spec/containers",
        "/spec/template/spec/containers/0",
        "/spec/template/spec/containers/-",
        "/spec/template/spec/containers/0/ports",
        "/spec/template/spec/containers/0/env",
        "/spec/template/spec/containers/0/image",
        "/spec/containers",
        "/spec/containers/0",
        "/spec/ports",
        "/spec/ports/0",
        "/spec/ports/0/nodePort",
        "/spec/selector/version",
        "/spec/minReplicas",
        "/spec/maxReplicas",
        "/spec/metrics",
        "/spec/behavior",
        "/status",
        "/status/replicas",
        "/status/conditions",
        "/status/conditions/0",
        "/subsets",
        "/subsets/0/addresses",
        "/kind",
        "/apiVersion",
    ];
    if u.ratio(1, 6)? {
        let n = u.int_in_range(0..=4)?;
        let mut p = String::new();
        for _ in 0..n {
            p.push('/');
            if u.ratio(1, 2)? {
                p.push_str(&key(u)?);
            } else {
                p.push_str(&u.arbitrary::<String>()?);
            }
        }
        return Ok(p);
    }
    Ok(u.choose(POINTERS)?.to_string())
}

/// Sets `pointer` in `target` to `value` where its parent exists (object field or array
/// slot); otherwise leaves `target` alone.
pub fn set(target: &mut Value, pointer: &str, value: Value) {
    if pointer.is_empty() {
        *target = value;
        return;
    }
    let Some((parent, last)) = pointer.rsplit_once('/') else {
        return;
    };
    let last = last.replace("~1", "/").replace("~0", "~");
    match target.pointer_mut(parent) {
        Some(Value::Object(map)) => {
            map.insert(last, value);
        }
        Some(Value::Array(items)) => {
            if last == "-" {
                items.push(value);
            } else if let Some(slot) = last.parse::<usize>().ok().and_then(|i| items.get_mut(i)) {
                *slot = value;
            }
        }
        _ => {}
    }
}

/// The repository's manifests, as the lab would receive them.
pub const MANIFESTS: &[&str] = &[
    include_str!("../../manifests/00-namespace.yaml"),
    include_str!("../../manifests/10-deployment-blue.yaml"),
    include_str!("../../manifests/11-deployment-green.yaml"),
    include_str!("../../manifests/20-service.yaml"),
    include_str!("../../manifests/30-hpa-blue.yaml"),
    include_str!("../../manifests/31-hpa-green.yaml"),
];

/// One object of every kind the lab stores: the manifests plus a Pod, Endpoints, Event,
/// Lease and a Deployment shaped as kubectl sends it.
pub static TEMPLATES: LazyLock<Vec<Value>> = LazyLock::new(|| {
    let mut out: Vec<Value> = MANIFESTS
        .iter()
        .filter_map(|m| serde_saphyr::from_str::<Value>(m).ok())
        .collect();
    out.extend([
        json!({"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"},
                            "annotations": {"resil.dev/port": "8080"}},
               "spec": {"containers": [
                   {"name": "web", "image": "resil-demo:latest",
                    "ports": [{"containerPort": 8080, "name": "http"}],
                    "env": [{"name": "COLOR", "value": "blue"}],
                    "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}},
                    "readinessProbe": {"httpGet": {"path": "/readyz", "port": 8080}}},
                   {"name": "side", "image": "busybox"}],
                        "restartPolicy": "Always", "terminationGracePeriodSeconds": 1}}),
        json!({"apiVersion": "v1", "kind": "Endpoints",
               "metadata": {"name": "web", "namespace": "default"},
               "subsets": [{"addresses": [{"ip": "127.0.0.1",
                                            "targetRef": {"kind": "Pod", "name": "web"}}],
                            "ports": [{"name": "http", "port": 8080}]}]}),
        json!({"apiVersion": "v1", "kind": "Event",
               "metadata": {"name": "web.1", "namespace": "default"},
               "involvedObject": {"kind": "Pod", "name": "web", "namespace": "default"},
               "reason": "Started", "message": "started", "type": "Normal", "count": 1}),
        json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
               "metadata": {"name": "web", "namespace": "default"},
               "spec": {"holderIdentity": "a", "leaseDurationSeconds": 15}}),
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
               "metadata": {"name": "web", "namespace": "default", "finalizers": ["a", "b"],
                            "labels": {"app": "web"},
                            "ownerReferences": [{"apiVersion": "v1", "kind": "X",
                                                 "name": "o1", "uid": "u1"}]},
               "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                        "strategy": {"type": "RollingUpdate",
                                     "rollingUpdate": {"maxSurge": "25%",
                                                       "maxUnavailable": "25%"}},
                        "template": {"metadata": {"labels": {"app": "web"}}, "spec": {
                            "containers": [
                                {"name": "web", "image": "web:v1", "args": ["--port", "8080"],
                                 "ports": [{"containerPort": 8080, "name": "http"},
                                           {"containerPort": 9090, "name": "metrics"}],
                                 "env": [{"name": "MODE", "value": "blue"}]},
                                {"name": "sidecar", "image": "proxy:v1"}],
                            "tolerations": [{"key": "a", "operator": "Exists"}]}}},
               "status": {"conditions": [{"type": "Available", "status": "True"}]}}),
    ]);
    out
});

/// Patch bodies as kubectl sends them (`kubectl apply`, `scale`, `label`, `rollout
/// restart`, `patch --type json`), for the patch types that take them.
pub static KUBECTL_PATCHES: LazyLock<Vec<Value>> = LazyLock::new(|| {
    vec![
        json!({"spec": {"replicas": 3}}),
        json!({"metadata": {"labels": {"tier": "front", "app": null}}}),
        json!({"spec": {"template": {"metadata": {"annotations": {
            "kubectl.kubernetes.io/restartedAt": "2026-01-01T00:00:00Z"}}}}}),
        json!({"metadata": {"annotations": {
                   "kubectl.kubernetes.io/last-applied-configuration": "{}"}},
               "spec": {"template": {"spec": {
                   "$setElementOrder/containers": [{"name": "web"}, {"name": "sidecar"}],
                   "containers": [{"name": "web", "image": "web:v2",
                                   "$setElementOrder/ports": [{"containerPort": 8080}],
                                   "ports": [{"containerPort": 9090, "$patch": "delete"}]}]}}}}),
        json!({"spec": {"template": {"spec": {"containers": [
            {"name": "sidecar", "$patch": "delete"}]}}}}),
        json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}}),
        json!({"spec": {"$retainKeys": ["type"], "strategy": {"type": "Recreate",
                                                             "$retainKeys": ["type"]}}}),
        json!({"spec": {"selector": {"version": "green"}}}),
        json!({"spec": {"template": {"spec": {"containers": {"$patch": "replace"}}}}}),
        json!([{"op": "replace", "path": "/spec/replicas", "value": 0},
               {"op": "add", "path": "/metadata/labels/x", "value": "y"}]),
        json!([{"op": "test", "path": "/metadata/name", "value": "web"},
               {"op": "remove", "path": "/metadata/finalizers"}]),
        json!([{"op": "copy", "from": "/spec", "path": "/metadata/annotations"},
               {"op": "move", "from": "/metadata/labels", "path": "/spec/x"}]),
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
               "metadata": {"name": "web", "namespace": "default"},
               "spec": {"replicas": 4, "template": {"spec": {"containers": [
                   {"name": "web", "image": "web:v3"}]}}}}),
    ]
});

/// Deepest nesting of a value, iteratively (a deep value must not overflow the checker).
pub fn value_depth(v: &Value) -> usize {
    let mut max = 0;
    let mut stack = vec![(v, 1usize)];
    while let Some((v, d)) = stack.pop() {
        max = max.max(d);
        match v {
            Value::Array(items) => stack.extend(items.iter().map(|i| (i, d + 1))),
            Value::Object(map) => stack.extend(map.values().map(|i| (i, d + 1))),
            _ => {}
        }
    }
    max
}

/// A temporary directory in memory (`/dev/shm`) where there is one: the targets write
/// files every execution, and the lab's state writer fsyncs, which on a disk would cost
/// more than the rest of the execution. Named `resil-fuzz-*`: a target that crashes
/// leaves it behind, and `scripts/fuzz.sh` removes those.
pub fn scratch_dir() -> tempfile::TempDir {
    let shm = std::path::Path::new("/dev/shm");
    let mut builder = tempfile::Builder::new();
    builder.prefix("resil-fuzz-");
    let dir = if shm.is_dir() {
        builder.tempdir_in(shm)
    } else {
        builder.tempdir()
    };
    dir.expect("a temporary directory")
}
