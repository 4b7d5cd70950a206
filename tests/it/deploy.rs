//! `resil deploy | status | undeploy` against an in-process lab (127.0.0.1:0, temp state
//! dir): the objects land with the manifests' fields, a second deploy changes nothing,
//! status reports what the cluster holds, undeploy removes exactly resil's objects, the
//! guard refuses a production-looking context. Also: bad manifests fail before anything
//! is sent, and the kind/minikube scripts are valid shell.

pub(crate) mod hardening;

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{Namespace, Service};
use kube::api::{Api, Patch, PatchParams, PostParams};
use resil::Exit;
use resil::cli::Cli;
use resil::cluster::{ApplyOutcome, ConnectOptions, Target};
use resil::demo::deploy::{ReplicaPolicy, apply_demo};
use resil::demo::manifests::{DemoManifests, Overrides};
use resil_lab::Lab;
use tempfile::TempDir;

use crate::cluster::{Silent, resil};
use crate::support;

const NS: &str = "distributed-resilience";

/// A lab in a temp dir, and its kubeconfig written to a file as `lab up` would.
struct LabFixture {
    lab: Lab,
    /// The lab's state directory.
    _state: TempDir,
    /// Kubeconfigs and the private HOME of spawned binaries.
    dir: TempDir,
    kubeconfig: PathBuf,
}

impl LabFixture {
    /// A lab serving the API alone: these tests check what deploy writes, and running
    /// pods would race with their reads.
    async fn start() -> LabFixture {
        LabFixture::start_with(false).await
    }

    /// A lab that runs pods, for the rollout test.
    async fn start_with_runtime() -> LabFixture {
        LabFixture::start_with(true).await
    }

    async fn start_with(runtime: bool) -> LabFixture {
        let state = tempfile::tempdir().unwrap();
        let lab = if runtime {
            support::start_lab_in(&state).await
        } else {
            support::start_api_only_lab_in(&state).await
        };
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = dir.path().join("kubeconfig");
        std::fs::write(&kubeconfig, lab.kubeconfig_yaml()).unwrap();
        LabFixture {
            lab,
            _state: state,
            dir,
            kubeconfig,
        }
    }

    /// The same lab under a context named `prod-eu`.
    fn prod_eu_kubeconfig(&self) -> PathBuf {
        let path = self.dir.path().join("prod-eu");
        std::fs::write(
            &path,
            self.lab.kubeconfig_yaml().replace("resil-lab", "prod-eu"),
        )
        .unwrap();
        path
    }

    async fn target(&self) -> Target {
        resil::cluster::connect(
            &ConnectOptions {
                kubeconfig: Some(self.kubeconfig.clone()),
                context: None,
                namespace: NS.to_string(),
            },
            None,
        )
        .await
        .expect("connects to the lab")
    }

    /// Runs `resil ARGS` in-process against this lab.
    async fn run(&self, args: &[&str]) -> Exit {
        let mut argv = vec!["resil", "--kubeconfig", self.kubeconfig.to_str().unwrap()];
        argv.extend_from_slice(args);
        resil::run(Cli::try_parse_from(argv).expect("arguments parse")).await
    }
}

