//! The whole command-line surface of `resil`, declared with clap in one place so it can be
//! read top to bottom. No logic lives here: each command module turns its `<X>Args` into a
//! resolved `<X>Plan` and runs it. Help text comes from these doc comments.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

pub use crate::domain::{Color, parse_duration};
pub use crate::spec::{AutoscaleSpec, DeploySpec, LoadSpec};

/// A resilience lab for Kubernetes: blue/green failover, autoscaling, chaos, load and cost.
#[derive(Debug, Parser)]
#[command(name = "resil", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,

    #[command(subcommand)]
    pub command: Command,
}

/// Flags every command accepts, named like kubectl's.
#[derive(Debug, Clone, Args, Default)]
pub struct GlobalArgs {
    /// Path to the kubeconfig file (default: $KUBECONFIG, then ~/.kube/config).
    #[arg(long, global = true, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,

    /// The kubeconfig context to use (default: the current context).
    #[arg(long, global = true, value_name = "NAME")]
    pub context: Option<String>,

    /// The namespace of the demo (default: distributed-resilience).
    #[arg(short = 'n', long, global = true, value_name = "NS")]
    pub namespace: Option<String>,

    /// Allow mutating commands against this context even though it does not look like a
    /// local lab (repeatable).
    #[arg(long = "allow-context", global = true, value_name = "NAME")]
    pub allow_context: Vec<String>,

    /// More log output on stderr (-v info, -vv debug, -vvv trace). RUST_LOG wins when set.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// Never use colour (also when NO_COLOR is set).
    #[arg(long, global = true)]
    pub no_color: bool,
}

impl GlobalArgs {
    /// Whether output may use ANSI colour: not with `--no-color`, not with `NO_COLOR` set.
    pub fn color_enabled(&self) -> bool {
        !self.no_color && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
    }
}

/// Every subcommand.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the embedded single-node lab cluster on loopback.
    Lab(LabArgs),
    /// Deploy the blue/green demo (namespace, two Deployments, Service, HPAs).
    Deploy(DeployArgs),
    /// Show the demo's state: replicas, pods, HPAs, which colour the Service selects.
    Status(StatusArgs),
    /// Remove everything `resil deploy` created.
    Undeploy(UndeployArgs),
    /// Inject faults: kill pods, outages, degraded pods, CPU burn, proxy latency.
    Chaos(ChaosArgs),
    /// Generate HTTP load and measure latency, errors and per-colour attribution.
    Load(LoadArgs),
    /// Watch the demo, fail over between colours and record failover and scaling times.
    Watch(WatchArgs),
    /// Raise an HPA's minReplicas ahead of forecast demand, within a cost budget.
    Autoscale(AutoscaleArgs),
    /// Render a run's results as a table, JSON, Markdown, JUnit, HTML or OpenMetrics, with SLO
    /// verdicts.
    Report(ReportArgs),
    /// The monthly cost calculator for the demo's scaling scenarios.
    Cost(CostArgs),
    /// Run a scenario file: deploy, watch, load and chaos on one clock, then report.
    Run(RunArgs),
    /// Serve a live page of the demo and the running load, for a projector; or replay a run.
    Dashboard(DashboardArgs),
    /// The demo web app (the container entrypoint and the lab's pod process).
    DemoApp(DemoAppArgs),
    /// The global front door: an active/passive HTTP proxy across regions, health-checked.
    Gateway(crate::gateway::GatewayArgs),
    /// Copy acknowledged writes from one region's demo app to another's, with a lag or
    /// synchronously.
    Replicate(crate::replicate::ReplicateArgs),
    /// Roll a new release of one colour under load (rolling or canary), judge it, roll back.
    #[command(disable_version_flag = true)]
    Rollout(RolloutArgs),
    /// Print shell completions.
    Completions(CompletionsArgs),
    /// One worker of `resil load --workers N` (the pods' command; not for people).
    #[command(hide = true)]
    LoadWorker(LoadWorkerArgs),
}

/// Output formats for commands that print state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum StateFormat {
    #[default]
    Table,
    Json,
    Yaml,
}

pub use resil_lab::args::LabArgs;

// ---------------------------------------------------------------- demo

