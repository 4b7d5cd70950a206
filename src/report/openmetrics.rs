//! `resil report DIR -o openmetrics`: a finished run as OpenMetrics text, for a
//! pushgateway (`curl --data-binary @- http://PUSHGATEWAY/metrics/job/resil/run/ID`).
//!
//! The series carry the names `--metrics-addr` serves live (`src/metrics/`), so one
//! dashboard reads both: per-colour requests, errors and the latency histogram (from
//! `latency.hdr`, folded into the same classic buckets), errors by kind, downtime,
//! failovers and failbacks with the last durations, faults injected; plus what only a
//! finished run has: `resil_run_info`, its duration and each SLO's verdict. No sample
//! carries a timestamp (a pushgateway refuses them); the push time is the sample time.

use std::io::Write;
use std::sync::atomic::AtomicU64;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Registry, Unit};
use resil_common::exposition::{self, Format};

use super::model::Report;
use crate::metrics::load::{ColorFigures, LoadMetrics, Snapshot};
use crate::results::hdr::{TaggedHistogram, new_histogram};

/// Writes `report` with the per-colour latency of `histograms` (`latency.hdr`).
pub fn render(
    report: &Report,
    histograms: &[TaggedHistogram],
    out: &mut dyn Write,
) -> std::io::Result<()> {
    let mut registry = Registry::default();
    register_run(&mut registry, report);
    if report.load.is_some() {
        let sink = LoadMetrics::register(&mut registry);
        sink.publish(0, load_snapshot(report, histograms));
        for d in &report.downtime {
            if let Some(ms) = d.duration_ms {
                sink.episode_ended(std::time::Duration::from_millis(ms));
            }
        }
    }
    register_failovers(&mut registry, report);
    register_writes(&mut registry, report);
    let text = exposition::encode(&registry, Format::OpenMetrics).map_err(std::io::Error::other)?;
    out.write_all(text.as_bytes())
}

fn register_run(registry: &mut Registry, report: &Report) {
    let run = &report.run;
    let info = Info::new(vec![
        ("run_id", run.run_id.clone()),
        ("command", run.command.clone()),
        ("resil_version", run.resil_version.clone()),
        ("status", format!("{:?}", run.status).to_lowercase()),
    ]);
    registry.register("resil_run", "The run these figures are of", info);
    let started: Gauge<f64, AtomicU64> = Gauge::default();
    started.set(run.started_at.timestamp_millis() as f64 / 1000.0);
    registry.register_with_unit(
        "resil_run_start_time",
        "When the run started (Unix time)",
        Unit::Seconds,
        started,
    );
    let duration: Gauge<f64, AtomicU64> = Gauge::default();
    duration.set(run.duration_s);
    registry.register_with_unit(
        "resil_run_duration",
        "How long the run ran",
        Unit::Seconds,
        duration,
    );
    let verdicts = report
        .slos
        .iter()
        .map(|v| (v.expression.clone(), v.passed))
        .collect();
    registry.register_collector(Box::new(SloVerdicts(verdicts)));
}

/// Each SLO's verdict, in the report's order (a label family would encode them in hash
/// order, and the report is compared byte for byte).
#[derive(Debug)]
struct SloVerdicts(Vec<(String, bool)>);

impl Collector for SloVerdicts {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let mut family = encoder.encode_descriptor(
            "resil_run_slo_passed",
            "1 when the SLO held, 0 when it failed",
            None,
            MetricType::Gauge,
        )?;
        for (slo, passed) in &self.0 {
            let labels = [("slo", slo.as_str())];
            ConstGauge::new(i64::from(*passed)).encode(family.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

/// The run's load as one thread's cumulative snapshot.
fn load_snapshot(report: &Report, histograms: &[TaggedHistogram]) -> Snapshot {
    let mut snapshot = Snapshot::default();
    let Some(load) = &report.load else {
        return snapshot;
    };
    for c in &load.by_color {
        let tag = format!("color={}", c.color);
        let empty = new_histogram();
        let hist = histograms
            .iter()
            .find(|h| h.tag == tag)
            .map_or(&empty, |h| &h.histogram);
        let figures = ColorFigures::new(c.requests, c.errors, hist);
        snapshot.by_color.insert(c.color.clone(), figures);
    }
    for (i, kind) in crate::load::stats::KIND_NAMES.iter().enumerate() {
        snapshot.kinds[i] = load.error_kinds.get(*kind).copied().unwrap_or(0);
    }
    snapshot
}

/// `--write-ratio`'s figures: acknowledged and lost writes (RPO), the window the lost
/// ones span and correctness errors; nothing when the run wrote nothing.
fn register_writes(registry: &mut Registry, report: &Report) {
    let Some(w) = &report.writes else {
        return;
    };
    let count = |n: u64| {
        let c = Counter::<u64>::default();
        c.inc_by(n);
        c
    };
    registry.register(
        "resil_load_writes_acknowledged",
        "Writes the target acknowledged",
        count(w.acknowledged),
    );
    registry.register(
        "resil_load_writes_lost",
        "Acknowledged writes not read back after the run (RPO in writes)",
        count(w.lost),
    );
    registry.register(
        "resil_load_writes_correctness_errors",
        "Writes read back with another value or acknowledged twice",
        count(w.correctness_errors()),
    );
    let window: Gauge<f64, AtomicU64> = Gauge::default();
    window.set(w.rpo_window_ms.unwrap_or(0) as f64 / 1000.0);
    registry.register_with_unit(
        "resil_load_rpo_window",
        "From the oldest lost write's acknowledgement to the newest (RPO in time)",
        Unit::Seconds,
        window,
    );
}

fn register_failovers(registry: &mut Registry, report: &Report) {
    let (failovers, failbacks) = (Counter::<u64>::default(), Counter::<u64>::default());
    let last_failover: Gauge<f64, AtomicU64> = Gauge::default();
    let last_failback: Gauge<f64, AtomicU64> = Gauge::default();
    for f in &report.failovers {
        let seconds = f.control_plane_ms as f64 / 1000.0;
        if f.direction == "failback" {
            failbacks.inc();
            last_failback.set(seconds);
        } else {
            failovers.inc();
            last_failover.set(seconds);
        }
    }
    registry.register("resil_watch_failovers", "Completed failovers", failovers);
    registry.register("resil_watch_failbacks", "Completed failbacks", failbacks);
    registry.register_with_unit(
        "resil_watch_last_failover_duration",
        "How long the last failover took",
        Unit::Seconds,
        last_failover,
    );
    registry.register_with_unit(
        "resil_watch_last_failback_duration",
        "How long the last failback took",
        Unit::Seconds,
        last_failback,
    );
    let injected = Counter::<u64>::default();
    injected.inc_by(report.chaos.len() as u64);
    registry.register(
        "resil_chaos_faults_injected",
        "Faults the run injected",
        injected,
    );
}
