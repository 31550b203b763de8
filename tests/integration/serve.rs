//! Integration tests for `pwreset serve`: the real binary on a loopback socket (passed the way
//! systemd passes it, LISTEN_FDS), driven over HTTP/1.1 by a tiny client: every status, the
//! headers, CSRF, GET never spending anything, a race of POSTs, the forgot page, SIGTERM.

use crate::harness::{BIN, Env, default_toml};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

pub const EMAIL: &str = "alice@example.com";
pub const GOOD: &str = "correct horse battery staple";

/// A running `pwreset serve`, killed on drop.
pub struct Server {
    pub env: Env,
    pub addr: SocketAddr,
    child: Option<Child>,
    log: std::path::PathBuf,
}

/// The harness config plus base_url on this server's port and `extra` (a `[serve]` section...).
pub fn serve_toml(dir: &Path, port: u16, extra: &str) -> String {
    default_toml(dir).replace(
        "base_url = \"https://accounts.example.com/reset_password\"",
        &format!("base_url = \"http://127.0.0.1:{port}/reset_password\""),
    ) + extra
}

impl Server {
    /// Initialise an installation with one user and serve it; `extra` is appended to the
    /// config.
    pub fn start(extra: &str) -> Server {
        Server::start_with(|dir, port| serve_toml(dir, port, extra))
    }

    /// Like [`Server::start`], with the whole config made by `toml(dir, port)`.
    pub fn start_with(toml: impl FnOnce(&Path, u16) -> String) -> Server {
        Server::start_full(toml, "", &[])
    }

    /// Like [`Server::start_with`], adding `users` to pwreset's own table (none when the
    /// users live elsewhere, in a directory).
    #[cfg_attr(not(feature = "ldap"), allow(dead_code))]
    pub fn start_users(toml: impl FnOnce(&Path, u16) -> String, users: &[&str]) -> Server {
        Server::start_all(toml, "", &[], users)
    }

    /// Like [`Server::start_with`], with shell commands run first (`ulimit -n 128;`) and
    /// arguments after `serve`.
    pub fn start_full(
        toml: impl FnOnce(&Path, u16) -> String,
        shell: &str,
        args: &[&str],
    ) -> Server {
        Server::start_all(toml, shell, args, &[EMAIL])
    }

    fn start_all(
        toml: impl FnOnce(&Path, u16) -> String,
        shell: &str,
        args: &[&str],
        users: &[&str],
    ) -> Server {
        // The listening socket is made here and handed over as systemd does (fd 3, LISTEN_FDS,
        // LISTEN_PID), so there is no window in which another test could take the port.
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let addr = listener.local_addr().expect("local addr");
        let env = Env::with_toml(|dir| toml(dir, addr.port()));
        env.init();
        for u in users {
            env.add_user(u);
        }
        let log = env.dir.path().join("serve.log");
        let child = spawn(&env, listener, &log, shell, args);
        let s = Server {
            env,
            addr,
            child: Some(child),
            log,
        };
        wait_ready(&s.log);
        s
    }

    /// One more `serve` process on the same config and database, on a port of its own (as
    /// behind a load balancer).
    pub fn another(&self) -> Instance {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let addr = listener.local_addr().expect("local addr");
        let log = self
            .env
            .dir
            .path()
            .join(format!("serve-{}.log", addr.port()));
        let child = spawn(&self.env, listener, &log, "", &[]);
        wait_ready(&log);
        Instance { addr, child }
    }

    /// `n` more instances like [`Server::another`], started all at once: each is waited for
    /// only once every one has been spawned.
    pub fn others(&self, n: usize) -> Vec<Instance> {
        let started: Vec<_> = (0..n)
            .map(|_| {
                let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
                let addr = listener.local_addr().expect("local addr");
                let log = self
                    .env
                    .dir
                    .path()
                    .join(format!("serve-{}.log", addr.port()));
                let child = spawn(&self.env, listener, &log, "", &[]);
                (Instance { addr, child }, log)
            })
            .collect();
        started
            .into_iter()
            .map(|(instance, log)| {
                wait_ready(&log);
                instance
            })
            .collect()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn get(&self, path: &str) -> Resp {
        http(self.addr, "GET", path, &[], "")
    }

    pub fn post(&self, path: &str, headers: &[(&str, &str)], fields: &[(&str, &str)]) -> Resp {
        post_to(self.addr, path, headers, fields)
    }

    /// A fresh link's path and query (`/reset_password?token=...`) and its token.
    pub fn link(&self) -> (String, String) {
        let link = self.env.link(EMAIL);
        let token = Env::token_of(&link);
        let path = link
            .split_once(&self.addr.to_string())
            .expect("the link is on this server")
            .1
            .to_owned();
        (path, token)
    }

    /// SIGTERM, then the exit status.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        let ok = std::process::Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(ok.success());
        child.wait().expect("wait for serve")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Start `pwreset serve` on `listener`, passed as systemd does, its stderr to `log`.
fn spawn(env: &Env, listener: TcpListener, log: &Path, shell: &str, args: &[&str]) -> Child {
    let mut c = env.isolated("sh");
    c.arg("-c")
        .arg(format!(
            "{shell} export LISTEN_PID=$$ LISTEN_FDS=1; exec \"$0\" \"$@\" 3<&0 0</dev/null"
        ))
        .arg(BIN)
        .arg("--config")
        .arg(&env.config)
        .arg("serve")
        .args(args)
        .stdin(Stdio::from(std::os::fd::OwnedFd::from(listener)))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).expect("log file"));
    c.spawn().expect("start pwreset serve")
}

