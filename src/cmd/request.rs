//! `pwreset request`: make tokens and send the links, for one user or a million.
//!
//! Users are handled in chunks: resolve the chunk's addresses, store its tokens in one write
//! transaction, then send its messages (in parallel over pooled SMTP connections) and print
//! the results in input order. Memory is bounded by the chunk, not by the number of users.

use crate::Ctx;
use crate::cli::RequestArgs;
use crate::config::{Config, TransportKind};
use crate::error::{Exit, fail, render};
use crate::lookup::{self, Found};
use crate::mail::{Mailer, SendError};
use crate::store::{Access, Delivered, Handover, Hint, Issued, NewToken, Store, User, UserId};
use crate::token::{self, Token};
use crate::ui;
use anyhow::{Context, Result};
use ring::rand::SystemRandom;
use std::io::BufRead;
use std::time::Duration;
use zeroize::Zeroizing;

/// Users per write transaction: large enough to amortise the commit, small enough that the
/// write lock is held for milliseconds.
const CHUNK: usize = 5000;
/// Longest line read from --from-file; an address is at most 254 characters.
const MAX_LINE: usize = 1024;

/// What became of one address or user: the same words in the human lines, `--json`, the
/// summary and the audit trail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
enum Status {
    /// The link was mailed.
    Sent,
    /// The link was made and printed, not mailed.
    Created,
    Throttled,
    UnknownUser,
    /// Bad input: not a valid address, or one that matches several users.
    Invalid,
    /// Delivery failed.
    Failed,
    /// `--dry-run`: this user would get a link.
    WouldSend,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::Sent => "sent",
            Status::Created => "created",
            Status::Throttled => "throttled",
            Status::UnknownUser => "unknown_user",
            Status::Invalid => "invalid",
            Status::Failed => "failed",
            Status::WouldSend => "would_send",
        }
    }
}

/// What happened for one user.
struct Outcome {
    email: String,
    status: Status,
    exit: Exit,
    expires_at: Option<i64>,
    link: Option<Zeroizing<String>>,
    error: Option<String>,
}

impl Outcome {
    fn invalid(email: String, error: String) -> Outcome {
        Outcome {
            email,
            status: Status::Invalid,
            exit: Exit::DataErr,
            expires_at: None,
            link: None,
            error: Some(error),
        }
    }

    fn unknown(email: &str) -> Outcome {
        Outcome {
            email: email.to_owned(),
            status: Status::UnknownUser,
            exit: Exit::NoUser,
            expires_at: None,
            link: None,
            error: Some(format!("no user with address {}", ui::escape(email))),
        }
    }
}

/// One user of a chunk, on its way through.
struct Item {
    user: Option<User>,
    outcome: Option<Outcome>,
}

/// A chunk made ready for the store: its items, a fresh token for each item that needs one,
/// and which items those are.
struct Prepared {
    items: Vec<Item>,
    tokens: Vec<Option<Token>>,
    batch_idx: Vec<usize>,
    now: i64,
}

impl Prepared {
    fn batch(&self) -> Vec<NewToken<'_>> {
        self.batch_idx
            .iter()
            .filter_map(|&i| {
                Some(NewToken {
                    user: self.items[i].user.as_ref()?,
                    digest: self.tokens[i].as_ref()?.digest(),
                })
            })
            .collect()
    }

    /// Store the chunk's tokens: the one call both the serial and the parallel run make.
    fn store(
        self,
        store: &mut dyn Store,
        ttl: Duration,
        throttle: Option<Duration>,
        handover: Handover,
        actor: &str,
    ) -> Result<Stored> {
        let issued = store.issue_tokens(&self.batch(), self.now, ttl, throttle, handover, actor)?;
        Ok((self, issued))
    }
}

/// A chunk and the store's answer for it.
type Stored = (Prepared, Vec<Issued>);

/// Connections that store tokens at once in a parallel `--all` (besides the one that reads).
const WORKERS: usize = 2;
/// The sequence number of an answer that is no chunk's (a worker that could not connect).
const NO_CHUNK: u64 = u64::MAX;

/// The answers of a parallel `--all`, printed in the order of their chunks.
#[derive(Default)]
struct InOrder {
    /// Answers waiting for those before them; None for a chunk the store refused.
    ready: std::collections::BTreeMap<u64, Option<Stored>>,
    /// The next chunk to print.
    next: u64,
    /// The first error a worker met.
    failure: Option<anyhow::Error>,
}

