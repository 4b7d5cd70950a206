//! `resil demo-app` as a real process: endpoints, identity headers, fault switches,
//! self-reverting deadlines, request counters and graceful SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A running `resil demo-app` on 127.0.0.1 with a port it picked; killed on drop.
pub(crate) struct DemoApp {
    pub(crate) child: Child,
    pub(crate) base: String,
}

impl DemoApp {
    pub(crate) fn start() -> DemoApp {
        DemoApp::start_with(&[])
    }

    pub(crate) fn start_with(extra_args: &[&str]) -> DemoApp {
        DemoApp::start_on(0, extra_args)
    }

    /// On `port` (0: any free one).
    pub(crate) fn start_on(port: u16, extra_args: &[&str]) -> DemoApp {
        let mut child = Command::new(env!("CARGO_BIN_EXE_resil"))
            .args([
                "demo-app",
                "--bind",
                "127.0.0.1",
                "--port",
                &port.to_string(),
            ])
            .args(extra_args)
            .env("COLOR", "green")
            .env("VERSION", "v7")
            .env("REGION", "eu-test")
            .env("POD_NAME", "web-green-abc12")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawning resil demo-app");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("reading the first stdout line");
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("first line should name the address, got {line:?}"))
            .to_string();
        DemoApp {
            child,
            base: format!("http://{addr}"),
        }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub(crate) fn pid(&self) -> i32 {
        self.child.id() as i32
    }
}

impl Drop for DemoApp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

fn assert_identity(response: &reqwest::Response) {
    let h = response.headers();
    let url = response.url().clone();
    assert_eq!(h["x-resil-pod"], "web-green-abc12", "{url}");
    assert_eq!(h["x-resil-color"], "green", "{url}");
    assert_eq!(h["x-resil-version"], "v7", "{url}");
}

async fn put_faults(app: &DemoApp, body: &str) -> reqwest::Response {
    client()
        .put(app.url("/admin/faults"))
        .body(body.to_string())
        .send()
        .await
        .unwrap()
}

