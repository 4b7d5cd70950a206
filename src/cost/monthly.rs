//! The monthly scenario calculator: what the demo's four ways of running the web tier cost
//! per month under a pricing profile, and what each saves against a chosen baseline.
//!
//! Pod-hours per month, with H = hours per month and D = days per month:
//! - `blue`: 1 pod always on → 1 × H
//! - `blue-green`: 2 pods always on → 2 × H
//! - `peak`: 5 pods for `peak_hours_per_day`, 1 pod the rest → 1 × H + (5 − 1) × peak × D
//! - `scale-to-zero`: 0 pods for `off_hours_per_day`, 1 pod the rest → 1 × H − off × D
//!
//! Pure arithmetic over [`PricingProfile`] and [`PodRequests`]; called by the cost command.

use serde::Serialize;

use super::CostError;
use super::pricing::PricingProfile;
use crate::results::summary::PodRequests;

/// Replicas of the peak scenario during its peak hours (the original demo's figure).
pub const PEAK_PODS: u32 = 5;

/// The four scenarios of the original demo.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// Always-on blue: 1 pod.
    Blue,
    /// Always-on blue and green: 2 pods.
    BlueGreen,
    /// 5 pods for the peak hours of each day, 1 pod the rest.
    Peak,
    /// No pod for the off hours of each day, 1 pod the rest.
    ScaleToZero,
}

impl Scenario {
    /// Every scenario, in the order tables list them.
    pub const ALL: [Scenario; 4] = [
        Scenario::Blue,
        Scenario::BlueGreen,
        Scenario::Peak,
        Scenario::ScaleToZero,
    ];

    /// The name `--baseline` takes.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Blue => "blue",
            Scenario::BlueGreen => "blue-green",
            Scenario::Peak => "peak",
            Scenario::ScaleToZero => "scale-to-zero",
        }
    }

    /// A scenario by its `--baseline` name; an unknown name lists the valid ones.
    pub fn from_name(name: &str) -> Result<Scenario, CostError> {
        Scenario::ALL
            .into_iter()
            .find(|s| s.name() == name)
            .ok_or_else(|| CostError::UnknownBaseline {
                name: name.to_string(),
                valid: Scenario::ALL.map(Scenario::name).join(", "),
            })
    }

    /// How the scenario runs, in words.
    pub fn describe(self, profile: &PricingProfile) -> String {
        match self {
            Scenario::Blue => "always-on blue: 1 pod".into(),
            Scenario::BlueGreen => "always-on blue + green: 2 pods".into(),
            Scenario::Peak => format!(
                "{PEAK_PODS} pods for {} h/day, 1 pod the rest",
                profile.peak_hours_per_day
            ),
            Scenario::ScaleToZero => format!(
                "0 pods for {} h/day, 1 pod the rest",
                profile.off_hours_per_day
            ),
        }
    }

    /// Pod-hours per month under `profile`'s calendar.
    pub fn pod_hours(self, profile: &PricingProfile) -> f64 {
        let hours = profile.hours_per_month;
        let days = profile.days_per_month();
        match self {
            Scenario::Blue => hours,
            Scenario::BlueGreen => 2.0 * hours,
            Scenario::Peak => hours + f64::from(PEAK_PODS - 1) * profile.peak_hours_per_day * days,
            Scenario::ScaleToZero => hours - profile.off_hours_per_day * days,
        }
    }
}

/// One row of the monthly table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScenarioCost {
    pub scenario: String,
    pub description: String,
    pub pod_hours_per_month: f64,
    /// Dollars per month, rounded to the cent.
    pub monthly_cost: f64,
    /// Baseline cost minus this cost (negative: costs more), rounded to the cent.
    pub savings: f64,
    /// Savings as a percentage of the baseline cost (0 when the baseline costs nothing).
    pub savings_percent: f64,
}

/// The whole monthly calculation: inputs and one row per scenario.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CostTable {
    pub pricing: PricingProfile,
    pub days_per_month: f64,
    pub pod_requests: PodRequests,
    /// Where the pod requests came from: `flags`, `manifests/...`, `built-in default`.
    pub pod_requests_source: String,
    /// Dollars per pod-hour (unrounded).
    pub pod_hour_price: f64,
    pub baseline: String,
    pub scenarios: Vec<ScenarioCost>,
}

