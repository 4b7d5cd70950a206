//! Burning CPU on purpose: [`burn_cpu`] uses a given amount of CPU time on the calling
//! thread (`/work?ms=`), [`CpuBurner`] keeps a share of one core busy in the background
//! until told to stop (the `cpu_burn_percent` fault). Both exist so the HPA and
//! `kubectl top` see real CPU. Both count the thread's own CPU time (not wall time), so
//! on a busy machine a request still costs the CPU it asked for — it just takes longer.
//!
//! Both draw on one [`CpuQuota`], the app's CPU limit (`resil demo-app --cpu-limit`, which
//! the lab's kubelet sets from the container's `resources.limits.cpu`). It works like the
//! kernel's CFS bandwidth control that enforces a container's limit on a real node: in
//! each 100 ms period the burns may use `limit × 100 ms` of CPU between them, and a burn
//! that finds the period's quota spent waits for the next period (it is throttled). So on
//! the lab, where pods are plain processes, a pod saturates at its limit the way a
//! container does, and more pods mean more capacity.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Duty-cycle period of the background burn, and the CFS period of [`CpuQuota`] (the
/// kernel's default `cpu.cfs_period_us`): short enough that a sampler with a window of a
/// second or more sees a steady share.
const PERIOD: Duration = Duration::from_millis(100);

/// A thread starved of CPU for this many times its ask gives up (bounded work). Time spent
/// throttled by the quota does not count: that is the limit doing its job.
const STARVED_FACTOR: u32 = 10;

/// The longest a burn waits in all for quota before it gives up (bounded work when a pod
/// is far over its limit).
const MAX_THROTTLED: Duration = Duration::from_secs(30);

/// Granularity of quota grants: a burn takes at most this much CPU per grant, so
/// concurrent burns share a period fairly and overrun the quota by little.
const SLICE: Duration = Duration::from_millis(1);

/// A process-wide CPU limit, CFS style: `limit × PERIOD` of CPU per period for all burns
/// together. Unlimited without a limit. Shared (`Arc`) by `/work` and the CPU burner.
#[derive(Debug)]
pub(crate) struct CpuQuota {
    /// CPU allowed per period; `None` is no limit.
    per_period: Option<Duration>,
    period: Mutex<QuotaPeriod>,
}

#[derive(Debug)]
struct QuotaPeriod {
    start: Instant,
    used: Duration,
}

impl CpuQuota {
    /// A quota of `limit_millicores` thousandths of a core (`None`: unlimited).
    pub fn new(limit_millicores: Option<u64>) -> CpuQuota {
        CpuQuota {
            per_period: limit_millicores.map(|millis| {
                Duration::from_nanos((PERIOD.as_nanos() as u64).saturating_mul(millis) / 1000)
            }),
            period: Mutex::new(QuotaPeriod {
                start: Instant::now(),
                used: Duration::ZERO,
            }),
        }
    }

    /// Grants up to `want` of CPU from the current period, sleeping through spent periods
    /// first. `None` once the wait would pass `give_up` (then nothing is granted).
    fn take(&self, want: Duration, give_up: Instant) -> Option<Duration> {
        let Some(quota) = self.per_period else {
            return Some(want);
        };
        if quota.is_zero() {
            return None;
        }
        loop {
            let now = Instant::now();
            let wake = {
                let mut period = self.period.lock().unwrap_or_else(|e| e.into_inner());
                let elapsed = now.saturating_duration_since(period.start);
                if elapsed >= PERIOD {
                    // Periods are aligned to the first one, like the kernel's timer.
                    let whole = (elapsed.as_nanos() / PERIOD.as_nanos()) as u32;
                    period.start += PERIOD * whole;
                    period.used = Duration::ZERO;
                }
                if period.used < quota {
                    let grant = want.min(quota - period.used);
                    period.used += grant;
                    return Some(grant);
                }
                period.start + PERIOD
            };
            if wake > give_up {
                return None;
            }
            std::thread::sleep(wake.saturating_duration_since(now));
        }
    }
}

