//! The replicator's loop: read the source's change feed (`GET /kv?after=N&min_age_ms=L`),
//! write each entry to the target (`PUT /kv/{key}` marked `x-resil-replicated-from`), move
//! on. It pulls, so nothing queues here: a write stays in the source until it is at least
//! the lag old, then it is copied. A source that dies takes the writes of its last lag
//! with it, as an asynchronously replicated database does. In synchronous mode the source
//! itself copies each write to the target before acknowledging it (its `/admin/replica`,
//! set at start and cleared at the end); the loop then only catches up on writes made
//! before, passing over those the feed marks as copied to its target since it named the
//! replica (a mark from an earlier setting is not trusted: that replica may have lost the
//! write since). A key the loop copied itself is copied again at its next marked write, as
//! the loop's older value may have reached the target after the source's newer one. Called
//! by [`super::command`] and by tests; it prints nothing.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use base64::Engine as _;
use chrono::Utc;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::{ReplicateError, ReplicatePlan};
use crate::demo::app::kv::{Feed, REGION_HEADER, REPLICATED_HEADER};

/// Entries asked for per feed page.
const PAGE: usize = 500;

/// What the replicator did, so far or in all.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ReplicaReport {
    /// Writes copied to the target.
    pub copied: u64,
    /// Of those, writes acknowledged before this replicator started (its catch-up): not
    /// in the lag figures, which would measure the time before it ran.
    pub caught_up: u64,
    /// Writes the source had copied to the target itself before acknowledging them
    /// (synchronous mode): not copied again, and not in the lag figures.
    pub held_already: u64,
    /// Value bytes copied.
    pub bytes: u64,
    /// The source's sequence number the target holds everything up to.
    pub replicated_seq: u64,
    /// The source's latest sequence number when last asked.
    pub source_seq: u64,
    /// Writes in the source not yet copied when last asked (younger than the lag, or
    /// beyond the page).
    pub pending: u64,
    /// From a write's acknowledgement in the source to its copy in the target: the
    /// latest, the mean and the largest, in ms (writes acknowledged while it ran).
    pub lag_last_ms: u64,
    pub lag_mean_ms: u64,
    pub lag_max_ms: u64,
    /// Feed reads that failed (source down, bad answer).
    pub source_errors: u64,
    /// Copies the target refused or did not answer (retried).
    pub target_errors: u64,
    /// The last failure, for the operator.
    pub last_error: Option<String>,
    /// Times the source came back with a new store (its feed started again): a replaced
    /// pod, a region back from an outage.
    pub source_restarts: u64,
    /// Synchronous mode: the source copies before acknowledging.
    pub sync: bool,
    /// How long it ran, in ms.
    pub elapsed_ms: u64,
}

impl ReplicaReport {
    /// The target holds the source's writes up to `seq` (copied, or held already).
    fn passed(&mut self, seq: u64) {
        self.replicated_seq = seq;
        self.pending = self.pending.saturating_sub(1);
    }

    /// One write copied: `lag` after its acknowledgement, or `None` for one acknowledged
    /// before the replicator started.
    fn copied_one(&mut self, lag: Option<Duration>, bytes: usize) {
        self.copied += 1;
        self.bytes += bytes as u64;
        let Some(lag) = lag else {
            self.caught_up += 1;
            return;
        };
        let ms = lag.as_millis() as u64;
        let timed = self.copied - self.caught_up;
        self.lag_mean_ms = (self.lag_mean_ms * (timed - 1) + ms) / timed;
        self.lag_last_ms = ms;
        self.lag_max_ms = self.lag_max_ms.max(ms);
    }
}

