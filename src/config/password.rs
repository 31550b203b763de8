//! `[password]`: the policy, and the cost of the hash.

use super::Problem;
use crate::password::{BcryptPrefix, Normalize};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Password {
    pub min_length: usize,
    pub max_length: usize,
    /// zxcvbn score 0-4; 0 turns the check off.
    pub min_strength: u8,
    /// `nfkc` (the default) or `none`, for applications whose login does not normalise.
    #[serde(
        deserialize_with = "super::from_str",
        serialize_with = "super::named::normalize"
    )]
    pub normalize: Normalize,
    pub argon2: Argon2,
    pub bcrypt: Bcrypt,
}

/// `[password.bcrypt]`: for `password_format = "bcrypt"` (and Django's bcrypt hasher).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Bcrypt {
    pub cost: u32,
    /// `2b`, `2y` (PHP/Laravel) or `2a` (Ruby). Unset: the prefix the column's bcrypt hashes
    /// use, else `2b`. Kept apart from a default so that an explicit prefix the column does
    /// not hold can be refused rather than silently written (PHP rejects `$2b$`).
    #[serde(
        deserialize_with = "super::some_from_str",
        serialize_with = "super::named::bcrypt_prefix",
        skip_serializing_if = "Option::is_none"
    )]
    pub prefix: Option<BcryptPrefix>,
}

impl Default for Bcrypt {
    fn default() -> Self {
        Bcrypt {
            cost: 12,
            prefix: None,
        }
    }
}

impl Default for Password {
    fn default() -> Self {
        Password {
            min_length: 12,
            max_length: 1024,
            min_strength: 3,
            normalize: Normalize::Nfkc,
            argon2: Argon2::default(),
            bcrypt: Bcrypt::default(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Argon2 {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl Default for Argon2 {
    /// The OWASP Password Storage Cheat Sheet baseline for argon2id.
    fn default() -> Self {
        Argon2 {
            memory_kib: 19456,
            iterations: 2,
            parallelism: 1,
        }
    }
}

/// The largest argon2 costs pwreset accepts, in its config and in a stored hash it compares
/// against: above them one hash takes minutes or all memory.
pub const ARGON2_MAX_MEMORY_KIB: u32 = 4 * 1024 * 1024;
pub const ARGON2_MAX_ITERATIONS: u32 = 100;
pub const ARGON2_MAX_PARALLELISM: u32 = 64;

impl Password {
    pub(super) fn validate(&self) -> Result<(), Problem> {
        let a = &self.argon2;
        // Below 8 MiB the hash protects little.
        if !(8192..=ARGON2_MAX_MEMORY_KIB).contains(&a.memory_kib) {
            return Err(Problem::new(
                "password.argon2.memory_kib",
                "must be between 8192 (8 MiB) and 4194304 (4 GiB)",
            ));
        }
        if !(1..=ARGON2_MAX_ITERATIONS).contains(&a.iterations) {
            return Err(Problem::new(
                "password.argon2.iterations",
                "must be between 1 and 100",
            ));
        }
        if !(1..=ARGON2_MAX_PARALLELISM).contains(&a.parallelism) {
            return Err(Problem::new(
                "password.argon2.parallelism",
                "must be between 1 and 64",
            ));
        }
        if a.memory_kib < 8 * a.parallelism {
            return Err(Problem::new(
                "password.argon2.memory_kib",
                "must be at least 8 × parallelism",
            ));
        }
        if self.min_length < 1 {
            return Err(Problem::new("password.min_length", "must be at least 1"));
        }
        if self.max_length < self.min_length || self.max_length > 4096 {
            return Err(Problem::new(
                "password.max_length",
                "must be between min_length and 4096",
            ));
        }
        if !crate::password::formats::BCRYPT_COSTS.contains(&self.bcrypt.cost) {
            return Err(Problem::new(
                "password.bcrypt.cost",
                format!(
                    "must be between {} and {}",
                    crate::password::formats::BCRYPT_COSTS.start(),
                    crate::password::formats::BCRYPT_COSTS.end()
                ),
            ));
        }
        if self.min_strength > 4 {
            return Err(Problem::new(
                "password.min_strength",
                "must be a zxcvbn score from 0 to 4",
            ));
        }
        Ok(())
    }
}
