//! What only the MariaDB/MySQL backend has: the URL, password and TLS rules through the binary,
//! how server failures map to exit codes, id columns of other types, the GRANT check, and races
//! decided by conditional statements under REPEATABLE READ.
//!
//! Each test makes its own database from `PWRESET_TEST_MYSQL` (e.g.
//! `mysql://root@127.0.0.1:3306/test?ssl-mode=DISABLED`, an account that may create databases
//! and users) and drops it at the end. Without that variable each test says it was skipped.

use crate::harness::{Env, stderr, stdout};
use mysql::prelude::Queryable;
use std::io::Write;
use std::path::Path;

/// A throwaway database on the test server.
struct Db {
    admin: mysql::Conn,
    name: String,
    host: String,
    port: u16,
    user: String,
    /// Accounts made by the test, dropped with the database.
    accounts: Vec<String>,
}

impl Db {
    /// None (after saying so) when no test server is configured.
    fn new(test: &str) -> Option<Db> {
        let Ok(url) = std::env::var("PWRESET_TEST_MYSQL") else {
            println!("skipped {test}: PWRESET_TEST_MYSQL is not set");
            return None;
        };
        let u = url::Url::parse(&url).expect("PWRESET_TEST_MYSQL is a URL");
        let host = u.host_str().expect("a host").to_owned();
        let port = u.port().unwrap_or(3306);
        let user = match u.username() {
            "" => "root".to_owned(),
            name => name.to_owned(),
        };
        let opts = mysql::OptsBuilder::new()
            .ip_or_hostname(Some(host.clone()))
            .tcp_port(port)
            .user(Some(user.clone()))
            .pass(u.password().map(str::to_owned))
            .prefer_socket(false);
        let mut admin = mysql::Conn::new(opts).expect("connect to PWRESET_TEST_MYSQL");
        let name = format!(
            "pwreset_t_{}",
            tempfile::Builder::new()
                .tempfile()
                .expect("a random name")
                .path()
                .file_name()
                .expect("a file name")
                .to_string_lossy()
                .chars()
                .filter(char::is_ascii_alphanumeric)
                .collect::<String>()
                .to_ascii_lowercase()
        );
        admin
            .query_drop(format!("CREATE DATABASE `{name}` CHARACTER SET utf8mb4"))
            .expect("create the test database");
        admin.select_db(&name).expect("use the test database");
        Some(Db {
            admin,
            name,
            host,
            port,
            user,
            accounts: Vec::new(),
        })
    }

    /// The `database` URL for `user` (plaintext: the test server is on loopback).
    fn url_for(&self, user: &str) -> String {
        format!(
            "mysql://{user}@{}:{}/{}?ssl-mode=DISABLED",
            self.host, self.port, self.name
        )
    }

    fn url(&self) -> String {
        self.url_for(&self.user)
    }

