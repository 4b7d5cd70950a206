//! `resil chaos ...` against an in-process lab with the demo deployed (its Service on a
//! free NodePort, so tests run side by side): each command's effect seen through the API
//! and through the NodePort, and the reliability promises — a SIGKILLed outage restored by
//! `chaos revert` (twice: the second is a no-op), Ctrl-C during `degrade` reverting before
//! exit, vanished targets / API errors / a context outside the allowlist ending in exit 2
//! with a consistent journal, `--dry-run` changing nothing, and the story told by timeline
//! and Kubernetes Events. Runs `resil` in-process where only the exit code matters and the
//! real binary where signals or messages are the point.

use std::collections::BTreeMap;
use std::future::Future;
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
use resil::lab::Lab;
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::io::AsyncReadExt;

use crate::support;

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

/// A free port in the NodePort range (the API accepts only 30000-32767).
fn free_node_port() -> u16 {
    for _ in 0..200 {
        let p = rand::random_range(30_000..=32_767u16);
        if std::net::TcpListener::bind(("127.0.0.1", p)).is_ok() {
            return p;
        }
    }
    panic!("no free port in 30000-32767");
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
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = dir.path().join("kubeconfig");
        std::fs::write(&kubeconfig, lab.kubeconfig_yaml()).unwrap();
        let node_port = free_node_port();
        let manifests = dir.path().join("manifests");
        std::fs::create_dir(&manifests).unwrap();
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("manifests");
        for entry in std::fs::read_dir(src).unwrap() {
            let path = entry.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap();
            std::fs::write(
                manifests.join(path.file_name().unwrap()),
                text.replace("nodePort: 30080", &format!("nodePort: {node_port}")),
            )
            .unwrap();
        }
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

/// Polls `probe` every 100 ms until it answers Some, failing after `limit`.
async fn until<T, F, Fut>(what: &str, limit: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "gave up after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
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

// ------------------------------------------------------------------ each command's effect

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn degrade_errors_on_every_blue_pod_fails_blue_requests_until_reverted() {
    let demo = Demo::running(2).await;
    let blue = demo.ready_pods("blue").await;
    assert_eq!(blue.len(), 2);
    assert!(demo.all_answer(3, 200).await, "blue serves before");
    if kubectl() {
        let path = format!(
            "/api/v1/namespaces/{NS}/pods/{}:8080/proxy/healthz",
            blue[0]
        );
        assert_eq!(kubectl_in(&demo, &["get", "--raw", &path]).trim(), "ok");
    }

    let run = demo.spawn(&[
        "degrade",
        "--color",
        "blue",
        "--mode",
        "errors=100",
        "--duration",
        "6s",
    ]);
    until(
        "every blue pod to answer 500",
        Duration::from_secs(10),
        || async { demo.all_answer(6, 500).await.then_some(()) },
    )
    .await;
    for pod in &blue {
        assert_eq!(demo.faults(pod).await["error_rate"], json!(1.0), "{pod}");
    }
    assert_eq!(run.await.unwrap(), Exit::Ok);
    // Reverted before the command returned: the very next requests succeed.
    assert!(demo.all_answer(6, 200).await, "blue serves again");
    for pod in &blue {
        assert_eq!(demo.faults(pod).await["error_rate"], json!(0.0), "{pod}");
    }
    assert!(demo.journal().open_entries().unwrap().is_empty());
    demo.lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn degrade_unready_takes_the_chosen_pod_out_of_the_endpoints_until_reverted() {
    let demo = Demo::running(2).await;
    let run = demo.spawn(&[
        "degrade",
        "--color",
        "blue",
        "--count",
        "1",
        "--seed",
        "3",
        "--mode",
        "unready",
        "--duration",
        "8s",
    ]);
    let chosen = until(
        "a blue pod to leave the ready endpoints",
        Duration::from_secs(15),
        || async {
            let (_, not_ready) = demo.endpoints().await;
            not_ready.into_iter().next()
        },
    )
    .await;
    let (ready, _) = demo.endpoints().await;
    assert!(
        !ready.contains(&chosen),
        "{chosen} is still a ready endpoint"
    );
    assert_eq!(
        ready.len(),
        1,
        "the other blue pod keeps serving: {ready:?}"
    );
    assert!(
        demo.all_answer(4, 200).await,
        "partial degradation: blue still answers"
    );
    assert_eq!(run.await.unwrap(), Exit::Ok);
    until(
        "the pod to be a ready endpoint again",
        Duration::from_secs(15),
        || async {
            let (ready, not_ready) = demo.endpoints().await;
            (ready.contains(&chosen) && not_ready.is_empty()).then_some(())
        },
    )
    .await;
    demo.lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_pods_deletes_the_chosen_pod_and_its_deployment_replaces_it() {
    let demo = Demo::running(2).await;
    let before = demo.ready_pods("blue").await;
    let exit = demo
        .run(&[
            "chaos",
            "kill-pods",
            "--color",
            "blue",
            "--count",
            "1",
            "--force",
            "--seed",
            "1",
        ])
        .await;
    assert_eq!(exit, Exit::Ok);
    let after = until(
        "two ready blue pods, one of them new",
        Duration::from_secs(20),
        || async {
            let now = demo.ready_pods("blue").await;
            (now.len() == 2 && now != before).then_some(now)
        },
    )
    .await;
    let survivors = after.iter().filter(|p| before.contains(p)).count();
    assert_eq!(
        survivors, 1,
        "exactly one pod was killed: {before:?} → {after:?}"
    );
    until(
        "the NodePort to answer",
        Duration::from_secs(10),
        || async { demo.all_answer(3, 200).await.then_some(()) },
    )
    .await;
    // A kill has nothing to revert: the journal holds it closed.
    let entries = demo.journal().entries().unwrap();
    assert_eq!(entries.len(), 1);
    assert!(demo.journal().open_entries().unwrap().is_empty());
    demo.lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outage_takes_the_colour_to_zero_and_restores_the_exact_replica_count() {
    let demo = Demo::running(2).await;
    let run = demo.spawn(&["outage", "--color", "blue", "--duration", "5s"]);
    until("blue scaled to 0", Duration::from_secs(5), || async {
        (demo.replicas("blue").await == 0).then_some(())
    })
    .await;
    until(
        "the NodePort to stop answering",
        Duration::from_secs(15),
        || async {
            let (ready, _) = demo.endpoints().await;
            (ready.is_empty() && demo.through_node_port().await.is_none()).then_some(())
        },
    )
    .await;
    assert_eq!(run.await.unwrap(), Exit::Ok);
    assert_eq!(demo.replicas("blue").await, 2, "exactly the count it had");
    until("blue to serve again", Duration::from_secs(20), || async {
        demo.all_answer(3, 200).await.then_some(())
    })
    .await;
    demo.lab.shutdown().await;
}

/// CPU of a pod in metrics.k8s.io, in millicores.
async fn cpu_millis(demo: &Demo, pod: &str) -> Option<f64> {
    let path = format!("/apis/metrics.k8s.io/v1beta1/namespaces/{NS}/pods/{pod}");
    let (code, _, body) = support::raw(&demo.client, "GET", &path, None, Vec::new()).await;
    if code != 200 {
        return None;
    }
    let cpu = body.pointer("/containers/0/usage/cpu")?.as_str()?;
    let nanos: f64 = cpu.strip_suffix('n')?.parse().ok()?;
    Some(nanos / 1e6)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cpu_burn_raises_the_pods_cpu_in_pod_metrics_until_reverted() {
    let demo = Demo::running(1).await;
    let pod = demo.ready_pods("blue").await.remove(0);
    let run = demo.spawn(&[
        "cpu-burn",
        "--color",
        "blue",
        "--load",
        "60",
        "--duration",
        "8s",
    ]);
    let busy = until(
        "the burn in the pod's metrics",
        Duration::from_secs(8),
        || async { cpu_millis(&demo, &pod).await.filter(|m| *m >= 150.0) },
    )
    .await;
    assert_eq!(run.await.unwrap(), Exit::Ok);
    until(
        "the pod's CPU to fall back",
        Duration::from_secs(10),
        || async { cpu_millis(&demo, &pod).await.filter(|m| *m < 100.0) },
    )
    .await;
    eprintln!("cpu-burn --load 60: {busy:.0}m seen in metrics.k8s.io");
    demo.lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_on_the_service_proxy_delays_each_connection_until_reverted() {
    let demo = Demo::running(1).await;
    let timed = || async {
        let start = Instant::now();
        let code = demo.through_node_port().await;
        (code, start.elapsed())
    };
    let run = demo.spawn(&["latency", "--delay", "400ms", "--duration", "6s"]);
    let services: Api<Service> = Api::namespaced(demo.client.clone(), NS);
    until(
        "the proxy fault on the Service",
        Duration::from_secs(5),
        || async {
            let svc = services.get("web").await.unwrap();
            svc.metadata
                .annotations?
                .get("resil.dev/proxy-fault")
                .filter(|v| v.starts_with("delay=400ms"))
                .map(|_| ())
        },
    )
    .await;
    let slow = until("a delayed answer", Duration::from_secs(5), || async {
        let (code, took) = timed().await;
        (code == Some(200) && took >= Duration::from_millis(380)).then_some(took)
    })
    .await;
    assert_eq!(run.await.unwrap(), Exit::Ok);
    let svc = services.get("web").await.unwrap();
    let annotations = svc.metadata.annotations.unwrap_or_default();
    assert!(
        !annotations.contains_key("resil.dev/proxy-fault"),
        "{annotations:?}"
    );
    let fast = until("an undelayed answer", Duration::from_secs(5), || async {
        let (code, took) = timed().await;
        (code == Some(200) && took < Duration::from_millis(300)).then_some(took)
    })
    .await;
    eprintln!("latency --delay 400ms: {slow:?} during, {fast:?} after");
    demo.lab.shutdown().await;
}

// ------------------------------------------------------------------ reliability

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_outage_then_revert_restores_the_exact_replicas_and_a_second_revert_is_a_no_op()
{
    let demo = Demo::api_only(3).await;
    let child = demo
        .binary(
            &demo.kubeconfig,
            &["outage", "--color", "blue", "--duration", "60s"],
        )
        .spawn()
        .unwrap();
    until("blue scaled to 0", Duration::from_secs(20), || async {
        (demo.replicas("blue").await == 0).then_some(())
    })
    .await;
    kill(pid(&child), Signal::SIGKILL).unwrap();
    let (code, _, _) = finish(child, Duration::from_secs(10)).await;
    assert_eq!(code, -1, "killed by the signal");
    assert_eq!(demo.replicas("blue").await, 0, "nobody restored it yet");
    assert_eq!(demo.journal().open_entries().unwrap().len(), 1);

    let start = Instant::now();
    let first = demo.binary(&demo.kubeconfig, &["revert"]).spawn().unwrap();
    let (code, out, err) = finish(first, Duration::from_secs(30)).await;
    let took = start.elapsed();
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("reverted outage"), "{out}");
    assert_eq!(demo.replicas("blue").await, 3, "exactly the count it had");
    assert!(demo.journal().open_entries().unwrap().is_empty());
    eprintln!("`resil chaos revert` restored web-blue 0 → 3 in {took:?} (process start included)");

    let rv = demo
        .deployments()
        .get("web-blue")
        .await
        .unwrap()
        .metadata
        .resource_version;
    let second = demo.binary(&demo.kubeconfig, &["revert"]).spawn().unwrap();
    let (code, out, err) = finish(second, Duration::from_secs(30)).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("nothing to revert"), "{out}");
    let after = demo
        .deployments()
        .get("web-blue")
        .await
        .unwrap()
        .metadata
        .resource_version;
    assert_eq!(rv, after, "the second revert wrote nothing");
    demo.lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_during_degrade_reverts_the_switches_before_exit() {
    let demo = Demo::running(1).await;
    let pod = demo.ready_pods("blue").await.remove(0);
    let child = demo
        .binary(
            &demo.kubeconfig,
            &[
                "degrade",
                "--color",
                "blue",
                "--mode",
                "errors=100",
                "--duration",
                "60s",
            ],
        )
        .spawn()
        .unwrap();
    until("blue to answer 500", Duration::from_secs(20), || async {
        demo.all_answer(2, 500).await.then_some(())
    })
    .await;
    let start = Instant::now();
    kill(pid(&child), Signal::SIGINT).unwrap();
    let (code, out, err) = finish(child, Duration::from_secs(20)).await;
    let took = start.elapsed();
    assert_eq!(code, 130, "interrupted: {out}{err}");
    assert!(out.contains("reverted degrade"), "{out}");
    // Right after the process is gone, the pod answers normally: nothing waits for the
    // app's own deadline (60 s away).
    assert!(demo.all_answer(6, 200).await, "blue serves again at once");
    assert_eq!(demo.faults(&pod).await["error_rate"], json!(0.0));
    assert!(demo.journal().open_entries().unwrap().is_empty());
    eprintln!("Ctrl-C → switches reverted and exit in {took:?}");
    demo.lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_context_outside_the_allowlist_is_refused_with_exit_2_and_nothing_changes() {
    let demo = Demo::api_only(2).await;
    let prod = demo.prod_kubeconfig();
    let rv = demo
        .deployments()
        .get("web-blue")
        .await
        .unwrap()
        .metadata
        .resource_version;
    let child = demo
        .binary(&prod, &["outage", "--color", "blue", "--duration", "5s"])
        .spawn()
        .unwrap();
    let (code, out, err) = finish(child, Duration::from_secs(30)).await;
    assert_eq!(code, 2, "{out}{err}");
    assert!(
        err.contains("prod-eu") && err.contains("--allow-context"),
        "{err}"
    );
    let after = demo
        .deployments()
        .get("web-blue")
        .await
        .unwrap()
        .metadata
        .resource_version;
    assert_eq!(rv, after);
    assert!(
        demo.journal().entries().unwrap().is_empty(),
        "nothing journaled"
    );
    demo.lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployment_deleted_mid_outage_is_a_clear_error_with_exit_2_and_a_closed_entry() {
    let demo = Demo::api_only(2).await;
    let child = demo
        .binary(
            &demo.kubeconfig,
            &["outage", "--color", "blue", "--duration", "3s"],
        )
        .spawn()
        .unwrap();
    until("blue scaled to 0", Duration::from_secs(20), || async {
        (demo.replicas("blue").await == 0).then_some(())
    })
    .await;
    demo.deployments()
        .delete("web-blue", &DeleteParams::default())
        .await
        .unwrap();
    let (code, out, err) = finish(child, Duration::from_secs(30)).await;
    assert_eq!(code, 2, "{out}{err}");
    assert!(
        err.contains("deployment/web-blue disappeared during the outage"),
        "{err}"
    );
    let entries = demo.journal().entries().unwrap();
    assert_eq!(entries.len(), 1);
    assert!(
        demo.journal().open_entries().unwrap().is_empty(),
        "closed: nothing is owed"
    );
    demo.lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_server_lost_mid_outage_exits_2_keeps_the_entry_open_and_revert_finishes_later() {
    let demo = Demo::api_only(2).await;
    let child = demo
        .binary(
            &demo.kubeconfig,
            &["outage", "--color", "blue", "--duration", "2s"],
        )
        .spawn()
        .unwrap();
    until("blue scaled to 0", Duration::from_secs(20), || async {
        (demo.replicas("blue").await == 0).then_some(())
    })
    .await;
    let Demo {
        lab,
        state,
        dir,
        kubeconfig,
        ..
    } = demo;
    lab.shutdown().await;
    let journal = Journal::new(&dir.path().join("chaos-state"));
    let (code, out, err) = finish(child, Duration::from_secs(60)).await;
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.contains("resil chaos revert"), "says what to do: {err}");
    assert_eq!(
        journal.open_entries().unwrap().len(),
        1,
        "the fault is still owed"
    );

    // The lab comes back (same state, maybe another port): revert finishes the job.
    let lab = support::start_api_only_lab_in(&state).await;
    std::fs::write(&kubeconfig, lab.kubeconfig_yaml()).unwrap();
    let client = support::client_for(&lab).await;
    let deployments: Api<Deployment> = Api::namespaced(client, NS);
    let replicas = |d: Deployment| d.spec.replicas.unwrap();
    assert_eq!(replicas(deployments.get("web-blue").await.unwrap()), 0);
    let exit = resil::run(
        Cli::try_parse_from([
            "resil",
            "--kubeconfig",
            kubeconfig.to_str().unwrap(),
            "chaos",
            "revert",
            "--state-dir",
            dir.path().join("chaos-state").to_str().unwrap(),
        ])
        .unwrap(),
    )
    .await;
    assert_eq!(exit, Exit::Ok);
    assert_eq!(replicas(deployments.get("web-blue").await.unwrap()), 2);
    assert!(journal.open_entries().unwrap().is_empty());
    lab.shutdown().await;
}

/// Every object's resourceVersion in the namespace, plus the store's own.
async fn versions(demo: &Demo) -> BTreeMap<String, String> {
    let mut all = BTreeMap::new();
    for (kind, path) in [
        ("pod", format!("/api/v1/namespaces/{NS}/pods")),
        ("service", format!("/api/v1/namespaces/{NS}/services")),
        ("event", format!("/api/v1/namespaces/{NS}/events")),
        (
            "deployment",
            format!("/apis/apps/v1/namespaces/{NS}/deployments"),
        ),
        (
            "hpa",
            format!("/apis/autoscaling/v2/namespaces/{NS}/horizontalpodautoscalers"),
        ),
    ] {
        let (code, _, list) = support::raw(&demo.client, "GET", &path, None, Vec::new()).await;
        assert_eq!(code, 200, "{path}");
        all.insert(
            format!("{kind} list"),
            list["metadata"]["resourceVersion"].to_string(),
        );
        for item in list["items"].as_array().unwrap() {
            all.insert(
                format!("{kind}/{}", item["metadata"]["name"]),
                item["metadata"]["resourceVersion"].to_string(),
            );
        }
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_changes_nothing_for_any_action() {
    let demo = Demo::api_only(2).await;
    // The API-only lab runs no controllers: give the selections pods to choose from.
    let pods: Api<Pod> = Api::namespaced(demo.client.clone(), NS);
    for i in 0..2 {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": format!("web-blue-{i}"), "labels": {"app": "web", "version": "blue"}},
            "spec": {"containers": [{"name": "web", "image": "resil-demo:latest",
                                     "ports": [{"containerPort": 8080}]}]},
        }))
        .unwrap();
        pods.create(&PostParams::default(), &pod).await.unwrap();
    }
    let before = versions(&demo).await;
    for args in [
        &[
            "chaos",
            "kill-pods",
            "--color",
            "blue",
            "--force",
            "--dry-run",
        ][..],
        &[
            "chaos",
            "outage",
            "--color",
            "blue",
            "--duration",
            "5s",
            "--dry-run",
        ],
        &[
            "chaos",
            "degrade",
            "--color",
            "blue",
            "--mode",
            "unready",
            "--duration",
            "5s",
            "--dry-run",
        ],
        &[
            "chaos",
            "cpu-burn",
            "--color",
            "blue",
            "--duration",
            "5s",
            "--dry-run",
        ],
        &[
            "chaos",
            "latency",
            "--delay",
            "100ms",
            "--duration",
            "5s",
            "--dry-run",
        ],
        &["chaos", "revert", "--dry-run"],
    ] {
        assert_eq!(demo.run(args).await, Exit::Ok, "{args:?}");
    }
    assert_eq!(versions(&demo).await, before, "no object changed");
    assert!(
        demo.journal().entries().unwrap().is_empty(),
        "nothing journaled"
    );
    demo.lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_tells_its_story_in_the_timeline_and_in_kubernetes_events() {
    let demo = Demo::api_only(2).await;
    let out = demo.dir.path().join("results");
    let exit = demo
        .run(&[
            "chaos",
            "outage",
            "--color",
            "blue",
            "--duration",
            "1s",
            "--out",
            out.to_str().unwrap(),
        ])
        .await;
    assert_eq!(exit, Exit::Ok);
    let timeline = std::fs::read_to_string(out.join("timeline.jsonl")).unwrap();
    let events: Vec<Value> = timeline
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["chaos_injected", "chaos_reverted"], "{timeline}");
    assert_eq!(events[0]["id"], events[1]["id"]);
    assert_eq!(events[0]["targets"], json!(["deployment/web-blue"]));
    assert_eq!(events[0]["source"], "chaos");
    assert!(
        out.join("run.json").is_file(),
        "report can open the directory"
    );

    let api: Api<Event> = Api::namespaced(demo.client.clone(), NS);
    let story: Vec<(String, String, String)> = api
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.reason.as_deref().is_some_and(|r| r.starts_with("Chaos")))
        .map(|e| {
            (
                e.reason.unwrap(),
                e.type_.unwrap_or_default(),
                format!(
                    "{}/{}",
                    e.involved_object.kind.unwrap_or_default(),
                    e.involved_object.name.unwrap_or_default()
                ),
            )
        })
        .collect();
    for (reason, type_) in [("ChaosInjected", "Warning"), ("ChaosReverted", "Normal")] {
        assert!(
            story.contains(&(reason.into(), type_.into(), "Deployment/web-blue".into())),
            "{reason}: {story:?}"
        );
    }
    if kubectl() {
        let text = kubectl_in(&demo, &["get", "events", "-n", NS]);
        assert!(
            text.contains("ChaosInjected") && text.contains("ChaosReverted"),
            "{text}"
        );
        assert!(text.contains("deployment/web-blue"), "{text}");
    }
    demo.lab.shutdown().await;
}
