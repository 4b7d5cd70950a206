//! The loops that make the lab's stored objects behave: the Deployment and ReplicaSet
//! controllers (`deployment_loop.rs`, `replicaset_loop.rs`), the
//! Endpoints controller with the NodePort proxy, the HPA controller and the kubelet,
//! started by [`start`] from `Lab::start` and stopped by the lab's shutdown token.
//!
//! Each loop reads the store directly (no HTTP), decides with the pure controller code
//! (`deployment/`, `replicaset.rs`, `endpoints.rs`, `hpa/`), and writes through the
//! store's direct API.
//! The Deployment and Endpoints loops wake on every change of the resources they read
//! ([`Wake`]: store watches, bursts coalesced) and at least once a second; the HPA loop
//! syncs every `LabConfig.hpa_sync_period`. Writes that change nothing are skipped, so a
//! loop waking on its own write settles after one pass.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use k8s_openapi::api::core::v1::{Endpoints, Pod, Service};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{endpoints, events, hpa_loop};
use crate::LabConfig;
use crate::proxy::{self, ServiceProxy};
use crate::store::kinds::kind;
use crate::store::{DeleteOptions, Store, WatchStart, WriteMode};

/// Longest a change-driven loop sleeps without a change (a safety net, and the clock for
/// time-based transitions such as `minReadySeconds`).
pub(crate) const RESYNC: Duration = Duration::from_secs(1);

/// Spawns every lab loop on `tasks`; they stop when `shutdown` is cancelled.
pub fn start(
    store: Arc<Store>,
    config: &LabConfig,
    shutdown: CancellationToken,
    tasks: &TaskTracker,
) {
    tasks.spawn(super::deployment_loop::run(store.clone(), shutdown.clone()));
    tasks.spawn(super::replicaset_loop::run(store.clone(), shutdown.clone()));
    tasks.spawn(super::job_loop::run(store.clone(), shutdown.clone()));
    tasks.spawn(endpoints_loop(store.clone(), shutdown.clone()));
    tasks.spawn(super::endpointslice::run(store.clone(), shutdown.clone()));
    tasks.spawn(hpa_loop::run(
        store.clone(),
        config.hpa_sync_period,
        shutdown.clone(),
    ));
    super::cluster_start(store.clone(), config, shutdown.clone(), tasks);
    crate::kubelet::controller::start(store, config, shutdown, tasks);
}

/// Least time between two passes of a loop that is not latency-critical: under a burst
/// (200 pods starting) one pass then covers many changes.
pub(crate) const BATCH: Duration = Duration::from_millis(20);

/// The Endpoints loop's (latency-critical) batching pause.
const ENDPOINTS_BATCH: Duration = Duration::from_millis(2);

/// Wakes a loop when any of some resources changes. Each resource has a pump task that
/// follows a store watch and stores one permit in a [`Notify`], so a burst of changes
/// wakes the loop once. The pumps stop with `shutdown`.
pub(crate) struct Wake(Arc<Notify>);

