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
pub mod directory;
pub mod docs;
pub mod email;
pub mod error;
pub mod lookup;
pub mod mail;
pub mod password;
pub mod request;
pub mod reset;
pub mod signals;
pub mod store;
pub mod token;
pub mod trust;
pub mod ui;
pub mod web;

use anyhow::Result;
use cli::{Cli, Command};
use error::Exit;

/// What every command gets: where the configuration comes from, how chatty to be, and who is
/// acting. Built from the command line by [`run`], or directly by a program that drives the
/// library without one.
pub struct Ctx {
    pub overrides: config::Overrides,
    pub verbosity: ui::Verbosity,
    /// Who is acting, for the audit trail; looked up on first use (verify never needs it).
    actor: std::sync::OnceLock<String>,
}

impl Ctx {
    pub fn new(overrides: config::Overrides, verbosity: ui::Verbosity) -> Ctx {
        Ctx {
            overrides,
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
        config::Config::load(&self.overrides)
    }

    /// A diagnostic line on stderr, unless -q.
    pub fn note(&self, msg: impl AsRef<str>) {
        if self.verbosity >= ui::Verbosity::Normal {
            eprintln!("{}", ui::escape(msg.as_ref()));
        }
    }

    /// A diagnostic line on stderr with -v only.
    pub fn debug(&self, msg: impl AsRef<str>) {
        if self.verbosity >= ui::Verbosity::Verbose {
            eprintln!("{}", ui::escape(msg.as_ref()));
        }
    }
}

/// The login name of the real user, from the system's user database (getpwuid_r, so users from
/// LDAP or SSSD resolve too; not $USER, which anyone can set), and the login behind sudo when
/// there is one. `SUDO_USER` is believed only when the real uid is root: sudo sets it, and any
/// other user could set it to anything.
fn actor() -> String {
    let uid = nix::unistd::getuid();
    let user = nix::unistd::User::from_uid(uid)
        .ok()
        .flatten()
        .map(|u| u.name)
        .unwrap_or_else(|| format!("uid {uid}"));
    let sudo = uid
        .is_root()
        .then(|| std::env::var("SUDO_USER").ok())
        .flatten()
        .filter(|v| !v.is_empty());
    let actor = match sudo {
        Some(sudo) if sudo != user => format!("{sudo} (as {user})"),
        _ => user,
    };
    ui::escape(&actor.chars().take(100).collect::<String>())
}

/// Run a parsed command line. Returns the exit status for commands that report one (verify,
/// request); errors carry theirs.
pub fn run(cli: Cli) -> Result<Exit> {
    let g = cli.global;
    let verbosity = if g.quiet {
        ui::Verbosity::Quiet
    } else if g.verbose {
        ui::Verbosity::Verbose
    } else {
        ui::Verbosity::Normal
    };
    let ctx = Ctx::new(
        config::Overrides {
            config: g.config,
            database: g.db,
        },
        verbosity,
    );
    match cli.command {
        Command::Init => cmd::init::run(&ctx),
        Command::User(c) => cmd::user::run(&ctx, c),
        Command::Request(a) => cmd::request::run(&ctx, a),
        Command::Verify(a) => cmd::verify::run(&ctx, a),
        Command::Reset(a) => cmd::reset::run(&ctx, a),
        Command::PurgeExpired(a) => cmd::purge::run(&ctx, a),
        Command::Audit(a) => cmd::audit::run(&ctx, a),
        Command::Revoke(a) => cmd::revoke::run(&ctx, a),
        Command::Doctor(a) => cmd::doctor::run(&ctx, a),
        Command::Config(c) => cmd::config::run(&ctx, c),
        Command::Completions { shell } => cmd::completions::run(shell),
        Command::Serve(a) => cmd::serve::run(&ctx, a),
        Command::Demo => cmd::demo::run(&ctx),
    }
}