impl InOrder {
    fn take(&mut self, run: &mut Run<'_>, (seq, result): (u64, Result<Stored>)) -> Result<()> {
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
                run.finish(prepared, issued)?;
            }
            self.next += 1;
        }
        Ok(())
    }

    /// After a failure, what is left (past a chunk that never got an answer), in order.
    fn rest(&mut self, run: &mut Run<'_>) -> Result<()> {
        for (_, answer) in std::mem::take(&mut self.ready) {
            if let Some((prepared, issued)) = answer {
                run.finish(prepared, issued)?;
            }
        }
        Ok(())
    }
}

pub fn run(ctx: &Ctx, args: RequestArgs) -> Result<Exit> {
    let config = ctx.config()?;
    let ttl = args.ttl.unwrap_or(config.token_ttl);
    if ttl < crate::config::MIN_TTL || ttl > crate::config::MAX_TTL {
        return Err(fail(Exit::Usage, "--ttl must be between 1m and 30days"));
    }
    let base_url = config.base_url.clone().ok_or_else(|| {
        fail(
            Exit::Config,
            format!(
                "{}: base_url is not set; set it to the page that accepts the token, e.g. base_url = \"https://accounts.example.com/reset_password\"",
                config.source
            ),
        )
    })?;
    let access = if args.dry_run {
        Access::Read
    } else {
        Access::Write
    };
    let mut store = crate::store::open(&config, access)?;
    if !args.dry_run && !args.no_email && !args.yes {
        confirm(&args, store.as_mut())?;
    }
    let mailer = if args.no_email || args.dry_run {
        None
    } else {
        let mut m = Mailer::new(&config)?;
        m.set_locale_override(args.locale.as_deref());
        Some(m)
    };
    if let Some(m) = &mailer {
        ctx.debug(format!("mail goes to {}", m.describe()));
    }
    let bulk = args.all || args.from_file.is_some() || args.emails.len() > 5;
    if bulk && !args.dry_run {
        store.hint(Hint::BulkStart)?;
    }
    let mut run = Run {
        ctx,
        config: &config,
        store: store.as_mut(),
        mailer: mailer.as_ref(),
        base_url,
        ttl,
        print_link: args.print_link || args.no_email,
        json: args.json,
        force: args.force,
        rng: SystemRandom::new(),
        worst: Exit::Ok,
        counts: Counts::default(),
        // A few addresses need no bar; bulk runs get theirs below, once they know their size.
        bar: indicatif::ProgressBar::hidden(),
        bulk,
        // --all walks distinct rows; typed and listed addresses may name a user twice.
        seen: (!args.all).then(std::collections::HashSet::new),
        out: Vec::with_capacity(64 * 1024),
        deferred: Vec::new(),
        duplicates: 0,
        dry_run: args.dry_run,
        connections: config.mail.smtp.connections as usize,
        shown: std::collections::HashMap::new(),
        hidden: 0,
    };

    if args.all {
        let total = run.store.count_users()?;
        run.bar = ui::progress(Some(total), ctx.verbosity, "requesting");
        if run.mailer.is_none() && !run.dry_run && run.store.parallel_bulk() {
            run.all_in_parallel()?;
        } else {
            let mut after: Option<UserId> = None;
            loop {
                let users = run.store.users_after(after.as_ref(), CHUNK)?;
                let Some(last) = users.last() else { break };
                after = Some(last.id.clone());
                let items = run.items_of(users);
                run.chunk(items)?;
            }
        }
    } else if let Some(path) = &args.from_file {
        run.bar = ui::progress(None, ctx.verbosity, "requesting");
        // Addresses on the command line are served as well as the file's, never dropped.
        if !args.emails.is_empty() {
            let items = run.resolve(args.emails.clone())?;
            run.chunk(items)?;
        }
        let reader: Box<dyn BufRead> = if path.as_os_str() == "-" {
            Box::new(std::io::stdin().lock())
        } else {
            let f = std::fs::File::open(path).map_err(|e| {
                fail(
                    if e.kind() == std::io::ErrorKind::PermissionDenied {
                        Exit::NoPerm
                    } else {
                        Exit::DataErr
                    },
                    format!("cannot read --from-file {}: {e}", path.display()),
                )
            })?;
            Box::new(std::io::BufReader::new(f))
        };
        let mut lines = BoundedLines {
            inner: reader,
            line_no: 0,
        };
        let mut pending = Vec::with_capacity(CHUNK);
        while let Some(line) = lines.next_line()? {
            let trimmed = line.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            pending.push(trimmed.to_owned());
            if pending.len() == CHUNK {
                let items = run.resolve(std::mem::take(&mut pending))?;
                run.chunk(items)?;
            }
        }
        let items = run.resolve(pending)?;
        run.chunk(items)?;
    } else {
        let items = run.resolve(args.emails.clone())?;
        run.chunk(items)?;
    }
    // Addresses the users table's index could not answer: one pass over the table for all.
    let deferred = std::mem::take(&mut run.deferred);
    for part in deferred.chunks(CHUNK) {
        let items = run.resolve_by_scan(part)?;
        run.chunk(items)?;
    }
    run.bar.finish_and_clear();
    if run.duplicates > 0 {
        ctx.note(format!(
            "{} skipped: each named a user already served in this run, who gets one link{}",
            ui::count(run.duplicates, "duplicate line", "duplicate lines"),
            if ctx.verbosity < ui::Verbosity::Verbose {
                " (-v lists them)"
            } else {
                ""
            }
        ));
    }
    if bulk && !args.dry_run {
        run.store.hint(Hint::BulkEnd)?;
    }
    let configured = config.mail.smtp.connections as usize;
    if run.mailer.is_some()
        && config.mail.transport == TransportKind::Smtp
        && run.connections < configured
    {
        ctx.note(format!(
            "the relay accepted {} of {configured}: it limits connections per client; set [mail.smtp] connections = {} to match",
            ui::count(run.connections as u64, "connection", "connections"),
            run.connections
        ));
    }
    if run.bulk || run.counts.total() > 1 {
        let first = if args.dry_run {
            "would_send"
        } else if args.no_email {
            "created"
        } else {
            "sent"
        };
        ctx.note(
            run.counts
                .summary(first, config.request_throttle, run.hidden),
        );
    }
    Ok(run.worst)
}

