//! Integration tests for reset.
