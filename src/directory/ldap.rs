//! Users in an LDAP directory, through `ldap3`'s synchronous client over rustls.
//!
//! pwreset binds as a service account (`bind_dn`) and searches under `base_dn` with
//! `user_filter`. An address is looked up with `(&user_filter(mail=escaped))`, so the server's
//! matching rule for the mail attribute decides (case-insensitive on the usual schemas). What
//! binds a token to the account ([`Person::binding`]) is what the server changes with the
//! password: `pwdChangedTime` (OpenLDAP ppolicy, 389 DS), the `userPassword` values when the
//! account may read them, `pwdLastSet` on Active Directory. A locked or disabled account
//! (`pwdAccountLockedTime`; AD's `userAccountControl` disabled bit or `lockoutTime`) gets no
//! link, and a reset never goes through for it.

use super::escape_filter_value;
use crate::config::{Ldap, PasswordChange, UserPasswordFormat};
use crate::error::{Exit, fail};
use crate::lookup::Found;
use crate::store::{User, UserId};
use crate::token::StoredValue;
use anyhow::Result;
use ldap3::controls::{Control, ControlType, MakeCritical, PagedResults};
use ldap3::exop::PasswordModify;
use ldap3::{LdapConn, LdapConnSettings, LdapResult, Mod, Scope, SearchEntry, SearchOptions};
use std::collections::HashSet;

/// LDAP result codes pwreset tells apart (RFC 4511 appendix A).
mod rc {
    pub const SUCCESS: u32 = 0;
    pub const SIZE_LIMIT_EXCEEDED: u32 = 4;
    pub const CONSTRAINT_VIOLATION: u32 = 19;
    pub const NO_SUCH_OBJECT: u32 = 32;
    pub const INVALID_CREDENTIALS: u32 = 49;
    pub const INSUFFICIENT_ACCESS: u32 = 50;
    pub const UNWILLING_TO_PERFORM: u32 = 53;
}

/// People per page of `request --all`: at most a server's usual size limit (500 on OpenLDAP,
/// 1000 on Active Directory), which then never cuts a page short.
pub const PAGE: i32 = 500;

/// A person as the directory holds them.
#[derive(Debug, Clone)]
pub struct Person {
    pub dn: String,
    pub id: UserId,
    /// The address the directory holds (the value that matched, when it holds several).
    pub mail: String,
    /// Every address the entry holds: a token issued for any of them is bound to it.
    pub mails: Vec<String>,
    pub name: Option<String>,
    /// What a token is bound to: changes whenever the password does.
    pub binding: String,
    /// Why the account is locked or disabled, if it is.
    pub lock: Option<String>,
}

impl Person {
    /// As the store and the mail see a user: the binding stands where a table's password
    /// value would, so the store binds tokens to it the same way.
    pub fn into_user(self) -> User {
        User {
            id: self.id,
            email: self.mail,
            password: StoredValue::Text(self.binding),
            name: self.name,
            locale: None,
        }
    }

    /// Whether `stored` is the binding of a token issued for this entry as it is now (for
    /// any of its addresses: the one a lookup matched may not be the first).
    pub fn binding_holds(&self, stored: &[u8]) -> bool {
        let value = StoredValue::Text(self.binding.clone());
        self.mails
            .iter()
            .any(|m| crate::token::binding(m, &value)[..] == *stored)
    }

    pub fn found(self) -> Found {
        match self.lock.clone() {
            Some(why) => Found::Locked(self.into_user(), why),
            None => Found::User(self.into_user()),
        }
    }
}

/// What became of a password change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetOutcome {
    Changed,
    /// The server's policy refused the password: its own words.
    Refused(String),
    /// The account is locked or disabled: nothing was changed.
    Locked(String),
    /// The entry is gone.
    Gone,
}

/// A bound connection to the directory.
pub struct LdapDirectory {
    conn: LdapConn,
    cfg: Ldap,
}

/// The attributes every lookup reads.
fn attributes(cfg: &Ldap) -> Vec<String> {
    let mut a = vec![
        cfg.mail_attribute.clone(),
        cfg.name_attribute.clone(),
        cfg.id_attribute.clone(),
    ];
    // Unknown attribute types in the list are ignored by servers (RFC 4511 4.5.1.8), so one
    // list serves OpenLDAP, 389 DS and Active Directory.
    for extra in [
        "pwdChangedTime",
        "pwdAccountLockedTime",
        "userPassword",
        "pwdLastSet",
        "userAccountControl",
        "lockoutTime",
        "nsAccountLock",
    ] {
        a.push(extra.to_owned());
    }
    a
}

