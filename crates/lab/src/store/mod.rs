//! The lab's object store: every Kubernetes object as `serde_json::Value`, keyed by
//! (resource plural, namespace, name), under one global increasing resourceVersion, with a
//! bounded event history and a fan-out to watchers.
//!
//! It owns the server-side rules that hold whoever writes — the HTTP API or an in-lab
//! controller: metadata the server fills (uid, resourceVersion, creationTimestamp,
//! generation, generateName), the status-subresource rule, optimistic concurrency,
//! finalizers, cascading deletion and pod graceful deletion. It knows nothing of HTTP,
//! selectors or patches (`api/` does). Persistence lives in `persist.rs`, watch
//! subscriptions in `watch.rs`, per-kind defaults and metadata rules in `meta.rs`.
//!
//! Pod deletion seam: a pod with a grace period is only marked (`deletionTimestamp`) when a
//! pod terminator has claimed pods with [`Store::set_pod_terminator`] — the kubelet does,
//! then stops the process and calls [`Store::remove`]. Without a terminator (tests, a lab
//! without a runtime) pods are removed at once, like `--grace-period=0`.
//! Deleting a namespace marks it Terminating (`namespaces.rs`); the namespace controller
//! deletes its objects and finalizes it. A terminator must also stop the process of a pod
//! it sees DELETED (a forced deletion).
//!
//! How an in-lab controller uses it (the lab hands it the store via `Lab::spawn_task`):
//!
//! ```text
//! let pods = kinds::stored("pods").unwrap();            // the type table entry
//! let mut sub = store.watch("pods", None, WatchStart::Now)?;  // ADDED per pod, then live
//! while let Ok(event) = sub.next().await { ... }         // Err(Lagged): relist, re-watch
//! store.create(pods, "default", json!({...}))?;          // server fills uid, RV, ...
//! store.update(pods, "default", "web-1", obj, WriteMode::Status)?;  // status only
//! store.delete(pods, "default", "web-1", &DeleteOptions::default())?;
//! store.remove("pods", "default", "web-1")?;             // the terminator's last step
//! store.set_pod_metrics("default", "web-1", Some(pod_metrics_json));
//! ```

pub mod bounds;
mod config;
mod delete;
mod events;
pub mod jobs;
pub mod kinds;
mod memo;
mod meta;
mod namespaces;
mod owners;
pub mod persist;
mod services;
mod watch;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::ops::Bound;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use bytes::Bytes;
use serde_json::Value;
use tokio::sync::broadcast;

pub use events::{
    EVENT_TTL, EXPIRY_PERIOD as EVENT_EXPIRY_PERIOD, MAX_EVENTS, run_expiry as run_event_expiry,
};
pub use kinds::Kind;
use kinds::kind;
pub use watch::{Ended, Subscription, WatchStart, line as watch_line};

/// How many past events a watch may resume from.
const HISTORY: usize = 10_000;
/// How many bytes of objects (as JSON, estimated) the history may hold: with objects up to
/// the 3 MiB body limit, the count alone would allow tens of gigabytes. A watch resuming
/// from an event that was dropped relists (410 Expired), which every client handles.
const HISTORY_BYTES: usize = 64 * 1024 * 1024;
/// Events buffered per watcher before it is cut off (and told to relist).
const FANOUT: usize = 4_096;

/// What happened to an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// Created.
    Added,
    /// Changed.
    Modified,
    /// Removed.
    Deleted,
}

