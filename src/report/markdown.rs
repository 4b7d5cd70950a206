//! `-o markdown`: the report as GitHub-flavoured Markdown, ready for a CI job summary or a
//! pull-request comment. Called by `report::render`.

use std::io::{self, Write};

use super::model::Report;
use super::sections::{FAIL, REGRESSION, partial_banner, sections};

/// Writes the report as Markdown.
pub fn render(report: &Report, out: &mut dyn Write) -> io::Result<()> {
    let verdict = if report.slos.is_empty() {
        ""
    } else if report.slos_passed {
        " — ✅ SLOs held"
    } else {
        " — ❌ SLOs failed"
    };
    writeln!(
        out,
        "# resil report: {}{verdict}",
        escape(&report.run.run_id)
    )?;
    if let Some(banner) = partial_banner(report) {
        writeln!(out)?;
        writeln!(out, "> **⚠️ {}**", escape(&banner))?;
    }
    let all = sections(report);
    // The run section's notes go under the document title rather than under a heading.
    if let Some(first) = all.first() {
        writeln!(out)?;
        for note in &first.notes {
            writeln!(out, "- {}", escape(note))?;
        }
    }
    for section in all.iter().skip(1) {
        writeln!(out)?;
        writeln!(out, "## {}", escape(&section.title))?;
        writeln!(out)?;
        for note in &section.notes {
            writeln!(out, "{}  ", escape(note))?;
        }
        if let Some(grid) = &section.grid {
            if !section.notes.is_empty() {
                writeln!(out)?;
            }
            writeln!(
                out,
                "| {} |",
                grid.header
                    .iter()
                    .map(|h| escape(h))
                    .collect::<Vec<_>>()
                    .join(" | ")
            )?;
            writeln!(out, "|{}", "---|".repeat(grid.header.len()))?;
            for row in &grid.rows {
                let cells: Vec<String> = row
                    .iter()
                    .map(|c| match c.as_str() {
                        FAIL => "❌ **FAIL**".to_string(),
                        REGRESSION => "⚠️ **regression**".to_string(),
                        _ => escape(c),
                    })
                    .collect();
                writeln!(out, "| {} |", cells.join(" | "))?;
            }
        }
    }
    Ok(())
}

/// Keeps cell and note text from breaking the table or turning into markup. A line break
/// becomes a space: text from a results directory must not start a line of its own (a
/// heading, a link, a row) in a pull-request comment.
fn escape(text: &str) -> String {
    text.replace(['\r', '\n'], " ")
        .replace('|', "\\|")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::escape;

    #[test]
    fn cell_text_cannot_split_the_table_start_a_line_or_open_a_tag() {
        assert_eq!(
            escape("a|b <img src=x>\n# heading\r\n| row |"),
            "a\\|b &lt;img src=x&gt; # heading  \\| row \\|"
        );
    }
}
