//! The chaos journal: one JSON file in the state dir listing every fault resil injected,
//! with what is needed to undo it. An entry is written (atomically) *before* the action, so
//! a resil killed mid-outage leaves behind exactly what `resil chaos revert` needs; an
//! entry is closed once its revert succeeded, so a second revert is a no-op.
//!
//! Called by the chaos command layer (and the scenario runner); knows nothing of clusters.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::plan::Faults;

/// Journal file format version.
const VERSION: u32 = 1;
const FILE: &str = "journal.json";
const LOCK_FILE: &str = "journal.lock";

/// Errors reading or writing the journal.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("reading or writing the chaos journal {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the chaos journal {path} is not readable ({message}); it may list faults still \
         open — inspect it, revert by hand if needed, then move it aside"
    )]
    Corrupt { path: PathBuf, message: String },
    /// Written by a resil with another journal format: its entries may mean something
    /// else, so they are neither read nor overwritten.
    #[error(
        "the chaos journal {path} has format version {found}, and this resil reads version \
         {VERSION}: revert its open faults with the resil that wrote it (`resil chaos \
         revert`), or move the file aside"
    )]
    UnsupportedVersion { path: PathBuf, found: String },
    /// Another fault is still open on one of the targets: stacking a second one would
    /// make the first one's revert undo the second (or restore a value the second set).
    #[error(
        "{target} already has an open fault: {} {} ({}), injected at {}{}. Wait until it is \
         reverted, or revert it now with `resil chaos revert --id {}{}`",
        open.action,
        open.id,
        open.detail,
        open.injected_at.format("%H:%M:%S UTC"),
        open.revert_at
            .map(|at| format!(", due to be reverted at {}", at.format("%H:%M:%S UTC")))
            .unwrap_or_default(),
        open.id,
        state_dir_flag(path)
    )]
    TargetBusy {
        target: String,
        open: Box<Entry>,
        path: PathBuf,
    },
}

/// ` --state-dir DIR` when the journal is not in the default state dir, so the command
/// in a message reaches the same journal.
fn state_dir_flag(journal: &Path) -> String {
    match journal.parent() {
        Some(dir) if dir != default_state_dir() => format!(" --state-dir {}", dir.display()),
        _ => String::new(),
    }
}

/// How to undo one action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Undo {
    /// Nothing to undo (killed pods are replaced by their Deployment).
    Nothing,
    /// Put a Deployment back to `replicas` — if it still has the `injected` count (absent
    /// in entries written before it was recorded: restored unconditionally).
    Replicas {
        deployment: String,
        replicas: i32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        injected: Option<i32>,
    },
    /// Reset the demo app's fault switches on these pods.
    PodFaults { pods: Vec<String>, faults: Faults },
    /// Put the Service's proxy-fault annotation back as it was (`None`: remove it) — if
    /// it still holds the `injected` value (absent in entries written before it was
    /// recorded: restored unconditionally).
    ProxyFault {
        service: String,
        previous: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        injected: Option<String>,
    },
    /// Put an HPA's minReplicas back to `min` (the predictive autoscaler raised it).
    HpaMinReplicas { hpa: String, min: i32 },
    /// Remove the lab's stop switch from these nodes (powered off by `node-failure` or
    /// `zone-outage`).
    NodesStopped { nodes: Vec<String> },
    /// Run the provider hook with `start` for these nodes.
    NodesHook { hook: String, nodes: Vec<String> },
    /// Uncordon the node (a drain cordoned it) — if it is still cordoned.
    Cordon { node: String },
    /// Switch the lab's control plane back on (remove its outage annotation).
    ControlPlane,
    /// Put each Deployment back to its replica count — if it still has the 0 this fault
    /// set (a region outage on a cluster whose nodes cannot be powered off).
    Workloads { replicas: BTreeMap<String, i32> },
}

/// One injected fault.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// Unique id, shared by the timeline's injected/reverted events.
    pub id: String,
    /// `kill-pods`, `outage`, `degrade`, `cpu-burn`, `latency`.
    pub action: String,
    pub context: String,
    pub namespace: String,
    pub targets: Vec<String>,
    pub detail: String,
    pub injected_at: DateTime<Utc>,
    /// When the fault is due to be reverted (`None`: nothing to revert).
    pub revert_at: Option<DateTime<Utc>>,
    pub undo: Undo,
    /// Set once the revert succeeded.
    pub reverted_at: Option<DateTime<Utc>>,
}

impl Entry {
    /// Whether a revert is still owed.
    pub fn is_open(&self) -> bool {
        self.reverted_at.is_none() && self.undo != Undo::Nothing
    }

    /// The first of `targets` this open entry holds a fault on in the same cluster and
    /// namespace.
    fn holds<'a>(&self, context: &str, namespace: &str, targets: &'a [String]) -> Option<&'a str> {
        if !self.is_open() || self.context != context || self.namespace != namespace {
            return None;
        }
        targets
            .iter()
            .find(|t| self.targets.contains(t))
            .map(String::as_str)
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct File {
    version: u32,
    entries: Vec<Entry>,
}

