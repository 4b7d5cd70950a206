//! The side-by-side comparison of a scenario's variants (`variants:`): one column per
//! variant, one row per figure — the report module's baseline metrics (each variant
//! against the first, through `report::compare`) plus what a proactive-vs-reactive
//! comparison needs on top: errors, the fewest Ready endpoints left after the first fault
//! (the capacity a node or zone outage took), and the seconds whose p99 was over the
//! target.
//!
//! Pure apart from reading the runs' results directories; `run::command` renders the
//! returned [`SideBySide`] and stores it next to the runs.

use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use crate::report::{self, ReportError};

/// One variant's run.
#[derive(Debug, Clone)]
pub struct VariantRun {
    pub variant: String,
    pub dir: PathBuf,
}

/// One figure across the variants.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    pub metric: String,
    pub unit: String,
    /// One value per variant, in variant order (`None`: not measured).
    pub values: Vec<Option<f64>>,
}

/// The whole comparison.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SideBySide {
    pub variants: Vec<String>,
    pub run_ids: Vec<String>,
    /// The p99 target of the `p99_over_target` row, in ms.
    pub p99_target_ms: Option<f64>,
    pub rows: Vec<Row>,
    /// Whether each variant's SLOs held.
    pub slos_passed: Vec<bool>,
}

/// Reads every run and lines their figures up. `p99_target`: the target of the "seconds
/// with p99 over target" row (left out without one).
pub fn side_by_side(
    runs: &[VariantRun],
    p99_target: Option<Duration>,
) -> Result<SideBySide, ReportError> {
    let mut loaded = Vec::new();
    for run in runs {
        loaded.push(report::load(&run.dir, None, None)?);
    }
    let Some((first, ..)) = loaded.first() else {
        return Ok(SideBySide {
            variants: Vec::new(),
            run_ids: Vec::new(),
            p99_target_ms: None,
            rows: Vec::new(),
            slos_passed: Vec::new(),
        });
    };
    let n = loaded.len();
    let mut rows: Vec<Row> = Vec::new();
    // The report's own metrics, each variant against the first (the first against itself
    // gives its values in the same order).
    for (i, (current, ..)) in loaded.iter().enumerate() {
        for delta in report::compare::compare(current, first).deltas {
            let at = match rows.iter().position(|r| r.metric == delta.metric) {
                Some(at) => at,
                None => {
                    rows.push(Row {
                        metric: delta.metric.clone(),
                        unit: delta.unit.clone(),
                        values: vec![None; n],
                    });
                    rows.len() - 1
                }
            };
            rows[at].values[i] = delta.current;
        }
    }
    rows.push(Row {
        metric: "errors".to_string(),
        unit: "count".to_string(),
        values: loaded
            .iter()
            .map(|(r, ..)| r.load.as_ref().map(|l| l.errors as f64))
            .collect(),
    });
    let mut fewest = Vec::with_capacity(n);
    for run in runs {
        let events = crate::results::RunDir::open(&run.dir)
            .and_then(|d| d.read_timeline())
            .map_err(ReportError::from)?;
        fewest.push(ready_endpoints_min(&events).map(f64::from));
    }
    if fewest.iter().any(Option::is_some) {
        rows.push(Row {
            metric: "ready_endpoints_min".to_string(),
            unit: "count".to_string(),
            values: fewest,
        });
    }
    let target_ms = p99_target.map(|t| t.as_secs_f64() * 1000.0);
    if let Some(target) = target_ms {
        rows.push(Row {
            metric: "p99_over_target".to_string(),
            unit: "s".to_string(),
            values: loaded
                .iter()
                .map(|(_, series, ..)| {
                    let over = series
                        .buckets
                        .iter()
                        .filter(|b| b.requests > 0 && b.p99_ms > target)
                        .count();
                    Some(over as f64)
                })
                .collect(),
        });
    }
    Ok(SideBySide {
        variants: runs.iter().map(|r| r.variant.clone()).collect(),
        run_ids: loaded.iter().map(|(r, ..)| r.run.run_id.clone()).collect(),
        p99_target_ms: target_ms,
        rows,
        slos_passed: loaded.iter().map(|(r, ..)| r.slos_passed).collect(),
    })
}

/// The fewest Ready endpoints the Service had from the first injected fault on (the
/// capacity a fault left); `None` without a fault or an endpoints change after it.
fn ready_endpoints_min(events: &[crate::results::Event]) -> Option<u32> {
    use crate::results::EventKind;
    let fault = events
        .iter()
        .filter(|e| matches!(e.kind, EventKind::ChaosInjected { .. }))
        .map(|e| e.ts)
        .min()?;
    events
        .iter()
        .filter(|e| e.ts >= fault)
        .filter_map(|e| match &e.kind {
            EventKind::EndpointsChanged { ready, .. } => Some(ready.values().sum()),
            _ => None,
        })
        .min()
}

