//! `resil report` over the hand-made results directories in tests/fixtures/results/:
//! golden output for every format (`RESIL_UPDATE_GOLDEN=1` rewrites the goldens), the JSON
//! against schema/report.schema.json, SLO exit codes and bad input through the real binary.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use resil::Exit;
use resil::cli::ReportFormat;
use resil::judge::Slos;
use resil::report::{ReportPlan, generate};
use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn fixture(name: &str) -> PathBuf {
    root().join("tests/fixtures/results").join(name)
}

/// Compares `actual` with tests/golden/<name>, or rewrites it when RESIL_UPDATE_GOLDEN=1.
pub fn check_golden(name: &str, actual: &str) {
    let path = root().join("tests/golden").join(name);
    if std::env::var_os("RESIL_UPDATE_GOLDEN").is_some_and(|v| v == "1") {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|_| {
        panic!(
            "{} is missing: run with RESIL_UPDATE_GOLDEN=1 to create it",
            path.display()
        )
    });
    if expected != actual {
        let line = expected
            .lines()
            .zip(actual.lines())
            .position(|(e, a)| e != a)
            .map_or_else(|| "length".to_string(), |i| format!("line {}", i + 1));
        panic!(
            "{} differs from the output at {line} (RESIL_UPDATE_GOLDEN=1 rewrites it):\n{actual}",
            path.display()
        );
    }
}

fn report(
    dir: &Path,
    format: ReportFormat,
    slos: Option<&str>,
    baseline: Option<&Path>,
) -> (String, Exit) {
    let plan = ReportPlan {
        dir: dir.to_path_buf(),
        format,
        slos: slos.map(|s| Slos::parse_list(s).unwrap()),
        baseline: baseline.map(Path::to_path_buf),
        pricing: None,
    };
    let mut out = Vec::new();
    let exit = generate(&plan, &mut out).unwrap();
    (String::from_utf8(out).unwrap(), exit)
}

const FORMATS: &[(ReportFormat, &str)] = &[
    (ReportFormat::Table, "table.txt"),
    (ReportFormat::Json, "json"),
    (ReportFormat::Markdown, "md"),
    (ReportFormat::Junit, "junit.xml"),
    (ReportFormat::Html, "html"),
    (ReportFormat::Openmetrics, "openmetrics.txt"),
];

#[test]
fn report_of_a_complete_failover_run_matches_the_goldens_in_every_format() {
    for (format, ext) in FORMATS {
        let (out, exit) = report(&fixture("failover"), *format, None, None);
        assert_eq!(exit, Exit::Ok, "{ext}: every SLO of the fixture holds");
        check_golden(&format!("failover.{ext}"), &out);
    }
}

#[test]
fn report_of_an_interrupted_run_is_marked_partial_in_every_format() {
    for (format, ext) in FORMATS {
        let (out, exit) = report(&fixture("partial"), *format, None, None);
        assert_eq!(exit, Exit::SloFailed, "{ext}");
        let marked = match format {
            ReportFormat::Json => out.contains("\"partial\": true"),
            ReportFormat::Junit => out.contains("name=\"partial\" value=\"true\""),
            ReportFormat::Openmetrics => out.contains("status=\"partial\""),
            _ => out.contains("PARTIAL RUN (interrupted)"),
        };
        assert!(marked, "{ext} does not mark the run partial:\n{out}");
        check_golden(&format!("partial.{ext}"), &out);
    }
}

#[test]
fn report_compares_with_a_baseline_and_flags_regressions() {
    let (md, _) = report(
        &fixture("partial"),
        ReportFormat::Markdown,
        None,
        Some(&fixture("failover")),
    );
    check_golden("partial-vs-failover.md", &md);
    let (json, _) = report(
        &fixture("partial"),
        ReportFormat::Json,
        None,
        Some(&fixture("failover")),
    );
    let v: Value = serde_json::from_str(&json).unwrap();
    let deltas = v["baseline"]["deltas"].as_array().unwrap();
    let error_rate = deltas.iter().find(|d| d["metric"] == "error_rate").unwrap();
    assert_eq!(error_rate["regression"], true);
    let cost = deltas
        .iter()
        .find(|d| d["metric"] == "cost_per_1m")
        .unwrap();
    assert_eq!(cost["regression"], false, "cheaper is not a regression");
    assert_eq!(v["baseline"]["regressions"], 1);
}