fn wait_ready(log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let read = || std::fs::read_to_string(log).unwrap_or_default();
    while Instant::now() < deadline {
        if read().contains("listening on") {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("serve did not start: {}", read());
}

/// A second `serve` on a [`Server`]'s database ([`Server::another`]), killed on drop.
pub struct Instance {
    pub addr: SocketAddr,
    child: Child,
}

impl Instance {
    pub fn get(&self, path: &str, headers: &[(&str, &str)]) -> Resp {
        http(self.addr, "GET", path, headers, "")
    }

    pub fn post(&self, path: &str, headers: &[(&str, &str)], fields: &[(&str, &str)]) -> Resp {
        post_to(self.addr, path, headers, fields)
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A form POST on its own connection.
pub fn post_to(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
    fields: &[(&str, &str)],
) -> Resp {
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(fields)
        .finish();
    let mut h = vec![("Content-Type", "application/x-www-form-urlencoded")];
    h.extend_from_slice(headers);
    http(addr, "POST", path, &h, &body)
}

/// A response, headers with lower-case names.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The `name=value` of the cookie the response sets, for the next request's Cookie.
    pub fn cookie(&self) -> String {
        self.header("set-cookie")
            .and_then(|c| c.split(';').next())
            .unwrap_or_else(|| panic!("no Set-Cookie in {:?}", self.headers))
            .to_owned()
    }

    /// The value of a hidden field in the page's form.
    pub fn field(&self, name: &str) -> String {
        let marker = format!("name=\"{name}\" value=\"");
        let start = self
            .body
            .find(&marker)
            .unwrap_or_else(|| panic!("no field {name} in {}", self.body))
            + marker.len();
        let end = self.body[start..].find('"').expect("closing quote") + start;
        self.body[start..end].to_owned()
    }
}

/// One HTTP/1.1 request on its own connection.
pub fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Resp {
    let mut s = TcpStream::connect(addr).expect("connect to serve");
    s.set_read_timeout(Some(Duration::from_secs(60)))
        .expect("timeout");
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if method == "POST" {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).expect("send request");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read response");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Resp {
        status,
        headers,
        body: body.to_owned(),
    }
}

pub fn verify_status(env: &Env, token: &str) -> String {
    let out = env
        .cmd()
        .args(["verify", "--json", token])
        .output()
        .expect("run verify");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    v["status"].as_str().expect("status").to_owned()
}

pub fn reset_fields<'a>(
    token: &'a str,
    csrf: &'a str,
    pw: &'a str,
    confirm: &'a str,
) -> Vec<(&'a str, &'a str)> {
    vec![
        ("token", token),
        ("csrf", csrf),
        ("password", pw),
        ("confirm", confirm),
    ]
}

#[test]
fn serve_get_shows_the_form_and_never_spends_the_token() {
    let s = Server::start("");
    let (path, token) = s.link();
    let audit_before = s.env.i64("SELECT count(*) FROM pwreset_audit");
    for _ in 0..3 {
        let r = s.get(&path);
        assert_eq!(r.status, 200, "{}", r.body);
        assert!(
            r.body.contains("autocomplete=\"new-password\""),
            "{}",
            r.body
        );
        assert!(r.body.contains("<label for=\"password\">"), "{}", r.body);
        assert!(
            r.body.contains("at least 12 characters"),
            "rules before typing: {}",
            r.body
        );
        assert_eq!(
            r.header("content-security-policy"),
            Some(
                "default-src 'none'; style-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
            )
        );
        assert_eq!(r.header("referrer-policy"), Some("same-origin"));
        assert_eq!(r.header("cache-control"), Some("no-store"));
        assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
        assert_eq!(
            r.header("strict-transport-security"),
            None,
            "plain http, no proxy"
        );
        assert!(!r.body.contains("<script"), "no script: {}", r.body);
    }
    let head = http(s.addr, "HEAD", &path, &[], "");
    assert_eq!(head.status, 200);
    assert_eq!(verify_status(&s.env, &token), "valid");
    assert_eq!(
        s.env.i64("SELECT count(*) FROM pwreset_audit"),
        audit_before,
        "GET and HEAD write nothing"
    );
    // The stylesheet the pages link to, the health check, and an unknown page.
    let css = s.get("/reset_password/pwreset.css");
    assert_eq!(css.status, 200);
    assert!(
        css.header("content-type")
            .is_some_and(|t| t.starts_with("text/css"))
    );
    assert_eq!(s.get("/healthz").status, 200);
    assert_eq!(s.get("/nothing-here").status, 404);
    // One line per request on stderr, never the token.
    let log = s.log();
    assert!(log.contains("GET /reset_password 200"), "{log}");
    assert!(log.contains("HEAD /reset_password 200"), "{log}");
    assert!(!log.contains(&token), "the token must not be logged: {log}");
}

#[test]
fn serve_statuses_for_unusable_links() {
    let s = Server::start("");
    assert_eq!(s.get("/reset_password").status, 400, "no token");
    assert_eq!(s.get("/reset_password?token=pwr_nonsense").status, 400);
    let (path, token) = s.link();
    let mut typo = token.clone();
    let last = if typo.ends_with('A') { "B" } else { "A" };
    typo.replace_range(typo.len() - 1.., last);
    assert_eq!(s.get(&format!("/reset_password?token={typo}")).status, 400);
    // Superseded by a newer link: revoked.
    let (newer, newer_token) = s.link();
    let r = s.get(&path);
    assert_eq!(r.status, 410, "{}", r.body);
    assert!(r.body.contains("href=\"/forgot_password\""), "{}", r.body);
    // Expired.
    s.env.exec(
        "UPDATE pwreset_tokens SET expires_at = 1 WHERE used_at IS NULL AND revoked_at IS NULL",
    );
    let r = s.get(&newer);
    assert_eq!(r.status, 410);
    assert!(r.body.contains("expired"), "{}", r.body);
    // Gone from the database: unknown.
    s.env.exec("DELETE FROM pwreset_tokens");
    let r = s.get(&newer);
    assert_eq!(r.status, 404, "{}", r.body);
    assert_eq!(verify_status(&s.env, &newer_token), "unknown");
}

/// A GET writes nothing, not even the revocation a lookup finds when the account changed
/// behind pwreset's back (`verify` stores that; a mail scanner's fetch must not).
#[test]
fn serve_get_of_a_link_whose_account_changed_writes_nothing() {
    let s = Server::start("");
    let (path, _token) = s.link();
    s.env
        .exec("UPDATE users SET password_hash = 'changed by the application'");
    let r = s.get(&path);
    assert_eq!(r.status, 410, "{}", r.body);
    assert_eq!(
        s.env
            .i64("SELECT count(*) FROM pwreset_tokens WHERE revoked_at IS NOT NULL"),
        0
    );
}

#[test]
fn serve_post_sets_the_password_through_the_reset_service() {
    let s = Server::start("");
    let (path, token) = s.link();
    let form = s.get(&path);
    let csrf = form.field("csrf");
    assert_eq!(form.field("token"), token, "the form carries the token");

    // CSRF: missing, for another token, or from another site.
    let r = s.post(
        "/reset_password",
        &[],
        &reset_fields(&token, "", GOOD, GOOD),
    );
    assert_eq!(r.status, 403);
    // A newer link (it supersedes the first) with its own form.
    let (path, token) = s.link();
    let csrf_other_token = csrf;
    let csrf = s.get(&path).field("csrf");
    let r = s.post(
        "/reset_password",
        &[],
        &reset_fields(&token, &csrf_other_token, GOOD, GOOD),
    );
    assert_eq!(r.status, 403, "a CSRF token is bound to its link");
    let r = s.post(
        "/reset_password",
        &[("Sec-Fetch-Site", "cross-site")],
        &reset_fields(&token, &csrf, GOOD, GOOD),
    );
    assert_eq!(r.status, 403);
    let r = s.post(
        "/reset_password",
        &[("Origin", "https://evil.example")],
        &reset_fields(&token, &csrf, GOOD, GOOD),
    );
    assert_eq!(r.status, 403);

    // Refused by the policy, and mismatched: 422, the form again, the link still usable.
    let r = s.post(
        "/reset_password",
        &[],
        &reset_fields(&token, &csrf, "short", "short"),
    );
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(r.body.contains("too short"), "{}", r.body);
    assert!(r.body.contains("role=\"alert\""), "{}", r.body);
    let r = s.post(
        "/reset_password",
        &[],
        &reset_fields(&token, &csrf, GOOD, "correct horse battery stapler"),
    );
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(r.body.contains("not the same"), "{}", r.body);
    assert_eq!(verify_status(&s.env, &token), "valid");

    // An opaque origin (a sandboxed frame, a data: URL) is refused; the pages' Referrer-Policy
    // (same-origin) makes browsers send the real one.
    let r = s.post(
        "/reset_password",
        &[("Origin", "null"), ("Sec-Fetch-Site", "same-origin")],
        &reset_fields(&token, &csrf, GOOD, GOOD),
    );
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(verify_status(&s.env, &token), "valid");

    // The real thing: 303 to the result page, password stored as argon2id, token spent.
    let origin = format!("http://{}", s.addr);
    let r = s.post(
        "/reset_password",
        &[
            ("Origin", origin.as_str()),
            ("Sec-Fetch-Site", "same-origin"),
        ],
        &reset_fields(&token, &csrf, GOOD, GOOD),
    );
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(r.header("location"), Some("/reset_password?changed=1"));
    assert!(!r.header("location").is_some_and(|l| l.contains("pwr_")));
    let done = s.get("/reset_password?changed=1");
    assert_eq!(done.status, 200);
    assert!(done.body.contains("password was changed"), "{}", done.body);
    let hash = s
        .env
        .text("SELECT password_hash FROM users WHERE email = 'alice@example.com'")
        .expect("a password is set");
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    assert_eq!(verify_status(&s.env, &token), "used");
    assert_eq!(s.get(&path).status, 410);
    let r = s.post(
        "/reset_password",
        &[],
        &reset_fields(&token, &csrf, GOOD, GOOD),
    );
    assert_eq!(r.status, 410);
    // The audit trail names the web client; the "changed" notice goes out after the answer.
    let actors = s
        .env
        .rows("SELECT actor, action, outcome FROM pwreset_audit WHERE actor LIKE 'web %'");
    assert!(
        actors
            .iter()
            .any(|r| r[0].as_deref() == Some("web 127.0.0.1")
                && r[1].as_deref() == Some("reset")
                && r[2].as_deref() == Some("ok")),
        "{actors:?}"
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while !s.env.messages().iter().any(|m| m.contains("changed")) {
        assert!(Instant::now() < deadline, "no notice in the outbox");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!s.log().contains(&token), "the token must not be logged");
    assert!(!s.log().contains(GOOD), "the password must not be logged");
}

#[test]
fn serve_limits_failed_tries_per_token() {
    let s = Server::start("[serve]\ntoken_attempts = 3\n");
    let (path, token) = s.link();
    let csrf = s.get(&path).field("csrf");
    for _ in 0..3 {
        let r = s.post(
            "/reset_password",
            &[],
            &reset_fields(&token, &csrf, "short", "short"),
        );
        assert_eq!(r.status, 422);
    }
    let r = s.post(
        "/reset_password",
        &[],
        &reset_fields(&token, &csrf, GOOD, GOOD),
    );
    assert_eq!(r.status, 429, "{}", r.body);
    let wait: u64 = r
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .expect("Retry-After in seconds");
    assert!(wait > 0 && wait <= 15 * 60, "{wait}");
    assert_eq!(
        verify_status(&s.env, &token),
        "valid",
        "429 changes nothing"
    );
}

#[test]
fn serve_limits_posts_per_client_address() {
    let s = Server::start("[serve]\nip_attempts = 2\n");
    let (path, token) = s.link();
    let csrf = s.get(&path).field("csrf");
    for _ in 0..2 {
        let r = s.post(
            "/reset_password",
            &[],
            &reset_fields(&token, "bad", GOOD, GOOD),
        );
        assert_eq!(r.status, 403);
    }
    let r = s.post(
        "/reset_password",
        &[],
        &reset_fields(&token, &csrf, GOOD, GOOD),
    );
    assert_eq!(r.status, 429);
    assert!(r.header("retry-after").is_some());
}

#[test]
fn serve_eight_concurrent_posts_with_one_token_exactly_one_wins() {
    let s = Server::start("");
    let (path, token) = s.link();
    let csrf = s.get(&path).field("csrf");
    let addr = s.addr;
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(8));
    let handles: Vec<_> = (0..8)
        .map(|i| {
            let (token, csrf, barrier) = (token.clone(), csrf.clone(), barrier.clone());
            std::thread::spawn(move || {
                let pw = format!("{GOOD} number {i}");
                let body = url::form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(reset_fields(&token, &csrf, &pw, &pw))
                    .finish();
                barrier.wait();
                http(
                    addr,
                    "POST",
                    "/reset_password",
                    &[("Content-Type", "application/x-www-form-urlencoded")],
                    &body,
                )
                .status
            })
        })
        .collect();
    let statuses: Vec<u16> = handles
        .into_iter()
        .map(|h| h.join().expect("thread"))
        .collect();
    assert_eq!(
        statuses.iter().filter(|&&c| c == 303).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|&c| c == 303 || c == 410),
        "the losers see the spent link: {statuses:?}"
    );
    assert_eq!(
        s.env
            .i64("SELECT count(*) FROM pwreset_audit WHERE action = 'reset' AND outcome = 'ok'"),
        1
    );
}

