//! `resil deploy`: resolve the manifests and overrides into a [`DeployPlan`], connect (the
//! guard refuses non-lab contexts before any request), check `--replicas` against the
//! cluster's pod capacity ([`capacity`]), server-side apply every object in order, wait
//! for both rollouts with progress (naming pods that stay Pending, and why), warn when
//! the HPA cannot get metrics, and print the URL that reaches the Service — only once it
//! answered from this cluster's demo ([`reach`]).
//!
//! The engine parts ([`apply_demo`], [`service_url`], [`metrics_advice`], [`reach`])
//! return values; only [`command`] prints. `resil run` calls the engine parts directly.

pub mod capacity;
pub mod pdb;
pub mod reach;

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{Namespace, Node, Service};
use kube::api::{Api, ListParams};
use serde::Serialize;

use super::manifests::{APP_LABEL, DemoManifests, Overrides, SERVICE_NAME};
use crate::Exit;
use crate::cli::{DeployArgs, GlobalArgs};
use crate::cluster::{
    self, ApplyOutcome, ClusterKind, ConnectOptions, Guard, RolloutProgress, Target,
};
use crate::domain::Color;

/// The NodePorts a Service may ask for (upstream's default range, which the lab uses).
pub const NODE_PORT_RANGE: std::ops::RangeInclusive<i32> = 30_000..=32_767;

/// Everything `resil deploy` will do, resolved and validated before connecting.
#[derive(Debug, Clone)]
pub struct DeployPlan {
    /// The objects to apply (overrides and labels already applied).
    pub manifests: DemoManifests,
    /// Where to connect.
    pub connect: ConnectOptions,
    /// `--allow-context` values.
    pub allow_contexts: Vec<String>,
    /// How long to wait for the rollouts; `None` with `--no-wait`.
    pub wait: Option<Duration>,
    /// Whose replica count wins for Deployments that already exist.
    pub replicas: ReplicaPolicy,
    /// `--replicas`, checked against the cluster's capacity once connected.
    pub requested_replicas: Option<i32>,
}

/// Whose replica count a deploy applies to a Deployment that already exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplicaPolicy {
    /// The manifests' (or `--replicas`') value, always.
    FromManifests,
    /// The live count — what the HPA (or an outage) chose — so a repeated deploy does not
    /// undo autoscaling; new Deployments still get the manifests' value.
    KeepLive,
}

impl DeployPlan {
    /// Resolves the command line: reads and checks the manifests (exit 2 on bad ones,
    /// before anything is applied) and applies the overrides.
    pub fn from_args(args: &DeployArgs, global: &GlobalArgs) -> anyhow::Result<DeployPlan> {
        // The upper bound depends on the cluster: checked once connected.
        if let Some(replicas) = args.spec.replicas
            && replicas < 0
        {
            anyhow::bail!("--replicas {replicas} is out of range: give 0 or more per colour");
        }
        if let Some(port) = args.spec.node_port
            && !NODE_PORT_RANGE.contains(&port)
        {
            anyhow::bail!(
                "--node-port {port} is outside the NodePort range {}-{}",
                NODE_PORT_RANGE.start(),
                NODE_PORT_RANGE.end()
            );
        }
        let manifests = match &args.manifests {
            Some(dir) => DemoManifests::from_dir(dir)?,
            None => DemoManifests::embedded()?,
        };
        let manifests = manifests.with_overrides(&Overrides {
            namespace: global.namespace.clone(),
            image: args.spec.image.clone(),
            replicas: args.spec.replicas,
            // A scenario that names no colour gets the flag's default.
            active: Some(args.spec.active.unwrap_or(Color::Blue)),
            node_port: args.spec.node_port,
            no_pdb: args.spec.no_pdb,
            no_spread: args.spec.no_spread,
            region: args.spec.region.clone(),
        });
        Ok(DeployPlan {
            connect: ConnectOptions {
                kubeconfig: global.kubeconfig.clone(),
                context: global.context.clone(),
                namespace: manifests.namespace_name().to_string(),
            },
            manifests,
            allow_contexts: global.allow_context.clone(),
            wait: (!args.no_wait).then_some(args.timeout),
            replicas: if args.spec.replicas.is_some() {
                ReplicaPolicy::FromManifests
            } else {
                ReplicaPolicy::KeepLive
            },
            requested_replicas: args.spec.replicas,
        })
    }
}

