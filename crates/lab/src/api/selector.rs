//! Label selectors (`=`, `==`, `!=`, `in`, `notin`, `key`, `!key`) and field selectors
//! (`metadata.name`, `metadata.namespace` and the few per-kind fields kubectl asks for,
//! with `=`, `==`, `!=`), parsed from query strings and matched against JSON objects.
//! Label keys and values are checked as upstream checks them (`IsQualifiedName`,
//! `IsValidLabelValue`), so every selector the parser accepts prints back ([`Display`],
//! the canonical form) to a string that parses to the same selector. Used by list and
//! watch.
//!
//! [`Display`]: std::fmt::Display

use std::fmt;

use serde_json::Value;

/// One label requirement.
#[derive(Debug, Clone, PartialEq)]
enum Label {
    Eq(String, String),
    NotEq(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

/// One field requirement: (path, value, equal?).
#[derive(Debug, Clone, PartialEq)]
struct Field {
    path: String,
    value: String,
    equal: bool,
}

/// Label plus field selector of one request; the empty selector matches everything.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Selector {
    labels: Vec<Label>,
    fields: Vec<Field>,
}

/// Splits on commas outside parentheses.
fn split_top(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out.into_iter()
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect()
}

fn set_values(rest: &str, whole: &str) -> Result<Vec<String>, String> {
    let inner = rest
        .trim()
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(|| {
            format!(
                "unable to parse requirement: {whole:?}: expected a parenthesized set of values"
            )
        })?;
    let values: Vec<String> = inner.split(',').map(|v| v.trim().to_string()).collect();
    if values.iter().any(|v| !valid_value(v)) || values.iter().all(String::is_empty) {
        return Err(format!(
            "unable to parse requirement: {whole:?}: the set must hold one or more valid \
             label values"
        ));
    }
    Ok(values)
}

/// Upstream's name part of a qualified name and a label value (when not empty): at most
/// 63 of `[-A-Za-z0-9_.]`, starting and ending with an alphanumeric.
fn valid_name_part(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

/// A label key: `[prefix/]name`, the prefix a DNS-1123 subdomain (upstream
/// `IsQualifiedName`).
fn valid_key(key: &str) -> bool {
    match key.split_once('/') {
        None => valid_name_part(key),
        Some((prefix, name)) => {
            let subdomain = !prefix.is_empty()
                && prefix.len() <= 253
                && prefix.split('.').all(|label| {
                    let b = label.as_bytes();
                    let alnum = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
                    !b.is_empty()
                        && b.first().is_some_and(alnum)
                        && b.last().is_some_and(alnum)
                        && b.iter().all(|c| alnum(c) || *c == b'-')
                });
            subdomain && valid_name_part(name)
        }
    }
}

/// A label value: empty, or like a name part (upstream `IsValidLabelValue`).
fn valid_value(value: &str) -> bool {
    value.is_empty() || valid_name_part(value)
}

fn parse_label(part: &str) -> Result<Label, String> {
    let bad = || format!("unable to parse requirement: {part:?}: invalid label selector");
    if let Some(key) = part.strip_prefix('!') {
        let key = key.trim();
        return if valid_key(key) {
            Ok(Label::NotExists(key.to_string()))
        } else {
            Err(bad())
        };
    }
    for (op, ctor) in [
        ("!=", Label::NotEq as fn(String, String) -> Label),
        ("==", Label::Eq),
        ("=", Label::Eq),
    ] {
        if let Some((k, v)) = part.split_once(op) {
            let (k, v) = (k.trim(), v.trim());
            if !valid_key(k) || !valid_value(v) {
                return Err(bad());
            }
            return Ok(ctor(k.to_string(), v.to_string()));
        }
    }
    let mut words = part.splitn(2, char::is_whitespace);
    let key = words.next().unwrap_or("").trim();
    let rest = words.next().unwrap_or("").trim();
    if rest.is_empty() {
        return if valid_key(key) {
            Ok(Label::Exists(key.to_string()))
        } else {
            Err(bad())
        };
    }
    if !valid_key(key) {
        return Err(bad());
    }
    if let Some(set) = rest.strip_prefix("notin") {
        return Ok(Label::NotIn(key.to_string(), set_values(set, part)?));
    }
    if let Some(set) = rest.strip_prefix("in") {
        return Ok(Label::In(key.to_string(), set_values(set, part)?));
    }
    Err(bad())
}

impl fmt::Display for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Label::Eq(k, v) => write!(f, "{k}={v}"),
            Label::NotEq(k, v) => write!(f, "{k}!={v}"),
            Label::In(k, vs) => write!(f, "{k} in ({})", vs.join(",")),
            Label::NotIn(k, vs) => write!(f, "{k} notin ({})", vs.join(",")),
            Label::Exists(k) => write!(f, "{k}"),
            Label::NotExists(k) => write!(f, "!{k}"),
        }
    }
}

