//! Statistics on the hot path: per-thread pre-aggregation that feeds the collector
//! (`collector.rs`, which owns the merged HDR histograms, timeline and episodes).
//!
//! Each worker thread records its requests into a [`ThreadStats`] (no locks, no
//! allocation per request) and hands the collector one finished bucket per second plus
//! its run totals at the end. The `Collector` merges buckets across threads, emits a
//! `LoadBucket` event once every thread is past a second, and builds the `LoadSummary`.
//! Downtime episodes need one order across threads, so they go through the small shared
//! [`DowntimeTracker`], touched only on failures and on the first success after one.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio::sync::mpsc::UnboundedSender;

use super::http::{Failure, Reply};
use crate::metrics::load::{ColorFigures, LoadMetrics, Snapshot};
use crate::results::hdr::new_histogram;
use crate::results::timeline::Served;

/// Sends that leave later than their intended time by more than this are counted late.
pub const LATE_AFTER: Duration = Duration::from_millis(1);

/// The colour (and pod) name used when a response names none.
pub const UNKNOWN: &str = "unknown";

/// Most downtime episodes kept in the summary and the timeline.
pub const MAX_EPISODES: usize = 1000;

/// Most distinct pod names tracked per thread; later ones are counted under `other`.
const MAX_PODS: usize = 1024;

/// How one request ended.
// A reply holds its four short header values inline (no allocation per request); it
// lives on the stack for one request and is never stored, so its size costs a copy.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, Copy)]
pub enum Outcome {
    Reply(Reply),
    Failed(Failure),
}

/// Error kinds, in the order of [`KIND_NAMES`].
const KIND_CONNECT: usize = 0;
const KIND_RESET: usize = 1;
const KIND_TIMEOUT: usize = 2;
const KIND_5XX: usize = 3;
const KIND_4XX: usize = 4;
const KIND_OTHER: usize = 5;
/// The names of error kinds in the summary's `error_kinds`.
pub const KIND_NAMES: [&str; 6] = [
    "connect", "reset", "timeout", "http_5xx", "http_4xx", "other",
];

/// Whether an outcome is a failure (counts as an error and towards downtime), a client
/// error (4xx: the service answered, so it is counted but is neither), or a success.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Success,
    ClientError,
    Failure(usize),
}

fn classify(outcome: &Outcome) -> Class {
    match outcome {
        Outcome::Reply(r) if r.status >= 500 => Class::Failure(KIND_5XX),
        Outcome::Reply(r) if r.status >= 400 => Class::ClientError,
        Outcome::Reply(_) => Class::Success,
        Outcome::Failed(Failure::Connect) => Class::Failure(KIND_CONNECT),
        Outcome::Failed(Failure::Reset) => Class::Failure(KIND_RESET),
        Outcome::Failed(Failure::Timeout) => Class::Failure(KIND_TIMEOUT),
        Outcome::Failed(Failure::Other) => Class::Failure(KIND_OTHER),
    }
}

/// A small intern table: name bytes → index, so counting by colour and pod costs no
/// allocation after a name's first appearance. Index 0 is always [`UNKNOWN`].
#[derive(Debug)]
struct Names {
    names: Vec<Box<[u8]>>,
    limit: usize,
}

impl Names {
    fn new(limit: usize) -> Names {
        Names {
            names: vec![UNKNOWN.as_bytes().into()],
            limit,
        }
    }

    fn id(&mut self, name: &[u8]) -> usize {
        if name.is_empty() {
            return 0;
        }
        if let Some(i) = self.names.iter().position(|n| &**n == name) {
            return i;
        }
        if self.names.len() >= self.limit {
            return self.id(b"other");
        }
        self.names.push(name.into());
        self.names.len() - 1
    }

    fn name(&self, id: usize) -> String {
        String::from_utf8_lossy(&self.names[id]).into_owned()
    }
}

/// One thread's (or, merged, the run's) figures for one second.
#[derive(Debug)]
pub struct Bucket {
    /// Seconds since the start of the run.
    pub second: u64,
    pub requests: u64,
    pub errors: u64,
    /// Latency (µs) of the responses that completed in this second.
    pub latency: Histogram<u64>,
    pub by_color: BTreeMap<String, Served>,
    pub by_pod: BTreeMap<String, Served>,
    /// Latency (µs) of each served-by colour's responses in this second.
    pub latency_by_color: BTreeMap<String, Histogram<u64>>,
}