impl SideBySide {
    /// The table as cells: a column per variant; after the first, the change against it.
    /// The last row holds the SLO verdicts.
    pub fn grid(&self) -> (Vec<String>, Vec<Vec<String>>) {
        let mut header = vec!["metric".to_string()];
        header.extend(self.variants.iter().cloned());
        let mut rows = Vec::new();
        for row in &self.rows {
            let label = if row.metric == "p99_over_target" {
                format!(
                    "seconds with p99 > {} ms",
                    self.p99_target_ms.unwrap_or_default()
                )
            } else {
                format!("{} ({})", row.metric, row.unit)
            };
            let first = row.values.first().copied().flatten();
            let mut cells = vec![label];
            for (i, value) in row.values.iter().enumerate() {
                cells.push(match value {
                    None => "–".to_string(),
                    Some(v) => {
                        let change = match first {
                            Some(f) if i > 0 && f != 0.0 => {
                                format!(" ({:+.0}%)", (v - f) / f.abs() * 100.0)
                            }
                            _ => String::new(),
                        };
                        format!("{}{change}", number(*v, &row.unit))
                    }
                });
            }
            rows.push(cells);
        }
        let mut slos = vec!["SLOs".to_string()];
        slos.extend(
            self.slos_passed
                .iter()
                .map(|passed| if *passed { "passed" } else { "FAILED" }.to_string()),
        );
        rows.push(slos);
        (header, rows)
    }

    /// A Markdown table of [`SideBySide::grid`], for `comparison.md`.
    pub fn markdown(&self) -> String {
        let (header, rows) = self.grid();
        let mut out = format!("| {} |\n", header.join(" | "));
        out.push_str("|---|");
        out.push_str(&"---:|".repeat(self.variants.len()));
        out.push('\n');
        for row in rows {
            out.push_str(&format!("| {} |\n", row.join(" | ")));
        }
        out
    }

    /// A terminal table of [`SideBySide::grid`], for `resil run`'s output.
    pub fn terminal(&self) -> String {
        let (header, rows) = self.grid();
        let mut table = comfy_table::Table::new();
        table.load_style(comfy_table::presets::UTF8_FULL_CONDENSED);
        table.set_header(header);
        for row in rows {
            table.add_row(row);
        }
        table.to_string()
    }
}

fn number(v: f64, unit: &str) -> String {
    match unit {
        "ratio" => format!("{:.2}%", v * 100.0),
        "usd" => crate::cost::usd(v),
        "count" => format!("{v:.0}"),
        _ => format!("{v:.1}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_endpoints_min_counts_from_the_first_fault_on() {
        use crate::results::{Event, EventKind};
        let at = |ms: i64, kind: EventKind| Event {
            ts: chrono::DateTime::<chrono::Utc>::UNIX_EPOCH + chrono::Duration::milliseconds(ms),
            source: "t".into(),
            kind,
        };
        let ready = |n: u32| EventKind::EndpointsChanged {
            service: "web".into(),
            ready: [("blue".to_string(), n)].into(),
        };
        let fault = EventKind::ChaosInjected {
            id: "z".into(),
            action: "zone-outage".into(),
            targets: vec![],
            detail: String::new(),
        };
        // A dip before the fault (a deploy) does not count; the fault's does.
        let events = vec![
            at(0, ready(0)),
            at(10, fault),
            at(20, ready(1)),
            at(30, ready(4)),
        ];
        assert_eq!(ready_endpoints_min(&events), Some(1));
        assert_eq!(
            ready_endpoints_min(&events[..1]),
            None,
            "no fault, no figure"
        );
    }

    #[test]
    fn the_table_shows_each_variant_and_its_change_against_the_first() {
        let s = SideBySide {
            variants: vec!["hpa-only".into(), "predictive".into()],
            run_ids: vec!["a".into(), "b".into()],
            p99_target_ms: Some(250.0),
            rows: vec![
                Row {
                    metric: "error_rate".into(),
                    unit: "ratio".into(),
                    values: vec![Some(0.02), Some(0.01)],
                },
                Row {
                    metric: "p99_over_target".into(),
                    unit: "s".into(),
                    values: vec![Some(10.0), None],
                },
            ],
            slos_passed: vec![false, true],
        };
        let md = s.markdown();
        assert!(md.contains("| metric | hpa-only | predictive |"), "{md}");
        assert!(
            md.contains("| error_rate (ratio) | 2.00% | 1.00% (-50%) |"),
            "{md}"
        );
        assert!(
            md.contains("| seconds with p99 > 250 ms | 10.0 | – |"),
            "{md}"
        );
        assert!(md.contains("| SLOs | FAILED | passed |"), "{md}");
    }
}