impl EventType {
    /// The watch wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One change, as watchers see it.
#[derive(Debug, Clone)]
pub struct StoredEvent {
    /// The resourceVersion this change produced.
    pub rv: u64,
    /// What happened.
    pub kind: EventType,
    /// Resource plural (store key).
    pub resource: &'static str,
    /// Namespace; empty for cluster-scoped objects.
    pub namespace: String,
    /// The object after the change (for `Deleted`: as it was, with the deletion's RV);
    /// shared with the store and every watcher, never copied.
    pub object: Arc<Value>,
    /// The object before a `Modified` change (lets selector watches turn a change that
    /// leaves the selection into DELETED).
    pub previous: Option<Arc<Value>>,
    /// The event as one watch line, encoded by the first watcher that sends it whole.
    line: OnceLock<Bytes>,
}

impl StoredEvent {
    fn new(
        rv: u64,
        kind: EventType,
        resource: &'static str,
        namespace: String,
        object: Arc<Value>,
        previous: Option<Arc<Value>>,
    ) -> StoredEvent {
        StoredEvent {
            rv,
            kind,
            resource,
            namespace,
            object,
            previous,
            line: OnceLock::new(),
        }
    }

    /// The event as one line of a watch stream (`{"type":...,"object":...}` and a
    /// newline), encoded once however many watchers send it: a hundred watches of one
    /// resource cost one encoding per change, not a hundred.
    pub fn line(&self) -> Bytes {
        self.line
            .get_or_init(|| watch::line(self.kind.as_str(), &*self.object))
            .clone()
    }
}

/// Why a store operation was refused.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum StoreError {
    /// No such object.
    #[error("{resource} \"{name}\" not found")]
    NotFound {
        /// Resource plural.
        resource: &'static str,
        /// Object name.
        name: String,
    },
    /// The name is taken.
    #[error("{resource} \"{name}\" already exists")]
    AlreadyExists {
        /// Resource plural.
        resource: &'static str,
        /// Object name.
        name: String,
    },
    /// The write carried a resourceVersion (or uid precondition) that is not the live one.
    #[error(
        "Operation cannot be fulfilled on {resource} \"{name}\": the object has been modified; \
         please apply your changes to the latest version and try again"
    )]
    Conflict {
        /// Resource plural.
        resource: &'static str,
        /// Object name.
        name: String,
    },
    /// The object is not acceptable; each cause is (field, message).
    #[error("{resource} \"{name}\" is invalid: {}", causes.iter().map(|(f, m)| format!("{f}: {m}")).collect::<Vec<_>>().join(", "))]
    Invalid {
        /// Resource plural.
        resource: &'static str,
        /// Object name (may be empty).
        name: String,
        /// (field path, message) pairs.
        causes: Vec<(String, String)>,
    },
    /// The operation is never allowed (deleting namespace `default`).
    #[error("{0}")]
    Forbidden(String),
    /// The namespace does not exist.
    #[error("namespaces \"{0}\" not found")]
    NamespaceNotFound(String),
    /// A create in a namespace that is being deleted.
    #[error(
        "{resource} \"{name}\" is forbidden: unable to create new content in namespace \
         {namespace} because it is being terminated"
    )]
    NamespaceTerminating {
        /// Resource as upstream names it in messages (`deployments.apps`).
        resource: String,
        /// Name of the object refused.
        name: String,
        /// The Terminating namespace.
        namespace: String,
    },
}

/// Which part of an object a write may change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteMode {
    /// The main resource: everything but `status` (for kinds with a status subresource).
    Main,
    /// The `/status` subresource: only `status`.
    Status,
}

/// Deletion propagation to objects whose ownerReferences name the deleted object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Propagation {
    /// Delete dependents (in the lab, at once, like foreground).
    #[default]
    Background,
    /// Delete dependents before the owner (same effect in the lab).
    Foreground,
    /// Keep dependents and drop their owner reference.
    Orphan,
}

/// Options of one deletion.
#[derive(Debug, Clone, Default)]
pub struct DeleteOptions {
    /// Seconds of grace (pods); `Some(0)` removes at once.
    pub grace_period: Option<i64>,
    /// What happens to dependents.
    pub propagation: Propagation,
    /// Only delete if the uid still matches.
    pub precondition_uid: Option<String>,
    /// Only delete if the resourceVersion still matches.
    pub precondition_rv: Option<String>,
}