/// The bind password: `bind_password_file` (0600), else `PWRESET_LDAP_PASSWORD`. Never empty:
/// an empty simple bind is an anonymous bind that succeeds (RFC 4513 5.1.2).
fn bind_password(cfg: &Ldap) -> Result<zeroize::Zeroizing<String>> {
    let pw = match &cfg.bind_password_file {
        Some(path) => crate::config::read_secret_file(path, "ldap.bind_password_file")?,
        None => zeroize::Zeroizing::new(std::env::var("PWRESET_LDAP_PASSWORD").unwrap_or_default()),
    };
    let first = zeroize::Zeroizing::new(pw.lines().next().unwrap_or("").to_owned());
    if first.is_empty() {
        return Err(fail(
            Exit::Config,
            "ldap: no bind password: set ldap.bind_password_file (a file of mode 0600) or PWRESET_LDAP_PASSWORD",
        ));
    }
    Ok(first)
}

/// A connection or operation error in words, with its exit status: the directory away or
/// slow is 75 (try again), a TLS failure says what to check.
fn conn_error(cfg: &Ldap, e: ldap3::LdapError) -> anyhow::Error {
    let tls = crate::store::net::rustls_error(&e).map(crate::store::net::tls_hint);
    match tls {
        Some(hint) => fail(
            Exit::TempFail,
            format!(
                "{}: TLS failed ({e}): {}",
                cfg.describe(),
                hint.replace("database_ca_file", "ldap.ca_file")
                    .replace("the database URL", "ldap.url")
            ),
        ),
        None => fail(
            Exit::TempFail,
            format!(
                "{} cannot be reached: {e}; check ldap.url and that the server is up",
                cfg.describe()
            ),
        ),
    }
}

impl LdapDirectory {
    /// Connect (TLS or StartTLS, verified), bind as `bind_dn`.
    pub fn connect(cfg: &Ldap) -> Result<LdapDirectory> {
        let password = bind_password(cfg)?;
        crate::store::net::install_crypto_provider();
        let mut settings = LdapConnSettings::new()
            .set_conn_timeout(cfg.timeout)
            .set_starttls(cfg.starttls);
        if cfg.ldaps || cfg.starttls {
            settings = settings.set_config(tls_config(cfg)?);
        }
        // Each address in turn, as a name's addresses are tried: `localhost` may stand for
        // ::1 and 127.0.0.1 where the server listens on only one.
        let urls = connect_urls(cfg)?;
        let mut attempt = Err(None);
        for url in &urls {
            attempt = LdapConn::with_settings(settings.clone(), url).map_err(Some);
            if attempt.is_ok() {
                break;
            }
        }
        let mut conn = attempt.map_err(|e| match e {
            Some(e) => conn_error(cfg, e),
            None => fail(
                Exit::Software,
                format!("{}: no address to connect to", cfg.describe()),
            ),
        })?;
        let res = conn
            .with_timeout(cfg.timeout)
            .simple_bind(&cfg.bind_dn, &password)
            .map_err(|e| conn_error(cfg, e))?;
        match res.rc {
            rc::SUCCESS => {}
            rc::INVALID_CREDENTIALS => {
                return Err(fail(
                    Exit::Config,
                    format!(
                        "{} refused the bind as {} (invalid credentials); check ldap.bind_dn and the bind password",
                        cfg.describe(),
                        crate::ui::escape(&cfg.bind_dn)
                    ),
                ));
            }
            _ => {
                return Err(fail(
                    Exit::Config,
                    format!(
                        "{} refused the bind as {}: {}",
                        cfg.describe(),
                        crate::ui::escape(&cfg.bind_dn),
                        result_words(&res)
                    ),
                ));
            }
        }
        Ok(LdapDirectory {
            conn,
            cfg: cfg.clone(),
        })
    }

    pub fn config(&self) -> &Ldap {
        &self.cfg
    }

    pub fn describe(&self) -> String {
        self.cfg.describe()
    }

    /// A search under `base_dn` with `filter`, up to `limit` entries (0: the server's limit).
    fn search(&mut self, filter: &str, limit: i32) -> Result<Vec<SearchEntry>> {
        let attrs = attributes(&self.cfg);
        let base = self.cfg.base_dn.clone();
        let res = self
            .conn
            .with_timeout(self.cfg.timeout)
            .with_search_options(SearchOptions::new().sizelimit(limit))
            .search(&base, Scope::Subtree, filter, attrs)
            .map_err(|e| conn_error(&self.cfg, e))?;
        let (entries, result) = (res.0, res.1);
        match result.rc {
            rc::SUCCESS | rc::SIZE_LIMIT_EXCEEDED => {}
            rc::NO_SUCH_OBJECT => {
                return Err(fail(
                    Exit::Config,
                    format!(
                        "{}: ldap.base_dn {} does not exist (or bind_dn may not see it)",
                        self.cfg.describe(),
                        crate::ui::escape(&self.cfg.base_dn)
                    ),
                ));
            }
            _ => {
                return Err(fail(
                    Exit::TempFail,
                    format!(
                        "{}: the search failed: {}",
                        self.cfg.describe(),
                        result_words(&result)
                    ),
                ));
            }
        }
        Ok(entries.into_iter().map(SearchEntry::construct).collect())
    }

