//! The load engine: open and closed models, HDR statistics, a per-second timeline,
//! per-colour attribution and client-observed downtime. Needs no cluster: it takes a URL.
//!
//! `resil load` goes `LoadArgs` → [`LoadPlan`] ([`plan`]) → [`run`] ([`engine`]) →
//! render ([`render`], [`report`]). The engine is a library function so the scenario
//! runner and tests call it in-process; only [`command`] prints.
//!
//! Definitions (also in the help):
//! - *error*: a transport failure (connect, reset), a timeout, a 5xx or a malformed
//!   response. 4xx answers are counted (`error_kinds.http_4xx`) but are not errors: the
//!   service answered. `error_rate` = errors ÷ requests.
//! - *downtime episode*: from the first error to the first success (2xx/3xx) after it,
//!   across all connections.
//! - *latency*: request sent to whole response read; in the open model from the
//!   *intended* send time (coordinated-omission corrected), the uncorrected figure kept
//!   beside it. Requests without a response are counted, not timed.

pub mod collector;
pub mod coordinator;
pub mod engine;
pub mod http;
pub mod plan;
pub mod render;
pub mod report;
pub mod schedule;
pub mod stats;
pub mod wire;
pub mod worker;
pub mod writes;
/// `--fail-on`, judged with every other verdict in [`crate::judge`].
pub use crate::judge::fail_on as thresholds;

use std::net::SocketAddr;

use anyhow::Context;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub use engine::run;
pub use plan::{LoadPlan, Pace, RampStage, Segment, Stop};
pub use report::LoadReport;

use crate::Exit;
use crate::cli::{GlobalArgs, LoadArgs, StateFormat};
use crate::results::RunDir;

/// What can stop a load run from starting or finishing. Per-request failures are not
/// errors: they are counted in the report.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The URL does not parse or is not plain http.
    #[error("invalid URL {url:?}: {reason}")]
    InvalidUrl { url: String, reason: String },
    /// More than one of `--concurrency`, `--rate`, `--ramp`.
    #[error("choose one of --concurrency (closed model), --rate or --ramp (open model)")]
    ConflictingPace,
    /// `--concurrency 0`.
    #[error("--concurrency must be at least 1")]
    InvalidConcurrency,
    /// A rate that is zero, negative or not a number.
    #[error("invalid --rate {rate}: give requests per second greater than 0 (e.g. --rate 500)")]
    InvalidRate { rate: String },
    /// A ramp that does not parse.
    #[error("invalid --ramp {ramp:?}: {reason}; write stages like 10s:100,30s:1000")]
    InvalidRamp { ramp: String, reason: String },
    /// A `--header` that is not `Name: value`.
    #[error("invalid --header {header:?}: write it as 'Name: value'")]
    InvalidHeader { header: String },
    /// A method with characters HTTP does not allow.
    #[error("invalid --method {method:?}: use a method like GET, POST or HEAD")]
    InvalidMethod { method: String },
    /// Neither `--duration` nor `--requests`.
    #[error(
        "an unbounded run is refused: give --duration (e.g. -d 30s) and/or --requests (e.g. -r 10000)"
    )]
    Unbounded,
    /// `--duration 0s` or `--requests 0`.
    #[error("nothing to do: --duration and --requests must be greater than 0")]
    EmptyRun,
    /// `--timeout 0s`.
    #[error("--timeout must be greater than 0")]
    InvalidTimeout,
    /// `--threads 0`.
    #[error("--threads must be at least 1")]
    InvalidThreads,
    /// `--max-connections` below the thread count.
    #[error("--max-connections must be at least the number of threads ({threads})")]
    InvalidMaxConnections { threads: usize },
    /// A `--fail-on` expression that does not parse.
    #[error(
        "invalid --fail-on {expr:?}: {reason}; valid keys: {}",
        thresholds::VALID_KEYS
    )]
    InvalidThreshold { expr: String, reason: String },
    /// The target's host name does not resolve.
    #[error("cannot resolve {host}")]
    Resolve {
        host: String,
        #[source]
        source: std::io::Error,
    },
    /// The target refused or did not answer the first connection.
    #[error(
        "cannot reach {addr}: {reason}; check the URL (the default {} is the lab's NodePort: \
         start it with `resil lab up && resil deploy`)",
        plan::DEFAULT_URL
    )]
    Unreachable { addr: SocketAddr, reason: String },
    /// A worker thread or its runtime could not be started.
    #[error("cannot start a load worker thread")]
    Thread {
        #[source]
        source: std::io::Error,
    },
    /// A worker thread panicked; its figures are lost.
    #[error("a load worker thread panicked")]
    WorkerPanicked,
    /// `--write-ratio` outside (0, 1].
    #[error(
        "invalid --write-ratio {ratio}: give the fraction of requests that write, from 0 to 1 (e.g. 0.2)"
    )]
    InvalidWriteRatio { ratio: String },
    /// `--write-ratio` with `--workers`: acknowledgements are logged by this process only.
    #[error("--write-ratio needs the load to run here: leave out --workers")]
    WritesWithWorkers,
    /// `--workers 0`.
    #[error("--workers must be at least 1")]
    InvalidWorkers,
    /// The worker pods of `--workers` could not be started or followed.
    #[error("the load workers: {0}")]
    Workers(String),
}

