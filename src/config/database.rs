//! `database` and its companions: a SQLite path, or the URL of a PostgreSQL or MariaDB/MySQL
//! server, with the password, the extra CA and the schema kept out of the URL.

use super::{Problem, is_loopback_host};
use std::path::{Path, PathBuf};

/// Where pwreset's state and the users live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Database {
    /// A SQLite file.
    Sqlite(PathBuf),
    /// A database server.
    Server(Server),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerKind {
    Postgres,
    /// MariaDB or MySQL.
    Mysql,
}

impl ServerKind {
    pub fn name(self) -> &'static str {
        match self {
            ServerKind::Postgres => "PostgreSQL",
            ServerKind::Mysql => "MariaDB/MySQL",
        }
    }
}

/// How to reach the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    Tcp {
        host: String,
        port: u16,
    },
    /// A unix socket: for PostgreSQL the folder that holds it (`?host=/run/postgresql`), for
    /// MySQL the socket file (`?socket=/run/mysqld/mysqld.sock`).
    Socket(PathBuf),
}

/// A database server, as the `database` URL and its companion keys describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    pub kind: ServerKind,
    pub user: String,
    pub endpoint: Endpoint,
    pub dbname: String,
    /// Verify the server's certificate and host name (the default); false only for a loopback
    /// address or a unix socket, and only when the URL says so.
    pub tls: bool,
    /// `database_password_file`; else `PWRESET_DB_PASSWORD`; else no password.
    pub password_file: Option<PathBuf>,
    /// `database_ca_file`: roots trusted besides the public ones.
    pub ca_file: Option<PathBuf>,
    /// `schema` (PostgreSQL only).
    pub schema: Option<String>,
    /// Seconds to wait for a connection.
    pub connect_timeout: u64,
}

impl Server {
    /// The server in words, without any secret: "PostgreSQL database app on db.internal:5432".
    pub fn describe(&self) -> String {
        let at = match &self.endpoint {
            Endpoint::Tcp { host, port } => format!("{host}:{port}"),
            Endpoint::Socket(p) => format!("socket {}", p.display()),
        };
        format!("{} database {} on {at}", self.kind.name(), self.dbname)
    }

    /// The password: `database_password_file` (mode 0600, a trusted owner), else the
    /// environment's `PWRESET_DB_PASSWORD`, else none.
    pub fn password(&self) -> anyhow::Result<Option<zeroize::Zeroizing<String>>> {
        if let Some(path) = &self.password_file {
            return super::read_secret_file(path, "database_password_file").map(Some);
        }
        Ok(std::env::var("PWRESET_DB_PASSWORD")
            .ok()
            .filter(|p| !p.is_empty())
            .map(zeroize::Zeroizing::new))
    }

    /// A loopback address, `localhost` (whose addresses the connection checks, see
    /// [`super::loopback_addrs`]) or a unix socket: the only places plaintext may go.
    pub fn is_local(&self) -> bool {
        match &self.endpoint {
            Endpoint::Tcp { host, .. } => is_loopback_host(host),
            Endpoint::Socket(_) => true,
        }
    }
}

impl Database {
    /// The database in words, for messages.
    pub fn describe(&self) -> String {
        match self {
            Database::Sqlite(p) => format!("SQLite database {}", p.display()),
            Database::Server(s) => s.describe(),
        }
    }

    /// The SQLite file, if it is one.
    pub fn sqlite_path(&self) -> Option<&Path> {
        match self {
            Database::Sqlite(p) => Some(p),
            Database::Server(_) => None,
        }
    }
}

/// The keys that travel with `database`.
pub(super) struct Companions {
    pub password_file: Option<PathBuf>,
    pub ca_file: Option<PathBuf>,
    pub schema: Option<String>,
}

