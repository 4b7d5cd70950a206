//! The command layer of the infrastructure faults: `resil chaos node-failure`,
//! `zone-outage` and `drain` — planned, printed, journaled, executed and reverted like
//! every fault (the engine is `nodes.rs` and the injector).

use crate::Exit;
use crate::cli::{
    DrainArgs, GlobalArgs, NodeFailureArgs, PowerArgs, RegionOutageArgs, ZoneOutageArgs,
};

use super::region::RegionDown;
use super::{Interruption, Session};

/// `resil chaos node-failure`
pub(super) async fn node_failure(
    args: NodeFailureArgs,
    global: &GlobalArgs,
) -> anyhow::Result<Exit> {
    power_off("node-failure", args.node, args.zone, args.power, global).await
}

/// `resil chaos zone-outage`
pub(super) async fn zone_outage(args: ZoneOutageArgs, global: &GlobalArgs) -> anyhow::Result<Exit> {
    power_off("zone-outage", None, Some(args.zone), args.power, global).await
}

async fn power_off(
    action: &str,
    node: Option<String>,
    zone: Option<String>,
    power: PowerArgs,
    global: &GlobalArgs,
) -> anyhow::Result<Exit> {
    let session = Session::open(&power.common, global).await?;
    let scope = &session.injector.scope;
    let nodes = match (node, zone) {
        (Some(node), _) => vec![node],
        (None, Some(zone)) => scope.nodes_in_zone(&zone).await?,
        (None, None) => anyhow::bail!("say which: --node NAME or --zone ZONE"),
    };
    let how = scope.power(&nodes, power.hook.as_deref()).await?;
    let lines = [format!(
        "power off {} for {} ({}), then power on again",
        nodes.join(", "),
        humantime::format_duration(power.duration),
        match &how {
            super::nodes::Power::Lab => "the lab's stop switch".to_string(),
            super::nodes::Power::Hook(h) => format!("hook `{h}`"),
        }
    )];
    if !session.announce(&lines) {
        return Ok(Exit::Ok);
    }
    let interruption = Interruption::listen();
    let entry = session
        .injector
        .node_failure(action, &nodes, &how, power.duration)
        .await?;
    session
        .hold_and_revert(entry, power.duration, interruption)
        .await
}

/// `resil chaos region-outage`: every node of the cluster off at once (the lab's switch or
/// the hook), or where neither can, every Deployment of the namespace scaled to zero.
pub(super) async fn region_outage(
    args: RegionOutageArgs,
    global: &GlobalArgs,
) -> anyhow::Result<Exit> {
    let power = args.power;
    let session = Session::open(&power.common, global).await?;
    let scope = &session.injector.scope;
    let region = session.injector.context.clone();
    if args.control_plane {
        let nodes = match args.workloads_only {
            true => Vec::new(),
            false => scope.node_names().await?,
        };
        if nodes.is_empty() || scope.power(&nodes, None).await.is_err() {
            anyhow::bail!(
                "region {region}: --control-plane needs the lab (its API server has the \
                 switch); a real cluster's control plane is its provider's — take the region's \
                 workloads down instead (leave out --control-plane)"
            );
        }
        let lines = [format!(
            "region {region}: control plane down for {} (the API answers 503; pods keep \
             serving), then back",
            humantime::format_duration(power.duration)
        )];
        if !session.announce(&lines) {
            return Ok(Exit::Ok);
        }
        let interruption = Interruption::listen();
        let entry = session
            .injector
            .control_plane_outage(power.duration)
            .await?;
        return session
            .hold_and_revert(entry, power.duration, interruption)
            .await;
    }
    let down =
        RegionDown::decide(scope, power.hook.as_deref(), args.workloads_only, &region).await?;
    let lines = [format!(
        "region {region} down for {}: {}; then bring it back",
        humantime::format_duration(power.duration),
        down.describe(&scope.namespace)
    )];
    if !session.announce(&lines) {
        return Ok(Exit::Ok);
    }
    let interruption = Interruption::listen();
    let entry = down.inject(&session.injector, power.duration).await?;
    session
        .hold_and_revert(entry, power.duration, interruption)
        .await
}

/// `resil chaos drain`
pub(super) async fn drain(args: DrainArgs, global: &GlobalArgs) -> anyhow::Result<Exit> {
    let session = Session::open(&args.common, global).await?;
    let mut lines = vec![format!(
        "cordon {} and evict its pods (PodDisruptionBudget refusals retried for up to {})",
        args.node,
        humantime::format_duration(args.timeout)
    )];
    lines.push(match args.duration {
        Some(d) => format!("uncordon {} later", humantime::format_duration(d)),
        None => "it stays cordoned: `resil chaos revert` uncordons".to_string(),
    });
    if !session.announce(&lines) {
        return Ok(Exit::Ok);
    }
    let interruption = Interruption::listen();
    let (entry, drained) = session
        .injector
        .drain(&args.node, args.timeout, args.duration)
        .await?;
    println!("drain {}: {}", args.node, drained.summary());
    if !drained.left.is_empty() {
        anyhow::bail!(
            "the drain of {} timed out after {}; it stays cordoned (journal entry {}: \
             `resil chaos revert --id {}` uncordons)",
            args.node,
            humantime::format_duration(args.timeout),
            entry.id,
            entry.id
        );
    }
    match args.duration {
        Some(d) => session.hold_and_revert(entry, d, interruption).await,
        None => {
            println!(
                "{} stays cordoned; `resil chaos revert --id {}` uncordons it",
                args.node, entry.id
            );
            Ok(Exit::Ok)
        }
    }
}
