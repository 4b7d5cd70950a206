//! Strategic merge patch behaviour pinned against what a real API server does with the
//! patches kubectl sends.

use serde_json::{Value, json};

use super::merge;
use crate::patch::PatchError;

fn deployment() -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "finalizers": ["a", "b"],
                     "labels": {"app": "web"}},
        "spec": {
            "replicas": 2,
            "strategy": {"type": "RollingUpdate",
                         "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {
                "containers": [
                    {"name": "web", "image": "web:v1", "args": ["--port", "8080"],
                     "ports": [{"containerPort": 8080, "name": "http"},
                               {"containerPort": 9090, "name": "metrics"}],
                     "env": [{"name": "MODE", "value": "blue"},
                             {"name": "LOG", "value": "info"}]},
                    {"name": "sidecar", "image": "proxy:v1"}
                ],
                "tolerations": [{"key": "a", "operator": "Exists"}]
            }}
        },
        "status": {"conditions": [
            {"type": "Available", "status": "True"},
            {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"}
        ]}
    })
}

fn patched(patch: Value) -> Value {
    merge(&deployment(), &patch, "Deployment").unwrap()
}

fn pod_spec(object: &Value) -> &Value {
    &object["spec"]["template"]["spec"]
}

fn names(list: &Value) -> Vec<&str> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect()
}

/// Every `$...` key anywhere in `value`.
fn directives(value: &Value) -> Vec<String> {
    match value {
        Value::Object(map) => map
            .iter()
            .flat_map(|(k, v)| {
                let mut found = directives(v);
                if k.starts_with('$') {
                    found.push(k.clone());
                }
                found
            })
            .collect(),
        Value::Array(items) => items.iter().flat_map(directives).collect(),
        _ => Vec::new(),
    }
}

#[test]
fn containers_merge_by_name_changing_one_image_keeps_the_other_container() {
    let out = patched(json!({"spec": {"template": {"spec": {"containers": [
        {"name": "sidecar", "image": "proxy:v2"}
    ]}}}}));
    let containers = &pod_spec(&out)["containers"];
    assert_eq!(names(containers), ["web", "sidecar"]);
    assert_eq!(
        containers[0],
        deployment()["spec"]["template"]["spec"]["containers"][0]
    );
    assert_eq!(containers[1]["image"], "proxy:v2");
}

#[test]
fn env_merges_by_name() {
    let out = patched(json!({"spec": {"template": {"spec": {"containers": [
        {"name": "web", "env": [{"name": "LOG", "value": "debug"}, {"name": "NEW", "value": "1"}]}
    ]}}}}));
    assert_eq!(
        pod_spec(&out)["containers"][0]["env"],
        json!([{"name": "MODE", "value": "blue"}, {"name": "LOG", "value": "debug"},
               {"name": "NEW", "value": "1"}])
    );
}

#[test]
fn ports_merge_by_container_port() {
    let out = patched(json!({"spec": {"template": {"spec": {"containers": [
        {"name": "web", "ports": [{"containerPort": 9090, "name": "prom"}]}
    ]}}}}));
    assert_eq!(
        pod_spec(&out)["containers"][0]["ports"],
        json!([{"containerPort": 8080, "name": "http"}, {"containerPort": 9090, "name": "prom"}])
    );
}

#[test]
fn patch_delete_removes_the_element_with_that_key() {
    let out = patched(json!({"spec": {"template": {"spec": {"containers": [
        {"$patch": "delete", "name": "sidecar"},
        {"name": "web", "env": [{"$patch": "delete", "name": "MODE"}]}
    ]}}}}));
    let containers = &pod_spec(&out)["containers"];
    assert_eq!(names(containers), ["web"]);
    assert_eq!(
        containers[0]["env"],
        json!([{"name": "LOG", "value": "info"}])
    );
    assert!(directives(&out).is_empty());
}

#[test]
fn set_element_order_orders_the_merged_list() {
    let out = patched(json!({"spec": {"template": {"spec": {
        "$setElementOrder/containers": [{"name": "sidecar"}, {"name": "web"}],
        "containers": [{"name": "web", "image": "web:v2"}]
    }}}}));
    let containers = &pod_spec(&out)["containers"];
    assert_eq!(names(containers), ["sidecar", "web"]);
    assert_eq!(containers[1]["image"], "web:v2");
    assert!(directives(&out).is_empty());
}

#[test]
fn server_only_elements_keep_their_place_among_patched_ones() {
    let live = json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}, {"name": "c"}]}});
    let patch = json!({"spec": {
        "$setElementOrder/containers": [{"name": "a"}, {"name": "c"}],
        "containers": [{"name": "c", "image": "x"}]
    }});
    let out = merge(&live, &patch, "Pod").unwrap();
    // `b` is not in the patch: it stays between `a` and `c`, where the live list had it.
    assert_eq!(names(&out["spec"]["containers"]), ["a", "b", "c"]);
    assert_eq!(out["spec"]["containers"][2]["image"], "x");
}

