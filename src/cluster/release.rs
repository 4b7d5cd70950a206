//! The API calls of `resil rollout`: reading a Deployment and the ReplicaSets it owns,
//! writing a new pod template (a rolling update, or `kubectl rollout undo`'s copy of an
//! older ReplicaSet's template), and the canary Deployment beside it (applied, scaled,
//! deleted). The decisions are `src/rollout/decide.rs`'s; this file only talks to the API.

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::Client;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use serde_json::json;

use super::{ClusterError, FIELD_MANAGER, Result};

/// kubectl's annotation for `rollout history`'s CHANGE-CAUSE column.
pub const CHANGE_CAUSE_ANNOTATION: &str = "kubernetes.io/change-cause";
/// The label that tells the canary's pods from the stable ones (same Service selector).
pub const TRACK_LABEL: &str = "track";

/// The Deployments and ReplicaSets of one namespace.
#[derive(Clone)]
pub struct Releases {
    pub deployments: Api<Deployment>,
    pub replica_sets: Api<ReplicaSet>,
    pub pods: Api<Pod>,
}

impl Releases {
    /// The APIs of `namespace`.
    pub fn new(client: Client, namespace: &str) -> Releases {
        Releases {
            deployments: Api::namespaced(client.clone(), namespace),
            replica_sets: Api::namespaced(client.clone(), namespace),
            pods: Api::namespaced(client, namespace),
        }
    }

    /// The Deployment `name`; `None` when it does not exist.
    pub async fn deployment(&self, name: &str) -> Result<Option<Deployment>> {
        self.deployments
            .get_opt(name)
            .await
            .map_err(|e| ClusterError::api(format!("reading deployment {name}"), e))
    }

    /// The ReplicaSets matching `selector` (e.g. `app=web,version=blue`).
    pub async fn replica_sets(&self, selector: &str) -> Result<Vec<ReplicaSet>> {
        let list = self
            .replica_sets
            .list(&ListParams::default().labels(selector))
            .await
            .map_err(|e| ClusterError::api("listing replicasets", e))?;
        Ok(list.items)
    }

    /// The ReplicaSets `deployment` controls (by owner reference).
    pub async fn owned_by(&self, deployment: &Deployment) -> Result<Vec<ReplicaSet>> {
        let uid = deployment.metadata.uid.clone().unwrap_or_default();
        let all = self
            .replica_sets
            .list(&ListParams::default())
            .await
            .map_err(|e| ClusterError::api("listing replicasets", e))?;
        Ok(all
            .items
            .into_iter()
            .filter(|rs| {
                rs.metadata
                    .owner_references
                    .iter()
                    .flatten()
                    .any(|o| o.controller == Some(true) && o.uid == uid)
            })
            .collect())
    }

    /// Writes `template` into the Deployment (with the rolling update's maxSurge and
    /// maxUnavailable when given, and the change cause); returns the Deployment as stored.
    pub async fn set_template(
        &self,
        name: &str,
        template: &PodTemplateSpec,
        surge: Option<&IntOrString>,
        unavailable: Option<&IntOrString>,
        cause: &str,
    ) -> Result<Deployment> {
        let mut spec = json!({ "template": template });
        if surge.is_some() || unavailable.is_some() {
            let mut rolling = serde_json::Map::new();
            if let Some(s) = surge {
                rolling.insert("maxSurge".into(), json!(s));
            }
            if let Some(u) = unavailable {
                rolling.insert("maxUnavailable".into(), json!(u));
            }
            spec["strategy"] = json!({ "type": "RollingUpdate", "rollingUpdate": rolling });
        }
        let patch = json!({
            "metadata": { "annotations": { CHANGE_CAUSE_ANNOTATION: cause } },
            "spec": spec,
        });
        self.deployments
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(|e| {
                ClusterError::api(format!("updating the template of deployment {name}"), e)
            })
    }

    /// Creates or updates `deployment` (server-side apply, resil's field manager).
    pub async fn apply(&self, deployment: &Deployment) -> Result<Deployment> {
        let name = deployment.metadata.name.clone().unwrap_or_default();
        self.deployments
            .patch(
                &name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(deployment),
            )
            .await
            .map_err(|e| ClusterError::api(format!("applying deployment {name}"), e))
    }

    /// Deletes the Deployment `name` (its ReplicaSets and pods follow); absent is fine.
    pub async fn delete(&self, name: &str) -> Result<()> {
        match self
            .deployments
            .delete(name, &DeleteParams::foreground())
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
            Err(e) => Err(ClusterError::api(format!("deleting deployment {name}"), e)),
        }
    }

    /// How many pods match `selector`.
    pub async fn count_pods(&self, selector: &str) -> Result<usize> {
        let list = self
            .pods
            .list(&ListParams::default().labels(selector))
            .await
            .map_err(|e| ClusterError::api("listing pods", e))?;
        Ok(list.items.len())
    }
}
