//! `resil lab up | down | status | kubeconfig` through the real binary, each test with its
//! own state directory, HOME and KUBECONFIG: exit codes, messages, the kubeconfig context,
//! and that `down` leaves no process behind.

use std::fs;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;

/// A private world for one test; stops any lab it started when dropped.
pub(crate) struct LabEnv {
    _tmp: tempfile::TempDir,
    pub(crate) root: PathBuf,
}

impl LabEnv {
    pub(crate) fn new() -> LabEnv {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_path_buf();
        fs::create_dir_all(root.join("home")).unwrap();
        LabEnv { _tmp: tmp, root }
    }

    pub(crate) fn state(&self) -> PathBuf {
        self.root.join("state")
    }

    pub(crate) fn kubeconfig(&self) -> PathBuf {
        self.root.join("kubeconfig")
    }

    pub(crate) fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_resil"));
        cmd.arg("lab")
            .arg("--state-dir")
            .arg(self.state())
            .args(args)
            .env("HOME", self.root.join("home"))
            .env("KUBECONFIG", self.kubeconfig())
            .env_remove("XDG_STATE_HOME")
            .env_remove("RESIL_LAB_STATE_DIR")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null());
        cmd
    }

    pub(crate) fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    pub(crate) fn lab_pid(&self) -> Option<u32> {
        fs::read_to_string(self.state().join("lab.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    fn kubeconfig_doc(&self) -> Value {
        serde_saphyr::from_str(&fs::read_to_string(self.kubeconfig()).unwrap()).unwrap()
    }
}

impl Drop for LabEnv {
    fn drop(&mut self) {
        // A failed assertion must not leave a lab running on the machine.
        if let Some(pid) = self.lab_pid()
            && alive(pid)
        {
            let _ = self.run(&["down"]);
        }
    }
}

pub(crate) fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Alive and not a zombie (a test's own child stays a zombie until it is waited for).
pub(crate) fn alive(pid: u32) -> bool {
    let exists = kill(Pid::from_raw(pid as i32), None).is_ok();
    let zombie = fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit_once(')')
            .is_some_and(|(_, r)| r.trim_start().starts_with('Z'))
    });
    exists && !zombie
}

