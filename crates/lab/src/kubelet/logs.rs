//! Container logs on disk: what `kubectl logs` (and `--previous`) reads. Each container
//! of a pod has a directory `<state_dir>/pods/<ns>_<name>/` holding
//!
//! | file | content |
//! |------|---------|
//! | `<container>.log` | the running (or last) instance's newest output |
//! | `<container>.log.1` | that instance's older output, rotated out at the size cap |
//! | `<container>.previous.log` (+ `.1`) | the instance before it (`--previous`) |
//!
//! so one instance keeps at most two files of `cap` bytes, as the kubelet keeps
//! `containerLogMaxSize` × files. [`LogWriter`] appends a process's output and rotates;
//! [`ContainerLogs`] finds and reads the files; [`LogFollower`] reads what is appended
//! (`kubectl logs -f`), across rotations. `PodProcess` writes; the API's log handler
//! reads. Lines carry no timestamps of their own.
//!
//! Names become path components, so every operation first checks them ([`check_names`]):
//! the namespace and container must be DNS-1123 labels and the pod name a DNS-1123
//! subdomain — no `/`, `\`, `..` or anything else that could lead out of the state
//! directory — whatever the API let through. A refused name is an `InvalidInput` error
//! and no file is touched.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Default size cap per log file (two files per instance).
pub const DEFAULT_LOG_CAP: u64 = 5 * 1024 * 1024;

/// Where one container's logs live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerLogs {
    dir: PathBuf,
    namespace: String,
    pod: String,
    container: String,
}

impl ContainerLogs {
    fn check(&self) -> io::Result<()> {
        check_names(&self.namespace, &self.pod, &self.container)
    }

    /// The logs of `container` in pod `namespace/pod` under `state_dir`.
    pub fn new(state_dir: &Path, namespace: &str, pod: &str, container: &str) -> ContainerLogs {
        ContainerLogs {
            dir: pod_dir(state_dir, namespace, pod),
            namespace: namespace.to_string(),
            pod: pod.to_string(),
            container: container.to_string(),
        }
    }

    /// The pod's log directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file the current instance writes to (the one to follow with `-f`).
    pub fn current(&self) -> PathBuf {
        self.dir.join(format!("{}.log", self.container))
    }

    fn rotated(&self) -> PathBuf {
        self.dir.join(format!("{}.log.1", self.container))
    }

    fn previous(&self) -> PathBuf {
        self.dir.join(format!("{}.previous.log", self.container))
    }

    fn previous_rotated(&self) -> PathBuf {
        self.dir.join(format!("{}.previous.log.1", self.container))
    }

    /// Everything kept for the current instance (`previous = false`) or the one before
    /// it, oldest first. A container that never ran (or never restarted) reads as
    /// `NotFound`, which the API turns into kubectl's "previous terminated container not
    /// found" answer.
    pub fn read(&self, previous: bool) -> io::Result<Vec<u8>> {
        self.check()?;
        let (older, newer) = if previous {
            (self.previous_rotated(), self.previous())
        } else {
            (self.rotated(), self.current())
        };
        let mut out = match fs::read(&older) {
            Ok(bytes) => bytes,
            Err(err) if err.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(err) => return Err(err),
        };
        out.extend(fs::read(&newer)?);
        Ok(out)
    }

    /// Starts a new instance: the current files become the previous instance's (the old
    /// previous ones are dropped), and a writer for the new instance is returned.
    pub fn start_instance(&self, cap: u64) -> io::Result<LogWriter> {
        self.check()?;
        fs::create_dir_all(&self.dir)?;
        move_or_remove(&self.current(), &self.previous())?;
        move_or_remove(&self.rotated(), &self.previous_rotated())?;
        LogWriter::open(self.current(), self.rotated(), cap)
    }

    /// Deletes every log file of this container (when its pod is deleted).
    pub fn remove(&self) -> io::Result<()> {
        self.check()?;
        for path in [
            self.current(),
            self.rotated(),
            self.previous(),
            self.previous_rotated(),
        ] {
            remove_if_present(&path)?;
        }
        Ok(())
    }
}

/// Whether the names may become path components: namespace and container DNS-1123
/// labels, pod a DNS-1123 subdomain. The error says which name is refused and why.
pub fn check_names(namespace: &str, pod: &str, container: &str) -> io::Result<()> {
    let refuse = |what: &str, name: &str, rule: &str| {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{what} {name:?} is not {rule}; the kubelet will not use it in a log path"),
        ))
    };
    const LABEL: &str = "a DNS-1123 label (at most 63 lowercase letters, digits and '-', \
                         starting and ending with a letter or digit)";
    if !is_dns1123_label(container) {
        return refuse("container name", container, LABEL);
    }
    if !is_dns1123_label(namespace) {
        return refuse("namespace", namespace, LABEL);
    }
    if pod.len() > 253 || !pod.split('.').all(is_dns1123_label) {
        return refuse(
            "pod name",
            pod,
            "a DNS-1123 subdomain (DNS-1123 labels joined by '.')",
        );
    }
    Ok(())
}

