//! `resil dashboard` against an in-process lab running the demo (the demo and its kill from
//! `watch.rs`): the Server-Sent Events stream reports green selected and a failover marker
//! after blue is killed; a replay of a fixture results directory gives the figures and
//! markers `resil report -o json` gives; the page forbids other origins. The page itself,
//! in headless Chromium, is tested in `dashboard/browser.rs`. Every wait is bounded.

use std::path::{Path, PathBuf};
use std::time::Duration;

use resil::dashboard::{self, Dashboard, DashboardPlan};
use resil::watch::controller;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::watch::{Demo, NS};

mod browser;

/// The SSE stream of a dashboard, frame by frame.
pub(crate) struct Frames {
    response: reqwest::Response,
    buffer: String,
}

impl Frames {
    async fn open(dashboard: &Dashboard) -> Frames {
        Frames::open_url(&dashboard.url()).await
    }

    /// The stream of the dashboard at `url` (`http://127.0.0.1:PORT/`).
    pub(crate) async fn open_url(url: &str) -> Frames {
        let response = reqwest::get(format!("{url}events"))
            .await
            .expect("the dashboard answers");
        assert_eq!(response.status(), 200);
        let kind = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_string();
        assert!(kind.starts_with("text/event-stream"), "{kind}");
        Frames {
            response,
            buffer: String::new(),
        }
    }

    async fn next(&mut self) -> Value {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let event: String = self.buffer.drain(..end + 2).collect();
                let data: String = event
                    .lines()
                    .filter_map(|l| l.strip_prefix("data:"))
                    .map(str::trim_start)
                    .collect();
                if !data.is_empty() {
                    return serde_json::from_str(&data).expect("a frame is JSON");
                }
                continue;
            }
            let chunk = self
                .response
                .chunk()
                .await
                .unwrap()
                .expect("the stream goes on");
            self.buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    }

    /// The first frame for which `check` holds, within `limit`.
    pub(crate) async fn until(
        &mut self,
        limit: Duration,
        what: &str,
        check: impl Fn(&Value) -> bool,
    ) -> Value {
        let mut last = Value::Null;
        let found = tokio::time::timeout(limit, async {
            loop {
                let frame = self.next().await;
                if check(&frame) {
                    return frame;
                }
                last = frame;
            }
        })
        .await;
        found.unwrap_or_else(|_| panic!("within {limit:?}: {what}; last frame {last}"))
    }
}

fn live_plan() -> DashboardPlan {
    DashboardPlan {
        port: 0,
        watch: Some(dashboard::observer(NS.to_string())),
        follow: None,
        replay: None,
    }
}

fn blue_serving(frame: &Value) -> bool {
    frame["selected"] == "blue"
        && frame["tiles"][0]["color"] == "blue"
        && frame["tiles"][0]["ready"].as_u64() > Some(0)
}

fn has_failover(frame: &Value) -> bool {
    frame["selected"] == "green"
        && frame["markers"]
            .as_array()
            .is_some_and(|m| m.iter().any(|m| m["kind"] == "failover"))
}

/// The demo, an acting watcher (it fails over) and a dashboard following the cluster.
pub(super) async fn demo_with_dashboard(nodes: usize) -> (Demo, Dashboard, CancellationToken) {
    let demo = Demo::start_on(nodes).await;
    let stop = CancellationToken::new();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move { while rx.recv().await.is_some() {} });
    let plan = demo.plan(Duration::from_secs(300));
    let (client, watcher_stop) = (demo.client.clone(), stop.clone());
    tokio::spawn(
        async move { controller::run_with(client, plan, None, None, tx, watcher_stop).await },
    );
    let dashboard = dashboard::start(live_plan(), Some(demo.client.clone()))
        .await
        .expect("the dashboard starts");
    (demo, dashboard, stop)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killed_blue_shows_green_selected_and_a_failover_marker_in_the_stream() {
    let (demo, dashboard, stop) = demo_with_dashboard(1).await;
    let mut frames = Frames::open(&dashboard).await;
    frames
        .until(
            Duration::from_secs(30),
            "blue selected and ready",
            blue_serving,
        )
        .await;
    // Frames come at least every 200 ms even when nothing changes.
    let started = std::time::Instant::now();
    for _ in 0..5 {
        frames.next().await;
    }
    assert!(
        started.elapsed() < Duration::from_millis(1_500),
        "≥ 4 frames/s"
    );
    demo.kill("blue").await;
    let frame = frames
        .until(
            Duration::from_secs(15),
            "green selected, failover marker",
            has_failover,
        )
        .await;
    let marker = frame["markers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["kind"] == "failover")
        .unwrap();
    assert!(
        marker["label"]
            .as_str()
            .unwrap()
            .starts_with("failover blue → green in "),
        "{marker}"
    );
    stop.cancel();
    dashboard.stop().await;
}

pub(super) fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/results")
        .join(name)
}

