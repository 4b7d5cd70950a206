//! Keeps the architecture's one rule true. The compiler does most of it: the lab is its own
//! crate (`crates/lab`) that does not depend on the toolkit, so it cannot import toolkit
//! code, and its internals (store, patch engine) are public only with the `internals`
//! feature, which the toolkit's own build does not turn on. These tests keep the manifests
//! that way, and keep the toolkit's source naming only the lab's entry points.

use std::fs;
use std::path::{Path, PathBuf};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out
}

/// The lines of a manifest's `[section]`, up to the next section.
fn section(manifest: &str, name: &str) -> Vec<String> {
    manifest
        .lines()
        .skip_while(|l| l.trim() != format!("[{name}]"))
        .skip(1)
        .take_while(|l| !l.starts_with('['))
        .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .map(str::to_string)
        .collect()
}

#[test]
fn the_lab_and_common_crates_depend_on_no_toolkit_code() {
    for (manifest, allowed) in [
        ("crates/lab/Cargo.toml", &["../common"][..]),
        ("crates/common/Cargo.toml", &[][..]),
    ] {
        let text = fs::read_to_string(root().join(manifest)).unwrap();
        for line in section(&text, "dependencies") {
            assert!(
                !line.starts_with("resil ") && !line.starts_with("resil."),
                "{manifest} must not depend on the toolkit crate: {line}"
            );
            if let Some(path) = line.split("path = \"").nth(1) {
                let path = path.split('"').next().unwrap_or_default();
                assert!(
                    allowed.contains(&path),
                    "{manifest} depends on {path}; the lab stands on crates/common only"
                );
            }
        }
    }
}

#[test]
fn the_toolkit_builds_against_the_labs_entry_points_only() {
    let text = fs::read_to_string(root().join("Cargo.toml")).unwrap();
    let lab = section(&text, "dependencies")
        .into_iter()
        .find(|l| l.starts_with("resil-lab"))
        .expect("the binary runs `resil lab`, so it depends on resil-lab");
    assert!(
        !lab.contains("internals"),
        "the toolkit's build must not see the lab's internals: {lab}"
    );
}

#[test]
fn toolkit_source_names_only_the_labs_command_and_its_arguments() {
    // Tests start labs in-process (`resil_lab::Lab`); the toolkit itself runs `resil lab`
    // and nests its arguments, and reaches any running lab through kube-rs.
    const ALLOWED: &[&str] = &["resil_lab::command(", "resil_lab::args::"];
    let mut offences = Vec::new();
    for file in rust_files(&root().join("src")) {
        let text = fs::read_to_string(&file).unwrap();
        for (n, line) in text.lines().enumerate() {
            let mut rest = line;
            while let Some(at) = rest.find("resil_lab") {
                let use_ = &rest[at..];
                if !ALLOWED.iter().any(|a| use_.starts_with(a)) {
                    offences.push(format!("{}:{}: {}", file.display(), n + 1, line.trim()));
                    break;
                }
                rest = &rest[at + "resil_lab".len()..];
            }
        }
    }
    assert!(
        offences.is_empty(),
        "toolkit code must reach a cluster through kube-rs; of the lab it may name only \
         its command and arguments:\n{}",
        offences.join("\n")
    );
}

/// The repository paths ARCHITECTURE.md names: in `code spans`, and in its diagrams
/// (where `run/runner.rs` means `src/run/runner.rs`).
fn named_paths(text: &str) -> Vec<String> {
    let mut tokens = Vec::new();
    let mut in_block = false;
    for line in text.lines() {
        if line.starts_with("```") {
            in_block = !in_block;
            continue;
        }
        if in_block {
            tokens.extend(line.split_whitespace().map(str::to_string));
        } else {
            for (i, span) in line.split('`').enumerate() {
                if i % 2 == 1 {
                    tokens.extend(span.split_whitespace().map(str::to_string));
                }
            }
        }
    }
    tokens
        .into_iter()
        .map(|t| t.trim_matches(|c: char| "(),.;:".contains(c)).to_string())
        .filter(|t| {
            let is_file = [".rs", ".md", ".toml", ".sh", ".yaml"]
                .iter()
                .any(|ext| t.ends_with(ext));
            let is_dir = t.len() > 1 && t.contains('/') && !t.contains("://");
            (is_file || is_dir)
                && t.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-/".contains(c))
        })
        .collect()
}

#[test]
fn architecture_md_names_only_paths_that_exist_and_stays_short() {
    let text = fs::read_to_string(root().join("ARCHITECTURE.md")).unwrap();
    assert!(
        text.lines().count() < 200,
        "ARCHITECTURE.md is a map: keep it under 200 lines"
    );
    let paths = named_paths(&text);
    assert!(paths.len() > 30, "found only {paths:?}");
    let missing: Vec<&String> = paths
        .iter()
        .filter(|p| !root().join(p).exists() && !root().join("src").join(p).exists())
        .collect();
    assert!(
        missing.is_empty(),
        "ARCHITECTURE.md names paths that do not exist: {missing:?}"
    );
}

#[test]
fn the_path_finder_sees_spans_and_diagrams_and_skips_prose() {
    let text = "see `src/lib.rs` and `resil lab up / down`\n\
                blue/green prose\n\
                ```\n\
                x ──► run/runner.rs, results/\n\
                ```\n";
    assert_eq!(
        named_paths(text),
        ["src/lib.rs", "run/runner.rs", "results/"]
    );
}
