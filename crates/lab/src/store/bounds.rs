//! Bounds on the values the lab stores: one nesting-depth limit ([`MAX_DEPTH`]) and a size
//! estimate, both computed without recursion so that no input, however deep, can overflow
//! a stack while being measured.
//!
//! Why a depth limit: every later step that walks an object recursively (cloning, comparing,
//! serializing, dropping, the patch engine, and above all reloading `state.json`, where
//! serde_json stops at 128 levels) is safe only if the depth is bounded. The store refuses
//! deeper objects whoever writes them; the API also checks request bodies before parsing
//! and the patch engine checks after every JSON-patch operation, so a patch that doubles
//! the depth is stopped before the doubled value exists twice over. 64 leaves room for the
//! envelope `state.json` wraps objects in and is far above any real object (a Deployment
//! is about 12 levels deep).
//!
//! Called by the store (`create`, `update`), the API (`api/mod.rs` body parsing) and the
//! patch engine (`patch/mod.rs`). Knows nothing of HTTP.

use serde_json::Value;

/// Deepest nesting of objects and lists the lab accepts (`{}` is 1 level, `{"a":[]}` 2).
pub const MAX_DEPTH: usize = 64;

/// The message every depth refusal carries (the API puts it in a 422 cause).
pub fn depth_message() -> String {
    format!(
        "Invalid value: must not be nested more than {MAX_DEPTH} levels deep (objects and \
         lists); flatten the object"
    )
}

/// Longest field path a refusal names; a path built from client keys could be huge.
const MAX_PATH_CHARS: usize = 200;

