//! The HPA controller loop around the pure algorithm in `hpa/`: every sync period it reads
//! each HorizontalPodAutoscaler, its target Deployment, the target's pods and their
//! PodMetrics from the store, asks [`hpa::sync`] for a decision, writes the Deployment's
//! `spec.replicas` (its scale), the HPA status and the events.
//!
//! Lab limits (documented): only `Deployment` targets; the target's pods are those of its
//! namespace matching `spec.selector.matchLabels` (matchExpressions are not evaluated).
//! One [`History`] per HPA (by uid) lives here for the stabilization windows and policies.
//! Started by `runtime::start`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use tokio_util::sync::CancellationToken;

use super::endpoints::selects;
use super::events;
use super::hpa::{self, History, HpaTuning, PodFacts, SyncInput};
use super::runtime::{to_value, typed, write_status};
use crate::metrics;
use crate::store::kinds::kind;
use crate::store::{Store, WriteMode};

/// Syncs every HPA each `period` until `shutdown`.
pub async fn run(store: Arc<Store>, period: Duration, shutdown: CancellationToken) {
    let tuning = HpaTuning {
        sync_period: period,
        ..HpaTuning::default()
    };
    let mut histories: HashMap<String, History> = HashMap::new();
    let mut tick = tokio::time::interval(period.max(Duration::from_millis(100)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            // Sync period elapsed.
            _ = tick.tick() => sync_all(&store, &tuning, &mut histories, Timestamp::now()),
            // The lab stops.
            _ = shutdown.cancelled() => return,
        }
    }
}

/// One sync of every HPA; histories of deleted HPAs are dropped.
pub(crate) fn sync_all(
    store: &Store,
    tuning: &HpaTuning,
    histories: &mut HashMap<String, History>,
    now: Timestamp,
) {
    let hpas: Vec<HorizontalPodAutoscaler> =
        typed(store.list("horizontalpodautoscalers", None).items);
    histories.retain(|uid, _| hpas.iter().any(|h| h.metadata.uid.as_deref() == Some(uid)));
    for h in &hpas {
        let uid = h.metadata.uid.clone().unwrap_or_default();
        sync_one(store, h, histories.entry(uid).or_default(), tuning, now);
    }
}

fn sync_one(
    store: &Store,
    h: &HorizontalPodAutoscaler,
    history: &mut History,
    tuning: &HpaTuning,
    now: Timestamp,
) {
    let ns = h.metadata.namespace.clone().unwrap_or_default();
    let name = h.metadata.name.clone().unwrap_or_default();
    let target = &h.spec.scale_target_ref;
    let live = (target.kind == "Deployment")
        .then(|| store.get("deployments", &ns, &target.name))
        .flatten();
    let decision = match live
        .as_ref()
        .map(|v| serde_json::from_value::<Deployment>(v.clone()))
    {
        Some(Ok(d)) => {
            let current = d.spec.replicas.unwrap_or(1);
            let selector = d.spec.selector.match_labels.clone().unwrap_or_default();
            let pods: Vec<Pod> = typed(store.list("pods", Some(&ns)).items);
            let samples: HashMap<String, hpa::CpuSample> = store
                .pod_metrics(Some(&ns))
                .iter()
                .filter_map(|m| {
                    let name = m.pointer("/metadata/name")?.as_str()?.to_string();
                    Some((name, metrics::cpu_sample(m)?))
                })
                .collect();
            let facts: Vec<PodFacts> = pods
                .iter()
                .filter(|p| selects(&selector, p))
                .map(|p| {
                    let sample = p
                        .metadata
                        .name
                        .as_ref()
                        .and_then(|n| samples.get(n))
                        .copied();
                    PodFacts::from_pod(p, sample)
                })
                .collect();
            let input = SyncInput {
                hpa: h,
                current_replicas: current,
                pods: &facts,
                now,
                tuning,
            };
            let decision = hpa::sync(&input, history);
            if decision.rescale {
                let mut scaled = live.clone().unwrap_or_default();
                scaled["spec"]["replicas"] = decision.desired_replicas.into();
                match store.update(
                    kind("deployments"),
                    &ns,
                    &target.name,
                    scaled,
                    WriteMode::Main,
                ) {
                    Ok(_) => {
                        decision.record_rescale(history);
                        decision
                    }
                    Err(e) => decision.rescale_failed(&e.to_string()),
                }
            } else {
                decision
            }
        }
        Some(Err(e)) => hpa::scale_target_unavailable(h, &e.to_string(), now),
        None if target.kind != "Deployment" => hpa::scale_target_unavailable(
            h,
            &format!("the lab can scale only Deployments, not {}", target.kind),
            now,
        ),
        None => hpa::scale_target_unavailable(
            h,
            &format!("deployments.apps \"{}\" not found", target.name),
            now,
        ),
    };
    if let Some(e) = &decision.error {
        tracing::debug!("hpa {ns}/{name}: {e}");
    }
    if h.status.as_ref() != Some(&decision.status) {
        write_status(
            store,
            "horizontalpodautoscalers",
            &ns,
            &name,
            to_value(&decision.status),
        );
    }
    let hv = to_value(h);
    for e in &decision.events {
        events::record(
            store,
            &hv,
            e.type_.as_str(),
            &e.reason,
            &e.message,
            "horizontal-pod-autoscaler",
        );
    }
}
