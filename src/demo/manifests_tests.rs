//! Tests of the demo manifests: the embedded files parse into k8s-openapi types with the
//! names and fields users rely on; bad directories fail with the file named.

use super::*;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

fn labels(meta: &ObjectMeta) -> BTreeMap<String, String> {
    meta.labels.clone().unwrap_or_default()
}

#[test]
fn the_built_in_manifests_parse_with_the_demo_names_and_labels() {
    let m = DemoManifests::embedded().unwrap();
    assert_eq!(m.namespace_name(), "distributed-resilience");
    assert_eq!(m.deployment_names(), ["web-blue", "web-green"]);
    for d in &m.deployments {
        let color = labels(&d.metadata)["version"].clone();
        assert_eq!(d.metadata.name.as_deref(), Some(&*format!("web-{color}")));
        assert_eq!(labels(&d.metadata)["app"], "web");
        assert_eq!(labels(&d.metadata)[MANAGED_BY_LABEL], "resil");
        let tpl = d.spec.template.metadata.as_ref().unwrap();
        assert_eq!(labels(tpl)["version"], color);
        let sel = d.spec.selector.match_labels.clone().unwrap();
        assert_eq!(sel["app"], "web");
        assert_eq!(sel["version"], color);
    }
    assert_eq!(m.services.len(), 1);
    assert_eq!(m.hpas.len(), 2);
    for h in &m.hpas {
        assert_eq!(labels(&h.metadata)[MANAGED_BY_LABEL], "resil");
    }
    let ns = m.namespace.as_ref().unwrap();
    assert_eq!(labels(&ns.metadata)[MANAGED_BY_LABEL], "resil");
}

#[test]
fn the_web_container_has_probes_resources_env_and_the_demo_image() {
    let m = DemoManifests::embedded().unwrap();
    for d in &m.deployments {
        let pod = d.spec.template.spec.as_ref().unwrap();
        let c = &pod.containers[0];
        assert_eq!(c.name, "web");
        assert_eq!(c.image.as_deref(), Some("resil-demo:latest"));
        assert_eq!(c.image_pull_policy.as_deref(), Some("IfNotPresent"));
        assert_eq!(c.ports.as_ref().unwrap()[0].container_port, 8080);
        let ready = c
            .readiness_probe
            .as_ref()
            .unwrap()
            .http_get
            .as_ref()
            .unwrap();
        assert_eq!(ready.path.as_deref(), Some("/readyz"));
        assert_eq!(ready.port, IntOrString::Int(8080));
        let live = c
            .liveness_probe
            .as_ref()
            .unwrap()
            .http_get
            .as_ref()
            .unwrap();
        assert_eq!(live.path.as_deref(), Some("/healthz"));
        let res = c.resources.as_ref().unwrap();
        let req = res.requests.as_ref().unwrap();
        assert_eq!(req["cpu"].0, "100m");
        assert_eq!(req["memory"].0, "64Mi");
        let lim = res.limits.as_ref().unwrap();
        assert_eq!(lim["memory"].0, "128Mi");
        assert!(lim.contains_key("cpu"));
        let env: BTreeMap<_, _> = c
            .env
            .as_ref()
            .unwrap()
            .iter()
            .map(|e| (e.name.clone(), e.value.clone().unwrap_or_default()))
            .collect();
        assert_eq!(env["COLOR"], labels(&d.metadata)["version"]);
        assert!(env.contains_key("REGION") && env.contains_key("VERSION"));
    }
}

#[test]
fn the_service_is_nodeport_30080_selecting_blue() {
    let m = DemoManifests::embedded().unwrap();
    let s = &m.services[0];
    assert_eq!(s.metadata.name.as_deref(), Some("web"));
    let spec = s.spec.as_ref().unwrap();
    assert_eq!(spec.type_.as_deref(), Some("NodePort"));
    let port = &spec.ports.as_ref().unwrap()[0];
    assert_eq!((port.port, port.node_port), (80, Some(30080)));
    assert_eq!(port.target_port, Some(IntOrString::Int(8080)));
    assert_eq!(m.active_color(), Some(Color::Blue));
    assert_eq!(spec.selector.as_ref().unwrap()["app"], "web");
}

