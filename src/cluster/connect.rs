//! Finding the kubeconfig, choosing the context and building a kube-rs client that is known
//! to reach its API server. Errors name the file, the context and the fix.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use kube::config::{KubeConfigOptions, Kubeconfig, KubeconfigError};
use kube::{Client, Config};

use super::{ClusterError, Guard, LAB_CONTEXT, Result};

/// How long the first request may take before the API server counts as unreachable.
const REACH_TIMEOUT: Duration = Duration::from_secs(10);

/// What the command layer resolved from `--kubeconfig`, `--context` and `-n`.
#[derive(Debug, Clone, Default)]
pub struct ConnectOptions {
    /// `--kubeconfig FILE`.
    pub kubeconfig: Option<PathBuf>,
    /// `--context NAME`.
    pub context: Option<String>,
    /// The demo namespace the target works in.
    pub namespace: String,
}

impl ConnectOptions {
    /// From the global flags; the namespace defaults to the demo's.
    pub fn from_global(global: &crate::cli::GlobalArgs) -> ConnectOptions {
        ConnectOptions {
            kubeconfig: global.kubeconfig.clone(),
            context: global.context.clone(),
            namespace: global
                .namespace
                .clone()
                .unwrap_or_else(|| crate::demo::manifests::DEFAULT_NAMESPACE.to_string()),
        }
    }
}

/// Where the kubeconfig comes from, in kubectl's order of precedence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KubeconfigSource {
    /// `--kubeconfig FILE`.
    Flag(PathBuf),
    /// `KUBECONFIG` (a list of files, merged; missing ones skipped as kubectl does).
    Env(Vec<PathBuf>),
    /// `~/.kube/config`.
    Home(PathBuf),
}

impl KubeconfigSource {
    /// The file(s) for messages.
    pub fn describe(&self) -> String {
        match self {
            KubeconfigSource::Flag(p) | KubeconfigSource::Home(p) => p.display().to_string(),
            KubeconfigSource::Env(paths) => paths
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(":"),
        }
    }

    /// Reads and merges the kubeconfig file(s).
    pub fn read(&self) -> Result<Kubeconfig> {
        let files = match self {
            KubeconfigSource::Flag(p) | KubeconfigSource::Home(p) => vec![p.clone()],
            KubeconfigSource::Env(paths) => paths.clone(),
        };
        let mut merged = Kubeconfig::default();
        for file in files {
            let one =
                Kubeconfig::read_from(&file).map_err(|e| ClusterError::KubeconfigInvalid {
                    path: file.display().to_string(),
                    reason: kubeconfig_reason(&e),
                })?;
            merged = merged
                .merge(one)
                .map_err(|e| ClusterError::KubeconfigInvalid {
                    path: self.describe(),
                    reason: e.to_string(),
                })?;
        }
        Ok(merged)
    }
}

fn kubeconfig_reason(err: &KubeconfigError) -> String {
    match err {
        // Leave out the path kube repeats; the message names it already.
        KubeconfigError::ReadConfig(io, _) => io.to_string(),
        // The YAML parser appends a source snippet; its first line says it all.
        other => other
            .to_string()
            .lines()
            .next()
            .unwrap_or("invalid YAML")
            .to_string(),
    }
}

/// The kind of cluster behind a context, from its name (how the Service URL is found and
/// which metrics-server advice fits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClusterKind {
    /// The embedded lab (`resil-lab`).
    Lab,
    /// kind (`kind-*`).
    Kind,
    /// minikube.
    Minikube,
    /// k3d (`k3d-*`).
    K3d,
    /// A desktop VM that forwards NodePorts to localhost (docker-desktop, rancher-desktop,
    /// orbstack).
    Desktop,
    /// Anything else.
    Other,
}

impl ClusterKind {
    /// Classifies a context name.
    pub fn of_context(context: &str) -> ClusterKind {
        match context {
            LAB_CONTEXT => ClusterKind::Lab,
            "minikube" => ClusterKind::Minikube,
            "docker-desktop" | "rancher-desktop" | "orbstack" => ClusterKind::Desktop,
            c if c.starts_with("kind-") => ClusterKind::Kind,
            c if c.starts_with("k3d-") => ClusterKind::K3d,
            _ => ClusterKind::Other,
        }
    }
}

