//! Outlier ejection: finds the pod that is *partly* broken — answering, so its readiness
//! probe passes, but with far more errors or far slower than its siblings — and says which
//! pods to take out of rotation and when to let them back.
//!
//! The statistic is the robust (modified) z-score of Iglewicz and Hoaglin, one-sided (only
//! worse than the siblings counts), computed per colour over one window of per-pod
//! figures:
//!
//! ```text
//! z = (x − median) / max(MAD / 0.6745, min_scale)
//! ```
//!
//! `MAD` is the median absolute deviation from the median; dividing it by 0.6745 (the
//! 75th percentile of the standard normal distribution) makes it estimate the standard
//! deviation for normally distributed data, while one wild pod cannot inflate it the way
//! it inflates a standard deviation. A pod is an outlier when `z > threshold` (3.5, the
//! customary cut-off). `min_scale` (1 percentage point of error rate, 5 ms of latency by
//! default) is the smallest difference worth acting on: without it, siblings that all
//! have exactly zero errors (MAD 0) would make any single error infinitely anomalous.
//!
//! Guards: a pod needs `min_requests` in the window to be judged; a colour needs at least
//! 3 judged pods (with 2 there is no majority to compare against); at most `max_ejected`
//! pods of a colour are out at once and never all of them. An ejected pod is re-admitted
//! after `base_ejection × times ejected` (capped at `max_ejection`), so a pod that keeps
//! failing stays out longer each time.
//!
//! Pure and clock-injected: the watch controller feeds it windows and carries out the
//! verdicts (mark unready through the demo app's admin switch, or delete the pod).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::results::timeline::Served;

/// The 75th percentile of the standard normal distribution: MAD / 0.6745 estimates σ.
pub const MAD_TO_SIGMA: f64 = 0.6745;

/// One pod's figures over the window.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PodWindow {
    pub pod: String,
    /// Its colour; pods are compared with siblings of the same colour only.
    pub color: Option<String>,
    pub requests: u64,
    pub errors: u64,
    /// Mean latency in µs over the window, when the source times replies per pod (the
    /// load engine does: send to reply).
    pub latency_us: Option<u64>,
}

impl PodWindow {
    /// Errors per request (0 with no request).
    pub fn error_rate(&self) -> f64 {
        if self.requests == 0 {
            0.0
        } else {
            self.errors as f64 / self.requests as f64
        }
    }
}

/// Sums per-pod counts (e.g. the `by_pod` maps of a window of `LoadBucket` events); a
/// pod's latency is its mean over the window when the buckets timed its replies.
pub fn tally<'a>(
    buckets: impl IntoIterator<Item = &'a BTreeMap<String, Served>>,
    color_of: impl Fn(&str) -> Option<String>,
) -> Vec<PodWindow> {
    let mut pods: BTreeMap<String, PodWindow> = BTreeMap::new();
    // (responses timed, Σ latency µs) per pod: the window's mean latency.
    let mut timing: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for bucket in buckets {
        for (pod, served) in bucket {
            let entry = pods.entry(pod.clone()).or_insert_with(|| PodWindow {
                pod: pod.clone(),
                color: color_of(pod),
                ..PodWindow::default()
            });
            entry.requests += served.requests;
            entry.errors += served.errors;
            let timed = timing.entry(pod.clone()).or_default();
            timed.0 += served.timed;
            timed.1 = timed.1.saturating_add(served.latency_sum_us);
        }
    }
    for (pod, (timed, sum)) in timing {
        if let (Some(entry), true) = (pods.get_mut(&pod), timed > 0) {
            entry.latency_us = Some(sum / timed);
        }
    }
    pods.into_values().collect()
}

/// Detection and ejection settings.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Settings {
    /// Robust z-score above which a pod is an outlier (3.5).
    pub threshold: f64,
    /// Requests a pod needs in the window to be judged.
    pub min_requests: u64,
    /// Smallest error-rate difference worth acting on (fraction; 0.01 = 1 point).
    pub min_error_scale: f64,
    /// Smallest latency difference worth acting on, in µs.
    pub min_latency_scale_us: f64,
    /// Pods of one colour out of rotation at once, at most (never all of them).
    pub max_ejected: usize,
    /// First ejection lasts this long; the n-th lasts n times as long.
    pub base_ejection: Duration,
    /// Cap on one ejection's length.
    pub max_ejection: Duration,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            threshold: 3.5,
            min_requests: 20,
            min_error_scale: 0.01,
            min_latency_scale_us: 5_000.0,
            max_ejected: 1,
            base_ejection: Duration::from_secs(30),
            max_ejection: Duration::from_secs(300),
        }
    }
}

/// Which figure made a pod an outlier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Signal {
    ErrorRate,
    Latency,
}

