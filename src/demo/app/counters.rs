//! Request counters of the demo app: total, per path class and per status code, kept in
//! atomics so counting costs a few uncontended adds per request. `/admin/state` reports
//! a [`CounterSnapshot`] so load figures can be checked against what the pods served.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

/// Which kind of path a request asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathClass {
    /// `/`
    Root,
    /// `/work`
    Work,
    /// `/healthz`
    Healthz,
    /// `/readyz`
    Readyz,
    /// `/admin/...`
    Admin,
    /// `/kv` and `/kv/...` (the write path)
    Kv,
    /// Anything else (404).
    Other,
}

impl PathClass {
    const ALL: [PathClass; 7] = [
        PathClass::Root,
        PathClass::Work,
        PathClass::Healthz,
        PathClass::Readyz,
        PathClass::Admin,
        PathClass::Other,
        PathClass::Kv,
    ];

    /// Classifies a request path.
    pub fn of(path: &str) -> PathClass {
        match path {
            "/" => PathClass::Root,
            "/work" => PathClass::Work,
            "/healthz" => PathClass::Healthz,
            "/readyz" => PathClass::Readyz,
            p if p == "/admin" || p.starts_with("/admin/") => PathClass::Admin,
            p if p == "/kv" || p.starts_with("/kv/") => PathClass::Kv,
            _ => PathClass::Other,
        }
    }

    /// The name used in `/admin/state`.
    pub fn as_str(self) -> &'static str {
        match self {
            PathClass::Root => "root",
            PathClass::Work => "work",
            PathClass::Healthz => "healthz",
            PathClass::Readyz => "readyz",
            PathClass::Admin => "admin",
            PathClass::Other => "other",
            PathClass::Kv => "kv",
        }
    }

    /// Whether injected errors and latency apply (user traffic, not probes or admin).
    pub fn is_traffic(self) -> bool {
        matches!(
            self,
            PathClass::Root | PathClass::Work | PathClass::Other | PathClass::Kv
        )
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Status codes 100–599 get a slot each; any other code counts in the total and class only.
const FIRST_STATUS: u16 = 100;
const STATUS_SLOTS: usize = 500;

/// The live counters (one per app).
#[derive(Debug)]
pub(crate) struct Counters {
    total: AtomicU64,
    by_class: [AtomicU64; 7],
    by_status: Box<[AtomicU64]>,
}

/// What `/admin/state` reports under `requests`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CounterSnapshot {
    /// Responses produced since start.
    pub total: u64,
    /// Per path class (`root`, `work`, `healthz`, `readyz`, `admin`, `other`, `kv`).
    pub by_class: BTreeMap<String, u64>,
    /// Per status code (`"200"`, `"500"`, ...); codes never sent are absent.
    pub by_status: BTreeMap<String, u64>,
}

impl Counters {
    pub fn new() -> Counters {
        Counters {
            total: AtomicU64::new(0),
            by_class: Default::default(),
            by_status: (0..STATUS_SLOTS).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// Counts one response. Relaxed: the figures are independent tallies, read later.
    pub fn record(&self, class: PathClass, status: u16) {
        self.total.fetch_add(1, Ordering::Relaxed);
        self.by_class[class.index()].fetch_add(1, Ordering::Relaxed);
        if let Some(slot) = status
            .checked_sub(FIRST_STATUS)
            .and_then(|i| self.by_status.get(usize::from(i)))
        {
            slot.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The counters now.
    pub fn snapshot(&self) -> CounterSnapshot {
        let by_class = PathClass::ALL
            .iter()
            .map(|c| {
                let n = self.by_class[c.index()].load(Ordering::Relaxed);
                (c.as_str().to_string(), n)
            })
            .collect();
        let by_status = self
            .by_status
            .iter()
            .enumerate()
            .filter_map(|(i, n)| {
                let n = n.load(Ordering::Relaxed);
                (n > 0).then(|| ((i as u16 + FIRST_STATUS).to_string(), n))
            })
            .collect();
        CounterSnapshot {
            total: self.total.load(Ordering::Relaxed),
            by_class,
            by_status,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_fall_into_their_class() {
        assert_eq!(PathClass::of("/"), PathClass::Root);
        assert_eq!(PathClass::of("/work"), PathClass::Work);
        assert_eq!(PathClass::of("/admin/state"), PathClass::Admin);
        assert_eq!(PathClass::of("/administrator"), PathClass::Other);
        assert_eq!(PathClass::of("/kv/a"), PathClass::Kv);
        assert_eq!(PathClass::of("/kvx"), PathClass::Other);
        assert!(PathClass::Kv.is_traffic());
        assert!(!PathClass::Readyz.is_traffic());
        assert!(PathClass::Other.is_traffic());
    }

    #[test]
    fn snapshot_counts_by_class_and_status() {
        let counters = Counters::new();
        counters.record(PathClass::Root, 200);
        counters.record(PathClass::Root, 500);
        counters.record(PathClass::Work, 200);
        counters.record(PathClass::Other, 999);
        let snap = counters.snapshot();
        assert_eq!(snap.total, 4);
        assert_eq!(snap.by_class["root"], 2);
        assert_eq!(snap.by_class["work"], 1);
        assert_eq!(snap.by_class["admin"], 0);
        assert_eq!(snap.by_status.get("200"), Some(&2));
        assert_eq!(snap.by_status.get("500"), Some(&1));
        assert_eq!(snap.by_status.len(), 2);
    }
}
