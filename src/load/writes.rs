//! `resil load --write-ratio F`: that fraction of requests are `PUT /kv/{unique key}` to
//! the demo app's write path; each acknowledgement (`x-resil-ack: REGION@STORE:SEQ`, a 2xx) is
//! logged with its time. After the run [`verify`] reads every acknowledged key back from
//! `--verify-url` (the surviving region, or the gateway) and gives the RPO:
//!
//! - **lost**: acknowledged writes that read back `404` — the RPO in writes — and the
//!   *window* they span, from the oldest lost acknowledgement to the newest (the RPO in
//!   time);
//! - **correctness errors**: a write read back with another value, or one ack id given to
//!   two different writes (acknowledged twice);
//! - **unverified**: a read that failed (no answer, 5xx), so neither lost nor kept.
//!
//! Which requests write is decided per thread by a counter, not by chance: request n of a
//! thread writes when ⌊(n+1)·F⌋ > ⌊n·F⌋, so a thread's writes are F of its requests to
//! within one. Keys are `PREFIX-THREAD-N`, the prefix unique to the run; the value is
//! derived from the key, so a read-back is checked without keeping values. The engine
//! (`engine.rs`) calls [`is_write`], [`encode_put`] and [`ThreadWrites`]; the command layer
//! calls [`verify`].

use std::collections::HashMap;
use std::io::Write as _;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::StreamExt as _;

use super::plan::RequestTemplate;
pub use crate::results::summary::WriteSummary;

/// Acknowledged writes one run tracks (about 40 bytes each); writes acknowledged past it
/// are counted as `untracked`, not verified.
pub const MAX_TRACKED: usize = 1_000_000;
/// Lost keys and correctness errors listed in the summary (all are counted).
const MAX_LISTED: usize = 20;
/// Read-backs in flight at once.
const VERIFY_CONCURRENCY: usize = 16;

/// The write mix of a plan.
#[derive(Debug, Clone, PartialEq)]
pub struct WriteMix {
    /// The fraction of requests that write, in (0, 1].
    pub ratio: f64,
    /// Unique to this run (and generator): the keys' prefix.
    pub prefix: String,
    /// The target's path to the write path, ending in `/kv/`.
    pub kv_path: String,
    /// Where acknowledged writes are read back after the run.
    pub verify_url: Option<String>,
}

/// Whether a thread's request `n` (0, 1, ...) is a write at `ratio`.
pub fn is_write(n: u64, ratio: f64) -> bool {
    if ratio >= 1.0 {
        return true;
    }
    if ratio <= 0.0 {
        return false;
    }
    ((n + 1) as f64 * ratio).floor() > (n as f64 * ratio).floor()
}

/// The key of a thread's request `n`.
pub fn key(prefix: &str, thread: usize, n: u64) -> String {
    format!("{prefix}-{thread}-{n}")
}

/// The value written under `key`: derived from it, so a read-back can be checked alone.
pub fn value_of(key: &str) -> String {
    format!("written-as-{key}")
}

/// Encodes `PUT {kv_path}{key}` with the template's host and headers into `out`.
pub fn encode_put(
    template: &RequestTemplate,
    kv_path: &str,
    key: &str,
    keepalive: bool,
    out: &mut Vec<u8>,
) {
    out.clear();
    let value = value_of(key);
    // Writes into a Vec cannot fail.
    let _ = write!(
        out,
        "PUT {kv_path}{key} HTTP/1.1\r\nHost: {}\r\n",
        template.authority
    );
    for (name, value) in &template.headers {
        let skip = ["host", "content-length", "transfer-encoding"];
        if !skip.iter().any(|s| name.eq_ignore_ascii_case(s)) {
            let _ = write!(out, "{name}: {value}\r\n");
        }
    }
    if !keepalive {
        out.extend_from_slice(b"Connection: close\r\n");
    }
    let _ = write!(out, "Content-Length: {}\r\n\r\n{value}", value.len());
}

/// One acknowledged write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acked {
    pub thread: u32,
    pub n: u64,
    /// Offset of the acknowledgement from the run's start.
    pub at: Duration,
    /// `REGION@STORE:SEQ`.
    pub ack: Box<str>,
}

/// A thread's writes, sent to the collector when the thread ends.
#[derive(Debug, Default)]
pub struct ThreadWrites {
    pub attempted: u64,
    /// Not acknowledged: no answer, a non-2xx answer, or no `x-resil-ack`.
    pub unacknowledged: u64,
    pub acked: Vec<Acked>,
    /// Acknowledged past the tracking limit.
    pub untracked: u64,
    /// This thread may keep this many.
    pub room: usize,
}