impl From<thresholds::InvalidThreshold> for LoadError {
    fn from(e: thresholds::InvalidThreshold) -> LoadError {
        LoadError::InvalidThreshold {
            expr: e.expr,
            reason: e.reason,
        }
    }
}

/// `resil load`: plan, run with a progress line (from worker pods with `--workers`),
/// write `--out`, print the summary, judge `--fail-on`.
pub async fn command(args: LoadArgs, global: &GlobalArgs) -> anyhow::Result<Exit> {
    let mut plan = LoadPlan::from_args(&args)?;
    for warning in &plan.warnings {
        eprintln!("resil: warning: {warning}");
    }
    let mut metrics = crate::metrics::Metrics::new();
    let sink = metrics.register_load();
    let exporter = crate::metrics::serve_if_asked(&args.metrics, metrics).await?;
    if exporter.is_some() {
        plan.metrics = crate::metrics::load::LoadSink::to(sink);
    }
    // Worker pods are created on the cluster: a mutation, so through the guard.
    let target = match plan.workers {
        Some(_) => {
            let guard = crate::cluster::Guard::from_environment(&global.allow_context)?;
            let options = crate::cluster::ConnectOptions::from_global(global);
            Some(crate::cluster::connect(&options, Some(&guard)).await?)
        }
        None => None,
    };

    let cancel = CancellationToken::new();
    let on_signal = {
        let cancel = cancel.clone();
        tokio::spawn(async move {
            // Ctrl-C (or SIGTERM) stops the run; the engine returns what it measured,
            // marked partial.
            crate::exit::interrupted().await;
            cancel.cancel();
        })
    };

    let dir = match &args.out {
        Some(path) => {
            Some(RunDir::start(path).with_context(|| format!("creating {}", path.display()))?)
        }
        None => None,
    };
    let run_id = args
        .out
        .as_ref()
        .and_then(|p| p.file_name())
        .map_or_else(|| "load".to_string(), |n| n.to_string_lossy().into_owned());
    let meta = report::start_meta(&plan, &run_id);
    let mut timeline = match &dir {
        Some(d) => {
            d.write_meta(&meta).context("writing run.json")?;
            Some(d.timeline().context("opening timeline.jsonl")?)
        }
        None => None,
    };

    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut progress = render::Progress::new(plan.stop.duration);
    let consume = async {
        let mut write_error = None;
        while let Some(event) = rx.recv().await {
            progress.event(&event);
            if let Some(t) = timeline.as_mut()
                && let Err(e) = t.append(&event)
                && write_error.is_none()
            {
                write_error = Some(e);
            }
        }
        write_error
    };
    let load = async {
        match (&target, plan.workers) {
            (Some(t), Some(n)) => {
                coordinator::run(&plan, n, &t.client, &t.namespace, cancel.clone(), tx)
                    .await
                    .map(|d| (d.report, Some(d.workers)))
            }
            _ => run(&plan, cancel.clone(), tx).await.map(|r| (r, None)),
        }
    };
    let (result, write_error) = tokio::join!(load, consume);
    progress.finish();
    on_signal.abort();

    let (report, workers) = match result {
        Ok(done) => done,
        Err(err) => {
            if let Some(d) = &dir {
                let mut meta = meta;
                meta.status = crate::results::RunStatus::Partial;
                meta.partial_reason = Some(format!("error: {}", crate::cluster::error_chain(&err)));
                meta.ended_at = Some(crate::results::now_ms());
                let _ = d.write_meta(&meta);
            }
            return Err(err.into());
        }
    };
    if let Some(e) = write_error {
        return Err(anyhow::Error::new(e).context("appending to timeline.jsonl"));
    }
    if let Some(d) = &dir {
        report::write_results(d, meta, &report)
            .with_context(|| format!("writing results into {}", d.path().display()))?;
        if let Some(w) = &workers {
            coordinator::write_workers(d, w).context("writing workers.json")?;
            coordinator::mark_partial(d).context("writing run.json")?;
        }
    }
    let missed = workers.as_ref().and_then(coordinator::missed_reason);
    if let Some(why) = &missed {
        eprintln!("resil: warning: the run is partial: {why}");
    }

    let breaches = thresholds::check(&plan.thresholds, &report.summary);
    let mut stdout = std::io::stdout().lock();
    match args.output {
        StateFormat::Table => {
            render::table(&mut stdout, &report.summary, &breaches, report.interrupted)?
        }
        StateFormat::Json => {
            serde_json::to_writer_pretty(&mut stdout, &report.summary)?;
            std::io::Write::write_all(&mut stdout, b"\n")?;
        }
        StateFormat::Yaml => {
            let text = serde_saphyr::to_string(&report.summary)
                .map_err(|e| anyhow::anyhow!("rendering YAML: {e}"))?;
            std::io::Write::write_all(&mut stdout, text.as_bytes())?;
        }
    }
    drop(stdout);
    drop(exporter);
    for b in &breaches {
        eprintln!(
            "resil: threshold breached: {} (measured {})",
            b.threshold, b.actual
        );
    }

    Ok(if report.interrupted {
        Exit::Interrupted
    } else if missed.is_some() {
        // Figures without some of the run's load: no verdict is claimed from them.
        Exit::Error
    } else if !breaches.is_empty() {
        Exit::SloFailed
    } else {
        Exit::Ok
    })
}
