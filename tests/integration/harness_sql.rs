//! The harness's backend-neutral SQL helpers, checked on the backend the suite runs against.
//! They need no pwreset, so these pass on a server before its backend is in the binary, and a
//! helper that breaks on one backend fails here rather than as a puzzle in some other test.

use crate::harness::{Backend, Env, numbers};

/// A table shaped like the ones tests write to (portable DDL), in a fresh database.
fn env_with_table() -> Env {
    let env = Env::new();
    env.exec(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, name VARCHAR(254) NOT NULL, note TEXT, n INTEGER)",
    );
    env
}

#[test]
fn quoted_text_comes_back_as_it_went_in() {
    let env = env_with_table();
    // Quotes, backslashes, controls, a C1 control, bidi and non-ASCII: what hostile.rs stores.
    let nasty = "it's a \\ back\\slash \"and\" \x1b]0;t\x07\x1b[2J\r\u{9b}1m\u{202e} ß ｅ";
    env.exec(&format!(
        "INSERT INTO t (id, name, note, n) VALUES (1, {}, NULL, 7)",
        env.quote(nasty)
    ));
    assert_eq!(env.one("SELECT name FROM t").as_deref(), Some(nasty));
    assert_eq!(env.one("SELECT note FROM t"), None, "NULL reads as None");
    assert_eq!(env.i64("SELECT n FROM t"), 7);
    assert_eq!(
        env.rows("SELECT id, name, note FROM t"),
        [[Some("1".to_owned()), Some(nasty.to_owned()), None]]
    );
}

#[test]
fn numbers_counts_from_one() {
    let env = Env::new();
    for n in [1, 9, 10, 11, 1000, 12_345] {
        let (count, min, max) = (
            env.i64(&format!("SELECT count(*) FROM {}", numbers(n))),
            env.i64(&format!("SELECT min(i) FROM {}", numbers(n))),
            env.i64(&format!("SELECT max(i) FROM {}", numbers(n))),
        );
        assert_eq!((count, min, max), (n, 1, n), "numbers({n})");
    }
}

#[test]
fn blobs_insert_into_binary_columns() {
    let env = Env::new();
    // The type each backend's pwreset schema would use for a digest.
    let ddl = match env.backend() {
        Backend::Postgres(_) => "CREATE TABLE b (id INTEGER, v BYTEA NOT NULL)",
        Backend::Mysql(_) => "CREATE TABLE b (id INTEGER, v VARBINARY(32) NOT NULL)",
        Backend::Sqlite => "CREATE TABLE b (id INTEGER, v BLOB NOT NULL)",
    };
    env.exec(ddl);
    env.exec(&format!(
        "INSERT INTO b (id, v) SELECT i, {} FROM {}",
        env.blob(&[0, 0xff, 7]),
        numbers(25)
    ));
    assert_eq!(env.i64("SELECT count(*) FROM b WHERE length(v) = 3"), 25);
}

#[test]
fn tables_and_database_created() {
    let env = Env::new();
    assert!(env.tables().is_empty());
    assert!(!env.database_created());
    // Ids made by the database, as in pwreset's own users table.
    let id = match env.backend() {
        Backend::Postgres(_) => "SERIAL PRIMARY KEY",
        Backend::Mysql(_) => "INTEGER AUTO_INCREMENT PRIMARY KEY",
        Backend::Sqlite => "INTEGER PRIMARY KEY",
    };
    env.exec(&format!(
        "CREATE TABLE users (id {id}, email VARCHAR(254) NOT NULL,
                             email_key VARCHAR(254) NOT NULL, created_at BIGINT NOT NULL)"
    ));
    assert_eq!(env.tables(), ["users"]);
    assert!(env.database_created());
    let emails: Vec<String> = (1..=1200).map(|i| format!("u{i}@example.com")).collect();
    env.insert_users(&emails);
    assert_eq!(env.i64("SELECT count(*) FROM users"), 1200);
    assert_eq!(
        env.one("SELECT email_key FROM users WHERE email = 'u1200@example.com'")
            .as_deref(),
        Some("u1200@example.com")
    );
}
