//! Every clap definition, and nothing else: the completion and man page generators use this
//! module alone.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

const EXAMPLES: &str = "\
Examples:
  pwreset init                                  create the database
  pwreset user add alice@example.com            add a user (no password yet)
  pwreset request alice@example.com             email Alice a reset link
  pwreset verify pwr_...                        check a token a user reads out
  pwreset reset 'https://.../reset?token=...'   set a new password at the prompt
  pwreset purge-expired -q                      from cron: delete dead tokens
  pwreset demo                                  the whole flow on a throwaway database";

/// Password resets by emailed token, for sysadmins.
///
/// A reset is requested for a user; a random token is made and only its hash is stored; a link
/// carrying the token is emailed to the address on record; the token is verified and the new
/// password is typed at a prompt, hashed with argon2id and stored; expired tokens are purged.
#[derive(Debug, Parser)]
#[command(name = "pwreset", version, after_help = EXAMPLES, max_term_width = 100)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,

    #[command(subcommand)]
    pub command: Command,
}

/// Options every subcommand accepts, before or after its name.
#[derive(Debug, Args, Clone)]
pub struct Global {
    /// TOML config file [default: $XDG_CONFIG_HOME/pwreset/config.toml, then
    /// /etc/pwreset/config.toml]
    #[arg(
        short,
        long,
        global = true,
        env = "PWRESET_CONFIG",
        value_name = "PATH"
    )]
    pub config: Option<PathBuf>,

    /// The database: a SQLite file path, or a postgres://, postgresql:// or mysql:// URL
    /// (the password goes in database_password_file or PWRESET_DB_PASSWORD, never in the URL);
    /// overrides `database` in the config [default: $XDG_DATA_HOME/pwreset/pwreset.db]
    #[arg(long, global = true, env = "PWRESET_DB", value_name = "PATH|URL")]
    pub db: Option<PathBuf>,

    /// Print less on stderr (nothing but errors)
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,

    /// Print more on stderr
    #[arg(short, long, global = true)]
    pub verbose: bool,
}

