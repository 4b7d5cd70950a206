//! The demo's manifests: the YAML in `manifests/` (embedded at build time) or a user's own
//! directory (`--manifests DIR`), parsed into k8s-openapi types and checked before anything
//! is applied, plus the `--image` / `--replicas` / `--active` / `-n` overrides.
//!
//! It does not talk to a cluster; `deploy` applies what this returns.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{Namespace, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::core::ObjectMeta;
use serde::de::DeserializeOwned;

use crate::cluster::{MANAGED_BY_LABEL, MANAGED_BY_VALUE};
use crate::domain::Color;

/// The demo's namespace unless `-n` or the manifests say otherwise.
pub const DEFAULT_NAMESPACE: &str = "distributed-resilience";
/// The Service every request goes through.
pub const SERVICE_NAME: &str = "web";
/// The label every demo object and pod carries (`app: web`).
pub const APP_LABEL: (&str, &str) = ("app", "web");
/// The label key naming the colour (`version: blue|green`).
pub const COLOR_LABEL: &str = "version";

/// The Deployment (and HPA) name of a colour: `web-blue`, `web-green`.
pub fn deployment_name(color: Color) -> String {
    format!("web-{color}")
}

/// The manifests shipped in `manifests/`, in apply order.
const EMBEDDED: &[(&str, &str)] = &[
    (
        "manifests/00-namespace.yaml",
        include_str!("../../manifests/00-namespace.yaml"),
    ),
    (
        "manifests/10-deployment-blue.yaml",
        include_str!("../../manifests/10-deployment-blue.yaml"),
    ),
    (
        "manifests/11-deployment-green.yaml",
        include_str!("../../manifests/11-deployment-green.yaml"),
    ),
    (
        "manifests/20-service.yaml",
        include_str!("../../manifests/20-service.yaml"),
    ),
    (
        "manifests/30-hpa-blue.yaml",
        include_str!("../../manifests/30-hpa-blue.yaml"),
    ),
    (
        "manifests/31-hpa-green.yaml",
        include_str!("../../manifests/31-hpa-green.yaml"),
    ),
    (
        "manifests/40-pdb-blue.yaml",
        include_str!("../../manifests/40-pdb-blue.yaml"),
    ),
    (
        "manifests/41-pdb-green.yaml",
        include_str!("../../manifests/41-pdb-green.yaml"),
    ),
];

/// The object kinds a manifest may hold.
const ACCEPTED: &str = "Namespace (v1), Deployment (apps/v1), Service (v1), \
                        HorizontalPodAutoscaler (autoscaling/v2), PodDisruptionBudget (policy/v1)";

/// Why the manifests cannot be used. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// The directory or a file in it could not be read.
    #[error("cannot read the manifests at {path}")]
    Read {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },

    /// The directory has no `.yaml`/`.yml` files.
    #[error("{path} holds no .yaml or .yml files; point --manifests at the demo's manifests")]
    Empty {
        /// The directory.
        path: PathBuf,
    },

    /// A document is not valid YAML, or does not fit its kind's schema.
    #[error("{at}: {reason}. Fix the file (or drop --manifests to use the built-in manifests)")]
    Invalid {
        /// `file:line`.
        at: String,
        /// What the parser said.
        reason: String,
    },

    /// A document holds an object resil does not deploy.
    #[error(
        "{at}: unexpected object {kind} ({api_version}); the demo's manifests may hold only \
         {ACCEPTED}. Remove it from the directory"
    )]
    UnexpectedKind {
        /// `file:line`.
        at: String,
        /// The document's kind.
        kind: String,
        /// The document's apiVersion.
        api_version: String,
    },

    /// An object the demo relies on is missing.
    #[error(
        "the manifests in {source_name} have no {what}; the demo needs Deployments web-blue and \
         web-green and a Service web (keep these names: the other commands rely on them)"
    )]
    Missing {
        /// The directory.
        source_name: String,
        /// What is missing.
        what: String,
    },

    /// Objects disagree on the namespace.
    #[error(
        "{at}: {kind} {name} is in namespace {found}, but the demo's namespace is {expected}; \
         put every object in one namespace"
    )]
    Namespace {
        /// `file:line`.
        at: String,
        /// The object kind.
        kind: String,
        /// The object name.
        name: String,
        /// Its namespace.
        found: String,
        /// The demo's namespace.
        expected: String,
    },
}