pub(crate) fn wait_until(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let started = Instant::now();
    while started.elapsed() < limit {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    done()
}

const OTHER_CONTEXT: &str = "\
apiVersion: v1
kind: Config
clusters:
- name: kind-resil
  cluster:
    server: https://127.0.0.1:6443
users:
- name: kind-resil
  user:
    token: abc
contexts:
- name: kind-resil
  context:
    cluster: kind-resil
    user: kind-resil
current-context: kind-resil
";

fn context_names(doc: &Value) -> Vec<&str> {
    doc["contexts"]
        .as_array()
        .map(|items| items.iter().filter_map(|c| c["name"].as_str()).collect())
        .unwrap_or_default()
}

#[test]
fn status_without_a_lab_exits_2_and_says_how_to_start_it() {
    let env = LabEnv::new();
    let out = env.run(&["status"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("the lab is not running; start it with `resil lab up`"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn kubeconfig_without_a_lab_exits_2() {
    let env = LabEnv::new();
    let out = env.run(&["kubeconfig"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stdout(&out).is_empty());
    assert!(stderr(&out).contains("not running"), "{}", stderr(&out));
}

#[test]
fn down_without_a_lab_says_so_and_removes_a_stale_context_only() {
    let env = LabEnv::new();
    let stale = OTHER_CONTEXT.replace(
        "current-context: kind-resil\n",
        "- name: resil-lab\n  context: {cluster: resil-lab, user: resil-lab}\ncurrent-context: resil-lab\n",
    );
    fs::write(env.kubeconfig(), &stale).unwrap();
    let before: Value = serde_saphyr::from_str(&stale).unwrap();
    assert_eq!(context_names(&before), ["kind-resil", "resil-lab"]);

    let out = env.run(&["down"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("The lab is not running."),
        "{}",
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("Removed context \"resil-lab\""),
        "{}",
        stderr(&out)
    );
    let doc = env.kubeconfig_doc();
    assert_eq!(context_names(&doc), ["kind-resil"]);
    assert_eq!(doc["current-context"], "");
    assert_eq!(doc["users"][0]["user"]["token"], "abc");
}

#[test]
fn down_refuses_a_corrupt_kubeconfig_and_leaves_it_untouched() {
    let env = LabEnv::new();
    let corrupt = "contexts: [ {name: resil-lab\n";
    fs::write(env.kubeconfig(), corrupt).unwrap();
    let out = env.run(&["down"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains(&env.kubeconfig().display().to_string()),
        "{err}"
    );
    assert!(err.contains("left untouched"), "{err}");
    assert_eq!(fs::read_to_string(env.kubeconfig()).unwrap(), corrupt);
}

#[test]
fn a_pid_file_of_a_lab_long_gone_is_cleaned_up() {
    let env = LabEnv::new();
    let mut gone = Command::new("true").spawn().unwrap();
    let pid = gone.id();
    gone.wait().unwrap();
    fs::create_dir_all(env.state()).unwrap();
    fs::write(env.state().join("lab.pid"), format!("{pid}\n")).unwrap();
    fs::write(
        env.state().join("lab.json"),
        format!(r#"{{"pid":{pid},"address":"127.0.0.1:9","started_at":"2026-01-01T00:00:00Z"}}"#),
    )
    .unwrap();
    let out = env.run(&["status"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(!env.state().join("lab.pid").exists());
    assert!(!env.state().join("lab.json").exists());
}

#[cfg(target_os = "linux")]
#[test]
fn down_stops_pod_processes_a_killed_lab_left_behind() {
    let env = LabEnv::new();
    // Stands in for a pod process (`<program> demo-app`) whose lab died by SIGKILL.
    let mut pod: Child = Command::new("sh")
        .args([
            "-c",
            "for i in $(seq 1 300); do sleep 0.1; done",
            "demo-app",
        ])
        .spawn()
        .unwrap();
    // And an unrelated process whose pid a stale pods.json might name: left alone.
    let mut bystander: Child = Command::new("sleep").arg("30").spawn().unwrap();
    fs::create_dir_all(env.state()).unwrap();
    fs::write(
        env.state().join("pods.json"),
        format!(
            r#"{{"pods":[{{"pid":{},"pod":"demo/web-blue-1"}},{{"pid":{},"pod":"demo/gone"}}]}}"#,
            pod.id(),
            bystander.id()
        ),
    )
    .unwrap();

    let out = env.run(&["down"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stderr(&out).contains("demo/web-blue-1"), "{}", stderr(&out));
    assert!(!stderr(&out).contains("demo/gone"), "{}", stderr(&out));
    assert!(wait_until(Duration::from_secs(5), || !alive(pod.id())));
    pod.wait().unwrap();
    assert!(
        alive(bystander.id()),
        "a pid that is not a pod must not be signalled"
    );
    assert!(!env.state().join("pods.json").exists());
    bystander.kill().unwrap();
    bystander.wait().unwrap();
}

// ---------------------------------------------------------------- with a running lab

#[test]
fn up_second_up_status_down_status_is_the_whole_lifecycle() {
    let env = LabEnv::new();
    fs::write(env.kubeconfig(), OTHER_CONTEXT).unwrap();

    let out = env.run(&["up"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("Set kubectl context to \"resil-lab\""),
        "{}",
        stderr(&out)
    );
    let pid = env.lab_pid().expect("lab.pid after up");
    assert!(alive(pid));
    let doc = env.kubeconfig_doc();
    assert_eq!(context_names(&doc), ["kind-resil", "resil-lab"]);
    assert_eq!(doc["current-context"], "resil-lab");
    let info: Value =
        serde_json::from_str(&fs::read_to_string(env.state().join("lab.json")).unwrap()).unwrap();
    let address = info["address"].as_str().unwrap().to_string();
    assert!(address.starts_with("127.0.0.1:"), "{address}");
    assert_eq!(
        doc["clusters"][1]["cluster"]["server"],
        format!("https://{address}")
    );

    // The merged context really reaches the lab (when kubectl is installed).
    if let Ok(kubectl) = Command::new("kubectl")
        .args(["get", "namespaces", "-o", "name"])
        .env("KUBECONFIG", env.kubeconfig())
        .env("HOME", env.root.join("home"))
        .output()
    {
        assert!(kubectl.status.success(), "{}", stderr(&kubectl));
        assert!(stdout(&kubectl).contains("namespace/default"));
    }

    let again = env.run(&["up"]);
    assert_eq!(again.status.code(), Some(0), "{}", stderr(&again));
    assert!(
        stderr(&again).contains("already running"),
        "{}",
        stderr(&again)
    );
    assert_eq!(
        env.lab_pid(),
        Some(pid),
        "a second up must not start another lab"
    );

    let status = env.run(&["status"]);
    assert_eq!(status.status.code(), Some(0), "{}", stderr(&status));
    let text = stdout(&status);
    assert!(text.contains(&format!("pid:        {pid}")), "{text}");
    assert!(text.contains(&address), "{text}");
    assert!(text.contains("uptime:"), "{text}");
    assert!(text.contains("objects:"), "{text}");
    assert!(!text.contains("unavailable"), "{text}");
    assert!(text.contains("namespaces"), "{text}");

    let printed = env.run(&["kubeconfig"]);
    assert_eq!(printed.status.code(), Some(0));
    assert!(stdout(&printed).contains(&address));

    let down = env.run(&["down"]);
    assert_eq!(down.status.code(), Some(0), "{}", stderr(&down));
    assert!(stderr(&down).contains(&format!("Stopped the lab (pid {pid})")));
    assert!(!alive(pid), "down must leave no lab process");
    let doc = env.kubeconfig_doc();
    assert_eq!(context_names(&doc), ["kind-resil"]);
    assert_eq!(doc["current-context"], "");

    let after = env.run(&["status"]);
    assert_eq!(after.status.code(), Some(2));
    assert!(stderr(&after).contains("the lab is not running"));
}

#[test]
fn a_restarted_lab_keeps_its_port_so_the_context_stays_valid() {
    let env = LabEnv::new();
    let address = |env: &LabEnv| {
        let info: Value =
            serde_json::from_str(&fs::read_to_string(env.state().join("lab.json")).unwrap())
                .unwrap();
        info["address"].as_str().unwrap().to_string()
    };
    let out = env.run(&["up", "--no-kubeconfig"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        stdout(&out).trim(),
        env.state().join("kubeconfig").display().to_string()
    );
    assert!(
        !env.kubeconfig().exists(),
        "--no-kubeconfig must not write it"
    );
    let first = address(&env);
    assert_eq!(env.run(&["down"]).status.code(), Some(0));
    let out = env.run(&["up", "--no-kubeconfig"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(address(&env), first);
    assert_eq!(env.run(&["down"]).status.code(), Some(0));
}

#[test]
fn a_foreground_lab_stops_cleanly_on_sigterm() {
    let env = LabEnv::new();
    let mut lab = env
        .command(&["up", "--foreground", "--no-kubeconfig"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let ready = wait_until(Duration::from_secs(10), || {
        env.state().join("lab.json").exists() || matches!(lab.try_wait(), Ok(Some(_)))
    });
    assert!(
        ready && env.state().join("lab.json").exists(),
        "the lab never announced itself"
    );
    assert_eq!(env.lab_pid(), Some(lab.id()));
    kill(Pid::from_raw(lab.id() as i32), Signal::SIGTERM).unwrap();
    let exited = wait_until(Duration::from_secs(10), || {
        matches!(lab.try_wait(), Ok(Some(_)))
    });
    assert!(exited, "the lab ignored SIGTERM");
    assert_eq!(lab.wait().unwrap().code(), Some(0));
    assert!(!env.state().join("lab.json").exists());
    assert!(!env.state().join("lab.pid").exists());
}

#[test]
fn a_lab_killed_with_sigkill_is_noticed_and_the_next_up_starts_afresh() {
    let env = LabEnv::new();
    let out = env.run(&["up", "--no-kubeconfig"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let pid = env.lab_pid().unwrap();
    kill(Pid::from_raw(pid as i32), Signal::SIGKILL).unwrap();
    assert!(wait_until(Duration::from_secs(5), || !alive(pid)));

    let status = env.run(&["status"]);
    assert_eq!(status.status.code(), Some(2), "{}", stdout(&status));
    let out = env.run(&["up", "--no-kubeconfig"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(!stderr(&out).contains("already running"));
    let new_pid = env.lab_pid().unwrap();
    assert_ne!(new_pid, pid);
    assert_eq!(env.run(&["status"]).status.code(), Some(0));
    assert_eq!(env.run(&["down"]).status.code(), Some(0));
    assert!(!alive(new_pid));
}

#[test]
fn the_default_state_dir_is_under_xdg_state_home_else_home() {
    let env = LabEnv::new();
    let xdg = env.root.join("xdg");
    let run = |xdg: Option<&PathBuf>, args: &[&str]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_resil"));
        cmd.arg("lab")
            .args(args)
            .env("HOME", env.root.join("home"))
            .env("KUBECONFIG", env.kubeconfig())
            .env_remove("XDG_STATE_HOME")
            .env_remove("RESIL_LAB_STATE_DIR")
            .stdin(Stdio::null());
        if let Some(dir) = xdg {
            cmd.env("XDG_STATE_HOME", dir);
        }
        cmd.output().unwrap()
    };
    for (xdg, expected) in [
        (Some(&xdg), xdg.join("resil/lab")),
        (None, env.root.join("home/.local/state/resil/lab")),
    ] {
        let out = run(xdg, &["up", "--no-kubeconfig"]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        assert!(
            expected.join("lab.json").exists(),
            "no lab.json in {}",
            expected.display()
        );
        let out = run(xdg, &["down"]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        assert!(!expected.join("lab.json").exists());
    }
}

#[test]
fn up_with_a_corrupt_kubeconfig_fails_naming_it_and_leaves_it_untouched() {
    let env = LabEnv::new();
    let corrupt = "clusters: [ {name: x\n";
    fs::write(env.kubeconfig(), corrupt).unwrap();
    let out = env.run(&["up"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains(&env.kubeconfig().display().to_string()),
        "{err}"
    );
    assert!(err.contains("the lab is running"), "{err}");
    assert!(err.contains("resil lab kubeconfig"), "{err}");
    assert_eq!(fs::read_to_string(env.kubeconfig()).unwrap(), corrupt);
    // The lab itself is usable through its own kubeconfig; down stops it and still refuses
    // to rewrite the file.
    let printed = env.run(&["kubeconfig"]);
    assert_eq!(printed.status.code(), Some(0));
    let pid = env.lab_pid().unwrap();
    let down = env.run(&["down"]);
    assert_eq!(down.status.code(), Some(2));
    assert!(!alive(pid));
    assert_eq!(fs::read_to_string(env.kubeconfig()).unwrap(), corrupt);
}
