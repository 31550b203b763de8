//! Integration tests: the real binary, in temporary folders. One test binary for all of them.

mod harness;

mod docs;
