//! The request service: addresses or users in; tokens issued, links handed over (mailed or
//! printed), every outcome recorded, and a typed outcome per user out. No terminal and no HTTP:
//! `cmd/request` (progress, summary, `--json`, prompts) and the forgot-password page are its two
//! front ends.
//!
//! A link is *pending* from its issue until it is *handed over*: the relay answered 250,
//! sendmail exited 0, the outbox file was written, or the printed link was flushed to stdout.
//! Only then do the user's older links stop working and the request count against the
//! throttle for good. A link that is not handed over is *released*: revoked, the throttle given
//! back. Every run registers itself ([`lease`]) and releases what it did not hand over when it
//! ends, however it ends: done, stopped by a signal, or failed; a run that died (kill -9) is
//! ended by the next one. A run of the same command after a stop continues it: users who hold a
//! link the stopped run handed over are skipped.
//!
//! Users are handled in chunks: resolve the chunk's addresses, store its tokens in one write
//! transaction, then hand its links over and report its outcomes in input order. Memory is
//! bounded by the chunk, not by the number of users.

mod deliver;
pub mod lease;

use crate::config::{Config, TransportKind};
use crate::directory::{Cursor, Directory};
use crate::error::{Exit, exit_of, render};
use crate::lookup::{self, Found};
use crate::mail::{Mailer, Recipient};
use crate::signals::{Signal, Stop};
use crate::store::{
    Access, Handed, Issue, Issued, NewToken, Released, Run, RunEnd, Settle, Store, User, UserId,
};
use crate::token::{self, Token};
use crate::ui;
use anyhow::{Context, Result};
use lease::Lease;
use ring::rand::SystemRandom;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use zeroize::Zeroizing;

/// Users per write transaction: large enough to amortise the commit, small enough that the
/// write lock is held for milliseconds.
pub const CHUNK: usize = 5000;

/// How long the messages in flight may take to finish after a stop, by default.
pub const GRACE: Duration = Duration::from_secs(10);

/// How a run's links reach their users.
#[derive(Clone)]
pub enum Delivery {
    /// Mailed to the stored address.
    Mail(Arc<Mailer>),
    /// Printed by the front end (`--no-email`): handed over when it has flushed them.
    Print,
    /// `--dry-run`: look up and report, write nothing.
    DryRun,
}

/// What a run is asked to do.
#[derive(Clone)]
pub struct Options {
    pub ttl: Duration,
    /// Skip the request throttle (`--force`).
    pub force: bool,
    pub delivery: Delivery,
    /// The page the link opens (`base_url`).
    pub base_url: String,
    /// The language of the mail for a user the users table gives none (the forgot page's).
    pub locale: Option<String>,
    /// How long the messages in flight may take to finish after a stop.
    pub grace: Duration,
}

/// What became of one address or user: the same words in the terminal's lines, `--json`, the
/// summary and the audit trail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// The link was mailed.
    Sent,
    /// The link was made and printed, not mailed.
    Created,
    /// The stopped run this one continues mailed this user a link that still works.
    AlreadySent,
    /// The stopped run this one continues printed this user's link, which still works.
    AlreadyCreated,
    Throttled,
    UnknownUser,
    /// Bad input: not a valid address, or one that matches several users.
    Invalid,
    /// Delivery failed.
    Failed,
    /// `--dry-run`: this user would get a link.
    WouldSend,
    /// The directory's account is locked or disabled: no link.
    Locked,
    /// A stop came before this user's link went out; it was withdrawn.
    NotSent,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Sent => "sent",
            Status::Created => "created",
            Status::AlreadySent => "already_sent",
            Status::AlreadyCreated => "already_created",
            Status::Throttled => "throttled",
            Status::UnknownUser => "unknown_user",
            Status::Invalid => "invalid",
            Status::Failed => "failed",
            Status::WouldSend => "would_send",
            Status::Locked => "locked",
            Status::NotSent => "not_sent",
        }
    }

    /// The user got no link from this run, and the same command run again would try again.
    fn leaves_work(self) -> bool {
        matches!(self, Status::Throttled | Status::Failed | Status::NotSent)
    }
}

/// What happened for one user.
pub struct Outcome {
    /// The address as typed, or the user's stored address.
    pub email: String,
    pub status: Status,
    pub exit: Exit,
    pub expires_at: Option<i64>,
    /// The link, for a link that was made (`sent`, `created`); the front end prints it or not.
    pub link: Option<Zeroizing<String>>,
    pub error: Option<String>,
}

impl Outcome {
    fn new(email: String, status: Status, exit: Exit) -> Outcome {
        Outcome {
            email,
            status,
            exit,
            expires_at: None,
            link: None,
            error: None,
        }
    }

    fn with_error(mut self, error: String) -> Outcome {
        self.error = Some(error);
        self
    }

    fn invalid(email: String, error: String) -> Outcome {
        Outcome::new(email, Status::Invalid, Exit::DataErr).with_error(error)
    }

