//! The PostgreSQL backend, over the synchronous `postgres` driver with rustls.
//!
//! Every statement goes out with `query_typed` (parameter types given, unnamed statement, one
//! round trip) and every setting is `SET LOCAL` inside a transaction: nothing outlives a
//! transaction, so pwreset works behind PgBouncer in transaction mode. Correctness rests on
//! conditional statements whose row counts are checked, which READ COMMITTED keeps correct;
//! transactions that fail with a serialization failure, a deadlock or a lock timeout are
//! repeated a few times, which is safe because each one is redone from the start.
//!
//! Split by concern: [`schema`] (connect, migrations, the mapping and grant checks),
//! [`users`], [`tokens`], [`runs`], [`purge`], [`audit`].

mod after_reset;
mod audit;
mod limits;
mod purge;
mod runs;
mod schema;
mod secrets;
mod tls;
mod tokens;
mod users;

use super::{
    Access, AuditEntry, AuditEvent, AuditFilter, Consume, Consumed, Hint, Issue, Issued, Migrated,
    NewToken, PurgeCounts, RevokeReason, Run, RunEnd, RunStart, Settle, Store, TokenRecord, User,
    UserId, UserSummary,
};
use crate::config::{Config, Server, UsersTable};
use crate::error::{Exit, fail};
use crate::token::{Digest, StoredValue};
use anyhow::Result;
use postgres::types::{ToSql, Type};
use postgres::{Client, Row};
use std::time::Duration;

/// An open connection to a PostgreSQL database.
pub struct PgStore {
    client: Client,
    server: Server,
    users: UsersTable,
    /// The schema everything lives in: `schema`, else the connection's `current_schema()`.
    schema: String,
    id: IdKind,
    q: Quoted,
    own_users: bool,
    /// The users live in a directory (`[ldap]`): no users table, tokens only.
    tokens_only: bool,
    /// Opened for reading (verify, user list, audit): a revocation found at lookup is stored
    /// only if the role may write, and quietly not otherwise.
    read_only: bool,
    /// What `init` and `doctor` should warn about (a superuser role).
    warnings: Vec<String>,
    /// `[users] after_reset`, rewritten to `$1` (the user id) and `$2` (the address), or why
    /// a statement cannot be bound (init says so with 78; a reset refuses before it starts).
    after_reset: Vec<Result<after_reset::AfterReset, String>>,
    busy_timeout: Duration,
    /// Where the purge stands: the next batch goes on from there.
    purge_from: Option<purge::Walk>,
}

/// The type of the users table's key, which pwreset's `user_id` columns copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum IdKind {
    Int,
    Uuid,
    Text,
}

impl IdKind {
    /// From `format_type()` of the id column; None for a type pwreset cannot key on.
    fn from_sql_type(t: &str) -> Option<IdKind> {
        match t {
            "smallint" | "integer" | "bigint" => Some(IdKind::Int),
            "uuid" => Some(IdKind::Uuid),
            "text" | "character varying" | "character" => Some(IdKind::Text),
            _ => None,
        }
    }

    /// The column type of pwreset's own `user_id` columns.
    fn column_type(self) -> &'static str {
        match self {
            IdKind::Int => "bigint",
            IdKind::Uuid => "uuid",
            IdKind::Text => "text",
        }
    }

    /// Parameter `$n` as the key type. Uuids travel as text and are cast by the server, so a
    /// `UserId::Text` binds the same way whatever the column is.
    fn param(self, n: usize) -> String {
        match self {
            IdKind::Int => format!("${n}::bigint"),
            IdKind::Uuid => format!("${n}::text::uuid"),
            IdKind::Text => format!("${n}::text"),
        }
    }

    /// Parameter `$n` as an array of keys.
    fn array_param(self, n: usize) -> String {
        match self {
            IdKind::Int => format!("${n}::bigint[]"),
            IdKind::Uuid => format!("${n}::text[]::uuid[]"),
            IdKind::Text => format!("${n}::text[]"),
        }
    }

    /// A key column as the client reads it.
    fn read(self, col: &str) -> String {
        match self {
            IdKind::Int => format!("{col}::bigint"),
            IdKind::Uuid | IdKind::Text => format!("{col}::text"),
        }
    }

    fn wire_type(self) -> Type {
        match self {
            IdKind::Int => Type::INT8,
            IdKind::Uuid | IdKind::Text => Type::TEXT,
        }
    }

    fn wire_array_type(self) -> Type {
        match self {
            IdKind::Int => Type::INT8_ARRAY,
            IdKind::Uuid | IdKind::Text => Type::TEXT_ARRAY,
        }
    }
}

