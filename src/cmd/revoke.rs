//! `pwreset revoke`: end one link, or all of a user's, now.

use crate::Ctx;
use crate::cli::RevokeArgs;
use crate::cmd::verify;
use crate::error::{Exit, fail};
use crate::lookup::Found;
use crate::reset::Checked;
use crate::store::{Access, AuditAction, AuditEvent, AuditOutcome, RevokeReason};
use crate::token::Status;
use crate::ui;
use anyhow::Result;

pub fn run(ctx: &Ctx, args: RevokeArgs) -> Result<Exit> {
    let why = match args.reason.as_deref().map(str::trim) {
        Some(r)
            if r.is_empty()
                || r.chars().count() > 200
                || r.chars().any(|c| c.is_control() || c == '\u{fffd}') =>
        {
            return Err(fail(
                Exit::DataErr,
                "--reason must be one line of UTF-8 text of at most 200 characters",
            ));
        }
        r => r.map(str::to_owned),
    };
    let reason = RevokeReason::ByHand(why);
    match args.user {
        Some(email) => by_user(ctx, &email, &reason),
        None => by_token(ctx, args.token, &reason),
    }
}

fn by_token(ctx: &Ctx, arg: Option<std::ffi::OsString>, reason: &RevokeReason) -> Result<Exit> {
    let input = verify::read_input(arg)?;
    let now = ui::now();
    let token = match verify::parse(input.as_deref()) {
        Ok(t) => t,
        Err(m) => {
            eprintln!("{}", verify::describe(&Checked::malformed(m), now));
            return Ok(Exit::NotUsable);
        }
    };
    let config = ctx.config()?;
    let mut store = crate::store::open(&config, Access::Write)?;
    let mut dir = crate::directory::Directory::open(&config)?;
    let checked = crate::reset::check(&mut dir, store.as_mut(), token, now)?;
    let (Some(record), Some(token)) = (&checked.record, &checked.token) else {
        eprintln!("{}", verify::describe(&checked, now));
        return Ok(Exit::NotUsable);
    };
    if checked.status != Status::Valid {
        eprintln!("nothing to revoke: {}", verify::describe(&checked, now));
        return Ok(Exit::NotUsable);
    }
    let detail = reason.describe();
    let event = AuditEvent {
        at: now,
        actor: ctx.actor(),
        action: AuditAction::Revoke,
        user_id: Some(&record.user_id),
        email: record.email.as_deref(),
        outcome: AuditOutcome::Ok,
        detail: Some(&detail),
    };
    if !store.revoke_token(token.id(), reason, now, Some(&event))? {
        // It stopped being usable between the check and the revocation (a reset won).
        eprintln!("nothing to revoke: the token stopped being usable a moment ago");
        return Ok(Exit::NotUsable);
    }
    super::out(&format!(
        "revoked: the link of {} no longer works",
        record.email.as_deref().unwrap_or("a deleted user")
    ))?;
    Ok(Exit::Ok)
}

fn by_user(ctx: &Ctx, email: &str, reason: &RevokeReason) -> Result<Exit> {
    let addr = crate::email::validate(email)?;
    let config = ctx.config()?;
    let mut store = crate::store::open(&config, Access::Write)?;
    let mut dir = crate::directory::Directory::open(&config)?;
    let user = match dir.find(store.as_mut(), addr)? {
        Found::User(u) | Found::Locked(u, _) => u,
        Found::Ambiguous if !dir.is_table() => {
            return Err(Found::ambiguous_in_directory(addr, &dir.describe(&config)));
        }
        Found::Ambiguous => return Err(Found::ambiguous_error(addr, &config.users.table)),
        Found::Unknown => {
            return Err(fail(Exit::NoUser, format!("no user with address {addr}")));
        }
    };
    let n = store.revoke_user_tokens(&user, reason, ui::now(), ctx.actor())?;
    if n == 0 {
        eprintln!(
            "nothing to revoke: {} has no open link",
            ui::escape(&user.email)
        );
        return Ok(Exit::NotUsable);
    }
    super::out(&format!(
        "revoked {} of {}",
        ui::count(n, "open link", "open links"),
        user.email
    ))?;
    Ok(Exit::Ok)
}
