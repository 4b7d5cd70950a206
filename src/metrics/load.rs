//! The load engine's metrics: requests, errors and latency per colour, errors by kind,
//! downtime episodes. Fed from the engine's own aggregation, never per request: each
//! worker thread publishes its cumulative per-colour figures once a second (when it rolls
//! its per-second bucket) and at its end; downtime episodes come from the collector loop.
//! A scrape merges the threads' latest snapshots. Called by `src/load/stats.rs` and
//! `src/load/engine.rs`; with `--workers N`, by `src/load/coordinator.rs`, which publishes
//! each worker pod's figures as one thread. Read by the registry's scrape.
//!
//! The latency histogram is the engine's HDR histogram (µs, coordinated-omission corrected
//! in the open model) folded into [`LATENCY_BUCKETS`], so its `_count` and `_sum` are the
//! run summary's timed responses and their total latency. Counters survive runs: a
//! `resil run` with repeats keeps counting up.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use hdrhistogram::Histogram;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};
use resil_common::exposition::protobuf::NativeHistogram;
use serde::{Deserialize, Serialize};

use crate::load::stats::KIND_NAMES;

/// Upper bounds (seconds) of the latency histogram's classic buckets, `+Inf` implied:
/// from 100 µs (a loopback target) to 10 s (the default request timeout).
pub const LATENCY_BUCKETS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// The native histogram's resolution: 2^3 = 8 buckets per power of two, each about 9 %
/// wide (the resolution Prometheus client libraries default to), so 100 µs to 10 s spans
/// at most 133 buckets.
pub const NATIVE_SCHEMA: i32 = 3;

/// Native zero bucket: latencies at or below it (HDR records whole microseconds, so 0 µs).
const NATIVE_ZERO_THRESHOLD: f64 = 1e-7;

/// The latency family, as a scrape names it.
const LATENCY_FAMILY: &str = "resil_load_request_duration_seconds";

/// Index of the 4xx kind in [`KIND_NAMES`]: counted, but not an error.
const KIND_4XX: &str = "http_4xx";

/// One colour's cumulative figures.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ColorFigures {
    pub requests: u64,
    pub errors: u64,
    /// Timed responses per bucket of [`LATENCY_BUCKETS`], the last slot `+Inf`
    /// (not cumulative).
    pub buckets: [u64; LATENCY_BUCKETS.len() + 1],
    /// Σ latency of the timed responses, in seconds.
    pub sum_seconds: f64,
    /// Timed responses per native histogram bucket at [`NATIVE_SCHEMA`] (index → count,
    /// not cumulative), for a scraper that negotiates native histograms.
    #[serde(default, with = "index_pairs")]
    pub native: BTreeMap<i32, u64>,
    /// Timed responses under a microsecond (the native zero bucket).
    #[serde(default)]
    pub native_zero: u64,
}

impl ColorFigures {
    /// Figures from a colour's request counts and its latency histogram (µs).
    pub fn new(requests: u64, errors: u64, latency_us: &Histogram<u64>) -> ColorFigures {
        let mut figures = ColorFigures {
            requests,
            errors,
            ..ColorFigures::default()
        };
        let mut sum_us = 0f64;
        for v in latency_us.iter_recorded() {
            let n = v.count_since_last_iteration();
            let us = latency_us.median_equivalent(v.value_iterated_to());
            sum_us += us as f64 * n as f64;
            let seconds = v.value_iterated_to() as f64 / 1e6;
            let slot = LATENCY_BUCKETS
                .iter()
                .position(|le| seconds <= *le)
                .unwrap_or(LATENCY_BUCKETS.len());
            figures.buckets[slot] += n;
            if seconds > NATIVE_ZERO_THRESHOLD {
                let index = NativeHistogram::index(seconds, NATIVE_SCHEMA);
                *figures.native.entry(index).or_default() += n;
            } else {
                figures.native_zero += n;
            }
        }
        figures.sum_seconds = sum_us / 1e6;
        figures
    }