/// Runs until `cancel` fires or the plan's duration passes; `progress` gets the figures
/// after every round that changed them.
pub async fn run(
    plan: &ReplicatePlan,
    cancel: CancellationToken,
    mut progress: impl FnMut(&ReplicaReport),
) -> Result<ReplicaReport, ReplicateError> {
    let client = reqwest::Client::builder()
        .timeout(plan.timeout)
        .build()
        .map_err(|e| ReplicateError::Client(e.to_string()))?;
    let started = Instant::now();
    let mut report = ReplicaReport {
        sync: plan.sync,
        ..ReplicaReport::default()
    };
    // Writes up to this sequence number were acknowledged before the replicator ran (its
    // catch-up, not timed); in sync mode the feed's marks above it are this run's.
    let mut since: Option<u64> = None;
    if plan.sync {
        since = Some(set_replica(&client, plan).await?);
    }
    // Sync mode: keys the loop copied itself (see the module's note).
    let mut copied_keys: HashSet<String> = HashSet::new();
    let deadline = plan.duration.map(|d| started + d);
    let mut full_page = false;
    // The source did not answer last round: when it does again it may be a new process
    // (a region back from an outage), which synchronous mode must name the replica to.
    let mut source_was_down = false;
    // The source's store id: another one is a new process whose sequence started again.
    let mut store: Option<String> = None;
    loop {
        if !full_page {
            let pause = tokio::time::sleep(plan.poll);
            tokio::select! {
                // Ctrl-C or the caller: stop between rounds, never in the middle of a copy.
                () = cancel.cancelled() => break,
                // The next round.
                () = pause => {}
            }
        }
        if cancel.is_cancelled() || deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
        full_page = false;
        let (feed, region) = match read_feed(&client, plan, report.replicated_seq).await {
            Ok(read) => read,
            Err(reason) => {
                report.source_errors += 1;
                report.last_error = Some(format!("reading {}: {reason}", plan.from));
                source_was_down = true;
                progress(&report);
                continue;
            }
        };
        // A new store id, or (from a source that names none) a sequence behind what was
        // copied: the source is a new process whose feed starts again at 1.
        let new_store = store
            .as_ref()
            .is_some_and(|id| !feed.store.is_empty() && feed.store != *id);
        let restarted = new_store || feed.last_seq < report.replicated_seq;
        store = Some(feed.store.clone());
        if restarted {
            report.source_restarts += 1;
            report.last_error = Some(format!(
                "{} came back with a new store (copied up to seq {} of the old one, the new \
                 one is at {}); copying it from its start",
                plan.from, report.replicated_seq, feed.last_seq
            ));
            report.replicated_seq = 0;
            // Every write of the new store is made while this replicator runs.
            since = Some(0);
            // Read again at once, from the start.
            full_page = true;
            source_was_down = true;
        }
        if std::mem::take(&mut source_was_down) && plan.sync {
            match set_replica(&client, plan).await {
                // A new process's marks start with this setting.
                Ok(seq) if restarted => since = Some(seq),
                Ok(_) => {}
                Err(e) => {
                    report.last_error = Some(e.to_string());
                    source_was_down = true;
                }
            }
        }
        if restarted {
            continue;
        }
        report.source_seq = feed.last_seq;
        report.pending = feed.pending;
        let boundary = *since.get_or_insert(feed.last_seq);
        let mut taken = 0;
        for entry in &feed.entries {
            if cancel.is_cancelled() {
                break;
            }
            let held = entry.seq > boundary
                && entry.copied_to.as_deref() == Some(plan.to.as_str())
                && !copied_keys.contains(&entry.key);
            if held {
                report.held_already += 1;
                report.passed(entry.seq);
                taken += 1;
                continue;
            }
            let Ok(value) = base64::engine::general_purpose::STANDARD.decode(&entry.value) else {
                report.source_errors += 1;
                report.last_error = Some(format!("the source sent bad base64 for {}", entry.key));
                break;
            };
            let bytes = value.len();
            let put = client
                .put(format!("{}/kv/{}", plan.to, entry.key))
                .header(REPLICATED_HEADER.clone(), region.as_str())
                .body(value)
                .send()
                .await;
            match put {
                Ok(r) if r.status().is_success() => {
                    let lag = (entry.seq > boundary)
                        .then(|| (Utc::now() - entry.acked_at).to_std().unwrap_or_default());
                    report.copied_one(lag, bytes);
                    if plan.sync {
                        copied_keys.insert(entry.key.clone());
                    }
                    report.passed(entry.seq);
                    taken += 1;
                }
                // Not copied: the same entry is the first of the next round.
                Ok(r) => {
                    report.target_errors += 1;
                    report.last_error = Some(format!(
                        "writing {} to {}: {}",
                        entry.key,
                        plan.to,
                        r.status()
                    ));
                    break;
                }
                Err(e) => {
                    report.target_errors += 1;
                    report.last_error = Some(format!("writing {} to {}: {e}", entry.key, plan.to));
                    break;
                }
            }
        }
        full_page = taken == PAGE;
        if taken > 0 || !feed.entries.is_empty() {
            progress(&report);
        }
    }
    if plan.sync {
        // Best effort: a source that is gone has no replica to clear.
        if let Err(err) = clear_replica(&client, plan).await {
            report.last_error = Some(err.to_string());
        }
    }
    report.elapsed_ms = started.elapsed().as_millis() as u64;
    Ok(report)
}