#[tokio::test]
async fn a_replay_ends_with_the_figures_and_markers_of_the_report() {
    let dir = fixture("failover");
    let plan = DashboardPlan {
        port: 0,
        watch: None,
        follow: None,
        replay: Some((dir.clone(), 40.0)),
    };
    let dashboard = dashboard::start(plan, None).await.unwrap();
    let mut frames = Frames::open(&dashboard).await;
    let first = frames.next().await;
    assert_eq!(first["replay"], true);
    let last = frames
        .until(Duration::from_secs(10), "the replay ends", |f| {
            f["complete"] == true
        })
        .await;
    dashboard.stop().await;

    let output = std::process::Command::new(env!("CARGO_BIN_EXE_resil"))
        .args(["report", dir.to_str().unwrap(), "-o", "json"])
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&output.stdout).expect("report -o json");
    assert_eq!(
        last["report"], report,
        "the page's figures are the report's"
    );
    let kinds: Vec<&str> = last["markers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["kind"].as_str().unwrap())
        .collect();
    let faults = report["chaos"].as_array().unwrap().len();
    let failovers = report["failovers"].as_array().unwrap().len();
    let scaling = report["scaling"].as_array().unwrap().len();
    let rollouts = report["rollouts"].as_array().unwrap();
    let steps: usize = rollouts
        .iter()
        .map(|r| r["steps"].as_array().unwrap().len() + usize::from(!r["rollback"].is_null()))
        .sum();
    assert_eq!(
        kinds.len(),
        faults + failovers + scaling + steps,
        "{kinds:?}"
    );
    assert_eq!(kinds.iter().filter(|k| **k == "fault").count(), faults);
    assert!(failovers > 0, "the fixture has a failover");
    for f in report["failovers"].as_array().unwrap() {
        let at = chrono::DateTime::parse_from_rfc3339(f["completed_at"].as_str().unwrap())
            .unwrap()
            .timestamp_millis();
        assert!(
            last["markers"]
                .as_array()
                .unwrap()
                .iter()
                .any(|m| m["at_ms"] == at && m["kind"] == f["direction"]),
            "a marker for {f}"
        );
    }
}

#[tokio::test]
async fn the_page_forbids_other_origins_and_is_compiled_in() {
    let plan = DashboardPlan {
        port: 0,
        watch: None,
        follow: None,
        replay: Some((fixture("failover"), 1.0)),
    };
    let dashboard = dashboard::start(plan, None).await.unwrap();
    for (path, kind) in [
        ("", "text/html"),
        ("app.js", "text/javascript"),
        ("app.css", "text/css"),
    ] {
        let response = reqwest::get(format!("{}{path}", dashboard.url()))
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let headers = response.headers();
        assert_eq!(headers["content-security-policy"], "default-src 'self'");
        assert!(headers["content-type"].to_str().unwrap().starts_with(kind));
        // The SVG namespace is a name, not a request.
        let body = response
            .text()
            .await
            .unwrap()
            .replace("http://www.w3.org/2000/svg", "");
        assert!(
            !body.contains("http://") && !body.contains("https://"),
            "{path}: no URL"
        );
    }
    dashboard.stop().await;
}
