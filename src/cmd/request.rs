//! `pwreset request`: the terminal's front end of the request service ([`crate::request`]):
//! reading the addresses, the confirmation prompt, the progress bar, the per-user lines,
//! `--json`, the summary, and stopping on a signal.

use crate::Ctx;
use crate::cli::RequestArgs;
use crate::config::TransportKind;
use crate::error::{Exit, fail};
use crate::mail::Mailer;
use crate::request::{self, Delivery, Finish, Outcome, Report, Service, Status};
use crate::signals::{Signal, Stop};
use crate::store::{Access, Hint, Store};
use crate::ui;
use anyhow::{Context, Result};
use std::io::BufRead;
use std::sync::Arc;
use std::time::Duration;

/// Longest line read from --from-file; an address is at most 254 characters.
const MAX_LINE: usize = 1024;

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
        confirm(&args, store.as_mut(), config.ldap.is_some())?;
    }
    let mailer = if args.no_email || args.dry_run {
        None
    } else {
        let mut m = Mailer::new(&config)?;
        m.set_locale_override(args.locale.as_deref());
        Some(Arc::new(m))
    };
    if let Some(m) = &mailer {
        ctx.debug(format!("mail goes to {}", m.describe()));
    }
    let job = job(&args)?;
    let delivery = match (&mailer, args.dry_run) {
        (_, true) => Delivery::DryRun,
        (Some(m), false) => Delivery::Mail(Arc::clone(m)),
        (None, false) => Delivery::Print,
    };
    let bulk = args.all || args.from_file.is_some() || args.emails.len() > 5;
    if bulk && !args.dry_run {
        store.hint(Hint::BulkStart)?;
    }
    // From here on a signal stops the run in good order instead of killing it: the messages
    // in flight finish, every outcome is recorded, what was not sent is withdrawn, and the
    // summary says what happened (the prompt above is still Ctrl-C's to cancel).
    let stop = Stop::on_signals(match delivery {
        Delivery::Mail(_) => "the messages in flight",
        Delivery::Print => "the links being printed",
        Delivery::DryRun => "the addresses being checked",
    })?;
    let mut svc = Service::start(
        store.as_mut(),
        &config,
        request::Options {
            ttl,
            force: args.force,
            delivery,
            base_url,
            locale: None,
            grace: request::GRACE,
        },
        ctx.actor(),
        job.as_deref(),
        !args.all,
    )?;
    for (run, released) in svc.reaped() {
        let note = format!(
            "an earlier pwreset {} (run {}, pid {}, started {}) ended without finishing; {} it had not sent {} withdrawn",
            run.command,
            run.id,
            run.pid,
            ui::rfc3339(run.started_at),
            ui::count(*released, "link", "links"),
            if *released == 1 { "was" } else { "were" },
        );
        if *released > 0 {
            ctx.note(note);
        } else {
            ctx.debug(note);
        }
    }
    if let Some(last) = svc.resuming().first() {
        ctx.note(format!(
            "continuing the same request from {} ({}): users who hold a link it {} are skipped",
            ui::rfc3339(last.started_at),
            match last.outcome.as_deref() {
                Some("stopped") => "stopped by a signal",
                Some("crashed") => "ended without finishing",
                Some("incomplete") => "some users got no link",
                _ => "stopped by an error",
            },
            if mailer.is_some() {
                "mailed"
            } else {
                "printed"
            },
        ));
    }
    let mut term = Terminal {
        ctx,
        json: args.json,
        print_link: args.print_link || args.no_email,
        bulk,
        worst: Exit::Ok,
        counts: Counts::default(),
        // A few addresses need no bar; bulk runs get theirs below, once they know their size.
        bar: indicatif::ProgressBar::hidden(),
        out: Vec::with_capacity(64 * 1024),
        shown: std::collections::HashMap::new(),
        hidden: 0,
        progressed: 0,
    };
    let total = if args.all { svc.count_users()? } else { None };
    let served = serve(&mut svc, &args, total, &stop, &mut term);
    // Whether every input was read (the file to its end), stop or not.
    let read_all = matches!(served, Ok(true));
    let served = served.map(|_| ());
    term.bar.finish_and_clear();
    let how = match (&served, stop.signal()) {
        (_, Some(sig)) => Finish::Stopped(sig),
        (Err(_), None) => Finish::Failed,
        (Ok(()), None) => Finish::Completed,
    };
    let stats = svc.stats().clone();
    let ended = svc.finish(how);
    // What the run released at its end was never reported per user.
    let released = ended.as_ref().copied().unwrap_or(0);
    if stats.duplicates > 0 {
        ctx.note(format!(
            "{} skipped: each named a user already served in this run, who gets one link{}",
            ui::count(stats.duplicates, "duplicate line", "duplicate lines"),
            if ctx.verbosity < ui::Verbosity::Verbose {
                " (-v lists them)"
            } else {
                ""
            }
        ));
    }
    if bulk && !args.dry_run {
        // Best effort: a checkpoint that cannot run now runs later.
        let _ = store.hint(Hint::BulkEnd);
    }
    let configured = config.mail.smtp.connections as usize;
    if let Some(accepted) = stats.connection_limit
        && config.mail.transport == TransportKind::Smtp
        && accepted < configured
    {
        ctx.note(format!(
            "the relay accepted {} of {configured}: it limits connections per client; set [mail.smtp] connections = {accepted} to match",
            ui::count(accepted as u64, "connection", "connections"),
        ));
    }
    let first = if args.dry_run {
        "would_send"
    } else if args.no_email {
        "created"
    } else {
        "sent"
    };
    if let Some(sig) = stop.signal() {
        ctx.note(
            term.counts
                .stopped(sig, first, total, stats.not_sent + released, read_all),
        );
        served?;
        ended?;
        return Ok(sig.exit());
    }
    served?;
    ended?;
    if term.bulk || term.counts.total() > 1 {
        ctx.note(
            term.counts
                .summary(first, config.request_throttle, term.hidden),
        );
    }
    Ok(term.worst)
}

