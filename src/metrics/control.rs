//! The control loops' metrics: the watcher (ready and desired replicas per colour, the
//! selected colour, the HPAs it sees, failover and failback counts with the last
//! durations), the predictive autoscaler (its HPA's replicas and minReplicas) and a run's
//! chaos (faults injected, reverted, active). Fed from the updates the command layers
//! already receive (`watch::Update`, `autoscale::Report`, `run::runner::Progress`), so no
//! engine knows about metrics. Gauges and counters are atomics; families are keyed by a
//! colour or an action, a handful of series.

use std::collections::BTreeSet;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};

use crate::autoscale::Report as AutoscaleReport;
use crate::run::runner::Progress;
use crate::watch::controller::Update;

/// A `color` label.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ColorLabel {
    pub color: String,
}

fn color(c: &str) -> ColorLabel {
    ColorLabel {
        color: c.to_string(),
    }
}

type F64Gauge = Gauge<f64, AtomicU64>;

/// The watcher's and the autoscaler's metrics.
#[derive(Debug, Default)]
pub struct ControlMetrics {
    ready: Family<ColorLabel, Gauge>,
    desired: Family<ColorLabel, Gauge>,
    selected: Family<ColorLabel, Gauge>,
    hpa_current: Family<ColorLabel, Gauge>,
    hpa_desired: Family<ColorLabel, Gauge>,
    failovers: Counter,
    failbacks: Counter,
    last_failover: F64Gauge,
    last_failback: F64Gauge,
    autoscale_current: Gauge,
    autoscale_min: Gauge,
    autoscale_needed: Gauge,
    autoscale_patches: Counter,
}

impl ControlMetrics {
    /// Registers the watcher's and the autoscaler's series in `registry`.
    pub fn register(registry: &mut Registry) -> Arc<ControlMetrics> {
        let m = Arc::new(ControlMetrics::default());
        let r = registry;
        r.register(
            "resil_watch_ready_replicas",
            "Ready endpoints of each colour",
            m.ready.clone(),
        );
        r.register(
            "resil_watch_desired_replicas",
            "Pods each colour's Deployment asks for",
            m.desired.clone(),
        );
        r.register(
            "resil_watch_selected",
            "1 for the colour the Service selects",
            m.selected.clone(),
        );
        r.register(
            "resil_watch_hpa_current_replicas",
            "Current replicas of each colour's HPA",
            m.hpa_current.clone(),
        );
        r.register(
            "resil_watch_hpa_desired_replicas",
            "Desired replicas of each colour's HPA",
            m.hpa_desired.clone(),
        );
        r.register(
            "resil_watch_failovers",
            "Completed failovers (away from the primary colour)",
            m.failovers.clone(),
        );
        r.register(
            "resil_watch_failbacks",
            "Completed failbacks (back to the primary colour)",
            m.failbacks.clone(),
        );
        r.register_with_unit(
            "resil_watch_last_failover_duration",
            "How long the last failover took, from the fault to the switched Service",
            Unit::Seconds,
            m.last_failover.clone(),
        );
        r.register_with_unit(
            "resil_watch_last_failback_duration",
            "How long the last failback took",
            Unit::Seconds,
            m.last_failback.clone(),
        );
        r.register(
            "resil_autoscale_current_replicas",
            "Replicas of the autoscaled HPA's target now",
            m.autoscale_current.clone(),
        );
        r.register(
            "resil_autoscale_min_replicas",
            "The HPA's minReplicas as the autoscaler last set or saw it",
            m.autoscale_min.clone(),
        );
        r.register(
            "resil_autoscale_needed_replicas",
            "Replicas the forecast demand needs, before caps",
            m.autoscale_needed.clone(),
        );
        r.register(
            "resil_autoscale_patches",
            "Times the autoscaler patched the HPA's minReplicas",
            m.autoscale_patches.clone(),
        );
        m
    }

    /// A watcher update.
    pub fn watch(&self, update: &Update) {
        match update {
            Update::Snapshot(s) => {
                for (c, n) in s.ready {
                    self.ready
                        .get_or_create(&color(c.as_str()))
                        .set(i64::from(n));
                }
                for (c, n) in s.desired {
                    self.desired
                        .get_or_create(&color(c.as_str()))
                        .set(i64::from(n));
                }
                for (c, _) in s.ready {
                    let on = s.selected == Some(c);
                    self.selected
                        .get_or_create(&color(c.as_str()))
                        .set(i64::from(on));
                }
                for (c, current, desired, _) in &s.hpas {
                    let label = color(c.as_str());
                    self.hpa_current
                        .get_or_create(&label)
                        .set(i64::from(*current));
                    self.hpa_desired
                        .get_or_create(&label)
                        .set(i64::from(*desired));
                }
            }
            Update::Failover(f) => {
                let seconds = f.duration_ms as f64 / 1000.0;
                if f.direction == "failback" {
                    self.failbacks.inc();
                    self.last_failback.set(seconds);
                } else {
                    self.failovers.inc();
                    self.last_failover.set(seconds);
                }
            }
            Update::Decision { .. } | Update::Warning(_) => {}
        }
    }

