//! The password hash formats pwreset writes and reads.
//!
//! Writing: the lead's config fills a [`HashSettings`] (`[users] password_format`,
//! `[password.argon2]`, `[password.bcrypt]`, `[users] pepper_file`) and [`hash_as`] turns a
//! normalised password into the string the application's own framework expects in its
//! password column. One [`Format`] per supported framework:
//!
//! | config name            | stored value                                          |
//! |------------------------|-------------------------------------------------------|
//! | `argon2id`             | `$argon2id$v=19$m=..,t=..,p=..$salt$hash` (PHC)       |
//! | `bcrypt`               | `$2b$12$...` (`2y` PHP/Laravel, `2a` Ruby), pepper appended (Devise) |
//! | `django-pbkdf2-sha256` | `pbkdf2_sha256$<iterations>$<salt>$<base64>`          |
//! | `django-argon2`        | `argon2$argon2id$v=19$m=..,t=..,p=..$salt$hash`       |
//! | `django-bcrypt-sha256` | `bcrypt_sha256$$2b$12$...` (bcrypt of hex sha256)     |
//! | `aspnet-identity-v3`   | base64 of ASP.NET Core Identity's v3 layout           |
//!
//! Reading: [`identify`] names the [`Kind`] of any stored value (for `init`'s census) and
//! [`verify_any`] checks a password against it, for every kind written above and the older
//! kinds those frameworks still accept (argon2i/d, `$2a$`/`$2x$`/`$2y$`, Django's
//! `pbkdf2_sha1`, `bcrypt`, salted and unsalted md5/sha1, ASP.NET Identity v2, bare hex
//! md5/sha1). Stored values are bytes because a column may be a BLOB.
//!
//! A stored value comes from somebody else's table, so reading never panics and never spends
//! more than pwreset's own largest configurable cost: a hash that asks for more is
//! [`Verified::TooCostly`], not computed.

use super::{aspnet, bcrypt, django, legacy, phc};
use crate::config::Argon2;
use ring::rand::{SecureRandom, SystemRandom};
use zeroize::Zeroizing;

/// The largest argon2 memory cost read from a stored hash, in KiB (4 GiB, as `[password.argon2]`).
pub const MAX_ARGON2_MEMORY_KIB: u32 = 4 * 1024 * 1024;
/// The largest argon2 time cost read from a stored hash.
pub const MAX_ARGON2_ITERATIONS: u32 = 100;
/// The largest argon2 parallelism read from a stored hash.
pub const MAX_ARGON2_PARALLELISM: u32 = 64;
/// bcrypt costs pwreset writes and reads: 2^16 rounds already take seconds.
pub const BCRYPT_COSTS: std::ops::RangeInclusive<u32> = 4..=16;
/// PBKDF2 iterations pwreset writes and reads (Django, ASP.NET).
pub const PBKDF2_ITERATIONS: std::ops::RangeInclusive<u32> = 1..=10_000_000;
/// bcrypt reads at most this many bytes of the password; longer ones are refused, never cut.
pub const BCRYPT_MAX_BYTES: usize = 72;
/// Django's default PBKDF2 iterations (`PBKDF2PasswordHasher.iterations`, Django 6.1).
pub const DJANGO_PBKDF2_ITERATIONS: u32 = 1_500_000;
/// Django's `Argon2PasswordHasher` defaults (Django 6.1): t=2, m=102400 KiB, p=8.
pub const DJANGO_ARGON2: Argon2 = Argon2 {
    memory_kib: 102_400,
    iterations: 2,
    parallelism: 8,
};
/// Longest stored value looked at; every known format is far shorter.
const MAX_STORED: usize = 4096;

/// A format pwreset can write, named as in the config file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    Argon2id,
    Bcrypt,
    DjangoPbkdf2Sha256,
    DjangoArgon2,
    DjangoBcryptSha256,
    AspnetIdentityV3,
}

impl Format {
    pub const ALL: [Format; 6] = [
        Format::Argon2id,
        Format::Bcrypt,
        Format::DjangoPbkdf2Sha256,
        Format::DjangoArgon2,
        Format::DjangoBcryptSha256,
        Format::AspnetIdentityV3,
    ];

