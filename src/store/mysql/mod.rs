//! The MariaDB/MySQL backend, on the `mysql` crate (synchronous, maintained, pure Rust with
//! rustls on ring: no OpenSSL, no aws-lc).
//!
//! Correctness does not lean on locks held for long: spending a token is one conditional
//! `UPDATE` whose affected-row count is checked (under REPEATABLE READ an `UPDATE … WHERE
//! used_at IS NULL` reads the latest committed row, not the snapshot, so its count is the
//! truth); the password is written with a second conditional `UPDATE` that also checks the
//! address and the old value, so a change made by the application meanwhile wins; the
//! throttle is a conditional upsert that marks the rows it moved with a random claim. The
//! driver does not set `CLIENT_FOUND_ROWS`, so affected rows are rows *changed*; every
//! conditional statement here changes the values it matches, so changed = matched.
//!
//! Split by concern like the SQLite backend: [`schema`] (connect, migrations, the mapping and
//! privilege checks), [`users`], [`tokens`], [`runs`], [`purge`], [`audit`].

mod audit;
mod limits;
mod purge;
mod runs;
mod schema;
mod secrets;
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
use mysql::prelude::Queryable;
use mysql::{Conn, Value};
use std::time::Duration;

/// An open connection to a MariaDB or MySQL database.
pub struct MysqlStore {
    conn: Conn,
    s: Shared,
    /// The server is MariaDB (it has DELETE … RETURNING); asked once, when first needed.
    mariadb: Option<bool>,
    /// How the purge of one cutoff walks the table, and where its last batch stopped.
    purge_from: Option<purge::Walk>,
    /// How to open another connection like this one.
    opts: mysql::Opts,
    /// A second connection holding a read view while a purge runs (see `purge::hold`).
    purge_hold: Option<Conn>,
}

/// Everything but the connection, so a transaction's closure can borrow both.
struct Shared {
    ctx: ErrCtx,
    users: UsersTable,
    q: Quoted,
    /// How the mapped id column travels: decides how a [`UserId`] is bound and read.
    id: IdKind,
    own_users: bool,
    /// The users live in a directory (`[ldap]`): no users table, tokens only.
    tokens_only: bool,
    warnings: Vec<String>,
}

/// The kinds of id column pwreset accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum IdKind {
    /// TINYINT … BIGINT, signed or not.
    Int,
    /// CHAR, VARCHAR, or MariaDB's UUID type (which travels as text).
    Text,
    /// BINARY(16): a UUID in 16 bytes, shown and accepted as 8-4-4-4-12 hex.
    Bin16,
}

/// What error messages need to know about the database.
struct ErrCtx {
    server: Server,
    busy_timeout: Duration,
}

/// MySQL error numbers pwreset reacts to.
mod code {
    pub const DUP_ENTRY: u16 = 1062;
    pub const DUP_FIELDNAME: u16 = 1060;
    pub const ACCESS_DENIED: u16 = 1045;
    pub const DB_ACCESS_DENIED: u16 = 1044;
    pub const BAD_DB: u16 = 1049;
    pub const NO_SUCH_TABLE: u16 = 1146;
    pub const BAD_FIELD: u16 = 1054;
    pub const TABLE_ACCESS_DENIED: u16 = 1142;
    pub const COLUMN_ACCESS_DENIED: u16 = 1143;
    pub const SPECIFIC_ACCESS_DENIED: u16 = 1227;
    pub const LOCK_WAIT_TIMEOUT: u16 = 1205;
    pub const DEADLOCK: u16 = 1213;
    pub const TOO_MANY_CONNECTIONS: u16 = 1040;
    pub const SERVER_SHUTDOWN: u16 = 1053;
    pub const QUERY_INTERRUPTED: u16 = 1317;
    pub const READ_ONLY: u16 = 1290;
    pub const CONNECTION_KILLED: u16 = 1927;
    pub const READ_ONLY_TRANSACTION: u16 = 1792;
}

impl ErrCtx {
    fn what(&self) -> String {
        self.server.describe()
    }

    /// Map an error from a unit of work: driver errors get the contract's exit code and a
    /// message naming the server and what to do; anything else passes through.
    fn err(&self, e: anyhow::Error) -> anyhow::Error {
        if let Some(step) = e.downcast_ref::<tokens::AfterReset>().copied() {
            return self.after_reset_error(step.0, &e);
        }
        let what = self.what();
        match e
            .downcast_ref::<mysql::Error>()
            .and_then(|m| self.classify(m, &what))
        {
            Some((exit, text)) => fail(exit, text),
            None if e.downcast_ref::<mysql::Error>().is_some() => {
                crate::store::scrub::error(e.context(what), &[])
            }
            None => e,
        }
    }

