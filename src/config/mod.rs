//! Configuration: command-line flag > environment > config file > built-in default, resolved once
//! into one validated [`Config`]. Every error names the key and the file, and exits 78.
//!
//! One file per section; each section's defaults are written once, in its `Default` impl, and
//! serde fills in what the file leaves out.

mod database;
mod example;
mod fs;
pub mod keys;
mod ldap;
mod mail;
mod password;
mod serve;
mod show;
mod users;

pub use database::{Database, Endpoint, Server, ServerKind};
pub use example::{Flavour, example};
pub use fs::{create_private_dir, default_config_paths, default_database, read_secret_file};
pub use ldap::{Ldap, PasswordChange, UserPasswordFormat};
pub use mail::{Mail, Smtp, Tls, TransportKind, support_href};
pub use password::{
    ARGON2_MAX_ITERATIONS, ARGON2_MAX_MEMORY_KIB, ARGON2_MAX_PARALLELISM, Argon2, Bcrypt, Password,
};
pub use serve::{Listen, LogFormat, Serve, parse_listen};
pub use show::{Shown, show};
pub use users::{UsersTable, is_identifier};

use crate::error::{Exit, fail};
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
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
            // Said wherever a setting turns out missing, so the reader learns which files were
            // looked for and that none was there.
            Source::Defaults => {
                let paths: Vec<String> = default_config_paths()
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect();
                write!(
                    f,
                    "built-in defaults (no config file found; looked for {}; `pwreset config example` prints one to start from)",
                    paths.join(" and ")
                )
            }
        }
    }
}

/// The resolved, validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub source: Source,
    pub database: Database,
    pub base_url: Option<String>,
    pub token_ttl: Duration,
    pub request_throttle: Duration,
    pub busy_timeout: Duration,
    pub notify_on_reset: bool,
    pub users: UsersTable,
    pub mail: Mail,
    pub password: Password,
    pub serve: Serve,
    /// `[ldap]`: the users live in a directory, not in a `[users]` table.
    pub ldap: Option<Ldap>,
}

/// A value the config file got wrong: the key, and why. Turned into a 78 that also names the
/// file.
#[derive(Debug)]
pub(crate) struct Problem {
    key: String,
    why: String,
}

impl Problem {
    pub(crate) fn new(key: impl Into<String>, why: impl Into<String>) -> Problem {
        Problem {
            key: key.into(),
            why: why.into(),
        }
    }
}

/// The file as written: the top-level keys, and each section with its own defaults.
#[derive(Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
struct RawConfig {
    database: Option<PathBuf>,
    database_password_file: Option<PathBuf>,
    database_ca_file: Option<PathBuf>,
    schema: Option<String>,
    base_url: Option<String>,
    token_ttl: String,
    request_throttle: String,
    busy_timeout: String,
    notify_on_reset: bool,
    users: UsersTable,
    mail: mail::RawMail,
    password: Password,
    serve: serve::RawServe,
    #[serde(skip_serializing_if = "Option::is_none")]
    ldap: Option<ldap::RawLdap>,
}

impl Default for RawConfig {
    fn default() -> Self {
        RawConfig {
            database: None,
            database_password_file: None,
            database_ca_file: None,
            schema: None,
            base_url: None,
            token_ttl: "1h".into(),
            request_throttle: "60s".into(),
            busy_timeout: "5s".into(),
            notify_on_reset: true,
            users: UsersTable::default(),
            mail: mail::RawMail::default(),
            password: Password::default(),
            serve: serve::RawServe::default(),
            ldap: None,
        }
    }
}

/// What the command line and the environment say, before the file is read.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    /// `--config` / `PWRESET_CONFIG`: a file that must exist.
    pub config: Option<PathBuf>,
    /// `--db` / `PWRESET_DB`: a SQLite path or a server URL.
    pub database: Option<PathBuf>,
}

/// Longest config file read; a config is a few hundred bytes.
const MAX_CONFIG_LEN: u64 = 1 << 20;

impl Config {
    /// Resolve the configuration: find and read the file, apply the overrides, validate.
    pub fn load(over: &Overrides) -> Result<Config> {
        let (raw, source, _) = locate(over)?;
        resolve(raw, &source, over)
            .map_err(|p| fail(Exit::Config, format!("{source}: {}: {}", p.key, p.why)))
    }

