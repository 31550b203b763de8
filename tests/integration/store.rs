//! The store through the binary: migrations, the throttle under concurrency, id reuse, the
//! account binding of non-text values, and address lookups on an application's table.

use crate::harness::{Backend, Env, default_toml, stderr, stdout};
use std::process::{Output, Stdio};

fn code(out: &Output) -> i32 {
    out.status.code().expect("exited, not killed")
}

fn count(env: &Env, sql: &str) -> i64 {
    env.i64(sql)
}

/// `verify --json` on a link: (exit code, parsed object).
fn verify_json(env: &Env, link: &str) -> (i32, serde_json::Value) {
    let out = env
        .cmd()
        .args(["verify", "--json", link])
        .output()
        .expect("run verify");
    let v = serde_json::from_slice(&out.stdout).expect("verify --json prints JSON");
    (code(&out), v)
}

// ---- the throttle under concurrency --------------------------------------------------------

#[test]
fn concurrent_requests_for_one_user_with_the_throttle_on_send_exactly_one() {
    let env = Env::new();
    env.init();
    env.add_user("alice@example.com");
    const N: usize = 8;
    let children: Vec<std::process::Child> = (0..N)
        .map(|_| {
            env.std_cmd()
                .args(["request", "--json", "alice@example.com"])
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn request")
        })
        .collect();
    let outs: Vec<Output> = children
        .into_iter()
        .map(|c| c.wait_with_output().expect("wait for request"))
        .collect();
    let sent = outs.iter().filter(|o| code(o) == 0).count();
    assert_eq!(sent, 1, "exactly one request may be sent: {outs:#?}");
    for o in outs.iter().filter(|o| code(o) != 0) {
        assert_eq!(code(o), 75, "{o:?}");
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
        assert_eq!(v["status"], "throttled", "{v}");
    }
    assert_eq!(env.messages().len(), 1);
    assert_eq!(count(&env, "SELECT count(*) FROM pwreset_tokens"), 1);
    assert_eq!(
        count(
            &env,
            "SELECT count(*) FROM pwreset_audit WHERE action = 'request' AND outcome = 'throttled'"
        ),
        N as i64 - 1
    );
}

#[test]
fn force_still_starts_the_throttle_and_an_undelivered_link_gives_it_back() {
    let env = Env::new();
    env.init();
    env.add_user("alice@example.com");
    env.link("alice@example.com"); // --force
    // A forced request still counts: the next unforced one waits.
    env.cmd()
        .args(["request", "alice@example.com"])
        .assert()
        .code(75);
    // A link whose mail failed does not count: point the outbox at a file, so delivery fails.
    let blocked = Env::new();
    blocked.init();
    blocked.add_user("bob@example.com");
    std::fs::write(&blocked.outbox, "not a folder").expect("write");
    blocked
        .cmd()
        .args(["request", "bob@example.com"])
        .assert()
        .failure();
    std::fs::remove_file(&blocked.outbox).expect("remove");
    let a = blocked
        .cmd()
        .args(["request", "bob@example.com"])
        .assert()
        .success();
    assert!(stdout(&a).contains("sent"), "{}", stdout(&a));
}

// ---- migrations ----------------------------------------------------------------------------

