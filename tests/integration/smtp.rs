//! Real mail delivery: `pwreset request` against an SMTP server running inside the test process
//! on 127.0.0.1 (see `smtp/server.rs`), with a test CA made at run time, and the sendmail
//! transport against a script the test writes.

pub mod server;

use crate::harness::{Env, database_for, stderr, stdout};
use mail_parser::MimeHeaders as _;
use server::{Options, Server, TestPki};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

const USER: &str = "pwreset-relay";
const PASSWORD: &str = "Relay-Pa55-7Hq2xZ";

/// A config sending through SMTP; `smtp` is the body of `[mail.smtp]`, `mail` goes in `[mail]`.
pub fn toml(dir: &Path, mail: &str, smtp: &str) -> String {
    format!(
        r#"database = "{db}"
base_url = "https://accounts.example.com/reset_password"
token_ttl = "1h"
request_throttle = "60s"
busy_timeout = "5s"

[mail]
transport = "smtp"
from = "Accounts <no-reply@example.com>"
{mail}

[mail.smtp]
{smtp}

[password.argon2]
memory_kib = 8192
iterations = 1
parallelism = 1
"#,
        db = database_for(dir),
    )
}

/// An env with one user and a config for `smtp`.
fn env_with(smtp: &str, user: &str) -> Env {
    env_mail("", smtp, user)
}

fn env_mail(mail: &str, smtp: &str, user: &str) -> Env {
    let env = Env::with_toml(|dir| toml(dir, mail, smtp));
    env.init();
    env.add_user(user);
    env
}

/// `[mail.smtp]` for a plaintext server on loopback.
pub fn plain(server: &Server) -> String {
    format!(
        "host = \"127.0.0.1\"\nport = {}\ntls = \"none\"\ntimeout = \"5s\"",
        server.port()
    )
}

/// Write a secret file with `mode`, return its path.
fn secret_file(env: &Env, name: &str, text: &str, mode: u32) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = env.dir.path().join(name);
    std::fs::write(&path, text).expect("write secret");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod");
    path
}

/// The CA certificate as a file.
fn ca_file(env: &Env, pki: &TestPki) -> PathBuf {
    let path = env.dir.path().join("relay-ca.pem");
    std::fs::write(&path, &pki.ca_pem).expect("write ca");
    path
}

/// A server with STARTTLS and AUTH.
fn tls_server(pki: &TestPki) -> Server {
    Server::start(Options {
        tls: Some(Arc::clone(&pki.server)),
        auth: Some((USER.into(), PASSWORD.into())),
        ..Options::default()
    })
}

/// `[mail.smtp]` for STARTTLS + AUTH with the password in `password_file`.
fn starttls(server: &Server, ca: Option<&Path>, password_file: Option<&Path>) -> String {
    let mut s = format!(
        "host = \"127.0.0.1\"\nport = {}\ntls = \"starttls\"\nusername = \"{USER}\"\ntimeout = \"5s\"\n",
        server.port()
    );
    if let Some(ca) = ca {
        s.push_str(&format!("ca_file = \"{}\"\n", ca.display()));
    }
    if let Some(p) = password_file {
        s.push_str(&format!("password_file = \"{}\"\n", p.display()));
    }
    s
}