/// A user key ready to bind as the key type's wire type.
#[derive(Debug)]
pub(super) enum IdArg {
    Int(i64),
    Text(String),
}

impl IdArg {
    fn sql(&self) -> &(dyn ToSql + Sync) {
        match self {
            IdArg::Int(n) => n,
            IdArg::Text(t) => t,
        }
    }
}

/// Keys for an `unnest()`.
pub(super) enum IdArray {
    Int(Vec<i64>),
    Text(Vec<String>),
}

impl IdArray {
    fn new(kind: IdKind, cap: usize) -> IdArray {
        match kind {
            IdKind::Int => IdArray::Int(Vec::with_capacity(cap)),
            IdKind::Uuid | IdKind::Text => IdArray::Text(Vec::with_capacity(cap)),
        }
    }

    fn push(&mut self, id: &UserId) -> Result<()> {
        match (self, id) {
            (IdArray::Int(v), UserId::Int(n)) => v.push(*n),
            (IdArray::Int(v), UserId::Text(t)) => v.push(int_key(t)?),
            (IdArray::Text(v), id) => v.push(id.to_string()),
        }
        Ok(())
    }

    fn sql(&self) -> &(dyn ToSql + Sync) {
        match self {
            IdArray::Int(v) => v,
            IdArray::Text(v) => v,
        }
    }
}

fn int_key(t: &str) -> Result<i64> {
    t.parse::<i64>().map_err(|_| {
        fail(
            Exit::DataErr,
            format!(
                "user id {:?} is not an integer, but the users table's key is",
                crate::ui::escape(t)
            ),
        )
    })
}

/// Table names, quoted and schema-qualified, and the statements made from them, made once.
pub(super) struct Quoted {
    users: String,
    id: String,
    email: String,
    password: String,
    tokens: String,
    audit: String,
    throttle: String,
    runs: String,
    limits: String,
    secrets: String,
    ledger: String,
    /// The name to greet by, as a text expression (NULL when the mapping has none).
    name: String,
    /// `SELECT id, email, password, name, locale FROM users`, mapped (NULL for a name or locale
    /// column the mapping has none of): the start of every user query.
    select_users: String,
    /// A token by id and digest, with its user's current email and password.
    select_token: String,
}

pub(super) fn quote(ident: &str) -> String {
    // Names are validated as plain identifiers at config load; quoting keeps their case and
    // keeps keywords like "user" or "order" usable.
    format!("\"{}\"", ident.replace('"', "\"\""))
}

impl Quoted {
    /// `own`: the table is pwreset's own, whose `name` column `user add --name` fills.
    fn new(schema: &str, users: &UsersTable, id_kind: IdKind, own: bool) -> Quoted {
        let s = quote(schema);
        let table = format!("{s}.{}", quote(&users.table));
        let (id, email, password) = (
            quote(&users.id_column),
            quote(&users.email_column),
            quote(&users.password_column),
        );
        // Read as text whatever their type (varchar, citext, an enum of locales).
        let name = match &users.name_column {
            Some(c) => format!("{}::text", quote(c)),
            None if own => "\"name\"::text".to_owned(),
            None => "NULL::text".to_owned(),
        };
        let locale = users
            .locale_column
            .as_deref()
            .map_or("NULL::text".to_owned(), |c| format!("{}::text", quote(c)));
        let tokens = format!("{s}.pwreset_tokens");
        Quoted {
            select_users: format!(
                "SELECT {}, {email}, {password}, {name}, {locale} FROM {table}",
                id_kind.read(&id)
            ),
            name: name.clone(),
            select_token: format!(
                "SELECT {tid}, u.{id} IS NOT NULL, u.{email}, u.{password}, t.binding,
                        t.created_at, t.expires_at, t.used_at, t.revoked_at, t.revoked_reason
                   FROM {tokens} t LEFT JOIN {table} u ON u.{id} = t.user_id
                  WHERE t.id = $1 AND t.digest = $2",
                tid = id_kind.read("t.user_id"),
            ),
            audit: format!("{s}.pwreset_audit"),
            throttle: format!("{s}.pwreset_throttle"),
            runs: format!("{s}.pwreset_runs"),
            limits: format!("{s}.pwreset_limits"),
            secrets: format!("{s}.pwreset_secrets"),
            ledger: format!("{s}.pwreset_schema"),
            tokens,
            users: table,
            id,
            email,
            password,
        }
    }
}