/// One object's fate in a deploy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Applied {
    /// kubectl-style resource name, e.g. `deployment.apps`.
    pub resource: &'static str,
    /// Object name.
    pub name: String,
    /// What the apply did; `None` when resil left the object alone (a namespace that
    /// exists but is not resil's).
    pub outcome: Option<ApplyOutcome>,
}

impl std::fmt::Display for Applied {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.outcome {
            Some(outcome) => write!(f, "{}/{} {outcome}", self.resource, self.name),
            None => write!(
                f,
                "{}/{} exists and is not resil's: left as it is",
                self.resource, self.name
            ),
        }
    }
}

/// Applies the demo in dependency order (namespace, Deployments, Services, HPAs), calling
/// `on_applied` after each object. On failure the error lists what was already applied.
pub async fn apply_demo(
    target: &Target,
    manifests: &DemoManifests,
    replicas: ReplicaPolicy,
    mut on_applied: impl FnMut(&Applied),
) -> anyhow::Result<Vec<Applied>> {
    let mut done: Vec<Applied> = Vec::new();
    let result = apply_each(target, manifests, replicas, &mut |a: Applied| {
        on_applied(&a);
        done.push(a);
    })
    .await;
    match result {
        Ok(()) => Ok(done),
        Err(err) if done.is_empty() => Err(err),
        Err(err) => {
            let list = done
                .iter()
                .map(|a| format!("{}/{}", a.resource, a.name))
                .collect::<Vec<_>>()
                .join(", ");
            Err(err.context(format!(
                "deploy stopped part-way; already applied: {list}. Fix the cause and run \
                 `resil deploy` again (it is idempotent), or remove them with `resil undeploy`"
            )))
        }
    }
}

async fn apply_each(
    target: &Target,
    manifests: &DemoManifests,
    replicas: ReplicaPolicy,
    record: &mut impl FnMut(Applied),
) -> anyhow::Result<()> {
    let client = target.client.clone();
    let ns = target.namespace.as_str();
    if let Some(namespace) = &manifests.namespace {
        let api: Api<Namespace> = Api::all(client.clone());
        let name = namespace.metadata.name.clone().unwrap_or_default();
        let live = api
            .get_opt(&name)
            .await
            .with_context(|| format!("reading namespace {name}"))?;
        let outcome = match live {
            Some(live) if cluster::ensure_managed("namespace", &live.metadata, None).is_err() => {
                None
            }
            _ => Some(cluster::apply(&api, "namespace", namespace).await?),
        };
        record(Applied {
            resource: "namespace",
            name,
            outcome,
        });
    }
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
    for d in &manifests.deployments {
        let mut d = d.clone();
        if replicas == ReplicaPolicy::KeepLive {
            let name = d.metadata.name.clone().unwrap_or_default();
            let live = deployments
                .get_opt(&name)
                .await
                .with_context(|| format!("reading deployment {name}"))?;
            if let Some(count) = live.and_then(|l| l.spec.replicas) {
                d.spec.replicas = Some(count);
            }
        }
        let d = &d;
        let outcome = cluster::apply(&deployments, "deployment", d).await?;
        record(applied("deployment.apps", &d.metadata, outcome));
    }
    let services: Api<Service> = Api::namespaced(client.clone(), ns);
    for s in &manifests.services {
        let outcome = cluster::apply(&services, "service", s).await?;
        record(applied("service", &s.metadata, outcome));
    }
    let hpas: Api<HorizontalPodAutoscaler> = Api::namespaced(client.clone(), ns);
    for h in &manifests.hpas {
        let outcome = cluster::apply(&hpas, "horizontalpodautoscaler", h).await?;
        record(applied(
            "horizontalpodautoscaler.autoscaling",
            &h.metadata,
            outcome,
        ));
    }
    pdb::apply_pdbs(client, ns, manifests, record).await
}

