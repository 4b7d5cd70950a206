//! `resil lab up | down | status | kubeconfig`: the command layer of the lab. It turns
//! [`LabArgs`] into a [`LabUpPlan`], drives [`daemon`](super::daemon) (the background
//! process and its files) and [`kubeconfig`](super::kubeconfig) (the user's `resil-lab`
//! context), runs [`Lab`] itself for `up --foreground`, and is the only lab code that
//! prints. Called by [`super::command`].

use std::ffi::OsString;
use std::fs;
use std::net::{Ipv4Addr, TcpListener};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use chrono::Utc;

use super::daemon::{self, LabInfo, Liveness, StateDir, StateLock};
use super::kubeconfig::{self, LabEntries};
use super::labs::Target;
use super::{Lab, LabConfig};
use crate::args::{Globals, LabArgs, LabCommand, LabUpArgs};
use resil_common::Exit;

/// How long `lab up` waits for the API to answer before giving up.
const READY_DEADLINE: Duration = Duration::from_secs(10);
/// How long `lab down` lets the lab stop its pods and persist state before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(10);
/// How long `lab status` waits for the lab's status endpoint.
const STATUS_TIMEOUT: Duration = Duration::from_secs(3);
/// How often a running lab checks whether `lab.log` needs rotating.
const LOG_ROTATE_PERIOD: Duration = Duration::from_secs(10);

/// "the lab is not running; start it with `resil lab up`" (with `--name` for a named lab).
fn not_running(target: &Target) -> String {
    format!(
        "{} is not running; start it with `resil lab up{}`",
        target.called(),
        target.flag()
    )
}

/// "The lab ..." at the start of a sentence.
fn capital(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map_or_else(String::new, |c| {
        c.to_uppercase().chain(chars).collect::<String>()
    })
}

/// `resil lab ...`: dispatches to one subcommand.
pub async fn run(args: LabArgs, global: &Globals) -> anyhow::Result<Exit> {
    let root = StateDir::resolve(args.state_dir)?;
    let named = args.name.is_some();
    let target = Target::new(&root, args.name)?;
    match args.command {
        LabCommand::Up(up) => {
            let plan = LabUpPlan::new(up, global)?;
            if let Some(warning) = files_short(&plan, open_file_limit()) {
                eprintln!("{warning}");
            }
            if plan.foreground {
                foreground(&target, &plan).await
            } else {
                up_detached(&target, &plan, global).await
            }
        }
        LabCommand::Down(down_args) if down_args.all => {
            if named {
                bail!("`lab down --all` stops every lab; drop --name, or drop --all to stop one");
            }
            super::fleet::down_all(&root, global).await
        }
        LabCommand::Down(_) => down(&target, global).await,
        LabCommand::Status if !named && !super::labs::named(root.path()).is_empty() => {
            super::fleet::status_all(&root).await
        }
        LabCommand::Status => status(&target).await,
        LabCommand::Kubeconfig => print_kubeconfig(&target).await,
    }
}

/// Open files the lab holds besides its pods' (listeners, state, clients' connections,
/// probes in flight).
const FILES_BESIDE_PODS: u64 = 200;

/// This process's open-file limit (the lab it starts inherits it; `main` has raised it to
/// the hard limit already).
fn open_file_limit() -> Option<u64> {
    use nix::sys::resource::{Resource, getrlimit};
    getrlimit(Resource::RLIMIT_NOFILE)
        .ok()
        .map(|(soft, _)| soft)
}

/// A warning when an open-file limit of `limit` cannot hold the pods the nodes take.
fn files_short(plan: &LabUpPlan, limit: Option<u64>) -> Option<String> {
    let limit = limit?;
    let capacity = plan.nodes.count as u64 * u64::from(plan.max_pods);
    let room = limit.saturating_sub(FILES_BESIDE_PODS) / crate::kubelet::FILES_PER_POD;
    (room < capacity).then(|| {
        format!(
            "warning: the open-file limit ({limit}) holds about {room} pods; the nodes take \
             {capacity} ({} × --max-pods {}). Pods past that fail to start. Raise the hard \
             limit (`ulimit -Hn`, LimitNOFILE= for a service) or ask for fewer.",
            plan.nodes.count, plan.max_pods
        )
    })
}

