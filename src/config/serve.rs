//! `[serve]`: the web page the emailed link opens (`pwreset serve`).

use super::Problem;
use serde::Deserialize;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

/// `[serve]` as written in the file.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct RawServe {
    listen: String,
    trusted_proxies: Vec<String>,
    forgot_password: bool,
    forgot_path: String,
    token_attempts: u32,
    ip_attempts: u32,
    forgot_per_address: u32,
    forgot_per_ip: u32,
    attempt_window: String,
    hash_workers: usize,
    hash_queue: usize,
    stop_timeout: String,
    database_timeout: String,
    login_url: Option<String>,
    header_timeout: String,
    body_timeout: String,
    idle_timeout: String,
    max_connections: usize,
    limit_table_size: usize,
    socket_mode: String,
    log_format: LogFormat,
}

impl Default for RawServe {
    fn default() -> Self {
        RawServe {
            listen: "127.0.0.1:8080".into(),
            trusted_proxies: Vec::new(),
            forgot_password: true,
            forgot_path: "/forgot_password".into(),
            // Failed tries (refused or mismatched passwords) per link per window: enough for a
            // person fighting the policy, far too few to matter to anyone guessing.
            token_attempts: 5,
            // Reset-form submissions per client address per window (forgot posts have forgot_per_ip).
            ip_attempts: 30,
            forgot_per_address: 3,
            forgot_per_ip: 10,
            attempt_window: "15m".into(),
            // 0: one per core. Each argon2 hash holds memory_kib (19 MiB by default).
            hash_workers: 0,
            // Resets waiting for a hashing worker before the page answers 503.
            hash_queue: 32,
            // Well inside systemd's TimeoutStopSec (90s by default), and long enough for a
            // queue of forgot-page mails over a slow relay.
            stop_timeout: "10s".into(),
            // A page waits this long for the database (its place in the queue included)
            // before it answers 503: well past any lookup or reset on a healthy server, short
            // enough that a visitor is told to retry before they give up on a stalled one.
            database_timeout: "10s".into(),
            login_url: None,
            // Long enough for a slow phone on a bad network, short enough that silent
            // connections do not pile up.
            header_timeout: "10s".into(),
            body_timeout: "30s".into(),
            idle_timeout: "60s".into(),
            // 0: as many as the open-file limit leaves room for, at most 16384.
            max_connections: 0,
            // About 100 bytes a key: some 10 MiB per limit at most.
            limit_table_size: 100_000,
            // The proxy's user in the socket's group (pwreset) may connect; nobody else.
            socket_mode: "0660".into(),
            log_format: LogFormat::Text,
        }
    }
}

/// `[serve]`, validated.
#[derive(Debug, Clone)]
pub struct Serve {
    pub listen: Listen,
    /// How serve logs on stderr; `serve --log-format` overrides it.
    pub log_format: LogFormat,
    /// The mode of a Unix socket serve makes (`listen = "unix:..."`).
    pub socket_mode: u32,
    /// Peers whose `X-Forwarded-For` and `X-Forwarded-Proto` are believed.
    pub trusted_proxies: Vec<IpAddr>,
    pub forgot_password: bool,
    /// Absolute path of the forgot-password page.
    pub forgot_path: String,
    pub token_attempts: u32,
    pub ip_attempts: u32,
    pub forgot_per_address: u32,
    pub forgot_per_ip: u32,
    pub attempt_window: Duration,
    /// Threads that hash passwords as configured; 0 means one per core ([`Serve::hash_threads`]).
    pub hash_workers: usize,
    pub hash_queue: usize,
    /// On SIGTERM, how long the forgot page's queued mail may take before what it could not
    /// send is withdrawn.
    pub stop_timeout: Duration,
    /// How long a page waits for its database job (queue and run) before it answers 503.
    pub database_timeout: Duration,
    /// The application's sign-in page: the page after a reset links to it.
    pub login_url: Option<String>,
    /// A request's head must be in within this long of its first byte (or of the accept).
    pub header_timeout: Duration,
    /// A request's body must be in within this long of its head.
    pub body_timeout: Duration,
    /// A kept-alive connection with no request is closed after this long.
    pub idle_timeout: Duration,
    /// Open connections at most; 0: from the open-file limit (see `web::conn::cap`).
    pub max_connections: usize,
    /// Keys each in-memory limit remembers at most.
    pub limit_table_size: usize,
}

impl Serve {
    /// Threads that hash passwords, at least 1. Asked of the system only by `serve`: finding
    /// the cores (cgroup files, affinity) is work every other command would pay for nothing.
    pub fn hash_threads(&self) -> usize {
        match self.hash_workers {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        }
    }
}

/// serve's log lines: text, or one JSON object a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// Where serve listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listen {
    Tcp(SocketAddr),
    /// A Unix socket at this path: only who may open it can connect, so no local user can
    /// pose as the proxy.
    Unix(PathBuf),
}