/// Parse `database`: a URL with a known scheme, else a SQLite path.
pub(super) fn parse(text: &str, extra: Companions) -> Result<Database, Problem> {
    let bad = |why: String| Problem::new("database", why);
    if text.is_empty() {
        return Err(bad("is empty".into()));
    }
    let Some((scheme, _)) = text.split_once("://") else {
        if extra.password_file.is_some() || extra.ca_file.is_some() || extra.schema.is_some() {
            return Err(Problem::new(
                "database_password_file",
                "database_password_file, database_ca_file and schema are for a database server; database is a SQLite path",
            ));
        }
        return Ok(Database::Sqlite(PathBuf::from(text)));
    };
    let kind = match scheme.to_ascii_lowercase().as_str() {
        "postgres" | "postgresql" => ServerKind::Postgres,
        "mysql" | "mariadb" => ServerKind::Mysql,
        other => {
            return Err(bad(format!(
                "unknown database URL scheme {:?}; use postgres://, postgresql:// or mysql:// (or a SQLite file path)",
                crate::ui::escape(other)
            )));
        }
    };
    // libpq's `postgresql://user@/db?host=/run/postgresql` has an empty host, which URL
    // parsers refuse: stand a placeholder in for it, and require a socket below.
    let (text, hostless) = match text.split_once("://") {
        Some((scheme, rest))
            if rest
                .split('/')
                .next()
                .is_some_and(|a| a.is_empty() || a.ends_with('@')) =>
        {
            let (auth, path) = rest.split_once('/').unwrap_or((rest, ""));
            (format!("{scheme}://{auth}localhost/{path}"), true)
        }
        _ => (text.to_owned(), false),
    };
    let url = url::Url::parse(&text).map_err(|e| {
        bad(format!(
            "is not a valid URL ({e}); write it like {}",
            example(kind)
        ))
    })?;
    if url.password().is_some() {
        return Err(bad(format!(
            "the URL contains a password; remove it from the URL and put it in database_password_file (a file of mode 0600) or the environment variable PWRESET_DB_PASSWORD, so it never shows in the config, ps or logs (e.g. {})",
            example(kind)
        )));
    }
    let dbname = url.path().trim_start_matches('/').to_owned();
    if dbname.is_empty() || dbname.contains('/') {
        return Err(bad(format!(
            "the URL names no database; write it like {}",
            example(kind)
        )));
    }
    let user = match url.username() {
        "" => std::env::var("USER").unwrap_or_else(|_| "root".into()),
        u => percent_decode(u),
    };
    let mut socket = None;
    let mut tls = None;
    let mut connect_timeout = 10;
    for (k, v) in url.query_pairs() {
        match (kind, k.as_ref()) {
            (ServerKind::Postgres, "host") | (ServerKind::Mysql, "socket") => {
                if !v.starts_with('/') {
                    return Err(bad(format!(
                        "{k}= must be an absolute path to a unix socket{}",
                        if kind == ServerKind::Postgres {
                            " folder (e.g. ?host=/run/postgresql)"
                        } else {
                            " (e.g. ?socket=/run/mysqld/mysqld.sock)"
                        }
                    )));
                }
                socket = Some(PathBuf::from(v.as_ref()));
            }
            (ServerKind::Postgres, "sslmode") | (ServerKind::Mysql, "ssl-mode" | "sslmode") => {
                tls = Some(match v.to_ascii_lowercase().as_str() {
                    "verify-full" | "verify_identity" => true,
                    "disable" | "disabled" => false,
                    other => {
                        return Err(bad(format!(
                            "{k}={} is not accepted: pwreset always verifies the server's certificate and host name. Use {k}={} (the default), or {k}={} to a loopback address or unix socket",
                            crate::ui::escape(other),
                            if kind == ServerKind::Postgres {
                                "verify-full"
                            } else {
                                "VERIFY_IDENTITY"
                            },
                            if kind == ServerKind::Postgres {
                                "disable"
                            } else {
                                "DISABLED"
                            },
                        )));
                    }
                });
            }
            (_, "connect_timeout") => {
                connect_timeout = v
                    .parse::<u64>()
                    .ok()
                    .filter(|n| (1..=600).contains(n))
                    .ok_or_else(|| {
                        bad("connect_timeout= must be whole seconds from 1 to 600".into())
                    })?;
            }
            (_, other) => {
                return Err(bad(format!(
                    "unknown URL parameter {:?}; pwreset reads {}",
                    crate::ui::escape(other),
                    match kind {
                        ServerKind::Postgres => "host, sslmode and connect_timeout",
                        ServerKind::Mysql => "socket, ssl-mode and connect_timeout",
                    }
                )));
            }
        }
    }
    let endpoint = match socket {
        Some(p) => Endpoint::Socket(p),
        None if hostless => {
            return Err(bad(format!(
                "the URL names no host; write it like {}, or give a unix socket with {}",
                example(kind),
                match kind {
                    ServerKind::Postgres => "?host=/run/postgresql",
                    ServerKind::Mysql => "?socket=/run/mysqld/mysqld.sock",
                }
            )));
        }
        None => Endpoint::Tcp {
            host: match url.host() {
                Some(url::Host::Domain(d)) => d.to_owned(),
                Some(url::Host::Ipv4(ip)) => ip.to_string(),
                Some(url::Host::Ipv6(ip)) => ip.to_string(),
                None => {
                    return Err(bad(format!(
                        "the URL names no host; write it like {}",
                        example(kind)
                    )));
                }
            },
            port: url.port().unwrap_or(match kind {
                ServerKind::Postgres => 5432,
                ServerKind::Mysql => 3306,
            }),
        },
    };
    if extra.schema.is_some() && kind != ServerKind::Postgres {
        return Err(Problem::new("schema", "is for PostgreSQL only"));
    }
    if let Some(schema) = &extra.schema
        && !super::is_identifier(schema)
    {
        return Err(Problem::new(
            "schema",
            format!("{schema:?} is not a plain SQL name (letters, digits and _)"),
        ));
    }
    let server = Server {
        kind,
        user,
        endpoint,
        dbname: percent_decode(&dbname),
        tls: tls.unwrap_or(true),
        password_file: extra.password_file,
        ca_file: extra.ca_file,
        schema: extra.schema,
        connect_timeout,
    };
    if !server.tls && !server.is_local() {
        return Err(bad(format!(
            "TLS is turned off for {}: plaintext would send the database password and every token digest to wherever the name leads. It is only allowed to a loopback address (127.0.0.1, ::1 or localhost) or a unix socket, not to a name DNS decides, *.localhost included. Use TLS (remove the sslmode/ssl-mode parameter), or a loopback address",
            crate::ui::escape(&server.describe())
        )));
    }
    Ok(Database::Server(server))
}

