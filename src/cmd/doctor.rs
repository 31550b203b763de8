//! `pwreset doctor`: one line per check, `ok`, `warn` or `fail`, with what was found and the
//! fix. Exit 0 when nothing failed, else the worst failure's exit code.

use crate::Ctx;
use crate::cli::DoctorArgs;
use crate::config::{Config, TransportKind};
use crate::error::{Exit, exit_of, render};
use crate::store::Access;
use crate::ui;
use anyhow::Result;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    Ok,
    Warn,
    Fail(Exit),
}

struct Check {
    name: &'static str,
    level: Level,
    message: String,
    fix: Option<String>,
}

struct Report {
    checks: Vec<Check>,
}

impl Report {
    fn ok(&mut self, name: &'static str, message: impl Into<String>) {
        self.push(name, Level::Ok, message.into(), None);
    }
    fn warn(&mut self, name: &'static str, message: impl Into<String>, fix: impl Into<String>) {
        self.push(name, Level::Warn, message.into(), Some(fix.into()));
    }
    fn fail(&mut self, name: &'static str, err: &anyhow::Error, fix: impl Into<String>) {
        self.push(
            name,
            Level::Fail(exit_of(err)),
            render(err),
            Some(fix.into()),
        );
    }
    fn push(&mut self, name: &'static str, level: Level, message: String, fix: Option<String>) {
        self.checks.push(Check {
            name,
            level,
            message,
            fix: fix.filter(|f| !f.is_empty()),
        });
    }
}

/// The lowest bcrypt cost doctor accepts without a warning (OWASP Password Storage Cheat
/// Sheet: a work factor of 10 or more).
const MIN_BCRYPT_COST: u32 = 10;

/// OWASP's argon2id minimums (Password Storage Cheat Sheet): memory KiB for each time cost.
const OWASP_ARGON2: [(u32, u32); 5] = [(1, 47104), (2, 19456), (3, 12288), (4, 9216), (5, 7168)];

pub fn run(ctx: &Ctx, args: DoctorArgs) -> Result<Exit> {
    let mut r = Report { checks: Vec::new() };
    match ctx.config() {
        Ok(config) => {
            r.ok(
                "config",
                match &config.source {
                    crate::config::Source::File(_) => {
                        format!("{} parses, and its owner and mode are safe", config.source)
                    }
                    crate::config::Source::Defaults => config.source.to_string(),
                },
            );
            checks(ctx, &config, &args, &mut r);
        }
        Err(e) => r.fail(
            "config",
            &e,
            "fix the file as the message says; nothing else can be checked without it",
        ),
    }
    let worst = r.checks.iter().fold(Exit::Ok, |w, c| match c.level {
        Level::Fail(code) => w.worst(code),
        _ => w,
    });
    if args.json {
        let array: Vec<serde_json::Value> = r
            .checks
            .iter()
            .map(|c| {
                serde_json::json!({
                    "check": c.name,
                    "status": match c.level { Level::Ok => "ok", Level::Warn => "warn", Level::Fail(_) => "fail" },
                    "message": c.message,
                    "fix": c.fix,
                })
            })
            .collect();
        super::out(&ui::json(&serde_json::Value::Array(array)))?;
    } else {
        let mut lines = super::Lines::new();
        for c in &r.checks {
            let level = match c.level {
                Level::Ok => "ok  ",
                Level::Warn => "warn",
                Level::Fail(_) => "fail",
            };
            lines.line(&format!("{level}  {:<10} {}", c.name, c.message))?;
            if let Some(fix) = &c.fix {
                lines.line(&format!("      {:<10} fix: {fix}", ""))?;
            }
        }
        lines.finish()?;
    }
    Ok(worst)
}

