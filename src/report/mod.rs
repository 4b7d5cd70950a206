//! `resil report`: reads a results directory, derives every figure (failover episodes,
//! downtime, scaling latency, requests, error rate, latency per colour, replica-seconds,
//! cost per request), judges the SLOs, compares with a baseline run, and renders it as a
//! table, JSON, Markdown, JUnit, HTML or OpenMetrics (for a pushgateway).
//!
//! Pure: reads files and pricing and writes to a `&mut dyn Write`; it never talks to a
//! cluster, so it runs anywhere (CI). `resil run` calls [`generate`] after a scenario; the
//! command layer ([`command`]) only resolves flags and picks stdout.
//!
//! Flow: `ReportArgs → ReportPlan → load (build.rs) → verdicts (crate::judge) → baseline
//! (compare.rs) → render`.

pub mod build;
pub mod compare;
mod decisions;
mod html;
mod junit;
mod markdown;
pub mod model;
pub mod openmetrics;
pub mod recovery;
pub mod rollouts;
mod sections;
mod svg;
mod table;

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use crate::Exit;
use crate::cli::{GlobalArgs, ReportArgs, ReportFormat};
use crate::cost::{CostError, PricingProfile};
use crate::judge::{self, SloParseError, Slos};
use crate::results::{ResultsError, RunDir};

pub use model::{REPORT_SCHEMA_VERSION, Report, Series};

/// Where `resil report` looks for the newest run when no directory is given.
pub const DEFAULT_RESULTS_ROOT: &str = "results";