/// Assert the exit code, showing the output when it is wrong.
fn expect_code(a: &assert_cmd::assert::Assert, code: i32) {
    let out = a.get_output();
    // Shown with --nocapture, to read what users would see.
    eprintln!(
        "exit {:?}: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).trim_end()
    );
    assert_eq!(
        out.status.code(),
        Some(code),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Neither stream shows the SMTP password.
fn no_password(a: &assert_cmd::assert::Assert) {
    let all = format!("{}{}", stdout(a), stderr(a));
    assert!(!all.contains(PASSWORD), "the password leaked: {all}");
}

/// The tokens of the env's database: (revoked_at, revoked_reason) each.
fn tokens(env: &Env) -> Vec<(Option<i64>, Option<String>)> {
    env.rows("SELECT revoked_at, revoked_reason FROM pwreset_tokens ORDER BY id")
        .into_iter()
        .map(|r| {
            let at = r[0].as_deref().map(|v| v.parse().expect("a time"));
            (at, r[1].clone())
        })
        .collect()
}

/// Every token the database holds was revoked as undelivered, and `user list` shows no open
/// token: a link that did not reach its owner is not usable.
fn all_revoked_undelivered(env: &Env, expect: usize) {
    let t = tokens(env);
    assert_eq!(t.len(), expect, "{t:?}");
    for (at, why) in &t {
        assert!(at.is_some(), "{t:?}");
        assert_eq!(why.as_deref(), Some("undelivered"), "{t:?}");
    }
    let a = env
        .cmd()
        .args(["user", "list", "--json"])
        .assert()
        .success();
    let list: serde_json::Value = serde_json::from_str(&stdout(&a)).expect("json");
    for u in list.as_array().expect("array") {
        assert_eq!(u["open_tokens"], 0, "{list}");
    }
}

pub fn parse(data: &[u8]) -> mail_parser::Message<'_> {
    mail_parser::MessageParser::default()
        .parse(data)
        .expect("a parseable message")
}

/// The token in a message's text part.
pub fn token_in(data: &[u8]) -> String {
    let msg = parse(data);
    let text = msg.body_text(0).expect("text part");
    let at = text.find("token=pwr_").expect("a link in the text") + "token=".len();
    text[at..at + pwreset::token::TEXT_LEN].to_owned()
}

/// `pwreset verify TOKEN --json`'s status.
fn verify_status(env: &Env, token: &str) -> String {
    let out = env
        .cmd()
        .args(["verify", "--json", token])
        .output()
        .expect("verify");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    v["status"].as_str().expect("status").to_owned()
}

/// No line of the message is longer than SMTP allows (998 bytes without CRLF).
fn lines_within_limits(data: &[u8]) {
    for (i, line) in data.split(|&b| b == b'\n').enumerate() {
        assert!(line.len() <= 999, "line {i} is {} bytes", line.len());
    }
}

#[test]
fn delivers_over_plain_smtp_to_loopback() {
    let server = Server::start(Options::default());
    // Stored with capitals; typed in lower case: mail goes to the stored address.
    let env = env_with(&plain(&server), "Alice.Smith@Example.com");
    let a = env
        .cmd()
        .args(["request", "--json", "alice.smith@example.com"])
        .assert();
    expect_code(&a, 0);
    let line: serde_json::Value = serde_json::from_str(stdout(&a).trim()).expect("json");
    assert_eq!(line["status"], "sent");
    assert_eq!(line["email"], "Alice.Smith@Example.com");

    let log = server.log();
    assert_eq!(log.messages.len(), 1, "received once");
    let m = &log.messages[0];
    assert_eq!(m.mail_from, "no-reply@example.com");
    assert_eq!(m.rcpt_to, vec!["Alice.Smith@Example.com".to_owned()]);
    assert!(!m.tls && !m.authenticated);
    lines_within_limits(&m.data);
    assert!(log.longest_line <= 998);
    assert!(m.data.is_ascii(), "7-bit clean message");

    let msg = parse(&m.data);
    let to = msg.to().and_then(|t| t.first()).expect("To");
    assert_eq!(to.address(), Some("Alice.Smith@Example.com"));
    let from = msg.from().and_then(|f| f.first()).expect("From");
    assert_eq!(from.address(), Some("no-reply@example.com"));
    assert_eq!(from.name(), Some("Accounts"));
    // The service is named: by default the display name of `from`.
    assert_eq!(msg.subject(), Some("Reset your Accounts password"));
    assert_eq!(
        msg.header("Content-Language").and_then(|h| h.as_text()),
        Some("en")
    );
    let date = msg.date().expect("Date");
    let now = jiff::Timestamp::now().as_second();
    assert!(
        (date.to_timestamp() - now).abs() < 600,
        "Date is now: {date}"
    );
    let id = msg.message_id().expect("Message-ID");
    assert!(id.ends_with("@example.com"), "{id}");
    assert!(id.len() > "@example.com".len() + 16, "{id}");
    assert_eq!(
        msg.header("Auto-Submitted").and_then(|h| h.as_text()),
        Some("auto-generated")
    );
    let ct = msg.content_type().expect("Content-Type");
    assert_eq!(ct.ctype(), "multipart");
    assert_eq!(ct.subtype(), Some("alternative"));
    assert_eq!(msg.text_body_count(), 1);
    assert_eq!(msg.html_body_count(), 1);
    let text = msg.body_text(0).expect("text");
    let html = msg.body_html(0).expect("html");
    assert!(text.contains("https://accounts.example.com/reset_password?token=pwr_"));
    assert!(html.contains("href=\"https://accounts.example.com/reset_password?token=pwr_"));
    let token = token_in(&m.data);
    assert!(html.contains(&token));
    drop(log);
    assert_eq!(verify_status(&env, &token), "valid");
}

#[test]
fn starttls_with_private_ca_and_auth_from_password_file() {
    let pki = TestPki::new(&["localhost", "127.0.0.1"]);
    let server = tls_server(&pki);
    let env = Env::with_toml(|dir| toml(dir, "", ""));
    let ca = ca_file(&env, &pki);
    let pw = secret_file(&env, "smtp-password", &format!("{PASSWORD}\n"), 0o600);
    env.set_config(&toml(
        env.dir.path(),
        "",
        &starttls(&server, Some(&ca), Some(&pw)),
    ));
    env.init();
    env.add_user("bob@example.com");
    let a = env
        .cmd()
        .args(["-v", "request", "bob@example.com"])
        .assert();
    expect_code(&a, 0);
    no_password(&a);
    let log = server.log();
    assert_eq!(log.tls_handshakes, 1);
    assert_eq!(log.auth_ok, 1);
    assert_eq!(log.auth_failed, 0);
    assert_eq!(log.messages.len(), 1);
    let m = &log.messages[0];
    assert!(m.tls && m.authenticated);
    assert_eq!(m.rcpt_to, vec!["bob@example.com".to_owned()]);
    // The order a careful client keeps: TLS before the login, the login before the mail.
    let verbs: Vec<&str> = log.verbs.iter().map(String::as_str).collect();
    let pos = |v: &str| verbs.iter().position(|x| *x == v).expect(v);
    assert!(
        pos("STARTTLS") < pos("AUTH") && pos("AUTH") < pos("MAIL"),
        "{verbs:?}"
    );
}

#[test]
fn implicit_tls_delivers() {
    let pki = TestPki::new(&["localhost", "127.0.0.1"]);
    let server = Server::start(Options {
        tls: Some(Arc::clone(&pki.server)),
        implicit_tls: true,
        ..Options::default()
    });
    let env = Env::with_toml(|dir| toml(dir, "", ""));
    let ca = ca_file(&env, &pki);
    env.set_config(&toml(
        env.dir.path(),
        "",
        &format!(
            "host = \"127.0.0.1\"\nport = {}\ntls = \"tls\"\nca_file = \"{}\"",
            server.port(),
            ca.display()
        ),
    ));
    env.init();
    env.add_user("carol@example.com");
    let a = env.cmd().args(["request", "carol@example.com"]).assert();
    expect_code(&a, 0);
    let log = server.log();
    assert_eq!(log.messages.len(), 1);
    assert!(log.messages[0].tls);
}

#[test]
fn untrusted_certificate_is_permanent_and_revokes_the_token() {
    let pki = TestPki::new(&["localhost", "127.0.0.1"]);
    let server = tls_server(&pki);
    let env = Env::with_toml(|dir| toml(dir, "", ""));
    let pw = secret_file(&env, "smtp-password", PASSWORD, 0o600);
    // No ca_file: the test CA is not among the public roots.
    env.set_config(&toml(
        env.dir.path(),
        "",
        &starttls(&server, None, Some(&pw)),
    ));
    env.init();
    env.add_user("dave@example.com");
    let a = env.cmd().args(["request", "dave@example.com"]).assert();
    expect_code(&a, 69);
    no_password(&a);
    let err = stderr(&a);
    assert!(
        err.contains(&format!("127.0.0.1:{}", server.port())),
        "{err}"
    );
    assert!(err.contains("TLS") && err.contains("certificate"), "{err}");
    {
        let log = server.log();
        assert!(log.messages.is_empty());
        assert_eq!(log.auth_ok + log.auth_failed, 0, "no login before TLS");
        assert!(
            !log.verbs.iter().any(|v| v == "AUTH" || v == "MAIL"),
            "{:?}",
            log.verbs
        );
    }
    all_revoked_undelivered(&env, 1);
    // The audit trail says why.
    let a = env.cmd().args(["audit", "--json"]).assert().success();
    let audit: serde_json::Value = serde_json::from_str(&stdout(&a)).expect("json");
    assert!(
        audit
            .as_array()
            .expect("array")
            .iter()
            .any(|e| e["outcome"] == "failed"
                && e["detail"]
                    .as_str()
                    .is_some_and(|d| d.contains("certificate"))),
        "{audit}"
    );
}

#[test]
fn certificate_for_another_host_is_refused() {
    let pki = TestPki::new(&["mail.example.com"]);
    let server = tls_server(&pki);
    let env = Env::with_toml(|dir| toml(dir, "", ""));
    let ca = ca_file(&env, &pki);
    let pw = secret_file(&env, "smtp-password", PASSWORD, 0o600);
    env.set_config(&toml(
        env.dir.path(),
        "",
        &starttls(&server, Some(&ca), Some(&pw)),
    ));
    env.init();
    env.add_user("erin@example.com");
    let a = env.cmd().args(["request", "erin@example.com"]).assert();
    expect_code(&a, 69);
    let err = stderr(&a);
    assert!(err.contains("TLS"), "{err}");
    let log = server.log();
    assert_eq!(log.auth_ok + log.auth_failed, 0);
    drop(log);
    all_revoked_undelivered(&env, 1);
}

#[test]
fn starttls_required_when_the_server_does_not_offer_it() {
    // A server that offers AUTH but no STARTTLS: the login must not go out in clear text.
    let server = Server::start(Options {
        auth: Some((USER.into(), PASSWORD.into())),
        ..Options::default()
    });
    let env = Env::with_toml(|dir| toml(dir, "", ""));
    let pw = secret_file(&env, "smtp-password", PASSWORD, 0o600);
    env.set_config(&toml(
        env.dir.path(),
        "",
        &starttls(&server, None, Some(&pw)),
    ));
    env.init();
    env.add_user("frank@example.com");
    let a = env.cmd().args(["request", "frank@example.com"]).assert();
    expect_code(&a, 69);
    let err = stderr(&a);
    assert!(err.contains("STARTTLS"), "{err}");
    let log = server.log();
    assert!(
        !log.verbs
            .iter()
            .any(|v| v == "AUTH" || v == "MAIL" || v == "RCPT"),
        "{:?}",
        log.verbs
    );
    assert!(log.messages.is_empty());
    drop(log);
    all_revoked_undelivered(&env, 1);
}

#[test]
fn plaintext_to_a_remote_host_is_a_config_error() {
    let env = Env::with_toml(|dir| {
        toml(
            dir,
            "",
            "host = \"smtp.example.com\"\nport = 25\ntls = \"none\"",
        )
    });
    // Refused when the config is loaded, whatever the command.
    for args in [&["init"][..], &["request", "gina@example.com"]] {
        let a = env.cmd().args(args).assert();
        expect_code(&a, 78);
        let err = stderr(&a);
        assert!(
            err.contains("mail.smtp.tls") && err.contains("loopback"),
            "{err}"
        );
        assert!(err.contains("smtp.example.com"), "{err}");
    }
    assert!(!env.database_created(), "nothing was created");
}

#[test]
fn connection_refused_is_temporary_and_leaves_no_usable_token() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let env = env_with(
        &format!("host = \"127.0.0.1\"\nport = {port}\ntls = \"none\"\ntimeout = \"5s\""),
        "hank@example.com",
    );
    let a = env.cmd().args(["request", "hank@example.com"]).assert();
    expect_code(&a, 75);
    let err = stderr(&a);
    assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
    assert!(err.to_lowercase().contains("refused"), "{err}");
    all_revoked_undelivered(&env, 1);
}