/// A database as pwreset 0.1 (schema version 1) left it: tables, no ledger, no throttle table,
/// users without AUTOINCREMENT.
fn version_1_database(env: &Env, now: i64) {
    env.exec(&format!(
            "PRAGMA journal_mode = WAL;
             CREATE TABLE pwreset_tokens (
                 id INTEGER PRIMARY KEY, digest BLOB NOT NULL, user_id INTEGER NOT NULL,
                 binding BLOB NOT NULL, created_at INTEGER NOT NULL, expires_at INTEGER NOT NULL,
                 used_at INTEGER, revoked_at INTEGER, revoked_reason TEXT, dead_at INTEGER NOT NULL);
             CREATE INDEX pwreset_tokens_user ON pwreset_tokens(user_id, created_at);
             CREATE INDEX pwreset_tokens_dead ON pwreset_tokens(dead_at);
             CREATE TABLE pwreset_audit (
                 id INTEGER PRIMARY KEY, at INTEGER NOT NULL, actor TEXT NOT NULL,
                 action TEXT NOT NULL, user_id INTEGER, email TEXT, outcome TEXT NOT NULL,
                 detail TEXT);
             CREATE TABLE users (
                 id INTEGER PRIMARY KEY, email TEXT NOT NULL, email_key TEXT NOT NULL UNIQUE,
                 name TEXT, password_hash TEXT, created_at INTEGER NOT NULL);
             INSERT INTO users VALUES (1, 'alice@example.com', 'alice@example.com', NULL, NULL, {now});
             INSERT INTO users VALUES (2, 'bob@example.com', 'bob@example.com', NULL, NULL, {now});
             -- alice asked a minute ago; a token was once issued for user 3, since deleted
             INSERT INTO pwreset_tokens (digest, user_id, binding, created_at, expires_at, dead_at)
                 VALUES (zeroblob(32), 1, zeroblob(16), {now} - 10, {now} + 3600, {now} + 3600);
             INSERT INTO pwreset_tokens (digest, user_id, binding, created_at, expires_at, dead_at)
                 VALUES (zeroblob(32), 3, zeroblob(16), {now} - 7200, {now} - 3600, {now} - 3600);
             PRAGMA user_version = 1;"
        ));
}

