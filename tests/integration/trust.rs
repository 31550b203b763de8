//! Files and ownership (issue 13): pwreset runs as root, so the files and folders it reads and
//! writes must be root's (or its user's) and writable by nobody else. Reproduced as root with
//! the attacker as uid 65534; the tests that need root say so on one line and skip elsewhere.

use crate::harness::{BIN, Env, database_for, default_toml, stderr};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command as StdCommand;
use std::time::Duration;

const NOBODY: u32 = 65534;
/// Long enough for any one command on a loaded machine; only a hang gets near it.
const TIMEOUT: Duration = Duration::from_secs(30);

/// True when the test runs as root with setpriv at hand; else prints why it skips.
fn root(test: &str) -> bool {
    let root = rustix::process::geteuid().is_root();
    let setpriv = StdCommand::new("setpriv")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !(root && setpriv) {
        println!("skipping {test}: needs root and setpriv");
    }
    root && setpriv
}

/// A folder at `path` that the attacker owns (made by root and handed over: the attacker cannot
/// write in the test's folder), then `script` run as the attacker.
fn nobodys_folder(path: &Path, script: &str) {
    std::fs::create_dir(path).expect("mkdir");
    std::os::unix::fs::chown(path, Some(NOBODY), Some(NOBODY)).expect("chown");
    as_nobody(script);
}

/// Run `script` with sh as the attacker (uid and gid 65534, no groups).
fn as_nobody(script: &str) {
    let out = StdCommand::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "sh",
            "-c",
        ])
        .arg(script)
        .output()
        .expect("run setpriv");
    assert!(
        out.status.success(),
        "as nobody: {script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .expect("stat")
        .permissions()
        .mode()
        & 0o7777
}

/// An environment whose folder the attacker may enter (but not write), with a config made by
/// `toml(dir)`.
fn shared_env(toml: impl FnOnce(&Path) -> String) -> Env {
    let env = Env::with_toml(toml);
    chmod(env.dir.path(), 0o711);
    env
}

/// The default config with `[mail.file] dir` set to `outbox`.
fn with_outbox(dir: &Path, outbox: &Path) -> String {
    default_toml(dir).replace(
        &format!("dir = \"{}\"", dir.join("outbox").display()),
        &format!("dir = \"{}\"", outbox.display()),
    )
}

/// The default config with `database` set to the SQLite file `db`.
fn with_db(dir: &Path, db: &Path) -> String {
    default_toml(dir).replace(
        &format!("database = \"{}\"", database_for(dir)),
        &format!("database = \"{}\"", db.display()),
    )
}

fn run(env: &Env, args: &[&str]) -> (i32, String) {
    let out = env
        .cmd()
        .args(args)
        .timeout(TIMEOUT)
        .output()
        .expect("run pwreset");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!err.contains("panicked"), "{args:?}: {err}");
    (out.status.code().unwrap_or(-1), err)
}

fn files_in(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|rd| rd.map(|e| e.expect("dir entry").path()).collect())
        .unwrap_or_default()
}

// ---- 1. the outbox ---------------------------------------------------------------------------

#[test]
fn trust_outbox_messages_are_0600_under_umask_000() {
    let env = Env::new();
    env.init().add_user("alice@example.com");
    let out = env
        .isolated("sh")
        .arg("-c")
        .arg("umask 000; exec \"$@\"")
        .arg("sh")
        .arg(BIN)
        .arg("--config")
        .arg(&env.config)
        .args(["request", "alice@example.com"])
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let files = files_in(&env.outbox);
    assert_eq!(files.len(), 1);
    for f in files {
        assert_eq!(mode(&f), 0o600, "{}", f.display());
        // lettre's FileTransport name: <uuid>.eml
        let name = f.file_name().and_then(|n| n.to_str()).expect("name");
        assert!(name.ends_with(".eml") && name.len() == 36 + 4, "{name}");
    }
    assert_eq!(mode(&env.outbox), 0o700);
}

