//! `resil gateway`: the global front door. An HTTP reverse proxy on a loopback address
//! that sends every request to the active region, health-checks each region's `/readyz`
//! every `--interval`, and moves traffic by the pure policy in [`policy`] (failover after
//! `--fail-after` failed checks, fail back after `--failback-after`). Every decision is
//! printed and, with `--timeline`, appended to a timeline JSONL as a `decision` event
//! (controller `gateway`: inputs, rule, action), the watcher's format.
//!
//! Regions are plain URLs (`--region a=http://127.0.0.1:30080`), first = preferred. For a
//! lab region, the URL is its `web` Service's node port (`kubectl --context resil-region-a
//! -n resil-demo get svc web`); for kind, a port mapped by `extraPortMappings`; for
//! minikube, `minikube service web --url`. Upstreams must be on loopback unless
//! `--allow-remote` is given.

pub mod policy;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use bytes::Bytes;
use clap::Args;
use http_body_util::{BodyExt, Empty, combinators::BoxBody};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

use crate::Exit;
use crate::cli::GlobalArgs;
use crate::metrics::gateway::GatewayMetrics;
use crate::results::timeline::{Event, EventKind, TimelineWriter};
use policy::{Decision, GatewayPolicy, Policy};
use resil_common::args::parse_duration as parse_duration_arg;

/// `resil gateway`
#[derive(Debug, Args)]
pub struct GatewayArgs {
    /// A region as NAME=URL (http://HOST:PORT), repeated; the order is the priority.
    #[arg(long = "region", value_name = "NAME=URL", required = true)]
    pub regions: Vec<String>,
    /// Where the gateway listens (loopback).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// How often each region's /readyz is checked.
    #[arg(long, value_parser = parse_duration_arg, default_value = "1s")]
    pub interval: Duration,
    /// Consecutive failed checks after which the active region is down.
    #[arg(long, default_value_t = 3)]
    pub fail_after: u32,
    /// How long a preferred region must pass every check before traffic returns to it.
    #[arg(long, value_parser = parse_duration_arg, default_value = "10s")]
    pub failback_after: Duration,
    /// Append every decision to this timeline JSONL.
    #[arg(long, value_name = "PATH")]
    pub timeline: Option<PathBuf>,
    /// Stop after this long (default: until Ctrl-C).
    #[arg(long, value_parser = parse_duration_arg)]
    pub duration: Option<Duration>,
    /// Allow upstreams that are not on loopback.
    #[arg(long)]
    pub allow_remote: bool,
    #[command(flatten)]
    pub metrics: crate::cli::MetricsArgs,
}

/// One upstream region.
#[derive(Debug, Clone)]
pub struct Region {
    pub name: String,
    /// `http://host:port`, without a trailing slash.
    pub base: String,
}

/// Parses `NAME=URL`, refusing non-loopback hosts unless `allow_remote`.
pub fn parse_region(text: &str, allow_remote: bool) -> anyhow::Result<Region> {
    let Some((name, url)) = text.split_once('=') else {
        bail!("--region {text:?}: expected NAME=URL, e.g. a=http://127.0.0.1:30080");
    };
    let uri: Uri = url
        .parse()
        .with_context(|| format!("--region {name}: {url:?} is not a URL"))?;
    if uri.scheme_str() != Some("http") {
        bail!("--region {name}: {url:?} must be an http:// URL");
    }
    let host = uri.host().unwrap_or_default();
    let loopback = host == "localhost"
        || host
            .trim_matches(['[', ']'])
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if !loopback && !allow_remote {
        bail!(
            "--region {name}: {host} is not on loopback; the gateway sends live traffic \
             there, so pass --allow-remote if that is meant"
        );
    }
    Ok(Region {
        name: name.to_string(),
        base: url.trim_end_matches('/').to_string(),
    })
}

type Body = BoxBody<Bytes, hyper::Error>;

struct Shared {
    regions: Vec<Region>,
    active: AtomicUsize,
    client: Client<HttpConnector, Incoming>,
    /// `--metrics-addr`: counted on the proxy path and by the checks.
    metrics: Option<Arc<GatewayMetrics>>,
}

/// `resil gateway ...`
pub async fn command(args: GatewayArgs, _global: &GlobalArgs) -> anyhow::Result<Exit> {
    if !args.listen.ip().is_loopback() {
        bail!(
            "--listen {}: the gateway listens on loopback only",
            args.listen
        );
    }
    if args.fail_after == 0 || args.interval.is_zero() {
        bail!("--fail-after and --interval must be above zero");
    }
    let regions = args
        .regions
        .iter()
        .map(|r| parse_region(r, args.allow_remote))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut timeline = match &args.timeline {
        Some(path) => Some(TimelineWriter::open(path)?),
        None => None,
    };
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let mut metrics = crate::metrics::Metrics::new();
    let names: Vec<String> = regions.iter().map(|r| r.name.clone()).collect();
    let gateway_metrics = GatewayMetrics::register(metrics.registry(), &names);
    let exporter = crate::metrics::serve_if_asked(&args.metrics, metrics).await?;
    let shared = Arc::new(Shared {
        regions,
        active: AtomicUsize::new(0),
        client: Client::builder(TokioExecutor::new()).build_http(),
        metrics: exporter.as_ref().map(|_| gateway_metrics),
    });
    eprintln!(
        "Gateway on http://{} → {} (active: {}).",
        args.listen,
        shared
            .regions
            .iter()
            .map(|r| format!("{}={}", r.name, r.base))
            .collect::<Vec<_>>()
            .join(", "),
        shared.regions[0].name
    );
    let serving = tokio::spawn(serve(listener, shared.clone()));
    let policy = Policy {
        fail_after: args.fail_after,
        failback_after: args.failback_after,
    };
    let checking = check_loop(&shared, policy, args.interval, &mut timeline);
    let exit = match args.duration {
        Some(limit) => {
            tokio::select! {
                r = checking => r,
                _ = tokio::time::sleep(limit) => Ok(()),
            }
        }
        None => {
            tokio::select! {
                r = checking => r,
                _ = tokio::signal::ctrl_c() => Ok(()),
            }
        }
    };
    serving.abort();
    drop(exporter);
    exit.map(|()| Exit::Ok)
}

