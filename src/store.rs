//! The database: the only module with SQL in it.
//!
//! Commands talk to the store through its methods and types, never to rusqlite, so that a
//! PostgreSQL backend can stand behind the same methods later.
//!
//! Every state change is one `BEGIN IMMEDIATE` transaction that also writes its audit row, so a
//! crash at any instant leaves either the old state or the new one, and concurrent writers
//! queue on SQLite's lock (for up to `busy_timeout`) instead of failing half-way.

use crate::config::{Config, UsersTable};
use crate::error::{Exit, fail};
use crate::token::Digest;
use anyhow::{Context, Result};
use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior, params};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The schema version this build writes. Migrations run forward from the stored version.
pub const SCHEMA_VERSION: i64 = 1;

const MIGRATIONS: &[&str] = &[
    // 0 -> 1
    "CREATE TABLE IF NOT EXISTS pwreset_tokens (
        id             INTEGER PRIMARY KEY,
        -- SHA-256 of the token's secret; the row is found by id (the token's public half)
        digest         BLOB    NOT NULL,
        user_id        INTEGER NOT NULL,
        binding        BLOB    NOT NULL,
        created_at     INTEGER NOT NULL,
        expires_at     INTEGER NOT NULL,
        used_at        INTEGER,
        revoked_at     INTEGER,
        revoked_reason TEXT,
        -- when the token stopped (or will stop) being usable: min(expires, used, revoked);
        -- purge-expired walks this index
        dead_at        INTEGER NOT NULL
    );
    CREATE INDEX IF NOT EXISTS pwreset_tokens_user ON pwreset_tokens(user_id, created_at);
    CREATE INDEX IF NOT EXISTS pwreset_tokens_dead ON pwreset_tokens(dead_at);
    CREATE TABLE IF NOT EXISTS pwreset_audit (
        id      INTEGER PRIMARY KEY,
        at      INTEGER NOT NULL,
        actor   TEXT    NOT NULL,
        action  TEXT    NOT NULL,
        user_id INTEGER,
        email   TEXT,
        outcome TEXT    NOT NULL,
        detail  TEXT
    );
    CREATE INDEX IF NOT EXISTS pwreset_audit_at ON pwreset_audit(at);
    CREATE INDEX IF NOT EXISTS pwreset_audit_user ON pwreset_audit(user_id, at);",
];

/// The tool's own users table, created by `init` when the default table does not exist.
const OWN_USERS_TABLE: &str = "CREATE TABLE users (
    id            INTEGER PRIMARY KEY,
    email         TEXT    NOT NULL,
    email_key     TEXT    NOT NULL UNIQUE,
    name          TEXT,
    password_hash TEXT,
    created_at    INTEGER NOT NULL
)";

/// How a command uses the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// `init`: create the file and folders, migrate.
    Create,
    /// Commands that write: the schema must be current.
    Write,
    /// `verify`, `user list`, `audit`: no migration work, no writes.
    Read,
}

/// A user row, as pwreset sees it through the `[users]` mapping.
#[derive(Debug, Clone)]
pub struct User {
    pub id: i64,
    pub email: String,
    pub password_hash: Option<String>,
}

/// One line of `user list`.
#[derive(Debug, Clone)]
pub struct UserSummary {
    pub id: i64,
    pub email: String,
    pub has_password: bool,
    pub open_tokens: i64,
}

/// What the store knows about a token.
#[derive(Debug, Clone)]
pub struct TokenRecord {
    pub user_id: i64,
    /// None when the user row is gone.
    pub email: Option<String>,
    pub created_at: i64,
    pub expires_at: i64,
    pub used_at: Option<i64>,
    pub revoked_at: Option<i64>,
    pub revoked_reason: Option<String>,
    /// Whether the user's email and password hash are still what they were at issue.
    pub binding_ok: bool,
}

/// Token status, as `verify` and `reset` report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Valid,
    Expired,
    Used,
    Revoked,
    Unknown,
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

impl TokenRecord {
    pub fn status(&self, now: i64) -> Status {
        if self.used_at.is_some() {
            Status::Used
        } else if self.revoked_at.is_some() || self.email.is_none() || !self.binding_ok {
            Status::Revoked
        } else if self.expires_at <= now {
            Status::Expired
        } else {
            Status::Valid
        }
    }
}

/// A token to store for a user.
pub struct NewToken<'a> {
    pub user: &'a User,
    pub digest: Digest,
}

