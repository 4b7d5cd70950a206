//! Results directories as `resil report` reads them: `run.json`, `summary.json`,
//! `timeline.jsonl` and `latency.hdr` written from the input into a temporary directory,
//! then the whole report pipeline (`resil::report::generate`: read, derive, judge the SLOs
//! recorded in `run.json`, compare with a baseline, render) in every output format.
//!
//! Input layout: the four files in that order, separated by lines `#~file`; a missing or
//! empty section is a missing file. A `latency.hdr` section starting with `#~raw` is the
//! remaining bytes as one serialized histogram (the target base64-encodes it into an
//! interval line), so the fuzzer mutates the histogram encoding itself.

#![no_main]

use std::sync::LazyLock;

use base64::Engine;
use libfuzzer_sys::fuzz_target;
use resil::cli::ReportFormat;
use resil::cost::PricingProfile;
use resil::report::{ReportPlan, generate};
use resil::results::{LATENCY_FILE, RUN_FILE, SUMMARY_FILE, TIMELINE_FILE};

const MARK: &[u8] = b"\n#~file\n";
const RAW: &[u8] = b"#~raw\n";

static ROOT: LazyLock<tempfile::TempDir> = LazyLock::new(resil_fuzz::scratch_dir);

fn split(data: &[u8]) -> Vec<&[u8]> {
    let mut parts = Vec::new();
    let mut rest = data;
    while let Some(i) = rest.windows(MARK.len()).position(|w| w == MARK) {
        parts.push(&rest[..i]);
        rest = &rest[i + MARK.len()..];
    }
    parts.push(rest);
    parts
}

fuzz_target!(|data: &[u8]| {
    let dir = ROOT.path().join("run");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("the run directory");
    let parts = split(data);
    let names = [RUN_FILE, SUMMARY_FILE, TIMELINE_FILE, LATENCY_FILE];
    for (name, part) in names.iter().zip(&parts) {
        if part.is_empty() {
            continue;
        }
        let bytes = match part.strip_prefix(RAW) {
            Some(raw) if *name == LATENCY_FILE => {
                let encoded = base64::engine::general_purpose::STANDARD.encode(raw);
                format!("Tag=overall,0.000,1.000,1.000,{encoded}\n").into_bytes()
            }
            _ => part.to_vec(),
        };
        std::fs::write(dir.join(name), bytes).expect("a results file");
    }
    // The pipeline reads these files directly too (the report goes through them first).
    let _ = resil::results::timeline::read(&dir.join(TIMELINE_FILE));
    let _ = resil::results::hdr::read(&dir.join(LATENCY_FILE));
    let formats = [
        ReportFormat::Table,
        ReportFormat::Json,
        ReportFormat::Markdown,
        ReportFormat::Junit,
        ReportFormat::Html,
    ];
    for (i, format) in formats.into_iter().enumerate() {
        let plan = ReportPlan {
            dir: dir.clone(),
            format,
            slos: None,
            // Once against itself, to reach the comparison.
            baseline: (i == 0).then(|| dir.clone()),
            // `run.json` may name a pricing file; the fuzzer must not read the machine's.
            pricing: Some(PricingProfile::default_profile()),
        };
        let mut out = Vec::new();
        if generate(&plan, &mut out).is_err() {
            // The same files fail the same way in every format.
            return;
        }
    }
});