#[test]
fn the_hpas_scale_each_colour_between_1_and_5_on_cpu_with_behaviour() {
    let m = DemoManifests::embedded().unwrap();
    for h in &m.hpas {
        let spec = &h.spec;
        assert_eq!(spec.scale_target_ref.kind, "Deployment");
        assert_eq!(Some(&spec.scale_target_ref.name), h.metadata.name.as_ref());
        assert_eq!((spec.min_replicas, spec.max_replicas), (Some(1), 5));
        let metric = &spec.metrics.as_ref().unwrap()[0];
        let resource = metric.resource.as_ref().unwrap();
        assert_eq!(resource.name, "cpu");
        assert_eq!(resource.target.average_utilization, Some(50));
        let behavior = spec.behavior.as_ref().unwrap();
        assert!(behavior.scale_up.is_some() && behavior.scale_down.is_some());
    }
}

#[test]
fn overrides_set_image_replicas_active_colour_node_port_and_namespace() {
    let m = DemoManifests::embedded()
        .unwrap()
        .with_overrides(&Overrides {
            namespace: Some("demo-2".into()),
            image: Some("resil-demo:v9".into()),
            replicas: Some(3),
            active: Some(Color::Green),
            node_port: Some(31_999),
            region: Some("region-b".into()),
            ..Overrides::default()
        });
    for d in &m.deployments {
        let pod = d.spec.template.spec.as_ref().unwrap();
        let env = pod.containers[0].env.as_ref().unwrap();
        let region = env.iter().find(|e| e.name == "REGION").unwrap();
        assert_eq!(region.value.as_deref(), Some("region-b"));
        assert_eq!(env.iter().filter(|e| e.name == "REGION").count(), 1);
    }
    assert_eq!(m.namespace_name(), "demo-2");
    let service = m
        .services
        .iter()
        .find(|s| s.metadata.name.as_deref() == Some("web"));
    let ports = service
        .unwrap()
        .spec
        .as_ref()
        .unwrap()
        .ports
        .as_ref()
        .unwrap();
    assert_eq!(ports[0].node_port, Some(31_999));
    assert_eq!(m.active_color(), Some(Color::Green));
    for d in &m.deployments {
        assert_eq!(d.metadata.namespace.as_deref(), Some("demo-2"));
        assert_eq!(d.spec.replicas, Some(3));
        let c = &d.spec.template.spec.as_ref().unwrap().containers[0];
        assert_eq!(c.image.as_deref(), Some("resil-demo:v9"));
    }
    for h in &m.hpas {
        assert_eq!(h.metadata.namespace.as_deref(), Some("demo-2"));
        assert_eq!(h.spec.min_replicas, Some(3));
    }
    assert_eq!(m.services[0].metadata.namespace.as_deref(), Some("demo-2"));
}

#[test]
fn overrides_stamp_the_managed_by_label_on_user_objects_without_it() {
    let files = user_files(&[]);
    let stripped: Vec<(String, String)> = files
        .into_iter()
        .map(|(n, t)| {
            let kept: Vec<&str> = t
                .lines()
                .filter(|l| l.trim() != "app.kubernetes.io/managed-by: resil")
                .collect();
            (n, kept.join("\n"))
        })
        .collect();
    let m = DemoManifests::parse_files("dir", &stripped)
        .unwrap()
        .with_overrides(&Overrides::default());
    for d in &m.deployments {
        assert_eq!(labels(&d.metadata)[MANAGED_BY_LABEL], "resil");
        let tpl = d.spec.template.metadata.as_ref().unwrap();
        assert_eq!(labels(tpl)[MANAGED_BY_LABEL], "resil");
    }
}

/// The embedded files, plus extra ones, as a user's directory would hold them.
fn user_files(extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut files: Vec<(String, String)> = EMBEDDED
        .iter()
        .map(|(n, t)| (n.replace("manifests/", "my/"), t.to_string()))
        .collect();
    files.extend(extra.iter().map(|(n, t)| (n.to_string(), t.to_string())));
    files
}

#[test]
fn several_documents_in_one_file_are_all_read() {
    let joined = EMBEDDED
        .iter()
        .map(|(_, t)| *t)
        .collect::<Vec<_>>()
        .join("---\n");
    let m = DemoManifests::parse_files("dir", &[("all.yaml".into(), joined)]).unwrap();
    assert_eq!(m.deployments.len(), 2);
    assert_eq!(m.hpas.len(), 2);
    assert!(m.namespace.is_some());
}

#[test]
fn invalid_yaml_names_the_file_and_line() {
    let bad = "apiVersion: v1\nkind: ConfigMap\n---\napiVersion: v1\nkind: Service\nmetadata: {name: [x\n";
    let err = DemoManifests::parse_files("dir", &user_files(&[("my/zz-bad.yaml", bad)]))
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("my/zz-bad.yaml:"), "{err}");
}