    /// The person with address `addr`: `(&user_filter(mail=addr))`, the address escaped.
    pub fn find_by_address(&mut self, addr: &str) -> Result<Found> {
        let filter = format!(
            "(&{}({}={}))",
            self.cfg.user_filter,
            self.cfg.mail_attribute,
            escape_filter_value(addr)
        );
        let entries = self.search(&filter, 2)?;
        let mut people: Vec<Person> = entries
            .into_iter()
            .filter_map(|e| self.person(e, Some(addr)))
            .collect();
        Ok(match people.len() {
            0 => Found::Unknown,
            1 => people.pop().map_or(Found::Unknown, Person::found),
            _ => Found::Ambiguous,
        })
    }

    /// The person with this id, as they are now.
    pub fn find_by_id(&mut self, id: &UserId) -> Result<Option<Person>> {
        let id = id.to_string();
        let value = if self.cfg.id_attribute.eq_ignore_ascii_case("objectGUID") {
            match guid_bytes(&id) {
                Some(b) => super::escape_filter_bytes(&b, true),
                None => return Ok(None),
            }
        } else {
            escape_filter_value(&id)
        };
        let filter = format!(
            "(&{}({}={}))",
            self.cfg.user_filter, self.cfg.id_attribute, value
        );
        let entries = self.search(&filter, 2)?;
        let mut people: Vec<Person> = entries
            .into_iter()
            .filter_map(|e| self.person(e, None))
            .collect();
        // An id names one entry; two would be a broken directory, and neither is trusted.
        Ok(if people.len() == 1 {
            people.pop()
        } else {
            None
        })
    }

    /// One page of people (RFC 2696 paged results), from `cookie` (empty: the first page).
    /// Also the next cookie, None after the last page. Entries without an address or id are
    /// left out: nobody could be mailed.
    pub fn people_page(
        &mut self,
        cookie: &[u8],
        size: usize,
    ) -> Result<(Vec<Person>, Option<Vec<u8>>)> {
        let attrs = attributes(&self.cfg);
        let base = self.cfg.base_dn.clone();
        let filter = self.cfg.user_filter.clone();
        let size = i32::try_from(size).unwrap_or(PAGE).clamp(1, PAGE);
        let res = self
            .conn
            .with_timeout(self.cfg.timeout)
            .with_controls(
                PagedResults {
                    size,
                    cookie: cookie.to_vec(),
                }
                .critical(),
            )
            .search(&base, Scope::Subtree, &filter, attrs)
            .map_err(|e| conn_error(&self.cfg, e))?;
        let (entries, result) = (res.0, res.1);
        if result.rc != rc::SUCCESS {
            let hint = if result.rc == rc::SIZE_LIMIT_EXCEEDED {
                "; the server's size limit cuts paged searches short for bind_dn: on OpenLDAP give it `olcLimits: dn.exact=\"BIND_DN\" size.prtotal=unlimited` (docs/ldap.md)"
            } else {
                ""
            };
            return Err(fail(
                Exit::TempFail,
                format!(
                    "{}: paging through the people failed: {}{hint}",
                    self.cfg.describe(),
                    result_words(&result)
                ),
            ));
        }
        let next = result.ctrls.iter().find_map(|Control(kind, raw)| {
            matches!(kind, Some(ControlType::PagedResults))
                .then(|| raw.parse::<PagedResults>().cookie)
        });
        let people = entries
            .into_iter()
            .map(SearchEntry::construct)
            .filter_map(|e| self.person(e, None))
            .collect();
        Ok((people, next.filter(|c| !c.is_empty())))
    }

