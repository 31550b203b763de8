//! The password policy, and the hash formats pwreset writes and reads.
//!
//! Policy: [`normalise_with`] (or [`normalise`], NFKC) the typed text, then [`check_with`] it
//! against `[password]`, the account's address, the hash format it will be written in and the
//! user's current stored hash. Each [`Refusal`] names its rule. [`check`] is the same with the
//! defaults of pwreset's own table (argon2id, no pepper).
//!
//! Formats: see [`formats`]: [`hash_as`] writes any [`Format`] from [`HashSettings`];
//! [`identify`] and [`verify_any`] read every [`Kind`] the supported frameworks leave in a
//! password column. [`hash`] and [`verify`] are the argon2id-only calls that came first.

mod aspnet;
mod bcrypt;
pub mod census;
mod django;
pub mod formats;
mod legacy;
mod phc;

pub use census::FormatSetting;
pub use formats::{
    BcryptPrefix, Format, HashError, HashSettings, Kind, UnknownFormat, Verified, hash_as,
    identify, parameters, too_long_for, verify_any,
};

use crate::config::{Argon2 as Argon2Config, Password as Policy};
use anyhow::Result;
use unicode_normalization::UnicodeNormalization;
use zeroize::Zeroizing;

/// The rule that refuses passwords bcrypt would truncate.
pub const RULE_BCRYPT_72_BYTES: &str = "bcrypt_72_bytes";

/// A password being set. Zeroized on drop; `Debug` never shows it.
pub struct Secret(Zeroizing<String>);

impl Secret {
    pub fn new(s: String) -> Secret {
        Secret(Zeroizing::new(s))
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Why a password was refused. Each names its rule and says how to do better.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    TooShort {
        min: usize,
        got: usize,
    },
    TooLong {
        max: usize,
    },
    ControlCharacters,
    FromEmail,
    TooWeak {
        score: u8,
        min: u8,
        hint: Option<String>,
    },
    SameAsCurrent,
    /// Longer than the 72 bytes bcrypt reads (with the pepper): refused, never truncated.
    BcryptTooLong,
    /// The directory's own password policy refused it (`[ldap]`): the server's words.
    Directory(String),
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::TooShort { min, got } => write!(
                f,
                "too short (min_length): {}, at least {} needed; a few unrelated words make a long password that is easy to type",
                crate::ui::count(*got as u64, "character", "characters"),
                crate::ui::grouped(*min as u64)
            ),
            Refusal::TooLong { max } => write!(
                f,
                "too long (max_length): at most {}; passwords are never truncated, so use a shorter one",
                crate::ui::count(*max as u64, "character", "characters")
            ),
            Refusal::ControlCharacters => f.write_str(
                "contains control characters (printable): only printable characters and spaces are allowed; a pasted password may have picked up a tab or line break",
            ),
            Refusal::FromEmail => f.write_str(
                "built from the account's email address (not_email); choose something unrelated to the address",
            ),
            Refusal::TooWeak { score, min, hint } => {
                write!(f, "too easy to guess (min_strength): strength {score} of 4, at least {min} needed")?;
                match hint {
                    // zxcvbn's warnings are sentences; they continue ours here.
                    Some(h) => {
                        let h = h.trim_end_matches('.');
                        let mut chars = h.chars();
                        match chars.next() {
                            Some(c) => write!(f, "; {}{}", c.to_lowercase(), chars.as_str()),
                            None => Ok(()),
                        }
                    }
                    None => f.write_str("; add more unrelated words or characters"),
                }
            }
            Refusal::SameAsCurrent => {
                f.write_str("the same as the current password (not_current); choose a new one")
            }
            Refusal::BcryptTooLong => write!(
                f,
                "too long for bcrypt ({RULE_BCRYPT_72_BYTES}): the stored format reads only the first 72 bytes (UTF-8, counting any configured pepper) and pwreset never truncates, so use a shorter one"
            ),
            Refusal::Directory(words) => {
                write!(f, "the directory's password policy said: {words}")
            }
        }
    }
}

/// How typed text becomes the password that is hashed (`[password] normalize`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Normalize {
    /// NFKC, so the same typed text hashes the same whatever the keyboard or input method
    /// produced (NIST SP 800-63B 5.1.1.2).
    #[default]
    Nfkc,
    /// As typed: for applications whose own login does not normalise, where an NFKC-changed
    /// password would never match at login.
    None,
}

impl Normalize {
    pub fn name(&self) -> &'static str {
        match self {
            Normalize::Nfkc => "nfkc",
            Normalize::None => "none",
        }
    }
}

impl std::str::FromStr for Normalize {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Normalize, String> {
        match s {
            "nfkc" => Ok(Normalize::Nfkc),
            "none" => Ok(Normalize::None),
            _ => Err(format!(
                "unknown normalization {s:?}; valid values: nfkc, none"
            )),
        }
    }
}

