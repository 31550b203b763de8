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
