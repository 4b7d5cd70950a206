//! The Grafana dashboard (`docs/grafana/resil.json`) against what Grafana's dashboard
//! model of schemaVersion 39 (Grafana 10.3 to 11) needs to import it as is, and against
//! what resil exposes: every metric name its queries use is one a resil scrape carries,
//! every query parses as PromQL (`promtool check rules`, where installed), and every
//! family a scrape carries is documented in `docs/metrics.md` under a conventional name.

use std::collections::BTreeSet;
use std::path::Path;

use resil::domain::Color;
use resil::metrics::Metrics;
use resil::metrics::control::RunMetrics;
use resil::metrics::gateway::GatewayMetrics;
use resil::run::runner::Progress;
use resil::watch::controller::{Snapshot, Update};
use resil_common::exposition::Format;
use serde_json::Value;

/// The schema version the dashboard is written for.
const SCHEMA_VERSION: u64 = 39;

/// Panel types of Grafana's core plugins the dashboard may use.
const PANEL_TYPES: [&str; 5] = ["row", "stat", "timeseries", "heatmap", "state-timeline"];

fn dashboard() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/grafana/resil.json");
    let text = std::fs::read_to_string(&path).expect("docs/grafana/resil.json");
    serde_json::from_str(&text).expect("the dashboard is JSON")
}

/// Every PromQL query of the dashboard: panels' targets, annotations, variables.
fn queries(d: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for panel in d["panels"].as_array().unwrap() {
        for t in panel["targets"].as_array().into_iter().flatten() {
            out.push(t["expr"].as_str().unwrap().to_string());
        }
    }
    for a in d["annotations"]["list"].as_array().unwrap() {
        if let Some(expr) = a["expr"].as_str() {
            out.push(expr.to_string());
        }
    }
    out
}

/// A query with Grafana's variables replaced by values Prometheus accepts.
fn as_promql(query: &str) -> String {
    query
        .replace("$__rate_interval", "1m")
        .replace("$__interval", "15s")
        .replace("$__range", "15m")
        .replace("$job", ".*")
}

/// The `resil_*` names a query reads.
fn metric_names(query: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = query;
    while let Some(at) = rest.find("resil_") {
        let before = rest[..at].chars().next_back();
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        if !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
            names.insert(tail[..end].to_string());
        }
        rest = &tail[end..];
    }
    names
}

/// A scrape of every sink resil registers (load, watcher, autoscaler, chaos, gateway),
/// each fed once so that labelled families have a series: each family as
/// `(name, type)`, names as the text format 0.0.4 writes them.
fn exposed_families() -> Vec<(String, String)> {
    let mut metrics = Metrics::new();
    metrics.register_load();
    let run = RunMetrics::register(metrics.registry());
    run.progress(&Progress::Watch(Update::Snapshot(Snapshot {
        selected: Some(Color::Blue),
        ready: [(Color::Blue, 2), (Color::Green, 2)],
        desired: [(Color::Blue, 2), (Color::Green, 2)],
        serving: 2,
        hpas: vec![(Color::Blue, 2, 3, Some(60))],
        last_failover: None,
    })));
    run.progress(&Progress::Injected {
        step: 1,
        detail: "kill-pods blue".into(),
        id: "c-1".into(),
        open: true,
    });
    run.progress(&Progress::TimedReverted { id: "c-1".into() });
    let gateway = GatewayMetrics::register(metrics.registry(), &["region-a".to_string()]);
    gateway.decided("failover");
    let text = metrics.encode(Format::Text);
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .map(|l| {
            let (name, kind) = l.split_once(' ').unwrap();
            (name.to_string(), kind.to_string())
        })
        .collect()
}

/// The series names a scrape carries (a histogram's `_bucket`, `_count`, `_sum`).
fn exposed_names() -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for (name, kind) in exposed_families() {
        if kind == "histogram" {
            for suffix in ["_bucket", "_count", "_sum"] {
                names.insert(format!("{name}{suffix}"));
            }
        } else {
            names.insert(name);
        }
    }
    names
}

fn datasource_is_the_variable(v: &Value, what: &str) {
    assert_eq!(v["type"], "prometheus", "{what}: {v}");
    assert_eq!(v["uid"], "${datasource}", "{what}: {v}");
}

