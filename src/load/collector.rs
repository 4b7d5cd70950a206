//! The collector: merges what the worker threads send — per-second buckets into one
//! timeline (a second is released once every thread is past it), run totals into the
//! run's figures, downtime episodes into a bounded list. Owned by the engine's `run`.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use hdrhistogram::Histogram;

use super::stats::{Bucket, Episode, KIND_NAMES, MAX_EPISODES, Message, add_served};
use crate::results::hdr::new_histogram;
use crate::results::summary::{ColorLoad, DowntimeEpisode, Percentiles};
use crate::results::timeline::Served;

/// Latency percentiles of a histogram (all zero when it is empty).
pub fn percentiles(h: &Histogram<u64>) -> Percentiles {
    Percentiles::of(h).unwrap_or_default()
}

/// Merges what the threads send: buckets into seconds (released once every thread is
/// past them), totals into run totals.
pub struct Collector {
    /// Per thread: the first second it may still send.
    next: Vec<u64>,
    pending: BTreeMap<u64, Bucket>,
    /// The next second to release.
    released: u64,
    pub overall: Histogram<u64>,
    pub uncorrected: Histogram<u64>,
    pub requests: u64,
    pub successes: u64,
    pub errors: u64,
    pub late_sends: u64,
    pub dropped_sends: u64,
    /// When the run's last request left, from its start.
    pub last_sent: Duration,
    pub kinds: [u64; 6],
    pub status_codes: BTreeMap<u16, u64>,
    pub by_color: BTreeMap<String, (Served, Histogram<u64>)>,
    /// Per region a gateway named (all [`UNKNOWN`](super::stats::UNKNOWN) without one).
    pub by_region: BTreeMap<String, (Served, Histogram<u64>)>,
    /// The first [`MAX_EPISODES`] downtime episodes.
    pub episodes: Vec<Episode>,
    /// All downtime episodes, and the summed length of the ended ones.
    pub episodes_total: u64,
    pub downtime_total: Duration,
    /// Every thread's writes (`--write-ratio`), merged.
    pub writes: super::writes::ThreadWrites,
}

impl Collector {
    pub fn new(threads: usize) -> Collector {
        Collector {
            next: vec![0; threads],
            pending: BTreeMap::new(),
            released: 0,
            overall: new_histogram(),
            uncorrected: new_histogram(),
            requests: 0,
            successes: 0,
            errors: 0,
            late_sends: 0,
            dropped_sends: 0,
            last_sent: Duration::ZERO,
            kinds: [0; 6],
            status_codes: BTreeMap::new(),
            by_color: BTreeMap::new(),
            by_region: BTreeMap::new(),
            episodes: Vec::new(),
            episodes_total: 0,
            downtime_total: Duration::ZERO,
            writes: Default::default(),
        }
    }

    /// Counts a downtime episode; keeps it (and returns true) while fewer than
    /// [`MAX_EPISODES`] are kept, so a flapping target cannot grow memory without bound.
    pub fn record_episode(&mut self, episode: Episode) -> bool {
        self.episodes_total += 1;
        if let Some(end) = episode.ended {
            self.downtime_total += end.saturating_sub(episode.started);
        }
        let keep = self.episodes.len() < MAX_EPISODES;
        if keep {
            self.episodes.push(episode);
        }
        keep
    }

    /// Takes one message; returns the seconds every thread is now past, in order (empty
    /// seconds included, so a stalled target shows as zeros, not as a gap).
    pub fn accept(&mut self, message: Message) -> Vec<Bucket> {
        match message {
            Message::Bucket {
                thread,
                bucket,
                next,
            } => {
                if let Some(bucket) = bucket {
                    let _ = self.overall.add(&bucket.latency);
                    match self.pending.remove(&bucket.second) {
                        Some(mut merged) => {
                            merged.merge(bucket);
                            self.pending.insert(merged.second, merged);
                        }
                        None => {
                            self.pending.insert(bucket.second, bucket);
                        }
                    }
                }
                if let Some(slot) = self.next.get_mut(thread) {
                    *slot = (*slot).max(next);
                }
                let upto = self.next.iter().copied().min().unwrap_or(0);
                self.release(upto)
            }
            Message::Episode(episode) => {
                self.record_episode(episode);
                Vec::new()
            }
            // The engine writes these to the timeline; no summary figure counts them.
            Message::Recovery(_) => Vec::new(),
            Message::Writes(writes) => {
                self.writes.merge(*writes);
                Vec::new()
            }
            Message::Done { totals, .. } => {
                self.requests += totals.requests;
                self.successes += totals.successes;
                self.errors += totals.errors;
                self.late_sends += totals.late_sends;
                self.dropped_sends += totals.dropped_sends;
                self.last_sent = self.last_sent.max(totals.last_sent);
                for (sum, n) in self.kinds.iter_mut().zip(totals.kinds) {
                    *sum += n;
                }
                for (code, n) in totals.status_codes {
                    *self.status_codes.entry(code).or_default() += n;
                }
                let _ = self.uncorrected.add(&totals.uncorrected);
                add_totals(&mut self.by_color, totals.by_color);
                add_totals(&mut self.by_region, totals.by_region);
                Vec::new()
            }
        }
    }

