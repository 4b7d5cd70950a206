//! `resil status`: the demo's state read from the cluster into [`DemoStatus`] — a
//! documented, versioned struct that `-o json|yaml` prints as is — and a comfy-table view
//! of it. `--watch` re-reads and redraws every two seconds until Ctrl-C.
//!
//! Read-only: it needs no safety guard. Other commands (`run`, `watch`) may call
//! [`gather`] for a snapshot.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use comfy_table::{Table, presets::UTF8_BORDERS_ONLY};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::api::{Api, ListParams};
use serde::{Deserialize, Serialize};

use super::manifests::{APP_LABEL, COLOR_LABEL, DEFAULT_NAMESPACE, SERVICE_NAME, deployment_name};
use crate::Exit;
use crate::cli::{GlobalArgs, StateFormat, StatusArgs};
use crate::cluster::endpoints::ServiceEndpoints;
use crate::cluster::{self, ConnectOptions, Target};
use crate::domain::Color;

/// The version of the [`DemoStatus`] layout; bumped on any incompatible change.
pub const STATUS_SCHEMA_VERSION: u32 = 1;

/// The demo's state, as `resil status -o json|yaml` prints it. Stable: fields are only
/// added, and a change that breaks readers bumps `schema_version`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DemoStatus {
    /// [`STATUS_SCHEMA_VERSION`].
    pub schema_version: u32,
    /// The kubeconfig context read.
    pub context: String,
    /// The demo namespace.
    pub namespace: String,
    /// Whether any demo object exists.
    pub deployed: bool,
    /// The `web` Service, if it exists.
    pub service: Option<ServiceView>,
    /// Blue, then green.
    pub colors: Vec<ColorView>,
}

/// The Service and its endpoints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceView {
    /// Service name (`web`).
    pub name: String,
    /// The colour its selector names (`version`), if any.
    pub selected_color: Option<String>,
    /// Its NodePort.
    pub node_port: Option<i32>,
    /// Ready endpoint addresses.
    pub ready_endpoints: usize,
    /// Not-ready endpoint addresses.
    pub not_ready_endpoints: usize,
}

/// One colour: its Deployment, HPA and pods.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColorView {
    /// `blue` or `green`.
    pub color: String,
    /// Whether the Service selects this colour.
    pub active: bool,
    /// The Deployment `web-<color>`, if it exists.
    pub deployment: Option<DeploymentView>,
    /// The HPA `web-<color>`, if it exists.
    pub hpa: Option<HpaView>,
    /// Pods labelled `app: web, version: <color>`, by name.
    pub pods: Vec<PodView>,
}

/// A Deployment's replica counts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeploymentView {
    /// Name.
    pub name: String,
    /// The first container's image.
    pub image: Option<String>,
    /// `spec.replicas`.
    pub desired: i32,
    /// `status.readyReplicas`.
    pub ready: i32,
    /// `status.availableReplicas`.
    pub available: i32,
    /// `status.updatedReplicas`.
    pub updated: i32,
}

/// An HPA's bounds, replicas and CPU utilisation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HpaView {
    /// Name.
    pub name: String,
    /// `spec.minReplicas`.
    pub min_replicas: i32,
    /// `spec.maxReplicas`.
    pub max_replicas: i32,
    /// `status.currentReplicas`.
    pub current_replicas: Option<i32>,
    /// `status.desiredReplicas`.
    pub desired_replicas: Option<i32>,
    /// Current average CPU utilisation, % of request (absent until metrics arrive).
    pub current_cpu_utilization: Option<i32>,
    /// Target average CPU utilisation, % of request.
    pub target_cpu_utilization: Option<i32>,
}

/// One pod.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PodView {
    /// Name.
    pub name: String,
    /// `status.phase` (`Pending`, `Running`, ...).
    pub phase: String,
    /// The Ready condition.
    pub ready: bool,
    /// Sum of container restarts.
    pub restarts: i32,
    /// Seconds since creation.
    pub age_seconds: Option<i64>,
    /// Why a container is waiting (`ImagePullBackOff`, ...), if one is.
    pub waiting_reason: Option<String>,
}

