//! Integration tests for user.