/// Above this many addresses from a file, a run on a terminal asks first.
const ASK_ABOVE: u64 = 100;

/// On a terminal, a run that mails every user (or more than [`ASK_ABOVE`] addresses from a
/// file) asks first. Without a terminal (cron, scripts) it goes on, as it always has.
fn confirm(args: &RequestArgs, store: &mut dyn Store) -> Result<()> {
    use std::io::IsTerminal;
    if !std::io::stdin().is_terminal() || !std::io::stderr().is_terminal() {
        return Ok(());
    }
    let n = if args.all {
        store.count_users()?
    } else if let Some(path) = args.from_file.as_ref().filter(|p| p.as_os_str() != "-") {
        let f = std::fs::File::open(path).map_err(|e| {
            fail(
                Exit::DataErr,
                format!("cannot read --from-file {}: {e}", path.display()),
            )
        })?;
        let mut lines = BoundedLines {
            inner: Box::new(std::io::BufReader::new(f)),
            line_no: 0,
        };
        let mut n = args.emails.len() as u64;
        while let Some(line) = lines.next_line()? {
            let t = line.trim();
            if !t.is_empty() && !t.starts_with('#') {
                n += 1;
            }
        }
        if n <= ASK_ABOVE {
            return Ok(());
        }
        n
    } else {
        return Ok(());
    };
    let question = format!(
        "Send reset links to {}? [y/N] ",
        ui::count(n, "user", "users")
    );
    {
        use std::io::Write;
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(question.as_bytes());
        let _ = err.flush();
    }
    let mut answer = String::new();
    let read = std::io::stdin().read_line(&mut answer)?;
    if read == 0 {
        eprintln!();
    }
    match answer.trim().to_ascii_lowercase().as_str() {
        "y" | "yes" => Ok(()),
        _ => Err(fail(
            Exit::Interrupted,
            "nothing was sent (answer y to send, or pass --yes)",
        )),
    }
}

#[derive(Default)]
struct Counts {
    sent: u64,
    created: u64,
    failed: u64,
    throttled: u64,
    unknown: u64,
    invalid: u64,
    would_send: u64,
}

impl Counts {
    fn total(&self) -> u64 {
        self.sent
            + self.created
            + self.failed
            + self.throttled
            + self.unknown
            + self.invalid
            + self.would_send
    }