impl Bucket {
    pub fn empty(second: u64) -> Bucket {
        Bucket {
            second,
            requests: 0,
            errors: 0,
            latency: new_histogram(),
            by_color: BTreeMap::new(),
            by_pod: BTreeMap::new(),
            latency_by_color: BTreeMap::new(),
        }
    }

    /// Adds another thread's figures for the same second.
    pub fn merge(&mut self, other: Bucket) {
        self.requests += other.requests;
        self.errors += other.errors;
        // Same bounds on both sides, so adding cannot fail.
        let _ = self.latency.add(&other.latency);
        for (k, v) in other.by_color {
            add_served(self.by_color.entry(k).or_default(), v);
        }
        for (k, v) in other.by_pod {
            add_served(self.by_pod.entry(k).or_default(), v);
        }
        for (k, h) in other.latency_by_color {
            match self.latency_by_color.entry(k) {
                std::collections::btree_map::Entry::Vacant(slot) => {
                    slot.insert(h);
                }
                // Same bounds on both sides, so adding cannot fail.
                std::collections::btree_map::Entry::Occupied(mut slot) => {
                    let _ = slot.get_mut().add(&h);
                }
            }
        }
    }
}

pub(super) fn add_served(into: &mut Served, from: Served) {
    into.requests += from.requests;
    into.errors += from.errors;
    into.timed += from.timed;
    into.latency_sum_us = into.latency_sum_us.saturating_add(from.latency_sum_us);
}

/// A thread's run totals, sent once when it finishes.
#[derive(Debug)]
pub struct ThreadTotals {
    pub requests: u64,
    pub successes: u64,
    pub errors: u64,
    pub late_sends: u64,
    /// Open model: sends dropped unsent because the run was over.
    pub dropped_sends: u64,
    /// When the thread's last request left, from the start of the run.
    pub last_sent: Duration,
    pub kinds: [u64; 6],
    pub status_codes: BTreeMap<u16, u64>,
    /// Latency from the actual send (open model; equals the corrected one when closed).
    pub uncorrected: Histogram<u64>,
    pub by_color: BTreeMap<String, (Served, Histogram<u64>)>,
    /// Per region the gateway named (`x-resil-gateway-region`); all under [`UNKNOWN`]
    /// when no answer named one.
    pub by_region: BTreeMap<String, (Served, Histogram<u64>)>,
}

/// What worker threads tell the collector.
#[derive(Debug)]
pub enum Message {
    /// A finished second; the thread will send nothing more for seconds before `next`.
    Bucket {
        thread: usize,
        bucket: Option<Bucket>,
        next: u64,
    },
    /// A downtime episode closed (offsets from the start of the run).
    Episode(Episode),
    /// A recovery episode closed: `ended` is the first of the successes in a row.
    Recovery(Episode),
    /// The thread's writes (`--write-ratio`), sent just before `Done`.
    Writes(Box<super::writes::ThreadWrites>),
    /// The thread is done.
    Done {
        thread: usize,
        totals: Box<ThreadTotals>,
    },
}

/// A downtime episode as offsets from the run's start.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Episode {
    pub started: Duration,
    pub ended: Option<Duration>,
    pub failed_requests: u64,
}

/// Client-observed downtime across all threads: the first failure opens an episode, the
/// first success after it closes it. 4xx responses neither open nor close one.
///
/// Beside it, recovery episodes: opened by the first failure like a downtime episode, but
/// closed only by `successes_needed` successes in a row (in the order the threads record
/// them), and ended at the first of those — the client's recovery time. Touched only
/// while one is open.
#[derive(Debug)]
pub struct DowntimeTracker {
    start: Instant,
    /// Lets the success path skip the lock while nothing is failing.
    down: AtomicBool,
    open: Mutex<Option<Episode>>,
    /// Successes in a row that end a recovery episode (at least 1).
    successes_needed: u32,
    recovering: AtomicBool,
    recovery: Mutex<Option<Recovering>>,
}

