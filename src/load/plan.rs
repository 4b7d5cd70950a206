//! [`LoadSpec`] (from `resil load`'s flags or a scenario's `load:` section) → [`LoadPlan`]:
//! everything the engine needs, resolved and validated once.
//!
//! The plan is the only form of the arguments the engine sees: the URL parsed into a
//! target and a pre-encoded request, exactly one pacing model ([`Pace`]), and a bound
//! ([`Stop`]) — an unbounded run is refused here. Called by the command layer and by
//! anything that runs load in-process (the scenario runner, tests).

use std::time::Duration;

use hyper::Uri;

use super::LoadError;
use super::thresholds::{self, Threshold};
use super::writes::WriteMix;
use crate::cli::LoadArgs;
use crate::spec::{LoadSpec, REQUEST_TIMEOUT};

/// The lab's NodePort for the demo Service: where `resil load` goes when no URL is given.
pub const DEFAULT_URL: &str = "http://127.0.0.1:30080";

/// Closed-model concurrency when neither `--concurrency`, `--rate` nor `--ramp` is given.
pub const DEFAULT_CONCURRENCY: u32 = 10;

/// Open-model cap on connections when `--max-connections` is not given.
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;

/// Response headers of the demo app naming who served a request.
pub const POD_HEADER: &str = "x-resil-pod";
pub const COLOR_HEADER: &str = "x-resil-color";
/// A write's acknowledgement from the demo app (`REGION@STORE:SEQ`).
pub const ACK_HEADER: &str = "x-resil-ack";
pub const VERSION_HEADER: &str = "x-resil-version";
/// The region `resil gateway` sent a request to, on its answer.
pub const REGION_HEADER: &str = "x-resil-gateway-region";

/// When a run ends: after `requests` sends, after `duration`, or whichever comes first.
/// At least one is set (the plan refuses an unbounded run).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stop {
    pub requests: Option<u64>,
    pub duration: Option<Duration>,
}

/// How sends are paced.
#[derive(Debug, Clone, PartialEq)]
pub enum Pace {
    /// Closed model: this many connections, each sending its next request when the last
    /// one answered.
    Closed { concurrency: u32 },
    /// Open model: a constant arrival rate (requests per second).
    Rate(f64),
    /// Open model: the rate moves linearly through stages (see [`RampStage`]).
    Ramp(Vec<RampStage>),
}

impl Pace {
    /// `closed` or `open`, as the summary names the model.
    pub fn model(&self) -> &'static str {
        match self {
            Pace::Closed { .. } => "closed",
            Pace::Rate(_) | Pace::Ramp(_) => "open",
        }
    }
}

/// One stage of a ramp: over `duration` the rate moves linearly from the previous stage's
/// rate (0 for the first stage) to `rate`. After the last stage the last rate holds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RampStage {
    pub duration: Duration,
    pub rate: f64,
}

/// The request every virtual user sends, with where to send it.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestTemplate {
    pub method: String,
    /// Host name or address to connect to.
    pub host: String,
    pub port: u16,
    /// The `Host` header value (`host[:port]` as written in the URL).
    pub authority: String,
    pub path_and_query: String,
    /// Extra headers in the order given.
    pub headers: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
}