#[test]
fn trust_outbox_folder_of_another_user_or_writable_by_others_is_refused_with_77() {
    if !root("trust_outbox_folder_of_another_user_or_writable_by_others_is_refused_with_77") {
        return;
    }
    // The attacker made the spool folder, 0777, before root's first request.
    let env = shared_env(|dir| with_outbox(dir, &dir.join("spool")));
    env.init().add_user("alice@example.com");
    let spool = env.dir.path().join("spool");
    nobodys_folder(&spool, &format!("chmod 777 '{}'", spool.display()));
    let (code, err) = run(&env, &["request", "alice@example.com"]);
    assert_eq!(code, 77, "{err}");
    assert!(
        err.contains(&format!("chown root {}", spool.display())),
        "{err}"
    );
    assert!(
        err.contains(&format!("chmod 700 {}", spool.display())),
        "{err}"
    );
    assert!(files_in(&spool).is_empty(), "nothing written");

    // Root's own folder, but anyone can write to it.
    std::os::unix::fs::chown(&spool, Some(0), Some(0)).expect("chown");
    let (code, err) = run(&env, &["request", "alice@example.com"]);
    assert_eq!(code, 77, "{err}");
    assert!(err.contains("chmod 700"), "{err}");
    chmod(&spool, 0o700);
    let (code, err) = run(&env, &["request", "--force", "alice@example.com"]);
    assert_eq!(code, 0, "{err}");
}

// ---- 2. the database ---------------------------------------------------------------------------

#[test]
fn trust_database_others_can_write_is_refused_and_readable_is_a_warning() {
    let env = Env::new();
    if env.sqlite_only("the database file's mode") {
        return;
    }
    env.init();
    chmod(&env.db, 0o666);
    let (code, err) = run(&env, &["init"]);
    assert_eq!(code, 77, "{err}");
    assert!(
        err.contains(&format!("chmod 600 {}", env.db.display())),
        "{err}"
    );
    let (code, err) = run(&env, &["user", "add", "alice@example.com"]);
    assert_eq!(code, 77, "every command that writes: {err}");

    chmod(&env.db, 0o644);
    let (code, err) = run(&env, &["init"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("warning") && err.contains(&format!("chmod 600 {}", env.db.display())),
        "{err}"
    );
    chmod(&env.db, 0o600);
    let (code, err) = run(&env, &["init"]);
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("warning"), "{err}");
}

#[test]
fn trust_database_folder_others_can_write_is_refused() {
    let env = Env::with_toml(|dir| with_db(dir, &dir.join("data").join("pwreset.db")));
    if env.sqlite_only("the database file's folder") {
        return;
    }
    let data = env.dir.path().join("data");
    std::fs::create_dir(&data).expect("mkdir");
    chmod(&data, 0o777);
    let (code, err) = run(&env, &["init"]);
    assert_eq!(code, 77, "{err}");
    assert!(
        err.contains(&format!("chmod 700 {}", data.display())),
        "{err}"
    );
    assert!(files_in(&data).is_empty(), "nothing created: {err}");
}

#[test]
fn trust_database_planted_by_another_user_is_refused() {
    let env = shared_env(|dir| with_db(dir, &dir.join("planted").join("pwreset.db")));
    if env.sqlite_only("the owner of the database file") {
        return;
    }
    if !root("trust_database_planted_by_another_user_is_refused") {
        return;
    }
    let planted = env.dir.path().join("planted");
    nobodys_folder(
        &planted,
        &format!(
            "chmod 777 '{0}' && touch '{0}/pwreset.db' && chmod 666 '{0}/pwreset.db'",
            planted.display()
        ),
    );
    let db = planted.join("pwreset.db");
    let (code, err) = run(&env, &["init"]);
    assert_eq!(code, 77, "{err}");
    assert!(err.contains("uid 65534"), "{err}");
    assert_eq!(
        std::fs::metadata(&db).expect("stat").len(),
        0,
        "not migrated"
    );

    // A private folder of root's, but the file is still the attacker's.
    std::os::unix::fs::chown(&planted, Some(0), Some(0)).expect("chown");
    chmod(&planted, 0o700);
    chmod(&db, 0o600);
    let (code, err) = run(&env, &["init"]);
    assert_eq!(code, 77, "{err}");
    assert!(
        err.contains(&format!("chown root {}", db.display())),
        "{err}"
    );
    assert_eq!(
        std::fs::metadata(&db).expect("stat").len(),
        0,
        "not migrated"
    );
}

