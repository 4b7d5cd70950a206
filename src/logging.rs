//! Tracing set-up for the binary: `-v` raises the level, `RUST_LOG` wins when set,
//! `--no-color`/`NO_COLOR` turn ANSI colour off. Logs go to stderr so stdout stays
//! clean for tables and JSON.

use tracing_subscriber::EnvFilter;

use crate::cli::GlobalArgs;

/// Installs the global tracing subscriber. Called once by `main`.
pub fn init(global: &GlobalArgs) {
    let default = match global.verbose {
        0 => "warn",
        1 => "resil=info,warn",
        2 => "resil=debug,info",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(global.color_enabled())
        .try_init();
}
