//! The arguments of `resil lab ...`, declared with clap. The binary's `Cli` nests
//! [`LabArgs`] as its `lab` subcommand; the lab's command layer (`command.rs`) turns them
//! into a plan. What the lab takes from the global flags comes in as [`Globals`].

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};
use resil_common::args::parse_duration;

/// What `resil lab` takes from the flags every command accepts.
#[derive(Debug, Clone, Default)]
pub struct Globals {
    /// `--kubeconfig`: the kubeconfig file to add the lab's context to.
    pub kubeconfig: Option<PathBuf>,
    /// `-v` count, passed on to the detached `lab up` child.
    pub verbose: u8,
}

/// `resil lab ...`
#[derive(Debug, Args)]
pub struct LabArgs {
    /// Where the lab keeps its state, certificates, logs and pid file
    /// (default: $XDG_STATE_HOME/resil/lab or ~/.local/state/resil/lab).
    #[arg(long, global = true, value_name = "DIR", env = "RESIL_LAB_STATE_DIR")]
    pub state_dir: Option<PathBuf>,

    /// Which lab: a named one (a DNS-1123 label, e.g. region-a) has its own state
    /// directory (<state-dir>/labs/NAME), API port, node ports and context `resil-NAME`;
    /// without it, the unnamed lab (context `resil-lab`).
    #[arg(long, global = true, value_name = "NAME")]
    pub name: Option<String>,

    #[command(subcommand)]
    pub command: LabCommand,
}

/// The lab's subcommands.
#[derive(Debug, Subcommand)]
pub enum LabCommand {
    /// Start the lab in the background (or attached with --foreground) and add the
    /// `resil-lab` context to the kubeconfig.
    Up(LabUpArgs),
    /// Stop the lab and every pod process it started; remove its kubeconfig context.
    Down(LabDownArgs),
    /// Show pid, address, uptime and object counts; without --name, every lab.
    Status,
    /// Print the lab's kubeconfig.
    Kubeconfig,
}

/// `resil lab up`
#[derive(Debug, Args, Clone)]
pub struct LabUpArgs {
    /// Run attached to this terminal instead of in the background.
    #[arg(long)]
    pub foreground: bool,

    /// API server port on 127.0.0.1 (0 picks a free one; default: the last one used, else 0).
    #[arg(long)]
    pub port: Option<u16>,

    /// Program the kubelet runs for demo pods (default: this resil binary).
    #[arg(long, value_name = "PATH")]
    pub pod_program: Option<PathBuf>,

    /// HPA sync period (the upstream default is 15s; shorter makes labs livelier).
    #[arg(long, value_parser = parse_duration, default_value = "15s")]
    pub hpa_sync_period: Duration,

    /// Pods each node runs at once (like the kubelet's --max-pods); more stay
    /// Pending as Unschedulable until others go.
    #[arg(long, value_name = "N", default_value_t = 110)]
    pub max_pods: u32,

    /// Nodes in the lab (names lab-node-1..N), spread round-robin over --zones.
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub nodes: u32,

    /// Zones the nodes spread over; node labels read topology.kubernetes.io/zone=lab-<zone>.
    #[arg(
        long,
        value_name = "LIST",
        value_delimiter = ',',
        default_value = "a,b,c"
    )]
    pub zones: Vec<String>,

    /// How long a node may stay silent before it is marked unreachable and tainted
    /// (upstream --node-monitor-grace-period).
    #[arg(long, value_parser = parse_duration, default_value = "40s")]
    pub node_monitor_grace_period: Duration,

    /// Seconds a pod stays on an unreachable or not-ready node before it is evicted (the
    /// default tolerations admission adds; upstream 300).
    #[arg(long, value_name = "SECONDS", default_value_t = 300)]
    pub default_toleration_seconds: u32,

    /// Do not touch the kubeconfig (print the lab's own kubeconfig path instead).
    #[arg(long)]
    pub no_kubeconfig: bool,
}

/// `resil lab down`
#[derive(Debug, Args, Clone)]
pub struct LabDownArgs {
    /// Stop every lab: the unnamed one and every named one.
    #[arg(long)]
    pub all: bool,
}
