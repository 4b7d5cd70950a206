//! Builds a [`Report`] and its plot [`Series`] from a results directory: reads `run.json`,
//! `summary.json`, `timeline.jsonl` and `latency.hdr` and derives every figure once.
//!
//! The summary is the primary source; where a producer had no chance to write its section
//! (a run killed early) the figures are recomputed from the timeline so a partial run still
//! reports what it measured. Latency percentiles come from the HDR histograms when present
//! (exact and mergeable), else from the summary. Pure; called by `report::generate`.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::ReportError;
use super::model::*;
use crate::cost::{self, PricingProfile};
use crate::results::summary::{Percentiles, Summary};
use crate::results::{Event, EventKind, RunDir, RunMeta, hdr};

/// A downtime episode belongs to a failover when it overlaps the failover's window
/// widened by this much before its start (clients may fail just before the watcher sees
/// the last endpoint go) ...
const BEFORE_FAILOVER_MS: i64 = 1_000;
/// ... and this much after its completion (endpoint and proxy propagation).
const AFTER_FAILOVER_MS: i64 = 5_000;

/// Everything read from one results directory.
#[derive(Debug)]
pub struct RunData {
    pub meta: RunMeta,
    pub summary: Summary,
    pub events: Vec<Event>,
    pub histograms: Vec<hdr::TaggedHistogram>,
}

impl RunData {
    /// Reads the four files; any that is corrupt is an error naming it.
    pub fn read(dir: &RunDir) -> Result<RunData, ReportError> {
        Ok(RunData {
            meta: dir.read_meta()?,
            summary: dir.read_summary()?,
            events: dir.read_timeline()?,
            histograms: hdr::read(&dir.file(crate::results::LATENCY_FILE))?,
        })
    }
}

/// Derives the report (without SLO verdicts or comparison) and the plot series.
pub fn build(data: &RunData, pricing: &PricingProfile) -> (Report, Series) {
    let meta = &data.meta;
    let start = meta.started_at;
    // A load bucket stamped at its start covers the second after it.
    let last_event = data
        .events
        .iter()
        .map(|e| match e.kind {
            EventKind::LoadBucket { .. } => e.ts + chrono::Duration::seconds(1),
            _ => e.ts,
        })
        .max();
    let end = meta
        .ended_at
        .or(last_event)
        .unwrap_or(start)
        .max(last_event.unwrap_or(start));
    let secs = |t: DateTime<Utc>| (t - start).num_milliseconds() as f64 / 1000.0;
    let duration_s = secs(end).max(0.0);

    let series = series(data, start, duration_s);
    let load = load_figures(data);
    let downtime = downtime(data);
    let failovers = failovers(data, &downtime);
    let (replica_seconds, replica_seconds_source) = match &data.summary.watch {
        Some(w) if !w.pod_seconds.is_empty() => (w.pod_seconds.clone(), "watch summary"),
        _ if !series.replicas.is_empty() => (integrate(&series.replicas, duration_s), "timeline"),
        _ => (BTreeMap::new(), "none"),
    };
    let cost = (!replica_seconds.is_empty()).then(|| {
        let successes: BTreeMap<String, u64> = load
            .as_ref()
            .map(|l| {
                l.by_color
                    .iter()
                    .map(|c| (c.color.clone(), c.requests.saturating_sub(c.errors)))
                    .collect()
            })
            .unwrap_or_default();
        let recorded = data
            .summary
            .watch
            .as_ref()
            .map(|w| w.pod_requests.clone())
            .unwrap_or_default();
        CostFigures {
            pricing: pricing.name.clone(),
            run: cost::cost_per_request(
                pricing,
                &replica_seconds,
                &recorded,
                cost::DEFAULT_POD_REQUESTS,
                &successes,
            ),
        }
    });

    let report = Report {
        report_schema_version: REPORT_SCHEMA_VERSION,
        run: RunInfo {
            run_id: meta.run_id.clone(),
            command: meta.command.clone(),
            resil_version: meta.resil_version.clone(),
            started_at: start,
            ended_at: meta.ended_at,
            status: meta.status,
            partial: meta.is_partial(),
            partial_reason: meta.partial_reason.clone(),
            context: meta.context.clone(),
            target_url: meta.target_url.clone(),
            scenario: meta
                .scenario
                .as_ref()
                .and_then(|s| s.get("name"))
                .and_then(|n| n.as_str())
                .map(str::to_string),
            duration_s,
        },
        failovers,
        downtime,
        scaling: data
            .summary
            .watch
            .as_ref()
            .map(|w| w.scaling.clone())
            .unwrap_or_default(),
        replica_seconds,
        replica_seconds_source: replica_seconds_source.to_string(),
        cost,
        chaos: chaos_actions(&data.events),
        recovery: super::recovery::recoveries(
            &data.events,
            load.as_ref().map_or(0, |l| l.requests),
            &meta.slos,
        ),
        decisions: decisions(&data.events),
        rollouts: super::rollouts::rollouts(&data.events),
        load,
        writes: data.summary.load.as_ref().and_then(|l| l.writes.clone()),
        slos: Vec::new(),
        slos_passed: true,
        baseline: None,
    };
    (report, series)
}

