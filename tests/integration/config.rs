//! Integration tests for configuration: files, environment and flags.

use crate::harness::{Backend, Env, database_for, default_toml, stderr, stdout};
use assert_cmd::Command;

/// Like `env.cmd()` but without `--config`: the caller decides where the config comes from.
fn bare(env: &Env) -> Command {
    env.bare()
}

/// A config error: exit 78, and stderr names every one of `words`.
fn config_error(env: &Env, args: &[&str], words: &[&str]) {
    let a = env.cmd().args(args).assert().code(78);
    let err = stderr(&a);
    for w in words {
        assert!(err.contains(w), "{w:?} not in: {err}");
    }
}

#[test]
fn an_explicit_config_that_is_missing_is_an_error() {
    let env = Env::new();
    let missing = env.dir.path().join("nope.toml");
    let a = bare(&env)
        .arg("--config")
        .arg(&missing)
        .arg("init")
        .assert()
        .code(78);
    assert!(stderr(&a).contains("nope.toml"), "{}", stderr(&a));
    let a = bare(&env)
        .env("PWRESET_CONFIG", &missing)
        .arg("init")
        .assert()
        .code(78);
    assert!(stderr(&a).contains("nope.toml"), "{}", stderr(&a));
    assert!(!env.database_created());
}

#[test]
fn pwreset_config_env_is_used() {
    let env = Env::new();
    bare(&env)
        .env("PWRESET_CONFIG", &env.config)
        .arg("init")
        .assert()
        .success();
    assert!(env.database_created(), "the config's database was not used");
    bare(&env)
        .env("PWRESET_CONFIG", &env.config)
        .args(["user", "add", "alice@example.com"])
        .assert()
        .success();
    env.cmd()
        .args(["user", "list"])
        .assert()
        .success()
        .stdout(predicates::str::contains("alice@example.com"));
}

#[test]
fn the_default_config_file_is_read() {
    let env = Env::new();
    let dir = env.dir.path().join("xdg-config/pwreset");
    std::fs::create_dir_all(&dir).expect("mkdir the config folder");
    std::fs::copy(&env.config, dir.join("config.toml")).expect("copy the config");
    bare(&env).arg("init").assert().success();
    assert!(
        env.database_created(),
        "$XDG_CONFIG_HOME/pwreset/config.toml was not read"
    );
}

#[test]
fn a_missing_default_config_file_is_fine() {
    let env = Env::new();
    // A SQLite file in a folder init makes, or the test's server database.
    let db = match env.backend() {
        Backend::Sqlite => env.dir.path().join("data/my.db").display().to_string(),
        _ => database_for(env.dir.path()),
    };
    // XDG_CONFIG_HOME is an empty folder: built-in defaults.
    std::fs::create_dir_all(env.dir.path().join("xdg-config")).expect("mkdir xdg-config");
    bare(&env)
        .arg("--db")
        .arg(&db)
        .arg("init")
        .assert()
        .success();
    if *env.backend() == Backend::Sqlite {
        assert!(std::path::Path::new(&db).exists());
    }
    bare(&env)
        .arg("--db")
        .arg(&db)
        .args(["user", "add", "alice@example.com"])
        .assert()
        .success();
    bare(&env)
        .arg("--db")
        .arg(&db)
        .args(["user", "list"])
        .assert()
        .success()
        .stdout(predicates::str::contains("alice@example.com"));
}

#[test]
fn the_default_database_is_under_xdg_data_home() {
    let env = Env::new();
    if env.sqlite_only("the default database path under XDG_DATA_HOME") {
        return;
    }
    std::fs::create_dir_all(env.dir.path().join("xdg-config")).expect("mkdir xdg-config");
    bare(&env).arg("init").assert().success();
    let db = env.dir.path().join("xdg-data/pwreset/pwreset.db");
    assert!(db.exists(), "no database at {}", db.display());
}

#[test]
fn http_base_url_to_a_remote_host_is_refused() {
    let env = Env::with_toml(|d| {
        default_toml(d).replace(
            "https://accounts.example.com/reset_password",
            "http://accounts.example.com/reset_password",
        )
    });
    let path = env.config.display().to_string();
    config_error(&env, &["init"], &["base_url", &path]);
    assert!(!env.database_created());
}

#[test]
fn http_base_url_to_loopback_is_allowed() {
    let env = Env::with_toml(|d| {
        default_toml(d).replace(
            "https://accounts.example.com/reset_password",
            "http://127.0.0.1:8080/reset",
        )
    });
    env.init();
    env.add_user("alice@example.com");
    let link = env.link("alice@example.com");
    assert!(
        link.starts_with("http://127.0.0.1:8080/reset?token=pwr_"),
        "{link}"
    );
}