/// What a deletion did.
#[derive(Debug, Clone, PartialEq)]
pub enum Deleted {
    /// The object is gone; this is its last state.
    Gone(Value),
    /// The object is marked (`deletionTimestamp`) and waits for its finalizers or its pod
    /// terminator.
    Pending(Value),
}

/// A list answer: the objects and the resourceVersion it is consistent with.
#[derive(Debug, Clone)]
pub struct Listed {
    /// Matching objects, ordered by namespace then name.
    pub items: Vec<Value>,
    /// The store's resourceVersion at the time of the list.
    pub rv: u64,
}

type Key = (&'static str, String, String);

/// The objects of one resource, in one namespace or all, in key order: a range of the map
/// (keys sort by resource, then namespace), not a scan of every object.
fn objects_of<'a>(
    state: &'a State,
    resource: &'static str,
    namespace: Option<&'a str>,
) -> impl Iterator<Item = (&'a Key, &'a Arc<Value>)> + 'a {
    let first: Key = (resource, namespace.unwrap_or("").to_string(), String::new());
    state
        .objects
        .range((Bound::Included(first), Bound::Unbounded))
        .take_while(move |((r, ns, _), _)| *r == resource && namespace.is_none_or(|n| n == ns))
}

/// Where node ports are allocated from by default (upstream's default
/// `--service-node-port-range`).
pub const DEFAULT_NODE_PORTS: std::ops::RangeInclusive<u16> = 30000..=32767;

pub(crate) struct State {
    /// Shared, so that a list or a snapshot under the lock copies pointers, not objects;
    /// a write replaces the whole `Arc`.
    objects: BTreeMap<Key, Arc<Value>>,
    /// Owner uid → dependents, uid → key (the garbage collector's graph).
    owners: owners::OwnerIndex,
    /// Events by resourceVersion (which to drop first at the cap).
    event_ages: events::EventAges,
    rv: u64,
    /// Past events with their estimated size in bytes.
    history: VecDeque<(Arc<StoredEvent>, usize)>,
    /// The sum of the sizes in `history`.
    history_bytes: usize,
    /// Every event with rv > floor is still in `history`.
    floor: u64,
    /// Where node ports are allocated from (the API server's
    /// `--service-node-port-range`; a named lab gets a slice of its own).
    node_ports: std::ops::RangeInclusive<u16>,
    /// Live events, one channel per resource (made by its first watch), so a change
    /// wakes only the watchers of its resource: a pod's status write does not wake a
    /// hundred ConfigMap watches, nor every controller's pumps.
    channels: HashMap<&'static str, broadcast::Sender<Arc<StoredEvent>>>,
}

/// The store. Share it as `Arc<Store>`; every method is synchronous and short.
pub struct Store {
    // A std Mutex: no critical section awaits, and events are sent to watchers under it
    // so that a watch start (snapshot + subscribe) can never miss or repeat an event.
    state: Mutex<State>,
    changes: tokio::sync::watch::Sender<u64>,
    pod_terminator: AtomicBool,
    /// `tolerationSeconds` of the default `not-ready`/`unreachable` tolerations new pods
    /// get (negative: none are added).
    default_toleration_seconds: std::sync::atomic::AtomicI64,
    metrics: Mutex<BTreeMap<(String, String), Value>>,
    /// Most Events kept ([`MAX_EVENTS`]; tests lower it).
    event_cap: usize,
    /// The typed forms [`Store::list_parsed`] keeps between passes.
    parsed: memo::Parsed,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("rv", &self.resource_version())
            .finish_non_exhaustive()
    }
}

impl Store {
    /// An empty store holding the namespaces every cluster starts with.
    pub fn new() -> Store {
        let store = Store::from_parts(BTreeMap::new(), 0);
        store.ensure_system_namespaces();
        store
    }

