//! `pwreset purge-expired`

use crate::harness::{Env, numbers, stderr, stdout, unix_now};

/// An env with three users and tokens in each dead state plus one live token:
/// alice: expired (2 h ago), bob: used (1 h ago), carol: revoked (superseded 30 min ago) + live.
fn env_with_dead_tokens() -> Env {
    let env = Env::new();
    env.init();
    for u in ["alice@example.com", "bob@example.com", "carol@example.com"] {
        env.add_user(u);
        env.link(u);
    }
    env.link("carol@example.com"); // supersedes carol's first token
    let now = unix_now();
    let (alice, bob) = (
        user_id(&env, "alice@example.com"),
        user_id(&env, "bob@example.com"),
    );
    env.exec(&format!(
        "UPDATE pwreset_tokens SET expires_at = {t}, dead_at = {t} WHERE user_id = {alice}",
        t = now - 7200
    ));
    env.exec(&format!(
        "UPDATE pwreset_tokens SET used_at = {t}, dead_at = {t} WHERE user_id = {bob}",
        t = now - 3600
    ));
    // carol's first token, superseded by her second.
    env.exec(&format!(
        "UPDATE pwreset_tokens SET revoked_at = {t}, dead_at = {t} WHERE revoked_at IS NOT NULL",
        t = now - 1800
    ));
    env
}

fn user_id(env: &Env, email: &str) -> i64 {
    env.i64(&format!("SELECT id FROM users WHERE email = '{email}'"))
}

fn token_count(env: &Env) -> i64 {
    env.i64("SELECT count(*) FROM pwreset_tokens")
}

#[test]
fn purges_every_dead_token_and_keeps_the_live_one() {
    let env = env_with_dead_tokens();
    assert_eq!(token_count(&env), 4);
    let a = env.cmd().arg("purge-expired").assert().success();
    let out = stdout(&a);
    assert!(
        out.starts_with("purged 3 tokens: 1 expired, 1 used, 1 revoked in "),
        "{out}"
    );
    assert_eq!(token_count(&env), 1);
    // The survivor is carol's live token: it still verifies.
    let live = env.i64("SELECT user_id FROM pwreset_tokens");
    assert_eq!(live, user_id(&env, "carol@example.com"));
}

#[test]
fn json_dry_run_counts_without_deleting() {
    let env = env_with_dead_tokens();
    let a = env
        .cmd()
        .args(["purge-expired", "--dry-run", "--json"])
        .assert()
        .success();
    let v: serde_json::Value = serde_json::from_str(stdout(&a).trim()).expect("json");
    assert_eq!(
        v,
        serde_json::json!({"purged": 3, "expired": 1, "used": 1, "revoked": 1, "dry_run": true})
    );
    assert_eq!(token_count(&env), 4, "a dry run deletes nothing");
    let a = env
        .cmd()
        .args(["purge-expired", "--json"])
        .assert()
        .success();
    let v: serde_json::Value = serde_json::from_str(stdout(&a).trim()).expect("json");
    assert_eq!(v["purged"], 3);
    assert_eq!(v["dry_run"], false);
}

#[test]
fn older_than_keeps_recently_dead_tokens() {
    let env = env_with_dead_tokens();
    // Dead for 2 h (alice) and 1 h (bob) and 30 min (carol's first): only alice's is older
    // than 90 minutes.
    let a = env
        .cmd()
        .args(["purge-expired", "--older-than", "90m", "--json"])
        .assert()
        .success();
    let v: serde_json::Value = serde_json::from_str(stdout(&a).trim()).expect("json");
    assert_eq!(v["purged"], 1);
    assert_eq!(v["expired"], 1);
    assert_eq!(token_count(&env), 3);
}

#[test]
fn small_batches_add_up() {
    let env = Env::new();
    env.init();
    env.add_user("alice@example.com");
    // 25 dead tokens in batches of 4. One digest for all: dead tokens are never looked up.
    let alice = user_id(&env, "alice@example.com");
    env.exec(&format!(
        "INSERT INTO pwreset_tokens (digest, user_id, binding, created_at, expires_at, dead_at)
         SELECT {digest}, {alice}, {binding}, 1, 2, 2 FROM {nums}",
        digest = env.blob(&[0xd0; 32]),
        binding = env.blob(&[0xb1; 16]),
        nums = numbers(25),
    ));
    let a = env
        .cmd()
        .args(["purge-expired", "--batch-size", "4", "--json"])
        .assert()
        .success();
    let v: serde_json::Value = serde_json::from_str(stdout(&a).trim()).expect("json");
    assert_eq!(v["purged"], 25);
    assert_eq!(token_count(&env), 0);
}

#[test]
fn nothing_to_purge_is_success_and_quiet_is_silent() {
    let env = Env::new();
    env.init();
    let a = env.cmd().arg("purge-expired").assert().success();
    assert!(stdout(&a).starts_with("purged 0 tokens"), "{}", stdout(&a));
    let env = env_with_dead_tokens();
    let a = env.cmd().args(["purge-expired", "-q"]).assert().success();
    assert_eq!(stdout(&a), "");
    assert_eq!(stderr(&a), "");
    assert_eq!(token_count(&env), 1);
}

#[test]
fn piped_output_has_no_carriage_returns_or_escape_codes() {
    let env = env_with_dead_tokens();
    let a = env
        .cmd()
        .env("TERM", "xterm-256color")
        .arg("purge-expired")
        .assert()
        .success();
    let all = format!("{}{}", stdout(&a), stderr(&a));
    assert!(!all.contains('\r') && !all.contains('\u{1b}'), "{all:?}");
}

#[test]
fn each_purge_is_audited() {
    let env = env_with_dead_tokens();
    env.cmd().arg("purge-expired").assert().success();
    let detail = env
        .one("SELECT detail FROM pwreset_audit WHERE action = 'purge'")
        .expect("the purge has a detail");
    assert!(
        detail.starts_with("purged 3 (1 expired, 1 used, 1 revoked) in "),
        "{detail}"
    );
    // Purging tokens never deletes audit rows.
    let audit_rows = env.i64("SELECT count(*) FROM pwreset_audit");
    assert!(audit_rows >= 8, "{audit_rows}");
}

#[test]
fn bad_arguments_are_usage_errors() {
    let env = Env::new();
    env.init();
    for args in [
        &["purge-expired", "--older-than", "soon"][..],
        &["purge-expired", "--batch-size", "0"][..],
    ] {
        env.cmd().args(args).assert().code(2);
    }
}