    /// An `after_reset` statement failed: the whole reset was rolled back. A busy server or a
    /// lost connection is 75 (try again), a missing privilege 77 with the GRANT to run,
    /// anything else 70 (the statement is wrong), all naming the statement.
    fn after_reset_error(&self, i: usize, e: &anyhow::Error) -> anyhow::Error {
        let m = e.downcast_ref::<mysql::Error>();
        let detail = match m {
            Some(mysql::Error::MySqlError(se)) => se.message.clone(),
            Some(other) => other.to_string(),
            None => format!("{e:#}"),
        };
        let detail = crate::ui::escape(&crate::store::scrub::text(&detail, &[]));
        if let Some(mysql::Error::MySqlError(se)) = m
            && let Some(why) = self.after_reset_denied(se.code, &detail)
        {
            return fail(
                Exit::NoPerm,
                format!(
                    "users.after_reset[{i}] {why}; the reset was rolled back, nothing changed and the link still works"
                ),
            );
        }
        let msg = format!(
            "users.after_reset[{i}] failed on {} ({detail}); the reset was rolled back, nothing changed and the link still works",
            self.what()
        );
        let temporary = match m {
            Some(mysql::Error::MySqlError(se)) => matches!(
                se.code,
                code::DEADLOCK
                    | code::LOCK_WAIT_TIMEOUT
                    | code::TOO_MANY_CONNECTIONS
                    | code::SERVER_SHUTDOWN
                    | code::QUERY_INTERRUPTED
                    | code::CONNECTION_KILLED
            ),
            Some(
                mysql::Error::IoError(_)
                | mysql::Error::CodecError(_)
                | mysql::Error::DriverError(
                    mysql::DriverError::CouldNotConnect(_)
                    | mysql::DriverError::ConnectTimeout
                    | mysql::DriverError::Timeout,
                ),
            ) => true,
            _ => false,
        };
        fail(
            if temporary {
                Exit::TempFail
            } else {
                Exit::Software
            },
            msg,
        )
    }

    /// For a server error `code` of an `after_reset` statement (`detail`, scrubbed): when it is
    /// a missing table or column privilege, the words of the 77 after the statement's name.
    pub(super) fn after_reset_denied(&self, code: u16, detail: &str) -> Option<String> {
        if !matches!(code, code::TABLE_ACCESS_DENIED | code::COLUMN_ACCESS_DENIED) {
            return None;
        }
        let host = if self.server.is_local() {
            "localhost"
        } else {
            "%"
        };
        Some(format!(
            "was refused for lack of privilege on {} ({detail}); the account {} needs the rights its after_reset statements use besides pwreset's own: grant them (e.g. GRANT DELETE ON {}.sessions TO '{}'@'{host}';)",
            self.what(),
            crate::ui::escape(&self.server.user),
            quote(&self.server.dbname),
            crate::ui::escape(&self.server.user)
        ))
    }

    /// Whether a write was refused because this account may not write (a read-only grant, or
    /// a read-only server), as against the server failing.
    fn is_refused_write(&self, e: &anyhow::Error) -> bool {
        matches!(
            server_code(e),
            Some(
                code::TABLE_ACCESS_DENIED
                    | code::COLUMN_ACCESS_DENIED
                    | code::DB_ACCESS_DENIED
                    | code::READ_ONLY
                    | code::READ_ONLY_TRANSACTION
            )
        )
    }