/// Uses `cpu` of CPU time on the calling thread within `quota`, giving up at
/// `STARVED_FACTOR` × `cpu` of unthrottled wall time or after `MAX_THROTTLED` of waiting
/// for quota. Call it on a blocking thread, never on the async runtime.
pub(crate) fn burn_cpu(cpu: Duration, quota: &CpuQuota) {
    let start = Instant::now();
    burn_cpu_until(
        cpu,
        start + cpu * STARVED_FACTOR,
        start + MAX_THROTTLED,
        quota,
    );
}

/// Uses up to `cpu` of CPU time on the calling thread, in quota grants. Stops when the
/// unthrottled wall time passes `deadline` (time spent waiting for quota moves it
/// later) or when quota would come after `give_up`. Without a thread CPU clock, spins
/// for wall time instead.
fn burn_cpu_until(cpu: Duration, mut deadline: Instant, give_up: Instant, quota: &CpuQuota) {
    let mut left = cpu;
    let mut x: u64 = 1;
    while !left.is_zero() {
        let asked = Instant::now();
        let Some(grant) = quota.take(left.min(SLICE), give_up) else {
            return;
        };
        deadline += asked.elapsed();
        let Some(start) = thread_cpu() else {
            spin_until(deadline.min(Instant::now() + grant));
            left -= grant;
            continue;
        };
        loop {
            x = spin_a_little(x);
            let used = thread_cpu().map_or(grant, |now| now.saturating_sub(start));
            if used >= grant {
                break;
            }
            if Instant::now() >= deadline {
                return;
            }
        }
        left -= grant;
    }
}

fn spin_until(end: Instant) {
    let mut x: u64 = 1;
    while Instant::now() < end {
        x = spin_a_little(x);
    }
}

/// About ten microseconds of arithmetic the optimiser must keep (black_box).
fn spin_a_little(mut x: u64) -> u64 {
    for _ in 0..10_000 {
        x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
    }
    x
}

/// CPU time used by the calling thread so far.
#[cfg(any(target_os = "linux", target_os = "macos"))]
fn thread_cpu() -> Option<Duration> {
    use nix::time::{ClockId, clock_gettime};
    let t = clock_gettime(ClockId::CLOCK_THREAD_CPUTIME_ID).ok()?;
    let secs = u64::try_from(t.tv_sec()).ok()?;
    let nanos = u32::try_from(t.tv_nsec()).ok()?;
    Some(Duration::new(secs, nanos))
}

#[cfg(not(any(target_os = "linux", target_os = "macos")))]
fn thread_cpu() -> Option<Duration> {
    None
}

/// A background thread that keeps `percent` of one core busy while `percent > 0`.
/// Cheap to clone (shared); at most one burn thread runs at a time.
#[derive(Debug, Clone)]
pub(crate) struct CpuBurner {
    inner: Arc<BurnState>,
}

#[derive(Debug)]
struct BurnState {
    percent: AtomicU32,
    running: AtomicBool,
    quota: Arc<CpuQuota>,
}

impl CpuBurner {
    /// A burner whose burn counts against `quota`.
    pub fn new(quota: Arc<CpuQuota>) -> CpuBurner {
        CpuBurner {
            inner: Arc::new(BurnState {
                percent: AtomicU32::new(0),
                running: AtomicBool::new(false),
                quota,
            }),
        }
    }

    /// Sets the share to burn (0 stops the thread within one period).
    pub fn set(&self, percent: u32) {
        self.inner.percent.store(percent.min(100), Ordering::SeqCst);
        if percent > 0 {
            start_if_idle(&self.inner);
        }
    }

    /// Whether the burn thread is running (for tests).
    #[cfg(test)]
    pub fn is_running(&self) -> bool {
        self.inner.running.load(Ordering::SeqCst)
    }
}

fn start_if_idle(state: &Arc<BurnState>) {
    if state
        .running
        .compare_exchange(false, true, Ordering::SeqCst, Ordering::SeqCst)
        .is_err()
    {
        return; // already burning; it picks up the new share next period
    }
    let state_for_thread = Arc::clone(state);
    let spawned = std::thread::Builder::new()
        .name("cpu-burn".into())
        .spawn(move || burn(&state_for_thread));
    if let Err(err) = spawned {
        state.running.store(false, Ordering::SeqCst);
        tracing::warn!("cannot start the CPU burn thread: {err}");
    }
}