    /// How `reset` hashes, as far as the config says: `[users] password_format` (argon2id for
    /// `auto`, which [`crate::password::census::settings`] resolves against the table), the
    /// costs of `[password.*]`, and the pepper (read here, from its 0600 file, when set: 77
    /// when others may read it, as for every secret file).
    pub fn hash_settings(&self) -> Result<crate::password::HashSettings> {
        let mut s = self.hash_settings_unpeppered();
        if let Some(path) = &self.users.pepper_file {
            let pepper = read_secret_file(path, "users.pepper_file")?;
            s.pepper = Some(zeroize::Zeroizing::new(pepper.as_bytes().to_vec()));
        }
        Ok(s)
    }

    /// [`Config::hash_settings`] without reading the pepper file.
    pub fn hash_settings_unpeppered(&self) -> crate::password::HashSettings {
        let format = self
            .users
            .password_format
            .fixed()
            .unwrap_or(crate::password::Format::Argon2id);
        let mut s = crate::password::HashSettings::for_format(format);
        if format != crate::password::Format::DjangoArgon2 {
            s.argon2 = self.password.argon2;
        }
        s.bcrypt_cost = self.password.bcrypt.cost;
        s.bcrypt_prefix = self.password.bcrypt.prefix.unwrap_or_default();
        s
    }

    /// Parse a config from TOML text (for tests and fuzzing); `name` is used in messages.
    pub fn from_toml(text: &str, name: &Path, over: &Overrides) -> Result<Config> {
        let raw = parse(text, name)?;
        let source = Source::File(name.to_owned());
        resolve(raw, &source, over)
            .map_err(|p| fail(Exit::Config, format!("{source}: {}: {}", p.key, p.why)))
    }

    /// The built-in defaults with a database path, for `demo`.
    pub fn defaults_with(database: PathBuf) -> Result<Config> {
        let over = Overrides {
            config: None,
            database: Some(database),
        };
        resolve(RawConfig::default(), &Source::Defaults, &over).map_err(|p| {
            fail(
                Exit::Config,
                format!("built-in defaults: {}: {}", p.key, p.why),
            )
        })
    }
}

/// Find and read the config file: `--config`, else the first default file that exists, else
/// the built-in defaults. Also returns the text read, for `config show`'s line numbers.
fn locate(over: &Overrides) -> Result<(RawConfig, Source, Option<String>)> {
    if let Some(path) = &over.config {
        return Ok(match read_file(path, true)? {
            Some((raw, text)) => (raw, Source::File(path.clone()), Some(text)),
            None => (RawConfig::default(), Source::File(path.clone()), None),
        });
    }
    for path in default_config_paths() {
        if let Some((raw, text)) = read_file(&path, false)? {
            return Ok((raw, Source::File(path), Some(text)));
        }
    }
    Ok((RawConfig::default(), Source::Defaults, None))
}

/// The built-in defaults as TOML values, made by the sections' `Default` impls: what the man
/// page, `config example` and `config show` print as defaults.
pub(crate) fn defaults() -> toml::Table {
    // Serialising plain strings, numbers and tables cannot fail; a unit test makes sure.
    toml::Table::try_from(RawConfig::default()).unwrap_or_default()
}

/// The value at a dotted key (`mail.smtp.host`) of a table.
pub(crate) fn lookup<'t>(table: &'t toml::Table, dotted: &str) -> Option<&'t toml::Value> {
    let mut parts = dotted.split('.');
    let mut value = table.get(parts.next()?)?;
    for part in parts {
        value = value.as_table()?.get(part)?;
    }
    Some(value)
}

/// Serialisers for the values the config reads through `FromStr`: written back by name.
mod named {
    use serde::Serializer;

    pub fn format<S: Serializer>(
        v: &crate::password::FormatSetting,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_str(v.name())
    }

    pub fn normalize<S: Serializer>(
        v: &crate::password::Normalize,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_str(v.name())
    }

    pub fn bcrypt_prefix<S: Serializer>(
        v: &Option<crate::password::BcryptPrefix>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match v {
            Some(v) => s.serialize_str(v.name()),
            None => s.serialize_none(),
        }
    }
}

fn read_file(path: &Path, required: bool) -> Result<Option<(RawConfig, String)>> {
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
    // Checked on the open file, so the file judged is the file read: the config decides which
    // command runs as sendmail, so it must be as trusted as the binary.
    let meta = file
        .metadata()
        .with_context(|| format!("cannot examine config file {}", path.display()))?;
    crate::trust::check_trusted_meta(path, &meta, "config")?;
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
    let raw = parse(&text, path)?;
    Ok(Some((raw, text)))
}

