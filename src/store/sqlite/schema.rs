//! Opening the file, the schema and its migrations, and the check of the users mapping.

use super::{ErrCtx, Quoted, SqliteStore, begin};
use crate::config::Config;
use crate::error::{Exit, fail};
use crate::store::{Access, Migrated};
use anyhow::{Context, Result};
use rusqlite::{Connection, OpenFlags};
use std::path::Path;

/// The schema version this build writes. Migrations run forward from the stored version.
pub const SCHEMA_VERSION: i64 = 5;

/// Migration `i` takes the schema from version `i` to `i + 1`.
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
    // 1 -> 2: the request throttle becomes one row per user, decided by a conditional upsert on
    // its key rather than by a look at the tokens first; seeded from the tokens so a throttle in
    // force stays in force.
    "CREATE TABLE IF NOT EXISTS pwreset_throttle (
        user_id NOT NULL PRIMARY KEY,
        last_at INTEGER NOT NULL
    ) WITHOUT ROWID;
    INSERT OR REPLACE INTO pwreset_throttle (user_id, last_at)
        SELECT user_id, max(created_at) FROM pwreset_tokens
         WHERE revoked_reason IS NOT 'undelivered' GROUP BY user_id;",
    // 2 -> 3: runs, and links that are handed over or released. A run (a `request`, a `serve`
    // process) registers itself; its links are pending until handed over (a mailed one is
    // marked; a printed batch moves the run's `printed_upto`), and a run that ends, or is found
    // dead, releases the rest. The throttle row remembers which run moved it. Tokens from
    // before have no run: they count as handed over.
    "CREATE TABLE IF NOT EXISTS pwreset_runs (
        id           INTEGER PRIMARY KEY AUTOINCREMENT,
        command      TEXT    NOT NULL,
        -- what a request was asked to do, so that the same command run again continues it
        job          TEXT,
        -- where pid means something (boot and PID namespace), the pid and its start time
        host         TEXT    NOT NULL,
        pid          INTEGER NOT NULL,
        proc_start   INTEGER NOT NULL,
        actor        TEXT    NOT NULL,
        started_at   INTEGER NOT NULL,
        heartbeat_at INTEGER NOT NULL,
        -- every token of the run has a larger id: where ending the run looks
        token_floor  INTEGER NOT NULL,
        -- the run's printed links are handed over up to this batch
        printed_upto INTEGER NOT NULL DEFAULT 0,
        ended_at     INTEGER,
        outcome      TEXT
    );
    CREATE INDEX IF NOT EXISTS pwreset_runs_open ON pwreset_runs(id) WHERE ended_at IS NULL;
    CREATE INDEX IF NOT EXISTS pwreset_runs_job ON pwreset_runs(job, id);
    ALTER TABLE pwreset_tokens ADD COLUMN run_id INTEGER;
    ALTER TABLE pwreset_tokens ADD COLUMN batch INTEGER;
    ALTER TABLE pwreset_tokens ADD COLUMN handed_over_at INTEGER;
    ALTER TABLE pwreset_throttle ADD COLUMN run_id INTEGER;",
    // 3 -> 4: the web limits that several `serve` processes share (failed tries per link,
    // forgot-page requests per address), counted here rather than in each process. The key is
    // a SHA-256 of the limit's name and its subject, never the address or token itself.
    "CREATE TABLE IF NOT EXISTS pwreset_limits (
        key_hash   BLOB    NOT NULL PRIMARY KEY,
        hits       INTEGER NOT NULL,
        -- the end of the window that began with the first hit; purge-expired deletes the past
        expires_at INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX IF NOT EXISTS pwreset_limits_expires ON pwreset_limits(expires_at);",
    // 4 -> 5: keys several `serve` processes must share, such as the one the CSRF values are
    // signed with, so a form fetched from one instance can be posted to another. A row is
    // written once, by whichever process asks first; deleting it rotates the key.
    "CREATE TABLE IF NOT EXISTS pwreset_secrets (
        name       TEXT    NOT NULL PRIMARY KEY,
        value      BLOB    NOT NULL,
        created_at INTEGER NOT NULL
    ) WITHOUT ROWID;",
];

/// The ledger of applied migrations: one row per version, the same on every backend.
const LEDGER: &str = "CREATE TABLE IF NOT EXISTS pwreset_schema (
    version    INTEGER PRIMARY KEY,
    applied_at INTEGER NOT NULL
)";