    fn unknown(email: &str) -> Outcome {
        Outcome::new(email.to_owned(), Status::UnknownUser, Exit::NoUser)
            .with_error(format!("no user with address {}", ui::escape(email)))
    }
}

/// Where a run's outcomes go.
pub trait Report {
    /// A chunk's outcomes, in input order. For printed links this is their hand-over: when it
    /// returns Ok the links have been written and flushed; an error withdraws them.
    fn outcomes(&mut self, outcomes: Vec<Outcome>) -> Result<()>;

    /// `n` more of the chunk's messages were handed over or failed, before its outcomes come.
    fn progress(&mut self, _n: u64) {}

    /// An address named a user already served in this run, who gets one link.
    fn duplicate(&mut self, _addr: &str) {}
}

/// How a run ends, for [`Service::finish`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish {
    /// It went through its users.
    Completed,
    Stopped(Signal),
    Failed,
}

/// What a run met besides its users' outcomes, for the front end's summary.
#[derive(Debug, Default, Clone)]
pub struct Stats {
    /// Addresses that named a user already served in this run.
    pub duplicates: u64,
    /// SMTP connections the relay accepted when it refused some while delivering over others
    /// (a per-client limit), for the advice to lower `connections`.
    pub connection_limit: Option<usize>,
    /// Links made and then withdrawn because a stop came first.
    pub not_sent: u64,
    /// Some users got no link (failed, throttled, not sent): a run of the same command would
    /// try them again.
    pub incomplete: bool,
}

/// The resume key of a `request`: which users it was asked for and how the links go out,
/// hashed. The same command run again has the same key.
pub fn job_key(parts: &[&[u8]]) -> String {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    for p in parts {
        ctx.update(&(p.len() as u64).to_be_bytes());
        ctx.update(p);
    }
    ctx.finish()
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Requests for one store and configuration, within one run.
pub struct Service<'a> {
    store: &'a mut dyn Store,
    /// Where the users are: the users table (through the store), or a directory.
    dir: Directory,
    config: &'a Config,
    opts: Options,
    actor: String,
    /// This run's lease, when the service registered the run itself.
    lease: Option<Lease>,
    run_id: i64,
    /// The unfinished runs of the same command that this one continues.
    resumed: Vec<Run>,
    /// Runs found dead at the start, with the links each released.
    reaped: Vec<(Run, u64)>,
    /// Typed and listed addresses may name a user twice; `--all` walks distinct rows.
    seen: Option<HashSet<UserId>>,
    /// Valid addresses the index could not answer, for one scan ([`Service::deferred`]).
    deferred: Vec<String>,
    /// Chunks issued so far: the next one's number.
    batch: i64,
    rng: SystemRandom,
    /// SMTP connections to send over: `[mail.smtp] connections`, less those the relay refused.
    connections: usize,
    stats: Stats,
}

