//! Email addresses: validation of typed input, and the key under which addresses match.
//!
//! Matching uses Unicode NFKC normalisation plus full case folding, the approach Django adopted
//! after CVE-2019-19844: `ADMIN@EXAMPLE.COM`, `admin@example.com` and `ａdmin@example.com`
//! (full-width a) all find the same user, and two users can never hold addresses that match each
//! other. Mail always goes to the address as stored, never to the one typed.

use crate::error::{Exit, fail};
use unicode_normalization::UnicodeNormalization;

/// Longest address accepted (RFC 5321's path limit less the angle brackets).
pub const MAX_LEN: usize = 254;

/// Why a typed address was not taken. The web pages say it in the reader's language; the
/// commands say [`validate`]'s English sentence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Invalid {
    TooLong,
    ControlCharacters,
    NotUtf8,
    Invisible,
    MixedScripts,
    Empty,
    Syntax,
}

/// Check an address typed by a user. Returns it trimmed of surrounding white space.
pub fn validate(input: &str) -> anyhow::Result<&str> {
    check(input).map_err(|why| {
        let shown = crate::ui::escape(&input.chars().take(80).collect::<String>());
        let more = if input.chars().count() > 80 {
            "..."
        } else {
            ""
        };
        let text = match why {
            Invalid::TooLong => {
                format!("email address {shown}{more} is longer than {MAX_LEN} characters")
            }
            Invalid::ControlCharacters => format!(
                "email address {shown}{more} contains control characters (a line break, NUL or escape); type the address alone"
            ),
            Invalid::NotUtf8 => format!("email address {shown}{more} is not valid UTF-8 text"),
            Invalid::Invisible => format!(
                "email address {shown}{more} contains invisible characters (zero-width or text-direction marks); type the address alone"
            ),
            Invalid::MixedScripts => format!(
                "email address {} mixes Latin, Greek and Cyrillic letters in one part, a look-alike of another address; type it in one alphabet",
                crate::ui::escape(input.trim())
            ),
            Invalid::Empty => "email address is empty".to_owned(),
            Invalid::Syntax => {
                format!("{shown} is not a valid email address; write it like alice@example.com")
            }
        };
        fail(Exit::DataErr, text)
    })
}

/// [`validate`] without the sentence: the address trimmed, or why it is not taken.
pub fn check(input: &str) -> Result<&str, Invalid> {
    if input.len() > MAX_LEN * 4 {
        return Err(Invalid::TooLong);
    }
    let addr = input.trim();
    if addr.chars().any(|c| c.is_control()) {
        return Err(Invalid::ControlCharacters);
    }
    if addr.contains('\u{fffd}') {
        return Err(Invalid::NotUtf8);
    }
    if addr.chars().any(is_invisible) {
        return Err(Invalid::Invisible);
    }
    if addr.split(['@', '.']).any(mixes_scripts) {
        return Err(Invalid::MixedScripts);
    }
    if addr.chars().count() > MAX_LEN {
        return Err(Invalid::TooLong);
    }
    if addr.is_empty() {
        return Err(Invalid::Empty);
    }
    if addr.parse::<lettre::Address>().is_err() {
        return Err(Invalid::Syntax);
    }
    Ok(addr)
}

/// Characters that show as nothing (Unicode default-ignorable code points) or reorder the
/// text around them (bidi controls): `alice\u{200b}@example.com` looks exactly like
/// `alice@example.com` and survives NFKC, so it is refused rather than matched.
fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{ad}' | '\u{34f}' | '\u{61c}' | '\u{115f}' | '\u{1160}' | '\u{17b4}' | '\u{17b5}'
        | '\u{180b}'..='\u{180f}' | '\u{200b}'..='\u{200f}' | '\u{2028}'..='\u{202e}'
        | '\u{2060}'..='\u{206f}' | '\u{3164}' | '\u{fe00}'..='\u{fe0f}' | '\u{feff}'
        | '\u{ffa0}' | '\u{fff0}'..='\u{fffb}' | '\u{1bca0}'..='\u{1bca3}'
        | '\u{1d173}'..='\u{1d17a}' | '\u{e0000}'..='\u{e0fff}')
}

