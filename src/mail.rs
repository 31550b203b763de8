//! Mail: building the messages from templates, and the transports that deliver them.
//!
//! Messages are multipart/alternative (text + HTML) from minijinja templates; the HTML is
//! auto-escaped. Built-in templates can be overridden by files in `template_dir`.
//!
//! Delivery failures are classified as the contract asks: connection refused, time-outs and 4xx
//! replies are temporary (75); 5xx replies, TLS and certificate failures and rejected AUTH are
//! permanent (69).

use crate::config::{Config, Tls, TransportKind};
use crate::error::{Exit, Failure, fail};
use anyhow::{Context, Result};
use lettre::message::header::{self, ContentType, HeaderName, HeaderValue};
use lettre::message::{Mailbox, Message, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::SmtpConnection;
use lettre::transport::smtp::client::{Certificate, CertificateStore, TlsParameters};
use lettre::{FileTransport, SendmailTransport, Transport as _};
use minijinja::Environment;
use std::io::Write;
use std::path::PathBuf;

const RESET_TXT: &str = include_str!("templates/reset.txt");
const RESET_HTML: &str = include_str!("templates/reset.html");
const CHANGED_TXT: &str = include_str!("templates/changed.txt");
const CHANGED_HTML: &str = include_str!("templates/changed.html");

/// The template files, by name, as `template_dir` may override them.
pub const TEMPLATE_NAMES: [&str; 4] = ["reset.txt", "reset.html", "changed.txt", "changed.html"];

/// `Auto-Submitted: auto-generated` (RFC 3834): tells vacation responders not to answer.
#[derive(Debug, Clone)]
struct AutoSubmitted;

impl header::Header for AutoSubmitted {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("Auto-Submitted")
    }
    fn parse(_: &str) -> std::result::Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(AutoSubmitted)
    }
    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), "auto-generated".to_owned())
    }
}

/// How mail leaves this machine.
#[derive(Clone)]
pub enum Transport {
    Smtp {
        pool: std::sync::Arc<SmtpPool>,
        server: String,
        /// The password and its encodings on the wire, scrubbed from any error text (a server
        /// may echo what it was sent).
        secrets: Secrets,
        breaker: std::sync::Arc<Breaker>,
    },
    Sendmail {
        transport: SendmailTransport,
        command: PathBuf,
    },
    File {
        transport: FileTransport,
        dir: PathBuf,
    },
    Stdout,
}

/// Strings that must never appear in a message to the user.
#[derive(Clone, Default)]
pub struct Secrets(std::sync::Arc<Vec<zeroize::Zeroizing<String>>>);