    /// An entry as a person; None without an address or an id. `wanted`: the address looked
    /// up, to pick the matching value of a multi-valued mail attribute.
    fn person(&self, e: SearchEntry, wanted: Option<&str>) -> Option<Person> {
        let get = |name: &str| -> Option<&Vec<String>> {
            e.attrs
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v)
        };
        let first = |name: &str| get(name).and_then(|v| v.first()).cloned();
        let mails = get(&self.cfg.mail_attribute)?;
        let mail = match wanted {
            Some(w) => {
                let k = crate::email::key(w);
                mails
                    .iter()
                    .find(|m| crate::email::key(m) == k)
                    .or(mails.first())?
                    .clone()
            }
            None => mails.first()?.clone(),
        };
        let id = match first(&self.cfg.id_attribute) {
            Some(t) => t,
            None => {
                let bin = e
                    .bin_attrs
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(&self.cfg.id_attribute))
                    .and_then(|(_, v)| v.first())?;
                guid_text(bin)?
            }
        };
        let mut binding = String::new();
        if let Some(t) = first("pwdChangedTime") {
            binding.push_str(&format!("pwdChangedTime={t};"));
        }
        let mut pw: Vec<&[u8]> = Vec::new();
        if let Some(v) = get("userPassword") {
            pw.extend(v.iter().map(|s| s.as_bytes()));
        }
        if let Some((_, v)) = e
            .bin_attrs
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("userPassword"))
        {
            pw.extend(v.iter().map(Vec::as_slice));
        }
        if !pw.is_empty() {
            // A digest of the values, never the hashes themselves.
            pw.sort();
            let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
            for v in pw {
                ctx.update(&(v.len() as u64).to_le_bytes());
                ctx.update(v);
            }
            let d: String = ctx.finish().as_ref()[..16]
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            binding.push_str(&format!("userPassword={d};"));
        }
        if let Some(t) = first("pwdLastSet") {
            binding.push_str(&format!("pwdLastSet={t};"));
        }
        let lock = lock_of(
            first("pwdAccountLockedTime"),
            first("userAccountControl"),
            first("lockoutTime"),
            first("nsAccountLock"),
        );
        Some(Person {
            dn: e.dn,
            id: UserId::Text(id),
            mails: mails.clone(),
            mail,
            name: first(&self.cfg.name_attribute).filter(|n| !n.trim().is_empty()),
            binding,
            lock,
        })
    }

    /// The person at `dn`, read again (just before a change).
    fn reread(&mut self, dn: &str) -> Result<Option<Person>> {
        let attrs = attributes(&self.cfg);
        let res = self
            .conn
            .with_timeout(self.cfg.timeout)
            .search(dn, Scope::Base, "(objectClass=*)", attrs)
            .map_err(|e| conn_error(&self.cfg, e))?;
        if res.1.rc == rc::NO_SUCH_OBJECT {
            return Ok(None);
        }
        Ok(res
            .0
            .into_iter()
            .next()
            .map(SearchEntry::construct)
            .and_then(|e| self.person(e, None)))
    }

    /// Set the password of the entry at `dn`, the way `password_change` says. The lock is
    /// read again first: a reset never goes through for a locked account (and so never
    /// unlocks one).
    pub fn set_password(&mut self, dn: &str, password: &str) -> Result<SetOutcome> {
        match self.reread(dn)? {
            None => return Ok(SetOutcome::Gone),
            Some(p) if p.lock.is_some() => {
                return Ok(SetOutcome::Locked(p.lock.unwrap_or_default()));
            }
            Some(_) => {}
        }
        let timeout = self.cfg.timeout;
        let res: LdapResult = match self.cfg.password_change {
            PasswordChange::Exop => {
                let r = self
                    .conn
                    .with_timeout(timeout)
                    .extended(PasswordModify {
                        user_id: Some(dn),
                        old_pass: None,
                        new_pass: Some(password),
                    })
                    .map_err(|e| conn_error(&self.cfg, e))?;
                r.1
            }
            PasswordChange::Modify => {
                let value = user_password_value(self.cfg.password_format, password)?;
                let mods = vec![Mod::Replace(
                    b"userPassword".to_vec(),
                    HashSet::from([value.as_bytes().to_vec()]),
                )];
                self.conn
                    .with_timeout(timeout)
                    .modify(dn, mods)
                    .map_err(|e| conn_error(&self.cfg, e))?
            }
            PasswordChange::Ad => {
                let value = super::ad_unicode_pwd(password);
                let mods = vec![Mod::Replace(
                    b"unicodePwd".to_vec(),
                    HashSet::from([value.to_vec()]),
                )];
                self.conn
                    .with_timeout(timeout)
                    .modify(dn, mods)
                    .map_err(|e| conn_error(&self.cfg, e))?
            }
        };
        Ok(match res.rc {
            rc::SUCCESS => SetOutcome::Changed,
            rc::CONSTRAINT_VIOLATION | rc::UNWILLING_TO_PERFORM => {
                SetOutcome::Refused(result_words(&res))
            }
            rc::NO_SUCH_OBJECT => SetOutcome::Gone,
            rc::INSUFFICIENT_ACCESS => {
                return Err(fail(
                    Exit::NoPerm,
                    format!(
                        "{}: {} may not change passwords under {} ({}); grant it write access to userPassword (docs/ldap.md)",
                        self.cfg.describe(),
                        crate::ui::escape(&self.cfg.bind_dn),
                        crate::ui::escape(&self.cfg.base_dn),
                        result_words(&res)
                    ),
                ));
            }
            _ => {
                return Err(fail(
                    Exit::TempFail,
                    format!(
                        "{}: the password change failed: {}",
                        self.cfg.describe(),
                        result_words(&res)
                    ),
                ));
            }
        })
    }

    /// The password policy entries bind_dn can see (objectClass pwdPolicy: OpenLDAP ppolicy,
    /// 389 DS), looked for under each naming context of the server: a default policy usually
    /// lives outside the people's subtree.
    pub fn password_policy(&mut self) -> Result<Option<String>> {
        let root = self
            .conn
            .with_timeout(self.cfg.timeout)
            .search("", Scope::Base, "(objectClass=*)", vec!["namingContexts"])
            .map_err(|e| conn_error(&self.cfg, e))?;
        let mut bases: Vec<String> = root
            .0
            .into_iter()
            .map(SearchEntry::construct)
            .flat_map(|e| {
                e.attrs
                    .into_iter()
                    .filter(|(k, _)| k.eq_ignore_ascii_case("namingContexts"))
                    .flat_map(|(_, v)| v)
            })
            .collect();
        if bases.is_empty() {
            bases.push(self.cfg.base_dn.clone());
        }
        for base in bases {
            let res = self
                .conn
                .with_timeout(self.cfg.timeout)
                .with_search_options(SearchOptions::new().sizelimit(5))
                .search(
                    &base,
                    Scope::Subtree,
                    "(objectClass=pwdPolicy)",
                    vec![
                        "pwdMinLength",
                        "pwdInHistory",
                        "pwdCheckQuality",
                        "pwdLockout",
                    ],
                )
                .map_err(|e| conn_error(&self.cfg, e))?;
            if let Some(e) = res.0.into_iter().next() {
                let e = SearchEntry::construct(e);
                let v = |k: &str| {
                    e.attrs
                        .get(k)
                        .and_then(|v| v.first())
                        .cloned()
                        .unwrap_or_else(|| "-".into())
                };
                return Ok(Some(format!(
                    "{} (pwdMinLength {}, pwdCheckQuality {}, pwdInHistory {}, pwdLockout {})",
                    crate::ui::escape(&e.dn),
                    v("pwdMinLength"),
                    v("pwdCheckQuality"),
                    v("pwdInHistory"),
                    v("pwdLockout")
                )));
            }
        }
        Ok(None)
    }

    /// Up to `n` entries that `user_filter` finds, and those of them pwreset can use (an
    /// address and an id readable): for `init` and `doctor`.
    pub fn sample(&mut self, n: i32) -> Result<(usize, Vec<Person>)> {
        let filter = self.cfg.user_filter.clone();
        let entries = self.search(&filter, n)?;
        let found = entries.len();
        Ok((
            found,
            entries
                .into_iter()
                .filter_map(|e| self.person(e, None))
                .collect(),
        ))
    }

    /// The server's certificate (DER), on a TLS connection.
    pub fn peer_certificate(&mut self) -> Option<Vec<u8>> {
        self.conn.get_peer_certificate().ok().flatten()
    }

    /// What `init` and `doctor` report: the base DN, the people the filter finds, whether
    /// bind_dn may read what pwreset needs, and the password policy. Errors name the key to fix.
    pub fn diagnose(&mut self) -> Result<Vec<String>> {
        let mut lines = Vec::new();
        let how = if self.cfg.ldaps {
            "TLS"
        } else if self.cfg.starttls {
            "StartTLS"
        } else if self.cfg.ldapi {
            "a local socket"
        } else {
            "plaintext (loopback)"
        };
        lines.push(format!(
            "{} answers over {how}; bound as {}",
            self.cfg.describe(),
            crate::ui::escape(&self.cfg.bind_dn)
        ));
        if !self.base_exists()? {
            return Err(fail(
                Exit::Config,
                format!(
                    "ldap.base_dn: {} does not exist, or {} may not see it; check the DN, and give bind_dn read access to it",
                    crate::ui::escape(&self.cfg.base_dn),
                    crate::ui::escape(&self.cfg.bind_dn)
                ),
            ));
        }
        let filter = self.cfg.user_filter.clone();
        let entries = self.search(&filter, 50)?;
        let found = entries.len();
        let unreadable = self.unreadable(&entries);
        let people: Vec<Person> = entries
            .into_iter()
            .filter_map(|e| self.person(e, None))
            .collect();
        if found == 0 {
            return Err(fail(
                Exit::Config,
                format!(
                    "ldap.user_filter: {} finds no one under {} as {}; check the filter, or give bind_dn read access to the people",
                    self.cfg.user_filter,
                    crate::ui::escape(&self.cfg.base_dn),
                    crate::ui::escape(&self.cfg.bind_dn)
                ),
            ));
        }
        // An attribute none of the entries shows is one bind_dn may not read (every person
        // has an address and an id): say which, so the administrator grants that one.
        if people.is_empty() && !unreadable.is_empty() {
            let names = unreadable.join(" and ");
            return Err(fail(
                Exit::NoPerm,
                format!(
                    "{} finds {found} entries under {}, but bind_dn {} cannot read their {names}: no entry it sees shows it; grant it read access to {names} under base_dn (docs/ldap.md has the ACLs)",
                    self.cfg.user_filter,
                    crate::ui::escape(&self.cfg.base_dn),
                    crate::ui::escape(&self.cfg.bind_dn),
                ),
            ));
        }
        if people.is_empty() {
            return Err(fail(
                Exit::NoPerm,
                format!(
                    "{} finds {found} entries, but bind_dn cannot read their {} and {} attributes; grant it read access to {}, {} and {} (docs/ldap.md)",
                    self.cfg.user_filter,
                    self.cfg.mail_attribute,
                    self.cfg.id_attribute,
                    self.cfg.mail_attribute,
                    self.cfg.name_attribute,
                    self.cfg.id_attribute
                ),
            ));
        }
        lines.push(format!(
            "ldap.user_filter finds people under {} (a sample of {found}: {} with an address and an id, e.g. {})",
            crate::ui::escape(&self.cfg.base_dn),
            people.len(),
            crate::ui::escape(&people[0].mail)
        ));
        if people.iter().all(|p| p.binding.is_empty()) {
            lines.push("warning: bind_dn can read neither pwdChangedTime, userPassword nor pwdLastSet: a link would survive a password change made elsewhere; grant it read access to pwdChangedTime (docs/ldap.md)".into());
        }
        match self.password_policy()? {
            Some(p) => lines.push(format!("password policy in force: {p}")),
            None => lines.push(
                "no password policy entry visible to bind_dn under base_dn (the server's default policy may still apply; pwreset's [password] policy does)".into(),
            ),
        }
        Ok(lines)
    }

    /// Of the mail and id attributes, those no entry of `entries` carries (as text or binary).
    fn unreadable(&self, entries: &[SearchEntry]) -> Vec<String> {
        [&self.cfg.mail_attribute, &self.cfg.id_attribute]
            .into_iter()
            .filter(|name| {
                !entries.iter().any(|e| {
                    e.attrs.keys().any(|k| k.eq_ignore_ascii_case(name))
                        || e.bin_attrs.keys().any(|k| k.eq_ignore_ascii_case(name))
                })
            })
            .cloned()
            .collect()
    }

    /// Whether the base DN exists, as bind_dn sees it.
    pub fn base_exists(&mut self) -> Result<bool> {
        let base = self.cfg.base_dn.clone();
        let res = self
            .conn
            .with_timeout(self.cfg.timeout)
            .search(&base, Scope::Base, "(objectClass=*)", vec!["1.1"])
            .map_err(|e| conn_error(&self.cfg, e))?;
        Ok(res.1.rc == rc::SUCCESS && !res.0.is_empty())
    }
}