impl ThreadWrites {
    /// A log for one of `threads` threads.
    pub fn new(threads: usize) -> ThreadWrites {
        ThreadWrites {
            room: MAX_TRACKED / threads.max(1),
            ..ThreadWrites::default()
        }
    }

    /// Records a write's outcome: `ack` is the acknowledgement when it got one.
    pub fn record(&mut self, thread: usize, n: u64, at: Duration, ack: Option<&[u8]>) {
        self.attempted += 1;
        match ack {
            Some(ack) if !ack.is_empty() => {
                if self.acked.len() < self.room {
                    self.acked.push(Acked {
                        thread: thread as u32,
                        n,
                        at,
                        ack: String::from_utf8_lossy(ack).into(),
                    });
                } else {
                    self.untracked += 1;
                }
            }
            _ => self.unacknowledged += 1,
        }
    }

    /// Adds another thread's log.
    pub fn merge(&mut self, other: ThreadWrites) {
        self.attempted += other.attempted;
        self.unacknowledged += other.unacknowledged;
        self.untracked += other.untracked;
        self.acked.extend(other.acked);
    }
}

/// What a read-back found.
enum ReadBack {
    Kept,
    Lost,
    Wrong,
    Failed(String),
}

/// Reads `key` from each of `bases` in turn: kept where any holds it; wrong where any
/// holds another value (a correctness error wherever it is); lost only where every one
/// answered that it has none; otherwise unreadable.
async fn read_back_any(client: &reqwest::Client, bases: &[String], key: &str) -> ReadBack {
    let mut failed = None;
    let mut wrong = false;
    for base in bases {
        match read_back(client, base, key).await {
            ReadBack::Kept => return ReadBack::Kept,
            ReadBack::Wrong => wrong = true,
            ReadBack::Failed(why) => failed = Some(format!("{base}: {why}")),
            ReadBack::Lost => {}
        }
    }
    match (wrong, failed) {
        (true, _) => ReadBack::Wrong,
        (false, Some(why)) => ReadBack::Failed(why),
        (false, None) => ReadBack::Lost,
    }
}

async fn read_back(client: &reqwest::Client, url: &str, key: &str) -> ReadBack {
    let response = match client.get(format!("{url}/kv/{key}")).send().await {
        Ok(r) => r,
        Err(e) => return ReadBack::Failed(e.to_string()),
    };
    match response.status().as_u16() {
        404 => ReadBack::Lost,
        200 => match response.bytes().await {
            Ok(body) if body.as_ref() == value_of(key).as_bytes() => ReadBack::Kept,
            Ok(_) => ReadBack::Wrong,
            Err(e) => ReadBack::Failed(e.to_string()),
        },
        status => ReadBack::Failed(format!("status {status}")),
    }
}

