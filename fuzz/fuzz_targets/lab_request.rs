//! The lab's API, request by request: verb, path pieces, query, content type and body
//! (JSON, YAML, the four patch types, raw bytes) driven through the real axum router and
//! handlers in-process (`resil_lab::in_process::api_router`) over a fresh in-memory store,
//! authenticated. A sequence of up to eight requests per input lets one request create
//! what the next patches, lists, watches or deletes.
//!
//! Checked beyond "no panic": no answer is a 5xx (every failure on client input is a 4xx
//! Status), every answer's body ends, and the store still saves and reloads afterwards
//! (`persist::save` then `persist::load`): whatever the lab accepts must survive a restart,
//! however deep the bodies (`Nested` bodies go past the depth limit on purpose).
//!
//! Left out on purpose: `/proxy` paths (they connect to loopback ports, which the fuzzer
//! must not reach on a shared machine).

#![no_main]

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use arbitrary::{Arbitrary, Result as ArbResult, Unstructured};
use axum::body::Body;
use http_body_util::BodyExt;
use libfuzzer_sys::fuzz_target;
use resil_lab::Store;
use resil_lab::in_process::api_router;
use resil_lab::store::persist;
use resil_fuzz::{Json, KUBECTL_PATCHES, MANIFESTS, TEMPLATES, pointer, set, value, word};
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

const TOKEN: &str = "fuzz-token";
/// Requests per input: enough to create, change and read back an object.
const MAX_REQUESTS: usize = 8;

static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime builds")
});

static STATE_DIR: LazyLock<tempfile::TempDir> = LazyLock::new(resil_fuzz::scratch_dir);
/// Where the store is saved and reloaded after each input.
static SAVE_DIR: LazyLock<tempfile::TempDir> = LazyLock::new(resil_fuzz::scratch_dir);

#[derive(Debug, Arbitrary)]
enum Verb {
    Get,
    List,
    Watch,
    Create,
    Replace,
    Patch(PatchType),
    Delete,
    DeleteCollection,
    Head,
    Options,
    Trace,
}

#[derive(Debug, Arbitrary, Clone, Copy)]
enum PatchType {
    Merge,
    Json,
    Strategic,
    Apply,
    Unknown,
}

/// (prefix, plural, namespaced)
const RESOURCES: &[(&str, &str, bool)] = &[
    ("/api/v1", "namespaces", false),
    ("/api/v1", "pods", true),
    ("/api/v1", "services", true),
    ("/api/v1", "endpoints", true),
    ("/api/v1", "events", true),
    ("/apis/apps/v1", "deployments", true),
    ("/apis/autoscaling/v2", "horizontalpodautoscalers", true),
    ("/apis/coordination.k8s.io/v1", "leases", true),
    ("/apis/metrics.k8s.io/v1beta1", "pods", true),
    ("/apis/apps/v1beta1", "deployments", true),
    ("/api/v1", "nodes", false),
];

const FIXED: &[&str] = &[
    "/version",
    "/api",
    "/api/",
    "/apis",
    "/apis/",
    "/api/v1",
    "/apis/apps/v1",
    "/apis/autoscaling/v2",
    "/apis/metrics.k8s.io/v1beta1",
    "/openapi/v2",
    "/openapi/v3",
    "/resil/v1/status",
    "/",
    "/api/v1/namespaces/default/status",
    "/api/v1/namespaces/default/finalize",
    "/healthz",
];

#[derive(Debug, Arbitrary)]
enum Target {
    Resource {
        resource: u8,
        namespace: Namespace,
        all_namespaces: bool,
        name: Option<Name>,
        sub: Option<Sub>,
    },
    Fixed(u8),
    Raw(String),
}

#[derive(Debug, Arbitrary)]
enum Namespace {
    Default,
    KubeSystem,
    Other(String),
}

#[derive(Debug, Arbitrary)]
enum Name {
    Web,
    WebBlue,
    Default,
    Other(String),
}

#[derive(Debug, Arbitrary)]
enum Sub {
    Status,
    Scale,
    Log,
    Other(String),
}

#[derive(Debug, Arbitrary)]
enum QueryKey {
    LabelSelector,
    FieldSelector,
    ResourceVersion,
    ResourceVersionMatch,
    TimeoutSeconds,
    AllowWatchBookmarks,
    SendInitialEvents,
    DryRun,
    FieldManager,
    Force,
    GracePeriodSeconds,
    PropagationPolicy,
    IncludeObject,
    Limit,
    Continue,
    Container,
    Previous,
    Follow,
    TailLines,
    SinceSeconds,
    LimitBytes,
    Timestamps,
    Watch,
    Other(String),
}

