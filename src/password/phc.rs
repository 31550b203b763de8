//! argon2 PHC strings (`$argon2id$v=19$m=..,t=..,p=..$salt$hash`), bare or behind Django's
//! `argon2` prefix.

use super::formats::{
    HashError, Kind, MAX_ARGON2_ITERATIONS, MAX_ARGON2_MEMORY_KIB, MAX_ARGON2_PARALLELISM,
    Verified, outcome, random,
};
use crate::config::Argon2 as Argon2Config;
use ::argon2::{
    Algorithm, Argon2, Params, PasswordHash, PasswordHasher, PasswordVerifier, Version,
};

pub(super) struct Parsed {
    // Boxed: a parsed PHC string holds fixed-size buffers of several hundred bytes.
    hash: Box<PasswordHash>,
    kind: Kind,
}

/// A bare PHC argon2 string with a salt and a hash. The parameters are checked when verifying.
pub(super) fn parse(text: &str) -> Option<Parsed> {
    if !text.starts_with("$argon2") {
        return None;
    }
    let hash = PasswordHash::new(text).ok()?;
    let kind = match hash.algorithm.as_str() {
        "argon2id" => Kind::Argon2id,
        "argon2i" => Kind::Argon2i,
        "argon2d" => Kind::Argon2d,
        _ => return None,
    };
    (hash.salt.is_some() && hash.hash.is_some()).then_some(Parsed {
        hash: Box::new(hash),
        kind,
    })
}

/// Django's `argon2$argon2id$...`: the same PHC string with `argon2` in front.
pub(super) fn parse_django(text: &str) -> Option<Parsed> {
    let p = parse(text.strip_prefix("argon2")?)?;
    let kind = match p.kind {
        Kind::Argon2id => Kind::DjangoArgon2id,
        Kind::Argon2i => Kind::DjangoArgon2i,
        _ => Kind::DjangoArgon2d,
    };
    Some(Parsed { kind, ..p })
}

impl Parsed {
    pub(super) fn kind(&self) -> Kind {
        self.kind
    }

    /// The stored parameters, when they are within what pwreset would ever configure.
    pub(super) fn params(&self) -> Option<Argon2Config> {
        let p = Params::try_from(&*self.hash).ok()?;
        affordable(&p).then(|| Argon2Config {
            memory_kib: p.m_cost(),
            iterations: p.t_cost(),
            parallelism: p.p_cost(),
        })
    }

    pub(super) fn verify(&self, password: &[u8]) -> Verified {
        let Ok(params) = Params::try_from(&*self.hash) else {
            return Verified::Unrecognised;
        };
        if !affordable(&params) {
            return Verified::TooCostly(self.kind);
        }
        outcome(
            Argon2::default()
                .verify_password(password, &*self.hash)
                .is_ok(),
        )
    }
}

/// Whether the parameters are within what `[password.argon2]` accepts. They come from parsing
/// the whole parameter list, so their order does not matter (`t=...,m=...` once slipped past a
/// guard that looked for the field starting with `m=`).
fn affordable(p: &Params) -> bool {
    p.m_cost() <= MAX_ARGON2_MEMORY_KIB
        && p.t_cost() <= MAX_ARGON2_ITERATIONS
        && p.p_cost() <= MAX_ARGON2_PARALLELISM
}

pub(super) fn hasher(p: &Argon2Config) -> Result<Argon2<'static>, HashError> {
    let params = Params::new(p.memory_kib, p.iterations, p.parallelism, None).map_err(|e| {
        HashError::Params {
            format: "argon2",
            detail: format!(
                "m={} t={} p={}: {e}",
                p.memory_kib, p.iterations, p.parallelism
            ),
        }
    })?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// An argon2id PHC string with a fresh 16-byte salt.
pub(super) fn hash(password: &[u8], p: &Argon2Config) -> Result<String, HashError> {
    let salt = random::<16>()?;
    let phc = hasher(p)?
        .hash_password_with_salt(password, &salt)
        .map_err(|e| HashError::Params {
            format: "argon2",
            detail: e.to_string(),
        })?;
    Ok(phc.to_string())
}