impl Secrets {
    fn scrub(&self, text: String) -> String {
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

/// Builds and sends pwreset's messages.
#[derive(Clone)]
pub struct Mailer {
    env: Environment<'static>,
    from: Mailbox,
    subject: String,
    changed_subject: String,
    domain: String,
    pub transport: Transport,
}

/// A delivery that did not happen, classified.
#[derive(Debug, Clone)]
pub struct SendError {
    pub exit: Exit,
    pub message: String,
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<SendError> for anyhow::Error {
    fn from(e: SendError) -> Self {
        anyhow::Error::new(Failure::new(e.exit, e.message))
    }
}

impl Mailer {
    /// Load the templates and set up the configured transport. Nothing is sent or connected
    /// yet (SMTP connects on the first message).
    pub fn new(config: &Config) -> Result<Mailer> {
        let m = &config.mail;
        let mut env = Environment::new();
        // A misspelt variable in an admin's template should fail loudly, not send a blank link.
        env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
        // minijinja's HTML escaping also turns '/' into "&#x2f;", which is valid but leaves
        // links in the HTML part looking mangled to people and to some mail clients.
        env.set_formatter(|out, state, value| {
            if *state.auto_escape() == minijinja::AutoEscape::Html
                && !value.is_safe()
                && let Some(text) = value.as_str()
            {
                return Ok(out.write_str(&escape_html(text))?);
            }
            minijinja::escape_formatter(out, state, value)
        });
        for (name, builtin) in
            TEMPLATE_NAMES
                .iter()
                .zip([RESET_TXT, RESET_HTML, CHANGED_TXT, CHANGED_HTML])
        {
            let source = match &m.template_dir {
                Some(dir) if dir.join(name).exists() => {
                    let path = dir.join(name);
                    std::fs::read_to_string(&path).map_err(|e| {
                        fail(
                            Exit::Config,
                            format!("mail.template_dir: cannot read {}: {e}", path.display()),
                        )
                    })?
                }
                _ => builtin.to_owned(),
            };
            env.add_template_owned(name.to_string(), source)
                .map_err(|e| {
                    fail(
                        Exit::Config,
                        format!("mail.template_dir: template {name} does not parse: {e}"),
                    )
                })?;
        }
        let domain = m.from.email.domain().to_owned();
        let transport = match m.transport {
            TransportKind::Smtp => smtp_transport(config)?,
            TransportKind::Sendmail => Transport::Sendmail {
                transport: SendmailTransport::new_with_command(m.sendmail_command.clone()),
                command: m.sendmail_command.clone(),
            },
            TransportKind::File => {
                create_outbox(&m.file_dir)?;
                Transport::File {
                    transport: FileTransport::new(&m.file_dir),
                    dir: m.file_dir.clone(),
                }
            }
            TransportKind::Stdout => Transport::Stdout,
        };
        Ok(Mailer {
            env,
            from: m.from.clone(),
            subject: m.subject.clone(),
            changed_subject: m.changed_subject.clone(),
            domain,
            transport,
        })
    }

    /// The reset message for `to` (the address as stored).
    pub fn reset_message(
        &self,
        to: &str,
        link: &str,
        expires_at: i64,
        now: i64,
    ) -> Result<Message> {
        let ctx = minijinja::context! {
            email => to,
            link => link,
            expires_at => crate::ui::rfc3339(expires_at),
            expires_in => crate::ui::rough_span(expires_at - now),
            requested_at => crate::ui::rfc3339(now),
        };
        self.build(to, &self.subject, "reset", ctx)
    }

    /// The "your password was changed" notice.
    pub fn changed_message(&self, to: &str, changed_at: i64) -> Result<Message> {
        let ctx = minijinja::context! {
            email => to,
            changed_at => crate::ui::rfc3339(changed_at),
        };
        self.build(to, &self.changed_subject, "changed", ctx)
    }

    fn build(
        &self,
        to: &str,
        subject: &str,
        which: &str,
        ctx: minijinja::Value,
    ) -> Result<Message> {
        let addr: lettre::Address = to.parse().map_err(|_| {
            fail(
                Exit::DataErr,
                format!(
                    "the stored address {} is not a valid email address; fix it in the users table",
                    crate::ui::escape(to)
                ),
            )
        })?;
        let render = |name: String| -> Result<String> {
            let t = self
                .env
                .get_template(&name)
                .with_context(|| format!("template {name}"))?;
            t.render(&ctx).map_err(|e| {
                fail(
                    Exit::Config,
                    format!("mail template {name} failed to render: {e}"),
                )
            })
        };
        let text = render(format!("{which}.txt"))?;
        let html = render(format!("{which}.html"))?;
        let id = message_id_part()?;
        let msg = Message::builder()
            .from(self.from.clone())
            .to(Mailbox::new(None, addr))
            .subject(subject)
            .date_now()
            .message_id(Some(format!("<{id}@{}>", self.domain)))
            .header(AutoSubmitted)
            .multipart(
                MultiPart::alternative()
                    .singlepart(
                        SinglePart::builder()
                            .header(ContentType::TEXT_PLAIN)
                            .body(text),
                    )
                    .singlepart(
                        SinglePart::builder()
                            .header(ContentType::TEXT_HTML)
                            .body(html),
                    ),
            )
            .context("building the message")?;
        Ok(msg)
    }

    /// Deliver one message.
    pub fn send(&self, msg: &Message) -> std::result::Result<(), SendError> {
        match &self.transport {
            Transport::Smtp {
                pool,
                server,
                secrets,
                breaker,
            } => {
                if let Some(err) = breaker.given_up() {
                    return Err(err);
                }
                match pool.send(msg) {
                    Ok(()) => {
                        breaker.record(Ok(()));
                        Ok(())
                    }
                    Err(e) => {
                        let (mut err, server_wide) = classify_smtp(server, &e);
                        err.message = secrets.scrub(err.message);
                        breaker.record(Err((&err, server_wide)));
                        Err(err)
                    }
                }
            }
            Transport::Sendmail { transport, command } => {
                transport.send(msg).map(|_| ()).map_err(|e| SendError {
                    exit: Exit::TempFail,
                    message: format!("{} failed: {}", command.display(), chain(&e)),
                })
            }
            Transport::File { transport, dir } => {
                transport.send(msg).map(|_| ()).map_err(|e| SendError {
                    exit: Exit::CantCreate,
                    message: format!(
                        "cannot write the message to {}: {}",
                        dir.display(),
                        chain(&e)
                    ),
                })
            }
            Transport::Stdout => {
                let mut out = std::io::stdout().lock();
                out.write_all(&msg.formatted())
                    .and_then(|_| out.write_all(b"\n"))
                    .and_then(|_| out.flush())
                    .map_err(|e| SendError {
                        exit: Exit::IoErr,
                        message: format!("writing the message to stdout: {e}"),
                    })
            }
        }
    }

    /// A short description of where mail goes, for `-v` and the demo.
    pub fn describe(&self) -> String {
        match &self.transport {
            Transport::Smtp { server, .. } => format!("SMTP {server}"),
            Transport::Sendmail { command, .. } => format!("sendmail ({})", command.display()),
            Transport::File { dir, .. } => format!("files in {}", dir.display()),
            Transport::Stdout => "stdout".into(),
        }
    }
}

fn smtp_transport(config: &Config) -> Result<Transport> {
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
    credentials: Option<Credentials>,
    hello: lettre::transport::smtp::extension::ClientId,
    idle: std::sync::Mutex<Vec<SmtpConnection>>,
    max_idle: usize,
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
    fn connect(&self) -> std::result::Result<SmtpConnection, SmtpError> {
        let wrapper = match &self.tls {
            SmtpTls::Wrapper(p) => Some(p),
            _ => None,
        };
        let mut conn = SmtpConnection::connect(
            (self.host.as_str(), self.port),
            Some(self.timeout),
            &self.hello,
            wrapper,
            None,
        )?;
        let setup = (|| {
            if let SmtpTls::StartTls(p) = &self.tls {
                conn.starttls(p, &self.hello)?;
            }
            if let Some(c) = &self.credentials {
                conn.auth(
                    lettre::transport::smtp::authentication::DEFAULT_MECHANISMS,
                    c,
                )?;
            }
            Ok(())
        })();
        match setup {
            Ok(()) => Ok(conn),
            Err(e) => {
                conn.abort();
                Err(e)
            }
        }
    }

    fn send(&self, msg: &Message) -> std::result::Result<(), SmtpError> {
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
                    return Err(e);
                }
            }
        }
        let mut conn = self.connect()?;
        match transaction(&mut conn, envelope, &data) {
            Ok(()) => {
                self.recycle(conn, None);
                Ok(())
            }
            Err((_, e)) => {
                self.recycle(conn, Some(&e));
                Err(e)
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
fn classify_smtp(server: &str, e: &lettre::transport::smtp::Error) -> (SendError, bool) {
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
    fn given_up(&self) -> Option<SendError> {
        self.given_up.lock().ok().and_then(|g| g.clone())
    }

    fn record(&self, result: Result<(), (&SendError, bool)>) {
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

/// Escape text for HTML: `& < > " '` (not `/`, which needs no escaping).
fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string().trim_end().to_owned();
    let mut src = e.source();
    while let Some(s) = src {
        let t = s.to_string().trim_end().to_owned();
        if !out.contains(&t) {
            out.push_str(": ");
            out.push_str(&t);
        }
        src = s.source();
    }
    crate::ui::escape(&out)
}

fn message_id_part() -> Result<String> {
    use ring::rand::SecureRandom;
    let mut b = [0u8; 16];
    ring::rand::SystemRandom::new()
        .fill(&mut b)
        .map_err(|_| anyhow::anyhow!("the system random number generator failed"))?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

fn create_outbox(dir: &std::path::Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| {
            fail(
                Exit::CantCreate,
                format!("mail.file.dir: cannot create {}: {e}", dir.display()),
            )
        })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn mailer() -> Mailer {
        let dir = std::env::temp_dir();
        let mut c = Config::defaults_with(dir.join("x.db")).unwrap();
        c.mail.transport = TransportKind::Stdout;
        Mailer::new(&c).unwrap()
    }

    #[test]
    fn reset_message_has_the_headers_and_both_parts() {
        let m = mailer();
        let msg = m
            .reset_message(
                "bob@example.com",
                "https://e.example/r?token=pwr_x",
                1_795_671_600,
                1_795_668_000,
            )
            .unwrap();
        let text = String::from_utf8(msg.formatted()).unwrap();
        for needle in [
            "To: bob@example.com",
            "Auto-Submitted: auto-generated",
            "Message-ID: <",
            "@localhost>",
            "multipart/alternative",
            "text/plain",
            "text/html",
            "2026-11-26T05:40:00Z",
        ] {
            assert!(text.contains(needle), "missing {needle}: {text}");
        }
    }

    #[test]
    fn html_is_escaped() {
        let m = mailer();
        let msg = m
            .reset_message(
                "bob@example.com",
                "https://e.example/r?token=<script>",
                1_795_671_600,
                1_795_668_000,
            )
            .unwrap();
        let text = String::from_utf8(msg.formatted()).unwrap();
        assert!(text.contains("&lt;script&gt;"), "{text}");
        // '/' needs no escaping: links stay readable in the HTML source.
        assert!(
            text.contains("https://e.example/r?token=3D&lt;script&gt;"),
            "{text}"
        );
    }

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

    #[test]
    fn html_escaping() {
        assert_eq!(
            escape_html(r#"<a href="x?a=1&b='2'">/</a>"#),
            "&lt;a href=&quot;x?a=1&amp;b=&#39;2&#39;&quot;&gt;/&lt;/a&gt;"
        );
    }
}