#[test]
fn trust_a_planted_wal_symlink_is_named_with_the_fix() {
    let env = Env::new();
    if env.sqlite_only("the write-ahead log file beside the database") {
        return;
    }
    if !root("trust_a_planted_wal_symlink_is_named_with_the_fix") {
        return;
    }
    env.init().add_user("alice@example.com");
    let victim = env.dir.path().join("victim");
    std::fs::write(&victim, "").expect("write");
    let wal = env.dir.path().join("pwreset.db-wal");
    std::os::unix::fs::symlink(&victim, &wal).expect("symlink");
    std::os::unix::fs::lchown(&wal, Some(NOBODY), Some(NOBODY)).expect("lchown");
    for args in [
        &["user", "add", "bob@example.com"][..],
        &["user", "list"][..],
    ] {
        let (code, err) = run(&env, args);
        assert_eq!(code, 77, "{args:?}: {err}");
        assert!(
            err.contains(&format!("{} ", wal.display()))
                && err.contains("symbolic link")
                && err.contains(&format!("rm {}", wal.display())),
            "{args:?}: {err}"
        );
    }
    assert_eq!(std::fs::read(&victim).expect("read"), b"", "untouched");
}

// ---- 3. config, secrets, templates -----------------------------------------------------------

#[test]
fn trust_config_others_can_write_is_refused_with_77_but_readable_is_fine() {
    let env = Env::new();
    chmod(&env.config, 0o644);
    env.init();
    chmod(&env.config, 0o666);
    let (code, err) = run(&env, &["user", "list"]);
    assert_eq!(code, 77, "{err}");
    assert!(
        err.contains(&format!("chmod go-w {}", env.config.display())),
        "{err}"
    );
    chmod(&env.config, 0o644);

    // A folder anyone can write to lets anyone replace the file.
    let open = env.dir.path().join("open");
    std::fs::create_dir(&open).expect("mkdir");
    let config = open.join("config.toml");
    std::fs::copy(&env.config, &config).expect("copy");
    chmod(&open, 0o777);
    let out = env
        .bare()
        .arg("--config")
        .arg(&config)
        .args(["user", "list"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(77), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&format!("chmod go-w {}", open.display())),
        "{out:?}"
    );
    // ... unless the folder is sticky, like /tmp: then only the file's owner can replace it.
    chmod(&open, 0o1777);
    env.bare()
        .arg("--config")
        .arg(&config)
        .args(["user", "list"])
        .assert()
        .success();
}

#[test]
fn trust_config_of_another_user_does_not_run_their_sendmail() {
    if !root("trust_config_of_another_user_does_not_run_their_sendmail") {
        return;
    }
    let marker = std::env::temp_dir().join(format!("pwreset-owned-{}", std::process::id()));
    let env = Env::with_toml(|dir| {
        default_toml(dir)
            .replace("transport = \"file\"", "transport = \"sendmail\"")
            .replace(
                "[mail.file]\n",
                &format!(
                    "[mail.sendmail]\ncommand = \"{}\"\n\n[mail.file]\n",
                    dir.join("evil").display()
                ),
            )
    });
    let evil = env.dir.path().join("evil");
    std::fs::write(
        &evil,
        format!("#!/bin/sh\ntouch '{}'\ncat >/dev/null\n", marker.display()),
    )
    .expect("write");
    chmod(&evil, 0o755);
    env.init().add_user("alice@example.com");
    std::os::unix::fs::chown(&env.config, Some(NOBODY), Some(NOBODY)).expect("chown");
    let (code, err) = run(&env, &["request", "alice@example.com"]);
    let ran = marker.exists();
    let _ = std::fs::remove_file(&marker);
    assert_eq!(code, 77, "{err}");
    assert!(!ran, "nobody's command ran as root");
    assert!(
        err.contains(&env.config.display().to_string()) && err.contains("chown root"),
        "{err}"
    );
}

