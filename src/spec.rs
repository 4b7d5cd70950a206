//! What a run does, in the form both front ends fill: the command line (clap flattens these
//! structs into `DeployArgs`, `LoadArgs` and `AutoscaleArgs`) and a scenario file (serde
//! reads them as its `deploy:`, `load:` and `autoscale:` sections). Each command's `Plan`
//! resolves a spec, so a scenario accepts what the command accepts and is checked the same
//! way, without going through command-line strings.
//!
//! A field only one front end knows carries `#[serde(skip)]` (the flag is not a scenario
//! key, so a scenario naming it is refused as an unknown key) or `#[arg(skip)]`. A field a
//! scenario may leave out is an `Option` whose default the plan applies; its flag shows the
//! same default in `--help` (a test below keeps the two equal). Pure data; the doc
//! comments are the flags' help text.

use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgAction, Args};
use serde::{Deserialize, Serialize};

use crate::domain::{Color, parse_duration};

/// How long `resil deploy` waits for both rollouts when `--timeout` is not given (also a
/// scenario's deploy).
pub const ROLLOUT_TIMEOUT: Duration = Duration::from_secs(120);

/// The per-request timeout when neither `--timeout` nor the scenario's `timeout` is given.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The autoscaler's defaults where neither a flag nor the scenario gives a value.
pub mod autoscale_defaults {
    use std::time::Duration;

    use crate::domain::Color;

    pub const COLOR: Color = Color::Blue;
    pub const HEADROOM: &str = "20%";
    pub const LOOK_AHEAD: Duration = Duration::from_secs(120);
    pub const PRICING: &str = "default";
    pub const INTERVAL: Duration = Duration::from_secs(5);
    pub const SAMPLE_STEP: Duration = Duration::from_secs(10);
}

fn yes() -> bool {
    true
}

fn get() -> String {
    "GET".to_string()
}

/// The demo's shape: `resil deploy`'s overrides and a scenario's `deploy:` section.
#[derive(Debug, Clone, Default, PartialEq, Args, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeploySpec {
    /// Container image for both colours (default: the manifests' image).
    #[arg(long)]
    #[serde(default)]
    pub image: Option<String>,

    /// Replicas per colour (default: the manifests' value). At most what the cluster's
    /// nodes hold (their allocatable pods); 110 per colour where the cluster lists no
    /// nodes.
    #[arg(long)]
    #[serde(default)]
    pub replicas: Option<i32>,

    /// The Service's NodePort, 30000-32767 (default: the manifests' 30080). Pick another
    /// one when something else holds 30080 on this machine (another lab, a kind cluster).
    #[arg(long, value_name = "PORT")]
    #[serde(default)]
    pub node_port: Option<i32>,

    /// The region the demo pods name (`REGION`: on the page and in the write path's ack
    /// ids, `region-b@STORE:42`); give each region's deploy its own (default: the manifests'
    /// `region-a`).
    #[arg(long, value_name = "NAME")]
    #[serde(default)]
    pub region: Option<String>,

    /// The colour the Service selects.
    #[arg(long, value_enum, default_value = "blue")]
    #[serde(default)]
    pub active: Option<Color>,

    /// Deploy without the PodDisruptionBudgets (and remove those an earlier deploy made).
    #[arg(long)]
    #[serde(default)]
    pub no_pdb: bool,

    /// Deploy without the zone topologySpreadConstraint on the pods.
    #[arg(long)]
    #[serde(default)]
    pub no_spread: bool,

    // A scenario's alone: leave the demo as the previous run left it (no apply).
    #[arg(skip)]
    #[serde(default)]
    pub skip: bool,
}

