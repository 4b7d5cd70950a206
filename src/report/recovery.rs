//! Recovery per fault, from the client's side: for every fault resil injected, how soon
//! anything noticed (detection), how long until clients were served again (observed
//! RTO), how many requests were lost, how much of the run's error budget that burned, and
//! what the control plane did in between. Computed from the results directory alone
//! (the timeline), so `resil report DIR` shows what `resil run` showed.
//!
//! - A fault's *window* runs from its injection to the next fault's injection (or the
//!   end of the run); failures starting in it are the fault's.
//! - *Detection*: injection → the first failed request or the first pod that stopped
//!   being Ready (an unready endpoint), whichever came first.
//! - *Observed RTO*: injection → the first of N successes in a row after the window's last
//!   failure (the load's recovery episodes, N = `--recovery-successes`, default 10). A
//!   timeline written before recovery episodes existed falls back to downtime episodes
//!   (N = 1).
//! - *Error budget*: the errors the run's `error_rate<X` SLO allows (X × requests); the
//!   share of it the fault's lost requests used.
//! - *Phases* of a node fault: unreachable (injection → its pods marked unready: the node
//!   monitor grace period), eviction (→ the first replacement pod created: the pods'
//!   toleration), start (→ the last replacement Ready).
//!
//! Pure over the events; called by `build.rs`, rendered by [`sections`].

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::sections::{Grid, Section};
use crate::results::{Event, EventKind};

/// Most control-plane lines kept per fault.
const MAX_CONTROL: usize = 40;

/// What one fault cost the clients, and how long.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultRecovery {
    /// Journal id of the fault.
    pub id: String,
    pub action: String,
    pub targets: Vec<String>,
    pub injected_at: DateTime<Utc>,
    pub reverted_at: Option<DateTime<Utc>>,
    /// Injection → first failed request or first unready pod; `None`: nothing noticed.
    pub detection_ms: Option<u64>,
    /// `failed request` or `unready endpoint`.
    pub detected_by: Option<String>,
    /// Injection → recovered; `None` when no request failed or clients had not recovered
    /// when the load ended (see `recovered`).
    pub rto_ms: Option<u64>,
    /// Whether clients were served again (true when nothing failed).
    pub recovered: bool,
    /// Successes in a row that count as recovered.
    pub successes_needed: u32,
    /// Failed requests in the fault's window.
    pub requests_lost: u64,
    /// The share of the run's error budget the lost requests burned.
    pub error_budget: Option<ErrorBudget>,
    /// The phases of a node fault, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub phases: Vec<Phase>,
    /// What the control plane (and resil's controllers) did from the injection to the
    /// recovery, in time order.
    pub control_plane: Vec<ControlEvent>,
}

/// The run's error budget and the share one fault burned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBudget {
    /// The SLO it comes from, as written.
    pub slo: String,
    /// Failed requests the SLO allows over the run.
    pub allowed_requests: f64,
    /// Lost requests ÷ allowed (above 1: the fault alone broke the SLO).
    pub burned: f64,
}

/// One phase of a recovery.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Phase {
    /// `unreachable (grace)`, `eviction (toleration)`, `pod start`.
    pub name: String,
    pub ms: u64,
}

/// One thing the control plane did, relative to the injection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ControlEvent {
    pub after_ms: i64,
    pub what: String,
}

fn ms_between(from: DateTime<Utc>, to: DateTime<Utc>) -> u64 {
    u64::try_from((to - from).num_milliseconds()).unwrap_or(0)
}

/// A client episode: start, recovery, failed requests, N.
struct Episode {
    started: DateTime<Utc>,
    recovered: Option<DateTime<Utc>>,
    failed: u64,
    needed: u32,
}

/// The recovery episodes, or the downtime episodes of a timeline that has none.
fn episodes(events: &[Event]) -> Vec<Episode> {
    let recovery: Vec<Episode> = events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Recovery {
                started_at,
                recovered_at,
                failed_requests,
                successes_needed,
            } => Some(Episode {
                started: *started_at,
                recovered: *recovered_at,
                failed: *failed_requests,
                needed: *successes_needed,
            }),
            _ => None,
        })
        .collect();
    if !recovery.is_empty() {
        return recovery;
    }
    events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Downtime {
                started_at,
                ended_at,
                failed_requests,
                ..
            } => Some(Episode {
                started: *started_at,
                recovered: *ended_at,
                failed: *failed_requests,
                needed: 1,
            }),
            _ => None,
        })
        .collect()
}

