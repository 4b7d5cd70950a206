//! The demo's PodDisruptionBudgets in a deploy: applied when the manifests hold them;
//! when they do not (`resil deploy --no-pdb`), the budgets an earlier deploy made are
//! deleted, so the cluster holds what was asked for.

use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams};

use super::Applied;
use crate::cluster::{self, ApplyOutcome, MANAGED_BY_LABEL, MANAGED_BY_VALUE};
use crate::demo::manifests::{APP_LABEL, DemoManifests};

const RESOURCE: &str = "poddisruptionbudget.policy";

/// Applies the manifests' budgets, or deletes resil's demo budgets when there are none.
pub async fn apply_pdbs(
    client: kube::Client,
    ns: &str,
    manifests: &DemoManifests,
    record: &mut impl FnMut(Applied),
) -> anyhow::Result<()> {
    let api: Api<PodDisruptionBudget> = Api::namespaced(client, ns);
    for b in &manifests.pdbs {
        let outcome = cluster::apply(&api, "poddisruptionbudget", b).await?;
        record(Applied {
            resource: RESOURCE,
            name: b.name_any(),
            outcome: Some(outcome),
        });
    }
    if !manifests.pdbs.is_empty() {
        return Ok(());
    }
    let ours = ListParams::default().labels(&format!(
        "{MANAGED_BY_LABEL}={MANAGED_BY_VALUE},{}={}",
        APP_LABEL.0, APP_LABEL.1
    ));
    let live = match api.list(&ours).await {
        Ok(list) => list.items,
        // A cluster without policy/v1 has no budgets to remove.
        Err(kube::Error::Api(s)) if s.code == 404 => Vec::new(),
        Err(e) => return Err(anyhow::Error::new(e).context("listing poddisruptionbudgets")),
    };
    for b in live {
        let name = b.name_any();
        match api.delete(&name, &DeleteParams::default()).await {
            Ok(_) => record(Applied {
                resource: RESOURCE,
                name,
                outcome: Some(ApplyOutcome::Deleted),
            }),
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => {
                return Err(anyhow::Error::new(e).context(format!("deleting {RESOURCE}/{name}")));
            }
        }
    }
    Ok(())
}