impl<'a> Service<'a> {
    /// Start a run of its own (the `request` command): end any dead run, register this one,
    /// and find the stopped runs of the same `job` that it continues. `dedupe`: the input may
    /// name a user twice (addresses), who then gets one link.
    pub fn start(
        store: &'a mut dyn Store,
        config: &'a Config,
        opts: Options,
        actor: &str,
        job: Option<&str>,
        dedupe: bool,
    ) -> Result<Service<'a>> {
        let dry = matches!(opts.delivery, Delivery::DryRun);
        let (lease, reaped) = if dry {
            (None, Vec::new())
        } else {
            let (lease, reaped) = Lease::start(store, config, "request", job, actor)?;
            (Some(lease), reaped)
        };
        let since = ui::now().saturating_sub(crate::config::MAX_TTL.as_secs() as i64);
        let resumed = match job {
            // Back to (not including) the newest run of the command that was done.
            Some(job) => store
                .ended_runs(job, since)?
                .into_iter()
                .take_while(|r| r.outcome.as_deref() != Some(RunEnd::Done.as_str()))
                .collect(),
            None => Vec::new(),
        };
        let run_id = lease.as_ref().map_or(0, |l| l.id);
        let mut s = Service::within(store, Directory::open(config)?, config, opts, actor, run_id)?;
        s.lease = lease;
        s.reaped = reaped;
        s.resumed = resumed;
        s.seen = dedupe.then(HashSet::new);
        Ok(s)
    }

    /// The directory, for the next job (see `web::pool::Worker::put_directory`).
    pub fn into_directory(self) -> Directory {
        self.dir
    }

    /// Work within a run registered elsewhere (the web server's, for the forgot page), with
    /// a directory opened already.
    pub fn within(
        store: &'a mut dyn Store,
        dir: Directory,
        config: &'a Config,
        opts: Options,
        actor: &str,
        run_id: i64,
    ) -> Result<Service<'a>> {
        Ok(Service {
            store,
            dir,
            config,
            opts,
            actor: actor.to_owned(),
            lease: None,
            run_id,
            resumed: Vec::new(),
            reaped: Vec::new(),
            seen: None,
            deferred: Vec::new(),
            batch: 0,
            rng: SystemRandom::new(),
            connections: (config.mail.smtp.connections as usize).max(1),
            stats: Stats::default(),
        })
    }

    /// The store, for what the front end asks besides requests (counting users).
    pub fn store(&mut self) -> &mut dyn Store {
        &mut *self.store
    }

    /// How many users `--all` goes through, when that is known up front (a table; a
    /// directory is not counted first).
    pub fn count_users(&mut self) -> Result<Option<u64>> {
        if self.dir.is_table() {
            Ok(Some(self.store.count_users()?))
        } else {
            Ok(None)
        }
    }

    /// Runs found dead at the start, and how many links each released.
    pub fn reaped(&self) -> &[(Run, u64)] {
        &self.reaped
    }

    /// The stopped runs of the same command that this run continues, newest first.
    pub fn resuming(&self) -> &[Run] {
        &self.resumed
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Validate and look up addresses through the users table's index, and serve them. The
    /// addresses the index cannot answer wait for [`Service::deferred`].
    pub fn addresses(
        &mut self,
        inputs: Vec<String>,
        stop: &Stop,
        report: &mut dyn Report,
    ) -> Result<()> {
        let mut items = Vec::with_capacity(inputs.len());
        for input in inputs {
            let addr = match crate::email::validate(&input) {
                Err(e) => {
                    items.push(Item::done(Outcome::invalid(input.clone(), render(&e))));
                    continue;
                }
                Ok(addr) => addr,
            };
            match self.dir.find_indexed(&mut *self.store, addr)? {
                Some(found) => {
                    if let Some(item) = self.item(addr, found, report) {
                        items.push(item);
                    }
                }
                None => self.deferred.push(addr.to_owned()),
            }
        }
        self.chunk(items, stop, report)
    }

    /// Serve the addresses the index could not answer: one pass over the table for all.
    pub fn deferred(&mut self, stop: &Stop, report: &mut dyn Report) -> Result<()> {
        let deferred = std::mem::take(&mut self.deferred);
        for part in deferred.chunks(CHUNK) {
            if stop.asked() {
                break;
            }
            let found = lookup::by_scan(&mut *self.store, part)?;
            let items: Vec<Item> = part
                .iter()
                .zip(found)
                .filter_map(|(addr, found)| self.item(addr, found, report))
                .collect();
            self.chunk(items, stop, report)?;
        }
        Ok(())
    }

    /// Every user in the table, in key order, until the users run out or a stop.
    pub fn all(&mut self, stop: &Stop, report: &mut dyn Report) -> Result<()> {
        if !self.dir.is_table() {
            return self.all_in_directory(stop, report);
        }
        if matches!(self.opts.delivery, Delivery::Print) && self.store.parallel_bulk() {
            return self.all_in_parallel(stop, report);
        }
        let mut after: Option<UserId> = None;
        while !stop.asked() {
            let users = self.store.users_after(after.as_ref(), CHUNK)?;
            let Some(last) = users.last() else { break };
            after = Some(last.id.clone());
            let items = self.items_of(users);
            self.chunk(items, stop, report)?;
        }
        Ok(())
    }

    /// Every person in the directory, page by page (RFC 2696), a chunk at a time: memory
    /// stays bounded by the chunk, and a server's size limit does not end the run.
    fn all_in_directory(&mut self, stop: &Stop, report: &mut dyn Report) -> Result<()> {
        let mut cursor = Cursor::default();
        while !stop.asked() && !cursor.done() {
            let mut items = Vec::new();
            while items.len() < CHUNK && !cursor.done() && !stop.asked() {
                let page =
                    self.dir
                        .next_page(&mut *self.store, &mut cursor, CHUNK - items.len())?;
                for found in page {
                    match found {
                        // A disabled account is normal in a directory: reported and counted,
                        // not a failure of the run.
                        Found::Locked(user, why) => {
                            let mut o = locked(&user.email, &user, &why);
                            o.exit = Exit::Ok;
                            items.push(Item::done(o));
                        }
                        Found::User(user) => items.push(Item::user(user)),
                        Found::Unknown | Found::Ambiguous => {}
                    }
                }
            }
            self.chunk(items, stop, report)?;
        }
        Ok(())
    }

    /// End the run: release whatever was not handed over, record how it ended. How many links
    /// were released then (normally none: each chunk settles its own).
    pub fn finish(mut self, how: Finish) -> Result<u64> {
        let Some(lease) = self.lease.take() else {
            return Ok(0);
        };
        let (outcome, why) = match how {
            Finish::Completed => (
                if self.stats.incomplete {
                    RunEnd::Incomplete
                } else {
                    RunEnd::Done
                },
                "not sent: the run ended before its turn".to_owned(),
            ),
            Finish::Stopped(sig) => (
                RunEnd::Stopped,
                format!("not sent: the run was stopped by {}", sig.name()),
            ),
            Finish::Failed => (
                RunEnd::Failed,
                "not sent: the run stopped on an error".to_owned(),
            ),
        };
        let released = lease.end(&mut *self.store, outcome, &why, &self.actor)?;
        self.stats.not_sent += released;
        Ok(released)
    }

    /// The item for a looked-up address; None for a user already served in this run.
    fn item(&mut self, addr: &str, found: Found, report: &mut dyn Report) -> Option<Item> {
        Some(match found {
            Found::User(user) => {
                if self
                    .seen
                    .as_mut()
                    .is_some_and(|seen| !seen.insert(user.id.clone()))
                {
                    // One link per user and run: a second would revoke the first.
                    self.stats.duplicates += 1;
                    report.duplicate(addr);
                    return None;
                }
                Item::user(user)
            }
            Found::Unknown => Item::done(Outcome::unknown(addr)),
            Found::Locked(user, why) => Item::done(locked(addr, &user, &why)),
            Found::Ambiguous if !self.dir.is_table() => Item::done(Outcome::invalid(
                addr.to_owned(),
                render(&Found::ambiguous_in_directory(
                    addr,
                    &self.dir.describe(self.config),
                )),
            )),
            Found::Ambiguous => Item::done(Outcome::invalid(
                addr.to_owned(),
                render(&Found::ambiguous_error(addr, &self.config.users.table)),
            )),
        })
    }

    /// `--all`'s users as items; a row with no address cannot be mailed, and its link would be
    /// born revoked: it is reported instead.
    fn items_of(&self, users: Vec<User>) -> Vec<Item> {
        users
            .into_iter()
            .map(|u| {
                if u.email.trim().is_empty() {
                    Item::done(Outcome::invalid(
                        String::new(),
                        format!(
                            "user {} has no address in {}.{}; skipped",
                            ui::escape(&u.id.to_string()),
                            self.config.users.table,
                            self.config.users.email_column
                        ),
                    ))
                } else {
                    Item::user(u)
                }
            })
            .collect()
    }

    /// Issue, hand over and report one chunk.
    fn chunk(&mut self, items: Vec<Item>, stop: &Stop, report: &mut dyn Report) -> Result<()> {
        if items.is_empty() {
            return Ok(());
        }
        if matches!(self.opts.delivery, Delivery::DryRun) {
            let mut items = items;
            self.skip_served(&mut items, ui::now())?;
            let outcomes = items
                .into_iter()
                .filter_map(|item| match (item.outcome, item.user) {
                    (Some(o), _) => Some(o),
                    (None, Some(user)) => {
                        Some(Outcome::new(user.email, Status::WouldSend, Exit::Ok))
                    }
                    (None, None) => None,
                })
                .collect();
            return report.outcomes(outcomes);
        }
        let prepared = self.prepare(items)?;
        let issue = self.issue_params();
        let (prepared, issued) = prepared.issue(&mut *self.store, &issue)?;
        let (prepared, issued) = self.again_if_held_by_the_dead(prepared, issued, &issue)?;
        self.finish_chunk(prepared, issued, stop, report)
    }

    /// A chunk refused as a whole (throttled, or being sent by another run) may be refused
    /// for a run that died after issuing its links and before handing them over, while this
    /// process was already going: runs are ended at the start of a run, and `serve` runs for
    /// weeks. The forgot page's chunk is one user, so one kill -9 would otherwise leave its
    /// users unable to get a link until the throttle passed. End the dead runs now, and when
    /// that gave any link back, ask once more: nothing of the chunk was stored, so its tokens
    /// can be offered again.
    fn again_if_held_by_the_dead(
        &mut self,
        prepared: Prepared,
        issued: Vec<Issued>,
        issue: &IssueParams,
    ) -> Result<Stored> {
        let refused = !issued.is_empty()
            && issued
                .iter()
                .all(|i| matches!(i, Issued::Throttled { .. } | Issued::Busy { .. }));
        if !refused {
            return Ok((prepared, issued));
        }
        let me = lease::Process::this();
        let reaped = lease::reap(&mut *self.store, &me, ui::now(), &self.actor)?;
        let released: u64 = reaped.iter().map(|(_, n)| n).sum();
        self.reaped.extend(reaped);
        if released == 0 {
            return Ok((prepared, issued));
        }
        prepared.issue(&mut *self.store, issue)
    }

    fn issue_params(&self) -> IssueParams {
        IssueParams {
            ttl: self.opts.ttl,
            throttle: (!self.opts.force).then_some(self.config.request_throttle),
            run_id: self.run_id,
            actor: self.actor.clone(),
        }
    }

    /// Answer the users who hold a link that the stopped run this one continues handed over.
    fn skip_served(&mut self, items: &mut [Item], now: i64) -> Result<()> {
        if self.resumed.is_empty() {
            return Ok(());
        }
        let runs: Vec<i64> = self.resumed.iter().map(|r| r.id).collect();
        let users: Vec<&UserId> = items
            .iter()
            .filter(|i| i.outcome.is_none())
            .filter_map(|i| i.user.as_ref().map(|u| &u.id))
            .collect();
        let served: HashMap<UserId, i64> = self
            .store
            .served_by(&runs, &users, now)?
            .into_iter()
            .collect();
        let status = match self.opts.delivery {
            Delivery::Print => Status::AlreadyCreated,
            _ => Status::AlreadySent,
        };
        for item in items.iter_mut().filter(|i| i.outcome.is_none()) {
            let Some(user) = &item.user else { continue };
            if let Some(&expires_at) = served.get(&user.id) {
                let mut o = Outcome::new(user.email.clone(), status, Exit::Ok);
                o.expires_at = Some(expires_at);
                item.outcome = Some(o);
            }
        }
        Ok(())
    }

    /// Fresh tokens for the chunk's users, and its number; users the run this one continues
    /// has served are answered here.
    fn prepare(&mut self, mut items: Vec<Item>) -> Result<Prepared> {
        let now = ui::now();
        self.skip_served(&mut items, now)?;
        let wanted = items
            .iter()
            .filter(|i| i.user.is_some() && i.outcome.is_none())
            .count();
        let mut fresh = Token::generate_many(&self.rng, wanted)?.into_iter();
        let tokens: Vec<Option<Token>> = items
            .iter()
            .map(|i| match (&i.user, &i.outcome) {
                (Some(_), None) => fresh.next(),
                _ => None,
            })
            .collect();
        self.batch += 1;
        Ok(Prepared {
            items,
            tokens,
            now,
            batch: self.batch,
        })
    }

    /// Links and hand-over for a chunk the store has answered, then its report.
    fn finish_chunk(
        &mut self,
        prepared: Prepared,
        issued: Vec<Issued>,
        stop: &Stop,
        report: &mut dyn Report,
    ) -> Result<()> {
        let Prepared {
            mut items,
            mut tokens,
            now,
            batch,
        } = prepared;
        // The chunk's pending links: item index -> (token id, whether older links were open).
        let mut pending: BTreeMap<usize, (i64, bool)> = BTreeMap::new();
        let wanted: Vec<usize> = (0..items.len())
            .filter(|&i| tokens[i].is_some() && items[i].user.is_some())
            .collect();
        for (&i, result) in wanted.iter().zip(issued) {
            let user = items[i]
                .user
                .as_ref()
                .context("issued token without a user")?;
            let outcome = match result {
                Issued::Throttled { retry_at } => {
                    Outcome::new(user.email.clone(), Status::Throttled, Exit::TempFail).with_error(
                        format!(
                            "a link was requested for {} less than {} ago; try again after {} or use --force",
                            ui::escape(&user.email),
                            humantime::format_duration(self.config.request_throttle),
                            ui::rfc3339(retry_at)
                        ),
                    )
                }
                Issued::Busy { run_id } => {
                    Outcome::new(user.email.clone(), Status::Throttled, Exit::TempFail).with_error(
                        format!(
                            "a link for {} is being sent by another pwreset run (run {run_id}) right now; run again when it has finished",
                            ui::escape(&user.email)
                        ),
                    )
                }
                Issued::Created {
                    expires_at,
                    id,
                    had_open,
                } => {
                    let tok = tokens[i].take().context("missing token")?.with_id(id)?;
                    let status = match self.opts.delivery {
                        Delivery::Mail(_) => Status::Sent,
                        _ => Status::Created,
                    };
                    let mut o = Outcome::new(user.email.clone(), status, Exit::Ok);
                    o.expires_at = Some(expires_at);
                    o.link = Some(token::link(&self.opts.base_url, &tok));
                    pending.insert(i, (id, had_open));
                    o
                }
            };
            items[i].outcome = Some(outcome);
        }
        drop(tokens);
        match self.opts.delivery.clone() {
            Delivery::Mail(mailer) => {
                self.mail(&mailer, &mut items, &pending, now, stop, report)?
            }
            Delivery::Print => return self.print(&mut items, &pending, batch, report),
            Delivery::DryRun => {}
        }
        let outcomes = self.outcomes(&mut items);
        report.outcomes(outcomes)
    }

    /// The chunk's outcomes in order (taken out of its items), counted for the run's stats.
    fn outcomes(&mut self, items: &mut [Item]) -> Vec<Outcome> {
        let outcomes: Vec<Outcome> = items.iter_mut().filter_map(|i| i.outcome.take()).collect();
        for o in &outcomes {
            if o.status.leaves_work() {
                self.stats.incomplete = true;
            }
            if o.status == Status::NotSent {
                self.stats.not_sent += 1;
            }
        }
        outcomes
    }

    /// Printed links: the report writes them out; that is their hand-over.
    fn print(
        &mut self,
        items: &mut [Item],
        pending: &BTreeMap<usize, (i64, bool)>,
        batch: i64,
        report: &mut dyn Report,
    ) -> Result<()> {
        let outcomes = self.outcomes(items);
        let written = report.outcomes(outcomes);
        let users = pending
            .iter()
            .filter_map(|(&i, &(id, had_open))| Some((items[i].user.as_ref()?, id, had_open)));
        let (handed, released): (Vec<Handed<'_>>, Vec<Released<'_>>) = match &written {
            Ok(()) => (
                users
                    .map(|(user, token_id, had_open)| Handed {
                        user,
                        token_id,
                        had_open,
                    })
                    .collect(),
                Vec::new(),
            ),
            Err(_) => (
                Vec::new(),
                users
                    .map(|(user, token_id, _)| Released {
                        user,
                        token_id,
                        why: "not sent: the link could not be written out",
                        attempted: false,
                    })
                    .collect(),
            ),
        };
        let settled = self.store.settle(&Settle {
            run_id: self.run_id,
            now: ui::now(),
            actor: &self.actor,
            printed: written.is_ok().then_some(batch),
            handed: &handed,
            released: &released,
        });
        written?;
        settled
    }

    /// Mailed links: build each message, send them over the pool, and record each hand-over
    /// (or failure) as it comes. Messages a stop kept from going are withdrawn.
    fn mail(
        &mut self,
        mailer: &Arc<Mailer>,
        items: &mut [Item],
        pending: &BTreeMap<usize, (i64, bool)>,
        now: i64,
        stop: &Stop,
        report: &mut dyn Report,
    ) -> Result<()> {
        let mut msgs: Vec<(usize, lettre::Message)> = Vec::with_capacity(pending.len());
        let mut unmade: Vec<(usize, String, Exit)> = Vec::new();
        for &i in pending.keys() {
            let Some(user) = items[i].user.as_ref() else {
                continue;
            };
            let Some(outcome) = items[i].outcome.as_ref() else {
                continue;
            };
            let (Some(link), Some(expires_at)) = (&outcome.link, outcome.expires_at) else {
                continue;
            };
            match mailer.reset_message_to(&self.recipient(user), link, expires_at, now) {
                Ok(msg) => msgs.push((i, msg)),
                Err(e) => unmade.push((i, render(&e), exit_of(&e))),
            }
        }
        // No message, so no one may hold the link.
        if !unmade.is_empty() {
            let released: Vec<Released<'_>> = unmade
                .iter()
                .filter_map(|(i, why, _)| {
                    Some(Released {
                        user: items[*i].user.as_ref()?,
                        token_id: pending.get(i)?.0,
                        why,
                        attempted: true,
                    })
                })
                .collect();
            self.settle_mailed(&[], &released)?;
            for (i, why, exit) in unmade {
                if let Some(o) = items[i].outcome.as_mut() {
                    o.status = Status::Failed;
                    o.exit = exit;
                    o.error = Some(why);
                    o.link = None;
                }
            }
        }
        let workers = match (&mailer.transport, self.config.mail.transport) {
            (crate::mail::Transport::Smtp { .. }, TransportKind::Smtp) => self.connections,
            _ => 1,
        };
        let grace = self.opts.grace;
        let sending = {
            let items_ref: &[Item] = items;
            let mut failures: Vec<(usize, crate::mail::SendError)> = Vec::new();
            let sending = {
                let mut record = |results: &[(
                    usize,
                    std::result::Result<(), crate::mail::SendError>,
                )]|
                 -> Result<()> {
                    let mut handed = Vec::with_capacity(results.len());
                    let mut whys = Vec::new();
                    for (i, r) in results {
                        let (Some(user), Some(&(token_id, had_open))) =
                            (items_ref[*i].user.as_ref(), pending.get(i))
                        else {
                            continue;
                        };
                        match r {
                            Ok(()) => handed.push(Handed {
                                user,
                                token_id,
                                had_open,
                            }),
                            Err(e) => {
                                whys.push((user, token_id, e.message.clone()));
                                failures.push((*i, e.clone()));
                            }
                        }
                    }
                    let released: Vec<Released<'_>> = whys
                        .iter()
                        .map(|(user, token_id, why)| Released {
                            user,
                            token_id: *token_id,
                            why,
                            attempted: true,
                        })
                        .collect();
                    self.settle_mailed(&handed, &released)?;
                    report.progress(results.len() as u64);
                    Ok(())
                };
                deliver::send(mailer, msgs, workers, stop, grace, &mut record)?
            };
            for (i, e) in failures {
                if let Some(o) = items[i].outcome.as_mut() {
                    o.status = Status::Failed;
                    o.exit = e.exit;
                    o.error = Some(format!(
                        "mail to {} was not delivered: {}",
                        ui::escape(&o.email),
                        e.message
                    ));
                    o.link = None;
                }
            }
            sending
        };
        // The pool stays this size for the rest of the run; the advice to match it is given
        // only when the relay kept delivering over the others (a limit, not an outage).
        self.connections = workers.saturating_sub(sending.refused).max(1);
        if sending.refused > 0 && sending.delivered_after_refusal {
            self.stats.connection_limit = Some(self.connections);
        }
        // What a stop kept from going: withdrawn. A message out at the deadline may have
        // reached its user, but its hand-over was never confirmed.
        let signal = stop.signal().map_or("a stop", Signal::name);
        let never = format!("not sent: pwreset was stopped ({signal}) before this link's turn");
        let unconfirmed =
            format!("not confirmed: pwreset was stopped ({signal}) while this mail was being sent");
        let released: Vec<Released<'_>> = sending
            .not_started
            .iter()
            .map(|i| (i, &never, false))
            .chain(sending.abandoned.iter().map(|i| (i, &unconfirmed, true)))
            .filter_map(|(i, why, attempted)| {
                Some(Released {
                    user: items[*i].user.as_ref()?,
                    token_id: pending.get(i)?.0,
                    why,
                    attempted,
                })
            })
            .collect();
        if !released.is_empty() {
            self.settle_mailed(&[], &released)?;
        }
        for (&i, why) in sending
            .not_started
            .iter()
            .map(|i| (i, &never))
            .chain(sending.abandoned.iter().map(|i| (i, &unconfirmed)))
        {
            if let Some(o) = items[i].outcome.as_mut() {
                o.status = Status::NotSent;
                o.exit = Exit::TempFail;
                o.error = Some(why.clone());
                o.link = None;
            }
        }
        Ok(())
    }

    fn settle_mailed(&mut self, handed: &[Handed<'_>], released: &[Released<'_>]) -> Result<()> {
        self.store.settle(&Settle {
            run_id: self.run_id,
            now: ui::now(),
            actor: &self.actor,
            printed: None,
            handed,
            released,
        })
    }

    /// Who a message goes to: the language the users table gives, else the run's.
    fn recipient(&self, user: &User) -> Recipient {
        let mut to = user.recipient();
        if to.locale.is_none() {
            to.locale.clone_from(&self.opts.locale);
        }
        to
    }

    /// `--all` with printed links on a server that takes concurrent writers: the chunks'
    /// tokens are stored over [`WORKERS`] more connections at once, while this thread reads the
    /// next chunk and reports (hands over) the finished ones in order. The server's work per
    /// chunk (the throttle and the token rows) is most of a bulk run, and one connection keeps
    /// one server process busy.
    fn all_in_parallel(&mut self, stop: &Stop, report: &mut dyn Report) -> Result<()> {
        let issue = self.issue_params();
        let config = self.config;
        std::thread::scope(|scope| -> Result<()> {
            let (done_tx, done_rx) = std::sync::mpsc::channel::<(u64, Result<Stored>)>();
            let mut jobs = Vec::with_capacity(WORKERS);
            for _ in 0..WORKERS {
                let (job_tx, job_rx) = std::sync::mpsc::sync_channel::<(u64, Prepared)>(1);
                let done_tx = done_tx.clone();
                let issue = &issue;
                scope.spawn(move || {
                    let mut store = match crate::store::open(config, Access::Write) {
                        Ok(s) => s,
                        Err(e) => {
                            let _ = done_tx.send((NO_CHUNK, Err(e)));
                            return;
                        }
                    };
                    for (seq, prepared) in job_rx {
                        let result = prepared.issue(store.as_mut(), issue);
                        let failed = result.is_err();
                        if done_tx.send((seq, result)).is_err() || failed {
                            return;
                        }
                    }
                });
                jobs.push(job_tx);
            }
            drop(done_tx);
            let mut order = InOrder::default();
            // Read, prepare and hand out chunks until the users run out, a stop, or a failure.
            let reading = (|| -> Result<()> {
                let mut after: Option<UserId> = None;
                let mut sent = 0u64;
                while order.failure.is_none() && !stop.asked() {
                    let users = self.store.users_after(after.as_ref(), CHUNK)?;
                    let Some(last) = users.last() else { break };
                    after = Some(last.id.clone());
                    let items = self.items_of(users);
                    let prepared = self.prepare(items)?;
                    let worker = usize::try_from(sent % WORKERS as u64).unwrap_or(0);
                    if jobs[worker].send((sent, prepared)).is_err() {
                        // That worker stopped: its error is in the channel.
                        break;
                    }
                    sent += 1;
                    // At most one chunk per worker in flight, so memory stays bounded.
                    while sent - order.next > WORKERS as u64 {
                        let Ok(done) = done_rx.recv() else { break };
                        order.take(self, done, stop, report)?;
                    }
                }
                Ok(())
            })();
            drop(jobs);
            // Every chunk that was stored is handed over, even after a failure: a link nobody
            // saw would only hold up its user's next request until the run's end released it.
            let mut printing = Ok(());
            for done in done_rx {
                if printing.is_ok() {
                    printing = order.take(self, done, stop, report);
                }
            }
            if printing.is_ok() {
                printing = order.rest(self, stop, report);
            }
            match (order.failure, reading, printing) {
                (Some(e), _, _) | (None, Err(e), _) | (None, Ok(()), Err(e)) => Err(e),
                (None, Ok(()), Ok(())) => Ok(()),
            }
        })
    }
}