impl QueryKey {
    fn name(&self) -> &str {
        match self {
            QueryKey::LabelSelector => "labelSelector",
            QueryKey::FieldSelector => "fieldSelector",
            QueryKey::ResourceVersion => "resourceVersion",
            QueryKey::ResourceVersionMatch => "resourceVersionMatch",
            QueryKey::TimeoutSeconds => "timeoutSeconds",
            QueryKey::AllowWatchBookmarks => "allowWatchBookmarks",
            QueryKey::SendInitialEvents => "sendInitialEvents",
            QueryKey::DryRun => "dryRun",
            QueryKey::FieldManager => "fieldManager",
            QueryKey::Force => "force",
            QueryKey::GracePeriodSeconds => "gracePeriodSeconds",
            QueryKey::PropagationPolicy => "propagationPolicy",
            QueryKey::IncludeObject => "includeObject",
            QueryKey::Limit => "limit",
            QueryKey::Continue => "continue",
            QueryKey::Container => "container",
            QueryKey::Previous => "previous",
            QueryKey::Follow => "follow",
            QueryKey::TailLines => "tailLines",
            QueryKey::SinceSeconds => "sinceSeconds",
            QueryKey::LimitBytes => "limitBytes",
            QueryKey::Timestamps => "timestamps",
            QueryKey::Watch => "watch",
            QueryKey::Other(s) => s,
        }
    }
}

#[derive(Debug)]
struct QueryValue(String);

impl<'a> Arbitrary<'a> for QueryValue {
    fn arbitrary(u: &mut Unstructured<'a>) -> ArbResult<Self> {
        Ok(QueryValue(match u.int_in_range(0..=5)? {
            0 => "true".to_string(),
            1 => "false".to_string(),
            2 => u.int_in_range(-1i64..=5)?.to_string(),
            3 => u.arbitrary::<i64>()?.to_string(),
            4 => word(u)?,
            _ => u.arbitrary()?,
        }))
    }
}

#[derive(Debug, Arbitrary)]
enum ContentType {
    /// What kubectl sends for the verb.
    Natural,
    None,
    Json,
    Yaml,
    MergePatch,
    JsonPatch,
    StrategicPatch,
    ApplyPatch,
    Protobuf,
    Other(String),
}

/// One change to a template: `value` at `pointer`.
#[derive(Debug)]
struct Edit {
    pointer: String,
    value: Value,
}

impl<'a> Arbitrary<'a> for Edit {
    fn arbitrary(u: &mut Unstructured<'a>) -> ArbResult<Self> {
        Ok(Edit {
            pointer: pointer(u)?,
            value: value(u, 2)?,
        })
    }
}

/// One RFC 6902 operation, with dictionary paths.
#[derive(Debug)]
struct JsonOp(Value);

impl<'a> Arbitrary<'a> for JsonOp {
    fn arbitrary(u: &mut Unstructured<'a>) -> ArbResult<Self> {
        const OPS: &[&str] = &["add", "remove", "replace", "move", "copy", "test", "bogus"];
        let mut op = serde_json::Map::new();
        op.insert("op".into(), Value::String(u.choose(OPS)?.to_string()));
        op.insert("path".into(), Value::String(pointer(u)?));
        if u.arbitrary()? {
            op.insert("from".into(), Value::String(pointer(u)?));
        }
        if u.arbitrary()? {
            op.insert("value".into(), value(u, 3)?);
        }
        Ok(JsonOp(Value::Object(op)))
    }
}

#[derive(Debug, Arbitrary)]
enum BodySource {
    Empty,
    /// A stored-kind template with edits.
    Template {
        index: u8,
        edits: Vec<Edit>,
    },
    /// A kubectl-made patch body with edits.
    Kubectl {
        index: u8,
        edits: Vec<Edit>,
    },
    /// A JSON-patch document.
    Ops(Vec<JsonOp>),
    /// Any JSON value.
    Value(Json),
    /// A manifest file's text as is (YAML).
    Manifest(u8),
    /// Any bytes.
    Raw(Vec<u8>),
    /// A protobuf body kubectl sent (`crates/lab/tests/fixtures/protobuf/`), with some
    /// bytes overwritten: (offset, byte).
    Protobuf {
        index: u8,
        edits: Vec<(u16, u8)>,
    },
    /// A template with a value nested `depth` levels under `spec.x` (arrays and objects
    /// by the bits of `shape`): the depth limit's edge, reached without luck.
    Nested {
        index: u8,
        depth: u8,
        shape: u64,
    },
}

