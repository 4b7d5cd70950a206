//! The results directory: the contract between the commands that measure (`run`, `load`,
//! `watch`, `chaos`) and the ones that read (`report`, `cost`).
//!
//! ```text
//! results/<run-id>/
//!   run.json        RunMeta: what ran, when, against what, with which SLOs (`slos`,
//!                   `window_slos`); status
//!   timeline.jsonl  one Event per line (UTC, ms), appended as things happen
//!   latency.hdr     HDR histograms in the HdrHistogram interval-log format, one per tag
//!   summary.json    Summary: derived figures, one optional section per producer
//! ```
//!
//! `run.json` and `summary.json` are replaced atomically; `timeline.jsonl` is appended one
//! whole line per write, so a killed run leaves every complete line readable and at most
//! one torn last line, which readers skip. A run that did not finish keeps
//! `status: running` or `partial` in `run.json`, and reports show it as partial.
//!
//! One directory holds one run. `load --out DIR` starts the run ([`RunDir::start`]);
//! `watch`, `chaos` and `autoscale` with the same `--out` join it while it is running
//! ([`RunDir::join_or_start`]), or start one if they come first. A directory whose run
//! has ended, or that a load already wrote, takes no second run: its timeline would mix
//! two runs' events under one `summary.json`. `resil run` makes a fresh
//! `<parent>/<timestamp>-<name>/` for every run ([`RunDir::create_new`]).
//!
//! `run.json` records every SLO the run is judged by, so `resil report DIR` gives the
//! verdicts (and exit code) `resil run` gave: `slos` (whole-run expressions, or a load's
//! `--fail-on` thresholds) and `window_slos` (absent when there are none, and in a
//! `run.json` written before they were recorded; `crate::judge` then reads them from the
//! recorded scenario).
//!
//! The schema is versioned by [`SCHEMA_VERSION`]; `schema/results.schema.json` documents
//! it for other tools. Bump the version on any incompatible change.

pub mod hdr;
pub mod summary;
pub mod timeline;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use summary::Summary;
pub use timeline::{Event, EventKind, TimelineWriter};

/// The version of the results-directory schema this build reads and writes.
pub const SCHEMA_VERSION: u32 = 1;

/// File names inside a results directory.
pub const RUN_FILE: &str = "run.json";
pub const TIMELINE_FILE: &str = "timeline.jsonl";
pub const LATENCY_FILE: &str = "latency.hdr";
pub const SUMMARY_FILE: &str = "summary.json";
/// Every file a results directory may hold.
const RESULT_FILES: [&str; 4] = [RUN_FILE, TIMELINE_FILE, LATENCY_FILE, SUMMARY_FILE];

/// Problems reading or writing a results directory.
#[derive(Debug, thiserror::Error)]
pub enum ResultsError {
    /// A file could not be read or written.
    #[error("cannot access {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A file exists but does not parse; `line` is 1-based where it applies.
    #[error("{path}{}: {message}", line.map(|l| format!(":{l}")).unwrap_or_default())]
    Corrupt {
        path: PathBuf,
        line: Option<usize>,
        message: String,
    },
    /// The directory was written by a resil with another schema.
    #[error(
        "{path}: schema version {found} is not supported (this resil reads version {SCHEMA_VERSION}); \
         use the resil version that wrote it"
    )]
    UnsupportedSchema { path: PathBuf, found: u32 },
    /// The directory cannot take a new run: it holds another run, or other files.
    #[error(
        "{path} already holds {holds}: one results directory holds one run, so a second \
         one would mix its timeline with the first's. Give --out a new directory (or move \
         this one aside)"
    )]
    Occupied { path: PathBuf, holds: String },
    /// The directory is not a results directory at all.
    #[error("{path}: not a results directory (no run.json); pass the directory a run wrote")]
    NotAResultsDir { path: PathBuf },
}

/// Result alias for this module.
pub type Result<T> = std::result::Result<T, ResultsError>;

/// Where a run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Still being written (or killed before it could say otherwise).
    Running,
    /// Finished as planned.
    Complete,
    /// Stopped early (Ctrl-C, abort rule, error); what was measured is kept.
    Partial,
}

