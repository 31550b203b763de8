//! `pwreset config show`: every setting in effect, and where it came from (a flag, the
//! environment, a line of the config file, or the built-in default). Secrets are never shown:
//! the passwords from the environment appear as `(set)`, the password files by their path.

use super::keys::{KEYS, full_name};
use super::{Overrides, Source, locate, lookup, resolve};
use crate::error::{Exit, fail};
use anyhow::Result;
use std::collections::HashMap;

/// One setting: its dotted key, its value as TOML (or `(set)`, `(not set)`), and its source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shown {
    pub key: String,
    pub value: String,
    pub source: String,
}

/// The config file read (or the built-in defaults) and every setting in effect. Fails, like
/// every command, when the config is not valid: there are no settings in effect then.
pub fn show(over: &Overrides) -> Result<(Source, Vec<Shown>)> {
    let (raw, source, text) = locate(over)?;
    let values = toml::Table::try_from(&raw).map_err(|e| {
        fail(
            Exit::Software,
            format!("cannot write the settings out: {e}"),
        )
    })?;
    let config = resolve(raw, &source, over)
        .map_err(|p| fail(Exit::Config, format!("{source}: {}: {}", p.key, p.why)))?;
    let lines = text.as_deref().map(key_lines).unwrap_or_default();
    let file = match &source {
        Source::File(p) => p.display().to_string(),
        Source::Defaults => String::new(),
    };
    let mut out = Vec::new();
    for key in KEYS {
        let name = full_name(key);
        let from_file = lines.get(&name).map(|line| format!("{file}:{line}"));
        let value = lookup(&values, &name).map(|v| v.to_string());
        let shown = match (name.as_str(), value) {
            ("database", _) if over.database.is_some() => {
                let db = over.database.as_deref().unwrap_or(std::path::Path::new(""));
                Shown {
                    key: name,
                    value: toml_string(&db.to_string_lossy()),
                    source: flag_or_env(db.as_os_str(), "--db", "PWRESET_DB"),
                }
            }
            (_, Some(value)) => Shown {
                key: name,
                value,
                source: from_file.unwrap_or_else(|| "default".into()),
            },
            // Unset keys whose default is worked out from other settings.
            ("database", None) => Shown {
                key: name,
                value: toml_string(&super::default_database().to_string_lossy()),
                source: "default".into(),
            },
            ("mail.smtp.port", None) => Shown {
                key: name,
                value: config.mail.smtp.port.to_string(),
                source: "default (from mail.smtp.tls)".into(),
            },
            ("mail.smtp.tls", None) => Shown {
                key: name,
                value: toml_string(match config.mail.smtp.tls {
                    super::Tls::StartTls => "starttls",
                    super::Tls::Tls => "tls",
                    super::Tls::None => "none",
                }),
                source: "default (from mail.smtp.host)".into(),
            },
            ("mail.service_name", None) => Shown {
                key: name,
                value: toml_string(&config.mail.service_name),
                source: "default (from mail.from)".into(),
            },
            (_, None) => Shown {
                key: name,
                value: "(not set)".into(),
                source: "default".into(),
            },
        };
        out.push(shown);
    }
    // The passwords that can come from the environment: whether they are there, never what.
    for (key, var, file) in [
        (
            "mail.smtp.password",
            "PWRESET_SMTP_PASSWORD",
            config.mail.smtp.password_file.is_some(),
        ),
        (
            "database_password",
            "PWRESET_DB_PASSWORD",
            matches!(&config.database, super::Database::Server(s) if s.password_file.is_some()),
        ),
        (
            "ldap.bind_password",
            "PWRESET_LDAP_PASSWORD",
            config
                .ldap
                .as_ref()
                .is_some_and(|l| l.bind_password_file.is_some()),
        ),
    ] {
        if std::env::var_os(var).is_some_and(|v| !v.is_empty()) {
            out.push(Shown {
                key: key.into(),
                value: "(set)".into(),
                source: if file {
                    format!("env {var} (not used: the password file wins)")
                } else {
                    format!("env {var}")
                },
            });
        }
    }
    Ok((source, out))
}

/// `--flag` or `ENV`, for a value clap took from one of them: the environment's when it holds
/// this very value (a flag given the same value would say the same thing).
fn flag_or_env(value: &std::ffi::OsStr, flag: &str, var: &str) -> String {
    if std::env::var_os(var).is_some_and(|v| v == value) {
        format!("env {var}")
    } else {
        format!("flag {flag}")
    }
}

fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

/// The line of each key set in the file, by its dotted name.
fn key_lines(text: &str) -> HashMap<String, usize> {
    let mut out = HashMap::new();
    // The file parsed already; a failure here only costs the line numbers.
    if let Ok(table) = toml::de::DeTable::parse(text) {
        walk(table.get_ref(), "", text, &mut out);
    }
    out
}

fn walk(table: &toml::de::DeTable<'_>, prefix: &str, text: &str, out: &mut HashMap<String, usize>) {
    for (k, v) in table {
        let name = if prefix.is_empty() {
            k.get_ref().to_string()
        } else {
            format!("{prefix}.{}", k.get_ref())
        };
        match v.get_ref() {
            toml::de::DeValue::Table(sub) => walk(sub, &name, text, out),
            _ => {
                let at = k.span().start.min(text.len());
                out.insert(name, text[..at].matches('\n').count() + 1);
            }
        }
    }
}