    /// One line for the whole run, each status once with its count, in the words of the
    /// per-user lines, `--json` and the audit trail.
    fn summary(&self, first: &str, throttle: Duration, hidden: u64) -> String {
        let throttle = humantime::format_duration(throttle);
        let mut parts = vec![format!(
            "{} {first}",
            ui::grouped(match first {
                "created" => self.created,
                "would_send" => self.would_send,
                _ => self.sent,
            })
        )];
        for (n, what, why) in [
            (
                self.throttled,
                "throttled",
                format!(" (requested less than {throttle} ago; --force to override)"),
            ),
            (self.unknown, "unknown_user", String::new()),
            (self.invalid, "invalid", String::new()),
            (self.failed, "failed", String::new()),
        ] {
            if n > 0 {
                parts.push(format!("{} {what}{why}", ui::grouped(n)));
            }
        }
        let more = if hidden > 0 {
            format!(
                "; {} not shown (-v lists every user)",
                ui::count(hidden, "line", "lines")
            )
        } else {
            String::new()
        };
        format!(
            "requested {}: {}{more}",
            ui::grouped(self.total()),
            parts.join(", ")
        )
    }
}

/// In a bulk run, how many lines of each failing status are shown before the rest is only
/// counted (every one with -v; all of them with --json).
const SHOWN_PER_STATUS: u64 = 10;

struct Run<'a> {
    ctx: &'a Ctx,
    config: &'a Config,
    store: &'a mut dyn Store,
    mailer: Option<&'a Mailer>,
    base_url: String,
    ttl: Duration,
    print_link: bool,
    json: bool,
    force: bool,
    rng: SystemRandom,
    worst: Exit,
    counts: Counts,
    bar: indicatif::ProgressBar,
    bulk: bool,
    seen: Option<std::collections::HashSet<UserId>>,
    /// stdout for the current chunk: written once per chunk, not once per line.
    out: Vec<u8>,
    /// Valid addresses the index did not answer, for the scan at the end.
    deferred: Vec<String>,
    /// Addresses that named a user already served in this run.
    duplicates: u64,
    /// `--dry-run`: look up, report, touch nothing.
    dry_run: bool,
    /// SMTP connections to send over: `[mail.smtp] connections`, less those the relay refused.
    connections: usize,
    /// Per-user lines of failing statuses shown so far in a bulk run (by status), and those
    /// left out.
    shown: std::collections::HashMap<&'static str, u64>,
    hidden: u64,
}

impl Drop for Run<'_> {
    /// However the run ends (an error included), no stale bar is left on the terminal.
    fn drop(&mut self) {
        self.bar.finish_and_clear();
    }
}

