//! The walkthroughs in docs/, run as an administrator follows them: each config block marked
//! `<!-- walkthrough: NAME -->` is copied unchanged but for the database (the test's, with no
//! password file) and a `[mail]` section (the outbox), against the framework's table as the page
//! describes it holding a user whose password is in the framework's own format. After `request`
//! and `reset`, the framework's own verifier must accept the new password: Django's
//! `check_password`, PHP's `password_verify` as Laravel calls it, the `bcrypt` gem's check.
//!
//! The verifiers: a python3 with Django (`PWRESET_TEST_PYTHON` names another interpreter, e.g. a
//! venv's, as .ci/run sets it), `php` and `ruby` where installed, Python's `bcrypt` in their
//! place. Where none is present the flow still runs and the check prints one "skipped" line.

use crate::harness::{Backend, Env, database_for, stderr};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const NEW_PASSWORD: &str = "Tr0ub4dor&3-horse-staple";
const WRONG_PASSWORD: &str = "Tr0ub4dor&3-horse-stapler";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The TOML block marked `<!-- walkthrough: NAME -->` in a docs page.
fn config_block(page: &str, name: &str) -> String {
    let text = std::fs::read_to_string(repo().join(page)).expect("read the docs page");
    let marker = format!("<!-- walkthrough: {name} -->");
    let mut lines = text.lines().skip_while(|l| l.trim() != marker).skip(1);
    assert_eq!(
        lines.next().map(str::trim),
        Some("```toml"),
        "{page}: {marker} must come right before a ```toml block"
    );
    let block: Vec<&str> = lines.take_while(|l| !l.starts_with("```")).collect();
    assert!(
        !block.is_empty(),
        "{page}: the block after {marker} is empty"
    );
    block.join("\n") + "\n"
}

