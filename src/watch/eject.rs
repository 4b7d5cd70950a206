//! `resil watch --eject-outliers`: once a second, tallies the per-pod outcomes of the last
//! window from the results directory's load buckets (the load engine's `by_pod`
//! attribution), asks the pure [`super::outliers::Ejector`] for verdicts, and takes an
//! outlier out of rotation by deleting it — its Deployment replaces it with a fresh pod,
//! which is the remedy for a pod that is up but partly broken.
//!
//! Every verdict is explained to the command layer (an `Update::Decision`), in the
//! timeline (a `Decision` from controller `outliers`) and as a Kubernetes Event on the pod.
//! Runs beside the failover controller, stopped by the same shutdown token; never prints.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use chrono::Utc;
use tokio::sync::mpsc::UnboundedSender;
use tokio_util::sync::CancellationToken;

use super::controller::Update;
use super::outliers::{Ejector, PodWindow, Settings, Signal, Verdict, tally};
use super::state::COLOR_LABEL;
use crate::chaos::execute::Scope;
use crate::cluster::events::{self, Involved, Severity};
use crate::results::RunDir;
use crate::results::timeline::{Event, EventKind};

/// The component name on Kubernetes Events.
const COMPONENT: &str = "resil-watch";

/// What the ejector needs.
#[derive(Debug, Clone)]
pub struct EjectPlan {
    /// The results directory a concurrent `resil load --out` writes buckets into.
    pub dir: RunDir,
    /// How many seconds of buckets make one window.
    pub window: Duration,
    pub settings: Settings,
}

/// The per-pod figures of the buckets within `window` before `now`, for pods that exist.
pub fn window_of(
    events: &[Event],
    now: chrono::DateTime<Utc>,
    window: Duration,
    colors: &BTreeMap<String, String>,
) -> Vec<PodWindow> {
    let since = now - chrono::Duration::from_std(window).unwrap_or(chrono::Duration::MAX);
    let buckets = events
        .iter()
        .filter(|e| e.ts >= since)
        .filter_map(|e| match &e.kind {
            EventKind::LoadBucket { by_pod, .. } => Some(by_pod),
            _ => None,
        });
    tally(buckets, |pod| colors.get(pod).cloned())
        .into_iter()
        // Pods gone since (ejected, killed) are no longer anyone's concern.
        .filter(|p| colors.contains_key(&p.pod))
        .collect()
}

/// Colours the ejector cannot judge fairly: three or more pods, enough requests in the
/// window for three of them to be judged, yet fewer than three got `min_requests`. A
/// Service balances connections, not requests, so a load over a few kept-alive
/// connections leaves pods without traffic. (colour, pods judged, pods of the colour).
fn uneven_spread(
    window: &[PodWindow],
    colors: &BTreeMap<String, String>,
    min_requests: u64,
) -> Vec<(String, usize, usize)> {
    let mut members: BTreeMap<&str, usize> = BTreeMap::new();
    for color in colors.values() {
        *members.entry(color).or_default() += 1;
    }
    members
        .into_iter()
        .filter(|(_, n)| *n >= 3)
        .filter_map(|(color, n)| {
            let pods = window.iter().filter(|p| p.color.as_deref() == Some(color));
            let (judged, requests) = pods.fold((0, 0), |(j, r), p| {
                (j + usize::from(p.requests >= min_requests), r + p.requests)
            });
            (judged < 3 && requests >= 3 * min_requests).then(|| (color.to_string(), judged, n))
        })
        .collect()
}

/// Ticks once a second until `shutdown`.
pub async fn run(
    scope: Scope,
    plan: EjectPlan,
    tx: UnboundedSender<Update>,
    shutdown: CancellationToken,
) {
    let mut ejector = Ejector::new(plan.settings.clone());
    // Colours already warned about an uneven spread: once per watch is enough.
    let mut warned = BTreeSet::new();
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            // The watch is over.
            () = shutdown.cancelled() => return,
            // The next window.
            _ = ticker.tick() => {}
        }
        if let Err(e) = tick(&scope, &plan, &mut ejector, &mut warned, &tx).await {
            let _ = tx.send(Update::Warning(format!("outlier ejection: {e:#}")));
        }
    }
}

