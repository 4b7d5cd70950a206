//! The command layer's side of a run's [`Progress`]: each event the runner reports becomes
//! one line on stderr, worded as `resil run` has always worded it. Called by
//! `run::command` around each run ([`printed`]); the runner itself prints nothing.

use std::future::Future;

use tokio::sync::mpsc::{self, UnboundedSender};

use super::runner::Progress;
use crate::autoscale::{MAX_FAILED_TICKS, Report as AutoscaleReport};
use crate::watch::controller::Update;

/// Runs `run` with a progress channel and prints what it reports while it runs; returns
/// once the run is done and every line it reported is printed.
pub async fn printed<T, F, Fut>(run: F) -> T
where
    F: FnOnce(UnboundedSender<Progress>) -> Fut,
    Fut: Future<Output = T>,
{
    printed_observed(run, |_| {}).await
}

/// [`printed`], each event also handed to `observe` (the `--metrics-addr` sink).
pub async fn printed_observed<T, F, Fut>(run: F, observe: impl FnMut(&Progress)) -> T
where
    F: FnOnce(UnboundedSender<Progress>) -> Fut,
    Fut: Future<Output = T>,
{
    relay_observed(run, observe, |line| eprintln!("{line}")).await
}

/// [`printed`] with the lines going to `out`.
#[cfg(test)]
async fn relay<T, F, Fut>(run: F, out: impl FnMut(String)) -> T
where
    F: FnOnce(UnboundedSender<Progress>) -> Fut,
    Fut: Future<Output = T>,
{
    relay_observed(run, |_| {}, out).await
}

/// Each event to `observe`, then its line to `out`.
async fn relay_observed<T, F, Fut>(
    run: F,
    mut observe: impl FnMut(&Progress),
    mut out: impl FnMut(String),
) -> T
where
    F: FnOnce(UnboundedSender<Progress>) -> Fut,
    Fut: Future<Output = T>,
{
    let (tx, mut rx) = mpsc::unbounded_channel();
    let run = run(tx);
    tokio::pin!(run);
    let result = loop {
        tokio::select! {
            // Print as it happens.
            Some(progress) = rx.recv() => {
                observe(&progress);
                out_line(&progress, &mut out);
            }
            // The run is over. A task it left behind on an error may still hold a
            // sender, so the end of the run, not the channel's, ends the printing.
            result = &mut run => break result,
        }
    };
    rx.close();
    while let Ok(progress) = rx.try_recv() {
        observe(&progress);
        out_line(&progress, &mut out);
    }
    result
}

fn out_line(progress: &Progress, out: &mut impl FnMut(String)) {
    if let Some(line) = line(progress) {
        out(line);
    }
}

/// The line an event prints (`None`: nothing worth a line, e.g. an autoscaler round that
/// changed nothing).
pub fn line(progress: &Progress) -> Option<String> {
    Some(match progress {
        Progress::Watch(Update::Decision { rule, action }) => format!("watch [{rule}] {action}"),
        Progress::Watch(Update::Warning(w)) => format!("watch warning: {w}"),
        Progress::Watch(Update::Failover(f)) => format!(
            "watch: {} {} → {} in {} ms",
            f.direction, f.from, f.to, f.duration_ms
        ),
        Progress::Watch(Update::Snapshot(_)) => return None,
        Progress::Injected {
            step, detail, id, ..
        } => format!("step {step}: {detail} ({id})"),
        Progress::TimedReverted { .. } => return None,
        Progress::WaitTimedOut { event, timeout } => format!(
            "wait-for {event:?}: none within {}",
            humantime::format_duration(*timeout)
        ),
        Progress::StepFailed(why) => format!("step failed: {why}; stopping the run"),
        Progress::Rollout(line) => format!("rollout: {line}"),
        Progress::Stopping(why) => format!("abort: {why}; stopping the run and reverting"),
        Progress::Autoscale(AutoscaleReport::Tick(tick)) => match (&tick.plan, tick.patched) {
            (Some(plan), true) => format!("autoscale: {} — {}", plan.action, plan.rule),
            _ => return None,
        },
        Progress::Autoscale(AutoscaleReport::Failed { error, attempt }) => {
            format!("autoscale: tick failed ({attempt}/{MAX_FAILED_TICKS}): {error}")
        }
        Progress::AutoscaleRestored(min) => format!("autoscale: restored minReplicas to {min}"),
        Progress::AutoscaleFailed(e) => {
            format!("autoscale: {e:#} — run `resil chaos revert` to restore")
        }
        Progress::TaskFailed { task, error } => format!("{task}: {error}"),
        Progress::TimedRevertFailed { id, error } => format!("reverting {id}: {error:#}"),
        Progress::Reverted { action, id } => format!("reverted {action} ({id})"),
        Progress::RevertFailed { action, id, error } => {
            format!("could not revert {action} ({id}): {error:#} — run `resil chaos revert`")
        }
        Progress::JournalUnreadable(why) => format!("reading the chaos journal: {why}"),
        Progress::Regions(line) => line.clone(),
        Progress::Gateway(line) => format!("gateway: {line}"),
        Progress::Replicated(line) => format!("replication: {line}"),
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::run::scenario::WaitEvent;

    #[tokio::test]
    async fn every_line_is_printed_by_the_end_of_the_run_even_with_a_task_left_behind() {
        let mut lines = Vec::new();
        let ended = tokio::time::timeout(
            Duration::from_secs(5),
            relay(
                |tx| async move {
                    let left = tx.clone();
                    // A task the run leaves running (as after an error): it never ends.
                    tokio::spawn(async move {
                        let _held = left;
                        std::future::pending::<()>().await
                    });
                    let _ = tx.send(Progress::AutoscaleRestored(2));
                    let _ = tx.send(Progress::JournalUnreadable("denied".into()));
                    7
                },
                |line| lines.push(line),
            ),
        )
        .await;
        assert_eq!(ended.ok(), Some(7));
        assert_eq!(
            lines,
            [
                "autoscale: restored minReplicas to 2",
                "reading the chaos journal: denied"
            ]
        );
    }

    #[test]
    fn each_event_prints_the_line_resil_run_prints() {
        let cases = [
            (
                Progress::Injected {
                    step: 2,
                    detail: "killed 2 pod(s)".into(),
                    id: "f-1".into(),
                    open: false,
                },
                "step 2: killed 2 pod(s) (f-1)",
            ),
            (
                Progress::WaitTimedOut {
                    event: WaitEvent::Failback,
                    timeout: Duration::from_secs(30),
                },
                "wait-for Failback: none within 30s",
            ),
            (
                Progress::Stopping("error rate 60.0% > 50.0% in second 3".into()),
                "abort: error rate 60.0% > 50.0% in second 3; stopping the run and reverting",
            ),
            (
                Progress::RevertFailed {
                    action: "outage".into(),
                    id: "f-2".into(),
                    error: anyhow::anyhow!("gone").context("scaling web-blue"),
                },
                concat!(
                    "could not revert outage (f-2): scaling web-blue: gone — ",
                    "run `resil chaos revert`"
                ),
            ),
            (
                Progress::TaskFailed {
                    task: "watcher",
                    error: "lost the watch on pods: closed".into(),
                },
                "watcher: lost the watch on pods: closed",
            ),
        ];
        for (progress, want) in cases {
            assert_eq!(line(&progress).as_deref(), Some(want));
        }
        let warning = Progress::Watch(Update::Warning("no healthy colour".into()));
        assert_eq!(line(&warning).unwrap(), "watch warning: no healthy colour");
    }
}