/// The demo's objects, parsed and checked.
#[derive(Debug, Clone, PartialEq)]
pub struct DemoManifests {
    /// The Namespace object, if the manifests carry one.
    pub namespace: Option<Namespace>,
    /// The Deployments (at least web-blue and web-green).
    pub deployments: Vec<Deployment>,
    /// The Services (at least web).
    pub services: Vec<Service>,
    /// The HorizontalPodAutoscalers.
    pub hpas: Vec<HorizontalPodAutoscaler>,
    /// The PodDisruptionBudgets (one per colour in the built-in manifests).
    pub pdbs: Vec<PodDisruptionBudget>,
}

/// The command-line overrides applied on top of the manifests.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `-n`: move every object (and the Namespace object) to this namespace.
    pub namespace: Option<String>,
    /// `--image`: the image of both colours' `web` container.
    pub image: Option<String>,
    /// `--replicas`: replicas per colour; also raises the HPAs' minimum so the HPA does
    /// not scale straight back down.
    pub replicas: Option<i32>,
    /// `--active`: the colour the Service selects.
    pub active: Option<Color>,
    /// `--node-port`: the NodePort of the `web` Service's first port.
    pub node_port: Option<i32>,
    /// `--no-pdb`: leave the PodDisruptionBudgets out.
    pub no_pdb: bool,
    /// `--no-spread`: leave the pods' topologySpreadConstraints out.
    pub no_spread: bool,
    /// `--region`: the `REGION` of both colours' `web` container.
    pub region: Option<String>,
}

/// Sets (or adds) the environment variable `name` of `container` to `value`.
fn set_env(container: &mut k8s_openapi::api::core::v1::Container, name: &str, value: &str) {
    let env = container.env.get_or_insert_with(Vec::new);
    match env.iter_mut().find(|e| e.name == name) {
        Some(var) => {
            var.value = Some(value.to_string());
            var.value_from = None;
        }
        None => env.push(k8s_openapi::api::core::v1::EnvVar {
            name: name.to_string(),
            value: Some(value.to_string()),
            ..Default::default()
        }),
    }
}

impl DemoManifests {
    /// The built-in manifests.
    pub fn embedded() -> Result<DemoManifests, ManifestError> {
        let files: Vec<(String, String)> = EMBEDDED
            .iter()
            .map(|(n, t)| (n.to_string(), t.to_string()))
            .collect();
        DemoManifests::parse_files("the built-in manifests", &files)
    }

    /// The manifests in a directory: every `.yaml`/`.yml` file, in name order.
    pub fn from_dir(dir: &Path) -> Result<DemoManifests, ManifestError> {
        let read_err = |source| ManifestError::Read {
            path: dir.to_path_buf(),
            source,
        };
        let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(read_err)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
            .collect();
        paths.sort();
        if paths.is_empty() {
            return Err(ManifestError::Empty {
                path: dir.to_path_buf(),
            });
        }
        let mut files = Vec::new();
        for path in paths {
            let text = std::fs::read_to_string(&path).map_err(|source| ManifestError::Read {
                path: path.clone(),
                source,
            })?;
            files.push((path.display().to_string(), text));
        }
        DemoManifests::parse_files(&dir.display().to_string(), &files)
    }