#[test]
fn new_elements_without_an_order_directive_come_first_as_upstream() {
    // k8s.io/apimachinery's mergeSortedSlice puts patch items not in the live list before
    // the live ones; `kubectl patch` users see the same.
    let out = patched(json!({"spec": {"template": {"spec": {"containers": [
        {"name": "new", "image": "x"}
    ]}}}}));
    assert_eq!(
        names(&pod_spec(&out)["containers"]),
        ["new", "web", "sidecar"]
    );
}

#[test]
fn directives_never_reach_the_result() {
    let out = patched(json!({
        "metadata": {"$deleteFromPrimitiveList/finalizers": ["a"],
                     "$setElementOrder/finalizers": ["b", "c"], "finalizers": ["c"]},
        "spec": {
            "strategy": {"$retainKeys": ["type"], "type": "Recreate", "rollingUpdate": null},
            "template": {"spec": {"containers": [
                {"name": "new", "image": "x", "env": [{"name": "A", "value": "1", "drop": null}],
                 "ports": [{"$patch": "delete", "containerPort": 1}]},
            ], "volumes": [{"name": "v", "emptyDir": {"$patch": "replace", "medium": "Memory"}}]}}
        }
    }));
    assert_eq!(directives(&out), Vec::<String>::new());
    let new = &pod_spec(&out)["containers"][0];
    assert_eq!(new["env"], json!([{"name": "A", "value": "1"}]));
    assert_eq!(new["ports"], json!([]));
    assert_eq!(
        pod_spec(&out)["volumes"],
        json!([{"name": "v", "emptyDir": {"medium": "Memory"}}])
    );
}

#[test]
fn retain_keys_clears_the_fields_it_does_not_name() {
    let out = patched(json!({"spec": {"strategy": {
        "$retainKeys": ["type"], "type": "Recreate", "rollingUpdate": null
    }}}));
    assert_eq!(out["spec"]["strategy"], json!({"type": "Recreate"}));
}

#[test]
fn finalizers_merge_as_a_set_and_delete_from_primitive_list_removes() {
    let out = patched(json!({"metadata": {"finalizers": ["b", "c"]}}));
    assert_eq!(out["metadata"]["finalizers"], json!(["a", "b", "c"]));
    let out = patched(json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}}));
    assert_eq!(out["metadata"]["finalizers"], json!(["b"]));
}

#[test]
fn lists_without_a_merge_key_are_replaced() {
    let out = patched(json!({"spec": {"template": {"spec": {
        "containers": [{"name": "web", "args": ["--verbose"]}],
        "tolerations": [{"key": "b", "operator": "Exists"}]
    }}}}));
    assert_eq!(
        pod_spec(&out)["containers"][0]["args"],
        json!(["--verbose"])
    );
    assert_eq!(
        pod_spec(&out)["tolerations"],
        json!([{"key": "b", "operator": "Exists"}])
    );
}

#[test]
fn null_deletes_a_key_and_maps_merge_recursively() {
    let out = patched(
        json!({"metadata": {"labels": {"app": null, "tier": "front"}},
                             "spec": {"strategy": {"rollingUpdate": {"maxSurge": 1}}}}),
    );
    assert_eq!(out["metadata"]["labels"], json!({"tier": "front"}));
    assert_eq!(
        out["spec"]["strategy"]["rollingUpdate"],
        json!({"maxSurge": 1, "maxUnavailable": "25%"})
    );
}

#[test]
fn patch_replace_replaces_a_keyed_list_or_a_map() {
    let out = patched(json!({"spec": {"template": {"spec": {"containers": [
        {"name": "only", "image": "x"}, {"$patch": "replace"}
    ]}}}}));
    assert_eq!(names(&pod_spec(&out)["containers"]), ["only"]);
    let out = patched(json!({"spec": {"strategy": {"$patch": "replace", "type": "Recreate"}}}));
    assert_eq!(out["spec"]["strategy"], json!({"type": "Recreate"}));
}

#[test]
fn conditions_merge_by_type() {
    let out = patched(json!({"status": {"conditions": [
        {"type": "Progressing", "status": "False"}
    ]}}));
    assert_eq!(
        out["status"]["conditions"][0],
        json!({"type": "Available", "status": "True"})
    );
    assert_eq!(
        out["status"]["conditions"][1],
        json!({"type": "Progressing", "status": "False", "reason": "NewReplicaSetAvailable"})
    );
}

