//! `pwreset reset`: the interactive prompt, the policy, argon2id, and the one transaction that
//! changes the password and spends the token.

use crate::Ctx;
use crate::cli::ResetArgs;
use crate::cmd::verify;
use crate::config::Config;
use crate::error::{Exit, fail, render};
use crate::password::{Refusal, Secret};
use crate::reset::{self, Accepted, Checked, Outcome, Service};
use crate::store::{Access, AuditOutcome, User};
use crate::token::Status;
use crate::ui;
use anyhow::Result;
use std::io::IsTerminal;

/// Tries at the prompt before giving up (the token stays usable).
const TRIES: usize = 3;

pub fn run(ctx: &Ctx, args: ResetArgs) -> Result<Exit> {
    run_with(ctx, args, &mut std::io::stdin().lock())
}

/// `reset`, with `--password-stdin` reading from `stdin` (the demo passes its own reader, so it
/// goes through the very same path).
pub fn run_with(ctx: &Ctx, args: ResetArgs, stdin: &mut dyn std::io::BufRead) -> Result<Exit> {
    let token_from_stdin = args.token.as_ref().is_none_or(|t| t == "-");
    if args.password_stdin && token_from_stdin {
        return Err(fail(
            Exit::Usage,
            "--password-stdin reads the password from stdin, so give the token (or link) as an argument",
        ));
    }
    // The token line comes from `stdin`, which holds the stdin lock: verify::read_input would
    // lock it again and hang.
    let input = if token_from_stdin && std::io::stdin().is_terminal() {
        verify::prompt_token()?
    } else if token_from_stdin {
        verify::read_line_from(stdin, crate::token::MAX_INPUT_LEN)?
    } else {
        verify::read_input(args.token)?
    };
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
    let checked = reset::check(&mut dir, store.as_mut(), token, now)?;
    let (Some(record), Some(token)) = (&checked.record, &checked.token) else {
        eprintln!("{}", verify::describe(&checked, now));
        return Ok(Exit::NotUsable);
    };
    if checked.status != Status::Valid {
        eprintln!("{}", verify::describe(&checked, now));
        return Ok(Exit::NotUsable);
    }
    let mut service = Service::in_directory(store.as_mut(), dir, &config, ctx.actor())?;
    let user = service.user_of(record)?;

    // At the terminal a directory's refusal (its own policy, known only when it is asked)
    // takes one of the tries, like a refusal by pwreset's policy, and the prompt comes again.
    let mut tries: usize = 0;
    let when = loop {
        let accepted = if args.password_stdin {
            match from_stdin(&config, &service, &user, stdin) {
                Ok(a) => a,
                Err(e) => {
                    let _ = service.record_failure(&user, AuditOutcome::Refused, &render(&e));
                    return Err(e);
                }
            }
        } else {
            match prompt(ctx, &config, &service, &user, &mut tries)? {
                Some(a) => a,
                None => {
                    service.record_failure(
                        &user,
                        AuditOutcome::Refused,
                        "password refused 3 times at the prompt",
                    )?;
                    return Err(fail(
                        Exit::DataErr,
                        format!(
                            "no acceptable password after {TRIES} tries; nothing was changed and the link still works: run the same command again"
                        ),
                    ));
                }
            }
        };

        if let Some(note) = &accepted.note {
            ctx.debug(note);
        }
        match service.set_password(token, &user, accepted)? {
            Outcome::Changed { at } => break at,
            Outcome::NotUsable(status) => {
                let record = service.lookup_token(token)?;
                let again = Checked {
                    status,
                    record,
                    token: None,
                    malformed: None,
                };
                eprintln!("{}", verify::describe(&again, ui::now()));
                return Ok(Exit::NotUsable);
            }
            Outcome::Busy(why) => {
                return Err(fail(
                    Exit::TempFail,
                    format!("{why}; nothing was changed and the link still works"),
                ));
            }
            Outcome::Refused(r @ Refusal::Directory(_))
                if !args.password_stdin && tries < TRIES =>
            {
                eprintln!("Password refused: {r}.{}", tries_left(TRIES - tries));
            }
            Outcome::Refused(r @ Refusal::Directory(_)) => {
                return Err(fail(
                    Exit::DataErr,
                    format!("password refused: {r}; nothing was changed and the link still works"),
                ));
            }
            Outcome::Refused(r) => {
                return Err(fail(Exit::DataErr, format!("password refused: {r}")));
            }
        }
    };
    super::out(&format!(
        "password changed for {} at {}; the link is used up and the user's other open links are revoked",
        ui::escape(&user.email),
        ui::rfc3339(when)
    ))?;

    if let Err(e) = reset::send_notice(&config, &user, when) {
        eprintln!(
            "warning: the password was changed, but the \"your password was changed\" notice was not sent: {}",
            render(&e)
        );
    }
    Ok(Exit::Ok)
}

