//! Pricing profiles: what a vCPU-hour and a GiB-hour cost, and the calendar the monthly
//! calculator uses. Built-in profiles are the YAML files under `cost/`, embedded at build
//! time; a user passes a built-in name or a path to their own YAML file. Called by the cost
//! and report commands; reads files, never the network.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::CostError;
use crate::results::summary::PodRequests;

/// The built-in profiles: name and YAML text. `default` first.
const BUILTIN: &[(&str, &str)] = &[
    ("default", include_str!("../../cost/default.yaml")),
    ("fargate-like", include_str!("../../cost/fargate-like.yaml")),
    (
        "autopilot-like",
        include_str!("../../cost/autopilot-like.yaml"),
    ),
    ("spot-like", include_str!("../../cost/spot-like.yaml")),
];

/// One pricing profile (`cost/*.yaml`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PricingProfile {
    /// Short name (`default`, `fargate-like`, ...).
    pub name: String,
    /// One line on what it models.
    #[serde(default)]
    pub description: String,
    /// US dollars per vCPU-hour of CPU request.
    pub price_per_vcpu_hour: f64,
    /// US dollars per GiB-hour of memory request.
    #[serde(default)]
    pub price_per_gib_hour: f64,
    /// Hours in a billing month (730 = 8760 h / 12).
    pub hours_per_month: f64,
    /// Days in a billing month; when absent, `hours_per_month / 24` so that "1 pod for
    /// 24 h every day" costs exactly the same as "1 pod always on".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub days_per_month: Option<f64>,
    /// Hours per day the peak scenario runs its peak replica count.
    pub peak_hours_per_day: f64,
    /// Hours per day the scale-to-zero scenario runs no pod.
    pub off_hours_per_day: f64,
}

