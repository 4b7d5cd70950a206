//! `resil autoscale --predictive` against the kind-stand-in ([`stand_in`]: one HPA, its
//! Deployment, three blue pods, Events): the forecast raises minReplicas ahead of a ramp
//! read from a results directory, the budget caps it, the original comes back on exit, and
//! after a SIGKILL the chaos journal restores it (`resil chaos revert`) or the next run
//! adopts the journaled original; the controller's decisions under a paused clock; the
//! same on the lab's API. Outlier ejection is in [`eject`].

use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, Utc};
use clap::Parser;
use resil::chaos::execute::Scope;
use resil::chaos::journal::Journal;
use resil::cli::Cli;
use resil::cost::pricing::PricingProfile;
use resil::results::RunDir;
use resil::results::summary::PodRequests;
use resil::results::timeline::{Event, EventKind};
use serde_json::json;
use tokio_util::sync::CancellationToken;

mod eject;
mod stand_in;

use stand_in::{Cluster, NS, cluster, cluster_with, hpa_object, stand_in};

/// The load bucket of second `second` after `start`, with `requests` in it.
fn load_bucket(start: DateTime<Utc>, second: u64, requests: u64) -> Event {
    Event {
        ts: start + chrono::Duration::seconds(second as i64),
        source: "load".to_string(),
        kind: EventKind::LoadBucket {
            second,
            requests,
            errors: 0,
            p50_us: 1000,
            p90_us: 2000,
            p99_us: 3000,
            max_us: 4000,
            by_color: Default::default(),
            by_pod: Default::default(),
            latency_by_color: Default::default(),
        },
    }
}

/// A results directory whose timeline holds a ramp: 10 + 3·i req/s for 30 seconds.
fn ramp(dir: &Path) -> std::path::PathBuf {
    let results = dir.join("results");
    let run = RunDir::create(&results).unwrap();
    let mut timeline = run.timeline().unwrap();
    let start: DateTime<Utc> = Utc::now() - chrono::Duration::seconds(40);
    for i in 0..30u64 {
        timeline.append(&load_bucket(start, i, 10 + 3 * i)).unwrap();
    }
    results
}

