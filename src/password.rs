//! The password policy and argon2id hashing.

use crate::config::{Argon2 as Argon2Config, Password as Policy};
use anyhow::{Result, anyhow};
use argon2::{Algorithm, Argon2, Params, PasswordHasher, PasswordVerifier, Version};
use ring::rand::{SecureRandom, SystemRandom};
use unicode_normalization::UnicodeNormalization;
use zeroize::Zeroizing;

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
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::TooShort { min, got } => write!(
                f,
                "too short (min_length): {got} characters, at least {min} needed; a few unrelated words make a long password that is easy to type"
            ),
            Refusal::TooLong { max } => write!(
                f,
                "too long (max_length): at most {max} characters; passwords are never truncated, so use a shorter one"
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
        }
    }
}

/// NFKC-normalise a password, so the same typed text hashes the same whatever the keyboard or
/// input method produced (NIST SP 800-63B 5.1.1.2).
pub fn normalise(p: &str) -> Zeroizing<String> {
    Zeroizing::new(p.nfkc().collect())
}

/// Check a (normalised) password against the policy. `current_hash` is the user's stored hash,
/// if any, so the new password can be refused when it is the same.
pub fn check(
    policy: &Policy,
    password: &str,
    email: &str,
    current_hash: Option<&str>,
) -> Result<(), Refusal> {
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
    if let Some(hash) = current_hash
        && verify(password, hash)
    {
        return Err(Refusal::SameAsCurrent);
    }
    Ok(())
}

fn built_from_email(password: &str, email: &str) -> bool {
    let simplify = |s: &str| -> String {
        crate::email::key(s)
            .chars()
            .filter(|c| c.is_alphanumeric())
            .collect()
    };
    let pw = simplify(password);
    let whole = simplify(email);
    let local = simplify(email.split('@').next().unwrap_or(email));
    if pw.is_empty() {
        return false;
    }
    // The password is the address or its local part, give or take punctuation and case, or
    // one of them with a few characters added ("alice2024!").
    pw == whole
        || pw == local
        || (local.chars().count() >= 4
            && pw.contains(&local)
            && pw.chars().count() <= local.chars().count() + 6)
}

/// Hash a password with argon2id into a PHC string.
pub fn hash(password: &str, params: &Argon2Config) -> Result<String> {
    let mut salt = [0u8; 16];
    SystemRandom::new()
        .fill(&mut salt)
        .map_err(|_| anyhow!("the system random number generator failed"))?;
    let hasher = hasher(params)?;
    let phc = hasher
        .hash_password_with_salt(password.as_bytes(), &salt)
        .map_err(|e| anyhow!("argon2id hashing failed: {e}"))?;
    Ok(phc.to_string())
}

/// Whether `password` matches a stored PHC hash. Anything that is not a hash we understand
/// (another scheme, garbage) does not match.
pub fn verify(password: &str, phc: &str) -> bool {
    // The stored hash may come from an application's table: refuse to spend more than the
    // largest cost pwreset itself would configure just to compare against it.
    if !affordable(phc) {
        return false;
    }
    Argon2::default()
        .verify_password(password.as_bytes(), phc)
        .is_ok()
}

/// Whether the m, t and p of a PHC string are within what `[password.argon2]` accepts.
fn affordable(phc: &str) -> bool {
    let Some(params) = phc.split('$').find(|part| part.starts_with("m=")) else {
        return true; // not an argon2 hash: the verifier rejects it cheaply
    };
    params.split(',').all(|kv| match kv.split_once('=') {
        Some(("m", v)) => v.parse::<u64>().is_ok_and(|m| m <= 4 * 1024 * 1024),
        Some(("t", v)) => v.parse::<u64>().is_ok_and(|t| t <= 100),
        Some(("p", v)) => v.parse::<u64>().is_ok_and(|p| p <= 64),
        _ => true,
    })
}

fn hasher(p: &Argon2Config) -> Result<Argon2<'static>> {
    let params = Params::new(p.memory_kib, p.iterations, p.parallelism, None).map_err(|e| {
        anyhow!(
            "argon2 parameters m={} t={} p={}: {e}",
            p.memory_kib,
            p.iterations,
            p.parallelism
        )
    })?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
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
    fn debug_hides_secrets() {
        let s = Secret::new("hunter2hunter2".into());
        assert!(!format!("{s:?}").contains("hunter2"));
    }
}