/// The run's error allowance: the first `error_rate<X` (or `<=`) SLO and X.
fn error_slo(slos: &[String]) -> Option<(String, f64)> {
    slos.iter()
        .flat_map(|s| crate::judge::expr::expressions(s))
        .find_map(|e| {
            let c = crate::judge::expr::split(e)?;
            let below = matches!(
                c.op,
                crate::judge::expr::Op::Lt | crate::judge::expr::Op::Le
            );
            (c.key == "error_rate" && below)
                .then(|| crate::judge::expr::parse_ratio(c.value))
                .flatten()
                .map(|x| (e.to_string(), x))
        })
}

/// One line for a control-plane event, or `None` for what is not one.
fn control_line(kind: &EventKind) -> Option<String> {
    Some(match kind {
        EventKind::PodUnready { pod, .. } => format!("pod {pod} not Ready"),
        EventKind::PodReady { pod, .. } => format!("pod {pod} Ready"),
        EventKind::PodCreated { pod, .. } => format!("pod {pod} created"),
        EventKind::PodDeleted { pod, .. } => format!("pod {pod} deleted"),
        EventKind::EndpointsChanged { service, ready } => {
            let counts: Vec<String> = ready.iter().map(|(c, n)| format!("{c} {n}")).collect();
            format!("service {service} ready endpoints: {}", counts.join(", "))
        }
        EventKind::SelectorSwitched { service, to, .. } => {
            format!("service {service} switched to {to}")
        }
        EventKind::FailoverCompleted { from, to, .. } => format!("failover {from} → {to} done"),
        EventKind::Decision {
            controller, action, ..
        } => format!("{controller}: {action}"),
        EventKind::Note { message } => message.clone(),
        EventKind::ChaosReverted { action, .. } => format!("{action} reverted"),
        _ => return None,
    })
}

/// Recovery of every fault in `events`; `requests` is the run's request count (for the
/// error budget), `slos` its whole-run SLOs.
pub fn recoveries(events: &[Event], requests: u64, slos: &[String]) -> Vec<FaultRecovery> {
    let mut events: Vec<&Event> = events.iter().collect();
    events.sort_by_key(|e| e.ts);
    let owned: Vec<Event> = events.iter().map(|e| (*e).clone()).collect();
    let episodes = episodes(&owned);
    let faults: Vec<(&Event, &str, &str, &[String])> = events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::ChaosInjected {
                id,
                action,
                targets,
                ..
            } => Some((*e, id.as_str(), action.as_str(), targets.as_slice())),
            _ => None,
        })
        .collect();
    let budget = error_slo(slos);
    let mut out = Vec::new();
    for (i, (event, id, action, targets)) in faults.iter().enumerate() {
        let at = event.ts;
        // The last fault's window stays open: everything after it is its.
        let until = faults
            .get(i + 1)
            .map_or(DateTime::<Utc>::MAX_UTC, |f| f.0.ts)
            .max(at);
        let reverted_at = events.iter().find_map(|e| match &e.kind {
            EventKind::ChaosReverted { id: r, .. } if r == id => Some(e.ts),
            _ => None,
        });
        let mine: Vec<&Episode> = episodes
            .iter()
            .filter(|ep| ep.started >= at && ep.started < until)
            .collect();
        let requests_lost: u64 = mine.iter().map(|ep| ep.failed).sum();
        let first_failure = mine.iter().map(|ep| ep.started).min();
        let first_unready = events
            .iter()
            .filter(|e| e.ts >= at && e.ts < until)
            .find(|e| matches!(e.kind, EventKind::PodUnready { .. }))
            .map(|e| e.ts);
        let (detected, detected_by) = match (first_failure, first_unready) {
            (Some(f), Some(u)) if u < f => (Some(u), Some("unready endpoint")),
            (Some(f), _) => (Some(f), Some("failed request")),
            (None, Some(u)) => (Some(u), Some("unready endpoint")),
            (None, None) => (None, None),
        };
        let last = mine.iter().max_by_key(|ep| ep.started);
        let recovered = last.is_none_or(|ep| ep.recovered.is_some());
        let recovered_at = last.and_then(|ep| ep.recovered);
        let phases = if matches!(*action, "node-failure" | "zone-outage") {
            node_phases(&events, at, until)
        } else {
            Vec::new()
        };
        // The control plane's story runs to the recovery, or the last phase, or (when
        // clients saw nothing) the end of the window.
        let phases_end =
            at + chrono::Duration::milliseconds(phases.iter().map(|p| p.ms as i64).sum::<i64>());
        let story_end = match recovered_at {
            Some(r) => r.max(phases_end),
            None if phases.is_empty() => until,
            None => phases_end.max(if recovered { at } else { until }),
        };
        let mut control_plane: Vec<ControlEvent> = events
            .iter()
            .filter(|e| e.ts >= at && e.ts <= story_end.min(until).max(at))
            .filter_map(|e| {
                control_line(&e.kind).map(|what| ControlEvent {
                    after_ms: (e.ts - at).num_milliseconds(),
                    what,
                })
            })
            .collect();
        if control_plane.len() > MAX_CONTROL {
            let more = control_plane.len() - MAX_CONTROL;
            control_plane.truncate(MAX_CONTROL);
            control_plane.push(ControlEvent {
                after_ms: control_plane.last().map_or(0, |c| c.after_ms),
                what: format!("… and {more} more"),
            });
        }
        out.push(FaultRecovery {
            id: id.to_string(),
            action: action.to_string(),
            targets: targets.to_vec(),
            injected_at: at,
            reverted_at,
            detection_ms: detected.map(|d| ms_between(at, d)),
            detected_by: detected_by.map(str::to_string),
            rto_ms: recovered_at.map(|r| ms_between(at, r)),
            recovered,
            successes_needed: episodes.first().map_or(10, |ep| ep.needed),
            requests_lost,
            error_budget: budget.as_ref().and_then(|(slo, x)| {
                let allowed = x * requests as f64;
                (allowed > 0.0).then(|| ErrorBudget {
                    slo: slo.clone(),
                    allowed_requests: allowed,
                    burned: requests_lost as f64 / allowed,
                })
            }),
            phases,
            control_plane,
        });
    }
    out
}