/// A connected cluster: the client, and the names that go into messages and results.
#[derive(Clone)]
pub struct Target {
    /// The kube-rs client (its default namespace is [`Target::namespace`]).
    pub client: Client,
    /// The kubeconfig context in use.
    pub context: String,
    /// The demo namespace.
    pub namespace: String,
    /// The API server URL.
    pub server: String,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("context", &self.context)
            .field("namespace", &self.namespace)
            .field("server", &self.server)
            .finish_non_exhaustive()
    }
}

impl Target {
    /// What kind of cluster this is.
    pub fn kind(&self) -> ClusterKind {
        ClusterKind::of_context(&self.context)
    }
}

/// Finds the kubeconfig like kubectl: the flag, else `KUBECONFIG`, else `~/.kube/config`.
/// Pure over its inputs so tests need no environment.
pub fn locate_kubeconfig(
    flag: Option<&Path>,
    env: Option<OsString>,
    home: Option<PathBuf>,
) -> Result<KubeconfigSource> {
    if let Some(path) = flag {
        if !path.exists() {
            return Err(ClusterError::KubeconfigMissing {
                path: path.to_path_buf(),
            });
        }
        return Ok(KubeconfigSource::Flag(path.to_path_buf()));
    }
    let mut looked_at = Vec::new();
    if let Some(value) = env.filter(|v| !v.is_empty()) {
        let listed: Vec<PathBuf> = std::env::split_paths(&value)
            .filter(|p| !p.as_os_str().is_empty())
            .collect();
        let existing: Vec<PathBuf> = listed.iter().filter(|p| p.exists()).cloned().collect();
        if !existing.is_empty() {
            return Ok(KubeconfigSource::Env(existing));
        }
        looked_at.push(format!(
            "KUBECONFIG={}",
            listed
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(":")
        ));
    }
    if let Some(home) = home {
        let path = home.join(".kube").join("config");
        if path.exists() {
            return Ok(KubeconfigSource::Home(path));
        }
        looked_at.push(path.display().to_string());
    }
    Err(ClusterError::NoKubeconfig {
        looked_at: if looked_at.is_empty() {
            "KUBECONFIG and ~/.kube/config (HOME is not set)".to_string()
        } else {
            looked_at.join(", ")
        },
    })
}

/// The context names a kubeconfig knows, sorted.
pub fn known_contexts(config: &Kubeconfig) -> Vec<String> {
    let mut names: Vec<String> = config.contexts.iter().map(|c| c.name.clone()).collect();
    names.sort();
    names
}

/// Chooses the context: the requested one (which must exist), else the current one.
pub fn select_context(
    config: &Kubeconfig,
    requested: Option<&str>,
    source: &str,
) -> Result<String> {
    let known = known_contexts(config);
    let listed = if known.is_empty() {
        "none".to_string()
    } else {
        known.join(", ")
    };
    let wanted = match requested {
        Some(name) => name.to_string(),
        None => match config.current_context.as_deref().filter(|c| !c.is_empty()) {
            Some(name) => name.to_string(),
            None => {
                return Err(ClusterError::NoCurrentContext {
                    path: source.to_string(),
                    known: listed,
                });
            }
        },
    };
    if known.contains(&wanted) {
        return Ok(wanted);
    }
    let hint = if wanted == LAB_CONTEXT {
        format!(
            "the context `{LAB_CONTEXT}` is not in {source} (known: {listed}): the embedded lab \
             is not set up. Start it with `resil lab up`, which adds the context"
        )
    } else {
        format!(
            "the context `{wanted}` is not in {source}; known contexts: {listed}. Pass one of \
             them with --context, or fix the kubeconfig's current-context"
        )
    };
    Err(ClusterError::UnknownContext {
        context: wanted,
        hint,
    })
}

/// The `server:` URL of a context's cluster in the kubeconfig (empty when it has none).
pub fn server_of(config: &Kubeconfig, context: &str) -> String {
    let cluster = config
        .contexts
        .iter()
        .find(|c| c.name == context)
        .and_then(|c| c.context.as_ref())
        .map(|c| c.cluster.as_str());
    config
        .clusters
        .iter()
        .find(|c| Some(c.name.as_str()) == cluster)
        .and_then(|c| c.cluster.as_ref()?.server.clone())
        .unwrap_or_default()
}

