//! Taints and tolerations (upstream `pkg/apis/core/v1/helper` `ToleratesTaint`,
//! `FindMatchingUntoleratedTaint`, and the DefaultTolerationSeconds admission plugin):
//! which taints a pod tolerates, and for how long. Used by the scheduler's
//! TaintToleration and NodeUnschedulable filters, the taint eviction controller and pod
//! admission.

use k8s_openapi::api::core::v1::{Taint, Toleration};
use serde_json::{Value, json};

/// The taint a cordoned node carries.
pub const UNSCHEDULABLE: &str = "node.kubernetes.io/unschedulable";
/// The taint of a node whose Ready condition is False.
pub const NOT_READY: &str = "node.kubernetes.io/not-ready";
/// The taint of a node whose Ready condition is Unknown (it stopped posting).
pub const UNREACHABLE: &str = "node.kubernetes.io/unreachable";

/// Whether `toleration` tolerates `taint` (upstream `Toleration.ToleratesTaint`).
pub fn tolerates(toleration: &Toleration, taint: &Taint) -> bool {
    let effect = toleration.effect.as_deref().unwrap_or("");
    if !effect.is_empty() && effect != taint.effect {
        return false;
    }
    let key = toleration.key.as_deref().unwrap_or("");
    let exists = toleration.operator.as_deref() == Some("Exists");
    if key.is_empty() {
        // An empty key with Exists tolerates everything; an empty key is invalid otherwise.
        return exists;
    }
    if key != taint.key {
        return false;
    }
    exists || toleration.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or("")
}

/// The first of `taints` with an effect in `effects` that no toleration tolerates.
pub fn untolerated<'a>(
    taints: &'a [Taint],
    tolerations: &[Toleration],
    effects: &[&str],
) -> Option<&'a Taint> {
    taints.iter().find(|t| {
        effects.contains(&t.effect.as_str()) && !tolerations.iter().any(|tol| tolerates(tol, t))
    })
}

/// How long a pod may stay on a node with these NoExecute taints (upstream
/// `getMinTolerationTime`): `None` if some taint is not tolerated (evict now),
/// `Some(None)` if every one is tolerated forever, `Some(Some(secs))` the least
/// `tolerationSeconds` among the tolerations used.
pub fn toleration_time(taints: &[&Taint], tolerations: &[Toleration]) -> Option<Option<i64>> {
    let mut least: Option<i64> = None;
    for taint in taints {
        let used: Vec<&Toleration> = tolerations.iter().filter(|t| tolerates(t, taint)).collect();
        if used.is_empty() {
            return None;
        }
        for t in used {
            if let Some(s) = t.toleration_seconds {
                let s = s.max(0);
                least = Some(least.map_or(s, |l| l.min(s)));
            }
        }
    }
    Some(least)
}

/// The DefaultTolerationSeconds admission plugin: a pod without a toleration for the
/// `not-ready` or `unreachable` NoExecute taints gets one for `seconds` (upstream 300).
pub fn add_default_tolerations(pod: &mut Value, seconds: i64) {
    let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    let list = spec.entry("tolerations").or_insert_with(|| json!([]));
    if !list.is_array() {
        return;
    }
    let current: Vec<Toleration> = serde_json::from_value(list.clone()).unwrap_or_default();
    for key in [NOT_READY, UNREACHABLE] {
        let covered = current.iter().any(|t| {
            let effect = t.effect.as_deref().unwrap_or("");
            let key_ok = t.key.as_deref() == Some(key)
                || (t.key.as_deref().unwrap_or("").is_empty()
                    && t.operator.as_deref() == Some("Exists"));
            key_ok && (effect.is_empty() || effect == "NoExecute")
        });
        if !covered && let Some(a) = list.as_array_mut() {
            a.push(
                json!({"key": key, "operator": "Exists", "effect": "NoExecute",
                          "tolerationSeconds": seconds}),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn taint(key: &str, value: &str, effect: &str) -> Taint {
        Taint {
            key: key.into(),
            value: Some(value.into()),
            effect: effect.into(),
            time_added: None,
        }
    }

    fn toleration(v: Value) -> Toleration {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn tolerations_match_by_key_value_and_effect() {
        let t = taint("gpu", "yes", "NoSchedule");
        assert!(tolerates(
            &toleration(json!({"key": "gpu", "value": "yes"})),
            &t
        ));
        assert!(!tolerates(
            &toleration(json!({"key": "gpu", "value": "no"})),
            &t
        ));
        assert!(tolerates(
            &toleration(json!({"key": "gpu", "operator": "Exists"})),
            &t
        ));
        assert!(tolerates(&toleration(json!({"operator": "Exists"})), &t));
        assert!(!tolerates(
            &toleration(json!({"key": "gpu", "operator": "Exists", "effect": "NoExecute"})),
            &t
        ));
    }

    #[test]
    fn eviction_waits_for_the_least_toleration_seconds() {
        let t = taint(UNREACHABLE, "", "NoExecute");
        let tols = vec![toleration(
            json!({"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 3}),
        )];
        assert_eq!(toleration_time(&[&t], &tols), Some(Some(3)));
        assert_eq!(toleration_time(&[&t], &[]), None);
        let forever = vec![toleration(json!({"operator": "Exists"}))];
        assert_eq!(toleration_time(&[&t], &forever), Some(None));
    }

    #[test]
    fn admission_adds_both_default_tolerations_once() {
        let mut pod = json!({"spec": {"containers": []}});
        add_default_tolerations(&mut pod, 300);
        add_default_tolerations(&mut pod, 300);
        let tols = pod["spec"]["tolerations"].as_array().unwrap();
        assert_eq!(tols.len(), 2);
        assert_eq!(tols[1]["key"], UNREACHABLE);
        assert_eq!(tols[1]["tolerationSeconds"], 300);
    }
}
