//! Every lab on the machine at once: `lab status` without `--name` once a named lab exists
//! (one row per lab: name, context, API address, pid, uptime, pods, and the node ports it
//! cannot serve) and `lab down --all`. Part of the lab's command layer (it prints); the
//! labs are found by [`super::labs`].

use std::time::Duration;

use anyhow::bail;
use chrono::Utc;
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, ListParams};

use super::command::{api_status, lab_client, remove_context, stop_one};
use super::daemon::{LabInfo, Liveness, StateDir};
use super::labs::{self, Target};
use super::proxy::NODE_PORT_ERROR_ANNOTATION;
use crate::args::Globals;
use resil_common::Exit;

/// The unnamed lab, then the named ones by name.
fn every_lab(root: &StateDir) -> anyhow::Result<Vec<Target>> {
    let mut all = vec![Target::new(root, None)?];
    all.extend(labs::named(root.path()));
    Ok(all)
}

/// `lab down --all`: stops every lab that runs and removes every lab's context.
pub async fn down_all(root: &StateDir, global: &Globals) -> anyhow::Result<Exit> {
    let mut stopped = 0;
    for target in every_lab(root)? {
        if stop_one(&target).await? {
            stopped += 1;
        }
        remove_context(&target, global)?;
    }
    if stopped == 0 {
        eprintln!("No lab was running.");
    }
    Ok(Exit::Ok)
}

/// One row of the status table.
struct Row {
    name: String,
    context: String,
    state: String,
    address: String,
    pid: String,
    uptime: String,
    pods: String,
    problems: Vec<String>,
}

/// `lab status` for every lab: a table, then the node ports each cannot serve. Fails
/// (exit 2) when no lab runs.
pub async fn status_all(root: &StateDir) -> anyhow::Result<Exit> {
    let mut rows = Vec::new();
    for target in every_lab(root)? {
        rows.push(row(&target).await);
    }
    if rows.iter().all(|r| r.state != "running") {
        bail!("no lab is running; start one with `resil lab up` or `resil lab up --name NAME`");
    }
    let header = [
        "NAME", "CONTEXT", "STATE", "ADDRESS", "PID", "UPTIME", "PODS",
    ];
    let cells: Vec<[&str; 7]> = rows
        .iter()
        .map(|r| {
            [
                &r.name, &r.context, &r.state, &r.address, &r.pid, &r.uptime, &r.pods,
            ]
            .map(String::as_str)
        })
        .collect();
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            cells
                .iter()
                .map(|c| c[i].len())
                .chain([header[i].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |c: &[&str]| {
        let padded: Vec<String> = c
            .iter()
            .zip(&widths)
            .map(|(text, w)| format!("{text:<w$}"))
            .collect();
        println!("{}", padded.join("   ").trim_end());
    };
    line(&header);
    for c in &cells {
        line(c);
    }
    for r in &rows {
        for problem in &r.problems {
            println!("{}: node port {problem}", r.name);
        }
    }
    Ok(Exit::Ok)
}

async fn row(target: &Target) -> Row {
    let mut row = Row {
        name: target.name.clone().unwrap_or_else(|| "(unnamed)".into()),
        context: target.context(),
        state: "stopped".into(),
        address: "-".into(),
        pid: "-".into(),
        uptime: "-".into(),
        pods: "-".into(),
        problems: Vec::new(),
    };
    let info = match target.state.liveness().await {
        Liveness::Stopped => return row,
        Liveness::Unresponsive { pid } => {
            row.state = "not answering".into();
            row.pid = pid.to_string();
            return row;
        }
        Liveness::Running(info) => info,
    };
    let uptime = (Utc::now() - info.started_at).num_seconds().max(0);
    row.state = "running".into();
    row.address = info.server_url();
    row.pid = info.pid.to_string();
    row.uptime = humantime::format_duration(Duration::from_secs(uptime.unsigned_abs())).to_string();
    if let Ok(body) = api_status(target, &info).await {
        let pods = body.pointer("/objects/pods").and_then(|n| n.as_u64());
        row.pods = pods.unwrap_or(0).to_string();
    }
    row.problems = node_port_problems(target, &info)
        .await
        .unwrap_or_else(|e| vec![format!("unknown ({e:#})")]);
    row
}

/// The node ports the lab's proxy cannot bind, as its Services say
/// ([`NODE_PORT_ERROR_ANNOTATION`]): "30080 of demo/web: Address in use ...".
pub async fn node_port_problems(target: &Target, info: &LabInfo) -> anyhow::Result<Vec<String>> {
    let client = lab_client(target, info).await?;
    let services: Api<Service> = Api::all(client);
    let list = services.list(&ListParams::default()).await?;
    let mut problems = Vec::new();
    for svc in list.items {
        let Some(error) = svc
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(NODE_PORT_ERROR_ANNOTATION))
        else {
            continue;
        };
        let name = format!(
            "{}/{}",
            svc.metadata.namespace.as_deref().unwrap_or_default(),
            svc.metadata.name.as_deref().unwrap_or_default()
        );
        for failure in error.split("; ") {
            let (port, message) = failure.split_once(": ").unwrap_or((failure, ""));
            problems.push(format!(
                "{port} of {name} cannot be bound ({message}): another lab or program \
                 serves it, not this lab"
            ));
        }
    }
    Ok(problems)
}