/// NFKC-normalise a password, so the same typed text hashes the same whatever the keyboard or
/// input method produced (NIST SP 800-63B 5.1.1.2).
pub fn normalise(p: &str) -> Zeroizing<String> {
    normalise_with(p, Normalize::Nfkc)
}

/// Normalise a password as `[password] normalize` says.
pub fn normalise_with(p: &str, how: Normalize) -> Zeroizing<String> {
    match how {
        Normalize::Nfkc => Zeroizing::new(p.nfkc().collect()),
        Normalize::None => Zeroizing::new(p.to_string()),
    }
}

/// What `not_current` found out about the user's stored hash, for a note under `-v`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Current {
    /// The user has no stored hash.
    Absent,
    /// The new password differs from the current one.
    Differs,
    /// The stored value is no hash pwreset knows: `not_current` was skipped.
    Unrecognised,
    /// The stored hash asks for more work than pwreset spends: `not_current` was skipped.
    TooCostly(Kind),
}

impl Current {
    /// A line for `-v` when the rule could not be applied.
    pub fn note(&self) -> Option<String> {
        match self {
            Current::Absent | Current::Differs => None,
            Current::Unrecognised => Some(
                "the current stored password is in a format pwreset does not recognise, so the not_current rule was skipped"
                    .to_string(),
            ),
            Current::TooCostly(kind) => Some(format!(
                "the current stored password ({kind}) has a cost beyond pwreset's limits, so the not_current rule was skipped"
            )),
        }
    }
}

/// Check a (normalised) password against the policy, for pwreset's own table: argon2id, no
/// pepper. `current_hash` is the user's stored hash, if any, so the new password can be
/// refused when it is the same.
pub fn check(
    policy: &Policy,
    password: &str,
    email: &str,
    current_hash: Option<&str>,
) -> Result<(), Refusal> {
    check_with(
        policy,
        password,
        email,
        current_hash.map(str::as_bytes),
        &HashSettings::default(),
    )
    .map(|_| ())
}

/// Check a (normalised) password against the policy before it is written as `settings` say.
/// `current` is the user's stored value in any format (or bytes from a BLOB); when it cannot
/// be read, `not_current` is skipped and the returned [`Current`] says why.
pub fn check_with(
    policy: &Policy,
    password: &str,
    email: &str,
    current: Option<&[u8]>,
    settings: &HashSettings,
) -> Result<Current, Refusal> {
    let len = password.chars().count();
    if password.len() > policy.max_length * 4 || len > policy.max_length {
        return Err(Refusal::TooLong {
            max: policy.max_length,
        });
    }
    if len < policy.min_length {
        return Err(Refusal::TooShort {
            min: policy.min_length,
            got: len,
        });
    }
    if password.chars().any(char::is_control) {
        return Err(Refusal::ControlCharacters);
    }
    if too_long_for(password, settings) {
        return Err(Refusal::BcryptTooLong);
    }
    if built_from_email(password, email) {
        return Err(Refusal::FromEmail);
    }
    if policy.min_strength > 0 {
        let local = email.split('@').next().unwrap_or(email);
        let inputs = [email, local];
        let entropy = zxcvbn::zxcvbn(password, &inputs);
        let score: u8 = entropy.score().into();
        if score < policy.min_strength {
            let hint = entropy
                .feedback()
                .and_then(|fb| fb.warning().map(|w| w.to_string()));
            return Err(Refusal::TooWeak {
                score,
                min: policy.min_strength,
                hint,
            });
        }
    }
    let Some(stored) = current else {
        return Ok(Current::Absent);
    };
    let pepper = settings.pepper.as_ref().map(|p| p.as_slice());
    match verify_any(password, stored, pepper) {
        Verified::Match => Err(Refusal::SameAsCurrent),
        Verified::NoMatch => Ok(Current::Differs),
        Verified::Unrecognised => Ok(Current::Unrecognised),
        Verified::TooCostly(kind) => Ok(Current::TooCostly(kind)),
    }
}

