//! Store rules, without HTTP.

use super::*;
use serde_json::json;

fn k(plural: &str) -> &'static Kind {
    kinds::stored(plural).unwrap()
}

fn pod(name: &str) -> Value {
    json!({"metadata": {"name": name}, "spec": {"containers": [{"name": "a", "image": "resil-demo"}]}})
}

#[tokio::test]
async fn watch_from_a_recent_version_replays_what_it_missed() {
    let store = Store::new();
    let rv = store.resource_version();
    store.create(k("pods"), "default", pod("a")).unwrap();
    store.create(k("pods"), "default", pod("b")).unwrap();
    let mut sub = store
        .watch("pods", Some("default"), WatchStart::After(rv))
        .unwrap();
    let first = sub.next().await.unwrap();
    let second = sub.next().await.unwrap();
    assert_eq!(
        (first.kind, meta::name(&first.object)),
        (EventType::Added, "a")
    );
    assert_eq!(meta::name(&second.object), "b");
    store
        .delete(k("pods"), "default", "a", &DeleteOptions::default())
        .unwrap();
    let third = sub.next().await.unwrap();
    assert_eq!(third.kind, EventType::Deleted);
    assert_eq!(
        meta::rv(&third.object),
        third.rv.to_string(),
        "DELETED carries the deletion's RV"
    );
}

#[test]
fn watch_from_a_version_older_than_the_history_is_expired() {
    let store = Store::new();
    let old = store.resource_version();
    for i in 0..=HISTORY {
        let mut lease =
            json!({"metadata": {"name": "l"}, "spec": {"holderIdentity": i.to_string()}});
        if i == 0 {
            store.create(k("leases"), "default", lease).unwrap();
        } else {
            lease["metadata"]["resourceVersion"] = json!("");
            store
                .update(k("leases"), "default", "l", lease, WriteMode::Main)
                .unwrap();
        }
    }
    let err = store
        .watch("leases", None, WatchStart::After(old))
        .unwrap_err();
    assert!(err > old);
    assert!(
        store
            .watch(
                "leases",
                None,
                WatchStart::After(store.resource_version() - 5)
            )
            .is_ok()
    );
}

#[test]
fn the_history_is_bounded_by_bytes_as_well_as_by_count() {
    let store = Store::new();
    let old = store.resource_version();
    // 40 writes of a 1 MiB object hold 80 MiB (object and previous) in the history.
    let big = "x".repeat(1024 * 1024);
    for i in 0..40 {
        let lease = json!({"metadata": {"name": "l"},
                           "spec": {"holderIdentity": format!("{i}{big}")}});
        if i == 0 {
            store.create(k("leases"), "default", lease).unwrap();
        } else {
            store
                .update(k("leases"), "default", "l", lease, WriteMode::Main)
                .unwrap();
        }
    }
    assert!(store.watch("leases", None, WatchStart::After(old)).is_err());
    let state = store.lock();
    assert!(
        state.history_bytes <= HISTORY_BYTES,
        "{}",
        state.history_bytes
    );
    assert_eq!(
        state.history_bytes,
        state.history.iter().map(|(_, n)| n).sum::<usize>()
    );
}

#[test]
fn an_object_nested_past_the_limit_is_refused_by_the_store_itself() {
    let store = Store::new();
    let mut deep = json!(1);
    for _ in 0..bounds::MAX_DEPTH {
        deep = json!({ "a": deep });
    }
    let mut lease = json!({"metadata": {"name": "l"}, "spec": deep});
    let err = store
        .create(k("leases"), "default", lease.clone())
        .unwrap_err();
    let StoreError::Invalid { causes, .. } = err else {
        panic!("{err:?}")
    };
    assert!(causes[0].0.starts_with("spec.a.a"), "{causes:?}");
    lease["spec"] = json!({});
    store.create(k("leases"), "default", lease.clone()).unwrap();
    lease["spec"] = deep;
    assert!(matches!(
        store.update(k("leases"), "default", "l", lease, WriteMode::Main),
        Err(StoreError::Invalid { .. })
    ));
}

#[test]
fn pods_wait_for_their_terminator_when_one_is_present() {
    let store = Store::new();
    store.create(k("pods"), "default", pod("a")).unwrap();
    store.set_pod_terminator(true);
    let d = store
        .delete(k("pods"), "default", "a", &DeleteOptions::default())
        .unwrap();
    let Deleted::Pending(obj) = d else {
        panic!("expected a pending deletion")
    };
    assert!(meta::deletion_timestamp(&obj).is_some());
    assert_eq!(obj["metadata"]["deletionGracePeriodSeconds"], 30);
    assert!(
        store.get("pods", "default", "a").is_some(),
        "kept while the grace period runs"
    );
    // --grace-period=0 --force removes at once even then.
    let forced = DeleteOptions {
        grace_period: Some(0),
        ..DeleteOptions::default()
    };
    assert!(matches!(
        store.delete(k("pods"), "default", "a", &forced).unwrap(),
        Deleted::Gone(_)
    ));
    assert!(store.get("pods", "default", "a").is_none());
}

