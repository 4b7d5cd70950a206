//! Value parsers shared by the command lines of the toolkit and the lab.

use std::time::Duration;

/// Parses a humantime duration such as `30s`, `1m30s` or `250ms`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s)
        .map_err(|e| format!("{e}: write a duration like 500ms, 30s, 2m or 1h"))
}