/// What became of one token request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Issued {
    Created {
        expires_at: i64,
        /// The row id: the public half of the token.
        id: i64,
    },
    /// The user had a token created less than `request_throttle` ago.
    Throttled { retry_at: i64 },
}

/// What became of a password change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consumed {
    Changed {
        user_id: i64,
    },
    /// The token was no longer valid when the transaction looked (another reset won).
    NotUsable(Status),
}

/// Counts of one purge step.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PurgeCounts {
    pub expired: u64,
    pub used: u64,
    pub revoked: u64,
}

impl PurgeCounts {
    pub fn total(&self) -> u64 {
        self.expired + self.used + self.revoked
    }
    pub fn add(&mut self, o: PurgeCounts) {
        self.expired += o.expired;
        self.used += o.used;
        self.revoked += o.revoked;
    }
}

/// One audit record.
#[derive(Debug, Clone)]
pub struct AuditEntry {
    pub at: i64,
    pub actor: String,
    pub action: String,
    pub user_id: Option<i64>,
    pub email: Option<String>,
    pub outcome: String,
    pub detail: Option<String>,
}

/// Which audit rows to show.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub user_id: Option<i64>,
    pub since: Option<i64>,
    pub limit: u32,
}

/// An open database.
pub struct Store {
    conn: Connection,
    ctx: ErrCtx,
    users: UsersTable,
    /// Quoted identifiers for the users mapping, made once.
    q: Quoted,
}

/// What error messages need to know about the database.
struct ErrCtx {
    path: PathBuf,
    busy_timeout: Duration,
}

/// Start a write transaction, taking the write lock up front: a deferred transaction that
/// upgrades later can fail with SQLITE_BUSY without waiting for busy_timeout.
fn begin<'c>(conn: &'c mut Connection, ctx: &ErrCtx) -> Result<rusqlite::Transaction<'c>> {
    conn.transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(|e| ctx.err(e))
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
        anyhow::Error::new(e).context(format!("database {}", self.path.display()))
    }
}

struct Quoted {
    table: String,
    id: String,
    email: String,
    password: String,
    /// `SELECT id, email, password FROM users`, mapped: the start of every user query.
    select_users: String,
    /// A token by id and digest, with its user's current email and password hash.
    select_token: String,
}

impl Quoted {
    fn new(users: &UsersTable) -> Quoted {
        let (table, id, email, password) = (
            quote(&users.table),
            quote(&users.id_column),
            quote(&users.email_column),
            quote(&users.password_column),
        );
        Quoted {
            select_users: format!("SELECT {id}, {email}, {password} FROM {table}"),
            select_token: format!(
                "SELECT t.user_id, u.{email}, u.{password}, t.binding, t.created_at, t.expires_at,
                        t.used_at, t.revoked_at, t.revoked_reason
                   FROM pwreset_tokens t LEFT JOIN {table} u ON u.{id} = t.user_id
                  WHERE t.id = ?1 AND t.digest = ?2"
            ),
            table,
            id,
            email,
            password,
        }
    }
}

fn quote(ident: &str) -> String {
    // Identifiers are validated as [A-Za-z_][A-Za-z0-9_]* at config load; quoting still keeps
    // keywords like "order" or "user" usable as names.
    format!("\"{}\"", ident.replace('"', "\"\""))
}