    /// The exit code and message for a driver error, or None to keep its own text.
    fn classify(&self, m: &mysql::Error, what: &str) -> Option<(Exit, String)> {
        if let Some(t) = super::net::rustls_error(m) {
            let mut text = format!("TLS with {what} failed: {}: {t}", super::net::tls_hint(t));
            if self.server.is_local() {
                text.push_str(
                    "; or, since the server is on this machine, add ?ssl-mode=DISABLED to the database URL (plaintext is allowed to a loopback address or a unix socket)",
                );
            }
            return Some((Exit::Unavailable, text));
        }
        let unreachable = |detail: String| {
            (
                Exit::TempFail,
                format!(
                    "cannot reach {what} ({detail}); check that the server is running and that the host and port in `database` are right, then try again"
                ),
            )
        };
        Some(match m {
            mysql::Error::MySqlError(se) => return self.server_error(se, what),
            mysql::Error::DriverError(mysql::DriverError::TlsNotSupported) => (
                Exit::Unavailable,
                format!(
                    "{what} does not offer TLS, and pwreset talks to a server over the network only with TLS; enable TLS on the server (ssl_cert, ssl_key), or for a server on this machine use 127.0.0.1 or a unix socket with ?ssl-mode=DISABLED"
                ),
            ),
            mysql::Error::DriverError(mysql::DriverError::CleartextPluginDisabled) => {
                cleartext_refused(what)
            }
            mysql::Error::DriverError(mysql::DriverError::UnknownAuthPlugin(p))
                if p == "mysql_clear_password" =>
            {
                cleartext_refused(what)
            }
            mysql::Error::DriverError(
                mysql::DriverError::CouldNotConnect(_)
                | mysql::DriverError::ConnectTimeout
                | mysql::DriverError::Timeout,
            ) => unreachable(m.to_string()),
            mysql::Error::IoError(io) => unreachable(io.to_string()),
            mysql::Error::CodecError(c) => unreachable(c.to_string()),
            mysql::Error::TlsError(t) => (
                Exit::Unavailable,
                format!(
                    "TLS with {what} failed: {t}; check the server's certificate, the host name in the database URL and database_ca_file"
                ),
            ),
            _ => return None,
        })
    }

    fn server_error(&self, se: &mysql::MySqlError, what: &str) -> Option<(Exit, String)> {
        let msg = crate::ui::escape(&crate::store::scrub::text(&se.message, &[]));
        Some(match se.code {
            code::ACCESS_DENIED => (
                Exit::NoPerm,
                format!(
                    "{what} refused the login of user {:?} ({msg}); check database_password_file or PWRESET_DB_PASSWORD, and that the account exists for the host pwreset connects from",
                    self.server.user
                ),
            ),
            code::DB_ACCESS_DENIED => (
                Exit::NoPerm,
                format!(
                    "{what}: {msg}; grant the user access to database `{}` (see docs/mariadb.md, \"Least privilege\")",
                    self.server.dbname
                ),
            ),
            code::BAD_DB => (
                Exit::Config,
                format!(
                    "{what} does not exist ({msg}); create it (CREATE DATABASE `{}` CHARACTER SET utf8mb4) or fix the database name in `database`",
                    self.server.dbname
                ),
            ),
            code::NO_SUCH_TABLE => (
                Exit::Config,
                format!(
                    "{what}: {msg}; run `pwreset init`, or set [users] table to the application's users table"
                ),
            ),
            code::BAD_FIELD => (
                Exit::Config,
                format!(
                    "{what}: {msg}; set [users] id_column, email_column and password_column to columns of the users table"
                ),
            ),
            code::TABLE_ACCESS_DENIED
            | code::COLUMN_ACCESS_DENIED
            | code::SPECIFIC_ACCESS_DENIED => (
                Exit::NoPerm,
                format!(
                    "{what}: {msg}; grant the privilege to the database user (`pwreset init` checks them all and prints the GRANT statements)"
                ),
            ),
            code::DEADLOCK | code::LOCK_WAIT_TIMEOUT => (
                Exit::TempFail,
                format!(
                    "{what} is busy: {msg} (retried, waited up to {} for locks); nothing was changed, try again",
                    humantime::format_duration(self.busy_timeout)
                ),
            ),
            code::TOO_MANY_CONNECTIONS
            | code::SERVER_SHUTDOWN
            | code::QUERY_INTERRUPTED
            | code::CONNECTION_KILLED => (
                Exit::TempFail,
                format!("{what} is not available right now ({msg}); try again later"),
            ),
            code::READ_ONLY => (
                Exit::TempFail,
                format!(
                    "{what} is read-only ({msg}); point `database` at the primary server, or try again when it accepts writes"
                ),
            ),
            _ => return None,
        })
    }
}

/// Whether a failed transaction may simply be run again: a deadlock (InnoDB rolled it back) or
/// a lock wait that timed out (we roll back ourselves).
fn retryable(e: &anyhow::Error) -> Option<u16> {
    match e.downcast_ref::<mysql::Error>() {
        Some(mysql::Error::MySqlError(se))
            if se.code == code::DEADLOCK || se.code == code::LOCK_WAIT_TIMEOUT =>
        {
            Some(se.code)
        }
        _ => None,
    }
}

