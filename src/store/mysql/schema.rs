//! Connecting, the schema and its migrations, and the checks of the users mapping and of the
//! privileges pwreset needs.

use super::{ErrCtx, IdKind, MysqlStore, Quoted, Shared, code, quote, server_code};
use crate::config::{Config, Endpoint, Server};
use crate::error::{Exit, fail};
use crate::store::{Access, Migrated};
use anyhow::Result;
use mysql::prelude::Queryable;
use mysql::{Conn, OptsBuilder, Row, SslOpts, Value};

/// The schema version this build writes; the same numbering as the SQLite backend.
pub const SCHEMA_VERSION: i64 = 5;

/// The ledger of applied migrations: one row per version, the same on every backend.
const LEDGER: &str = "CREATE TABLE IF NOT EXISTS pwreset_schema (
    version    INT    NOT NULL PRIMARY KEY,
    applied_at BIGINT NOT NULL
) ENGINE = InnoDB";

/// Migration `i` takes the schema from version `i` to `i + 1`. DDL commits on its own in
/// MySQL, so each step is idempotent and the ledger row follows it: an init cut short is
/// finished by the next. Tables are made with IF NOT EXISTS; MySQL has no ADD COLUMN IF NOT
/// EXISTS (MariaDB has), so a column is added by a statement of its own, and one that is there
/// already counts as added. `{ID_TYPE}` is the mapped id column's type, so the join on user_id
/// uses the users table's own index.
const MIGRATIONS: &[&[&str]] = &[
    // 0 -> 1
    &[
        "CREATE TABLE IF NOT EXISTS pwreset_tokens (
            id             BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
            -- SHA-256 of the token's secret; the row is found by id (the token's public half)
            digest         BINARY(32)   NOT NULL,
            user_id        {ID_TYPE}    NOT NULL,
            binding        BINARY(16)   NOT NULL,
            created_at     BIGINT       NOT NULL,
            expires_at     BIGINT       NOT NULL,
            used_at        BIGINT       NULL,
            revoked_at     BIGINT       NULL,
            revoked_reason VARCHAR(255) NULL,
            -- when the token stopped (or will stop) being usable: least(expires, used, revoked);
            -- purge-expired walks this index
            dead_at        BIGINT       NOT NULL,
            KEY pwreset_tokens_user (user_id, created_at),
            KEY pwreset_tokens_dead (dead_at)
        ) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin",
        "CREATE TABLE IF NOT EXISTS pwreset_audit (
            id      BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
            at      BIGINT       NOT NULL,
            actor   TEXT         NOT NULL,
            action  VARCHAR(32)  NOT NULL,
            user_id VARCHAR(255) NULL,
            email   TEXT         NULL,
            outcome VARCHAR(32)  NOT NULL,
            detail  TEXT         NULL,
            KEY pwreset_audit_at (at),
            KEY pwreset_audit_user (user_id, at)
        ) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin",
    ],
    // 1 -> 2: one throttle row per user, moved by a conditional upsert. `claim` is a random
    // number written by the upsert that moved the row, so a multi-row upsert can read back
    // which of its rows it moved.
    &[
        "CREATE TABLE IF NOT EXISTS pwreset_throttle (
            user_id {ID_TYPE} NOT NULL PRIMARY KEY,
            last_at BIGINT    NOT NULL,
            claim   BIGINT    NOT NULL DEFAULT 0
        ) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin",
        "INSERT IGNORE INTO pwreset_throttle (user_id, last_at)
            SELECT user_id, MAX(created_at) FROM pwreset_tokens
             WHERE revoked_reason IS NULL OR revoked_reason <> 'undelivered'
             GROUP BY user_id",
    ],
    // 2 -> 3: runs, and links that are handed over or released. A run (a `request`, a `serve`
    // process) registers itself; its links are pending until handed over (a mailed one is
    // marked; a printed batch moves the run's `printed_upto`), and a run that ends, or is found
    // dead, releases the rest. The throttle row remembers which run moved it. Tokens from
    // before have no run: they count as handed over. No new index on the tokens: a bulk run
    // inserts thousands a second, and ending a run walks the primary key from its floor.
    &[
        "CREATE TABLE IF NOT EXISTS pwreset_runs (
            id           BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
            command      TEXT         NOT NULL,
            -- what a request was asked to do (a SHA-256 in hex), so that the same command run
            -- again continues it; indexed, so a bounded VARCHAR rather than TEXT
            job          VARCHAR(255) NULL,
            -- where pid means something (boot and PID namespace), the pid and its start time
            host         TEXT         NOT NULL,
            pid          BIGINT       NOT NULL,
            proc_start   BIGINT       NOT NULL,
            actor        TEXT         NOT NULL,
            started_at   BIGINT       NOT NULL,
            heartbeat_at BIGINT       NOT NULL,
            -- every token of the run has a larger id: where ending the run looks
            token_floor  BIGINT       NOT NULL,
            -- the run's printed links are handed over up to this batch
            printed_upto BIGINT       NOT NULL DEFAULT 0,
            ended_at     BIGINT       NULL,
            outcome      TEXT         NULL,
            -- no partial indexes here: the open runs are the NULL end of this one, and purging
            -- ended runs walks its other end
            KEY pwreset_runs_ended (ended_at, id),
            KEY pwreset_runs_job (job, id)
        ) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin",
        // Nullable columns at the end: an instant change on MariaDB 10.3+ and MySQL 8, however
        // many tokens there are.
        "ALTER TABLE pwreset_tokens ADD COLUMN run_id BIGINT NULL",
        "ALTER TABLE pwreset_tokens ADD COLUMN batch BIGINT NULL",
        "ALTER TABLE pwreset_tokens ADD COLUMN handed_over_at BIGINT NULL",
        "ALTER TABLE pwreset_throttle ADD COLUMN run_id BIGINT NULL",
    ],
    // 3 -> 4: the web limits that several `serve` processes share (failed tries per link,
    // forgot-page requests per address), counted here rather than in each process. The key is
    // a SHA-256 of the limit's name and its subject, never the address or token itself.
    &["CREATE TABLE IF NOT EXISTS pwreset_limits (
            key_hash   BINARY(32) NOT NULL PRIMARY KEY,
            hits       BIGINT     NOT NULL,
            -- the end of the window that began with the first hit; purge-expired deletes the
            -- past
            expires_at BIGINT     NOT NULL,
            KEY pwreset_limits_expires (expires_at)
        ) ENGINE = InnoDB"],
    // 4 -> 5: keys several `serve` processes must share, such as the one the CSRF values are
    // signed with, so a form fetched from one instance can be posted to another. A row is
    // written once, by whichever process asks first; deleting it rotates the key.
    &["CREATE TABLE IF NOT EXISTS pwreset_secrets (
            name       VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL PRIMARY KEY,
            value      VARBINARY(255) NOT NULL,
            created_at BIGINT         NOT NULL
        ) ENGINE = InnoDB"],
];

