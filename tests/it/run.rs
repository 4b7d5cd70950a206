//! `resil run`: every scenario in scenarios/ runs on an in-process lab, shortened with
//! `--time-scale`, and its SLO verdict (the exit code) is asserted, and `resil report` of
//! what it wrote gives the same verdicts and exit code (also for a failing window SLO);
//! an abort rule, and `--fail-fast` at a decided SLO breach, stop a run and revert its
//! fault, as Ctrl-C does while keeping partial results; a malformed scenario fails with
//! its line number. A scenario with `dashboard:` serves its run live on the page.
//!
//! The real binary runs with `--context resil-lab` and a temporary kubeconfig pointing at
//! the in-process lab (so it never starts a lab daemon of its own), with HOME,
//! XDG_STATE_HOME (chaos journal) and the results directory in a temporary directory.

use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use kube::api::Api;
use resil_lab::{Lab, LabConfig};
use tempfile::TempDir;

use crate::support;

const NS: &str = "distributed-resilience";

/// A lab for `resil run` (here with a one-second HPA sync, so scaled-down scenarios see
/// the HPA act; `run_infra.rs` sets nodes and zones), and a private home for the binary.
pub(crate) struct RunLab {
    pub(crate) lab: Lab,
    /// Held while the lab lives: scenarios push real load, and two at once on a small
    /// machine would judge the machine rather than the system.
    _one_at_a_time: std::fs::File,
    pub(crate) client: kube::Client,
    _state: TempDir,
    home: TempDir,
    kubeconfig: PathBuf,
}

