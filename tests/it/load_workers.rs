//! `resil load --workers N` and a scenario's `load.workers` on an in-process lab: the
//! demo deployed on a free NodePort, worker pods of a batch/v1 Job sending their slices
//! of one schedule, the coordinator merging their seconds. Checks what a user relies on:
//! the merged run sends exactly the schedule a single process sends, the results
//! directory reads like a single generator's (plus `workers.json`), a killed worker
//! marks the run partial with the seconds it missed, and `resil run` passes a scenario
//! with `load.workers: 2`. Every wait is bounded; traffic stays on loopback.

use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use resil_lab::{Lab, LabConfig};
use serde_json::Value;
use tempfile::TempDir;

use crate::support::{self, eventually};

/// A lab with the demo deployed on a free NodePort, one test at a time (the lock the
/// scenario tests take: these runs are timed and the machine is small).
struct Env {
    lab: Lab,
    client: kube::Client,
    _state: TempDir,
    home: TempDir,
    kubeconfig: PathBuf,
    node_port: u16,
    _one_at_a_time: std::fs::File,
}

impl Env {
    async fn start(deploy: bool) -> Env {
        let one_at_a_time = tokio::task::spawn_blocking(|| {
            let path = std::env::temp_dir().join("resil-test-scenarios.lock");
            let file = std::fs::File::create(path).unwrap();
            file.lock().unwrap();
            file
        })
        .await
        .unwrap();
        let state = tempfile::tempdir().unwrap();
        let mut config = LabConfig::new(state.path());
        config.pod_program = PathBuf::from(env!("CARGO_BIN_EXE_resil"));
        let lab = Lab::start(config).await.expect("lab starts");
        let client = support::client_for(&lab).await;
        let home = tempfile::tempdir().unwrap();
        let kubeconfig = home.path().join("kubeconfig");
        std::fs::write(&kubeconfig, lab.kubeconfig_yaml()).unwrap();
        let node_port = support::manifests_on_a_free_node_port(&home.path().join("manifests"));
        let env = Env {
            lab,
            client,
            _state: state,
            home,
            kubeconfig,
            node_port,
            _one_at_a_time: one_at_a_time,
        };
        if deploy {
            let manifests = env.home.path().join("manifests");
            let ran = env
                .resil(&["deploy", "--manifests", manifests.to_str().unwrap()])
                .await;
            assert_eq!(ran.0, Some(0), "{}", ran.1);
        }
        env
    }

    fn command(&self, args: &[&str]) -> tokio::process::Command {
        let home = self.home.path();
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_resil"));
        cmd.arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(["--context", "resil-lab"])
            .args(args)
            .env("HOME", home)
            .env("XDG_CONFIG_HOME", home.join(".config"))
            .env("XDG_STATE_HOME", home.join("state"))
            .env_remove("KUBECONFIG")
            .env_remove("RESIL_CHAOS_STATE_DIR")
            .env("NO_COLOR", "1")
            .env("RUST_LOG", "off")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        cmd
    }

    /// Runs resil (bounded at 120 s): exit code and stdout + stderr.
    async fn resil(&self, args: &[&str]) -> (Option<i32>, String) {
        let out = tokio::time::timeout(Duration::from_secs(120), self.command(args).output())
            .await
            .expect("resil finishes within 120 s")
            .unwrap();
        let text = format!(
            "{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.code(), text)
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.node_port)
    }

    fn out(&self, name: &str) -> PathBuf {
        self.home.path().join(name)
    }
}