/// How many times a transaction that lost a race (serialization failure, deadlock, lock
/// timeout) is tried in all before the command gives up with 75.
pub(super) const ATTEMPTS: u32 = 3;

/// Classes of database error that the rest of the backend treats differently.
pub(super) fn is_retryable(e: &postgres::Error) -> bool {
    use postgres::error::SqlState;
    e.code().is_some_and(|c| {
        *c == SqlState::T_R_SERIALIZATION_FAILURE
            || *c == SqlState::T_R_DEADLOCK_DETECTED
            || *c == SqlState::LOCK_NOT_AVAILABLE
    })
}

impl PgStore {
    /// Map a driver error to the contract's exit codes, naming the server and what to do.
    pub(super) fn err(&self, e: postgres::Error) -> anyhow::Error {
        map_error(&self.server, e)
    }

    /// BEGIN, with the lock timeout for this transaction.
    pub(super) fn begin_sql(&self) -> String {
        // Milliseconds, clamped to what lock_timeout accepts (an int of ms).
        let lock_ms = self.busy_timeout.as_millis().clamp(1, i32::MAX as u128);
        format!("BEGIN; SET LOCAL lock_timeout = {lock_ms}")
    }

    /// Run `work` in one transaction: BEGIN with the lock timeout, the work, COMMIT; repeated
    /// from the start when it lost a race, up to [`ATTEMPTS`] times. `work` must not have
    /// effects outside the database, so that a repeat is safe.
    pub(super) fn in_tx<T>(
        &mut self,
        mut work: impl FnMut(&mut Client, &Quoted, IdKind) -> Result<T, TxError>,
    ) -> Result<T> {
        let begin = self.begin_sql();
        let mut attempt = 1;
        loop {
            let outcome = self
                .client
                .batch_execute(&begin)
                .map_err(TxError::Db)
                .and_then(|()| work(&mut self.client, &self.q, self.id))
                .and_then(|v| {
                    self.client
                        .batch_execute("COMMIT")
                        .map_err(TxError::Db)
                        .map(|()| v)
                });
            match outcome {
                Ok(v) => return Ok(v),
                Err(e) => {
                    // A failed statement leaves the transaction aborted; a lost connection
                    // has no transaction left. Either way nothing was committed.
                    if !self.client.is_closed() {
                        let _ = self.client.batch_execute("ROLLBACK");
                    }
                    match e {
                        TxError::Db(db) if is_retryable(&db) && attempt < ATTEMPTS => {
                            std::thread::sleep(Duration::from_millis(20 * u64::from(attempt)));
                            attempt += 1;
                        }
                        TxError::Db(db) => return Err(self.err(db)),
                        TxError::Other(other) => return Err(other),
                    }
                }
            }
        }
    }
}

/// Why a transaction's work stopped: the database said no (maybe worth a repeat), or
/// anything else.
pub(super) enum TxError {
    Db(postgres::Error),
    Other(anyhow::Error),
}

impl From<postgres::Error> for TxError {
    fn from(e: postgres::Error) -> TxError {
        TxError::Db(e)
    }
}

impl From<anyhow::Error> for TxError {
    fn from(e: anyhow::Error) -> TxError {
        TxError::Other(e)
    }
}