#[test]
fn a_silent_server_times_out() {
    let server = Server::start(Options {
        silent: true,
        ..Options::default()
    });
    let env = env_with(
        &format!(
            "host = \"127.0.0.1\"\nport = {}\ntls = \"none\"\ntimeout = \"1s\"",
            server.port()
        ),
        "ivan@example.com",
    );
    let a = env.cmd().args(["request", "ivan@example.com"]).assert();
    expect_code(&a, 75);
    let err = stderr(&a);
    assert!(err.contains("timed out"), "{err}");
    all_revoked_undelivered(&env, 1);
}

#[test]
fn replies_4xx_are_temporary() {
    for (opts, stage) in [
        (
            Options {
                mail_reply: Some("451 4.3.0 mail system busy, try later".into()),
                ..Options::default()
            },
            "MAIL",
        ),
        (
            Options {
                rcpt_reply: Arc::new(|_| Some("451 4.7.1 greylisted, come back later".into())),
                ..Options::default()
            },
            "RCPT",
        ),
    ] {
        let server = Server::start(opts);
        let env = env_with(&plain(&server), "judy@example.com");
        let a = env
            .cmd()
            .args(["request", "--json", "judy@example.com"])
            .assert();
        expect_code(&a, 75);
        let line: serde_json::Value = serde_json::from_str(stdout(&a).trim()).expect("json");
        assert_eq!(line["status"], "failed", "{stage}");
        let e = line["error"].as_str().expect("error");
        assert!(
            e.contains("451") && e.contains(&format!("127.0.0.1:{}", server.port())),
            "{e}"
        );
        assert!(e.contains("busy") || e.contains("greylisted"), "{e}");
        assert!(server.log().messages.is_empty());
        all_revoked_undelivered(&env, 1);
    }
}