// `defer`: a subcommand's arguments are built only when it is the one that runs (or for help and
// completions), not on every start: building all of them cost `verify` about 20 of its 330 page
// faults.
#[derive(Debug, Subcommand)]
#[command(defer = true)]
pub enum Command {
    /// Create the database and the tool's tables, or migrate them; check the users table
    ///
    /// Creates the database file (mode 0600) and its folder when missing, creates or migrates
    /// pwreset's own tables (pwreset_tokens, pwreset_audit), creates the default `users` table
    /// when it does not exist, and checks that the configured users table and columns exist.
    /// Safe to run again.
    #[command(
        after_help = "Examples:\n  pwreset init\n  pwreset --db /var/lib/pwreset/pwreset.db init"
    )]
    Init,

    /// Add or list users (the tool's own users table)
    #[command(
        subcommand,
        after_help = "Examples:\n  pwreset user add alice@example.com --name 'Alice Liddell'\n  pwreset user list --json"
    )]
    User(UserCommand),

    /// Email a password reset link to one or more users
    ///
    /// For each user: make a token, store only its hash, and email the reset link to the
    /// address stored in the database (never the address as typed). Once the relay has taken
    /// the message, the new link revokes the user's older open ones. Exit status is the worst
    /// per-user result.
    ///
    /// Ctrl-C, SIGTERM or SIGHUP stop a run in good order: the messages in flight finish, the
    /// links not sent are withdrawn, a summary says what was done, and the exit status is 128 +
    /// the signal (130, 143, 129). The same command run again finishes the job, skipping the
    /// users who hold a link from the stopped run; after kill -9 it first withdraws the dead
    /// run's unsent links. A second Ctrl-C exits at once.
    #[command(after_help = "Examples:
  pwreset request alice@example.com
  pwreset request --print-link --ttl 30m alice@example.com bob@example.com
  pwreset request --no-email alice@example.com      # just print the link
  pwreset request --from-file users.txt --json
  pwreset request --all                             # every user, e.g. after a breach")]
    Request(RequestArgs),

    /// Say whether a token is usable and whose it is, without consuming it
    ///
    /// Accepts the raw token or the whole reset link; with no argument or `-`, reads one line
    /// from stdin. Exit status 0 only when the token is valid, 1 otherwise.
    #[command(after_help = "Examples:
  pwreset verify pwr_9bQ...
  pwreset verify 'https://accounts.example.com/reset_password?token=pwr_9bQ...'
  echo pwr_9bQ... | pwreset verify --json")]
    Verify(VerifyArgs),

    /// Set a new password with a token, at an interactive prompt
    ///
    /// Checks the token first (exit 1 before any prompt when it is not usable), then asks for
    /// the new password twice with no echo. On a mismatch or a policy failure it says why and
    /// asks again, 3 tries. The password is normalised to NFKC (so the same typed text matches
    /// whatever keyboard made it; set [password] normalize = "none" when the application's own
    /// login does not normalise), hashed in [users] password_format (on an application's table,
    /// by default the format its password column holds; argon2id on pwreset's own) and
    /// stored; the token is consumed, the user's other open tokens revoked and [users]
    /// after_reset run in one transaction, and a "your password was changed" notice is sent.
    #[command(after_help = "Examples:
  pwreset reset pwr_9bQ...
  pwreset reset 'https://accounts.example.com/reset_password?token=pwr_9bQ...'
  printf '%s\\n' \"$NEW_PASSWORD\" | pwreset reset --password-stdin pwr_9bQ...")]
    Reset(ResetArgs),

    /// Delete tokens that can no longer be used (expired, used or revoked)
    ///
    /// Works in short batches so other pwreset commands keep working while it runs. Prints one
    /// summary line; nothing with -q. Meant for cron.
    #[command(after_help = "Examples:
  pwreset purge-expired
  pwreset purge-expired --older-than 7d --dry-run
  # crontab: every hour, quietly
  17 * * * *  pwreset purge-expired -q")]
    PurgeExpired(PurgeArgs),

    /// Show the audit trail, newest first
    ///
    /// Time, actor (the login behind sudo where there is one), action (request, reset,
    /// reset_failed, purge, user_add), user, outcome. Never tokens, links or passwords.
    #[command(after_help = "Examples:
  pwreset audit
  pwreset audit --user alice@example.com --since 7d
  pwreset audit --json --limit 1000")]
    Audit(AuditArgs),

    /// Revoke one token, or every open token of a user
    ///
    /// For a user who reports a reset mail they did not ask for: the link stops working at
    /// once. Audited. Exit 0 when something was revoked, 1 when the token was not usable
    /// anyway (or the user had no open link), 67 for an unknown user.
    #[command(after_help = "Examples:
  pwreset revoke pwr_9bQ... --reason 'user did not ask for it'
  pwreset revoke --user alice@example.com --reason 'ticket 4711'
  echo 'https://accounts.example.com/reset_password?token=pwr_9bQ...' | pwreset revoke -")]
    Revoke(RevokeArgs),

    /// Check the config, the database, the users mapping, mail delivery and the hash cost
    ///
    /// One `ok`, `warn` or `fail` line per check, with what was found and how to fix it.
    /// Sends no mail unless --send-test is given. Exit 0 when nothing failed, else the exit
    /// code of the worst failure.
    #[command(after_help = "Examples:
  pwreset doctor
  pwreset doctor --send-test me@example.com
  pwreset doctor --json | jq '.[] | select(.status != \"ok\")'")]
    Doctor(DoctorArgs),

    /// Print an example config, or the settings in effect and where each came from
    #[command(
        subcommand,
        after_help = "Examples:\n  pwreset config example > /etc/pwreset/config.toml\n  pwreset config show"
    )]
    Config(ConfigCommand),

    /// Print the completion script for a shell
    #[command(after_help = "Examples:
  pwreset completions bash > /etc/bash_completion.d/pwreset
  pwreset completions zsh > \"${fpath[1]}/_pwreset\"
  pwreset completions fish > ~/.config/fish/completions/pwreset.fish")]
    Completions {
        /// The shell to print the script for
        #[arg(value_enum)]
        shell: Shell,
    },

    /// Serve the page the emailed link opens, and the forgot-password page
    ///
    /// Answers under the path of base_url: GET shows the form (it never changes anything, so
    /// mail scanners that open links first spend nothing), POST sets the password through the
    /// same policy, hashing, audit trail and transaction as `reset`. Also serves the
    /// forgot-password page ([serve] forgot_path), GET /healthz (200, or 503 while the
    /// database does not answer) and GET /metrics (Prometheus text format), on the same
    /// listener: let the proxy forward only the pages. Listens on [serve] listen, or on the
    /// socket systemd passes (LISTEN_FDS). Logs one line per request on stderr. SIGTERM
    /// finishes the requests in flight, gives the forgot page's queued mail up to [serve]
    /// stop_timeout to go out, withdraws the links it could not send, and exits 0.
    #[command(after_help = "Examples:
  pwreset serve
  pwreset serve --listen 127.0.0.1:9090
  systemctl enable --now pwreset-serve.socket      # socket activation")]
    Serve(ServeArgs),

    /// Run the whole flow on a throwaway database, printing each step
    ///
    /// Request, token, link, the email as written, verify, reset, the used token refused,
    /// purge. Needs no config and no network; everything lives in a temporary folder that is
    /// removed afterwards.
    #[command(after_help = "Examples:\n  pwreset demo")]
    Demo,
}

