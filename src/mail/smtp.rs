//! SMTP delivery: a pool of connections speaking through lettre's `SmtpConnection`, and the
//! classification of what went wrong.

use super::{SendError, Transport, chain};
use crate::config::{Config, Tls};
use crate::error::{Exit, fail};
use anyhow::Result;
use lettre::message::Message;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::SmtpConnection;
use lettre::transport::smtp::client::{Certificate, CertificateStore, TlsParameters};

/// Strings that must never appear in a message to the user.
#[derive(Clone, Default)]
pub struct Secrets(std::sync::Arc<Vec<zeroize::Zeroizing<String>>>);

impl Secrets {
    pub(super) fn scrub(&self, text: String) -> String {
        let mut text = text;
        for s in self.0.iter().filter(|s| !s.is_empty()) {
            if text.contains(s.as_str()) {
                text = text.replace(s.as_str(), "[password]");
            }
        }
        text
    }
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secrets([redacted])")
    }
}

/// The SMTP transport for the configured relay. Nothing connects until the first message.
pub(super) fn transport(config: &Config) -> Result<Transport> {
    let s = &config.mail.smtp;
    let server = format!("{}:{}", s.host, s.port);
    let tls = if s.tls != Tls::None {
        // Certificates and host names are always verified: there is no switch to turn that off.
        let mut params =
            TlsParameters::builder(s.host.clone()).certificate_store(CertificateStore::WebpkiRoots);
        if let Some(ca) = &s.ca_file {
            let pem = std::fs::read(ca).map_err(|e| {
                fail(
                    Exit::Config,
                    format!(
                        "{}: mail.smtp.ca_file: cannot read {}: {e}",
                        config.source,
                        ca.display()
                    ),
                )
            })?;
            let cert = Certificate::from_pem(&pem).map_err(|e| {
                fail(
                    Exit::Config,
                    format!(
                        "{}: mail.smtp.ca_file: {} is not a PEM certificate: {e}",
                        config.source,
                        ca.display()
                    ),
                )
            })?;
            params = params.add_root_certificate(cert);
        }
        let params = params.build_rustls().map_err(|e| {
            fail(
                Exit::Config,
                format!(
                    "{}: mail.smtp: TLS setup failed: {}",
                    config.source,
                    chain(&e)
                ),
            )
        })?;
        match s.tls {
            Tls::StartTls => SmtpTls::StartTls(params),
            _ => SmtpTls::Wrapper(params),
        }
    } else {
        SmtpTls::None
    };
    // In clear text, only to the loopback addresses checked here: `localhost` is not looked
    // up again for each connection.
    let plain_addrs = match s.tls {
        Tls::None => Some(crate::config::loopback_addrs(
            &s.host,
            s.port,
            "mail.smtp.host",
        )?),
        _ => None,
    };
    let mut secrets = Vec::new();
    let mut credentials = None;
    if let Some(user) = &s.username {
        let password = match (&s.password_file, std::env::var("PWRESET_SMTP_PASSWORD")) {
            (Some(file), _) => crate::config::read_secret_file(file, "mail.smtp.password_file")?,
            (None, Ok(p)) => zeroize::Zeroizing::new(p),
            (None, Err(_)) => {
                return Err(fail(
                    Exit::Config,
                    format!(
                        "{}: mail.smtp.username is set but there is no password: set mail.smtp.password_file or PWRESET_SMTP_PASSWORD",
                        config.source
                    ),
                ));
            }
        };
        use base64::Engine as _;
        let b64 =
            |s: &str| zeroize::Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(s));
        secrets = vec![
            b64(&password),
            b64(&zeroize::Zeroizing::new(format!(
                "\0{user}\0{}",
                password.as_str()
            ))),
            password.clone(),
        ];
        credentials = Some(Credentials::new(user.clone(), password.to_string()));
    }
    Ok(Transport::Smtp {
        pool: std::sync::Arc::new(SmtpPool {
            host: s.host.clone(),
            port: s.port,
            timeout: s.timeout,
            tls,
            plain_addrs,
            credentials,
            hello: lettre::transport::smtp::extension::ClientId::default(),
            idle: std::sync::Mutex::new(Vec::new()),
            max_idle: s.connections as usize,
        }),
        server,
        secrets: Secrets(std::sync::Arc::new(secrets)),
        breaker: std::sync::Arc::default(),
    })
}

/// How the SMTP connection is secured.
enum SmtpTls {
    None,
    /// STARTTLS, required: without it nothing is sent, the login least of all.
    StartTls(TlsParameters),
    /// TLS from the first byte.
    Wrapper(TlsParameters),
}