#[test]
fn replies_5xx_are_permanent() {
    let server = Server::start(Options {
        rcpt_reply: Arc::new(|_| Some("550 5.1.1 no such mailbox here".into())),
        ..Options::default()
    });
    let env = env_with(&plain(&server), "kim@example.com");
    let a = env.cmd().args(["request", "kim@example.com"]).assert();
    expect_code(&a, 69);
    let err = stderr(&a);
    assert!(
        err.contains("550") && err.contains("no such mailbox here"),
        "{err}"
    );
    assert!(err.contains("kim@example.com"), "names the user: {err}");
    assert!(
        err.contains(&format!("127.0.0.1:{}", server.port())),
        "{err}"
    );
    all_revoked_undelivered(&env, 1);
}

#[test]
fn a_message_refused_after_data_leaves_a_revoked_token() {
    for (reply, code) in [
        ("554 5.7.1 message looks like spam", 69),
        ("452 4.3.1 insufficient storage", 75),
    ] {
        let server = Server::start(Options {
            data_reply: Some(reply.into()),
            ..Options::default()
        });
        let env = env_with(&plain(&server), "lee@example.com");
        let a = env.cmd().args(["request", "lee@example.com"]).assert();
        expect_code(&a, code);
        assert!(stderr(&a).contains(&reply[..3]), "{}", stderr(&a));
        // The server saw the link, but its owner did not get it: it must not work.
        let token = token_in(&server.log().refused[0]);
        assert_eq!(verify_status(&env, &token), "revoked");
        let a = env.cmd().args(["verify", &token]).assert();
        expect_code(&a, 1);
        assert!(
            stdout(&a).contains("could not be delivered"),
            "{}",
            stdout(&a)
        );
        assert!(server.log().messages.is_empty());
    }
}

#[test]
fn a_wrong_password_is_a_permanent_failure() {
    let pki = TestPki::new(&["localhost", "127.0.0.1"]);
    let server = tls_server(&pki);
    let env = Env::with_toml(|dir| toml(dir, "", ""));
    let ca = ca_file(&env, &pki);
    let wrong = "Not-The-Relay-Pa55";
    let pw = secret_file(&env, "smtp-password", wrong, 0o600);
    env.set_config(&toml(
        env.dir.path(),
        "",
        &starttls(&server, Some(&ca), Some(&pw)),
    ));
    env.init();
    env.add_user("mia@example.com");
    let a = env
        .cmd()
        .args(["-v", "request", "mia@example.com"])
        .assert();
    expect_code(&a, 69);
    let all = format!("{}{}", stdout(&a), stderr(&a));
    assert!(!all.contains(wrong), "the password leaked: {all}");
    let err = stderr(&a);
    assert!(err.contains("535") && err.contains("login"), "{err}");
    let log = server.log();
    assert!(log.auth_failed >= 1 && log.auth_ok == 0);
    assert!(!log.verbs.iter().any(|v| v == "MAIL"));
    drop(log);
    all_revoked_undelivered(&env, 1);
}

