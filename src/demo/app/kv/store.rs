//! The demo app's key-value store: what `PUT /kv/{key}` acknowledges and `GET /kv/{key}`
//! reads back, in memory, bounded in key length, value size, key count and total bytes.
//! Every stored write gets this region's next sequence number; the change feed
//! ([`KvStore::feed`]) hands out the latest write of each key in sequence order, which is
//! what `resil replicate` copies to another region. It knows nothing of HTTP; the routes
//! in `kv/routes.rs` call it.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The longest key, in bytes.
pub const MAX_KEY_BYTES: usize = 256;
/// The most entries one feed page holds.
pub const MAX_FEED_PAGE: usize = 1000;
/// The most value bytes one feed page carries (a page stops before the entry that would
/// pass it, unless it is the first).
const MAX_FEED_PAGE_BYTES: usize = 4 * 1024 * 1024;

/// How much the store may hold (`resil demo-app --kv-max-*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KvLimits {
    /// The largest value, in bytes.
    pub max_value_bytes: usize,
    /// The most keys.
    pub max_keys: usize,
    /// The most bytes of keys and values together.
    pub max_total_bytes: usize,
}

impl Default for KvLimits {
    fn default() -> KvLimits {
        KvLimits {
            max_value_bytes: 64 * 1024,
            max_keys: 100_000,
            max_total_bytes: 64 * 1024 * 1024,
        }
    }
}

/// Why a write or a key was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KvError {
    /// The key is empty, too long, or has characters outside `A-Z a-z 0-9 - . _ ~`.
    #[error(
        "invalid key: {reason}; a key is 1 to {MAX_KEY_BYTES} characters of A-Z a-z 0-9 - . _ ~ \
         (e.g. /kv/order-42)"
    )]
    BadKey {
        /// What is wrong with it.
        reason: String,
    },
    /// The value is larger than the store takes.
    #[error(
        "the value is {} bytes; this app stores values up to {max} bytes (--kv-max-value)",
        len.map_or(format!("more than {max}"), |n| n.to_string())
    )]
    ValueTooLarge {
        /// The value's size (or its announced Content-Length); `None`: a streamed body
        /// that passed the limit before it ended.
        len: Option<u64>,
        /// The limit.
        max: usize,
    },
    /// Storing it would pass the key count or the byte budget.
    #[error("the store is full: {what}; raise {flag} (or restart the app to empty it)")]
    Full {
        /// Which limit, with its figures.
        what: String,
        /// The flag that raises it.
        flag: &'static str,
    },
}

/// A stored write's acknowledgement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stored {
    /// This region's sequence number for the write (1, 2, ...).
    pub seq: u64,
    /// When it was stored.
    pub at: DateTime<Utc>,
    /// The key was new (not an overwrite).
    pub created: bool,
}

/// A value read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub value: Bytes,
    pub seq: u64,
    pub at: DateTime<Utc>,
}

/// One entry of the change feed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeedEntry {
    pub key: String,
    /// The source region's sequence number of this write.
    pub seq: u64,
    /// When the source stored it.
    pub acked_at: DateTime<Utc>,
    /// The value, base64 (standard alphabet, padded).
    pub value: String,
    /// The replica the source copied it to before acknowledging it (synchronous
    /// replication), as `/admin/replica` named it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copied_to: Option<String>,
}

/// A page of the change feed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Feed {
    /// Writes after the asked sequence number, oldest first.
    pub entries: Vec<FeedEntry>,
    /// The store's latest sequence number (what a reader that took everything is at).
    pub last_seq: u64,
    /// The store's id: a new store (a restarted process) starts its sequence again, so a
    /// reader that sees another id starts again from its beginning.
    #[serde(default)]
    pub store: String,
    /// Writes after the asked sequence number still held back by `min_age_ms` or the
    /// page size.
    pub pending: u64,
}

/// What `/admin/state` reports under `kv`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvSnapshot {
    /// Keys stored.
    pub keys: u64,
    /// Bytes of keys and values stored.
    pub bytes: u64,
    /// The latest sequence number given out (0: no write yet).
    pub last_seq: u64,
    /// Where writes are copied before they are acknowledged (synchronous replication).
    #[serde(default)]
    pub replica: Option<String>,
}