#[test]
fn report_shows_every_controller_decision_with_its_rule_action_and_inputs() {
    let (json, _) = report(&fixture("failover"), ReportFormat::Json, None, None);
    let v: Value = serde_json::from_str(&json).unwrap();
    let decisions = v["decisions"].as_array().unwrap();
    let controllers: Vec<&str> = decisions
        .iter()
        .map(|d| d["controller"].as_str().unwrap())
        .collect();
    assert_eq!(controllers, ["watch", "autoscale"], "in time order");
    assert_eq!(decisions[1]["action"], "raise minReplicas 1 → 3");
    assert_eq!(decisions[1]["inputs"]["observed"]["forecast"], 142.5);
    for (format, _) in FORMATS {
        // Machine formats: the decisions are in the JSON; OpenMetrics carries figures only.
        if matches!(
            format,
            ReportFormat::Json | ReportFormat::Junit | ReportFormat::Openmetrics
        ) {
            continue;
        }
        let (out, _) = report(&fixture("failover"), *format, None, None);
        for want in [
            "Decisions",
            "switch service/web to green",
            "raise minReplicas 1 → 3",
            "holt, error on the last",
        ] {
            assert!(out.contains(want), "{format:?} lacks {want:?}:\n{out}");
        }
    }
}

#[test]
fn failover_episodes_join_control_plane_time_with_client_downtime_and_errors() {
    let (json, _) = report(&fixture("failover"), ReportFormat::Json, None, None);
    let v: Value = serde_json::from_str(&json).unwrap();
    let f = &v["failovers"][0];
    assert_eq!(f["control_plane_ms"], 750);
    assert_eq!(f["client_downtime_ms"], 800);
    assert_eq!(f["errors_during"], 40);
    // 47.5 pod-s × $0.012/pod-h ÷ 1960 ok requests × 1e6 = $0.080782…
    let per_1m = v["cost"]["total"]["cost_per_1m"].as_f64().unwrap();
    assert!(
        (per_1m - 47.5 / 3600.0 * 0.012 / 1960.0 * 1e6).abs() < 1e-9,
        "{per_1m}"
    );
}

#[test]
fn an_unmeasured_metric_or_a_downtime_still_open_at_the_end_fails_its_slo() {
    let (json, exit) = report(
        &fixture("partial"),
        ReportFormat::Json,
        Some("downtime<1s,failover_time<2s"),
        None,
    );
    assert_eq!(exit, Exit::SloFailed);
    let v: Value = serde_json::from_str(&json).unwrap();
    // Down from 09:00:04.010 to the end of the recording at 09:00:10.000.
    assert_eq!(v["slos"][0]["actual"], 5990.0);
    assert_eq!(v["slos"][0]["passed"], false);
    assert_eq!(v["slos"][1]["actual"], Value::Null);
    assert!(
        v["slos"][1]["message"]
            .as_str()
            .unwrap()
            .contains("no failover was recorded")
    );
}

// ------------------------------------------------------------------ JSON schema

