//! resil's integration tests, in one test binary (one link, shared helpers).
//! Each module tests one command or subsystem; `support` holds the shared fixtures.

mod architecture;
mod autoscale;
mod cost;
mod demo_app;
mod report;
