//! `pwreset serve` in production: slow and silent clients are cut off, connections are capped
//! below the open-file limit with the oldest idle ones closed first. Every wait is bounded by
//! short configured timeouts and a read timeout, never by a sleep that waits for a race.

use crate::serve::{GOOD, Server, http, reset_fields, serve_toml};
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// Whether the server closed `s`: EOF or a reset within `within`, with nothing answered.
fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
    s.set_read_timeout(Some(within)).expect("read timeout");
    let mut buf = [0u8; 1024];
    match s.read(&mut buf) {
        Ok(0) => true,
        Ok(n) => panic!(
            "expected the connection to be closed, got {:?}",
            String::from_utf8_lossy(&buf[..n])
        ),
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => false,
        Err(_) => true,
    }
}

/// Send `first`, then `drip` every 200 ms until the server closes the connection; false if it
/// is still open after `tries` drips.
fn dripped_until_closed(s: &mut TcpStream, first: &str, drip: &str, tries: usize) -> bool {
    s.write_all(first.as_bytes()).expect("send the start");
    for _ in 0..tries {
        if closed_within(s, Duration::from_millis(200)) {
            return true;
        }
        if s.write_all(drip.as_bytes()).is_err() {
            return true;
        }
    }
    false
}

#[test]
fn serve_hardening_closes_silent_slow_and_idle_connections() {
    let s = Server::start(
        "[serve]\nheader_timeout = \"1s\"\nbody_timeout = \"1s\"\nidle_timeout = \"1s\"\n",
    );
    // Sends nothing at all.
    let mut silent = TcpStream::connect(s.addr).expect("connect");
    assert!(
        closed_within(&mut silent, Duration::from_secs(20)),
        "a connection that sends nothing is closed"
    );
    // A header line now and then, never the end of the head.
    let mut slow_head = TcpStream::connect(s.addr).expect("connect");
    assert!(
        dripped_until_closed(
            &mut slow_head,
            "GET /healthz HTTP/1.1\r\nHost: x\r\n",
            "X-Drip: 1\r\n",
            100
        ),
        "a head that never ends is cut off"
    );
    // A whole head, then a body a byte at a time.
    let mut slow_body = TcpStream::connect(s.addr).expect("connect");
    assert!(
        dripped_until_closed(
            &mut slow_body,
            "POST /reset_password HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100000\r\n\r\n",
            "a",
            100
        ),
        "a body that never ends is cut off"
    );
    // A kept-alive connection after its answer.
    let mut kept = TcpStream::connect(s.addr).expect("connect");
    kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("send");
    kept.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while !String::from_utf8_lossy(&got).contains("ok\n") {
        let n = kept.read(&mut buf).expect("the answer");
        assert!(n > 0, "closed before answering");
        got.extend_from_slice(&buf[..n]);
    }
    assert!(String::from_utf8_lossy(&got).starts_with("HTTP/1.1 200"));
    assert!(
        closed_within(&mut kept, Duration::from_secs(20)),
        "an idle kept-alive connection is closed"
    );
    // The server still answers, and said what it cut off.
    assert_eq!(s.get("/healthz").status, 200);
    let log = s.log();
    assert!(log.contains("closed: header_timeout"), "{log}");
    assert!(log.contains("closed: body_timeout"), "{log}");
    // The dripped body was never handled: no request line for it.
    assert!(!log.contains("POST /reset_password"), "{log}");
}

#[test]
fn serve_hardening_at_the_cap_the_oldest_idle_connections_go_first() {
    // 128 open files leave room for 64 connections; 150 silent ones must not lock anyone out.
    // The header timeout is long, so only the cap can close them here.
    let s = Server::start_full(
        |dir, port| serve_toml(dir, port, "[serve]\nheader_timeout = \"60s\"\n"),
        "ulimit -n 128;",
        &[],
    );
    let mut silent: Vec<TcpStream> = (0..150)
        .map(|_| TcpStream::connect(s.addr).expect("connect"))
        .collect();
    let r = http(s.addr, "GET", "/healthz", &[], "");
    assert_eq!(r.status, 200, "{}", s.log());
    assert!(
        closed_within(&mut silent[0], Duration::from_secs(20)),
        "the oldest idle connection made room"
    );
    let (path, _) = s.link();
    assert_eq!(s.get(&path).status, 200, "pages work at the cap");
}