/// Feed the run its users: every row, or the addresses of the command line and the file.
/// Whether it read all the addresses (a stop may come after the last).
fn serve(
    svc: &mut Service<'_>,
    args: &RequestArgs,
    total: Option<u64>,
    stop: &Stop,
    term: &mut Terminal<'_>,
) -> Result<bool> {
    let mut read_all = true;
    if args.all {
        term.bar = ui::progress(total, term.ctx.verbosity, "requesting");
        svc.all(stop, term)?;
        // What --all left is counted from the table's size instead.
        read_all = false;
    } else if let Some(path) = &args.from_file {
        term.bar = ui::progress(None, term.ctx.verbosity, "requesting");
        // Addresses on the command line are served as well as the file's, never dropped.
        if !args.emails.is_empty() {
            svc.addresses(args.emails.clone(), stop, term)?;
        }
        let mut lines = BoundedLines {
            inner: open_list(path)?,
            line_no: 0,
        };
        let mut pending = Vec::with_capacity(request::CHUNK);
        read_all = false;
        while !stop.asked() {
            let Some(line) = lines.next_line()? else {
                read_all = true;
                break;
            };
            let trimmed = line.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            pending.push(trimmed.to_owned());
            if pending.len() == request::CHUNK {
                svc.addresses(std::mem::take(&mut pending), stop, term)?;
            }
        }
        if !stop.asked() {
            svc.addresses(pending, stop, term)?;
        }
    } else {
        svc.addresses(args.emails.clone(), stop, term)?;
    }
    // Addresses the users table's index could not answer: one pass over the table for all.
    svc.deferred(stop, term)?;
    Ok(read_all)
}

/// The file of `--from-file` (`-`: stdin).
fn open_list(path: &std::path::Path) -> Result<Box<dyn BufRead>> {
    if path.as_os_str() == "-" {
        return Ok(Box::new(std::io::stdin().lock()));
    }
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
    Ok(Box::new(std::io::BufReader::new(f)))
}

