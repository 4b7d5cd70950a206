//! Every command ends quietly on a closed stdout (`resil lab status | head -1`): exit 0,
//! nothing on stderr. Runs the real binary with its stdout on a pipe whose reading end
//! was closed before it started, so its first write already fails with EPIPE.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support;

/// `resil ARGS` with a private HOME, its stdout on a closed pipe: the exit code and
/// stderr.
fn with_closed_stdout(home: &Path, args: &[&str]) -> (Option<i32>, String) {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let mut child = Command::new(env!("CARGO_BIN_EXE_resil"))
        .args(args)
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join(".config"))
        .env("XDG_STATE_HOME", home.join(".state"))
        .env_remove("KUBECONFIG")
        .env_remove("RESIL_LAB_STATE_DIR")
        .env("RUST_LOG", "off")
        .stdin(Stdio::null())
        .stdout(writer)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        assert!(std::time::Instant::now() < deadline, "resil {args:?} hangs");
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn assert_quiet(what: &str, (code, stderr): (Option<i32>, String)) {
    assert_eq!(code, Some(0), "{what}: {stderr}");
    assert!(stderr.is_empty(), "{what} printed on stderr: {stderr}");
}

#[test]
fn completions_cost_and_report_end_quietly_on_a_closed_stdout() {
    let home = tempfile::tempdir().unwrap();
    let run = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/results/failover");
    let run = run.to_str().unwrap();
    for args in [
        vec!["completions", "bash"],
        vec!["cost"],
        vec!["report", run, "-o", "table"],
        vec!["report", run, "-o", "json"],
    ] {
        assert_quiet(&args.join(" "), with_closed_stdout(home.path(), &args));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_ends_quietly_on_a_closed_stdout() {
    let (lab, _client, _state) = support::start_api_only_lab().await;
    let home = tempfile::tempdir().unwrap();
    let kubeconfig = home.path().join("kubeconfig");
    std::fs::write(&kubeconfig, lab.kubeconfig_yaml()).unwrap();
    let kc = kubeconfig.to_str().unwrap().to_string();
    let home_dir = home.path().to_path_buf();
    let result = tokio::task::spawn_blocking(move || {
        with_closed_stdout(&home_dir, &["--kubeconfig", &kc, "status"])
    })
    .await
    .unwrap();
    assert_quiet("status", result);
    lab.shutdown().await;
}

/// Stops the lab a test started, also when an assertion failed.
struct LabDown<'a> {
    home: &'a Path,
    state: String,
}

impl Drop for LabDown<'_> {
    fn drop(&mut self) {
        let _ = Command::new(env!("CARGO_BIN_EXE_resil"))
            .args(["lab", "--state-dir", &self.state, "down"])
            .env("HOME", self.home)
            .env("KUBECONFIG", self.home.join("kubeconfig"))
            .stdin(Stdio::null())
            .output();
    }
}

#[test]
fn lab_status_ends_quietly_on_a_closed_stdout() {
    let home = tempfile::tempdir().unwrap();
    let state = home.path().join("lab");
    let state = state.to_str().unwrap().to_string();
    let kubeconfig = home.path().join("kubeconfig");
    let up = Command::new(env!("CARGO_BIN_EXE_resil"))
        .args(["lab", "--state-dir", &state, "up", "--port", "0"])
        .env("HOME", home.path())
        .env("KUBECONFIG", &kubeconfig)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let _down = LabDown {
        home: home.path(),
        state: state.clone(),
    };
    assert_eq!(
        up.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&up.stderr)
    );
    let result = with_closed_stdout(home.path(), &["lab", "--state-dir", &state, "status"]);
    assert_quiet("lab status", result);
}