/// The journal in one state dir.
#[derive(Debug, Clone)]
pub struct Journal {
    path: PathBuf,
}

impl Journal {
    /// The journal under `state_dir` (created on first write).
    pub fn new(state_dir: &Path) -> Journal {
        Journal {
            path: state_dir.join(FILE),
        }
    }

    /// The file's path (for messages).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every entry, oldest first.
    pub fn entries(&self) -> Result<Vec<Entry>, JournalError> {
        Ok(self.read()?.entries)
    }

    /// Entries still owing a revert.
    pub fn open_entries(&self) -> Result<Vec<Entry>, JournalError> {
        Ok(self.entries()?.into_iter().filter(Entry::is_open).collect())
    }

    /// Records an action about to happen.
    pub fn record(&self, entry: &Entry) -> Result<(), JournalError> {
        self.update(|file| {
            file.entries.retain(|e| e.id != entry.id);
            file.entries.push(entry.clone());
            Ok(())
        })
    }

    /// Records a fault about to be injected, unless another entry is still open on one
    /// of its targets ([`JournalError::TargetBusy`]). Checked and written under the
    /// journal's lock, so of two resil processes racing for one target only one wins.
    pub fn claim(&self, entry: &Entry) -> Result<(), JournalError> {
        self.update(|file| {
            self.refuse_busy(
                file.entries.iter().filter(|e| e.id != entry.id),
                &entry.context,
                &entry.namespace,
                &entry.targets,
            )?;
            file.entries.push(entry.clone());
            Ok(())
        })
    }

    /// The refusal [`Journal::claim`] would give for these targets now, if any (for
    /// checks made before an entry exists).
    pub fn check_free(
        &self,
        context: &str,
        namespace: &str,
        targets: &[String],
    ) -> Result<(), JournalError> {
        let file = self.read()?;
        self.refuse_busy(file.entries.iter(), context, namespace, targets)
    }

    /// [`JournalError::TargetBusy`] for the first of `entries` still open on one of
    /// `targets`.
    fn refuse_busy<'e>(
        &self,
        mut entries: impl Iterator<Item = &'e Entry>,
        context: &str,
        namespace: &str,
        targets: &[String],
    ) -> Result<(), JournalError> {
        match entries.find_map(|e| e.holds(context, namespace, targets).map(|t| (t, e))) {
            Some((target, open)) => Err(JournalError::TargetBusy {
                target: target.to_string(),
                open: Box::new(open.clone()),
                path: self.path.clone(),
            }),
            None => Ok(()),
        }
    }

    /// Marks an entry reverted.
    pub fn close(&self, id: &str, at: DateTime<Utc>) -> Result<(), JournalError> {
        self.update(|file| {
            for entry in file.entries.iter_mut().filter(|e| e.id == id) {
                entry.reverted_at.get_or_insert(at);
            }
            Ok(())
        })
    }

    /// Read, change, write — under an exclusive lock on `journal.lock` beside the file,
    /// so two resil processes (two terminals, a scenario and a manual revert) never lose
    /// each other's entries: a lost entry would be a fault nobody can revert. The lock is
    /// a blocking OS lock held for one small read and write; the OS drops it if the
    /// process dies.
    fn update(
        &self,
        change: impl FnOnce(&mut File) -> Result<(), JournalError>,
    ) -> Result<(), JournalError> {
        let io = |source| JournalError::Io {
            path: self.path.clone(),
            source,
        };
        let dir = self.path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(io)?;
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join(LOCK_FILE))
            .map_err(io)?;
        lock.lock().map_err(io)?;
        let mut file = self.read()?;
        change(&mut file)?;
        self.write(&file)
        // `lock` is dropped here, which unlocks.
    }

    fn read(&self) -> Result<File, JournalError> {
        let bytes = match std::fs::read(&self.path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(File {
                    version: VERSION,
                    entries: Vec::new(),
                });
            }
            Err(source) => {
                return Err(JournalError::Io {
                    path: self.path.clone(),
                    source,
                });
            }
        };
        let corrupt = |e: serde_json::Error| JournalError::Corrupt {
            path: self.path.clone(),
            message: e.to_string(),
        };
        // The version is checked before the entries are looked at: a newer format may
        // parse into these types and still mean something else.
        let value: serde_json::Value = serde_json::from_slice(&bytes).map_err(corrupt)?;
        match value.get("version") {
            Some(v) if v.as_u64() == Some(u64::from(VERSION)) => {}
            Some(v) => {
                return Err(JournalError::UnsupportedVersion {
                    path: self.path.clone(),
                    found: v.to_string(),
                });
            }
            None => {
                return Err(JournalError::Corrupt {
                    path: self.path.clone(),
                    message: "no `version` field".to_string(),
                });
            }
        }
        serde_json::from_value(value).map_err(corrupt)
    }

    fn write(&self, file: &File) -> Result<(), JournalError> {
        let io = |source| JournalError::Io {
            path: self.path.clone(),
            source,
        };
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let file = File {
            version: VERSION,
            entries: file.entries.clone(),
        };
        crate::atomic::write_json(&self.path, &file).map_err(io)
    }
}

