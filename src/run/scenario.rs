//! The scenario file: what `resil run` does, as YAML a presenter can read aloud.
//!
//! ```yaml
//! name: blue-green-failover
//! description: Kill every blue pod under load; measure failover and downtime.
//! target: {lab: true}              # or {context: kind-resil}
//! deploy: {replicas: 2, active: blue}
//! watch: {mode: plain, stable_for: 20s, ready_min: 1}   # mode: plain | capacity-aware | off
//! load: {rate: 200, duration: 60s, path: /}             # or concurrency: 16; or ramp: "10s:50,30s:200"
//! steps:
//!   - {at: 10s, do: kill-pods, color: blue, force: true}
//!   - {at: 10s, do: outage, color: blue, duration: 20s}
//!   - {at: 10s, do: degrade, color: blue, percent: 50, mode: errors=100, duration: 30s}
//!   - {at: 10s, do: cpu-burn, color: blue, load: 100, duration: 60s}
//!   - {at: 10s, do: latency, delay: 200ms, jitter: 50ms, duration: 20s}
//!   - {at: 12s, do: wait-for, event: failover, timeout: 30s}
//! steady_state: {ready_min: 1}     # checked before the load starts and after it ends
//! slos: ["failover_time<2s", "downtime<1s", "error_rate<5%", "p99<500ms"]
//! abort: ["error_rate>50%"]        # stop early (and revert) when breached mid-run
//! ```
//!
//! Unknown keys and bad durations are errors that name the line. Pure: parsing and
//! validation only; the runner executes a [`Scenario`].

use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::cli::Color;

/// Errors in a scenario file.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("reading scenario {path}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("scenario {path}: {message}")]
    Invalid { path: String, message: String },
}

/// A whole scenario.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub target: Target,
    #[serde(default)]
    pub deploy: Deploy,
    #[serde(default)]
    pub watch: Watch,
    pub load: Load,
    #[serde(default)]
    pub steps: Vec<Step>,
    #[serde(default)]
    pub steady_state: SteadyState,
    /// Judged at the end (`resil report` syntax).
    #[serde(default)]
    pub slos: Vec<String>,
    /// Checked every second while running; a breach stops the run and reverts.
    #[serde(default)]
    pub abort: Vec<String>,
}

/// Where the scenario runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    /// Use (and start if needed) the embedded lab.
    #[serde(default = "yes")]
    pub lab: bool,
    /// Run against this kubeconfig context instead.
    #[serde(default)]
    pub context: Option<String>,
}

impl Default for Target {
    fn default() -> Self {
        Target {
            lab: true,
            context: None,
        }
    }
}

fn yes() -> bool {
    true
}

/// Deploy options (as `resil deploy` takes them).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Deploy {
    #[serde(default)]
    pub replicas: Option<i32>,
    #[serde(default)]
    pub active: Option<Color>,
    #[serde(default)]
    pub image: Option<String>,
    /// Leave the demo as the previous run left it (no apply).
    #[serde(default)]
    pub skip: bool,
}

/// The watcher's mode.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WatchMode {
    #[default]
    Plain,
    CapacityAware,
    /// Record only; never switch.
    ObserveOnly,
}

/// Watcher options.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Watch {
    #[serde(default)]
    pub mode: WatchMode,
    #[serde(default = "default_stable_for", with = "humantime_serde")]
    pub stable_for: Duration,
    #[serde(default = "one")]
    pub ready_min: u32,
    #[serde(default)]
    pub primary: Option<Color>,
}

impl Default for Watch {
    fn default() -> Self {
        Watch {
            mode: WatchMode::Plain,
            stable_for: default_stable_for(),
            ready_min: 1,
            primary: None,
        }
    }
}

fn default_stable_for() -> Duration {
    Duration::from_secs(20)
}

fn one() -> u32 {
    1
}

/// The load profile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Load {
    #[serde(with = "humantime_serde")]
    pub duration: Duration,
    /// Open model: requests per second.
    #[serde(default)]
    pub rate: Option<f64>,
    /// Closed model: connections.
    #[serde(default)]
    pub concurrency: Option<u32>,
    /// Rate stages, `10s:100,30s:1000`.
    #[serde(default)]
    pub ramp: Option<String>,
    #[serde(default)]
    pub path: Option<String>,
    /// Default: the deployed Service's URL.
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default, with = "humantime_serde::option")]
    pub timeout: Option<Duration>,
}

/// One timed step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// Offset from the start of the load.
    #[serde(with = "humantime_serde")]
    pub at: Duration,
    #[serde(rename = "do")]
    pub action: StepAction,
    #[serde(default)]
    pub color: Option<Color>,
    #[serde(default)]
    pub selector: Option<String>,
    #[serde(default)]
    pub count: Option<u32>,
    #[serde(default)]
    pub percent: Option<u32>,
    #[serde(default)]
    pub force: bool,
    #[serde(default, with = "humantime_serde::option")]
    pub duration: Option<Duration>,
    /// `degrade`: unready | errors=PCT | latency=DUR | hang.
    #[serde(default)]
    pub mode: Option<String>,
    /// `cpu-burn`: percent of one core.
    #[serde(default)]
    pub load: Option<u32>,
    /// `latency`: proxy delay, jitter and loss.
    #[serde(default, with = "humantime_serde::option")]
    pub delay: Option<Duration>,
    #[serde(default, with = "humantime_serde::option")]
    pub jitter: Option<Duration>,
    #[serde(default)]
    pub loss: Option<f64>,
    /// `wait-for`: the event to wait for, and for how long at most.
    #[serde(default)]
    pub event: Option<WaitEvent>,
    #[serde(default, with = "humantime_serde::option")]
    pub timeout: Option<Duration>,
}