#[derive(Debug, Subcommand)]
#[command(defer = true)]
pub enum UserCommand {
    /// Add a user with no usable password (they set it through a reset link)
    #[command(
        after_help = "Examples:\n  pwreset user add alice@example.com --name 'Alice Liddell'"
    )]
    Add {
        /// The user's email address
        #[arg(value_parser = lossy_string())]
        email: String,
        /// A display name
        #[arg(long, value_parser = lossy_string())]
        name: Option<String>,
    },
    /// List users: id, email, whether a password is set, open tokens
    #[command(
        after_help = "Examples:\n  pwreset user list\n  pwreset user list --json | jq '.[] | select(.has_password | not)'"
    )]
    List {
        /// Print a JSON array instead of a table
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
#[command(defer = true)]
pub enum ConfigCommand {
    /// Print a complete config with every key, commented
    ///
    /// Every key of pwreset.conf(5), with what it does and its default; a commented-out key
    /// shows its default or an example. Set database, base_url and [mail], save it as the
    /// config file, and run `pwreset init`.
    #[command(
        after_help = "Examples:\n  pwreset config example > ~/.config/pwreset/config.toml\n  sudo sh -c 'umask 027; pwreset config example > /etc/pwreset/config.toml'"
    )]
    Example,
    /// Print every setting in effect and where it came from
    ///
    /// One line per key: `key = value  # source`, the source being a flag, the environment, a
    /// line of the config file (path:line), or the built-in default. Secrets are never shown:
    /// a password from the environment is `(set)`, a password file is shown by its path. Fails
    /// like any command (exit 78) when the config is not valid.
    #[command(
        after_help = "Examples:\n  pwreset config show\n  pwreset --db /tmp/test.db config show | grep database"
    )]
    Show,
}

#[derive(Debug, Args)]
pub struct RequestArgs {
    /// Email addresses of the users (matched regardless of case and Unicode form)
    #[arg(value_name = "EMAIL", required_unless_present_any = ["all", "from_file"], value_parser = lossy_string())]
    pub emails: Vec<String>,

    /// Read addresses from a file, one per line (`-` for stdin); blank lines and lines
    /// starting with # are skipped. Addresses given as arguments are served too
    #[arg(long, value_name = "PATH", conflicts_with = "all")]
    pub from_file: Option<PathBuf>,

    /// Every user in the users table
    #[arg(long, conflicts_with = "emails")]
    pub all: bool,

    /// How long the link stays valid, e.g. 30m, 2h [default: token_ttl from the config, 1h]
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub ttl: Option<Duration>,

    /// Also print each link on stdout
    #[arg(long)]
    pub print_link: bool,

    /// Make the link without sending any mail (implies --print-link)
    #[arg(long)]
    pub no_email: bool,

    /// Skip the per-user throttle (request_throttle)
    #[arg(long)]
    pub force: bool,

    /// Say who would get a link, and send and store nothing (the throttle is not consulted)
    #[arg(long)]
    pub dry_run: bool,

    /// Do not ask before sending links to every user (--all) or to more than 100 addresses
    /// from a file; without a terminal pwreset never asks
    #[arg(long, short = 'y')]
    pub yes: bool,

    /// Write the mail in this language for this run (en, de, fr, es, or a language folder of
    /// template_dir) [default: each user's locale_column, else English]
    #[arg(long, value_name = "LANG")]
    pub locale: Option<String>,