/// What to send, how fast and for how long: `resil load`'s target, pace and request, and
/// a scenario's `load:` section (which has no `requests`, `method`, `header` or `body`, and
/// must give `duration`).
#[derive(Debug, Clone, PartialEq, Args, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadSpec {
    /// Target URL (plain http). Default: http://127.0.0.1:30080, the lab's NodePort for
    /// the demo Service.
    // In a scenario the default is the deployed Service's URL.
    #[serde(default)]
    pub url: Option<String>,

    /// Stop after this long. In the open model, sends still unsent 1 s after it (a
    /// generator that fell behind) are dropped and counted, not sent late.
    // Required in a scenario: `with` and no `default` make serde refuse a missing key.
    #[arg(short = 'd', long, value_parser = parse_duration)]
    #[serde(with = "humantime_serde::option")]
    pub duration: Option<Duration>,

    /// Stop after this many requests (with --duration: whichever comes first).
    #[arg(short = 'r', long)]
    #[serde(skip)]
    pub requests: Option<u64>,

    /// Closed model: this many connections, each sending the next request when the last
    /// one answered (default 10 when neither --rate nor --ramp is given).
    #[arg(short = 'c', long, conflicts_with_all = ["rate", "ramp"])]
    #[serde(default)]
    pub concurrency: Option<u32>,

    /// Open model: this many requests per second, latency measured from the intended send
    /// time (coordinated-omission corrected). A thread with more than about 20,000 sends
    /// a second polls its sockets between sends instead of sleeping, and so keeps a CPU
    /// busy.
    #[arg(long)]
    #[serde(default)]
    pub rate: Option<f64>,

    /// Open model with rate stages, e.g. `10s:100,30s:1000`: each stage moves the rate
    /// linearly from the previous stage's (0 at first) to its own; the run lasts the
    /// stages unless --duration is longer, then the last rate holds.
    #[arg(long, conflicts_with = "rate")]
    #[serde(default)]
    pub ramp: Option<String>,

    /// Path appended to the URL's path.
    #[arg(long)]
    #[serde(default)]
    pub path: Option<String>,

    /// HTTP method.
    #[arg(short = 'm', long, default_value = "GET")]
    #[serde(skip, default = "get")]
    pub method: String,

    /// Extra request header `Name: value` (repeatable).
    #[arg(short = 'H', long = "header")]
    #[serde(skip)]
    pub headers: Vec<String>,

    /// Request body.
    #[arg(long)]
    #[serde(skip)]
    pub body: Option<String>,

    /// Per-request timeout (connect, send and the whole response).
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    #[serde(default, with = "humantime_serde::option")]
    pub timeout: Option<Duration>,

    /// Open a new connection for every request.
    // A scenario writes `keepalive: false`; the flag is `--no-keepalive`.
    #[arg(long = "no-keepalive", action = ArgAction::SetFalse)]
    #[serde(default = "yes")]
    pub keepalive: bool,

    /// Send from N worker pods of a batch/v1 Job on the cluster instead of this process;
    /// it coordinates them on one schedule (each takes its slice of the rate or the
    /// connections) and merges their per-second histograms exactly. The URL must be
    /// reachable from the pods (on kind: the Service's DNS name). A worker that dies marks
    /// the run partial, with the seconds it missed.
    #[arg(long, value_name = "N")]
    #[serde(default)]
    pub workers: Option<u32>,
    /// Successes in a row that count as recovered after a failure: the report's recovery
    /// time per fault runs to the first of them. [default: 10]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    #[serde(default)]
    pub recovery_successes: Option<u32>,
    /// This fraction of requests (0 to 1) are `PUT /kv/{unique key}` to the demo app's
    /// write path (under the URL's path); each acknowledgement is logged so that lost
    /// writes can be counted after the run (see --verify-url).
    #[arg(long, value_name = "F")]
    #[serde(default)]
    pub write_ratio: Option<f64>,
    /// After the run, read every acknowledged write back from this demo app or gateway
    /// (http://HOST:PORT; the surviving region; several separated by commas, and a write
    /// any of them holds is kept): lost writes are the RPO, a wrong value or an ack id
    /// given twice a correctness error. [default: the target URL's host]
    #[arg(long, value_name = "URL", requires = "write_ratio")]
    #[serde(default)]
    pub verify_url: Option<String>,
}

