//! Runs: the processes that make links, and ending them (which releases what they did not hand
//! over).

use super::{IdArray, PgStore, user_id};
use crate::store::{AuditOutcome, Run, RunEnd, RunStart, UserId};
use anyhow::Result;
use postgres::Row;
use postgres::types::Type;

const COLUMNS: &str = "id, command, job, host, pid, proc_start, actor, started_at, heartbeat_at,
                       ended_at, outcome";

fn run_from_row(r: &Row) -> Result<Run, postgres::Error> {
    Ok(Run {
        id: r.try_get(0)?,
        command: r.try_get(1)?,
        job: r.try_get(2)?,
        host: r.try_get(3)?,
        pid: r.try_get(4)?,
        proc_start: r.try_get(5)?,
        actor: r.try_get(6)?,
        started_at: r.try_get(7)?,
        heartbeat_at: r.try_get(8)?,
        ended_at: r.try_get(9)?,
        outcome: r.try_get(10)?,
    })
}

fn runs_from_rows(s: &PgStore, rows: &[Row]) -> Result<Vec<Run>> {
    rows.iter()
        .map(run_from_row)
        .collect::<Result<_, _>>()
        .map_err(|e| s.err(e))
}

pub(super) fn begin_run(s: &mut PgStore, run: &RunStart<'_>) -> Result<i64> {
    // The floor: every token this run inserts takes its id from the identity after this
    // commits, so it is larger than any id there is now. Ending the run walks the primary key
    // from there instead of scanning the table. max(id) is one step down that key.
    let sql = format!(
        "INSERT INTO {runs} (command, job, host, pid, proc_start, actor, started_at,
                             heartbeat_at, token_floor)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $7,
                 coalesce((SELECT max(id) FROM {tokens}), 0))
         RETURNING id",
        runs = s.q.runs,
        tokens = s.q.tokens,
    );
    s.in_tx(|c, _, _| {
        let row = c.query_typed_one(
            &sql,
            &[
                (&run.command, Type::TEXT),
                (&run.job, Type::TEXT),
                (&run.host, Type::TEXT),
                (&run.pid, Type::INT8),
                (&run.proc_start, Type::INT8),
                (&run.actor, Type::TEXT),
                (&run.now, Type::INT8),
            ],
        )?;
        Ok(row.try_get(0)?)
    })
}

pub(super) fn heartbeat(s: &mut PgStore, run_id: i64, now: i64) -> Result<()> {
    let sql = format!(
        "UPDATE {} SET heartbeat_at = greatest(heartbeat_at, $2) WHERE id = $1",
        s.q.runs
    );
    s.in_tx(|c, _, _| {
        c.execute_typed(&sql, &[(&run_id, Type::INT8), (&now, Type::INT8)])?;
        Ok(())
    })
}

pub(super) fn open_runs(s: &mut PgStore) -> Result<Vec<Run>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM {} WHERE ended_at IS NULL ORDER BY id",
        s.q.runs
    );
    let rows = s.client.query_typed(&sql, &[]).map_err(|e| s.err(e))?;
    runs_from_rows(s, &rows)
}

