//! `[ldap]`: users in a directory (OpenLDAP, 389 DS, FreeIPA, Active Directory) instead of a
//! `[users]` table. Only the people move: tokens, the throttle and the audit trail stay in
//! pwreset's own database.

use super::Problem;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// `[ldap]` as written in the file. Every key has its default here, so a section with only
/// `url`, `bind_dn` and `base_dn` is complete.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct RawLdap {
    url: String,
    starttls: bool,
    bind_dn: String,
    bind_password_file: Option<PathBuf>,
    base_dn: String,
    user_filter: String,
    mail_attribute: String,
    name_attribute: String,
    id_attribute: String,
    password_change: String,
    password_format: String,
    ca_file: Option<PathBuf>,
}

impl Default for RawLdap {
    fn default() -> Self {
        RawLdap {
            url: String::new(),
            starttls: true,
            bind_dn: String::new(),
            bind_password_file: None,
            base_dn: String::new(),
            user_filter: "(objectClass=inetOrgPerson)".into(),
            mail_attribute: "mail".into(),
            name_attribute: "cn".into(),
            id_attribute: "entryUUID".into(),
            password_change: "exop".into(),
            password_format: "ssha".into(),
            ca_file: None,
        }
    }
}

/// How a new password reaches the directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordChange {
    /// The Password Modify extended operation (RFC 3062): the server hashes the password and
    /// applies its own policy.
    Exop,
    /// A plain modify of `userPassword`, hashed by pwreset in `password_format`.
    Modify,
    /// Active Directory: `unicodePwd` replaced with the quoted UTF-16LE password, over TLS.
    Ad,
}

impl PasswordChange {
    pub fn name(self) -> &'static str {
        match self {
            PasswordChange::Exop => "exop",
            PasswordChange::Modify => "modify",
            PasswordChange::Ad => "ad",
        }
    }
}

/// The scheme `password_change = "modify"` writes into `userPassword` (RFC 2307 style).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserPasswordFormat {
    /// `{ARGON2}$argon2id$...`: OpenLDAP's argon2 module, 389 DS 2.x.
    Argon2,
    /// `{SSHA}`: salted SHA-1, which every server reads.
    Ssha,
    /// `{CRYPT}$6$...`: SHA-512 crypt, for servers that verify through crypt(3).
    Crypt,
}

impl UserPasswordFormat {
    pub fn name(self) -> &'static str {
        match self {
            UserPasswordFormat::Argon2 => "argon2",
            UserPasswordFormat::Ssha => "ssha",
            UserPasswordFormat::Crypt => "crypt",
        }
    }
}

/// How long connecting, and each operation, may take before the directory counts as
/// unreachable (75).
pub const TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);

/// `[ldap]`, validated.
#[derive(Debug, Clone)]
pub struct Ldap {
    pub url: String,
    /// `ldaps://`: TLS from the first byte.
    pub ldaps: bool,
    /// `ldapi://`: a local Unix socket.
    pub ldapi: bool,
    pub starttls: bool,
    pub bind_dn: String,
    pub bind_password_file: Option<PathBuf>,
    pub base_dn: String,
    pub user_filter: String,
    pub mail_attribute: String,
    pub name_attribute: String,
    pub id_attribute: String,
    pub password_change: PasswordChange,
    pub password_format: UserPasswordFormat,
    pub ca_file: Option<PathBuf>,
    /// For connecting and for each operation.
    pub timeout: std::time::Duration,
}

impl Ldap {
    /// The directory in words, for messages: "LDAP directory ldaps://ldap.example.com".
    pub fn describe(&self) -> String {
        format!("LDAP directory {}", self.url)
    }

    /// The host of `url` (none for ldapi://).
    pub fn host(&self) -> Option<String> {
        let url = url::Url::parse(&self.url).ok()?;
        url.host_str().map(str::to_owned)
    }
}

/// An attribute description as RFC 4512 allows it: a name (letters, digits, hyphens) or an OID,
/// nothing a filter could be bent with.
fn is_attribute(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && (s.chars().all(|c| c.is_ascii_digit() || c == '.')
            || (s.starts_with(|c: char| c.is_ascii_alphabetic())
                && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')))
}

/// Whether a filter's parentheses balance and it is one parenthesised filter.
fn is_filter(s: &str) -> bool {
    let s = s.trim();
    if !s.starts_with('(') || !s.ends_with(')') {
        return false;
    }
    let mut depth = 0i32;
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 && i + 1 != s.len() {
                    return false;
                }
                if depth < 0 {
                    return false;
                }
            }
            _ => {}
        }
    }
    depth == 0
}

