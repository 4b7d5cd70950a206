//! The store on disk: `state.json` in the state directory, written atomically, at most
//! every [`DEBOUNCE`] while changes arrive, and once more at shutdown. Loading a corrupt
//! file never discards it: it is renamed aside and loading fails with both names.
//! Called by `server.rs`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::memo::Memo;
use super::{Store, kinds, meta};
use crate::kubelet::probe::error_chain;

/// The state file's name in the state directory.
pub const STATE_FILE: &str = "state.json";
/// Minimum time between two writes while the store keeps changing.
pub const DEBOUNCE: Duration = Duration::from_millis(200);
/// The debounce window is at least this many times the last save: a big store (a thousand
/// pods and their Events take tens of milliseconds to write) then spends at most about
/// 1/`SAVE_SHARE` of a core on saving while it keeps changing.
pub const SAVE_SHARE: u32 = 10;

/// Why the state could not be loaded or saved.
#[derive(Debug, thiserror::Error)]
pub enum PersistError {
    /// The file exists but is not a lab state; it was moved aside.
    #[error(
        "the lab's state file {path} is corrupt ({reason}); it was moved to {moved_to} so \
         nothing is lost. Start the lab again to begin with an empty cluster, or repair \
         the moved file and rename it back to {path}"
    )]
    Corrupt {
        /// The state file.
        path: PathBuf,
        /// Where it now is.
        moved_to: PathBuf,
        /// What was wrong.
        reason: String,
    },
    /// The file could not be read, moved or written.
    #[error("cannot access the lab's state file {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// Loads the store from `dir/state.json`, or a fresh one if there is none. Namespace
/// `default` always exists afterwards.
pub fn load(dir: &Path) -> Result<Store, PersistError> {
    let path = dir.join(STATE_FILE);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Store::new()),
        Err(source) => return Err(PersistError::Io { path, source }),
    };
    match parse(&bytes) {
        Ok((objects, rv)) => {
            let store = Store::from_parts(objects, rv);
            store.ensure_system_namespaces();
            Ok(store)
        }
        Err(reason) => {
            let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ");
            let moved_to = dir.join(format!("{STATE_FILE}.corrupt-{stamp}"));
            std::fs::rename(&path, &moved_to).map_err(|source| PersistError::Io {
                path: path.clone(),
                source,
            })?;
            Err(PersistError::Corrupt {
                path,
                moved_to,
                reason,
            })
        }
    }
}

