//! `resil run scenarios/multi-region-failover.yaml`, the README's multi-region job, through
//! the real binary at a short time scale: it starts two named labs as regions, puts the
//! gateway in front and the replicator between them, powers region-a off under a load
//! with writes, and judges RTO and RPO — asynchronous and synchronous replication side by
//! side. The figures asserted are what the run measured: the gateway failed over and
//! back, clients recovered within the SLO, synchronous replication lost no acknowledged
//! write, and the side-by-side table carries both RPOs.
//!
//! The binary runs with a private HOME and kubeconfig (its labs' state, contexts and chaos
//! journal live there); the labs are stopped at the end, passed or not.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

use crate::run_infra::report_json;

/// A private home for the binary; dropping it stops every lab started there.
struct Home {
    _tmp: tempfile::TempDir,
    root: PathBuf,
}

impl Home {
    fn new() -> Home {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_path_buf();
        std::fs::create_dir_all(root.join("home")).unwrap();
        Home { _tmp: tmp, root }
    }

    fn resil(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_resil"));
        cmd.args(args)
            .env("HOME", self.root.join("home"))
            .env("KUBECONFIG", self.root.join("kubeconfig"))
            .env("NO_COLOR", "1")
            .env_remove("XDG_STATE_HOME")
            .env_remove("RESIL_LAB_STATE_DIR")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null());
        cmd
    }
}

impl Drop for Home {
    fn drop(&mut self) {
        let _ = self.resil(&["lab", "down", "--all"]).output();
    }
}

fn explain(out: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The run directory of `variant` under `out`.
fn run_dir(out: &Path, variant: &str) -> PathBuf {
    // `<timestamp>-<scenario>-<variant>`.
    let suffix = format!("-multi-region-failover-{variant}");
    std::fs::read_dir(out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().ends_with(&suffix))
        })
        .unwrap_or_else(|| panic!("no run directory *{suffix} under {}", out.display()))
}

#[test]
fn the_multi_region_scenario_fails_over_and_back_and_measures_rto_and_rpo_per_replication() {
    // Scenarios push real load: one at a time (as `run.rs` does).
    let lock =
        std::fs::File::create(std::env::temp_dir().join("resil-test-scenarios.lock")).unwrap();
    lock.lock().unwrap();
    let home = Home::new();
    let out = home.root.join("results");
    let scenario =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/multi-region-failover.yaml");
    let ran = home
        .resil(&["run", "--time-scale", "0.25", "--out"])
        .arg(&out)
        .arg(&scenario)
        .output()
        .unwrap();
    let said = explain(&ran);
    let stderr = String::from_utf8_lossy(&ran.stderr);
    assert_eq!(ran.status.code(), Some(0), "{said}");
    // Both variants: the gateway moved traffic to region-b and back, and said why.
    for line in [
        "gateway: failover region-a → region-b",
        "gateway: failback region-b → region-a",
    ] {
        assert_eq!(stderr.matches(line).count(), 2, "{line:?}:\n{said}");
    }
    assert!(
        stderr.contains("replication asynchronous, lag 500ms"),
        "{said}"
    );
    assert!(stderr.contains("replication synchronous"), "{said}");

    let (async_run, sync_run) = (
        report_json(&run_dir(&out, "async")),
        report_json(&run_dir(&out, "sync")),
    );
    for (name, report) in [("async", &async_run), ("sync", &sync_run)] {
        // One fault, region-a's outage, recovered from within the RTO SLO.
        let recovery = &report["recovery"][0];
        assert_eq!(recovery["action"], "region-outage", "{name}: {recovery:#}");
        let rto = recovery["rto_ms"].as_u64().unwrap_or(0);
        assert!(
            recovery["recovered"] == true && rto < 1_000,
            "{name}: {recovery:#}"
        );
        let control = recovery["control_plane"].to_string();
        assert!(control.contains("gateway: failover"), "{name}: {control}");
        // The load is counted per region that served it: both did, around the outage.
        let regions = &report["load"]["by_region"];
        for region in ["region-a", "region-b"] {
            let served = regions
                .as_array()
                .unwrap()
                .iter()
                .find(|r| r["region"] == region)
                .map_or(0, |r| r["requests"].as_u64().unwrap());
            assert!(served > 0, "{name}: {region}: {regions:#}");
        }
        let writes = &report["writes"];
        assert!(
            writes["acknowledged"].as_u64().unwrap() > 100,
            "{name}: {writes:#}"
        );
        assert_eq!(writes["wrong_value"], 0, "{name}: {writes:#}");
        assert_eq!(writes["acked_twice"], 0, "{name}: {writes:#}");
        let from = writes["verify_url"].as_str().unwrap();
        assert!(from.contains(":32180") && from.contains(":32181"), "{from}");
    }
    // Synchronous replication: nothing acknowledged is lost.
    assert_eq!(sync_run["writes"]["lost"], 0, "{:#}", sync_run["writes"]);
    // Asynchronous: what region-a had not copied yet is gone, and no more than about
    // the lag's worth (50 writes/s × 0.5 s; the SLO allows 100).
    let lost = async_run["writes"]["lost"].as_u64().unwrap();
    assert!((1..100).contains(&lost), "{:#}", async_run["writes"]);

    // The side-by-side table puts both RPOs and RTOs next to each other.
    let comparison: Value = serde_json::from_slice(
        &std::fs::read(run_dir(&out, "sync").join("comparison.json")).unwrap(),
    )
    .unwrap();
    let row = |metric: &str| {
        comparison["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["metric"] == metric)
            .unwrap_or_else(|| panic!("no {metric} row: {comparison:#}"))["values"]
            .clone()
    };
    assert_eq!(row("writes_lost"), serde_json::json!([lost as f64, 0.0]));
    assert!(row("rto_max")[0].as_f64().unwrap() < 1_000.0);
    let printed = String::from_utf8_lossy(&ran.stdout);
    assert!(printed.contains("writes_lost"), "{said}");
}
