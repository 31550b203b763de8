//! The store: pwreset's state (tokens, audit trail, its own users table) and the users table it
//! is mapped onto, in domain terms. SQL lives only below this module, one folder per backend.
//!
//! The interface is a trait, [`Store`], used as `Box<dyn Store>`: a process talks to one
//! database, so the cost of dynamic dispatch is nothing next to a query, while each backend
//! stays in its own module with its own connection type, and the compiler checks that every
//! backend answers every method. A second backend (PostgreSQL, MySQL) is a new module that
//! implements the trait, plus one arm in [`open`].
//!
//! Every state change is safe on its own, whatever the engine's locking: spending a token is one
//! conditional `UPDATE` whose row count is checked, the request throttle is a conditional
//! upsert on a unique key, and `user add` relies on a unique index. Each change writes its audit
//! row in the same transaction.

pub mod mysql;
pub mod net;
pub mod postgres;
pub mod scrub;
pub mod sqlite;

use crate::config::{Config, Database};
use crate::token::{Digest, Lifecycle, Status, StoredValue};
use anyhow::Result;
use serde::Serialize;
use std::time::Duration;

/// How a command uses the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// `init`: create the database, migrate.
    Create,
    /// Commands that write: the schema must be current.
    Write,
    /// `verify`, `user list`, `audit`: no migration work, no writes.
    Read,
}

/// Open the configured database. With `[ldap]` the store keeps tokens only (no users table).
pub fn open(config: &Config, access: Access) -> Result<Box<dyn Store>> {
    match &config.database {
        Database::Sqlite(_) => Ok(Box::new(sqlite::SqliteStore::open(config, access)?)),
        Database::Server(s) if s.kind == crate::config::ServerKind::Postgres => {
            Ok(Box::new(self::postgres::PgStore::open(config, access)?))
        }
        Database::Server(s) if s.kind == crate::config::ServerKind::Mysql => {
            Ok(Box::new(self::mysql::MysqlStore::open(config, s, access)?))
        }
        Database::Server(s) => Err(crate::error::fail(
            crate::error::Exit::Config,
            format!(
                "{}: {} support is not in this build of pwreset yet; use a SQLite file for `database`",
                config.source,
                s.kind.name()
            ),
        )),
    }
}

/// A user's key in the users table: an integer, or text (a UUID or another text key, as Rails,
/// Django and Laravel applications use).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum UserId {
    Int(i64),
    Text(String),
}

impl std::fmt::Display for UserId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UserId::Int(n) => write!(f, "{n}"),
            UserId::Text(t) => f.write_str(t),
        }
    }
}

impl Serialize for UserId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            UserId::Int(n) => s.serialize_i64(*n),
            UserId::Text(t) => s.serialize_str(t),
        }
    }
}

/// A user row, as pwreset sees it through the `[users]` mapping.
#[derive(Debug, Clone)]
pub struct User {
    pub id: UserId,
    pub email: String,
    /// The stored password value, whatever its type.
    pub password: StoredValue,
    /// The name to greet them by (`[users] name_column`; `user add --name` on pwreset's table).
    pub name: Option<String>,
    /// Their language (`[users] locale_column`).
    pub locale: Option<String>,
}

impl User {
    /// Who a message goes to.
    pub fn recipient(&self) -> crate::mail::Recipient {
        crate::mail::Recipient {
            email: self.email.clone(),
            name: self.name.clone(),
            locale: self.locale.clone(),
        }
    }
}

/// One line of `user list`.
#[derive(Debug, Clone)]
pub struct UserSummary {
    pub id: UserId,
    pub email: String,
    /// The display name (`user add --name`, or the mapping's name_column), if any.
    pub name: Option<String>,
    pub has_password: bool,
    pub open_tokens: i64,
}

/// Why a token was revoked. Stored as text; the words of older versions are kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RevokeReason {
    /// A newer request for the same user.
    Superseded,
    /// The password was reset with another token.
    PasswordReset,
    /// Its email could not be delivered.
    Undelivered,
    /// It was never handed over: its run was stopped (or died) before the link was sent.
    NotSent,
    /// Its user row was gone when it was looked up.
    UserDeleted,
    /// The user's address or password changed after it was issued.
    AccountChanged,
    /// The account is locked or disabled in the directory.
    AccountLocked,
    /// By support staff with `pwreset revoke`, with their reason if they gave one.
    ByHand(Option<String>),
    /// Anything else found in the column (written by hand, or by a newer pwreset).
    Other(String),
}