fn load_figures(data: &RunData) -> Option<LoadFigures> {
    let hist = |tag: &str| {
        data.histograms
            .iter()
            .find(|h| h.tag == tag)
            .and_then(|h| Percentiles::of(&h.histogram))
    };
    let rate = |errors: u64, requests: u64| {
        if requests == 0 {
            0.0
        } else {
            errors as f64 / requests as f64
        }
    };
    if let Some(s) = &data.summary.load {
        let by_color = s
            .by_color
            .iter()
            .map(|(color, c)| ColorFigures {
                color: color.clone(),
                requests: c.requests,
                errors: c.errors,
                error_rate: rate(c.errors, c.requests),
                latency: hist(&format!("color={color}"))
                    .or_else(|| (c.requests > c.errors).then_some(c.latency)),
            })
            .collect();
        let by_region = s
            .by_region
            .iter()
            .map(|(region, c)| RegionFigures {
                region: region.clone(),
                requests: c.requests,
                errors: c.errors,
                error_rate: rate(c.errors, c.requests),
                latency: (c.requests > c.errors).then_some(c.latency),
            })
            .collect();
        return Some(LoadFigures {
            source: "summary".into(),
            requests: s.requests,
            successes: s.successes,
            errors: s.errors,
            error_rate: rate(s.errors, s.requests),
            duration_s: s.duration_s,
            achieved_rate: s.achieved_rate,
            error_kinds: s.error_kinds.clone(),
            latency: hist("overall").or_else(|| (s.requests > s.errors).then_some(s.latency)),
            by_color,
            by_region,
        });
    }
    // No summary section: sum the per-second buckets the load engine did write.
    let mut requests = 0;
    let mut errors = 0;
    let mut seconds = 0u64;
    let mut colors: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for event in &data.events {
        if let EventKind::LoadBucket {
            requests: r,
            errors: e,
            by_color,
            ..
        } = &event.kind
        {
            requests += r;
            errors += e;
            seconds += 1;
            for (color, served) in by_color {
                let entry = colors.entry(color.clone()).or_default();
                entry.0 += served.requests;
                entry.1 += served.errors;
            }
        }
    }
    if seconds == 0 {
        return None;
    }
    Some(LoadFigures {
        source: "timeline".into(),
        requests,
        successes: requests - errors.min(requests),
        errors,
        error_rate: rate(errors, requests),
        duration_s: seconds as f64,
        achieved_rate: requests as f64 / seconds as f64,
        error_kinds: BTreeMap::new(),
        latency: hist("overall"),
        by_color: colors
            .into_iter()
            .map(|(color, (r, e))| ColorFigures {
                latency: hist(&format!("color={color}")),
                color,
                requests: r,
                errors: e,
                error_rate: rate(e, r),
            })
            .collect(),
        // The seconds do not keep regions: the summary alone has them.
        by_region: Vec::new(),
    })
}

