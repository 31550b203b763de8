//! `pwreset audit`: the audit trail, newest first.

use crate::Ctx;
use crate::cli::AuditArgs;
use crate::error::{Exit, fail};
use crate::lookup::Found;
use crate::store::{Access, AuditFilter};
use crate::ui;
use anyhow::Result;

pub fn run(ctx: &Ctx, args: AuditArgs) -> Result<Exit> {
    let config = ctx.config()?;
    let mut store = crate::store::open(&config, Access::Read)?;
    let user_id = match &args.user {
        Some(email) => {
            let addr = crate::email::validate(email)?;
            let mut dir = crate::directory::Directory::open(&config)?;
            match dir.find(store.as_mut(), addr)? {
                Found::User(u) | Found::Locked(u, _) => Some(u.id),
                Found::Ambiguous if !dir.is_table() => {
                    return Err(Found::ambiguous_in_directory(addr, &dir.describe(&config)));
                }
                Found::Ambiguous => return Err(Found::ambiguous_error(addr, &config.users.table)),
                Found::Unknown => {
                    return Err(fail(
                        Exit::NoUser,
                        format!("no user with address {}", ui::escape(addr)),
                    ));
                }
            }
        }
        None => None,
    };
    let since = args
        .since
        .map(|d| ui::now().saturating_sub(i64::try_from(d.as_secs()).unwrap_or(i64::MAX)));
    let filter = AuditFilter {
        user_id,
        since,
        limit: args.limit,
    };
    if args.json {
        let mut array = super::JsonArray::new();
        store.audit_entries(&filter, &mut |e| {
            array.push(&serde_json::json!({
                "at": ui::rfc3339(e.at),
                "actor": e.actor,
                "action": e.action,
                "email": e.email,
                "outcome": e.outcome,
                "detail": e.detail,
            }))
        })?;
        array.finish()?;
    } else {
        let mut lines = super::Lines::new();
        lines.line(&format!(
            "{:<20}  {:<16}  {:<12}  {:<32}  {:<10}  {}",
            "TIME", "ACTOR", "ACTION", "USER", "OUTCOME", "DETAIL"
        ))?;
        store.audit_entries(&filter, &mut |e| {
            lines.line(&format!(
                "{:<20}  {:<16}  {:<12}  {:<32}  {:<10}  {}",
                ui::rfc3339(e.at),
                ui::escape(&e.actor),
                e.action,
                ui::escape(e.email.as_deref().unwrap_or("-")),
                e.outcome,
                ui::escape(e.detail.as_deref().unwrap_or(""))
            ))
        })?;
        lines.finish()?;
    }
    Ok(Exit::Ok)
}