/// The default state dir: `$XDG_STATE_HOME/resil/chaos`, else `~/.local/state/resil/chaos`.
pub fn default_state_dir() -> PathBuf {
    let base = std::env::var_os("XDG_STATE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("resil").join("chaos")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: &str, undo: Undo) -> Entry {
        Entry {
            id: id.to_string(),
            action: "outage".to_string(),
            context: "resil-lab".to_string(),
            namespace: "distributed-resilience".to_string(),
            targets: vec!["deployment/web-blue".to_string()],
            detail: String::new(),
            injected_at: Utc::now(),
            revert_at: None,
            undo,
            reverted_at: None,
        }
    }

    #[test]
    fn an_open_entry_survives_a_reload_and_closing_it_is_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::new(dir.path());
        let undo = Undo::Replicas {
            deployment: "web-blue".to_string(),
            replicas: 3,
            injected: Some(0),
        };
        journal.record(&entry("a", undo.clone())).unwrap();
        journal.record(&entry("b", Undo::Nothing)).unwrap();
        let open = Journal::new(dir.path()).open_entries().unwrap();
        assert_eq!(open.len(), 1);
        assert_eq!(open[0].undo, undo);
        let at = Utc::now();
        journal.close("a", at).unwrap();
        journal
            .close("a", at + chrono::Duration::seconds(5))
            .unwrap();
        assert!(journal.open_entries().unwrap().is_empty());
        assert_eq!(journal.entries().unwrap()[0].reverted_at, Some(at));
    }

    #[test]
    fn concurrent_writers_lose_no_entry() {
        let dir = tempfile::tempdir().unwrap();
        std::thread::scope(|s| {
            for t in 0..6 {
                let journal = Journal::new(dir.path());
                s.spawn(move || {
                    for i in 0..15 {
                        let undo = Undo::Replicas {
                            deployment: "web-blue".to_string(),
                            replicas: 1,
                            injected: Some(0),
                        };
                        journal.record(&entry(&format!("{t}-{i}"), undo)).unwrap();
                    }
                });
            }
        });
        assert_eq!(Journal::new(dir.path()).entries().unwrap().len(), 90);
    }

    #[test]
    fn a_journal_of_another_version_is_refused_naming_file_and_version_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE);
        let newer = r#"{"version": 2, "entries": []}"#;
        std::fs::write(&path, newer).unwrap();
        let journal = Journal::new(dir.path());
        let err = journal.open_entries().unwrap_err().to_string();
        assert!(err.contains(&path.display().to_string()), "{err}");
        assert!(err.contains("format version 2"), "{err}");
        let undo = Undo::Replicas {
            deployment: "web-blue".to_string(),
            replicas: 1,
            injected: Some(0),
        };
        assert!(journal.record(&entry("a", undo)).is_err());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), newer);
        std::fs::write(&path, r#"{"version": "one", "entries": []}"#).unwrap();
        let err = journal.open_entries().unwrap_err().to_string();
        assert!(err.contains("format version \"one\""), "{err}");
    }

    #[test]
    fn a_second_fault_on_a_target_with_an_open_entry_is_refused_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::new(dir.path());
        let latency = |id: &str| Entry {
            action: "latency".to_string(),
            targets: vec!["service/web".to_string()],
            detail: "delay=100ms".to_string(),
            ..entry(
                id,
                Undo::ProxyFault {
                    service: "web".to_string(),
                    previous: None,
                    injected: Some("delay=100ms".to_string()),
                },
            )
        };
        journal.claim(&latency("first")).unwrap();
        let err = journal.claim(&latency("second")).unwrap_err().to_string();
        assert!(
            err.contains("service/web already has an open fault"),
            "{err}"
        );
        assert!(err.contains("first (delay=100ms)"), "{err}");
        assert!(
            err.contains("resil chaos revert --id first --state-dir"),
            "{err}"
        );
        assert_eq!(journal.entries().unwrap().len(), 1);
        // Another namespace's Service of the same name is another target.
        let elsewhere = Entry {
            namespace: "other".to_string(),
            ..latency("third")
        };
        journal.claim(&elsewhere).unwrap();
        // Once the first is reverted, the target is free again.
        journal.close("first", Utc::now()).unwrap();
        journal.claim(&latency("second")).unwrap();
    }

    #[test]
    fn a_corrupt_journal_is_an_error_not_an_empty_list() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FILE), b"{not json").unwrap();
        let err = Journal::new(dir.path()).open_entries().unwrap_err();
        assert!(err.to_string().contains("revert by hand"), "{err}");
    }
}