    /// Creates `default`, `kube-system` and `kube-public` where missing, as the upstream
    /// API server does at start (`kube-node-lease` comes with the first node).
    pub fn ensure_system_namespaces(&self) {
        for ns in ["default", "kube-system", "kube-public"] {
            self.ensure_namespace(ns);
        }
    }

    pub(crate) fn from_parts(objects: BTreeMap<Key, Value>, rv: u64) -> Store {
        let (changes, _) = tokio::sync::watch::channel(0);
        let objects: BTreeMap<Key, Arc<Value>> =
            objects.into_iter().map(|(k, v)| (k, Arc::new(v))).collect();
        Store {
            state: Mutex::new(State {
                owners: owners::OwnerIndex::build(objects.iter().map(|(k, v)| (k, &**v))),
                event_ages: events::EventAges::build(objects.iter().map(|(k, v)| (k, &**v))),
                objects,
                rv,
                history: VecDeque::new(),
                history_bytes: 0,
                floor: rv,
                node_ports: DEFAULT_NODE_PORTS,
                channels: HashMap::new(),
            }),
            changes,
            pod_terminator: AtomicBool::new(false),
            default_toleration_seconds: std::sync::atomic::AtomicI64::new(-1),
            metrics: Mutex::new(BTreeMap::new()),
            parsed: memo::Parsed::default(),
            event_cap: MAX_EVENTS,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves maps that are still structurally valid
        // (every mutation is a single insert/remove), so keep serving rather than poison.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Creates namespace `name` if it does not exist.
    pub fn ensure_namespace(&self, name: &str) {
        if self.get("namespaces", "", name).is_none() {
            let ns = serde_json::json!({"metadata": {"name": name}});
            let _ = self.create(kind("namespaces"), "", ns);
        }
    }

    /// Allocates node ports for Services that do not name one from `range` only (ports
    /// a Service names stay valid anywhere in 30000-32767).
    pub fn set_node_port_range(&self, range: std::ops::RangeInclusive<u16>) {
        self.lock().node_ports = range;
    }

    /// The current resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.lock().rv
    }

    /// Receives a tick after every change (used by persistence).
    pub fn changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// Declares that a pod terminator (the kubelet) finishes pod deletions: from now on pods
    /// deleted with a grace period are only marked, and the terminator calls
    /// [`Store::remove`] once the process has stopped.
    pub fn set_pod_terminator(&self, present: bool) {
        self.pod_terminator.store(present, Ordering::SeqCst);
    }

    /// Makes pod creation add the default `not-ready`/`unreachable` NoExecute tolerations
    /// with `seconds` (the DefaultTolerationSeconds admission plugin; negative turns it off).
    pub fn set_default_toleration_seconds(&self, seconds: i64) {
        self.default_toleration_seconds
            .store(seconds, Ordering::SeqCst);
    }

    /// One object.
    pub fn get(&self, resource: &str, namespace: &str, name: &str) -> Option<Value> {
        let kind = kinds::stored(resource)?;
        self.lock()
            .objects
            .get(&(kind.plural, namespace.to_string(), name.to_string()))
            .map(|v| Value::clone(v))
    }

    /// All objects of `resource`, in one namespace or (None) all of them.
    pub fn list(&self, resource: &str, namespace: Option<&str>) -> Listed {
        let (shared, rv) = self.list_shared(resource, namespace);
        // Copied outside the lock.
        let items = shared.iter().map(|v| Value::clone(v)).collect();
        Listed { items, rv }
    }

    /// [`Store::list`] without copying the objects: what a loop that only reads them
    /// (or parses them with `T::deserialize(&*value)`) should call; the store's
    /// resourceVersion with them.
    pub fn list_shared(&self, resource: &str, namespace: Option<&str>) -> (Vec<Arc<Value>>, u64) {
        let state = self.lock();
        let items = match kinds::stored(resource) {
            Some(kind) => objects_of(&state, kind.plural, namespace)
                .map(|(_, v)| v.clone())
                .collect(),
            None => Vec::new(),
        };
        (items, state.rv)
    }

    /// Every object of `resource` as `T`, for a loop that reads them all on each pass: an
    /// object is parsed once after each write to it, not on every call (objects that do not
    /// parse as `T` are left out).
    pub fn list_parsed<T>(&self, resource: &str) -> Vec<Arc<T>>
    where
        T: serde::de::DeserializeOwned + Send + Sync + 'static,
    {
        let Some(kind) = kinds::stored(resource) else {
            return Vec::new();
        };
        let (objects, _) = self.list_shared(kind.plural, None);
        self.parsed.of(kind.plural, &objects)
    }

    /// Object counts per resource (for the lab's status endpoint).
    pub fn counts(&self) -> BTreeMap<&'static str, usize> {
        let mut out = BTreeMap::new();
        for (r, _, _) in self.lock().objects.keys() {
            *out.entry(*r).or_insert(0) += 1;
        }
        out
    }

