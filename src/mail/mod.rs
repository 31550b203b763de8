//! Mail: building the messages from templates, and the transports that deliver them.
//!
//! Messages are multipart/alternative (text + HTML) from minijinja templates; the HTML is
//! auto-escaped. As for the pages, there is one layout (`layout.html`, `layout.txt`, which the
//! two mails extend) and the words of each language in a catalogue (`strings.rs`, `t` in the
//! templates). Each message is written in the recipient's language ([`locale`]): for each
//! template pwreset looks in `template_dir/<lang>/`, then `template_dir/`, then at its built-in
//! one; the words are English, overlaid by the built-in catalogue of the language, overlaid by
//! `template_dir/<lang>/strings.toml`.
//!
//! The front ends say who a message is for with a [`Recipient`] (address, name, locale);
//! `request --locale` is [`Mailer::set_locale_override`], and the web page picks a language
//! with [`Mailer::language_from_accept`].
//!
//! Delivery failures are classified as the contract asks: connection refused, time-outs and 4xx
//! replies are temporary (75); 5xx replies, TLS and certificate failures and rejected AUTH are
//! permanent (69).

use crate::config::{Config, TransportKind};
use crate::error::{Exit, Failure, fail};
use anyhow::{Context, Result};
use lettre::message::header::{self, ContentType, HeaderName, HeaderValue};
use lettre::message::{Mailbox, Message, MultiPart, SinglePart};
use minijinja::Environment;

pub mod locale;
mod outbox;
mod readable;
mod sendmail;
pub mod smtp;
pub(crate) mod strings;
pub use readable::readable;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The template files, by name, as `template_dir` (or `template_dir/<language>/`) may override
/// them.
pub const TEMPLATE_NAMES: [&str; 6] = [
    "reset.txt",
    "reset.html",
    "reset.subject",
    "changed.txt",
    "changed.html",
    "changed.subject",
];

/// The layouts the mails extend (`{% extends "layout.html" %}`), which `template_dir` (or
/// `template_dir/<language>/`) may override too.
pub const LAYOUT_NAMES: [&str; 2] = ["layout.html", "layout.txt"];

/// The words of the mails in a language's catalogue: `template_dir/<lang>/strings.toml`.
pub const STRINGS: &str = "strings.toml";

/// The built-in template `name`: one for every language, its words from [`builtin_strings`].
fn builtin(name: &str) -> Option<&'static str> {
    Some(match name {
        "layout.html" => include_str!("templates/layout.html"),
        "layout.txt" => include_str!("templates/layout.txt"),
        "reset.txt" => include_str!("templates/reset.txt"),
        "reset.html" => include_str!("templates/reset.html"),
        "reset.subject" => include_str!("templates/reset.subject"),
        "changed.txt" => include_str!("templates/changed.txt"),
        "changed.html" => include_str!("templates/changed.html"),
        "changed.subject" => include_str!("templates/changed.subject"),
        _ => return None,
    })
}

/// The built-in words of the mails in `lang`, if pwreset has them.
fn builtin_strings(lang: &str) -> Option<&'static str> {
    match lang {
        "en" => Some(include_str!("templates/en/strings.toml")),
        "de" => Some(include_str!("templates/de/strings.toml")),
        "fr" => Some(include_str!("templates/fr/strings.toml")),
        "es" => Some(include_str!("templates/es/strings.toml")),
        _ => None,
    }
}

/// The variables each template can use, for error messages and docs/mail.md.
const RESET_VARS: &str = "email, name, link, expires_at, expires_in, expires_local, requested_at, service_name, support, support_href, timezone, locale, t (the words of strings.toml)";
const CHANGED_VARS: &str = "email, name, changed_at, changed_local, service_name, support, support_href, timezone, locale, t (the words of strings.toml)";

/// A header with a fixed name and a plain value.
macro_rules! text_header {
    ($ty:ident, $name:literal) => {
        #[derive(Debug, Clone)]
        struct $ty(String);

        impl header::Header for $ty {
            fn name() -> HeaderName {
                HeaderName::new_from_ascii_str($name)
            }
            fn parse(
                s: &str,
            ) -> std::result::Result<Self, Box<dyn std::error::Error + Send + Sync>> {
                Ok($ty(s.to_owned()))
            }
            fn display(&self) -> HeaderValue {
                HeaderValue::new(Self::name(), self.0.clone())
            }
        }
    };
}

// `Auto-Submitted: auto-generated` (RFC 3834): tells vacation responders not to answer.
text_header!(AutoSubmitted, "Auto-Submitted");
// `Content-Language` (RFC 3282): lets clients pick a spell checker, a font, a translation offer.
text_header!(ContentLanguage, "Content-Language");

