//! The lab process and its state directory under races and crashes, through the real
//! binary: two `lab up` at once start one lab, a lab killed with SIGKILL takes its pod
//! processes with it, and `lab up` stops a killed lab's leftovers even when its saved
//! state is corrupt. Linux only: processes are found through /proc.
#![cfg(target_os = "linux")]

use std::fs;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, PostParams};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::lab_cli::{LabEnv, alive, stderr, wait_until};

/// Pids of `resil lab ... up --foreground` processes for this state directory.
fn daemons(state: &Path) -> Vec<u32> {
    let state = state.as_os_str().as_encoded_bytes();
    let mut pids = Vec::new();
    for entry in fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(cmdline) = fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        if args.contains(&state) && args.contains(&&b"--foreground"[..]) && alive(pid) {
            pids.push(pid);
        }
    }
    pids
}

/// Runs `lab <args>` twice at the same moment; returns both outputs.
fn twice_at_once(env: &LabEnv, args: &[&str]) -> [Output; 2] {
    let spawn = || {
        env.command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    [a.wait_with_output().unwrap(), b.wait_with_output().unwrap()]
}

/// Exactly one lab process runs for the state directory, and keeps being the only one.
fn assert_one_daemon(env: &LabEnv, round: usize) {
    assert!(
        wait_until(Duration::from_secs(10), || daemons(&env.state()).len() == 1),
        "round {round}: lab processes {:?}",
        daemons(&env.state())
    );
    std::thread::sleep(Duration::from_millis(300));
    let running = daemons(&env.state());
    assert_eq!(running.len(), 1, "round {round}: lab processes {running:?}");
    // The winner writes its pid file once it serves, which may come after the loser has
    // already stepped back.
    assert!(
        wait_until(Duration::from_secs(10), || env.lab_pid()
            == Some(running[0])),
        "round {round}: pid file {:?}, lab process {}",
        env.lab_pid(),
        running[0]
    );
}

#[test]
fn two_lab_ups_at_once_start_one_lab_and_both_report_it() {
    let env = LabEnv::new();
    for round in 0..3 {
        let outs = twice_at_once(&env, &["up", "--no-kubeconfig"]);
        for out in &outs {
            assert_eq!(out.status.code(), Some(0), "round {round}: {}", stderr(out));
        }
        assert_one_daemon(&env, round);
        let pid = env.lab_pid().unwrap();
        let reported = outs
            .iter()
            .filter(|o| stderr(o).contains(&format!("already running (pid {pid}")))
            .count();
        assert_eq!(
            reported, 1,
            "round {round}: one of them must report the other's lab"
        );
        assert_eq!(env.run(&["down"]).status.code(), Some(0));
        assert!(wait_until(Duration::from_secs(5), || daemons(&env.state()).is_empty()));
    }
}

#[test]
fn two_foreground_labs_at_once_leave_one_running_and_the_other_exits_0() {
    let env = LabEnv::new();
    for round in 0..3 {
        let spawn = || {
            env.command(&["up", "--foreground", "--no-kubeconfig"])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        };
        let mut labs = [spawn(), spawn()];
        assert!(
            wait_until(Duration::from_secs(15), || {
                labs.iter_mut().any(|l| matches!(l.try_wait(), Ok(Some(_))))
            }),
            "round {round}: neither lab stepped back"
        );
        assert_one_daemon(&env, round);
        let exited: Vec<bool> = labs
            .iter_mut()
            .map(|l| matches!(l.try_wait(), Ok(Some(_))))
            .collect();
        assert_eq!(exited.iter().filter(|e| !**e).count(), 1, "round {round}");
        let (done, running) = if exited[0] { (0, 1) } else { (1, 0) };
        assert_eq!(labs[done].wait().unwrap().code(), Some(0), "round {round}");
        assert_eq!(env.lab_pid(), Some(labs[running].id()));
        assert_eq!(env.run(&["down"]).status.code(), Some(0));
        for lab in &mut labs {
            lab.wait().unwrap();
        }
    }
}

/// The pid of the one pod process in `pods.json`, once there is one that lives.
fn pod_process(state: &Path) -> Option<u32> {
    let text = fs::read_to_string(state.join("pods.json")).ok()?;
    let doc: serde_json::Value = serde_json::from_str(&text).ok()?;
    let pid = doc["pods"].get(0)?["pid"].as_u64()? as u32;
    alive(pid).then_some(pid)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_processes_exit_when_the_lab_is_killed_with_sigkill() {
    let env = LabEnv::new();
    let out = env.run(&["up", "--no-kubeconfig"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let lab = env.lab_pid().unwrap();
    let yaml = fs::read_to_string(env.state().join("kubeconfig")).unwrap();
    let kubeconfig = kube::config::Kubeconfig::from_yaml(&yaml).unwrap();
    // kube's TLS needs a process-wide provider; another test may have installed it.
    resil::crypto::ensure_crypto_provider();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .unwrap();
    let pods: Api<Pod> = Api::default_namespaced(kube::Client::try_from(config).unwrap());
    let pod: Pod = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web"},
        "spec": {"containers": [{"name": "web", "image": "resil-demo:1"}]},
    }))
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
    let mut pid = None;
    assert!(
        wait_until(Duration::from_secs(15), || {
            pid = pod_process(&env.state());
            pid.is_some()
        }),
        "the pod process never started"
    );
    let pid = pid.unwrap();

    kill(Pid::from_raw(lab as i32), Signal::SIGKILL).unwrap();
    let gone = wait_until(Duration::from_secs(5), || !alive(pid));
    if !gone {
        // Do not leave it serving on the machine.
        let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
    }
    assert!(gone, "the pod process outlived the lab by 5 s");
}

#[test]
fn up_stops_a_killed_labs_pods_first_even_when_its_state_is_corrupt() {
    let env = LabEnv::new();
    fs::create_dir_all(env.state()).unwrap();
    // Stands in for a pod process (`<program> demo-app`, leading its own process group)
    // whose lab died by SIGKILL.
    let mut orphan = {
        use std::os::unix::process::CommandExt;
        Command::new("sh")
            .args([
                "-c",
                "for i in $(seq 1 300); do sleep 0.1; done",
                "demo-app",
            ])
            .process_group(0)
            .spawn()
            .unwrap()
    };
    fs::write(
        env.state().join("pods.json"),
        format!(
            r#"{{"pods":[{{"pid":{},"pod":"default/web-1"}}]}}"#,
            orphan.id()
        ),
    )
    .unwrap();
    fs::write(env.state().join("state.json"), "{ not the lab's state").unwrap();

    let _ = env.run(&["up", "--no-kubeconfig"]);
    let gone = wait_until(Duration::from_secs(5), || !alive(orphan.id()));
    let _ = orphan.kill();
    orphan.wait().unwrap();
    assert!(gone, "the orphan outlived `lab up`");
}