/// `run.json`: what ran, when, against what.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunMeta {
    pub schema_version: u32,
    /// Directory name of the run, e.g. `20261123T083000Z-blue-green-failover`.
    pub run_id: String,
    pub resil_version: String,
    /// The command that produced the run: `run`, `load`, `watch`, `chaos`.
    pub command: String,
    pub started_at: DateTime<Utc>,
    #[serde(default)]
    pub ended_at: Option<DateTime<Utc>>,
    pub status: RunStatus,
    /// Why a run is partial (`interrupted`, `aborted: p99 breached`, ...).
    #[serde(default)]
    pub partial_reason: Option<String>,
    /// The kubeconfig context, when a cluster was involved.
    #[serde(default)]
    pub context: Option<String>,
    /// The load target, when load ran.
    #[serde(default)]
    pub target_url: Option<String>,
    /// The scenario's name and its parsed content, when a scenario ran.
    #[serde(default)]
    pub scenario: Option<serde_json::Value>,
    /// SLO expressions the run is judged by, e.g. `p99<300ms`.
    #[serde(default)]
    pub slos: Vec<String>,
    /// SLOs on a window of the load, judged with `slos` (durations as the run used them,
    /// after `--time-scale`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub window_slos: Vec<WindowSlo>,
    /// Pricing profile name used for cost figures, when chosen at run time.
    #[serde(default)]
    pub pricing: Option<String>,
}

impl RunMeta {
    /// A fresh `running` record stamped now.
    pub fn start(run_id: impl Into<String>, command: impl Into<String>) -> RunMeta {
        RunMeta {
            schema_version: SCHEMA_VERSION,
            run_id: run_id.into(),
            resil_version: env!("CARGO_PKG_VERSION").to_string(),
            command: command.into(),
            started_at: now_ms(),
            ended_at: None,
            status: RunStatus::Running,
            partial_reason: None,
            context: None,
            target_url: None,
            scenario: None,
            slos: Vec::new(),
            window_slos: Vec::new(),
            pricing: None,
        }
    }

    /// Whether reports must mark this run as partial.
    pub fn is_partial(&self) -> bool {
        self.status != RunStatus::Complete
    }
}

/// An SLO on a window of the load: `{from: 20s, to: 40s, slo: "error_rate<1%"}` — in a
/// scenario's `window_slos` and in `run.json`; judged by `crate::judge::window`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowSlo {
    /// Start of the window, from the start of the load.
    #[serde(with = "humantime_serde")]
    pub from: Duration,
    /// End of the window (default: the end of the load).
    #[serde(default, with = "humantime_serde::option")]
    pub to: Option<Duration>,
    /// `error_rate<PCT%` or `p99<DURATION` (the worst one-second p99 in the window).
    pub slo: String,
}

/// The current time truncated to milliseconds (the timeline's precision).
pub fn now_ms() -> DateTime<Utc> {
    let now = Utc::now();
    DateTime::from_timestamp_millis(now.timestamp_millis()).unwrap_or(now)
}

/// A run directory on disk.
#[derive(Debug, Clone)]
pub struct RunDir {
    path: PathBuf,
}

impl RunDir {
    /// Creates (or reuses) `path` as a results directory.
    pub fn create(path: impl Into<PathBuf>) -> Result<RunDir> {
        let path = path.into();
        fs::create_dir_all(&path).map_err(|source| ResultsError::Io {
            path: path.clone(),
            source,
        })?;
        Ok(RunDir { path })
    }

    /// Creates `path` for a new run of the producer that owns it (`load --out`): a new or
    /// empty directory, or one that producers joining the same run (`watch`, `chaos`,
    /// `autoscale`) started and are still writing. Anything else is
    /// [`ResultsError::Occupied`]: a run that has ended, a load's run (still going, or
    /// killed), files that are not results files.
    pub fn start(path: impl Into<PathBuf>) -> Result<RunDir> {
        let path = path.into();
        let occupied = |holds: String| ResultsError::Occupied {
            path: path.clone(),
            holds,
        };
        let names: Vec<String> = match fs::read_dir(&path) {
            Ok(entries) => entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(source) => return Err(ResultsError::Io { path, source }),
        };
        // Dot files are the temporary files of atomic writes (and editors' droppings).
        let foreign = |n: &&String| !n.starts_with('.') && !RESULT_FILES.contains(&n.as_str());
        if let Some(other) = names.iter().find(foreign) {
            return Err(occupied(format!(
                "{other}, which is not a results file (this is not a results directory)"
            )));
        }
        let dir = RunDir { path: path.clone() };
        if let Some(meta) = dir.running_meta()?
            && meta.command == "load"
        {
            return Err(occupied(format!(
                "the load run {} started at {} (still running, or killed before it ended)",
                meta.run_id,
                meta.started_at.format("%Y-%m-%d %H:%M:%S UTC")
            )));
        }
        if names.iter().any(|n| n == SUMMARY_FILE) {
            let summary = dir
                .read_summary()
                .map_err(|e| occupied(format!("a summary.json this resil cannot use ({e})")))?;
            if summary.load.is_some() {
                return Err(occupied("a load's summary".to_string()));
            }
        }
        RunDir::create(path)
    }

