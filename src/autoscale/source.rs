//! Where the autoscaler's demand samples come from: the per-second load buckets a
//! concurrent `resil load --out DIR` appends to a results directory's timeline (requests
//! per second), or the pods' CPU from the metrics API (`metrics.k8s.io/v1beta1`, read
//! through kube-rs as dynamic objects; millicores). Called by the autoscale controller;
//! never prints.

use chrono::{DateTime, Utc};
use kube::api::{Api, ApiResource, DynamicObject, ListParams};

use super::AutoscaleError;
use crate::results::RunDir;
use crate::results::timeline::{Event, EventKind};

/// One demand sample.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    pub at: DateTime<Utc>,
    pub value: f64,
}

/// The source of demand samples.
pub enum Demand {
    /// Load buckets in a results directory's timeline; `seen` is the newest one taken.
    Timeline {
        dir: RunDir,
        seen: Option<DateTime<Utc>>,
    },
    /// The summed CPU of the pods matching `selector`.
    Metrics {
        /// Boxed: an `Api` is much larger than the timeline variant.
        api: Box<Api<DynamicObject>>,
        selector: String,
    },
}

/// Load buckets later than `after`, as requests-per-second samples, oldest first.
pub fn buckets_after(events: &[Event], after: Option<DateTime<Utc>>) -> Vec<Sample> {
    let mut samples: Vec<Sample> = events
        .iter()
        .filter(|e| after.is_none_or(|a| e.ts > a))
        .filter_map(|e| match &e.kind {
            // A bucket covers one second, so its count is its rate.
            EventKind::LoadBucket { requests, .. } => Some(Sample {
                at: e.ts,
                value: *requests as f64,
            }),
            _ => None,
        })
        .collect();
    samples.sort_by_key(|s| s.at);
    samples
}

/// Averages samples into fixed steps before they reach the model. Per-second load buckets
/// are too noisy to extrapolate minutes ahead (a trend fitted to 1 s samples swings by
/// more than the demand itself over a 2-minute horizon); 10 s means keep the forecast of
/// a steady ±10 % load within about ±11 % while a ramp is still picked up within a minute.
#[derive(Debug, Clone)]
pub struct Resampler {
    step_s: f64,
    /// (step index, sum, count) of the step being filled.
    open: Option<(i64, f64, u32)>,
}

impl Resampler {
    /// Steps of `step_s` seconds (at least 1 ms).
    pub fn new(step_s: f64) -> Resampler {
        Resampler {
            step_s: step_s.max(0.001),
            open: None,
        }
    }

    /// Adds the sample `value` at `t` seconds; returns the mean of the previous step (with
    /// that step's start time) once a sample of a later step arrives.
    pub fn push(&mut self, t: f64, value: f64) -> Option<(f64, f64)> {
        let index = (t / self.step_s).floor() as i64;
        match &mut self.open {
            Some((open, sum, count)) if *open == index => {
                *sum += value;
                *count += 1;
                None
            }
            Some((open, _, _)) if index < *open => None,
            Some((open, sum, count)) => {
                let done = (*open as f64 * self.step_s, *sum / f64::from(*count));
                self.open = Some((index, value, 1));
                Some(done)
            }
            None => {
                self.open = Some((index, value, 1));
                None
            }
        }
    }
}

/// Parses a metrics-API CPU figure into millicores: `12345678n`, `250u`, `100m`, `1`.
pub fn parse_cpu_usage(text: &str) -> Option<f64> {
    let t = text.trim();
    let (number, per_milli) = if let Some(n) = t.strip_suffix('n') {
        (n, 1e-6)
    } else if let Some(u) = t.strip_suffix('u') {
        (u, 1e-3)
    } else if let Some(m) = t.strip_suffix('m') {
        (m, 1.0)
    } else {
        (t, 1000.0)
    };
    number
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && *v >= 0.0)
        .map(|v| v * per_milli)
}

/// The summed CPU usage (millicores) of a PodMetrics list.
pub fn total_cpu(items: &[DynamicObject]) -> f64 {
    items
        .iter()
        .flat_map(|pod| {
            pod.data
                .get("containers")
                .and_then(|c| c.as_array())
                .cloned()
                .unwrap_or_default()
        })
        .filter_map(|c| {
            c.pointer("/usage/cpu")
                .and_then(|v| v.as_str())
                .and_then(parse_cpu_usage)
        })
        .sum()
}

impl Demand {
    /// Samples from a results directory.
    pub fn timeline(dir: RunDir) -> Demand {
        Demand::Timeline { dir, seen: None }
    }

    /// Samples from the metrics API for the pods matching `selector`.
    pub fn metrics(client: kube::Client, namespace: &str, selector: String) -> Demand {
        let resource = ApiResource {
            group: "metrics.k8s.io".to_string(),
            version: "v1beta1".to_string(),
            api_version: "metrics.k8s.io/v1beta1".to_string(),
            kind: "PodMetrics".to_string(),
            plural: "pods".to_string(),
        };
        Demand::Metrics {
            api: Box::new(Api::namespaced_with(client, namespace, &resource)),
            selector,
        }
    }

