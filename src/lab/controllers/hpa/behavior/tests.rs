//! Tests for normalization.
use super::*;
