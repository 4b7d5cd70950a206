//! The scenario file: what `resil run` does, as YAML a presenter can read aloud.
//!
//! ```yaml
//! name: blue-green-failover
//! description: Kill every blue pod under load; measure failover and downtime.
//! target: {lab: true}              # or {context: kind-resil}
//! # the lab it needs: {lab: true, nodes: 4, zones: [a, a, a, b],
//! #                    node_monitor_grace_period: 2s, default_toleration_seconds: 3}
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
//!   - {at: 5s, do: rollout, color: blue, rollout: {version: v2, analysis: "error_rate<1%", interval: 5s}}
//!   - {at: 10s, do: node-failure, node: lab-node-1, duration: 30s}   # or zone: lab-a
//!   - {at: 10s, do: zone-outage, zone: lab-a, duration: 30s}
//!   - {at: 10s, do: drain, node: lab-node-1, timeout: 60s, duration: 30s}
//! steady_state: {ready_min: 1}     # checked before the load starts and after it ends
//! slos: ["failover_time<2s", "downtime<1s", "error_rate<5%", "p99<500ms"]
//! abort: ["error_rate>50%"]        # stop early (and revert) when breached mid-run
//! dashboard: true                  # the live page on 127.0.0.1:8090 (or a port: 8091)
//! ```
//!
//! Two or more regions (named labs, or contexts) behind the global front door, with
//! writes replicated from the first to the second; `deploy` then applies to each region:
//!
//! ```yaml
//! regions:
//!   - {name: region-a, node_port: 32180}        # `resil lab up --name region-a`
//!   - {name: region-b, node_port: 32181}        # or {name: b, context: kind-b, url: ...}
//! gateway: {listen: 127.0.0.1:8180, interval: 100ms, fail_after: 3, failback_after: 5s}
//! replication: {mode: async, lag: 500ms}       # or {mode: sync}, {mode: off}
//! load: {rate: 100, duration: 30s, write_ratio: 0.5}
//! steps:
//!   - {at: 10s, do: region-outage, region: region-a, duration: 10s}
//!   - {at: 10s, do: wait-for, event: region-failover, timeout: 10s}
//! slos: ["rto<1s", "rpo<50"]
//! ```
//!
//! Unknown keys and bad durations are errors that name the line. Pure: parsing and
//! validation only; the runner executes a [`Scenario`].

use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::domain::Color;
use crate::spec::{AutoscaleSpec, DeploySpec, LoadSpec};

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
    pub deploy: DeploySpec,
    #[serde(default)]
    pub watch: Watch,
    pub load: LoadSpec,
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
    /// SLOs judged on a window of the load only (e.g. after a fault was handled).
    #[serde(default)]
    pub window_slos: Vec<WindowSlo>,
    /// The predictive autoscaler beside the load (absent: the HPA alone).
    #[serde(default)]
    pub autoscale: Option<AutoscaleSpec>,
    /// Run the scenario once per variant and compare them side by side.
    #[serde(default)]
    pub variants: Vec<Variant>,
    /// Settings of the side-by-side comparison.
    #[serde(default)]
    pub compare: Compare,
    /// Serve the live dashboard while it runs, as `resil run --dashboard` does.
    #[serde(default)]
    pub dashboard: Dashboard,
    /// Several regions instead of one cluster: the first is the active one.
    #[serde(default)]
    pub regions: Vec<RegionSpec>,
    /// The global front door across the regions (`resil gateway`); the load goes
    /// through it.
    #[serde(default)]
    pub gateway: Option<GatewaySpec>,
    /// Writes copied from the first region to the second (`resil replicate`).
    #[serde(default)]
    pub replication: Option<Replication>,
}

/// One region of a multi-region scenario: a named lab (`resil lab up --name NAME`,
/// context `resil-NAME`), or a cluster of its own given by `context` (and `url`, where
/// its demo Service is reached: a kind port mapping, `minikube service web --url`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegionSpec {
    pub name: String,
    /// The kubeconfig context (default: the named lab's, `resil-NAME`).
    #[serde(default)]
    pub context: Option<String>,
    /// The demo Service's NodePort in this region (`resil deploy --node-port`).
    #[serde(default)]
    pub node_port: Option<i32>,
    /// Where the region's demo app answers (default: its NodePort on 127.0.0.1).
    #[serde(default)]
    pub url: Option<String>,
}

