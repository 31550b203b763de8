//! Configuration: command-line flag > environment > config file > built-in default, resolved once
//! into one validated [`Config`]. Every error names the key and the file, and exits 78.

use crate::error::{Exit, fail};
use anyhow::{Context, Result};
use serde::Deserialize;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where the config came from, for messages.
#[derive(Debug, Clone)]
pub enum Source {
    File(PathBuf),
    Defaults,
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::File(p) => write!(f, "config {}", p.display()),
            Source::Defaults => f.write_str("built-in defaults"),
        }
    }
}

/// The resolved, validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub source: Source,
    pub database: PathBuf,
    pub base_url: Option<String>,
    pub token_ttl: Duration,
    pub request_throttle: Duration,
    pub busy_timeout: Duration,
    pub notify_on_reset: bool,
    pub users: UsersTable,
    pub mail: Mail,
    pub password: Password,
}

/// Where the users live, and the names of the columns pwreset reads and writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsersTable {
    pub table: String,
    pub id_column: String,
    pub email_column: String,
    pub password_column: String,
}

impl Default for UsersTable {
    fn default() -> Self {
        UsersTable {
            table: "users".into(),
            id_column: "id".into(),
            email_column: "email".into(),
            password_column: "password_hash".into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportKind {
    Smtp,
    Sendmail,
    File,
    Stdout,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tls {
    StartTls,
    Tls,
    None,
}

#[derive(Debug, Clone)]
pub struct Mail {
    pub transport: TransportKind,
    pub from: lettre::message::Mailbox,
    pub subject: String,
    pub changed_subject: String,
    pub template_dir: Option<PathBuf>,
    pub smtp: Smtp,
    pub file_dir: PathBuf,
    pub sendmail_command: PathBuf,
}

#[derive(Debug, Clone)]
pub struct Smtp {
    pub host: String,
    pub port: u16,
    pub tls: Tls,
    pub username: Option<String>,
    pub password_file: Option<PathBuf>,
    pub timeout: Duration,
    pub ca_file: Option<PathBuf>,
    pub connections: u32,
}

#[derive(Debug, Clone)]
pub struct Password {
    pub min_length: usize,
    pub max_length: usize,
    pub min_strength: u8,
    pub argon2: Argon2,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Argon2 {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl Default for Argon2 {
    /// The OWASP Password Storage Cheat Sheet baseline for argon2id.
    fn default() -> Self {
        Argon2 {
            memory_kib: 19456,
            iterations: 2,
            parallelism: 1,
        }
    }
}

// ---- the file as written -------------------------------------------------------------------

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    database: Option<PathBuf>,
    base_url: Option<String>,
    token_ttl: Option<String>,
    request_throttle: Option<String>,
    busy_timeout: Option<String>,
    notify_on_reset: Option<bool>,
    #[serde(default)]
    users: RawUsers,
    #[serde(default)]
    mail: RawMail,
    #[serde(default)]
    password: RawPassword,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUsers {
    table: Option<String>,
    id_column: Option<String>,
    email_column: Option<String>,
    password_column: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMail {
    transport: Option<String>,
    from: Option<String>,
    subject: Option<String>,
    changed_subject: Option<String>,
    template_dir: Option<PathBuf>,
    #[serde(default)]
    smtp: RawSmtp,
    #[serde(default)]
    file: RawFile,
    #[serde(default)]
    sendmail: RawSendmail,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSmtp {
    host: Option<String>,
    port: Option<u16>,
    tls: Option<String>,
    username: Option<String>,
    password_file: Option<PathBuf>,
    timeout: Option<String>,
    ca_file: Option<PathBuf>,
    connections: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    dir: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSendmail {
    command: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPassword {
    min_length: Option<usize>,
    max_length: Option<usize>,
    min_strength: Option<u8>,
    #[serde(default)]
    argon2: RawArgon2,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawArgon2 {
    memory_kib: Option<u32>,
    iterations: Option<u32>,
    parallelism: Option<u32>,
}

/// What the command line and the environment say, before the file is read.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    /// `--config` / `PWRESET_CONFIG`: a file that must exist.
    pub config: Option<PathBuf>,
    /// `--db` / `PWRESET_DB`.
    pub database: Option<PathBuf>,
}

/// Longest config file read; a config is a few hundred bytes.
const MAX_CONFIG_LEN: u64 = 1 << 20;

/// The default config files, in the order they are tried.
pub fn default_config_paths() -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Some(dir) = xdg_dir("XDG_CONFIG_HOME", ".config") {
        out.push(dir.join("pwreset").join("config.toml"));
    }
    out.push(PathBuf::from("/etc/pwreset/config.toml"));
    out
}

/// The default database path: `$XDG_DATA_HOME/pwreset/pwreset.db`.
pub fn default_database() -> PathBuf {
    xdg_dir("XDG_DATA_HOME", ".local/share")
        .unwrap_or_else(|| PathBuf::from("/var/lib"))
        .join("pwreset")
        .join("pwreset.db")
}

fn xdg_dir(var: &str, fallback: &str) -> Option<PathBuf> {
    match std::env::var_os(var) {
        Some(v) if !v.is_empty() && Path::new(&v).is_absolute() => Some(PathBuf::from(v)),
        _ => std::env::var_os("HOME")
            .filter(|h| !h.is_empty())
            .map(|h| PathBuf::from(h).join(fallback)),
    }
}

impl Config {
    /// Resolve the configuration: find and read the file, apply the overrides, validate.
    pub fn load(over: &Overrides) -> Result<Config> {
        let (raw, source) = match &over.config {
            Some(path) => (
                read_file(path, true)?.unwrap_or_default(),
                Source::File(path.clone()),
            ),
            None => {
                let mut found = None;
                for path in default_config_paths() {
                    if let Some(raw) = read_file(&path, false)? {
                        found = Some((raw, Source::File(path)));
                        break;
                    }
                }
                found.unwrap_or((RawConfig::default(), Source::Defaults))
            }
        };
        resolve(raw, source, over)
    }

    /// Parse a config from TOML text (for tests and fuzzing); `name` is used in messages.
    pub fn from_toml(text: &str, name: &Path, over: &Overrides) -> Result<Config> {
        let raw = parse(text, name)?;
        resolve(raw, Source::File(name.to_owned()), over)
    }

    /// The built-in defaults with a database path, for `demo`.
    pub fn defaults_with(database: PathBuf) -> Result<Config> {
        resolve(
            RawConfig::default(),
            Source::Defaults,
            &Overrides {
                config: None,
                database: Some(database),
            },
        )
    }
}

fn read_file(path: &Path, required: bool) -> Result<Option<RawConfig>> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => return Ok(None),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(fail(
                Exit::Config,
                format!(
                    "config file {} does not exist; create it or point --config/PWRESET_CONFIG at an existing file",
                    path.display()
                ),
            ));
        }
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            return Err(fail(
                Exit::NoPerm,
                format!(
                    "cannot read config file {}: permission denied",
                    path.display()
                ),
            ));
        }
        Err(e) => {
            return Err(anyhow::Error::new(e)
                .context(format!("cannot read config file {}", path.display())));
        }
    };
    use std::io::Read;
    let mut text = String::new();
    file.take(MAX_CONFIG_LEN + 1)
        .read_to_string(&mut text)
        .map_err(|e| {
            fail(
                Exit::Config,
                format!(
                    "config file {} is not readable UTF-8 text: {e}",
                    path.display()
                ),
            )
        })?;
    if text.len() as u64 > MAX_CONFIG_LEN {
        return Err(fail(
            Exit::Config,
            format!(
                "config file {} is larger than 1 MiB; is it the right file?",
                path.display()
            ),
        ));
    }
    parse(&text, path).map(Some)
}

fn parse(text: &str, path: &Path) -> Result<RawConfig> {
    toml::from_str(text).map_err(|e| {
        let msg = e.message().to_owned();
        let place = e
            .span()
            .map(|s| {
                let line = text[..s.start.min(text.len())].matches('\n').count() + 1;
                format!(" (line {line})")
            })
            .unwrap_or_default();
        fail(
            Exit::Config,
            format!("config {}{place}: {msg}", path.display()),
        )
    })
}

fn resolve(raw: RawConfig, source: Source, over: &Overrides) -> Result<Config> {
    let bad = |key: &str, why: String| fail(Exit::Config, format!("{source}: {key}: {why}"));
    let duration = |key: &str, v: Option<String>, default: &str| -> Result<Duration> {
        let text = v.unwrap_or_else(|| default.to_owned());
        humantime::parse_duration(&text).map_err(|e| {
            bad(
                key,
                format!(
                    "{e} (got {:?}; write it like \"90s\", \"30m\", \"1h\")",
                    text
                ),
            )
        })
    };

    let database = over
        .database
        .clone()
        .or(raw.database)
        .unwrap_or_else(default_database);
    if database.as_os_str().is_empty() {
        return Err(bad("database", "is empty".into()));
    }

    let base_url = match raw.base_url {
        Some(url) => Some(check_base_url(&url).map_err(|why| bad("base_url", why))?),
        None => None,
    };

    let token_ttl = duration("token_ttl", raw.token_ttl, "1h")?;
    if token_ttl.as_secs() < 60 || token_ttl.as_secs() > 30 * 86400 {
        return Err(bad("token_ttl", "must be between 1m and 30days".into()));
    }
    let request_throttle = duration("request_throttle", raw.request_throttle, "60s")?;
    let busy_timeout = duration("busy_timeout", raw.busy_timeout, "5s")?;
    if busy_timeout > Duration::from_secs(3600) {
        return Err(bad("busy_timeout", "must be at most 1h".into()));
    }

    let users = UsersTable {
        table: ident("users.table", raw.users.table, "users", &bad)?,
        id_column: ident("users.id_column", raw.users.id_column, "id", &bad)?,
        email_column: ident("users.email_column", raw.users.email_column, "email", &bad)?,
        password_column: ident(
            "users.password_column",
            raw.users.password_column,
            "password_hash",
            &bad,
        )?,
    };

    let m = raw.mail;
    let transport = match m.transport.as_deref().unwrap_or("smtp") {
        "smtp" => TransportKind::Smtp,
        "sendmail" => TransportKind::Sendmail,
        "file" => TransportKind::File,
        "stdout" => TransportKind::Stdout,
        other => {
            return Err(bad(
                "mail.transport",
                format!("unknown transport {other:?}; use smtp, sendmail, file or stdout"),
            ));
        }
    };
    let from_text = m
        .from
        .unwrap_or_else(|| "pwreset <no-reply@localhost>".into());
    let from: lettre::message::Mailbox = from_text.parse().map_err(|e| {
        bad(
            "mail.from",
            format!("{e} (got {from_text:?}; write it like \"Accounts <no-reply@example.com>\")"),
        )
    })?;
    let subject = m.subject.unwrap_or_else(|| "Reset your password".into());
    let changed_subject = m
        .changed_subject
        .unwrap_or_else(|| "Your password was changed".into());
    for (key, s) in [
        ("mail.subject", &subject),
        ("mail.changed_subject", &changed_subject),
    ] {
        if s.chars().any(char::is_control) || s.len() > 200 {
            return Err(bad(key, "must be one line of at most 200 bytes".into()));
        }
    }

    let s = m.smtp;
    let host = s.host.unwrap_or_else(|| "localhost".into());
    let tls = match s.tls.as_deref() {
        Some("starttls") => Tls::StartTls,
        Some("tls") => Tls::Tls,
        Some("none") => Tls::None,
        None if is_loopback_host(&host) => Tls::None,
        None => Tls::StartTls,
        Some(other) => {
            return Err(bad(
                "mail.smtp.tls",
                format!("unknown value {other:?}; use starttls, tls or none"),
            ));
        }
    };
    if tls == Tls::None && transport == TransportKind::Smtp && !is_loopback_host(&host) {
        return Err(bad(
            "mail.smtp.tls",
            format!(
                "\"none\" would send reset links in clear text to {host}; it is only allowed to a loopback address. Use \"starttls\" or \"tls\""
            ),
        ));
    }
    let port = s.port.unwrap_or(match tls {
        Tls::StartTls => 587,
        Tls::Tls => 465,
        Tls::None => 25,
    });
    let connections = s.connections.unwrap_or(4);
    if !(1..=64).contains(&connections) {
        return Err(bad(
            "mail.smtp.connections",
            "must be between 1 and 64".into(),
        ));
    }
    let smtp = Smtp {
        host,
        port,
        tls,
        username: s.username,
        password_file: s.password_file,
        timeout: duration("mail.smtp.timeout", s.timeout, "30s")?,
        ca_file: s.ca_file,
        connections,
    };

    let p = raw.password;
    let a = p.argon2;
    let argon2 = Argon2 {
        memory_kib: a.memory_kib.unwrap_or(19456),
        iterations: a.iterations.unwrap_or(2),
        parallelism: a.parallelism.unwrap_or(1),
    };
    // Below these the hash protects little; above them one reset takes minutes or all memory.
    if !(8192..=4 * 1024 * 1024).contains(&argon2.memory_kib) {
        return Err(bad(
            "password.argon2.memory_kib",
            "must be between 8192 (8 MiB) and 4194304 (4 GiB)".into(),
        ));
    }
    if !(1..=100).contains(&argon2.iterations) {
        return Err(bad(
            "password.argon2.iterations",
            "must be between 1 and 100".into(),
        ));
    }
    if !(1..=64).contains(&argon2.parallelism) {
        return Err(bad(
            "password.argon2.parallelism",
            "must be between 1 and 64".into(),
        ));
    }
    if argon2.memory_kib < 8 * argon2.parallelism {
        return Err(bad(
            "password.argon2.memory_kib",
            "must be at least 8 × parallelism".into(),
        ));
    }
    let password = Password {
        min_length: p.min_length.unwrap_or(12),
        max_length: p.max_length.unwrap_or(1024),
        min_strength: p.min_strength.unwrap_or(3),
        argon2,
    };
    if password.min_length < 1 {
        return Err(bad("password.min_length", "must be at least 1".into()));
    }
    if password.max_length < password.min_length || password.max_length > 4096 {
        return Err(bad(
            "password.max_length",
            "must be between min_length and 4096".into(),
        ));
    }
    if password.min_strength > 4 {
        return Err(bad(
            "password.min_strength",
            "must be a zxcvbn score from 0 to 4".into(),
        ));
    }

    Ok(Config {
        source,
        database,
        base_url,
        token_ttl,
        request_throttle,
        busy_timeout,
        notify_on_reset: raw.notify_on_reset.unwrap_or(true),
        users,
        mail: Mail {
            transport,
            from,
            subject,
            changed_subject,
            template_dir: m.template_dir,
            smtp,
            file_dir: m
                .file
                .dir
                .unwrap_or_else(|| PathBuf::from("/var/spool/pwreset/outbox")),
            sendmail_command: m
                .sendmail
                .command
                .unwrap_or_else(|| PathBuf::from("/usr/sbin/sendmail")),
        },
        password,
    })
}

fn ident(
    key: &str,
    v: Option<String>,
    default: &str,
    bad: &dyn Fn(&str, String) -> anyhow::Error,
) -> Result<String> {
    let v = v.unwrap_or_else(|| default.to_owned());
    if is_identifier(&v) {
        Ok(v)
    } else {
        Err(bad(
            key,
            format!(
                "{v:?} is not a plain SQL name (letters, digits and _, not starting with a digit)"
            ),
        ))
    }
}

/// `[A-Za-z_][A-Za-z0-9_]*`, at most 64 characters.
pub fn is_identifier(s: &str) -> bool {
    let mut bytes = s.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && s.len() <= 64
}

/// Longest `base_url`: a link (base, `?token=`, token) must stay well under the longest input
/// `verify` and `reset` read, [`crate::token::MAX_INPUT_LEN`].
pub const MAX_BASE_URL_LEN: usize = 2048;

/// Check a `base_url`: https, or http to a loopback host; no fragment; no token already; at
/// most [`MAX_BASE_URL_LEN`] bytes.
pub fn check_base_url(url: &str) -> std::result::Result<String, String> {
    if url.len() > MAX_BASE_URL_LEN {
        return Err(format!(
            "is {} bytes long; at most {MAX_BASE_URL_LEN}, so that the links it makes can be pasted back into verify and reset",
            url.len()
        ));
    }
    if url.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err("must not contain spaces or control characters".into());
    }
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| format!("{url:?} is not an absolute URL; write it like \"https://accounts.example.com/reset_password\""))?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = host_of(authority);
    if host.is_empty() {
        return Err(format!("{url:?} has no host"));
    }
    match scheme.to_ascii_lowercase().as_str() {
        "https" => {}
        "http" if is_loopback_host(host) => {}
        "http" => {
            return Err(format!(
                "{url:?} is http://; reset links must use https:// (plain http is only allowed for a loopback host)"
            ));
        }
        _ => return Err(format!("{url:?} must start with https://")),
    }
    if url.contains('#') {
        return Err("must not contain a #fragment (the token goes in the query)".into());
    }
    if crate::token::link_token(url).is_some() {
        return Err("must not already contain token=".into());
    }
    Ok(url.to_owned())
}

fn host_of(authority: &str) -> &str {
    let authority = authority.rsplit('@').next().unwrap_or(authority);
    if let Some(rest) = authority.strip_prefix('[') {
        return rest.split(']').next().unwrap_or("");
    }
    authority.split(':').next().unwrap_or("")
}

/// True for `localhost` and loopback IP addresses.
pub fn is_loopback_host(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host.to_ascii_lowercase().ends_with(".localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Create a folder only its owner can enter (0700), with its parents: the database's folder and
/// the outbox hold secrets. `what` names it in the error ("the database", "mail.file.dir").
pub fn create_private_dir(dir: &Path, what: &str) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| {
            let exit = if e.kind() == std::io::ErrorKind::PermissionDenied {
                Exit::NoPerm
            } else {
                Exit::CantCreate
            };
            fail(
                exit,
                format!("cannot create folder {} for {what}: {e}", dir.display()),
            )
        })
}

/// Read a secret file that must not be readable by group or others.
pub fn read_secret_file(path: &Path, key: &str) -> Result<zeroize::Zeroizing<String>> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).map_err(|e| {
        fail(
            if e.kind() == std::io::ErrorKind::PermissionDenied {
                Exit::NoPerm
            } else {
                Exit::Config
            },
            format!("{key}: cannot read {}: {e}", path.display()),
        )
    })?;
    let mode = meta.permissions().mode();
    if mode & 0o077 != 0 {
        return Err(fail(
            Exit::NoPerm,
            format!(
                "{key}: {} is readable by group or others (mode {:o}); run: chmod 600 {}",
                path.display(),
                mode & 0o777,
                path.display()
            ),
        ));
    }
    if meta.len() > 4096 {
        return Err(fail(
            Exit::Config,
            format!(
                "{key}: {} is larger than 4 KiB; is it the right file?",
                path.display()
            ),
        ));
    }
    let text = zeroize::Zeroizing::new(
        std::fs::read_to_string(path)
            .with_context(|| format!("{key}: cannot read {}", path.display()))?,
    );
    let line = text.lines().next().unwrap_or("");
    Ok(zeroize::Zeroizing::new(line.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::exit_of;
    use proptest::prelude::*;

    fn load(text: &str) -> Result<Config> {
        Config::from_toml(
            text,
            Path::new("/etc/pwreset/config.toml"),
            &Overrides::default(),
        )
    }

    #[test]
    fn defaults_are_sensible() {
        let c = load("").expect("should succeed");
        assert_eq!(c.token_ttl, Duration::from_secs(3600));
        assert_eq!(c.request_throttle, Duration::from_secs(60));
        assert_eq!(c.password.argon2, Argon2::default());
        assert_eq!(c.mail.smtp.tls, Tls::None);
        assert_eq!(c.mail.smtp.port, 25);
    }

    #[test]
    fn base_url_must_be_https_unless_loopback() {
        assert!(load("base_url = \"https://a.example.com/r\"").is_ok());
        assert!(load("base_url = \"http://127.0.0.1:8080/r\"").is_ok());
        assert!(load("base_url = \"http://[::1]/r\"").is_ok());
        assert!(load("base_url = \"http://localhost/r\"").is_ok());
        let err = load("base_url = \"http://a.example.com/r\"").expect_err("should fail");
        assert_eq!(exit_of(&err), Exit::Config);
        let msg = crate::error::render(&err);
        assert!(
            msg.contains("base_url") && msg.contains("/etc/pwreset/config.toml"),
            "{msg}"
        );
        assert!(load("base_url = \"http://localhost.evil.com/r\"").is_err());
        // Found by fuzzing: a base_url so long its links were refused as malformed.
        let long = format!("https://a.example.com/{}", "x".repeat(MAX_BASE_URL_LEN));
        let err = load(&format!("base_url = \"{long}\"")).expect_err("should fail");
        assert_eq!(exit_of(&err), Exit::Config);
        let longest = format!(
            "https://a.example.com/{}",
            "x".repeat(MAX_BASE_URL_LEN - "https://a.example.com/".len())
        );
        assert!(load(&format!("base_url = \"{longest}\"")).is_ok());
        const _: () = assert!(
            MAX_BASE_URL_LEN + "&token=".len() + crate::token::TEXT_LEN
                <= crate::token::MAX_INPUT_LEN
        );
        assert!(load("base_url = \"http://127.0.0.1@evil.com/r\"").is_err());
    }

    #[test]
    fn errors_name_the_key() {
        for (text, key) in [
            ("token_ttl = \"soon\"", "token_ttl"),
            ("[users]\ntable = \"users; drop\"", "users.table"),
            (
                "[password.argon2]\nmemory_kib = 1",
                "password.argon2.memory_kib",
            ),
            (
                "[mail.smtp]\nhost = \"smtp.example.com\"\ntls = \"none\"",
                "mail.smtp.tls",
            ),
            ("nonsense = 1", "nonsense"),
            ("[mail]\nfrom = \"not an address\"", "mail.from"),
        ] {
            let err = load(text).expect_err("should fail");
            assert_eq!(exit_of(&err), Exit::Config, "{text}");
            let msg = crate::error::render(&err);
            assert!(msg.contains(key), "{text}: {msg}");
        }
    }

    /// Keys and section headers of the real config, so generated files get past the TOML
    /// parser and exercise the checks behind it.
    const KEYS: &[&str] = &[
        "database",
        "base_url",
        "token_ttl",
        "request_throttle",
        "busy_timeout",
        "notify_on_reset",
        "[users]",
        "table",
        "id_column",
        "email_column",
        "password_column",
        "[mail]",
        "transport",
        "from",
        "subject",
        "changed_subject",
        "template_dir",
        "[mail.smtp]",
        "host",
        "port",
        "tls",
        "username",
        "password_file",
        "timeout",
        "ca_file",
        "connections",
        "[mail.file]",
        "dir",
        "[mail.sendmail]",
        "command",
        "[password]",
        "min_length",
        "max_length",
        "min_strength",
        "[password.argon2]",
        "memory_kib",
        "iterations",
        "parallelism",
        "unknown_key",
    ];

    /// A TOML basic string holding `s`.
    fn toml_string(s: &str) -> String {
        let mut out = String::from("\"");
        for c in s.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
                c => out.push(c),
            }
        }
        out.push('"');
        out
    }

    fn toml_value() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<i64>().prop_map(|n| n.to_string()),
            (0u64..5_000_000).prop_map(|n| n.to_string()),
            any::<bool>().prop_map(|b| b.to_string()),
            "[0-9]{1,25} ?(ns|ms|s|m|h|d|days|weeks|y)?".prop_map(|s| toml_string(&s)),
            "(https?|ftp)://[a-z0-9.:@\\[\\]-]{0,30}(/[a-z?=&#%]{0,10})?"
                .prop_map(|s| toml_string(&s)),
            "\\PC{0,40}".prop_map(|s| toml_string(&s)),
            proptest::sample::select(vec![
                "\"smtp\"",
                "\"file\"",
                "\"stdout\"",
                "\"sendmail\"",
                "\"none\"",
                "\"tls\"",
                "\"starttls\"",
                "\"localhost\"",
                "\"users\"",
                "\"A <a@example.com>\"",
                "[]",
                "{}",
                "1.5",
                "-0",
                "nan",
                "inf",
            ])
            .prop_map(str::to_owned),
        ]
    }

    proptest::proptest! {
        #[test]
        fn from_toml_never_panics_on_any_text(text in "\\PC{0,300}") {
            if let Err(e) = load(&text) {
                proptest::prop_assert_eq!(exit_of(&e), Exit::Config);
            }
        }

        #[test]
        fn from_toml_never_panics_on_config_like_files(
            lines in proptest::collection::vec((0..KEYS.len(), toml_value()), 0..14),
        ) {
            let text: String = lines
                .iter()
                .map(|(k, v)| {
                    let key = KEYS[*k];
                    if key.starts_with('[') {
                        format!("{key}\n")
                    } else {
                        format!("{key} = {v}\n")
                    }
                })
                .collect();
            match load(&text) {
                Ok(c) => {
                    // Whatever is accepted keeps the promises the rest of the code relies on.
                    proptest::prop_assert!(c.password.min_length >= 1);
                    proptest::prop_assert!(c.password.max_length <= 4096);
                    proptest::prop_assert!(is_identifier(&c.users.table));
                    if let Some(url) = &c.base_url {
                        proptest::prop_assert!(check_base_url(url).is_ok());
                    }
                }
                Err(e) => proptest::prop_assert_eq!(exit_of(&e), Exit::Config, "{}", text),
            }
        }
    }

    #[test]
    fn identifiers() {
        assert!(is_identifier("users"));
        assert!(is_identifier("_a1"));
        assert!(!is_identifier("1a"));
        assert!(!is_identifier("a-b"));
        assert!(!is_identifier(""));
        assert!(!is_identifier("a\"b"));
    }
}