/// A minimal JSON Schema check for what schema/report.schema.json uses: type, required,
/// properties, additionalProperties, items, $ref, anyOf, enum, const, minimum.
fn validate(schema: &Value, root: &Value, value: &Value, at: &str, errors: &mut Vec<String>) {
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        let name = r.trim_start_matches("#/$defs/");
        return validate(&root["$defs"][name], root, value, at, errors);
    }
    if let Some(any) = schema.get("anyOf").and_then(Value::as_array) {
        let ok = any.iter().any(|s| {
            let mut e = Vec::new();
            validate(s, root, value, at, &mut e);
            e.is_empty()
        });
        if !ok {
            errors.push(format!("{at}: matches no anyOf branch"));
        }
        return;
    }
    if let Some(ty) = schema.get("type") {
        let types: Vec<&str> = match ty {
            Value::String(s) => vec![s.as_str()],
            Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
            _ => vec![],
        };
        let matches = |t: &str| match t {
            "object" => value.is_object(),
            "array" => value.is_array(),
            "string" => value.is_string(),
            "number" => value.is_number(),
            "integer" => value.is_u64() || value.is_i64(),
            "boolean" => value.is_boolean(),
            "null" => value.is_null(),
            _ => false,
        };
        if !types.iter().any(|t| matches(t)) {
            errors.push(format!("{at}: {value} is not {types:?}"));
            return;
        }
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.contains(value)
    {
        errors.push(format!("{at}: {value} not in {allowed:?}"));
    }
    if let Some(c) = schema.get("const")
        && c != value
    {
        errors.push(format!("{at}: {value} != {c}"));
    }
    if let (Some(min), Some(n)) = (
        schema.get("minimum").and_then(Value::as_f64),
        value.as_f64(),
    ) && n < min
    {
        errors.push(format!("{at}: {n} < {min}"));
    }
    if let Some(obj) = value.as_object() {
        for key in schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if !obj.contains_key(key.as_str().unwrap()) {
                errors.push(format!("{at}: missing required {key}"));
            }
        }
        let props = schema.get("properties").and_then(Value::as_object);
        for (k, v) in obj {
            match (
                props.and_then(|p| p.get(k)),
                schema.get("additionalProperties"),
            ) {
                (Some(s), _) => validate(s, root, v, &format!("{at}.{k}"), errors),
                (None, Some(Value::Bool(false))) => errors.push(format!("{at}: unexpected {k}")),
                (None, Some(s)) if s.is_object() => {
                    validate(s, root, v, &format!("{at}.{k}"), errors)
                }
                _ => {}
            }
        }
    }
    if let (Some(items), Some(arr)) = (schema.get("items"), value.as_array()) {
        for (i, v) in arr.iter().enumerate() {
            validate(items, root, v, &format!("{at}[{i}]"), errors);
        }
    }
}

#[test]
fn json_reports_validate_against_the_committed_schema() {
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("schema/report.schema.json")).unwrap(),
    )
    .unwrap();
    let cases = [
        ("failover", None),
        ("partial", None),
        ("partial", Some(fixture("failover"))),
    ];
    for (name, baseline) in cases {
        let (json, _) = report(
            &fixture(name),
            ReportFormat::Json,
            None,
            baseline.as_deref(),
        );
        let value: Value = serde_json::from_str(&json).unwrap();
        let mut errors = Vec::new();
        validate(&schema, &schema, &value, "$", &mut errors);
        assert!(errors.is_empty(), "{name}: {errors:#?}");
        assert_eq!(
            value["report_schema_version"],
            resil::report::REPORT_SCHEMA_VERSION
        );
    }
    // The validator itself rejects what the schema forbids.
    let mut bad: Value =
        serde_json::from_str(&report(&fixture("failover"), ReportFormat::Json, None, None).0)
            .unwrap();
    bad["run"].as_object_mut().unwrap().remove("run_id");
    bad["slos"][0]["passed"] = Value::from("yes");
    let mut errors = Vec::new();
    validate(&schema, &schema, &bad, "$", &mut errors);
    assert_eq!(errors.len(), 2, "{errors:#?}");
}

// ------------------------------------------------------------------ HTML

#[test]
fn html_report_is_self_contained_with_three_charts_and_markers() {
    let (html, _) = report(&fixture("failover"), ReportFormat::Html, None, None);
    assert_eq!(
        html.matches("<svg class=\"chart\"").count(),
        3,
        "traffic, latency, replicas"
    );
    for title in [
        "Requests and errors",
        "Latency",
        "Ready replicas per colour",
    ] {
        assert!(html.contains(&format!("aria-label=\"{title}\"")), "{title}");
    }
    // Two chaos injections and one selector switch, on each of the three charts.
    assert_eq!(html.matches("<g class=\"marker chaos\">").count(), 6);
    assert_eq!(html.matches("<g class=\"marker switch\">").count(), 3);
    for forbidden in [
        "<script", "<link", "<img", "<iframe", "src=", "href=", "url(", "@import",
    ] {
        assert!(
            !html.contains(forbidden),
            "HTML must not load anything: found {forbidden}"
        );
    }
    // The only URL is the load target, printed as text.
    let target = "http://127.0.0.1:30080/";
    let urls = html.matches("http://").count() + html.matches("https://").count();
    assert_eq!(
        urls,
        html.matches(&format!("<p>target {target}</p>")).count(),
        "{html}"
    );
}

