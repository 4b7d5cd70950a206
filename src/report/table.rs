//! `-o table`: the report for a terminal, one comfy-table per section. Called by
//! `report::render`.

use std::io::{self, Write};

use comfy_table::{ContentArrangement, Table, presets};

use super::model::Report;
use super::sections::{partial_banner, sections};

/// Widest a table may grow before its cells wrap (a wide terminal; pipes keep it too).
const TABLE_WIDTH: u16 = 140;

/// Writes the report as terminal tables.
pub fn render(report: &Report, out: &mut dyn Write) -> io::Result<()> {
    if let Some(banner) = partial_banner(report) {
        writeln!(out, "!! {banner}")?;
        writeln!(out)?;
    }
    for (i, section) in sections(report).iter().enumerate() {
        if i > 0 {
            writeln!(out)?;
        }
        writeln!(out, "{}", section.title)?;
        for note in &section.notes {
            writeln!(out, "  {note}")?;
        }
        if let Some(grid) = &section.grid {
            let mut t = Table::new();
            t.load_style(presets::UTF8_FULL_CONDENSED);
            // Long cells (decision rules) wrap instead of making lines hundreds wide.
            t.set_content_arrangement(ContentArrangement::Dynamic);
            t.set_width(TABLE_WIDTH);
            t.set_header(grid.header.clone());
            for row in &grid.rows {
                t.add_row(row.clone());
            }
            writeln!(out, "{t}")?;
        }
    }
    Ok(())
}
