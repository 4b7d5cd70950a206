//! Typed create/get/list/replace/patch/delete, subresources, cascades and discovery.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Endpoints, Event, Namespace, Pod, Service};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;
use std::time::Duration;

use super::{api_error, deployment, pod};
use crate::support::{raw, start_api_only_lab};

#[tokio::test]
async fn typed_crud_works_for_every_served_resource() {
    let (lab, client, _dir) = start_api_only_lab().await;
    let pp = PostParams::default();
    let dp = DeleteParams::default();

    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": "team"}})).unwrap();
    namespaces.create(&pp, &ns).await.unwrap();
    assert!(
        namespaces.get("default").await.is_ok(),
        "default namespace exists"
    );

    let pods: Api<Pod> = Api::namespaced(client.clone(), "team");
    let created = pods
        .create(&pp, &pod("web-1", json!({"app": "web"})))
        .await
        .unwrap();
    assert_eq!(created.metadata.namespace.as_deref(), Some("team"));
    assert_eq!(created.status.unwrap().phase.as_deref(), Some("Pending"));

    let services: Api<Service> = Api::namespaced(client.clone(), "team");
    let svc: Service = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"type": "NodePort", "selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]},
    }))
    .unwrap();
    let svc = services.create(&pp, &svc).await.unwrap();
    let port = svc.spec.unwrap().ports.unwrap()[0].node_port.unwrap();
    assert!(
        (30_000..=32_767).contains(&port),
        "node port allocated: {port}"
    );

    let endpoints: Api<Endpoints> = Api::namespaced(client.clone(), "team");
    let ep: Endpoints =
        serde_json::from_value(json!({"metadata": {"name": "web"}, "subsets": []})).unwrap();
    endpoints.create(&pp, &ep).await.unwrap();

    let events: Api<Event> = Api::namespaced(client.clone(), "team");
    let ev: Event = serde_json::from_value(json!({
        "metadata": {"generateName": "web-"},
        "involvedObject": {"kind": "Pod", "name": "web-1", "namespace": "team"},
        "reason": "Started", "message": "started", "type": "Normal",
    }))
    .unwrap();
    let ev = events.create(&pp, &ev).await.unwrap();
    assert!(
        ev.metadata.name.unwrap().starts_with("web-"),
        "generateName fills a name"
    );

    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "team");
    deployments
        .create(&pp, &deployment("web", 2))
        .await
        .unwrap();

    let hpas: Api<HorizontalPodAutoscaler> = Api::namespaced(client.clone(), "team");
    let hpa: HorizontalPodAutoscaler = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}, "maxReplicas": 5},
    }))
    .unwrap();
    let hpa = hpas.create(&pp, &hpa).await.unwrap();
    assert_eq!(hpa.spec.min_replicas, Some(1), "minReplicas defaults to 1");

    let leases: Api<Lease> = Api::namespaced(client.clone(), "team");
    let lease: Lease = serde_json::from_value(
        json!({"metadata": {"name": "leader"}, "spec": {"holderIdentity": "a"}}),
    )
    .unwrap();
    let mut lease = leases.create(&pp, &lease).await.unwrap();
    lease.spec.as_mut().unwrap().holder_identity = Some("b".into());
    let lease = leases.replace("leader", &pp, &lease).await.unwrap();
    assert_eq!(lease.spec.unwrap().holder_identity.as_deref(), Some("b"));

    assert_eq!(
        pods.list(&ListParams::default()).await.unwrap().items.len(),
        1
    );
    let all_pods: Api<Pod> = Api::all(client.clone());
    assert_eq!(
        all_pods
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len(),
        1
    );
    assert_eq!(deployments.get("web").await.unwrap().spec.replicas, Some(2));

    pods.delete("web-1", &dp).await.unwrap();
    assert!(
        pods.get_opt("web-1").await.unwrap().is_none(),
        "pod gone at once without a kubelet"
    );
    services.delete("web", &dp).await.unwrap();
    endpoints.delete("web", &dp).await.unwrap();
    deployments.delete("web", &dp).await.unwrap();
    hpas.delete("web", &dp).await.unwrap();
    leases.delete("leader", &dp).await.unwrap();
    assert!(deployments.get_opt("web").await.unwrap().is_none());
    lab.shutdown().await;
}