#[test]
fn a_password_file_readable_by_others_is_refused() {
    let server = tls_server(&TestPki::new(&["127.0.0.1"]));
    let env = Env::with_toml(|dir| toml(dir, "", ""));
    let pw = secret_file(&env, "smtp-password", PASSWORD, 0o644);
    env.set_config(&toml(
        env.dir.path(),
        "",
        &starttls(&server, None, Some(&pw)),
    ));
    env.init();
    env.add_user("ned@example.com");
    let a = env.cmd().args(["request", "ned@example.com"]).assert();
    expect_code(&a, 77);
    no_password(&a);
    let err = stderr(&a);
    assert!(
        err.contains(&format!("chmod 600 {}", pw.display())),
        "{err}"
    );
    assert_eq!(server.log().connections, 0, "nothing was sent");
    assert!(tokens(&env).is_empty(), "nothing was issued");
}

#[test]
fn password_from_the_environment() {
    let pki = TestPki::new(&["localhost", "127.0.0.1"]);
    let server = tls_server(&pki);
    let env = Env::with_toml(|dir| toml(dir, "", ""));
    let ca = ca_file(&env, &pki);
    env.set_config(&toml(
        env.dir.path(),
        "",
        &starttls(&server, Some(&ca), None),
    ));
    env.init();
    env.add_user("olga@example.com");
    // Without it: a configuration error that says where the password can come from.
    let a = env.cmd().args(["request", "olga@example.com"]).assert();
    expect_code(&a, 78);
    assert!(
        stderr(&a).contains("PWRESET_SMTP_PASSWORD"),
        "{}",
        stderr(&a)
    );
    let a = env
        .cmd()
        .env("PWRESET_SMTP_PASSWORD", PASSWORD)
        .args(["-v", "request", "--force", "olga@example.com"])
        .assert();
    expect_code(&a, 0);
    no_password(&a);
    let log = server.log();
    assert_eq!(log.auth_ok, 1);
    assert_eq!(log.messages.len(), 1);
}

#[test]
fn non_ascii_display_name_and_subject_are_encoded() {
    let server = Server::start(Options::default());
    let subject = "Réinitialisez votre mot de passe — パスワードの再設定 — \
                   Zurücksetzen des Passworts für Ihr Konto bei Åsa & Søren";
    let env = env_mail(
        &format!("subject = \"{subject}\"\n"),
        &plain(&server),
        "pat@example.com",
    );
    env.set_config(
        &std::fs::read_to_string(&env.config)
            .expect("config")
            .replace(
                "from = \"Accounts <",
                "from = \"\\\"Zoë Ångström, Kontoservice\\\" <",
            ),
    );
    let a = env.cmd().args(["request", "pat@example.com"]).assert();
    expect_code(&a, 0);
    let log = server.log();
    let m = &log.messages[0];
    assert!(
        m.data.is_ascii(),
        "headers are RFC 2047 encoded, bodies are 7-bit"
    );
    lines_within_limits(&m.data);
    let raw = String::from_utf8_lossy(&m.data);
    let headers = &raw[..raw.find("\r\n\r\n").expect("header end")];
    assert!(headers.to_lowercase().contains("=?utf-8?"), "{headers}");
    for line in headers.split("\r\n") {
        assert!(line.len() <= 998, "{line}");
    }
    let msg = parse(&m.data);
    assert_eq!(msg.subject(), Some(subject));
    let from = msg.from().and_then(|f| f.first()).expect("From");
    assert_eq!(from.name(), Some("Zoë Ångström, Kontoservice"));
    assert_eq!(from.address(), Some("no-reply@example.com"));
}

#[test]
fn a_line_with_a_lone_dot_does_not_end_the_message() {
    // SMTP ends the data at a line holding only "."; the client must double leading dots.
    let server = Server::start(Options::default());
    let env = Env::with_toml(|dir| toml(dir, "", ""));
    let templates = env.dir.path().join("templates");
    std::fs::create_dir(&templates).expect("mkdir");
    std::fs::write(
        templates.join("reset.txt"),
        "Hello,\n.\n..two dots\n.one dot\n{{ link }}\n.\n",
    )
    .expect("template");
    env.set_config(&toml(
        env.dir.path(),
        &format!("template_dir = \"{}\"", templates.display()),
        &plain(&server),
    ));
    env.init();
    env.add_user("sam@example.com");
    let a = env.cmd().args(["request", "sam@example.com"]).assert();
    expect_code(&a, 0);
    let log = server.log();
    assert_eq!(log.messages.len(), 1);
    assert!(log.protocol_errors.is_empty(), "{:?}", log.protocol_errors);
    // Nothing after the lone dot was taken for a command.
    assert!(
        !log.verbs
            .iter()
            .any(|v| v.starts_with("..") || v == "HELLO,"),
        "{:?}",
        log.verbs
    );
    let raw = String::from_utf8_lossy(&log.messages[0].data);
    assert!(
        raw.contains("\r\n.\r\n..two dots\r\n"),
        "the dots went over the wire: {raw}"
    );
    let msg = parse(&log.messages[0].data);
    let text = msg.body_text(0).expect("text");
    assert!(
        text.replace("\r\n", "\n")
            .starts_with("Hello,\n.\n..two dots\n.one dot\nhttps://"),
        "{text}"
    );
    assert_eq!(msg.html_body_count(), 1, "the HTML part came through too");
}

