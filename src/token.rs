//! Reset tokens: generation, text form, parsing and the digest the database stores.
//!
//! Pure: no I/O besides asking the operating system's CSPRNG for bytes.
//!
//! A token is a split token: a public *selector* (the id of its database row) and a 256-bit
//! *secret*. The database finds the row by id and compares the SHA-256 digest of the secret; it
//! never holds the secret itself. Looking rows up by an increasing id instead of by a random
//! digest keeps every write near the end of the table's B-tree, which is what lets a million
//! tokens be created or purged at close to SQLite's raw speed.
//!
//! Text form: `pwr_` followed by 56 URL-safe base64 characters encoding the 6-byte id, the
//! 32-byte secret and a CRC-32 of both. CRC-32 detects every burst error of up to 32 bits, and
//! one mistyped base64 character is a burst of at most 6 bits (16 once bit order is accounted
//! for), so every single-character typo is caught without a database lookup; a wrong length or
//! character is caught before decoding anything.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::digest;
use ring::rand::{SecureRandom, SystemRandom};
use std::fmt;
use zeroize::Zeroizing;

/// The fixed prefix of every token, so a token is recognisable in a paste.
pub const PREFIX: &str = "pwr_";
const ID_LEN: usize = 6;
const SECRET_LEN: usize = 32;
const CHECK_LEN: usize = 4;
const RAW_LEN: usize = ID_LEN + SECRET_LEN + CHECK_LEN;
const BODY_LEN: usize = RAW_LEN * 4 / 3;
/// Largest id a token can carry (2^48 - 1).
pub const MAX_ID: i64 = (1 << 48) - 1;
/// Length of a token's text form.
pub const TEXT_LEN: usize = PREFIX.len() + BODY_LEN;
/// Longest token input (token or link) looked at; longer input is malformed without parsing.
pub const MAX_INPUT_LEN: usize = 4096;
const DIGEST_DOMAIN: &[u8] = b"pwreset-token-v1\0";

/// A reset token: the id of its row and its secret. The secret is zeroized on drop and never
/// printed by `Debug`.
pub struct Token {
    id: i64,
    secret: Zeroizing<[u8; SECRET_LEN]>,
}

/// The SHA-256 digest of a token's secret: what the database stores and compares.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Digest(pub [u8; 32]);

/// Why token input was not a token. The detail is for tests and `-v`; users see `malformed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Malformed {
    TooLong,
    Length,
    Prefix,
    Character,
    Checksum,
    NoTokenInLink,
    /// `3Dpwr_…` or a trailing `=`: copied out of a raw message's quoted-printable source.
    QuotedPrintable,
}

impl fmt::Display for Malformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Malformed::TooLong => "input is far longer than any token",
            Malformed::Length => "wrong length",
            Malformed::Prefix => "does not start with pwr_",
            Malformed::Character => "contains a character a token never has",
            Malformed::Checksum => "checksum does not match (a typo?)",
            Malformed::NoTokenInLink => "the link has no token= parameter",
            Malformed::QuotedPrintable => {
                "it looks quoted-printable encoded (=3D after token=, or a trailing = line break): it was copied from the raw .eml source; copy the link from the mail as your mail program displays it"
            }
        })
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({:02x}{:02x}..)", self.0[0], self.0[1])
    }
}

impl Token {
    /// A new token from the system's CSPRNG (`getrandom`).
    pub fn generate() -> anyhow::Result<Token> {
        Self::generate_with(&SystemRandom::new())
    }

    /// A new token from the given random source (one `SystemRandom` serves a whole bulk run).
    /// Its id is 0 (no row) until [`Token::with_id`] gives it the row the store made for it.
    pub fn generate_with(rng: &SystemRandom) -> anyhow::Result<Token> {
        let mut secret = Zeroizing::new([0u8; SECRET_LEN]);
        rng.fill(secret.as_mut())
            .map_err(|_| anyhow::anyhow!("the system random number generator failed"))?;
        Ok(Token { id: 0, secret })
    }

