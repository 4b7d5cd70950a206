//! The engine: [`run`] a [`LoadPlan`] on worker threads and collect a [`LoadReport`].
//!
//! Each worker thread runs a single-threaded tokio runtime (no work stealing, no
//! cross-thread wakes on the hot path) with its share of virtual users. Every virtual user
//! runs the same loop — take a job, send, record — and the pace only decides where jobs
//! come from: in the closed model a user takes the next job as soon as its last request
//! answered; in the open model a per-thread dispatcher releases jobs at their scheduled
//! times and opens more connections (up to a cap) when every user is busy, so a stalled
//! target cannot slow the schedule down; once a stall is over, the extra users end and
//! close their connections. Latency is measured from the job's intended time
//! (coordinated-omission corrected); the send time is kept for the uncorrected view. An
//! open-model run still behind its schedule a second after its duration drops the sends
//! it has not made, and counts them, so it ends on time.
//!
//! Called by the command layer (`resil load`) and the scenario runner; prints nothing.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::Utc;
use tokio::sync::Notify;
use tokio::sync::mpsc::{self, UnboundedSender};
use tokio_util::sync::CancellationToken;

use super::LoadError;
use super::collector::Collector;
use super::http::{Connection, Failure};
use super::plan::{LoadPlan, Pace, RequestTemplate};
use super::report::{self, LoadReport};
use super::schedule::Schedule;
use super::stats::{DowntimeTracker, MAX_EPISODES, Message, Outcome, ThreadStats};
use super::writes::{self, ThreadWrites, WriteMix, encode_put, is_write};
use crate::metrics::load::LoadSink;
use crate::results::Event;

/// How long the open model waits before its first scheduled send, so worker threads
/// have started and opened their first connections.
const OPEN_LEAD: Duration = Duration::from_millis(50);
/// A closed-model user whose connection was refused waits this long before trying again,
/// so a down target is probed, not flooded.
const CONNECT_BACKOFF: Duration = Duration::from_millis(10);
/// A dispatcher this far behind its schedule is short of CPU, and opens no more
/// connections (they would cost CPU and not help). A stalled target does not make the
/// dispatcher late (its CPU is free), so growth for a stall is unaffected; the timer's
/// own lateness is about a millisecond. At 50 ms a generator near its CPU limit opened
/// thousands of connections before it noticed, and each one made it slower.
const BEHIND: Duration = Duration::from_millis(5);
/// At most one connection opened on demand per this interval per thread (2000/s): fast
/// enough to keep a 2000 req/s schedule through a total stall, slow enough that a
/// saturated generator cannot open thousands of connections before it notices.
const GROWTH_INTERVAL: Duration = Duration::from_micros(500);
/// How far ahead of its intended time the open model may release a send.
const EARLY: Duration = Duration::from_millis(1);
/// A wait for the next send shorter than this polls instead of sleeping (see
/// [`wait_until`]): sends 50 µs apart are 20,000 a second on one thread.
const SPIN: Duration = Duration::from_micros(50);
/// How often the open model reviews its pool: users beyond twice the most that were in
/// flight at once over the last window (and beyond the starting pool) end, so connections
/// opened for a stall are closed again once it is over.
const SHRINK_WINDOW: Duration = Duration::from_secs(10);
/// An open-model run this far past its duration sends none of its backlog: the sends
/// still unsent are dropped and counted, so a generator that fell behind (a stalled
/// target it could not open enough connections for, or too little CPU) stops on time
/// instead of running on until the backlog drains.
const DROP_AFTER: Duration = Duration::from_secs(1);
/// How often an idle thread moves its per-second bucket on.
const TICK: Duration = Duration::from_millis(100);

/// Runs `plan` until it is done or `cancel` fires, sending a `LoadBucket` event per second
/// and a `Downtime` event per closed episode on `events` as they happen.
pub async fn run(
    plan: &LoadPlan,
    cancel: CancellationToken,
    events: UnboundedSender<Event>,
) -> Result<LoadReport, LoadError> {
    let finished = drive(plan, cancel, |started_at, tap| {
        let event = match tap {
            Tap::Second(bucket) => report::bucket_event(started_at, bucket),
            Tap::Episode(episode) => report::downtime_event(started_at, episode),
            Tap::Recovery { episode, needed } => {
                report::recovery_event(started_at, episode, needed)
            }
        };
        let _ = events.send(event);
    })
    .await?;
    let mut finished = finished;
    let log = std::mem::take(&mut finished.collector.writes);
    let mut built = report::build(
        plan,
        finished.collector,
        finished.started_at,
        finished.elapsed,
        finished.window,
        finished.interrupted,
    );
    if let Some(mix) = &plan.writes {
        built.summary.writes =
            Some(super::writes::verify(mix, &log, finished.started_at, plan.timeout).await);
    }
    Ok(built)
}

