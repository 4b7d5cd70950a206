//! ConfigMap and Secret write rules, as upstream's conversion, defaulting and
//! `pkg/apis/core/validation/validation.go` (`ValidateConfigMap`, `ValidateSecret`, their
//! `...Update`) define them. Applied by the store to every write, whoever sends it:
//!
//! 1. A Secret's `stringData` is merged into `data` (base64-encoded, overriding a key of
//!    the same name) and never stored; `type` defaults to `Opaque`.
//! 2. `data` of a Secret and `binaryData` of a ConfigMap must be base64.
//! 3. Keys are config keys (`[-._a-zA-Z0-9]+`, not `.` or `..`, at most 253 characters);
//!    a ConfigMap key may not be in both `data` and `binaryData`; the whole payload is at
//!    most 1 MiB.
//! 4. Typed Secrets carry their required keys: `kubernetes.io/tls` `tls.crt` and
//!    `tls.key`; `kubernetes.io/dockerconfigjson` a JSON `.dockerconfigjson`;
//!    `kubernetes.io/dockercfg` a JSON `.dockercfg`; `kubernetes.io/basic-auth`
//!    `username` or `password`; `kubernetes.io/ssh-auth` `ssh-privatekey`;
//!    `kubernetes.io/service-account-token` the service-account name annotation.
//! 5. On update, a Secret's `type` is immutable; once `immutable: true` is set, the data
//!    cannot change and `immutable` cannot be unset.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value, json};

use super::StoreError;
use super::kinds::Kind;

/// Most bytes of data a ConfigMap or Secret may hold (upstream `MaxSecretSize`).
const MAX_SIZE: usize = 1024 * 1024;

type Causes = Vec<(String, String)>;

/// Applies the rules above to `obj` (being created, or replacing `live`).
pub(super) fn prepare(
    kind: &Kind,
    obj: &mut Value,
    live: Option<&Value>,
) -> Result<(), StoreError> {
    let mut causes = Causes::new();
    match kind.plural {
        "secrets" => {
            merge_string_data(obj);
            if obj
                .get("type")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
            {
                obj["type"] = json!("Opaque");
            }
            let sizes = payload(obj, "data", &mut causes);
            check_size(sizes, "data", &mut causes);
            check_type(obj, &mut causes);
        }
        "configmaps" => {
            let text: usize = keyed(obj, "data")
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| {
                            check_key(k, "data", &mut causes);
                            v.as_str().map_or(0, str::len)
                        })
                        .sum()
                })
                .unwrap_or(0);
            let binary = payload(obj, "binaryData", &mut causes);
            if let (Some(d), Some(b)) = (keyed(obj, "data"), keyed(obj, "binaryData")) {
                for k in d.keys().filter(|k| b.contains_key(*k)) {
                    causes.push((
                        format!("data[{k}]"),
                        format!("Invalid value: \"{k}\": duplicate of key present in binaryData"),
                    ));
                }
            }
            check_size(text + binary, "", &mut causes);
        }
        _ => return Ok(()),
    }
    if let Some(live) = live {
        check_update(kind, obj, live, &mut causes);
    }
    if causes.is_empty() {
        Ok(())
    } else {
        Err(StoreError::Invalid {
            resource: kind.plural,
            name: super::meta::name(obj).to_string(),
            causes,
        })
    }
}

fn keyed<'a>(obj: &'a Value, field: &str) -> Option<&'a Map<String, Value>> {
    obj.get(field).and_then(Value::as_object)
}

/// `stringData` into `data`, base64-encoded; `stringData` removed.
fn merge_string_data(obj: &mut Value) {
    let Some(Value::Object(strings)) = obj.as_object_mut().and_then(|m| m.remove("stringData"))
    else {
        return;
    };
    if !obj.get("data").is_some_and(Value::is_object) {
        obj["data"] = json!({});
    }
    for (k, v) in strings {
        let text = match v {
            Value::String(s) => s,
            other => other.to_string(),
        };
        obj["data"][k] = json!(STANDARD.encode(text));
    }
}