/// The walkthrough's config, pointed at the test's database and outbox; nothing else changed.
fn fill_in(block: &str, dir: &Path) -> String {
    let doc: toml::Table = block.parse().expect("the walkthrough's config is TOML");
    assert!(
        doc.contains_key("database"),
        "the walkthrough sets no database"
    );
    assert!(
        !doc.contains_key("mail"),
        "the walkthrough sets [mail]; the test would replace it"
    );
    let mut out = String::new();
    for line in block.lines() {
        let key = line.split('=').next().unwrap_or_default().trim();
        match key {
            "database" => out.push_str(&format!(
                "database = {}\n",
                toml::Value::String(database_for(dir))
            )),
            // The test's database needs no password and has no private CA.
            "database_password_file" | "database_ca_file" => {}
            _ => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out.push_str(&format!(
        "\n[mail]\ntransport = \"file\"\nfrom = \"Accounts <no-reply@example.com>\"\n\n[mail.file]\ndir = {}\n",
        toml::Value::String(dir.join("outbox").display().to_string())
    ));
    out
}

/// A hash the framework's own library made (tests/fixtures/hash_vectors.json), and its password.
fn vector(kind: &str) -> (String, String) {
    let text = std::fs::read_to_string(repo().join("tests/fixtures/hash_vectors.json"))
        .expect("read hash_vectors.json");
    let json: serde_json::Value = serde_json::from_str(&text).expect("hash_vectors.json");
    let v = json["vectors"]
        .as_array()
        .expect("vectors")
        .iter()
        .find(|v| v["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} vector"));
    (
        v["hash"].as_str().expect("hash").to_owned(),
        v["password"].as_str().expect("password").to_owned(),
    )
}

/// What a verifier said about a password and a hash.
#[derive(Debug, PartialEq)]
enum Verdict {
    Accepted,
    Refused,
    Unavailable(String),
}

/// Run `program args`, with `[password, hash]` as JSON on stdin; it prints `yes`, `no` or
/// `unavailable: why`.
fn ask(mut cmd: Command, password: &str, hash: &str) -> Verdict {
    let name = format!("{:?}", cmd.get_program());
    let mut child = match cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(child) => child,
        Err(e) => return Verdict::Unavailable(format!("cannot run {name} ({e})")),
    };
    // A verifier that found its library missing may exit without reading: its answer says so.
    let _ = child
        .stdin
        .take()
        .expect("stdin")
        .write_all(serde_json::json!([password, hash]).to_string().as_bytes());
    let out = child.wait_with_output().expect("the verifier ends");
    let said = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    match said.as_str() {
        "yes" => Verdict::Accepted,
        "no" => Verdict::Refused,
        _ if said.starts_with("unavailable: ") => {
            Verdict::Unavailable(said["unavailable: ".len()..].to_owned())
        }
        _ => panic!(
            "{name} answered {said:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

fn python(script: &str) -> Command {
    let python = std::env::var("PWRESET_TEST_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let mut c = Command::new(python);
    c.arg("-c").arg(script);
    c
}

/// Django's `check_password`, with Django's default settings (PBKDF2 first in PASSWORD_HASHERS).
fn django(password: &str, hash: &str) -> Verdict {
    ask(
        python(
            "import json, sys
try:
    import django
    from django.conf import settings
except ImportError as e:
    print(f'unavailable: python cannot import django ({e}); pip install django bcrypt argon2-cffi')
    sys.exit(0)
settings.configure()
django.setup()
from django.contrib.auth.hashers import check_password
password, hash_ = json.load(sys.stdin)
print('yes' if check_password(password, hash_) else 'no')",
        ),
        password,
        hash,
    )
}

/// Python's `bcrypt`, for a bcrypt hash with `prefix` (the framework's library was not found).
fn python_bcrypt(password: &str, hash: &str, prefix: &str) -> Verdict {
    let verdict = ask(
        python(
            "import json, sys
try:
    import bcrypt
except ImportError as e:
    print(f'unavailable: python cannot import bcrypt ({e})')
    sys.exit(0)
password, hash_ = json.load(sys.stdin)
try:
    print('yes' if bcrypt.checkpw(password.encode(), hash_.encode()) else 'no')
except ValueError:  # not a bcrypt hash at all
    print('no')",
        ),
        password,
        hash,
    );
    match verdict {
        Verdict::Accepted if !hash.starts_with(prefix) => Verdict::Refused,
        v => v,
    }
}

/// Laravel's `Hash::check` with the bcrypt driver: PHP must name the hash bcrypt (only `$2y$`),
/// then `password_verify`.
fn laravel(password: &str, hash: &str) -> Verdict {
    let mut php = Command::new("php");
    php.arg("-r").arg(
        "$in = json_decode(stream_get_contents(STDIN));
         echo (password_get_info($in[1])['algoName'] === 'bcrypt' && password_verify($in[0], $in[1])) ? 'yes' : 'no';",
    );
    match ask(php, password, hash) {
        Verdict::Unavailable(_) => python_bcrypt(password, hash, "$2y$"),
        v => v,
    }
}

/// The `bcrypt` gem's check, as `has_secure_password` calls it.
fn rails(password: &str, hash: &str) -> Verdict {
    let mut ruby = Command::new("ruby");
    ruby.arg("-e").arg(
        "begin; require 'bcrypt'; require 'json'; rescue LoadError => e; puts \"unavailable: #{e}\"; exit 0; end
         password, hash = JSON.parse(STDIN.read)
         puts(BCrypt::Password.new(hash) == password ? 'yes' : 'no')",
    );
    match ask(ruby, password, hash) {
        Verdict::Unavailable(_) => python_bcrypt(password, hash, "$2a$"),
        v => v,
    }
}

/// ASP.NET Core Identity's documented v3 layout, as tests/fixtures/check_hashes.py checks it
/// (there is no .NET here).
fn aspnet(password: &str, hash: &str) -> Verdict {
    let fixtures = repo().join("tests/fixtures");
    ask(
        python(&format!(
            "import json, sys
sys.path.insert(0, {fixtures:?})
from check_hashes import aspnet_verify
password, hash_ = json.load(sys.stdin)
try:
    print('yes' if aspnet_verify(password, hash_) else 'no')
except ValueError:  # not base64: not Identity's layout at all
    print('no')",
            fixtures = fixtures.display().to_string()
        )),
        password,
        hash,
    )
}

/// One walkthrough: its page and marker, the framework's tables (per backend), the user `email`
/// inserted holding a hash the framework made, the query that reads the user's stored password,
/// and the framework's verifier.
struct Walkthrough {
    page: &'static str,
    name: &'static str,
    tables: fn(&Backend) -> Vec<String>,
    email: &'static str,
    /// The address as the administrator types it.
    typed: &'static str,
    insert: fn(&Env, &str, &str) -> String,
    /// The query that reads the user's password column.
    stored: fn(&Backend) -> String,
    verify: fn(&str, &str) -> Verdict,
}

/// Run the walkthrough: the environment, the stored hash after the reset, and whether the
/// framework's verifier checked it.
fn run(w: &Walkthrough) -> (Env, String, bool) {
    let block = config_block(w.page, w.name);
    let env = Env::with_toml(|dir| fill_in(&block, dir));
    for sql in (w.tables)(env.backend()) {
        env.exec(&sql);
    }
    env.exec(&(w.insert)(&env, w.email, &vector_for(w.name).0));
    let a = env.cmd().arg("init").assert();
    assert!(
        a.get_output().status.success(),
        "{}: init: {}",
        w.page,
        stderr(&a)
    );
    let link = env.link(w.typed);
    let a = env
        .cmd()
        .args(["reset", "--password-stdin", &link])
        .write_stdin(format!("{NEW_PASSWORD}\n"))
        .assert();
    assert!(
        a.get_output().status.success(),
        "{}: reset: {}",
        w.page,
        stderr(&a)
    );
    let hash = env
        .text(&(w.stored)(env.backend()))
        .unwrap_or_else(|| panic!("{}: no password stored", w.page));
    match (w.verify)(NEW_PASSWORD, &hash) {
        Verdict::Accepted => {}
        Verdict::Refused => panic!(
            "{}: the framework refuses the password pwreset stored with the walkthrough's config: {hash}",
            w.page
        ),
        Verdict::Unavailable(why) => {
            println!(
                "skipped: {} stored {}..., but the framework's verifier is missing here: {why}",
                w.page,
                hash.chars().take(12).collect::<String>()
            );
            return (env, hash, false);
        }
    }
    assert_eq!(
        (w.verify)(WRONG_PASSWORD, &hash),
        Verdict::Refused,
        "{}: the verifier accepts a wrong password",
        w.page
    );
    (env, hash, true)
}

/// The framework's own hash for the user before the reset.
fn vector_for(name: &str) -> (String, String) {
    vector(match name {
        "django" => "django-pbkdf2-sha256",
        "laravel" => "bcrypt-2y",
        "rails" => "bcrypt-2a",
        "aspnet" => "aspnet-identity-v3",
        other => panic!("no vector for {other}"),
    })
}

#[test]
fn django_walkthrough_config_sets_a_password_django_accepts() {
    let w = Walkthrough {
        page: "docs/django.md",
        name: "django",
        tables: |b| {
            let id = match b {
                Backend::Sqlite => "integer NOT NULL PRIMARY KEY AUTOINCREMENT",
                Backend::Postgres(_) => "integer GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
                Backend::Mysql(_) => "integer NOT NULL AUTO_INCREMENT PRIMARY KEY",
            };
            vec![format!(
                "CREATE TABLE auth_user (id {id}, password varchar(128) NOT NULL,
                   username varchar(150) NOT NULL UNIQUE, email varchar(254) NOT NULL)"
            )]
        },
        email: "alice@example.com",
        typed: "alice@example.com",
        insert: |env, email, hash| {
            format!(
                "INSERT INTO auth_user (password, username, email) VALUES ({}, 'alice', {}), ('!unusable', 'bob', 'bob@example.com')",
                env.quote(hash),
                env.quote(email)
            )
        },
        stored: |_| "SELECT password FROM auth_user WHERE username = 'alice'".to_owned(),
        verify: django,
    };
    let (env, hash, _) = run(&w);
    assert!(hash.starts_with("pbkdf2_sha256$"), "{hash}");
    assert_eq!(
        env.text("SELECT password FROM auth_user WHERE username = 'bob'")
            .as_deref(),
        Some("!unusable")
    );
}

#[test]
fn laravel_walkthrough_config_sets_a_password_laravel_accepts() {
    let w = Walkthrough {
        page: "docs/laravel.md",
        name: "laravel",
        tables: |b| {
            vec![match b {
                Backend::Mysql(_) => "CREATE TABLE users (
                    id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
                    name VARCHAR(255) NOT NULL, email VARCHAR(255) NOT NULL UNIQUE,
                    email_verified_at TIMESTAMP NULL, password VARCHAR(255) NOT NULL,
                    remember_token VARCHAR(100) NULL,
                    created_at TIMESTAMP NULL, updated_at TIMESTAMP NULL)
                    CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
                    .to_owned(),
                Backend::Postgres(_) => "CREATE TABLE users (id bigserial PRIMARY KEY,
                    name varchar(255) NOT NULL, email varchar(255) NOT NULL UNIQUE,
                    email_verified_at timestamp(0) NULL, password varchar(255) NOT NULL,
                    remember_token varchar(100) NULL,
                    created_at timestamp(0) NULL, updated_at timestamp(0) NULL)"
                    .to_owned(),
                Backend::Sqlite => {
                    "CREATE TABLE users (id integer PRIMARY KEY AUTOINCREMENT NOT NULL,
                    name varchar NOT NULL, email varchar NOT NULL UNIQUE,
                    email_verified_at datetime, password varchar NOT NULL,
                    remember_token varchar, created_at datetime, updated_at datetime)"
                        .to_owned()
                }
            }]
        },
        email: "Ada@Example.com",
        typed: "ada@example.com",
        insert: |env, email, hash| {
            format!(
                "INSERT INTO users (name, email, password) VALUES ('Ada', {}, {})",
                env.quote(email),
                env.quote(hash)
            )
        },
        stored: |_| "SELECT password FROM users WHERE name = 'Ada'".to_owned(),
        verify: laravel,
    };
    let (_, hash, _) = run(&w);
    assert!(hash.starts_with("$2y$"), "{hash}");
}

#[test]
fn rails_walkthrough_config_sets_a_password_rails_accepts() {
    let w = Walkthrough {
        page: "docs/rails.md",
        name: "rails",
        tables: |b| {
            let id = match b {
                Backend::Sqlite => "integer PRIMARY KEY AUTOINCREMENT NOT NULL",
                Backend::Postgres(_) => "bigserial PRIMARY KEY",
                Backend::Mysql(_) => "bigint NOT NULL AUTO_INCREMENT PRIMARY KEY",
            };
            vec![
                format!(
                    "CREATE TABLE users (id {id}, email_address varchar(255) NOT NULL UNIQUE,
                       password_digest varchar(255) NOT NULL)"
                ),
                format!(
                    "CREATE TABLE sessions (id {id}, user_id bigint NOT NULL, user_agent varchar(255))"
                ),
            ]
        },
        email: "carol@example.com",
        typed: "carol@example.com",
        insert: |env, email, hash| {
            format!(
                "INSERT INTO users (email_address, password_digest) VALUES ({0}, {1}), ('dave@example.com', {1});
                 INSERT INTO sessions (user_id, user_agent) VALUES (1, 'carol'), (2, 'dave')",
                env.quote(email),
                env.quote(hash)
            )
        },
        stored: |_| "SELECT password_digest FROM users WHERE id = 1".to_owned(),
        verify: rails,
    };
    let (env, hash, _) = run(&w);
    assert!(hash.starts_with("$2a$"), "{hash}");
    // after_reset logged Carol out everywhere, and only her.
    assert_eq!(
        env.text("SELECT user_agent FROM sessions ORDER BY id")
            .as_deref(),
        Some("dave")
    );
    assert_eq!(env.i64("SELECT COUNT(*) FROM sessions"), 1);
}