/// The predictive autoscaler's knobs: `resil autoscale`'s and a scenario's `autoscale:`
/// section (which reads demand from its own run, so it has no `hpa` or `from`).
#[derive(Debug, Clone, Default, PartialEq, Args, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AutoscaleSpec {
    /// Forecast demand and raise the HPA's minReplicas ahead of it (the HPA alone is the
    /// reactive baseline; this flag is required so the mode is explicit).
    // In a scenario the section's presence turns it on; `predictive: false` turns it off.
    #[arg(long)]
    #[serde(default = "yes")]
    pub predictive: bool,

    /// Drive the HPA of this colour (`web-<colour>`).
    #[arg(long, value_enum, default_value = "blue")]
    #[serde(default)]
    pub color: Option<Color>,

    /// Drive the HPA with this name instead.
    #[arg(long, value_name = "NAME")]
    #[serde(skip)]
    pub hpa: Option<String>,

    /// Capacity to keep over the forecast, e.g. `20%`.
    #[arg(long, default_value = autoscale_defaults::HEADROOM)]
    #[serde(default)]
    pub headroom: Option<String>,

    /// How far ahead to forecast (about the time a new pod takes to become Ready).
    #[arg(long, value_parser = parse_duration, default_value = "2m")]
    #[serde(default, with = "humantime_serde::option")]
    pub look_ahead: Option<Duration>,

    /// Never set minReplicas above this (the HPA's maxReplicas always applies too).
    #[arg(long, value_name = "N")]
    #[serde(default)]
    pub max_replicas: Option<i32>,

    /// Most the autoscaled pods may cost, in dollars per hour, e.g. `0.10/h`.
    #[arg(long, value_name = "USD/h")]
    #[serde(default)]
    pub budget: Option<String>,

    /// Pricing profile for the budget: a built-in name or a YAML file.
    #[arg(long, value_name = "NAME|FILE", default_value = autoscale_defaults::PRICING)]
    #[serde(default)]
    pub pricing: Option<String>,

    /// Read the request rate from this results directory (the per-second load buckets a
    /// concurrent `resil load --out DIR` appends); without it, CPU from the metrics API.
    #[arg(long, value_name = "DIR")]
    #[serde(skip)]
    pub from: Option<PathBuf>,

    /// Requests/s one pod serves at the HPA's target utilisation (default: measured from
    /// the rate, the replicas and their CPU).
    #[arg(long, value_name = "REQ/S")]
    #[serde(default)]
    pub capacity: Option<f64>,

    /// The workload's period, for the seasonal model (e.g. `5m`); without it, Holt's
    /// level + trend.
    #[arg(long, value_parser = parse_duration)]
    #[serde(default, with = "humantime_serde::option")]
    pub period: Option<Duration>,

    /// How often to re-plan.
    #[arg(long, value_parser = parse_duration, default_value = "5s")]
    #[serde(default, with = "humantime_serde::option")]
    pub interval: Option<Duration>,

    /// Demand samples are averaged over steps this long before the forecast sees them
    /// (shorter steps make a minutes-ahead forecast chase noise).
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    #[serde(default, with = "humantime_serde::option")]
    pub sample_step: Option<Duration>,
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::autoscale_defaults as auto;
    use super::*;
    use crate::cli::{Cli, Command};

    fn parse(argv: &[&str]) -> Command {
        Cli::try_parse_from(argv).unwrap().command
    }

    #[test]
    fn the_flags_show_the_defaults_a_scenario_gets() {
        let Command::Deploy(deploy) = parse(&["resil", "deploy"]) else {
            panic!("not deploy")
        };
        assert_eq!(deploy.timeout, ROLLOUT_TIMEOUT);
        assert_eq!(deploy.spec.active, Some(Color::Blue));

        let Command::Load(load) = parse(&["resil", "load", "-d", "1s"]) else {
            panic!("not load")
        };
        assert_eq!(load.spec.timeout, Some(REQUEST_TIMEOUT));
        assert_eq!(load.spec.method, get());
        assert!(load.spec.keepalive);

        let Command::Autoscale(a) = parse(&["resil", "autoscale"]) else {
            panic!("not autoscale")
        };
        let a = a.spec;
        assert_eq!(a.color, Some(auto::COLOR));
        assert_eq!(a.headroom.as_deref(), Some(auto::HEADROOM));
        assert_eq!(a.look_ahead, Some(auto::LOOK_AHEAD));
        assert_eq!(a.pricing.as_deref(), Some(auto::PRICING));
        assert_eq!(a.interval, Some(auto::INTERVAL));
        assert_eq!(a.sample_step, Some(auto::SAMPLE_STEP));
    }

    #[test]
    fn no_keepalive_is_the_flag_and_keepalive_false_the_scenario_key() {
        let Command::Load(load) = parse(&["resil", "load", "-d", "1s", "--no-keepalive"]) else {
            panic!("not load")
        };
        assert!(!load.spec.keepalive);
        let spec: LoadSpec = serde_saphyr::from_str("{duration: 1s, keepalive: false}").unwrap();
        assert!(!spec.keepalive);
        let spec: LoadSpec = serde_saphyr::from_str("{duration: 1s}").unwrap();
        assert!(spec.keepalive && spec.method == "GET");
    }

    #[test]
    fn a_scenario_cannot_name_a_flag_only_the_command_line_has() {
        for key in ["requests: 5", "method: POST", "headers: []", "body: x"] {
            let text = format!("{{duration: 1s, {key}}}");
            let err = serde_saphyr::from_str::<LoadSpec>(&text)
                .unwrap_err()
                .to_string();
            assert!(err.contains("unknown field"), "{key}: {err}");
        }
        let err = serde_saphyr::from_str::<AutoscaleSpec>("{hpa: web}").unwrap_err();
        assert!(err.to_string().contains("unknown field"), "{err}");
        let err = serde_saphyr::from_str::<LoadSpec>("{rate: 5}").unwrap_err();
        assert!(err.to_string().contains("duration"), "{err}");
    }
}