#[derive(Debug, Arbitrary)]
struct Request {
    verb: Verb,
    target: Target,
    query: Vec<(QueryKey, QueryValue)>,
    content_type: ContentType,
    body: BodySource,
    /// Send the body as YAML text rather than JSON (the lab's YAML is a superset).
    yaml: bool,
    /// Present no token, or a wrong one, once in a while.
    token: u8,
}

#[derive(Debug, Arbitrary)]
struct Input {
    requests: Vec<Request>,
}

fuzz_target!(|input: Input| {
    RUNTIME.block_on(run(input));
});

async fn run(input: Input) {
    let store = Arc::new(Store::new());
    let shutdown = CancellationToken::new();
    // Watches and log follows end at once: the fuzzer wants their first answer only.
    shutdown.cancel();
    let router = api_router(store.clone(), TOKEN, STATE_DIR.path(), shutdown);
    for request in input.requests.iter().take(MAX_REQUESTS) {
        let Some(http) = build(request) else { continue };
        let described = format!("{} {}", http.method(), http.uri());
        let response = router
            .clone()
            .oneshot(http)
            .await
            .unwrap_or_else(|never| match never {});
        let status = response.status();
        let body = tokio::time::timeout(Duration::from_secs(10), response.into_body().collect())
            .await
            .unwrap_or_else(|_| panic!("{described}: the answer's body did not end in 10 s"))
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        assert!(
            !status.is_server_error(),
            "{described}: answered {status}: {}",
            String::from_utf8_lossy(&body)
        );
    }
    persist::save(&store, SAVE_DIR.path()).expect("the store saves");
    if let Err(e) = persist::load(SAVE_DIR.path()) {
        panic!("what the lab accepted does not reload: {e}");
    }
}

fn build(request: &Request) -> Option<http::Request<Body>> {
    let (method, watch, collection) = match request.verb {
        Verb::Get => ("GET", false, false),
        Verb::List => ("GET", false, true),
        Verb::Watch => ("GET", true, true),
        Verb::Create => ("POST", false, true),
        Verb::Replace => ("PUT", false, false),
        Verb::Patch(_) => ("PATCH", false, false),
        Verb::Delete => ("DELETE", false, false),
        Verb::DeleteCollection => ("DELETE", false, true),
        Verb::Head => ("HEAD", false, false),
        Verb::Options => ("OPTIONS", false, false),
        Verb::Trace => ("TRACE", false, false),
    };
    let (path, name) = path(&request.target, collection);
    if path.contains("proxy") {
        return None;
    }
    let mut query: Vec<(String, String)> = request
        .query
        .iter()
        .take(6)
        .map(|(k, v)| (k.name().to_string(), v.0.clone()))
        .collect();
    if watch {
        query.push(("watch".into(), "true".into()));
    }
    let mut uri = path;
    for (i, (k, v)) in query.iter().enumerate() {
        uri.push(if i == 0 { '?' } else { '&' });
        uri.push_str(&encode(k));
        uri.push('=');
        uri.push_str(&encode(v));
    }
    let body = body(request, name.as_deref());
    let content_type = match &request.content_type {
        ContentType::Natural => Some(match request.verb {
            Verb::Patch(PatchType::Merge) => "application/merge-patch+json",
            Verb::Patch(PatchType::Json) => "application/json-patch+json",
            Verb::Patch(PatchType::Strategic) => "application/strategic-merge-patch+json",
            Verb::Patch(PatchType::Apply) => "application/apply-patch+yaml",
            Verb::Patch(PatchType::Unknown) => "application/x-unknown-patch",
            _ if request.yaml => "application/yaml",
            _ => "application/json",
        }),
        ContentType::None => None,
        ContentType::Json => Some("application/json"),
        ContentType::Yaml => Some("application/yaml; charset=utf-8"),
        ContentType::MergePatch => Some("application/merge-patch+json"),
        ContentType::JsonPatch => Some("application/json-patch+json"),
        ContentType::StrategicPatch => Some("application/strategic-merge-patch+json"),
        ContentType::ApplyPatch => Some("application/apply-patch+yaml"),
        ContentType::Protobuf => Some("application/vnd.kubernetes.protobuf"),
        ContentType::Other(s) => Some(s.as_str()),
    };
    let mut builder = http::Request::builder().method(method).uri(uri);
    match request.token % 32 {
        0 => {}
        1 => builder = builder.header("authorization", "Bearer fuzz-tokeN"),
        _ => builder = builder.header("authorization", format!("Bearer {TOKEN}")),
    }
    if let Some(ct) = content_type {
        builder = builder.header("content-type", ct);
    }
    builder.body(Body::from(body)).ok()
}

