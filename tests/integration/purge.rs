//! Integration tests for purge.
