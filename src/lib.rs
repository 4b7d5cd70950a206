//! resil — a resilience lab for Kubernetes.
//!
//! The binary (`main.rs`) parses [`cli::Cli`] and calls [`run`], which dispatches to one
//! command module. Toolkit modules (`demo`, `chaos`, `load`, `watch`, `run`, `report`,
//! `cost`) reach a cluster only through [`cluster`] (kube-rs). The embedded cluster is its
//! own crate, `resil-lab` (crates/lab), which cannot import any of them; this crate names
//! only its entry points (`resil lab ...` here, `LabArgs` in [`cli`]). See ARCHITECTURE.md.

pub mod autoscale;
pub mod chaos;
pub mod cli;
pub mod cli_docs;
pub mod cluster;
pub mod cost;
pub mod dashboard;
pub mod demo;
pub mod domain;
pub mod gateway;
pub mod html;
pub mod judge;
pub mod load;
pub mod logging;
pub mod metrics;
pub mod replicate;
pub mod report;
pub mod results;
pub mod rollout;
pub mod run;
pub mod spec;
pub mod watch;

pub use resil_common::{atomic, crypto, exit};

use std::io::ErrorKind;

use cli::{Cli, Command};
pub use exit::Exit;

/// Runs one command to completion and says how it ended. Errors are printed here, once,
/// with their whole chain of causes.
pub async fn run(cli: Cli) -> Exit {
    crypto::ensure_crypto_provider();
    let Cli { global, command } = cli;
    let result = match command {
        Command::Lab(args) => {
            let lab_globals = resil_lab::args::Globals {
                kubeconfig: global.kubeconfig.clone(),
                verbose: global.verbose,
            };
            resil_lab::command(args, &lab_globals).await
        }
        Command::Deploy(args) => demo::deploy_command(args, &global).await,
        Command::Status(args) => demo::status_command(args, &global).await,
        Command::Undeploy(args) => demo::undeploy_command(args, &global).await,
        Command::Chaos(args) => chaos::command(args, &global).await,
        Command::Load(args) => load::command(args, &global).await,
        Command::Watch(args) => watch::command(args, &global).await,
        Command::Autoscale(args) => autoscale::command(args, &global).await,
        Command::Report(args) => report::command(args, &global).await,
        Command::Cost(args) => cost::command(args, &global).await,
        Command::Run(args) => run::command(args, &global).await,
        Command::Rollout(args) => rollout::command(args, &global).await,
        Command::Dashboard(args) => dashboard::command(args, &global).await,
        Command::DemoApp(args) => demo::app_command(args).await,
        Command::Gateway(args) => gateway::command(args, &global).await,
        Command::Replicate(args) => replicate::command(args, &global).await,
        Command::LoadWorker(args) => load::worker::command(args).await,
        Command::Completions(args) => completions(args),
    };
    match result {
        Ok(exit) => exit,
        Err(err) if is_broken_pipe(&err) => Exit::Ok,
        Err(err) => {
            eprintln!("resil: {err:#}");
            Exit::Error
        }
    }
}

/// The error a command that is not built yet returns: it must not pretend to work.
pub fn not_implemented(what: &str) -> anyhow::Error {
    anyhow::anyhow!("`resil {what}` is not implemented yet")
}

fn completions(args: cli::CompletionsArgs) -> anyhow::Result<Exit> {
    use clap::CommandFactory;
    use std::io::Write;
    let mut cmd = Cli::command();
    // Generated into memory: clap_complete panics on a failed write, and a closed stdout
    // must end as a broken pipe, quietly.
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, "resil", &mut script);
    std::io::stdout().lock().write_all(&script)?;
    Ok(Exit::Ok)
}

/// `resil status | head` closes our stdout early; that is not an error (as in ripgrep).
fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == ErrorKind::BrokenPipe)
    })
}