    /// The unit of the samples.
    pub fn unit(&self) -> &'static str {
        match self {
            Demand::Timeline { .. } => "req/s",
            Demand::Metrics { .. } => "mCPU",
        }
    }

    /// New samples since the last poll.
    pub async fn poll(&mut self) -> Result<Vec<Sample>, AutoscaleError> {
        match self {
            Demand::Timeline { dir, seen } => {
                let events = match dir.read_timeline() {
                    Ok(events) => events,
                    // `resil load` has not written its first bucket yet.
                    Err(_) if !dir.file("timeline.jsonl").exists() => Vec::new(),
                    Err(source) => return Err(AutoscaleError::Timeline(source)),
                };
                let samples = buckets_after(&events, *seen);
                if let Some(last) = samples.last() {
                    *seen = Some(last.at);
                }
                Ok(samples)
            }
            Demand::Metrics { api, selector } => {
                let list = api
                    .list(&ListParams::default().labels(selector))
                    .await
                    .map_err(|source| AutoscaleError::Api {
                        what: "reading pod metrics (metrics.k8s.io)".to_string(),
                        source,
                    })?;
                Ok(vec![Sample {
                    at: crate::results::now_ms(),
                    value: total_cpu(&list.items),
                }])
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn bucket(second: i64, requests: u64) -> Event {
        Event {
            ts: DateTime::from_timestamp(1_700_000_000 + second, 0).unwrap(),
            source: "load".to_string(),
            kind: EventKind::test_bucket(second as u64, requests, 0, 0, BTreeMap::new()),
        }
    }

    #[test]
    fn only_load_buckets_newer_than_the_last_seen_become_samples() {
        let note = Event {
            ts: DateTime::from_timestamp(1_700_000_001, 0).unwrap(),
            source: "watch".to_string(),
            kind: EventKind::Note {
                message: "x".to_string(),
            },
        };
        let events = vec![bucket(0, 10), note, bucket(2, 30), bucket(1, 20)];
        let all = buckets_after(&events, None);
        assert_eq!(
            all.iter().map(|s| s.value).collect::<Vec<_>>(),
            [10.0, 20.0, 30.0]
        );
        let newer = buckets_after(&events, Some(all[1].at));
        assert_eq!(newer.len(), 1);
        assert_eq!(newer[0].value, 30.0);
    }

    #[test]
    fn the_resampler_emits_each_step_mean_when_the_next_step_starts() {
        let mut r = Resampler::new(10.0);
        let mut out = Vec::new();
        for t in 0..25 {
            out.extend(r.push(f64::from(t), f64::from(t)));
        }
        // Steps [0,10) and [10,20) are complete; [20,25) is still open.
        assert_eq!(out, [(0.0, 4.5), (10.0, 14.5)]);
        // A late sample of a closed step is dropped, not mixed into the open one.
        assert_eq!(r.push(3.0, 1000.0), None);
        assert_eq!(r.push(30.0, 0.0), Some((20.0, 22.0)));
    }

    /// Worst relative error of a 2-minute forecast of a steady 100 req/s ± 10 % load,
    /// after a minute of warm-up, with samples averaged over `step_s`.
    fn worst_error_on_noise(step_s: f64) -> f64 {
        use crate::autoscale::forecast::{Forecaster, Holt, Smoothing};
        let smoothing = Smoothing {
            step_s,
            ..Smoothing::default()
        };
        let mut model = Holt::new(smoothing).unwrap();
        let mut resampler = Resampler::new(step_s);
        // A fixed linear congruential generator: the same noise every run.
        let mut seed: u64 = 42;
        let mut worst: f64 = 0.0;
        for t in 0..1200 {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let noise = ((seed >> 33) as f64 / (1u64 << 31) as f64) * 20.0 - 10.0;
            if let Some((at, mean)) = resampler.push(f64::from(t), 100.0 + noise) {
                model.observe(at, mean);
                if t > 60 {
                    let f = model.forecast(120.0).unwrap();
                    worst = worst.max((f - 100.0).abs() / 100.0);
                }
            }
        }
        worst
    }

    #[test]
    fn ten_second_steps_keep_a_two_minute_forecast_of_a_noisy_steady_load_steady() {
        let averaged = worst_error_on_noise(10.0);
        assert!(averaged < 0.2, "10 s steps: worst error {averaged}");
        // One-second samples would swing the forecast by more than the load itself.
        let raw = worst_error_on_noise(1.0);
        assert!(raw > 1.0, "1 s steps: worst error {raw}");
    }

    #[test]
    fn metrics_cpu_figures_parse_in_every_unit() {
        assert_eq!(parse_cpu_usage("250000000n"), Some(250.0));
        assert_eq!(parse_cpu_usage("1500u"), Some(1.5));
        assert_eq!(parse_cpu_usage("100m"), Some(100.0));
        assert_eq!(parse_cpu_usage("2"), Some(2000.0));
        assert_eq!(parse_cpu_usage("lots"), None);
    }

    #[test]
    fn total_cpu_sums_every_container_of_every_pod() {
        let pod = |cpu: &[&str]| {
            let mut o = DynamicObject {
                types: None,
                metadata: Default::default(),
                data: serde_json::json!({}),
            };
            o.data = serde_json::json!({
                "containers": cpu.iter().map(|c| serde_json::json!({"name": "web", "usage": {"cpu": c}})).collect::<Vec<_>>()
            });
            o
        };
        let items = [pod(&["100m", "50000000n"]), pod(&["200m"])];
        assert!((total_cpu(&items) - 350.0).abs() < 1e-9);
    }
}