    /// `n` new tokens with one call to the CSPRNG (a bulk run makes thousands at a time).
    pub fn generate_many(rng: &SystemRandom, n: usize) -> anyhow::Result<Vec<Token>> {
        let mut pool = Zeroizing::new(vec![0u8; n * SECRET_LEN]);
        rng.fill(&mut pool)
            .map_err(|_| anyhow::anyhow!("the system random number generator failed"))?;
        Ok(pool
            .chunks_exact(SECRET_LEN)
            .map(|c| {
                let mut secret = Zeroizing::new([0u8; SECRET_LEN]);
                secret.copy_from_slice(c);
                Token { id: 0, secret }
            })
            .collect())
    }

    /// The token with the id of the row that stores its digest.
    pub fn with_id(mut self, id: i64) -> anyhow::Result<Token> {
        if !(1..=MAX_ID).contains(&id) {
            anyhow::bail!("token row id {id} is outside what a token can carry");
        }
        self.id = id;
        Ok(self)
    }

    /// The id of the token's row: the public half of the token.
    pub fn id(&self) -> i64 {
        self.id
    }

    /// The token's text form, as it goes into the link.
    pub fn text(&self) -> Zeroizing<String> {
        let mut raw = Zeroizing::new([0u8; RAW_LEN]);
        raw[..ID_LEN].copy_from_slice(&self.id.to_be_bytes()[8 - ID_LEN..]);
        raw[ID_LEN..ID_LEN + SECRET_LEN].copy_from_slice(self.secret.as_ref());
        let check = checksum(&raw[..ID_LEN + SECRET_LEN]);
        raw[ID_LEN + SECRET_LEN..].copy_from_slice(&check);
        let mut out = Zeroizing::new(String::with_capacity(TEXT_LEN));
        out.push_str(PREFIX);
        URL_SAFE_NO_PAD.encode_string(raw.as_ref(), &mut out);
        out
    }

    /// The digest of the secret, stored in the database.
    pub fn digest(&self) -> Digest {
        let mut ctx = digest::Context::new(&digest::SHA256);
        ctx.update(DIGEST_DOMAIN);
        ctx.update(self.secret.as_ref());
        let mut out = [0u8; 32];
        out.copy_from_slice(ctx.finish().as_ref());
        Digest(out)
    }

    /// Parse a token's text form. Checks length, prefix and alphabet before decoding, so the
    /// work done is bounded whatever the input.
    pub fn parse(text: &str) -> Result<Token, Malformed> {
        if text.len() > MAX_INPUT_LEN {
            return Err(Malformed::TooLong);
        }
        if text.len() != TEXT_LEN {
            return Err(Malformed::Length);
        }
        let Some(body) = text.strip_prefix(PREFIX) else {
            return Err(Malformed::Prefix);
        };
        if !body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(Malformed::Character);
        }
        let mut raw = Zeroizing::new([0u8; RAW_LEN]);
        match URL_SAFE_NO_PAD.decode_slice(body, raw.as_mut()) {
            Ok(RAW_LEN) => {}
            _ => return Err(Malformed::Character),
        }
        if checksum(&raw[..ID_LEN + SECRET_LEN]) != raw[ID_LEN + SECRET_LEN..] {
            return Err(Malformed::Checksum);
        }
        let mut id = [0u8; 8];
        id[8 - ID_LEN..].copy_from_slice(&raw[..ID_LEN]);
        let mut secret = Zeroizing::new([0u8; SECRET_LEN]);
        secret.copy_from_slice(&raw[ID_LEN..ID_LEN + SECRET_LEN]);
        Ok(Token {
            id: i64::from_be_bytes(id),
            secret,
        })
    }

    /// Parse what a user typed or pasted: a token, or a whole reset link whose `token` query
    /// parameter holds one. Surrounding white space is ignored.
    ///
    /// ```
    /// use pwreset::token::{Malformed, Token, link};
    ///
    /// let token = Token::generate()?.with_id(7)?;
    /// let url = link("https://accounts.example.com/reset_password", &token);
    /// let back = Token::parse_input(&format!("  {}\n", url.as_str())).expect("a link parses");
    /// assert_eq!((back.id(), back.digest()), (7, token.digest()));
    ///
    /// // One mistyped character is caught by the checksum, without a database.
    /// let mut typo = token.text().to_string();
    /// let last = if typo.ends_with('A') { "B" } else { "A" };
    /// typo.replace_range(typo.len() - 1.., last);
    /// assert!(Token::parse_input(&typo).is_err());
    /// assert_eq!(Token::parse_input("pwr_short").err(), Some(Malformed::Length));
    /// # Ok::<(), anyhow::Error>(())
    /// ```
    pub fn parse_input(input: &str) -> Result<Token, Malformed> {
        if input.len() > MAX_INPUT_LEN {
            return Err(Malformed::TooLong);
        }
        let input = input.trim();
        if input.starts_with(PREFIX) {
            return Token::parse(checked_qp(input)?);
        }
        if input.contains("://") || input.contains('?') {
            return match link_token(input) {
                Some(t) => Token::parse(checked_qp(&zeroize::Zeroizing::new(t))?),
                None => Err(Malformed::NoTokenInLink),
            };
        }
        Token::parse(checked_qp(input)?)
    }
}