#[tokio::test]
async fn server_fills_metadata_and_bumps_generation_only_on_spec_change() {
    let (lab, client, _dir) = start_api_only_lab().await;
    let deployments: Api<Deployment> = Api::default_namespaced(client);
    let d = deployments
        .create(&PostParams::default(), &deployment("web", 1))
        .await
        .unwrap();
    let meta = &d.metadata;
    assert!(
        meta.uid.is_some() && meta.creation_timestamp.is_some() && meta.resource_version.is_some()
    );
    assert_eq!(meta.generation, Some(1));

    let labels = json!({"metadata": {"labels": {"team": "a"}}});
    let d = deployments
        .patch("web", &PatchParams::default(), &Patch::Merge(&labels))
        .await
        .unwrap();
    assert_eq!(
        d.metadata.generation,
        Some(1),
        "metadata change keeps generation"
    );

    let spec = json!({"spec": {"replicas": 3}});
    let d2 = deployments
        .patch("web", &PatchParams::default(), &Patch::Merge(&spec))
        .await
        .unwrap();
    assert_eq!(
        d2.metadata.generation,
        Some(2),
        "spec change bumps generation"
    );
    let rv1: u64 = d.metadata.resource_version.unwrap().parse().unwrap();
    let rv2: u64 = d2.metadata.resource_version.unwrap().parse().unwrap();
    assert!(rv2 > rv1);
    lab.shutdown().await;
}

#[tokio::test]
async fn merge_and_json_patches_change_the_object() {
    let (lab, client, _dir) = start_api_only_lab().await;
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    pods.create(&PostParams::default(), &pod("web-1", json!({"app": "web"})))
        .await
        .unwrap();
    let pp = PatchParams::default();
    let merged = pods
        .patch(
            "web-1",
            &pp,
            &Patch::Merge(json!({"metadata": {"labels": {"app": null, "tier": "front"}}})),
        )
        .await
        .unwrap();
    let labels = merged.metadata.labels.unwrap();
    assert_eq!(labels.get("tier").map(String::as_str), Some("front"));
    assert!(!labels.contains_key("app"), "null deletes in a merge patch");

    // JSON patch (RFC 6902), sent raw: kube's typed Patch::Json needs an optional feature.
    let path = "/api/v1/namespaces/default/pods/web-1";
    let ops = json!([{"op": "add", "path": "/metadata/annotations", "value": {"note": "x"}}]);
    let (code, _, body) = raw(
        &client,
        "PATCH",
        path,
        Some("application/json-patch+json"),
        ops.to_string().into(),
    )
    .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["metadata"]["annotations"]["note"], "x");
    let failing = json!([{"op": "test", "path": "/metadata/name", "value": "other"}]);
    let (code, _, body) = raw(
        &client,
        "PATCH",
        path,
        Some("application/json-patch+json"),
        failing.to_string().into(),
    )
    .await;
    assert_eq!((code, body["reason"].as_str()), (422, Some("Invalid")));
    let err = api_error(
        pods.patch("missing", &pp, &Patch::Merge(json!({})))
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code, 404);
    lab.shutdown().await;
}

#[tokio::test]
async fn status_writes_change_only_status_and_main_writes_keep_it() {
    let (lab, client, _dir) = start_api_only_lab().await;
    let deployments: Api<Deployment> = Api::default_namespaced(client);
    deployments
        .create(&PostParams::default(), &deployment("web", 1))
        .await
        .unwrap();
    let pp = PatchParams::default();
    let status =
        json!({"spec": {"replicas": 9}, "status": {"replicas": 1, "observedGeneration": 1}});
    let d = deployments
        .patch_status("web", &pp, &Patch::Merge(&status))
        .await
        .unwrap();
    assert_eq!(d.status.as_ref().unwrap().replicas, Some(1));
    assert_eq!(d.spec.replicas, Some(1), "/status ignores spec");

    let main = json!({"spec": {"replicas": 2}, "status": {"replicas": 7}});
    let d = deployments
        .patch("web", &pp, &Patch::Merge(&main))
        .await
        .unwrap();
    assert_eq!(d.spec.replicas, Some(2));
    assert_eq!(
        d.status.unwrap().replicas,
        Some(1),
        "main write ignores status"
    );
    lab.shutdown().await;
}

