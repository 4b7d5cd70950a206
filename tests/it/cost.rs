//! `resil cost` through the real binary: the default table to the cent (the hand
//! calculation of cost/cost_assumptions.md), JSON figures, pricing files, request flags,
//! and an unknown baseline.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

fn cost(args: &[&str], cwd: &Path) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_resil"))
        .arg("cost")
        .args(args)
        .current_dir(cwd)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn monthly(json: &str) -> Vec<(String, f64, f64)> {
    let v: Value = serde_json::from_str(json).unwrap();
    v["scenarios"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["scenario"].as_str().unwrap().to_string(),
                s["monthly_cost"].as_f64().unwrap(),
                s["savings"].as_f64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn cost_default_table_matches_the_hand_calculation() {
    // An empty working directory: no manifests/, so the demo pod (100m, 128Mi) is priced.
    let cwd = tempfile::tempdir().unwrap();
    let (code, out, err) = cost(&[], cwd.path());
    assert_eq!(code, 0, "{err}");
    super::report::check_golden("cost-default.table.txt", &out);
    let (code, json, _) = cost(&["-o", "json"], cwd.path());
    assert_eq!(code, 0);
    assert_eq!(
        monthly(&json),
        vec![
            ("blue".to_string(), 8.76, 8.76),
            ("blue-green".to_string(), 17.52, 0.0),
            ("peak".to_string(), 11.68, 5.84),
            ("scale-to-zero".to_string(), 5.84, 11.68),
        ]
    );
}

#[test]
fn cost_savings_follow_the_chosen_baseline_and_an_unknown_one_exits_2() {
    let cwd = tempfile::tempdir().unwrap();
    let (_, json, _) = cost(&["--baseline", "blue", "-o", "json"], cwd.path());
    let rows = monthly(&json);
    assert_eq!(rows[1], ("blue-green".to_string(), 17.52, -8.76));
    assert_eq!(rows[3], ("scale-to-zero".to_string(), 5.84, 2.92));
    let (code, out, err) = cost(&["--baseline", "purple"], cwd.path());
    assert_eq!(code, 2);
    assert!(out.is_empty());
    assert!(
        err.contains("blue, blue-green, peak, scale-to-zero"),
        "{err}"
    );
}

#[test]
fn cost_prices_flags_builtin_profiles_and_profile_files() {
    let cwd = tempfile::tempdir().unwrap();
    // 250m × $0.12 = $0.03 per pod-hour; blue = 730 × 0.03 = $21.90.
    let (_, json, _) = cost(&["--cpu-request", "250m", "-o", "json"], cwd.path());
    assert_eq!(monthly(&json)[0].1, 21.90);
    // fargate-like: (0.1 × 0.04048 + 0.125 × 0.004445) × 730 = $3.36.
    let (_, json, _) = cost(&["--pricing", "fargate-like", "-o", "json"], cwd.path());
    assert_eq!(monthly(&json)[0].1, 3.36);
    // A file: $1 per vCPU-hour, 720 h, 30 days; 1 vCPU pod: blue $720, peak 720 + 4 × 3 × 30.
    std::fs::write(
        cwd.path().join("mine.yaml"),
        "name: mine\nprice_per_vcpu_hour: 1\nhours_per_month: 720\ndays_per_month: 30\npeak_hours_per_day: 3\noff_hours_per_day: 12\n",
    )
    .unwrap();
    let (code, json, err) = cost(
        &[
            "--pricing",
            "mine.yaml",
            "--cpu-request",
            "1",
            "--memory-request",
            "1Gi",
            "-o",
            "json",
        ],
        cwd.path(),
    );
    assert_eq!(code, 0, "{err}");
    let rows = monthly(&json);
    assert_eq!(rows[0].1, 720.0);
    assert_eq!(rows[2].1, 1080.0);
    assert_eq!(rows[3].1, 360.0);
    let (code, _, err) = cost(&["--pricing", "nowhere.yaml"], cwd.path());
    assert_eq!(code, 2);
    assert!(
        err.contains("default, fargate-like, autopilot-like, spot-like"),
        "{err}"
    );
}

#[test]
fn cost_reads_the_web_containers_requests_from_manifests() {
    let cwd = tempfile::tempdir().unwrap();
    std::fs::create_dir(cwd.path().join("manifests")).unwrap();
    std::fs::write(
        cwd.path().join("manifests/deployment-blue.yaml"),
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web-blue}\nspec:\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n    spec:\n      containers:\n      - name: web\n        image: resil-demo\n        resources: {requests: {cpu: 200m, memory: 64Mi}}\n",
    )
    .unwrap();
    let (code, json, err) = cost(&["-o", "json"], cwd.path());
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["pod_requests"]["cpu_millis"], 200);
    assert!(
        v["pod_requests_source"]
            .as_str()
            .unwrap()
            .ends_with("deployment-blue.yaml")
    );
    // 200m × $0.12 × 730 = $17.52.
    assert_eq!(monthly(&json)[0].1, 17.52);
}