// ------------------------------------------------------------------ the binary

fn resil(args: &[&str], cwd: &Path) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_resil"))
        .args(args)
        .current_dir(cwd)
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn exit_code_is_0_when_slos_hold_1_when_one_fails_2_when_one_does_not_parse() {
    let dir = fixture("failover");
    let d = dir.to_str().unwrap();
    assert_eq!(resil(&["report", d, "-o", "json"], &root()).0, 0);
    let (code, out, _) = resil(
        &["report", d, "-o", "junit", "--slo", "p99<300ms,p50<5ms"],
        &root(),
    );
    assert_eq!(code, 1);
    assert!(
        out.contains("tests=\"2\"") && out.contains("failures=\"1\""),
        "{out}"
    );
    let (code, _, err) = resil(&["report", d, "--slo", "p99<fast"], &root());
    assert_eq!(code, 2);
    assert!(err.contains("--slo") && err.contains("p99<fast"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    let (code, _, _) = resil(
        &[
            "report",
            fixture("partial").to_str().unwrap(),
            "-o",
            "table",
        ],
        &root(),
    );
    assert_eq!(code, 1, "the partial fixture's own SLOs fail");
}

/// The failover fixture with two window SLOs recorded as `resil run` records them
/// (`window_slos`), or as an older resil did (only inside the recorded scenario): the
/// fault's second fails `error_rate<1%`, the quiet end holds `p99<100ms`.
fn with_window_slos(recorded_in: &str) -> tempfile::TempDir {
    let tmp = copy_fixture("failover");
    let path = tmp.path().join("run.json");
    let mut meta: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let windows = serde_json::json!([
        {"from": "5s", "to": "6s", "slo": "error_rate<1%"},
        {"from": "15s", "slo": "p99<100ms"},
    ]);
    match recorded_in {
        "run.json" => meta["window_slos"] = windows,
        _ => meta["scenario"]["window_slos"] = windows,
    }
    std::fs::write(&path, serde_json::to_string_pretty(&meta).unwrap()).unwrap();
    tmp
}

#[test]
fn a_failing_window_slo_the_run_recorded_fails_the_report_in_every_format() {
    for recorded_in in ["run.json", "the scenario"] {
        let tmp = with_window_slos(recorded_in);
        let d = tmp.path().to_str().unwrap();
        for format in ["table", "markdown", "json", "junit", "html"] {
            let (code, _, err) = resil(&["report", d, "-o", format], &root());
            assert_eq!(code, 1, "{recorded_in}, {format}: {err}");
        }
        let (_, json, _) = resil(&["report", d, "-o", "json"], &root());
        let v: Value = serde_json::from_str(&json).unwrap();
        let verdicts: Vec<(&str, bool)> = v["slos"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| (s["expression"].as_str().unwrap(), s["passed"] == true))
            .collect();
        assert_eq!(
            verdicts[5..],
            [
                ("error_rate<1% from 5s to 6s", false),
                ("p99<100ms from 15s", true)
            ],
            "{recorded_in}: {json}"
        );
        assert!(verdicts[..5].iter().all(|(_, passed)| *passed), "{json}");
        assert_eq!(v["slos"][5]["actual"], 0.4);
        assert_eq!(v["slos_passed"], false);
        let (_, junit, _) = resil(&["report", d, "-o", "junit"], &root());
        assert!(
            junit.contains("tests=\"7\"") && junit.contains("failures=\"1\""),
            "{junit}"
        );
        let (_, table, _) = resil(&["report", d, "-o", "table"], &root());
        assert!(table.contains("1 of 7 SLOs failed"), "{table}");
        // `--slo` replaces every SLO the run recorded, window ones too.
        let (code, _, _) = resil(&["report", d, "--slo", "error_rate<3%"], &root());
        assert_eq!(code, 0);
    }
}

fn copy_fixture(name: &str) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(fixture(name)).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), tmp.path().join(entry.file_name())).unwrap();
    }
    tmp
}

