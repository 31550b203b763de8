//! Runs: the processes that make links, and ending them (which releases what they did not hand
//! over).

use super::tokens::{ROWS, ReleasedRow, Which, give_back, release};
use super::{MysqlStore, marks, opt_i64, text_lossy};
use crate::store::{AuditEvent, RevokeReason, Run, RunEnd, RunStart, UserId};
use anyhow::Result;
use mysql::prelude::Queryable;
use mysql::{Conn, Row, Value};

const COLUMNS: &str = "id, command, job, host, pid, proc_start, actor, started_at, heartbeat_at,
                       ended_at, outcome";

/// A run from a row of [`COLUMNS`]. Read by hand, not as a tuple: a conversion that fails
/// would panic in the driver.
fn run_from_row(mut row: Row) -> Run {
    let mut take = |i: usize| row.take::<Value, usize>(i).unwrap_or(Value::NULL);
    let int = |v: Value| opt_i64(v).unwrap_or(0);
    let text = |v: Value| match v {
        Value::NULL => None,
        v => Some(text_lossy(v)),
    };
    Run {
        id: int(take(0)),
        command: text_lossy(take(1)),
        job: text(take(2)),
        host: text_lossy(take(3)),
        pid: int(take(4)),
        proc_start: int(take(5)),
        actor: text_lossy(take(6)),
        started_at: int(take(7)),
        heartbeat_at: int(take(8)),
        ended_at: opt_i64(take(9)),
        outcome: text(take(10)),
    }
}

pub(super) fn begin_run(s: &mut MysqlStore, run: &RunStart<'_>) -> Result<i64> {
    s.tx(|conn, _| {
        // Every token the run issues takes its id from the counter, which is past every id
        // there is, committed or not: so the largest one now is below all of the run's. A plain
        // read, so that it locks nothing the inserts of runs at work would wait for.
        let floor: Option<i64> =
            conn.query_first("SELECT COALESCE(MAX(id), 0) FROM pwreset_tokens")?;
        conn.exec_drop(
            "INSERT INTO pwreset_runs (command, job, host, pid, proc_start, actor, started_at,
                                       heartbeat_at, token_floor)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            vec![
                Value::from(run.command),
                run.job.map_or(Value::NULL, Value::from),
                Value::from(run.host),
                Value::Int(run.pid),
                Value::Int(run.proc_start),
                Value::from(run.actor),
                Value::Int(run.now),
                Value::Int(run.now),
                Value::Int(floor.unwrap_or(0)),
            ],
        )?;
        Ok(i64::try_from(conn.last_insert_id())?)
    })
}

pub(super) fn heartbeat(s: &mut MysqlStore, run_id: i64, now: i64) -> Result<()> {
    s.tx(|conn, _| {
        conn.exec_drop(
            "UPDATE pwreset_runs SET heartbeat_at = GREATEST(heartbeat_at, ?) WHERE id = ?",
            (now, run_id),
        )?;
        Ok(())
    })
}

pub(super) fn open_runs(s: &mut MysqlStore) -> Result<Vec<Run>> {
    s.read(|conn, _| {
        let rows: Vec<Row> = conn.query(format!(
            "SELECT {COLUMNS} FROM pwreset_runs WHERE ended_at IS NULL ORDER BY id"
        ))?;
        Ok(rows.into_iter().map(run_from_row).collect())
    })
}

pub(super) fn end_run(
    s: &mut MysqlStore,
    run_id: i64,
    outcome: RunEnd,
    why: &str,
    now: i64,
    actor: &str,
) -> Result<u64> {
    s.tx(|conn, sh| {
        // The run's row first, locked: of two processes ending one run (the run itself, and
        // one that found it gone), the second waits here and then finds it ended.
        let run: Option<(i64, i64)> = conn.exec_first(
            "SELECT token_floor, printed_upto FROM pwreset_runs
              WHERE id = ? AND ended_at IS NULL FOR UPDATE",
            (run_id,),
        )?;
        let Some((floor, printed)) = run else {
            return Ok(0);
        };
        let released = release_pending(conn, run_id, floor, printed, now)?;
        give_back(conn, run_id, &released)?;
        let users: Vec<UserId> = released
            .iter()
            .map(|(user, _)| sh.id_from(user.clone()))
            .collect::<Result<_>>()?;
        let events: Vec<AuditEvent<'_>> = users
            .iter()
            .map(|user| AuditEvent::not_sent(user, why, now, actor))
            .collect();
        super::audit::insert(conn, sh, &events)?;
        conn.exec_drop(
            "UPDATE pwreset_runs SET ended_at = ?, outcome = ? WHERE id = ?",
            (now, outcome.as_str(), run_id),
        )?;
        Ok(released.len() as u64)
    })
}