fn downtime(data: &RunData) -> Vec<Downtime> {
    if let Some(load) = &data.summary.load {
        return load
            .downtime
            .iter()
            .map(|d| Downtime {
                started_at: d.started_at,
                ended_at: d.ended_at,
                duration_ms: d.duration_ms,
                failed_requests: d.failed_requests,
            })
            .collect();
    }
    data.events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Downtime {
                started_at,
                ended_at,
                duration_ms,
                failed_requests,
            } => Some(Downtime {
                started_at: *started_at,
                ended_at: *ended_at,
                duration_ms: *duration_ms,
                failed_requests: *failed_requests,
            }),
            _ => None,
        })
        .collect()
}

fn failovers(data: &RunData, downtime: &[Downtime]) -> Vec<FailoverEpisode> {
    let episode =
        |from: &str, to: &str, direction: &str, started_at, completed_at, ms| FailoverEpisode {
            from: from.to_string(),
            to: to.to_string(),
            direction: direction.to_string(),
            started_at,
            completed_at,
            control_plane_ms: ms,
            client_downtime_ms: None,
            downtime_unbounded: false,
            errors_during: 0,
        };
    let recorded: Vec<FailoverEpisode> = match &data.summary.watch {
        Some(w) if !w.failovers.is_empty() => w
            .failovers
            .iter()
            .map(|f| {
                let (from, to, dir) = (&f.from, &f.to, &f.direction);
                episode(from, to, dir, f.started_at, f.completed_at, f.duration_ms)
            })
            .collect(),
        _ => data
            .events
            .iter()
            .filter_map(|e| match &e.kind {
                EventKind::FailoverCompleted {
                    from,
                    to,
                    started_at,
                    duration_ms,
                } => Some(episode(
                    from,
                    to,
                    "failover",
                    *started_at,
                    e.ts,
                    *duration_ms,
                )),
                _ => None,
            })
            .collect(),
    };
    recorded
        .into_iter()
        .map(|mut f| {
            let lo = f.started_at - chrono::Duration::milliseconds(BEFORE_FAILOVER_MS);
            let hi = f.completed_at + chrono::Duration::milliseconds(AFTER_FAILOVER_MS);
            let mine: Vec<&Downtime> = downtime
                .iter()
                .filter(|d| d.started_at <= hi && d.ended_at.is_none_or(|e| e >= lo))
                .collect();
            f.downtime_unbounded = mine.iter().any(|d| d.duration_ms.is_none());
            f.client_downtime_ms =
                (!mine.is_empty()).then(|| mine.iter().filter_map(|d| d.duration_ms).sum::<u64>());
            let window_end = mine
                .iter()
                .filter_map(|d| d.ended_at)
                .fold(f.completed_at, DateTime::max);
            f.errors_during = data
                .events
                .iter()
                .filter_map(|e| match e.kind {
                    EventKind::LoadBucket { errors, .. }
                        if e.ts < window_end
                            && e.ts + chrono::Duration::seconds(1) > f.started_at =>
                    {
                        Some(errors)
                    }
                    _ => None,
                })
                .sum();
            f
        })
        .collect()
}

fn chaos_actions(events: &[Event]) -> Vec<ChaosAction> {
    let mut out: Vec<(String, ChaosAction)> = Vec::new();
    for event in events {
        match &event.kind {
            EventKind::ChaosInjected {
                id,
                action,
                targets,
                ..
            } => out.push((
                id.clone(),
                ChaosAction {
                    at: event.ts,
                    action: action.clone(),
                    targets: targets.clone(),
                    reverted_at: None,
                },
            )),
            EventKind::ChaosReverted { id, .. } => {
                if let Some((_, a)) = out
                    .iter_mut()
                    .find(|(i, a)| i == id && a.reverted_at.is_none())
                {
                    a.reverted_at = Some(event.ts);
                }
            }
            _ => {}
        }
    }
    out.into_iter().map(|(_, a)| a).collect()
}

