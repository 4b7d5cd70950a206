//! Kubernetes Events from resil's own actions (chaos injections and reverts, watcher
//! decisions), so `kubectl get events` tells the story next to the cluster's own events.
//!
//! Best effort by design: a cluster that refuses an Event must never stop a failover or a
//! revert, so failures are logged at debug level and swallowed.

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
use kube::api::{Api, PostParams};

/// The object an Event is about.
#[derive(Debug, Clone)]
pub struct Involved<'a> {
    pub api_version: &'a str,
    pub kind: &'a str,
    pub name: &'a str,
}

/// `Normal` or `Warning`, as Kubernetes spells them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Normal,
    Warning,
}

/// Creates one core/v1 Event in `namespace` about `involved`, reported by `component`.
pub async fn emit(
    client: &kube::Client,
    namespace: &str,
    involved: Involved<'_>,
    severity: Severity,
    reason: &str,
    message: &str,
    component: &str,
) {
    let api: Api<Event> = Api::namespaced(client.clone(), namespace);
    let now = k8s_openapi::jiff::Timestamp::now();
    let event = Event {
        metadata: ObjectMeta {
            generate_name: Some(format!("{}.", involved.name)),
            namespace: Some(namespace.to_string()),
            ..ObjectMeta::default()
        },
        involved_object: ObjectReference {
            api_version: Some(involved.api_version.to_string()),
            kind: Some(involved.kind.to_string()),
            name: Some(involved.name.to_string()),
            namespace: Some(namespace.to_string()),
            ..ObjectReference::default()
        },
        reason: Some(reason.to_string()),
        message: Some(message.to_string()),
        type_: Some(
            match severity {
                Severity::Normal => "Normal",
                Severity::Warning => "Warning",
            }
            .to_string(),
        ),
        first_timestamp: Some(Time(now)),
        last_timestamp: Some(Time(now)),
        event_time: Some(MicroTime(now)),
        count: Some(1),
        action: Some(reason.to_string()),
        reporting_component: Some(component.to_string()),
        reporting_instance: Some(component.to_string()),
        source: Some(EventSource {
            component: Some(component.to_string()),
            host: None,
        }),
        ..Event::default()
    };
    if let Err(e) = api.create(&PostParams::default(), &event).await {
        tracing::debug!("could not emit event {reason} on {}: {e}", involved.name);
    }
}