/// `lab up`, resolved.
#[derive(Debug, Clone)]
struct LabUpPlan {
    foreground: bool,
    /// The port asked for; `None` means the last one used if it is free, else any.
    port: Option<u16>,
    pod_program: Option<PathBuf>,
    hpa_sync_period: Duration,
    /// Each node's pod capacity.
    max_pods: u32,
    /// Nodes and zones.
    nodes: crate::nodes::NodeLayout,
    node_monitor_grace_period: Duration,
    default_toleration_seconds: u32,
    /// The user's kubeconfig to add `resil-lab` to; `None` with `--no-kubeconfig`.
    kubeconfig: Option<PathBuf>,
}

impl LabUpPlan {
    fn new(args: LabUpArgs, global: &Globals) -> anyhow::Result<LabUpPlan> {
        if args.hpa_sync_period.is_zero() {
            bail!("--hpa-sync-period must be longer than zero (e.g. 15s)");
        }
        if args.max_pods == 0 {
            bail!("--max-pods must be at least 1 (the upstream kubelet's default is 110)");
        }
        if args.nodes == 0 || args.nodes > 250 {
            bail!("--nodes must be between 1 and 250");
        }
        if args.zones.is_empty() || args.zones.iter().any(|z| z.trim().is_empty()) {
            bail!("--zones needs at least one non-empty zone name (e.g. a,b,c)");
        }
        if args.node_monitor_grace_period.is_zero() {
            bail!("--node-monitor-grace-period must be longer than zero (e.g. 40s)");
        }
        let nodes = crate::nodes::NodeLayout {
            count: args.nodes as usize,
            zones: args.zones.iter().map(|z| z.trim().to_string()).collect(),
            ..crate::nodes::NodeLayout::new(args.nodes as usize)
        };
        let kubeconfig = if args.no_kubeconfig {
            None
        } else {
            Some(kubeconfig::user_path(global.kubeconfig.as_deref())?)
        };
        let pod_program = match args.pod_program {
            Some(path) => Some(
                std::path::absolute(&path)
                    .with_context(|| format!("--pod-program {}", path.display()))?,
            ),
            None => None,
        };
        Ok(LabUpPlan {
            foreground: args.foreground,
            port: args.port,
            pod_program,
            hpa_sync_period: args.hpa_sync_period,
            max_pods: args.max_pods,
            nodes,
            node_monitor_grace_period: args.node_monitor_grace_period,
            default_toleration_seconds: args.default_toleration_seconds,
            kubeconfig,
        })
    }

    /// The arguments of the detached `resil lab up --foreground` child. It never touches
    /// the user's kubeconfig: the parent does, so that it can report the outcome.
    fn child_args(&self, target: &Target, global: &Globals) -> Vec<OsString> {
        let mut args: Vec<OsString> = Vec::new();
        if global.verbose > 0 {
            args.push(format!("-{}", "v".repeat(usize::from(global.verbose))).into());
        }
        // The log is a file, not a terminal.
        args.push("--no-color".into());
        args.extend([
            "lab".into(),
            "--state-dir".into(),
            target.root.clone().into(),
        ]);
        if let Some(name) = &target.name {
            args.extend(["--name".into(), name.into()]);
        }
        args.extend(["up", "--foreground", "--no-kubeconfig"].map(OsString::from));
        args.push("--hpa-sync-period".into());
        args.push(format!("{}ms", self.hpa_sync_period.as_millis()).into());
        args.push("--max-pods".into());
        args.push(self.max_pods.to_string().into());
        args.push("--nodes".into());
        args.push(self.nodes.count.to_string().into());
        args.push("--zones".into());
        args.push(self.nodes.zones.join(",").into());
        args.push("--node-monitor-grace-period".into());
        args.push(format!("{}ms", self.node_monitor_grace_period.as_millis()).into());
        args.push("--default-toleration-seconds".into());
        args.push(self.default_toleration_seconds.to_string().into());
        if let Some(port) = self.port {
            args.push("--port".into());
            args.push(port.to_string().into());
        }
        if let Some(program) = &self.pod_program {
            args.push("--pod-program".into());
            args.push(program.into());
        }
        args
    }
}

