//! What a rollout is asked to do — `resil rollout`'s flags and a scenario's `rollout:`
//! step, one [`RolloutSpec`] — resolved and checked into a [`RolloutPlan`] before anything
//! touches the cluster, and the template change ([`Change`]) applied to a pod template.
//! Pure.

use std::time::Duration;

use std::collections::BTreeMap;

use clap::Args;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{EnvVar, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::core::ObjectMeta;
use serde::{Deserialize, Serialize};

use super::analysis::Analysis;
use super::decide;
use crate::cluster::release::TRACK_LABEL;
use crate::domain::{Color, parse_duration};

/// The release to roll out and how: `resil rollout`'s flags, a scenario step's `rollout:`.
#[derive(Debug, Clone, PartialEq, Args, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RolloutSpec {
    /// The new release's version: the container's `VERSION` (one ending in `-bad`, such as
    /// `v2-bad`, fails 30% of its requests on purpose while staying Ready).
    #[arg(long, value_name = "VERSION")]
    #[serde(default)]
    pub version: Option<String>,

    /// The new release's container image.
    #[arg(long, value_name = "IMAGE")]
    #[serde(default)]
    pub image: Option<String>,

    /// An environment variable of the new release, `NAME=VALUE` (repeatable), e.g.
    /// `--env FAIL_RATE=0.05` or `--env LATENCY=150ms`.
    #[arg(long = "env", value_name = "NAME=VALUE")]
    #[serde(default)]
    pub env: Vec<String>,

    /// Judge the release on the load the rollout generates, once per --interval, e.g.
    /// `error_rate<1%,p99<200ms` (keys: error_rate, p50, p90, p99, max); the first interval
    /// that breaches rolls back to the previous revision and the command exits 1.
    #[arg(long, value_name = "CHECKS")]
    #[serde(default)]
    pub analysis: Option<String>,

    /// How long each judged interval of --analysis lasts.
    #[arg(long, value_parser = parse_duration, default_value = "5s")]
    #[serde(default = "default_interval", with = "humantime_serde")]
    pub interval: Duration,

    /// Step the new release in by share of pods, e.g. `10,50,100`: canary pods beside the
    /// stable ones behind the same Service (no mesh needed), each step held for --pause and
    /// analysed before the next; the last step rolls the Deployment itself. The analysis
    /// load then opens a connection per request, so the canary gets its share.
    #[arg(long, value_name = "PERCENTS")]
    #[serde(default)]
    pub canary: Option<String>,

    /// How long each canary step holds once its pods are ready.
    #[arg(long, value_parser = parse_duration, default_value = "15s")]
    #[serde(default = "default_pause", with = "humantime_serde")]
    pub pause: Duration,

    /// The rolling update's maxSurge (`1`, `25%`) [default: the Deployment's own].
    #[arg(long, value_name = "N|PCT", value_parser = parse_int_or_percent)]
    #[serde(default)]
    pub max_surge: Option<IntOrString>,

    /// The rolling update's maxUnavailable (`0`, `25%`) [default: the Deployment's own].
    #[arg(long, value_name = "N|PCT", value_parser = parse_int_or_percent)]
    #[serde(default)]
    pub max_unavailable: Option<IntOrString>,

    /// Give up waiting for any one step (or the rollback) after this long.
    #[arg(long, value_parser = parse_duration, default_value = "300s")]
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
}

fn default_interval() -> Duration {
    Duration::from_secs(5)
}

fn default_pause() -> Duration {
    Duration::from_secs(15)
}

fn default_timeout() -> Duration {
    Duration::from_secs(300)
}

/// A count (`1`) or a percentage (`25%`), as maxSurge and maxUnavailable take.
pub fn parse_int_or_percent(text: &str) -> Result<IntOrString, String> {
    let text = text.trim();
    if let Some(p) = text.strip_suffix('%') {
        match p.parse::<u32>() {
            Ok(n) if n <= 100 => return Ok(IntOrString::String(format!("{n}%"))),
            _ => {}
        }
    } else if let Ok(n) = text.parse::<i32>()
        && n >= 0
    {
        return Ok(IntOrString::Int(n));
    }
    Err(format!("{text:?}: give a count (1) or a percentage (25%)"))
}

/// What changes in the pod template.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Change {
    pub version: Option<String>,
    pub image: Option<String>,
    /// Environment variables set (replacing one of the same name).
    pub env: Vec<(String, String)>,
}

