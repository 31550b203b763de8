//! Integration tests for config.