/// `lab up` without `--foreground`: start `resil lab up --foreground` detached, wait until
/// it answers, add the context. Holds `lab.up.lock` meanwhile, so a second `lab up` at
/// the same time waits and then finds the lab this one started.
async fn up_detached(target: &Target, plan: &LabUpPlan, global: &Globals) -> anyhow::Result<Exit> {
    let state = &target.state;
    let Some(_starting) = state.lock_up(READY_DEADLINE * 2).await? else {
        bail!(
            "another `resil lab up` has been starting {} in {} for over {}s; \
             see {} or stop it with `resil lab down{}`",
            target.called(),
            state.path().display(),
            (READY_DEADLINE * 2).as_secs(),
            state.log_path().display(),
            target.flag()
        );
    };
    if let Some(info) = running_or_starting(target).await? {
        return already_running(target, plan, &info);
    }
    eprintln!(
        "Starting {} (state in {}) ...",
        target.called(),
        state.path().display()
    );
    let started = Instant::now();
    let program = std::env::current_exe().context("cannot find the resil binary to run")?;
    let (mut child, log_offset) =
        state.spawn_detached(&program, &plan.child_args(target, global))?;
    let info = match state
        .wait_ready(&mut child, log_offset, READY_DEADLINE)
        .await
    {
        Ok(info) => info,
        // It found a lab started by hand (`lab up --foreground`) holding the directory,
        // and left: report that one.
        Err(daemon::DaemonError::Died { status, .. }) if status.success() => {
            match running_or_starting(target).await? {
                Some(info) => return already_running(target, plan, &info),
                None => bail!(
                    "the lab exited at once without an error; see {}",
                    state.log_path().display()
                ),
            }
        }
        Err(err) => return Err(err.into()),
    };
    eprintln!(
        "Lab API at {} (pid {}), ready in {:.2}s.",
        info.server_url(),
        info.pid,
        started.elapsed().as_secs_f64()
    );
    add_context(target, plan, &info)
}

/// Says which lab runs already, and makes sure its context is in place.
fn already_running(target: &Target, plan: &LabUpPlan, info: &LabInfo) -> anyhow::Result<Exit> {
    eprintln!(
        "{} is already running (pid {}, {}, context \"{}\"); \
         `resil lab down{}` stops it.",
        capital(&target.called()),
        info.pid,
        info.server_url(),
        target.context(),
        target.flag()
    );
    add_context(target, plan, info)
}

