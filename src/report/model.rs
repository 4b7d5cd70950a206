//! The report's data model: every figure `resil report` shows, computed once from a results
//! directory and then rendered by each format. Serialized as-is for `-o json`, whose shape
//! is versioned by [`REPORT_SCHEMA_VERSION`] and published in `schema/report.schema.json`.
//! Built by `build.rs`; read by the renderers, the SLO evaluator and the comparison.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::cost::RunCost;
use crate::results::RunStatus;
use crate::results::summary::{Percentiles, ScalingEvent};

pub use super::rollouts::{RollbackFigures, RolloutFigures, RolloutStepFigures};

/// Version of the JSON report's shape. Bump it on any incompatible change (a removed or
/// renamed field, a changed unit); adding an optional field is compatible.
pub const REPORT_SCHEMA_VERSION: u32 = 1;

/// The whole report of one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub report_schema_version: u32,
    pub run: RunInfo,
    /// What the load engine measured; `None` when no load ran.
    pub load: Option<LoadFigures>,
    /// Failover episodes, control plane and client side.
    pub failovers: Vec<FailoverEpisode>,
    /// Every client-observed downtime episode.
    pub downtime: Vec<Downtime>,
    /// Scale-ups and how long their pods took to become Ready.
    pub scaling: Vec<ScalingEvent>,
    /// Σ running-pod time per colour, in seconds.
    pub replica_seconds: BTreeMap<String, f64>,
    /// Where the replica-seconds came from: `watch summary`, `timeline`, or `none`.
    pub replica_seconds_source: String,
    /// Cost per request; `None` when there are no pod-seconds to price.
    pub cost: Option<CostFigures>,
    /// Faults resil injected during the run.
    pub chaos: Vec<ChaosAction>,
    /// Per fault, what clients felt and how long (see `report/recovery.rs`). Absent in
    /// reports of older versions, hence the default.
    #[serde(default)]
    pub recovery: Vec<super::recovery::FaultRecovery>,
    /// What resil's own controllers (failover watcher, outlier ejector, predictive
    /// autoscaler) decided during the run, each with its inputs, rule and action, in time
    /// order. Absent in reports of older versions, hence the default.
    #[serde(default)]
    pub decisions: Vec<Decision>,
    /// The rollouts of the run (`resil rollout`, a scenario's `rollout` step), with a
    /// rollback's timing. Absent in reports of older versions, hence the default.
    #[serde(default)]
    pub rollouts: Vec<RolloutFigures>,
    /// Writes of `--write-ratio` and what the read-back after the run found: RPO (lost
    /// writes and the window they span) and correctness errors. Absent when nothing wrote.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub writes: Option<crate::results::summary::WriteSummary>,
    /// One verdict per SLO expression, in the order given.
    pub slos: Vec<SloVerdict>,
    /// All SLOs held (true when there are none).
    pub slos_passed: bool,
    /// The comparison against `--baseline`, when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<Comparison>,
}

/// What ran, when, and whether it finished.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunInfo {
    pub run_id: String,
    pub command: String,
    pub resil_version: String,
    pub started_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    pub status: RunStatus,
    /// The run did not finish: its figures cover only what was recorded.
    pub partial: bool,
    pub partial_reason: Option<String>,
    pub context: Option<String>,
    pub target_url: Option<String>,
    /// The scenario's `name`, when a scenario ran.
    pub scenario: Option<String>,
    /// Seconds between the start and the end (or the last recorded event).
    pub duration_s: f64,
}

/// Request totals, error rate and latency.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoadFigures {
    /// `summary` (the load engine's summary.json section) or `timeline` (summed from
    /// per-second buckets, e.g. a run killed before it wrote its summary).
    pub source: String,
    pub requests: u64,
    pub successes: u64,
    pub errors: u64,
    /// errors ÷ requests (0 when there were none).
    pub error_rate: f64,
    pub duration_s: f64,
    /// Requests per second over the run.
    pub achieved_rate: f64,
    /// Error counts by kind (`connect`, `timeout`, `http_5xx`, ...).
    pub error_kinds: BTreeMap<String, u64>,
    /// Overall latency (µs); `None` when no histogram or summary recorded it.
    pub latency: Option<Percentiles>,
    /// Per served-by colour, sorted by colour.
    pub by_color: Vec<ColorFigures>,
    /// Through `resil gateway`: per region it sent requests to, sorted by name
    /// (`unknown`: the gateway's own answers and failures without one). Absent without
    /// a gateway.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub by_region: Vec<RegionFigures>,
}