impl RequestTemplate {
    /// The request as bytes on the wire, encoded once so sending costs one write.
    pub fn encode(&self, keepalive: bool) -> Vec<u8> {
        let mut out = Vec::with_capacity(128);
        out.extend_from_slice(self.method.as_bytes());
        out.push(b' ');
        out.extend_from_slice(self.path_and_query.as_bytes());
        out.extend_from_slice(b" HTTP/1.1\r\n");
        let has = |name: &str| {
            self.headers
                .iter()
                .any(|(n, _)| n.eq_ignore_ascii_case(name))
        };
        if !has("host") {
            out.extend_from_slice(b"Host: ");
            out.extend_from_slice(self.authority.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        for (name, value) in &self.headers {
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        if !keepalive && !has("connection") {
            out.extend_from_slice(b"Connection: close\r\n");
        }
        if let Some(body) = &self.body {
            if !has("content-length") {
                out.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
            }
            out.extend_from_slice(b"\r\n");
            out.extend_from_slice(body);
        } else {
            out.extend_from_slice(b"\r\n");
        }
        out
    }
}

/// A resolved, validated load run.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadPlan {
    /// The target URL as the user will read it in reports.
    pub url: String,
    pub request: RequestTemplate,
    pub pace: Pace,
    pub stop: Stop,
    /// Per-request timeout (connect + send + whole response).
    pub timeout: Duration,
    /// Reuse connections (HTTP/1.1 keep-alive); off opens one connection per request.
    pub keepalive: bool,
    /// OS threads, each with its own single-threaded runtime.
    pub threads: usize,
    /// Open model: the most connections the engine opens to keep to the schedule.
    pub max_connections: usize,
    /// `--fail-on` thresholds.
    pub thresholds: Vec<Threshold>,
    /// The expressions as given, for `run.json`.
    pub threshold_text: Vec<String>,
    /// Successes in a row that end a recovery episode (`--recovery-successes`).
    pub recovery_successes: u32,
    /// Things the user should know (e.g. more threads than CPUs); the command layer prints them.
    pub warnings: Vec<String>,
    /// This generator's slice of a run shared by several (`resil load --workers`); the
    /// whole run for a single generator.
    pub segment: Segment,
    /// When the run starts, shared by every worker of a distributed run; `None`: as soon
    /// as the engine is ready.
    pub start_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Send from this many worker pods (`--workers`, `load.workers`); `None`: from here.
    pub workers: Option<u32>,
    /// Where the threads publish their figures for `--metrics-addr` (none by default).
    pub metrics: crate::metrics::load::LoadSink,
    /// `--write-ratio`: the requests that write, and where they are verified.
    pub writes: Option<WriteMix>,
}

/// One generator's slice of a run that `count` generators share, each with the same
/// thread count: in the open model generator `index`'s thread `t` sends the schedule's
/// sends `k ≡ t·count + index (mod threads·count)`, so together they send every send of
/// the one schedule once; in the closed model the connections and the request bound are
/// split as evenly as they go (the first ones take one more).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    pub index: u32,
    pub count: u32,
}

impl Segment {
    /// The whole run.
    pub const WHOLE: Segment = Segment { index: 0, count: 1 };

    /// `total` split `count` ways: this segment's share.
    pub fn share(&self, total: u64) -> u64 {
        let (count, index) = (u64::from(self.count.max(1)), u64::from(self.index));
        total / count + u64::from(index < total % count)
    }
}

/// Resolves `--write-ratio` and `--verify-url` against the target.
fn write_mix(
    ratio: f64,
    verify_url: Option<&str>,
    request: &RequestTemplate,
) -> Result<WriteMix, LoadError> {
    if !(ratio.is_finite() && ratio > 0.0 && ratio <= 1.0) {
        return Err(LoadError::InvalidWriteRatio {
            ratio: ratio.to_string(),
        });
    }
    let verify = match verify_url {
        // Several regions, comma-separated: a write is kept if any of them holds it.
        Some(urls) => {
            let mut bases = Vec::new();
            for url in urls.split(',').map(str::trim) {
                let parsed = parse_url(url, None)?;
                if parsed.path_and_query != "/" {
                    return Err(LoadError::InvalidUrl {
                        url: url.to_string(),
                        reason: "--verify-url takes the demo app's base URL \
                                 (http://HOST:PORT), no path; several separated by commas"
                            .into(),
                    });
                }
                bases.push(format!("http://{}", parsed.authority));
            }
            bases.join(",")
        }
        None => format!("http://{}", request.authority),
    };
    // The write path sits beside the target path's last segment: `/` → `/kv/`,
    // `/app/` → `/app/kv/`; a query is dropped.
    let path = request.path_and_query.split('?').next().unwrap_or("/");
    let base = path.rsplit_once('/').map_or("", |(dir, _)| dir);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    Ok(WriteMix {
        ratio,
        prefix: format!("w{nanos:x}"),
        kv_path: format!("{base}/kv/"),
        verify_url: Some(verify),
    })
}

impl LoadPlan {
    /// A plan for `url` with the command's defaults (GET, 10 s timeout, keep-alive, one
    /// thread per CPU).
    pub fn for_url(url: &str, pace: Pace, stop: Stop) -> Result<LoadPlan, LoadError> {
        let (concurrency, rate, ramp) = match &pace {
            Pace::Closed { concurrency } => (Some(*concurrency), None, None),
            Pace::Rate(r) => (None, Some(*r), None),
            Pace::Ramp(stages) => (
                None,
                None,
                Some(
                    stages
                        .iter()
                        .map(|s| format!("{}ms:{}", s.duration.as_millis(), s.rate))
                        .collect::<Vec<_>>()
                        .join(","),
                ),
            ),
        };
        LoadPlan::from_spec(&LoadSpec {
            url: Some(url.to_string()),
            duration: stop.duration,
            requests: stop.requests,
            concurrency,
            rate,
            ramp,
            path: None,
            method: "GET".into(),
            headers: Vec::new(),
            body: None,
            timeout: None,
            keepalive: true,
            workers: None,
            recovery_successes: None,
            write_ratio: None,
            verify_url: None,
        })
    }