    /// The config name (`[users] password_format`).
    pub fn name(&self) -> &'static str {
        match self {
            Format::Argon2id => "argon2id",
            Format::Bcrypt => "bcrypt",
            Format::DjangoPbkdf2Sha256 => "django-pbkdf2-sha256",
            Format::DjangoArgon2 => "django-argon2",
            Format::DjangoBcryptSha256 => "django-bcrypt-sha256",
            Format::AspnetIdentityV3 => "aspnet-identity-v3",
        }
    }

    /// Whether a stored hash of `kind` is what this format writes (give or take its cost), so
    /// the census can tell "already in the configured format" from "will change at reset".
    pub fn matches(&self, kind: Kind) -> bool {
        match self {
            Format::Argon2id => kind == Kind::Argon2id,
            Format::Bcrypt => matches!(kind, Kind::Bcrypt2a | Kind::Bcrypt2b | Kind::Bcrypt2y),
            Format::DjangoPbkdf2Sha256 => kind == Kind::DjangoPbkdf2Sha256,
            Format::DjangoArgon2 => kind == Kind::DjangoArgon2id,
            Format::DjangoBcryptSha256 => kind == Kind::DjangoBcryptSha256,
            Format::AspnetIdentityV3 => kind == Kind::AspnetIdentityV3,
        }
    }

    /// Whether `[users] pepper_file` means anything for this format (only Devise's bcrypt).
    pub fn uses_pepper(&self) -> bool {
        *self == Format::Bcrypt
    }
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// An unknown format name; its message lists the valid ones.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown password format {given:?}; valid formats: {}", Format::ALL.map(|f| f.name()).join(", "))]
pub struct UnknownFormat {
    pub given: String,
}

impl std::str::FromStr for Format {
    type Err = UnknownFormat;
    fn from_str(s: &str) -> Result<Format, UnknownFormat> {
        Format::ALL
            .into_iter()
            .find(|f| f.name() == s)
            .ok_or_else(|| UnknownFormat {
                given: s.to_string(),
            })
    }
}

/// The version prefix of a bcrypt hash pwreset writes. The hash is the same; only the label
/// differs, and some verifiers accept only their own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BcryptPrefix {
    /// `$2b$`: OpenBSD and most libraries since 2014.
    #[default]
    TwoB,
    /// `$2y$`: PHP's `password_hash` (Laravel).
    TwoY,
    /// `$2a$`: Ruby's bcrypt gem (Devise) before 3.1.12, and older libraries.
    TwoA,
}

impl BcryptPrefix {
    pub fn name(&self) -> &'static str {
        match self {
            BcryptPrefix::TwoB => "2b",
            BcryptPrefix::TwoY => "2y",
            BcryptPrefix::TwoA => "2a",
        }
    }
}

impl std::str::FromStr for BcryptPrefix {
    type Err = String;
    fn from_str(s: &str) -> Result<BcryptPrefix, String> {
        match s {
            "2b" => Ok(BcryptPrefix::TwoB),
            "2y" => Ok(BcryptPrefix::TwoY),
            "2a" => Ok(BcryptPrefix::TwoA),
            _ => Err(format!(
                "unknown bcrypt prefix {s:?}; valid prefixes: 2b, 2y, 2a"
            )),
        }
    }
}

/// Everything [`hash_as`] needs, in plain types the config can fill.
#[derive(Clone)]
pub struct HashSettings {
    pub format: Format,
    /// For `argon2id` and `django-argon2`.
    pub argon2: Argon2,
    /// For `bcrypt` and `django-bcrypt-sha256`; within [`BCRYPT_COSTS`].
    pub bcrypt_cost: u32,
    /// For `bcrypt` only (Django always writes `2b`).
    pub bcrypt_prefix: BcryptPrefix,
    /// For `django-pbkdf2-sha256`; within [`PBKDF2_ITERATIONS`].
    pub pbkdf2_iterations: u32,
    /// Appended to the password before bcrypt (Devise's `config.pepper`); other formats
    /// ignore it.
    pub pepper: Option<Zeroizing<Vec<u8>>>,
}