/// The server error number under an error, if the server sent one.
fn server_code(e: &anyhow::Error) -> Option<u16> {
    match e.downcast_ref::<mysql::Error>() {
        Some(mysql::Error::MySqlError(se)) => Some(se.code),
        _ => None,
    }
}

impl MysqlStore {
    /// Run `work` in one transaction. Every unit of work here only touches the database, so
    /// after a deadlock or a lock timeout it is rolled back and run again, a bounded number
    /// of times, before the 75.
    fn tx<T>(&mut self, work: impl FnMut(&mut Conn, &Shared) -> Result<T>) -> Result<T> {
        self.tx_raw(work).map_err(|e| self.s.ctx.err(e))
    }

    /// [`Self::tx`] with the driver's error as it came, for a caller that decides by it.
    fn tx_raw<T>(&mut self, mut work: impl FnMut(&mut Conn, &Shared) -> Result<T>) -> Result<T> {
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let result = self
                .conn
                .query_drop("START TRANSACTION")
                .map_err(anyhow::Error::from)
                .and_then(|()| work(&mut self.conn, &self.s))
                .and_then(|v| {
                    self.conn.query_drop("COMMIT")?;
                    Ok(v)
                });
            match result {
                Ok(v) => return Ok(v),
                Err(e) => {
                    // The connection may be gone; the error that matters is `e`.
                    let _ = self.conn.query_drop("ROLLBACK");
                    let limit = match retryable(&e) {
                        Some(code::DEADLOCK) => 4,
                        Some(_) => 2,
                        None => 0,
                    };
                    if attempt >= limit {
                        return Err(e);
                    }
                    std::thread::sleep(Duration::from_millis(
                        10 * u64::from(attempt) + u64::from(rand_u32() % 20),
                    ));
                }
            }
        }
    }

    /// A read outside any explicit transaction, its errors mapped.
    fn read<T>(&mut self, work: impl FnOnce(&mut Conn, &Shared) -> Result<T>) -> Result<T> {
        work(&mut self.conn, &self.s).map_err(|e| self.s.ctx.err(e))
    }
}

/// A little randomness for backoff and claims, from the OS.
fn rand_u32() -> u32 {
    let mut b = [0u8; 4];
    // A fixed value only makes the backoff less spread; nothing depends on it being random.
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b);
    u32::from_le_bytes(b)
}

/// Backtick-quoted identifiers and the statements made from them, made once.
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
                  WHERE t.id = ? AND t.digest = ?"
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
    // keywords like `order` or `user` usable as names.
    format!("`{}`", ident.replace('`', "``"))
}

impl Shared {
    /// A user id as a parameter, typed as the id column expects it.
    fn id_value(&self, id: &UserId) -> Value {
        match (id, self.id) {
            (UserId::Int(n), _) => Value::Int(*n),
            (UserId::Text(t), IdKind::Bin16) => match uuid_bytes(t) {
                Some(b) => Value::Bytes(b.to_vec()),
                // Matches no row: not a UUID.
                None => Value::Bytes(t.as_bytes().to_vec()),
            },
            (UserId::Text(t), _) => Value::Bytes(t.as_bytes().to_vec()),
        }
    }

    /// A user id read from the id column (or pwreset_tokens.user_id).
    fn id_from(&self, v: Value) -> Result<UserId> {
        match v {
            Value::Int(n) => Ok(UserId::Int(n)),
            Value::UInt(n) => i64::try_from(n).map(UserId::Int).map_err(|_| {
                fail(
                    Exit::Config,
                    format!(
                        "{}: user id {n} is larger than pwreset can handle (2^63 - 1)",
                        self.ctx.what()
                    ),
                )
            }),
            Value::Bytes(b) if self.id == IdKind::Bin16 && b.len() == 16 => {
                Ok(UserId::Text(uuid_text(&b)))
            }
            Value::Bytes(b) => Ok(UserId::Text(String::from_utf8_lossy(&b).into_owned())),
            Value::NULL => Err(fail(
                Exit::Config,
                format!(
                    "{}: a user has no id (NULL in {}.{})",
                    self.ctx.what(),
                    self.users.table,
                    self.users.id_column
                ),
            )),
            other => Ok(UserId::Text(other.as_sql(true))),
        }
    }