    /// One JSON object per user per line
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The token or the whole reset link; `-` or nothing reads one line from stdin
    #[arg(value_name = "TOKEN|URL|-", allow_hyphen_values = true, value_parser = clap::builder::OsStringValueParser::new())]
    pub token: Option<OsString>,

    /// Print one JSON object
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ResetArgs {
    /// The token or the whole reset link; `-` or nothing reads one line from stdin
    /// (not with --password-stdin)
    #[arg(value_name = "TOKEN|URL|-", allow_hyphen_values = true, value_parser = clap::builder::OsStringValueParser::new())]
    pub token: Option<OsString>,

    /// Read the new password from one line of stdin instead of prompting (for automation)
    #[arg(long)]
    pub password_stdin: bool,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address and port to listen on, e.g. 127.0.0.1:8080 or [::1]:8080, or a Unix socket,
    /// unix:/run/pwreset/serve.sock [default: [serve] listen, 127.0.0.1:8080]; ignored when
    /// systemd passes a socket
    #[arg(long, value_name = "ADDR", value_parser = parse_listen)]
    pub listen: Option<crate::config::Listen>,

    /// The log on stderr: text, or one JSON object a line [default: [serve] log_format, text]
    #[arg(long, value_name = "FORMAT")]
    pub log_format: Option<crate::config::LogFormat>,
}

#[derive(Debug, Args)]
pub struct PurgeArgs {
    /// Only tokens dead for longer than this, e.g. 7d
    #[arg(long, value_name = "DURATION", default_value = "0s", value_parser = parse_duration)]
    pub older_than: Duration,

    /// Tokens deleted per transaction [default: 5000 on SQLite and MariaDB/MySQL, where a batch
    /// holds a lock others may wait for; 50000 on PostgreSQL, where it locks only dead tokens]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub batch_size: Option<u32>,

    /// Count what would be deleted, delete nothing
    #[arg(long)]
    pub dry_run: bool,

    /// Print one JSON object
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Also send one real test message to this address
    #[arg(long, value_name = "EMAIL", value_parser = lossy_string())]
    pub send_test: Option<String>,

    /// Print a JSON array of {"check", "status", "message", "fix"}
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct RevokeArgs {
    /// The token or the whole reset link; `-` or nothing reads one line from stdin (not with
    /// --user)
    #[arg(value_name = "TOKEN|URL|-", allow_hyphen_values = true, conflicts_with = "user", value_parser = clap::builder::OsStringValueParser::new())]
    pub token: Option<OsString>,

    /// Revoke every open token of this user instead
    #[arg(long, value_name = "EMAIL", value_parser = lossy_string())]
    pub user: Option<String>,

    /// Why, for the audit trail and for `verify` (one line, at most 200 characters)
    #[arg(long, value_name = "TEXT", value_parser = lossy_string())]
    pub reason: Option<String>,
}

#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Only records about this user
    #[arg(long, value_name = "EMAIL", value_parser = lossy_string())]
    pub user: Option<String>,

    /// Only records newer than this, e.g. 24h, 7d
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub since: Option<Duration>,

    /// At most this many records
    #[arg(long, value_name = "N", default_value_t = 100)]
    pub limit: u32,

    /// Print a JSON array
    #[arg(long)]
    pub json: bool,
}

/// Shells `completions` can write for.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
    Elvish,
    Powershell,
}

/// An argument as text, invalid UTF-8 replaced by U+FFFD rather than refused by clap (exit 2):
/// an address or name that is not text is bad input data, and its check (`email::validate`,
/// `user add --name`) refuses the U+FFFD with 65.
fn lossy_string() -> impl clap::builder::TypedValueParser<Value = String> {
    use clap::builder::TypedValueParser;
    clap::builder::OsStringValueParser::new().map(|s| s.to_string_lossy().into_owned())
}

fn parse_listen(s: &str) -> Result<crate::config::Listen, String> {
    crate::config::parse_listen(s)
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s)
        .map_err(|e| format!("{e}; write a duration like 90s, 30m, 1h or \"2h 30m\""))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn global_options_go_after_the_subcommand_too() {
        let cli = Cli::try_parse_from(["pwreset", "purge-expired", "-q", "--db", "/tmp/x.db"]);
        assert!(cli.is_ok_and(|c| c.global.quiet && c.global.db.is_some()));
    }
}
