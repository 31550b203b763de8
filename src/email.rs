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

/// Check an address typed by a user. Returns it trimmed of surrounding white space.
pub fn validate(input: &str) -> anyhow::Result<&str> {
    let shown = crate::ui::escape(&input.chars().take(80).collect::<String>());
    let more = if input.chars().count() > 80 {
        "..."
    } else {
        ""
    };
    if input.len() > MAX_LEN * 4 {
        return Err(fail(
            Exit::DataErr,
            format!("email address {shown}{more} is longer than {MAX_LEN} characters"),
        ));
    }
    let addr = input.trim();
    if addr.chars().any(|c| c.is_control()) {
        return Err(fail(
            Exit::DataErr,
            format!(
                "email address {shown}{more} contains control characters (a line break, NUL or escape); type the address alone"
            ),
        ));
    }
    if addr.chars().count() > MAX_LEN {
        return Err(fail(
            Exit::DataErr,
            format!("email address {shown}{more} is longer than {MAX_LEN} characters"),
        ));
    }
    if addr.is_empty() {
        return Err(fail(Exit::DataErr, "email address is empty"));
    }
    if addr.parse::<lettre::Address>().is_err() {
        return Err(fail(
            Exit::DataErr,
            format!("{shown} is not a valid email address; write it like alice@example.com"),
        ));
    }
    Ok(addr)
}

/// The matching key of an address: NFKC, then case folded, then NFKC again (folding can
/// un-normalise).
pub fn key(addr: &str) -> String {
    let nfkc: String = addr.trim().nfkc().collect();
    let folded = caseless::default_case_fold_str(&nfkc);
    folded.nfkc().collect()
}

/// Make `pwreset_email_key(text)` available in SQL, for matching in an application's users
/// table, which has no key column of ours.
pub fn register_sql_function(conn: &rusqlite::Connection) -> anyhow::Result<()> {
    use rusqlite::functions::FunctionFlags;
    conn.create_scalar_function(
        "pwreset_email_key",
        1,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
        |ctx| {
            Ok(match ctx.get_raw(0) {
                rusqlite::types::ValueRef::Text(t) => Some(key(&String::from_utf8_lossy(t))),
                _ => None,
            })
        },
    )?;
    Ok(())
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
}
