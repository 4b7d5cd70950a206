//! `resil load --workers N`: this process coordinates, N worker pods send. It creates one
//! Indexed batch/v1 Job (`cluster::workers`) whose pods run `resil load-worker` with the
//! same arguments, a shared start time and their index as segment, follows each pod's log
//! for the [`wire`] lines, and merges them into one collector as if each worker were one
//! engine thread: seconds are released once every worker is past them, histograms are
//! added (HdrHistogram addition is exact), totals summed. The report, timeline and
//! results directory are those of a single generator, plus `workers.json` with each
//! worker's part.
//!
//! Downtime episodes are merged as the union of the workers' episodes (a moment is down
//! when any worker saw it down). With `--metrics-addr` the workers also send their
//! cumulative metrics figures once a second (`--figures`), published into the plan's
//! sink as one thread per worker, so `/metrics` counts the whole run's traffic; the
//! merged downtime episodes reach it at the end, once their union is known. A worker that dies, never starts or stops reporting is
//! closed where its seconds end; the seconds it missed are listed in `workers.json` and
//! make the run partial ([`partial_reason`]), so a smaller run is never passed off as
//! the whole one.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use hdrhistogram::Histogram;
use kube::{Client, ResourceExt};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc::{self, UnboundedSender};
use tokio_util::sync::CancellationToken;

use super::LoadError;
use super::collector::{Collector, percentiles};
use super::plan::{LoadPlan, Pace};
use super::report::{self, LoadReport};
use super::stats::{Episode, Message};
use super::wire::{self, Line};
use crate::cluster::workers::{WORKER_IMAGE, WorkerJob, job_manifest};
use crate::results::hdr::new_histogram;
use crate::results::summary::Percentiles;
use crate::results::{Event, RunDir};

/// How long before the shared start the Job is created: time for the pods to be
/// scheduled and started (a lab pod takes well under a second; a kind node with the
/// image loaded a few).
pub const START_LEAD: Duration = Duration::from_secs(5);
/// After the run's planned end (and its request timeout), how long the coordinator still
/// waits for workers' last lines before it deletes the Job.
const END_SLACK: Duration = Duration::from_secs(15);
/// After deleting the Job, how long the coordinator waits for the logs to end.
const DRAIN: Duration = Duration::from_secs(10);

/// The file with each worker's part of the run.
pub const WORKERS_FILE: &str = "workers.json";

/// Seconds `from..=to` of the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seconds {
    pub from: u64,
    pub to: u64,
}

/// One worker's part of the run (`workers.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerPart {
    pub index: u32,
    pub pod: Option<String>,
    pub requests: u64,
    pub errors: u64,
    /// Seconds it reported.
    pub seconds: u64,
    /// Seconds of the run it did not report (it died, or never started).
    pub missed: Vec<Seconds>,
    /// It sent its totals: it ran to its end.
    pub finished: bool,
    pub exit_code: Option<i32>,
    /// What went wrong, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
    pub latency: Percentiles,
}

/// `workers.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkersFile {
    /// The Job the workers ran as.
    pub job: String,
    pub started_at: DateTime<Utc>,
    pub workers: Vec<WorkerPart>,
}

/// A distributed run's result.
#[derive(Debug, Clone)]
pub struct Distributed {
    pub report: LoadReport,
    pub workers: WorkersFile,
}

/// The scenario runner's load: from here, or with `workers` from worker pods, their parts
/// written into `dir` as `workers.json`.
pub async fn run_here_or_on_workers(
    plan: &LoadPlan,
    client: &Client,
    namespace: &str,
    dir: &RunDir,
    cancel: CancellationToken,
    events: UnboundedSender<Event>,
) -> Result<LoadReport, LoadError> {
    let Some(n) = plan.workers else {
        return super::run(plan, cancel, events).await;
    };
    let done = run(plan, n, client, namespace, cancel, events).await?;
    if let Err(e) = write_workers(dir, &done.workers) {
        tracing::warn!("writing {WORKERS_FILE}: {e}");
    }
    Ok(done.report)
}

