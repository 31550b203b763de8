//! The SQLite backend: one file, WAL mode, `BEGIN IMMEDIATE` write transactions that queue on
//! SQLite's lock for up to `busy_timeout`.
//!
//! Split by concern: [`schema`] (open, migrations, the mapping check), [`users`], [`tokens`],
//! [`purge`], [`audit`].

mod audit;
mod limits;
mod purge;
mod runs;
mod schema;
mod secrets;
mod tokens;
mod users;

pub use schema::SCHEMA_VERSION;

use super::{
    Access, AuditEntry, AuditEvent, AuditFilter, Consume, Consumed, Hint, Issue, Issued, Migrated,
    NewToken, PurgeCounts, RevokeReason, Run, RunEnd, RunStart, Settle, Store, TokenRecord, User,
    UserId, UserSummary,
};
use crate::config::{Config, UsersTable};
use crate::error::{Exit, fail};
use crate::token::{Digest, StoredValue};
use anyhow::Result;
use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};
use rusqlite::{Connection, TransactionBehavior};
use std::path::PathBuf;
use std::time::Duration;

/// An open SQLite database.
pub struct SqliteStore {
    conn: Connection,
    ctx: ErrCtx,
    users: UsersTable,
    /// Quoted identifiers and the statements made from them, made once.
    q: Quoted,
    /// The users table is pwreset's own (it has the `email_key` column `init` made).
    own_users: bool,
    /// Opened read-only (verify, user list, audit).
    read_only: bool,
    /// The users live in a directory (`[ldap]`): no users table, tokens only.
    tokens_only: bool,
    created: bool,
    /// What the checks of the file and its folder found worth a warning.
    warnings: Vec<String>,
    /// Where a purge of one cutoff goes on from (see [`purge::Walk`]).
    purge: Option<purge::Walk>,
}

/// What error messages need to know about the database.
struct ErrCtx {
    path: PathBuf,
    busy_timeout: Duration,
}

impl ErrCtx {
    /// Map a rusqlite error: a busy database is a temporary failure (75), a read-only one a
    /// permission problem (77); anything else keeps its text.
    fn err(&self, e: rusqlite::Error) -> anyhow::Error {
        if let rusqlite::Error::SqliteFailure(f, _) = &e {
            match f.code {
                rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked => {
                    return fail(
                        Exit::TempFail,
                        format!(
                            "database {} is locked by another process (retried for {}); try again",
                            self.path.display(),
                            humantime::format_duration(self.busy_timeout)
                        ),
                    );
                }
                rusqlite::ErrorCode::ReadOnly | rusqlite::ErrorCode::PermissionDenied => {
                    return fail(
                        Exit::NoPerm,
                        format!(
                            "database {} is read-only for this user; run pwreset as the user that owns it",
                            self.path.display()
                        ),
                    );
                }
                rusqlite::ErrorCode::CannotOpen => {
                    return fail(
                        Exit::CantCreate,
                        format!("cannot open database {}: {e}", self.path.display()),
                    );
                }
                rusqlite::ErrorCode::NotADatabase => {
                    return fail(
                        Exit::Config,
                        format!(
                            "{} is not an SQLite database; check --db / PWRESET_DB / `database`",
                            self.path.display()
                        ),
                    );
                }
                _ => {}
            }
        }
        let shown = e.to_string();
        let clean = crate::store::scrub::text(&shown, &[]);
        if clean != shown {
            // A trigger's RAISE or a CHECK's text quoted a hash: the scrubbed words only.
            return anyhow::anyhow!("database {}: {clean}", self.path.display());
        }
        anyhow::Error::new(e).context(format!("database {}", self.path.display()))
    }
}

/// Start a write transaction, taking the write lock up front: a deferred transaction that
/// upgrades later can fail with SQLITE_BUSY without waiting for busy_timeout.
fn begin<'c>(conn: &'c mut Connection, ctx: &ErrCtx) -> Result<rusqlite::Transaction<'c>> {
    conn.transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(|e| ctx.err(e))
}

struct Quoted {
    table: String,
    id: String,
    email: String,
    password: String,
    /// The name column, or `NULL` when the mapping has none.
    name: String,
    /// `SELECT id, email, password, name, locale FROM users`, mapped (NULL for a name or locale
    /// column the mapping has none of): the start of every user query.
    select_users: String,
    /// A token by id and digest, with its user's current email and password.
    select_token: String,
}