/// `resil deploy`
#[derive(Debug, Args)]
pub struct DeployArgs {
    /// Use the manifests in this directory instead of the built-in ones.
    #[arg(long, value_name = "DIR")]
    pub manifests: Option<PathBuf>,

    #[command(flatten)]
    pub spec: DeploySpec,

    /// How long to wait for both rollouts.
    #[arg(long, value_parser = parse_duration, default_value = "120s")]
    pub timeout: Duration,

    /// Apply and return without waiting for the rollouts.
    #[arg(long)]
    pub no_wait: bool,
}

/// `resil status`
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = StateFormat::Table)]
    pub output: StateFormat,

    /// Refresh the view in place until Ctrl-C.
    #[arg(short, long)]
    pub watch: bool,
}

/// `resil undeploy`
#[derive(Debug, Args)]
pub struct UndeployArgs {
    /// How long to wait until everything is gone.
    #[arg(long, value_parser = parse_duration, default_value = "60s")]
    pub timeout: Duration,
}

/// `resil demo-app`
#[derive(Debug, Args)]
pub struct DemoAppArgs {
    /// Address to listen on.
    #[arg(long, env = "BIND", default_value = "0.0.0.0")]
    pub bind: String,

    /// Port to listen on; 0 picks a free one. The first line on stdout is always
    /// `listening on ADDRESS:PORT`.
    #[arg(long, env = "PORT", default_value_t = 8080)]
    pub port: u16,

    /// Colour shown on the page and sent in `x-resil-color`.
    #[arg(long, env = "COLOR", default_value = "blue")]
    pub color: String,

    /// Version sent in `x-resil-version`.
    #[arg(long, env = "VERSION", default_value = "v1")]
    pub app_version: String,

    /// Region shown on the page.
    #[arg(long, env = "REGION", default_value = "local")]
    pub region: String,

    /// Pod name sent in `x-resil-pod` [default: the host name].
    #[arg(long, env = "POD_NAME")]
    pub pod_name: Option<String>,

    /// Longest CPU burn one `/work?ms=N` request performs (longer asks are capped).
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    pub max_work: Duration,

    /// After SIGTERM, keep serving this long before closing: every response then says
    /// `Connection: close` and `/readyz` fails, so clients leave between requests instead
    /// of racing the close of an idle keep-alive connection. `0s` closes at once.
    #[arg(long, env = "DRAIN", value_parser = parse_duration, default_value = "500ms")]
    pub drain: Duration,

    /// CPU limit (a quantity: `500m`, `0.5`, `2`) that `/work` and the CPU-burn fault
    /// share, enforced like the kernel enforces a container's limit: per 100 ms period at
    /// most limit × 100 ms of CPU, then the work waits for the next period. The lab's
    /// kubelet sets it from the container's `resources.limits.cpu`; in a container on a
    /// real node the kernel enforces the limit instead. [default: unlimited]
    #[arg(long, env = "CPU_LIMIT", value_parser = parse_cpu_limit)]
    pub cpu_limit: Option<u64>,

    /// A release that misbehaves on purpose: answer this fraction of traffic requests
    /// (`0.3` or `30%`) with 500, health probes excepted, so the pod stays Ready.
    /// [default: 0.3 when the version ends in `-bad`, such as `v2-bad`; else 0]
    #[arg(long, env = "FAIL_RATE", value_parser = crate::demo::app::parse_fail_rate)]
    pub fail_rate: Option<f64>,

    /// A release that misbehaves on purpose: delay every traffic request this long
    /// (e.g. `150ms`), health probes excepted. [default: none]
    #[arg(long, env = "LATENCY", value_parser = parse_duration)]
    pub latency: Option<Duration>,

    /// Copy every `PUT /kv/{key}` to this demo app (`http://HOST:PORT`) before
    /// acknowledging it: synchronous replication. `PUT /admin/replica` changes it at
    /// runtime. [default: none, writes are acknowledged locally]
    #[arg(long, env = "REPLICA_URL")]
    pub replica_url: Option<String>,