fn example(kind: ServerKind) -> &'static str {
    match kind {
        ServerKind::Postgres => "postgres://pwreset@db.internal:5432/app",
        ServerKind::Mysql => "mysql://pwreset@db.internal:3306/app",
    }
}

fn percent_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={s}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| s.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn none() -> Companions {
        Companions {
            password_file: None,
            ca_file: None,
            schema: None,
        }
    }

    fn server(text: &str) -> Result<Server, String> {
        match parse(text, none()) {
            Ok(Database::Server(s)) => Ok(s),
            Ok(other) => Err(format!("not a server: {other:?}")),
            Err(p) => Err(p.why),
        }
    }

    #[test]
    fn paths_urls_and_their_rules() {
        assert_eq!(
            parse("/var/lib/pwreset/pwreset.db", none()).ok(),
            Some(Database::Sqlite(PathBuf::from(
                "/var/lib/pwreset/pwreset.db"
            )))
        );
        let s = server("postgres://app@db.example.com/app").expect("postgres");
        assert_eq!(s.kind, ServerKind::Postgres);
        assert!(s.tls);
        assert_eq!(
            s.endpoint,
            Endpoint::Tcp {
                host: "db.example.com".into(),
                port: 5432
            }
        );
        let s = server("postgresql://app@/app?host=/run/postgresql").expect("socket");
        assert_eq!(s.user, "app");
        let s = server("postgresql:///app?host=/run/postgresql").expect("socket, no user");
        assert_eq!(s.dbname, "app");
        assert!(server("postgresql:///app").is_err());
        assert_eq!(
            s.endpoint,
            Endpoint::Socket(PathBuf::from("/run/postgresql"))
        );
        let s = server("mysql://root@127.0.0.1/test?ssl-mode=DISABLED").expect("mysql");
        assert!(!s.tls);
        assert_eq!(
            s.describe(),
            "MariaDB/MySQL database test on 127.0.0.1:3306"
        );
        // Plaintext only to loopback or a socket.
        assert!(server("postgres://a@db.example.com/app?sslmode=disable").is_err());
        assert!(server("postgres://a@[::1]/app?sslmode=disable").is_ok());
        assert!(server("postgres://a@localhost/app?sslmode=disable").is_ok());
        let why = server("postgres://a@db.localhost/app?sslmode=disable").expect_err("a name");
        assert!(
            why.contains("TLS") && why.contains("loopback address"),
            "{why}"
        );
        assert!(server("mysql://a@db.localhost/app?ssl-mode=DISABLED").is_err());
        // Weaker verification than verify-full is refused, not silently strengthened.
        assert!(server("postgres://a@db.example.com/app?sslmode=require").is_err());
        let why = server("postgres://a:hunter2@db.example.com/app").expect_err("password");
        assert!(why.contains("database_password_file"), "{why}");
        assert!(!why.contains("hunter2"), "{why}");
        assert!(server("redis://x/0").is_err());
        assert!(server("postgres://a@db.example.com/").is_err());
        assert!(server("postgres://a@db.example.com/app?options=-c%20x").is_err());
    }
}
