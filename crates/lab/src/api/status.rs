//! API errors as Kubernetes `metav1.Status` bodies with the right HTTP code, `reason` and
//! `details` — what kube-rs (`Error::Api`, `is_not_found`) and kubectl key on. Also the
//! JSON response helper every handler uses (Content-Type is always application/json).
//!
//! Handlers return [`ApiResult`] and use `?`: a [`StoreError`] becomes its Status through
//! `From`, and [`ApiError`]'s `IntoResponse` writes the body with its HTTP code.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Value, json};

use crate::patch::PatchError;
use crate::store::{Kind, StoreError, kinds};

/// A JSON response, serialized straight from `body` (a Table or a list borrows the
/// store's objects rather than copying them into one tree first).
pub fn json_response(code: StatusCode, body: &(impl Serialize + ?Sized)) -> Response {
    match serde_json::to_vec(body) {
        Ok(bytes) => (code, [(header::CONTENT_TYPE, "application/json")], bytes).into_response(),
        // Only a map with keys that are not strings fails to serialize, and no answer
        // holds one; should one ever, the client gets a Status rather than a dropped
        // connection.
        Err(e) => ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            format!("cannot encode the answer: {e}"),
        )
        .into_response(),
    }
}

/// A failed request, rendered as a Status.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status (also the Status body's `code`).
    pub code: StatusCode,
    /// Status `reason` (NotFound, Conflict, ...).
    pub reason: &'static str,
    /// Human message.
    pub message: String,
    /// Status `details`, if any.
    pub details: Option<Value>,
}

/// Handler result.
pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    fn new(code: StatusCode, reason: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            reason,
            message: message.into(),
            details: None,
        }
    }

    fn with_details(mut self, kind: &Kind, name: &str) -> ApiError {
        let mut d = json!({"group": kind.group, "kind": kind.plural});
        if !name.is_empty() {
            d["name"] = json!(name);
        }
        self.details = Some(d);
        self
    }

    /// 400 BadRequest.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "BadRequest", message)
    }

    /// 503 ServiceUnavailable.
    pub fn service_unavailable(message: impl Into<String>) -> ApiError {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailable",
            message,
        )
    }

    /// 401 Unauthorized.
    pub fn unauthorized() -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "Unauthorized", "Unauthorized")
    }

    /// 404 for a URL that names no resource.
    pub fn no_route() -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "NotFound",
            "the server could not find the requested resource",
        )
    }

    /// 404 for a missing object.
    pub fn not_found(kind: &Kind, name: &str) -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("{} \"{name}\" not found", kind.qualified()),
        )
        .with_details(kind, name)
    }

    /// 405 MethodNotAllowed.
    pub fn method_not_allowed(method: &str, what: &str) -> ApiError {
        ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            format!(
                "the server does not allow this method on the requested resource ({method} {what})"
            ),
        )
    }

    /// 413 RequestEntityTooLarge.
    pub fn too_large(limit: usize) -> ApiError {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestEntityTooLarge",
            format!("the request body is larger than the limit of {limit} bytes"),
        )
    }

    /// 408 Timeout: the request body did not arrive in time.
    pub fn body_timeout(limit: std::time::Duration) -> ApiError {
        ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "Timeout",
            format!(
                "the request body did not arrive within {}s; send it at once",
                limit.as_secs_f64()
            ),
        )
    }

    /// 415 UnsupportedMediaType.
    pub fn unsupported_media_type(content_type: &str, accepted: &[&str]) -> ApiError {
        ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format ({content_type:?}) - accepted media types include: {}",
                accepted.join(", ")
            ),
        )
    }

    /// 422 Invalid with one cause per (field, message). The cause's `reason` follows the
    /// message's opening words, as upstream's field errors do (`Required value` is
    /// FieldValueRequired, `Duplicate value` FieldValueDuplicate, ...).
    pub fn invalid(kind: &Kind, name: &str, causes: &[(String, String)]) -> ApiError {
        let text: Vec<String> = causes
            .iter()
            .map(|(f, m)| {
                if f.is_empty() {
                    m.clone()
                } else {
                    format!("{f}: {m}")
                }
            })
            .collect();
        let mut e = ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Invalid",
            format!("{} \"{name}\" is invalid: {}", kind.kind, text.join(", ")),
        )
        .with_details(kind, name);
        if let Some(d) = e.details.as_mut() {
            d["kind"] = json!(kind.kind);
            d["causes"] = causes
                .iter()
                .map(|(f, m)| json!({"reason": cause_reason(m), "message": m, "field": f}))
                .collect();
        }
        e
    }

    /// Maps a patch failure to its Status.
    pub fn from_patch(kind: &Kind, name: &str, err: PatchError) -> ApiError {
        match err {
            PatchError::BadRequest(m) => ApiError::bad_request(m),
            PatchError::Invalid(m) => ApiError::invalid(kind, name, &[(String::new(), m)]),
            e @ PatchError::TooManyOperations { .. } => ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "RequestEntityTooLarge",
                e.to_string(),
            ),
            PatchError::TooDeep { field } => ApiError::invalid(
                kind,
                name,
                &[(field, crate::store::bounds::depth_message())],
            ),
        }
    }

    /// The Status object.
    pub fn to_status(&self) -> Value {
        let mut s = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code.as_u16(),
        });
        if let Some(d) = &self.details {
            s["details"] = d.clone();
        }
        s
    }
}

