//! Purging dead tokens in short batches.

use super::PgStore;
use crate::store::PurgeCounts;
use anyhow::Result;
use postgres::types::Type;

pub(super) fn count_dead(s: &mut PgStore, cutoff: i64) -> Result<PurgeCounts> {
    let sql = format!(
        "SELECT count(*) FILTER (WHERE used_at IS NULL AND revoked_at IS NULL),
                count(*) FILTER (WHERE used_at IS NOT NULL),
                count(*) FILTER (WHERE used_at IS NULL AND revoked_at IS NOT NULL)
           FROM {} WHERE dead_at <= $1",
        s.q.tokens
    );
    let row = s
        .client
        .query_typed_one(&sql, &[(&cutoff, Type::INT8)])
        .map_err(|e| s.err(e))?;
    let n = |i: usize| -> Result<u64> {
        Ok(row.try_get::<_, i64>(i).map_err(|e| s.err(e))?.max(0) as u64)
    };
    Ok(PurgeCounts {
        expired: n(0)?,
        used: n(1)?,
        revoked: n(2)?,
    })
}

pub(super) fn batch(s: &mut PgStore, cutoff: i64, limit: u32) -> Result<PurgeCounts> {
    // Each batch starts where the last one stopped, in (dead_at, id) order: the index entries
    // of rows deleted a moment ago are still there until vacuum, and walking them again on
    // every batch would make a large purge quadratic. Rows dead before that point cannot
    // appear during the run: dead_at is never set into the past.
    let (from_dead, from_id) = match s.purge_from {
        Some((c, d, i)) if c == cutoff => (d, i),
        _ => (i64::MIN, i64::MIN),
    };
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
           FROM (SELECT count(*) FILTER (WHERE used_at IS NULL AND revoked_at IS NULL) AS expired,
                        count(*) FILTER (WHERE used_at IS NOT NULL) AS used,
                        count(*) FILTER (WHERE used_at IS NULL AND revoked_at IS NOT NULL) AS revoked
                   FROM gone) c
           LEFT JOIN LATERAL (SELECT dead_at, id FROM gone ORDER BY dead_at DESC, id DESC LIMIT 1) l
             ON true",
        t = s.q.tokens
    );
    let limit = i64::from(limit);
    let row = s.in_tx(|c, _, _| {
        // A purge batch lost in a crash is purged again by the next run: the commit need not
        // wait for the disk.
        c.batch_execute("SET LOCAL synchronous_commit = off")?;
        Ok(c.query_typed_one(
            &sql,
            &[
                (&cutoff, Type::INT8),
                (&limit, Type::INT8),
                (&from_dead, Type::INT8),
                (&from_id, Type::INT8),
            ],
        )?)
    })?;
    let n = |i: usize| -> Result<u64> {
        Ok(row.try_get::<_, i64>(i).map_err(|e| s.err(e))?.max(0) as u64)
    };
    let counts = PurgeCounts {
        expired: n(0)?,
        used: n(1)?,
        revoked: n(2)?,
    };
    let last: (Option<i64>, Option<i64>) = (
        row.try_get(3).map_err(|e| s.err(e))?,
        row.try_get(4).map_err(|e| s.err(e))?,
    );
    s.purge_from = match last {
        (Some(d), Some(i)) => Some((cutoff, d, i)),
        _ => None,
    };
    Ok(counts)
}
