//! Resource requests: parse the URL into (kind, namespace, name, subresource), then get,
//! list, create, replace, patch and delete against the store, plus the Deployment `/scale`
//! subresource and pod metrics. Watches are handed to `watch.rs`. Every failure is a
//! Status (`status.rs`); nothing here panics on client input.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Value, json};

use super::selector::Selector;
use super::status::{ApiError, ApiResult, deleted_status, json_response};
use super::table::{self, RowObject};
use super::{
    App, BodyFormat, content_type, discovery, parse_object, parse_value, read_body, validate,
    write_format,
};
use super::{patching, subresources};
use crate::store::{DeleteOptions, Deleted, Kind, Propagation, StoreError, WriteMode, kinds};

/// A resource URL, parsed.
#[derive(Debug)]
pub struct Target {
    /// The resource type.
    pub kind: &'static Kind,
    /// Namespace from the URL (None: cluster-scoped type or a cross-namespace list).
    pub namespace: Option<String>,
    /// Object name.
    pub name: Option<String>,
    /// `status`, `scale` or `log`.
    pub sub: Option<String>,
    /// `dryRun=All`: check and answer, store nothing.
    pub dry_run: bool,
}

enum Route {
    Resources(String, String),
    Object(Target),
}

fn route(path: &str) -> ApiResult<Route> {
    let segs: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
    let (group, version, rest) = match segs.as_slice() {
        ["api", v, rest @ ..] => ("", *v, rest),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return Err(ApiError::no_route()),
    };
    if rest.is_empty() {
        return Ok(Route::Resources(group.to_string(), version.to_string()));
    }
    let namespaced_path = rest[0] == "namespaces"
        && rest.len() >= 3
        && !(rest.len() == 3 && matches!(rest[2], "status" | "finalize"));
    let (namespace, rest) = if namespaced_path {
        (Some(rest[1]), &rest[2..])
    } else {
        (None, rest)
    };
    if rest.len() > 3 || rest.iter().any(|s| s.is_empty()) || namespace == Some("") {
        return Err(ApiError::no_route());
    }
    let kind = kinds::lookup(group, version, rest[0]).ok_or_else(ApiError::no_route)?;
    if namespace.is_some() && !kind.namespaced {
        return Err(ApiError::no_route());
    }
    let sub = rest.get(2).map(|s| s.to_string());
    match sub.as_deref() {
        None => {}
        Some("status") if kind.status => {}
        Some("scale") if matches!(kind.plural, "deployments" | "replicasets") => {}
        Some("log" | "binding" | "eviction") if kind.plural == "pods" => {}
        Some(verb @ ("exec" | "attach" | "portforward")) if kind.plural == "pods" => {
            return Err(ApiError::bad_request(unsupported_stream(verb)));
        }
        Some(_) => return Err(ApiError::no_route()),
    }
    Ok(Route::Object(Target {
        kind,
        namespace: namespace.map(str::to_string),
        name: rest.get(1).map(|s| s.to_string()),
        sub,
        dry_run: false,
    }))
}

/// Why the lab answers `kubectl exec`, `attach` and `port-forward` with a Status at once
/// rather than a stream: its pods are local processes, not containers, and have no
/// runtime to run a command in; what to do instead.
fn unsupported_stream(verb: &str) -> String {
    let instead = match verb {
        "portforward" => {
            "the pod already listens on this machine: connect to its IP and port \
             (`kubectl get pod -o wide`), or to its Service's NodePort on 127.0.0.1"
        }
        _ => {
            "read its output with `kubectl logs`, or reach its port at its IP (`kubectl get pod -o wide`)"
        }
    };
    let verb = if verb == "portforward" {
        "port-forward"
    } else {
        verb
    };
    format!(
        "the resil lab runs pods as local processes, not containers, and does not support \
         {verb}; {instead}"
    )
}