impl Store {
    /// Open the database at `config.database`.
    pub fn open(config: &Config, access: Access) -> Result<Store> {
        let path = config.database.clone();
        let usage = match access {
            Access::Create => crate::trust::DbUse::Create,
            Access::Write => crate::trust::DbUse::Write,
            Access::Read => crate::trust::DbUse::Read,
        };
        let exists = crate::trust::check_database_path(&path, usage)?.exists;
        if !exists && access != Access::Create {
            return Err(fail(
                Exit::Config,
                format!(
                    "database {} does not exist; run `pwreset init` to create it, or point --db / PWRESET_DB / `database` at the right file",
                    path.display()
                ),
            ));
        }
        if !exists {
            create_file(&path)?;
        }
        // Readers (verify, user list, audit) open read-only: they cannot write by mistake, and
        // SQLite skips the work a writer's open needs.
        let flags = match access {
            Access::Read => OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            _ => OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        };
        let conn = Connection::open_with_flags(&path, flags).map_err(|e| open_error(&path, e))?;
        let users = config.users.clone();
        let q = Quoted::new(&users);
        let store = Store {
            conn,
            ctx: ErrCtx {
                path,
                busy_timeout: config.busy_timeout,
            },
            users,
            q,
        };
        store
            .conn
            .busy_timeout(config.busy_timeout)
            .map_err(|e| store.ctx.err(e))?;
        store
            .conn
            .execute_batch("PRAGMA foreign_keys = ON")
            .map_err(|e| store.ctx.err(e))?;

        let version: i64 = store
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(|e| store.ctx.err(e))?;
        if version > SCHEMA_VERSION {
            return Err(fail(
                Exit::Config,
                format!(
                    "database {} has schema version {version}, newer than this pwreset understands ({SCHEMA_VERSION}); upgrade pwreset",
                    store.ctx.path.display()
                ),
            ));
        }
        if access != Access::Create && version < SCHEMA_VERSION {
            return Err(fail(
                Exit::Config,
                format!(
                    "database {} is not initialised for this version of pwreset (schema {version}, need {SCHEMA_VERSION}); run `pwreset init`",
                    store.ctx.path.display()
                ),
            ));
        }
        if access != Access::Read {
            // Writers use synchronous=NORMAL: in WAL mode it is durable against application
            // crashes and keeps a commit to one fsync at checkpoint time.
            store
                .conn
                .execute_batch("PRAGMA synchronous = NORMAL")
                .map_err(|e| store.ctx.err(e))?;
        }
        register_sql_function(&store.conn)?;
        Ok(store)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.ctx.path
    }

    // ---- init and schema ---------------------------------------------------------------

    /// Create or migrate the tool's tables, and create the default users table if it is
    /// missing. Returns the schema version before and after.
    pub fn migrate(&mut self) -> Result<(i64, i64)> {
        // WAL lets readers (verify) run while a writer (purge, bulk request) works.
        let mode: String = self
            .conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(|e| self.ctx.err(e))?;
        if !mode.eq_ignore_ascii_case("wal") {
            anyhow::bail!(
                "database {} could not be switched to WAL mode (got {mode})",
                self.ctx.path.display()
            );
        }
        let default_mapping = self.users == UsersTable::default();
        let users_exist = self.table_exists(&self.users.table.clone())?;
        let tx = begin(&mut self.conn, &self.ctx)?;
        let before: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(before as usize) {
            tx.execute_batch(sql)
                .with_context(|| format!("migrating the schema to version {}", i + 1))?;
        }
        if !users_exist && default_mapping {
            tx.execute_batch(OWN_USERS_TABLE)?;
        }
        tx.execute_batch(&format!("PRAGMA user_version = {SCHEMA_VERSION}"))?;
        tx.commit().map_err(|e| self.ctx.err(e))?;
        Ok((before, SCHEMA_VERSION))
    }

