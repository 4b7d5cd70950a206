//! A pod process dies with its lab, even a lab killed with SIGKILL.
//!
//! The lab starts each pod process with [`LAB_PID_ENV`] set to its own pid and no hook of
//! its own in the child: a `pre_exec` hook would force `fork`, which copies the page
//! tables of the whole lab for every pod (most of the lab's CPU while a thousand pods
//! start), where `posix_spawn` (`vfork`-like) copies nothing. The child, the `resil`
//! binary, calls [`die_with_lab`] first thing in `main`: it asks for a parent-death signal
//! (`PR_SET_PDEATHSIG`, SIGKILL) and, if its parent is no longer the lab (it died between
//! the spawn and the request), ends at once.
//!
//! The kernel sends the signal when the parent *thread* ends, so the lab spawns pod
//! processes from one thread that lives as long as it does.

/// The variable that names the lab's pid in a pod process's environment.
pub const LAB_PID_ENV: &str = "RESIL_LAB_PID";

/// If this process was started by a lab, ties its life to the lab's (see the module doc).
/// Call before any other thread starts: it removes [`LAB_PID_ENV`] from the environment.
pub fn die_with_lab() {
    let Some(value) = std::env::var_os(LAB_PID_ENV) else {
        return;
    };
    // SAFETY: called first thing in `main`, before the process starts any other thread,
    // so nothing reads the environment concurrently.
    unsafe { std::env::remove_var(LAB_PID_ENV) };
    let Some(lab) = value.to_str().and_then(|v| v.parse::<u32>().ok()) else {
        return;
    };
    #[cfg(target_os = "linux")]
    {
        use nix::sys::signal::Signal;
        let armed = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).is_ok();
        // The lab may have died before the request: then no signal will come.
        if !armed || nix::unistd::getppid().as_raw() as u32 != lab {
            std::process::exit(1);
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = lab;
}