fn checks(ctx: &Ctx, config: &Config, args: &DoctorArgs, r: &mut Report) {
    let base = pepper(config, r);
    let writes = database(config, base.clone(), r);
    match &config.base_url {
        Some(url) => r.ok("base_url", format!("links go to {url}")),
        None => r.fail(
            "base_url",
            &crate::error::fail(Exit::Config, "base_url is not set: request cannot make links"),
            format!("set base_url in {}, e.g. base_url = \"https://accounts.example.com/reset_password\"", config.source),
        ),
    }
    mail(config, args, r);
    hashing(writes.unwrap_or(base), r);
    let _ = ctx;
}

/// The pepper file, read by the very function `reset` reads it with: the same owner and mode
/// rules, the same 77. The settings the config gives, with the pepper when it could be read.
fn pepper(config: &Config, r: &mut Report) -> crate::password::HashSettings {
    let Some(path) = &config.users.pepper_file else {
        return config.hash_settings_unpeppered();
    };
    match config.hash_settings() {
        Ok(s) => {
            r.ok(
                "pepper",
                format!("{} is readable by pwreset and nobody else", path.display()),
            );
            s
        }
        Err(e) => {
            r.fail(
                "pepper",
                &e,
                format!(
                    "make {} owned by the user pwreset runs as, mode 0600 (chmod 600 {}): reset refuses it as it is",
                    path.display(),
                    path.display()
                ),
            );
            config.hash_settings_unpeppered()
        }
    }
}

/// The database, the users mapping and the password formats; what a reset writes, when that
/// could be decided.
fn database(
    config: &Config,
    base: crate::password::HashSettings,
    r: &mut Report,
) -> Option<crate::password::HashSettings> {
    let mut store = match crate::store::open(config, Access::Read) {
        Ok(s) => s,
        Err(e) => {
            r.fail(
                "database",
                &e,
                "run `pwreset init`, or fix `database` as the message says",
            );
            return None;
        }
    };
    r.ok(
        "database",
        format!(
            "{} is reachable and its schema is current",
            store.describe()
        ),
    );
    for w in store.warnings() {
        r.warn("database", w, "");
    }
    if config.ldap.is_some() {
        directory(config, r);
        return None;
    }
    match store.check_users_mapping() {
        Ok(()) => r.ok(
            "users",
            format!(
                "table {} maps id {}, email {}, password {}",
                config.users.table,
                config.users.id_column,
                config.users.email_column,
                config.users.password_column
            ),
        ),
        Err(e) => {
            r.fail(
                "users",
                &e,
                "fix [users] as the message says, then run `pwreset init`",
            );
            return None;
        }
    }
    // Without the pepper the census cannot tell what a reset would do: the pepper check
    // above has failed already.
    let peppered = config.users.pepper_file.is_none() || base.pepper.is_some();
    match super::init::census_of(config, store.as_mut(), base) {
        Ok(c) => {
            let summary = c
                .summary
                .unwrap_or_else(|| "no password is set in the table yet".to_owned());
            match c.writes {
                Ok(d) => {
                    r.ok("passwords", format!("{summary}; reset {}", d.note));
                    return peppered.then_some(d.settings);
                }
                Err(w) => r.warn("passwords", summary, w),
            }
        }
        Err(e) => r.fail(
            "passwords",
            &e,
            "set [users] password_format (and password_format_migration) as the message says",
        ),
    }
    None
}

/// A build without LDAP support never gets here: the config refuses `[ldap]`.
#[cfg(not(feature = "ldap"))]
fn directory(_: &Config, _: &mut Report) {}

