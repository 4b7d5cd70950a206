//! Server-side apply behaviour: upsert, pruning of dropped fields, several managers, and
//! the managedFields entries real API servers write.

use serde_json::{Value, json};

use super::apply_at;
use crate::patch::{Patch, PatchError, apply};

const T1: &str = "2026-01-01T10:00:00Z";
const T2: &str = "2026-01-01T11:00:00Z";

fn config(replicas: i64, image: &str) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [
                {"name": "web", "image": image, "ports": [{"containerPort": 8080}]}
            ]}}
        }
    })
}

fn run(live: Option<&Value>, body: &Value, manager: &str, now: &str) -> Value {
    apply_at(live, body, manager, "Deployment", now).unwrap()
}

fn managed(object: &Value) -> &Vec<Value> {
    object["metadata"]["managedFields"].as_array().unwrap()
}

fn entry<'o>(object: &'o Value, manager: &str) -> &'o Value {
    managed(object)
        .iter()
        .find(|e| e["manager"] == manager)
        .unwrap_or_else(|| panic!("no managedFields entry for {manager}"))
}

fn containers(object: &Value) -> &Value {
    &object["spec"]["template"]["spec"]["containers"]
}

#[test]
fn apply_to_nothing_creates_the_applied_object() {
    let created = run(None, &config(2, "web:v1"), "kubectl", T1);
    let mut expected = config(2, "web:v1");
    expected["metadata"]["managedFields"] = created["metadata"]["managedFields"].clone();
    assert_eq!(created, expected);
    assert_eq!(managed(&created).len(), 1);
}

#[test]
fn deployment_managed_fields_entry_has_the_upstream_shape() {
    let created = run(None, &config(2, "web:v1"), "kubectl", T1);
    assert_eq!(
        managed(&created)[0],
        json!({
            "manager": "kubectl",
            "operation": "Apply",
            "apiVersion": "apps/v1",
            "time": T1,
            "fieldsType": "FieldsV1",
            "fieldsV1": {
                "f:metadata": {"f:labels": {"f:app": {}}},
                "f:spec": {
                    "f:replicas": {},
                    "f:selector": {},
                    "f:template": {
                        "f:metadata": {"f:labels": {"f:app": {}}},
                        "f:spec": {"f:containers": {"k:{\"name\":\"web\"}": {
                            ".": {},
                            "f:image": {},
                            "f:name": {},
                            "f:ports": {"k:{\"containerPort\":8080,\"protocol\":\"TCP\"}": {
                                ".": {}, "f:containerPort": {}
                            }}
                        }}}
                    }
                }
            }
        })
    );
}

#[test]
fn real_clock_stamps_rfc3339_seconds_in_utc() {
    let body = config(1, "web:v1");
    let patch = Patch::Apply {
        body: &body,
        manager: "kubectl",
    };
    let created = apply(None, patch, "Deployment").unwrap();
    let time = managed(&created)[0]["time"].as_str().unwrap().to_string();
    assert!(
        chrono::DateTime::parse_from_rfc3339(&time).is_ok(),
        "{time}"
    );
    assert!(time.ends_with('Z') && time.len() == 20, "{time}");
}

#[test]
fn reapply_without_a_field_removes_it() {
    let first = config(2, "web:v1");
    let live = run(None, &first, "kubectl", T1);
    let mut second = config(2, "web:v1");
    second["spec"].as_object_mut().unwrap().remove("replicas");
    second["metadata"]["labels"] = json!({});
    let out = run(Some(&live), &second, "kubectl", T2);
    assert!(out["spec"].get("replicas").is_none(), "{out}");
    assert_eq!(out["metadata"]["labels"], json!({}));
    assert!(
        entry(&out, "kubectl")["fieldsV1"]["f:spec"]
            .get("f:replicas")
            .is_none()
    );
}