    /// Creates (or reuses) `path` for a producer that may share it with others (`watch`,
    /// `chaos` and `autoscale` beside a `load --out` into the same directory): joins the
    /// run its `run.json` says is still running, else starts one for `command`, so
    /// `report` can open the dir. A run that has ended, or a `run.json` this resil cannot
    /// read, is [`ResultsError::Occupied`]: nothing is appended to, or overwritten in, it.
    pub fn join_or_start(path: impl Into<PathBuf>, command: &str) -> Result<(RunDir, RunMeta)> {
        let dir = RunDir::create(path)?;
        let meta = match dir.running_meta()? {
            Some(meta) => meta,
            None => {
                let name = dir
                    .path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let meta = RunMeta::start(name, command);
                dir.write_meta(&meta)?;
                meta
            }
        };
        Ok((dir, meta))
    }

    /// The run `run.json` says is still running; `None` without a `run.json`. A run that
    /// has ended, or a `run.json` this resil cannot read, is [`ResultsError::Occupied`].
    fn running_meta(&self) -> Result<Option<RunMeta>> {
        if !self.file(RUN_FILE).exists() {
            return Ok(None);
        }
        let occupied = |holds: String| ResultsError::Occupied {
            path: self.path.clone(),
            holds,
        };
        let meta = self
            .read_meta()
            .map_err(|e| occupied(format!("a run.json this resil cannot use ({e})")))?;
        if meta.status != RunStatus::Running {
            return Err(occupied(finished(&meta)));
        }
        Ok(Some(meta))
    }

    /// Creates `<parent>/<timestamp>-<label>` as a new run directory.
    pub fn create_new(parent: &Path, label: &str) -> Result<RunDir> {
        let stamp = Utc::now().format("%Y%m%dT%H%M%S%.3fZ");
        RunDir::create(parent.join(format!("{stamp}-{label}")))
    }

    /// Opens an existing results directory for reading.
    pub fn open(path: impl Into<PathBuf>) -> Result<RunDir> {
        let path = path.into();
        if !path.join(RUN_FILE).is_file() {
            return Err(ResultsError::NotAResultsDir { path });
        }
        Ok(RunDir { path })
    }

    /// The newest run directory under `parent` (by `run.json` start time, then name).
    pub fn newest(parent: &Path) -> Result<RunDir> {
        let entries = fs::read_dir(parent).map_err(|source| ResultsError::Io {
            path: parent.to_path_buf(),
            source,
        })?;
        let mut best: Option<(DateTime<Utc>, PathBuf)> = None;
        for entry in entries.flatten() {
            let dir = entry.path();
            let Ok(run) = RunDir::open(&dir) else {
                continue;
            };
            let Ok(meta) = run.read_meta() else { continue };
            let key = (meta.started_at, dir);
            if best.as_ref().is_none_or(|b| key > *b) {
                best = Some(key);
            }
        }
        best.map(|(_, path)| RunDir { path })
            .ok_or_else(|| ResultsError::NotAResultsDir {
                path: parent.to_path_buf(),
            })
    }

    /// The directory's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Path of a file inside the directory.
    pub fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// Writes `run.json` atomically.
    pub fn write_meta(&self, meta: &RunMeta) -> Result<()> {
        let path = self.file(RUN_FILE);
        crate::atomic::write_json(&path, meta).map_err(|source| ResultsError::Io { path, source })
    }

    /// Reads `run.json`, checking the schema version.
    pub fn read_meta(&self) -> Result<RunMeta> {
        let meta: RunMeta = read_versioned_json(&self.file(RUN_FILE))?;
        Ok(meta)
    }

    /// Writes `summary.json` atomically.
    pub fn write_summary(&self, summary: &Summary) -> Result<()> {
        let path = self.file(SUMMARY_FILE);
        crate::atomic::write_json(&path, summary)
            .map_err(|source| ResultsError::Io { path, source })
    }

