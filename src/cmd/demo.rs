//! `pwreset demo`: the whole flow on a throwaway database, through the real commands.

use crate::cli::{PurgeArgs, RequestArgs, ResetArgs, UserCommand, VerifyArgs};
use crate::error::Exit;
use crate::{Ctx, ui};
use anyhow::{Context, Result, bail};
use base64::Engine;
use ring::rand::SecureRandom;
use std::ffi::OsString;
use std::time::Duration;

const EMAIL: &str = "demo.user@example.com";

pub fn run(outer: &Ctx) -> Result<Exit> {
    refuse_settings(outer)?;
    let dir = tempfile::Builder::new()
        .prefix("pwreset-demo-")
        .tempdir()
        .context("creating a temporary folder for the demo")?;
    let db = dir.path().join("pwreset.db");
    let outbox = dir.path().join("outbox");
    let config_path = dir.path().join("config.toml");
    let config = format!(
        "database = {db:?}\n\
         base_url = \"https://accounts.example.com/reset_password\"\n\
         token_ttl = \"1h\"\n\
         [mail]\n\
         transport = \"file\"\n\
         from = \"Accounts <no-reply@example.com>\"\n\
         service_name = \"Example Accounts\"\n\
         support = \"help@example.com\"\n\
         [mail.file]\n\
         dir = {outbox:?}\n"
    );
    std::fs::write(&config_path, &config).context("writing the demo config")?;
    // -q on the demo would hide the steps it exists to show.
    let ctx = Ctx::new(
        crate::config::Overrides {
            config: Some(config_path.clone()),
            database: Some(db.clone()),
        },
        outer.verbosity.max(ui::Verbosity::Normal),
    );

    step(
        1,
        &format!(
            "a throwaway database and outbox in {}",
            dir.path().display()
        ),
    )?;
    say(&format!("config ({}):", config_path.display()))?;
    for line in config.lines() {
        say(&format!("    {line}"))?;
    }
    expect(super::init::run(&ctx)?, Exit::Ok, "init")?;
    expect(
        super::user::run(
            &ctx,
            UserCommand::Add {
                email: EMAIL.into(),
                name: Some("Demo User".into()),
            },
        )?,
        Exit::Ok,
        "user add",
    )?;

    step(
        2,
        &format!("request: a reset for {EMAIL}; only the token's hash is stored"),
    )?;
    expect(
        super::request::run(
            &ctx,
            RequestArgs {
                emails: vec![EMAIL.into()],
                from_file: None,
                all: false,
                ttl: None,
                print_link: false,
                no_email: false,
                force: false,
                dry_run: false,
                yes: false,
                locale: None,
                json: false,
            },
        )?,
        Exit::Ok,
        "request",
    )?;

    step(
        3,
        "the email as its reader sees it (headers and text part, decoded)",
    )?;
    let eml = newest_message(&outbox)?;
    let readable = crate::mail::readable(&eml);
    for line in readable.lines() {
        say(&format!("    {line}"))?;
    }
    let link = find_link(&readable)?;
    let token = link.rsplit("token=").next().unwrap_or_default().to_owned();

    step(4, "the token and the link the user receives")?;
    say(&format!("token: {token}"))?;
    say(&format!("link:  {link}"))?;

    step(
        5,
        "verify: support staff check the link (nothing is consumed)",
    )?;
    expect(
        super::verify::run(
            &ctx,
            VerifyArgs {
                token: Some(OsString::from(&link)),
                json: false,
            },
        )?,
        Exit::Ok,
        "verify",
    )?;

    step(
        6,
        "reset: a generated password, as `reset --password-stdin` reads it",
    )?;
    let password = generate_password()?;
    say("new password: (24 random characters, not shown)")?;
    let mut input = std::io::Cursor::new(format!("{}\n", password.as_str()).into_bytes());
    expect(
        super::reset::run_with(
            &ctx,
            ResetArgs {
                token: Some(OsString::from(&token)),
                password_stdin: true,
            },
            &mut input,
        )?,
        Exit::Ok,
        "reset",
    )?;

    step(7, "the used token is refused")?;
    let mut input = std::io::Cursor::new(format!("{}\n", password.as_str()).into_bytes());
    expect(
        super::reset::run_with(
            &ctx,
            ResetArgs {
                token: Some(OsString::from(&token)),
                password_stdin: true,
            },
            &mut input,
        )?,
        Exit::NotUsable,
        "reset with a used token",
    )?;
    say("(reset refused it with exit status 1; verify says why:)")?;
    expect(
        super::verify::run(
            &ctx,
            VerifyArgs {
                token: Some(OsString::from(&token)),
                json: false,
            },
        )?,
        Exit::NotUsable,
        "verify of the used token",
    )?;

    step(
        8,
        "purge-expired: dead tokens are deleted, as cron would do it",
    )?;
    expect(
        super::purge::run(
            &ctx,
            PurgeArgs {
                older_than: Duration::ZERO,
                batch_size: None,
                dry_run: false,
                json: false,
            },
        )?,
        Exit::Ok,
        "purge-expired",
    )?;

    step(
        9,
        "the outbox: the reset link and the \"your password was changed\" notice",
    )?;
    let mut names: Vec<String> = std::fs::read_dir(&outbox)?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    for n in names {
        say(&format!("    {n}"))?;
    }
    say("")?;
    say(
        "Demo done; the temporary folder is removed. Try it for real: pwreset init && pwreset --help",
    )?;
    Ok(Exit::Ok)
}