/// The tool's own users table, created by `init` when the default table does not exist.
/// AUTOINCREMENT: an id is never handed out twice, so a deleted user's old token can never come
/// to belong to a new user.
const OWN_USERS_TABLE: &str = "CREATE TABLE users (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    email         TEXT    NOT NULL,
    email_key     TEXT    NOT NULL UNIQUE,
    name          TEXT,
    password_hash TEXT,
    created_at    INTEGER NOT NULL
)";

/// Rebuild an own users table made before AUTOINCREMENT, and start its ids after any id a token
/// was ever issued for.
const OWN_USERS_AUTOINCREMENT: &str = "
    CREATE TABLE pwreset_users_v2 (
        id            INTEGER PRIMARY KEY AUTOINCREMENT,
        email         TEXT    NOT NULL,
        email_key     TEXT    NOT NULL UNIQUE,
        name          TEXT,
        password_hash TEXT,
        created_at    INTEGER NOT NULL
    );
    INSERT INTO pwreset_users_v2 (id, email, email_key, name, password_hash, created_at)
        SELECT id, email, email_key, name, password_hash, created_at FROM users;
    DROP TABLE users;
    ALTER TABLE pwreset_users_v2 RENAME TO users;";

pub(super) fn open(config: &Config, access: Access) -> Result<SqliteStore> {
    let path = config
        .database
        .sqlite_path()
        .context("the SQLite backend was given a server URL")?
        .to_owned();
    let usage = match access {
        Access::Create => crate::trust::DbUse::Create,
        Access::Write => crate::trust::DbUse::Write,
        Access::Read => crate::trust::DbUse::Read,
    };
    let check = crate::trust::check_database_path(&path, usage)?;
    let exists = check.exists;
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
    let conn = Connection::open_with_flags(&path, flags).map_err(|e| {
        fail(
            Exit::CantCreate,
            format!("cannot open database {}: {e}", path.display()),
        )
    })?;
    let users = config.users.clone();
    let mut store = SqliteStore {
        conn,
        q: Quoted::new(&users, false),
        ctx: ErrCtx {
            path,
            busy_timeout: config.busy_timeout,
        },
        users,
        own_users: false,
        read_only: access == Access::Read,
        tokens_only: config.ldap.is_some(),
        created: !exists,
        warnings: check.warnings,
        purge: None,
    };
    let ctx = &store.ctx;
    store
        .conn
        .busy_timeout(config.busy_timeout)
        .map_err(|e| ctx.err(e))?;
    if access != Access::Read {
        // Read-only commands (verify at every support call) write nothing for it to guard.
        store
            .conn
            .execute_batch("PRAGMA foreign_keys = ON")
            .map_err(|e| ctx.err(e))?;
    }

    let version = stored_version(&store.conn).map_err(|e| ctx.err(e))?;
    if version > SCHEMA_VERSION {
        return Err(fail(
            Exit::Config,
            format!(
                "database {} has schema version {version}, newer than this pwreset understands ({SCHEMA_VERSION}); upgrade pwreset",
                ctx.path.display()
            ),
        ));
    }
    if access != Access::Create && version < SCHEMA_VERSION {
        return Err(fail(
            Exit::Config,
            format!(
                "database {} is not initialised for this version of pwreset (schema {version}, need {SCHEMA_VERSION}); run `pwreset init`",
                ctx.path.display()
            ),
        ));
    }
    if access != Access::Read {
        // Writers use synchronous=NORMAL: in WAL mode it is durable against application
        // crashes and keeps a commit to one fsync at checkpoint time.
        store
            .conn
            .execute_batch("PRAGMA synchronous = NORMAL")
            .map_err(|e| ctx.err(e))?;
    }
    store.own_users = owns_users_table(&store)?;
    store.q = Quoted::new(&store.users, store.own_users);
    Ok(store)
}

/// The schema version: the newest row of the ledger, or for databases from before the ledger,
/// SQLite's `user_version`.
fn stored_version(conn: &Connection) -> rusqlite::Result<i64> {
    // The schema in memory answers whether the ledger exists, without a statement of its own.
    if conn.table_exists(None::<&str>, "pwreset_schema")? {
        return conn.query_row(
            "SELECT coalesce(max(version), 0) FROM pwreset_schema",
            [],
            |r| r.get(0),
        );
    }
    conn.query_row("PRAGMA user_version", [], |r| r.get(0))
}