impl Change {
    /// Applies the change to the template's first container (the demo's app); says
    /// whether anything differs.
    pub fn apply(&self, template: &mut PodTemplateSpec) -> bool {
        let Some(container) = template
            .spec
            .as_mut()
            .and_then(|s| s.containers.first_mut())
        else {
            return false;
        };
        let before = container.clone();
        if let Some(image) = &self.image {
            container.image = Some(image.clone());
        }
        let env = container.env.get_or_insert_with(Vec::new);
        let version = self
            .version
            .iter()
            .map(|v| ("VERSION".to_string(), v.clone()));
        for (name, value) in version.chain(self.env.iter().cloned()) {
            match env.iter_mut().find(|e| e.name == name) {
                Some(var) => {
                    var.value = Some(value);
                    var.value_from = None;
                }
                None => env.push(EnvVar {
                    name,
                    value: Some(value),
                    value_from: None,
                }),
            }
        }
        *container != before
    }

    /// In words, as `kubernetes.io/change-cause` and progress lines say it.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(v) = &self.version {
            parts.push(format!("version {v}"));
        }
        if let Some(i) = &self.image {
            parts.push(format!("image {i}"));
        }
        parts.extend(self.env.iter().map(|(k, v)| format!("{k}={v}")));
        parts.join(", ")
    }
}

/// A checked rollout.
#[derive(Debug, Clone, PartialEq)]
pub struct RolloutPlan {
    pub color: Color,
    pub change: Change,
    /// `None`: roll out without judging.
    pub analysis: Option<Analysis>,
    /// The canary steps (percent, rising, ending at 100); `None`: one rolling update.
    pub canary: Option<Vec<u32>>,
    pub pause: Duration,
    pub max_surge: Option<IntOrString>,
    pub max_unavailable: Option<IntOrString>,
    pub timeout: Duration,
}

impl RolloutPlan {
    /// Checks the spec: something to change, a valid analysis, rising canary steps.
    pub fn resolve(color: Color, spec: &RolloutSpec) -> Result<RolloutPlan, String> {
        let env = spec
            .env
            .iter()
            .map(|kv| match kv.split_once('=') {
                Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
                _ => Err(format!(
                    "--env {kv:?}: write NAME=VALUE, e.g. FAIL_RATE=0.05"
                )),
            })
            .collect::<Result<Vec<_>, _>>()?;
        let change = Change {
            version: spec.version.clone(),
            image: spec.image.clone(),
            env,
        };
        if change == Change::default() {
            return Err("nothing to roll out: give --version, --image or --env".into());
        }
        let analysis = spec
            .analysis
            .as_deref()
            .map(|a| Analysis::parse(a, spec.interval))
            .transpose()?;
        let canary = spec
            .canary
            .as_deref()
            .map(decide::parse_steps)
            .transpose()?;
        Ok(RolloutPlan {
            color,
            change,
            analysis,
            canary,
            pause: spec.pause,
            max_surge: spec.max_surge.clone(),
            max_unavailable: spec.max_unavailable.clone(),
            timeout: spec.timeout,
        })
    }

    /// The Deployment rolled: `web-<colour>`.
    pub fn deployment(&self) -> String {
        format!("web-{}", self.color)
    }

    /// The canary Deployment beside it: `web-<colour>-canary`.
    pub fn canary_deployment(&self) -> String {
        format!("web-{}-canary", self.color)
    }
}

