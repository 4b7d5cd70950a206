//! `timeline.jsonl`: one [`Event`] per line, in the order they were observed.
//!
//! Every event has a UTC timestamp with millisecond precision, the `source` that wrote
//! it (`load`, `watch`, `chaos`, `run`, `autoscale`) and a `type` with its own fields.
//! Writers append whole lines; readers skip a torn last line (a killed writer) but report
//! a corrupt line anywhere else with its line number.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Result, ResultsError};

/// One line of the timeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// When it happened (UTC, ms precision).
    #[serde(with = "ts_ms")]
    pub ts: DateTime<Utc>,
    /// Which part of resil observed or caused it.
    pub source: String,
    #[serde(flatten)]
    pub kind: EventKind,
}

impl Event {
    /// An event stamped now.
    pub fn now(source: &str, kind: EventKind) -> Event {
        Event {
            ts: super::now_ms(),
            source: source.to_string(),
            kind,
        }
    }
}

/// Requests and errors of one colour (or pod) in one bucket.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Served {
    pub requests: u64,
    pub errors: u64,
    /// Responses timed (those that got a reply) — per pod only; 0 and absent otherwise.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub timed: u64,
    /// Σ latency (µs, from send to reply) of the timed responses, so that buckets add up
    /// and a window's mean is `latency_sum_us / timed` — per pod only.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub latency_sum_us: u64,
}

impl Served {
    /// Requests and errors without latency.
    pub fn counts(requests: u64, errors: u64) -> Served {
        Served {
            requests,
            errors,
            ..Served::default()
        }
    }

    /// Mean latency of the timed responses in µs, when any was timed.
    pub fn mean_latency_us(&self) -> Option<u64> {
        (self.timed > 0).then(|| self.latency_sum_us / self.timed)
    }
}