/// `[a-z0-9]([-a-z0-9]*[a-z0-9])?`, at most 63 characters.
pub fn is_dns1123_label(name: &str) -> bool {
    let bytes = name.as_bytes();
    let alnum = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes.first().is_some_and(alnum)
        && bytes.last().is_some_and(alnum)
        && bytes.iter().all(|b| alnum(b) || *b == b'-')
}

/// `<state_dir>/pods/<ns>_<name>`: the pod's log directory (namespace and name cannot
/// contain `_`, so the pair is unambiguous).
pub fn pod_dir(state_dir: &Path, namespace: &str, pod: &str) -> PathBuf {
    state_dir.join("pods").join(format!("{namespace}_{pod}"))
}

/// Renames `from` to `to`; if `from` does not exist, removes `to` so no stale file
/// passes for the instance's output.
fn move_or_remove(from: &Path, to: &Path) -> io::Result<()> {
    match fs::rename(from, to) {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == io::ErrorKind::NotFound => remove_if_present(to),
        Err(err) => Err(err),
    }
}

fn remove_if_present(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(err) if err.kind() != io::ErrorKind::NotFound => Err(err),
        _ => Ok(()),
    }
}

/// Appends one instance's output to its log, rotating at the cap.
#[derive(Debug)]
pub struct LogWriter {
    path: PathBuf,
    rotated: PathBuf,
    cap: u64,
    file: File,
    written: u64,
}

impl LogWriter {
    fn open(path: PathBuf, rotated: PathBuf, cap: u64) -> io::Result<LogWriter> {
        let file = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(&path)?;
        Ok(LogWriter {
            path,
            rotated,
            cap: cap.max(1),
            file,
            written: 0,
        })
    }

    /// Appends `bytes`; when the file would pass the cap, it becomes `.log.1` (replacing
    /// the older one) and a fresh file starts. A single chunk larger than the cap is
    /// written whole into the fresh file, so no output is split mid-chunk.
    pub fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        if self.written > 0 && self.written + bytes.len() as u64 > self.cap {
            self.file.flush()?;
            fs::rename(&self.path, &self.rotated)?;
            self.file = OpenOptions::new()
                .create(true)
                .truncate(true)
                .write(true)
                .open(&self.path)?;
            self.written = 0;
        }
        self.file.write_all(bytes)?;
        self.written += bytes.len() as u64;
        Ok(())
    }
}

/// Reads a container's current log as it grows (`kubectl logs -f`). Holds the open
/// file, so output written just before a rotation is still read from the renamed file
/// before moving on to the fresh one. The caller polls [`LogFollower::read_new`] (e.g.
/// every 100 ms) and stops when the container has exited and nothing new came. A
/// follower that falls more than one whole rotation behind skips the file in between.
#[derive(Debug)]
pub struct LogFollower {
    path: PathBuf,
    file: Option<File>,
}

impl LogFollower {
    /// Follows `logs`' current file; with `from_start` false, only output written after
    /// this call is returned (the caller sends the existing content itself).
    pub fn new(logs: &ContainerLogs, from_start: bool) -> io::Result<LogFollower> {
        logs.check()?;
        let path = logs.current();
        let file = match File::open(&path) {
            Ok(mut file) => {
                if !from_start {
                    io::Seek::seek(&mut file, io::SeekFrom::End(0))?;
                }
                Some(file)
            }
            Err(err) if err.kind() == io::ErrorKind::NotFound => None,
            Err(err) => return Err(err),
        };
        Ok(LogFollower { path, file })
    }