/// The outcome for a locked or disabled account: no link (65 for an address asked for).
fn locked(addr: &str, user: &User, why: &str) -> Outcome {
    Outcome::new(addr.to_owned(), Status::Locked, Exit::DataErr).with_error(format!(
        "the account of {} is {why}; no link was made (pwreset does not unlock accounts)",
        ui::escape(&user.email)
    ))
}

/// One user of a chunk, on its way through.
struct Item {
    user: Option<User>,
    outcome: Option<Outcome>,
}

impl Item {
    fn user(user: User) -> Item {
        Item {
            user: Some(user),
            outcome: None,
        }
    }

    fn done(outcome: Outcome) -> Item {
        Item {
            user: None,
            outcome: Some(outcome),
        }
    }
}

/// What every chunk of a run is issued under (an [`Issue`] without its time and number).
struct IssueParams {
    ttl: Duration,
    throttle: Option<Duration>,
    run_id: i64,
    actor: String,
}

/// A chunk made ready for the store: its items, a fresh token for each item that needs one,
/// and its number in the run.
struct Prepared {
    items: Vec<Item>,
    tokens: Vec<Option<Token>>,
    now: i64,
    batch: i64,
}

impl Prepared {
    /// Store the chunk's tokens: the one call both the serial and the parallel run make.
    fn issue(self, store: &mut dyn Store, p: &IssueParams) -> Result<Stored> {
        let batch: Vec<NewToken<'_>> = self
            .items
            .iter()
            .zip(&self.tokens)
            .filter_map(|(item, tok)| {
                Some(NewToken {
                    user: item.user.as_ref()?,
                    digest: tok.as_ref()?.digest(),
                })
            })
            .collect();
        let issued = store.issue_tokens(
            &batch,
            &Issue {
                now: self.now,
                ttl: p.ttl,
                throttle: p.throttle,
                run_id: p.run_id,
                batch: self.batch,
                actor: &p.actor,
            },
        )?;
        drop(batch);
        Ok((self, issued))
    }
}

