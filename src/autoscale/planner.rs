//! The predictive planner: from the demand forecast, the HPA's bounds, the capacity of one
//! pod and a cost budget, the `minReplicas` to set now — with its explanation.
//!
//! The rule, in one line: `needed = ceil(demand × (1 + headroom) / capacity per pod)`,
//! where `demand` is the larger of the forecast `look_ahead` from now and the current
//! rate (capacity raised ahead of a ramp is never taken away before the ramp has been
//! served); then `minReplicas = clamp(needed, original min, min(HPA max, --max-replicas,
//! replicas the budget pays for))`. It never goes below the HPA's original minReplicas (the
//! user's floor) nor above its maxReplicas (never fighting the HPA), and says "budget
//! binds" when the cost cap is what held it back. Lowering minReplicas is safe: the HPA's
//! scale-down stabilisation window (300 s by default) keeps pods until demand has really
//! gone.
//!
//! Pure and clock-free; called by the autoscale controller once per tick.

use serde::Serialize;

use super::forecast::Accuracy;

/// Invalid planner settings.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PlanError {
    #[error("headroom must be between 0 % and 1000 %, got {0} %")]
    Headroom(f64),
    #[error(
        "capacity per pod must be a positive request rate (e.g. --capacity 25 for 25 req/s), \
         got {0}"
    )]
    Capacity(f64),
    #[error("--budget must be a positive $/hour figure (e.g. 0.10/h), got {0}")]
    Budget(f64),
    #[error("--max-replicas must be at least 1, got {0}")]
    MaxReplicas(i32),
}

/// The planner's knobs (resolved from the command line).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Knobs {
    /// Extra capacity over the forecast, as a fraction (0.2 = 20 %).
    pub headroom: f64,
    /// How far ahead the forecast looks, in seconds.
    pub look_ahead_s: f64,
    /// Cap on minReplicas of resil's own (the HPA's maxReplicas always applies too).
    pub max_replicas: Option<i32>,
    /// Dollars per hour the autoscaled pods may cost at most.
    pub budget_per_hour: Option<f64>,
    /// Dollars one pod costs per hour (pricing profile × the pod's requests).
    pub pod_hour_price: f64,
}

impl Knobs {
    /// Checks the knobs.
    pub fn validate(&self) -> Result<(), PlanError> {
        if !(0.0..=10.0).contains(&self.headroom) {
            return Err(PlanError::Headroom(self.headroom * 100.0));
        }
        if let Some(b) = self.budget_per_hour
            && !(b.is_finite() && b > 0.0)
        {
            return Err(PlanError::Budget(b));
        }
        if let Some(m) = self.max_replicas
            && m < 1
        {
            return Err(PlanError::MaxReplicas(m));
        }
        Ok(())
    }
}

/// What the controller observed this tick.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Observed {
    /// The demand's unit (`req/s`, or `mCPU` when read from the metrics API).
    pub unit: String,
    /// Demand now (the last sample), in `unit`.
    pub rate: f64,
    /// The forecast `look_ahead` from now, when the model has one.
    pub forecast: Option<f64>,
    /// Which model produced it.
    pub model: String,
    /// The model's error over its last window.
    pub accuracy: Option<Accuracy>,
    /// Requests/s one pod serves at the HPA's target utilisation.
    pub capacity_per_pod: f64,
    /// Replicas running now.
    pub current_replicas: i32,
    /// minReplicas as it is now on the HPA.
    pub current_min: i32,
    /// minReplicas before resil touched it (journaled; restored on exit).
    pub original_min: i32,
    /// The HPA's maxReplicas.
    pub hpa_max: i32,
}