type Objects = BTreeMap<(&'static str, String, String), Value>;

fn parse(bytes: &[u8]) -> Result<(Objects, u64), String> {
    let doc: Value = serde_json::from_slice(bytes).map_err(|e| format!("not JSON: {e}"))?;
    let rv = doc
        .get("resourceVersion")
        .and_then(Value::as_str)
        .and_then(|s| s.parse::<u64>().ok())
        .ok_or("no numeric \"resourceVersion\"")?;
    let list = doc
        .get("objects")
        .and_then(Value::as_array)
        .ok_or("no \"objects\" list")?;
    let mut objects = BTreeMap::new();
    for (i, entry) in list.iter().enumerate() {
        let resource = entry.get("resource").and_then(Value::as_str).unwrap_or("");
        let kind = kinds::stored(resource)
            .ok_or_else(|| format!("objects[{i}]: unknown resource {resource:?}"))?;
        let obj = entry
            .get("object")
            .filter(|o| o.is_object())
            .ok_or_else(|| format!("objects[{i}]: no \"object\""))?;
        let name = meta::name(obj);
        if name.is_empty() {
            return Err(format!("objects[{i}]: no metadata.name"));
        }
        let ns = obj
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or("");
        let ns = if kind.namespaced { ns } else { "" };
        objects.insert((kind.plural, ns.to_string(), name.to_string()), obj.clone());
    }
    Ok((objects, rv))
}

/// Writes the store to `dir/state.json` now.
pub fn save(store: &Store, dir: &Path) -> Result<(), PersistError> {
    Saver::default().save(store, dir)
}

/// Writes the state file, encoding again only the objects written since its last save:
/// a thousand pods and their Events make a state file of many megabytes that the lab
/// rewrites while anything changes (node heartbeats do, every few seconds).
///
/// The file is one JSON document, `{"resourceVersion": "..", "objects": [{"resource": ..,
/// "object": ..}, ..]}`, one object per line.
#[derive(Default)]
pub struct Saver {
    lines: Memo<Bytes>,
}

impl Saver {
    /// Writes the store to `dir/state.json` now.
    pub fn save(&mut self, store: &Store, dir: &Path) -> Result<(), PersistError> {
        let (objects, rv) = store.snapshot();
        let lines = self
            .lines
            .refresh(objects.iter().map(|(_, object)| object), |object| {
                // Encoding a `Value` cannot fail: its maps have string keys.
                Bytes::from(serde_json::to_vec(object).unwrap_or_default())
            });
        // Each line plus its envelope (`{"resource": "..", "object": ..},\n`).
        let size: usize = lines.iter().map(|l| l.len() + 64).sum();
        let mut doc = Vec::with_capacity(size + 64);
        doc.extend_from_slice(
            format!("{{\"resourceVersion\": \"{rv}\", \"objects\": [").as_bytes(),
        );
        for (i, ((resource, _), line)) in objects.iter().zip(&lines).enumerate() {
            doc.extend_from_slice(if i == 0 { b"\n" } else { b",\n" });
            // Resource names are plain lowercase plurals: nothing to escape.
            doc.extend_from_slice(b"{\"resource\": \"");
            doc.extend_from_slice(resource.as_bytes());
            doc.extend_from_slice(b"\", \"object\": ");
            doc.extend_from_slice(line);
            doc.push(b'}');
        }
        doc.extend_from_slice(b"\n]}\n");
        let path = dir.join(STATE_FILE);
        resil_common::atomic::write(&path, &doc).map_err(|source| PersistError::Io { path, source })
    }
}

/// Saves after changes, at most every [`DEBOUNCE`] or [`SAVE_SHARE`] times the last save's
/// duration, whichever is longer, until `shutdown`; then saves once more. Write errors are
/// logged and retried at the next change (the lab keeps serving).
pub async fn run(store: Arc<Store>, dir: PathBuf, shutdown: CancellationToken) {
    let mut saver = Saver::default();
    let mut changes = store.changes();
    let mut window = DEBOUNCE;
    loop {
        tokio::select! {
            // A change: wait out the debounce window so a burst becomes one write.
            changed = changes.changed() => {
                if changed.is_err() {
                    break;
                }
                tokio::select! {
                    _ = tokio::time::sleep(window) => {}
                    _ = shutdown.cancelled() => break,
                }
                changes.borrow_and_update();
                let started = std::time::Instant::now();
                saver = save_logged(saver, &store, &dir).await;
                window = DEBOUNCE.max(started.elapsed() * SAVE_SHARE);
            }
            // Shutdown: leave the loop for the final save.
            _ = shutdown.cancelled() => break,
        }
    }
    save_logged(saver, &store, &dir).await;
}

/// Saves on a blocking thread; hands the saver back for the next save.
async fn save_logged(mut saver: Saver, store: &Arc<Store>, dir: &Path) -> Saver {
    let store = store.clone();
    let dir = dir.to_path_buf();
    let result = tokio::task::spawn_blocking(move || {
        let result = saver.save(&store, &dir);
        (saver, result)
    })
    .await;
    match result {
        Ok((saver, Ok(()))) => saver,
        Ok((saver, Err(e))) => {
            tracing::error!("{}", error_chain(&e));
            saver
        }
        Err(e) => {
            tracing::error!("saving the lab state failed: {e}");
            Saver::default()
        }
    }
}
