//! Tests for whole syncs.
use super::*;
