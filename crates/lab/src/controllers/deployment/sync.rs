//! The new ReplicaSet and revisions, scaling events with proportional scaling, and the
//! `revisionHistoryLimit` clean-up. Mirrors kubernetes
//! `pkg/controller/deployment/sync.go` (`getNewReplicaSet`, `scale`, `isScalingEvent`,
//! `cleanupDeployment`, `scaleReplicaSet`) and the annotation helpers of
//! `util/deployment_util.go` (`SetNewReplicaSetAnnotations`,
//! `SetReplicasAnnotations`, `copyDeploymentAnnotationsToReplicaSet`).

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};

use super::progress::{has_progress_deadline, set_condition};
use super::rolling::{max_surge, proportional_sizes};
use super::{
    DESIRED_REPLICAS_ANNOTATION, MAX_REPLICAS_ANNOTATION, REVISION_ANNOTATION,
    REVISION_HISTORY_ANNOTATION, Sync, TEMPLATE_HASH_LABEL, annotation, name, revision_of,
    rs_available, rs_replicas, template_hash,
};
use crate::controllers::replicaset::controller_ref;

/// Deployment annotations not copied onto its ReplicaSets (upstream `skipCopyAnnotation`).
const NOT_COPIED: &[&str] = &[
    "kubectl.kubernetes.io/last-applied-configuration",
    REVISION_ANNOTATION,
    REVISION_HISTORY_ANNOTATION,
    DESIRED_REPLICAS_ANNOTATION,
    MAX_REPLICAS_ANNOTATION,
    "deprecated.deployment.rollback.to",
];

/// Default `revisionHistoryLimit`.
const HISTORY_LIMIT: i32 = 10;