impl Wake {
    /// Starts watching `resources` (all namespaces).
    pub(crate) fn on(
        store: &Arc<Store>,
        resources: &[&'static str],
        shutdown: &CancellationToken,
    ) -> Wake {
        let notify = Arc::new(Notify::new());
        for &resource in resources {
            tokio::spawn(pump(
                store.clone(),
                resource,
                notify.clone(),
                shutdown.clone(),
            ));
        }
        Wake(notify)
    }

    /// Completes after the next change (at once if one happened since the last call).
    pub(crate) async fn changed(&self) {
        self.0.notified().await;
    }
}

async fn pump(
    store: Arc<Store>,
    resource: &'static str,
    notify: Arc<Notify>,
    shutdown: CancellationToken,
) {
    loop {
        // Starting from the current version: the loop does a full pass anyway.
        let Ok(mut sub) = store.watch(resource, None, WatchStart::After(store.resource_version()))
        else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        loop {
            tokio::select! {
                // A change, or the watch lagged (events lost): either way, wake the loop.
                next = sub.next() => {
                    notify.notify_one();
                    if next.is_err() {
                        break;
                    }
                }
                // The lab stops.
                _ = shutdown.cancelled() => return,
            }
        }
    }
}

/// The Endpoints controller and the proxy: on every change, recomputes every Service's
/// Endpoints and hands the NodePort routes to the proxy.
async fn endpoints_loop(store: Arc<Store>, shutdown: CancellationToken) {
    // Its own Endpoints writes do not wake it; a hand-edited Endpoints is corrected at the
    // next pod or service change, or the resync.
    let wake = Wake::on(&store, &["pods", "services"], &shutdown);
    let mut proxy = ServiceProxy::new(shutdown.child_token());
    let mut reported: HashSet<String> = HashSet::new();
    loop {
        let endpoints = sync_endpoints(&store);
        let services: Vec<Service> = typed(store.list("services", None).items);
        let (routes, mut errors) = proxy::routes(&services, &endpoints);
        errors.extend(proxy.apply(&routes).await);
        show_node_ports(&store, &services, &proxy, &errors);
        // Log each problem once, not on every pass.
        let now: HashSet<String> = errors.iter().map(ToString::to_string).collect();
        for e in now.difference(&reported) {
            tracing::warn!("{e}");
        }
        reported = now;
        tokio::select! {
            // A pod or Service changed: recompute almost at once (readiness must show
            // within ms; the short pause folds a burst of writes into one pass).
            _ = wake.changed() => tokio::time::sleep(ENDPOINTS_BATCH).await,
            // Safety net.
            _ = tokio::time::sleep(RESYNC) => {}
            // The lab stops.
            _ = shutdown.cancelled() => break,
        }
    }
    proxy.stop().await;
}

/// Shows on each Service whether its node ports listen: the annotations
/// [`proxy::NODE_PORT_ERROR_ANNOTATION`] and [`proxy::NODE_PORT_LISTENING_ANNOTATION`],
/// a Warning Event `NodePortBindFailed` when a port cannot be bound and a Normal Event
/// `NodePortListening` when it can again. Writes only what changed.
fn show_node_ports(
    store: &Store,
    services: &[Service],
    proxy: &ServiceProxy,
    errors: &[proxy::ProxyError],
) {
    for svc in services {
        let ns = svc.metadata.namespace.as_deref().unwrap_or_default();
        let name = svc.metadata.name.as_deref().unwrap_or_default();
        let service = format!("{ns}/{name}");
        let routed = svc
            .spec
            .as_ref()
            .is_some_and(|s| matches!(s.type_.as_deref(), Some("NodePort" | "LoadBalancer")));
        let node_ports: Vec<u16> = svc
            .spec
            .iter()
            .filter(|_| routed)
            .flat_map(|s| s.ports.iter().flatten())
            .filter_map(|p| p.node_port.and_then(|n| u16::try_from(n).ok()))
            .collect();
        // This Service's failed binds: port, OS message, the error itself.
        let binds: Vec<(u16, &str, &proxy::ProxyError)> = errors
            .iter()
            .filter_map(|e| match e {
                proxy::ProxyError::Bind {
                    service: s,
                    port,
                    message,
                } if *s == service => Some((*port, message.as_str(), e)),
                _ => None,
            })
            .collect();
        let failed = |port: u16| binds.iter().any(|(p, ..)| *p == port);
        let error = binds
            .iter()
            .map(|(port, message, _)| format!("{port}: {message}"))
            .collect::<Vec<_>>()
            .join("; ");
        let listening = node_ports
            .iter()
            .filter(|p| !failed(**p) && proxy.is_listening(**p))
            .map(|p| format!("127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",");
        let want = [
            (
                proxy::NODE_PORT_ERROR_ANNOTATION,
                Some(error).filter(|e| !e.is_empty()),
            ),
            (
                proxy::NODE_PORT_LISTENING_ANNOTATION,
                Some(listening).filter(|l| !l.is_empty()),
            ),
        ];
        let annotations = svc.metadata.annotations.as_ref();
        let current = |key: &str| annotations.and_then(|a| a.get(key)).cloned();
        if want.iter().all(|(key, value)| current(key) == *value) {
            continue;
        }
        let Some(mut live) = store.get("services", ns, name) else {
            continue;
        };
        if !live["metadata"]["annotations"].is_object() {
            live["metadata"]["annotations"] = json!({});
        }
        for (key, value) in &want {
            match value {
                Some(v) => live["metadata"]["annotations"][*key] = json!(v),
                None => {
                    if let Some(a) = live["metadata"]["annotations"].as_object_mut() {
                        a.remove(*key);
                    }
                }
            }
        }
        // With the live resourceVersion: a concurrent write wins, the next pass redoes this.
        let Ok(updated) = store.update(kind("services"), ns, name, live, WriteMode::Main) else {
            continue;
        };
        let was_failing = current(proxy::NODE_PORT_ERROR_ANNOTATION);
        match &want[0].1 {
            Some(_) => {
                for (port, _, e) in &binds {
                    // Once per failing port, not on every retry.
                    let known = was_failing
                        .as_deref()
                        .is_some_and(|w| w.split("; ").any(|f| f.starts_with(&format!("{port}:"))));
                    if !known {
                        events::record(
                            store,
                            &updated,
                            "Warning",
                            "NodePortBindFailed",
                            &format!(
                                "{e}; traffic to that port reaches whatever listens there, not \
                                 this Service; the lab retries every second"
                            ),
                            "kube-proxy",
                        );
                    }
                }
            }
            None if was_failing.is_some() => events::record(
                store,
                &updated,
                "Normal",
                "NodePortListening",
                &format!("Listening on {}", want[1].1.as_deref().unwrap_or("no port")),
                "kube-proxy",
            ),
            None => {}
        }
    }
}

/// Every pod, when some of `services` selects pods (none otherwise: nothing to read).
pub(crate) fn selected_pods(store: &Store, services: &[Service]) -> Vec<Arc<Pod>> {
    let selecting = services.iter().any(|s| {
        s.spec
            .as_ref()
            .and_then(|s| s.selector.as_ref())
            .is_some_and(|m| !m.is_empty())
    });
    if selecting {
        store.list_parsed("pods")
    } else {
        Vec::new()
    }
}

/// One pass: writes the Endpoints of every Service with a selector (when they differ),
/// removes Endpoints whose Service is gone, and returns the Endpoints now stored.
pub(crate) fn sync_endpoints(store: &Store) -> Vec<Endpoints> {
    let services: Vec<Service> = typed(store.list("services", None).items);
    let pods = selected_pods(store, &services);
    let stored: Vec<Endpoints> = typed(store.list("endpoints", None).items);
    for svc in &services {
        let Some(want) = endpoints::endpoints_for(svc, &pods) else {
            continue;
        };
        let ns = want.metadata.namespace.clone().unwrap_or_default();
        let name = want.metadata.name.clone().unwrap_or_default();
        let live = stored.iter().find(|e| {
            e.metadata.namespace == want.metadata.namespace && e.metadata.name == want.metadata.name
        });
        let result = match live {
            None => store
                .create(kind("endpoints"), &ns, to_value(&want))
                .map(drop),
            Some(l) if endpoints::same_endpoints(l, &want) => Ok(()),
            Some(_) => store
                .update(
                    kind("endpoints"),
                    &ns,
                    &name,
                    to_value(&want),
                    WriteMode::Main,
                )
                .map(drop),
        };
        if let Err(e) = result {
            tracing::warn!("endpoints {ns}/{name}: {e}");
        }
    }
    for ep in &stored {
        let orphan = !services.iter().any(|s| {
            s.metadata.namespace == ep.metadata.namespace && s.metadata.name == ep.metadata.name
        });
        if orphan {
            let ns = ep.metadata.namespace.as_deref().unwrap_or_default();
            let name = ep.metadata.name.as_deref().unwrap_or_default();
            let _ = store.delete(kind("endpoints"), ns, name, &DeleteOptions::default());
        }
    }
    typed(store.list("endpoints", None).items)
}

/// The uid of the pod's controller (ownerReference with `controller: true`), on raw JSON.
pub(crate) fn controller_uid(pod: &Value) -> Option<&str> {
    pod.pointer("/metadata/ownerReferences")?
        .as_array()?
        .iter()
        .find(|o| o["controller"] == json!(true))?
        .get("uid")?
        .as_str()
}

/// Writes `status` to the object's status subresource, unconditionally (the status is
/// this controller's to own).
pub(crate) fn write_status(store: &Store, resource: &str, ns: &str, name: &str, status: Value) {
    let obj = json!({"metadata": {"name": name}, "status": status});
    if let Err(e) = store.update(kind(resource), ns, name, obj, WriteMode::Status) {
        tracing::debug!("{resource} {ns}/{name}: status write failed: {e}");
    }
}

/// Objects that parse as `T`; others are skipped (the API validated them, so a failure
/// is an object this controller cannot act on anyway).
pub(crate) fn typed<T: DeserializeOwned>(items: Vec<Value>) -> Vec<T> {
    items
        .into_iter()
        .filter_map(|v| match serde_json::from_value(v) {
            Ok(t) => Some(t),
            Err(e) => {
                tracing::debug!("skipping an object the controller cannot read: {e}");
                None
            }
        })
        .collect()
}

/// A k8s-openapi value as JSON.
pub(crate) fn to_value<T: serde::Serialize>(t: &T) -> Value {
    // Serializing these types cannot fail: plain structs, string-keyed maps.
    serde_json::to_value(t).unwrap_or(Value::Null)
}