fn autoscale_args(kubeconfig: &Path, results: &Path, state: &Path, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = [
        "resil",
        "--kubeconfig",
        kubeconfig.to_str().unwrap(),
        "autoscale",
        "--predictive",
        "--from",
        results.to_str().unwrap(),
        "--capacity",
        "10",
        "--headroom",
        "20%",
        "--look-ahead",
        "30s",
        "--interval",
        "100ms",
        // One-second steps keep the ramp arithmetic below exact.
        "--sample-step",
        "1s",
        "--state-dir",
        state.to_str().unwrap(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

fn decisions(results: &Path) -> Vec<(String, String)> {
    RunDir::create(results)
        .unwrap()
        .read_timeline()
        .unwrap()
        .into_iter()
        .filter(|e| e.source == "autoscale")
        .filter_map(|e| match e.kind {
            EventKind::Decision { rule, action, .. } => Some((rule, action)),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn predictive_autoscale_raises_min_replicas_ahead_of_a_ramp_and_restores_it() {
    let dir = tempfile::tempdir().unwrap();
    let (cluster, kubeconfig) = cluster(dir.path()).await;
    let results = ramp(dir.path());
    let state = dir.path().join("state");
    let args = autoscale_args(&kubeconfig, &results, &state, &["--duration", "700ms"]);
    let exit = resil::run(Cli::parse_from(args)).await;
    assert_eq!(exit, resil::Exit::Ok);
    // The last complete one-second step is 94 req/s (the newest bucket's step is still
    // open), rising 3/s: 184 in 30 s × 1.2 / 10 per pod = 22.08 → 23.
    assert_eq!(cluster.patches(), [23, 1], "raised, then restored");
    assert_eq!(cluster.min(), 1);
    let journal = Journal::new(&state);
    assert!(journal.open_entries().unwrap().is_empty());
    assert_eq!(journal.entries().unwrap().len(), 1);
    let decisions = decisions(&results);
    assert_eq!(decisions[0].1, "raise minReplicas 1 → 23");
    assert!(
        decisions[0].0.contains("forecast 184.0 req/s in 30s"),
        "{}",
        decisions[0].0
    );
    assert_eq!(decisions.last().unwrap().1, "restore minReplicas 23 → 1");
    // The decision carries its inputs, among them the forecast's error on the last window
    // (zero: the ramp is exactly linear).
    let inputs = RunDir::create(&results)
        .unwrap()
        .read_timeline()
        .unwrap()
        .into_iter()
        .find_map(|e| match e.kind {
            EventKind::Decision { inputs, .. } => Some(inputs),
            _ => None,
        })
        .unwrap();
    assert_eq!(inputs["observed"]["model"], "holt");
    assert_eq!(inputs["observed"]["accuracy"]["mae"], 0.0);
    assert_eq!(inputs["needed"], 23);
    let events = cluster.events.lock().unwrap().clone();
    assert_eq!(events, ["PredictiveScale", "MinReplicasRestored"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cost_budget_caps_min_replicas_and_says_it_binds() {
    let dir = tempfile::tempdir().unwrap();
    let (cluster, kubeconfig) = cluster(dir.path()).await;
    let results = ramp(dir.path());
    let state = dir.path().join("state");
    let price = PricingProfile::builtin("default")
        .unwrap()
        .pod_hour_price(PodRequests {
            cpu_millis: 100,
            memory_bytes: 128 << 20,
        });
    // Enough for 5.5 pods: 5 allowed of the 23 wanted.
    let budget = format!("{}/h", price * 5.5);
    let args = autoscale_args(
        &kubeconfig,
        &results,
        &state,
        &["--duration", "500ms", "--budget", &budget],
    );
    assert_eq!(resil::run(Cli::parse_from(args)).await, resil::Exit::Ok);
    assert_eq!(cluster.patches(), [5, 1]);
    let decisions = decisions(&results);
    assert!(
        decisions[0]
            .0
            .contains("budget binds: 23 wanted, 5 allowed"),
        "{}",
        decisions[0].0
    );
    assert_eq!(cluster.events.lock().unwrap()[0], "BudgetBinds");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_hpa_is_a_clear_error_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (cluster, kubeconfig) = cluster(dir.path()).await;
    let results = ramp(dir.path());
    let state = dir.path().join("state");
    let args = autoscale_args(
        &kubeconfig,
        &results,
        &state,
        &["--duration", "300ms", "--hpa", "web-purple"],
    );
    assert_eq!(resil::run(Cli::parse_from(args)).await, resil::Exit::Error);
    assert!(cluster.patches().is_empty());
    assert!(Journal::new(&state).entries().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_capacity_it_is_measured_from_the_hpa_cpu_figure() {
    let dir = tempfile::tempdir().unwrap();
    let mut hpa = hpa_object(1);
    hpa["status"]["currentMetrics"] = json!([{"type": "Resource", "resource": {"name": "cpu",
        "current": {"averageUtilization": 60}}}]);
    let (cluster, kubeconfig) = cluster_with(dir.path(), hpa).await;
    let results = ramp(dir.path());
    let state = dir.path().join("state");
    let mut args = autoscale_args(&kubeconfig, &results, &state, &["--duration", "500ms"]);
    let at = args.iter().position(|a| a == "--capacity").unwrap();
    args.drain(at..at + 2);
    assert_eq!(resil::run(Cli::parse_from(args)).await, resil::Exit::Ok);
    // 94 req/s on 2 pods at 60 % CPU, target 50 %: 39.2 req/s per pod at target;
    // 184 × 1.2 / 39.2 = 5.64 → 6.
    assert_eq!(cluster.patches(), [6, 1]);
    assert!(decisions(&results)[0].0.contains("39.2 req/s per pod"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_no_cpu_figure_and_no_capacity_it_waits_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (cluster, kubeconfig) = cluster(dir.path()).await;
    let results = ramp(dir.path());
    let state = dir.path().join("state");
    let mut args = autoscale_args(&kubeconfig, &results, &state, &["--duration", "400ms"]);
    let at = args.iter().position(|a| a == "--capacity").unwrap();
    args.drain(at..at + 2);
    assert_eq!(resil::run(Cli::parse_from(args)).await, resil::Exit::Ok);
    // Only the restore, to the value it already had.
    assert_eq!(cluster.patches(), [1]);
    assert_eq!(cluster.min(), 1);
    assert!(Journal::new(&state).open_entries().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_predictive_it_refuses_and_touches_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (cluster, kubeconfig) = cluster(dir.path()).await;
    let results = ramp(dir.path());
    let state = dir.path().join("state");
    let args: Vec<String> = autoscale_args(&kubeconfig, &results, &state, &[])
        .into_iter()
        .filter(|a| a != "--predictive")
        .collect();
    assert_eq!(resil::run(Cli::parse_from(args)).await, resil::Exit::Error);
    assert!(cluster.patches().is_empty());
    assert!(Journal::new(&state).entries().unwrap().is_empty());
}

/// Runs the real binary until its first patch lands, then SIGKILLs it.
async fn kill_after_first_patch(args: &[String], cluster: &Cluster) {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_resil"))
        .args(&args[1..])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    for _ in 0..200 {
        if !cluster.patches().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(cluster.patches(), [23], "killed before any restore");
    assert_eq!(cluster.min(), 23);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_restores_min_replicas_and_exits_130() {
    let dir = tempfile::tempdir().unwrap();
    let (cluster, kubeconfig) = cluster(dir.path()).await;
    let results = ramp(dir.path());
    let state = dir.path().join("state");
    let args = autoscale_args(&kubeconfig, &results, &state, &["--duration", "60s"]);
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_resil"))
        .args(&args[1..])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    for _ in 0..200 {
        if !cluster.patches().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert_eq!(status.code(), Some(130));
    assert_eq!(cluster.patches(), [23, 1]);
    assert!(Journal::new(&state).open_entries().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_sigkill_chaos_revert_restores_the_original_min_replicas() {
    let dir = tempfile::tempdir().unwrap();
    let (cluster, kubeconfig) = cluster(dir.path()).await;
    let results = ramp(dir.path());
    let state = dir.path().join("state");
    let args = autoscale_args(&kubeconfig, &results, &state, &["--duration", "60s"]);
    kill_after_first_patch(&args, &cluster).await;
    assert_eq!(Journal::new(&state).open_entries().unwrap().len(), 1);

    let revert = [
        "resil",
        "--kubeconfig",
        kubeconfig.to_str().unwrap(),
        "chaos",
        "revert",
        "--state-dir",
        state.to_str().unwrap(),
    ];
    assert_eq!(resil::run(Cli::parse_from(revert)).await, resil::Exit::Ok);
    assert_eq!(cluster.min(), 1);
    assert!(Journal::new(&state).open_entries().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_after_a_sigkill_adopts_the_journaled_original_not_the_raised_value() {
    let dir = tempfile::tempdir().unwrap();
    let (cluster, kubeconfig) = cluster(dir.path()).await;
    let results = ramp(dir.path());
    let state = dir.path().join("state");
    let args = autoscale_args(&kubeconfig, &results, &state, &["--duration", "60s"]);
    kill_after_first_patch(&args, &cluster).await;

    let again = autoscale_args(&kubeconfig, &results, &state, &["--duration", "300ms"]);
    assert_eq!(resil::run(Cli::parse_from(again)).await, resil::Exit::Ok);
    assert_eq!(cluster.min(), 1, "the original, not the raised 23");
    let journal = Journal::new(&state);
    assert!(journal.open_entries().unwrap().is_empty());
    assert_eq!(journal.entries().unwrap().len(), 1, "one entry, adopted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_the_lab_api_min_replicas_is_raised_and_restored() {
    use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
    use k8s_openapi::api::core::v1::Namespace;
    use kube::api::{Api, PostParams};

    let (lab, client, lab_dir) = crate::support::start_lab().await;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": NS}})).unwrap();
    namespaces
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
    let hpas: Api<HorizontalPodAutoscaler> = Api::namespaced(client.clone(), NS);
    let mut hpa = hpa_object(1);
    hpa["metadata"] = json!({"name": "web-blue", "namespace": NS});
    hpa.as_object_mut().unwrap().remove("status");
    let hpa: HorizontalPodAutoscaler = serde_json::from_value(hpa).unwrap();
    hpas.create(&PostParams::default(), &hpa).await.unwrap();

    let kubeconfig = lab_dir.path().join("autoscale-kubeconfig");
    std::fs::write(&kubeconfig, lab.kubeconfig_yaml()).unwrap();
    let results = ramp(lab_dir.path());
    let state = lab_dir.path().join("journal");
    let args = autoscale_args(&kubeconfig, &results, &state, &["--duration", "300s"]);
    let run = tokio::spawn(resil::run(Cli::parse_from(args)));
    let mut raised = None;
    for _ in 0..100 {
        let min = hpas.get("web-blue").await.unwrap().spec.min_replicas;
        if min != Some(1) {
            raised = min;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(raised, Some(23));
    run.abort();
    let _ = run.await;
    // Aborted mid-run, like a SIGKILL: the journal still restores it.
    let revert = [
        "resil",
        "--kubeconfig",
        kubeconfig.to_str().unwrap(),
        "chaos",
        "revert",
        "--state-dir",
        state.to_str().unwrap(),
    ];
    assert_eq!(resil::run(Cli::parse_from(revert)).await, resil::Exit::Ok);
    assert_eq!(
        hpas.get("web-blue").await.unwrap().spec.min_replicas,
        Some(1)
    );
    lab.shutdown().await;
}

/// Requests/s of the paused-clock workload at second `t`: 20 for a minute, a 50-second ramp
/// of +2 req/s per second to 120, then flat.
fn ramp_demand(t: u64) -> u64 {
    match t {
        0..60 => 20,
        60..110 => 20 + 2 * (t - 60),
        _ => 120,
    }
}

#[tokio::test(start_paused = true)]
async fn under_a_paused_clock_min_replicas_is_raised_ahead_of_a_ramp_and_never_chases_a_flat_load()
{
    use resil::autoscale::forecast::Smoothing;
    use resil::autoscale::source::Demand;
    use resil::autoscale::{Controller, Ended, Settings, drive};

    let dir = tempfile::tempdir().unwrap();
    // The stand-in called in-process: no socket, so the paused clock is the only clock.
    let (cluster, app) = stand_in(hpa_object(1));
    let scope = Scope {
        client: kube::Client::new(app, NS),
        namespace: NS.to_string(),
    };
    let settings = Settings {
        namespace: NS.to_string(),
        context: "kind-stand-in".to_string(),
        hpa: "web-blue".to_string(),
        headroom: 0.0,
        look_ahead: Duration::from_secs(30),
        max_replicas: None,
        budget_per_hour: None,
        pricing: PricingProfile::default_profile(),
        smoothing: Smoothing {
            step_s: 5.0,
            ..Smoothing::default()
        },
        period: None,
        capacity: Some(10.0),
    };
    let run = RunDir::create(dir.path().join("results")).unwrap();
    let mut controller = Controller::start(
        scope,
        settings,
        Journal::new(&dir.path().join("state")),
        Demand::timeline(run.clone()),
        Some(run.clone()),
    )
    .await
    .unwrap();
    let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
    let shutdown = CancellationToken::new();
    let driver = tokio::spawn(async move {
        let ended = drive(
            &mut controller,
            Duration::from_secs(5),
            Some(Duration::from_millis(150_500)),
            &shutdown,
            &tx,
        )
        .await;
        (controller, ended)
    });

    // One load bucket per simulated second; the HPA's floor read after each.
    let base: DateTime<Utc> = "2026-01-01T00:00:00Z".parse().unwrap();
    let mut timeline = run.timeline().unwrap();
    let mut floor = Vec::new();
    for t in 0..150u64 {
        timeline
            .append(&load_bucket(base, t, ramp_demand(t)))
            .unwrap();
        tokio::time::sleep(Duration::from_secs(1)).await;
        floor.push(cluster.min());
    }
    let (controller, ended) = driver.await.unwrap();
    assert_eq!(ended.unwrap(), Ended::Elapsed);
    // floor[i] is minReplicas at second i + 1; one pod serves 10 req/s, no headroom.
    let need = |t: u64| ramp_demand(t).div_ceil(10) as i64;
    assert!(
        floor[5..60].iter().all(|&m| m == 2),
        "a flat 20 req/s holds minReplicas at 2: {floor:?}"
    );
    for i in 70..150 {
        assert!(
            floor[i] >= need(i as u64 + 1),
            "from 10 s into the ramp the floor covers demand; at {}s {} < {}: {floor:?}",
            i + 1,
            floor[i],
            need(i as u64 + 1)
        );
    }
    let plateau_covered = floor.iter().position(|&m| m >= need(110)).unwrap() as u64 + 1;
    assert!(
        plateau_covered + 10 <= 110,
        "the plateau's {} pods are there at {plateau_covered}s, at least 10 s before demand \
         reaches it at 110s: {floor:?}",
        need(110)
    );
    assert!(
        floor.iter().all(|&m| m <= 2 * need(110)),
        "the trend's overshoot after the ramp stays bounded: {floor:?}"
    );
    let moves = decisions(run.path())
        .into_iter()
        .filter(|(_, action)| action.starts_with("raise") || action.starts_with("lower"))
        .count();
    assert_eq!(moves, cluster.patches().len(), "every patch is explained");

    assert_eq!(controller.restore().await.unwrap(), 1);
    assert_eq!(cluster.min(), 1);
    let journal = Journal::new(&dir.path().join("state"));
    assert!(journal.open_entries().unwrap().is_empty());
}