impl Sync<'_> {
    /// Gives the new ReplicaSet the next revision (creating it when `create` and it is
    /// missing) and the Deployment that revision (upstream
    /// `getAllReplicaSetsAndSyncRevision`). Returns false when no new ReplicaSet exists
    /// afterwards.
    pub(crate) fn sync_revision(&mut self, create: bool) -> bool {
        let max_old = self
            .old()
            .iter()
            .map(|&i| revision_of(&self.rses[i]))
            .max()
            .unwrap_or(0);
        let revision = max_old + 1;
        if let Some(i) = self.new {
            let mut rs = self.rses[i].clone();
            self.copy_annotations(&mut rs);
            let current = revision_of(&rs);
            if current < revision {
                let a = rs.metadata.annotations.get_or_insert_with(BTreeMap::new);
                if current > 0 {
                    let history = match a.get(REVISION_HISTORY_ANNOTATION) {
                        Some(h) if !h.is_empty() => format!("{h},{current}"),
                        _ => current.to_string(),
                    };
                    a.insert(REVISION_HISTORY_ANNOTATION.into(), history);
                }
                a.insert(REVISION_ANNOTATION.into(), revision.to_string());
            }
            self.rses[i] = rs;
            if has_progress_deadline(self.d) && self.progressing().is_none() {
                let msg = format!("Found new replica set \"{}\"", name(&self.rses[i]));
                set_condition(
                    &mut self.conditions,
                    "Progressing",
                    "True",
                    "FoundNewReplicaSet",
                    &msg,
                    self.now,
                );
            }
        } else if create {
            self.create_new(revision);
        }
        if let Some(i) = self.new {
            let r = revision_of(&self.rses[i]).to_string();
            if self.annotations.get(REVISION_ANNOTATION) != Some(&r) {
                self.annotations.insert(REVISION_ANNOTATION.into(), r);
            }
        }
        self.new.is_some()
    }

    /// The new ReplicaSet `<deployment>-<hash>`, sized by the strategy; on a name taken by
    /// a different template, bumps `collisionCount` instead (upstream `getNewReplicaSet`).
    fn create_new(&mut self, revision: i64) {
        let d = self.d;
        let hash = template_hash(&d.spec.template, self.collision_count);
        let rs_name = format!("{}-{hash}", d.metadata.name.as_deref().unwrap_or_default());
        if self.taken(&rs_name) {
            self.collision_count = Some(self.collision_count.unwrap_or(0) + 1);
            return;
        }
        let mut template = d.spec.template.clone();
        let meta = template.metadata.get_or_insert_with(ObjectMeta::default);
        meta.labels
            .get_or_insert_with(BTreeMap::new)
            .insert(TEMPLATE_HASH_LABEL.into(), hash.clone());
        let mut selector = d.spec.selector.match_labels.clone().unwrap_or_default();
        selector.insert(TEMPLATE_HASH_LABEL.into(), hash);
        let mut rs = ReplicaSet {
            metadata: ObjectMeta {
                name: Some(rs_name.clone()),
                namespace: d.metadata.namespace.clone(),
                labels: meta.labels.clone(),
                owner_references: Some(vec![controller_ref("Deployment", &d.metadata)]),
                annotations: Some(BTreeMap::from([(
                    REVISION_ANNOTATION.into(),
                    revision.to_string(),
                )])),
                ..ObjectMeta::default()
            },
            spec: ReplicaSetSpec {
                replicas: Some(0),
                min_ready_seconds: d.spec.min_ready_seconds,
                selector: LabelSelector {
                    match_labels: Some(selector),
                    match_expressions: None,
                },
                template: Some(template),
            },
            status: None,
        };
        self.copy_annotations(&mut rs);
        self.rses.push(rs);
        let i = self.rses.len() - 1;
        self.new = Some(i);
        self.created = true;
        let size = super::rolling::new_rs_new_replicas(self);
        self.set_size(i, size);
        if has_progress_deadline(d) {
            let msg = format!("Created new replica set \"{rs_name}\"");
            set_condition(
                &mut self.conditions,
                "Progressing",
                "True",
                "NewReplicaSetCreated",
                &msg,
                self.now,
            );
        }
        if size > 0 {
            self.events
                .push(format!("Scaled up replica set {rs_name} from 0 to {size}"));
        }
    }

    /// Whether another stored ReplicaSet of the namespace already has this name.
    fn taken(&self, rs_name: &str) -> bool {
        self.others.iter().any(|n| n == rs_name)
    }

    /// Copies the Deployment's annotations onto `rs`, but the controller's own.
    fn copy_annotations(&self, rs: &mut ReplicaSet) {
        let a = rs.metadata.annotations.get_or_insert_with(BTreeMap::new);
        for (k, v) in &self.annotations {
            if !NOT_COPIED.contains(&k.as_str()) {
                a.insert(k.clone(), v.clone());
            }
        }
    }

    /// Whether an active ReplicaSet was sized for another `spec.replicas` (upstream
    /// `isScalingEvent`).
    pub(crate) fn is_scaling_event(&self) -> bool {
        let want = self.replicas().to_string();
        self.rses
            .iter()
            .filter(|rs| rs_replicas(rs) > 0)
            .any(|rs| annotation(rs, DESIRED_REPLICAS_ANNOTATION).is_some_and(|d| d != want))
    }

    /// Resizes for a changed `spec.replicas` (upstream `scale`): one active ReplicaSet
    /// takes all; a saturated new one lets the old go; otherwise proportionally.
    pub(crate) fn scale(&mut self) {
        let replicas = self.replicas();
        let active: Vec<usize> = (0..self.rses.len())
            .filter(|&i| rs_replicas(&self.rses[i]) > 0)
            .collect();
        if active.len() <= 1 {
            let target =
                active.first().copied().or(self.new).or_else(|| {
                    (0..self.rses.len()).max_by_key(|&i| super::created_at(&self.rses[i]))
                });
            if let Some(i) = target {
                self.scale_to(i, replicas);
            }
            return;
        }
        if let Some(n) = self.new
            && rs_replicas(&self.rses[n]) == replicas
            && rs_available(&self.rses[n]) == replicas
        {
            for i in self.old() {
                self.scale_to(i, 0);
            }
            return;
        }
        if !super::rolling::is_rolling(self.d) {
            return;
        }
        let sizes = proportional_sizes(self.d, &self.rses);
        for (i, size) in sizes.into_iter().enumerate() {
            self.scale_to(i, size);
        }
    }

    /// Sizes ReplicaSet `i` with its replicas annotations, recording the event when the
    /// size changes (upstream `scaleReplicaSetAndRecordEvent`).
    pub(crate) fn scale_to(&mut self, i: usize, size: i32) {
        let from = rs_replicas(&self.rses[i]);
        self.set_size(i, size);
        if from != size {
            let way = if size > from { "up" } else { "down" };
            let rs_name = name(&self.rses[i]);
            self.events.push(format!(
                "Scaled {way} replica set {rs_name} from {from} to {size}"
            ));
        }
    }

    fn set_size(&mut self, i: usize, size: i32) {
        let desired = self.replicas();
        let max = desired + max_surge(self.d, desired);
        let rs = &mut self.rses[i];
        rs.spec.replicas = Some(size);
        let a = rs.metadata.annotations.get_or_insert_with(BTreeMap::new);
        a.insert(DESIRED_REPLICAS_ANNOTATION.into(), desired.to_string());
        a.insert(MAX_REPLICAS_ANNOTATION.into(), max.to_string());
    }

    /// Deletes the oldest old ReplicaSets beyond `revisionHistoryLimit` that have no pods
    /// left (upstream `cleanupDeployment`).
    pub(crate) fn cleanup(&mut self) {
        let limit = self
            .d
            .spec
            .revision_history_limit
            .unwrap_or(HISTORY_LIMIT)
            .max(0) as usize;
        let mut cleanable: Vec<usize> = self
            .old()
            .into_iter()
            .filter(|&i| self.rses[i].metadata.deletion_timestamp.is_none())
            .collect();
        if cleanable.len() <= limit {
            return;
        }
        let excess = cleanable.len() - limit;
        cleanable.sort_by_key(|&i| (revision_of(&self.rses[i]), super::created_at(&self.rses[i])));
        for &i in cleanable.iter().take(excess) {
            let rs = &self.rses[i];
            let status = rs.status.clone().unwrap_or_default();
            let observed = status.observed_generation.unwrap_or(0);
            if status.replicas != 0
                || rs_replicas(rs) != 0
                || rs.metadata.generation.unwrap_or(0) > observed
            {
                continue;
            }
            self.delete.push(name(rs));
        }
    }
}