/// An open recovery episode.
#[derive(Debug)]
struct Recovering {
    episode: Episode,
    /// Successes in a row so far, and when the first of them ended.
    streak: u32,
    streak_started: Duration,
}

/// The default of `successes_needed`: ten successes in a row.
pub const RECOVERY_SUCCESSES: u32 = 10;

impl DowntimeTracker {
    pub fn new(start: Instant) -> DowntimeTracker {
        DowntimeTracker::with_recovery(start, RECOVERY_SUCCESSES)
    }

    /// A tracker whose recovery episodes end after `successes_needed` successes in a row.
    pub fn with_recovery(start: Instant, successes_needed: u32) -> DowntimeTracker {
        DowntimeTracker {
            start,
            down: AtomicBool::new(false),
            open: Mutex::new(None),
            successes_needed: successes_needed.max(1),
            recovering: AtomicBool::new(false),
            recovery: Mutex::new(None),
        }
    }

    /// How many successes in a row end a recovery episode.
    pub fn successes_needed(&self) -> u32 {
        self.successes_needed
    }

    fn recovery_failure(&self, at: Instant) {
        let at = at.saturating_duration_since(self.start);
        let mut open = self.recovery.lock().unwrap_or_else(|e| e.into_inner());
        match open.as_mut() {
            Some(r) => {
                r.episode.failed_requests += 1;
                r.streak = 0;
            }
            None => {
                *open = Some(Recovering {
                    episode: Episode {
                        started: at,
                        ended: None,
                        failed_requests: 1,
                    },
                    streak: 0,
                    streak_started: at,
                });
                self.recovering.store(true, Ordering::Release);
            }
        }
    }

    /// Counts a success towards the open recovery episode; returns it once it closed.
    fn recovery_success(&self, at: Instant) -> Option<Episode> {
        if !self.recovering.load(Ordering::Acquire) {
            return None;
        }
        let at = at.saturating_duration_since(self.start);
        let mut open = self.recovery.lock().unwrap_or_else(|e| e.into_inner());
        let r = open.as_mut()?;
        if r.streak == 0 {
            r.streak_started = at.max(r.episode.started);
        }
        r.streak += 1;
        if r.streak < self.successes_needed {
            return None;
        }
        let mut done = open.take()?;
        self.recovering.store(false, Ordering::Release);
        done.episode.ended = Some(done.streak_started);
        Some(done.episode)
    }

    /// The recovery episode still open at the end of the run, if any.
    pub fn take_open_recovery(&self) -> Option<Episode> {
        self.recovery
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .map(|r| r.episode)
    }

    fn failure(&self, at: Instant) {
        self.recovery_failure(at);
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        match open.as_mut() {
            Some(episode) => episode.failed_requests += 1,
            None => {
                *open = Some(Episode {
                    started: at.saturating_duration_since(self.start),
                    ended: None,
                    failed_requests: 1,
                });
                self.down.store(true, Ordering::Release);
            }
        }
    }

    fn success(&self, at: Instant) -> Option<Episode> {
        if !self.down.load(Ordering::Acquire) {
            return None;
        }
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let mut episode = open.take()?;
        self.down.store(false, Ordering::Release);
        // Another thread may have stamped its failure a hair after this success.
        episode.ended = Some(
            at.saturating_duration_since(self.start)
                .max(episode.started),
        );
        Some(episode)
    }

