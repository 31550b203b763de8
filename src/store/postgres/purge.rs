//! Purging dead tokens in short transactions.
//!
//! Two walks, chosen once per run from the planner's statistics:
//! - Most of the table is dead (a daily purge of one-hour tokens): delete run of pages by run
//!   of pages, each a TID range scan that reads the same pages one big `DELETE` reads.
//!   Following the dead_at index instead reads every row through the index and costs about
//!   three times as much.
//! - Dead tokens are few among live ones (`--older-than 30d`, say): follow the dead_at index,
//!   each batch starting where the last one stopped.

use super::PgStore;
use crate::store::PurgeCounts;
use anyhow::{Result, anyhow};
use postgres::SimpleQueryMessage;
use postgres::types::Type;

/// Where a purge of one cutoff stands.
#[derive(Debug, Clone, Copy)]
pub(super) enum Walk {
    /// Pages `next..end` are still to do, `step` pages per transaction.
    Pages {
        cutoff: i64,
        next: i64,
        end: i64,
        step: i64,
    },
    /// The next batch starts after (dead, id) in the dead_at index's order.
    Index { cutoff: i64, dead: i64, id: i64 },
}

impl Walk {
    fn cutoff(self) -> i64 {
        match self {
            Walk::Pages { cutoff, .. } | Walk::Index { cutoff, .. } => cutoff,
        }
    }
}

/// The three counts of a purge, as SQL over rows that are dead.
const COUNTS: &str = "count(*) FILTER (WHERE used_at IS NULL AND revoked_at IS NULL),
                      count(*) FILTER (WHERE used_at IS NOT NULL),
                      count(*) FILTER (WHERE used_at IS NULL AND revoked_at IS NOT NULL)";

fn counts_of(s: &PgStore, row: &postgres::Row) -> Result<PurgeCounts> {
    let n = |i: usize| -> Result<u64> {
        Ok(row.try_get::<_, i64>(i).map_err(|e| s.err(e))?.max(0) as u64)
    };
    Ok(PurgeCounts {
        expired: n(0)?,
        used: n(1)?,
        revoked: n(2)?,
    })
}

pub(super) fn count_dead(s: &mut PgStore, cutoff: i64) -> Result<PurgeCounts> {
    let sql = format!("SELECT {COUNTS} FROM {} WHERE dead_at <= $1", s.q.tokens);
    let row = s
        .client
        .query_typed_one(&sql, &[(&cutoff, Type::INT8)])
        .map_err(|e| s.err(e))?;
    counts_of(s, &row)
}

/// Delete about `limit` dead tokens, in one transaction or (walking pages) a few; fewer than
/// `limit` only when none is left.
pub(super) fn batch(s: &mut PgStore, cutoff: i64, limit: u32) -> Result<PurgeCounts> {
    let walk = match s.purge_from {
        Some(w) if w.cutoff() == cutoff => w,
        _ => plan(s, cutoff, limit)?,
    };
    match walk {
        Walk::Pages {
            next, end, step, ..
        } => by_pages(s, cutoff, next, end, step, limit),
        Walk::Index { dead, id, .. } => by_index(s, cutoff, dead, id, limit),
    }
}

/// Choose the walk for a new cutoff from the table's statistics and the planner's estimate
/// of the dead rows. A wrong guess costs time, never rows: both walks delete every dead token.
fn plan(s: &mut PgStore, cutoff: i64, limit: u32) -> Result<Walk> {
    let index = Walk::Index {
        cutoff,
        dead: i64::MIN,
        id: i64::MIN,
    };
    let row = s
        .client
        .query_typed_one(
            "SELECT current_setting('server_version_num')::int, c.reltuples::float8,
                    c.relpages::bigint,
                    (pg_relation_size(c.oid) / current_setting('block_size')::int)::bigint
               FROM pg_class c WHERE c.oid = $1::text::regclass",
            &[(&s.q.tokens, Type::TEXT)],
        )
        .map_err(|e| s.err(e))?;
    let version: i32 = row.try_get(0).map_err(|e| s.err(e))?;
    let tuples: f64 = row.try_get(1).map_err(|e| s.err(e))?;
    let stat_pages: i64 = row.try_get(2).map_err(|e| s.err(e))?;
    let pages: i64 = row.try_get(3).map_err(|e| s.err(e))?;
    // TID range scans came with PostgreSQL 14; before, a ctid range reads the whole table.
    // A table never analyzed has no statistics to go by (reltuples is -1).
    if version < 140_000 || tuples < 1.0 || stat_pages < 1 || pages < 1 {
        return Ok(index);
    }
    let dead = estimate_rows(
        s,
        &format!("SELECT 1 FROM {} WHERE dead_at <= {cutoff}", s.q.tokens),
    )?;
    // A quarter dead is about where reading every page costs what reading the dead rows
    // through the index does.
    if dead * 4.0 < tuples {
        return Ok(index);
    }
    let per_page = (tuples / stat_pages as f64).max(1.0);
    let step = ((f64::from(limit) / per_page).ceil() as i64).max(1);
    Ok(Walk::Pages {
        cutoff,
        next: 0,
        end: pages,
        step,
    })
}

