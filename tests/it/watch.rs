//! `resil watch` against an in-process lab running the demo (pods are `resil demo-app`
//! processes; the demo's NodePort is moved to a free port so parallel tests never share
//! one): failover when every blue pod is killed, fail-back only after the stable window,
//! no switch into the dark, failover at start, capacity-aware preparation, HPA scaling
//! latency, two watchers sharing one Lease (as two `resil watch` processes), and watch
//! streams that drop or expire (410) while blue goes down. Every wait is bounded.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Parser;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use resil::Exit;
use resil::cli::{Cli, Color};
use resil::results::RunDir;
use resil::results::timeline::{Event, EventKind};
use resil::watch::controller::{self, Outcome, Snapshot, Update, WatchError, WatchPlan};
use resil::watch::failover::Policy;
use resil::watch::lease::ElectionConfig;
use resil_lab::{Lab, LabConfig};
use serde_json::json;
use tempfile::TempDir;
use tokio::io::AsyncBufReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::support::free_node_port;
use crate::support::{client_for, event_reasons, eventually};

pub(crate) const NS: &str = "distributed-resilience";

/// A lab (1 s HPA sync) with the demo deployed and ready.
pub(crate) struct Demo {
    lab: Lab,
    pub(crate) client: kube::Client,
    _state: TempDir,
    /// Kubeconfig, manifests, HOME of spawned binaries, results.
    pub(crate) dir: TempDir,
    kubeconfig: PathBuf,
}

impl Demo {
    pub(crate) async fn start() -> Demo {
        Demo::start_on(1).await
    }

    /// The demo on a lab of `nodes` nodes, spread over zones lab-a, lab-b, lab-c.
    pub(crate) async fn start_on(nodes: usize) -> Demo {
        let state = tempfile::tempdir().unwrap();
        let mut config = LabConfig::new(state.path());
        config.nodes = resil_lab::NodeLayout::new(nodes);
        config.pod_program = PathBuf::from(env!("CARGO_BIN_EXE_resil"));
        config.hpa_sync_period = Duration::from_secs(1);
        let lab = Lab::start(config).await.expect("lab starts");
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = dir.path().join("kubeconfig");
        std::fs::write(&kubeconfig, lab.kubeconfig_yaml()).unwrap();
        let manifests = dir.path().join("manifests");
        std::fs::create_dir(&manifests).unwrap();
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("manifests");
        let port = free_node_port().to_string();
        for entry in std::fs::read_dir(src).unwrap() {
            let path = entry.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap();
            std::fs::write(
                manifests.join(path.file_name().unwrap()),
                text.replace("30080", &port),
            )
            .unwrap();
        }
        let argv = [
            "resil",
            "--kubeconfig",
            kubeconfig.to_str().unwrap(),
            "deploy",
            "--manifests",
            manifests.to_str().unwrap(),
            "--timeout",
            "90s",
        ];
        let exit = resil::run(Cli::try_parse_from(argv).unwrap()).await;
        assert_eq!(exit, Exit::Ok, "the demo deploys and becomes ready");
        let client = client_for(&lab).await;
        Demo {
            lab,
            client,
            _state: state,
            dir,
            kubeconfig,
        }
    }

    pub(crate) fn plan(&self, stable_for: Duration) -> WatchPlan {
        WatchPlan {
            namespace: NS.to_string(),
            service: "web".to_string(),
            policy: Policy {
                primary: Color::Blue,
                ready_min: 1,
                stable_for,
                prepare_standby: false,
            },
            observe_only: false,
            once: false,
            timeout: Some(Duration::from_secs(120)),
        }
    }

    /// Runs the watcher in-process (through `client`), recording into a temp dir.
    fn watch(
        &self,
        client: kube::Client,
        plan: WatchPlan,
        election: Option<ElectionConfig>,
    ) -> Watching {
        let out = tempfile::tempdir_in(self.dir.path()).unwrap();
        let dir = RunDir::create(out.path()).unwrap();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let stop = CancellationToken::new();
        let log = Arc::new(Mutex::new(Vec::new()));
        let last = Arc::new(Mutex::new(None));
        let (log2, last2) = (log.clone(), last.clone());
        tokio::spawn(async move {
            while let Some(update) = rx.recv().await {
                let line = match update {
                    Update::Snapshot(s) => {
                        *last2.lock().unwrap() = Some(s);
                        continue;
                    }
                    Update::Decision { rule, action } => format!("[{rule}] {action}"),
                    Update::Warning(w) => format!("warning: {w}"),
                    Update::Failover(f) => format!("{} {} → {}", f.direction, f.from, f.to),
                };
                log2.lock().unwrap().push(line);
            }
        });
        let task = tokio::spawn(controller::run_with(
            client,
            plan,
            election,
            Some(dir.clone()),
            tx,
            stop.clone(),
        ));
        Watching {
            stop,
            task,
            log,
            last,
            dir,
            _out: out,
        }
    }

    fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as kube::Resource>::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), NS)
    }

    async fn selected(&self) -> String {
        let svc: Service = self.api().get("web").await.unwrap();
        svc.spec.unwrap().selector.unwrap()["version"].clone()
    }

    async fn wait_selected(&self, secs: u64, color: &str) {
        eventually(
            Duration::from_secs(secs),
            &format!("the Service to select {color}"),
            || async { (self.selected().await == color).then_some(()) },
        )
        .await;
    }

    pub(crate) async fn pods(&self, color: &str) -> Vec<Pod> {
        let lp = ListParams::default().labels(&format!("app=web,version={color}"));
        self.api::<Pod>().list(&lp).await.unwrap().items
    }

    pub(crate) async fn ready(&self, color: &str) -> usize {
        let ready = |p: &Pod| {
            p.metadata.deletion_timestamp.is_none()
                && p.status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
        };
        self.pods(color).await.iter().filter(|p| ready(p)).count()
    }

    pub(crate) async fn wait_ready(&self, secs: u64, color: &str, n: usize) {
        eventually(
            Duration::from_secs(secs),
            &format!("{n} ready {color} pods"),
            || async { (self.ready(color).await == n).then_some(()) },
        )
        .await;
    }

    async fn wait_gone(&self, secs: u64, color: &str) {
        eventually(
            Duration::from_secs(secs),
            &format!("every {color} pod gone"),
            || async { self.pods(color).await.is_empty().then_some(()) },
        )
        .await;
    }

    /// `chaos kill-pods --color C --force`, straight through the API.
    pub(crate) async fn kill(&self, color: &str) {
        let lp = ListParams::default().labels(&format!("app=web,version={color}"));
        self.api::<Pod>()
            .delete_collection(&DeleteParams::default().grace_period(0), &lp)
            .await
            .unwrap();
    }

    async fn scale(&self, color: &str, replicas: i32) {
        self.api::<Deployment>()
            .patch(
                &format!("web-{color}"),
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"replicas": replicas}})),
            )
            .await
            .unwrap();
    }
}

/// A watcher running in-process, and what it said.
struct Watching {
    stop: CancellationToken,
    task: JoinHandle<Result<Outcome, WatchError>>,
    log: Arc<Mutex<Vec<String>>>,
    last: Arc<Mutex<Option<Snapshot>>>,
    dir: RunDir,
    _out: TempDir,
}

impl Watching {
    /// Waits until the watcher's timeline holds an event that satisfies `ok`.
    async fn wait_recorded(&self, secs: u64, what: &str, ok: impl Fn(&EventKind) -> bool) {
        eventually(Duration::from_secs(secs), what, || async {
            let timeline = self.dir.read_timeline().unwrap_or_default();
            timeline.iter().any(|e| ok(&e.kind)).then_some(())
        })
        .await;
    }

    fn said(&self, needle: &str) -> bool {
        self.log.lock().unwrap().iter().any(|l| l.contains(needle))
    }

    async fn wait_said(&self, secs: u64, needle: &str) {
        eventually(
            Duration::from_secs(secs),
            &format!("the watcher to say {needle:?}"),
            || async { self.said(needle).then_some(()) },
        )
        .await;
    }

    /// Waits until the watcher's picture satisfies `ok`.
    async fn wait_seen(&self, secs: u64, what: &str, ok: impl Fn(&Snapshot) -> bool) {
        eventually(Duration::from_secs(secs), what, || async {
            self.last
                .lock()
                .unwrap()
                .as_ref()
                .is_some_and(&ok)
                .then_some(())
        })
        .await;
    }