/// Runs `resil report` on a broken copy of the failover fixture: exit 2, no panic, and an
/// error that names `want`.
fn assert_bad_input(break_it: impl FnOnce(&Path), want: &str) {
    let tmp = copy_fixture("failover");
    break_it(tmp.path());
    let (code, out, err) = resil(
        &["report", tmp.path().to_str().unwrap(), "-o", "json"],
        &root(),
    );
    assert_eq!(code, 2, "stdout: {out}\nstderr: {err}");
    assert!(err.contains(want), "error should name {want:?}: {err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn bad_input_is_a_clear_error_naming_the_file_and_line() {
    assert_bad_input(
        |d| {
            let s = std::fs::read_to_string(d.join("summary.json")).unwrap();
            std::fs::write(d.join("summary.json"), &s[..s.len() / 2]).unwrap();
        },
        "summary.json:",
    );
    assert_bad_input(
        |d| {
            let s = std::fs::read_to_string(d.join("timeline.jsonl")).unwrap();
            let mut lines: Vec<&str> = s.lines().collect();
            lines[3] = "{\"ts\": garbage";
            std::fs::write(d.join("timeline.jsonl"), lines.join("\n")).unwrap();
        },
        "timeline.jsonl:4",
    );
    assert_bad_input(
        |d| {
            let s = std::fs::read_to_string(d.join("run.json")).unwrap();
            std::fs::write(
                d.join("run.json"),
                s.replace("\"schema_version\": 1", "\"schema_version\": 7"),
            )
            .unwrap();
        },
        "schema version 7 is not supported",
    );
    assert_bad_input(
        |d| {
            let s = std::fs::read_to_string(d.join("run.json")).unwrap();
            std::fs::write(
                d.join("run.json"),
                s.replace("\"p99<300ms\"", "\"p99 under 300ms\""),
            )
            .unwrap();
        },
        "SLOs recorded in",
    );
    assert_bad_input(
        |d| {
            std::fs::write(
                d.join("latency.hdr"),
                "#[StartTime: 1 (seconds since epoch)]\nTag=overall,0.0,1.0,1.0,!!!notbase64\n",
            )
            .unwrap()
        },
        "latency.hdr",
    );
    assert_bad_input(
        |d| std::fs::remove_file(d.join("run.json")).unwrap(),
        "not a results directory",
    );
    let (code, _, err) = resil(&["report", "/nonexistent/results/x"], &root());
    assert_eq!(code, 2);
    assert!(
        err.contains("/nonexistent/results/x: no such results directory"),
        "{err}"
    );
}

#[test]
fn without_a_directory_the_newest_run_under_results_is_reported() {
    let cwd = tempfile::tempdir().unwrap();
    let (code, _, err) = resil(&["report"], cwd.path());
    assert_eq!(code, 2);
    assert!(err.contains("no run found under results/"), "{err}");
    let results = cwd.path().join("results");
    std::fs::create_dir(&results).unwrap();
    for name in ["failover", "partial"] {
        let target = results.join(name);
        std::fs::create_dir(&target).unwrap();
        for entry in std::fs::read_dir(fixture(name)).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), target.join(entry.file_name())).unwrap();
        }
    }
    // partial started at 09:00, failover at 08:30: partial is the newest.
    let (code, out, _) = resil(&["report", "-o", "markdown"], cwd.path());
    assert_eq!(code, 1);
    assert!(out.contains("20261123T090000Z-outage"), "{out}");
    // A directory of runs, as `resil run --out results/` leaves it, means its newest.
    let (code, out, _) = resil(&["report", "results", "-o", "json"], cwd.path());
    assert_eq!(code, 1);
    assert!(out.contains("20261123T090000Z-outage"), "{out}");
}

// ------------------------------------------------------------------ fixture data

/// Rewrites tests/fixtures/results/failover/latency.hdr (run with `--ignored` after
/// changing the distribution, then RESIL_UPDATE_GOLDEN=1 for the goldens).
#[test]
#[ignore = "regenerates a checked-in fixture"]
fn regenerate_failover_latency_hdr() {
    use resil::results::hdr::{TaggedHistogram, new_histogram, write};
    let mut overall = new_histogram();
    let mut blue = new_histogram();
    let mut green = new_histogram();
    for i in 0..500u64 {
        let v = 10_000 + (i % 10) * 1_000;
        blue.record(v).unwrap();
        overall.record(v).unwrap();
    }
    for i in 0..1460u64 {
        let v = if i % 100 == 7 {
            180_000 + i * 10
        } else {
            11_000 + (i % 20) * 1_000
        };
        green.record(v).unwrap();
        overall.record(v).unwrap();
    }
    let start = Duration::from_secs(1_795_422_600); // 2026-11-23T08:30:00Z
    let tagged = |tag: &str, h| TaggedHistogram {
        tag: tag.into(),
        start,
        duration: Duration::from_secs(20),
        histogram: h,
    };
    write(
        &fixture("failover").join("latency.hdr"),
        &[
            tagged("overall", overall),
            tagged("color=blue", blue),
            tagged("color=green", green),
        ],
    )
    .unwrap();
}