/// The phases of a node fault: unreachable (→ first pod unready), eviction (→ first pod
/// created after that), pod start (→ the last of the pods created since Ready).
fn node_phases(events: &[&Event], at: DateTime<Utc>, until: DateTime<Utc>) -> Vec<Phase> {
    let window = || events.iter().filter(|e| e.ts >= at && e.ts < until);
    let Some(unready) = window()
        .find(|e| matches!(e.kind, EventKind::PodUnready { .. }))
        .map(|e| e.ts)
    else {
        return Vec::new();
    };
    let mut phases = vec![Phase {
        name: "unreachable (grace)".into(),
        ms: ms_between(at, unready),
    }];
    let created: Vec<(&str, DateTime<Utc>)> = window()
        .filter(|e| e.ts >= unready)
        .filter_map(|e| match &e.kind {
            EventKind::PodCreated { pod, .. } => Some((pod.as_str(), e.ts)),
            _ => None,
        })
        .collect();
    let Some(&(_, first_created)) = created.first() else {
        return phases;
    };
    phases.push(Phase {
        name: "eviction (toleration)".into(),
        ms: ms_between(unready, first_created),
    });
    let ready = window()
        .filter_map(|e| match &e.kind {
            EventKind::PodReady { pod, .. } if created.iter().any(|(p, _)| p == pod) => Some(e.ts),
            _ => None,
        })
        .max();
    if let Some(ready) = ready {
        phases.push(Phase {
            name: "pod start".into(),
            ms: ms_between(first_created, ready),
        });
    }
    phases
}

fn seconds(ms: u64) -> String {
    format!("{:.1}s", ms as f64 / 1000.0)
}

/// One section per fault, each led by what clients felt.
pub fn sections(recoveries: &[FaultRecovery], start: DateTime<Utc>) -> Vec<Section> {
    recoveries.iter().map(|r| section(r, start)).collect()
}