    fn sql(&mut self, sql: &str) {
        self.admin
            .query_drop(sql)
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    fn one<T: mysql::prelude::FromValue>(&mut self, sql: &str) -> T {
        self.admin
            .query_first::<T, _>(sql)
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
            .unwrap_or_else(|| panic!("{sql}: no row"))
    }

    /// A new account with a password, for tests of logins and grants.
    fn account(&mut self, password: &str) -> String {
        let user = format!("{}_u{}", self.name, self.accounts.len());
        let user = user[user.len().saturating_sub(32)..].to_owned();
        self.sql(&format!(
            "CREATE USER '{user}'@'%' IDENTIFIED BY '{password}'"
        ));
        self.accounts.push(user.clone());
        user
    }

    /// Every right on pwreset's own tables for `user`, as the least-privilege GRANTs give.
    fn grant_own_tables(&mut self, user: &str) {
        let name = self.name.clone();
        for t in [
            "pwreset_tokens",
            "pwreset_audit",
            "pwreset_throttle",
            "pwreset_runs",
            "pwreset_limits",
            "pwreset_secrets",
            "pwreset_schema",
        ] {
            self.sql(&format!("GRANT ALL ON `{name}`.{t} TO '{user}'@'%'"));
        }
    }

    /// An installation whose config points at this database, with `extra` appended.
    fn env(&self, url: &str, extra: &str) -> Env {
        self.env_with(url, "", extra)
    }

    /// The same, with `top` (keys outside any table) right after `database`.
    fn env_with(&self, url: &str, top: &str, extra: &str) -> Env {
        let (url, top, extra) = (url.to_owned(), top.to_owned(), extra.to_owned());
        Env::with_toml(move |dir| {
            let toml = crate::harness::default_toml(dir);
            let (first, rest) = toml.split_once('\n').expect("a first line");
            assert!(first.starts_with("database = "));
            format!("database = \"{url}\"\n{top}\n{rest}\n{extra}")
        })
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        let _ = self
            .admin
            .query_drop(format!("DROP DATABASE IF EXISTS `{}`", self.name));
        for a in std::mem::take(&mut self.accounts) {
            let _ = self
                .admin
                .query_drop(format!("DROP USER IF EXISTS '{a}'@'%'"));
        }
    }
}

fn code(a: &assert_cmd::assert::Assert) -> i32 {
    a.get_output().status.code().unwrap_or(-1)
}

fn write_secret(path: &Path, text: &str, mode: u32) {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)
        .expect("create secret file");
    f.write_all(text.as_bytes()).expect("write secret");
}

const GOOD: &str = "correct horse battery staple";

/// init, user add, request, verify, reset, verify again, purge: pwreset's own tables.
#[test]
fn mysql_own_users_end_to_end() {
    let Some(mut db) = Db::new("mysql_own_users_end_to_end") else {
        return;
    };
    let env = db.env(&db.url(), "");
    env.init();
    env.cmd().arg("init").assert().success();
    env.add_user("alice@example.com");
    let a = env
        .cmd()
        .args(["user", "add", "ALICE@Example.com"])
        .assert();
    assert_eq!(code(&a), 65, "{}", stderr(&a));
    let token = Env::token_of(&env.link("alice@example.com"));
    env.cmd().args(["verify", &token]).assert().success();
    env.cmd()
        .args(["reset", "--password-stdin", &token])
        .write_stdin(format!("{GOOD}\n"))
        .assert()
        .success();
    assert_eq!(code(&env.cmd().args(["verify", &token]).assert()), 1);
    let hash: String =
        db.one("SELECT password_hash FROM users WHERE email_key = 'alice@example.com'");
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    let a = env
        .cmd()
        .args(["purge-expired", "--json"])
        .assert()
        .success();
    assert!(stdout(&a).contains("\"used\":1"), "{}", stdout(&a));
    let version: i64 = db.one("SELECT MAX(version) FROM pwreset_schema");
    assert_eq!(version, 5);
}

#[test]
fn mysql_password_in_url_is_78_and_not_echoed() {
    let Some(db) = Db::new("mysql_password_in_url_is_78_and_not_echoed") else {
        return;
    };
    let url = format!(
        "mysql://{}:hunter2secret@{}:{}/{}?ssl-mode=DISABLED",
        db.user, db.host, db.port, db.name
    );
    let env = db.env(&url, "");
    let a = env.cmd().arg("init").assert();
    assert_eq!(code(&a), 78);
    assert!(
        stderr(&a).contains("database_password_file"),
        "{}",
        stderr(&a)
    );
    assert!(!stderr(&a).contains("hunter2secret"), "{}", stderr(&a));
}

