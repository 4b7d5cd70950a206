//! The watch streams the controller listens to: one `kube::runtime::watcher` per kind
//! (pods, the Service, its EndpointSlices — or Endpoints where slices are not served —,
//! Deployments, HPAs), merged into one stream of
//! [`Change`]s.
//!
//! Resilience lives here. kube's watcher resumes a stream that ends or drops from the last
//! resourceVersion it saw (bookmarks keep that fresh), and answers 410 Expired — the API
//! server no longer holds the events after that version — with a full relist, which it
//! announces as `Init … InitApply … InitDone`; the controller hands those to
//! [`DemoState`](super::state::DemoState), which drops whatever the relist no longer holds,
//! so a transition that happened while the stream was down is still seen. A failed attempt
//! surfaces as one `Err` and is retried after a short backoff (100 ms doubling to 2 s,
//! reset by the next success) rather than at once in a hot loop or after kube's default of
//! up to 30 s, which would be a 30 s blind spot for a failover watcher. A watch that goes
//! silent without closing (a half-open connection) is given up after [`WATCH_TIMEOUT_S`]
//! plus kube's 5 s margin and re-established.
//!
//! Called by the controller only.

use std::time::Duration;

use futures::{Stream, StreamExt, stream::BoxStream};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{Endpoints, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::utils::Backoff;
use kube::runtime::watcher::{self, Event as WatchEvent};
use kube::{Client, Resource};
use serde::de::DeserializeOwned;

use super::controller::{WatchError, WatchPlan};
use super::state::Watched;
use crate::cluster;

/// Server-side timeout of each watch request; also bounds how long a silently dead
/// connection goes unnoticed.
pub const WATCH_TIMEOUT_S: u32 = 60;
/// First wait after a failed watch attempt.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
/// Longest wait between attempts.
const BACKOFF_MAX: Duration = Duration::from_secs(2);

/// One change from any of the watches.
pub enum Change {
    Pod(WatchEvent<Pod>),
    Service(WatchEvent<Service>),
    Endpoints(WatchEvent<Endpoints>),
    EndpointSlice(WatchEvent<EndpointSlice>),
    Deployment(WatchEvent<Deployment>),
    Hpa(WatchEvent<HorizontalPodAutoscaler>),
}

impl Change {
    /// Which watch it came from.
    pub fn watched(&self) -> Watched {
        match self {
            Change::Pod(_) => Watched::Pods,
            Change::Service(_) => Watched::Service,
            Change::Endpoints(_) => Watched::Endpoints,
            Change::EndpointSlice(_) => Watched::EndpointSlices,
            Change::Deployment(_) => Watched::Deployments,
            Change::Hpa(_) => Watched::Hpas,
        }
    }
}

/// The merged stream.
pub type Changes = BoxStream<'static, Result<Change, WatchError>>;

/// Exponential reconnect backoff, reset by the next event that arrives.
#[derive(Debug, Clone)]
pub struct Reconnect {
    next: Duration,
}

impl Default for Reconnect {
    fn default() -> Self {
        Reconnect { next: BACKOFF_MIN }
    }
}

impl Iterator for Reconnect {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let now = self.next;
        self.next = (self.next * 2).min(BACKOFF_MAX);
        Some(now)
    }
}

impl Backoff for Reconnect {
    fn reset(&mut self) {
        self.next = BACKOFF_MIN;
    }
}

fn watch<K>(
    api: Api<K>,
    config: watcher::Config,
    watched: Watched,
    wrap: fn(WatchEvent<K>) -> Change,
) -> impl Stream<Item = Result<Change, WatchError>>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    let what = watched.resource();
    watcher::watcher(api, config.timeout(WATCH_TIMEOUT_S))
        .backoff(Reconnect::default())
        .map(move |event| {
            event
                .map(wrap)
                .map_err(|source| WatchError::Watch { what, source })
        })
}

/// Every watch of the demo the controller needs, merged. The Service's endpoints are
/// watched as EndpointSlices when `slices` (the cluster serves them), else as Endpoints.
pub fn changes(client: &Client, plan: &WatchPlan, slices: bool) -> Changes {
    let ns = plan.namespace.as_str();
    let by_name = || watcher::Config::default().fields(&format!("metadata.name={}", plan.service));
    let app = watcher::Config::default().labels("app=web");
    futures::stream::select_all([
        watch(
            Api::namespaced(client.clone(), ns),
            app.clone(),
            Watched::Pods,
            Change::Pod,
        )
        .boxed(),
        watch(
            Api::namespaced(client.clone(), ns),
            by_name(),
            Watched::Service,
            Change::Service,
        )
        .boxed(),
        if slices {
            let selector = cluster::endpoints::slice_selector(&plan.service);
            watch(
                Api::namespaced(client.clone(), ns),
                watcher::Config::default().labels(&selector),
                Watched::EndpointSlices,
                Change::EndpointSlice,
            )
            .boxed()
        } else {
            watch(
                Api::namespaced(client.clone(), ns),
                by_name(),
                Watched::Endpoints,
                Change::Endpoints,
            )
            .boxed()
        },
        watch(
            Api::namespaced(client.clone(), ns),
            app,
            Watched::Deployments,
            Change::Deployment,
        )
        .boxed(),
        watch(
            Api::namespaced(client.clone(), ns),
            watcher::Config::default(),
            Watched::Hpas,
            Change::Hpa,
        )
        .boxed(),
    ])
    .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconnects_back_off_from_100ms_to_2s_and_reset() {
        let mut b = Reconnect::default();
        let waits: Vec<u64> = (&mut b).take(7).map(|d| d.as_millis() as u64).collect();
        assert_eq!(waits, [100, 200, 400, 800, 1600, 2000, 2000]);
        b.reset();
        assert_eq!(b.next(), Some(Duration::from_millis(100)));
    }
}