    /// A producer that will send no more seconds (it finished, or it is gone): returns the
    /// seconds every producer is now past.
    pub fn close_thread(&mut self, thread: usize) -> Vec<Bucket> {
        if let Some(slot) = self.next.get_mut(thread) {
            *slot = u64::MAX;
        }
        let upto = self.next.iter().copied().min().unwrap_or(0);
        self.release(upto)
    }

    /// Releases every second before `upto`; with `u64::MAX`, everything still pending.
    fn release(&mut self, upto: u64) -> Vec<Bucket> {
        let mut out = Vec::new();
        let last_pending = self.pending.keys().next_back().copied();
        let end = if upto == u64::MAX {
            last_pending.map_or(self.released, |s| s + 1)
        } else {
            upto
        };
        while self.released < end {
            let s = self.released;
            out.push(self.pending.remove(&s).unwrap_or_else(|| Bucket::empty(s)));
            self.released += 1;
        }
        out
    }

    /// The run's per-colour figures.
    pub fn color_summary(&self) -> BTreeMap<String, ColorLoad> {
        figures(&self.by_color)
    }

    /// The run's per-region figures; none when no answer named a region (no gateway).
    pub fn region_summary(&self) -> BTreeMap<String, ColorLoad> {
        if self.by_region.keys().all(|r| r == super::stats::UNKNOWN) {
            return BTreeMap::new();
        }
        figures(&self.by_region)
    }

    /// Error counts by kind name (kinds that occurred).
    pub fn error_kinds(&self) -> BTreeMap<String, u64> {
        KIND_NAMES
            .iter()
            .zip(self.kinds)
            .filter(|(_, n)| *n > 0)
            .map(|(k, n)| (k.to_string(), n))
            .collect()
    }
}

/// An episode in wall-clock terms.
pub fn episode_at(start: DateTime<Utc>, e: &Episode) -> DowntimeEpisode {
    let at = |d: Duration| start + chrono::Duration::milliseconds(d.as_millis() as i64);
    DowntimeEpisode {
        started_at: at(e.started),
        ended_at: e.ended.map(at),
        duration_ms: e
            .ended
            .map(|end| end.saturating_sub(e.started).as_millis() as u64),
        failed_requests: e.failed_requests,
    }
}

/// Adds a thread's run totals per name into the run's.
fn add_totals(
    into: &mut BTreeMap<String, (Served, Histogram<u64>)>,
    from: BTreeMap<String, (Served, Histogram<u64>)>,
) {
    for (name, (served, hist)) in from {
        let entry = into
            .entry(name)
            .or_insert_with(|| (Served::default(), new_histogram()));
        add_served(&mut entry.0, served);
        // Same bounds on both sides, so adding cannot fail.
        let _ = entry.1.add(&hist);
    }
}

/// Counts and percentiles per name.
fn figures(totals: &BTreeMap<String, (Served, Histogram<u64>)>) -> BTreeMap<String, ColorLoad> {
    totals
        .iter()
        .map(|(name, (s, h))| {
            (
                name.clone(),
                ColorLoad {
                    requests: s.requests,
                    errors: s.errors,
                    latency: percentiles(h),
                },
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_are_released_only_when_every_thread_is_past_them() {
        let mut c = Collector::new(2);
        let mut b = Bucket::empty(0);
        b.requests = 3;
        let out = c.accept(Message::Bucket {
            thread: 0,
            bucket: Some(b),
            next: 2,
        });
        assert!(out.is_empty());
        let out = c.accept(Message::Bucket {
            thread: 1,
            bucket: None,
            next: 2,
        });
        assert_eq!(
            out.iter()
                .map(|b| (b.second, b.requests))
                .collect::<Vec<_>>(),
            vec![(0, 3), (1, 0)]
        );
    }
}
