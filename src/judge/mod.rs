//! Every verdict resil gives, in one place: which SLOs a run is judged by and whether they
//! held.
//!
//! - [`slo`]: whole-run SLOs (`failover_time<2s,downtime<1s,error_rate<1%,p99<300ms,
//!   cost_per_1m<0.50`, also `scaling_latency`), from `--slo` or the run's `slos`;
//! - [`window`]: SLOs on a window of the load (`window_slos`), judged on its one-second
//!   buckets;
//! - [`fail_fast`]: the breaches of those two that are decided while a run runs
//!   (`resil run --fail-fast`); the end-of-run verdict is still [`judge`]'s;
//! - [`fail_on`]: `resil load --fail-on` thresholds, judged on the load's summary;
//! - [`expr`]: the comparison grammar they share (`KEY OP VALUE`, durations, ratios).
//!
//! [`judge`] decides from a results directory alone: [`Slos::recorded`] reads the SLOs
//! `run.json` records, and the figures are the ones `report::build` derived from the same
//! directory. `resil run` prints that report and takes its exit code from it, so
//! `resil report DIR` (every format) later gives the same verdicts and exit code.
//!
//! Not here: deriving figures (`report::build`), rendering verdicts (`report`), abort
//! rules (`run::runner`: they stop a run and mark it partial; they are not verdicts).
//! Pure: no I/O.

pub mod expr;
pub mod fail_fast;
pub mod fail_on;
pub mod slo;
pub mod window;

use crate::report::model::{Report, SloVerdict};
use crate::results::summary::Percentiles;
use crate::results::{Event, RunMeta, WindowSlo};

pub use slo::{Slo, SloParseError};

/// A latency figure a threshold or SLO can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LatencyStat {
    P50,
    P75,
    P90,
    P99,
    P999,
    Max,
    /// Only `--fail-on` names the mean; an SLO bounds percentiles.
    Mean,
}

impl LatencyStat {
    /// This figure of `p`, in µs.
    pub fn of(self, p: &Percentiles) -> f64 {
        match self {
            LatencyStat::P50 => p.p50_us as f64,
            LatencyStat::P75 => p.p75_us as f64,
            LatencyStat::P90 => p.p90_us as f64,
            LatencyStat::P99 => p.p99_us as f64,
            LatencyStat::P999 => p.p999_us as f64,
            LatencyStat::Max => p.max_us as f64,
            LatencyStat::Mean => p.mean_us,
        }
    }
}

/// The SLOs a run is judged by.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Slos {
    /// Whole-run SLOs.
    pub run: Vec<Slo>,
    /// SLOs on a window of the load.
    pub windows: Vec<WindowSlo>,
    /// The `--fail-on` thresholds a load recorded (its run.json's `slos`).
    pub thresholds: Vec<fail_on::Threshold>,
}

impl Slos {
    /// `--slo`: whole-run SLOs only; given, they replace every SLO the run recorded.
    pub fn parse_list(text: &str) -> Result<Slos, SloParseError> {
        Ok(Slos {
            run: slo::parse_list(text)?,
            ..Slos::default()
        })
    }

    /// The SLOs `run.json` records. A `run.json` written before window SLOs were recorded
    /// has none of its own; a scenario's run still has them in the scenario it records,
    /// so they are read from there (and a run without a scenario has none). A load's
    /// `slos` are its `--fail-on` thresholds, judged as the load judged them.
    pub fn recorded(meta: &RunMeta) -> Result<Slos, SloParseError> {
        if meta.command == "load" {
            let mut thresholds = Vec::new();
            for e in &meta.slos {
                let parsed = fail_on::parse(e).map_err(|bad| SloParseError {
                    expression: bad.expr,
                    message: bad.reason,
                })?;
                thresholds.extend(parsed);
            }
            return Ok(Slos {
                thresholds,
                ..Slos::default()
            });
        }
        let run = meta
            .slos
            .iter()
            .map(|e| slo::parse(e))
            .collect::<Result<_, _>>()?;
        let windows = if meta.window_slos.is_empty() {
            meta.scenario
                .as_ref()
                .and_then(|s| s.get("window_slos"))
                .and_then(|w| serde_json::from_value(w.clone()).ok())
                .unwrap_or_default()
        } else {
            meta.window_slos.clone()
        };
        Ok(Slos {
            run,
            windows,
            thresholds: Vec::new(),
        })
    }

    /// Whether there is nothing to judge.
    pub fn is_empty(&self) -> bool {
        self.run.is_empty() && self.windows.is_empty() && self.thresholds.is_empty()
    }
}