    fn table_exists(&self, table: &str) -> Result<bool> {
        let n: i64 = self
            .conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type IN ('table', 'view') AND name = ?1",
                [table],
                |r| r.get(0),
            )
            .map_err(|e| self.ctx.err(e))?;
        Ok(n > 0)
    }

    fn columns(&self, table: &str) -> Result<Vec<String>> {
        let mut stmt = self
            .conn
            .prepare("SELECT name FROM pragma_table_info(?1)")
            .map_err(|e| self.ctx.err(e))?;
        let cols = stmt
            .query_map([table], |r| r.get::<_, String>(0))
            .map_err(|e| self.ctx.err(e))?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(|e| self.ctx.err(e))?;
        Ok(cols)
    }

    /// Check that the configured users table and its columns exist; 78 naming what is missing.
    pub fn check_users_mapping(&self, source: &crate::config::Source) -> Result<()> {
        let u = &self.users;
        if !self.table_exists(&u.table)? {
            return Err(fail(
                Exit::Config,
                format!(
                    "{source}: users.table: table {:?} does not exist in {}; create it, or set [users] table to the application's users table",
                    u.table,
                    self.ctx.path.display()
                ),
            ));
        }
        let cols = self.columns(&u.table)?;
        let missing: Vec<String> = [
            ("users.id_column", &u.id_column),
            ("users.email_column", &u.email_column),
            ("users.password_column", &u.password_column),
        ]
        .into_iter()
        .filter(|(_, c)| !cols.iter().any(|have| have.eq_ignore_ascii_case(c)))
        .map(|(key, c)| format!("{key} = {c:?}"))
        .collect();
        if !missing.is_empty() {
            return Err(fail(
                Exit::Config,
                format!(
                    "{source}: table {:?} has no column for {} (it has: {})",
                    u.table,
                    missing.join(", "),
                    cols.join(", ")
                ),
            ));
        }
        Ok(())
    }

    /// Whether the users table is pwreset's own (made by `init`), which `user add` may write.
    pub fn owns_users_table(&self) -> Result<bool> {
        if self.users != UsersTable::default() {
            return Ok(false);
        }
        Ok(self
            .columns(&self.users.table)?
            .iter()
            .any(|c| c == "email_key"))
    }

    // ---- users ---------------------------------------------------------------------------

    /// Add a user to the tool's own table. Fails with 65 when the address matches an existing
    /// one under NFKC + case folding.
    pub fn add_user(
        &mut self,
        email: &str,
        name: Option<&str>,
        now: i64,
        actor: &str,
    ) -> Result<i64> {
        let key = crate::email::key(email);
        let tx = begin(&mut self.conn, &self.ctx)?;
        let existing: Option<String> = tx
            .query_row(
                "SELECT email FROM users WHERE email_key = ?1",
                [&key],
                |r| r.get(0),
            )
            .optional()?;
        if let Some(existing) = existing {
            return Err(fail(
                Exit::DataErr,
                format!(
                    "a user with address {} already exists (addresses match regardless of case and Unicode look-alike forms)",
                    crate::ui::escape(&existing)
                ),
            ));
        }
        tx.execute(
            "INSERT INTO users (email, email_key, name, password_hash, created_at) VALUES (?1, ?2, ?3, NULL, ?4)",
            params![email, key, name, now],
        )?;
        let id = tx.last_insert_rowid();
        audit(
            &tx,
            now,
            actor,
            "user_add",
            Some(id),
            Some(email),
            "ok",
            None,
        )?;
        tx.commit().map_err(|e| self.ctx.err(e))?;
        Ok(id)
    }

    /// Find a user by address under NFKC + case folding. More than one match (possible only in
    /// an application's table) is an error rather than a guess.
    pub fn find_user(&self, email: &str) -> Result<Option<User>> {
        let key = crate::email::key(email);
        let sql = if self.owns_users_table()? {
            format!("{} WHERE email_key = ?1 LIMIT 2", self.q.select_users)
        } else {
            // An application's table has no key column; fold in SQL (a scan, see README).
            format!(
                "{} WHERE pwreset_email_key({}) = ?1 LIMIT 2",
                self.q.select_users, self.q.email
            )
        };
        let mut found = self.users(&sql, params![key])?;
        match found.len() {
            0 => Ok(None),
            1 => Ok(found.pop()),
            _ => Err(fail(
                Exit::DataErr,
                format!(
                    "{} matches more than one user in table {:?} (addresses differing only in case or Unicode form); fix the table so each address is unique",
                    crate::ui::escape(email),
                    self.users.table
                ),
            )),
        }
    }

    /// Up to `limit` users with id greater than `after`, in id order: bulk runs page through
    /// the table with this, so memory stays bounded however many users there are.
    pub fn users_after(&self, after: i64, limit: usize) -> Result<Vec<User>> {
        let sql = format!(
            "{} WHERE {id} > ?1 ORDER BY {id} LIMIT ?2",
            self.q.select_users,
            id = self.q.id
        );
        self.users(&sql, params![after, limit as i64])
    }

    /// The users a query on the users table returns.
    fn users(&self, sql: &str, params: impl rusqlite::Params) -> Result<Vec<User>> {
        let mut stmt = self.conn.prepare_cached(sql).map_err(|e| self.ctx.err(e))?;
        let rows = stmt
            .query_map(params, user_from_row)
            .map_err(|e| self.ctx.err(e))?;
        rows.collect::<rusqlite::Result<Vec<User>>>()
            .map_err(|e| self.ctx.err(e))
    }

    /// How many users there are (for the progress bar of `request --all`).
    pub fn count_users(&self) -> Result<u64> {
        let sql = format!("SELECT count(*) FROM {}", self.q.table);
        let n: i64 = self
            .conn
            .query_row(&sql, [], |r| r.get(0))
            .map_err(|e| self.ctx.err(e))?;
        Ok(n.max(0) as u64)
    }

    /// Every user with a summary, in id order, handed to `each` one at a time.
    pub fn list_users(
        &self,
        now: i64,
        each: &mut dyn FnMut(UserSummary) -> Result<()>,
    ) -> Result<()> {
        let q = &self.q;
        let sql = format!(
            "SELECT u.{id}, u.{email}, coalesce(u.{pw}, '') <> '',
                    (SELECT count(*) FROM pwreset_tokens t
                      WHERE t.user_id = u.{id} AND t.used_at IS NULL AND t.revoked_at IS NULL
                        AND t.expires_at > ?1)
               FROM {t} u ORDER BY u.{id}",
            id = q.id,
            email = q.email,
            pw = q.password,
            t = q.table
        );
        let mut stmt = self.conn.prepare(&sql).map_err(|e| self.ctx.err(e))?;
        let mut rows = stmt.query([now]).map_err(|e| self.ctx.err(e))?;
        while let Some(r) = rows.next().map_err(|e| self.ctx.err(e))? {
            each(UserSummary {
                id: r.get(0)?,
                email: text_lossy(r, 1)?,
                has_password: r.get(2)?,
                open_tokens: r.get(3)?,
            })?;
        }
        Ok(())
    }

    // ---- tokens --------------------------------------------------------------------------

    /// Store tokens for several users in one transaction: for each, check the throttle, revoke
    /// the user's older open tokens, insert the new digest, and write the audit row.
    pub fn issue_tokens(
        &mut self,
        batch: &[NewToken<'_>],
        now: i64,
        ttl: Duration,
        throttle: Option<Duration>,
        actor: &str,
    ) -> Result<Vec<Issued>> {
        let expires_at = now.saturating_add(i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX / 2));
        let throttle = throttle
            .filter(|t| !t.is_zero())
            .map(|t| t.as_secs() as i64);
        let tx = begin(&mut self.conn, &self.ctx)?;
        let mut out = Vec::with_capacity(batch.len());
        {
            // One indexed look at the whole chunk's existing tokens: in a bulk run most users
            // have none, and then neither the throttle nor the revocation needs a statement.
            let mut previous: std::collections::HashMap<i64, (Option<i64>, bool)> =
                std::collections::HashMap::new();
            for ids in batch.chunks(500) {
                let placeholders = vec!["?"; ids.len()].join(",");
                let mut stmt = tx.prepare(&format!(
                    "SELECT user_id,
                            -- a link that was never delivered does not count towards the throttle
                            max(CASE WHEN revoked_reason IS NOT 'undelivered' THEN created_at END),
                            max(used_at IS NULL AND revoked_at IS NULL AND dead_at > ?1)
                       FROM pwreset_tokens WHERE user_id IN ({placeholders}) GROUP BY user_id"
                ))?;
                let mut params: Vec<rusqlite::types::Value> = Vec::with_capacity(ids.len() + 1);
                params.push(now.into());
                params.extend(ids.iter().map(|t| t.user.id.into()));
                let mut rows = stmt.query(rusqlite::params_from_iter(params))?;
                while let Some(r) = rows.next()? {
                    previous.insert(r.get(0)?, (r.get(1)?, r.get(2)?));
                }
            }
            let mut revoke = tx.prepare_cached(
                "UPDATE pwreset_tokens
                    SET revoked_at = ?2, revoked_reason = 'superseded', dead_at = min(dead_at, ?2)
                  WHERE user_id = ?1 AND used_at IS NULL AND revoked_at IS NULL AND dead_at > ?2",
            )?;
            let mut insert = tx.prepare_cached(
                "INSERT INTO pwreset_tokens (digest, user_id, binding, created_at, expires_at, dead_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
            )?;
            let mut audit_row = tx.prepare_cached(AUDIT_INSERT)?;
            for item in batch {
                let prev = previous.get(&item.user.id).copied();
                if let (Some(throttle), Some((Some(last), _))) = (throttle, prev) {
                    let retry_at = last.saturating_add(throttle);
                    if retry_at > now {
                        audit_row.execute(params![
                            now,
                            actor,
                            "request",
                            item.user.id,
                            &item.user.email,
                            "throttled",
                            None::<&str>
                        ])?;
                        out.push(Issued::Throttled { retry_at });
                        continue;
                    }
                }
                if prev.is_some_and(|(_, open)| open) {
                    revoke.execute(params![item.user.id, now])?;
                }
                let binding =
                    crate::token::binding(&item.user.email, item.user.password_hash.as_deref());
                insert.execute(params![
                    item.digest.as_bytes(),
                    item.user.id,
                    &binding[..],
                    now,
                    expires_at
                ])?;
                let id = tx.last_insert_rowid();
                audit_row.execute(params![
                    now,
                    actor,
                    "request",
                    item.user.id,
                    &item.user.email,
                    "created",
                    None::<&str>
                ])?;
                // A user listed twice in one chunk: the second sees the first's token.
                previous.insert(item.user.id, (Some(now), true));
                out.push(Issued::Created { expires_at, id });
            }
        }
        tx.commit().map_err(|e| self.ctx.err(e))?;
        Ok(out)
    }

    /// Settings for long bulk runs (purge, request --all): a larger page cache, so index pages
    /// touched by one batch are still in memory for the next, and fewer, larger checkpoints.
    pub fn tune_for_bulk(&self) -> Result<()> {
        self.conn
            .execute_batch("PRAGMA cache_size = -32768; PRAGMA wal_autocheckpoint = 16384;")
            .map_err(|e| self.ctx.err(e))
    }

    /// Checkpoint the WAL into the database without waiting for readers, after a bulk run.
    pub fn checkpoint(&self) -> Result<()> {
        self.conn
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
            .map_err(|e| self.ctx.err(e))
    }

    /// Revoke a token whose email could not be delivered, and record why.
    pub fn revoke_undelivered(
        &mut self,
        token_id: i64,
        user: &User,
        reason: &str,
        now: i64,
        actor: &str,
    ) -> Result<()> {
        let tx = begin(&mut self.conn, &self.ctx)?;
        tx.execute(
            "UPDATE pwreset_tokens SET revoked_at = ?2, revoked_reason = 'undelivered', dead_at = min(dead_at, ?2)
              WHERE id = ?1 AND used_at IS NULL AND revoked_at IS NULL",
            params![token_id, now],
        )?;
        audit(
            &tx,
            now,
            actor,
            "request",
            Some(user.id),
            Some(&user.email),
            "failed",
            Some(reason),
        )?;
        tx.commit().map_err(|e| self.ctx.err(e))?;
        Ok(())
    }

    /// Look a token up by id and secret digest, with its user's current address. A row whose
    /// digest differs is as good as no row: the secret is wrong.
    pub fn lookup_token(&self, token_id: i64, digest: &Digest) -> Result<Option<TokenRecord>> {
        let sql = &self.q.select_token;
        let mut stmt = self.conn.prepare(sql).map_err(|e| self.ctx.err(e))?;
        stmt.query_row(params![token_id, digest.as_bytes()], token_from_row)
            .optional()
            .map_err(|e| self.ctx.err(e))
    }

    /// Set a new password hash with a token, in one transaction: re-check the token, write the
    /// hash into the mapped password column, mark the token used, revoke the user's other open
    /// tokens, write the audit row. When several processes race with one token, the write lock
    /// orders them and exactly one sees it valid.
    pub fn consume_token(
        &mut self,
        token_id: i64,
        digest: &Digest,
        new_hash: &str,
        now: i64,
        actor: &str,
    ) -> Result<Consumed> {
        let q = &self.q;
        let update_user = format!(
            "UPDATE {table} SET {pw} = ?2 WHERE {id} = ?1",
            table = q.table,
            pw = q.password,
            id = q.id
        );
        let tx = begin(&mut self.conn, &self.ctx)?;
        let Some(rec) = tx
            .query_row(
                &q.select_token,
                params![token_id, digest.as_bytes()],
                token_from_row,
            )
            .optional()?
        else {
            return Ok(Consumed::NotUsable(Status::Unknown));
        };
        let status = rec.status(now);
        if status != Status::Valid {
            return Ok(Consumed::NotUsable(status));
        }
        let changed = tx.execute(&update_user, params![rec.user_id, new_hash])?;
        if changed != 1 {
            anyhow::bail!(
                "updating the password of user {} changed {changed} rows; nothing was committed",
                rec.user_id
            );
        }
        tx.execute(
            "UPDATE pwreset_tokens SET used_at = ?2, dead_at = min(dead_at, ?2) WHERE id = ?1",
            params![token_id, now],
        )?;
        tx.execute(
            "UPDATE pwreset_tokens
                SET revoked_at = ?2, revoked_reason = 'password reset', dead_at = min(dead_at, ?2)
              WHERE user_id = ?1 AND used_at IS NULL AND revoked_at IS NULL",
            params![rec.user_id, now],
        )?;
        audit(
            &tx,
            now,
            actor,
            "reset",
            Some(rec.user_id),
            rec.email.as_deref(),
            "ok",
            None,
        )?;
        tx.commit().map_err(|e| self.ctx.err(e))?;
        Ok(Consumed::Changed {
            user_id: rec.user_id,
        })
    }

    /// Record a reset that did not happen (policy refusals, a token that lost a race).
    pub fn audit_reset_failed(
        &mut self,
        user_id: Option<i64>,
        email: Option<&str>,
        outcome: &str,
        detail: &str,
        now: i64,
        actor: &str,
    ) -> Result<()> {
        let tx = begin(&mut self.conn, &self.ctx)?;
        audit(
            &tx,
            now,
            actor,
            "reset_failed",
            user_id,
            email,
            outcome,
            Some(detail),
        )?;
        tx.commit().map_err(|e| self.ctx.err(e))?;
        Ok(())
    }

    /// The current password hash of a user, for "not the same as the current password".
    pub fn user_by_id(&self, id: i64) -> Result<Option<User>> {
        let sql = format!("{} WHERE {} = ?1", self.q.select_users, self.q.id);
        Ok(self.users(&sql, params![id])?.pop())
    }

    // ---- purge ---------------------------------------------------------------------------

    /// Count what a purge with this cutoff would delete (for `--dry-run`), using the index.
    pub fn count_dead(&self, cutoff: i64) -> Result<PurgeCounts> {
        self.conn
            .query_row(
                "SELECT count(*) - count(used_at) - count(CASE WHEN used_at IS NULL THEN revoked_at END),
                        count(used_at),
                        count(CASE WHEN used_at IS NULL THEN revoked_at END)
                   FROM pwreset_tokens WHERE dead_at <= ?1",
                [cutoff],
                |r| {
                    Ok(PurgeCounts {
                        expired: r.get::<_, i64>(0)? as u64,
                        used: r.get::<_, i64>(1)? as u64,
                        revoked: r.get::<_, i64>(2)? as u64,
                    })
                },
            )
            .map_err(|e| self.ctx.err(e))
    }

    /// Delete up to `limit` dead tokens with `dead_at <= cutoff` in one short transaction.
    /// Returns what was deleted; zero means done.
    pub fn purge_batch(&mut self, cutoff: i64, limit: u32) -> Result<PurgeCounts> {
        let tx = begin(&mut self.conn, &self.ctx)?;
        let mut counts = PurgeCounts::default();
        {
            let mut stmt = tx.prepare_cached(
                "DELETE FROM pwreset_tokens WHERE id IN
                    (SELECT id FROM pwreset_tokens WHERE dead_at <= ?1 ORDER BY dead_at LIMIT ?2)
                 RETURNING used_at IS NOT NULL, revoked_at IS NOT NULL",
            )?;
            let mut rows = stmt.query(params![cutoff, limit])?;
            while let Some(r) = rows.next()? {
                if r.get::<_, bool>(0)? {
                    counts.used += 1;
                } else if r.get::<_, bool>(1)? {
                    counts.revoked += 1;
                } else {
                    counts.expired += 1;
                }
            }
        }
        tx.commit().map_err(|e| self.ctx.err(e))?;
        Ok(counts)
    }

    /// Record a finished purge.
    pub fn audit_purge(
        &mut self,
        counts: PurgeCounts,
        elapsed: Duration,
        dry_run: bool,
        now: i64,
        actor: &str,
    ) -> Result<()> {
        let tx = begin(&mut self.conn, &self.ctx)?;
        let detail = format!(
            "purged {} ({} expired, {} used, {} revoked) in {:.1}s{}",
            counts.total(),
            counts.expired,
            counts.used,
            counts.revoked,
            elapsed.as_secs_f64(),
            if dry_run { " (dry run)" } else { "" }
        );
        audit(&tx, now, actor, "purge", None, None, "ok", Some(&detail))?;
        tx.commit().map_err(|e| self.ctx.err(e))?;
        Ok(())
    }

    // ---- audit ---------------------------------------------------------------------------

    /// Audit rows, newest first.
    pub fn audit_entries(
        &self,
        filter: &AuditFilter,
        each: &mut dyn FnMut(AuditEntry) -> Result<()>,
    ) -> Result<()> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT at, actor, action, user_id, email, outcome, detail FROM pwreset_audit
                  WHERE (?1 IS NULL OR user_id = ?1) AND (?2 IS NULL OR at >= ?2)
                  ORDER BY at DESC, id DESC LIMIT ?3",
            )
            .map_err(|e| self.ctx.err(e))?;
        let mut rows = stmt
            .query(params![filter.user_id, filter.since, filter.limit])
            .map_err(|e| self.ctx.err(e))?;
        while let Some(r) = rows.next().map_err(|e| self.ctx.err(e))? {
            each(AuditEntry {
                at: r.get(0)?,
                actor: r.get(1)?,
                action: r.get(2)?,
                user_id: r.get(3)?,
                email: r.get(4)?,
                outcome: r.get(5)?,
                detail: r.get(6)?,
            })?;
        }
        Ok(())
    }
}

