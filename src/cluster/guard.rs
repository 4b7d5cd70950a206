//! The safety guard: mutating commands (deploy, undeploy, chaos, scenario runs) run only
//! against contexts that look like local labs, unless the user allows a context by name —
//! with `--allow-context NAME` or an `allow_contexts:` list in
//! `$XDG_CONFIG_HOME/resil/config.yaml`. Read-only commands do not consult it.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{ClusterError, Result};

/// Context names (a trailing `*` is a prefix match) that count as local labs.
pub const LOCAL_CONTEXT_PATTERNS: &[&str] = &[
    "resil-lab",
    "kind-*",
    "minikube",
    "k3d-*",
    "docker-desktop",
    "rancher-desktop",
    "orbstack",
];

/// Whether a context name looks like a local lab.
pub fn looks_local(context: &str) -> bool {
    LOCAL_CONTEXT_PATTERNS
        .iter()
        .any(|pattern| match pattern.strip_suffix('*') {
            Some(prefix) => context.starts_with(prefix) && context.len() > prefix.len(),
            None => context == *pattern,
        })
}

/// Where the guard's config file lives: `$XDG_CONFIG_HOME/resil/config.yaml`, else
/// `~/.config/resil/config.yaml`.
pub fn config_file_path() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::home_dir().map(|h| h.join(".config")))?;
    Some(base.join("resil").join("config.yaml"))
}

/// The part of resil's config file the guard reads.
#[derive(Debug, Default, Deserialize)]
struct GuardConfig {
    /// Contexts the user allows mutating commands against.
    #[serde(default)]
    allow_contexts: Vec<String>,
}

/// Decides whether a mutating command may touch a context.
#[derive(Debug, Clone, Default)]
pub struct Guard {
    allowed: Vec<String>,
    config_path: Option<PathBuf>,
}

impl Guard {
    /// A guard from `--allow-context` values and the config file at `config_path` (a
    /// missing file allows nothing extra; an invalid one is an error naming it).
    pub fn new(allow_flags: &[String], config_path: Option<&Path>) -> Result<Guard> {
        let mut allowed = allow_flags.to_vec();
        if let Some(path) = config_path {
            allowed.extend(read_allow_list(path)?);
        }
        Ok(Guard {
            allowed,
            config_path: config_path.map(Path::to_path_buf),
        })
    }

    /// A guard from the flags and the default config file.
    pub fn from_environment(allow_flags: &[String]) -> Result<Guard> {
        Guard::new(allow_flags, config_file_path().as_deref())
    }

    /// Ok when mutations against `context` are allowed; otherwise the refusal, naming the
    /// context and how to allow it.
    pub fn check(&self, context: &str) -> Result<()> {
        if looks_local(context) || self.allowed.iter().any(|a| a == context) {
            return Ok(());
        }
        Err(ClusterError::ContextNotAllowed {
            context: context.to_string(),
            patterns: LOCAL_CONTEXT_PATTERNS.join(", "),
            config: self
                .config_path
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "$XDG_CONFIG_HOME/resil/config.yaml".to_string()),
        })
    }
}

fn read_allow_list(path: &Path) -> Result<Vec<String>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(ClusterError::ConfigInvalid {
                path: path.to_path_buf(),
                reason: e.to_string(),
            });
        }
    };
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    let config: GuardConfig =
        serde_saphyr::from_str(&text).map_err(|e| ClusterError::ConfigInvalid {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    Ok(config.allow_contexts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_lab_contexts_are_allowed_without_asking() {
        let guard = Guard::new(&[], None).unwrap();
        for context in [
            "resil-lab",
            "kind-resil",
            "minikube",
            "k3d-demo",
            "docker-desktop",
            "rancher-desktop",
            "orbstack",
        ] {
            assert!(guard.check(context).is_ok(), "{context}");
        }
    }

    #[test]
    fn a_production_looking_context_is_refused_with_the_way_to_allow_it() {
        let guard = Guard::new(&[], None).unwrap();
        let text = guard.check("prod-eu").unwrap_err().to_string();
        assert!(text.contains("`prod-eu`"), "{text}");
        assert!(text.contains("--allow-context prod-eu"), "{text}");
        assert!(text.contains("allow_contexts"), "{text}");
    }

    #[test]
    fn near_misses_of_the_patterns_are_refused() {
        let guard = Guard::new(&[], None).unwrap();
        for context in ["kind-", "kind", "minikube-prod", "my-kind-x", "resil-lab2"] {
            assert!(guard.check(context).is_err(), "{context}");
        }
    }

    #[test]
    fn allow_context_flag_admits_exactly_that_context() {
        let guard = Guard::new(&["prod-eu".to_string()], None).unwrap();
        assert!(guard.check("prod-eu").is_ok());
        assert!(guard.check("prod-us").is_err());
    }

    #[test]
    fn the_config_file_allow_list_admits_its_contexts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.yaml");
        std::fs::write(&path, "allow_contexts:\n  - staging\n").unwrap();
        let guard = Guard::new(&[], Some(&path)).unwrap();
        assert!(guard.check("staging").is_ok());
        let text = guard.check("prod-eu").unwrap_err().to_string();
        assert!(text.contains(&path.display().to_string()), "{text}");
    }

    #[test]
    fn a_missing_config_file_allows_nothing_extra() {
        let dir = tempfile::tempdir().unwrap();
        let guard = Guard::new(&[], Some(&dir.path().join("absent.yaml"))).unwrap();
        assert!(guard.check("prod-eu").is_err());
    }

    #[test]
    fn an_invalid_config_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.yaml");
        std::fs::write(&path, "allow_contexts: {not: [a list\n").unwrap();
        let text = Guard::new(&[], Some(&path)).unwrap_err().to_string();
        assert!(text.contains(&path.display().to_string()), "{text}");
    }
}