/// The canary Deployment beside `main`: its template with `change` applied, the same
/// labels plus `track: canary` (so the Service, which selects `app` and `version`, sends it
/// its share while `main`'s ReplicaSets, which select their own `pod-template-hash`, leave
/// its pods alone), `replicas` pods.
pub fn canary_object(main: &Deployment, change: &Change, replicas: i32) -> Deployment {
    let name = format!("{}-canary", main.metadata.name.as_deref().unwrap_or("web"));
    let track = |labels: &mut BTreeMap<String, String>| {
        labels.insert(TRACK_LABEL.to_string(), "canary".to_string());
    };
    let mut labels = main.metadata.labels.clone().unwrap_or_default();
    track(&mut labels);
    let mut spec = main.spec.clone();
    spec.replicas = Some(replicas);
    track(spec.selector.match_labels.get_or_insert_with(BTreeMap::new));
    let meta = spec.template.metadata.get_or_insert_with(Default::default);
    track(meta.labels.get_or_insert_with(BTreeMap::new));
    change.apply(&mut spec.template);
    Deployment {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: main.metadata.namespace.clone(),
            labels: Some(labels),
            ..Default::default()
        },
        spec,
        status: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Container, PodSpec};

    fn spec(version: Option<&str>) -> RolloutSpec {
        RolloutSpec {
            version: version.map(str::to_string),
            image: None,
            env: vec![],
            analysis: None,
            interval: default_interval(),
            canary: None,
            pause: default_pause(),
            max_surge: None,
            max_unavailable: None,
            timeout: default_timeout(),
        }
    }

    fn template() -> PodTemplateSpec {
        PodTemplateSpec {
            metadata: None,
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: "web".into(),
                    image: Some("resil-demo:latest".into()),
                    env: Some(vec![EnvVar {
                        name: "VERSION".into(),
                        value: Some("v1".into()),
                        value_from: None,
                    }]),
                    ..Default::default()
                }],
                ..Default::default()
            }),
        }
    }

    #[test]
    fn the_change_sets_version_image_and_env_on_the_app_container() {
        let change = Change {
            version: Some("v2".into()),
            image: Some("resil-demo:v2".into()),
            env: vec![("FAIL_RATE".into(), "0.05".into())],
        };
        let mut t = template();
        assert!(change.apply(&mut t));
        let c = &t.spec.as_ref().unwrap().containers[0];
        assert_eq!(c.image.as_deref(), Some("resil-demo:v2"));
        let env: Vec<_> = c
            .env
            .iter()
            .flatten()
            .map(|e| (e.name.as_str(), e.value.as_deref()))
            .collect();
        assert_eq!(
            env,
            vec![("VERSION", Some("v2")), ("FAIL_RATE", Some("0.05"))]
        );
        // The same change again changes nothing.
        assert!(!change.apply(&mut t));
        assert_eq!(
            change.describe(),
            "version v2, image resil-demo:v2, FAIL_RATE=0.05"
        );
    }

    #[test]
    fn the_canary_shares_the_service_labels_and_selects_only_its_own_pods() {
        let mut main = Deployment::default();
        main.metadata.name = Some("web-blue".into());
        let labels: BTreeMap<String, String> = [
            ("app".to_string(), "web".to_string()),
            ("version".into(), "blue".into()),
        ]
        .into();
        main.metadata.labels = Some(labels.clone());
        let mut spec = k8s_openapi::api::apps::v1::DeploymentSpec {
            template: template(),
            ..Default::default()
        };
        spec.selector.match_labels = Some(labels.clone());
        spec.template.metadata = Some(ObjectMeta {
            labels: Some(labels),
            ..Default::default()
        });
        main.spec = spec;
        let change = Change {
            version: Some("v2".into()),
            ..Change::default()
        };
        let canary = canary_object(&main, &change, 2);
        assert_eq!(canary.metadata.name.as_deref(), Some("web-blue-canary"));
        let spec = canary.spec;
        assert_eq!(spec.replicas, Some(2));
        let selector = spec.selector.match_labels.unwrap();
        assert_eq!(selector["track"], "canary");
        let pod_labels = spec.template.metadata.unwrap().labels.unwrap();
        assert_eq!(
            (pod_labels["version"].as_str(), pod_labels["track"].as_str()),
            ("blue", "canary")
        );
        let env = &spec.template.spec.unwrap().containers[0].env;
        assert_eq!(env.as_ref().unwrap()[0].value.as_deref(), Some("v2"));
    }

    #[test]
    fn bad_input_is_refused_before_anything_runs() {
        let err = |s: RolloutSpec| RolloutPlan::resolve(Color::Blue, &s).unwrap_err();
        assert!(err(spec(None)).contains("nothing to roll out"));
        let mut bad = spec(Some("v2"));
        bad.analysis = Some("latency<1s".into());
        assert!(err(bad).contains("unknown key"));
        let mut bad = spec(Some("v2"));
        bad.env = vec!["NOVALUE".into()];
        assert!(err(bad).contains("NAME=VALUE"));
        let mut bad = spec(Some("v2"));
        bad.canary = Some("50,10".into());
        assert!(err(bad).contains("rise"));
        let plan = RolloutPlan::resolve(Color::Green, &spec(Some("v2"))).unwrap();
        assert_eq!(plan.deployment(), "web-green");
    }

    #[test]
    fn surge_and_unavailable_are_counts_or_percentages() {
        assert_eq!(parse_int_or_percent("0"), Ok(IntOrString::Int(0)));
        assert_eq!(
            parse_int_or_percent("25%"),
            Ok(IntOrString::String("25%".into()))
        );
        assert!(parse_int_or_percent("-1").is_err());
        assert!(parse_int_or_percent("lots").is_err());
    }
}
