//! Burning CPU on purpose: [`spin_for`] keeps one thread busy for a while (`/work?ms=`),
//! [`CpuBurner`] keeps a share of one core busy in the background until told to stop
//! (the `cpu_burn_percent` fault). Both exist so the HPA and `kubectl top` see real CPU.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Duty-cycle period of the background burn: short enough that a sampler with a window of
/// a second or more sees a steady share.
const PERIOD: Duration = Duration::from_millis(100);

/// Keeps the calling thread busy for `duration` of wall-clock time. Call it on a
/// blocking thread, never on the async runtime.
pub(crate) fn spin_for(duration: Duration) {
    let end = Instant::now() + duration;
    let mut x: u64 = 1;
    while Instant::now() < end {
        for _ in 0..1_000 {
            // Cheap arithmetic the optimiser must keep (black_box), so the core is busy.
            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
    }
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
        let busy = PERIOD * percent / 100;
        spin_for(busy);
        std::thread::sleep(PERIOD - busy);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spin_for_takes_at_least_its_duration() {
        let start = Instant::now();
        spin_for(Duration::from_millis(30));
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
