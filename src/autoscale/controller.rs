//! The predictive autoscaler's loop: poll demand, feed the forecaster, plan, and patch the
//! HPA's `spec.minReplicas` through kube-rs — never its replicas, so the HPA stays in
//! charge and only its floor moves.
//!
//! The HPA's original minReplicas is written to the chaos journal *before* the first
//! patch, so a killed resil leaves behind what `resil chaos revert` needs; a run that finds
//! its own open entry for the same HPA (a previous run was killed) adopts it rather than
//! mistaking the raised value for the original. [`Controller::restore`] puts the original
//! back and closes the entry. Every change is recorded as a timeline `Decision` (source
//! `autoscale`) and a Kubernetes Event on the HPA.
//!
//! Called by the autoscale command layer; never prints (the caller gets a [`Tick`]).

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use kube::api::Api;

use super::AutoscaleError;
use super::forecast::{Forecaster, Smoothing};
use super::planner::{self, Knobs, Observed, Plan};
use super::source::{Demand, Resampler};
use crate::chaos::execute::Scope;
use crate::chaos::journal::{Entry, Journal, Undo};
use crate::cluster::events::{self, Involved, Severity};
use crate::cluster::hpa::{cpu_current_utilization, cpu_target_utilization};
use crate::cost::pricing::PricingProfile;
use crate::cost::quantity::{parse_cpu_millis, parse_memory_bytes};
use crate::results::RunDir;
use crate::results::summary::PodRequests;
use crate::results::timeline::{Event, EventKind};

/// The component name on Kubernetes Events and the timeline source.
pub const COMPONENT: &str = "resil-autoscale";
/// The journal action name of the minReplicas entries.
pub const ACTION: &str = "autoscale";

/// What the controller needs, resolved from the command line.
#[derive(Debug, Clone)]
pub struct Settings {
    pub namespace: String,
    /// The kubeconfig context (journaled, so a revert goes back to the same cluster).
    pub context: String,
    pub hpa: String,
    /// Extra capacity over the forecast (fraction).
    pub headroom: f64,
    pub look_ahead: Duration,
    pub max_replicas: Option<i32>,
    /// Dollars per hour.
    pub budget_per_hour: Option<f64>,
    pub pricing: PricingProfile,
    pub smoothing: Smoothing,
    /// The workload's period, for the seasonal model.
    pub period: Option<Duration>,
    /// Demand one pod serves at the target utilisation; `None`: measure it.
    pub capacity: Option<f64>,
}

/// What the controller reads off the HPA each tick.
#[derive(Debug, Clone, PartialEq)]
pub struct HpaView {
    pub min: i32,
    pub max: i32,
    pub current_replicas: i32,
    /// Target CPU utilisation (% of request), when the HPA scales on CPU.
    pub target_utilization: Option<i32>,
    /// Current CPU utilisation, when the HPA has measured it.
    pub cpu_utilization: Option<i32>,
    /// The Deployment it scales.
    pub deployment: String,
}

impl HpaView {
    /// Reads the fields the planner needs.
    pub fn of(hpa: &HorizontalPodAutoscaler) -> HpaView {
        let status = hpa.status.as_ref();
        HpaView {
            min: hpa.spec.min_replicas.unwrap_or(1),
            max: hpa.spec.max_replicas,
            current_replicas: status.and_then(|s| s.current_replicas).unwrap_or(0),
            target_utilization: cpu_target_utilization(hpa),
            cpu_utilization: cpu_current_utilization(hpa),
            deployment: hpa.spec.scale_target_ref.name.clone(),
        }
    }
}

/// The summed requests of a Deployment's pod template (what one pod costs).
pub fn pod_requests(deployment: &Deployment) -> PodRequests {
    let containers = deployment
        .spec
        .template
        .spec
        .as_ref()
        .map(|s| s.containers.as_slice())
        .unwrap_or_default();
    let mut total = PodRequests {
        cpu_millis: 0,
        memory_bytes: 0,
    };
    for c in containers {
        let requests = c.resources.as_ref().and_then(|r| r.requests.as_ref());
        if let Some(cpu) = requests.and_then(|r| r.get("cpu")) {
            total.cpu_millis += parse_cpu_millis(&cpu.0).unwrap_or(0);
        }
        if let Some(memory) = requests.and_then(|r| r.get("memory")) {
            total.memory_bytes += parse_memory_bytes(&memory.0).unwrap_or(0);
        }
    }
    total
}

/// The result of one tick.
#[derive(Debug, Clone)]
pub struct Tick {
    /// What was seen (absent while waiting).
    pub observed: Option<Observed>,
    /// The plan (absent while waiting).
    pub plan: Option<Plan>,
    /// Whether the HPA was patched.
    pub patched: bool,
    /// Why no plan was made yet.
    pub waiting: Option<String>,
}