impl Quoted {
    /// `own`: the table is pwreset's own, whose `name` column `user add --name` fills.
    fn new(users: &UsersTable, own: bool) -> Quoted {
        let (table, id, email, password) = (
            quote(&users.table),
            quote(&users.id_column),
            quote(&users.email_column),
            quote(&users.password_column),
        );
        let name = match &users.name_column {
            Some(c) => quote(c),
            None if own => quote("name"),
            None => "NULL".into(),
        };
        let locale = users.locale_column.as_deref().map_or("NULL".into(), quote);
        Quoted {
            select_users: format!(
                "SELECT {id}, {email}, {password}, {name}, {locale} FROM {table}"
            ),
            select_token: format!(
                "SELECT t.user_id, u.{id} IS NOT NULL, u.{email}, u.{password}, t.binding,
                        t.created_at, t.expires_at, t.used_at, t.revoked_at, t.revoked_reason
                   FROM pwreset_tokens t LEFT JOIN {table} u ON u.{id} = t.user_id
                  WHERE t.id = ?1 AND t.digest = ?2"
            ),
            table,
            id,
            email,
            password,
            name,
        }
    }
}

fn quote(ident: &str) -> String {
    // Identifiers are validated as [A-Za-z_][A-Za-z0-9_]* at config load; quoting still keeps
    // keywords like "order" or "user" usable as names.
    format!("\"{}\"", ident.replace('"', "\"\""))
}

impl ToSql for UserId {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            UserId::Int(n) => ToSqlOutput::from(*n),
            UserId::Text(t) => ToSqlOutput::from(t.as_str()),
        })
    }
}

impl FromSql for UserId {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        match value {
            ValueRef::Integer(n) => Ok(UserId::Int(n)),
            ValueRef::Text(t) => Ok(UserId::Text(
                std::str::from_utf8(t)
                    .map_err(|e| FromSqlError::Other(Box::new(e)))?
                    .to_owned(),
            )),
            _ => Err(FromSqlError::InvalidType),
        }
    }
}

fn user_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<User> {
    let optional = |i: usize| -> rusqlite::Result<Option<String>> {
        Ok(match r.get_ref(i)? {
            ValueRef::Null => None,
            v => Some(text_lossy(v)).filter(|t| !t.trim().is_empty()),
        })
    };
    Ok(User {
        id: r.get(0)?,
        email: text_lossy(r.get_ref(1)?),
        password: stored_value(r.get_ref(2)?),
        name: optional(3)?,
        locale: optional(4)?,
    })
}

/// A value as the binding sees it: its type and its bytes.
fn stored_value(v: ValueRef<'_>) -> StoredValue {
    match v {
        ValueRef::Null => StoredValue::Null,
        ValueRef::Text(t) => match std::str::from_utf8(t) {
            Ok(s) => StoredValue::Text(s.to_owned()),
            Err(_) => StoredValue::Blob(t.to_vec()),
        },
        ValueRef::Blob(b) => StoredValue::Blob(b.to_vec()),
        ValueRef::Integer(n) => StoredValue::Number(n.to_string()),
        ValueRef::Real(f) => StoredValue::Number(f.to_string()),
    }
}

/// Text from a column that an application may have filled with anything (even blobs).
fn text_lossy(v: ValueRef<'_>) -> String {
    match v {
        ValueRef::Text(t) | ValueRef::Blob(t) => String::from_utf8_lossy(t).into_owned(),
        ValueRef::Integer(n) => n.to_string(),
        ValueRef::Real(f) => f.to_string(),
        ValueRef::Null => String::new(),
    }
}

impl Store for SqliteStore {
    fn describe(&self) -> String {
        format!("SQLite database {}", self.ctx.path.display())
    }

    fn warnings(&self) -> Vec<String> {
        self.warnings.clone()
    }

    fn hint(&mut self, hint: Hint) -> Result<()> {
        match hint {
            // A larger page cache, so index pages touched by one batch are still in memory for
            // the next, and fewer, larger checkpoints.
            Hint::BulkStart => self
                .conn
                .execute_batch("PRAGMA cache_size = -32768; PRAGMA wal_autocheckpoint = 16384;")
                .map_err(|e| self.ctx.err(e)),
            // Checkpoint the WAL into the database without waiting for readers.
            Hint::BulkEnd => self
                .conn
                .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
                .map_err(|e| self.ctx.err(e)),
        }
    }

    fn migrate(&mut self) -> Result<Migrated> {
        schema::migrate(self)
    }

    fn check_users_mapping(&mut self) -> Result<()> {
        if self.tokens_only {
            return Ok(());
        }
        schema::check_users_mapping(self)
    }

    fn owns_users_table(&self) -> bool {
        self.own_users
    }

    fn sample_passwords(&mut self, limit: usize) -> Result<Vec<StoredValue>> {
        users::sample_passwords(self, limit)
    }

    fn add_user(
        &mut self,
        email: &str,
        name: Option<&str>,
        now: i64,
        actor: &str,
    ) -> Result<UserId> {
        users::add(self, email, name, now, actor)
    }

    fn users_with_email(&mut self, value: &str) -> Result<Vec<User>> {
        users::with_email(self, value)
    }

    fn scan_users(&mut self, wanted: &mut dyn FnMut(&str) -> bool) -> Result<Vec<User>> {
        users::scan(self, wanted)
    }

    fn users_after(&mut self, after: Option<&UserId>, limit: usize) -> Result<Vec<User>> {
        users::after(self, after, limit)
    }