/// What this command was asked to do, as the key that lets the same command run again after
/// a stop continue it: which users (every one, the addresses given, the file's contents) and
/// whether links are mailed or printed. None for addresses on stdin, which cannot be read
/// twice.
fn job(args: &RequestArgs) -> Result<Option<String>> {
    let mode: &[u8] = if args.no_email { b"print" } else { b"mail" };
    if args.all {
        return Ok(Some(request::job_key(&[b"all", mode])));
    }
    let mut parts: Vec<Vec<u8>> = vec![b"addresses".to_vec(), mode.to_vec()];
    if let Some(path) = &args.from_file {
        if path.as_os_str() == "-" {
            return Ok(None);
        }
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        let mut f = open_list(path)?;
        loop {
            let buf = f
                .fill_buf()
                .with_context(|| format!("reading --from-file {}", path.display()))?;
            if buf.is_empty() {
                break;
            }
            ctx.update(buf);
            let n = buf.len();
            f.consume(n);
        }
        parts.push(b"file".to_vec());
        parts.push(ctx.finish().as_ref().to_vec());
    }
    for e in &args.emails {
        parts.push(e.as_bytes().to_vec());
    }
    let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
    Ok(Some(request::job_key(&refs)))
}

/// Above this many addresses from a file, a run on a terminal asks first.
const ASK_ABOVE: u64 = 100;

/// On a terminal, a run that mails every user (or more than [`ASK_ABOVE`] addresses from a
/// file) asks first. Without a terminal (cron, scripts) it goes on, as it always has.
fn confirm(args: &RequestArgs, store: &mut dyn Store, in_directory: bool) -> Result<()> {
    use std::io::IsTerminal;
    if !std::io::stdin().is_terminal() || !std::io::stderr().is_terminal() {
        return Ok(());
    }
    let n = if args.all && in_directory {
        // A directory is not counted first: that would be a second pass over it.
        let question = "Send reset links to every person in the directory? [y/N] ";
        return ask(question);
    } else if args.all {
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
    ask(&format!(
        "Send reset links to {}? [y/N] ",
        ui::count(n, "user", "users")
    ))
}

/// Ask on the terminal; anything but yes stops the run.
fn ask(question: &str) -> Result<()> {
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
    already: u64,
    failed: u64,
    throttled: u64,
    unknown: u64,
    invalid: u64,
    would_send: u64,
    not_sent: u64,
    locked: u64,
}

impl Counts {
    fn total(&self) -> u64 {
        self.sent
            + self.created
            + self.already
            + self.failed
            + self.throttled
            + self.unknown
            + self.invalid
            + self.would_send
            + self.not_sent
            + self.locked
    }

    fn first(&self, first: &str) -> u64 {
        match first {
            "created" => self.created,
            "would_send" => self.would_send,
            _ => self.sent,
        }
    }

    /// One line for the whole run, each status once with its count, in the words of the
    /// per-user lines, `--json` and the audit trail.
    fn summary(&self, first: &str, throttle: Duration, hidden: u64) -> String {
        let throttle = humantime::format_duration(throttle);
        let mut parts = vec![format!("{} {first}", ui::grouped(self.first(first)))];
        let already = if first == "created" {
            "already_created"
        } else {
            "already_sent"
        };
        for (n, what, why) in [
            (
                self.already,
                already,
                " (by the stopped run this one continued)".to_owned(),
            ),
            (
                self.throttled,
                "throttled",
                format!(" (requested less than {throttle} ago; --force to override)"),
            ),
            (self.unknown, "unknown_user", String::new()),
            (self.invalid, "invalid", String::new()),
            (self.locked, "locked", String::new()),
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
            ui::grouped(self.total() - self.not_sent),
            parts.join(", ")
        )
    }

    /// The summary of a run a signal stopped: what was done, what was not, and how to finish.
    /// `total`: the number of users when known (`--all`); `read_all`: every address was read.
    fn stopped(
        &self,
        sig: Signal,
        first: &str,
        total: Option<u64>,
        withdrawn: u64,
        read_all: bool,
    ) -> String {
        let done = self.total() - self.not_sent;
        let mut parts = vec![format!("{} {first}", ui::grouped(self.first(first)))];
        if self.already > 0 {
            parts.push(format!("{} already had theirs", ui::grouped(self.already)));
        }
        let other = done - self.first(first) - self.already;
        if other > 0 {
            parts.push(format!(
                "{} got no link (throttled, unknown, invalid or failed)",
                ui::grouped(other)
            ));
        }
        let left = match total {
            Some(total) => total.saturating_sub(done).max(withdrawn),
            None => withdrawn,
        };
        if left == 0 && (read_all || total.is_some()) {
            return format!(
                "stopped by {}: {}; nothing was left to send",
                sig.name(),
                parts.join(", ")
            );
        }
        let mut rest = format!("{} not sent", ui::grouped(left));
        if withdrawn > 0 {
            rest.push_str(" (links made for them were withdrawn)");
        }
        if total.is_none() && !read_all {
            rest.push_str(" and the rest of the list was not read");
        }
        format!(
            "stopped by {}: {}; {rest}. Run the same command again to finish: users who hold a link from this run are skipped",
            sig.name(),
            parts.join(", "),
        )
    }
}

/// In a bulk run, how many lines of each failing status are shown before the rest is only
/// counted (every one with -v; all of them with --json).
const SHOWN_PER_STATUS: u64 = 10;

/// The terminal: per-user lines (or JSON) on stdout and stderr, the progress bar, the counts.
struct Terminal<'a> {
    ctx: &'a Ctx,
    json: bool,
    print_link: bool,
    bulk: bool,
    worst: Exit,
    counts: Counts,
    bar: indicatif::ProgressBar,
    /// stdout for the current chunk: written once per chunk, not once per line.
    out: Vec<u8>,
    /// Per-user lines of failing statuses shown so far in a bulk run (by status), and those
    /// left out.
    shown: std::collections::HashMap<&'static str, u64>,
    hidden: u64,
    /// Messages of the current chunk already counted on the bar.
    progressed: u64,
}