impl RevokeReason {
    pub fn as_str(&self) -> String {
        match self {
            RevokeReason::Superseded => "superseded".into(),
            RevokeReason::PasswordReset => "password reset".into(),
            RevokeReason::Undelivered => "undelivered".into(),
            RevokeReason::NotSent => "not sent".into(),
            RevokeReason::UserDeleted => "user deleted".into(),
            RevokeReason::AccountChanged => "account changed".into(),
            RevokeReason::AccountLocked => "account locked".into(),
            RevokeReason::ByHand(None) => "revoked".into(),
            RevokeReason::ByHand(Some(why)) => format!("revoked: {why}"),
            RevokeReason::Other(s) => s.clone(),
        }
    }

    pub fn parse(s: &str) -> RevokeReason {
        match s {
            "superseded" => RevokeReason::Superseded,
            "password reset" => RevokeReason::PasswordReset,
            "undelivered" => RevokeReason::Undelivered,
            "not sent" => RevokeReason::NotSent,
            "user deleted" => RevokeReason::UserDeleted,
            "account changed" => RevokeReason::AccountChanged,
            "account locked" => RevokeReason::AccountLocked,
            "revoked" => RevokeReason::ByHand(None),
            other => match other.strip_prefix("revoked: ") {
                Some(why) => RevokeReason::ByHand(Some(why.to_owned())),
                None => RevokeReason::Other(other.to_owned()),
            },
        }
    }

    /// In a sentence: "revoked (…)".
    pub fn describe(&self) -> String {
        match self {
            RevokeReason::Superseded => "superseded by a newer request".into(),
            RevokeReason::PasswordReset => "the password was reset with another token".into(),
            RevokeReason::Undelivered => "the email with the link could not be delivered".into(),
            RevokeReason::NotSent => {
                "the link was never sent: the run that made it was stopped first".into()
            }
            RevokeReason::UserDeleted => "its user was deleted".into(),
            RevokeReason::AccountChanged => {
                "the account's email or password changed after it was issued".into()
            }
            RevokeReason::AccountLocked => {
                "the account is locked or disabled in the directory".into()
            }
            RevokeReason::ByHand(None) => "revoked by support".into(),
            RevokeReason::ByHand(Some(why)) => format!("revoked by support: {why}"),
            RevokeReason::Other(s) => s.clone(),
        }
    }
}

/// What the store knows about a token.
#[derive(Debug, Clone)]
pub struct TokenRecord {
    pub user_id: UserId,
    /// None when the user row is gone.
    pub email: Option<String>,
    pub created_at: i64,
    pub lifecycle: Lifecycle,
    pub revoked_reason: Option<RevokeReason>,
}

impl TokenRecord {
    /// A token read from a tokens-only store (users in a directory): no address, and the
    /// person's existence and the binding are the directory's to say, so both count as holding.
    pub fn without_user_row(
        user_id: UserId,
        created_at: i64,
        expires_at: i64,
        used_at: Option<i64>,
        revoked_at: Option<i64>,
        revoked_reason: Option<RevokeReason>,
    ) -> TokenRecord {
        TokenRecord {
            user_id,
            email: None,
            created_at,
            lifecycle: Lifecycle {
                expires_at,
                used_at,
                revoked_at,
                user_exists: true,
                binding_ok: true,
            },
            revoked_reason,
        }
    }
    pub fn status(&self, now: i64) -> Status {
        self.lifecycle.status(now)
    }
    pub fn expires_at(&self) -> i64 {
        self.lifecycle.expires_at
    }
    pub fn used_at(&self) -> Option<i64> {
        self.lifecycle.used_at
    }
    pub fn revoked_at(&self) -> Option<i64> {
        self.lifecycle.revoked_at
    }
}

/// A token to store for a user.
pub struct NewToken<'a> {
    pub user: &'a User,
    pub digest: Digest,
}