#[test]
fn mysql_logins_map_to_exit_codes() {
    let Some(mut db) = Db::new("mysql_logins_map_to_exit_codes") else {
        return;
    };
    let user = db.account("right-horse-battery");
    db.sql(&format!("GRANT ALL ON `{}`.* TO '{user}'@'%'", db.name));
    let url = db.url_for(&user);
    let dir = tempfile::tempdir().expect("tempdir");
    let pw = dir.path().join("db-password");

    // A password file others can read: 77, before any connection.
    write_secret(&pw, "right-horse-battery", 0o644);
    std::fs::set_permissions(&pw, std::os::unix::fs::PermissionsExt::from_mode(0o644))
        .expect("chmod");
    let env = db.env_with(
        &url,
        &format!("database_password_file = \"{}\"", pw.display()),
        "",
    );
    let a = env.cmd().arg("init").assert();
    assert_eq!(code(&a), 77, "{}", stderr(&a));

    // The right password from the file (0600): works.
    write_secret(&pw, "right-horse-battery", 0o600);
    std::fs::set_permissions(&pw, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .expect("chmod");
    let a = env.cmd().arg("init").assert();
    assert_eq!(code(&a), 0, "{}", stderr(&a));

    // A wrong one: 77, and the password is not in the message.
    write_secret(&pw, "wrong-password-xyz", 0o600);
    let a = env.cmd().args(["user", "list"]).assert();
    assert_eq!(code(&a), 77, "{}", stderr(&a));
    assert!(!stderr(&a).contains("wrong-password-xyz"), "{}", stderr(&a));
    assert!(stderr(&a).contains(&user), "{}", stderr(&a));
}

#[test]
fn mysql_unknown_database_is_78_and_server_down_is_75() {
    let Some(db) = Db::new("mysql_unknown_database_is_78_and_server_down_is_75") else {
        return;
    };
    let url = format!(
        "mysql://{}@{}:{}/{}_missing?ssl-mode=DISABLED",
        db.user, db.host, db.port, db.name
    );
    let a = db.env(&url, "").cmd().arg("init").assert();
    assert_eq!(code(&a), 78, "{}", stderr(&a));
    assert!(stderr(&a).contains("CREATE DATABASE"), "{}", stderr(&a));

    // A port nobody listens on: take a free one and let it go.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let url = format!("mysql://root@127.0.0.1:{port}/app?ssl-mode=DISABLED");
    let a = db.env(&url, "").cmd().args(["user", "list"]).assert();
    assert_eq!(code(&a), 75, "{}", stderr(&a));
    assert!(stderr(&a).contains("try again"), "{}", stderr(&a));

    // An untrusted certificate or no TLS at all: 69 either way (the URL asks for TLS).
    let url = format!("mysql://{}@{}:{}/{}", db.user, db.host, db.port, db.name);
    let a = db.env(&url, "").cmd().args(["user", "list"]).assert();
    assert_eq!(code(&a), 69, "{}", stderr(&a));
    assert!(stderr(&a).contains("TLS"), "{}", stderr(&a));
}

/// A reset through an application's table whose ids are `kind`; returns the stored hash.
fn app_table_reset(db: &mut Db, id_type: &str, id: &str) -> String {
    db.sql(&format!(
        "CREATE TABLE accounts (uid {id_type} NOT NULL PRIMARY KEY,
            mail VARCHAR(255) NOT NULL UNIQUE, pw VARCHAR(255) NULL)
         DEFAULT CHARSET utf8mb4 COLLATE utf8mb4_unicode_ci"
    ));
    let sql = format!(
        "INSERT INTO accounts VALUES ({id}, 'Bob@Example.com', NULL), ({}, 'carol@example.com', NULL)",
        other_id(id_type)
    );
    db.sql(&sql);
    let env = db.env(
        &db.url(),
        "[users]\ntable = \"accounts\"\nid_column = \"uid\"\nemail_column = \"mail\"\npassword_column = \"pw\"\npassword_format = \"argon2id\"\n",
    );
    let a = env.cmd().arg("init").assert();
    assert_eq!(code(&a), 0, "{}", stderr(&a));
    // The address as typed differs in case: found through the table's own index.
    let token = Env::token_of(&env.link("bob@example.com"));
    let a = env
        .cmd()
        .args(["verify", "--json", &token])
        .assert()
        .success();
    assert!(stdout(&a).contains("Bob@Example.com"), "{}", stdout(&a));
    env.cmd()
        .args(["reset", "--password-stdin", &token])
        .write_stdin(format!("{GOOD}\n"))
        .assert()
        .success();
    db.one("SELECT pw FROM accounts WHERE mail = 'Bob@Example.com'")
}

