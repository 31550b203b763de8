//! `pwreset verify`, and the token check `reset` shares with it.

use crate::Ctx;
use crate::cli::VerifyArgs;
use crate::error::Exit;
use crate::reset::Checked;
use crate::store::Access;
use crate::token::{self, Malformed, Status, Token};
use crate::ui;
use anyhow::Result;
use std::ffi::OsString;
use std::io::{BufRead, Read};

/// Token input as given: an argument, or (None or `-`) one line of stdin. Input that is not
/// UTF-8 or is far too long comes back as `None`: it is malformed whatever it holds.
/// At a terminal, stdin is asked for with a prompt and no echo: the token is a secret.
pub fn read_input(arg: Option<OsString>) -> Result<Option<String>> {
    use std::io::IsTerminal;
    match arg {
        Some(a) if a != "-" => Ok(a
            .into_string()
            .ok()
            .filter(|s| s.len() <= token::MAX_INPUT_LEN)),
        _ if std::io::stdin().is_terminal() => prompt_token(),
        _ => read_stdin_line(token::MAX_INPUT_LEN),
    }
}

/// Ask for the token at the terminal, without echo. Ctrl-C or Ctrl-D: exit 130.
pub fn prompt_token() -> Result<Option<String>> {
    let guard = ui::InterruptGuard::install()?;
    let typed = ui::read_hidden(&guard, "Token or link: ")?;
    drop(guard);
    Ok(Some(typed).filter(|s| s.len() <= token::MAX_INPUT_LEN))
}

/// One line of stdin, without its line ending, reading at most `max` bytes (plus one to tell
/// "too long"): a 10 MB line costs no more memory than a short one. `None` for a line that is
/// too long or not UTF-8.
pub fn read_stdin_line(max: usize) -> Result<Option<String>> {
    read_line_from(&mut std::io::stdin().lock(), max)
}

/// [`read_stdin_line`] from a reader that is already open (`reset` holds the stdin lock, and
/// locking stdin twice on one thread deadlocks).
pub fn read_line_from(reader: &mut dyn BufRead, max: usize) -> Result<Option<String>> {
    let mut buf = Vec::with_capacity(128);
    reader.take(max as u64 + 1).read_until(b'\n', &mut buf)?;
    if buf.last() == Some(&b'\n') {
        buf.pop();
        if buf.last() == Some(&b'\r') {
            buf.pop();
        }
    } else if buf.len() > max {
        return Ok(None);
    }
    Ok(String::from_utf8(buf).ok())
}

/// Parse token input. A malformed token never touches the database.
pub fn parse(input: Option<&str>) -> Result<Token, Malformed> {
    match input {
        Some(s) => Token::parse_input(s),
        None => Err(Malformed::TooLong),
    }
}

/// One human line about a token: its status, whose it is, and what to do.
pub fn describe(c: &Checked, now: i64) -> String {
    let status = c.status.as_str();
    let Some(r) = &c.record else {
        return match c.status {
            Status::Unknown => "unknown: this token is not in the database (it may have been purged, mistyped in a way the checksum cannot see, or belong to another installation); ask for a new reset".into(),
            _ => format!(
                "malformed: this is not a pwreset token ({}); check it was copied whole, or ask for a new reset",
                c.malformed.map_or_else(|| "unreadable".to_string(), |m| m.to_string())
            ),
        };
    };
    let who = match &r.email {
        Some(e) => format!(
            "{} (user {})",
            ui::escape(e),
            ui::escape(&r.user_id.to_string())
        ),
        None => format!(
            "user {} (no longer in the users table)",
            ui::escape(&r.user_id.to_string())
        ),
    };
    let at = |t: i64| ui::rfc3339(t);
    match c.status {
        Status::Valid => format!(
            "valid: token of {who}, expires in {}, at {}",
            ui::rough_span(r.expires_at() - now),
            at(r.expires_at())
        ),
        Status::Expired => format!(
            "expired: token of {who} expired {} ago, at {}; ask for a new reset",
            ui::rough_span(now - r.expires_at()),
            at(r.expires_at())
        ),
        Status::Used => format!(
            "used: token of {who} was used to set a password at {}; ask for a new reset if needed",
            r.used_at().map_or_else(|| "?".into(), at)
        ),
        Status::Revoked => {
            let why = if r.email.is_none() {
                "its user was deleted".to_string()
            } else if let (Some(t), Some(reason)) = (r.revoked_at(), &r.revoked_reason) {
                format!("{}, at {}", ui::escape(&reason.describe()), at(t))
            } else {
                "the account's email or password changed after it was issued".to_string()
            };
            format!("revoked: token of {who} was revoked ({why}); ask for a new reset")
        }
        _ => status.to_string(),
    }
}

/// The contract's JSON object for a checked token.
pub fn json(c: &Checked) -> serde_json::Value {
    match (&c.record, c.status) {
        (Some(r), s) if s != Status::Unknown && s != Status::Malformed => serde_json::json!({
            "status": s.as_str(),
            "user_id": r.user_id,
            "email": r.email,
            "created_at": ui::rfc3339(r.created_at),
            "expires_at": ui::rfc3339(r.expires_at()),
            "used_at": r.used_at().map(ui::rfc3339),
        }),
        _ => serde_json::json!({ "status": c.status.as_str() }),
    }
}

pub fn run(ctx: &Ctx, args: VerifyArgs) -> Result<Exit> {
    let input = read_input(args.token)?;
    let now = ui::now();
    let checked = match parse(input.as_deref()) {
        Err(m) => Checked::malformed(m),
        Ok(token) => {
            let config = ctx.config()?;
            let mut store = crate::store::open(&config, Access::Read)?;
            let mut dir = crate::directory::Directory::open(&config)?;
            crate::reset::check(&mut dir, store.as_mut(), token, now)?
        }
    };
    let line = if args.json {
        ui::json(&json(&checked))
    } else {
        describe(&checked, now)
    };
    // The exit status is the answer: a reader that went away (`verify ... | head -c0`) must
    // not turn "malformed" into 0.
    if let Err(e) = super::out(&line)
        && !crate::error::is_broken_pipe(&e)
    {
        return Err(e);
    }
    Ok(if checked.status == Status::Valid {
        Exit::Ok
    } else {
        Exit::NotUsable
    })
}
