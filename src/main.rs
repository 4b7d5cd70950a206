//! The `resil` binary: parse arguments, start the runtime, hand over to the library.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // First, while this is the only thread: a pod process started by a lab dies with it.
    resil_common::lifeline::die_with_lab();
    resil::exit::end_quietly_on_closed_output();
    let files = resil_common::limits::raise_open_files();
    let cli = resil::cli::Cli::parse();
    resil::logging::init(&cli.global);
    if let Some((before, after)) = files.filter(|(b, a)| b != a) {
        tracing::debug!("open-file limit raised from {before} to {after}");
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("resil: cannot start the async runtime: {err}");
            return ExitCode::from(2);
        }
    };
    let exit = runtime.block_on(resil::run(cli));
    // Background tasks (watch streams, child reapers) must not keep the process alive.
    runtime.shutdown_timeout(std::time::Duration::from_millis(200));
    exit.into()
}