/// The tool's own users table, made by `init` when the default table does not exist. The key
/// column compares bytes (utf8mb4_bin): it holds the folded address, so equal keys are equal
/// addresses and nothing else is.
const OWN_USERS_TABLE: &str = "CREATE TABLE IF NOT EXISTS users (
    id            BIGINT        NOT NULL AUTO_INCREMENT PRIMARY KEY,
    email         VARCHAR(1024) NOT NULL,
    email_key     VARCHAR(760)  NOT NULL COLLATE utf8mb4_bin,
    name          VARCHAR(1024) NULL,
    password_hash VARCHAR(1024) NULL,
    created_at    BIGINT        NOT NULL,
    UNIQUE KEY users_email_key (email_key)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci";

/// Serialises concurrent `init`s: DDL cannot sit in a transaction.
const MIGRATION_LOCK: &str = "pwreset_migrate";

/// Let the kernel find a server that is gone without a word (a network partition, a frozen
/// host) in about a minute instead of the 15 or so minutes of TCP's retransmissions, for every
/// command. Not `read_timeout`: it would cut a long statement (a bulk DELETE in purge-expired)
/// on a live server. Neither of these can: TCP_USER_TIMEOUT counts only the time sent data (a
/// query, a keepalive probe) waits for the peer's kernel to acknowledge it, which a live
/// server's kernel does at once however long the statement runs, and keepalive probes go out
/// only on a connection with nothing in flight. serve's threads stuck on a dead server get
/// their connection back as an error (which `Worker::lost` turns into fresh connections).
/// The driver ignores them on a Unix socket, where no partition can happen.
fn dead_peer_bounds(opts: OptsBuilder) -> OptsBuilder {
    let opts = opts.tcp_keepalive_time_ms(Some(30_000));
    #[cfg(target_os = "linux")]
    let opts = opts
        .tcp_keepalive_probe_interval_secs(Some(10))
        .tcp_keepalive_probe_count(Some(3))
        .tcp_user_timeout_ms(Some(30_000));
    opts
}

