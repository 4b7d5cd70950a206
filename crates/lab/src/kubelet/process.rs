//! One container instance as a local process: `<program> demo-app --bind 127.0.0.1
//! --port P` with the pod's environment, in its own process group, its output captured
//! into capped log files, its pid in `pods.json`, its exit reaped and published. The
//! kubelet controller starts one [`PodProcess`] per container instance, stops it with
//! [`PodProcess::terminate`] (pod deletion) or [`PodProcess::kill_now`] (force, liveness
//! failure), and watches [`PodProcess::exited`] to restart it.
//!
//! Signals go to the process group, and only while the reaper has not yet seen the exit:
//! a reaped pid may be reused by an unrelated process.
//!
//! A pod process must not outlive the lab, even one killed with SIGKILL. On Linux each
//! asks for a parent-death signal (`PR_SET_PDEATHSIG`, SIGKILL) itself, as its first step
//! (`resil_common::lifeline`: no `pre_exec` hook, so the spawn is a cheap `posix_spawn`).
//! The kernel sends it when the *thread* that started the child ends, not the process, so
//! every pod process is started by one dedicated thread that lives as long as the lab
//! process ([`lifeline`]).
//! Elsewhere `pods.json` and the next `lab up`/`lab down` are the only safety net.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::watch;

use super::KubeletError;
use super::logs::{ContainerLogs, LogWriter};
use super::registry::PodRegistry;

/// Everything needed to start one container instance.
#[derive(Debug, Clone)]
pub struct PodLaunch {
    /// The program to run as `<program> demo-app ...` (the resil binary).
    pub program: PathBuf,
    /// Pod namespace.
    pub namespace: String,
    /// Pod name.
    pub pod: String,
    /// Container name (names the log file).
    pub container: String,
    /// The address the process listens on: its node's (see `nodes/mod.rs`).
    pub ip: std::net::Ipv4Addr,
    /// Port on `ip` the process must listen on (see `ports::free_port`).
    pub port: u16,
    /// The container's environment, resolved (see `env::container_env`); set after the
    /// lab's own `POD_NAME`, `POD_NAMESPACE`, `POD_IP`, `HOSTNAME`, so it can override them.
    pub env: Vec<(String, String)>,
    /// The lab's state directory (logs go under `pods/`).
    pub state_dir: PathBuf,
    /// Size cap per log file.
    pub log_cap: u64,
    /// The container's `resources.limits.cpu` in thousandths of a core, passed on as
    /// `--cpu-limit`: a pod process has no cgroup of its own, so the demo app enforces
    /// the limit on its work itself. `None`: no limit.
    pub cpu_limit_millicores: Option<i64>,
    /// The arguments to run the program with instead of `demo-app --bind IP --port P`
    /// (a container whose command is `resil load-worker ...`; see `image::program_args`).
    pub args: Option<Vec<String>>,
}

/// How a container instance ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessExit {
    /// Exit code, when it exited on its own.
    pub code: Option<i32>,
    /// Signal number, when a signal ended it.
    pub signal: Option<i32>,
    /// When the exit was seen.
    pub finished_at: DateTime<Utc>,
}

impl ProcessExit {
    /// The exit code Kubernetes reports: the code, or 128 + signal (SIGKILL → 137).
    pub fn exit_code(&self) -> i32 {
        match (self.code, self.signal) {
            (Some(code), _) => code,
            (None, Some(signal)) => 128 + signal,
            (None, None) => 255,
        }
    }

    /// The terminated-state reason Kubernetes reports: `Completed` for 0, else `Error`.
    pub fn reason(&self) -> &'static str {
        if self.exit_code() == 0 {
            "Completed"
        } else {
            "Error"
        }
    }
}

/// A running (or finished) container instance.
#[derive(Debug)]
pub struct PodProcess {
    pid: i32,
    port: u16,
    started_at: DateTime<Utc>,
    exit: watch::Receiver<Option<ProcessExit>>,
    listening: watch::Receiver<Option<SocketAddr>>,
    logs: ContainerLogs,
}