fn other_id(id_type: &str) -> &'static str {
    if id_type.starts_with("BINARY") {
        "UNHEX('00000000000000000000000000000002')"
    } else if id_type.starts_with("BIGINT") {
        "2"
    } else {
        "'00000000-0000-0000-0000-000000000002'"
    }
}

#[test]
fn mysql_uuid_char36_ids() {
    let Some(mut db) = Db::new("mysql_uuid_char36_ids") else {
        return;
    };
    let hash = app_table_reset(
        &mut db,
        "CHAR(36)",
        "'0192f3c4-5e6f-7a8b-9c0d-1e2f3a4b5c6d'",
    );
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    let ty: String = db.one(
        "SELECT COLUMN_TYPE FROM information_schema.COLUMNS
          WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'pwreset_tokens' AND COLUMN_NAME = 'user_id'",
    );
    assert_eq!(ty, "char(36)");
}

#[test]
fn mysql_binary16_ids() {
    let Some(mut db) = Db::new("mysql_binary16_ids") else {
        return;
    };
    let hash = app_table_reset(
        &mut db,
        "BINARY(16)",
        "UNHEX('0192f3c45e6f7a8b9c0d1e2f3a4b5c6d')",
    );
    assert!(hash.starts_with("$argon2id$"), "{hash}");
}

/// Laravel's users table: BIGINT UNSIGNED AUTO_INCREMENT ids, a case-insensitive email column.
#[test]
fn mysql_laravel_bigint_unsigned_ids() {
    let Some(mut db) = Db::new("mysql_laravel_bigint_unsigned_ids") else {
        return;
    };
    let hash = app_table_reset(&mut db, "BIGINT UNSIGNED", "1");
    assert!(hash.starts_with("$argon2id$"), "{hash}");
}

#[test]
fn mysql_other_id_types_are_refused_by_name() {
    let Some(mut db) = Db::new("mysql_other_id_types_are_refused_by_name") else {
        return;
    };
    db.sql("CREATE TABLE accounts (uid DATETIME NOT NULL PRIMARY KEY, email VARCHAR(255), password_hash VARCHAR(255))");
    let env = db.env(
        &db.url(),
        "[users]\ntable = \"accounts\"\nid_column = \"uid\"\n",
    );
    let a = env.cmd().arg("init").assert();
    assert_eq!(code(&a), 78, "{}", stderr(&a));
    assert!(stderr(&a).contains("datetime"), "{}", stderr(&a));
}

/// Least privilege: column grants on the application's table. A missing one is named.
#[test]
fn mysql_grant_check_names_the_missing_grant() {
    let Some(mut db) = Db::new("mysql_grant_check_names_the_missing_grant") else {
        return;
    };
    db.sql("CREATE TABLE accounts (id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY, email VARCHAR(255) UNIQUE, password VARCHAR(255), remember_token VARCHAR(100))");
    let user = db.account("grant-check-pw");
    let name = db.name.clone();
    db.sql(&format!(
        "GRANT SELECT (id, email, password) ON `{name}`.accounts TO '{user}'@'%'"
    ));
    db.grant_own_tables(&user);
    let env = db.env(
        &db.url_for(&user),
        "[users]\ntable = \"accounts\"\npassword_column = \"password\"\n",
    );
    let run = |env: &Env| {
        let mut c = env.cmd();
        c.env("PWRESET_DB_PASSWORD", "grant-check-pw");
        c.arg("init").assert()
    };
    let a = run(&env);
    assert_eq!(code(&a), 77, "{}", stderr(&a));
    assert!(
        stderr(&a).contains("GRANT UPDATE (`password`) ON"),
        "{}",
        stderr(&a)
    );
    db.sql(&format!(
        "GRANT UPDATE (password) ON `{name}`.accounts TO '{user}'@'%'"
    ));
    let a = run(&env);
    assert_eq!(code(&a), 0, "{}", stderr(&a));
}