/// What the engine hands out while it runs: a second every thread is past (merged over
/// the threads), a downtime episode kept in the run's list, or a recovery episode (its
/// `ended` is the first of `needed` successes in a row).
pub enum Tap<'a> {
    Second(&'a super::stats::Bucket),
    Episode(&'a super::stats::Episode),
    Recovery {
        episode: &'a super::stats::Episode,
        needed: u32,
    },
}

/// A finished run's figures before they become a report.
pub struct Finished {
    /// Everything merged: totals, histograms, kept episodes.
    pub collector: Collector,
    pub started_at: chrono::DateTime<Utc>,
    /// From the start to the last answer.
    pub elapsed: Duration,
    /// The sending window the achieved rate is over.
    pub window: Duration,
    pub interrupted: bool,
}

/// When the run starts: at the plan's shared start time (a worker of a distributed run),
/// else after `lead`.
fn start_times(plan: &LoadPlan, lead: Duration) -> (Instant, chrono::DateTime<Utc>) {
    let now = (Instant::now(), Utc::now());
    match plan.start_at {
        Some(at) => {
            let wait = (at - now.1).to_std().unwrap_or(Duration::ZERO);
            (now.0 + wait, at)
        }
        None => (
            now.0 + lead,
            now.1 + chrono::Duration::milliseconds(lead.as_millis() as i64),
        ),
    }
}

/// Runs `plan` like [`run`], handing each released second and each kept downtime episode
/// to `tap` (with the run's start), and returns the merged figures.
pub async fn drive(
    plan: &LoadPlan,
    cancel: CancellationToken,
    mut tap: impl FnMut(chrono::DateTime<Utc>, Tap<'_>),
) -> Result<Finished, LoadError> {
    let addr = resolve(plan).await?;
    preflight(addr, plan.timeout).await?;

    let schedule = Schedule::for_pace(&plan.pace);
    let lead = if schedule.is_some() {
        OPEN_LEAD
    } else {
        Duration::ZERO
    };
    let (start, started_at) = start_times(plan, lead);
    let shared = Arc::new(Shared {
        writes: plan.writes.clone().map(|mix| (mix, plan.request.clone())),
        addr,
        request: plan.request.encode(plan.keepalive),
        head: plan.request.method == "HEAD",
        keepalive: plan.keepalive,
        timeout: plan.timeout,
        start,
        deadline: plan.stop.duration.map(|d| start + d),
        max_requests: plan.stop.requests,
        tickets: AtomicU64::new(0),
        threads: plan.threads,
        closed_concurrency: match plan.pace {
            Pace::Closed { concurrency } => Some(concurrency as usize),
            _ => None,
        },
        schedule,
        max_connections_per_thread: (plan.max_connections / plan.threads).max(1),
        segment: (
            u64::from(plan.segment.index),
            u64::from(plan.segment.count.max(1)),
        ),
        cancel: cancel.clone(),
        downtime: DowntimeTracker::with_recovery(start, plan.recovery_successes),
        metrics: plan.metrics.clone(),
    });
    if let Some(m) = plan.metrics.get() {
        m.begin_run();
    }

    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut handles = Vec::with_capacity(plan.threads);
    for thread in 0..plan.threads {
        let shared = Arc::clone(&shared);
        let tx = tx.clone();
        let handle = std::thread::Builder::new()
            .name(format!("resil-load-{thread}"))
            .spawn(move || worker_thread(shared, thread, tx))
            .map_err(|source| LoadError::Thread { source })?;
        handles.push(handle);
    }
    drop(tx);

    let mut collector = Collector::new(plan.threads);
    let needed = shared.downtime.successes_needed();
    let mut recoveries = 0usize;
    // The channel closes when every worker thread has finished (or died).
    while let Some(message) = rx.recv().await {
        match message {
            Message::Recovery(e) => {
                recoveries += 1;
                if recoveries <= MAX_EPISODES {
                    tap(
                        started_at,
                        Tap::Recovery {
                            episode: &e,
                            needed,
                        },
                    );
                }
            }
            Message::Episode(e) => {
                if let (Some(m), Some(end)) = (plan.metrics.get(), e.ended) {
                    m.episode_ended(end.saturating_sub(e.started));
                }
                if collector.record_episode(e) {
                    tap(started_at, Tap::Episode(&e));
                }
            }
            other => {
                for bucket in collector.accept(other) {
                    tap(started_at, Tap::Second(&bucket));
                }
            }
        }
    }
    let ended = Instant::now();
    let mut panicked = false;
    for handle in handles {
        match handle.join() {
            Ok(Ok(())) => {}
            Ok(Err(source)) => return Err(LoadError::Thread { source }),
            Err(_) => panicked = true,
        }
    }
    if panicked {
        return Err(LoadError::WorkerPanicked);
    }
    if let Some(open) = shared.downtime.take_open()
        && collector.record_episode(open)
    {
        tap(started_at, Tap::Episode(&open));
    }
    if let Some(open) = shared.downtime.take_open_recovery()
        && recoveries < MAX_EPISODES
    {
        tap(
            started_at,
            Tap::Recovery {
                episode: &open,
                needed,
            },
        );
    }
    let elapsed = ended.saturating_duration_since(start);
    let interrupted = cancel.is_cancelled();
    // The achieved rate is over the sending window: the planned duration, not counting
    // the drain of the last in-flight requests after it — unless sends ran over it.
    let window = match plan.stop.duration {
        Some(d) if !interrupted => elapsed.min(d.max(collector.last_sent)),
        _ => elapsed,
    };
    Ok(Finished {
        collector,
        started_at,
        elapsed,
        window,
        interrupted,
    })
}

/// The first address of the target's host.
async fn resolve(plan: &LoadPlan) -> Result<SocketAddr, LoadError> {
    let host = plan.request.host.as_str();
    let mut addrs = tokio::net::lookup_host((host, plan.request.port))
        .await
        .map_err(|source| LoadError::Resolve {
            host: host.to_string(),
            source,
        })?;
    addrs.next().ok_or_else(|| LoadError::Resolve {
        host: host.to_string(),
        source: std::io::Error::new(std::io::ErrorKind::NotFound, "no address"),
    })
}

/// One connection before starting, so an unreachable target is an error, not a run of
/// connect failures.
async fn preflight(addr: SocketAddr, timeout: Duration) -> Result<(), LoadError> {
    let unreachable = |reason: String| LoadError::Unreachable { addr, reason };
    match tokio::time::timeout(
        timeout.min(Duration::from_secs(5)),
        tokio::net::TcpStream::connect(addr),
    )
    .await
    {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(unreachable(e.to_string())),
        Err(_) => Err(unreachable("connect timed out".into())),
    }
}

/// What every worker thread reads.
struct Shared {
    /// `--write-ratio`: the mix, and the request whose host and headers writes reuse.
    writes: Option<(WriteMix, RequestTemplate)>,
    addr: SocketAddr,
    request: Vec<u8>,
    head: bool,
    keepalive: bool,
    timeout: Duration,
    start: Instant,
    deadline: Option<Instant>,
    max_requests: Option<u64>,
    /// Closed model with a request bound: sends claimed so far, across threads.
    tickets: AtomicU64,
    threads: usize,
    closed_concurrency: Option<usize>,
    schedule: Option<Schedule>,
    max_connections_per_thread: usize,
    /// This generator's segment of a shared run: (index, count); see `plan::Segment`.
    segment: (u64, u64),
    cancel: CancellationToken,
    downtime: DowntimeTracker,
    /// Where each thread publishes its figures once a second (`--metrics-addr`).
    metrics: LoadSink,
}

impl Shared {
    fn past_deadline(&self, now: Instant) -> bool {
        self.deadline.is_some_and(|d| now >= d)
    }

    /// Whether the open model's unsent backlog is dropped by `now` (see [`DROP_AFTER`]).
    fn past_cutoff(&self, now: Instant) -> bool {
        self.deadline.is_some_and(|d| now >= d + DROP_AFTER)
    }
}

/// A worker thread: its own single-threaded runtime running its users to completion.
fn worker_thread(
    shared: Arc<Shared>,
    thread: usize,
    tx: UnboundedSender<Message>,
) -> std::io::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, thread_main(shared, thread, tx));
    Ok(())
}