#[test]
fn serve_hardening_at_the_cap_with_none_idle_the_oldest_slow_reader_makes_room() {
    // A cap of 8 filled with connections that each sent one byte of a head (slowloris): none
    // is idle, and the header timeout is long, so only closing a reader can let a client in.
    let s = Server::start("[serve]\nmax_connections = 8\nheader_timeout = \"60s\"\n");
    let slow = || {
        let mut c = TcpStream::connect(s.addr).expect("connect");
        c.write_all(b"G").expect("one byte");
        c
    };
    let mut held: Vec<TcpStream> = (0..8).map(|_| slow()).collect();
    // Until the server has read a connection's byte, that connection counts as idle and is
    // closed first; so repeat, refilling the cap, until a reader was the one closed. Without
    // that rule the first request made once every byte was read would go unanswered.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let r = http(s.addr, "GET", "/healthz", &[], "");
        assert_eq!(r.status, 200, "{}", s.log());
        if s.log().contains("closed: evicted_reading") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no reader was closed to make room: {}",
            s.log()
        );
        held.push(slow());
    }
    let (path, _) = s.link();
    assert_eq!(s.get(&path).status, 200, "pages work at the cap");
}

#[test]
fn serve_hardening_refuses_a_cap_above_the_file_limit() {
    let s = crate::harness::Env::with_toml(|dir| {
        serve_toml(dir, 1, "[serve]\nmax_connections = 1000\n")
    });
    s.init();
    let out = s
        .isolated("sh")
        .arg("-c")
        .arg("ulimit -n 256; exec \"$0\" \"$@\"")
        .arg(crate::harness::BIN)
        .arg("--config")
        .arg(&s.config)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .output()
        .expect("run serve");
    assert_eq!(out.status.code(), Some(78));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("serve.max_connections = 1000")
            && err.contains("open-file limit")
            && err.contains("LimitNOFILE"),
        "{err}"
    );
}

#[test]
fn serve_hardening_a_flood_of_addresses_leaves_room_for_a_fresh_client() {
    // A small table stands in for the default 100,000 (the unit test floods that one with
    // 130,000 keys): 1,300 addresses through a trusted proxy overflow 1,000 entries.
    let s = Server::start(
        "[serve]\ntrusted_proxies = [\"127.0.0.1\"]\nip_attempts = 2\nlimit_table_size = 1000\n",
    );
    let (path, token) = s.link();
    let csrf = s.get(&path).field("csrf");
    let post_from = |ip: &str, fields: &[(&str, &str)]| {
        s.post("/reset_password", &[("X-Forwarded-For", ip)], fields)
            .status
    };
    // Someone at their limit before the flood.
    for _ in 0..2 {
        assert_eq!(post_from("198.51.100.1", &[]), 400);
    }
    assert_eq!(post_from("198.51.100.1", &[]), 429);
    for i in 0..1300u32 {
        let ip = format!("10.{}.{}.{}", (i >> 16) & 255, (i >> 8) & 255, i & 255);
        assert_eq!(post_from(&ip, &[]), 400, "flood address {ip}");
    }
    assert_eq!(
        post_from("203.0.113.50", &reset_fields(&token, &csrf, GOOD, GOOD)),
        303,
        "a fresh client resets after the flood"
    );
    assert_eq!(
        post_from("198.51.100.1", &[]),
        429,
        "the address at its limit is still held"
    );
    // IPv6 counts by /64: two addresses of one network share a count.
    assert_eq!(post_from("2001:db8:5:6::1", &[]), 400);
    assert_eq!(post_from("2001:db8:5:6:ffff::2", &[]), 400);
    assert_eq!(post_from("2001:db8:5:6:1:2:3:4", &[]), 429);
    assert_eq!(post_from("2001:db8:5:7::1", &[]), 400);
}

