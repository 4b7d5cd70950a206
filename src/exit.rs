//! Process exit codes shared by every command: what CI pipelines and scripts key on.

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_match_the_documented_contract() {
        assert_eq!(Exit::Ok.code(), 0);
        assert_eq!(Exit::SloFailed.code(), 1);
        assert_eq!(Exit::Error.code(), 2);
        assert_eq!(Exit::Interrupted.code(), 130);
    }
}