#[test]
fn a_field_of_the_wrong_type_names_the_file_and_its_line() {
    let bad = "# comment\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: extra\nspec:\n  replicas: many\n";
    let err = DemoManifests::parse_files("dir", &user_files(&[("my/extra.yaml", bad)]))
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("my/extra.yaml:"), "{err}");
    assert!(err.contains("Fix the file"), "{err}");
}

#[test]
fn the_line_of_an_error_counts_from_the_top_of_the_file() {
    let bad = "apiVersion: v1\nkind: Namespace\nmetadata: {name: distributed-resilience}\n---\nkind: Service\napiVersion: v1\nmetadata: {name: [oops\n";
    let err = DemoManifests::parse_files("dir", &[("one.yaml".into(), bad.into())])
        .unwrap_err()
        .to_string();
    let line: usize = err
        .strip_prefix("one.yaml:")
        .and_then(|r| r.split(':').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no line in {err}"));
    assert!(line >= 5, "{err}");
}

#[test]
fn an_object_of_an_unexpected_kind_is_refused_with_the_file_named() {
    let cm = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n";
    let err = DemoManifests::parse_files("dir", &user_files(&[("my/cm.yaml", cm)]))
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("my/cm.yaml:1"), "{err}");
    assert!(err.contains("ConfigMap"), "{err}");
    assert!(err.contains("Deployment (apps/v1)"), "{err}");
}

#[test]
fn a_deployment_in_the_wrong_api_group_is_an_unexpected_kind() {
    let old = "apiVersion: extensions/v1beta1\nkind: Deployment\nmetadata:\n  name: x\n";
    let err = DemoManifests::parse_files("dir", &user_files(&[("my/old.yaml", old)]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("extensions/v1beta1"), "{err}");
}

#[test]
fn manifests_without_web_green_are_refused() {
    let files: Vec<(String, String)> = user_files(&[])
        .into_iter()
        .filter(|(n, _)| !n.contains("green"))
        .collect();
    let err = DemoManifests::parse_files("my", &files)
        .unwrap_err()
        .to_string();
    assert!(err.contains("Deployment web-green"), "{err}");
}

#[test]
fn an_object_in_another_namespace_is_refused() {
    let files: Vec<(String, String)> = user_files(&[])
        .into_iter()
        .map(|(n, t)| {
            if n.contains("20-service") {
                (
                    n,
                    t.replace(
                        "namespace: distributed-resilience",
                        "namespace: kube-system",
                    ),
                )
            } else {
                (n, t)
            }
        })
        .collect();
    let err = DemoManifests::parse_files("my", &files)
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("my/20-service.yaml"), "{err}");
    assert!(err.contains("kube-system"), "{err}");
}

#[test]
fn a_directory_is_read_in_file_name_order_and_must_hold_yaml() {
    let dir = tempfile::tempdir().unwrap();
    let err = DemoManifests::from_dir(dir.path()).unwrap_err().to_string();
    assert!(err.contains("no .yaml"), "{err}");
    for (name, text) in EMBEDDED {
        std::fs::write(dir.path().join(name.trim_start_matches("manifests/")), text).unwrap();
    }
    std::fs::write(dir.path().join("README.md"), "not yaml").unwrap();
    let m = DemoManifests::from_dir(dir.path()).unwrap();
    assert_eq!(m, DemoManifests::embedded().unwrap());
}

#[test]
fn the_repository_manifests_dir_matches_what_is_embedded() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("manifests");
    assert_eq!(
        DemoManifests::from_dir(&dir).unwrap(),
        DemoManifests::embedded().unwrap()
    );
}

#[test]
fn the_demo_has_a_budget_and_a_zone_spread_per_colour_unless_told_not_to() {
    let m = DemoManifests::embedded().unwrap();
    let full = m.clone().with_overrides(&Overrides::default());
    assert_eq!(full.pdbs.len(), 2);
    for b in &full.pdbs {
        let spec = b.spec.as_ref().unwrap();
        assert_eq!(
            spec.min_available,
            Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(1))
        );
    }
    for d in &full.deployments {
        let spread = d.spec.template.spec.as_ref().unwrap();
        let c = &spread.topology_spread_constraints.as_ref().unwrap()[0];
        assert_eq!(c.topology_key, "topology.kubernetes.io/zone");
        assert_eq!(c.when_unsatisfiable, "ScheduleAnyway");
    }
    let bare = m.with_overrides(&Overrides {
        no_pdb: true,
        no_spread: true,
        ..Overrides::default()
    });
    assert!(bare.pdbs.is_empty());
    assert!(bare.deployments.iter().all(|d| {
        d.spec
            .template
            .spec
            .as_ref()
            .unwrap()
            .topology_spread_constraints
            .is_none()
    }));
}