#[tokio::test]
async fn deployment_scale_subresource_reads_and_writes_replicas() {
    let (lab, client, _dir) = start_api_only_lab().await;
    let deployments: Api<Deployment> = Api::default_namespaced(client);
    deployments
        .create(&PostParams::default(), &deployment("web", 2))
        .await
        .unwrap();
    let scale = deployments.get_scale("web").await.unwrap();
    assert_eq!(scale.spec.unwrap().replicas, Some(2));
    assert_eq!(scale.status.unwrap().selector.as_deref(), Some("app=web"));

    let patched = deployments
        .patch_scale(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 5}})),
        )
        .await
        .unwrap();
    assert_eq!(patched.spec.unwrap().replicas, Some(5));
    assert_eq!(deployments.get("web").await.unwrap().spec.replicas, Some(5));

    let mut stale = deployments.get_scale("web").await.unwrap();
    deployments
        .patch_scale(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 6}})),
        )
        .await
        .unwrap();
    stale.spec.as_mut().unwrap().replicas = Some(1);
    let err = api_error(
        deployments
            .replace_scale("web", &PostParams::default(), &stale)
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code, 409);
    lab.shutdown().await;
}

#[tokio::test]
async fn yaml_bodies_are_accepted() {
    let (lab, client, _dir) = start_api_only_lab().await;
    let yaml = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: from-yaml\nspec:\n  containers:\n  - name: a\n    image: resil-demo\n";
    let (code, _, body) = raw(
        &client,
        "POST",
        "/api/v1/namespaces/default/pods",
        Some("application/yaml"),
        yaml.into(),
    )
    .await;
    assert_eq!(code, 201, "{body}");
    assert_eq!(body["metadata"]["name"], "from-yaml");
    lab.shutdown().await;
}

#[tokio::test]
async fn deleting_an_owner_cascades_unless_orphaned() {
    let (lab, client, _dir) = start_api_only_lab().await;
    let deployments: Api<Deployment> = Api::default_namespaced(client.clone());
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    let pp = PostParams::default();
    for (owner, child) in [("web", "web-1"), ("keep", "keep-1")] {
        let d = deployments
            .create(&pp, &deployment(owner, 1))
            .await
            .unwrap();
        let mut p = pod(child, json!({}));
        p.metadata.owner_references = Some(vec![serde_json::from_value(json!({
            "apiVersion": "apps/v1", "kind": "Deployment", "name": owner, "uid": d.metadata.uid.unwrap(),
        }))
        .unwrap()]);
        pods.create(&pp, &p).await.unwrap();
    }
    deployments
        .delete("web", &DeleteParams::background())
        .await
        .unwrap();
    assert!(
        pods.get_opt("web-1").await.unwrap().is_none(),
        "background deletes dependents"
    );
    deployments
        .delete("keep", &DeleteParams::orphan())
        .await
        .unwrap();
    let orphan = pods.get("keep-1").await.unwrap();
    assert!(
        orphan
            .metadata
            .owner_references
            .unwrap_or_default()
            .is_empty(),
        "orphan drops the owner reference"
    );
    lab.shutdown().await;
}