#[test]
fn aspnet_walkthrough_config_sets_a_password_identity_accepts() {
    let w = Walkthrough {
        page: "docs/aspnet.md",
        name: "aspnet",
        tables: |b| {
            vec![match b {
                Backend::Mysql(_) => {
                    "CREATE TABLE `AspNetUsers` (`Id` varchar(255) NOT NULL PRIMARY KEY,
                    `Email` varchar(256) NULL, `NormalizedEmail` varchar(256) NULL,
                    `PasswordHash` longtext NULL, `SecurityStamp` longtext NULL)"
                        .to_owned()
                }
                _ => "CREATE TABLE \"AspNetUsers\" (\"Id\" text NOT NULL PRIMARY KEY,
                    \"Email\" varchar(256) NULL, \"NormalizedEmail\" varchar(256) NULL,
                    \"PasswordHash\" text NULL, \"SecurityStamp\" text NULL)"
                    .to_owned(),
            }]
        },
        email: "erin@example.com",
        typed: "erin@example.com",
        insert: |env, email, hash| {
            let q = |s: &str| match env.backend() {
                Backend::Mysql(_) => format!("`{s}`"),
                _ => format!("\"{s}\""),
            };
            format!(
                "INSERT INTO {t} ({id}, {e}, {n}, {p}) VALUES ('0f8fad5b-d9cb-469f-a165-70867728950e', {}, 'ERIN@EXAMPLE.COM', {})",
                env.quote(email),
                env.quote(hash),
                t = q("AspNetUsers"),
                id = q("Id"),
                e = q("Email"),
                n = q("NormalizedEmail"),
                p = q("PasswordHash"),
            )
        },
        stored: |b| match b {
            Backend::Mysql(_) => "SELECT `PasswordHash` FROM `AspNetUsers`".to_owned(),
            _ => "SELECT \"PasswordHash\" FROM \"AspNetUsers\"".to_owned(),
        },
        verify: aspnet,
    };
    let (_, hash, _) = run(&w);
    assert!(hash.starts_with("AQAAAAIAAYagAAAAE"), "{hash}");
}
