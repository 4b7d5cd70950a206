//! A multi-region scenario's regions (`regions:`): each a named lab the runner starts
//! (`resil lab up --name NAME`, context `resil-NAME`) or a cluster of its own
//! (`context:`), the demo deployed in each under its region's name, and what works across
//! them while the load runs: the global front door (`resil gateway`) the load goes
//! through, and the replicator copying acknowledged writes from the first region to the
//! second (`resil replicate`). The same engines as the commands, so a scenario measures
//! what they measure. Called by `run::command` (set-up) and the runner (the engines).

use std::time::Duration;

use anyhow::Context;
use tokio::sync::mpsc::UnboundedSender;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::scenario::{GatewaySpec, RegionSpec, Replication, ReplicationMode, Scenario};
use crate::Exit;
use crate::cli::GlobalArgs;
use crate::cluster::{self, ConnectOptions, Guard, Target};
use crate::gateway::{self, GatewayPlan, RunningGateway, policy::Policy};
use crate::replicate::{ReplicaReport, ReplicateError, ReplicatePlan};
use crate::results::RunDir;
use crate::results::timeline::{Event, EventKind};

/// How often the replicator reads the source's change feed (`resil replicate`'s default).
const REPLICATE_POLL: Duration = Duration::from_millis(20);
/// Longest wait for one read or one copy (`resil replicate`'s default).
const REPLICATE_TIMEOUT: Duration = Duration::from_secs(2);

/// One region, connected.
#[derive(Clone)]
pub struct Region {
    pub spec: RegionSpec,
    pub target: Target,
    /// The global flags with this region's context.
    pub global: GlobalArgs,
}

/// Starts the regions that are named labs (with the scenario's `lab up` flags, each
/// idempotent) and connects to every region.
pub async fn connect(
    scenario: &Scenario,
    global: &GlobalArgs,
    guard: &Guard,
) -> anyhow::Result<Vec<Region>> {
    let mut regions = Vec::with_capacity(scenario.regions.len());
    for spec in &scenario.regions {
        if spec.is_lab() {
            let mut flags = vec!["--name".to_string(), spec.name.clone()];
            flags.extend(scenario.target.lab_up_args());
            super::ensure_lab(&flags).await?;
        }
        let mut global = global.clone();
        global.context = Some(spec.context());
        let target = cluster::connect(&ConnectOptions::from_global(&global), Some(guard))
            .await
            .with_context(|| format!("region {}", spec.name))?;
        regions.push(Region {
            spec: spec.clone(),
            target,
            global,
        });
    }
    Ok(regions)
}

/// `resil deploy --region NAME [--node-port P]` in every region, as the scenario's
/// `deploy:` says.
pub async fn deploy(
    run: &Scenario,
    regions: &[Region],
    manifests: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    for region in regions {
        let mut args = super::plans::deploy_args(run, manifests);
        args.spec.region = Some(region.spec.name.clone());
        if region.spec.node_port.is_some() {
            args.spec.node_port = region.spec.node_port;
        }
        let exit = crate::demo::deploy_command(args, &region.global).await?;
        if exit != Exit::Ok {
            anyhow::bail!(
                "deploying the demo in region {} did not succeed",
                region.spec.name
            );
        }
    }
    Ok(())
}

/// Where each region's demo app answers: its `url:`, else its Service's NodePort on
/// loopback once it is confirmed to serve there.
pub async fn urls(regions: &[Region]) -> anyhow::Result<Vec<gateway::Region>> {
    let mut urls = Vec::with_capacity(regions.len());
    for region in regions {
        let url = match &region.spec.url {
            Some(url) => url.clone(),
            None => {
                let port = super::plans::node_port(&region.target).await;
                crate::demo::deploy::confirmed_service_url(&region.target, port)
                    .await
                    .with_context(|| format!("region {}", region.spec.name))?
                    .url
            }
        };
        urls.push(gateway::parse_region(
            &format!("{}={url}", region.spec.name),
            false,
        )?);
    }
    Ok(urls)
}

/// What runs across the regions beside one run's load.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Each region's demo app, in the scenario's order (the first is active).
    pub urls: Vec<gateway::Region>,
    pub gateway: Option<GatewaySpec>,
    pub replication: Option<Replication>,
}