/// A chunk and the store's answer for it.
type Stored = (Prepared, Vec<Issued>);

/// Connections that store tokens at once in a parallel `--all` (besides the one that reads).
const WORKERS: usize = 2;
/// The sequence number of an answer that is no chunk's (a worker that could not connect).
const NO_CHUNK: u64 = u64::MAX;

/// The answers of a parallel `--all`, handed over in the order of their chunks.
#[derive(Default)]
struct InOrder {
    /// Answers waiting for those before them; None for a chunk the store refused.
    ready: BTreeMap<u64, Option<Stored>>,
    /// The next chunk to hand over.
    next: u64,
    /// The first error a worker met.
    failure: Option<anyhow::Error>,
}

impl InOrder {
    fn take(
        &mut self,
        svc: &mut Service<'_>,
        (seq, result): (u64, Result<Stored>),
        stop: &Stop,
        report: &mut dyn Report,
    ) -> Result<()> {
        let answer = match result {
            Ok(stored) => Some(stored),
            Err(e) => {
                self.failure.get_or_insert(e);
                None
            }
        };
        if seq != NO_CHUNK {
            self.ready.insert(seq, answer);
        }
        while let Some(answer) = self.ready.remove(&self.next) {
            if let Some((prepared, issued)) = answer {
                svc.finish_chunk(prepared, issued, stop, report)?;
            }
            self.next += 1;
        }
        Ok(())
    }

    /// After a failure, what is left (past a chunk that never got an answer), in order.
    fn rest(&mut self, svc: &mut Service<'_>, stop: &Stop, report: &mut dyn Report) -> Result<()> {
        for (_, answer) in std::mem::take(&mut self.ready) {
            if let Some((prepared, issued)) = answer {
                svc.finish_chunk(prepared, issued, stop, report)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_keys_tell_their_parts_apart() {
        assert_eq!(job_key(&[b"all", b"mail"]), job_key(&[b"all", b"mail"]));
        assert_ne!(job_key(&[b"all", b"mail"]), job_key(&[b"all", b"print"]));
        // Lengths are part of the key: the split between parts cannot move.
        assert_ne!(job_key(&[b"ab", b"c"]), job_key(&[b"a", b"bc"]));
        assert_eq!(job_key(&[b""]).len(), 64);
    }
}