#[test]
fn reapply_without_a_container_removes_the_container_and_keeps_the_rest() {
    let mut two = config(2, "web:v1");
    two["spec"]["template"]["spec"]["containers"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "sidecar", "image": "proxy:v1"}));
    let live = run(None, &two, "kubectl", T1);
    let out = run(Some(&live), &config(3, "web:v2"), "kubectl", T2);
    assert_eq!(
        containers(&out),
        &json!([{"name": "web", "image": "web:v2", "ports": [{"containerPort": 8080}]}])
    );
    assert_eq!(out["spec"]["replicas"], 3);
}

#[test]
fn a_field_another_manager_set_survives_when_this_manager_drops_it() {
    let live = run(None, &config(2, "web:v1"), "ci", T1);
    // The autoscaler-like manager applies replicas and a label of its own.
    let scaler = json!({"apiVersion": "apps/v1", "kind": "Deployment",
                        "metadata": {"name": "web", "labels": {"scaled": "yes"}},
                        "spec": {"replicas": 5}});
    let live = run(Some(&live), &scaler, "scaler", T1);
    assert_eq!(live["spec"]["replicas"], 5);

    let mut without_replicas = config(2, "web:v2");
    without_replicas["spec"]
        .as_object_mut()
        .unwrap()
        .remove("replicas");
    let out = run(Some(&live), &without_replicas, "ci", T2);
    assert_eq!(out["spec"]["replicas"], 5, "still owned by scaler");
    assert_eq!(
        out["metadata"]["labels"],
        json!({"app": "web", "scaled": "yes"})
    );
    assert_eq!(containers(&out)[0]["image"], "web:v2");
    let managers: Vec<&str> = managed(&out)
        .iter()
        .map(|e| e["manager"].as_str().unwrap())
        .collect();
    assert_eq!(managers, ["scaler", "ci"], "sorted by time, then manager");
}

#[test]
fn apply_merges_into_fields_nobody_applied() {
    let mut live = config(2, "web:v1");
    live["metadata"]["uid"] = json!("1234");
    live["spec"]["strategy"] = json!({"type": "RollingUpdate"});
    live["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] = json!("IfNotPresent");
    live["status"] = json!({"replicas": 2});
    let out = run(Some(&live), &config(4, "web:v2"), "kubectl", T1);
    assert_eq!(out["metadata"]["uid"], "1234");
    assert_eq!(out["spec"]["strategy"], json!({"type": "RollingUpdate"}));
    assert_eq!(out["spec"]["replicas"], 4);
    assert_eq!(containers(&out)[0]["imagePullPolicy"], "IfNotPresent");
    assert_eq!(containers(&out)[0]["image"], "web:v2");
    assert_eq!(out["status"], json!({"replicas": 2}));
}

#[test]
fn keyed_lists_merge_by_key_in_applied_order_keeping_live_only_elements() {
    let live = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                      "spec": {"containers": [{"name": "a"}, {"name": "b"}, {"name": "c"}]}});
    let body = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                      "spec": {"containers": [{"name": "c", "image": "x"}, {"name": "a"}]}});
    let out = apply_at(Some(&live), &body, "m", "Pod", T1).unwrap();
    assert_eq!(
        out["spec"]["containers"],
        json!([{"name": "b"}, {"name": "c", "image": "x"}, {"name": "a"}])
    );
}

#[test]
fn managed_fields_sent_in_the_body_are_never_stored() {
    let mut body = config(2, "web:v1");
    body["metadata"]["managedFields"] = json!([{"manager": "forged", "operation": "Apply",
                                                "fieldsV1": {"f:spec": {}}}]);
    let out = run(None, &body, "kubectl", T1);
    assert_eq!(managed(&out).len(), 1);
    assert_eq!(managed(&out)[0]["manager"], "kubectl");
}

#[test]
fn time_moves_only_when_something_changed() {
    let live = run(None, &config(2, "web:v1"), "kubectl", T1);
    let same = run(Some(&live), &config(2, "web:v1"), "kubectl", T2);
    assert_eq!(entry(&same, "kubectl")["time"], T1);
    assert_eq!(same, live);
    let changed = run(Some(&live), &config(3, "web:v1"), "kubectl", T2);
    assert_eq!(entry(&changed, "kubectl")["time"], T2);
}

