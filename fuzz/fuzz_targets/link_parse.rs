//! Links: arbitrary text around a real token, and arbitrary links. `parse_input` and
//! `link_token` never panic; a link built by `token::link` from any base URL the config accepts
//! gives its token back.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pwreset::token::{self, Token};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = token::link_token(&text);
    let _ = Token::parse_input(&text);
    if let Ok(base) = pwreset::config::check_base_url(&text) {
        let t = Token::generate().expect("rng");
        let link = token::link(&base, &t);
        let back = Token::parse_input(&link).expect("a link we made parses");
        assert_eq!(back.digest(), t.digest());
    }
});
