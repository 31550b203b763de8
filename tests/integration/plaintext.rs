//! Plaintext means loopback: without TLS pwreset talks only to a loopback address, to
//! `localhost` (every address it resolves to loopback) or to a unix socket, and even there it
//! never hands its password to a server that asks for it in cleartext. The servers here are
//! fakes on 127.0.0.1 that ask exactly that, as a local user who bound the port first would;
//! they need no database server, so these tests run on every backend.

use crate::harness::{Env, stderr};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::thread::JoinHandle;
use std::time::Duration;

/// The database password the fake servers must never see.
const SECRET: &str = "db-password-for-nobody-else";

fn code(a: &assert_cmd::assert::Assert) -> i32 {
    a.get_output().status.code().unwrap_or(-1)
}

/// A config on `database`, with mail to `smtp` (TOML lines of `[mail.smtp]`), if given.
fn env_on(database: &str, smtp: Option<&str>) -> Env {
    let (database, smtp) = (database.to_owned(), smtp.map(str::to_owned));
    Env::with_toml(move |dir| {
        let mail = match &smtp {
            Some(lines) => format!("transport = \"smtp\"\n\n[mail.smtp]\n{lines}\n"),
            None => format!(
                "transport = \"file\"\n\n[mail.file]\ndir = \"{}\"\n",
                dir.join("outbox").display()
            ),
        };
        format!(
            "database = \"{database}\"\nbase_url = \"https://accounts.example.com/reset_password\"\n\n[mail]\nfrom = \"Accounts <no-reply@example.com>\"\n{mail}"
        )
    })
}

/// A one-connection server on 127.0.0.1: `greet` runs on the accepted stream, then everything
/// the client sends until it hangs up is kept and returned with what `greet` read. The read
/// timeout only ends a test that would otherwise wait for ever on a client that answered.
fn fake_server(
    greet: impl FnOnce(&mut std::net::TcpStream) -> Vec<u8> + Send + 'static,
) -> (u16, JoinHandle<Vec<u8>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let handle = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().expect("accept");
        s.set_read_timeout(Some(Duration::from_secs(20)))
            .expect("timeout");
        let mut got = greet(&mut s);
        let mut buf = [0u8; 4096];
        while let Ok(n) = s.read(&mut buf) {
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        got
    });
    (port, handle)
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

/// A fake PostgreSQL server that answers the startup message with `request` (an
/// Authentication message).
fn fake_postgres(request: Vec<u8>) -> (u16, JoinHandle<Vec<u8>>) {
    fake_server(move |s| {
        let mut len = [0u8; 4];
        s.read_exact(&mut len).expect("startup length");
        let mut rest = vec![0u8; (u32::from_be_bytes(len) as usize).saturating_sub(4)];
        s.read_exact(&mut rest).expect("startup message");
        s.write_all(&request).expect("write");
        [len.to_vec(), rest].concat()
    })
}

/// PostgreSQL's Authentication message with `code` and `extra` bytes.
fn pg_auth(code: u32, extra: &[u8]) -> Vec<u8> {
    let mut m = vec![b'R'];
    m.extend(((8 + extra.len()) as u32).to_be_bytes());
    m.extend(code.to_be_bytes());
    m.extend(extra);
    m
}

#[test]
fn postgres_without_tls_never_answers_a_request_for_the_password_in_cleartext_or_md5() {
    for (method, request) in [("cleartext", pg_auth(3, &[])), ("MD5", pg_auth(5, b"salt"))] {
        let (port, server) = fake_postgres(request);
        let env = env_on(
            &format!("postgres://app@127.0.0.1:{port}/app?sslmode=disable"),
            None,
        );
        let a = env
            .cmd()
            .env("PWRESET_DB_PASSWORD", SECRET)
            .arg("init")
            .assert();
        let got = server.join().expect("the fake server");
        assert!(contains(&got, "app"), "pwreset logged in as app: {got:?}");
        assert!(
            !contains(&got, SECRET),
            "{method}: the password reached the server: {got:?}"
        );
        assert_eq!(code(&a), 78, "{method}: {}", stderr(&a));
        let err = stderr(&a);
        assert!(
            err.contains(method) && err.contains("scram-sha-256") && err.contains("TLS"),
            "{err}"
        );
        assert!(!err.contains(SECRET), "{err}");
    }
}

