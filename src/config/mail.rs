//! `[mail]`, `[mail.smtp]`, `[mail.file]`, `[mail.sendmail]`: how messages are made and sent.

use super::{Problem, duration, is_loopback_host};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

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
    /// Replaces the built-in subjects in every language (a `template_dir` file still wins).
    pub subject: Option<String>,
    pub changed_subject: Option<String>,
    pub template_dir: Option<PathBuf>,
    /// Named in the subjects and bodies: `service_name`, else the display name of `from`, else
    /// its domain.
    pub service_name: String,
    /// An address or a URL people can turn to, as written.
    pub support: Option<String>,
    /// `mail.timezone`, for the times written in messages.
    pub timezone: jiff::tz::TimeZone,
    pub timezone_name: String,
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

/// `[mail]` as written, with its defaults.
#[derive(Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct RawMail {
    transport: String,
    from: String,
    subject: Option<String>,
    changed_subject: Option<String>,
    template_dir: Option<PathBuf>,
    service_name: Option<String>,
    support: Option<String>,
    timezone: String,
    smtp: RawSmtp,
    file: RawFile,
    sendmail: RawSendmail,
}

impl Default for RawMail {
    fn default() -> Self {
        RawMail {
            transport: "smtp".into(),
            from: "pwreset <no-reply@localhost>".into(),
            // None: the built-in subject of the recipient's language.
            subject: None,
            changed_subject: None,
            template_dir: None,
            service_name: None,
            support: None,
            timezone: "UTC".into(),
            smtp: RawSmtp::default(),
            file: RawFile::default(),
            sendmail: RawSendmail::default(),
        }
    }
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
struct RawSmtp {
    host: String,
    /// Default: from `tls` (587, 465 or 25).
    port: Option<u16>,
    /// Default: none to a loopback host, else starttls.
    tls: Option<String>,
    username: Option<String>,
    password_file: Option<PathBuf>,
    timeout: String,
    ca_file: Option<PathBuf>,
    connections: u32,
}

impl Default for RawSmtp {
    fn default() -> Self {
        RawSmtp {
            host: "localhost".into(),
            port: None,
            tls: None,
            username: None,
            password_file: None,
            timeout: "30s".into(),
            ca_file: None,
            connections: 4,
        }
    }
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
struct RawFile {
    dir: PathBuf,
}

impl Default for RawFile {
    fn default() -> Self {
        RawFile {
            dir: PathBuf::from("/var/spool/pwreset/outbox"),
        }
    }
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
struct RawSendmail {
    command: PathBuf,
}

impl Default for RawSendmail {
    fn default() -> Self {
        RawSendmail {
            command: PathBuf::from("/usr/sbin/sendmail"),
        }
    }
}

impl RawMail {
    pub(super) fn resolve(self) -> Result<Mail, Problem> {
        let transport = match self.transport.as_str() {
            "smtp" => TransportKind::Smtp,
            "sendmail" => TransportKind::Sendmail,
            "file" => TransportKind::File,
            "stdout" => TransportKind::Stdout,
            other => {
                return Err(Problem::new(
                    "mail.transport",
                    format!("unknown transport {other:?}; use smtp, sendmail, file or stdout"),
                ));
            }
        };
        let from: lettre::message::Mailbox = self.from.parse().map_err(|e| {
            Problem::new(
                "mail.from",
                format!(
                    "{e} (got {:?}; write it like \"Accounts <no-reply@example.com>\")",
                    self.from
                ),
            )
        })?;
        for (key, s) in [
            ("mail.subject", &self.subject),
            ("mail.changed_subject", &self.changed_subject),
            ("mail.service_name", &self.service_name),
            ("mail.support", &self.support),
        ] {
            if let Some(s) = s
                && (s.chars().any(char::is_control) || s.len() > 200 || s.trim().is_empty())
            {
                return Err(Problem::new(
                    key,
                    "must be one non-empty line of at most 200 bytes",
                ));
            }
        }
        if let Some(support) = &self.support {
            support_href(support).map_err(|why| Problem::new("mail.support", why))?;
        }
        let service_name = match self.service_name {
            Some(s) => s.trim().to_owned(),
            None => from
                .name
                .clone()
                .filter(|n| !n.trim().is_empty())
                .unwrap_or_else(|| from.email.domain().to_owned()),
        };
        // UTC, the default, needs no database: jiff's first lookup lists every zone under
        // /usr/share/zoneinfo, about a millisecond on every run of every command (a third of
        // what a verify takes).
        let timezone = if self.timezone.eq_ignore_ascii_case("UTC") {
            jiff::tz::TimeZone::UTC
        } else {
            jiff::tz::TimeZone::get(&self.timezone).map_err(|_| {
                Problem::new(
                    "mail.timezone",
                    format!(
                        "unknown time zone {:?}; use an IANA name such as \"Europe/Berlin\" or \"UTC\"",
                        self.timezone
                    ),
                )
            })?
        };
        let s = self.smtp;
        let tls = match s.tls.as_deref() {
            Some("starttls") => Tls::StartTls,
            Some("tls") => Tls::Tls,
            Some("none") => Tls::None,
            None if is_loopback_host(&s.host) => Tls::None,
            None => Tls::StartTls,
            Some(other) => {
                return Err(Problem::new(
                    "mail.smtp.tls",
                    format!("unknown value {other:?}; use starttls, tls or none"),
                ));
            }
        };
        if tls == Tls::None && transport == TransportKind::Smtp && !is_loopback_host(&s.host) {
            return Err(Problem::new(
                "mail.smtp.tls",
                format!(
                    "\"none\" would send reset links in clear text to {}; it is only allowed to a loopback address (127.0.0.1, ::1 or localhost), not to a name whose address DNS decides. Use TLS (\"starttls\" or \"tls\"), or a loopback address",
                    crate::ui::escape(&s.host)
                ),
            ));
        }
        let port = s.port.unwrap_or(match tls {
            Tls::StartTls => 587,
            Tls::Tls => 465,
            Tls::None => 25,
        });
        if !(1..=64).contains(&s.connections) {
            return Err(Problem::new(
                "mail.smtp.connections",
                "must be between 1 and 64",
            ));
        }
        Ok(Mail {
            transport,
            from,
            subject: self.subject,
            changed_subject: self.changed_subject,
            template_dir: self.template_dir,
            service_name,
            support: self.support.map(|s| s.trim().to_owned()),
            timezone,
            timezone_name: self.timezone,
            smtp: Smtp {
                host: s.host,
                port,
                tls,
                username: s.username,
                password_file: s.password_file,
                timeout: duration("mail.smtp.timeout", &s.timeout)?,
                ca_file: s.ca_file,
                connections: s.connections,
            },
            file_dir: self.file.dir,
            sendmail_command: self.sendmail.command,
        })
    }
}

/// Where `mail.support` points a reader: `mailto:` for an address, the URL itself for a web
/// page. Anything else is refused, so that a typo does not ship in every message.
pub fn support_href(support: &str) -> Result<String, String> {
    let support = support.trim();
    if let Ok(addr) = support.parse::<lettre::Address>() {
        return Ok(format!("mailto:{addr}"));
    }
    match url::Url::parse(support) {
        Ok(u) if matches!(u.scheme(), "https" | "http") && u.host().is_some() => Ok(u.to_string()),
        Ok(u) if u.scheme() == "mailto" => Ok(u.to_string()),
        _ => Err(format!(
            "{support:?} is neither an email address nor an http(s) URL; write it like \"help@example.com\" or \"https://help.example.com\""
        )),
    }
}
