//! Mail: building the messages from templates, and the transports that deliver them.
//!
//! Messages are multipart/alternative (text + HTML) from minijinja templates; the HTML is
//! auto-escaped. Built-in templates can be overridden by files in `template_dir`.
//!
//! Delivery failures are classified as the contract asks: connection refused, time-outs and 4xx
//! replies are temporary (75); 5xx replies, TLS and certificate failures and rejected AUTH are
//! permanent (69).

use crate::config::{Config, TransportKind};
use crate::error::{Exit, Failure, fail};
use anyhow::{Context, Result};
use lettre::message::header::{self, ContentType, HeaderName, HeaderValue};
use lettre::message::{Mailbox, Message, MultiPart, SinglePart};
use lettre::{SendmailTransport, Transport as _};
use minijinja::Environment;

mod outbox;
mod smtp;
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
        pool: std::sync::Arc<smtp::SmtpPool>,
        server: String,
        /// The password and its encodings on the wire, scrubbed from any error text (a server
        /// may echo what it was sent).
        secrets: smtp::Secrets,
        breaker: std::sync::Arc<smtp::Breaker>,
    },
    Sendmail {
        transport: SendmailTransport,
        command: PathBuf,
    },
    File {
        dir: PathBuf,
    },
    Stdout,
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
        // A template with nested loops must fail (78) instead of hanging before any token is
        // made.
        env.set_fuel(Some(TEMPLATE_FUEL));
        if let Some(dir) = &m.template_dir {
            crate::trust::check_private_dir(dir, "mail.template_dir")?;
        }
        for (name, builtin) in
            TEMPLATE_NAMES
                .iter()
                .zip([RESET_TXT, RESET_HTML, CHANGED_TXT, CHANGED_HTML])
        {
            let source = template_source(m.template_dir.as_deref(), name, builtin)?;
            env.add_template_owned(name.to_string(), source)
                .map_err(|e| {
                    fail(
                        Exit::Config,
                        format!("mail.template_dir: template {name} does not parse: {e}"),
                    )
                })?;
        }
        // Render each template once with sample values, so a misspelt variable in an
        // admin's template stops the run here (78) instead of failing user by user.
        let reset = minijinja::context! {
            email => "alice@example.com",
            link => "https://accounts.example.com/reset_password?token=pwr_sample",
            expires_at => "2026-01-01T01:00:00Z",
            expires_in => "60 minutes",
            requested_at => "2026-01-01T00:00:00Z",
        };
        let changed = minijinja::context! {
            email => "alice@example.com",
            changed_at => "2026-01-01T00:00:00Z",
        };
        for name in TEMPLATE_NAMES {
            let (sample, vars) = if name.starts_with("reset") {
                (&reset, "email, link, expires_at, expires_in, requested_at")
            } else {
                (&changed, "email, changed_at")
            };
            if let Err(e) = env.get_template(name).and_then(|t| t.render(sample)) {
                return Err(fail(
                    Exit::Config,
                    format!("mail template {name}: {e}; it can use {vars}"),
                ));
            }
        }
        let domain = m.from.email.domain().to_owned();
        let transport = match m.transport {
            TransportKind::Smtp => smtp::transport(config)?,
            TransportKind::Sendmail => Transport::Sendmail {
                transport: SendmailTransport::new_with_command(m.sendmail_command.clone()),
                command: m.sendmail_command.clone(),
            },
            TransportKind::File => {
                crate::config::create_private_dir(&m.file_dir, "mail.file.dir")?;
                Transport::File {
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
                        let (mut err, server_wide) = smtp::classify(server, &e);
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
            Transport::File { dir } => {
                outbox::write(dir, &msg.formatted())
                    .map(|_| ())
                    .map_err(|e| SendError {
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

/// How much work rendering one message may take, in minijinja's fuel (about one unit per
/// instruction): the built-in templates need a few hundred; nested loops over large ranges run
/// out instead of hanging.
const TEMPLATE_FUEL: u64 = 100_000;

/// The text of template `name`: the file in `template_dir` when there is one, read with
/// [`crate::trust::read_template`]'s limits (a regular file, no symbolic link, at most 256 KiB,
/// owned by root or the running user), else the built-in one.
fn template_source(dir: Option<&std::path::Path>, name: &str, builtin: &str) -> Result<String> {
    let Some(dir) = dir else {
        return Ok(builtin.to_owned());
    };
    Ok(
        crate::trust::read_template(&dir.join(name), "mail.template_dir")?
            .unwrap_or_else(|| builtin.to_owned()),
    )
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

#[cfg(test)]
mod tests {
    use super::*;

    fn mailer() -> Mailer {
        let dir = std::env::temp_dir();
        let mut c = Config::defaults_with(dir.join("x.db")).expect("should succeed");
        c.mail.transport = TransportKind::Stdout;
        Mailer::new(&c).expect("should succeed")
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
            .expect("should succeed");
        let text = String::from_utf8(msg.formatted()).expect("should succeed");
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
            .expect("should succeed");
        let text = String::from_utf8(msg.formatted()).expect("should succeed");
        assert!(text.contains("&lt;script&gt;"), "{text}");
        // '/' needs no escaping: links stay readable in the HTML source.
        assert!(
            text.contains("https://e.example/r?token=3D&lt;script&gt;"),
            "{text}"
        );
    }

    #[test]
    fn html_escaping() {
        assert_eq!(
            escape_html(r#"<a href="x?a=1&b='2'">/</a>"#),
            "&lt;a href=&quot;x?a=1&amp;b=&#39;2&#39;&quot;&gt;/&lt;/a&gt;"
        );
    }
}
