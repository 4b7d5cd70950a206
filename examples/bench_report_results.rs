//! Writes a synthetic one-hour results directory for `scripts/bench-report.sh`: 3600
//! per-second load buckets (2778 requests each, 10,000,800 in all) served by blue then
//! green, replica and HPA events, two chaos injections with a failover, and the 10M
//! request latencies in `latency.hdr` (overall and per colour). Deterministic.
//!
//! Usage: `cargo run --release --example bench_report_results -- DIR`

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use resil::results::summary::{
    ColorLoad, DowntimeEpisode, Failover, LoadSummary, Percentiles, PodRequests, Summary,
    WatchSummary,
};
use resil::results::timeline::Served;
use resil::results::{Event, EventKind, RunDir, RunMeta, RunStatus, hdr};

const SECONDS: u64 = 3600;
const PER_SECOND: u64 = 2778;

fn main() -> anyhow::Result<()> {
    let dir = std::env::args()
        .nth(1)
        .ok_or_else(|| anyhow::anyhow!("usage: bench_report_results DIR"))?;
    let run = RunDir::create(&dir)?;
    let start: DateTime<Utc> = Utc.with_ymd_and_hms(2026, 11, 23, 8, 0, 0).unwrap();
    let at = |ms: i64| start + chrono::Duration::milliseconds(ms);
    let switch_s = 1800;

    let mut meta = RunMeta::start("bench-1h", "run");
    meta.started_at = start;
    meta.ended_at = Some(at(SECONDS as i64 * 1000));
    meta.status = RunStatus::Complete;
    meta.slos = [
        "failover_time<2s",
        "downtime<1s",
        "error_rate<1%",
        "p99<300ms",
        "cost_per_1m<0.50",
    ]
    .map(String::from)
    .to_vec();
    run.write_meta(&meta)?;

    // Latencies: a deterministic generator, ~8–40 ms with a 1% tail to ~400 ms.
    let mut seed: u64 = 0x5eed;
    let mut next = move || {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        seed >> 33
    };
    let mut overall = hdr::new_histogram();
    let mut by_color = BTreeMap::from([
        ("blue", hdr::new_histogram()),
        ("green", hdr::new_histogram()),
    ]);
    let mut timeline = run.timeline()?;
    let mut errors_total = 0;
    for s in 0..SECONDS {
        let color = if s < switch_s { "blue" } else { "green" };
        let errors = if s == switch_s {
            120
        } else {
            u64::from(s % 97 == 0)
        };
        errors_total += errors;
        let mut bucket = hdr::new_histogram();
        for _ in 0..PER_SECOND - errors {
            let r = next();
            let us = if r % 100 == 0 {
                100_000 + r % 300_000
            } else {
                8_000 + r % 32_000
            };
            bucket.saturating_record(us);
        }
        overall.add(&bucket)?;
        if let Some(h) = by_color.get_mut(color) {
            h.add(&bucket)?;
        }
        let mut served =
            BTreeMap::from([(color.to_string(), Served::counts(PER_SECOND - errors, 0))]);
        if errors > 0 {
            served.insert("unknown".into(), Served::counts(errors, errors));
        }
        timeline.append(&Event {
            ts: at(s as i64 * 1000),
            source: "load".into(),
            kind: EventKind::LoadBucket {
                second: s,
                requests: PER_SECOND,
                errors,
                p50_us: bucket.value_at_quantile(0.5),
                p90_us: bucket.value_at_quantile(0.9),
                p99_us: bucket.value_at_quantile(0.99),
                max_us: bucket.max(),
                by_color: served,
                by_pod: BTreeMap::new(),
                latency_by_color: BTreeMap::new(),
            },
        })?;
        if s % 60 == 0 {
            for (c, ready) in [
                ("blue", if s < switch_s { 2 + (s / 600) % 3 } else { 0 }),
                ("green", if s < switch_s { 1 } else { 3 }),
            ] {
                timeline.append(&Event {
                    ts: at(s as i64 * 1000 + 10),
                    source: "watch".into(),
                    kind: EventKind::DeploymentReplicas {
                        deployment: format!("web-{c}"),
                        color: Some(c.into()),
                        desired: ready as i32,
                        ready: ready as i32,
                        available: ready as i32,
                    },
                })?;
            }
        }
    }
    for (s, action) in [(switch_s, "kill-pods"), (2700, "latency")] {
        timeline.append(&Event {
            ts: at(s as i64 * 1000),
            source: "chaos".into(),
            kind: EventKind::ChaosInjected {
                id: format!("c{s}"),
                action: action.into(),
                targets: vec!["deployment/web-blue".into()],
                detail: String::new(),
            },
        })?;
    }
    timeline.append(&Event {
        ts: at(switch_s as i64 * 1000 + 700),
        source: "watch".into(),
        kind: EventKind::SelectorSwitched {
            service: "web".into(),
            from: Some("blue".into()),
            to: "green".into(),
            reason: "blue has 0 ready endpoints".into(),
        },
    })?;

    let pct = |h: &hdrhistogram::Histogram<u64>| Percentiles {
        p50_us: h.value_at_quantile(0.5),
        p75_us: h.value_at_quantile(0.75),
        p90_us: h.value_at_quantile(0.9),
        p99_us: h.value_at_quantile(0.99),
        p999_us: h.value_at_quantile(0.999),
        max_us: h.max(),
        mean_us: h.mean(),
    };
    let requests = SECONDS * PER_SECOND;
    let pod = PodRequests {
        cpu_millis: 100,
        memory_bytes: 128 << 20,
    };
    let summary = Summary {
        load: Some(LoadSummary {
            url: "http://127.0.0.1:30080/".into(),
            model: "open".into(),
            started_at: start,
            duration_s: SECONDS as f64,
            target_rate: Some(PER_SECOND as f64),
            achieved_rate: PER_SECOND as f64,
            requests,
            successes: requests - errors_total,
            errors: errors_total,
            error_kinds: BTreeMap::from([("connect".into(), errors_total)]),
            status_codes: BTreeMap::from([("200".into(), requests - errors_total)]),
            latency: pct(&overall),
            latency_uncorrected: None,
            by_color: by_color
                .iter()
                .map(|(c, h)| {
                    (
                        c.to_string(),
                        ColorLoad {
                            requests: h.len(),
                            errors: 0,
                            latency: pct(h),
                        },
                    )
                })
                .collect(),
            by_region: BTreeMap::new(),
            late_sends: 0,
            dropped_sends: 0,
            downtime_episodes: 1,
            downtime_total_ms: 750,
            writes: None,
            downtime: vec![DowntimeEpisode {
                started_at: at(switch_s as i64 * 1000 + 50),
                ended_at: Some(at(switch_s as i64 * 1000 + 800)),
                duration_ms: Some(750),
                failed_requests: 120,
            }],
        }),
        watch: Some(WatchSummary {
            failovers: vec![Failover {
                from: "blue".into(),
                to: "green".into(),
                started_at: at(switch_s as i64 * 1000),
                completed_at: at(switch_s as i64 * 1000 + 700),
                duration_ms: 700,
                standby_prepared: false,
                prepare_ms: None,
                direction: "failover".into(),
            }],
            scaling: Vec::new(),
            pod_seconds: BTreeMap::from([("blue".into(), 5400.0), ("green".into(), 7200.0)]),
            pod_requests: BTreeMap::from([("blue".into(), pod), ("green".into(), pod)]),
            duration_s: SECONDS as f64,
        }),
        ..Summary::default()
    };
    run.write_summary(&summary)?;
    let tagged = |tag: &str, h: hdrhistogram::Histogram<u64>| hdr::TaggedHistogram {
        tag: tag.into(),
        start: Duration::from_secs(start.timestamp() as u64),
        duration: Duration::from_secs(SECONDS),
        histogram: h,
    };
    let mut hists = vec![tagged("overall", overall)];
    for (c, h) in by_color {
        hists.push(tagged(&format!("color={c}"), h));
    }
    hdr::write(&run.file(resil::results::LATENCY_FILE), &hists)?;
    println!("{requests} requests in {SECONDS} buckets written to {dir}");
    Ok(())
}