/// `pwreset serve ARGS` in `env`, with `fd` handed over as systemd hands its socket (fd 3,
/// LISTEN_FDS), or none; stderr into a log file. Returns once it says it is listening.
fn spawn(
    env: &crate::harness::Env,
    fd: Option<std::os::fd::OwnedFd>,
    args: &[&str],
) -> (std::process::Child, std::path::PathBuf) {
    use std::process::Stdio;
    let log = env.dir.path().join(format!(
        "serve-{}.log",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("time")
            .as_nanos()
    ));
    let mut c = env.isolated("sh");
    c.arg("-c");
    match fd {
        Some(fd) => {
            c.arg("export LISTEN_PID=$$ LISTEN_FDS=1; exec \"$0\" \"$@\" 3<&0 0</dev/null")
                .stdin(Stdio::from(fd));
        }
        None => {
            c.arg("exec \"$0\" \"$@\"").stdin(Stdio::null());
        }
    }
    c.arg(crate::harness::BIN)
        .arg("--config")
        .arg(&env.config)
        .arg("serve")
        .args(args)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log file"));
    let mut child = c.spawn().expect("start serve");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("listening on") {
            break;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("serve exited with {status}: {text}");
        }
        assert!(
            std::time::Instant::now() < deadline,
            "serve did not start: {text}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    (child, log)
}

/// One request over a Unix socket; the whole answer.
fn unix_get(path: &std::path::Path, target: &str, headers: &str) -> String {
    let mut s = std::os::unix::net::UnixStream::connect(path).expect("connect to the socket");
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    write!(
        s,
        "GET {target} HTTP/1.1\r\nHost: accounts.example.com\r\nConnection: close\r\n{headers}\r\n"
    )
    .expect("send");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read the answer");
    out
}

#[test]
fn serve_hardening_listens_on_a_unix_socket_with_its_mode() {
    use std::os::unix::fs::PermissionsExt;
    let env = crate::harness::Env::with_toml(|dir| {
        serve_toml(dir, 8080, "[serve]\nsocket_mode = \"0600\"\n")
    });
    env.init();
    let sock = env.dir.path().join("serve.sock");
    // A socket file left behind by a run that died is taken over.
    drop(std::os::unix::net::UnixListener::bind(&sock).expect("a stale socket"));
    let listen = format!("unix:{}", sock.display());
    let (mut child, log) = spawn(&env, None, &["--listen", &listen]);
    let mode = std::fs::metadata(&sock)
        .expect("the socket")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    // The proxy on the socket is believed: its X-Forwarded-For is the client.
    let r = unix_get(&sock, "/healthz", "X-Forwarded-For: 203.0.113.9\r\n");
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(text.contains(&format!("listening on {listen}")), "{text}");
    assert!(text.contains("203.0.113.9 GET /healthz 200"), "{text}");
    // Another server on the same socket: refused while this one answers.
    env.cmd()
        .args(["serve", "--listen", &listen])
        .assert()
        .code(74)
        .stderr(predicates::str::contains("another server is listening"));
    let ok = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(ok.success());
    assert_eq!(child.wait().expect("wait").code(), Some(0));
    assert!(!sock.exists(), "the socket is removed on stop");
    // Not a socket: left alone, and said so.
    std::fs::write(&sock, "data").expect("a plain file");
    env.cmd()
        .args(["serve", "--listen", &listen])
        .assert()
        .code(73)
        .stderr(predicates::str::contains("is not a socket"));
    assert_eq!(std::fs::read_to_string(&sock).expect("kept"), "data");
    // A bad address is a usage error.
    env.cmd()
        .args(["serve", "--listen", "unix:relative.sock"])
        .assert()
        .code(2);
}

#[test]
fn serve_hardening_takes_a_unix_socket_from_systemd() {
    let env = crate::harness::Env::with_toml(|dir| serve_toml(dir, 8080, ""));
    env.init();
    let sock = env.dir.path().join("activated.sock");
    let l = std::os::unix::net::UnixListener::bind(&sock).expect("bind");
    let (mut child, _log) = spawn(&env, Some(std::os::fd::OwnedFd::from(l)), &[]);
    let r = unix_get(&sock, "/healthz", "");
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    let _ = child.kill();
    let _ = child.wait();
}

/// The log's lines as JSON objects; every line must be one.
fn json_lines(log: &str) -> Vec<serde_json::Value> {
    log.lines()
        .map(|l| {
            let v: serde_json::Value =
                serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l:?}"));
            assert!(v["time"].is_string(), "{l}");
            v
        })
        .collect()
}