/// Refuse the shapes quoted-printable gives a token (`=` written `=3D`, a line ending in a soft
/// break `=`): a token never holds `=`, and "wrong length" would send the user hunting for a
/// missing character instead of to the displayed mail.
fn checked_qp(text: &str) -> Result<&str, Malformed> {
    let encoded_equals = text
        .strip_prefix("3D")
        .is_some_and(|rest| rest.starts_with(PREFIX));
    if encoded_equals || (text.len() <= MAX_INPUT_LEN && text.ends_with('=')) {
        return Err(Malformed::QuotedPrintable);
    }
    Ok(text)
}

/// The value of the `token` query parameter of a link, if it has one, decoded as a browser
/// would (`url`'s form-urlencoded parser).
pub fn link_token(link: &str) -> Option<String> {
    let query = link.split_once('?')?.1;
    let query = query.split('#').next().unwrap_or(query);
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.into_owned())
}

/// The reset link for a token: `base_url` with `token=` added to its query.
pub fn link(base_url: &str, token: &Token) -> Zeroizing<String> {
    let sep = if base_url.contains('?') { '&' } else { '?' };
    let text = token.text();
    let pair = Zeroizing::new(
        url::form_urlencoded::Serializer::new(String::new())
            .append_pair("token", text.as_str())
            .finish(),
    );
    Zeroizing::new(format!("{base_url}{sep}{}", pair.as_str()))
}

/// Token status, as `verify` and `reset` report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Valid,
    Expired,
    Used,
    /// Superseded by a newer request, revoked by a reset, by hand, or because the account it was
    /// issued for changed or went away.
    Revoked,
    /// Well-formed, but not in the database.
    Unknown,
    /// Fails the token's own format or checksum.
    Malformed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Valid => "valid",
            Status::Expired => "expired",
            Status::Used => "used",
            Status::Revoked => "revoked",
            Status::Unknown => "unknown",
            Status::Malformed => "malformed",
        }
    }
}

/// What decides a stored token's status: its times, and whether the account it was issued for
/// is still there and unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lifecycle {
    pub expires_at: i64,
    pub used_at: Option<i64>,
    pub revoked_at: Option<i64>,
    /// The user row still exists.
    pub user_exists: bool,
    /// The user's address and password are what they were when the token was issued.
    pub binding_ok: bool,
}

impl Lifecycle {
    /// The status rules, in order: a used token stays `used` (so support can see it was
    /// spent); anything revoked, orphaned or issued for a since-changed account is `revoked`;
    /// then time decides.
    pub fn status(&self, now: i64) -> Status {
        if self.used_at.is_some() {
            Status::Used
        } else if self.revoked_at.is_some() || !self.user_exists || !self.binding_ok {
            Status::Revoked
        } else if self.expires_at <= now {
            Status::Expired
        } else {
            Status::Valid
        }
    }
}

