//! What the HPA algorithm needs to know about each pod, reduced from the Pod object and the
//! pod's latest CPU sample, plus the quantity arithmetic it needs (CPU in millicores).
//!
//! The controller loop builds one [`PodFacts`] per pod matching the scale target's selector
//! (usually with [`PodFacts::from_pod`]) and hands the list to [`super::sync`]. Nothing here
//! reads the store or the clock.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Pod};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::jiff::Timestamp;

/// A pod's lifecycle phase (`status.phase`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PodPhase {
    /// Accepted, not all containers started.
    Pending,
    /// Bound and at least one container running.
    Running,
    /// All containers terminated successfully.
    Succeeded,
    /// All containers terminated, at least one in failure.
    Failed,
    /// Phase not reported (or not recognised).
    Unknown,
}

impl PodPhase {
    /// Reads `status.phase`; a missing or unrecognised phase is `Unknown`.
    pub fn parse(phase: Option<&str>) -> PodPhase {
        match phase {
            Some("Pending") => PodPhase::Pending,
            Some("Running") => PodPhase::Running,
            Some("Succeeded") => PodPhase::Succeeded,
            Some("Failed") => PodPhase::Failed,
            _ => PodPhase::Unknown,
        }
    }
}

/// Status of a pod condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConditionStatus {
    /// `"True"`.
    True,
    /// `"False"`.
    False,
    /// `"Unknown"` or anything else.
    Unknown,
}

impl ConditionStatus {
    /// Reads a condition's `status` string.
    pub fn parse(status: &str) -> ConditionStatus {
        match status {
            "True" => ConditionStatus::True,
            "False" => ConditionStatus::False,
            _ => ConditionStatus::Unknown,
        }
    }
}

/// The pod's `Ready` condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadyCondition {
    /// Whether the pod is ready.
    pub status: ConditionStatus,
    /// When `status` last changed; `None` reads as the zero time, as upstream does.
    pub last_transition_time: Option<Timestamp>,
}

/// The latest CPU usage sample for a pod, as the metrics API reports it: the sum over all
/// containers. A pod for which any container lacks a sample has no `CpuSample` at all
/// (upstream drops such pods and counts them as missing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuSample {
    /// Average CPU usage over the window, in millicores.
    pub usage_millicores: i64,
    /// When the sample was taken (end of the window).
    pub timestamp: Timestamp,
    /// The window the usage was averaged over.
    pub window: Duration,
}

/// One container's CPU request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerRequest {
    /// Container name (used in the "missing request" error).
    pub name: String,
    /// `resources.requests.cpu` in millicores; `None` when not set.
    pub cpu_millicores: Option<i64>,
}

/// Everything the HPA algorithm reads about one pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodFacts {
    /// Pod name (unique within the namespace).
    pub name: String,
    /// `status.phase`.
    pub phase: PodPhase,
    /// The `Ready` condition, if the pod reports one.
    pub ready: Option<ReadyCondition>,
    /// `status.startTime`.
    pub start_time: Option<Timestamp>,
    /// `metadata.deletionTimestamp`: set once the pod is being deleted.
    pub deletion_timestamp: Option<Timestamp>,
    /// App containers plus restartable (sidecar) init containers, in spec order.
    pub containers: Vec<ContainerRequest>,
    /// The latest CPU sample, or `None` when the metrics API has none for this pod.
    pub cpu: Option<CpuSample>,
}

impl PodFacts {
    /// Reduces a Pod object and its latest CPU sample to the facts the algorithm reads.
    ///
    /// Requests count the app containers and the init containers with
    /// `restartPolicy: Always` (sidecars), as upstream does. An unparsable CPU request reads
    /// as missing.
    pub fn from_pod(pod: &Pod, cpu: Option<CpuSample>) -> PodFacts {
        let status = pod.status.as_ref();
        let ready = status
            .and_then(|s| s.conditions.as_ref())
            .and_then(|conditions| conditions.iter().find(|c| c.type_ == "Ready"))
            .map(|c| ReadyCondition {
                status: ConditionStatus::parse(&c.status),
                last_transition_time: c.last_transition_time.as_ref().map(|t| t.0),
            });
        let mut containers = Vec::new();
        if let Some(spec) = pod.spec.as_ref() {
            containers.extend(spec.containers.iter().map(container_request));
            let sidecars = spec.init_containers.iter().flatten();
            containers.extend(
                sidecars
                    .filter(|c| c.restart_policy.as_deref() == Some("Always"))
                    .map(container_request),
            );
        }
        PodFacts {
            name: pod.metadata.name.clone().unwrap_or_default(),
            phase: PodPhase::parse(status.and_then(|s| s.phase.as_deref())),
            ready,
            start_time: status.and_then(|s| s.start_time.as_ref()).map(|t| t.0),
            deletion_timestamp: pod.metadata.deletion_timestamp.as_ref().map(|t| t.0),
            containers,
            cpu,
        }
    }
}

