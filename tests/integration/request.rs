//! Integration tests for request.