impl PodProcess {
    /// Starts the instance, records it in `registry`, and returns once it is spawned
    /// (not once it listens: see [`PodProcess::listening`]). Must run inside a tokio
    /// runtime (a reaper task and two log pumps are spawned).
    pub fn spawn(launch: &PodLaunch, registry: &Arc<PodRegistry>) -> Result<Self, KubeletError> {
        let logs = ContainerLogs::new(
            &launch.state_dir,
            &launch.namespace,
            &launch.pod,
            &launch.container,
        );
        let writer = logs
            .start_instance(launch.log_cap)
            .map_err(|source| KubeletError::Logs {
                path: logs.dir().to_path_buf(),
                source,
            })?;
        let mut child = lifeline::spawn(command(launch)).map_err(|source| KubeletError::Spawn {
            program: launch.program.clone(),
            source,
        })?;
        let started_at = Utc::now();
        // A spawned child always has an id until it is reaped, and nobody reaped it yet.
        let pid = child.id().map_or(-1, |id| id as i32);
        let pod = format!("{}/{}", launch.namespace, launch.pod);
        if let Err(source) = registry.add(pid, &pod) {
            // Without a record an orphan could outlive a killed lab: refuse to run it.
            let _ = child.start_kill();
            return Err(KubeletError::Registry { source });
        }

        let writer = Arc::new(std::sync::Mutex::new(writer));
        let (listening_tx, listening) = watch::channel(None);
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();
        let out_pump =
            stdout.map(|out| tokio::spawn(pump_stdout(out, Arc::clone(&writer), listening_tx)));
        let err_pump = stderr.map(|err| tokio::spawn(pump(err, Arc::clone(&writer))));

        let (exit_tx, exit) = watch::channel(None);
        let registry = Arc::clone(registry);
        tokio::spawn(async move {
            let exit = reap(&mut child).await;
            // Output written just before the exit still belongs to this instance.
            for pump in [out_pump, err_pump].into_iter().flatten() {
                let _ = tokio::time::timeout(Duration::from_secs(1), pump).await;
            }
            if let Err(err) = registry.remove(pid) {
                tracing::warn!(pid, "cannot update pods.json: {err}");
            }
            let _ = exit_tx.send(Some(exit));
        });

        Ok(PodProcess {
            pid,
            port: launch.port,
            started_at,
            exit,
            listening,
            logs,
        })
    }

    /// Process id (also the process group id).
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// The port it was told to listen on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// When it was started (the container's `state.running.startedAt`).
    pub fn started_at(&self) -> DateTime<Utc> {
        self.started_at
    }

    /// Its log files.
    pub fn logs(&self) -> &ContainerLogs {
        &self.logs
    }

    /// The exit, if it has been seen.
    pub fn try_exit(&self) -> Option<ProcessExit> {
        *self.exit.borrow()
    }

    /// Completes when the process has exited and been reaped.
    pub async fn exited(&self) -> ProcessExit {
        let mut rx = self.exit.clone();
        loop {
            if let Some(exit) = *rx.borrow_and_update() {
                return exit;
            }
            if rx.changed().await.is_err() {
                // The reaper always sends before it ends; a closed channel without a
                // value means the runtime is shutting down: report an unknown end.
                return (*rx.borrow()).unwrap_or(ProcessExit {
                    code: None,
                    signal: None,
                    finished_at: Utc::now(),
                });
            }
        }
    }

    /// Completes with the address once the app printed `listening on ADDR`, or with
    /// `None` if it exited first. Lets probes start the moment the port is open.
    pub async fn listening(&self) -> Option<SocketAddr> {
        let mut listening = self.listening.clone();
        tokio::select! {
            // The app announced its address.
            addr = listening.wait_for(Option::is_some) => addr.ok().and_then(|a| *a),
            // It died before announcing it (e.g. the port was taken).
            _ = self.exited() => None,
        }
    }

