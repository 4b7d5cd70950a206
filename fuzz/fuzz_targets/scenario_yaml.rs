//! Scenario files (`resil run SCENARIO`): any text through `Scenario::parse` (YAML into
//! the scenario types, then validation), and every scenario that parses through what
//! `resil run` derives from it before touching a cluster: its variants, time scaling, the
//! `resil deploy` flags, the SLO, abort and window-SLO expressions and the fail-fast judge.

#![no_main]

use libfuzzer_sys::fuzz_target;
use resil::judge::fail_fast::FailFast;
use resil::run::plans::deploy_args;
use resil::run::runner::AbortRule;
use resil::run::scenario::Scenario;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(scenario) = Scenario::parse(text) else {
        return;
    };
    for run in scenario.runs() {
        for factor in [0.001, 0.25, 1.0, 10.0, 0.0, f64::NAN, 11.0] {
            let _ = run.scaled(factor);
        }
        let _ = deploy_args(&run, None);
        for slo in &run.slos {
            let _ = resil::judge::slo::parse(slo);
        }
        for rule in &run.abort {
            let _ = AbortRule::parse(rule);
        }
        let _ = FailFast::new(&run.slos, &run.window_slos);
    }
});