/// The canonical form of the label part (what `labelSelector` would carry); the field
/// part is not printed.
impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, label) in self.labels.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{label}")?;
        }
        Ok(())
    }
}

/// Field paths filterable for a resource besides metadata.name / metadata.namespace.
fn extra_fields(resource: &str) -> &'static [&'static str] {
    match resource {
        "pods" => &[
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "status.phase",
            "status.podIP",
        ],
        "events" => &[
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        ],
        "namespaces" => &["status.phase"],
        "nodes" => &["spec.unschedulable"],
        _ => &[],
    }
}

impl Selector {
    /// Parses `labelSelector` and `fieldSelector` for `resource`; an unknown field → Err
    /// with a message for a 400.
    pub fn parse(
        labels: Option<&str>,
        fields: Option<&str>,
        resource: &str,
    ) -> Result<Selector, String> {
        let mut sel = Selector::default();
        for part in split_top(labels.unwrap_or("")) {
            sel.labels.push(parse_label(part)?);
        }
        for part in split_top(fields.unwrap_or("")) {
            let (path, value, equal) = if let Some((p, v)) = part.split_once("!=") {
                (p, v, false)
            } else if let Some((p, v)) = part.split_once("==") {
                (p, v, true)
            } else if let Some((p, v)) = part.split_once('=') {
                (p, v, true)
            } else {
                return Err(format!(
                    "invalid field selector: {part:?}: expected key=value or key!=value"
                ));
            };
            let path = path.trim();
            if !matches!(path, "metadata.name" | "metadata.namespace")
                && !extra_fields(resource).contains(&path)
            {
                return Err(format!("field label not supported: {path}"));
            }
            sel.fields.push(Field {
                path: path.to_string(),
                value: value.trim().to_string(),
                equal,
            });
        }
        Ok(sel)
    }