fn section(r: &FaultRecovery, start: DateTime<Utc>) -> Section {
    let at = (r.injected_at - start).num_milliseconds() as f64 / 1000.0;
    let mut notes = Vec::new();
    notes.push(match (r.detection_ms, &r.detected_by) {
        (Some(ms), Some(by)) => format!("detection: {} (first {by})", seconds(ms)),
        _ => "detection: nothing noticed (no failed request, no unready endpoint)".into(),
    });
    notes.push(match (r.rto_ms, r.recovered, r.requests_lost) {
        (_, true, 0) => "observed RTO: 0s (no request failed)".into(),
        (Some(ms), _, _) => format!(
            "observed RTO: {} (to the first of {} successes in a row)",
            seconds(ms),
            r.successes_needed
        ),
        (None, _, _) => "observed RTO: not recovered when the load ended".into(),
    });
    let mut lost = format!("requests lost: {}", r.requests_lost);
    if let Some(b) = &r.error_budget {
        lost.push_str(&format!(
            "; error budget burned: {:.1}% of the {:.0} failed requests `{}` allows",
            b.burned * 100.0,
            b.allowed_requests,
            b.slo
        ));
    }
    notes.push(lost);
    if !r.phases.is_empty() {
        let total: u64 = r.phases.iter().map(|p| p.ms).sum();
        let parts: Vec<String> = r
            .phases
            .iter()
            .map(|p| format!("{} {}", p.name, seconds(p.ms)))
            .collect();
        notes.push(format!(
            "pods rescheduled after {} = {}",
            seconds(total),
            parts.join(" + ")
        ));
    }
    let grid = (!r.control_plane.is_empty()).then(|| Grid {
        header: vec!["after".into(), "control plane".into()],
        rows: r
            .control_plane
            .iter()
            .map(|c| {
                vec![
                    format!("+{:.1}s", c.after_ms as f64 / 1000.0),
                    c.what.clone(),
                ]
            })
            .collect(),
    });
    Section {
        title: format!(
            "Recovery: {} {} (at +{at:.1}s)",
            r.action,
            r.targets.join(", ")
        ),
        notes,
        grid,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(ms: i64, kind: EventKind) -> Event {
        Event {
            ts: DateTime::from_timestamp_millis(1_800_000_000_000 + ms).unwrap(),
            source: "test".into(),
            kind,
        }
    }

    fn t(ms: i64) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(1_800_000_000_000 + ms).unwrap()
    }

    fn injected(ms: i64, action: &str) -> Event {
        ev(
            ms,
            EventKind::ChaosInjected {
                id: format!("{action}-{ms}"),
                action: action.into(),
                targets: vec!["node/lab-node-1".into()],
                detail: String::new(),
            },
        )
    }

    fn recovery(from: i64, to: Option<i64>, failed: u64) -> Event {
        ev(
            from,
            EventKind::Recovery {
                started_at: t(from),
                recovered_at: to.map(t),
                failed_requests: failed,
                successes_needed: 10,
            },
        )
    }

    fn pod(ms: i64, what: &str, name: &str) -> Event {
        let (pod, color) = (name.to_string(), Some("blue".to_string()));
        ev(
            ms,
            match what {
                "unready" => EventKind::PodUnready { pod, color },
                "created" => EventKind::PodCreated { pod, color },
                _ => EventKind::PodReady { pod, color },
            },
        )
    }

    #[test]
    fn a_node_failure_is_detected_recovered_and_split_into_its_phases() {
        let events = vec![
            injected(10_000, "node-failure"),
            recovery(10_050, Some(10_400), 12),
            recovery(10_900, Some(12_100), 30),
            pod(12_000, "unready", "web-blue-a"),
            pod(14_000, "created", "web-blue-b"),
            pod(15_500, "ready", "web-blue-b"),
            ev(
                20_000,
                EventKind::Note {
                    message: "end".into(),
                },
            ),
        ];
        let slos = vec!["error_rate<1%".to_string()];
        let r = &recoveries(&events, 10_000, &slos)[0];
        assert_eq!(r.detection_ms, Some(50));
        assert_eq!(r.detected_by.as_deref(), Some("failed request"));
        assert_eq!(r.rto_ms, Some(2_100), "to the last episode's recovery");
        assert_eq!(r.requests_lost, 42);
        let budget = r.error_budget.as_ref().unwrap();
        assert_eq!(budget.allowed_requests, 100.0);
        assert!((budget.burned - 0.42).abs() < 1e-9);
        let split: Vec<u64> = r.phases.iter().map(|p| p.ms).collect();
        assert_eq!(split, [2_000, 2_000, 1_500]);
        assert!(
            r.control_plane
                .iter()
                .any(|c| c.what == "pod web-blue-b Ready")
        );
        let section = section(r, t(0));
        assert!(section.notes[1].contains("2.1s"), "{:?}", section.notes);
        assert!(
            section.notes[3].contains("5.5s = unreachable (grace) 2.0s"),
            "{:?}",
            section.notes
        );
    }

    #[test]
    fn failures_belong_to_the_fault_whose_window_they_start_in() {
        let events = vec![
            injected(1_000, "kill-pods"),
            recovery(1_200, Some(1_500), 5),
            injected(5_000, "drain"),
            pod(5_100, "unready", "web-blue-a"),
            recovery(6_000, None, 7),
        ];
        let all = recoveries(&events, 1_000, &[]);
        assert_eq!(all[0].requests_lost, 5);
        assert!(all[0].recovered);
        assert_eq!(all[1].requests_lost, 7);
        assert_eq!(all[1].detected_by.as_deref(), Some("unready endpoint"));
        assert!(!all[1].recovered && all[1].rto_ms.is_none());
        assert!(all[1].error_budget.is_none());
    }

    #[test]
    fn a_fault_nobody_felt_has_no_detection_and_no_loss() {
        let events = vec![injected(1_000, "latency"), pod(9_000, "ready", "x")];
        let r = &recoveries(&events, 100, &["error_rate<=5%".to_string()])[0];
        assert_eq!((r.detection_ms, r.requests_lost), (None, 0));
        assert!(r.recovered);
        assert_eq!(r.error_budget.as_ref().unwrap().burned, 0.0);
        assert!(section(r, t(0)).notes[1].contains("no request failed"));
    }
}
