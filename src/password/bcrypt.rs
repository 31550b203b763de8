//! bcrypt (`$2b$12$` + 22 characters of salt + 31 of hash), through the `bcrypt` crate.

use super::formats::{
    BCRYPT_COSTS, BCRYPT_MAX_BYTES, BcryptPrefix, HashError, Kind, Verified, outcome, random,
};

pub(super) struct Parsed<'a> {
    text: &'a str,
    kind: Kind,
    cost: u32,
}

pub(super) fn parse(text: &str) -> Option<Parsed<'_>> {
    let b = text.as_bytes();
    if b.len() != 60 || b[0] != b'$' || b[3] != b'$' || b[6] != b'$' {
        return None;
    }
    let kind = match &b[1..3] {
        b"2a" => Kind::Bcrypt2a,
        b"2b" => Kind::Bcrypt2b,
        b"2x" => Kind::Bcrypt2x,
        b"2y" => Kind::Bcrypt2y,
        _ => return None,
    };
    if !b[4..6].iter().all(u8::is_ascii_digit)
        || !b[7..]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'.' || *c == b'/')
    {
        return None;
    }
    let cost = u32::from(b[4] - b'0') * 10 + u32::from(b[5] - b'0');
    Some(Parsed { text, kind, cost })
}

impl Parsed<'_> {
    pub(super) fn kind(&self) -> Kind {
        self.kind
    }

    pub(super) fn cost(&self) -> u32 {
        self.cost
    }

    /// Like the frameworks' own verifiers, this reads only the first 72 bytes: it answers
    /// what logging in with `password` would answer.
    pub(super) fn verify(&self, password: &[u8]) -> Verified {
        // $2x$ marks hashes from crypt_blowfish's sign-extension bug, which changed the result
        // only for bytes >= 0x80; the crate does not reproduce the bug, so say nothing then.
        if self.kind == Kind::Bcrypt2x && !password.is_ascii() {
            return Verified::Unrecognised;
        }
        if !BCRYPT_COSTS.contains(&self.cost) {
            return if self.cost > *BCRYPT_COSTS.end() {
                Verified::TooCostly(self.kind)
            } else {
                Verified::Unrecognised
            };
        }
        match ::bcrypt::verify(password, self.text) {
            Ok(matched) => outcome(matched),
            Err(_) => Verified::Unrecognised,
        }
    }
}

/// A bcrypt hash of `password` (pepper already appended). More than 72 bytes is an error:
/// bcrypt would silently ignore the rest.
pub(super) fn hash(password: &[u8], cost: u32, prefix: BcryptPrefix) -> Result<String, HashError> {
    if password.len() > BCRYPT_MAX_BYTES {
        return Err(HashError::TooLong {
            rule: super::RULE_BCRYPT_72_BYTES,
            max_bytes: BCRYPT_MAX_BYTES,
        });
    }
    if !BCRYPT_COSTS.contains(&cost) {
        return Err(HashError::Params {
            format: "bcrypt",
            detail: format!(
                "cost {cost} is outside {}..={}",
                BCRYPT_COSTS.start(),
                BCRYPT_COSTS.end()
            ),
        });
    }
    let salt = random::<16>()?;
    let parts = ::bcrypt::hash_with_salt(password, cost, salt).map_err(|e| HashError::Params {
        format: "bcrypt",
        detail: e.to_string(),
    })?;
    let version = match prefix {
        BcryptPrefix::TwoB => ::bcrypt::Version::TwoB,
        BcryptPrefix::TwoY => ::bcrypt::Version::TwoY,
        BcryptPrefix::TwoA => ::bcrypt::Version::TwoA,
    };
    Ok(parts.format_for_version(version))
}