/// `[ldap]`: the directory reachable, its certificate, the bind, and a sample lookup.
#[cfg(feature = "ldap")]
fn directory(config: &Config, r: &mut Report) {
    let started = Instant::now();
    let dir = match crate::directory::Directory::open(config) {
        Ok(d) => d,
        Err(e) => {
            r.fail(
                "ldap",
                &e,
                "check [ldap] url, ca_file, bind_dn and the bind password",
            );
            return;
        }
    };
    let connected = started.elapsed();
    let crate::directory::Directory::Ldap(mut d) = dir else {
        return;
    };
    {
        {
            if let Some(der) = d.peer_certificate() {
                certificate(&der, r);
            }
            match d.diagnose() {
                Ok(lines) => {
                    let mut lines = lines.into_iter();
                    if let Some(first) = lines.next() {
                        r.ok(
                            "ldap",
                            format!(
                                "{first} (connected and bound in {} ms)",
                                connected.as_millis()
                            ),
                        );
                    }
                    for line in lines {
                        match line.strip_prefix("warning: ") {
                            Some(w) => r.warn("ldap", w.to_owned(), ""),
                            None => r.ok("ldap", line),
                        }
                    }
                }
                Err(e) => {
                    r.fail(
                        "ldap",
                        &e,
                        "fix [ldap] or the bind DN's rights as the message says",
                    );
                    return;
                }
            }
            // A sample lookup, the way request looks an address up.
            if let Ok((_, people)) = d.sample(1)
                && let Some(p) = people.first()
            {
                let t = Instant::now();
                match d.find_by_address(&p.mail) {
                    Ok(crate::lookup::Found::User(_) | crate::lookup::Found::Locked(..)) => r.ok(
                        "ldap",
                        format!(
                            "a lookup by address ({}) takes {} ms",
                            ui::escape(&p.mail),
                            t.elapsed().as_millis()
                        ),
                    ),
                    Ok(_) => r.warn(
                        "ldap",
                        format!(
                            "looking up {} by its address does not find exactly one entry",
                            ui::escape(&p.mail)
                        ),
                        "make each address unique, or check ldap.mail_attribute",
                    ),
                    Err(e) => r.fail("ldap", &e, ""),
                }
            }
        }
    }
}

fn mail(config: &Config, args: &DoctorArgs, r: &mut Report) {
    let mailer = match crate::mail::Mailer::new(config) {
        Ok(m) => m,
        Err(e) => {
            r.fail(
                "mail",
                &e,
                "fix [mail] or the templates as the message says",
            );
            return;
        }
    };
    r.ok("templates", "every template renders in every language");
    match config.mail.transport {
        TransportKind::Smtp => match mailer.probe_smtp() {
            Some(Ok(p)) => {
                let how = if p.encrypted {
                    "TLS"
                } else {
                    "plaintext (loopback)"
                };
                let auth = if p.logged_in { ", AUTH accepted" } else { "" };
                r.ok(
                    "smtp",
                    format!(
                        "{}:{} answers over {how}{auth}; no message was sent",
                        config.mail.smtp.host, config.mail.smtp.port
                    ),
                );
                if let Some(der) = p.certificate {
                    certificate(&der, r);
                }
            }
            Some(Err(e)) => {
                let err = anyhow::Error::from(e);
                r.fail(
                    "smtp",
                    &err,
                    "check [mail.smtp] host, port, tls, ca_file and the password",
                );
            }
            None => {}
        },
        TransportKind::Sendmail => {
            let cmd = &config.mail.sendmail_command;
            use std::os::unix::fs::PermissionsExt;
            match std::fs::metadata(cmd) {
                Ok(m) if m.is_file() && m.permissions().mode() & 0o111 != 0 => r.ok(
                    "sendmail",
                    format!("{} exists and can be run", cmd.display()),
                ),
                _ => r.fail(
                    "sendmail",
                    &crate::error::fail(
                        Exit::Config,
                        format!("{} does not exist or cannot be run", cmd.display()),
                    ),
                    "install a sendmail (e.g. postfix) or set [mail.sendmail] command",
                ),
            }
        }
        TransportKind::File => {
            match crate::trust::check_private_dir(&config.mail.file_dir, "mail.file.dir") {
                Ok(()) => r.ok(
                    "outbox",
                    format!("{} is private", config.mail.file_dir.display()),
                ),
                Err(e) => r.fail("outbox", &e, ""),
            }
        }
        TransportKind::Stdout => r.ok("mail", "messages go to stdout"),
    }
    if let Some(to) = &args.send_test {
        let sent = mailer
            .test_message(to)
            .and_then(|m| mailer.send(&m).map_err(anyhow::Error::from));
        match sent {
            Ok(()) => r.ok(
                "send-test",
                format!(
                    "a test message was handed to {} for {}",
                    mailer.describe(),
                    ui::escape(to)
                ),
            ),
            Err(e) => r.fail("send-test", &e, "see the smtp check above"),
        }
    }
}

