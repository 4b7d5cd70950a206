//! The lab as a background process: its state directory, the files that say whether it
//! runs, spawning it detached, waiting until its API answers, and stopping it together with
//! any pod process it left behind. It does not start the API itself (that is
//! [`super::Lab`], run by `lab up --foreground` in the child) and prints nothing; the `lab`
//! command layer calls it.
//!
//! Files in the state directory that this module reads or writes:
//! - `lab.lock`: locked (`flock`, exclusive) by the lab process for its whole life, so one
//!   state directory never has two labs; the lock goes with the process, however it ends.
//! - `lab.up.lock`: locked by a detached `lab up` while it starts the lab and waits for
//!   it, so two `lab up` at once start one lab and the second reports it.
//! - `lab.pid`: the lab process id, decimal, written by the lab process once it holds
//!   `lab.lock`; removed when the lab stops.
//! - `lab.json`: `{"pid":N,"address":"127.0.0.1:PORT","started_at":"RFC 3339"}`, written
//!   atomically by the lab process once its API accepts connections — its presence (with a
//!   live pid) is what "running" means; removed when the lab stops.
//! - `lab.log`: the lab's stdout and stderr, appended to across starts; past
//!   [`LOG_CAP`] its content moves to `lab.log.1` (replacing the older one), checked at
//!   spawn and while the lab runs ([`rotate_log`]).
//! - `lab.port`: the last port the lab listened on, so a restart keeps kubeconfigs valid.
//! - `pods.json`: written by the lab's pod runtime, the pod processes it has running:
//!   `{"pods":[{"pid":N,"pod":"namespace/name"}]}`. A lab stopped cleanly stops its pods;
//!   a lab killed with SIGKILL cannot, so `lab down` signals every pid listed here that is
//!   still alive (on Linux only if its command line still says `demo-app`, so a recycled
//!   pid is left alone) and then removes the file.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, Read, Seek, SeekFrom};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

/// How often readiness and exit are polled: short enough that `lab up` returns promptly.
const POLL: Duration = Duration::from_millis(20);
/// How long one readiness probe (a TCP connect to loopback) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(250);
/// How many lines of `lab.log` an error quotes.
const LOG_TAIL_LINES: usize = 20;
/// Size past which `lab.log` is rotated to `lab.log.1` (one older file is kept).
pub const LOG_CAP: u64 = 10 * 1024 * 1024;
/// How long a lab that did not answer in time gets to stop on SIGTERM before SIGKILL.
const NOT_READY_GRACE: Duration = Duration::from_secs(2);

/// Why the lab process could not be started, found or stopped.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// Neither `--state-dir`, `XDG_STATE_HOME` nor `HOME` says where the state lives.
    #[error("cannot tell where the lab keeps its state: pass --state-dir or set HOME")]
    NoStateDir,
    /// Reading or writing a file in the state directory failed.
    #[error("{what} {}", path.display())]
    File {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The lab process could not be spawned.
    #[error("cannot start {}", program.display())]
    Spawn {
        program: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The lab process exited before its API answered.
    #[error("the lab exited ({status}) before its API answered; the end of {}:\n{tail}", log.display())]
    Died {
        status: ExitStatus,
        log: PathBuf,
        tail: String,
    },
    /// The lab process did not answer in time (it has been stopped).
    #[error("the lab did not answer within {}; it was stopped; the end of {}:\n{tail}", humantime::format_duration(*deadline), log.display())]
    NotReady {
        deadline: Duration,
        log: PathBuf,
        tail: String,
    },
    /// Sending a signal failed for a reason other than the process being gone.
    #[error("cannot signal process {pid}")]
    Signal {
        pid: u32,
        #[source]
        source: nix::Error,
    },
}

type Result<T, E = DaemonError> = std::result::Result<T, E>;

/// What `lab.json` says about a running lab.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabInfo {
    /// The lab process.
    pub pid: u32,
    /// Where its API listens (always on loopback).
    pub address: SocketAddr,
    /// When its API started answering.
    pub started_at: DateTime<Utc>,
}