/// Pooled SMTP connections, reused from one message to the next and shared by the threads of
/// a bulk send.
///
/// lettre's own `SmtpTransport` writes the end-of-data `.` in a second small write, which
/// Nagle's algorithm holds back until the server's delayed ACK: 40 ms per message, whatever
/// the network. This pool speaks through lettre's `SmtpConnection` but sends each message and
/// its terminator in one write, skips the NOOP before reusing a connection (a connection the
/// server closed meanwhile is replaced and the message sent again, which is safe before the
/// server accepted anything), and keeps a connection after a refused recipient (RSET) instead
/// of reconnecting.
pub struct SmtpPool {
    host: String,
    port: u16,
    timeout: std::time::Duration,
    tls: SmtpTls,
    /// Without TLS: the loopback addresses to connect to instead of `host`.
    plain_addrs: Option<Vec<std::net::SocketAddr>>,
    credentials: Option<Credentials>,
    hello: lettre::transport::smtp::extension::ClientId,
    idle: std::sync::Mutex<Vec<SmtpConnection>>,
    max_idle: usize,
}

/// What a probe of the relay found.
#[derive(Debug, Clone)]
pub struct Probe {
    pub encrypted: bool,
    pub offers_starttls: bool,
    /// The relay's certificate (DER), when the session is encrypted.
    pub certificate: Option<Vec<u8>>,
    /// AUTH was tried and accepted.
    pub logged_in: bool,
}

/// Where an SMTP transaction failed.
#[derive(PartialEq, Eq)]
enum Stage {
    /// MAIL, RCPT or DATA: the server has not taken the message.
    Envelope,
    /// The end of the data: the server may have taken the message.
    Data,
}

type SmtpError = lettre::transport::smtp::Error;

impl SmtpPool {
    /// Open a connection as every delivery does: connect (or implicit TLS), STARTTLS, AUTH;
    /// and say what was found on the way (for `doctor`).
    fn open(&self) -> std::result::Result<(SmtpConnection, Probe), SmtpError> {
        let wrapper = match &self.tls {
            SmtpTls::Wrapper(p) => Some(p),
            _ => None,
        };
        let mut conn = match &self.plain_addrs {
            Some(addrs) => {
                SmtpConnection::connect(&addrs[..], Some(self.timeout), &self.hello, None, None)?
            }
            None => SmtpConnection::connect(
                (self.host.as_str(), self.port),
                Some(self.timeout),
                &self.hello,
                wrapper,
                None,
            )?,
        };
        let offers_starttls = conn.can_starttls();
        let setup = (|| {
            if let SmtpTls::StartTls(p) = &self.tls {
                conn.starttls(p, &self.hello)?;
            }
            let certificate = if conn.is_encrypted() {
                conn.peer_certificate().ok()
            } else {
                None
            };
            if let Some(c) = &self.credentials {
                conn.auth(
                    lettre::transport::smtp::authentication::DEFAULT_MECHANISMS,
                    c,
                )?;
            }
            Ok(Probe {
                encrypted: conn.is_encrypted(),
                offers_starttls,
                certificate,
                logged_in: self.credentials.is_some(),
            })
        })();
        match setup {
            Ok(p) => Ok((conn, p)),
            Err(e) => {
                conn.abort();
                Err(e)
            }
        }
    }

    fn connect(&self) -> std::result::Result<SmtpConnection, SmtpError> {
        self.open().map(|(conn, _)| conn)
    }

    /// Connect, secure and log in as a delivery would, send nothing, and say what was found
    /// (for `doctor`).
    pub(super) fn probe(&self) -> std::result::Result<Probe, SmtpError> {
        let (mut conn, probe) = self.open()?;
        let _ = conn.quit();
        Ok(probe)
    }

    /// Send one message; on failure, whether it happened while opening a new connection
    /// (before the server took anything: the message can go on another connection).
    pub(super) fn send(&self, msg: &Message) -> std::result::Result<(), (bool, SmtpError)> {
        let envelope = msg.envelope();
        let data = end_data(&msg.formatted());
        let idle = self.idle.lock().ok().and_then(|mut v| v.pop());
        if let Some(mut conn) = idle {
            match transaction(&mut conn, envelope, &data) {
                Ok(()) => {
                    self.recycle(conn, None);
                    return Ok(());
                }
                // The server closed the idle connection: nothing was taken, try a new one.
                Err((Stage::Envelope, e)) if e.status().is_none() && !e.is_client() => {
                    conn.abort();
                }
                Err((_, e)) => {
                    self.recycle(conn, Some(&e));
                    return Err((false, e));
                }
            }
        }
        let mut conn = self.connect().map_err(|e| (true, e))?;
        match transaction(&mut conn, envelope, &data) {
            Ok(()) => {
                self.recycle(conn, None);
                Ok(())
            }
            Err((_, e)) => {
                self.recycle(conn, Some(&e));
                Err((false, e))
            }
        }
    }