#[test]
fn trust_smtp_password_file_of_another_user_is_refused() {
    if !root("trust_smtp_password_file_of_another_user_is_refused") {
        return;
    }
    let env = Env::with_toml(|dir| {
        default_toml(dir)
            .replace("transport = \"file\"", "transport = \"smtp\"")
            .replace(
                "[mail.file]\n",
                &format!(
                    "[mail.smtp]\nhost = \"127.0.0.1\"\nport = 9\ntls = \"none\"\nusername = \"u\"\npassword_file = \"{}\"\n\n[mail.file]\n",
                    dir.join("smtp-password").display()
                ),
            )
    });
    let secret = env.dir.path().join("smtp-password");
    std::fs::write(&secret, "hunter2hunter2\n").expect("write");
    chmod(&secret, 0o600);
    std::os::unix::fs::chown(&secret, Some(NOBODY), Some(NOBODY)).expect("chown");
    env.init().add_user("alice@example.com");
    let (code, err) = run(&env, &["request", "alice@example.com"]);
    assert_eq!(code, 77, "{err}");
    assert!(
        err.contains("mail.smtp.password_file")
            && err.contains(&format!("chown root {}", secret.display())),
        "{err}"
    );
}

/// An env whose `template_dir` holds `files`, made by `make(dir, templates)` after the
/// defaults.
fn template_env(make: impl FnOnce(&Path)) -> Env {
    let env = Env::with_toml(|dir| {
        default_toml(dir).replace(
            "[mail]\n",
            &format!(
                "[mail]\ntemplate_dir = \"{}\"\n",
                dir.join("templates").display()
            ),
        )
    });
    let templates = env.dir.path().join("templates");
    std::fs::create_dir(&templates).expect("mkdir");
    chmod(&templates, 0o755);
    make(&templates);
    env.init().add_user("alice@example.com");
    env
}

fn token_rows(env: &Env) -> i64 {
    env.i64("SELECT count(*) FROM pwreset_tokens")
}

#[test]
fn trust_template_folder_or_file_others_can_write_is_refused() {
    let env = template_env(|t| chmod(t, 0o777));
    let (code, err) = run(&env, &["request", "alice@example.com"]);
    assert_eq!(code, 77, "{err}");
    assert!(
        err.contains("mail.template_dir") && err.contains("chmod 700"),
        "{err}"
    );
    assert_eq!(token_rows(&env), 0);

    let env = template_env(|t| {
        let f = t.join("reset.txt");
        std::fs::write(&f, "{{ link }}\n").expect("write");
        chmod(&f, 0o666);
    });
    let (code, err) = run(&env, &["request", "alice@example.com"]);
    assert_eq!(code, 77, "{err}");
    assert!(
        err.contains("reset.txt") && err.contains("chmod go-w"),
        "{err}"
    );
    assert_eq!(token_rows(&env), 0);
}

// ---- 4. templates are bounded ----------------------------------------------------------------

/// Puts something in the template folder.
type MakeTemplates = Box<dyn FnOnce(&Path)>;

#[test]
fn trust_templates_must_be_small_regular_files_and_render_in_bounded_time() {
    let cases: Vec<(&str, MakeTemplates)> = vec![
        (
            "a symbolic link to a secret",
            Box::new(|t: &Path| {
                std::os::unix::fs::symlink("/etc/shadow", t.join("reset.txt")).expect("symlink");
            }),
        ),
        (
            "a symbolic link to /dev/zero",
            Box::new(|t: &Path| {
                std::os::unix::fs::symlink("/dev/zero", t.join("reset.txt")).expect("symlink");
            }),
        ),
        (
            "a FIFO",
            Box::new(|t: &Path| {
                let ok = StdCommand::new("mkfifo")
                    .arg(t.join("reset.txt"))
                    .status()
                    .expect("mkfifo")
                    .success();
                assert!(ok, "mkfifo");
            }),
        ),
        (
            "a file over 256 KiB",
            Box::new(|t: &Path| {
                let text = format!("{{{{ link }}}}\n{}", "x".repeat(257 * 1024));
                std::fs::write(t.join("reset.txt"), text).expect("write");
            }),
        ),
        (
            "nested loops",
            Box::new(|t: &Path| {
                std::fs::write(
                    t.join("reset.txt"),
                    "{{ link }}{% for a in range(100000) %}{% for b in range(100000) %}.{% endfor %}{% endfor %}\n",
                )
                .expect("write");
            }),
        ),
    ];
    for (what, make) in cases {
        let env = template_env(make);
        let (code, err) = run(&env, &["request", "alice@example.com"]);
        assert_eq!(code, 78, "{what}: {err}");
        assert!(err.contains("reset.txt"), "{what}: {err}");
        assert!(!err.contains("root:"), "{what}: {err}");
        assert_eq!(token_rows(&env), 0, "{what}");
        assert!(env.messages().is_empty(), "{what}");
    }
}

