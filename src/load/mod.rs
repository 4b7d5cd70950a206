//! The load engine: open and closed models, HDR statistics, per-second timeline, per-colour attribution. Needs no cluster: it takes a URL.

use crate::Exit;
use crate::cli::{GlobalArgs, LoadArgs};

/// `resil load`
pub async fn command(_args: LoadArgs, _global: &GlobalArgs) -> anyhow::Result<Exit> {
    Err(crate::not_implemented("load"))
}
