//! The gateway's metrics: requests and upstream failures per region (one atomic counter
//! per region, looked up by index on the proxy path: no map, no lock), each region's
//! health-check result, which region is active, and the policy's decisions. Fed by
//! `src/gateway/mod.rs`.

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// A `region` label.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RegionLabel {
    pub region: String,
}

/// A `action` label (`failover`, `failback`, `alarm`).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ActionLabel {
    pub action: String,
}

/// The gateway's series; regions by their index in `--region` order.
#[derive(Debug)]
pub struct GatewayMetrics {
    requests: Vec<Counter>,
    upstream_errors: Vec<Counter>,
    up: Vec<Gauge>,
    active: Vec<Gauge>,
    decisions: Family<ActionLabel, Counter>,
}

impl GatewayMetrics {
    /// Registers the series of `regions` (names, in priority order) in `registry`.
    pub fn register(registry: &mut Registry, regions: &[String]) -> Arc<GatewayMetrics> {
        let requests = Family::<RegionLabel, Counter>::default();
        let errors = Family::<RegionLabel, Counter>::default();
        let up = Family::<RegionLabel, Gauge>::default();
        let active = Family::<RegionLabel, Gauge>::default();
        let m = Arc::new(GatewayMetrics {
            requests: handles(&requests, regions),
            upstream_errors: handles(&errors, regions),
            up: handles(&up, regions),
            active: handles(&active, regions),
            decisions: Family::default(),
        });
        registry.register(
            "resil_gateway_requests",
            "Requests the gateway forwarded, by region",
            requests,
        );
        registry.register(
            "resil_gateway_upstream_errors",
            "Requests a region did not answer (the gateway answered 502)",
            errors,
        );
        registry.register(
            "resil_gateway_region_up",
            "1 when the region's last /readyz check passed",
            up,
        );
        registry.register(
            "resil_gateway_active",
            "1 for a region traffic goes to (active/passive: one; by weight: those serving)",
            active,
        );
        registry.register(
            "resil_gateway_decisions",
            "Policy decisions by action (failover, failback, eject, restore, alarm)",
            m.decisions.clone(),
        );
        m.set_serving(&[1]);
        m
    }

    /// A request forwarded to region `i`; `answered` false when it could not be.
    pub fn forwarded(&self, i: usize, answered: bool) {
        if let Some(c) = self.requests.get(i) {
            c.inc();
        }
        if !answered && let Some(c) = self.upstream_errors.get(i) {
            c.inc();
        }
    }

    /// Region `i`'s health check passed or failed.
    pub fn checked(&self, i: usize, ok: bool) {
        if let Some(g) = self.up.get(i) {
            g.set(i64::from(ok));
        }
    }

    /// The policy decided `action`.
    pub fn decided(&self, action: &str) {
        let label = ActionLabel {
            action: action.to_string(),
        };
        self.decisions.get_or_create(&label).inc();
    }

    /// Traffic goes by `shares` now (a region with a share above 0 is active).
    pub fn set_serving(&self, shares: &[u32]) {
        for (g, share) in self.active.iter().zip(shares) {
            g.set(i64::from(*share > 0));
        }
    }
}

/// Each region's series of `family`. A metric is a shared handle: the clone kept per
/// index counts into the family's series, so the proxy path increments an atomic it
/// already holds.
fn handles<M: Clone + Default>(family: &Family<RegionLabel, M>, regions: &[String]) -> Vec<M> {
    regions
        .iter()
        .map(|name| {
            let label = RegionLabel {
                region: name.clone(),
            };
            family.get_or_create(&label).clone()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use resil_common::exposition::Format;

    use super::*;
    use crate::metrics::Metrics;

    #[test]
    fn per_region_handles_count_into_the_exported_series() {
        let mut metrics = Metrics::new();
        let g = GatewayMetrics::register(metrics.registry(), &["a".into(), "b".into()]);
        g.forwarded(0, true);
        g.forwarded(0, false);
        g.checked(0, false);
        g.decided("failover");
        g.set_serving(&[0, 1]);
        let text = metrics.encode(Format::Text);
        for line in [
            "resil_gateway_requests_total{region=\"a\"} 2\n",
            "resil_gateway_upstream_errors_total{region=\"a\"} 1\n",
            "resil_gateway_region_up{region=\"a\"} 0\n",
            "resil_gateway_active{region=\"b\"} 1\n",
            "resil_gateway_active{region=\"a\"} 0\n",
            "resil_gateway_decisions_total{action=\"failover\"} 1\n",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
    }
}