impl RegionSpec {
    /// The kubeconfig context of the region.
    pub fn context(&self) -> String {
        self.context
            .clone()
            .unwrap_or_else(|| format!("resil-{}", self.name))
    }

    /// Whether the region is a named lab the runner starts.
    pub fn is_lab(&self) -> bool {
        self.context.is_none()
    }
}

/// `gateway:` — `resil gateway`'s settings (active/passive by the regions' order).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewaySpec {
    /// Where it listens (loopback).
    #[serde(default = "default_gateway_listen")]
    pub listen: std::net::SocketAddr,
    /// How often each region's /readyz is checked.
    #[serde(default = "default_gateway_interval", with = "humantime_serde")]
    pub interval: Duration,
    /// Consecutive failed checks after which the active region is down.
    #[serde(default = "default_fail_after")]
    pub fail_after: u32,
    /// How long the preferred region must pass every check before traffic returns.
    #[serde(default = "default_failback_after", with = "humantime_serde")]
    pub failback_after: Duration,
}

fn default_gateway_listen() -> std::net::SocketAddr {
    std::net::SocketAddr::from(([127, 0, 0, 1], 8180))
}

fn default_gateway_interval() -> Duration {
    Duration::from_millis(100)
}

fn default_fail_after() -> u32 {
    3
}

fn default_failback_after() -> Duration {
    Duration::from_secs(10)
}

/// `replication:` — how acknowledged writes reach the second region.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Replication {
    #[serde(default)]
    pub mode: ReplicationMode,
    /// Asynchronous: a write is copied once it is this old.
    #[serde(default, with = "humantime_serde")]
    pub lag: Duration,
}

/// Asynchronous (copied after the lag), synchronous (acknowledged after the copy), or
/// none at all.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReplicationMode {
    #[default]
    Async,
    Sync,
    Off,
}

/// `dashboard:` — `true` serves the page on [`Dashboard::DEFAULT_PORT`], a number on
/// that port, `false` (or no key) not at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Dashboard {
    On(bool),
    Port(u16),
}

impl Default for Dashboard {
    fn default() -> Self {
        Dashboard::On(false)
    }
}

impl Dashboard {
    /// The port `resil run --dashboard` uses when none is given.
    pub const DEFAULT_PORT: u16 = 8090;

    /// The port to serve on, when the page is wanted.
    pub fn port(self) -> Option<u16> {
        match self {
            Dashboard::On(true) => Some(Dashboard::DEFAULT_PORT),
            Dashboard::On(false) => None,
            Dashboard::Port(port) => Some(port),
        }
    }
}

/// An SLO on a window of the load (recorded in `run.json` as it is).
pub use crate::results::WindowSlo;

/// One variant: a name and the sections it replaces.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Variant {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub deploy: Option<DeploySpec>,
    #[serde(default)]
    pub watch: Option<Watch>,
    #[serde(default)]
    pub autoscale: Option<AutoscaleSpec>,
    #[serde(default)]
    pub slos: Option<Vec<String>>,
    #[serde(default)]
    pub replication: Option<Replication>,
    #[serde(default)]
    pub gateway: Option<GatewaySpec>,
}

/// Settings of the side-by-side comparison of variants.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Compare {
    /// The p99 target behind "time with p99 over target" (default: the `p99<` SLO).
    #[serde(default, with = "humantime_serde::option")]
    pub p99_target: Option<Duration>,
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
    /// The lab's nodes (`resil lab up --nodes`), when the scenario needs a layout.
    #[serde(default)]
    pub nodes: Option<u32>,
    /// The zones the nodes spread over round-robin (`--zones`); a zone named twice gets
    /// twice the nodes.
    #[serde(default)]
    pub zones: Option<Vec<String>>,
    /// How long a silent node stays Ready (`--node-monitor-grace-period`).
    #[serde(default, with = "humantime_serde::option")]
    pub node_monitor_grace_period: Option<Duration>,
    /// How long pods stay on an unreachable node (`--default-toleration-seconds`).
    #[serde(default)]
    pub default_toleration_seconds: Option<u32>,
}