    /// Largest value `PUT /kv/{key}` stores, in bytes (larger ones answer 413).
    #[arg(long, env = "KV_MAX_VALUE", default_value_t = 65_536,
          value_parser = clap::value_parser!(u64).range(1..=16 * 1024 * 1024))]
    pub kv_max_value: u64,

    /// Most keys the store holds (a write past it answers 507).
    #[arg(long, env = "KV_MAX_KEYS", default_value_t = 100_000,
          value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub kv_max_keys: u64,

    /// Most bytes of keys and values the store holds (a write past it answers 507).
    #[arg(long, env = "KV_MAX_BYTES", default_value_t = 64 * 1024 * 1024,
          value_parser = clap::value_parser!(u64).range(1..=4 * 1024 * 1024 * 1024))]
    pub kv_max_bytes: u64,
}

fn parse_cpu_limit(text: &str) -> Result<u64, String> {
    match crate::cost::quantity::parse_cpu_millis(text) {
        Ok(0) => Err("a CPU limit of 0 would never serve /work; give e.g. 500m or 1".into()),
        Ok(millis) => Ok(millis),
        Err(err) => Err(err.to_string()),
    }
}

// ---------------------------------------------------------------- chaos

/// `resil chaos ...`
#[derive(Debug, Args)]
pub struct ChaosArgs {
    #[command(subcommand)]
    pub command: ChaosCommand,
}

/// Chaos actions.
#[derive(Debug, Subcommand)]
pub enum ChaosCommand {
    /// Delete pods of a colour or selector.
    KillPods(KillPodsArgs),
    /// Scale a colour to zero for a while, then restore the exact replica count.
    Outage(OutageArgs),
    /// Degrade pods through the demo app's admin switches for a while.
    Degrade(DegradeArgs),
    /// Burn CPU in chosen pods for a while (drives the HPA without external load).
    CpuBurn(CpuBurnArgs),
    /// Add delay, jitter and loss to the lab's Service proxy (lab only).
    Latency(LatencyArgs),
    /// Revert every fault still open in the journal (after resil was killed).
    Revert(RevertArgs),
    /// Power a node (or every node of a zone) off for a while: the lab's stop switch, or
    /// a provider hook on a real cluster.
    NodeFailure(NodeFailureArgs),
    /// Power every node of a zone off at once for a while.
    ZoneOutage(ZoneOutageArgs),
    /// Cordon a node and evict its pods through the Eviction API (any cluster).
    Drain(DrainArgs),
    /// Take a whole region (the cluster of --context) down for a while: every node off on
    /// the lab, or on any cluster its workloads scaled to zero.
    RegionOutage(RegionOutageArgs),
}

/// Flags every chaos action takes.
#[derive(Debug, Args, Clone)]
pub struct ChaosCommonArgs {
    /// Print the plan and change nothing.
    #[arg(long)]
    pub dry_run: bool,

    /// Also write timeline events into this results directory.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,

    /// Where the journal lives (default: $XDG_STATE_HOME/resil/chaos).
    #[arg(long, value_name = "DIR", env = "RESIL_CHAOS_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
}

/// `resil chaos revert`
#[derive(Debug, Args, Clone)]
pub struct RevertArgs {
    #[command(flatten)]
    pub common: ChaosCommonArgs,

    /// Revert only the open fault with this id (as `--dry-run` lists them).
    #[arg(long)]
    pub id: Option<String>,
}

/// Which pods a chaos action targets.
#[derive(Debug, Args, Clone)]
pub struct TargetArgs {
    /// Target pods of this colour.
    #[arg(long, value_enum)]
    pub color: Option<Color>,

    /// Target pods matching this label selector.
    #[arg(short = 'l', long)]
    pub selector: Option<String>,

    /// At most this many pods.
    #[arg(long, conflicts_with = "percent")]
    pub count: Option<u32>,

    /// This percentage of the matching pods (rounded up).
    #[arg(long)]
    pub percent: Option<u32>,

    /// Seed for random choices (reproducible runs).
    #[arg(long)]
    pub seed: Option<u64>,
}

/// `resil chaos kill-pods`
#[derive(Debug, Args)]
pub struct KillPodsArgs {
    #[command(flatten)]
    pub target: TargetArgs,

    /// Only pods at least this old.
    #[arg(long, value_parser = parse_duration)]
    pub min_age: Option<Duration>,

    /// Kill at once (grace period 0).
    #[arg(long)]
    pub force: bool,

    /// Repeat every interval (with random jitter).
    #[arg(long, value_parser = parse_duration)]
    pub every: Option<Duration>,