impl HashSettings {
    /// The defaults for `format`: Django's own argon2 parameters for `django-argon2`, the
    /// OWASP baseline of `[password.argon2]` otherwise.
    pub fn for_format(format: Format) -> HashSettings {
        HashSettings {
            format,
            argon2: if format == Format::DjangoArgon2 {
                DJANGO_ARGON2
            } else {
                Argon2::default()
            },
            ..HashSettings::default()
        }
    }
}

impl Default for HashSettings {
    fn default() -> Self {
        HashSettings {
            format: Format::Argon2id,
            argon2: Argon2::default(),
            bcrypt_cost: 12,
            bcrypt_prefix: BcryptPrefix::TwoB,
            pbkdf2_iterations: DJANGO_PBKDF2_ITERATIONS,
            pepper: None,
        }
    }
}

impl std::fmt::Debug for HashSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HashSettings")
            .field("format", &self.format)
            .field("argon2", &self.argon2)
            .field("bcrypt_cost", &self.bcrypt_cost)
            .field("bcrypt_prefix", &self.bcrypt_prefix)
            .field("pbkdf2_iterations", &self.pbkdf2_iterations)
            .field("pepper", &self.pepper.as_ref().map(|_| "(set)"))
            .finish()
    }
}

/// Why [`hash_as`] wrote nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HashError {
    /// The password (with the pepper) is longer than the format can use; `rule` names the
    /// policy rule, as [`super::Refusal::BcryptTooLong`] does.
    #[error(
        "the password is too long for bcrypt ({rule}): bcrypt reads at most {max_bytes} bytes, and pwreset never truncates"
    )]
    TooLong {
        rule: &'static str,
        max_bytes: usize,
    },
    #[error("the system random number generator failed")]
    Random,
    #[error("{format} parameters: {detail}")]
    Params {
        format: &'static str,
        detail: String,
    },
}

impl HashError {
    /// The policy refusal this error amounts to, if it is the password's fault.
    pub fn refusal(&self) -> Option<super::Refusal> {
        match self {
            HashError::TooLong { .. } => Some(super::Refusal::BcryptTooLong),
            _ => None,
        }
    }
}

/// Hash `password` (already normalised) in the configured format.
pub fn hash_as(password: &str, s: &HashSettings) -> Result<String, HashError> {
    match s.format {
        Format::Argon2id => phc::hash(password.as_bytes(), &s.argon2),
        Format::Bcrypt => {
            let mut input = Zeroizing::new(password.as_bytes().to_vec());
            if let Some(pepper) = &s.pepper {
                input.extend_from_slice(pepper);
            }
            bcrypt::hash(&input, s.bcrypt_cost, s.bcrypt_prefix)
        }
        Format::DjangoPbkdf2Sha256 => django::hash_pbkdf2_sha256(password, s.pbkdf2_iterations),
        Format::DjangoArgon2 => Ok(format!(
            "argon2{}",
            phc::hash(password.as_bytes(), &s.argon2)?
        )),
        Format::DjangoBcryptSha256 => django::hash_bcrypt_sha256(password, s.bcrypt_cost),
        Format::AspnetIdentityV3 => aspnet::hash_v3(password),
    }
}

/// Whether `password` (with `pepper`) would be too long for `s`'s format, without hashing.
pub fn too_long_for(password: &str, s: &HashSettings) -> bool {
    s.format == Format::Bcrypt
        && password.len() + s.pepper.as_ref().map_or(0, |p| p.len()) > BCRYPT_MAX_BYTES
}

/// Every kind of stored hash pwreset recognises when reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Argon2id,
    Argon2i,
    Argon2d,
    Bcrypt2a,
    Bcrypt2b,
    Bcrypt2x,
    Bcrypt2y,
    DjangoPbkdf2Sha256,
    DjangoPbkdf2Sha1,
    DjangoArgon2id,
    DjangoArgon2i,
    DjangoArgon2d,
    DjangoBcryptSha256,
    DjangoBcrypt,
    /// Django's salted `sha1$salt$hex` (removed in Django 5.0, still found in old tables).
    DjangoSha1,
    /// Django's salted `md5$salt$hex`.
    DjangoMd5,
    AspnetIdentityV3,
    AspnetIdentityV2,
    /// Unsalted SHA-1: 40 hex digits, or Django's `unsalted_sha1$$hex`.
    Sha1,
    /// Unsalted MD5: 32 hex digits, or Django's `md5$$hex`.
    Md5,
}