/// Computes every scenario's monthly cost and its savings against `baseline`.
pub fn monthly_costs(
    profile: &PricingProfile,
    requests: PodRequests,
    requests_source: &str,
    baseline: Scenario,
) -> CostTable {
    let price = profile.pod_hour_price(requests);
    // Money is rounded to the cent once, after multiplying, as a hand calculation would;
    // savings are taken between the rounded figures so the table adds up as printed.
    let monthly = |s: Scenario| cents(s.pod_hours(profile) * price);
    let base = monthly(baseline);
    let scenarios = Scenario::ALL
        .into_iter()
        .map(|s| {
            let cost = monthly(s);
            let savings = cents(base - cost);
            ScenarioCost {
                scenario: s.name().to_string(),
                description: s.describe(profile),
                pod_hours_per_month: s.pod_hours(profile),
                monthly_cost: cost,
                savings,
                savings_percent: if base > 0.0 {
                    (savings / base * 1000.0).round() / 10.0
                } else {
                    0.0
                },
            }
        })
        .collect();
    CostTable {
        pricing: profile.clone(),
        days_per_month: profile.days_per_month(),
        pod_requests: requests,
        pod_requests_source: requests_source.to_string(),
        pod_hour_price: price,
        baseline: baseline.name().to_string(),
        scenarios,
    }
}

/// Rounds dollars to the cent (half away from zero).
pub fn cents(dollars: f64) -> f64 {
    (dollars * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn demo_pod() -> PodRequests {
        PodRequests {
            cpu_millis: 100,
            memory_bytes: 128 << 20,
        }
    }

    /// The hand calculation of cost/cost_assumptions.md: 100m × $0.12/vCPU-h = $0.012 per
    /// pod-hour; H = 730, D = 730 / 24 = 30.41666…
    #[test]
    fn the_default_profile_matches_the_hand_calculation_to_the_cent() {
        let table = monthly_costs(
            &PricingProfile::default_profile(),
            demo_pod(),
            "test",
            Scenario::BlueGreen,
        );
        let costs: Vec<(&str, f64, f64)> = table
            .scenarios
            .iter()
            .map(|r| (r.scenario.as_str(), r.monthly_cost, r.savings))
            .collect();
        assert_eq!(
            costs,
            vec![
                // 730 pod-h × 0.012 = 8.76
                ("blue", 8.76, 8.76),
                // 1460 pod-h × 0.012 = 17.52
                ("blue-green", 17.52, 0.0),
                // 730 + 4 × 2 × 30.4167 = 973.33 pod-h × 0.012 = 11.68
                ("peak", 11.68, 5.84),
                // 730 − 8 × 30.4167 = 486.67 pod-h × 0.012 = 5.84
                ("scale-to-zero", 5.84, 11.68),
            ]
        );
        let percents: Vec<f64> = table.scenarios.iter().map(|r| r.savings_percent).collect();
        assert_eq!(percents, vec![50.0, 0.0, 33.3, 66.7]);
    }

    #[test]
    fn savings_against_a_cheaper_baseline_are_negative() {
        let table = monthly_costs(
            &PricingProfile::default_profile(),
            demo_pod(),
            "test",
            Scenario::ScaleToZero,
        );
        let blue_green = &table.scenarios[1];
        assert_eq!(blue_green.savings, -11.68);
        assert_eq!(blue_green.savings_percent, -200.0);
    }

    #[test]
    fn memory_is_priced_per_gib_hour() {
        // fargate-like: 0.1 vCPU × 0.04048 + 0.125 GiB × 0.004445 = 0.004048 + 0.000555625
        // = 0.004603625 $/pod-h; blue: × 730 = 3.36064… → $3.36; blue-green → $6.72.
        let profile = PricingProfile::builtin("fargate-like").unwrap();
        let table = monthly_costs(&profile, demo_pod(), "test", Scenario::BlueGreen);
        assert_eq!(table.scenarios[0].monthly_cost, 3.36);
        assert_eq!(table.scenarios[1].monthly_cost, 6.72);
    }

    #[test]
    fn an_explicit_days_per_month_changes_only_the_daily_patterns() {
        let mut profile = PricingProfile::default_profile();
        profile.days_per_month = Some(30.0);
        // peak: 730 + 4 × 2 × 30 = 970 pod-h → 11.64; scale-to-zero: 730 − 240 = 490 → 5.88
        assert_eq!(Scenario::Peak.pod_hours(&profile), 970.0);
        assert_eq!(Scenario::ScaleToZero.pod_hours(&profile), 490.0);
        let table = monthly_costs(&profile, demo_pod(), "test", Scenario::BlueGreen);
        assert_eq!(table.scenarios[0].monthly_cost, 8.76);
        assert_eq!(table.scenarios[2].monthly_cost, 11.64);
        assert_eq!(table.scenarios[3].monthly_cost, 5.88);
    }

    #[test]
    fn an_unknown_baseline_lists_the_valid_names() {
        let err = Scenario::from_name("green").unwrap_err().to_string();
        assert!(
            err.contains("blue, blue-green, peak, scale-to-zero"),
            "{err}"
        );
        assert_eq!(Scenario::from_name("peak").unwrap(), Scenario::Peak);
    }
}
