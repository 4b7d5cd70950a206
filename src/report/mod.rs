//! Reports over a results directory: SLO evaluation and renderers (table, JSON, Markdown, JUnit, HTML). Pure: reads files, writes to a writer, never talks to a cluster.

use crate::Exit;
use crate::cli::{GlobalArgs, ReportArgs};

/// `resil report`
pub async fn command(_args: ReportArgs, _global: &GlobalArgs) -> anyhow::Result<Exit> {
    Err(crate::not_implemented("report"))
}
