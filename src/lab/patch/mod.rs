//! Patching a live object: JSON merge patch (RFC 7386) and JSON patch (RFC 6902).
//! Strategic merge and server-side apply are not implemented in this module yet and are
//! refused with a clear error. Called by the API's PATCH handler.

use serde_json::Value;

/// A patch document, by content type.
#[derive(Debug, Clone, Copy)]
pub enum Patch<'a> {
    /// `application/merge-patch+json` (RFC 7386).
    Merge(&'a Value),
    /// `application/json-patch+json` (RFC 6902).
    Json(&'a Value),
    /// `application/strategic-merge-patch+json`.
    Strategic(&'a Value),
    /// `application/apply-patch+yaml` (body already parsed from JSON or YAML).
    Apply {
        /// The applied configuration.
        body: &'a Value,
        /// The field manager.
        manager: &'a str,
        /// Take over conflicting fields.
        force: bool,
    },
}

/// Why a patch could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum PatchError {
    /// The patch document is malformed (400 BadRequest).
    #[error("{0}")]
    BadRequest(String),
    /// The patch applies but the result is invalid, or a JSON-patch `test` failed
    /// (422 Invalid).
    #[error("{0}")]
    Invalid(String),
}

/// Applies `patch` to `live` (None only for Apply) and returns the whole new object.
pub fn apply(live: Option<&Value>, patch: Patch<'_>, _kind: &str) -> Result<Value, PatchError> {
    let Some(live) = live else {
        return Err(PatchError::BadRequest(
            "strategic merge / apply not supported yet".to_string(),
        ));
    };
    match patch {
        Patch::Merge(p) => {
            let mut doc = live.clone();
            json_patch::merge(&mut doc, p);
            Ok(doc)
        }
        Patch::Json(p) => {
            let ops: json_patch::Patch = serde_json::from_value(p.clone())
                .map_err(|e| PatchError::BadRequest(format!("invalid JSON patch: {e}")))?;
            let mut doc = live.clone();
            json_patch::patch(&mut doc, &ops).map_err(|e| PatchError::Invalid(e.to_string()))?;
            Ok(doc)
        }
        Patch::Strategic(_) | Patch::Apply { .. } => Err(PatchError::BadRequest(
            "strategic merge / apply not supported yet".to_string(),
        )),
    }
}
