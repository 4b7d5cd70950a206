//! The few domain types every layer shares: the demo's two colours and the duration syntax
//! people write (`30s`, `1m30s`). Pure data and parsing, no I/O.
//!
//! They live here, not in `cli.rs`, so that policy code (`watch::failover`), scenario files
//! and engines name them without depending on the command line; `cli.rs` re-uses them in
//! its clap definitions.

/// The two colours of the blue/green demo.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    clap::ValueEnum,
    PartialOrd,
    Ord,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Color {
    Blue,
    Green,
}

impl Color {
    /// The label value (`version: blue|green`).
    pub fn as_str(self) -> &'static str {
        match self {
            Color::Blue => "blue",
            Color::Green => "green",
        }
    }

    /// The other colour.
    pub fn other(self) -> Color {
        match self {
            Color::Blue => Color::Green,
            Color::Green => Color::Blue,
        }
    }
}

impl std::fmt::Display for Color {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Parses a humantime duration such as `30s`, `1m30s` or `250ms` (the value parser of
/// every duration flag); shared with the lab's command line.
pub use resil_common::args::parse_duration;

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn durations_accept_humantime_and_reject_garbage() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert!(parse_duration("soon").unwrap_err().contains("like 500ms"));
    }

    #[test]
    fn each_colour_names_its_label_and_the_other() {
        assert_eq!(Color::Blue.to_string(), "blue");
        assert_eq!(Color::Green.other(), Color::Blue);
    }
}