/// Judges every SLO of `slos`: the whole-run ones against `report`'s figures, then the
/// window ones against the load buckets of `events` (the same run's timeline), then a
/// load's thresholds, in the order given.
pub fn judge(slos: &Slos, report: &Report, events: &[Event]) -> Vec<SloVerdict> {
    let mut verdicts = slo::evaluate(&slos.run, report);
    verdicts.extend(
        window::judge(&slos.windows, events)
            .into_iter()
            .map(window::WindowVerdict::into_verdict),
    );
    verdicts.extend(fail_on::verdicts(&slos.thresholds, report));
    verdicts
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cost::PricingProfile;
    use crate::report::build::{RunData, build};
    use crate::results::Summary;
    use window::tests::{bucket, window};

    #[test]
    fn recorded_slos_come_from_run_json_or_from_an_older_runs_scenario() {
        let mut meta = RunMeta::start("r", "run");
        meta.slos = vec!["p99<300ms".into()];
        meta.window_slos = vec![window(2, Some(4), "error_rate<1%")];
        let slos = Slos::recorded(&meta).unwrap();
        assert_eq!(slos.run[0].expression, "p99<300ms");
        assert_eq!(slos.windows, meta.window_slos);
        // Recorded in run.json as the scenario writes them.
        let json = serde_json::to_value(&meta).unwrap();
        assert_eq!(
            json["window_slos"],
            serde_json::json!([{"from": "2s", "to": "4s", "slo": "error_rate<1%"}])
        );

        // A run.json from before window SLOs were recorded: the scenario's.
        let mut older = RunMeta::start("r", "run");
        older.scenario = Some(serde_json::json!({
            "name": "x",
            "window_slos": [{"from": "30s", "slo": "p99<300ms"}],
        }));
        let slos = Slos::recorded(&older).unwrap();
        assert_eq!(slos.windows, [window(30, None, "p99<300ms")]);

        // A load's run.json has none, and says nothing of them.
        let load = RunMeta::start("r", "load");
        assert!(Slos::recorded(&load).unwrap().is_empty());
        assert!(
            serde_json::to_value(&load)
                .unwrap()
                .get("window_slos")
                .is_none()
        );

        meta.slos = vec!["p98<1s".into()];
        assert!(Slos::recorded(&meta).is_err());
    }

    #[test]
    fn the_judge_gives_the_whole_run_verdicts_then_the_window_ones_in_one_list() {
        let meta = RunMeta::start("r", "run");
        let events = vec![
            bucket(0, 100, 0, 20_000),
            bucket(1, 100, 10, 90_000),
            bucket(2, 100, 0, 20_000),
        ];
        let data = RunData {
            meta,
            summary: Summary::default(),
            events,
            histograms: Vec::new(),
        };
        let (report, _) = build(&data, &PricingProfile::default_profile());
        let slos = Slos {
            run: slo::parse_list("error_rate<5%").unwrap(),
            windows: vec![
                window(1, Some(2), "error_rate<1%"),
                window(2, None, "p99<50ms"),
            ],
            thresholds: Vec::new(),
        };
        let v = judge(&slos, &report, &data.events);
        let got: Vec<(&str, bool)> = v
            .iter()
            .map(|v| (v.expression.as_str(), v.passed))
            .collect();
        assert_eq!(
            got,
            [
                ("error_rate<5%", true),
                ("error_rate<1% from 1s to 2s", false),
                ("p99<50ms from 2s", true),
            ]
        );
        // A window verdict reads like a whole-run one: metric, unit, bound and value.
        assert_eq!(
            (v[1].metric.as_str(), v[1].unit.as_str(), v[1].threshold),
            ("error_rate", "ratio", 0.01)
        );
        assert_eq!(v[1].actual, Some(0.1));
        assert!(v[1].message.contains("10.00% of 100 requests"), "{v:?}");
        assert_eq!((v[2].unit.as_str(), v[2].threshold), ("ms", 50.0));
        assert_eq!(v[2].actual, Some(20.0));
    }

    #[test]
    fn latency_figures_come_from_one_builder_with_the_mean_to_a_tenth_of_a_microsecond() {
        let mut h = crate::results::hdr::new_histogram();
        for us in [1, 2, 2] {
            h.record(us).unwrap();
        }
        let p = Percentiles::of(&h).unwrap();
        assert_eq!(LatencyStat::Mean.of(&p), 1.7);
        assert_eq!(LatencyStat::Max.of(&p), 2.0);
        assert_eq!(LatencyStat::P50.of(&p), 2.0);
        assert!(Percentiles::of(&crate::results::hdr::new_histogram()).is_none());
    }
}