impl Default for Target {
    fn default() -> Self {
        Target {
            lab: true,
            context: None,
            nodes: None,
            zones: None,
            node_monitor_grace_period: None,
            default_toleration_seconds: None,
        }
    }
}

impl Target {
    /// Whether the scenario sets the lab up in a way of its own.
    pub fn has_lab_settings(&self) -> bool {
        self.nodes.is_some()
            || self.zones.is_some()
            || self.node_monitor_grace_period.is_some()
            || self.default_toleration_seconds.is_some()
    }

    /// The zone of each node the settings give, in node order (`lab-<zone>`, as the lab
    /// labels them); `None` when the scenario sets neither nodes nor zones.
    pub fn node_zones(&self) -> Option<Vec<String>> {
        if self.nodes.is_none() && self.zones.is_none() {
            return None;
        }
        let default_zones = ["a", "b", "c"].map(String::from).to_vec();
        let zones = self.zones.as_ref().unwrap_or(&default_zones);
        let count = self.nodes.unwrap_or(3) as usize;
        Some(
            (0..count)
                .map(|i| format!("lab-{}", zones[i % zones.len().max(1)]))
                .collect(),
        )
    }

    /// The `resil lab up` flags the settings give.
    pub fn lab_up_args(&self) -> Vec<String> {
        let mut args = Vec::new();
        if let Some(n) = self.nodes {
            args.extend(["--nodes".to_string(), n.to_string()]);
        }
        if let Some(zones) = &self.zones {
            args.extend(["--zones".to_string(), zones.join(",")]);
        }
        if let Some(grace) = self.node_monitor_grace_period {
            args.extend([
                "--node-monitor-grace-period".to_string(),
                format!("{}ms", grace.as_millis()),
            ]);
        }
        if let Some(s) = self.default_toleration_seconds {
            args.extend(["--default-toleration-seconds".to_string(), s.to_string()]);
        }
        args
    }

    /// Checks the lab settings: only for the lab, and each within what `lab up` takes.
    fn validate(&self) -> Result<(), String> {
        if !self.lab && self.has_lab_settings() {
            return Err("target: nodes, zones, node_monitor_grace_period and \
                        default_toleration_seconds set the lab up; they need `lab: true`"
                .to_string());
        }
        if self.nodes.is_some_and(|n| n == 0 || n > 250) {
            return Err("target.nodes must be between 1 and 250".to_string());
        }
        if let Some(zones) = &self.zones {
            let ok = !zones.is_empty()
                && zones.iter().all(|z| {
                    !z.is_empty()
                        && z.chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
                });
            if !ok {
                return Err(format!(
                    "target.zones {zones:?}: give one or more zone names of letters, digits, \
                     - or . (e.g. [a, b, c])"
                ));
            }
        }
        if self.node_monitor_grace_period.is_some_and(|g| g.is_zero()) {
            return Err("target.node_monitor_grace_period must be longer than zero".to_string());
        }
        Ok(())
    }
}

fn yes() -> bool {
    true
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
    /// Delete a pod whose errors or latency stand out from its siblings'.
    #[serde(default)]
    pub eject_outliers: bool,
    /// The window of per-pod outcomes the ejector judges.
    #[serde(default = "default_eject_window", with = "humantime_serde")]
    pub eject_window: Duration,
}

fn default_eject_window() -> Duration {
    Duration::from_secs(10)
}

impl Default for Watch {
    fn default() -> Self {
        Watch {
            mode: WatchMode::Plain,
            stable_for: default_stable_for(),
            ready_min: 1,
            primary: None,
            eject_outliers: false,
            eject_window: default_eject_window(),
        }
    }
}