    /// SIGTERM to the group, wait up to `grace`, then SIGKILL; returns the exit.
    pub async fn terminate(&self, grace: Duration) -> ProcessExit {
        self.signal(Signal::Term);
        if let Ok(exit) = tokio::time::timeout(grace, self.exited()).await {
            return exit;
        }
        self.kill_now();
        self.exited().await
    }

    /// SIGKILL to the group at once (`--force --grace-period=0`, liveness failure).
    pub fn kill_now(&self) {
        self.signal(Signal::Kill);
    }

    fn signal(&self, signal: Signal) {
        if self.try_exit().is_some() || self.pid <= 1 {
            return; // reaped: the pid may belong to someone else now
        }
        send_group(self.pid, signal);
    }
}

impl Drop for PodProcess {
    /// A dropped instance must not keep running unseen (the lab shutting down, a test
    /// failing): kill it. The reaper task still reaps it and updates `pods.json`.
    fn drop(&mut self) {
        self.kill_now();
    }
}

#[derive(Debug, Clone, Copy)]
enum Signal {
    Term,
    Kill,
}

#[cfg(unix)]
fn send_group(pid: i32, signal: Signal) {
    use nix::sys::signal::{Signal as NixSignal, killpg};
    let signal = match signal {
        Signal::Term => NixSignal::SIGTERM,
        Signal::Kill => NixSignal::SIGKILL,
    };
    // ESRCH means it is already gone, which is what we wanted.
    let _ = killpg(nix::unistd::Pid::from_raw(pid), signal);
}

#[cfg(not(unix))]
fn send_group(_pid: i32, _signal: Signal) {}