    /// Resolves `resil load`'s flags into a plan, refusing bad input with an error that
    /// says what to do.
    pub fn from_args(args: &LoadArgs) -> Result<LoadPlan, LoadError> {
        let tuning = Tuning {
            threads: args.threads,
            max_connections: args.max_connections,
            fail_on: args.fail_on.as_deref(),
        };
        LoadPlan::resolve(&args.spec, tuning)
    }

    /// Resolves a spec with the engine's own tuning (what a scenario's load gets).
    pub fn from_spec(spec: &LoadSpec) -> Result<LoadPlan, LoadError> {
        LoadPlan::resolve(spec, Tuning::default())
    }

    fn resolve(spec: &LoadSpec, tuning: Tuning<'_>) -> Result<LoadPlan, LoadError> {
        let url = spec.url.clone().unwrap_or_else(|| DEFAULT_URL.to_string());
        let mut request = parse_url(&url, spec.path.as_deref())?;
        request.method = parse_method(&spec.method)?;
        request.headers = spec
            .headers
            .iter()
            .map(|h| parse_header(h))
            .collect::<Result<_, _>>()?;
        request.body = spec.body.as_ref().map(|b| b.as_bytes().to_vec());

        let pace = match (spec.concurrency, spec.rate, spec.ramp.as_deref()) {
            (Some(_), Some(_), _) | (Some(_), _, Some(_)) | (_, Some(_), Some(_)) => {
                return Err(LoadError::ConflictingPace);
            }
            (Some(0), _, _) => {
                return Err(LoadError::InvalidConcurrency);
            }
            (Some(c), None, None) => Pace::Closed { concurrency: c },
            (None, Some(rate), None) => Pace::Rate(check_rate(rate)?),
            (None, None, Some(ramp)) => Pace::Ramp(parse_ramp(ramp)?),
            (None, None, None) => Pace::Closed {
                concurrency: DEFAULT_CONCURRENCY,
            },
        };

        let ramp_total = match &pace {
            Pace::Ramp(stages) => Some(stages.iter().map(|s| s.duration).sum::<Duration>()),
            _ => None,
        };
        let stop = Stop {
            requests: spec.requests,
            // A ramp bounds itself; `--duration` longer than the ramp holds the last rate.
            duration: spec.duration.or(ramp_total),
        };
        if stop.requests.is_none() && stop.duration.is_none() {
            return Err(LoadError::Unbounded);
        }
        if stop.requests == Some(0) || stop.duration == Some(Duration::ZERO) {
            return Err(LoadError::EmptyRun);
        }
        let timeout = spec.timeout.unwrap_or(REQUEST_TIMEOUT);
        if timeout.is_zero() {
            return Err(LoadError::InvalidTimeout);
        }

        let mut warnings = Vec::new();
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let threads = match tuning.threads {
            Some(0) => return Err(LoadError::InvalidThreads),
            Some(t) => {
                if t > cpus {
                    warnings.push(format!(
                        "--threads {t} is more than the {cpus} CPU(s) this process may run on; \
                         threads will compete for CPU and latencies will include that"
                    ));
                }
                t
            }
            None => cpus,
        };
        // More threads than connections would leave threads idle.
        let threads = match pace {
            Pace::Closed { concurrency } => threads.min(concurrency as usize),
            _ => threads,
        };
        let max_connections = tuning.max_connections.unwrap_or(DEFAULT_MAX_CONNECTIONS);
        if max_connections < threads {
            return Err(LoadError::InvalidMaxConnections { threads });
        }

        if spec.workers == Some(0) {
            return Err(LoadError::InvalidWorkers);
        }
        let (thresholds, threshold_text) = match tuning.fail_on {
            Some(text) => {
                let parsed = thresholds::parse(text)?;
                let texts = parsed.iter().map(|t| t.to_string()).collect();
                (parsed, texts)
            }
            None => (Vec::new(), Vec::new()),
        };

        let writes = match spec.write_ratio {
            // 0 writes nothing: a plain read load.
            None => None,
            Some(0.0) => None,
            Some(ratio) => Some(write_mix(ratio, spec.verify_url.as_deref(), &request)?),
        };
        if writes.is_some() && spec.workers.is_some() {
            return Err(LoadError::WritesWithWorkers);
        }

        Ok(LoadPlan {
            url: format!("http://{}{}", request.authority, request.path_and_query),
            request,
            pace,
            stop,
            timeout,
            keepalive: spec.keepalive,
            threads,
            max_connections,
            thresholds,
            threshold_text,
            recovery_successes: spec
                .recovery_successes
                .unwrap_or(super::stats::RECOVERY_SUCCESSES)
                .max(1),
            warnings,
            segment: Segment::WHOLE,
            start_at: None,
            workers: spec.workers,
            metrics: Default::default(),
            writes,
        })
    }

