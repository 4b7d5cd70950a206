//! The committed command reference (`docs/cli.md`) must be what the clap definitions
//! generate today, so it never drifts from the binary. Run with `RESIL_UPDATE_DOCS=1` to
//! rewrite it.

use std::path::Path;

use clap::CommandFactory;
use resil::cli::Cli;

const REGENERATE: &str = "RESIL_UPDATE_DOCS=1 cargo nextest run -E 'test(/cli_reference/)'";

#[test]
fn cli_reference_in_docs_matches_the_clap_definitions() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/cli.md");
    let generated = resil::cli_docs::markdown(&Cli::command());
    if std::env::var_os("RESIL_UPDATE_DOCS").is_some_and(|v| !v.is_empty()) {
        resil::atomic::write(&path, generated.as_bytes()).expect("write docs/cli.md");
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    if committed != generated {
        let first = committed
            .lines()
            .zip(generated.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| committed.lines().count().min(generated.lines().count()));
        panic!(
            "docs/cli.md is out of date with src/cli.rs (first difference at line {}: \
             committed {:?}, generated {:?}).\nRegenerate it with:\n    {REGENERATE}",
            first + 1,
            committed.lines().nth(first).unwrap_or("<end of file>"),
            generated.lines().nth(first).unwrap_or("<end of file>"),
        );
    }
}

#[test]
fn cli_reference_documents_every_command() {
    let generated = resil::cli_docs::markdown(&Cli::command());
    let cmd = Cli::command();
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let heading = format!("## `resil {}`", sub.get_name());
        assert!(generated.contains(&heading), "missing {heading}");
        for inner in sub.get_subcommands() {
            let heading = format!("### `resil {} {}`", sub.get_name(), inner.get_name());
            assert!(generated.contains(&heading), "missing {heading}");
        }
    }
}