/// `--config` and `--db` would suggest the demo touches that config or database; it never does.
/// The same settings from PWRESET_CONFIG / PWRESET_DB are likely just exported in the shell, so
/// they are set aside with a note instead.
fn refuse_settings(ctx: &Ctx) -> Result<()> {
    for (value, flag, var) in [
        (&ctx.overrides.config, "--config", "PWRESET_CONFIG"),
        (&ctx.overrides.database, "--db", "PWRESET_DB"),
    ] {
        let Some(value) = value else { continue };
        if std::env::var_os(var).is_some_and(|v| v == value.as_os_str()) {
            ctx.note(format!(
                "demo: ignoring {var}: the demo uses its own throwaway config and database"
            ));
        } else {
            return Err(crate::error::fail(
                Exit::Usage,
                format!(
                    "demo does not take {flag}: it runs on a throwaway config and database in a temporary folder and never touches yours; run it without {flag}"
                ),
            ));
        }
    }
    Ok(())
}

fn step(n: u32, what: &str) -> Result<()> {
    // Two lines, not one with a newline in it: every printed line is escaped whole.
    super::out("")?;
    super::out(&format!("== {n}. {what}"))
}

fn say(line: &str) -> Result<()> {
    super::out(line)
}

fn expect(got: Exit, want: Exit, what: &str) -> Result<()> {
    if got != want {
        bail!(
            "demo step `{what}` ended with exit status {} instead of {}",
            got.code(),
            want.code()
        );
    }
    Ok(())
}

fn newest_message(outbox: &std::path::Path) -> Result<Vec<u8>> {
    let mut newest = None;
    for entry in
        std::fs::read_dir(outbox).with_context(|| format!("reading {}", outbox.display()))?
    {
        let entry = entry?;
        let modified = entry.metadata()?.modified()?;
        if newest.as_ref().is_none_or(|(m, _)| modified > *m) {
            newest = Some((modified, entry.path()));
        }
    }
    let (_, path) = newest.context("the outbox is empty: the request sent no mail")?;
    Ok(std::fs::read(&path)?)
}

fn find_link(readable: &str) -> Result<String> {
    readable
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("https://") && l.contains("token="))
        .map(str::to_owned)
        .context("no reset link in the message")
}

fn generate_password() -> Result<zeroize::Zeroizing<String>> {
    let mut bytes = zeroize::Zeroizing::new([0u8; 18]);
    ring::rand::SystemRandom::new()
        .fill(bytes.as_mut())
        .map_err(|_| anyhow::anyhow!("the system random number generator failed"))?;
    Ok(zeroize::Zeroizing::new(
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes.as_ref()),
    ))
}