    /// This plan's slice `segment` (see [`Segment`]), starting at `start_at`. The request
    /// bound of the open model stays global (each send has its number in the schedule).
    pub fn for_segment(
        &self,
        segment: Segment,
        start_at: chrono::DateTime<chrono::Utc>,
    ) -> LoadPlan {
        let mut plan = self.clone();
        plan.segment = segment;
        plan.start_at = Some(start_at);
        // Each generator writes keys of its own.
        if let Some(w) = &mut plan.writes {
            w.prefix = format!("{}g{}", w.prefix, segment.index);
        }
        plan.workers = None;
        if let Pace::Closed { concurrency } = plan.pace {
            let mine = segment.share(u64::from(concurrency)) as u32;
            plan.pace = Pace::Closed { concurrency: mine };
            plan.stop.requests = plan.stop.requests.map(|r| segment.share(r));
        }
        plan.max_connections =
            (plan.max_connections / segment.count.max(1) as usize).max(plan.threads);
        plan
    }
}

/// The engine knobs and verdict only `resil load`'s flags set; a scenario's load takes the
/// defaults (its verdicts are its SLOs).
#[derive(Debug, Clone, Copy, Default)]
struct Tuning<'a> {
    threads: Option<usize>,
    max_connections: Option<usize>,
    fail_on: Option<&'a str>,
}

fn check_rate(rate: f64) -> Result<f64, LoadError> {
    if rate.is_finite() && rate > 0.0 && rate <= 10_000_000.0 {
        Ok(rate)
    } else {
        Err(LoadError::InvalidRate {
            rate: rate.to_string(),
        })
    }
}