#[test]
fn update_entries_of_other_managers_are_kept_and_respected() {
    let mut live = config(2, "web:v1");
    live["metadata"]["managedFields"] = json!([{
        "manager": "kubectl-client-side-apply", "operation": "Update", "apiVersion": "apps/v1",
        "time": T1, "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:replicas": {}}}
    }]);
    let live = run(Some(&live), &config(2, "web:v1"), "kubectl", T1);
    let mut without_replicas = config(2, "web:v1");
    without_replicas["spec"]
        .as_object_mut()
        .unwrap()
        .remove("replicas");
    let out = run(Some(&live), &without_replicas, "kubectl", T2);
    assert_eq!(out["spec"]["replicas"], 2);
    let operations: Vec<&str> = managed(&out)
        .iter()
        .map(|e| e["operation"].as_str().unwrap())
        .collect();
    assert_eq!(operations, ["Apply", "Update"]);
}

#[test]
fn malformed_apply_bodies_are_bad_requests() {
    let mut missing_key = config(1, "x");
    missing_key["spec"]["template"]["spec"]["containers"] = json!([{"image": "x"}]);
    let cases = [
        (json!([1, 2]), "kubectl"),
        (json!("Deployment"), "kubectl"),
        (
            json!({"kind": "Deployment", "metadata": {"name": "web"}}),
            "kubectl",
        ),
        (
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web"}}),
            "kubectl",
        ),
        (config(1, "x"), ""),
        (missing_key, "kubectl"),
        (
            json!({"apiVersion": "apps/v1", "kind": "Deployment",
                   "spec": {"template": {"spec": {"containers": [["web"]]}}}}),
            "kubectl",
        ),
        (
            json!({"apiVersion": "apps/v1", "kind": "Deployment",
                   "spec": {"strategy": {"$patch": "replace"}}}),
            "kubectl",
        ),
    ];
    for (body, manager) in cases {
        let result = apply_at(None, &body, manager, "Deployment", T1);
        assert!(
            matches!(result, Err(PatchError::BadRequest(_))),
            "{body} / {manager:?}: {result:?}"
        );
    }
}

#[test]
fn lists_without_a_key_are_replaced_whole_even_lists_of_lists() {
    let live = json!({"apiVersion": "v1", "kind": "Thing", "metadata": {"name": "t"},
                      "data": [[1, 2], [3]], "args": ["a", "b"]});
    let body = json!({"apiVersion": "v1", "kind": "Thing", "metadata": {"name": "t"},
                      "data": [[4]], "args": ["c"]});
    let out = apply_at(Some(&live), &body, "m", "Thing", T1).unwrap();
    assert_eq!(out["data"], json!([[4]]));
    assert_eq!(out["args"], json!(["c"]));
    assert_eq!(
        entry(&out, "m")["fieldsV1"],
        json!({"f:args": {}, "f:data": {}})
    );
}

#[test]
fn finalizers_apply_as_a_set_and_are_owned_by_value() {
    let live = json!({"apiVersion": "v1", "kind": "ConfigMap",
                      "metadata": {"name": "c", "finalizers": ["x"]}});
    let body = json!({"apiVersion": "v1", "kind": "ConfigMap",
                      "metadata": {"name": "c", "finalizers": ["y", "x"]}});
    let out = apply_at(Some(&live), &body, "m", "ConfigMap", T1).unwrap();
    assert_eq!(out["metadata"]["finalizers"], json!(["y", "x"]));
    assert_eq!(
        entry(&out, "m")["fieldsV1"],
        json!({"f:metadata": {"f:finalizers": {"v:\"x\"": {}, "v:\"y\"": {}}}})
    );
}