pub(super) fn open(config: &Config, server: &Server, access: Access) -> Result<MysqlStore> {
    let ctx = ErrCtx {
        server: server.clone(),
        busy_timeout: config.busy_timeout,
    };
    if let Some(ca) = &server.ca_file {
        // Read here so a bad path is a 78 naming the key, not a TLS failure later.
        crate::store::net::ca_certificates(ca)?;
    }
    crate::store::net::install_crypto_provider();
    let password = server.password()?;
    let lock_wait = config.busy_timeout.as_secs().clamp(1, 3600);
    let opts = OptsBuilder::new()
        .user(Some(server.user.clone()))
        .pass(password.as_ref().map(|p| p.to_string()))
        .db_name(Some(server.dbname.clone()))
        .tcp_connect_timeout(Some(std::time::Duration::from_secs(server.connect_timeout)))
        // Never swap a TCP connection for a socket behind the configuration's back.
        .prefer_socket(false)
        // Never send the password in cleartext when a server asks for it (the driver's
        // default too, said here so that it stays so).
        .enable_cleartext_plugin(false)
        .init(vec![
            // utf8mb4 both ways; integers for times, so the session time zone never matters.
            "SET NAMES utf8mb4".to_owned(),
            format!("SET SESSION innodb_lock_wait_timeout = {lock_wait}"),
        ]);
    let opts = dead_peer_bounds(opts);
    let candidates: Vec<OptsBuilder> = match &server.endpoint {
        Endpoint::Tcp { host, port } if server.tls => {
            // The driver verifies the chain against the webpki roots plus database_ca_file,
            // and the host name against the certificate; neither check can be switched off.
            vec![
                opts.ip_or_hostname(Some(host.clone()))
                    .tcp_port(*port)
                    .ssl_opts(Some(
                        SslOpts::default().with_root_cert_path(server.ca_file.clone()),
                    )),
            ]
        }
        // Without TLS: only the addresses checked to be loopback, so `localhost` is not
        // looked up a second time, tried in turn like the driver tries a name's addresses.
        Endpoint::Tcp { host, port } => crate::config::loopback_addrs(host, *port, "database")?
            .into_iter()
            .map(|a| {
                opts.clone()
                    .ip_or_hostname(Some(a.ip().to_string()))
                    .tcp_port(*port)
            })
            .collect(),
        Endpoint::Socket(path) => vec![opts.socket(Some(path.to_string_lossy().into_owned()))],
    };
    let mut connected = None;
    let mut last = None;
    for candidate in candidates {
        let candidate = mysql::Opts::from(candidate);
        match Conn::new(candidate.clone()) {
            Ok(conn) => {
                connected = Some((conn, candidate));
                break;
            }
            Err(e) => {
                // Only an address that cannot be reached sends pwreset on to the next.
                let unreachable = matches!(
                    e,
                    mysql::Error::IoError(_)
                        | mysql::Error::DriverError(
                            mysql::DriverError::CouldNotConnect(_)
                                | mysql::DriverError::ConnectTimeout
                        )
                );
                last = Some(e);
                if !unreachable {
                    break;
                }
            }
        }
    }
    let (conn, opts) = match (connected, last) {
        (Some(found), _) => found,
        (None, Some(e)) => return Err(ctx.err(e.into())),
        (None, None) => anyhow::bail!("{}: no address to connect to", server.describe()),
    };
    let mut store = MysqlStore {
        conn,
        opts,
        purge_hold: None,
        s: Shared {
            q: Quoted::new(&config.users, false),
            users: config.users.clone(),
            id: IdKind::Int,
            own_users: false,
            tokens_only: config.ldap.is_some(),
            warnings: Vec::new(),
            ctx,
        },
        mariadb: None,
        purge_from: None,
    };
    if access != Access::Create {
        let version = stored_version(&mut store.conn).map_err(|e| store.s.ctx.err(e))?;
        let what = store.s.ctx.what();
        match version {
            None => {
                return Err(fail(
                    Exit::Config,
                    format!(
                        "{what} has no pwreset tables; run `pwreset init` to create them, or point --db / PWRESET_DB / `database` at the right database"
                    ),
                ));
            }
            Some(v) if v > SCHEMA_VERSION => {
                return Err(fail(
                    Exit::Config,
                    format!(
                        "{what} has schema version {v}, newer than this pwreset understands ({SCHEMA_VERSION}); upgrade pwreset"
                    ),
                ));
            }
            Some(v) if v < SCHEMA_VERSION => {
                return Err(fail(
                    Exit::Config,
                    format!(
                        "{what} is not initialised for this version of pwreset (schema {v}, need {SCHEMA_VERSION}); run `pwreset init`"
                    ),
                ));
            }
            Some(_) => {}
        }
    }
    learn_users_table(&mut store)?;
    // Only init and doctor (and readers) say warnings; a write path spends no round trip on it.
    if access != Access::Write
        && let Some(w) = superuser_warning(&mut store)
    {
        store.s.warnings.push(w);
    }
    Ok(store)
}

/// An account that may create users and grant privileges (root) can read and change every
/// database: the warning says so, with the statements that make pwreset an account of its own.
fn superuser_warning(store: &mut MysqlStore) -> Option<String> {
    let who = current_user(&mut store.conn);
    let powers: i64 = store
        .conn
        .exec_first(
            "SELECT COUNT(*) FROM information_schema.USER_PRIVILEGES
              WHERE GRANTEE = ? AND PRIVILEGE_TYPE IN ('SUPER', 'CREATE USER')",
            (&who,),
        )
        .ok()
        .flatten()?;
    if powers == 0 {
        return None;
    }
    let host = if store.s.ctx.server.is_local() {
        "localhost"
    } else {
        "%"
    };
    let account = format!("'pwreset'@'{host}'");
    let q = &store.s.q;
    let db = quote(&store.s.ctx.server.dbname);
    let mut read = vec![q.id.clone(), q.email.clone(), q.password.clone()];
    if q.name != "NULL" {
        read.push(q.name.clone());
    }
    if let Some(c) = &store.s.users.locale_column {
        read.push(quote(c));
    }
    let mut grants = vec![format!("CREATE USER {account} IDENTIFIED BY '...';")];
    if store.s.tokens_only {
        // The people are in a directory: no users table to grant.
    } else if store.s.own_users {
        grants.push(format!(
            "GRANT SELECT, INSERT, UPDATE, DELETE ON {db}.{} TO {account};",
            q.table
        ));
    } else {
        grants.push(format!(
            "GRANT SELECT ({}), UPDATE ({}) ON {db}.{} TO {account};",
            read.join(", "),
            q.password,
            q.table
        ));
    }
    for own in [
        "pwreset_tokens",
        "pwreset_audit",
        "pwreset_throttle",
        "pwreset_runs",
        "pwreset_limits",
        "pwreset_secrets",
        "pwreset_schema",
    ] {
        grants.push(format!(
            "GRANT SELECT, INSERT, UPDATE, DELETE ON {db}.`{own}` TO {account};"
        ));
    }
    let after_reset = crate::store::after_reset_rights(
        store.s.users.after_reset.len(),
        &format!("{db}.`sessions` TO {account}"),
    );
    if !after_reset.is_empty() {
        grants.push(after_reset);
    }
    Some(format!(
        "{}: the database user {who} may create users and grant privileges, so a leaked config can read and change every database; give pwreset an account of its own with only what it needs. After `pwreset init`, run:\n  {}\nthen name that account in `database` (mysql://pwreset@...) and put its password in database_password_file",
        store.s.ctx.what(),
        grants.join("\n  ")
    ))
}