/// A stored password value as the binding sees it: the type and the bytes, whatever the column
/// holds (text, a BLOB, a number or NULL).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoredValue {
    Null,
    Text(String),
    Blob(Vec<u8>),
    /// An integer or a real, in its text form.
    Number(String),
}

impl StoredValue {
    /// The value as text, when it is text and not empty: what a password hash can be.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            StoredValue::Text(t) if !t.is_empty() => Some(t),
            _ => None,
        }
    }

    /// Whether a password is set: anything but NULL or empty.
    pub fn is_set(&self) -> bool {
        match self {
            StoredValue::Null => false,
            StoredValue::Text(t) => !t.is_empty(),
            StoredValue::Blob(b) => !b.is_empty(),
            StoredValue::Number(_) => true,
        }
    }

    /// The value's raw bytes (hash formats stored as BLOBs are compared as bytes).
    pub fn bytes(&self) -> &[u8] {
        match self {
            StoredValue::Null => b"",
            StoredValue::Text(t) | StoredValue::Number(t) => t.as_bytes(),
            StoredValue::Blob(b) => b,
        }
    }
}

/// A fingerprint of the account state a token was issued for: the address and the stored
/// password value. A token whose user's fingerprint has changed since (by any route, including
/// the application writing its own table) is revoked. Text and NULL hash as they always have, so
/// tokens issued before non-text values were covered stay valid; other types are tagged, so a
/// BLOB, a number and text with the same bytes differ.
pub fn binding(email: &str, password: &StoredValue) -> [u8; 16] {
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(b"pwreset-binding-v1\0");
    ctx.update(&(email.len() as u64).to_le_bytes());
    ctx.update(email.as_bytes());
    match password {
        StoredValue::Null => {}
        StoredValue::Text(t) => ctx.update(t.as_bytes()),
        StoredValue::Blob(b) => {
            ctx.update(b"\0pwreset-blob\0");
            ctx.update(b);
        }
        StoredValue::Number(n) => {
            ctx.update(b"\0pwreset-number\0");
            ctx.update(n.as_bytes());
        }
    }
    let mut out = [0u8; 16];
    out.copy_from_slice(&ctx.finish().as_ref()[..16]);
    out
}

fn checksum(data: &[u8]) -> [u8; CHECK_LEN] {
    crc32fast::hash(data).to_le_bytes()
}

