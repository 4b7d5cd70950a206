//! What a load worker (`resil load-worker`, a pod of `resil load --workers N`) tells its
//! coordinator: one JSON object per stdout line, read back through the pod log API.
//!
//! Stdout through the log API works on any cluster the coordinator can reach: it needs no
//! port, Service, pod proxy or network path from the coordinator to the pod (kind, a
//! remote cluster behind an API server, the lab alike), only `get pods/log`, which the
//! coordinator needs anyway; and the kubelet keeps what was written while the
//! coordinator reconnects. The cost is that everything must be text, so histograms go
//! as base64 of HdrHistogram's V2 encoding: exact, so merging loses nothing.
//!
//! The lines, in order: `hello` (the worker's segment and start), a `second` for every
//! second from 0 (empty ones included: a gap means the worker was not there), `episode`
//! per downtime episode, with `--figures` a `figures` line after each second and one
//! before the end, then `done` with the totals; or `error` when it cannot run.

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine;
use chrono::{DateTime, Utc};
use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Deserializer, Serializer, V2Serializer};
use serde::{Deserialize, Serialize};

use super::collector::Collector;
use super::stats::{Bucket, Episode, ThreadTotals};
use crate::metrics::load::Snapshot;
use crate::results::timeline::Served;

/// The longest line a coordinator reads (a second's histogram is a few KiB).
pub const MAX_LINE: usize = 4 * 1024 * 1024;

/// One line of a worker's output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "resil_worker", rename_all = "snake_case")]
pub enum Line {
    /// The worker runs segment `index` of `count`, starting at `started_at`.
    Hello {
        index: u32,
        count: u32,
        started_at: DateTime<Utc>,
        pod: String,
    },
    /// One second of this worker's load (`latency`: base64 HDR V2, µs).
    Second {
        second: u64,
        requests: u64,
        errors: u64,
        latency: String,
        by_color: BTreeMap<String, Served>,
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        by_pod: BTreeMap<String, Served>,
        /// Per served-by colour, its responses' latency (base64 HDR V2, µs).
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        latency_by_color: BTreeMap<String, String>,
    },
    /// A downtime episode, as offsets (µs) from the start.
    Episode {
        started_us: u64,
        ended_us: Option<u64>,
        failed_requests: u64,
    },
    /// A recovery episode (first failure to the first of `needed` successes in a row), as
    /// offsets (µs) from the start; `ended_us` none: not recovered by the worker's end.
    Recovery {
        started_us: u64,
        ended_us: Option<u64>,
        failed_requests: u64,
        needed: u32,
    },
    /// The worker's cumulative metrics figures (requests, errors and latency buckets per
    /// colour, errors by kind), once a second with `--figures`: the coordinator serves
    /// them on its `--metrics-addr` as this worker's part.
    Figures(Box<Snapshot>),
    /// The worker's totals; its last line.
    Done(Box<Totals>),
    /// The worker could not run (unreachable target, bad arguments).
    Error { message: String },
}

/// A worker's run totals.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Totals {
    pub requests: u64,
    pub successes: u64,
    pub errors: u64,
    pub late_sends: u64,
    pub dropped_sends: u64,
    pub last_sent_us: u64,
    pub kinds: [u64; 6],
    /// Keyed by the code as text: an internally tagged enum cannot read number keys back.
    pub status_codes: BTreeMap<String, u64>,
    pub uncorrected: String,
    pub by_color: BTreeMap<String, (Served, String)>,
    /// Per region a gateway named (absent from a worker that predates it).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub by_region: BTreeMap<String, (Served, String)>,
    pub elapsed_us: u64,
    pub interrupted: bool,
}

/// A histogram as base64 of its V2 encoding.
pub fn encode(h: &Histogram<u64>) -> String {
    let mut buf = Vec::new();
    // Serializing into a Vec cannot fail for resil's histograms (bounded, u64 counts).
    let _ = V2Serializer::new().serialize(h, &mut buf);
    base64::engine::general_purpose::STANDARD.encode(buf)
}

/// The histogram [`encode`] wrote; `Err` says what is wrong with the text.
pub fn decode(text: &str) -> Result<Histogram<u64>, String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|e| format!("histogram: {e}"))?;
    let h: Histogram<u64> = Deserializer::new()
        .deserialize(&mut bytes.as_slice())
        .map_err(|e| format!("histogram: {e:?}"))?;
    // Merged into resil's own histograms: refuse other bounds (and oversized ones).
    let mine = crate::results::hdr::new_histogram();
    if h.high() > mine.high() || h.sigfig() != mine.sigfig() {
        return Err("histogram with other bounds than resil's".into());
    }
    Ok(h)
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

impl Line {
    /// The line of a released second.
    pub fn second(b: &Bucket) -> Line {
        Line::Second {
            second: b.second,
            requests: b.requests,
            errors: b.errors,
            latency: encode(&b.latency),
            by_color: b.by_color.clone(),
            by_pod: b.by_pod.clone(),
            latency_by_color: b
                .latency_by_color
                .iter()
                .map(|(k, h)| (k.clone(), encode(h)))
                .collect(),
        }
    }

    /// The line of a downtime episode.
    pub fn episode(e: &Episode) -> Line {
        Line::Episode {
            started_us: micros(e.started),
            ended_us: e.ended.map(micros),
            failed_requests: e.failed_requests,
        }
    }

    /// The line of a recovery episode.
    pub fn recovery(e: &Episode, needed: u32) -> Line {
        Line::Recovery {
            started_us: micros(e.started),
            ended_us: e.ended.map(micros),
            failed_requests: e.failed_requests,
            needed,
        }
    }