    /// How many rounds with --every.
    #[arg(long, default_value_t = 1)]
    pub times: u32,

    #[command(flatten)]
    pub common: ChaosCommonArgs,
}

/// `resil chaos outage`
#[derive(Debug, Args)]
pub struct OutageArgs {
    /// The colour to take down.
    #[arg(long, value_enum)]
    pub color: Color,

    /// How long the outage lasts.
    #[arg(long, value_parser = parse_duration)]
    pub duration: Duration,

    #[command(flatten)]
    pub common: ChaosCommonArgs,
}

/// `resil chaos degrade`
#[derive(Debug, Args)]
pub struct DegradeArgs {
    #[command(flatten)]
    pub target: TargetArgs,

    /// unready | errors=PCT | latency=200ms | hang
    #[arg(long)]
    pub mode: String,

    /// How long the degradation lasts.
    #[arg(long, value_parser = parse_duration)]
    pub duration: Duration,

    #[command(flatten)]
    pub common: ChaosCommonArgs,
}

/// `resil chaos cpu-burn`
#[derive(Debug, Args)]
pub struct CpuBurnArgs {
    #[command(flatten)]
    pub target: TargetArgs,

    /// Share of one core each chosen pod burns, in percent.
    #[arg(long, default_value_t = 100)]
    pub load: u32,

    /// How long the burn lasts.
    #[arg(long, value_parser = parse_duration)]
    pub duration: Duration,

    #[command(flatten)]
    pub common: ChaosCommonArgs,
}

/// `resil chaos latency`
#[derive(Debug, Args)]
pub struct LatencyArgs {
    /// The Service whose proxy gets the delay.
    #[arg(long, default_value = "web")]
    pub service: String,

    /// Added delay per connection.
    #[arg(long, value_parser = parse_duration)]
    pub delay: Duration,

    /// Random extra delay up to this much.
    #[arg(long, value_parser = parse_duration)]
    pub jitter: Option<Duration>,

    /// Percentage of connections dropped.
    #[arg(long, default_value_t = 0.0)]
    pub loss: f64,

    /// How long the fault lasts.
    #[arg(long, value_parser = parse_duration)]
    pub duration: Duration,

    #[command(flatten)]
    pub common: ChaosCommonArgs,
}

/// `resil chaos node-failure`
///
/// On the lab the node stops heartbeating and its pod processes are killed, as a machine
/// losing power; the node lifecycle controller then marks it unreachable after the grace
/// period and evicts its pods after their toleration. A real cluster needs `--hook`.
#[derive(Debug, Args)]
pub struct NodeFailureArgs {
    /// The node to power off.
    #[arg(long, required_unless_present = "zone", conflicts_with = "zone")]
    pub node: Option<String>,

    /// Power off every node of this zone (label topology.kubernetes.io/zone).
    #[arg(long)]
    pub zone: Option<String>,

    #[command(flatten)]
    pub power: PowerArgs,
}

/// `resil chaos zone-outage`
#[derive(Debug, Args)]
pub struct ZoneOutageArgs {
    /// The zone whose nodes all fail (label topology.kubernetes.io/zone).
    #[arg(long)]
    pub zone: String,

    #[command(flatten)]
    pub power: PowerArgs,
}

/// `resil chaos region-outage`
///
/// The region is the cluster `--context` names (e.g. `resil-region-a` for `resil lab up
/// --name region-a`). On the lab every node is powered off at once (heartbeats stop, pod
/// processes die); on a real cluster, with `--hook` every node is powered off through it,
/// and without one every Deployment of the namespace is scaled to zero (restored after).
#[derive(Debug, Args)]
pub struct RegionOutageArgs {
    /// Scale the namespace's Deployments to zero even where nodes could be powered off.
    #[arg(long, conflicts_with = "hook")]
    pub workloads_only: bool,

    /// Take only the control plane down: the API server answers 503 while pods keep
    /// serving (lab only; it comes back by itself at the end of --duration).
    #[arg(long, conflicts_with_all = ["hook", "workloads_only"])]
    pub control_plane: bool,

    #[command(flatten)]
    pub power: PowerArgs,
}