fn default_stable_for() -> Duration {
    Duration::from_secs(20)
}

fn one() -> u32 {
    1
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
    /// `rollout`: the release and how to roll it (`resil rollout`'s flags), judged on the
    /// scenario's own load.
    #[serde(default)]
    pub rollout: Option<crate::rollout::RolloutSpec>,
    /// `node-failure`, `drain`: the node.
    #[serde(default)]
    pub node: Option<String>,
    /// `node-failure`, `zone-outage`: the zone (label topology.kubernetes.io/zone).
    #[serde(default)]
    pub zone: Option<String>,
    /// The region a fault is injected in (a multi-region scenario; default: the first).
    #[serde(default)]
    pub region: Option<String>,
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
    /// `resil rollout` of `color` with the step's `rollout:` section.
    Rollout,
    NodeFailure,
    ZoneOutage,
    Drain,
    /// Every node of `region` off at once (its workloads scaled to zero where nodes
    /// cannot be powered off).
    RegionOutage,
}

/// What `wait-for` waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WaitEvent {
    Failover,
    Failback,
    /// The gateway moved traffic away from the active region.
    RegionFailover,
    /// The gateway moved traffic back to the preferred region.
    RegionFailback,
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
        let mut names = std::collections::BTreeSet::new();
        for v in &self.variants {
            let ok = !v.name.is_empty()
                && v.name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
            if !ok {
                return Err(format!(
                    "variants: name {:?} must be letters, digits, - or _ (it names a results \
                     directory)",
                    v.name
                ));
            }
            if !names.insert(v.name.as_str()) {
                return Err(format!("variants: name {:?} appears twice", v.name));
            }
        }
        if self.variants.len() == 1 {
            return Err("variants: give two or more to compare (or none)".to_string());
        }
        for run in self.runs() {
            run.validate_one()?;
        }
        Ok(())
    }

    /// Checks one run's sections.
    fn validate_one(&self) -> Result<(), String> {
        for w in &self.window_slos {
            super::window::WindowCheck::parse(&w.slo).map_err(|e| format!("window_slos: {e}"))?;
            if w.to.is_some_and(|to| to <= w.from) {
                return Err(format!("window_slos: {:?} ends before it starts", w.slo));
            }
        }
        let load = &self.load;
        let models = [
            load.rate.is_some(),
            load.concurrency.is_some(),
            load.ramp.is_some(),
        ];
        if models.iter().filter(|m| **m).count() > 1 {
            return Err("load: give one of rate, concurrency or ramp".to_string());
        }
        // serde refuses a missing `duration`; `duration: ~` gets here.
        let Some(length) = load.duration else {
            return Err("load.duration: give how long the load runs, e.g. 60s".to_string());
        };
        if length.is_zero() {
            return Err("load.duration must be more than 0s".to_string());
        }
        self.target.validate()?;
        self.validate_regions()?;
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
            if step.at > length {
                return Err(format!(
                    "steps[{n}]: at {} is after the load ends ({})",
                    humantime::format_duration(step.at),
                    humantime::format_duration(length)
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
                StepAction::Rollout => {
                    let color = step
                        .color
                        .ok_or(format!("steps[{n}] (rollout): needs color"))?;
                    let spec = step.rollout.as_ref().ok_or(format!(
                        "steps[{n}] (rollout): needs rollout: {{version: v2, ...}}"
                    ))?;
                    crate::rollout::RolloutPlan::resolve(color, spec)
                        .map_err(|e| format!("steps[{n}] (rollout): {e}"))?;
                }
                StepAction::NodeFailure => {
                    need(
                        step.node.is_some() != step.zone.is_some(),
                        "needs node or zone (one of them)",
                    )?;
                    need(step.duration.is_some(), "needs duration")?;
                }
                StepAction::ZoneOutage => {
                    need(step.zone.is_some(), "needs zone")?;
                    need(step.duration.is_some(), "needs duration")?;
                }
                StepAction::Drain => need(step.node.is_some(), "needs node")?,
                StepAction::RegionOutage => {
                    need(step.region.is_some(), "needs region")?;
                    need(step.duration.is_some(), "needs duration")?;
                }
            }
            if let Some(region) = &step.region
                && !self.regions.iter().any(|r| &r.name == region)
            {
                return Err(format!(
                    "steps[{n}]: region {region:?} is not one of the scenario's regions ({})",
                    self.region_names()
                ));
            }
            let region_event = matches!(
                step.event,
                Some(WaitEvent::RegionFailover | WaitEvent::RegionFailback)
            );
            if region_event && self.gateway.is_none() {
                return Err(format!(
                    "steps[{n}]: wait-for {:?} waits for the gateway; add a gateway: section",
                    step.event.unwrap_or(WaitEvent::RegionFailover)
                ));
            }
        }
        Ok(())
    }

    fn region_names(&self) -> String {
        match self.regions.is_empty() {
            true => "none: add a regions: section".to_string(),
            false => (self.regions.iter())
                .map(|r| r.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        }
    }

    /// Checks `regions`, `gateway` and `replication` together.
    fn validate_regions(&self) -> Result<(), String> {
        if self.regions.is_empty() {
            if self.gateway.is_some() || self.replication.is_some() {
                return Err(
                    "gateway and replication work across regions: add a regions: \
                            section with two or more"
                        .to_string(),
                );
            }
            return Ok(());
        }
        if self.regions.len() < 2 {
            return Err("regions: give two or more (the first is the active one)".to_string());
        }
        if self.target.context.is_some() {
            return Err("target.context and regions: name each region's context in \
                        regions: instead"
                .to_string());
        }
        let mut seen = std::collections::BTreeSet::new();
        for r in &self.regions {
            let ok = !r.name.is_empty()
                && r.name.len() <= 40
                && r.name.starts_with(|c: char| c.is_ascii_lowercase())
                && (r.name.chars())
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && !r.name.ends_with('-');
            if !ok {
                return Err(format!(
                    "regions: name {:?} must be lowercase letters, digits and -, starting with \
                     a letter (it names a lab: resil lab up --name)",
                    r.name
                ));
            }
            if !seen.insert(r.name.as_str()) {
                return Err(format!("regions: {:?} appears twice", r.name));
            }
            if let Some(url) = &r.url {
                crate::gateway::parse_region(&format!("{}={url}", r.name), false)
                    .map_err(|e| format!("regions: {e:#}"))?;
            }
            if r.context.is_some() && r.url.is_none() && r.node_port.is_none() {
                return Err(format!(
                    "regions: {:?} is a cluster of its own: give url: where its demo Service \
                     answers (a kind port mapping, `minikube service web --url`) or node_port:",
                    r.name
                ));
            }
        }
        if self.load.url.is_some() && self.gateway.is_some() {
            return Err("load.url: with a gateway the load goes through it; leave url out".into());
        }
        if let Some(g) = &self.gateway {
            if !g.listen.ip().is_loopback() {
                return Err(format!("gateway.listen {}: loopback only", g.listen));
            }
            if g.fail_after == 0 || g.interval.is_zero() {
                return Err("gateway: fail_after and interval must be above zero".to_string());
            }
        }
        Ok(())
    }
}

/// The format, for `resil run --explain`.
pub const EXPLAIN: &str = include_str!("scenario_format.md");

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A small valid scenario other modules' tests vary.
    pub(crate) const GOOD: &str = "\
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
    fn dashboard_is_off_true_or_a_port() {
        let port =
            |extra: &str| Scenario::parse(&format!("{GOOD}{extra}")).map(|s| s.dashboard.port());
        assert_eq!(port(""), Ok(None));
        assert_eq!(port("dashboard: false\n"), Ok(None));
        assert_eq!(port("dashboard: true\n"), Ok(Some(8090)));
        assert_eq!(port("dashboard: 8091\n"), Ok(Some(8091)));
        assert!(port("dashboard: soon\n").is_err());
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
            seen >= 10,
            "expected the ten scenarios in scenarios/, found {seen}"
        );
    }

    /// Two lab regions, a gateway and replication around `GOOD`'s load.
    const REGIONS: &str = "\
name: r
regions: [{name: region-a, node_port: 32180}, {name: region-b}]
gateway: {interval: 100ms}
replication: {mode: sync}
load: {rate: 50, duration: 30s, write_ratio: 0.5}
steps:
  - {at: 5s, do: region-outage, region: region-a, duration: 5s}
  - {at: 5s, do: wait-for, event: region-failover, timeout: 10s}
