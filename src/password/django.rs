//! Django's hashers (`django.contrib.auth.hashers`): `pbkdf2_sha256$`, `pbkdf2_sha1$`,
//! `argon2$`, `bcrypt_sha256$`, `bcrypt$`. Django's salted md5/sha1 are in `legacy`.

use super::formats::{HashError, Kind, PBKDF2_ITERATIONS, Verified, random};
use super::{bcrypt, phc};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ring::digest;
use ring::pbkdf2;
use std::num::NonZeroU32;
use zeroize::Zeroizing;

/// Django's `RANDOM_STRING_CHARS`, the alphabet of its salts.
const SALT_CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

pub(super) enum Parsed<'a> {
    Pbkdf2 {
        sha1: bool,
        iterations: u64,
        salt: &'a str,
        hash: Vec<u8>,
    },
    Argon2(phc::Parsed),
    Bcrypt {
        sha256: bool,
        inner: bcrypt::Parsed<'a>,
    },
}

pub(super) fn parse(text: &str) -> Option<Parsed<'_>> {
    let (algorithm, rest) = text.split_once('$')?;
    match algorithm {
        "pbkdf2_sha256" | "pbkdf2_sha1" => {
            let mut fields = rest.split('$');
            let (iterations, salt, hash) = (fields.next()?, fields.next()?, fields.next()?);
            if fields.next().is_some()
                || iterations.is_empty()
                || iterations.len() > 12
                || !iterations.bytes().all(|b| b.is_ascii_digit())
            {
                return None;
            }
            let sha1 = algorithm == "pbkdf2_sha1";
            // Django compares whole encodings, so only a full-length digest can ever match.
            let len = if sha1 { 20 } else { 32 };
            Some(Parsed::Pbkdf2 {
                sha1,
                iterations: iterations.parse().ok()?,
                salt,
                hash: STANDARD.decode(hash).ok().filter(|h| h.len() == len)?,
            })
        }
        "argon2" => phc::parse_django(text).map(Parsed::Argon2),
        "bcrypt_sha256" | "bcrypt" => Some(Parsed::Bcrypt {
            sha256: algorithm == "bcrypt_sha256",
            // Django writes "bcrypt_sha256$" + "$2b$...", hence the empty field.
            inner: bcrypt::parse(rest)?,
        }),
        _ => None,
    }
}

impl Parsed<'_> {
    pub(super) fn kind(&self) -> Kind {
        match self {
            Parsed::Pbkdf2 { sha1: false, .. } => Kind::DjangoPbkdf2Sha256,
            Parsed::Pbkdf2 { sha1: true, .. } => Kind::DjangoPbkdf2Sha1,
            Parsed::Argon2(p) => p.kind(),
            Parsed::Bcrypt { sha256: true, .. } => Kind::DjangoBcryptSha256,
            Parsed::Bcrypt { sha256: false, .. } => Kind::DjangoBcrypt,
        }
    }

    pub(super) fn verify(&self, password: &str) -> Verified {
        match self {
            Parsed::Pbkdf2 {
                sha1,
                iterations,
                salt,
                hash,
            } => {
                let Some(n) = u32::try_from(*iterations)
                    .ok()
                    .filter(|n| PBKDF2_ITERATIONS.contains(n))
                    .and_then(NonZeroU32::new)
                else {
                    return if *iterations == 0 {
                        Verified::Unrecognised
                    } else {
                        Verified::TooCostly(self.kind())
                    };
                };
                let algorithm = if *sha1 {
                    pbkdf2::PBKDF2_HMAC_SHA1
                } else {
                    pbkdf2::PBKDF2_HMAC_SHA256
                };
                super::formats::outcome(
                    pbkdf2::verify(algorithm, n, salt.as_bytes(), password.as_bytes(), hash)
                        .is_ok(),
                )
            }
            Parsed::Argon2(p) => {
                // Django's hashers take the kind from the prefix; report it as Django's.
                match p.verify(password.as_bytes()) {
                    Verified::TooCostly(_) => Verified::TooCostly(self.kind()),
                    v => v,
                }
            }
            Parsed::Bcrypt { sha256, inner } => {
                let v = if *sha256 {
                    inner.verify(sha256_hex(password).as_bytes())
                } else {
                    inner.verify(password.as_bytes())
                };
                match v {
                    Verified::TooCostly(_) => Verified::TooCostly(self.kind()),
                    v => v,
                }
            }
        }
    }
}

/// Lower-case hex of SHA-256: what Django's `BCryptSHA256PasswordHasher` gives bcrypt, so any
/// length of password fits bcrypt's 72 bytes.
fn sha256_hex(password: &str) -> Zeroizing<String> {
    let d = digest::digest(&digest::SHA256, password.as_bytes());
    Zeroizing::new(hex(d.as_ref()))
}

pub(super) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    s
}

/// 22 characters from Django's salt alphabet, as `get_random_string(22)` makes them.
fn salt() -> Result<String, HashError> {
    let mut out = String::with_capacity(22);
    while out.len() < 22 {
        for b in random::<32>()? {
            // 248 = 4 * 62: dropping the rest keeps every character equally likely.
            if b < 248 && out.len() < 22 {
                out.push(char::from(SALT_CHARS[usize::from(b % 62)]));
            }
        }
    }
    Ok(out)
}

pub(super) fn hash_pbkdf2_sha256(password: &str, iterations: u32) -> Result<String, HashError> {
    let n = NonZeroU32::new(iterations)
        .filter(|n| PBKDF2_ITERATIONS.contains(&n.get()))
        .ok_or_else(|| HashError::Params {
            format: "django-pbkdf2-sha256",
            detail: format!(
                "{iterations} iterations is outside {}..={}",
                PBKDF2_ITERATIONS.start(),
                PBKDF2_ITERATIONS.end()
            ),
        })?;
    let salt = salt()?;
    let mut out = [0u8; 32];
    pbkdf2::derive(
        pbkdf2::PBKDF2_HMAC_SHA256,
        n,
        salt.as_bytes(),
        password.as_bytes(),
        &mut out,
    );
    Ok(format!(
        "pbkdf2_sha256${iterations}${salt}${}",
        STANDARD.encode(out)
    ))
}

pub(super) fn hash_bcrypt_sha256(password: &str, cost: u32) -> Result<String, HashError> {
    let inner = bcrypt::hash(
        sha256_hex(password).as_bytes(),
        cost,
        super::formats::BcryptPrefix::TwoB,
    )?;
    Ok(format!("bcrypt_sha256${inner}"))
}
