//! The strategies' maths: RollingUpdate (grow the new ReplicaSet within maxSurge, shrink
//! the old ones while maxUnavailable allows), Recreate (all old to zero, wait for their
//! pods to go, then the new one), the fenceposts and proportional scaling. Mirrors
//! kubernetes `pkg/controller/deployment/rolling.go`, `recreate.go`, `sync.go`
//! (`getProportion`, the sort orders of `scale`) and `util/deployment_util.go`
//! (`ResolveFenceposts`, `NewRSNewReplicas`, `getReplicaSetFraction`).

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, ReplicaSet};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{MAX_REPLICAS_ANNOTATION, Sync, annotation, created_at, rs_available, rs_replicas};

/// Whether the strategy is RollingUpdate (the default).
pub(crate) fn is_rolling(d: &Deployment) -> bool {
    d.spec.strategy.as_ref().and_then(|s| s.type_.as_deref()) != Some("Recreate")
}

/// maxSurge (percent rounded up) and maxUnavailable (percent rounded down) for
/// `replicas`; both zero makes maxUnavailable 1 (upstream `ResolveFenceposts`).
pub fn fenceposts(spec: &DeploymentSpec, replicas: i32) -> (i32, i32) {
    let ru = spec
        .strategy
        .as_ref()
        .and_then(|s| s.rolling_update.as_ref());
    let quarter = IntOrString::String("25%".to_string());
    let surge = ru.and_then(|r| r.max_surge.as_ref()).unwrap_or(&quarter);
    let unavailable = ru
        .and_then(|r| r.max_unavailable.as_ref())
        .unwrap_or(&quarter);
    let surge = scaled(surge, replicas, true);
    let mut unavailable = scaled(unavailable, replicas, false);
    if surge == 0 && unavailable == 0 {
        unavailable = 1;
    }
    (surge, unavailable)
}

fn scaled(v: &IntOrString, total: i32, round_up: bool) -> i32 {
    match v {
        IntOrString::Int(n) => *n,
        IntOrString::String(s) => {
            let pct: i64 = s.trim_end_matches('%').parse().unwrap_or(25);
            let x = pct * i64::from(total);
            (if round_up { (x + 99) / 100 } else { x / 100 }) as i32
        }
    }
}

/// maxSurge for `replicas` (0 under Recreate; upstream `MaxSurge`).
pub(crate) fn max_surge(d: &Deployment, replicas: i32) -> i32 {
    if !is_rolling(d) {
        return 0;
    }
    fenceposts(&d.spec, replicas).0
}

/// maxUnavailable, at most `replicas` (0 under Recreate; upstream `MaxUnavailable`).
pub(crate) fn max_unavailable(d: &Deployment, replicas: i32) -> i32 {
    if !is_rolling(d) || replicas == 0 {
        return 0;
    }
    fenceposts(&d.spec, replicas).1.min(replicas)
}

/// The size the new ReplicaSet may grow to now (upstream `NewRSNewReplicas`).
pub(crate) fn new_rs_new_replicas(s: &Sync<'_>) -> i32 {
    let replicas = s.replicas();
    let Some(n) = s.new else { return 0 };
    let new_size = rs_replicas(&s.rses[n]);
    if !is_rolling(s.d) {
        return replicas;
    }
    let current: i32 = s.rses.iter().map(rs_replicas).sum();
    let max_total = replicas + max_surge(s.d, replicas);
    if current >= max_total {
        return new_size;
    }
    new_size + (max_total - current).min(replicas - new_size).max(0)
}

/// One RollingUpdate step (upstream `rolloutRolling`): scale the new ReplicaSet up, else
/// the old ones down; a finished rollout cleans up history.
pub(crate) fn rollout_rolling(s: &mut Sync<'_>) {
    if !s.sync_revision(true) {
        return;
    }
    let Some(n) = s.new else { return };
    let replicas = s.replicas();
    let size = rs_replicas(&s.rses[n]);
    let want = if size > replicas {
        replicas
    } else {
        new_rs_new_replicas(s)
    };
    if want != size && !s.created {
        s.scale_to(n, want);
        return;
    }
    if reconcile_old(s) {
        return;
    }
    if super::progress::complete(s) {
        s.cleanup();
    }
}