/// Why a distributed run is partial: the workers that missed seconds.
pub fn missed_reason(file: &WorkersFile) -> Option<String> {
    let missing: Vec<String> = file
        .workers
        .iter()
        .filter(|w| !w.missed.is_empty() || !w.finished)
        .map(|w| {
            if w.missed.is_empty() {
                return format!("worker {} ended without its totals", w.index);
            }
            let spans: Vec<String> = w
                .missed
                .iter()
                .map(|s| {
                    if s.from == s.to {
                        format!("{}", s.from)
                    } else {
                        format!("{}-{}", s.from, s.to)
                    }
                })
                .collect();
            format!("worker {} missed seconds {}", w.index, spans.join(","))
        })
        .collect();
    (!missing.is_empty()).then(|| missing.join("; "))
}

/// Writes `workers.json` into `dir`.
pub fn write_workers(dir: &RunDir, file: &WorkersFile) -> Result<(), crate::results::ResultsError> {
    let path = dir.file(WORKERS_FILE);
    let text = serde_json::to_vec_pretty(file).unwrap_or_default();
    crate::atomic::write(&path, &text)
        .map_err(|source| crate::results::ResultsError::Io { path, source })
}

/// Why the run in `dir` is partial because of its workers (`None`: not distributed, or
/// every worker reported every second).
pub fn partial_reason(dir: &Path) -> Option<String> {
    let text = std::fs::read(dir.join(WORKERS_FILE)).ok()?;
    let file: WorkersFile = serde_json::from_slice(&text).ok()?;
    missed_reason(&file)
}

/// Marks the run in `dir` partial when a worker missed seconds (`run.json` written last by
/// the caller keeps its own reason first).
pub fn mark_partial(dir: &RunDir) -> Result<(), crate::results::ResultsError> {
    let Some(why) = partial_reason(dir.path()) else {
        return Ok(());
    };
    let mut meta = dir.read_meta()?;
    meta.status = crate::results::RunStatus::Partial;
    meta.partial_reason = Some(match meta.partial_reason.take() {
        Some(earlier) => format!("{earlier}; {why}"),
        None => why,
    });
    dir.write_meta(&meta)
}

/// The arguments every worker pod gets (its index comes from `JOB_COMPLETION_INDEX`).
pub fn worker_args(
    plan: &LoadPlan,
    ramp: Option<&str>,
    workers: u32,
    start_at: DateTime<Utc>,
) -> Vec<String> {
    let mut a: Vec<String> = vec![plan.url.clone()];
    let mut flag = |name: &str, value: String| {
        a.push(format!("--{name}"));
        a.push(value);
    };
    if let Some(d) = plan.stop.duration {
        flag("duration", format!("{}ms", d.as_millis()));
    }
    if let Some(r) = plan.stop.requests {
        flag("requests", r.to_string());
    }
    match &plan.pace {
        Pace::Closed { concurrency } => flag("concurrency", concurrency.to_string()),
        Pace::Rate(r) => flag("rate", r.to_string()),
        Pace::Ramp(stages) => flag(
            "ramp",
            ramp.map(str::to_string).unwrap_or_else(|| {
                stages
                    .iter()
                    .map(|s| format!("{}ms:{}", s.duration.as_millis(), s.rate))
                    .collect::<Vec<_>>()
                    .join(",")
            }),
        ),
    }
    flag("method", plan.request.method.clone());
    for (name, value) in &plan.request.headers {
        flag("header", format!("{name}: {value}"));
    }
    if let Some(body) = &plan.request.body {
        flag("body", String::from_utf8_lossy(body).into_owned());
    }
    flag("timeout", format!("{}ms", plan.timeout.as_millis()));
    flag("recovery-successes", plan.recovery_successes.to_string());
    flag("workers", workers.to_string());
    flag("threads", plan.threads.to_string());
    flag("max-connections", plan.max_connections.to_string());
    flag(
        "start-at",
        start_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    );
    if !plan.keepalive {
        a.push("--no-keepalive".into());
    }
    if plan.metrics.get().is_some() {
        a.push("--figures".into());
    }
    a
}

/// What a worker's follower task reports.
enum Msg {
    Pod(u32, String),
    Line(u32, Line),
    /// The log ended (the pod finished, died, or never started).
    Ended {
        index: u32,
        exit_code: Option<i32>,
        problem: Option<String>,
    },
}