/// The median and 99th percentile (µs, corrected like the bucket's) of one colour's
/// responses in one bucket.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColorLatency {
    pub p50_us: u64,
    pub p99_us: u64,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventKind {
    /// One second of load: counts, latency percentiles (µs, corrected for coordinated
    /// omission in the open model), and who served it.
    LoadBucket {
        /// Seconds since the load started (0-based); `ts` is the bucket's start.
        second: u64,
        requests: u64,
        errors: u64,
        p50_us: u64,
        p90_us: u64,
        p99_us: u64,
        max_us: u64,
        /// Served-by colour (from the demo app's response headers; `unknown` otherwise).
        #[serde(default)]
        by_color: BTreeMap<String, Served>,
        /// Served-by pod, when the target names its pods.
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        by_pod: BTreeMap<String, Served>,
        /// Latency of each served-by colour's responses in this second (absent in
        /// timelines written before it was recorded).
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        latency_by_color: BTreeMap<String, ColorLatency>,
    },
    /// A client-observed downtime episode: first failed request to first success after it.
    Downtime {
        started_at: DateTime<Utc>,
        ended_at: Option<DateTime<Utc>>,
        duration_ms: Option<u64>,
        failed_requests: u64,
    },
    /// A client-observed recovery episode: the first failed request to the first of
    /// `successes_needed` successes in a row (`recovered_at`; `None`: not recovered when
    /// the load ended). Every failure falls in one.
    Recovery {
        started_at: DateTime<Utc>,
        recovered_at: Option<DateTime<Utc>>,
        failed_requests: u64,
        successes_needed: u32,
    },
    /// resil injected a fault.
    ChaosInjected {
        /// Journal id of the action, shared with its revert.
        id: String,
        /// `kill-pods`, `outage`, `degrade`, `cpu-burn`, `latency`.
        action: String,
        /// What it hit: pod names, `deployment/web-blue`, `service/web`.
        targets: Vec<String>,
        #[serde(default)]
        detail: String,
    },
    /// resil reverted a fault it injected.
    ChaosReverted {
        id: String,
        action: String,
        targets: Vec<String>,
        #[serde(default)]
        detail: String,
    },
    /// A pod was created.
    PodCreated { pod: String, color: Option<String> },
    /// A pod became Ready.
    PodReady { pod: String, color: Option<String> },
    /// A pod stopped being Ready.
    PodUnready { pod: String, color: Option<String> },
    /// A pod is gone.
    PodDeleted { pod: String, color: Option<String> },
    /// Ready endpoints of a Service changed; counts per colour.
    EndpointsChanged {
        service: String,
        ready: BTreeMap<String, u32>,
    },
    /// The Service's selector moved to another colour.
    SelectorSwitched {
        service: String,
        from: Option<String>,
        to: String,
        reason: String,
    },
    /// A failover finished: the Service selects a colour that has ready endpoints.
    FailoverCompleted {
        from: String,
        to: String,
        /// When the active colour lost its last ready endpoint (or chaos hit it).
        started_at: DateTime<Utc>,
        duration_ms: u64,
    },
    /// The HPA's view of one colour.
    HpaReplicas {
        hpa: String,
        color: Option<String>,
        current: i32,
        desired: i32,
        /// Current CPU utilization in percent of request, when known.
        cpu_utilization: Option<i32>,
    },
    /// A Deployment's replica counts changed.
    DeploymentReplicas {
        deployment: String,
        color: Option<String>,
        desired: i32,
        ready: i32,
        available: i32,
    },
    /// A decision of a controller of resil's (watcher, predictive autoscaler), explained.
    Decision {
        controller: String,
        inputs: serde_json::Value,
        rule: String,
        action: String,
    },
    /// Anything else worth a line in the report.
    Note { message: String },
    /// A ReplicaSet's replicas changed while `resil rollout` watched its Deployment.
    ReplicaSetReplicas {
        deployment: String,
        replica_set: String,
        /// `deployment.kubernetes.io/revision` (0 when absent).
        revision: i64,
        desired: i32,
        ready: i32,
        available: i32,
    },
    /// A rollout started a step: `update` (the whole Deployment), `canary` (a share of
    /// the pods), `promote` or `rollback`.
    RolloutStep {
        deployment: String,
        step: String,
        /// Share of the colour's pods on the new release once the step is done (%).
        weight_percent: u32,
        detail: String,
    },
    /// One analysis interval judged on the load's one-second buckets.
    AnalysisInterval {
        deployment: String,
        /// 1-based, counted over the whole rollout.
        interval: u32,
        /// The interval's start.
        #[serde(with = "ts_ms")]
        from: DateTime<Utc>,
        requests: u64,
        errors: u64,
        /// The worst one-second p99 of the interval (µs).
        p99_us: u64,
        passed: bool,
        /// Each failed check with its measured value, `; `-separated (empty when passed).
        reason: String,
    },
    /// A breach made the rollout roll back (to the previous revision).
    RollbackStarted {
        deployment: String,
        /// The interval that breached, and why.
        interval: u32,
        reason: String,
        /// The first second of the failing interval that breached on its own (else the
        /// interval's end): when users started to feel it.
        #[serde(with = "ts_ms")]
        breached_at: DateTime<Utc>,
        /// When the analysis judged the interval.
        #[serde(with = "ts_ms")]
        detected_at: DateTime<Utc>,
        to_revision: Option<i64>,
    },
    /// A rollout ended: `complete`, `rolled_back` or `failed`.
    RolloutFinished {
        deployment: String,
        outcome: String,
        /// The Deployment's revision at the end.
        revision: Option<i64>,
        detail: String,
    },
}

/// Appends events to `timeline.jsonl`, one whole line per write, flushed at once.
#[derive(Debug)]
pub struct TimelineWriter {
    file: File,
    path: PathBuf,
}

