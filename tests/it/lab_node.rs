//! The lab's node under hostile or careless input, through an in-process lab whose kubelet
//! runs real `resil demo-app` processes: container names that climb out of the state
//! directory, more pods than the node holds, a node port someone else holds, loader
//! variables in a pod's env. Every wait is bounded; traffic stays on loopback.

use std::path::Path;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Event, Pod, Service};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use resil_lab::{Lab, LabConfig};
use serde_json::{Value, json};

use crate::support::{client_for, eventually, free_node_port};

/// A lab in `state` running the demo program, with at most `max_pods` pods.
async fn lab_in(state: &Path, max_pods: usize) -> (Lab, kube::Client) {
    let mut config = LabConfig::new(state);
    config.pod_program = std::path::PathBuf::from(env!("CARGO_BIN_EXE_resil"));
    config.max_pods = max_pods;
    let lab = Lab::start(config).await.expect("lab starts");
    let client = client_for(&lab).await;
    (lab, client)
}

fn deployment(name: &str, replicas: i32, env: Value) -> Deployment {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                         "spec": {"terminationGracePeriodSeconds": 1, "containers": [{
                             "name": "web", "image": "resil-demo:1", "env": env,
                             "readinessProbe": {"httpGet": {"path": "/readyz", "port": 8080},
                                                "periodSeconds": 1},
                         }]}},
        },
    }))
    .unwrap()
}

async fn scale(deploys: &Api<Deployment>, name: &str, replicas: i32) {
    deploys
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": replicas}})),
        )
        .await
        .unwrap();
}

fn is_unschedulable(pod: &Pod) -> bool {
    let status = pod.status.as_ref();
    status.and_then(|s| s.phase.as_deref()) == Some("Pending")
        && pod.spec.as_ref().is_some_and(|s| s.node_name.is_none())
        && status.and_then(|s| s.conditions.as_ref()).is_some_and(|c| {
            c.iter().any(|c| {
                c.type_ == "PodScheduled"
                    && c.status == "False"
                    && c.reason.as_deref() == Some("Unschedulable")
            })
        })
}

/// The pod processes the kubelet has running (its `pods.json`).
fn pod_processes(state: &Path) -> usize {
    let text = std::fs::read_to_string(state.join("pods.json")).unwrap_or_default();
    serde_json::from_str::<Value>(&text)
        .ok()
        .and_then(|v| v["pods"].as_array().map(Vec::len))
        .unwrap_or(0)
}

