//! Several labs on one machine through the real binary (`resil lab up --name ...`): each
//! answers kubectl on its own context, port and node ports; `down --name` stops one and
//! leaves the other; `down --all` stops the rest; status lists them; bad names are refused.

use std::process::{Command, Output};
use std::time::Duration;

use serde_json::Value;

use super::lab_cli::{LabEnv, alive, stderr, wait_until};

/// A [`LabEnv`] whose drop stops every lab it may have started, named ones included.
struct Labs(LabEnv);

impl Drop for Labs {
    fn drop(&mut self) {
        let _ = self.0.run(&["down", "--all"]);
    }
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn lab_json(env: &LabEnv, name: &str) -> Value {
    let path = env.state().join("labs").join(name).join("lab.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn kubectl(env: &LabEnv, context: &str, args: &[&str]) -> Output {
    Command::new("kubectl")
        .arg("--context")
        .arg(context)
        .args(args)
        .env("KUBECONFIG", env.kubeconfig())
        .env("HOME", env.root.join("home"))
        .output()
        .expect("kubectl is installed")
}

/// Applies NodePort Service `web` in `namespace` (node port `port`, or allocated) and
/// returns its node port.
fn node_port_service(env: &LabEnv, context: &str, namespace: &str, port: Option<u16>) -> u16 {
    let node_port = port
        .map(|p| format!(", \"nodePort\": {p}"))
        .unwrap_or_default();
    let manifest = format!(
        r#"{{"apiVersion": "v1", "kind": "List", "items": [
            {{"apiVersion": "v1", "kind": "Namespace", "metadata": {{"name": "{namespace}"}}}},
            {{"apiVersion": "v1", "kind": "Service",
            "metadata": {{"name": "web", "namespace": "{namespace}"}},
            "spec": {{"type": "NodePort", "selector": {{"app": "web"}},
                     "ports": [{{"port": 80, "targetPort": 8080{node_port}}}]}}}}]}}"#
    );
    let mut child = Command::new("kubectl")
        .args(["--context", context, "apply", "-f", "-"])
        .env("KUBECONFIG", env.kubeconfig())
        .env("HOME", env.root.join("home"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("kubectl is installed");
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), manifest.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let out = kubectl(
        env,
        context,
        &[
            "-n",
            namespace,
            "get",
            "service",
            "web",
            "-o",
            "jsonpath={.spec.ports[0].nodePort}",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out).trim().parse().unwrap()
}

#[test]
fn a_bad_lab_name_is_refused_saying_what_a_name_may_be() {
    let env = LabEnv::new();
    for bad in ["Region_A", "-a", "lab"] {
        let flag = format!("--name={bad}");
        let out = env.run(&["up", &flag]);
        assert_eq!(out.status.code(), Some(2), "{bad}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(err.contains("DNS-1123"), "{bad}: {err}");
        assert!(err.contains("--name region-a"), "{bad}: {err}");
    }
    assert!(!env.state().join("labs").exists());
    let out = env.run(&["down", "--all", "--name", "region-a"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}

#[test]
fn two_named_labs_run_side_by_side_and_stop_one_at_a_time() {
    let labs = Labs(LabEnv::new());
    let env = &labs.0;
    for name in ["region-a", "region-b"] {
        let out = env.run(&["up", "--name", name]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        assert!(
            stderr(&out).contains(&format!("Set kubectl context to \"resil-{name}\"")),
            "{}",
            stderr(&out)
        );
    }
    let (a, b) = (lab_json(env, "region-a"), lab_json(env, "region-b"));
    assert_ne!(a["address"], b["address"], "each lab has its own API port");
    for name in ["region-a", "region-b"] {
        let context = format!("resil-{name}");
        let out = kubectl(env, &context, &["get", "namespaces", "-o", "name"]);
        assert!(out.status.success(), "{context}: {}", stderr(&out));
        assert!(stdout(&out).contains("namespace/default"));
    }

    // Allocated node ports come from disjoint slices.
    let port_a = node_port_service(env, "resil-region-a", "default", None);
    let port_b = node_port_service(env, "resil-region-b", "default", None);
    assert_ne!(port_a, port_b);
    assert!((30500..30750).contains(&port_a), "{port_a}");
    assert!((30750..31000).contains(&port_b), "{port_b}");

    // A node port another lab serves is reported, never silently shared.
    node_port_service(env, "resil-region-b", "clash", Some(port_a));
    let reported = wait_until(Duration::from_secs(10), || {
        let out = kubectl(
            env,
            "resil-region-b",
            &[
                "-n",
                "clash",
                "get",
                "events",
                "-o",
                "jsonpath={.items[*].reason}",
            ],
        );
        stdout(&out).contains("NodePortBindFailed")
    });
    assert!(reported, "no NodePortBindFailed event");

    let status = env.run(&["status"]);
    assert_eq!(status.status.code(), Some(0), "{}", stderr(&status));
    let text = stdout(&status);
    for needle in [
        "region-a",
        "resil-region-b",
        a["address"].as_str().unwrap(),
        b["address"].as_str().unwrap(),
        &a["pid"].to_string(),
        &format!("region-b: node port {port_a} of clash/web cannot be bound"),
    ] {
        assert!(text.contains(needle), "{needle:?} missing in:\n{text}");
    }

    let printed = env.run(&["kubeconfig", "--name", "region-a"]);
    assert_eq!(printed.status.code(), Some(0), "{}", stderr(&printed));
    assert!(stdout(&printed).contains("name: resil-region-a"));
    assert!(stdout(&printed).contains(a["address"].as_str().unwrap()));

    let out = env.run(&["down", "--name", "region-a"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let pid = |v: &Value| u32::try_from(v["pid"].as_u64().unwrap()).unwrap();
    assert!(!alive(pid(&a)), "down --name must stop that lab");
    assert!(alive(pid(&b)), "down --name must leave the other running");
    assert!(
        !kubectl(env, "resil-region-a", &["get", "ns"])
            .status
            .success()
    );
    assert!(
        kubectl(env, "resil-region-b", &["get", "ns"])
            .status
            .success()
    );

    let out = env.run(&["down", "--all"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("Stopped the lab region-b"),
        "{}",
        stderr(&out)
    );
    assert!(!alive(pid(&b)));
    let after = env.run(&["status"]);
    assert_eq!(after.status.code(), Some(2), "{}", stdout(&after));
}
