//! The Deployment controller's decision, as pure code: given a Deployment, the
//! ReplicaSets of its namespace, how many pods each still has and the time, which
//! ReplicaSets to adopt, release, create, resize and delete, the Deployment's annotations
//! and the status to write. The ReplicaSet controller (`replicaset.rs`) makes the pods.
//!
//! Mirrors kubernetes `pkg/controller/deployment`: `deployment_controller.go`
//! (`syncDeployment`, claiming ReplicaSets), `sync.go` (revisions, the new ReplicaSet,
//! scaling events and proportional scaling, history clean-up, status), `rolling.go`,
//! `recreate.go`, `progress.go` and `util/deployment_util.go`. Rollback is kubectl's
//! (`rollout undo` copies the template of an older ReplicaSet into the Deployment); the
//! controller then finds that ReplicaSet as the new one and gives it the next revision,
//! recording the old one in `deployment.kubernetes.io/revision-history`.
//!
//! Split: this file holds the entry point and the shared state; `sync.rs` the new
//! ReplicaSet, revisions, scaling and clean-up; `rolling.rs` the RollingUpdate and
//! Recreate maths; `progress.rs` the status and its conditions. The loop that does the
//! store I/O is `deployment_loop.rs`.

mod progress;
mod rolling;
mod sync;

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentCondition, DeploymentStatus, ReplicaSet};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::jiff::Timestamp;

use super::pods::{SAFE_ALPHABET, controller_of, selects};

#[cfg(test)]
use rolling::{fenceposts, proportional_sizes};

/// Label naming the template a ReplicaSet and its pods were made from.
pub const TEMPLATE_HASH_LABEL: &str = "pod-template-hash";
/// The revision of a Deployment and of its ReplicaSets (`kubectl rollout history`).
pub const REVISION_ANNOTATION: &str = "deployment.kubernetes.io/revision";
/// Earlier revisions a ReplicaSet had before a rollback made it new again.
pub const REVISION_HISTORY_ANNOTATION: &str = "deployment.kubernetes.io/revision-history";
/// The Deployment's replicas when the ReplicaSet was last sized.
pub const DESIRED_REPLICAS_ANNOTATION: &str = "deployment.kubernetes.io/desired-replicas";
/// The Deployment's replicas plus maxSurge when the ReplicaSet was last sized.
pub const MAX_REPLICAS_ANNOTATION: &str = "deployment.kubernetes.io/max-replicas";

/// What one sync of one Deployment decided.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DeploymentPlan {
    /// Names of orphan ReplicaSets to adopt.
    pub adopt: Vec<String>,
    /// Names of owned ReplicaSets whose labels no longer match (drop the ownerReference).
    pub release: Vec<String>,
    /// The new ReplicaSet to create.
    pub create: Option<ReplicaSet>,
    /// Stored ReplicaSets whose `spec.replicas` or annotations changed (write both).
    pub update: Vec<ReplicaSet>,
    /// Names of old ReplicaSets to delete (`revisionHistoryLimit`).
    pub delete: Vec<String>,
    /// The Deployment's annotations when they change (its revision).
    pub annotations: Option<BTreeMap<String, String>>,
    /// The status to write (compare with the stored one before writing).
    pub status: DeploymentStatus,
    /// `ScalingReplicaSet` event messages.
    pub events: Vec<String>,
    /// Sync again after this long even without a change (the progress deadline).
    pub requeue_after: Option<Duration>,
}

/// The state one sync works on: working copies of the owned ReplicaSets (the new one
/// included once created) that the steps resize, and what they decided so far.
pub(crate) struct Sync<'a> {
    pub d: &'a Deployment,
    pub now: Timestamp,
    /// Owned ReplicaSets, as the sync leaves them.
    pub rses: Vec<ReplicaSet>,
    /// Index of the new ReplicaSet in `rses`.
    pub new: Option<usize>,
    /// Whether `rses[new]` is created by this sync (not stored yet).
    pub created: bool,
    pub conditions: Vec<DeploymentCondition>,
    pub annotations: BTreeMap<String, String>,
    pub collision_count: Option<i32>,
    /// Names of every ReplicaSet of the namespace (a new name must be free).
    pub others: Vec<String>,
    pub delete: Vec<String>,
    pub events: Vec<String>,
}

