//! Integration tests for demo.

use crate::harness::{BIN, Env, stderr};
use assert_cmd::Command;

#[test]
fn demo_runs_with_no_config_and_cleans_up() {
    let home = tempfile::tempdir().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let a = Command::new(BIN)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home.path())
        .env("TMPDIR", tmp.path())
        .arg("demo")
        .assert()
        .success();
    let out = String::from_utf8_lossy(&a.get_output().stdout).into_owned();
    let err = String::from_utf8_lossy(&a.get_output().stderr).into_owned();
    let all = format!("{out}\n{err}");

    // Every step is shown.
    for s in [
        "request",
        "token: pwr_",
        "link:  https://",
        "valid: token of demo.user@example.com",
        "password changed",
        "used: token of demo.user@example.com",
        "purged 1 token:",
    ] {
        assert!(all.contains(s), "step {s:?} missing from\n{all}");
    }
    // In order.
    let mut at = 0;
    for s in [
        "request",
        "token: pwr_",
        "link:  https://",
        "valid:",
        "password changed",
        "purged",
    ] {
        let i = out[at..]
            .find(s)
            .unwrap_or_else(|| panic!("{s:?} not in order in stdout:\n{out}"));
        at += i;
    }
    // The email itself is shown, with its headers.
    assert!(out.contains("Auto-Submitted: auto-generated"), "{out}");
    // As its reader sees it: decoded, not quoted-printable, and the link in one piece.
    assert!(!out.contains("=3D"), "quoted-printable in the demo:\n{out}");
    assert!(
        !out.contains("\\n"),
        "an escaped line break in the demo:\n{out}"
    );
    assert!(!out.contains("Content-Transfer-Encoding"), "{out}");
    let link = out
        .lines()
        .find_map(|l| l.strip_prefix("link:  "))
        .expect("the link step");
    assert!(
        out.lines().any(|l| l.trim() == link),
        "the email does not show the link {link} whole:\n{out}"
    );
    assert!(
        out.contains("Subject: Reset your Example Accounts password"),
        "{out}"
    );
    // The used token was refused with exit status 1.
    assert!(out.contains("exit status 1"), "{out}");
    assert!(!all.contains("panicked"));
    assert!(!err.contains("error"), "{err}");

    // Nothing left behind: no pwreset-demo-* folder, nothing in HOME.
    let left: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "left behind in TMPDIR: {left:?}");
    let in_home: Vec<_> = std::fs::read_dir(home.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(in_home.is_empty(), "written to HOME: {in_home:?}");
}

#[test]
fn demo_ignores_the_users_config_and_database() {
    // A broken config and a database path in the environment must not touch the demo.
    let home = tempfile::tempdir().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let cfg = home.path().join("xdg/pwreset/config.toml");
    std::fs::create_dir_all(cfg.parent().unwrap()).unwrap();
    std::fs::write(&cfg, "base_url = \"http://insecure.example.com/\"\n").unwrap();
    let db = home.path().join("real.db");
    Command::new(BIN)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home.path())
        .env("XDG_CONFIG_HOME", home.path().join("xdg"))
        .env("PWRESET_DB", &db)
        .env("TMPDIR", tmp.path())
        .arg("demo")
        .assert()
        .success();
    assert!(!db.exists(), "the demo wrote to the real database");
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
}

#[test]
fn demo_refuses_config_and_db_flags() {
    let env = Env::new();
    for flag in ["--config", "--db"] {
        let a = env
            .bare()
            .args(["demo", flag])
            .arg(env.dir.path().join("x"))
            .assert()
            .code(2);
        let err = stderr(&a);
        assert!(err.contains(flag) && err.contains("throwaway"), "{err}");
    }
}