    /// Creates an object: fills server metadata, applies defaults, resets status for kinds
    /// with a status subresource (pods start `Pending`).
    pub fn create(
        &self,
        kind: &'static Kind,
        namespace: &str,
        obj: Value,
    ) -> Result<Value, StoreError> {
        self.create_with(kind, namespace, obj, false)
    }

    /// What [`Store::create`] would store, with every check, storing nothing (server-side
    /// dry run).
    pub fn preview_create(
        &self,
        kind: &'static Kind,
        namespace: &str,
        obj: Value,
    ) -> Result<Value, StoreError> {
        self.create_with(kind, namespace, obj, true)
    }

    fn create_with(
        &self,
        kind: &'static Kind,
        namespace: &str,
        obj: Value,
        dry: bool,
    ) -> Result<Value, StoreError> {
        let mut state = self.lock();
        let namespace = if kind.namespaced { namespace } else { "" };
        if kind.namespaced {
            match state
                .objects
                .get(&("namespaces", String::new(), namespace.to_string()))
            {
                Some(ns) if namespaces::terminating(ns) => {
                    return Err(StoreError::NamespaceTerminating {
                        resource: kind.qualified(),
                        name: meta::name(&obj).to_string(),
                        namespace: namespace.to_string(),
                    });
                }
                Some(_) => {}
                None => return Err(StoreError::NamespaceNotFound(namespace.to_string())),
            }
        }
        let mut obj = meta::prepare_create(kind, namespace, obj)?;
        let toleration_seconds = self.default_toleration_seconds.load(Ordering::SeqCst);
        if kind.plural == "pods" && toleration_seconds >= 0 {
            crate::controllers::taints::add_default_tolerations(&mut obj, toleration_seconds);
        }
        if kind.plural == "namespaces" {
            namespaces::default_finalizers(&mut obj);
        }
        config::prepare(kind, &mut obj, None)?;
        check_depth(kind, &obj)?;
        if kind.plural == "services" {
            services::allocate(&state, &mut obj, None);
        }
        let name = meta::name(&obj).to_string();
        let key = (kind.plural, namespace.to_string(), name.clone());
        if state.objects.contains_key(&key) {
            return Err(StoreError::AlreadyExists {
                resource: kind.plural,
                name,
            });
        }
        if dry {
            return Ok(obj);
        }
        if kind.plural == "events" {
            self.make_room_for_an_event(&mut state);
        }
        let rv = state.rv + 1;
        meta::set_rv(&mut obj, rv);
        let shared = Arc::new(obj);
        state.put(key, shared.clone());
        self.record(
            &mut state,
            EventType::Added,
            kind,
            namespace,
            shared.clone(),
            None,
        );
        Ok(Arc::unwrap_or_clone(shared))
    }

