//! Chaos plans: what an action will hit and how, decided before anything is touched, so
//! `--dry-run` prints exactly what a real run would do.
//!
//! Pure: target selection (colour, selector, count or percent, minimum age, seeded
//! shuffle) and the parsing of degradation modes are plain functions over plain data. The
//! command layer lists the pods through kube-rs and hands them in as [`Candidate`]s.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

use crate::domain::Color;

/// Errors in what the user asked for.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PlanError {
    /// `--mode` is not one of the known degradations.
    #[error(
        "unknown degradation mode `{0}`: use unready, errors=PCT (e.g. errors=50), \
         latency=DURATION (e.g. latency=200ms) or hang"
    )]
    BadMode(String),
    /// `--percent` outside 1..=100 or `--count 0`.
    #[error("{0}")]
    BadAmount(String),
    /// Neither `--color` nor `--selector` names the pods.
    #[error("say which pods: --color blue|green or --selector LABELS")]
    NoTarget,
}

/// A pod that may be chosen.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub created: Option<DateTime<Utc>>,
    /// Already being deleted: never chosen again.
    pub terminating: bool,
}

/// How many of the matching pods to choose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Amount {
    All,
    Count(u32),
    /// Rounded up, so `--percent 50` of 3 pods is 2 and never 0 of a non-empty set.
    Percent(u32),
}

impl Amount {
    /// From `--count` / `--percent`.
    pub fn from_flags(count: Option<u32>, percent: Option<u32>) -> Result<Amount, PlanError> {
        match (count, percent) {
            (Some(0), _) => Err(PlanError::BadAmount("--count must be at least 1".into())),
            (Some(n), _) => Ok(Amount::Count(n)),
            (None, Some(p)) if p == 0 || p > 100 => Err(PlanError::BadAmount(format!(
                "--percent must be between 1 and 100, not {p}"
            ))),
            (None, Some(p)) => Ok(Amount::Percent(p)),
            (None, None) => Ok(Amount::All),
        }
    }

    fn of(self, matching: usize) -> usize {
        match self {
            Amount::All => matching,
            Amount::Count(n) => matching.min(n as usize),
            Amount::Percent(p) => (matching * p as usize).div_ceil(100),
        }
    }
}

/// Which pods an action targets.
#[derive(Debug, Clone, PartialEq)]
pub struct Selection {
    /// The label selector sent to the API server (`app=web,version=blue`).
    pub selector: String,
    pub amount: Amount,
    pub min_age: Option<Duration>,
}

impl Selection {
    /// From the target flags: a colour, a selector, or both (ANDed).
    pub fn new(
        color: Option<Color>,
        selector: Option<&str>,
        amount: Amount,
        min_age: Option<Duration>,
    ) -> Result<Selection, PlanError> {
        let mut parts = Vec::new();
        if let Some(color) = color {
            parts.push(format!("app=web,version={}", color.as_str()));
        }
        if let Some(selector) = selector.filter(|s| !s.trim().is_empty()) {
            parts.push(selector.trim().to_string());
        }
        if parts.is_empty() {
            return Err(PlanError::NoTarget);
        }
        Ok(Selection {
            selector: parts.join(","),
            amount,
            min_age,
        })
    }

    /// Chooses from `candidates` (already filtered by the selector on the server), with a
    /// seeded shuffle so `--seed` repeats a run exactly. The result is sorted by name.
    pub fn choose(&self, candidates: &[Candidate], now: DateTime<Utc>, seed: u64) -> Vec<String> {
        let mut eligible: Vec<&Candidate> = candidates
            .iter()
            .filter(|c| !c.terminating)
            .filter(|c| match (self.min_age, c.created) {
                (Some(min), Some(created)) => (now - created).to_std().unwrap_or_default() >= min,
                (Some(_), None) => false,
                (None, _) => true,
            })
            .collect();
        // Shuffle a canonical order: the API's list order must not change the choice.
        eligible.sort_by(|a, b| a.name.cmp(&b.name));
        eligible.shuffle(&mut StdRng::seed_from_u64(seed));
        let take = self.amount.of(eligible.len());
        let mut chosen: Vec<String> = eligible
            .into_iter()
            .take(take)
            .map(|c| c.name.clone())
            .collect();
        chosen.sort();
        chosen
    }
}

