//! The demo app's fault switches: the admin body ([`FaultSpec`]), its validated form
//! ([`Faults`]) and the one owner of the faults in force ([`FaultSwitch`]), which also
//! reverts them at their deadline and drives the CPU burner. Routes read the switch on
//! every request, so reading is a lock-free-ish copy of a small `Copy` value.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::burn::{CpuBurner, CpuQuota};

/// Longest injected latency or jitter (10 minutes): beyond that a typo, not a test.
const MAX_DELAY_MS: u64 = 600_000;

/// The body of `PUT /admin/faults`: what a chaos command asks for. Missing fields are off.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultSpec {
    /// `/readyz` answers 503.
    #[serde(default)]
    pub unready: bool,
    /// Fraction (0.0–1.0) of traffic requests answered with 500.
    #[serde(default)]
    pub error_rate: f64,
    /// Fixed delay added to traffic requests.
    #[serde(default)]
    pub latency_ms: u64,
    /// Extra uniform random delay `0..=jitter_ms`.
    #[serde(default)]
    pub jitter_ms: u64,
    /// Accept requests and do not answer them until switched off.
    #[serde(default)]
    pub hang: bool,
    /// Share of one core (0–100) kept busy.
    #[serde(default)]
    pub cpu_burn_percent: u32,
    /// Revert everything at this time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<DateTime<Utc>>,
    /// Revert everything after this long (humantime, e.g. `"30s"`), on the app's clock.
    #[serde(default, rename = "for", skip_serializing_if = "Option::is_none")]
    pub duration: Option<String>,
}

/// The faults in force, as `/admin/state` and `/admin/faults` report them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Faults {
    /// `/readyz` answers 503.
    pub unready: bool,
    /// Fraction of traffic requests answered with 500.
    pub error_rate: f64,
    /// Fixed delay added to traffic requests.
    pub latency_ms: u64,
    /// Extra uniform random delay.
    pub jitter_ms: u64,
    /// Requests are held unanswered.
    pub hang: bool,
    /// Share of one core kept busy.
    pub cpu_burn_percent: u32,
    /// When everything reverts by itself.
    pub until: Option<DateTime<Utc>>,
}

/// Why a fault request was refused (answered 400).
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum FaultError {
    /// `error_rate` outside 0.0–1.0.
    #[error("error_rate must be between 0.0 and 1.0, got {0}")]
    ErrorRate(f64),
    /// `cpu_burn_percent` above 100.
    #[error("cpu_burn_percent must be between 0 and 100 (a share of one core), got {0}")]
    CpuPercent(u32),
    /// A delay above the limit.
    #[error("{field} must be at most {MAX_DELAY_MS} ms, got {value}")]
    Delay {
        /// `latency_ms` or `jitter_ms`.
        field: &'static str,
        /// The value asked for.
        value: u64,
    },
    /// Both `until` and `for`.
    #[error("give either `until` or `for`, not both")]
    TwoDeadlines,
    /// `for` is not a duration.
    #[error("`for` must be a duration such as \"30s\" or \"2m\": {0}")]
    BadDuration(String),
    /// The deadline has already passed.
    #[error("`until` {0} is in the past")]
    UntilPast(DateTime<Utc>),
}

impl FaultSpec {
    /// Validates the request and fixes its deadline relative to `now`.
    pub fn resolve(&self, now: DateTime<Utc>) -> Result<Faults, FaultError> {
        if !(0.0..=1.0).contains(&self.error_rate) {
            return Err(FaultError::ErrorRate(self.error_rate));
        }
        if self.cpu_burn_percent > 100 {
            return Err(FaultError::CpuPercent(self.cpu_burn_percent));
        }
        for (field, value) in [
            ("latency_ms", self.latency_ms),
            ("jitter_ms", self.jitter_ms),
        ] {
            if value > MAX_DELAY_MS {
                return Err(FaultError::Delay { field, value });
            }
        }
        let until = match (&self.until, &self.duration) {
            (Some(_), Some(_)) => return Err(FaultError::TwoDeadlines),
            (Some(until), None) if *until <= now => return Err(FaultError::UntilPast(*until)),
            (Some(until), None) => Some(*until),
            (None, Some(text)) => {
                let d = humantime::parse_duration(text)
                    .map_err(|e| FaultError::BadDuration(e.to_string()))?;
                let d = chrono::Duration::from_std(d)
                    .map_err(|e| FaultError::BadDuration(e.to_string()))?;
                Some(now + d)
            }
            (None, None) => None,
        };
        Ok(Faults {
            unready: self.unready,
            error_rate: self.error_rate,
            latency_ms: self.latency_ms,
            jitter_ms: self.jitter_ms,
            hang: self.hang,
            cpu_burn_percent: self.cpu_burn_percent,
            until,
        })
    }
}

impl Faults {
    /// Whether the deadline has passed at `now` (then nothing is in force).
    pub fn expired(&self, now: DateTime<Utc>) -> bool {
        self.until.is_some_and(|until| until <= now)
    }
}

/// The one owner of the faults in force. Cheap to clone (shared).
#[derive(Debug, Clone)]
pub(crate) struct FaultSwitch {
    tx: Arc<watch::Sender<Faults>>,
    burner: CpuBurner,
}

impl FaultSwitch {
    /// A switch with no faults in force; its CPU burn counts against `quota`.
    pub fn new(quota: Arc<CpuQuota>) -> FaultSwitch {
        FaultSwitch {
            tx: Arc::new(watch::Sender::new(Faults::default())),
            burner: CpuBurner::new(quota),
        }
    }

