//! The decisions section: every explained decision of resil's controllers (failover
//! watcher, outlier ejector, predictive autoscaler) as a row of time, controller, rule,
//! action and its inputs in one line — the autoscaler's forecast with its recent error,
//! any other controller's figures as `path=value`. Called by `sections.rs`; the JSON
//! report carries the inputs in full.

use serde_json::Value;

use super::model::Decision;
use super::sections::{Grid, Section, strings};

/// Rows shown in the decisions section; the JSON report carries every one.
pub const MAX_DECISION_ROWS: usize = 200;
/// Longest inputs cell before it is cut (the JSON report has the inputs in full).
const MAX_INPUTS_CHARS: usize = 160;

pub(super) fn decisions_section(decisions: &[Decision]) -> Section {
    let mut per_controller: Vec<(&str, usize)> = Vec::new();
    for d in decisions {
        match per_controller.iter_mut().find(|(c, _)| *c == d.controller) {
            Some((_, n)) => *n += 1,
            None => per_controller.push((&d.controller, 1)),
        }
    }
    let counts: Vec<String> = per_controller
        .iter()
        .map(|(c, n)| format!("{c} {n}"))
        .collect();
    let mut notes = vec![format!(
        "{} decision(s) by controller: {}; each with the inputs it was taken on (in full in -o json)",
        decisions.len(),
        counts.join(", ")
    )];
    if decisions.len() > MAX_DECISION_ROWS {
        notes.push(format!(
            "showing the first {MAX_DECISION_ROWS}; -o json lists all {}",
            decisions.len()
        ));
    }
    Section {
        title: "Decisions".into(),
        notes,
        grid: Some(Grid {
            header: strings(&["at", "controller", "rule", "action", "inputs"]),
            rows: decisions
                .iter()
                .take(MAX_DECISION_ROWS)
                .map(|d| {
                    vec![
                        d.at.format("%H:%M:%S%.3f").to_string(),
                        d.controller.clone(),
                        d.rule.clone(),
                        d.action.clone(),
                        inputs_cell(d),
                    ]
                })
                .collect(),
        }),
    }
}

/// The inputs of a decision in one line: the autoscaler's forecast with its error, else
/// every scalar as `path=value` (lists by their length), cut at [`MAX_INPUTS_CHARS`].
pub fn inputs_cell(decision: &Decision) -> String {
    let text = match decision.controller.as_str() {
        "autoscale" => autoscale_inputs(&decision.inputs),
        _ => None,
    }
    .unwrap_or_else(|| {
        let mut parts = Vec::new();
        flatten("", &decision.inputs, &mut parts);
        parts.join(" ")
    });
    if text.chars().count() > MAX_INPUTS_CHARS {
        let cut: String = text.chars().take(MAX_INPUTS_CHARS - 1).collect();
        format!("{cut}…")
    } else {
        text
    }
}

/// The predictive autoscaler's figures: demand now and forecast (with its recent error),
/// capacity, replicas and what the plan needed, the cost, and whether the budget binds.
fn autoscale_inputs(inputs: &Value) -> Option<String> {
    let observed = inputs.get("observed")?;
    let unit = observed.get("unit").and_then(Value::as_str).unwrap_or("");
    let num = |v: Option<&Value>| v.and_then(Value::as_f64);
    let rate = num(observed.get("rate"))?;
    let mut parts = vec![format!("rate {} {unit}", number(rate))];
    let look_ahead = num(inputs.pointer("/knobs/look_ahead_s"));
    let mut forecast = match (num(observed.get("forecast")), look_ahead) {
        (Some(f), Some(s)) => format!("forecast {} in {}s", number(f), number(s)),
        (Some(f), None) => format!("forecast {}", number(f)),
        _ => "no forecast yet".into(),
    };
    if let Some(model) = observed.get("model").and_then(Value::as_str) {
        let accuracy = observed.get("accuracy").filter(|a| !a.is_null());
        match accuracy.and_then(|a| Some((num(a.get("mae"))?, a.get("samples")?.as_u64()?))) {
            Some((mae, n)) => forecast.push_str(&format!(
                " ({model}, error on the last {n} steps: MAE {})",
                number(mae)
            )),
            None => forecast.push_str(&format!(" ({model})")),
        }
    }
    parts.push(forecast);
    if let Some(c) = num(observed.get("capacity_per_pod")) {
        parts.push(format!("capacity {}/pod", number(c)));
    }
    if let Some(r) = observed.get("current_replicas").and_then(Value::as_i64) {
        parts.push(format!("replicas {r}"));
    }
    if let Some(n) = inputs.get("needed").and_then(Value::as_i64) {
        parts.push(format!("needed {n}"));
    }
    if let Some(c) = num(inputs.get("cost_per_hour")) {
        parts.push(format!("{}/h", crate::cost::usd(c)));
    }
    if inputs.get("budget_binds").and_then(Value::as_bool) == Some(true) {
        parts.push("budget binds".into());
    }
    Some(parts.join(", "))
}

