//! The lab's controllers: the logic that makes stored objects behave like a cluster's.
//!
//! Each controller's decision logic is pure (objects and the time in, a decision out) so it
//! can be tested without a store: `deployment/`, `replicaset.rs`, `endpoints.rs`, `hpa/`. The loops that
//! feed them from the store and write their decisions back are in `runtime.rs` (Deployment,
//! Endpoints + proxy) and `hpa_loop.rs`; [`start`] spawns them all, with the kubelet.
//! Nothing here imports toolkit modules.

pub(crate) mod deployment;
pub(crate) mod deployment_loop;
pub(crate) mod disruption;
pub(crate) mod endpoints;
pub(crate) mod endpointslice;
pub(crate) mod events;
#[allow(unused_imports)]
pub(crate) mod hpa;
pub(crate) mod hpa_loop;
pub(crate) mod job;
pub(crate) mod job_loop;
pub(crate) mod labels;
pub(crate) mod namespace;
pub(crate) mod nodelifecycle;
pub(crate) mod pods;
pub(crate) mod replicaset;
pub(crate) mod replicaset_loop;
pub(crate) mod runtime;
pub(crate) mod scheduler;
pub(crate) mod taints;

pub use runtime::start;

/// Spawns the multi-node loops: the node agent, the scheduler (`scheduler/`), the node
/// lifecycle controller (`nodelifecycle.rs`) and the disruption controller.
fn cluster_start(
    store: std::sync::Arc<crate::store::Store>,
    config: &crate::LabConfig,
    shutdown: tokio_util::sync::CancellationToken,
    tasks: &tokio_util::task::TaskTracker,
) {
    let agent = crate::nodes::agent::Agent {
        nodes: config.nodes.nodes(),
        capacity: crate::nodes::Capacity::for_pods(config.max_pods.max(1)),
        renew: crate::nodes::agent::renew_period(config.node_monitor_grace_period),
    };
    // Registered before the loops start, so the first scheduling pass sees the nodes.
    crate::nodes::agent::register(&store, &agent);
    let lifecycle = nodelifecycle::Lifecycle {
        grace: config.node_monitor_grace_period,
        period: agent.renew,
    };
    tasks.spawn(crate::nodes::agent::run(
        store.clone(),
        agent,
        shutdown.clone(),
    ));
    tasks.spawn(scheduler::run(store.clone(), shutdown.clone()));
    tasks.spawn(nodelifecycle::run(
        store.clone(),
        lifecycle,
        shutdown.clone(),
    ));
    tasks.spawn(disruption::run(store, shutdown));
}