    /// Timed responses.
    pub fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }

    fn add(&mut self, other: &ColorFigures) {
        self.requests += other.requests;
        self.errors += other.errors;
        for (a, b) in self.buckets.iter_mut().zip(other.buckets) {
            *a += b;
        }
        self.sum_seconds += other.sum_seconds;
        for (i, n) in &other.native {
            *self.native.entry(*i).or_default() += n;
        }
        self.native_zero += other.native_zero;
    }

    /// The native histogram of these figures.
    pub fn native_histogram(&self) -> NativeHistogram {
        NativeHistogram {
            schema: NATIVE_SCHEMA,
            zero_threshold: NATIVE_ZERO_THRESHOLD,
            zero_count: self.native_zero,
            positive: self.native.clone(),
        }
    }
}

/// Native buckets as `[index, count]` pairs on the wire: a worker's line is an internally
/// tagged enum, which cannot read number keys back.
mod index_pairs {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(m: &BTreeMap<i32, u64>, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(m.iter())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<i32, u64>, D::Error> {
        Ok(Vec::<(i32, u64)>::deserialize(d)?.into_iter().collect())
    }
}

/// One worker thread's cumulative figures (or, merged, the process's; or a worker pod's,
/// sent to its coordinator as a `figures` line of `src/load/wire.rs`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub by_color: BTreeMap<String, ColorFigures>,
    /// Counts by [`KIND_NAMES`].
    pub kinds: [u64; 6],
}

impl Snapshot {
    fn add(&mut self, other: &Snapshot) {
        for (color, f) in &other.by_color {
            self.by_color.entry(color.clone()).or_default().add(f);
        }
        for (a, b) in self.kinds.iter_mut().zip(other.kinds) {
            *a += b;
        }
    }
}

#[derive(Debug, Default)]
struct Published {
    /// Runs that ended before the current one.
    earlier: Snapshot,
    /// The current run, per thread: each thread's latest cumulative snapshot.
    threads: BTreeMap<usize, Snapshot>,
}

/// The load engine's sink; hand it to a `LoadPlan` (`plan.metrics`).
#[derive(Debug, Default)]
pub struct LoadMetrics {
    published: Mutex<Published>,
    episodes: Counter,
    downtime: Counter<f64, std::sync::atomic::AtomicU64>,
    last_episode: Gauge<f64, std::sync::atomic::AtomicU64>,
}

impl LoadMetrics {
    /// A sink registered in `registry`.
    pub fn register(registry: &mut Registry) -> Arc<LoadMetrics> {
        let metrics = Arc::new(LoadMetrics::default());
        registry.register(
            "resil_load_downtime_episodes",
            "Client-observed downtime episodes that ended (first error to first success)",
            metrics.episodes.clone(),
        );
        registry.register_with_unit(
            "resil_load_downtime",
            "Summed length of the ended downtime episodes",
            Unit::Seconds,
            metrics.downtime.clone(),
        );
        registry.register_with_unit(
            "resil_load_last_downtime_episode",
            "Length of the last ended downtime episode",
            Unit::Seconds,
            metrics.last_episode.clone(),
        );
        registry.register_collector(Box::new(LoadCollector(metrics.clone())));
        metrics
    }

    /// A run starts: the previous run's thread figures become history.
    pub fn begin_run(&self) {
        let mut p = self.lock();
        let threads = std::mem::take(&mut p.threads);
        for snapshot in threads.values() {
            p.earlier.add(snapshot);
        }
    }

    /// A thread's cumulative figures so far (replacing its previous snapshot).
    pub fn publish(&self, thread: usize, snapshot: Snapshot) {
        self.lock().threads.insert(thread, snapshot);
    }

    /// A downtime episode ended after `length`.
    pub fn episode_ended(&self, length: std::time::Duration) {
        self.episodes.inc();
        self.downtime.inc_by(length.as_secs_f64());
        self.last_episode.set(length.as_secs_f64());
    }

