//! `resil gateway`: the global front door. An HTTP reverse proxy on a loopback address
//! that sends every request to the active region, health-checks each region's `/readyz`
//! every `--interval`, and moves traffic by the pure policy in [`policy`] (failover after
//! `--fail-after` failed checks, fail back after `--failback-after`). Every decision is
//! printed and, with `--timeline`, appended to a timeline JSONL as a `decision` event
//! (controller `gateway`: inputs, rule, action), the watcher's format.
//!
//! With `--weight NAME=N` every region serves at once, each its share (smooth weighted
//! round robin), and a failing region is ejected and later restored instead. With
//! `--dns-ttl` the gateway models a DNS-based global load balancer: its health checks move
//! the *answer* at once, but clients keep the answer they resolved until its TTL runs out,
//! so traffic follows only at the next expiry — which is why DNS failover takes a minute
//! and a health-checked proxy a fraction of a second.
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
    /// Share traffic among the regions by weight, as NAME=N (1-100), repeated: every region
    /// serves at once (regions not named weigh 1); a failing region is ejected and restored
    /// after --failback-after. Without it, active/passive by priority.
    #[arg(long = "weight", value_name = "NAME=N")]
    pub weights: Vec<String>,
    /// Model DNS-based failover: clients keep the answer they resolved for this long, so
    /// traffic follows a decision only when the answer they hold expires (e.g. 30s, 60s).
    #[arg(long, value_parser = parse_duration_arg, value_name = "TTL")]
    pub dns_ttl: Option<Duration>,
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

/// A region as the proxy path uses it: parsed once, not per request.
struct Upstream {
    region: Region,
    /// `host:port`.
    authority: hyper::http::uri::Authority,
    /// The region's name as the `x-resil-gateway-region` answer header.
    header: Option<hyper::header::HeaderValue>,
    /// Whether the base has a path of its own that requests go under.
    prefixed: bool,
}