/// What a step does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StepAction {
    KillPods,
    Outage,
    Degrade,
    CpuBurn,
    Latency,
    WaitFor,
}

/// What `wait-for` waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WaitEvent {
    Failover,
    Failback,
}

/// Checks before and after.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SteadyState {
    /// Ready pods the active colour must have.
    #[serde(default = "one")]
    pub ready_min: u32,
    /// How long to wait for it before giving up.
    #[serde(default = "default_settle", with = "humantime_serde")]
    pub timeout: Duration,
}

impl Default for SteadyState {
    fn default() -> Self {
        SteadyState {
            ready_min: 1,
            timeout: default_settle(),
        }
    }
}

fn default_settle() -> Duration {
    Duration::from_secs(60)
}

impl Scenario {
    /// Reads and validates a scenario file.
    pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
        let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Scenario::parse(&text).map_err(|message| ScenarioError::Invalid {
            path: path.display().to_string(),
            message,
        })
    }

    /// Parses and validates scenario text; the error names the line.
    pub fn parse(text: &str) -> Result<Scenario, String> {
        let scenario: Scenario = serde_saphyr::from_str(text).map_err(|e| e.to_string())?;
        scenario.validate()?;
        Ok(scenario)
    }

    /// Checks what the types cannot.
    fn validate(&self) -> Result<(), String> {
        let load = &self.load;
        let models = [
            load.rate.is_some(),
            load.concurrency.is_some(),
            load.ramp.is_some(),
        ];
        if models.iter().filter(|m| **m).count() > 1 {
            return Err("load: give one of rate, concurrency or ramp".to_string());
        }
        if load.duration.is_zero() {
            return Err("load.duration must be more than 0s".to_string());
        }
        if self.target.context.is_some() && self.target.lab {
            // `context` alone means "not the lab"; both set is a contradiction only when
            // the context is not the lab's own.
            if self.target.context.as_deref() != Some("resil-lab") {
                return Err("target: set `lab: false` when naming another context".to_string());
            }
        }
        for (i, step) in self.steps.iter().enumerate() {
            let n = i + 1;
            let need = |what: bool, msg: &str| {
                if what {
                    Ok(())
                } else {
                    Err(format!("steps[{n}] ({:?}): {msg}", step.action))
                }
            };
            if step.at > load.duration {
                return Err(format!(
                    "steps[{n}]: at {} is after the load ends ({})",
                    humantime::format_duration(step.at),
                    humantime::format_duration(load.duration)
                ));
            }
            match step.action {
                StepAction::KillPods => need(
                    step.color.is_some() || step.selector.is_some(),
                    "needs color or selector",
                )?,
                StepAction::Outage => {
                    need(step.color.is_some(), "needs color")?;
                    need(step.duration.is_some(), "needs duration")?;
                }
                StepAction::Degrade => {
                    need(
                        step.color.is_some() || step.selector.is_some(),
                        "needs color or selector",
                    )?;
                    need(step.duration.is_some(), "needs duration")?;
                    let mode = step.mode.as_deref().unwrap_or_default();
                    crate::chaos::plan::Faults::from_mode(mode)
                        .map_err(|e| format!("steps[{n}]: {e}"))?;
                }
                StepAction::CpuBurn => {
                    need(
                        step.color.is_some() || step.selector.is_some(),
                        "needs color or selector",
                    )?;
                    need(step.duration.is_some(), "needs duration")?;
                }
                StepAction::Latency => {
                    need(step.delay.is_some(), "needs delay")?;
                    need(step.duration.is_some(), "needs duration")?;
                }
                StepAction::WaitFor => {
                    need(step.event.is_some(), "needs event: failover|failback")?
                }
            }
        }
        Ok(())
    }
}

/// The format, for `resil run --explain`.
pub const EXPLAIN: &str = include_str!("scenario_format.md");

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "\
name: t
load: {rate: 50, duration: 30s}
steps:
  - {at: 5s, do: kill-pods, color: blue, force: true}
  - {at: 6s, do: wait-for, event: failover, timeout: 10s}
slos: [\"failover_time<2s\"]
";

    #[test]
    fn a_scenario_parses_with_defaults() {
        let s = Scenario::parse(GOOD).unwrap();
        assert!(s.target.lab);
        assert_eq!(s.watch.stable_for, Duration::from_secs(20));
        assert_eq!(s.steps[0].action, StepAction::KillPods);
        assert_eq!(s.steps[1].event, Some(WaitEvent::Failover));
    }

    #[test]
    fn an_unknown_key_is_an_error_naming_its_line() {
        let bad = GOOD.replace("force: true", "forse: true");
        let err = Scenario::parse(&bad).unwrap_err();
        assert!(err.contains("forse"), "{err}");
        assert!(err.contains("line 4"), "{err}");
    }

    #[test]
    fn a_bad_duration_is_an_error_naming_its_line() {
        let bad = GOOD.replace("duration: 30s", "duration: soon");
        let err = Scenario::parse(&bad).unwrap_err();
        assert!(err.contains("line 2"), "{err}");
    }

    #[test]
    fn steps_are_checked_for_what_they_need() {
        let bad = GOOD.replace("color: blue, force: true", "force: true");
        assert!(Scenario::parse(&bad).unwrap_err().contains("needs color"));
        let late = GOOD.replace("at: 5s", "at: 50s");
        assert!(
            Scenario::parse(&late)
                .unwrap_err()
                .contains("after the load ends")
        );
    }

    #[test]
    fn every_shipped_scenario_parses() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
        let mut seen = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "yaml") {
                Scenario::load(&path).unwrap_or_else(|e| panic!("{e}: {e:?}"));
                seen += 1;
            }
        }
        assert!(
            seen >= 5,
            "expected the five scenarios in scenarios/, found {seen}"
        );
    }
}
