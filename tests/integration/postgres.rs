//! What only the PostgreSQL backend has: the URL, password and TLS rules, key types, the grant
//! check, `schema`. Each test that needs a server makes its own database on the server named
//! by PWRESET_TEST_POSTGRES (e.g. postgres://postgres@127.0.0.1:5432/test?sslmode=disable),
//! and drops it at the end; with the variable unset it prints one line and passes.

use crate::harness::{Env, stderr};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// The admin URL, or None after saying the test was skipped.
fn admin_url(test: &str) -> Option<String> {
    match std::env::var("PWRESET_TEST_POSTGRES") {
        Ok(u) if !u.is_empty() => Some(u),
        _ => {
            println!("skipped {test}: PWRESET_TEST_POSTGRES is not set");
            None
        }
    }
}

/// `url` with its database replaced by `name`.
fn with_db(url: &str, name: &str) -> String {
    let (head, query) = url
        .split_once('?')
        .map_or((url, None), |(h, q)| (h, Some(q)));
    let base = head.rsplit_once('/').map_or(head, |(b, _)| b);
    match query {
        Some(q) => format!("{base}/{name}?{q}"),
        None => format!("{base}/{name}"),
    }
}

fn psql(url: &str, sql: &str) -> String {
    let out = std::process::Command::new("psql")
        .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
        .arg(url)
        .arg("-c")
        .arg(sql)
        .output()
        .expect("run psql");
    assert!(
        out.status.success(),
        "{sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn random_suffix() -> String {
    let dir = tempfile::Builder::new()
        .prefix("pg")
        .tempdir()
        .expect("tempdir");
    dir.path()
        .file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect()
}

/// A database made for one test, dropped with it (and roles the test made, after it).
struct Db {
    admin: String,
    name: String,
    url: String,
    roles: Vec<String>,
}

impl Db {
    fn new(admin: &str) -> Db {
        let name = format!("pwreset_t_{}", random_suffix());
        psql(admin, &format!("CREATE DATABASE {name}"));
        Db {
            admin: admin.to_owned(),
            url: with_db(admin, &name),
            name,
            roles: Vec::new(),
        }
    }

    fn sql(&self, sql: &str) -> String {
        psql(&self.url, sql)
    }

    /// The database URL as another user.
    fn url_as(&self, user: &str) -> String {
        let (scheme, rest) = self.url.split_once("://").expect("a URL");
        let rest = rest.split_once('@').map_or(rest, |(_, r)| r);
        format!("{scheme}://{user}@{rest}")
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        let _ = std::process::Command::new("psql")
            .args(["-X", "-q", "-c"])
            .arg(format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .arg(&self.admin)
            .output();
        for role in &self.roles {
            let _ = std::process::Command::new("psql")
                .args(["-X", "-q", "-c"])
                .arg(format!("DROP ROLE IF EXISTS {role}"))
                .arg(&self.admin)
                .output();
        }
    }
}

/// A config for `database` with `extra` top-level keys and `[users]` lines.
fn config(dir: &Path, database: &str, extra: &str, users: &str) -> String {
    format!(
        r#"database = "{database}"
{extra}
base_url = "https://accounts.example.com/reset_password"
request_throttle = "60s"
busy_timeout = "2s"

[users]
{users}

[mail]
transport = "file"
from = "Accounts <no-reply@example.com>"

[mail.file]
dir = "{outbox}"

[password.argon2]
memory_kib = 8192
iterations = 1
parallelism = 1
"#,
        outbox = dir.join("outbox").display(),
    )
}

fn env_for(database: &str, extra: &str, users: &str) -> Env {
    // An application's table whose passwords are not set yet needs its format named: these
    // tests check other things, so argon2id, unless the test names one.
    let users = if users.is_empty() || users.contains("password_format") {
        users.to_owned()
    } else {
        format!("{users}\npassword_format = \"argon2id\"")
    };
    let (database, extra) = (database.to_owned(), extra.to_owned());
    Env::with_toml(move |dir| config(dir, &database, &extra, &users))
}

fn code(a: &assert_cmd::assert::Assert) -> i32 {
    a.get_output().status.code().unwrap_or(-1)
}

/// Reset the password through `link`, and return what the table holds afterwards.
fn reset_with(env: &Env, link: &str) {
    env.cmd()
        .args(["reset", "--password-stdin", link])
        .write_stdin("Tr0ub4dor&3-horse-staple\n")
        .assert()
        .success();
}

#[test]
fn postgres_password_in_the_url_is_78_and_not_echoed() {
    let env = env_for("postgres://app:hunter2secret@db.example.com/app", "", "");
    let a = env.cmd().arg("init").assert();
    assert_eq!(code(&a), 78);
    let err = stderr(&a);
    assert!(err.contains("database_password_file"), "{err}");
    assert!(!err.contains("hunter2secret"), "{err}");
}

#[test]
fn postgres_password_file_readable_by_others_is_77() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pw = dir.path().join("db-password");
    std::fs::write(&pw, "sekret\n").expect("write");
    std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let env = env_for(
        "postgres://app@127.0.0.1:1/app?sslmode=disable",
        &format!("database_password_file = \"{}\"", pw.display()),
        "",
    );
    let a = env.cmd().arg("init").assert();
    assert_eq!(code(&a), 77, "{}", stderr(&a));
    assert!(!stderr(&a).contains("sekret"));
}

#[test]
fn postgres_server_down_is_75_naming_the_server() {
    // A port that was free a moment ago: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let env = env_for(
        &format!("postgres://app@127.0.0.1:{port}/app?sslmode=disable"),
        "",
        "",
    );
    let a = env.cmd().arg("init").assert();
    assert_eq!(code(&a), 75, "{}", stderr(&a));
    assert!(
        stderr(&a).contains(&format!("127.0.0.1:{port}")),
        "{}",
        stderr(&a)
    );
}

