//! `resil gateway` as a real process in front of two `resil demo-app` regions: traffic
//! goes to the first, moves to the second within fail-after × interval of the first going
//! unready, and returns after the fail-back window; both decisions are in the timeline.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A child process killed on drop.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A demo app on a port it picked; returns it and its base URL.
fn demo_app(pod: &str) -> (Proc, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_resil"))
        .args(["demo-app", "--bind", "127.0.0.1", "--port", "0"])
        .env("POD_NAME", pod)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap()
        .to_string();
    (Proc(child), format!("http://{addr}"))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The pod that served a request through the gateway, or `None` on an error.
async fn served_by(client: &reqwest::Client, url: &str) -> Option<String> {
    let response = client.get(url).send().await.ok()?;
    if !response.status().is_success() {
        return None;
    }
    Some(
        response
            .headers()
            .get("x-resil-pod")?
            .to_str()
            .ok()?
            .to_string(),
    )
}

/// Polls until the gateway sends traffic to `pod`; the time it took, or `None` past `limit`.
async fn until_served_by(
    client: &reqwest::Client,
    url: &str,
    pod: &str,
    limit: Duration,
) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() < limit {
        if served_by(client, url).await.as_deref() == Some(pod) {
            return Some(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    None
}

#[tokio::test]
async fn traffic_fails_over_within_k_intervals_and_fails_back_after_the_window() {
    let (_a, a) = demo_app("pod-a");
    let (_b, b) = demo_app("pod-b");
    let tmp = tempfile::tempdir().unwrap();
    let timeline = tmp.path().join("timeline.jsonl");
    let port = free_port();
    let _gateway = Proc(
        Command::new(env!("CARGO_BIN_EXE_resil"))
            .args(["gateway", "--listen", &format!("127.0.0.1:{port}")])
            .args(["--region", &format!("a={a}"), "--region", &format!("b={b}")])
            .args([
                "--interval",
                "100ms",
                "--fail-after",
                "3",
                "--failback-after",
                "1s",
            ])
            .arg("--timeline")
            .arg(&timeline)
            .args(["--duration", "60s"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let url = format!("http://127.0.0.1:{port}/");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let limit = Duration::from_secs(10);
    assert!(
        until_served_by(&client, &url, "pod-a", limit)
            .await
            .is_some()
    );

    let faults = client
        .put(format!("{a}/admin/faults"))
        .body(r#"{"unready":true}"#);
    assert!(faults.send().await.unwrap().status().is_success());
    let moved = until_served_by(&client, &url, "pod-b", limit)
        .await
        .expect("no failover");
    // 3 checks × 100 ms, plus one interval of phase and scheduling slack.
    assert!(
        moved < Duration::from_millis(800),
        "failover took {moved:?}"
    );

    assert!(
        client
            .delete(format!("{a}/admin/faults"))
            .send()
            .await
            .unwrap()
            .status()
            .is_success()
    );
    let back = until_served_by(&client, &url, "pod-a", limit)
        .await
        .expect("no failback");
    assert!(
        back >= Duration::from_millis(900),
        "failed back before the window: {back:?}"
    );

    let text = std::fs::read_to_string(&timeline).unwrap();
    let actions: Vec<String> = text
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|e| e["type"] == "decision" && e["controller"] == "gateway")
        .map(|e| e["action"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(actions, ["failover a → b", "failback b → a"], "{text}");
}