#[test]
fn the_dashboard_has_the_shape_grafana_imports_for_its_schema_version() {
    let d = dashboard();
    assert_eq!(d["schemaVersion"].as_u64(), Some(SCHEMA_VERSION));
    // Importable as is: no numeric id (Grafana assigns one), no `__inputs` to map, a uid
    // within Grafana's 40 characters, the data source chosen through a variable.
    assert!(d["id"].is_null(), "id must be null to import");
    assert!(
        d.get("__inputs").is_none(),
        "an export for sharing needs mapping"
    );
    let uid = d["uid"].as_str().unwrap();
    assert!(!uid.is_empty() && uid.len() <= 40, "{uid}");
    assert!(!d["title"].as_str().unwrap().is_empty());
    for key in ["time", "templating", "annotations", "panels"] {
        assert!(d[key].is_object() || d[key].is_array(), "{key} missing");
    }
    let vars = d["templating"]["list"].as_array().unwrap();
    let ds = vars.iter().find(|v| v["name"] == "datasource").unwrap();
    assert_eq!(ds["type"], "datasource");
    assert_eq!(ds["query"], "prometheus");
    for v in vars.iter().filter(|v| v["type"] == "query") {
        datasource_is_the_variable(&v["datasource"], "a query variable");
    }

    let panels = d["panels"].as_array().unwrap();
    let mut ids = BTreeSet::new();
    let mut cells = BTreeSet::new();
    for p in panels {
        let title = p["title"].as_str().unwrap_or_default();
        let id = p["id"].as_u64().expect("every panel has a numeric id");
        assert!(ids.insert(id), "panel id {id} twice");
        let kind = p["type"].as_str().unwrap();
        assert!(PANEL_TYPES.contains(&kind), "{title}: panel type {kind}");
        let g = &p["gridPos"];
        let [x, y, w, h] = ["x", "y", "w", "h"].map(|k| {
            g[k].as_u64()
                .unwrap_or_else(|| panic!("{title}: gridPos.{k}"))
        });
        assert!(w >= 1 && h >= 1 && x + w <= 24, "{title}: {g}");
        // No two panels share a grid cell.
        for cx in x..x + w {
            for cy in y..y + h {
                assert!(cells.insert((cx, cy)), "{title} overlaps at ({cx}, {cy})");
            }
        }
        if kind == "row" {
            assert!(p["panels"].is_array(), "{title}");
            continue;
        }
        datasource_is_the_variable(&p["datasource"], title);
        assert!(p["fieldConfig"]["defaults"].is_object(), "{title}");
        assert!(p["options"].is_object(), "{title}");
        let targets = p["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "{title}: no targets");
        let mut refs = BTreeSet::new();
        for t in targets {
            datasource_is_the_variable(&t["datasource"], title);
            assert!(
                refs.insert(t["refId"].as_str().unwrap()),
                "{title}: refId twice"
            );
            let expr = t["expr"].as_str().unwrap();
            assert!(expr.contains("{job=~\"$job\""), "{title}: {expr}");
        }
        if kind == "heatmap" {
            // Prometheus buckets, not values for Grafana to bucket again.
            assert_eq!(p["options"]["calculate"], false, "{title}");
            assert!(targets.iter().all(|t| t["format"] == "heatmap"), "{title}");
        }
    }
    assert!(panels.iter().any(|p| p["type"] == "heatmap"));

    let annotations = d["annotations"]["list"].as_array().unwrap();
    let from_prometheus: Vec<&Value> = annotations
        .iter()
        .filter(|a| a["datasource"]["type"] == "prometheus")
        .collect();
    for a in &from_prometheus {
        datasource_is_the_variable(&a["datasource"], "an annotation");
        assert_eq!(a["enable"], true);
        assert!(a["name"].is_string() && a["iconColor"].is_string(), "{a}");
    }
    let marked: BTreeSet<String> = from_prometheus
        .iter()
        .flat_map(|a| metric_names(a["expr"].as_str().unwrap()))
        .collect();
    for series in [
        "resil_watch_failovers_total",
        "resil_watch_failbacks_total",
        "resil_chaos_faults_active",
    ] {
        assert!(marked.contains(series), "no annotation from {series}");
    }
}

#[test]
fn every_metric_the_dashboard_queries_is_one_resil_exposes() {
    let exposed = exposed_names();
    let d = dashboard();
    let queries = queries(&d);
    assert!(queries.len() > 10, "{queries:?}");
    for q in &queries {
        let names = metric_names(q);
        assert!(!names.is_empty(), "{q} reads no resil series");
        for name in names {
            assert!(exposed.contains(&name), "{q}: {name} is not exposed");
        }
    }
    // The job variable lists the processes by the series every one of them serves.
    let vars = d["templating"]["list"].as_array().unwrap();
    let job = vars.iter().find(|v| v["name"] == "job").unwrap();
    let definition = job["definition"].as_str().unwrap();
    for name in metric_names(definition) {
        assert!(exposed.contains(&name), "{definition}");
    }
}

#[test]
fn every_dashboard_query_parses_as_promql() {
    let which = std::process::Command::new("sh")
        .args(["-c", "command -v promtool"])
        .output()
        .unwrap();
    if !which.status.success() {
        eprintln!("skipped: `promtool` is not installed (apt-get install prometheus)");
        return;
    }
    let rules: Vec<Value> = queries(&dashboard())
        .iter()
        .enumerate()
        .map(|(i, q)| serde_json::json!({"record": format!("dashboard_query_{i}"), "expr": as_promql(q)}))
        .collect();
    let file = serde_json::json!({"groups": [{"name": "dashboard", "rules": rules}]});
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rules.yml");
    // JSON is YAML.
    std::fs::write(&path, file.to_string()).unwrap();
    let out = std::process::Command::new("promtool")
        .args(["check", "rules"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn every_exposed_family_is_documented_under_a_conventional_name() {
    let docs =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/metrics.md"))
            .unwrap();
    for (name, kind) in exposed_families() {
        assert!(
            name.starts_with("resil_")
                && name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
            "{name}"
        );
        assert_eq!(
            kind == "counter",
            name.ends_with("_total"),
            "{name} ({kind})"
        );
        if name.contains("duration") || (name.contains("downtime") && kind != "counter") {
            assert!(name.ends_with("_seconds"), "{name}: durations are seconds");
        }
        assert!(
            docs.contains(&format!("`{name}`")),
            "{name} is not in docs/metrics.md"
        );
    }
}
