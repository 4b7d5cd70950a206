//! `<state_dir>/pods.json`: the pod processes the lab has running, so a lab killed with
//! SIGKILL leaves no process behind — the next `lab up` or `lab down` calls
//! [`kill_orphans`]. [`PodRegistry`] keeps the file current (every `PodProcess` spawn
//! adds its pid, every reaped exit removes it), written atomically.
//!
//! The shape (version-free; unknown fields are ignored on read):
//! ```json
//! {"pods": [{"pid": 12345, "pod": "default/web-blue-5d8c9-abcde"}]}
//! ```
//! Each pid is also its process group id (pods run in their own group), so killing the
//! group takes any child the pod started with it.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// The file name under the state directory.
pub const PODS_FILE: &str = "pods.json";

/// One running pod process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodRecord {
    /// Process id (and process group id).
    pub pid: i32,
    /// `namespace/name`.
    pub pod: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct PodsFile {
    pods: Vec<PodRecord>,
}

/// The live list of pod processes, mirrored to `pods.json` on every change.
#[derive(Debug)]
pub struct PodRegistry {
    path: PathBuf,
    pods: Mutex<Vec<PodRecord>>,
}

impl PodRegistry {
    /// A registry writing `<state_dir>/pods.json`, starting empty. Call [`kill_orphans`]
    /// first: whatever the file listed before is forgotten here.
    pub fn new(state_dir: &Path) -> PodRegistry {
        PodRegistry {
            path: state_dir.join(PODS_FILE),
            pods: Mutex::new(Vec::new()),
        }
    }

    /// Records a started pod process.
    pub fn add(&self, pid: i32, pod: &str) -> io::Result<()> {
        let mut pods = self.lock();
        pods.push(PodRecord {
            pid,
            pod: pod.to_string(),
        });
        self.persist(&pods)
    }

    /// Forgets an exited pod process.
    pub fn remove(&self, pid: i32) -> io::Result<()> {
        let mut pods = self.lock();
        pods.retain(|p| p.pid != pid);
        self.persist(&pods)
    }

    /// The processes recorded now.
    pub fn pods(&self) -> Vec<PodRecord> {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<PodRecord>> {
        // A panic while holding this lock cannot leave the list half-changed (push and
        // retain are the only mutations), so a poisoned lock is still a good list.
        self.pods.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Writes under the lock (a std Mutex, never held across an await) so two changes
    /// cannot land in the file out of order. Atomic but not fsynced: the file must survive
    /// a killed lab, and a power loss ends its processes too.
    fn persist(&self, pods: &[PodRecord]) -> io::Result<()> {
        let file = PodsFile {
            pods: pods.to_vec(),
        };
        let bytes = serde_json::to_vec(&file).map_err(io::Error::other)?;
        resil_common::atomic::write_unsynced(&self.path, &bytes)
    }
}

/// Reads `pods.json` (absent → empty).
pub fn read_pods_file(state_dir: &Path) -> io::Result<Vec<PodRecord>> {
    let path = state_dir.join(PODS_FILE);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => return Err(err),
    };
    let file: PodsFile = serde_json::from_slice(&bytes).map_err(|err| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} is not a pod list: {err}", path.display()),
        )
    })?;
    Ok(file.pods)
}

/// Kills every pod process `pods.json` lists that is still alive and still a pod
/// process, with SIGKILL to its process group, then empties the file. Returns the
/// records it killed. Safe to call when nothing is running.
///
/// A pid can be reused after its process died, so a record is only killed while the
/// pid still leads its own process group (pods do; ordinary processes rarely) and, on
/// Linux, its command line still contains `demo-app`.
pub fn kill_orphans(state_dir: &Path) -> io::Result<Vec<PodRecord>> {
    let records = read_pods_file(state_dir)?;
    let mut killed = Vec::new();
    for record in records {
        if is_pod_process(record.pid) && kill_group(record.pid) {
            killed.push(record);
        }
    }
    resil_common::atomic::write_json(&state_dir.join(PODS_FILE), &PodsFile::default())?;
    Ok(killed)
}

#[cfg(unix)]
fn is_pod_process(pid: i32) -> bool {
    use nix::unistd::{Pid, getpgid};
    if pid <= 1 {
        return false;
    }
    let leads_group = getpgid(Some(Pid::from_raw(pid))).is_ok_and(|g| g.as_raw() == pid);
    leads_group && command_line_matches(pid)
}

#[cfg(target_os = "linux")]
fn command_line_matches(pid: i32) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .is_ok_and(|cmd| cmd.split(|b| *b == 0).any(|arg| arg == b"demo-app"))
}

/// Without /proc the process-group check is all we have.
#[cfg(all(unix, not(target_os = "linux")))]
fn command_line_matches(_pid: i32) -> bool {
    true
}

#[cfg(unix)]
fn kill_group(pid: i32) -> bool {
    use nix::sys::signal::{Signal, killpg};
    killpg(nix::unistd::Pid::from_raw(pid), Signal::SIGKILL).is_ok()
}

#[cfg(not(unix))]
fn is_pod_process(_pid: i32) -> bool {
    false
}

#[cfg(not(unix))]
fn kill_group(_pid: i32) -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_follows_adds_and_removes() {
        let dir = tempfile::tempdir().unwrap();
        let registry = PodRegistry::new(dir.path());
        registry.add(100, "default/a").unwrap();
        registry.add(200, "default/b").unwrap();
        registry.remove(100).unwrap();
        let text = std::fs::read_to_string(dir.path().join(PODS_FILE)).unwrap();
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            value,
            serde_json::json!({"pods": [{"pid": 200, "pod": "default/b"}]})
        );
        assert_eq!(read_pods_file(dir.path()).unwrap(), registry.pods());
    }

    #[test]
    fn records_of_processes_that_are_not_pods_are_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        // This test process does not lead its own group with `demo-app` in its command
        // line, so it must survive; pid 1 is never touched.
        let registry = PodRegistry::new(dir.path());
        registry
            .add(std::process::id() as i32, "default/me")
            .unwrap();
        registry.add(1, "default/init").unwrap();
        assert_eq!(kill_orphans(dir.path()).unwrap(), Vec::new());
        assert_eq!(read_pods_file(dir.path()).unwrap(), Vec::new());
    }

    #[test]
    fn a_missing_file_means_no_orphans_and_garbage_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        assert!(kill_orphans(dir.path()).unwrap().is_empty());
        std::fs::write(dir.path().join(PODS_FILE), "not json").unwrap();
        let err = kill_orphans(dir.path()).unwrap_err();
        assert!(err.to_string().contains("pods.json"), "{err}");
    }
}
