//! pwreset: password resets by emailed token, for sysadmins.
//!
//! The binary is a thin wrapper over [`run`]. Each subcommand lives in its own module under
//! [`cmd`]; SQL lives only in [`store`]; [`token`] is pure.

/// `eprintln!` for the whole crate, without its panic: std's panics (exit 101) when stderr is a
/// closed pipe (`pwreset ... 2>&1 | head -c0`). A diagnostic that cannot be written is dropped;
/// the exit status still tells the result. Defined before the modules so it shadows std's in
/// all of them.
macro_rules! eprintln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

pub mod cli;
pub mod cmd;
pub mod config;
pub mod docs;
pub mod email;
pub mod error;
pub mod mail;
pub mod password;
pub mod store;
pub mod token;
pub mod ui;

use anyhow::Result;
use cli::{Cli, Command};
use error::Exit;

/// What every command gets: the global options, resolved.
pub struct Ctx {
    pub global: cli::Global,
    pub verbosity: ui::Verbosity,
    /// Who is acting, for the audit trail; looked up on first use (verify never needs it).
    actor: std::sync::OnceLock<String>,
}

impl Ctx {
    pub fn new(global: cli::Global) -> Ctx {
        let verbosity = if global.quiet {
            ui::Verbosity::Quiet
        } else if global.verbose {
            ui::Verbosity::Verbose
        } else {
            ui::Verbosity::Normal
        };
        Ctx {
            global,
            verbosity,
            actor: std::sync::OnceLock::new(),
        }
    }

    /// Who is acting, for the audit trail: the login behind sudo where there is one.
    pub fn actor(&self) -> &str {
        self.actor.get_or_init(actor)
    }

    /// Load the configuration (flags > environment > file > defaults).
    pub fn config(&self) -> Result<config::Config> {
        config::Config::load(&config::Overrides {
            config: self.global.config.clone(),
            database: self.global.db.clone(),
        })
    }

    /// A diagnostic line on stderr, unless -q.
    pub fn note(&self, msg: impl AsRef<str>) {
        if self.verbosity >= ui::Verbosity::Normal {
            eprintln!("{}", msg.as_ref());
        }
    }

    /// A diagnostic line on stderr with -v only.
    pub fn debug(&self, msg: impl AsRef<str>) {
        if self.verbosity >= ui::Verbosity::Verbose {
            eprintln!("{}", msg.as_ref());
        }
    }
}

/// The login name of the real user, from the password database (not from $USER, which anyone
/// can set), and the login behind sudo when there is one.
fn actor() -> String {
    let uid = rustix::process::getuid().as_raw();
    let user = login_name(uid).unwrap_or_else(|| format!("uid {uid}"));
    let actor = match std::env::var("SUDO_USER").ok().filter(|v| !v.is_empty()) {
        Some(sudo) if sudo != user => format!("{sudo} (as {user})"),
        _ => user,
    };
    ui::escape(&actor.chars().take(100).collect::<String>())
}

fn login_name(uid: u32) -> Option<String> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        let _password = fields.next()?;
        (fields.next()?.parse::<u32>().ok()? == uid).then(|| name.to_owned())
    })
}

/// Run a parsed command line. Returns the exit status for commands that report one (verify,
/// request); errors carry theirs.
pub fn run(cli: Cli) -> Result<Exit> {
    let ctx = Ctx::new(cli.global);
    match cli.command {
        Command::Init => cmd::init::run(&ctx),
        Command::User(c) => cmd::user::run(&ctx, c),
        Command::Request(a) => cmd::request::run(&ctx, a),
        Command::Verify(a) => cmd::verify::run(&ctx, a),
        Command::Reset(a) => cmd::reset::run(&ctx, a),
        Command::PurgeExpired(a) => cmd::purge::run(&ctx, a),
        Command::Audit(a) => cmd::audit::run(&ctx, a),
        Command::Completions { shell } => cmd::completions::run(shell),
        Command::Demo => cmd::demo::run(&ctx),
    }
}