    /// Replaces an object (or only its status). A non-empty `metadata.resourceVersion`
    /// must equal the live one. A write that changes nothing keeps the resourceVersion and
    /// sends no event.
    pub fn update(
        &self,
        kind: &'static Kind,
        namespace: &str,
        name: &str,
        obj: Value,
        mode: WriteMode,
    ) -> Result<Value, StoreError> {
        self.update_with(kind, namespace, name, obj, mode, false)
    }

    /// What [`Store::update`] would store, with every check, storing nothing (server-side
    /// dry run).
    pub fn preview_update(
        &self,
        kind: &'static Kind,
        namespace: &str,
        name: &str,
        obj: Value,
        mode: WriteMode,
    ) -> Result<Value, StoreError> {
        self.update_with(kind, namespace, name, obj, mode, true)
    }

    fn update_with(
        &self,
        kind: &'static Kind,
        namespace: &str,
        name: &str,
        obj: Value,
        mode: WriteMode,
        dry: bool,
    ) -> Result<Value, StoreError> {
        let mut state = self.lock();
        let namespace = if kind.namespaced { namespace } else { "" };
        let key = (kind.plural, namespace.to_string(), name.to_string());
        let Some(live) = state.objects.get(&key) else {
            return Err(StoreError::NotFound {
                resource: kind.plural,
                name: name.to_string(),
            });
        };
        let sent_rv = meta::rv(&obj);
        if !sent_rv.is_empty() && sent_rv != meta::rv(live) {
            return Err(StoreError::Conflict {
                resource: kind.plural,
                name: name.to_string(),
            });
        }
        let mut new = meta::prepare_update(kind, live, obj, mode)?;
        if kind.plural == "namespaces" {
            // Only the namespace lifecycle changes spec.finalizers (upstream: `/finalize`).
            namespaces::keep_spec_finalizers(live, &mut new);
        }
        check_depth(kind, &new)?;
        if kind.plural == "services" && mode == WriteMode::Main {
            services::keep_allocations(live, &mut new);
            services::allocate(&state, &mut new, Some(name));
        }
        let live = &state.objects[&key];
        if meta::same_ignoring_rv(live, &new) {
            return Ok(Value::clone(live));
        }
        if dry {
            return Ok(new);
        }
        // Finalizers emptied on an object being deleted: the deletion completes now.
        if meta::deletion_timestamp(&new).is_some()
            && meta::finalizers(&new).is_empty()
            && namespaces::spec_finalizers(&new).is_empty()
            && kind.plural != "pods"
        {
            let previous = Value::clone(live);
            drop(state);
            return self
                .remove_with(
                    kind,
                    namespace,
                    name,
                    Propagation::Background,
                    Some(previous),
                )
                .map(|d| match d {
                    Deleted::Gone(v) | Deleted::Pending(v) => v,
                });
        }
        meta::set_rv(&mut new, state.rv + 1);
        let shared = Arc::new(new);
        let previous = state.put(key, shared.clone());
        self.record(
            &mut state,
            EventType::Modified,
            kind,
            namespace,
            shared.clone(),
            previous,
        );
        Ok(Arc::unwrap_or_clone(shared))
    }

    /// Latest metrics of one pod (metrics.k8s.io PodMetrics object), set by the kubelet.
    pub fn set_pod_metrics(&self, namespace: &str, name: &str, metrics: Option<Value>) {
        let mut m = self.metrics.lock().unwrap_or_else(|e| e.into_inner());
        let key = (namespace.to_string(), name.to_string());
        match metrics {
            Some(v) => {
                m.insert(key, v);
            }
            None => {
                m.remove(&key);
            }
        }
    }

