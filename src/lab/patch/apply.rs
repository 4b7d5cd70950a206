//! Server-side apply (placeholder while the strategic engine is tested).
use serde_json::Value;

use super::PatchError;

pub(super) fn apply(
    _live: Option<&Value>,
    _body: &Value,
    _manager: &str,
    _kind: &str,
) -> Result<Value, PatchError> {
    Err(PatchError::BadRequest(
        "server-side apply is not built yet".into(),
    ))
}