impl TimelineWriter {
    /// Opens (creating) the file for appending.
    pub fn open(path: &Path) -> Result<TimelineWriter> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|source| ResultsError::Io {
                path: path.to_path_buf(),
                source,
            })?;
        Ok(TimelineWriter {
            file,
            path: path.to_path_buf(),
        })
    }

    /// Appends one event as one line. A single `write` of the whole line keeps lines from
    /// two writers (load and watch in one directory) from interleaving.
    pub fn append(&mut self, event: &Event) -> Result<()> {
        let mut line = serde_json::to_vec(event).map_err(|e| ResultsError::Corrupt {
            path: self.path.clone(),
            line: None,
            message: e.to_string(),
        })?;
        line.push(b'\n');
        self.file
            .write_all(&line)
            .map_err(|source| ResultsError::Io {
                path: self.path.clone(),
                source,
            })
    }
}

/// Reads every event; a missing file is an empty timeline.
pub fn read(path: &Path) -> Result<Vec<Event>> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(ResultsError::Io {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    let lines: Vec<String> = BufReader::new(file)
        .lines()
        .collect::<std::io::Result<_>>()
        .map_err(|source| ResultsError::Io {
            path: path.to_path_buf(),
            source,
        })?;
    let last = lines.len();
    let mut events = Vec::with_capacity(last);
    for (i, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Event>(line) {
            Ok(event) => events.push(event),
            // A writer killed mid-line leaves one torn last line: keep everything before it.
            Err(e) if i + 1 == last && e.is_eof() => break,
            Err(e) => {
                return Err(ResultsError::Corrupt {
                    path: path.to_path_buf(),
                    line: Some(i + 1),
                    message: e.to_string(),
                });
            }
        }
    }
    Ok(events)
}

/// RFC 3339 with exactly three fractional digits and `Z`.
mod ts_ms {
    use chrono::{DateTime, SecondsFormat, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(ts: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&ts.to_rfc3339_opts(SecondsFormat::Millis, true))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let s = String::deserialize(d)?;
        DateTime::parse_from_rfc3339(&s)
            .map(|t| t.with_timezone(&Utc))
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
impl EventKind {
    /// A load bucket for tests: `requests`, `errors` and `p99_us` at `second`, served by
    /// `by_pod`, the other latencies 0 and no colours.
    pub(crate) fn test_bucket(
        second: u64,
        requests: u64,
        errors: u64,
        p99_us: u64,
        by_pod: BTreeMap<String, Served>,
    ) -> EventKind {
        EventKind::LoadBucket {
            second,
            requests,
            errors,
            p50_us: 0,
            p90_us: 0,
            p99_us,
            max_us: 0,
            by_color: BTreeMap::new(),
            by_pod,
            latency_by_color: BTreeMap::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn switched() -> Event {
        Event::now(
            "watch",
            EventKind::SelectorSwitched {
                service: "web".into(),
                from: Some("blue".into()),
                to: "green".into(),
                reason: "blue has 0 ready endpoints".into(),
            },
        )
    }

    #[test]
    fn events_round_trip_with_millisecond_timestamps() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("timeline.jsonl");
        let mut w = TimelineWriter::open(&path).unwrap();
        let event = switched();
        w.append(&event).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(r#""type":"selector_switched""#), "{text}");
        assert!(text.contains('Z'), "{text}");
        assert_eq!(read(&path).unwrap(), vec![event]);
    }

    #[test]
    fn a_torn_last_line_is_skipped_but_a_corrupt_middle_line_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("timeline.jsonl");
        let good = serde_json::to_string(&switched()).unwrap();
        std::fs::write(&path, format!("{good}\n{good}\n{}", &good[..20])).unwrap();
        assert_eq!(read(&path).unwrap().len(), 2);

        std::fs::write(&path, format!("{good}\nnot json\n{good}\n")).unwrap();
        let err = read(&path).unwrap_err().to_string();
        assert!(err.contains("timeline.jsonl:2"), "{err}");
    }
}