    /// Whatever was appended since the last call (empty when nothing was).
    pub fn read_new(&mut self) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        if let Some(file) = &mut self.file {
            io::Read::read_to_end(file, &mut out)?;
        }
        // A different file under the name: the old one was rotated away (and is now
        // drained above); continue from the start of the new one.
        if self.replaced()? {
            self.file = match File::open(&self.path) {
                Ok(file) => Some(file),
                Err(err) if err.kind() == io::ErrorKind::NotFound => None,
                Err(err) => return Err(err),
            };
            if let Some(file) = &mut self.file {
                io::Read::read_to_end(file, &mut out)?;
            }
        }
        Ok(out)
    }

    #[cfg(unix)]
    fn replaced(&self) -> io::Result<bool> {
        use std::os::unix::fs::MetadataExt;
        let on_disk = match fs::metadata(&self.path) {
            Ok(meta) => meta,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(err) => return Err(err),
        };
        Ok(match &self.file {
            Some(file) => {
                let open = file.metadata()?;
                (open.dev(), open.ino()) != (on_disk.dev(), on_disk.ino())
            }
            None => true,
        })
    }

    #[cfg(not(unix))]
    fn replaced(&self) -> io::Result<bool> {
        Ok(self.file.is_none() && self.path.exists())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_past_the_cap_rotates_and_keeps_one_older_file() {
        let dir = tempfile::tempdir().unwrap();
        let logs = ContainerLogs::new(dir.path(), "default", "web-1", "web");
        let mut writer = logs.start_instance(10).unwrap();
        for line in ["aaaa\n", "bbbb\n", "cccc\n", "dddd\n", "eeee\n"] {
            writer.append(line.as_bytes()).unwrap();
        }
        // Two files of at most 10 bytes: "cccc\ndddd\n" rotated out, "eeee\n" current;
        // the oldest lines are gone for good.
        assert_eq!(logs.read(false).unwrap(), b"cccc\ndddd\neeee\n");
        let total: u64 = fs::read_dir(logs.dir())
            .unwrap()
            .map(|e| e.unwrap().metadata().unwrap().len())
            .sum();
        assert!(total <= 20, "{total} bytes kept");
    }

    #[test]
    fn a_new_instance_moves_the_old_output_to_previous() {
        let dir = tempfile::tempdir().unwrap();
        let logs = ContainerLogs::new(dir.path(), "default", "web-1", "web");
        let mut first = logs.start_instance(1024).unwrap();
        first.append(b"first instance\n").unwrap();
        drop(first);
        assert_eq!(
            logs.read(true).unwrap_err().kind(),
            io::ErrorKind::NotFound,
            "no previous instance yet"
        );
        let mut second = logs.start_instance(1024).unwrap();
        second.append(b"second instance\n").unwrap();
        assert_eq!(logs.read(false).unwrap(), b"second instance\n");
        assert_eq!(logs.read(true).unwrap(), b"first instance\n");
        logs.remove().unwrap();
        assert!(logs.read(false).is_err());
    }

    #[test]
    fn a_follower_sees_appends_across_rotations_without_losing_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let logs = ContainerLogs::new(dir.path(), "default", "web-1", "web");
        let mut writer = logs.start_instance(10).unwrap();
        writer.append(b"old\n").unwrap();
        let mut follower = LogFollower::new(&logs, false).unwrap();
        assert_eq!(follower.read_new().unwrap(), b"");
        let mut seen = Vec::new();
        for line in ["aaaa\n", "bbbb\n", "cccc\n", "dddd\n", "eeee\n"] {
            writer.append(line.as_bytes()).unwrap();
            if line.starts_with('b') || line.starts_with('e') {
                seen.extend(follower.read_new().unwrap());
            }
        }
        seen.extend(follower.read_new().unwrap());
        assert_eq!(seen, b"aaaa\nbbbb\ncccc\ndddd\neeee\n");
    }

    #[test]
    fn a_container_name_that_climbs_out_is_refused_and_nothing_is_written_or_moved() {
        let root = tempfile::tempdir().unwrap();
        let state = root.path().join("state");
        fs::create_dir(&state).unwrap();
        // What a rotation would rename if the name were used as is.
        let victim = root.path().join("ESCAPED.log");
        fs::write(&victim, "not the lab's\n").unwrap();
        for name in [
            "../../ESCAPED",
            "../../../../../ESCAPED",
            "a/b",
            "a\\b",
            "..",
            "Web",
            "",
        ] {
            let logs = ContainerLogs::new(&state, "default", "web-1", name);
            let err = logs.start_instance(1024).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{name:?}");
            assert!(err.to_string().contains("DNS-1123"), "{err}");
            assert_eq!(
                logs.remove().unwrap_err().kind(),
                io::ErrorKind::InvalidInput
            );
            assert_eq!(
                logs.read(false).unwrap_err().kind(),
                io::ErrorKind::InvalidInput
            );
        }
        for (ns, pod) in [("..", "web-1"), ("default", ".."), ("default", "a/../../b")] {
            let logs = ContainerLogs::new(&state, ns, pod, "web");
            assert!(logs.start_instance(1024).is_err(), "{ns}/{pod}");
        }
        assert_eq!(fs::read_to_string(&victim).unwrap(), "not the lab's\n");
        assert!(!root.path().join("ESCAPED.previous.log").exists());
        assert!(
            !state.join("pods").exists(),
            "no directory made for a refused name"
        );
        let fine = ContainerLogs::new(&state, "default", "web-1.blue", "web-2");
        fine.start_instance(1024).unwrap();
    }

    #[test]
    fn the_directory_names_namespace_and_pod() {
        let logs = ContainerLogs::new(Path::new("/state"), "demo", "web-1", "web");
        assert_eq!(logs.current(), Path::new("/state/pods/demo_web-1/web.log"));
    }
}
