//! `GET .../pods/{name}/log`: container output for `kubectl logs` (`-c`, `--previous`,
//! `--tail`, `-f`), read from the files the kubelet writes under the state directory:
//! `pods/<ns>_<pod>/<container>.log` (+ `.log.1`, the older rotated part) for the current
//! instance and `<container>.previous.log` (+ `.1`) for the one before. That layout is
//! owned by the kubelet's log writer; this module only reads it. Answers are text/plain,
//! as upstream's.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::Value;
use tokio::sync::mpsc;

use super::App;
use super::handlers::{Target, live, ns};
use super::status::{ApiError, ApiResult};

/// How often a followed log is checked for new output.
const FOLLOW_POLL: Duration = Duration::from_millis(200);

fn files(
    state_dir: &Path,
    namespace: &str,
    pod: &str,
    container: &str,
    previous: bool,
) -> (PathBuf, PathBuf) {
    let dir = state_dir.join("pods").join(format!("{namespace}_{pod}"));
    let base = if previous {
        format!("{container}.previous.log")
    } else {
        format!("{container}.log")
    };
    (dir.join(format!("{base}.1")), dir.join(base))
}

/// The container to read: named, or the pod's only one.
fn container(pod: &Value, name: &str, wanted: Option<&String>) -> ApiResult<String> {
    let names: Vec<String> = pod
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| c.get("name").and_then(Value::as_str).map(str::to_string))
        .collect();
    let chosen = match wanted {
        Some(c) if names.contains(c) => c.clone(),
        Some(c) => {
            return Err(ApiError::bad_request(format!(
                "container {c} is not valid for pod {name}"
            )));
        }
        None if names.len() == 1 => names[0].clone(),
        None => {
            return Err(ApiError::bad_request(format!(
                "a container name must be specified for pod {name}, choose one of: [{}]",
                names.join(" ")
            )));
        }
    };
    // The name becomes a file name under the state directory. The API refuses such names
    // at write time; a pod stored before that rule (an old state file) is caught here.
    if !crate::kubelet::logs::is_dns1123_label(&chosen) {
        return Err(ApiError::bad_request(format!(
            "container name {chosen:?} in pod {name} is not a DNS-1123 label; its logs are \
             not served (recreate the pod with a valid container name)"
        )));
    }
    Ok(chosen)
}

/// Answers a log request.
pub fn serve(
    app: Arc<App>,
    target: &Target,
    name: &str,
    query: &HashMap<String, String>,
) -> ApiResult<Response> {
    let pod = live(&app, target, name)?;
    let container = container(&pod, name, query.get("container"))?;
    let flag = |k: &str| query.get(k).is_some_and(|v| v == "true" || v == "1");
    let previous = flag("previous");
    let (older, current) = files(&app.state_dir, ns(target), name, &container, previous);
    let mut text = match std::fs::read(&current) {
        Ok(bytes) => {
            let mut all = std::fs::read(&older).unwrap_or_default();
            all.extend(bytes);
            all
        }
        Err(_) if previous => {
            return Err(ApiError::bad_request(format!(
                "previous terminated container \"{container}\" in pod \"{name}\" not found"
            )));
        }
        Err(_) => {
            return Err(ApiError::bad_request(format!(
                "container \"{container}\" in pod \"{name}\" is waiting to start: ContainerCreating"
            )));
        }
    };
    if let Some(tail) = query.get("tailLines") {
        let n: usize = tail
            .parse()
            .map_err(|_| ApiError::bad_request(format!("invalid tailLines {tail:?}")))?;
        text = tail_lines(&text, n).to_vec();
    }
    if let Some(limit) = query
        .get("limitBytes")
        .and_then(|l| l.parse::<usize>().ok())
    {
        text.truncate(limit);
    }
    let headers = [(header::CONTENT_TYPE, "text/plain")];
    if !flag("follow") || previous {
        return Ok((StatusCode::OK, headers, text).into_response());
    }
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    let offset = std::fs::metadata(&current).map(|m| m.len()).unwrap_or(0);
    let namespace = ns(target).to_string();
    let pod_name = name.to_string();
    tokio::spawn(async move {
        if tx.send(Bytes::from(text)).await.is_ok() {
            follow(app, current, offset, namespace, pod_name, tx).await;
        }
    });
    let body = Body::from_stream(futures::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|b| (Ok::<_, std::convert::Infallible>(b), rx))
    }));
    Ok((StatusCode::OK, headers, body).into_response())
}

/// The last `n` lines of `text`.
fn tail_lines(text: &[u8], n: usize) -> &[u8] {
    if n == 0 {
        return &[];
    }
    let body = text.strip_suffix(b"\n").unwrap_or(text);
    let mut start = body.len();
    for _ in 0..n {
        match body[..start].iter().rposition(|b| *b == b'\n') {
            Some(i) => start = i,
            None => return text,
        }
    }
    &text[start + 1..]
}

/// Sends output appended after `offset` until the pod is gone or has finished (`Succeeded`
/// or `Failed`: its containers wrote their last, as a kubelet ends the stream when the
/// container exits), the lab stops or the client leaves. A file that shrank was rotated:
/// continue from its start.
async fn follow(
    app: Arc<App>,
    path: PathBuf,
    mut offset: u64,
    namespace: String,
    pod: String,
    tx: mpsc::Sender<Bytes>,
) {
    let mut tick = tokio::time::interval(FOLLOW_POLL);
    loop {
        tokio::select! {
            // Poll the file for growth.
            _ = tick.tick() => {}
            // The lab is shutting down.
            _ = app.shutdown.cancelled() => return,
            // The client went away.
            _ = tx.closed() => return,
        }
        // Looked at before the last read: what a finished pod wrote is all there.
        let over = app.store.get("pods", &namespace, &pod).is_none_or(|p| {
            matches!(
                p.pointer("/status/phase")
                    .and_then(serde_json::Value::as_str),
                Some("Succeeded" | "Failed")
            )
        });
        let len = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        if len < offset {
            offset = 0;
        }
        if len > offset {
            let Ok(bytes) = std::fs::read(&path) else {
                continue;
            };
            let start = usize::try_from(offset)
                .unwrap_or(usize::MAX)
                .min(bytes.len());
            offset = bytes.len() as u64;
            if tx
                .send(Bytes::copy_from_slice(&bytes[start..]))
                .await
                .is_err()
            {
                return;
            }
        }
        if over {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_container_name_that_is_a_path_is_never_read() {
        let pod = serde_json::json!({"spec": {"containers": [{"name": "../../x"}]}});
        let err = container(&pod, "web", None).unwrap_err();
        assert_eq!(err.code, StatusCode::BAD_REQUEST);
        let wanted = "../../x".to_string();
        assert_eq!(
            container(&pod, "web", Some(&wanted)).unwrap_err().code,
            StatusCode::BAD_REQUEST
        );
    }

    #[test]
    fn tail_keeps_the_last_lines() {
        assert_eq!(tail_lines(b"a\nb\nc\n", 2), b"b\nc\n");
        assert_eq!(tail_lines(b"a\nb\nc", 1), b"c");
        assert_eq!(tail_lines(b"a\nb\n", 5), b"a\nb\n");
        assert_eq!(tail_lines(b"a\nb", 0), b"");
    }
}
