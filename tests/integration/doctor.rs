//! `pwreset doctor`: one line per check; exit 0 unless something failed.

use crate::harness::{Env, stdout};

#[test]
fn a_healthy_setup_passes_every_check() {
    let env = Env::new();
    env.init();
    env.add_user("alice@example.com");
    let a = env.cmd().arg("doctor").assert().code(0);
    let out = stdout(&a);
    for check in [
        "config",
        "database",
        "users",
        "base_url",
        "templates",
        "outbox",
    ] {
        assert!(out.contains(&format!("ok    {check}")), "{check}: {out}");
    }
    // The test config's cheap argon2 is below OWASP's minimum: a warning, not a failure.
    assert!(out.contains("warn  argon2"), "{out}");
    assert!(out.contains("fix:"), "{out}");
}

#[test]
fn each_failure_says_what_to_do_and_sets_the_exit_code() {
    let env = Env::new();
    // Not initialised: the database check fails with init's advice.
    let a = env.cmd().arg("doctor").assert().code(78);
    let out = stdout(&a);
    assert!(out.contains("fail  database"), "{out}");
    assert!(out.contains("pwreset init"), "{out}");
    env.init();
    // No base_url: request cannot make links.
    let text = std::fs::read_to_string(&env.config).expect("config");
    env.set_config(
        &text
            .lines()
            .filter(|l| !l.starts_with("base_url"))
            .collect::<Vec<_>>()
            .join("\n"),
    );
    let a = env.cmd().args(["doctor", "--json"]).assert().code(78);
    let v: serde_json::Value = serde_json::from_str(&stdout(&a)).expect("json");
    let base = v
        .as_array()
        .expect("array")
        .iter()
        .find(|c| c["check"] == "base_url")
        .expect("a base_url check")
        .clone();
    assert_eq!(base["status"], "fail");
    assert!(
        base["fix"]
            .as_str()
            .is_some_and(|f| f.contains("base_url =")),
        "{base}"
    );
    // A broken config: one failing line, 78.
    env.set_config("this is not toml");
    let a = env.cmd().arg("doctor").assert().code(78);
    assert!(stdout(&a).contains("fail  config"), "{}", stdout(&a));
}

#[test]
fn a_database_others_can_read_is_a_warning() {
    let env = Env::new();
    if env.sqlite_only("file modes") {
        return;
    }
    env.init();
    std::fs::set_permissions(&env.db, std::os::unix::fs::PermissionsExt::from_mode(0o644))
        .expect("chmod");
    let a = env.cmd().arg("doctor").assert().code(0);
    let out = stdout(&a);
    assert!(out.contains("warn  database"), "{out}");
    assert!(out.contains("chmod 600"), "{out}");
}

/// doctor names the format a reset writes into the table (the column's own: bcrypt here), times
/// that format at that cost rather than argon2, and warns on a weak cost.
#[test]
fn doctor_times_the_format_the_table_holds_and_warns_on_a_weak_cost() {
    let env = Env::with_toml(|d| {
        format!(
            "{}\n[users]\ntable = \"accounts\"\nid_column = \"id\"\nemail_column = \"email\"\npassword_column = \"pw\"\n",
            crate::harness::default_toml(d)
        )
    });
    env.exec(
        "CREATE TABLE accounts (id INTEGER PRIMARY KEY, email VARCHAR(254) NOT NULL, pw VARCHAR(255));
         INSERT INTO accounts VALUES (1, 'a@example.com', '$2y$04$e4Vhu8hCMCzNxG9WLhTfj.jJ9Zzp1s2DbFExnzAWeMoJy8mB8Dloi');",
    );
    env.init();
    let a = env.cmd().arg("doctor").assert().code(0);
    let out = stdout(&a);
    assert!(out.contains("ok    passwords"), "{out}");
    assert!(out.contains("reset writes bcrypt ($2y$, cost 4)"), "{out}");
    assert!(
        out.contains("warn  bcrypt") && out.contains("below bcrypt cost 10"),
        "{out}"
    );
    assert!(!out.contains("argon2"), "{out}");
}

/// The pepper file is checked by the same rules as `reset` reads it by: a mode others can
/// read is 77 in doctor too.
#[test]
fn doctor_checks_the_pepper_file_like_reset() {
    let env = Env::with_toml(|d| {
        format!(
            "{}\n[users]\ntable = \"accounts\"\nid_column = \"id\"\nemail_column = \"email\"\npassword_column = \"pw\"\npassword_format = \"bcrypt\"\npepper_file = \"{}\"\n",
            crate::harness::default_toml(d),
            d.join("pepper").display()
        )
    });
    let pepper = env.dir.path().join("pepper");
    std::fs::write(&pepper, "devise-pepper\n").expect("write pepper");
    let mode = |m: u32| {
        std::fs::set_permissions(&pepper, std::os::unix::fs::PermissionsExt::from_mode(m))
            .expect("chmod")
    };
    mode(0o600);
    env.exec(
        "CREATE TABLE accounts (id INTEGER PRIMARY KEY, email VARCHAR(254) NOT NULL, pw VARCHAR(255));",
    );
    env.init();
    mode(0o644);
    let a = env.cmd().arg("doctor").assert().code(77);
    let out = stdout(&a);
    assert!(out.contains("fail  pepper"), "{out}");
    assert!(out.contains("chmod 600"), "{out}");
    // reset says the same.
    env.exec("INSERT INTO accounts VALUES (1, 'a@example.com', NULL)");
    mode(0o600);
    let link = env.link("a@example.com");
    mode(0o644);
    env.cmd()
        .args(["reset", "--password-stdin", &link])
        .write_stdin("correct horse battery staple\n")
        .assert()
        .code(77);
    mode(0o600);
    let a = env.cmd().arg("doctor").assert();
    let out = stdout(&a);
    assert!(out.contains("ok    pepper"), "{out}");
}
