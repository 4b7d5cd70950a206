//! The lab runtime end to end: an in-process lab whose kubelet runs real `resil demo-app`
//! processes, driven only through the lab's API with kube-rs, as a user would. Covers the
//! Deployment controller (ready pods, replacement, scaling to zero and back), the
//! Endpoints controller and NodePort proxy (identity headers through the node port, an
//! unready pod leaving the Endpoints), the HPA under `/work` load, and image pull failure.
//! Every wait is bounded; load is loopback only and lasts a few seconds.

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{Endpoints, Pod, Service};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use resil_lab::{Lab, LabConfig};
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::support::{client_for, event_reasons, eventually, free_node_port};

/// A lab with the demo program and a 1 s HPA sync period.
async fn lab() -> (Lab, kube::Client, TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = LabConfig::new(dir.path());
    config.pod_program = std::path::PathBuf::from(env!("CARGO_BIN_EXE_resil"));
    config.hpa_sync_period = Duration::from_secs(1);
    let lab = Lab::start(config).await.expect("lab starts");
    let client = client_for(&lab).await;
    (lab, client, dir)
}

fn deployment(name: &str, replicas: i32, extra_container: Value) -> Deployment {
    let mut container = json!({
        "name": "web", "image": "resil-demo:1",
        "ports": [{"name": "http", "containerPort": 8080}],
        "env": [{"name": "COLOR", "value": "blue"}],
        "readinessProbe": {"httpGet": {"path": "/readyz", "port": 8080},
                           "periodSeconds": 1, "failureThreshold": 1},
    });
    if let (Some(c), Some(extra)) = (container.as_object_mut(), extra_container.as_object()) {
        c.extend(extra.clone());
    }
    serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                         "spec": {"terminationGracePeriodSeconds": 2, "containers": [container]}},
        },
    }))
    .unwrap()
}

fn node_port_service(name: &str, node_port: u16) -> Service {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name},
        "spec": {"type": "NodePort", "selector": {"app": name},
                 "ports": [{"name": "http", "port": 80, "targetPort": "http", "nodePort": node_port}]},
    }))
    .unwrap()
}

async fn available(deploys: &Api<Deployment>, name: &str) -> i32 {
    let d = deploys.get(name).await.unwrap();
    d.status.and_then(|s| s.available_replicas).unwrap_or(0)
}

async fn ready_pods(pods: &Api<Pod>, app: &str) -> Vec<Pod> {
    let list = pods
        .list(&kube::api::ListParams::default().labels(&format!("app={app}")))
        .await
        .unwrap();
    list.items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter(|p| {
            p.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
        })
        .collect()
}

/// (ready, not ready) pod names in the Endpoints.
async fn endpoint_names(eps: &Api<Endpoints>, name: &str) -> (Vec<String>, Vec<String>) {
    let Ok(ep) = eps.get(name).await else {
        return (vec![], vec![]);
    };
    let names = |list: &Option<Vec<k8s_openapi::api::core::v1::EndpointAddress>>| {
        list.iter()
            .flatten()
            .filter_map(|a| a.target_ref.as_ref().and_then(|r| r.name.clone()))
            .collect::<Vec<_>>()
    };
    let mut ready = Vec::new();
    let mut not_ready = Vec::new();
    for s in ep.subsets.iter().flatten() {
        ready.extend(names(&s.addresses));
        not_ready.extend(names(&s.not_ready_addresses));
    }
    ready.sort();
    not_ready.sort();
    (ready, not_ready)
}

