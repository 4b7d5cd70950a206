//! Money as a workshop audience reads it: dollars in fixed notation, never an exponent.
//!
//! One formatter for every place that shows a price or a cost — the report in every
//! format, SLO messages, the autoscaler's reasons and `resil cost` — so the same amount
//! reads the same everywhere. Tiny per-request figures are shown per 1M requests by their
//! callers; this module only decides the digits.

/// Dollars with three significant digits in fixed notation, and at least whole cents:
/// `$0.000269`, `$0.0808`, `$0.500`, `$8.76`, `$1234.57`, `-$0.0458`, `$0.00`.
pub fn usd(dollars: f64) -> String {
    if !dollars.is_finite() {
        return format!("${dollars}");
    }
    let sign = if dollars < 0.0 { "-" } else { "" };
    let amount = dollars.abs();
    // The decimals come from the amount rounded to three significant digits (through the
    // exponent form, which rounds correctly), so 0.0009996 gets 5 decimals, not 6; the
    // amount itself is then written unrounded to those decimals, so large sums keep cents.
    let rounded: f64 = format!("{amount:.2e}").parse().unwrap_or(amount);
    let decimals = if rounded == 0.0 {
        2
    } else {
        // A value in [10^e, 10^(e+1)) needs 2 - e decimals for three significant digits.
        let exponent = rounded.log10().floor() as i32;
        (2 - exponent).max(2) as usize
    };
    format!("{sign}${amount:.decimals$}")
}

#[cfg(test)]
mod tests {
    use super::usd;

    /// Checks each (amount, expected text) pair.
    fn check(cases: &[(f64, &str)]) {
        for (amount, expected) in cases {
            assert_eq!(usd(*amount), *expected, "usd({amount})");
        }
    }

    #[test]
    fn tiny_amounts_keep_three_significant_digits_without_an_exponent() {
        check(&[
            (2.69e-4, "$0.000269"),
            (2.70e-7, "$0.000000270"),
            (5.666_666e-5, "$0.0000567"),
            (0.000_999_6, "$0.00100"),
        ]);
    }

    #[test]
    fn mid_amounts_keep_three_significant_digits() {
        check(&[
            (0.080_83, "$0.0808"),
            (0.5, "$0.500"),
            (0.012, "$0.0120"),
            (8.756, "$8.76"),
        ]);
    }

    #[test]
    fn large_amounts_show_whole_cents() {
        check(&[
            (17.52, "$17.52"),
            (1234.5, "$1234.50"),
            (1234.567, "$1234.57"),
            (2_000_000.0, "$2000000.00"),
        ]);
    }

    #[test]
    fn zero_and_negative_amounts_put_the_sign_before_the_dollar() {
        check(&[(0.0, "$0.00"), (-0.045_83, "-$0.0458"), (-8.76, "-$8.76")]);
    }

    #[test]
    fn no_amount_is_ever_written_with_an_exponent() {
        for e in -12..=9 {
            for m in [1.0, 2.345, 9.999_9] {
                let s = usd(m * 10f64.powi(e));
                assert!(!s.contains('e') && !s.contains('E'), "{s}");
            }
        }
    }
}