/// Everything one thread's users share (single-threaded: `Rc`/`RefCell`/`Cell`).
struct ThreadCtx {
    shared: Arc<Shared>,
    thread: usize,
    stats: RefCell<ThreadStats>,
    live: Live,
    dispatch: Option<Dispatch>,
    /// Requests this thread has begun: numbers them for the write mix.
    begun: Cell<u64>,
    writes: RefCell<ThreadWrites>,
}

/// Counts running users (and the dispatcher) so the thread knows when all are done.
struct Live {
    count: Cell<usize>,
    zero: Notify,
}

/// Held by a running user or dispatcher; taken when the task is spawned, not when it
/// first runs, so the thread cannot see zero before its tasks have started.
struct LiveGuard(Rc<ThreadCtx>);

impl LiveGuard {
    fn enter(ctx: &Rc<ThreadCtx>) -> LiveGuard {
        ctx.live.count.set(ctx.live.count.get() + 1);
        LiveGuard(Rc::clone(ctx))
    }
}

impl Live {
    async fn all_done(&self) {
        while self.count.get() > 0 {
            self.zero.notified().await;
        }
    }
}

impl Drop for LiveGuard {
    fn drop(&mut self) {
        let live = &self.0.live;
        let n = live.count.get() - 1;
        live.count.set(n);
        if n == 0 {
            live.zero.notify_one();
        }
    }
}