fn pod_port(pod: &Pod) -> u16 {
    pod.metadata.annotations.as_ref().unwrap()["resil.dev/port"]
        .parse()
        .unwrap()
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployment_of_two_becomes_ready_and_serves_through_its_node_port() {
    let (lab, client, _dir) = lab().await;
    let deploys: Api<Deployment> = Api::default_namespaced(client.clone());
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    let eps: Api<Endpoints> = Api::default_namespaced(client.clone());
    let services: Api<Service> = Api::default_namespaced(client.clone());
    let port = free_node_port();
    deploys
        .create(&PostParams::default(), &deployment("web", 2, json!({})))
        .await
        .unwrap();
    services
        .create(&PostParams::default(), &node_port_service("web", port))
        .await
        .unwrap();

    eventually(Duration::from_secs(20), "2 available replicas", || async {
        (available(&deploys, "web").await == 2).then_some(())
    })
    .await;
    let d = deploys.get("web").await.unwrap();
    let status = d.status.unwrap();
    assert_eq!(status.ready_replicas, Some(2));
    assert_eq!(status.updated_replicas, Some(2));
    let progressing = status
        .conditions
        .unwrap()
        .into_iter()
        .find(|c| c.type_.as_deref() == Some("Progressing"))
        .unwrap();
    assert_eq!(
        progressing.reason.as_deref(),
        Some("NewReplicaSetAvailable")
    );

    let mut names: Vec<String> = ready_pods(&pods, "web")
        .await
        .iter()
        .map(|p| p.metadata.name.clone().unwrap())
        .collect();
    names.sort();
    assert_eq!(names.len(), 2);
    let (ready, _) = eventually(
        Duration::from_secs(5),
        "Endpoints with both pods",
        || async {
            let e = endpoint_names(&eps, "web").await;
            (e.0 == names).then_some(e)
        },
    )
    .await;
    assert_eq!(ready, names);

    let mut served = std::collections::BTreeSet::new();
    for _ in 0..6 {
        let res = http()
            .get(format!("http://127.0.0.1:{port}/"))
            .send()
            .await
            .expect("node port answers");
        assert!(res.status().is_success());
        assert_eq!(res.headers()["x-resil-color"], "blue");
        served.insert(res.headers()["x-resil-pod"].to_str().unwrap().to_string());
    }
    assert_eq!(
        served.into_iter().collect::<Vec<_>>(),
        names,
        "round-robin reaches both pods"
    );
    lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_pod_is_replaced_and_scaling_to_zero_and_back_works() {
    let (lab, client, _dir) = lab().await;
    let deploys: Api<Deployment> = Api::default_namespaced(client.clone());
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    deploys
        .create(&PostParams::default(), &deployment("web", 2, json!({})))
        .await
        .unwrap();
    eventually(Duration::from_secs(20), "2 available", || async {
        (available(&deploys, "web").await == 2).then_some(())
    })
    .await;

    let victim = ready_pods(&pods, "web").await[0]
        .metadata
        .name
        .clone()
        .unwrap();
    pods.delete(&victim, &DeleteParams::default())
        .await
        .unwrap();
    eventually(
        Duration::from_secs(20),
        "the deleted pod gone and replaced",
        || async {
            let ready = ready_pods(&pods, "web").await;
            let gone = pods.get_opt(&victim).await.unwrap().is_none();
            (gone
                && ready.len() == 2
                && ready
                    .iter()
                    .all(|p| p.metadata.name.as_deref() != Some(&victim)))
            .then_some(())
        },
    )
    .await;

    let scale = |n: i32| Patch::Merge(json!({"spec": {"replicas": n}}));
    deploys
        .patch_scale("web", &PatchParams::default(), &scale(0))
        .await
        .unwrap();
    eventually(Duration::from_secs(20), "no pods left", || async {
        let all = pods.list(&Default::default()).await.unwrap().items;
        all.is_empty().then_some(())
    })
    .await;
    let s = deploys.get("web").await.unwrap().status.unwrap();
    assert_eq!((s.replicas, s.available_replicas), (Some(0), Some(0)));

    deploys
        .patch_scale("web", &PatchParams::default(), &scale(1))
        .await
        .unwrap();
    eventually(Duration::from_secs(20), "1 available again", || async {
        (available(&deploys, "web").await == 1).then_some(())
    })
    .await;
    lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unready_pod_leaves_the_endpoints_and_the_proxy_stops_sending_to_it() {
    let (lab, client, _dir) = lab().await;
    let deploys: Api<Deployment> = Api::default_namespaced(client.clone());
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    let eps: Api<Endpoints> = Api::default_namespaced(client.clone());
    let services: Api<Service> = Api::default_namespaced(client.clone());
    let port = free_node_port();
    deploys
        .create(&PostParams::default(), &deployment("web", 2, json!({})))
        .await
        .unwrap();
    services
        .create(&PostParams::default(), &node_port_service("web", port))
        .await
        .unwrap();
    eventually(Duration::from_secs(20), "2 available", || async {
        (available(&deploys, "web").await == 2).then_some(())
    })
    .await;

    let ready = ready_pods(&pods, "web").await;
    let (sick, healthy) = (&ready[0], &ready[1]);
    let sick_name = sick.metadata.name.clone().unwrap();
    let res = http()
        .put(format!("http://127.0.0.1:{}/admin/faults", pod_port(sick)))
        .json(&json!({"unready": true}))
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success(), "{:?}", res.text().await);

    let (ready_now, not_ready) = eventually(
        Duration::from_secs(10),
        "the unready pod out of the Endpoints",
        || async {
            let e = endpoint_names(&eps, "web").await;
            (e.1 == vec![sick_name.clone()]).then_some(e)
        },
    )
    .await;
    assert_eq!(ready_now, vec![healthy.metadata.name.clone().unwrap()]);
    assert_eq!(not_ready, vec![sick_name.clone()]);
    for _ in 0..4 {
        let res = http()
            .get(format!("http://127.0.0.1:{port}/"))
            .send()
            .await
            .unwrap();
        assert_ne!(res.headers()["x-resil-pod"].to_str().unwrap(), sick_name);
    }
    lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hpa_scales_the_deployment_up_under_work_load_and_back_down_after() {
    let (lab, client, _dir) = lab().await;
    let deploys: Api<Deployment> = Api::default_namespaced(client.clone());
    let services: Api<Service> = Api::default_namespaced(client.clone());
    let hpas: Api<HorizontalPodAutoscaler> = Api::default_namespaced(client.clone());
    let port = free_node_port();
    let requests = json!({"resources": {"requests": {"cpu": "100m"}}});
    deploys
        .create(&PostParams::default(), &deployment("web", 1, requests))
        .await
        .unwrap();
    services
        .create(&PostParams::default(), &node_port_service("web", port))
        .await
        .unwrap();
    let hpa: HorizontalPodAutoscaler = serde_json::from_value(json!({
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "web"},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
            "minReplicas": 1, "maxReplicas": 3,
            "metrics": [{"type": "Resource", "resource": {"name": "cpu",
                         "target": {"type": "Utilization", "averageUtilization": 50}}}],
            "behavior": {"scaleDown": {"stabilizationWindowSeconds": 0}},
        },
    }))
    .unwrap();
    hpas.create(&PostParams::default(), &hpa).await.unwrap();
    eventually(Duration::from_secs(20), "1 available", || async {
        (available(&deploys, "web").await == 1).then_some(())
    })
    .await;
    // The pod's first sample must come after it turned ready to count (CPU initialization).
    tokio::time::sleep(Duration::from_millis(1500)).await;

    // Load: 4 concurrent loops of 100 ms CPU burns through the node port, at most 10 s.
    let stop = tokio_util::sync::CancellationToken::new();
    let mut workers = Vec::new();
    for _ in 0..4 {
        let stop = stop.clone();
        workers.push(tokio::spawn(async move {
            let client = http();
            while !stop.is_cancelled() {
                let _ = client
                    .get(format!("http://127.0.0.1:{port}/work?ms=100"))
                    .send()
                    .await;
            }
        }));
    }
    let scaled = eventually(
        Duration::from_secs(10),
        "the HPA to raise replicas",
        || async {
            let r = deploys.get("web").await.unwrap().spec.replicas.unwrap_or(1);
            (r > 1).then_some(r)
        },
    )
    .await;
    stop.cancel();
    for w in workers {
        let _ = tokio::time::timeout(Duration::from_secs(6), w).await;
    }
    assert!(scaled <= 3);
    let h = hpas.get("web").await.unwrap();
    let status = h.status.unwrap();
    assert!(status.desired_replicas > 1, "{status:?}");
    assert!(status.current_metrics.is_some_and(|m| !m.is_empty()));
    let events: Api<k8s_openapi::api::core::v1::Event> = Api::default_namespaced(client.clone());
    let reasons = event_reasons(&events).await;
    for r in [
        "SuccessfulRescale",
        "ScalingReplicaSet",
        "Scheduled",
        "Started",
    ] {
        assert!(
            reasons.iter().any(|x| x == r),
            "no {r} event in {reasons:?}"
        );
    }
    eventually(
        Duration::from_secs(15),
        "the HPA to scale back to 1 after the load",
        || async {
            let r = deploys.get("web").await.unwrap().spec.replicas.unwrap_or(1);
            (r == 1).then_some(())
        },
    )
    .await;
    lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_with_a_non_demo_image_reports_image_pull_back_off() {
    let (lab, client, _dir) = lab().await;
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    let pod: Pod = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "nginx"},
        "spec": {"containers": [{"name": "nginx", "image": "nginx:1.27"}]},
    }))
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
    let waiting_reason = |p: &Pod| {
        p.status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref())
            .and_then(|c| c[0].state.as_ref())
            .and_then(|s| s.waiting.as_ref())
            .and_then(|w| w.reason.clone())
    };
    let seen = std::sync::Arc::new(std::sync::Mutex::new(std::collections::BTreeSet::new()));
    eventually(Duration::from_secs(10), "ImagePullBackOff", || {
        let pods = pods.clone();
        let seen = seen.clone();
        async move {
            let p = pods.get("nginx").await.unwrap();
            let reason = waiting_reason(&p);
            seen.lock().unwrap().extend(reason.clone());
            assert_eq!(p.status.as_ref().unwrap().phase.as_deref(), Some("Pending"));
            (reason.as_deref() == Some("ImagePullBackOff")).then_some(())
        }
    })
    .await;
    let seen = seen.lock().unwrap().clone();
    assert!(seen.contains("ErrImagePull"), "{seen:?}");
    lab.shutdown().await;
}

