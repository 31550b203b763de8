//! `pwreset init`

use crate::Ctx;
use crate::error::Exit;
use crate::store::Access;
use crate::ui;
use anyhow::{Context, Result};

pub fn run(ctx: &Ctx) -> Result<Exit> {
    let config = ctx.config()?;
    let mut store = crate::store::open(&config, Access::Create)?;
    for warning in store.warnings() {
        ctx.note(format!("warning: {warning}"));
    }
    let m = store.migrate()?;
    if config.ldap.is_some() {
        let what = store.describe();
        ctx.note(format!(
            "{what} holds the tokens, the throttle and the audit trail (schema version {})",
            m.after
        ));
        return directory(ctx, &config);
    }
    store
        .check_users_mapping()
        .with_context(|| config.source.to_string())?;
    let what = store.describe();
    ctx.note(match (m.created, m.before == m.after) {
        (true, _) => format!("created {what} (schema version {})", m.after),
        (false, true) => format!("{what} is up to date (schema version {})", m.after),
        (false, false) => format!(
            "migrated {what} from schema version {} to {}",
            m.before, m.after
        ),
    });
    census(ctx, &config, store.as_mut())?;
    if store.owns_users_table() {
        ctx.debug("users live in pwreset's own table `users`; add them with `pwreset user add`");
    } else {
        ctx.debug(format!(
            "users live in the application's table `{}`",
            config.users.table
        ));
    }
    Ok(Exit::Ok)
}

/// `[ldap]`: bind, find the base DN, check that the filter finds people and that bind_dn may
/// read them, and report the password policy.
fn directory(ctx: &Ctx, config: &crate::config::Config) -> Result<Exit> {
    match crate::directory::Directory::open(config)? {
        // Without the `ldap` feature the config never has [ldap], so this is not reached.
        crate::directory::Directory::Table => {
            let _ = ctx;
        }
        #[cfg(feature = "ldap")]
        crate::directory::Directory::Ldap(mut d) => {
            for line in d.diagnose()? {
                ctx.note(line);
            }
        }
    }
    Ok(Exit::Ok)
}

/// How many rows `init` samples to tell which password formats the table holds.
const SAMPLE: usize = 1000;

/// What `init` (and `doctor`) found in the password column.
pub(crate) struct Census {
    /// "password column t.c (sample of N): 998 django-pbkdf2-sha256, 2 unrecognised"
    pub summary: String,
    /// When the configured format is not among the formats found: what to set instead.
    pub warning: Option<String>,
}

/// Sample the mapped password column and tell which formats it holds; `None` when no
/// password is set yet.
pub(crate) fn census_of(
    config: &crate::config::Config,
    store: &mut dyn crate::store::Store,
) -> Result<Option<Census>> {
    use crate::password::{Format, identify};
    let sample = store.sample_passwords(SAMPLE)?;
    if sample.is_empty() {
        return Ok(None);
    }
    let mut counts: Vec<(Option<crate::password::Kind>, usize)> = Vec::new();
    for value in &sample {
        let kind = identify(value.bytes());
        match counts.iter_mut().find(|(k, _)| *k == kind) {
            Some((_, n)) => *n += 1,
            None => counts.push((kind, 1)),
        }
    }
    counts.sort_by_key(|(_, n)| std::cmp::Reverse(*n));
    let listed: Vec<String> = counts
        .iter()
        .map(|(k, n)| {
            format!(
                "{} {}",
                ui::grouped(*n as u64),
                k.map_or("unrecognised", |k| k.name())
            )
        })
        .collect();
    let summary = format!(
        "password column {}.{} (sample of {}): {}",
        config.users.table,
        config.users.password_column,
        ui::grouped(sample.len() as u64),
        listed.join(", ")
    );
    let configured = config.users.password_format;
    let top = counts.iter().find_map(|(k, _)| *k);
    let warning = match top {
        Some(top)
            if !counts
                .iter()
                .any(|(k, _)| k.is_some_and(|k| configured.matches(k))) =>
        {
            let suggestion = Format::ALL
                .iter()
                .find(|f| f.matches(top))
                .map(|f| format!("; set [users] password_format = \"{}\"", f.name()))
                .unwrap_or_default();
            Some(format!(
                "[users] password_format is \"{}\", but the table holds {} hashes{suggestion}, or the application may not accept the passwords pwreset writes",
                configured.name(),
                top.name()
            ))
        }
        _ => None,
    };
    Ok(Some(Census { summary, warning }))
}

/// Report which password formats the mapped column holds, and warn when the configured format
/// is not among them: a reset would write a hash the application cannot read.
fn census(
    ctx: &Ctx,
    config: &crate::config::Config,
    store: &mut dyn crate::store::Store,
) -> Result<()> {
    if let Some(c) = census_of(config, store)? {
        ctx.note(c.summary);
        if let Some(w) = c.warning {
            ctx.note(format!("warning: {w}"));
        }
    }
    Ok(())
}
