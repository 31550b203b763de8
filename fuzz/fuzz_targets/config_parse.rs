//! `Config::from_toml` on arbitrary text: an error or a config, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pwreset::config::{Config, Overrides};
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = Config::from_toml(text, Path::new("fuzz.toml"), &Overrides::default());
    }
});