#[test]
fn postgres_unknown_database_is_78() {
    let Some(admin) = admin_url("postgres_unknown_database_is_78") else {
        return;
    };
    let env = env_for(&with_db(&admin, "pwreset_no_such_database"), "", "");
    let a = env.cmd().arg("init").assert();
    assert_eq!(code(&a), 78, "{}", stderr(&a));
    assert!(
        stderr(&a).contains("pwreset_no_such_database"),
        "{}",
        stderr(&a)
    );
}

#[test]
fn postgres_django_auth_user_takes_a_reset_end_to_end() {
    let Some(admin) = admin_url("postgres_django_auth_user_takes_a_reset_end_to_end") else {
        return;
    };
    let db = Db::new(&admin);
    db.sql(
        "CREATE TABLE auth_user (id serial PRIMARY KEY, password varchar(128) NOT NULL,
            username varchar(150) UNIQUE NOT NULL, email varchar(254) NOT NULL);
         CREATE INDEX auth_user_email ON auth_user (email);
         INSERT INTO auth_user (password, username, email) VALUES
            ('!unusable', 'alice', 'alice@example.com'), ('!unusable', 'bob', 'bob@example.com')",
    );
    let env = env_for(
        &db.url,
        "",
        "table = \"auth_user\"\nid_column = \"id\"\nemail_column = \"email\"\npassword_column = \"password\"\npassword_format = \"django-pbkdf2-sha256\"",
    );
    env.init();
    assert_eq!(
        db.sql("SELECT data_type FROM information_schema.columns WHERE table_name = 'pwreset_tokens' AND column_name = 'user_id'"),
        "bigint"
    );
    // The folded form finds a mixed-case address through the index, then the scan.
    let link = env.link("Alice@Example.com");
    env.cmd().args(["verify", &link]).assert().success();
    reset_with(&env, &link);
    let stored = db.sql("SELECT password FROM auth_user WHERE username = 'alice'");
    assert!(stored.starts_with("pbkdf2_sha256$"), "{stored}");
    assert_eq!(
        db.sql("SELECT password FROM auth_user WHERE username = 'bob'"),
        "!unusable"
    );
    let a = env.cmd().args(["verify", &link]).assert();
    assert_eq!(code(&a), 1);
    // A forced request still starts the throttle for the next unforced one.
    let a = env
        .cmd()
        .args(["request", "--no-email", "alice@example.com"])
        .assert();
    assert_eq!(code(&a), 75, "{}", stderr(&a));
}

