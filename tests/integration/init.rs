//! Integration tests for init.
