//! Label matching over typed selectors, as `k8s.io/apimachinery/pkg/apis/meta/v1`'s
//! `LabelSelectorAsSelector` and the core/v1 node selector requirements read them. Used by
//! the scheduler (`scheduler/`) and the disruption controller (`disruption.rs`).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::NodeSelectorRequirement;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};

/// Labels of an object, empty when it has none.
pub type Labels = BTreeMap<String, String>;

/// Whether `selector` selects `labels`. An empty selector selects everything (the meaning
/// PDBs and spread constraints give it); `None` selects nothing.
pub fn selects(selector: Option<&LabelSelector>, labels: &Labels) -> bool {
    let Some(sel) = selector else {
        return false;
    };
    let by_labels = sel
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    by_labels
        && sel
            .match_expressions
            .iter()
            .flatten()
            .all(|r| requirement(r, labels))
}

fn requirement(r: &LabelSelectorRequirement, labels: &Labels) -> bool {
    let values = r.values.as_deref().unwrap_or_default();
    let value = labels.get(&r.key);
    match r.operator.as_str() {
        "In" => value.is_some_and(|v| values.contains(v)),
        "NotIn" => value.is_none_or(|v| !values.contains(v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        _ => false,
    }
}

/// Whether a node selector requirement (node affinity) holds for a node's labels:
/// `In`, `NotIn`, `Exists`, `DoesNotExist`, and `Gt`/`Lt` comparing integers.
pub fn node_requirement(r: &NodeSelectorRequirement, labels: &Labels) -> bool {
    let values = r.values.as_deref().unwrap_or_default();
    let value = labels.get(&r.key);
    let compare = |want: std::cmp::Ordering| {
        let (Some(v), [bound]) = (value, values) else {
            return false;
        };
        match (v.parse::<i64>(), bound.parse::<i64>()) {
            (Ok(v), Ok(b)) => v.cmp(&b) == want,
            _ => false,
        }
    };
    match r.operator.as_str() {
        "In" => value.is_some_and(|v| values.contains(v)),
        "NotIn" => value.is_none_or(|v| !values.contains(v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        "Gt" => compare(std::cmp::Ordering::Greater),
        "Lt" => compare(std::cmp::Ordering::Less),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn selectors_combine_labels_and_expressions() {
        let sel: LabelSelector = serde_json::from_value(json!({
            "matchLabels": {"app": "web"},
            "matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["db"]}],
        }))
        .unwrap();
        assert!(selects(Some(&sel), &labels(&[("app", "web")])));
        assert!(!selects(
            Some(&sel),
            &labels(&[("app", "web"), ("tier", "db")])
        ));
        assert!(selects(Some(&LabelSelector::default()), &labels(&[])));
        assert!(!selects(None, &labels(&[("app", "web")])));
    }

    #[test]
    fn node_requirements_compare_integers_with_gt_and_lt() {
        let r = |op: &str, v: &str| NodeSelectorRequirement {
            key: "cores".into(),
            operator: op.into(),
            values: Some(vec![v.into()]),
        };
        let l = labels(&[("cores", "8")]);
        assert!(node_requirement(&r("Gt", "4"), &l));
        assert!(!node_requirement(&r("Lt", "4"), &l));
        assert!(!node_requirement(&r("Gt", "x"), &l));
        assert!(node_requirement(&r("NotIn", "4"), &l));
    }
}