impl Upstream {
    fn new(region: Region) -> anyhow::Result<Upstream> {
        let uri: Uri = region
            .base
            .parse()
            .with_context(|| format!("region {}: {:?} is not a URL", region.name, region.base))?;
        let authority = uri
            .authority()
            .cloned()
            .with_context(|| format!("region {}: {:?} has no host", region.name, region.base))?;
        Ok(Upstream {
            header: region.name.parse().ok(),
            prefixed: !uri.path().trim_matches('/').is_empty(),
            authority,
            region,
        })
    }
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

/// Parses `--weight NAME=N` against the regions: each region's weight (1 unless named).
pub fn parse_weights(texts: &[String], regions: &[Region]) -> anyhow::Result<Vec<u32>> {
    let mut weights = vec![1; regions.len()];
    for text in texts {
        let Some((name, n)) = text.split_once('=') else {
            bail!("--weight {text:?}: expected NAME=N, e.g. a=3");
        };
        let Some(i) = regions.iter().position(|r| r.name == name) else {
            let names: Vec<&str> = regions.iter().map(|r| r.name.as_str()).collect();
            bail!(
                "--weight {text:?}: no region {name:?} (the regions are {})",
                names.join(", ")
            );
        };
        weights[i] = match n.parse::<u32>() {
            Ok(n @ 1..=100) => n,
            _ => bail!("--weight {text:?}: the weight must be a whole number from 1 to 100"),
        };
    }
    Ok(weights)
}

/// The order requests take through the regions for `shares`: smooth weighted round robin
/// (each round, every region gains its share and the richest sends one request and pays
/// the total), so a 3:1 split goes a a b a, not a a a b. Empty when nothing has a share.
pub fn route(shares: &[u32]) -> Arc<[usize]> {
    let total: i64 = shares.iter().map(|s| i64::from(*s)).sum();
    let mut credit = vec![0i64; shares.len()];
    let mut order = Vec::with_capacity(total as usize);
    for _ in 0..total {
        for (c, s) in credit.iter_mut().zip(shares) {
            *c += i64::from(*s);
        }
        let Some((pick, _)) = credit
            .iter()
            .enumerate()
            .max_by_key(|(i, c)| (**c, -(*i as i64)))
        else {
            break;
        };
        credit[pick] -= total;
        order.push(pick);
    }
    order.into()
}

type Body = BoxBody<Bytes, hyper::Error>;

struct Shared {
    regions: Vec<Upstream>,
    /// The order requests go through the regions (see [`route`]); swapped on a decision
    /// (with `--dns-ttl`, when the clients' answer expires).
    route: std::sync::RwLock<Arc<[usize]>>,
    /// Requests routed so far: the next one takes `route[next % len]`.
    next: AtomicUsize,
    client: Client<HttpConnector, Incoming>,
    /// `--metrics-addr`: counted on the proxy path and by the checks.
    metrics: Option<Arc<GatewayMetrics>>,
    /// Where decisions are announced (`None`: stderr).
    decisions: Option<tokio::sync::mpsc::UnboundedSender<(&'static str, String)>>,
}

/// A gateway to start ([`start`]): `resil gateway`'s flags resolved, or a scenario's
/// `gateway:` section.
pub struct GatewayPlan {
    /// In priority order.
    pub regions: Vec<Region>,
    pub listen: SocketAddr,
    pub interval: Duration,
    pub policy: Policy,
    /// Each region's weight (`--weight`); `None`: active/passive by priority.
    pub weights: Option<Vec<u32>>,
    pub dns_ttl: Option<Duration>,
    /// Where every decision is appended.
    pub timeline: Option<TimelineWriter>,
    /// Counted on the proxy path and by the checks.
    pub metrics: Option<Arc<GatewayMetrics>>,
    /// Every decision, as its action (`failover`, `failback`, ...) and its line (a
    /// scenario's progress and `wait-for`); `None`: printed on stderr instead.
    pub decisions: Option<tokio::sync::mpsc::UnboundedSender<(&'static str, String)>>,
}

impl GatewayPlan {
    /// Checks the listen address, the interval and the regions (loopback unless
    /// `allow_remote`, each name once).
    pub fn check(&self) -> anyhow::Result<()> {
        if !self.listen.ip().is_loopback() {
            bail!(
                "--listen {}: the gateway listens on loopback only",
                self.listen
            );
        }
        if self.policy.fail_after == 0 || self.interval.is_zero() {
            bail!("--fail-after and --interval must be above zero");
        }
        if self.dns_ttl.is_some_and(|t| t.is_zero()) {
            bail!("--dns-ttl must be above zero (leave it out for a health-checked proxy)");
        }
        if self.regions.is_empty() {
            bail!("give at least one --region NAME=URL");
        }
        let regions = &self.regions;
        if let Some(dup) = regions
            .iter()
            .enumerate()
            .find(|(i, r)| regions[..*i].iter().any(|o| o.name == r.name))
        {
            bail!(
                "--region {:?} is given twice: name each region once",
                dup.1.name
            );
        }
        Ok(())
    }
}

/// A gateway serving and checking until [`RunningGateway::stop`].
pub struct RunningGateway {
    /// `http://HOST:PORT` it listens on.
    pub url: String,
    serving: tokio::task::JoinHandle<()>,
    checking: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl RunningGateway {
    /// Stops serving and checking; an error the check loop ended with (a timeline that
    /// could not be written).
    pub async fn stop(self) -> anyhow::Result<()> {
        self.serving.abort();
        if self.checking.is_finished() {
            return self.checking.await.context("the gateway's check loop")?;
        }
        self.checking.abort();
        Ok(())
    }

    /// Waits for the check loop, which ends only on an error.
    pub async fn failed(&mut self) -> anyhow::Result<()> {
        (&mut self.checking)
            .await
            .context("the gateway's check loop")?
    }
}

/// The pooled client requests are forwarded with: no Nagle delay on the upstream
/// connections (a proxy's small writes must not wait for an ACK), idle connections kept.
fn proxy_client() -> Client<HttpConnector, Incoming> {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(usize::MAX)
        .build(connector)
}

/// Binds the listener and starts serving and checking.
pub async fn start(mut plan: GatewayPlan) -> anyhow::Result<RunningGateway> {
    plan.check()?;
    let policy = plan.policy;
    let state = match &plan.weights {
        None => GatewayPolicy::new(policy, plan.regions.len()),
        Some(w) => GatewayPolicy::weighted(policy, w.clone()),
    };
    let listener = TcpListener::bind(plan.listen)
        .await
        .with_context(|| format!("cannot listen on {}", plan.listen))?;
    let url = format!("http://{}", listener.local_addr()?);
    let shared = Arc::new(Shared {
        regions: std::mem::take(&mut plan.regions)
            .into_iter()
            .map(Upstream::new)
            .collect::<anyhow::Result<_>>()?,
        route: std::sync::RwLock::new(route(&state.shares())),
        next: AtomicUsize::new(0),
        client: proxy_client(),
        metrics: plan.metrics.take(),
        decisions: plan.decisions.take(),
    });
    if let Some(m) = &shared.metrics {
        m.set_serving(&state.shares());
    }
    let serving = tokio::spawn(serve(listener, shared.clone()));
    let checking = tokio::spawn(async move {
        let mut timeline = plan.timeline;
        check_loop(&shared, state, plan.interval, plan.dns_ttl, &mut timeline).await
    });
    Ok(RunningGateway {
        url,
        serving,
        checking,
    })
}

/// `resil gateway ...`
pub async fn command(args: GatewayArgs, _global: &GlobalArgs) -> anyhow::Result<Exit> {
    let regions = args
        .regions
        .iter()
        .map(|r| parse_region(r, args.allow_remote))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let weights = match args.weights.is_empty() {
        true => None,
        false => Some(parse_weights(&args.weights, &regions)?),
    };
    let mut plan = GatewayPlan {
        regions,
        listen: args.listen,
        interval: args.interval,
        policy: Policy {
            fail_after: args.fail_after,
            failback_after: args.failback_after,
        },
        weights,
        dns_ttl: args.dns_ttl,
        timeline: None,
        metrics: None,
        decisions: None,
    };
    plan.check()?;
    if let Some(path) = &args.timeline {
        plan.timeline = Some(TimelineWriter::open(path)?);
    }
    let mut metrics = crate::metrics::Metrics::new();
    let names: Vec<String> = plan.regions.iter().map(|r| r.name.clone()).collect();
    let gateway_metrics = GatewayMetrics::register(metrics.registry(), &names);
    let exporter = crate::metrics::serve_if_asked(&args.metrics, metrics).await?;
    plan.metrics = exporter.as_ref().map(|_| gateway_metrics);
    let upstreams = (plan.regions.iter())
        .map(|r| format!("{}={}", r.name, r.base))
        .collect::<Vec<_>>()
        .join(", ");
    let mode = match &plan.weights {
        None => format!("active: {}", plan.regions[0].name),
        Some(w) => format!("by weight {w:?}"),
    };
    let ttl = match args.dns_ttl {
        Some(ttl) => format!("; DNS answers cached {}", humantime::format_duration(ttl)),
        None => String::new(),
    };
    let mut gateway = start(plan).await?;
    eprintln!("Gateway on {} → {upstreams} ({mode}{ttl}).", gateway.url);
    let ended = match args.duration {
        Some(limit) => {
            tokio::select! {
                r = gateway.failed() => r,
                _ = tokio::time::sleep(limit) => Ok(()),
            }
        }
        None => {
            tokio::select! {
                r = gateway.failed() => r,
                _ = tokio::signal::ctrl_c() => Ok(()),
            }
        }
    };
    let stopped = gateway.stop().await;
    drop(exporter);
    ended.and(stopped).map(|()| Exit::Ok)
}

/// Checks every region each `interval` and applies the policy's decisions: at once, or
/// with `dns_ttl` when the answer clients hold expires.
async fn check_loop(
    shared: &Shared,
    mut state: GatewayPolicy,
    interval: Duration,
    dns_ttl: Option<Duration>,
    timeline: &mut Option<TimelineWriter>,
) -> anyhow::Result<()> {
    let probe: Client<HttpConnector, Empty<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The shares clients follow now, and (with a TTL) when their answer expires.
    let mut held = state.shares();
    let far = tokio::time::Instant::now() + Duration::from_secs(86_400 * 365);
    let mut expires = dns_ttl.map_or(far, |ttl| tokio::time::Instant::now() + ttl);
    loop {
        tokio::select! {
            // The health checks, every interval.
            _ = tick.tick() => {}
            // The clients' cached answer expired: they resolve again and get today's.
            _ = tokio::time::sleep_until(expires), if dns_ttl.is_some() => {
                let ttl = dns_ttl.unwrap_or_default();
                expires += ttl;
                let now = state.shares();
                if now != held {
                    record_dns(shared, &held, &now, ttl, timeline)?;
                    held = now;
                    publish(shared, &held);
                }
                continue;
            }
        }
        let checks = shared
            .regions
            .iter()
            .map(|r| ready(&probe, &r.region.base, interval));
        let results = futures::future::join_all(checks).await;
        let now = Instant::now();
        for (i, ok) in results.into_iter().enumerate() {
            if let Some(m) = &shared.metrics {
                m.checked(i, ok);
            }
            if let Some(decision) = state.observe(i, ok, now) {
                if let Some(m) = &shared.metrics {
                    m.decided(decision.action);
                }
                record(shared, &decision, &state.shares(), timeline)?;
                if dns_ttl.is_none() {
                    held = state.shares();
                    publish(shared, &held);
                }
            }
        }
    }
}

/// Routes requests by `shares` from now on.
fn publish(shared: &Shared, shares: &[u32]) {
    let order = route(shares);
    if let Ok(mut r) = shared.route.write() {
        *r = order;
    }
    if let Some(m) = &shared.metrics {
        m.set_serving(shares);
    }
}

/// Prints and records that clients' DNS answer expired and traffic moved from `from` to
/// `to` (shares per region).
fn record_dns(
    shared: &Shared,
    from: &[u32],
    to: &[u32],
    ttl: Duration,
    timeline: &mut Option<TimelineWriter>,
) -> anyhow::Result<()> {
    let names = |shares: &[u32]| {
        let on: Vec<&str> = shares
            .iter()
            .enumerate()
            .filter(|(_, s)| **s > 0)
            .map(|(i, _)| shared.regions[i].region.name.as_str())
            .collect();
        if on.is_empty() {
            "none".to_string()
        } else {
            on.join("+")
        }
    };
    let action = format!(
        "dns answer expired: traffic {} → {}",
        names(from),
        names(to)
    );
    let rule = format!(
        "clients keep a resolved answer for the DNS TTL ({}); the health checks changed the \
         answer earlier, clients follow only now",
        humantime::format_duration(ttl)
    );
    announce(shared, "dns", format!("{action} ({rule})"));
    let inputs = serde_json::json!({
        "ttl_ms": ttl.as_millis() as u64,
        "shares_before": from,
        "shares_after": to,
    });
    if let Some(writer) = timeline {
        writer.append(&Event::now(
            "gateway",
            EventKind::Decision {
                controller: "gateway".into(),
                inputs,
                rule,
                action,
            },
        ))?;
    }
    Ok(())
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

/// Prints a decision and appends it to the timeline; `shares` are each region's share of
/// the traffic after it.
fn record(
    shared: &Shared,
    d: &Decision,
    shares: &[u32],
    timeline: &mut Option<TimelineWriter>,
) -> anyhow::Result<()> {
    let name = |i: usize| shared.regions[i].region.name.clone();
    let split = || {
        let total: u32 = shares.iter().sum::<u32>().max(1);
        shares
            .iter()
            .enumerate()
            .filter(|(_, s)| **s > 0)
            .map(|(i, s)| format!("{} {}%", name(i), s * 100 / total))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let action = match (d.action, d.to) {
        ("eject" | "restore", _) => format!("{} {}: traffic {}", d.action, name(d.from), split()),
        (_, Some(to)) => format!("{} {} → {}", d.action, name(d.from), name(to)),
        (_, None) => format!(
            "{}: {} is down and no region is healthy",
            d.action,
            name(d.from)
        ),
    };
    announce(shared, d.action, format!("{action} ({})", d.rule));
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

/// Prints a decision's line, or hands it to whoever asked for decisions.
fn announce(shared: &Shared, action: &'static str, line: String) {
    match &shared.decisions {
        Some(to) => drop(to.send((action, line))),
        None => eprintln!("{line}"),
    }
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
    let order = match shared.route.read() {
        Ok(r) => r.clone(),
        Err(_) => return Ok(status(StatusCode::SERVICE_UNAVAILABLE)),
    };
    if order.is_empty() {
        return Ok(status(StatusCode::SERVICE_UNAVAILABLE));
    }
    let active = order[shared.next.fetch_add(1, Ordering::Relaxed) % order.len()];
    let upstream = &shared.regions[active];
    let Ok(uri) = upstream_uri(upstream, req.uri()) else {
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
            if let Some(v) = &upstream.header {
                response
                    .headers_mut()
                    .insert(crate::load::plan::REGION_HEADER, v.clone());
            }
            Ok(response.map(BodyExt::boxed))
        }
        Err(_) => Ok(status(StatusCode::BAD_GATEWAY)),
    }
}

/// Where a request for `uri` goes in `upstream`: its path and query under the upstream's
/// base (built from parsed parts; a base with a path of its own is prefixed as text).
fn upstream_uri(upstream: &Upstream, uri: &Uri) -> Result<Uri, hyper::http::Error> {
    let path = uri
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| hyper::http::uri::PathAndQuery::from_static("/"));
    if upstream.prefixed {
        return Ok(format!("{}{path}", upstream.region.base).parse::<Uri>()?);
    }
    Uri::builder()
        .scheme(hyper::http::uri::Scheme::HTTP)
        .authority(upstream.authority.clone())
        .path_and_query(path)
        .build()
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
    fn a_request_goes_to_the_same_path_and_query_under_the_regions_base() {
        let to = |base: &str, uri: &str| {
            let upstream = Upstream::new(parse_region(base, false).unwrap()).unwrap();
            upstream_uri(&upstream, &uri.parse().unwrap())
                .unwrap()
                .to_string()
        };
        assert_eq!(
            to("a=http://127.0.0.1:30080", "/kv/k1?x=1"),
            "http://127.0.0.1:30080/kv/k1?x=1"
        );
        assert_eq!(
            to("a=http://127.0.0.1:30080/", "/"),
            "http://127.0.0.1:30080/"
        );
        assert_eq!(
            to("a=http://localhost:8081/app", "/readyz"),
            "http://localhost:8081/app/readyz"
        );
    }

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

    #[test]
    fn weights_default_to_one_and_bad_ones_say_what_to_do() {
        let regions = [
            parse_region("a=http://127.0.0.1:1", false).unwrap(),
            parse_region("b=http://127.0.0.1:2", false).unwrap(),
        ];
        assert_eq!(parse_weights(&["a=3".into()], &regions).unwrap(), [3, 1]);
        for (bad, says) in [
            ("c=1", "no region \"c\""),
            ("a=0", "from 1 to 100"),
            ("a=x", "from 1 to 100"),
            ("a", "NAME=N"),
        ] {
            let err = parse_weights(&[bad.into()], &regions)
                .unwrap_err()
                .to_string();
            assert!(err.contains(says), "{bad}: {err}");
        }
    }

    #[test]
    fn the_route_interleaves_regions_by_weight() {
        assert_eq!(&*route(&[3, 1]), [0, 0, 1, 0]);
        assert_eq!(&*route(&[0, 1]), [1]);
        assert_eq!(&*route(&[1, 0]), [0]);
        assert!(route(&[0, 0]).is_empty());
        let order = route(&[5, 3, 2]);
        assert_eq!(order.len(), 10);
        for (i, w) in [5, 3, 2].into_iter().enumerate() {
            assert_eq!(order.iter().filter(|r| **r == i).count(), w);
        }
    }
}
