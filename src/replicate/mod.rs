//! `resil replicate`: copies acknowledged writes from the active region's demo app to the
//! passive one's, so that a region outage can lose data and RPO can be measured.
//!
//! - **Asynchronous** (default): [`engine::run`] reads the source's change feed and copies
//!   each write once it is at least `--lag` old. When the source dies, the writes of its
//!   last lag (plus at most one poll) are gone: at a steady write rate R, about R × lag.
//! - **Synchronous** (`--sync`): the source is told (`PUT /admin/replica`) to copy every
//!   write to the target before acknowledging it, so an acknowledged write is in both
//!   regions; the loop copies what was written before. Cleared again at the end.
//!
//! `ReplicateArgs` → [`ReplicatePlan`] → [`engine::run`] → the figures ([`ReplicaReport`]);
//! only [`command`] prints. URLs are demo apps (`http://HOST:PORT`): two labs' NodePorts,
//! two `resil demo-app` processes, a port-forward. A region served by several pods keeps
//! a store per pod; replicate one pod per region (see the write path in `demo/app/mod.rs`).

pub mod engine;

use std::time::Duration;

use anyhow::bail;
use clap::Args;
use tokio_util::sync::CancellationToken;

pub use engine::ReplicaReport;

use crate::Exit;
use crate::cli::GlobalArgs;
use crate::gateway::parse_region;
use resil_common::args::parse_duration as parse_duration_arg;

/// `resil replicate`
#[derive(Debug, Args)]
pub struct ReplicateArgs {
    /// The active region's demo app (http://HOST:PORT): where writes are acknowledged.
    #[arg(long, value_name = "URL")]
    pub from: String,
    /// The passive region's demo app (http://HOST:PORT): where they are copied.
    #[arg(long, value_name = "URL")]
    pub to: String,
    /// Copy a write only once it is this old (asynchronous replication lag, e.g. 500ms).
    #[arg(long, value_parser = parse_duration_arg, default_value = "0s")]
    pub lag: Duration,
    /// Synchronous replication: the source acknowledges a write only after the target
    /// took its copy.
    #[arg(long, conflicts_with = "lag")]
    pub sync: bool,
    /// How often the source's change feed is read.
    #[arg(long, value_parser = parse_duration_arg, default_value = "20ms")]
    pub poll: Duration,
    /// Longest wait for one read or one copy.
    #[arg(long, value_parser = parse_duration_arg, default_value = "2s")]
    pub timeout: Duration,
    /// Stop after this long (default: until Ctrl-C).
    #[arg(long, value_parser = parse_duration_arg)]
    pub duration: Option<Duration>,
    /// Allow demo apps that are not on loopback.
    #[arg(long)]
    pub allow_remote: bool,
    /// Print the final figures as JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// A resolved, validated replication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicatePlan {
    /// Source base URL, without a trailing slash.
    pub from: String,
    /// Target base URL, without a trailing slash.
    pub to: String,
    pub lag: Duration,
    pub sync: bool,
    pub poll: Duration,
    pub timeout: Duration,
    pub duration: Option<Duration>,
}

/// Why replication could not start.
#[derive(Debug, thiserror::Error)]
pub enum ReplicateError {
    /// The HTTP client could not be built.
    #[error("cannot build an HTTP client: {0}")]
    Client(String),
    /// The source refused to take the target as its synchronous replica.
    #[error("cannot make {url} replicate synchronously ({reason}); is it a resil demo app?")]
    SetReplica { url: String, reason: String },
}

impl ReplicatePlan {
    /// Checks the arguments: two different demo-app URLs, a poll and a timeout above zero.
    pub fn from_args(args: &ReplicateArgs) -> anyhow::Result<ReplicatePlan> {
        let from = parse_region(&format!("--from={}", args.from), args.allow_remote)?;
        let to = parse_region(&format!("--to={}", args.to), args.allow_remote)?;
        if from.base == to.base {
            bail!(
                "--from and --to are the same demo app ({}): give two regions",
                from.base
            );
        }
        for (name, url) in [("--from", &from.base), ("--to", &to.base)] {
            let path = url.splitn(4, '/').nth(3).unwrap_or("");
            if !path.is_empty() {
                bail!("{name} {url:?}: give the demo app's base URL (http://HOST:PORT), no path");
            }
        }
        if args.poll.is_zero() || args.timeout.is_zero() {
            bail!("--poll and --timeout must be above zero");
        }
        if args.duration.is_some_and(|d| d.is_zero()) {
            bail!("--duration must be above zero (leave it out to run until Ctrl-C)");
        }
        Ok(ReplicatePlan {
            from: from.base,
            to: to.base,
            lag: args.lag,
            sync: args.sync,
            poll: args.poll,
            timeout: args.timeout,
            duration: args.duration,
        })
    }
}