impl Drop for Terminal<'_> {
    /// However the run ends (an error included), no stale bar is left on the terminal.
    fn drop(&mut self) {
        self.bar.finish_and_clear();
    }
}

impl Report for Terminal<'_> {
    fn outcomes(&mut self, outcomes: Vec<Outcome>) -> Result<()> {
        let n = outcomes.len() as u64;
        for o in outcomes {
            self.report(o);
        }
        self.bar.inc(n.saturating_sub(self.progressed));
        self.progressed = 0;
        self.flush()
    }

    fn progress(&mut self, n: u64) {
        self.progressed += n;
        self.bar.inc(n);
    }

    fn duplicate(&mut self, addr: &str) {
        self.ctx.debug(format!(
            "{} is listed more than once; it gets one link",
            ui::escape(addr)
        ));
    }
}

impl Terminal<'_> {
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

    fn report(&mut self, o: Outcome) {
        match o.status {
            Status::Sent => self.counts.sent += 1,
            Status::Created => self.counts.created += 1,
            Status::AlreadySent | Status::AlreadyCreated => self.counts.already += 1,
            Status::Throttled => self.counts.throttled += 1,
            Status::UnknownUser => self.counts.unknown += 1,
            Status::Invalid => self.counts.invalid += 1,
            Status::Failed => self.counts.failed += 1,
            Status::WouldSend => self.counts.would_send += 1,
            Status::Locked => self.counts.locked += 1,
            // Not the user's outcome but the run's: the summary counts them.
            Status::NotSent => {
                self.counts.not_sent += 1;
                return;
            }
        }
        self.worst = self.worst.worst(o.exit);
        let link = if self.print_link { o.link } else { None };
        if self.json {
            let mut obj = serde_json::json!({ "email": o.email, "status": o.status.as_str() });
            if let Some(t) = o.expires_at {
                obj["expires_at"] = serde_json::json!(ui::rfc3339(t));
            }
            if let Some(l) = &link {
                obj["link"] = serde_json::json!(l.as_str());
            }
            if let Some(e) = &o.error {
                obj["error"] = serde_json::json!(e);
            }
            self.out.extend_from_slice(ui::json(&obj).as_bytes());
            self.out.push(b'\n');
            return;
        }
        let email = ui::escape(&o.email);
        let line = match (o.status, o.expires_at, &o.error) {
            (Status::Sent, Some(t), _) => {
                format!("sent: reset link for {email} (expires {})", ui::rfc3339(t))
            }
            (Status::AlreadySent | Status::AlreadyCreated, Some(t), _) => format!(
                "{}: {email} holds a link from the stopped run (expires {})",
                o.status.as_str(),
                ui::rfc3339(t)
            ),
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
        if let Some(l) = &link {
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
            return;
        }
        if o.exit == Exit::Ok && !self.print_link {
            self.out.extend_from_slice(line.as_bytes());
            self.out.push(b'\n');
        } else {
            self.bar.suspend(|| eprintln!("{line}"));
        }
    }
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