/// What a new batch of links is issued under.
#[derive(Debug, Clone, Copy)]
pub struct Issue<'a> {
    pub now: i64,
    pub ttl: Duration,
    /// The request throttle; None with `--force` (or a throttle of 0s). Without one, a user
    /// whose link another live run is making right now is left to that run
    /// ([`Issued::Busy`]), so two runs at once never mail anyone twice.
    pub throttle: Option<Duration>,
    /// The run that issues them ([`Store::begin_run`]).
    pub run_id: i64,
    /// The number of this batch in its run, from 1: printed links are handed over batch by
    /// batch, in this order.
    pub batch: i64,
    pub actor: &'a str,
}

/// A link that was handed over: the user now holds it.
pub struct Handed<'a> {
    pub user: &'a User,
    pub token_id: i64,
    /// The user had other open links when this one was made (from [`Issued::Created`]): they
    /// stop working now.
    pub had_open: bool,
}

/// A link that was not handed over and must not stay usable.
pub struct Released<'a> {
    pub user: &'a User,
    pub token_id: i64,
    /// Why, for the audit trail (the delivery error, or that the run was stopped first).
    pub why: &'a str,
    /// Its message was tried and failed (revoked as `undelivered`); else it was never sent
    /// (revoked as `not sent`).
    pub attempted: bool,
}

/// The outcome of links issued by one run, recorded in one transaction.
pub struct Settle<'a> {
    pub run_id: i64,
    pub now: i64,
    pub actor: &'a str,
    /// Printed links (`--print-link`, `--no-email`): the batch whose links were written and
    /// flushed to stdout. Every link of the run's batches up to this one counts as handed over,
    /// without a write per token.
    pub printed: Option<i64>,
    /// Handed over: mailed links are marked one by one; for each, the user's older open links
    /// are revoked (superseded) and an audit row says `sent` (mailed) or `created` (printed).
    pub handed: &'a [Handed<'a>],
    /// Released: revoked, the user's throttle given back (an undelivered link does not count),
    /// an audit row `failed` with the reason.
    pub released: &'a [Released<'a>],
}

/// What became of one token request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Issued {
    /// A pending link: issued, not yet handed over. Usable (its message may already be on its
    /// way), but it neither throttles its user nor ends their older links until it is handed
    /// over ([`Store::settle`]); if its run ends without that, it is released.
    Created {
        expires_at: i64,
        /// The row id: the public half of the token.
        id: i64,
        /// The user had other open links.
        had_open: bool,
    },
    /// The user had a link made less than `request_throttle` ago.
    Throttled { retry_at: i64 },
    /// Another run that is still going is making this user's link right now (only without a
    /// throttle: with one, that run's request throttles this one).
    Busy { run_id: i64 },
}

/// The audit detail of a request left to another run ([`Issued::Busy`]): the same words on
/// every backend.
pub fn busy_detail(run_id: i64) -> String {
    format!("run {run_id}, still going, is making this user's link")
}

/// A process that makes links, as it registers itself: a `request` run or a `serve` process.
#[derive(Debug, Clone, Copy)]
pub struct RunStart<'a> {
    /// `request` or `serve`.
    pub command: &'a str,
    /// What a `request` was asked to do (which users, how the links go out), so that the same
    /// command run again after a stop continues it; None when that cannot be told (addresses
    /// on stdin, serve).
    pub job: Option<&'a str>,
    /// Where `pid` means something: the boot and the PID namespace (see
    /// [`crate::request::lease`]); empty where that cannot be known.
    pub host: &'a str,
    pub pid: i64,
    /// The process's start time, so that a reused pid is not taken for it.
    pub proc_start: i64,
    pub actor: &'a str,
    pub now: i64,
}

/// A run as the runs table holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    pub id: i64,
    pub command: String,
    pub job: Option<String>,
    pub host: String,
    pub pid: i64,
    pub proc_start: i64,
    pub actor: String,
    pub started_at: i64,
    /// Renewed while the run goes on ([`Store::heartbeat`]).
    pub heartbeat_at: i64,
    pub ended_at: Option<i64>,
    /// How it ended ([`RunEnd::as_str`]), once it has.
    pub outcome: Option<String>,
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunEnd {
    /// Every user it could serve got their link.
    Done,
    /// It went through its users, but some got no link (delivery failed, throttled): the same
    /// command run again serves them.
    Incomplete,
    /// Stopped by a signal.
    Stopped,
    /// Stopped by an error.
    Failed,
    /// Its process was found gone while the run was still open (kill -9, a crash, power loss).
    Crashed,
}