/// `resil replicate ...`: runs until Ctrl-C (or SIGTERM) or `--duration`, a progress line a second on
/// stderr, the figures on stdout at the end.
pub async fn command(args: ReplicateArgs, _global: &GlobalArgs) -> anyhow::Result<Exit> {
    let plan = ReplicatePlan::from_args(&args)?;
    eprintln!(
        "Replicating {} → {} ({}); Ctrl-C stops.",
        plan.from,
        plan.to,
        match plan.sync {
            true => "synchronous: the source acknowledges after the copy".to_string(),
            false => format!("asynchronous, lag {}", humantime::format_duration(plan.lag)),
        }
    );
    let cancel = CancellationToken::new();
    let stopper = {
        let cancel = cancel.clone();
        tokio::spawn(async move {
            resil_common::exit::interrupted().await;
            cancel.cancel();
        })
    };
    let mut last_line = std::time::Instant::now();
    let report = engine::run(&plan, cancel.clone(), |r| {
        if last_line.elapsed() >= Duration::from_secs(1) {
            last_line = std::time::Instant::now();
            eprintln!("{}", progress_line(r));
        }
    })
    .await?;
    stopper.abort();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("{}", summary(&report));
    }
    Ok(match cancel.is_cancelled() {
        true => Exit::Interrupted,
        false => Exit::Ok,
    })
}

/// The figures in one line (the progress each second; a scenario's timeline note).
pub fn progress_line(r: &ReplicaReport) -> String {
    format!(
        "copied {}{} (up to seq {} of {}), {} pending, {}{}{}",
        r.copied,
        match r.held_already {
            0 => String::new(),
            n => format!(" + {n} held already"),
        },
        r.replicated_seq,
        r.source_seq,
        r.pending,
        match timed(r) {
            true => format!("lag {} ms (max {} ms)", r.lag_last_ms, r.lag_max_ms),
            false => "no lag measured".to_string(),
        },
        match r.source_restarts {
            0 => String::new(),
            n => format!(", source restarted {n}×"),
        },
        r.last_error
            .as_ref()
            .map(|e| format!("; last error: {e}"))
            .unwrap_or_default()
    )
}

/// Whether the lag figures measure anything: a write made while it ran, copied by it.
fn timed(r: &ReplicaReport) -> bool {
    r.copied > r.caught_up
}

/// The final figures as text.
pub fn summary(r: &ReplicaReport) -> String {
    format!(
        "copied       {} writes, {} bytes{}\n\
         replicated   up to seq {} of the source's {} ({} pending)\n\
         lag          {}\n\
         errors       {} reading the source, {} writing the target{}\n\
         mode         {}, ran {:.1} s",
        r.copied,
        r.bytes,
        match (r.caught_up, r.held_already) {
            (0, 0) => String::new(),
            (c, 0) => format!(" ({c} of them made before it started)"),
            (0, h) => format!(" ({h} more copied by the source before acknowledging)"),
            (c, h) => format!(
                " ({c} of them made before it started; {h} more copied by the source before \
                 acknowledging)"
            ),
        },
        r.replicated_seq,
        r.source_seq,
        r.pending,
        match timed(r) {
            true => format!(
                "last {} ms, mean {} ms, max {} ms",
                r.lag_last_ms, r.lag_mean_ms, r.lag_max_ms
            ),
            false => "none measured: no write made while it ran was copied by it".to_string(),
        },
        r.source_errors,
        r.target_errors,
        r.last_error
            .as_ref()
            .map(|e| format!(" (last: {e})"))
            .unwrap_or_default(),
        if r.sync {
            "synchronous"
        } else {
            "asynchronous"
        },
        r.elapsed_ms as f64 / 1000.0
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        args: ReplicateArgs,
    }

    fn plan(argv: &[&str]) -> anyhow::Result<ReplicatePlan> {
        let t = T::try_parse_from(std::iter::once("t").chain(argv.iter().copied()))?;
        ReplicatePlan::from_args(&t.args)
    }

    #[test]
    fn a_plan_needs_two_different_loopback_demo_apps() {
        let ok = plan(&[
            "--from",
            "http://127.0.0.1:1/",
            "--to",
            "http://127.0.0.1:2",
            "--lag",
            "1s",
        ])
        .unwrap();
        assert_eq!(ok.from, "http://127.0.0.1:1");
        assert_eq!(ok.lag, Duration::from_secs(1));
        let same = plan(&[
            "--from",
            "http://127.0.0.1:1",
            "--to",
            "http://127.0.0.1:1/",
        ]);
        assert!(same.unwrap_err().to_string().contains("same demo app"));
        let remote = plan(&["--from", "http://10.0.0.1:1", "--to", "http://127.0.0.1:2"]);
        assert!(remote.unwrap_err().to_string().contains("--allow-remote"));
        let path = plan(&[
            "--from",
            "http://127.0.0.1:1/kv",
            "--to",
            "http://127.0.0.1:2",
        ]);
        assert!(path.unwrap_err().to_string().contains("no path"));
        assert!(
            plan(&[
                "--from",
                "http://127.0.0.1:1",
                "--to",
                "http://127.0.0.1:2",
                "--sync",
                "--lag",
                "1s"
            ])
            .is_err()
        );
    }
}
