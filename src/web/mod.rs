//! `pwreset serve`: the page the emailed link opens, and the forgot-password page.
//!
//! The web front end of the same domain core the terminal uses: [`crate::reset::Service`] for
//! resets (policy, hash format, transaction, audit), [`crate::request::Service`] for new links
//! (lookup, throttle, hand-over, audit), within one registered run per process. Handlers are
//! async (axum on tokio) and never touch the store or argon2 themselves: that work runs on
//! fixed pools of threads ([`pool`]) with bounded queues, so a flood of POSTs gets 503s rather
//! than unbounded memory.

mod conn;
mod limits;
mod log;
mod metrics;
mod pages;
mod pool;
mod routes;

use crate::config::Config;
use crate::error::{Exit, fail};
use crate::ui;
use anyhow::{Context, Result};
use axum::extract::{Extension, Request, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

pub use limits::{Csrf, Limiter};

/// What the command line adds to the config.
pub struct Options {
    pub listen: Option<crate::config::Listen>,
    pub log_format: Option<crate::config::LogFormat>,
    pub verbosity: ui::Verbosity,
}

/// Everything the handlers share.
pub(crate) struct App {
    config: Arc<Config>,
    /// The path of base_url: the form (GET) and the reset (POST).
    base_path: String,
    /// The origin of base_url, for the Origin check.
    origin: String,
    forgot_path: Option<String>,
    css_path: String,
    pages: pages::Pages,
    csrf: Csrf,
    mailer: Option<Arc<crate::mail::Mailer>>,
    /// Quick store work: looking tokens up, /healthz.
    db: pool::Pool,
    /// Resets: policy, argon2, the transaction. Its size bounds argon2's memory.
    hash: pool::Pool,
    /// Forgot-password requests and notices, done after the page is answered.
    mail: pool::Pool,
    // Per process, in memory: per client address. The limits per link and per address asked
    // for are kept in the database, shared by every `serve` on it (routes.rs, `Shared`).
    ip_attempts: Limiter<IpAddr>,
    forgot_ip: Limiter<IpAddr>,
    log: log::Log,
    metrics: metrics::Metrics,
    /// The open connections, for the cap and /metrics.
    conns: Arc<conn::Conns>,
    /// This process's run, under which the forgot page's links are issued.
    run_id: i64,
    /// Whether resets write bcrypt, which reads only a password's first 72 bytes: the form
    /// says so.
    bcrypt_rule: bool,
}

/// The other end of a connection.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Peer {
    Ip(IpAddr),
    /// A Unix socket: the proxy, whose forwarded headers are believed (the socket's mode
    /// decides who may connect).
    Unix,
}

impl std::fmt::Display for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Peer::Ip(ip) => write!(f, "{}", canonical(*ip)),
            Peer::Unix => f.write_str("unix"),
        }
    }
}

impl App {
    /// The route a path is, as a fixed label for /metrics.
    fn route_of(&self, path: &str) -> &'static str {
        if path == self.base_path {
            "reset"
        } else if self.forgot_path.as_deref() == Some(path) {
            "forgot"
        } else if path == self.css_path {
            "css"
        } else if path == "/healthz" {
            "healthz"
        } else if path == "/metrics" {
            "metrics"
        } else {
            "other"
        }
    }
}

/// What a request came to, for the log: set by the handler on its response.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Outcome(pub &'static str);

impl Outcome {
    /// For a response no handler tagged.
    fn of_status(status: u16) -> &'static str {
        match status {
            200..=299 => "ok",
            300..=399 => "redirect",
            400 => "bad_request",
            403 => "forbidden",
            404 => "not_found",
            408 => "timeout",
            413 => "too_large",
            429 => "rate_limited",
            503 => "busy",
            500..=599 => "error",
            _ => "refused",
        }
    }
}

/// Who is asking, as far as can be believed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Client {
    pub ip: IpAddr,
    /// The request reached the proxy over https (a trusted proxy said so).
    pub https: bool,
}

impl Client {
    /// The audit trail's actor for web actions.
    pub fn actor(&self) -> String {
        format!("web {}", self.ip)
    }

    /// What the per-address limits count under: IPv6 by /64.
    pub fn key(&self) -> IpAddr {
        limits::client_key(self.ip)
    }
}

