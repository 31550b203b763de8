//! `pwreset user add` and `pwreset user list`

use crate::Ctx;
use crate::cli::UserCommand;
use crate::error::{Exit, fail};
use crate::store::Access;
use crate::ui;
use anyhow::Result;

pub fn run(ctx: &Ctx, cmd: UserCommand) -> Result<Exit> {
    match cmd {
        UserCommand::Add { email, name } => add(ctx, &email, name.as_deref()),
        UserCommand::List { json } => list(ctx, json),
    }
}

fn add(ctx: &Ctx, email: &str, name: Option<&str>) -> Result<Exit> {
    let email = crate::email::validate(email)?;
    if let Some(n) = name
        && (n.chars().any(|c| c.is_control() || c == '\u{fffd}') || n.chars().count() > 200)
    {
        return Err(fail(
            Exit::DataErr,
            "--name must be one line of UTF-8 text of at most 200 characters",
        ));
    }
    let config = ctx.config()?;
    let mut store = crate::store::open(&config, Access::Write)?;
    if !store.owns_users_table() {
        return Err(fail(
            Exit::Usage,
            format!(
                "users live in the application's table `{}`; add them through the application. `user add` only writes pwreset's own users table",
                config.users.table
            ),
        ));
    }
    let id = store.add_user(email, name, ui::now(), ctx.actor())?;
    ctx.note(format!(
        "added user {id} <{}>; send them a reset link with: pwreset request {}",
        ui::escape(email),
        ui::escape(email)
    ));
    Ok(Exit::Ok)
}

fn list(ctx: &Ctx, json: bool) -> Result<Exit> {
    let config = ctx.config()?;
    let mut store = crate::store::open(&config, Access::Read)?;
    let now = ui::now();
    if json {
        let mut array = super::JsonArray::new();
        store.list_users(now, &mut |u| {
            array.push(&serde_json::json!({
                "id": u.id, "email": u.email, "has_password": u.has_password, "open_tokens": u.open_tokens,
            }))
        })?;
        array.finish()?;
    } else {
        let mut lines = super::Lines::new();
        let mut n = 0u64;
        lines.line(&format!(
            "{:>8}  {:<40}  {:<8}  {}",
            "ID", "EMAIL", "PASSWORD", "OPEN TOKENS"
        ))?;
        store.list_users(now, &mut |u| {
            n += 1;
            lines.line(&format!(
                "{:>8}  {:<40}  {:<8}  {}",
                u.id,
                ui::escape(&u.email),
                if u.has_password { "set" } else { "not set" },
                u.open_tokens
            ))
        })?;
        lines.finish()?;
        ctx.debug(format!("{n} users"));
    }
    Ok(Exit::Ok)
}