#[test]
fn serve_full_hash_queue_answers_503() {
    // One hashing thread, no queue, and a slow hash: concurrent resets beyond the first are
    // turned away at once instead of waiting in memory.
    let s = Server::start_with(|dir, port| {
        serve_toml(dir, port, "[serve]\nhash_workers = 1\nhash_queue = 0\n").replace(
            "memory_kib = 8192\niterations = 1",
            "memory_kib = 65536\niterations = 4",
        )
    });
    let mut links = Vec::new();
    for i in 0..6 {
        let email = format!("user{i}@example.com");
        s.env.add_user(&email);
        let link = s.env.link(&email);
        let token = Env::token_of(&link);
        let csrf = s
            .get(&format!("/reset_password?token={token}"))
            .field("csrf");
        links.push((token, csrf));
    }
    let addr = s.addr;
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(links.len()));
    let handles: Vec<_> = links
        .into_iter()
        .map(|(token, csrf)| {
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                let body = url::form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(reset_fields(&token, &csrf, GOOD, GOOD))
                    .finish();
                barrier.wait();
                http(
                    addr,
                    "POST",
                    "/reset_password",
                    &[("Content-Type", "application/x-www-form-urlencoded")],
                    &body,
                )
            })
        })
        .collect();
    let resps: Vec<Resp> = handles
        .into_iter()
        .map(|h| h.join().expect("thread"))
        .collect();
    let statuses: Vec<u16> = resps.iter().map(|r| r.status).collect();
    assert!(statuses.contains(&303), "{statuses:?}");
    assert!(statuses.contains(&503), "{statuses:?}");
    assert!(
        statuses.iter().all(|&c| c == 303 || c == 503),
        "{statuses:?}"
    );
    for r in resps.iter().filter(|r| r.status == 503) {
        assert!(r.header("retry-after").is_some());
        assert!(r.body.contains("still works"), "{}", r.body);
    }
}