fn applied(
    resource: &'static str,
    meta: &kube::core::ObjectMeta,
    outcome: ApplyOutcome,
) -> Applied {
    Applied {
        resource,
        name: meta.name.clone().unwrap_or_default(),
        outcome: Some(outcome),
    }
}

/// The URL that reaches the Service from this machine, with a note when it depends on
/// how the cluster was set up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServiceUrl {
    /// `http://HOST:NODEPORT`.
    pub url: String,
    /// How the URL was found, when the user should know.
    pub note: Option<String>,
    /// Whether the URL names a real host (not the `<node-ip>` placeholder), so it can be
    /// probed.
    pub concrete: bool,
}

/// [`service_url`], once it answered from this cluster's demo ([`reach::confirm`]) when it
/// names a real host: anything else on that port would be measured instead.
pub async fn confirmed_service_url(
    target: &Target,
    node_port: i32,
) -> Result<ServiceUrl, reach::Unreached> {
    let url = service_url(target, node_port).await;
    if url.concrete {
        reach::confirm(target, &url.url, node_port).await?;
    }
    Ok(url)
}

/// Finds the Service URL: loopback for the lab, kind (port mapping from
/// `scripts/kind-up.sh`) and desktop VMs; the node's address for minikube and others.
pub async fn service_url(target: &Target, node_port: i32) -> ServiceUrl {
    let local = |note: Option<&str>| ServiceUrl {
        url: format!("http://127.0.0.1:{node_port}"),
        note: note.map(str::to_string),
        concrete: true,
    };
    match target.kind() {
        ClusterKind::Lab | ClusterKind::Desktop => local(None),
        ClusterKind::Kind => local(Some(
            "reachable on 127.0.0.1 when the cluster was made with scripts/kind-up.sh (it maps \
             the NodePort to the host)",
        )),
        kind @ (ClusterKind::Minikube | ClusterKind::K3d | ClusterKind::Other) => {
            let prefer_external = kind == ClusterKind::Other;
            match node_address(target, prefer_external).await {
                Some(ip) => ServiceUrl {
                    url: format!("http://{ip}:{node_port}"),
                    note: None,
                    concrete: true,
                },
                None => ServiceUrl {
                    url: format!("http://<node-ip>:{node_port}"),
                    note: Some(
                        "could not read a node address; use any node's IP (`kubectl get nodes \
                         -o wide`)"
                            .to_string(),
                    ),
                    concrete: false,
                },
            }
        }
    }
}

async fn node_address(target: &Target, prefer_external: bool) -> Option<String> {
    let nodes: Api<Node> = Api::all(target.client.clone());
    let list = nodes.list(&ListParams::default().limit(5)).await.ok()?;
    let addresses: Vec<_> = list
        .items
        .iter()
        .filter_map(|n| n.status.as_ref()?.addresses.clone())
        .flatten()
        .collect();
    let find = |kind: &str| {
        addresses
            .iter()
            .find(|a| a.type_ == kind)
            .map(|a| a.address.clone())
    };
    if prefer_external {
        find("ExternalIP").or_else(|| find("InternalIP"))
    } else {
        find("InternalIP")
    }
}