impl std::fmt::Display for Listen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Listen::Tcp(a) => write!(f, "{a}"),
            Listen::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

/// Parse a listening address: `127.0.0.1:8080`, `[::1]:8080`, `localhost:8080`, or
/// `unix:/run/pwreset/serve.sock`.
pub fn parse_listen(text: &str) -> Result<Listen, String> {
    if let Some(path) = text.strip_prefix("unix:") {
        let path = PathBuf::from(path);
        // sun_path holds 108 bytes with its NUL.
        if !path.is_absolute() || path.as_os_str().len() > 107 {
            return Err(format!(
                "{text:?}: a Unix socket needs an absolute path of at most 107 bytes, like \"unix:/run/pwreset/serve.sock\""
            ));
        }
        return Ok(Listen::Unix(path));
    }
    parse_tcp(text).map(Listen::Tcp)
}

fn parse_tcp(text: &str) -> Result<SocketAddr, String> {
    if let Ok(a) = text.parse::<SocketAddr>() {
        return Ok(a);
    }
    // "localhost" is the one name worth accepting: resolving others would make the address
    // depend on DNS at start-up.
    if let Some(port) = text.strip_prefix("localhost:")
        && let Ok(port) = port.parse::<u16>()
    {
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    Err(format!(
        "{text:?} is not an address and port; write it like \"127.0.0.1:8080\", \"[::1]:8080\" or \"unix:/run/pwreset/serve.sock\""
    ))
}

impl RawServe {
    pub(super) fn resolve(self) -> Result<Serve, Problem> {
        let listen = parse_listen(&self.listen).map_err(|why| Problem::new("serve.listen", why))?;
        let mut trusted_proxies = Vec::with_capacity(self.trusted_proxies.len());
        for (i, p) in self.trusted_proxies.iter().enumerate() {
            let ip = p.trim().parse::<IpAddr>().map_err(|_| {
                Problem::new(
                    format!("serve.trusted_proxies[{i}]"),
                    format!("{p:?} is not an IP address; list the proxies' addresses, e.g. [\"127.0.0.1\", \"::1\"]"),
                )
            })?;
            trusted_proxies.push(ip);
        }
        let path_ok = self.forgot_path.starts_with('/')
            && self.forgot_path.len() <= 200
            && self
                .forgot_path
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"/-_.~".contains(&b));
        if !path_ok {
            return Err(Problem::new(
                "serve.forgot_path",
                format!(
                    "{:?} must be an absolute path of letters, digits and / - _ . ~, like \"/forgot_password\"",
                    self.forgot_path
                ),
            ));
        }
        let attempt_window = super::duration("serve.attempt_window", &self.attempt_window)?;
        if attempt_window < Duration::from_secs(1) || attempt_window > Duration::from_secs(86400) {
            return Err(Problem::new(
                "serve.attempt_window",
                "must be between 1s and 1day",
            ));
        }
        for (key, v) in [
            ("serve.token_attempts", self.token_attempts),
            ("serve.ip_attempts", self.ip_attempts),
            ("serve.forgot_per_address", self.forgot_per_address),
            ("serve.forgot_per_ip", self.forgot_per_ip),
        ] {
            if v == 0 || v > 1_000_000 {
                return Err(Problem::new(key, "must be between 1 and 1000000"));
            }
        }
        if self.hash_workers > 256 {
            return Err(Problem::new(
                "serve.hash_workers",
                "at most 256 (0 means one per core)",
            ));
        }
        if self.hash_queue > 100_000 {
            return Err(Problem::new("serve.hash_queue", "at most 100000"));
        }
        let stop_timeout = super::duration("serve.stop_timeout", &self.stop_timeout)?;
        if stop_timeout > Duration::from_secs(600) {
            return Err(Problem::new("serve.stop_timeout", "at most 10m"));
        }
        let database_timeout = super::duration("serve.database_timeout", &self.database_timeout)?;
        if database_timeout < Duration::from_secs(1) || database_timeout > Duration::from_secs(600)
        {
            return Err(Problem::new(
                "serve.database_timeout",
                "must be between 1s and 10m",
            ));
        }
        let login_url = match &self.login_url {
            Some(u) => {
                Some(check_login_url(u).map_err(|why| Problem::new("serve.login_url", why))?)
            }
            None => None,
        };
        let mut timeouts = [Duration::ZERO; 3];
        for (slot, (key, text)) in timeouts.iter_mut().zip([
            ("serve.header_timeout", &self.header_timeout),
            ("serve.body_timeout", &self.body_timeout),
            ("serve.idle_timeout", &self.idle_timeout),
        ]) {
            let d = super::duration(key, text)?;
            if d < Duration::from_secs(1) || d > Duration::from_secs(3600) {
                return Err(Problem::new(key, "must be between 1s and 1h"));
            }
            *slot = d;
        }
        let [header_timeout, body_timeout, idle_timeout] = timeouts;
        if self.max_connections > 1_000_000 {
            return Err(Problem::new(
                "serve.max_connections",
                "at most 1000000 (0 means from the open-file limit)",
            ));
        }
        if !(100..=10_000_000).contains(&self.limit_table_size) {
            return Err(Problem::new(
                "serve.limit_table_size",
                "must be between 100 and 10000000",
            ));
        }
        let socket_mode = u32::from_str_radix(self.socket_mode.trim_start_matches("0o"), 8)
            .ok()
            .filter(|m| *m <= 0o777)
            .ok_or_else(|| {
                Problem::new(
                    "serve.socket_mode",
                    format!(
                        "{:?} is not a file mode; write it in octal, like \"0660\"",
                        self.socket_mode
                    ),
                )
            })?;
        Ok(Serve {
            log_format: self.log_format,
            socket_mode,
            limit_table_size: self.limit_table_size,
            header_timeout,
            body_timeout,
            idle_timeout,
            max_connections: self.max_connections,
            listen,
            trusted_proxies,
            forgot_password: self.forgot_password,
            forgot_path: self.forgot_path,
            token_attempts: self.token_attempts,
            ip_attempts: self.ip_attempts,
            forgot_per_address: self.forgot_per_address,
            forgot_per_ip: self.forgot_per_ip,
            attempt_window,
            hash_workers: self.hash_workers,
            hash_queue: self.hash_queue,
            stop_timeout,
            database_timeout,
            login_url,
        })
    }
}

