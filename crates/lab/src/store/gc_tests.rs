//! Garbage collection and namespace lifecycle rules of the store, without HTTP.

use super::delete::FOREGROUND_FINALIZER;
use super::namespaces::{KUBERNETES_FINALIZER, PROTECTED as PROTECTED_NAMESPACES};
use super::*;
use serde_json::json;

fn k(plural: &str) -> &'static Kind {
    kinds::stored(plural).unwrap()
}

/// An owner (a Deployment) and `n` pods it owns, blocking its deletion.
fn owner_with_pods(store: &Store, ns: &str, owner: &str, n: usize) -> String {
    let d = store
        .create(
            k("deployments"),
            ns,
            json!({"metadata": {"name": owner}, "spec": {"selector": {"matchLabels": {"a": "b"}},
                "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": []}}}}),
        )
        .unwrap();
    let uid = meta::uid(&d).to_string();
    for i in 0..n {
        store
            .create(
                k("pods"),
                ns,
                json!({"metadata": {"name": format!("{owner}-{i}"), "ownerReferences": [
                    {"apiVersion": "apps/v1", "kind": "Deployment", "name": owner, "uid": uid,
                     "controller": true, "blockOwnerDeletion": true}]},
                    "spec": {"containers": [{"name": "a", "image": "resil-demo"}]}}),
            )
            .unwrap();
    }
    uid
}

fn opts(propagation: Propagation) -> DeleteOptions {
    DeleteOptions {
        propagation,
        ..DeleteOptions::default()
    }
}

#[test]
fn foreground_deletion_waits_for_blocking_dependents() {
    let store = Store::new();
    store.set_pod_terminator(true);
    owner_with_pods(&store, "default", "web", 2);
    let deleted = store
        .delete(
            k("deployments"),
            "default",
            "web",
            &opts(Propagation::Foreground),
        )
        .unwrap();
    let Deleted::Pending(owner) = deleted else {
        panic!("the owner waits for its pods: {deleted:?}");
    };
    assert_eq!(meta::finalizers(&owner), [FOREGROUND_FINALIZER]);
    for i in 0..2 {
        let pod = store.get("pods", "default", &format!("web-{i}")).unwrap();
        assert!(
            meta::deletion_timestamp(&pod).is_some(),
            "pods are being deleted"
        );
    }
    store.remove("pods", "default", "web-0").unwrap();
    assert!(
        store.get("deployments", "default", "web").is_some(),
        "one pod left"
    );
    store.remove("pods", "default", "web-1").unwrap();
    assert!(
        store.get("deployments", "default", "web").is_none(),
        "owner goes last"
    );
}

#[test]
fn background_deletion_removes_the_owner_first_and_orphan_keeps_dependents() {
    let store = Store::new();
    store.set_pod_terminator(true);
    owner_with_pods(&store, "default", "bg", 1);
    let deleted = store
        .delete(
            k("deployments"),
            "default",
            "bg",
            &opts(Propagation::Background),
        )
        .unwrap();
    assert!(matches!(deleted, Deleted::Gone(_)));
    let pod = store.get("pods", "default", "bg-0").unwrap();
    assert!(meta::deletion_timestamp(&pod).is_some(), "the pod follows");

    let uid = owner_with_pods(&store, "default", "keep", 1);
    store
        .delete(
            k("deployments"),
            "default",
            "keep",
            &opts(Propagation::Orphan),
        )
        .unwrap();
    assert!(store.get("deployments", "default", "keep").is_none());
    let pod = store.get("pods", "default", "keep-0").unwrap();
    assert!(meta::deletion_timestamp(&pod).is_none());
    assert!(
        owners::owner_uids(&pod).all(|u| u != uid),
        "no reference left"
    );
}

#[test]
fn a_deleted_namespace_terminates_refuses_creates_and_goes_once_empty() {
    let store = Store::new();
    store
        .create(k("namespaces"), "", json!({"metadata": {"name": "gone"}}))
        .unwrap();
    owner_with_pods(&store, "gone", "web", 2);
    let Deleted::Pending(ns) = store
        .delete(k("namespaces"), "", "gone", &DeleteOptions::default())
        .unwrap()
    else {
        panic!("a namespace is marked first");
    };
    assert_eq!(ns["status"]["phase"], "Terminating");
    assert_eq!(ns["spec"]["finalizers"], json!([KUBERNETES_FINALIZER]));
    let err = store
        .create(
            k("pods"),
            "gone",
            json!({"metadata": {"name": "late"}, "spec": {}}),
        )
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "pods \"late\" is forbidden: unable to create new content in namespace gone because \
         it is being terminated"
    );
    assert!(!store.namespace_contents("gone").is_empty());
    crate::controllers::namespace::sync(&store);
    assert!(store.namespace_contents("gone").is_empty());
    crate::controllers::namespace::sync(&store);
    assert!(store.get("namespaces", "", "gone").is_none());
    for protected in PROTECTED_NAMESPACES {
        store.ensure_namespace(protected);
        let err = store
            .delete(k("namespaces"), "", protected, &DeleteOptions::default())
            .unwrap_err();
        assert!(
            matches!(err, StoreError::Forbidden(_)),
            "{protected}: {err}"
        );
    }
}

/// Measures deleting 1000 of 5000 pods through the store, by deleting their owner:
/// `cargo nextest run -p resil-lab --features internals --run-ignored only -E
/// 'test(/thousand_of_five/)' --no-capture`.
#[test]
#[ignore = "a measurement"]
fn deleting_a_thousand_of_five_thousand_pods_by_their_owner() {
    let store = Store::new();
    for owner in 0..5 {
        owner_with_pods(&store, "default", &format!("o{owner}"), 1000);
    }
    let started = std::time::Instant::now();
    store
        .delete(k("deployments"), "default", "o2", &DeleteOptions::default())
        .unwrap();
    let took = started.elapsed();
    assert_eq!(store.list("pods", None).items.len(), 4000);
    println!("deleted 1000 of 5000 pods by their owner in {took:?}");
}