    /// Parses `(file name, YAML text)` pairs; each file may hold several documents.
    pub fn parse_files(
        source_name: &str,
        files: &[(String, String)],
    ) -> Result<DemoManifests, ManifestError> {
        let mut out = DemoManifests {
            namespace: None,
            deployments: Vec::new(),
            services: Vec::new(),
            hpas: Vec::new(),
            pdbs: Vec::new(),
        };
        // (where, kind, meta) of every namespaced object, checked once the namespace is known.
        let mut placed: Vec<(String, &'static str, ObjectMeta)> = Vec::new();
        for (file, text) in files {
            for (start, doc) in split_documents(text) {
                let at = format!("{file}:{start}");
                let value: serde_json::Value =
                    serde_saphyr::from_str(doc).map_err(|e| yaml_error(file, start, &e))?;
                if value.is_null() {
                    continue; // an empty document (comments only)
                }
                let field = |k: &str| value.get(k).and_then(|v| v.as_str()).unwrap_or("");
                let (kind, api_version) = (field("kind").to_string(), field("apiVersion"));
                match (kind.as_str(), api_version) {
                    ("Namespace", "v1") => {
                        let ns: Namespace = typed(doc, file, start)?;
                        if out.namespace.is_some() {
                            return Err(ManifestError::Invalid {
                                at,
                                reason: "a second Namespace; the demo lives in one namespace"
                                    .into(),
                            });
                        }
                        out.namespace = Some(ns);
                    }
                    ("Deployment", "apps/v1") => {
                        let d: Deployment = typed(doc, file, start)?;
                        placed.push((at, "Deployment", d.metadata.clone()));
                        out.deployments.push(d);
                    }
                    ("Service", "v1") => {
                        let s: Service = typed(doc, file, start)?;
                        placed.push((at, "Service", s.metadata.clone()));
                        out.services.push(s);
                    }
                    ("HorizontalPodAutoscaler", "autoscaling/v2") => {
                        let h: HorizontalPodAutoscaler = typed(doc, file, start)?;
                        placed.push((at, "HorizontalPodAutoscaler", h.metadata.clone()));
                        out.hpas.push(h);
                    }
                    ("PodDisruptionBudget", "policy/v1") => {
                        let b: PodDisruptionBudget = typed(doc, file, start)?;
                        placed.push((at, "PodDisruptionBudget", b.metadata.clone()));
                        out.pdbs.push(b);
                    }
                    _ => {
                        return Err(ManifestError::UnexpectedKind {
                            at,
                            kind: if kind.is_empty() {
                                "(no kind)".into()
                            } else {
                                kind
                            },
                            api_version: if api_version.is_empty() {
                                "no apiVersion".into()
                            } else {
                                api_version.to_string()
                            },
                        });
                    }
                }
            }
        }
        let expected = out.namespace_name().to_string();
        for (at, kind, meta) in placed {
            if let Some(found) = meta.namespace.filter(|ns| *ns != expected) {
                return Err(ManifestError::Namespace {
                    at,
                    kind: kind.to_string(),
                    name: meta.name.unwrap_or_default(),
                    found,
                    expected,
                });
            }
        }
        out.check_complete(source_name)?;
        Ok(out)
    }

    /// The namespace the manifests put the demo in.
    pub fn namespace_name(&self) -> &str {
        self.namespace
            .as_ref()
            .and_then(|n| n.metadata.name.as_deref())
            .unwrap_or(DEFAULT_NAMESPACE)
    }

    fn check_complete(&self, source_name: &str) -> Result<(), ManifestError> {
        let missing = |what: String| ManifestError::Missing {
            source_name: source_name.to_string(),
            what,
        };
        for color in [Color::Blue, Color::Green] {
            let name = deployment_name(color);
            if !self
                .deployments
                .iter()
                .any(|d| d.metadata.name.as_deref() == Some(&name))
            {
                return Err(missing(format!("Deployment {name}")));
            }
        }
        if !self
            .services
            .iter()
            .any(|s| s.metadata.name.as_deref() == Some(SERVICE_NAME))
        {
            return Err(missing(format!("Service {SERVICE_NAME}")));
        }
        Ok(())
    }

    /// Applies the overrides and stamps resil's managed-by label and the namespace on every
    /// object (and pod template), so that the objects are exactly what gets applied.
    pub fn with_overrides(mut self, overrides: &Overrides) -> DemoManifests {
        let ns = overrides
            .namespace
            .clone()
            .unwrap_or_else(|| self.namespace_name().to_string());
        let namespace = self.namespace.get_or_insert_with(Namespace::default);
        namespace.metadata.name = Some(ns.clone());
        stamp(&mut namespace.metadata, None);
        for d in &mut self.deployments {
            stamp(&mut d.metadata, Some(&ns));
            let template = d
                .spec
                .template
                .metadata
                .get_or_insert_with(Default::default);
            stamp(template, None);
            if let Some(image) = &overrides.image
                && let Some(pod) = d.spec.template.spec.as_mut()
            {
                let web = pod.containers.iter().position(|c| c.name == "web");
                if let Some(container) = pod.containers.get_mut(web.unwrap_or(0)) {
                    container.image = Some(image.clone());
                }
            }
            if let Some(replicas) = overrides.replicas {
                d.spec.replicas = Some(replicas);
            }
            if let Some(region) = &overrides.region
                && let Some(pod) = d.spec.template.spec.as_mut()
            {
                let web = pod.containers.iter().position(|c| c.name == "web");
                if let Some(container) = pod.containers.get_mut(web.unwrap_or(0)) {
                    set_env(container, "REGION", region);
                }
            }
            if overrides.no_spread
                && let Some(pod) = d.spec.template.spec.as_mut()
            {
                pod.topology_spread_constraints = None;
            }
        }
        if overrides.no_pdb {
            self.pdbs.clear();
        }
        for b in &mut self.pdbs {
            stamp(&mut b.metadata, Some(&ns));
        }
        for s in &mut self.services {
            stamp(&mut s.metadata, Some(&ns));
            if let (Some(active), Some(SERVICE_NAME)) =
                (overrides.active, s.metadata.name.as_deref())
            {
                let spec = s.spec.get_or_insert_with(Default::default);
                spec.selector
                    .get_or_insert_with(BTreeMap::new)
                    .insert(COLOR_LABEL.to_string(), active.as_str().to_string());
            }
            if let (Some(node_port), Some(SERVICE_NAME)) =
                (overrides.node_port, s.metadata.name.as_deref())
                && let Some(port) = s
                    .spec
                    .as_mut()
                    .and_then(|spec| spec.ports.as_mut()?.first_mut())
            {
                port.node_port = Some(node_port);
            }
        }
        for h in &mut self.hpas {
            stamp(&mut h.metadata, Some(&ns));
            if let Some(replicas) = overrides.replicas {
                h.spec.min_replicas = Some(replicas);
                h.spec.max_replicas = h.spec.max_replicas.max(replicas);
            }
        }
        self
    }

    /// The names of the Deployments, in manifest order.
    pub fn deployment_names(&self) -> Vec<String> {
        self.deployments
            .iter()
            .filter_map(|d| d.metadata.name.clone())
            .collect()
    }

    /// The colour the `web` Service selects, if it names one.
    pub fn active_color(&self) -> Option<Color> {
        let service = self
            .services
            .iter()
            .find(|s| s.metadata.name.as_deref() == Some(SERVICE_NAME))?;
        let selector = service.spec.as_ref()?.selector.as_ref()?;
        match selector.get(COLOR_LABEL)?.as_str() {
            "blue" => Some(Color::Blue),
            "green" => Some(Color::Green),
            _ => None,
        }
    }
}

fn stamp(meta: &mut ObjectMeta, namespace: Option<&str>) {
    meta.labels
        .get_or_insert_with(BTreeMap::new)
        .insert(MANAGED_BY_LABEL.to_string(), MANAGED_BY_VALUE.to_string());
    if let Some(ns) = namespace {
        meta.namespace = Some(ns.to_string());
    }
}

/// Splits a YAML stream at `---` lines, returning each document with its first line
/// number (1-based) so errors point into the file.
fn split_documents(text: &str) -> Vec<(usize, &str)> {
    let mut docs = Vec::new();
    let mut start_byte = 0;
    let mut start_line = 1;
    let mut offset = 0;
    for (index, line) in text.split_inclusive('\n').enumerate() {
        let trimmed = line.trim_end();
        if trimmed == "---" || trimmed.starts_with("--- ") {
            docs.push((start_line, &text[start_byte..offset]));
            start_byte = offset + line.len();
            start_line = index + 2;
        }
        offset += line.len();
    }
    docs.push((start_line, &text[start_byte..]));
    docs
}

fn typed<T: DeserializeOwned>(doc: &str, file: &str, start: usize) -> Result<T, ManifestError> {
    serde_saphyr::from_str(doc).map_err(|e| yaml_error(file, start, &e))
}

fn yaml_error(file: &str, start: usize, err: &serde_saphyr::Error) -> ManifestError {
    let line = err
        .location()
        .map(|l| start + l.line() as usize - 1)
        .unwrap_or(start);
    // The parser's own text repeats its (document-relative) position; keep the message.
    let text = err.to_string();
    let first = text.lines().next().unwrap_or("invalid YAML");
    let first = first.strip_prefix("error: ").unwrap_or(first);
    let reason = match first.strip_prefix("line ").and_then(|r| r.split_once(": ")) {
        Some((_position, message)) => message.to_string(),
        None => first.to_string(),
    };
    ManifestError::Invalid {
        at: format!("{file}:{line}"),
        reason,
    }
}

#[cfg(test)]
#[path = "manifests_tests.rs"]
mod tests;