    /// Whether the selector selects nothing out (matches all).
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty() && self.fields.is_empty()
    }

    /// Whether `obj` is selected.
    pub fn matches(&self, obj: &Value) -> bool {
        let label = |k: &str| {
            obj.pointer("/metadata/labels")
                .and_then(|l| l.get(k))
                .and_then(Value::as_str)
        };
        let labels_ok = self.labels.iter().all(|req| match req {
            Label::Eq(k, v) => label(k) == Some(v.as_str()),
            Label::NotEq(k, v) => label(k) != Some(v.as_str()),
            Label::In(k, vs) => label(k).is_some_and(|l| vs.iter().any(|v| v == l)),
            Label::NotIn(k, vs) => label(k).is_none_or(|l| vs.iter().all(|v| v != l)),
            Label::Exists(k) => label(k).is_some(),
            Label::NotExists(k) => label(k).is_none(),
        });
        labels_ok
            && self.fields.iter().all(|f| {
                let pointer = format!("/{}", f.path.replace('.', "/"));
                let actual = match obj.pointer(&pointer) {
                    Some(Value::String(s)) => s.clone(),
                    Some(Value::Null) | None => String::new(),
                    Some(Value::Object(o)) => o
                        .get("component")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string(),
                    Some(other) => other.to_string(),
                };
                (actual == f.value) == f.equal
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(labels: Value) -> Value {
        json!({"metadata": {"name": "web-1", "namespace": "default", "labels": labels}})
    }

    #[test]
    fn label_operators_select_as_kubernetes_does() {
        let p = pod(json!({"app": "web", "version": "blue"}));
        let m = |s: &str| Selector::parse(Some(s), None, "pods").unwrap().matches(&p);
        assert!(m("app=web"));
        assert!(m("app==web,version=blue"));
        assert!(!m("app!=web"));
        assert!(m("version in (blue, green)"));
        assert!(!m("version notin (blue,green)"));
        assert!(m("tier notin (db)"));
        assert!(m("app"));
        assert!(!m("!app"));
        assert!(m("!tier"));
        assert!(m(""));
    }

    #[test]
    fn field_selectors_accept_name_and_namespace_and_refuse_others() {
        let p = pod(json!({}));
        let m = |s: &str| Selector::parse(None, Some(s), "pods").unwrap().matches(&p);
        assert!(m("metadata.name=web-1"));
        assert!(m("metadata.namespace==default,metadata.name!=web-2"));
        assert!(!m("metadata.name=web-2"));
        let err = Selector::parse(None, Some("spec.replicas=3"), "deployments").unwrap_err();
        assert!(err.contains("spec.replicas"), "{err}");
    }

    #[test]
    fn malformed_label_selector_is_an_error() {
        for bad in [
            "app in blue",
            "=x",
            "app in ()",
            "a===b",
            "a=b c",
            "-app=web",
            "app=web-",
            "Example.com/app=web",
            "a//b",
            "a in (x y)",
            "x=(y)",
        ] {
            assert!(Selector::parse(Some(bad), None, "pods").is_err(), "{bad}");
        }
    }

    #[test]
    fn selectors_print_in_canonical_form() {
        let text = " app = web ,tier!=db,v in (a, b),x notin (c),k, ! gone,example.com/z";
        let sel = Selector::parse(Some(text), None, "pods").unwrap();
        assert_eq!(
            sel.to_string(),
            "app=web,tier!=db,v in (a,b),x notin (c),k,!gone,example.com/z"
        );
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        fn name_part() -> impl Strategy<Value = String> {
            "[A-Za-z0-9]([-A-Za-z0-9_.]{0,8}[A-Za-z0-9])?"
        }

        fn key() -> impl Strategy<Value = String> {
            (
                proptest::option::of("[a-z0-9]([-a-z0-9]{0,5}[a-z0-9])?(\\.[a-z0-9]{1,4}){0,2}"),
                name_part(),
            )
                .prop_map(|(prefix, name)| match prefix {
                    Some(p) => format!("{p}/{name}"),
                    None => name,
                })
        }

        fn value() -> impl Strategy<Value = String> {
            prop_oneof![Just(String::new()), name_part()]
        }

        fn label() -> impl Strategy<Value = Label> {
            let set = || proptest::collection::vec(name_part(), 1..4);
            prop_oneof![
                (key(), value()).prop_map(|(k, v)| Label::Eq(k, v)),
                (key(), value()).prop_map(|(k, v)| Label::NotEq(k, v)),
                (key(), set()).prop_map(|(k, vs)| Label::In(k, vs)),
                (key(), set()).prop_map(|(k, vs)| Label::NotIn(k, vs)),
                key().prop_map(Label::Exists),
                key().prop_map(Label::NotExists),
            ]
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]

            /// Every selector prints to a string that parses back to it.
            #[test]
            fn a_selector_prints_back_to_itself(
                labels in proptest::collection::vec(label(), 0..5)
            ) {
                let sel = Selector { labels, fields: Vec::new() };
                let text = sel.to_string();
                let again = Selector::parse(Some(&text), None, "pods");
                prop_assert_eq!(again.as_ref(), Ok(&sel), "{}", text);
            }

            /// Whatever string parses, its printed form parses to the same selector; and
            /// whatever does not parse stays refused with the same message.
            #[test]
            fn a_string_parses_iff_its_canonical_form_does(
                text in "[a-c/.!=(), -]{0,24}|[a-z]{1,3}(( in | notin )\\([a-z,]{0,6}\\))?"
            ) {
                match Selector::parse(Some(&text), None, "pods") {
                    Ok(sel) => {
                        let printed = sel.to_string();
                        let again = Selector::parse(Some(&printed), None, "pods");
                        prop_assert_eq!(
                            again.as_ref(), Ok(&sel), "{:?} printed {:?}", text, printed
                        );
                    }
                    Err(e) => {
                        let again = Selector::parse(Some(&text), None, "pods");
                        prop_assert_eq!(again, Err(e));
                    }
                }
            }
        }
    }
}
