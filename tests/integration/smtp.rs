//! Integration tests for smtp.