/// A warning with the exact command to run when the cluster serves no pod metrics (the
/// HPAs then never scale); `None` when metrics are there.
pub async fn metrics_advice(target: &Target) -> Option<String> {
    let groups = target.client.list_api_groups().await.ok()?;
    if groups.groups.iter().any(|g| g.name == "metrics.k8s.io") {
        return None;
    }
    let install = "kubectl apply -f \
        https://github.com/kubernetes-sigs/metrics-server/releases/latest/download/components.yaml";
    let patch = "kubectl -n kube-system patch deployment metrics-server --type=json -p \
        '[{\"op\":\"add\",\"path\":\"/spec/template/spec/containers/0/args/-\",\"value\":\"--kubelet-insecure-tls\"}]'";
    let how = match target.kind() {
        ClusterKind::Minikube => "minikube addons enable metrics-server".to_string(),
        ClusterKind::Kind | ClusterKind::K3d | ClusterKind::Desktop => {
            format!("{install}\n  {patch}")
        }
        ClusterKind::Lab | ClusterKind::Other => install.to_string(),
    };
    Some(format!(
        "the cluster serves no pod metrics (API group metrics.k8s.io is missing), so the HPAs \
         cannot scale. Install metrics-server:\n  {how}"
    ))
}

/// Why pods are not ready, for the rollout-timeout message: `" (pods not ready: a
/// (Pending: ErrImagePull), ...)"` plus the fix for an image the node does not have.
async fn stuck_pods(target: &Target) -> String {
    let Ok(status) = super::status::gather(target).await else {
        return String::new();
    };
    let stuck: Vec<String> = status
        .colors
        .iter()
        .flat_map(|c| c.pods.iter())
        .filter(|p| !p.ready)
        .map(|p| match &p.waiting_reason {
            Some(reason) => format!("{} ({}: {reason})", p.name, p.phase),
            None => format!("{} ({})", p.name, p.phase),
        })
        .collect();
    if stuck.is_empty() {
        return String::new();
    }
    let selector = format!("{}={}", APP_LABEL.0, APP_LABEL.1);
    let pending = capacity::pending(target, &selector).await;
    let pending = if pending.is_empty() {
        String::new()
    } else {
        format!("; {}", pending.join("; "))
    };
    let image_missing = status
        .colors
        .iter()
        .flat_map(|c| c.pods.iter())
        .filter_map(|p| p.waiting_reason.as_deref())
        .any(|r| matches!(r, "ErrImagePull" | "ImagePullBackOff" | "ErrImageNeverPull"));
    let fix = if image_missing {
        ". The node cannot get the image: build and load it with scripts/kind-up.sh or \
         scripts/minikube-up.sh, or pass --image with one the cluster can pull"
    } else {
        ""
    };
    format!(" (pods not ready: {}{pending}){fix}", stuck.join(", "))
}

