//! The test harness: a temporary folder with a config, a database and an outbox, and a way to
//! run the real `pwreset` binary against them.
//!
//! The database is a SQLite file in the folder, or, with `PWRESET_TEST_BACKEND=postgres` or
//! `mysql`, a fresh database on the server named by `PWRESET_TEST_POSTGRES` /
//! `PWRESET_TEST_MYSQL`, created for the test and dropped after it. Tests reach the database
//! directly through [`Env::exec`], [`Env::i64`], [`Env::text`] and [`Env::rows`], which work on
//! every backend (the server ones through `psql` / `mariadb`). A test of something only SQLite
//! has starts with `if env.sqlite_only("why") { return; }`.
#![allow(dead_code)]

use assert_cmd::Command;
use std::path::{Path, PathBuf};

pub const BIN: &str = env!("CARGO_BIN_EXE_pwreset");

/// Which database the suite runs against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    /// The admin URL (a database to connect to for CREATE DATABASE).
    Postgres(String),
    Mysql(String),
}

impl Backend {
    pub fn name(&self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres(_) => "postgres",
            Backend::Mysql(_) => "mysql",
        }
    }
}

/// The backend chosen by `PWRESET_TEST_BACKEND` (default sqlite).
pub fn backend() -> Backend {
    let url = |var: &str| {
        std::env::var(var).unwrap_or_else(|_| {
            panic!("PWRESET_TEST_BACKEND names a server, but {var} is not set to its URL")
        })
    };
    match std::env::var("PWRESET_TEST_BACKEND").as_deref() {
        Ok("postgres") => Backend::Postgres(url("PWRESET_TEST_POSTGRES")),
        Ok("mysql") => Backend::Mysql(url("PWRESET_TEST_MYSQL")),
        Ok("sqlite") | Ok("") | Err(_) => Backend::Sqlite,
        Ok(other) => panic!("PWRESET_TEST_BACKEND={other}: use sqlite, postgres or mysql"),
    }
}

/// The per-test database name on a server, made from the test's folder name.
fn server_db_name(dir: &Path) -> String {
    let base = dir
        .file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    let tail: String = base.chars().filter(|c| c.is_ascii_alphanumeric()).collect();
    format!("pwreset_t_{tail}")
}

/// `url` with its database (the path) replaced by `name`.
fn with_db(url: &str, name: &str) -> String {
    let (head, query) = match url.split_once('?') {
        Some((h, q)) => (h, Some(q)),
        None => (url, None),
    };
    let scheme_end = head.find("://").map_or(0, |i| i + 3);
    let base = match head[scheme_end..].find('/') {
        Some(i) => &head[..scheme_end + i],
        None => head,
    };
    match query {
        Some(q) => format!("{base}/{name}?{q}"),
        None => format!("{base}/{name}"),
    }
}

/// The `database` value for a test folder: the SQLite file in it, or its server database.
pub fn database_for(dir: &Path) -> String {
    match backend() {
        Backend::Sqlite => dir.join("pwreset.db").display().to_string(),
        Backend::Postgres(url) | Backend::Mysql(url) => with_db(&url, &server_db_name(dir)),
    }
}

/// A server database made for one test, dropped with it.
struct ServerDb {
    backend: Backend,
    name: String,
}

impl Drop for ServerDb {
    fn drop(&mut self) {
        let sql = match self.backend {
            Backend::Postgres(_) => format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
            _ => format!("DROP DATABASE IF EXISTS {}", self.name),
        };
        let _ = client(&self.backend, None, &sql);
    }
}

/// Run SQL with the server's own client; stdout with NULL written as [`NULL`].
fn client(backend: &Backend, db: Option<&str>, sql: &str) -> std::io::Result<std::process::Output> {
    match backend {
        Backend::Postgres(url) => {
            let url = db.map_or_else(|| url.clone(), |d| with_db(url, d));
            std::process::Command::new("psql")
                .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
                .args(["-F", "\u{1f}", "-R", "\u{1e}", "-P"])
                .arg(format!("null={NULL}"))
                .arg(url)
                .arg("-c")
                .arg(sql)
                .output()
        }
        Backend::Mysql(url) => {
            let u = url::Url::parse(url).expect("PWRESET_TEST_MYSQL is a URL");
            let mut c = std::process::Command::new("mariadb");
            c.arg("--batch")
                .arg("--raw")
                .arg("--skip-column-names")
                .arg("--default-character-set=utf8mb4")
                .arg(format!("--host={}", u.host_str().unwrap_or("127.0.0.1")))
                .arg(format!("--port={}", u.port().unwrap_or(3306)))
                .arg(format!("--user={}", u.username()));
            if let Some(d) = db {
                c.arg(format!("--database={d}"));
            }
            c.arg("-e").arg(sql).output()
        }
        Backend::Sqlite => Err(std::io::Error::other("not a server")),
    }
}

