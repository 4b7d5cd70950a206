//! Work derived from the store's objects, done once per write rather than once per pass.
//!
//! A stored object is an immutable `Arc<Value>` that a write replaces, so the same
//! allocation means the same object. [`Memo`] keeps a value derived from each object next
//! to the `Arc` it came from and derives it again only for what a write replaced. Two
//! users: the control loops read every pod on each pass (at least once a second), and
//! parsing 1000 pods from JSON each time was most of an idle 1000-pod lab's CPU —
//! [`Parsed`] keeps their typed forms, as upstream's informers keep typed objects in their
//! caches; and the state file is written from each object's encoded line, kept by
//! `persist.rs`'s saver.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde::de::DeserializeOwned;
use serde_json::Value;

/// Values derived from objects, keyed by the address of the stored `Arc` (held, so the
/// address cannot be reused while the entry lives).
pub(crate) struct Memo<T> {
    entries: HashMap<usize, (Arc<Value>, T)>,
}

impl<T> Default for Memo<T> {
    fn default() -> Memo<T> {
        Memo {
            entries: HashMap::new(),
        }
    }
}

impl<T: Clone> Memo<T> {
    /// The derived value of each of `objects`, in their order: kept for objects seen last
    /// time, `derive`d for the others. Entries of objects not among them are dropped, so
    /// `objects` must be the whole set each time.
    pub(crate) fn refresh<'a>(
        &mut self,
        objects: impl IntoIterator<Item = &'a Arc<Value>>,
        mut derive: impl FnMut(&Value) -> T,
    ) -> Vec<T> {
        let mut old = std::mem::take(&mut self.entries);
        objects
            .into_iter()
            .map(|object| {
                let at = Arc::as_ptr(object) as usize;
                let value = match old.remove(&at) {
                    Some((_, value)) => value,
                    None => derive(object),
                };
                self.entries.insert(at, (object.clone(), value.clone()));
                value
            })
            .collect()
    }
}

/// One resource's objects as type `T`; `None` for an object that does not parse as `T`.
type Typed<T> = Memo<Option<Arc<T>>>;

/// A `Typed<T>` for some `T`, found by its (resource, `TypeId`) key.
type AnyTyped = Box<dyn Any + Send>;

/// The typed forms of every (resource, type) asked for so far.
#[derive(Default)]
pub(crate) struct Parsed {
    by_kind: Mutex<HashMap<(&'static str, TypeId), AnyTyped>>,
}

impl Parsed {
    /// `objects` (all of `resource`, as the store holds them now) as `T`, in their order;
    /// objects that do not parse as `T` are left out (as a controller skips what it cannot
    /// read).
    pub(crate) fn of<T>(&self, resource: &'static str, objects: &[Arc<Value>]) -> Vec<Arc<T>>
    where
        T: DeserializeOwned + Send + Sync + 'static,
    {
        let mut by_kind = self.by_kind.lock().unwrap_or_else(|e| e.into_inner());
        let slot = by_kind
            .entry((resource, TypeId::of::<T>()))
            .or_insert_with(|| Box::new(Typed::<T>::default()));
        // The key includes T's TypeId, so the slot holds `Typed<T>`.
        let Some(memo) = slot.downcast_mut::<Typed<T>>() else {
            return Vec::new();
        };
        memo.refresh(objects, |object| match T::deserialize(object) {
            Ok(t) => Some(Arc::new(t)),
            Err(e) => {
                tracing::debug!("skipping a {resource} object a loop cannot read: {e}");
                None
            }
        })
        .into_iter()
        .flatten()
        .collect()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[derive(serde::Deserialize)]
    struct Named {
        name: String,
    }

    #[test]
    fn an_object_is_parsed_again_only_when_a_write_replaced_it() {
        let parsed = Parsed::default();
        let a = Arc::new(json!({"name": "a"}));
        let b = Arc::new(json!({"name": "b"}));
        let bad = Arc::new(json!({"name": 5}));
        let first: Vec<Arc<Named>> = parsed.of("things", &[a.clone(), bad.clone(), b.clone()]);
        let names: Vec<&str> = first.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, ["a", "b"], "the unreadable one is skipped");

        // `b` rewritten: a new allocation, parsed afresh; `a` is the very same parse.
        let b2 = Arc::new(json!({"name": "b2"}));
        let second: Vec<Arc<Named>> = parsed.of("things", &[a.clone(), b2.clone()]);
        assert!(
            Arc::ptr_eq(&first[0], &second[0]),
            "unchanged: not parsed again"
        );
        assert_eq!(second[1].name, "b2");

        // Gone objects leave the cache (and release the store's Arc).
        let third: Vec<Arc<Named>> = parsed.of("things", std::slice::from_ref(&b2));
        assert_eq!(third.len(), 1);
        assert_eq!(
            Arc::strong_count(&a),
            1,
            "the cache let go of a deleted object"
        );
        assert_eq!(Arc::strong_count(&bad), 1);

        // Another type over the same objects has its own entries.
        #[derive(serde::Deserialize)]
        struct Loose {}
        let loose: Vec<Arc<Loose>> = parsed.of("things", std::slice::from_ref(&b2));
        assert_eq!(loose.len(), 1);
        assert!(Arc::ptr_eq(
            &third[0],
            &parsed.of::<Named>("things", std::slice::from_ref(&b2))[0]
        ));
    }

    #[test]
    fn a_memo_derives_once_per_object_and_keeps_the_order_given() {
        let mut memo = Memo::default();
        let mut derived = 0;
        let objects: Vec<Arc<Value>> = (0..3).map(|i| Arc::new(json!(i))).collect();
        let mut text = |v: &Value| {
            derived += 1;
            v.to_string()
        };
        assert_eq!(memo.refresh(&objects, &mut text), ["0", "1", "2"]);
        let reversed: Vec<Arc<Value>> = objects.iter().rev().cloned().collect();
        assert_eq!(memo.refresh(&reversed, &mut text), ["2", "1", "0"]);
        assert_eq!(derived, 3, "nothing derived twice");
    }
}
