//! The few pieces the lab and the toolkit both stand on, and nothing else: atomic file
//! writes, the process-wide rustls provider, exit codes, the duration parser their
//! command lines share, Prometheus exposition (format negotiation, encoding), the pod's
//! lifeline and the open-file limit. Knows neither the lab nor the toolkit.

pub mod args;
pub mod atomic;
pub mod crypto;
pub mod exit;
pub mod exposition;
pub mod lifeline;
pub mod limits;

pub use exit::Exit;