/// The fallback handler: every `/api/...` and `/apis/...` request not answered by a fixed
/// route.
pub async fn dispatch(State(app): State<Arc<App>>, req: Request) -> Response {
    match handle(app, req).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn handle(app: Arc<App>, req: Request) -> ApiResult<Response> {
    let (parts, body) = req.into_parts();
    let query: HashMap<String, String> = axum::extract::Query::try_from_uri(&parts.uri)
        .map(|q: axum::extract::Query<HashMap<String, String>>| q.0)
        .map_err(|e| ApiError::bad_request(format!("invalid query string: {e}")))?;
    let target = match route(parts.uri.path())? {
        Route::Resources(g, v) if parts.method == Method::GET => {
            return discovery::resources(&g, &v).ok_or_else(ApiError::no_route);
        }
        Route::Resources(..) => {
            return Err(ApiError::method_not_allowed(
                parts.method.as_str(),
                parts.uri.path(),
            ));
        }
        Route::Object(t) => t,
    };
    let mut target = target;
    target.dry_run = dry_run(&query)?;
    let m = &parts.method;
    let not_allowed = || ApiError::method_not_allowed(m.as_str(), parts.uri.path());
    if !target.kind.stored {
        return match (m, &target.name) {
            (&Method::GET, None) => subresources::metrics_list(&app, &target, &query),
            (&Method::GET, Some(name)) => subresources::metrics_get(&app, &target, name),
            _ => Err(not_allowed()),
        };
    }
    let flag = |k: &str| query.get(k).is_some_and(|v| v == "true" || v == "1");
    let table = table::wanted(
        &parts.headers,
        query.get("includeObject").map(String::as_str),
    );
    match (m.clone(), target.name.clone()) {
        (Method::GET, None) if flag("watch") => super::watch::serve(app, &target, &query, table),
        (Method::GET, None) => list(&app, &target, &query, table),
        (Method::GET, Some(name)) if target.sub.as_deref() == Some("log") => {
            super::logs::serve(app, &target, &name, &query)
        }
        (_, Some(_)) if target.sub.as_deref() == Some("log") => Err(not_allowed()),
        (Method::POST, Some(name))
            if matches!(target.sub.as_deref(), Some("binding" | "eviction")) =>
        {
            let bytes = read_body(body, app.body_timeout).await?;
            if target.sub.as_deref() == Some("binding") {
                super::eviction::binding(&app, &target, &name, &bytes)
            } else {
                super::eviction::eviction(&app, &target, &name, &bytes)
            }
        }
        (_, Some(_)) if matches!(target.sub.as_deref(), Some("binding" | "eviction")) => {
            Err(not_allowed())
        }
        (Method::GET, Some(name)) => get(&app, &target, &name, table),
        (Method::POST, None) if target.namespace.is_some() || !target.kind.namespaced => {
            let format = write_format(&parts.headers)?;
            let bytes = read_body(body, app.body_timeout).await?;
            let obj = parse_object(&bytes, format, target.kind, "")?;
            create(&app, &target, obj)
        }
        (Method::PUT, Some(name)) => {
            let format = write_format(&parts.headers)?;
            let bytes = read_body(body, app.body_timeout).await?;
            let obj = parse_object(&bytes, format, target.kind, &name)?;
            replace(&app, &target, &name, obj)
        }
        (Method::PATCH, Some(name)) => {
            let ct = content_type(&parts.headers);
            let bytes = read_body(body, app.body_timeout).await?;
            patching::patch(&app, &target, &name, &ct, &bytes, &query)
        }
        (Method::DELETE, Some(name)) => {
            let bytes = read_body(body, app.body_timeout).await?;
            delete(&app, &target, &name, &bytes, &query)
        }
        (Method::DELETE, None) => {
            let bytes = read_body(body, app.body_timeout).await?;
            delete_collection(&app, &target, &bytes, &query)
        }
        _ => Err(not_allowed()),
    }
}

/// `dryRun=All` (server-side dry run); any other value is refused as upstream does.
fn dry_run(query: &HashMap<String, String>) -> ApiResult<bool> {
    match query.get("dryRun").map(String::as_str) {
        None | Some("") => Ok(false),
        Some("All") => Ok(true),
        Some(other) => Err(ApiError::bad_request(format!(
            "Unsupported value for dryRun: {other:?}: supported values: \"All\""
        ))),
    }
}

/// Creates through the store (or previews the creation on a dry run).
pub(super) fn store_create(app: &App, target: &Target, obj: Value) -> ApiResult<Value> {
    let result = if target.dry_run {
        app.store.preview_create(target.kind, ns(target), obj)
    } else {
        app.store.create(target.kind, ns(target), obj)
    };
    Ok(result?)
}

/// Updates through the store (or previews the update on a dry run).
pub(super) fn store_update(
    app: &App,
    target: &Target,
    name: &str,
    obj: Value,
    mode: WriteMode,
) -> ApiResult<Value> {
    let result = if target.dry_run {
        app.store
            .preview_update(target.kind, ns(target), name, obj, mode)
    } else {
        app.store.update(target.kind, ns(target), name, obj, mode)
    };
    Ok(result?)
}

pub(super) fn ns(target: &Target) -> &str {
    target.namespace.as_deref().unwrap_or("")
}

/// `{Kind}List` with the list's resourceVersion (none for metrics, as upstream's
/// metrics server answers) and an `items` array (never omitted), serialized straight from
/// the items: a list of the store's shared objects is written without copying them.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ListBody<T> {
    kind: String,
    api_version: String,
    metadata: Value,
    items: Vec<T>,
}