#[derive(Debug)]
struct Entry {
    value: Bytes,
    seq: u64,
    at: DateTime<Utc>,
    /// The replica this write was copied to before it was acknowledged.
    copied_to: Option<Arc<str>>,
}

#[derive(Debug, Default)]
struct Inner {
    entries: HashMap<String, Entry>,
    /// Sequence number → key, for the latest write of each key only: the feed's order.
    log: BTreeMap<u64, String>,
    bytes: usize,
    seq: u64,
}

/// The store. A std `Mutex`: it is never held across an `.await`, and each operation is
/// a few map updates.
#[derive(Debug)]
pub struct KvStore {
    limits: KvLimits,
    inner: Mutex<Inner>,
    /// Random, per process: sequence numbers are unique within one store only.
    id: String,
}

/// Checks a key as it appears in the request path. Only unreserved URL characters are
/// taken, so nothing is percent-decoded: no `/`, no `%2F`, no bytes that are not UTF-8.
pub fn validate_key(raw: &str) -> Result<&str, KvError> {
    let bad = |reason: String| Err(KvError::BadKey { reason });
    if raw.is_empty() {
        return bad("it is empty".into());
    }
    if raw.len() > MAX_KEY_BYTES {
        return bad(format!("it is {} bytes long", raw.len()));
    }
    if raw == "." || raw == ".." {
        return bad(format!("{raw:?} is a path step, not a key"));
    }
    if let Some(c) = raw
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '~')))
    {
        return bad(format!("it contains {c:?}"));
    }
    Ok(raw)
}

impl KvStore {
    pub fn new(limits: KvLimits) -> KvStore {
        KvStore {
            limits,
            inner: Mutex::new(Inner::default()),
            id: format!("{:08x}", rand::random::<u32>()),
        }
    }

    /// This store's id (ack ids are `REGION@ID:SEQ`).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The limits in force.
    pub fn limits(&self) -> KvLimits {
        self.limits
    }

    /// Refuses a value larger than the limit before it is read.
    pub fn check_size(&self, len: u64) -> Result<(), KvError> {
        if len > self.limits.max_value_bytes as u64 {
            return Err(KvError::ValueTooLarge {
                len: Some(len),
                max: self.limits.max_value_bytes,
            });
        }
        Ok(())
    }

    /// Whether `key = value` would fit, without storing it (synchronous replication asks
    /// before copying, so a write this region must refuse is not copied).
    pub fn check(&self, key: &str, len: usize) -> Result<(), KvError> {
        self.check_size(len as u64)?;
        let inner = self.lock();
        self.fits(&inner, key, len)
    }

    fn fits(&self, inner: &Inner, key: &str, len: usize) -> Result<(), KvError> {
        let old = inner.entries.get(key).map(|e| key.len() + e.value.len());
        if old.is_none() && inner.entries.len() >= self.limits.max_keys {
            return Err(KvError::Full {
                what: format!("{} keys stored, the limit", inner.entries.len()),
                flag: "--kv-max-keys",
            });
        }
        let after = inner.bytes - old.unwrap_or(0) + key.len() + len;
        if after > self.limits.max_total_bytes {
            return Err(KvError::Full {
                what: format!(
                    "{} of {} bytes used, this write needs {}",
                    inner.bytes,
                    self.limits.max_total_bytes,
                    key.len() + len
                ),
                flag: "--kv-max-bytes",
            });
        }
        Ok(())
    }

    /// Stores `key = value` (a valid key: see [`validate_key`]) and gives it the next
    /// sequence number.
    pub fn put(&self, key: &str, value: Bytes, now: DateTime<Utc>) -> Result<Stored, KvError> {
        self.put_copied(key, value, now, None)
    }