impl Plan {
    /// The base URL the load goes to: the gateway's, or (without one) the first region's.
    pub fn load_base(&self) -> String {
        match &self.gateway {
            Some(g) => format!("http://{}", g.listen),
            None => self.urls[0].base.clone(),
        }
    }

    /// Every region's base, comma-separated: where the load reads its writes back (a
    /// write any region holds is kept).
    pub fn verify_urls(&self) -> String {
        (self.urls.iter())
            .map(|r| r.base.as_str())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The replication, unless there is none (or it is off).
    fn replicate_plan(&self) -> Option<ReplicatePlan> {
        let r = self.replication.as_ref()?;
        (r.mode != ReplicationMode::Off).then(|| ReplicatePlan {
            from: self.urls[0].base.clone(),
            to: self.urls[1].base.clone(),
            lag: r.lag,
            sync: r.mode == ReplicationMode::Sync,
            poll: REPLICATE_POLL,
            timeout: REPLICATE_TIMEOUT,
            duration: None,
        })
    }

    /// One line for the progress: the regions, the front door and the replication.
    pub fn describe(&self) -> String {
        let regions: Vec<String> = (self.urls.iter())
            .map(|r| format!("{}={}", r.name, r.base))
            .collect();
        let gateway = match &self.gateway {
            Some(g) => format!(
                "; gateway on http://{} (checks every {}, failover after {}, fail-back after {})",
                g.listen,
                humantime::format_duration(g.interval),
                g.fail_after,
                humantime::format_duration(g.failback_after)
            ),
            None => String::new(),
        };
        let replication = match self.replicate_plan() {
            Some(p) if p.sync => "; replication synchronous".to_string(),
            Some(p) => format!(
                "; replication asynchronous, lag {}",
                humantime::format_duration(p.lag)
            ),
            None => "; no replication".to_string(),
        };
        format!("regions {}{gateway}{replication}", regions.join(", "))
    }
}

/// The gateway and the replicator, running.
pub struct Engines {
    gateway: Option<RunningGateway>,
    replication: Option<(
        JoinHandle<Result<ReplicaReport, ReplicateError>>,
        CancellationToken,
    )>,
}

/// Starts the gateway (its decisions into `dir`'s timeline and to `decisions`) and the
/// replicator.
pub async fn start(
    plan: &Plan,
    dir: &RunDir,
    decisions: UnboundedSender<(&'static str, String)>,
) -> anyhow::Result<Engines> {
    let gateway = match &plan.gateway {
        Some(g) => Some(
            gateway::start(GatewayPlan {
                regions: plan.urls.clone(),
                listen: g.listen,
                interval: g.interval,
                policy: Policy {
                    fail_after: g.fail_after,
                    failback_after: g.failback_after,
                },
                weights: None,
                dns_ttl: None,
                timeline: Some(dir.timeline()?),
                metrics: None,
                decisions: Some(decisions),
            })
            .await
            .context("starting the gateway")?,
        ),
        None => None,
    };
    let replication = match plan.replicate_plan() {
        Some(replicate) => {
            let cancel = CancellationToken::new();
            let stop = cancel.clone();
            let task = tokio::spawn(async move {
                crate::replicate::engine::run(&replicate, stop, |_| {}).await
            });
            Some((task, cancel))
        }
        None => None,
    };
    Ok(Engines {
        gateway,
        replication,
    })
}

impl Engines {
    /// Stops both; the replicator's figures go to `replication.json` and the timeline.
    pub async fn stop(self, dir: &RunDir) -> anyhow::Result<Option<ReplicaReport>> {
        let report = match self.replication {
            Some((task, cancel)) => {
                cancel.cancel();
                let report = task
                    .await
                    .context("the replicator task")?
                    .context("replicating")?;
                crate::atomic::write_json(&dir.file("replication.json"), &report)?;
                let line = format!(
                    "replication ({}): {}",
                    if report.sync {
                        "synchronous"
                    } else {
                        "asynchronous"
                    },
                    crate::replicate::progress_line(&report)
                );
                dir.timeline()?
                    .append(&Event::now("replicator", EventKind::Note { message: line }))?;
                Some(report)
            }
            None => None,
        };
        if let Some(gateway) = self.gateway {
            gateway.stop().await?;
        }
        Ok(report)
    }
}