impl LabInfo {
    /// The API's URL, as kubeconfigs name it.
    pub fn server_url(&self) -> String {
        format!("https://{}", self.address)
    }
}

/// One pod process in `pods.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodProcess {
    /// The pod's process id.
    pub pid: u32,
    /// `namespace/name`.
    pub pod: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct PodsFile {
    #[serde(default)]
    pods: Vec<PodProcess>,
}

/// Whether a lab runs for a state directory, as far as its files and processes say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Liveness {
    /// No lab process (stale files, if any, have been removed).
    Stopped,
    /// The lab process is alive and its API accepts connections.
    Running(LabInfo),
    /// A lab process is alive but its API does not (yet) answer.
    Unresponsive { pid: u32 },
}

/// How [`StateDir::stop`] ended the lab.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StopReport {
    /// The lab process that was stopped, if one was running.
    pub lab_pid: Option<u32>,
    /// It ignored SIGTERM for the whole grace period and was killed.
    pub lab_killed: bool,
    /// Pod processes a previous lab left behind that were stopped.
    pub orphans: Vec<PodProcess>,
}

/// The exclusive lock on `lab.lock` (or `lab.up.lock`): held while this value lives.
/// Closing the file releases it, so a killed process never leaves it held.
#[derive(Debug)]
pub struct StateLock {
    _file: File,
}

/// The beginnings of every name the lab writes into its state directory: certificates and
/// keys, the token, the kubeconfig, its own files (`lab.*`), named labs (`labs/`), the store (`state.json` and a
/// corrupt one moved aside), pod logs and registry, and atomic writes' temporary files.
#[cfg(unix)]
const LAB_FILE_PREFIXES: &[&str] = &[
    "ca.",
    "server.",
    "token",
    "kubeconfig",
    "lab.",
    "labs",
    "state.",
    "pods",
    ".tmp-",
];

/// The lab's state directory and the process files in it.
#[derive(Debug, Clone)]
pub struct StateDir {
    root: PathBuf,
}

impl StateDir {
    /// `flag`, else `$XDG_STATE_HOME/resil/lab`, else `~/.local/state/resil/lab`.
    pub fn resolve(flag: Option<PathBuf>) -> Result<StateDir> {
        let non_empty = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
        let root = match flag {
            Some(dir) => dir,
            None => match (non_empty("XDG_STATE_HOME"), non_empty("HOME")) {
                (Some(state), _) => PathBuf::from(state).join("resil").join("lab"),
                (None, Some(home)) => PathBuf::from(home).join(".local/state/resil/lab"),
                (None, None) => return Err(DaemonError::NoStateDir),
            },
        };
        // Children run with another working directory in mind; keep the path absolute.
        let root = std::path::absolute(&root).unwrap_or(root);
        Ok(StateDir { root })
    }

    /// The directory itself.
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// A file in the directory (`ca.crt`, `token`, `kubeconfig`, ...).
    pub fn file(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// The lab's log file.
    pub fn log_path(&self) -> PathBuf {
        self.file("lab.log")
    }

    /// Creates the directory, owner-only (it holds keys and the token); an existing one
    /// that others may read or enter is tightened to 0700.
    pub fn create(&self) -> Result<()> {
        let mut builder = fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder
            .create(&self.root)
            .map_err(|source| DaemonError::File {
                what: "cannot create the lab's state directory",
                path: self.root.clone(),
                source,
            })?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let tighten = |source| DaemonError::File {
                what: "cannot make the lab's state directory owner-only (0700)",
                path: self.root.clone(),
                source,
            };
            let mode = fs::metadata(&self.root)
                .map_err(tighten)?
                .permissions()
                .mode();
            if mode & 0o077 != 0 {
                // Tighten only a directory that is the lab's (empty, or holding its
                // files): `--state-dir ~` must not make a home directory owner-only.
                if !self.is_the_labs().map_err(tighten)? {
                    return Err(DaemonError::File {
                        what: "refusing to keep the lab's keys and token in a directory that \
                               others may read and that holds files of its own; give \
                               --state-dir a directory of the lab's own",
                        path: self.root.clone(),
                        source: std::io::Error::from(std::io::ErrorKind::PermissionDenied),
                    });
                }
                fs::set_permissions(&self.root, fs::Permissions::from_mode(0o700))
                    .map_err(tighten)?;
            }
        }
        Ok(())
    }