async fn events_with_reason(events: &Api<Event>, reason: &str) -> Vec<Event> {
    events
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some(reason))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_named_to_climb_out_of_the_state_dir_writes_nothing_outside_it() {
    let root = tempfile::tempdir().unwrap();
    // Deep enough that five `..` from the pod's log directory stay inside `root`.
    let state = root.path().join("l1/l2/l3/l4/state");
    std::fs::create_dir_all(&state).unwrap();
    let ancestors: Vec<std::path::PathBuf> = state
        .ancestors()
        .skip(1)
        .take_while(|d| d.starts_with(root.path()))
        .map(Path::to_path_buf)
        .collect();
    // A file a rotation would rename to `.previous.log` if the name reached the disk.
    for dir in &ancestors {
        std::fs::write(dir.join("ESCAPED.log"), "not the lab's\n").unwrap();
    }
    let (lab, client) = lab_in(&state, 110).await;
    // Straight into the store: the kubelet must refuse it whatever the API validates.
    let pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "evil", "namespace": "default"},
        "spec": {"containers": [{"name": "../../../../../ESCAPED", "image": "resil-demo:1"}]},
    });
    let pods_kind = resil_lab::store::kinds::stored("pods").unwrap();
    lab.store().create(pods_kind, "default", pod).unwrap();

    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    let status = eventually(Duration::from_secs(10), "the pod to fail", || async {
        let status = pods.get("evil").await.ok()?.status?;
        (status.phase.as_deref() == Some("Failed")).then_some(status)
    })
    .await;
    assert_eq!(status.reason.as_deref(), Some("InvalidContainerName"));
    let message = status.message.unwrap_or_default();
    assert!(message.contains("DNS-1123"), "{message}");
    assert!(message.contains("../../../../../ESCAPED"), "{message}");
    let events: Api<Event> = Api::default_namespaced(client.clone());
    assert!(!events_with_reason(&events, "Failed").await.is_empty());
    // Give a wrongly started instance time to write and rotate.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(pod_processes(&state), 0, "nothing may run for it");
    for dir in &ancestors {
        assert_eq!(
            std::fs::read_to_string(dir.join("ESCAPED.log")).unwrap(),
            "not the lab's\n",
            "{} was touched",
            dir.display()
        );
        assert!(
            !dir.join("ESCAPED.previous.log").exists(),
            "{}",
            dir.display()
        );
    }
    lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_beyond_max_pods_stay_pending_unschedulable_and_start_when_room_frees() {
    let dir = tempfile::tempdir().unwrap();
    let (lab, client) = lab_in(dir.path(), 3).await;
    let deploys: Api<Deployment> = Api::default_namespaced(client.clone());
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    let events: Api<Event> = Api::default_namespaced(client.clone());
    deploys
        .create(&PostParams::default(), &deployment("first", 2, json!([])))
        .await
        .unwrap();
    eventually(Duration::from_secs(20), "2 ready pods of first", || async {
        (crate::support::live_pods(&pods, "first")
            .await
            .iter()
            .filter(|p| crate::support::pod_ready(p))
            .count()
            == 2)
            .then_some(())
    })
    .await;
    // Far more than the node holds: only one more may run.
    deploys
        .create(&PostParams::default(), &deployment("second", 40, json!([])))
        .await
        .unwrap();
    eventually(
        Duration::from_secs(20),
        "1 ready, 39 unschedulable",
        || async {
            let second = crate::support::live_pods(&pods, "second").await;
            let ready = second
                .iter()
                .filter(|p| crate::support::pod_ready(p))
                .count();
            let waiting = second.iter().filter(|p| is_unschedulable(p)).count();
            (second.len() == 40 && ready == 1 && waiting == 39).then_some(())
        },
    )
    .await;
    assert_eq!(
        pod_processes(dir.path()),
        3,
        "the node runs three processes"
    );
    let failed = events_with_reason(&events, "FailedScheduling").await;
    assert!(!failed.is_empty());
    for e in &failed {
        assert_eq!(e.type_.as_deref(), Some("Warning"));
        let message = e.message.as_deref().unwrap_or_default();
        assert!(
            message.starts_with("0/1 nodes are available: 1 Too many pods."),
            "{message}"
        );
    }
    // A pending pod's message says why, as `kubectl describe` shows it.
    let pending = crate::support::live_pods(&pods, "second").await;
    let pending = pending.iter().find(|p| is_unschedulable(p)).unwrap();
    let condition = pending
        .status
        .as_ref()
        .unwrap()
        .conditions
        .as_ref()
        .unwrap();
    assert!(
        condition[0]
            .message
            .as_deref()
            .unwrap()
            .contains("Too many pods")
    );

    // Room frees: the waiting pods start, still never more than three.
    scale(&deploys, "second", 3).await;
    scale(&deploys, "first", 0).await;
    eventually(
        Duration::from_secs(30),
        "3 ready pods of second",
        || async {
            let second = crate::support::live_pods(&pods, "second").await;
            let ready = second
                .iter()
                .filter(|p| crate::support::pod_ready(p))
                .count();
            (ready == 3 && crate::support::live_pods(&pods, "first").await.is_empty()).then_some(())
        },
    )
    .await;
    assert!(pod_processes(dir.path()) <= 3);
    lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_bound_by_hand_past_max_pods_are_rejected_out_of_pods() {
    let dir = tempfile::tempdir().unwrap();
    let (lab, client) = lab_in(dir.path(), 2).await;
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    // `spec.nodeName` set at create skips the scheduler; the node must still count.
    for n in 0..5 {
        let pod: Pod = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": format!("direct-{n}")},
            "spec": {"nodeName": "lab-node-1",
                     "containers": [{"name": "web", "image": "resil-demo:1"}]},
        }))
        .unwrap();
        pods.create(&PostParams::default(), &pod).await.unwrap();
    }
    let rejected = eventually(Duration::from_secs(15), "3 pods rejected", || async {
        let list = pods.list(&ListParams::default()).await.ok()?.items;
        let rejected: Vec<Pod> = list
            .into_iter()
            .filter(|p| p.status.as_ref().and_then(|s| s.reason.as_deref()) == Some("OutOfpods"))
            .collect();
        (rejected.len() == 3).then_some(rejected)
    })
    .await;
    for pod in &rejected {
        let status = pod.status.as_ref().unwrap();
        assert_eq!(status.phase.as_deref(), Some("Failed"));
        let message = status.message.as_deref().unwrap_or_default();
        assert!(
            message.contains("pods, requested: 1, used: 2, capacity: 2"),
            "{message}"
        );
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(pod_processes(dir.path()), 2);
    lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_port_someone_else_holds_is_shown_on_the_service_until_it_is_free() {
    let dir = tempfile::tempdir().unwrap();
    let (lab, client) = lab_in(dir.path(), 110).await;
    let port = free_node_port();
    let squatter = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    let services: Api<Service> = Api::default_namespaced(client.clone());
    let events: Api<Event> = Api::default_namespaced(client.clone());
    let svc: Service = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "web"},
        "spec": {"type": "NodePort", "selector": {"app": "web"},
                 "ports": [{"port": 80, "targetPort": 8080, "nodePort": port}]},
    }))
    .unwrap();
    services.create(&PostParams::default(), &svc).await.unwrap();
    let annotation = |svc: &Service, key: &str| {
        svc.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(key).cloned())
    };
    let error = eventually(Duration::from_secs(10), "the bind error", || async {
        annotation(
            &services.get("web").await.ok()?,
            "resil.dev/node-port-error",
        )
    })
    .await;
    assert!(error.starts_with(&format!("{port}: ")), "{error}");
    assert!(error.to_lowercase().contains("in use"), "{error}");
    let warned = eventually(
        Duration::from_secs(5),
        "a NodePortBindFailed Event",
        || async {
            events_with_reason(&events, "NodePortBindFailed")
                .await
                .pop()
        },
    )
    .await;
    assert_eq!(warned.type_.as_deref(), Some("Warning"));
    let message = warned.message.unwrap_or_default();
    assert!(message.contains(&format!("127.0.0.1:{port}")), "{message}");
    // Retried, but said once.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        events_with_reason(&events, "NodePortBindFailed")
            .await
            .len(),
        1
    );

    drop(squatter);
    let listening = eventually(Duration::from_secs(10), "the port to listen", || async {
        let svc = services.get("web").await.ok()?;
        annotation(&svc, "resil.dev/node-port-error")
            .is_none()
            .then(|| annotation(&svc, "resil.dev/node-port-listening"))
            .flatten()
    })
    .await;
    assert_eq!(listening, format!("127.0.0.1:{port}"));
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());
    lab.shutdown().await;
}