/// Whether one part of an address (the local part, or a domain label) mixes letters of the
/// Latin, Greek and Cyrillic alphabets, whose look-alikes (Cyrillic `а` for Latin `a`) NFKC does
/// not unify: the "highly restrictive" level of Unicode TS #39 for these three scripts.
fn mixes_scripts(part: &str) -> bool {
    let script = |c: char| match c {
        'a'..='z' | 'A'..='Z' | '\u{c0}'..='\u{24f}' | '\u{1e00}'..='\u{1eff}' => Some(0u8),
        '\u{370}'..='\u{3ff}' | '\u{1f00}'..='\u{1fff}' => Some(1),
        '\u{400}'..='\u{52f}'
        | '\u{1c80}'..='\u{1c8f}'
        | '\u{2de0}'..='\u{2dff}'
        | '\u{a640}'..='\u{a69f}' => Some(2),
        _ => None,
    };
    let mut seen = None;
    for s in part.chars().filter_map(script) {
        match seen {
            None => seen = Some(s),
            Some(prev) if prev != s => return true,
            Some(_) => {}
        }
    }
    false
}

/// The matching key of an address: NFKC, then case folded, then NFKC again (folding can
/// un-normalise).
///
/// ```
/// use pwreset::email::key;
///
/// assert_eq!(key("ALICE@Example.com"), key("alice@example.com"));
/// assert_eq!(key("\u{ff41}lice@example.com"), "alice@example.com"); // full-width a
/// assert_eq!(key("STRASSE@example.com"), key("straße@example.com"));
/// ```
pub fn key(addr: &str) -> String {
    // NFKC leaves ASCII as it is, and case folding ASCII is lowercasing.
    if addr.is_ascii() {
        return addr.trim().to_ascii_lowercase();
    }
    let nfkc: String = addr.trim().nfkc().collect();
    let folded = caseless::default_case_fold_str(&nfkc);
    folded.nfkc().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_fold_case_and_compatibility_forms() {
        assert_eq!(key("Alice@Example.COM"), "alice@example.com");
        assert_eq!(key("\u{ff41}lice@example.com"), "alice@example.com");
        assert_eq!(key("STRASSE@example.com"), key("straße@example.com"));
        assert_ne!(key("alice@example.com"), key("alicia@example.com"));
    }

    #[test]
    fn validation() {
        assert!(validate("alice@example.com").is_ok());
        assert_eq!(
            validate(" alice@example.com\t").ok(),
            Some("alice@example.com")
        );
        assert_eq!(
            validate(" alice@example.com ").ok(),
            Some("alice@example.com")
        );
        for bad in [
            "",
            "alice",
            "alice@",
            "a\r\nb@example.com",
            "a\0@example.com",
        ] {
            let err = validate(bad).unwrap_err();
            assert_eq!(crate::error::exit_of(&err), Exit::DataErr, "{bad:?}");
        }
        let long = format!("{}@example.com", "a".repeat(250));
        assert!(validate(&long).is_err());
    }

    #[test]
    fn look_alikes_and_non_text_are_refused() {
        for bad in [
            "alice\u{200b}@example.com",
            "ali\u{202e}ecil@example.com",
            "\u{feff}alice@example.com",
            "alice@example.com\u{2028}Bcc: evil@example.com",
            "\u{430}lice@example.com",
            "alice@\u{435}xample.com",
            "\u{3b1}lice@example.com",
            "\u{fffd}@example.com",
        ] {
            let err = validate(bad).unwrap_err();
            assert_eq!(crate::error::exit_of(&err), Exit::DataErr, "{bad:?}");
        }
        // One alphabet per part is fine, whichever it is.
        for good in [
            "\u{438}\u{432}\u{430}\u{43d}@example.com",
            "stra\u{df}e@example.com",
            "jos\u{e9}@example.com",
        ] {
            assert!(validate(good).is_ok(), "{good:?}");
        }
    }
}
