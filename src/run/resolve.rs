//! From one scenario file to the runs it makes: each variant's sections put in place of
//! the scenario's ([`Scenario::runs`]), and every duration of the experiment multiplied by
//! `--time-scale` ([`Scenario::scaled`]). Pure; called by `run::command` and by the
//! scenario's own validation.

use std::time::Duration;

use super::scenario::{Scenario, Variant};

impl Scenario {
    /// The runs this scenario makes: itself, or one scenario per variant.
    pub fn runs(&self) -> Vec<Scenario> {
        if self.variants.is_empty() {
            return vec![self.clone()];
        }
        self.variants.iter().map(|v| self.variant(v)).collect()
    }

    /// This scenario with `variant`'s sections in place of its own.
    pub fn variant(&self, variant: &Variant) -> Scenario {
        let mut s = self.clone();
        s.name = format!("{}-{}", self.name, variant.name);
        if !variant.description.is_empty() {
            s.description = variant.description.clone();
        }
        if let Some(d) = &variant.deploy {
            s.deploy = d.clone();
        }
        if let Some(w) = &variant.watch {
            s.watch = w.clone();
        }
        if let Some(a) = &variant.autoscale {
            s.autoscale = Some(a.clone());
        }
        if let Some(slos) = &variant.slos {
            s.slos = slos.clone();
        }
        if let Some(r) = &variant.replication {
            s.replication = Some(r.clone());
        }
        if let Some(g) = &variant.gateway {
            s.gateway = Some(g.clone());
        }
        s.variants.clear();
        s
    }

    /// Every duration of the experiment times `factor` (`--time-scale`): the load and its
    /// ramp stages, step offsets and fault durations, a rollout's analysis interval (1 s
    /// at least) and canary pause, the watcher's stable window, the autoscaler's clock,
    /// the gateway's fail-back window and the window SLOs. Left alone: what the system
    /// under test decides its own pace of (request timeout, `wait-for` and steady-state
    /// timeouts, the gateway's health checks, the replication lag), and the SLO thresholds.
    pub fn scaled(&self, factor: f64) -> Result<Scenario, String> {
        if !(factor.is_finite() && factor > 0.0 && factor <= 10.0) {
            return Err(format!(
                "--time-scale {factor}: use a factor above 0 and at most 10 (e.g. 0.25)"
            ));
        }
        let scale = |d: Duration| d.mul_f64(factor);
        let opt = |d: Option<Duration>| d.map(scale);
        let mut s = self.clone();
        s.load.duration = opt(s.load.duration);
        if let Some(ramp) = &s.load.ramp {
            s.load.ramp = Some(scale_ramp(ramp, factor)?);
        }
        for step in &mut s.steps {
            step.at = scale(step.at);
            step.duration = opt(step.duration);
            if let Some(r) = &mut step.rollout {
                // The load reports once a second: an interval stays at least that long.
                r.interval = scale(r.interval).max(Duration::from_secs(1));
                r.pause = scale(r.pause);
            }
        }
        s.watch.stable_for = scale(s.watch.stable_for);
        if let Some(g) = &mut s.gateway {
            // Like the watcher's stable window; the health checks and the replication lag
            // are the system's own pace and stay.
            g.failback_after = scale(g.failback_after);
        }
        s.watch.eject_window = scale(s.watch.eject_window);
        if let Some(a) = &mut s.autoscale {
            a.look_ahead = opt(a.look_ahead);
            a.period = opt(a.period);
            a.interval = opt(a.interval);
            a.sample_step = opt(a.sample_step);
        }
        for w in &mut s.window_slos {
            w.from = scale(w.from);
            w.to = opt(w.to);
        }
        Ok(s)
    }
}

/// Scales the durations of ramp stages `10s:100,30s:1000`.
fn scale_ramp(ramp: &str, factor: f64) -> Result<String, String> {
    let stages = crate::load::plan::parse_ramp(ramp).map_err(|e| format!("load.ramp: {e}"))?;
    Ok(stages
        .iter()
        .map(|s| {
            // Whole milliseconds keep the stage readable and never zero.
            let ms = (s.duration.as_secs_f64() * factor * 1000.0)
                .round()
                .max(1.0);
            format!("{}ms:{}", ms as u64, s.rate)
        })
        .collect::<Vec<_>>()
        .join(","))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::scenario::WatchMode;
    use crate::run::scenario::tests::GOOD;

    #[test]
    fn time_scale_shortens_the_experiment_but_not_timeouts_or_slos() {
        let text = "\
name: t
watch: {stable_for: 20s, eject_window: 10s}
load: {ramp: \"10s:100,30s:1000\", duration: 40s, timeout: 2s}
steps:
  - {at: 8s, do: outage, color: blue, duration: 20s}
  - {at: 8s, do: wait-for, event: failover, timeout: 10s}
window_slos: [{from: 20s, slo: \"error_rate<1%\"}]
autoscale: {look_ahead: 40s, interval: 4s}
slos: [\"failover_time<2s\"]
";
        let s = Scenario::parse(text).unwrap().scaled(0.25).unwrap();
        assert_eq!(s.load.duration, Some(Duration::from_secs(10)));
        assert_eq!(s.load.ramp.as_deref(), Some("2500ms:100,7500ms:1000"));
        assert_eq!(s.steps[0].at, Duration::from_secs(2));
        assert_eq!(s.steps[0].duration, Some(Duration::from_secs(5)));
        assert_eq!(s.steps[1].timeout, Some(Duration::from_secs(10)));
        assert_eq!(s.watch.stable_for, Duration::from_secs(5));
        assert_eq!(s.watch.eject_window, Duration::from_millis(2500));
        assert_eq!(s.window_slos[0].from, Duration::from_secs(5));
        let a = s.autoscale.as_ref().unwrap();
        assert_eq!(a.look_ahead, Some(Duration::from_secs(10)));
        assert_eq!(a.interval, Some(Duration::from_secs(1)));
        assert_eq!(s.load.timeout, Some(Duration::from_secs(2)));
        assert_eq!(s.slos, ["failover_time<2s"]);
        let err = Scenario::parse(text).unwrap().scaled(0.0).unwrap_err();
        assert!(err.contains("0.25"), "{err}");
    }

    #[test]
    fn each_variant_replaces_the_sections_it_names() {
        let text = format!(
            "{GOOD}autoscale: {{predictive: false}}\nvariants:\n  - {{name: plain}}\n  - \
             {{name: ready, watch: {{mode: capacity-aware}}, autoscale: {{headroom: 50%}}, \
             slos: []}}\n"
        );
        let s = Scenario::parse(&text).unwrap();
        let runs = s.runs();
        assert_eq!(runs.len(), 2);
        assert_eq!(runs[0].name, "t-plain");
        assert_eq!(runs[0].watch.mode, WatchMode::Plain);
        assert!(!runs[0].autoscale.as_ref().unwrap().predictive);
        assert_eq!(runs[1].name, "t-ready");
        assert_eq!(runs[1].watch.mode, WatchMode::CapacityAware);
        let a = runs[1].autoscale.as_ref().unwrap();
        assert!(a.predictive && a.headroom.as_deref() == Some("50%"));
        assert!(runs[1].slos.is_empty() && runs[0].slos.len() == 1);
        assert!(runs.iter().all(|r| r.variants.is_empty()));
    }
}
