//! Integration tests for audit.

use crate::harness::{Env, stderr, stdout};
use serde_json::Value;

const PASSWORD: &str = "correct horse battery staple 42";

fn audit_json(env: &Env, extra: &[&str]) -> Vec<Value> {
    let a = env
        .cmd()
        .args(["audit", "--json"])
        .args(extra)
        .assert()
        .success();
    let v: Value = serde_json::from_str(&stdout(&a)).expect("audit --json is JSON");
    v.as_array().expect("an array").clone()
}

fn actions(entries: &[Value]) -> Vec<&str> {
    entries
        .iter()
        .map(|e| e["action"].as_str().expect("action is a string"))
        .collect()
}

/// user add, request (emailed), reset with the emailed link.
fn full_flow() -> (Env, String) {
    let env = Env::new();
    env.init();
    env.add_user("alice@example.com");
    let a = env
        .cmd()
        .args(["request", "--print-link", "alice@example.com"])
        .assert()
        .success();
    let link = stdout(&a).trim().to_owned();
    env.cmd()
        .args(["reset", "--password-stdin", &link])
        .write_stdin(format!("{PASSWORD}\n"))
        .assert()
        .success();
    (env, link)
}

#[test]
fn lists_the_flow_newest_first() {
    let (env, _) = full_flow();
    let entries = audit_json(&env, &[]);
    assert_eq!(actions(&entries), ["reset", "request", "user_add"]);
    for e in &entries {
        let mut keys: Vec<&str> = e.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            ["action", "actor", "at", "detail", "email", "outcome"]
        );
        assert_eq!(e["actor"], whoami().as_str());
        assert_eq!(e["email"], "alice@example.com");
        let at: &str = e["at"].as_str().unwrap();
        assert!(at.ends_with('Z'), "{at}");
        at.parse::<jiff::Timestamp>().unwrap();
    }
    assert_eq!(entries[0]["outcome"], "ok");
    // The human table has the same rows.
    let a = env.cmd().arg("audit").assert().success();
    let out = stdout(&a);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4, "{out}");
    assert!(
        lines[0].contains("ACTION") && lines[0].contains("ACTOR"),
        "{out}"
    );
    assert!(
        lines[1].contains("reset") && lines[1].contains(&whoami()),
        "{out}"
    );
    assert!(lines[3].contains("user_add"), "{out}");
}

#[test]
fn a_refused_password_is_recorded() {
    let env = Env::new();
    env.init();
    env.add_user("alice@example.com");
    let link = env.link("alice@example.com");
    env.cmd()
        .args(["reset", "--password-stdin", &link])
        .write_stdin("password\n")
        .assert()
        .code(65);
    let entries = audit_json(&env, &[]);
    assert_eq!(entries[0]["action"], "reset_failed");
    let all = serde_json::to_string(&entries).unwrap();
    assert!(
        !all.contains("\"password\""),
        "the refused password is in the audit"
    );
}

#[test]
fn the_actor_behind_sudo() {
    let env = Env::new();
    env.init();
    env.cmd()
        .env("SUDO_USER", "admin")
        .env("USER", "root")
        .args(["user", "add", "alice@example.com"])
        .assert()
        .success();
    env.cmd()
        .env("SUDO_USER", "admin")
        .args(["request", "alice@example.com"])
        .assert()
        .success();
    let entries = audit_json(&env, &[]);
    assert_eq!(actions(&entries), ["request", "user_add"]);
    for e in &entries {
        assert!(e["actor"].as_str().unwrap().contains("admin"), "{e}");
    }
    // The table shows it too.
    let a = env.cmd().arg("audit").assert().success();
    assert!(stdout(&a).contains("admin"));
}

#[test]
fn no_token_text_in_the_audit() {
    let (env, link) = full_flow();
    // Some more: a throttled request, a failed reset with the used token, a purge.
    env.cmd()
        .args(["request", "alice@example.com"])
        .assert()
        .code(75);
    env.cmd()
        .args(["reset", "--password-stdin", &link])
        .write_stdin(format!("{PASSWORD} again\n"))
        .assert()
        .code(1);
    env.cmd().arg("purge-expired").assert().success();
    let token = Env::token_of(&link);
    for args in [&["audit"][..], &["audit", "--json"]] {
        let a = env.cmd().args(args).assert().success();
        let out = stdout(&a);
        assert!(!out.contains("pwr_"), "{args:?}: {out}");
        assert!(!out.contains(&token[4..20]), "{args:?}: {out}");
        assert!(!out.contains("token="), "{args:?}: {out}");
        assert!(!out.contains(PASSWORD), "{args:?}: {out}");
    }
    // Nor in the table itself.
    // Columns are joined in Rust: `||` is not concatenation on MySQL.
    let rows: Vec<String> = env
        .rows("SELECT detail, actor, email FROM pwreset_audit")
        .into_iter()
        .map(|r| r.into_iter().flatten().collect::<Vec<_>>().join(" "))
        .collect();
    assert!(rows.len() >= 5);
    for r in rows {
        assert!(!r.contains("pwr_") && !r.contains(PASSWORD), "{r}");
    }
}

#[test]
fn filter_by_user() {
    let (env, _) = full_flow();
    env.add_user("bob@example.com");
    env.link("bob@example.com");
    let entries = audit_json(&env, &["--user", "alice@example.com"]);
    assert_eq!(actions(&entries), ["reset", "request", "user_add"]);
    // Matched like everywhere else: regardless of case.
    let entries = audit_json(&env, &["--user", "BOB@example.com"]);
    assert_eq!(actions(&entries), ["request", "user_add"]);
    assert!(entries.iter().all(|e| e["email"] == "bob@example.com"));
    assert_eq!(audit_json(&env, &[]).len(), 5);
}

#[test]
fn unknown_user_is_67() {
    let (env, _) = full_flow();
    let a = env
        .cmd()
        .args(["audit", "--user", "nobody@example.com"])
        .assert()
        .code(67);
    assert!(stderr(&a).contains("nobody@example.com"), "{}", stderr(&a));
    env.cmd()
        .args(["audit", "--user", "not an address"])
        .assert()
        .code(65);
}

#[test]
fn limit_and_since() {
    let (env, _) = full_flow();
    let entries = audit_json(&env, &["--limit", "2"]);
    assert_eq!(actions(&entries), ["reset", "request"]);
    assert_eq!(audit_json(&env, &["--since", "1h"]).len(), 3);
    // Records older than --since are left out.
    env.exec("UPDATE pwreset_audit SET at = at - 7200 WHERE action = 'user_add'");
    assert_eq!(
        actions(&audit_json(&env, &["--since", "1h"])),
        ["reset", "request"]
    );
}

#[test]
fn empty_audit_is_an_empty_array() {
    let env = Env::new();
    env.init();
    assert!(audit_json(&env, &[]).is_empty());
}

/// The login name of the user running the tests, as the audit trail should record it (from the
/// password database, whatever $USER says).
fn whoami() -> String {
    let out = std::process::Command::new("id")
        .arg("-un")
        .output()
        .expect("id -un");
    String::from_utf8(out.stdout)
        .expect("utf-8")
        .trim()
        .to_owned()
}