#[test]
fn serve_forgot_page_is_neutral_and_mails_known_addresses() {
    let s = Server::start("");
    let page = s.get("/forgot_password");
    assert_eq!(page.status, 200);
    assert!(page.body.contains("<label for=\"email\">"), "{}", page.body);
    let csrf = page.field("csrf");
    let cookie = page.cookie();
    let set = page.header("set-cookie").expect("a visitor cookie");
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    let c = [("Cookie", cookie.as_str())];
    assert_eq!(
        s.post("/forgot_password", &c, &[("email", EMAIL), ("csrf", "")])
            .status,
        403
    );
    // The CSRF value belongs to the visitor it was issued to: without that cookie, or with
    // another visitor's, it is refused; so is a form posted from an opaque origin.
    assert_eq!(
        s.post(
            "/forgot_password",
            &[],
            &[("email", EMAIL), ("csrf", &csrf)]
        )
        .status,
        403
    );
    let other = s.get("/forgot_password").cookie();
    assert_ne!(other, cookie);
    assert_eq!(
        s.post(
            "/forgot_password",
            &[("Cookie", other.as_str())],
            &[("email", EMAIL), ("csrf", &csrf)]
        )
        .status,
        403
    );
    assert_eq!(
        s.post(
            "/forgot_password",
            &[("Cookie", cookie.as_str()), ("Origin", "null")],
            &[("email", EMAIL), ("csrf", &csrf)]
        )
        .status,
        403
    );
    assert!(s.env.messages().is_empty(), "nothing refused was acted on");
    // With its cookie the same form is accepted, with or without our own Origin.
    let known = s.post(
        "/forgot_password",
        &[
            ("Cookie", cookie.as_str()),
            ("Origin", &format!("http://{}", s.addr)),
        ],
        &[("email", EMAIL), ("csrf", &csrf)],
    );
    let unknown = s.post(
        "/forgot_password",
        &c,
        &[("email", "nobody@example.com"), ("csrf", &csrf)],
    );
    assert_eq!(known.status, 200);
    assert_eq!(unknown.status, 200);
    assert_eq!(known.body, unknown.body, "the same page either way");
    assert!(
        known.body.contains("If an account exists"),
        "{}",
        known.body
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while s.env.messages().is_empty() {
        assert!(Instant::now() < deadline, "no mail for the known address");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
    let mails = s.env.messages();
    assert_eq!(mails.len(), 1, "one mail, to the known address only");
    assert!(mails[0].contains(EMAIL));
    let actors = s
        .env
        .rows("SELECT actor FROM pwreset_audit WHERE action = 'request'");
    assert!(
        actors
            .iter()
            .any(|r| r[0].as_deref() == Some("web 127.0.0.1")),
        "{actors:?}"
    );
    // Not an address: the form again. Too many for one address: 429, known or not.
    let bad = s.post(
        "/forgot_password",
        &c,
        &[("email", "not an address"), ("csrf", &csrf)],
    );
    assert_eq!(bad.status, 422);
    for _ in 0..2 {
        let r = s.post(
            "/forgot_password",
            &c,
            &[("email", "nobody@example.com"), ("csrf", &csrf)],
        );
        assert_eq!(r.status, 200);
    }
    let r = s.post(
        "/forgot_password",
        &c,
        &[("email", "nobody@example.com"), ("csrf", &csrf)],
    );
    assert_eq!(r.status, 429);
}

#[test]
fn serve_believes_forwarded_headers_only_from_trusted_proxies() {
    let s = Server::start("[serve]\ntrusted_proxies = [\"127.0.0.1\"]\n");
    let (path, token) = s.link();
    let fwd = [
        ("X-Forwarded-For", "203.0.113.5"),
        ("X-Forwarded-Proto", "https"),
    ];
    let r = http(s.addr, "GET", &path, &fwd, "");
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("strict-transport-security"),
        Some("max-age=31536000")
    );
    let csrf = r.field("csrf");
    let r = s.post(
        "/reset_password",
        &fwd,
        &reset_fields(&token, &csrf, "short", "short"),
    );
    assert_eq!(r.status, 422);
    let actors = s
        .env
        .rows("SELECT actor FROM pwreset_audit WHERE action = 'reset_failed'");
    assert_eq!(
        actors[0][0].as_deref(),
        Some("web 203.0.113.5"),
        "{actors:?}"
    );
    assert!(
        s.log().contains("203.0.113.5 GET /reset_password 200"),
        "{}",
        s.log()
    );

    let plain = Server::start("");
    let (path, _) = plain.link();
    let r = http(plain.addr, "GET", &path, &fwd, "");
    assert_eq!(
        r.header("strict-transport-security"),
        None,
        "untrusted peer"
    );
}

#[test]
fn serve_finishes_requests_in_flight_on_sigterm_and_exits_0() {
    // A slow hash keeps a reset in flight while SIGTERM arrives.
    let mut s = Server::start_with(|dir, port| {
        serve_toml(dir, port, "").replace(
            "memory_kib = 8192\niterations = 1",
            "memory_kib = 65536\niterations = 10",
        )
    });
    let (path, token) = s.link();
    let csrf = s.get(&path).field("csrf");
    let addr = s.addr;
    let inflight = std::thread::spawn(move || {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(reset_fields(&token, &csrf, GOOD, GOOD))
            .finish();
        http(
            addr,
            "POST",
            "/reset_password",
            &[("Content-Type", "application/x-www-form-urlencoded")],
            &body,
        )
        .status
    });
    // Long enough for the request to reach the hashing thread, well short of the hash.
    std::thread::sleep(Duration::from_millis(200));
    let status = s.stop();
    assert_eq!(status.code(), Some(0), "{}", s.log());
    assert_eq!(inflight.join().expect("thread"), 303, "{}", s.log());
    assert!(s.log().contains("stopped"), "{}", s.log());
}

#[test]
fn serve_listens_on_the_configured_address_without_systemd() {
    let free = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = free.local_addr().expect("addr").port();
    drop(free);
    let env = Env::with_toml(|dir| serve_toml(dir, port, ""));
    env.init();
    let mut child = env
        .std_cmd()
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .stderr(Stdio::piped())
        .spawn()
        .expect("start serve");
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "serve did not listen on {addr}");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(http(addr, "GET", "/healthz", &[], "").status, 200);
    let _ = child.kill();
    let _ = child.wait();

    // A config without base_url cannot serve: 78 before listening.
    let env = Env::with_toml(|dir| {
        default_toml(dir).replace(
            "base_url = \"https://accounts.example.com/reset_password\"\n",
            "",
        )
    });
    env.init();
    env.cmd()
        .args(["serve", "--listen", "127.0.0.1:1"])
        .assert()
        .code(78);
}

