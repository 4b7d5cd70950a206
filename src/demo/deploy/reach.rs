//! Whether a Service URL reaches *this* cluster's demo: `deploy` and `run` print or use a
//! NodePort URL only once it answered from a pod that exists in the demo's namespace.
//!
//! Why: a NodePort on 127.0.0.1 that the cluster could not bind may be served by someone
//! else — another lab, or a kind cluster, which maps 30080 itself — and load and downtime
//! would then be measured there. The demo app names its pod in every response
//! (`x-resil-pod`, admin paths included, which no fault slows), so one request and one
//! Pod read tell the two apart. A lab that cannot bind a NodePort says why in the
//! Service's [`NODE_PORT_ERROR_ANNOTATION`], which the error quotes.
//!
//! Called by `deploy::command` and `run::plans::load_plan`; prints nothing.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, Service};
use kube::ResourceExt;
use kube::api::Api;

use super::super::manifests::SERVICE_NAME;
use crate::cluster::Target;

/// The annotation a lab sets on a Service whose NodePort it cannot bind:
/// `"<port>: <error>"`.
pub const NODE_PORT_ERROR_ANNOTATION: &str = "resil.dev/node-port-error";

/// The response header in which the demo app names its pod.
const POD_HEADER: &str = "x-resil-pod";

/// A path every demo app answers without applying faults (a hanging or failing pod still
/// names itself).
const PROBE_PATH: &str = "/admin/state";

/// How many probes before giving up, the pause between them and one probe's deadline:
/// together at most about 15 s, enough for a proxy that starts listening late.
const ATTEMPTS: u32 = 10;
const PAUSE: Duration = Duration::from_millis(500);
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// After this many answers from something that is not this cluster's demo, more
/// probes would only repeat them.
const FOREIGN_ANSWERS: u32 = 3;

/// What answered on a probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// A demo pod of this cluster: the URL is good.
    Ours(String),
    /// A demo app naming a pod that is not in the namespace: another cluster's.
    ForeignPod(String),
    /// An HTTP server that names no pod: not a demo app at all.
    NotTheDemo(u16),
    /// No HTTP answer (refused, reset, timed out).
    Nothing(String),
}

impl Answer {
    fn describe(&self, namespace: &str) -> String {
        match self {
            Answer::Ours(pod) => format!("answered by pod {pod}"),
            Answer::ForeignPod(pod) => format!(
                "it is answered by a demo pod named {pod}, which is not in namespace \
                 {namespace} of this cluster: another cluster or lab serves that port"
            ),
            Answer::NotTheDemo(code) => format!(
                "it is answered (HTTP {code}) by something that is not the demo app: another \
                 process serves that port"
            ),
            Answer::Nothing(why) => format!("nothing answers there ({why})"),
        }
    }
}

/// Why a URL was not confirmed.
#[derive(Debug, thiserror::Error)]
#[error(
    "{url} does not reach this cluster's demo: {why}.{reported} Deploy on another NodePort \
     with `resil deploy --node-port PORT` (30000-32767; or `deploy: {{node_port: PORT}}` in \
     a scenario), or stop what holds port {port}"
)]
pub struct Unreached {
    /// The URL probed.
    pub url: String,
    /// The port, for the advice.
    pub port: i32,
    /// The last answer, in words.
    pub why: String,
    /// What the cluster says about the port, if anything (with a leading space).
    pub reported: String,
}

/// Confirms that `url` (`http://HOST:node_port`) reaches a demo pod of `target`'s
/// namespace, retrying a few times (about 15 s at most) while nothing answers or the
/// answering pod is not found.
pub async fn confirm(target: &Target, url: &str, node_port: i32) -> Result<String, Unreached> {
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(PROBE_TIMEOUT)
        .build()
        .map_err(|e| {
            let answer = Answer::Nothing(e.to_string());
            unreached(url, node_port, &answer, &target.namespace, None)
        })?;
    let pods: Api<Pod> = Api::namespaced(target.client.clone(), &target.namespace);
    let mut foreign = 0;
    let mut last = Answer::Nothing("not probed".to_string());
    for attempt in 0..ATTEMPTS {
        if attempt > 0 {
            tokio::time::sleep(PAUSE).await;
        }
        last = probe(&http, url, &pods).await;
        match &last {
            Answer::Ours(pod) => return Ok(pod.clone()),
            Answer::Nothing(_) => {}
            Answer::ForeignPod(_) | Answer::NotTheDemo(_) => {
                foreign += 1;
                if foreign >= FOREIGN_ANSWERS {
                    break;
                }
            }
        }
    }
    let reported = reported_error(target).await;
    Err(unreached(
        url,
        node_port,
        &last,
        &target.namespace,
        reported,
    ))
}

/// One request, and (when a pod is named) one Pod read.
async fn probe(http: &reqwest::Client, url: &str, pods: &Api<Pod>) -> Answer {
    let probe_url = format!("{}{PROBE_PATH}", url.trim_end_matches('/'));
    let res = match http.get(&probe_url).send().await {
        Ok(res) => res,
        Err(e) => return Answer::Nothing(crate::cluster::error_chain(&e)),
    };
    let code = res.status().as_u16();
    let Some(pod) = res
        .headers()
        .get(POD_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
    else {
        return Answer::NotTheDemo(code);
    };
    match pods.get_opt(&pod).await {
        Ok(Some(_)) => Answer::Ours(pod),
        Ok(None) => Answer::ForeignPod(pod),
        // Unknown: ask again next attempt rather than blame the port.
        Err(e) => Answer::Nothing(format!("reading pod {pod}: {e}")),
    }
}

/// The Service's node-port error annotation, if the cluster set one.
async fn reported_error(target: &Target) -> Option<String> {
    let services: Api<Service> = Api::namespaced(target.client.clone(), &target.namespace);
    let service = services.get_opt(SERVICE_NAME).await.ok()??;
    service
        .annotations()
        .get(NODE_PORT_ERROR_ANNOTATION)
        .cloned()
}

fn unreached(
    url: &str,
    port: i32,
    last: &Answer,
    namespace: &str,
    reported: Option<String>,
) -> Unreached {
    Unreached {
        url: url.to_string(),
        port,
        why: last.describe(namespace),
        reported: reported
            .map(|r| {
                format!(
                    " The cluster reports on service/{SERVICE_NAME}: \
                     {NODE_PORT_ERROR_ANNOTATION}: {r}."
                )
            })
            .unwrap_or_default(),
    }
}