/// How the server clients' output shows NULL.
const NULL: &str = "\u{1}NULL";

/// One isolated pwreset installation in a temporary folder.
pub struct Env {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    /// The SQLite file (SQLite backend only).
    pub db: PathBuf,
    pub outbox: PathBuf,
    backend: Backend,
    server: Option<ServerDb>,
}

/// The config every test starts from: file transport, cheap argon2 (the policy is the same),
/// no throttle surprises unless a test sets one.
pub fn default_toml(dir: &Path) -> String {
    format!(
        r#"database = "{db}"
base_url = "https://accounts.example.com/reset_password"
token_ttl = "1h"
request_throttle = "60s"
busy_timeout = "2s"

[mail]
transport = "file"
from = "Accounts <no-reply@example.com>"

[mail.file]
dir = "{outbox}"

[password.argon2]
memory_kib = 8192
iterations = 1
parallelism = 1
"#,
        db = database_for(dir),
        outbox = dir.join("outbox").display(),
    )
}

impl Env {
    /// A fresh folder with the default config; the database is not created yet.
    pub fn new() -> Env {
        Env::with_toml(default_toml)
    }

    /// A fresh folder with a config made by `toml(dir)`.
    pub fn with_toml(toml: impl FnOnce(&Path) -> String) -> Env {
        let dir = tempfile::Builder::new()
            .prefix("pwreset-test-")
            .tempdir()
            .expect("tempdir");
        let config = dir.path().join("config.toml");
        let backend = backend();
        let server = match &backend {
            Backend::Sqlite => None,
            server => {
                let name = server_db_name(dir.path());
                let create = match server {
                    Backend::Mysql(_) => format!("CREATE DATABASE {name} CHARACTER SET utf8mb4"),
                    _ => format!("CREATE DATABASE {name}"),
                };
                let out = client(server, None, &create).expect("run the database client");
                assert!(
                    out.status.success(),
                    "{create}: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                Some(ServerDb {
                    backend: server.clone(),
                    name,
                })
            }
        };
        std::fs::write(&config, toml(dir.path())).expect("write config");
        Env {
            db: dir.path().join("pwreset.db"),
            outbox: dir.path().join("outbox"),
            config,
            dir,
            backend,
            server,
        }
    }

    /// The backend this environment's database is on.
    pub fn backend(&self) -> &Backend {
        &self.backend
    }

    /// True (after printing one line saying so) when the test needs SQLite and the suite runs
    /// on a server: `if env.sqlite_only("file modes") { return; }`.
    pub fn sqlite_only(&self, why: &str) -> bool {
        if self.backend == Backend::Sqlite {
            return false;
        }
        println!("skipped on {}: {why} is SQLite's", self.backend.name());
        true
    }

    /// Run SQL (one or more statements) on the test's database, as the application would.
    pub fn exec(&self, sql: &str) {
        match &self.server {
            None => self.sql().execute_batch(sql).expect(sql),
            Some(db) => {
                let out = client(&db.backend, Some(&db.name), sql).expect("run the client");
                assert!(
                    out.status.success(),
                    "{sql}: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
    }

    /// Every row of a query, each column as text (NULL as None).
    pub fn rows(&self, sql: &str) -> Vec<Vec<Option<String>>> {
        match &self.server {
            None => {
                let conn = self.sql();
                let mut stmt = conn.prepare(sql).expect(sql);
                let n = stmt.column_count();
                stmt.query_map([], |r| {
                    (0..n)
                        .map(|i| {
                            Ok(match r.get_ref(i)? {
                                rusqlite::types::ValueRef::Null => None,
                                rusqlite::types::ValueRef::Integer(v) => Some(v.to_string()),
                                rusqlite::types::ValueRef::Real(v) => Some(v.to_string()),
                                rusqlite::types::ValueRef::Text(t)
                                | rusqlite::types::ValueRef::Blob(t) => {
                                    Some(String::from_utf8_lossy(t).into_owned())
                                }
                            })
                        })
                        .collect::<rusqlite::Result<Vec<_>>>()
                })
                .expect(sql)
                .collect::<rusqlite::Result<Vec<_>>>()
                .expect(sql)
            }
            Some(db) => {
                let out = client(&db.backend, Some(&db.name), sql).expect("run the client");
                assert!(
                    out.status.success(),
                    "{sql}: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                let text = String::from_utf8_lossy(&out.stdout).into_owned();
                let (row_sep, col_sep) = match db.backend {
                    Backend::Postgres(_) => ('\u{1e}', '\u{1f}'),
                    _ => ('\n', '\t'),
                };
                text.trim_end_matches(['\n', '\u{1e}'])
                    .split(row_sep)
                    .filter(|r| !r.is_empty())
                    .map(|row| {
                        row.split(col_sep)
                            .map(|v| (v != NULL && v != "NULL").then(|| v.to_owned()))
                            .collect()
                    })
                    .collect()
            }
        }
    }

    /// The first column of the first row, as text (None for NULL or no row).
    pub fn text(&self, sql: &str) -> Option<String> {
        self.rows(sql)
            .into_iter()
            .next()
            .and_then(|r| r.into_iter().next().flatten())
    }

    /// The first column of the first row, as a number.
    pub fn i64(&self, sql: &str) -> i64 {
        let v = self.text(sql).unwrap_or_else(|| panic!("{sql}: no value"));
        v.trim()
            .parse()
            .unwrap_or_else(|_| panic!("{sql}: {v:?} is not a number"))
    }

    /// The only row of a query that must return exactly one, first column as text (None for
    /// NULL). Unlike [`Env::text`], a missing row fails instead of reading as NULL.
    pub fn one(&self, sql: &str) -> Option<String> {
        let rows = self.rows(sql);
        assert_eq!(rows.len(), 1, "{sql}: expected one row, got {rows:?}");
        rows.into_iter()
            .next()
            .and_then(|r| r.into_iter().next())
            .unwrap_or_else(|| panic!("{sql}: no column"))
    }

    /// `s` as an SQL string literal for this backend: quotes doubled, and on MySQL backslashes
    /// too, since MySQL reads them as escapes inside literals (unless NO_BACKSLASH_ESCAPES).
    pub fn quote(&self, s: &str) -> String {
        let s = s.replace('\'', "''");
        match self.backend {
            Backend::Mysql(_) => format!("'{}'", s.replace('\\', "\\\\")),
            _ => format!("'{s}'"),
        }
    }

    /// `bytes` as an SQL literal for a binary column (digest, binding): X'..' on SQLite and
    /// MySQL; PostgreSQL reads X'..' as a bit string, so it gets a bytea literal.
    pub fn blob(&self, bytes: &[u8]) -> String {
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        match self.backend {
            Backend::Postgres(_) => format!("'\\x{hex}'::bytea"),
            _ => format!("X'{hex}'"),
        }
    }

    /// The tables in the test's database, by name (SQLite's internal ones left out). On SQLite
    /// a missing file has none (and is not created by looking).
    pub fn tables(&self) -> Vec<String> {
        let sql = match self.backend {
            Backend::Sqlite if !self.db.exists() => return Vec::new(),
            Backend::Sqlite => {
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            }
            // Any schema pwreset might use, but the catalogs.
            Backend::Postgres(_) => {
                "SELECT table_name FROM information_schema.tables
                  WHERE table_schema NOT IN ('pg_catalog', 'information_schema')"
            }
            Backend::Mysql(_) => {
                "SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE()"
            }
        };
        let mut names: Vec<String> = self
            .rows(sql)
            .into_iter()
            .filter_map(|r| r.into_iter().next().flatten())
            .collect();
        names.sort();
        names
    }

    /// Whether something created the database: SQLite's file exists; on a server (where the
    /// harness made an empty database for the test) it holds a table.
    pub fn database_created(&self) -> bool {
        match self.backend {
            Backend::Sqlite => self.db.exists(),
            _ => !self.tables().is_empty(),
        }
    }

    /// Insert users into pwreset's own table straight (quicker than a run of `user add` each),
    /// email_key = email, so give addresses already in folded form. In statements of 500 rows:
    /// the server clients take SQL as one argument, which Linux caps at 128 KiB.
    pub fn insert_users(&self, emails: &[String]) {
        for chunk in emails.chunks(500) {
            let values: Vec<String> = chunk
                .iter()
                .map(|e| {
                    let q = self.quote(e);
                    format!("({q}, {q}, 0)")
                })
                .collect();
            self.exec(&format!(
                "INSERT INTO users (email, email_key, created_at) VALUES {}",
                values.join(", ")
            ));
        }
    }

    /// Rewrite the config file.
    pub fn set_config(&self, text: &str) {
        std::fs::write(&self.config, text).expect("write config");
    }

    /// `pwreset` with no arguments, in an environment that cannot reach the machine's own
    /// config or database: for children that run side by side, get killed or get a terminal.
    pub fn bare_std(&self) -> std::process::Command {
        self.isolated(BIN)
    }

    /// `program` in the isolated environment (`sh` for the pty tests).
    pub fn isolated(&self, program: impl AsRef<std::ffi::OsStr>) -> std::process::Command {
        let dir = self.dir.path();
        let mut c = std::process::Command::new(program);
        c.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", dir)
            .env("XDG_CONFIG_HOME", dir.join("xdg-config"))
            .env("XDG_DATA_HOME", dir.join("xdg-data"))
            .env("USER", "tester")
            .env("TERM", "dumb");
        c
    }

    /// `pwreset --config <this env's config>` as a std Command.
    pub fn std_cmd(&self) -> std::process::Command {
        let mut c = self.bare_std();
        c.arg("--config").arg(&self.config);
        c
    }

    /// `pwreset` without `--config`: the caller decides where the config comes from.
    pub fn bare(&self) -> Command {
        Command::from_std(self.bare_std())
    }

    /// `pwreset --config <this env's config>`.
    pub fn cmd(&self) -> Command {
        Command::from_std(self.std_cmd())
    }

    /// `pwreset init`, asserting success.
    pub fn init(&self) -> &Self {
        self.cmd().arg("init").assert().success();
        self
    }

    /// `pwreset user add EMAIL`, asserting success.
    pub fn add_user(&self, email: &str) -> &Self {
        self.cmd().args(["user", "add", email]).assert().success();
        self
    }

    /// A fresh reset link for `email` (made with --no-email --force).
    pub fn link(&self, email: &str) -> String {
        let out = self
            .cmd()
            .args(["request", "--no-email", "--force", email])
            .output()
            .expect("run request");
        assert!(
            out.status.success(),
            "request failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).expect("utf-8");
        text.lines().next().expect("a link on stdout").to_owned()
    }

    /// The token in a link.
    pub fn token_of(link: &str) -> String {
        link.rsplit("token=").next().expect("token=").to_owned()
    }

    /// The messages in the outbox, oldest first.
    pub fn messages(&self) -> Vec<String> {
        let Ok(rd) = std::fs::read_dir(&self.outbox) else {
            return Vec::new();
        };
        let mut files: Vec<(std::time::SystemTime, PathBuf)> = rd
            .map(|e| {
                let e = e.expect("dir entry");
                (
                    e.metadata().expect("meta").modified().expect("mtime"),
                    e.path(),
                )
            })
            .collect();
        files.sort();
        files
            .into_iter()
            .map(|(_, p)| std::fs::read_to_string(p).expect("read message"))
            .collect()
    }

    /// Open the SQLite database directly, as an application (or an attacker) would. SQLite
    /// only: tests that use it start with [`Env::sqlite_only`].
    pub fn sql(&self) -> rusqlite::Connection {
        assert!(
            self.backend == Backend::Sqlite,
            "Env::sql() is SQLite's; use exec/rows/text/i64, or skip with sqlite_only"
        );
        rusqlite::Connection::open(&self.db).expect("open db")
    }
}

/// Seconds since the Unix epoch, the way pwreset stores times.
pub fn unix_now() -> i64 {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_secs();
    i64::try_from(secs).expect("seconds fit in i64")
}

/// The integers 1..=n as a derived table `nums` with one column `i`, for bulk test data in one
/// `INSERT … SELECT … FROM {numbers(n)}` on every backend. Cross joins of the ten digits rather
/// than a recursive CTE: MariaDB stops recursion after 1,000 rows (max_recursive_iterations).
pub fn numbers(n: i64) -> String {
    let digits = (0..10)
        .map(|d| format!("SELECT {d} AS d"))
        .collect::<Vec<_>>()
        .join(" UNION ALL ");
    let places = n.max(1).to_string().len() as u32;
    let tables: Vec<String> = (0..places).map(|p| format!("({digits}) AS d{p}")).collect();
    let sum: Vec<String> = (0..places)
        .map(|p| format!("{} * d{p}.d", 10i64.pow(p)))
        .collect();
    format!(
        "(SELECT i FROM (SELECT 1 + {} AS i FROM {}) AS all_nums WHERE i <= {n}) AS nums",
        sum.join(" + "),
        tables.join(" CROSS JOIN ")
    )
}

/// Decode a quoted-printable message body so links and text can be searched.
pub fn decode(eml: &str) -> String {
    String::from_utf8_lossy(
        &quoted_printable::decode(eml.as_bytes(), quoted_printable::ParseMode::Robust).expect("qp"),
    )
    .into_owned()
}

/// stdout of an assert as a String.
pub fn stdout(a: &assert_cmd::assert::Assert) -> String {
    String::from_utf8_lossy(&a.get_output().stdout).into_owned()
}

/// stderr of an assert as a String.
pub fn stderr(a: &assert_cmd::assert::Assert) -> String {
    String::from_utf8_lossy(&a.get_output().stderr).into_owned()
}
