//! Integration tests for init.

use crate::harness::{Env, default_toml, stderr};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// The default config with a `[users]` mapping onto an application table appended.
fn mapped_toml(dir: &Path, table: &str, id: &str, email: &str, password: &str) -> String {
    format!(
        "{}\n[users]\ntable = \"{table}\"\nid_column = \"{id}\"\nemail_column = \"{email}\"\npassword_column = \"{password}\"\n",
        default_toml(dir)
    )
}

fn table_names(env: &Env) -> Vec<String> {
    env.tables()
}

#[test]
fn creates_the_database_and_missing_folders_with_mode_0600() {
    let env = Env::new();
    if env.sqlite_only("creating the database file (--db PATH) and its folders") {
        return;
    }
    let db = env.dir.path().join("var/lib/pwreset/pwreset.db");
    let folder = db.parent().expect("the database has a folder");
    assert!(!folder.exists());
    let a = env
        .cmd()
        .arg("--db")
        .arg(&db)
        .arg("init")
        .assert()
        .success();
    assert!(
        stderr(&a).contains("created SQLite database"),
        "{}",
        stderr(&a)
    );
    let mode = std::fs::metadata(&db)
        .expect("the database was created")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600, "database mode is {mode:o}");
    // The folder it made is not world-readable either.
    let dir_mode = std::fs::metadata(folder)
        .expect("the folder was created")
        .permissions()
        .mode()
        & 0o077;
    assert_eq!(dir_mode, 0, "new folder is open to group/others");
}

#[test]
fn creates_the_database_named_in_the_config() {
    let env = Env::new();
    if env.sqlite_only("the database file and its mode") {
        return;
    }
    assert!(!env.db.exists());
    env.init();
    assert!(env.db.exists());
    let mode = std::fs::metadata(&env.db)
        .expect("the database was created")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
}

#[test]
fn is_idempotent() {
    let env = Env::new();
    env.init();
    env.add_user("alice@example.com");
    let a = env.cmd().arg("init").assert().success();
    assert!(stderr(&a).contains("up to date"), "{}", stderr(&a));
    // The second run kept the data.
    assert_eq!(env.i64("SELECT count(*) FROM users"), 1);
    // And a third is still fine.
    env.cmd().arg("init").assert().success();
}

#[test]
fn creates_the_tools_tables_and_the_users_table() {
    let env = Env::new();
    env.init();
    let names = table_names(&env);
    for t in ["pwreset_tokens", "pwreset_audit", "users"] {
        assert!(names.iter().any(|n| n == t), "no table {t} in {names:?}");
    }
    // The tables have the columns the rest of the tests rely on: naming them in a query that
    // returns nothing fails (with the database's "no such column") when one is missing.
    for (table, cols) in [
        (
            "pwreset_tokens",
            "id, digest, user_id, binding, created_at, expires_at, used_at, revoked_at, revoked_reason, dead_at",
        ),
        (
            "pwreset_audit",
            "id, at, actor, action, user_id, email, outcome, detail",
        ),
        ("pwreset_throttle", "user_id, last_at"),
        ("pwreset_secrets", "name, value, created_at"),
        ("pwreset_schema", "version, applied_at"),
        (
            "users",
            "id, email, email_key, name, password_hash, created_at",
        ),
    ] {
        let rows = env.rows(&format!("SELECT {cols} FROM {table} WHERE 1 = 0"));
        assert!(rows.is_empty(), "{table}: {rows:?}");
    }
}

#[test]
fn uses_wal_and_sets_the_user_version() {
    let env = Env::new();
    if env.sqlite_only("WAL and PRAGMA user_version") {
        return;
    }
    env.init();
    let mode = env.text("PRAGMA journal_mode").expect("a journal mode");
    assert_eq!(mode.to_ascii_lowercase(), "wal");
    assert_eq!(env.i64("PRAGMA user_version"), 5);
}

#[test]
fn the_ledger_records_every_schema_version() {
    let env = Env::new();
    env.init();
    // On every backend alike.
    let ledger: Vec<i64> = env
        .rows("SELECT version FROM pwreset_schema ORDER BY version")
        .into_iter()
        .map(|r| {
            r[0].as_deref()
                .expect("a version")
                .parse()
                .expect("a number")
        })
        .collect();
    assert_eq!(ledger, [1, 2, 3, 4, 5]);
    // Each with the time it was applied, in unix seconds.
    let now = crate::harness::unix_now();
    let oldest = env.i64("SELECT min(applied_at) FROM pwreset_schema");
    assert!((now - 600..=now).contains(&oldest), "applied_at {oldest}");
}

#[test]
fn a_mapping_to_a_missing_table_is_a_config_error() {
    let env = Env::with_toml(|d| mapped_toml(d, "accounts", "account_id", "mail", "pw_hash"));
    let a = env.cmd().arg("init").assert().code(78);
    let err = stderr(&a);
    assert!(err.contains("accounts"), "{err}");
    assert!(err.contains("users.table"), "{err}");
}

#[test]
fn a_mapping_to_a_missing_column_is_a_config_error() {
    let env = Env::with_toml(|d| mapped_toml(d, "accounts", "account_id", "mail", "pw_hash"));
    env.exec("CREATE TABLE accounts (account_id INTEGER PRIMARY KEY, mail VARCHAR(254))");
    let a = env.cmd().arg("init").assert().code(78);
    let err = stderr(&a);
    assert!(err.contains("pw_hash"), "{err}");
    assert!(err.contains("users.password_column"), "{err}");
    // The columns that do exist are not blamed.
    assert!(!err.contains("users.email_column"), "{err}");
}