#[test]
fn postgres_uuid_and_text_keys_work_and_other_key_types_are_78() {
    let Some(admin) = admin_url("postgres_uuid_and_text_keys_work") else {
        return;
    };
    for (ty, default, pg_type) in [
        ("uuid", "gen_random_uuid()", "uuid"),
        ("varchar(40)", "md5(random()::text)", "text"),
    ] {
        let db = Db::new(&admin);
        db.sql(&format!(
            "CREATE TABLE people (key {ty} PRIMARY KEY DEFAULT {default}, mail text UNIQUE, pw text);
             INSERT INTO people (mail, pw) VALUES ('carol@example.com', 'x'), ('dave@example.com', 'y')"
        ));
        let env = env_for(
            &db.url,
            "",
            "table = \"people\"\nid_column = \"key\"\nemail_column = \"mail\"\npassword_column = \"pw\"",
        );
        env.init();
        assert_eq!(
            db.sql("SELECT data_type FROM information_schema.columns WHERE table_name = 'pwreset_throttle' AND column_name = 'user_id'"),
            pg_type
        );
        let a = env
            .cmd()
            .args(["request", "--no-email", "--all"])
            .assert()
            .success();
        let links = crate::harness::stdout(&a);
        assert_eq!(links.lines().count(), 2, "{links}");
        let link = env.link("carol@example.com");
        env.cmd().args(["verify", &link]).assert().success();
        reset_with(&env, &link);
        assert!(
            db.sql("SELECT pw FROM people WHERE mail = 'carol@example.com'")
                .starts_with("$argon2id$")
        );
        assert_eq!(
            db.sql("SELECT pw FROM people WHERE mail = 'dave@example.com'"),
            "y"
        );
        env.cmd()
            .args(["audit", "--user", "carol@example.com"])
            .assert()
            .success()
            .stdout(predicates::str::contains("reset"));
    }
    let db = Db::new(&admin);
    db.sql("CREATE TABLE people (key timestamptz PRIMARY KEY, mail text, pw text)");
    let env = env_for(
        &db.url,
        "",
        "table = \"people\"\nid_column = \"key\"\nemail_column = \"mail\"\npassword_column = \"pw\"",
    );
    let a = env.cmd().arg("init").assert();
    assert_eq!(code(&a), 78, "{}", stderr(&a));
    assert!(
        stderr(&a).contains("timestamp with time zone"),
        "{}",
        stderr(&a)
    );
    assert_eq!(
        db.sql("SELECT count(*) FROM pg_tables WHERE tablename LIKE 'pwreset%'"),
        "0",
        "nothing is created for a mapping init refuses"
    );
}

#[test]
fn postgres_init_names_each_missing_grant() {
    let Some(admin) = admin_url("postgres_init_names_each_missing_grant") else {
        return;
    };
    let mut db = Db::new(&admin);
    let role = format!("pwreset_r_{}", random_suffix());
    psql(&admin, &format!("CREATE ROLE {role} LOGIN"));
    db.roles.push(role.clone());
    db.sql(
        "CREATE TABLE auth_user (id serial PRIMARY KEY, email text NOT NULL, password text NOT NULL,
            is_staff boolean NOT NULL DEFAULT false);
         INSERT INTO auth_user (email, password) VALUES ('erin@example.com', '!')",
    );
    let users = "table = \"auth_user\"\nid_column = \"id\"\nemail_column = \"email\"\npassword_column = \"password\"";
    // The owner creates pwreset's tables; the restricted role then runs everything else.
    env_for(&db.url, "", users).init();
    db.sql(&format!(
        "GRANT USAGE ON SCHEMA public TO {role}; GRANT SELECT (id, email, password) ON auth_user TO {role}"
    ));
    let env = env_for(&db.url_as(&role), "", users);
    let a = env.cmd().arg("init").assert();
    assert_eq!(code(&a), 77, "{}", stderr(&a));
    let err = stderr(&a);
    assert!(
        err.contains(&format!(
            "GRANT UPDATE (\"password\") ON \"public\".\"auth_user\" TO \"{role}\""
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "GRANT SELECT ON \"public\".pwreset_tokens TO \"{role}\""
        )),
        "{err}"
    );
    assert!(!err.contains("GRANT SELECT (\"email\")"), "{err}");
    db.sql(&format!(
        "GRANT UPDATE (password) ON auth_user TO {role};
         GRANT SELECT, INSERT, UPDATE, DELETE ON pwreset_tokens, pwreset_audit, pwreset_throttle, pwreset_runs, pwreset_limits, pwreset_secrets, pwreset_schema TO {role}"
    ));
    env.init();
    let link = env.link("erin@example.com");
    reset_with(&env, &link);
    assert!(
        db.sql("SELECT password FROM auth_user")
            .starts_with("$argon2id$")
    );
}

