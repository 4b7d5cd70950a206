//! The recorder: derives failover time, scaling latency and pod-seconds from the stream of
//! [`DemoState`]s the watcher sees, as DESIGN.md defines them.
//!
//! - **Failover time (control plane)**: from the moment the selected colour drops below
//!   `ready_min` ready pods (or the chaos injection, when one was announced just before) to
//!   the moment the Service selects the other colour *and* its Endpoints hold a ready
//!   address of that colour. A switch seen before the selected colour's loss (its pods'
//!   watch behind the Service's, or a switch made by hand) starts the clock at the switch.
//!   A fail-back is timed from the switch to the same condition.
//! - **Scaling latency**: per scale-up of a colour's Deployment (`spec.replicas` up; its
//!   start moved back to the HPA's `desiredReplicas` rise when the HPA asked first) until
//!   that many pods of the colour are Ready.
//! - **Pod-seconds**: Σ running pods × time, per colour (the cost model's input).
//!
//! Pure and clock-injected: callers pass the time of each observation. Called by the watch
//! controller after every change it applies to its [`DemoState`].

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::state::DemoState;
use crate::domain::Color;
use crate::results::summary::{Failover, ScalingEvent, WatchSummary};
use crate::results::timeline::EventKind;

/// A chaos injection announced this long before the outage is seen starts the clock.
const INJECTION_WINDOW_MS: i64 = 30_000;

#[derive(Debug, Clone)]
struct Outage {
    from: Color,
    started_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
struct PendingFailback {
    from: Color,
    to: Color,
    started_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
struct PendingScale {
    color: Color,
    from: i32,
    to: i32,
    desired_at: DateTime<Utc>,
}

/// Derives the figures; see the module docs.
#[derive(Debug, Clone)]
pub struct Recorder {
    primary: Color,
    ready_min: u32,
    started_at: DateTime<Utc>,
    last_seen: DateTime<Utc>,
    last_running: BTreeMap<Color, u32>,
    last_selected: Option<Color>,
    last_desired: BTreeMap<Color, i32>,
    hpa_desired_at: BTreeMap<Color, (i32, DateTime<Utc>)>,
    injected_at: Option<DateTime<Utc>>,
    outage: Option<Outage>,
    failback: Option<PendingFailback>,
    prepared: Option<(Color, u64)>,
    pending_scales: Vec<PendingScale>,
    pod_seconds: BTreeMap<Color, f64>,
    failovers: Vec<Failover>,
    scaling: Vec<ScalingEvent>,
}

impl Recorder {
    /// A recorder whose recording starts at `now`.
    pub fn new(primary: Color, ready_min: u32, now: DateTime<Utc>) -> Recorder {
        Recorder {
            primary,
            ready_min: ready_min.max(1),
            started_at: now,
            last_seen: now,
            last_running: BTreeMap::new(),
            last_selected: None,
            last_desired: BTreeMap::new(),
            hpa_desired_at: BTreeMap::new(),
            injected_at: None,
            outage: None,
            failback: None,
            prepared: None,
            pending_scales: Vec::new(),
            pod_seconds: BTreeMap::new(),
            failovers: Vec::new(),
            scaling: Vec::new(),
        }
    }

    /// A fault was injected at `at` (by the scenario runner): an outage seen soon after is
    /// timed from here, not from when its effect became visible.
    pub fn injection(&mut self, at: DateTime<Utc>) {
        self.injected_at = Some(at);
    }

    /// Capacity-aware mode scaled `color` up before traffic moved to it; it took `ms`.
    pub fn standby_prepared(&mut self, color: Color, ms: u64) {
        self.prepared = Some((color, ms));
    }

    /// The failovers completed so far.
    pub fn failovers(&self) -> &[Failover] {
        &self.failovers
    }

    /// Takes in the state as it is at `now` (after a change); returns the figures that
    /// completed, as timeline events.
    pub fn observe(&mut self, state: &DemoState, now: DateTime<Utc>) -> Vec<EventKind> {
        self.integrate(state, now);
        let mut out = Vec::new();
        self.track_failover(state, now, &mut out);
        self.track_scaling(state, now);
        out
    }