/// Parse the file, naming the key of a value of the wrong type (serde_path_to_error: toml's own
/// message gives only the line).
fn parse(text: &str, path: &Path) -> Result<RawConfig> {
    let located = |e: &toml::de::Error, key: Option<String>, message: &str| {
        let place = e
            .span()
            .map(|s| {
                let line = text[..s.start.min(text.len())].matches('\n').count() + 1;
                format!(" (line {line})")
            })
            .unwrap_or_default();
        let key = key.map(|k| format!("{k}: ")).unwrap_or_default();
        fail(
            Exit::Config,
            format!("config {}{place}: {key}{message}", path.display()),
        )
    };
    let de = toml::Deserializer::parse(text).map_err(|e| located(&e, None, e.message()))?;
    serde_path_to_error::deserialize(de).map_err(|e| {
        let key = e.path().to_string();
        let key = (key != "." && !key.is_empty()).then_some(key);
        let message = e.inner().message();
        match unknown_key_hint(message, key.as_deref()) {
            // The hint replaces serde's list of every key the table accepts.
            Some((key, hint)) => {
                let unknown = message.split(", expected").next().unwrap_or(message);
                located(e.inner(), Some(key), &format!("{unknown}; {hint}"))
            }
            None => located(e.inner(), key, message),
        }
    })
}

/// For serde's "unknown field `x`, expected one of ...": the key in full, and where it probably
/// belongs (see [`keys::hint`]).
fn unknown_key_hint(message: &str, path: Option<&str>) -> Option<(String, String)> {
    let name = message.strip_prefix("unknown field `")?.split('`').next()?;
    // serde_path_to_error's path is the table the key was found in, or the key itself.
    let path = path.unwrap_or("");
    let section = match path.rsplit_once('.') {
        Some((parent, last)) if last == name => parent,
        _ if path == name => "",
        _ => path,
    };
    let full = if section.is_empty() {
        name.to_owned()
    } else {
        format!("{section}.{name}")
    };
    Some((full, keys::hint(section, name)?))
}

/// A value read through its `FromStr`, whose error names the valid values.
pub(crate) fn from_str<'de, D, T>(d: D) -> std::result::Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    let text = String::deserialize(d)?;
    text.parse().map_err(serde::de::Error::custom)
}

/// [`from_str`] for a key without a default: present means set.
pub(crate) fn some_from_str<'de, D, T>(d: D) -> std::result::Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    from_str(d).map(Some)
}

/// A humantime duration from the config.
pub(crate) fn duration(key: &str, text: &str) -> Result<Duration, Problem> {
    humantime::parse_duration(text).map_err(|e| {
        Problem::new(
            key,
            format!("{e} (got {text:?}; write it like \"90s\", \"30m\", \"1h\")"),
        )
    })
}

fn resolve(raw: RawConfig, source: &Source, over: &Overrides) -> Result<Config, Problem> {
    let database = over
        .database
        .clone()
        .or(raw.database)
        .unwrap_or_else(default_database);
    let extra = database::Companions {
        password_file: raw.database_password_file,
        ca_file: raw.database_ca_file,
        schema: raw.schema,
    };
    // A path that is not UTF-8 can only be a SQLite file.
    let database = match database.to_str() {
        Some(text) => database::parse(text, extra)?,
        None => Database::Sqlite(database),
    };
    let base_url = match raw.base_url {
        Some(url) => Some(check_base_url(&url).map_err(|why| Problem::new("base_url", why))?),
        None => None,
    };
    let token_ttl = duration("token_ttl", &raw.token_ttl)?;
    if token_ttl < MIN_TTL || token_ttl > MAX_TTL {
        return Err(Problem::new("token_ttl", "must be between 1m and 30days"));
    }
    let request_throttle = duration("request_throttle", &raw.request_throttle)?;
    let busy_timeout = duration("busy_timeout", &raw.busy_timeout)?;
    if busy_timeout > Duration::from_secs(3600) {
        return Err(Problem::new("busy_timeout", "must be at most 1h"));
    }
    raw.users.validate()?;
    raw.password.validate()?;
    let ldap = match raw.ldap {
        None => None,
        Some(l) => Some(resolve_ldap(l, &raw.users)?),
    };
    Ok(Config {
        source: source.clone(),
        database,
        base_url,
        token_ttl,
        request_throttle,
        busy_timeout,
        notify_on_reset: raw.notify_on_reset,
        users: raw.users,
        mail: raw.mail.resolve()?,
        password: raw.password,
        serve: raw.serve.resolve()?,
        ldap,
    })
}