    /// An autoscaler round.
    pub fn autoscale(&self, report: &AutoscaleReport) {
        let AutoscaleReport::Tick(tick) = report else {
            return;
        };
        if let Some(o) = &tick.observed {
            self.autoscale_current.set(i64::from(o.current_replicas));
            self.autoscale_min.set(i64::from(o.current_min));
        }
        if let Some(plan) = &tick.plan {
            self.autoscale_needed.set(i64::from(plan.needed));
            if tick.patched {
                self.autoscale_min.set(i64::from(plan.min_replicas));
                self.autoscale_patches.inc();
            }
        }
    }
}

/// How a fault was reverted: `timed` (its duration ran out) or `teardown`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: String,
}

/// A run's chaos: faults injected and reverted, and those open now.
#[derive(Debug, Default)]
pub struct ChaosMetrics {
    injected: Counter,
    reverted: Family<ReasonLabel, Counter>,
    active: Gauge,
    /// Journal ids of the faults still open.
    open: Mutex<BTreeSet<String>>,
}

impl ChaosMetrics {
    /// Registers the chaos series in `registry`.
    pub fn register(registry: &mut Registry) -> Arc<ChaosMetrics> {
        let m = Arc::new(ChaosMetrics::default());
        registry.register(
            "resil_chaos_faults_injected",
            "Faults a run's steps injected",
            m.injected.clone(),
        );
        registry.register(
            "resil_chaos_faults_reverted",
            "Faults reverted: when their duration ran out (timed) or at teardown",
            m.reverted.clone(),
        );
        registry.register(
            "resil_chaos_faults_active",
            "Faults injected and not yet reverted (instant faults such as a pod kill are \
             never active)",
            m.active.clone(),
        );
        m
    }

    fn set_open(&self, change: impl FnOnce(&mut BTreeSet<String>)) {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        change(&mut open);
        self.active.set(open.len() as i64);
    }
}

/// Everything `resil run` exports beside the load's figures.
#[derive(Debug, Clone)]
pub struct RunMetrics {
    pub control: Arc<ControlMetrics>,
    pub chaos: Arc<ChaosMetrics>,
}

impl RunMetrics {
    /// Registers the watcher's, autoscaler's and chaos series in `registry`.
    pub fn register(registry: &mut Registry) -> RunMetrics {
        RunMetrics {
            control: ControlMetrics::register(registry),
            chaos: ChaosMetrics::register(registry),
        }
    }

    /// One event of a run's progress.
    pub fn progress(&self, progress: &Progress) {
        match progress {
            Progress::Watch(update) => self.control.watch(update),
            Progress::Autoscale(report) => self.control.autoscale(report),
            Progress::Injected { id, open, .. } => {
                self.chaos.injected.inc();
                if *open {
                    self.chaos.set_open(|o| {
                        o.insert(id.clone());
                    });
                }
            }
            Progress::TimedReverted { id } => self.reverted("timed", id),
            Progress::Reverted { id, .. } => self.reverted("teardown", id),
            _ => {}
        }
    }

    fn reverted(&self, how: &str, id: &str) {
        let label = ReasonLabel {
            reason: how.to_string(),
        };
        self.chaos.reverted.get_or_create(&label).inc();
        self.chaos.set_open(|o| {
            o.remove(id);
        });
    }
}

#[cfg(test)]
mod tests {
    use resil_common::exposition::Format;

    use super::*;
    use crate::domain::Color;
    use crate::metrics::Metrics;
    use crate::results::summary::Failover;
    use crate::watch::controller::Snapshot;

    fn failover(direction: &str, ms: u64) -> Update {
        let now = chrono::Utc::now();
        Update::Failover(Failover {
            from: "blue".into(),
            to: "green".into(),
            started_at: now,
            completed_at: now,
            duration_ms: ms,
            standby_prepared: false,
            prepare_ms: None,
            direction: direction.into(),
        })
    }

    #[test]
    fn watcher_updates_become_replica_gauges_and_failover_counters() {
        let mut metrics = Metrics::new();
        let run = RunMetrics::register(metrics.registry());
        run.progress(&Progress::Watch(Update::Snapshot(Snapshot {
            selected: Some(Color::Green),
            ready: [(Color::Blue, 0), (Color::Green, 3)],
            desired: [(Color::Blue, 3), (Color::Green, 3)],
            serving: 3,
            hpas: vec![(Color::Green, 3, 5, Some(80))],
            last_failover: None,
        })));
        run.progress(&Progress::Watch(failover("failover", 1250)));
        run.progress(&Progress::Watch(failover("failback", 400)));
        run.progress(&Progress::Injected {
            step: 1,
            detail: "outage blue".into(),
            id: "c-1".into(),
            open: true,
        });
        let text = metrics.encode(Format::Text);
        for line in [
            "resil_watch_ready_replicas{color=\"green\"} 3\n",
            "resil_watch_selected{color=\"green\"} 1\n",
            "resil_watch_selected{color=\"blue\"} 0\n",
            "resil_watch_hpa_desired_replicas{color=\"green\"} 5\n",
            "resil_watch_failovers_total 1\n",
            "resil_watch_failbacks_total 1\n",
            "resil_watch_last_failover_duration_seconds 1.25\n",
            "resil_chaos_faults_active 1\n",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
        run.progress(&Progress::TimedReverted { id: "c-1".into() });
        let text = metrics.encode(Format::Text);
        assert!(text.contains("resil_chaos_faults_active 0\n"), "{text}");
        assert!(
            text.contains("resil_chaos_faults_reverted_total{reason=\"timed\"} 1\n"),
            "{text}"
        );
    }
}