/// Checks keys and base64 values of a binary map; returns the decoded size.
fn payload(obj: &Value, field: &str, causes: &mut Causes) -> usize {
    let Some(map) = keyed(obj, field) else {
        return 0;
    };
    let mut size = 0;
    for (k, v) in map {
        check_key(k, field, causes);
        match v.as_str().map(|s| STANDARD.decode(s)) {
            Some(Ok(bytes)) => size += bytes.len(),
            Some(Err(e)) => causes.push((format!("{field}[{k}]"), format!("Invalid value: {e}"))),
            None => causes.push((
                format!("{field}[{k}]"),
                "Invalid value: must be a base64-encoded string".into(),
            )),
        }
    }
    size
}

/// Upstream `IsConfigMapKey`.
fn check_key(key: &str, field: &str, causes: &mut Causes) {
    let chars_ok = !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    let problem = if key.len() > 253 {
        Some("must be no more than 253 characters".to_string())
    } else if !chars_ok {
        Some(
            "a valid config key must consist of alphanumeric characters, '-', '_' or '.' \
             (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is \
             '[-._a-zA-Z0-9]+')"
                .to_string(),
        )
    } else if key == "." || key == ".." {
        Some(format!("must not be '{key}'"))
    } else if key.starts_with("..") {
        Some("must not start with '..'".to_string())
    } else {
        None
    };
    if let Some(p) = problem {
        causes.push((
            format!("{field}[{key}]"),
            format!("Invalid value: \"{key}\": {p}"),
        ));
    }
}

fn check_size(size: usize, field: &str, causes: &mut Causes) {
    if size > MAX_SIZE {
        causes.push((
            field.to_string(),
            format!("Too long: must have at most {MAX_SIZE} bytes"),
        ));
    }
}

/// The keys a typed Secret must carry.
fn check_type(obj: &Value, causes: &mut Causes) {
    let data = keyed(obj, "data");
    let has = |k: &str| data.is_some_and(|d| d.contains_key(k));
    let mut require = |k: &str| causes.push((format!("data[{k}]"), "Required value".into()));
    match obj["type"].as_str().unwrap_or("Opaque") {
        "kubernetes.io/tls" => {
            for k in ["tls.crt", "tls.key"] {
                if !has(k) {
                    require(k);
                }
            }
        }
        "kubernetes.io/basic-auth" if !has("username") && !has("password") => {
            require("username");
            require("password");
        }
        "kubernetes.io/ssh-auth" if !has("ssh-privatekey") => require("ssh-privatekey"),
        "kubernetes.io/dockerconfigjson" => json_key(data, ".dockerconfigjson", causes),
        "kubernetes.io/dockercfg" => json_key(data, ".dockercfg", causes),
        "kubernetes.io/service-account-token" => {
            let named = obj
                .pointer("/metadata/annotations/kubernetes.io~1service-account.name")
                .and_then(Value::as_str)
                .is_some_and(|n| !n.is_empty());
            if !named {
                causes.push((
                    "metadata.annotations[kubernetes.io/service-account.name]".into(),
                    "Required value".into(),
                ));
            }
        }
        _ => {}
    }
}

/// A required key whose (base64) value must decode to JSON.
fn json_key(data: Option<&Map<String, Value>>, key: &str, causes: &mut Causes) {
    let field = format!("data[{key}]");
    let Some(value) = data.and_then(|d| d.get(key)) else {
        causes.push((field, "Required value".into()));
        return;
    };
    let decoded = value.as_str().and_then(|s| STANDARD.decode(s).ok());
    if let Some(bytes) = decoded
        && let Err(e) = serde_json::from_slice::<Value>(&bytes)
    {
        causes.push((
            field,
            format!("Invalid value: \"<secret contents redacted>\": {e}"),
        ));
    }
}