#[tokio::test]
async fn deleting_a_namespace_deletes_everything_in_it() {
    let (lab, client, _dir) = start_api_only_lab().await;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": "gone"}})).unwrap();
    namespaces
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
    let pods: Api<Pod> = Api::namespaced(client.clone(), "gone");
    pods.create(&PostParams::default(), &pod("p", json!({})))
        .await
        .unwrap();
    namespaces
        .delete("gone", &DeleteParams::default())
        .await
        .unwrap();
    let err = api_error(
        namespaces
            .delete("default", &DeleteParams::default())
            .await
            .unwrap_err(),
    );
    assert_eq!(
        (err.code, err.reason.as_str()),
        (403, "Forbidden"),
        "default cannot be deleted"
    );
    // The namespace controller empties the Terminating namespace, then it goes.
    crate::support::eventually(Duration::from_secs(10), "the namespace gone", || async {
        namespaces
            .get_opt("gone")
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
    assert!(pods.get_opt("p").await.unwrap().is_none());
    let err = api_error(
        pods.create(&PostParams::default(), &pod("q", json!({})))
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code, 404, "no creates in a missing namespace");
    lab.shutdown().await;
}

#[tokio::test]
async fn discovery_describes_every_served_group() {
    let (lab, client, _dir) = start_api_only_lab().await;
    let info = client.apiserver_version().await.unwrap();
    assert_eq!(info.major, "1");
    let discovery = kube::discovery::Discovery::new(client.clone())
        .run()
        .await
        .unwrap();
    let groups: Vec<String> = discovery.groups().map(|g| g.name().to_string()).collect();
    for g in [
        "",
        "apps",
        "autoscaling",
        "coordination.k8s.io",
        "metrics.k8s.io",
    ] {
        assert!(groups.iter().any(|x| x == g), "group {g:?} in {groups:?}");
    }
    let (code, _, body) = raw(
        &client,
        "GET",
        "/apis/metrics.k8s.io/v1beta1/namespaces/default/pods",
        None,
        vec![],
    )
    .await;
    assert_eq!((code, body["kind"].as_str()), (200, Some("PodMetricsList")));
    assert!(body["items"].is_array());
    let (code, _, body) = raw(&client, "GET", "/resil/v1/status", None, vec![]).await;
    assert_eq!(code, 200);
    // default, kube-system and kube-public, as an upstream API server starts with.
    assert_eq!(body["objects"]["namespaces"], 3);
    // The subresources the lab serves are listed, as kubectl and RBAC tooling expect.
    let (code, _, body) = raw(&client, "GET", "/api/v1", None, vec![]).await;
    assert_eq!(code, 200);
    let names: Vec<&str> = body["resources"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["name"].as_str())
        .collect();
    for sub in ["pods/status", "pods/log", "pods/proxy"] {
        assert!(names.contains(&sub), "{sub} in {names:?}");
    }
    lab.shutdown().await;
}

#[tokio::test]
async fn server_side_apply_creates_then_updates() {
    let (lab, client, _dir) = start_api_only_lab().await;
    let deployments: Api<Deployment> = Api::default_namespaced(client);
    let pp = PatchParams::apply("resil-test");
    let mut manifest = serde_json::to_value(deployment("web", 1)).unwrap();
    manifest["apiVersion"] = json!("apps/v1");
    manifest["kind"] = json!("Deployment");
    let created = deployments
        .patch("web", &pp, &Patch::Apply(&manifest))
        .await
        .unwrap();
    assert_eq!(created.spec.replicas, Some(1), "apply is an upsert");
    manifest["spec"]["replicas"] = json!(3);
    let updated = deployments
        .patch("web", &pp, &Patch::Apply(&manifest))
        .await
        .unwrap();
    assert_eq!(updated.spec.replicas, Some(3));
    assert_eq!(updated.metadata.uid, created.metadata.uid);
    let managers: Vec<_> = updated
        .metadata
        .managed_fields
        .unwrap_or_default()
        .into_iter()
        .filter_map(|m| m.manager)
        .collect();
    assert!(managers.contains(&"resil-test".to_string()), "{managers:?}");
    lab.shutdown().await;
}

#[tokio::test]
async fn delete_collection_removes_only_selected_objects() {
    let (lab, client, _dir) = start_api_only_lab().await;
    let pods: Api<Pod> = Api::default_namespaced(client);
    for (name, app) in [("a", "web"), ("b", "web"), ("c", "db")] {
        pods.create(&PostParams::default(), &pod(name, json!({"app": app})))
            .await
            .unwrap();
    }
    pods.delete_collection(
        &DeleteParams::default(),
        &ListParams::default().labels("app=web"),
    )
    .await
    .unwrap();
    let left: Vec<_> = pods
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|p| p.metadata.name.unwrap())
        .collect();
    assert_eq!(left, ["c"]);
    lab.shutdown().await;
}

#[tokio::test]
async fn dry_runs_check_and_answer_but_store_nothing() {
    let (lab, client, _dir) = start_api_only_lab().await;
    let deployments: Api<Deployment> = Api::default_namespaced(client);
    let dry = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    let preview = deployments
        .create(&dry, &deployment("web", 2))
        .await
        .unwrap();
    assert_eq!(preview.spec.replicas, Some(2));
    assert!(
        deployments.get_opt("web").await.unwrap().is_none(),
        "nothing stored"
    );

    deployments
        .create(&PostParams::default(), &deployment("web", 2))
        .await
        .unwrap();
    let pp = PatchParams {
        dry_run: true,
        ..PatchParams::default()
    };
    let patched = deployments
        .patch("web", &pp, &Patch::Merge(json!({"spec": {"replicas": 7}})))
        .await
        .unwrap();
    assert_eq!(patched.spec.replicas, Some(7));
    assert_eq!(
        deployments.get("web").await.unwrap().spec.replicas,
        Some(2),
        "patch not stored"
    );
    let dp = DeleteParams {
        dry_run: true,
        ..DeleteParams::default()
    };
    deployments.delete("web", &dp).await.unwrap();
    assert!(
        deployments.get_opt("web").await.unwrap().is_some(),
        "delete not done"
    );
    let err = api_error(
        deployments
            .create(&dry, &deployment("web", 1))
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code, 409, "a dry run still checks the name");
    lab.shutdown().await;
}