/// Add `n` users `user-0001@example.com` ... straight into the database (quicker than n runs
/// of `user add`).
fn add_users(env: &Env, n: usize) -> Vec<String> {
    let emails: Vec<String> = (1..=n)
        .map(|i| format!("user-{i:04}@example.com"))
        .collect();
    env.insert_users(&emails);
    emails
}

#[test]
fn bulk_thousand_users_over_four_pooled_connections() {
    let server = Server::start(Options::default());
    let env = Env::with_toml(|dir| toml(dir, "", ""));
    env.set_config(&toml(
        env.dir.path(),
        "",
        &format!("{}\nconnections = 4", plain(&server)),
    ));
    env.init();
    let emails = add_users(&env, 1000);
    let a = env.cmd().args(["request", "--all"]).assert();
    expect_code(&a, 0);
    assert!(
        stderr(&a).contains("requested 1,000: 1,000 sent"),
        "{}",
        stderr(&a)
    );

    let log = server.log();
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for r in &log.accepted_rcpts {
        *seen.entry(r.as_str()).or_default() += 1;
    }
    assert_eq!(log.messages.len(), 1000);
    assert_eq!(seen.len(), 1000);
    for e in &emails {
        assert_eq!(seen.get(e.as_str()), Some(&1), "{e}");
    }
    for m in &log.messages {
        assert_eq!(m.rcpt_to.len(), 1);
        let msg = parse(&m.data);
        let to = msg.to().and_then(|t| t.first()).and_then(|a| a.address());
        assert_eq!(to, Some(m.rcpt_to[0].as_str()), "To matches the envelope");
    }
    // Closed politely at the end.
    let quits = log.verbs.iter().filter(|v| *v == "QUIT").count();
    assert_eq!(quits, log.connections, "one QUIT per connection");
    // Pooled and reused, not one connection per message.
    assert!(
        (1..=4).contains(&log.connections),
        "{} connections",
        log.connections
    );
    drop(log);
    assert!(tokens(&env).iter().all(|(at, _)| at.is_none()));
}

#[test]
fn bulk_with_some_recipients_refused() {
    let refused = [
        "user-0003@example.com",
        "user-0011@example.com",
        "user-0017@example.com",
    ];
    let server = Server::start(Options {
        rcpt_reply: Arc::new(move |to| {
            refused
                .contains(&to)
                .then(|| "550 5.1.1 mailbox unavailable".to_owned())
        }),
        ..Options::default()
    });
    let env = Env::with_toml(|dir| toml(dir, "", ""));
    env.set_config(&toml(
        env.dir.path(),
        "",
        &format!("{}\nconnections = 4", plain(&server)),
    ));
    env.init();
    let emails = add_users(&env, 20);
    let list = env.dir.path().join("users.txt");
    std::fs::write(&list, emails.join("\n")).expect("list");
    let a = env
        .cmd()
        .args(["request", "--json", "--from-file"])
        .arg(&list)
        .assert();
    expect_code(&a, 69);
    assert!(
        stderr(&a).contains("requested 20: 17 sent, 3 failed"),
        "{}",
        stderr(&a)
    );
    let lines: Vec<serde_json::Value> = stdout(&a)
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert_eq!(lines.len(), 20);
    for (line, email) in lines.iter().zip(&emails) {
        assert_eq!(line["email"], email.as_str(), "input order");
        if refused.contains(&email.as_str()) {
            assert_eq!(line["status"], "failed", "{line}");
            let e = line["error"].as_str().expect("error");
            assert!(
                e.contains("550") && e.contains("mailbox unavailable"),
                "{e}"
            );
        } else {
            assert_eq!(line["status"], "sent", "{line}");
            assert!(line.get("error").is_none(), "{line}");
        }
    }
    let log = server.log();
    assert_eq!(log.messages.len(), 17);
    // A refused recipient does not cost the connection (RSET, not a reconnect).
    assert!(log.connections <= 4, "{} connections", log.connections);
    assert_eq!(log.verbs.iter().filter(|v| *v == "RSET").count(), 3);
    let mut got: Vec<&str> = log.messages.iter().map(|m| m.rcpt_to[0].as_str()).collect();
    got.sort_unstable();
    let want: Vec<&str> = emails
        .iter()
        .map(String::as_str)
        .filter(|e| !refused.contains(e))
        .collect();
    assert_eq!(got, want);
    drop(log);
    let revoked = tokens(&env)
        .into_iter()
        .filter(|(_, why)| why.as_deref() == Some("undelivered"))
        .count();
    assert_eq!(revoked, 3);
}

#[test]
fn bulk_gives_up_on_a_server_that_rejects_the_login() {
    // A wrong password must not turn into one failed login per user (and a locked account).
    let pki = TestPki::new(&["127.0.0.1"]);
    let server = tls_server(&pki);
    let env = Env::with_toml(|dir| toml(dir, "", ""));
    let ca = ca_file(&env, &pki);
    let pw = secret_file(&env, "smtp-password", "Wrong-Relay-Pa55", 0o600);
    env.set_config(&toml(
        env.dir.path(),
        "",
        &format!(
            "{}connections = 4\n",
            starttls(&server, Some(&ca), Some(&pw))
        ),
    ));
    env.init();
    add_users(&env, 40);
    let a = env.cmd().args(["request", "--all", "--json"]).assert();
    expect_code(&a, 69);
    assert!(
        stderr(&a).contains("requested 40: 0 sent, 40 failed"),
        "{}",
        stderr(&a)
    );
    for line in stdout(&a).lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("json");
        assert_eq!(v["status"], "failed");
        let e = v["error"].as_str().expect("error");
        assert!(e.contains("rejected the login") && e.contains("535"), "{e}");
    }
    let log = server.log();
    assert!(log.auth_failed < 10, "{} logins tried", log.auth_failed);
    assert!(log.messages.is_empty());
    drop(log);
    all_revoked_undelivered(&env, 40);
}