/// How long nodes stay off, and how to power them on a real cluster.
#[derive(Debug, Args, Clone)]
pub struct PowerArgs {
    /// How long the nodes stay off.
    #[arg(long, value_parser = parse_duration)]
    pub duration: Duration,

    /// A real cluster's power switch: a command run once per node as `sh -c CMD` with
    /// RESIL_NODE_ACTION=stop|start, RESIL_NODE and RESIL_ZONE set (e.g. `gcloud compute
    /// instances $RESIL_NODE_ACTION $RESIL_NODE`). Not needed on the lab.
    #[arg(long, value_name = "CMD")]
    pub hook: Option<String>,

    #[command(flatten)]
    pub common: ChaosCommonArgs,
}

/// `resil chaos drain`
///
/// Like `kubectl drain`: DaemonSet and mirror pods stay; evictions a PodDisruptionBudget
/// refuses (429) are retried with a backoff until --timeout.
#[derive(Debug, Args)]
pub struct DrainArgs {
    /// The node to drain.
    #[arg(long)]
    pub node: String,

    /// Longest the drain waits for refused evictions and for evicted pods to go.
    #[arg(long, value_parser = parse_duration, default_value = "120s")]
    pub timeout: Duration,

    /// Uncordon this long after the drain (default: stay cordoned; `resil chaos revert`
    /// uncordons).
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,

    #[command(flatten)]
    pub common: ChaosCommonArgs,
}

// ---------------------------------------------------------------- load

/// `resil load`
///
/// Errors are transport failures (connect, reset), timeouts and 5xx answers; 4xx answers
/// are counted but are not errors. A downtime episode runs from the first error to the
/// first success after it. Latency is send → whole response, in the open model measured
/// from the intended send time (coordinated-omission corrected).
#[derive(Debug, Args)]
pub struct LoadArgs {
    #[command(flatten)]
    pub spec: LoadSpec,

    /// Worker threads (default: the CPUs this process may run on).
    #[arg(long)]
    pub threads: Option<usize>,

    /// Open model: the most connections opened to keep to the schedule while the target
    /// is slow (default 10000).
    #[arg(long)]
    pub max_connections: Option<usize>,

    /// Write results (run.json, timeline.jsonl, latency.hdr, summary.json) into this
    /// directory.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,

    /// Thresholds, e.g. `p99<250ms,error_rate<1%`; exit 1 when one is breached. Keys:
    /// p50 p75 p90 p99 p999 max mean (durations), error_rate (1% or 0.01), rps.
    #[arg(long)]
    pub fail_on: Option<String>,

    /// Output format of the final summary.
    #[arg(short, long, value_enum, default_value_t = StateFormat::Table)]
    pub output: StateFormat,

    #[command(flatten)]
    pub metrics: MetricsArgs,
}

/// `resil load-worker`: one segment of a distributed load run, its figures as JSON lines
/// on stdout (`load/wire.rs`). `--workers` is the number of segments.
#[derive(Debug, Args)]
pub struct LoadWorkerArgs {
    #[command(flatten)]
    pub spec: LoadSpec,

    /// Worker threads (every worker of a run has the same number).
    #[arg(long)]
    pub threads: usize,

    /// Open model: the most connections this worker opens.
    #[arg(long)]
    pub max_connections: Option<usize>,

    /// When the run starts, shared by every worker (RFC 3339).
    #[arg(long)]
    pub start_at: chrono::DateTime<chrono::Utc>,

    /// This worker's segment (a Job's completion index).
    #[arg(long, env = "JOB_COMPLETION_INDEX")]
    pub index: u32,

    /// Also print the cumulative metrics figures once a second (the coordinator serves
    /// them on its `--metrics-addr`).
    #[arg(long)]
    pub figures: bool,
}

// ---------------------------------------------------------------- watch

/// `resil watch`
#[derive(Debug, Args)]
pub struct WatchArgs {
    /// Fail over when the active colour has fewer ready endpoints than this.
    #[arg(long, default_value_t = 1)]
    pub ready_min: u32,

    /// Fail back to the primary only after it has been healthy this long.
    #[arg(long, value_parser = parse_duration, default_value = "20s")]
    pub stable_for: Duration,

    /// The primary colour (the one to fail back to).
    #[arg(long, value_enum, default_value_t = Color::Blue)]
    pub primary: Color,