/// A mapped column the account may not read: 77 with the column-level GRANT that fixes it,
/// not 78 "no such column".
#[test]
fn mysql_a_column_the_account_cannot_read_is_77_with_its_grant() {
    let Some(mut db) = Db::new("mysql_a_column_the_account_cannot_read_is_77_with_its_grant")
    else {
        return;
    };
    db.sql("CREATE TABLE accounts (id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY, email VARCHAR(255) UNIQUE, password VARCHAR(255), first_name VARCHAR(100))");
    let user = db.account("column-check-pw");
    let name = db.name.clone();
    let mapping = "[users]\ntable = \"accounts\"\npassword_column = \"password\"\nname_column = \"first_name\"\npassword_format = \"bcrypt\"\n";
    // The owner creates pwreset's tables; as root it hears how to give pwreset an account of
    // its own, statement by statement.
    let a = db
        .env(&db.url(), mapping)
        .cmd()
        .arg("init")
        .assert()
        .success();
    let err = stderr(&a);
    if err.contains("may create users") {
        assert!(
            err.contains("CREATE USER 'pwreset'@'localhost'")
                && err.contains(&format!(
                    "GRANT SELECT (`id`, `email`, `password`, `first_name`), UPDATE (`password`) ON `{name}`.`accounts` TO 'pwreset'@'localhost';"
                ))
                && err.contains("`pwreset_runs` TO"),
            "{err}"
        );
    }
    db.sql(&format!(
        "GRANT SELECT (id, email, password), UPDATE (password) ON `{name}`.accounts TO '{user}'@'%'"
    ));
    db.grant_own_tables(&user);
    let env = db.env(&db.url_for(&user), mapping);
    let run = |env: &Env| {
        let mut c = env.cmd();
        c.env("PWRESET_DB_PASSWORD", "column-check-pw");
        c.arg("init").assert()
    };
    let a = run(&env);
    assert_eq!(code(&a), 77, "{}", stderr(&a));
    let err = stderr(&a);
    assert!(
        err.contains("GRANT SELECT (") && err.contains("`first_name`") && err.contains(&name),
        "{err}"
    );
    assert!(!err.contains("has no column"), "{err}");
    db.sql(&format!(
        "GRANT SELECT (first_name) ON `{name}`.accounts TO '{user}'@'%'"
    ));
    let a = run(&env);
    assert_eq!(code(&a), 0, "{}", stderr(&a));
}

/// Many requests for one user at once: the throttle lets exactly one through; many resets
/// with one token at once: exactly one changes the password.
#[test]
fn mysql_races_have_one_winner() {
    let Some(db) = Db::new("mysql_races_have_one_winner") else {
        return;
    };
    let env = db.env(&db.url(), "");
    env.init();
    env.add_user("race@example.com");
    let children: Vec<_> = (0..6)
        .map(|_| {
            env.std_cmd()
                .args(["request", "--no-email", "--json", "race@example.com"])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::null())
                .spawn()
                .expect("spawn request")
        })
        .collect();
    let outs: Vec<String> = children
        .into_iter()
        .map(|c| String::from_utf8_lossy(&c.wait_with_output().expect("wait").stdout).into_owned())
        .collect();
    let created = outs.iter().filter(|o| o.contains("\"created\"")).count();
    assert_eq!(created, 1, "{outs:?}");
    let token = Env::token_of(&env.link("race@example.com"));
    let children: Vec<_> = (0..4)
        .map(|_| {
            let mut c = env
                .std_cmd()
                .args(["reset", "--password-stdin", &token])
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .expect("spawn reset");
            c.stdin
                .take()
                .expect("stdin")
                .write_all(format!("{GOOD}\n").as_bytes())
                .expect("write");
            c
        })
        .collect();
    let ok = children
        .into_iter()
        .map(|c| c.wait_with_output().expect("wait").status.success())
        .filter(|s| *s)
        .count();
    assert_eq!(ok, 1);
}