    /// [`KvStore::put`] of a write already copied to the replica at `copied_to`
    /// (synchronous replication): the feed says so, and a replicator copying to that
    /// replica does not copy it again.
    pub fn put_copied(
        &self,
        key: &str,
        value: Bytes,
        now: DateTime<Utc>,
        copied_to: Option<Arc<str>>,
    ) -> Result<Stored, KvError> {
        self.check_size(value.len() as u64)?;
        let mut inner = self.lock();
        self.fits(&inner, key, value.len())?;
        inner.seq += 1;
        let seq = inner.seq;
        let added = key.len() + value.len();
        let old = inner.entries.insert(
            key.to_string(),
            Entry {
                value,
                seq,
                at: now,
                copied_to,
            },
        );
        if let Some(old) = &old {
            inner.log.remove(&old.seq);
            inner.bytes -= key.len() + old.value.len();
        }
        inner.bytes += added;
        inner.log.insert(seq, key.to_string());
        Ok(Stored {
            seq,
            at: now,
            created: old.is_none(),
        })
    }

    /// The value of `key`, if stored.
    pub fn get(&self, key: &str) -> Option<Found> {
        let inner = self.lock();
        inner.entries.get(key).map(|e| Found {
            value: e.value.clone(),
            seq: e.seq,
            at: e.at,
        })
    }

    /// The latest write of each key with a sequence number above `after`, oldest first,
    /// at most `limit` (capped at [`MAX_FEED_PAGE`]) and only those at least `min_age` old
    /// by `now`: a reader that wants to stay that far behind asks for nothing younger.
    pub fn feed(&self, after: u64, limit: usize, min_age: Duration, now: DateTime<Utc>) -> Feed {
        use base64::Engine as _;
        let limit = limit.clamp(1, MAX_FEED_PAGE);
        let cutoff = now - chrono::Duration::from_std(min_age).unwrap_or(chrono::Duration::MAX);
        let inner = self.lock();
        let newer = inner.log.range(after + 1..);
        let mut entries = Vec::new();
        let mut bytes = 0;
        for (seq, key) in newer {
            // Every key in the log is in the map: `put` keeps them in step.
            let Some(entry) = inner.entries.get(key) else {
                continue;
            };
            let full = entries.len() >= limit
                || (!entries.is_empty() && bytes + entry.value.len() > MAX_FEED_PAGE_BYTES);
            if entry.at > cutoff || full {
                break;
            }
            bytes += entry.value.len();
            entries.push(FeedEntry {
                key: key.clone(),
                seq: *seq,
                acked_at: entry.at,
                value: base64::engine::general_purpose::STANDARD.encode(&entry.value),
                copied_to: entry.copied_to.as_deref().map(str::to_string),
            });
        }
        let newer_total = inner.log.range(after + 1..).count() as u64;
        Feed {
            pending: newer_total - entries.len() as u64,
            entries,
            last_seq: inner.seq,
            store: self.id.clone(),
        }
    }