pub(super) fn end_run(
    s: &mut PgStore,
    run_id: i64,
    outcome: RunEnd,
    why: &str,
    now: i64,
    actor: &str,
) -> Result<u64> {
    let q = &s.q;
    // Two processes ending one run (the run itself, and another that found it dead) queue
    // on its row; the second then sees it ended and leaves it alone.
    let lock = format!(
        "SELECT token_floor, printed_upto FROM {} WHERE id = $1 AND ended_at IS NULL FOR UPDATE",
        q.runs
    );
    // The links not handed over: not marked, and in a batch after the last one printed. Each
    // gives its user's throttle back unless a later request has moved the row since, and gets
    // its audit row. The run's tokens all come after its floor: a walk of the primary key from
    // there, not a scan.
    let release = format!(
        "WITH released AS (
            UPDATE {tokens} SET revoked_at = $3, revoked_reason = $4,
                   dead_at = least(dead_at, $3)
             WHERE id > $1 AND run_id = $2 AND handed_over_at IS NULL AND batch > $5
               AND used_at IS NULL AND revoked_at IS NULL
            RETURNING user_id, created_at
         ),
         given_back AS (
            DELETE FROM {throttle} th USING released
             WHERE th.user_id = released.user_id AND th.last_at = released.created_at
               AND th.run_id = $2
         ),
         audited AS (
            INSERT INTO {audit} (at, actor, action, user_id, email, outcome, detail)
            SELECT $3, $6, 'request', user_id::text, NULL, '{failed}', $7 FROM released
         )
         SELECT count(*) FROM released",
        tokens = q.tokens,
        throttle = q.throttle,
        audit = q.audit,
        failed = AuditOutcome::Failed.as_str(),
    );
    let end = format!(
        "UPDATE {} SET ended_at = $2, outcome = $3 WHERE id = $1",
        q.runs
    );
    let not_sent = crate::store::RevokeReason::NotSent.as_str();
    let outcome = outcome.as_str();
    s.in_tx(|c, _, _| {
        let Some(row) = c.query_typed_opt(&lock, &[(&run_id, Type::INT8)])? else {
            return Ok(0);
        };
        let (floor, printed): (i64, i64) = (row.try_get(0)?, row.try_get(1)?);
        // While a bulk run fills the table there may be no statistics, and the planner would
        // rather scan it all than take the key range (see tokens::BY_KEY).
        c.batch_execute(super::tokens::BY_KEY)?;
        let released: i64 = c
            .query_typed_one(
                &release,
                &[
                    (&floor, Type::INT8),
                    (&run_id, Type::INT8),
                    (&now, Type::INT8),
                    (&not_sent, Type::TEXT),
                    (&printed, Type::INT8),
                    (&actor, Type::TEXT),
                    (&why, Type::TEXT),
                ],
            )?
            .try_get(0)?;
        c.execute_typed(
            &end,
            &[
                (&run_id, Type::INT8),
                (&now, Type::INT8),
                (&outcome, Type::TEXT),
            ],
        )?;
        Ok(released.max(0) as u64)
    })
}

pub(super) fn ended_runs(s: &mut PgStore, job: &str, since: i64) -> Result<Vec<Run>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM {}
          WHERE job = $1 AND ended_at IS NOT NULL AND started_at > $2
          ORDER BY id DESC LIMIT 100",
        s.q.runs
    );
    let rows = s
        .client
        .query_typed(&sql, &[(&job, Type::TEXT), (&since, Type::INT8)])
        .map_err(|e| s.err(e))?;
    runs_from_rows(s, &rows)
}

pub(super) fn served_by(
    s: &mut PgStore,
    runs: &[i64],
    users: &[&UserId],
    now: i64,
) -> Result<Vec<(UserId, i64)>> {
    if runs.is_empty() || users.is_empty() {
        return Ok(Vec::new());
    }
    let kind = s.id;
    let mut ids = IdArray::new(kind, users.len());
    for u in users {
        ids.push(u)?;
    }
    // An ended run's links that are not revoked were handed over: ending it released the rest.
    let sql = format!(
        "SELECT {uid}, max(expires_at) FROM {tokens}
          WHERE user_id = ANY({ids}) AND run_id = ANY($2::bigint[])
            AND revoked_at IS NULL AND (used_at IS NOT NULL OR expires_at > $3)
          GROUP BY user_id",
        uid = kind.read("user_id"),
        tokens = s.q.tokens,
        ids = kind.array_param(1),
    );
    s.in_tx(|c, _, _| {
        // By the users' key, whatever the statistics say (see tokens::BY_KEY).
        c.batch_execute(super::tokens::BY_KEY)?;
        let mut out = Vec::new();
        for r in c.query_typed(
            &sql,
            &[
                (ids.sql(), kind.wire_array_type()),
                (&runs, Type::INT8_ARRAY),
                (&now, Type::INT8),
            ],
        )? {
            out.push((user_id(kind, &r, 0)?, r.try_get(1)?));
        }
        Ok(out)
    })
}

pub(super) fn purge_runs(s: &mut PgStore, cutoff: i64) -> Result<u64> {
    let sql = format!(
        "DELETE FROM {} WHERE ended_at IS NOT NULL AND ended_at < $1",
        s.q.runs
    );
    s.in_tx(|c, _, _| Ok(c.execute_typed(&sql, &[(&cutoff, Type::INT8)])?))
}