impl RunEnd {
    pub fn as_str(self) -> &'static str {
        match self {
            RunEnd::Done => "done",
            RunEnd::Incomplete => "incomplete",
            RunEnd::Stopped => "stopped",
            RunEnd::Failed => "failed",
            RunEnd::Crashed => "crashed",
        }
    }
}

/// A password change with a token.
pub struct Consume<'a> {
    pub token_id: i64,
    pub digest: &'a Digest,
    /// The user the token was checked for; the change happens only if it still belongs to them.
    pub user_id: &'a UserId,
    pub new_hash: &'a str,
    /// The user's address as the reset knew it: like the hash, never shown in an error.
    pub email: &'a str,
    pub now: i64,
    pub actor: &'a str,
}

/// What became of a password change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consumed {
    Changed,
    /// The token was no longer valid when the transaction looked (another reset won).
    NotUsable(Status),
    /// The change elsewhere did not happen ([`Store::spend_token`]): the token was not spent.
    Kept,
}

/// A password change with a token, where the password lives elsewhere (a directory): the
/// store spends the token, the directory sets the password.
pub struct Spend<'a> {
    pub token_id: i64,
    pub digest: &'a Digest,
    /// The person the token was checked for; it is spent only if it still belongs to them.
    pub user_id: &'a UserId,
    /// Their address, for the audit row.
    pub email: &'a str,
    pub now: i64,
    pub actor: &'a str,
}

/// Counts of one purge step.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PurgeCounts {
    pub expired: u64,
    pub used: u64,
    pub revoked: u64,
}

impl PurgeCounts {
    pub fn total(&self) -> u64 {
        self.expired + self.used + self.revoked
    }
    pub fn add(&mut self, o: PurgeCounts) {
        self.expired += o.expired;
        self.used += o.used;
        self.revoked += o.revoked;
    }
}

/// What the audit trail records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditAction {
    Request,
    Reset,
    ResetFailed,
    Purge,
    UserAdd,
    Revoke,
}

impl AuditAction {
    pub fn as_str(self) -> &'static str {
        match self {
            AuditAction::Request => "request",
            AuditAction::Reset => "reset",
            AuditAction::ResetFailed => "reset_failed",
            AuditAction::Purge => "purge",
            AuditAction::UserAdd => "user_add",
            AuditAction::Revoke => "revoke",
        }
    }
}

/// How an audited action ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditOutcome {
    Ok,
    /// A link was made and printed, not mailed (request).
    Created,
    /// A link was mailed: the relay, sendmail or the outbox took the message (request).
    Sent,
    /// The throttle refused a request.
    Throttled,
    /// A link's mail was not delivered.
    Failed,
    /// The policy refused the password.
    Refused,
    /// The token was not usable when the change was tried.
    NotUsable(Status),
}

impl AuditOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            AuditOutcome::Ok => "ok",
            AuditOutcome::Created => "created",
            AuditOutcome::Sent => "sent",
            AuditOutcome::Throttled => "throttled",
            AuditOutcome::Failed => "failed",
            AuditOutcome::Refused => "refused",
            AuditOutcome::NotUsable(s) => s.as_str(),
        }
    }
}

/// One audit record to write.
#[derive(Debug, Clone)]
pub struct AuditEvent<'a> {
    pub at: i64,
    pub actor: &'a str,
    pub action: AuditAction,
    pub user_id: Option<&'a UserId>,
    pub email: Option<&'a str>,
    pub outcome: AuditOutcome,
    pub detail: Option<&'a str>,
}