    /// Reads `summary.json`; a run that wrote none yet reads as an empty summary.
    pub fn read_summary(&self) -> Result<Summary> {
        let path = self.file(SUMMARY_FILE);
        if !path.exists() {
            return Ok(Summary::default());
        }
        read_versioned_json(&path)
    }

    /// Reads, changes and writes back `summary.json` (each producer fills its section).
    pub fn update_summary(&self, change: impl FnOnce(&mut Summary)) -> Result<()> {
        let mut summary = self.read_summary()?;
        change(&mut summary);
        self.write_summary(&summary)
    }

    /// Opens `timeline.jsonl` for appending.
    pub fn timeline(&self) -> Result<TimelineWriter> {
        TimelineWriter::open(&self.file(TIMELINE_FILE))
    }

    /// Reads every complete event of `timeline.jsonl` (none if it does not exist).
    pub fn read_timeline(&self) -> Result<Vec<Event>> {
        timeline::read(&self.file(TIMELINE_FILE))
    }
}

/// "the finished run ID (COMMAND, ended at ...)" for messages.
fn finished(meta: &RunMeta) -> String {
    let when = meta
        .ended_at
        .map(|at| format!(", ended at {}", at.format("%Y-%m-%d %H:%M:%S UTC")))
        .unwrap_or_default();
    format!(
        "the finished run {} (resil {}{when})",
        meta.run_id, meta.command
    )
}