/// A relay certificate that expires within 30 days is a warning; an expired one would not
/// have passed the TLS check.
fn certificate(der: &[u8], r: &mut Report) {
    let Some(not_after) = not_after(der) else {
        r.warn(
            "certificate",
            "the relay's certificate could not be read",
            "",
        );
        return;
    };
    let left = not_after - ui::now();
    let when = ui::rfc3339(not_after);
    if left < 30 * 86400 {
        r.warn(
            "certificate",
            format!(
                "the relay's certificate expires in {} (at {when})",
                ui::rough_span(left)
            ),
            "renew the relay's certificate",
        );
    } else {
        r.ok(
            "certificate",
            format!("the relay's certificate is valid until {when}"),
        );
    }
}

/// The end of a certificate's validity (RFC 5280 `tbsCertificate.validity.notAfter`), as Unix
/// seconds. The one field doctor reads: a walk of the DER to it, rather than an X.509 parser
/// (eight crates, a sixth of a cold build). The certificate has passed the TLS check already.
fn not_after(der: &[u8]) -> Option<i64> {
    let (0x30, cert, _) = tlv(der)? else {
        return None;
    };
    let (0x30, tbs, _) = tlv(cert)? else {
        return None;
    };
    // [0] version, when present; then serialNumber, signature and issuer.
    let mut rest = tbs;
    if let (0xa0, _, after) = tlv(rest)? {
        rest = after;
    }
    for _ in 0..3 {
        rest = tlv(rest)?.2;
    }
    let (0x30, validity, _) = tlv(rest)? else {
        return None;
    };
    let (_, _, after_not_before) = tlv(validity)?;
    let (tag, time, _) = tlv(after_not_before)?;
    let text = std::str::from_utf8(time).ok()?;
    let digits = text.strip_suffix('Z')?;
    // UTCTime is YYMMDDHHMMSS (years 1950-2049), GeneralizedTime YYYYMMDDHHMMSS.
    let (year, rest) = match (tag, digits.len()) {
        (0x17, 12) => {
            let yy: i16 = digits[..2].parse().ok()?;
            (if yy < 50 { 2000 + yy } else { 1900 + yy }, &digits[2..])
        }
        (0x18, 14) => (digits[..4].parse().ok()?, &digits[4..]),
        _ => return None,
    };
    let field = |i: usize| -> Option<i8> { rest.get(i..i + 2)?.parse().ok() };
    let dt = jiff::civil::DateTime::new(
        year,
        field(0)?,
        field(2)?,
        field(4)?,
        field(6)?,
        field(8)?,
        0,
    )
    .ok()?;
    Some(
        dt.to_zoned_datetime(jiff::tz::TimeZone::UTC)
            .ok()?
            .timestamp()
            .as_second(),
    )
}

/// One DER element: its tag, its contents, and what follows it.
fn tlv(b: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = b.split_first()?;
    let (&first, mut rest) = rest.split_first()?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, &byte| acc << 8 | usize::from(byte));
        rest = &rest[n..];
        len
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

