//! Integration tests for verify.

use crate::harness::{Env, stdout};
use serde_json::Value;

const BASE: &str = "https://accounts.example.com/reset_password";

/// An initialised env with alice and a fresh link for her.
fn env_with_link() -> (Env, String) {
    let env = Env::new();
    env.init();
    env.add_user("alice@example.com");
    let link = env.link("alice@example.com");
    (env, link)
}

fn verify_json(env: &Env, input: &str, code: i32) -> Value {
    let a = env
        .cmd()
        .args(["verify", "--json", input])
        .assert()
        .code(code);
    serde_json::from_str(stdout(&a).trim()).expect("verify --json is JSON")
}

fn keys(v: &Value) -> Vec<&str> {
    let mut k: Vec<&str> = v
        .as_object()
        .expect("an object")
        .keys()
        .map(String::as_str)
        .collect();
    k.sort_unstable();
    k
}

/// Every word of `text` that parses as an RFC 3339 UTC time.
fn rfc3339_times(text: &str) -> Vec<jiff::Timestamp> {
    text.split(|c: char| c.is_whitespace() || matches!(c, ',' | '(' | ')' | ';'))
        .filter(|w| w.ends_with('Z') && w.contains('T'))
        .filter_map(|w| w.parse().ok())
        .collect()
}

/// A well-formed token that was never stored.
fn never_issued() -> String {
    pwreset::token::Token::generate()
        .expect("generate")
        .text()
        .to_string()
}

#[test]
fn valid_token_human_output() {
    let (env, link) = env_with_link();
    let token = Env::token_of(&link);
    let a = env.cmd().args(["verify", &token]).assert().success();
    let out = stdout(&a);
    assert!(out.starts_with("valid"), "{out}");
    assert!(out.contains("alice@example.com"), "{out}");
    assert!(out.contains("expires in"), "{out}");
    let times = rfc3339_times(&out);
    assert_eq!(times.len(), 1, "no RFC 3339 time in {out}");
    let stored = env.i64("SELECT expires_at FROM pwreset_tokens");
    assert_eq!(times[0].as_second(), stored);
}

#[test]
fn accepts_the_whole_link() {
    let (env, link) = env_with_link();
    let a = env.cmd().args(["verify", &link]).assert().success();
    assert!(stdout(&a).contains("alice@example.com"));
    // With surrounding white space, as pasted.
    env.cmd()
        .args(["verify", &format!("  {link}\n")])
        .assert()
        .success();
}

#[test]
fn reads_stdin_with_no_argument_or_dash() {
    let (env, link) = env_with_link();
    let token = Env::token_of(&link);
    let a = env
        .cmd()
        .arg("verify")
        .write_stdin(format!("{token}\n"))
        .assert()
        .success();
    assert!(stdout(&a).contains("alice@example.com"));
    env.cmd()
        .args(["verify", "-"])
        .write_stdin(format!("{link}\r\n"))
        .assert()
        .success();
    // No trailing newline at all.
    env.cmd()
        .args(["verify", "--json", "-"])
        .write_stdin(token.clone())
        .assert()
        .success();
    // Empty stdin is malformed, not an error.
    let a = env.cmd().arg("verify").write_stdin("").assert().code(1);
    assert!(stdout(&a).starts_with("malformed"), "{}", stdout(&a));
}