/// Reads every acknowledged write back from `verify_url` (`http://HOST:PORT`, the demo
/// app's base; several separated by commas: the regions, and a write any of them holds
/// is kept) and counts what is lost or wrong. `started_at` turns the log's offsets into
/// times. Each read is bounded by `timeout`, the whole by the log's size.
pub async fn verify(
    mix: &WriteMix,
    log: &ThreadWrites,
    started_at: DateTime<Utc>,
    timeout: Duration,
) -> WriteSummary {
    let mut summary = WriteSummary {
        write_ratio: mix.ratio,
        attempted: log.attempted,
        acknowledged: log.acked.len() as u64 + log.untracked,
        unacknowledged: log.unacknowledged,
        verify_url: mix.verify_url.clone(),
        untracked: log.untracked,
        ..WriteSummary::default()
    };
    let mut owners: HashMap<&str, (u32, u64)> = HashMap::with_capacity(log.acked.len());
    for a in &log.acked {
        if let Some(first) = owners.insert(&a.ack, (a.thread, a.n))
            && first != (a.thread, a.n)
        {
            summary.acked_twice += 1;
            if summary.examples.len() < MAX_LISTED {
                summary
                    .examples
                    .push(format!("ack {} given to two writes", a.ack));
            }
        }
    }
    let Some(url) = mix.verify_url.as_deref() else {
        return summary;
    };
    let bases: Vec<String> = url
        .split(',')
        .map(|u| u.trim().trim_end_matches('/').to_string())
        .collect();
    let client = match reqwest::Client::builder().timeout(timeout).build() {
        Ok(c) => c,
        Err(e) => {
            summary.unverified = log.acked.len() as u64;
            summary
                .examples
                .push(format!("cannot build an HTTP client: {e}"));
            return summary;
        }
    };
    // Owned items and owned futures: a spawned caller needs a `Send` future, which
    // futures borrowing from the log are not (higher-ranked lifetimes).
    let bases: std::sync::Arc<[String]> = bases.into();
    let items: Vec<(String, Duration, Box<str>)> = log
        .acked
        .iter()
        .map(|a| {
            (
                key(&mix.prefix, a.thread as usize, a.n),
                a.at,
                a.ack.clone(),
            )
        })
        .collect();
    let mut reads = futures::stream::iter(items.into_iter().map(|(key, at, ack)| {
        let client = client.clone();
        let bases = std::sync::Arc::clone(&bases);
        async move {
            let found = read_back_any(&client, &bases, &key).await;
            (key, at, ack, found)
        }
    }))
    .buffer_unordered(VERIFY_CONCURRENCY);
    let (mut first, mut last) = (None::<Duration>, None::<Duration>);
    while let Some((key, acked_at, ack, found)) = reads.next().await {
        let listed = &mut summary.examples;
        match found {
            ReadBack::Kept => summary.verified += 1,
            ReadBack::Lost => {
                summary.lost += 1;
                first = Some(first.map_or(acked_at, |f| f.min(acked_at)));
                last = Some(last.map_or(acked_at, |l| l.max(acked_at)));
                if listed.len() < MAX_LISTED {
                    listed.push(format!("lost {key} (ack {ack})"));
                }
            }
            ReadBack::Wrong => {
                summary.wrong_value += 1;
                if listed.len() < MAX_LISTED {
                    listed.push(format!("{key} read back with another value"));
                }
            }
            ReadBack::Failed(reason) => {
                summary.unverified += 1;
                if listed.len() < MAX_LISTED {
                    listed.push(format!("reading {key} back failed: {reason}"));
                }
            }
        }
    }
    let at = |d: Duration| started_at + chrono::Duration::from_std(d).unwrap_or_default();
    if let (Some(f), Some(l)) = (first, last) {
        summary.rpo_window_ms = Some(l.saturating_sub(f).as_millis() as u64);
        summary.first_lost_at = Some(at(f));
        summary.last_lost_at = Some(at(l));
    }
    summary
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_write_counter_sends_the_ratio_to_within_one() {
        for ratio in [0.0, 0.1, 0.25, 1.0 / 3.0, 0.5, 0.9, 1.0] {
            let writes = (0..1000).filter(|n| is_write(*n, ratio)).count() as f64;
            assert!((writes - 1000.0 * ratio).abs() <= 1.0, "{ratio}: {writes}");
        }
        // Spread out, not bunched: at 0.5 every other request writes.
        assert_eq!(
            (0..4).map(|n| is_write(n, 0.5)).collect::<Vec<_>>(),
            [false, true, false, true]
        );
    }

    #[test]
    fn a_put_carries_the_host_headers_and_the_derived_value() {
        let template = RequestTemplate {
            method: "GET".into(),
            host: "127.0.0.1".into(),
            port: 8080,
            authority: "127.0.0.1:8080".into(),
            path_and_query: "/".into(),
            headers: vec![
                ("X-Team".into(), "a".into()),
                ("Content-Length".into(), "9".into()),
            ],
            body: None,
        };
        let mut out = Vec::new();
        encode_put(&template, "/kv/", "w-0-3", true, &mut out);
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            "PUT /kv/w-0-3 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nX-Team: a\r\n\
             Content-Length: 16\r\n\r\nwritten-as-w-0-3"
        );
    }

    #[test]
    fn the_log_keeps_acks_up_to_its_room_and_counts_the_rest() {
        let mut log = ThreadWrites::new(MAX_TRACKED);
        log.record(0, 0, Duration::ZERO, Some(b"a:1"));
        log.record(0, 1, Duration::ZERO, Some(b"a:2"));
        log.record(0, 2, Duration::ZERO, None);
        log.record(0, 3, Duration::ZERO, Some(b""));
        assert_eq!((log.attempted, log.acked.len(), log.untracked), (4, 1, 1));
        assert_eq!(log.unacknowledged, 2);
    }

    #[tokio::test]
    async fn an_ack_id_given_twice_is_a_correctness_error_even_unverified() {
        let mut log = ThreadWrites::new(1);
        log.record(0, 0, Duration::ZERO, Some(b"a:1"));
        log.record(1, 0, Duration::ZERO, Some(b"a:1"));
        log.record(0, 1, Duration::ZERO, Some(b"a:2"));
        let mix = WriteMix {
            ratio: 0.5,
            prefix: "w".into(),
            kv_path: "/kv/".into(),
            verify_url: None,
        };
        let s = verify(&mix, &log, Utc::now(), Duration::from_secs(1)).await;
        assert_eq!(
            (s.acknowledged, s.acked_twice, s.correctness_errors()),
            (3, 1, 1)
        );
        assert_eq!(s.verified + s.lost, 0);
    }
}
