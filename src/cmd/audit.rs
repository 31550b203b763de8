//! `pwreset audit`: the audit trail, newest first.

use crate::Ctx;
use crate::cli::AuditArgs;
use crate::error::{Exit, fail};
use crate::store::{Access, AuditFilter, Store};
use crate::ui;
use anyhow::Result;

pub fn run(ctx: &Ctx, args: AuditArgs) -> Result<Exit> {
    let config = ctx.config()?;
    let store = Store::open(&config, Access::Read)?;
    let user_id = match &args.user {
        Some(email) => {
            let addr = crate::email::validate(email)?;
            match store.find_user(addr)? {
                Some(u) => Some(u.id),
                None => {
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
        let mut first = true;
        super::out_raw("[")?;
        store.audit_entries(&filter, &mut |e| {
            let obj = serde_json::json!({
                "at": ui::rfc3339(e.at),
                "actor": e.actor,
                "action": e.action,
                "email": e.email,
                "outcome": e.outcome,
                "detail": e.detail,
            });
            super::out_raw(&format!(
                "{}{}",
                if first { "" } else { ",\n" },
                ui::json(&obj)
            ))?;
            first = false;
            Ok(())
        })?;
        super::out("]")?;
    } else {
        super::out(&format!(
            "{:<20}  {:<16}  {:<12}  {:<32}  {:<10}  {}",
            "TIME", "ACTOR", "ACTION", "USER", "OUTCOME", "DETAIL"
        ))?;
        store.audit_entries(&filter, &mut |e| {
            super::out(&format!(
                "{:<20}  {:<16}  {:<12}  {:<32}  {:<10}  {}",
                ui::rfc3339(e.at),
                ui::escape(&e.actor),
                e.action,
                ui::escape(e.email.as_deref().unwrap_or("-")),
                e.outcome,
                ui::escape(e.detail.as_deref().unwrap_or(""))
            ))
        })?;
    }
    Ok(Exit::Ok)
}