    /// Counts for `/admin/state` (`replica` is filled in by the caller).
    pub fn snapshot(&self) -> KvSnapshot {
        let inner = self.lock();
        KvSnapshot {
            keys: inner.entries.len() as u64,
            bytes: inner.bytes as u64,
            last_seq: inner.seq,
            replica: None,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves consistent maps (each update is completed
        // before any step that can panic), so a poisoned lock is still usable.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(ms: i64) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(1_800_000_000_000 + ms).unwrap()
    }

    fn small() -> KvStore {
        KvStore::new(KvLimits {
            max_value_bytes: 8,
            max_keys: 3,
            max_total_bytes: 18,
        })
    }

    #[test]
    fn keys_are_unreserved_characters_only() {
        assert!(validate_key("order-42.v1_~").is_ok());
        for bad in [
            "",
            ".",
            "..",
            "a/b",
            "a%2Fb",
            "..%2F..%2Fetc",
            "ä",
            "a b",
            "a?b",
        ] {
            let err = validate_key(bad).unwrap_err();
            assert!(err.to_string().contains("invalid key"), "{bad}: {err}");
        }
        assert!(validate_key(&"k".repeat(MAX_KEY_BYTES)).is_ok());
        assert!(validate_key(&"k".repeat(MAX_KEY_BYTES + 1)).is_err());
    }

    #[test]
    fn writes_get_increasing_sequence_numbers_and_read_back() {
        let kv = small();
        let a = kv.put("a", Bytes::from_static(b"1"), t(0)).unwrap();
        let b = kv.put("b", Bytes::from_static(b"22"), t(1)).unwrap();
        assert_eq!((a.seq, a.created, b.seq), (1, true, 2));
        let again = kv.put("a", Bytes::from_static(b"333"), t(2)).unwrap();
        assert_eq!((again.seq, again.created), (3, false));
        let found = kv.get("a").unwrap();
        assert_eq!((found.value.as_ref(), found.seq), (&b"333"[..], 3));
        assert!(kv.get("c").is_none());
        let snap = kv.snapshot();
        assert_eq!((snap.keys, snap.bytes, snap.last_seq), (2, 2 + 4 + 1, 3));
    }

    #[test]
    fn limits_refuse_with_the_flag_to_raise() {
        let kv = small();
        let err = kv
            .put("a", Bytes::from_static(b"123456789"), t(0))
            .unwrap_err();
        assert!(matches!(
            err,
            KvError::ValueTooLarge {
                len: Some(9),
                max: 8
            }
        ));
        for key in ["a", "b", "c"] {
            kv.put(key, Bytes::from_static(b"x"), t(0)).unwrap();
        }
        let full = kv.put("d", Bytes::from_static(b"x"), t(0)).unwrap_err();
        assert!(full.to_string().contains("--kv-max-keys"), "{full}");
        // An overwrite of a stored key is not a new key.
        kv.put("a", Bytes::from_static(b"12345678"), t(0)).unwrap();
        let bytes = kv
            .put("b", Bytes::from_static(b"12345678"), t(0))
            .unwrap_err();
        assert!(bytes.to_string().contains("--kv-max-bytes"), "{bytes}");
        // The refused write changed nothing.
        assert_eq!(kv.get("b").unwrap().value.as_ref(), b"x");
        assert!(kv.check("b", 1).is_ok());
    }

    #[test]
    fn the_feed_gives_latest_writes_in_order_holding_back_young_ones() {
        let kv = KvStore::new(KvLimits::default());
        kv.put("a", Bytes::from_static(b"1"), t(0)).unwrap();
        kv.put("b", Bytes::from_static(b"2"), t(100)).unwrap();
        kv.put("a", Bytes::from_static(b"3"), t(200)).unwrap();
        kv.put("c", Bytes::from_static(b"4"), t(900)).unwrap();
        let feed = kv.feed(0, 10, Duration::from_millis(500), t(1000));
        let keys: Vec<_> = feed
            .entries
            .iter()
            .map(|e| (e.key.as_str(), e.seq))
            .collect();
        assert_eq!(keys, [("b", 2), ("a", 3)]);
        assert_eq!((feed.last_seq, feed.pending), (4, 1));
        assert_eq!(feed.entries[1].value, "Mw==");
        let rest = kv.feed(3, 10, Duration::ZERO, t(1000));
        assert_eq!(rest.entries.len(), 1);
        assert_eq!(rest.entries[0].key, "c");
        let page = kv.feed(0, 1, Duration::ZERO, t(1000));
        assert_eq!((page.entries.len(), page.pending), (1, 2));
    }

    #[test]
    fn the_feed_marks_a_write_the_replica_holds_already_until_it_is_overwritten() {
        let kv = KvStore::new(KvLimits::default());
        let replica: Arc<str> = "http://127.0.0.1:8081".into();
        kv.put_copied("a", Bytes::from_static(b"1"), t(0), Some(replica.clone()))
            .unwrap();
        kv.put("b", Bytes::from_static(b"2"), t(0)).unwrap();
        let copied_to = |feed: &Feed| -> Vec<Option<String>> {
            feed.entries.iter().map(|e| e.copied_to.clone()).collect()
        };
        let feed = kv.feed(0, 10, Duration::ZERO, t(1));
        assert_eq!(copied_to(&feed), [Some(replica.to_string()), None]);
        // Overwritten without the replica: the feed's latest write of `a` is not held.
        kv.put("a", Bytes::from_static(b"3"), t(2)).unwrap();
        let feed = kv.feed(0, 10, Duration::ZERO, t(3));
        assert_eq!(copied_to(&feed), [None, None]);
        // A reader that predates the field reads the feed as before.
        let json = serde_json::to_value(&feed).unwrap();
        assert!(json["entries"][0].get("copied_to").is_none(), "{json}");
    }
}
