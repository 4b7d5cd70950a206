//! `resil gateway` as a real process in front of two `resil demo-app` regions: traffic
//! goes to the first, moves to the second within fail-after × interval of the first going
//! unready, and returns after the fail-back window; both decisions are in the timeline.
//! By weight, traffic is shared and a failing region ejected; with a DNS TTL, clients
//! follow a failover only when their cached answer expires. Load through it is counted
//! per region.

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

/// `resil gateway` on a free port in front of `regions` with `extra` flags and a timeline.
fn gateway(regions: &[(&str, &str)], extra: &[&str], timeline: &std::path::Path) -> (Proc, String) {
    let port = free_port();
    let mut command = Command::new(env!("CARGO_BIN_EXE_resil"));
    command.args(["gateway", "--listen", &format!("127.0.0.1:{port}")]);
    for (name, url) in regions {
        command.args(["--region", &format!("{name}={url}")]);
    }
    let child = command
        .args(extra)
        .arg("--timeline")
        .arg(timeline)
        .args(["--duration", "60s"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    (Proc(child), format!("http://127.0.0.1:{port}/"))
}

/// The gateway's decisions in `timeline`: (time, action).
fn decisions(timeline: &std::path::Path) -> Vec<(chrono::DateTime<chrono::Utc>, String)> {
    std::fs::read_to_string(timeline)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|e| e["type"] == "decision" && e["controller"] == "gateway")
        .map(|e| {
            let ts = e["ts"].as_str().unwrap().parse().unwrap();
            (ts, e["action"].as_str().unwrap().to_string())
        })
        .collect()
}

async fn set_unready(client: &reqwest::Client, base: &str) {
    let faults = client
        .put(format!("{base}/admin/faults"))
        .body(r#"{"unready":true}"#);
    assert!(faults.send().await.unwrap().status().is_success());
}

#[tokio::test]
async fn weighted_regions_share_traffic_by_weight_and_an_unready_one_is_ejected() {
    let (_a, a) = demo_app("pod-a");
    let (_b, b) = demo_app("pod-b");
    let tmp = tempfile::tempdir().unwrap();
    let timeline = tmp.path().join("timeline.jsonl");
    let flags = [
        "--weight",
        "a=3",
        "--interval",
        "100ms",
        "--fail-after",
        "2",
        "--failback-after",
        "30s",
    ];
    let (_gw, url) = gateway(&[("a", &a), ("b", &b)], &flags, &timeline);
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
    let mut count = std::collections::BTreeMap::<String, u32>::new();
    for _ in 0..400 {
        let pod = served_by(&client, &url).await.expect("both regions answer");
        *count.entry(pod).or_default() += 1;
    }
    // One client in sequence: the smooth round robin gives exactly 3:1.
    assert_eq!(count["pod-a"], 300, "{count:?}");
    assert_eq!(count["pod-b"], 100, "{count:?}");

    set_unready(&client, &b).await;
    let started = Instant::now();
    while started.elapsed() < limit && decisions(&timeline).is_empty() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let after: Vec<String> = futures::future::join_all(
        (0..50).map(|_| async { served_by(&client, &url).await.unwrap_or_default() }),
    )
    .await;
    assert!(
        after.iter().all(|p| p == "pod-a"),
        "after the ejection: {after:?}"
    );
    let actions: Vec<String> = decisions(&timeline).into_iter().map(|d| d.1).collect();
    assert_eq!(actions, ["eject b: traffic a 100%"]);
}

#[tokio::test]
async fn with_a_dns_ttl_clients_follow_a_failover_only_when_their_answer_expires() {
    let (_a, a) = demo_app("pod-a");
    let (_b, b) = demo_app("pod-b");
    let tmp = tempfile::tempdir().unwrap();
    let timeline = tmp.path().join("timeline.jsonl");
    let flags = [
        "--dns-ttl",
        "3s",
        "--interval",
        "100ms",
        "--fail-after",
        "2",
        "--failback-after",
        "30s",
    ];
    let (_gw, url) = gateway(&[("a", &a), ("b", &b)], &flags, &timeline);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let limit = Duration::from_secs(15);
    assert!(
        until_served_by(&client, &url, "pod-a", limit)
            .await
            .is_some()
    );
    set_unready(&client, &a).await;
    // Region a still answers (it is only unready), so every request shows where clients go.
    let mut served = Vec::new();
    let started = Instant::now();
    while started.elapsed() < limit {
        let pod = served_by(&client, &url).await;
        served.push((chrono::Utc::now(), pod.clone()));
        if pod.as_deref() == Some("pod-b") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let d = decisions(&timeline);
    let actions: Vec<&str> = d.iter().map(|d| d.1.as_str()).collect();
    assert_eq!(
        actions,
        ["failover a → b", "dns answer expired: traffic a → b"]
    );
    let (decided, expired) = (d[0].0, d[1].0);
    let gap = (expired - decided).to_std().unwrap();
    assert!(
        gap <= Duration::from_millis(3100),
        "the answer outlived its TTL: {gap:?}"
    );
    let first_b = served
        .iter()
        .find(|s| s.1.as_deref() == Some("pod-b"))
        .unwrap()
        .0;
    assert!(
        first_b >= expired,
        "a client reached b before its answer expired"
    );
    // Between the decision and the expiry, clients kept going to a.
    if gap > Duration::from_millis(200) {
        assert!(
            served
                .iter()
                .any(|(t, p)| *t > decided && *t < expired && p.as_deref() == Some("pod-a")),
            "no request went to a between the decision and the expiry"
        );
    }
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

#[tokio::test]
async fn load_through_the_gateway_counts_each_request_under_the_region_that_served_it() {
    let (_a, a) = demo_app("pod-a");
    let (_b, b) = demo_app("pod-b");
    let tmp = tempfile::tempdir().unwrap();
    let timeline = tmp.path().join("timeline.jsonl");
    let flags = ["--weight", "a=3", "--failback-after", "30s"];
    let (_gw, url) = gateway(&[("a", &a), ("b", &b)], &flags, &timeline);
    let client = reqwest::Client::new();
    let limit = Duration::from_secs(10);
    assert!(
        until_served_by(&client, &url, "pod-a", limit)
            .await
            .is_some()
    );
    let out = tmp.path().join("run");
    let load = Command::new(env!("CARGO_BIN_EXE_resil"))
        .args(["load", &url, "-r", "400", "-c", "1", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&load.stdout);
    assert!(
        load.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&load.stderr)
    );
    // One client in sequence through 3:1 weights: exactly 300 and 100, none unnamed.
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    let by_region = &summary["load"]["by_region"];
    assert_eq!(by_region["a"]["requests"], 300, "{by_region:#}");
    assert_eq!(by_region["b"]["requests"], 100, "{by_region:#}");
    assert_eq!(by_region.as_object().unwrap().len(), 2, "{by_region:#}");
    assert!(
        stdout.contains("through a") && stdout.contains("through b"),
        "{stdout}"
    );
    // The report carries them too.
    let report = Command::new(env!("CARGO_BIN_EXE_resil"))
        .args(["report", "-o", "json"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(report.status.success());
    let report: serde_json::Value = serde_json::from_slice(&report.stdout).unwrap();
    let regions: Vec<(&str, u64)> = report["load"]["by_region"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["region"].as_str().unwrap(),
                r["requests"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(regions, [("a", 300), ("b", 100)]);
}