/// `resil deploy`
pub async fn command(args: DeployArgs, global: &GlobalArgs) -> anyhow::Result<Exit> {
    let plan = DeployPlan::from_args(&args, global)?;
    let guard = Guard::from_environment(&plan.allow_contexts)?;
    let target = cluster::connect(&plan.connect, Some(&guard)).await?;
    if let Some(replicas) = plan.requested_replicas {
        let room = capacity::pod_capacity(&target).await;
        let colours = plan.manifests.deployments.len();
        capacity::check_replicas(replicas, colours, room).map_err(anyhow::Error::msg)?;
    }
    say(format_args!(
        "deploying to context {} ({}), namespace {}",
        target.context, target.server, target.namespace
    ))?;
    let applied = apply_demo(&target, &plan.manifests, plan.replicas, |a| {
        // A closed stdout surfaces at the next `say`.
        let _ = say(a);
    })
    .await?;
    let changed = applied.iter().any(|a| {
        matches!(
            a.outcome,
            Some(ApplyOutcome::Created | ApplyOutcome::Configured)
        )
    });
    if let Some(timeout) = plan.wait {
        let started = Instant::now();
        let names = plan.manifests.deployment_names();
        let deployments: Api<Deployment> =
            Api::namespaced(target.client.clone(), &target.namespace);
        let mut progress = RolloutView::new(&names, std::io::stderr().is_terminal());
        let notes = progress.notes();
        let waiting =
            cluster::wait_for_rollouts(deployments, &names, timeout, |p| progress.update(p));
        let waited = tokio::select! {
            // The rollouts finished, failed or timed out.
            waited = waiting => waited,
            // Says which pods stay Pending and why while the wait goes on; never ends.
            () = report_pending(&target, &notes) => unreachable!("report_pending never ends"),
        };
        progress.finish();
        if let Err(err) = waited {
            let why = stuck_pods(&target).await;
            return Err(anyhow::Error::new(err).context(format!(
                "the rollout did not finish{why}; `resil status -n {}` shows the pods",
                target.namespace
            )));
        }
        say(format_args!(
            "rolled out {} in {:.1}s",
            names.join(", "),
            started.elapsed().as_secs_f64()
        ))?;
    }
    if let Some(advice) = metrics_advice(&target).await {
        eprintln!("warning: {advice}");
    }
    let services: Api<Service> = Api::namespaced(target.client.clone(), &target.namespace);
    let node_port = services
        .get_opt(SERVICE_NAME)
        .await
        .ok()
        .flatten()
        .and_then(|s| s.spec?.ports?.first()?.node_port);
    let active = plan
        .manifests
        .active_color()
        .map(|c| c.as_str())
        .unwrap_or("?");
    match node_port {
        // Without the rollout there is no pod to answer yet: no URL is confirmed, so
        // none is printed.
        Some(port) if plan.wait.is_none() => say(format_args!(
            "Service {SERVICE_NAME} selects {active} on NodePort {port} (its URL is checked \
             once pods run: `resil deploy` without --no-wait, or `resil status`)"
        ))?,
        Some(port) => {
            let url = confirmed_service_url(&target, port).await?;
            say(format_args!(
                "Service {SERVICE_NAME} selects {active}: {}",
                url.url
            ))?;
            if let Some(note) = url.note {
                say(format_args!("  ({note})"))?;
            }
        }
        None => say(format_args!(
            "Service {SERVICE_NAME} selects {active} (no NodePort)"
        ))?,
    }
    if !changed {
        say("nothing changed: the demo was already deployed as asked")?;
    }
    Ok(Exit::Ok)
}

/// Every 2 s, says (once per distinct line) which of the demo's pods are Pending and the
/// Event that says why. Runs until dropped.
async fn report_pending(target: &Target, notes: &Notes) {
    let selector = format!("{}={}", APP_LABEL.0, APP_LABEL.1);
    let mut said = std::collections::BTreeSet::new();
    loop {
        tokio::time::sleep(Duration::from_secs(2)).await;
        for line in capacity::pending(target, &selector).await {
            if said.insert(line.clone()) {
                notes.say(&format!("waiting: {line}"));
            }
        }
    }
}

/// One line on stdout; the lock is taken per line, never across an await.
fn say(line: impl std::fmt::Display) -> std::io::Result<()> {
    writeln!(std::io::stdout(), "{line}")
}

/// Lines printed on stderr during a rollout wait, above the progress bars if any.
struct Notes(Option<indicatif::MultiProgress>);

impl Notes {
    fn say(&self, line: &str) {
        match &self.0 {
            Some(multi) if multi.println(line).is_ok() => {}
            _ => eprintln!("{line}"),
        }
    }
}

/// Rollout progress on stderr: indicatif bars on a terminal, plain lines otherwise.
struct RolloutView {
    bars: Option<(
        indicatif::MultiProgress,
        Vec<(String, indicatif::ProgressBar)>,
    )>,
}

impl RolloutView {
    fn new(names: &[String], tty: bool) -> RolloutView {
        if !tty {
            return RolloutView { bars: None };
        }
        let multi = indicatif::MultiProgress::new();
        let style = indicatif::ProgressStyle::with_template(
            "{spinner} {prefix:<10} [{bar:20}] {pos}/{len} ready {msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> ");
        let bars = names
            .iter()
            .map(|name| {
                let bar = multi.add(indicatif::ProgressBar::new(1));
                bar.set_style(style.clone());
                bar.set_prefix(name.clone());
                bar.enable_steady_tick(Duration::from_millis(120));
                (name.clone(), bar)
            })
            .collect();
        RolloutView {
            bars: Some((multi, bars)),
        }
    }