/// What can go wrong producing a report. Every variant names the file it is about.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The given directory does not exist.
    #[error(
        "{path}: no such results directory; pass the directory a run wrote (e.g. results/<run-id>)"
    )]
    MissingDir { path: PathBuf },
    /// No directory was given and the default root has no run.
    #[error("no results directory given and no run found under {root}/: pass RESULTS_DIR")]
    NoRuns {
        root: PathBuf,
        #[source]
        source: ResultsError,
    },
    /// A results file is missing, corrupt or of another schema version.
    #[error(transparent)]
    Results(#[from] ResultsError),
    /// An `--slo` expression does not parse.
    #[error("invalid --slo expression")]
    Slo(#[from] SloParseError),
    /// An SLO recorded in `run.json` does not parse.
    #[error("cannot read the SLOs recorded in {path}")]
    RunSlo {
        path: PathBuf,
        #[source]
        source: SloParseError,
    },
    /// The pricing profile could not be resolved.
    #[error(transparent)]
    Cost(#[from] CostError),
    /// The baseline run could not be read.
    #[error("cannot read the baseline run {path}")]
    Baseline {
        path: PathBuf,
        #[source]
        source: Box<ReportError>,
    },
    /// Writing the output failed.
    #[error("cannot write the report")]
    Write(#[source] std::io::Error),
}

/// `resil report`, resolved.
#[derive(Debug, Clone)]
pub struct ReportPlan {
    /// The run directory to report on, or a directory of runs (its newest is reported).
    pub dir: PathBuf,
    pub format: ReportFormat,
    /// SLOs to judge; `None`: the ones recorded in the run's `run.json`.
    pub slos: Option<Slos>,
    /// A run to compare with.
    pub baseline: Option<PathBuf>,
    /// Pricing; `None`: the profile named in `run.json`, else `default`.
    pub pricing: Option<PricingProfile>,
}

impl ReportPlan {
    /// Resolves the flags: the newest run under `results_root` when no directory is given,
    /// table on a terminal and Markdown otherwise.
    pub fn from_args(
        args: &ReportArgs,
        results_root: &Path,
        stdout_is_terminal: bool,
    ) -> Result<ReportPlan, ReportError> {
        let dir = match &args.dir {
            Some(dir) => dir.clone(),
            None => RunDir::newest(results_root)
                .map_err(|source| ReportError::NoRuns {
                    root: results_root.to_path_buf(),
                    source,
                })?
                .path()
                .to_path_buf(),
        };
        let slos = args.slo.as_deref().map(Slos::parse_list).transpose()?;
        let pricing = args
            .pricing
            .as_deref()
            .map(PricingProfile::resolve)
            .transpose()?;
        let format = args.output.unwrap_or(if stdout_is_terminal {
            ReportFormat::Table
        } else {
            ReportFormat::Markdown
        });
        Ok(ReportPlan {
            dir,
            format,
            slos,
            baseline: args.baseline.clone(),
            pricing,
        })
    }
}

/// Reads one run and judges `slos` (or its own); also returns the plot series, the
/// pricing and the SLOs it was judged by.
pub fn load(
    dir: &Path,
    slos: Option<&Slos>,
    pricing: Option<&PricingProfile>,
) -> Result<(Report, Series, PricingProfile, Slos), ReportError> {
    if !dir.exists() {
        return Err(ReportError::MissingDir {
            path: dir.to_path_buf(),
        });
    }
    let run = resolve(dir)?;
    let data = build::RunData::read(&run)?;
    let profile = match (pricing, &data.meta.pricing) {
        (Some(p), _) => p.clone(),
        (None, Some(name)) => PricingProfile::resolve(name)?,
        (None, None) => PricingProfile::default_profile(),
    };
    let slos = match slos {
        Some(s) => s.clone(),
        None => Slos::recorded(&data.meta).map_err(|source| ReportError::RunSlo {
            path: run.file(crate::results::RUN_FILE),
            source,
        })?,
    };
    let (mut report, series) = build::build(&data, &profile);
    report.slos = judge::judge(&slos, &report, &data.events);
    report.slos_passed = report.slos.iter().all(|v| v.passed);
    Ok((report, series, profile, slos))
}

/// The run `dir` names: itself, or the newest run under it (`resil report results/`, the
/// --out of `resil run`).
fn resolve(dir: &Path) -> Result<RunDir, ReportError> {
    match RunDir::open(dir) {
        Ok(run) => Ok(run),
        Err(not_a_run @ ResultsError::NotAResultsDir { .. }) => {
            Ok(RunDir::newest(dir).map_err(|_| not_a_run)?)
        }
        Err(e) => Err(e.into()),
    }
}

/// Builds the whole report of `plan` (with its comparison) without rendering it.
pub fn assemble(plan: &ReportPlan) -> Result<(Report, Series), ReportError> {
    let (mut report, series, profile, slos) =
        load(&plan.dir, plan.slos.as_ref(), plan.pricing.as_ref())?;
    if let Some(base_dir) = &plan.baseline {
        // The baseline is judged by the same SLOs and priced the same, so deltas compare
        // like with like.
        let (baseline, ..) = load(base_dir, Some(&slos), Some(&profile)).map_err(|source| {
            ReportError::Baseline {
                path: base_dir.clone(),
                source: Box::new(source),
            }
        })?;
        report.baseline = Some(compare::compare(&report, &baseline));
    }
    Ok((report, series))
}

/// Writes `report` in `format`. OpenMetrics' latency histograms come from the run's
/// `latency.hdr`, which [`generate`] reads; without it they are empty.
pub fn render(
    report: &Report,
    series: &Series,
    format: ReportFormat,
    out: &mut dyn Write,
) -> Result<(), ReportError> {
    let result = match format {
        ReportFormat::Table => table::render(report, out),
        ReportFormat::Markdown => markdown::render(report, out),
        ReportFormat::Html => html::render(report, series, out),
        ReportFormat::Json => serde_json::to_writer_pretty(&mut *out, report)
            .map_err(std::io::Error::other)
            .and_then(|()| writeln!(out)),
        ReportFormat::Junit => junit::render(report, out).map_err(std::io::Error::other),
        ReportFormat::Openmetrics => openmetrics::render(report, &[], out),
    };
    result.map_err(ReportError::Write)
}

/// Builds, renders and judges: exit 0 when every SLO held, 1 when one failed.
pub fn generate(plan: &ReportPlan, out: &mut dyn Write) -> Result<Exit, ReportError> {
    let (report, series) = assemble(plan)?;
    if plan.format == ReportFormat::Openmetrics {
        let run = resolve(&plan.dir)?;
        let histograms = crate::results::hdr::read(&run.file(crate::results::LATENCY_FILE))?;
        openmetrics::render(&report, &histograms, out).map_err(ReportError::Write)?;
    } else {
        render(&report, &series, plan.format, out)?;
    }
    Ok(if report.slos_passed {
        Exit::Ok
    } else {
        Exit::SloFailed
    })
}

/// `resil report`
pub async fn command(args: ReportArgs, _global: &GlobalArgs) -> anyhow::Result<Exit> {
    let stdout = std::io::stdout();
    let plan = ReportPlan::from_args(&args, Path::new(DEFAULT_RESULTS_ROOT), stdout.is_terminal())?;
    let mut out = std::io::BufWriter::new(stdout.lock());
    let exit = generate(&plan, &mut out)?;
    out.flush()?;
    Ok(exit)
}