/// Parses `http://host[:port][/path][?query]`, appending `extra_path` to the path.
fn parse_url(url: &str, extra_path: Option<&str>) -> Result<RequestTemplate, LoadError> {
    let invalid = |reason: &str| LoadError::InvalidUrl {
        url: url.to_string(),
        reason: reason.to_string(),
    };
    let uri: Uri = url
        .parse()
        .map_err(|e: hyper::http::uri::InvalidUri| invalid(&e.to_string()))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some("https") => {
            return Err(invalid(
                "https is not supported; the load engine speaks plain HTTP/1.1 (use the http:// URL of the Service)",
            ));
        }
        Some(other) => return Err(invalid(&format!("scheme {other:?} is not http"))),
        None => {
            return Err(invalid(
                "missing scheme; write it like http://127.0.0.1:30080/",
            ));
        }
    }
    let authority = uri.authority().ok_or_else(|| invalid("missing host"))?;
    if authority.as_str().contains('@') {
        return Err(invalid(
            "user info in the URL is not supported; use --header Authorization:...",
        ));
    }
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']');
    if host.is_empty() {
        return Err(invalid("missing host"));
    }
    let mut path = uri
        .path_and_query()
        .map_or("/".to_string(), |p| p.as_str().to_string());
    if path.is_empty() {
        path = "/".into();
    }
    if let Some(extra) = extra_path {
        let (base, query) = match path.split_once('?') {
            Some((b, q)) => (b.to_string(), Some(q.to_string())),
            None => (path.clone(), None),
        };
        let joined = format!(
            "{}/{}",
            base.trim_end_matches('/'),
            extra.trim_start_matches('/')
        );
        path = match query {
            Some(q) => format!("{joined}?{q}"),
            None => joined,
        };
        if path.bytes().any(|b| b <= b' ' || b == 0x7f) {
            return Err(invalid(
                "--path contains spaces or control characters; percent-encode them",
            ));
        }
    }
    Ok(RequestTemplate {
        method: "GET".into(),
        host: host.to_string(),
        port: authority.port_u16().unwrap_or(80),
        authority: authority.as_str().to_string(),
        path_and_query: path,
        headers: Vec::new(),
        body: None,
    })
}

fn parse_method(method: &str) -> Result<String, LoadError> {
    let ok = !method.is_empty()
        && method
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    if ok {
        Ok(method.to_ascii_uppercase())
    } else {
        Err(LoadError::InvalidMethod {
            method: method.to_string(),
        })
    }
}

fn parse_header(text: &str) -> Result<(String, String), LoadError> {
    let invalid = || LoadError::InvalidHeader {
        header: text.to_string(),
    };
    let (name, value) = text.split_once(':').ok_or_else(invalid)?;
    let name = name.trim();
    let value = value.trim();
    let name_ok = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    let value_ok = value
        .bytes()
        .all(|b| b == b'\t' || (b >= b' ' && b != 0x7f));
    if name_ok && value_ok {
        Ok((name.to_string(), value.to_string()))
    } else {
        Err(invalid())
    }
}

