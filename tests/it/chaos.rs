//! `resil chaos ...` against an in-process lab with the demo deployed (its Service on a
//! free NodePort, so tests run side by side). This file holds the fixture; `effects.rs`
//! sees each command's effect through the API and the NodePort; `reliability.rs` checks
//! the promises — a SIGKILLed outage restored by `chaos revert` (twice: the second is a
//! no-op), Ctrl-C during `degrade` reverting before exit, vanished targets / API errors /
//! a context outside the allowlist ending in exit 2 with a consistent journal, `--dry-run`
//! changing nothing, and the story told by timeline and Kubernetes Events; `nodes.rs`
//! and `region.rs` power nodes, zones and regions off and drain nodes. Runs `resil`
//! in-process where only the exit code matters and the real binary where signals or
//! messages are the point.

mod effects;
mod nodes;
mod overlap;
mod region;
mod reliability;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use clap::Parser;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Endpoints, Event, Pod, Service};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use resil::Exit;
use resil::chaos::journal::Journal;
use resil::cli::Cli;
use resil_lab::Lab;
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::io::AsyncReadExt;

use crate::support;
use crate::support::eventually;

const NS: &str = "distributed-resilience";

/// A lab with the demo deployed, a kubeconfig file for it and a private home for the
/// binary (journal, config, kubectl cache).
struct Demo {
    lab: Lab,
    client: kube::Client,
    /// The lab's state directory.
    state: TempDir,
    dir: TempDir,
    kubeconfig: PathBuf,
    node_port: u16,
}

impl Demo {
    /// A lab that runs pods, with `replicas` pods per colour, rolled out.
    async fn running(replicas: u32) -> Demo {
        Demo::start(true, replicas).await
    }

    /// A lab serving the API alone (no pods run): for what the objects alone show.
    async fn api_only(replicas: u32) -> Demo {
        Demo::start(false, replicas).await
    }

    async fn start(runtime: bool, replicas: u32) -> Demo {
        let state = tempfile::tempdir().unwrap();
        let lab = if runtime {
            support::start_lab_in(&state).await
        } else {
            support::start_api_only_lab_in(&state).await
        };
        Demo::deployed(lab, state, runtime, replicas).await
    }

    /// `lab` (its state in `state`) with the demo deployed on a free NodePort, `replicas`
    /// pods per colour, rolled out when the lab runs pods.
    async fn deployed(lab: Lab, state: TempDir, runtime: bool, replicas: u32) -> Demo {
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = dir.path().join("kubeconfig");
        std::fs::write(&kubeconfig, lab.kubeconfig_yaml()).unwrap();
        let manifests = dir.path().join("manifests");
        let node_port = support::manifests_on_a_free_node_port(&manifests);
        let client = support::client_for(&lab).await;
        let demo = Demo {
            lab,
            client,
            state,
            dir,
            kubeconfig,
            node_port,
        };
        let replicas = replicas.to_string();
        let mut deploy = vec![
            "deploy",
            "--manifests",
            manifests.to_str().unwrap(),
            "--replicas",
            &replicas,
        ];
        if runtime {
            deploy.extend(["--timeout", "60s"]);
        } else {
            deploy.push("--no-wait");
        }
        assert_eq!(demo.run(&deploy).await, Exit::Ok, "the demo deploys");
        demo
    }

    fn journal_dir(&self) -> PathBuf {
        self.dir.path().join("chaos-state")
    }

    fn journal(&self) -> Journal {
        Journal::new(&self.journal_dir())
    }

    /// `resil ARGS` in-process (chaos commands get this demo's journal).
    async fn run(&self, args: &[&str]) -> Exit {
        let mut argv: Vec<String> = vec![
            "resil".into(),
            "--kubeconfig".into(),
            self.kubeconfig.to_str().unwrap().into(),
        ];
        argv.extend(args.iter().map(|a| a.to_string()));
        if args.first() == Some(&"chaos") {
            argv.push("--state-dir".into());
            argv.push(self.journal_dir().to_str().unwrap().into());
        }
        resil::run(Cli::try_parse_from(argv).expect("arguments parse")).await
    }

    /// `resil chaos ARGS` in-process, in the background.
    fn spawn(&self, args: &[&str]) -> tokio::task::JoinHandle<Exit> {
        let kubeconfig = self.kubeconfig.clone();
        let journal = self.journal_dir();
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        tokio::spawn(async move {
            let mut argv: Vec<String> = vec![
                "resil".into(),
                "--kubeconfig".into(),
                kubeconfig.to_str().unwrap().into(),
                "chaos".into(),
            ];
            argv.extend(args);
            argv.push("--state-dir".into());
            argv.push(journal.to_str().unwrap().into());
            resil::run(Cli::try_parse_from(argv).expect("arguments parse")).await
        })
    }

    /// The real binary running `resil chaos ARGS` with a private home and this journal.
    fn binary(&self, kubeconfig: &Path, args: &[&str]) -> tokio::process::Command {
        let home = self.dir.path();
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_resil"));
        cmd.arg("--kubeconfig")
            .arg(kubeconfig)
            .arg("chaos")
            .args(args)
            .arg("--state-dir")
            .arg(self.journal_dir())
            .env("HOME", home)
            .env("XDG_CONFIG_HOME", home.join("config"))
            .env("XDG_STATE_HOME", home.join("state"))
            .env("KUBECONFIG", kubeconfig)
            .env("NO_COLOR", "1")
            .env("RUST_LOG", "off")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        cmd
    }

