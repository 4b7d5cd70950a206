//! A release that misbehaves on purpose, so a workshop can show a rollback: the app reads
//! `FAIL_RATE` (fraction of traffic requests answered 500) and `LATENCY` (delay added to
//! each traffic request) from its environment, and a version whose name ends in `-bad`
//! (`v2-bad`) fails [`BAD_VERSION_FAIL_RATE`] of its traffic unless `FAIL_RATE` says
//! otherwise. Unlike the chaos faults (`faults.rs`) this behaviour belongs to the release:
//! `DELETE /admin/faults` does not clear it, and the probes never see it, so a bad release
//! stays Ready and only its clients notice. Pure: resolving the flags.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The error rate a `-bad` version implies when `FAIL_RATE` is not set.
pub const BAD_VERSION_FAIL_RATE: f64 = 0.3;

/// How this release answers traffic, for its whole life.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Release {
    /// Fraction (0.0–1.0) of traffic requests answered with 500.
    pub fail_rate: f64,
    /// Delay added to every traffic request, in milliseconds.
    pub latency_ms: u64,
}

impl Release {
    /// The release behaviour of `version` with the `FAIL_RATE` and `LATENCY` given (each
    /// already checked by clap); an explicit `FAIL_RATE` wins over the `-bad` default.
    pub fn resolve(version: &str, fail_rate: Option<f64>, latency: Option<Duration>) -> Release {
        let implied = version.ends_with("-bad").then_some(BAD_VERSION_FAIL_RATE);
        Release {
            fail_rate: fail_rate.or(implied).unwrap_or(0.0),
            latency_ms: latency.map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        }
    }

    /// Whether the release behaves like any healthy one.
    pub fn is_healthy(&self) -> bool {
        self.fail_rate == 0.0 && self.latency_ms == 0
    }
}

/// Parses `FAIL_RATE`: a fraction `0.3` or a percentage `30%`, between 0 and 1.
pub fn parse_fail_rate(text: &str) -> Result<f64, String> {
    crate::judge::expr::parse_ratio(text.trim()).ok_or_else(|| {
        format!("FAIL_RATE {text:?}: give a fraction between 0 and 1 (0.3) or a percentage (30%)")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_version_fails_thirty_percent_unless_told_otherwise() {
        assert_eq!(Release::resolve("v2-bad", None, None).fail_rate, 0.3);
        assert_eq!(Release::resolve("v2-bad", Some(0.9), None).fail_rate, 0.9);
        assert_eq!(Release::resolve("v2-bad", Some(0.0), None).fail_rate, 0.0);
        assert!(Release::resolve("v2", None, None).is_healthy());
        assert!(Release::resolve("bad-v2", None, None).is_healthy());
    }

    #[test]
    fn latency_and_fail_rate_come_from_the_environment_values() {
        let r = Release::resolve("v1", Some(0.05), Some(Duration::from_millis(150)));
        assert_eq!(
            r,
            Release {
                fail_rate: 0.05,
                latency_ms: 150
            }
        );
        assert!(!r.is_healthy());
    }

    #[test]
    fn fail_rate_reads_fractions_and_percentages_and_refuses_the_rest() {
        assert_eq!(parse_fail_rate("0.3"), Ok(0.3));
        assert_eq!(parse_fail_rate("30%"), Ok(0.3));
        assert!(parse_fail_rate("1.5").unwrap_err().contains("FAIL_RATE"));
        assert!(parse_fail_rate("lots").is_err());
    }
}