#[test]
fn first_apply_to_an_unmanaged_object_hands_its_fields_to_before_first_apply() {
    // As created by a plain POST: no managedFields at all.
    let mut created = config(1, "web:v1");
    created["spec"]["paused"] = json!(false);
    let applied = run(Some(&created), &config(3, "web:v1"), "kubectl", T1);

    let placeholder = entry(&applied, "before-first-apply");
    assert_eq!(placeholder["operation"], "Update");
    let owned = &placeholder["fieldsV1"];
    assert!(owned["f:spec"].get("f:paused").is_some(), "{owned}");
    assert!(
        owned["f:metadata"]["f:labels"].get("f:app").is_some(),
        "same value: shared"
    );
    assert!(
        owned["f:spec"].get("f:replicas").is_none(),
        "changed by the apply: taken"
    );

    // Dropping a field the apply never changed keeps it; dropping one it took removes it.
    let mut slimmer = config(3, "web:v1");
    slimmer["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("labels");
    slimmer["spec"].as_object_mut().unwrap().remove("replicas");
    let out = run(Some(&applied), &slimmer, "kubectl", T2);
    assert_eq!(out["metadata"]["labels"], json!({"app": "web"}));
    assert!(out["spec"].get("replicas").is_none(), "{}", out["spec"]);
    assert_eq!(out["spec"]["paused"], false);
}

#[test]
fn changing_a_field_takes_it_from_the_manager_that_owned_it() {
    let live = run(None, &config(2, "web:v1"), "ci", T1);
    let scaler = json!({"apiVersion": "apps/v1", "kind": "Deployment",
                        "metadata": {"name": "web"}, "spec": {"replicas": 5}});
    let live = run(Some(&live), &scaler, "scaler", T1);
    assert!(
        entry(&live, "ci")["fieldsV1"]["f:spec"]
            .get("f:replicas")
            .is_none()
    );

    // The scaler owned nothing else: once ci takes replicas back, its entry goes.
    let out = run(Some(&live), &config(3, "web:v1"), "ci", T2);
    assert_eq!(out["spec"]["replicas"], 3);
    assert_eq!(managed(&out).len(), 1, "{:?}", managed(&out));
    assert_eq!(managed(&out)[0]["manager"], "ci");
}

#[test]
fn service_ports_apply_by_port_and_protocol_and_hpa_metrics_replace_whole() {
    let live = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
                      "spec": {"selector": {"app": "web", "v": "blue"},
                               "ports": [{"port": 80, "targetPort": 8080, "nodePort": 30080}]}});
    let body = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
                      "spec": {"selector": {"app": "web"},
                               "ports": [{"port": 80, "targetPort": 9090}]}});
    let out = apply_at(Some(&live), &body, "m", "Service", T1).unwrap();
    // The selector is an atomic map: replaced, not merged.
    assert_eq!(out["spec"]["selector"], json!({"app": "web"}));
    assert_eq!(
        out["spec"]["ports"],
        json!([{"port": 80, "targetPort": 9090, "nodePort": 30080}])
    );
    assert_eq!(
        entry(&out, "m")["fieldsV1"]["f:spec"],
        json!({"f:selector": {}, "f:ports": {"k:{\"port\":80,\"protocol\":\"TCP\"}": {
            ".": {}, "f:port": {}, "f:targetPort": {}
        }}})
    );

    let hpa = |metrics: Value| {
        json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
               "metadata": {"name": "web"}, "spec": {"maxReplicas": 5, "metrics": metrics}})
    };
    let cpu = json!([{"type": "Resource", "resource": {"name": "cpu",
                      "target": {"type": "Utilization", "averageUtilization": 50}}}]);
    let memory = json!([{"type": "Resource", "resource": {"name": "memory",
                         "target": {"type": "Utilization", "averageUtilization": 70}}}]);
    let live = apply_at(None, &hpa(cpu), "m", "HorizontalPodAutoscaler", T1).unwrap();
    let out = apply_at(
        Some(&live),
        &hpa(memory.clone()),
        "m",
        "HorizontalPodAutoscaler",
        T2,
    )
    .unwrap();
    assert_eq!(out["spec"]["metrics"], memory);
    assert_eq!(
        entry(&out, "m")["fieldsV1"],
        json!({"f:spec": {"f:maxReplicas": {}, "f:metrics": {}}})
    );
}
