//! Integration tests for hostile.
