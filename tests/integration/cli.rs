//! Integration tests for cli.
