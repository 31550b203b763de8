//! Integration tests for user add and user list.

use crate::harness::{Env, default_toml, stderr, stdout};
use serde_json::Value;

fn list_json(env: &Env) -> Vec<Value> {
    let a = env
        .cmd()
        .args(["user", "list", "--json"])
        .assert()
        .success();
    let v: Value = serde_json::from_str(&stdout(&a)).expect("user list --json is JSON");
    v.as_array().expect("an array").clone()
}

#[test]
fn add_then_list() {
    let env = Env::new();
    env.init();
    let a = env
        .cmd()
        .args([
            "user",
            "add",
            "alice@example.com",
            "--name",
            "Alice Liddell",
        ])
        .assert()
        .success();
    assert!(stderr(&a).contains("alice@example.com"), "{}", stderr(&a));
    env.add_user("bob@example.com");
    let users = list_json(&env);
    let emails: Vec<&str> = users.iter().map(|u| u["email"].as_str().unwrap()).collect();
    assert_eq!(emails, ["alice@example.com", "bob@example.com"]);
    // Stored with no password.
    let hash = env.one("SELECT password_hash FROM users WHERE email = 'alice@example.com'");
    assert_eq!(hash, None);
}

#[test]
fn duplicates_are_refused_including_case_and_unicode_look_alikes() {
    let env = Env::new();
    env.init();
    env.add_user("alice@example.com");
    for dup in [
        "alice@example.com",
        "ALICE@example.com",
        "Alice@EXAMPLE.COM",
        "\u{ff41}lice@example.com", // full-width a
        "  alice@example.com ",
    ] {
        let a = env.cmd().args(["user", "add", dup]).assert().code(65);
        assert!(
            stderr(&a).contains("already exists"),
            "{dup:?}: {}",
            stderr(&a)
        );
    }
    assert_eq!(list_json(&env).len(), 1);
}

#[test]
fn invalid_addresses_are_refused() {
    let env = Env::new();
    env.init();
    for bad in [
        "alice",
        "alice@",
        "@example.com",
        "",
        "a b@example.com",
        "alice@example.com\nbcc@evil.com",
    ] {
        env.cmd().args(["user", "add", bad]).assert().code(65);
    }
    // A name with a line break (or escape codes) is refused too.
    env.cmd()
        .args([
            "user",
            "add",
            "alice@example.com",
            "--name",
            "Alice\n\u{1b}[2J",
        ])
        .assert()
        .code(65);
    assert!(list_json(&env).is_empty());
}

#[test]
fn list_table() {
    let env = Env::new();
    env.init();
    env.add_user("alice@example.com");
    env.add_user("bob@example.com");
    let a = env.cmd().args(["user", "list"]).assert().success();
    let out = stdout(&a);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    for h in ["ID", "EMAIL", "PASSWORD", "OPEN TOKENS"] {
        assert!(lines[0].contains(h), "{out}");
    }
    assert!(
        lines[1].contains("alice@example.com") && lines[1].contains("not set"),
        "{out}"
    );
    assert!(lines[1].trim_start().starts_with('1'), "{out}");
    assert!(lines[2].contains("bob@example.com"), "{out}");
}

#[test]
fn list_json_shape_and_open_tokens() {
    let env = Env::new();
    env.init();
    // An empty table is an empty array, still valid JSON.
    assert!(list_json(&env).is_empty());
    env.add_user("alice@example.com");
    env.add_user("bob@example.com");
    let users = list_json(&env);
    assert_eq!(users.len(), 2);
    let alice = &users[0];
    let mut keys: Vec<&str> = alice
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(keys, ["email", "has_password", "id", "name", "open_tokens"]);
    assert_eq!(alice["name"], Value::Null);
    assert_eq!(alice["id"], 1);
    assert_eq!(alice["email"], "alice@example.com");
    assert_eq!(alice["has_password"], false);
    assert_eq!(alice["open_tokens"], 0);

    env.cmd()
        .args(["request", "alice@example.com"])
        .assert()
        .success();
    let users = list_json(&env);
    assert_eq!(users[0]["open_tokens"], 1);
    assert_eq!(users[1]["open_tokens"], 0);
    // A newer request revokes the older token: still one open.
    env.link("alice@example.com");
    assert_eq!(list_json(&env)[0]["open_tokens"], 1);
    // The table shows the same count.
    let a = env.cmd().args(["user", "list"]).assert().success();
    let out = stdout(&a);
    let alice_line = out.lines().find(|l| l.contains("alice@")).unwrap();
    assert!(alice_line.trim_end().ends_with('1'), "{out}");
}

#[test]
fn has_password_after_a_reset() {
    let env = Env::new();
    env.init();
    env.add_user("alice@example.com");
    let link = env.link("alice@example.com");
    env.cmd()
        .args(["reset", "--password-stdin", &link])
        .write_stdin("correct horse battery staple 42\n")
        .assert()
        .success();
    let users = list_json(&env);
    assert_eq!(users[0]["has_password"], true);
    assert_eq!(users[0]["open_tokens"], 0);
}

#[test]
fn add_is_refused_on_an_application_table() {
    // The format named: carol's value is no hash a framework wrote, which `auto` refuses (78).
    let env = Env::with_toml(|d| {
        format!(
            "{}\n[users]\ntable = \"accounts\"\nid_column = \"account_id\"\nemail_column = \"mail\"\npassword_column = \"pw_hash\"\npassword_format = \"argon2id\"\n",
            default_toml(d)
        )
    });
    env.exec(
        "CREATE TABLE accounts (account_id INTEGER PRIMARY KEY, mail VARCHAR(254) NOT NULL, pw_hash TEXT);
         INSERT INTO accounts (account_id, mail, pw_hash) VALUES (3, 'carol@example.com', '$argon2id$x');",
    );
    env.init();
    let a = env
        .cmd()
        .args(["user", "add", "dave@example.com"])
        .assert()
        .code(2);
    assert!(stderr(&a).contains("accounts"), "{}", stderr(&a));
    assert_eq!(env.i64("SELECT count(*) FROM accounts"), 1);
    // Listing reads the application's table through the mapping.
    let users = list_json(&env);
    assert_eq!(users.len(), 1);
    assert_eq!(users[0]["id"], 3);
    assert_eq!(users[0]["email"], "carol@example.com");
    assert_eq!(users[0]["has_password"], true);
}

#[test]
fn list_sizes_columns_to_the_content_and_shows_the_name() {
    let env = Env::new();
    env.init();
    let long = format!("{}@example.com", "a".repeat(50));
    env.cmd()
        .args(["user", "add", &long, "--name", "Alice Liddell"])
        .assert()
        .success();
    env.add_user("bob@example.com");
    let a = env.cmd().args(["user", "list"]).assert().success();
    let out = stdout(&a);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(lines[0].contains("NAME"), "{out}");
    assert!(lines[1].contains("Alice Liddell"), "{out}");
    // Every column starts where its header does, however long the address.
    for header in ["NAME", "PASSWORD"] {
        let at = lines[0].find(header).expect("header");
        for line in &lines[1..] {
            let cell = &line[at..];
            assert!(
                !line[..at].ends_with(|c: char| !c.is_whitespace()) && !cell.starts_with(' '),
                "{header} misaligned:\n{out}"
            );
        }
    }
    assert!(
        out.lines().all(|l| l == l.trim_end()),
        "trailing spaces:\n{out}"
    );
    let users = list_json(&env);
    assert_eq!(users[0]["name"], "Alice Liddell");
    assert_eq!(users[1]["name"], Value::Null);
}