/// A GET with an `Accept-Language` header.
#[test]
fn serve_success_page_leads_to_sign_in_and_refusals_speak_plainly() {
    let s = Server::start(
        "\n[serve]\ntoken_attempts = 100\nlogin_url = \"https://app.example.com/login?next=/home\"\n",
    );
    // After a reset, every language offers a button to the application's sign-in page.
    for (lang, sign_in) in [
        ("en", "Sign in"),
        ("de", "Anmelden"),
        ("fr", "Se connecter"),
        ("es", "Iniciar sesión"),
    ] {
        let done = get_in(&s, "/reset_password?changed=1", lang);
        assert_eq!(done.status, 200, "{}", done.body);
        assert_says(
            &done,
            lang,
            &[&format!(
                "<a class=\"button\" href=\"https://app.example.com/login?next=/home\">{sign_in}</a>"
            )],
        );
    }
    // Refusals name no rule ids on the page, in any language; the command line keeps them.
    let (path, token) = s.link();
    for (lang, too_short, too_easy) in [
        (
            "en",
            "It is too short: 5 characters",
            "It is too easy to guess: strength",
        ),
        (
            "de",
            "Es ist zu kurz: 5 Zeichen",
            "Es ist zu leicht zu erraten: Stärke",
        ),
        (
            "fr",
            "Il est trop court\u{a0}: 5 caractères",
            "Il est trop facile à deviner\u{a0}: robustesse",
        ),
        (
            "es",
            "Es demasiado corta: 5 caracteres",
            "Es demasiado fácil de adivinar: solidez",
        ),
    ] {
        for (password, says) in [("short", too_short), ("password1234", too_easy)] {
            let csrf = get_in(&s, &path, lang).field("csrf");
            let r = s.post(
                "/reset_password",
                &[("Accept-Language", lang)],
                &reset_fields(&token, &csrf, password, password),
            );
            assert_eq!(r.status, 422, "{}", r.body);
            assert_says(&r, lang, &[says]);
            for id in ["min_length", "min_strength", "(", ")"] {
                let refusal = r.body.split("role=\"alert\"").nth(1).unwrap_or_default();
                let refusal = refusal.split("</div>").next().unwrap_or_default();
                assert!(!refusal.contains(id), "{lang}: {id:?} in {refusal}");
            }
        }
    }
    let env = &s.env;
    let a = env
        .cmd()
        .args(["reset", "--password-stdin", &token])
        .write_stdin("short\n")
        .assert();
    let err = crate::harness::stderr(&a);
    assert!(err.contains("(min_length)"), "{err}");
    // Without login_url the page still says it is done, with no button.
    let plain = Server::start("");
    let done = plain.get("/reset_password?changed=1");
    assert!(done.body.contains("password was changed"), "{}", done.body);
    assert!(!done.body.contains("class=\"button\""), "{}", done.body);
}