";

    #[test]
    fn a_multi_region_scenario_names_labs_contexts_and_its_front_door() {
        let s = Scenario::parse(REGIONS).unwrap();
        assert_eq!(s.regions[0].context(), "resil-region-a");
        assert!(s.regions[1].is_lab());
        let g = s.gateway.as_ref().unwrap();
        assert_eq!(g.listen.to_string(), "127.0.0.1:8180");
        assert_eq!(
            (g.fail_after, g.failback_after),
            (3, Duration::from_secs(10))
        );
        assert_eq!(s.replication.as_ref().unwrap().mode, ReplicationMode::Sync);
        assert_eq!(s.steps[0].action, StepAction::RegionOutage);
        // Scaled: the fail-back window, not the health checks.
        let quick = s.scaled(0.5).unwrap();
        let g = quick.gateway.unwrap();
        assert_eq!(g.failback_after, Duration::from_secs(5));
        assert_eq!(g.interval, Duration::from_millis(100));
    }

    #[test]
    fn regions_gateway_and_region_steps_are_checked_together() {
        let err = |text: &str| Scenario::parse(text).unwrap_err();
        let one = REGIONS.replace(", {name: region-b}", "");
        assert!(err(&one).contains("two or more"), "{}", err(&one));
        let twice = REGIONS.replace("region-b}", "region-a}");
        assert!(err(&twice).contains("appears twice"));
        let bad = REGIONS.replace("name: region-b", "name: Region_B");
        assert!(err(&bad).contains("lowercase"));
        let unknown = REGIONS.replace("region: region-a", "region: region-c");
        let e = err(&unknown);
        assert!(
            e.contains("region-c") && e.contains("region-a, region-b"),
            "{e}"
        );
        let none = REGIONS.replace("region: region-a, ", "");
        assert!(err(&none).contains("needs region"));
        let no_gateway = REGIONS.replace("gateway: {interval: 100ms}\n", "");
        assert!(err(&no_gateway).contains("add a gateway"));
        let alone = "name: g\ngateway: {}\nload: {rate: 1, duration: 1s}\n";
        assert!(err(alone).contains("regions:"));
        let remote = REGIONS.replace("{name: region-b}", "{name: b, context: kind-b}");
        assert!(err(&remote).contains("url:"));
        let far = REGIONS.replace(
            "{name: region-b}",
            "{name: b, context: kind-b, url: \"http://10.0.0.9:80\"}",
        );
        assert!(err(&far).contains("loopback"), "{}", err(&far));
        let open = REGIONS.replace("gateway: {", "gateway: {listen: \"0.0.0.0:8180\", ");
        assert!(err(&open).contains("loopback only"));
        let url = REGIONS.replace("load: {", "load: {url: \"http://127.0.0.1:1/\", ");
        assert!(err(&url).contains("through it"));
    }

    #[test]
    fn variants_need_distinct_names_and_more_than_one() {
        let twice = format!("{GOOD}variants: [{{name: a}}, {{name: a}}]\n");
        assert!(Scenario::parse(&twice).unwrap_err().contains("twice"));
        let one = format!("{GOOD}variants: [{{name: a}}]\n");
        assert!(Scenario::parse(&one).unwrap_err().contains("two or more"));
        let bad = format!("{GOOD}variants: [{{name: a, wach: {{}}}}, {{name: b}}]\n");
        let err = Scenario::parse(&bad).unwrap_err();
        assert!(err.contains("wach") && err.contains("line 7"), "{err}");
    }
}
