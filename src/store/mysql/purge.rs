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
    /// Dead tokens fill most of the id span they lie in (the usual case: tokens die in about
    /// the order they were made): delete in primary-key order, from `after` up to `last`. The
    /// rows of a batch sit side by side in the clustered index, so each page is visited once,
    /// as one big DELETE does; walking the dead_at index instead visits a page per row and
    /// costs about three times as much.
    ById { cutoff: i64, after: i64, last: i64 },
    /// Dead tokens are few among live ones: follow the dead_at index, each batch starting
    /// after the last row of the one before in (dead_at, id) order. InnoDB keeps deleted index
    /// entries until its purge thread catches up, and a batch that started from the front of
    /// the index would step over all of them again, every time.
    ByDead { cutoff: i64, dead: i64, id: i64 },
}

/// What a purge statement returns of each deleted row: id, dead_at, used, revoked.
type Deleted = (i64, i64, bool, bool);

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
        _ => plan(s, cutoff)?,
    };
    let rows = match walk {
        Walk::ById { after, last, .. } => {
            let rows = by_id(s, mariadb, cutoff, after, last, limit)?;
            match rows.iter().map(|r| r.0).max() {
                Some(id) => {
                    s.purge_from = Some(Walk::ById {
                        cutoff,
                        after: id,
                        last,
                    });
                    rows
                }
                // The span is done; tokens that died since the plan, outside it, are found
                // through the index.
                None => {
                    s.purge_from = None;
                    by_dead(s, mariadb, cutoff, i64::MIN, i64::MIN, limit)?
                }
            }
        }
        Walk::ByDead { dead, id, .. } => by_dead(s, mariadb, cutoff, dead, id, limit)?,
    };
    if !matches!(s.purge_from, Some(Walk::ById { .. }))
        && let Some(last) = rows.iter().map(|r| (r.1, r.0)).max()
    {
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

/// Choose the walk for a new cutoff: one index-only pass over the dead_at range says how many
/// dead tokens there are and which ids they span.
fn plan(s: &mut MysqlStore, cutoff: i64) -> Result<Walk> {
    let row: Option<(Value, Value, Value)> = s.read(|conn, _| {
        Ok(conn.exec_first(
            "SELECT COUNT(*), MIN(id), MAX(id) FROM pwreset_tokens WHERE dead_at <= ?",
            (cutoff,),
        )?)
    })?;
    let by_dead = Walk::ByDead {
        cutoff,
        dead: i64::MIN,
        id: i64::MIN,
    };
    let Some((n, first, last)) = row else {
        return Ok(by_dead);
    };
    let (Some(n), Some(first), Some(last)) = (opt_i64(n), opt_i64(first), opt_i64(last)) else {
        return Ok(by_dead);
    };
    // Dense: at least half of the span is dead, so a primary-key walk steps over at most as
    // many live rows as it deletes (and locks those only for its short statements).
    let span = i128::from(last) - i128::from(first) + 1;
    Ok(if i128::from(n) * 2 >= span {
        Walk::ById {
            cutoff,
            after: first.saturating_sub(1),
            last,
        }
    } else {
        by_dead
    })
}

/// Delete up to `limit` dead tokens with ids in (after, last], in id order.
fn by_id(
    s: &mut MysqlStore,
    mariadb: bool,
    cutoff: i64,
    after: i64,
    last: i64,
    limit: u32,
) -> Result<Vec<Deleted>> {
    let range = "id > ? AND id <= ? AND dead_at <= ? ORDER BY id LIMIT ?";
    delete(s, mariadb, range, (after, last, cutoff, limit))
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