#[test]
fn a_pooled_connection_the_server_closed_is_replaced() {
    // Each message goes out on a connection the server has since closed: the message must be
    // sent again on a new one, once.
    let server = Server::start(Options {
        hang_up_after_message: true,
        ..Options::default()
    });
    let env = Env::with_toml(|dir| toml(dir, "", ""));
    env.set_config(&toml(
        env.dir.path(),
        "",
        &format!("{}\nconnections = 1", plain(&server)),
    ));
    env.init();
    let emails = add_users(&env, 10);
    let a = env.cmd().args(["request", "--all"]).assert();
    expect_code(&a, 0);
    assert!(
        stderr(&a).contains("requested 10: 10 sent"),
        "{}",
        stderr(&a)
    );
    let log = server.log();
    let mut got = log.accepted_rcpts.clone();
    got.sort_unstable();
    assert_eq!(got, emails, "each once");
    assert_eq!(log.connections, 10);
}

/// A sendmail stand-in that keeps its arguments and its input next to itself.
fn sendmail_script(env: &Env, body: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = env.dir.path().join("fake-sendmail");
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).expect("write script");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    path
}

/// A config with the sendmail transport running `script`.
fn sendmail_toml(env: &Env, script: &Path) -> String {
    toml(env.dir.path(), "", "")
        .replace("transport = \"smtp\"", "transport = \"sendmail\"")
        .replace(
            "[mail.smtp]\n",
            &format!("[mail.sendmail]\ncommand = \"{}\"\n", script.display()),
        )
}

#[test]
fn sendmail_transport_pipes_the_message() {
    let env = Env::with_toml(|dir| toml(dir, "", ""));
    let out = env.dir.path().join("sent.eml");
    let args = env.dir.path().join("sent.args");
    let script = sendmail_script(
        &env,
        &format!(
            "printf '%s\\n' \"$@\" > '{}'\ncat > '{}'",
            args.display(),
            out.display()
        ),
    );
    env.set_config(&sendmail_toml(&env, &script));
    env.init();
    env.add_user("Quinn@Example.com");
    let a = env.cmd().args(["request", "quinn@example.com"]).assert();
    expect_code(&a, 0);
    let data = std::fs::read(&out).expect("the script got the message");
    let msg = parse(&data);
    let to = msg.to().and_then(|t| t.first()).and_then(|a| a.address());
    assert_eq!(to, Some("Quinn@Example.com"));
    assert!(msg.body_text(0).expect("text").contains("token=pwr_"));
    let argv = std::fs::read_to_string(&args).expect("args");
    let argv: Vec<&str> = argv.lines().collect();
    assert_eq!(argv.last(), Some(&"Quinn@Example.com"), "{argv:?}");
    assert!(argv.contains(&"no-reply@example.com"), "{argv:?}");
    assert_eq!(verify_status(&env, &token_in(&data)), "valid");
}

#[test]
fn a_failing_sendmail_revokes_the_token() {
    let env = Env::with_toml(|dir| toml(dir, "", ""));
    let script = sendmail_script(
        &env,
        "cat > /dev/null\necho 'queue directory is full' >&2\nexit 75",
    );
    env.set_config(&sendmail_toml(&env, &script));
    env.init();
    env.add_user("rita@example.com");
    let a = env.cmd().args(["request", "rita@example.com"]).assert();
    expect_code(&a, 75);
    let err = stderr(&a);
    assert!(err.contains("\"queue directory is full\""), "{err}");
    assert!(
        err.contains("exited with status 75 (EX_TEMPFAIL), temporary failure"),
        "{err}"
    );
    all_revoked_undelivered(&env, 1);
}

/// `request` through a sendmail that runs `body`: the assert, and the env.
fn sendmail_request(body: &str) -> (assert_cmd::assert::Assert, Env, PathBuf) {
    let env = Env::with_toml(|dir| toml(dir, "", ""));
    let script = sendmail_script(&env, body);
    env.set_config(&sendmail_toml(&env, &script));
    env.init();
    env.add_user("sam@example.com");
    let a = env.cmd().args(["request", "sam@example.com"]).assert();
    (a, env, script)
}

#[test]
fn a_sendmail_that_exits_1_is_permanent_and_quoted() {
    // The first line of stderr is quoted, escaped; the rest is not (it can be long).
    let (a, env, script) = sendmail_request(
        "cat > /dev/null\nprintf 'relay access denied \\033[31m\\n  second line\\n' >&2\nexit 1",
    );
    expect_code(&a, 69);
    let err = stderr(&a);
    assert!(err.contains(&script.display().to_string()), "{err}");
    assert!(
        err.contains(
            "exited with status 1, permanent failure: \"relay access denied \\u{1b}[31m\""
        ),
        "{err}"
    );
    assert!(!err.contains('\u{1b}'), "raw escape on the terminal: {err}");
    assert!(!err.contains("second line"), "{err}");
    assert!(!err.contains("internal client error"), "{err}");
    all_revoked_undelivered(&env, 1);
}

