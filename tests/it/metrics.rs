//! `--metrics-addr` scraped by a real Prometheus (Debian's `prometheus`, started here on
//! loopback with a scrape config pointing at resil's `/metrics`), queried through its HTTP
//! API and compared with resil's own summary of the same run. Where Prometheus is not
//! installed the test says it skipped (`.ci/run` installs it, so CI never skips).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper::{Response, StatusCode};
use hyper_util::rt::TokioIo;
use resil::load::{self, LoadPlan, Pace, Stop};
use resil::metrics::Metrics;
use resil::metrics::load::{LATENCY_BUCKETS, LoadMetrics, LoadSink};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// A target answering blue fast (about 1 ms), green slow (about 20 ms) and 500 for every
/// tenth request.
async fn target() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(AtomicU64::new(0));
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let seen = seen.clone();
            tokio::spawn(async move {
                let service = service_fn(move |_req| {
                    let n = seen.fetch_add(1, Ordering::Relaxed);
                    async move { Ok::<_, Infallible>(answer(n).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

async fn answer(n: u64) -> Response<Full<Bytes>> {
    let (color, delay) = if n.is_multiple_of(2) {
        ("blue", Duration::from_millis(1))
    } else {
        ("green", Duration::from_millis(20))
    };
    tokio::time::sleep(delay).await;
    let mut response = Response::new(Full::new(Bytes::from_static(b"ok\n")));
    response
        .headers_mut()
        .insert("x-resil-color", color.parse().unwrap());
    if n % 10 == 9 {
        *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    }
    response
}

/// A Prometheus scraping `target` every second; killed on drop.
struct Prometheus {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Prometheus {
    /// `None` when `prometheus` is not on PATH.
    async fn start(target: SocketAddr) -> Option<Prometheus> {
        Prometheus::start_with(target, &[]).await
    }

    /// [`Prometheus::start`] with extra flags (`--enable-feature=...`).
    async fn start_with(target: SocketAddr, flags: &[&str]) -> Option<Prometheus> {
        let which = Command::new("sh")
            .args(["-c", "command -v prometheus"])
            .output()
            .ok()?;
        if !which.status.success() {
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global: {{scrape_interval: 1s, scrape_timeout: 1s, evaluation_interval: 1s}}\n\
                 scrape_configs:\n  - job_name: resil\n    static_configs:\n      \
                 - targets: ['{target}']\n"
            ),
        )
        .unwrap();
        let port = free_port();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .args(flags)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start prometheus");
        let prometheus = Prometheus {
            child,
            url: format!("http://127.0.0.1:{port}"),
            _dir: dir,
        };
        prometheus.wait_ready().await;
        Some(prometheus)
    }

    async fn wait_ready(&self) {
        let client = reqwest::Client::new();
        for _ in 0..300 {
            let ready = client.get(format!("{}/-/ready", self.url)).send().await;
            if ready.is_ok_and(|r| r.status().is_success()) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("prometheus not ready within 30 s");
    }

    /// An instant query's scalar result (the first sample), at `time` (Unix seconds) or
    /// now; `None` when the result is empty.
    async fn query(&self, promql: &str, time: Option<f64>) -> Option<f64> {
        let mut params = vec![("query", promql.to_string())];
        if let Some(t) = time {
            params.push(("time", format!("{t:.3}")));
        }
        let url = reqwest::Url::parse_with_params(&format!("{}/api/v1/query", self.url), &params)
            .unwrap();
        let body: Value = reqwest::Client::new()
            .get(url)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(body["status"], "success", "{promql}: {body}");
        let value = body["data"]["result"].get(0)?["value"][1].as_str()?;
        value.parse().ok()
    }

    /// Polls `promql` until it equals `want` (bounded); the last value seen.
    async fn until_equal(&self, promql: &str, want: f64) -> Option<f64> {
        let mut last = None;
        for _ in 0..100 {
            last = self.query(promql, None).await;
            if last == Some(want) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        last
    }
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// The classic bucket `(lower, upper]` (seconds) that holds `us` microseconds.
fn bucket_of(us: u64) -> (f64, f64) {
    let s = us as f64 / 1e6;
    let i = LATENCY_BUCKETS.iter().position(|le| s <= *le).unwrap();
    let lower = if i == 0 { 0.0 } else { LATENCY_BUCKETS[i - 1] };
    (lower, LATENCY_BUCKETS[i])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_and_queries_agree_with_the_run_summary() {
    let mut metrics = Metrics::new();
    let sink = LoadMetrics::register(metrics.registry());
    let exporter = metrics.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let Some(prom) = Prometheus::start(exporter.addr()).await else {
        eprintln!("skipped: `prometheus` is not installed (apt-get install prometheus)");
        return;
    };
    let up = prom.until_equal("up{job=\"resil\"}", 1.0).await;
    assert_eq!(up, Some(1.0), "prometheus never scraped resil");

    let addr = target().await;
    let url = format!("http://{addr}/");
    let stop = Stop {
        duration: Some(Duration::from_secs(6)),
        requests: None,
    };
    let mut plan = LoadPlan::for_url(&url, Pace::Rate(200.0), stop).unwrap();
    plan.threads = 2;
    plan.metrics = LoadSink::to(sink);
    let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
    let report = load::run(&plan, CancellationToken::new(), tx)
        .await
        .unwrap();
    let ended = unix_now();
    let s = &report.summary;

    // Counters: exactly the summary's, once the last snapshot is scraped.
    let total = prom
        .until_equal("sum(resil_load_requests_total)", s.requests as f64)
        .await;
    assert_eq!(total, Some(s.requests as f64));
    for (color, c) in &s.by_color {
        let q = format!("resil_load_requests_total{{color=\"{color}\"}}");
        assert_eq!(prom.query(&q, None).await, Some(c.requests as f64), "{q}");
        let q = format!("resil_load_request_errors_total{{color=\"{color}\"}}");
        assert_eq!(prom.query(&q, None).await, Some(c.errors as f64), "{q}");
    }
    let errors = prom
        .query("resil_load_errors_total{kind=\"http_5xx\"}", None)
        .await;
    assert_eq!(errors, Some(s.errors as f64));
    assert!(s.errors > 0, "the target fails one request in ten");

    // rate(): the last seconds of the run were sent at the planned 200/s.
    let rate = prom
        .query(
            "sum(rate(resil_load_requests_total[4s]))",
            Some(ended - 0.5),
        )
        .await
        .expect("a rate over the run");
    assert!(
        (rate - s.achieved_rate).abs() < 0.25 * s.achieved_rate,
        "rate() {rate:.1}/s vs the summary's {:.1}/s",
        s.achieved_rate
    );

    // histogram_quantile(): within the classic bucket that holds resil's own percentile.
    for (color, c) in &s.by_color {
        for (q, us) in [(0.5, c.latency.p50_us), (0.9, c.latency.p90_us)] {
            let promql = format!(
                "histogram_quantile({q}, sum by (le) \
                 (resil_load_request_duration_seconds_bucket{{color=\"{color}\"}}))"
            );
            let got = prom.query(&promql, None).await.expect("a quantile");
            let (lower, upper) = bucket_of(us);
            assert!(
                got >= lower && got <= upper,
                "{color} p{}: prometheus {got} s, resil {us} µs (bucket {lower}..{upper})",
                q * 100.0
            );
        }
    }
    let count = prom
        .query("sum(resil_load_request_duration_seconds_count)", None)
        .await;
    // Every request got an answer (a 500 is one), so every one was timed.
    assert_eq!(count, Some(s.requests as f64));

    // The Grafana dashboard's load panels show this run: each of their queries, with the
    // dashboard's variables filled in, has a result at the run's end.
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/grafana/resil.json");
    let dashboard: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut asked = 0;
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().unwrap();
            if !expr.contains("resil_load_") {
                continue;
            }
            let promql = expr
                .replace("$__rate_interval", "4s")
                .replace("$__range", "1m")
                .replace("$job", ".*");
            let got = prom.query(&promql, Some(ended - 0.5)).await;
            assert!(got.is_some(), "{}: {promql} has no result", panel["title"]);
            asked += 1;
        }
    }
    assert!(asked >= 8, "{asked} load queries in the dashboard");
    drop(exporter);
}

/// `GET path` through `client`: status and body text.
async fn get_text(client: &kube::Client, path: &str) -> (u16, String) {
    let req = axum::http::Request::get(path)
        .body(kube::client::Body::empty())
        .unwrap();
    let res = tokio::time::timeout(Duration::from_secs(10), client.send(req))
        .await
        .expect("answer within 10 s")
        .expect("response");
    let status = res.status().as_u16();
    let bytes = res.into_body().collect_bytes().await.unwrap();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

#[tokio::test]
async fn the_lab_serves_api_object_watch_and_node_metrics_behind_its_token() {
    use k8s_openapi::api::core::v1::Pod;
    use kube::api::{Api, PostParams};

    let (lab, client, _dir) = crate::support::start_api_only_lab().await;
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    let pod: Pod = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "p1"},
        "spec": {"nodeName": "resil-lab", "containers": [{"name": "c", "image": "resil-demo"}]}
    }))
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
    pods.get("p1").await.unwrap();
    // A watch held open while the lab is scraped.
    let watching = {
        let client = client.clone();
        tokio::spawn(async move {
            let path = "/api/v1/namespaces/default/pods?watch=true&timeoutSeconds=3";
            get_text(&client, path).await
        })
    };
    let (code, text) = crate::support::eventually(Duration::from_secs(5), "a watch", || {
        let client = client.clone();
        async move {
            let (code, text) = get_text(&client, "/metrics").await;
            text.contains("resil_lab_api_watches 1\n")
                .then_some((code, text))
        }
    })
    .await;
    assert_eq!(code, 200);
    for line in [
        "resil_lab_api_requests_total{verb=\"POST\",resource=\"pods\",subresource=\"\",code=\"201\"} 1\n",
        "resil_lab_api_requests_total{verb=\"GET\",resource=\"pods\",subresource=\"\",code=\"200\"} 1\n",
        "resil_lab_api_request_duration_seconds_count{verb=\"POST\",resource=\"pods\",subresource=\"\"} 1\n",
        "resil_lab_objects{resource=\"pods\"} 1\n",
        "resil_lab_node_pods{node=\"resil-lab\"} 1\n",
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
    let _ = watching.await;
    let (_, text) = get_text(&client, "/metrics").await;
    assert!(text.contains("resil_lab_api_watches 0\n"), "{text}");

    let mut config = crate::support::config_for(&lab).await;
    config.auth_info.token = None;
    let anonymous = kube::Client::try_from(config).unwrap();
    assert_eq!(get_text(&anonymous, "/metrics").await.0, 401);
    lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prometheus_with_native_histograms_gets_the_latency_as_native_buckets() {
    let mut metrics = Metrics::new();
    let sink = metrics.register_load();
    let exporter = metrics.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let flags = ["--enable-feature=native-histograms"];
    let Some(prom) = Prometheus::start_with(exporter.addr(), &flags).await else {
        eprintln!("skipped: `prometheus` is not installed (apt-get install prometheus)");
        return;
    };
    let up = prom.until_equal("up{job=\"resil\"}", 1.0).await;
    assert_eq!(up, Some(1.0), "prometheus never scraped resil");

    let addr = target().await;
    let url = format!("http://{addr}/");
    let stop = Stop {
        duration: Some(Duration::from_secs(4)),
        requests: None,
    };
    let mut plan = LoadPlan::for_url(&url, Pace::Rate(200.0), stop).unwrap();
    plan.threads = 2;
    plan.metrics = LoadSink::to(sink);
    let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
    let report = load::run(&plan, CancellationToken::new(), tx)
        .await
        .unwrap();
    let s = &report.summary;

    // The histogram is native: one series per colour, no `_bucket` series, its count
    // every timed request.
    let count = prom
        .until_equal(
            "sum(histogram_count(resil_load_request_duration_seconds))",
            s.requests as f64,
        )
        .await;
    assert_eq!(count, Some(s.requests as f64));
    // Counters and gauges come through the same protobuf scrape.
    let requests = prom.query("sum(resil_load_requests_total)", None).await;
    assert_eq!(requests, Some(s.requests as f64));
    let build = prom.query("resil_build_info", None).await;
    assert_eq!(build, Some(1.0));
    let classic = prom
        .query("count(resil_load_request_duration_seconds_bucket)", None)
        .await;
    assert_eq!(
        classic, None,
        "classic buckets stored beside the native ones"
    );
    // histogram_quantile() over native buckets: within one bucket (2^(1/8), about 9 %)
    // of resil's own percentile.
    for (color, c) in &s.by_color {
        for (q, us) in [(0.5, c.latency.p50_us), (0.9, c.latency.p90_us)] {
            let promql = format!(
                "histogram_quantile({q}, resil_load_request_duration_seconds{{color=\"{color}\"}})"
            );
            let got = prom.query(&promql, None).await.expect("a quantile");
            let ratio = got / (us as f64 / 1e6);
            assert!(
                (1.0 / 1.1..=1.1).contains(&ratio),
                "{color} p{}: prometheus {got} s, resil {us} µs",
                q * 100.0
            );
        }
    }
    drop(exporter);
}