/// One region's share of the load through the gateway.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegionFigures {
    pub region: String,
    pub requests: u64,
    pub errors: u64,
    pub error_rate: f64,
    pub latency: Option<Percentiles>,
}

/// One colour's share of the load.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColorFigures {
    pub color: String,
    pub requests: u64,
    pub errors: u64,
    pub error_rate: f64,
    pub latency: Option<Percentiles>,
}

/// One failover: how long the control plane took and what clients saw meanwhile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FailoverEpisode {
    pub from: String,
    pub to: String,
    /// `failover` or `failback`.
    pub direction: String,
    pub started_at: DateTime<Utc>,
    pub completed_at: DateTime<Utc>,
    /// Control-plane failover time.
    pub control_plane_ms: u64,
    /// Client-observed downtime of the episodes overlapping this failover (summed);
    /// `None` when no load ran or clients saw no failure.
    pub client_downtime_ms: Option<u64>,
    /// A downtime episode of this failover had not ended when the run ended.
    pub downtime_unbounded: bool,
    /// Failed requests during the failover window (per-second buckets overlapping it).
    pub errors_during: u64,
}

/// One client-observed downtime episode.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Downtime {
    pub started_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    /// `None`: still down when the run ended.
    pub duration_ms: Option<u64>,
    pub failed_requests: u64,
}

/// Cost per request from the recorded pod-seconds and pricing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CostFigures {
    /// The pricing profile's name.
    pub pricing: String,
    #[serde(flatten)]
    pub run: RunCost,
}

/// A fault resil injected.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChaosAction {
    pub at: DateTime<Utc>,
    pub action: String,
    pub targets: Vec<String>,
    pub reverted_at: Option<DateTime<Utc>>,
}

/// One explained decision of a controller of resil's, from a timeline `decision` event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    pub at: DateTime<Utc>,
    /// `watch` (failover), `outliers` (ejection) or `autoscale` (predictive scaling).
    pub controller: String,
    /// The rule that fired, in words.
    pub rule: String,
    /// What the controller did (or, observe-only, would have done).
    pub action: String,
    /// The figures the decision was taken on, as the controller recorded them.
    pub inputs: serde_json::Value,
}

/// The verdict of one SLO expression.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SloVerdict {
    /// As written, e.g. `p99<300ms`.
    pub expression: String,
    pub metric: String,
    /// Threshold and actual value in the metric's unit.
    pub threshold: f64,
    pub actual: Option<f64>,
    /// `ms`, `ratio`, `usd`, or `per_s` (a load's `rps` threshold).
    pub unit: String,
    pub passed: bool,
    /// The verdict in words: `p99 212.0ms < 300ms` or why it could not be measured.
    pub message: String,
}

/// The comparison with a baseline run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    pub baseline_run_id: String,
    pub baseline_partial: bool,
    pub deltas: Vec<Delta>,
    /// How many deltas are regressions.
    pub regressions: usize,
}

/// One metric, then and now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Delta {
    pub metric: String,
    pub unit: String,
    pub baseline: Option<f64>,
    pub current: Option<f64>,
    /// current − baseline, when both exist.
    pub delta: Option<f64>,
    /// delta as a percentage of the baseline (when the baseline is not 0).
    pub delta_percent: Option<f64>,
    /// Worse than the baseline beyond the tolerance.
    pub regression: bool,
}

/// Per-second series for the HTML plots (not part of the JSON report).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Series {
    /// One point per load bucket, at the middle of its second since the run started.
    pub buckets: Vec<BucketPoint>,
    /// Step series of ready replicas per colour: (seconds since start, replicas).
    pub replicas: BTreeMap<String, Vec<(f64, f64)>>,
    /// Vertical markers: chaos injections and selector switches.
    pub markers: Vec<Marker>,
    /// Length of the x axis in seconds.
    pub duration_s: f64,
}

/// One second of load.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BucketPoint {
    pub t: f64,
    pub requests: u64,
    pub errors: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

/// A vertical line on every plot.
#[derive(Debug, Clone, PartialEq)]
pub struct Marker {
    pub t: f64,
    pub kind: MarkerKind,
    pub label: String,
}

/// What a marker marks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarkerKind {
    Chaos,
    SelectorSwitch,
}