/// A lab that runs, or one that another `lab up` is starting right now (then wait for it).
/// `None` when no lab runs; an error when a lab process is alive but never answers.
async fn running_or_starting(target: &Target) -> anyhow::Result<Option<LabInfo>> {
    let state = &target.state;
    let started = Instant::now();
    loop {
        match state.liveness().await {
            Liveness::Stopped => return Ok(None),
            Liveness::Running(info) => return Ok(Some(info)),
            Liveness::Unresponsive { pid } if started.elapsed() >= READY_DEADLINE => bail!(
                "a lab process (pid {pid}) is running for {} but its API does not answer; \
                 see {} or stop it with `resil lab down{}`",
                state.path().display(),
                state.log_path().display(),
                target.flag()
            ),
            Liveness::Unresponsive { .. } => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// Adds `resil-lab` to the user's kubeconfig (or, with `--no-kubeconfig`, prints where
/// the lab's own kubeconfig is).
fn add_context(target: &Target, plan: &LabUpPlan, info: &LabInfo) -> anyhow::Result<Exit> {
    let Some(path) = &plan.kubeconfig else {
        println!("{}", target.state.file("kubeconfig").display());
        return Ok(Exit::Ok);
    };
    let entries = lab_entries(target, info)?;
    kubeconfig::merge(path, &entries).with_context(|| {
        format!(
            "{} is running (pid {}), but its context could not be added; \
             `resil lab kubeconfig{}` prints it",
            target.called(),
            info.pid,
            target.flag()
        )
    })?;
    let context = target.context();
    eprintln!(
        "Set kubectl context to \"{context}\" (in {}).",
        path.display()
    );
    eprintln!("You can now use the lab with:\n\nkubectl cluster-info --context {context}\n");
    Ok(Exit::Ok)
}

/// The lab's kubeconfig entries: from the kubeconfig the lab wrote, else built from its
/// CA and token files. The server is always the address the lab announced; the names are
/// the lab's context name.
pub(crate) fn lab_entries(target: &Target, info: &LabInfo) -> anyhow::Result<LabEntries> {
    Ok(lab_entries_unnamed(&target.state, info)?.named(&target.context()))
}

fn lab_entries_unnamed(state: &StateDir, info: &LabInfo) -> anyhow::Result<LabEntries> {
    let path = state.file("kubeconfig");
    match fs::read_to_string(&path) {
        Ok(yaml) if !yaml.trim().is_empty() => Ok(LabEntries::from_lab_kubeconfig(&yaml)
            .with_context(|| format!("reading {}", path.display()))?
            .with_server(&info.server_url())),
        _ => {
            let read = |name: &str| {
                let file = state.file(name);
                fs::read_to_string(&file).with_context(|| {
                    format!(
                        "the lab has no kubeconfig and cannot read {}",
                        file.display()
                    )
                })
            };
            Ok(LabEntries::new(
                &info.server_url(),
                &read("ca.crt")?,
                &read("token")?,
            ))
        }
    }
}

/// `lab up --foreground`: run the lab in this process until Ctrl-C or SIGTERM. It first
/// takes `lab.lock`, and holds it to the end; if another lab holds it, that one is
/// reported and nothing starts.
async fn foreground(target: &Target, plan: &LabUpPlan) -> anyhow::Result<Exit> {
    let state = &target.state;
    let own_pid = std::process::id();
    let _lock = match lock_or_find(target).await? {
        Holder::Us(lock) => lock,
        Holder::Running(info) => {
            eprintln!(
                "{} is already running (pid {}, {}); not starting another.",
                capital(&target.called()),
                info.pid,
                info.server_url()
            );
            return Ok(Exit::Ok);
        }
    };
    // Listen for the stop signals before anything is announced, so a `lab down` right
    // after `lab up` still gets a clean shutdown.
    let stop = StopSignals::install()?;
    // Before the state is read: a corrupt state must not keep a killed lab's pods alive.
    kill_orphans(state);
    state.write_pid(own_pid)?;
    let log = state.log_path();
    let rotation = tokio::spawn(async move {
        let mut tick = tokio::time::interval(LOG_ROTATE_PERIOD);
        loop {
            tick.tick().await;
            if let Err(e) = daemon::rotate_log(&log, daemon::LOG_CAP) {
                tracing::warn!("cannot rotate {}: {e}", log.display());
            }
        }
    });
    let mut config = LabConfig::new(state.path());
    config.node_ports = target.claim_node_ports().await?;
    config.port = plan.port.unwrap_or_else(|| last_port_if_free(state));
    config.hpa_sync_period = plan.hpa_sync_period;
    config.max_pods = plan.max_pods as usize;
    config.nodes = plan.nodes.clone();
    config.node_monitor_grace_period = plan.node_monitor_grace_period;
    config.default_toleration_seconds = i64::from(plan.default_toleration_seconds);
    if let Some(program) = &plan.pod_program {
        config.pod_program = program.clone();
    }
    let lab = match Lab::start(config).await {
        Ok(lab) => lab,
        Err(err) => {
            rotation.abort();
            state.clear_if_owned_by(own_pid);
            return Err(err).context("cannot start the lab");
        }
    };
    let announced = announce(target, plan, &lab, own_pid);
    let exit = match announced {
        Ok(info) => {
            println!(
                "resil lab listening on {} (pid {own_pid}, state in {}); stop it with Ctrl-C or `resil lab down{}`",
                info.server_url(),
                state.path().display(),
                target.flag()
            );
            stop.wait().await
        }
        Err(err) => Err(err),
    };
    println!("Stopping the lab ...");
    lab.shutdown().await;
    rotation.abort();
    state.clear_if_owned_by(own_pid);
    println!("The lab stopped.");
    exit
}

/// Who holds the state directory.
enum Holder {
    /// This process: it runs the lab.
    Us(StateLock),
    /// Another lab, which answers.
    Running(LabInfo),
}

/// Takes `lab.lock`, or finds the lab that holds it. A lab that holds it but does not
/// answer yet is starting: wait for it (bounded); if it goes away meanwhile, take over.
async fn lock_or_find(target: &Target) -> anyhow::Result<Holder> {
    let state = &target.state;
    let started = Instant::now();
    loop {
        if let Some(lock) = state.lock_daemon()? {
            return Ok(Holder::Us(lock));
        }
        if let Liveness::Running(info) = state.liveness().await {
            return Ok(Holder::Running(info));
        }
        if started.elapsed() >= READY_DEADLINE {
            bail!(
                "another lab process holds {} but its API does not answer; \
                 see {} or stop it with `resil lab down{}`",
                state.file("lab.lock").display(),
                state.log_path().display(),
                target.flag()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Stops pod processes a previous lab left behind (it was killed, so it could not).
fn kill_orphans(state: &StateDir) {
    match super::kubelet::kill_orphans(state.path()) {
        Ok(killed) if !killed.is_empty() => {
            let pods: Vec<String> = killed
                .iter()
                .map(|p| format!("{} (pid {})", p.pod, p.pid))
                .collect();
            println!(
                "Stopped pod processes a previous lab left behind: {}.",
                pods.join(", ")
            );
        }
        Ok(_) => {}
        Err(e) => tracing::warn!("cannot stop the pod processes of a previous lab: {e}"),
    }
}

/// Writes the lab's kubeconfig and `lab.json` (in that order: `lab.json` tells a waiting
/// `lab up` that everything is in place), then adds the user's context unless told not to.
fn announce(target: &Target, plan: &LabUpPlan, lab: &Lab, own_pid: u32) -> anyhow::Result<LabInfo> {
    let state = &target.state;
    let info = LabInfo {
        pid: own_pid,
        address: lab.addr(),
        started_at: Utc::now(),
    };
    let yaml = lab.kubeconfig_yaml();
    let yaml = if yaml.trim().is_empty() || target.name.is_some() {
        // A named lab's own kubeconfig names its context `resil-<name>` too.
        lab_entries(target, &info)?.to_kubeconfig_yaml()?
    } else {
        yaml
    };
    let path = state.file("kubeconfig");
    resil_common::atomic::write_with_mode(&path, yaml.as_bytes(), Some(0o600))
        .with_context(|| format!("cannot write {}", path.display()))?;
    state.write_info(&info)?;
    if plan.kubeconfig.is_some() {
        add_context(target, plan, &info)?;
    }
    Ok(info)
}

/// The port the previous lab used, if nothing else holds it now; else 0 (any free port).
fn last_port_if_free(state: &StateDir) -> u16 {
    match state.last_port() {
        Some(port) if port != 0 && TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok() => port,
        _ => 0,
    }
}

/// The signals that stop a foreground lab, registered up front.
struct StopSignals {
    terminate: tokio::signal::unix::Signal,
    hangup: tokio::signal::unix::Signal,
}

impl StopSignals {
    fn install() -> anyhow::Result<StopSignals> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(StopSignals {
            terminate: signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?,
            hangup: signal(SignalKind::hangup()).context("cannot listen for SIGHUP")?,
        })
    }

    async fn wait(mut self) -> anyhow::Result<Exit> {
        tokio::select! {
            // Ctrl-C in the terminal the lab is attached to.
            result = tokio::signal::ctrl_c() => {
                result.context("cannot listen for Ctrl-C")?;
                Ok(Exit::Interrupted)
            }
            // `resil lab down`, or a supervisor, asks it to stop.
            _ = self.terminate.recv() => Ok(Exit::Ok),
            // The terminal it was attached to went away.
            _ = self.hangup.recv() => Ok(Exit::Ok),
        }
    }
}

/// `lab down`: stop the lab and its leftovers, remove the context.
async fn down(target: &Target, global: &Globals) -> anyhow::Result<Exit> {
    if !stop_one(target).await? {
        eprintln!("{} is not running.", capital(&target.called()));
    }
    remove_context(target, global)?;
    Ok(Exit::Ok)
}

/// Stops one lab and the pod processes it left behind, saying what it stopped. Returns
/// whether a lab process was running.
pub(crate) async fn stop_one(target: &Target) -> anyhow::Result<bool> {
    let report = target.state.stop(STOP_GRACE).await?;
    let called = target.called();
    match report.lab_pid {
        Some(pid) if report.lab_killed => eprintln!(
            "Stopped {called} (pid {pid}) with SIGKILL: it did not stop within {}.",
            humantime::format_duration(STOP_GRACE)
        ),
        Some(pid) => eprintln!("Stopped {called} (pid {pid})."),
        None => {}
    }
    if !report.orphans.is_empty() {
        let pods: Vec<String> = report
            .orphans
            .iter()
            .map(|p| format!("{} (pid {})", p.pod, p.pid))
            .collect();
        eprintln!("Stopped pod processes left behind: {}.", pods.join(", "));
    }
    Ok(report.lab_pid.is_some())
}

/// Removes the lab's context from the user's kubeconfig, saying so.
pub(crate) fn remove_context(target: &Target, global: &Globals) -> anyhow::Result<()> {
    let path = kubeconfig::user_path(global.kubeconfig.as_deref())?;
    let context = target.context();
    let removal = kubeconfig::remove(&path, &context)?;
    if removal.removed {
        eprintln!("Removed context \"{context}\" from {}.", path.display());
    }
    if removal.unset_current {
        eprintln!("It was the current context; current-context is now unset.");
    }
    Ok(())
}

/// `lab status`: pid, address, uptime, object counts, node ports that cannot be bound.
async fn status(target: &Target) -> anyhow::Result<Exit> {
    let state = &target.state;
    let info = match state.liveness().await {
        Liveness::Running(info) => info,
        Liveness::Stopped => bail!(not_running(target)),
        Liveness::Unresponsive { pid } => bail!(
            "a lab process (pid {pid}) is running but its API does not answer; \
             see {} or stop it with `resil lab down{}`",
            state.log_path().display(),
            target.flag()
        ),
    };
    let uptime = (Utc::now() - info.started_at).num_seconds().max(0);
    println!("{} is running.", capital(&target.called()));
    println!("pid:        {}", info.pid);
    println!("address:    {}", info.server_url());
    println!("context:    {}", target.context());
    println!(
        "uptime:     {}",
        humantime::format_duration(Duration::from_secs(uptime.unsigned_abs()))
    );
    println!("state dir:  {}", state.path().display());
    match api_status(target, &info).await {
        Ok(body) => println!("objects:    {}", object_counts(&body)),
        Err(err) => println!("objects:    unavailable ({err:#})"),
    }
    if let Ok(problems) = super::fleet::node_port_problems(target, &info).await {
        for problem in problems {
            println!("node port:  {problem}");
        }
    }
    Ok(Exit::Ok)
}

/// "deployments 2, pods 4, ..." from the `objects` map of `/resil/v1/status`.
fn object_counts(body: &serde_json::Value) -> String {
    let Some(objects) = body.get("objects").and_then(|o| o.as_object()) else {
        return "unavailable (the status has no object counts)".to_string();
    };
    if objects.is_empty() {
        return "none".to_string();
    }
    let mut counts: Vec<(&String, &serde_json::Value)> = objects.iter().collect();
    counts.sort_by(|a, b| a.0.cmp(b.0));
    counts
        .iter()
        .map(|(kind, n)| format!("{kind} {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A kube-rs client for the lab over its own TLS and token, with short timeouts.
pub(crate) async fn lab_client(target: &Target, info: &LabInfo) -> anyhow::Result<kube::Client> {
    let yaml = lab_entries(target, info)?.to_kubeconfig_yaml()?;
    let kubeconfig = kube::config::Kubeconfig::from_yaml(&yaml)?;
    let mut config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await?;
    config.connect_timeout = Some(STATUS_TIMEOUT);
    config.read_timeout = Some(STATUS_TIMEOUT);
    Ok(kube::Client::try_from(config)?)
}

/// GET /resil/v1/status over the lab's own TLS and token, through kube-rs.
pub(crate) async fn api_status(
    target: &Target,
    info: &LabInfo,
) -> anyhow::Result<serde_json::Value> {
    let client = lab_client(target, info).await?;
    let request = hyper::Request::get("/resil/v1/status").body(Vec::new())?;
    let text = tokio::time::timeout(STATUS_TIMEOUT, client.request_text(request))
        .await
        .context("the lab did not answer in time")??;
    Ok(serde_json::from_str(&text)?)
}

/// `lab kubeconfig`: print the lab's kubeconfig.
async fn print_kubeconfig(target: &Target) -> anyhow::Result<Exit> {
    let path = target.state.file("kubeconfig");
    match fs::read_to_string(&path) {
        Ok(yaml) if !yaml.trim().is_empty() => print!("{yaml}"),
        _ => match target.state.liveness().await {
            Liveness::Running(info) => {
                print!("{}", lab_entries(target, &info)?.to_kubeconfig_yaml()?)
            }
            _ => bail!(not_running(target)),
        },
    }
    Ok(Exit::Ok)
}

#[cfg(test)]
mod tests {
    use clap::{Parser, Subcommand};

    use super::*;

    /// The part of `resil`'s command line the detached child uses: the global `-v` and
    /// `--no-color` (as the binary's `GlobalArgs` declares them) and `lab`.
    #[derive(Debug, Parser)]
    struct Cli {
        #[arg(short, long, global = true, action = clap::ArgAction::Count)]
        verbose: u8,
        #[arg(long, global = true)]
        no_color: bool,
        #[command(subcommand)]
        command: Command,
    }

    #[derive(Debug, Subcommand)]
    enum Command {
        Lab(LabArgs),
    }

    #[test]
    fn the_detached_child_gets_arguments_that_parse_back_into_the_same_plan() {
        let state = StateDir::resolve(Some(PathBuf::from("/tmp/lab state"))).unwrap();
        let target = Target::new(&state, Some("region-a".into())).unwrap();
        let plan = LabUpPlan {
            foreground: false,
            port: Some(6443),
            pod_program: Some(PathBuf::from("/opt/resil")),
            hpa_sync_period: Duration::from_millis(1500),
            max_pods: 7,
            nodes: crate::nodes::NodeLayout {
                count: 5,
                zones: vec!["x".into(), "y".into()],
                region: "lab".into(),
            },
            node_monitor_grace_period: Duration::from_millis(2500),
            default_toleration_seconds: 3,
            kubeconfig: Some(PathBuf::from("/home/u/.kube/config")),
        };
        let global = Globals {
            verbose: 2,
            ..Globals::default()
        };
        let mut argv = vec![OsString::from("resil")];
        argv.extend(plan.child_args(&target, &global));
        let cli = Cli::try_parse_from(argv).unwrap();
        assert_eq!(cli.verbose, 2);
        assert!(cli.no_color);
        let Command::Lab(lab) = cli.command;
        assert_eq!(lab.state_dir.as_deref(), Some(state.path()));
        assert_eq!(lab.name.as_deref(), Some("region-a"));
        let LabCommand::Up(up) = lab.command else {
            panic!("not lab up");
        };
        assert!(up.foreground && up.no_kubeconfig);
        assert_eq!(up.port, Some(6443));
        assert_eq!(up.pod_program, plan.pod_program);
        assert_eq!(up.hpa_sync_period, plan.hpa_sync_period);
        assert_eq!(up.max_pods, plan.max_pods);
        assert_eq!(up.nodes, 5);
        assert_eq!(up.zones, ["x", "y"]);
        assert_eq!(up.node_monitor_grace_period, plan.node_monitor_grace_period);
        assert_eq!(up.default_toleration_seconds, 3);
    }

    #[test]
    fn a_lab_whose_pods_need_more_files_than_the_limit_is_warned_of() {
        let argv = [
            "resil",
            "lab",
            "up",
            "--no-kubeconfig",
            "--nodes",
            "3",
            "--max-pods",
            "110",
        ];
        let Command::Lab(lab) = Cli::try_parse_from(argv).unwrap().command;
        let LabCommand::Up(up) = lab.command else {
            panic!("not lab up");
        };
        let plan = LabUpPlan::new(up, &Globals::default()).unwrap();
        let warning = files_short(&plan, Some(1024)).expect("330 pods need more than 1024");
        assert!(
            warning.contains("(1024) holds about 206 pods") && warning.contains("take 330"),
            "{warning}"
        );
        assert_eq!(files_short(&plan, Some(2000)), None);
        assert_eq!(files_short(&plan, None), None);
    }

    #[test]
    fn object_counts_are_listed_by_kind_in_order() {
        let body = serde_json::json!({"objects": {"pods": 3, "deployments": 2}});
        assert_eq!(object_counts(&body), "deployments 2, pods 3");
        assert_eq!(object_counts(&serde_json::json!({"objects": {}})), "none");
        assert!(object_counts(&serde_json::json!({})).starts_with("unavailable"));
    }
}