    /// Everything published, merged across runs and threads.
    pub fn merged(&self) -> Snapshot {
        let p = self.lock();
        let mut out = p.earlier.clone();
        for snapshot in p.threads.values() {
            out.add(snapshot);
        }
        out
    }

    /// The native histogram of `family` with `labels`, when it is the latency histogram of
    /// a colour that has figures (the protobuf scrape's source of native buckets).
    pub fn native(&self, family: &str, labels: &[(String, String)]) -> Option<NativeHistogram> {
        if family != LATENCY_FAMILY {
            return None;
        }
        let color = labels.iter().find(|(k, _)| k == "color")?;
        let merged = self.merged();
        Some(merged.by_color.get(&color.1)?.native_histogram())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Published> {
        // A panicking publisher leaves whole snapshots behind: still worth serving.
        self.published.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A load plan's optional sink. Two plans that differ only in where their figures go are
/// the same run, so it compares equal to any other.
#[derive(Debug, Clone, Default)]
pub struct LoadSink(Option<Arc<LoadMetrics>>);

impl LoadSink {
    /// A sink publishing into `metrics`.
    pub fn to(metrics: Arc<LoadMetrics>) -> LoadSink {
        LoadSink(Some(metrics))
    }

    /// The metrics, when there are any.
    pub fn get(&self) -> Option<Arc<LoadMetrics>> {
        self.0.clone()
    }
}

impl PartialEq for LoadSink {
    fn eq(&self, _: &LoadSink) -> bool {
        true
    }
}

/// Encodes the merged snapshot at each scrape.
#[derive(Debug)]
struct LoadCollector(Arc<LoadMetrics>);

impl Collector for LoadCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let snap = self.0.merged();
        encode_per_color(
            &mut encoder,
            "resil_load_requests",
            "Requests sent, by the colour that answered (unknown: no answer)",
            &snap,
            |f| f.requests,
        )?;
        encode_per_color(
            &mut encoder,
            "resil_load_request_errors",
            "Requests that failed (transport, timeout, 5xx), by colour",
            &snap,
            |f| f.errors,
        )?;
        encode_kinds(&mut encoder, &snap)?;
        let unit = Unit::Seconds;
        let mut family = encoder.encode_descriptor(
            LATENCY_FAMILY.trim_end_matches("_seconds"),
            "Latency of answered requests (open model: from the intended send time)",
            Some(&unit),
            MetricType::Histogram,
        )?;
        for (color, f) in &snap.by_color {
            let labels = [("color", color.as_str())];
            let mut m = family.encode_family(&labels)?;
            let buckets: Vec<(f64, u64)> = LATENCY_BUCKETS
                .iter()
                .copied()
                .chain([f64::INFINITY])
                .zip(f.buckets)
                .collect();
            m.encode_histogram::<NoLabelSet>(f.sum_seconds, f.count(), &buckets, None)?;
        }
        Ok(())
    }
}

fn encode_per_color(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    snap: &Snapshot,
    value: impl Fn(&ColorFigures) -> u64,
) -> Result<(), std::fmt::Error> {
    let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (color, f) in &snap.by_color {
        let labels = [("color", color.as_str())];
        ConstCounter::new(value(f)).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

fn encode_kinds(encoder: &mut DescriptorEncoder, snap: &Snapshot) -> Result<(), std::fmt::Error> {
    let mut family = encoder.encode_descriptor(
        "resil_load_errors",
        "Failed requests by kind (connect, reset, timeout, http_5xx, other)",
        None,
        MetricType::Counter,
    )?;
    for (kind, n) in KIND_NAMES.iter().zip(snap.kinds) {
        if *kind != KIND_4XX {
            ConstCounter::new(n).encode(family.encode_family(&[("kind", *kind)])?)?;
        }
    }
    let position = KIND_NAMES.iter().position(|k| *k == KIND_4XX);
    let n = position.map_or(0, |i| snap.kinds[i]);
    let family = encoder.encode_descriptor(
        "resil_load_http_4xx_responses",
        "4xx answers: counted, but not errors (the service answered)",
        None,
        MetricType::Counter,
    )?;
    ConstCounter::new(n).encode(family)
}

#[cfg(test)]
mod tests {
    use resil_common::exposition::Format;

    use super::*;
    use crate::metrics::Metrics;
    use crate::results::hdr::new_histogram;

    #[test]
    fn hdr_latency_folds_into_classic_buckets_with_its_count_and_sum() {
        let mut h = new_histogram();
        h.record_n(80, 3).unwrap(); // 80 µs: first bucket
        h.record(1_000).unwrap(); // exactly 1 ms: le="0.001"
        h.record(30_000_000).unwrap(); // 30 s: +Inf
        let f = ColorFigures::new(6, 1, &h);
        assert_eq!(f.count(), 5);
        assert_eq!(f.buckets[0], 3);
        assert_eq!(f.buckets[3], 1);
        assert_eq!(f.buckets[LATENCY_BUCKETS.len()], 1);
        assert!((f.sum_seconds - 30.00124).abs() < 0.05, "{}", f.sum_seconds);
    }

    #[test]
    fn hdr_latency_folds_into_native_buckets_of_the_same_count() {
        let mut h = new_histogram();
        h.record_n(1_000, 4).unwrap(); // 1 ms
        h.record(1_100).unwrap(); // 1.1 ms: the next bucket up at schema 3
        h.record(0).unwrap();
        let f = ColorFigures::new(6, 0, &h);
        let native = f.native_histogram();
        assert_eq!(native.zero_count, 1);
        let total: u64 = native.positive.values().sum();
        assert_eq!(total + native.zero_count, f.count());
        let one_ms = NativeHistogram::index(0.001, NATIVE_SCHEMA);
        assert_eq!(native.positive.get(&one_ms), Some(&4));
        assert_eq!(native.positive.get(&(one_ms + 1)), Some(&1));
        // The bucket holds 1 ms: (2^((i-1)/8), 2^(i/8)].
        let upper = 2f64.powf(f64::from(one_ms) / 8.0);
        let lower = 2f64.powf(f64::from(one_ms - 1) / 8.0);
        assert!(lower < 0.001 && 0.001 <= upper, "{lower} {upper}");
    }

    #[test]
    fn scrapes_merge_threads_and_keep_counting_across_runs() {
        let mut metrics = Metrics::new();
        let load = LoadMetrics::register(metrics.registry());
        let mut h = new_histogram();
        h.record(2_000).unwrap();
        let snap = |n| Snapshot {
            by_color: [("blue".to_string(), ColorFigures::new(n, 0, &h))].into(),
            kinds: [0, 0, 1, 0, 2, 0],
        };
        load.publish(0, snap(4));
        load.publish(1, snap(5));
        load.publish(1, snap(6)); // replaces thread 1's snapshot
        load.begin_run();
        load.publish(0, snap(1));
        load.episode_ended(std::time::Duration::from_millis(1500));
        let text = metrics.encode(Format::Text);
        for line in [
            "resil_load_requests_total{color=\"blue\"} 11\n",
            "resil_load_errors_total{kind=\"timeout\"} 3\n",
            "resil_load_http_4xx_responses_total 6\n",
            "resil_load_request_duration_seconds_bucket{color=\"blue\",le=\"0.001\"} 0\n",
            "resil_load_request_duration_seconds_bucket{color=\"blue\",le=\"0.0025\"} 3\n",
            "resil_load_request_duration_seconds_count{color=\"blue\"} 3\n",
            "resil_load_downtime_episodes_total 1\n",
            "resil_load_downtime_seconds_total 1.5\n",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
        assert!(!text.contains("kind=\"http_4xx\""), "{text}");
        let om = metrics.encode(Format::OpenMetrics);
        assert!(
            om.contains("# UNIT resil_load_request_duration_seconds seconds\n"),
            "{om}"
        );
    }
}
