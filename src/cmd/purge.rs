//! `pwreset purge-expired`: delete dead tokens in short batches.

use crate::Ctx;
use crate::cli::PurgeArgs;
use crate::error::Exit;
use crate::store::{Access, AuditAction, AuditEvent, AuditOutcome, Hint, PurgeCounts};
use crate::ui;
use anyhow::Result;
use std::time::Instant;

pub fn run(ctx: &Ctx, args: PurgeArgs) -> Result<Exit> {
    let config = ctx.config()?;
    let access = if args.dry_run {
        Access::Read
    } else {
        Access::Write
    };
    let mut store = crate::store::open(&config, access)?;
    let now = ui::now();
    let cutoff = now.saturating_sub(i64::try_from(args.older_than.as_secs()).unwrap_or(i64::MAX));
    let start = Instant::now();
    let counts = if args.dry_run {
        store.count_dead(cutoff)?
    } else {
        let bar = if ui::stderr_is_fancy() && ctx.verbosity != ui::Verbosity::Quiet {
            ui::progress(
                Some(store.count_dead(cutoff)?.total()),
                ctx.verbosity,
                "purging",
            )
        } else {
            indicatif::ProgressBar::hidden()
        };
        store.hint(Hint::BulkStart)?;
        let batch_size = args.batch_size.unwrap_or_else(|| store.purge_batch_size());
        let mut total = PurgeCounts::default();
        loop {
            // Each batch is its own short write transaction, so verify, request and reset from
            // other processes get the lock between batches.
            let batch = store.purge_batch(cutoff, batch_size)?;
            total.add(batch);
            bar.inc(batch.total());
            if batch.total() < u64::from(batch_size) {
                break;
            }
        }
        bar.finish_and_clear();
        store.hint(Hint::BulkEnd)?;
        // A run that died (kill -9, a crash) leaves links it never handed over; the hourly
        // purge withdraws them even when no request runs. Runs are kept as long as a link of
        // theirs may live, for a stopped request to be continued.
        let me = crate::request::lease::Process::this();
        for (run, released) in crate::request::lease::reap(store.as_mut(), &me, now, ctx.actor())? {
            ctx.debug(format!(
                "run {} ({}, pid {}) had ended without finishing: {} withdrawn",
                run.id,
                run.command,
                run.pid,
                ui::count(released, "link", "links")
            ));
        }
        store.purge_runs(now.saturating_sub(crate::config::MAX_TTL.as_secs() as i64))?;
        // The web limits' windows that are over count for nothing; not part of the tokens'
        // counts.
        let limits = store.purge_limits(now)?;
        ctx.debug(format!(
            "{} of web limits whose window was over deleted",
            ui::count(limits, "row", "rows")
        ));
        let detail = format!(
            "purged {} ({} expired, {} used, {} revoked) in {:.1}s",
            ui::count(total.total(), "token", "tokens"),
            ui::grouped(total.expired),
            ui::grouped(total.used),
            ui::grouped(total.revoked),
            start.elapsed().as_secs_f64(),
        );
        store.record(&AuditEvent {
            at: ui::now(),
            actor: ctx.actor(),
            action: AuditAction::Purge,
            user_id: None,
            email: None,
            outcome: AuditOutcome::Ok,
            detail: Some(&detail),
        })?;
        total
    };
    let elapsed = start.elapsed();
    if args.json {
        super::out(
            &serde_json::json!({
                "purged": counts.total(),
                "expired": counts.expired,
                "used": counts.used,
                "revoked": counts.revoked,
                "dry_run": args.dry_run,
            })
            .to_string(),
        )?;
    } else if ctx.verbosity != ui::Verbosity::Quiet {
        super::out(&format!(
            "{} {}: {} expired, {} used, {} revoked in {:.1}s",
            if args.dry_run {
                "would purge"
            } else {
                "purged"
            },
            ui::count(counts.total(), "token", "tokens"),
            ui::grouped(counts.expired),
            ui::grouped(counts.used),
            ui::grouped(counts.revoked),
            elapsed.as_secs_f64()
        ))?;
    }
    Ok(Exit::Ok)
}