    /// The row's user: id, email, password, name, locale (the columns of `select_users`).
    fn user(&self, mut row: mysql::Row) -> Result<User> {
        let pw_binary = is_binary(&row, 2);
        let mut take = |i: usize| row.take::<Value, usize>(i).unwrap_or(Value::NULL);
        let (id, email, password, name, locale) = (take(0), take(1), take(2), take(3), take(4));
        Ok(User {
            id: self.id_from(id)?,
            email: text_lossy(email),
            password: stored_value(password, pw_binary),
            name: optional_text(name),
            locale: optional_text(locale),
        })
    }
}

/// A name or locale: None for NULL or blank, so a greeting falls back to the default.
fn optional_text(v: Value) -> Option<String> {
    match v {
        Value::NULL => None,
        v => Some(text_lossy(v)).filter(|t| !t.trim().is_empty()),
    }
}

/// Whether column `i` holds bytes rather than text (BINARY, VARBINARY, BLOB: charset 63).
fn is_binary(row: &mysql::Row, i: usize) -> bool {
    row.columns_ref()
        .get(i)
        .is_some_and(|c| c.character_set() == 63)
}

/// A value as the binding and the hash formats see it: its type and its bytes.
fn stored_value(v: Value, binary: bool) -> StoredValue {
    match v {
        Value::NULL => StoredValue::Null,
        Value::Bytes(b) if binary => StoredValue::Blob(b),
        Value::Bytes(b) => match String::from_utf8(b) {
            Ok(s) => StoredValue::Text(s),
            Err(e) => StoredValue::Blob(e.into_bytes()),
        },
        Value::Int(n) => StoredValue::Number(n.to_string()),
        Value::UInt(n) => StoredValue::Number(n.to_string()),
        Value::Float(f) => StoredValue::Number(f.to_string()),
        Value::Double(f) => StoredValue::Number(f.to_string()),
        other => StoredValue::Text(other.as_sql(true)),
    }
}

/// The value as it was stored, for a comparison in SQL (`BINARY col <=> ?`).
fn stored_param(v: &StoredValue) -> Value {
    match v {
        StoredValue::Null => Value::NULL,
        StoredValue::Text(t) | StoredValue::Number(t) => Value::Bytes(t.as_bytes().to_vec()),
        StoredValue::Blob(b) => Value::Bytes(b.clone()),
    }
}

/// Text from a column that an application may have filled with anything.
fn text_lossy(v: Value) -> String {
    match v {
        Value::NULL => String::new(),
        Value::Bytes(b) => match String::from_utf8(b) {
            Ok(s) => s,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        },
        Value::Int(n) => n.to_string(),
        Value::UInt(n) => n.to_string(),
        other => other.as_sql(true),
    }
}

fn opt_i64(v: Value) -> Option<i64> {
    match v {
        Value::Int(n) => Some(n),
        Value::UInt(n) => i64::try_from(n).ok(),
        Value::Bytes(b) => std::str::from_utf8(&b).ok()?.parse().ok(),
        _ => None,
    }
}

fn uuid_bytes(text: &str) -> Option<[u8; 16]> {
    let hex: Vec<u8> = text.bytes().filter(|b| *b != b'-').collect();
    if hex.len() != 32 {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, pair) in hex.chunks(2).enumerate() {
        let s = std::str::from_utf8(pair).ok()?;
        out[i] = u8::from_str_radix(s, 16).ok()?;
    }
    Some(out)
}

fn uuid_text(b: &[u8]) -> String {
    let mut s = String::with_capacity(36);
    for (i, byte) in b.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            s.push('-');
        }
        s.push_str(&format!("{byte:02x}"));
    }
    s
}

