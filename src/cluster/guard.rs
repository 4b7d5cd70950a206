//! The safety guard: mutating commands (deploy, undeploy, chaos and its revert, scenario
//! runs, watch's switching, autoscale) run only against local labs, unless the user allows
//! a context by name — with `--allow-context NAME` or an `allow_contexts:` list in
//! `$XDG_CONFIG_HOME/resil/config.yaml`. Read-only commands do not consult it.
//!
//! A context is a local lab when both hold: its name matches a local runtime's pattern
//! ([`LOCAL_CONTEXT_PATTERNS`]), *and* its API server is on this machine or on that
//! runtime's own address ([`is_local_server`]). A name alone is a label anyone can write:
//! `kind-prod` pointing at a remote server is refused. The check needs only the
//! kubeconfig, so it runs before any request is sent.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{ClusterError, Result};

/// Context names (a trailing `*` is a prefix match) that count as local labs: `resil-*`
/// covers the unnamed lab (`resil-lab`) and every named one (`resil-region-a`).
pub const LOCAL_CONTEXT_PATTERNS: &[&str] = &[
    "resil-*",
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

/// Host names local runtimes write into kubeconfigs for an API server on this machine:
/// Docker Desktop's `kubernetes.docker.internal` (its hosts-file entry for 127.0.0.1) and
/// `host.docker.internal` (k3d, and kind inside containers).
pub const LOCAL_SERVER_NAMES: &[&str] = &[
    "localhost",
    "kubernetes.docker.internal",
    "host.docker.internal",
];

/// Whether `server` (a kubeconfig's `server:` URL) is on this machine, or — for the
/// `minikube` context — on the VM or container network minikube's drivers create.
///
/// Local: loopback addresses (127.0.0.0/8, ::1), `0.0.0.0` (k3d writes it; it connects
/// to this machine), and [`LOCAL_SERVER_NAMES`]. minikube's VM drivers serve the API on
/// the VM's address in a host-only network (docker driver 192.168.49.2, and
/// 192.168.58.2, ... for further profiles; kvm2 192.168.39.x; hyperkit 192.168.64.x;
/// VirtualBox 192.168.59.x), so for it 192.168.0.0/16 counts too.
pub fn is_local_server(context: &str, server: &str) -> bool {
    let Some(host) = server_host(server) else {
        return false;
    };
    match host.parse::<IpAddr>() {
        Ok(ip) => {
            let ip = ip.to_canonical(); // ::ffff:127.0.0.1 is 127.0.0.1
            ip.is_loopback()
                || ip.is_unspecified()
                || (context == "minikube"
                    && matches!(ip, IpAddr::V4(v4) if v4.octets()[..2] == [192, 168]))
        }
        Err(_) => LOCAL_SERVER_NAMES
            .iter()
            .any(|name| host.eq_ignore_ascii_case(name)),
    }
}

/// The host of a server URL, without brackets around an IPv6 address.
fn server_host(server: &str) -> Option<String> {
    let uri: http::Uri = server.trim().parse().ok()?;
    let host = uri.host()?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    Some(host.trim_end_matches('.').to_string())
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

    /// Ok when mutations against `context`, whose API server is `server`, are allowed;
    /// otherwise the refusal, naming the context, why, and how to allow it.
    pub fn check(&self, context: &str, server: &str) -> Result<()> {
        if self.allowed.iter().any(|a| a == context) {
            return Ok(());
        }
        let config = self
            .config_path
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "$XDG_CONFIG_HOME/resil/config.yaml".to_string());
        if !looks_local(context) {
            return Err(ClusterError::ContextNotAllowed {
                context: context.to_string(),
                patterns: LOCAL_CONTEXT_PATTERNS.join(", "),
                config,
            });
        }
        if !is_local_server(context, server) {
            return Err(ClusterError::ServerNotLocal {
                context: context.to_string(),
                server: server.to_string(),
                config,
            });
        }
        Ok(())
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

    const LOOPBACK: &str = "https://127.0.0.1:6443";
    const REMOTE: &str = "https://203.0.113.5:6443";

    #[test]
    fn a_local_name_on_a_remote_server_is_refused_with_the_server_and_the_override() {
        let guard = Guard::new(&[], None).unwrap();
        let text = guard.check("kind-prod", REMOTE).unwrap_err().to_string();
        assert!(text.contains("`kind-prod`"), "{text}");
        assert!(text.contains(REMOTE), "{text}");
        assert!(text.contains("--allow-context kind-prod"), "{text}");
        let allowed = Guard::new(&["kind-prod".to_string()], None).unwrap();
        assert!(allowed.check("kind-prod", REMOTE).is_ok());
    }

    #[test]
    fn loopback_and_the_runtimes_own_addresses_are_local() {
        let local = [
            ("kind-resil", "https://127.0.0.1:41327"),
            ("kind-resil", "https://127.5.6.7:6443"),
            ("resil-lab", "https://[::1]:6443"),
            ("resil-lab", "https://[::ffff:127.0.0.1]:6443"),
            ("k3d-demo", "https://0.0.0.0:39211"),
            ("k3d-demo", "https://host.docker.internal:39211"),
            ("docker-desktop", "https://kubernetes.docker.internal:6443"),
            ("rancher-desktop", "https://LOCALHOST:6443"),
            ("minikube", "https://192.168.49.2:8443"),
            ("minikube", "https://192.168.39.12:8443"),
        ];
        for (context, server) in local {
            assert!(is_local_server(context, server), "{context} {server}");
        }
        let remote = [
            ("kind-resil", "https://203.0.113.5:6443"),
            ("kind-resil", "https://192.168.49.2:6443"),
            ("minikube", "https://10.0.0.5:8443"),
            (
                "docker-desktop",
                "https://kubernetes.docker.internal.example.com:6443",
            ),
            ("resil-lab", "https://[2001:db8::1]:6443"),
            ("resil-lab", "https://[::ffff:203.0.113.5]:6443"),
            ("resil-lab", "https://127.0.0.1.nip.io:6443"),
            ("resil-lab", ""),
            ("resil-lab", "not a url"),
        ];
        for (context, server) in remote {
            assert!(!is_local_server(context, server), "{context} {server:?}");
        }
    }

    #[test]
    fn local_lab_contexts_are_allowed_without_asking() {
        let guard = Guard::new(&[], None).unwrap();
        for context in [
            "resil-lab",
            "resil-region-a",
            "kind-resil",
            "minikube",
            "k3d-demo",
            "docker-desktop",
            "rancher-desktop",
            "orbstack",
        ] {
            assert!(
                guard.check(context, "https://127.0.0.1:6443").is_ok(),
                "{context}"
            );
        }
    }

    #[test]
    fn a_production_looking_context_is_refused_with_the_way_to_allow_it() {
        let guard = Guard::new(&[], None).unwrap();
        let text = guard.check("prod-eu", LOOPBACK).unwrap_err().to_string();
        assert!(text.contains("`prod-eu`"), "{text}");
        assert!(text.contains("--allow-context prod-eu"), "{text}");
        assert!(text.contains("allow_contexts"), "{text}");
    }

    #[test]
    fn near_misses_of_the_patterns_are_refused() {
        let guard = Guard::new(&[], None).unwrap();
        for context in [
            "kind-",
            "kind",
            "minikube-prod",
            "my-kind-x",
            "resil-",
            "my-resil-lab",
        ] {
            assert!(guard.check(context, LOOPBACK).is_err(), "{context}");
        }
    }

    #[test]
    fn allow_context_flag_admits_exactly_that_context() {
        let guard = Guard::new(&["prod-eu".to_string()], None).unwrap();
        assert!(guard.check("prod-eu", REMOTE).is_ok());
        assert!(guard.check("prod-us", LOOPBACK).is_err());
    }

    #[test]
    fn the_config_file_allow_list_admits_its_contexts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.yaml");
        std::fs::write(&path, "allow_contexts:\n  - staging\n").unwrap();
        let guard = Guard::new(&[], Some(&path)).unwrap();
        assert!(guard.check("staging", REMOTE).is_ok());
        let text = guard.check("prod-eu", LOOPBACK).unwrap_err().to_string();
        assert!(text.contains(&path.display().to_string()), "{text}");
    }

    #[test]
    fn a_missing_config_file_allows_nothing_extra() {
        let dir = tempfile::tempdir().unwrap();
        let guard = Guard::new(&[], Some(&dir.path().join("absent.yaml"))).unwrap();
        assert!(guard.check("prod-eu", LOOPBACK).is_err());
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
