//! The engine: [`run`] a [`LoadPlan`] on worker threads and collect a [`LoadReport`].
//!
//! Each worker thread runs a single-threaded tokio runtime (no work stealing, no
//! cross-thread wakes on the hot path) with its share of virtual users. Every virtual user
//! runs the same loop — take a job, send, record — and the pace only decides where jobs
//! come from: in the closed model a user takes the next job as soon as its last request
//! answered; in the open model a per-thread dispatcher releases jobs at their scheduled
//! times and opens more connections (up to a cap) when every user is busy, so a stalled
//! target cannot slow the schedule down. Latency is measured from the job's intended
//! time (coordinated-omission corrected); the send time is kept for the uncorrected view.
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
use super::http::{Connection, Failure};
use super::plan::{LoadPlan, Pace};
use super::report::{self, LoadReport};
use super::schedule::Schedule;
use super::stats::{Collector, DowntimeTracker, Message, Outcome, ThreadStats};
use crate::results::Event;

/// How long the open model waits before its first scheduled send, so worker threads
/// have started and opened their first connections.
const OPEN_LEAD: Duration = Duration::from_millis(50);
/// A closed-model user whose connection was refused waits this long before trying again,
/// so a down target is probed, not flooded.
const CONNECT_BACKOFF: Duration = Duration::from_millis(10);
/// How often an idle thread moves its per-second bucket on.
const TICK: Duration = Duration::from_millis(100);

/// Runs `plan` until it is done or `cancel` fires, sending a `LoadBucket` event per second
/// and a `Downtime` event per closed episode on `events` as they happen.
pub async fn run(
    plan: &LoadPlan,
    cancel: CancellationToken,
    events: UnboundedSender<Event>,
) -> Result<LoadReport, LoadError> {
    let addr = resolve(plan).await?;
    preflight(addr, plan.timeout).await?;

    let schedule = Schedule::for_pace(&plan.pace);
    let lead = if schedule.is_some() {
        OPEN_LEAD
    } else {
        Duration::ZERO
    };
    let start = Instant::now() + lead;
    let started_at = Utc::now() + chrono::Duration::milliseconds(lead.as_millis() as i64);
    let shared = Arc::new(Shared {
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
        cancel: cancel.clone(),
        downtime: DowntimeTracker::new(start),
    });

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
    // The channel closes when every worker thread has finished (or died).
    while let Some(message) = rx.recv().await {
        let episode = match &message {
            Message::Episode(e) => Some(*e),
            _ => None,
        };
        for bucket in collector.accept(message) {
            let _ = events.send(report::bucket_event(started_at, &bucket));
        }
        if let Some(e) = episode {
            let _ = events.send(report::downtime_event(started_at, &e));
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
    if let Some(open) = shared.downtime.take_open() {
        let _ = events.send(report::downtime_event(started_at, &open));
        collector.episodes.push(open);
    }
    let duration = ended.saturating_duration_since(start);
    Ok(report::build(
        plan,
        collector,
        started_at,
        duration,
        cancel.is_cancelled(),
    ))
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
    cancel: CancellationToken,
    downtime: DowntimeTracker,
}

impl Shared {
    fn past_deadline(&self, now: Instant) -> bool {
        self.deadline.is_some_and(|d| now >= d)
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
    let stats = ThreadStats::new(thread, shared.start, tx);
    let open = shared.schedule.is_some();
    let ctx = Rc::new(ThreadCtx {
        thread,
        stats: RefCell::new(stats),
        live: Live {
            count: Cell::new(0),
            zero: Notify::new(),
        },
        dispatch: open.then(Dispatch::default),
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
        let initial = initial_users(&ctx.shared);
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
    ctx.stats.borrow_mut().finish();
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
    let per_thread = peak / shared.threads as f64 * 0.002;
    (per_thread.ceil() as usize).clamp(2, shared.max_connections_per_thread)
}

fn spawn_user(ctx: &Rc<ThreadCtx>) {
    if let Some(d) = &ctx.dispatch {
        d.users.set(d.users.get() + 1);
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
    }
    while let Some(job) = next_job(ctx).await {
        let sent = Instant::now();
        let result = tokio::time::timeout(shared.timeout, attempt(&mut conn, shared)).await;
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
        ctx.stats.borrow_mut().record(
            job.intended.unwrap_or(sent),
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
    shared: &Shared,
) -> Result<super::http::Reply, Failure> {
    let c = match conn {
        Some(c) => c,
        None => conn.insert(Connection::open(shared.addr).await?),
    };
    c.exchange(&shared.request, shared.head).await
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
        Some(d) => d.take().await,
    }
}

/// Open model, per thread: scheduled jobs waiting for a free user.
#[derive(Default)]
struct Dispatch {
    queue: RefCell<VecDeque<Instant>>,
    /// Users waiting for a job.
    idle: Cell<usize>,
    /// Users started on this thread.
    users: Cell<usize>,
    /// No more jobs will come.
    closed: Cell<bool>,
    /// A job was queued (or the dispatcher closed).
    ready: Notify,
    /// A job was taken off the queue.
    room: Notify,
}

impl Dispatch {
    async fn take(&self) -> Option<Job> {
        loop {
            let job = self.queue.borrow_mut().pop_front();
            if let Some(intended) = job {
                self.room.notify_one();
                if !self.queue.borrow().is_empty() {
                    // Notifications coalesce; pass the wake on so no job waits beside an idle user.
                    self.ready.notify_one();
                }
                return Some(Job {
                    intended: Some(intended),
                });
            }
            if self.closed.get() {
                return None;
            }
            self.idle.set(self.idle.get() + 1);
            self.ready.notified().await;
            self.idle.set(self.idle.get() - 1);
        }
    }
}

/// Releases this thread's share of the schedule (sends k ≡ thread mod threads) at their
/// intended times, growing the pool of users when all are busy.
async fn dispatch(ctx: &Rc<ThreadCtx>) {
    let shared = &*ctx.shared;
    let (Some(d), Some(schedule)) = (&ctx.dispatch, &shared.schedule) else {
        return;
    };
    let step = shared.threads as u64;
    let mut k = ctx.thread as u64;
    loop {
        if shared.max_requests.is_some_and(|max| k >= max) {
            break;
        }
        let Some(offset) = schedule.offset(k) else {
            break;
        };
        let intended = shared.start + offset;
        if shared.past_deadline(intended) {
            break;
        }
        wait_until(intended).await;
        if shared.cancel.is_cancelled() {
            break;
        }
        // At the connection cap with a job already waiting for every user: hold the next
        // one back (it will leave late, and be counted so) instead of queueing without end.
        while d.users.get() >= shared.max_connections_per_thread
            && d.queue.borrow().len() >= d.users.get()
        {
            d.room.notified().await;
        }
        d.queue.borrow_mut().push_back(intended);
        d.ready.notify_one();
        if d.queue.borrow().len() > d.idle.get()
            && d.users.get() < shared.max_connections_per_thread
        {
            spawn_user(ctx);
        }
        k += step;
    }
    d.closed.set(true);
    d.ready.notify_waiters();
}

/// Waits until `at` more precisely than the runtime's millisecond timer: sleep until
/// about a millisecond before, then yield until it is time.
async fn wait_until(at: Instant) {
    loop {
        let now = Instant::now();
        if now >= at {
            return;
        }
        if at - now > Duration::from_millis(2) {
            tokio::time::sleep_until((at - Duration::from_millis(1)).into()).await;
        } else {
            tokio::task::yield_now().await;
        }
    }
}