fn label<'a>(meta: &'a kube::core::ObjectMeta, key: &str) -> Option<&'a str> {
    meta.labels.as_ref()?.get(key).map(String::as_str)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_creates_every_object_with_the_manifest_fields() {
    let fx = LabFixture::start().await;
    assert_eq!(fx.run(&["deploy", "--no-wait"]).await, Exit::Ok);
    let client = fx.target().await.client;
    let ns = Api::<Namespace>::all(client.clone()).get(NS).await.unwrap();
    assert_eq!(
        label(&ns.metadata, "app.kubernetes.io/managed-by"),
        Some("resil")
    );
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), NS);
    for color in ["blue", "green"] {
        let d = deployments.get(&format!("web-{color}")).await.unwrap();
        assert_eq!(label(&d.metadata, "version"), Some(color));
        assert_eq!(
            label(&d.metadata, "app.kubernetes.io/managed-by"),
            Some("resil")
        );
        let c = &d.spec.template.spec.as_ref().unwrap().containers[0];
        assert_eq!(c.image.as_deref(), Some("resil-demo:latest"));
        assert!(c.readiness_probe.is_some() && c.liveness_probe.is_some());
        let hpa = Api::<HorizontalPodAutoscaler>::namespaced(client.clone(), NS)
            .get(&format!("web-{color}"))
            .await
            .unwrap();
        assert_eq!(hpa.spec.max_replicas, 5);
    }
    let svc = Api::<Service>::namespaced(client, NS)
        .get("web")
        .await
        .unwrap();
    let spec = svc.spec.unwrap();
    assert_eq!(spec.selector.unwrap()["version"], "blue");
    assert_eq!(spec.ports.unwrap()[0].node_port, Some(30080));
    fx.lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_deploy_is_a_no_op() {
    let fx = LabFixture::start().await;
    let target = fx.target().await;
    let manifests = DemoManifests::embedded()
        .unwrap()
        .with_overrides(&Overrides::default());
    let first = apply_demo(&target, &manifests, ReplicaPolicy::KeepLive, |_| {})
        .await
        .unwrap();
    assert!(
        first
            .iter()
            .all(|a| a.outcome == Some(ApplyOutcome::Created)),
        "{first:?}"
    );
    let deployments: Api<Deployment> = Api::namespaced(target.client.clone(), NS);
    let before = deployments.get("web-blue").await.unwrap();
    let second = apply_demo(&target, &manifests, ReplicaPolicy::KeepLive, |_| {})
        .await
        .unwrap();
    assert_eq!(second.len(), first.len());
    assert!(
        second
            .iter()
            .all(|a| a.outcome == Some(ApplyOutcome::Unchanged)),
        "{second:?}"
    );
    let after = deployments.get("web-blue").await.unwrap();
    assert_eq!(before.metadata.generation, after.metadata.generation);
    // And a real change is reported as one.
    let changed = manifests.clone().with_overrides(&Overrides {
        replicas: Some(2),
        ..Default::default()
    });
    let third = apply_demo(&target, &changed, ReplicaPolicy::FromManifests, |_| {})
        .await
        .unwrap();
    let blue = third
        .iter()
        .find(|a| a.name == "web-blue" && a.resource == "deployment.apps");
    assert_eq!(blue.unwrap().outcome, Some(ApplyOutcome::Configured));
    fx.lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_deploy_keeps_the_replicas_the_hpa_chose() {
    let fx = LabFixture::start().await;
    assert_eq!(fx.run(&["deploy", "--no-wait"]).await, Exit::Ok);
    let deployments: Api<Deployment> = Api::namespaced(fx.target().await.client, NS);
    // What the HPA does: write the scale.
    let scale = serde_json::json!({"spec": {"replicas": 3}});
    deployments
        .patch_scale("web-blue", &PatchParams::default(), &Patch::Merge(&scale))
        .await
        .unwrap();
    assert_eq!(fx.run(&["deploy", "--no-wait"]).await, Exit::Ok);
    let blue = deployments.get("web-blue").await.unwrap();
    assert_eq!(
        blue.spec.replicas,
        Some(3),
        "deploy must not undo autoscaling"
    );
    // An explicit --replicas still wins.
    assert_eq!(
        fx.run(&["deploy", "--no-wait", "--replicas", "2"]).await,
        Exit::Ok
    );
    let blue = deployments.get("web-blue").await.unwrap();
    assert_eq!(blue.spec.replicas, Some(2));
    fx.lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overrides_reach_the_cluster() {
    let fx = LabFixture::start().await;
    let args = [
        "deploy",
        "--no-wait",
        "--image",
        "resil-demo:v2",
        "--replicas",
        "2",
        "--active",
        "green",
    ];
    assert_eq!(fx.run(&args).await, Exit::Ok);
    let client = fx.target().await.client;
    let d = Api::<Deployment>::namespaced(client.clone(), NS)
        .get("web-green")
        .await
        .unwrap();
    assert_eq!(d.spec.replicas, Some(2));
    let image = d.spec.template.spec.unwrap().containers[0].image.clone();
    assert_eq!(image.as_deref(), Some("resil-demo:v2"));
    let svc = Api::<Service>::namespaced(client, NS)
        .get("web")
        .await
        .unwrap();
    assert_eq!(svc.spec.unwrap().selector.unwrap()["version"], "green");
    fx.lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_json_matches_the_cluster() {
    let fx = LabFixture::start().await;
    assert_eq!(
        fx.run(&["deploy", "--no-wait", "--replicas", "2"]).await,
        Exit::Ok
    );
    let (home, kc) = (fx.dir.path().to_path_buf(), fx.kubeconfig.clone());
    let out = tokio::task::spawn_blocking(move || {
        resil(&home)
            .args(["--kubeconfig", kc.to_str().unwrap(), "status", "-o", "json"])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status: resil::demo::status::DemoStatus = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status.schema_version, 1);
    assert_eq!(status.context, "resil-lab");
    assert_eq!(status.namespace, NS);
    assert!(status.deployed);
    let service = status.service.as_ref().unwrap();
    assert_eq!(service.selected_color.as_deref(), Some("blue"));
    assert_eq!(service.node_port, Some(30080));
    let colors: Vec<&str> = status.colors.iter().map(|c| c.color.as_str()).collect();
    assert_eq!(colors, ["blue", "green"]);
    assert!(status.colors[0].active && !status.colors[1].active);
    for c in &status.colors {
        let d = c.deployment.as_ref().unwrap();
        assert_eq!(d.desired, 2);
        assert_eq!(d.name, format!("web-{}", c.color));
        let hpa = c.hpa.as_ref().unwrap();
        assert_eq!((hpa.min_replicas, hpa.max_replicas), (2, 5));
        assert_eq!(hpa.target_cpu_utilization, Some(50));
    }
    // The same struct the library gathers.
    let gathered = resil::demo::status::gather(&fx.target().await)
        .await
        .unwrap();
    assert_eq!(gathered.service, status.service);
    fx.lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undeploy_removes_everything_resil_created() {
    let fx = LabFixture::start().await;
    assert_eq!(fx.run(&["deploy", "--no-wait"]).await, Exit::Ok);
    assert_eq!(fx.run(&["undeploy", "--timeout", "20s"]).await, Exit::Ok);
    let client = fx.target().await.client;
    assert!(
        Api::<Namespace>::all(client.clone())
            .get_opt(NS)
            .await
            .unwrap()
            .is_none()
    );
    let left = Api::<Deployment>::all(client.clone())
        .list(&Default::default())
        .await
        .unwrap();
    assert!(left.items.is_empty(), "{:?}", left.items);
    let svcs = Api::<Service>::all(client)
        .list(&Default::default())
        .await
        .unwrap();
    assert!(
        svcs.items
            .iter()
            .all(|s| s.metadata.namespace.as_deref() != Some(NS))
    );
    // Nothing left: a second undeploy says so and succeeds.
    assert_eq!(fx.run(&["undeploy"]).await, Exit::Ok);
    fx.lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_resil_did_not_create_are_left_alone() {
    let fx = LabFixture::start().await;
    let client = fx.target().await.client;
    let foreign: Namespace = serde_json::from_value(serde_json::json!({
        "metadata": {"name": NS}
    }))
    .unwrap();
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &foreign)
        .await
        .unwrap();
    let mut theirs = DemoManifests::embedded().unwrap().deployments[0].clone();
    theirs.metadata.labels = Some([("app".to_string(), "web".to_string())].into());
    theirs.metadata.name = Some("web-blue".into());
    // Someone else's Deployment: its pods do not carry resil's label either.
    if let Some(labels) = theirs
        .spec
        .template
        .metadata
        .as_mut()
        .and_then(|m| m.labels.as_mut())
    {
        labels.remove(resil::cluster::MANAGED_BY_LABEL);
    }
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), NS);
    deployments
        .create(&PostParams::default(), &theirs)
        .await
        .unwrap();
    // deploy refuses to take over web-blue ...
    assert_eq!(fx.run(&["deploy", "--no-wait"]).await, Exit::Error);
    // ... and undeploy neither deletes it nor the namespace that holds it.
    assert_eq!(fx.run(&["undeploy", "--timeout", "10s"]).await, Exit::Ok);
    assert!(deployments.get_opt("web-blue").await.unwrap().is_some());
    assert!(
        Api::<Namespace>::all(client)
            .get_opt(NS)
            .await
            .unwrap()
            .is_some()
    );
    fx.lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_guard_refuses_prod_eu_on_the_lab_and_allow_context_admits_it() {
    let fx = LabFixture::start().await;
    let kc = fx.prod_eu_kubeconfig();
    let kc = kc.to_str().unwrap();
    let refused =
        Cli::try_parse_from(["resil", "--kubeconfig", kc, "deploy", "--no-wait"]).unwrap();
    assert_eq!(resil::run(refused).await, Exit::Error);
    let client = fx.target().await.client;
    assert!(
        Api::<Namespace>::all(client.clone())
            .get_opt(NS)
            .await
            .unwrap()
            .is_none()
    );
    let allowed = Cli::try_parse_from([
        "resil",
        "--kubeconfig",
        kc,
        "--allow-context",
        "prod-eu",
        "deploy",
        "--no-wait",
    ])
    .unwrap();
    assert_eq!(resil::run(allowed).await, Exit::Ok);
    assert!(
        Api::<Namespace>::all(client)
            .get_opt(NS)
            .await
            .unwrap()
            .is_some()
    );
    fx.lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_waits_for_both_colours_and_the_nodeport_answers_blue() {
    let fx = LabFixture::start_with_runtime().await;
    assert_eq!(fx.run(&["deploy", "--timeout", "60s"]).await, Exit::Ok);
    let status = resil::demo::status::gather(&fx.target().await)
        .await
        .unwrap();
    for c in &status.colors {
        let d = c.deployment.as_ref().unwrap();
        assert_eq!(d.ready, d.desired, "{} not ready", c.color);
    }
    assert!(status.service.as_ref().unwrap().ready_endpoints >= 1);
    let client = reqwest::Client::new();
    let res = tokio::time::timeout(
        Duration::from_secs(10),
        client.get("http://127.0.0.1:30080/").send(),
    )
    .await
    .expect("answer in time")
    .expect("the NodePort answers");
    let headers = format!("{:?} {}", res.headers().clone(), res.text().await.unwrap());
    assert!(headers.contains("blue"), "{headers}");
    fx.lab.shutdown().await;
}

// ---------------------------------------------------------------- no cluster needed

fn write_manifests(dir: &Path, extra: Option<(&str, &str)>) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("manifests");
    for entry in std::fs::read_dir(src).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, dir.join(path.file_name().unwrap())).unwrap();
    }
    if let Some((name, text)) = extra {
        std::fs::write(dir.join(name), text).unwrap();
    }
}

fn deploy_with_manifests(extra: (&str, &str)) -> (Option<i32>, String, bool) {
    let home = tempfile::tempdir().unwrap();
    let server = Silent::new();
    let kc = home.path().join("kubeconfig");
    std::fs::write(
        &kc,
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: kind-x\nclusters: [{{name: c, cluster: {{server: \"{}\"}}}}]\nusers: [{{name: u, user: {{token: t}}}}]\ncontexts: [{{name: kind-x, context: {{cluster: c, user: u}}}}]\n",
            server.url()
        ),
    )
    .unwrap();
    let dir = home.path().join("m");
    std::fs::create_dir(&dir).unwrap();
    write_manifests(&dir, Some(extra));
    let out = resil(home.path())
        .args([
            "--kubeconfig",
            kc.to_str().unwrap(),
            "deploy",
            "--manifests",
            dir.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        server.was_contacted(),
    )
}

#[test]
fn malformed_yaml_in_manifests_names_file_and_line_and_applies_nothing() {
    let (code, err, contacted) = deploy_with_manifests((
        "40-extra.yaml",
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: [x\n",
    ));
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("40-extra.yaml:"), "{err}");
    assert!(
        !contacted,
        "nothing may be sent before the manifests are valid"
    );
}

#[test]
fn an_unexpected_kind_in_manifests_is_refused_before_anything_is_applied() {
    let secret = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: s\n";
    let (code, err, contacted) = deploy_with_manifests(("40-secret.yaml", secret));
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("40-secret.yaml:1"), "{err}");
    assert!(err.contains("unexpected object Secret"), "{err}");
    assert!(!contacted);
}

#[test]
fn the_cluster_scripts_are_valid_bash() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for script in ["scripts/kind-up.sh", "scripts/minikube-up.sh"] {
        let out = std::process::Command::new("bash")
            .arg("-n")
            .arg(root.join(script))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{script}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn the_cluster_scripts_stop_early_naming_a_missing_tool() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let empty = tempfile::tempdir().unwrap();
    // Found on this process's PATH; the script itself gets an empty one.
    let bash = std::env::split_paths(&std::env::var_os("PATH").unwrap())
        .map(|dir| dir.join("bash"))
        .find(|p| p.exists())
        .expect("bash on PATH");
    for (script, first_tool) in [
        ("scripts/kind-up.sh", "docker"),
        ("scripts/minikube-up.sh", "minikube"),
    ] {
        let out = std::process::Command::new(&bash)
            .arg(root.join(script))
            .env_clear()
            .env("PATH", empty.path())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{script}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&format!("{first_tool} is not installed")),
            "{script}: {err}"
        );
    }
}

#[test]
fn the_cluster_scripts_pass_shellcheck_when_it_is_installed() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let Ok(out) = std::process::Command::new("shellcheck")
        .arg(root.join("scripts/kind-up.sh"))
        .arg(root.join("scripts/minikube-up.sh"))
        .output()
    else {
        eprintln!("shellcheck not installed; skipped");
        return;
    };
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn the_dockerfile_runs_demo_app_as_a_non_root_user_on_8080() {
    let text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Dockerfile")).unwrap();
    assert!(
        text.contains(r#"ENTRYPOINT ["resil", "demo-app"]"#),
        "{text}"
    );
    assert!(text.contains("EXPOSE 8080"));
    assert!(
        text.lines()
            .any(|l| l.starts_with("USER ") && !l.contains("root"))
    );
    assert_eq!(
        text.matches("\nFROM ").count() + usize::from(text.starts_with("FROM ")),
        2
    );
}