async fn thread_main(shared: Arc<Shared>, thread: usize, tx: UnboundedSender<Message>) {
    let writes_tx = tx.clone();
    let stats = ThreadStats::new(thread, shared.start, tx).publishing(shared.metrics.get());
    let open = shared.schedule.is_some();
    let initial = initial_users(&shared);
    let ctx = Rc::new(ThreadCtx {
        thread,
        stats: RefCell::new(stats),
        live: Live {
            count: Cell::new(0),
            zero: Notify::new(),
        },
        dispatch: open.then(|| Dispatch {
            // Global thread `thread·count + index` of `threads·count` (see `Segment`).
            next: Cell::new(thread as u64 * shared.segment.1 + shared.segment.0),
            floor: initial,
            ..Dispatch::default()
        }),
        begun: Cell::new(0),
        writes: RefCell::new(ThreadWrites::new(shared.threads)),
        shared,
    });

    let ticker = {
        let ctx = Rc::clone(&ctx);
        tokio::task::spawn_local(async move {
            loop {
                tokio::time::sleep(TICK).await;
                ctx.stats.borrow_mut().tick(Instant::now());
            }
        })
    };

    if let Some(concurrency) = ctx.shared.closed_concurrency {
        let threads = ctx.shared.threads;
        let mine = concurrency / threads + usize::from(thread < concurrency % threads);
        for _ in 0..mine {
            spawn_user(&ctx);
        }
    } else {
        for _ in 0..initial {
            spawn_user(&ctx);
        }
        let live = LiveGuard::enter(&ctx);
        tokio::task::spawn_local(async move {
            dispatch(&live.0).await;
            drop(live);
        });
    }

    tokio::select! {
        // Ctrl-C / the caller stops the run: in-flight requests are abandoned uncounted.
        _ = ctx.shared.cancel.cancelled() => {}
        // Every user ran out of jobs and finished its last request.
        _ = ctx.live.all_done() => {}
    }
    ticker.abort();
    if ctx.shared.writes.is_some() {
        let writes = std::mem::take(&mut *ctx.writes.borrow_mut());
        let _ = writes_tx.send(Message::Writes(Box::new(writes)));
    }
    let mut stats = ctx.stats.borrow_mut();
    if let Some(d) = &ctx.dispatch {
        stats.dropped(d.dropped.get());
    }
    stats.finish();
}

/// Open model: enough connections for ~2 ms of the peak rate, at least 2; more are
/// opened on demand.
fn initial_users(shared: &Shared) -> usize {
    let peak = match &shared.schedule {
        Some(s) => {
            let probe = [0u64, 1, 10, 60, 600, 3600];
            probe
                .iter()
                .map(|secs| s.rate_at(Duration::from_secs(*secs)))
                .fold(0.0, f64::max)
        }
        None => 0.0,
    };
    let per_thread = peak / (shared.threads as u64 * shared.segment.1) as f64 * 0.002;
    (per_thread.ceil() as usize).clamp(2, shared.max_connections_per_thread)
}