/// Check `[serve] login_url`: a path on the same site ("/accounts/login/"), or an https URL
/// (http only to a loopback host, as for base_url). A link people follow from the page, so no
/// other scheme (javascript:), no user name or password, no protocol-relative "//host".
fn check_login_url(text: &str) -> Result<String, String> {
    if text.is_empty() || text.len() > 2048 {
        return Err("must be a path like \"/login\" or a URL like \"https://app.example.com/login\", at most 2048 bytes".into());
    }
    if text.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err("must not contain spaces or control characters".into());
    }
    if text.starts_with('/') && !text.starts_with("//") && !text.contains('\\') {
        return Ok(text.to_owned());
    }
    let url = url::Url::parse(text).map_err(|e| {
        format!("{text:?} is neither a path (\"/login\") nor an absolute URL ({e}); write it like \"https://app.example.com/login\"")
    })?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!(
            "{text:?} has a user name or password before the host; remove it"
        ));
    }
    let host = match url.host() {
        Some(url::Host::Domain(d)) => d.to_owned(),
        Some(url::Host::Ipv4(ip)) => ip.to_string(),
        Some(url::Host::Ipv6(ip)) => ip.to_string(),
        None => return Err(format!("{text:?} has no host")),
    };
    match url.scheme() {
        "https" => Ok(url.to_string()),
        "http" if super::is_loopback_host(&host) => Ok(url.to_string()),
        "http" => Err(format!(
            "{text:?} is http://; the sign-in page must be https:// (plain http only for a loopback host)"
        )),
        _ => Err(format!("{text:?} must be a path or start with https://")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_addresses() {
        assert_eq!(
            parse_listen("127.0.0.1:8080"),
            Ok(Listen::Tcp(SocketAddr::from(([127, 0, 0, 1], 8080))))
        );
        assert_eq!(
            parse_listen("unix:/run/pwreset/serve.sock"),
            Ok(Listen::Unix("/run/pwreset/serve.sock".into()))
        );
        assert!(parse_listen("unix:relative.sock").is_err());
        assert!(parse_listen("[::1]:9").is_ok());
        assert!(parse_listen("localhost:80").is_ok());
        assert!(parse_listen("example.com:80").is_err());
        assert!(parse_listen("8080").is_err());
    }

    #[test]
    fn login_urls() {
        for ok in [
            "/login",
            "/accounts/login/?next=/",
            "https://app.example.com/login",
            "http://127.0.0.1:8000/login",
        ] {
            assert!(check_login_url(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "login",
            "//evil.example/login",
            "/\\evil.example",
            "javascript:alert(1)",
            "http://app.example.com/login",
            "https://u:p@app.example.com/",
            "/with space",
        ] {
            assert!(check_login_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn defaults_resolve() {
        let s = RawServe::default().resolve().expect("defaults are valid");
        assert_eq!(s.listen, parse_listen("127.0.0.1:8080").expect("listen"));
        assert_eq!(s.socket_mode, 0o660);
        assert!(s.trusted_proxies.is_empty());
        assert!(s.forgot_password);
        assert_eq!(s.hash_workers, 0);
        assert!(s.hash_threads() >= 1);
    }
}