fn get_in(s: &Server, path: &str, accept_language: &str) -> Resp {
    http(
        s.addr,
        "GET",
        path,
        &[("Accept-Language", accept_language)],
        "",
    )
}

/// The page is in `lang`: the html element, the header, and caches told it varies.
fn assert_language(r: &Resp, lang: &str) {
    assert!(
        r.body.contains(&format!("<html lang=\"{lang}\">")),
        "lang=\"{lang}\": {}",
        r.body
    );
    assert_eq!(r.header("content-language"), Some(lang), "{:?}", r.headers);
    assert!(
        r.header("vary")
            .is_some_and(|v| v.to_ascii_lowercase().contains("accept-language")),
        "{:?}",
        r.headers
    );
}

/// The page is in `lang` and says each of `texts`.
fn assert_says(r: &Resp, lang: &str, texts: &[&str]) {
    assert_language(r, lang);
    for t in texts {
        assert!(r.body.contains(t), "{t:?} in {}", r.body);
    }
}

#[test]
fn serve_pages_follow_accept_language() {
    let s = Server::start("");
    let (path, token) = s.link();
    for (accept, lang, heading, rule) in [
        (
            Some("de-DE,de;q=0.9,en;q=0.5"),
            "de",
            "<h1>Neues Passwort festlegen</h1>",
            "ist mindestens 12 Zeichen lang",
        ),
        (
            Some("fr"),
            "fr",
            "<h1>Choisir un nouveau mot de passe</h1>",
            "comporte au moins 12 caractères",
        ),
        (
            Some("es-ES"),
            "es",
            "<h1>Elija una nueva contraseña</h1>",
            "tiene al menos 12 caracteres",
        ),
        (
            Some("ja"),
            "en",
            "<h1>Choose a new password</h1>",
            "is at least 12 characters long",
        ),
        (
            None,
            "en",
            "<h1>Choose a new password</h1>",
            "is at least 12 characters long",
        ),
    ] {
        let r = match accept {
            Some(a) => get_in(&s, &path, a),
            None => s.get(&path),
        };
        assert_eq!(r.status, 200, "{}", r.body);
        assert_says(&r, lang, &[heading, rule]);
    }

    // A policy refusal in German: the rule's sentence, in plain words.
    let csrf = get_in(&s, &path, "de").field("csrf");
    let r = s.post(
        "/reset_password",
        &[("Accept-Language", "de-DE,de;q=0.9,en;q=0.5")],
        &reset_fields(&token, &csrf, "short", "short"),
    );
    assert_eq!(r.status, 422, "{}", r.body);
    assert_says(
        &r,
        "de",
        &[
            "Dieses Passwort kann nicht verwendet werden",
            "Es ist zu kurz: 5 Zeichen, mindestens 12 sind erforderlich",
        ],
    );
    assert!(!r.body.contains("too short"), "{}", r.body);
    assert!(!r.body.contains("min_length"), "{}", r.body);

    // A 410 in German, with its link to the forgot page.
    let (_newer, _) = s.link();
    let r = get_in(&s, &path, "de");
    assert_eq!(r.status, 410, "{}", r.body);
    assert_says(
        &r,
        "de",
        &[
            "<h1>Dieser Link ist nicht mehr gültig</h1>",
            ">Neuen Link anfordern</a>",
        ],
    );

    // The forgot page in French, before and after.
    let page = get_in(&s, "/forgot_password", "fr-CA, en;q=0.1");
    assert_eq!(page.status, 200);
    assert_says(
        &page,
        "fr",
        &[
            "<h1>Mot de passe oublié\u{a0}?</h1>",
            "<label for=\"email\">Adresse e-mail</label>",
        ],
    );
    let csrf = page.field("csrf");
    let cookie = page.cookie();
    let fr = [("Accept-Language", "fr"), ("Cookie", cookie.as_str())];
    let bad = s.post(
        "/forgot_password",
        &fr,
        &[("email", "not an address"), ("csrf", &csrf)],
    );
    assert_eq!(bad.status, 422);
    assert_says(
        &bad,
        "fr",
        &["Veuillez vérifier l’adresse\u{a0}: écrivez-la sous la forme"],
    );
    let sent = s.post(
        "/forgot_password",
        &fr,
        &[("email", EMAIL), ("csrf", &csrf)],
    );
    assert_eq!(sent.status, 200);
    assert_says(&sent, "fr", &["Ce lien expire dans 1 heure"]);

    // The stylesheet and the health check are not pages in a language.
    let css = get_in(&s, "/reset_password/pwreset.css", "de");
    assert_eq!(css.header("content-language"), None);
}