/// The contract's exit code and a message for a driver error.
pub(super) fn map_error(server: &Server, e: postgres::Error) -> anyhow::Error {
    use postgres::error::SqlState;
    let what = server.describe();
    if let Some(db) = e.as_db_error() {
        let code = db.code();
        let msg = crate::ui::escape(&crate::store::scrub::text(db.message(), &[]));
        let (exit, advice) = if *code == SqlState::INVALID_PASSWORD
            || *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION
        {
            (
                Exit::NoPerm,
                format!(
                    "authentication as {:?} failed; check database_password_file or PWRESET_DB_PASSWORD, the user in the URL, and the server's pg_hba.conf",
                    server.user
                ),
            )
        } else if *code == SqlState::INVALID_CATALOG_NAME {
            (
                Exit::Config,
                "the database does not exist; check the database name in the URL, or create it (CREATE DATABASE)".to_owned(),
            )
        } else if *code == SqlState::UNDEFINED_TABLE
            || *code == SqlState::UNDEFINED_COLUMN
            || *code == SqlState::INVALID_SCHEMA_NAME
        {
            (
                Exit::Config,
                "run `pwreset init`, and check [users] table and columns and `schema` against the database".to_owned(),
            )
        } else if *code == SqlState::INSUFFICIENT_PRIVILEGE {
            (
                Exit::NoPerm,
                format!(
                    "the role {:?} lacks a privilege; `pwreset init` names the GRANT statements it needs (docs/postgresql.md, \"Least privilege\")",
                    server.user
                ),
            )
        } else if is_retryable(&e) {
            (
                Exit::TempFail,
                "another transaction held the rows past busy_timeout, also when retried; try again"
                    .to_owned(),
            )
        } else if *code == SqlState::QUERY_CANCELED
            || *code == SqlState::ADMIN_SHUTDOWN
            || *code == SqlState::CRASH_SHUTDOWN
            || *code == SqlState::CANNOT_CONNECT_NOW
            || *code == SqlState::TOO_MANY_CONNECTIONS
            || code.code().starts_with("08")
        {
            (
                Exit::TempFail,
                "the server is busy, starting or shutting down; try again later".to_owned(),
            )
        } else {
            return anyhow::anyhow!("{what}: {msg} (SQLSTATE {})", code.code());
        };
        return fail(exit, format!("{what}: {msg}: {advice}"));
    }
    if let Some(refused) = std::error::Error::source(&e)
        .and_then(|s| s.downcast_ref::<std::io::Error>())
        .and_then(|io| io.get_ref())
        .and_then(|inner| inner.downcast_ref::<tls::PasswordRequestRefused>())
    {
        return fail(
            Exit::Config,
            format!(
                "{what} asked for the password {} over a connection without TLS; pwreset refused, and sent nothing. Without TLS pwreset logs in only by SCRAM, which never shows the password to the server: set the line for this connection in pg_hba.conf to scram-sha-256 (with password_encryption = scram-sha-256, then set the role's password again), or connect with TLS. If the server is set up that way already, check what listens on that port: another local user may have taken it",
                match refused.method {
                    "md5" =>
                        "as an MD5 hash (pg_hba.conf method md5, which whoever answers can replay or crack)",
                    _ => "in cleartext (pg_hba.conf method password)",
                }
            ),
        );
    }
    let text = e.to_string();
    if text.starts_with("error performing TLS handshake") {
        let detail = std::error::Error::source(&e)
            .map(|s| s.to_string())
            .unwrap_or(text);
        let mut advice = crate::store::net::tls_advice(server, &detail);
        if server.is_local() && !advice.contains("sslmode=disable") {
            // A server on this machine (Debian's own self-signed certificate, say) needs no
            // TLS, and that is the simpler fix than trusting its certificate.
            advice.push_str(
                "; or, since the server is on this machine, add ?sslmode=disable to the database URL (plaintext is allowed to a loopback address or a unix socket)",
            );
        }
        return fail(Exit::Unavailable, advice);
    }
    if text.contains("password missing") {
        return fail(
            Exit::NoPerm,
            format!(
                "{what} asks for a password and none is configured; put it in database_password_file (mode 0600) or PWRESET_DB_PASSWORD"
            ),
        );
    }
    let io = std::error::Error::source(&e).and_then(|s| s.downcast_ref::<std::io::Error>());
    if e.is_closed() || io.is_some() || text.starts_with("error connecting") {
        let detail = io.map_or(text.clone(), |io| io.to_string());
        return fail(
            Exit::TempFail,
            format!(
                "cannot reach {what} ({}): check that the server is running and the host and port in `database`, then try again",
                crate::ui::escape(&detail)
            ),
        );
    }
    anyhow::anyhow!(
        "{what}: {}",
        crate::ui::escape(&crate::store::scrub::text(&text, &[]))
    )
}