/// One line from stdin: the password. Only one trailing newline is stripped, so passwords
/// that end in spaces or `\r` survive as typed.
fn from_stdin(
    config: &Config,
    service: &Service<'_>,
    user: &User,
    stdin: &mut dyn std::io::BufRead,
) -> Result<Accepted> {
    use std::io::{BufRead, Read};
    let max = config.password.max_length * 4 + 1;
    let mut buf = zeroize::Zeroizing::new(Vec::with_capacity(128));
    stdin.take(max as u64 + 1).read_until(b'\n', &mut buf)?;
    if buf.last() == Some(&b'\n') {
        buf.pop();
    } else if buf.len() > max {
        return Err(fail(
            Exit::DataErr,
            format!(
                "password refused: {}",
                Refusal::TooLong {
                    max: config.password.max_length
                }
            ),
        ));
    }
    if buf.is_empty() {
        return Err(fail(
            Exit::DataErr,
            "no password on stdin: --password-stdin reads one line",
        ));
    }
    let text = std::str::from_utf8(&buf)
        .map_err(|_| fail(Exit::DataErr, "the password on stdin is not UTF-8 text"))?;
    service
        .accept(user, text)
        .map_err(|r| fail(Exit::DataErr, format!("password refused: {r}")))
}

/// Ask twice on the terminal, up to three times. `None` after three refusals.
/// " (2 tries left)", or nothing when none are.
fn tries_left(left: usize) -> String {
    match left {
        0 => String::new(),
        1 => " (1 try left)".into(),
        n => format!(" ({n} tries left)"),
    }
}

/// Ask at the terminal until a password passes pwreset's policy; `tries` counts the tries
/// across calls (a directory's refusal sends the user back here).
fn prompt(
    ctx: &Ctx,
    config: &Config,
    service: &Service<'_>,
    user: &User,
    tries: &mut usize,
) -> Result<Option<Accepted>> {
    if !std::io::stdin().is_terminal() {
        return Err(fail(
            Exit::Usage,
            "there is no terminal to ask for the new password on (stdin is not a terminal); pipe it in with --password-stdin instead",
        ));
    }
    let guard = ui::InterruptGuard::install()?;
    let p = &config.password;
    if *tries == 0 {
        ctx.note(format!(
            "Setting a new password for {}: at least {} characters; a few unrelated words work well.",
            ui::escape(&user.email),
            p.min_length
        ));
    }
    while *tries < TRIES {
        *tries += 1;
        let first = Secret::new(ui::read_hidden(&guard, "New password: ")?);
        let second = Secret::new(ui::read_hidden(&guard, "Confirm new password: ")?);
        let again = tries_left(TRIES - *tries);
        if first.expose() != second.expose() {
            eprintln!("The two passwords do not match; type the same password twice.{again}");
            continue;
        }
        match service.accept(user, first.expose()) {
            Ok(accepted) => {
                drop(guard);
                return Ok(Some(accepted));
            }
            Err(r) => eprintln!("Password refused: {r}.{again}"),
        }
    }
    drop(guard);
    Ok(None)
}