impl Kind {
    /// A short stable name, for the census and notes.
    pub fn name(&self) -> &'static str {
        match self {
            Kind::Argon2id => "argon2id",
            Kind::Argon2i => "argon2i",
            Kind::Argon2d => "argon2d",
            Kind::Bcrypt2a => "bcrypt-2a",
            Kind::Bcrypt2b => "bcrypt-2b",
            Kind::Bcrypt2x => "bcrypt-2x",
            Kind::Bcrypt2y => "bcrypt-2y",
            Kind::DjangoPbkdf2Sha256 => "django-pbkdf2-sha256",
            Kind::DjangoPbkdf2Sha1 => "django-pbkdf2-sha1",
            Kind::DjangoArgon2id => "django-argon2",
            Kind::DjangoArgon2i => "django-argon2i",
            Kind::DjangoArgon2d => "django-argon2d",
            Kind::DjangoBcryptSha256 => "django-bcrypt-sha256",
            Kind::DjangoBcrypt => "django-bcrypt",
            Kind::DjangoSha1 => "django-sha1",
            Kind::DjangoMd5 => "django-md5",
            Kind::AspnetIdentityV3 => "aspnet-identity-v3",
            Kind::AspnetIdentityV2 => "aspnet-identity-v2",
            Kind::Sha1 => "unsalted-sha1",
            Kind::Md5 => "unsalted-md5",
        }
    }

    /// Whether this kind is weak enough that the census should say "replace at next reset".
    pub fn is_legacy(&self) -> bool {
        matches!(
            self,
            Kind::DjangoSha1
                | Kind::DjangoMd5
                | Kind::Sha1
                | Kind::Md5
                | Kind::AspnetIdentityV2
                | Kind::Bcrypt2x
        )
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The outcome of checking a password against a stored value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verified {
    Match,
    NoMatch,
    /// Not a hash pwreset knows (or a form of it that cannot be decided, like `$2x$` with
    /// non-ASCII bytes).
    Unrecognised,
    /// A known kind whose stored cost is beyond what pwreset would ever configure: not worth
    /// computing (a hostile or corrupt value could otherwise pin a core for hours).
    TooCostly(Kind),
}

impl Verified {
    pub fn is_match(&self) -> bool {
        *self == Verified::Match
    }
}

/// A stored value, parsed just enough to name its kind and verify it.
pub(super) enum Parsed<'a> {
    Phc(phc::Parsed),
    Bcrypt(bcrypt::Parsed<'a>),
    Django(django::Parsed<'a>),
    Aspnet(aspnet::Parsed),
    Legacy(legacy::Parsed<'a>),
}

impl Parsed<'_> {
    fn kind(&self) -> Kind {
        match self {
            Parsed::Phc(p) => p.kind(),
            Parsed::Bcrypt(p) => p.kind(),
            Parsed::Django(p) => p.kind(),
            Parsed::Aspnet(p) => p.kind(),
            Parsed::Legacy(p) => p.kind(),
        }
    }
}

fn parse(stored: &[u8]) -> Option<Parsed<'_>> {
    if stored.len() > MAX_STORED {
        return None;
    }
    // CHAR(n) columns pad with spaces (and some drivers with NULs); no format contains either.
    let text = std::str::from_utf8(stored)
        .ok()?
        .trim_matches(|c: char| c.is_ascii_whitespace() || c == '\0');
    if text.is_empty() {
        return None;
    }
    if let Some(p) = phc::parse(text) {
        return Some(Parsed::Phc(p));
    }
    if let Some(p) = bcrypt::parse(text) {
        return Some(Parsed::Bcrypt(p));
    }
    if let Some(p) = django::parse(text) {
        return Some(Parsed::Django(p));
    }
    if let Some(p) = legacy::parse(text) {
        return Some(Parsed::Legacy(p));
    }
    aspnet::parse(text).map(Parsed::Aspnet)
}

/// The kind of a stored value, or `None` when pwreset does not recognise it.
pub fn identify(stored: &[u8]) -> Option<Kind> {
    parse(stored).map(|p| p.kind())
}

/// The cost a stored hash was made with, as far as pwreset writes the same kind again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    /// bcrypt (also inside Django's `bcrypt_sha256$`): the cost, and the version prefix of a
    /// plain bcrypt hash.
    Bcrypt {
        cost: u32,
        prefix: Option<BcryptPrefix>,
    },
    /// Django's PBKDF2: the iteration count.
    Pbkdf2 { iterations: u32 },
    /// argon2 (bare or Django's): the parameters.
    Argon2(Argon2),
    /// Nothing to carry over (ASP.NET Identity v3 is written at its own fixed cost), or a cost
    /// beyond pwreset's limits.
    Nothing,
}

