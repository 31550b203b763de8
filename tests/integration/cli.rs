//! Integration tests for the command line itself: help, version, usage errors, completions,
//! and behaviour in pipes.

use crate::harness::{BIN, Env, stderr, stdout};
use std::io::Read;
use std::process::Stdio;

const SUBCOMMANDS: &[&[&str]] = &[
    &[],
    &["init"],
    &["user"],
    &["user", "add"],
    &["user", "list"],
    &["request"],
    &["verify"],
    &["reset"],
    &["purge-expired"],
    &["audit"],
    &["completions"],
    &["demo"],
];

#[test]
fn every_help_has_examples() {
    let env = Env::new();
    for sub in SUBCOMMANDS {
        let a = env.cmd().args(*sub).arg("--help").assert().success();
        let out = stdout(&a);
        assert!(
            out.contains("Examples"),
            "pwreset {sub:?} --help has no examples:\n{out}"
        );
        assert!(out.contains("Usage:"), "{out}");
    }
    // `help SUBCOMMAND` says the same.
    let a = env.cmd().args(["help", "request"]).assert().success();
    assert!(stdout(&a).contains("Examples"));
}

#[test]
fn help_needs_no_config_or_database() {
    let env = Env::new();
    std::fs::remove_file(&env.config).expect("remove the config");
    env.cmd().args(["request", "--help"]).assert().success();
    assert!(!env.database_created());
}

#[test]
fn db_help_says_what_it_accepts() {
    let env = Env::new();
    let a = env.cmd().arg("--help").assert().success();
    let out = crate::harness::stdout(&a);
    let db = out
        .split("--db <PATH|URL>")
        .nth(1)
        .unwrap_or_else(|| panic!("no --db <PATH|URL> in:\n{out}"));
    let db = db.split("\n  -").next().unwrap_or(db);
    for accepted in ["SQLite", "postgres://", "postgresql://", "mysql://"] {
        assert!(db.contains(accepted), "{accepted}: {db}");
    }
}

#[test]
fn version() {
    let env = Env::new();
    let a = env.cmd().arg("--version").assert().success();
    assert_eq!(
        stdout(&a).trim(),
        format!("pwreset {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn usage_errors_are_2() {
    let env = Env::new();
    env.init();
    for args in [
        &["--no-such-option"][..],
        &["init", "--no-such-option"],
        &["user", "list", "--bogus"],
        &["request", "--bogus", "alice@example.com"],
        &["no-such-command"],
        &[],
        &["user"],
        &["completions"],
        &["completions", "tcsh"],
        &["purge-expired", "--older-than", "yesterday"],
        &["purge-expired", "--batch-size", "0"],
        &["audit", "--since", "a while"],
        &["-q", "-v", "user", "list"],
    ] {
        let a = env.cmd().args(args).assert().code(2);
        assert!(!stderr(&a).is_empty(), "{args:?}: no message");
    }
    // verify and reset take any token input, even one that looks like an option: it is
    // malformed (exit 1), not a usage error.
    let a = env.cmd().args(["verify", "--bogus"]).assert().code(1);
    assert!(stdout(&a).starts_with("malformed"), "{}", stdout(&a));
}

#[test]
fn global_options_go_before_or_after_the_subcommand() {
    let env = Env::new();
    env.init();
    env.add_user("alice@example.com");
    let before = env.cmd().args(["-q", "user", "list"]).assert().success();
    let after = env.cmd().args(["user", "list", "-q"]).assert().success();
    assert_eq!(stdout(&before), stdout(&after));
    // -q silences diagnostics on stderr.
    let a = env.cmd().args(["init", "-q"]).assert().success();
    assert_eq!(stderr(&a), "");
}

#[test]
fn completions_for_every_shell() {
    let env = Env::new();
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let a = env.cmd().args(["completions", shell]).assert().success();
        let out = stdout(&a);
        assert!(out.len() > 200, "{shell}: {out}");
        assert!(out.contains("pwreset"), "{shell}");
        assert!(
            out.contains("purge-expired"),
            "{shell}: subcommands missing"
        );
    }
    assert!(!env.database_created());
}

/// `pwreset ARGS | head -c1`: the reader goes away after one byte.
fn closed_pipe(env: &Env, args: &[&str]) {
    let mut child = std::process::Command::new(BIN)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", env.dir.path())
        .env("USER", "tester")
        .env("TERM", "dumb")
        .arg("--config")
        .arg(&env.config)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn pwreset");
    let mut stdout = child.stdout.take().expect("piped stdout");
    let mut one = [0u8; 1];
    stdout.read_exact(&mut one).expect("one byte of output");
    drop(stdout);
    let mut err = String::new();
    child
        .stderr
        .take()
        .expect("piped stderr")
        .read_to_string(&mut err)
        .expect("read stderr");
    let status = child.wait().expect("wait");
    assert!(!err.contains("panicked"), "{args:?}: {err}");
    assert!(!err.to_lowercase().contains("error"), "{args:?}: {err}");
    assert!(!err.contains("Broken pipe"), "{args:?}: {err}");
    // Quietly done: success, or killed by SIGPIPE like classic tools; never a failure code.
    assert!(
        status.success() || status.code().is_none(),
        "{args:?}: {status}"
    );
}

#[test]
fn a_closed_pipe_is_quiet() {
    let env = Env::new();
    env.init();
    // Enough users that the output is far larger than a pipe buffer.
    let emails: Vec<String> = (0..5000)
        .map(|i| format!("user{i:05}@example.com"))
        .collect();
    env.insert_users(&emails);
    env.exec(
        "INSERT INTO pwreset_audit (at, actor, action, email, outcome)
         SELECT created_at, 'tester', 'user_add', email, 'ok' FROM users",
    );
    closed_pipe(&env, &["user", "list"]);
    closed_pipe(&env, &["user", "list", "--json"]);
    closed_pipe(&env, &["audit", "--limit", "5000"]);
    closed_pipe(&env, &["audit", "--json", "--limit", "5000"]);
    closed_pipe(&env, &["request", "--all", "--no-email", "--force"]);
    closed_pipe(&env, &["completions", "zsh"]);
}
