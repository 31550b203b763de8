//! Reset tokens: generation, text form, parsing and the digest the database stores.
//!
//! Pure: no I/O besides asking the operating system's CSPRNG for bytes.
//!
//! Text form: `pwr_` followed by 48 URL-safe base64 characters encoding 32 random bytes and a
//! CRC-32 of them. CRC-32 detects every burst error of up to 32 bits, and one mistyped base64
//! character is a burst of at most 6 bits (16 once bit order is accounted for), so every
//! single-character typo is caught without a database lookup; a wrong length or character is
//! caught before decoding anything.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::digest;
use ring::rand::{SecureRandom, SystemRandom};
use std::fmt;
use zeroize::Zeroizing;

/// The fixed prefix of every token, so a token is recognisable in a paste.
pub const PREFIX: &str = "pwr_";
const SECRET_LEN: usize = 32;
const CHECK_LEN: usize = 4;
const BODY_LEN: usize = (SECRET_LEN + CHECK_LEN) * 4 / 3;
/// Length of a token's text form.
pub const TEXT_LEN: usize = PREFIX.len() + BODY_LEN;
/// Longest token input (token or link) looked at; longer input is malformed without parsing.
pub const MAX_INPUT_LEN: usize = 4096;
const DIGEST_DOMAIN: &[u8] = b"pwreset-token-v1\0";

/// A reset token's secret. Zeroized on drop, and never printed by `Debug`.
pub struct Token {
    secret: Zeroizing<[u8; SECRET_LEN]>,
}

/// The SHA-256 digest of a token: what the database stores and looks up.
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
    pub fn generate_with(rng: &SystemRandom) -> anyhow::Result<Token> {
        let mut secret = Zeroizing::new([0u8; SECRET_LEN]);
        rng.fill(secret.as_mut())
            .map_err(|_| anyhow::anyhow!("the system random number generator failed"))?;
        Ok(Token { secret })
    }

    /// The token's text form, as it goes into the link.
    pub fn text(&self) -> Zeroizing<String> {
        let mut raw = Zeroizing::new([0u8; SECRET_LEN + CHECK_LEN]);
        raw[..SECRET_LEN].copy_from_slice(self.secret.as_ref());
        raw[SECRET_LEN..].copy_from_slice(&checksum(self.secret.as_ref()));
        let mut out = Zeroizing::new(String::with_capacity(TEXT_LEN));
        out.push_str(PREFIX);
        URL_SAFE_NO_PAD.encode_string(raw.as_ref(), &mut out);
        out
    }

    /// The digest stored in the database.
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
        let mut raw = Zeroizing::new([0u8; SECRET_LEN + CHECK_LEN]);
        match URL_SAFE_NO_PAD.decode_slice(body, raw.as_mut()) {
            Ok(n) if n == SECRET_LEN + CHECK_LEN => {}
            _ => return Err(Malformed::Character),
        }
        let mut secret = Zeroizing::new([0u8; SECRET_LEN]);
        secret.copy_from_slice(&raw[..SECRET_LEN]);
        if checksum(secret.as_ref()) != raw[SECRET_LEN..] {
            return Err(Malformed::Checksum);
        }
        Ok(Token { secret })
    }

    /// Parse what a user typed or pasted: a token, or a whole reset link whose `token` query
    /// parameter holds one. Surrounding white space is ignored.
    pub fn parse_input(input: &str) -> Result<Token, Malformed> {
        if input.len() > MAX_INPUT_LEN {
            return Err(Malformed::TooLong);
        }
        let input = input.trim();
        if input.starts_with(PREFIX) {
            return Token::parse(input);
        }
        if input.contains("://") || input.contains('?') {
            return match link_token(input) {
                Some(t) => Token::parse(t),
                None => Err(Malformed::NoTokenInLink),
            };
        }
        Token::parse(input)
    }
}

/// The value of the `token` query parameter of a link, if it has one.
pub fn link_token(link: &str) -> Option<&str> {
    let query = link.split_once('?')?.1;
    let query = query.split('#').next().unwrap_or(query);
    query
        .split('&')
        .find_map(|pair| pair.strip_prefix("token="))
}