impl<'a> AuditEvent<'a> {
    /// The record of a link released when its run ended ([`Store::end_run`]), known by its
    /// user's id alone.
    pub fn not_sent(user_id: &'a UserId, why: &'a str, at: i64, actor: &'a str) -> AuditEvent<'a> {
        AuditEvent {
            at,
            actor,
            action: AuditAction::Request,
            user_id: Some(user_id),
            email: None,
            outcome: AuditOutcome::Failed,
            detail: Some(why),
        }
    }

    /// The record of `revoke --user`: how many open links it ended (`detail`, made by
    /// [`revoke_user_detail`]), `ok` when there were some.
    pub fn revoked_user(
        user: &'a User,
        revoked: u64,
        detail: &'a str,
        at: i64,
        actor: &'a str,
    ) -> AuditEvent<'a> {
        AuditEvent {
            at,
            actor,
            action: AuditAction::Revoke,
            user_id: Some(&user.id),
            email: Some(&user.email),
            outcome: if revoked > 0 {
                AuditOutcome::Ok
            } else {
                AuditOutcome::NotUsable(Status::Revoked)
            },
            detail: Some(detail),
        }
    }
}

/// The detail of a `revoke --user` audit row: the same words on every backend.
pub fn revoke_user_detail(revoked: u64, reason: &RevokeReason) -> String {
    format!("{revoked} open token(s): {}", reason.describe())
}

/// One audit record as read back. Text, not enums: the table may hold rows written by other
/// versions, or by hand.
#[derive(Debug, Clone)]
pub struct AuditEntry {
    pub at: i64,
    pub actor: String,
    pub action: String,
    pub user_id: Option<String>,
    pub email: Option<String>,
    pub outcome: String,
    pub detail: Option<String>,
}

/// Which audit rows to show.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub user_id: Option<UserId>,
    pub since: Option<i64>,
    pub limit: u32,
}

/// A shared limit's key: SHA-256 of the limit's name and its subject (a token id, an address's
/// key), so the table never holds an address or a token, and two limits never share a row.
pub fn limit_key(name: &str, subject: &[u8]) -> [u8; 32] {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(name.as_bytes());
    ctx.update(&[0]);
    ctx.update(subject);
    let mut key = [0u8; 32];
    key.copy_from_slice(ctx.finish().as_ref());
    key
}

/// A shared limit's count, as the database holds it ([`Store::limit_hit`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitCount {
    /// Hits in the current window (0 when there is none).
    pub hits: i64,
    /// When the current window ends (unix seconds; meaningless when `hits` is 0).
    pub expires_at: i64,
}

/// What `init` did to the schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Migrated {
    /// The database did not exist before.
    pub created: bool,
    pub before: i64,
    pub after: i64,
}

/// Work a command is about to do, so a backend can tune for it. A backend may ignore any hint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hint {
    /// Many writes follow (purge, `request --all`).
    BulkStart,
    /// The bulk work is done.
    BulkEnd,
}

/// The store interface. Each method is one unit of work: the ones that change state do it in
/// one transaction with their audit row. Reads take `&mut self` too: a network connection is
/// used mutably even to read.
pub trait Store {
    /// The database in words, for messages: "SQLite database /var/lib/pwreset/pwreset.db".
    fn describe(&self) -> String;

    /// What `init` and `doctor` should warn about (a database others can read, ...).
    fn warnings(&self) -> Vec<String>;

    /// A hint about the work that follows; see [`Hint`].
    fn hint(&mut self, hint: Hint) -> Result<()>;

    // ---- schema ----

    /// Create or migrate pwreset's tables, and its own users table when the mapping is the
    /// default one and no such table exists.
    fn migrate(&mut self) -> Result<Migrated>;

    /// Check that the configured users table and its columns exist; 78 naming what is missing.
    fn check_users_mapping(&mut self) -> Result<()>;

    /// Whether the users table is pwreset's own (made by `init`), which `user add` may write.
    fn owns_users_table(&self) -> bool;

    /// Up to `limit` stored password values that are set, for `init`'s census of formats.
    fn sample_passwords(&mut self, limit: usize) -> Result<Vec<StoredValue>>;

    // ---- users ----

    /// Add a user to pwreset's own table. 65 when the address matches an existing one under
    /// NFKC and case folding (decided by the table's unique key, not by a look first).
    fn add_user(
        &mut self,
        email: &str,
        name: Option<&str>,
        now: i64,
        actor: &str,
    ) -> Result<UserId>;