    /// The episode still open at the end of the run, if any.
    pub fn take_open(&self) -> Option<Episode> {
        self.open.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

/// One worker thread's statistics; shared by the thread's virtual users through a
/// `RefCell` (single-threaded runtime), so recording takes no lock.
pub struct ThreadStats {
    thread: usize,
    start: Instant,
    tx: UnboundedSender<Message>,
    bucket: ThreadBucket,
    colors: Names,
    pods: Names,
    totals_by_color: Vec<(Served, Histogram<u64>)>,
    regions: Names,
    /// All under [`UNKNOWN`] when no answer names a region (no gateway in front).
    totals_by_region: Vec<(Served, Histogram<u64>)>,
    requests: u64,
    successes: u64,
    errors: u64,
    late_sends: u64,
    dropped_sends: u64,
    last_sent: Instant,
    kinds: [u64; 6],
    status_codes: Vec<u64>,
    uncorrected: Histogram<u64>,
    /// Where the cumulative figures go once a second, for `--metrics-addr`.
    metrics: Option<Arc<LoadMetrics>>,
}

/// The current second of one thread, indexed by interned names.
struct ThreadBucket {
    second: u64,
    requests: u64,
    errors: u64,
    latency: Histogram<u64>,
    by_color: Vec<Served>,
    /// Per colour id, made on the colour's first response of the second.
    latency_by_color: Vec<Option<Histogram<u64>>>,
    by_pod: Vec<Served>,
}

impl ThreadBucket {
    fn new(second: u64) -> ThreadBucket {
        ThreadBucket {
            second,
            requests: 0,
            errors: 0,
            latency: new_histogram(),
            by_color: Vec::new(),
            latency_by_color: Vec::new(),
            by_pod: Vec::new(),
        }
    }
}

fn count(slots: &mut Vec<Served>, id: usize, error: bool) {
    if slots.len() <= id {
        slots.resize(id + 1, Served::default());
    }
    slots[id].requests += 1;
    slots[id].errors += u64::from(error);
}

/// One request in a name's run totals: counted, and timed when it had a response.
fn tally(totals: &mut Vec<(Served, Histogram<u64>)>, id: usize, error: bool, latency: Option<u64>) {
    if totals.len() <= id {
        totals.resize_with(id + 1, || (Served::default(), new_histogram()));
    }
    let (served, histogram) = &mut totals[id];
    served.requests += 1;
    served.errors += u64::from(error);
    if let Some(us) = latency {
        histogram.saturating_record(us);
    }
}

/// Slots indexed by interned name, keyed by the name; those that served no request left out.
fn named<T>(names: &Names, slots: Vec<T>, requests: impl Fn(&T) -> u64) -> BTreeMap<String, T> {
    slots
        .into_iter()
        .enumerate()
        .filter(|(_, slot)| requests(slot) > 0)
        .map(|(i, slot)| (names.name(i), slot))
        .collect()
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

impl ThreadStats {
    pub fn new(thread: usize, start: Instant, tx: UnboundedSender<Message>) -> ThreadStats {
        ThreadStats {
            thread,
            start,
            tx,
            bucket: ThreadBucket::new(0),
            colors: Names::new(64),
            pods: Names::new(MAX_PODS),
            totals_by_color: Vec::new(),
            regions: Names::new(64),
            totals_by_region: Vec::new(),
            requests: 0,
            successes: 0,
            errors: 0,
            late_sends: 0,
            dropped_sends: 0,
            last_sent: start,
            kinds: [0; 6],
            status_codes: vec![0; 600],
            uncorrected: new_histogram(),
            metrics: None,
        }
    }

    /// Publishes the thread's cumulative figures into `metrics` at every second it rolls
    /// and at its end (not per request).
    pub fn publishing(mut self, metrics: Option<Arc<LoadMetrics>>) -> ThreadStats {
        self.metrics = metrics;
        self
    }

    fn publish(&self) {
        let Some(metrics) = &self.metrics else {
            return;
        };
        let by_color = self
            .totals_by_color
            .iter()
            .enumerate()
            .filter(|(_, (served, _))| served.requests > 0)
            .map(|(i, (served, hist))| {
                let figures = ColorFigures::new(served.requests, served.errors, hist);
                (self.colors.name(i), figures)
            })
            .collect();
        metrics.publish(
            self.thread,
            Snapshot {
                by_color,
                kinds: self.kinds,
            },
        );
    }

    /// Records one request: `intended` is when it was meant to leave (the send time in
    /// the closed model), `sent` when it left, `done` when it ended.
    pub fn record(
        &mut self,
        intended: Instant,
        sent: Instant,
        done: Instant,
        outcome: &Outcome,
        downtime: &DowntimeTracker,
    ) {
        let second = done.saturating_duration_since(self.start).as_secs();
        if second > self.bucket.second {
            self.rotate(second);
        }
        let class = classify(outcome);
        let error = matches!(class, Class::Failure(_));
        self.requests += 1;
        self.bucket.requests += 1;
        if sent.saturating_duration_since(intended) > LATE_AFTER {
            self.late_sends += 1;
        }
        self.last_sent = self.last_sent.max(sent);
        match class {
            Class::Success => {
                self.successes += 1;
                if let Some(episode) = downtime.success(done) {
                    let _ = self.tx.send(Message::Episode(episode));
                }
                if let Some(episode) = downtime.recovery_success(done) {
                    let _ = self.tx.send(Message::Recovery(episode));
                }
            }
            Class::ClientError => self.kinds[KIND_4XX] += 1,
            Class::Failure(kind) => {
                self.errors += 1;
                self.bucket.errors += 1;
                self.kinds[kind] += 1;
                downtime.failure(done);
            }
        }
        let (color, pod, region) = match outcome {
            Outcome::Reply(reply) => {
                let slot = usize::from(reply.status).min(599);
                self.status_codes[slot] += 1;
                (
                    self.colors.id(reply.color.as_bytes()),
                    self.pods.id(reply.pod.as_bytes()),
                    self.regions.id(reply.region.as_bytes()),
                )
            }
            Outcome::Failed(_) => (0, 0, 0),
        };
        count(&mut self.bucket.by_color, color, error);
        count(&mut self.bucket.by_pod, pod, error);
        // Latency is a response's: failures without one are counted, not timed.
        let corrected = matches!(outcome, Outcome::Reply(_))
            .then(|| micros(done.saturating_duration_since(intended)).max(1));
        tally(&mut self.totals_by_color, color, error, corrected);
        tally(&mut self.totals_by_region, region, error, corrected);
        if let Some(corrected) = corrected {
            let service = micros(done.saturating_duration_since(sent));
            self.bucket.latency.saturating_record(corrected);
            let slots = &mut self.bucket.latency_by_color;
            if slots.len() <= color {
                slots.resize_with(color + 1, || None);
            }
            slots[color]
                .get_or_insert_with(new_histogram)
                .saturating_record(corrected);
            self.uncorrected.saturating_record(service.max(1));
            // Per pod, the pod's own time: a late send is the client's queue, not the pod.
            // `count` above made the slot exist.
            let slot = &mut self.bucket.by_pod[pod];
            slot.timed += 1;
            slot.latency_sum_us = slot.latency_sum_us.saturating_add(service);
        }
    }

    /// Called periodically so a thread that records nothing still moves its second on.
    pub fn tick(&mut self, now: Instant) {
        let second = now.saturating_duration_since(self.start).as_secs();
        if second > self.bucket.second {
            self.rotate(second);
        }
    }

    fn rotate(&mut self, next: u64) {
        self.publish();
        let finished = std::mem::replace(&mut self.bucket, ThreadBucket::new(next));
        let bucket = self.export(finished);
        let _ = self.tx.send(Message::Bucket {
            thread: self.thread,
            bucket,
            next,
        });
    }

    fn export(&self, b: ThreadBucket) -> Option<Bucket> {
        if b.requests == 0 {
            return None;
        }
        let mut by_pod = named(&self.pods, b.by_pod, |s| s.requests);
        // Pods are only worth listing when the target names them.
        if by_pod.len() == 1 && by_pod.contains_key(UNKNOWN) {
            by_pod.clear();
        }
        let latency_by_color = b
            .latency_by_color
            .into_iter()
            .enumerate()
            .filter_map(|(i, h)| Some((self.colors.name(i), h?)))
            .collect();
        Some(Bucket {
            second: b.second,
            requests: b.requests,
            errors: b.errors,
            latency: b.latency,
            by_color: named(&self.colors, b.by_color, |s| s.requests),
            by_pod,
            latency_by_color,
        })
    }

    /// Notes sends the open model dropped unsent at the end of the run.
    pub fn dropped(&mut self, n: u64) {
        self.dropped_sends += n;
    }

    /// Sends the last bucket and the thread's totals. Called once, at the end.
    pub fn finish(&mut self) {
        self.publish();
        let last = std::mem::replace(&mut self.bucket, ThreadBucket::new(u64::MAX));
        let bucket = self.export(last);
        let _ = self.tx.send(Message::Bucket {
            thread: self.thread,
            bucket,
            next: u64::MAX,
        });
        let status_codes = self
            .status_codes
            .iter()
            .enumerate()
            .filter(|(_, n)| **n > 0)
            .map(|(code, n)| (code as u16, *n))
            .collect();
        let requests = |t: &(Served, Histogram<u64>)| t.0.requests;
        let by_color = named(
            &self.colors,
            std::mem::take(&mut self.totals_by_color),
            requests,
        );
        let by_region = named(
            &self.regions,
            std::mem::take(&mut self.totals_by_region),
            requests,
        );
        let totals = ThreadTotals {
            requests: self.requests,
            successes: self.successes,
            errors: self.errors,
            late_sends: self.late_sends,
            dropped_sends: self.dropped_sends,
            last_sent: self.last_sent.saturating_duration_since(self.start),
            kinds: self.kinds,
            status_codes,
            uncorrected: std::mem::replace(&mut self.uncorrected, new_histogram()),
            by_color,
            by_region,
        };
        let _ = self.tx.send(Message::Done {
            thread: self.thread,
            totals: Box::new(totals),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::http::ShortValue;

    fn reply(status: u16) -> Outcome {
        Outcome::Reply(Reply {
            status,
            color: ShortValue::EMPTY,
            pod: ShortValue::EMPTY,
            ack: ShortValue::EMPTY,
            region: ShortValue::EMPTY,
            reusable: true,
        })
    }

    #[test]
    fn a_failure_opens_an_episode_and_the_first_success_closes_it() {
        let start = Instant::now();
        let t = DowntimeTracker::new(start);
        assert_eq!(t.success(start + Duration::from_millis(5)), None);
        t.failure(start + Duration::from_millis(10));
        t.failure(start + Duration::from_millis(20));
        let e = t.success(start + Duration::from_millis(30)).unwrap();
        assert_eq!(e.started, Duration::from_millis(10));
        assert_eq!(e.ended, Some(Duration::from_millis(30)));
        assert_eq!(e.failed_requests, 2);
        assert_eq!(t.success(start + Duration::from_millis(40)), None);
        t.failure(start + Duration::from_millis(50));
        assert_eq!(t.take_open().unwrap().ended, None);
    }

    #[test]
    fn per_pod_figures_carry_the_pods_own_reply_time_not_the_clients_queue() {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let start = Instant::now();
        let mut stats = ThreadStats::new(0, start, tx);
        let downtime = DowntimeTracker::new(start);
        let from_pod = |pod: &[u8], status: u16| {
            Outcome::Reply(Reply {
                status,
                color: ShortValue::copy(b"blue"),
                pod: ShortValue::copy(pod),
                ack: ShortValue::EMPTY,
                region: ShortValue::EMPTY,
                reusable: true,
            })
        };
        let ms = |v: u64| start + Duration::from_millis(v);
        // Sent 50 ms late (the client's queue), answered 10 ms after the send.
        stats.record(
            ms(0),
            ms(50),
            ms(60),
            &from_pod(b"web-blue-a", 200),
            &downtime,
        );
        stats.record(
            ms(100),
            ms(100),
            ms(130),
            &from_pod(b"web-blue-a", 500),
            &downtime,
        );
        stats.record(
            ms(200),
            ms(200),
            ms(202),
            &from_pod(b"web-blue-b", 200),
            &downtime,
        );
        stats.finish();
        // The 500 and the success after it also send a downtime episode.
        let bucket = std::iter::from_fn(|| rx.try_recv().ok())
            .find_map(|m| match m {
                Message::Bucket { bucket, .. } => bucket,
                _ => None,
            })
            .expect("a bucket");
        let a = bucket.by_pod["web-blue-a"];
        assert_eq!((a.requests, a.errors, a.timed), (2, 1, 2));
        assert_eq!(a.mean_latency_us(), Some(20_000), "(10 + 30) ms / 2");
        assert_eq!(bucket.by_pod["web-blue-b"].mean_latency_us(), Some(2_000));
        assert_eq!(
            bucket.by_color["blue"].timed, 0,
            "colours carry counts only"
        );
    }

    #[test]
    fn client_errors_are_counted_but_are_neither_failures_nor_successes() {
        assert_eq!(classify(&reply(404)), Class::ClientError);
        assert_eq!(classify(&reply(503)), Class::Failure(KIND_5XX));
        assert_eq!(classify(&reply(302)), Class::Success);
    }
}