/// The walkthrough in docs/laravel.md: Laravel's users table, docs/mariadb.md's grants, a reset
/// end to end, and only the password column changed.
#[test]
fn mysql_laravel_walkthrough() {
    let Some(mut db) = Db::new("mysql_laravel_walkthrough") else {
        return;
    };
    db.sql(
        "CREATE TABLE users (
           id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
           name VARCHAR(255) NOT NULL,
           email VARCHAR(255) NOT NULL UNIQUE,
           email_verified_at TIMESTAMP NULL,
           password VARCHAR(255) NOT NULL,
           remember_token VARCHAR(100) NULL,
           created_at TIMESTAMP NULL, updated_at TIMESTAMP NULL
         ) DEFAULT CHARSET utf8mb4 COLLATE utf8mb4_unicode_ci",
    );
    db.sql("INSERT INTO users (name, email, password, remember_token) VALUES ('Ada', 'Ada@Example.com', '$2y$12$abcdefghijklmnopqrstuuABCDEFGHIJKLMNOPQRSTUVWXYZ01234', 'keep-me')");
    let user = db.account("laravel-walkthrough-pw");
    let name = db.name.clone();
    db.sql(&format!(
        "GRANT SELECT (id, email, password), UPDATE (password) ON `{name}`.users TO '{user}'@'%'"
    ));
    db.grant_own_tables(&user);
    let dir = tempfile::tempdir().expect("tempdir");
    let pw = dir.path().join("db-password");
    write_secret(&pw, "laravel-walkthrough-pw\n", 0o600);
    let env = db.env_with(
        &db.url_for(&user),
        &format!("database_password_file = \"{}\"", pw.display()),
        "[users]\npassword_column = \"password\"\n",
    );
    let a = env.cmd().arg("init").assert();
    assert_eq!(code(&a), 0, "{}", stderr(&a));
    let link = env.link("ada@example.com");
    let a = env.cmd().args(["verify", &link]).assert().success();
    assert!(stdout(&a).contains("Ada@Example.com"), "{}", stdout(&a));
    env.cmd()
        .args(["reset", "--password-stdin", &link])
        .write_stdin(format!("{GOOD}\n"))
        .assert()
        .success();
    // The table holds Laravel's $2y$ bcrypt at cost 12: so does the new password.
    let hash: String = db.one("SELECT password FROM users WHERE id = 1");
    assert!(hash.starts_with("$2y$12$"), "{hash}");
    let token: String = db.one("SELECT remember_token FROM users WHERE id = 1");
    assert_eq!(token, "keep-me");
    assert_eq!(code(&env.cmd().args(["verify", &link]).assert()), 1);
}

/// A purge of a mostly dead table (primary-key ranges, many of them with nothing dead) and one
/// of a few old tokens (the dead_at index) each delete exactly the dead tokens and count each
/// kind.
#[test]
fn mysql_purge_counts_each_kind_in_both_walks() {
    let Some(mut db) = Db::new("mysql_purge_counts_each_kind_in_both_walks") else {
        return;
    };
    let env = db.env(&db.url(), "");
    env.init();
    env.add_user("alice@example.com");
    let alice: i64 = db.one("SELECT id FROM users");
    let now = crate::harness::unix_now();
    // 3,000 tokens: seq % 10 = 0 used, 1 revoked, 2 live, the rest expired; ids 1..3000.
    let fill = |db: &mut Db, dead: i64| {
        db.sql(&format!(
            "TRUNCATE pwreset_tokens;
             INSERT INTO pwreset_tokens (id, digest, user_id, binding, created_at, expires_at,
                                         used_at, revoked_at, dead_at)
             SELECT seq, UNHEX(SHA2(seq, 256)), {alice}, UNHEX(MD5(seq)), {dead}, {dead},
                    IF(seq % 10 = 0, {dead}, NULL), IF(seq % 10 = 1, {dead}, NULL),
                    IF(seq % 10 = 2, {live}, {dead})
               FROM seq_1_to_3000;
             ANALYZE TABLE pwreset_tokens",
            live = now + 3600,
        ));
    };
    let purge = |older_than: &str| -> serde_json::Value {
        let a = env
            .cmd()
            .args(["purge-expired", "--batch-size", "100", "--json"])
            .args(["--older-than", older_than])
            .assert()
            .success();
        serde_json::from_str(stdout(&a).trim()).expect("json")
    };
    fill(&mut db, now - 7200);
    assert_eq!(
        purge("0s"),
        serde_json::json!({"purged": 2700, "expired": 2100, "used": 300, "revoked": 300, "dry_run": false})
    );
    let left: i64 = db.one(&format!(
        "SELECT COUNT(*) FROM pwreset_tokens WHERE dead_at > {now}"
    ));
    assert_eq!(left, 300);
    let all: i64 = db.one("SELECT COUNT(*) FROM pwreset_tokens");
    assert_eq!(all, 300, "only the live tokens are left");

    // Ids 1..100 (90 dead, 10 live) died two hours ago, the rest ten minutes ago.
    fill(&mut db, now - 600);
    db.sql(&format!(
        "UPDATE pwreset_tokens SET dead_at = {} WHERE id <= 100 AND dead_at < {now}",
        now - 7200
    ));
    assert_eq!(
        purge("1h"),
        serde_json::json!({"purged": 90, "expired": 70, "used": 10, "revoked": 10, "dry_run": false})
    );
    let all: i64 = db.one("SELECT COUNT(*) FROM pwreset_tokens");
    assert_eq!(all, 2910);
}