    /// Scale the standby up to the active colour's serving size before switching.
    #[arg(long)]
    pub prepare_standby: bool,

    /// Only record; never switch the Service.
    #[arg(long)]
    pub observe_only: bool,

    /// Write timeline events and summary.json into this directory.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,

    /// Exit after the first completed failover (or --timeout) and print its figures.
    #[arg(long)]
    pub once: bool,

    /// Give up after this long (with --once; otherwise run until Ctrl-C).
    #[arg(long, value_parser = parse_duration)]
    pub timeout: Option<Duration>,

    /// Delete a pod whose error rate or latency is far worse than its siblings' (robust
    /// z-score over the last 10 s of the per-pod load buckets in --out). It needs three
    /// pods of a colour with traffic; a Service balances connections, so load with
    /// `resil load --no-keepalive` or many connections.
    #[arg(long, requires = "out")]
    pub eject_outliers: bool,

    /// How long the Lease that keeps two watchers from fighting stays taken when its
    /// holder stops renewing it (a standby takes over after this).
    #[arg(long, value_parser = parse_duration, default_value = "15s")]
    pub lease_duration: Duration,

    /// This watcher's name in the Lease (default: host/pid).
    #[arg(long, value_name = "NAME")]
    pub identity: Option<String>,

    /// Act without taking the Lease (only when no other watcher can run).
    #[arg(long, conflicts_with_all = ["identity"])]
    pub no_lease: bool,

    #[command(flatten)]
    pub metrics: MetricsArgs,
}

// ---------------------------------------------------------------- autoscale

/// `resil autoscale`
#[derive(Debug, Args)]
pub struct AutoscaleArgs {
    #[command(flatten)]
    pub spec: AutoscaleSpec,

    /// Stop after this long and restore minReplicas (otherwise run until Ctrl-C).
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,

    /// Write decision events into this results directory (default: the --from directory).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,

    /// Where the journal of the original minReplicas lives (shared with `resil chaos`, so
    /// `resil chaos revert` restores it after a crash).
    #[arg(long, value_name = "DIR", env = "RESIL_CHAOS_STATE_DIR")]
    pub state_dir: Option<PathBuf>,

    #[command(flatten)]
    pub metrics: MetricsArgs,
}

// ---------------------------------------------------------------- report / cost

/// Report output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    Table,
    Json,
    Markdown,
    Junit,
    Html,
    /// OpenMetrics text for a pushgateway (the series `--metrics-addr` serves).
    Openmetrics,
}

/// `resil report`
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// A run's results directory, or a directory of runs to report its newest
    /// (default: the newest run under ./results).
    pub dir: Option<PathBuf>,

    /// Output format (default: table on a terminal, markdown otherwise).
    #[arg(short, long, value_enum)]
    pub output: Option<ReportFormat>,

    /// SLOs to check, e.g. `failover_time<2s,downtime<1s,error_rate<1%,p99<300ms,cost_per_1m<0.50`
    /// (default: the run's own). Exit 0: all held; 1: one failed; 2: error.
    #[arg(long)]
    pub slo: Option<String>,

    /// Compare against another run's results directory.
    #[arg(long, value_name = "DIR")]
    pub baseline: Option<PathBuf>,

    /// Pricing profile for cost per request: a built-in name or a YAML file
    /// (default: the one the run recorded, else `default`).
    #[arg(long, value_name = "NAME|FILE")]
    pub pricing: Option<String>,
}

/// `resil cost`
#[derive(Debug, Args)]
pub struct CostArgs {
    /// Pricing profile: a built-in name or a YAML file.
    #[arg(long, value_name = "NAME|FILE")]
    pub pricing: Option<String>,

    /// The scenario savings are measured against.
    #[arg(long, default_value = "blue-green")]
    pub baseline: String,

    /// CPU request per pod, e.g. `100m` (default: from the manifests).
    #[arg(long)]
    pub cpu_request: Option<String>,

    /// Memory request per pod, e.g. `128Mi` (default: from the manifests).
    #[arg(long)]
    pub memory_request: Option<String>,

    /// Output format.
    #[arg(short, long, value_enum, default_value_t = StateFormat::Table)]
    pub output: StateFormat,
}

