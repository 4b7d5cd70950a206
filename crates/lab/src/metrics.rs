//! metrics.k8s.io/v1beta1 PodMetrics: the objects `kubectl top pods` and the HPA read,
//! and NodeMetrics for `kubectl top nodes` (the sum of the node's pods: the lab's nodes run
//! nothing else),
//! built from the kubelet's per-process CPU and memory samples, and read back as the
//! HPA's CPU sample.
//!
//! The table itself lives in the store (`Store::set_pod_metrics` / `pod_metrics`, served by
//! the API); this module only shapes the objects: CPU in nanocores (`"123456n"`), memory
//! in kibibytes (`"1234Ki"`), `window` as a Go duration (`"15s"`), `timestamp` RFC 3339.
//! Called by the kubelet controller (writes) and the HPA loop (reads). Pure code.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use serde_json::{Value, json};

use super::controllers::hpa::CpuSample;

/// One container's measured usage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerUsage {
    /// Container name.
    pub name: String,
    /// Average CPU over the window, in nanocores (1 core = 10⁹).
    pub nanocores: u64,
    /// Resident memory in bytes.
    pub memory_bytes: u64,
}

/// The PodMetrics object for `pod` from its containers' usage, measured over `window`
/// ending at `at`.
pub fn pod_metrics(
    pod: &Pod,
    containers: &[ContainerUsage],
    window: Duration,
    at: Timestamp,
) -> Value {
    let m = &pod.metadata;
    json!({
        "kind": "PodMetrics",
        "apiVersion": "metrics.k8s.io/v1beta1",
        "metadata": {
            "name": m.name,
            "namespace": m.namespace,
            "creationTimestamp": at.to_string(),
            "labels": m.labels.clone().unwrap_or_default(),
        },
        "timestamp": at.to_string(),
        "window": window_text(window),
        "containers": containers.iter().map(|c| json!({
            "name": c.name,
            "usage": {
                "cpu": format!("{}n", c.nanocores),
                "memory": format!("{}Ki", c.memory_bytes / 1024),
            }
        })).collect::<Vec<_>>(),
    })
}

/// The NodeMetrics object of `node` from the PodMetrics of the pods bound to it: CPU and
/// memory summed over their containers, stamped with the newest pod sample.
pub fn node_metrics(node: &str, pods: &[Value], at: Timestamp) -> Value {
    let (mut nanocores, mut kib) = (0u64, 0u64);
    let mut newest: Option<String> = None;
    let mut window = String::from("15s");
    for pod in pods {
        for c in pod["containers"].as_array().into_iter().flatten() {
            let usage = |k: &str, unit: &str| {
                c.pointer(&format!("/usage/{k}"))
                    .and_then(Value::as_str)
                    .and_then(|v| v.strip_suffix(unit))
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(0)
            };
            nanocores += usage("cpu", "n");
            kib += usage("memory", "Ki");
        }
        let stamp = pod["timestamp"].as_str().map(str::to_string);
        if stamp > newest {
            newest = stamp;
            window = pod["window"].as_str().unwrap_or("15s").to_string();
        }
    }
    let timestamp = newest.unwrap_or_else(|| at.to_string());
    json!({
        "kind": "NodeMetrics",
        "apiVersion": "metrics.k8s.io/v1beta1",
        "metadata": {"name": node, "creationTimestamp": at.to_string()},
        "timestamp": timestamp,
        "window": window,
        "usage": {"cpu": format!("{nanocores}n"), "memory": format!("{kib}Ki")},
    })
}

/// The HPA's view of a PodMetrics object: CPU summed over containers, in millicores.
/// `None` if the object has no containers or a usage does not parse.
pub fn cpu_sample(metrics: &Value) -> Option<CpuSample> {
    let containers = metrics.get("containers")?.as_array()?;
    if containers.is_empty() {
        return None;
    }
    let mut millis = 0i64;
    for c in containers {
        let cpu = c.pointer("/usage/cpu")?.as_str()?;
        millis += super::controllers::hpa::milli_value(cpu)?;
    }
    let timestamp: Timestamp = metrics.get("timestamp")?.as_str()?.parse().ok()?;
    let window = metrics
        .get("window")
        .and_then(Value::as_str)
        .and_then(|w| humantime::parse_duration(w).ok())
        .unwrap_or(Duration::from_secs(15));
    Some(CpuSample {
        usage_millicores: millis,
        timestamp,
        window,
    })
}

/// A window as a Go duration with whole seconds (`"15s"`) or milliseconds (`"500ms"`).
fn window_text(window: Duration) -> String {
    if window.subsec_millis() == 0 && window.as_secs() > 0 {
        format!("{}s", window.as_secs())
    } else {
        format!("{}ms", window.as_millis())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod() -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "web-1", "namespace": "default", "labels": {"app": "web"}},
            "spec": {"containers": [{"name": "web"}]}
        }))
        .unwrap()
    }

    #[test]
    fn pod_metrics_use_the_metrics_api_units_and_shape() {
        let at = Timestamp::from_second(1_800_000_000).unwrap();
        let usage = [ContainerUsage {
            name: "web".into(),
            nanocores: 123_456_789,
            memory_bytes: 20 * 1024 * 1024,
        }];
        let m = pod_metrics(&pod(), &usage, Duration::from_secs(15), at);
        assert_eq!(m["kind"], "PodMetrics");
        assert_eq!(m["apiVersion"], "metrics.k8s.io/v1beta1");
        assert_eq!(m["metadata"]["name"], "web-1");
        assert_eq!(m["metadata"]["labels"]["app"], "web");
        assert_eq!(m["window"], "15s");
        assert_eq!(m["timestamp"], "2027-01-15T08:00:00Z");
        assert_eq!(m["containers"][0]["usage"]["cpu"], "123456789n");
        assert_eq!(m["containers"][0]["usage"]["memory"], "20480Ki");
    }

    #[test]
    fn the_hpa_reads_back_millicores_summed_over_containers() {
        let at = Timestamp::from_second(1_800_000_000).unwrap();
        let usage = [
            ContainerUsage {
                name: "a".into(),
                nanocores: 250_000_000,
                memory_bytes: 0,
            },
            ContainerUsage {
                name: "b".into(),
                nanocores: 100_000_001,
                memory_bytes: 0,
            },
        ];
        let m = pod_metrics(&pod(), &usage, Duration::from_millis(1500), at);
        assert_eq!(m["window"], "1500ms");
        let s = cpu_sample(&m).unwrap();
        // Upstream MilliValue rounds up: 100000001n → 101m.
        assert_eq!(s.usage_millicores, 351);
        assert_eq!(s.timestamp, at);
        assert_eq!(s.window, Duration::from_millis(1500));
        assert!(cpu_sample(&json!({"containers": []})).is_none());
    }
}