/// Runs `plan` from `workers` pods in `namespace`, sending the merged seconds and
/// episodes on `events` like the engine does; `cancel` stops it (the Job is deleted).
pub async fn run(
    plan: &LoadPlan,
    workers: u32,
    client: &Client,
    namespace: &str,
    cancel: CancellationToken,
    events: UnboundedSender<Event>,
) -> Result<Distributed, LoadError> {
    let started_at = Utc::now() + chrono::Duration::from_std(START_LEAD).unwrap_or_default();
    let args = worker_args(plan, None, workers, started_at);
    let name = format!("resil-load-{}", short_id());
    let manifest = job_manifest(&name, workers, WORKER_IMAGE, &args);
    let job = WorkerJob::create(client, namespace, &manifest)
        .await
        .map_err(|e| LoadError::Workers(crate::cluster::error_chain(&e)))?;
    if let Some(m) = plan.metrics.get() {
        m.begin_run();
    }
    let (tx, rx) = mpsc::unbounded_channel();
    let run_for = plan.stop.duration.unwrap_or(Duration::from_secs(3600));
    let start_deadline = tokio::time::Instant::now() + START_LEAD + run_for;
    for index in 0..workers {
        tokio::spawn(follow(job.clone(), index, start_deadline, tx.clone()));
    }
    drop(tx);
    let end = tokio::time::Instant::now() + START_LEAD + run_for + plan.timeout + END_SLACK;
    let merged = merge(plan, workers, started_at, rx, &job, &cancel, end, &events).await;
    if let Err(e) = job.delete().await {
        tracing::warn!("{}", crate::cluster::error_chain(&e));
    }
    let (collector, parts, elapsed) = merged;
    let interrupted = cancel.is_cancelled();
    let window = match plan.stop.duration {
        Some(d) if !interrupted => elapsed.min(d.max(collector.last_sent)),
        _ => elapsed,
    };
    Ok(Distributed {
        report: report::build(plan, collector, started_at, elapsed, window, interrupted),
        workers: WorkersFile {
            job: job.name.clone(),
            started_at,
            workers: parts,
        },
    })
}

fn short_id() -> String {
    const SAFE: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    (0..5)
        .map(|_| char::from(SAFE[rand::random_range(0..SAFE.len())]))
        .collect()
}