/// Reads the demo's state from the cluster.
pub async fn gather(target: &Target) -> anyhow::Result<DemoStatus> {
    let client = target.client.clone();
    let ns = target.namespace.as_str();
    let read = |what: &str| format!("reading {what} in namespace {ns}");
    let services: Api<Service> = Api::namespaced(client.clone(), ns);
    let service = services
        .get_opt(SERVICE_NAME)
        .await
        .map_err(|e| cluster::ClusterError::api(read("service web"), e))?;
    let endpoints = match &service {
        Some(_) => {
            let slices = cluster::endpoints::serves_slices(&client).await;
            cluster::endpoints::read(&client, ns, SERVICE_NAME, slices)
                .await
                .map_err(|e| cluster::ClusterError::api(read("endpoints of service web"), e))?
        }
        None => None,
    };
    let service = service.map(|s| service_view(&s, endpoints.as_ref()));
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let hpas: Api<HorizontalPodAutoscaler> = Api::namespaced(client.clone(), ns);
    let pods: Api<Pod> = Api::namespaced(client, ns);
    let now = chrono::Utc::now();
    let mut colors = Vec::new();
    for color in [Color::Blue, Color::Green] {
        let name = deployment_name(color);
        let deployment = deployments
            .get_opt(&name)
            .await
            .map_err(|e| cluster::ClusterError::api(read(&format!("deployment {name}")), e))?;
        let hpa = hpas
            .get_opt(&name)
            .await
            .map_err(|e| cluster::ClusterError::api(read(&format!("hpa {name}")), e))?;
        let selector = format!("{}={},{COLOR_LABEL}={color}", APP_LABEL.0, APP_LABEL.1);
        let mut pod_views: Vec<PodView> = pods
            .list(&ListParams::default().labels(&selector))
            .await
            .map_err(|e| cluster::ClusterError::api(read("pods"), e))?
            .items
            .iter()
            .map(|p| pod_view(p, now))
            .collect();
        pod_views.sort_by(|a, b| a.name.cmp(&b.name));
        colors.push(ColorView {
            color: color.to_string(),
            active: service.as_ref().and_then(|s| s.selected_color.as_deref())
                == Some(color.as_str()),
            deployment: deployment.as_ref().map(deployment_view),
            hpa: hpa.as_ref().map(hpa_view),
            pods: pod_views,
        });
    }
    let deployed = service.is_some()
        || colors
            .iter()
            .any(|c| c.deployment.is_some() || c.hpa.is_some());
    Ok(DemoStatus {
        schema_version: STATUS_SCHEMA_VERSION,
        context: target.context.clone(),
        namespace: target.namespace.clone(),
        deployed,
        service,
        colors,
    })
}

fn service_view(service: &Service, endpoints: Option<&ServiceEndpoints>) -> ServiceView {
    let spec = service.spec.as_ref();
    let (ready, not_ready) = endpoints.map_or((0, 0), |e| (e.ready.len(), e.not_ready.len()));
    ServiceView {
        name: service.metadata.name.clone().unwrap_or_default(),
        selected_color: spec
            .and_then(|s| s.selector.as_ref())
            .and_then(|s| s.get(COLOR_LABEL).cloned()),
        node_port: spec
            .and_then(|s| s.ports.as_ref())
            .and_then(|p| p.first())
            .and_then(|p| p.node_port),
        ready_endpoints: ready,
        not_ready_endpoints: not_ready,
    }
}

fn deployment_view(d: &Deployment) -> DeploymentView {
    let status = d.status.clone().unwrap_or_default();
    DeploymentView {
        name: d.metadata.name.clone().unwrap_or_default(),
        image: d
            .spec
            .template
            .spec
            .as_ref()
            .and_then(|p| p.containers.first())
            .and_then(|c| c.image.clone()),
        desired: d.spec.replicas.unwrap_or(1),
        ready: status.ready_replicas.unwrap_or(0),
        available: status.available_replicas.unwrap_or(0),
        updated: status.updated_replicas.unwrap_or(0),
    }
}

fn hpa_view(h: &HorizontalPodAutoscaler) -> HpaView {
    let status = h.status.as_ref();
    let cpu_target = cluster::hpa::cpu_target_utilization(h);
    let cpu_current = cluster::hpa::cpu_current_utilization(h);
    HpaView {
        name: h.metadata.name.clone().unwrap_or_default(),
        min_replicas: h.spec.min_replicas.unwrap_or(1),
        max_replicas: h.spec.max_replicas,
        current_replicas: status.and_then(|s| s.current_replicas),
        desired_replicas: status.map(|s| s.desired_replicas),
        current_cpu_utilization: cpu_current,
        target_cpu_utilization: cpu_target,
    }
}