/// The newest version in the ledger; None when there is no ledger.
fn stored_version(conn: &mut Conn) -> Result<Option<i64>> {
    match conn.exec_first::<Option<i64>, _, _>("SELECT MAX(version) FROM pwreset_schema", ()) {
        Ok(v) => Ok(Some(v.flatten().unwrap_or(0))),
        Err(mysql::Error::MySqlError(se)) if se.code == code::NO_SUCH_TABLE => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// One column of the users table, from information_schema.
struct Column {
    name: String,
    data_type: String,
    column_type: String,
    charset: Option<String>,
    collation: Option<String>,
    length: Option<u64>,
}

fn columns(conn: &mut Conn, table: &str) -> Result<Vec<Column>> {
    let rows: Vec<Row> = conn.exec(
        "SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, CHARACTER_SET_NAME, COLLATION_NAME,
                CHARACTER_MAXIMUM_LENGTH
           FROM information_schema.COLUMNS
          WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?
          ORDER BY ORDINAL_POSITION",
        (table,),
    )?;
    Ok(rows
        .into_iter()
        .map(|mut r| {
            let text = |v: Option<Value>| v.map(super::text_lossy).filter(|s| !s.is_empty());
            Column {
                name: text(r.take(0)).unwrap_or_default(),
                data_type: text(r.take(1)).unwrap_or_default().to_ascii_lowercase(),
                column_type: text(r.take(2)).unwrap_or_default(),
                charset: text(r.take(3)),
                collation: text(r.take(4)),
                length: r
                    .take::<Value, usize>(5)
                    .and_then(super::opt_i64)
                    .map(|n| n.max(0) as u64),
            }
        })
        .collect())
}

fn find<'a>(cols: &'a [Column], name: &str) -> Option<&'a Column> {
    cols.iter().find(|c| c.name.eq_ignore_ascii_case(name))
}

/// The id column's kind, or why pwreset cannot use it.
fn id_kind(c: &Column) -> std::result::Result<IdKind, String> {
    match c.data_type.as_str() {
        "tinyint" | "smallint" | "mediumint" | "int" | "integer" | "bigint" => Ok(IdKind::Int),
        "char" | "varchar" | "uuid" => Ok(IdKind::Text),
        "binary" if c.length == Some(16) => Ok(IdKind::Bin16),
        _ => Err(c.column_type.clone()),
    }
}

/// The type pwreset's own tables give user_id: the id column's, with its collation for text.
fn id_column_type(c: &Column) -> String {
    match (c.data_type.as_str(), &c.charset, &c.collation) {
        ("char" | "varchar", Some(cs), Some(co)) => {
            format!("{} CHARACTER SET {cs} COLLATE {co}", c.column_type)
        }
        _ => c.column_type.clone(),
    }
}

/// Read what the store needs to know about the users table: whether it is pwreset's own, and
/// how its ids travel.
fn learn_users_table(store: &mut MysqlStore) -> Result<()> {
    if store.s.tokens_only {
        store.s.id = directory_id_kind(store)?;
        return Ok(());
    }
    let table = store.s.users.table.clone();
    let cols = columns(&mut store.conn, &table).map_err(|e| store.s.ctx.err(e))?;
    let u = &store.s.users;
    store.s.own_users = u.is_default_mapping() && find(&cols, "email_key").is_some();
    store.s.id = find(&cols, &u.id_column)
        .and_then(|c| id_kind(c).ok())
        .unwrap_or(IdKind::Int);
    // The select list names pwreset's own `name` column only on its own table.
    store.s.q = Quoted::new(&store.s.users, store.s.own_users);
    Ok(())
}

/// The key type of a directory's people: text (entryUUID, nsUniqueId, objectGUID), or what
/// pwreset's tokens table already has. Tables made for an integer-keyed users table cannot
/// hold a directory's ids.
fn directory_id_kind(store: &mut MysqlStore) -> Result<IdKind> {
    let cols = columns(&mut store.conn, "pwreset_tokens").map_err(|e| store.s.ctx.err(e))?;
    match find(&cols, "user_id").map(id_kind) {
        None => Ok(IdKind::Text),
        Some(Ok(k @ (IdKind::Text | IdKind::Bin16))) => Ok(k),
        Some(_) => Err(fail(
            Exit::Config,
            format!(
                "{}: pwreset's tables there were made for a users table with integer keys, and a directory's people have text ids; give the directory's tokens a database of their own",
                store.s.ctx.what()
            ),
        )),
    }
}

/// The type of `user_id` in pwreset's tables when the people are in a directory: their ids
/// are short ASCII (a UUID, or AD's objectGUID in hex), compared bytewise.
const DIRECTORY_ID_TYPE: &str = "VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin";

pub(super) fn migrate(store: &mut MysqlStore) -> Result<Migrated> {
    let got: Option<i64> = store
        .conn
        .exec_first("SELECT GET_LOCK(?, ?)", (MIGRATION_LOCK, 60))
        .map_err(|e| store.s.ctx.err(e.into()))?
        .flatten();
    if got != Some(1) {
        return Err(fail(
            Exit::TempFail,
            format!(
                "another `pwreset init` is migrating {}; try again when it is done",
                store.s.ctx.what()
            ),
        ));
    }
    let result = migrate_locked(store);
    // The lock also goes with the connection; release it now for a process that stays.
    let _ = store
        .conn
        .exec_drop("SELECT RELEASE_LOCK(?)", (MIGRATION_LOCK,));
    result
}