/// The pod's process id, from `containerStatuses[0].containerID` (`resil://PID`).
fn pod_pid(pod: &Pod) -> i32 {
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
    id.trim_start_matches("resil://").parse().unwrap()
}

fn restart_count(pod: &Pod) -> i32 {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .map_or(0, |c| c[0].restart_count)
}

/// Whether the store's Endpoints `web` list `pod` as ready.
fn listed_ready(lab: &Lab, pod: &str) -> bool {
    let Some(ep) = lab.store().get("endpoints", "default", "web") else {
        return false;
    };
    ep["subsets"].as_array().into_iter().flatten().any(|s| {
        s["addresses"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|a| a["targetRef"]["name"] == pod)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_pod_process_leaves_the_endpoints_at_once_and_is_restarted() {
    let (lab, client, _dir) = lab().await;
    let deploys: Api<Deployment> = Api::default_namespaced(client.clone());
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    let services: Api<Service> = Api::default_namespaced(client.clone());
    deploys
        .create(&PostParams::default(), &deployment("web", 1, json!({})))
        .await
        .unwrap();
    services
        .create(
            &PostParams::default(),
            &node_port_service("web", free_node_port()),
        )
        .await
        .unwrap();
    eventually(Duration::from_secs(20), "1 available", || async {
        (available(&deploys, "web").await == 1).then_some(())
    })
    .await;
    let pod = ready_pods(&pods, "web").await.remove(0);
    let name = pod.metadata.name.clone().unwrap();
    eventually(
        Duration::from_secs(5),
        "the pod in the Endpoints",
        || async { listed_ready(&lab, &name).then_some(()) },
    )
    .await;

    let killed = std::time::Instant::now();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pod_pid(&pod)),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let deadline = killed + Duration::from_secs(2);
    while listed_ready(&lab, &name) {
        assert!(
            std::time::Instant::now() < deadline,
            "still listed 2 s after its process died"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let gone_after = killed.elapsed();
    assert!(
        gone_after < Duration::from_millis(500),
        "Endpoints took {gone_after:?}"
    );

    let restarted = eventually(
        Duration::from_secs(20),
        "the container restarted and ready again",
        || async {
            let p = ready_pods(&pods, "web")
                .await
                .into_iter()
                .find(|p| p.metadata.name.as_deref() == Some(&name))?;
            (restart_count(&p) == 1).then_some(p)
        },
    )
    .await;
    let last = restarted.status.unwrap().container_statuses.unwrap()[0]
        .last_state
        .clone()
        .unwrap();
    assert_eq!(last.terminated.unwrap().exit_code, 137);
    lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_update_replaces_every_pod_without_a_failed_request_through_the_proxy() {
    let (lab, client, _dir) = lab().await;
    let deploys: Api<Deployment> = Api::default_namespaced(client.clone());
    let services: Api<Service> = Api::default_namespaced(client.clone());
    let port = free_node_port();
    deploys
        .create(&PostParams::default(), &deployment("web", 2, json!({})))
        .await
        .unwrap();
    services
        .create(&PostParams::default(), &node_port_service("web", port))
        .await
        .unwrap();
    eventually(Duration::from_secs(20), "2 available", || async {
        (available(&deploys, "web").await == 2).then_some(())
    })
    .await;

    // One request at a time, a new connection each (no pooling), for the whole rollout.
    let stop = tokio_util::sync::CancellationToken::new();
    let load = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let client = reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .pool_max_idle_per_host(0)
                .build()
                .unwrap();
            let (mut ok, mut failed, mut green) = (0, Vec::new(), 0);
            while !stop.is_cancelled() {
                match client.get(format!("http://127.0.0.1:{port}/")).send().await {
                    Ok(r) if r.status().is_success() => {
                        ok += 1;
                        green += i32::from(r.headers()["x-resil-color"] == "green");
                    }
                    Ok(r) => failed.push(r.status().to_string()),
                    Err(e) => failed.push(e.to_string()),
                }
            }
            (ok, failed, green)
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let green = Patch::Strategic(json!({"spec": {"template": {"spec": {"containers": [
        {"name": "web", "env": [{"name": "COLOR", "value": "green"}]}]}}}}));
    deploys
        .patch("web", &PatchParams::default(), &green)
        .await
        .unwrap();
    eventually(
        Duration::from_secs(30),
        "the rollout to complete",
        || async {
            let d = deploys.get("web").await.unwrap();
            let s = d.status?;
            let done = s.observed_generation == d.metadata.generation
                && s.updated_replicas == Some(2)
                && s.replicas == Some(2)
                && s.available_replicas == Some(2);
            done.then_some(())
        },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.cancel();
    let (ok, failed, green) = tokio::time::timeout(Duration::from_secs(10), load)
        .await
        .unwrap()
        .unwrap();
    assert!(
        failed.is_empty(),
        "{} failed of {}: {failed:?}",
        failed.len(),
        ok + failed.len()
    );
    assert!(ok > 10 && green > 0, "ok {ok}, green {green}");
    let revision = deploys
        .get("web")
        .await
        .unwrap()
        .metadata
        .annotations
        .unwrap()["deployment.kubernetes.io/revision"]
        .clone();
    assert_eq!(revision, "2");
    lab.shutdown().await;
}

/// Benchmark (run with `--ignored`): how long after a pod's process dies its address
/// leaves the Endpoints, median and max over 50 kills (one kill per pod; each victim is
/// then force-deleted and replaced, so no kill meets a crash-loop back-off).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark; prints figures"]
async fn bench_endpoints_follow_a_killed_pod_process() {
    let (lab, client, _dir) = lab().await;
    let deploys: Api<Deployment> = Api::default_namespaced(client.clone());
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    let services: Api<Service> = Api::default_namespaced(client.clone());
    deploys
        .create(&PostParams::default(), &deployment("web", 3, json!({})))
        .await
        .unwrap();
    services
        .create(
            &PostParams::default(),
            &node_port_service("web", free_node_port()),
        )
        .await
        .unwrap();
    let mut samples = Vec::new();
    for _ in 0..50 {
        let pod = eventually(Duration::from_secs(20), "3 ready pods listed", || async {
            let ready = ready_pods(&pods, "web").await;
            let listed = ready
                .iter()
                .all(|p| listed_ready(&lab, p.metadata.name.as_deref().unwrap()));
            (ready.len() == 3 && listed)
                .then(|| ready.into_iter().find(|p| restart_count(p) == 0))
                .flatten()
        })
        .await;
        let name = pod.metadata.name.clone().unwrap();
        let killed = std::time::Instant::now();
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pod_pid(&pod)),
            nix::sys::signal::Signal::SIGKILL,
        )
        .unwrap();
        while listed_ready(&lab, &name) {
            assert!(killed.elapsed() < Duration::from_secs(2));
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        samples.push(killed.elapsed());
        pods.delete(
            &name,
            &DeleteParams {
                grace_period_seconds: Some(0),
                ..DeleteParams::default()
            },
        )
        .await
        .unwrap();
    }
    samples.sort();
    println!(
        "endpoints after kill: median {:?}, p90 {:?}, max {:?} over {} kills",
        samples[samples.len() / 2],
        samples[samples.len() * 9 / 10],
        samples[samples.len() - 1],
        samples.len()
    );
    lab.shutdown().await;
}

/// Runs kubectl against the lab with a temporary kubeconfig, HOME and cache; `None` when
/// kubectl is not installed.
async fn kubectl(lab: &Lab, dir: &std::path::Path, args: &[&str]) -> Option<(bool, String)> {
    let on_path = std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join("kubectl").is_file()));
    if !on_path {
        eprintln!("note: kubectl is not on PATH; skipping");
        return None;
    }
    let kubeconfig = dir.join("kubectl-config");
    std::fs::write(&kubeconfig, lab.kubeconfig_yaml()).unwrap();
    let out = tokio::time::timeout(
        Duration::from_secs(40),
        tokio::process::Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .arg("--cache-dir")
            .arg(dir.join("kubectl-cache"))
            .args(args)
            .env("HOME", dir)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("kubectl finishes")
    .expect("kubectl runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Some((out.status.success(), text))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_rollout_status_completes_and_top_pods_shows_usage() {
    let (lab, client, dir) = lab().await;
    let deploys: Api<Deployment> = Api::default_namespaced(client.clone());
    deploys
        .create(&PostParams::default(), &deployment("web", 2, json!({})))
        .await
        .unwrap();
    let Some((ok, out)) = kubectl(
        &lab,
        dir.path(),
        &["rollout", "status", "deployment/web", "--timeout=30s"],
    )
    .await
    else {
        return;
    };
    assert!(ok, "{out}");
    assert!(out.contains("successfully rolled out"), "{out}");
    // Metrics appear after the first two samples (1 s apart).
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    let names: Vec<String> = ready_pods(&pods, "web")
        .await
        .into_iter()
        .filter_map(|p| p.metadata.name)
        .collect();
    eventually(
        Duration::from_secs(10),
        "PodMetrics for both pods",
        || async { (lab.store().pod_metrics(Some("default")).len() == 2).then_some(()) },
    )
    .await;
    let (ok, out) = kubectl(&lab, dir.path(), &["top", "pods"]).await.unwrap();
    assert!(ok, "{out}");
    for n in &names {
        assert!(out.contains(n.as_str()), "{out}");
    }
    assert!(out.contains("CPU(cores)") && out.contains("Mi"), "{out}");
    lab.shutdown().await;
}

/// Benchmark (run with `--ignored`): a Deployment of 200 demo pods to all available,
/// with the proportional set size (shared pages split between sharers) of the pod
/// processes at that point.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark; prints figures"]
async fn bench_two_hundred_pods_become_available() {
    // One node with room for all of them (the kubelet's default --max-pods is 110).
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = LabConfig::new(dir.path());
    config.pod_program = std::path::PathBuf::from(env!("CARGO_BIN_EXE_resil"));
    config.max_pods = 250;
    let lab = Lab::start(config).await.expect("lab starts");
    let client = client_for(&lab).await;
    let deploys: Api<Deployment> = Api::default_namespaced(client.clone());
    let started = std::time::Instant::now();
    deploys
        .create(&PostParams::default(), &deployment("web", 200, json!({})))
        .await
        .unwrap();
    eventually(Duration::from_secs(60), "200 available", || async {
        (available(&deploys, "web").await == 200).then_some(())
    })
    .await;
    let took = started.elapsed();
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    let pss_kib: u64 = ready_pods(&pods, "web")
        .await
        .iter()
        .filter_map(|p| std::fs::read_to_string(format!("/proc/{}/smaps_rollup", pod_pid(p))).ok())
        .filter_map(|s| {
            let line = s.lines().find(|l| l.starts_with("Pss:"))?.to_string();
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .sum();
    println!(
        "200 pods available in {took:?}; pod processes PSS {} MiB",
        pss_kib / 1024
    );
    lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_selector_switch_takes_effect_for_the_next_connection() {
    let (lab, client, _dir) = lab().await;
    let deploys: Api<Deployment> = Api::default_namespaced(client.clone());
    let services: Api<Service> = Api::default_namespaced(client.clone());
    let port = free_node_port();
    for colour in ["blue", "green"] {
        let env = json!({"env": [{"name": "COLOR", "value": colour}]});
        deploys
            .create(&PostParams::default(), &deployment(colour, 1, env))
            .await
            .unwrap();
    }
    // The Service is named "web" and selects app=blue first.
    let mut svc = node_port_service("web", port);
    svc.spec.as_mut().unwrap().selector = Some([("app".to_string(), "blue".to_string())].into());
    services.create(&PostParams::default(), &svc).await.unwrap();
    for colour in ["blue", "green"] {
        eventually(Duration::from_secs(20), "1 available", || async {
            (available(&deploys, colour).await == 1).then_some(())
        })
        .await;
    }
    let colour_served = || async {
        let r = http()
            .get(format!("http://127.0.0.1:{port}/"))
            .send()
            .await
            .ok()?;
        Some(r.headers()["x-resil-color"].to_str().unwrap().to_string())
    };
    eventually(Duration::from_secs(5), "blue served", || async {
        (colour_served().await? == "blue").then_some(())
    })
    .await;

    let switch = Patch::Merge(json!({"spec": {"selector": {"app": "green"}}}));
    services
        .patch("web", &PatchParams::default(), &switch)
        .await
        .unwrap();
    let switched = std::time::Instant::now();
    eventually(Duration::from_secs(5), "green served", || async {
        (colour_served().await? == "green").then_some(())
    })
    .await;
    assert!(
        switched.elapsed() < Duration::from_millis(500),
        "took {:?}",
        switched.elapsed()
    );
    for _ in 0..5 {
        assert_eq!(colour_served().await.as_deref(), Some("green"));
    }
    lab.shutdown().await;
}