fn pod_view(p: &Pod, now: chrono::DateTime<chrono::Utc>) -> PodView {
    let status = p.status.as_ref();
    let containers = status
        .and_then(|s| s.container_statuses.clone())
        .unwrap_or_default();
    PodView {
        name: p.metadata.name.clone().unwrap_or_default(),
        phase: status
            .and_then(|s| s.phase.clone())
            .unwrap_or_else(|| "Unknown".into()),
        ready: status
            .and_then(|s| s.conditions.as_ref())
            .into_iter()
            .flatten()
            .any(|c| c.type_ == "Ready" && c.status == "True"),
        restarts: containers.iter().map(|c| c.restart_count).sum(),
        age_seconds: p
            .metadata
            .creation_timestamp
            .as_ref()
            .map(|t| (now.timestamp() - t.0.as_second()).max(0)),
        waiting_reason: containers
            .iter()
            .filter_map(|c| c.state.as_ref()?.waiting.as_ref()?.reason.clone())
            .next(),
    }
}

/// Renders the status as the human view: a line about the Service, a table per colour, a
/// table of pods.
pub fn render_table(status: &DemoStatus) -> String {
    let mut out = format!(
        "context {}, namespace {}\n",
        status.context, status.namespace
    );
    if !status.deployed {
        out.push_str(&format!(
            "the demo is not deployed here (run `resil deploy{}`)\n",
            if status.namespace == DEFAULT_NAMESPACE {
                String::new()
            } else {
                format!(" -n {}", status.namespace)
            }
        ));
        return out;
    }
    match &status.service {
        Some(s) => out.push_str(&format!(
            "Service {} selects {} — {} ready / {} not-ready endpoints{}\n",
            s.name,
            s.selected_color.as_deref().unwrap_or("no colour"),
            s.ready_endpoints,
            s.not_ready_endpoints,
            s.node_port
                .map(|p| format!(", NodePort {p}"))
                .unwrap_or_default()
        )),
        None => out.push_str("Service web is missing\n"),
    }
    let mut colors = Table::new();
    colors.load_style(UTF8_BORDERS_ONLY).set_header(vec![
        "COLOUR",
        "ACTIVE",
        "DESIRED",
        "READY",
        "AVAILABLE",
        "IMAGE",
        "HPA CPU",
        "HPA REPLICAS",
    ]);
    for c in &status.colors {
        let d = c.deployment.as_ref();
        let num = |f: fn(&DeploymentView) -> i32| d.map_or("-".to_string(), |d| f(d).to_string());
        let (cpu, replicas) = match &c.hpa {
            Some(h) => (
                format!(
                    "{}/{}",
                    h.current_cpu_utilization
                        .map_or("<unknown>".into(), |v| format!("{v}%")),
                    h.target_cpu_utilization
                        .map_or("-".into(), |v| format!("{v}%"))
                ),
                format!(
                    "{}→{} ({}-{})",
                    h.current_replicas.map_or("-".into(), |v| v.to_string()),
                    h.desired_replicas.map_or("-".into(), |v| v.to_string()),
                    h.min_replicas,
                    h.max_replicas
                ),
            ),
            None => ("no HPA".into(), "-".into()),
        };
        colors.add_row(vec![
            c.color.clone(),
            if c.active { "*".into() } else { String::new() },
            num(|d| d.desired),
            num(|d| d.ready),
            num(|d| d.available),
            d.and_then(|d| d.image.clone())
                .unwrap_or_else(|| "-".into()),
            cpu,
            replicas,
        ]);
    }
    out.push_str(&colors.to_string());
    out.push('\n');
    let pods: Vec<(&str, &PodView)> = status
        .colors
        .iter()
        .flat_map(|c| c.pods.iter().map(move |p| (c.color.as_str(), p)))
        .collect();
    if pods.is_empty() {
        out.push_str("no pods yet\n");
        return out;
    }
    let mut table = Table::new();
    table
        .load_style(UTF8_BORDERS_ONLY)
        .set_header(vec!["POD", "COLOUR", "PHASE", "READY", "RESTARTS", "AGE"]);
    for (color, p) in pods {
        table.add_row(vec![
            p.name.clone(),
            color.to_string(),
            match &p.waiting_reason {
                Some(reason) => format!("{} ({reason})", p.phase),
                None => p.phase.clone(),
            },
            if p.ready { "yes" } else { "no" }.to_string(),
            p.restarts.to_string(),
            p.age_seconds.map_or("-".into(), |s| {
                humantime::format_duration(Duration::from_secs(s as u64)).to_string()
            }),
        ]);
    }
    out.push_str(&table.to_string());
    out.push('\n');
    out
}