/// Requests/s one pod serves at the target CPU utilisation, measured from what the pods
/// do now: `rate / replicas × target / utilisation`. `None` when there is too little load
/// to measure (no replicas, no rate, or utilisation under 5 %).
pub fn measured_capacity(
    rate: f64,
    replicas: i32,
    cpu_utilization: f64,
    target_utilization: f64,
) -> Option<f64> {
    if replicas < 1 || rate <= 0.0 || cpu_utilization < 5.0 || target_utilization <= 0.0 {
        return None;
    }
    Some(rate / replicas as f64 * target_utilization / cpu_utilization)
}

/// The planner's answer for one tick.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plan {
    /// minReplicas to set.
    pub min_replicas: i32,
    /// Replicas the demand needs, before any cap.
    pub needed: i32,
    /// The demand the plan is sized for (req/s).
    pub demand: f64,
    /// The cost cap held minReplicas below what the demand needs.
    pub budget_binds: bool,
    /// The replica count the budget pays for, when there is a budget.
    pub budget_replicas: Option<i32>,
    /// Dollars per hour at `min_replicas`.
    pub cost_per_hour: f64,
    /// The rule applied, with the figures in it.
    pub rule: String,
    /// What to do: `keep minReplicas at N` or `raise/lower minReplicas A → B`.
    pub action: String,
}

impl Plan {
    /// Whether the HPA needs patching.
    pub fn changes(&self, observed: &Observed) -> bool {
        self.min_replicas != observed.current_min
    }
}

