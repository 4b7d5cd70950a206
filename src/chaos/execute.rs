//! Carrying out chaos actions and their reverts through kube-rs.
//!
//! Every function here talks to the API server only: pods are deleted with the Pod API,
//! replicas changed with a merge patch on the Deployment, the demo app's fault switches
//! reached through the API server's pod proxy (`pods/NAME:PORT/proxy/admin/faults`, the
//! path `kubectl get --raw` uses), and the lab's proxy fault set as a Service annotation.
//! Called by the chaos command layer and the scenario runner; never prints.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::{Client, ResourceExt};
use serde_json::json;

use super::journal::{Entry, Undo};
use super::plan::{Candidate, Faults, PROXY_FAULT_ANNOTATION};

/// The field manager chaos writes with.
pub const MANAGER: &str = "resil-chaos";

/// Errors talking to the cluster.
#[derive(Debug, thiserror::Error)]
pub enum ExecuteError {
    #[error("{what}")]
    Api {
        what: String,
        #[source]
        source: kube::Error,
    },
    #[error("deployment/{0} not found: is the demo deployed (`resil deploy`)?")]
    NoDeployment(String),
}

type Result<T> = std::result::Result<T, ExecuteError>;

fn api_err(what: impl Into<String>) -> impl FnOnce(kube::Error) -> ExecuteError {
    let what = what.into();
    move |source| ExecuteError::Api { what, source }
}

fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

fn patch_params() -> PatchParams {
    PatchParams {
        field_manager: Some(MANAGER.to_string()),
        ..PatchParams::default()
    }
}

/// The cluster and namespace chaos acts on.
#[derive(Clone)]
pub struct Scope {
    pub client: Client,
    pub namespace: String,
}

impl Scope {
    fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    fn deployments(&self) -> Api<Deployment> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    fn services(&self) -> Api<Service> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    /// The pods matching `selector`, as selection candidates.
    pub async fn candidates(&self, selector: &str) -> Result<Vec<Candidate>> {
        let pods = self
            .pods()
            .list(&ListParams::default().labels(selector))
            .await
            .map_err(api_err(format!("listing pods matching {selector}")))?;
        Ok(pods
            .items
            .into_iter()
            .map(|pod| Candidate {
                name: pod.name_any(),
                created: pod
                    .metadata
                    .creation_timestamp
                    .as_ref()
                    .and_then(|t| chrono::DateTime::from_timestamp_millis(t.0.as_millisecond())),
                terminating: pod.metadata.deletion_timestamp.is_some(),
                labels: pod.metadata.labels.unwrap_or_default(),
            })
            .collect())
    }

    /// Deletes `pod` (grace 0 with `force`); a pod already gone counts as killed.
    pub async fn kill(&self, pod: &str, force: bool) -> Result<()> {
        let params = if force {
            DeleteParams::default().grace_period(0)
        } else {
            DeleteParams::default()
        };
        match self.pods().delete(pod, &params).await {
            Ok(_) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(api_err(format!("deleting pod {pod}"))(e)),
        }
    }

    /// The Deployment's `spec.replicas`.
    pub async fn replicas(&self, deployment: &str) -> Result<i32> {
        match self.deployments().get(deployment).await {
            Ok(d) => Ok(d.spec.replicas.unwrap_or(1)),
            Err(e) if is_not_found(&e) => Err(ExecuteError::NoDeployment(deployment.into())),
            Err(e) => Err(api_err(format!("reading deployment/{deployment}"))(e)),
        }
    }