async fn tick(
    scope: &Scope,
    plan: &EjectPlan,
    ejector: &mut Ejector,
    warned: &mut BTreeSet<String>,
    tx: &UnboundedSender<Update>,
) -> anyhow::Result<()> {
    let events = match plan.dir.read_timeline() {
        Ok(events) => events,
        // No load has written a bucket yet.
        Err(_) if !plan.dir.file("timeline.jsonl").exists() => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    let colors = scope
        .candidates("app=web")
        .await?
        .into_iter()
        .filter(|c| !c.terminating)
        .map(|c| {
            let color = c.labels.get(COLOR_LABEL).cloned().unwrap_or_default();
            (c.name, color)
        })
        .collect();
    let window = window_of(&events, Utc::now(), plan.window, &colors);
    for (color, judged, members) in uneven_spread(&window, &colors, plan.settings.min_requests) {
        if warned.insert(color.clone()) {
            let _ = tx.send(Update::Warning(format!(
                "outlier ejection can compare only {judged} of the {members} {color} pods: the \
                 others got fewer than {} requests in the last {}s, and it needs three. A \
                 Service balances connections, not requests: load over more connections \
                 (resil load --no-keepalive) so that every pod gets its share",
                plan.settings.min_requests,
                plan.window.as_secs()
            )));
        }
    }
    for verdict in ejector.evaluate(Instant::now(), &window) {
        let (rule, action, pod) = explain(&verdict, &plan.settings);
        if let Verdict::Eject { pod, .. } = &verdict {
            scope.kill(pod, false).await?;
        }
        if let Some(pod) = pod {
            let severity = match verdict {
                Verdict::Eject { .. } => Severity::Warning,
                _ => Severity::Normal,
            };
            let involved = Involved {
                api_version: "v1",
                kind: "Pod",
                name: &pod,
            };
            let reason = match verdict {
                Verdict::Eject { .. } => "OutlierEjected",
                Verdict::Capped { .. } => "OutlierKept",
                Verdict::Readmit { .. } => "OutlierReadmitted",
            };
            events::emit(
                &scope.client,
                &scope.namespace,
                involved,
                severity,
                reason,
                &format!("{action}: {rule}"),
                COMPONENT,
            )
            .await;
        }
        plan.dir.timeline()?.append(&Event::now(
            "watch",
            EventKind::Decision {
                controller: "outliers".to_string(),
                inputs: serde_json::json!({"verdict": verdict, "window": window}),
                rule: rule.clone(),
                action: action.clone(),
            },
        ))?;
        let _ = tx.send(Update::Decision { rule, action });
    }
    Ok(())
}

/// The rule and action of a verdict, in words; the pod an Event is about.
fn explain(verdict: &Verdict, settings: &Settings) -> (String, String, Option<String>) {
    match verdict {
        Verdict::Eject {
            pod,
            signal,
            value,
            median,
            z,
            ..
        } => (
            match signal {
                Signal::ErrorRate => format!(
                    "ErrorRate {value:.3} vs sibling median {median:.3}: robust z {z:.1} > {}",
                    settings.threshold
                ),
                Signal::Latency => format!(
                    "Latency mean {:.1}ms vs sibling median {:.1}ms: robust z {z:.1} > {}",
                    value / 1000.0,
                    median / 1000.0,
                    settings.threshold
                ),
            },
            format!("eject pod {pod} (delete it; its Deployment starts a fresh one)"),
            Some(pod.clone()),
        ),
        Verdict::Capped { pod, signal, z } => (
            format!(
                "{signal:?} robust z {z:.1} > {}, but {} pod(s) of its colour are out already",
                settings.threshold, settings.max_ejected
            ),
            format!("keep pod {pod} in rotation"),
            Some(pod.clone()),
        ),
        Verdict::Readmit { pod } => (
            "ejection time over".to_string(),
            format!("readmit pod {pod}"),
            None,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::timeline::Served;

    #[test]
    fn the_window_keeps_recent_buckets_of_existing_pods_with_their_colour() {
        let now = Utc::now();
        let bucket = |age_s: i64, pod: &str, requests: u64, errors: u64| Event {
            ts: now - chrono::Duration::seconds(age_s),
            source: "load".to_string(),
            kind: EventKind::test_bucket(
                0,
                requests,
                errors,
                0,
                BTreeMap::from([(pod.to_string(), Served::counts(requests, errors))]),
            ),
        };
        let events = [
            bucket(30, "web-blue-a", 100, 100),
            bucket(3, "web-blue-a", 10, 1),
            bucket(2, "web-blue-a", 10, 2),
            bucket(2, "web-blue-gone", 10, 10),
        ];
        let colors = BTreeMap::from([("web-blue-a".to_string(), "blue".to_string())]);
        let window = window_of(&events, now, Duration::from_secs(10), &colors);
        assert_eq!(window.len(), 1);
        assert_eq!((window[0].requests, window[0].errors), (20, 3));
        assert_eq!(window[0].color.as_deref(), Some("blue"));
    }

    #[test]
    fn a_colour_whose_traffic_reaches_fewer_than_three_pods_is_flagged_and_an_even_one_is_not() {
        let pod = |name: &str, color: &str, requests: u64| PodWindow {
            pod: name.to_string(),
            color: Some(color.to_string()),
            requests,
            errors: 0,
            latency_us: None,
        };
        let colors: BTreeMap<String, String> = [
            ("b1", "blue"),
            ("b2", "blue"),
            ("b3", "blue"),
            ("b4", "blue"),
            ("g1", "green"),
            ("g2", "green"),
            ("g3", "green"),
        ]
        .into_iter()
        .map(|(p, c)| (p.to_string(), c.to_string()))
        .collect();
        // Blue's 200 requests went to two pods (two kept-alive connections); green's
        // spread over all three.
        let window = [
            pod("b1", "blue", 100),
            pod("b2", "blue", 100),
            pod("g1", "green", 30),
            pod("g2", "green", 30),
            pod("g3", "green", 30),
        ];
        assert_eq!(
            uneven_spread(&window, &colors, 20),
            [("blue".to_string(), 2, 4)]
        );
        // Too little traffic for anyone to be judged is not a spread problem.
        let quiet = [pod("b1", "blue", 30)];
        assert!(uneven_spread(&quiet, &colors, 20).is_empty());
    }

    #[test]
    fn a_pod_slow_in_the_load_buckets_is_ejected_on_its_mean_latency() {
        let now = Utc::now();
        let by_pod: BTreeMap<String, Served> =
            [("a", 2_000), ("b", 2_400), ("c", 2_200), ("d", 150_000)]
                .into_iter()
                .map(|(pod, mean_us)| {
                    let served = Served {
                        requests: 50,
                        errors: 0,
                        timed: 50,
                        latency_sum_us: 50 * mean_us,
                    };
                    (format!("web-blue-{pod}"), served)
                })
                .collect();
        let colors = by_pod
            .keys()
            .map(|p| (p.clone(), "blue".to_string()))
            .collect();
        let events = [Event {
            ts: now - chrono::Duration::seconds(1),
            source: "load".to_string(),
            kind: EventKind::test_bucket(0, 200, 0, 0, by_pod),
        }];
        let window = window_of(&events, now, Duration::from_secs(10), &colors);
        let verdicts = Ejector::new(Settings::default()).evaluate(Instant::now(), &window);
        assert!(
            matches!(&verdicts[..], [Verdict::Eject { pod, signal: Signal::Latency, .. }] if pod == "web-blue-d"),
            "{verdicts:?}"
        );
        let (rule, _, _) = explain(&verdicts[0], &Settings::default());
        assert!(
            rule.starts_with("Latency mean 150.0ms vs sibling median 2.3ms"),
            "{rule}"
        );
    }
}