const AUDIT_INSERT: &str =
    "INSERT INTO pwreset_audit (at, actor, action, user_id, email, outcome, detail)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";

#[allow(clippy::too_many_arguments)]
fn audit(
    tx: &rusqlite::Transaction<'_>,
    at: i64,
    actor: &str,
    action: &str,
    user_id: Option<i64>,
    email: Option<&str>,
    outcome: &str,
    detail: Option<&str>,
) -> rusqlite::Result<()> {
    let mut stmt = tx.prepare_cached(AUDIT_INSERT)?;
    stmt.execute(params![at, actor, action, user_id, email, outcome, detail])?;
    Ok(())
}

fn user_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<User> {
    Ok(User {
        id: r.get(0)?,
        email: text_lossy(r, 1)?,
        password_hash: r
            .get::<_, Option<String>>(2)
            .ok()
            .flatten()
            .filter(|s| !s.is_empty()),
    })
}

fn token_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<TokenRecord> {
    let email: Option<String> = match r.get_ref(1)? {
        rusqlite::types::ValueRef::Null => None,
        _ => Some(text_lossy(r, 1)?),
    };
    let password: Option<String> = r
        .get::<_, Option<String>>(2)
        .ok()
        .flatten()
        .filter(|s| !s.is_empty());
    let stored: Vec<u8> = r.get(3)?;
    let binding_ok = match &email {
        Some(e) => crate::token::binding(e, password.as_deref())[..] == stored[..],
        None => false,
    };
    Ok(TokenRecord {
        user_id: r.get(0)?,
        email,
        created_at: r.get(4)?,
        expires_at: r.get(5)?,
        used_at: r.get(6)?,
        revoked_at: r.get(7)?,
        revoked_reason: r.get(8)?,
        binding_ok,
    })
}