/// `[ldap]`, in a build that has LDAP support, and not beside a `[users]` table mapping: the
/// people live in one place.
fn resolve_ldap(l: ldap::RawLdap, users: &UsersTable) -> Result<Ldap, Problem> {
    if !cfg!(feature = "ldap") {
        return Err(Problem::new(
            "ldap",
            "this pwreset was built without LDAP support; rebuild with --features ldap (the Debian package has it)",
        ));
    }
    if *users != UsersTable::default() {
        return Err(Problem::new(
            "ldap",
            "an [ldap] section and a [users] table mapping cannot both be set: the users live either in a directory or in a table; remove one of them",
        ));
    }
    l.resolve()
}

/// Shortest and longest token lifetime, in the config and for `request --ttl`.
pub const MIN_TTL: Duration = Duration::from_secs(60);
pub const MAX_TTL: Duration = Duration::from_secs(30 * 86400);

/// Longest `base_url`: a link (base, `?token=`, token) must stay well under the longest input
/// `verify` and `reset` read, [`crate::token::MAX_INPUT_LEN`].
pub const MAX_BASE_URL_LEN: usize = 2048;

/// Check a `base_url` as a browser would read it (WHATWG URL parsing, through the `url` crate):
/// https, or http to a loopback host; no user name or password; no fragment; no token already;
/// at most [`MAX_BASE_URL_LEN`] bytes. Returns the URL as the parser writes it.
pub fn check_base_url(text: &str) -> std::result::Result<String, String> {
    if text.len() > MAX_BASE_URL_LEN {
        return Err(format!(
            "is {} bytes long; at most {MAX_BASE_URL_LEN}, so that the links it makes can be pasted back into verify and reset",
            text.len()
        ));
    }
    if text.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err("must not contain spaces or control characters".into());
    }
    let url = url::Url::parse(text).map_err(|e| {
        format!("{text:?} is not an absolute URL ({e}); write it like \"https://accounts.example.com/reset_password\"")
    })?;
    let host = match url.host() {
        Some(url::Host::Domain(d)) => d.to_owned(),
        Some(url::Host::Ipv4(ip)) => ip.to_string(),
        Some(url::Host::Ipv6(ip)) => ip.to_string(),
        None => return Err(format!("{text:?} has no host")),
    };
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!(
            "{text:?} has a user name or password before the host; remove it"
        ));
    }
    match url.scheme() {
        "https" => {}
        "http" if is_loopback_host(&host) => {}
        "http" => {
            return Err(format!(
                "{text:?} is http://; reset links must use https:// (plain http is only allowed for a loopback host)"
            ));
        }
        _ => return Err(format!("{text:?} must start with https://")),
    }
    if url.fragment().is_some() {
        return Err("must not contain a #fragment (the token goes in the query)".into());
    }
    if url.query_pairs().any(|(k, _)| k == "token") {
        return Err("must not already contain token=".into());
    }
    let out = url.to_string();
    if out.len() > MAX_BASE_URL_LEN {
        return Err(format!(
            "is {} bytes long once written out; at most {MAX_BASE_URL_LEN}",
            out.len()
        ));
    }
    Ok(out)
}

/// True for a loopback IP address and for `localhost`, the only hosts plaintext may go to.
/// Any other name, `db.localhost` included, is whatever DNS says it is; a connection to
/// `localhost` still checks what it resolves to ([`loopback_addrs`]).
pub fn is_loopback_host(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The addresses a plaintext connection to `host` may use: the loopback address itself, or every
/// address `localhost` resolves to, each of them loopback. Callers connect to these, not to the
/// name again, so a second lookup cannot send the password elsewhere. Anything else is 78, the
/// message naming `what` (the setting) and saying to use TLS or a loopback address.
pub fn loopback_addrs(host: &str, port: u16, what: &str) -> Result<Vec<std::net::SocketAddr>> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let addrs = if let Ok(ip) = bare.parse::<IpAddr>() {
        vec![std::net::SocketAddr::new(ip, port)]
    } else if bare.eq_ignore_ascii_case("localhost") {
        use std::net::ToSocketAddrs;
        (bare, port)
            .to_socket_addrs()
            .map_err(|e| {
                fail(
                    Exit::Config,
                    format!(
                        "{what}: localhost does not resolve on this machine ({e}); write the loopback address instead (127.0.0.1 or ::1), or use TLS"
                    ),
                )
            })?
            .collect()
    } else {
        Vec::new()
    };
    check_loopback(host, addrs, what)
}