#[test]
fn finalizers_hold_deletion_until_removed() {
    let store = Store::new();
    let mut svc = json!({"metadata": {"name": "s", "finalizers": ["example.com/x"]}, "spec": {"ports": [{"port": 80}]}});
    store.create(k("services"), "default", svc.clone()).unwrap();
    let d = store
        .delete(k("services"), "default", "s", &DeleteOptions::default())
        .unwrap();
    assert!(matches!(d, Deleted::Pending(_)));
    svc["metadata"]["finalizers"] = json!([]);
    store
        .update(k("services"), "default", "s", svc, WriteMode::Main)
        .unwrap();
    assert!(store.get("services", "default", "s").is_none());
}

#[test]
fn a_write_that_changes_nothing_keeps_the_resource_version() {
    let store = Store::new();
    let created = store.create(k("pods"), "default", pod("a")).unwrap();
    let again = store
        .update(k("pods"), "default", "a", created.clone(), WriteMode::Main)
        .unwrap();
    assert_eq!(meta::rv(&again), meta::rv(&created));
}

#[test]
fn services_get_distinct_cluster_ips_and_node_ports() {
    let store = Store::new();
    let svc = |n: &str| json!({"metadata": {"name": n}, "spec": {"type": "NodePort", "ports": [{"port": 80}]}});
    let a = store.create(k("services"), "default", svc("a")).unwrap();
    let b = store.create(k("services"), "default", svc("b")).unwrap();
    assert_ne!(a["spec"]["clusterIP"], b["spec"]["clusterIP"]);
    assert_ne!(
        a["spec"]["ports"][0]["nodePort"],
        b["spec"]["ports"][0]["nodePort"]
    );
    let mut replaced = b.clone();
    replaced["spec"]["ports"][0]
        .as_object_mut()
        .unwrap()
        .remove("nodePort");
    let replaced = store
        .update(k("services"), "default", "b", replaced, WriteMode::Main)
        .unwrap();
    assert_eq!(
        replaced["spec"]["ports"][0]["nodePort"], b["spec"]["ports"][0]["nodePort"],
        "kept on update"
    );
}

#[test]
fn state_round_trips_through_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new();
    store.create(k("pods"), "default", pod("a")).unwrap();
    persist::save(&store, dir.path()).unwrap();
    let loaded = persist::load(dir.path()).unwrap();
    assert_eq!(
        loaded.get("pods", "default", "a"),
        store.get("pods", "default", "a")
    );
    assert_eq!(loaded.resource_version(), store.resource_version());
}

#[test]
fn a_saver_writes_each_change_and_keeps_the_rest_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new();
    store.create(k("pods"), "default", pod("a")).unwrap();
    store.create(k("pods"), "default", pod("b")).unwrap();
    let mut saver = persist::Saver::default();
    saver.save(&store, dir.path()).unwrap();
    // A write after the first save, one delete, one create: the next save has them all.
    let mut a = store.get("pods", "default", "a").unwrap();
    a["metadata"]["labels"] = json!({"changed": "yes"});
    store
        .update(k("pods"), "default", "a", a, WriteMode::Main)
        .unwrap();
    store
        .delete(k("pods"), "default", "b", &DeleteOptions::default())
        .unwrap();
    store.create(k("pods"), "default", pod("c")).unwrap();
    saver.save(&store, dir.path()).unwrap();
    let loaded = persist::load(dir.path()).unwrap();
    for name in ["a", "b", "c"] {
        assert_eq!(
            loaded.get("pods", "default", name),
            store.get("pods", "default", name),
            "{name}"
        );
    }
    assert_eq!(loaded.resource_version(), store.resource_version());
    // One object per line: a file a person can grep.
    let text = std::fs::read_to_string(dir.path().join(persist::STATE_FILE)).unwrap();
    let objects = store.snapshot().0.len();
    assert_eq!(text.lines().count(), objects + 2, "{text}");
}

#[tokio::test]
async fn a_controller_sees_changes_through_a_subscription() {
    let dir = tempfile::tempdir().unwrap();
    let lab = crate::Lab::start(crate::LabConfig::new(dir.path()))
        .await
        .unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    lab.spawn_task(|store, shutdown| async move {
        let mut sub = store.watch("pods", None, WatchStart::Now).unwrap();
        loop {
            tokio::select! {
                e = sub.next() => match e {
                    Ok(e) => { let _ = tx.send(meta::name(&e.object).to_string()); }
                    Err(_) => return,
                },
                _ = shutdown.cancelled() => return,
            }
        }
    });
    lab.store()
        .create(k("pods"), "default", pod("seen"))
        .unwrap();
    let name = tokio::time::timeout(std::time::Duration::from_secs(5), rx.recv())
        .await
        .unwrap();
    assert_eq!(name.as_deref(), Some("seen"));
    let started = std::time::Instant::now();
    lab.shutdown().await;
    assert!(
        started.elapsed() < std::time::Duration::from_secs(2),
        "the task stopped at shutdown"
    );
}