fn migrate_locked(store: &mut MysqlStore) -> Result<Migrated> {
    let users = store.s.users.clone();
    let default_mapping = users.is_default_mapping();
    let ctx_err = |s: &MysqlStore, e: anyhow::Error| s.s.ctx.err(e);
    let before = stored_version(&mut store.conn)
        .map_err(|e| ctx_err(store, e))?
        .unwrap_or(0);
    if before > SCHEMA_VERSION {
        return Err(fail(
            Exit::Config,
            format!(
                "{} has schema version {before}, newer than this pwreset understands ({SCHEMA_VERSION}); upgrade pwreset",
                store.s.ctx.what()
            ),
        ));
    }
    let id_col = if store.s.tokens_only {
        // No users table: the ids are the directory's (open refused tables made for
        // integer ids already).
        check_privileges(store)?;
        DIRECTORY_ID_TYPE.to_owned()
    } else {
        let mut cols = columns(&mut store.conn, &users.table).map_err(|e| ctx_err(store, e))?;
        if cols.is_empty() && default_mapping {
            ddl(store, OWN_USERS_TABLE, "creating pwreset's own users table")?;
            cols = columns(&mut store.conn, &users.table).map_err(|e| ctx_err(store, e))?;
        }
        // The tokens' user_id takes the id column's type, so the mapping must be right
        // first. information_schema hides what the user may not see: a missing grant first,
        // by name.
        check_privileges(store)?;
        check_columns(store, &cols)?;
        find(&cols, &users.id_column)
            .map(id_column_type)
            .unwrap_or_else(|| "BIGINT".to_owned())
    };
    ddl(
        store,
        LEDGER,
        "creating the migration ledger pwreset_schema",
    )?;
    let now = crate::ui::now();
    for (i, step) in MIGRATIONS.iter().enumerate().skip(before.max(0) as usize) {
        let version = i as i64 + 1;
        for sql in *step {
            ddl_unless(
                store,
                &sql.replace("{ID_TYPE}", &id_col),
                &format!("migrating the schema to version {version}"),
                // The column is there: an init cut short after the ALTER, before the ledger row.
                Some(code::DUP_FIELDNAME),
            )?;
        }
        store
            .conn
            .exec_drop(
                "INSERT IGNORE INTO pwreset_schema (version, applied_at) VALUES (?, ?)",
                (version, now),
            )
            .map_err(|e| ctx_err(store, e.into()))?;
    }
    learn_users_table(store)?;
    if store.s.own_users {
        // Never hand out an id that a token was issued for, even one whose user row is gone:
        // the counter starts after both (ALTER only ever raises it).
        let floor: Option<i64> = store
            .conn
            .exec_first(
                "SELECT GREATEST(COALESCE((SELECT MAX(id) FROM users), 0),
                                 COALESCE((SELECT MAX(user_id) FROM pwreset_tokens), 0))",
                (),
            )
            .map_err(|e| ctx_err(store, e.into()))?;
        if let Some(floor) = floor.filter(|f| *f > 0) {
            ddl(
                store,
                &format!("ALTER TABLE users AUTO_INCREMENT = {}", floor + 1),
                "raising the users table's id counter past every id a token names",
            )?;
        }
    }
    Ok(Migrated {
        created: before == 0,
        before,
        after: SCHEMA_VERSION,
    })
}

/// Run one DDL statement; a missing privilege names the GRANT that `init` needs.
fn ddl(store: &mut MysqlStore, sql: &str, doing: &str) -> Result<()> {
    ddl_unless(store, sql, doing, None)
}

/// [`ddl`], where the server error `done` means the statement's work is there already.
fn ddl_unless(store: &mut MysqlStore, sql: &str, doing: &str, done: Option<u16>) -> Result<()> {
    match store.conn.query_drop(sql) {
        Ok(()) => Ok(()),
        Err(mysql::Error::MySqlError(se)) if Some(se.code) == done => Ok(()),
        Err(e) => {
            let e = anyhow::Error::from(e);
            if matches!(
                server_code(&e),
                Some(code::TABLE_ACCESS_DENIED | code::DB_ACCESS_DENIED)
            ) {
                let who = current_user(&mut store.conn);
                let db = quote(&store.s.ctx.server.dbname);
                return Err(fail(
                    Exit::NoPerm,
                    format!(
                        "{}: {doing} was refused ({}); `pwreset init` creates its own tables, so let it, e.g.: GRANT CREATE, ALTER, INDEX, SELECT, INSERT, UPDATE, DELETE ON {db}.`pwreset_tokens` TO {who}; (and the same ON {db}.`pwreset_audit`, {db}.`pwreset_throttle`, {db}.`pwreset_runs`, {db}.`pwreset_limits`, {db}.`pwreset_secrets` and {db}.`pwreset_schema`; see docs/mariadb.md, \"Least privilege\")",
                        store.s.ctx.what(),
                        server_message(&e),
                    ),
                ));
            }
            Err(store.s.ctx.err(e.context(doing.to_owned())))
        }
    }
}

fn server_message(e: &anyhow::Error) -> String {
    match e.downcast_ref::<mysql::Error>() {
        Some(mysql::Error::MySqlError(se)) => crate::ui::escape(&se.message),
        _ => crate::ui::escape(&e.to_string()),
    }
}

/// `'user'@'host'` as the server knows this login, for GRANT statements.
fn current_user(conn: &mut Conn) -> String {
    let cu: Option<String> = conn.query_first("SELECT CURRENT_USER()").ok().flatten();
    match cu.as_deref().and_then(|c| c.rsplit_once('@')) {
        Some((u, h)) => format!("'{}'@'{}'", u.replace('\'', "''"), h.replace('\'', "''")),
        None => "<the pwreset account>".to_owned(),
    }
}