/// Serve until SIGTERM or SIGINT; then finish the requests in flight, give the queued mail
/// `[serve] stop_timeout`, and withdraw the links that did not go out by then.
pub fn serve(config: Config, opts: Options) -> Result<()> {
    let base_url = config.base_url.clone().ok_or_else(|| {
        fail(
            Exit::Config,
            format!(
                "{}: base_url is not set; serve answers under its path, e.g. base_url = \"https://accounts.example.com/reset_password\"",
                config.source
            ),
        )
    })?;
    let url =
        url::Url::parse(&base_url).map_err(|e| fail(Exit::Config, format!("base_url: {e}")))?;
    let base_path = url.path().to_owned();
    // The router takes paths literally only when they hold no pattern syntax ({, *, :).
    if !base_path
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"/-_.~%".contains(&b))
    {
        return Err(fail(
            Exit::Config,
            format!(
                "base_url: serve needs a path of letters, digits and / - _ . ~ (got {base_path:?})"
            ),
        ));
    }
    let origin = url.origin().ascii_serialization();
    let css_path = format!("{}/pwreset.css", base_path.trim_end_matches('/'));
    let forgot_path = config
        .serve
        .forgot_password
        .then(|| config.serve.forgot_path.clone());
    if let Some(f) = &forgot_path
        && [
            base_path.as_str(),
            css_path.as_str(),
            "/healthz",
            "/metrics",
        ]
        .contains(&f.as_str())
    {
        return Err(fail(
            Exit::Config,
            format!(
                "serve.forgot_path {f:?} is taken by another page of serve; give the forgot-password page its own path"
            ),
        ));
    }
    if base_path == "/healthz" || base_path == "/metrics" {
        return Err(fail(
            Exit::Config,
            format!("base_url: its path {base_path} is taken by serve's own /healthz and /metrics"),
        ));
    }

    // The socket systemd passes, taken (and LISTEN_* removed from the environment) before any
    // thread starts.
    let inherited = {
        let mut fds = listenfd::ListenFd::from_env();
        match fds.take_tcp_listener(0) {
            Ok(tcp) => tcp.map(Inherited::Tcp),
            Err(_) => fds
                .take_unix_listener(0)
                .map_err(|e| {
                    fail(
                        Exit::IoErr,
                        format!(
                            "the socket systemd passed (LISTEN_FDS) is neither a TCP nor a Unix stream socket: {e}"
                        ),
                    )
                })?
                .map(Inherited::Unix),
        }
    };
    let max_connections =
        conn::cap(config.serve.max_connections).map_err(|why| fail(Exit::Config, why))?;

    // Check the database and the mail setup now, so a bad config fails at start (with its exit
    // code) and not on the first user's page.
    let actor = format!("serve (pid {})", std::process::id());
    let bcrypt_rule;
    let csrf;
    let lease = {
        let mut store = crate::store::open(&config, crate::store::Access::Write)?;
        store.check_users_mapping()?;
        // The format a reset will write, from the column's census under `auto`: a table whose
        // format pwreset cannot follow stops serve here, not on the first user's form.
        // (A directory hashes its own passwords: no table to read.)
        bcrypt_rule = if config.ldap.is_some() {
            false
        } else {
            let decided = crate::password::census::settings(&config, store.as_mut())?;
            decided.settings.format == crate::password::Format::Bcrypt
        };
        // Every serve on this database signs forms with its one key, so a load balancer may
        // send a form's POST to another instance than its GET.
        csrf = {
            let fresh = Csrf::fresh_key()?;
            let key = store.shared_secret(limits::CSRF_SECRET, &fresh, ui::now())?;
            if key.len() < limits::CSRF_KEY_LEN {
                return Err(fail(
                    Exit::Config,
                    format!(
                        "pwreset_secrets in {} holds a CSRF key of {} bytes, fewer than {}; delete it (DELETE FROM pwreset_secrets WHERE name = '{}') and start serve again, which makes a new one",
                        store.describe(),
                        key.len(),
                        limits::CSRF_KEY_LEN,
                        limits::CSRF_SECRET
                    ),
                ));
            }
            Csrf::from_key(&key)
        };
        // The forgot page's links belong to this run: if the process dies, the next run (or
        // serve) withdraws those it never sent.
        let (lease, reaped) =
            crate::request::lease::Lease::start(store.as_mut(), &config, "serve", None, &actor)?;
        for (run, released) in reaped {
            if released > 0 && opts.verbosity >= ui::Verbosity::Normal {
                eprintln!(
                    "pwreset serve: run {} (pid {}) had ended without finishing; {released} link(s) it had not sent were withdrawn",
                    run.id, run.pid
                );
            }
        }
        lease
    };
    let mailer = if forgot_path.is_some() || config.notify_on_reset {
        Some(Arc::new(crate::mail::Mailer::new(&config)?))
    } else {
        None
    };
    let pages = pages::Pages::load(&config, &css_path)?;
    let config = Arc::new(config);
    let s = &config.serve;
    let window = s.attempt_window;
    // One count for all pools: a database server that went away took every connection.
    let generation = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let app = Arc::new(App {
        db: pool::Pool::new(
            "db",
            Arc::clone(&config),
            Arc::clone(&generation),
            4,
            256,
            s.database_timeout,
        )?,
        hash: pool::Pool::new(
            "hash",
            Arc::clone(&config),
            Arc::clone(&generation),
            s.hash_threads(),
            s.hash_queue,
            s.database_timeout,
        )?,
        // Its jobs are submitted, never waited for: the timeout does not apply.
        mail: pool::Pool::new(
            "mail",
            Arc::clone(&config),
            generation,
            2,
            256,
            s.database_timeout,
        )?,
        ip_attempts: Limiter::new(s.ip_attempts, window, s.limit_table_size),
        forgot_ip: Limiter::new(s.forgot_per_ip, window, s.limit_table_size),
        csrf,
        config: Arc::clone(&config),
        base_path,
        origin,
        forgot_path,
        css_path,
        pages,
        mailer,
        log: log::Log {
            format: opts.log_format.unwrap_or(config.serve.log_format),
            verbosity: opts.verbosity,
        },
        metrics: metrics::Metrics::default(),
        conns: Arc::new(conn::Conns::new(max_connections)),
        run_id: lease.id,
        bcrypt_rule,
    });

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("pwreset-serve")
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let served = runtime.block_on(run(Arc::clone(&app), inherited, opts.listen));
    // The listener is closed and the requests in flight are answered; the queued mail gets
    // its time, then whatever did not go out is withdrawn (revoked, throttle given back), so
    // nobody is left throttled with a link that never left.
    let closed = app.mail.close_within(config.serve.stop_timeout);
    let unstarted = closed.unstarted;
    app.hash.close();
    app.db.close();
    // Whatever did not go out by the deadline is withdrawn now. No queued job starts after
    // it (the pool is closed); a message still going out may yet be accepted by the relay,
    // but its link was withdrawn first, and a withdrawn link is never marked handed over nor
    // supersedes the user's older ones.
    let ended = crate::store::open(&config, crate::store::Access::Write).and_then(|mut store| {
        lease.end(
            store.as_mut(),
            crate::store::RunEnd::Stopped,
            "not sent: pwreset serve stopped before this link's mail went out",
            &actor,
        )
    });
    let log = app.log;
    if closed.running > 0 {
        log.say(
            "info",
            &format!(
                "{} forgot-password mail(s) were still going out at serve.stop_timeout; their links are withdrawn",
                closed.running
            ),
        );
    }
    if unstarted > 0 {
        log.say(
            "info",
            &format!(
                "{unstarted} forgot-password request(s) were not served within serve.stop_timeout ({})",
                humantime::format_duration(config.serve.stop_timeout)
            ),
        );
    }
    match &ended {
        Ok(n) if *n > 0 => log.say(
            "info",
            &format!("{n} link(s) whose mail had not gone out were withdrawn"),
        ),
        Ok(_) => {}
        Err(e) => log.say(
            "info",
            &format!(
                "could not end its run ({}); the next pwreset run withdraws what it did not send",
                crate::error::render(e)
            ),
        ),
    }
    log.say("info", "stopped");
    served
}