pub fn list_body<T: Serialize>(kind: &Kind, items: Vec<T>, rv: Option<u64>) -> ListBody<T> {
    ListBody {
        kind: format!("{}List", kind.kind),
        api_version: kind.api_version(),
        metadata: match rv {
            Some(rv) => json!({"resourceVersion": rv.to_string()}),
            None => json!({}),
        },
        items,
    }
}

pub(super) fn selector(target: &Target, query: &HashMap<String, String>) -> ApiResult<Selector> {
    Selector::parse(
        query.get("labelSelector").map(String::as_str),
        query.get("fieldSelector").map(String::as_str),
        target.kind.plural,
    )
    .map_err(ApiError::bad_request)
}

fn list(
    app: &App,
    target: &Target,
    query: &HashMap<String, String>,
    table: Option<RowObject>,
) -> ApiResult<Response> {
    let sel = selector(target, query)?;
    // The store's shared objects, written into the answer in place, never copied.
    let (shared, rv) = app
        .store
        .list_shared(target.kind.plural, target.namespace.as_deref());
    let items = shared.iter().map(AsRef::as_ref).filter(|o| sel.matches(o));
    Ok(match table {
        Some(include) => json_response(
            StatusCode::OK,
            &table::table(target.kind, items, Some(rv), include),
        ),
        None => json_response(
            StatusCode::OK,
            &list_body(target.kind, items.collect(), Some(rv)),
        ),
    })
}

pub(super) fn live(app: &App, target: &Target, name: &str) -> ApiResult<Value> {
    app.store
        .get(target.kind.plural, ns(target), name)
        .ok_or_else(|| ApiError::not_found(target.kind, name))
}

fn get(app: &App, target: &Target, name: &str, table: Option<RowObject>) -> ApiResult<Response> {
    let obj = live(app, target, name)?;
    Ok(match (target.sub.as_deref(), table) {
        (Some("scale"), _) => json_response(StatusCode::OK, &subresources::scale_of(&obj)),
        (None, Some(include)) => json_response(
            StatusCode::OK,
            &table::table(target.kind, [&obj], None, include),
        ),
        _ => json_response(StatusCode::OK, &obj),
    })
}