/// MySQL's packet framing: a 3-byte length, a sequence number, the payload.
fn my_packet(seq: u8, payload: &[u8]) -> Vec<u8> {
    let mut p = (payload.len() as u32).to_le_bytes()[..3].to_vec();
    p.push(seq);
    p.extend_from_slice(payload);
    p
}

/// The server's first packet (protocol 10), offering mysql_native_password.
fn my_handshake() -> Vec<u8> {
    // LONG_PASSWORD, LONG_FLAG, CONNECT_WITH_DB, PROTOCOL_41, TRANSACTIONS,
    // SECURE_CONNECTION, MULTI_STATEMENTS, MULTI_RESULTS, PLUGIN_AUTH.
    let caps: u32 = 0x1 | 0x4 | 0x8 | 0x200 | 0x2000 | 0x8000 | 0x1_0000 | 0x2_0000 | 0x8_0000;
    let mut p = vec![10u8];
    p.extend_from_slice(b"8.0.36-fake\0");
    p.extend_from_slice(&7u32.to_le_bytes());
    p.extend_from_slice(b"abcdefgh\0");
    p.extend_from_slice(&(caps as u16).to_le_bytes());
    p.push(45); // utf8mb4_general_ci
    p.extend_from_slice(&2u16.to_le_bytes()); // autocommit
    p.extend_from_slice(&((caps >> 16) as u16).to_le_bytes());
    p.push(21);
    p.extend_from_slice(&[0u8; 10]);
    p.extend_from_slice(b"ijklmnopqrst\0");
    p.extend_from_slice(b"mysql_native_password\0");
    my_packet(0, &p)
}

#[test]
fn mysql_never_sends_the_password_in_cleartext_when_a_server_switches_to_it() {
    let (port, server) = fake_server(|s| {
        s.write_all(&my_handshake()).expect("write");
        let mut head = [0u8; 4];
        s.read_exact(&mut head).expect("response header");
        let len = u32::from_le_bytes([head[0], head[1], head[2], 0]) as usize;
        let mut body = vec![0u8; len];
        s.read_exact(&mut body).expect("handshake response");
        let mut switch = vec![0xfe];
        switch.extend_from_slice(b"mysql_clear_password\0");
        s.write_all(&my_packet(head[3] + 1, &switch))
            .expect("write");
        [head.to_vec(), body].concat()
    });
    let env = env_on(
        &format!("mysql://app@127.0.0.1:{port}/app?ssl-mode=DISABLED"),
        None,
    );
    let a = env
        .cmd()
        .env("PWRESET_DB_PASSWORD", SECRET)
        .arg("init")
        .assert();
    let got = server.join().expect("the fake server");
    assert!(contains(&got, "app"), "pwreset logged in as app: {got:?}");
    assert!(
        !contains(&got, SECRET),
        "the password reached the server: {got:?}"
    );
    assert_eq!(code(&a), 78, "{}", stderr(&a));
    let err = stderr(&a);
    assert!(
        err.contains("mysql_clear_password") && err.contains("sent nothing"),
        "{err}"
    );
    // The way out that docs/security.md gives: the socket or TLS, and ed25519 on MariaDB;
    // never caching_sha2_password, which gives the password to an impostor over plaintext TCP.
    assert!(
        err.contains("unix socket")
            && err.contains("TLS")
            && err.contains("ed25519")
            && !err.contains("caching_sha2_password"),
        "{err}"
    );
}

#[test]
fn names_under_localhost_are_names_and_get_no_plaintext() {
    for database in [
        "postgres://app@db.localhost:5432/app?sslmode=disable",
        "mysql://app@db.localhost:3306/app?ssl-mode=DISABLED",
    ] {
        let env = env_on(database, None);
        let a = env.cmd().args(["user", "list"]).assert();
        assert_eq!(code(&a), 78, "{database}: {}", stderr(&a));
        let err = stderr(&a);
        assert!(
            err.contains("db.localhost") && err.contains("TLS") && err.contains("loopback address"),
            "{err}"
        );
    }
    // The same rule for mail: a relay in clear text only at a loopback address.
    let env = env_on(
        "/nonexistent/pwreset.db",
        Some("host = \"mail.localhost\"\nport = 25\ntls = \"none\""),
    );
    let a = env.cmd().args(["user", "list"]).assert();
    assert_eq!(code(&a), 78, "{}", stderr(&a));
    let err = stderr(&a);
    assert!(
        err.contains("mail.smtp.tls") && err.contains("mail.localhost") && err.contains("TLS"),
        "{err}"
    );
}