/// `request --all` with printed links stores its chunks over two more connections at once:
/// the links come out in the users' order, one per user; when one chunk fails, every chunk
/// that was stored still gets its links printed, and the failed one none.
#[test]
fn mysql_parallel_request_all_prints_in_order_and_every_stored_link() {
    let Some(mut db) = Db::new("mysql_parallel_request_all") else {
        return;
    };
    let users = 12_001;
    let env = db.env(&db.url(), "");
    env.init();
    db.sql(&format!(
        "INSERT INTO users (email, email_key, created_at)
         SELECT CONCAT('user', seq, '@example.com'), CONCAT('user', seq, '@example.com'), 0
           FROM seq_1_to_{users}"
    ));
    let emails = |a: &assert_cmd::assert::Assert| -> Vec<String> {
        stdout(a)
            .lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).expect("json");
                assert_eq!(v["status"], "created", "{l}");
                v["email"].as_str().unwrap_or_default().to_owned()
            })
            .collect()
    };
    let a = env
        .cmd()
        .args(["request", "--all", "--no-email", "--json"])
        .assert()
        .success();
    let printed = emails(&a);
    assert_eq!(printed.len(), users);
    for (i, email) in printed.iter().enumerate() {
        assert_eq!(*email, format!("user{}@example.com", i + 1));
    }
    let distinct: i64 = db.one("SELECT COUNT(DISTINCT user_id) FROM pwreset_tokens");
    assert_eq!(distinct, users as i64);

    // Again with --force, every user holding an open link, and the second chunk failing.
    let before: i64 = db.one("SELECT MAX(id) FROM pwreset_tokens");
    db.sql(
        "CREATE TRIGGER refuse BEFORE INSERT ON pwreset_tokens FOR EACH ROW
           IF NEW.user_id = 7000 THEN
             SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'no tokens for user 7000';
           END IF",
    );
    let a = env
        .cmd()
        .args(["request", "--all", "--no-email", "--json", "--force"])
        .assert()
        .failure();
    assert!(
        stderr(&a).contains("no tokens for user 7000"),
        "{}",
        stderr(&a)
    );
    let printed = emails(&a);
    let stored: Vec<String> = db
        .admin
        .query(format!(
            "SELECT u.email FROM pwreset_tokens t JOIN users u ON u.id = t.user_id
              WHERE t.id > {before} ORDER BY u.id"
        ))
        .expect("query");
    assert!(
        printed == stored,
        "every stored token's link is printed, in order: {} printed, {} stored",
        printed.len(),
        stored.len()
    );
    assert!(
        printed.len() >= 5000,
        "the first chunk was stored: {}",
        printed.len()
    );
    let new_for_5001: i64 = db.one(
        "SELECT COUNT(*) FROM pwreset_tokens t JOIN users u ON u.id = t.user_id
          WHERE u.email = 'user5001@example.com'",
    );
    assert_eq!(new_for_5001, 1, "the failed chunk stored nothing");
}