fn spawn_user(ctx: &Rc<ThreadCtx>) {
    if let Some(d) = &ctx.dispatch {
        d.users.set(d.users.get() + 1);
        d.starting.set(d.starting.get() + 1);
    }
    let live = LiveGuard::enter(ctx);
    tokio::task::spawn_local(async move {
        virtual_user(&live.0).await;
        drop(live);
    });
}

/// A job: one request to send, and when it was meant to leave (`None`: now).
struct Job {
    intended: Option<Instant>,
}

/// The one worker loop every virtual user runs, whatever the pace.
async fn virtual_user(ctx: &ThreadCtx) {
    let shared = &*ctx.shared;
    let mut conn: Option<Connection> = None;
    if ctx.dispatch.is_some() {
        // Open model: connect before the first job so its latency is the service's.
        conn = Connection::open(shared.addr).await.ok();
        if let Some(d) = &ctx.dispatch {
            d.starting.set(d.starting.get() - 1);
        }
    }
    if ctx.dispatch.is_none() && shared.start > Instant::now() {
        // Closed model with a shared start (a worker of a distributed run): the first
        // request leaves at the start, as the open model's first send does.
        tokio::select! {
            // Ctrl-C or the pod's deletion before the start: nothing to send.
            _ = shared.cancel.cancelled() => return,
            // The shared start.
            _ = tokio::time::sleep_until(shared.start.into()) => {}
        }
    }
    // One timer per user, pushed forward for each request: moving a registered tokio
    // timer later is a lock-free update, where a fresh `timeout()` per request would
    // register and deregister in the timer wheel every time.
    let deadline = tokio::time::sleep(shared.timeout);
    tokio::pin!(deadline);
    // This user's write request, encoded afresh for each write (writes are the exception;
    // reads send the shared bytes encoded once).
    let mut put = Vec::new();
    while let Some(job) = next_job(ctx).await {
        let write = shared.writes.as_ref().and_then(|(mix, template)| {
            let n = ctx.begun.get();
            ctx.begun.set(n + 1);
            is_write(n, mix.ratio).then(|| {
                let key = writes::key(&mix.prefix, ctx.thread, n);
                encode_put(template, &mix.kv_path, &key, shared.keepalive, &mut put);
                n
            })
        });
        let (request, head) = match write {
            Some(_) => (put.as_slice(), false),
            None => (shared.request.as_slice(), shared.head),
        };
        let sent = Instant::now();
        deadline.as_mut().reset((sent + shared.timeout).into());
        let result = tokio::select! {
            biased;
            // The response (or a failure) arrived in time.
            r = attempt(&mut conn, shared.addr, request, head) => Ok(r),
            // The timeout expired first; the connection is dropped below.
            _ = &mut deadline => Err(()),
        };
        let done = Instant::now();
        let outcome = match result {
            Ok(Ok(reply)) => {
                if !(reply.reusable && shared.keepalive) {
                    conn = None;
                }
                Outcome::Reply(reply)
            }
            Ok(Err(failure)) => {
                conn = None;
                Outcome::Failed(failure)
            }
            Err(_) => {
                conn = None;
                Outcome::Failed(Failure::Timeout)
            }
        };
        if let Some(n) = write {
            let ack = match &outcome {
                Outcome::Reply(r) if (200..300).contains(&r.status) => Some(r.ack.as_bytes()),
                _ => None,
            };
            let at = done.saturating_duration_since(shared.start);
            ctx.writes.borrow_mut().record(ctx.thread, n, at, ack);
        }
        ctx.stats.borrow_mut().record(
            // Latency counts from the intended time when the send left late (the
            // coordinated-omission correction), from the send itself when it left early.
            job.intended.map_or(sent, |intended| intended.min(sent)),
            sent,
            done,
            &outcome,
            &shared.downtime,
        );
        if ctx.dispatch.is_none() && matches!(outcome, Outcome::Failed(Failure::Connect)) {
            tokio::time::sleep(CONNECT_BACKOFF).await;
        }
    }
}

/// Connects if needed, then sends one request.
async fn attempt(
    conn: &mut Option<Connection>,
    addr: SocketAddr,
    request: &[u8],
    head: bool,
) -> Result<super::http::Reply, Failure> {
    let c = match conn {
        Some(c) => c,
        None => conn.insert(Connection::open(addr).await?),
    };
    c.exchange(request, head).await
}