// ------------------------------------------------------------------ writes and RPO

/// The failover fixture with a write mix whose read-back lost three writes.
fn with_lost_writes() -> tempfile::TempDir {
    let dir = copy_fixture("failover");
    let path = dir.path().join("summary.json");
    let mut summary: Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    summary["load"]["writes"] = serde_json::json!({
        "write_ratio": 0.2, "attempted": 400, "acknowledged": 396, "unacknowledged": 4,
        "verify_url": "http://127.0.0.1:31080", "verified": 393, "lost": 3,
        "rpo_window_ms": 420, "first_lost_at": "2026-11-23T08:30:10.100Z",
        "last_lost_at": "2026-11-23T08:30:10.520Z", "wrong_value": 0, "acked_twice": 0,
        "unverified": 0, "untracked": 0, "examples": ["lost w1-0-7 (ack region-a:8)"]
    });
    std::fs::write(&path, serde_json::to_string_pretty(&summary).unwrap()).unwrap();
    dir
}

#[test]
fn lost_writes_are_the_rpo_in_every_format_and_judged_by_rpo_slos() {
    let dir = with_lost_writes();
    let wants: &[(ReportFormat, &str)] = &[
        (ReportFormat::Table, "lost (RPO)"),
        (ReportFormat::Markdown, "Writes and data loss (RPO)"),
        (ReportFormat::Html, "Writes and data loss (RPO)"),
        (ReportFormat::Json, "\"rpo_window_ms\": 420"),
        (ReportFormat::Openmetrics, "resil_load_writes_lost_total 3"),
    ];
    for (format, want) in wants {
        let (text, _) = report(dir.path(), *format, None, None);
        assert!(
            text.contains(want),
            "{format:?} should show {want:?}:\n{text}"
        );
    }
    let (table, _) = report(dir.path(), ReportFormat::Table, None, None);
    assert!(
        table.contains("3 writes lost, acknowledged within 420 ms"),
        "{table}"
    );

    let (json, _) = report(dir.path(), ReportFormat::Json, None, None);
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("schema/report.schema.json")).unwrap(),
    )
    .unwrap();
    let mut errors = Vec::new();
    validate(
        &schema,
        &schema,
        &serde_json::from_str(&json).unwrap(),
        "$",
        &mut errors,
    );
    assert!(errors.is_empty(), "{errors:#?}");

    let (table, held) = report(
        dir.path(),
        ReportFormat::Table,
        Some("rpo<5,rpo_window<1s"),
        None,
    );
    assert_eq!(held, Exit::Ok);
    assert!(
        table.contains("┆ 3 writes ┆ pass") && table.contains("┆ 420.0ms  ┆ pass"),
        "{table}"
    );
    let (junit, failed) = report(dir.path(), ReportFormat::Junit, Some("rpo<1"), None);
    assert_eq!(failed, Exit::SloFailed);
    assert!(
        junit.contains("rpo 3 writes vs 1 writes: FAILED"),
        "{junit}"
    );
    // Without writes the RPO was not measured: the SLO fails, saying why.
    let (table, unmeasured) = report(
        &fixture("failover"),
        ReportFormat::Table,
        Some("rpo<1"),
        None,
    );
    assert_eq!(unmeasured, Exit::SloFailed);
    assert!(table.contains("│ rpo<1 ┆ not measured ┆ FAIL"), "{table}");
    let (json, _) = report(
        &fixture("failover"),
        ReportFormat::Json,
        Some("rpo<1"),
        None,
    );
    assert!(json.contains("no writes were read back"), "{json}");
}