/// A mapped column the role may not read exists all the same: 77 with the column's GRANT, not
/// 78 "no such column". And a superuser role is warned about with the statements that make
/// pwreset a role of its own.
#[test]
fn postgres_a_column_the_role_cannot_read_is_77_with_its_grant() {
    let Some(admin) = admin_url("postgres_a_column_the_role_cannot_read_is_77_with_its_grant")
    else {
        return;
    };
    let mut db = Db::new(&admin);
    let role = format!("pwreset_r_{}", random_suffix());
    psql(&admin, &format!("CREATE ROLE {role} LOGIN"));
    db.roles.push(role.clone());
    db.sql(
        "CREATE TABLE accounts_user (id serial PRIMARY KEY, email text NOT NULL, password text NOT NULL,
            first_name text NOT NULL DEFAULT '');
         INSERT INTO accounts_user (email, password) VALUES ('erin@example.com', '!')",
    );
    let users = "table = \"accounts_user\"\nid_column = \"id\"\nemail_column = \"email\"\npassword_column = \"password\"\nname_column = \"first_name\"\npassword_format = \"django-pbkdf2-sha256\"";
    let owner = env_for(&db.url, "", users);
    let a = owner.cmd().arg("init").assert().success();
    let err = stderr(&a);
    if err.contains("is a superuser") {
        assert!(
            err.contains("GRANT SELECT (\"id\", \"email\", \"password\", \"first_name\"), UPDATE (\"password\") ON \"public\".\"accounts_user\" TO \"pwreset\";")
                && err.contains("CREATE ROLE \"pwreset\" LOGIN")
                && err.contains("pwreset_tokens"),
            "{err}"
        );
        let a = owner.cmd().arg("doctor").assert();
        assert!(
            crate::harness::stdout(&a).contains("GRANT USAGE ON SCHEMA \"public\" TO \"pwreset\";"),
            "{}",
            crate::harness::stdout(&a)
        );
    }
    db.sql(&format!(
        "GRANT USAGE ON SCHEMA public TO {role};
         GRANT SELECT (id, email, password), UPDATE (password) ON accounts_user TO {role};
         GRANT SELECT, INSERT, UPDATE, DELETE ON pwreset_tokens, pwreset_audit, pwreset_throttle, pwreset_runs, pwreset_limits, pwreset_secrets, pwreset_schema TO {role}"
    ));
    let env = env_for(&db.url_as(&role), "", users);
    let a = env.cmd().arg("init").assert();
    assert_eq!(code(&a), 77, "{}", stderr(&a));
    let err = stderr(&a);
    assert!(
        err.contains(&format!(
            "GRANT SELECT (\"first_name\") ON \"public\".\"accounts_user\" TO \"{role}\";"
        )),
        "{err}"
    );
    assert!(!err.contains("has no column"), "{err}");
    db.sql(&format!(
        "GRANT SELECT (first_name) ON accounts_user TO {role}"
    ));
    env.init();
}

#[test]
fn postgres_schema_setting_puts_every_table_there() {
    let Some(admin) = admin_url("postgres_schema_setting_puts_every_table_there") else {
        return;
    };
    let db = Db::new(&admin);
    let env = env_for(&db.url, "schema = \"accounts\"", "");
    env.init();
    assert_eq!(
        db.sql("SELECT string_agg(tablename, ',' ORDER BY tablename) FROM pg_tables WHERE schemaname = 'accounts'"),
        "pwreset_audit,pwreset_limits,pwreset_runs,pwreset_schema,pwreset_secrets,pwreset_throttle,pwreset_tokens,users"
    );
    assert_eq!(
        db.sql("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"),
        "0"
    );
    env.add_user("frank@example.com");
    let link = env.link("frank@example.com");
    reset_with(&env, &link);
    env.cmd().args(["purge-expired"]).assert().success();
    assert_eq!(db.sql("SELECT count(*) FROM accounts.pwreset_tokens"), "0");
}

/// A throwaway cluster on a spare loopback port, TLS only, password auth, with a certificate
/// from a CA made here.
struct Cluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    ca_pem: String,
}