/// Why an account is locked or disabled, from the attributes that say so.
fn lock_of(
    pwd_locked: Option<String>,
    uac: Option<String>,
    lockout: Option<String>,
    ns_lock: Option<String>,
) -> Option<String> {
    if let Some(t) = pwd_locked {
        return Some(format!(
            "locked by the password policy (pwdAccountLockedTime {t})"
        ));
    }
    if let Some(flags) = uac.and_then(|u| u.trim().parse::<u64>().ok())
        && flags & 0x2 != 0
    {
        return Some("disabled (userAccountControl ACCOUNTDISABLE)".into());
    }
    if let Some(t) = lockout.filter(|t| t.trim() != "0") {
        return Some(format!("locked out (lockoutTime {t})"));
    }
    if ns_lock.is_some_and(|v| v.eq_ignore_ascii_case("true")) {
        return Some("locked (nsAccountLock)".into());
    }
    None
}

/// A result's code and the server's words.
fn result_words(r: &LdapResult) -> String {
    let text = r.text.trim();
    if text.is_empty() {
        format!("result code {}", r.rc)
    } else {
        format!("{} (result code {})", crate::ui::escape(text), r.rc)
    }
}

/// The URLs to connect to: `ldap.url` itself, except in clear text (`starttls = false` on
/// ldap://), where its host is replaced by each address it was checked to have, all of them
/// loopback ([`crate::config::loopback_addrs`]). ldap3 would otherwise look `localhost` up again
/// itself, and a different answer then (a changed /etc/hosts, a resolver that disagrees) would
/// send the bind password and the new passwords in clear to another machine. Anything not
/// loopback is 78.
fn connect_urls(cfg: &Ldap) -> Result<Vec<String>> {
    if cfg.ldaps || cfg.starttls || cfg.ldapi {
        // TLS verifies the name in the certificate, so the name stays; a socket has no host.
        return Ok(vec![cfg.url.clone()]);
    }
    let url = url::Url::parse(&cfg.url).map_err(|e| {
        fail(
            Exit::Config,
            format!("ldap.url: {:?} is not a URL ({e})", cfg.url),
        )
    })?;
    let host = url.host_str().unwrap_or("");
    // ldap3's default for ldap://; the url crate knows no default port for the scheme.
    let port = url.port().unwrap_or(389);
    let addrs = crate::config::loopback_addrs(host, port, "ldap.url (starttls = false)")?;
    pinned_urls(&url, &addrs)
}