/// The running autoscaler.
pub struct Controller {
    scope: Scope,
    settings: Settings,
    journal: Journal,
    entry: Entry,
    original_min: i32,
    current_min: i32,
    knobs: Knobs,
    model: Box<dyn Forecaster>,
    demand: Demand,
    /// Demand one pod serves (configured, or measured and smoothed).
    capacity: Option<f64>,
    /// CPU request of one pod in millicores (capacity in metrics mode).
    pod_cpu_millis: u64,
    origin: Option<chrono::DateTime<chrono::Utc>>,
    /// Averages samples into the model's steps.
    resampler: Resampler,
    /// The mean demand of the last complete step.
    last_value: Option<f64>,
    out: Option<RunDir>,
    last_budget_binds: bool,
    decided_once: bool,
    /// When minReplicas was last raised (lowering waits one look-ahead after it).
    last_raise: Option<tokio::time::Instant>,
}

fn api_err(what: String) -> impl FnOnce(kube::Error) -> AutoscaleError {
    move |source| AutoscaleError::Api { what, source }
}

impl Controller {
    /// Reads the HPA and its Deployment, journals the original minReplicas (or adopts the
    /// open entry a killed run left), and builds the model.
    pub async fn start(
        scope: Scope,
        settings: Settings,
        journal: Journal,
        demand: Demand,
        out: Option<RunDir>,
    ) -> Result<Controller, AutoscaleError> {
        let hpas: Api<HorizontalPodAutoscaler> =
            Api::namespaced(scope.client.clone(), &scope.namespace);
        let hpa = hpas
            .get_opt(&settings.hpa)
            .await
            .map_err(api_err(format!(
                "reading horizontalpodautoscaler/{}",
                settings.hpa
            )))?
            .ok_or_else(|| AutoscaleError::NoHpa {
                hpa: settings.hpa.clone(),
                namespace: scope.namespace.clone(),
            })?;
        let view = HpaView::of(&hpa);
        let deployments: Api<Deployment> = Api::namespaced(scope.client.clone(), &scope.namespace);
        let requests = deployments
            .get_opt(&view.deployment)
            .await
            .map_err(api_err(format!("reading deployment/{}", view.deployment)))?
            .map(|d| pod_requests(&d))
            .unwrap_or(PodRequests {
                cpu_millis: 0,
                memory_bytes: 0,
            });
        let pod_hour_price = settings.pricing.pod_hour_price(requests);
        if settings.budget_per_hour.is_some() && pod_hour_price <= 0.0 {
            return Err(AutoscaleError::NoPrice {
                deployment: view.deployment.clone(),
            });
        }
        let knobs = Knobs {
            headroom: settings.headroom,
            look_ahead_s: settings.look_ahead.as_secs_f64(),
            max_replicas: settings.max_replicas,
            budget_per_hour: settings.budget_per_hour,
            pod_hour_price,
        };
        knobs.validate()?;
        let model =
            super::forecast::model(settings.smoothing, settings.period.map(|p| p.as_secs_f64()))?;

        let adopted = journal.open_entries()?.into_iter().find(|e| {
            e.context == settings.context
                && e.namespace == scope.namespace
                && matches!(&e.undo, Undo::HpaMinReplicas { hpa, .. } if *hpa == settings.hpa)
        });
        let (entry, original_min) = match adopted {
            Some(entry) => {
                let min = match &entry.undo {
                    Undo::HpaMinReplicas { min, .. } => *min,
                    _ => view.min,
                };
                (entry, min)
            }
            None => {
                let entry = Entry {
                    id: format!("{ACTION}-{}", uuid::Uuid::new_v4().simple()),
                    action: ACTION.to_string(),
                    context: settings.context.clone(),
                    namespace: scope.namespace.clone(),
                    targets: vec![format!("hpa/{}", settings.hpa)],
                    detail: format!(
                        "predictive autoscaler moves minReplicas; original {}",
                        view.min
                    ),
                    injected_at: crate::results::now_ms(),
                    revert_at: None,
                    undo: Undo::HpaMinReplicas {
                        hpa: settings.hpa.clone(),
                        min: view.min,
                    },
                    reverted_at: None,
                };
                journal.record(&entry)?;
                (entry, view.min)
            }
        };
        Ok(Controller {
            resampler: Resampler::new(settings.smoothing.step_s),
            capacity: settings.capacity,
            pod_cpu_millis: requests.cpu_millis,
            scope,
            settings,
            journal,
            entry,
            original_min,
            current_min: view.min,
            knobs,
            model,
            demand,
            origin: None,
            last_value: None,
            out,
            last_budget_binds: false,
            decided_once: false,
            last_raise: None,
        })
    }