#[test]
fn service_ports_merge_by_port() {
    let live = json!({"kind": "Service", "spec": {"ports": [
        {"port": 80, "targetPort": 8080}, {"port": 443, "targetPort": 8443}
    ]}});
    let patch = json!({"spec": {"ports": [{"port": 80, "nodePort": 30080}]}});
    let out = merge(&live, &patch, "Service").unwrap();
    assert_eq!(
        out["spec"]["ports"],
        json!([{"port": 80, "targetPort": 8080, "nodePort": 30080},
               {"port": 443, "targetPort": 8443}])
    );
}

/// What `kubectl apply` sends (CreateThreeWayMergePatch) when the user's file changes
/// `replicas` from 2 to 3 and the `web` image from v1 to v2: the new last-applied
/// annotation, the changed scalars, the changed container by name and the list order.
#[test]
fn kubectl_apply_three_way_patch_changes_replicas_and_one_image() {
    let last_applied = r#"{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"annotations":{},"name":"web","namespace":"default"},"spec":{"replicas":3,"template":{"spec":{"containers":[{"image":"web:v2","name":"web"},{"image":"proxy:v1","name":"sidecar"}]}}}}"#;
    let patch = json!({
        "metadata": {"annotations": {
            "kubectl.kubernetes.io/last-applied-configuration": format!("{last_applied}\n")
        }},
        "spec": {"replicas": 3, "template": {"spec": {
            "$setElementOrder/containers": [{"name": "web"}, {"name": "sidecar"}],
            "containers": [{"image": "web:v2", "name": "web"}]
        }}}
    });
    let out = patched(patch);

    let mut expected = deployment();
    expected["metadata"]["annotations"] = json!({
        "kubectl.kubernetes.io/last-applied-configuration": format!("{last_applied}\n")
    });
    expected["spec"]["replicas"] = json!(3);
    expected["spec"]["template"]["spec"]["containers"][0]["image"] = json!("web:v2");
    assert_eq!(out, expected);
}

/// What `kubectl apply` sends when the user's file drops the sidecar container.
#[test]
fn kubectl_apply_three_way_patch_removes_a_container() {
    let out = patched(json!({"spec": {"template": {"spec": {
        "$setElementOrder/containers": [{"name": "web"}],
        "containers": [{"$patch": "delete", "name": "sidecar"}]
    }}}}));
    assert_eq!(names(&pod_spec(&out)["containers"]), ["web"]);
    assert_eq!(pod_spec(&out)["containers"][0]["image"], "web:v1");
}

#[test]
fn malformed_patches_are_bad_requests() {
    let cases = [
        json!([{"op": "add"}]),
        json!("spec"),
        json!({"spec": {"$patch": "frobnicate"}}),
        json!({"spec": {"template": {"spec": {"containers": [{"image": "no-name"}]}}}}),
        json!({"spec": {"template": {"spec": {"containers": [{"name": "web", "$patch": "unknown"}]}}}}),
        json!({"spec": {"template": {"spec": {"containers": ["web"]}}}}),
        json!({"spec": {"template": {"spec": {"containers": [{"$patch": "merge"}]}}}}),
        json!({"metadata": {"finalizers": [{"not": "a scalar"}]}}),
        json!({"metadata": {"$deleteFromPrimitiveList/finalizers": "a"}}),
        json!({"spec": {"$setElementOrder/x": {}}}),
        json!({"spec": {"strategy": {"$retainKeys": ["type"], "rollingUpdate": {}}}}),
        json!({"spec": {"$unknown": 1}}),
        json!({"spec": {"strategy": {"$patch": "merge", "type": "Recreate"}}}),
        json!({"$patch": "delete"}),
    ];
    for patch in cases {
        let result = merge(&deployment(), &patch, "Deployment");
        assert!(
            matches!(result, Err(PatchError::BadRequest(_))),
            "{patch} gave {result:?}"
        );
    }
}

#[test]
fn arrays_of_arrays_replace_but_cannot_merge_by_key() {
    let out = merge(
        &json!({"data": [[1, 2], [3]]}),
        &json!({"data": [[4], [{"a": null}]]}),
        "Thing",
    )
    .unwrap();
    assert_eq!(out["data"], json!([[4], [{}]]));

    let directive_only = merge(
        &json!({"data": [1]}),
        &json!({"data": [{"name": "x", "$patch": "delete"}, {"$patch": "replace"}]}),
        "Thing",
    )
    .unwrap();
    assert_eq!(directive_only["data"], json!([]));

    let keyed = json!({"spec": {"template": {"spec": {"containers": [["web"]]}}}});
    let result = merge(&deployment(), &keyed, "Deployment");
    assert!(matches!(result, Err(PatchError::Invalid(_))), "{result:?}");
}
