//! resil's integration tests, in one test binary (one link, shared helpers).
//! Each module tests one command or subsystem; `support` holds the shared fixtures.

mod architecture;
mod autoscale;
mod chaos;
mod cli_docs;
mod closed_pipe;
mod cluster;
mod cost;
mod dashboard;
mod demo_app;
mod deploy;
mod fuzz_regressions;
mod gateway;
mod kubectl_everyday;
mod lab_api;
mod lab_cli;
mod lab_daemon;
mod lab_jobs;
mod lab_kinds;
mod lab_named;
mod lab_node;
mod lab_nodes;
mod lab_rollout;
mod lab_runtime;
mod load;
mod load_workers;
mod metrics;
mod openapi;
mod properties;
mod report;
mod results_dir;
mod rollout;
mod run;
mod runbooks;
mod support;
mod watch;