/// One sync (upstream `syncDeployment`). `rses` may hold any ReplicaSets of the
/// namespace; `pods_of` counts the pods (not Failed or Succeeded, terminating included)
/// each ReplicaSet uid still controls, for Recreate.
pub fn reconcile(
    d: &Deployment,
    rses: &[ReplicaSet],
    pods_of: &BTreeMap<String, usize>,
    now: Timestamp,
) -> DeploymentPlan {
    let (owned, adopt, release) = claim(d, rses);
    let status = d.status.clone().unwrap_or_default();
    let mut s = Sync {
        d,
        now,
        new: None,
        created: false,
        conditions: status.conditions.clone().unwrap_or_default(),
        annotations: d.metadata.annotations.clone().unwrap_or_default(),
        collision_count: status.collision_count,
        others: rses
            .iter()
            .filter(|r| r.metadata.namespace == d.metadata.namespace)
            .map(name)
            .collect(),
        delete: Vec::new(),
        events: Vec::new(),
        rses: owned.clone(),
    };
    s.new = s.find_new();
    let mut progress = false;
    if d.metadata.deletion_timestamp.is_none() {
        progress::check_paused(&mut s);
        let paused = d.spec.paused == Some(true);
        if paused || s.is_scaling_event() {
            s.sync_revision(false);
            s.scale();
            if paused {
                s.cleanup();
            }
        } else if rolling::is_rolling(d) {
            progress = true;
            rolling::rollout_rolling(&mut s);
        } else {
            progress = true;
            rolling::rollout_recreate(&mut s, pods_of);
        }
    }
    let status = if progress {
        progress::rollout_status(&mut s)
    } else {
        progress::calculate_status(&s)
    };
    plan(s, &owned, adopt, release, status)
}

/// Gathers what changed against the stored ReplicaSets into a plan.
fn plan(
    s: Sync<'_>,
    owned: &[ReplicaSet],
    adopt: Vec<String>,
    release: Vec<String>,
    status: DeploymentStatus,
) -> DeploymentPlan {
    let requeue_after = progress::requeue_after(&s, &status);
    let create = s.new.filter(|_| s.created).map(|i| s.rses[i].clone());
    let update = s
        .rses
        .iter()
        .filter(|rs| {
            owned.iter().any(|o| {
                o.metadata.name == rs.metadata.name
                    && (o.spec.replicas != rs.spec.replicas
                        || o.metadata.annotations != rs.metadata.annotations)
            })
        })
        .cloned()
        .collect();
    let stored = s.d.metadata.annotations.clone().unwrap_or_default();
    DeploymentPlan {
        adopt,
        release,
        create,
        update,
        delete: s.delete,
        annotations: (stored != s.annotations).then_some(s.annotations),
        status,
        events: s.events,
        requeue_after,
    }
}

/// Sorts the namespace's ReplicaSets into owned (adopted ones included), to adopt and to
/// release (upstream `ClaimReplicaSets`).
fn claim(d: &Deployment, rses: &[ReplicaSet]) -> (Vec<ReplicaSet>, Vec<String>, Vec<String>) {
    let uid = d.metadata.uid.as_deref().unwrap_or_default();
    let selector = d.spec.selector.match_labels.clone().unwrap_or_default();
    let deleting = d.metadata.deletion_timestamp.is_some();
    let (mut owned, mut adopt, mut release) = (Vec::new(), Vec::new(), Vec::new());
    for rs in rses
        .iter()
        .filter(|r| r.metadata.namespace == d.metadata.namespace)
    {
        let name = rs.metadata.name.clone().unwrap_or_default();
        let matches = selects(&selector, rs.metadata.labels.as_ref());
        match controller_of(&rs.metadata) {
            Some(u) if u == uid && matches => owned.push(rs.clone()),
            Some(u) if u == uid => release.push(name),
            None if matches && !deleting && rs.metadata.deletion_timestamp.is_none() => {
                let mut adopted = rs.clone();
                adopted.metadata.owner_references = Some(vec![super::replicaset::controller_ref(
                    "Deployment",
                    &d.metadata,
                )]);
                owned.push(adopted);
                adopt.push(name);
            }
            _ => {}
        }
    }
    (owned, adopt, release)
}