/// A listening socket systemd passed in.
enum Inherited {
    Tcp(std::net::TcpListener),
    Unix(std::os::unix::net::UnixListener),
}

async fn run(
    app: Arc<App>,
    inherited: Option<Inherited>,
    listen: Option<crate::config::Listen>,
) -> Result<()> {
    use crate::config::Listen;
    // A Unix socket serve made itself, removed when it stops.
    let mut made = None;
    let (listener, shown) = match inherited {
        Some(Inherited::Tcp(l)) => {
            l.set_nonblocking(true)?;
            let l = tokio::net::TcpListener::from_std(l)?;
            let shown = format!("http://{}", l.local_addr()?);
            (conn::Listener::Tcp(l), shown)
        }
        Some(Inherited::Unix(l)) => {
            l.set_nonblocking(true)?;
            let l = tokio::net::UnixListener::from_std(l)?;
            let shown = l.local_addr()?.as_pathname().map_or_else(
                || "unix:(unnamed)".to_owned(),
                |p| format!("unix:{}", p.display()),
            );
            (conn::Listener::Unix(l), shown)
        }
        None => match listen.unwrap_or_else(|| app.config.serve.listen.clone()) {
            Listen::Unix(path) => {
                let l = bind_unix(&path, app.config.serve.socket_mode)?;
                let shown = format!("unix:{}", path.display());
                made = Some(path);
                (conn::Listener::Unix(l), shown)
            }
            Listen::Tcp(addr) => {
                let l = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
                    let exit = if e.kind() == std::io::ErrorKind::PermissionDenied {
                        Exit::NoPerm
                    } else {
                        Exit::IoErr
                    };
                    fail(exit, format!("cannot listen on {addr}: {e}"))
                })?;
                let shown = format!("http://{}", l.local_addr()?);
                (conn::Listener::Tcp(l), shown)
            }
        },
    };
    app.log.say(
        "info",
        &format!(
            "listening on {shown}{} ({})",
            app.base_path, app.config.source
        ),
    );
    let s = &app.config.serve;
    let shared = Arc::new(conn::Shared {
        router: routes::router(Arc::clone(&app)),
        conns: Arc::clone(&app.conns),
        timeouts: conn::Timeouts {
            header: s.header_timeout,
            body: s.body_timeout,
            idle: s.idle_timeout,
        },
        log: app.log,
        on_close: {
            let app = Arc::clone(&app);
            Box::new(move |peer, why| {
                app.log.closed(peer, why);
                app.metrics.closed(why.as_str());
            })
        },
    });
    conn::serve(listener, shared, shutdown()).await;
    if let Some(path) = made {
        let _ = std::fs::remove_file(path);
    }
    Ok(())
}

