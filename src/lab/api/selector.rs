//! Label selectors (`=`, `==`, `!=`, `in`, `notin`, `key`, `!key`) and field selectors
//! (`metadata.name`, `metadata.namespace` and the few per-kind fields kubectl asks for,
//! with `=`, `==`, `!=`), parsed from query strings and matched against JSON objects.
//! Used by list and watch.

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
    Ok(inner
        .split(',')
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .collect())
}

fn valid_key(key: &str) -> bool {
    !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))
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
            if !valid_key(k) {
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
        assert!(Selector::parse(Some("app in blue"), None, "pods").is_err());
        assert!(Selector::parse(Some("=x"), None, "pods").is_err());
    }
}