pub(super) fn migrate(s: &mut SqliteStore) -> Result<Migrated> {
    // WAL lets readers (verify) run while a writer (purge, bulk request) works.
    let mode: String = s
        .conn
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .map_err(|e| s.ctx.err(e))?;
    if !mode.eq_ignore_ascii_case("wal") {
        anyhow::bail!(
            "database {} could not be switched to WAL mode (got {mode})",
            s.ctx.path.display()
        );
    }
    // With the users in a directory there is no users table to make.
    let default_mapping = s.users.is_default_mapping() && !s.tokens_only;
    let users_exist = table_exists(&s.conn, &s.users.table).map_err(|e| s.ctx.err(e))?;
    let tx = begin(&mut s.conn, &s.ctx)?;
    let before = stored_version(&tx)?;
    tx.execute_batch(LEDGER)?;
    let now = crate::ui::now();
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(before as usize) {
        tx.execute_batch(sql)
            .with_context(|| format!("migrating the schema to version {}", i + 1))?;
    }
    if !users_exist && default_mapping {
        tx.execute_batch(OWN_USERS_TABLE)?;
    } else if default_mapping && has_column(&tx, "users", "email_key")? {
        let sql: String = tx.query_row(
            "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'users'",
            [],
            |r| r.get(0),
        )?;
        if !sql.to_ascii_uppercase().contains("AUTOINCREMENT") {
            tx.execute_batch(OWN_USERS_AUTOINCREMENT)
                .context("rebuilding the users table with AUTOINCREMENT ids")?;
        }
    }
    if default_mapping && has_column(&tx, "users", "email_key")? {
        // Never hand out an id that a token was issued for, even one whose row is gone.
        // (sqlite_sequence has no unique key on name: update the row, or add it.)
        let floor: i64 = tx.query_row(
            "SELECT max(coalesce((SELECT max(id) FROM users), 0),
                        coalesce((SELECT max(user_id) FROM pwreset_tokens
                                   WHERE typeof(user_id) = 'integer'), 0))",
            [],
            |r| r.get(0),
        )?;
        let updated = tx.execute(
            "UPDATE sqlite_sequence SET seq = max(seq, ?1) WHERE name = 'users'",
            [floor],
        )?;
        if updated == 0 && floor > 0 {
            tx.execute(
                "INSERT INTO sqlite_sequence (name, seq) VALUES ('users', ?1)",
                [floor],
            )?;
        }
    }
    for version in (before + 1)..=SCHEMA_VERSION {
        tx.execute(
            "INSERT OR IGNORE INTO pwreset_schema (version, applied_at) VALUES (?1, ?2)",
            rusqlite::params![version, now],
        )?;
    }
    // Kept in step with the ledger: builds from before the ledger read it, and refuse a newer
    // file rather than misread it.
    tx.execute_batch(&format!("PRAGMA user_version = {SCHEMA_VERSION}"))?;
    tx.commit().map_err(|e| s.ctx.err(e))?;
    s.own_users = owns_users_table(s)?;
    s.q = Quoted::new(&s.users, s.own_users);
    Ok(Migrated {
        created: s.created,
        before,
        after: SCHEMA_VERSION,
    })
}

fn table_exists(conn: &Connection, table: &str) -> rusqlite::Result<bool> {
    let n: i64 = conn.query_row(
        "SELECT count(*) FROM sqlite_master WHERE type IN ('table', 'view') AND name = ?1",
        [table],
        |r| r.get(0),
    )?;
    Ok(n > 0)
}

fn columns(conn: &Connection, table: &str) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare("SELECT name FROM pragma_table_info(?1)")?;
    let cols = stmt
        .query_map([table], |r| r.get::<_, String>(0))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(cols)
}

fn has_column(conn: &Connection, table: &str, column: &str) -> rusqlite::Result<bool> {
    Ok(columns(conn, table)?.iter().any(|c| c == column))
}

fn owns_users_table(s: &SqliteStore) -> Result<bool> {
    if !s.users.is_default_mapping() || s.tokens_only {
        return Ok(false);
    }
    // From the schema in memory: no statement to prepare (every command opens a store).
    s.conn
        .column_exists(None::<&str>, s.users.table.as_str(), "email_key")
        .map_err(|e| s.ctx.err(e))
}