/// Connects: finds the kubeconfig, chooses the context, asks the guard (for mutating
/// commands; before any request is sent), builds the client and checks the API server
/// answers.
pub async fn connect(options: &ConnectOptions, guard: Option<&Guard>) -> Result<Target> {
    let source = locate_kubeconfig(
        options.kubeconfig.as_deref(),
        std::env::var_os("KUBECONFIG"),
        std::env::home_dir(),
    )
    .map_err(|err| match (&err, options.context.as_deref()) {
        // Asking for the lab without any kubeconfig: say how to start it.
        (ClusterError::NoKubeconfig { looked_at }, Some(LAB_CONTEXT)) => {
            ClusterError::UnknownContext {
                context: LAB_CONTEXT.to_string(),
                hint: format!(
                    "no kubeconfig found (looked at {looked_at}), so there is no `{LAB_CONTEXT}` \
                     context: start the embedded lab with `resil lab up`"
                ),
            }
        }
        _ => err,
    })?;
    let kubeconfig = source.read()?;
    // In-process callers (tests) reach kube-rs without `resil::run`, which installs it.
    crate::crypto::ensure_crypto_provider();
    let described = source.describe();
    let context = select_context(&kubeconfig, options.context.as_deref(), &described)?;
    if let Some(guard) = guard {
        guard.check(&context, &server_of(&kubeconfig, &context))?;
    }
    let kube_options = KubeConfigOptions {
        context: Some(context.clone()),
        ..Default::default()
    };
    let mut config = Config::from_custom_kubeconfig(kubeconfig, &kube_options)
        .await
        .map_err(|e| ClusterError::ContextUnusable {
            context: context.clone(),
            path: described.clone(),
            source: Box::new(e),
        })?;
    config.default_namespace = options.namespace.clone();
    config.connect_timeout = Some(Duration::from_secs(5));
    let server = config.cluster_url.to_string();
    // The probe does not retry: a server answering 503 (a control plane that is down) is
    // there, and says so at once rather than after kube-rs's backoff.
    let mut probe = config.clone();
    probe.default_retry = false;
    let unusable = |e| ClusterError::ContextUnusable {
        context: context.clone(),
        path: described.clone(),
        source: Box::new(e),
    };
    let probe = Client::try_from(probe).map_err(unusable)?;
    let client = Client::try_from(config).map_err(unusable)?;
    check_reachable(&probe, &context, &server).await?;
    Ok(Target {
        client,
        context,
        namespace: options.namespace.clone(),
        server,
    })
}

/// One cheap request (`/version`): an HTTP answer of any kind means the server is there;
/// only a failed connection (or no answer in time) counts as unreachable.
async fn check_reachable(client: &Client, context: &str, server: &str) -> Result<()> {
    let reason = match tokio::time::timeout(REACH_TIMEOUT, client.apiserver_version()).await {
        Ok(Ok(_)) | Ok(Err(kube::Error::Api(_))) => return Ok(()),
        Ok(Err(err)) => error_chain(&err),
        Err(_) => format!("no answer within {}s", REACH_TIMEOUT.as_secs()),
    };
    let hint = if context == LAB_CONTEXT {
        "Is the lab running? Start it with `resil lab up` (`resil lab status` shows its state)"
            .to_string()
    } else {
        format!(
            "Check that the cluster is running (`kubectl --context {context} cluster-info`), or \
             use the embedded lab: `resil lab up && resil deploy --context {LAB_CONTEXT}`"
        )
    };
    Err(ClusterError::Unreachable {
        context: context.to_string(),
        server: server.to_string(),
        reason,
        hint,
    })
}

/// An error and its causes on one line, each cause once (a cause whose text an earlier
/// part already holds is skipped).
pub fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![err.to_string()];
    let mut source = err.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = cause.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const TWO_CONTEXTS: &str = r#"
apiVersion: v1
kind: Config
current-context: kind-resil
clusters:
  - name: kind-resil
    cluster: { server: "https://127.0.0.1:6443" }
  - name: prod
    cluster: { server: "https://prod.example:6443" }
users:
  - name: u
    user: { token: abc }
contexts:
  - name: kind-resil
    context: { cluster: kind-resil, user: u }
  - name: prod-eu
    context: { cluster: prod, user: u }