/// Text from a column that an application may have filled with anything (even blobs).
fn text_lossy(r: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<String> {
    Ok(match r.get_ref(i)? {
        rusqlite::types::ValueRef::Text(t) | rusqlite::types::ValueRef::Blob(t) => {
            String::from_utf8_lossy(t).into_owned()
        }
        rusqlite::types::ValueRef::Integer(n) => n.to_string(),
        rusqlite::types::ValueRef::Real(f) => f.to_string(),
        rusqlite::types::ValueRef::Null => String::new(),
    })
}

/// Make `pwreset_email_key(text)` available in SQL, for matching in an application's users
/// table, which has no key column of ours.
fn register_sql_function(conn: &rusqlite::Connection) -> anyhow::Result<()> {
    use rusqlite::functions::FunctionFlags;
    conn.create_scalar_function(
        "pwreset_email_key",
        1,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
        |ctx| {
            Ok(match ctx.get_raw(0) {
                rusqlite::types::ValueRef::Text(t) => {
                    Some(crate::email::key(&String::from_utf8_lossy(t)))
                }
                _ => None,
            })
        },
    )?;
    Ok(())
}

/// Create the database file with mode 0600, and its folder (0700) when missing.
fn create_file(path: &Path) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        crate::config::create_private_dir(dir, "the database")?;
    }
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(fail(
            if e.kind() == std::io::ErrorKind::PermissionDenied {
                Exit::NoPerm
            } else {
                Exit::CantCreate
            },
            format!("cannot create database {}: {e}", path.display()),
        )),
    }
}

fn open_error(path: &Path, e: rusqlite::Error) -> anyhow::Error {
    fail(
        Exit::CantCreate,
        format!("cannot open database {}: {e}", path.display()),
    )
}