impl RawLdap {
    pub(super) fn resolve(self) -> Result<Ldap, Problem> {
        let url_text = self.url.trim();
        if url_text.is_empty() {
            return Err(Problem::new(
                "ldap.url",
                "is missing; write it like \"ldaps://ldap.example.com\" or \"ldap://ldap.example.com\" (with StartTLS)",
            ));
        }
        let url = url::Url::parse(url_text).map_err(|e| {
            Problem::new(
                "ldap.url",
                format!(
                    "{url_text:?} is not a URL ({e}); write it like \"ldaps://ldap.example.com\""
                ),
            )
        })?;
        let (ldaps, ldapi) = match url.scheme() {
            "ldaps" => (true, false),
            "ldap" => (false, false),
            "ldapi" => (false, true),
            other => {
                return Err(Problem::new(
                    "ldap.url",
                    format!(
                        "{other}:// is not an LDAP URL; use ldaps://, ldap:// (with StartTLS) or ldapi://"
                    ),
                ));
            }
        };
        if !url.username().is_empty() || url.password().is_some() {
            return Err(Problem::new(
                "ldap.url",
                "has a user name or password in it; use bind_dn and bind_password_file",
            ));
        }
        if !ldapi && url.host_str().is_none_or(str::is_empty) {
            return Err(Problem::new(
                "ldap.url",
                format!("{url_text:?} has no host"),
            ));
        }
        if !self.starttls && !ldaps && !ldapi {
            let host = url.host_str().unwrap_or("");
            if !super::is_loopback_host(host) {
                return Err(Problem::new(
                    "ldap.starttls",
                    format!(
                        "is false for {url_text}, which would send the bind password and new passwords in clear; plaintext is only allowed to a loopback address or ldapi://. Use ldaps:// or leave starttls on"
                    ),
                ));
            }
        }
        for (key, v) in [
            ("ldap.bind_dn", &self.bind_dn),
            ("ldap.base_dn", &self.base_dn),
        ] {
            if v.trim().is_empty() {
                return Err(Problem::new(
                    key,
                    "is missing; write a DN like \"ou=people,dc=example,dc=com\"",
                ));
            }
            if v.chars().any(char::is_control) {
                return Err(Problem::new(key, "must not contain control characters"));
            }
        }
        if !is_filter(&self.user_filter) {
            return Err(Problem::new(
                "ldap.user_filter",
                format!(
                    "{:?} is not one LDAP filter in parentheses, like \"(objectClass=inetOrgPerson)\"",
                    self.user_filter
                ),
            ));
        }
        for (key, v) in [
            ("ldap.mail_attribute", &self.mail_attribute),
            ("ldap.name_attribute", &self.name_attribute),
            ("ldap.id_attribute", &self.id_attribute),
        ] {
            if !is_attribute(v) {
                return Err(Problem::new(
                    key,
                    format!("{v:?} is not an attribute name (letters, digits and -)"),
                ));
            }
        }
        let password_change = match self.password_change.as_str() {
            "exop" => PasswordChange::Exop,
            "modify" => PasswordChange::Modify,
            "ad" => PasswordChange::Ad,
            other => {
                return Err(Problem::new(
                    "ldap.password_change",
                    format!("{other:?} is not one of \"exop\", \"modify\", \"ad\""),
                ));
            }
        };
        if password_change == PasswordChange::Ad && !ldaps && !self.starttls {
            return Err(Problem::new(
                "ldap.password_change",
                "\"ad\" needs TLS: Active Directory only accepts unicodePwd over an encrypted connection; use ldaps:// or starttls = true",
            ));
        }
        let password_format = match self.password_format.to_ascii_lowercase().as_str() {
            "argon2" => UserPasswordFormat::Argon2,
            "ssha" => UserPasswordFormat::Ssha,
            "crypt" => UserPasswordFormat::Crypt,
            other => {
                return Err(Problem::new(
                    "ldap.password_format",
                    format!("{other:?} is not one of \"argon2\", \"ssha\", \"crypt\""),
                ));
            }
        };
        Ok(Ldap {
            url: url_text.to_owned(),
            ldaps,
            ldapi,
            // StartTLS means nothing on a connection that is TLS already or a local socket.
            starttls: self.starttls && !ldaps && !ldapi,
            bind_dn: self.bind_dn.trim().to_owned(),
            bind_password_file: self.bind_password_file,
            base_dn: self.base_dn.trim().to_owned(),
            user_filter: self.user_filter.trim().to_owned(),
            mail_attribute: self.mail_attribute,
            name_attribute: self.name_attribute,
            id_attribute: self.id_attribute,
            password_change,
            password_format,
            ca_file: self.ca_file,
            timeout: TIMEOUT,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(extra: &str) -> Result<Ldap, Problem> {
        // The keys `extra` sets replace the defaults (TOML refuses a key twice).
        let mut text: String = [
            "url = \"ldaps://ldap.example.com\"",
            "bind_dn = \"cn=pwreset,dc=example,dc=com\"",
            "base_dn = \"dc=example,dc=com\"",
        ]
        .iter()
        .filter(|l| {
            let key = l.split(' ').next().unwrap_or("");
            !extra.lines().any(|e| e.starts_with(&format!("{key} ")))
        })
        .map(|l| format!("{l}\n"))
        .collect();
        text.push_str(extra);
        let raw: RawLdap = toml::from_str(&text).expect("parses");
        raw.resolve()
    }

    #[test]
    fn defaults_and_checks() {
        let l = raw("").expect("valid");
        assert!(l.ldaps && !l.starttls);
        assert_eq!(l.id_attribute, "entryUUID");
        assert_eq!(l.password_change, PasswordChange::Exop);
        assert!(raw("url = \"ldap://ldap.example.com\"\nstarttls = false").is_err());
        let plain = raw("url = \"ldap://127.0.0.1:3389\"\nstarttls = false").expect("loopback");
        assert!(!plain.starttls);
        assert!(raw("url = \"ldapi:///\"\nstarttls = false").is_ok());
        assert!(raw("url = \"http://ldap.example.com\"").is_err());
        assert!(raw("user_filter = \"objectClass=person\"").is_err());
        assert!(raw("user_filter = \"(a=b))(c=d\"").is_err());
        assert!(raw("user_filter = \"(&(objectClass=person)(!(x=y)))\"").is_ok());
        assert!(raw("mail_attribute = \"mail)(uid=*\"").is_err());
        assert!(raw("password_change = \"magic\"").is_err());
        assert!(raw("password_format = \"md5\"").is_err());
        assert!(raw("url = \"ldaps://u:p@ldap.example.com\"").is_err());
    }
}
