//! Where users live. The store (`crate::store`) is where tokens, the throttle and the audit
//! trail live; a directory is where the people are: the `[users]` table in the same database
//! (the store answers for it), or an LDAP directory (`[ldap]`, behind the `ldap` cargo
//! feature).
//!
//! The request and reset services ask a [`Directory`] for people: find one by address, page
//! through all of them, find one by id, look a token up with its person's current state, and
//! set a password with a token. The table directory hands each question to the store, as
//! before; the LDAP directory asks the server and keeps only the tokens in the store, which
//! then runs "tokens only" (no join with a users table: [`crate::store::Store::token_alone`],
//! [`crate::store::Store::spend_token`]).

#[cfg(feature = "ldap")]
pub mod ldap;

use crate::config::Config;
use crate::lookup::{self, Found};
use crate::store::{Consume, Consumed, Store, TokenRecord, User, UserId};
use crate::token::Digest;
use anyhow::Result;

/// Where the users live.
pub enum Directory {
    /// The `[users]` table, in the store's database.
    Table,
    /// An LDAP directory (`[ldap]`).
    #[cfg(feature = "ldap")]
    Ldap(Box<ldap::LdapDirectory>),
}

/// A cursor through every person, for `request --all`.
#[derive(Default)]
pub struct Cursor {
    /// The table's last key.
    after: Option<UserId>,
    /// The directory's paged-results cookie; `done` once the server sent an empty one.
    #[cfg_attr(not(feature = "ldap"), allow(dead_code))]
    cookie: Vec<u8>,
    done: bool,
}

impl Cursor {
    /// Every person has been handed out.
    pub fn done(&self) -> bool {
        self.done
    }
}

impl Directory {
    /// The configured directory: `[ldap]`, connected and bound, or the users table.
    pub fn open(config: &Config) -> Result<Directory> {
        match &config.ldap {
            None => Ok(Directory::Table),
            #[cfg(feature = "ldap")]
            Some(l) => Ok(Directory::Ldap(Box::new(ldap::LdapDirectory::connect(l)?))),
            // Config::load refuses [ldap] in a build without the feature.
            #[cfg(not(feature = "ldap"))]
            Some(_) => Err(crate::error::fail(
                crate::error::Exit::Config,
                "this pwreset was built without LDAP support; rebuild with --features ldap",
            )),
        }
    }

    pub fn is_table(&self) -> bool {
        matches!(self, Directory::Table)
    }

    /// Where an address was looked for, for messages: `table "users"`, `the directory ...`.
    pub fn describe(&self, config: &Config) -> String {
        match self {
            Directory::Table => format!("table {:?}", config.users.table),
            #[cfg(feature = "ldap")]
            Directory::Ldap(d) => d.describe(),
        }
    }

    /// Look one address up through the index (`None`: the table's index cannot tell, and the
    /// address needs a scan, [`lookup::by_scan`]). A directory always answers.
    pub fn find_indexed(&mut self, store: &mut dyn Store, addr: &str) -> Result<Option<Found>> {
        match self {
            Directory::Table => lookup::by_index(store, addr),
            #[cfg(feature = "ldap")]
            Directory::Ldap(d) => d.find_by_address(addr).map(Some),
        }
    }

    /// Look one address up, whatever it takes.
    pub fn find(&mut self, store: &mut dyn Store, addr: &str) -> Result<Found> {
        match self {
            Directory::Table => lookup::find(store, addr),
            #[cfg(feature = "ldap")]
            Directory::Ldap(d) => d.find_by_address(addr),
        }
    }

    /// The next page of people, at most about `limit`; empty when they ran out. A locked
    /// person comes as [`Found::Locked`].
    pub fn next_page(
        &mut self,
        store: &mut dyn Store,
        cursor: &mut Cursor,
        limit: usize,
    ) -> Result<Vec<Found>> {
        if cursor.done {
            return Ok(Vec::new());
        }
        match self {
            Directory::Table => {
                let users = store.users_after(cursor.after.as_ref(), limit)?;
                match users.last() {
                    Some(last) => cursor.after = Some(last.id.clone()),
                    None => cursor.done = true,
                }
                Ok(users.into_iter().map(Found::User).collect())
            }
            #[cfg(feature = "ldap")]
            Directory::Ldap(d) => {
                let (people, next) = d.people_page(&cursor.cookie, limit)?;
                match next {
                    Some(cookie) => cursor.cookie = cookie,
                    None => cursor.done = true,
                }
                Ok(people.into_iter().map(ldap::Person::found).collect())
            }
        }
    }

    /// A person by id, as they are now; None when they are gone.
    pub fn user_by_id(&mut self, store: &mut dyn Store, id: &UserId) -> Result<Option<User>> {
        match self {
            Directory::Table => store.user_by_id(id),
            #[cfg(feature = "ldap")]
            Directory::Ldap(d) => Ok(d.find_by_id(id)?.map(ldap::Person::into_user)),
        }
    }