/// Upstream `ValidateSecretUpdate` / `ValidateConfigMapUpdate`.
fn check_update(kind: &Kind, obj: &Value, live: &Value, causes: &mut Causes) {
    if kind.plural == "secrets" && obj.get("type") != live.get("type") {
        causes.push((
            "type".into(),
            format!("Invalid value: {}: field is immutable", obj["type"]),
        ));
    }
    if live.get("immutable") != Some(&json!(true)) {
        return;
    }
    let forbidden = "Forbidden: field is immutable when `immutable` is set".to_string();
    if obj.get("immutable") != Some(&json!(true)) {
        causes.push(("immutable".into(), forbidden.clone()));
    }
    let fields: &[&str] = if kind.plural == "secrets" {
        &["data"]
    } else {
        &["data", "binaryData"]
    };
    for f in fields {
        let empty = |v: Option<&Value>| v.is_none_or(|v| v.as_object().is_some_and(Map::is_empty));
        let same = obj.get(*f) == live.get(*f) || (empty(obj.get(*f)) && empty(live.get(*f)));
        if !same {
            causes.push((f.to_string(), forbidden.clone()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::kinds;

    fn causes(plural: &str, obj: Value, live: Option<&Value>) -> Vec<(String, String)> {
        let mut obj = obj;
        match prepare(kinds::stored(plural).unwrap(), &mut obj, live) {
            Ok(()) => Vec::new(),
            Err(StoreError::Invalid { causes, .. }) => causes,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn string_data_is_merged_into_data_and_not_kept() {
        let mut s = json!({"metadata": {"name": "s"}, "data": {"a": "eA=="},
                           "stringData": {"a": "over", "b": "bee"}});
        prepare(kinds::stored("secrets").unwrap(), &mut s, None).unwrap();
        assert_eq!(s["data"], json!({"a": "b3Zlcg==", "b": "YmVl"}));
        assert_eq!(s["type"], "Opaque");
        assert!(s.get("stringData").is_none());
    }

    #[test]
    fn typed_secrets_need_their_keys() {
        let tls = causes(
            "secrets",
            json!({"type": "kubernetes.io/tls", "data": {}}),
            None,
        );
        let fields: Vec<&str> = tls.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(fields, ["data[tls.crt]", "data[tls.key]"]);
        let basic = causes(
            "secrets",
            json!({"type": "kubernetes.io/basic-auth", "stringData": {"password": "p"}}),
            None,
        );
        assert!(basic.is_empty(), "{basic:?}");
        let docker = causes(
            "secrets",
            json!({"type": "kubernetes.io/dockerconfigjson", "stringData": {".dockerconfigjson": "{nope"}}),
            None,
        );
        assert_eq!(docker[0].0, "data[.dockerconfigjson]");
        assert!(docker[0].1.contains("redacted"), "{docker:?}");
    }

    #[test]
    fn bad_base64_and_bad_keys_are_invalid() {
        let bad = causes("secrets", json!({"data": {"k": "not base64!"}}), None);
        assert_eq!(bad[0].0, "data[k]");
        let key = causes("configmaps", json!({"data": {"a/b": "x"}}), None);
        assert_eq!(key[0].0, "data[a/b]");
        let dup = causes(
            "configmaps",
            json!({"data": {"k": "x"}, "binaryData": {"k": "eA=="}}),
            None,
        );
        assert!(dup[0].1.contains("duplicate"), "{dup:?}");
    }

    #[test]
    fn immutable_objects_keep_their_data() {
        let live = json!({"immutable": true, "data": {"k": "v"}});
        let changed = causes(
            "configmaps",
            json!({"immutable": true, "data": {"k": "w"}}),
            Some(&live),
        );
        assert_eq!(changed[0].0, "data");
        let unset = causes("configmaps", json!({"data": {"k": "v"}}), Some(&live));
        assert_eq!(unset[0].0, "immutable");
        let same = causes(
            "configmaps",
            json!({"immutable": true, "data": {"k": "v"}, "metadata": {"labels": {"a": "b"}}}),
            Some(&live),
        );
        assert!(same.is_empty());
    }
}
