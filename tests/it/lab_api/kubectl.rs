//! kubectl against the lab.
