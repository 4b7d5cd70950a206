//! Cost: the pricing model (`cost/*.yaml` profiles), cost per request of a recorded run,
//! and the monthly calculator for the demo's four scaling scenarios (`resil cost`).
//!
//! Pure: reads pricing files and manifests, computes, renders to a writer. It never talks
//! to a cluster. The report calls [`per_request::cost_per_request`]; `resil cost` goes
//! `CostArgs → CostPlan → monthly_costs → render`. Every number is explained in
//! `cost/cost_assumptions.md`.

pub mod manifests;
mod money;
pub mod monthly;
pub mod per_request;
pub mod pricing;
pub mod quantity;
mod render;

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::Exit;
use crate::cli::{CostArgs, GlobalArgs, StateFormat};
use crate::results::summary::PodRequests;

pub use manifests::{DEFAULT_POD_REQUESTS, pod_requests_from_manifests};
pub use money::usd;
pub use monthly::{CostTable, Scenario, ScenarioCost, monthly_costs};
pub use per_request::{RequestCost, RunCost, cost_per_request};
pub use pricing::PricingProfile;
pub use render::render_cost_table;

/// Where `resil cost` looks for the demo's manifests when no request flag is given.
pub const MANIFESTS_DIR: &str = "manifests";

/// What can go wrong computing costs.
#[derive(Debug, thiserror::Error)]
pub enum CostError {
    /// `--pricing` is neither a built-in profile nor a file.
    #[error("unknown pricing profile {name:?}: use one of {valid}, or a path to a YAML file")]
    UnknownPricing { name: String, valid: String },
    /// A pricing profile does not parse or has impossible numbers.
    #[error("pricing profile {origin}: {message}")]
    Pricing { origin: String, message: String },
    /// `--baseline` names no scenario.
    #[error("unknown baseline scenario {name:?}: use one of {valid}")]
    UnknownBaseline { name: String, valid: String },
    /// A CPU or memory quantity does not parse.
    #[error("{text:?} is not {expected}")]
    Quantity {
        text: String,
        expected: &'static str,
    },
    /// A manifest does not parse as Kubernetes YAML.
    #[error("manifest {origin}: {message}")]
    Manifest { origin: String, message: String },
    /// A file or directory could not be read.
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// `resil cost`, resolved: everything the calculation needs.
#[derive(Debug, Clone)]
pub struct CostPlan {
    pub profile: PricingProfile,
    pub baseline: Scenario,
    pub pod_requests: PodRequests,
    /// `flags`, the manifest file, or `built-in default` (100m CPU, 128Mi memory).
    pub pod_requests_source: String,
    pub format: StateFormat,
}

impl CostPlan {
    /// Resolves the flags; `manifests_dir` is consulted only for requests no flag gives.
    pub fn from_args(args: &CostArgs, manifests_dir: &Path) -> Result<CostPlan, CostError> {
        let profile = match &args.pricing {
            Some(name) => PricingProfile::resolve(name)?,
            None => PricingProfile::default_profile(),
        };
        let baseline = Scenario::from_name(&args.baseline)?;
        let flag_cpu = args
            .cpu_request
            .as_deref()
            .map(quantity::parse_cpu_millis)
            .transpose()?;
        let flag_memory = args
            .memory_request
            .as_deref()
            .map(quantity::parse_memory_bytes)
            .transpose()?;
        let (from_files, source) = if flag_cpu.is_some() && flag_memory.is_some() {
            (DEFAULT_POD_REQUESTS, "flags".to_string())
        } else if manifests_dir.is_dir()
            && let Some((requests, file)) = pod_requests_from_manifests(manifests_dir)?
        {
            (requests, file.display().to_string())
        } else {
            (DEFAULT_POD_REQUESTS, "built-in default".to_string())
        };
        let source = match (flag_cpu.is_some(), flag_memory.is_some()) {
            (true, true) => source,
            (false, false) => source,
            (true, false) => format!("--cpu-request; memory from {source}"),
            (false, true) => format!("--memory-request; CPU from {source}"),
        };
        Ok(CostPlan {
            profile,
            baseline,
            pod_requests: PodRequests {
                cpu_millis: flag_cpu.unwrap_or(from_files.cpu_millis),
                memory_bytes: flag_memory.unwrap_or(from_files.memory_bytes),
            },
            pod_requests_source: source,
            format: args.output,
        })
    }
}

/// `resil cost`
pub async fn command(args: CostArgs, _global: &GlobalArgs) -> anyhow::Result<Exit> {
    let plan = CostPlan::from_args(&args, Path::new(MANIFESTS_DIR))?;
    let table = monthly_costs(
        &plan.profile,
        plan.pod_requests,
        &plan.pod_requests_source,
        plan.baseline,
    );
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    render_cost_table(&table, plan.format, &mut out)?;
    out.flush()?;
    Ok(Exit::Ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> CostArgs {
        CostArgs {
            pricing: None,
            baseline: "blue-green".into(),
            cpu_request: None,
            memory_request: None,
            output: StateFormat::Table,
        }
    }

    #[test]
    fn without_flags_or_manifests_the_demo_pod_is_priced() {
        let empty = tempfile::tempdir().unwrap();
        let plan = CostPlan::from_args(&args(), &empty.path().join("missing")).unwrap();
        assert_eq!(plan.pod_requests, DEFAULT_POD_REQUESTS);
        assert!(plan.pod_requests_source.contains("built-in default"));
        assert_eq!(plan.profile.name, "default");
        assert_eq!(plan.baseline, Scenario::BlueGreen);
    }

    #[test]
    fn flags_win_over_the_default_one_field_at_a_time() {
        let empty = tempfile::tempdir().unwrap();
        let mut a = args();
        a.cpu_request = Some("250m".into());
        let plan = CostPlan::from_args(&a, empty.path()).unwrap();
        assert_eq!(plan.pod_requests.cpu_millis, 250);
        assert_eq!(plan.pod_requests.memory_bytes, 128 << 20);
        assert!(plan.pod_requests_source.starts_with("--cpu-request"));
        a.cpu_request = Some("lots".into());
        assert!(CostPlan::from_args(&a, empty.path()).is_err());
    }
}