impl Run<'_> {
    /// Validate and look up typed addresses through the users table's index. Addresses it
    /// cannot answer wait in `deferred` for one scan at the end of the run.
    fn resolve(&mut self, inputs: Vec<String>) -> Result<Vec<Item>> {
        let mut items = Vec::with_capacity(inputs.len());
        for input in inputs {
            let addr = match crate::email::validate(&input) {
                Err(e) => {
                    items.push(Item {
                        outcome: Some(Outcome::invalid(input.clone(), render(&e))),
                        user: None,
                    });
                    continue;
                }
                Ok(addr) => addr,
            };
            match lookup::by_index(&mut *self.store, addr)? {
                Some(found) => {
                    if let Some(item) = self.item(addr, found) {
                        items.push(item);
                    }
                }
                None => self.deferred.push(addr.to_owned()),
            }
        }
        Ok(items)
    }

    /// Look addresses up by folding every stored address, in one pass.
    fn resolve_by_scan(&mut self, addrs: &[String]) -> Result<Vec<Item>> {
        let found = lookup::by_scan(&mut *self.store, addrs)?;
        Ok(addrs
            .iter()
            .zip(found)
            .filter_map(|(addr, found)| self.item(addr, found))
            .collect())
    }

    /// The item for a looked-up address; None for a user already served in this run.
    fn item(&mut self, addr: &str, found: Found) -> Option<Item> {
        Some(match found {
            Found::User(user) => {
                if self
                    .seen
                    .as_mut()
                    .is_some_and(|seen| !seen.insert(user.id.clone()))
                {
                    // One link per user and run: a second would revoke the first. Counted, and
                    // summed up in one line at the end; each one under -v.
                    self.duplicates += 1;
                    self.ctx.debug(format!(
                        "{} is listed more than once; it gets one link",
                        ui::escape(addr)
                    ));
                    return None;
                }
                Item {
                    user: Some(user),
                    outcome: None,
                }
            }
            Found::Unknown => Item {
                outcome: Some(Outcome::unknown(addr)),
                user: None,
            },
            Found::Ambiguous => Item {
                outcome: Some(Outcome::invalid(
                    addr.to_owned(),
                    crate::error::render(&Found::ambiguous_error(addr, &self.config.users.table)),
                )),
                user: None,
            },
        })
    }

    /// Store tokens for a chunk, send its mail, print its results.
    fn chunk(&mut self, items: Vec<Item>) -> Result<()> {
        if items.is_empty() {
            return Ok(());
        }
        if self.dry_run {
            for item in items {
                let outcome = match (item.outcome, item.user) {
                    (Some(o), _) => o,
                    (None, Some(user)) => Outcome {
                        email: user.email,
                        status: Status::WouldSend,
                        exit: Exit::Ok,
                        expires_at: None,
                        link: None,
                        error: None,
                    },
                    (None, None) => continue,
                };
                self.report(outcome)?;
            }
            return self.flush();
        }
        let (throttle, handover) = (self.throttle(), self.handover());
        let (prepared, issued) = self.prepare(items)?.store(
            self.store,
            self.ttl,
            throttle,
            handover,
            self.ctx.actor(),
        )?;
        self.finish(prepared, issued)
    }

    /// --all with printed links on a server that takes concurrent writers: the chunks' tokens
    /// are stored over [`WORKERS`] more connections at once, while this thread reads the next
    /// chunk and prints the finished ones in order. The server's work per chunk (the throttle,
    /// the token and audit rows) is most of a bulk run, and one connection keeps one server
    /// process busy.
    fn all_in_parallel(&mut self) -> Result<()> {
        let (ttl, throttle, actor) = (self.ttl, self.throttle(), self.ctx.actor().to_owned());
        let config = self.config;
        std::thread::scope(|scope| -> Result<()> {
            let (done_tx, done_rx) = std::sync::mpsc::channel::<(u64, Result<Stored>)>();
            let mut jobs = Vec::with_capacity(WORKERS);
            for _ in 0..WORKERS {
                let (job_tx, job_rx) = std::sync::mpsc::sync_channel::<(u64, Prepared)>(1);
                let done_tx = done_tx.clone();
                let actor = actor.as_str();
                scope.spawn(move || {
                    let mut store = match crate::store::open(config, Access::Write) {
                        Ok(s) => s,
                        Err(e) => {
                            let _ = done_tx.send((NO_CHUNK, Err(e)));
                            return;
                        }
                    };
                    for (seq, prepared) in job_rx {
                        let result =
                            prepared.store(store.as_mut(), ttl, throttle, Handover::Printed, actor);
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
            // Read, prepare and hand out chunks until the users run out or anything fails.
            let reading = (|| -> Result<()> {
                let mut after: Option<UserId> = None;
                let mut sent = 0u64;
                while order.failure.is_none() {
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
                        order.take(self, done)?;
                    }
                }
                Ok(())
            })();
            drop(jobs);
            // Every chunk that was stored gets its links printed, even after a failure: a
            // token whose link nobody saw would only hold up its user's next request.
            let mut printing = Ok(());
            for done in done_rx {
                if printing.is_ok() {
                    printing = order.take(self, done);
                }
            }
            if printing.is_ok() {
                printing = order.rest(self);
            }
            match (order.failure, reading, printing) {
                (Some(e), _, _) | (None, Err(e), _) | (None, Ok(()), Err(e)) => Err(e),
                (None, Ok(()), Ok(())) => Ok(()),
            }
        })
    }

    fn throttle(&self) -> Option<Duration> {
        if self.force {
            None
        } else {
            Some(self.config.request_throttle)
        }
    }

    fn handover(&self) -> Handover {
        if self.mailer.is_some() {
            Handover::Mailed
        } else {
            Handover::Printed
        }
    }

    /// `--all`'s users as items; a row with no address cannot be mailed, and its link would be
    /// born revoked: it is reported instead.
    fn items_of(&self, users: Vec<User>) -> Vec<Item> {
        users
            .into_iter()
            .map(|u| {
                if u.email.trim().is_empty() {
                    Item {
                        outcome: Some(Outcome::invalid(
                            String::new(),
                            format!(
                                "user {} has no address in {}.{}; skipped",
                                ui::escape(&u.id.to_string()),
                                self.config.users.table,
                                self.config.users.email_column
                            ),
                        )),
                        user: None,
                    }
                } else {
                    Item {
                        user: Some(u),
                        outcome: None,
                    }
                }
            })
            .collect()
    }

    /// Fresh tokens for the chunk's users.
    fn prepare(&mut self, items: Vec<Item>) -> Result<Prepared> {
        let now = ui::now();
        let wanted = items
            .iter()
            .filter(|i| i.user.is_some() && i.outcome.is_none())
            .count();
        let mut fresh = Token::generate_many(&self.rng, wanted)?.into_iter();
        let mut tokens: Vec<Option<Token>> = Vec::with_capacity(items.len());
        for item in &items {
            match (&item.user, &item.outcome) {
                (Some(_), None) => tokens.push(fresh.next()),
                _ => tokens.push(None),
            }
        }
        let batch_idx = items
            .iter()
            .zip(&tokens)
            .enumerate()
            .filter(|(_, (item, tok))| item.user.is_some() && tok.is_some())
            .map(|(i, _)| i)
            .collect();
        Ok(Prepared {
            items,
            tokens,
            batch_idx,
            now,
        })
    }

    /// Links and messages for a chunk the store has answered: send, report, print.
    fn finish(&mut self, prepared: Prepared, issued: Vec<Issued>) -> Result<()> {
        let Prepared {
            mut items,
            mut tokens,
            batch_idx,
            now,
        } = prepared;
        // Whether each created link's user had older open links, to revoke on delivery.
        let mut had_open = vec![false; items.len()];

        // Build links and messages for the created tokens.
        let mut to_send: Vec<(usize, lettre::Message)> = Vec::new();
        for (&i, result) in batch_idx.iter().zip(issued) {
            let user = items[i]
                .user
                .clone()
                .context("issued token without a user")?;
            match result {
                Issued::Throttled { retry_at } => {
                    items[i].outcome = Some(Outcome {
                        email: user.email.clone(),
                        status: Status::Throttled,
                        exit: Exit::TempFail,
                        expires_at: None,
                        link: None,
                        error: Some(format!(
                            "a link was requested for {} less than {} ago; try again after {} or use --force",
                            ui::escape(&user.email),
                            humantime::format_duration(self.config.request_throttle),
                            ui::rfc3339(retry_at)
                        )),
                    });
                }
                Issued::Created {
                    expires_at,
                    id,
                    had_open: older,
                } => {
                    had_open[i] = older;
                    let tok = tokens[i].take().context("missing token")?.with_id(id)?;
                    let link = token::link(&self.base_url, &tok);
                    tokens[i] = Some(tok);
                    let mut outcome = Outcome {
                        email: user.email.clone(),
                        status: if self.mailer.is_some() {
                            Status::Sent
                        } else {
                            Status::Created
                        },
                        exit: Exit::Ok,
                        expires_at: Some(expires_at),
                        link: None,
                        error: None,
                    };
                    if let Some(m) = self.mailer {
                        match m.reset_message_to(&user.recipient(), &link, expires_at, now) {
                            Ok(msg) => to_send.push((i, msg)),
                            Err(e) => {
                                // No message, so no one may hold this link: revoke it.
                                let why = render(&e);
                                self.store.revoke_undelivered(
                                    id,
                                    &user,
                                    &why,
                                    now,
                                    self.ctx.actor(),
                                )?;
                                outcome.status = Status::Failed;
                                outcome.exit = crate::error::exit_of(&e);
                                outcome.error = Some(why);
                            }
                        }
                    }
                    if self.print_link && outcome.exit == Exit::Ok {
                        outcome.link = Some(link);
                    }
                    items[i].outcome = Some(outcome);
                }
            }
        }

        // Send, in parallel over the SMTP pool when there is one.
        if let Some(m) = self.mailer {
            let workers = match m.transport {
                crate::mail::Transport::Smtp { .. }
                    if self.config.mail.transport == TransportKind::Smtp =>
                {
                    self.connections
                }
                _ => 1,
            };
            let (results, refused) = send_all(m, &to_send, workers);
            // The pool stays this size for the rest of the run.
            self.connections = workers.saturating_sub(refused).max(1);
            let mut delivered_at = Vec::with_capacity(to_send.len());
            for ((i, _), res) in to_send.iter().zip(results) {
                if res.is_ok() {
                    delivered_at.push(*i);
                }
                if let Err(e) = res {
                    let user = items[*i].user.clone().context("sent without a user")?;
                    let tok = tokens[*i].as_ref().context("missing token")?;
                    // A link that did not reach its owner must not stay usable.
                    self.store.revoke_undelivered(
                        tok.id(),
                        &user,
                        &e.message,
                        ui::now(),
                        self.ctx.actor(),
                    )?;
                    if let Some(o) = items[*i].outcome.as_mut() {
                        o.status = Status::Failed;
                        o.exit = e.exit;
                        o.error = Some(format!(
                            "mail to {} was not delivered: {}",
                            ui::escape(&user.email),
                            e.message
                        ));
                        o.link = None;
                    }
                }
            }
            let delivered: Vec<Delivered<'_>> = delivered_at
                .iter()
                .filter_map(|&i| {
                    Some(Delivered {
                        user: items[i].user.as_ref()?,
                        token_id: tokens[i].as_ref()?.id(),
                        had_open: had_open[i],
                    })
                })
                .collect();
            // Only now do the users' older links stop working, with the `sent` audit rows.
            self.store
                .confirm_delivered(&delivered, ui::now(), self.ctx.actor())?;
        }
        drop(tokens);

        for item in items {
            let Some(o) = item.outcome else { continue };
            self.report(o)?;
        }
        self.flush()
    }

    /// Write the chunk's stdout, then wipe the buffer: it held links.
    fn flush(&mut self) -> Result<()> {
        use std::io::Write;
        use zeroize::Zeroize;
        let res = self.bar.suspend(|| {
            let mut o = std::io::stdout().lock();
            o.write_all(&self.out).and_then(|_| o.flush())
        });
        self.out.zeroize();
        res?;
        Ok(())
    }

    fn report(&mut self, o: Outcome) -> Result<()> {
        self.worst = self.worst.worst(o.exit);
        match o.status {
            Status::Sent => self.counts.sent += 1,
            Status::Created => self.counts.created += 1,
            Status::Throttled => self.counts.throttled += 1,
            Status::UnknownUser => self.counts.unknown += 1,
            Status::Invalid => self.counts.invalid += 1,
            Status::Failed => self.counts.failed += 1,
            Status::WouldSend => self.counts.would_send += 1,
        }
        self.bar.inc(1);
        if self.json {
            let mut obj = serde_json::json!({ "email": o.email, "status": o.status.as_str() });
            if let Some(t) = o.expires_at {
                obj["expires_at"] = serde_json::json!(ui::rfc3339(t));
            }
            if let Some(l) = &o.link {
                obj["link"] = serde_json::json!(l.as_str());
            }
            if let Some(e) = &o.error {
                obj["error"] = serde_json::json!(e);
            }
            self.out.extend_from_slice(ui::json(&obj).as_bytes());
            self.out.push(b'\n');
            return Ok(());
        }
        let email = ui::escape(&o.email);
        let line = match (o.status, o.expires_at, &o.error) {
            (Status::Sent, Some(t), _) => {
                format!("sent: reset link for {email} (expires {})", ui::rfc3339(t))
            }
            (Status::WouldSend, _, _) => format!("would_send: reset link for {email}"),
            (Status::Created, Some(t), _) => format!(
                "created: reset link for {email} (expires {})",
                ui::rfc3339(t)
            ),
            (status, _, Some(err)) => format!("{}: {err}", status.as_str()),
            (status, _, None) => format!("{}: {email}", status.as_str()),
        };
        // stdout carries only the links with --print-link/--no-email, one per line, so scripts
        // can use them as they are.
        if self.print_link
            && let Some(l) = &o.link
        {
            self.out.extend_from_slice(l.as_bytes());
            self.out.push(b'\n');
        }
        // The rule for per-user lines: every one for a few addresses or with -v; in a bulk run,
        // the first few of each failing status, the rest counted in the summary; never the
        // successes or the throttled (--json gives every user).
        let verbose = self.ctx.verbosity == ui::Verbosity::Verbose;
        let show = if !self.bulk || verbose {
            true
        } else if o.exit == Exit::Ok || o.status == Status::Throttled {
            false
        } else {
            let n = self.shown.entry(o.status.as_str()).or_insert(0);
            *n += 1;
            *n <= SHOWN_PER_STATUS
        };
        if !show {
            if o.exit != Exit::Ok {
                self.hidden += 1;
            }
            return Ok(());
        }
        if o.exit == Exit::Ok && !self.print_link {
            self.out.extend_from_slice(line.as_bytes());
            self.out.push(b'\n');
        } else {
            self.bar.suspend(|| eprintln!("{line}"));
        }
        Ok(())
    }
}

/// Send messages over up to `workers` connections; results in the order of `msgs`, and how
/// many connections the relay refused (a per-client connection limit).
///
/// A connection the relay refuses while others are still sending is retired, and its message
/// goes back in the queue for the live ones: a relay that takes two connections of four
/// delivers everything over two. Only the last connection's failures count towards the
/// "the whole server is failing" stop, so that rule applies when no connection works.
fn send_all(
    m: &Mailer,
    msgs: &[(usize, lettre::Message)],
    workers: usize,
) -> (Vec<Result<(), SendError>>, usize) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    if workers <= 1 || msgs.len() <= 1 {
        return (msgs.iter().map(|(_, msg)| m.send(msg)).collect(), 0);
    }
    let queue = std::sync::Mutex::new((0..msgs.len()).collect::<std::collections::VecDeque<_>>());
    let active = AtomicUsize::new(workers.min(msgs.len()));
    let refused = AtomicUsize::new(0);
    let results: Vec<std::sync::Mutex<Option<Result<(), SendError>>>> =
        msgs.iter().map(|_| std::sync::Mutex::new(None)).collect();
    std::thread::scope(|s| {
        for _ in 0..workers.min(msgs.len()) {
            s.spawn(|| {
                while let Some(i) = queue.lock().ok().and_then(|mut q| q.pop_front()) {
                    // The last connection standing reports its failures like any send.
                    let may_shrink = active.load(Ordering::SeqCst) > 1;
                    let r = match m.send_or_refused(&msgs[i].1, may_shrink) {
                        Ok(crate::mail::Sent::Delivered) => Ok(()),
                        Ok(crate::mail::Sent::RefusedAtConnect(e)) => {
                            // Retire this connection unless it is the last one.
                            let retired = active
                                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                                    (n > 1).then(|| n - 1)
                                })
                                .is_ok();
                            if retired {
                                refused.fetch_add(1, Ordering::SeqCst);
                                if let Ok(mut q) = queue.lock() {
                                    q.push_front(i);
                                }
                                break;
                            }
                            Err(e)
                        }
                        Err(e) => Err(e),
                    };
                    if let Ok(mut slot) = results[i].lock() {
                        *slot = Some(r);
                    }
                }
            });
        }
    });
    let results = results
        .into_iter()
        .map(|slot| {
            slot.into_inner().ok().flatten().unwrap_or_else(|| {
                Err(SendError {
                    exit: Exit::Software,
                    message: "a sending thread failed".into(),
                })
            })
        })
        .collect();
    (results, refused.load(Ordering::SeqCst))
}

/// Lines of at most MAX_LINE bytes: a file with a 10 MB line costs no more memory.
struct BoundedLines {
    inner: Box<dyn BufRead>,
    line_no: u64,
}

impl BoundedLines {
    fn next_line(&mut self) -> Result<Option<String>> {
        use std::io::Read;
        let mut buf = Vec::with_capacity(64);
        let n = (&mut self.inner)
            .take(MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut buf)
            .context("reading --from-file")?;
        if n == 0 {
            return Ok(None);
        }
        self.line_no += 1;
        if buf.last() == Some(&b'\n') {
            buf.pop();
        } else if buf.len() > MAX_LINE {
            return Err(fail(
                Exit::DataErr,
                format!(
                    "--from-file line {} is longer than {MAX_LINE} bytes; expected one address per line",
                    self.line_no
                ),
            ));
        }
        String::from_utf8(buf).map(Some).map_err(|_| {
            fail(
                Exit::DataErr,
                format!("--from-file line {} is not UTF-8 text", self.line_no),
            )
        })
    }
}