    /// The faults in force now; a passed deadline counts as reverted even if the expiry
    /// task has not run yet, so the deadline is exact for requests.
    pub fn current(&self) -> Faults {
        let faults = *self.tx.borrow();
        if faults.expired(Utc::now()) {
            Faults::default()
        } else {
            faults
        }
    }

    /// Replaces the faults in force.
    pub fn set(&self, faults: Faults) {
        self.tx.send_replace(faults);
        self.burner.set(faults.cpu_burn_percent);
    }

    /// Stops the CPU burn (at shutdown), leaving the other switches as they are.
    pub fn clear_burn(&self) {
        self.burner.set(0);
    }

    /// Completes once `hang` is off (switched off, reverted or expired).
    pub async fn hang_released(&self) {
        let mut rx = self.tx.subscribe();
        // `wait_for` only fails when the sender is gone, and `self` holds it.
        let _ = rx.wait_for(|f| !f.hang).await;
    }

    /// Reverts faults at their deadline, until `stop` is cancelled. One task per app.
    pub async fn run_expiry(self, stop: CancellationToken) {
        let mut rx = self.tx.subscribe();
        loop {
            let until = rx.borrow_and_update().until;
            let wait = match until {
                Some(until) => (until - Utc::now()).to_std().unwrap_or(Duration::ZERO),
                // Nothing to revert: wait for the next change (a long sleep stands in).
                None => Duration::from_secs(3600),
            };
            tokio::select! {
                // The faults changed: recompute the deadline.
                changed = rx.changed() => if changed.is_err() { return },
                // The app is stopping.
                () = stop.cancelled() => return,
                // The deadline passed: revert, unless a newer PUT replaced these faults.
                () = tokio::time::sleep(wait), if until.is_some() => {
                    let reverted = self.tx.send_if_modified(|f| {
                        if f.until == until {
                            *f = Faults::default();
                            true
                        } else {
                            false
                        }
                    });
                    if reverted {
                        self.burner.set(0);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        "2030-01-01T12:00:00Z".parse().unwrap()
    }

    #[test]
    fn a_missing_field_means_off() {
        let spec: FaultSpec = serde_json::from_str(r#"{"unready":true}"#).unwrap();
        let faults = spec.resolve(now()).unwrap();
        assert!(faults.unready);
        assert_eq!(
            faults,
            Faults {
                unready: true,
                ..Faults::default()
            }
        );
    }

    #[test]
    fn unknown_fields_are_rejected_to_catch_typos() {
        let err = serde_json::from_str::<FaultSpec>(r#"{"error_rat":0.5}"#).unwrap_err();
        assert!(err.to_string().contains("error_rat"), "{err}");
    }

    #[test]
    fn out_of_range_values_are_refused_with_the_field_name() {
        let spec = |json: &str| serde_json::from_str::<FaultSpec>(json).unwrap();
        assert_eq!(
            spec(r#"{"error_rate":1.5}"#).resolve(now()),
            Err(FaultError::ErrorRate(1.5))
        );
        assert_eq!(
            spec(r#"{"cpu_burn_percent":150}"#).resolve(now()),
            Err(FaultError::CpuPercent(150))
        );
        let err = spec(r#"{"jitter_ms":600001}"#).resolve(now()).unwrap_err();
        assert!(err.to_string().contains("jitter_ms"));
    }

    #[test]
    fn for_becomes_an_absolute_deadline_on_the_apps_clock() {
        let spec: FaultSpec = serde_json::from_str(r#"{"hang":true,"for":"30s"}"#).unwrap();
        let faults = spec.resolve(now()).unwrap();
        assert_eq!(faults.until, Some(now() + chrono::Duration::seconds(30)));
        assert!(!faults.expired(now()));
        assert!(faults.expired(now() + chrono::Duration::seconds(30)));
    }

    #[test]
    fn deadlines_in_the_past_or_twice_are_refused() {
        let past: FaultSpec = serde_json::from_str(r#"{"until":"2029-01-01T00:00:00Z"}"#).unwrap();
        assert!(matches!(past.resolve(now()), Err(FaultError::UntilPast(_))));
        let both: FaultSpec =
            serde_json::from_str(r#"{"until":"2031-01-01T00:00:00Z","for":"1s"}"#).unwrap();
        assert_eq!(both.resolve(now()), Err(FaultError::TwoDeadlines));
        let bad: FaultSpec = serde_json::from_str(r#"{"for":"soon"}"#).unwrap();
        assert!(matches!(
            bad.resolve(now()),
            Err(FaultError::BadDuration(_))
        ));
    }

    #[tokio::test]
    async fn faults_revert_by_themselves_at_their_deadline() {
        let switch = FaultSwitch::new(Arc::new(super::super::burn::CpuQuota::new(None)));
        let stop = CancellationToken::new();
        let task = tokio::spawn(switch.clone().run_expiry(stop.clone()));
        let until = Utc::now() + chrono::Duration::milliseconds(100);
        switch.set(Faults {
            hang: true,
            until: Some(until),
            ..Faults::default()
        });
        assert!(switch.current().hang);
        tokio::time::timeout(Duration::from_secs(5), switch.hang_released())
            .await
            .expect("hang must be released at the deadline");
        assert_eq!(*switch.tx.borrow(), Faults::default());
        stop.cancel();
        task.await.unwrap();
    }
}