    /// The figures, with scale-ups still waiting for their pods listed as not ready.
    pub fn summary(&self, state: &DemoState) -> WatchSummary {
        let mut scaling = self.scaling.clone();
        scaling.extend(self.pending_scales.iter().map(|p| ScalingEvent {
            color: p.color.as_str().to_string(),
            from_replicas: p.from,
            to_replicas: p.to,
            desired_at: p.desired_at,
            ready_at: None,
            latency_ms: None,
        }));
        scaling.sort_by_key(|s| s.desired_at);
        WatchSummary {
            failovers: self.failovers.clone(),
            scaling,
            pod_seconds: self
                .pod_seconds
                .iter()
                .map(|(c, s)| (c.as_str().to_string(), *s))
                .collect(),
            pod_requests: state
                .pod_requests
                .iter()
                .map(|(c, r)| (c.as_str().to_string(), *r))
                .collect(),
            duration_s: millis(self.started_at, self.last_seen) as f64 / 1000.0,
        }
    }

    /// Adds the pods that ran since the last observation to the pod-seconds.
    fn integrate(&mut self, state: &DemoState, now: DateTime<Utc>) {
        let elapsed = millis(self.last_seen, now) as f64 / 1000.0;
        for (color, running) in &self.last_running {
            *self.pod_seconds.entry(*color).or_default() += f64::from(*running) * elapsed;
        }
        self.last_seen = self.last_seen.max(now);
        for color in [Color::Blue, Color::Green] {
            self.last_running.insert(color, state.running(color));
        }
    }

    fn track_failover(&mut self, state: &DemoState, now: DateTime<Utc>, out: &mut Vec<EventKind>) {
        let selected = state.selected;
        let switched = self.last_selected.is_some() && selected != self.last_selected;
        let previous = std::mem::replace(&mut self.last_selected, selected);
        let Some(active) = selected else { return };

        // A switch back to the primary with no outage under way is a fail-back.
        let failing_back = switched && self.outage.is_none() && active == self.primary;
        if let Some(from) = previous.filter(|_| failing_back) {
            self.failback = Some(PendingFailback {
                from,
                to: active,
                started_at: now,
            });
        }

        // A switch away from a colour the recorder still sees as ready: its pods' watch is
        // behind the Service's (separate streams keep no order between them), or the switch
        // was made by hand. Either way traffic moved; the switch is the first sign of it.
        if let Some(from) = previous.filter(|_| switched && self.outage.is_none() && !failing_back)
        {
            self.start_outage(from, now);
        }

        if let Some(outage) = self.outage.clone() {
            if active != outage.from && state.serving(active) >= 1 {
                let prepared = self.prepared.take().filter(|(c, _)| *c == active);
                out.push(self.complete(
                    outage.from,
                    active,
                    outage.started_at,
                    now,
                    "failover",
                    prepared,
                ));
                self.outage = None;
            } else if active == outage.from && state.ready(active) >= self.ready_min {
                self.outage = None;
                out.push(EventKind::Note {
                    message: format!(
                        "{} recovered in place after {} ms without a failover",
                        active.as_str(),
                        millis(outage.started_at, now)
                    ),
                });
            }
        } else if state.ready(active) < self.ready_min {
            self.start_outage(active, now);
        }

        if let Some(pending) = self.failback.clone() {
            if active != pending.to {
                self.failback = None;
            } else if state.serving(active) >= 1 {
                out.push(self.complete(
                    pending.from,
                    pending.to,
                    pending.started_at,
                    now,
                    "failback",
                    None,
                ));
                self.failback = None;
            }
        }
    }

    /// `from` stopped serving at `now`, or at the injection announced just before.
    fn start_outage(&mut self, from: Color, now: DateTime<Utc>) {
        let started_at = match self.injected_at.take() {
            Some(at) if at <= now && millis(at, now) <= INJECTION_WINDOW_MS as u64 => at,
            _ => now,
        };
        self.outage = Some(Outage { from, started_at });
        self.failback = None;
    }

    fn complete(
        &mut self,
        from: Color,
        to: Color,
        started_at: DateTime<Utc>,
        now: DateTime<Utc>,
        direction: &str,
        prepared: Option<(Color, u64)>,
    ) -> EventKind {
        let duration_ms = millis(started_at, now);
        self.failovers.push(Failover {
            from: from.as_str().to_string(),
            to: to.as_str().to_string(),
            started_at,
            completed_at: now,
            duration_ms,
            standby_prepared: prepared.is_some(),
            prepare_ms: prepared.map(|(_, ms)| ms),
            direction: direction.to_string(),
        });
        EventKind::FailoverCompleted {
            from: from.as_str().to_string(),
            to: to.as_str().to_string(),
            started_at,
            duration_ms,
        }
    }