/// The reset link for a token: `base_url` with `token=` added to its query.
pub fn link(base_url: &str, token: &Token) -> Zeroizing<String> {
    let sep = if base_url.contains('?') { '&' } else { '?' };
    let text = token.text();
    Zeroizing::new(format!("{base_url}{sep}token={}", text.as_str()))
}

/// A fingerprint of the account state a token was issued for: the address and the password
/// hash. A token whose user's fingerprint has changed since (by any route, including the
/// application writing its own table) is revoked.
pub fn binding(email: &str, password_hash: Option<&str>) -> [u8; 16] {
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(b"pwreset-binding-v1\0");
    ctx.update(&(email.len() as u64).to_le_bytes());
    ctx.update(email.as_bytes());
    ctx.update(password_hash.unwrap_or("").as_bytes());
    let mut out = [0u8; 16];
    out.copy_from_slice(&ctx.finish().as_ref()[..16]);
    out
}

fn checksum(secret: &[u8]) -> [u8; CHECK_LEN] {
    crc32fast::hash(secret).to_le_bytes()
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
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn token_from(bytes: [u8; 32]) -> Token {
        Token {
            secret: Zeroizing::new(bytes),
        }
    }

    #[test]
    fn text_has_prefix_and_fixed_length() {
        let t = Token::generate().unwrap();
        let text = t.text();
        assert!(text.starts_with(PREFIX));
        assert_eq!(text.len(), TEXT_LEN);
        assert_eq!(TEXT_LEN, 52);
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let t = Token::generate().unwrap();
        let text = t.text();
        let dbg = format!("{t:?}");
        assert!(!dbg.contains(&text[PREFIX.len()..PREFIX.len() + 8]));
    }

    #[test]
    fn links_round_trip() {
        let t = Token::generate().unwrap();
        let l = link("https://example.com/reset", &t);
        assert!(l.starts_with("https://example.com/reset?token=pwr_"));
        let back = Token::parse_input(&l).unwrap();
        assert_eq!(back.digest(), t.digest());
        let l2 = link("https://example.com/reset?lang=de", &t);
        assert!(l2.contains("?lang=de&token=pwr_"));
        assert_eq!(Token::parse_input(&l2).unwrap().digest(), t.digest());
        assert_eq!(
            Token::parse_input("https://example.com/reset?x=1").unwrap_err(),
            Malformed::NoTokenInLink
        );
    }

    #[test]
    fn hostile_inputs_are_malformed() {
        assert_eq!(Token::parse("").unwrap_err(), Malformed::Length);
        let huge = "a".repeat(10 << 20);
        assert_eq!(Token::parse_input(&huge).unwrap_err(), Malformed::TooLong);
        let mut wrong_prefix = Token::generate().unwrap().text().to_string();
        wrong_prefix.replace_range(0..4, "pwx_");
        assert_eq!(Token::parse(&wrong_prefix).unwrap_err(), Malformed::Prefix);
        let t = Token::generate().unwrap().text().to_string();
        let with_nul = format!("{}\0{}", &t[..10], &t[11..]);
        assert_eq!(Token::parse(&with_nul).unwrap_err(), Malformed::Character);
    }

    proptest! {
        #[test]
        fn round_trip(bytes in any::<[u8; 32]>()) {
            let t = token_from(bytes);
            let parsed = Token::parse(&t.text()).unwrap();
            prop_assert_eq!(parsed.digest(), t.digest());
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
            let changed = String::from_utf8(text).unwrap();
            prop_assert!(Token::parse(&changed).is_err());
        }

        #[test]
        fn every_truncation_is_detected(bytes in any::<[u8; 32]>(), len in 0usize..TEXT_LEN) {
            let text = token_from(bytes).text().to_string();
            prop_assert_eq!(Token::parse(&text[..len]).unwrap_err(), Malformed::Length);
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
    }

    #[test]
    fn all_single_alphabet_changes_of_one_token() {
        // Exhaustive over one token: every position, every other alphabet character.
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let text = Token::generate().unwrap().text().as_bytes().to_vec();
        for pos in PREFIX.len()..TEXT_LEN {
            for &c in ALPHABET {
                if text[pos] == c {
                    continue;
                }
                let mut changed = text.clone();
                changed[pos] = c;
                let changed = String::from_utf8(changed).unwrap();
                assert!(
                    Token::parse(&changed).is_err(),
                    "pos {pos} char {}",
                    c as char
                );
            }
        }
    }
}
