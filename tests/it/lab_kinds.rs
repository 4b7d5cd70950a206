//! ConfigMaps, Secrets, EndpointSlices, namespace deletion, the garbage collector and
//! HPA status on an in-process lab, through kube-rs and the real kubectl (skipped when
//! kubectl is not installed). Demo pods are real `resil demo-app` processes; every wait
//! is bounded.

use std::path::Path;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{Namespace, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use resil_lab::Lab;
use serde_json::{Value, json};

use crate::support::{eventually, start_api_only_lab, start_lab};

/// Runs kubectl against the lab (bounded at 30 s); `None` when kubectl is not installed.
async fn kubectl(lab: &Lab, dir: &Path, args: &[&str], stdin: Option<&str>) -> Option<String> {
    use tokio::io::AsyncWriteExt;
    let on_path = std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join("kubectl").is_file()));
    if !on_path {
        eprintln!("note: kubectl is not on PATH; skipping");
        return None;
    }
    let kubeconfig = dir.join("kubectl-config");
    std::fs::write(&kubeconfig, lab.kubeconfig_yaml()).unwrap();
    let mut child = tokio::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .arg("--cache-dir")
        .arg(dir.join("kubectl-cache"))
        .args(args)
        .env("HOME", dir)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("kubectl runs");
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).await.unwrap();
    }
    drop(input);
    let out = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .expect("kubectl finishes")
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "kubectl {args:?}: {stderr}{stdout}");
    Some(stdout)
}

/// `kubectl create ... --dry-run=client -o json | kubectl apply -f -`.
async fn kubectl_create(lab: &Lab, dir: &Path, args: &[&str]) -> Option<()> {
    let mut create = vec!["create"];
    create.extend_from_slice(args);
    create.extend_from_slice(&["--dry-run=client", "-o", "json"]);
    let json = kubectl(lab, dir, &create, None).await?;
    kubectl(lab, dir, &["apply", "-f", "-"], Some(&json)).await?;
    Some(())
}

fn deployment(name: &str, replicas: i32, container: Value) -> Deployment {
    let mut c = json!({"name": "web", "image": "resil-demo:1",
        "readinessProbe": {"httpGet": {"path": "/readyz", "port": 8080}, "periodSeconds": 1}});
    c.as_object_mut()
        .unwrap()
        .extend(container.as_object().unwrap().clone());
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"terminationGracePeriodSeconds": 1, "containers": [c]}}},
    }))
    .unwrap()
}

async fn pods_of(pods: &Api<Pod>, app: &str) -> Vec<Pod> {
    pods.list(&ListParams::default().labels(&format!("app={app}")))
        .await
        .unwrap()
        .items
}

