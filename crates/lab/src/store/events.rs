//! Bounds on core/v1 Events, which every controller and any client may write without end:
//! a time to live (upstream kube-apiserver's `--event-ttl`, default 1 h, enforced there by
//! an etcd lease) and a cap on how many are kept (the oldest go first when a new one would
//! pass it). Expired Events are deleted like any object (watchers see DELETED).
//!
//! An Event's age counts from its `creationTimestamp`, which the server sets and no client
//! can change; the lab's own Events are written once and never updated, so for them that
//! is also the last write. Called by the store's create path and by the expiry loop that
//! `server.rs` runs.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::kinds::kind;
use super::{EventType, Key, State, Store, meta};

/// How long an Event lives (upstream's `--event-ttl` default).
pub const EVENT_TTL: Duration = Duration::from_secs(60 * 60);
/// How often expired Events are looked for.
pub const EXPIRY_PERIOD: Duration = Duration::from_secs(60);
/// Most Events kept at once. A crash-looping pod writes a few per minute; this is hours of
/// a busy lab within one TTL, and bounds the memory and the state file.
pub const MAX_EVENTS: usize = 10_000;

const EVENTS: &str = "events";

fn event_keys(state: &State) -> impl Iterator<Item = (&Key, &Arc<Value>)> {
    super::objects_of(state, EVENTS, None)
}

fn rv_of(obj: &Value) -> u64 {
    meta::rv(obj).parse().unwrap_or(0)
}

/// The stored Events ordered by resourceVersion (their last write), kept in step by every
/// put and take: at the cap, the oldest is the first entry, not the result of a scan over
/// ten thousand Events under the store's lock for every new one.
#[derive(Debug, Default)]
pub(crate) struct EventAges(BTreeSet<(u64, Key)>);

impl EventAges {
    /// Indexes the Events of a freshly loaded map.
    pub(crate) fn build<'a>(objects: impl Iterator<Item = (&'a Key, &'a Value)>) -> EventAges {
        let mut ages = EventAges::default();
        for (key, obj) in objects {
            ages.add(key, obj);
        }
        ages
    }

    pub(crate) fn add(&mut self, key: &Key, obj: &Value) {
        if key.0 == EVENTS {
            self.0.insert((rv_of(obj), key.clone()));
        }
    }

    pub(crate) fn forget(&mut self, key: &Key, obj: &Value) {
        if key.0 == EVENTS {
            self.0.remove(&(rv_of(obj), key.clone()));
        }
    }
}

impl Store {
    /// Deletes the oldest Events until one more fits under the cap ([`MAX_EVENTS`]). Runs
    /// under the lock of the create that makes the room.
    pub(super) fn make_room_for_an_event(&self, state: &mut State) {
        while state.event_ages.0.len() >= self.event_cap.max(1) {
            // Taken off the index first, so the loop ends whatever the map holds.
            let Some((_, key)) = state.event_ages.0.pop_first() else {
                return;
            };
            self.drop_event(state, &key);
        }
    }

    /// Deletes every Event created more than `ttl` before `now`; returns how many.
    pub fn expire_events(&self, now: chrono::DateTime<chrono::Utc>, ttl: Duration) -> usize {
        let Ok(ttl) = chrono::Duration::from_std(ttl) else {
            return 0;
        };
        let mut state = self.lock();
        let expired: Vec<Key> = event_keys(&state)
            .filter(|(_, v)| {
                v.pointer("/metadata/creationTimestamp")
                    .and_then(Value::as_str)
                    .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                    .is_some_and(|created| created.to_utc() + ttl < now)
            })
            .map(|(k, _)| k.clone())
            .collect();
        for key in &expired {
            self.drop_event(&mut state, key);
        }
        expired.len()
    }

    fn drop_event(&self, state: &mut State, key: &Key) {
        let Some(mut obj) = state.take(key) else {
            return;
        };
        // An Event owns nothing and has no finalizers the lab honours: removing it is the
        // whole deletion.
        meta::set_rv(&mut obj, state.rv + 1);
        self.record(
            state,
            EventType::Deleted,
            kind(EVENTS),
            &key.1,
            Arc::new(obj),
            None,
        );
    }
}

/// Deletes expired Events every `period` until `shutdown`.
pub async fn run_expiry(
    store: Arc<Store>,
    ttl: Duration,
    period: Duration,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(period);
    loop {
        tokio::select! {
            // Time for a sweep (the first one at once: a restarted lab drops stale Events).
            _ = tick.tick() => {
                let n = store.expire_events(chrono::Utc::now(), ttl);
                if n > 0 {
                    tracing::debug!("{n} expired events deleted");
                }
            }
            // The lab is stopping.
            _ = shutdown.cancelled() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(store: &Store, name: &str) -> Value {
        store
            .create(
                kind(EVENTS),
                "default",
                json!({"metadata": {"name": name}, "reason": "Test"}),
            )
            .unwrap()
    }

    #[test]
    fn events_older_than_the_ttl_are_deleted_and_watchers_see_it() {
        let store = Store::new();
        event(&store, "old");
        let mut sub = store
            .watch(
                EVENTS,
                None,
                super::super::WatchStart::After(store.resource_version()),
            )
            .unwrap();
        let now = chrono::Utc::now();
        assert_eq!(store.expire_events(now, EVENT_TTL), 0, "young events stay");
        let later = now + chrono::Duration::minutes(61);
        assert_eq!(store.expire_events(later, EVENT_TTL), 1);
        assert!(store.get(EVENTS, "default", "old").is_none());
        let deleted = futures::executor::block_on(sub.next()).unwrap();
        assert_eq!(deleted.kind, EventType::Deleted);
    }

    #[test]
    fn the_oldest_events_make_room_past_the_cap() {
        let mut store = Store::new();
        store.event_cap = 50;
        for i in 0..53 {
            event(&store, &format!("e{i}"));
        }
        assert_eq!(store.list(EVENTS, None).items.len(), 50);
        for gone in ["e0", "e1", "e2"] {
            assert!(store.get(EVENTS, "default", gone).is_none(), "{gone}");
        }
        assert!(store.get(EVENTS, "default", "e3").is_some());
    }

    #[test]
    fn an_event_written_again_is_no_longer_the_oldest() {
        let mut store = Store::new();
        store.event_cap = 3;
        for name in ["a", "b", "c"] {
            event(&store, name);
        }
        // A client updates "a" (a series count, say): its last write is now the newest.
        let mut a = store.get(EVENTS, "default", "a").unwrap();
        a["count"] = json!(2);
        store
            .update(
                kind(EVENTS),
                "default",
                "a",
                a,
                super::super::WriteMode::Main,
            )
            .unwrap();
        event(&store, "d");
        let left: Vec<String> = store
            .list(EVENTS, None)
            .items
            .iter()
            .map(|e| meta::name(e).to_string())
            .collect();
        assert_eq!(left, ["a", "c", "d"], "b, written longest ago, went first");
        // Deleted by a client, an Event leaves the index too: the next ones fit.
        store
            .delete(kind(EVENTS), "default", "c", &Default::default())
            .unwrap();
        event(&store, "e");
        assert_eq!(store.list(EVENTS, None).items.len(), 3);
        assert!(store.get(EVENTS, "default", "a").is_some());
    }
}
