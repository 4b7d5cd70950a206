//! `resil watch --eject-outliers`: once a second, tallies the per-pod outcomes of the last
//! window from the results directory's load buckets (the load engine's `by_pod`
//! attribution), asks the pure [`super::outliers::Ejector`] for verdicts, and takes an
//! outlier out of rotation by deleting it — its Deployment replaces it with a fresh pod,
//! which is the remedy for a pod that is up but partly broken.
//!
//! Every verdict is explained to the command layer (an `Update::Decision`), in the
//! timeline (a `Decision` from controller `outliers`) and as a Kubernetes Event on the pod.
//! Runs beside the failover controller, stopped by the same shutdown token; never prints.

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
    colors: &std::collections::BTreeMap<String, String>,
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

/// Ticks once a second until `shutdown`.
pub async fn run(
    scope: Scope,
    plan: EjectPlan,
    tx: UnboundedSender<Update>,
    shutdown: CancellationToken,
) {
    let mut ejector = Ejector::new(plan.settings.clone());
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            // The watch is over.
            () = shutdown.cancelled() => return,
            // The next window.
            _ = ticker.tick() => {}
        }
        if let Err(e) = tick(&scope, &plan, &mut ejector, &tx).await {
            let _ = tx.send(Update::Warning(format!("outlier ejection: {e:#}")));
        }
    }
}

async fn tick(
    scope: &Scope,
    plan: &EjectPlan,
    ejector: &mut Ejector,
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
    use std::collections::BTreeMap;

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