    /// Keep a connection for the next message, or close it.
    fn recycle(&self, mut conn: SmtpConnection, failed: Option<&SmtpError>) {
        // After a reply the session is still in step (RSET clears a half-done transaction);
        // after anything else (time-out, broken stream) it is not.
        let usable = !conn.has_broken()
            && match failed {
                None => true,
                Some(e) if e.status().is_some() => conn
                    .command(lettre::transport::smtp::commands::Rset)
                    .is_ok(),
                Some(_) => false,
            };
        if usable
            && let Ok(mut idle) = self.idle.lock()
            && idle.len() < self.max_idle
        {
            idle.push(conn);
            return;
        }
        conn.abort();
    }
}

impl Drop for SmtpPool {
    fn drop(&mut self) {
        if let Ok(idle) = self.idle.get_mut() {
            for mut conn in idle.drain(..) {
                let _ = conn.quit();
            }
        }
    }
}

/// One SMTP transaction on an open connection.
fn transaction(
    conn: &mut SmtpConnection,
    envelope: &lettre::address::Envelope,
    data: &EndedData,
) -> std::result::Result<(), (Stage, SmtpError)> {
    use lettre::transport::smtp::commands::{Data, Mail, Rcpt};
    use lettre::transport::smtp::extension::{Extension, MailBodyParameter, MailParameter};
    let env = |e| (Stage::Envelope, e);
    let mut params = Vec::new();
    let non_ascii = envelope
        .to()
        .iter()
        .chain(envelope.from())
        .any(|a| !AsRef::<str>::as_ref(a).is_ascii());
    if non_ascii && conn.server_info().supports_feature(Extension::SmtpUtfEight) {
        params.push(MailParameter::SmtpUtfEight);
    }
    if !data.0.is_ascii() && conn.server_info().supports_feature(Extension::EightBitMime) {
        params.push(MailParameter::Body(MailBodyParameter::EightBitMime));
    }
    conn.command(Mail::new(envelope.from().cloned(), params))
        .map_err(env)?;
    for to in envelope.to() {
        conn.command(Rcpt::new(to.clone(), Vec::new()))
            .map_err(env)?;
    }
    conn.command(Data).map_err(env)?;
    conn.command(data).map_err(|e| (Stage::Data, e))?;
    Ok(())
}

/// Message data made transparent (RFC 5321 4.5.2: a line that starts with "." gets another)
/// and ended with CRLF "." CRLF, to go out in one write. (Messages are built from Rust strings
/// and lettre encodes their bodies, so the formatted message is 7-bit text.)
struct EndedData(String);

impl std::fmt::Display for EndedData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn end_data(formatted: &[u8]) -> EndedData {
    let text = String::from_utf8_lossy(formatted);
    let mut out = String::with_capacity(text.len() + 64);
    for line in text.split_inclusive('\n') {
        if line.starts_with('.') {
            out.push('.');
        }
        out.push_str(line);
    }
    if !out.ends_with("\r\n") {
        out.push_str("\r\n");
    }
    out.push_str(".\r\n");
    EndedData(out)
}

/// Classify an SMTP failure: its exit code, a message that says which server said what, and
/// whether it concerns the server as a whole (TLS, login, connection) rather than one message.
pub(super) fn classify(server: &str, e: &lettre::transport::smtp::Error) -> (SendError, bool) {
    use std::io::ErrorKind;
    let detail = chain(e);
    let (io, tls) = underlying(e);
    let code = e.status().map(|c| c.to_string()).unwrap_or_default();
    let tls_hint = tls.map(|t| match t {
        rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer) => {
            "TLS failed (its certificate is not signed by a trusted CA; if the relay uses a private CA, set mail.smtp.ca_file to that CA's certificate, PEM)"
        }
        rustls::Error::InvalidCertificate(
            rustls::CertificateError::NotValidForName
            | rustls::CertificateError::NotValidForNameContext { .. },
        ) => "TLS failed (its certificate is not valid for the name in mail.smtp.host)",
        rustls::Error::InvalidCertificate(
            rustls::CertificateError::Expired | rustls::CertificateError::ExpiredContext { .. },
        ) => "TLS failed (its certificate has expired)",
        _ => "TLS failed (check the certificate, mail.smtp.host and mail.smtp.ca_file)",
    });
    let (exit, what, server_wide): (Exit, &str, bool) = if let Some(hint) = tls_hint {
        (Exit::Unavailable, hint, true)
    } else if e.is_tls() {
        (
            Exit::Unavailable,
            "TLS failed (check the certificate, mail.smtp.host and mail.smtp.ca_file)",
            true,
        )
    } else if matches!(code.as_str(), "535" | "534" | "538") {
        (
            Exit::Unavailable,
            "rejected the login (check mail.smtp.username and the password)",
            true,
        )
    } else if code == "530" {
        (
            Exit::Unavailable,
            "requires a login (set mail.smtp.username and a password)",
            true,
        )
    } else if code == "421" {
        (Exit::TempFail, "is not taking mail now", true)
    } else if e.is_transient() {
        (
            Exit::TempFail,
            "refused the message for now (temporary failure)",
            false,
        )
    } else if e.is_permanent() {
        (
            Exit::Unavailable,
            "refused the message (permanent failure)",
            false,
        )
    } else if e.is_client() && detail.contains("STARTTLS") {
        (
            Exit::Unavailable,
            "does not offer STARTTLS, which mail.smtp.tls = \"starttls\" requires; nothing was sent",
            true,
        )
    } else if e.is_client() && detail.contains("authentication mechanism") {
        (
            Exit::Unavailable,
            "offers no login method pwreset can use (AUTH PLAIN or LOGIN), but mail.smtp.username is set",
            true,
        )
    } else if e.is_client() {
        (Exit::Unavailable, "cannot take this message", false)
    } else if matches!(io, Some(ErrorKind::TimedOut | ErrorKind::WouldBlock)) || e.is_timeout() {
        (Exit::TempFail, "timed out (see mail.smtp.timeout)", true)
    } else if io == Some(ErrorKind::ConnectionRefused) {
        (Exit::TempFail, "refused the connection", true)
    } else {
        (Exit::TempFail, "could not be reached", true)
    };
    let sep = if what.starts_with("TLS") { ": " } else { " " };
    (
        SendError {
            exit,
            message: format!("SMTP server {server}{sep}{what}: {detail}"),
        },
        server_wide,
    )
}

