//! `resil undeploy`: delete what `resil deploy` created — only objects labelled
//! `app.kubernetes.io/managed-by: resil` in the demo namespace — and wait until they are
//! gone. The namespace itself goes only when it is resil's and holds nothing else.
//!
//! [`undeploy`] is the engine (also used by `resil run` to clean up); [`command`] prints.

use std::io::Write;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{Namespace, Pod, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, DeleteParams, ListParams};
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;

use crate::Exit;
use crate::cli::{GlobalArgs, UndeployArgs};
use crate::cluster::{
    self, ClusterError, ConnectOptions, Guard, MANAGED_BY_LABEL, MANAGED_BY_VALUE, Target,
};

/// How often the wait re-checks what is left.
const POLL: Duration = Duration::from_millis(200);

/// What an undeploy removed and kept.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UndeployReport {
    /// `resource/name` of every object deleted.
    pub deleted: Vec<String>,
    /// Why the namespace was kept, when it was.
    pub namespace_kept: Option<String>,
    /// How long until everything was gone.
    pub waited: Duration,
}

fn managed() -> ListParams {
    ListParams::default().labels(&format!("{MANAGED_BY_LABEL}={MANAGED_BY_VALUE}"))
}

fn foreign() -> ListParams {
    ListParams::default().labels(&format!("{MANAGED_BY_LABEL}!={MANAGED_BY_VALUE}"))
}

async fn names<K>(
    api: &Api<K>,
    params: &ListParams,
    what: &str,
) -> Result<Vec<String>, ClusterError>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    Ok(api
        .list(params)
        .await
        .map_err(|e| ClusterError::api(format!("listing {what}"), e))?
        .items
        .iter()
        .map(|o| o.name_any())
        .collect())
}

async fn delete_all<K>(
    api: &Api<K>,
    resource: &str,
    deleted: &mut Vec<String>,
) -> Result<(), ClusterError>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    for name in names(api, &managed(), resource).await? {
        match api.delete(&name, &DeleteParams::background()).await {
            Ok(_) => deleted.push(format!("{resource}/{name}")),
            // Gone already (someone else, or a cascade): that is what we wanted.
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(ClusterError::api(format!("deleting {resource} {name}"), e)),
        }
    }
    Ok(())
}

/// Deletes resil's objects in the target namespace and waits up to `timeout` until they
/// (and their pods, and the namespace when it was deleted) are gone.
pub async fn undeploy(target: &Target, timeout: Duration) -> Result<UndeployReport, ClusterError> {
    let client = target.client.clone();
    let ns = target.namespace.as_str();
    let started = Instant::now();
    let hpas: Api<HorizontalPodAutoscaler> = Api::namespaced(client.clone(), ns);
    let services: Api<Service> = Api::namespaced(client.clone(), ns);
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let pdbs: Api<PodDisruptionBudget> = Api::namespaced(client.clone(), ns);
    let namespaces: Api<Namespace> = Api::all(client);
    let mut report = UndeployReport::default();
    delete_all(&pdbs, "poddisruptionbudget.policy", &mut report.deleted).await?;
    delete_all(
        &hpas,
        "horizontalpodautoscaler.autoscaling",
        &mut report.deleted,
    )
    .await?;
    delete_all(&services, "service", &mut report.deleted).await?;
    delete_all(&deployments, "deployment.apps", &mut report.deleted).await?;

    let live_ns = namespaces
        .get_opt(ns)
        .await
        .map_err(|e| ClusterError::api(format!("reading namespace {ns}"), e))?;
    let mut delete_ns = false;
    if let Some(live) = live_ns {
        if cluster::ensure_managed("namespace", &live.metadata, None).is_err() {
            report.namespace_kept = Some(format!("namespace {ns} is not resil's"));
        } else {
            let mut others = names(&deployments, &foreign(), "deployments").await?;
            others.extend(names(&services, &foreign(), "services").await?);
            others.extend(names(&hpas, &foreign(), "hpas").await?);
            others.extend(names(&pdbs, &foreign(), "pdbs").await?);
            others.extend(names(&pods, &foreign(), "pods").await?);
            if others.is_empty() {
                delete_ns = true;
            } else {
                report.namespace_kept = Some(format!(
                    "namespace {ns} also holds objects resil did not create ({})",
                    others.join(", ")
                ));
            }
        }
    }
    if delete_ns {
        match namespaces.delete(ns, &DeleteParams::background()).await {
            Ok(_) => report.deleted.push(format!("namespace/{ns}")),
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(ClusterError::api(format!("deleting namespace {ns}"), e)),
        }
    }

    // Bounded by the timeout: check what is left every POLL.
    let deadline = Instant::now() + timeout;
    loop {
        let mut left = Vec::new();
        let ns_gone = !delete_ns
            || namespaces
                .get_opt(ns)
                .await
                .map_err(|e| ClusterError::api(format!("reading namespace {ns}"), e))?
                .is_none();
        if !ns_gone {
            left.push(format!("namespace/{ns}"));
        }
        // A namespace being deleted may refuse lists; its own absence is the final word.
        if !delete_ns || !ns_gone {
            for (what, found) in [
                ("hpa", names(&hpas, &managed(), "hpas").await),
                ("pdb", names(&pdbs, &managed(), "pdbs").await),
                ("service", names(&services, &managed(), "services").await),
                (
                    "deployment",
                    names(&deployments, &managed(), "deployments").await,
                ),
                ("pod", names(&pods, &managed(), "pods").await),
            ] {
                match found {
                    Ok(found) => left.extend(found.into_iter().map(|n| format!("{what}/{n}"))),
                    Err(_) if delete_ns => {}
                    Err(e) => return Err(e),
                }
            }
        }
        if left.is_empty() {
            report.waited = started.elapsed();
            return Ok(report);
        }
        if Instant::now() >= deadline {
            return Err(ClusterError::RolloutTimeout {
                waited: timeout,
                pending: format!("these to be deleted: {}", left.join(", ")),
            });
        }
        tokio::time::sleep(POLL).await;
    }
}

/// `resil undeploy`
pub async fn command(args: UndeployArgs, global: &GlobalArgs) -> anyhow::Result<Exit> {
    let options = ConnectOptions::from_global(global);
    let guard = Guard::from_environment(&global.allow_context)?;
    let target = cluster::connect(&options, Some(&guard)).await?;
    let report = undeploy(&target, args.timeout).await?;
    let mut out = std::io::stdout().lock();
    if report.deleted.is_empty() {
        writeln!(
            out,
            "nothing to remove: no resil objects in namespace {} (context {})",
            target.namespace, target.context
        )?;
    }
    for line in &report.deleted {
        writeln!(out, "{line} deleted")?;
    }
    if let Some(why) = &report.namespace_kept {
        writeln!(out, "kept the namespace: {why}")?;
    }
    if !report.deleted.is_empty() {
        writeln!(out, "all gone after {:.1}s", report.waited.as_secs_f64())?;
    }
    Ok(Exit::Ok)
}
