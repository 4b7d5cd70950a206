//! A watch subscription on the store: the replayed or synthetic initial events, then live
//! events of one resource (and namespace). Used by the API's watch handler and by in-lab
//! controllers; selectors are the caller's business.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::Bytes;
use serde::Serialize;
use tokio::sync::broadcast;

use super::StoredEvent;

/// One line of a watch stream: `{"type":TYPE,"object":OBJECT}` and a newline, encoded
/// straight from the borrowed object.
pub fn line(ty: &str, object: &(impl Serialize + ?Sized)) -> Bytes {
    #[derive(Serialize)]
    struct Event<'a, T: ?Sized> {
        #[serde(rename = "type")]
        ty: &'a str,
        object: &'a T,
    }
    // Cannot fail: the objects are JSON values and Tables, whose map keys are strings.
    let mut bytes = serde_json::to_vec(&Event { ty, object }).unwrap_or_default();
    bytes.push(b'\n');
    Bytes::from(bytes)
}

/// Where a watch starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchStart {
    /// An ADDED event per current object, then live events (resourceVersion "" or "0").
    Now,
    /// Only the events after this resourceVersion.
    After(u64),
}

/// Why a subscription ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// The watcher fell too far behind; events were lost and it must relist.
    Lagged,
    /// The store is gone.
    Closed,
}

/// A live subscription; see [`super::Store::watch`].
#[derive(Debug)]
pub struct Subscription {
    namespace: Option<String>,
    pending: VecDeque<Arc<StoredEvent>>,
    rx: broadcast::Receiver<Arc<StoredEvent>>,
    /// Events at or below this RV were already delivered (replayed); skip them live.
    seen: u64,
}

impl Subscription {
    pub(super) fn new(
        namespace: Option<String>,
        initial: Vec<Arc<StoredEvent>>,
        rx: broadcast::Receiver<Arc<StoredEvent>>,
        seen: u64,
    ) -> Subscription {
        Subscription {
            namespace,
            pending: initial.into(),
            rx,
            seen,
        }
    }

    /// The store's resourceVersion when the watch started (the initial events are
    /// consistent with it).
    pub fn start_rv(&self) -> u64 {
        self.seen
    }

    /// Initial events not yet taken.
    pub fn initial_remaining(&self) -> usize {
        self.pending.len()
    }

    /// The next event, waiting for one if needed.
    pub async fn next(&mut self) -> Result<Arc<StoredEvent>, Ended> {
        if let Some(e) = self.pending.pop_front() {
            return Ok(e);
        }
        loop {
            match self.rx.recv().await {
                Ok(e) if self.wants(&e) => return Ok(e),
                Ok(_) => {}
                Err(broadcast::error::RecvError::Lagged(_)) => return Err(Ended::Lagged),
                Err(broadcast::error::RecvError::Closed) => return Err(Ended::Closed),
            }
        }
    }

    /// The next event if one is already there, without waiting.
    pub fn try_next(&mut self) -> Option<Result<Arc<StoredEvent>, Ended>> {
        if let Some(e) = self.pending.pop_front() {
            return Some(Ok(e));
        }
        loop {
            match self.rx.try_recv() {
                Ok(e) if self.wants(&e) => return Some(Ok(e)),
                Ok(_) => {}
                Err(broadcast::error::TryRecvError::Empty) => return None,
                Err(broadcast::error::TryRecvError::Lagged(_)) => return Some(Err(Ended::Lagged)),
                Err(broadcast::error::TryRecvError::Closed) => return Some(Err(Ended::Closed)),
            }
        }
    }

    /// Whether a live event is this subscription's: newer than what it replayed, in its
    /// namespace (its channel carries only its resource's events).
    fn wants(&self, e: &StoredEvent) -> bool {
        e.rv > self.seen && self.namespace.as_ref().is_none_or(|n| *n == e.namespace)
    }
}