enum Children<'a> {
    Map(serde_json::map::Iter<'a>),
    List(std::iter::Enumerate<std::slice::Iter<'a, Value>>),
}

impl<'a> Children<'a> {
    fn of(value: &'a Value) -> Option<Children<'a>> {
        match value {
            Value::Object(m) => Some(Children::Map(m.iter())),
            Value::Array(a) => Some(Children::List(a.iter().enumerate())),
            _ => None,
        }
    }

    fn next(&mut self) -> Option<(Segment<'a>, &'a Value)> {
        match self {
            Children::Map(it) => it.next().map(|(k, v)| (Segment::Key(k), v)),
            Children::List(it) => it.next().map(|(i, v)| (Segment::Index(i), v)),
        }
    }
}

#[derive(Clone, Copy)]
enum Segment<'a> {
    Root,
    Key(&'a str),
    Index(usize),
}

/// Where `value` first nests more than `limit` levels: the field path (`spec.a[0].b`,
/// shortened if long) of the first container past the limit, or None when it does not.
pub fn deeper_than(value: &Value, limit: usize) -> Option<String> {
    // An explicit stack of child iterators: the walk a recursive function would make, with
    // the path being the stack itself.
    let mut stack: Vec<(Segment<'_>, Children<'_>)> = Vec::new();
    stack.push((Segment::Root, Children::of(value)?));
    if stack.len() > limit {
        return Some(path(&stack));
    }
    while let Some((_, children)) = stack.last_mut() {
        match children.next() {
            Some((segment, child)) => {
                if let Some(grandchildren) = Children::of(child) {
                    stack.push((segment, grandchildren));
                    if stack.len() > limit {
                        return Some(path(&stack));
                    }
                }
            }
            None => {
                stack.pop();
            }
        }
    }
    None
}

fn path(stack: &[(Segment<'_>, Children<'_>)]) -> String {
    let mut out = String::new();
    for (segment, _) in stack {
        match segment {
            Segment::Root => {}
            Segment::Key(k) if out.is_empty() => out.push_str(k),
            Segment::Key(k) => {
                out.push('.');
                out.push_str(k);
            }
            Segment::Index(i) => out.push_str(&format!("[{i}]")),
        }
        if cut_path(&mut out) {
            break;
        }
    }
    out
}

/// Cuts a field path past [`MAX_PATH_CHARS`] (on a character boundary) and marks the cut;
/// says whether it cut.
pub(crate) fn cut_path(out: &mut String) -> bool {
    if out.len() <= MAX_PATH_CHARS {
        return false;
    }
    let mut cut = MAX_PATH_CHARS;
    while !out.is_char_boundary(cut) {
        cut -= 1;
    }
    out.truncate(cut);
    out.push_str("...");
    true
}

/// Longest key kept while scanning JSON text for [`json_text_deeper_than`].
const MAX_KEY_CHARS: usize = 64;

/// One open container while scanning JSON text: the segment that leads to it, and for a
/// list the index of the element being read, for an object the key being read.
struct Open {
    segment: Option<String>,
    list: bool,
    index: usize,
    key: String,
}

/// Where JSON text first nests more than `limit` levels, judged from the brackets alone
/// (outside strings) before any parser recurses into it: the field path, as
/// [`deeper_than`] gives it, or None. Malformed text is left to the parser.
pub fn json_text_deeper_than(bytes: &[u8], limit: usize) -> Option<String> {
    let mut open: Vec<Open> = Vec::new();
    let mut in_string = false;
    let mut escaped = false;
    let mut string = String::new();
    for &b in bytes {
        if in_string {
            // Keys are kept as written (escapes included), which is enough to name a field.
            let end = !escaped && b == b'"';
            escaped = !escaped && b == b'\\';
            if end {
                in_string = false;
            } else if string.len() < MAX_KEY_CHARS {
                string.push(char::from(b));
            }
            continue;
        }
        match b {
            b'"' => {
                in_string = true;
                string.clear();
            }
            b':' => {
                if let Some(top) = open.last_mut() {
                    top.key = std::mem::take(&mut string);
                }
            }
            b',' => {
                if let Some(top) = open.last_mut() {
                    top.index += 1;
                }
            }
            b'{' | b'[' => {
                let segment = open.last().map(|top| {
                    if top.list {
                        format!("[{}]", top.index)
                    } else {
                        top.key.clone()
                    }
                });
                open.push(Open {
                    segment,
                    list: b == b'[',
                    index: 0,
                    key: String::new(),
                });
                if open.len() > limit {
                    return Some(text_path(&open));
                }
            }
            b'}' | b']' => {
                open.pop();
            }
            _ => {}
        }
    }
    None
}

fn text_path(open: &[Open]) -> String {
    let mut out = String::new();
    for segment in open.iter().filter_map(|o| o.segment.as_deref()) {
        if !out.is_empty() && !segment.starts_with('[') {
            out.push('.');
        }
        out.push_str(segment);
        if cut_path(&mut out) {
            break;
        }
    }
    out
}

/// About how many bytes `value` takes as compact JSON (exact for most values; numbers are
/// estimated). Iterative, like [`deeper_than`].
pub fn encoded_len(value: &Value) -> usize {
    let mut total = 0usize;
    let mut pending = vec![value];
    while let Some(v) = pending.pop() {
        total = total.saturating_add(match v {
            Value::Null => 4,
            Value::Bool(_) => 5,
            Value::Number(_) => 8,
            Value::String(s) => s.len() + 2,
            Value::Array(a) => {
                pending.extend(a.iter());
                2 + a.len().saturating_sub(1)
            }
            Value::Object(m) => {
                pending.extend(m.values());
                2 + m.len().saturating_sub(1) + m.keys().map(|k| k.len() + 3).sum::<usize>()
            }
        });
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// `{"a":{"a":...{"a":leaf}}}` with `levels` objects.
    pub(crate) fn nested(levels: usize, leaf: Value) -> Value {
        let mut v = leaf;
        for _ in 0..levels {
            v = json!({ "a": v });
        }
        v
    }

    #[test]
    fn depth_counts_objects_and_lists_not_scalars() {
        assert_eq!(deeper_than(&json!(1), 0), None);
        assert_eq!(deeper_than(&json!({}), 1), None);
        assert_eq!(deeper_than(&json!({}), 0).as_deref(), Some(""));
        assert_eq!(deeper_than(&json!({"a": [1]}), 2), None);
        assert_eq!(
            deeper_than(&json!({"a": [1, {"b": {}}]}), 2).as_deref(),
            Some("a[1]")
        );
        assert_eq!(deeper_than(&nested(64, json!(1)), MAX_DEPTH), None);
        assert!(deeper_than(&nested(65, json!(1)), MAX_DEPTH).is_some());
    }

    #[test]
    fn a_very_deep_value_is_measured_without_overflowing_the_stack() {
        // Built as text: a Value this deep could not even be dropped recursively.
        let text = format!("{}{}", "[".repeat(1_000_000), "]".repeat(1_000_000));
        assert!(json_text_deeper_than(text.as_bytes(), MAX_DEPTH).is_some());
        let mut list = Value::Null;
        for _ in 0..100 {
            list = Value::Array(vec![list]);
        }
        assert!(deeper_than(&list, MAX_DEPTH).is_some());
    }

    #[test]
    fn the_path_of_a_long_chain_is_shortened() {
        let key = "k".repeat(150);
        let mut v = json!({});
        for _ in 0..70 {
            v = json!({ key.clone(): v });
        }
        let p = deeper_than(&v, MAX_DEPTH).unwrap();
        assert!(p.len() <= MAX_PATH_CHARS + 3 && p.ends_with("..."), "{p}");
    }

    #[test]
    fn brackets_inside_strings_do_not_count() {
        let text = format!(r#"{{"a": "{}\"{}"}}"#, "[".repeat(100), "{".repeat(100));
        assert_eq!(json_text_deeper_than(text.as_bytes(), 2), None);
        assert_eq!(json_text_deeper_than(br#"{"a":[[{}]]}"#, 4), None);
        let path = |text: &str, limit| json_text_deeper_than(text.as_bytes(), limit);
        assert_eq!(path(r#"{"a":[[{}]]}"#, 3).as_deref(), Some("a[0][0]"));
        assert_eq!(
            path(r#"{"k": 1, "x": [1, {"y\"z": {"w": {}}}]}"#, 3).as_deref(),
            Some("x[1].y\\\"z")
        );
        // Text and value paths agree.
        let v: Value =
            serde_json::from_str(r#"{"b": 1, "s": {"c": [0, [1, {"d": {}}]]}}"#).unwrap();
        assert_eq!(path(&v.to_string(), 4), deeper_than(&v, 4));
    }

    #[test]
    fn encoded_len_matches_compact_json_for_strings_and_containers() {
        let v = json!({"ab": ["x", "yz"], "c": {}});
        assert_eq!(encoded_len(&v), v.to_string().len());
    }
}