/// Make the Unix socket at `path` with `mode`. A socket file left by a run that died is
/// replaced; one a live server answers on, or any other file, is an error.
fn bind_unix(path: &std::path::Path, mode: u32) -> Result<tokio::net::UnixListener> {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    let shown = path.display();
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            return Err(fail(
                Exit::CantCreate,
                format!(
                    "cannot listen on unix:{shown}: it exists and is not a socket; remove it or choose another path"
                ),
            ));
        }
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(fail(
                Exit::IoErr,
                format!("cannot listen on unix:{shown}: another server is listening there"),
            ));
        }
        std::fs::remove_file(path).with_context(|| format!("removing the stale socket {shown}"))?;
    }
    let l = tokio::net::UnixListener::bind(path).map_err(|e| {
        let exit = if e.kind() == std::io::ErrorKind::PermissionDenied {
            Exit::NoPerm
        } else {
            Exit::IoErr
        };
        fail(
            exit,
            format!("cannot listen on unix:{shown}: {e} (does its folder exist, writable by this user? RuntimeDirectory=pwreset in the unit makes /run/pwreset)"),
        )
    })?;
    // Made under the umask (0077 in the unit), then opened up to the mode asked for.
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("setting the mode of {shown}"))?;
    Ok(l)
}

/// Resolves on SIGTERM (systemd stop) or SIGINT (Ctrl-C).
async fn shutdown() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        // Without handlers the default action (exit) still stops the server.
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

/// The client's address: the peer, or, when the peer is a trusted proxy, the nearest address in
/// X-Forwarded-For that is not one of the trusted proxies.
fn client_of(peer: Peer, headers: &HeaderMap, trusted: &[IpAddr]) -> Client {
    let is_trusted = |ip: &IpAddr| trusted.contains(ip) || trusted.contains(&canonical(*ip));
    let mut ip = match peer {
        Peer::Ip(ip) if !is_trusted(&ip) => {
            return Client {
                ip: canonical(ip),
                https: false,
            };
        }
        Peer::Ip(ip) => ip,
        // Only the proxy is on the socket; without a forwarded address, the client is local.
        Peer::Unix => IpAddr::from([127, 0, 0, 1]),
    };
    let unix = matches!(peer, Peer::Unix);
    let forwarded: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .collect();
    for hop in forwarded.iter().rev() {
        let hop = hop.trim();
        let parsed = hop
            .parse::<IpAddr>()
            .ok()
            .or_else(|| hop.parse::<SocketAddr>().ok().map(|a| a.ip()));
        let Some(hop) = parsed else { break };
        ip = hop;
        // Behind a Unix socket the proxy is the one hop to believe: its X-Forwarded-For
        // entry is the client.
        if unix || !is_trusted(&hop) {
            break;
        }
    }
    let https = headers
        .get_all("x-forwarded-proto")
        .iter()
        .next_back()
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.rsplit(',').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"));
    Client {
        ip: canonical(ip),
        https,
    }
}

