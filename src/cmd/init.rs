//! `pwreset init`

use crate::Ctx;
use crate::error::Exit;
use crate::store::Access;
use anyhow::{Context, Result};

pub fn run(ctx: &Ctx) -> Result<Exit> {
    let config = ctx.config()?;
    let mut store = crate::store::open(&config, Access::Create)?;
    for warning in store.warnings() {
        ctx.note(format!("warning: {warning}"));
    }
    let m = store.migrate()?;
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

/// How many rows `init` samples to tell which password formats the table holds.
const SAMPLE: usize = 1000;

/// Report which password formats the mapped column holds, and warn when the configured format
/// is not among them: a reset would write a hash the application cannot read.
fn census(
    ctx: &Ctx,
    config: &crate::config::Config,
    store: &mut dyn crate::store::Store,
) -> Result<()> {
    use crate::password::{Format, identify};
    let sample = store.sample_passwords(SAMPLE)?;
    if sample.is_empty() {
        return Ok(());
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
        .map(|(k, n)| format!("{n} {}", k.map_or("unrecognised", |k| k.name())))
        .collect();
    ctx.note(format!(
        "password column {}.{} (sample of {}): {}",
        config.users.table,
        config.users.password_column,
        sample.len(),
        listed.join(", ")
    ));
    let configured = config.users.password_format;
    let Some((Some(top), _)) = counts.iter().find(|(k, _)| k.is_some()) else {
        return Ok(());
    };
    if counts
        .iter()
        .any(|(k, _)| k.is_some_and(|k| configured.matches(k)))
    {
        return Ok(());
    }
    let suggestion = Format::ALL
        .iter()
        .find(|f| f.matches(*top))
        .map(|f| format!("; set [users] password_format = \"{}\"", f.name()))
        .unwrap_or_default();
    ctx.note(format!(
        "warning: [users] password_format is \"{}\", but the table holds {} hashes{suggestion}, or the application may not accept the passwords pwreset writes",
        configured.name(),
        top.name()
    ));
    Ok(())
}
