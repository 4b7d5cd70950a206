//! The comparison grammar shared by `resil load --fail-on` and the report's SLOs:
//! `KEY OP VALUE[, KEY OP VALUE ...]`, OP one of `<`, `<=`, `>`, `>=`, spaces allowed.
//!
//! Each caller keeps its own table of keys, units and error messages (load judges a
//! `LoadSummary`, the report a whole run); this module only splits expressions, compares,
//! and parses the value forms both accept: durations (`800us`, `250ms`, `1.5s`, `2m`,
//! `1m 30s`) and ratios (`1%` or `0.01`). Pure: no I/O.

use std::time::Duration;

/// The comparison that must hold between the measured value and the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Lt,
    Le,
    Gt,
    Ge,
}

impl Op {
    /// The operator as written.
    pub fn symbol(self) -> &'static str {
        match self {
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
        }
    }

    /// Whether `actual OP limit`.
    pub fn holds(self, actual: f64, limit: f64) -> bool {
        match self {
            Op::Lt => actual < limit,
            Op::Le => actual <= limit,
            Op::Gt => actual > limit,
            Op::Ge => actual >= limit,
        }
    }
}

/// One expression split into its parts, each trimmed; the value is not parsed yet
/// because its unit depends on the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Comparison<'a> {
    pub key: &'a str,
    pub op: Op,
    pub value: &'a str,
}

/// The non-empty, trimmed expressions of a comma-separated list.
pub fn expressions(text: &str) -> impl Iterator<Item = &str> {
    text.split(',').map(str::trim).filter(|e| !e.is_empty())
}

/// Splits `p99 <= 250ms` into key, operator and value; `None` when there is no
/// comparison operator (`p99=250ms`).
pub fn split(expr: &str) -> Option<Comparison<'_>> {
    let at = expr.find(['<', '>'])?;
    let (key, rest) = expr.split_at(at);
    let (op, value) = if let Some(v) = rest.strip_prefix("<=") {
        (Op::Le, v)
    } else if let Some(v) = rest.strip_prefix(">=") {
        (Op::Ge, v)
    } else if let Some(v) = rest.strip_prefix('<') {
        (Op::Lt, v)
    } else {
        (Op::Gt, rest.strip_prefix('>')?)
    };
    Some(Comparison {
        key: key.trim(),
        op,
        value: value.trim(),
    })
}

/// A duration with a unit: `800us`/`800µs`, `250ms`, `1.5s`, `2m`/`2min`, or any form
/// humantime reads (`1m 30s`). A bare number has no unit and is refused.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let scale_us = match text[split..].trim() {
        "us" | "µs" => Some(1.0),
        "ms" => Some(1_000.0),
        "s" => Some(1_000_000.0),
        "m" | "min" => Some(60_000_000.0),
        _ => None,
    };
    match (text[..split].parse::<f64>(), scale_us) {
        (Ok(number), Some(scale)) => {
            let us = number * scale;
            (us.is_finite() && us >= 0.0).then(|| Duration::from_secs_f64(us / 1_000_000.0))
        }
        _ => humantime::parse_duration(text).ok(),
    }
}

/// A ratio between 0 and 1, written `1%` or `0.01`.
pub fn parse_ratio(text: &str) -> Option<f64> {
    let v = match text.strip_suffix('%') {
        Some(p) => p.trim().parse::<f64>().ok()? / 100.0,
        None => text.parse::<f64>().ok()?,
    };
    (v.is_finite() && (0.0..=1.0).contains(&v)).then_some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expressions_split_into_key_operator_and_value() {
        let got: Vec<Comparison> = expressions(" p99 <= 250ms ,, error_rate<1%,rps>1000")
            .map(|e| split(e).unwrap())
            .collect();
        assert_eq!(
            got,
            vec![
                Comparison {
                    key: "p99",
                    op: Op::Le,
                    value: "250ms"
                },
                Comparison {
                    key: "error_rate",
                    op: Op::Lt,
                    value: "1%"
                },
                Comparison {
                    key: "rps",
                    op: Op::Gt,
                    value: "1000"
                },
            ]
        );
        assert_eq!(split("p99=250ms"), None);
        assert!(Op::Ge.holds(2.0, 2.0) && !Op::Gt.holds(2.0, 2.0));
    }

    #[test]
    fn durations_take_fractions_and_compound_forms_but_not_bare_numbers() {
        let ms = |t: &str| parse_duration(t).map(|d| d.as_secs_f64() * 1000.0);
        assert_eq!(ms("250ms"), Some(250.0));
        assert_eq!(ms("1.5s"), Some(1500.0));
        assert_eq!(ms("800us"), Some(0.8));
        assert_eq!(ms("800µs"), Some(0.8));
        assert_eq!(ms("2m"), Some(120_000.0));
        assert_eq!(ms("1m 30s"), Some(90_000.0));
        assert_eq!(ms("300"), None);
        assert_eq!(ms("fast"), None);
    }

    #[test]
    fn ratios_are_percentages_or_fractions_within_zero_and_one() {
        assert_eq!(parse_ratio("1%"), Some(0.01));
        assert_eq!(parse_ratio("0.005"), Some(0.005));
        assert_eq!(parse_ratio("150%"), None);
        assert_eq!(parse_ratio("-0.1"), None);
    }
}
