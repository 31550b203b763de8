//! ASP.NET Core Identity's `PasswordHasher<TUser>`: base64 of
//!
//! - v3: `0x01 | prf (u32 BE: 0 HMAC-SHA1, 1 HMAC-SHA256, 2 HMAC-SHA512) | iterations (u32 BE)
//!   | salt length (u32 BE) | salt | subkey`, PBKDF2;
//! - v2: `0x00 | salt (16) | subkey (32)`, PBKDF2-HMAC-SHA1 with 1000 iterations.
//!
//! pwreset writes v3 with the current default: HMAC-SHA512, 100 000 iterations, a 16-byte
//! salt and a 32-byte subkey.

use super::formats::{HashError, Kind, PBKDF2_ITERATIONS, Verified, outcome, random};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ring::pbkdf2;
use std::num::NonZeroU32;

const V3_ITERATIONS: u32 = 100_000;
const PRF_HMAC_SHA512: u32 = 2;

pub(super) struct Parsed {
    kind: Kind,
    algorithm: pbkdf2::Algorithm,
    iterations: u32,
    salt: Vec<u8>,
    subkey: Vec<u8>,
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

pub(super) fn parse(text: &str) -> Option<Parsed> {
    let b = STANDARD.decode(text).ok()?;
    match b.first()? {
        0x00 if b.len() == 1 + 16 + 32 => Some(Parsed {
            kind: Kind::AspnetIdentityV2,
            algorithm: pbkdf2::PBKDF2_HMAC_SHA1,
            iterations: 1000,
            salt: b[1..17].to_vec(),
            subkey: b[17..].to_vec(),
        }),
        0x01 => {
            let algorithm = match be32(&b, 1)? {
                0 => pbkdf2::PBKDF2_HMAC_SHA1,
                1 => pbkdf2::PBKDF2_HMAC_SHA256,
                2 => pbkdf2::PBKDF2_HMAC_SHA512,
                _ => return None,
            };
            let iterations = be32(&b, 5)?;
            let salt_len = usize::try_from(be32(&b, 9)?).ok()?;
            // ASP.NET itself refuses salts and subkeys under 128 bits.
            let rest = b.get(13..)?;
            if salt_len < 16 || rest.len() < salt_len + 16 {
                return None;
            }
            Some(Parsed {
                kind: Kind::AspnetIdentityV3,
                algorithm,
                iterations,
                salt: rest[..salt_len].to_vec(),
                subkey: rest[salt_len..].to_vec(),
            })
        }
        _ => None,
    }
}

impl Parsed {
    pub(super) fn kind(&self) -> Kind {
        self.kind
    }

    pub(super) fn verify(&self, password: &str) -> Verified {
        if !PBKDF2_ITERATIONS.contains(&self.iterations) {
            return if self.iterations == 0 {
                Verified::Unrecognised
            } else {
                Verified::TooCostly(self.kind)
            };
        }
        let Some(n) = NonZeroU32::new(self.iterations) else {
            return Verified::Unrecognised;
        };
        outcome(
            pbkdf2::verify(
                self.algorithm,
                n,
                &self.salt,
                password.as_bytes(),
                &self.subkey,
            )
            .is_ok(),
        )
    }
}

pub(super) fn hash_v3(password: &str) -> Result<String, HashError> {
    let salt = random::<16>()?;
    let mut subkey = [0u8; 32];
    let n = NonZeroU32::new(V3_ITERATIONS).ok_or(HashError::Params {
        format: "aspnet-identity-v3",
        detail: "zero iterations".into(),
    })?;
    pbkdf2::derive(
        pbkdf2::PBKDF2_HMAC_SHA512,
        n,
        &salt,
        password.as_bytes(),
        &mut subkey,
    );
    let mut out = Vec::with_capacity(13 + 16 + 32);
    out.push(0x01);
    out.extend_from_slice(&PRF_HMAC_SHA512.to_be_bytes());
    out.extend_from_slice(&V3_ITERATIONS.to_be_bytes());
    out.extend_from_slice(&16u32.to_be_bytes());
    out.extend_from_slice(&salt);
    out.extend_from_slice(&subkey);
    Ok(STANDARD.encode(out))
}
