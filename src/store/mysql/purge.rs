//! Purging dead tokens in short batches.

use super::{MysqlStore, marks, opt_i64};
use crate::store::PurgeCounts;
use anyhow::Result;
use mysql::Value;
use mysql::prelude::Queryable;

pub(super) fn count_dead(s: &mut MysqlStore, cutoff: i64) -> Result<PurgeCounts> {
    s.read(|conn, _| {
        let row: Option<(Value, Value, Value)> = conn.exec_first(
            "SELECT COUNT(*) - COUNT(used_at) - COUNT(CASE WHEN used_at IS NULL THEN revoked_at END),
                    COUNT(used_at),
                    COUNT(CASE WHEN used_at IS NULL THEN revoked_at END)
               FROM pwreset_tokens WHERE dead_at <= ?",
            (cutoff,),
        )?;
        let n = |v: Value| opt_i64(v).unwrap_or(0).max(0) as u64;
        Ok(row.map_or(PurgeCounts::default(), |(e, u, r)| PurgeCounts {
            expired: n(e),
            used: n(u),
            revoked: n(r),
        }))
    })
}

/// How a purge walks the dead tokens of one cutoff.
#[derive(Debug, Clone, Copy)]
pub(super) enum Walk {
    /// Dead tokens are a large part of the table (the usual case: tokens die in about the
    /// order they were made): delete by ranges of the primary key, `after` up to `last`, the
    /// table's last id when the purge began. The rows of a range sit side by side in the
    /// clustered index, so each page is visited once, as one big DELETE does; walking the
    /// dead_at index instead visits a page per row and costs about three times as much. Rows
    /// past `last` were written after the purge began: new tokens, which are live.
    ById { cutoff: i64, after: i64, last: i64 },
    /// Dead tokens are few among live ones: follow the dead_at index, each batch starting
    /// after the last row of the one before in (dead_at, id) order. InnoDB keeps deleted index
    /// entries until its purge thread catches up, and a batch that started from the front of
    /// the index would step over all of them again, every time.
    ByDead { cutoff: i64, dead: i64, id: i64 },
}

/// What a purge statement returns of each deleted row: id, dead_at, used, revoked.
type Deleted = (i64, i64, bool, bool);

/// Delete about `limit` dead tokens, in one transaction or (walking ids) a few; fewer than
/// `limit` only when none is left.
pub(super) fn batch(s: &mut MysqlStore, cutoff: i64, limit: u32) -> Result<PurgeCounts> {
    let mariadb = match s.mariadb {
        Some(m) => m,
        None => {
            let version: Option<String> =
                s.read(|conn, _| Ok(conn.query_first("SELECT VERSION()")?))?;
            let m = version.is_some_and(|v| v.contains("MariaDB"));
            s.mariadb = Some(m);
            m
        }
    };
    let walk = match s.purge_from {
        Some(w @ (Walk::ById { cutoff: c, .. } | Walk::ByDead { cutoff: c, .. }))
            if c == cutoff =>
        {
            w
        }
        _ => {
            hold(s);
            plan(s, cutoff)?
        }
    };
    let counts = match walk {
        Walk::ById { after, last, .. } => by_id(s, mariadb, cutoff, after, last, limit),
        Walk::ByDead { dead, id, .. } => {
            let rows = by_dead(s, mariadb, cutoff, dead, id, limit)?;
            if let Some(last) = rows.iter().map(|r| (r.1, r.0)).max() {
                s.purge_from = Some(Walk::ByDead {
                    cutoff,
                    dead: last.0,
                    id: last.1,
                });
            }
            let mut counts = PurgeCounts::default();
            for (_, _, used, revoked) in &rows {
                if *used {
                    counts.used += 1;
                } else if *revoked {
                    counts.revoked += 1;
                } else {
                    counts.expired += 1;
                }
            }
            Ok(counts)
        }
    }?;
    if counts.total() < u64::from(limit) {
        // Done: InnoDB may clean up behind the purge now.
        s.purge_hold = None;
    }
    Ok(counts)
}

/// Hold a read view on a second connection while the purge runs. Each batch's commit hands
/// InnoDB's purge threads the rows it deleted, and on a small machine they then compete with
/// the run for the CPU (a third of its time on two cores); while a read view older than the
/// deletes is open they leave those rows for later, as they do for one big DELETE until it
/// commits. Best effort: without the second connection the purge is only slower.
fn hold(s: &mut MysqlStore) {
    s.purge_hold = mysql::Conn::new(s.opts.clone())
        .and_then(|mut c| {
            c.query_drop("START TRANSACTION WITH CONSISTENT SNAPSHOT")?;
            Ok(c)
        })
        .ok();
}

