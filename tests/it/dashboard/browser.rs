//! The dashboard in headless Chromium, driven by Playwright (`tests/browser/dashboard.mjs`,
//! `playwright-core` with Debian's `chromium`): the failover and the pod tiles by zone
//! and node on a live lab, the figures and markers of a replay, and the page's JS heap
//! over a replayed 30-minute run; every test also checks that the page asked no other
//! host for anything. Skipped, saying why, where the tools are missing outside CI.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::DeleteParams;
use resil::dashboard::{self, DashboardPlan};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};

use super::{demo_with_dashboard, fixture};
use crate::watch::NS;

/// Node, Playwright and Chromium, or why not.
fn browser_tools() -> Result<(PathBuf, PathBuf), String> {
    let script_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    let chromium = std::env::var_os("RESIL_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    let node = std::process::Command::new("node").arg("--version").output();
    if node.is_err() {
        return Err("node is not installed".to_string());
    }
    if !chromium.exists() {
        return Err(format!("{} is not installed", chromium.display()));
    }
    if !script_dir.join("node_modules/playwright-core").exists() {
        return Err("playwright-core is not installed (npm ci in tests/browser)".to_string());
    }
    Ok((script_dir, chromium))
}

/// The browser tools, or `None` after saying why the test is skipped (outside CI only).
fn browser_or_skip() -> Option<(PathBuf, PathBuf)> {
    match browser_tools() {
        Ok(tools) => Some(tools),
        Err(why) if std::env::var_os("CI").is_none() => {
            eprintln!("skipped: {why} (.ci/run installs it)");
            None
        }
        Err(why) => panic!("{why}: CI must run the browser test"),
    }
}

/// `node dashboard.mjs ARGS...`, its stdout read line by line.
fn browser_script(
    script_dir: &Path,
    chromium: &Path,
    args: &[&str],
) -> (
    tokio::process::Child,
    tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
) {
    let mut node = tokio::process::Command::new("node")
        .arg(script_dir.join("dashboard.mjs"))
        .args(args)
        .env("RESIL_CHROMIUM", chromium)
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("node starts");
    let lines = BufReader::new(node.stdout.take().unwrap()).lines();
    (node, lines)
}

fn median(mut values: Vec<i64>) -> i64 {
    values.sort_unstable();
    values[values.len() / 2]
}

/// The page's JS heap samples: (first, last) after a full GC, the frames drawn between
/// them, and the heap a 30-minute live run at that frame rate would reach if it kept
/// growing at the measured rate per frame (never below the last sample).
fn heap_figures(samples: &Value) -> (f64, f64, i64, f64) {
    let samples = samples.as_array().expect("heap samples");
    let (first, last) = (&samples[0], &samples[samples.len() - 1]);
    let mb = |s: &Value| s["heap"].as_f64().unwrap() / 1e6;
    let frames = last["frames"].as_i64().unwrap() - first["frames"].as_i64().unwrap();
    let secs = (last["at"].as_f64().unwrap() - first["at"].as_f64().unwrap()) / 1000.0;
    let per_frame = (mb(last) - mb(first)) / frames.max(1) as f64;
    let frames_in_30_min = (frames as f64 / secs).max(5.0) * 1800.0;
    let projected = mb(last) + per_frame.max(0.0) * frames_in_30_min;
    (mb(first), mb(last), frames, projected)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_page_shows_a_failover_and_pod_tiles_by_zone_within_a_second_in_chromium() {
    let Some((script_dir, chromium)) = browser_or_skip() else {
        return;
    };
    let (demo, dashboard, stop) = demo_with_dashboard(3).await;
    let shots = tempfile::tempdir_in(demo.dir.path()).unwrap();
    let url = dashboard.url();
    let (mut node, mut lines) = browser_script(
        &script_dir,
        &chromium,
        &["live", &url, shots.path().to_str().unwrap()],
    );
    let ready = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
        .await
        .expect("the page shows blue and its pod tiles within 60 s");
    assert_eq!(ready.unwrap().as_deref(), Some("READY"));

    // Deletions the page must show: single green pods first (no failover), then blue.
    // Each is timed from just before the lab is asked, so the figure is an upper bound.
    let api: kube::Api<Pod> = kube::Api::namespaced(demo.client.clone(), NS);
    let mut deleted: Vec<(String, i64)> = Vec::new();
    let greens = demo.ready("green").await;
    for _ in 0..3 {
        let pod = demo
            .pods("green")
            .await
            .into_iter()
            .find(|p| p.metadata.deletion_timestamp.is_none())
            .expect("a green pod");
        let name = pod.metadata.name.unwrap();
        let at = chrono::Utc::now().timestamp_millis();
        api.delete(&name, &DeleteParams::default().grace_period(0))
            .await
            .unwrap();
        deleted.push((name, at));
        demo.wait_ready(30, "green", greens).await;
    }
    let killed = chrono::Utc::now().timestamp_millis();
    for pod in demo.pods("blue").await {
        deleted.push((pod.metadata.name.unwrap(), killed));
    }
    demo.kill("blue").await;
    let result = tokio::time::timeout(Duration::from_secs(90), lines.next_line())
        .await
        .expect("the page shows the failover and the replacements within 90 s")
        .unwrap()
        .expect("the script reports");
    let status = node.wait().await.unwrap();
    assert!(status.success(), "the browser script failed: {result}");
    let seen: Value = serde_json::from_str(&result).unwrap();
    assert_eq!(
        seen["foreign"],
        serde_json::json!([]),
        "no request to another host"
    );
    let green_after = seen["green_seen_ms"].as_i64().unwrap() - killed;
    let marker_after = seen["marker_seen_ms"].as_i64().unwrap() - killed;
    let red_after = seen["blue_pods_red_seen_ms"].as_i64().unwrap() - killed;
    assert!(
        green_after <= 1_000,
        "green selected {green_after} ms after the kill"
    );
    assert!(
        marker_after <= 1_000,
        "failover marker {marker_after} ms after the kill"
    );
    assert!(
        red_after <= 1_000,
        "every blue pod tile red {red_after} ms after the kill"
    );

    // Event → on the page: every deleted pod's tile turning red, and the failover marker
    // from the moment the watcher's switch of the Service was acknowledged by the lab.
    let page_seen = &seen["page_seen"];
    let mut latencies = Vec::new();
    for (name, at) in &deleted {
        let shown = ["not ready", "deleted"]
            .iter()
            .filter_map(|state| page_seen[format!("pod:{name}:{state}")].as_i64())
            .filter(|t| *t >= *at)
            .min()
            .unwrap_or_else(|| panic!("the page never showed {name} red: {page_seen}"));
        latencies.push(shown - at);
    }
    latencies
        .push(seen["marker_seen_ms"].as_i64().unwrap() - seen["marker_at_ms"].as_i64().unwrap());
    let (heap_first, heap_last, frames, projected) = heap_figures(&seen["heap"]);
    eprintln!(
        "green selected {green_after} ms, blue pod tiles red {red_after} ms and failover marker \
         {marker_after} ms after the kill; failover time {}; event → on the page: median {} ms \
         of {} events (max {} ms); JS heap {heap_first:.1} MB → {heap_last:.1} MB over {frames} \
         frames, 30 minutes at this rate: {projected:.1} MB",
        seen["failover_time"],
        median(latencies.clone()),
        latencies.len(),
        latencies.iter().max().unwrap(),
    );
    assert!(
        median(latencies.clone()) <= 1_000,
        "event → page median {latencies:?}"
    );
    assert!(heap_last < 100.0, "page heap {heap_last:.1} MB");

    // Dark and light: different backgrounds, every text at least WCAG AA (4.5:1) on its
    // card, and each colour's tiles marked by its shape as well.
    let schemes = &seen["schemes"];
    assert_ne!(
        schemes["light"]["background"], schemes["dark"]["background"],
        "{schemes}"
    );
    for scheme in ["light", "dark"] {
        for text in ["text", "blue", "green", "ready"] {
            let ratio = schemes[scheme][text].as_f64().unwrap();
            assert!(ratio >= 4.5, "{scheme} {text}: contrast {ratio:.2}");
        }
        for shape in schemes[scheme]["shapes"].as_array().unwrap() {
            let want = if shape[0] == "blue" { "▲" } else { "■" };
            assert_eq!(shape[1], want, "{shape}");
        }
    }
    eprintln!(
        "contrast light {} / dark {}",
        schemes["light"], schemes["dark"]
    );

    // Every zone and node is on the page, each pod's tile under the node it is bound to.
    let zones: Vec<&str> = seen["zones"]
        .as_array()
        .unwrap()
        .iter()
        .map(|z| z.as_str().unwrap())
        .collect();
    assert_eq!(zones, ["lab-a", "lab-b", "lab-c"]);
    let mut pods = demo.pods("blue").await;
    pods.extend(demo.pods("green").await);
    for pod in pods {
        let name = pod.metadata.name.unwrap();
        let node = pod.spec.unwrap().node_name.unwrap();
        let tile = seen["tiles"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["pod"] == name.as_str())
            .unwrap_or_else(|| panic!("a tile for {name}: {}", seen["tiles"]));
        assert_eq!(tile["node"], node.as_str(), "{tile}");
        assert_eq!(tile["state"], "ready", "{tile}");
        let zone = match node.as_str() {
            "lab-node-1" => "lab-a",
            "lab-node-2" => "lab-b",
            _ => "lab-c",
        };
        assert_eq!(tile["zone"], zone, "{tile}");
    }
    let shot = shots.path().join("dashboard.png");
    assert!(std::fs::metadata(&shot).unwrap().len() > 0, "a screenshot");
    if let Some(keep) = std::env::var_os("RESIL_SCREENSHOT") {
        std::fs::copy(&shot, keep).unwrap();
    }
    stop.cancel();
    dashboard.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_in_chromium_shows_the_figures_and_markers_of_the_report() {
    let Some((script_dir, chromium)) = browser_or_skip() else {
        return;
    };
    let dir = fixture("failover");
    let plan = DashboardPlan {
        port: 0,
        watch: None,
        follow: None,
        replay: Some((dir.clone(), 20.0)),
    };
    let dashboard = dashboard::start(plan, None).await.unwrap();
    let shots = tempfile::tempdir().unwrap();
    let url = dashboard.url();
    let (mut node, mut lines) = browser_script(
        &script_dir,
        &chromium,
        &["figures", &url, shots.path().to_str().unwrap()],
    );
    let result = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
        .await
        .expect("the replay ends on the page within 60 s")
        .unwrap()
        .expect("the script reports");
    assert!(node.wait().await.unwrap().success(), "{result}");
    dashboard.stop().await;
    let shown: Value = serde_json::from_str(&result).unwrap();
    assert_eq!(shown["foreign"], serde_json::json!([]));

    let output = std::process::Command::new(env!("CARGO_BIN_EXE_resil"))
        .args(["report", dir.to_str().unwrap(), "-o", "json"])
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    let figures = &shown["figures"];
    let last = report["failovers"].as_array().unwrap().last().unwrap();
    assert_eq!(
        figures["failover time"],
        format!("{} ms", last["control_plane_ms"]),
        "{figures}"
    );
    for r in report["recovery"].as_array().unwrap() {
        let at = &r["injected_at"].as_str().unwrap()[11..19];
        let row = figures[format!("recovery {} {at}", r["action"].as_str().unwrap())]
            .as_str()
            .unwrap_or_else(|| panic!("a recovery row for {r}: {figures}"));
        let lost = r["requests_lost"].as_u64().unwrap();
        assert!(row.ends_with(&format!("{lost} lost")), "{row} / {r}");
        if let Some(rto) = r["rto_ms"].as_u64() {
            assert!(row.starts_with(&format!("{rto} ms")), "{row} / {r}");
        }
    }
    let slos: Vec<&str> = report["slos"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["message"].as_str().unwrap())
        .collect();
    let shown_slos: Vec<&str> = shown["slos"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    assert_eq!(shown_slos, slos);
    let passed = report["slos_passed"].as_bool().unwrap();
    let verdict = if passed { "PASSED" } else { "FAILED" };
    assert_eq!(shown["verdict"], format!("{verdict} (final)"));
    for f in report["failovers"].as_array().unwrap() {
        let at = chrono::DateTime::parse_from_rfc3339(f["completed_at"].as_str().unwrap())
            .unwrap()
            .timestamp_millis();
        assert!(
            shown["markers"]
                .as_array()
                .unwrap()
                .iter()
                .any(|m| m["at_ms"] == at && m["kind"] == f["direction"]),
            "a marker for {f} on the page: {}",
            shown["markers"]
        );
    }
    let faults = shown["markers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["kind"] == "fault")
        .count();
    assert_eq!(faults, report["chaos"].as_array().unwrap().len());
}

/// A finished 30-minute run: the failover fixture's files, with a timeline of 1,800
/// one-second load buckets served by both colours, each with its latency.
fn half_hour_run(dir: &Path) -> PathBuf {
    let run = dir.join("half-hour");
    std::fs::create_dir(&run).unwrap();
    let src = fixture("failover");
    for file in ["latency.hdr", "summary.json"] {
        std::fs::copy(src.join(file), run.join(file)).unwrap();
    }
    let mut meta: Value =
        serde_json::from_str(&std::fs::read_to_string(src.join("run.json")).unwrap()).unwrap();
    let start = chrono::DateTime::parse_from_rfc3339(meta["started_at"].as_str().unwrap())
        .unwrap()
        .with_timezone(&chrono::Utc);
    let at = |s: i64| {
        (start + chrono::Duration::seconds(s)).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    };
    meta["ended_at"] = Value::String(at(1_800));
    std::fs::write(run.join("run.json"), meta.to_string()).unwrap();
    let mut timeline = String::new();
    for s in 0..1_800 {
        let line = serde_json::json!({
            "ts": at(s), "source": "load", "type": "load_bucket", "second": s,
            "requests": 200, "errors": s % 7, "p50_us": 12_000 + s, "p90_us": 20_000,
            "p99_us": 40_000 + 10 * s, "max_us": 50_000,
            "by_color": {"blue": {"requests": 100, "errors": s % 7},
                         "green": {"requests": 100, "errors": 0}},
            "latency_by_color": {"blue": {"p50_us": 11_000, "p99_us": 39_000 + s},
                                 "green": {"p50_us": 13_000, "p99_us": 41_000}},
        });
        timeline.push_str(&line.to_string());
        timeline.push('\n');
    }
    std::fs::write(run.join("timeline.jsonl"), timeline).unwrap();
    run
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_half_hour_run_keeps_the_page_heap_small_in_chromium() {
    let Some((script_dir, chromium)) = browser_or_skip() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let run = half_hour_run(dir.path());
    // 60×: the 30 minutes in 30 s, every bucket a frame of two full minutes of charts.
    let plan = DashboardPlan {
        port: 0,
        watch: None,
        follow: None,
        replay: Some((run, 60.0)),
    };
    let dashboard = dashboard::start(plan, None).await.unwrap();
    let url = dashboard.url();
    let (mut node, mut lines) = browser_script(
        &script_dir,
        &chromium,
        &["memory", &url, dir.path().to_str().unwrap(), "32"],
    );
    let result = tokio::time::timeout(Duration::from_secs(90), lines.next_line())
        .await
        .expect("the heap is sampled within 90 s")
        .unwrap()
        .expect("the script reports");
    assert!(node.wait().await.unwrap().success(), "{result}");
    dashboard.stop().await;
    let seen: Value = serde_json::from_str(&result).unwrap();
    assert_eq!(seen["foreign"], serde_json::json!([]));
    let (first, last, frames, projected) = heap_figures(&seen["heap"]);
    eprintln!(
        "replayed 30-minute run: JS heap {first:.1} MB → {last:.1} MB over {frames} frames; \
         30 minutes at this frame rate and growth per frame: {projected:.1} MB"
    );
    assert!(frames >= 300, "the replay drew {frames} frames");
    // Two minutes of one-second points: p50 and p99 per colour, requests per colour.
    let charts = &seen["charts"];
    for (chart, lines) in [
        ("chart-lat-blue", ["l-p50", "l-p99"]),
        ("chart-lat-green", ["l-p50", "l-p99"]),
        ("chart-rps", ["l-blue", "l-green"]),
    ] {
        for (i, class) in lines.iter().enumerate() {
            let line = &charts[chart][i];
            assert_eq!(line[0], *class, "{chart}: {charts}");
            let points = line[1].as_u64().unwrap();
            assert!(
                (110..=121).contains(&points),
                "{chart} {class}: {points} points"
            );
        }
    }
    assert!(
        projected < 100.0,
        "page heap projected to {projected:.1} MB"
    );
}
