//! Burning CPU on purpose: [`burn_cpu`] uses a given amount of CPU time on the calling
//! thread (`/work?ms=`), [`CpuBurner`] keeps a share of one core busy in the background
//! until told to stop (the `cpu_burn_percent` fault). Both exist so the HPA and
//! `kubectl top` see real CPU. Both count the thread's own CPU time (not wall time), so
//! on a busy machine a request still costs the CPU it asked for — it just takes longer.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Duty-cycle period of the background burn: short enough that a sampler with a window of
/// a second or more sees a steady share.
const PERIOD: Duration = Duration::from_millis(100);

/// A thread starved of CPU for this many times its ask gives up (bounded work).
const STARVED_FACTOR: u32 = 10;

/// Uses `cpu` of CPU time on the calling thread, giving up at `STARVED_FACTOR` × `cpu`
/// of wall time. Call it on a blocking thread, never on the async runtime.
pub(crate) fn burn_cpu(cpu: Duration) {
    burn_cpu_until(cpu, Instant::now() + cpu * STARVED_FACTOR);
}

/// Uses up to `cpu` of CPU time on the calling thread, stopping at `deadline` at the
/// latest. Without a thread CPU clock, spins for `cpu` of wall time instead.
fn burn_cpu_until(cpu: Duration, deadline: Instant) {
    let Some(start) = thread_cpu() else {
        spin_until(deadline.min(Instant::now() + cpu));
        return;
    };
    let mut x: u64 = 1;
    loop {
        x = spin_a_little(x);
        let used = thread_cpu().map_or(cpu, |now| now.saturating_sub(start));
        if used >= cpu || Instant::now() >= deadline {
            return;
        }
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

#[derive(Debug, Default)]
struct BurnState {
    percent: AtomicU32,
    running: AtomicBool,
}

impl CpuBurner {
    pub fn new() -> CpuBurner {
        CpuBurner {
            inner: Arc::new(BurnState::default()),
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
        burn_cpu_until(PERIOD * percent / 100, period_end);
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
        burn_cpu_until(Duration::from_millis(30), start + Duration::from_secs(60));
        let used = thread_cpu().unwrap() - before;
        assert!(used >= Duration::from_millis(30), "{used:?}");
        assert!(start.elapsed() >= Duration::from_millis(30));
    }

    #[test]
    fn the_burn_thread_stops_when_set_to_zero() {
        let burner = CpuBurner::new();
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