impl Cluster {
    fn start() -> Option<Cluster> {
        let bin = PathBuf::from("/usr/lib/postgresql/15/bin");
        if !bin.join("initdb").exists() {
            println!("skipped: initdb is not installed (/usr/lib/postgresql/15/bin)");
            return None;
        }
        let dir = tempfile::Builder::new()
            .prefix("pwreset-pg-")
            .tempdir()
            .expect("tempdir");
        let data = dir.path().join("data");
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("ca params");
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "pwreset test database CA");
        ca_params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
        ];
        let ca_key = rcgen::KeyPair::generate().expect("ca key");
        let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).expect("ca cert");
        let leaf_params =
            rcgen::CertificateParams::new(vec!["localhost".to_owned()]).expect("leaf params");
        let leaf_key = rcgen::KeyPair::generate().expect("leaf key");
        let leaf = leaf_params.signed_by(&leaf_key, &ca).expect("leaf cert");

        // initdb refuses to run as root: the cluster belongs to the postgres user then.
        let as_root = nix::unistd::Uid::effective().is_root();
        let run = |args: &[&str]| {
            let mut c = if as_root {
                let mut c = std::process::Command::new("runuser");
                c.args(["-u", "postgres", "--"]);
                c
            } else {
                std::process::Command::new(args[0])
            };
            if as_root {
                c.arg(args[0]);
            }
            c.args(&args[1..]);
            let out = c.output().expect("run a postgres tool");
            assert!(
                out.status.success(),
                "{args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        if as_root {
            let user = nix::unistd::User::from_name("postgres")
                .ok()
                .flatten()
                .expect("a postgres user");
            std::os::unix::fs::chown(dir.path(), Some(user.uid.as_raw()), Some(user.gid.as_raw()))
                .expect("chown");
        }
        let initdb = bin.join("initdb");
        let data_s = data.display().to_string();
        run(&[
            initdb.to_str().expect("utf-8 path"),
            "-D",
            &data_s,
            "-U",
            "postgres",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
        ]);
        let files = [
            ("server.crt", leaf.pem(), 0o644),
            ("server.key", leaf_key.serialize_pem(), 0o600),
        ];
        for (name, text, mode) in files {
            let p = data.join(name);
            std::fs::write(&p, text).expect("write cert");
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).expect("chmod");
            if as_root {
                let user = nix::unistd::User::from_name("postgres")
                    .ok()
                    .flatten()
                    .expect("a postgres user");
                std::os::unix::fs::chown(&p, Some(user.uid.as_raw()), Some(user.gid.as_raw()))
                    .expect("chown");
            }
        }
        std::fs::write(
            data.join("pg_hba.conf"),
            "local all all trust\nhostssl all all 127.0.0.1/32 scram-sha-256\n",
        )
        .expect("pg_hba");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let opts = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c ssl=on",
            dir.path().display()
        );
        run(&[
            bin.join("pg_ctl").to_str().expect("utf-8 path"),
            "-D",
            &data_s,
            "-o",
            &opts,
            "-l",
            &dir.path().join("log").display().to_string(),
            "-w",
            "start",
        ]);
        let cluster = Cluster {
            dir,
            bin,
            port,
            ca_pem: ca.pem(),
        };
        cluster.local_sql("CREATE ROLE pwreset LOGIN PASSWORD 'correct-db-password'");
        cluster.local_sql("CREATE DATABASE app OWNER pwreset");
        Some(cluster)
    }

    fn local_sql(&self, sql: &str) {
        let out = std::process::Command::new("psql")
            .args(["-X", "-q", "-h"])
            .arg(self.dir.path())
            .args([
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-d",
                "postgres",
                "-c",
                sql,
            ])
            .output()
            .expect("psql");
        assert!(
            out.status.success(),
            "{sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let data = self.dir.path().join("data");
        let pg_ctl = self.bin.join("pg_ctl");
        let mut c = if nix::unistd::Uid::effective().is_root() {
            let mut c = std::process::Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(pg_ctl);
            c
        } else {
            std::process::Command::new(pg_ctl)
        };
        let _ = c
            .arg("-D")
            .arg(data)
            .args(["-m", "immediate", "stop"])
            .output();
    }
}