/// The next job for a user, or `None` when the run is over for it.
async fn next_job(ctx: &ThreadCtx) -> Option<Job> {
    let shared = &*ctx.shared;
    match &ctx.dispatch {
        None => {
            if shared.cancel.is_cancelled() || shared.past_deadline(Instant::now()) {
                return None;
            }
            if let Some(max) = shared.max_requests
                && shared.tickets.fetch_add(1, Ordering::Relaxed) >= max
            {
                return None;
            }
            Some(Job { intended: None })
        }
        Some(d) => d.take(shared).await,
    }
}

/// Open model, per thread: this thread's share of the schedule (sends k ≡ thread mod
/// threads) and the jobs released from it that wait for a free user.
#[derive(Default)]
struct Dispatch {
    /// The next send of the schedule not yet released.
    next: Cell<u64>,
    /// The schedule has no more sends for this thread.
    exhausted: Cell<bool>,
    queue: RefCell<VecDeque<Instant>>,
    /// Users waiting for a job.
    idle: Cell<usize>,
    /// Users still opening their first connection (free soon).
    starting: Cell<usize>,
    /// Users started on this thread.
    users: Cell<usize>,
    /// When the dispatcher last opened a connection on demand.
    last_growth: Cell<Option<Instant>>,
    /// The pool never shrinks below this many users (the starting pool).
    floor: usize,
    /// The most users in flight at once since the window started.
    peak: Cell<usize>,
    /// When the current [`SHRINK_WINDOW`] started.
    window_start: Cell<Option<Instant>>,
    /// Idle users asked to end (see [`Dispatch::review`]).
    retire: Cell<usize>,
    /// Sends dropped unsent at the cutoff (see [`DROP_AFTER`]).
    dropped: Cell<u64>,
    /// No more jobs will come.
    closed: Cell<bool>,
    /// A job was queued (or the dispatcher closed).
    ready: Notify,
    /// A job was taken off the queue.
    room: Notify,
}

impl Dispatch {
    /// The intended time of the next send, without releasing it; `None` when the schedule
    /// is over for this thread.
    fn peek(&self, shared: &Shared) -> Option<Instant> {
        if self.exhausted.get() {
            return None;
        }
        let k = self.next.get();
        let at = shared
            .schedule
            .as_ref()
            .filter(|_| shared.max_requests.is_none_or(|max| k < max))
            .and_then(|s| s.offset(k))
            .map(|offset| shared.start + offset)
            .filter(|at| !shared.past_deadline(*at));
        if at.is_none() {
            self.exhausted.set(true);
        }
        at
    }

    /// Past the cutoff, drops the queued jobs and the rest of this thread's schedule,
    /// counting them, and returns true.
    fn cut_off(&self, shared: &Shared, now: Instant) -> bool {
        if !shared.past_cutoff(now) {
            return false;
        }
        let queued = std::mem::take(&mut *self.queue.borrow_mut()).len() as u64;
        let mut unsent = 0;
        while self.peek(shared).is_some() {
            self.advance(shared);
            unsent += 1;
        }
        if queued + unsent > 0 {
            self.dropped.set(self.dropped.get() + queued + unsent);
            // A dispatcher waiting for room in the queue finds it.
            self.room.notify_one();
        }
        true
    }

    /// Releases the next send if it may leave by `now` (up to [`EARLY`] ahead).
    fn pull_due(&self, shared: &Shared, now: Instant) -> Option<Instant> {
        if self.cut_off(shared, now) {
            return None;
        }
        let at = self.peek(shared)?;
        if at > now + EARLY {
            return None;
        }
        self.advance(shared);
        Some(at)
    }

    /// Moves past the send [`Dispatch::peek`] returned (this thread's next is `threads` on).
    fn advance(&self, shared: &Shared) {
        self.next
            .set(self.next.get() + shared.threads as u64 * shared.segment.1);
    }

    /// Users with a request in flight (or about to send one).
    fn in_flight(&self) -> usize {
        self.users
            .get()
            .saturating_sub(self.idle.get())
            .saturating_sub(self.starting.get())
    }

    /// Notes how many users are in flight, for the window's peak.
    fn sample(&self) {
        self.peak.set(self.peak.get().max(self.in_flight()));
    }

