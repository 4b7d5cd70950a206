//! `-o junit`: one JUnit test case per SLO (quick-junit), so CI systems show each SLO as a
//! passed or failed test. A partial run says so in the suite's properties and output.
//! Called by `report::render`.

use std::io::Write;
use std::time::Duration;

use quick_junit::{
    NonSuccessKind, Property, Report as JunitReport, TestCase, TestCaseStatus, TestSuite,
};

use super::model::Report;
use super::sections::partial_banner;

/// Writes the SLO verdicts as a JUnit XML report.
pub fn render(report: &Report, out: &mut dyn Write) -> Result<(), quick_junit::SerializeError> {
    let mut suite = TestSuite::new(format!("resil SLOs: {}", report.run.run_id));
    suite.set_timestamp(report.run.started_at);
    suite.set_time(Duration::from_secs_f64(report.run.duration_s.max(0.0)));
    suite.add_property(Property::new("run_id", report.run.run_id.as_str()));
    suite.add_property(Property::new(
        "status",
        format!("{:?}", report.run.status).to_lowercase(),
    ));
    suite.add_property(Property::new("partial", report.run.partial.to_string()));
    if let Some(banner) = partial_banner(report) {
        suite.set_system_out(banner);
    }
    for verdict in &report.slos {
        let status = if verdict.passed {
            TestCaseStatus::success()
        } else {
            let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
            s.set_message(verdict.message.as_str());
            s.set_type("slo");
            s
        };
        let mut case = TestCase::new(verdict.expression.as_str(), status);
        case.set_classname(format!("resil.slo.{}", verdict.metric));
        case.set_system_out(verdict.message.as_str());
        suite.add_test_case(case);
    }
    let mut junit = JunitReport::new("resil");
    junit.add_test_suite(suite);
    junit.serialize(&mut *out)?;
    writeln!(out)?;
    Ok(())
}
