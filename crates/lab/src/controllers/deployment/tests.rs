use super::*;
use k8s_openapi::api::apps::v1::ReplicaSetStatus;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde_json::json;

fn t(s: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + s).unwrap()
}

fn deployment(replicas: i32, image: &str, strategy: serde_json::Value) -> Deployment {
    serde_json::from_value(json!({
        "metadata": {"name": "web", "namespace": "default", "uid": "d-1", "generation": 1},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "strategy": strategy,
            "progressDeadlineSeconds": 600,
            "revisionHistoryLimit": 1,
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": image}]}
            }
        }
    }))
    .unwrap()
}

fn rolling(surge: serde_json::Value, unavailable: serde_json::Value) -> serde_json::Value {
    json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable}})
}

/// The cluster between two syncs: the plan applied, then every ReplicaSet's pods up and
/// available at once (the ReplicaSet controller and kubelet, idealised).
struct Cluster {
    d: Deployment,
    rses: Vec<ReplicaSet>,
    clock: i64,
}

impl Cluster {
    fn sync(&mut self) -> DeploymentPlan {
        self.clock += 1;
        let plan = reconcile(&self.d, &self.rses, &BTreeMap::new(), t(self.clock));
        if let Some(mut rs) = plan.create.clone() {
            rs.metadata.uid = Some(format!("rs-{}", self.rses.len()));
            rs.metadata.creation_timestamp = Some(Time(t(self.clock)));
            self.rses.push(rs);
        }
        for u in &plan.update {
            let live = self
                .rses
                .iter_mut()
                .find(|r| r.metadata.name == u.metadata.name)
                .unwrap();
            live.spec = u.spec.clone();
            live.metadata.annotations = u.metadata.annotations.clone();
        }
        self.rses.retain(|r| !plan.delete.contains(&name(r)));
        self.d.status = Some(plan.status.clone());
        if let Some(a) = &plan.annotations {
            self.d.metadata.annotations = Some(a.clone());
        }
        plan
    }

    fn pods_come_up(&mut self) {
        for rs in &mut self.rses {
            let n = rs_replicas(rs);
            rs.status = Some(ReplicaSetStatus {
                replicas: n,
                ready_replicas: Some(n),
                available_replicas: Some(n),
                ..ReplicaSetStatus::default()
            });
        }
    }

    fn available(&self) -> i32 {
        self.rses.iter().map(rs_available).sum()
    }

    fn sizes(&self) -> Vec<i32> {
        self.rses.iter().map(rs_replicas).collect()
    }
}

#[test]
fn fenceposts_round_surge_up_and_unavailable_down() {
    let d = deployment(10, "a", rolling(json!("25%"), json!("25%")));
    assert_eq!(fenceposts(&d.spec, 10), (3, 2));
    let d = deployment(10, "a", rolling(json!("0%"), json!("0%")));
    assert_eq!(
        fenceposts(&d.spec, 10),
        (0, 1),
        "both zero: one may be unavailable"
    );
    let d = deployment(3, "a", rolling(json!(2), json!("50%")));
    assert_eq!(fenceposts(&d.spec, 3), (2, 1));
    let d = deployment(1, "a", json!(null));
    assert_eq!(
        fenceposts(&d.spec, 1),
        (1, 0),
        "the 25% defaults on one replica"
    );
}

#[test]
fn a_new_deployment_gets_a_hashed_replicaset_at_revision_one() {
    let mut c = Cluster {
        d: deployment(3, "a", json!(null)),
        rses: vec![],
        clock: 0,
    };
    let plan = c.sync();
    let rs = plan.create.expect("a new ReplicaSet");
    let hash = template_hash(&c.d.spec.template, None);
    assert_eq!(name(&rs), format!("web-{hash}"));
    assert_eq!(rs_replicas(&rs), 3);
    assert_eq!(revision_of(&rs), 1);
    let labels = rs.spec.selector.match_labels.clone().unwrap();
    assert_eq!(labels[TEMPLATE_HASH_LABEL], hash);
    assert_eq!(annotation(&rs, DESIRED_REPLICAS_ANNOTATION), Some("3"));
    assert_eq!(annotation(&rs, MAX_REPLICAS_ANNOTATION), Some("4"));
    assert_eq!(plan.annotations.unwrap()[REVISION_ANNOTATION], "1");
    let progressing = plan
        .status
        .conditions
        .unwrap()
        .into_iter()
        .find(|c| c.type_.as_deref() == Some("Progressing"))
        .unwrap();
    assert_eq!(progressing.reason.as_deref(), Some("NewReplicaSetCreated"));
    assert_eq!(
        plan.events,
        vec![format!("Scaled up replica set web-{hash} from 0 to 3")]
    );
}

