//! The replica calculator: from pod facts and a CPU target, the number of replicas that
//! would bring usage back to the target — before any clamping or behavior.
//!
//! Mirrors upstream `replica_calculator.go` (`GetResourceReplicas`, `GetRawResourceReplicas`,
//! `groupPods`, `calculateRequests`) and `metrics/utilization.go`. Called by [`super::sync`]
//! once per CPU metric in the HPA spec.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::jiff::Timestamp;

use super::facts::{ConditionStatus, PodFacts, PodPhase};
use super::{HpaTuning, after};

/// Why a replica count could not be computed for a metric. The texts match upstream's, so
/// conditions and events read the same as on a real cluster.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplicaError {
    /// No pod has a CPU sample at all.
    #[error(
        "unable to get metrics for resource cpu: no metrics returned from resource metrics API"
    )]
    NoMetrics,
    /// The selector matched no pods.
    #[error("no pods returned by selector while calculating replica count")]
    NoPods,
    /// Every pod with a sample was unready or ignored.
    #[error("did not receive metrics for targeted pods (pods might be unready)")]
    NoUsableMetrics,
    /// A container has no CPU request, so utilization is undefined.
    #[error("missing request for cpu in container {container} of Pod {pod}")]
    MissingRequest {
        /// The container without a request.
        container: String,
        /// Its pod.
        pod: String,
    },
    /// The pods with samples request no CPU in total.
    #[error("no metrics returned matched known pods")]
    NoMatchingRequests,
}

/// How far the usage ratio may stray from 1.0 before the HPA acts, per direction.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tolerances {
    /// Ratios down to `1 - scale_down` count as on target.
    pub scale_down: f64,
    /// Ratios up to `1 + scale_up` count as on target.
    pub scale_up: f64,
}

impl Tolerances {
    fn is_within(&self, ratio: f64) -> bool {
        (1.0 - self.scale_down) <= ratio && ratio <= (1.0 + self.scale_up)
    }
}

/// A recommendation for a CPU utilization target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UtilizationRecommendation {
    /// Recommended replicas.
    pub replicas: i32,
    /// Current utilization in percent of request (integer, truncated).
    pub utilization: i32,
    /// Average usage per counted pod, in millicores.
    pub average_millicores: i64,
}

/// A recommendation for a CPU average-value target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AverageValueRecommendation {
    /// Recommended replicas.
    pub replicas: i32,
    /// Average usage per counted pod, in millicores.
    pub average_millicores: i64,
}

/// How the pods split up for one calculation.
#[derive(Debug, Default, PartialEq, Eq)]
struct PodGroups<'a> {
    /// Pods whose sample counts as is.
    ready: usize,
    /// Pending pods, and pods whose CPU sample may still reflect start-up.
    unready: BTreeSet<&'a str>,
    /// Running pods without a sample.
    missing: BTreeSet<&'a str>,
    /// Pods being deleted or failed: left out entirely.
    ignored: BTreeSet<&'a str>,
}

/// Splits pods into ready / unready / missing / ignored (upstream `groupPods` for CPU).
fn group_pods<'a>(pods: &'a [PodFacts], now: Timestamp, tuning: &HpaTuning) -> PodGroups<'a> {
    let mut groups = PodGroups::default();
    for pod in pods {
        let name = pod.name.as_str();
        if pod.deletion_timestamp.is_some() || pod.phase == PodPhase::Failed {
            groups.ignored.insert(name);
            continue;
        }
        if pod.phase == PodPhase::Pending {
            groups.unready.insert(name);
            continue;
        }
        let Some(sample) = pod.cpu else {
            groups.missing.insert(name);
            continue;
        };
        let unready = match (pod.ready, pod.start_time) {
            (Some(ready), Some(start)) => {
                let transition = ready.last_transition_time.unwrap_or(Timestamp::MIN);
                if after(start, tuning.cpu_initialization_period) > now {
                    // Still starting: a sample only counts once the pod is ready and one whole
                    // window was measured after it became ready (start-up CPU is not load).
                    ready.status == ConditionStatus::False
                        || sample.timestamp < after(transition, sample.window)
                } else {
                    // Past start-up: skip only pods that are unready and never were ready
                    // (their readiness flipped within the initial delay of starting).
                    ready.status == ConditionStatus::False
                        && after(start, tuning.initial_readiness_delay) > transition
                }
            }
            _ => true,
        };
        if unready {
            groups.unready.insert(name);
        } else {
            groups.ready += 1;
        }
    }
    groups
}

