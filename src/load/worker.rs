//! `resil load-worker`: one segment of a distributed load run (`resil load --workers N`),
//! the command of each worker pod. It runs the engine on its [`Segment`] from the shared
//! start time and prints what it measures as [`wire::Line`]s on stdout, which the
//! coordinator reads through the pod log API (`coordinator.rs`); with `--figures`, also
//! the cumulative metrics figures the coordinator serves on its `--metrics-addr`.

use std::io::Write;
use std::sync::Arc;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use super::engine::{self, Tap};
use super::plan::{LoadPlan, Segment};
use super::wire::Line;
use crate::Exit;
use crate::cli::{LoadArgs, LoadWorkerArgs, StateFormat};
use crate::metrics::load::{LoadMetrics, LoadSink};

fn print(line: &Line) {
    let mut out = std::io::stdout().lock();
    // A closed stdout (the coordinator went away) ends nothing here: the run goes on.
    if let Ok(text) = serde_json::to_string(line) {
        let _ = writeln!(out, "{text}");
        let _ = out.flush();
    }
}

/// `resil load-worker`
pub async fn command(args: LoadWorkerArgs) -> anyhow::Result<Exit> {
    let count = args.spec.workers.unwrap_or(1).max(1);
    anyhow::ensure!(
        args.index < count,
        "--index {} is not below --workers {count}",
        args.index
    );
    let segment = Segment {
        index: args.index,
        count,
    };
    let load = LoadArgs {
        spec: args.spec,
        threads: Some(args.threads),
        max_connections: args.max_connections,
        out: None,
        fail_on: None,
        output: StateFormat::Json,
        metrics: Default::default(),
    };
    let mut plan = LoadPlan::from_args(&load)
        .context("the coordinator's arguments")?
        .for_segment(segment, args.start_at);
    // With `--figures`, the engine's threads publish into a local sink as they do for
    // `--metrics-addr`; its merged figures go out after every second.
    let figures = args.figures.then(|| Arc::new(LoadMetrics::default()));
    if let Some(sink) = &figures {
        plan.metrics = LoadSink::to(sink.clone());
    }
    let print_figures = || {
        if let Some(sink) = &figures {
            print(&Line::Figures(Box::new(sink.merged())));
        }
    };
    print(&Line::Hello {
        index: segment.index,
        count,
        started_at: args.start_at,
        pod: std::env::var("POD_NAME").unwrap_or_default(),
    });
    let cancel = CancellationToken::new();
    let on_signal = {
        let cancel = cancel.clone();
        tokio::spawn(async move {
            // The pod is deleted (SIGTERM): stop, and report what was measured.
            crate::exit::interrupted().await;
            cancel.cancel();
        })
    };
    let result = engine::drive(&plan, cancel, |_, tap| match tap {
        Tap::Second(bucket) => {
            print(&Line::second(bucket));
            print_figures();
        }
        Tap::Episode(episode) => print(&Line::episode(episode)),
        Tap::Recovery { episode, needed } => print(&Line::recovery(episode, needed)),
    })
    .await;
    on_signal.abort();
    match result {
        Ok(finished) => {
            // Every thread published its last figures when it ended.
            print_figures();
            print(&Line::done(
                &finished.collector,
                finished.elapsed,
                finished.interrupted,
            ));
            Ok(if finished.interrupted {
                Exit::Interrupted
            } else {
                Exit::Ok
            })
        }
        Err(e) => {
            print(&Line::Error {
                message: crate::cluster::error_chain(&e),
            });
            Err(e.into())
        }
    }
}