    async fn finish(self) -> (Outcome, Vec<Event>, Vec<String>) {
        self.stop.cancel();
        let outcome = tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("the watcher stops")
            .unwrap()
            .expect("the watcher ran without error");
        let timeline = self.dir.read_timeline().unwrap();
        let log = self.log.lock().unwrap().clone();
        (outcome, timeline, log)
    }
}

fn ready_of(s: &Snapshot, color: Color) -> u32 {
    s.ready.iter().find(|(c, _)| *c == color).map_or(0, |r| r.1)
}

fn steady(s: &Snapshot) -> bool {
    s.selected == Some(Color::Blue)
        && ready_of(s, Color::Blue) >= 1
        && ready_of(s, Color::Green) >= 1
}

fn switches_to<'a>(timeline: &'a [Event], color: &str) -> Vec<&'a Event> {
    timeline
        .iter()
        .filter(|e| {
            matches!(&e.kind, EventKind::SelectorSwitched { to, reason, .. }
            if to == color && reason != "observed on the Service")
        })
        .collect()
}

fn election(identity: &str, secs: u64) -> Option<ElectionConfig> {
    Some(ElectionConfig::new(
        &controller::lease_name("web"),
        identity,
        Duration::from_secs(secs),
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_blue_fails_over_to_green_and_fails_back_only_after_the_stable_window() {
    let demo = Demo::start().await;
    let stable = Duration::from_secs(2);
    let w = demo.watch(demo.client.clone(), demo.plan(stable), election("solo", 5));
    w.wait_said(15, "holding lease").await;
    w.wait_seen(15, "the watcher to see both colours ready", steady)
        .await;

    demo.kill("blue").await;
    demo.wait_selected(10, "green").await;
    // Blue is replaced by its Deployment; after 2 s of health the Service goes back.
    demo.wait_selected(60, "blue").await;
    w.wait_said(10, "failback green → blue").await;
    let (outcome, timeline, log) = w.finish().await;

    let failovers = &outcome.summary.failovers;
    assert!(failovers.len() >= 2, "{failovers:?}");
    let (over, back) = (&failovers[0], &failovers[1]);
    assert_eq!(
        (
            over.direction.as_str(),
            over.from.as_str(),
            over.to.as_str()
        ),
        ("failover", "blue", "green")
    );
    assert!(
        over.duration_ms < 5_000,
        "failover took {} ms",
        over.duration_ms
    );
    assert_eq!(back.direction, "failback");
    assert!(
        log.iter()
            .any(|l| l.starts_with("[failover] switch service/web to green")),
        "{log:?}"
    );

    // The timeline shows the switch, and the switch back came no sooner than 2 s after the
    // replacement blue pod turned Ready.
    let to_green = switches_to(&timeline, "green");
    let to_blue = switches_to(&timeline, "blue");
    assert_eq!(to_green.len(), 1, "one failover, no flapping: {to_green:?}");
    assert_eq!(to_blue.len(), 1, "one fail-back: {to_blue:?}");
    let blue_ready = timeline
        .iter()
        .filter(|e| e.ts > to_green[0].ts && e.ts <= to_blue[0].ts)
        .filter(|e| matches!(&e.kind, EventKind::PodReady { color: Some(c), .. } if c == "blue"))
        .map(|e| e.ts)
        .next_back()
        .expect("a replacement blue pod turned ready before the fail-back");
    let waited = (to_blue[0].ts - blue_ready).num_milliseconds();
    assert!(
        waited >= 1_950,
        "failed back {waited} ms after blue was ready"
    );
    demo.lab.shutdown().await;
}

/// Observe-only, a switch it would make is recorded once while it stays the decision —
/// not again on every pod event until blue is back — and the Service is left alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_observe_only_watcher_records_a_switch_it_would_make_once() {
    let demo = Demo::start().await;
    let mut plan = demo.plan(Duration::from_secs(60));
    plan.observe_only = true;
    let w = demo.watch(demo.client.clone(), plan, None);
    w.wait_seen(15, "the watcher to see both colours ready", steady)
        .await;
    demo.kill("blue").await;
    w.wait_said(10, "would switch service/web to green").await;
    demo.wait_ready(30, "blue", 1).await;
    w.wait_seen(15, "blue ready again", steady).await;
    assert_eq!(
        demo.selected().await,
        "blue",
        "observe-only changes nothing"
    );
    let (_, _, log) = w.finish().await;
    let would: Vec<&String> = log
        .iter()
        .filter(|l| l.contains("would switch service/web to green"))
        .collect();
    assert_eq!(would.len(), 1, "{log:#?}");
    demo.lab.shutdown().await;
}

/// While the control plane answers 503 for longer than the lease (as `resil chaos
/// region-outage --control-plane` makes it), the watcher keeps running and changes nothing;
/// once the API is back it holds the lease again and fails over as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watcher_rides_out_a_control_plane_outage_and_acts_after_it() {
    let demo = Demo::start().await;
    let w = demo.watch(
        demo.client.clone(),
        demo.plan(Duration::from_secs(60)),
        election("solo", 2),
    );
    w.wait_said(15, "holding lease").await;
    w.wait_seen(15, "the watcher to see both colours ready", steady)
        .await;
    let until = chrono::Utc::now() + chrono::Duration::seconds(4);
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(demo.client.clone());
    let switch = json!({"metadata": {"annotations": {
        "lab.resil.dev/api-outage-until":
            until.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    }}});
    namespaces
        .patch(
            "kube-system",
            &PatchParams::default(),
            &Patch::Merge(&switch),
        )
        .await
        .unwrap();
    let probe: Api<Pod> =
        Api::namespaced(crate::support::client_without_retry(&demo.lab).await, NS);
    match probe.list(&ListParams::default()).await {
        Err(kube::Error::Api(s)) => assert_eq!(s.code, 503, "{s:?}"),
        other => panic!("the API still answers: {other:?}"),
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(!w.task.is_finished(), "the watcher kept running");
    assert_eq!(demo.selected().await, "blue", "nothing changed meanwhile");

    demo.kill("blue").await;
    demo.wait_selected(30, "green").await;
    let (_, timeline, log) = w.finish().await;
    assert_eq!(switches_to(&timeline, "green").len(), 1, "{log:?}");
    assert!(
        log.iter()
            .any(|l| l.contains("stopped acting until it can")),
        "the watcher stood down while it could not renew its lease: {log:?}"
    );
    demo.lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watcher_started_while_blue_is_down_fails_over_at_once() {
    let demo = Demo::start().await;
    demo.scale("blue", 0).await;
    demo.wait_gone(30, "blue").await;
    let started = tokio::time::Instant::now();
    let w = demo.watch(
        demo.client.clone(),
        demo.plan(Duration::from_secs(20)),
        election("late", 5),
    );
    demo.wait_selected(10, "green").await;
    let took = started.elapsed();
    assert!(took < Duration::from_secs(5), "switched after {took:?}");
    let (_, timeline, _) = w.finish().await;
    assert_eq!(switches_to(&timeline, "green").len(), 1);
    demo.lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watcher_started_on_a_healthy_demo_raises_no_alarm_while_its_watches_list() {
    let demo = Demo::start().await;
    // Several starts: the watches' first lists arrive in any order, and a Service listed
    // before the pods once read as "neither colour has a ready pod".
    for _ in 0..6 {
        let w = demo.watch(demo.client.clone(), demo.plan(Duration::from_secs(2)), None);
        w.wait_seen(15, "the watcher to see both colours ready", steady)
            .await;
        let (_, timeline, log) = w.finish().await;
        let decisions: Vec<&Event> = timeline
            .iter()
            .filter(|e| matches!(&e.kind, EventKind::Decision { rule, .. } if rule != "leader-election"))
            .collect();
        assert!(decisions.is_empty(), "{decisions:?}");
        assert!(!log.iter().any(|l| l.starts_with("warning")), "{log:?}");
    }
    assert_eq!(demo.selected().await, "blue");
    demo.lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_both_colours_down_the_watcher_never_switches_and_warns_loudly() {
    let demo = Demo::start().await;
    let w = demo.watch(demo.client.clone(), demo.plan(Duration::from_secs(2)), None);
    w.wait_seen(15, "the watcher to see both colours ready", steady)
        .await;
    demo.scale("green", 0).await;
    demo.wait_gone(30, "green").await;
    demo.scale("blue", 0).await;
    w.wait_said(30, "not switching to a colour that cannot serve")
        .await;
    // Give a wrong switch every chance to happen.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(demo.selected().await, "blue");
    let events: Api<k8s_openapi::api::core::v1::Event> = demo.api();
    let reasons = event_reasons(&events).await;
    assert!(reasons.iter().any(|r| r == "NoHealthyColor"), "{reasons:?}");
    let (_, timeline, log) = w.finish().await;
    assert!(switches_to(&timeline, "green").is_empty(), "{log:?}");
    assert!(timeline.iter().any(
        |e| matches!(&e.kind, EventKind::Decision { rule, .. } if rule == "never-into-the-dark")
    ));
    assert!(
        log.iter()
            .any(|l| l.starts_with("warning: blue has 0 ready")),
        "{log:?}"
    );
    demo.lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capacity_aware_mode_scales_green_to_blues_size_before_switching() {
    let demo = Demo::start().await;
    // Only the watcher scales in this test.
    let hpas: Api<HorizontalPodAutoscaler> = demo.api();
    for color in ["blue", "green"] {
        hpas.delete(&format!("web-{color}"), &DeleteParams::default())
            .await
            .unwrap();
    }
    demo.scale("blue", 3).await;
    demo.wait_ready(60, "blue", 3).await;
    let mut plan = demo.plan(Duration::from_secs(60));
    plan.policy.ready_min = 2;
    plan.policy.prepare_standby = true;
    let w = demo.watch(demo.client.clone(), plan, None);
    w.wait_seen(15, "the watcher to see 3 blue pods", |s| {
        ready_of(s, Color::Blue) == 3 && s.selected == Some(Color::Blue)
    })
    .await;

    // Blue degrades to 1 ready pod (below ready-min 2) but still serves.
    demo.scale("blue", 1).await;
    demo.wait_selected(90, "green").await;
    // The Service's switch can reach the test before the watcher's recorder has seen it.
    w.wait_recorded(
        15,
        "the failover to green recorded",
        |e| matches!(e, EventKind::FailoverCompleted { to, .. } if to == "green"),
    )
    .await;
    let (outcome, timeline, log) = w.finish().await;

    let green: Deployment = demo.api().get("web-green").await.unwrap();
    assert_eq!(green.spec.replicas, Some(3), "{log:?}");
    let switch = switches_to(&timeline, "green")[0].ts;
    let prepared = timeline
        .iter()
        .find(|e| matches!(&e.kind, EventKind::Decision { rule, .. } if rule == "capacity-aware"))
        .expect("a capacity-aware decision");
    assert!(prepared.ts < switch);
    let mut green_ready = std::collections::BTreeSet::new();
    for e in timeline.iter().filter(|e| e.ts <= switch) {
        if let EventKind::PodReady {
            pod,
            color: Some(c),
        } = &e.kind
            && c == "green"
        {
            green_ready.insert(pod.clone());
        }
    }
    assert!(
        green_ready.len() >= 3,
        "green had {green_ready:?} ready at the switch"
    );
    let over = &outcome.summary.failovers[0];
    assert!(
        over.standby_prepared && over.prepare_ms.is_some(),
        "{over:?}"
    );
    demo.lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_hpa_scale_up_is_recorded_with_its_scaling_latency() {
    let demo = Demo::start().await;
    let w = demo.watch(
        demo.client.clone(),
        demo.plan(Duration::from_secs(20)),
        None,
    );
    w.wait_seen(15, "the watcher to see both colours ready", steady)
        .await;
    // The HPA must run at least 2 green pods: it raises desiredReplicas, the Deployment
    // follows, a new pod turns Ready.
    let hpas: Api<HorizontalPodAutoscaler> = demo.api();
    hpas.patch(
        "web-green",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"minReplicas": 2}})),
    )
    .await
    .unwrap();
    demo.wait_ready(60, "green", 2).await;
    w.wait_seen(10, "the watcher to see 2 green pods", |s| {
        ready_of(s, Color::Green) == 2
    })
    .await;
    let (outcome, timeline, _) = w.finish().await;
    let scale = outcome
        .summary
        .scaling
        .iter()
        .find(|s| s.color == "green")
        .expect("a green scale-up");
    assert_eq!((scale.from_replicas, scale.to_replicas), (1, 2));
    let latency = scale.latency_ms.expect("the new pod turned ready");
    assert!(latency > 0 && latency < 60_000, "{latency} ms");
    assert!(timeline.iter().any(|e| matches!(&e.kind,
        EventKind::HpaReplicas { color: Some(c), desired: 2, .. } if c == "green")));
    demo.lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watcher_that_stops_hands_the_lease_to_the_standby_at_once() {
    let demo = Demo::start().await;
    let plan = demo.plan(Duration::from_secs(20));
    // A 30 s lease: a takeover within seconds can only come from the release.
    let a = demo.watch(demo.client.clone(), plan.clone(), election("a", 30));
    a.wait_said(15, "holding lease").await;
    let b = demo.watch(demo.client.clone(), plan, election("b", 30));
    b.wait_said(15, "is held by a; b records but does not act")
        .await;
    let stopped = tokio::time::Instant::now();
    a.finish().await;
    b.wait_said(
        10,
        "holding lease distributed-resilience/resil-watch-web as b",
    )
    .await;
    assert!(stopped.elapsed() < Duration::from_secs(10));
    demo.kill("blue").await;
    demo.wait_selected(10, "green").await;
    let (_, _, log) = b.finish().await;
    assert!(
        log.iter()
            .any(|l| l.starts_with("[failover] switch service/web to green")),
        "{log:?}"
    );
    demo.lab.shutdown().await;
}

/// A `resil watch` process and its stderr, line by line.
struct WatchProcess {
    child: tokio::process::Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl WatchProcess {
    fn spawn(demo: &Demo, identity: &str) -> WatchProcess {
        let home = demo.dir.path().join(identity);
        std::fs::create_dir_all(&home).unwrap();
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_resil"))
            .args(["watch", "--stable-for", "2s", "--lease-duration", "2s"])
            .args(["--identity", identity, "--out"])
            .arg(home.join("out"))
            .env("KUBECONFIG", &demo.kubeconfig)
            .env("HOME", &home)
            .env("XDG_CONFIG_HOME", home.join(".config"))
            .env("XDG_STATE_HOME", home.join(".state"))
            .env("RUST_LOG", "off")
            .env("NO_COLOR", "1")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (sink, stderr) = (lines.clone(), child.stderr.take().unwrap());
        tokio::spawn(async move {
            let mut reader = tokio::io::BufReader::new(stderr).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                sink.lock().unwrap().push(line);
            }
        });
        WatchProcess { child, lines }
    }

    fn said(&self, needle: &str) -> bool {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains(needle))
    }

    async fn wait_said(&self, secs: u64, needle: &str) {
        let what = format!("{needle:?} in {:?}", self.lines.lock().unwrap());
        eventually(Duration::from_secs(secs), &what, || async {
            self.said(needle).then_some(())
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_watchers_share_one_lease_and_the_standby_takes_over_when_the_holder_dies() {
    let demo = Demo::start().await;
    let mut first = WatchProcess::spawn(&demo, "first");
    first
        .wait_said(
            20,
            "holding lease distributed-resilience/resil-watch-web as first",
        )
        .await;
    let second = WatchProcess::spawn(&demo, "second");
    second
        .wait_said(20, "is held by first; second records but does not act")
        .await;

    // Both watch the failover; only the holder acts.
    demo.kill("blue").await;
    demo.wait_selected(10, "green").await;
    first.wait_said(10, "switch service/web to green").await;
    demo.wait_selected(60, "blue").await;
    assert!(
        !second.said("switch service/web"),
        "the standby acted: {:?}",
        second.lines.lock().unwrap()
    );

    // The holder dies without releasing: the standby waits out the lease, then acts.
    first.child.start_kill().unwrap();
    let _ = first.child.wait().await;
    second
        .wait_said(
            15,
            "holding lease distributed-resilience/resil-watch-web as second",
        )
        .await;
    demo.kill("blue").await;
    demo.wait_selected(10, "green").await;
    second.wait_said(10, "switch service/web to green").await;
    demo.lab.shutdown().await;
}

/// A TCP forwarder to the lab's API that can cut every open connection and refuse new
/// ones: a watch stream that drops, as a network blip or an API server restart drops it.
struct Forwarder {
    port: u16,
    open: Arc<AtomicBool>,
    connections: Arc<Mutex<CancellationToken>>,
}

impl Forwarder {
    async fn start(target: std::net::SocketAddr) -> Forwarder {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let open = Arc::new(AtomicBool::new(true));
        let connections = Arc::new(Mutex::new(CancellationToken::new()));
        let (open2, conns2) = (open.clone(), connections.clone());
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !open2.load(Ordering::SeqCst) {
                    continue; // dropped: the client sees the connection close
                }
                let cut = conns2.lock().unwrap().clone();
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        () = cut.cancelled() => {}
                    }
                });
            }
        });
        Forwarder {
            port,
            open,
            connections,
        }
    }

    fn cut(&self) {
        self.open.store(false, Ordering::SeqCst);
        let mut conns = self.connections.lock().unwrap();
        conns.cancel();
        *conns = CancellationToken::new();
    }

    fn restore(&self) {
        self.open.store(true, Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watches_that_drop_or_expire_still_see_the_active_colour_go_down() {
    let demo = Demo::start().await;
    let fwd = Forwarder::start(demo.lab.addr()).await;
    let yaml = demo.lab.kubeconfig_yaml().replace(
        &demo.lab.server_url(),
        &format!("https://127.0.0.1:{}", fwd.port),
    );
    let kubeconfig = kube::config::Kubeconfig::from_yaml(&yaml).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .unwrap();
    let via_fwd = kube::Client::try_from(config).unwrap();
    let w = demo.watch(via_fwd, demo.plan(Duration::from_secs(60)), None);
    w.wait_seen(15, "the watcher to see both colours ready", steady)
        .await;

    // 1. The streams drop; blue goes away meanwhile; they resume from where they were.
    fwd.cut();
    demo.scale("blue", 0).await;
    demo.wait_gone(30, "blue").await;
    fwd.restore();
    demo.wait_selected(20, "green").await;

    // 2. The streams drop and, while they are down, more than the API server's event
    //    history happens: resuming gets 410 Expired, the watcher relists and still sees
    //    green go down (and fails over to blue, which came back meanwhile).
    w.wait_seen(10, "the watcher to see green selected", |s| {
        s.selected == Some(Color::Green)
    })
    .await;
    fwd.cut();
    demo.scale("blue", 1).await;
    demo.wait_ready(60, "blue", 1).await;
    demo.scale("green", 0).await;
    demo.wait_gone(30, "green").await;
    let store = demo.lab.store();
    let before = store.resource_version();
    flood(store).await;
    assert!(store.resource_version() - before > 10_000);
    fwd.restore();
    demo.wait_selected(20, "blue").await;
    let (_, timeline, log) = w.finish().await;
    // Each outage is said once per stream, not once per retry, and the 410 gets a line of
    // its own; the timeline notes the resume. A stream whose next try falls after the
    // second restore never fails to connect in that outage (seen under a full suite
    // run), so it says 2 lines, not 3; retries every 100 ms–2 s would say many more.
    let lost = |what: &str| {
        log.iter()
            .filter(|l| l.contains(&format!("lost the watch on {what}:")))
            .count()
    };
    for stream in ["pods", "services"] {
        assert!(
            (2..=3).contains(&lost(stream)),
            "{stream}: {} lines: {log:#?}",
            lost(stream)
        );
    }
    assert!(
        log.iter()
            .any(|l| l.contains("lost the watch on pods") && l.contains("Expired")),
        "no 410: {log:#?}"
    );
    assert!(timeline.iter().any(|e| matches!(&e.kind,
        EventKind::Note { message } if message.starts_with("the watch on pods resumed after"))));
    assert_eq!(switches_to(&timeline, "green").len(), 1, "{log:?}");
    assert_eq!(switches_to(&timeline, "blue").len(), 1, "{log:?}");
    demo.lab.shutdown().await;
}

/// 10 001 writes to one Lease outside the demo: more than the lab's event history holds.
async fn flood(store: &resil_lab::Store) {
    let kind = resil_lab::store::kinds::lookup("coordination.k8s.io", "v1", "leases").unwrap();
    let lease = |n: u32| {
        json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
               "metadata": {"name": "flood", "annotations": {"n": n.to_string()}},
               "spec": {}})
    };
    store.create(kind, "default", lease(0)).unwrap();
    for n in 1..=10_001u32 {
        store
            .update(
                kind,
                "default",
                "flood",
                lease(n),
                resil_lab::store::WriteMode::Main,
            )
            .unwrap();
        if n % 500 == 0 {
            // Let the lab's own controllers keep up with the fan-out.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
