//! `resil deploy` against hostile surroundings: a NodePort someone else serves, a replica
//! count beyond a node's capacity, pods that stay Pending.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use k8s_openapi::api::core::v1::{Event, Node, Pod};

use super::*;

/// What the impostor answers: plain HTTP, no `x-resil-pod` header.
const ANSWER: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 6\r\nconnection: close\r\n\r\nother\n";

/// A plain HTTP server on 127.0.0.1:`port` that is not the demo app (it names no pod),
/// answering until dropped.
pub(crate) struct Impostor {
    stop: Arc<AtomicBool>,
}

impl Impostor {
    pub(crate) fn on(port: u16) -> Impostor {
        let listener = TcpListener::bind(("127.0.0.1", port)).expect("the port is free");
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let done = stop.clone();
        std::thread::spawn(move || {
            // Bounded: two minutes of 10 ms polls at most.
            for _ in 0..12_000 {
                if done.load(Ordering::Relaxed) {
                    return;
                }
                match listener.accept() {
                    Ok((mut conn, _)) => {
                        let _ = conn.set_nonblocking(false);
                        let _ = conn.set_read_timeout(Some(Duration::from_secs(1)));
                        let mut buf = [0u8; 2048];
                        let _ = conn.read(&mut buf);
                        let _ = conn.write_all(ANSWER);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        Impostor { stop }
    }
}

impl Drop for Impostor {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_port_served_by_another_process_is_refused_and_a_free_one_works() {
    let fx = LabFixture::start_with_runtime().await;
    let taken = support::free_node_port();
    let _impostor = Impostor::on(taken);
    let kc = fx.kubeconfig.to_str().unwrap().to_string();
    let home = fx.dir.path().to_path_buf();
    let deploy = move |port: u16| {
        let (kc, home) = (kc.clone(), home.clone());
        tokio::task::spawn_blocking(move || {
            resil(&home)
                .args([
                    "--kubeconfig",
                    &kc,
                    "deploy",
                    "--timeout",
                    "60s",
                    "--node-port",
                ])
                .arg(port.to_string())
                .output()
                .unwrap()
        })
    };
    let out = deploy(taken).await.unwrap();
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(2), "{stdout}{stderr}");
    let url = format!("http://127.0.0.1:{taken}");
    assert!(
        stderr.contains(&format!("{url} does not reach this cluster's demo")),
        "{stderr}"
    );
    assert!(stderr.contains("not the demo app"), "{stderr}");
    assert!(stderr.contains("--node-port"), "{stderr}");
    assert!(!stdout.contains(&url), "the URL is never printed: {stdout}");

    let free = support::free_node_port();
    let out = deploy(free).await.unwrap();
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(
        stdout.contains(&format!("selects blue: http://127.0.0.1:{free}")),
        "{stdout}"
    );
    fx.lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_follow_the_clusters_pod_capacity_not_a_cap_of_100() {
    let fx = LabFixture::start().await;
    let client = fx.target().await.client;
    // What the cluster lists decides: a node's default of 110 per colour when it lists
    // no Nodes (the lab before it serves them), else half their allocatable pods.
    let nodes = Api::<Node>::all(client).list(&Default::default()).await;
    let fits = match nodes.map(|l| l.items).unwrap_or_default() {
        items if items.is_empty() => 110,
        items => match resil::demo::deploy::capacity::capacity_of(&items) {
            resil::demo::deploy::capacity::PodCapacity::Nodes { pods, .. } => pods / 2,
            resil::demo::deploy::capacity::PodCapacity::Unlisted => 110,
        },
    };
    let fits = fits.to_string();
    let too_many = (fits.parse::<i64>().unwrap() + 1).to_string();
    assert_eq!(
        fx.run(&["deploy", "--no-wait", "--replicas", &too_many])
            .await,
        Exit::Error
    );
    assert_eq!(
        fx.run(&["deploy", "--no-wait", "--replicas", &fits]).await,
        Exit::Ok
    );
    let deployments: Api<Deployment> = Api::namespaced(fx.target().await.client, NS);
    let blue = deployments.get("web-blue").await.unwrap();
    assert_eq!(blue.spec.replicas.map(|r| r.to_string()), Some(fits));
    fx.lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_that_stay_pending_are_named_with_their_events_reason_during_the_wait() {
    // The API-only lab runs no controllers: the rollout never finishes, and the pod
    // below stays Pending with the Event a full node would leave.
    let fx = LabFixture::start().await;
    assert_eq!(fx.run(&["deploy", "--no-wait"]).await, Exit::Ok);
    let client = fx.target().await.client;
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    let pod: Pod = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "web-blue-stuck", "labels": {"app": "web", "version": "blue"}},
        "spec": {"containers": [{"name": "web", "image": "resil-demo:latest"}]},
    }))
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
    let pending = serde_json::json!({"status": {"phase": "Pending"}});
    pods.patch_status(
        "web-blue-stuck",
        &PatchParams::default(),
        &Patch::Merge(&pending),
    )
    .await
    .unwrap();
    let reason = "0/1 nodes are available: 1 Too many pods.";
    let event: Event = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "web-blue-stuck.1"},
        "involvedObject": {"kind": "Pod", "name": "web-blue-stuck", "namespace": NS},
        "type": "Warning", "reason": "FailedScheduling", "message": reason,
    }))
    .unwrap();
    Api::<Event>::namespaced(client, NS)
        .create(&PostParams::default(), &event)
        .await
        .unwrap();

    let kc = fx.kubeconfig.to_str().unwrap().to_string();
    let home = fx.dir.path().to_path_buf();
    let out = tokio::task::spawn_blocking(move || {
        resil(&home)
            .args(["--kubeconfig", &kc, "deploy", "--timeout", "9s"])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    let line = format!("waiting: 1 pod(s) Pending — FailedScheduling: {reason} (web-blue-stuck)");
    assert!(stderr.contains(&line), "{stderr}");
    // The timeout's error says it again.
    assert!(
        stderr.contains("the rollout did not finish (pods not ready"),
        "{stderr}"
    );
    assert!(stderr.matches("FailedScheduling").count() >= 2, "{stderr}");
    fx.lab.shutdown().await;
}