    fn track_scaling(&mut self, state: &DemoState, now: DateTime<Utc>) {
        for (color, hpa) in &state.hpas {
            let known = self.hpa_desired_at.get(color).map(|(d, _)| *d);
            // Remember when the HPA last asked for a different count.
            if known != Some(hpa.desired) {
                self.hpa_desired_at.insert(*color, (hpa.desired, now));
            }
        }
        for (color, deployment) in &state.deployments {
            let before = self.last_desired.insert(*color, deployment.desired);
            let Some(before) = before else { continue };
            if deployment.desired > before {
                // The HPA usually asks (desiredReplicas) a moment before the Deployment
                // follows; the user's clock starts when it asked.
                let desired_at = match self.hpa_desired_at.get(color) {
                    Some((d, at)) if *d == deployment.desired && *at <= now => *at,
                    _ => now,
                };
                self.pending_scales.push(PendingScale {
                    color: *color,
                    from: before,
                    to: deployment.desired,
                    desired_at,
                });
            } else if deployment.desired < before {
                // A scale-down overtook scale-ups still waiting: they will never complete.
                self.pending_scales
                    .retain(|p| p.color != *color || p.to <= deployment.desired);
            }
        }
        let mut still = Vec::new();
        for pending in std::mem::take(&mut self.pending_scales) {
            if state.ready(pending.color) >= u32::try_from(pending.to).unwrap_or(0) {
                self.scaling.push(ScalingEvent {
                    color: pending.color.as_str().to_string(),
                    from_replicas: pending.from,
                    to_replicas: pending.to,
                    desired_at: pending.desired_at,
                    ready_at: Some(now),
                    latency_ms: Some(millis(pending.desired_at, now)),
                });
            } else {
                still.push(pending);
            }
        }
        self.pending_scales = still;
    }
}

/// Milliseconds from `a` to `b` (0 when `b` is earlier).
fn millis(a: DateTime<Utc>, b: DateTime<Utc>) -> u64 {
    u64::try_from((b - a).num_milliseconds()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::core::v1::{Endpoints, Pod, Service};
    use serde_json::json;

    fn t(ms: i64) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(1_800_000_000_000 + ms).unwrap()
    }

    fn pod(name: &str, color: &str, ready: bool) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": name, "labels": {"version": color}},
            "status": {"phase": "Running", "conditions": [
                {"type": "Ready", "status": if ready { "True" } else { "False" }}]}
        }))
        .unwrap()
    }

    fn service(color: &str) -> Service {
        serde_json::from_value(json!({
            "metadata": {"name": "web"}, "spec": {"selector": {"version": color}}
        }))
        .unwrap()
    }

    fn endpoints(pods: &[&str]) -> Endpoints {
        crate::watch::state::tests::endpoints(pods)
    }

    fn deployment(color: &str, replicas: i32) -> Deployment {
        serde_json::from_value(json!({
            "metadata": {"name": format!("web-{color}"), "labels": {"version": color}},
            "spec": {"replicas": replicas, "selector": {}, "template": {"spec": {"containers": [
                {"name": "web", "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}}]}}}
        }))
        .unwrap()
    }

    /// Blue and green both have one ready pod; the Service selects blue.
    fn steady() -> (DemoState, Recorder) {
        let mut state = DemoState::new("web");
        let mut recorder = Recorder::new(Color::Blue, 1, t(0));
        state.apply_pod(&pod("b1", "blue", true));
        state.apply_pod(&pod("g1", "green", true));
        state.apply_service(&service("blue"));
        state.apply_endpoints(&endpoints(&["b1"]));
        recorder.observe(&state, t(0));
        (state, recorder)
    }

    #[test]
    fn failover_is_timed_from_losing_the_last_ready_pod_to_green_endpoints() {
        let (mut state, mut rec) = steady();
        state.apply_pod(&pod("b1", "blue", false));
        assert!(rec.observe(&state, t(1_000)).is_empty());
        state.apply_service(&service("green"));
        assert!(
            rec.observe(&state, t(1_040)).is_empty(),
            "no green endpoint yet"
        );
        state.apply_endpoints(&endpoints(&["g1"]));
        let done = rec.observe(&state, t(1_090));
        assert!(matches!(
            &done[..],
            [EventKind::FailoverCompleted {
                duration_ms: 90,
                ..
            }]
        ));
        let failover = &rec.summary(&state).failovers[0];
        assert_eq!(
            (failover.from.as_str(), failover.to.as_str()),
            ("blue", "green")
        );
        assert_eq!(failover.direction, "failover");
    }

    #[test]
    fn an_announced_injection_starts_the_clock() {
        let (mut state, mut rec) = steady();
        rec.injection(t(500));
        state.apply_pod(&pod("b1", "blue", false));
        rec.observe(&state, t(1_000));
        state.apply_service(&service("green"));
        state.apply_endpoints(&endpoints(&["g1"]));
        rec.observe(&state, t(1_100));
        assert_eq!(rec.failovers()[0].duration_ms, 600);
    }

    #[test]
    fn a_switch_seen_before_the_pods_it_follows_is_still_a_failover() {
        let (mut state, mut rec) = steady();
        rec.injection(t(900));
        // The Service's watch delivers the switch while the pods' watch still shows blue
        // ready (the two streams keep no order between them).
        state.apply_service(&service("green"));
        state.apply_endpoints(&endpoints(&["g1"]));
        let done = rec.observe(&state, t(1_000));
        assert!(
            matches!(
                &done[..],
                [EventKind::FailoverCompleted {
                    duration_ms: 100,
                    ..
                }]
            ),
            "{done:?}"
        );
        // The late pod events change nothing; blue's return is the fail-back.
        state.apply_pod(&pod("b1", "blue", false));
        assert!(rec.observe(&state, t(1_010)).is_empty());
        state.apply_pod(&pod("b1", "blue", true));
        rec.observe(&state, t(5_000));
        state.apply_service(&service("blue"));
        state.apply_endpoints(&endpoints(&["b1"]));
        rec.observe(&state, t(25_000));
        let directions: Vec<&str> = rec
            .failovers()
            .iter()
            .map(|f| f.direction.as_str())
            .collect();
        assert_eq!(directions, ["failover", "failback"]);
    }

    #[test]
    fn a_colour_that_recovers_in_place_is_not_a_failover() {
        let (mut state, mut rec) = steady();
        state.apply_pod(&pod("b1", "blue", false));
        rec.observe(&state, t(1_000));
        state.apply_pod(&pod("b1", "blue", true));
        let events = rec.observe(&state, t(3_000));
        assert!(matches!(&events[..], [EventKind::Note { .. }]));
        assert!(rec.failovers().is_empty());
    }

    #[test]
    fn failback_is_timed_from_the_switch_back_to_primary_endpoints() {
        let (mut state, mut rec) = steady();
        state.apply_pod(&pod("b1", "blue", false));
        rec.observe(&state, t(1_000));
        state.apply_service(&service("green"));
        state.apply_endpoints(&endpoints(&["g1"]));
        rec.observe(&state, t(1_100));
        state.apply_pod(&pod("b1", "blue", true));
        rec.observe(&state, t(5_000));
        state.apply_service(&service("blue"));
        rec.observe(&state, t(25_000));
        state.apply_endpoints(&endpoints(&["b1"]));
        rec.observe(&state, t(25_030));
        let summary = rec.summary(&state);
        assert_eq!(summary.failovers.len(), 2);
        assert_eq!(summary.failovers[1].direction, "failback");
        assert_eq!(summary.failovers[1].duration_ms, 30);
    }

    #[test]
    fn scaling_latency_runs_from_the_hpa_asking_to_the_last_new_pod_ready() {
        let (mut state, mut rec) = steady();
        state.apply_deployment(&deployment("blue", 1));
        rec.observe(&state, t(0));
        let hpa = serde_json::from_value(json!({
            "metadata": {"name": "web-blue", "labels": {"version": "blue"}},
            "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web-blue"}, "maxReplicas": 5},
            "status": {"currentReplicas": 1, "desiredReplicas": 3}
        }))
        .unwrap();
        state.apply_hpa(&hpa);
        rec.observe(&state, t(10_000));
        state.apply_deployment(&deployment("blue", 3));
        rec.observe(&state, t(10_020));
        state.apply_pod(&pod("b2", "blue", true));
        rec.observe(&state, t(11_000));
        assert!(rec.summary(&state).scaling[0].ready_at.is_none());
        state.apply_pod(&pod("b3", "blue", true));
        rec.observe(&state, t(12_500));
        let scale = &rec.summary(&state).scaling[0];
        assert_eq!((scale.from_replicas, scale.to_replicas), (1, 3));
        assert_eq!(scale.latency_ms, Some(2_500));
    }

    #[test]
    fn pod_seconds_integrate_running_pods_per_colour() {
        let (mut state, mut rec) = steady();
        state.apply_pod(&pod("b2", "blue", false));
        rec.observe(&state, t(10_000));
        rec.observe(&state, t(20_000));
        let summary = rec.summary(&state);
        assert_eq!(summary.pod_seconds["blue"], 10.0 + 20.0);
        assert_eq!(summary.pod_seconds["green"], 20.0);
        assert_eq!(summary.duration_s, 20.0);
    }
}