impl Digest {
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    pub fn from_slice(bytes: &[u8]) -> Option<Digest> {
        Some(Digest(bytes.try_into().ok()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn token_from(bytes: [u8; 32]) -> Token {
        let id = i64::from(u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])) + 1;
        Token {
            id,
            secret: Zeroizing::new(bytes),
        }
    }

    #[test]
    fn quoted_printable_copies_are_named() {
        let t = token_from([7; 32]);
        let text = t.text();
        let link = format!("https://a.example.com/r?token=3D{}", text.as_str());
        for input in [
            link.clone(),
            format!("{link}="),
            format!("3D{}", text.as_str()),
            format!("{}=", text.as_str()),
            format!("https://a.example.com/r?token=3D{}=", &text[..40]),
        ] {
            assert_eq!(
                Token::parse_input(&input).err(),
                Some(Malformed::QuotedPrintable),
                "{input}"
            );
        }
        assert!(Token::parse_input(text.as_str()).is_ok());
    }

    #[test]
    fn ids_round_trip_and_are_bounded() {
        for id in [1, 255, 1 << 40, MAX_ID] {
            let t = Token::generate()
                .expect("should succeed")
                .with_id(id)
                .expect("should succeed");
            assert_eq!(Token::parse(&t.text()).expect("should succeed").id(), id);
        }
        assert!(
            Token::generate()
                .expect("should succeed")
                .with_id(0)
                .is_err()
        );
        assert!(
            Token::generate()
                .expect("should succeed")
                .with_id(MAX_ID + 1)
                .is_err()
        );
        assert!(
            Token::generate()
                .expect("should succeed")
                .with_id(-1)
                .is_err()
        );
    }

    #[test]
    fn text_has_prefix_and_fixed_length() {
        let t = Token::generate().expect("should succeed");
        let text = t.text();
        assert!(text.starts_with(PREFIX));
        assert_eq!(text.len(), TEXT_LEN);
        assert_eq!(TEXT_LEN, 60);
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let t = Token::generate().expect("should succeed");
        let text = t.text();
        let dbg = format!("{t:?}");
        assert!(!dbg.contains(&text[PREFIX.len()..PREFIX.len() + 8]));
    }

    #[test]
    fn links_round_trip() {
        let t = Token::generate().expect("should succeed");
        let l = link("https://example.com/reset", &t);
        assert!(l.starts_with("https://example.com/reset?token=pwr_"));
        let back = Token::parse_input(&l).expect("should succeed");
        assert_eq!(back.digest(), t.digest());
        let l2 = link("https://example.com/reset?lang=de", &t);
        assert!(l2.contains("?lang=de&token=pwr_"));
        assert_eq!(
            Token::parse_input(&l2).expect("should succeed").digest(),
            t.digest()
        );
        assert_eq!(
            Token::parse_input("https://example.com/reset?x=1").expect_err("should fail"),
            Malformed::NoTokenInLink
        );
    }

    #[test]
    fn hostile_inputs_are_malformed() {
        assert_eq!(
            Token::parse("").expect_err("should fail"),
            Malformed::Length
        );
        let huge = "a".repeat(10 << 20);
        assert_eq!(
            Token::parse_input(&huge).expect_err("should fail"),
            Malformed::TooLong
        );
        let mut wrong_prefix = Token::generate()
            .expect("should succeed")
            .text()
            .to_string();
        wrong_prefix.replace_range(0..4, "pwx_");
        assert_eq!(
            Token::parse(&wrong_prefix).expect_err("should fail"),
            Malformed::Prefix
        );
        let t = Token::generate()
            .expect("should succeed")
            .text()
            .to_string();
        let with_nul = format!("{}\0{}", &t[..10], &t[11..]);
        assert_eq!(
            Token::parse(&with_nul).expect_err("should fail"),
            Malformed::Character
        );
    }

    proptest! {
        #[test]
        fn round_trip(bytes in any::<[u8; 32]>()) {
            let t = token_from(bytes);
            let parsed = Token::parse(&t.text()).expect("should succeed");
            prop_assert_eq!(parsed.digest(), t.digest());
            prop_assert_eq!(parsed.id(), t.id());
        }

        #[test]
        fn every_single_character_change_is_detected(
            bytes in any::<[u8; 32]>(),
            pos in 0usize..TEXT_LEN,
            replacement in proptest::char::any(),
        ) {
            let text = token_from(bytes).text().to_string();
            let mut chars: Vec<char> = text.chars().collect();
            prop_assume!(chars[pos] != replacement);
            chars[pos] = replacement;
            let changed: String = chars.into_iter().collect();
            prop_assert!(Token::parse(&changed).is_err());
            prop_assert!(Token::parse_input(&changed).is_err());
        }

        #[test]
        fn every_single_alphabet_change_is_detected(
            bytes in any::<[u8; 32]>(),
            pos in PREFIX.len()..TEXT_LEN,
            idx in 0usize..64,
        ) {
            // The exhaustive-feeling case: replacing a body character with another valid one
            // decodes fine, so only the checksum can catch it.
            const ALPHABET: &[u8] =
                b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
            let mut text = token_from(bytes).text().as_bytes().to_vec();
            prop_assume!(text[pos] != ALPHABET[idx]);
            text[pos] = ALPHABET[idx];
            let changed = String::from_utf8(text).expect("should succeed");
            prop_assert!(Token::parse(&changed).is_err());
        }

        #[test]
        fn every_truncation_is_detected(bytes in any::<[u8; 32]>(), len in 0usize..TEXT_LEN) {
            let text = token_from(bytes).text().to_string();
            prop_assert_eq!(Token::parse(&text[..len]).expect_err("should fail"), Malformed::Length);
        }

        #[test]
        fn digest_never_equals_the_text(bytes in any::<[u8; 32]>()) {
            let t = token_from(bytes);
            let text = t.text();
            let digest = t.digest();
            prop_assert_ne!(digest.as_bytes(), text.as_bytes());
            prop_assert_ne!(digest.as_bytes(), &bytes[..]);
        }

        #[test]
        fn parse_input_never_panics(s in "\\PC{0,200}") {
            let _ = Token::parse_input(&s);
        }

        #[test]
        fn parsing_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let s = String::from_utf8_lossy(&bytes);
            let _ = Token::parse(&s);
            let _ = Token::parse_input(&s);
            let _ = link_token(&s);
        }

        #[test]
        fn link_parsing_never_panics(
            before in "\\PC{0,60}",
            sep in proptest::sample::select(vec!["?", "&", "?token=", "&token=", "#", "://", "?token=pwr_", ""]),
            after in "\\PC{0,80}",
        ) {
            let s = format!("{before}{sep}{after}");
            let _ = link_token(&s);
            if let Ok(t) = Token::parse_input(&s) {
                // Whatever parses is a real token: its text parses back to it.
                prop_assert_eq!(Token::parse(&t.text()).expect("should succeed").digest(), t.digest());
            }
        }

        #[test]
        fn links_round_trip_for_any_base_url(
            bytes in any::<[u8; 32]>(),
            host in "[a-z][a-z0-9-]{0,20}(\\.[a-z]{2,6}){1,3}",
            path in "(/[A-Za-z0-9._~%-]{0,12}){0,4}",
            query in proptest::option::of("[a-z]{1,8}=[A-Za-z0-9%._-]{0,12}(&[a-z]{1,8}=[A-Za-z0-9%]{0,8}){0,3}"),
            space in "[ \\t\\r\\n]{0,3}",
        ) {
            let base = match &query {
                Some(q) => format!("https://{host}{path}?{q}"),
                None => format!("https://{host}{path}"),
            };
            prop_assume!(link_token(&base).is_none());
            let t = token_from(bytes);
            let l = link(&base, &t);
            let text = t.text();
            let found = link_token(&l);
            prop_assert_eq!(found.as_deref(), Some(text.as_str()));
            let pasted = format!("{space}{}{space}", l.as_str());
            prop_assert_eq!(Token::parse_input(&pasted).expect("should succeed").digest(), t.digest());
            // Parameters after the token, or a fragment, do not disturb it.
            let more = format!("{}&utm_source=mail#top", l.as_str());
            prop_assert_eq!(Token::parse_input(&more).expect("should succeed").digest(), t.digest());
        }

        #[test]
        fn a_link_with_a_damaged_token_is_malformed(
            bytes in any::<[u8; 32]>(),
            cut in 0usize..TEXT_LEN,
        ) {
            let t = token_from(bytes);
            let l = link("https://example.com/reset", &t);
            let damaged = &l[..l.len() - TEXT_LEN + cut];
            prop_assert!(Token::parse_input(damaged).is_err());
        }
    }

    #[test]
    fn all_single_alphabet_changes_of_one_token() {
        // Exhaustive over one token: every position, every other alphabet character.
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let text = Token::generate()
            .expect("should succeed")
            .text()
            .as_bytes()
            .to_vec();
        for pos in PREFIX.len()..TEXT_LEN {
            for &c in ALPHABET {
                if text[pos] == c {
                    continue;
                }
                let mut changed = text.clone();
                changed[pos] = c;
                let changed = String::from_utf8(changed).expect("should succeed");
                assert!(
                    Token::parse(&changed).is_err(),
                    "pos {pos} char {}",
                    c as char
                );
            }
        }
    }
}
