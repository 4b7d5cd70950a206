//! Live Prometheus metrics: `--metrics-addr ADDR` on `resil load`, `watch`, `gateway`,
//! `autoscale` and `run` serves `/metrics` there while the command runs.
//!
//! A command builds one [`Metrics`] (a registry with `resil_build_info`), registers the
//! sinks of the parts it runs ([`load`], [`control`] for the watcher, autoscaler and
//! chaos, [`gateway`]), and [`Metrics::serve`]s it. Engines never see the registry: the
//! load engine publishes its threads' cumulative per-second aggregation into a
//! [`load::LoadMetrics`] (one short lock per thread per second, none per request); the
//! others are fed from the updates their command layer already receives. The format is
//! negotiated per scrape (`resil_common::exposition`): Prometheus text 0.0.4, OpenMetrics
//! when the scraper asks for it, or the protobuf exposition when it ranks that first (a
//! Prometheus with native histograms enabled): the latency histogram then carries native
//! buckets besides its classic ones, folded from the same HDR histograms.
//!
//! Names follow `resil_<subsystem>_<name>_<unit>`, counters end in `_total`, durations are
//! seconds. The full list is in `docs/metrics.md`.

pub mod control;
pub mod gateway;
pub mod load;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;
use resil_common::exposition::{self, Format};
use tokio::task::JoinHandle;

use crate::cli::MetricsArgs;

/// What can stop the metrics endpoint from starting.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// The address cannot be bound.
    #[error("cannot serve metrics on {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// The registry a command fills before serving it.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// The load sink, whose latency histograms have native buckets for a protobuf scrape.
    load: Option<Arc<load::LoadMetrics>>,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

impl Metrics {
    /// An empty registry but for `resil_build_info{version}`.
    pub fn new() -> Metrics {
        let mut registry = Registry::default();
        let info = Info::new(vec![("version", env!("CARGO_PKG_VERSION"))]);
        registry.register("resil_build", "The resil build serving these metrics", info);
        Metrics {
            registry,
            load: None,
        }
    }

    /// Registers the load engine's sink, its latency histograms native as well as
    /// classic for a scraper that negotiates native histograms.
    pub fn register_load(&mut self) -> Arc<load::LoadMetrics> {
        let sink = load::LoadMetrics::register(&mut self.registry);
        self.load = Some(sink.clone());
        sink
    }

    /// The registry, for sinks to register into.
    pub fn registry(&mut self) -> &mut Registry {
        &mut self.registry
    }

    /// The registry encoded in `format` (what a scrape gets).
    pub fn encode(&self, format: Format) -> String {
        // Writing into a String cannot fail; a collector that fails yields what it wrote.
        exposition::encode(&self.registry, format).unwrap_or_default()
    }

    /// The registry in the protobuf exposition, with native buckets where there are some.
    pub fn encode_protobuf(&self) -> Vec<u8> {
        let native =
            |family: &str, labels: &[(String, String)]| self.load.as_ref()?.native(family, labels);
        // Writing into memory cannot fail; a collector that fails yields nothing.
        exposition::protobuf::encode(&self.registry, &native).unwrap_or_default()
    }

    /// Serves `/metrics` on `addr` until the returned [`Exporter`] is dropped.
    pub async fn serve(self, addr: SocketAddr) -> Result<Exporter, MetricsError> {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| MetricsError::Bind { addr, source })?;
        let local = listener
            .local_addr()
            .map_err(|source| MetricsError::Bind { addr, source })?;
        let app = Router::new()
            .route("/metrics", get(scrape))
            .with_state(Arc::new(self));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Exporter { addr: local, task })
    }
}

/// `GET /metrics`.
async fn scrape(State(metrics): State<Arc<Metrics>>, headers: HeaderMap) -> Response {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    if exposition::prefers_protobuf(accept) {
        let body = metrics.encode_protobuf();
        let content_type = exposition::PROTOBUF_CONTENT_TYPE;
        return (StatusCode::OK, [(header::CONTENT_TYPE, content_type)], body).into_response();
    }
    let format = Format::negotiate(accept);
    let body = metrics.encode(format);
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, format.content_type())],
        body,
    )
        .into_response()
}

/// A serving `/metrics` endpoint; stops serving when dropped.
#[derive(Debug)]
pub struct Exporter {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Exporter {
    /// The address it listens on (the port the OS gave for port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves `metrics` when `args` asks for it, announcing the address on stderr (the
/// command layer's helper).
pub async fn serve_if_asked(
    args: &MetricsArgs,
    metrics: Metrics,
) -> Result<Option<Exporter>, MetricsError> {
    let Some(addr) = args.metrics_addr else {
        return Ok(None);
    };
    let exporter = metrics.serve(addr).await?;
    eprintln!("metrics on http://{}/metrics", exporter.addr());
    Ok(Some(exporter))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_info_names_the_version() {
        let text = Metrics::new().encode(Format::Text);
        let line = format!(
            "resil_build_info{{version=\"{}\"}} 1\n",
            env!("CARGO_PKG_VERSION")
        );
        assert!(text.contains(&line), "{text}");
        assert!(text.contains("# TYPE resil_build_info gauge\n"), "{text}");
    }

    #[tokio::test]
    async fn the_endpoint_negotiates_the_format() {
        let exporter = Metrics::new()
            .serve("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let url = format!("http://{}/metrics", exporter.addr());
        let client = reqwest::Client::new();
        let plain = client.get(&url).send().await.unwrap();
        let ct = plain.headers()[header::CONTENT_TYPE].to_str().unwrap();
        assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
        let om = client
            .get(&url)
            .header(header::ACCEPT, "application/openmetrics-text;version=1.0.0")
            .send()
            .await
            .unwrap();
        let ct = om.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .to_string();
        assert!(ct.starts_with("application/openmetrics-text"), "{ct}");
        assert!(om.text().await.unwrap().ends_with("# EOF\n"));
    }
}