/// A value as the binding sees it: its type and its bytes.
fn stored_value(r: &Row, i: usize) -> Result<StoredValue, postgres::Error> {
    let ty = r.columns()[i].type_().clone();
    Ok(match ty {
        Type::BYTEA => match r.try_get::<_, Option<Vec<u8>>>(i)? {
            None => StoredValue::Null,
            Some(b) => StoredValue::Blob(b),
        },
        Type::INT2 => num(r.try_get::<_, Option<i16>>(i)?),
        Type::INT4 => num(r.try_get::<_, Option<i32>>(i)?),
        Type::INT8 => num(r.try_get::<_, Option<i64>>(i)?),
        _ => match r.try_get::<_, Option<String>>(i)? {
            None => StoredValue::Null,
            Some(t) => StoredValue::Text(t),
        },
    })
}

fn num<N: ToString>(n: Option<N>) -> StoredValue {
    n.map_or(StoredValue::Null, |n| StoredValue::Number(n.to_string()))
}

/// Text from a column an application may have filled with anything.
fn text_lossy(r: &Row, i: usize) -> Result<String, postgres::Error> {
    Ok(match stored_value(r, i)? {
        StoredValue::Null => String::new(),
        StoredValue::Text(t) | StoredValue::Number(t) => t,
        StoredValue::Blob(b) => String::from_utf8_lossy(&b).into_owned(),
    })
}

fn user_id(kind: IdKind, r: &Row, i: usize) -> Result<UserId, postgres::Error> {
    Ok(match kind {
        IdKind::Int => UserId::Int(r.try_get(i)?),
        IdKind::Uuid | IdKind::Text => UserId::Text(r.try_get(i)?),
    })
}

fn user_from_row(kind: IdKind, r: &Row) -> Result<User, postgres::Error> {
    // A blank name or locale is as good as none: the template greets without one.
    let optional = |i: usize| -> Result<Option<String>, postgres::Error> {
        Ok(r.try_get::<_, Option<String>>(i)?
            .filter(|t| !t.trim().is_empty()))
    };
    Ok(User {
        id: user_id(kind, r, 0)?,
        email: text_lossy(r, 1)?,
        password: stored_value(r, 2)?,
        name: optional(3)?,
        locale: optional(4)?,
    })
}

impl PgStore {
    fn id_arg(&self, id: &UserId) -> Result<IdArg> {
        id_arg(self.id, id)
    }
}

pub(super) fn id_arg(kind: IdKind, id: &UserId) -> Result<IdArg> {
    Ok(match (kind, id) {
        (IdKind::Int, UserId::Int(n)) => IdArg::Int(*n),
        (IdKind::Int, UserId::Text(t)) => IdArg::Int(int_key(t)?),
        (_, id) => IdArg::Text(id.to_string()),
    })
}

impl Store for PgStore {
    fn describe(&self) -> String {
        self.server.describe()
    }

    fn warnings(&self) -> Vec<String> {
        self.warnings.clone()
    }

    fn hint(&mut self, _hint: Hint) -> Result<()> {
        Ok(())
    }

    fn parallel_bulk(&self) -> bool {
        true
    }

    /// A purge transaction locks only the dead tokens it deletes, which nobody waits for, and
    /// costs about a millisecond of its own: at 5,000 a purge of a million took 1.25x one
    /// DELETE, at 50,000 1.07x (bench/postgres.sh).
    fn purge_batch_size(&self) -> u32 {
        50_000
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

    fn consume_token(&mut self, c: &Consume<'_>) -> Result<Consumed> {
        // The server's text may quote the new hash or the address (a failing after_reset).
        tokens::consume(self, c).map_err(|e| super::scrub::error(e, &[c.new_hash, c.email]))
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
        self.in_tx(|c, q, _| audit::insert(c, q, event).map_err(TxError::Db))
    }

    fn audit_entries(
        &mut self,
        filter: &AuditFilter,
        each: &mut dyn FnMut(AuditEntry) -> Result<()>,
    ) -> Result<()> {
        audit::entries(self, filter, each)
    }
}

impl PgStore {
    /// Connect to the server in `config.database`.
    pub fn open(config: &Config, access: Access) -> Result<PgStore> {
        schema::open(config, access)
    }
}
