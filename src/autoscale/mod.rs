//! The predictive autoscaler (`resil autoscale --predictive`).
//!
//! [`forecast`] holds the demand models behind the `Forecaster` trait.

pub mod forecast;
pub mod planner;