/// Run a multi-row statement as text: `{head} VALUES (…), (…) {tail}`, `width` values a row.
/// Bulk rows go as literals, not as a prepared statement's parameters: the server parses one
/// text statement faster than it binds thousands of parameters. Every byte string is written
/// in hex, so no escaping rule (or NO_BACKSLASH_ESCAPES) is involved.
fn exec_rows(
    conn: &mut Conn,
    head: &str,
    width: usize,
    values: &[Value],
    tail: &str,
) -> Result<()> {
    use std::fmt::Write;
    let mut sql = String::with_capacity(head.len() + tail.len() + values.len() * 24);
    sql.push_str(head);
    sql.push_str(" VALUES ");
    for (i, v) in values.iter().enumerate() {
        if i % width == 0 {
            if i > 0 {
                sql.push_str("), ");
            }
            sql.push('(');
        } else {
            sql.push_str(", ");
        }
        match v {
            Value::NULL => sql.push_str("NULL"),
            Value::Int(n) => {
                let _ = write!(sql, "{n}");
            }
            Value::UInt(n) => {
                let _ = write!(sql, "{n}");
            }
            Value::Bytes(b) if b.is_empty() => sql.push_str("''"),
            Value::Bytes(b) => {
                // By table rather than `write!` per byte: a bulk request encodes about a
                // hundred bytes a user, in the time the server waits for the statement.
                const HEX: &[u8; 16] = b"0123456789abcdef";
                sql.push_str("X'");
                sql.extend(
                    b.iter()
                        .flat_map(|byte| [HEX[usize::from(byte >> 4)], HEX[usize::from(byte & 15)]])
                        .map(char::from),
                );
                sql.push('\'');
            }
            other => sql.push_str(&other.as_sql(true)),
        }
    }
    if !values.is_empty() {
        sql.push(')');
    }
    sql.push(' ');
    sql.push_str(tail);
    conn.query_drop(sql)?;
    Ok(())
}

/// `?, ?, …` for `n` parameters.
fn marks(n: usize) -> String {
    let mut s = String::with_capacity(n * 3);
    for i in 0..n {
        if i > 0 {
            s.push_str(", ");
        }
        s.push('?');
    }
    s
}

impl Store for MysqlStore {
    fn describe(&self) -> String {
        self.s.ctx.what()
    }

    fn warnings(&self) -> Vec<String> {
        self.s.warnings.clone()
    }

    fn hint(&mut self, _hint: Hint) -> Result<()> {
        // InnoDB needs no tuning for bulk work at this size: batches are multi-row statements.
        Ok(())
    }

    fn parallel_bulk(&self) -> bool {
        true
    }

    fn migrate(&mut self) -> Result<Migrated> {
        schema::migrate(self)
    }

    fn check_users_mapping(&mut self) -> Result<()> {
        if self.s.tokens_only {
            return Ok(());
        }
        schema::check_users_mapping(self)
    }

    fn owns_users_table(&self) -> bool {
        self.s.own_users
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
        self.tx(|conn, s| audit::insert(conn, s, std::slice::from_ref(event)))
    }

    fn audit_entries(
        &mut self,
        filter: &AuditFilter,
        each: &mut dyn FnMut(AuditEntry) -> Result<()>,
    ) -> Result<()> {
        audit::entries(self, filter, each)
    }
}

impl MysqlStore {
    /// Connect to the server of `config.database`.
    pub fn open(config: &Config, server: &Server, access: Access) -> Result<MysqlStore> {
        schema::open(config, server, access)
    }
}

/// A server asked for the password in cleartext (`mysql_clear_password`, as PAM or LDAP
/// authentication plugins do): pwreset never answers that, whoever asks. The advice matches
/// docs/security.md: over plaintext TCP even caching_sha2_password can be made to give the
/// password away (an impostor sends its own RSA key), so the way out is the socket or TLS.
fn cleartext_refused(what: &str) -> (Exit, String) {
    (
        Exit::Config,
        format!(
            "{what} asked for the password in cleartext (mysql_clear_password); pwreset never sends it that way, and sent nothing. Connect over the unix socket (mysql://pwreset@localhost/DB?socket=/run/mysqld/mysqld.sock) or over TLS (drop ssl-mode=DISABLED), and give pwreset's account a plugin that never shows the password to the server (on MariaDB: ALTER USER ... IDENTIFIED VIA ed25519). If the account is set up that way already, check what listens on that port: another local user may have taken it"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_round_trip_through_sixteen_bytes() {
        let text = "0192f3c4-5e6f-7a8b-9c0d-1e2f3a4b5c6d";
        let b = uuid_bytes(text).expect("a uuid");
        assert_eq!(uuid_text(&b), text);
        assert_eq!(uuid_bytes("0192F3C45E6F7A8B9C0D1E2F3A4B5C6D"), Some(b));
        assert!(uuid_bytes("not-a-uuid").is_none());
    }

    #[test]
    fn identifiers_are_backtick_quoted() {
        assert_eq!(quote("order"), "`order`");
        assert_eq!(marks(3), "?, ?, ?");
    }
}
