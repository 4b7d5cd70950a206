//! Bounds on core/v1 Events, which every controller and any client may write without end:
//! a time to live (upstream kube-apiserver's `--event-ttl`, default 1 h, enforced there by
//! an etcd lease) and a cap on how many are kept (the oldest go first when a new one would
//! pass it). Expired Events are deleted like any object (watchers see DELETED).
//!
//! An Event's age counts from its `creationTimestamp`, which the server sets and no client
//! can change; the lab's own Events are written once and never updated, so for them that
//! is also the last write. Called by the store's create path and by the expiry loop that
//! `server.rs` runs.

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

impl Store {
    /// Deletes the oldest Events until one more fits under the cap ([`MAX_EVENTS`]). Runs
    /// under the lock of the create that makes the room.
    pub(super) fn make_room_for_an_event(&self, state: &mut State) {
        let mut count = event_keys(state).count();
        while count >= self.event_cap.max(1) {
            let oldest = event_keys(state)
                .min_by_key(|(_, v)| rv_of(v))
                .map(|(k, _)| k.clone());
            let Some(key) = oldest else { return };
            self.drop_event(state, &key);
            count -= 1;
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
        self.record(state, EventType::Deleted, kind(EVENTS), &key.1, obj, None);
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
}
