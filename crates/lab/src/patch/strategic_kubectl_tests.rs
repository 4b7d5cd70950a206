//! Differential check against the reference implementation: `kubectl patch --local`
//! applies a strategic merge patch with k8s.io/apimachinery's strategicpatch and the
//! compiled-in Kubernetes types, without a cluster. Every case must give the same object
//! here. Needs kubectl on PATH, so it is ignored by default:
//! `cargo test --lib lab::patch::strategic::kubectl_tests -- --ignored`.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::merge;

fn deployment() -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {
            "name": "web", "namespace": "default", "finalizers": ["a", "b"],
            "labels": {"app": "web"},
            "ownerReferences": [{"apiVersion": "v1", "kind": "X", "name": "o1", "uid": "u1"},
                                {"apiVersion": "v1", "kind": "X", "name": "o2", "uid": "u2"}]
        },
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "strategy": {"type": "RollingUpdate",
                         "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {
                "containers": [
                    {"name": "web", "image": "web:v1", "args": ["--port", "8080"],
                     "ports": [{"containerPort": 8080, "name": "http"},
                               {"containerPort": 9090, "name": "metrics"}],
                     "env": [{"name": "MODE", "value": "blue"}, {"name": "LOG", "value": "info"}],
                     "volumeMounts": [{"name": "v1", "mountPath": "/a"},
                                      {"name": "v2", "mountPath": "/b"}]},
                    {"name": "sidecar", "image": "proxy:v1"}
                ],
                "volumes": [{"name": "v1", "emptyDir": {}},
                            {"name": "v2", "configMap": {"name": "c"}}],
                "tolerations": [{"key": "a", "operator": "Exists"}]
            }}
        },
        "status": {"conditions": [
            {"type": "Available", "status": "True"},
            {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"}
        ]}
    })
}

fn pod() -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
           "spec": {"containers": [{"name": "a", "image": "a"}, {"name": "b", "image": "b"},
                                   {"name": "c", "image": "c"}]}})
}

fn service() -> Value {
    json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
           "spec": {"selector": {"app": "web", "v": "blue"},
                    "ports": [{"port": 80, "targetPort": 8080},
                              {"port": 443, "targetPort": 8443}]}})
}

fn in_pod_spec(spec: Value) -> Value {
    json!({"spec": {"template": {"spec": spec}}})
}