/// `path=value` for every scalar under `value`; lists of scalars inline when short, other
/// lists as their length.
fn flatten(path: &str, value: &Value, out: &mut Vec<String>) {
    let join = |key: &str| {
        if path.is_empty() {
            key.to_string()
        } else {
            format!("{path}.{key}")
        }
    };
    match value {
        Value::Null => {}
        Value::Object(map) => {
            for (k, v) in map {
                flatten(&join(k), v, out);
            }
        }
        Value::Array(items) => {
            let scalars: Option<Vec<String>> = items.iter().map(scalar).collect();
            match scalars {
                Some(s) if s.len() <= 4 => out.push(format!("{path}=[{}]", s.join(","))),
                _ => out.push(format!("{path}=[{} items]", items.len())),
            }
        }
        other => {
            if let Some(s) = scalar(other) {
                out.push(if path.is_empty() {
                    s
                } else {
                    format!("{path}={s}")
                });
            }
        }
    }
}

fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::Bool(b) => Some(b.to_string()),
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(
            n.as_i64()
                .map_or_else(|| number(n.as_f64().unwrap_or(f64::NAN)), |i| i.to_string()),
        ),
        _ => None,
    }
}

/// A figure with at most three decimals and no trailing zeros.
fn number(v: f64) -> String {
    let s = format!("{v:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" { "0".into() } else { s.into() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn decision(controller: &str, inputs: Value) -> Decision {
        Decision {
            at: chrono::DateTime::UNIX_EPOCH,
            controller: controller.into(),
            rule: "r".into(),
            action: "a".into(),
            inputs,
        }
    }

    #[test]
    fn decision_inputs_show_every_scalar_with_its_path_and_lists_by_length() {
        let d = decision(
            "outliers",
            json!({"verdict": {"pod": "web-blue-c", "z": 12.25, "ok": false, "gone": null},
                   "window": [{"pod": "a"}, {"pod": "b"}], "colours": ["blue", "green"]}),
        );
        assert_eq!(
            inputs_cell(&d),
            "colours=[blue,green] verdict.ok=false verdict.pod=web-blue-c verdict.z=12.25 window=[2 items]"
        );
    }

    #[test]
    fn autoscale_inputs_show_rate_forecast_with_its_error_and_the_budget() {
        let d = decision(
            "autoscale",
            json!({"observed": {"unit": "req/s", "rate": 40.0, "forecast": 61.25, "model": "holt",
                                "accuracy": {"mae": 2.5, "mape": 0.05, "samples": 8},
                                "capacity_per_pod": 20.0, "current_replicas": 2},
                   "knobs": {"look_ahead_s": 60.0}, "needed": 4, "cost_per_hour": 0.048,
                   "budget_binds": true}),
        );
        assert_eq!(
            inputs_cell(&d),
            "rate 40 req/s, forecast 61.25 in 60s (holt, error on the last 8 steps: MAE 2.5), \
             capacity 20/pod, replicas 2, needed 4, $0.0480/h, budget binds"
        );
    }

    #[test]
    fn long_inputs_are_cut_with_an_ellipsis() {
        let long: serde_json::Map<String, Value> =
            (0..50).map(|i| (format!("key{i:02}"), json!(i))).collect();
        let cell = inputs_cell(&decision("watch", Value::Object(long)));
        assert_eq!(cell.chars().count(), MAX_INPUTS_CHARS);
        assert!(cell.starts_with("key00=0 key01=1"), "{cell}");
        assert!(cell.ends_with('…'));
    }
}
