//! CPU and memory of a pod process, for `metrics.k8s.io` (`kubectl top pods`) and the HPA,
//! which must use the same numbers. A [`UsageSample`] is a point reading (CPU time used so
//! far, resident memory); two samples give CPU usage in nanocores over their window, as
//! metrics-server reports it.
//!
//! Linux reads `/proc/<pid>/stat` once per sample: utime + stime (in
//! `sysconf(_SC_CLK_TCK)` ticks) and rss (resident pages × page size; the same figure as
//! `statm`'s second field). One file, not two: the lab samples every pod every second.
//! On other systems (macOS) there is no /proc and [`sample`] returns `None`: the lab then
//! serves no pod metrics and the HPA reports it cannot read CPU, as upstream does without
//! metrics-server.

use std::time::{Duration, Instant};

/// One reading of a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UsageSample {
    /// When it was read.
    pub at: Instant,
    /// CPU time used since the process started (user + system, all threads).
    pub cpu: Duration,
    /// Resident memory in bytes.
    pub memory_bytes: u64,
}

/// Usage over a window, as `metrics.k8s.io` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    /// CPU in nanocores (1 core = 1_000_000_000).
    pub nanocores: u64,
    /// Resident memory in bytes at the end of the window.
    pub memory_bytes: u64,
    /// The window the CPU figure covers.
    pub window: Duration,
}

/// Reads `pid` now; `None` when the process is gone or the OS has no /proc.
pub fn sample(pid: i32) -> Option<UsageSample> {
    imp::sample(pid)
}

/// CPU usage between two samples of the same process (`None` if `later` is not later).
pub fn usage_between(earlier: &UsageSample, later: &UsageSample) -> Option<Usage> {
    let window = later.at.checked_duration_since(earlier.at)?;
    if window.is_zero() {
        return None;
    }
    let cpu = later.cpu.saturating_sub(earlier.cpu);
    let nanocores = (cpu.as_nanos() * 1_000_000_000 / window.as_nanos()) as u64;
    Some(Usage {
        nanocores,
        memory_bytes: later.memory_bytes,
        window,
    })
}

/// Keeps the previous sample of one process so each poll yields usage since the last.
#[derive(Debug, Clone)]
pub struct UsageMeter {
    pid: i32,
    last: Option<UsageSample>,
}

impl UsageMeter {
    /// A meter for `pid` (the first poll only primes it).
    pub fn new(pid: i32) -> UsageMeter {
        UsageMeter { pid, last: None }
    }

    /// Samples now; returns usage since the previous poll (none on the first poll, when
    /// the process is gone, or without /proc).
    pub fn poll(&mut self) -> Option<Usage> {
        let now = sample(self.pid)?;
        let usage = self.last.and_then(|last| usage_between(&last, &now));
        self.last = Some(now);
        usage
    }
}

/// CPU ticks (utime + stime) and resident pages (rss) from the text of `/proc/<pid>/stat`.
/// The command name (field 2) is in parentheses and may contain spaces or `)`, so fields
/// are counted from the last `)`.
fn stat_fields(stat: &str) -> Option<(u64, u64)> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    // After ")" come field 3 (state) onwards: utime is field 14, stime 15, rss 24.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    let rss: i64 = fields.nth(8)?.parse().ok()?;
    Some((utime + stime, u64::try_from(rss).unwrap_or(0)))
}

#[cfg(target_os = "linux")]
mod imp {
    use std::sync::OnceLock;
    use std::time::{Duration, Instant};

    use nix::unistd::{SysconfVar, sysconf};

    use super::{UsageSample, stat_fields};

    /// (ticks per second, page size), read once.
    fn units() -> Option<(u64, u64)> {
        static UNITS: OnceLock<Option<(u64, u64)>> = OnceLock::new();
        *UNITS.get_or_init(|| {
            let ticks = sysconf(SysconfVar::CLK_TCK).ok()??;
            let page = sysconf(SysconfVar::PAGE_SIZE).ok()??;
            Some((u64::try_from(ticks).ok()?, u64::try_from(page).ok()?))
        })
    }

    pub fn sample(pid: i32) -> Option<UsageSample> {
        let (ticks_per_sec, page_size) = units()?;
        let at = Instant::now();
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let (ticks, pages) = stat_fields(&stat)?;
        let cpu = Duration::from_nanos(ticks * 1_000_000_000 / ticks_per_sec.max(1));
        Some(UsageSample {
            at,
            cpu,
            memory_bytes: pages * page_size,
        })
    }
}

#[cfg(not(target_os = "linux"))]
mod imp {
    use super::UsageSample;

    /// No /proc: no figures (see the module documentation).
    pub fn sample(_pid: i32) -> Option<UsageSample> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_parsing_survives_odd_command_names() {
        let stat = "4242 (we ird) name)) S 1 4242 4242 0 -1 4194560 100 0 0 0 \
                    250 50 0 0 20 0 3 0 12345 1000000 512 18446744073709551615";
        assert_eq!(stat_fields(stat), Some((300, 512)));
        assert_eq!(stat_fields("garbage"), None);
        // A truncated line (no rss) is no sample, not a zero.
        assert_eq!(
            stat_fields("1 (x) S 1 1 1 0 -1 0 0 0 0 0 250 50 0 0 20 0 3 0 1 2"),
            None
        );
    }

    #[test]
    fn usage_is_cpu_time_over_the_window_in_nanocores() {
        let at = Instant::now();
        let earlier = UsageSample {
            at,
            cpu: Duration::from_millis(1000),
            memory_bytes: 1,
        };
        let later = UsageSample {
            at: at + Duration::from_secs(2),
            cpu: Duration::from_millis(1500),
            memory_bytes: 20 << 20,
        };
        let usage = usage_between(&earlier, &later).unwrap();
        // 0.5 s of CPU over 2 s = a quarter core.
        assert_eq!(usage.nanocores, 250_000_000);
        assert_eq!(usage.memory_bytes, 20 << 20);
        assert_eq!(usage_between(&later, &earlier), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_busy_thread_shows_as_cpu_usage_of_this_process() {
        use nix::time::{ClockId, clock_gettime};
        let thread_cpu =
            || Duration::from(clock_gettime(ClockId::CLOCK_THREAD_CPUTIME_ID).unwrap());
        let pid = std::process::id() as i32;
        let mut meter = UsageMeter::new(pid);
        assert_eq!(meter.poll(), None, "the first poll only primes");
        let (start, cpu_start) = (Instant::now(), thread_cpu());
        // Spin until this thread has had 300 ms of CPU (bounded in wall time): on a busy
        // machine that takes longer, and the meter must report what the thread really got.
        let mut x = 0u64;
        while thread_cpu() - cpu_start < Duration::from_millis(300)
            && start.elapsed() < Duration::from_secs(30)
        {
            x = std::hint::black_box(x.wrapping_add(1));
        }
        let used = thread_cpu() - cpu_start;
        let usage = meter.poll().expect("a second poll gives usage");
        let wall = start.elapsed();
        // The meter's window lies inside `wall`, so it sees at least this share of a core
        // (less /proc's 10 ms clock-tick granularity).
        let floor = (used.as_secs_f64() - 0.02) / wall.as_secs_f64() * 1e9;
        assert!(
            usage.nanocores as f64 >= floor * 0.9,
            "{usage:?}: {used:?} of CPU in {wall:?}"
        );
        assert!(usage.memory_bytes > 1 << 20, "{usage:?}");
        assert_eq!(sample(-5), None);
    }
}
