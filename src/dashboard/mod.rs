//! `resil dashboard`: one self-contained page on 127.0.0.1 for the room — the Service as
//! a switch, ready/total pods per colour, a tile per pod by zone and node, two minutes of
//! load and latency per colour, markers of faults, failovers, scale-ups, rollout steps and
//! rollbacks, the figures and the SLO verdicts — pushed to the page over Server-Sent
//! Events at least five times a second.
//!
//! Sources: the cluster, followed by the failover watcher in observe-only mode
//! (`crate::watch::controller`, the same watches `resil watch` runs) and by a pod and node
//! watch for the tiles ([`pods`]); the run being written
//! to a results directory ([`follow`]); or a finished run played back ([`replay`]). One
//! task owns the [`board::Board`], applies what the sources send and publishes a frame
//! after every change and at least every [`server::FRAME_INTERVAL`]. The page
//! (`page/`: HTML, a build-free script and styles) is compiled into the binary.
//!
//! Called by `resil dashboard` ([`command`]) and by `resil run --dashboard` ([`start`]).

pub mod board;
pub mod follow;
pub mod pods;
pub mod replay;
pub mod server;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::Exit;
use crate::cli::{DashboardArgs, GlobalArgs};
use crate::cluster::{self, ConnectOptions};
use crate::domain::Color;
use crate::watch::controller::{self, Update, WatchPlan};
use crate::watch::failover::Policy;
use board::{Board, Input};
use replay::{Recording, ReplayClock};

/// `resil dashboard`, resolved.
#[derive(Debug, Clone)]
pub struct DashboardPlan {
    /// Port on 127.0.0.1 (0: any free one).
    pub port: u16,
    /// The cluster to follow (`None`: none, e.g. a replay).
    pub watch: Option<WatchPlan>,
    /// The directory of a run being written, to follow (its `run.json` may not be there
    /// yet: `resil run --dashboard` starts the page first).
    pub follow: Option<PathBuf>,
    /// A finished run to play back, and how fast.
    pub replay: Option<(PathBuf, f64)>,
}

impl DashboardPlan {
    /// Resolves the command line: a replay needs no cluster, anything else follows the
    /// demo in the global `--namespace`.
    pub fn from_args(args: &DashboardArgs, global: &GlobalArgs) -> anyhow::Result<DashboardPlan> {
        if !(args.speed.is_finite() && args.speed > 0.0) {
            anyhow::bail!("--speed must be a positive number, e.g. 4");
        }
        let replay = args.replay.clone().map(|dir| (dir, args.speed));
        let follow = match &args.follow {
            Some(dir) => Some(
                crate::results::RunDir::open(dir)
                    .or_else(|_| crate::results::RunDir::newest(dir))
                    .with_context(|| format!("following {}", dir.display()))?
                    .path()
                    .to_path_buf(),
            ),
            None => None,
        };
        let watch = replay
            .is_none()
            .then(|| observer(ConnectOptions::from_global(global).namespace));
        Ok(DashboardPlan {
            port: args.port,
            watch,
            follow,
            replay,
        })
    }
}

/// The failover watcher as an observer of the demo in `namespace`: it records and
/// explains, and never changes the cluster.
pub fn observer(namespace: String) -> WatchPlan {
    WatchPlan {
        namespace,
        service: "web".to_string(),
        policy: Policy {
            primary: Color::Blue,
            ready_min: 1,
            stable_for: Duration::from_secs(30),
            prepare_standby: false,
        },
        observe_only: true,
        once: false,
        timeout: None,
    }
}

