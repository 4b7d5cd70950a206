//! Carrying out chaos actions and their reverts through kube-rs.
//!
//! Every function here talks to the API server only: pods are deleted with the Pod API,
//! replicas changed with a merge patch on the Deployment, the demo app's fault switches
//! reached through the API server's pod proxy (`pods/NAME:PORT/proxy/admin/faults`, the
//! path `kubectl get --raw` uses), and the lab's proxy fault set as a Service annotation.
//! Called by the chaos command layer and the scenario runner; never prints.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::{Client, ResourceExt};
use serde_json::json;

use super::journal::{Entry, Undo};
use super::plan::{Candidate, Faults, PROXY_FAULT_ANNOTATION};

/// Longest wait for one request to a pod's admin endpoint.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Where a pod's admin endpoint is.
enum AdminTarget {
    /// The API server's proxy path to it.
    Path(String),
    /// The pod does not exist (any more).
    Gone,
    /// The pod exists without a running process (its phase).
    NotRunning(String),
}

/// What undoing a journal entry found besides the targets it restored.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Undone {
    /// Targets that no longer exist (`deployment/web-blue`, `pod/...`): nothing was left
    /// to undo there.
    pub gone: Vec<String>,
    /// Targets someone changed after the fault was set, left as they are: restoring the
    /// old value would undo that change (another fault's, or the user's). Each says what
    /// it holds now.
    pub changed: Vec<String>,
}

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
    /// The pod was deleted before its fault switches could be set.
    #[error("pod {0} disappeared before its fault switches were set")]
    PodGone(String),
    /// The API server has no pod proxy (it answered the proxy path with a bare 404).
    #[error(
        "the API server does not proxy to pods ({path} answered 404 without naming the \
         pod); degrade and cpu-burn reach the demo app's switches through that proxy — use \
         a Kubernetes API server or a lab from this resil version"
    )]
    NoPodProxy { path: String },
    /// The API server proxies to pods but could not reach this one.
    #[error("pod {pod} cannot be reached through the API server's pod proxy: {message}")]
    PodUnreachable { pod: String, message: String },
    /// A node fault cannot be done as asked (no such node or zone, no way to power it).
    #[error("{0}")]
    NoNode(String),
    /// The demo app itself refused the request.
    #[error("pod {pod} answered {code} to {method} /admin/faults: {message}")]
    PodRefused {
        pod: String,
        method: String,
        code: u16,
        message: String,
    },
}

type Result<T> = std::result::Result<T, ExecuteError>;

fn api_err(what: impl Into<String>) -> impl FnOnce(kube::Error) -> ExecuteError {
    let what = what.into();
    move |source| ExecuteError::Api { what, source }
}

pub(super) fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