#[test]
fn bin_false_as_sendmail_says_what_failed() {
    let env = Env::with_toml(|dir| toml(dir, "", ""));
    env.set_config(&sendmail_toml(&env, Path::new("/bin/false")));
    env.init();
    env.add_user("sam@example.com");
    let a = env.cmd().args(["request", "sam@example.com"]).assert();
    expect_code(&a, 69);
    let err = stderr(&a);
    assert!(
        err.contains("sendmail command /bin/false exited with status 1, permanent failure (nothing on stderr)"),
        "{err}"
    );
}

#[test]
fn a_sendmail_killed_by_a_signal_is_temporary() {
    let (a, env, _) = sendmail_request("echo 'about to die' >&2\nkill -9 $$");
    expect_code(&a, 75);
    let err = stderr(&a);
    assert!(
        err.contains("was killed by signal 9 (SIGKILL), temporary failure: \"about to die\""),
        "{err}"
    );
    all_revoked_undelivered(&env, 1);
}

#[test]
fn a_sendmail_that_cannot_be_run_is_a_config_error() {
    let env = Env::with_toml(|dir| toml(dir, "", ""));
    let missing = env.dir.path().join("no-such-sendmail");
    env.set_config(&sendmail_toml(&env, &missing));
    env.init();
    env.add_user("sam@example.com");
    let a = env.cmd().args(["request", "sam@example.com"]).assert();
    expect_code(&a, 78);
    let err = stderr(&a);
    assert!(err.contains("mail.sendmail.command: cannot run"), "{err}");
    all_revoked_undelivered(&env, 1);
}

// ---- doctor against a real relay -----------------------------------------------------------

#[test]
fn doctor_checks_starttls_the_certificate_and_auth_without_sending() {
    let pki = TestPki::new(&["localhost", "127.0.0.1"]);
    let server = tls_server(&pki);
    let env = Env::with_toml(|dir| toml(dir, "", ""));
    let ca = ca_file(&env, &pki);
    let pw = secret_file(&env, "smtp-password", &format!("{PASSWORD}\n"), 0o600);
    env.set_config(&toml(
        env.dir.path(),
        "",
        &starttls(&server, Some(&ca), Some(&pw)),
    ));
    env.init();
    let a = env.cmd().arg("doctor").assert();
    expect_code(&a, 0);
    let out = stdout(&a);
    for line in [
        "ok    smtp",
        "ok    certificate",
        "ok    database",
        "ok    templates",
    ] {
        assert!(out.contains(line), "{line}: {out}");
    }
    assert!(out.contains("AUTH accepted"), "{out}");
    no_password(&a);
    {
        let log = server.log();
        assert_eq!(log.tls_handshakes, 1);
        assert_eq!(log.auth_ok, 1);
        assert!(log.messages.is_empty(), "doctor sent a message");
    }
    let a = env
        .cmd()
        .args(["doctor", "--json", "--send-test", "me@example.com"])
        .assert();
    expect_code(&a, 0);
    let v: serde_json::Value = serde_json::from_str(&stdout(&a)).expect("json");
    assert!(
        v.as_array()
            .expect("array")
            .iter()
            .any(|c| c["check"] == "send-test" && c["status"] == "ok"),
        "{v}"
    );
    assert_eq!(server.log().messages.len(), 1);
    // Without the private CA the certificate fails, and doctor exits with that failure's code.
    env.set_config(&toml(
        env.dir.path(),
        "",
        &starttls(&server, None, Some(&pw)),
    ));
    let a = env.cmd().arg("doctor").assert();
    expect_code(&a, 69);
    assert!(stdout(&a).contains("fail  smtp"), "{}", stdout(&a));
}

/// A relay that takes two connections per client (Postfix's smtpd_client_connection_count_limit,
/// Microsoft 365): the pool shrinks to what works, every message goes out, and the summary says
/// so. Before, the refused connections tripped the "whole server is failing" stop.
#[test]
fn a_per_client_connection_limit_shrinks_the_pool_and_everything_is_sent() {
    let server = Server::start(Options {
        max_connections: Some(2),
        ..Options::default()
    });
    let env = Env::with_toml(|dir| toml(dir, "", ""));
    env.set_config(&toml(
        env.dir.path(),
        "",
        &format!("{}\nconnections = 4", plain(&server)),
    ));
    env.init();
    add_users(&env, 200);
    let a = env.cmd().args(["request", "--all"]).assert();
    expect_code(&a, 0);
    let err = stderr(&a);
    assert!(err.contains("requested 200: 200 sent"), "{err}");
    // Two, unless a worker happened to reuse a pooled connection instead of opening one.
    assert!(
        err.contains("the relay accepted 2 connections of 4")
            || err.contains("the relay accepted 3 connections of 4"),
        "{err}"
    );
    let log = server.log();
    assert_eq!(log.messages.len(), 200);
    assert!(log.refused_connections >= 1, "the limit was never hit");
    assert_eq!(
        env.i64("SELECT count(*) FROM pwreset_tokens WHERE revoked_at IS NOT NULL"),
        0
    );
}
