//! The blue/green demo: its manifests (embedded from `manifests/`), `resil deploy`,
//! `resil status`, `resil undeploy`, and the demo web app every pod runs.

pub mod app;
pub mod deploy;
pub mod manifests;
pub mod status;
pub mod undeploy;

use anyhow::Context;

use crate::Exit;
use crate::cli::{DemoAppArgs, DeployArgs, GlobalArgs, StatusArgs, UndeployArgs};

/// `resil deploy`
pub async fn deploy_command(args: DeployArgs, global: &GlobalArgs) -> anyhow::Result<Exit> {
    deploy::command(args, global).await
}

/// `resil status`
pub async fn status_command(args: StatusArgs, global: &GlobalArgs) -> anyhow::Result<Exit> {
    status::command(args, global).await
}

/// `resil undeploy`
pub async fn undeploy_command(args: UndeployArgs, global: &GlobalArgs) -> anyhow::Result<Exit> {
    undeploy::command(args, global).await
}

/// `resil demo-app`: resolve flags, bind, print `listening on ADDR` as the first stdout
/// line (tests and the lab's kubelet read it), serve until SIGTERM or Ctrl-C, exit 0.
pub async fn app_command(args: DemoAppArgs) -> anyhow::Result<Exit> {
    // Install the signal handlers before announcing the address: whoever reads that line
    // may send SIGTERM at once, and the default action would kill us with no exit code.
    let stop = termination().context("installing the SIGTERM handler")?;
    let config = app_config(&args);
    let listener = tokio::net::TcpListener::bind((args.bind.as_str(), args.port))
        .await
        .with_context(|| format!("binding {}:{}", args.bind, args.port))?;
    let addr = listener.local_addr().context("reading the bound address")?;
    println!("listening on {addr}");
    app::serve(listener, config, stop)
        .await
        .context("serving the demo app")?;
    Ok(Exit::Ok)
}

fn app_config(args: &DemoAppArgs) -> app::AppConfig {
    let pod = args.pod_name.clone().unwrap_or_else(|| {
        nix::unistd::gethostname()
            .ok()
            .and_then(|name| name.into_string().ok())
            .unwrap_or_else(|| "unknown-pod".to_string())
    });
    app::AppConfig {
        identity: app::Identity {
            pod,
            color: args.color.clone(),
            version: args.app_version.clone(),
            region: args.region.clone(),
        },
        max_work: args.max_work,
        drain: args.drain,
        cpu_limit_millicores: args.cpu_limit,
        release: app::Release::resolve(&args.app_version, args.fail_rate, args.latency),
        // The flags' ranges keep these within usize on every supported target.
        kv_limits: app::kv::KvLimits {
            max_value_bytes: usize::try_from(args.kv_max_value).unwrap_or(usize::MAX),
            max_keys: usize::try_from(args.kv_max_keys).unwrap_or(usize::MAX),
            max_total_bytes: usize::try_from(args.kv_max_bytes).unwrap_or(usize::MAX),
        },
        replica_url: args.replica_url.clone(),
    }
}

/// A future that completes at the first SIGTERM (what the kubelet sends) or Ctrl-C.
fn termination() -> std::io::Result<impl std::future::Future<Output = ()> + Send + 'static> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        Ok(async move {
            tokio::select! {
                // The kubelet or `kill`: stop gracefully.
                _ = term.recv() => {}
                // Ctrl-C in a terminal: the same.
                _ = int.recv() => {}
            }
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async move {
            let _ = tokio::signal::ctrl_c().await;
        })
    }
}
