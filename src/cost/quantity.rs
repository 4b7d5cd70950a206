//! Kubernetes resource quantities as a pod request states them: CPU (`100m`, `0.5`, `2`) in
//! millicores and memory (`128Mi`, `1Gi`, `500M`, `1e9`) in bytes. Only what requests use;
//! not a full `resource.Quantity` implementation. Called by the cost command (flags) and by
//! the manifest reader.

use super::CostError;

/// Parses a CPU quantity into millicores: `100m` → 100, `0.5` → 500, `2` → 2000.
pub fn parse_cpu_millis(text: &str) -> Result<u64, CostError> {
    let bad = || CostError::Quantity {
        text: text.to_string(),
        expected: "a CPU quantity like 100m, 0.5 or 2",
    };
    let t = text.trim();
    let millis = match t.strip_suffix('m') {
        Some(number) => parse_number(number).ok_or_else(bad)?,
        None => parse_number(t).ok_or_else(bad)? * 1000.0,
    };
    to_whole(millis).ok_or_else(bad)
}

/// Parses a memory quantity into bytes: `128Mi`, `1Gi`, `500M`, `1.5G`, `1e9`, `1048576`.
pub fn parse_memory_bytes(text: &str) -> Result<u64, CostError> {
    let bad = || CostError::Quantity {
        text: text.to_string(),
        expected: "a memory quantity like 128Mi, 1Gi or 500M",
    };
    let t = text.trim();
    // Longest suffixes first so `Mi` is not read as `M` followed by garbage.
    const SUFFIXES: &[(&str, f64)] = &[
        ("Ki", 1024.0),
        ("Mi", 1_048_576.0),
        ("Gi", 1_073_741_824.0),
        ("Ti", 1_099_511_627_776.0),
        ("Pi", 1_125_899_906_842_624.0),
        ("k", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("T", 1e12),
        ("P", 1e15),
    ];
    let (number, factor) = SUFFIXES
        .iter()
        .find_map(|(suffix, factor)| t.strip_suffix(suffix).map(|n| (n, *factor)))
        .unwrap_or((t, 1.0));
    let value = parse_number(number).ok_or_else(bad)? * factor;
    to_whole(value).ok_or_else(bad)
}

/// Formats millicores the way Kubernetes prints them (`100m`, `2`).
pub fn format_cpu(millis: u64) -> String {
    if millis.is_multiple_of(1000) {
        format!("{}", millis / 1000)
    } else {
        format!("{millis}m")
    }
}

/// Formats bytes with the largest binary suffix that divides them (`128Mi`, `1Gi`).
pub fn format_memory(bytes: u64) -> String {
    const UNITS: &[(&str, u64)] = &[
        ("Ti", 1 << 40),
        ("Gi", 1 << 30),
        ("Mi", 1 << 20),
        ("Ki", 1 << 10),
    ];
    for (suffix, size) in UNITS {
        if bytes >= *size && bytes.is_multiple_of(*size) {
            return format!("{}{suffix}", bytes / size);
        }
    }
    bytes.to_string()
}

fn parse_number(text: &str) -> Option<f64> {
    // Reject what f64::from_str accepts but a quantity never is: inf, NaN, signs.
    if text.is_empty()
        || !text
            .chars()
            .all(|c| c.is_ascii_digit() || ".eE".contains(c))
    {
        return None;
    }
    text.parse::<f64>().ok().filter(|v| v.is_finite())
}

fn to_whole(value: f64) -> Option<u64> {
    let rounded = value.round();
    // 2^53: beyond it f64 no longer holds every integer; no pod requests that much.
    (0.0..9_007_199_254_740_992.0)
        .contains(&rounded)
        .then_some(rounded as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_quantities_become_millicores() {
        assert_eq!(parse_cpu_millis("100m").unwrap(), 100);
        assert_eq!(parse_cpu_millis("0.5").unwrap(), 500);
        assert_eq!(parse_cpu_millis("2").unwrap(), 2000);
        assert_eq!(parse_cpu_millis(" 250m ").unwrap(), 250);
        for bad in ["", "m", "-1", "abc", "1Gi", "inf"] {
            assert!(parse_cpu_millis(bad).is_err(), "{bad:?} should not parse");
        }
    }

    #[test]
    fn memory_quantities_become_bytes() {
        assert_eq!(parse_memory_bytes("128Mi").unwrap(), 128 << 20);
        assert_eq!(parse_memory_bytes("1Gi").unwrap(), 1 << 30);
        assert_eq!(parse_memory_bytes("500M").unwrap(), 500_000_000);
        assert_eq!(parse_memory_bytes("1.5G").unwrap(), 1_500_000_000);
        assert_eq!(parse_memory_bytes("1e9").unwrap(), 1_000_000_000);
        assert_eq!(parse_memory_bytes("1048576").unwrap(), 1 << 20);
        for bad in ["", "Mi", "12Xi", "-5Mi", "NaN"] {
            assert!(parse_memory_bytes(bad).is_err(), "{bad:?} should not parse");
        }
    }

    #[test]
    fn quantities_print_like_kubernetes_prints_them() {
        assert_eq!(format_cpu(100), "100m");
        assert_eq!(format_cpu(2000), "2");
        assert_eq!(format_memory(128 << 20), "128Mi");
        assert_eq!(format_memory(1 << 30), "1Gi");
        assert_eq!(format_memory(1000), "1000");
    }
}