#[test]
fn json_for_a_valid_token() {
    let (env, link) = env_with_link();
    let v = verify_json(&env, &link, 0);
    assert_eq!(
        keys(&v),
        [
            "created_at",
            "email",
            "expires_at",
            "status",
            "used_at",
            "user_id"
        ]
    );
    assert_eq!(v["status"], "valid");
    assert_eq!(v["user_id"], 1);
    assert_eq!(v["email"], "alice@example.com");
    assert!(v["used_at"].is_null());
    let created: jiff::Timestamp = v["created_at"].as_str().unwrap().parse().unwrap();
    let expires: jiff::Timestamp = v["expires_at"].as_str().unwrap().parse().unwrap();
    assert!(v["created_at"].as_str().unwrap().ends_with('Z'));
    assert!(v["expires_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(expires.as_second() - created.as_second(), 3600);
    // One line.
    let a = env
        .cmd()
        .args(["verify", "--json", &link])
        .assert()
        .success();
    assert_eq!(stdout(&a).lines().count(), 1);
}

#[test]
fn json_for_unknown_and_malformed_is_only_the_status() {
    let (env, _) = env_with_link();
    let v = verify_json(&env, &never_issued(), 1);
    assert_eq!(keys(&v), ["status"]);
    assert_eq!(v["status"], "unknown");
    let v = verify_json(&env, "pwr_nonsense", 1);
    assert_eq!(keys(&v), ["status"]);
    assert_eq!(v["status"], "malformed");
}

#[test]
fn expired() {
    let (env, link) = env_with_link();
    let past = jiff::Timestamp::now().as_second() - 120;
    env.exec(&format!(
        "UPDATE pwreset_tokens SET expires_at = {past}, dead_at = {past}"
    ));
    let a = env.cmd().args(["verify", &link]).assert().code(1);
    let out = stdout(&a);
    assert!(out.starts_with("expired"), "{out}");
    assert!(out.contains("alice@example.com"), "{out}");
    let v = verify_json(&env, &link, 1);
    assert_eq!(v["status"], "expired");
    assert_eq!(v["email"], "alice@example.com");
    let exp: jiff::Timestamp = v["expires_at"].as_str().unwrap().parse().unwrap();
    assert_eq!(exp.as_second(), past);
}

#[test]
fn unknown_token_and_link() {
    let (env, _) = env_with_link();
    let token = pwreset::token::Token::generate().unwrap();
    let text = token.text().to_string();
    let link = pwreset::token::link(BASE, &token).to_string();
    for input in [text.as_str(), link.as_str()] {
        let a = env.cmd().args(["verify", input]).assert().code(1);
        assert!(stdout(&a).starts_with("unknown"), "{input}: {}", stdout(&a));
        assert_eq!(verify_json(&env, input, 1)["status"], "unknown");
    }
}

#[test]
fn malformed_inputs() {
    let (env, link) = env_with_link();
    let token = Env::token_of(&link);
    // One body character changed to another character of the alphabet.
    let mut changed = token.clone().into_bytes();
    let i = 20;
    changed[i] = if changed[i] == b'A' { b'B' } else { b'A' };
    let changed = String::from_utf8(changed).unwrap();
    let truncated = &token[..token.len() - 1];
    let cases = [
        truncated,
        &token[..10],
        changed.as_str(),
        "",
        "garbage",
        "hello world",
        "pwr_",
        "https://accounts.example.com/reset_password",
        "https://accounts.example.com/reset_password?x=1",
        "https://accounts.example.com/reset_password?token=",
    ];
    for input in cases {
        let a = env.cmd().args(["verify", input]).assert().code(1);
        assert!(
            stdout(&a).starts_with("malformed"),
            "{input:?}: {}",
            stdout(&a)
        );
        assert_eq!(
            verify_json(&env, input, 1),
            serde_json::json!({"status": "malformed"})
        );
    }
    // A changed link is malformed too.
    let bad_link = link.replace(&token, &changed);
    assert_eq!(verify_json(&env, &bad_link, 1)["status"], "malformed");
    // The real one is still fine.
    env.cmd().args(["verify", &link]).assert().success();
}

#[test]
fn malformed_needs_no_database() {
    let env = Env::new(); // never initialised
    for input in ["garbage", "pwr_short", "https://x.example.com/r?x=1"] {
        let a = env.cmd().args(["verify", input]).assert().code(1);
        assert!(stdout(&a).starts_with("malformed"), "{}", stdout(&a));
    }
    assert!(!env.database_created());
    // A well-formed token does need the database.
    env.cmd()
        .args(["verify", &never_issued()])
        .assert()
        .code(78);
    assert!(!env.database_created());
}

#[test]
fn verify_does_not_consume_the_token() {
    let (env, link) = env_with_link();
    for _ in 0..3 {
        let a = env.cmd().args(["verify", &link]).assert().success();
        assert!(stdout(&a).starts_with("valid"));
    }
    let used = env.one("SELECT used_at FROM pwreset_tokens");
    assert_eq!(used, None);
    // The token still resets the password after being verified.
    env.cmd()
        .args(["reset", "--password-stdin", &link])
        .write_stdin("correct horse battery staple 42\n")
        .assert()
        .success();
    let v = verify_json(&env, &link, 1);
    assert_eq!(v["status"], "used");
    assert!(v["used_at"].is_string());
}