async fn state(app: &DemoApp) -> Value {
    client()
        .get(app.url("/admin/state"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn every_endpoint_answers_and_carries_the_identity_headers() {
    let app = DemoApp::start();
    let c = client();
    let cases = [
        ("/", 200),
        ("/healthz", 200),
        ("/readyz", 200),
        ("/work?ms=20", 200),
        ("/work?ms=many", 400),
        ("/admin/state", 200),
        ("/admin/faults", 200),
        ("/no/such/path", 404),
    ];
    for (path, status) in cases {
        let response = c.get(app.url(path)).send().await.unwrap();
        assert_eq!(response.status().as_u16(), status, "{path}");
        assert_identity(&response);
    }
    let wrong_method = c.post(app.url("/healthz")).send().await.unwrap();
    assert_eq!(wrong_method.status().as_u16(), 405);
    assert_identity(&wrong_method);

    let page = c
        .get(app.url("/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for shown in ["green", "v7", "eu-test", "web-green-abc12"] {
        assert!(page.contains(shown), "the page should show {shown}: {page}");
    }
    let work: Value = c
        .get(app.url("/work?ms=15"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(work["burned_ms"], 15);
    assert_eq!(work["capped"], false);
}

#[tokio::test]
async fn work_is_capped_by_max_work() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_resil"))
        .args(["demo-app", "--bind", "127.0.0.1", "--port", "0"])
        .args(["--max-work", "30ms"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap()
        .to_string();
    let work: Value = client()
        .get(format!("http://{addr}/work?ms=5000"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(work["burned_ms"], 30);
    assert_eq!(work["capped"], true);
}

#[tokio::test]
async fn error_rate_one_gives_500s_and_reset_restores_200s() {
    let app = DemoApp::start();
    let c = client();
    let set = put_faults(&app, r#"{"error_rate":1.0}"#).await;
    assert_eq!(set.status(), 200);
    for _ in 0..20 {
        let response = c.get(app.url("/")).send().await.unwrap();
        assert_eq!(response.status(), 500);
        assert_identity(&response);
    }
    // Probes stay healthy: a degraded pod is not a dead pod.
    assert_eq!(
        c.get(app.url("/healthz")).send().await.unwrap().status(),
        200
    );
    assert_eq!(
        c.get(app.url("/readyz")).send().await.unwrap().status(),
        200
    );

    let reset = c.delete(app.url("/admin/faults")).send().await.unwrap();
    assert_eq!(reset.status(), 200);
    for _ in 0..20 {
        assert_eq!(c.get(app.url("/")).send().await.unwrap().status(), 200);
    }
}

#[tokio::test]
async fn a_partial_error_rate_fails_about_that_fraction() {
    let app = DemoApp::start();
    put_faults(&app, r#"{"error_rate":0.3}"#).await;
    let c = client();
    let mut failed = 0;
    for _ in 0..400 {
        if c.get(app.url("/")).send().await.unwrap().status() == 500 {
            failed += 1;
        }
    }
    // 400 draws at p = 0.3: mean 120, sd ≈ 9.2; ±5 sd never flakes in practice.
    assert!((74..=166).contains(&failed), "{failed} of 400 failed");
}

#[tokio::test]
async fn the_unready_switch_flips_readyz_and_back() {
    let app = DemoApp::start();
    let c = client();
    put_faults(&app, r#"{"unready":true}"#).await;
    let response = c.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(response.status(), 503);
    assert_identity(&response);
    assert_eq!(
        c.get(app.url("/healthz")).send().await.unwrap().status(),
        200
    );
    assert_eq!(c.get(app.url("/")).send().await.unwrap().status(), 200);
    c.delete(app.url("/admin/faults")).send().await.unwrap();
    assert_eq!(
        c.get(app.url("/readyz")).send().await.unwrap().status(),
        200
    );
}

#[tokio::test]
async fn faults_with_a_deadline_revert_without_a_call_back() {
    let app = DemoApp::start();
    let c = client();
    let until = chrono::Utc::now() + chrono::Duration::milliseconds(800);
    let body = serde_json::json!({"unready": true, "error_rate": 1.0, "until": until});
    let set: Value = put_faults(&app, &body.to_string())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(set["unready"], true);
    assert_eq!(
        c.get(app.url("/readyz")).send().await.unwrap().status(),
        503
    );
    assert_eq!(c.get(app.url("/")).send().await.unwrap().status(), 500);

    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(
        c.get(app.url("/readyz")).send().await.unwrap().status(),
        200
    );
    assert_eq!(c.get(app.url("/")).send().await.unwrap().status(), 200);
    let faults = &state(&app).await["faults"];
    assert_eq!(faults["unready"], false);
    assert_eq!(faults["until"], Value::Null);

    // The relative form, on the app's own clock.
    let set: Value = put_faults(&app, r#"{"unready":true,"for":"300ms"}"#)
        .await
        .json()
        .await
        .unwrap();
    assert!(set["until"].is_string());
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        c.get(app.url("/readyz")).send().await.unwrap().status(),
        200
    );
}

#[tokio::test]
async fn latency_delays_traffic_but_not_probes() {
    let app = DemoApp::start();
    let c = client();
    put_faults(&app, r#"{"latency_ms":300,"jitter_ms":50}"#).await;
    let start = Instant::now();
    assert_eq!(c.get(app.url("/")).send().await.unwrap().status(), 200);
    let slow = start.elapsed();
    assert!(slow >= Duration::from_millis(300), "took {slow:?}");
    assert!(slow < Duration::from_millis(2000), "took {slow:?}");
    let start = Instant::now();
    c.get(app.url("/healthz")).send().await.unwrap();
    assert!(start.elapsed() < Duration::from_millis(250));
}

#[tokio::test]
async fn hang_holds_requests_until_switched_off() {
    let app = DemoApp::start();
    put_faults(&app, r#"{"hang":true}"#).await;
    let url = app.url("/");
    let hung = tokio::spawn(async move { client().get(url).send().await.map(|r| r.status()) });
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(!hung.is_finished(), "a hung request was answered");
    // Admin stays reachable while everything else hangs.
    let cleared = client()
        .delete(app.url("/admin/faults"))
        .send()
        .await
        .unwrap();
    assert_eq!(cleared.status(), 200);
    let status = tokio::time::timeout(Duration::from_secs(5), hung)
        .await
        .expect("the hung request should be answered once hang is off")
        .unwrap()
        .unwrap();
    assert_eq!(status, 200);
}

#[tokio::test]
async fn bad_fault_requests_are_refused_with_a_json_reason() {
    let app = DemoApp::start();
    for body in [
        r#"{"error_rate":2}"#,
        r#"{"eror_rate":0.5}"#,
        r#"{"until":"2001-01-01T00:00:00Z"}"#,
        "not json",
    ] {
        let response = put_faults(&app, body).await;
        assert_eq!(response.status(), 400, "{body}");
        assert_identity(&response);
        let reason: Value = response.json().await.unwrap();
        assert!(reason["error"].is_string(), "{body}: {reason}");
    }
    // Nothing was applied.
    assert_eq!(state(&app).await["faults"]["error_rate"], 0.0);
}

#[tokio::test]
async fn counters_match_the_requests_sent() {
    let app = DemoApp::start();
    let c = client();
    for _ in 0..37 {
        c.get(app.url("/")).send().await.unwrap();
    }
    for _ in 0..5 {
        c.get(app.url("/work?ms=1")).send().await.unwrap();
    }
    for _ in 0..3 {
        c.get(app.url("/missing")).send().await.unwrap();
    }
    put_faults(&app, r#"{"error_rate":1.0}"#).await;
    for _ in 0..4 {
        c.get(app.url("/")).send().await.unwrap();
    }
    let typed: resil::demo::app::AdminState = serde_json::from_value(state(&app).await).unwrap();
    assert_eq!(typed.pod, "web-green-abc12");
    let requests = &state(&app).await["requests"];
    // 37 + 5 + 3 + 1 PUT + 4 = 50, plus the typed state read above; the state request
    // itself is not counted yet.
    assert_eq!(requests["total"], 51, "{requests}");
    assert_eq!(requests["by_class"]["root"], 41);
    assert_eq!(requests["by_class"]["work"], 5);
    assert_eq!(requests["by_class"]["other"], 3);
    assert_eq!(requests["by_class"]["admin"], 2);
    assert_eq!(requests["by_status"]["200"], 44);
    assert_eq!(requests["by_status"]["404"], 3);
    assert_eq!(requests["by_status"]["500"], 4);
}

#[cfg(unix)]
#[tokio::test]
async fn sigterm_finishes_in_flight_requests_and_exits_zero() {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;

    let mut app = DemoApp::start();
    let url = app.url("/work?ms=600");
    let in_flight = tokio::spawn(async move { client().get(url).send().await.map(|r| r.status()) });
    tokio::time::sleep(Duration::from_millis(200)).await;
    kill(Pid::from_raw(app.pid()), Signal::SIGTERM).unwrap();

    let status = in_flight
        .await
        .unwrap()
        .expect("the in-flight request must be answered");
    assert_eq!(status, 200);
    let deadline = Instant::now() + Duration::from_secs(5);
    let exit = loop {
        if let Some(exit) = app.child.try_wait().unwrap() {
            break exit;
        }
        assert!(
            Instant::now() < deadline,
            "demo-app did not exit after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(exit.code(), Some(0), "{exit:?}");
}

#[cfg(unix)]
#[tokio::test]
async fn after_sigterm_it_drains_answering_with_connection_close_and_failing_readiness() {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;

    let mut app = DemoApp::start_with(&["--drain", "3s"]);
    // One keep-alive connection, as a proxy or a load generator holds.
    let c = reqwest::Client::builder()
        .pool_max_idle_per_host(1)
        .build()
        .unwrap();
    let before = c.get(app.url("/")).send().await.unwrap();
    assert_eq!(before.status(), 200);
    assert_eq!(before.headers().get("connection"), None);
    kill(Pid::from_raw(app.pid()), Signal::SIGTERM).unwrap();

    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let ready = c.get(app.url("/readyz")).send().await.unwrap();
        if ready.status() == 503 {
            assert_eq!(ready.headers()["connection"], "close");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "/readyz kept passing after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Still serving while it drains, telling the client to go elsewhere next time.
    let during = c.get(app.url("/")).send().await.unwrap();
    assert_eq!(during.status(), 200);
    assert_eq!(during.headers()["connection"], "close");

    let deadline = Instant::now() + Duration::from_secs(10);
    let exit = loop {
        if let Some(exit) = app.child.try_wait().unwrap() {
            break exit;
        }
        assert!(
            Instant::now() < deadline,
            "demo-app did not exit after draining"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(exit.code(), Some(0), "{exit:?}");
}

#[cfg(unix)]
#[tokio::test]
async fn sigterm_releases_hung_requests() {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;

    let mut app = DemoApp::start();
    put_faults(&app, r#"{"hang":true}"#).await;
    let url = app.url("/");
    let hung = tokio::spawn(async move { client().get(url).send().await.map(|r| r.status()) });
    tokio::time::sleep(Duration::from_millis(200)).await;
    kill(Pid::from_raw(app.pid()), Signal::SIGTERM).unwrap();
    let status = tokio::time::timeout(Duration::from_secs(5), hung)
        .await
        .expect("a hung request must not outlive shutdown")
        .unwrap()
        .unwrap();
    assert_eq!(status, 503);
    let deadline = Instant::now() + Duration::from_secs(5);
    while app.child.try_wait().unwrap().is_none() {
        assert!(
            Instant::now() < deadline,
            "demo-app did not exit after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(app.child.try_wait().unwrap().unwrap().code(), Some(0));
}

#[tokio::test]
async fn a_bad_release_fails_its_traffic_but_stays_ready_and_survives_a_fault_reset() {
    let app = DemoApp::start_with(&["--app-version", "v2-bad"]);
    let c = client();
    let s = state(&app).await;
    assert_eq!(s["release"]["fail_rate"], 0.3, "{s}");
    // Chaos clearing its faults leaves the release as it is.
    c.delete(app.url("/admin/faults")).send().await.unwrap();
    let mut failed = 0;
    for _ in 0..400 {
        let response = c.get(app.url("/")).send().await.unwrap();
        assert_eq!(response.headers()["x-resil-version"], "v2-bad");
        if response.status() == 500 {
            failed += 1;
        }
    }
    // 400 draws at p = 0.3: mean 120, sd ≈ 9.2; ±5 sd never flakes in practice.
    assert!((74..=166).contains(&failed), "{failed} of 400 failed");
    for probe in ["/readyz", "/healthz"] {
        for _ in 0..20 {
            assert_eq!(c.get(app.url(probe)).send().await.unwrap().status(), 200);
        }
    }
}

#[tokio::test]
async fn fail_rate_and_latency_come_from_the_environment() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_resil"))
        .args(["demo-app", "--bind", "127.0.0.1", "--port", "0"])
        .env("VERSION", "v2")
        .env("FAIL_RATE", "100%")
        .env("LATENCY", "150ms")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let app = DemoApp {
        child,
        base: format!("http://{}", line.trim().trim_start_matches("listening on ")),
    };
    let c = client();
    let started = Instant::now();
    assert_eq!(c.get(app.url("/")).send().await.unwrap().status(), 500);
    assert!(started.elapsed() >= Duration::from_millis(150));
    let started = Instant::now();
    assert_eq!(
        c.get(app.url("/readyz")).send().await.unwrap().status(),
        200
    );
    assert!(started.elapsed() < Duration::from_millis(150));
    // A value that is not a rate is refused at start, naming the variable.
    let out = Command::new(env!("CARGO_BIN_EXE_resil"))
        .args(["demo-app", "--bind", "127.0.0.1", "--port", "0"])
        .env("FAIL_RATE", "often")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("FAIL_RATE"));
}