"#;

    fn config(text: &str) -> Kubeconfig {
        Kubeconfig::from_yaml(text).unwrap()
    }

    #[test]
    fn the_current_context_is_used_when_none_is_requested() {
        let kc = config(TWO_CONTEXTS);
        assert_eq!(select_context(&kc, None, "f").unwrap(), "kind-resil");
    }

    #[test]
    fn the_server_of_a_context_is_its_clusters() {
        let kc = config(TWO_CONTEXTS);
        assert_eq!(server_of(&kc, "kind-resil"), "https://127.0.0.1:6443");
        assert_eq!(server_of(&kc, "prod-eu"), "https://prod.example:6443");
        assert_eq!(server_of(&kc, "nope"), "");
    }

    #[test]
    fn a_requested_context_wins_over_the_current_one() {
        let kc = config(TWO_CONTEXTS);
        assert_eq!(
            select_context(&kc, Some("prod-eu"), "f").unwrap(),
            "prod-eu"
        );
    }

    #[test]
    fn an_unknown_context_lists_the_known_ones() {
        let kc = config(TWO_CONTEXTS);
        let err = select_context(&kc, Some("staging"), "/k/config").unwrap_err();
        let text = err.to_string();
        assert!(text.contains("`staging`"), "{text}");
        assert!(text.contains("kind-resil, prod-eu"), "{text}");
        assert!(text.contains("/k/config"), "{text}");
    }

    #[test]
    fn a_missing_lab_context_suggests_lab_up() {
        let kc = config(TWO_CONTEXTS);
        let text = select_context(&kc, Some("resil-lab"), "f")
            .unwrap_err()
            .to_string();
        assert!(text.contains("resil lab up"), "{text}");
    }

    #[test]
    fn no_current_context_says_how_to_choose_one() {
        let kc = config(&TWO_CONTEXTS.replace("current-context: kind-resil", ""));
        let text = select_context(&kc, None, "f").unwrap_err().to_string();
        assert!(text.contains("--context"), "{text}");
        assert!(text.contains("kind-resil, prod-eu"), "{text}");
    }

    #[test]
    fn the_flag_wins_over_kubeconfig_env_and_home() {
        let dir = tempfile::tempdir().unwrap();
        let flag = dir.path().join("flag");
        std::fs::write(&flag, "").unwrap();
        let got = locate_kubeconfig(
            Some(&flag),
            Some(dir.path().join("env").into_os_string()),
            Some(dir.path().to_path_buf()),
        )
        .unwrap();
        assert_eq!(got, KubeconfigSource::Flag(flag));
    }

    #[test]
    fn kubeconfig_env_skips_missing_files_and_falls_back_to_home() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real");
        std::fs::write(&real, "").unwrap();
        let list = std::env::join_paths([dir.path().join("missing"), real.clone()]).unwrap();
        assert_eq!(
            locate_kubeconfig(None, Some(list), None).unwrap(),
            KubeconfigSource::Env(vec![real])
        );
        std::fs::create_dir_all(dir.path().join(".kube")).unwrap();
        std::fs::write(dir.path().join(".kube/config"), "").unwrap();
        let only_missing = dir.path().join("missing").into_os_string();
        assert_eq!(
            locate_kubeconfig(None, Some(only_missing), Some(dir.path().to_path_buf())).unwrap(),
            KubeconfigSource::Home(dir.path().join(".kube/config"))
        );
    }

    #[test]
    fn no_kubeconfig_anywhere_suggests_the_lab() {
        let dir = tempfile::tempdir().unwrap();
        let text = locate_kubeconfig(None, None, Some(dir.path().to_path_buf()))
            .unwrap_err()
            .to_string();
        assert!(text.contains("resil lab up"), "{text}");
        assert!(text.contains(".kube/config"), "{text}");
    }

    #[test]
    fn a_kubeconfig_that_does_not_parse_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let bad = dir.path().join("broken.yaml");
        std::fs::write(&bad, "clusters: [unclosed\n").unwrap();
        let text = KubeconfigSource::Flag(bad.clone())
            .read()
            .unwrap_err()
            .to_string();
        assert!(text.contains(&bad.display().to_string()), "{text}");
    }

    #[test]
    fn context_names_classify_the_cluster() {
        assert_eq!(ClusterKind::of_context("resil-lab"), ClusterKind::Lab);
        assert_eq!(ClusterKind::of_context("kind-resil"), ClusterKind::Kind);
        assert_eq!(ClusterKind::of_context("minikube"), ClusterKind::Minikube);
        assert_eq!(ClusterKind::of_context("k3d-x"), ClusterKind::K3d);
        assert_eq!(ClusterKind::of_context("orbstack"), ClusterKind::Desktop);
        assert_eq!(ClusterKind::of_context("prod-eu"), ClusterKind::Other);
    }
}