#[test]
fn a_bad_duration_names_the_key() {
    let env =
        Env::with_toml(|d| default_toml(d).replace("token_ttl = \"1h\"", "token_ttl = \"soon\""));
    let path = env.config.display().to_string();
    config_error(&env, &["init"], &["token_ttl", &path]);
    let env = Env::with_toml(|d| {
        default_toml(d).replace("busy_timeout = \"2s\"", "busy_timeout = \"2 fortnights\"")
    });
    config_error(&env, &["user", "list"], &["busy_timeout"]);
}

#[test]
fn an_unknown_key_is_refused() {
    let env = Env::with_toml(|d| format!("colour = \"blue\"\n{}", default_toml(d)));
    config_error(&env, &["init"], &["colour"]);
    // Also inside a section (a typo there would otherwise be silently ignored).
    let env = Env::with_toml(|d| {
        default_toml(d).replace("[mail.file]", "[mail.file]\ndirectory = \"/x\"")
    });
    config_error(&env, &["init"], &["directory"]);
}

#[test]
fn toml_syntax_errors_are_config_errors() {
    let env = Env::with_toml(|d| format!("{}\nthis is not toml\n", default_toml(d)));
    let path = env.config.display().to_string();
    config_error(&env, &["init"], &[&path]);
}

#[test]
fn db_flag_overrides_the_config() {
    let env = Env::new();
    if env.sqlite_only("creating database files named by --db") {
        return;
    }
    let other = env.dir.path().join("other.db");
    env.cmd()
        .arg("--db")
        .arg(&other)
        .arg("init")
        .assert()
        .success();
    assert!(other.exists());
    assert!(!env.db.exists());
    // Also after the subcommand.
    let third = env.dir.path().join("third.db");
    env.cmd()
        .arg("init")
        .arg("--db")
        .arg(&third)
        .assert()
        .success();
    assert!(third.exists());
    assert!(!env.db.exists());
}

#[test]
fn pwreset_db_env_overrides_the_config_and_the_flag_overrides_the_env() {
    let env = Env::new();
    if env.sqlite_only("creating database files named by PWRESET_DB and --db") {
        return;
    }
    let from_env = env.dir.path().join("from-env.db");
    let from_flag = env.dir.path().join("from-flag.db");
    env.cmd()
        .env("PWRESET_DB", &from_env)
        .arg("init")
        .assert()
        .success();
    assert!(from_env.exists());
    assert!(!env.db.exists());
    env.cmd()
        .env("PWRESET_DB", &from_env)
        .arg("--db")
        .arg(&from_flag)
        .arg("init")
        .assert()
        .success();
    assert!(from_flag.exists());
    // Users land where the flag says.
    env.cmd()
        .env("PWRESET_DB", &from_env)
        .arg("--db")
        .arg(&from_flag)
        .args(["user", "add", "alice@example.com"])
        .assert()
        .success();
    let a = env
        .cmd()
        .env("PWRESET_DB", &from_env)
        .args(["user", "list", "--json"])
        .assert()
        .success();
    assert_eq!(stdout(&a).trim(), "[]");
    let a = env
        .cmd()
        .arg("--db")
        .arg(&from_flag)
        .args(["user", "list", "--json"])
        .assert()
        .success();
    assert!(stdout(&a).contains("alice@example.com"));
}

#[test]
fn a_file_that_is_not_a_database_is_a_config_error() {
    let env = Env::new();
    if env.sqlite_only("a database file that is not SQLite") {
        return;
    }
    std::fs::write(
        &env.db,
        "this is not an SQLite database, it is a text file of some length\n".repeat(20),
    )
    .expect("write a text file where the database goes");
    let a = env.cmd().args(["user", "list"]).assert().failure();
    let code = a.get_output().status.code();
    assert_eq!(code, Some(78), "{}", stderr(&a));
    assert!(!stderr(&a).contains("panicked"));
}

#[test]
fn a_missing_setting_with_no_config_file_names_the_files_looked_for() {
    let env = Env::new();
    std::fs::create_dir_all(env.dir.path().join("xdg-config")).expect("mkdir");
    let a = bare(&env)
        .arg("--db")
        .arg(&env.db)
        .args(["request", "alice@example.com"])
        .assert()
        .code(78);
    let err = stderr(&a);
    let xdg = env.dir.path().join("xdg-config/pwreset/config.toml");
    for w in [
        "base_url",
        "no config file found",
        &xdg.display().to_string(),
        "/etc/pwreset/config.toml",
        "pwreset config example",
    ] {
        assert!(err.contains(w), "{w:?} not in: {err}");
    }
}