    /// minReplicas before resil touched it.
    pub fn original_min(&self) -> i32 {
        self.original_min
    }

    /// The journal entry that restores it.
    pub fn entry(&self) -> &Entry {
        &self.entry
    }

    /// Demand one pod serves: configured; in metrics mode its CPU request × the target
    /// utilisation; else measured from rate, replicas and CPU (smoothed, as the HPA's CPU
    /// figure is itself a 15 s-old average).
    fn update_capacity(&mut self, view: &HpaView) {
        if self.settings.capacity.is_some() {
            return;
        }
        let (Some(target), Some(value)) = (view.target_utilization, self.last_value) else {
            return;
        };
        if self.demand.unit() == "mCPU" {
            if self.pod_cpu_millis > 0 {
                self.capacity = Some(self.pod_cpu_millis as f64 * f64::from(target) / 100.0);
            }
            return;
        }
        let Some(util) = view.cpu_utilization else {
            return;
        };
        if let Some(measured) = planner::measured_capacity(
            value,
            view.current_replicas,
            f64::from(util),
            f64::from(target),
        ) {
            self.capacity = Some(match self.capacity {
                Some(c) => 0.7 * c + 0.3 * measured,
                None => measured,
            });
        }
    }

    /// One round: new samples, forecast, plan, and a patch when minReplicas must move.
    pub async fn tick(&mut self) -> Result<Tick, AutoscaleError> {
        for sample in self.demand.poll().await? {
            let origin = *self.origin.get_or_insert(sample.at);
            let t = (sample.at - origin).num_milliseconds() as f64 / 1000.0;
            if let Some((step_t, mean)) = self.resampler.push(t, sample.value) {
                self.model.observe(step_t, mean);
                self.last_value = Some(mean);
            }
        }
        let hpas: Api<HorizontalPodAutoscaler> =
            Api::namespaced(self.scope.client.clone(), &self.scope.namespace);
        let hpa = hpas
            .get_opt(&self.settings.hpa)
            .await
            .map_err(api_err(format!(
                "reading horizontalpodautoscaler/{}",
                self.settings.hpa
            )))?
            .ok_or_else(|| AutoscaleError::NoHpa {
                hpa: self.settings.hpa.clone(),
                namespace: self.scope.namespace.clone(),
            })?;
        let view = HpaView::of(&hpa);
        self.current_min = view.min;
        self.update_capacity(&view);

        let waiting = |why: String| Tick {
            observed: None,
            plan: None,
            patched: false,
            waiting: Some(why),
        };
        let Some(rate) = self.last_value else {
            return Ok(waiting(format!(
                "no demand sample yet ({})",
                self.demand.unit()
            )));
        };
        let Some(capacity) = self.capacity else {
            return Ok(waiting(
                "capacity per pod unknown: the HPA has no CPU figure yet (pass --capacity to \
                 set it)"
                    .to_string(),
            ));
        };
        let observed = Observed {
            unit: self.demand.unit().to_string(),
            rate,
            forecast: self.model.forecast(self.knobs.look_ahead_s),
            model: self.model.name().to_string(),
            accuracy: self.model.accuracy(),
            capacity_per_pod: capacity,
            current_replicas: view.current_replicas,
            current_min: view.min,
            original_min: self.original_min,
            hpa_max: view.max,
        };
        let mut plan = planner::plan(&self.knobs, &observed);
        self.hold_after_raise(&mut plan, &observed);
        let patched = plan.changes(&observed);
        if patched {
            self.scope
                .set_hpa_min(&self.settings.hpa, plan.min_replicas)
                .await?;
            if plan.min_replicas > self.current_min {
                self.last_raise = Some(tokio::time::Instant::now());
            }
            self.current_min = plan.min_replicas;
        }
        let budget_changed = plan.budget_binds != self.last_budget_binds;
        if patched || budget_changed || !self.decided_once {
            self.record(&observed, &plan).await?;
        }
        self.last_budget_binds = plan.budget_binds;
        self.decided_once = true;
        Ok(Tick {
            observed: Some(observed),
            plan: Some(plan),
            patched,
            waiting: None,
        })
    }

    /// Keeps a raised floor for one look-ahead after the raise: the forecast that raised it
    /// looked that far ahead, and lowering sooner on a noisy rate makes the floor flap
    /// (each lowering lets the HPA remove a pod that the next tick wants back).
    fn hold_after_raise(&self, plan: &mut Plan, observed: &Observed) {
        let Some(raised) = self.last_raise else {
            return;
        };
        let since = raised.elapsed();
        if plan.min_replicas >= observed.current_min || since >= self.settings.look_ahead {
            return;
        }
        plan.rule.push_str(&format!(
            "; held: raised {}s ago, lowered no sooner than one look-ahead ({}) after a raise",
            since.as_secs(),
            humantime::format_duration(self.settings.look_ahead)
        ));
        plan.action = format!("keep minReplicas at {}", observed.current_min);
        plan.min_replicas = observed.current_min;
        plan.cost_per_hour = f64::from(plan.min_replicas) * self.knobs.pod_hour_price;
    }