/// The planner's estimate of the rows `select` returns.
fn estimate_rows(s: &mut PgStore, select: &str) -> Result<f64> {
    // EXPLAIN takes no parameters: `select` is built from a quoted name and an integer.
    let messages = s
        .client
        .simple_query(&format!("EXPLAIN (FORMAT JSON) {select}"))
        .map_err(|e| s.err(e))?;
    let plan = messages
        .iter()
        .find_map(|m| match m {
            SimpleQueryMessage::Row(r) => r.get(0),
            _ => None,
        })
        .ok_or_else(|| anyhow!("EXPLAIN returned no plan"))?;
    let v: serde_json::Value = serde_json::from_str(plan)?;
    v[0]["Plan"]["Plan Rows"]
        .as_f64()
        .ok_or_else(|| anyhow!("EXPLAIN's plan has no row estimate"))
}

/// Delete the dead tokens of the next runs of pages, one transaction per run, until about
/// `limit` are gone or the table ends. Pages past `end` hold rows written after the purge
/// began: new tokens, which are live, and new versions of tokens used or revoked since, which
/// died after the cutoff.
fn by_pages(
    s: &mut PgStore,
    cutoff: i64,
    mut next: i64,
    end: i64,
    step: i64,
    limit: u32,
) -> Result<PurgeCounts> {
    let mut total = PurgeCounts::default();
    while next < end && total.total() < u64::from(limit) {
        let last = next.saturating_add(step).min(end);
        let range = format!(
            "ctid >= '({next},0)'::tid AND ctid < '({last},0)'::tid AND dead_at <= {cutoff}"
        );
        // One round trip for the lot: the simple query protocol, with the numbers written in.
        // One snapshot for the count and the delete (REPEATABLE READ), so the counts are of
        // what was deleted: a token used or revoked in between makes the delete fail with a
        // serialization failure, and the transaction is tried again. Expired tokens are the
        // rest of what was deleted, so only the others are counted. A purge batch lost in a
        // crash is purged again by the next run: the commit need not wait for the disk.
        let sql = format!(
            "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ;
             SET LOCAL synchronous_commit = off;
             SELECT count(used_at), count(revoked_at) FILTER (WHERE used_at IS NULL)
               FROM {t} WHERE {range} AND (used_at IS NOT NULL OR revoked_at IS NOT NULL);
             DELETE FROM {t} WHERE {range}",
            t = s.q.tokens
        );
        let replies = s.in_tx(|c, _, _| Ok(c.simple_query(&sql)?))?;
        let mut numbers = replies.iter().filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => Some([r.get(0), r.get(1)]),
            _ => None,
        });
        let (used, revoked) = match numbers.next() {
            Some([Some(u), Some(r)]) => (u.parse::<u64>()?, r.parse::<u64>()?),
            _ => return Err(anyhow!("the purge's count returned no row")),
        };
        let deleted = match replies.last() {
            Some(SimpleQueryMessage::CommandComplete(n)) => *n,
            _ => return Err(anyhow!("the purge's DELETE returned no row count")),
        };
        let counts = PurgeCounts {
            expired: deleted.checked_sub(used + revoked).ok_or_else(|| {
                anyhow!("purge counted {used} used and {revoked} revoked tokens in pages {next}..{last} but deleted {deleted}")
            })?,
            used,
            revoked,
        };
        total.add(counts);
        next = last;
        s.purge_from = Some(Walk::Pages {
            cutoff,
            next,
            end,
            step,
        });
    }
    Ok(total)
}

fn by_index(s: &mut PgStore, cutoff: i64, dead: i64, id: i64, limit: u32) -> Result<PurgeCounts> {
    // Each batch starts where the last one stopped, in (dead_at, id) order: the index entries
    // of rows deleted a moment ago are still there until vacuum, and walking them again on
    // every batch would make a large purge quadratic. Rows dead before that point cannot
    // appear during the run: dead_at is never set into the past.
    let sql = format!(
        "WITH gone AS (
            DELETE FROM {t} WHERE ctid = ANY(ARRAY(
                SELECT ctid FROM {t}
                 WHERE dead_at <= $1 AND (dead_at, id) > ($3, $4)
                 ORDER BY dead_at, id LIMIT $2))
               AND dead_at <= $1
            RETURNING dead_at, id, used_at, revoked_at
         )
         SELECT c.expired, c.used, c.revoked, l.dead_at, l.id
           FROM (SELECT {COUNTS} FROM gone) c (expired, used, revoked)
           LEFT JOIN LATERAL (SELECT dead_at, id FROM gone ORDER BY dead_at DESC, id DESC LIMIT 1) l
             ON true",
        t = s.q.tokens
    );
    let limit = i64::from(limit);
    let row = s.in_tx(|c, _, _| {
        c.batch_execute("SET LOCAL synchronous_commit = off")?;
        Ok(c.query_typed_one(
            &sql,
            &[
                (&cutoff, Type::INT8),
                (&limit, Type::INT8),
                (&dead, Type::INT8),
                (&id, Type::INT8),
            ],
        )?)
    })?;
    let counts = counts_of(s, &row)?;
    let last: (Option<i64>, Option<i64>) = (
        row.try_get(3).map_err(|e| s.err(e))?,
        row.try_get(4).map_err(|e| s.err(e))?,
    );
    s.purge_from = match last {
        (Some(dead), Some(id)) => Some(Walk::Index { cutoff, dead, id }),
        _ => None,
    };
    Ok(counts)
}
