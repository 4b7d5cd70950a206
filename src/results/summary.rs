//! `summary.json`: the derived figures of a run, one optional section per producer, so
//! `load` and `watch` can fill theirs independently and `report` reads one file.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The whole summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load: Option<LoadSummary>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watch: Option<WatchSummary>,
}

impl Default for Summary {
    fn default() -> Self {
        Summary {
            schema_version: super::SCHEMA_VERSION,
            load: None,
            watch: None,
        }
    }
}

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    pub p50_us: u64,
    pub p75_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
    pub mean_us: f64,
}

impl Percentiles {
    /// The percentiles of a histogram of µs (`None` when it is empty). The one builder for
    /// every producer and reader: the mean is rounded to 0.1 µs, below what any output
    /// shows, so `summary.json` and the report read the same figure.
    pub fn of(h: &hdrhistogram::Histogram<u64>) -> Option<Percentiles> {
        (!h.is_empty()).then(|| Percentiles {
            p50_us: h.value_at_quantile(0.50),
            p75_us: h.value_at_quantile(0.75),
            p90_us: h.value_at_quantile(0.90),
            p99_us: h.value_at_quantile(0.99),
            p999_us: h.value_at_quantile(0.999),
            max_us: h.max(),
            mean_us: (h.mean() * 10.0).round() / 10.0,
        })
    }
}

/// What the load engine measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoadSummary {
    pub url: String,
    /// `closed` (fixed concurrency) or `open` (fixed arrival rate).
    pub model: String,
    pub started_at: DateTime<Utc>,
    pub duration_s: f64,
    /// The open model's target rate (requests per second), if any.
    pub target_rate: Option<f64>,
    /// Achieved rate over the whole run.
    pub achieved_rate: f64,
    pub requests: u64,
    pub successes: u64,
    pub errors: u64,
    /// Error counts by kind: `connect`, `reset`, `timeout`, `http_5xx`, `http_4xx`, `other`.
    pub error_kinds: BTreeMap<String, u64>,
    /// Response counts by HTTP status code.
    pub status_codes: BTreeMap<String, u64>,
    /// Latency percentiles (coordinated-omission corrected in the open model).
    pub latency: Percentiles,
    /// Open model only: latency measured from the actual send time (wrk-style).
    #[serde(default)]
    pub latency_uncorrected: Option<Percentiles>,
    /// Per served-by colour.
    pub by_color: BTreeMap<String, ColorLoad>,
    /// Through `resil gateway`: per region it sent requests to (`unknown`: the gateway's
    /// own answers and failures without one). Absent without a gateway.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub by_region: BTreeMap<String, ColorLoad>,
    /// Open model: sends that left later than their intended time by more than 1 ms.
    #[serde(default)]
    pub late_sends: u64,
    /// Open model: sends never made because the generator was still behind its schedule
    /// a second after the run's duration (it stops then, and drops the rest).
    #[serde(default)]
    pub dropped_sends: u64,
    /// Client-observed downtime episodes (the first 1000 when there are more; a target
    /// that fails every other request opens and closes one per failure).
    pub downtime: Vec<DowntimeEpisode>,
    /// All downtime episodes, including those beyond `downtime`'s list.
    #[serde(default)]
    pub downtime_episodes: u64,
    /// Summed length of all ended downtime episodes, in ms.
    #[serde(default)]
    pub downtime_total_ms: u64,
    /// `--write-ratio`: writes acknowledged, and lost or wrong when read back (RPO).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub writes: Option<WriteSummary>,
}

/// The `load.writes` section of `summary.json` (`resil load --write-ratio`): what was
/// written, and what a read-back after the run found (see `load/writes.rs`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WriteSummary {
    /// `--write-ratio`.
    pub write_ratio: f64,
    /// Writes sent.
    pub attempted: u64,
    /// Writes acknowledged (2xx with an ack id).
    pub acknowledged: u64,
    /// Writes sent and not acknowledged (errors, refusals): not data loss, the client knows.
    pub unacknowledged: u64,
    /// Where they were read back; `None`: not verified.
    pub verify_url: Option<String>,
    /// Acknowledged writes read back with their value.
    pub verified: u64,
    /// RPO in writes: acknowledged writes that are gone.
    pub lost: u64,
    /// RPO in time: from the oldest lost acknowledgement to the newest (0 for one).
    pub rpo_window_ms: Option<u64>,
    /// When the oldest and the newest lost write were acknowledged.
    pub first_lost_at: Option<DateTime<Utc>>,
    pub last_lost_at: Option<DateTime<Utc>>,
    /// Writes read back with another value.
    pub wrong_value: u64,
    /// Ack ids given to more than one write.
    pub acked_twice: u64,
    /// Read-backs that failed (no answer, 5xx): neither lost nor kept.
    pub unverified: u64,
    /// Acknowledged past the tracking limit, not verified.
    pub untracked: u64,
    /// The first lost keys and correctness errors, for the operator.
    #[serde(default)]
    pub examples: Vec<String>,
}

impl WriteSummary {
    /// Correctness errors: wrong values and double acknowledgements.
    pub fn correctness_errors(&self) -> u64 {
        self.wrong_value + self.acked_twice
    }
}

/// Load figures of one colour.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColorLoad {
    pub requests: u64,
    pub errors: u64,
    pub latency: Percentiles,
}

/// First failed request to the first success after it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DowntimeEpisode {
    pub started_at: DateTime<Utc>,
    /// `None` when the run ended before a success came back.
    pub ended_at: Option<DateTime<Utc>>,
    pub duration_ms: Option<u64>,
    pub failed_requests: u64,
}

/// What the watcher recorded.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct WatchSummary {
    pub failovers: Vec<Failover>,
    pub scaling: Vec<ScalingEvent>,
    /// Pod-seconds per colour over the recording (Σ running-pod time).
    pub pod_seconds: BTreeMap<String, f64>,
    /// Resource requests of one pod per colour (for cost per request).
    pub pod_requests: BTreeMap<String, PodRequests>,
    /// Seconds recorded.
    pub duration_s: f64,
}

/// One failover (control plane).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Failover {
    pub from: String,
    pub to: String,
    /// When the active colour lost its last ready endpoint (or chaos was injected).
    pub started_at: DateTime<Utc>,
    /// When the Service selected the healthy colour and it had ready endpoints.
    pub completed_at: DateTime<Utc>,
    pub duration_ms: u64,
    /// Capacity-aware mode: whether the standby had to be scaled first, and how long it took.
    #[serde(default)]
    pub standby_prepared: bool,
    #[serde(default)]
    pub prepare_ms: Option<u64>,
    /// `failover` or `failback`.
    pub direction: String,
}

/// One scale-up: desired replicas went up, new pods became Ready.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScalingEvent {
    pub color: String,
    pub from_replicas: i32,
    pub to_replicas: i32,
    pub desired_at: DateTime<Utc>,
    /// When the last of the new pods became Ready (`None`: not within the recording).
    pub ready_at: Option<DateTime<Utc>>,
    pub latency_ms: Option<u64>,
}

/// CPU and memory requests of one pod.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PodRequests {
    /// CPU in millicores.
    pub cpu_millis: u64,
    /// Memory in bytes.
    pub memory_bytes: u64,
}
