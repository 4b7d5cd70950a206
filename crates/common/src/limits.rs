//! The open-file limit, raised to what the system allows.
//!
//! Many systems start a process with a soft limit of 1024 open files and a hard limit far
//! above it. A lab holds a few descriptors per pod (its output pipes, a probe's
//! connection, the watches of its clients), and `resil load` one per connection: a
//! thousand pods, or a few hundred connections beside a lab, pass 1024. Go programs (the
//! kubelet, the API server, kubectl) get their soft limit raised to the hard one by the Go
//! runtime at start; `resil` does the same, first thing in `main`.

/// Raises the soft limit on open files to the hard limit. Returns (before, after), or
/// `None` where the limit cannot be read or changed (it stays as it was).
pub fn raise_open_files() -> Option<(u64, u64)> {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).ok()?;
    if soft >= hard {
        return Some((soft, soft));
    }
    // macOS refuses a soft limit above OPEN_MAX even when the hard limit is unlimited.
    let want = if cfg!(target_os = "macos") {
        hard.min(10_240)
    } else {
        hard
    };
    // Linux refuses a soft limit above fs.nr_open, which an unlimited hard limit is.
    let nr_open = || -> Option<u64> {
        std::fs::read_to_string("/proc/sys/fs/nr_open")
            .ok()?
            .trim()
            .parse()
            .ok()
    };
    if want > soft && setrlimit(Resource::RLIMIT_NOFILE, want, hard).is_err() {
        let capped = want.min(nr_open()?);
        if capped > soft {
            setrlimit(Resource::RLIMIT_NOFILE, capped, hard).ok()?;
        }
        return Some((soft, capped.max(soft)));
    }
    Some((soft, want.max(soft)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::resource::{Resource, getrlimit, setrlimit};

    #[test]
    fn the_soft_limit_is_raised_to_the_hard_one() {
        let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
        let low = hard.min(256);
        setrlimit(Resource::RLIMIT_NOFILE, low, hard).unwrap();
        let (before, after) = raise_open_files().unwrap();
        assert_eq!(before, low);
        let (soft, _) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
        assert_eq!(soft, after);
        assert!(soft == hard || (cfg!(target_os = "macos") && soft == 10_240));
    }
}