/// Choose the walk for a new cutoff from the optimizer's estimates, which cost two index
/// dives rather than a pass over the dead tokens. A wrong guess costs time, never rows: both
/// walks delete every dead token.
fn plan(s: &mut MysqlStore, cutoff: i64) -> Result<Walk> {
    let by_dead = Walk::ByDead {
        cutoff,
        dead: i64::MIN,
        id: i64::MIN,
    };
    let (dead, all, first, last) = s.read(|conn, _| {
        // EXPLAIN's `rows`: InnoDB's estimate of a range, which it never puts above half of
        // the table.
        let estimate = |conn: &mut mysql::Conn, sql: &str| -> Result<i64> {
            let row: Option<mysql::Row> = conn.query_first(sql)?;
            Ok(row
                .and_then(|r| r.get_opt::<Option<i64>, _>("rows").and_then(|v| v.ok()))
                .flatten()
                .unwrap_or(0))
        };
        let dead = estimate(
            conn,
            &format!("EXPLAIN SELECT 1 FROM pwreset_tokens WHERE dead_at <= {cutoff}"),
        )?;
        let all = estimate(conn, "EXPLAIN SELECT * FROM pwreset_tokens")?;
        let ends: Option<(Value, Value)> =
            conn.query_first("SELECT MIN(id), MAX(id) FROM pwreset_tokens")?;
        let (first, last) = ends.map_or((None, None), |(a, b)| (opt_i64(a), opt_i64(b)));
        Ok((dead, all, first, last))
    })?;
    let (Some(first), Some(last)) = (first, last) else {
        return Ok(by_dead);
    };
    // A quarter dead (the estimate of a range stops at half the table) is about where
    // reading every row in key order costs what reading the dead ones through the index does.
    Ok(if dead > 0 && dead.saturating_mul(4) >= all {
        Walk::ById {
            cutoff,
            after: first.saturating_sub(1),
            last,
        }
    } else {
        by_dead
    })
}

/// Delete the dead tokens with ids in (after, last], `limit` ids per transaction, until about
/// `limit` tokens are gone or the range ends.
fn by_id(
    s: &mut MysqlStore,
    mariadb: bool,
    cutoff: i64,
    mut after: i64,
    last: i64,
    limit: u32,
) -> Result<PurgeCounts> {
    let mut total = PurgeCounts::default();
    let range = "id > ? AND id <= ? AND dead_at <= ?";
    // Most dead tokens simply expired: those go in a DELETE that returns nothing, and only
    // the used and revoked ones, deleted after them in the same transaction, are read back.
    // Returning every deleted row cost a fifth of the purge.
    let expired = format!(
        "DELETE FROM pwreset_tokens WHERE {range} AND used_at IS NULL AND revoked_at IS NULL"
    );
    let rest = if mariadb {
        format!("DELETE FROM pwreset_tokens WHERE {range} RETURNING id, used_at IS NOT NULL")
    } else {
        format!("SELECT id, used_at IS NOT NULL FROM pwreset_tokens WHERE {range} FOR UPDATE")
    };
    while after < last && total.total() < u64::from(limit) {
        let upto = after.saturating_add(i64::from(limit)).min(last);
        let counts = s.tx(|conn, _| {
            conn.exec_drop(&expired, (after, upto, cutoff))?;
            let expired = conn.affected_rows();
            let rows: Vec<(i64, bool)> = conn.exec(&rest, (after, upto, cutoff))?;
            if !mariadb && !rows.is_empty() {
                // MySQL has no DELETE … RETURNING: the rows were locked as they were read.
                for part in rows.chunks(5000) {
                    let ids: Vec<Value> = part.iter().map(|r| Value::Int(r.0)).collect();
                    conn.exec_drop(
                        format!(
                            "DELETE FROM pwreset_tokens WHERE id IN ({})",
                            marks(ids.len())
                        ),
                        ids,
                    )?;
                }
            }
            let used = rows.iter().filter(|r| r.1).count() as u64;
            Ok(PurgeCounts {
                expired,
                used,
                revoked: rows.len() as u64 - used,
            })
        })?;
        total.add(counts);
        after = upto;
        s.purge_from = Some(Walk::ById {
            cutoff,
            after,
            last,
        });
    }
    Ok(total)
}

/// Delete up to `limit` dead tokens after (dead, id) in the dead_at index's order.
fn by_dead(
    s: &mut MysqlStore,
    mariadb: bool,
    cutoff: i64,
    dead: i64,
    id: i64,
    limit: u32,
) -> Result<Vec<Deleted>> {
    let range = "dead_at <= ? AND (dead_at > ? OR (dead_at = ? AND id > ?))
                 ORDER BY dead_at, id LIMIT ?";
    delete(s, mariadb, range, (cutoff, dead, dead, id, limit))
}

/// Delete the rows `range` (a WHERE condition with its ORDER BY and LIMIT) picks, in one short
/// transaction, and say what they were.
fn delete(
    s: &mut MysqlStore,
    mariadb: bool,
    range: &str,
    params: impl Into<mysql::Params> + Clone,
) -> Result<Vec<Deleted>> {
    s.tx(|conn, _| {
        let rows: Vec<Deleted> = if mariadb {
            // MariaDB deletes and says what it deleted in one statement.
            conn.exec(
                format!(
                    "DELETE FROM pwreset_tokens WHERE {range}
                     RETURNING id, dead_at, used_at IS NOT NULL, revoked_at IS NOT NULL"
                ),
                params.clone(),
            )?
        } else {
            // MySQL has no DELETE … RETURNING: lock the batch's rows while reading what they
            // are, then delete exactly those. The locks last one short transaction.
            let rows: Vec<Deleted> = conn.exec(
                format!(
                    "SELECT id, dead_at, used_at IS NOT NULL, revoked_at IS NOT NULL
                       FROM pwreset_tokens WHERE {range} FOR UPDATE"
                ),
                params.clone(),
            )?;
            for part in rows.chunks(5000) {
                let ids: Vec<Value> = part.iter().map(|r| Value::Int(r.0)).collect();
                conn.exec_drop(
                    format!(
                        "DELETE FROM pwreset_tokens WHERE id IN ({})",
                        marks(ids.len())
                    ),
                    ids,
                )?;
            }
            rows
        };
        Ok(rows)
    })
}