/// Checks every region each `interval` and applies the policy's decisions.
async fn check_loop(
    shared: &Shared,
    policy: Policy,
    interval: Duration,
    timeline: &mut Option<TimelineWriter>,
) -> anyhow::Result<()> {
    let mut state = GatewayPolicy::new(policy, shared.regions.len());
    let probe: Client<HttpConnector, Empty<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let checks = shared
            .regions
            .iter()
            .map(|r| ready(&probe, &r.base, interval));
        let results = futures::future::join_all(checks).await;
        let now = Instant::now();
        for (i, ok) in results.into_iter().enumerate() {
            if let Some(m) = &shared.metrics {
                m.checked(i, ok);
            }
            if let Some(decision) = state.observe(i, ok, now) {
                shared.active.store(state.active(), Ordering::SeqCst);
                if let Some(m) = &shared.metrics {
                    m.decided(decision.action, state.active());
                }
                record(shared, &decision, timeline)?;
            }
        }
    }
}

/// Whether `base/readyz` answers 200 within `limit`.
async fn ready(client: &Client<HttpConnector, Empty<Bytes>>, base: &str, limit: Duration) -> bool {
    let Ok(uri) = format!("{base}/readyz").parse::<Uri>() else {
        return false;
    };
    matches!(
        tokio::time::timeout(limit, client.get(uri)).await,
        Ok(Ok(response)) if response.status() == StatusCode::OK
    )
}

/// Prints a decision and appends it to the timeline.
fn record(
    shared: &Shared,
    d: &Decision,
    timeline: &mut Option<TimelineWriter>,
) -> anyhow::Result<()> {
    let name = |i: usize| shared.regions[i].name.clone();
    let action = match d.to {
        Some(to) => format!("{} {} → {}", d.action, name(d.from), name(to)),
        None => format!(
            "{}: {} is down and no region is healthy",
            d.action,
            name(d.from)
        ),
    };
    eprintln!("{action} ({})", d.rule);
    let inputs: serde_json::Map<String, serde_json::Value> = d
        .failures
        .iter()
        .enumerate()
        .map(|(i, f)| (name(i), serde_json::json!({ "consecutive_failures": f })))
        .collect();
    if let Some(writer) = timeline {
        writer.append(&Event::now(
            "gateway",
            EventKind::Decision {
                controller: "gateway".into(),
                inputs: inputs.into(),
                rule: d.rule.clone(),
                action,
            },
        ))?;
    }
    Ok(())
}

async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| forward(shared.clone(), req));
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// Sends one request to the active region, reusing pooled connections.
async fn forward(
    shared: Arc<Shared>,
    mut req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let active = shared.active.load(Ordering::SeqCst);
    let region = &shared.regions[active];
    let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let Ok(uri) = format!("{}{path}", region.base).parse::<Uri>() else {
        return Ok(status(StatusCode::BAD_REQUEST));
    };
    *req.uri_mut() = uri;
    req.headers_mut().remove(hyper::header::HOST);
    let answer = shared.client.request(req).await;
    if let Some(m) = &shared.metrics {
        m.forwarded(active, answer.is_ok());
    }
    match answer {
        Ok(mut response) => {
            if let Ok(v) = region.name.parse() {
                response.headers_mut().insert("x-resil-gateway-region", v);
            }
            Ok(response.map(BodyExt::boxed))
        }
        Err(_) => Ok(status(StatusCode::BAD_GATEWAY)),
    }
}

fn status(code: StatusCode) -> Response<Body> {
    let mut response = Response::new(Empty::<Bytes>::new().map_err(|e| match e {}).boxed());
    *response.status_mut() = code;
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_are_loopback_urls_unless_remote_is_allowed() {
        let r = parse_region("a=http://127.0.0.1:30080/", false).unwrap();
        assert_eq!(
            (r.name.as_str(), r.base.as_str()),
            ("a", "http://127.0.0.1:30080")
        );
        assert!(parse_region("b=http://localhost:31080", false).is_ok());
        let err = parse_region("c=http://10.0.0.1:80", false)
            .unwrap_err()
            .to_string();
        assert!(err.contains("--allow-remote"), "{err}");
        assert!(parse_region("c=http://10.0.0.1:80", true).is_ok());
        assert!(parse_region("http://127.0.0.1:1", false).is_err());
        assert!(parse_region("d=https://127.0.0.1:1", false).is_err());
    }
}