/// The mapped table, its columns and the id type, from information_schema: 78 naming what is
/// wrong.
fn check_columns(store: &MysqlStore, cols: &[Column]) -> Result<()> {
    let u = &store.s.users;
    let what = store.s.ctx.what();
    if cols.is_empty() {
        return Err(fail(
            Exit::Config,
            format!(
                "users.table: table {:?} does not exist in {what}; create it, or set [users] table to the application's users table",
                u.table
            ),
        ));
    }
    let optional = [
        ("users.name_column", u.name_column.as_ref()),
        ("users.locale_column", u.locale_column.as_ref()),
    ];
    let missing: Vec<String> = [
        ("users.id_column", &u.id_column),
        ("users.email_column", &u.email_column),
        ("users.password_column", &u.password_column),
    ]
    .into_iter()
    .chain(optional.into_iter().filter_map(|(k, c)| c.map(|c| (k, c))))
    .filter(|(_, c)| find(cols, c).is_none())
    .map(|(key, c)| format!("{key} = {c:?}"))
    .collect();
    if !missing.is_empty() {
        let have: Vec<&str> = cols.iter().map(|c| c.name.as_str()).collect();
        return Err(fail(
            Exit::Config,
            format!(
                "table {:?} in {what} has no column for {} (it has: {})",
                u.table,
                missing.join(", "),
                have.join(", ")
            ),
        ));
    }
    if let Some(c) = find(cols, &u.id_column)
        && let Err(ty) = id_kind(c)
    {
        return Err(fail(
            Exit::Config,
            format!(
                "users.id_column: column {:?} of table {:?} has type {ty}; pwreset needs an integer, a UUID (CHAR(36), BINARY(16), UUID) or a text key (CHAR/VARCHAR)",
                c.name, u.table
            ),
        ));
    }
    Ok(())
}

/// A parameter an `after_reset` statement may bind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Param {
    UserId,
    Email,
}

/// Rewrite an `after_reset` statement's `:user_id` and `:email` to `?`, and list them in order
/// of appearance. Text inside '…' and "…" literals, `…` identifiers and comments (`-- `, `#`,
/// `/* */`) is left alone. Any other `:name`, or a `?` of its own, is refused: nothing else is
/// bound.
pub(super) fn positional(sql: &str) -> std::result::Result<(String, Vec<Param>), String> {
    let b = sql.as_bytes();
    let mut out = String::with_capacity(sql.len());
    let mut params = Vec::new();
    // Bytes are copied in runs between rewrites; every cut is at an ASCII byte, so the slices
    // stay valid UTF-8.
    let mut copied = 0;
    let mut i = 0;
    let ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c >= 0x80;
    while i < b.len() {
        match b[i] {
            q @ (b'\'' | b'"' | b'`') => {
                // A quoted run ends at the next unescaped quote; a doubled quote is one quote
                // character, and in string literals a backslash escapes the next byte.
                i += 1;
                while i < b.len() {
                    if b[i] == b'\\' && q != b'`' {
                        i += 2;
                    } else if b[i] == q {
                        if b.get(i + 1) == Some(&q) {
                            i += 2;
                        } else {
                            break;
                        }
                    } else {
                        i += 1;
                    }
                }
                i += 1;
            }
            // MySQL's `-- ` comment needs a space or control character after the dashes.
            b'-' if b.get(i + 1) == Some(&b'-')
                && b.get(i + 2)
                    .is_none_or(|c| c.is_ascii_whitespace() || c.is_ascii_control()) =>
            {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'#' => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i < b.len() && !(b[i] == b'*' && b.get(i + 1) == Some(&b'/')) {
                    i += 1;
                }
                i += 2;
            }
            b'?' => return Err("has a positional parameter (?); use :user_id or :email".into()),
            b':' if b
                .get(i + 1)
                .is_some_and(|&c| c.is_ascii_alphabetic() || c == b'_') =>
            {
                let start = i;
                i += 1;
                while i < b.len() && ident(b[i]) {
                    i += 1;
                }
                let name = &sql[start..i];
                let param = match name {
                    ":user_id" => Param::UserId,
                    ":email" => Param::Email,
                    other => {
                        return Err(format!("binds {other}; only :user_id and :email are bound"));
                    }
                };
                out.push_str(&sql[copied..start]);
                out.push('?');
                copied = i;
                params.push(param);
            }
            _ => i += 1,
        }
    }
    out.push_str(&sql[copied.min(sql.len())..]);
    Ok((out, params))
}

/// Prepare an `after_reset` statement without running it: the server checks its tables,
/// columns and privileges at PREPARE. `Err`: the reason for a 78, or the words of a 77 when the
/// account lacks a privilege the statement needs (as a reset would find).
fn prepare_after_reset(
    conn: &mut Conn,
    ctx: &ErrCtx,
    sql: &str,
) -> std::result::Result<(), (Exit, String)> {
    let config = |why: String| (Exit::Config, why);
    let (text, params) = positional(sql).map_err(config)?;
    let stmt = conn.prep(&text).map_err(|e| match e {
        mysql::Error::MySqlError(se) => {
            let detail = crate::ui::escape(&se.message);
            match ctx.after_reset_denied(se.code, &detail) {
                Some(why) => (Exit::NoPerm, why),
                None => config(format!("does not prepare: {detail}")),
            }
        }
        other => config(format!("does not prepare: {other}")),
    })?;
    let n = usize::from(stmt.num_params());
    let _ = conn.close(stmt);
    if n != params.len() {
        // The server found parameters the rewrite did not (or the other way round): refuse
        // rather than bind the wrong values.
        return Err(config(format!(
            "the server sees {n} parameter(s) where pwreset binds {}; only :user_id and :email are bound",
            params.len()
        )));
    }
    Ok(())
}