    /// Pod metrics in one namespace or all.
    pub fn pod_metrics(&self, namespace: Option<&str>) -> Vec<Value> {
        let m = self.metrics.lock().unwrap_or_else(|e| e.into_inner());
        m.iter()
            .filter(|((ns, _), _)| namespace.is_none_or(|n| n == ns))
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// Starts a watch on `resource` (in `namespace`, or all): with [`WatchStart::Now`] the
    /// subscription first yields an ADDED event per current object; with
    /// [`WatchStart::After`] it yields the events after that resourceVersion, or
    /// `Err(oldest)` if they are no longer in the history (the client must relist).
    pub fn watch(
        &self,
        resource: &'static str,
        namespace: Option<&str>,
        start: WatchStart,
    ) -> Result<Subscription, u64> {
        let mut state = self.lock();
        let initial: Vec<Arc<StoredEvent>> = match start {
            WatchStart::Now => objects_of(&state, resource, namespace)
                .map(|((r, ns, _), v)| {
                    Arc::new(StoredEvent::new(
                        state.rv,
                        EventType::Added,
                        r,
                        ns.clone(),
                        v.clone(),
                        None,
                    ))
                })
                .collect(),
            WatchStart::After(rv) => {
                if rv < state.floor {
                    return Err(state.floor);
                }
                state
                    .history
                    .iter()
                    .map(|(e, _)| e)
                    .filter(|e| e.rv > rv)
                    .filter(|e| {
                        e.resource == resource && namespace.is_none_or(|n| n == e.namespace)
                    })
                    .cloned()
                    .collect()
            }
        };
        Ok(Subscription::new(
            namespace.map(str::to_string),
            initial,
            state
                .channels
                .entry(resource)
                .or_insert_with(|| broadcast::channel(FANOUT).0)
                .subscribe(),
            match start {
                // A client that asks for events after a version it has not seen yet (ahead
                // of this store) gets only events after that version.
                WatchStart::After(rv) => rv.max(state.rv),
                WatchStart::Now => state.rv,
            },
        ))
    }

    fn record(
        &self,
        state: &mut State,
        kind: EventType,
        k: &'static Kind,
        namespace: &str,
        object: Arc<Value>,
        previous: Option<Arc<Value>>,
    ) {
        state.rv += 1;
        let event = Arc::new(StoredEvent::new(
            state.rv,
            kind,
            k.plural,
            namespace.to_string(),
            object,
            previous,
        ));
        let size = bounds::encoded_len(&event.object)
            + event.previous.as_deref().map_or(0, bounds::encoded_len);
        state.history.push_back((event.clone(), size));
        state.history_bytes += size;
        // The newest event always stays, however large: a watch from the current version
        // must be able to start.
        while state.history.len() > HISTORY
            || (state.history_bytes > HISTORY_BYTES && state.history.len() > 1)
        {
            if let Some((old, old_size)) = state.history.pop_front() {
                state.floor = old.rv;
                state.history_bytes -= old_size;
            }
        }
        // No channel or no receivers is normal (nobody watching).
        if let Some(channel) = state.channels.get(k.plural) {
            let _ = channel.send(event);
        }
        self.changes.send_modify(|n| *n += 1);
    }

    pub(crate) fn snapshot(&self) -> (Vec<(&'static str, Arc<Value>)>, u64) {
        let state = self.lock();
        let objects = state
            .objects
            .iter()
            .map(|((r, _, _), v)| (*r, v.clone()))
            .collect();
        (objects, state.rv)
    }
}

impl Default for Store {
    fn default() -> Self {
        Store::new()
    }
}

/// Refuses an object nested deeper than [`bounds::MAX_DEPTH`]: it could not be reloaded,
/// and walking it could overflow a stack.
fn check_depth(kind: &Kind, obj: &Value) -> Result<(), StoreError> {
    match bounds::deeper_than(obj, bounds::MAX_DEPTH) {
        None => Ok(()),
        Some(field) => Err(StoreError::Invalid {
            resource: kind.plural,
            name: meta::name(obj).to_string(),
            causes: vec![(field, bounds::depth_message())],
        }),
    }
}

#[cfg(test)]
mod gc_tests;
#[cfg(test)]
mod tests;