/// After this many failures in a row that concern the server as a whole (TLS, login,
/// connection), the rest of a bulk run is not tried: a wrong password must not become
/// thousands of failed logins, nor a dead relay thousands of time-outs.
const GIVE_UP_AFTER: usize = 3;

/// Counts server-wide failures in a row, shared by the threads of a bulk send.
#[derive(Default)]
pub struct Breaker {
    in_a_row: std::sync::atomic::AtomicUsize,
    given_up: std::sync::Mutex<Option<SendError>>,
}

impl Breaker {
    pub(super) fn given_up(&self) -> Option<SendError> {
        self.given_up.lock().ok().and_then(|g| g.clone())
    }

    pub(super) fn record(&self, result: Result<(), (&SendError, bool)>) {
        use std::sync::atomic::Ordering;
        match result {
            Ok(()) | Err((_, false)) => self.in_a_row.store(0, Ordering::Relaxed),
            Err((err, true)) => {
                let n = self.in_a_row.fetch_add(1, Ordering::Relaxed) + 1;
                if n >= GIVE_UP_AFTER
                    && let Ok(mut g) = self.given_up.lock()
                    && g.is_none()
                {
                    *g = Some(SendError {
                        exit: err.exit,
                        message: format!(
                            "not sent: pwreset stopped trying after {n} failures in a row; the last: {}",
                            err.message
                        ),
                    });
                }
            }
        }
    }
}

/// The first I/O error kind under an SMTP error, and the TLS error if there is one (rustls
/// reports handshake failures, certificate ones included, as I/O errors wrapping its own).
fn underlying(
    e: &lettre::transport::smtp::Error,
) -> (Option<std::io::ErrorKind>, Option<&rustls::Error>) {
    use std::error::Error as _;
    let (mut io, mut tls) = (None, None);
    let mut cur = e.source();
    while let Some(c) = cur {
        if let Some(t) = c.downcast_ref::<rustls::Error>() {
            tls = tls.or(Some(t));
        }
        if let Some(i) = c.downcast_ref::<std::io::Error>() {
            io = io.or(Some(i.kind()));
            if let Some(t) = i.get_ref().and_then(|x| x.downcast_ref::<rustls::Error>()) {
                tls = tls.or(Some(t));
            }
        }
        cur = c.source();
    }
    (io, tls)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_is_made_transparent_and_ended_once() {
        let d = end_data(b"A: b\r\n\r\n.\r\n..x\r\n.y\r\nz\r\n");
        assert_eq!(d.0, "A: b\r\n\r\n..\r\n...x\r\n..y\r\nz\r\n.\r\n");
        assert_eq!(end_data(b"a\r\nb").0, "a\r\nb\r\n.\r\n");
    }

    #[test]
    fn secrets_are_scrubbed_and_not_debugged() {
        let s = Secrets(std::sync::Arc::new(vec![zeroize::Zeroizing::new(
            "hunter2".to_owned(),
        )]));
        assert_eq!(
            s.scrub("535 bad password hunter2 for you".into()),
            "535 bad password [password] for you"
        );
        assert!(!format!("{s:?}").contains("hunter2"));
    }
}