// ---------------------------------------------------------------- run

/// `resil run`
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The scenario file.
    pub scenario: PathBuf,

    /// Results go into a new run directory under this one.
    #[arg(long, value_name = "DIR", default_value = "results")]
    pub out: PathBuf,

    /// Seed for random choices.
    #[arg(long)]
    pub seed: Option<u64>,

    /// Run the scenario this many times.
    #[arg(long, default_value_t = 1)]
    pub repeat: u32,

    /// Stop and revert at the first SLO breach that is decided while the run runs (a
    /// downtime episode, when it ends, or a failover over its `<` bound; a window SLO's
    /// first slow second under `p99<`, an `error_rate<` window once past its `to`), and
    /// run no further variant or repeat after a failed run. The whole run's error rate,
    /// percentiles and cost are judged at the end.
    #[arg(long)]
    pub fail_fast: bool,

    /// Multiply every duration of the experiment by this factor (load, ramp stages, step
    /// offsets and fault durations, stable window, autoscaler clock, window SLOs), e.g.
    /// `0.25` for a quick rehearsal; timeouts and SLO thresholds stay as written.
    #[arg(long, value_name = "FACTOR", default_value_t = 1.0)]
    pub time_scale: f64,

    /// Deploy the demo from the manifests in this directory instead of the built-in ones
    /// (as `resil deploy --manifests`); the load goes to the Service's own NodePort.
    #[arg(long, value_name = "DIR")]
    pub manifests: Option<PathBuf>,

    /// Print the scenario format and exit.
    #[arg(long)]
    pub explain: bool,

    /// Serve the live dashboard of the run on 127.0.0.1:PORT (`resil dashboard`) while it
    /// runs.
    #[arg(long, value_name = "PORT", num_args = 0..=1, default_missing_value = "8090")]
    pub dashboard: Option<u16>,

    #[command(flatten)]
    pub metrics: MetricsArgs,
}

// ---------------------------------------------------------------- dashboard

/// `resil dashboard`
#[derive(Debug, Args)]
pub struct DashboardArgs {
    /// Port on 127.0.0.1 to serve the page on (0: any free port).
    #[arg(long, default_value_t = 8090)]
    pub port: u16,

    /// Open the page in a browser (xdg-open or open, when present).
    #[arg(long)]
    pub open: bool,

    /// Follow the load of a run being written to this results directory (a run's
    /// directory, or a directory of runs to follow its newest).
    #[arg(long, value_name = "DIR", conflicts_with = "replay")]
    pub follow: Option<PathBuf>,

    /// Play a finished run back from its results directory, without a cluster.
    #[arg(long, value_name = "DIR")]
    pub replay: Option<PathBuf>,

    /// Replay speed: 4 plays a minute in 15 s.
    #[arg(long, default_value_t = 1.0, requires = "replay")]
    pub speed: f64,
}

// ---------------------------------------------------------------- metrics

/// `--metrics-addr`, flattened into every command that can serve metrics (`load`,
/// `watch`, `autoscale`, `run`, `gateway`).
#[derive(Debug, Clone, Default, Args)]
pub struct MetricsArgs {
    /// Serve Prometheus metrics at http://ADDR/metrics while the command runs, e.g.
    /// `127.0.0.1:9464` (text format 0.0.4, or OpenMetrics when the scraper asks).
    #[arg(long, value_name = "ADDR")]
    pub metrics_addr: Option<std::net::SocketAddr>,
}

// ---------------------------------------------------------------- completions

/// `resil completions`
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_surface_is_consistent() {
        Cli::command().debug_assert();
    }
}

// ---------------------------------------------------------------- rollout

/// `resil rollout`
#[derive(Debug, Args)]
pub struct RolloutArgs {
    /// The colour whose Deployment (`web-<colour>`) gets the new release.
    #[arg(long, value_enum)]
    pub color: Color,

    #[command(flatten)]
    pub spec: crate::rollout::RolloutSpec,

    /// Requests per second of the load --analysis judges.
    #[arg(long, default_value_t = 200.0)]
    pub rate: f64,

    /// Where that load goes [default: the demo Service's NodePort].
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,

    /// Record into this results directory (new, empty, or one a `resil watch --out` is
    /// recording into) [default: a new one under results/].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}
