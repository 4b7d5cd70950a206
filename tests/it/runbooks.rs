//! Runbooks cannot rot: every `resil` command in runbooks/*.md and README.md must parse
//! with the real clap definition, and the runbooks' commands run, top to bottom, in a
//! private world (temporary HOME, XDG dirs and KUBECONFIG; the lab started by the
//! runbook's own `resil lab up` in a temporary state directory).
//!
//! What a runbook's fenced blocks mean to this checker (written after ```` ```sh ````):
//! - nothing: run each command in order; it must exit 0, or the code a trailing
//!   `# exits N` comment names;
//! - `background`: start each command and keep it running (another terminal in the
//!   workshop); a command ending in `# until Ctrl-C` runs until it is interrupted;
//! - `slow`: run only by `scripts/check-runbooks.sh` (`RESIL_RUNBOOKS_FULL=1`), parsed
//!   otherwise;
//! - `real-cluster` (kind, minikube, CI) and `interactive` (runs until Ctrl-C in a
//!   terminal of its own): parsed, never run.
//!
//! HTML comments steer the run without showing in the rendered page:
//! `<!-- runbook: sleep 5s -->` waits; `<!-- runbook: wait -->` waits for the background
//! commands to end, then interrupts (SIGINT, as Ctrl-C) those marked `# until Ctrl-C`,
//! which may then exit 0 or 130. Commands whose program is not installed (kubectl, curl)
//! are skipped with a note.

mod markdown;
mod workspace;

use std::fs;
use std::path::{Path, PathBuf};

use clap::Parser;
use resil::cli::Cli;

use markdown::{Item, commands, parse_markdown, resil_invocations};
use workspace::{run_runbook, wait_for_free_node_port};

/// The repository root: runbooks run there (in a copy of its layout) and live there.
fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Whether to run the `slow` blocks too (scripts/check-runbooks.sh sets it).
fn full() -> bool {
    std::env::var_os("RESIL_RUNBOOKS_FULL").is_some_and(|v| !v.is_empty() && v != "0")
}

// ------------------------------------------------------------------ the tests

/// Markdown files whose `resil` commands must parse: every runbook and the README.
fn documents() -> Vec<PathBuf> {
    let mut docs: Vec<PathBuf> = fs::read_dir(repo().join("runbooks"))
        .expect("runbooks/ exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    docs.sort();
    docs.push(repo().join("README.md"));
    docs
}

#[test]
fn every_resil_command_in_the_runbooks_and_readme_parses_with_the_real_cli() {
    let mut failures = Vec::new();
    let mut checked = 0;
    for doc in documents() {
        let text = fs::read_to_string(&doc).expect("readable");
        let name = doc
            .strip_prefix(repo())
            .unwrap_or(&doc)
            .display()
            .to_string();
        for item in parse_markdown(&text) {
            let Item::Block { lang, lines, .. } = item else {
                continue;
            };
            if lang != "sh" {
                continue;
            }
            for cmd in commands(&lines) {
                for argv in resil_invocations(&cmd.text) {
                    checked += 1;
                    if let Some(e) = parse_error(&argv) {
                        failures.push(format!("{name}:{}: `{}`: {e}", cmd.line, cmd.text));
                    }
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(
        checked >= 20,
        "only {checked} resil commands found: is the parser broken?"
    );
}

/// Parses one `resil` argument vector with the real CLI; `--help`/`--version` count as
/// parsing.
fn parse_error(argv: &[String]) -> Option<String> {
    use clap::error::ErrorKind::{DisplayHelp, DisplayVersion};
    match Cli::try_parse_from(argv) {
        Err(e) if !matches!(e.kind(), DisplayHelp | DisplayVersion) => Some(e.to_string()),
        _ => None,
    }
}

#[test]
fn the_github_actions_example_is_a_workflow_whose_resil_commands_parse() {
    let path = repo().join("docs/github-actions.yml");
    let text = fs::read_to_string(&path).expect("docs/github-actions.yml exists");
    let doc: serde_json::Value = serde_saphyr::from_str(&text).expect("valid YAML");
    let jobs = doc["jobs"].as_object().expect("a workflow has jobs");
    let mut checked = 0;
    let mut uploads = false;
    for job in jobs.values() {
        for step in job["steps"].as_array().expect("a job has steps") {
            uploads |= step["uses"]
                .as_str()
                .is_some_and(|u| u.starts_with("actions/upload-artifact"));
            let Some(run) = step["run"].as_str() else {
                continue;
            };
            for argv in run.lines().flat_map(resil_invocations) {
                checked += 1;
                if let Some(e) = parse_error(&argv) {
                    panic!("docs/github-actions.yml: `{}`: {e}", argv.join(" "));
                }
            }
        }
    }
    assert!(
        checked >= 3,
        "expected run, report and lab down steps; found {checked}"
    );
    assert!(uploads, "the example must upload the reports");
    for report in ["-o junit", "-o html"] {
        assert!(text.contains(report), "the example must render {report}");
    }
}

#[test]
fn the_readme_lists_every_scenario_file() {
    let readme = fs::read_to_string(repo().join("README.md")).expect("README.md");
    let mut missing = Vec::new();
    for entry in fs::read_dir(repo().join("scenarios")).expect("scenarios/") {
        let name = entry
            .expect("entry")
            .file_name()
            .to_string_lossy()
            .into_owned();
        if name.ends_with(".yaml") && !readme.contains(&format!("`scenarios/{name}`")) {
            missing.push(name);
        }
    }
    assert!(
        missing.is_empty(),
        "README.md's scenario table does not list: {} (add a row for each)",
        missing.join(", ")
    );
}

#[test]
fn runbook_blue_green_hpa_failover_runs_on_a_lab() {
    wait_for_free_node_port();
    run_runbook("blue-green-hpa-failover.md");
}

#[test]
fn runbook_cost_runs() {
    if full() {
        wait_for_free_node_port();
    }
    run_runbook("cost.md");
}

#[test]
fn runbook_rolling_update_and_rollback_runs_on_a_lab() {
    wait_for_free_node_port();
    run_runbook("rolling-update-and-rollback.md");
}

#[test]
fn runbook_node_failure_and_drain_runs_on_a_lab() {
    wait_for_free_node_port();
    run_runbook("node-failure-and-drain.md");
}