fn cases() -> Vec<(Value, Value)> {
    let d = deployment;
    let t = in_pod_spec;
    vec![
        (
            d(),
            t(json!({"containers": [{"name": "new", "image": "x"}]})),
        ),
        (
            d(),
            t(json!({"containers": [{"name": "sidecar", "image": "proxy:v2"}]})),
        ),
        (
            d(),
            t(json!({"containers": [{"name": "web", "env": [
            {"name": "LOG", "value": "debug"}, {"name": "NEW", "value": "1"}]}]})),
        ),
        (
            d(),
            t(json!({"containers": [{"name": "web", "ports": [
            {"containerPort": 9090, "name": "prom"}, {"containerPort": 7070}]}]})),
        ),
        (
            d(),
            t(
                json!({"containers": [{"$patch": "delete", "name": "sidecar"},
            {"name": "web", "env": [{"$patch": "delete", "name": "MODE"}]}]}),
            ),
        ),
        (
            d(),
            t(
                json!({"$setElementOrder/containers": [{"name": "sidecar"}, {"name": "web"}],
            "containers": [{"name": "web", "image": "web:v2"}]}),
            ),
        ),
        (
            pod(),
            json!({"spec": {"$setElementOrder/containers": [{"name": "a"}, {"name": "c"}],
            "containers": [{"name": "c", "image": "x"}]}}),
        ),
        (
            pod(),
            json!({"spec": {"$setElementOrder/containers":
            [{"name": "c"}, {"name": "a"}, {"name": "d"}], "containers": [{"name": "d"}]}}),
        ),
        (
            pod(),
            json!({"spec": {"containers": [{"name": "d"}, {"name": "b", "image": "b2"}]}}),
        ),
        (
            pod(),
            json!({"spec": {"containers": [{"name": "c", "image": "c2"}, {"name": "a"}]}}),
        ),
        (
            d(),
            json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate",
            "rollingUpdate": null}}}),
        ),
        (d(), json!({"metadata": {"finalizers": ["b", "c"]}})),
        (d(), json!({"metadata": {"finalizers": ["c", "a"]}})),
        (
            d(),
            json!({"metadata": {"finalizers": ["a", "a", "d", "d"]}}),
        ),
        (
            d(),
            json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"],
            "$setElementOrder/finalizers": ["b", "c"], "finalizers": ["c"]}}),
        ),
        (
            d(),
            json!({"metadata": {"$setElementOrder/finalizers": ["c", "b", "a"],
            "finalizers": ["c"]}}),
        ),
        (
            d(),
            json!({"metadata": {"$setElementOrder/finalizers": ["b", "a"]}}),
        ),
        (
            d(),
            json!({"metadata": {"$deleteFromPrimitiveList/nothere": ["a"]}}),
        ),
        (
            d(),
            t(
                json!({"containers": [{"name": "web", "args": ["--verbose"]}],
            "tolerations": [{"key": "b", "operator": "Exists"}]}),
            ),
        ),
        (
            d(),
            json!({"metadata": {"labels": {"app": null, "tier": "front"}},
            "spec": {"strategy": {"rollingUpdate": {"maxSurge": 1}}}}),
        ),
        (
            d(),
            t(json!({"containers": [{"name": "only", "image": "x"}, {"$patch": "replace"}]})),
        ),
        (
            d(),
            json!({"spec": {"strategy": {"$patch": "replace", "type": "Recreate"}}}),
        ),
        (d(), json!({"spec": {"strategy": {"$patch": "delete"}}})),
        (
            d(),
            json!({"metadata": {"labels": {"$patch": "replace", "x": "y"}}}),
        ),
        (
            d(),
            json!({"status": {"conditions": [{"type": "Progressing", "status": "False"}]}}),
        ),
        (
            service(),
            json!({"spec": {"ports": [{"port": 80, "nodePort": 30080}],
            "selector": {"v": "green"}}}),
        ),
        (
            d(),
            json!({
            "metadata": {"annotations": {"kubectl.kubernetes.io/last-applied-configuration":
                "{\"apiVersion\":\"apps/v1\",\"kind\":\"Deployment\"}\n"}},
            "spec": {"replicas": 3, "template": {"spec": {
                "$setElementOrder/containers": [{"name": "web"}, {"name": "sidecar"}],
                "containers": [{"image": "web:v2", "name": "web"}]}}}}),
        ),
        (
            d(),
            t(json!({"$setElementOrder/containers": [{"name": "web"}],
            "containers": [{"$patch": "delete", "name": "sidecar"}]})),
        ),
        (
            d(),
            t(json!({"$setElementOrder/containers": [{"name": "sidecar"}, {"name": "web"}]})),
        ),
        (
            d(),
            json!({"metadata": {"ownerReferences": [{"uid": "u2", "name": "o2-renamed"},
            {"uid": "u3", "apiVersion": "v1", "kind": "X", "name": "o3"}]}}),
        ),
        (
            d(),
            t(
                json!({"volumes": [{"name": "v2", "configMap": {"name": "d"}},
                                   {"name": "v3", "emptyDir": {}}],
            "containers": [{"name": "web", "volumeMounts": [{"mountPath": "/b", "name": "v3"}]}]}),
            ),
        ),
        (
            d(),
            t(json!({"imagePullSecrets": [{"name": "s1"}],
            "hostAliases": [{"ip": "1.2.3.4", "hostnames": ["x"]}]})),
        ),
        (
            d(),
            t(
                json!({"volumes": [{"name": "v2", "$retainKeys": ["name", "secret"],
            "secret": {"secretName": "s"}, "configMap": null}]}),
            ),
        ),
        (
            d(),
            t(
                json!({"$setElementOrder/volumes": [{"name": "v3"}, {"name": "v1"}],
            "volumes": [{"name": "v3", "emptyDir": {}}]}),
            ),
        ),
        (
            d(),
            t(json!({"containers": [{"name": "web", "env": [
            {"name": "A", "value": "1"}, {"name": "MODE", "value": null}]}]})),
        ),
        (d(), t(json!({"containers": null}))),
        (d(), t(json!({"containers": []}))),
        (d(), t(json!({"containers": [{"name": "web", "env": []}]}))),
        (
            d(),
            t(json!({"newlist": [{"name": "x", "$patch": "delete"}]})),
        ),
        (d(), json!({"spec": {"replicas": null, "template": null}})),
        (d(), json!({"spec": {"strategy": "Recreate"}})),
        (
            d(),
            json!({"spec": {"template": {"spec": {"containers": {"name": "x"}}}}}),
        ),
    ]
}

/// What `kubectl patch --local` makes of `patch` on `live`; `None` when it refuses.
fn kubectl(live: &Value, patch: &Value, home: &std::path::Path) -> Option<Value> {
    let file = home.join("live.json");
    std::fs::write(&file, live.to_string()).unwrap();
    let mut child = Command::new("kubectl")
        .args([
            "patch",
            "--local",
            "--type",
            "strategic",
            "-o",
            "json",
            "-f",
        ])
        .arg(&file)
        .arg("-p")
        .arg(patch.to_string())
        .env("HOME", home)
        .env("KUBECONFIG", home.join("none"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("kubectl on PATH");
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "kubectl hung on {patch}");
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    status
        .success()
        .then(|| serde_json::from_str(&out).unwrap())
}

#[test]
#[ignore = "needs kubectl on PATH"]
fn strategic_merge_agrees_with_kubectl() {
    let home = tempfile::tempdir().unwrap();
    let mut disagreements = Vec::new();
    let cases = cases();
    for (live, patch) in &cases {
        let kind = live["kind"].as_str().unwrap();
        let expected = kubectl(live, patch, home.path());
        let ours = merge(live, patch, kind).ok();
        if ours != expected {
            disagreements.push(format!(
                "patch {patch}\n  kubectl: {}\n  ours:    {}",
                expected.map_or("refused".to_string(), |v| v.to_string()),
                ours.map_or("refused".to_string(), |v| v.to_string())
            ));
        }
    }
    assert!(
        disagreements.is_empty(),
        "{} of {} cases differ:\n{}",
        disagreements.len(),
        cases.len(),
        disagreements.join("\n")
    );
}