// ---- 5. odd database paths -------------------------------------------------------------------

#[test]
fn trust_a_fifo_as_database_is_73_at_once() {
    let env = Env::new();
    if env.sqlite_only("a database path that is a FIFO") {
        return;
    }
    env.init().add_user("alice@example.com");
    let token = Env::token_of(&env.link("alice@example.com"));
    let fifo = env.dir.path().join("fifo.db");
    assert!(
        StdCommand::new("mkfifo")
            .arg(&fifo)
            .status()
            .expect("mkfifo")
            .success()
    );
    for args in [&["verify", token.as_str()][..], &["init"][..]] {
        let out = env
            .cmd()
            .arg("--db")
            .arg(&fifo)
            .args(args)
            .timeout(TIMEOUT)
            .output()
            .expect("run");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(73), "{args:?}: {err}");
        assert!(err.contains("FIFO"), "{args:?}: {err}");
    }
}

#[test]
fn trust_dev_null_as_database_is_73_and_creates_nothing() {
    let env = Env::new();
    if env.sqlite_only("a database path that is a device or a folder") {
        return;
    }
    if !root("trust_dev_null_as_database_is_73_and_creates_nothing") {
        return;
    }
    let a = env
        .cmd()
        .args(["--db", "/dev/null", "init"])
        .timeout(TIMEOUT)
        .assert()
        .code(73);
    assert!(stderr(&a).contains("character device"), "{}", stderr(&a));
    for side in ["/dev/null-journal", "/dev/null-wal", "/dev/null-shm"] {
        assert!(!Path::new(side).exists(), "{side} was created");
    }
    // A folder where the database should be.
    let a = env
        .cmd()
        .arg("--db")
        .arg(env.dir.path())
        .arg("init")
        .timeout(TIMEOUT)
        .assert()
        .code(73);
    assert!(stderr(&a).contains("a folder"), "{}", stderr(&a));
}

#[test]
fn trust_a_new_database_in_a_folder_others_can_write_is_refused_and_not_created() {
    let env = Env::new();
    if env.sqlite_only("creating a database file (--db PATH)") {
        return;
    }
    let open = env.dir.path().join("open");
    std::fs::create_dir(&open).expect("mkdir");
    chmod(&open, 0o777);
    let db = open.join("new.db");
    let a = env
        .cmd()
        .arg("--db")
        .arg(&db)
        .arg("init")
        .timeout(TIMEOUT)
        .assert()
        .code(77);
    assert!(stderr(&a).contains("chmod 700"), "{}", stderr(&a));
    assert!(files_in(&open).is_empty(), "nothing created");
}

// ---- 6. a relative HOME ----------------------------------------------------------------------

#[test]
fn trust_a_relative_home_is_not_used_to_find_the_config() {
    let env = Env::new();
    let home = env.dir.path().join("home");
    let conf = home.join(".config").join("pwreset");
    std::fs::create_dir_all(&conf).expect("mkdir");
    // Were it read, this config would fail with 78.
    std::fs::write(conf.join("config.toml"), "nonsense = 1\n").expect("write");
    let out = env
        .bare_std()
        .env("HOME", "home")
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("XDG_DATA_HOME")
        .current_dir(env.dir.path())
        .arg("--db")
        .arg(database_for(env.dir.path()))
        .arg("init")
        .output()
        .expect("run");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(env.database_created());
    if env.sqlite_only("the owner of the database file") {
        return;
    }
    // An owner check of its own: the database was made by this run, not found.
    assert_eq!(
        std::fs::metadata(&env.db).expect("stat").uid(),
        rustix::process::geteuid().as_raw()
    );
}