fn container_request(container: &Container) -> ContainerRequest {
    let cpu_millicores = container
        .resources
        .as_ref()
        .and_then(|r| r.requests.as_ref())
        .and_then(|requests| requests.get("cpu"))
        .and_then(|q| milli_value(&q.0));
    ContainerRequest {
        name: container.name.clone(),
        cpu_millicores,
    }
}

/// Parses a Kubernetes quantity ("250m", "1", "0.5", "2k", "1Gi", "1e3") and returns its
/// value in thousandths, rounded away from zero like upstream's `MilliValue`. `None` when
/// the text is not a quantity or the value does not fit an `i64`.
pub fn milli_value(text: &str) -> Option<i64> {
    let parsed = parse_quantity(text)?;
    // value = mantissa · 10^exp10 · 2^exp2; thousandths multiply by 10^3.
    let mut numerator = parsed.mantissa;
    let mut denominator: i128 = 1;
    let exp10 = parsed.exp10 + 3;
    if exp10 >= 0 {
        numerator = numerator.checked_mul(10i128.checked_pow(exp10.unsigned_abs())?)?;
    } else {
        denominator = 10i128.checked_pow(exp10.unsigned_abs())?;
    }
    numerator = numerator.checked_mul(1i128.checked_shl(parsed.exp2)?)?;
    let magnitude = (numerator + denominator - 1) / denominator;
    let value = if parsed.negative {
        -magnitude
    } else {
        magnitude
    };
    i64::try_from(value).ok()
}

/// Parses a quantity to an approximate float, like upstream's `AsApproximateFloat64`.
pub fn approximate_f64(text: &str) -> Option<f64> {
    let parsed = parse_quantity(text)?;
    let value = parsed.mantissa as f64 * 10f64.powi(parsed.exp10) * 2f64.powi(parsed.exp2 as i32);
    Some(if parsed.negative { -value } else { value })
}

/// Formats a value given in thousandths the way upstream's `NewMilliQuantity(v, DecimalSI)`
/// prints: the largest SI suffix that keeps an integer mantissa ("250m", "1", "1500m", "2k").
pub fn milli_quantity(millis: i64) -> Quantity {
    if millis == 0 {
        return Quantity("0".to_string());
    }
    const SUFFIXES: [&str; 8] = ["m", "", "k", "M", "G", "T", "P", "E"];
    let mut mantissa = millis.unsigned_abs();
    let mut step = 0;
    while mantissa.is_multiple_of(1000) && step + 1 < SUFFIXES.len() {
        mantissa /= 1000;
        step += 1;
    }
    let sign = if millis < 0 { "-" } else { "" };
    Quantity(format!("{sign}{mantissa}{}", SUFFIXES[step]))
}

struct ParsedQuantity {
    negative: bool,
    /// All digits of the number, decimal point removed.
    mantissa: i128,
    /// Power of ten applied to `mantissa` (fraction digits and decimal suffixes).
    exp10: i32,
    /// Power of two from binary suffixes (Ki, Mi, ...).
    exp2: u32,
}

