//! Property: a patch result the store accepts always reloads. Random objects (some nested
//! past the depth limit) get random patches of every type through the patch engine and
//! the store; whatever is stored is saved, loaded again and compared.

use proptest::prelude::*;
use resil_lab::Store;
use resil_lab::patch::{self, Patch};
use resil_lab::store::{WriteMode, kinds, persist};
use serde_json::{Map, Value, json};

fn nest(levels: usize, leaf: Value) -> Value {
    (0..levels).fold(leaf, |v, _| json!({ "a": v }))
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i32>().prop_map(Value::from),
        "[a-c]{0,3}".prop_map(Value::from),
    ]
}

fn tree() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(5, 24, 3, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..3).prop_map(Value::from),
            proptest::collection::btree_map("[a-c]", inner, 0..3)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// Mostly small trees; now and then a chain up to twice the depth limit.
fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => tree(),
        1 => (0usize..130, tree()).prop_map(|(d, v)| nest(d, v)),
    ]
}

fn pointer() -> impl Strategy<Value = String> {
    proptest::collection::vec(prop_oneof!["[a-c]", "[01]", Just("-".to_string())], 0..4).prop_map(
        |segs| {
            segs.iter()
                .fold("/spec".to_string(), |p, s| format!("{p}/{s}"))
        },
    )
}

fn operation() -> impl Strategy<Value = Value> {
    prop_oneof![
        (pointer(), value()).prop_map(|(p, v)| json!({"op": "add", "path": p, "value": v})),
        pointer().prop_map(|p| json!({"op": "remove", "path": p})),
        (pointer(), value()).prop_map(|(p, v)| json!({"op": "replace", "path": p, "value": v})),
        (pointer(), pointer()).prop_map(|(f, p)| json!({"op": "copy", "from": f, "path": p})),
        (pointer(), pointer()).prop_map(|(f, p)| json!({"op": "move", "from": f, "path": p})),
    ]
}

/// One patch document of each type, as (type, document).
#[derive(Debug, Clone)]
enum Doc {
    Merge(Value),
    Strategic(Value),
    Json(Value),
    Apply(Value),
}

fn doc() -> impl Strategy<Value = Doc> {
    prop_oneof![
        value().prop_map(|v| Doc::Merge(json!({ "spec": v }))),
        value().prop_map(|v| Doc::Strategic(json!({ "spec": v }))),
        proptest::collection::vec(operation(), 1..6).prop_map(|ops| Doc::Json(Value::from(ops))),
        value().prop_map(|v| Doc::Apply(json!({
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": "l"}, "spec": v,
        }))),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn a_patch_result_the_store_accepts_always_reloads(
        base in value(),
        docs in proptest::collection::vec(doc(), 1..5),
    ) {
        let leases = kinds::stored("leases").unwrap();
        let store = Store::new();
        let object = json!({"metadata": {"name": "l"}, "spec": base});
        if store.create(leases, "default", object).is_err() {
            // Too deep to store at all: nothing to reload.
            return Ok(());
        }
        for d in &docs {
            let live = store.get("leases", "default", "l").unwrap();
            let p = match d {
                Doc::Merge(v) => Patch::Merge(v),
                Doc::Strategic(v) => Patch::Strategic(v),
                Doc::Json(v) => Patch::Json(v),
                Doc::Apply(v) => Patch::Apply { body: v, manager: "prop" },
            };
            if let Ok(result) = patch::apply(Some(&live), p, "Lease") {
                let _ = store.update(leases, "default", "l", result, WriteMode::Main);
            }
        }
        let dir = tempfile::tempdir().unwrap();
        persist::save(&store, dir.path()).unwrap();
        let loaded = persist::load(dir.path());
        prop_assert!(loaded.is_ok(), "the saved state does not load: {:?}", loaded.err());
        let loaded = loaded.unwrap();
        prop_assert_eq!(
            loaded.get("leases", "default", "l"),
            store.get("leases", "default", "l")
        );
    }
}