/// Whether the password is mostly the account's address: the whole address, its local part,
/// or its dot-, dash- or plus-separated pieces and domain labels, once case and separators
/// are gone, with only a few other characters ("alice.smith@example.com-2024!").
fn built_from_email(password: &str, email: &str) -> bool {
    let simplify = |s: &str| -> String {
        crate::email::key(s)
            .chars()
            .filter(|c| c.is_alphanumeric())
            .collect()
    };
    let pw = simplify(password);
    if pw.is_empty() {
        return false;
    }
    let (local, domain) = email.rsplit_once('@').unwrap_or((email, ""));
    let whole = simplify(email);
    let local_s = simplify(local);
    if pw == whole || pw == local_s {
        return true;
    }
    let mut parts: Vec<String> = vec![whole, local_s, simplify(domain)];
    parts.extend(
        local
            .split(|c: char| !c.is_alphanumeric())
            .chain(domain.split('.'))
            .map(simplify),
    );
    parts.retain(|p| !p.is_empty());
    // Longest first, so the whole address is taken before the pieces it is made of.
    parts.sort_by_key(|p| std::cmp::Reverse(p.chars().count()));
    parts.dedup();

    // Pieces of 4 or more characters start the match; shorter ones ("com", "bob") only count
    // once a longer one was found, so a password that merely contains one still passes.
    let mut rest = pw;
    let mut covered = 0usize;
    for short in [false, true] {
        for part in &parts {
            let n = part.chars().count();
            if (n >= 4) == short || (short && covered == 0) {
                continue;
            }
            while let Some(at) = rest.find(part.as_str()) {
                // A non-alphanumeric marker, so removing a piece cannot join two others.
                rest.replace_range(at..at + part.len(), "\u{0}");
                covered += n;
            }
        }
    }
    let left = rest.chars().filter(|c| c.is_alphanumeric()).count();
    covered >= 4 && left <= std::cmp::max(6, covered / 2)
}

/// Hash a password with argon2id into a PHC string.
pub fn hash(password: &str, params: &Argon2Config) -> Result<String> {
    Ok(phc::hash(password.as_bytes(), params)?)
}