/// Who a message goes to. `name` and `locale` come from the users table when the config names
/// their columns (`users.name_column`, `users.locale_column`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recipient {
    /// The address as stored.
    pub email: String,
    /// The name to greet them by.
    pub name: Option<String>,
    /// Their language, in any common spelling (`de`, `de-DE`, `de_DE.UTF-8`).
    pub locale: Option<String>,
}

impl Recipient {
    /// A recipient known only by address: greeted without a name, in English unless the
    /// mailer has a locale override.
    pub fn new(email: impl Into<String>) -> Recipient {
        Recipient {
            email: email.into(),
            name: None,
            locale: None,
        }
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
    /// Each language's words (`t` in the templates), by language.
    words: std::collections::HashMap<String, minijinja::Value>,
    /// The languages there are templates for: the built-in ones and those of `template_dir`.
    languages: Vec<String>,
    locale_override: Option<String>,
    from: Mailbox,
    domain: String,
    service_name: String,
    support: Option<(String, String)>,
    timezone: jiff::tz::TimeZone,
    timezone_name: String,
    pub transport: Transport,
}

/// What became of a message sent over a pool that may shrink.
#[derive(Debug)]
pub enum Sent {
    Delivered,
    /// The relay refused a new connection; the message was not sent and may be sent again.
    RefusedAtConnect(SendError),
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

/// Read an admin's template, as a config error naming the file when it cannot be read.
/// A template from `template_dir`, if there is one at `path`: regular files only, bounded in
/// size, from a trusted owner (see [`crate::trust::read_template`]).
fn read_template(path: Option<&Path>) -> Result<Option<String>> {
    match path {
        Some(p) => crate::trust::read_template(p, "mail.template_dir"),
        None => Ok(None),
    }
}

/// Names with control characters could forge lines in the text part; very long ones are not
/// names.
fn clean_name(name: &str) -> Option<String> {
    let cleaned: String = name
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(100)
        .collect();
    let cleaned = cleaned.split_whitespace().collect::<Vec<_>>().join(" ");
    (!cleaned.is_empty()).then_some(cleaned)
}

/// The languages there are templates for, each with its folder in `dir` (a `template_dir`)
/// if it has one: the built-in ones (English first), then any other language folder in `dir`.
/// `web/` holds the pages' templates, not a language's.
pub(crate) fn language_dirs(dir: Option<&Path>) -> Result<Vec<(String, Option<PathBuf>)>> {
    let mut languages: Vec<(String, Option<PathBuf>)> = locale::BUILTIN
        .iter()
        .map(|l| ((*l).to_owned(), None))
        .collect();
    let Some(Ok(entries)) = dir.map(std::fs::read_dir) else {
        return Ok(languages);
    };
    let mut found: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    found.sort();
    for path in found {
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let Some(lang) = locale::language(name).filter(|_| name != "web") else {
            continue;
        };
        crate::trust::check_private_dir(&path, "mail.template_dir")?;
        match languages.iter_mut().find(|(l, _)| *l == lang) {
            Some((_, slot @ None)) => *slot = Some(path),
            Some(_) => {}
            None => languages.push((lang, Some(path))),
        }
    }
    Ok(languages)
}

impl Mailer {
    /// Load the templates and set up the configured transport. Nothing is sent or connected
    /// yet (SMTP connects on the first message).
    pub fn new(config: &Config) -> Result<Mailer> {
        let m = &config.mail;
        let mut env = template_env();
        // Templates are stored as "<lang>/NAME"; `{% extends "layout.html" %}` in
        // "de/reset.html" means the German layout.
        env.set_path_join_callback(|name, parent| match parent.split_once('/') {
            Some((lang, _)) if !name.contains('/') => format!("{lang}/{name}").into(),
            _ => name.into(),
        });
        env.add_filter("fill", strings::fill_filter);
        if let Some(dir) = &m.template_dir {
            crate::trust::check_private_dir(dir, "mail.template_dir")?;
        }
        let languages = language_dirs(m.template_dir.as_deref())?;
        let parse =
            |text: &str,
             file: String,
             known: Option<&std::collections::BTreeMap<String, String>>| {
                strings::parse(
                    text,
                    &file,
                    &format!("src/mail/templates/en/{STRINGS}"),
                    known,
                )
            };
        let english = parse(
            builtin_strings(locale::DEFAULT).unwrap_or_default(),
            format!("{}/{STRINGS}", locale::DEFAULT),
            None,
        )?;
        let mut words = std::collections::HashMap::new();
        for (lang, lang_dir) in &languages {
            // English under every key, the language's own words over it, the admin's over both:
            // a key a translation lacks says English rather than nothing.
            let mut catalogue = english.clone();
            if let Some(b) = builtin_strings(lang) {
                catalogue.extend(parse(b, format!("{lang}/{STRINGS}"), Some(&english))?);
            }
            let own_strings = lang_dir.as_ref().map(|d| d.join(STRINGS));
            if let Some(text) = read_template(own_strings.as_deref())? {
                catalogue.extend(parse(
                    &text,
                    format!("mail.template_dir: {lang}/{STRINGS}"),
                    Some(&english),
                )?);
            }
            words.insert(lang.clone(), strings::nest(&catalogue));
            for name in TEMPLATE_NAMES.iter().chain(&LAYOUT_NAMES) {
                let configured_subject = match *name {
                    "reset.subject" => m.subject.as_ref(),
                    "changed.subject" => m.changed_subject.as_ref(),
                    _ => None,
                };
                let own = lang_dir.as_ref().map(|d| d.join(name));
                let shared = m.template_dir.as_ref().map(|d| d.join(name));
                let source = if let Some(s) = read_template(own.as_deref())? {
                    s
                } else if let Some(s) = read_template(shared.as_deref())? {
                    s
                } else if let Some(s) = configured_subject {
                    s.clone()
                } else if let Some(b) = builtin(name) {
                    b.to_owned()
                } else {
                    continue;
                };
                env.add_template_owned(format!("{lang}/{name}"), source)
                    .map_err(|e| {
                        fail(
                            Exit::Config,
                            format!(
                                "mail.template_dir: template {lang}/{name} does not parse: {e}"
                            ),
                        )
                    })?;
            }
        }
        let support = match &m.support {
            Some(s) => Some((
                s.clone(),
                crate::config::support_href(s)
                    .map_err(|why| fail(Exit::Config, format!("mail.support: {why}")))?,
            )),
            None => None,
        };
        let domain = m.from.email.domain().to_owned();
        let transport = match m.transport {
            TransportKind::Smtp => smtp::transport(config)?,
            TransportKind::Sendmail => Transport::Sendmail {
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
        let mailer = Mailer {
            env,
            words,
            languages: languages.into_iter().map(|(l, _)| l).collect(),
            locale_override: None,
            from: m.from.clone(),
            domain,
            service_name: m.service_name.clone(),
            support,
            timezone: m.timezone.clone(),
            timezone_name: m.timezone_name.clone(),
            transport,
        };
        // Render each template once with sample values, so a misspelt variable in an
        // admin's template stops the run here (78) instead of failing user by user.
        let samples = [Some("Alice"), None].map(|name| Recipient {
            email: "alice@example.com".into(),
            name: name.map(str::to_owned),
            locale: None,
        });
        for (lang, sample) in mailer
            .languages
            .iter()
            .flat_map(|l| samples.iter().map(move |s| (l, s)))
        {
            for name in TEMPLATE_NAMES {
                let (ctx, vars) = if name.starts_with("reset") {
                    (
                        mailer.reset_context(
                            sample,
                            lang,
                            "https://accounts.example.com/reset_password?token=pwr_sample",
                            1_767_229_200,
                            1_767_225_600,
                        ),
                        RESET_VARS,
                    )
                } else {
                    (
                        mailer.changed_context(sample, lang, 1_767_225_600),
                        CHANGED_VARS,
                    )
                };
                if let Err(e) = mailer.render(lang, name, &ctx) {
                    return Err(fail(
                        Exit::Config,
                        format!("{}; it can use {vars}", crate::error::render(&e)),
                    ));
                }
            }
        }
        Ok(mailer)
    }

    /// Send every message in `locale` (any common spelling; one pwreset has no templates for
    /// means English), whatever the recipient's own: `request --locale`. `None` goes back to
    /// each recipient's locale.
    pub fn set_locale_override(&mut self, locale: Option<&str>) {
        self.locale_override = locale.map(str::to_owned);
    }

    /// The languages there are templates for (the built-in ones, then those of `template_dir`).
    pub fn languages(&self) -> &[String] {
        &self.languages
    }

    /// The language a message to `to` is written in: the locale override, else the recipient's
    /// locale, reduced to a language pwreset has templates for, else English.
    pub fn language_for(&self, to: &Recipient) -> String {
        locale::pick(
            self.locale_override.as_deref().or(to.locale.as_deref()),
            &self.languages,
        )
    }

    /// The language for a browser's `Accept-Language` header, with the same fallback.
    pub fn language_from_accept(&self, header: &str) -> String {
        locale::from_accept_language(header, &self.languages)
    }

    fn common_context(&self, to: &Recipient, lang: &str) -> minijinja::Value {
        let (support, support_href) = match &self.support {
            Some((s, h)) => (Some(s.as_str()), Some(h.as_str())),
            None => (None, None),
        };
        minijinja::context! {
            email => &to.email,
            name => to.name.as_deref().and_then(clean_name),
            service_name => &self.service_name,
            support => support,
            support_href => support_href,
            timezone => &self.timezone_name,
            locale => lang,
        }
    }

    fn reset_context(
        &self,
        to: &Recipient,
        lang: &str,
        link: &str,
        expires_at: i64,
        now: i64,
    ) -> minijinja::Value {
        minijinja::context! {
            link => link,
            expires_at => crate::ui::rfc3339(expires_at),
            expires_in => locale::span(lang, expires_at - now),
            expires_local => locale::local_time(lang, expires_at, &self.timezone),
            requested_at => crate::ui::rfc3339(now),
            ..self.common_context(to, lang)
        }
    }

    fn changed_context(&self, to: &Recipient, lang: &str, changed_at: i64) -> minijinja::Value {
        minijinja::context! {
            changed_at => crate::ui::rfc3339(changed_at),
            changed_local => locale::local_time(lang, changed_at, &self.timezone),
            ..self.common_context(to, lang)
        }
    }

    /// The reset message for `to` (the address as stored), in English unless the mailer has a
    /// locale override. See [`Mailer::reset_message_to`] for the name and locale.
    pub fn reset_message(
        &self,
        to: &str,
        link: &str,
        expires_at: i64,
        now: i64,
    ) -> Result<Message> {
        self.reset_message_to(&Recipient::new(to), link, expires_at, now)
    }

    /// The reset message for `to`, greeting them by name and in their language.
    pub fn reset_message_to(
        &self,
        to: &Recipient,
        link: &str,
        expires_at: i64,
        now: i64,
    ) -> Result<Message> {
        let lang = self.language_for(to);
        let ctx = self.reset_context(to, &lang, link, expires_at, now);
        self.build(to, &lang, "reset", &ctx)
    }

    /// The "your password was changed" notice.
    pub fn changed_message(&self, to: &str, changed_at: i64) -> Result<Message> {
        self.changed_message_to(&Recipient::new(to), changed_at)
    }

    /// The "your password was changed" notice, greeting them by name and in their language.
    pub fn changed_message_to(&self, to: &Recipient, changed_at: i64) -> Result<Message> {
        let lang = self.language_for(to);
        let ctx = self.changed_context(to, &lang, changed_at);
        self.build(to, &lang, "changed", &ctx)
    }

    fn render(&self, lang: &str, name: &str, ctx: &minijinja::Value) -> Result<String> {
        let full = format!("{lang}/{name}");
        let t = self
            .env
            .get_template(&full)
            .with_context(|| format!("template {full}"))?;
        let words = self.words.get(lang).cloned().unwrap_or_default();
        let ctx = minijinja::context! { t => words, ..ctx.clone() };
        let out = t.render(ctx).map_err(|e| {
            fail(
                Exit::Config,
                format!("mail template {full} failed to render: {e}"),
            )
        })?;
        if name.ends_with(".subject") {
            let line = out.trim();
            if line.is_empty() || line.contains(['\r', '\n']) || line.len() > 400 {
                return Err(fail(
                    Exit::Config,
                    format!("mail template {full}: a subject must be one non-empty line"),
                ));
            }
            return Ok(line.to_owned());
        }
        Ok(out)
    }

    fn build(
        &self,
        to: &Recipient,
        lang: &str,
        which: &str,
        ctx: &minijinja::Value,
    ) -> Result<Message> {
        let addr: lettre::Address = to.email.parse().map_err(|_| {
            fail(
                Exit::DataErr,
                format!(
                    "the stored address {} is not a valid email address; fix it in the users table",
                    crate::ui::escape(&to.email)
                ),
            )
        })?;
        let subject = self.render(lang, &format!("{which}.subject"), ctx)?;
        let text = self.render(lang, &format!("{which}.txt"), ctx)?;
        let html = self.render(lang, &format!("{which}.html"), ctx)?;
        let id = message_id_part()?;
        let name = to.name.as_deref().and_then(clean_name);
        let msg = Message::builder()
            .from(self.from.clone())
            .to(Mailbox::new(name, addr))
            .subject(subject)
            .date_now()
            .message_id(Some(format!("<{id}@{}>", self.domain)))
            .header(AutoSubmitted("auto-generated".into()))
            .header(ContentLanguage(lang.to_owned()))
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

    /// A plain test message for `doctor --send-test`: no link, nothing to act on.
    pub fn test_message(&self, to: &str) -> Result<Message> {
        let addr: lettre::Address = to.parse().map_err(|_| {
            fail(
                Exit::DataErr,
                format!("{} is not a valid email address", crate::ui::escape(to)),
            )
        })?;
        let host = nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_else(|| "this machine".into());
        let id = message_id_part()?;
        Message::builder()
            .from(self.from.clone())
            .to(Mailbox::new(None, addr))
            .subject(format!("{}: test message", self.service_name))
            .date_now()
            .message_id(Some(format!("<{id}@{}>", self.domain)))
            .header(AutoSubmitted("auto-generated".into()))
            .header(ContentType::TEXT_PLAIN)
            .body(format!(
                "This is a test message from `pwreset doctor --send-test` on {host}.\n\nIt shows that {} can deliver mail to this address. There is nothing to do.\n",
                self.service_name
            ))
            .context("building the test message")
    }

    /// Connect to the SMTP relay as a delivery would (TLS, certificate, AUTH) and send
    /// nothing: `None` for the other transports.
    pub fn probe_smtp(&self) -> Option<std::result::Result<smtp::Probe, SendError>> {
        let Transport::Smtp {
            pool,
            server,
            secrets,
            ..
        } = &self.transport
        else {
            return None;
        };
        Some(pool.probe().map_err(|e| {
            let (mut err, _) = smtp::classify(server, &e);
            err.message = secrets.scrub(err.message);
            err
        }))
    }

    /// Deliver one message.
    pub fn send(&self, msg: &Message) -> std::result::Result<(), SendError> {
        match self.send_or_refused(msg, false)? {
            Sent::Delivered => Ok(()),
            Sent::RefusedAtConnect(e) => Err(e),
        }
    }

    /// Deliver one message over a pool that may shrink: when `may_shrink` and the relay refuses
    /// a new connection (a per-client connection limit, `421 too many connections`), the
    /// refusal comes back as [`Sent::RefusedAtConnect`] without counting towards the "the whole
    /// server is failing" stop, so the caller can retire that connection and send the message
    /// on one that works.
    pub fn send_or_refused(
        &self,
        msg: &Message,
        may_shrink: bool,
    ) -> std::result::Result<Sent, SendError> {
        if let Transport::Smtp {
            pool,
            server,
            secrets,
            breaker,
        } = &self.transport
        {
            if let Some(err) = breaker.given_up() {
                return Err(err);
            }
            return match pool.send(msg) {
                Ok(()) => {
                    breaker.record(Ok(()));
                    Ok(Sent::Delivered)
                }
                Err((at_connect, e)) => {
                    let (mut err, server_wide) = smtp::classify(server, &e);
                    err.message = secrets.scrub(err.message);
                    if at_connect && may_shrink {
                        return Ok(Sent::RefusedAtConnect(err));
                    }
                    breaker.record(Err((&err, server_wide)));
                    Err(err)
                }
            };
        }
        self.send_other(msg).map(|()| Sent::Delivered)
    }

    /// Deliver through sendmail, the outbox or stdout.
    fn send_other(&self, msg: &Message) -> std::result::Result<(), SendError> {
        match &self.transport {
            Transport::Smtp { .. } => Err(SendError {
                exit: Exit::Software,
                message: "internal error: SMTP is sent by send_or_refused".into(),
            }),
            Transport::Sendmail { command } => {
                sendmail::send(command, msg.envelope(), &msg.formatted())
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
            Transport::Sendmail { command } => format!("sendmail ({})", command.display()),
            Transport::File { dir, .. } => format!("files in {}", dir.display()),
            Transport::Stdout => "stdout".into(),
        }
    }
}

/// How much work rendering one message may take, in minijinja's fuel (about one unit per
/// instruction): the built-in templates need a few hundred; nested loops over large ranges run
/// out instead of hanging.
const TEMPLATE_FUEL: u64 = 100_000;

/// The template environment of the mails and the web pages: strict about undefined variables,
/// bounded in work, and escaping HTML without mangling links.
pub(crate) fn template_env() -> Environment<'static> {
    let mut env = Environment::new();
    // A misspelt variable in an admin's template should fail loudly, not send a blank link.
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    // minijinja's HTML escaping also turns '/' into "&#x2f;", which is valid but leaves links
    // looking mangled to people and to some mail clients.
    env.set_formatter(|out, state, value| {
        if *state.auto_escape() == minijinja::AutoEscape::Html
            && !value.is_safe()
            && let Some(text) = value.as_str()
        {
            return Ok(out.write_str(&escape_html(text))?);
        }
        minijinja::escape_formatter(out, state, value)
    });
    // A template with nested loops must fail (78) instead of hanging before any token is made.
    env.set_fuel(Some(TEMPLATE_FUEL));
    env
}

/// Escape text for HTML: `& < > " '` (not `/`, which needs no escaping).
pub(crate) fn escape_html(text: &str) -> String {
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

    fn configured(extra: impl FnOnce(&mut Config)) -> Mailer {
        let mut c = Config::defaults_with(std::env::temp_dir().join("x.db")).expect("defaults");
        c.mail.transport = TransportKind::Stdout;
        c.mail.service_name = "Example Accounts".into();
        c.mail.support = Some("help@example.com".into());
        c.mail.timezone = jiff::tz::TimeZone::get("Europe/Berlin").expect("bundled tzdb");
        c.mail.timezone_name = "Europe/Berlin".into();
        extra(&mut c);
        Mailer::new(&c).expect("a mailer")
    }

    fn alice(locale: Option<&str>) -> Recipient {
        Recipient {
            email: "alice@example.com".into(),
            name: Some("Alice Martin".into()),
            locale: locale.map(str::to_owned),
        }
    }

    /// The subject, the text part and the HTML part, decoded.
    fn parts(msg: &Message) -> (String, String, String) {
        let raw = msg.formatted();
        let text = readable(&raw);
        let subject = text
            .lines()
            .find_map(|l| l.strip_prefix("Subject: "))
            .expect("a subject")
            .to_owned();
        let body = text
            .split_once("\n\n")
            .map(|x| x.1)
            .unwrap_or_default()
            .to_owned();
        let eml = String::from_utf8_lossy(&raw).into_owned();
        let html_at = eml.find("Content-Type: text/html").expect("an html part");
        let html = String::from_utf8_lossy(
            &quoted_printable::decode(&eml[html_at..], quoted_printable::ParseMode::Robust)
                .expect("qp"),
        )
        .into_owned();
        (subject, body, html)
    }

    #[test]
    fn reset_mail_names_the_service_the_person_and_the_local_expiry() {
        let m = configured(|_| {});
        // 2026-11-26T08:32:26Z, an hour after the request.
        let msg = m
            .reset_message_to(
                &alice(None),
                "https://e.example/r?token=pwr_x",
                1_795_681_946,
                1_795_678_346,
            )
            .expect("a message");
        let (subject, text, html) = parts(&msg);
        assert_eq!(subject, "Reset your Example Accounts password");
        for needle in [
            "Hello Alice Martin,",
            "your Example Accounts\naccount, alice@example.com.",
            "expires in 1 hour (Thursday, 26 November 2026, 09:32 CET)",
            "Contact help@example.com.",
            "2026-11-26T08:32:26Z",
            "https://e.example/r?token=pwr_x",
        ] {
            assert!(text.contains(needle), "text lacks {needle:?}:\n{text}");
        }
        assert!(html.contains("href=\"mailto:help@example.com\""), "{html}");
        assert!(html.contains("<strong>1 hour</strong>"), "{html}");
        assert!(!html.contains("class="), "inline styles only: {html}");
        let raw = String::from_utf8(msg.formatted()).expect("ascii");
        assert!(raw.contains("Content-Language: en\r\n"), "{raw}");
        assert!(
            raw.contains("To: \"Alice Martin\" <alice@example.com>")
                || raw.contains("To: Alice Martin <alice@example.com>"),
            "{raw}"
        );
    }

    #[test]
    fn each_builtin_language_and_its_fallbacks() {
        let m = configured(|_| {});
        for (locale, subject, greeting, span) in [
            (
                "de_DE.UTF-8",
                "Ihr Passwort für Example Accounts zurücksetzen",
                "Guten Tag Alice Martin,",
                "läuft in 30 Minuten ab",
            ),
            (
                "fr-CA",
                "Réinitialisation de votre mot de passe Example Accounts",
                "Bonjour Alice Martin,",
                "expire dans 30 minutes",
            ),
            (
                "es",
                "Restablezca su contraseña de Example Accounts",
                "Hola, Alice Martin:",
                "caduca en 30 minutos",
            ),
            (
                "it",
                "Reset your Example Accounts password",
                "Hello Alice Martin,",
                "expires in 30 minutes",
            ),
        ] {
            let msg = m
                .reset_message_to(
                    &alice(Some(locale)),
                    "https://e.example/r?token=pwr_x",
                    1_795_681_946,
                    1_795_680_146,
                )
                .expect("a message");
            let (s, text, _) = parts(&msg);
            assert_eq!(s, subject, "{locale}");
            assert!(text.starts_with(greeting), "{locale}: {text}");
            assert!(text.contains(span), "{locale}: {text}");
            let lang = crate::mail::locale::pick(Some(locale), m.languages());
            let raw = String::from_utf8(msg.formatted()).expect("ascii");
            assert!(
                raw.contains(&format!("Content-Language: {lang}\r\n")),
                "{raw}"
            );
        }
        // The override wins over the recipient's own language.
        let mut m = m;
        m.set_locale_override(Some("fr"));
        let (s, _, _) = parts(
            &m.changed_message_to(&alice(Some("de")), 1_795_681_946)
                .expect("a message"),
        );
        assert_eq!(s, "Votre mot de passe Example Accounts a été modifié");
        assert_eq!(m.language_from_accept("es-MX,es;q=0.9"), "es");
    }

    #[test]
    fn changed_notice_says_whom_to_contact() {
        let m = configured(|_| {});
        let (_, text, html) = parts(
            &m.changed_message_to(&alice(None), 1_795_681_946)
                .expect("a message"),
        );
        assert!(text.contains("If this wasn’t you:\nSomeone else"), "{text}");
        assert!(
            text.contains("Contact help@example.com right away"),
            "{text}"
        );
        assert!(
            html.contains("Thursday, 26 November 2026, 09:32 CET"),
            "{html}"
        );
        let m = configured(|c| c.mail.support = None);
        let (_, text, _) = parts(
            &m.changed_message_to(&Recipient::new("bob@example.com"), 1_795_681_946)
                .expect("a message"),
        );
        assert!(text.starts_with("Hello,\n"), "{text}");
        assert!(
            text.contains("Contact your\nadministrator right away"),
            "{text}"
        );
    }

    #[test]
    fn a_name_cannot_forge_lines() {
        let m = configured(|_| {});
        let mut r = alice(None);
        r.name = Some("Eve\r\n\r\nClick http://evil.example\u{1b}[2J".into());
        let (_, text, _) = parts(
            &m.reset_message_to(
                &r,
                "https://e.example/r?token=pwr_x",
                1_795_681_946,
                1_795_678_346,
            )
            .expect("a message"),
        );
        assert!(
            text.starts_with("Hello Eve Click http://evil.example [2J,\n"),
            "{text}"
        );
        r.name = Some(" \t ".into());
        let (_, text, _) = parts(
            &m.reset_message_to(
                &r,
                "https://e.example/r?token=pwr_x",
                1_795_681_946,
                1_795_678_346,
            )
            .expect("a message"),
        );
        assert!(text.starts_with("Hello,\n"), "{text}");
    }

    #[test]
    fn template_lookup_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        std::fs::create_dir_all(d.join("de")).expect("mkdir");
        std::fs::create_dir_all(d.join("it")).expect("mkdir");
        std::fs::write(d.join("de/reset.txt"), "DE OWN {{ link }}").expect("write");
        std::fs::write(d.join("reset.txt"), "SHARED {{ link }}").expect("write");
        std::fs::write(
            d.join("it/reset.subject"),
            "Reimposta la password di {{ service_name }}",
        )
        .expect("write");
        let m = configured(|c| c.mail.template_dir = Some(d.to_owned()));
        let text = |locale: &str| {
            let msg = m
                .reset_message_to(
                    &alice(Some(locale)),
                    "https://e.example/r?token=pwr_x",
                    1_795_681_946,
                    1_795_678_346,
                )
                .expect("a message");
            parts(&msg)
        };
        // template_dir/<lang>/ first, then template_dir/, then the built-in ones.
        assert_eq!(text("de").1, "DE OWN https://e.example/r?token=pwr_x");
        assert_eq!(text("fr").1, "SHARED https://e.example/r?token=pwr_x");
        assert!(text("fr").2.contains("Choisir un nouveau mot de passe"));
        let (subject, body, html) = text("it-IT");
        assert_eq!(subject, "Reimposta la password di Example Accounts");
        assert_eq!(body, "SHARED https://e.example/r?token=pwr_x");
        assert!(
            html.contains("Choose a new password"),
            "English for what it lacks"
        );
        assert!(m.languages().contains(&"it".to_owned()));
    }

    #[test]
    fn a_misspelt_variable_is_a_config_error_naming_the_template() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("fr")).expect("mkdir");
        std::fs::write(dir.path().join("fr/changed.html"), "{{ changed_when }}").expect("write");
        let mut c = Config::defaults_with(dir.path().join("x.db")).expect("defaults");
        c.mail.transport = TransportKind::Stdout;
        c.mail.template_dir = Some(dir.path().to_owned());
        let err = Mailer::new(&c).err().expect("refused");
        assert_eq!(crate::error::exit_of(&err), Exit::Config);
        let msg = crate::error::render(&err);
        assert!(
            msg.contains("fr/changed.html") && msg.contains("changed_local"),
            "{msg}"
        );
    }