/// The environment of a running pod's process (Linux: `/proc/PID/environ`).
fn process_env(pod: &Pod) -> Vec<(String, String)> {
    let id = pod
        .status
        .as_ref()
        .unwrap()
        .container_statuses
        .as_ref()
        .unwrap()[0]
        .container_id
        .clone()
        .unwrap();
    let pid = id.trim_start_matches("resil://");
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    environ
        .split(|b| *b == 0)
        .filter_map(|kv| {
            let kv = String::from_utf8_lossy(kv);
            let (k, v) = kv.split_once('=')?;
            Some((k.to_string(), v.to_string()))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_maps_and_secrets_reach_pod_env_and_a_missing_one_is_waited_for() {
    let (lab, client, dir) = start_lab().await;
    let created = kubectl_create(
        &lab,
        dir.path(),
        &[
            "configmap",
            "app-config",
            "--from-literal=COLOR=green",
            "--from-literal=MODE=fast",
        ],
    )
    .await;
    if created.is_none() {
        return lab.shutdown().await;
    }
    kubectl_create(
        &lab,
        dir.path(),
        &["secret", "generic", "db", "--from-literal=password=s3cret"],
    )
    .await
    .unwrap();
    let table = kubectl(&lab, dir.path(), &["get", "cm,secrets"], None)
        .await
        .unwrap();
    assert!(table.contains("DATA") && table.contains("TYPE"), "{table}");
    let row = |name: &str| {
        table
            .lines()
            .find(|l| l.contains(name))
            .unwrap_or("")
            .to_string()
    };
    assert!(
        row("app-config").split_whitespace().nth(1) == Some("2"),
        "{table}"
    );
    assert!(row("secret/db").contains("Opaque"), "{table}");

    let deploys: Api<Deployment> = Api::default_namespaced(client.clone());
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    let container = json!({
        "envFrom": [{"secretRef": {"name": "db"}, "prefix": "DB_"}],
        "env": [
            {"name": "COLOR", "valueFrom": {"configMapKeyRef": {"name": "app-config", "key": "COLOR"}}},
            {"name": "LATE", "valueFrom": {"configMapKeyRef": {"name": "late", "key": "v"}}},
            {"name": "OPT", "valueFrom": {"configMapKeyRef": {"name": "nope", "key": "v", "optional": true}}},
        ],
    });
    deploys
        .create(&PostParams::default(), &deployment("web", 1, container))
        .await
        .unwrap();
    let waiting = eventually(
        Duration::from_secs(20),
        "CreateContainerConfigError",
        || async {
            let pod = pods_of(&pods, "web").await.into_iter().next()?;
            let state = pod.status?.container_statuses?.first()?.state.clone()?;
            state
                .waiting
                .filter(|w| w.reason.as_deref() == Some("CreateContainerConfigError"))
        },
    )
    .await;
    assert_eq!(
        waiting.message.as_deref(),
        Some("configmap \"late\" not found")
    );

    kubectl_create(
        &lab,
        dir.path(),
        &["configmap", "late", "--from-literal=v=now"],
    )
    .await
    .unwrap();
    let pod = eventually(Duration::from_secs(30), "the pod starts", || async {
        pods_of(&pods, "web")
            .await
            .into_iter()
            .find(crate::support::pod_ready)
    })
    .await;
    let env = process_env(&pod);
    let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    assert_eq!(get("COLOR"), Some("green"));
    assert_eq!(get("DB_password"), Some("s3cret"));
    assert_eq!(get("LATE"), Some("now"));
    assert_eq!(get("OPT"), None);
    lab.shutdown().await;
}

/// The endpoints of the slices of Service `svc`, as (pod name, ready).
async fn slice_endpoints(slices: &Api<EndpointSlice>, svc: &str) -> Vec<(String, bool)> {
    let lp = ListParams::default().labels(&format!("kubernetes.io/service-name={svc}"));
    let mut out: Vec<(String, bool)> = slices
        .list(&lp)
        .await
        .unwrap()
        .items
        .into_iter()
        .flat_map(|s| s.endpoints.unwrap_or_default())
        .map(|e| {
            let name = e.target_ref.and_then(|r| r.name).unwrap_or_default();
            (name, e.conditions.and_then(|c| c.ready) == Some(true))
        })
        .collect();
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoint_slices_follow_pod_readiness_and_kubectl_describe_shows_them() {
    let (lab, client, dir) = start_lab().await;
    let deploys: Api<Deployment> = Api::default_namespaced(client.clone());
    let services: Api<Service> = Api::default_namespaced(client.clone());
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    let slices: Api<EndpointSlice> = Api::default_namespaced(client.clone());
    deploys
        .create(&PostParams::default(), &deployment("web", 2, json!({})))
        .await
        .unwrap();
    let svc: Service = serde_json::from_value(json!({"metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}}))
    .unwrap();
    services.create(&PostParams::default(), &svc).await.unwrap();
    eventually(Duration::from_secs(30), "two ready endpoints", || async {
        let eps = slice_endpoints(&slices, "web").await;
        (eps.len() == 2 && eps.iter().all(|(_, r)| *r)).then_some(())
    })
    .await;
    let slice = &slices.list(&ListParams::default()).await.unwrap().items[0];
    let labels = slice.metadata.labels.clone().unwrap();
    assert_eq!(
        labels["endpointslice.kubernetes.io/managed-by"],
        "endpointslice-controller.k8s.io"
    );
    assert_eq!(slice.address_type, "IPv4");
    assert_eq!(
        slice.metadata.owner_references.as_ref().unwrap()[0].kind,
        "Service"
    );

    // One pod turns unready (the demo app's fault switch): its endpoint follows.
    let pod = pods_of(&pods, "web").await.into_iter().next().unwrap();
    let port = &pod.metadata.annotations.as_ref().unwrap()["resil.dev/port"];
    reqwest::Client::new()
        .put(format!("http://127.0.0.1:{port}/admin/faults"))
        .json(&json!({"unready": true}))
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap();
    let name = pod.metadata.name.clone().unwrap();
    eventually(
        Duration::from_secs(20),
        "the endpoint turns unready",
        || async {
            let eps = slice_endpoints(&slices, "web").await;
            eps.contains(&(name.clone(), false)).then_some(())
        },
    )
    .await;

    let Some(listed) = kubectl(&lab, dir.path(), &["get", "endpointslices"], None).await else {
        return lab.shutdown().await;
    };
    assert!(
        listed.contains("ADDRESSTYPE") && listed.contains("IPv4"),
        "{listed}"
    );
    let described = kubectl(&lab, dir.path(), &["describe", "svc", "web"], None)
        .await
        .unwrap();
    let endpoints = described
        .lines()
        .find(|l| l.starts_with("Endpoints:"))
        .unwrap_or_default();
    assert!(endpoints.contains("127.0.0.1:"), "{described}");
    lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_namespace_removes_its_workloads_then_the_namespace() {
    let (lab, client, _dir) = start_lab().await;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": "shop"}})).unwrap();
    namespaces
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), "shop");
    let services: Api<Service> = Api::namespaced(client.clone(), "shop");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "shop");
    deploys
        .create(&PostParams::default(), &deployment("web", 2, json!({})))
        .await
        .unwrap();
    let svc: Service = serde_json::from_value(json!({"metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}}))
    .unwrap();
    services.create(&PostParams::default(), &svc).await.unwrap();
    eventually(Duration::from_secs(30), "two running pods", || async {
        (pods_of(&pods, "web")
            .await
            .iter()
            .filter(|p| crate::support::pod_ready(p))
            .count()
            == 2)
            .then_some(())
    })
    .await;

    namespaces
        .delete("shop", &DeleteParams::default())
        .await
        .unwrap();
    let live = namespaces.get("shop").await.unwrap();
    assert_eq!(live.status.unwrap().phase.as_deref(), Some("Terminating"));
    let late: Service = serde_json::from_value(json!({"metadata": {"name": "late"},
        "spec": {"ports": [{"port": 80}]}}))
    .unwrap();
    match services.create(&PostParams::default(), &late).await {
        Err(kube::Error::Api(e)) => assert!(
            e.code == 403 && e.message.contains("being terminated") || e.code == 404, // the namespace went already
            "{e:?}"
        ),
        other => panic!("a create in a Terminating namespace: {other:?}"),
    }
    eventually(Duration::from_secs(30), "the namespace gone", || async {
        namespaces
            .get_opt("shop")
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
    let all_pods: Api<Pod> = Api::all(client.clone());
    let left = all_pods.list(&ListParams::default()).await.unwrap().items;
    assert!(
        left.iter()
            .all(|p| p.metadata.namespace.as_deref() != Some("shop"))
    );
    let err = namespaces
        .delete("kube-system", &DeleteParams::default())
        .await
        .unwrap_err();
    assert!(matches!(err, kube::Error::Api(e) if e.code == 403 || e.code == 404));
    lab.shutdown().await;
}

/// A ReplicaSet-like owner (a Deployment, on an API-only lab) and two pods it owns.
async fn owner_and_pods(client: &kube::Client, name: &str) {
    let deploys: Api<Deployment> = Api::default_namespaced(client.clone());
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    let d = deploys
        .create(&PostParams::default(), &deployment(name, 2, json!({})))
        .await
        .unwrap();
    for i in 0..2 {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": format!("{name}-{i}"), "labels": {"app": name},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": name,
                    "uid": d.metadata.uid, "controller": true, "blockOwnerDeletion": true}]},
            "spec": {"containers": [{"name": "web", "image": "resil-demo:1"}]}
        }))
        .unwrap();
        pods.create(&PostParams::default(), &pod).await.unwrap();
    }
}

#[tokio::test]
async fn kubectl_cascade_background_foreground_and_orphan() {
    let (lab, client, dir) = start_api_only_lab().await;
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    for name in ["bg", "fg", "keep"] {
        owner_and_pods(&client, name).await;
    }
    for (name, cascade) in [
        ("bg", "background"),
        ("fg", "foreground"),
        ("keep", "orphan"),
    ] {
        let flag = format!("--cascade={cascade}");
        let args = ["delete", "deployment", name, flag.as_str(), "--timeout=20s"];
        if kubectl(&lab, dir.path(), &args, None).await.is_none() {
            return lab.shutdown().await;
        }
    }
    for gone in ["bg", "fg"] {
        assert!(
            pods_of(&pods, gone).await.is_empty(),
            "{gone}: pods deleted"
        );
    }
    let kept = pods_of(&pods, "keep").await;
    assert_eq!(kept.len(), 2, "orphaned pods stay");
    assert!(kept.iter().all(|p| {
        p.metadata
            .owner_references
            .clone()
            .unwrap_or_default()
            .is_empty()
    }));
    lab.shutdown().await;
}

#[tokio::test]
async fn a_new_hpa_has_desired_replicas_in_its_status() {
    let (lab, client, _dir) = start_api_only_lab().await;
    let hpas: Api<HorizontalPodAutoscaler> = Api::default_namespaced(client.clone());
    let hpa: HorizontalPodAutoscaler = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                 "maxReplicas": 5}
    }))
    .unwrap();
    // k8s-openapi requires desiredReplicas: a status without it fails to parse here.
    let created = hpas.create(&PostParams::default(), &hpa).await.unwrap();
    assert_eq!(created.status.unwrap().desired_replicas, 0);
    let read = hpas.get("web").await.unwrap();
    assert_eq!(read.status.unwrap().desired_replicas, 0);
    lab.shutdown().await;
}