/// 400 when the body names another type or namespace than the URL.
pub(super) fn check_body(kind: &Kind, target: &Target, obj: &Value, scale: bool) -> ApiResult<()> {
    let (want_av, want_kind) = if scale {
        ("autoscaling/v1".to_string(), "Scale")
    } else {
        (kind.api_version(), kind.kind)
    };
    let av = obj.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    let k = obj.get("kind").and_then(Value::as_str).unwrap_or("");
    if (!av.is_empty() && av != want_av) || (!k.is_empty() && k != want_kind) {
        return Err(ApiError::bad_request(format!(
            "the body is a {av}/{k}, but this URL takes {want_av}/{want_kind}"
        )));
    }
    let body_ns = obj
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or("");
    if kind.namespaced && !body_ns.is_empty() && body_ns != ns(target) {
        return Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        ));
    }
    Ok(())
}

/// Keeps what only the lab itself may write out of a client's write: a pod's real port
/// (annotation `resil.dev/port`, set by the kubelet; the pod proxy and Endpoints connect
/// to it) keeps its live value (None: absent), and a Deployment's pod template may not
/// carry one for its pods. Changes to these are ignored, as upstream ignores status in a
/// main-resource write.
pub(super) fn keep_server_fields(kind: &Kind, live: Option<&Value>, obj: &mut Value) {
    const PORT: &str = crate::controllers::pods::PORT_ANNOTATION;
    let annotations_at = match kind.plural {
        "pods" => "/metadata/annotations",
        "deployments" | "replicasets" => "/spec/template/metadata/annotations",
        _ => return,
    };
    let live_port = live
        .filter(|_| kind.plural == "pods")
        .and_then(|l| l.pointer(annotations_at))
        .and_then(|a| a.get(PORT))
        .cloned();
    match (obj.pointer_mut(annotations_at), live_port) {
        (Some(Value::Object(a)), Some(port)) => {
            a.insert(PORT.to_string(), port);
        }
        (Some(Value::Object(a)), None) => {
            a.remove(PORT);
        }
        (_, Some(port)) => {
            // The client sent no annotations map (or not a map): the live port stays.
            if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
                meta.insert("annotations".into(), json!({ PORT: port }));
            }
        }
        (_, None) => {}
    }
}

fn create(app: &App, target: &Target, mut obj: Value) -> ApiResult<Response> {
    check_body(target.kind, target, &obj, false)?;
    keep_server_fields(target.kind, None, &mut obj);
    validate::check(target.kind, &obj)?;
    let created = store_create(app, target, obj)?;
    Ok(json_response(StatusCode::CREATED, &created))
}

pub(super) fn mode(target: &Target) -> WriteMode {
    if target.sub.as_deref() == Some("status") {
        WriteMode::Status
    } else {
        WriteMode::Main
    }
}

fn replace(app: &App, target: &Target, name: &str, mut obj: Value) -> ApiResult<Response> {
    let scale = target.sub.as_deref() == Some("scale");
    check_body(target.kind, target, &obj, scale)?;
    let body_name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    if !body_name.is_empty() && body_name != name {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({body_name}) does not match the name on the URL ({name})"
        )));
    }
    if scale {
        let rv = obj
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let replicas = obj.pointer("/spec/replicas").cloned().unwrap_or(json!(0));
        return subresources::set_replicas(app, target, name, &replicas, &rv);
    }
    if mode(target) == WriteMode::Main {
        let current = app.store.get(target.kind.plural, ns(target), name);
        keep_server_fields(target.kind, current.as_ref(), &mut obj);
        validate::check(target.kind, &obj)?;
    }
    let updated = store_update(app, target, name, obj, mode(target))?;
    Ok(json_response(StatusCode::OK, &updated))
}