fn parse_quantity(text: &str) -> Option<ParsedQuantity> {
    let text = text.trim();
    let (negative, rest) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let number_len = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(rest.len());
    let (number, suffix) = rest.split_at(number_len);
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() && fraction.is_empty() {
        return None;
    }
    let digits = format!("{whole}{fraction}");
    // 38 digits always fit an i128; longer numbers are not quantities anyone writes.
    if digits.len() > 38 {
        return None;
    }
    let mantissa: i128 = if digits.is_empty() {
        0
    } else {
        digits.parse().ok()?
    };
    let mut exp10 = -i32::try_from(fraction.len()).ok()?;
    let mut exp2 = 0;
    match suffix {
        "" => {}
        "n" => exp10 -= 9,
        "u" => exp10 -= 6,
        "m" => exp10 -= 3,
        "k" => exp10 += 3,
        "M" => exp10 += 6,
        "G" => exp10 += 9,
        "T" => exp10 += 12,
        "P" => exp10 += 15,
        "E" => exp10 += 18,
        "Ki" => exp2 = 10,
        "Mi" => exp2 = 20,
        "Gi" => exp2 = 30,
        "Ti" => exp2 = 40,
        "Pi" => exp2 = 50,
        "Ei" => exp2 = 60,
        _ => {
            let exponent = suffix.strip_prefix(['e', 'E'])?;
            let exponent: i32 = exponent.parse().ok()?;
            if exponent.abs() > 40 {
                return None;
            }
            exp10 += exponent;
        }
    }
    Some(ParsedQuantity {
        negative,
        mantissa,
        exp10,
        exp2,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodCondition, PodSpec, PodStatus, ResourceRequirements};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
    use std::collections::BTreeMap;

    #[test]
    fn cpu_quantities_read_as_millicores_rounding_up() {
        // Upstream: Quantity.MilliValue() rounds fractional thousandths up.
        let cases = [
            ("250m", Some(250)),
            ("1", Some(1000)),
            ("0.5", Some(500)),
            ("0.1", Some(100)),
            ("1.5", Some(1500)),
            ("2k", Some(2_000_000)),
            ("1e3", Some(1_000_000)),
            ("100u", Some(1)),
            ("500000n", Some(1)),
            ("1Ki", Some(1_024_000)),
            ("-250m", Some(-250)),
            ("", None),
            ("m", None),
            ("12x", None),
        ];
        for (text, want) in cases {
            assert_eq!(milli_value(text), want, "{text}");
        }
    }

    #[test]
    fn milli_quantities_print_like_decimal_si() {
        // Upstream: resource.NewMilliQuantity(v, DecimalSI).String().
        let cases = [
            (0, "0"),
            (250, "250m"),
            (1000, "1"),
            (1500, "1500m"),
            (2_000_000, "2k"),
        ];
        for (millis, want) in cases {
            assert_eq!(milli_quantity(millis).0, want);
        }
    }

    #[test]
    fn tolerances_parse_as_approximate_floats() {
        assert_eq!(approximate_f64("0.05"), Some(0.05));
        assert_eq!(approximate_f64("50m"), Some(0.05));
    }

    #[test]
    fn from_pod_reads_phase_ready_times_and_sidecar_requests() {
        // Upstream: requests sum app containers plus restartable init containers.
        let t = |s: i64| Time(Timestamp::from_second(s).unwrap());
        let requests = |cpu: &str| ResourceRequirements {
            requests: Some(BTreeMap::from([(
                "cpu".to_string(),
                Quantity(cpu.to_string()),
            )])),
            ..Default::default()
        };
        let pod = Pod {
            metadata: ObjectMeta {
                name: Some("web-1".into()),
                ..Default::default()
            },
            spec: Some(PodSpec {
                containers: vec![
                    Container {
                        name: "web".into(),
                        resources: Some(requests("200m")),
                        ..Default::default()
                    },
                    Container {
                        name: "log".into(),
                        ..Default::default()
                    },
                ],
                init_containers: Some(vec![
                    Container {
                        name: "setup".into(),
                        resources: Some(requests("1")),
                        ..Default::default()
                    },
                    Container {
                        name: "proxy".into(),
                        restart_policy: Some("Always".into()),
                        resources: Some(requests("100m")),
                        ..Default::default()
                    },
                ]),
                ..Default::default()
            }),
            status: Some(PodStatus {
                phase: Some("Running".into()),
                start_time: Some(t(100)),
                conditions: Some(vec![PodCondition {
                    type_: "Ready".into(),
                    status: "True".into(),
                    last_transition_time: Some(t(130)),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
        };
        let facts = PodFacts::from_pod(&pod, None);
        assert_eq!(facts.name, "web-1");
        assert_eq!(facts.phase, PodPhase::Running);
        assert_eq!(facts.start_time, Some(t(100).0));
        assert_eq!(
            facts.ready,
            Some(ReadyCondition {
                status: ConditionStatus::True,
                last_transition_time: Some(t(130).0)
            })
        );
        let names: Vec<_> = facts
            .containers
            .iter()
            .map(|c| (c.name.as_str(), c.cpu_millicores))
            .collect();
        assert_eq!(
            names,
            [("web", Some(200)), ("log", None), ("proxy", Some(100))]
        );
    }
}