    /// Once a [`SHRINK_WINDOW`]: asks the users beyond twice the window's peak in flight
    /// (and beyond the starting pool) to end when they next go idle, then starts a new
    /// window. Connections opened on demand for a stall would otherwise stay open for the
    /// rest of the run, each with its buffers, and every later hiccup would add more.
    fn review(&self, now: Instant) {
        let Some(since) = self.window_start.get() else {
            self.window_start.set(Some(now));
            return;
        };
        if now.saturating_duration_since(since) < SHRINK_WINDOW {
            return;
        }
        let keep = (self.peak.get() * 2).max(self.floor);
        self.retire.set(self.users.get().saturating_sub(keep));
        tracing::debug!(
            users = self.users.get(),
            peak = self.peak.get(),
            retire = self.retire.get(),
            "open-model pool review"
        );
        self.peak.set(self.in_flight());
        self.window_start.set(Some(now));
    }

    async fn take(&self, shared: &Shared) -> Option<Job> {
        loop {
            self.cut_off(shared, Instant::now());
            let job = self.queue.borrow_mut().pop_front();
            if let Some(intended) = job {
                self.sample();
                self.room.notify_one();
                if !self.queue.borrow().is_empty() {
                    // Notifications coalesce; pass the wake on so no job waits beside an idle user.
                    self.ready.notify_one();
                }
                return Some(Job {
                    intended: Some(intended),
                });
            }
            if shared.cancel.is_cancelled() {
                return None;
            }
            // A user that is free when a send is due takes it itself: at high rates sends
            // then leave on time without waiting for the dispatcher's timer.
            if let Some(intended) = self.pull_due(shared, Instant::now()) {
                self.sample();
                return Some(Job {
                    intended: Some(intended),
                });
            }
            if self.closed.get() {
                return None;
            }
            // A user the last review found surplus ends here, closing its connection.
            if self.retire.get() > 0 {
                self.retire.set(self.retire.get() - 1);
                self.users.set(self.users.get() - 1);
                return None;
            }
            self.idle.set(self.idle.get() + 1);
            self.ready.notified().await;
            self.idle.set(self.idle.get() - 1);
        }
    }
}

/// Releases this thread's share of the schedule at the intended times (when no free user
/// took a send first), growing the pool of users when all are busy.
async fn dispatch(ctx: &Rc<ThreadCtx>) {
    let shared = &*ctx.shared;
    let Some(d) = &ctx.dispatch else {
        return;
    };
    let cap = shared.max_connections_per_thread;
    while let Some(at) = d.peek(shared) {
        wait_until(at).await;
        if shared.cancel.is_cancelled() {
            break;
        }
        d.review(Instant::now());
        while let Some(intended) = d.pull_due(shared, Instant::now()) {
            // The dispatcher itself running well behind means this thread lacks CPU, not
            // connections: opening more would only cost more CPU. Growth is for a slow
            // target.
            let late = || Instant::now().saturating_duration_since(intended) > BEHIND;
            let behind = late();
            // Every user already has a job waiting and no more may be opened: hold the
            // next one back (it leaves late, and is counted so) instead of queueing
            // without end.
            while d.queue.borrow().len() >= d.users.get() && (d.users.get() >= cap || late()) {
                d.room.notified().await;
            }
            if d.cut_off(shared, Instant::now()) {
                d.dropped.set(d.dropped.get() + 1);
                break;
            }
            d.queue.borrow_mut().push_back(intended);
            d.ready.notify_one();
            // Grow ahead of demand: a job with no free user, or the spare users running
            // low, opens another connection now, so a stall does not make later sends
            // wait for a connect. Users still connecting count as free, or a burst would
            // open a connection per job before the first of them is ready.
            let free = d.idle.get() + d.starting.get();
            let spare = (d.users.get() / 16).max(2);
            let short = d.queue.borrow().len() > free || free < spare;
            let now = Instant::now();
            let may_grow = d
                .last_growth
                .get()
                .is_none_or(|last| now.saturating_duration_since(last) >= GROWTH_INTERVAL);
            if short && !behind && may_grow && d.users.get() < cap {
                d.last_growth.set(Some(now));
                spawn_user(ctx);
            }
        }
    }
    tracing::debug!(
        thread = ctx.thread,
        users = d.users.get(),
        "open-model dispatcher done"
    );
    d.closed.set(true);
    d.ready.notify_waiters();
}

