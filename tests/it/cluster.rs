//! Cluster access from the user's side: kubeconfig and context errors, the safety guard,
//! unreachable API servers. These run the real binary with a private HOME and
//! XDG_CONFIG_HOME so no test sees the machine's kubeconfig or config file.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::Duration;

use assert_cmd::Command;

/// A kubeconfig with a lab-looking context and `prod-eu`, both pointing at `server`.
fn kubeconfig(dir: &Path, server: &str, current: &str) -> PathBuf {
    let path = dir.join("kubeconfig");
    std::fs::write(
        &path,
        format!(
            r#"apiVersion: v1
kind: Config
current-context: {current}
clusters:
  - name: c
    cluster: {{ server: "{server}" }}
users:
  - name: u
    user: {{ token: abc }}
contexts:
  - name: kind-resil
    context: {{ cluster: c, user: u }}
  - name: prod-eu
    context: {{ cluster: c, user: u }}
  - name: resil-lab
    context: {{ cluster: c, user: u }}
"#
        ),
    )
    .unwrap();
    path
}

/// The binary with an empty HOME and config dir, no KUBECONFIG, no colour.
pub(crate) fn resil(home: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_resil"));
    cmd.env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join(".config"))
        .env_remove("KUBECONFIG")
        .env("NO_COLOR", "1")
        .env("RUST_LOG", "off")
        .timeout(Duration::from_secs(60));
    cmd
}

/// A listener nobody answers on, to tell whether resil connected at all.
pub(crate) struct Silent {
    listener: TcpListener,
}

impl Silent {
    pub(crate) fn new() -> Silent {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        Silent { listener }
    }

    pub(crate) fn url(&self) -> String {
        format!("https://{}", self.listener.local_addr().unwrap())
    }

    /// Whether anything has connected.
    pub(crate) fn was_contacted(&self) -> bool {
        self.listener.accept().is_ok()
    }
}