    /// Writes the HTML parts of sample messages for the screenshots in docs/ (see
    /// docs/screenshots.sh): `cargo test --lib write_samples -- --ignored`.
    #[test]
    #[ignore = "writes files for docs/screenshots.sh"]
    fn write_samples() {
        let out = std::path::PathBuf::from(
            std::env::var("PWRESET_SAMPLES").unwrap_or_else(|_| "target/mail-samples".into()),
        );
        std::fs::create_dir_all(&out).expect("mkdir");
        let m = configured(|_| {});
        let link = "https://accounts.example.com/reset_password?token=pwr_7Kq2mXw9Rb4TzH6vNc3PfJ8dLs5GyE1a";
        for locale in ["en", "de", "fr", "es"] {
            let r = alice(Some(locale));
            let reset = m
                .reset_message_to(&r, link, 1_795_681_946, 1_795_678_346)
                .expect("a message");
            let changed = m.changed_message_to(&r, 1_795_681_946).expect("a message");
            for (which, msg) in [("reset", reset), ("changed", changed)] {
                let html = parts(&msg).2;
                let start = html.find("<!DOCTYPE").expect("doctype");
                let end = html.find("</html>").expect("</html>") + "</html>".len();
                std::fs::write(
                    out.join(format!("{which}-{locale}.html")),
                    &html[start..end],
                )
                .expect("write");
                std::fs::write(out.join(format!("{which}-{locale}.eml")), msg.formatted())
                    .expect("write");
            }
        }
    }

