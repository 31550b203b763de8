//! Integration tests for verify.