#[test]
fn a_version_1_database_is_migrated_keeping_its_throttle_and_never_reusing_ids() {
    let env = Env::new();
    // pwreset 0.1 knew only SQLite: no server database is at version 1.
    if env.sqlite_only("the migration of a pwreset 0.1 (version 1) database") {
        return;
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    version_1_database(&env, now);
    // Not initialised for this version: commands that write say so.
    let a = env
        .cmd()
        .args(["request", "bob@example.com"])
        .assert()
        .code(78);
    assert!(stderr(&a).contains("pwreset init"), "{}", stderr(&a));
    let a = env.cmd().arg("init").assert().success();
    assert!(
        stderr(&a).contains("from schema version 1 to 5"),
        "{}",
        stderr(&a)
    );
    let a = env.cmd().arg("init").assert().success();
    assert!(stderr(&a).contains("up to date"), "{}", stderr(&a));
    // The request alice made before the upgrade still throttles her.
    env.cmd()
        .args(["request", "alice@example.com"])
        .assert()
        .code(75);
    env.cmd()
        .args(["request", "bob@example.com"])
        .assert()
        .success();
    // A new user gets an id no token was ever issued for.
    env.add_user("carol@example.com");
    let carol = count(
        &env,
        "SELECT id FROM users WHERE email = 'carol@example.com'",
    );
    assert_eq!(carol, 4);
    let sql = env
        .one("SELECT sql FROM sqlite_master WHERE name = 'users'")
        .expect("the users table's SQL");
    assert!(sql.contains("AUTOINCREMENT"), "{sql}");
}

#[test]
fn a_deleted_users_id_is_never_handed_out_again_so_old_links_stay_dead() {
    let env = Env::new();
    env.init();
    env.add_user("alice@example.com");
    env.add_user("bob@example.com");
    let link = env.link("bob@example.com");
    env.exec("DELETE FROM users WHERE email = 'bob@example.com'");
    let (c, v) = verify_json(&env, &link);
    assert_eq!((c, v["status"].as_str()), (1, Some("revoked")));
    env.add_user("bob@example.com");
    let (c, v) = verify_json(&env, &link);
    assert_eq!(
        (c, v["status"].as_str()),
        (1, Some("revoked")),
        "a re-added user must not inherit the old link: {v}"
    );
    // After alice's 1 and the deleted bob's 2, whatever the backend's id generator.
    assert_eq!(
        count(&env, "SELECT id FROM users WHERE email = 'bob@example.com'"),
        3
    );
}

// ---- the account binding of values that are not text -----------------------------------------

fn app_env(create: &str) -> Env {
    // The format named: these tables hold no password or values no framework wrote, which
    // `auto` refuses (78) rather than guess.
    let env = Env::with_toml(|d| {
        format!(
            "{}\n[users]\ntable = \"accounts\"\nid_column = \"account_id\"\nemail_column = \"mail\"\npassword_column = \"pw\"\npassword_format = \"argon2id\"\n",
            default_toml(d)
        )
    });
    env.exec(create);
    env.init();
    env
}

#[test]
fn changing_a_password_value_that_is_not_text_revokes_open_links() {
    // The column has no type, so it holds blobs, integers and reals as they are: SQLite's.
    if Env::new().sqlite_only("values of any type in a column without one") {
        return;
    }
    for (before, after) in [
        ("NULL", "X'00FF'"),
        ("X'01'", "X'02'"),
        ("NULL", "42"),
        ("7", "8"),
        ("NULL", "4.5"),
        ("X'31'", "'1'"),
    ] {
        let env = app_env(&format!(
            "CREATE TABLE accounts (account_id INTEGER PRIMARY KEY, mail TEXT NOT NULL UNIQUE, pw);
             INSERT INTO accounts VALUES (1, 'alice@example.com', {before});"
        ));
        let link = env.link("alice@example.com");
        assert_eq!(verify_json(&env, &link).0, 0, "{before}");
        env.exec(&format!("UPDATE accounts SET pw = {after}"));
        let (c, v) = verify_json(&env, &link);
        assert_eq!(
            (c, v["status"].as_str()),
            (1, Some("revoked")),
            "{before} -> {after}: {v}"
        );
    }
}

// ---- address lookups on an application's table ----------------------------------------------

/// An application table whose addresses differ only in case, under a unique index.
fn app_table_env() -> Env {
    // MySQL compares with the database's collation, case-insensitive by default, which would
    // make the index refuse 'alice@example.com' beside 'Alice@Example.com': a binary one here.
    let collate = if matches!(crate::harness::backend(), Backend::Mysql(_)) {
        " COLLATE utf8mb4_bin"
    } else {
        ""
    };
    app_env(&format!(
        "CREATE TABLE accounts (account_id INTEGER PRIMARY KEY, mail VARCHAR(254){collate} NOT NULL, pw TEXT);
         CREATE UNIQUE INDEX accounts_mail ON accounts(mail);
         INSERT INTO accounts VALUES (1, 'Alice@Example.com', NULL);
         INSERT INTO accounts VALUES (2, 'alice@example.com', NULL);
         INSERT INTO accounts VALUES (3, 'Bob@Example.com', NULL);
         INSERT INTO accounts VALUES (4, 'carol@example.com', NULL);
         INSERT INTO accounts VALUES (5, 'Dave@Example.com', NULL);
         INSERT INTO accounts VALUES (6, 'DAVE@example.com', NULL);
         INSERT INTO accounts VALUES (7, 'ｅｖｅ@example.com', NULL);"
    ))
}

/// `request --json --no-email ADDR`: (exit code, parsed line).
fn request_json(env: &Env, addr: &str) -> (i32, serde_json::Value) {
    let out = env
        .cmd()
        .args(["request", "--json", "--no-email", "--force", addr])
        .output()
        .expect("run request");
    let v = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
        panic!(
            "{addr}: not JSON: {} / {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (code(&out), v)
}

#[test]
fn an_exact_match_wins_then_the_folded_form_then_one_scan() {
    let env = app_table_env();
    for (typed, want_id, want_email) in [
        // Exact matches, through the application's index: each row answers to its own address.
        ("Alice@Example.com", 1, "Alice@Example.com"),
        ("alice@example.com", 2, "alice@example.com"),
        // No exact match; the folded form matches exactly.
        ("ALICE@EXAMPLE.COM", 2, "alice@example.com"),
        ("CAROL@example.com", 4, "carol@example.com"),
        // Neither: found by folding the stored addresses.
        ("bob@example.com", 3, "Bob@Example.com"),
        ("BOB@EXAMPLE.COM", 3, "Bob@Example.com"),
        ("eve@example.com", 7, "ｅｖｅ@example.com"),
    ] {
        let (c, v) = request_json(&env, typed);
        assert_eq!(
            (c, v["status"].as_str()),
            (0, Some("created")),
            "{typed}: {v}"
        );
        assert_eq!(v["email"], want_email, "{typed}: {v}");
        let link = v["link"].as_str().expect("link");
        let (c, v) = verify_json(&env, link);
        assert_eq!(c, 0, "{typed}: {v}");
        assert_eq!(v["user_id"], want_id, "{typed}: {v}");
    }
    // Two stored addresses fold to the typed one and neither matches it exactly: refused.
    let (c, v) = request_json(&env, "dave@example.com");
    assert_eq!((c, v["status"].as_str()), (65, Some("invalid")), "{v}");
    assert!(
        v["error"]
            .as_str()
            .is_some_and(|e| e.contains("more than one user")),
        "{v}"
    );
    // ... but an exact match is not ambiguous.
    let (c, _) = request_json(&env, "Dave@Example.com");
    assert_eq!(c, 0);
    let (c, v) = request_json(&env, "nobody@example.com");
    assert_eq!((c, v["status"].as_str()), (67, Some("unknown_user")), "{v}");
}

#[test]
fn the_mail_goes_to_the_stored_address() {
    let env = app_table_env();
    env.cmd()
        .args(["request", "BOB@EXAMPLE.COM"])
        .assert()
        .success();
    let msgs = env.messages();
    assert_eq!(msgs.len(), 1);
    assert!(
        msgs[0].lines().any(|l| l == "To: Bob@Example.com"),
        "{}",
        msgs[0]
    );
}

#[test]
fn from_file_serves_index_hits_and_scanned_addresses_in_one_run() {
    let env = app_table_env();
    let list = env.dir.path().join("list.txt");
    std::fs::write(
        &list,
        "bob@example.com\nalice@example.com\nnobody@example.com\nBOB@example.com\ndave@example.com\nnot an address\ncarol@example.com\n",
    )
    .expect("write list");
    let out = env
        .cmd()
        .args(["request", "--json", "--no-email", "--from-file"])
        .arg(&list)
        .output()
        .expect("run request");
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    let mut got: Vec<(String, String)> = lines
        .iter()
        .map(|v| {
            (
                v["email"].as_str().unwrap_or("").to_owned(),
                v["status"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    got.sort();
    let mut want: Vec<(String, String)> = [
        ("Bob@Example.com", "created"),
        ("alice@example.com", "created"),
        ("carol@example.com", "created"),
        ("dave@example.com", "invalid"),
        ("nobody@example.com", "unknown_user"),
        ("not an address", "invalid"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    want.sort();
    // Bob is listed twice (in two spellings) and gets one link.
    assert_eq!(got, want, "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(code(&out), 65);
}

// ---- the audit actor ------------------------------------------------------------------------

#[test]
fn sudo_user_names_the_actor_only_when_root_runs_pwreset() {
    if !nix_is_root() {
        println!("skipped: the audit actor test needs root (to run as root and as uid 65534)");
        return;
    }
    let env = Env::new();
    env.init();
    env.cmd()
        .env("SUDO_USER", "alice")
        .args(["user", "add", "one@example.com"])
        .assert()
        .success();
    let actor = env
        .one("SELECT actor FROM pwreset_audit WHERE action = 'user_add'")
        .expect("an actor");
    assert_eq!(actor, "alice (as root)");
    if std::process::Command::new("setpriv")
        .arg("--version")
        .output()
        .is_err()
    {
        println!("skipped: the unprivileged half needs setpriv");
        return;
    }
    // Any other user could set SUDO_USER to anything: it is not believed.
    let chown = std::process::Command::new("chown")
        .args(["-R", "65534:65534"])
        .arg(env.dir.path())
        .status()
        .expect("chown");
    assert!(chown.success());
    let out = env
        .isolated("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(crate::harness::BIN)
        .arg("--config")
        .arg(&env.config)
        .args(["user", "add", "two@example.com"])
        .env("SUDO_USER", "root")
        .output()
        .expect("run as 65534");
    assert_eq!(code(&out), 0, "{}", String::from_utf8_lossy(&out.stderr));
    let actor = env
        .one("SELECT actor FROM pwreset_audit WHERE email = 'two@example.com'")
        .expect("an actor");
    assert!(!actor.contains("root"), "{actor}");
}

fn nix_is_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false)
}

// ---- mappings that cannot work are refused by init ---------------------------------------

fn mapped(env_sql: &str) -> (Env, assert_cmd::assert::Assert) {
    let env = Env::with_toml(|d| {
        format!(
            "{}\n[users]\ntable = \"accounts\"\nid_column = \"account_id\"\nemail_column = \"mail\"\npassword_column = \"pw\"\npassword_format = \"argon2id\"\n",
            default_toml(d)
        )
    });
    env.exec(env_sql);
    let a = env.cmd().arg("init").assert();
    (env, a)
}

#[test]
fn init_refuses_mappings_that_would_fail_later() {
    for (sql, why) in [
        (
            "CREATE TABLE real_accounts (account_id INTEGER PRIMARY KEY, mail VARCHAR(254), pw TEXT);
             CREATE VIEW accounts AS SELECT * FROM real_accounts;",
            "view",
        ),
        (
            "CREATE TABLE accounts (account_id REAL, mail VARCHAR(254), pw TEXT);",
            "REAL",
        ),
        (
            "CREATE TABLE accounts (account_id INTEGER, mail VARCHAR(254), pw TEXT);
             INSERT INTO accounts VALUES (NULL, 'a@example.com', NULL);",
            "no id",
        ),
    ] {
        let env = Env::new();
        if env.sqlite_only("SQLite's catalog and type affinity") {
            return;
        }
        let (_env, a) = mapped(sql);
        let a = a.code(78);
        assert!(stderr(&a).contains(why), "{why}: {}", stderr(&a));
    }
}

#[test]
fn the_password_column_cannot_be_the_email_column() {
    let env = Env::with_toml(|d| {
        format!(
            "{}\n[users]\ntable = \"accounts\"\nemail_column = \"mail\"\npassword_column = \"MAIL\"\n",
            default_toml(d)
        )
    });
    let a = env.cmd().arg("init").assert().code(78);
    assert!(
        stderr(&a).contains("users.password_column"),
        "{}",
        stderr(&a)
    );
}

#[test]
fn text_ids_work_and_rows_without_an_address_are_reported_not_linked() {
    let (env, a) = mapped(
        "CREATE TABLE accounts (account_id VARCHAR(40) PRIMARY KEY, mail VARCHAR(254), pw TEXT);
         INSERT INTO accounts VALUES ('6f1c9a2e-0b7d-4c1e-9a55-3f0e8a7d2b10', 'alice@example.com', NULL);
         INSERT INTO accounts VALUES ('u-2', NULL, NULL);
         INSERT INTO accounts VALUES ('u-3', 'carol@example.com', NULL);",
    );
    a.success();
    let out = env
        .cmd()
        .args(["request", "--all", "--no-email", "--json"])
        .output()
        .expect("run request");
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    let statuses: Vec<&str> = lines.iter().filter_map(|v| v["status"].as_str()).collect();
    assert_eq!(statuses, ["created", "invalid", "created"], "{lines:?}");
    assert!(
        lines[1]["error"]
            .as_str()
            .is_some_and(|e| e.contains("u-2") && e.contains("no address")),
        "{lines:?}"
    );
    assert_eq!(code(&out), 65);
    let link = lines[0]["link"].as_str().expect("link");
    let (c, v) = verify_json(&env, link);
    assert_eq!(c, 0, "{v}");
    assert_eq!(v["user_id"], "6f1c9a2e-0b7d-4c1e-9a55-3f0e8a7d2b10");
    env.cmd()
        .args(["reset", "--password-stdin", link])
        .write_stdin("correct horse battery staple\n")
        .assert()
        .success();
    assert!(
        env.text(
            "SELECT pw FROM accounts WHERE account_id = '6f1c9a2e-0b7d-4c1e-9a55-3f0e8a7d2b10'"
        )
        .is_some_and(|h| h.starts_with("$argon2id$"))
    );
}