/// What to do with a pod.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    /// Take it out of rotation.
    Eject {
        pod: String,
        signal: Signal,
        value: f64,
        median: f64,
        z: f64,
        /// Until when it stays out (seconds from now).
        for_s: u64,
    },
    /// An outlier left in rotation because the cap is reached.
    Capped { pod: String, signal: Signal, z: f64 },
    /// Its ejection is over: back into rotation.
    Readmit { pod: String },
}

#[derive(Debug, Clone)]
struct Ejection {
    color: Option<String>,
    until: Instant,
    times: u32,
}

/// The ejector's memory: who is out, until when, and how often each pod was ejected.
#[derive(Debug, Clone)]
pub struct Ejector {
    settings: Settings,
    out: BTreeMap<String, Ejection>,
    times: BTreeMap<String, u32>,
}

/// The median of a non-empty, sorted slice.
fn median(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

fn sorted(mut values: Vec<f64>) -> Vec<f64> {
    values.sort_by(f64::total_cmp);
    values
}

/// One-sided robust z-scores of `values` (same order), with their median.
pub fn robust_z(values: &[f64], min_scale: f64) -> (Vec<f64>, f64) {
    if values.is_empty() {
        return (Vec::new(), 0.0);
    }
    let m = median(&sorted(values.to_vec()));
    let mad = median(&sorted(values.iter().map(|v| (v - m).abs()).collect()));
    let scale = (mad / MAD_TO_SIGMA).max(min_scale).max(f64::MIN_POSITIVE);
    (values.iter().map(|v| (v - m) / scale).collect(), m)
}

impl Ejector {
    /// An ejector with nobody out.
    pub fn new(settings: Settings) -> Ejector {
        Ejector {
            settings,
            out: BTreeMap::new(),
            times: BTreeMap::new(),
        }
    }

    /// Pods out of rotation now.
    pub fn ejected(&self) -> impl Iterator<Item = &str> {
        self.out.keys().map(String::as_str)
    }

    /// Judges one window at `now`: re-admissions first (their time is up), then ejections,
    /// worst first, within the cap.
    pub fn evaluate(&mut self, now: Instant, window: &[PodWindow]) -> Vec<Verdict> {
        let mut verdicts = Vec::new();
        let due: Vec<String> = self
            .out
            .iter()
            .filter(|(_, e)| e.until <= now)
            .map(|(pod, _)| pod.clone())
            .collect();
        for pod in due {
            self.out.remove(&pod);
            verdicts.push(Verdict::Readmit { pod });
        }

        let mut by_color: BTreeMap<Option<String>, Vec<&PodWindow>> = BTreeMap::new();
        for pod in window {
            by_color.entry(pod.color.clone()).or_default().push(pod);
        }
        for (color, pods) in by_color {
            let judged: Vec<&PodWindow> = pods
                .into_iter()
                .filter(|p| !self.out.contains_key(&p.pod))
                .filter(|p| p.requests >= self.settings.min_requests)
                .collect();
            let mut outliers = self.outliers(&judged);
            // Worst first, so the cap keeps the pods that hurt most.
            outliers.sort_by(|a, b| b.3.total_cmp(&a.3));
            let already_out = self.out.values().filter(|e| e.color == color).count();
            let members = judged.len() + already_out;
            let cap = self.settings.max_ejected.min(members.saturating_sub(1));
            let mut out_now = already_out;
            for (pod, signal, value, z, m) in outliers {
                if self.out.contains_key(&pod) {
                    continue;
                }
                if out_now >= cap {
                    verdicts.push(Verdict::Capped { pod, signal, z });
                    continue;
                }
                let times = self.times.entry(pod.clone()).or_insert(0);
                *times += 1;
                let length = self
                    .settings
                    .base_ejection
                    .saturating_mul(*times)
                    .min(self.settings.max_ejection);
                self.out.insert(
                    pod.clone(),
                    Ejection {
                        color: color.clone(),
                        until: now + length,
                        times: *times,
                    },
                );
                out_now += 1;
                verdicts.push(Verdict::Eject {
                    pod,
                    signal,
                    value,
                    median: m,
                    z,
                    for_s: length.as_secs(),
                });
            }
        }
        verdicts
    }

    /// How often `pod` has been ejected.
    pub fn times_ejected(&self, pod: &str) -> u32 {
        self.out
            .get(pod)
            .map(|e| e.times)
            .or_else(|| self.times.get(pod).copied())
            .unwrap_or(0)
    }

    /// Outliers among `judged`: (pod, signal, value, z, median), the stronger signal per pod.
    fn outliers(&self, judged: &[&PodWindow]) -> Vec<(String, Signal, f64, f64, f64)> {
        if judged.len() < 3 {
            return Vec::new();
        }
        let mut found: BTreeMap<String, (String, Signal, f64, f64, f64)> = BTreeMap::new();
        let rates: Vec<f64> = judged.iter().map(|p| p.error_rate()).collect();
        let (zs, m) = robust_z(&rates, self.settings.min_error_scale);
        for ((pod, z), value) in judged.iter().zip(zs).zip(&rates) {
            if z > self.settings.threshold {
                found.insert(
                    pod.pod.clone(),
                    (pod.pod.clone(), Signal::ErrorRate, *value, z, m),
                );
            }
        }
        let timed: Vec<(&PodWindow, f64)> = judged
            .iter()
            .filter_map(|p| p.latency_us.map(|l| (*p, l as f64)))
            .collect();
        if timed.len() >= 3 {
            let values: Vec<f64> = timed.iter().map(|(_, l)| *l).collect();
            let (zs, m) = robust_z(&values, self.settings.min_latency_scale_us);
            for ((pod, value), z) in timed.iter().zip(zs) {
                let stronger = found.get(&pod.pod).is_none_or(|f| z > f.3);
                if z > self.settings.threshold && stronger {
                    found.insert(
                        pod.pod.clone(),
                        (pod.pod.clone(), Signal::Latency, *value, z, m),
                    );
                }
            }
        }
        found.into_values().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, color: &str, requests: u64, errors: u64) -> PodWindow {
        PodWindow {
            pod: name.to_string(),
            color: Some(color.to_string()),
            requests,
            errors,
            latency_us: None,
        }
    }

    fn ejected(verdicts: &[Verdict]) -> Vec<&str> {
        verdicts
            .iter()
            .filter_map(|v| match v {
                Verdict::Eject { pod, .. } => Some(pod.as_str()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn the_robust_z_score_matches_a_hand_computed_case() {
        // median 3, deviations 2,1,0,1,7 → MAD 1; σ ≈ 1/0.6745; z(10) = 7 × 0.6745.
        let (z, m) = robust_z(&[1.0, 2.0, 3.0, 4.0, 10.0], 0.0);
        assert_eq!(m, 3.0);
        assert!((z[4] - 7.0 * 0.6745).abs() < 1e-9, "{}", z[4]);
        assert!(z[0] < 0.0);
    }

    #[test]
    fn a_pod_with_30_percent_errors_among_healthy_siblings_is_ejected() {
        let window = [
            pod("blue-a", "blue", 100, 0),
            pod("blue-b", "blue", 100, 1),
            pod("blue-c", "blue", 100, 30),
        ];
        let mut ejector = Ejector::new(Settings::default());
        let verdicts = ejector.evaluate(Instant::now(), &window);
        assert_eq!(ejected(&verdicts), ["blue-c"]);
        match &verdicts[0] {
            Verdict::Eject {
                signal, value, z, ..
            } => {
                assert_eq!(*signal, Signal::ErrorRate);
                assert!((value - 0.3).abs() < 1e-12);
                assert!(*z > 3.5);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn small_differences_and_evenly_bad_pods_are_left_alone() {
        let mut ejector = Ejector::new(Settings::default());
        // Half a point more errors is under the 1-point minimum scale.
        let slight = [
            pod("a", "blue", 1000, 0),
            pod("b", "blue", 1000, 0),
            pod("c", "blue", 1000, 5),
        ];
        assert!(ejector.evaluate(Instant::now(), &slight).is_empty());
        // Every pod failing alike is an outage, not an outlier.
        let all_bad = [
            pod("a", "blue", 100, 30),
            pod("b", "blue", 100, 31),
            pod("c", "blue", 100, 29),
        ];
        assert!(ejector.evaluate(Instant::now(), &all_bad).is_empty());
    }

    #[test]
    fn pods_with_too_few_requests_or_too_few_siblings_are_not_judged() {
        let mut ejector = Ejector::new(Settings::default());
        let few_requests = [
            pod("a", "blue", 100, 0),
            pod("b", "blue", 100, 0),
            pod("c", "blue", 10, 5),
        ];
        assert!(ejector.evaluate(Instant::now(), &few_requests).is_empty());
        let two = [pod("a", "blue", 100, 0), pod("b", "blue", 100, 50)];
        assert!(ejector.evaluate(Instant::now(), &two).is_empty());
    }

    #[test]
    fn siblings_are_compared_within_their_colour_only() {
        let mut ejector = Ejector::new(Settings::default());
        // Green is uniformly worse than blue, but no green pod stands out among green.
        let window = [
            pod("blue-a", "blue", 100, 0),
            pod("blue-b", "blue", 100, 0),
            pod("blue-c", "blue", 100, 0),
            pod("green-a", "green", 100, 20),
            pod("green-b", "green", 100, 21),
            pod("green-c", "green", 100, 20),
        ];
        assert!(ejector.evaluate(Instant::now(), &window).is_empty());
    }

    #[test]
    fn the_cap_keeps_the_worst_out_and_never_ejects_a_whole_colour() {
        let settings = Settings {
            max_ejected: 5,
            ..Settings::default()
        };
        let mut ejector = Ejector::new(settings);
        let window = [
            pod("a", "blue", 100, 0),
            pod("b", "blue", 100, 0),
            pod("c", "blue", 100, 0),
            pod("d", "blue", 100, 40),
            pod("e", "blue", 100, 60),
        ];
        let verdicts = ejector.evaluate(Instant::now(), &window);
        assert_eq!(ejected(&verdicts), ["e", "d"]);

        let mut one = Ejector::new(Settings::default());
        let verdicts = one.evaluate(Instant::now(), &window);
        assert_eq!(ejected(&verdicts), ["e"]);
        assert!(matches!(&verdicts[1], Verdict::Capped { pod, .. } if pod == "d"));

        // With one already out, the next outlier waits while the first is out.
        let without_e = &window[..4];
        let later = one.evaluate(Instant::now(), without_e);
        assert!(
            matches!(&later[..], [Verdict::Capped { pod, .. }] if pod == "d"),
            "{later:?}"
        );
    }

    #[test]
    fn a_colour_is_never_ejected_whole() {
        // Every pod but one judged bad by a zero threshold: one must stay in rotation.
        let mut ejector = Ejector::new(Settings {
            threshold: -1.0,
            max_ejected: 10,
            ..Settings::default()
        });
        let window = [
            pod("a", "blue", 100, 10),
            pod("b", "blue", 100, 10),
            pod("c", "blue", 100, 10),
        ];
        assert_eq!(ejected(&ejector.evaluate(Instant::now(), &window)).len(), 2);
    }

    #[test]
    fn an_ejected_pod_is_readmitted_after_its_time_and_stays_out_longer_next_time() {
        let mut ejector = Ejector::new(Settings::default());
        let t0 = Instant::now();
        let bad = [
            pod("a", "blue", 100, 0),
            pod("b", "blue", 100, 0),
            pod("c", "blue", 100, 30),
        ];
        assert_eq!(ejected(&ejector.evaluate(t0, &bad)), ["c"]);
        // While out it gets no traffic, so it is absent from the window.
        let healthy = &bad[..2];
        assert!(
            ejector
                .evaluate(t0 + Duration::from_secs(29), healthy)
                .is_empty()
        );
        let back = ejector.evaluate(t0 + Duration::from_secs(30), healthy);
        assert_eq!(back, [Verdict::Readmit { pod: "c".into() }]);
        // Still bad: out again, now for 60 s.
        let again = ejector.evaluate(t0 + Duration::from_secs(35), &bad);
        assert!(matches!(&again[0], Verdict::Eject { pod, for_s: 60, .. } if pod == "c"));
        assert_eq!(ejector.times_ejected("c"), 2);
        assert_eq!(ejector.ejected().collect::<Vec<_>>(), ["c"]);
    }

    #[test]
    fn a_slow_pod_is_ejected_on_latency() {
        let mut ejector = Ejector::new(Settings::default());
        let mut window: Vec<PodWindow> = ["a", "b", "c", "d"]
            .iter()
            .map(|n| pod(n, "blue", 100, 0))
            .collect();
        for (p, l) in window.iter_mut().zip([20_000, 22_000, 21_000, 400_000]) {
            p.latency_us = Some(l);
        }
        let verdicts = ejector.evaluate(Instant::now(), &window);
        assert!(
            matches!(&verdicts[..], [Verdict::Eject { pod, signal: Signal::Latency, .. }] if pod == "d"),
            "{verdicts:?}"
        );
    }

    #[test]
    fn tally_sums_per_pod_counts_over_the_window() {
        let b1 = BTreeMap::from([(
            "web-blue-1".to_string(),
            Served {
                requests: 10,
                errors: 1,
                timed: 10,
                latency_sum_us: 100_000,
            },
        )]);
        let b2 = BTreeMap::from([(
            "web-blue-1".to_string(),
            Served {
                requests: 5,
                errors: 2,
                timed: 5,
                latency_sum_us: 200_000,
            },
        )]);
        let pods = tally([&b1, &b2], |p| p.split('-').nth(1).map(str::to_string));
        assert_eq!(pods.len(), 1);
        assert_eq!((pods[0].requests, pods[0].errors), (15, 3));
        assert_eq!(pods[0].color.as_deref(), Some("blue"));
        assert!((pods[0].error_rate() - 0.2).abs() < 1e-12);
        assert_eq!(pods[0].latency_us, Some(20_000), "300 ms over 15 replies");
    }
}