impl Sync<'_> {
    /// The owned ReplicaSet whose template is the Deployment's, hash label aside (upstream
    /// `FindNewReplicaSet`: the oldest such one).
    fn find_new(&self) -> Option<usize> {
        let want = normalized(&self.d.spec.template);
        let mut found: Vec<usize> = (0..self.rses.len())
            .filter(|&i| {
                let mut t = template_of(&self.rses[i]);
                if let Some(labels) = t.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
                    labels.remove(TEMPLATE_HASH_LABEL);
                }
                normalized(&t) == want
            })
            .collect();
        found.sort_by_key(|&i| created_at(&self.rses[i]));
        found.first().copied()
    }

    /// Indices of the old ReplicaSets (all but the new one).
    pub(crate) fn old(&self) -> Vec<usize> {
        (0..self.rses.len())
            .filter(|&i| Some(i) != self.new)
            .collect()
    }

    /// The Deployment's `spec.replicas`.
    pub(crate) fn replicas(&self) -> i32 {
        self.d.spec.replicas.unwrap_or(1).max(0)
    }
}

/// The template's stable hash with the collision count mixed in (upstream `ComputeHash`):
/// ten characters of the safe alphabet from a FNV-1a hash of the template's JSON.
pub fn template_hash(template: &PodTemplateSpec, collision_count: Option<i32>) -> String {
    let mut json = normalized(template).to_string();
    if let Some(c) = collision_count {
        json.push_str(&c.to_string());
    }
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in json.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    let mut out = String::with_capacity(10);
    for _ in 0..10 {
        out.push(SAFE_ALPHABET[(h % SAFE_ALPHABET.len() as u64) as usize] as char);
        h /= SAFE_ALPHABET.len() as u64;
    }
    out
}

/// The template as JSON without null, empty-object and empty-array fields: what a
/// client's round trip through typed structs adds (`resources: {}`, `creationTimestamp:
/// null`, as `kubectl rollout undo` sends) does not make it another template, as upstream's
/// semantic equality of decoded structs does not.
fn normalized(template: &PodTemplateSpec) -> serde_json::Value {
    fn strip(v: &mut serde_json::Value) -> bool {
        match v {
            serde_json::Value::Null => true,
            serde_json::Value::Object(m) => {
                m.retain(|_, x| !strip(x));
                m.is_empty()
            }
            serde_json::Value::Array(a) => {
                for x in a.iter_mut() {
                    strip(x);
                }
                a.is_empty()
            }
            _ => false,
        }
    }
    let mut v = serde_json::to_value(template).unwrap_or_default();
    strip(&mut v);
    v
}

/// A ReplicaSet's `spec.replicas` (defaulted to 1 as the API does).
pub(crate) fn rs_replicas(rs: &ReplicaSet) -> i32 {
    rs.spec.replicas.unwrap_or(1)
}

/// A ReplicaSet's `status.availableReplicas`.
pub(crate) fn rs_available(rs: &ReplicaSet) -> i32 {
    rs.status
        .as_ref()
        .and_then(|s| s.available_replicas)
        .unwrap_or(0)
}

/// A ReplicaSet's revision annotation (0 when absent or unreadable).
pub(crate) fn revision_of(rs: &ReplicaSet) -> i64 {
    annotation(rs, REVISION_ANNOTATION)
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

pub(crate) fn annotation<'a>(rs: &'a ReplicaSet, key: &str) -> Option<&'a str> {
    rs.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(key))
        .map(String::as_str)
}

pub(crate) fn template_of(rs: &ReplicaSet) -> PodTemplateSpec {
    rs.spec.template.clone().unwrap_or_default()
}

pub(crate) fn created_at(rs: &ReplicaSet) -> (Option<Timestamp>, Option<String>) {
    (
        rs.metadata.creation_timestamp.as_ref().map(|t| t.0),
        rs.metadata.name.clone(),
    )
}

pub(crate) fn name(rs: &ReplicaSet) -> String {
    rs.metadata.name.clone().unwrap_or_default()
}

#[cfg(test)]
mod tests;
