//! `pwreset revoke`: one token, or all of a user's; audited; exit 0, 1 or 67.

use crate::harness::{Env, stderr, stdout};

fn ready() -> Env {
    let env = Env::new();
    env.init();
    env.add_user("alice@example.com");
    env.add_user("bob@example.com");
    env
}

#[test]
fn a_revoked_link_stops_working_and_says_why() {
    let env = ready();
    let link = env.link("alice@example.com");
    let a = env
        .cmd()
        .args(["revoke", &link, "--reason", "user did not ask for it"])
        .assert()
        .code(0);
    assert!(stdout(&a).contains("alice@example.com"), "{}", stdout(&a));
    let a = env.cmd().args(["verify", &link]).assert().code(1);
    assert!(
        stdout(&a).contains("revoked by support: user did not ask for it"),
        "{}",
        stdout(&a)
    );
    env.cmd()
        .args(["reset", "--password-stdin", &link])
        .write_stdin("correct horse battery staple\n")
        .assert()
        .code(1);
    // Not usable anyway: 1, and nothing more is written.
    let a = env.cmd().args(["revoke", &link]).assert().code(1);
    assert!(stderr(&a).contains("nothing to revoke"), "{}", stderr(&a));
    // From stdin, like verify.
    let other = env.link("bob@example.com");
    env.cmd()
        .args(["revoke", "-"])
        .write_stdin(format!("{other}\n"))
        .assert()
        .code(0);
    env.cmd().args(["revoke", "pwr_garbage"]).assert().code(1);
    let audit = env.i64("SELECT count(*) FROM pwreset_audit WHERE action = 'revoke'");
    assert_eq!(audit, 2);
}

#[test]
fn revoke_user_ends_every_open_link_of_that_user_only() {
    let env = ready();
    let first = env.link("alice@example.com");
    // --force makes a second link, which supersedes the first; make two live ones by hand.
    env.exec(
        "UPDATE pwreset_tokens SET revoked_at = NULL, revoked_reason = NULL, dead_at = expires_at",
    );
    let second = env.link("alice@example.com");
    env.exec(
        "UPDATE pwreset_tokens SET revoked_at = NULL, revoked_reason = NULL, dead_at = expires_at",
    );
    let bobs = env.link("bob@example.com");
    let a = env
        .cmd()
        .args([
            "revoke",
            "--user",
            "ALICE@example.com",
            "--reason",
            "ticket 4711",
        ])
        .assert()
        .code(0);
    assert!(
        stdout(&a).contains("revoked 2 open links"),
        "{}",
        stdout(&a)
    );
    for link in [&first, &second] {
        env.cmd().args(["verify", link]).assert().code(1);
    }
    env.cmd().args(["verify", &bobs]).assert().code(0);
    let a = env
        .cmd()
        .args(["revoke", "--user", "alice@example.com"])
        .assert()
        .code(1);
    assert!(stderr(&a).contains("no open link"), "{}", stderr(&a));
    let a = env
        .cmd()
        .args(["revoke", "--user", "nobody@example.com"])
        .assert()
        .code(67);
    assert!(stderr(&a).contains("nobody@example.com"), "{}", stderr(&a));
    let detail = env
        .text("SELECT detail FROM pwreset_audit WHERE action = 'revoke' AND outcome = 'ok'")
        .expect("an audit row");
    assert!(detail.contains("ticket 4711"), "{detail}");
}

#[test]
fn revoke_refuses_a_bad_reason_and_a_token_with_user() {
    let env = ready();
    let link = env.link("alice@example.com");
    env.cmd()
        .args(["revoke", &link, "--reason", "two\nlines"])
        .assert()
        .code(65);
    env.cmd()
        .args(["revoke", &link, "--user", "alice@example.com"])
        .assert()
        .code(2);
    env.cmd().args(["verify", &link]).assert().code(0);
}

/// A revocation found when a token is looked up (its user deleted) is stored: the same row
/// coming back does not bring the link back to life.
#[test]
fn a_revocation_found_at_lookup_cannot_be_undone() {
    let env = Env::with_toml(|d| {
        format!(
            "{}\n[users]\ntable = \"accounts\"\nid_column = \"id\"\nemail_column = \"email\"\npassword_column = \"pw\"\n",
            crate::harness::default_toml(d)
        )
    });
    env.exec(
        "CREATE TABLE accounts (id INTEGER PRIMARY KEY, email VARCHAR(254) NOT NULL, pw TEXT);
         INSERT INTO accounts VALUES (5, 'carol@example.com', NULL);",
    );
    env.init();
    let link = env.link("carol@example.com");
    env.exec("DELETE FROM accounts WHERE id = 5");
    env.cmd().args(["verify", &link]).assert().code(1);
    env.exec("INSERT INTO accounts VALUES (5, 'carol@example.com', NULL)");
    let a = env.cmd().args(["verify", &link]).assert().code(1);
    assert!(
        stdout(&a).contains("its user was deleted"),
        "{}",
        stdout(&a)
    );
}
