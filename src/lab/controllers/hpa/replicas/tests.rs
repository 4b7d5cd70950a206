//! Tests for the replica calculator.
use super::*;