/// The demo app's fault switches (its `PUT /admin/faults` body).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Faults {
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unready: bool,
    /// Share of requests answered with a 500, 0.0–1.0.
    #[serde(default, skip_serializing_if = "is_zero_f64")]
    pub error_rate: f64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub latency_ms: u64,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub hang: bool,
    #[serde(default, skip_serializing_if = "is_zero_u32")]
    pub cpu_burn_percent: u32,
    /// When the app reverts by itself, even if resil never comes back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<DateTime<Utc>>,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}
fn is_zero_u32(v: &u32) -> bool {
    *v == 0
}
fn is_zero_f64(v: &f64) -> bool {
    *v == 0.0
}

impl Faults {
    /// Parses `--mode`: `unready`, `errors=PCT`, `latency=DURATION`, `hang`.
    pub fn from_mode(mode: &str) -> Result<Faults, PlanError> {
        let bad = || PlanError::BadMode(mode.to_string());
        let (name, value) = match mode.split_once('=') {
            Some((n, v)) => (n.trim(), Some(v.trim())),
            None => (mode.trim(), None),
        };
        match (name, value) {
            ("unready", None) => Ok(Faults {
                unready: true,
                ..Faults::default()
            }),
            ("hang", None) => Ok(Faults {
                hang: true,
                ..Faults::default()
            }),
            ("errors", Some(v)) => {
                let pct: f64 = v.trim_end_matches('%').parse().map_err(|_| bad())?;
                if !(pct > 0.0 && pct <= 100.0) {
                    return Err(bad());
                }
                Ok(Faults {
                    error_rate: pct / 100.0,
                    ..Faults::default()
                })
            }
            ("latency", Some(v)) => {
                let d = humantime::parse_duration(v).map_err(|_| bad())?;
                if d.is_zero() {
                    return Err(bad());
                }
                Ok(Faults {
                    latency_ms: u64::try_from(d.as_millis()).map_err(|_| bad())?,
                    ..Faults::default()
                })
            }
            _ => Err(bad()),
        }
    }
}

impl fmt::Display for Faults {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if self.unready {
            parts.push("unready".to_string());
        }
        if self.error_rate > 0.0 {
            parts.push(format!("{}% errors", self.error_rate * 100.0));
        }
        if self.latency_ms > 0 {
            parts.push(format!("+{} ms latency", self.latency_ms));
        }
        if self.hang {
            parts.push("hang".to_string());
        }
        if self.cpu_burn_percent > 0 {
            parts.push(format!("burn {}% of a core", self.cpu_burn_percent));
        }
        f.write_str(&parts.join(", "))
    }
}

/// The lab's Service proxy fault, carried as an annotation on the Service (a real cluster
/// ignores it; the lab's proxy honours it).
#[derive(Debug, Clone, PartialEq)]
pub struct ProxyFault {
    pub delay: Duration,
    pub jitter: Option<Duration>,
    /// Percentage of connections dropped, 0–100.
    pub loss: f64,
}

/// The annotation the lab's Service proxy reads.
pub const PROXY_FAULT_ANNOTATION: &str = "resil.dev/proxy-fault";

impl ProxyFault {
    /// Checks the numbers.
    pub fn new(delay: Duration, jitter: Option<Duration>, loss: f64) -> Result<Self, PlanError> {
        if !(0.0..=100.0).contains(&loss) {
            return Err(PlanError::BadAmount(format!(
                "--loss is a percentage between 0 and 100, not {loss}"
            )));
        }
        Ok(ProxyFault {
            delay,
            jitter,
            loss,
        })
    }