    /// Whether the directory is the lab's: empty, or holding only names the lab writes
    /// ([`LAB_FILE_PREFIXES`]).
    #[cfg(unix)]
    fn is_the_labs(&self) -> std::io::Result<bool> {
        for entry in fs::read_dir(&self.root)? {
            let name = entry?.file_name();
            let name = name.to_string_lossy();
            let known = LAB_FILE_PREFIXES.iter().any(|p| name.starts_with(p));
            if !known {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Takes `lab.lock` for the lab process: `None` when another process holds it (a lab
    /// runs, or is starting, for this directory). Keep the value for the lab's whole life.
    pub fn lock_daemon(&self) -> Result<Option<StateLock>> {
        self.try_lock_file("lab.lock")
    }

    /// Takes `lab.up.lock`, waiting up to `limit` for another `lab up` to finish with it.
    /// `None` when it is still held after `limit`.
    pub async fn lock_up(&self, limit: Duration) -> Result<Option<StateLock>> {
        self.lock_wait("lab.up.lock", limit).await
    }

    /// Takes the lock file `name` in the directory, waiting up to `limit` for another
    /// holder to let go. `None` when it is still held after `limit`.
    pub async fn lock_wait(&self, name: &str, limit: Duration) -> Result<Option<StateLock>> {
        let started = Instant::now();
        loop {
            if let Some(lock) = self.try_lock_file(name)? {
                return Ok(Some(lock));
            }
            if started.elapsed() >= limit {
                return Ok(None);
            }
            tokio::time::sleep(POLL).await;
        }
    }

    fn try_lock_file(&self, name: &str) -> Result<Option<StateLock>> {
        self.create()?;
        let path = self.file(name);
        let err = |source| DaemonError::File {
            what: "cannot lock",
            path: path.clone(),
            source,
        };
        let mut options = OpenOptions::new();
        options.create(true).truncate(false).write(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let file = options.open(&path).map_err(err)?;
        match file.try_lock() {
            Ok(()) => Ok(Some(StateLock { _file: file })),
            Err(TryLockError::WouldBlock) => Ok(None),
            Err(TryLockError::Error(source)) => Err(err(source)),
        }
    }

    /// The pid in `lab.pid`, if the file holds one.
    pub fn read_pid(&self) -> Option<u32> {
        fs::read_to_string(self.file("lab.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// Records the lab's pid.
    pub fn write_pid(&self, pid: u32) -> Result<()> {
        let path = self.file("lab.pid");
        resil_common::atomic::write(&path, format!("{pid}\n").as_bytes()).map_err(|source| {
            DaemonError::File {
                what: "cannot write",
                path,
                source,
            }
        })
    }

    /// `lab.json`, if present and readable.
    pub fn read_info(&self) -> Option<LabInfo> {
        let text = fs::read_to_string(self.file("lab.json")).ok()?;
        serde_json::from_str(&text).ok()
    }

    /// Announces that the lab answers at `info.address` (called by the lab process once
    /// its API accepts connections), and remembers the port for the next start.
    pub fn write_info(&self, info: &LabInfo) -> Result<()> {
        let port_path = self.file("lab.port");
        resil_common::atomic::write(&port_path, format!("{}\n", info.address.port()).as_bytes())
            .map_err(|source| DaemonError::File {
                what: "cannot write",
                path: port_path,
                source,
            })?;
        let path = self.file("lab.json");
        resil_common::atomic::write_json(&path, info).map_err(|source| DaemonError::File {
            what: "cannot write",
            path,
            source,
        })
    }

    /// The port the last lab listened on, if one ever started here.
    pub fn last_port(&self) -> Option<u16> {
        fs::read_to_string(self.file("lab.port"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// Removes `lab.pid` and `lab.json` if they still describe process `pid` (a newer
    /// lab's files are left alone).
    pub fn clear_if_owned_by(&self, pid: u32) {
        if self.read_info().is_some_and(|info| info.pid == pid) {
            let _ = fs::remove_file(self.file("lab.json"));
        }
        if self.read_pid() == Some(pid) {
            let _ = fs::remove_file(self.file("lab.pid"));
        }
    }

    fn clear_process_files(&self) {
        // Best effort: a file that is already gone is the goal.
        let _ = fs::remove_file(self.file("lab.json"));
        let _ = fs::remove_file(self.file("lab.pid"));
    }

    /// Whether a lab runs here. Files left by a lab that is gone are removed.
    pub async fn liveness(&self) -> Liveness {
        let pid = self
            .read_pid()
            .or_else(|| self.read_info().map(|info| info.pid));
        let Some(pid) = pid.filter(|&pid| is_lab_process(pid)) else {
            self.clear_process_files();
            return Liveness::Stopped;
        };
        match self.read_info() {
            Some(info) if info.pid == pid && answers(info.address).await => Liveness::Running(info),
            _ => Liveness::Unresponsive { pid },
        }
    }

    /// Spawns `program args...` detached from this terminal: a new session, stdin from
    /// /dev/null, stdout and stderr appended to `lab.log` (rotated first if past
    /// [`LOG_CAP`]). Returns the child and the log offset where its output starts. The
    /// child records its own pid once it holds `lab.lock`.
    pub fn spawn_detached(&self, program: &Path, args: &[OsString]) -> Result<(Child, u64)> {
        self.create()?;
        let log_path = self.log_path();
        let log_err = |source| DaemonError::File {
            what: "cannot open the lab's log",
            path: log_path.clone(),
            source,
        };
        rotate_log(&log_path, LOG_CAP).map_err(log_err)?;
        let mut options = OpenOptions::new();
        options.create(true).append(true);
        // The log names paths, pods and errors of this user's lab: theirs alone.
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let log = options.open(&log_path).map_err(log_err)?;
        let offset = log.metadata().map_err(log_err)?.len();
        let stdout = log.try_clone().map_err(log_err)?;
        let mut command = Command::new(program);
        command
            .args(args)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(log);
        #[cfg(unix)]
        {
            use std::os::unix::process::CommandExt;
            // SAFETY: setsid is async-signal-safe and touches no memory of this process;
            // it only detaches the child from our session and controlling terminal, so a
            // Ctrl-C or a closed terminal here does not reach the lab.
            unsafe {
                command.pre_exec(|| nix::unistd::setsid().map(drop).map_err(io::Error::from));
            }
        }
        let child = command.spawn().map_err(|source| DaemonError::Spawn {
            program: program.to_path_buf(),
            source,
        })?;
        Ok((child, offset))
    }

    /// Waits until `child` has written `lab.json` and its API accepts connections, at most
    /// `deadline`. If it exits first, or never answers (it is then stopped), the error
    /// quotes its log from `log_offset` on.
    pub async fn wait_ready(
        &self,
        child: &mut Child,
        log_offset: u64,
        deadline: Duration,
    ) -> Result<LabInfo> {
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                self.clear_if_owned_by(child.id());
                return Err(DaemonError::Died {
                    status,
                    log: self.log_path(),
                    tail: self.log_tail(log_offset),
                });
            }
            if let Some(info) = self.read_info()
                && info.pid == child.id()
                && answers(info.address).await
            {
                return Ok(info);
            }
            if started.elapsed() >= deadline {
                // Asked first, so it can stop the pods it may have started and save.
                if terminate(child.id(), NOT_READY_GRACE).await.is_err() {
                    let _ = child.kill();
                }
                let _ = child.wait();
                self.clear_if_owned_by(child.id());
                return Err(DaemonError::NotReady {
                    deadline,
                    log: self.log_path(),
                    tail: self.log_tail(log_offset),
                });
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Stops the lab: SIGTERM, then SIGKILL if it is still alive after `grace`; then stops
    /// pod processes listed in `pods.json` that outlived it; removes the process files.
    pub async fn stop(&self, grace: Duration) -> Result<StopReport> {
        let mut report = StopReport {
            lab_pid: None,
            lab_killed: false,
            orphans: Vec::new(),
        };
        let pid = self
            .read_pid()
            .or_else(|| self.read_info().map(|info| info.pid));
        if let Some(pid) = pid.filter(|&pid| is_lab_process(pid)) {
            report.lab_pid = Some(pid);
            report.lab_killed = !terminate(pid, grace).await?;
        }
        self.clear_process_files();

        let pods_path = self.file("pods.json");
        let pods: PodsFile = fs::read_to_string(&pods_path)
            .ok()
            .and_then(|text| serde_json::from_str(&text).ok())
            .unwrap_or_default();
        for pod in pods.pods {
            if is_alive(pod.pid) && cmdline_mentions(pod.pid, "demo-app") {
                terminate(pod.pid, Duration::from_secs(2)).await?;
                report.orphans.push(pod);
            }
        }
        let _ = fs::remove_file(&pods_path);
        Ok(report)
    }

    /// The last lines of `lab.log` written since `offset`.
    pub fn log_tail(&self, offset: u64) -> String {
        read_tail(&self.log_path(), offset).unwrap_or_else(|err| format!("(cannot read it: {err})"))
    }
}

/// Rotates the log at `path` once it holds more than `cap` bytes: its content moves to
/// `<path>.1` (replacing an older one) and the file is emptied in place. In place, because
/// a running lab keeps writing to the file it was started with (its stdout and stderr,
/// opened for appending, so the next write lands at the new end); a line written between
/// the copy and the truncation is lost. Returns whether it rotated.
pub fn rotate_log(path: &Path, cap: u64) -> io::Result<bool> {
    let size = match fs::metadata(path) {
        Ok(meta) => meta.len(),
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(err) => return Err(err),
    };
    if size <= cap {
        return Ok(false);
    }
    let mut rotated = path.as_os_str().to_owned();
    rotated.push(".1");
    fs::copy(path, PathBuf::from(rotated))?;
    OpenOptions::new().write(true).open(path)?.set_len(0)?;
    Ok(true)
}

fn read_tail(path: &Path, offset: u64) -> io::Result<String> {
    const MAX_BYTES: u64 = 16 * 1024;
    let mut file = File::open(path)?;
    let len = file.metadata()?.len();
    let start = offset.max(len.saturating_sub(MAX_BYTES)).min(len);
    file.seek(SeekFrom::Start(start))?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    let text = String::from_utf8_lossy(&bytes);
    let lines: Vec<&str> = text.lines().collect();
    let tail = &lines[lines.len().saturating_sub(LOG_TAIL_LINES)..];
    if tail.is_empty() {
        return Ok("(the log is empty)".to_string());
    }
    Ok(tail.join("\n"))
}

/// Whether something accepts TCP connections at `address` (the lab's API listener).
pub async fn answers(address: SocketAddr) -> bool {
    matches!(
        tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(address)).await,
        Ok(Ok(_))
    )
}

/// Sends SIGTERM and waits up to `grace` for the process to go; then SIGKILL. Returns
/// whether it went on SIGTERM alone.
async fn terminate(pid: u32, grace: Duration) -> Result<bool> {
    signal(pid, Signal::SIGTERM)?;
    if wait_gone(pid, grace).await {
        return Ok(true);
    }
    signal(pid, Signal::SIGKILL)?;
    // SIGKILL cannot be ignored; this only waits for the kernel to reap it.
    wait_gone(pid, Duration::from_secs(2)).await;
    Ok(false)
}

fn signal(pid: u32, signal: Signal) -> Result<()> {
    let Ok(raw) = i32::try_from(pid) else {
        return Ok(());
    };
    match kill(Pid::from_raw(raw), signal) {
        Ok(()) | Err(nix::Error::ESRCH) => Ok(()),
        Err(source) => Err(DaemonError::Signal { pid, source }),
    }
}

async fn wait_gone(pid: u32, limit: Duration) -> bool {
    let started = Instant::now();
    while is_alive(pid) {
        if started.elapsed() >= limit {
            return false;
        }
        tokio::time::sleep(POLL).await;
    }
    true
}

/// Whether process `pid` exists and has not exited (a zombie waiting to be reaped counts
/// as exited).
pub fn is_alive(pid: u32) -> bool {
    let Ok(raw) = i32::try_from(pid) else {
        return false;
    };
    if raw <= 0 {
        return false;
    }
    match kill(Pid::from_raw(raw), None) {
        Ok(()) | Err(nix::Error::EPERM) => !is_zombie(pid),
        Err(_) => false,
    }
}

#[cfg(target_os = "linux")]
fn is_zombie(pid: u32) -> bool {
    // /proc/PID/stat is "PID (comm) STATE ..."; comm may contain spaces and parentheses,
    // so the state is the first field after the last ')'.
    fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            == Some("Z")
    })
}

#[cfg(not(target_os = "linux"))]
fn is_zombie(_pid: u32) -> bool {
    false
}

/// Whether `pid` is a live lab process (`resil lab ... up ...`), so that a pid file left
/// by a lab long gone never gets a recycled pid signalled.
fn is_lab_process(pid: u32) -> bool {
    is_alive(pid) && cmdline_mentions(pid, "lab") && cmdline_mentions(pid, "up")
}

/// Whether one of the process's arguments is exactly `word`. Where the command line cannot
/// be read (not Linux), the answer is yes: the pid files are then all there is to go by.
fn cmdline_mentions(pid: u32, word: &str) -> bool {
    if !cfg!(target_os = "linux") {
        return true;
    }
    match fs::read(format!("/proc/{pid}/cmdline")) {
        Ok(bytes) => bytes.split(|&b| b == 0).any(|arg| arg == word.as_bytes()),
        // Unreadable (another user's process): do not claim it.
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_dir_flag_wins_and_is_made_absolute() {
        let dir = StateDir::resolve(Some(PathBuf::from("rel/lab"))).unwrap();
        assert!(dir.path().is_absolute());
        assert!(dir.path().ends_with("rel/lab"));
    }

    #[test]
    fn lab_json_round_trips_and_remembers_the_port() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = StateDir::resolve(Some(tmp.path().to_path_buf())).unwrap();
        assert_eq!(dir.read_info(), None);
        let info = LabInfo {
            pid: 42,
            address: "127.0.0.1:6443".parse().unwrap(),
            started_at: Utc::now(),
        };
        dir.write_info(&info).unwrap();
        assert_eq!(dir.read_info(), Some(info.clone()));
        assert_eq!(dir.last_port(), Some(6443));
        assert_eq!(info.server_url(), "https://127.0.0.1:6443");
        dir.clear_if_owned_by(41);
        assert!(dir.read_info().is_some(), "another pid's file must stay");
        dir.clear_if_owned_by(42);
        assert_eq!(dir.read_info(), None);
        assert_eq!(dir.last_port(), Some(6443), "the port outlives the lab");
    }

    #[tokio::test]
    async fn a_pid_file_of_a_dead_process_counts_as_stopped_and_is_removed() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = StateDir::resolve(Some(tmp.path().to_path_buf())).unwrap();
        let mut child = Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        dir.write_pid(pid).unwrap();
        assert_eq!(dir.liveness().await, Liveness::Stopped);
        assert!(!dir.file("lab.pid").exists());
    }

    #[test]
    fn a_reaped_or_zombie_child_is_not_alive() {
        let mut child = Command::new("true").spawn().unwrap();
        let pid = child.id();
        // Wait for it to exit without reaping it: it is a zombie meanwhile.
        let started = Instant::now();
        while is_alive(pid) && started.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(!is_alive(pid));
        child.wait().unwrap();
        assert!(!is_alive(pid));
        assert!(is_alive(std::process::id()));
    }

    #[cfg(unix)]
    #[test]
    fn an_existing_state_dir_open_to_others_is_made_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("lab");
        fs::create_dir(&root).unwrap();
        fs::set_permissions(&root, fs::Permissions::from_mode(0o755)).unwrap();
        let dir = StateDir::resolve(Some(root.clone())).unwrap();
        dir.create().unwrap();
        let mode = fs::metadata(&root).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "{mode:o}");
    }

    #[test]
    fn a_directory_open_to_others_with_files_of_its_own_is_refused_and_left_as_it_is() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("home");
        fs::create_dir(&root).unwrap();
        fs::write(root.join(".bashrc"), "").unwrap();
        fs::set_permissions(&root, fs::Permissions::from_mode(0o755)).unwrap();
        let dir = StateDir::resolve(Some(root.clone())).unwrap();
        let err = dir.create().unwrap_err().to_string();
        assert!(err.contains("--state-dir"), "{err}");
        let mode = fs::metadata(&root).unwrap().permissions().mode() & 0o777;
        assert_eq!(
            mode, 0o755,
            "a directory that is not the lab's keeps its mode"
        );
    }

    #[test]
    fn the_daemon_lock_is_held_once_and_freed_with_its_holder() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = StateDir::resolve(Some(tmp.path().to_path_buf())).unwrap();
        let first = dir.lock_daemon().unwrap().expect("a free lock");
        assert!(dir.lock_daemon().unwrap().is_none(), "a second holder");
        drop(first);
        assert!(dir.lock_daemon().unwrap().is_some());
    }

    #[test]
    fn a_log_past_its_cap_is_rotated_keeping_one_older_file() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = StateDir::resolve(Some(tmp.path().to_path_buf())).unwrap();
        let log = dir.log_path();
        fs::write(&log, "0123456789").unwrap();
        assert!(!rotate_log(&log, 10).unwrap(), "at the cap: kept");
        fs::write(&log, "0123456789ab").unwrap();
        assert!(rotate_log(&log, 10).unwrap());
        assert_eq!(
            fs::read_to_string(dir.file("lab.log.1")).unwrap(),
            "0123456789ab"
        );
        assert_eq!(fs::read_to_string(&log).unwrap(), "");
        fs::write(&log, "second run, also too long").unwrap();
        assert!(rotate_log(&log, 10).unwrap());
        assert_eq!(
            fs::read_to_string(dir.file("lab.log.1")).unwrap(),
            "second run, also too long",
            "one older file is kept"
        );
        assert!(!dir.file("lab.log.2").exists());
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn a_lab_that_never_answers_is_asked_to_stop_with_sigterm_first() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = StateDir::resolve(Some(tmp.path().to_path_buf())).unwrap();
        let marker = tmp.path().join("got-sigterm");
        // Stands in for a lab that never writes lab.json but stops cleanly on SIGTERM.
        let script = format!(
            "trap 'echo > {}; exit 0' TERM; while :; do sleep 0.02; done",
            marker.display()
        );
        let (mut child, offset) = dir
            .spawn_detached(Path::new("sh"), &["-c".into(), script.into()])
            .unwrap();
        let err = dir
            .wait_ready(&mut child, offset, Duration::from_millis(300))
            .await
            .unwrap_err();
        assert!(matches!(err, DaemonError::NotReady { .. }), "{err}");
        assert!(marker.exists(), "no SIGTERM before the SIGKILL");
    }

    #[test]
    fn log_tail_quotes_only_the_last_lines_since_the_offset() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = StateDir::resolve(Some(tmp.path().to_path_buf())).unwrap();
        fs::write(dir.log_path(), "old run\n").unwrap();
        let offset = 8;
        let mut text = String::from("old run\n");
        for n in 0..30 {
            text.push_str(&format!("line {n}\n"));
        }
        fs::write(dir.log_path(), text).unwrap();
        let tail = dir.log_tail(offset);
        assert!(!tail.contains("old run"));
        assert!(tail.starts_with("line 10\n"));
        assert!(tail.ends_with("line 29"));
    }
}
