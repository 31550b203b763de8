//! `pwreset init`

use crate::Ctx;
use crate::error::Exit;
use crate::password::FormatSetting;
use crate::password::census::{Decided, decided, own, own_by_name};
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

/// What `init` (and `doctor`) found in the password column, and what a reset will write.
pub(crate) struct Census {
    /// "password column t.c (sample of N): 998 django-pbkdf2-sha256, 2 unrecognised"; None
    /// when no password is set yet.
    pub summary: Option<String>,
    /// What a reset writes, or why it will refuse (78) until `[users] password_format` is set:
    /// `auto` on a column with no password yet, which is no error while the application has
    /// no users.
    pub writes: std::result::Result<Decided, String>,
}

/// Read the census of the mapped password column and decide what a reset writes, with the
/// config's costs and pepper in `base`. 78 when the column and `[users] password_format` do
/// not agree (several formats, none pwreset writes, an explicit format the column does not
/// hold).
pub(crate) fn census_of(
    config: &crate::config::Config,
    store: &mut dyn crate::store::Store,
    base: crate::password::HashSettings,
) -> Result<Census> {
    let census = crate::password::census::take(store)?;
    let summary = census.as_ref().map(|c| {
        format!(
            "password column {}.{} (sample of {}): {}",
            config.users.table,
            config.users.password_column,
            ui::grouped(c.sampled as u64),
            c.listed()
        )
    });
    if store.owns_users_table() || own_by_name(config, census.as_ref()) {
        return Ok(Census {
            summary,
            writes: Ok(own(base)),
        });
    }
    // Only an empty column is a warning (an application with no users yet); values none of
    // which pwreset recognises are refused with 78 below, as reset would refuse them.
    if census.is_none() && config.users.password_format == FormatSetting::Auto {
        return Ok(Census {
            summary,
            writes: Err(format!(
                "no password is set in {}.{} yet, so [users] password_format = \"auto\" cannot tell the application's format: reset will refuse (exit 78) until you set [users] password_format to the format the application writes (one of {})",
                config.users.table,
                config.users.password_column,
                crate::password::Format::ALL.map(|f| f.name()).join(", ")
            )),
        });
    }
    let writes = decided(config, census.as_ref(), base)?;
    Ok(Census {
        summary,
        writes: Ok(writes),
    })
}

/// Report which password formats the mapped column holds and what a reset will write; 78 when
/// a reset would write a hash the application may not read.
fn census(
    ctx: &Ctx,
    config: &crate::config::Config,
    store: &mut dyn crate::store::Store,
) -> Result<()> {
    let c = census_of(config, store, config.hash_settings()?)?;
    if let Some(summary) = c.summary {
        ctx.note(summary);
    }
    match c.writes {
        Ok(d) => ctx.note(format!("reset {}", d.note)),
        Err(w) => ctx.note(format!("warning: {w}")),
    }
    Ok(())
}