/// Measures deleting 1000 of 5000 pods through the API by deleting their owner:
/// `cargo nextest run -E 'test(/thousand_of_five/)' --run-ignored only --no-capture`.
#[tokio::test]
#[ignore = "a measurement"]
async fn api_deletes_a_thousand_of_five_thousand_pods_by_their_owner() {
    let (lab, client, _dir) = start_api_only_lab().await;
    let deploys: Api<Deployment> = Api::default_namespaced(client.clone());
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    for o in 0..5 {
        let name = format!("o{o}");
        let d = deploys
            .create(&PostParams::default(), &deployment(&name, 1, json!({})))
            .await
            .unwrap();
        for i in 0..1000 {
            let pod: Pod = serde_json::from_value(json!({
                "metadata": {"name": format!("{name}-{i}"), "ownerReferences": [{"apiVersion":
                    "apps/v1", "kind": "Deployment", "name": name, "uid": d.metadata.uid}]},
                "spec": {"containers": [{"name": "web", "image": "resil-demo:1"}]}
            }))
            .unwrap();
            pods.create(&PostParams::default(), &pod).await.unwrap();
        }
    }
    let started = std::time::Instant::now();
    deploys
        .delete("o2", &DeleteParams::default())
        .await
        .unwrap();
    let took = started.elapsed();
    assert_eq!(
        pods.list(&ListParams::default()).await.unwrap().items.len(),
        4000
    );
    println!("API: deleted 1000 of 5000 pods by their owner in {took:?}");
    lab.shutdown().await;
}
