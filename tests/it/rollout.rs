//! `resil rollout` through the real binary: bad input (an analysis it cannot read, an
//! unknown colour, no cluster) exits 2 with a clear message before anything changes; on
//! an in-process lab running the demo, a bad release judged by `--analysis` is rolled
//! back to the previous revision and the command exits 1, leaving a results directory
//! whose report shows the rollback; a good one rolls out and exits 0.

use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::Api;
use resil_lab::{Lab, LabConfig};
use tempfile::TempDir;

use crate::support;

/// `resil ARGS` with a private HOME and `kubeconfig` (bounded at 120 s): exit code,
/// stdout, stderr.
async fn resil(
    home: &std::path::Path,
    kubeconfig: &std::path::Path,
    args: &[&str],
) -> (Option<i32>, String, String) {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_resil"));
    cmd.arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .current_dir(home)
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join(".config"))
        .env("XDG_STATE_HOME", home.join("state"))
        .env_remove("KUBECONFIG")
        .env("NO_COLOR", "1")
        .env("RUST_LOG", "off")
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(120), cmd.output())
        .await
        .unwrap_or_else(|_| panic!("resil {args:?} did not finish within 120 s"))
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn bad_input_exits_2_with_a_clear_message_before_touching_a_cluster() {
    let home = TempDir::new().unwrap();
    let nowhere = home.path().join("no-such-kubeconfig");
    let cases: [(&[&str], &str); 4] = [
        (
            &["rollout", "--color", "purple", "--version", "v2"],
            "purple",
        ),
        (
            &[
                "rollout",
                "--color",
                "blue",
                "--version",
                "v2",
                "--analysis",
                "latency<1s",
            ],
            "unknown key \"latency\"",
        ),
        (&["rollout", "--color", "blue"], "nothing to roll out"),
        (
            &["rollout", "--color", "blue", "--version", "v2"],
            "kubeconfig",
        ),
    ];
    for (args, says) in cases {
        let (code, _, err) = resil(home.path(), &nowhere, args).await;
        assert_eq!(code, Some(2), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?} should say {says:?}: {err}");
    }
}

/// An in-process lab running the demo (deployed by `resil deploy` on a free NodePort).
struct DemoLab {
    lab: Lab,
    client: kube::Client,
    home: TempDir,
    kubeconfig: PathBuf,
    _state: TempDir,
}

impl DemoLab {
    async fn start() -> DemoLab {
        let state = TempDir::new().unwrap();
        let mut config = LabConfig::new(state.path());
        config.pod_program = PathBuf::from(env!("CARGO_BIN_EXE_resil"));
        let lab = Lab::start(config).await.expect("lab starts");
        let home = TempDir::new().unwrap();
        let kubeconfig = home.path().join("kubeconfig");
        std::fs::write(&kubeconfig, lab.kubeconfig_yaml()).unwrap();
        let manifests = home.path().join("manifests");
        support::manifests_on_a_free_node_port(&manifests);
        let client = support::client_for(&lab).await;
        let env = DemoLab {
            lab,
            client,
            home,
            kubeconfig,
            _state: state,
        };
        let manifests = manifests.to_string_lossy().into_owned();
        let (code, out, err) = env
            .resil(&["deploy", "--replicas", "3", "--manifests", &manifests])
            .await;
        assert_eq!(code, Some(0), "resil deploy:\n{out}\n{err}");
        env
    }

    async fn resil(&self, args: &[&str]) -> (Option<i32>, String, String) {
        let mut all = vec!["--context", "resil-lab"];
        all.extend_from_slice(args);
        resil(self.home.path(), &self.kubeconfig, &all).await
    }

    async fn blue_version(&self) -> String {
        let blue = Api::<Deployment>::namespaced(self.client.clone(), "distributed-resilience")
            .get("web-blue")
            .await
            .unwrap();
        let env = blue.spec.template.spec.unwrap().containers[0]
            .env
            .clone()
            .unwrap_or_default();
        let version = env.into_iter().find(|e| e.name == "VERSION");
        version.and_then(|e| e.value).unwrap_or_default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_release_is_rolled_back_and_exits_1_a_good_one_rolls_out() {
    let env = DemoLab::start().await;
    let judged = [
        "--analysis",
        "error_rate<1%",
        "--interval",
        "1s",
        "--rate",
        "100",
        "--max-unavailable",
        "0",
    ];
    let mut bad = vec!["rollout", "--color", "blue", "--version", "v2-bad"];
    bad.extend_from_slice(&judged);
    let (code, out, err) = env.resil(&bad).await;
    assert_eq!(code, Some(1), "{out}\n{err}");
    assert!(err.contains("BREACH (error_rate<1%"), "{err}");
    assert!(out.contains("rolled back to revision 1"), "{out}");
    assert_eq!(env.blue_version().await, "v1");
    let dir = out
        .lines()
        .find_map(|l| l.strip_prefix("results: "))
        .and_then(|l| l.split(' ').next())
        .expect("the results directory is named");
    let (code, report, _) = env.resil(&["report", dir]).await;
    assert_eq!(code, Some(0), "{report}");
    assert!(
        report.contains("web-blue ROLLED BACK: interval"),
        "{report}"
    );

    let mut good = vec!["rollout", "--color", "blue", "--version", "v2"];
    good.extend_from_slice(&judged);
    let (code, out, err) = env.resil(&good).await;
    assert_eq!(code, Some(0), "{out}\n{err}");
    assert!(out.contains("rolled out: revision 4"), "{out}");
    assert!(out.contains(" 0 errors"), "{out}");
    assert_eq!(env.blue_version().await, "v2");
    env.lab.shutdown().await;
}
