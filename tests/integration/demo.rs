//! Integration tests for demo.
