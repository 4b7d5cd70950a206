//! The patch engine on its own (`resil_lab::patch::apply`): strategic merge, RFC 6902
//! JSON patch, RFC 7386 merge patch and server-side apply, each applied to an arbitrary
//! live object of a kind the lab knows (a real template with edits, or any JSON value),
//! then the result patched again by a second document, as a client's next request would.
//!
//! Checked beyond "no panic": a success is always a JSON object (the engine promises it),
//! at most `MAX_DEPTH` levels deep, and serializes to JSON that parses back as an object.

#![no_main]

use arbitrary::{Arbitrary, Result as ArbResult, Unstructured};
use libfuzzer_sys::fuzz_target;
use resil_lab::patch::{Patch, apply};
use resil_lab::store::bounds::{MAX_DEPTH, deeper_than};
use resil_fuzz::{Json, KUBECTL_PATCHES, TEMPLATES, pointer, set, value, value_depth};
use serde_json::Value;

const KINDS: &[&str] = &[
    "Deployment",
    "Pod",
    "Service",
    "Endpoints",
    "HorizontalPodAutoscaler",
    "Namespace",
    "Event",
    "Lease",
    "Unknown",
];

#[derive(Debug)]
struct Doc(Value);

impl<'a> Arbitrary<'a> for Doc {
    fn arbitrary(u: &mut Unstructured<'a>) -> ArbResult<Self> {
        let mut v = match u.int_in_range(0..=3)? {
            0 => TEMPLATES[u.choose_index(TEMPLATES.len())?].clone(),
            1 => KUBECTL_PATCHES[u.choose_index(KUBECTL_PATCHES.len())?].clone(),
            2 => {
                let n = u.int_in_range(0..=6)?;
                let mut ops = Vec::new();
                for _ in 0..n {
                    let mut op = serde_json::Map::new();
                    let kinds = ["add", "remove", "replace", "move", "copy", "test", "x"];
                    op.insert("op".into(), Value::String(u.choose(&kinds)?.to_string()));
                    op.insert("path".into(), Value::String(pointer(u)?));
                    if u.arbitrary()? {
                        op.insert("from".into(), Value::String(pointer(u)?));
                    }
                    if u.arbitrary()? {
                        op.insert("value".into(), value(u, 3)?);
                    }
                    ops.push(Value::Object(op));
                }
                Value::Array(ops)
            }
            _ => u.arbitrary::<Json>()?.0,
        };
        let edits = u.int_in_range(0..=6)?;
        for _ in 0..edits {
            let p = pointer(u)?;
            let val = value(u, 2)?;
            set(&mut v, &p, val);
        }
        Ok(Doc(v))
    }
}

#[derive(Debug, Arbitrary)]
enum Type {
    Merge,
    Json,
    Strategic,
    // `force` no longer reaches the engine (every apply acts as forced); the field stays so
    // that saved inputs decode as they did.
    Apply { manager: u8, force: bool },
}

#[derive(Debug, Arbitrary)]
struct Input {
    kind: u8,
    live: Option<Doc>,
    first: (Type, Doc),
    second: Option<(Type, Doc)>,
}

fn patch<'a>(kind: &'a Type, doc: &'a Value) -> Patch<'a> {
    const MANAGERS: &[&str] = &["kubectl", "kubectl-client-side-apply", "resil", ""];
    match kind {
        Type::Merge => Patch::Merge(doc),
        Type::Json => Patch::Json(doc),
        Type::Strategic => Patch::Strategic(doc),
        Type::Apply { manager, .. } => Patch::Apply {
            body: doc,
            manager: MANAGERS[*manager as usize % MANAGERS.len()],
        },
    }
}

fn check(result: Result<Value, resil_lab::patch::PatchError>) -> Option<Value> {
    let object = result.ok()?;
    assert!(
        object.is_object(),
        "a patch result is not an object: {object}"
    );
    if let Some(field) = deeper_than(&object, MAX_DEPTH) {
        let depth = value_depth(&object);
        // Dropping it could overflow the stack and hide the finding behind another one.
        std::mem::forget(object);
        panic!("a patch result is {depth} levels deep past the limit, at {field}");
    }
    let text = serde_json::to_string(&object).expect("a patch result serializes");
    let back: Value = serde_json::from_str(&text).expect("a patch result parses back");
    assert!(back.is_object(), "a patch result reads back as {back}");
    Some(object)
}

fuzz_target!(|input: Input| {
    let kind = KINDS[input.kind as usize % KINDS.len()];
    let live = input.live.map(|d| d.0);
    let (first_type, first_doc) = &input.first;
    let Some(object) = check(apply(live.as_ref(), patch(first_type, &first_doc.0), kind)) else {
        return;
    };
    if let Some((second_type, second_doc)) = &input.second {
        check(apply(
            Some(&object),
            patch(second_type, &second_doc.0),
            kind,
        ));
    }
});