/// Sums each pod's container CPU requests (upstream `calculateRequests`).
fn pod_requests(pods: &[PodFacts]) -> Result<BTreeMap<&str, i64>, ReplicaError> {
    let mut requests = BTreeMap::new();
    for pod in pods {
        let mut sum = 0i64;
        for container in &pod.containers {
            let Some(request) = container.cpu_millicores else {
                return Err(ReplicaError::MissingRequest {
                    container: container.name.clone(),
                    pod: pod.name.clone(),
                });
            };
            sum = sum.saturating_add(request);
        }
        requests.insert(pod.name.as_str(), sum);
    }
    Ok(requests)
}

/// `(ratio, utilization %, average millicores)` over the pods in `usage`
/// (upstream `GetResourceUtilizationRatio`): utilization is an integer percentage, truncated.
fn utilization_ratio(
    usage: &BTreeMap<&str, i64>,
    requests: &BTreeMap<&str, i64>,
    target: i32,
) -> Result<(f64, i32, i64), ReplicaError> {
    let (mut usage_total, mut request_total, mut entries) = (0i64, 0i64, 0i64);
    for (pod, value) in usage {
        // A sample for a pod with no known request is extraneous.
        let Some(request) = requests.get(pod) else {
            continue;
        };
        usage_total = usage_total.saturating_add(*value);
        request_total = request_total.saturating_add(*request);
        entries += 1;
    }
    if request_total == 0 {
        return Err(ReplicaError::NoMatchingRequests);
    }
    let utilization = (usage_total.saturating_mul(100) / request_total) as i32;
    let ratio = f64::from(utilization) / f64::from(target);
    Ok((ratio, utilization, usage_total / entries))
}

/// Usage samples of the pods that have one, keyed by pod name.
fn samples(pods: &[PodFacts]) -> BTreeMap<&str, i64> {
    pods.iter()
        .filter_map(|p| p.cpu.map(|s| (p.name.as_str(), s.usage_millicores)))
        .collect()
}

/// Upstream's `int32(math.Ceil(x))`, saturating instead of wrapping.
fn ceil_replicas(x: f64) -> i32 {
    x.ceil() as i32
}

/// Replicas for a CPU utilization target in percent of request (upstream
/// `GetResourceReplicas`).
///
/// Without unready or missing pods: `ceil(ratio · ready)` unless within tolerance. Otherwise
/// the ratio is recomputed counting missing pods at 100 % (or the target if higher) on a
/// scale-down and at 0 % on a scale-up, and unready pods at 0 % on a scale-up; current
/// replicas are kept if the new ratio is within tolerance or points the other way.
pub fn cpu_utilization_replicas(
    current: i32,
    target_utilization: i32,
    pods: &[PodFacts],
    tolerances: Tolerances,
    now: Timestamp,
    tuning: &HpaTuning,
) -> Result<UtilizationRecommendation, ReplicaError> {
    if pods.iter().all(|p| p.cpu.is_none()) {
        return Err(ReplicaError::NoMetrics);
    }
    if pods.is_empty() {
        return Err(ReplicaError::NoPods);
    }
    let groups = group_pods(pods, now, tuning);
    let mut usage = samples(pods);
    usage.retain(|pod, _| !groups.ignored.contains(pod) && !groups.unready.contains(pod));
    if usage.is_empty() {
        return Err(ReplicaError::NoUsableMetrics);
    }
    let requests = pod_requests(pods)?;
    let (ratio, utilization, average_millicores) =
        utilization_ratio(&usage, &requests, target_utilization)?;
    let recommend = |replicas| UtilizationRecommendation {
        replicas,
        utilization,
        average_millicores,
    };

    let scale_up_with_unready = !groups.unready.is_empty() && ratio > 1.0;
    if !scale_up_with_unready && groups.missing.is_empty() {
        if tolerances.is_within(ratio) {
            return Ok(recommend(current));
        }
        return Ok(recommend(ceil_replicas(ratio * groups.ready as f64)));
    }

    if !groups.missing.is_empty() {
        if ratio < 1.0 {
            // Scale-down: assume the silent pods are busy, so we do not remove too many.
            let fallback = i64::from(target_utilization.max(100));
            for pod in &groups.missing {
                let request = requests.get(pod).copied().unwrap_or(0);
                usage.insert(pod, request.saturating_mul(fallback) / 100);
            }
        } else if ratio > 1.0 {
            // Scale-up: assume the silent pods are idle, so we do not add too many.
            for pod in &groups.missing {
                usage.insert(pod, 0);
            }
        }
    }
    if scale_up_with_unready {
        for pod in &groups.unready {
            usage.insert(pod, 0);
        }
    }

    let (new_ratio, _, _) = utilization_ratio(&usage, &requests, target_utilization)?;
    if tolerances.is_within(new_ratio)
        || (ratio < 1.0 && new_ratio > 1.0)
        || (ratio > 1.0 && new_ratio < 1.0)
    {
        return Ok(recommend(current));
    }
    let replicas = ceil_replicas(new_ratio * usage.len() as f64);
    if (new_ratio < 1.0 && replicas > current) || (new_ratio > 1.0 && replicas < current) {
        return Ok(recommend(current));
    }
    Ok(recommend(replicas))
}