/// [`loopback_addrs`]'s verdict on what `host` resolved to.
fn check_loopback(
    host: &str,
    addrs: Vec<std::net::SocketAddr>,
    what: &str,
) -> Result<Vec<std::net::SocketAddr>> {
    let shown = crate::ui::escape(host);
    if addrs.is_empty() {
        return Err(fail(
            Exit::Config,
            format!(
                "{what}: a connection without TLS may only go to a loopback address (127.0.0.1, ::1, localhost) or a unix socket, and {shown} is not one: where a name leads is up to DNS. Use TLS, or a loopback address"
            ),
        ));
    }
    if let Some(bad) = addrs.iter().find(|a| !a.ip().is_loopback()) {
        return Err(fail(
            Exit::Config,
            format!(
                "{what}: {shown} resolves to {}, which is not a loopback address, and a connection without TLS may only go to one. Fix /etc/hosts, or use TLS, or a loopback address (127.0.0.1, ::1)",
                bad.ip()
            ),
        ));
    }
    Ok(addrs)
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
        // A name under .localhost is a name like any other: DNS decides where it leads.
        assert!(load("base_url = \"http://app.localhost/r\"").is_err());
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
        // WHATWG parsers (browsers, the url crate) read the host of this as evil.example.
        let err = load(r#"base_url = 'http://evil.example\@localhost/reset'"#)
            .expect_err("a backslash before @ must not pass as loopback");
        assert!(crate::error::render(&err).contains("https"), "{err}");
        assert!(load("base_url = \"https://user:pw@a.example.com/r\"").is_err());
    }

    #[test]
    fn plaintext_goes_only_where_every_address_is_loopback() {
        let at = |ip: &str| std::net::SocketAddr::new(ip.parse().expect("an address"), 5432);
        for host in ["127.0.0.1", "::1", "[::1]", "127.9.9.9", "LocalHost"] {
            assert!(is_loopback_host(host), "{host}");
        }
        for host in ["db.localhost", "localhost.example.com", "10.0.0.1", "db"] {
            assert!(!is_loopback_host(host), "{host}");
        }
        let ok = check_loopback("localhost", vec![at("127.0.0.1"), at("::1")], "database")
            .expect("all loopback");
        assert_eq!(ok.len(), 2);
        let err = check_loopback(
            "localhost",
            vec![at("127.0.0.1"), at("192.0.2.7")],
            "database",
        )
        .expect_err("one address elsewhere");
        assert_eq!(exit_of(&err), Exit::Config);
        assert!(err.to_string().contains("192.0.2.7"), "{err}");
        let err = loopback_addrs("db.localhost", 5432, "database").expect_err("a name");
        assert_eq!(exit_of(&err), Exit::Config);
        let msg = err.to_string();
        assert!(
            msg.contains("TLS") && msg.contains("loopback address"),
            "{msg}"
        );
        assert_eq!(
            loopback_addrs("[::1]", 5432, "database").expect("an address"),
            vec![at("::1")]
        );
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
            ("token_ttl = 3600", "token_ttl"),
            ("[mail.smtp]\nport = \"x\"", "mail.smtp.port"),
            ("[mail]\ntimezone = \"Mars/Olympus\"", "mail.timezone"),
            ("[mail]\nsupport = \"call Bob\"", "mail.support"),
            ("[mail]\nservice_name = \"a\\nb\"", "mail.service_name"),
            ("[users]\nname_column = \"full name\"", "users.name_column"),
            ("[users]\nlocale_column = \"1x\"", "users.locale_column"),
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
        "name_column",
        "locale_column",
        "[mail]",
        "transport",
        "from",
        "subject",
        "changed_subject",
        "template_dir",
        "service_name",
        "support",
        "timezone",
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
        "[serve]",
        "listen",
        "trusted_proxies",
        "forgot_password",
        "forgot_path",
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