    /// Writes the Decision event and the Kubernetes Event for a plan.
    async fn record(&self, observed: &Observed, plan: &Plan) -> Result<(), AutoscaleError> {
        let inputs = serde_json::json!({
            "observed": observed,
            "knobs": self.knobs,
            "needed": plan.needed,
            "demand": plan.demand,
            "budget_binds": plan.budget_binds,
            "budget_replicas": plan.budget_replicas,
            "cost_per_hour": plan.cost_per_hour,
        });
        self.timeline(EventKind::Decision {
            controller: "autoscale".to_string(),
            inputs,
            rule: plan.rule.clone(),
            action: plan.action.clone(),
        })?;
        let accuracy = observed
            .accuracy
            .map(|a| {
                format!(
                    " (forecast MAE {:.1} {} over {} samples)",
                    a.mae, observed.unit, a.samples
                )
            })
            .unwrap_or_default();
        let (severity, reason) = if plan.budget_binds {
            (Severity::Warning, "BudgetBinds")
        } else {
            (Severity::Normal, "PredictiveScale")
        };
        self.event(
            severity,
            reason,
            &format!("{}: {}{accuracy}", plan.action, plan.rule),
        )
        .await;
        Ok(())
    }

    fn timeline(&self, kind: EventKind) -> Result<(), AutoscaleError> {
        if let Some(dir) = &self.out {
            dir.timeline()
                .and_then(|mut t| t.append(&Event::now("autoscale", kind)))
                .map_err(AutoscaleError::Timeline)?;
        }
        Ok(())
    }

    async fn event(&self, severity: Severity, reason: &str, message: &str) {
        let involved = Involved {
            api_version: "autoscaling/v2",
            kind: "HorizontalPodAutoscaler",
            name: &self.settings.hpa,
        };
        events::emit(
            &self.scope.client,
            &self.scope.namespace,
            involved,
            severity,
            reason,
            message,
            COMPONENT,
        )
        .await;
    }

    /// Puts the original minReplicas back and closes the journal entry.
    pub async fn restore(self) -> Result<i32, AutoscaleError> {
        self.scope.revert(&self.entry).await?;
        self.journal
            .close(&self.entry.id, crate::results::now_ms())?;
        let action = format!(
            "restore minReplicas {} → {}",
            self.current_min, self.original_min
        );
        self.timeline(EventKind::Decision {
            controller: "autoscale".to_string(),
            inputs: serde_json::json!({"original_min": self.original_min, "current_min": self.current_min}),
            rule: "on exit, the HPA gets back the minReplicas it had before resil".to_string(),
            action: action.clone(),
        })?;
        self.event(Severity::Normal, "MinReplicasRestored", &action)
            .await;
        Ok(self.original_min)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hpa_view_reads_bounds_target_and_current_cpu() {
        let hpa: HorizontalPodAutoscaler = serde_json::from_value(serde_json::json!({
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "web-blue"},
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web-blue"},
                "minReplicas": 2,
                "maxReplicas": 8,
                "metrics": [{"type": "Resource", "resource": {"name": "cpu",
                    "target": {"type": "Utilization", "averageUtilization": 50}}}]
            },
            "status": {
                "currentReplicas": 3,
                "desiredReplicas": 3,
                "currentMetrics": [{"type": "Resource", "resource": {"name": "cpu",
                    "current": {"averageUtilization": 70}}}]
            }
        }))
        .unwrap();
        let view = HpaView::of(&hpa);
        assert_eq!(
            view,
            HpaView {
                min: 2,
                max: 8,
                current_replicas: 3,
                target_utilization: Some(50),
                cpu_utilization: Some(70),
                deployment: "web-blue".to_string(),
            }
        );
    }

    #[test]
    fn pod_requests_sum_every_container() {
        let d: Deployment = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web-blue"},
            "spec": {
                "selector": {"matchLabels": {"app": "web"}},
                "template": {"spec": {"containers": [
                    {"name": "web", "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}}},
                    {"name": "side", "resources": {"requests": {"cpu": "0.05"}}}
                ]}}
            }
        }))
        .unwrap();
        let r = pod_requests(&d);
        assert_eq!(r.cpu_millis, 150);
        assert_eq!(r.memory_bytes, 128 << 20);
    }
}