/// Follows worker `index`: waits for its pod, reads its log to the end.
async fn follow(
    job: WorkerJob,
    index: u32,
    deadline: tokio::time::Instant,
    tx: UnboundedSender<Msg>,
) {
    let ended = |exit_code, problem| Msg::Ended {
        index,
        exit_code,
        problem,
    };
    let pod = match job.started_pod(index, deadline).await {
        Ok(Some(pod)) => pod.name_any(),
        Ok(None) => {
            let _ = tx.send(ended(None, Some("its pod never started".into())));
            return;
        }
        Err(e) => {
            let _ = tx.send(ended(None, Some(crate::cluster::error_chain(&e))));
            return;
        }
    };
    let _ = tx.send(Msg::Pod(index, pod.clone()));
    let mut problem = None;
    match job.follow(&pod).await {
        Ok(lines) => {
            let mut lines = std::pin::pin!(lines);
            while let Some(line) = lines.next().await {
                match line {
                    Ok(text) if text.len() <= wire::MAX_LINE => {
                        // Anything else the pod prints (a panic, a warning) is not ours.
                        if let Ok(line) = serde_json::from_str::<Line>(&text) {
                            let _ = tx.send(Msg::Line(index, line));
                        }
                    }
                    Ok(_) => {}
                    Err(e) => {
                        problem = Some(format!("reading its log: {e}"));
                        break;
                    }
                }
            }
        }
        Err(e) => problem = Some(crate::cluster::error_chain(&e)),
    }
    // The log ends when the container does; its status may trail by a moment.
    let mut exit_code = None;
    for _ in 0..20 {
        if let Some(end) = job.end_of(&pod).await {
            exit_code = end.exit_code;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = tx.send(ended(exit_code, problem));
}

/// What the coordinator knows of one worker while it runs.
struct Tracked {
    pod: Option<String>,
    seconds: BTreeSet<u64>,
    requests: u64,
    errors: u64,
    latency: Histogram<u64>,
    finished: bool,
    elapsed: Duration,
    ended: bool,
    exit_code: Option<i32>,
    problem: Option<String>,
}

impl Tracked {
    fn new() -> Tracked {
        Tracked {
            pod: None,
            seconds: BTreeSet::new(),
            requests: 0,
            errors: 0,
            latency: new_histogram(),
            finished: false,
            elapsed: Duration::ZERO,
            ended: false,
            exit_code: None,
            problem: None,
        }
    }
}

/// Merges the workers' lines until every log ended (or `end`, or `cancel`, after which
/// the Job is deleted and the logs drain); returns the collector, each worker's part and
/// the run's elapsed time.
#[allow(clippy::too_many_arguments)]
async fn merge(
    plan: &LoadPlan,
    workers: u32,
    started_at: DateTime<Utc>,
    mut rx: mpsc::UnboundedReceiver<Msg>,
    job: &WorkerJob,
    cancel: &CancellationToken,
    end: tokio::time::Instant,
    events: &UnboundedSender<Event>,
) -> (Collector, Vec<WorkerPart>, Duration) {
    let n = workers as usize;
    let mut collector = Collector::new(n);
    let mut tracked: Vec<Tracked> = (0..n).map(|_| Tracked::new()).collect();
    let mut episodes = Episodes::default();
    let mut stopping: Option<tokio::time::Instant> = None;
    let emit = |buckets: Vec<super::stats::Bucket>| {
        for b in buckets {
            let _ = events.send(report::bucket_event(started_at, &b));
        }
    };
    loop {
        let wake = stopping.unwrap_or(end);
        let msg = tokio::select! {
            msg = rx.recv() => msg,
            // Ctrl-C, or the run's stop: delete the pods, then drain their last lines.
            _ = cancel.cancelled(), if stopping.is_none() => {
                stopping = Some(tokio::time::Instant::now() + DRAIN);
                let _ = job.delete().await;
                continue;
            }
            // Past the planned end (or the drain): stop waiting.
            _ = tokio::time::sleep_until(wake) => {
                if stopping.is_some() {
                    break;
                }
                stopping = Some(tokio::time::Instant::now() + DRAIN);
                let _ = job.delete().await;
                continue;
            }
        };
        let Some(msg) = msg else { break };
        match msg {
            Msg::Pod(i, pod) => tracked[i as usize].pod = Some(pod),
            // A worker's cumulative figures replace its previous ones, as a thread's do.
            Msg::Line(i, Line::Figures(snapshot)) => {
                if let Some(m) = plan.metrics.get() {
                    m.publish(i as usize, *snapshot);
                }
            }
            Msg::Line(i, line) => {
                let (i, t) = (i as usize, &mut tracked[i as usize]);
                if t.finished || i >= n {
                    continue;
                }
                emit(take_line(&mut collector, &mut episodes, t, i, line));
            }
            Msg::Ended {
                index,
                exit_code,
                problem,
            } => {
                let t = &mut tracked[index as usize];
                t.ended = true;
                t.exit_code = exit_code;
                if t.problem.is_none() {
                    t.problem = problem;
                }
                emit(collector.close_thread(index as usize));
            }
        }
    }
    // Workers still silent (the drain ran out) are closed where they are.
    for i in 0..n {
        emit(collector.close_thread(i));
    }
    for e in union(episodes.downtime) {
        if let (Some(m), Some(end)) = (plan.metrics.get(), e.ended) {
            m.episode_ended(end.saturating_sub(e.started));
        }
        if collector.record_episode(e) {
            let _ = events.send(report::downtime_event(started_at, &e));
        }
    }
    // The clients as a whole recovered when the last of them did.
    for e in union(episodes.recovery)
        .into_iter()
        .take(super::stats::MAX_EPISODES)
    {
        let needed = plan.recovery_successes;
        let _ = events.send(report::recovery_event(started_at, &e, needed));
    }
    let elapsed = tracked
        .iter()
        .map(|t| t.elapsed)
        .max()
        .filter(|e| !e.is_zero())
        .unwrap_or_else(|| (Utc::now() - started_at).to_std().unwrap_or_default());
    let parts = parts(plan, &collector, tracked);
    (collector, parts, elapsed)
}

/// The workers' downtime and recovery episodes, each kind merged by [`union`] at the end.
#[derive(Default)]
struct Episodes {
    downtime: Vec<Episode>,
    recovery: Vec<Episode>,
}

/// One line of worker `i`: its seconds and totals into the collector (returning the
/// seconds released), its episodes kept for the union.
fn take_line(
    collector: &mut Collector,
    episodes: &mut Episodes,
    t: &mut Tracked,
    i: usize,
    line: Line,
) -> Vec<super::stats::Bucket> {
    match &line {
        Line::Second { .. } => match wire::bucket_of(&line) {
            Ok(Some(bucket)) if !t.seconds.contains(&bucket.second) => {
                t.seconds.insert(bucket.second);
                t.requests += bucket.requests;
                t.errors += bucket.errors;
                let _ = t.latency.add(&bucket.latency);
                let next = bucket.second + 1;
                collector.accept(Message::Bucket {
                    thread: i,
                    bucket: Some(bucket),
                    next,
                })
            }
            Ok(_) => Vec::new(),
            Err(e) => {
                t.problem = Some(format!("an unreadable line: {e}"));
                Vec::new()
            }
        },
        Line::Episode {
            started_us,
            ended_us,
            failed_requests,
        } => {
            episodes.downtime.push(Episode {
                started: Duration::from_micros(*started_us),
                ended: ended_us.map(Duration::from_micros),
                failed_requests: *failed_requests,
            });
            Vec::new()
        }
        Line::Recovery {
            started_us,
            ended_us,
            failed_requests,
            ..
        } => {
            episodes.recovery.push(Episode {
                started: Duration::from_micros(*started_us),
                ended: ended_us.map(Duration::from_micros),
                failed_requests: *failed_requests,
            });
            Vec::new()
        }
        Line::Done(totals) => match totals.thread_totals() {
            Ok(totals_in) => {
                t.finished = true;
                t.elapsed = Duration::from_micros(totals.elapsed_us);
                let _ = collector.accept(Message::Done {
                    thread: i,
                    totals: Box::new(totals_in),
                });
                collector.close_thread(i)
            }
            Err(e) => {
                t.problem = Some(format!("unreadable totals: {e}"));
                Vec::new()
            }
        },
        Line::Error { message } => {
            t.problem = Some(message.clone());
            Vec::new()
        }
        Line::Hello { .. } | Line::Figures(_) => Vec::new(),
    }
}

/// The union of episodes that overlap (an open one runs to the end), their failed
/// requests summed, in time order.
pub fn union(mut episodes: Vec<Episode>) -> Vec<Episode> {
    episodes.sort_by_key(|e| e.started);
    let mut out: Vec<Episode> = Vec::new();
    for e in episodes {
        match out.last_mut() {
            Some(last) if last.ended.is_none_or(|end| e.started <= end) => {
                last.ended = match (last.ended, e.ended) {
                    (Some(a), Some(b)) => Some(a.max(b)),
                    _ => None,
                };
                last.failed_requests += e.failed_requests;
            }
            _ => out.push(e),
        }
    }
    out
}

/// Each worker's part; a worker that did not finish missed the seconds of the run it did
/// not report.
fn parts(plan: &LoadPlan, collector: &Collector, tracked: Vec<Tracked>) -> Vec<WorkerPart> {
    let seen_last = tracked
        .iter()
        .filter_map(|t| t.seconds.iter().next_back().copied())
        .max();
    let planned_last = plan
        .stop
        .duration
        .map(|d| d.as_secs_f64().ceil() as u64)
        .filter(|s| *s > 0)
        .map(|s| s - 1);
    let last = planned_last.or(seen_last).unwrap_or(0);
    let _ = collector;
    tracked
        .into_iter()
        .enumerate()
        .map(|(index, t)| {
            let missed = if t.finished {
                Vec::new()
            } else {
                spans((0..=last).filter(|s| !t.seconds.contains(s)))
            };
            let problem = t.problem.or_else(|| {
                (!t.finished).then(|| match t.exit_code {
                    Some(code) => format!("its pod ended with exit code {code} before its totals"),
                    None => "it stopped reporting".to_string(),
                })
            });
            WorkerPart {
                index: index as u32,
                pod: t.pod,
                requests: t.requests,
                errors: t.errors,
                seconds: t.seconds.len() as u64,
                missed,
                finished: t.finished,
                exit_code: t.exit_code,
                problem,
                latency: percentiles(&t.latency),
            }
        })
        .collect()
}

/// Sorted seconds as spans.
fn spans(seconds: impl Iterator<Item = u64>) -> Vec<Seconds> {
    let mut out: Vec<Seconds> = Vec::new();
    for s in seconds {
        match out.last_mut() {
            Some(span) if span.to + 1 == s => span.to = s,
            _ => out.push(Seconds { from: s, to: s }),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(s: u64, e: Option<u64>, n: u64) -> Episode {
        Episode {
            started: Duration::from_secs(s),
            ended: e.map(Duration::from_secs),
            failed_requests: n,
        }
    }

    #[test]
    fn overlapping_episodes_of_two_workers_are_one_down_time() {
        let merged = union(vec![
            ep(5, Some(8), 3),
            ep(1, Some(2), 1),
            ep(6, Some(9), 4),
            ep(20, None, 2),
        ]);
        assert_eq!(
            merged,
            vec![ep(1, Some(2), 1), ep(5, Some(9), 7), ep(20, None, 2)]
        );
    }

    /// A worker's second as its line, with these latencies (µs).
    fn second_line(second: u64, latencies: &[u64]) -> Line {
        let mut b = super::super::stats::Bucket::empty(second);
        for v in latencies {
            b.latency.record(*v).unwrap();
            b.requests += 1;
        }
        Line::second(&b)
    }

    #[test]
    fn merged_workers_give_the_percentiles_of_one_histogram_of_every_request() {
        let mut collector = Collector::new(2);
        let mut episodes = Episodes::default();
        let mut tracked: Vec<Tracked> = (0..2).map(|_| Tracked::new()).collect();
        let (a, b): (Vec<u64>, Vec<u64>) = (
            (1..=500).map(|i| i * 37).collect(),
            (1..=300).map(|i| i * i).collect(),
        );
        let mut released = Vec::new();
        for (i, values) in [&a, &b].into_iter().enumerate() {
            for (s, chunk) in values.chunks(100).enumerate() {
                released.extend(take_line(
                    &mut collector,
                    &mut episodes,
                    &mut tracked[i],
                    i,
                    second_line(s as u64, chunk),
                ));
            }
        }
        released.extend(collector.close_thread(0));
        released.extend(collector.close_thread(1));
        let mut one = new_histogram();
        for v in a.iter().chain(&b) {
            one.record(*v).unwrap();
        }
        assert_eq!(collector.overall, one);
        assert_eq!(percentiles(&collector.overall), percentiles(&one));
        // Every second once, in order, each with both workers' requests.
        let per_second: Vec<(u64, u64)> = released.iter().map(|b| (b.second, b.requests)).collect();
        assert_eq!(
            per_second,
            [(0, 200), (1, 200), (2, 200), (3, 100), (4, 100)]
        );
    }

    #[test]
    fn missed_seconds_read_as_spans() {
        let s = spans([0u64, 1, 2, 5, 7, 8].into_iter());
        assert_eq!(
            s,
            vec![
                Seconds { from: 0, to: 2 },
                Seconds { from: 5, to: 5 },
                Seconds { from: 7, to: 8 }
            ]
        );
        let file = WorkersFile {
            job: "j".into(),
            started_at: Utc::now(),
            workers: vec![WorkerPart {
                index: 1,
                pod: None,
                requests: 0,
                errors: 0,
                seconds: 0,
                missed: s,
                finished: false,
                exit_code: Some(137),
                problem: None,
                latency: Percentiles::default(),
            }],
        };
        assert_eq!(
            missed_reason(&file).unwrap(),
            "worker 1 missed seconds 0-2,5,7-8"
        );
    }

    #[test]
    fn every_worker_gets_the_same_arguments_and_the_shared_start() {
        let plan = LoadPlan::for_url(
            "http://127.0.0.1:30080/",
            Pace::Rate(200.0),
            super::super::Stop {
                requests: None,
                duration: Some(Duration::from_secs(3)),
            },
        )
        .unwrap();
        let at = DateTime::parse_from_rfc3339("2026-01-01T00:00:05Z")
            .unwrap()
            .with_timezone(&Utc);
        let args = worker_args(&plan, None, 2, at);
        let joined = args.join(" ");
        assert!(joined.contains("--rate 200 "), "{joined}");
        assert!(joined.contains("--duration 3000ms"), "{joined}");
        assert!(joined.contains("--workers 2"), "{joined}");
        assert!(
            joined.contains("--start-at 2026-01-01T00:00:05.000Z"),
            "{joined}"
        );
        let cli = <crate::cli::Cli as clap::Parser>::try_parse_from(
            ["resil", "load-worker"]
                .into_iter()
                .map(String::from)
                .chain(args)
                .chain(["--index".into(), "1".into()]),
        );
        assert!(cli.is_ok(), "{cli:?}");
    }
}