/// Replicas for a CPU average-value target in millicores per pod (upstream
/// `GetRawResourceReplicas` → `calcPlainMetricReplicas`): the same grouping and rebalancing,
/// with missing pods counted at exactly the target on a scale-down.
pub fn cpu_average_value_replicas(
    current: i32,
    target_millicores: i64,
    pods: &[PodFacts],
    tolerances: Tolerances,
    now: Timestamp,
    tuning: &HpaTuning,
) -> Result<AverageValueRecommendation, ReplicaError> {
    if pods.iter().all(|p| p.cpu.is_none()) {
        return Err(ReplicaError::NoMetrics);
    }
    if pods.is_empty() {
        return Err(ReplicaError::NoPods);
    }
    let groups = group_pods(pods, now, tuning);
    let mut usage = samples(pods);
    usage.retain(|pod, _| !groups.ignored.contains(pod) && !groups.unready.contains(pod));
    if usage.is_empty() {
        return Err(ReplicaError::NoUsableMetrics);
    }
    let average = |usage: &BTreeMap<&str, i64>| {
        let total = usage.values().fold(0i64, |a, v| a.saturating_add(*v));
        let average = total / usage.len() as i64;
        (average as f64 / target_millicores as f64, average)
    };
    let (ratio, average_millicores) = average(&usage);
    let recommend = |replicas| AverageValueRecommendation {
        replicas,
        average_millicores,
    };

    let scale_up_with_unready = !groups.unready.is_empty() && ratio > 1.0;
    if !scale_up_with_unready && groups.missing.is_empty() {
        if tolerances.is_within(ratio) {
            return Ok(recommend(current));
        }
        return Ok(recommend(ceil_replicas(ratio * groups.ready as f64)));
    }
    if !groups.missing.is_empty() {
        let assumed = if ratio < 1.0 {
            Some(target_millicores)
        } else if ratio > 1.0 {
            Some(0)
        } else {
            None
        };
        if let Some(assumed) = assumed {
            for pod in &groups.missing {
                usage.insert(pod, assumed);
            }
        }
    }
    if scale_up_with_unready {
        for pod in &groups.unready {
            usage.insert(pod, 0);
        }
    }
    let (new_ratio, _) = average(&usage);
    if tolerances.is_within(new_ratio)
        || (ratio < 1.0 && new_ratio > 1.0)
        || (ratio > 1.0 && new_ratio < 1.0)
    {
        return Ok(recommend(current));
    }
    let replicas = ceil_replicas(new_ratio * usage.len() as f64);
    if (new_ratio < 1.0 && replicas > current) || (new_ratio > 1.0 && replicas < current) {
        return Ok(recommend(current));
    }
    Ok(recommend(replicas))
}

#[cfg(test)]
mod tests;