/// DeleteOptions from the body and the query (the query wins, as upstream).
/// Also says whether the body asks for a dry run (`"dryRun": ["All"]`, how kube sends it).
fn delete_options(
    bytes: &[u8],
    query: &HashMap<String, String>,
    kind: &Kind,
    name: &str,
) -> ApiResult<(DeleteOptions, bool)> {
    let body = if bytes.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        parse_value(bytes, BodyFormat::Json, kind, name)?
    };
    let mut opts = DeleteOptions {
        grace_period: body.get("gracePeriodSeconds").and_then(Value::as_i64),
        precondition_uid: body
            .pointer("/preconditions/uid")
            .and_then(Value::as_str)
            .map(str::to_string),
        precondition_rv: body
            .pointer("/preconditions/resourceVersion")
            .and_then(Value::as_str)
            .map(str::to_string),
        ..DeleteOptions::default()
    };
    if let Some(g) = query.get("gracePeriodSeconds") {
        opts.grace_period = Some(
            g.parse()
                .map_err(|_| ApiError::bad_request(format!("invalid gracePeriodSeconds {g:?}")))?,
        );
    }
    let mut policy = body
        .get("propagationPolicy")
        .and_then(Value::as_str)
        .map(str::to_string);
    if body.get("orphanDependents").and_then(Value::as_bool) == Some(true) {
        policy = Some("Orphan".into());
    }
    if let Some(p) = query.get("propagationPolicy") {
        policy = Some(p.clone());
    }
    opts.propagation = match policy.as_deref() {
        None | Some("Background") => Propagation::Background,
        Some("Foreground") => Propagation::Foreground,
        Some("Orphan") => Propagation::Orphan,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "propagationPolicy {other:?} is not one of Orphan, Background, Foreground"
            )));
        }
    };
    let dry = body
        .get("dryRun")
        .and_then(Value::as_array)
        .is_some_and(|d| d.iter().any(|v| v == "All"));
    Ok((opts, dry))
}

fn delete(
    app: &App,
    target: &Target,
    name: &str,
    bytes: &[u8],
    query: &HashMap<String, String>,
) -> ApiResult<Response> {
    if target.sub.is_some() {
        return Err(ApiError::method_not_allowed("DELETE", "a subresource"));
    }
    let (opts, body_dry) = delete_options(bytes, query, target.kind, name)?;
    let deleted = if target.dry_run || body_dry {
        // A dry run answers with the object as it stands.
        Deleted::Pending(live(app, target, name)?)
    } else {
        app.store.delete(target.kind, ns(target), name, &opts)?
    };
    let body = match deleted {
        Deleted::Pending(obj) => obj,
        Deleted::Gone(obj) if target.kind.plural == "pods" => obj,
        Deleted::Gone(obj) => deleted_status(
            target.kind,
            name,
            obj.pointer("/metadata/uid")
                .and_then(Value::as_str)
                .unwrap_or(""),
        ),
    };
    Ok(json_response(StatusCode::OK, &body))
}

fn delete_collection(
    app: &App,
    target: &Target,
    bytes: &[u8],
    query: &HashMap<String, String>,
) -> ApiResult<Response> {
    let (opts, body_dry) = delete_options(bytes, query, target.kind, "")?;
    let dry = target.dry_run || body_dry;
    let sel = selector(target, query)?;
    let listed = app
        .store
        .list(target.kind.plural, target.namespace.as_deref());
    let mut items = Vec::new();
    for obj in listed.items.into_iter().filter(|o| sel.matches(o)) {
        let ns = obj
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let name = obj
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        if dry {
            items.push(obj);
            continue;
        }
        match app.store.delete(target.kind, &ns, &name, &opts) {
            Ok(Deleted::Gone(o) | Deleted::Pending(o)) => items.push(o),
            // Removed meanwhile (a cascade): nothing to report.
            Err(StoreError::NotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let rv = app.store.resource_version();
    Ok(json_response(
        StatusCode::OK,
        &list_body(target.kind, items, Some(rv)),
    ))
}