/// A store refusal answers with its Status, so handlers use `?` on store calls.
impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> ApiError {
        let kind_of = |r: &str| kinds::stored(r);
        match &err {
            StoreError::NotFound { resource, name } => match kind_of(resource) {
                Some(k) => ApiError::not_found(k, name),
                None => ApiError::new(StatusCode::NOT_FOUND, "NotFound", err.to_string()),
            },
            StoreError::AlreadyExists { resource, name } => {
                let mut e = ApiError::new(StatusCode::CONFLICT, "AlreadyExists", err.to_string());
                if let Some(k) = kind_of(resource) {
                    e.message = format!("{} \"{name}\" already exists", k.qualified());
                    e = e.with_details(k, name);
                }
                e
            }
            StoreError::Conflict { resource, name } => {
                let mut e = ApiError::new(StatusCode::CONFLICT, "Conflict", err.to_string());
                if let Some(k) = kind_of(resource) {
                    e.message = format!(
                        "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; \
                         please apply your changes to the latest version and try again",
                        k.qualified()
                    );
                    e = e.with_details(k, name);
                }
                e
            }
            StoreError::Invalid {
                resource,
                name,
                causes,
            } => match kind_of(resource) {
                Some(k) => ApiError::invalid(k, name, causes),
                None => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "Invalid", err.to_string()),
            },
            StoreError::Forbidden(message) => {
                ApiError::new(StatusCode::FORBIDDEN, "Forbidden", message.clone())
            }
            StoreError::NamespaceTerminating {
                resource,
                name,
                namespace,
            } => {
                let mut e = ApiError::new(StatusCode::FORBIDDEN, "Forbidden", err.to_string());
                let group = resource.split_once('.').map_or("", |(_, g)| g);
                let plural = resource
                    .split_once('.')
                    .map_or(resource.as_str(), |(p, _)| p);
                e.details = Some(json!({"name": name, "group": group, "kind": plural,
                    "causes": [{"reason": "NamespaceTerminating",
                        "message": format!("namespace {namespace} is being terminated"),
                        "field": "metadata.namespace"}]}));
                e
            }
            StoreError::NamespaceNotFound(ns) => {
                let mut e = ApiError::new(StatusCode::NOT_FOUND, "NotFound", err.to_string());
                e.details = Some(json!({"name": ns, "kind": "namespaces"}));
                e
            }
        }
    }
}

/// Upstream's `CauseType` for a field error message (`field.ErrorType`'s text opens it).
fn cause_reason(message: &str) -> &'static str {
    const REASONS: &[(&str, &str)] = &[
        ("Required value", "FieldValueRequired"),
        ("Duplicate value", "FieldValueDuplicate"),
        ("Unsupported value", "FieldValueNotSupported"),
        ("Forbidden", "FieldValueForbidden"),
        ("Too long", "FieldValueTooLong"),
    ];
    REASONS
        .iter()
        .find(|(prefix, _)| message.starts_with(prefix))
        .map_or("FieldValueInvalid", |(_, reason)| reason)
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        json_response(self.code, &self.to_status())
    }
}

/// The Status a successful delete of a non-pod object answers with.
pub fn deleted_status(kind: &Kind, name: &str, uid: &str) -> Value {
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": {"name": name, "group": kind.group, "kind": kind.plural, "uid": uid},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(found: bool) -> ApiResult<&'static str> {
        let stored: Result<&'static str, StoreError> = if found {
            Ok("web")
        } else {
            Err(StoreError::Conflict {
                resource: "deployments",
                name: "web".into(),
            })
        };
        Ok(stored?)
    }

    #[test]
    fn a_store_conflict_behind_question_mark_answers_409_with_a_conflict_status() {
        assert_eq!(lookup(true).unwrap(), "web");
        let err = lookup(false).unwrap_err();
        assert_eq!(err.code, StatusCode::CONFLICT);
        let status = err.to_status();
        assert_eq!(status["code"], 409);
        assert_eq!(status["reason"], "Conflict");
        assert_eq!(status["details"]["name"], "web");
        assert_eq!(status["details"]["kind"], "deployments");
        let response = err.into_response();
        assert_eq!(response.status(), StatusCode::CONFLICT);
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
    }
}