/// Whether `password` matches a stored hash of any kind pwreset reads (see [`verify_any`]).
/// Anything else (another scheme, garbage, an absurd cost) does not match.
pub fn verify(password: &str, stored: &str) -> bool {
    verify_any(password, stored.as_bytes(), None).is_match()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Policy {
        Policy {
            min_length: 12,
            max_length: 1024,
            min_strength: 3,
            argon2: Argon2Config::default(),
            ..Policy::default()
        }
    }

    #[test]
    fn each_rule_refuses_with_its_name() {
        let p = policy();
        let e = "alice@example.com";
        assert!(matches!(
            check(&p, "short", e, None),
            Err(Refusal::TooShort { .. })
        ));
        assert!(matches!(
            check(&p, &"x".repeat(1025), e, None),
            Err(Refusal::TooLong { .. })
        ));
        assert_eq!(
            check(&p, "alice@example.com", e, None),
            Err(Refusal::FromEmail)
        );
        assert_eq!(
            check(&p, "Alice.Example.Com", e, None),
            Err(Refusal::FromEmail)
        );
        assert!(matches!(
            check(&p, "password1234", e, None),
            Err(Refusal::TooWeak { .. })
        ));
        assert!(check(&p, "correct horse battery staple", e, None).is_ok());
        let msg = Refusal::TooShort { min: 12, got: 5 }.to_string();
        assert!(msg.contains("min_length"));
    }

    #[test]
    fn length_counts_code_points_after_nfkc() {
        let p = Policy {
            min_strength: 0,
            ..policy()
        };
        // 12 code points of 3-byte characters: long enough, though 36 bytes.
        let s = "日本語のパスワードです長い";
        assert!(check(&p, &normalise(s), "x@example.com", None).is_ok());
        // The ligature ﬁ (one code point) becomes "fi" (two) under NFKC.
        assert_eq!(normalise("\u{fb01}").chars().count(), 2);
    }

    #[test]
    fn hashes_are_argon2id_phc_and_verify() {
        let cfg = Argon2Config {
            memory_kib: 8192,
            iterations: 1,
            parallelism: 1,
        };
        let h = hash("correct horse battery staple", &cfg).expect("should succeed");
        assert!(h.starts_with("$argon2id$v=19$m=8192,t=1,p=1$"), "{h}");
        assert!(verify("correct horse battery staple", &h));
        assert!(!verify("correct horse battery stapler", &h));
        assert!(!verify("x", "not a hash"));
        // An absurd cost in a stored hash is not worth computing: treated as no match.
        let greedy = h.replace("m=8192", "m=999999999");
        assert!(!verify("correct horse battery staple", &greedy));
        let p = policy();
        assert_eq!(
            check(
                &p,
                "correct horse battery staple",
                "a@example.com",
                Some(&h)
            ),
            Err(Refusal::SameAsCurrent)
        );
    }

    #[test]
    fn argon2_guard_parses_parameters_in_any_order() {
        // Once passed a guard that looked for the field starting with "m=", then ran for ever.
        let started = std::time::Instant::now();
        let greedy = "$argon2id$v=19$t=4294967295,m=8,p=1$c29tZXNhbHQxMjM0NTY3OA$O0oNQBP2wV+xIdmj4twbe1+3xQbIKMu2s3NT0pc+rOw";
        assert!(!verify("x", greedy));
        assert_eq!(
            verify_any("x", greedy.as_bytes(), None),
            Verified::TooCostly(Kind::Argon2id)
        );
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
    }

    fn lenient() -> Policy {
        Policy {
            min_strength: 0,
            ..policy()
        }
    }

    #[test]
    fn not_email_refuses_the_address_with_a_few_characters_added() {
        let p = lenient();
        let e = "alice.smith@example.com";
        for pw in [
            "alice.smith@example.com-2024!",
            "Alice.Smith@Example.com.2024.xyz",
            "alicesmith-example-com-2024",
            "alice.smith.2024!!",
            "smith-example-2024",
            "EXAMPLE.COM alice 99",
        ] {
            assert_eq!(check(&p, pw, e, None), Err(Refusal::FromEmail), "{pw}");
        }
    }

    #[test]
    fn not_email_does_not_refuse_unrelated_or_merely_overlapping_passwords() {
        let p = lenient();
        let e = "alice.smith@example.com";
        for pw in [
            "correct horse battery staple",
            "com and net are top-level domains",
            "alice in wonderland by lewis carroll",
            "smith and wesson collectors guide",
        ] {
            assert!(check(&p, pw, e, None).is_ok(), "{pw}");
        }
        // A 3-letter local part or label never counts on its own.
        for pw in [
            "bob the builder can fix it",
            "abc news at ten tonight",
            "bobcat country roads",
        ] {
            assert!(check(&p, pw, "bob@abc.io", None).is_ok(), "{pw}");
        }
        assert_eq!(
            check(&p, "bob@abc.io!!!!!!", "bob@abc.io", None),
            Err(Refusal::FromEmail)
        );
    }

    #[test]
    fn normalisation_can_be_turned_off() {
        assert_eq!("nfkc".parse::<Normalize>(), Ok(Normalize::Nfkc));
        assert_eq!("none".parse::<Normalize>(), Ok(Normalize::None));
        assert!("nfc".parse::<Normalize>().is_err());
        assert_eq!(Normalize::default(), Normalize::Nfkc);
        assert_eq!(&*normalise_with("\u{fb01}x", Normalize::None), "\u{fb01}x");
        assert_eq!(&*normalise_with("\u{fb01}x", Normalize::Nfkc), "fix");
        assert_eq!(
            *normalise("\u{fb01}x"),
            *normalise_with("\u{fb01}x", Normalize::Nfkc)
        );
    }

    fn low(format: Format) -> HashSettings {
        HashSettings {
            argon2: Argon2Config {
                memory_kib: 8192,
                iterations: 1,
                parallelism: 1,
            },
            bcrypt_cost: 4,
            pbkdf2_iterations: 1000,
            ..HashSettings::for_format(format)
        }
    }

    #[test]
    fn bcrypt_72_bytes_is_a_policy_rule() {
        let p = lenient();
        let long = "correct horse battery staple ".repeat(3);
        assert!(long.len() > 72);
        let bcrypt = low(Format::Bcrypt);
        let r = check_with(&p, &long, "a@example.com", None, &bcrypt);
        assert_eq!(r, Err(Refusal::BcryptTooLong));
        let msg = Refusal::BcryptTooLong.to_string();
        assert!(msg.contains("bcrypt_72_bytes"), "{msg}");
        // Formats without the limit take it.
        for f in [
            Format::Argon2id,
            Format::DjangoBcryptSha256,
            Format::AspnetIdentityV3,
        ] {
            assert!(check_with(&p, &long, "a@example.com", None, &low(f)).is_ok());
        }
    }

    #[test]
    fn not_current_works_in_every_format_and_skips_what_it_cannot_read() {
        let p = lenient();
        let pw = "correct horse battery staple";
        for f in Format::ALL {
            let s = low(f);
            let stored = hash_as(pw, &s).expect("hash");
            assert_eq!(
                check_with(&p, pw, "a@example.com", Some(stored.as_bytes()), &s),
                Err(Refusal::SameAsCurrent),
                "{f}"
            );
            assert_eq!(
                check_with(
                    &p,
                    "another long passphrase",
                    "a@example.com",
                    Some(stored.as_bytes()),
                    &s
                ),
                Ok(Current::Differs),
                "{f}"
            );
        }
        let s = HashSettings::default();
        for stored in [&b"!locked"[..], b"\x00\x9f\x92\x96 blob"] {
            let r = check_with(&p, pw, "a@example.com", Some(stored), &s)
                .expect("skipped, not refused");
            assert_eq!(r, Current::Unrecognised);
            assert!(r.note().is_some_and(|n| n.contains("not_current")));
        }
        assert_eq!(
            check_with(&p, pw, "a@example.com", None, &s),
            Ok(Current::Absent)
        );
        assert_eq!(Current::Absent.note(), None);
    }

    #[test]
    fn debug_hides_secrets() {
        let s = Secret::new("hunter2hunter2".into());
        assert!(!format!("{s:?}").contains("hunter2"));
    }
}