fn json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_send_the_schedule_of_one_process_and_merge_into_one_result() {
    let env = Env::start(true).await;
    let url = env.url();
    let (one, two) = (env.out("one"), env.out("two"));
    let base = [
        "load",
        url.as_str(),
        "--rate",
        "100",
        "-d",
        "3s",
        "--threads",
        "1",
    ];
    let single = env
        .resil(&[&base[..], &["--out", one.to_str().unwrap()]].concat())
        .await;
    assert_eq!(single.0, Some(0), "{}", single.1);
    let ran = env
        .resil(
            &[
                &base[..],
                &["--workers", "2", "--out", two.to_str().unwrap()],
            ]
            .concat(),
        )
        .await;
    assert_eq!(ran.0, Some(0), "{}", ran.1);
    let (s1, s2) = (
        json(&one.join("summary.json")),
        json(&two.join("summary.json")),
    );
    // The schedule: 100/s for 3 s is 300 sends, whoever sends them.
    assert_eq!(s1["load"]["requests"], 300, "{s1}");
    assert_eq!(s2["load"]["requests"], 300, "{s2}");
    assert_eq!(s2["load"]["errors"], 0, "{s2}");
    assert_eq!(s2["load"]["model"], "open");
    let colours: u64 = s2["load"]["by_color"]
        .as_object()
        .unwrap()
        .values()
        .map(|c| c["requests"].as_u64().unwrap())
        .sum();
    assert_eq!(colours, 300);
    // The same files a single generator writes, plus each worker's part.
    for file in [
        "run.json",
        "timeline.jsonl",
        "latency.hdr",
        "summary.json",
        "workers.json",
    ] {
        assert!(two.join(file).is_file(), "{file} is missing");
    }
    assert_eq!(json(&two.join("run.json"))["status"], "complete");
    let workers = json(&two.join("workers.json"));
    let parts = workers["workers"].as_array().unwrap();
    assert_eq!(parts.len(), 2);
    for w in parts {
        assert_eq!(
            w["requests"], 150,
            "each worker sends every other send: {w}"
        );
        assert_eq!(w["finished"], true);
        assert!(w["missed"].as_array().unwrap().is_empty());
    }
    // The timeline's seconds add up to the run.
    let timeline = std::fs::read_to_string(two.join("timeline.jsonl")).unwrap();
    let seconds: u64 = timeline
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|e| e["type"] == "load_bucket")
        .map(|e| e["requests"].as_u64().unwrap())
        .sum();
    assert_eq!(seconds, 300, "{timeline}");
    // The report reads it like any run.
    let report = env.resil(&["report", two.to_str().unwrap()]).await;
    assert_eq!(report.0, Some(0), "{}", report.1);
    // The Job and its pods are gone.
    let pods: Api<Pod> = Api::namespaced(env.client.clone(), "distributed-resilience");
    let left = pods
        .list(&ListParams::default().labels("app.kubernetes.io/name=resil-load-worker"))
        .await
        .unwrap();
    assert!(left.items.is_empty(), "worker pods left behind");
    env.lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_worker_marks_the_run_partial_with_the_seconds_it_missed() {
    let env = Env::start(true).await;
    let out = env.out("killed");
    let url = env.url();
    let mut child = env
        .command(&[
            "load",
            &url,
            "--rate",
            "40",
            "-d",
            "6s",
            "--threads",
            "1",
            "--workers",
            "2",
            "--out",
            out.to_str().unwrap(),
        ])
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    if child.try_wait().unwrap().is_some() {
        let out = child.wait_with_output().await.unwrap();
        panic!(
            "resil load ended early: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // Worker 1's process, once it has run a moment.
    let pods: Api<Pod> = Api::namespaced(env.client.clone(), "distributed-resilience");
    let pid = eventually(Duration::from_secs(30), "worker 1 runs", || async {
        let list = pods
            .list(&ListParams::default().labels("batch.kubernetes.io/job-completion-index=1"))
            .await
            .ok()?;
        let status = list.items.first()?.status.clone()?;
        let id = status.container_statuses?.first()?.container_id.clone()?;
        id.strip_prefix("resil://").map(str::to_string)
    })
    .await;
    // Into the run (the shared start is 5 s after the Job), then SIGKILL.
    tokio::time::sleep(Duration::from_secs(7)).await;
    let killed = std::process::Command::new("kill")
        .args(["-9", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    let done = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("resil load finishes")
        .unwrap();
    let text = String::from_utf8_lossy(&done.stderr).into_owned();
    assert_eq!(done.status.code(), Some(2), "{text}");
    assert!(
        text.contains("the run is partial: worker 1 missed seconds"),
        "{text}"
    );
    let meta = json(&out.join("run.json"));
    assert_eq!(meta["status"], "partial", "{meta}");
    assert!(
        meta["partial_reason"]
            .as_str()
            .unwrap()
            .contains("worker 1 missed seconds"),
        "{meta}"
    );
    let workers = json(&out.join("workers.json"));
    let w1 = &workers["workers"][1];
    assert_eq!(w1["finished"], false, "{workers}");
    assert_eq!(w1["exit_code"], 137, "{workers}");
    let missed = w1["missed"].as_array().unwrap();
    assert_eq!(
        missed.last().unwrap()["to"],
        5,
        "missed up to the run's last second: {w1}"
    );
    assert_eq!(workers["workers"][0]["finished"], true);
    env.lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scenario_with_two_workers_passes_under_resil_run() {
    let env = Env::start(false).await;
    let scenario = env.out("workers.yaml");
    std::fs::write(
        &scenario,
        "name: workers\nload: {rate: 40, duration: 8s, workers: 2}\n\
         slos: [\"error_rate<1%\"]\n",
    )
    .unwrap();
    let results = env.out("results");
    let manifests = env.out("manifests");
    let ran = env
        .resil(&[
            "run",
            scenario.to_str().unwrap(),
            "--out",
            results.to_str().unwrap(),
            "--manifests",
            manifests.to_str().unwrap(),
            "--time-scale",
            "0.5",
        ])
        .await;
    assert_eq!(ran.0, Some(0), "{}", ran.1);
    let dir = std::fs::read_dir(&results)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let meta = json(&dir.join("run.json"));
    assert_eq!(meta["status"], "complete", "{meta}");
    let summary = json(&dir.join("summary.json"));
    // 40/s for 8 s × 0.5.
    assert_eq!(summary["load"]["requests"], 160, "{summary}");
    assert_eq!(
        json(&dir.join("workers.json"))["workers"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    env.lab.shutdown().await;
}

/// The value of the sample `series` (name and labels, exactly as exposed) in `text`.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_coordinators_metrics_count_every_workers_traffic_while_it_runs() {
    use resil::load::{LoadPlan, Pace, Stop};
    use resil::metrics::Metrics;
    use resil::metrics::load::{LATENCY_BUCKETS, LoadMetrics, LoadSink};

    let env = Env::start(true).await;
    let mut metrics = Metrics::new();
    let sink = LoadMetrics::register(metrics.registry());
    let exporter = metrics.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let endpoint = format!("http://{}/metrics", exporter.addr());
    let stop = Stop {
        requests: None,
        duration: Some(Duration::from_secs(4)),
    };
    let mut plan = LoadPlan::for_url(&env.url(), Pace::Rate(100.0), stop).unwrap();
    plan.threads = 1;
    plan.metrics = LoadSink::to(sink);

    // Scrapes every 100 ms while the run goes on, keeping the total requests each saw.
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::<f64>::new()));
    let scraper = {
        let (seen, endpoint) = (seen.clone(), endpoint.clone());
        tokio::spawn(async move {
            let client = reqwest::Client::new();
            for _ in 0..600 {
                if let Ok(r) = client.get(&endpoint).send().await
                    && let Ok(text) = r.text().await
                {
                    let total: f64 = text
                        .lines()
                        .filter(|l| l.starts_with("resil_load_requests_total{"))
                        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                        .sum();
                    seen.lock().unwrap().push(total);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
    let done = resil::load::coordinator::run(
        &plan,
        2,
        &env.client,
        "distributed-resilience",
        tokio_util::sync::CancellationToken::new(),
        tx,
    )
    .await
    .expect("the distributed run");
    scraper.abort();
    let s = &done.report.summary;
    assert_eq!(s.requests, 400, "100/s for 4 s");

    // Mid-run scrapes already counted the workers' seconds: the figures are live.
    let seen = seen.lock().unwrap().clone();
    assert!(
        seen.iter().any(|n| *n > 0.0 && *n < s.requests as f64),
        "no scrape saw the run under way: {seen:?}"
    );
    // The last scrape is the merged run, exactly.
    let text = reqwest::get(&endpoint).await.unwrap().text().await.unwrap();
    for (color, c) in &s.by_color {
        let series = |name: &str| format!("{name}{{color=\"{color}\"}}");
        let requests = sample(&text, &series("resil_load_requests_total"));
        assert_eq!(requests, Some(c.requests as f64), "{color}\n{text}");
        let errors = sample(&text, &series("resil_load_request_errors_total"));
        assert_eq!(errors, Some(c.errors as f64), "{color}\n{text}");
        let timed = sample(&text, &series("resil_load_request_duration_seconds_count"));
        assert_eq!(timed, Some(c.requests as f64), "{color}\n{text}");
        // The bucket holding the colour's median: the first whose cumulative count
        // reaches half its requests, as histogram_quantile() would pick it.
        let median_s = c.latency.p50_us as f64 / 1e6;
        let upper = LATENCY_BUCKETS
            .iter()
            .position(|le| median_s <= *le)
            .unwrap();
        let prefix = format!("resil_load_request_duration_seconds_bucket{{color=\"{color}\",le=\"");
        let le = |i: usize| {
            text.lines()
                .find_map(|l| {
                    let (bound, value) = l.strip_prefix(&prefix)?.split_once("\"} ")?;
                    (bound.parse::<f64>().ok()? == LATENCY_BUCKETS[i]).then_some(value)
                })
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or_else(|| panic!("no {prefix}{}\"}} in\n{text}", LATENCY_BUCKETS[i]))
        };
        let half = c.requests as f64 / 2.0;
        assert!(le(upper) >= half, "{color}: median {median_s} s\n{text}");
        if upper > 0 {
            // HDR's median may sit on the bucket's edge: allow its precision.
            assert!(
                le(upper - 1) <= half + 1.0,
                "{color}: median {median_s} s\n{text}"
            );
        }
    }
    assert!(!s.by_color.is_empty(), "no colour answered: {s:?}");
    for kind in ["connect", "reset", "timeout", "http_5xx", "other"] {
        let series = format!("resil_load_errors_total{{kind=\"{kind}\"}}");
        let want = s.error_kinds.get(kind).copied().unwrap_or(0) as f64;
        assert_eq!(sample(&text, &series), Some(want), "{series}\n{text}");
    }
    drop(exporter);
    env.lab.shutdown().await;
}
