//! Reading an HorizontalPodAutoscaler's CPU figures: the target and the current average
//! utilization of its `cpu` resource metric, as percentages of the pods' CPU request.
//! Used by `watch`, `autoscale` and `resil status`, which all read HPAs through kube-rs;
//! the lab computes these figures itself and does not use this.

use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;

/// The target average CPU utilization (`spec.metrics[].resource` named `cpu`), if any.
pub fn cpu_target_utilization(hpa: &HorizontalPodAutoscaler) -> Option<i32> {
    hpa.spec
        .metrics
        .iter()
        .flatten()
        .filter_map(|m| m.resource.as_ref())
        .find(|r| r.name == "cpu")
        .and_then(|r| r.target.average_utilization)
}

/// The current average CPU utilization (`status.currentMetrics[].resource` named `cpu`),
/// once the HPA has measured it.
pub fn cpu_current_utilization(hpa: &HorizontalPodAutoscaler) -> Option<i32> {
    hpa.status
        .as_ref()
        .and_then(|s| s.current_metrics.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|m| m.resource.as_ref())
        .find(|r| r.name == "cpu")
        .and_then(|r| r.current.average_utilization)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hpa(value: serde_json::Value) -> HorizontalPodAutoscaler {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn the_cpu_metric_is_read_and_other_resources_are_skipped() {
        let h = hpa(serde_json::json!({
            "metadata": {"name": "web-blue"},
            "spec": {
                "scaleTargetRef": {"kind": "Deployment", "name": "web-blue"},
                "maxReplicas": 5,
                "metrics": [
                    {"type": "Resource", "resource": {"name": "memory",
                        "target": {"type": "Utilization", "averageUtilization": 90}}},
                    {"type": "Resource", "resource": {"name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": 50}}}]},
            "status": {"desiredReplicas": 2, "currentMetrics": [
                {"type": "Resource", "resource": {"name": "memory",
                    "current": {"averageUtilization": 10}}},
                {"type": "Resource", "resource": {"name": "cpu",
                    "current": {"averageUtilization": 70}}}]}
        }));
        assert_eq!(cpu_target_utilization(&h), Some(50));
        assert_eq!(cpu_current_utilization(&h), Some(70));
    }

    #[test]
    fn an_hpa_not_yet_measured_has_no_current_utilization() {
        let h = hpa(serde_json::json!({
            "metadata": {"name": "web-blue"},
            "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web-blue"},
                "maxReplicas": 5}
        }));
        assert_eq!(cpu_target_utilization(&h), None);
        assert_eq!(cpu_current_utilization(&h), None);
    }
}