    /// Sets the Deployment's `spec.replicas`.
    pub async fn scale(&self, deployment: &str, replicas: i32) -> Result<()> {
        let patch = json!({"spec": {"replicas": replicas}});
        match self
            .deployments()
            .patch(deployment, &patch_params(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if is_not_found(&e) => Err(ExecuteError::NoDeployment(deployment.into())),
            Err(e) => Err(api_err(format!(
                "scaling deployment/{deployment} to {replicas}"
            ))(e)),
        }
    }

    /// The API server's proxy path to a pod's admin endpoint.
    async fn admin_path(&self, pod: &str) -> Result<Option<String>> {
        let pod_obj = match self.pods().get(pod).await {
            Ok(p) => p,
            Err(e) if is_not_found(&e) => return Ok(None),
            Err(e) => return Err(api_err(format!("reading pod {pod}"))(e)),
        };
        // The demo app listens on its first declared container port (8080 in manifests/).
        let port = pod_obj
            .spec
            .as_ref()
            .and_then(|s| s.containers.iter().find_map(|c| c.ports.as_ref()?.first()))
            .map(|p| p.container_port)
            .unwrap_or(8080);
        Ok(Some(format!(
            "/api/v1/namespaces/{}/pods/{pod}:{port}/proxy/admin/faults",
            self.namespace
        )))
    }

    /// Sets the demo app's fault switches on `pod`.
    pub async fn set_faults(&self, pod: &str, faults: &Faults) -> Result<()> {
        let Some(path) = self.admin_path(pod).await? else {
            return Ok(());
        };
        let body = serde_json::to_vec(faults).unwrap_or_default();
        self.admin_call(http::Method::PUT, &path, body, pod).await
    }

    /// Resets the demo app's fault switches on `pod`; a pod that is gone has none.
    pub async fn reset_faults(&self, pod: &str) -> Result<()> {
        let Some(path) = self.admin_path(pod).await? else {
            return Ok(());
        };
        self.admin_call(http::Method::DELETE, &path, Vec::new(), pod)
            .await
    }

    async fn admin_call(
        &self,
        method: http::Method,
        path: &str,
        body: Vec<u8>,
        pod: &str,
    ) -> Result<()> {
        let request = http::Request::builder()
            .method(method)
            .uri(path)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(body)
            .map_err(|e| ExecuteError::Api {
                what: format!("building the admin request for pod {pod}"),
                source: kube::Error::HttpError(e),
            })?;
        // The pod exists (checked just before), so a 404 here means the API server does
        // not proxy to pods: an error, never a silent "done".
        self.client
            .request_text(request)
            .await
            .map(|_| ())
            .map_err(api_err(format!(
                "setting fault switches on pod {pod} through the API server's pod proxy \
             (pods/NAME:PORT/proxy); the lab does not serve that path yet"
            )))
    }

    /// The Service's current proxy-fault annotation.
    pub async fn proxy_fault(&self, service: &str) -> Result<Option<String>> {
        let svc = self
            .services()
            .get(service)
            .await
            .map_err(api_err(format!("reading service/{service}")))?;
        Ok(svc.annotations().get(PROXY_FAULT_ANNOTATION).cloned())
    }

    /// Sets (or with `None` removes) the Service's proxy-fault annotation.
    pub async fn set_proxy_fault(&self, service: &str, value: Option<&str>) -> Result<()> {
        let patch = json!({"metadata": {"annotations": {PROXY_FAULT_ANNOTATION: value}}});
        match self
            .services()
            .patch(service, &patch_params(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if is_not_found(&e) && value.is_none() => Ok(()),
            Err(e) => Err(api_err(format!("annotating service/{service}"))(e)),
        }
    }

    /// Sets an HPA's spec.minReplicas (merge patch).
    pub async fn set_hpa_min(&self, hpa: &str, min: i32) -> Result<()> {
        let api: Api<HorizontalPodAutoscaler> =
            Api::namespaced(self.client.clone(), &self.namespace);
        let patch = json!({"spec": {"minReplicas": min}});
        api.patch(hpa, &patch_params(), &Patch::Merge(&patch))
            .await
            .map_err(api_err(format!(
                "setting minReplicas of horizontalpodautoscaler/{hpa} to {min}"
            )))?;
        Ok(())
    }

    /// Undoes one journal entry. Idempotent: undoing twice leaves the same state, and a
    /// target that no longer exists has nothing left to undo.
    pub async fn revert(&self, entry: &Entry) -> Result<()> {
        match &entry.undo {
            Undo::Nothing => Ok(()),
            Undo::Replicas {
                deployment,
                replicas,
            } => match self.scale(deployment, *replicas).await {
                Err(ExecuteError::NoDeployment(_)) => Ok(()),
                other => other,
            },
            Undo::PodFaults { pods, .. } => {
                for pod in pods {
                    self.reset_faults(pod).await?;
                }
                Ok(())
            }
            Undo::ProxyFault { service, previous } => {
                self.set_proxy_fault(service, previous.as_deref()).await
            }
            Undo::HpaMinReplicas { hpa, min } => match self.set_hpa_min(hpa, *min).await {
                Err(ExecuteError::Api { source, .. }) if is_not_found(&source) => Ok(()),
                other => other,
            },
        }
    }
}