/// The kind of a stored value and the cost it was made with; `None` when unrecognised.
pub fn parameters(stored: &[u8]) -> Option<(Kind, Found)> {
    let parsed = parse(stored)?;
    let kind = parsed.kind();
    let of_bcrypt = |p: &bcrypt::Parsed<'_>| {
        let prefix = match p.kind() {
            Kind::Bcrypt2a => Some(BcryptPrefix::TwoA),
            Kind::Bcrypt2b => Some(BcryptPrefix::TwoB),
            Kind::Bcrypt2y => Some(BcryptPrefix::TwoY),
            _ => None,
        };
        if BCRYPT_COSTS.contains(&p.cost()) {
            Found::Bcrypt {
                cost: p.cost(),
                prefix,
            }
        } else {
            Found::Nothing
        }
    };
    let found = match &parsed {
        Parsed::Phc(p) => p.params().map_or(Found::Nothing, Found::Argon2),
        Parsed::Bcrypt(p) => of_bcrypt(p),
        Parsed::Django(django::Parsed::Pbkdf2 { iterations, .. }) => u32::try_from(*iterations)
            .ok()
            .filter(|n| PBKDF2_ITERATIONS.contains(n))
            .map_or(Found::Nothing, |iterations| Found::Pbkdf2 { iterations }),
        Parsed::Django(django::Parsed::Argon2(p)) => {
            p.params().map_or(Found::Nothing, Found::Argon2)
        }
        Parsed::Django(django::Parsed::Bcrypt { inner, .. }) => of_bcrypt(inner),
        Parsed::Aspnet(_) | Parsed::Legacy(_) => Found::Nothing,
    };
    Some((kind, found))
}

/// Check `password` against a stored value of any recognised kind. `pepper` is appended for
/// plain bcrypt kinds only (Devise). Never panics; never computes a cost beyond pwreset's own
/// limits.
pub fn verify_any(password: &str, stored: &[u8], pepper: Option<&[u8]>) -> Verified {
    match parse(stored) {
        None => Verified::Unrecognised,
        Some(Parsed::Phc(p)) => p.verify(password.as_bytes()),
        Some(Parsed::Bcrypt(p)) => {
            let mut input = Zeroizing::new(password.as_bytes().to_vec());
            if let Some(pepper) = pepper {
                input.extend_from_slice(pepper);
            }
            p.verify(&input)
        }
        Some(Parsed::Django(p)) => p.verify(password),
        Some(Parsed::Aspnet(p)) => p.verify(password),
        Some(Parsed::Legacy(p)) => p.verify(password),
    }
}

/// Bytes from the system's random number generator.
pub(super) fn random<const N: usize>() -> Result<[u8; N], HashError> {
    let mut out = [0u8; N];
    SystemRandom::new()
        .fill(&mut out)
        .map_err(|_| HashError::Random)?;
    Ok(out)
}

/// Equality that takes the same time wherever the first difference is, so comparing a
/// computed digest does not leak how much of it was right.
pub(super) fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