/// Waits until a job may leave: up to [`EARLY`] before its intended time. tokio's timer
/// has millisecond granularity and wakes up to ~1 ms after its deadline, so aiming early
/// keeps sends on time. An early send's latency is measured from when it actually left.
///
/// A wait shorter than [`SPIN`] polls instead of sleeping: the thread keeps running its
/// users and checks the sockets without blocking (`yield_now` makes the runtime poll
/// epoll with a zero timeout) until the send is due. A thread whose sends are less than
/// [`SPIN`] apart always waits that briefly, and is busy most of the time anyway; parking
/// it would cost a sleep and a wake-up (a context switch) for nearly every request, which
/// at tens of thousands of requests a second is the difference between keeping the
/// schedule and falling behind. A slower schedule waits so briefly only now and then, and
/// otherwise sleeps on the timer, leaving the CPU to a target on the same machine.
async fn wait_until(at: Instant) {
    let wake = at.checked_sub(EARLY).unwrap_or(at);
    let now = Instant::now();
    if now >= wake {
        return;
    }
    if wake - now <= SPIN {
        while Instant::now() < wake {
            tokio::task::yield_now().await;
        }
    } else {
        tokio::time::sleep_until(wake.into()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `users` users of which `busy` are in flight, the rest idle.
    fn pool(d: &Dispatch, users: usize, busy: usize) {
        d.users.set(users);
        d.idle.set(users - busy);
        d.sample();
    }

    #[test]
    fn a_pool_grown_for_a_stall_shrinks_to_twice_its_recent_peak_but_not_below_its_start() {
        let d = Dispatch {
            floor: 4,
            ..Dispatch::default()
        };
        let t0 = Instant::now();
        d.review(t0); // opens the first window
        // A stall: the pool grew to 40 users, 30 of them in flight at once.
        pool(&d, 40, 30);
        d.review(t0 + SHRINK_WINDOW / 2);
        assert_eq!(d.retire.get(), 0, "no review before the window is over");
        d.review(t0 + SHRINK_WINDOW);
        assert_eq!(d.retire.get(), 0, "twice the peak (60) covers all 40");
        // The stall is over: a window with at most 3 in flight.
        pool(&d, 40, 3);
        d.review(t0 + SHRINK_WINDOW * 2);
        assert_eq!(
            d.retire.get(),
            0,
            "the window that saw 30 in flight at its start"
        );
        pool(&d, 40, 3);
        d.review(t0 + SHRINK_WINDOW * 3);
        assert_eq!(d.retire.get(), 34, "keep twice the peak: 6 of 40");
        // Nearly idle: the pool keeps its starting size.
        pool(&d, 6, 1);
        d.review(t0 + SHRINK_WINDOW * 4);
        pool(&d, 6, 1);
        d.review(t0 + SHRINK_WINDOW * 5);
        assert_eq!(d.retire.get(), 2, "never below the floor of 4");
    }

    /// A thread's shared state with no schedule left to send (so `take` finds only queued
    /// jobs).
    fn no_schedule() -> Shared {
        let start = Instant::now();
        Shared {
            writes: None,
            addr: SocketAddr::from(([127, 0, 0, 1], 9)),
            request: Vec::new(),
            head: false,
            keepalive: true,
            timeout: Duration::from_secs(1),
            start,
            deadline: None,
            max_requests: None,
            tickets: AtomicU64::new(0),
            threads: 1,
            closed_concurrency: None,
            schedule: None,
            max_connections_per_thread: 100,
            segment: (0, 1),
            cancel: CancellationToken::new(),
            downtime: DowntimeTracker::new(start),
            metrics: LoadSink::default(),
        }
    }

    #[tokio::test]
    async fn a_surplus_user_takes_a_waiting_job_before_it_retires() {
        let shared = no_schedule();
        let d = Dispatch::default();
        d.users.set(3);
        d.retire.set(1);
        let intended = Instant::now();
        d.queue.borrow_mut().push_back(intended);
        let job = d.take(&shared).await.expect("the queued job is sent");
        assert_eq!(job.intended, Some(intended));
        assert_eq!(d.retire.get(), 1, "no user retired while a job waited");
        assert!(
            d.take(&shared).await.is_none(),
            "with no job left it retires"
        );
        assert_eq!((d.users.get(), d.retire.get()), (2, 0));
    }
}
