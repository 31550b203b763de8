//! `pwreset purge-expired`

use crate::harness::{Env, stderr, stdout};

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
    let now: i64 = env
        .sql()
        .query_row("SELECT strftime('%s','now')", [], |r| r.get::<_, String>(0))
        .expect("now")
        .parse()
        .expect("int");
    let db = env.sql();
    db.execute(
        "UPDATE pwreset_tokens SET expires_at = ?1, dead_at = ?1 WHERE user_id = 1",
        [now - 7200],
    )
    .expect("expire alice");
    db.execute(
        "UPDATE pwreset_tokens SET used_at = ?1, dead_at = ?1 WHERE user_id = 2",
        [now - 3600],
    )
    .expect("use bob");
    db.execute(
        "UPDATE pwreset_tokens SET revoked_at = ?1, dead_at = ?1 WHERE revoked_at IS NOT NULL",
        [now - 1800],
    )
    .expect("date carol's revocation");
    env
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
    let live: i64 = env
        .sql()
        .query_row("SELECT user_id FROM pwreset_tokens", [], |r| r.get(0))
        .expect("row");
    assert_eq!(live, 3);
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
    // 25 dead tokens in batches of 4.
    env.sql()
        .execute_batch(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 25)
             INSERT INTO pwreset_tokens (digest, user_id, binding, created_at, expires_at, dead_at)
             SELECT randomblob(32), 1, randomblob(16), 1, 2, 2 FROM n;",
        )
        .expect("insert");
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
    let (action, detail): (String, String) = env
        .sql()
        .query_row(
            "SELECT action, detail FROM pwreset_audit WHERE action = 'purge'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("audit row");
    assert_eq!(action, "purge");
    assert!(
        detail.starts_with("purged 3 (1 expired, 1 used, 1 revoked) in "),
        "{detail}"
    );
    // Purging tokens never deletes audit rows.
    let audit_rows: i64 = env
        .sql()
        .query_row("SELECT count(*) FROM pwreset_audit", [], |r| r.get(0))
        .expect("count");
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
