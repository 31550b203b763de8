//! `pwreset init`

use crate::Ctx;
use crate::error::Exit;
use crate::store::{Access, Store};
use anyhow::Result;

pub fn run(ctx: &Ctx) -> Result<Exit> {
    let config = ctx.config()?;
    let check = crate::trust::check_database_path(&config.database, crate::trust::DbUse::Create)?;
    for warning in &check.warnings {
        ctx.note(format!("warning: {warning}"));
    }
    let existed = check.exists;
    let mut store = Store::open(&config, Access::Create)?;
    let (before, after) = store.migrate()?;
    store.check_users_mapping(&config.source)?;
    let path = store.path().display().to_string();
    let what = match (existed, before == after) {
        (false, _) => format!("created database {path} (schema version {after})"),
        (true, true) => format!("database {path} is up to date (schema version {after})"),
        (true, false) => {
            format!("migrated database {path} from schema version {before} to {after}")
        }
    };
    ctx.note(what);
    if store.owns_users_table()? {
        ctx.debug("users live in pwreset's own table `users`; add them with `pwreset user add`");
    } else {
        ctx.debug(format!(
            "users live in the application's table `{}`",
            config.users.table
        ));
    }
    Ok(Exit::Ok)
}