    /// Up to two users whose stored address equals `value` as the users table's own index sees
    /// it (on pwreset's own table: whose folded key equals `key(value)`).
    fn users_with_email(&mut self, value: &str) -> Result<Vec<User>>;

    /// Every user whose stored address `wanted` accepts, in one pass over the table.
    fn scan_users(&mut self, wanted: &mut dyn FnMut(&str) -> bool) -> Result<Vec<User>>;

    /// Up to `limit` users after `after` in key order (all from the first when None): bulk runs
    /// page through the table with this, so memory stays bounded.
    fn users_after(&mut self, after: Option<&UserId>, limit: usize) -> Result<Vec<User>>;

    fn user_by_id(&mut self, id: &UserId) -> Result<Option<User>>;

    fn count_users(&mut self) -> Result<u64>;

    /// Every user with a summary, in key order, handed to `each` one at a time.
    fn list_users(
        &mut self,
        now: i64,
        each: &mut dyn FnMut(UserSummary) -> Result<()>,
    ) -> Result<()>;

    // ---- tokens ----

    /// Store pending links for several users in one transaction: for each, the throttle
    /// (a conditional upsert of the user's throttle row, which records the run), then the new
    /// token with its run and batch, not yet handed over. Nothing else: the user's older links
    /// and the audit row wait for [`Store::settle`]. Throttled and busy users get their audit
    /// row (`throttled`) here.
    fn issue_tokens(&mut self, batch: &[NewToken<'_>], issue: &Issue<'_>) -> Result<Vec<Issued>>;

    /// Record what became of links issued by a run, in one transaction; see [`Settle`].
    fn settle(&mut self, settle: &Settle<'_>) -> Result<()>;

    // ---- runs ----

    /// Register a run; its id.
    fn begin_run(&mut self, run: &RunStart<'_>) -> Result<i64>;

    /// The run is still going (for runs on other hosts, which cannot be checked by pid).
    fn heartbeat(&mut self, run_id: i64, now: i64) -> Result<()>;

    /// The runs that have not ended, oldest first.
    fn open_runs(&mut self) -> Result<Vec<Run>>;

    /// End a run: release every link it issued that was not handed over (revoked as `not
    /// sent`, the throttle given back, an audit row `failed` saying `why`), and record how it
    /// ended. A run that has ended already is left alone. How many links were released.
    fn end_run(
        &mut self,
        run_id: i64,
        outcome: RunEnd,
        why: &str,
        now: i64,
        actor: &str,
    ) -> Result<u64>;

    /// The ended runs of `job` that started after `since`, newest first (up to 100): where a
    /// run of the same command looks for the stopped one it continues.
    fn ended_runs(&mut self, job: &str, since: i64) -> Result<Vec<Run>>;

    /// Of `users`, those who hold a link that one of the ended runs `runs` handed over and
    /// that is still valid or was used, with its expiry.
    fn served_by(
        &mut self,
        runs: &[i64],
        users: &[&UserId],
        now: i64,
    ) -> Result<Vec<(UserId, i64)>>;

    /// Delete the runs that ended before `cutoff`; how many.
    fn purge_runs(&mut self, cutoff: i64) -> Result<u64>;

    /// A token by id and secret digest, with its user's current state. A row whose digest
    /// differs is as good as no row: the secret is wrong.
    fn lookup_token(&mut self, token_id: i64, digest: &Digest) -> Result<Option<TokenRecord>>;

    /// Revoke one open token, recording why, with the audit row when `audit` is given (the
    /// `revoke` command); true when it was open. Without `audit` it stores a revocation found
    /// when the token was looked up (its user gone or changed), so that it cannot come back;
    /// a store opened read-only may do that on a connection of its own, and gives up quietly
    /// when it cannot write.
    fn revoke_token(
        &mut self,
        token_id: i64,
        reason: &RevokeReason,
        now: i64,
        audit: Option<&AuditEvent<'_>>,
    ) -> Result<bool>;

    /// Revoke every open token of a user, with one audit row; how many there were.
    fn revoke_user_tokens(
        &mut self,
        user: &User,
        reason: &RevokeReason,
        now: i64,
        actor: &str,
    ) -> Result<u64>;

    /// A token by id and digest as stored, without reading any user (users in a directory,
    /// which the caller asks): the record says the user exists and the binding holds, and the
    /// stored binding comes with it for the caller to compare.
    fn token_alone(
        &mut self,
        token_id: i64,
        digest: &Digest,
    ) -> Result<Option<(TokenRecord, Vec<u8>)>>;

    /// Spend a token for a password set elsewhere, in one transaction: spend it with the
    /// conditional update, call `change` (which sets the password in the directory), and only
    /// when it says the password changed, revoke the user's other open tokens, write the audit
    /// row and commit. Otherwise roll back: the link still works ([`Consumed::Kept`]).
    fn spend_token(
        &mut self,
        s: &Spend<'_>,
        change: &mut dyn FnMut() -> Result<bool>,
    ) -> Result<Consumed>;

    /// Set a new password hash with a token, in one transaction: spend the token with a
    /// conditional update (exactly one of several racing changes wins), write the hash, revoke
    /// the user's other open tokens, write the audit row.
    fn consume_token(&mut self, c: &Consume<'_>) -> Result<Consumed>;

    // ---- purge ----

    /// What a purge with this cutoff would delete (for `--dry-run`).
    fn count_dead(&mut self, cutoff: i64) -> Result<PurgeCounts>;

    /// Whether a bulk run may store tokens over several connections at once: a server that
    /// takes concurrent writers, where one connection keeps one server process busy.
    fn parallel_bulk(&self) -> bool {
        false
    }

    /// Delete about `limit` dead tokens with `dead_at <= cutoff`, in short transactions of
    /// about `limit` each (one, except where a backend walks a large purge by table pages).
    /// Fewer than `limit` means done.
    fn purge_batch(&mut self, cutoff: i64, limit: u32) -> Result<PurgeCounts>;

    /// Tokens per purge transaction when `--batch-size` is not given. SQLite's writer holds
    /// the database's one write lock, and InnoDB locks every row a range DELETE reads, live
    /// ones too: short batches keep others from waiting.
    fn purge_batch_size(&self) -> u32 {
        5000
    }

    // ---- shared limits ----

    /// Count one hit on the limit `key` ([`limit_key`]) and read the count back, in one atomic
    /// step, so that several `serve` processes on this database count together: a window of
    /// `window` seconds starts at the first hit, and a hit after it has ended starts a new one.
    fn limit_hit(&mut self, key: &[u8; 32], window: i64, now: i64) -> Result<LimitCount>;

    /// The count of `key` now, without counting (hits 0 when its window is over).
    fn limit_peek(&mut self, key: &[u8; 32], now: i64) -> Result<LimitCount>;

    /// Delete the limits whose window ended before `now`; how many.
    fn purge_limits(&mut self, now: i64) -> Result<u64>;

    // ---- shared secrets ----

    /// The secret `name` every process on this database shares: `fresh` is stored if there is
    /// none yet, and what is stored is read back, in one transaction, so processes that start
    /// at once all get the one that was written first. Never logged, never in an error.
    fn shared_secret(
        &mut self,
        name: &str,
        fresh: &[u8; 32],
        now: i64,
    ) -> Result<zeroize::Zeroizing<Vec<u8>>>;

    // ---- audit ----

    /// Write one audit row on its own.
    fn record(&mut self, event: &AuditEvent<'_>) -> Result<()>;

    /// Audit rows, newest first.
    fn audit_entries(
        &mut self,
        filter: &AuditFilter,
        each: &mut dyn FnMut(AuditEntry) -> Result<()>,
    ) -> Result<()>;
}

/// The line of the GRANT list for `[users] after_reset` (empty without it): its statements are
/// the application's, so only the administrator knows what they need. A SQL comment, so the
/// list can still be pasted as it is. `example` ends the example GRANT: "sessions TO role".
pub(crate) fn after_reset_rights(statements: usize, example: &str) -> String {
    if statements == 0 {
        return String::new();
    }
    format!(
        "-- and the rights the {statements} [users] after_reset statement(s) use, e.g. GRANT DELETE ON {example};"
    )
}