fn burn(state: &BurnState) {
    loop {
        let percent = state.percent.load(Ordering::SeqCst);
        if percent == 0 {
            state.running.store(false, Ordering::SeqCst);
            // A `set` between our load and the store above saw `running` still true and
            // did not start a thread: take the burn back up ourselves.
            let again = state.percent.load(Ordering::SeqCst) > 0
                && state
                    .running
                    .compare_exchange(false, true, Ordering::SeqCst, Ordering::SeqCst)
                    .is_ok();
            if again {
                continue;
            }
            return;
        }
        let period_end = Instant::now() + PERIOD;
        burn_cpu_until(PERIOD * percent / 100, period_end, period_end, &state.quota);
        std::thread::sleep(period_end.saturating_duration_since(Instant::now()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burn_cpu_uses_the_cpu_time_it_was_asked_for() {
        let start = Instant::now();
        let before = thread_cpu().unwrap();
        // A far deadline: this checks the accounting, not the cap for a starved thread
        // (which a busy machine would hit).
        let far = start + Duration::from_secs(60);
        burn_cpu_until(Duration::from_millis(30), far, far, &CpuQuota::new(None));
        let used = thread_cpu().unwrap() - before;
        assert!(used >= Duration::from_millis(30), "{used:?}");
        assert!(start.elapsed() >= Duration::from_millis(30));
    }

    #[test]
    fn a_cpu_limit_throttles_a_burn_to_its_share_of_each_period() {
        // 200m: 20 ms of CPU per 100 ms period, so 60 ms of CPU needs three periods and
        // ends in the third, at least 200 ms after the quota's first period began.
        let quota = CpuQuota::new(Some(200));
        let start = Instant::now();
        let before = thread_cpu().unwrap();
        burn_cpu(Duration::from_millis(60), &quota);
        let used = thread_cpu().unwrap() - before;
        assert!(used >= Duration::from_millis(60), "{used:?}");
        let took = start.elapsed();
        assert!(
            took >= Duration::from_millis(195),
            "a 200m limit let 60 ms of CPU through in {took:?}"
        );
    }

    #[test]
    fn concurrent_burns_share_one_limit() {
        // 500m between two threads burning 50 ms each: 100 ms of CPU at 50 ms per period
        // cannot end before the second period has begun.
        let quota = Arc::new(CpuQuota::new(Some(500)));
        let start = Instant::now();
        let threads: Vec<_> = (0..2)
            .map(|_| {
                let quota = Arc::clone(&quota);
                std::thread::spawn(move || burn_cpu(Duration::from_millis(50), &quota))
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        let took = start.elapsed();
        assert!(
            took >= Duration::from_millis(100),
            "two burns beat their shared limit: {took:?}"
        );
    }

    #[test]
    fn a_burn_gives_up_rather_than_wait_past_its_bound_for_quota() {
        let quota = CpuQuota::new(Some(100));
        let now = Instant::now();
        // The period's 10 ms are granted, then the next grant would come after `give_up`.
        assert_eq!(
            quota.take(Duration::from_millis(10), now),
            Some(Duration::from_millis(10))
        );
        assert_eq!(quota.take(Duration::from_millis(1), now), None);
        assert_eq!(
            CpuQuota::new(Some(0)).take(Duration::from_millis(1), now),
            None
        );
        // Unlimited grants all at once.
        let all = Duration::from_secs(5);
        assert_eq!(CpuQuota::new(None).take(all, now), Some(all));
    }

    #[test]
    fn the_burn_thread_stops_when_set_to_zero() {
        let burner = CpuBurner::new(Arc::new(CpuQuota::new(None)));
        burner.set(20);
        assert!(burner.is_running());
        burner.set(0);
        let deadline = Instant::now() + Duration::from_secs(5);
        while burner.is_running() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(!burner.is_running(), "the burn thread kept running");
    }
}
