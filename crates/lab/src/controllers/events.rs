//! core/v1 Events for the lab's important transitions (Scheduled, Pulling, Started,
//! Killing, Unhealthy, BackOff, SuccessfulRescale, ScalingReplicaSet), written straight
//! into the store so `kubectl describe` and `kubectl get events` show them.
//!
//! Not aggregated like upstream's recorder: callers emit events on transitions only, not
//! on every probe or sync. Called by the controller loops and the kubelet controller.

use serde_json::{Value, json};

use crate::store::Store;
use crate::store::kinds::kind;

/// Records one Event about `object` (a stored object as JSON). Failures are logged: an
/// event is never worth failing a reconcile for.
pub fn record(
    store: &Store,
    object: &Value,
    type_: &str,
    reason: &str,
    message: &str,
    component: &str,
) {
    let meta = &object["metadata"];
    let name = meta["name"].as_str().unwrap_or_default();
    let ns = meta["namespace"].as_str().unwrap_or("default");
    let now = chrono::Utc::now();
    let at = now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let event = json!({
        "metadata": {
            // Upstream names events `<object>.<hex nanoseconds>`.
            "name": format!("{name}.{:x}", now.timestamp_nanos_opt().unwrap_or_default()),
            "namespace": ns,
        },
        "involvedObject": {
            "apiVersion": object["apiVersion"],
            "kind": object["kind"],
            "name": name,
            "namespace": ns,
            "uid": meta["uid"],
            "resourceVersion": meta["resourceVersion"],
        },
        "reason": reason,
        "message": message,
        "type": type_,
        "source": {"component": component, "host": "resil-lab"},
        "reportingComponent": component,
        "reportingInstance": "resil-lab",
        "firstTimestamp": at,
        "lastTimestamp": at,
        "count": 1,
    });
    if let Err(e) = store.create(kind("events"), ns, event) {
        tracing::debug!("event {reason} for {ns}/{name} not recorded: {e}");
    }
}