    /// The totals line of a finished worker.
    pub fn done(c: &Collector, elapsed: Duration, interrupted: bool) -> Line {
        Line::Done(Box::new(Totals {
            requests: c.requests,
            successes: c.successes,
            errors: c.errors,
            late_sends: c.late_sends,
            dropped_sends: c.dropped_sends,
            last_sent_us: micros(c.last_sent),
            kinds: c.kinds,
            status_codes: c
                .status_codes
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect(),
            uncorrected: encode(&c.uncorrected),
            by_color: encode_named(&c.by_color),
            by_region: encode_named(&c.by_region),
            elapsed_us: micros(elapsed),
            interrupted,
        }))
    }
}

impl Totals {
    /// As one engine thread's totals, for the coordinator's collector.
    pub fn thread_totals(&self) -> Result<ThreadTotals, String> {
        Ok(ThreadTotals {
            requests: self.requests,
            successes: self.successes,
            errors: self.errors,
            late_sends: self.late_sends,
            dropped_sends: self.dropped_sends,
            last_sent: Duration::from_micros(self.last_sent_us),
            kinds: self.kinds,
            status_codes: self
                .status_codes
                .iter()
                .filter_map(|(k, v)| Some((k.parse().ok()?, *v)))
                .collect(),
            uncorrected: decode(&self.uncorrected)?,
            by_color: decode_named(&self.by_color)?,
            by_region: decode_named(&self.by_region)?,
        })
    }
}

/// Run totals per name, with their histograms encoded.
fn encode_named(
    totals: &BTreeMap<String, (Served, Histogram<u64>)>,
) -> BTreeMap<String, (Served, String)> {
    totals
        .iter()
        .map(|(k, (s, h))| (k.clone(), (*s, encode(h))))
        .collect()
}

fn decode_named(
    totals: &BTreeMap<String, (Served, String)>,
) -> Result<BTreeMap<String, (Served, Histogram<u64>)>, String> {
    totals
        .iter()
        .map(|(k, (s, h))| Ok((k.clone(), (*s, decode(h)?))))
        .collect()
}

/// A `second` line back as a bucket.
pub fn bucket_of(line: &Line) -> Result<Option<Bucket>, String> {
    let Line::Second {
        second,
        requests,
        errors,
        latency,
        by_color,
        by_pod,
        latency_by_color,
    } = line
    else {
        return Ok(None);
    };
    let mut latencies = BTreeMap::new();
    for (k, h) in latency_by_color {
        latencies.insert(k.clone(), decode(h)?);
    }
    Ok(Some(Bucket {
        second: *second,
        requests: *requests,
        errors: *errors,
        latency: decode(latency)?,
        by_color: by_color.clone(),
        by_pod: by_pod.clone(),
        latency_by_color: latencies,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_histogram_survives_the_line_exactly() {
        let mut h = crate::results::hdr::new_histogram();
        for v in [1u64, 250, 999, 1_234_567, 59_000_000] {
            h.record(v).unwrap();
        }
        let back = decode(&encode(&h)).unwrap();
        assert_eq!(back, h);
        assert!(decode("not base64!").is_err());
    }

    #[test]
    fn lines_round_trip_through_json() {
        let line = Line::Episode {
            started_us: 5,
            ended_us: None,
            failed_requests: 3,
        };
        let text = serde_json::to_string(&line).unwrap();
        assert!(text.starts_with("{\"resil_worker\":\"episode\""));
        assert_eq!(serde_json::from_str::<Line>(&text).unwrap(), line);
    }

    #[test]
    fn a_seconds_latency_per_colour_reads_back_as_it_was() {
        let mut bucket = Bucket::empty(4);
        let mut h = crate::results::hdr::new_histogram();
        h.record(1_500).unwrap();
        bucket.latency_by_color.insert("green".into(), h.clone());
        let line = Line::second(&bucket);
        let back: Line = serde_json::from_str(&serde_json::to_string(&line).unwrap()).unwrap();
        let back = bucket_of(&back).unwrap().expect("a second");
        assert_eq!(back.latency_by_color["green"], h);
    }

    #[test]
    fn a_workers_figures_read_back_as_they_were() {
        let mut h = crate::results::hdr::new_histogram();
        h.record_n(1_500, 4).unwrap();
        h.record(70_000).unwrap();
        let figures = crate::metrics::load::ColorFigures::new(6, 1, &h);
        let snapshot = Snapshot {
            by_color: [("green".to_string(), figures)].into(),
            kinds: [0, 1, 0, 0, 0, 2],
        };
        let line = Line::Figures(Box::new(snapshot));
        let text = serde_json::to_string(&line).unwrap();
        assert!(text.starts_with("{\"resil_worker\":\"figures\""), "{text}");
        assert_eq!(serde_json::from_str::<Line>(&text).unwrap(), line);
    }

    #[test]
    fn a_workers_totals_read_back_as_they_were() {
        let mut c = Collector::new(1);
        c.requests = 7;
        c.status_codes.insert(200, 6);
        c.status_codes.insert(503, 1);
        c.by_color.insert(
            "blue".into(),
            (Served::counts(7, 1), crate::results::hdr::new_histogram()),
        );
        let mut h = crate::results::hdr::new_histogram();
        h.record(2_000).unwrap();
        c.by_region
            .insert("region-b".into(), (Served::counts(5, 0), h.clone()));
        let line = Line::done(&c, Duration::from_secs(3), false);
        let back: Line = serde_json::from_str(&serde_json::to_string(&line).unwrap()).unwrap();
        let Line::Done(totals) = back else {
            panic!("not a done line")
        };
        let t = totals.thread_totals().unwrap();
        assert_eq!(t.requests, 7);
        assert_eq!(t.status_codes.get(&503), Some(&1));
        assert_eq!(t.by_color["blue"].0.errors, 1);
        assert_eq!(t.by_region["region-b"], (Served::counts(5, 0), h));
    }
}
