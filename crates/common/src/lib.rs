//! The few pieces the lab and the toolkit both stand on, and nothing else: atomic file
//! writes, the process-wide rustls provider, exit codes, and the duration parser their
//! command lines share. Knows neither the lab nor the toolkit.

pub mod args;
pub mod atomic;
pub mod crypto;
pub mod exit;
pub mod lifeline;

pub use exit::Exit;