#[test]
fn serve_hardening_logs_one_json_object_a_line_without_secrets() {
    let s = Server::start_full(
        |dir, port| serve_toml(dir, port, ""),
        "",
        &["--log-format", "json"],
    );
    let (path, token) = s.link();
    let csrf = s.get(&path).field("csrf");
    let refused = s.post(
        "/reset_password",
        &[],
        &reset_fields(&token, &csrf, "tiny pw", "tiny pw"),
    );
    assert_eq!(refused.status, 422);
    let done = s.post(
        "/reset_password",
        &[],
        &reset_fields(&token, &csrf, GOOD, GOOD),
    );
    assert_eq!(done.status, 303);
    assert_eq!(s.get(&format!("/x/{token}")).status, 404);
    let log = s.log();
    assert!(!log.contains(&token), "no token in the log: {log}");
    assert!(!log.contains(GOOD), "no password in the log");
    assert!(!log.contains("tiny pw"), "no password in the log");
    let lines = json_lines(&log);
    let find = |method: &str, status: u64| {
        lines
            .iter()
            .find(|v| v["method"] == method && v["status"] == status)
            .unwrap_or_else(|| panic!("no {method} {status} in {log}"))
            .clone()
    };
    let form = find("GET", 200);
    assert_eq!(form["path"], "/reset_password");
    assert_eq!(form["outcome"], "form");
    assert_eq!(form["client"], "127.0.0.1");
    assert!(form["duration_ms"].is_number());
    assert_eq!(find("POST", 422)["outcome"], "password_refused");
    assert_eq!(find("POST", 303)["outcome"], "changed");
    assert_eq!(find("GET", 404)["path"], "/x/(token)");

    // The same from the config file.
    let c = Server::start("[serve]\nlog_format = \"json\"\n");
    assert_eq!(c.get("/healthz").status, 200);
    let lines = json_lines(&c.log());
    assert!(
        lines
            .iter()
            .any(|v| v["path"] == "/healthz" && v["outcome"] == "ok"),
        "{lines:?}"
    );
}

#[test]
fn serve_hardening_metrics_count_requests_resets_and_forgot_requests() {
    let s = Server::start("");
    let (path, token) = s.link();
    let csrf = s.get(&path).field("csrf");
    let r = s.post(
        "/reset_password",
        &[],
        &reset_fields(&token, &csrf, "tiny pw", "other pw"),
    );
    assert_eq!(r.status, 422);
    let r = s.post(
        "/reset_password",
        &[],
        &reset_fields(&token, &csrf, GOOD, GOOD),
    );
    assert_eq!(r.status, 303);
    let page = s.get("/forgot_password");
    let cookie = page.cookie();
    let r = s.post(
        "/forgot_password",
        &[("Cookie", cookie.as_str())],
        &[
            ("email", crate::serve::EMAIL),
            ("csrf", &page.field("csrf")),
        ],
    );
    assert_eq!(r.status, 200);
    let m = s.get("/metrics");
    assert_eq!(m.status, 200);
    assert!(
        m.header("content-type")
            .is_some_and(|t| t.starts_with("text/plain; version=0.0.4")),
        "{:?}",
        m.headers
    );
    for want in [
        "pwreset_http_requests_total{route=\"reset\",method=\"GET\",status=\"200\"} 1",
        "pwreset_http_requests_total{route=\"reset\",method=\"POST\",status=\"303\"} 1",
        "pwreset_resets_done_total 1",
        "pwreset_resets_refused_total{reason=\"mismatch\"} 1",
        "pwreset_forgot_requests_total{outcome=\"accepted\"} 1",
        "pwreset_http_request_duration_seconds_count{route=\"reset\"} 3",
        "pwreset_pool_queued{pool=\"hash\"}",
        "pwreset_pool_wait_seconds_count{pool=\"hash\"} 2",
        "pwreset_database_errors_total 0",
        "pwreset_connections_open ",
    ] {
        assert!(m.body.contains(want), "{want} in\n{}", m.body);
    }
    for secret in [token.as_str(), "127.0.0.1", crate::serve::EMAIL, "alice"] {
        assert!(!m.body.contains(secret), "{secret} in /metrics");
    }
}

