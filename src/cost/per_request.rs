//! Cost per request of a recorded run (DESIGN.md): for each colour,
//! pod-seconds × (CPU request × price per vCPU-hour + memory request × price per GiB-hour)
//! ÷ 3600 ÷ successful requests; the total divides the summed cost by all successes.
//! Pure; called by the report.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::pricing::PricingProfile;
use crate::results::summary::PodRequests;

/// Cost figures of one colour, or of the whole run (`color: "total"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestCost {
    pub color: String,
    pub pod_seconds: f64,
    /// Dollars the recorded pod-seconds cost (unrounded).
    pub cost: f64,
    pub successful_requests: u64,
    /// Dollars per successful request; `None` when no request succeeded.
    pub cost_per_request: Option<f64>,
    /// Dollars per million successful requests; `None` when no request succeeded.
    pub cost_per_1m: Option<f64>,
}

/// Per-colour costs (sorted by colour) and the total.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunCost {
    pub by_color: Vec<RequestCost>,
    pub total: RequestCost,
}

/// Computes cost per request. Colours with pod-seconds but no recorded requests are
/// costed (their pods were paid for) with no per-request figure; a colour without recorded
/// pod requests is priced at `fallback`.
pub fn cost_per_request(
    profile: &PricingProfile,
    pod_seconds: &BTreeMap<String, f64>,
    pod_requests: &BTreeMap<String, PodRequests>,
    fallback: PodRequests,
    successes: &BTreeMap<String, u64>,
) -> RunCost {
    // Colours that only ever failed (`unknown`: no pod answered) cost nothing and serve
    // nothing; listing them would only add an empty row.
    let served = successes.iter().filter(|(_, n)| **n > 0).map(|(c, _)| c);
    let mut colors: Vec<&String> = pod_seconds.keys().chain(served).collect();
    colors.sort();
    colors.dedup();
    let by_color: Vec<RequestCost> = colors
        .into_iter()
        .map(|color| {
            let seconds = pod_seconds.get(color).copied().unwrap_or(0.0);
            let requests = pod_requests.get(color).copied().unwrap_or(fallback);
            let cost = seconds / 3600.0 * profile.pod_hour_price(requests);
            figures(
                color,
                seconds,
                cost,
                successes.get(color).copied().unwrap_or(0),
            )
        })
        .collect();
    let total = figures(
        "total",
        by_color.iter().map(|c| c.pod_seconds).sum(),
        by_color.iter().map(|c| c.cost).sum(),
        by_color.iter().map(|c| c.successful_requests).sum(),
    );
    RunCost { by_color, total }
}

fn figures(color: &str, pod_seconds: f64, cost: f64, successes: u64) -> RequestCost {
    let per_request = (successes > 0).then(|| cost / successes as f64);
    RequestCost {
        color: color.to_string(),
        pod_seconds,
        cost,
        successful_requests: successes,
        cost_per_request: per_request,
        cost_per_1m: per_request.map(|c| c * 1e6),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cost_per_request_follows_the_design_formula() {
        let profile = PricingProfile::default_profile();
        let pod = PodRequests {
            cpu_millis: 100,
            memory_bytes: 128 << 20,
        };
        // blue: 2 pods × 300 s = 600 pod-s = 1/6 pod-h × $0.012 = $0.002 over 40 000 ok
        // requests = $5e-8 per request = $0.05 per 1M.
        // green: 300 pod-s = $0.001 over 10 000 = $1e-7 = $0.10 per 1M.
        // total: $0.003 / 50 000 = $6e-8 = $0.06 per 1M.
        let seconds = BTreeMap::from([("blue".to_string(), 600.0), ("green".to_string(), 300.0)]);
        let ok = BTreeMap::from([("blue".to_string(), 40_000), ("green".to_string(), 10_000)]);
        let cost = cost_per_request(&profile, &seconds, &BTreeMap::new(), pod, &ok);
        let close = |a: Option<f64>, b: f64| (a.unwrap() - b).abs() < 1e-12;
        assert!(close(cost.by_color[0].cost_per_1m, 0.05));
        assert!(close(cost.by_color[1].cost_per_1m, 0.10));
        assert!(close(cost.total.cost_per_1m, 0.06));
        assert!((cost.total.cost - 0.003).abs() < 1e-12);
    }

    #[test]
    fn recorded_pod_requests_win_over_the_fallback_and_idle_colours_have_no_per_request_cost() {
        let profile = PricingProfile::default_profile();
        let small = PodRequests {
            cpu_millis: 100,
            memory_bytes: 0,
        };
        let big = PodRequests {
            cpu_millis: 1000,
            memory_bytes: 0,
        };
        let seconds = BTreeMap::from([("blue".to_string(), 3600.0), ("green".to_string(), 3600.0)]);
        let recorded = BTreeMap::from([("green".to_string(), big)]);
        let ok = BTreeMap::from([("blue".to_string(), 1000)]);
        let cost = cost_per_request(&profile, &seconds, &recorded, small, &ok);
        assert!((cost.by_color[0].cost - 0.012).abs() < 1e-12);
        assert!((cost.by_color[1].cost - 0.12).abs() < 1e-12);
        assert_eq!(cost.by_color[1].cost_per_request, None);
        assert!((cost.total.cost_per_request.unwrap() - 0.132 / 1000.0).abs() < 1e-15);
    }
}