/// Parses ramp stages `10s:100,30s:1000` (duration:rate, comma-separated).
pub fn parse_ramp(text: &str) -> Result<Vec<RampStage>, LoadError> {
    let invalid = |reason: String| LoadError::InvalidRamp {
        ramp: text.to_string(),
        reason,
    };
    let mut stages = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (duration, rate) = part
            .split_once(':')
            .ok_or_else(|| invalid(format!("stage {part:?} is not duration:rate")))?;
        let duration = humantime::parse_duration(duration.trim())
            .map_err(|e| invalid(format!("stage {part:?}: {e}")))?;
        let rate: f64 = rate
            .trim()
            .parse()
            .map_err(|_| invalid(format!("stage {part:?}: rate {rate:?} is not a number")))?;
        if duration.is_zero() {
            return Err(invalid(format!("stage {part:?} lasts no time")));
        }
        if !(rate.is_finite() && (0.0..=10_000_000.0).contains(&rate)) {
            return Err(invalid(format!(
                "stage {part:?}: rate must be between 0 and 10000000"
            )));
        }
        stages.push(RampStage { duration, rate });
    }
    if stages.is_empty() {
        return Err(invalid("no stages".into()));
    }
    if stages.iter().all(|s| s.rate == 0.0) {
        return Err(invalid(
            "every stage has rate 0: nothing would be sent".into(),
        ));
    }
    Ok(stages)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn plan(args: &[&str]) -> Result<LoadPlan, LoadError> {
        let mut argv = vec!["resil", "load"];
        argv.extend_from_slice(args);
        let cli = crate::cli::Cli::try_parse_from(argv).expect("clap accepts");
        match cli.command {
            crate::cli::Command::Load(args) => LoadPlan::from_args(&args),
            _ => unreachable!(),
        }
    }

    #[test]
    fn the_default_target_is_the_labs_nodeport_with_a_closed_model() {
        let p = plan(&["-d", "1s"]).unwrap();
        assert_eq!(p.url, "http://127.0.0.1:30080/");
        assert_eq!(p.request.port, 30080);
        assert_eq!(
            p.pace,
            Pace::Closed {
                concurrency: DEFAULT_CONCURRENCY
            }
        );
    }

    #[test]
    fn a_plan_for_a_url_keeps_the_pace_and_the_bound() {
        let stages = parse_ramp("1500ms:10,2s:20").unwrap();
        let stop = Stop {
            requests: None,
            duration: None,
        };
        let p = LoadPlan::for_url("http://127.0.0.1:9/", Pace::Ramp(stages.clone()), stop).unwrap();
        assert_eq!(p.pace, Pace::Ramp(stages));
        assert_eq!(p.stop.duration, Some(Duration::from_millis(3500)));
        assert!(matches!(
            LoadPlan::for_url("http://127.0.0.1:9/", Pace::Rate(5.0), stop),
            Err(LoadError::Unbounded)
        ));
    }

    #[test]
    fn an_unbounded_run_is_refused() {
        assert!(matches!(
            plan(&["http://127.0.0.1:1/"]),
            Err(LoadError::Unbounded)
        ));
    }

    #[test]
    fn a_ramp_bounds_itself_and_extra_duration_holds_the_last_rate() {
        let p = plan(&["--ramp", "10s:100,30s:1000"]).unwrap();
        assert_eq!(p.stop.duration, Some(Duration::from_secs(40)));
        let p = plan(&["--ramp", "10s:100", "-d", "1m"]).unwrap();
        assert_eq!(p.stop.duration, Some(Duration::from_secs(60)));
    }

    #[test]
    fn bad_input_is_refused_with_the_reason() {
        assert!(matches!(
            plan(&["--rate", "0", "-d", "1s"]),
            Err(LoadError::InvalidRate { .. })
        ));
        assert!(matches!(
            plan(&["not a url", "-d", "1s"]),
            Err(LoadError::InvalidUrl { .. })
        ));
        assert!(matches!(
            plan(&["https://x/", "-d", "1s"]),
            Err(LoadError::InvalidUrl { .. })
        ));
        assert!(matches!(
            plan(&["-H", "novalue", "-d", "1s"]),
            Err(LoadError::InvalidHeader { .. })
        ));
        assert!(matches!(
            plan(&["--ramp", "10s", "-d", "1s"]),
            Err(LoadError::InvalidRamp { .. })
        ));
        assert!(matches!(
            plan(&["-c", "0", "-d", "1s"]),
            Err(LoadError::InvalidConcurrency)
        ));
    }

    #[test]
    fn the_request_is_encoded_once_with_host_headers_and_body() {
        let p = plan(&[
            "http://127.0.0.1:8080/api?x=1",
            "--path",
            "work",
            "-m",
            "post",
            "-H",
            "X-Test: yes",
            "--body",
            "hi",
            "-r",
            "1",
        ])
        .unwrap();
        let wire = String::from_utf8(p.request.encode(true)).unwrap();
        assert_eq!(
            wire,
            "POST /api/work?x=1 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nX-Test: yes\r\nContent-Length: 2\r\n\r\nhi"
        );
        assert!(
            String::from_utf8(p.request.encode(false))
                .unwrap()
                .contains("Connection: close\r\n")
        );
    }
}