pub(super) fn patch_params() -> PatchParams {
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

    /// Where a pod's admin endpoint is, if it has one to reach.
    async fn admin_target(&self, pod: &str) -> Result<AdminTarget> {
        let pod_obj = match self.pods().get(pod).await {
            Ok(p) => p,
            Err(e) if is_not_found(&e) => return Ok(AdminTarget::Gone),
            Err(e) => return Err(api_err(format!("reading pod {pod}"))(e)),
        };
        let phase = pod_obj
            .status
            .as_ref()
            .and_then(|s| s.phase.clone())
            .unwrap_or_else(|| "Pending".to_string());
        // Asked without checking, the pod proxy answers 503 for a pod with no process,
        // and kube-rs retries a 503 for minutes.
        if phase != "Running" {
            return Ok(AdminTarget::NotRunning(phase));
        }
        // The demo app listens on its first declared container port (8080 in manifests/).
        let port = pod_obj
            .spec
            .as_ref()
            .and_then(|s| s.containers.iter().find_map(|c| c.ports.as_ref()?.first()))
            .map(|p| p.container_port)
            .unwrap_or(8080);
        Ok(AdminTarget::Path(format!(
            "/api/v1/namespaces/{}/pods/{pod}:{port}/proxy/admin/faults",
            self.namespace
        )))
    }

    /// Whether `pod` exists and its phase is Running (a process to hold fault switches).
    async fn is_running(&self, pod: &str) -> Result<bool> {
        Ok(matches!(
            self.admin_target(pod).await?,
            AdminTarget::Path(_)
        ))
    }

    /// Sets the demo app's fault switches on `pod`; a pod that is gone or not running is
    /// an error.
    pub async fn set_faults(&self, pod: &str, faults: &Faults) -> Result<()> {
        let path = match self.admin_target(pod).await? {
            AdminTarget::Path(path) => path,
            AdminTarget::Gone => return Err(ExecuteError::PodGone(pod.to_string())),
            AdminTarget::NotRunning(phase) => {
                return Err(ExecuteError::PodUnreachable {
                    pod: pod.to_string(),
                    message: format!(
                        "it is not running (phase {phase}), so no process holds fault switches"
                    ),
                });
            }
        };
        // Serializing a struct of plain fields cannot fail.
        let body = serde_json::to_vec(faults).unwrap_or_default();
        self.admin_call(http::Method::PUT, &path, body, pod).await
    }

    /// Resets the demo app's fault switches on `pod`; a pod that is gone has none.
    pub async fn reset_faults(&self, pod: &str) -> Result<()> {
        self.reset_faults_if_there(pod).await.map(|_| ())
    }

    /// [`Scope::reset_faults`], answering whether the pod was still there.
    async fn reset_faults_if_there(&self, pod: &str) -> Result<bool> {
        let path = match self.admin_target(pod).await? {
            AdminTarget::Path(path) => path,
            AdminTarget::Gone => return Ok(false),
            // The switches lived in the process's memory: with no process, none are left
            // (a restarted process starts clean).
            AdminTarget::NotRunning(_) => return Ok(true),
        };
        match self
            .admin_call(http::Method::DELETE, &path, Vec::new(), pod)
            .await
        {
            Ok(()) => Ok(true),
            Err(ExecuteError::PodGone(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// One request to the demo app's admin API through the pod proxy. The answer is read
    /// raw: the app's own errors are not Status bodies, and a Status must be told apart
    /// from them to know who refused.
    async fn admin_call(
        &self,
        method: http::Method,
        path: &str,
        body: Vec<u8>,
        pod: &str,
    ) -> Result<()> {
        let verb = method.to_string();
        let request = http::Request::builder()
            .method(method)
            .uri(path)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(kube::client::Body::from(body))
            .map_err(|e| ExecuteError::Api {
                what: format!("building the admin request for pod {pod}"),
                source: kube::Error::HttpError(e),
            })?;
        let what = || format!("setting fault switches on pod {pod} through the pod proxy");
        // Bounded: while the pod's port refuses connections the API server answers 503,
        // which kube-rs's default policy retries with a backoff growing for minutes.
        let res = match tokio::time::timeout(ADMIN_TIMEOUT, self.client.send(request)).await {
            Ok(res) => res.map_err(api_err(what()))?,
            Err(_) => {
                return Err(ExecuteError::PodUnreachable {
                    pod: pod.to_string(),
                    message: format!(
                        "no answer within {} s (is its process restarting?)",
                        ADMIN_TIMEOUT.as_secs()
                    ),
                });
            }
        };
        let code = res.status().as_u16();
        if res.status().is_success() {
            return Ok(());
        }
        let bytes = res
            .into_body()
            .collect_bytes()
            .await
            .map_err(api_err(what()))?;
        Err(admin_failure(pod, &verb, path, code, &bytes))
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
        self.undo(entry).await.map(|_| ())
    }

    /// [`Scope::revert`], answering the targets that were gone or changed since (see
    /// [`Undone`]), which the caller may want to report. Compare-and-restore: a replica
    /// count or annotation goes back only while it still holds what this entry set.
    /// Puts `deployment` back to `replicas` if it still has the `injected` count (`None`:
    /// unconditionally); a Deployment gone or changed since is noted in `undone`.
    async fn undo_replicas(
        &self,
        deployment: &str,
        replicas: i32,
        injected: Option<i32>,
        undone: &mut Undone,
    ) -> Result<()> {
        let now = match self.replicas(deployment).await {
            Ok(now) => Some(now),
            Err(ExecuteError::NoDeployment(_)) => None,
            Err(e) => return Err(e),
        };
        match now {
            None => undone.gone.push(format!("deployment/{deployment}")),
            Some(now) if injected.is_some_and(|i| i != now) && now != replicas => {
                undone.changed.push(format!(
                    "deployment/{deployment} has {now} replicas now, not the {} this fault \
                     set: left as it is",
                    injected.unwrap_or_default()
                ));
            }
            Some(_) => match self.scale(deployment, replicas).await {
                Err(ExecuteError::NoDeployment(_)) => {
                    undone.gone.push(format!("deployment/{deployment}"));
                }
                other => other?,
            },
        }
        Ok(())
    }

    /// Each Deployment of the namespace with its replica count (those above zero).
    pub async fn scaled_deployments(&self) -> Result<BTreeMap<String, i32>> {
        let list = self
            .deployments()
            .list(&kube::api::ListParams::default())
            .await
            .map_err(|source| ExecuteError::Api {
                what: format!("listing deployments in {}", self.namespace),
                source,
            })?;
        Ok(list
            .items
            .iter()
            .filter_map(|d| {
                let replicas = d.spec.replicas.unwrap_or(1);
                let name = d.metadata.name.clone()?;
                (replicas > 0).then_some((name, replicas))
            })
            .collect())
    }

    pub async fn undo(&self, entry: &Entry) -> Result<Undone> {
        let mut undone = Undone::default();
        let gone = &mut undone.gone;
        match &entry.undo {
            Undo::Nothing => {}
            Undo::Replicas {
                deployment,
                replicas,
                injected,
            } => {
                self.undo_replicas(deployment, *replicas, *injected, &mut undone)
                    .await?
            }
            Undo::ControlPlane => self.set_api_outage(None).await?,
            Undo::Workloads { replicas } => {
                for (deployment, count) in replicas {
                    self.undo_replicas(deployment, *count, Some(0), &mut undone)
                        .await?;
                }
            }
            Undo::PodFaults { pods, faults } => {
                // Every pod gets its chance even when one fails; the first failure is
                // the answer.
                let mut first_err = None;
                for pod in pods {
                    match self.reset_faults_if_there(pod).await {
                        Ok(true) => {}
                        Ok(false) => gone.push(format!("pod/{pod}")),
                        // Unreachable after its deadline: the app has reverted by itself.
                        Err(ExecuteError::PodUnreachable { .. })
                            if faults.until.is_some_and(|u| u <= chrono::Utc::now()) => {}
                        // Unreachable because no process runs: the switches lived in the
                        // process's memory, so none are left (a restarted one starts clean).
                        Err(e @ ExecuteError::PodUnreachable { .. }) => {
                            if self.is_running(pod).await? {
                                first_err.get_or_insert(e);
                            }
                        }
                        Err(e) => {
                            first_err.get_or_insert(e);
                        }
                    }
                }
                if let Some(e) = first_err {
                    return Err(e);
                }
            }
            Undo::ProxyFault {
                service,
                previous,
                injected,
            } => {
                let live = self
                    .services()
                    .get_opt(service)
                    .await
                    .map_err(api_err(format!("reading service/{service}")))?;
                match live {
                    None => gone.push(format!("service/{service}")),
                    Some(svc) => {
                        let now = svc.annotations().get(PROXY_FAULT_ANNOTATION);
                        let ours = injected.is_none() || now == injected.as_ref();
                        if ours || now == previous.as_ref() {
                            self.set_proxy_fault(service, previous.as_deref()).await?;
                        } else {
                            undone.changed.push(format!(
                                "service/{service}'s proxy fault is {} now, not the `{}` this \
                                 fault set: left as it is",
                                now.map_or("unset".to_string(), |v| format!("`{v}`")),
                                injected.as_deref().unwrap_or_default()
                            ));
                        }
                    }
                }
            }
            Undo::HpaMinReplicas { hpa, min } => match self.set_hpa_min(hpa, *min).await {
                Err(ExecuteError::Api { source, .. }) if is_not_found(&source) => {
                    gone.push(format!("hpa/{hpa}"));
                }
                other => other?,
            },
            Undo::NodesStopped { nodes } => {
                for node in nodes {
                    match self.is_stopped(node).await? {
                        None => gone.push(format!("node/{node}")),
                        Some(false) => undone.changed.push(format!(
                            "node/{node} was already started again: left as it is"
                        )),
                        Some(true) => self.set_stopped(node, false).await?,
                    }
                }
            }
            Undo::NodesHook { hook, nodes } => {
                for node in nodes {
                    self.run_hook(hook, "start", node).await?;
                }
            }
            Undo::Cordon { node } => match self.is_cordoned(node).await? {
                None => gone.push(format!("node/{node}")),
                Some(false) => undone
                    .changed
                    .push(format!("node/{node} was already uncordoned: left as it is")),
                Some(true) => self.cordon(node, false).await?,
            },
        }
        Ok(undone)
    }
}

/// What a failed admin request means, from who answered: the API server (a Status body)
/// or the demo app (anything else).
fn admin_failure(pod: &str, method: &str, path: &str, code: u16, body: &[u8]) -> ExecuteError {
    let status: Option<kube::core::Status> = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .filter(|v| v["kind"] == "Status")
        .and_then(|v| serde_json::from_value(v).ok());
    let Some(status) = status else {
        let text = String::from_utf8_lossy(body);
        let message = serde_json::from_slice::<serde_json::Value>(body)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_string))
            .unwrap_or_else(|| text.trim().chars().take(300).collect());
        return ExecuteError::PodRefused {
            pod: pod.to_string(),
            method: method.to_string(),
            code,
            message,
        };
    };
    let names_the_pod = status
        .details
        .as_ref()
        .is_some_and(|d| d.name == pod && d.kind == "pods");
    match code {
        404 if names_the_pod => ExecuteError::PodGone(pod.to_string()),
        404 => ExecuteError::NoPodProxy {
            path: path.to_string(),
        },
        _ => ExecuteError::PodUnreachable {
            pod: pod.to_string(),
            message: format!("{} ({code} {})", status.message, status.reason),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PATH: &str = "/api/v1/namespaces/ns/pods/web-1:8080/proxy/admin/faults";

    #[test]
    fn a_bare_404_means_no_pod_proxy_and_a_named_one_a_pod_gone() {
        let bare = br#"{"kind":"Status","apiVersion":"v1","status":"Failure","code":404,
            "reason":"NotFound","message":"the server could not find the requested resource"}"#;
        let err = admin_failure("web-1", "PUT", PATH, 404, bare);
        assert!(matches!(err, ExecuteError::NoPodProxy { .. }), "{err}");
        assert!(err.to_string().contains("does not proxy to pods"));
        let named = br#"{"kind":"Status","apiVersion":"v1","status":"Failure","code":404,
            "reason":"NotFound","message":"pods \"web-1\" not found",
            "details":{"name":"web-1","kind":"pods"}}"#;
        assert!(matches!(
            admin_failure("web-1", "PUT", PATH, 404, named),
            ExecuteError::PodGone(_)
        ));
    }

    #[test]
    fn the_apps_own_answer_is_told_apart_from_the_api_servers() {
        let app = br#"{"error":"error_rate must be between 0 and 1"}"#;
        let err = admin_failure("web-1", "PUT", PATH, 400, app);
        assert!(matches!(err, ExecuteError::PodRefused { code: 400, .. }));
        assert!(err.to_string().contains("error_rate must be"), "{err}");
        let down = br#"{"kind":"Status","apiVersion":"v1","status":"Failure","code":503,
            "reason":"ServiceUnavailable","message":"error trying to reach service: refused"}"#;
        let err = admin_failure("web-1", "DELETE", PATH, 503, down);
        assert!(matches!(err, ExecuteError::PodUnreachable { .. }));
        assert!(err.to_string().contains("error trying to reach service"));
    }
}
