//! Runs: the processes that make links, and ending them (which releases what they did not hand
//! over).

use super::{SqliteStore, begin};
use crate::store::{AuditEvent, Run, RunEnd, RunStart, UserId};
use anyhow::Result;
use rusqlite::{OptionalExtension, params};

const COLUMNS: &str = "id, command, job, host, pid, proc_start, actor, started_at, heartbeat_at,
                       ended_at, outcome";

fn run_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Run> {
    Ok(Run {
        id: r.get(0)?,
        command: r.get(1)?,
        job: r.get(2)?,
        host: r.get(3)?,
        pid: r.get(4)?,
        proc_start: r.get(5)?,
        actor: r.get(6)?,
        started_at: r.get(7)?,
        heartbeat_at: r.get(8)?,
        ended_at: r.get(9)?,
        outcome: r.get(10)?,
    })
}

pub(super) fn begin_run(s: &mut SqliteStore, run: &RunStart<'_>) -> Result<i64> {
    let tx = begin(&mut s.conn, &s.ctx)?;
    tx.execute(
        "INSERT INTO pwreset_runs (command, job, host, pid, proc_start, actor, started_at,
                                   heartbeat_at, token_floor)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7,
                 coalesce((SELECT max(id) FROM pwreset_tokens), 0))",
        params![
            run.command,
            run.job,
            run.host,
            run.pid,
            run.proc_start,
            run.actor,
            run.now
        ],
    )
    .map_err(|e| s.ctx.err(e))?;
    let id = tx.last_insert_rowid();
    tx.commit().map_err(|e| s.ctx.err(e))?;
    Ok(id)
}

pub(super) fn heartbeat(s: &mut SqliteStore, run_id: i64, now: i64) -> Result<()> {
    s.conn
        .execute(
            "UPDATE pwreset_runs SET heartbeat_at = max(heartbeat_at, ?2) WHERE id = ?1",
            params![run_id, now],
        )
        .map_err(|e| s.ctx.err(e))?;
    Ok(())
}

pub(super) fn open_runs(s: &SqliteStore) -> Result<Vec<Run>> {
    let mut stmt = s
        .conn
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM pwreset_runs WHERE ended_at IS NULL ORDER BY id"
        ))
        .map_err(|e| s.ctx.err(e))?;
    let rows = stmt
        .query_map([], run_from_row)
        .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>());
    rows.map_err(|e| s.ctx.err(e))
}

pub(super) fn end_run(
    s: &mut SqliteStore,
    run_id: i64,
    outcome: RunEnd,
    why: &str,
    now: i64,
    actor: &str,
) -> Result<u64> {
    let tx = begin(&mut s.conn, &s.ctx)?;
    let run = || -> rusqlite::Result<u64> {
        let Some((floor, printed)) = tx
            .query_row(
                "SELECT token_floor, printed_upto FROM pwreset_runs
                  WHERE id = ?1 AND ended_at IS NULL",
                [run_id],
                |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)),
            )
            .optional()?
        else {
            return Ok(0);
        };
        // The run's tokens all come after its floor: a walk of the key from there, not a scan.
        let released: Vec<(UserId, i64)> = {
            let mut stmt = tx.prepare_cached(
                "UPDATE pwreset_tokens
                    SET revoked_at = ?3, revoked_reason = 'not sent', dead_at = min(dead_at, ?3)
                  WHERE id > ?1 AND run_id = ?2 AND handed_over_at IS NULL AND batch > ?4
                    AND used_at IS NULL AND revoked_at IS NULL
                 RETURNING user_id, created_at",
            )?;
            let rows = stmt.query_map(params![floor, run_id, now, printed], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?;
            rows.collect::<rusqlite::Result<_>>()?
        };
        let mut give_back = tx.prepare_cached(
            "DELETE FROM pwreset_throttle WHERE user_id = ?1 AND last_at = ?2 AND run_id = ?3",
        )?;
        for (user, created) in &released {
            give_back.execute(params![user, created, run_id])?;
            super::audit::insert(&tx, &AuditEvent::not_sent(user, why, now, actor))?;
        }
        tx.execute(
            "UPDATE pwreset_runs SET ended_at = ?2, outcome = ?3 WHERE id = ?1",
            params![run_id, now, outcome.as_str()],
        )?;
        Ok(released.len() as u64)
    };
    let n = run().map_err(|e| s.ctx.err(e))?;
    tx.commit().map_err(|e| s.ctx.err(e))?;
    Ok(n)
}

pub(super) fn ended_runs(s: &SqliteStore, job: &str, since: i64) -> Result<Vec<Run>> {
    let mut stmt = s
        .conn
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM pwreset_runs
              WHERE job = ?1 AND ended_at IS NOT NULL AND started_at > ?2
              ORDER BY id DESC LIMIT 100"
        ))
        .map_err(|e| s.ctx.err(e))?;
    let rows = stmt
        .query_map(params![job, since], run_from_row)
        .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
        .map_err(|e| s.ctx.err(e))?;
    Ok(rows)
}

pub(super) fn served_by(
    s: &SqliteStore,
    runs: &[i64],
    users: &[&UserId],
    now: i64,
) -> Result<Vec<(UserId, i64)>> {
    let mut out = Vec::new();
    if runs.is_empty() || users.is_empty() {
        return Ok(out);
    }
    let run_marks = vec!["?"; runs.len()].join(",");
    // An ended run's links that are not revoked were handed over: ending it released the rest.
    for part in users.chunks(500) {
        let user_marks = vec!["?"; part.len()].join(",");
        let mut stmt = s
            .conn
            .prepare(&format!(
                "SELECT user_id, max(expires_at) FROM pwreset_tokens
                  WHERE user_id IN ({user_marks}) AND run_id IN ({run_marks})
                    AND revoked_at IS NULL AND (used_at IS NOT NULL OR expires_at > ?)
                  GROUP BY user_id"
            ))
            .map_err(|e| s.ctx.err(e))?;
        let mut params: Vec<&dyn rusqlite::ToSql> = Vec::with_capacity(part.len() + runs.len());
        params.extend(part.iter().map(|u| *u as &dyn rusqlite::ToSql));
        params.extend(runs.iter().map(|r| r as &dyn rusqlite::ToSql));
        params.push(&now);
        let rows = stmt
            .query_map(params.as_slice(), |r| Ok((r.get(0)?, r.get(1)?)))
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(|e| s.ctx.err(e))?;
        out.extend(rows);
    }
    Ok(out)
}

pub(super) fn purge_runs(s: &mut SqliteStore, cutoff: i64) -> Result<u64> {
    let n = s
        .conn
        .execute(
            "DELETE FROM pwreset_runs WHERE ended_at IS NOT NULL AND ended_at < ?1",
            [cutoff],
        )
        .map_err(|e| s.ctx.err(e))?;
    Ok(n as u64)
}
