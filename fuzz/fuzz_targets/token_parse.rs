//! `Token::parse` and `Token::parse_input` on arbitrary bytes: never panic, and whatever parses
//! prints back as the same token.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pwreset::token::Token;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(t) = Token::parse(&text) {
        assert_eq!(t.text().as_str(), text.as_ref());
    }
    if let Ok(t) = Token::parse_input(&text) {
        let again = Token::parse(&t.text()).expect("a parsed token's text parses");
        assert_eq!(again.digest(), t.digest());
    }
});