    /// The annotation value: `delay=200ms,jitter=50ms,loss=5`.
    pub fn annotation(&self) -> String {
        let mut value = format!("delay={}ms", self.delay.as_millis());
        if let Some(j) = self.jitter {
            value.push_str(&format!(",jitter={}ms", j.as_millis()));
        }
        if self.loss > 0.0 {
            value.push_str(&format!(",loss={}", self.loss));
        }
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pods(n: usize) -> Vec<Candidate> {
        (0..n)
            .map(|i| Candidate {
                name: format!("web-blue-{i}"),
                labels: BTreeMap::new(),
                created: DateTime::from_timestamp(1_800_000_000 + i as i64 * 60, 0),
                terminating: false,
            })
            .collect()
    }

    fn select(amount: Amount, min_age: Option<Duration>) -> Selection {
        Selection::new(Some(Color::Blue), None, amount, min_age).unwrap()
    }

    #[test]
    fn percent_rounds_up_and_count_caps() {
        let now = DateTime::from_timestamp(1_900_000_000, 0).unwrap();
        assert_eq!(
            select(Amount::Percent(50), None)
                .choose(&pods(3), now, 1)
                .len(),
            2
        );
        assert_eq!(
            select(Amount::Percent(1), None)
                .choose(&pods(3), now, 1)
                .len(),
            1
        );
        assert_eq!(
            select(Amount::Count(5), None)
                .choose(&pods(3), now, 1)
                .len(),
            3
        );
        assert_eq!(select(Amount::All, None).choose(&pods(4), now, 1).len(), 4);
    }

    #[test]
    fn the_same_seed_chooses_the_same_pods_whatever_the_list_order() {
        let now = DateTime::from_timestamp(1_900_000_000, 0).unwrap();
        let s = select(Amount::Count(2), None);
        let mut reversed = pods(10);
        reversed.reverse();
        assert_eq!(s.choose(&pods(10), now, 42), s.choose(&reversed, now, 42));
        let differs =
            (0..20).any(|seed| s.choose(&pods(10), now, seed) != s.choose(&pods(10), now, 42));
        assert!(differs, "the seed must matter");
    }

    #[test]
    fn young_and_terminating_pods_are_spared() {
        let mut candidates = pods(3);
        candidates[0].terminating = true;
        // web-blue-2 was created 120 s after web-blue-0; "now" is 100 s after web-blue-1.
        let now = candidates[1].created.unwrap() + chrono::Duration::seconds(100);
        let chosen = select(Amount::All, Some(Duration::from_secs(90))).choose(&candidates, now, 7);
        assert_eq!(chosen, vec!["web-blue-1".to_string()]);
    }

    #[test]
    fn a_target_is_required_and_colour_and_selector_combine() {
        assert_eq!(
            Selection::new(None, None, Amount::All, None),
            Err(PlanError::NoTarget)
        );
        let s = Selection::new(Some(Color::Green), Some("tier=front"), Amount::All, None).unwrap();
        assert_eq!(s.selector, "app=web,version=green,tier=front");
        assert!(Amount::from_flags(None, Some(0)).is_err());
        assert!(Amount::from_flags(Some(0), None).is_err());
    }

    #[test]
    fn degradation_modes_parse_into_the_apps_switches() {
        assert!(Faults::from_mode("unready").unwrap().unready);
        assert!(Faults::from_mode("hang").unwrap().hang);
        assert_eq!(Faults::from_mode("errors=50").unwrap().error_rate, 0.5);
        assert_eq!(Faults::from_mode("errors=5%").unwrap().error_rate, 0.05);
        assert_eq!(Faults::from_mode("latency=200ms").unwrap().latency_ms, 200);
        for bad in [
            "slow",
            "errors=0",
            "errors=150",
            "latency=fast",
            "unready=1",
            "errors",
        ] {
            let err = Faults::from_mode(bad).unwrap_err();
            assert!(err.to_string().contains("errors=PCT"), "{bad}: {err}");
        }
    }

    #[test]
    fn the_faults_body_carries_only_what_is_set() {
        let body = serde_json::to_value(Faults::from_mode("errors=30").unwrap()).unwrap();
        assert_eq!(body, serde_json::json!({"error_rate": 0.3}));
    }

    #[test]
    fn proxy_faults_become_one_annotation() {
        let f = ProxyFault::new(
            Duration::from_millis(200),
            Some(Duration::from_millis(50)),
            5.0,
        )
        .unwrap();
        assert_eq!(f.annotation(), "delay=200ms,jitter=50ms,loss=5");
        assert!(ProxyFault::new(Duration::ZERO, None, 101.0).is_err());
    }
}