    fn user_by_id(&mut self, id: &UserId) -> Result<Option<User>> {
        users::by_id(self, id)
    }

    fn count_users(&mut self) -> Result<u64> {
        users::count(self)
    }

    fn list_users(
        &mut self,
        now: i64,
        each: &mut dyn FnMut(UserSummary) -> Result<()>,
    ) -> Result<()> {
        users::list(self, now, each)
    }

    fn issue_tokens(&mut self, batch: &[NewToken<'_>], issue: &Issue<'_>) -> Result<Vec<Issued>> {
        tokens::issue(self, batch, issue)
    }

    fn settle(&mut self, settle: &Settle<'_>) -> Result<()> {
        tokens::settle(self, settle)
    }

    fn begin_run(&mut self, run: &RunStart<'_>) -> Result<i64> {
        runs::begin_run(self, run)
    }

    fn heartbeat(&mut self, run_id: i64, now: i64) -> Result<()> {
        runs::heartbeat(self, run_id, now)
    }

    fn open_runs(&mut self) -> Result<Vec<Run>> {
        runs::open_runs(self)
    }

    fn end_run(
        &mut self,
        run_id: i64,
        outcome: RunEnd,
        why: &str,
        now: i64,
        actor: &str,
    ) -> Result<u64> {
        runs::end_run(self, run_id, outcome, why, now, actor)
    }

    fn ended_runs(&mut self, job: &str, since: i64) -> Result<Vec<Run>> {
        runs::ended_runs(self, job, since)
    }

    fn served_by(
        &mut self,
        runs: &[i64],
        users: &[&UserId],
        now: i64,
    ) -> Result<Vec<(UserId, i64)>> {
        runs::served_by(self, runs, users, now)
    }

    fn purge_runs(&mut self, cutoff: i64) -> Result<u64> {
        runs::purge_runs(self, cutoff)
    }

    fn lookup_token(&mut self, token_id: i64, digest: &Digest) -> Result<Option<TokenRecord>> {
        tokens::lookup(self, token_id, digest)
    }

    fn revoke_token(
        &mut self,
        token_id: i64,
        reason: &RevokeReason,
        now: i64,
        audit: Option<&AuditEvent<'_>>,
    ) -> Result<bool> {
        tokens::revoke_token(self, token_id, reason, now, audit)
    }

    fn revoke_user_tokens(
        &mut self,
        user: &User,
        reason: &RevokeReason,
        now: i64,
        actor: &str,
    ) -> Result<u64> {
        tokens::revoke_user_tokens(self, user, reason, now, actor)
    }

    fn consume_token(&mut self, c: &Consume<'_>) -> Result<Consumed> {
        // The server's text may quote the new hash or the address (a failing after_reset).
        tokens::consume(self, c).map_err(|e| super::scrub::error(e, &[c.new_hash, c.email]))
    }

    fn token_alone(
        &mut self,
        token_id: i64,
        digest: &Digest,
    ) -> Result<Option<(TokenRecord, Vec<u8>)>> {
        tokens::alone(self, token_id, digest)
    }

    fn spend_token(
        &mut self,
        s: &super::Spend<'_>,
        change: &mut dyn FnMut() -> Result<bool>,
    ) -> Result<Consumed> {
        tokens::spend(self, s, change)
    }

    fn count_dead(&mut self, cutoff: i64) -> Result<PurgeCounts> {
        purge::count_dead(self, cutoff)
    }

    fn purge_batch(&mut self, cutoff: i64, limit: u32) -> Result<PurgeCounts> {
        purge::batch(self, cutoff, limit)
    }

    fn limit_hit(&mut self, key: &[u8; 32], window: i64, now: i64) -> Result<super::LimitCount> {
        limits::hit(self, key, window, now)
    }

    fn limit_peek(&mut self, key: &[u8; 32], now: i64) -> Result<super::LimitCount> {
        limits::peek(self, key, now)
    }

    fn purge_limits(&mut self, now: i64) -> Result<u64> {
        limits::purge(self, now)
    }

    fn shared_secret(
        &mut self,
        name: &str,
        fresh: &[u8; 32],
        now: i64,
    ) -> Result<zeroize::Zeroizing<Vec<u8>>> {
        secrets::shared(self, name, fresh, now)
    }

    fn record(&mut self, event: &AuditEvent<'_>) -> Result<()> {
        let tx = begin(&mut self.conn, &self.ctx)?;
        audit::insert(&tx, event).map_err(|e| self.ctx.err(e))?;
        tx.commit().map_err(|e| self.ctx.err(e))
    }

    fn audit_entries(
        &mut self,
        filter: &AuditFilter,
        each: &mut dyn FnMut(AuditEntry) -> Result<()>,
    ) -> Result<()> {
        audit::entries(self, filter, each)
    }
}

impl SqliteStore {
    /// Open the database at `config.database`.
    pub fn open(config: &Config, access: Access) -> Result<SqliteStore> {
        schema::open(config, access)
    }
}
