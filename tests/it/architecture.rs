//! Keeps the architecture's one rule true: the lab imports no toolkit module, and toolkit
//! modules reach the lab only through its public entry points, never its internals.

use std::fs;
use std::path::{Path, PathBuf};

const TOOLKIT: &[&str] = &[
    "cluster", "demo", "chaos", "load", "watch", "run", "report", "cost", "results",
];

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

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

#[test]
fn the_lab_imports_no_toolkit_module() {
    let mut offences = Vec::new();
    for file in rust_files(&src().join("lab")) {
        let text = fs::read_to_string(&file).unwrap();
        for (n, line) in text.lines().enumerate() {
            for module in TOOLKIT {
                if line.contains(&format!("crate::{module}::"))
                    || line.contains(&format!("crate::{module};"))
                    || line.contains(&format!("crate::{{{module}"))
                    || line.contains(&format!("resil::{module}::"))
                {
                    offences.push(format!("{}:{}: {}", file.display(), n + 1, line.trim()));
                }
            }
        }
    }
    assert!(
        offences.is_empty(),
        "the lab must not import toolkit code:\n{}",
        offences.join("\n")
    );
}

#[test]
fn toolkit_modules_never_reach_into_lab_internals() {
    let mut offences = Vec::new();
    for module in TOOLKIT {
        for file in rust_files(&src().join(module)) {
            let text = fs::read_to_string(&file).unwrap();
            for (n, line) in text.lines().enumerate() {
                // `crate::lab::Thing` (the lab's public entry) is allowed;
                // `crate::lab::store::...` (an internal module path) is not.
                if let Some(rest) = line.split("lab::").nth(1)
                    && line.contains("crate::lab::")
                    && rest.chars().next().is_some_and(|c| c.is_ascii_lowercase())
                {
                    offences.push(format!("{}:{}: {}", file.display(), n + 1, line.trim()));
                }
            }
        }
    }
    assert!(
        offences.is_empty(),
        "toolkit code must reach the lab through kube-rs or the lab's public entry points only:\n{}",
        offences.join("\n")
    );
}