pub(super) fn check_users_mapping(s: &SqliteStore) -> Result<()> {
    let u = &s.users;
    if !table_exists(&s.conn, &u.table).map_err(|e| s.ctx.err(e))? {
        return Err(fail(
            Exit::Config,
            format!(
                "users.table: table {:?} does not exist in {}; create it, or set [users] table to the application's users table",
                u.table,
                s.ctx.path.display()
            ),
        ));
    }
    let cols = columns(&s.conn, &u.table).map_err(|e| s.ctx.err(e))?;
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
                "table {:?} has no column for {} (it has: {})",
                u.table,
                missing.join(", "),
                cols.join(", ")
            ),
        ));
    }
    for (i, sql) in u.after_reset.iter().enumerate() {
        prepare_after_reset(&s.conn, sql).map_err(|why| {
            fail(
                Exit::Config,
                format!("users.after_reset[{i}]: {why} (in: {sql})"),
            )
        })?;
    }
    check_mapping_works(s).map_err(|why| {
        fail(
            Exit::Config,
            format!("users.table: table {:?} cannot be used: {why}", u.table),
        )
    })
}

/// What would fail later, found now: a view (a reset would fail after the password was typed),
/// an id column that is neither an integer nor text, ids that are NULL or of another type.
fn check_mapping_works(s: &SqliteStore) -> std::result::Result<(), String> {
    let u = &s.users;
    let q = &s.q;
    let db_err = |e: rusqlite::Error| e.to_string();
    let kind: String = s
        .conn
        .query_row(
            "SELECT type FROM sqlite_master WHERE name = ?1",
            [&u.table],
            |r| r.get(0),
        )
        .map_err(db_err)?;
    if kind == "view" {
        return Err(
            "it is a view, which a reset cannot write the password through; set [users] table to the table behind it"
                .into(),
        );
    }
    let declared: String = s
        .conn
        .query_row(
            "SELECT type FROM pragma_table_info(?1) WHERE name = ?2 COLLATE NOCASE",
            [&u.table, &u.id_column],
            |r| r.get(0),
        )
        .map_err(db_err)?;
    // SQLite's own affinity rules: REAL, FLOAT, DOUBLE and NUMERIC columns turn keys into
    // numbers that do not round-trip.
    let upper = declared.to_ascii_uppercase();
    if !upper.contains("INT")
        && (upper.contains("REAL")
            || upper.contains("FLOA")
            || upper.contains("DOUB")
            || upper.contains("NUM")
            || upper.contains("DEC"))
    {
        return Err(format!(
            "its id column {:?} is declared {declared}; pwreset needs an integer, UUID or text key (users.id_column)",
            u.id_column
        ));
    }
    let (nulls, others): (i64, i64) = s
        .conn
        .query_row(
            &format!(
                "SELECT count(*) FILTER (WHERE {id} IS NULL),
                        count(*) FILTER (WHERE typeof({id}) NOT IN ('integer', 'text', 'null'))
                   FROM {t}",
                id = q.id,
                t = q.table
            ),
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .map_err(db_err)?;
    if nulls > 0 {
        return Err(format!(
            "{nulls} row(s) have no id (NULL in {:?}); every user needs a key pwreset can bind its links to",
            u.id_column
        ));
    }
    if others > 0 {
        return Err(format!(
            "{others} row(s) have an id in {:?} that is neither an integer nor text",
            u.id_column
        ));
    }
    Ok(())
}

/// Prepare an `after_reset` statement without running it, and check it binds nothing but
/// `:user_id` and `:email`.
fn prepare_after_reset<'c>(
    conn: &'c Connection,
    sql: &str,
) -> std::result::Result<rusqlite::Statement<'c>, String> {
    let stmt = conn
        .prepare(sql)
        .map_err(|e| format!("does not prepare: {e}"))?;
    for i in 1..=stmt.parameter_count() {
        match stmt.parameter_name(i) {
            Some(":user_id") | Some(":email") => {}
            Some(other) => {
                return Err(format!("binds {other}; only :user_id and :email are bound"));
            }
            None => {
                return Err("has a positional parameter (?); use :user_id or :email".into());
            }
        }
    }
    Ok(stmt)
}

/// Run one `after_reset` statement in the reset's transaction.
pub(super) fn run_after_reset(
    tx: &rusqlite::Transaction<'_>,
    sql: &str,
    user_id: &crate::store::UserId,
    email: &str,
) -> rusqlite::Result<()> {
    let mut stmt = prepare_after_reset(tx, sql).map_err(rusqlite::Error::InvalidParameterName)?;
    if let Some(i) = stmt.parameter_index(":user_id")? {
        stmt.raw_bind_parameter(i, user_id)?;
    }
    if let Some(i) = stmt.parameter_index(":email")? {
        stmt.raw_bind_parameter(i, email)?;
    }
    stmt.raw_execute()?;
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