/// Revoke (as `not sent`) the run's links that were not handed over: neither marked nor in a
/// printed batch, and still open.
fn release_pending(
    conn: &mut Conn,
    run_id: i64,
    floor: i64,
    printed: i64,
    now: i64,
) -> Result<Vec<ReleasedRow>> {
    // The run's tokens all come after its floor: a walk of the primary key from there, not a
    // scan. A plain read, which locks nothing: a locking one would lock every token it walks
    // past, other runs' too, and the gap at the end where every new token goes. Its snapshot
    // is taken now, with the run's row locked, so it holds every token the run stored;
    // `release` locks the ones found and looks at them again (one may have been marked as
    // handed over, or used, since; a printed batch cannot have moved: that takes the run's
    // row).
    let candidates: Vec<i64> = conn.exec(
        "SELECT id FROM pwreset_tokens
          WHERE id > ? AND run_id = ? AND handed_over_at IS NULL AND batch > ?
            AND used_at IS NULL AND revoked_at IS NULL",
        (floor, run_id, printed),
    )?;
    release(
        conn,
        &candidates,
        Which::Pending,
        &RevokeReason::NotSent,
        now,
    )
}

pub(super) fn ended_runs(s: &mut MysqlStore, job: &str, since: i64) -> Result<Vec<Run>> {
    let rows = s.read(|conn, _| {
        let rows: Vec<Row> = conn.exec(
            format!(
                "SELECT {COLUMNS} FROM pwreset_runs
                  WHERE job = ? AND ended_at IS NOT NULL AND started_at > ?
                  ORDER BY id DESC LIMIT 100"
            ),
            (job, since),
        )?;
        Ok(rows.into_iter().map(run_from_row).collect::<Vec<_>>())
    })?;
    Ok(rows)
}

pub(super) fn served_by(
    s: &mut MysqlStore,
    runs: &[i64],
    users: &[&UserId],
    now: i64,
) -> Result<Vec<(UserId, i64)>> {
    if runs.is_empty() || users.is_empty() {
        return Ok(Vec::new());
    }
    s.read(|conn, sh| {
        let mut out = Vec::new();
        // An ended run's links that are not revoked were handed over: ending it released the
        // rest. Found through the users' index, a few rows each.
        for part in users.chunks(ROWS) {
            let mut params: Vec<Value> = part.iter().map(|u| sh.id_value(u)).collect();
            params.extend(runs.iter().map(|r| Value::Int(*r)));
            params.push(Value::Int(now));
            let rows: Vec<(Value, Value)> = conn.exec(
                format!(
                    "SELECT user_id, MAX(expires_at) FROM pwreset_tokens
                      WHERE user_id IN ({}) AND run_id IN ({})
                        AND revoked_at IS NULL AND (used_at IS NOT NULL OR expires_at > ?)
                      GROUP BY user_id",
                    marks(part.len()),
                    marks(runs.len())
                ),
                params,
            )?;
            for (user, expires) in rows {
                out.push((sh.id_from(user)?, opt_i64(expires).unwrap_or(0)));
            }
        }
        Ok(out)
    })
}

pub(super) fn purge_runs(s: &mut MysqlStore, cutoff: i64) -> Result<u64> {
    s.tx(|conn, _| {
        // An open run (ended_at NULL) is never before anything.
        conn.exec_drop("DELETE FROM pwreset_runs WHERE ended_at < ?", (cutoff,))?;
        Ok(conn.affected_rows())
    })
}