/// The config of [`serve_toml`] with `template_dir` holding `files` under `web/`.
fn with_web_templates(dir: &Path, port: u16, files: &[(&str, &str)]) -> String {
    let templates = dir.join("templates");
    for (name, text) in files {
        let path = templates.join("web").join(name);
        std::fs::create_dir_all(path.parent().expect("a folder")).expect("mkdir");
        std::fs::write(&path, text).expect("write a template");
    }
    serve_toml(dir, port, "").replace(
        "[mail]\n",
        &format!("[mail]\ntemplate_dir = \"{}\"\n", templates.display()),
    )
}

#[test]
fn serve_page_overrides_per_language_then_shared_then_built_in() {
    let ours = "{% extends \"layout.html\" %}{% block content %}<h1 class=\"CLASS\">{{ title }}</h1>{% endblock %}";
    let s = Server::start_with(|dir, port| {
        with_web_templates(
            dir,
            port,
            &[
                (
                    "de/strings.toml",
                    "[form]\ntitle = \"Neues Kennwort wählen\"\n",
                ),
                ("message.html", &ours.replace("CLASS", "shared")),
                ("es/message.html", &ours.replace("CLASS", "es")),
                (
                    "it/strings.toml",
                    "[form]\ntitle = \"Scegli una nuova password\"\n",
                ),
            ],
        )
    });
    let (path, _) = s.link();
    // German: the admin's one key, the built-in German for the rest.
    let de = get_in(&s, &path, "de");
    assert_says(
        &de,
        "de",
        &[
            "<h1>Neues Kennwort wählen</h1>",
            "Neues Passwort wiederholen",
        ],
    );
    // A language folder with a catalogue adds a language; what it leaves out is English.
    let it = get_in(&s, &path, "it-IT, de;q=0.5");
    assert_says(
        &it,
        "it",
        &["<h1>Scegli una nuova password</h1>", "New password again"],
    );
    // web/es/NAME before web/NAME before the built-in one.
    let es = get_in(&s, "/nothing-here", "es");
    assert_says(
        &es,
        "es",
        &["<h1 class=\"es\">Aquí no hay ninguna página</h1>"],
    );
    let fr = get_in(&s, "/nothing-here", "fr");
    assert_says(
        &fr,
        "fr",
        &["<h1 class=\"shared\">Cette page n’existe pas</h1>"],
    );
}

#[test]
fn serve_refuses_a_misspelt_key_or_a_language_without_words() {
    for (files, want) in [
        (
            [("de/strings.toml", "[form]\ntitel = \"x\"\n")],
            "unknown key \"form.titel\"",
        ),
        (
            [("it/form.html", "{{ title }}")],
            "web/it/ has no strings.toml",
        ),
    ] {
        let env = Env::with_toml(|dir| with_web_templates(dir, 1, &files));
        env.init();
        let out = env
            .cmd()
            .args(["serve", "--listen", "127.0.0.1:1"])
            .output()
            .expect("run serve");
        assert_eq!(out.status.code(), Some(78), "{out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(want), "{err}");
    }
}