/// What one `resil run` did.
pub(crate) struct Ran {
    pub(crate) code: Option<i32>,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl Ran {
    fn exits(&self, code: i32) {
        assert_eq!(self.code, Some(code), "{}", self.explain());
    }

    /// Asserts stderr (progress, watcher and step lines) contains `text`.
    fn said(&self, text: &str) {
        assert!(self.stderr.contains(text), "{text:?}:\n{}", self.explain());
    }

    /// Asserts stdout (the report) contains `text`.
    fn printed(&self, text: &str) {
        assert!(self.stdout.contains(text), "{text:?}:\n{}", self.explain());
    }

    pub(crate) fn explain(&self) -> String {
        format!(
            "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

impl RunLab {
    async fn start() -> RunLab {
        RunLab::start_with(&mut |c| c.hpa_sync_period = Duration::from_secs(1)).await
    }

    /// A lab whose config `set_up` adjusts first.
    pub(crate) async fn start_with(set_up: &mut dyn FnMut(&mut LabConfig)) -> RunLab {
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
        set_up(&mut config);
        let lab = Lab::start(config).await.expect("lab starts");
        let client = support::client_for(&lab).await;
        let home = tempfile::tempdir().unwrap();
        let kubeconfig = home.path().join("kubeconfig");
        std::fs::write(&kubeconfig, lab.kubeconfig_yaml()).unwrap();
        // The demo on a free NodePort, so other labs' demos (other test modules) are not
        // in the way of this one's.
        support::manifests_on_a_free_node_port(&home.path().join("manifests"));
        RunLab {
            lab,
            _one_at_a_time: one_at_a_time,
            client,
            _state: state,
            home,
            kubeconfig,
        }
    }

    fn results(&self) -> PathBuf {
        self.home.path().join("results")
    }

    /// `resil run SCENARIO --time-scale SCALE ARGS` against this lab, not started yet.
    fn command(&self, scenario: &Path, scale: &str, args: &[&str]) -> tokio::process::Command {
        let home = self.home.path();
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_resil"));
        cmd.arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(["--context", "resil-lab", "run"])
            .arg(scenario)
            .arg("--out")
            .arg(self.results())
            .arg("--manifests")
            .arg(self.home.path().join("manifests"))
            .args(["--seed", "7", "--time-scale", scale])
            .args(args)
            .env("HOME", home)
            .env("XDG_CONFIG_HOME", home.join(".config"))
            .env("XDG_STATE_HOME", home.join("state"))
            .env_remove("KUBECONFIG")
            .env_remove("RESIL_CHAOS_STATE_DIR")
            .env("NO_COLOR", "1")
            .env("RUST_LOG", "off")
            .kill_on_drop(true);
        cmd
    }

    /// `resil run SCENARIO --time-scale SCALE ARGS` against this lab.
    pub(crate) async fn run(&self, scenario: &Path, scale: &str, args: &[&str]) -> Ran {
        let mut cmd = self.command(scenario, scale, args);
        let out = tokio::time::timeout(Duration::from_secs(240), cmd.output())
            .await
            .expect("resil run finishes within 240 s")
            .expect("resil runs");
        Ran {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// The newest run directory whose name ends with `label`.
    pub(crate) fn run_dir(&self, label: &str) -> PathBuf {
        let mut dirs: Vec<PathBuf> = std::fs::read_dir(self.results())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.to_string_lossy().ends_with(label))
            .collect();
        dirs.sort();
        dirs.pop()
            .unwrap_or_else(|| panic!("no run directory ending in {label}"))
    }

    pub(crate) async fn stop(self) {
        self.lab.shutdown().await;
    }
}

fn shipped(name: &str) -> PathBuf {
    assert!(
        name.is_empty() || SHIPPED.contains(&name),
        "{name} is not in SHIPPED"
    );
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scenarios")
        .join(name)
}

fn run_json(dir: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("run.json")).unwrap()).unwrap()
}

/// The scenarios in scenarios/, each run by a test below (through [`shipped`]) or, for
/// the infrastructure faults, in `run_infra.rs` (the multi-region one in `run_regions.rs`).
const SHIPPED: [&str; 14] = [
    "autoscale.yaml",
    "bad-release-rollback.yaml",
    "blue-green-failover.yaml",
    "canary-analysis.yaml",
    "capacity-aware-failover.yaml",
    "drain-with-pdb.yaml",
    // Run by `run_regions.rs` (two named labs through the real binary).
    "multi-region-failover.yaml",
    "node-failure.yaml",
    "outage-and-failback.yaml",
    "outlier-ejection.yaml",
    "partial-degradation.yaml",
    "predictive-vs-reactive.yaml",
    "rolling-update-under-load.yaml",
    "zone-outage-spread-vs-not.yaml",
];

#[test]
fn every_shipped_scenario_has_a_run_test() {
    let mut found: Vec<String> = std::fs::read_dir(shipped(""))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yaml"))
        .collect();
    found.sort();
    assert_eq!(found, SHIPPED, "add a test for each new scenario");
}

/// `resil report DIR -o FORMAT`: exit code and stdout.
fn report(dir: &Path, format: &str) -> (Option<i32>, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_resil"))
        .arg("report")
        .arg(dir)
        .args(["-o", format])
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// The verdict rows of each `SLOs` section of a table report: (SLO as written, passed).
fn slo_tables(table: &str) -> Vec<Vec<(String, bool)>> {
    let mut sections = Vec::new();
    let mut lines = table.lines();
    while let Some(line) = lines.next() {
        if line != "SLOs" {
            continue;
        }
        let rows = lines
            .by_ref()
            .take_while(|l| !l.is_empty())
            .filter(|l| l.starts_with('│') && !l.contains("┆ verdict"))
            .map(|l| {
                let cells: Vec<&str> = l.trim_matches('│').split('┆').map(str::trim).collect();
                (cells[0].to_string(), cells[2] == "pass")
            })
            .collect();
        sections.push(rows);
    }
    sections
}

/// `resil report` of every run directory `ran` wrote, in table, JSON and JUnit, gives the
/// verdicts that `resil run` printed for it, and together the run's exit code.
fn report_agrees(lab: &RunLab, ran: &Ran) {
    let printed = slo_tables(&ran.stdout);
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(lab.results())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    assert_eq!(
        printed.len(),
        dirs.len(),
        "one SLO table per run:\n{}",
        ran.explain()
    );
    let mut worst = 0;
    for (dir, printed) in dirs.iter().zip(&printed) {
        let (code, table) = report(dir, "table");
        assert_eq!(
            slo_tables(&table),
            std::slice::from_ref(printed),
            "{}",
            dir.display()
        );
        let (json_code, json) = report(dir, "json");
        let json: serde_json::Value = serde_json::from_str(&json).unwrap();
        let judged: Vec<(String, bool)> = json["slos"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| {
                let expression = v["expression"].as_str().unwrap().to_string();
                (expression, v["passed"].as_bool().unwrap())
            })
            .collect();
        assert_eq!(&judged, printed, "{}", dir.display());
        let (junit_code, junit) = report(dir, "junit");
        let failed = printed.iter().filter(|(_, passed)| !passed).count();
        let suite = junit
            .lines()
            .find(|l| l.contains("<testsuite "))
            .unwrap_or("");
        let counts = [
            format!("tests=\"{}\"", printed.len()),
            format!("failures=\"{failed}\""),
        ];
        assert!(
            counts.iter().all(|c| suite.contains(c)),
            "{counts:?}:\n{junit}"
        );
        let want = if failed == 0 { 0 } else { 1 };
        assert_eq!(
            (code, json_code, junit_code),
            (Some(want), Some(want), Some(want))
        );
        worst = worst.max(want);
    }
    assert_eq!(ran.code, Some(worst), "{}", ran.explain());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blue_green_failover_scenario_fails_over_and_meets_its_slos() {
    let lab = RunLab::start().await;
    let ran = lab
        .run(&shipped("blue-green-failover.yaml"), "0.25", &[])
        .await;
    ran.exits(0);
    ran.said("failover blue → green");
    let dir = lab.run_dir("blue-green-failover");
    assert_eq!(run_json(&dir)["status"], "complete", "{}", ran.explain());
    ran.printed("SLOs held");
    // Its output is read as text (a CI log here): a terminal table with the SLO as
    // written, not Markdown with HTML entities.
    ran.printed("failover_time<5s");
    assert!(!ran.stdout.contains("&lt;"), "{}", ran.explain());
    report_agrees(&lab, &ran);
    // What the scenario left in the lab is what real clients read: every object of it
    // matches the upstream schema.
    crate::openapi::every_object_validates(&lab.client).await;
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outage_and_failback_scenario_fails_over_and_back() {
    let lab = RunLab::start().await;
    let ran = lab
        .run(&shipped("outage-and-failback.yaml"), "0.25", &[])
        .await;
    ran.exits(0);
    ran.said("failover blue → green");
    ran.said("failback green → blue");
    // The outage was reverted (to 2; the HPA may have added more since).
    let blue = Api::<Deployment>::namespaced(lab.client.clone(), NS)
        .get("web-blue")
        .await
        .unwrap();
    assert!(blue.spec.replicas >= Some(2), "{:?}", blue.spec.replicas);
    report_agrees(&lab, &ran);
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn autoscale_scenario_scales_blue_under_step_load_and_meets_its_slo() {
    let lab = RunLab::start().await;
    let ran = lab.run(&shipped("autoscale.yaml"), "0.25", &[]).await;
    ran.exits(0);
    let summary: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(lab.run_dir("autoscale").join("summary.json")).unwrap(),
    )
    .unwrap();
    assert!(
        summary["watch"]["scaling"]
            .as_array()
            .is_some_and(|s| !s.is_empty()),
        "the HPA scaled blue up: {summary}\n{}",
        ran.explain()
    );
    report_agrees(&lab, &ran);
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capacity_aware_failover_compares_plain_and_prepared_side_by_side() {
    let lab = RunLab::start().await;
    let ran = lab
        .run(&shipped("capacity-aware-failover.yaml"), "0.2", &[])
        .await;
    ran.exits(0);
    ran.printed("variants side by side");
    ran.printed("plain");
    let plain_first = std::fs::read_to_string(
        lab.run_dir("capacity-aware-failover-prepared")
            .join("comparison.md"),
    )
    .unwrap();
    assert!(
        plain_first.contains("| metric | plain | prepared |"),
        "{plain_first}"
    );
    ran.printed("failover_time_max");
    // The second report is the prepared run against the plain one.
    assert!(
        ran.stdout.to_lowercase().contains("baseline"),
        "{}",
        ran.explain()
    );
    let prepared = lab.run_dir("capacity-aware-failover-prepared");
    let table: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(prepared.join("comparison.json")).unwrap())
            .unwrap();
    assert_eq!(table["variants"], serde_json::json!(["plain", "prepared"]));
    assert_eq!(
        ran.stderr.matches("failover blue → green").count(),
        2,
        "both variants failed over:\n{}",
        ran.explain()
    );
    report_agrees(&lab, &ran);
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn predictive_vs_reactive_runs_both_and_reports_them_side_by_side() {
    let lab = RunLab::start().await;
    let ran = lab
        .run(&shipped("predictive-vs-reactive.yaml"), "0.05", &[])
        .await;
    ran.exits(0);
    ran.printed("variants side by side");
    ran.printed("predictive");
    for row in [
        "replica_seconds",
        "seconds with p99 > 100 ms",
        "errors",
        "cost_per_1m",
    ] {
        assert!(ran.stdout.contains(row), "row {row}:\n{}", ran.explain());
    }
    ran.said("autoscale: restored minReplicas to 1");
    let hpa = Api::<k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler>::namespaced(
        lab.client.clone(),
        NS,
    )
    .get("web-blue")
    .await
    .unwrap();
    assert_eq!(hpa.spec.min_replicas, Some(1), "minReplicas restored");
    report_agrees(&lab, &ran);
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partial_degradation_goes_unnoticed_and_fails_its_error_slo() {
    let lab = RunLab::start().await;
    let ran = lab
        .run(&shipped("partial-degradation.yaml"), "0.25", &[])
        .await;
    ran.exits(1);
    assert!(!ran.stderr.contains("failover blue"), "{}", ran.explain());
    ran.said("step 1: ");
    report_agrees(&lab, &ran);
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outlier_ejection_deletes_the_bad_pod_and_errors_fall_under_one_percent() {
    let lab = RunLab::start().await;
    let ran = lab
        .run(&shipped("outlier-ejection.yaml"), "0.25", &[])
        .await;
    // What the ejector saw and decided, for a failure message worth reading.
    let timeline =
        std::fs::read_to_string(lab.run_dir("outlier-ejection").join("timeline.jsonl")).unwrap();
    let seen: Vec<&str> = timeline
        .lines()
        .filter(|l| l.contains("\"outliers\"") || l.contains("by_pod"))
        .take(8)
        .collect();
    assert_eq!(
        ran.code,
        Some(0),
        "{}\n--- timeline\n{}",
        ran.explain(),
        seen.join("\n")
    );
    ran.said("eject pod web-blue-");
    // The window SLO, in the report's SLO table beside the whole run's.
    let window = slo_tables(&ran.stdout).concat();
    assert!(
        window
            .iter()
            .any(|(slo, passed)| slo.starts_with("error_rate<1% from 7s") && *passed),
        "{}",
        ran.explain()
    );
    report_agrees(&lab, &ran);
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_window_slo_fails_the_run_and_its_report_alike() {
    let lab = RunLab::start().await;
    // The whole run's SLO holds; only the window's fails (no request takes under 1 µs).
    let scenario = lab.home.path().join("window-fails.yaml");
    std::fs::write(
        &scenario,
        "name: window-fails
deploy: {replicas: 1, active: blue}
watch: {mode: observe-only}
load: {rate: 20, duration: 3s, path: /, timeout: 1s}
slos: [\"error_rate<50%\"]
window_slos:
  - {from: 1s, slo: \"p99<1us\"}
",
    )
    .unwrap();
    let ran = lab.run(&scenario, "1", &[]).await;
    ran.exits(1);
    assert_eq!(
        slo_tables(&ran.stdout),
        [vec![
            ("error_rate<50%".to_string(), true),
            ("p99<1us from 1s".to_string(), false)
        ]],
        "{}",
        ran.explain()
    );
    report_agrees(&lab, &ran);
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scenario_with_dashboard_serves_its_run_live_and_ends_on_the_final_verdict() {
    let lab = RunLab::start().await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let scenario = lab.home.path().join("live.yaml");
    std::fs::write(
        &scenario,
        format!(
            "name: live
deploy: {{replicas: 1, active: blue}}
load: {{rate: 40, duration: 8s, path: /}}
slos: [\"error_rate<50%\"]
dashboard: {port}
"
        ),
    )
    .unwrap();
    let mut run = lab
        .command(&scenario, "1", &[])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}/");
    // The page is up once the demo is deployed: try for a minute, every 200 ms.
    let mut up = false;
    for _ in 0..300 {
        if reqwest::get(&url).await.is_ok_and(|r| r.status() == 200) {
            up = true;
            break;
        }
        if run.try_wait().unwrap().is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    if !up {
        let _ = run.start_kill();
        let out = run.wait_with_output().await.unwrap();
        panic!(
            "the dashboard of the run answers at {url}:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let mut frames = crate::dashboard::Frames::open_url(&url).await;
    let live = frames
        .until(Duration::from_secs(30), "the run's load on the page", |f| {
            f["points"]
                .as_array()
                .is_some_and(|p| p.iter().any(|p| p["requests"]["blue"].as_u64() > Some(0)))
                && f["selected"] == "blue"
        })
        .await;
    assert_eq!(live["replay"], false);
    let last = frames
        .until(Duration::from_secs(60), "the final verdict", |f| {
            f["complete"] == true
        })
        .await;
    assert_eq!(last["report"]["slos_passed"], true, "{last}");
    let out = tokio::time::timeout(Duration::from_secs(60), run.wait_with_output())
        .await
        .expect("the run ends")
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains(&format!("dashboard at {url}")), "{stderr}");
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abort_rule_stops_the_run_and_reverts_the_outage() {
    let lab = RunLab::start().await;
    let ran = run_stopped_outage(&lab, "abort", "abort: [\"error_rate>50%\"]\n", &[]).await;
    ran.said("abort: error rate");
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_mid_run_reverts_the_outage_and_keeps_partial_results() {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    use tokio::io::{AsyncBufReadExt, BufReader};

    let lab = RunLab::start().await;
    let scenario = outage_scenario(&lab, "interrupted", "");
    let mut child = lab
        .command(&scenario, "1", &[])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut said = String::new();
    let injected = tokio::time::timeout(Duration::from_secs(90), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            said.push_str(&line);
            said.push('\n');
            if line.starts_with("step 1: ") {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(
        injected.ok(),
        Some(true),
        "the outage was injected:\n{said}"
    );
    let pid = Pid::from_raw(i32::try_from(child.id().unwrap()).unwrap());
    kill(pid, Signal::SIGINT).unwrap();
    let code = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            said.push_str(&line);
            said.push('\n');
        }
        child.wait().await.unwrap().code()
    })
    .await
    .expect("resil run ends within 60 s of Ctrl-C");
    let ran = Ran {
        code,
        stdout: String::new(),
        stderr: said,
    };
    ran.exits(130);
    ran.said("reverted outage (");
    stopped_early_and_reverted(&lab, &ran, "interrupted", "interrupted").await;
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_fast_stops_at_a_decided_window_slo_and_skips_the_repeats() {
    let lab = RunLab::start().await;
    // No abort rule: only --fail-fast can stop this run before its 60 s. The window
    // [2s, 5s) is decided at second 5, when the outage has failed nearly every request.
    let ran = run_stopped_outage(
        &lab,
        "fail-fast",
        "window_slos:\n  - {from: 2s, to: 5s, slo: \"error_rate<1%\"}\n",
        &["--fail-fast", "--repeat", "3"],
    )
    .await;
    ran.said("fail-fast: window SLO error_rate<1% from 2s to 5s failed");
    ran.said("--fail-fast: stopping after the first failed run");
    let runs = std::fs::read_dir(lab.results())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with("fail-fast")
        })
        .count();
    assert_eq!(
        runs,
        1,
        "no repeat after the failed run:\n{}",
        ran.explain()
    );
    // What --fail-fast decided early, the report of the results decides the same way.
    report_agrees(&lab, &ran);
    lab.stop().await;
}

/// Runs scenario `name`: a 60 s load with a 50 s outage of blue from 2 s, observed only,
/// plus `rules` (what should stop it), with `args`. Asserts that it stopped early with
/// exit 1, reverted the outage and left partial results.
async fn run_stopped_outage(lab: &RunLab, name: &str, rules: &str, args: &[&str]) -> Ran {
    let scenario = outage_scenario(lab, name, rules);
    let started = std::time::Instant::now();
    let ran = lab.run(&scenario, "1", args).await;
    ran.exits(1);
    assert!(
        started.elapsed() < Duration::from_secs(45),
        "stopped early, not after the 60 s load:\n{}",
        ran.explain()
    );
    stopped_early_and_reverted(lab, &ran, name, "aborted").await;
    ran
}

/// Writes scenario `name`: a 60 s load with a 50 s outage of blue from 2 s, observed only,
/// plus `rules`.
fn outage_scenario(lab: &RunLab, name: &str, rules: &str) -> PathBuf {
    let scenario = lab.home.path().join(format!("{name}.yaml"));
    std::fs::write(
        &scenario,
        format!(
            "name: {name}
deploy: {{replicas: 2, active: blue}}
watch: {{mode: observe-only}}
load: {{rate: 40, duration: 60s, path: /, timeout: 1s}}
steps:
  - {{at: 2s, do: outage, color: blue, duration: 50s}}
{rules}"
        ),
    )
    .unwrap();
    scenario
}

/// The run that `label` names was stopped mid-way: its outage is undone (blue has its
/// replicas back and the Service still selects it) and its results are marked partial,
/// for a reason starting with `reason`.
async fn stopped_early_and_reverted(lab: &RunLab, ran: &Ran, label: &str, reason: &str) {
    let blue = Api::<Deployment>::namespaced(lab.client.clone(), NS)
        .get("web-blue")
        .await
        .unwrap();
    assert!(blue.spec.replicas >= Some(2), "{}", ran.explain());
    let service = Api::<Service>::namespaced(lab.client.clone(), NS)
        .get("web")
        .await
        .unwrap();
    let selector = service.spec.unwrap().selector.unwrap();
    assert_eq!(selector.get("version").map(String::as_str), Some("blue"));
    let meta = run_json(&lab.run_dir(label));
    assert_eq!(meta["status"], "partial");
    assert!(
        meta["partial_reason"]
            .as_str()
            .is_some_and(|r| r.starts_with(reason)),
        "{meta}"
    );
}

#[test]
fn a_malformed_scenario_fails_with_its_line_number() {
    let home = tempfile::tempdir().unwrap();
    let scenario = home.path().join("bad.yaml");
    std::fs::write(
        &scenario,
        "name: bad\nload: {rate: 10, duration: 10s}\nsteps:\n  - {at: 1s, do: kill-pods, colour: blue}\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_resil"))
        .arg("run")
        .arg(&scenario)
        .env("HOME", home.path())
        .env("XDG_CONFIG_HOME", home.path().join(".config"))
        .env("XDG_STATE_HOME", home.path().join("state"))
        .env_remove("KUBECONFIG")
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("colour") && err.contains("line 4"), "{err}");
    assert!(
        !home.path().join("state").exists(),
        "nothing was started for a malformed scenario"
    );
}

/// The `VERSION` of blue's pod template, as the Deployment now has it.
async fn blue_version(lab: &RunLab) -> String {
    let blue = Api::<Deployment>::namespaced(lab.client.clone(), NS)
        .get("web-blue")
        .await
        .unwrap();
    let container = &blue.spec.template.spec.unwrap().containers[0];
    let env = container.env.clone().unwrap_or_default();
    let version = env.iter().find(|e| e.name == "VERSION");
    version.and_then(|e| e.value.clone()).unwrap_or_default()
}

/// The `rollouts` of the JSON report of the newest run directory ending in `label`.
fn rollouts_of(lab: &RunLab, label: &str) -> Vec<serde_json::Value> {
    let (_, json) = report(&lab.run_dir(label), "json");
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    json["rollouts"].as_array().cloned().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_update_under_load_rolls_blue_to_v2_without_a_failed_request() {
    let lab = RunLab::start().await;
    let ran = lab
        .run(&shipped("rolling-update-under-load.yaml"), "0.25", &[])
        .await;
    // `error_rate<=0%` held: not one request failed.
    ran.exits(0);
    ran.said("rollout: update (100%): web-blue to version v2");
    ran.said("rollout: rolled out: revision 2");
    ran.printed("Rollouts");
    assert_eq!(blue_version(&lab).await, "v2");
    let rollouts = rollouts_of(&lab, "rolling-update-under-load");
    assert_eq!(rollouts.len(), 1, "{rollouts:?}");
    assert_eq!(rollouts[0]["outcome"], "complete");
    report_agrees(&lab, &ran);
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_release_is_rolled_back_within_an_interval_of_its_breach() {
    let lab = RunLab::start().await;
    let ran = lab
        .run(&shipped("bad-release-rollback.yaml"), "0.25", &[])
        .await;
    // Errors stayed bounded, and none once the rollback was done.
    ran.exits(0);
    ran.said("BREACH (error_rate<1%");
    ran.said("rolling back to revision 1");
    ran.printed("ROLLED BACK");
    assert_eq!(blue_version(&lab).await, "v1");
    let rollouts = rollouts_of(&lab, "bad-release-rollback");
    let rollback = &rollouts[0]["rollback"];
    assert_eq!(rollouts[0]["outcome"], "rolled_back", "{rollouts:?}");
    // The interval is 5 s × 0.25: the rollback starts within it of the first bad second
    // (one more second for the load's bucket to arrive), and at once after the verdict.
    let breach_to_start = rollback["breach_to_start_ms"].as_u64().unwrap();
    assert!(breach_to_start <= 1_250 + 1_000, "{rollback}");
    assert!(
        rollback["detection_to_start_ms"].as_u64().unwrap() < 1_000,
        "{rollback}"
    );
    assert!(
        rollback["breach_to_done_ms"].as_u64().is_some(),
        "{rollback}"
    );
    report_agrees(&lab, &ran);
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canary_analysis_steps_v2_in_by_share_and_promotes_it() {
    let lab = RunLab::start().await;
    let ran = lab.run(&shipped("canary-analysis.yaml"), "0.25", &[]).await;
    ran.exits(0);
    ran.said("rollout: canary (25%): 1 canary pod(s) of version v2 beside 3 stable");
    ran.said("rollout: canary (50%): 3 canary pod(s)");
    ran.said("rollout: promote (100%)");
    ran.said("rollout: rolled out");
    assert_eq!(blue_version(&lab).await, "v2");
    // The canary is gone with its pods once the Deployment itself runs v2.
    let canary = Api::<Deployment>::namespaced(lab.client.clone(), NS)
        .get_opt("web-blue-canary")
        .await
        .unwrap();
    assert!(canary.is_none());
    let rollouts = rollouts_of(&lab, "canary-analysis");
    let steps: Vec<&str> = rollouts[0]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["step"].as_str().unwrap())
        .collect();
    assert_eq!(steps, ["canary", "canary", "promote"]);
    // Each step was analysed before the next: at least one interval per step.
    assert!(
        rollouts[0]["intervals"].as_u64().unwrap() >= 3,
        "{rollouts:?}"
    );
    report_agrees(&lab, &ran);
    lab.stop().await;
}