    fn update(&mut self, p: &RolloutProgress) {
        match &self.bars {
            None => eprintln!("{p}{}", if p.complete { " — done" } else { "" }),
            Some((_, bars)) => {
                if let Some((_, bar)) = bars.iter().find(|(n, _)| *n == p.name) {
                    bar.set_length(p.desired.max(0) as u64);
                    bar.set_position(p.ready.max(0) as u64);
                    bar.set_message(format!(
                        "({} updated, {} available)",
                        p.updated, p.available
                    ));
                    if p.complete {
                        bar.finish_with_message("done");
                    }
                }
            }
        }
    }

    /// Where notes go while the bars run (above them, or plain lines on stderr).
    fn notes(&self) -> Notes {
        Notes(self.bars.as_ref().map(|(multi, _)| multi.clone()))
    }

    fn finish(self) {
        if let Some((multi, bars)) = self.bars {
            for (_, bar) in bars {
                bar.finish_and_clear();
            }
            let _ = multi.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(context: &str) -> Target {
        // Nothing listens there: the cases below must not need the API.
        crate::crypto::ensure_crypto_provider();
        let config = kube::Config::new("http://127.0.0.1:9".parse().unwrap());
        Target {
            client: kube::Client::try_from(config).unwrap(),
            context: context.to_string(),
            namespace: "distributed-resilience".into(),
            server: "http://127.0.0.1:9".into(),
        }
    }

    #[tokio::test]
    async fn the_lab_kind_and_desktop_clusters_are_reached_on_loopback() {
        for context in ["resil-lab", "kind-resil", "docker-desktop", "orbstack"] {
            let url = service_url(&target(context), 30080).await;
            assert_eq!(url.url, "http://127.0.0.1:30080", "{context}");
        }
        let kind = service_url(&target("kind-resil"), 30080).await;
        assert!(kind.note.unwrap().contains("scripts/kind-up.sh"));
    }

    #[tokio::test]
    async fn without_a_readable_node_the_url_says_to_use_a_node_ip() {
        let url = service_url(&target("minikube"), 30080).await;
        assert_eq!(url.url, "http://<node-ip>:30080");
        assert!(url.note.unwrap().contains("kubectl get nodes -o wide"));
    }

    #[test]
    fn replicas_from_the_flag_win_otherwise_the_live_count_is_kept() {
        use clap::Parser;
        let parse = |args: &[&str]| {
            let mut argv = vec!["resil"];
            argv.extend_from_slice(args);
            match crate::cli::Cli::parse_from(argv).command {
                crate::cli::Command::Deploy(d) => d,
                _ => unreachable!(),
            }
        };
        let global = GlobalArgs::default();
        let plan = DeployPlan::from_args(&parse(&["deploy"]), &global).unwrap();
        assert_eq!(plan.replicas, ReplicaPolicy::KeepLive);
        let plan = DeployPlan::from_args(&parse(&["deploy", "--replicas", "2"]), &global).unwrap();
        assert_eq!(plan.replicas, ReplicaPolicy::FromManifests);
        assert!(DeployPlan::from_args(&parse(&["deploy", "--replicas=-1"]), &global).is_err());
        // The cap follows the cluster, checked once connected: 5000 passes planning.
        let plan = DeployPlan::from_args(&parse(&["deploy", "--replicas", "5000"]), &global);
        assert_eq!(plan.unwrap().requested_replicas, Some(5000));
    }

    #[test]
    fn a_node_port_outside_the_range_is_refused_before_connecting() {
        use clap::Parser;
        let parse = |port: &str| match crate::cli::Cli::parse_from([
            "resil",
            "deploy",
            "--node-port",
            port,
        ])
        .command
        {
            crate::cli::Command::Deploy(d) => DeployPlan::from_args(&d, &GlobalArgs::default()),
            _ => unreachable!(),
        };
        let err = parse("8080").unwrap_err().to_string();
        assert!(err.contains("30000-32767"), "{err}");
        assert!(parse("32768").is_err());
        assert!(parse("31234").is_ok());
    }
}