/// `url` with its host and port replaced by each of `addrs`, once each, in order.
fn pinned_urls(url: &url::Url, addrs: &[std::net::SocketAddr]) -> Result<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for a in addrs {
        let mut u = url.clone();
        u.set_ip_host(a.ip())
            .and_then(|()| u.set_port(Some(a.port())))
            .map_err(|()| {
                fail(
                    Exit::Config,
                    format!("ldap.url: cannot put the address {a} in {url}"),
                )
            })?;
        let text = u.to_string();
        if !out.contains(&text) {
            out.push(text);
        }
    }
    Ok(out)
}

/// The TLS client configuration: the public roots plus `ca_file`; always verified.
fn tls_config(cfg: &Ldap) -> Result<std::sync::Arc<rustls::ClientConfig>> {
    crate::store::net::client_config(cfg.ca_file.as_deref()).map_err(|e| {
        fail(
            crate::error::exit_of(&e),
            crate::error::render(&e).replace("database_ca_file", "ldap.ca_file"),
        )
    })
}

/// An objectGUID as text: the usual GUID form, whose first three fields are little-endian.
fn guid_text(b: &[u8]) -> Option<String> {
    let b: &[u8; 16] = b.try_into().ok()?;
    Some(format!(
        "{:02x}{:02x}{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}",
        b[3],
        b[2],
        b[1],
        b[0],
        b[5],
        b[4],
        b[7],
        b[6],
        b[8],
        b[9],
        b[10],
        b[11],
        b[12],
        b[13],
        b[14],
        b[15]
    ))
}