/// Time one hash in the format a reset writes, at the cost it writes it with, and warn on a
/// cost below today's advice for that format.
fn hashing(settings: crate::password::HashSettings, r: &mut Report) {
    use crate::password::Format;
    let what = crate::password::census::describe(&settings);
    let name = match settings.format {
        Format::Argon2id | Format::DjangoArgon2 => "argon2",
        Format::Bcrypt | Format::DjangoBcryptSha256 => "bcrypt",
        Format::DjangoPbkdf2Sha256 | Format::AspnetIdentityV3 => "pbkdf2",
    };
    let start = Instant::now();
    if let Err(e) = crate::password::hash_as("doctor timing check", &settings) {
        r.fail(name, &anyhow::Error::new(e), "");
        return;
    }
    let took = start.elapsed();
    let ms = took.as_secs_f64() * 1000.0;
    let weak = match settings.format {
        Format::Argon2id | Format::DjangoArgon2 => {
            let a = settings.argon2;
            OWASP_ARGON2
                .iter()
                .find(|(t, _)| *t == a.iterations.min(5))
                .is_some_and(|(_, m)| a.memory_kib < *m)
                .then(|| {
                    (
                        format!("below OWASP's argon2id minimum for t={}", a.iterations),
                        "raise [password.argon2] (for an explicit format) or the application's own argon2 settings to at least m=19456 t=2 p=1, OWASP's baseline".to_owned(),
                    )
                })
        }
        Format::Bcrypt | Format::DjangoBcryptSha256 => (settings.bcrypt_cost < MIN_BCRYPT_COST)
            .then(|| {
                (
                    format!("below bcrypt cost {MIN_BCRYPT_COST}, OWASP's minimum"),
                    format!("raise [password.bcrypt] cost (for an explicit format) or the application's own bcrypt cost to at least {MIN_BCRYPT_COST}"),
                )
            }),
        Format::DjangoPbkdf2Sha256 => (settings.pbkdf2_iterations
            < crate::password::formats::DJANGO_PBKDF2_ITERATIONS)
            .then(|| {
                (
                    format!(
                        "below Django's current default of {} iterations",
                        ui::grouped(u64::from(crate::password::formats::DJANGO_PBKDF2_ITERATIONS))
                    ),
                    "upgrade Django, or raise PBKDF2PasswordHasher.iterations".to_owned(),
                )
            }),
        // Written at ASP.NET Core Identity's own current default.
        Format::AspnetIdentityV3 => None,
    };
    if took > Duration::from_secs(1) {
        r.warn(
            name,
            format!("one hash in {what} takes {:.2} s here", took.as_secs_f64()),
            "lower the cost: a reset should take well under a second",
        );
    } else if let Some((why, fix)) = weak {
        r.warn(
            name,
            format!("{what} is {why} ({ms:.0} ms per hash here)"),
            fix,
        );
    } else {
        r.ok(name, format!("{what}: {ms:.0} ms per hash here"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert_until(year: i32, month: u8, day: u8) -> Vec<u8> {
        let mut params =
            rcgen::CertificateParams::new(vec!["relay.example.com".to_owned()]).expect("params");
        params.not_after = rcgen::date_time_ymd(year, month, day);
        let key = rcgen::KeyPair::generate().expect("key");
        params
            .self_signed(&key)
            .expect("certificate")
            .der()
            .to_vec()
    }

    fn unix(year: i16, month: i8, day: i8) -> i64 {
        jiff::civil::date(year, month, day)
            .to_datetime(jiff::civil::time(0, 0, 0, 0))
            .to_zoned_datetime(jiff::tz::TimeZone::UTC)
            .expect("a date")
            .timestamp()
            .as_second()
    }

    #[test]
    fn not_after_reads_utc_and_generalized_time() {
        // Before 2050 RFC 5280 writes UTCTime, from 2050 GeneralizedTime.
        assert_eq!(not_after(&cert_until(2031, 7, 9)), Some(unix(2031, 7, 9)));
        assert_eq!(not_after(&cert_until(2051, 1, 2)), Some(unix(2051, 1, 2)));
    }

    #[test]
    fn not_after_of_anything_else_is_none() {
        let der = cert_until(2031, 7, 9);
        assert_eq!(not_after(&[]), None);
        assert_eq!(not_after(b"not a certificate"), None);
        for cut in [1, 10, der.len() / 2, der.len() - 1] {
            assert_eq!(not_after(&der[..cut]), None, "cut at {cut}");
        }
        // A length that claims more than there is.
        assert_eq!(not_after(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff, 0x30]), None);
    }
}
