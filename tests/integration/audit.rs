//! Integration tests for audit.
