//! Process exit codes shared by every command: what CI pipelines and scripts key on, and
//! how the process ends when its output is closed under it (`resil lab status | head -1`).

use std::any::Any;
use std::process::ExitCode;

/// How a command ended, as the process exit code scripts and CI read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Everything ran and every check held (0).
    Ok,
    /// The command ran, but a service-level objective or threshold failed (1).
    SloFailed,
    /// resil itself could not do what was asked: bad input, unreachable cluster, I/O (2).
    Error,
    /// Stopped by Ctrl-C / SIGINT after cleaning up (130).
    Interrupted,
}

impl Exit {
    /// The numeric code.
    pub fn code(self) -> u8 {
        match self {
            Exit::Ok => 0,
            Exit::SloFailed => 1,
            Exit::Error => 2,
            Exit::Interrupted => 130,
        }
    }
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> Self {
        ExitCode::from(exit.code())
    }
}

/// Resolves on Ctrl-C or SIGTERM: what ends a long-running command with cleanup and
/// [`Exit::Interrupted`]. Shared so every command stops on the same signals.
pub async fn interrupted() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        // Ctrl-C in the terminal.
        _ = tokio::signal::ctrl_c() => {}
        // `kill` or a supervisor stopping us.
        () = term => {}
    }
}

/// Makes a print to a closed stdout or stderr end the process quietly with [`Exit::Ok`],
/// as `resil::run` does for a broken pipe a command returns as an error. Called once by
/// `main`, before any command runs.
///
/// Why a panic hook: Rust ignores SIGPIPE, so a write to a closed pipe fails with EPIPE,
/// and `println!` turns that failure into a panic ("failed printing to stdout: Broken
/// pipe"). Restoring SIGPIPE's default action instead would also kill the lab daemon and
/// its pod supervision on any pipe write, and would end with a signal, not exit 0. The
/// hook leaves every other panic to the default hook.
pub fn end_quietly_on_closed_output() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if is_closed_output_panic(info.payload()) {
            // Nobody reads what would follow; the other threads end with the process.
            std::process::exit(Exit::Ok.code().into());
        }
        default(info);
    }));
}

/// Whether a panic is `print!`'s (or `eprint!`'s) on a closed pipe.
fn is_closed_output_panic(payload: &(dyn Any + Send)) -> bool {
    let text = match payload.downcast_ref::<String>() {
        Some(text) => text.as_str(),
        None => match payload.downcast_ref::<&str>() {
            Some(text) => text,
            None => return false,
        },
    };
    // std's message is `failed printing to {stdout|stderr}: {io error}`.
    let epipe = std::io::Error::from_raw_os_error(nix::libc::EPIPE).to_string();
    (text.starts_with("failed printing to stdout: ")
        || text.starts_with("failed printing to stderr: "))
        && text.ends_with(&epipe)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_print_to_a_closed_pipe_counts_as_closed_output() {
        let epipe = std::io::Error::from_raw_os_error(nix::libc::EPIPE);
        let closed: Box<dyn Any + Send> = Box::new(format!("failed printing to stdout: {epipe}"));
        assert!(is_closed_output_panic(closed.as_ref()));
        let stderr: Box<dyn Any + Send> = Box::new(format!("failed printing to stderr: {epipe}"));
        assert!(is_closed_output_panic(stderr.as_ref()));
        let full = std::io::Error::from_raw_os_error(nix::libc::ENOSPC);
        let other: Box<dyn Any + Send> = Box::new(format!("failed printing to stdout: {full}"));
        assert!(!is_closed_output_panic(other.as_ref()));
        let bug: Box<dyn Any + Send> = Box::new("index out of bounds");
        assert!(!is_closed_output_panic(bug.as_ref()));
    }

    #[test]
    fn codes_match_the_documented_contract() {
        assert_eq!(Exit::Ok.code(), 0);
        assert_eq!(Exit::SloFailed.code(), 1);
        assert_eq!(Exit::Error.code(), 2);
        assert_eq!(Exit::Interrupted.code(), 130);
    }
}