/// A port with nothing listening.
fn closed_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("https://{addr}")
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn deploy_to_prod_eu_is_refused_before_any_request() {
    let home = tempfile::tempdir().unwrap();
    let server = Silent::new();
    let kc = kubeconfig(home.path(), &server.url(), "prod-eu");
    let out = resil(home.path())
        .args(["--kubeconfig", kc.to_str().unwrap(), "deploy"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("refusing to change context `prod-eu`"),
        "{err}"
    );
    assert!(err.contains("--allow-context prod-eu"), "{err}");
    assert!(
        !server.was_contacted(),
        "the guard must act before connecting"
    );
}

#[test]
fn undeploy_to_prod_eu_is_refused_too() {
    let home = tempfile::tempdir().unwrap();
    let kc = kubeconfig(home.path(), &closed_url(), "kind-resil");
    let out = resil(home.path())
        .args([
            "--kubeconfig",
            kc.to_str().unwrap(),
            "--context",
            "prod-eu",
            "undeploy",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("refusing"), "{}", stderr(&out));
}

#[test]
fn allow_context_lets_prod_eu_past_the_guard() {
    let home = tempfile::tempdir().unwrap();
    let kc = kubeconfig(home.path(), &closed_url(), "prod-eu");
    let out = resil(home.path())
        .args([
            "--kubeconfig",
            kc.to_str().unwrap(),
            "--allow-context",
            "prod-eu",
            "deploy",
        ])
        .output()
        .unwrap();
    // Past the guard, the next hurdle is the (closed) server.
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(!err.contains("refusing"), "{err}");
    assert!(err.contains("cannot reach the API server"), "{err}");
}

#[test]
fn the_config_file_allow_list_lets_prod_eu_past_the_guard() {
    let home = tempfile::tempdir().unwrap();
    let config_dir = home.path().join(".config/resil");
    std::fs::create_dir_all(&config_dir).unwrap();
    std::fs::write(
        config_dir.join("config.yaml"),
        "allow_contexts: [prod-eu]\n",
    )
    .unwrap();
    let kc = kubeconfig(home.path(), &closed_url(), "prod-eu");
    let out = resil(home.path())
        .args(["--kubeconfig", kc.to_str().unwrap(), "deploy"])
        .output()
        .unwrap();
    let err = stderr(&out);
    assert!(!err.contains("refusing"), "{err}");
    assert!(err.contains("cannot reach the API server"), "{err}");
}

#[test]
fn status_is_read_only_and_not_guarded() {
    let home = tempfile::tempdir().unwrap();
    let kc = kubeconfig(home.path(), &closed_url(), "prod-eu");
    let out = resil(home.path())
        .args(["--kubeconfig", kc.to_str().unwrap(), "status"])
        .output()
        .unwrap();
    let err = stderr(&out);
    assert!(!err.contains("refusing"), "{err}");
    assert!(err.contains("cannot reach"), "{err}");
}

#[test]
fn an_unknown_context_is_named_with_the_known_ones() {
    let home = tempfile::tempdir().unwrap();
    let kc = kubeconfig(home.path(), &closed_url(), "kind-resil");
    let out = resil(home.path())
        .args([
            "--kubeconfig",
            kc.to_str().unwrap(),
            "--context",
            "staging",
            "status",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("`staging`"), "{err}");
    assert!(err.contains("kind-resil, prod-eu, resil-lab"), "{err}");
}

#[test]
fn a_kubeconfig_that_does_not_parse_is_named() {
    let home = tempfile::tempdir().unwrap();
    let kc = home.path().join("broken");
    std::fs::write(&kc, "clusters: [ {server: \n").unwrap();
    let out = resil(home.path())
        .args(["--kubeconfig", kc.to_str().unwrap(), "status"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains(&kc.display().to_string()), "{err}");
    assert!(err.lines().count() <= 2, "one paragraph, not a dump: {err}");
}

#[test]
fn an_unreachable_lab_suggests_lab_up_and_names_the_server() {
    let home = tempfile::tempdir().unwrap();
    let url = closed_url();
    let kc = kubeconfig(home.path(), &url, "resil-lab");
    let out = resil(home.path())
        .args(["--kubeconfig", kc.to_str().unwrap(), "deploy"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains(&url), "{err}");
    assert!(err.contains("resil lab up"), "{err}");
}

#[test]
fn no_kubeconfig_at_all_suggests_the_lab() {
    let home = tempfile::tempdir().unwrap();
    let out = resil(home.path()).args(["deploy"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("no kubeconfig found"), "{err}");
    assert!(err.contains("resil lab up"), "{err}");
}

#[test]
fn kubeconfig_env_is_honoured() {
    let home = tempfile::tempdir().unwrap();
    let kc = kubeconfig(home.path(), &closed_url(), "prod-eu");
    let out = resil(home.path())
        .env("KUBECONFIG", &kc)
        .args(["deploy"])
        .output()
        .unwrap();
    assert!(stderr(&out).contains("`prod-eu`"), "{}", stderr(&out));
}

/// A kubeconfig whose only context `context` points at `server`.
fn one_context(dir: &Path, context: &str, server: &str) -> PathBuf {
    let path = dir.join(format!("{context}.kubeconfig"));
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: {context}\nclusters: [{{name: c, \
             cluster: {{server: \"{server}\"}}}}]\nusers: [{{name: u, user: {{token: t}}}}]\n\
             contexts: [{{name: {context}, context: {{cluster: c, user: u}}}}]\n"
        ),
    )
    .unwrap();
    path
}

#[test]
fn a_kind_named_context_on_a_remote_server_is_refused_before_any_request() {
    let home = tempfile::tempdir().unwrap();
    // TEST-NET-3: never routed. The guard must refuse on the kubeconfig alone.
    // Not loopback, and never resolvable: a broken guard fails at a DNS lookup and sends
    // nothing anywhere.
    let server = "https://kind-prod.invalid:6443";
    let kc = one_context(home.path(), "kind-prod", server);
    let kc = kc.to_str().unwrap();
    let state = home.path().join("chaos");
    let state = state.to_str().unwrap();
    for args in [
        vec!["deploy"],
        vec!["undeploy"],
        vec!["chaos", "outage", "--color", "blue", "--duration", "5s"],
        vec!["chaos", "latency", "--delay", "100ms", "--duration", "5s"],
        vec!["chaos", "kill-pods", "--color", "blue"],
    ] {
        let mut argv = vec!["--kubeconfig", kc];
        argv.extend(&args);
        if args[0] == "chaos" {
            argv.extend(["--state-dir", state]);
        }
        let started = std::time::Instant::now();
        let out = resil(home.path()).args(&argv).output().unwrap();
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains("refusing to change context `kind-prod`"),
            "{args:?}: {err}"
        );
        assert!(err.contains(server), "{args:?}: {err}");
        assert!(err.contains("--allow-context kind-prod"), "{args:?}: {err}");
        // Refused on the kubeconfig, not after a connection attempt timed out.
        assert!(started.elapsed() < Duration::from_secs(4), "{args:?}");
    }
}

#[test]
fn chaos_revert_is_guarded_before_any_request_and_the_entry_stays_open() {
    use resil::chaos::journal::{Entry, Journal, Undo};
    let home = tempfile::tempdir().unwrap();
    let server = Silent::new();
    let kc = one_context(home.path(), "prod-eu", &server.url());
    let state = home.path().join("chaos");
    let journal = Journal::new(&state);
    journal
        .record(&Entry {
            id: "outage-1".to_string(),
            action: "outage".to_string(),
            context: "prod-eu".to_string(),
            namespace: "distributed-resilience".to_string(),
            targets: vec!["deployment/web-blue".to_string()],
            detail: "web-blue scaled 2 → 0".to_string(),
            injected_at: chrono::Utc::now(),
            revert_at: None,
            undo: Undo::Replicas {
                deployment: "web-blue".to_string(),
                replicas: 2,
                injected: Some(0),
            },
            reverted_at: None,
        })
        .unwrap();
    let out = resil(home.path())
        .args(["--kubeconfig", kc.to_str().unwrap(), "chaos", "revert"])
        .arg("--state-dir")
        .arg(&state)
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("refusing to change context `prod-eu`"),
        "{err}"
    );
    assert!(
        !server.was_contacted(),
        "the guard must act before connecting"
    );
    assert_eq!(journal.open_entries().unwrap().len(), 1, "still owed");
}