pub(super) fn outcome(matched: bool) -> Verified {
    if matched {
        Verified::Match
    } else {
        Verified::NoMatch
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    /// Made by the frameworks' own libraries: see tests/fixtures/make_hash_vectors.py.
    const VECTORS: &str = include_str!("../../tests/fixtures/hash_vectors.json");

    #[derive(Deserialize)]
    struct Fixture {
        vectors: Vec<Vector>,
    }

    #[derive(Deserialize)]
    struct Vector {
        kind: String,
        source: String,
        password: String,
        wrong: String,
        hash: String,
        #[serde(default)]
        pepper_hex: Option<String>,
        #[serde(default)]
        default_cost: bool,
    }

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("fixture pepper is hex"))
            .collect()
    }

    fn vectors() -> Vec<Vector> {
        serde_json::from_str::<Fixture>(VECTORS)
            .expect("hash_vectors.json parses")
            .vectors
    }

    fn check_vector(v: &Vector) {
        let what = format!("{} from {}: {}", v.kind, v.source, v.hash);
        let kind = identify(v.hash.as_bytes()).unwrap_or_else(|| panic!("unrecognised {what}"));
        assert_eq!(kind.name(), v.kind, "{what}");
        let pepper = v.pepper_hex.as_deref().map(unhex);
        let pepper = pepper.as_deref();
        assert_eq!(
            verify_any(&v.password, v.hash.as_bytes(), pepper),
            Verified::Match,
            "right password, {what}"
        );
        assert_eq!(
            verify_any(&v.wrong, v.hash.as_bytes(), pepper),
            Verified::NoMatch,
            "wrong password, {what}"
        );
    }

    #[test]
    fn framework_vectors_at_low_cost_are_identified_and_verified() {
        let all = vectors();
        assert!(all.len() > 30, "the fixture lost its vectors");
        for v in all.iter().filter(|v| !v.default_cost) {
            check_vector(v);
        }
        // Every kind pwreset reads has at least one vector made by real code.
        let kinds: std::collections::BTreeSet<&str> = all.iter().map(|v| v.kind.as_str()).collect();
        for k in [
            Kind::Argon2id,
            Kind::Argon2i,
            Kind::Argon2d,
            Kind::Bcrypt2a,
            Kind::Bcrypt2b,
            Kind::Bcrypt2y,
            Kind::DjangoPbkdf2Sha256,
            Kind::DjangoPbkdf2Sha1,
            Kind::DjangoArgon2id,
            Kind::DjangoArgon2i,
            Kind::DjangoBcryptSha256,
            Kind::DjangoBcrypt,
            Kind::DjangoSha1,
            Kind::DjangoMd5,
            Kind::AspnetIdentityV3,
            Kind::AspnetIdentityV2,
            Kind::Sha1,
            Kind::Md5,
        ] {
            assert!(kinds.contains(k.name()), "no vector for {k}");
        }
    }

    #[test]
    fn framework_vectors_at_default_cost_are_identified_and_verified() {
        let all = vectors();
        let slow: Vec<&Vector> = all.iter().filter(|v| v.default_cost).collect();
        assert!(
            slow.len() >= 6,
            "one default-cost vector per written format"
        );
        for v in slow {
            check_vector(v);
        }
    }

    #[test]
    fn pepper_is_needed_for_a_peppered_bcrypt_hash() {
        let v = vectors()
            .into_iter()
            .find(|v| v.pepper_hex.is_some())
            .expect("the fixture has a Devise (peppered) vector");
        assert_eq!(
            verify_any(&v.password, v.hash.as_bytes(), None),
            Verified::NoMatch
        );
    }

    fn low(format: Format) -> HashSettings {
        HashSettings {
            format,
            argon2: Argon2 {
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
    fn every_written_format_reads_back_as_itself() {
        for format in Format::ALL {
            let pw = "pässwörd ünïcode 🔑 staple";
            let h = hash_as(pw, &low(format)).expect("hash");
            let kind = identify(h.as_bytes()).unwrap_or_else(|| panic!("{format}: {h}"));
            assert!(format.matches(kind), "{format} wrote {kind}: {h}");
            assert_eq!(verify_any(pw, h.as_bytes(), None), Verified::Match, "{h}");
            assert_eq!(
                verify_any("x", h.as_bytes(), None),
                Verified::NoMatch,
                "{h}"
            );
        }
        let h = hash_as("a", &low(Format::DjangoPbkdf2Sha256)).expect("hash");
        let salt = h.split('$').nth(2).expect("salt field");
        assert_eq!(salt.len(), 22, "{h}");
        assert!(salt.bytes().all(|b| b.is_ascii_alphanumeric()), "{h}");
    }

    #[test]
    fn format_names_round_trip_and_unknown_names_list_the_valid_ones() {
        for f in Format::ALL {
            assert_eq!(f.name().parse::<Format>(), Ok(f));
        }
        let e = "md5"
            .parse::<Format>()
            .expect_err("md5 is read, never written");
        let msg = e.to_string();
        assert!(
            msg.contains("argon2id") && msg.contains("aspnet-identity-v3"),
            "{msg}"
        );
        assert_eq!("2y".parse::<BcryptPrefix>(), Ok(BcryptPrefix::TwoY));
        assert!("2x".parse::<BcryptPrefix>().is_err());
    }

    #[test]
    fn bcrypt_prefix_and_pepper_are_written() {
        let mut s = low(Format::Bcrypt);
        for (prefix, start) in [
            (BcryptPrefix::TwoB, "$2b$04$"),
            (BcryptPrefix::TwoY, "$2y$04$"),
            (BcryptPrefix::TwoA, "$2a$04$"),
        ] {
            s.bcrypt_prefix = prefix;
            let h = hash_as("correct horse", &s).expect("hash");
            assert!(h.starts_with(start), "{h}");
        }
        s.pepper = Some(Zeroizing::new(b"pepper".to_vec()));
        let h = hash_as("correct horse", &s).expect("hash");
        assert_eq!(
            verify_any("correct horse", h.as_bytes(), Some(b"pepper")),
            Verified::Match
        );
        assert_eq!(
            verify_any("correct horse", h.as_bytes(), None),
            Verified::NoMatch
        );
        assert!(
            !format!("{s:?}").contains("pepper\""),
            "Debug shows only (set)"
        );
    }

    #[test]
    fn bcrypt_refuses_more_than_72_bytes_instead_of_truncating() {
        let s = low(Format::Bcrypt);
        let just = "x".repeat(72);
        assert!(hash_as(&just, &s).is_ok());
        let over = "x".repeat(73);
        let e = hash_as(&over, &s).expect_err("73 bytes");
        assert_eq!(e.refusal(), Some(super::super::Refusal::BcryptTooLong));
        assert!(e.to_string().contains("bcrypt_72_bytes"), "{e}");
        // 24 three-byte characters: 72 bytes; one more is too many.
        assert!(hash_as(&"€".repeat(24), &s).is_ok());
        assert!(hash_as(&"€".repeat(25), &s).is_err());
        // The pepper counts.
        let peppered = HashSettings {
            pepper: Some(Zeroizing::new(vec![b'p'; 10])),
            ..low(Format::Bcrypt)
        };
        assert!(hash_as(&"x".repeat(63), &peppered).is_err());
        assert!(too_long_for(&"x".repeat(63), &peppered));
        // Django's bcrypt_sha256 hashes first: no limit.
        assert!(hash_as(&"x".repeat(500), &low(Format::DjangoBcryptSha256)).is_ok());
    }

    #[test]
    fn absurd_costs_in_stored_hashes_are_not_computed() {
        let started = std::time::Instant::now();
        let salt_hash = "c29tZXNhbHQxMjM0NTY3OA$O0oNQBP2wV+xIdmj4twbe1+3xQbIKMu2s3NT0pc+rOw";
        // The parameters out of their usual order once slipped past the guard.
        for params in [
            "t=4294967295,m=8,p=1",
            "m=8,t=4294967295,p=1",
            "p=1,m=4294967295,t=1",
            "m=8192,t=1,p=65",
        ] {
            let h = format!("$argon2id$v=19${params}${salt_hash}");
            assert_eq!(
                verify_any("x", h.as_bytes(), None),
                Verified::TooCostly(Kind::Argon2id),
                "{h}"
            );
            assert!(!super::super::verify("x", &h));
            let d = format!("argon2{h}");
            assert_eq!(
                verify_any("x", d.as_bytes(), None),
                Verified::TooCostly(Kind::DjangoArgon2id)
            );
        }
        let bcrypt31 = "$2b$31$lu6PZHUfuKGvnSr67oFlbe8tiDJGULZ72YRwv188u6JL6f3UqfiV2";
        assert_eq!(
            verify_any("x", bcrypt31.as_bytes(), None),
            Verified::TooCostly(Kind::Bcrypt2b)
        );
        let bcrypt17 = format!("bcrypt_sha256${}", bcrypt31.replace("$31$", "$17$"));
        assert_eq!(
            verify_any("x", bcrypt17.as_bytes(), None),
            Verified::TooCostly(Kind::DjangoBcryptSha256)
        );
        let pbkdf2 = "pbkdf2_sha256$4294967295$salt$4jXU1rqv4UWtSxbsVLK50vvdX8TUxzIvi+x3N6rhO9o=";
        assert_eq!(
            verify_any("x", pbkdf2.as_bytes(), None),
            Verified::TooCostly(Kind::DjangoPbkdf2Sha256)
        );
        let mut blob = vec![1u8];
        blob.extend_from_slice(&2u32.to_be_bytes());
        blob.extend_from_slice(&u32::MAX.to_be_bytes());
        blob.extend_from_slice(&16u32.to_be_bytes());
        blob.extend_from_slice(&[7u8; 48]);
        let aspnet = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, blob);
        assert_eq!(
            verify_any("x", aspnet.as_bytes(), None),
            Verified::TooCostly(Kind::AspnetIdentityV3)
        );
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "a guard let an absurd cost through"
        );
    }

    #[test]
    fn anything_else_is_unrecognised_without_panicking() {
        for stored in [
            &b""[..],
            b"   ",
            b"not a hash",
            b"\xff\xfe\x00binary",
            b"$argon2id$",
            b"$argon2id$v=19$m=8192",
            b"$2b$04$short",
            b"$2b$xx$lu6PZHUfuKGvnSr67oFlbe8tiDJGULZ72YRwv188u6JL6f3UqfiV2",
            b"$2q$04$lu6PZHUfuKGvnSr67oFlbe8tiDJGULZ72YRwv188u6JL6f3UqfiV2",
            b"pbkdf2_sha256$$salt$hash",
            b"pbkdf2_sha256$1000$salt$not base64!",
            b"pbkdf2_sha256$1000$salt$AAAA",
            b"bcrypt_sha256$$2b$04$",
            b"md5$salt$nothex",
            b"AQAAAA==",
            b"AQAAAAIAAAPoAAAAEA==",
            b"{SSHA}abcdef",
            b"scrypt$16384$salt$8$1$hash",
        ] {
            assert_eq!(identify(stored), None, "{stored:?}");
            assert_eq!(
                verify_any("x", stored, None),
                Verified::Unrecognised,
                "{stored:?}"
            );
        }
        assert_eq!(identify(&[b'a'; 10_000]), None);
        // A zero-iteration count is known but meaningless.
        assert_eq!(
            verify_any(
                "x",
                b"pbkdf2_sha256$0$salt$4jXU1rqv4UWtSxbsVLK50vvdX8TUxzIvi+x3N6rhO9o=",
                None
            ),
            Verified::Unrecognised
        );
    }

    #[test]
    fn padded_and_blob_values_are_read() {
        let h = hash_as("correct horse", &low(Format::Bcrypt)).expect("hash");
        let mut padded = h.clone().into_bytes();
        padded.extend_from_slice(b"    \0\0");
        assert_eq!(identify(&padded), Some(Kind::Bcrypt2b));
        assert!(verify_any("correct horse", &padded, None).is_match());
        // $2x$ (crypt_blowfish's buggy variant) is decided only for ASCII passwords.
        let x = h.replacen("$2b$", "$2x$", 1);
        assert_eq!(identify(x.as_bytes()), Some(Kind::Bcrypt2x));
        assert!(verify_any("correct horse", x.as_bytes(), None).is_match());
        assert_eq!(
            verify_any("cörrect horse", x.as_bytes(), None),
            Verified::Unrecognised
        );
    }
}