/// The bytes of an objectGUID from its text form.
fn guid_bytes(t: &str) -> Option<Vec<u8>> {
    let hex: String = t.chars().filter(|c| *c != '-').collect();
    if hex.len() != 32 {
        return None;
    }
    let v: Vec<u8> = (0..16)
        .map(|i| u8::from_str_radix(hex.get(i * 2..i * 2 + 2)?, 16).ok())
        .collect::<Option<_>>()?;
    let order = [3, 2, 1, 0, 5, 4, 7, 6, 8, 9, 10, 11, 12, 13, 14, 15];
    Some(order.iter().map(|&i| v[i]).collect())
}

/// A `userPassword` value for `password_change = "modify"`.
fn user_password_value(
    format: UserPasswordFormat,
    password: &str,
) -> Result<zeroize::Zeroizing<String>> {
    use base64::Engine as _;
    let rng = ring::rand::SystemRandom::new();
    let mut salt = [0u8; 16];
    ring::rand::SecureRandom::fill(&rng, &mut salt)
        .map_err(|_| anyhow::anyhow!("the system's random generator failed"))?;
    Ok(zeroize::Zeroizing::new(match format {
        UserPasswordFormat::Ssha => {
            // {SSHA}: base64(SHA-1(password + salt) + salt), RFC 2307's common extension.
            let mut ctx = ring::digest::Context::new(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY);
            ctx.update(password.as_bytes());
            ctx.update(&salt[..8]);
            let mut v = ctx.finish().as_ref().to_vec();
            v.extend_from_slice(&salt[..8]);
            format!(
                "{{SSHA}}{}",
                base64::engine::general_purpose::STANDARD.encode(v)
            )
        }
        UserPasswordFormat::Argon2 => {
            let settings =
                crate::password::HashSettings::for_format(crate::password::Format::Argon2id);
            let phc = crate::password::hash_as(password, &settings)
                .map_err(|e| anyhow::anyhow!("hashing the password as argon2id: {e}"))?;
            format!("{{ARGON2}}{phc}")
        }
        UserPasswordFormat::Crypt => {
            // glibc's default is 5,000 rounds; twenty times that is still a few tens of
            // milliseconds per bind on the server, which verifies with crypt(3).
            let params = sha_crypt::Sha512Params::new(CRYPT_ROUNDS)
                .map_err(|e| anyhow::anyhow!("SHA-512 crypt parameters: {e:?}"))?;
            let hash = sha_crypt::sha512_simple(password, &params)
                .map_err(|e| anyhow::anyhow!("hashing the password as SHA-512 crypt: {e:?}"))?;
            format!("{{CRYPT}}{hash}")
        }
    }))
}

/// The rounds of `{CRYPT}$6$` (SHA-512 crypt).
const CRYPT_ROUNDS: usize = 100_000;

#[cfg(test)]
mod tests {
    use super::*;

    fn plain(url: &str, starttls: bool) -> Ldap {
        Ldap {
            url: url.to_owned(),
            ldaps: url.starts_with("ldaps:"),
            ldapi: url.starts_with("ldapi:"),
            starttls,
            bind_dn: "cn=pwreset,dc=example,dc=com".into(),
            bind_password_file: None,
            base_dn: "dc=example,dc=com".into(),
            user_filter: "(objectClass=inetOrgPerson)".into(),
            mail_attribute: "mail".into(),
            name_attribute: "cn".into(),
            id_attribute: "entryUUID".into(),
            password_change: PasswordChange::Exop,
            password_format: UserPasswordFormat::Ssha,
            ca_file: None,
            timeout: std::time::Duration::from_secs(15),
        }
    }