    fn deployments(&self) -> Api<Deployment> {
        Api::namespaced(self.client.clone(), NS)
    }

    /// web-blue's resourceVersion.
    async fn blue_version(&self) -> Option<String> {
        let d = self.deployments().get("web-blue").await.unwrap();
        d.metadata.resource_version
    }

    async fn replicas(&self, color: &str) -> i32 {
        let d = self
            .deployments()
            .get(&format!("web-{color}"))
            .await
            .unwrap();
        d.spec.replicas.unwrap()
    }

    /// Names of the ready, not terminating pods of `color`.
    async fn ready_pods(&self, color: &str) -> Vec<String> {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), NS);
        let list = pods
            .list(&ListParams::default().labels(&format!("app=web,version={color}")))
            .await
            .unwrap();
        let mut names: Vec<String> = list
            .items
            .into_iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .filter(|p| {
                p.status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
            })
            .map(|p| p.metadata.name.unwrap())
            .collect();
        names.sort();
        names
    }

    /// Blue pods created by hand on an API-only lab (which runs no controllers or
    /// processes): there to be chosen, never running.
    async fn blue_pods_that_never_run(&self, n: usize) {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), NS);
        for i in 0..n {
            let pod: Pod = serde_json::from_value(json!({
                "metadata": {"name": format!("web-blue-{i}"),
                             "labels": {"app": "web", "version": "blue"}},
                "spec": {"containers": [{"name": "web", "image": "resil-demo:latest",
                                         "ports": [{"containerPort": 8080}]}]},
            }))
            .unwrap();
            pods.create(&PostParams::default(), &pod).await.unwrap();
        }
    }

    /// A pod's fault switches, read through the API server's pod proxy.
    async fn faults(&self, pod: &str) -> Value {
        let path = format!("/api/v1/namespaces/{NS}/pods/{pod}:8080/proxy/admin/faults");
        let (code, _, body) = support::raw(&self.client, "GET", &path, None, Vec::new()).await;
        assert_eq!(code, 200, "GET {path}: {body}");
        body
    }

    /// Pod names in the `web` Endpoints: (ready, not ready).
    async fn endpoints(&self) -> (Vec<String>, Vec<String>) {
        let eps: Api<Endpoints> = Api::namespaced(self.client.clone(), NS);
        let ep = eps.get("web").await.unwrap();
        let mut ready = Vec::new();
        let mut not_ready = Vec::new();
        for s in ep.subsets.unwrap_or_default() {
            let names = |a: Option<Vec<k8s_openapi::api::core::v1::EndpointAddress>>| {
                a.unwrap_or_default()
                    .into_iter()
                    .filter_map(|a| a.target_ref?.name)
                    .collect::<Vec<_>>()
            };
            ready.extend(names(s.addresses));
            not_ready.extend(names(s.not_ready_addresses));
        }
        ready.sort();
        not_ready.sort();
        (ready, not_ready)
    }

    /// One request through the NodePort on a new connection: the status, or None when
    /// the connection failed.
    async fn through_node_port(&self) -> Option<u16> {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap();
        let res = client
            .get(format!("http://127.0.0.1:{}/", self.node_port))
            .send()
            .await
            .ok()?;
        Some(res.status().as_u16())
    }

    /// `n` requests through the NodePort, all answered with `code`.
    async fn all_answer(&self, n: usize, code: u16) -> bool {
        for _ in 0..n {
            if self.through_node_port().await != Some(code) {
                return false;
            }
        }
        true
    }

    /// The kubeconfig under a context name that is not a local lab's.
    fn prod_kubeconfig(&self) -> PathBuf {
        let path = self.dir.path().join("prod-kubeconfig");
        std::fs::write(
            &path,
            self.lab.kubeconfig_yaml().replace("resil-lab", "prod-eu"),
        )
        .unwrap();
        path
    }
}

/// Waits for a spawned binary; answers its exit code, stdout and stderr.
async fn finish(mut child: tokio::process::Child, limit: Duration) -> (i32, String, String) {
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let status = tokio::time::timeout(limit, child.wait())
        .await
        .expect("the binary exits in time")
        .unwrap();
    let (mut o, mut e) = (String::new(), String::new());
    out.read_to_string(&mut o).await.unwrap();
    err.read_to_string(&mut e).await.unwrap();
    (status.code().unwrap_or(-1), o, e)
}

/// The binary running `chaos outage --color blue --duration DURATION`, once blue is at 0.
async fn outage_binary(demo: &Demo, duration: &str) -> tokio::process::Child {
    let child = demo
        .binary(
            &demo.kubeconfig,
            &["outage", "--color", "blue", "--duration", duration],
        )
        .spawn()
        .unwrap();
    eventually(Duration::from_secs(20), "blue scaled to 0", || async {
        (demo.replicas("blue").await == 0).then_some(())
    })
    .await;
    child
}

fn pid(child: &tokio::process::Child) -> Pid {
    Pid::from_raw(child.id().expect("still running") as i32)
}

/// Whether kubectl is installed (its tests say so and skip without it).
fn kubectl() -> bool {
    let found = std::process::Command::new("kubectl")
        .args(["version", "--client"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        eprintln!("kubectl not installed: skipping the kubectl part");
    }
    found
}

fn kubectl_in(demo: &Demo, args: &[&str]) -> String {
    let out = std::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(&demo.kubeconfig)
        .arg("--cache-dir")
        .arg(demo.dir.path().join("kube-cache"))
        .args(args)
        .env("HOME", demo.dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "kubectl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
