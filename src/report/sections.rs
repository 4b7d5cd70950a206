//! The report laid out as titled sections of notes and grids, once, so the table, Markdown
//! and HTML renderers show the same rows in the same order and differ only in markup.
//! Called by those three renderers.

use super::decisions::decisions_section;
use super::model::{Report, SloVerdict};
use crate::cost::usd;
use crate::results::summary::Percentiles;

/// One titled part of the report.
#[derive(Debug, Clone, PartialEq)]
pub struct Section {
    pub title: String,
    /// Lines of text shown before the grid.
    pub notes: Vec<String>,
    pub grid: Option<Grid>,
}

/// A table: header and rows of already formatted cells.
#[derive(Debug, Clone, PartialEq)]
pub struct Grid {
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

/// Text of a failed check; renderers may highlight it.
pub const FAIL: &str = "FAIL";
/// Text of a passed check.
pub const PASS: &str = "pass";
/// Text of a regression in the comparison.
pub const REGRESSION: &str = "REGRESSION";

/// The one-line banner of a partial run, `None` for a complete one.
pub fn partial_banner(report: &Report) -> Option<String> {
    report.run.partial.then(|| {
        let why = report
            .run
            .partial_reason
            .clone()
            .unwrap_or_else(|| format!("status {:?}", report.run.status).to_lowercase());
        format!("PARTIAL RUN ({why}): the figures cover only what was recorded before it stopped")
    })
}

/// Milliseconds with one decimal from microseconds.
pub fn ms(us: u64) -> String {
    format!("{:.1}ms", us as f64 / 1000.0)
}

/// A ratio as a percentage with three decimals.
pub fn percent(ratio: f64) -> String {
    format!("{:.3}%", ratio * 100.0)
}

fn opt_ms(v: Option<u64>) -> String {
    v.map_or_else(|| "—".into(), |v| format!("{v}ms"))
}

fn latency_cells(p: Option<&Percentiles>) -> Vec<String> {
    match p {
        Some(p) => [p.p50_us, p.p90_us, p.p99_us, p.p999_us, p.max_us]
            .map(ms)
            .to_vec(),
        None => vec!["—".into(); 5],
    }
}

fn slo_row(v: &SloVerdict) -> Vec<String> {
    let actual = match v.actual {
        None => "not measured".into(),
        Some(a) => match v.unit.as_str() {
            "ratio" => percent(a),
            "usd" => usd(a),
            "per_s" => format!("{a:.1}/s"),
            "writes" => format!("{a:.0} writes"),
            _ => format!("{a:.1}ms"),
        },
    };
    vec![
        v.expression.clone(),
        actual,
        if v.passed { PASS } else { FAIL }.to_string(),
    ]
}

/// Lays the report out: each section has its own builder, in the order shown. A builder
/// returns `None` when the run has nothing for its section.
pub fn sections(report: &Report) -> Vec<Section> {
    let builders: [fn(&Report) -> Option<Section>; 12] = [
        run_section,
        slo_section,
        super::rollouts::rollout_section,
        load_section,
        writes_section,
        failover_section,
        downtime_section,
        scaling_section,
        cost_section,
        chaos_section,
        decision_section,
        baseline_section,
    ];
    let mut out: Vec<Section> = builders.iter().filter_map(|build| build(report)).collect();
    // What clients felt of each fault comes first, right after the run's header.
    let at = usize::from(!out.is_empty());
    out.splice(
        at..at,
        super::recovery::sections(&report.recovery, report.run.started_at),
    );
    out
}

/// What ran, when, where.
fn run_section(report: &Report) -> Option<Section> {
    let run = &report.run;
    let mut notes = vec![format!(
        "command `{}`{}, resil {}",
        run.command,
        run.scenario
            .as_ref()
            .map(|s| format!(", scenario {s}"))
            .unwrap_or_default(),
        run.resil_version
    )];
    notes.push(format!(
        "started {}, {:.1}s recorded, status {}",
        run.started_at.format("%Y-%m-%d %H:%M:%S%.3fZ"),
        run.duration_s,
        format!("{:?}", run.status).to_lowercase()
    ));
    if let Some(ctx) = &run.context {
        notes.push(format!("context {ctx}"));
    }
    if let Some(url) = &run.target_url {
        notes.push(format!("target {url}"));
    }
    Some(Section {
        title: format!("Run {}", run.run_id),
        notes,
        grid: None,
    })
}

/// The SLO verdicts.
fn slo_section(report: &Report) -> Option<Section> {
    if report.slos.is_empty() {
        return None;
    }
    let failed = report.slos.iter().filter(|s| !s.passed).count();
    Some(Section {
        title: "SLOs".into(),
        notes: vec![if failed == 0 {
            format!("all {} SLOs held", report.slos.len())
        } else {
            format!("{failed} of {} SLOs failed", report.slos.len())
        }],
        grid: Some(Grid {
            header: strings(&["SLO", "actual", "verdict"]),
            rows: report.slos.iter().map(slo_row).collect(),
        }),
    })
}

/// Requests, errors and latency, in all and per serving colour.
fn load_section(report: &Report) -> Option<Section> {
    let load = report.load.as_ref()?;
    let row = |who: &str, requests: u64, errors: u64, rate: f64, p: Option<&Percentiles>| {
        [
            vec![
                who.to_string(),
                requests.to_string(),
                errors.to_string(),
                percent(rate),
            ],
            latency_cells(p),
        ]
        .concat()
    };
    let mut rows = vec![row(
        "all",
        load.requests,
        load.errors,
        load.error_rate,
        load.latency.as_ref(),
    )];
    for c in &load.by_color {
        rows.push(row(
            &c.color,
            c.requests,
            c.errors,
            c.error_rate,
            c.latency.as_ref(),
        ));
    }
    for r in &load.by_region {
        rows.push(row(
            &crate::load::render::through(&r.region),
            r.requests,
            r.errors,
            r.error_rate,
            r.latency.as_ref(),
        ));
    }
    let mut notes = vec![format!(
        "{} requests in {:.1}s ({:.1}/s), {} errors ({}); from the {}",
        load.requests,
        load.duration_s,
        load.achieved_rate,
        load.errors,
        percent(load.error_rate),
        load.source
    )];
    if !load.error_kinds.is_empty() {
        let kinds: Vec<String> = load
            .error_kinds
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        notes.push(format!("errors by kind: {}", kinds.join(", ")));
    }
    Some(Section {
        title: "Requests and latency".into(),
        notes,
        grid: Some(Grid {
            header: strings(&[
                "served by",
                "requests",
                "errors",
                "error rate",
                "p50",
                "p90",
                "p99",
                "p99.9",
                "max",
            ]),
            rows,
        }),
    })
}

/// The writes of `--write-ratio`: acknowledged, lost (RPO) and wrong.
fn writes_section(report: &Report) -> Option<Section> {
    let w = report.writes.as_ref()?;
    let mut notes: Vec<String> = crate::load::render::write_rows(w)
        .into_iter()
        .filter(|(name, _)| !name.is_empty())
        .map(|(name, value)| format!("{name}: {value}"))
        .collect();
    if let (Some(first), Some(last)) = (w.first_lost_at, w.last_lost_at) {
        notes.push(format!(
            "lost writes were acknowledged from {} to {}",
            first.format("%H:%M:%S%.3f"),
            last.format("%H:%M:%S%.3f")
        ));
    }
    let rows = vec![vec![
        w.acknowledged.to_string(),
        w.verified.to_string(),
        w.lost.to_string(),
        opt_ms(w.rpo_window_ms),
        w.correctness_errors().to_string(),
        w.unverified.to_string(),
    ]];
    Some(Section {
        title: "Writes and data loss (RPO)".into(),
        notes,
        grid: Some(Grid {
            header: strings(&[
                "acknowledged",
                "read back",
                "lost (RPO)",
                "RPO window",
                "correctness errors",
                "unreadable",
            ]),
            rows,
        }),
    })
}

/// Each failover with its control-plane time and client downtime.
fn failover_section(report: &Report) -> Option<Section> {
    if report.failovers.is_empty() {
        return None;
    }
    Some(Section {
        title: "Failovers".into(),
        notes: vec!["control plane: last ready endpoint lost (or chaos) → Service selects a ready colour; client: first failed request → first success".into()],
        grid: Some(Grid {
            header: strings(&["#", "from → to", "kind", "started", "control plane", "client downtime", "errors during"]),
            rows: report
                .failovers
                .iter()
                .enumerate()
                .map(|(i, f)| {
                    vec![
                        (i + 1).to_string(),
                        format!("{} → {}", f.from, f.to),
                        f.direction.clone(),
                        f.started_at.format("%H:%M:%S%.3f").to_string(),
                        format!("{}ms", f.control_plane_ms),
                        if f.downtime_unbounded {
                            "still down at end".into()
                        } else {
                            opt_ms(f.client_downtime_ms)
                        },
                        f.errors_during.to_string(),
                    ]
                })
                .collect(),
        }),
    })
}

/// Client-observed downtime episodes.
fn downtime_section(report: &Report) -> Option<Section> {
    if report.downtime.is_empty() {
        return None;
    }
    Some(Section {
        title: "Client-observed downtime".into(),
        notes: Vec::new(),
        grid: Some(Grid {
            header: strings(&["started", "ended", "duration", "failed requests"]),
            rows: report
                .downtime
                .iter()
                .map(|d| {
                    vec![
                        d.started_at.format("%H:%M:%S%.3f").to_string(),
                        d.ended_at.map_or_else(
                            || "not before the end".into(),
                            |e| e.format("%H:%M:%S%.3f").to_string(),
                        ),
                        opt_ms(d.duration_ms),
                        d.failed_requests.to_string(),
                    ]
                })
                .collect(),
        }),
    })
}

/// Scale-ups and how long their pods took to be Ready.
fn scaling_section(report: &Report) -> Option<Section> {
    if report.scaling.is_empty() {
        return None;
    }
    Some(Section {
        title: "Scaling".into(),
        notes: vec!["latency: desired replicas raised → the last new pod Ready".into()],
        grid: Some(Grid {
            header: strings(&["colour", "replicas", "desired at", "latency"]),
            rows: report
                .scaling
                .iter()
                .map(|s| {
                    vec![
                        s.color.clone(),
                        format!("{} → {}", s.from_replicas, s.to_replicas),
                        s.desired_at.format("%H:%M:%S%.3f").to_string(),
                        s.latency_ms.map_or_else(
                            || "not Ready before the end".into(),
                            |v| format!("{v}ms"),
                        ),
                    ]
                })
                .collect(),
        }),
    })
}

/// Replica-seconds and cost per request, per colour and in total.
fn cost_section(report: &Report) -> Option<Section> {
    let cost = report.cost.as_ref()?;
    let row = |c: &crate::cost::RequestCost| {
        vec![
            c.color.clone(),
            format!("{:.1}", c.pod_seconds),
            usd(c.cost),
            c.successful_requests.to_string(),
            // Per request a cost is millionths of a dollar: it reads per 1M requests.
            c.cost_per_1m.map_or_else(|| "—".into(), usd),
        ]
    };
    let mut rows: Vec<Vec<String>> = cost.run.by_color.iter().map(row).collect();
    rows.push(row(&cost.run.total));
    Some(Section {
        title: "Replica-seconds and cost per request".into(),
        notes: vec![format!(
            "pricing {}; replica-seconds from the {}",
            cost.pricing, report.replica_seconds_source
        )],
        grid: Some(Grid {
            header: strings(&[
                "colour",
                "replica-seconds",
                "cost",
                "ok requests",
                "per 1M requests",
            ]),
            rows,
        }),
    })
}

/// The faults injected and when they were reverted.
fn chaos_section(report: &Report) -> Option<Section> {
    if report.chaos.is_empty() {
        return None;
    }
    Some(Section {
        title: "Chaos".into(),
        notes: Vec::new(),
        grid: Some(Grid {
            header: strings(&["injected", "action", "targets", "reverted"]),
            rows: report
                .chaos
                .iter()
                .map(|c| {
                    vec![
                        c.at.format("%H:%M:%S%.3f").to_string(),
                        c.action.clone(),
                        c.targets.join(", "),
                        match c.reverted_at {
                            Some(t) => t.format("%H:%M:%S%.3f").to_string(),
                            // Killed pods are replaced by their Deployment: there
                            // is nothing to revert, and "no" would read as a leak.
                            None if c.action == "kill-pods" => "n/a".into(),
                            None => "no".into(),
                        },
                    ]
                })
                .collect(),
        }),
    })
}

/// The watcher's and autoscaler's decisions, each with its reason.
fn decision_section(report: &Report) -> Option<Section> {
    (!report.decisions.is_empty()).then(|| decisions_section(&report.decisions))
}

/// This run against a baseline run, with regressions flagged.
fn baseline_section(report: &Report) -> Option<Section> {
    let cmp = report.baseline.as_ref()?;
    let value = |unit: &str, v: Option<f64>| match v {
        None => "—".to_string(),
        Some(v) => match unit {
            "ratio" => percent(v),
            "usd" => usd(v),
            "ms" => format!("{v:.1}ms"),
            "s" => format!("{v:.1}s"),
            _ => format!("{v}"),
        },
    };
    let mut notes = vec![format!(
        "against {}{}; a regression is worse by more than {}% and its noise floor",
        cmp.baseline_run_id,
        if cmp.baseline_partial {
            " (partial)"
        } else {
            ""
        },
        super::compare::TOLERANCE_PERCENT
    )];
    notes.push(format!("{} regression(s)", cmp.regressions));
    Some(Section {
        title: "Compared with baseline".into(),
        notes,
        grid: Some(Grid {
            header: strings(&["metric", "baseline", "this run", "delta", "change", ""]),
            rows: cmp
                .deltas
                .iter()
                .map(|d| {
                    let delta = d.delta.map(|x| {
                        let sign = if x > 0.0 {
                            "+"
                        } else if x < 0.0 {
                            "-"
                        } else {
                            ""
                        };
                        format!("{sign}{}", value(&d.unit, Some(x.abs())))
                    });
                    vec![
                        d.metric.clone(),
                        value(&d.unit, d.baseline),
                        value(&d.unit, d.current),
                        delta.unwrap_or_else(|| "—".into()),
                        d.delta_percent
                            .map_or_else(|| "—".into(), |p| format!("{p:+.1}%")),
                        if d.regression { REGRESSION } else { "" }.to_string(),
                    ]
                })
                .collect(),
        }),
    })
}

pub(super) fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}
