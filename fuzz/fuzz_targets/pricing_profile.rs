//! Pricing profiles (`--pricing FILE`, `cost/*.yaml`) and the pod requests `resil cost`
//! reads from manifests: any text through `PricingProfile::parse`, and every profile that
//! parses through the monthly cost table of each scenario and its three renderings. An
//! input may carry a manifest after a line `#~manifest` (read by `pod_requests_from_yaml`)
//! whose requests, when it has some, price the table.
//!
//! Checked beyond "no panic": a profile that validates gives finite prices.

#![no_main]

use libfuzzer_sys::fuzz_target;
use resil::cli::StateFormat;
use resil::cost::manifests::pod_requests_from_yaml;
use resil::cost::quantity::{parse_cpu_millis, parse_memory_bytes};
use resil::cost::{
    DEFAULT_POD_REQUESTS, PricingProfile, Scenario, monthly_costs, render_cost_table,
};

const MANIFEST_MARK: &str = "\n#~manifest\n";

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (profile_text, manifest) = match text.split_once(MANIFEST_MARK) {
        Some((p, m)) => (p, Some(m)),
        None => (text, None),
    };
    // The quantity parsers see every short line too (they take flag values as typed).
    for line in text.lines().take(16) {
        let _ = parse_cpu_millis(line);
        let _ = parse_memory_bytes(line);
    }
    let requests = manifest
        .and_then(|m| pod_requests_from_yaml(m, "fuzz").ok().flatten())
        .unwrap_or(DEFAULT_POD_REQUESTS);
    let Ok(profile) = PricingProfile::parse(profile_text, "fuzz") else {
        return;
    };
    let price = profile.pod_hour_price(requests);
    assert!(
        price.is_finite(),
        "a valid profile priced a pod hour at {price}"
    );
    for baseline in Scenario::ALL {
        let table = monthly_costs(&profile, requests, "fuzz", baseline);
        for format in [StateFormat::Table, StateFormat::Json, StateFormat::Yaml] {
            let mut out = Vec::new();
            render_cost_table(&table, format, &mut out).expect("rendering into memory works");
        }
    }
});