/// Plans one tick.
pub fn plan(knobs: &Knobs, observed: &Observed) -> Plan {
    let demand = match observed.forecast {
        Some(f) if f.is_finite() => f.max(observed.rate).max(0.0),
        _ => observed.rate.max(0.0),
    };
    let sized = demand * (1.0 + knobs.headroom);
    let needed = if observed.capacity_per_pod > 0.0 {
        // Bounded before the cast: a runaway forecast must not wrap around.
        (sized / observed.capacity_per_pod).ceil().min(1_000_000.0) as i32
    } else {
        observed.current_replicas
    };
    let floor = observed.original_min.max(1);
    let mut ceiling = observed.hpa_max.max(floor);
    if let Some(m) = knobs.max_replicas {
        ceiling = ceiling.min(m.max(floor));
    }
    let budget_replicas = knobs.budget_per_hour.map(|budget| {
        if knobs.pod_hour_price > 0.0 {
            (budget / knobs.pod_hour_price).floor().min(1_000_000.0) as i32
        } else {
            i32::MAX
        }
    });
    let limit = match budget_replicas {
        Some(b) => ceiling.min(b.max(floor)),
        None => ceiling,
    };
    let min_replicas = needed.clamp(floor, limit);
    let budget_binds = needed > min_replicas && limit < ceiling;
    let cost_per_hour = min_replicas as f64 * knobs.pod_hour_price;

    let unit = &observed.unit;
    let source = match observed.forecast {
        Some(f) if f >= observed.rate => format!(
            "forecast {f:.1} {unit} in {}",
            humantime::format_duration(std::time::Duration::from_secs(knobs.look_ahead_s as u64))
        ),
        Some(f) => format!(
            "current {:.1} {unit} (forecast {f:.1} is lower)",
            observed.rate
        ),
        None => format!("current {:.1} {unit} (no forecast yet)", observed.rate),
    };
    let mut rule = format!(
        "{source} × (1 + {:.0} % headroom) / {:.1} {unit} per pod → {needed} pod(s); \
         floor {floor} (HPA's own min), ceiling {ceiling}",
        knobs.headroom * 100.0,
        observed.capacity_per_pod,
    );
    if let (Some(budget), Some(b)) = (knobs.budget_per_hour, budget_replicas) {
        rule.push_str(&format!(
            "; budget {}/h at {}/pod-hour pays for {b}",
            crate::cost::usd(budget),
            crate::cost::usd(knobs.pod_hour_price)
        ));
    }
    if budget_binds {
        rule.push_str(&format!(
            " — budget binds: {needed} wanted, {min_replicas} allowed"
        ));
    }
    let action = match min_replicas.cmp(&observed.current_min) {
        std::cmp::Ordering::Equal => format!("keep minReplicas at {min_replicas}"),
        std::cmp::Ordering::Greater => format!(
            "raise minReplicas {} → {min_replicas}",
            observed.current_min
        ),
        std::cmp::Ordering::Less => format!(
            "lower minReplicas {} → {min_replicas}",
            observed.current_min
        ),
    };
    Plan {
        min_replicas,
        needed,
        demand,
        budget_binds,
        budget_replicas,
        cost_per_hour,
        rule,
        action,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn knobs() -> Knobs {
        Knobs {
            headroom: 0.2,
            look_ahead_s: 120.0,
            max_replicas: None,
            budget_per_hour: None,
            pod_hour_price: 0.02,
        }
    }

    fn observed(rate: f64, forecast: Option<f64>) -> Observed {
        Observed {
            unit: "req/s".to_string(),
            rate,
            forecast,
            model: "holt".to_string(),
            accuracy: None,
            capacity_per_pod: 25.0,
            current_replicas: 2,
            current_min: 1,
            original_min: 1,
            hpa_max: 10,
        }
    }

    #[test]
    fn a_rising_forecast_raises_min_replicas_ahead_of_demand() {
        // 150 req/s expected × 1.2 / 25 per pod = 7.2 → 8 pods.
        let plan = plan(&knobs(), &observed(50.0, Some(150.0)));
        assert_eq!(plan.needed, 8);
        assert_eq!(plan.min_replicas, 8);
        assert!(!plan.budget_binds);
        assert_eq!(plan.action, "raise minReplicas 1 → 8");
        assert!(
            plan.rule.contains("forecast 150.0 req/s in 2m"),
            "{}",
            plan.rule
        );
    }

    #[test]
    fn a_falling_forecast_still_covers_the_current_rate() {
        let plan = plan(&knobs(), &observed(100.0, Some(20.0)));
        // 100 × 1.2 / 25 = 4.8 → 5.
        assert_eq!(plan.min_replicas, 5);
        assert!(
            plan.rule.contains("forecast 20.0 is lower"),
            "{}",
            plan.rule
        );
    }

    #[test]
    fn min_replicas_never_goes_below_the_hpa_original() {
        let mut o = observed(0.0, Some(0.0));
        o.original_min = 3;
        o.current_min = 6;
        let plan = plan(&knobs(), &o);
        assert_eq!(plan.min_replicas, 3);
        assert_eq!(plan.action, "lower minReplicas 6 → 3");
    }

    #[test]
    fn min_replicas_never_exceeds_the_hpa_max_nor_max_replicas() {
        let plan_hpa = plan(&knobs(), &observed(50.0, Some(10_000.0)));
        assert_eq!(plan_hpa.min_replicas, 10);
        assert!(!plan_hpa.budget_binds, "the HPA's max is not the budget");
        let capped = Knobs {
            max_replicas: Some(4),
            ..knobs()
        };
        assert_eq!(
            plan(&capped, &observed(50.0, Some(10_000.0))).min_replicas,
            4
        );
    }

    #[test]
    fn the_budget_caps_what_may_be_added_and_says_it_binds() {
        // $0.10/h at $0.02/pod-hour pays for 5 pods; the forecast wants 8.
        let budget = Knobs {
            budget_per_hour: Some(0.10),
            ..knobs()
        };
        let plan = plan(&budget, &observed(50.0, Some(150.0)));
        assert_eq!(plan.needed, 8);
        assert_eq!(plan.min_replicas, 5);
        assert_eq!(plan.budget_replicas, Some(5));
        assert!(plan.budget_binds);
        assert!(
            plan.rule.contains("budget binds: 8 wanted, 5 allowed"),
            "{}",
            plan.rule
        );
        assert!((plan.cost_per_hour - 0.10).abs() < 1e-12);
    }

    #[test]
    fn a_budget_below_the_original_min_keeps_the_original_min() {
        let budget = Knobs {
            budget_per_hour: Some(0.01),
            ..knobs()
        };
        let mut o = observed(50.0, Some(150.0));
        o.original_min = 2;
        let plan = plan(&budget, &o);
        assert_eq!(plan.min_replicas, 2);
        assert!(plan.budget_binds);
    }

    #[test]
    fn an_unchanged_plan_keeps_and_needs_no_patch() {
        let mut o = observed(40.0, None);
        o.current_min = 2;
        // 40 × 1.2 / 25 = 1.92 → 2.
        let plan = plan(&knobs(), &o);
        assert_eq!(plan.action, "keep minReplicas at 2");
        assert!(!plan.changes(&o));
        assert!(plan.rule.contains("no forecast yet"));
    }

    #[test]
    fn capacity_is_measured_from_rate_replicas_and_utilisation() {
        // 3 pods serving 90 req/s at 60 % CPU, target 50 %: 30 × 50/60 = 25 req/s per pod.
        let c = measured_capacity(90.0, 3, 60.0, 50.0).unwrap();
        assert!((c - 25.0).abs() < 1e-9);
        assert_eq!(measured_capacity(90.0, 3, 1.0, 50.0), None);
        assert_eq!(measured_capacity(0.0, 3, 60.0, 50.0), None);
    }

    /// Feeds a ramp tick by tick through Holt and the planner, as the controller does.
    fn covered_ticks(noise: &[f64]) -> (usize, usize, usize) {
        use crate::autoscale::forecast::{Forecaster, Holt, Smoothing};
        let demand = |t: usize| 20.0 + 3.0 * t as f64;
        let look_ahead = 20;
        let knobs = Knobs {
            look_ahead_s: look_ahead as f64,
            ..knobs()
        };
        let mut model = Holt::new(Smoothing::default()).unwrap();
        let (mut ticks, mut predictive_ok, mut reactive_ok) = (0, 0, 0);
        for t in 0..60 {
            let seen = demand(t) + noise[t % noise.len()];
            model.observe(t as f64, seen);
            if t < 10 {
                continue;
            }
            let mut o = observed(seen, model.forecast(look_ahead as f64));
            o.capacity_per_pod = 10.0;
            o.hpa_max = 100;
            let predictive = plan(&knobs, &o).min_replicas;
            o.forecast = None;
            let reactive = plan(&knobs, &o).min_replicas;
            // Pods asked for now are Ready `look_ahead` later: do they cover that demand?
            let later = demand(t + look_ahead);
            ticks += 1;
            predictive_ok += usize::from(f64::from(predictive) * 10.0 >= later);
            reactive_ok += usize::from(f64::from(reactive) * 10.0 >= later);
        }
        (ticks, predictive_ok, reactive_ok)
    }

    #[test]
    fn on_a_ramp_predictive_capacity_is_ready_when_demand_arrives_and_reactive_is_not() {
        let (ticks, predictive_ok, reactive_ok) = covered_ticks(&[0.0]);
        assert_eq!(predictive_ok, ticks, "every tick covered look-ahead demand");
        assert!(
            reactive_ok < ticks / 2,
            "reactive covered {reactive_ok} of {ticks}"
        );
        // With ±4 req/s of noise the 20 % headroom still absorbs the forecast error.
        let (ticks, predictive_ok, _) = covered_ticks(&[4.0, -4.0, 2.0, -2.0]);
        assert_eq!(predictive_ok, ticks);
    }

    #[test]
    fn bad_knobs_are_refused() {
        let bad = Knobs {
            budget_per_hour: Some(0.0),
            ..knobs()
        };
        assert!(bad.validate().unwrap_err().to_string().contains("0.10/h"));
        let bad = Knobs {
            max_replicas: Some(0),
            ..knobs()
        };
        assert!(bad.validate().is_err());
        assert!(knobs().validate().is_ok());
    }
}