/// A statement pwreset runs, and the GRANT that allows it.
struct Probe {
    sql: String,
    grant: String,
}

pub(super) fn check_users_mapping(store: &mut MysqlStore) -> Result<()> {
    let table = store.s.users.table.clone();
    let cols = columns(&mut store.conn, &table).map_err(|e| store.s.ctx.err(e))?;
    check_privileges(store)?;
    check_columns(store, &cols)?;
    let statements = store.s.users.after_reset.clone();
    for (i, sql) in statements.iter().enumerate() {
        prepare_after_reset(&mut store.conn, &store.s.ctx, sql).map_err(
            |(exit, why)| match exit {
                Exit::NoPerm => fail(exit, format!("users.after_reset[{i}] {why} (in: {sql})")),
                _ => fail(exit, format!("users.after_reset[{i}]: {why} (in: {sql})")),
            },
        )?;
    }
    check_mapping_works(store).map_err(|why| {
        fail(
            Exit::Config,
            format!(
                "users.table: table {:?} cannot be used: {why}",
                store.s.users.table
            ),
        )
    })
}

/// What would fail later, found now: a view (a reset would fail after the password was
/// typed) and rows without an id.
fn check_mapping_works(store: &mut MysqlStore) -> std::result::Result<(), String> {
    let db_err = |e: mysql::Error| e.to_string();
    let table = store.s.users.table.clone();
    let kind: Option<String> = store
        .conn
        .exec_first(
            "SELECT TABLE_TYPE FROM information_schema.TABLES
              WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?",
            (&table,),
        )
        .map_err(db_err)?;
    if kind.as_deref() == Some("VIEW") {
        return Err(
            "it is a view, which a reset cannot write the password through; set [users] table to the table behind it"
                .into(),
        );
    }
    let q = &store.s.q;
    let sql = format!("SELECT COUNT(*) FROM {} WHERE {} IS NULL", q.table, q.id);
    let nulls: i64 = store.conn.exec_first(sql, ()).map_err(db_err)?.unwrap_or(0);
    if nulls > 0 {
        return Err(format!(
            "{nulls} row(s) have no id (NULL in {:?}); every user needs a key pwreset can bind its links to",
            store.s.users.id_column
        ));
    }
    Ok(())
}