impl PricingProfile {
    /// The names of the built-in profiles, `default` first.
    pub fn builtin_names() -> Vec<&'static str> {
        BUILTIN.iter().map(|(name, _)| *name).collect()
    }

    /// A built-in profile by name.
    pub fn builtin(name: &str) -> Result<PricingProfile, CostError> {
        let (_, text) =
            BUILTIN
                .iter()
                .find(|(n, _)| *n == name)
                .ok_or_else(|| CostError::UnknownPricing {
                    name: name.to_string(),
                    valid: Self::builtin_names().join(", "),
                })?;
        Self::parse(text, &format!("built-in profile {name}"))
    }

    /// The `default` profile: the original demo's assumptions.
    pub fn default_profile() -> PricingProfile {
        // The embedded default.yaml is parsed and validated by a unit test.
        Self::builtin("default").expect("the embedded default profile is valid")
    }

    /// A built-in name, or else a path to a YAML file.
    pub fn resolve(name_or_path: &str) -> Result<PricingProfile, CostError> {
        if BUILTIN.iter().any(|(n, _)| *n == name_or_path) {
            return Self::builtin(name_or_path);
        }
        let path = Path::new(name_or_path);
        if path.is_file() {
            return Self::from_file(path);
        }
        Err(CostError::UnknownPricing {
            name: name_or_path.to_string(),
            valid: Self::builtin_names().join(", "),
        })
    }

    /// Reads a profile from a YAML file.
    pub fn from_file(path: &Path) -> Result<PricingProfile, CostError> {
        let text = std::fs::read_to_string(path).map_err(|source| CostError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parses and validates profile YAML; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<PricingProfile, CostError> {
        let profile: PricingProfile =
            serde_saphyr::from_str(text).map_err(|e| CostError::Pricing {
                origin: origin.to_string(),
                message: e.to_string(),
            })?;
        profile.validate().map_err(|message| CostError::Pricing {
            origin: origin.to_string(),
            message,
        })?;
        Ok(profile)
    }

    fn validate(&self) -> Result<(), String> {
        let non_negative = [
            ("price_per_vcpu_hour", self.price_per_vcpu_hour),
            ("price_per_gib_hour", self.price_per_gib_hour),
            ("peak_hours_per_day", self.peak_hours_per_day),
            ("off_hours_per_day", self.off_hours_per_day),
        ];
        for (field, value) in non_negative {
            if !(value.is_finite() && value >= 0.0) {
                return Err(format!("{field} must be a number ≥ 0, not {value}"));
            }
        }
        if !(self.hours_per_month.is_finite() && self.hours_per_month > 0.0) {
            return Err(format!(
                "hours_per_month must be > 0, not {}",
                self.hours_per_month
            ));
        }
        if let Some(days) = self.days_per_month
            && !(days.is_finite() && days > 0.0)
        {
            return Err(format!("days_per_month must be > 0, not {days}"));
        }
        for (field, value) in [
            ("peak_hours_per_day", self.peak_hours_per_day),
            ("off_hours_per_day", self.off_hours_per_day),
        ] {
            if value > 24.0 {
                return Err(format!("{field} must be at most 24, not {value}"));
            }
            if value * self.days_per_month() > self.hours_per_month + 1e-9 {
                return Err(format!(
                    "{field} × days_per_month exceeds hours_per_month ({value} × {} > {})",
                    self.days_per_month(),
                    self.hours_per_month
                ));
            }
        }
        Ok(())
    }

    /// Days in a billing month: the explicit value, else `hours_per_month / 24`.
    pub fn days_per_month(&self) -> f64 {
        self.days_per_month.unwrap_or(self.hours_per_month / 24.0)
    }

    /// Dollars one pod with these requests costs per hour.
    pub fn pod_hour_price(&self, requests: PodRequests) -> f64 {
        let vcpu = requests.cpu_millis as f64 / 1000.0;
        let gib = requests.memory_bytes as f64 / (1u64 << 30) as f64;
        vcpu * self.price_per_vcpu_hour + gib * self.price_per_gib_hour
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_profile_parses_and_is_named_after_itself() {
        for name in PricingProfile::builtin_names() {
            let profile = PricingProfile::builtin(name).unwrap();
            assert_eq!(profile.name, name);
            assert!(
                !profile.description.is_empty(),
                "{name} needs a description"
            );
        }
    }

    #[test]
    fn the_default_profile_is_the_original_demo() {
        let p = PricingProfile::default_profile();
        assert_eq!(p.price_per_vcpu_hour, 0.12);
        assert_eq!(p.price_per_gib_hour, 0.0);
        assert_eq!(p.hours_per_month, 730.0);
        assert_eq!(p.peak_hours_per_day, 2.0);
        assert_eq!(p.off_hours_per_day, 8.0);
        assert!((p.days_per_month() - 30.416_666_666).abs() < 1e-6);
        // 100m CPU at $0.12 per vCPU-hour: 1.2 cents per pod-hour.
        let pod = PodRequests {
            cpu_millis: 100,
            memory_bytes: 128 << 20,
        };
        assert!((p.pod_hour_price(pod) - 0.012).abs() < 1e-12);
    }

    #[test]
    fn an_unknown_name_lists_the_builtin_profiles() {
        let err = PricingProfile::resolve("nope").unwrap_err().to_string();
        assert!(err.contains("default, fargate-like"), "{err}");
    }

    #[test]
    fn a_profile_file_with_bad_numbers_or_unknown_fields_is_refused() {
        let base = "name: x\nprice_per_vcpu_hour: 0.1\nhours_per_month: 730\npeak_hours_per_day: 2\noff_hours_per_day: 8\n";
        assert!(PricingProfile::parse(base, "t").is_ok());
        let negative = base.replace("0.1", "-0.1");
        let err = PricingProfile::parse(&negative, "t.yaml")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("t.yaml") && err.contains("price_per_vcpu_hour"),
            "{err}"
        );
        let typo = format!("{base}price_per_cpu_hour: 1\n");
        assert!(PricingProfile::parse(&typo, "t").is_err());
        let too_long = base.replace("off_hours_per_day: 8", "off_hours_per_day: 25");
        assert!(PricingProfile::parse(&too_long, "t").is_err());
    }

    #[test]
    fn a_profile_is_read_from_a_yaml_file_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mine.yaml");
        std::fs::write(
            &path,
            "name: mine\nprice_per_vcpu_hour: 0.05\nprice_per_gib_hour: 0.01\nhours_per_month: 720\ndays_per_month: 30\npeak_hours_per_day: 3\noff_hours_per_day: 10\n",
        )
        .unwrap();
        let p = PricingProfile::resolve(path.to_str().unwrap()).unwrap();
        assert_eq!(p.name, "mine");
        assert_eq!(p.days_per_month(), 30.0);
    }
}
