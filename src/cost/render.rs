//! Renders the monthly cost table as a terminal table, JSON or YAML. Called by the cost
//! command; writes to any writer so tests can capture it.

use std::io::Write;

use comfy_table::{CellAlignment, Table, presets};

use super::money::usd;
use super::monthly::CostTable;
use super::quantity::{format_cpu, format_memory};
use crate::cli::StateFormat;

/// Writes `table` to `out` in `format`.
pub fn render_cost_table(
    table: &CostTable,
    format: StateFormat,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    match format {
        StateFormat::Json => {
            serde_json::to_writer_pretty(&mut *out, table)?;
            writeln!(out)?;
        }
        StateFormat::Yaml => {
            out.write_all(serde_saphyr::to_string(table)?.as_bytes())?;
        }
        StateFormat::Table => render_text(table, out)?,
    }
    Ok(())
}

fn render_text(table: &CostTable, out: &mut dyn Write) -> std::io::Result<()> {
    let p = &table.pricing;
    writeln!(out, "Pricing: {} — {}", p.name, p.description)?;
    writeln!(
        out,
        "Pod: {} CPU, {} memory ({}) → {} per pod-hour",
        format_cpu(table.pod_requests.cpu_millis),
        format_memory(table.pod_requests.memory_bytes),
        table.pod_requests_source,
        usd(table.pod_hour_price)
    )?;
    writeln!(
        out,
        "Month: {} h, {:.4} days; savings vs {}",
        p.hours_per_month, table.days_per_month, table.baseline
    )?;
    let mut t = Table::new();
    t.load_style(presets::UTF8_FULL_CONDENSED);
    t.set_header(vec![
        "Scenario",
        "Runs",
        "Pod-hours/month",
        "Monthly cost",
        "Savings",
        "Savings %",
    ]);
    for row in &table.scenarios {
        let marker = if row.scenario == table.baseline {
            " (baseline)"
        } else {
            ""
        };
        t.add_row(vec![
            format!("{}{marker}", row.scenario),
            row.description.clone(),
            format!("{:.2}", row.pod_hours_per_month),
            usd(row.monthly_cost),
            usd(row.savings),
            format!("{:.1}%", row.savings_percent),
        ]);
    }
    for column in 2..6 {
        if let Some(c) = t.column_mut(column) {
            c.set_cell_alignment(CellAlignment::Right);
        }
    }
    writeln!(out, "{t}")
}