#[test]
fn config_example_is_a_config_init_accepts_once_the_paths_are_set() {
    let env = Env::new();
    let a = bare(&env).args(["config", "example"]).assert().success();
    let text = stdout(&a);
    for key in pwreset::config::keys::KEYS {
        assert!(
            text.contains(&format!("\n{} = ", key.name))
                || text.contains(&format!("\n# {} = ", key.name)),
            "{} is not in the example",
            key.name
        );
    }
    let db = env.db.display().to_string();
    let text = text.replace("/var/lib/pwreset/pwreset.db", &db);
    env.set_config(&text);
    env.cmd().arg("init").assert().success();
    assert!(env.db.exists());
}

#[test]
fn config_show_gives_each_setting_its_source_and_hides_secrets() {
    let env = Env::with_toml(|d| {
        format!(
            "{}\n[mail.smtp]\nhost = \"smtp.example.com\"\nusername = \"pwreset\"\npassword_file = \"{}\"\n",
            default_toml(d),
            d.join("smtp-password").display()
        )
    });
    let secret = env.dir.path().join("smtp-password");
    std::fs::write(&secret, "hunter2-file\n").expect("write");
    let flag_db = env.dir.path().join("other.db");
    let a = env
        .cmd()
        .env("PWRESET_SMTP_PASSWORD", "hunter2-env")
        .env("PWRESET_DB_PASSWORD", "hunter2-db")
        .arg("--db")
        .arg(&flag_db)
        .args(["config", "show"])
        .assert()
        .success();
    let out = stdout(&a);
    let line = |key: &str| {
        out.lines()
            .find(|l| l.starts_with(&format!("{key} = ")))
            .unwrap_or_else(|| panic!("no {key} in:\n{out}"))
            .to_owned()
    };
    let config = env.config.display().to_string();
    let text = std::fs::read_to_string(&env.config).expect("read");
    let base_line = text
        .lines()
        .position(|l| l.starts_with("base_url"))
        .expect("base_url")
        + 1;
    assert!(
        line("base_url").ends_with(&format!("# {config}:{base_line}")),
        "{out}"
    );
    assert!(
        line("database").contains(&flag_db.display().to_string()),
        "{out}"
    );
    assert!(line("database").ends_with("# flag --db"), "{out}");
    assert!(line("password.min_length").ends_with("# default"), "{out}");
    assert!(
        line("mail.smtp.password_file").contains("smtp-password"),
        "{out}"
    );
    assert!(line("mail.smtp.password").contains("(set)"), "{out}");
    assert!(line("database_password").contains("(set)"), "{out}");
    assert!(!out.contains("hunter2"), "a secret is shown:\n{out}");
    // The environment's database, named as such.
    let a = env
        .cmd()
        .env("PWRESET_DB", &flag_db)
        .args(["config", "show"])
        .assert()
        .success();
    assert!(stdout(&a).contains("# env PWRESET_DB"), "{}", stdout(&a));
}

#[test]
fn misplaced_sections_and_misspelt_keys_get_a_hint() {
    for (toml, words) in [
        (
            "[smtp]\nhost = \"smtp.example.com\"\n",
            &["smtp", "did you mean `[mail.smtp]`?"][..],
        ),
        (
            "[argon2]\nmemory_kib = 8192\n",
            &["argon2", "`[password.argon2]`"],
        ),
        (
            "[mail.smtp]\nhots = \"x\"\n",
            &["mail.smtp.hots", "did you mean `host`?"],
        ),
        (
            "[users]\nemial_column = \"x\"\n",
            &["users.emial_column", "`email_column`"],
        ),
        ("[pasword]\nmin_length = 12\n", &["pasword", "`[password]`"]),
    ] {
        let env = Env::with_toml(|d| format!("{}\n{toml}", default_toml(d)));
        config_error(&env, &["user", "list"], words);
    }
}

/// A build without the `ldap` feature refuses an `[ldap]` section with 78, saying how to get
/// LDAP support, instead of silently using a users table.
#[cfg(not(feature = "ldap"))]
#[test]
fn ldap_section_in_a_build_without_ldap_is_refused() {
    let env = Env::with_toml(|dir| {
        format!(
            "{}\n[ldap]\nurl = \"ldaps://ldap.example.com\"\nbind_dn = \"cn=pwreset,dc=example,dc=com\"\nbase_dn = \"dc=example,dc=com\"\n",
            default_toml(dir)
        )
    });
    let a = env
        .cmd()
        .args(["request", "a@example.com"])
        .assert()
        .code(78);
    let err = String::from_utf8_lossy(&a.get_output().stderr).into_owned();
    assert!(
        err.contains("built without LDAP support") && err.contains("--features ldap"),
        "{err}"
    );
}