    /// In clear text pwreset connects to the loopback addresses it checked, never to the name
    /// again; with TLS the name stays, for the certificate.
    #[test]
    fn plaintext_connects_to_the_checked_loopback_addresses() {
        let urls = connect_urls(&plain("ldap://localhost:3389", false)).expect("loopback");
        assert!(!urls.is_empty());
        for u in &urls {
            let parsed = url::Url::parse(u).expect("a URL");
            // An ldap:// host is opaque to the url crate: an IPv4 address is text to it.
            let host = parsed.host_str().expect("a host");
            let ip: std::net::IpAddr = host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse()
                .unwrap_or_else(|e| panic!("{u}: {host} is not an address ({e})"));
            assert!(ip.is_loopback(), "{u}");
            assert_eq!(parsed.port(), Some(3389), "{u}");
        }
        // Without a port: ldap3's default, written out.
        for u in connect_urls(&plain("LDAP://LocalHost", false)).expect("loopback") {
            assert!(u.ends_with(":389"), "{u}");
        }
        assert_eq!(
            connect_urls(&plain("ldap://127.0.0.1:3389", false)).expect("an address"),
            ["ldap://127.0.0.1:3389"]
        );
        assert_eq!(
            connect_urls(&plain("ldap://[::1]:3389", false)).expect("an address"),
            ["ldap://[::1]:3389"]
        );
        for (url, starttls) in [
            ("ldap://localhost:3389", true),
            ("ldaps://localhost:3636", false),
            ("ldapi:///", false),
        ] {
            assert_eq!(
                connect_urls(&plain(url, starttls)).expect("unchanged"),
                [url],
                "{url}"
            );
        }
        let err = connect_urls(&plain("ldap://ldap.localhost:3389", false)).expect_err("a name");
        assert_eq!(crate::error::exit_of(&err), Exit::Config);
        assert!(err.to_string().contains("ldap.url"), "{err}");
        let at = |a: &str| a.parse::<std::net::SocketAddr>().expect("an address");
        let url = url::Url::parse("ldap://localhost:3389/dc=example,dc=com").expect("a URL");
        assert_eq!(
            pinned_urls(
                &url,
                &[at("127.0.0.1:3389"), at("[::1]:3389"), at("127.0.0.1:3389")]
            )
            .expect("pinned"),
            [
                "ldap://127.0.0.1:3389/dc=example,dc=com",
                "ldap://[::1]:3389/dc=example,dc=com"
            ]
        );
    }

    #[test]
    fn crypt_values_are_sha512_crypt_with_their_rounds() {
        let v = user_password_value(UserPasswordFormat::Crypt, "correct horse").expect("hash");
        let hash = v.strip_prefix("{CRYPT}").expect("{CRYPT} prefix");
        assert!(hash.starts_with("$6$rounds=100000$"), "{hash}");
        assert!(sha_crypt::sha512_check("correct horse", hash).is_ok());
        assert!(sha_crypt::sha512_check("correct horsf", hash).is_err());
    }

    #[test]
    fn guids_round_trip_in_microsoft_order() {
        // [MS-DTYP] 2.3.4.2: Data1..Data3 little-endian.
        let bytes = [
            0x33, 0x22, 0x11, 0x00, 0x55, 0x44, 0x77, 0x66, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd,
            0xee, 0xff,
        ];
        let t = guid_text(&bytes).expect("16 bytes");
        assert_eq!(t, "00112233-4455-6677-8899-aabbccddeeff");
        assert_eq!(guid_bytes(&t).expect("parses"), bytes.to_vec());
    }

    #[test]
    fn locks() {
        assert!(lock_of(Some("000001010000Z".into()), None, None, None).is_some());
        assert!(lock_of(None, Some("514".into()), None, None).is_some());
        assert!(lock_of(None, Some("512".into()), Some("0".into()), None).is_none());
        assert!(lock_of(None, None, Some("133000000000000000".into()), None).is_some());
        assert!(lock_of(None, None, None, None).is_none());
    }

    #[test]
    fn ssha_values_verify() {
        use base64::Engine as _;
        let v = user_password_value(UserPasswordFormat::Ssha, "secret").expect("hashes");
        let raw = base64::engine::general_purpose::STANDARD
            .decode(v.strip_prefix("{SSHA}").expect("prefix"))
            .expect("base64");
        let (digest, salt) = raw.split_at(20);
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY);
        ctx.update(b"secret");
        ctx.update(salt);
        assert_eq!(ctx.finish().as_ref(), digest);
    }
}