#[test]
fn a_mapping_to_an_existing_application_table_works() {
    let env = Env::with_toml(|d| mapped_toml(d, "accounts", "account_id", "mail", "pw_hash"));
    env.exec(
        "CREATE TABLE accounts (account_id INTEGER PRIMARY KEY, mail VARCHAR(254) NOT NULL, pw_hash TEXT);
         INSERT INTO accounts (account_id, mail) VALUES (7, 'Carol@Example.com');",
    );
    env.init();
    let names = table_names(&env);
    assert!(names.iter().any(|n| n == "pwreset_tokens"), "{names:?}");
    // pwreset does not create its own users table next to the application's.
    assert!(!names.iter().any(|n| n == "users"), "{names:?}");
    // The application's rows are untouched and usable.
    let link = env.link("carol@example.com");
    env.cmd().args(["verify", &link]).assert().success();
}

#[test]
fn other_commands_on_a_missing_database_say_to_run_init() {
    let env = Env::new();
    for args in [
        &["user", "list"][..],
        &["user", "add", "alice@example.com"],
        &["request", "alice@example.com"],
        &["audit"],
        &["purge-expired"],
    ] {
        let a = env.cmd().args(args).assert().code(78);
        assert!(
            stderr(&a).contains("pwreset init"),
            "{args:?}: {}",
            stderr(&a)
        );
    }
    assert!(
        !env.database_created(),
        "a command other than init created the database"
    );
}

/// A version 3 database (before the shared web limits) is migrated by `init`, on every
/// backend: the limits table appears, the ledger gets versions 4 and 5, and commands that
/// write wait for it.
#[test]
fn a_version_3_database_gets_the_shared_limits_table() {
    let env = Env::new();
    env.init();
    // Back to version 3 as a pwreset of then left it.
    env.exec("DROP TABLE pwreset_limits");
    env.exec("DROP TABLE pwreset_secrets");
    env.exec("DELETE FROM pwreset_schema WHERE version >= 4");
    if *env.backend() == crate::harness::Backend::Sqlite {
        env.exec("PRAGMA user_version = 3");
    }
    assert!(!env.tables().iter().any(|t| t == "pwreset_limits"));
    let a = env.cmd().args(["purge-expired"]).assert().code(78);
    assert!(
        stderr(&a).contains("schema 3, need 5") && stderr(&a).contains("pwreset init"),
        "{}",
        stderr(&a)
    );
    let a = env.cmd().arg("init").assert().success();
    assert!(
        stderr(&a).contains("from schema version 3 to 5"),
        "{}",
        stderr(&a)
    );
    assert!(env.tables().iter().any(|t| t == "pwreset_limits"));
    let rows = env.rows("SELECT key_hash, hits, expires_at FROM pwreset_limits WHERE 1 = 0");
    assert!(rows.is_empty(), "{rows:?}");
    assert_eq!(env.i64("SELECT max(version) FROM pwreset_schema"), 5);
    env.cmd().arg("purge-expired").assert().success();
}

/// A version 4 database (before the shared CSRF key) is migrated by `init`, on every backend,
/// keeping what the limits table held: the secrets table appears, the ledger gets version 5,
/// and serve refuses to start until then.
#[test]
fn a_version_4_database_gets_the_shared_secrets_table() {
    let env = Env::new();
    env.init();
    // Back to version 4 as a pwreset of then left it, with a window being counted.
    env.exec("DROP TABLE pwreset_secrets");
    env.exec("DELETE FROM pwreset_schema WHERE version = 5");
    if *env.backend() == crate::harness::Backend::Sqlite {
        env.exec("PRAGMA user_version = 4");
    }
    env.exec(&format!(
        "INSERT INTO pwreset_limits (key_hash, hits, expires_at) VALUES ({}, 2, 4102444800)",
        env.blob(&[0xaa; 32])
    ));
    assert!(!env.tables().iter().any(|t| t == "pwreset_secrets"));
    // Bounded, so that a serve that did start fails the test rather than hanging it.
    let a = env
        .cmd()
        .arg("serve")
        .timeout(std::time::Duration::from_secs(60))
        .assert()
        .code(78);
    assert!(
        stderr(&a).contains("schema 4, need 5") && stderr(&a).contains("pwreset init"),
        "{}",
        stderr(&a)
    );
    assert!(!env.tables().iter().any(|t| t == "pwreset_secrets"));
    let a = env.cmd().arg("init").assert().success();
    assert!(
        stderr(&a).contains("from schema version 4 to 5"),
        "{}",
        stderr(&a)
    );
    assert!(env.tables().iter().any(|t| t == "pwreset_secrets"));
    let rows = env.rows("SELECT name, value, created_at FROM pwreset_secrets");
    assert!(rows.is_empty(), "init makes no key, serve does: {rows:?}");
    assert_eq!(
        env.rows("SELECT hits FROM pwreset_limits")[0][0].as_deref(),
        Some("2")
    );
    assert_eq!(env.i64("SELECT max(version) FROM pwreset_schema"), 5);
    // Running init again changes nothing.
    env.init();
    assert_eq!(
        env.i64("SELECT count(*) FROM pwreset_schema WHERE version = 5"),
        1
    );
}