/// Reads JSON that carries a `schema_version` field, refusing other versions with a clear
/// error before looking at the rest.
fn read_versioned_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text = fs::read_to_string(path).map_err(|source| ResultsError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let corrupt = |e: serde_json::Error| ResultsError::Corrupt {
        path: path.to_path_buf(),
        line: Some(e.line()),
        message: e.to_string(),
    };
    let value: serde_json::Value = serde_json::from_str(&text).map_err(corrupt)?;
    let found = value
        .get("schema_version")
        .and_then(serde_json::Value::as_u64)
        .ok_or_else(|| ResultsError::Corrupt {
            path: path.to_path_buf(),
            line: None,
            message: "missing schema_version".into(),
        })?;
    if found != u64::from(SCHEMA_VERSION) {
        return Err(ResultsError::UnsupportedSchema {
            path: path.to_path_buf(),
            found: u32::try_from(found).unwrap_or(u32::MAX),
        });
    }
    serde_json::from_value(value).map_err(|e| ResultsError::Corrupt {
        path: path.to_path_buf(),
        line: None,
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unreadable_file_names_the_path_and_its_cause_once() {
        let root = tempfile::tempdir().unwrap();
        let missing = root.path().join("run.json");
        let err = read_versioned_json::<RunMeta>(&missing).unwrap_err();
        let chain = format!("{:#}", anyhow::Error::from(err));
        let cause = std::fs::read(&missing).unwrap_err().to_string();
        assert!(chain.contains(&missing.display().to_string()), "{chain}");
        assert_eq!(chain.matches(&cause).count(), 1, "{chain}");
    }

    #[test]
    fn meta_round_trips_and_newest_picks_the_latest_run() {
        let root = tempfile::tempdir().unwrap();
        let older = RunDir::create(root.path().join("a")).unwrap();
        let mut meta = RunMeta::start("a", "load");
        older.write_meta(&meta).unwrap();
        let newer = RunDir::create(root.path().join("b")).unwrap();
        meta.run_id = "b".into();
        meta.started_at += chrono::Duration::seconds(5);
        meta.status = RunStatus::Complete;
        newer.write_meta(&meta).unwrap();
        fs::create_dir(root.path().join("not-a-run")).unwrap();

        let newest = RunDir::newest(root.path()).unwrap();
        assert_eq!(newest.read_meta().unwrap(), meta);
        assert!(!newest.read_meta().unwrap().is_partial());
    }

    #[test]
    fn another_schema_version_is_refused_with_the_file_named() {
        let root = tempfile::tempdir().unwrap();
        let run = RunDir::create(root.path()).unwrap();
        fs::write(run.file(RUN_FILE), r#"{"schema_version": 99}"#).unwrap();
        let err = run.read_meta().unwrap_err().to_string();
        assert!(err.contains("schema version 99"), "{err}");
        assert!(err.contains("run.json"), "{err}");
    }

    fn finished_run(path: &Path, command: &str) -> RunDir {
        let run = RunDir::start(path).unwrap();
        let mut meta = RunMeta::start("first", command);
        meta.status = RunStatus::Complete;
        meta.ended_at = Some(now_ms());
        run.write_meta(&meta).unwrap();
        run.timeline()
            .unwrap()
            .append(&Event::now(
                "load",
                EventKind::Note {
                    message: "first run".to_string(),
                },
            ))
            .unwrap();
        run
    }

    #[test]
    fn a_second_run_into_a_finished_runs_directory_is_refused_and_nothing_is_appended() {
        let root = tempfile::tempdir().unwrap();
        let run = finished_run(&root.path().join("r"), "load");
        let before = fs::read(run.file(TIMELINE_FILE)).unwrap();
        let err = RunDir::start(run.path()).unwrap_err().to_string();
        assert!(
            err.contains("already holds the finished run first"),
            "{err}"
        );
        assert!(err.contains("Give --out a new directory"), "{err}");
        for joiner in ["watch", "chaos", "autoscale"] {
            let err = RunDir::join_or_start(run.path(), joiner).unwrap_err();
            assert!(
                matches!(err, ResultsError::Occupied { .. }),
                "{joiner}: {err}"
            );
        }
        assert_eq!(fs::read(run.file(TIMELINE_FILE)).unwrap(), before);
    }

    #[test]
    fn a_load_joins_a_running_watch_but_not_another_load_or_foreign_files() {
        let root = tempfile::tempdir().unwrap();
        // watch first, then load into the same directory: one run.
        let (watched, _) = RunDir::join_or_start(root.path().join("w"), "watch").unwrap();
        RunDir::start(watched.path()).unwrap();
        // A load that is still running (or was killed) owns its directory.
        let loading = RunDir::start(root.path().join("l")).unwrap();
        loading.write_meta(&RunMeta::start("l", "load")).unwrap();
        let err = RunDir::start(loading.path()).unwrap_err().to_string();
        assert!(err.contains("the load run l started at"), "{err}");
        let (_, meta) = RunDir::join_or_start(loading.path(), "chaos").unwrap();
        assert_eq!(meta.command, "load");
        // Not a results directory: refused, left as it is.
        let src = root.path().join("src");
        fs::create_dir(&src).unwrap();
        fs::write(src.join("main.rs"), "fn main() {}").unwrap();
        let err = RunDir::start(&src).unwrap_err().to_string();
        assert!(
            err.contains("main.rs, which is not a results file"),
            "{err}"
        );
        assert!(!src.join(RUN_FILE).exists());
        // A watcher's section without run.json is joined; a load's summary is not.
        let shared = RunDir::create(root.path().join("s")).unwrap();
        shared
            .update_summary(|s| s.watch = Some(Default::default()))
            .unwrap();
        RunDir::start(shared.path()).unwrap();
        let with_load = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/results/failover")
            .join(SUMMARY_FILE);
        fs::copy(with_load, shared.file(SUMMARY_FILE)).unwrap();
        let err = RunDir::start(shared.path()).unwrap_err().to_string();
        assert!(err.contains("a load's summary"), "{err}");
        // New and empty directories are fine.
        RunDir::start(root.path().join("new/deeper")).unwrap();
        let empty = root.path().join("empty");
        fs::create_dir(&empty).unwrap();
        RunDir::start(&empty).unwrap();
    }

    #[test]
    fn a_run_json_of_another_schema_is_neither_joined_nor_overwritten() {
        let root = tempfile::tempdir().unwrap();
        let run = RunDir::create(root.path()).unwrap();
        fs::write(run.file(RUN_FILE), r#"{"schema_version": 99}"#).unwrap();
        let err = RunDir::join_or_start(root.path(), "watch")
            .unwrap_err()
            .to_string();
        assert!(err.contains("schema version 99"), "{err}");
        assert_eq!(
            fs::read_to_string(run.file(RUN_FILE)).unwrap(),
            r#"{"schema_version": 99}"#
        );
    }

    #[test]
    fn a_directory_without_run_json_is_not_a_results_dir() {
        let root = tempfile::tempdir().unwrap();
        let err = RunDir::open(root.path()).unwrap_err();
        assert!(matches!(err, ResultsError::NotAResultsDir { .. }));
    }
}
