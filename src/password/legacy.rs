//! Fast digests found in old tables, read only: bare hex MD5/SHA-1, Django's
//! `unsalted_sha1$$hex`, `md5$$hex`, and its salted `md5$salt$hex` / `sha1$salt$hex`
//! (digest of salt + password). pwreset never writes these; a reset replaces them.

use super::formats::{Kind, Verified, outcome, same};
use md5::{Digest, Md5};
use ring::digest;

pub(super) struct Parsed<'a> {
    kind: Kind,
    salt: &'a str,
    digest: Vec<u8>,
}

pub(super) fn parse(text: &str) -> Option<Parsed<'_>> {
    let (kind, salt, hex) = if let Some(rest) = text.strip_prefix("unsalted_sha1$$") {
        (Kind::Sha1, "", rest)
    } else if let Some(rest) = text.strip_prefix("md5$$") {
        (Kind::Md5, "", rest)
    } else if let Some((salt, hex)) = text.strip_prefix("md5$").and_then(|r| r.split_once('$')) {
        (Kind::DjangoMd5, salt, hex)
    } else if let Some((salt, hex)) = text.strip_prefix("sha1$").and_then(|r| r.split_once('$')) {
        (Kind::DjangoSha1, salt, hex)
    } else {
        match text.len() {
            32 => (Kind::Md5, "", text),
            40 => (Kind::Sha1, "", text),
            _ => return None,
        }
    };
    let digest = unhex(hex)?;
    let len = if matches!(kind, Kind::Md5 | Kind::DjangoMd5) {
        16
    } else {
        20
    };
    (digest.len() == len).then_some(Parsed { kind, salt, digest })
}

impl Parsed<'_> {
    pub(super) fn kind(&self) -> Kind {
        self.kind
    }

    pub(super) fn verify(&self, password: &str) -> Verified {
        let computed: Vec<u8> = match self.kind {
            Kind::Md5 | Kind::DjangoMd5 => {
                let mut h = Md5::new();
                h.update(self.salt.as_bytes());
                h.update(password.as_bytes());
                h.finalize().to_vec()
            }
            _ => {
                let mut c = digest::Context::new(&digest::SHA1_FOR_LEGACY_USE_ONLY);
                c.update(self.salt.as_bytes());
                c.update(password.as_bytes());
                c.finish().as_ref().to_vec()
            }
        };
        outcome(same(&computed, &self.digest))
    }
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    s.as_bytes()
        .chunks(2)
        .map(|pair| {
            let hi = char::from(pair[0]).to_digit(16)?;
            let lo = char::from(pair[1]).to_digit(16)?;
            u8::try_from(hi * 16 + lo).ok()
        })
        .collect()
}
