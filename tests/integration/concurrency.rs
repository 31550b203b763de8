//! Integration tests for concurrency.
