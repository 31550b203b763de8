//! Finding users by address, the same way for every command and backend.
//!
//! On pwreset's own table an address is found by its folded key, which has a unique index. On an
//! application's table, which has no key column of ours, the application's own index is tried
//! first: an exact match on the typed address, then on its folded form (NFKC plus case folding,
//! which is how most applications store addresses). Only the addresses both miss are looked for
//! by folding every stored address, in one pass over the table for all of them at once. An
//! exact match wins: the mail goes to exactly the stored address, which is also what the
//! application matches at login.

use crate::email::key;
use crate::error::{Exit, fail};
use crate::store::{Store, User};
use anyhow::Result;
use std::collections::HashMap;

/// What an address found.
#[derive(Debug, Clone)]
pub enum Found {
    User(User),
    Unknown,
    /// More than one user answers to the address (only possible in an application's table,
    /// or a directory).
    Ambiguous,
    /// A directory's account that is locked or disabled, and why: it gets no link.
    Locked(User, String),
}

impl Found {
    /// The 65 for an ambiguous address, naming the table.
    pub fn ambiguous_error(addr: &str, table: &str) -> anyhow::Error {
        fail(
            Exit::DataErr,
            format!(
                "{} matches more than one user in table {table:?} (addresses differing only in case or Unicode form); fix the table so each address is unique",
                crate::ui::escape(addr)
            ),
        )
    }

    /// The 65 for an address that several entries of a directory hold.
    pub fn ambiguous_in_directory(addr: &str, directory: &str) -> anyhow::Error {
        fail(
            Exit::DataErr,
            format!(
                "{} matches more than one entry in {directory}; fix the directory so each address is held by one person, or narrow ldap.user_filter",
                crate::ui::escape(addr)
            ),
        )
    }

    /// The user, locked or not (for `revoke --user` and `audit --user`).
    pub fn any_user(self) -> Option<User> {
        match self {
            Found::User(u) | Found::Locked(u, _) => Some(u),
            Found::Unknown | Found::Ambiguous => None,
        }
    }
}

fn one_of(mut users: Vec<User>) -> Found {
    match users.len() {
        0 => Found::Unknown,
        1 => users.pop().map_or(Found::Unknown, Found::User),
        _ => Found::Ambiguous,
    }
}

/// Look an address up through the table's index. `None`: the index cannot tell, and the
/// address needs [`by_scan`].
pub fn by_index(store: &mut dyn Store, addr: &str) -> Result<Option<Found>> {
    let exact = store.users_with_email(addr)?;
    if !exact.is_empty() || store.owns_users_table() {
        return Ok(Some(one_of(exact)));
    }
    let folded = key(addr);
    if folded != addr {
        let found = store.users_with_email(&folded)?;
        if !found.is_empty() {
            return Ok(Some(one_of(found)));
        }
    }
    Ok(None)
}

/// Look several addresses up by folding every stored address, in one pass over the table.
/// Results are in the order of `addrs`.
pub fn by_scan(store: &mut dyn Store, addrs: &[String]) -> Result<Vec<Found>> {
    if addrs.is_empty() {
        return Ok(Vec::new());
    }
    let keys: Vec<String> = addrs.iter().map(|a| key(a)).collect();
    let wanted: std::collections::HashSet<&str> = keys.iter().map(String::as_str).collect();
    // Folding leaves an ASCII address's length alone: most rows are ruled out by their length
    // before any work.
    let lengths: std::collections::HashSet<usize> = keys.iter().map(String::len).collect();
    let mut buf = String::new();
    let users = store.scan_users(&mut |email: &str| {
        if email.is_ascii() {
            let email = email.trim();
            if !lengths.contains(&email.len()) {
                return false;
            }
            buf.clear();
            buf.push_str(email);
            buf.make_ascii_lowercase();
            wanted.contains(buf.as_str())
        } else {
            wanted.contains(key(email).as_str())
        }
    })?;
    let mut by_key: HashMap<String, Vec<User>> = HashMap::new();
    for u in users {
        by_key.entry(key(&u.email)).or_default().push(u);
    }
    Ok(keys
        .iter()
        .map(|k| one_of(by_key.get(k).cloned().unwrap_or_default()))
        .collect())
}

/// Look one address up: the index first, then a scan.
pub fn find(store: &mut dyn Store, addr: &str) -> Result<Found> {
    match by_index(store, addr)? {
        Some(found) => Ok(found),
        None => Ok(by_scan(store, &[addr.to_owned()])?
            .pop()
            .unwrap_or(Found::Unknown)),
    }
}