/// An `after_reset` statement the account may not run (no DELETE on the application's
/// sessions): 77 naming the privilege and a GRANT, from init (MariaDB checks privileges at
/// PREPARE) and from a reset, which rolls back with the link still working. The GRANT list for
/// an account of its own says after_reset needs its own rights.
#[test]
fn mysql_after_reset_without_its_privilege_is_77_with_a_grant() {
    let Some(mut db) = Db::new("mysql_after_reset_without_its_privilege_is_77_with_a_grant") else {
        return;
    };
    db.sql("CREATE TABLE accounts (id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY, email VARCHAR(255) UNIQUE, password VARCHAR(255))");
    db.sql("CREATE TABLE sessions (id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY, user_id BIGINT UNSIGNED NOT NULL, data TEXT)");
    db.sql("INSERT INTO accounts (email, password) VALUES ('erin@example.com', NULL)");
    db.sql("INSERT INTO sessions (user_id, data) VALUES (1, 'laptop'), (1, 'phone')");
    let mapping = "[users]\ntable = \"accounts\"\npassword_column = \"password\"\npassword_format = \"argon2id\"\nafter_reset = [\"DELETE FROM sessions WHERE user_id = :user_id\"]\n";
    let a = db
        .env(&db.url(), mapping)
        .cmd()
        .arg("init")
        .assert()
        .success();
    let err = stderr(&a);
    if err.contains("may create users") {
        assert!(
            err.contains("-- and the rights the 1 [users] after_reset statement(s) use, e.g. GRANT DELETE ON `")
                && err.contains("`.`sessions` TO 'pwreset'@'localhost';"),
            "{err}"
        );
    }
    let user = db.account("after-reset-pw");
    let name = db.name.clone();
    db.sql(&format!(
        "GRANT SELECT (id, email, password), UPDATE (password) ON `{name}`.accounts TO '{user}'@'%'"
    ));
    db.sql(&format!(
        "GRANT SELECT ON `{name}`.sessions TO '{user}'@'%'"
    ));
    db.grant_own_tables(&user);
    let dir = tempfile::tempdir().expect("tempdir");
    let pw = dir.path().join("db-password");
    write_secret(&pw, "after-reset-pw\n", 0o600);
    let env = db.env_with(
        &db.url_for(&user),
        &format!("database_password_file = \"{}\"", pw.display()),
        mapping,
    );
    let denied = |err: &str| {
        err.contains("users.after_reset[0] was refused for lack of privilege")
            && err.contains("DELETE command denied")
            && err.contains(&format!(
                "GRANT DELETE ON `{name}`.sessions TO '{user}'@'localhost';"
            ))
    };
    let a = env.cmd().arg("init").assert();
    assert_eq!(code(&a), 77, "{}", stderr(&a));
    assert!(denied(&stderr(&a)), "{}", stderr(&a));
    let link = env.link("erin@example.com");
    let a = env
        .cmd()
        .args(["reset", "--password-stdin", &link])
        .write_stdin(format!("{GOOD}\n"))
        .assert();
    assert_eq!(code(&a), 77, "{}", stderr(&a));
    let err = stderr(&a);
    assert!(denied(&err) && err.contains("link still works"), "{err}");
    assert!(
        !err.contains("$argon2id$") && !err.contains("erin@example.com"),
        "{err}"
    );
    let unset: i64 = db.one("SELECT COUNT(*) FROM accounts WHERE password IS NULL");
    assert_eq!(unset, 1);
    let sessions: i64 = db.one("SELECT COUNT(*) FROM sessions");
    assert_eq!(sessions, 2);
    db.sql(&format!(
        "GRANT DELETE ON `{name}`.sessions TO '{user}'@'%'"
    ));
    env.cmd()
        .args(["reset", "--password-stdin", &link])
        .write_stdin(format!("{GOOD}\n"))
        .assert()
        .success();
    let sessions: i64 = db.one("SELECT COUNT(*) FROM sessions");
    assert_eq!(sessions, 0);
}