/// The URL path and the object name in it.
fn path(target: &Target, collection: bool) -> (String, Option<String>) {
    match target {
        Target::Fixed(i) => (FIXED[*i as usize % FIXED.len()].to_string(), None),
        Target::Raw(raw) => (raw.clone(), None),
        Target::Resource {
            resource,
            namespace,
            all_namespaces,
            name,
            sub,
        } => {
            let (prefix, plural, namespaced) = RESOURCES[*resource as usize % RESOURCES.len()];
            let mut path = prefix.to_string();
            if namespaced && !(collection && *all_namespaces) {
                let ns = match namespace {
                    Namespace::Default => "default",
                    Namespace::KubeSystem => "kube-system",
                    Namespace::Other(s) => s.as_str(),
                };
                path.push_str("/namespaces/");
                path.push_str(&encode(ns));
            }
            path.push('/');
            path.push_str(plural);
            if collection {
                return (path, None);
            }
            let name = match name {
                None => return (path, None),
                Some(Name::Web) => "web",
                Some(Name::WebBlue) => "web-blue",
                Some(Name::Default) => "default",
                Some(Name::Other(s)) => s.as_str(),
            };
            path.push('/');
            path.push_str(&encode(name));
            match sub {
                None => {}
                Some(Sub::Status) => path.push_str("/status"),
                Some(Sub::Scale) => path.push_str("/scale"),
                Some(Sub::Log) => path.push_str("/log"),
                Some(Sub::Other(s)) => {
                    path.push('/');
                    path.push_str(&encode(s));
                }
            }
            (path, Some(name.to_string()))
        }
    }
}

/// Protobuf bodies as kubectl v1.32 sent them (every one is non-empty).
const PROTOBUF_BODIES: &[&[u8]] = &[
    include_bytes!("../../crates/lab/tests/fixtures/protobuf/namespace.pb"),
    include_bytes!("../../crates/lab/tests/fixtures/protobuf/deployment.pb"),
    include_bytes!("../../crates/lab/tests/fixtures/protobuf/service-clusterip.pb"),
    include_bytes!("../../crates/lab/tests/fixtures/protobuf/configmap.pb"),
    include_bytes!("../../crates/lab/tests/fixtures/protobuf/poddisruptionbudget.pb"),
];

fn body(request: &Request, name: Option<&str>) -> Vec<u8> {
    let value = match &request.body {
        BodySource::Empty => return Vec::new(),
        BodySource::Raw(bytes) => return bytes.clone(),
        BodySource::Protobuf { index, edits } => {
            let mut bytes = PROTOBUF_BODIES[*index as usize % PROTOBUF_BODIES.len()].to_vec();
            for (at, byte) in edits.iter().take(8) {
                let len = bytes.len();
                bytes[*at as usize % len] = *byte;
            }
            return bytes;
        }
        BodySource::Manifest(i) => return MANIFESTS[*i as usize % MANIFESTS.len()].into(),
        BodySource::Value(Json(v)) => v.clone(),
        BodySource::Ops(ops) => Value::Array(ops.iter().map(|o| o.0.clone()).collect()),
        BodySource::Template { index, edits } => {
            let mut v = template(*index, name);
            for e in edits.iter().take(8) {
                set(&mut v, &e.pointer, e.value.clone());
            }
            v
        }
        BodySource::Nested {
            index,
            depth,
            shape,
        } => {
            let mut v = template(*index, name);
            let mut inner = Value::String("deep".into());
            for level in 0..*depth as u32 {
                inner = if shape.rotate_right(level) & 1 == 1 {
                    Value::Array(vec![inner])
                } else {
                    serde_json::json!({ "x": inner })
                };
            }
            set(&mut v, "/spec/x", inner);
            v
        }
        BodySource::Kubectl { index, edits } => {
            let mut v = KUBECTL_PATCHES[*index as usize % KUBECTL_PATCHES.len()].clone();
            for e in edits.iter().take(8) {
                set(&mut v, &e.pointer, e.value.clone());
            }
            v
        }
    };
    if request.yaml {
        serde_saphyr::to_string(&value)
            .map(String::into_bytes)
            .unwrap_or_else(|_| value.to_string().into_bytes())
    } else {
        value.to_string().into_bytes()
    }
}

/// A stored-kind template named as the URL names it, in the namespace the lab has.
fn template(index: u8, name: Option<&str>) -> Value {
    let mut v = TEMPLATES[index as usize % TEMPLATES.len()].clone();
    if let Some(name) = name {
        set(&mut v, "/metadata/name", Value::String(name.to_string()));
    }
    set(
        &mut v,
        "/metadata/namespace",
        Value::String("default".into()),
    );
    v
}

/// Percent-encodes everything but the unreserved characters.
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