/// The controllers' decisions in time order (several writers share one timeline, so file
/// order is not time order; the sort is stable for decisions stamped in the same ms).
fn decisions(events: &[Event]) -> Vec<Decision> {
    let mut out: Vec<Decision> = events
        .iter()
        .filter_map(|event| match &event.kind {
            EventKind::Decision {
                controller,
                inputs,
                rule,
                action,
            } => Some(Decision {
                at: event.ts,
                controller: controller.clone(),
                rule: rule.clone(),
                action: action.clone(),
                inputs: inputs.clone(),
            }),
            _ => None,
        })
        .collect();
    out.sort_by_key(|d| d.at);
    out
}

fn series(data: &RunData, start: DateTime<Utc>, duration_s: f64) -> Series {
    let secs = |t: DateTime<Utc>| (t - start).num_milliseconds() as f64 / 1000.0;
    let mut out = Series {
        duration_s,
        ..Series::default()
    };
    let mut hpa: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for event in &data.events {
        let t = secs(event.ts);
        match &event.kind {
            EventKind::LoadBucket {
                requests,
                errors,
                p50_us,
                p99_us,
                ..
            } => out.buckets.push(BucketPoint {
                // A bucket covers [ts, ts + 1 s): plot it at its middle.
                t: t + 0.5,
                requests: *requests,
                errors: *errors,
                p50_ms: *p50_us as f64 / 1000.0,
                p99_ms: *p99_us as f64 / 1000.0,
            }),
            EventKind::DeploymentReplicas {
                deployment,
                color,
                ready,
                ..
            } => out
                .replicas
                .entry(color_of(color, deployment))
                .or_default()
                .push((t, f64::from(*ready))),
            EventKind::HpaReplicas {
                hpa: name,
                color,
                current,
                ..
            } => hpa
                .entry(color_of(color, name))
                .or_default()
                .push((t, f64::from(*current))),
            EventKind::ChaosInjected {
                action, targets, ..
            } => out.markers.push(Marker {
                t,
                kind: MarkerKind::Chaos,
                label: format!("{action} {}", targets.join(" ")),
            }),
            EventKind::SelectorSwitched { to, .. } => out.markers.push(Marker {
                t,
                kind: MarkerKind::SelectorSwitch,
                label: format!("→ {to}"),
            }),
            _ => {}
        }
    }
    // Deployment readiness is what serves traffic; the HPA's view fills in colours the
    // recorder saw only through their autoscaler.
    for (color, points) in hpa {
        out.replicas.entry(color).or_insert(points);
    }
    out.buckets.sort_by(|a, b| a.t.total_cmp(&b.t));
    for points in out.replicas.values_mut() {
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    out.markers.sort_by(|a, b| a.t.total_cmp(&b.t));
    out
}

/// `version` colour from the event, else the name's last `-` part (`web-blue` → `blue`).
fn color_of(color: &Option<String>, name: &str) -> String {
    color
        .clone()
        .unwrap_or_else(|| name.rsplit('-').next().unwrap_or(name).to_string())
}

/// Replica-seconds of step series: each value holds until the next point or the end.
fn integrate(replicas: &BTreeMap<String, Vec<(f64, f64)>>, end: f64) -> BTreeMap<String, f64> {
    replicas
        .iter()
        .map(|(color, points)| {
            let total = points
                .iter()
                .enumerate()
                .map(|(i, (t, v))| {
                    let until = points.get(i + 1).map_or(end, |p| p.0).max(*t);
                    (until - t.max(0.0)).max(0.0) * v
                })
                .sum();
            (color.clone(), total)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replica_seconds_hold_each_count_until_the_next_change_or_the_end() {
        // blue: 2 pods for 10 s, 0 for 5 s, 1 for the last 5 s → 25 pod-s.
        let replicas = BTreeMap::from([(
            "blue".to_string(),
            vec![(0.0, 2.0), (10.0, 0.0), (15.0, 1.0)],
        )]);
        assert_eq!(integrate(&replicas, 20.0)["blue"], 25.0);
    }

    #[test]
    fn the_colour_comes_from_the_event_or_the_deployment_name() {
        assert_eq!(color_of(&Some("green".into()), "web-blue"), "green");
        assert_eq!(color_of(&None, "web-blue"), "blue");
    }
}