    #[test]
    fn mail_catalogues_have_every_key_and_placeholder_of_english() {
        let catalogue = |lang: &str| {
            strings::parse(builtin_strings(lang).expect("built in"), lang, "en", None)
                .expect("parses")
        };
        let placeholders = |text: &str| {
            let mut names = Vec::new();
            strings::fill(text, |name| {
                names.push(name.to_owned());
                None
            });
            names.sort();
            names
        };
        let en = catalogue("en");
        for lang in ["de", "fr", "es"] {
            let other = catalogue(lang);
            assert_eq!(
                other.keys().collect::<Vec<_>>(),
                en.keys().collect::<Vec<_>>(),
                "{lang}: the same keys as English"
            );
            for (key, text) in &en {
                assert_eq!(
                    placeholders(&other[key]),
                    placeholders(text),
                    "{lang} {key}: the same placeholders as English"
                );
                assert_ne!(&other[key], text, "{lang} {key}: translated");
            }
        }
        // One set of templates for every language: the languages differ in words only.
        for name in TEMPLATE_NAMES.iter().chain(&LAYOUT_NAMES) {
            assert!(builtin(name).is_some(), "{name}");
        }
    }

    #[test]
    fn values_in_the_words_are_escaped_in_html_and_only_there() {
        let m = configured(|c| c.mail.support = Some("https://help.example.com/?a=1&b=2".into()));
        let mut r = alice(None);
        r.name = Some("Ann <b>&'\" {email}".into());
        let msg = m
            .reset_message_to(
                &r,
                "https://e.example/r?token=pwr_x",
                1_795_681_946,
                1_795_678_346,
            )
            .expect("a message");
        let (_, text, html) = parts(&msg);
        assert!(text.starts_with("Hello Ann <b>&'\" {email},"), "{text}");
        assert!(
            html.contains("Hello Ann &lt;b&gt;&amp;&#39;&quot; {email},"),
            "{html}"
        );
        assert!(
            html.contains(
                "Questions? Contact <a href=\"https://help.example.com/?a=1&amp;b=2\" style=\"color: #1d4ed8;\">https://help.example.com/?a=1&amp;b=2</a>."
            ),
            "{html}"
        );
        assert!(
            html.contains("<strong>alice@example.com</strong>"),
            "{html}"
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