#[test]
fn postgres_tls_is_verified_and_passwords_are_checked() {
    let Some(cluster) = Cluster::start() else {
        return;
    };
    let secrets = tempfile::tempdir().expect("tempdir");
    let ca = secrets.path().join("db-ca.pem");
    std::fs::write(&ca, &cluster.ca_pem).expect("write ca");
    let pw = secrets.path().join("db-password");
    std::fs::write(&pw, "correct-db-password\n").expect("write password");
    std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let url = format!("postgres://pwreset@localhost:{}/app", cluster.port);
    let keys = |pw: &Path, ca: Option<&Path>| {
        let mut k = format!("database_password_file = \"{}\"", pw.display());
        if let Some(ca) = ca {
            k.push_str(&format!("\ndatabase_ca_file = \"{}\"", ca.display()));
        }
        k
    };

    // With the CA: a whole reset over verified TLS.
    let env = env_for(&url, &keys(&pw, Some(&ca)), "");
    env.init();
    env.add_user("grace@example.com");
    let link = env.link("grace@example.com");
    reset_with(&env, &link);

    // Without it the certificate is not trusted: 69, and the message says what to set.
    let env = env_for(&url, &keys(&pw, None), "");
    let a = env.cmd().arg("init").assert();
    assert_eq!(code(&a), 69, "{}", stderr(&a));
    assert!(stderr(&a).contains("database_ca_file"), "{}", stderr(&a));
    // The server is on this machine: the simpler fix is named too.
    assert!(stderr(&a).contains("?sslmode=disable"), "{}", stderr(&a));

    // A certificate for another name: 69 too.
    let env = env_for(
        &format!("postgres://pwreset@127.0.0.1:{}/app", cluster.port),
        &keys(&pw, Some(&ca)),
        "",
    );
    let a = env.cmd().arg("init").assert();
    assert_eq!(code(&a), 69, "{}", stderr(&a));

    // A wrong password: 77, and never echoed.
    let wrong = secrets.path().join("wrong-password");
    std::fs::write(&wrong, "not-the-db-password\n").expect("write password");
    std::fs::set_permissions(&wrong, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let env = env_for(&url, &keys(&wrong, Some(&ca)), "");
    let a = env.cmd().arg("verify").arg(&link).assert();
    assert_eq!(code(&a), 77, "{}", stderr(&a));
    assert!(!stderr(&a).contains("not-the-db-password"));

    // The environment variable works as well as the file.
    let env = env_for(
        &url,
        &format!("database_ca_file = \"{}\"", ca.display()),
        "",
    );
    let a = env
        .cmd()
        .env("PWRESET_DB_PASSWORD", "correct-db-password")
        .arg("verify")
        .arg(&link)
        .assert();
    assert_eq!(code(&a), 1, "{}", stderr(&a));
}

#[test]
fn postgres_init_takes_a_simple_view_and_refuses_other_views_and_null_ids() {
    let Some(admin) = admin_url("postgres_init_takes_a_simple_view") else {
        return;
    };
    let mapping = "table = \"accounts\"\nid_column = \"id\"\nemail_column = \"mail\"\npassword_column = \"pw\"";
    // A view over one table: PostgreSQL updates it by itself, so a reset writes through it.
    let db = Db::new(&admin);
    db.sql(
        "CREATE TABLE real_accounts (id bigint PRIMARY KEY, mail text NOT NULL, pw text, active bool NOT NULL DEFAULT true);
         INSERT INTO real_accounts (id, mail) VALUES (1, 'carol@example.com');
         CREATE VIEW accounts AS SELECT id, mail, pw FROM real_accounts WHERE active",
    );
    let env = env_for(&db.url, "", mapping);
    env.init();
    let link = env.link("carol@example.com");
    reset_with(&env, &link);
    assert!(
        db.sql("SELECT pw FROM real_accounts WHERE id = 1")
            .starts_with("$argon2id$")
    );
    for (sql, why) in [
        (
            "CREATE TABLE real_accounts (id bigint PRIMARY KEY, mail text);
             CREATE TABLE secrets (id bigint PRIMARY KEY, pw text);
             CREATE VIEW accounts AS SELECT a.id, a.mail, s.pw FROM real_accounts a JOIN secrets s USING (id)",
            "view",
        ),
        (
            "CREATE TABLE accounts (id integer, mail text, pw text);
             INSERT INTO accounts VALUES (NULL, 'a@example.com', NULL), (2, 'b@example.com', NULL)",
            "1 row(s) have no id",
        ),
    ] {
        let db = Db::new(&admin);
        db.sql(sql);
        let env = env_for(&db.url, "", mapping);
        let a = env.cmd().arg("init").assert();
        assert_eq!(code(&a), 78, "{}", stderr(&a));
        assert!(stderr(&a).contains(why), "{why}: {}", stderr(&a));
    }
}

#[test]
fn postgres_after_reset_binds_a_uuid_key_and_the_address() {
    let Some(admin) = admin_url("postgres_after_reset_binds_a_uuid_key") else {
        return;
    };
    let db = Db::new(&admin);
    db.sql(
        "CREATE TABLE people (key uuid PRIMARY KEY DEFAULT gen_random_uuid(), mail text UNIQUE, pw text, nick text);
         CREATE TABLE sessions (id serial PRIMARY KEY, person uuid NOT NULL, note text);
         INSERT INTO people (mail, nick) VALUES ('carol@example.com', 'Caz'), ('dave@example.com', NULL);
         INSERT INTO sessions (person, note) SELECT key, mail FROM people",
    );
    let env = env_for(
        &db.url,
        "",
        "table = \"people\"\nid_column = \"key\"\nemail_column = \"mail\"\npassword_column = \"pw\"\nname_column = \"nick\"\nafter_reset = [\"DELETE FROM sessions WHERE person = :user_id AND note = :email -- not :this\", \"UPDATE sessions SET note = ':email' WHERE person <> :user_id\"]",
    );
    env.init();
    env.cmd()
        .args(["request", "carol@example.com"])
        .assert()
        .success();
    let mail = env.messages().pop().expect("a message");
    assert!(crate::harness::decode(&mail).contains("Caz"), "{mail}");
    let link = env.link("carol@example.com");
    reset_with(&env, &link);
    assert_eq!(
        db.sql("SELECT string_agg(note, ',') FROM sessions"),
        ":email"
    );
}

/// A large purge of a mostly dead table goes by runs of pages (no index scan at all), one of
/// few dead tokens follows the dead_at index; both count each kind exactly.
#[test]
fn postgres_purge_walks_pages_when_most_is_dead_and_the_index_when_little_is() {
    let Some(admin) = admin_url("postgres_purge_walks_pages_when_most_is_dead") else {
        return;
    };
    let db = Db::new(&admin);
    let env = env_for(&db.url, "", "");
    env.init();
    env.add_user("alice@example.com");
    let alice = db.sql("SELECT id FROM users");
    let now = crate::harness::unix_now();
    // 3,000 tokens: i % 10 = 0 used, i % 10 = 1 revoked, i % 10 = 2 live, the rest expired.
    let fill = |dead_before: i64| {
        db.sql(&format!(
            "TRUNCATE pwreset_tokens;
             INSERT INTO pwreset_tokens (digest, user_id, binding, created_at, expires_at,
                                         used_at, revoked_at, dead_at)
             SELECT sha256(i::text::bytea), {alice}, '\\x00', {t}, {t},
                    CASE WHEN i % 10 = 0 THEN {t} END, CASE WHEN i % 10 = 1 THEN {t} END,
                    CASE WHEN i % 10 = 2 THEN {live} ELSE {t} END
               FROM generate_series(1, 3000) i;
             ANALYZE pwreset_tokens",
            t = dead_before,
            live = now + 3600,
        ));
    };
    // A backend writes its statistics before it leaves pg_stat_activity: once pwreset's
    // session is gone, its index scans are counted.
    let index_scans = || -> i64 {
        for _ in 0..1000 {
            let others = db.sql(
                "SELECT count(*) FROM pg_stat_activity
                  WHERE datname = current_database() AND pid <> pg_backend_pid()",
            );
            if others == "0" {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        db.sql(
            "SELECT idx_scan FROM pg_stat_user_indexes WHERE indexrelname = 'pwreset_tokens_dead'",
        )
        .parse()
        .expect("a number")
    };
    let purge = |older_than: &str| -> serde_json::Value {
        let a = env
            .cmd()
            .args(["purge-expired", "--batch-size", "100", "--json"])
            .args(["--older-than", older_than])
            .assert()
            .success();
        serde_json::from_str(crate::harness::stdout(&a).trim()).expect("json")
    };

    fill(now - 7200);
    let before = index_scans();
    assert_eq!(
        purge("0s"),
        serde_json::json!({"purged": 2700, "expired": 2100, "used": 300, "revoked": 300, "dry_run": false})
    );
    assert_eq!(
        index_scans(),
        before,
        "the page walk used the dead_at index"
    );
    assert_eq!(db.sql("SELECT count(*) FROM pwreset_tokens"), "300");
    assert_eq!(
        db.sql(&format!(
            "SELECT count(*) FROM pwreset_tokens WHERE dead_at > {now}"
        )),
        "300",
        "only the live tokens are left"
    );

    // The first 90 dead tokens (i = 1..100 without the ten live ones) died two hours ago,
    // the rest ten minutes ago: --older-than 1h takes those 90.
    fill(now - 600);
    db.sql(&format!(
        "UPDATE pwreset_tokens SET dead_at = {old} WHERE id IN
           (SELECT id FROM pwreset_tokens WHERE dead_at < {now} ORDER BY id LIMIT 90);
         ANALYZE pwreset_tokens",
        old = now - 7200
    ));
    let before = index_scans();
    assert_eq!(
        purge("1h"),
        serde_json::json!({"purged": 90, "expired": 70, "used": 10, "revoked": 10, "dry_run": false})
    );
    assert!(
        index_scans() > before,
        "a purge of few tokens follows the index"
    );
    assert_eq!(db.sql("SELECT count(*) FROM pwreset_tokens"), "2910");
}

/// `request --all` with printed links stores its chunks over two more connections at once:
/// the links still come out in the users' order, one per user; and when one chunk fails,
/// every chunk that was stored still gets its links printed, and the failed one none.
#[test]
fn postgres_parallel_request_all_prints_in_order_and_every_stored_link() {
    let Some(admin) = admin_url("postgres_parallel_request_all") else {
        return;
    };
    let users = 12_001;
    let fill = |db: &Db| {
        db.sql(&format!(
            "INSERT INTO users (email, email_key, created_at)
             SELECT 'user' || i || '@example.com', 'user' || i || '@example.com', 0
               FROM generate_series(1, {users}) i"
        ));
    };
    let request_all = |env: &Env| {
        env.cmd()
            .args(["request", "--all", "--no-email", "--json"])
            .assert()
    };

    let db = Db::new(&admin);
    let env = env_for(&db.url, "", "");
    env.init();
    fill(&db);
    let a = request_all(&env).success();
    let lines: Vec<serde_json::Value> = stdout_of(&a)
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    assert_eq!(lines.len(), users);
    for (i, line) in lines.iter().enumerate() {
        assert_eq!(
            line["email"],
            format!("user{}@example.com", i + 1),
            "line {i}"
        );
        assert_eq!(line["status"], "created", "line {i}");
    }
    assert_eq!(
        db.sql("SELECT count(*), count(DISTINCT user_id) FROM pwreset_tokens"),
        format!("{users}|{users}")
    );

    // The second chunk (users 5001 to 10000) fails in its worker.
    let db = Db::new(&admin);
    let env = env_for(&db.url, "", "");
    env.init();
    fill(&db);
    db.sql(
        "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS
           $$ BEGIN IF NEW.user_id = 7000 THEN RAISE EXCEPTION 'no tokens for user 7000'; END IF;
              RETURN NEW; END $$;
         CREATE TRIGGER refuse BEFORE INSERT ON pwreset_tokens FOR EACH ROW EXECUTE FUNCTION refuse()",
    );
    let a = request_all(&env).failure();
    assert!(
        stderr(&a).contains("no tokens for user 7000"),
        "{}",
        stderr(&a)
    );
    let printed: Vec<String> = stdout_of(&a)
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("json");
            v["email"].as_str().unwrap_or_default().to_owned()
        })
        .collect();
    let stored: Vec<String> = db
        .sql("SELECT u.email FROM pwreset_tokens t JOIN users u ON u.id = t.user_id ORDER BY u.id")
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(
        printed, stored,
        "every stored token's link is printed, in order"
    );
    assert!(
        printed.len() >= 5000,
        "the first chunk was stored: {}",
        printed.len()
    );
    assert!(
        !printed
            .iter()
            .any(|e| e == "user5001@example.com" || e == "user7000@example.com"),
        "the failed chunk stored nothing"
    );
}

fn stdout_of(a: &assert_cmd::assert::Assert) -> String {
    String::from_utf8_lossy(&a.get_output().stdout).into_owned()
}

/// An `after_reset` statement the role may not run (no DELETE on the application's sessions):
/// 77 naming the privilege and a GRANT, never the bound values; the reset rolls back and the
/// link still works. The superuser warning's GRANT list says after_reset needs its own rights.
#[test]
fn postgres_after_reset_without_its_privilege_is_77_with_a_grant() {
    let Some(admin) = admin_url("postgres_after_reset_without_its_privilege_is_77_with_a_grant")
    else {
        return;
    };
    let mut db = Db::new(&admin);
    let role = format!("pwreset_r_{}", random_suffix());
    psql(&admin, &format!("CREATE ROLE {role} LOGIN"));
    db.roles.push(role.clone());
    db.sql(
        "CREATE TABLE accounts (id serial PRIMARY KEY, email text NOT NULL, password text);
         CREATE TABLE sessions (id serial PRIMARY KEY, user_id integer NOT NULL, data text);
         INSERT INTO accounts (email, password) VALUES ('erin@example.com', NULL);
         INSERT INTO sessions (user_id, data) VALUES (1, 'laptop'), (1, 'phone');",
    );
    let users = "table = \"accounts\"\nid_column = \"id\"\nemail_column = \"email\"\npassword_column = \"password\"\nafter_reset = [\"DELETE FROM sessions WHERE user_id = :user_id\"]";
    let a = env_for(&db.url, "", users)
        .cmd()
        .arg("init")
        .assert()
        .success();
    let err = stderr(&a);
    if err.contains("is a superuser") {
        assert!(
            err.contains("-- and the rights the 1 [users] after_reset statement(s) use, e.g. GRANT DELETE ON sessions TO \"pwreset\";"),
            "{err}"
        );
    }
    db.sql(&format!(
        "GRANT USAGE ON SCHEMA public TO {role};
         GRANT SELECT (id, email, password), UPDATE (password) ON accounts TO {role};
         GRANT SELECT ON sessions TO {role};
         GRANT SELECT, INSERT, UPDATE, DELETE ON pwreset_tokens, pwreset_audit, pwreset_throttle, pwreset_runs, pwreset_limits, pwreset_secrets, pwreset_schema TO {role}"
    ));
    let env = env_for(&db.url_as(&role), "", users);
    let link = env.link("erin@example.com");
    let a = env
        .cmd()
        .args(["reset", "--password-stdin", &link])
        .write_stdin("Tr0ub4dor&3-horse-staple\n")
        .assert();
    assert_eq!(code(&a), 77, "{}", stderr(&a));
    let err = stderr(&a);
    assert!(
        err.contains("users.after_reset[0] was refused for lack of privilege")
            && err.contains("permission denied for table sessions")
            && err.contains(&format!("GRANT DELETE ON sessions TO \"{role}\";"))
            && err.contains("link still works"),
        "{err}"
    );
    assert!(
        !err.contains("$argon2id$") && !err.contains("erin@example.com"),
        "{err}"
    );
    assert_eq!(
        db.sql("SELECT count(*) FROM accounts WHERE password IS NULL"),
        "1"
    );
    assert_eq!(db.sql("SELECT count(*) FROM sessions"), "2");
    db.sql(&format!("GRANT DELETE ON sessions TO {role}"));
    reset_with(&env, &link);
    assert_eq!(db.sql("SELECT count(*) FROM sessions"), "0");
}