/// A TCP forwarder on loopback that the test can take down (every connection cut, new ones
/// closed at once) and bring back, standing for a database server that goes away; or stall
/// (every socket kept open, new ones accepted, nothing forwarded either way) and resume,
/// standing for a network partition, where the server neither answers nor refuses.
struct Proxy {
    port: u16,
    up: std::sync::Arc<std::sync::atomic::AtomicBool>,
    open: std::sync::Arc<std::sync::Mutex<Vec<TcpStream>>>,
    stalled: std::sync::Arc<(std::sync::Mutex<bool>, std::sync::Condvar)>,
}

/// Copy `from` to `to` until either closes, holding each chunk while the proxy is stalled.
fn forward(
    mut from: TcpStream,
    mut to: TcpStream,
    stalled: &(std::sync::Mutex<bool>, std::sync::Condvar),
) {
    let mut buf = [0u8; 16384];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let (lock, resumed) = stalled;
        let mut held = lock.lock().expect("lock");
        while *held {
            held = resumed.wait(held).expect("wait");
        }
        drop(held);
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Both);
}

impl Proxy {
    fn start(target: String) -> Proxy {
        use std::sync::atomic::Ordering;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let port = listener.local_addr().expect("addr").port();
        let up = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let open = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let stalled =
            std::sync::Arc::new((std::sync::Mutex::new(false), std::sync::Condvar::new()));
        let (up2, open2, stalled2) = (up.clone(), open.clone(), stalled.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                if !up2.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let Ok(server) = TcpStream::connect(&target) else {
                    continue;
                };
                let mut held = open2.lock().expect("lock");
                for s in [&client, &server] {
                    held.push(s.try_clone().expect("clone"));
                }
                drop(held);
                for (from, to) in [
                    (
                        client.try_clone().expect("clone"),
                        server.try_clone().expect("clone"),
                    ),
                    (server, client),
                ] {
                    let stalled = stalled2.clone();
                    std::thread::spawn(move || forward(from, to, &stalled));
                }
            }
        });
        Proxy {
            port,
            up,
            open,
            stalled,
        }
    }

    fn stall(&self) {
        *self.stalled.0.lock().expect("lock") = true;
    }

    fn resume(&self) {
        *self.stalled.0.lock().expect("lock") = false;
        self.stalled.1.notify_all();
    }

    fn down(&self) {
        self.up.store(false, std::sync::atomic::Ordering::SeqCst);
        for s in self.open.lock().expect("lock").drain(..) {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
    }

    fn back(&self) {
        self.up.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

/// A server whose database (the test's PostgreSQL or MariaDB) is reached through a [`Proxy`].
fn behind_a_proxy(extra: &str) -> (Server, Proxy) {
    let mut proxy = None;
    let s = Server::start_with(|dir, port| {
        let toml = serve_toml(dir, port, extra);
        // database = "postgres://user@127.0.0.1:5432/name?..." through the proxy.
        let at = toml.find("@127.0.0.1:").expect("a loopback database URL") + 1;
        let end = toml[at..].find('/').expect("a path after the port") + at;
        let target = toml[at..end].to_owned();
        let p = Proxy::start(target.clone());
        let toml = toml.replacen(&target, &format!("127.0.0.1:{}", p.port), 1);
        proxy = Some(p);
        toml
    });
    (s, proxy.expect("the proxy"))
}

/// A server behind a [`Proxy`] to its database, with a link and the forgot page's form, for
/// the outage tests; None (and a line saying so) on SQLite, which has no server to lose.
struct Outage {
    server: Server,
    proxy: Proxy,
    path: String,
    token: String,
    csrf: String,
    cookie: String,
    forgot_csrf: String,
}

impl Outage {
    fn start(test: &str, extra: &str) -> Option<Outage> {
        if crate::harness::backend() == crate::harness::Backend::Sqlite {
            println!(
                "serve_hardening::{test} skipped: needs PWRESET_TEST_BACKEND=postgres or mysql"
            );
            return None;
        }
        let (server, proxy) = behind_a_proxy(extra);
        let (path, token) = server.link();
        let csrf = server.get(&path).field("csrf");
        let forgot = server.get("/forgot_password");
        let (cookie, forgot_csrf) = (forgot.cookie(), forgot.field("csrf"));
        Some(Outage {
            server,
            proxy,
            path,
            token,
            csrf,
            cookie,
            forgot_csrf,
        })
    }

    /// Ask for a link for the test's user on the forgot page.
    fn ask(&self) -> crate::serve::Resp {
        self.server.post(
            "/forgot_password",
            &[("Cookie", self.cookie.as_str())],
            &[("email", crate::serve::EMAIL), ("csrf", &self.forgot_csrf)],
        )
    }

    /// Set a new password with the link.
    fn reset(&self) -> crate::serve::Resp {
        self.server.post(
            "/reset_password",
            &[],
            &reset_fields(&self.token, &self.csrf, GOOD, GOOD),
        )
    }
}

#[test]
fn serve_hardening_database_away_and_back_answers_503_then_works() {
    let Some(o) = Outage::start(
        "serve_hardening_database_away_and_back_answers_503_then_works",
        "",
    ) else {
        return;
    };
    let (s, proxy, path) = (&o.server, &o.proxy, &o.path);
    let mails = s.env.messages().len();

    proxy.down();
    for _ in 0..3 {
        let form = s.get(path);
        assert_eq!(form.status, 503, "{}", form.body);
        assert!(form.header("retry-after").is_some());
        let health = s.get("/healthz");
        assert_eq!(health.status, 503);
        assert!(health.header("retry-after").is_some());
        let post = o.reset();
        assert_eq!(post.status, 503, "{}", post.body);
        assert!(post.header("retry-after").is_some());
        // The forgot page counts the address in the database before it answers, so it
        // cannot give its neutral 200 either: the visitor is told to retry, and nothing is
        // queued that could be lost or leave the address throttled without a mail.
        let asked = o.ask();
        assert_eq!(asked.status, 503, "{}", asked.body);
        assert!(asked.header("retry-after").is_some());
    }

    proxy.back();
    assert_eq!(s.get("/healthz").status, 200, "{}", s.log());
    assert_eq!(s.get(path).status, 200, "the link was not spent");
    let done = o.reset();
    assert_eq!(done.status, 303, "{}", done.body);
    // Nothing was mailed while the database was away, and the three refused requests did
    // not count against the address (forgot_per_address is 3): asked again, it gets its mail.
    assert_eq!(s.env.messages().len(), mails, "no mail while away");
    assert_eq!(o.ask().status, 200, "{}", s.log());
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while s.env.messages().len() == mails {
        assert!(
            std::time::Instant::now() < deadline,
            "no mail once the database is back: {}",
            s.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn serve_hardening_a_stalled_database_answers_503_in_time_then_works() {
    let Some(o) = Outage::start(
        "serve_hardening_a_stalled_database_answers_503_in_time_then_works",
        "[serve]\ndatabase_timeout = \"2s\"\n",
    ) else {
        return;
    };
    let (s, proxy, path) = (&o.server, &o.proxy, &o.path);
    assert_eq!(s.get("/healthz").status, 200);

    // Open connections stop answering: without a bound each page would wait for the kernel
    // to give up on the socket (some 15 minutes). 2 s each, plus room for a loaded machine.
    proxy.stall();
    let bound = Duration::from_secs(10);
    for round in 0..2 {
        let started = std::time::Instant::now();
        let health = s.get("/healthz");
        let form = s.get(path);
        let post = o.reset();
        let asked = o.ask();
        let took = started.elapsed();
        for (what, r) in [
            ("/healthz", &health),
            ("the form", &form),
            ("a reset", &post),
            ("the forgot page", &asked),
        ] {
            assert_eq!(r.status, 503, "round {round}, {what}: {}", r.body);
            assert!(
                r.header("retry-after").is_some(),
                "round {round}, {what}: Retry-After"
            );
        }
        assert!(took < bound * 4, "round {round}: four pages took {took:?}");
    }
    let m = s.get("/metrics");
    assert!(
        !m.body.contains("pwreset_database_errors_total 0\n"),
        "the timeouts count as database errors:\n{}",
        m.body
    );
    assert!(
        s.log().contains("serve.database_timeout (2s)"),
        "{}",
        s.log()
    );

    // The partition heals: the stuck queries finish, their connections are replaced, and the
    // next request works without a restart. The resets given up on did not spend the link.
    proxy.resume();
    assert_eq!(s.get("/healthz").status, 200, "{}", s.log());
    assert_eq!(s.get(path).status, 200, "the link was not spent");
    let done = o.reset();
    assert_eq!(done.status, 303, "{}", done.body);
    assert_eq!(o.ask().status, 200, "{}", s.log());
}