#[test]
fn a_rolling_update_with_max_unavailable_zero_never_drops_below_desired() {
    let mut c = Cluster {
        d: deployment(10, "a", rolling(json!(1), json!(0))),
        rses: vec![],
        clock: 0,
    };
    c.sync();
    c.pods_come_up();
    c.sync();
    c.d.spec.template.spec.as_mut().unwrap().containers[0].image = Some("b".into());
    c.d.metadata.generation = Some(2);
    for _ in 0..60 {
        c.sync();
        assert!(
            c.available() >= 10,
            "available {} with sizes {:?}",
            c.available(),
            c.sizes()
        );
        assert!(
            c.sizes().iter().sum::<i32>() <= 11,
            "surge exceeded: {:?}",
            c.sizes()
        );
        c.pods_come_up();
    }
    assert_eq!(c.sizes().iter().copied().max(), Some(10));
    let new = c.rses.iter().find(|r| rs_replicas(r) == 10).unwrap();
    assert_eq!(revision_of(new), 2);
    assert_eq!(
        c.d.metadata.annotations.as_ref().unwrap()[REVISION_ANNOTATION],
        "2"
    );
    let status = c.d.status.clone().unwrap();
    assert_eq!(
        (status.updated_replicas, status.available_replicas),
        (Some(10), Some(10))
    );
    let reason = status
        .conditions
        .unwrap()
        .into_iter()
        .find(|c| c.type_.as_deref() == Some("Progressing"))
        .unwrap()
        .reason;
    assert_eq!(reason.as_deref(), Some("NewReplicaSetAvailable"));
}

#[test]
fn going_back_to_an_old_template_reuses_its_replicaset_with_the_next_revision() {
    let mut c = Cluster {
        d: deployment(2, "a", json!(null)),
        rses: vec![],
        clock: 0,
    };
    c.d.spec.revision_history_limit = Some(10);
    for image in ["b", "a"] {
        for _ in 0..10 {
            c.sync();
            c.pods_come_up();
        }
        c.d.spec.template.spec.as_mut().unwrap().containers[0].image = Some(image.into());
    }
    for _ in 0..10 {
        c.sync();
        c.pods_come_up();
    }
    assert_eq!(
        c.rses.len(),
        2,
        "the first ReplicaSet is new again: {:?}",
        c.sizes()
    );
    let first = &c.rses[0];
    assert_eq!((rs_replicas(first), revision_of(first)), (2, 3));
    assert_eq!(annotation(first, REVISION_HISTORY_ANNOTATION), Some("1"));
}

#[test]
fn revision_history_limit_deletes_the_oldest_empty_replicasets() {
    let mut c = Cluster {
        d: deployment(1, "a", json!(null)),
        rses: vec![],
        clock: 0,
    };
    for image in ["b", "c", "d"] {
        for _ in 0..6 {
            c.sync();
            c.pods_come_up();
        }
        c.d.spec.template.spec.as_mut().unwrap().containers[0].image = Some(image.into());
    }
    for _ in 0..6 {
        c.sync();
        c.pods_come_up();
    }
    let revisions: Vec<i64> = c.rses.iter().map(revision_of).collect();
    assert_eq!(revisions, vec![3, 4], "limit 1 keeps one old ReplicaSet");
}

#[test]
fn scaling_mid_rollout_is_proportional_to_max_replicas() {
    let d = deployment(20, "a", rolling(json!("25%"), json!("25%")));
    let rs = |name: &str, size: i32, at: i64| -> ReplicaSet {
        serde_json::from_value(json!({
            "metadata": {"name": name, "creationTimestamp": Time(t(at)),
                "annotations": {MAX_REPLICAS_ANNOTATION: "13"}},
            "spec": {"replicas": size, "selector": {}},
        }))
        .unwrap()
    };
    // Was 10 (+3 surge) as 8 old + 5 new; now 20 (+5 surge) = 25.
    let sizes = proportional_sizes(&d, &[rs("old", 8, 0), rs("new", 5, 10)]);
    assert_eq!(sizes, vec![15, 10]);
    let d = deployment(5, "a", rolling(json!("25%"), json!("25%")));
    let sizes = proportional_sizes(&d, &[rs("old", 8, 0), rs("new", 5, 10)]);
    assert_eq!(sizes.iter().sum::<i32>(), 7, "5 + 2 surge: {sizes:?}");
}

#[test]
fn a_stalled_rollout_exceeds_its_progress_deadline() {
    let mut c = Cluster {
        d: deployment(2, "a", json!(null)),
        rses: vec![],
        clock: 0,
    };
    c.d.spec.progress_deadline_seconds = Some(5);
    c.sync();
    c.pods_come_up();
    c.sync();
    c.d.spec.template.spec.as_mut().unwrap().containers[0].image = Some("broken".into());
    c.sync();
    c.clock += 10;
    let plan = c.sync();
    let cond = plan
        .status
        .conditions
        .unwrap()
        .into_iter()
        .find(|c| c.type_.as_deref() == Some("Progressing"))
        .unwrap();
    assert_eq!(
        (cond.status.as_deref(), cond.reason.as_deref()),
        (Some("False"), Some("ProgressDeadlineExceeded"))
    );
}

#[test]
fn a_paused_deployment_starts_no_new_replicaset() {
    let mut c = Cluster {
        d: deployment(2, "a", json!(null)),
        rses: vec![],
        clock: 0,
    };
    c.sync();
    c.pods_come_up();
    c.d.spec.paused = Some(true);
    c.d.spec.template.spec.as_mut().unwrap().containers[0].image = Some("b".into());
    let plan = c.sync();
    assert!(plan.create.is_none());
    let cond = plan
        .status
        .conditions
        .unwrap()
        .into_iter()
        .find(|c| c.type_.as_deref() == Some("Progressing"))
        .unwrap();
    assert_eq!(cond.reason.as_deref(), Some("DeploymentPaused"));
    c.d.spec.paused = Some(false);
    assert!(c.sync().create.is_some(), "resumed: the rollout starts");
}