#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loader_variables_in_a_pods_env_never_reach_its_process() {
    let dir = tempfile::tempdir().unwrap();
    let (lab, client) = lab_in(dir.path(), 110).await;
    let deploys: Api<Deployment> = Api::default_namespaced(client.clone());
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    let events: Api<Event> = Api::default_namespaced(client.clone());
    let env = json!([
        {"name": "LD_PRELOAD", "value": "/nonexistent/evil.so"},
        {"name": "LD_LIBRARY_PATH", "value": "/nonexistent"},
        {"name": "DYLD_INSERT_LIBRARIES", "value": "/nonexistent/evil.dylib"},
        {"name": "COLOR", "value": "blue"},
    ]);
    deploys
        .create(&PostParams::default(), &deployment("web", 1, env))
        .await
        .unwrap();
    let pod = eventually(Duration::from_secs(20), "a ready pod", || async {
        crate::support::live_pods(&pods, "web")
            .await
            .into_iter()
            .find(crate::support::pod_ready)
    })
    .await;
    let id = pod.status.unwrap().container_statuses.unwrap()[0]
        .container_id
        .clone()
        .unwrap();
    let pid = id.trim_start_matches("resil://");
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    let names: Vec<String> = environ
        .split(|b| *b == 0)
        .filter_map(|kv| kv.split(|b| *b == b'=').next())
        .map(|k| String::from_utf8_lossy(k).into_owned())
        .collect();
    assert!(names.iter().any(|n| n == "COLOR"), "{names:?}");
    assert!(
        !names
            .iter()
            .any(|n| n.starts_with("LD_") || n.starts_with("DYLD_")),
        "{names:?}"
    );
    let dropped = events_with_reason(&events, "LoaderEnvDropped").await;
    assert_eq!(dropped.len(), 1);
    let message = dropped[0].message.as_deref().unwrap_or_default();
    assert!(
        message.contains("LD_PRELOAD, LD_LIBRARY_PATH, DYLD_INSERT_LIBRARIES"),
        "{message}"
    );
    lab.shutdown().await;
}
