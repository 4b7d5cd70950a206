//! The committed command reference (`docs/cli.md`) and man pages (`docs/man/*.1`, by
//! clap_mangen) must be what the clap definitions generate today, so they never drift from
//! the binary. Run with `RESIL_UPDATE_DOCS=1` to rewrite them.

use std::collections::BTreeMap;
use std::path::Path;

use clap::CommandFactory;
use resil::cli::Cli;

const REGENERATE: &str = "RESIL_UPDATE_DOCS=1 cargo nextest run -E 'test(/cli_reference/)'";

fn updating() -> bool {
    std::env::var_os("RESIL_UPDATE_DOCS").is_some_and(|v| !v.is_empty())
}

/// The `*.1` files in a directory, by name.
fn man_files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return BTreeMap::new();
    };
    entries
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".1"))
        .map(|e| {
            let bytes = std::fs::read(e.path()).expect("readable man page");
            (e.file_name().to_string_lossy().into_owned(), bytes)
        })
        .collect()
}

#[test]
fn cli_reference_in_docs_matches_the_clap_definitions() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/cli.md");
    let generated = resil::cli_docs::markdown(&Cli::command());
    if updating() {
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

#[test]
fn cli_reference_man_pages_in_docs_match_the_clap_definitions() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/man");
    let tmp = tempfile::tempdir().expect("temp dir");
    clap_mangen::generate_to(Cli::command(), tmp.path()).expect("render man pages");
    let generated = man_files(tmp.path());
    assert!(generated.contains_key("resil.1") && generated.contains_key("resil-lab-up.1"));
    if updating() {
        std::fs::create_dir_all(&dir).expect("create docs/man");
        for stale in man_files(&dir)
            .keys()
            .filter(|n| !generated.contains_key(*n))
        {
            std::fs::remove_file(dir.join(stale)).expect("remove a stale man page");
        }
        for (name, bytes) in &generated {
            resil::atomic::write(&dir.join(name), bytes).expect("write a man page");
        }
        return;
    }
    let committed = man_files(&dir);
    let differing: Vec<&String> = generated
        .keys()
        .chain(committed.keys())
        .filter(|n| generated.get(*n) != committed.get(*n))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    assert!(
        differing.is_empty(),
        "docs/man is out of date with src/cli.rs ({}).\nRegenerate it with:\n    {REGENERATE}",
        differing
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
}