/// A dashboard being served.
#[derive(Debug)]
pub struct Dashboard {
    /// Where the page is.
    pub addr: SocketAddr,
    shutdown: CancellationToken,
    /// The task following a results directory, when there is one.
    follow: Option<JoinHandle<()>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Dashboard {
    /// The page's URL.
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// Waits (at most a few seconds) until the followed run's final report is on the
    /// page, then stops: `resil run --dashboard` at the end of a run.
    pub async fn finish(mut self) {
        if let Some(follow) = self.follow.take() {
            let _ = tokio::time::timeout(Duration::from_secs(3), follow).await;
            // One frame interval more, so the page receives the last frame.
            tokio::time::sleep(server::FRAME_INTERVAL * 2).await;
        }
        self.stop().await;
    }

    /// Stops serving and waits for every task.
    pub async fn stop(self) {
        self.shutdown.cancel();
        for task in self.follow.into_iter().chain(self.tasks) {
            let _ = task.await;
        }
    }
}

/// The board's clock: now, or the played-back time of a replay.
#[derive(Debug, Clone, Copy)]
enum Clock {
    Live,
    Replay(ReplayClock, tokio::time::Instant),
}

impl Clock {
    fn now(&self) -> DateTime<Utc> {
        match self {
            Clock::Live => Utc::now(),
            Clock::Replay(clock, began) => clock.at(began.elapsed()),
        }
    }
}

/// Starts the sources, the board and the server; `client` is needed when the plan
/// follows a cluster.
pub async fn start(plan: DashboardPlan, client: Option<kube::Client>) -> anyhow::Result<Dashboard> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", plan.port))
        .await
        .with_context(|| format!("listening on 127.0.0.1:{}", plan.port))?;
    let addr = listener.local_addr()?;
    let shutdown = CancellationToken::new();
    let (inputs, inputs_rx) = mpsc::unbounded_channel();
    let mut tasks = Vec::new();
    let clock = match &plan.replay {
        Some((dir, speed)) => {
            let recording = Recording::read(dir, *speed)
                .with_context(|| format!("reading {} to replay it", dir.display()))?;
            let began = tokio::time::Instant::now();
            let clock = Clock::Replay(recording.clock, began);
            tasks.push(tokio::spawn(replay::play(
                recording,
                began,
                inputs.clone(),
                shutdown.clone(),
            )));
            clock
        }
        None => Clock::Live,
    };
    if let (Some(watch), Some(client)) = (plan.watch.clone(), client) {
        tasks.push(tokio::spawn(pods::run(
            client.clone(),
            watch.namespace.clone(),
            inputs.clone(),
            shutdown.clone(),
        )));
        tasks.push(tokio::spawn(observe(
            client,
            watch,
            inputs.clone(),
            shutdown.clone(),
        )));
    }
    let follow = plan
        .follow
        .clone()
        .map(|dir| tokio::spawn(follow::run(dir, inputs.clone(), shutdown.clone())));
    drop(inputs);
    let (frames_tx, frames) = watch::channel(Arc::new(String::from("{}")));
    let board = Board::new(plan.replay.is_some());
    tasks.push(tokio::spawn(publish(
        board,
        inputs_rx,
        clock,
        frames_tx,
        shutdown.clone(),
    )));
    let serving = shutdown.clone();
    tasks.push(tokio::spawn(async move {
        if let Err(err) = server::serve(listener, frames, serving).await {
            tracing::warn!("dashboard server stopped: {err}");
        }
    }));
    Ok(Dashboard {
        addr,
        shutdown,
        follow,
        tasks,
    })
}

/// Runs the observing watcher, handing its updates to the board.
async fn observe(
    client: kube::Client,
    plan: WatchPlan,
    inputs: mpsc::UnboundedSender<Input>,
    shutdown: CancellationToken,
) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let forward = tokio::spawn(async move {
        while let Some(update) = rx.recv().await {
            // The page has no place for them; the terminal the dashboard runs in does.
            if let Update::Warning(w) = &update {
                tracing::warn!("watch: {w}");
            }
            if inputs.send(Input::Watch(update)).is_err() {
                return;
            }
        }
    });
    if let Err(err) = controller::run_with(client, plan, None, None, tx, shutdown).await {
        tracing::warn!("the dashboard lost the cluster: {err:#}");
    }
    let _ = forward.await;
}

/// Owns the board: applies inputs as they come and publishes a frame after each batch
/// and at least every [`server::FRAME_INTERVAL`].
async fn publish(
    mut board: Board,
    mut inputs: mpsc::UnboundedReceiver<Input>,
    clock: Clock,
    frames: watch::Sender<Arc<String>>,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(server::FRAME_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut open = true;
    loop {
        tokio::select! {
            // The dashboard is closing.
            _ = shutdown.cancelled() => return,
            // Something changed: take it and everything queued behind it.
            input = inputs.recv(), if open => match input {
                Some(input) => {
                    board.apply(input);
                    while let Ok(input) = inputs.try_recv() {
                        board.apply(input);
                    }
                }
                None => open = false,
            },
            // Nothing changed for a while: the clock moved on.
            _ = tick.tick() => {}
        }
        match serde_json::to_string(&board.frame(clock.now())) {
            Ok(json) => {
                frames.send_replace(Arc::new(json));
            }
            Err(err) => tracing::warn!("cannot encode the dashboard frame: {err}"),
        }
    }
}

/// `resil dashboard`
pub async fn command(args: DashboardArgs, global: &GlobalArgs) -> anyhow::Result<Exit> {
    let plan = DashboardPlan::from_args(&args, global)?;
    // Observing changes nothing, so no context guard. Following a results directory
    // still works without a cluster: the load's half of the page.
    let client = match (&plan.watch, &plan.follow) {
        (None, _) => None,
        (Some(_), follow) => {
            match cluster::connect(&ConnectOptions::from_global(global), None).await {
                Ok(target) => {
                    eprintln!("following the demo on {}", target.context);
                    Some(target.client)
                }
                Err(err) if follow.is_some() => {
                    eprintln!("warning: not following a cluster: {err:#}");
                    None
                }
                Err(err) => return Err(err.into()),
            }
        }
    };
    let dashboard = start(plan, client).await?;
    let url = dashboard.url();
    println!("dashboard at {url}");
    if args.open {
        open_browser(&url);
    }
    crate::exit::interrupted().await;
    dashboard.stop().await;
    // Ctrl-C is how a dashboard is meant to end.
    Ok(Exit::Ok)
}

/// Opens `url` with the desktop's opener, when there is one; a missing opener is said,
/// not an error (the URL is printed).
pub fn open_browser(url: &str) {
    let opener = if cfg!(target_os = "macos") {
        "open"
    } else {
        "xdg-open"
    };
    match std::process::Command::new(opener)
        .arg(url)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
    {
        Ok(_) => {}
        Err(err) => eprintln!("cannot run {opener} ({err}); open {url} yourself"),
    }
}