/// Renders the status in the chosen format; JSON and YAML are [`DemoStatus`] as is.
pub fn render(status: &DemoStatus, format: StateFormat) -> anyhow::Result<String> {
    Ok(match format {
        StateFormat::Table => render_table(status),
        StateFormat::Json => format!("{}\n", serde_json::to_string_pretty(status)?),
        StateFormat::Yaml => serde_saphyr::to_string(status)?,
    })
}

/// `resil status`
pub async fn command(args: StatusArgs, global: &GlobalArgs) -> anyhow::Result<Exit> {
    let options = ConnectOptions::from_global(global);
    let target = cluster::connect(&options, None).await?;
    if !args.watch {
        let status = gather(&target).await?;
        write!(std::io::stdout(), "{}", render(&status, args.output)?)?;
        return Ok(Exit::Ok);
    }
    let tty = std::io::stdout().is_terminal();
    let mut ctrl_c = std::pin::pin!(tokio::signal::ctrl_c());
    loop {
        let status = tokio::select! {
            // Ctrl-C is how a watch ends, also while a read is slow; it is not an error.
            _ = &mut ctrl_c => return Ok(Exit::Ok),
            // One snapshot.
            status = gather(&target) => status?,
        };
        let text = match args.output {
            // One snapshot per line, so scripts can read the stream line by line.
            StateFormat::Json => format!("{}\n", serde_json::to_string(&status)?),
            StateFormat::Yaml => format!("---\n{}", serde_saphyr::to_string(&status)?),
            StateFormat::Table if tty => format!("\x1b[2J\x1b[H{}", render_table(&status)),
            StateFormat::Table => format!("{}\n", render_table(&status)),
        };
        write!(std::io::stdout(), "{text}")?;
        std::io::stdout().flush()?;
        tokio::select! {
            // Ctrl-C is how a watch ends; it is not an error.
            _ = &mut ctrl_c => return Ok(Exit::Ok),
            // The refresh period.
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> DemoStatus {
        let color = |c: &str, active: bool, pods: Vec<PodView>| ColorView {
            color: c.to_string(),
            active,
            deployment: Some(DeploymentView {
                name: format!("web-{c}"),
                image: Some("resil-demo:latest".into()),
                desired: 2,
                ready: 1,
                available: 1,
                updated: 2,
            }),
            hpa: Some(HpaView {
                name: format!("web-{c}"),
                min_replicas: 1,
                max_replicas: 5,
                current_replicas: Some(2),
                desired_replicas: Some(3),
                current_cpu_utilization: Some(72),
                target_cpu_utilization: Some(50),
            }),
            pods,
        };
        DemoStatus {
            schema_version: STATUS_SCHEMA_VERSION,
            context: "resil-lab".into(),
            namespace: DEFAULT_NAMESPACE.into(),
            deployed: true,
            service: Some(ServiceView {
                name: "web".into(),
                selected_color: Some("blue".into()),
                node_port: Some(30080),
                ready_endpoints: 1,
                not_ready_endpoints: 1,
            }),
            colors: vec![
                color(
                    "blue",
                    true,
                    vec![PodView {
                        name: "web-blue-abc".into(),
                        phase: "Pending".into(),
                        ready: false,
                        restarts: 3,
                        age_seconds: Some(90),
                        waiting_reason: Some("ErrImagePull".into()),
                    }],
                ),
                color("green", false, vec![]),
            ],
        }
    }

    #[test]
    fn the_table_names_the_selected_colour_endpoints_hpa_and_stuck_pods() {
        let text = render_table(&sample());
        assert!(
            text.contains(
                "Service web selects blue — 1 ready / 1 not-ready endpoints, NodePort 30080"
            ),
            "{text}"
        );
        assert!(text.contains("72%/50%"), "{text}");
        assert!(text.contains("2→3 (1-5)"), "{text}");
        assert!(text.contains("Pending (ErrImagePull)"), "{text}");
        assert!(text.contains("1m 30s"), "{text}");
    }

    #[test]
    fn an_empty_namespace_says_how_to_deploy() {
        let mut status = sample();
        status.deployed = false;
        status.namespace = "other".into();
        let text = render_table(&status);
        assert!(text.contains("resil deploy -n other"), "{text}");
    }

    #[test]
    fn json_and_yaml_round_trip_the_documented_struct() {
        let status = sample();
        let json = render(&status, StateFormat::Json).unwrap();
        assert_eq!(serde_json::from_str::<DemoStatus>(&json).unwrap(), status);
        let yaml = render(&status, StateFormat::Yaml).unwrap();
        assert_eq!(serde_saphyr::from_str::<DemoStatus>(&yaml).unwrap(), status);
        assert!(json.contains("\"schema_version\": 1"), "{json}");
    }
}