    /// A token by id and digest, with its person's current state: gone, locked, or changed
    /// since it was issued (the binding) all make it revoked.
    pub fn lookup_token(
        &mut self,
        store: &mut dyn Store,
        token_id: i64,
        digest: &Digest,
    ) -> Result<Option<TokenRecord>> {
        match self {
            Directory::Table => store.lookup_token(token_id, digest),
            #[cfg(feature = "ldap")]
            Directory::Ldap(d) => {
                let Some((mut record, stored)) = store.token_alone(token_id, digest)? else {
                    return Ok(None);
                };
                match d.find_by_id(&record.user_id)? {
                    None => {
                        record.lifecycle.user_exists = false;
                        record.email = None;
                    }
                    Some(p) => {
                        record.lifecycle.binding_ok = p.binding_holds(&stored) && p.lock.is_none();
                        if p.lock.is_some() && record.revoked_at().is_none() {
                            record.revoked_reason = Some(crate::store::RevokeReason::AccountLocked);
                        }
                        record.email = Some(p.mail);
                    }
                }
                Ok(Some(record))
            }
        }
    }

    /// Set a password with a token: on the table, the store hashes nothing and writes the
    /// hash it is given in the token's transaction ([`Store::consume_token`]).
    pub fn consume(&mut self, store: &mut dyn Store, c: &Consume<'_>) -> Result<Consumed> {
        store.consume_token(c)
    }
}

/// A filter value escaped as RFC 4515 says: `*`, `(`, `)`, `\` and NUL as `\2a`, `\28`, `\29`,
/// `\5c`, `\00`, so that an address cannot change the filter it is put in. Everything else
/// (UTF-8 included) goes as it is.
pub fn escape_filter_value(value: &str) -> String {
    escape_filter_bytes(value.as_bytes(), false)
}

/// Bytes as a filter value; `all`: every byte escaped (binary values such as objectGUID).
pub fn escape_filter_bytes(value: &[u8], all: bool) -> String {
    let mut out = String::with_capacity(value.len() + 8);
    // Whole UTF-8 runs of a valid string are copied; only the five specials are escaped.
    if !all && let Ok(text) = std::str::from_utf8(value) {
        for c in text.chars() {
            match c {
                '*' | '(' | ')' | '\\' | '\0' => out.push_str(&format!("\\{:02x}", c as u32)),
                c => out.push(c),
            }
        }
        return out;
    }
    for b in value {
        out.push_str(&format!("\\{b:02x}"));
    }
    out
}

/// Active Directory's `unicodePwd` value: the password in double quotes, as UTF-16LE
/// ([MS-ADTS] 3.1.1.3.1.5.1 "unicodePwd"). Written with a replace, over TLS, by an account
/// with the "Reset Password" right.
pub fn ad_unicode_pwd(password: &str) -> zeroize::Zeroizing<Vec<u8>> {
    let mut out = zeroize::Zeroizing::new(Vec::with_capacity((password.len() + 2) * 2));
    for unit in "\""
        .encode_utf16()
        .chain(password.encode_utf16())
        .chain("\"".encode_utf16())
    {
        out.extend_from_slice(&unit.to_le_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_values_cannot_change_the_filter() {
        assert_eq!(escape_filter_value("a@example.com"), "a@example.com");
        assert_eq!(
            escape_filter_value("*)(uid=*))(|(mail=*"),
            "\\2a\\29\\28uid=\\2a\\29\\29\\28|\\28mail=\\2a"
        );
        assert_eq!(escape_filter_value("a\\b\0c"), "a\\5cb\\00c");
        // RFC 4515's own examples.
        assert_eq!(
            escape_filter_value("Parens R Us (for all your parenthetical needs)"),
            "Parens R Us \\28for all your parenthetical needs\\29"
        );
        assert_eq!(escape_filter_value("*"), "\\2a");
        assert_eq!(escape_filter_value("C:\\MyFile"), "C:\\5cMyFile");
        assert_eq!(escape_filter_value("Lučić"), "Lučić");
        assert_eq!(escape_filter_bytes(&[0, 0, 0, 4], true), "\\00\\00\\00\\04");
        // Whatever goes in, no unescaped special comes out.
        for s in ["((((", "\\\\*", "a)(b", "\u{0}\u{0}"] {
            let e = escape_filter_value(s);
            let unescaped = e
                .replace("\\28", "")
                .replace("\\29", "")
                .replace("\\2a", "");
            assert!(!unescaped.contains(['(', ')', '*', '\0']), "{s:?} -> {e}");
        }
    }

    /// [MS-ADTS] 3.1.1.3.1.5.1 and Microsoft's KB 269190: "newPassword" is sent as the
    /// UTF-16LE bytes of the quoted string.
    #[test]
    fn ad_unicode_pwd_is_quoted_utf16le() {
        assert_eq!(
            &ad_unicode_pwd("newPassword")[..],
            b"\"\0n\0e\0w\0P\0a\0s\0s\0w\0o\0r\0d\0\"\0"
        );
        // Outside the BMP: a surrogate pair, little-endian units.
        assert_eq!(
            &ad_unicode_pwd("é😀")[..],
            &[0x22, 0, 0xe9, 0, 0x3d, 0xd8, 0x00, 0xde, 0x22, 0][..]
        );
        assert_eq!(&ad_unicode_pwd("")[..], b"\"\0\"\0");
    }
}