/// Prepare every kind of statement pwreset runs: the server checks the privileges at PREPARE,
/// so a missing one shows now, by name, rather than in the middle of a reset.
fn check_privileges(store: &mut MysqlStore) -> Result<()> {
    let q = &store.s.q;
    let db = quote(&store.s.ctx.server.dbname);
    let (t, id, email, pw) = (&q.table, &q.id, &q.email, &q.password);
    // The columns pwreset reads: the name and locale ones too when the mapping has them.
    let mut read = vec![id.clone(), email.clone(), pw.clone()];
    if q.name != "NULL" {
        read.push(q.name.clone());
    }
    if let Some(c) = &store.s.users.locale_column {
        read.push(quote(c));
    }
    let mut probes = Vec::new();
    if !store.s.tokens_only {
        probes.extend([Probe {
            sql: format!("{} WHERE {id} = ?", q.select_users),
            grant: format!("GRANT SELECT ({}) ON {db}.{t}", read.join(", ")),
        },
        Probe {
            sql: format!(
                "UPDATE {t} SET {pw} = ? WHERE {id} = ? AND BINARY {email} <=> ? AND BINARY {pw} <=> ?"
            ),
            grant: format!("GRANT UPDATE ({pw}) ON {db}.{t}"),
        }]);
    }
    if store.s.own_users {
        probes.push(Probe {
            sql: "INSERT INTO users (email, email_key, name, password_hash, created_at) VALUES (?, ?, ?, ?, ?)".into(),
            grant: format!("GRANT SELECT, INSERT, UPDATE, DELETE ON {db}.`users`"),
        });
    }
    for own in [
        "pwreset_tokens",
        "pwreset_audit",
        "pwreset_throttle",
        "pwreset_runs",
        "pwreset_limits",
        "pwreset_secrets",
    ] {
        let grant = format!("GRANT SELECT, INSERT, UPDATE, DELETE ON {db}.`{own}`");
        probes.push(Probe {
            sql: format!("SELECT * FROM {own} WHERE 1 = 0"),
            grant: grant.clone(),
        });
        probes.push(Probe {
            sql: format!("DELETE FROM {own} WHERE 1 = 0"),
            grant: grant.clone(),
        });
    }
    probes.push(Probe {
        sql: "INSERT INTO pwreset_tokens (digest, user_id, binding, created_at, expires_at, dead_at, run_id, batch) VALUES (?, ?, ?, ?, ?, ?, ?, ?)".into(),
        grant: format!("GRANT SELECT, INSERT, UPDATE, DELETE ON {db}.`pwreset_tokens`"),
    });
    probes.push(Probe {
        sql: "UPDATE pwreset_tokens SET used_at = ?, handed_over_at = ? WHERE id = ?".into(),
        grant: format!("GRANT SELECT, INSERT, UPDATE, DELETE ON {db}.`pwreset_tokens`"),
    });
    probes.push(Probe {
        sql: "INSERT INTO pwreset_audit (at, actor, action, outcome) VALUES (?, ?, ?, ?)".into(),
        grant: format!("GRANT SELECT, INSERT, UPDATE, DELETE ON {db}.`pwreset_audit`"),
    });
    probes.push(Probe {
        sql: "INSERT INTO pwreset_throttle (user_id, last_at, claim, run_id) VALUES (?, ?, ?, ?) ON DUPLICATE KEY UPDATE last_at = VALUES(last_at)".into(),
        grant: format!("GRANT SELECT, INSERT, UPDATE, DELETE ON {db}.`pwreset_throttle`"),
    });
    probes.push(Probe {
        sql: "INSERT INTO pwreset_runs (command, job, host, pid, proc_start, actor, started_at, heartbeat_at, token_floor) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)".into(),
        grant: format!("GRANT SELECT, INSERT, UPDATE, DELETE ON {db}.`pwreset_runs`"),
    });
    probes.push(Probe {
        sql: "UPDATE pwreset_runs SET heartbeat_at = ?, printed_upto = ?, ended_at = ?, outcome = ? WHERE id = ?".into(),
        grant: format!("GRANT SELECT, INSERT, UPDATE, DELETE ON {db}.`pwreset_runs`"),
    });
    probes.push(Probe {
        sql: "INSERT INTO pwreset_secrets (name, value, created_at) VALUES (?, ?, ?) ON DUPLICATE KEY UPDATE name = name".into(),
        grant: format!("GRANT SELECT, INSERT, UPDATE, DELETE ON {db}.`pwreset_secrets`"),
    });
    let mut refused: Vec<String> = Vec::new();
    let mut grants: Vec<String> = Vec::new();
    for p in &probes {
        match store.conn.prep(&p.sql) {
            Ok(stmt) => {
                let _ = store.conn.close(stmt);
            }
            Err(e) => {
                let e = anyhow::Error::from(e);
                match server_code(&e) {
                    Some(
                        code::TABLE_ACCESS_DENIED
                        | code::COLUMN_ACCESS_DENIED
                        | code::DB_ACCESS_DENIED,
                    ) => {
                        let msg = server_message(&e);
                        if !refused.contains(&msg) {
                            refused.push(msg);
                        }
                        if !grants.contains(&p.grant) {
                            grants.push(p.grant.clone());
                        }
                    }
                    // A missing table or column is for the mapping check to name (78).
                    Some(code::NO_SUCH_TABLE | code::BAD_FIELD) => {}
                    _ => return Err(store.s.ctx.err(e)),
                }
            }
        }
    }
    if grants.is_empty() {
        return Ok(());
    }
    let who = current_user(&mut store.conn);
    Err(fail(
        Exit::NoPerm,
        format!(
            "the database user {who} lacks privileges pwreset needs on {} ({}); an administrator can grant them with: {}",
            store.s.ctx.what(),
            refused.join("; "),
            grants
                .iter()
                .map(|g| format!("{g} TO {who};"))
                .collect::<Vec<_>>()
                .join(" ")
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(data_type: &str, column_type: &str, length: Option<u64>) -> Column {
        Column {
            name: "id".into(),
            data_type: data_type.into(),
            column_type: column_type.into(),
            charset: None,
            collation: None,
            length,
        }
    }

    #[test]
    fn id_types_accepted_and_refused() {
        assert_eq!(
            id_kind(&col("bigint", "bigint(20) unsigned", None)),
            Ok(IdKind::Int)
        );
        assert_eq!(
            id_kind(&col("char", "char(36)", Some(36))),
            Ok(IdKind::Text)
        );
        assert_eq!(id_kind(&col("uuid", "uuid", None)), Ok(IdKind::Text));
        assert_eq!(
            id_kind(&col("binary", "binary(16)", Some(16))),
            Ok(IdKind::Bin16)
        );
        assert_eq!(
            id_kind(&col("datetime", "datetime", None)),
            Err("datetime".into())
        );
        assert_eq!(
            id_kind(&col("binary", "binary(20)", Some(20))),
            Err("binary(20)".into())
        );
    }

    #[test]
    fn text_ids_keep_their_collation() {
        let c = Column {
            charset: Some("utf8mb4".into()),
            collation: Some("utf8mb4_unicode_ci".into()),
            ..col("char", "char(36)", Some(36))
        };
        assert_eq!(
            id_column_type(&c),
            "char(36) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
        );
    }

    #[test]
    fn after_reset_named_parameters_become_positional() {
        let (sql, params) = positional(
            "DELETE FROM s WHERE user_id = :user_id AND note <> ':email' AND `a:email` = 1 -- :x\n OR e = :email /* :y ? */ # ?\n AND u = :user_id",
        )
        .expect("rewritten");
        assert_eq!(
            sql,
            "DELETE FROM s WHERE user_id = ? AND note <> ':email' AND `a:email` = 1 -- :x\n OR e = ? /* :y ? */ # ?\n AND u = ?"
        );
        assert_eq!(params, [Param::UserId, Param::Email, Param::UserId]);
        // Escaped quotes stay inside their literal; := is assignment, not a parameter.
        let (sql, params) =
            positional("SET @a := 'it''s \\' :user_id', @b = \"x\\\" ?\"").expect("ok");
        assert_eq!(sql, "SET @a := 'it''s \\' :user_id', @b = \"x\\\" ?\"");
        assert!(params.is_empty());
        assert!(
            positional("DELETE FROM s WHERE id = :uid")
                .unwrap_err()
                .contains(":uid")
        );
        assert!(
            positional("DELETE FROM s WHERE id = ?")
                .unwrap_err()
                .contains("positional")
        );
        // A dash pair with no space is two minus signs, not a comment.
        assert!(positional("SELECT 1--:nope").unwrap_err().contains(":nope"));
    }

    #[test]
    fn migrations_name_their_id_type() {
        assert_eq!(MIGRATIONS.len() as i64, SCHEMA_VERSION);
        assert!(MIGRATIONS[0][0].contains("{ID_TYPE}"));
    }
}