/// IPv4-mapped IPv6 addresses (a dual-stack socket's view of IPv4 clients) as plain IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Every response: the client worked out once, the security headers, one log line.
async fn frame(
    State(app): State<Arc<App>>,
    Extension(peer): Extension<Peer>,
    mut req: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let client = client_of(peer, req.headers(), &app.config.serve.trusted_proxies);
    req.extensions_mut().insert(client);
    // The page's language, for every handler: the best of the browser's that there are pages
    // for, else English. Repeated headers are one list (RFC 9110 5.3); one that is not text
    // counts as none.
    let accept: Vec<&str> = req
        .headers()
        .get_all(header::ACCEPT_LANGUAGE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    let lang = app.pages.pick(&accept.join(","));
    req.extensions_mut().insert(lang);
    let method = req.method().clone();
    // The path only: the query holds the token.
    let path = req.uri().path().to_owned();
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    // same-origin, not no-referrer: the link's token never leaves for another site, and
    // our own forms send their real Origin (no-referrer makes it "null", which is refused).
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    let is_page = h
        .get(header::CONTENT_TYPE)
        .is_some_and(|t| t.as_bytes().starts_with(b"text/html"));
    if is_page {
        // Language codes are ASCII letters (`locale::language`), so this always parses.
        if let Ok(v) = HeaderValue::from_str(app.pages.code(lang)) {
            h.insert(header::CONTENT_LANGUAGE, v);
        }
        // A cache in between must not hand a German page to a French browser.
        h.append(header::VARY, HeaderValue::from_static("accept-language"));
    }
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    if client.https {
        h.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        );
    }
    let outcome = res
        .extensions()
        .get::<Outcome>()
        .map_or_else(|| Outcome::of_status(res.status().as_u16()), |o| o.0);
    let took = started.elapsed();
    app.metrics.request(
        app.route_of(&path),
        match method.as_str() {
            "GET" => "GET",
            "HEAD" => "HEAD",
            "POST" => "POST",
            _ => "other",
        },
        res.status().as_u16(),
        took,
        outcome,
    );
    app.log.request(&log::Request {
        method: method.as_str(),
        path: &path,
        status: res.status().as_u16(),
        duration: took,
        client: client.ip,
        outcome,
    });
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn forwarded_headers_only_from_trusted_proxies() {
        let proxy: IpAddr = "127.0.0.1".parse().expect("ip");
        let h = headers(&[
            ("x-forwarded-for", "203.0.113.9, 198.51.100.7"),
            ("x-forwarded-proto", "https"),
        ]);
        let untrusted = client_of(Peer::Ip(proxy), &h, &[]);
        assert_eq!(untrusted.ip, proxy);
        assert!(!untrusted.https);
        let trusted = client_of(Peer::Ip(proxy), &h, &[proxy]);
        assert_eq!(trusted.ip, "198.51.100.7".parse::<IpAddr>().expect("ip"));
        assert!(trusted.https);
        // A client cannot hide behind a forged hop: the nearest untrusted address wins.
        let two = client_of(
            Peer::Ip(proxy),
            &h,
            &[proxy, "198.51.100.7".parse().expect("ip")],
        );
        assert_eq!(two.ip, "203.0.113.9".parse::<IpAddr>().expect("ip"));
        let junk = client_of(
            Peer::Ip(proxy),
            &headers(&[("x-forwarded-for", "nonsense")]),
            &[proxy],
        );
        assert_eq!(junk.ip, proxy);
        // On a Unix socket the proxy's own entry is the client, whatever the client forged.
        let unix = client_of(Peer::Unix, &h, &[]);
        assert_eq!(unix.ip, "198.51.100.7".parse::<IpAddr>().expect("ip"));
        assert!(unix.https);
    }
}