/// One page of the source's feed, and the source's region name.
async fn read_feed(
    client: &reqwest::Client,
    plan: &ReplicatePlan,
    after: u64,
) -> Result<(Feed, String), String> {
    let url = format!(
        "{}/kv?after={after}&limit={PAGE}&min_age_ms={}",
        plan.from,
        plan.lag.as_millis()
    );
    let response = client.get(url).send().await.map_err(|e| e.to_string())?;
    if !response.status().is_success() {
        return Err(format!(
            "{} (is it a resil demo app with the /kv write path?)",
            response.status()
        ));
    }
    let region = response
        .headers()
        .get(&REGION_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("unknown")
        .to_string();
    let feed = response
        .json::<Feed>()
        .await
        .map_err(|e| format!("the feed is not the demo app's JSON: {e}"))?;
    Ok((feed, region))
}

/// Names the target the source's synchronous replica; returns the source's `since_seq`
/// (0 from a demo app that does not say).
async fn set_replica(
    client: &reqwest::Client,
    plan: &ReplicatePlan,
) -> Result<u64, ReplicateError> {
    let body = serde_json::json!({
        "url": plan.to,
        "timeout": humantime::format_duration(plan.timeout).to_string(),
    });
    let response = client
        .put(format!("{}/admin/replica", plan.from))
        .json(&body)
        .send()
        .await
        .map_err(|e| ReplicateError::SetReplica {
            url: plan.from.clone(),
            reason: e.to_string(),
        })?;
    if !response.status().is_success() {
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        return Err(ReplicateError::SetReplica {
            url: plan.from.clone(),
            reason: format!("{status}: {}", text.trim()),
        });
    }
    let answer: serde_json::Value = response.json().await.unwrap_or_default();
    Ok(answer["since_seq"].as_u64().unwrap_or(0))
}

async fn clear_replica(
    client: &reqwest::Client,
    plan: &ReplicatePlan,
) -> Result<(), ReplicateError> {
    let response = client
        .delete(format!("{}/admin/replica", plan.from))
        .send()
        .await
        .map_err(|e| ReplicateError::SetReplica {
            url: plan.from.clone(),
            reason: e.to_string(),
        })?;
    if !response.status().is_success() {
        return Err(ReplicateError::SetReplica {
            url: plan.from.clone(),
            reason: response.status().to_string(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_keeps_the_mean_and_the_largest_lag_of_writes_made_while_it_ran() {
        let mut r = ReplicaReport::default();
        r.copied_one(None, 5);
        r.copied_one(Some(Duration::from_millis(100)), 3);
        r.copied_one(Some(Duration::from_millis(300)), 4);
        assert_eq!((r.copied, r.caught_up, r.bytes), (3, 1, 12));
        assert_eq!(
            (r.lag_last_ms, r.lag_mean_ms, r.lag_max_ms),
            (300, 200, 300)
        );
    }
}