fn command(launch: &PodLaunch) -> Command {
    let mut cmd = Command::new(&launch.program);
    if let Some(args) = &launch.args {
        cmd.args(args);
    } else {
        cmd.arg("demo-app")
            .args(["--bind", &launch.ip.to_string()])
            .args(["--port", &launch.port.to_string()]);
        if let Some(millis) = launch.cpu_limit_millicores.filter(|m| *m > 0) {
            cmd.arg("--cpu-limit").arg(format!("{millis}m"));
        }
    }
    cmd
        // A container does not inherit the node's environment.
        .env_clear()
        .env("POD_NAME", &launch.pod)
        .env("POD_NAMESPACE", &launch.namespace)
        .env("POD_IP", launch.ip.to_string())
        .env("HOSTNAME", &launch.pod)
        // The pod worker dropped loader variables already (and said so); this keeps
        // them out whoever builds the launch.
        .envs(
            launch
                .env
                .iter()
                .filter(|(k, _)| !super::env::is_loader_variable(k))
                .map(|(k, v)| (k, v)),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(false);
    #[cfg(unix)]
    cmd.process_group(0);
    // The child ties its life to the lab's (`resil_common::lifeline`); no `pre_exec` hook
    // here, so the spawn is a `posix_spawn`, not a `fork` of the whole lab.
    cmd.env(
        resil_common::lifeline::LAB_PID_ENV,
        std::process::id().to_string(),
    );
    cmd
}

/// Starts pod processes from one thread that never ends, so their parent-death signal
/// fires only when the lab process ends (see the module doc).
#[cfg(target_os = "linux")]
mod lifeline {
    use std::io;
    use std::sync::{OnceLock, mpsc};

    use tokio::process::{Child, Command};

    type Job = Box<dyn FnOnce() + Send>;

    /// The spawner thread's queue; the thread lives until the process exits, because the
    /// sender in this static is never dropped.
    static SPAWNER: OnceLock<Option<mpsc::Sender<Job>>> = OnceLock::new();

    /// Spawns `cmd` on the spawner thread, inside the caller's tokio runtime (which reaps
    /// the child). Blocks only for the fork and exec.
    pub fn spawn(mut cmd: Command) -> io::Result<Child> {
        let runtime = tokio::runtime::Handle::current();
        let sender = SPAWNER.get_or_init(|| {
            let (tx, rx) = mpsc::channel::<Job>();
            let thread = std::thread::Builder::new()
                .name("resil-pod-spawner".to_string())
                .spawn(move || {
                    for job in rx {
                        job();
                    }
                });
            thread.ok().map(|_| tx)
        });
        let Some(sender) = sender else {
            return Err(io::Error::other(
                "cannot start the thread that starts pod processes",
            ));
        };
        let (reply, answer) = mpsc::sync_channel(1);
        let job: Job = Box::new(move || {
            let _runtime = runtime.enter();
            let _ = reply.send(cmd.spawn());
        });
        let gone = || io::Error::other("the thread that starts pod processes is gone");
        sender.send(job).map_err(|_| gone())?;
        answer.recv().map_err(|_| gone())?
    }
}

/// Without a parent-death signal, pod processes are forked from the calling thread.
#[cfg(not(target_os = "linux"))]
mod lifeline {
    pub fn spawn(mut cmd: tokio::process::Command) -> std::io::Result<tokio::process::Child> {
        cmd.spawn()
    }
}

async fn reap(child: &mut Child) -> ProcessExit {
    let status = child.wait().await;
    let finished_at = Utc::now();
    match status {
        Ok(status) => {
            #[cfg(unix)]
            let signal = std::os::unix::process::ExitStatusExt::signal(&status);
            #[cfg(not(unix))]
            let signal = None;
            ProcessExit {
                code: status.code(),
                signal,
                finished_at,
            }
        }
        Err(err) => {
            tracing::warn!("waiting for a pod process failed: {err}");
            ProcessExit {
                code: None,
                signal: None,
                finished_at,
            }
        }
    }
}

type SharedWriter = Arc<std::sync::Mutex<LogWriter>>;

/// Appends a chunk. A std Mutex: held only for one small local write, never across an
/// await; both streams share one file, as `kubectl logs` interleaves them.
fn append(writer: &SharedWriter, bytes: &[u8]) {
    let mut writer = writer.lock().unwrap_or_else(|e| e.into_inner());
    if let Err(err) = writer.append(bytes) {
        tracing::warn!("cannot write a pod log: {err}");
    }
}

async fn pump(mut from: impl AsyncRead + Unpin, writer: SharedWriter) {
    let mut buf = vec![0u8; 8192];
    // Ends at EOF (the process closed the pipe or exited) or on a read error.
    while let Ok(n) = from.read(&mut buf).await {
        if n == 0 {
            break;
        }
        append(&writer, &buf[..n]);
    }
}

/// Like [`pump`], and reads the first line for the `listening on ADDR` announcement.
async fn pump_stdout(
    from: impl AsyncRead + Unpin,
    writer: SharedWriter,
    listening: watch::Sender<Option<SocketAddr>>,
) {
    let mut reader = BufReader::new(from);
    let mut first = Vec::new();
    // The first line is short; cap it so a chatty program cannot grow it unbounded.
    let limited = (&mut reader).take(4096).read_until(b'\n', &mut first).await;
    if limited.is_ok() && !first.is_empty() {
        append(&writer, &first);
        let addr = std::str::from_utf8(&first)
            .ok()
            .and_then(|line| line.trim().strip_prefix("listening on "))
            .and_then(|addr| addr.parse().ok());
        if addr.is_some() {
            let _ = listening.send(addr);
        }
    }
    pump(reader, writer).await;
}

/// The path of the program for tests: the `resil` binary next to the test executable
/// (`target/<profile>/resil`; cargo builds it for the integration tests it also builds).
#[cfg(test)]
pub(crate) fn test_program() -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable's path");
    let profile_dir = exe
        .parent()
        .and_then(std::path::Path::parent)
        .expect("tests run from target/<profile>/deps");
    let program = profile_dir.join(format!("resil{}", std::env::consts::EXE_SUFFIX));
    assert!(
        program.exists(),
        "{} is missing: build it first (`cargo build` or run the whole test suite)",
        program.display()
    );
    program
}

#[cfg(test)]
#[path = "process_tests.rs"]
mod tests;