/// Scales old ReplicaSets down as far as maxUnavailable allows; true when one changed
/// (upstream `reconcileOldReplicaSets`).
fn reconcile_old(s: &mut Sync<'_>) -> bool {
    let old = oldest_first(s);
    let old_count: i32 = old.iter().map(|&i| rs_replicas(&s.rses[i])).sum();
    if old_count == 0 {
        return false;
    }
    let all: i32 = s.rses.iter().map(rs_replicas).sum();
    let replicas = s.replicas();
    let min_available = replicas - max_unavailable(s.d, replicas);
    let new_unavailable = s
        .new
        .map_or(0, |n| rs_replicas(&s.rses[n]) - rs_available(&s.rses[n]));
    let max_scaled_down = all - min_available - new_unavailable;
    if max_scaled_down <= 0 {
        return false;
    }
    // cleanupUnhealthyReplicas: first the old pods that are not available anyway.
    let mut cleaned = 0;
    for &i in &old {
        let (size, available) = (rs_replicas(&s.rses[i]), rs_available(&s.rses[i]));
        if cleaned >= max_scaled_down || size == 0 || size == available {
            continue;
        }
        let down = (max_scaled_down - cleaned).min(size - available);
        s.scale_to(i, size - down);
        cleaned += down;
    }
    // scaleDownOldReplicaSetsForRollingUpdate: then available ones above minAvailable.
    let available: i32 = s.rses.iter().map(rs_available).sum();
    let budget = (available - min_available).max(0);
    let mut scaled = 0;
    for &i in &old {
        let size = rs_replicas(&s.rses[i]);
        if scaled >= budget || size == 0 {
            continue;
        }
        let down = size.min(budget - scaled);
        s.scale_to(i, size - down);
        scaled += down;
    }
    cleaned + scaled > 0
}

/// Old ReplicaSets, oldest first (upstream `ReplicaSetsByCreationTimestamp`).
fn oldest_first(s: &Sync<'_>) -> Vec<usize> {
    let mut old = s.old();
    old.sort_by_key(|&i| created_at(&s.rses[i]));
    old
}

/// One Recreate step (upstream `rolloutRecreate`).
pub(crate) fn rollout_recreate(s: &mut Sync<'_>, pods_of: &BTreeMap<String, usize>) {
    s.sync_revision(false);
    let mut scaled = false;
    for i in s.old() {
        if rs_replicas(&s.rses[i]) != 0 {
            s.scale_to(i, 0);
            scaled = true;
        }
    }
    if scaled {
        return;
    }
    let running = s.old().into_iter().any(|i| {
        let rs = &s.rses[i];
        let uid = rs.metadata.uid.as_deref().unwrap_or_default();
        rs.status.as_ref().is_some_and(|st| st.replicas > 0)
            || pods_of.get(uid).is_some_and(|n| *n > 0)
    });
    if running {
        return;
    }
    if s.new.is_none() && !s.sync_revision(true) {
        return;
    }
    if let Some(n) = s.new
        && !s.created
    {
        let replicas = s.replicas();
        s.scale_to(n, replicas);
    }
    if super::progress::complete(s) {
        s.cleanup();
    }
}

/// The sizes proportional scaling gives each ReplicaSet when `spec.replicas` changes in
/// the middle of a rollout (upstream `scale`): the Deployment's replicas plus maxSurge,
/// less what all ReplicaSets hold, is shared in proportion to each one's size against
/// the `max-replicas` it was sized for, the remainder going to the largest (newest on a
/// tie when growing, oldest when shrinking). Indexed like `rses`.
pub fn proportional_sizes(d: &Deployment, rses: &[ReplicaSet]) -> Vec<i32> {
    let replicas = d.spec.replicas.unwrap_or(1).max(0);
    let allowed = replicas + max_surge(d, replicas);
    let current: i32 = rses.iter().map(rs_replicas).sum();
    let to_add = allowed - current;
    let mut order: Vec<usize> = (0..rses.len()).collect();
    order.sort_by(|&a, &b| {
        let size = rs_replicas(&rses[b]).cmp(&rs_replicas(&rses[a]));
        let age = created_at(&rses[a]).cmp(&created_at(&rses[b]));
        size.then(if to_add > 0 { age.reverse() } else { age })
    });
    let mut sizes: Vec<i32> = rses.iter().map(rs_replicas).collect();
    let mut added = 0;
    for &i in &order {
        let size = rs_replicas(&rses[i]);
        if size == 0 || to_add == 0 || added == to_add {
            continue;
        }
        let fraction = fraction(d, &rses[i], allowed);
        let left = to_add - added;
        let proportion = if to_add > 0 {
            fraction.min(left)
        } else {
            fraction.max(left)
        };
        sizes[i] = size + proportion;
        added += proportion;
    }
    if let Some(&first) = order.first()
        && added != to_add
    {
        sizes[first] = (sizes[first] + to_add - added).max(0);
    }
    sizes
}

/// How many replicas ReplicaSet `rs` gains (or loses) when the Deployment may hold
/// `allowed` pods (upstream `getReplicaSetFraction`).
fn fraction(d: &Deployment, rs: &ReplicaSet, allowed: i32) -> i32 {
    let size = rs_replicas(rs);
    if d.spec.replicas == Some(0) {
        return -size;
    }
    let annotated = annotation(rs, MAX_REPLICAS_ANNOTATION)
        .and_then(|a| a.parse::<i32>().ok())
        .unwrap_or_else(|| d.status.as_ref().and_then(|s| s.replicas).unwrap_or(0));
    if annotated == 0 {
        return 0;
    }
    let new_size = (f64::from(size) * f64::from(allowed) / f64::from(annotated)).round() as i32;
    new_size - size
}
