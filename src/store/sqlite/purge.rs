//! Purging dead tokens in short batches.

use super::{SqliteStore, begin};
use crate::store::PurgeCounts;
use anyhow::Result;
use rusqlite::params;

pub(super) fn count_dead(s: &SqliteStore, cutoff: i64) -> Result<PurgeCounts> {
    s.conn
        .query_row(
            "SELECT count(*) - count(used_at) - count(CASE WHEN used_at IS NULL THEN revoked_at END),
                    count(used_at),
                    count(CASE WHEN used_at IS NULL THEN revoked_at END)
               FROM pwreset_tokens WHERE dead_at <= ?1",
            [cutoff],
            |r| {
                Ok(PurgeCounts {
                    expired: r.get::<_, i64>(0)?.max(0) as u64,
                    used: r.get::<_, i64>(1)?.max(0) as u64,
                    revoked: r.get::<_, i64>(2)?.max(0) as u64,
                })
            },
        )
        .map_err(|e| s.ctx.err(e))
}

pub(super) fn batch(s: &mut SqliteStore, cutoff: i64, limit: u32) -> Result<PurgeCounts> {
    let tx = begin(&mut s.conn, &s.ctx)?;
    let mut counts = PurgeCounts::default();
    let run = |counts: &mut PurgeCounts| -> rusqlite::Result<()> {
        let mut stmt = tx.prepare_cached(
            "DELETE FROM pwreset_tokens WHERE id IN
                (SELECT id FROM pwreset_tokens WHERE dead_at <= ?1 ORDER BY dead_at LIMIT ?2)
             RETURNING used_at IS NOT NULL, revoked_at IS NOT NULL",
        )?;
        let mut rows = stmt.query(params![cutoff, limit])?;
        while let Some(r) = rows.next()? {
            if r.get::<_, bool>(0)? {
                counts.used += 1;
            } else if r.get::<_, bool>(1)? {
                counts.revoked += 1;
            } else {
                counts.expired += 1;
            }
        }
        Ok(())
    };
    run(&mut counts).map_err(|e| s.ctx.err(e))?;
    tx.commit().map_err(|e| s.ctx.err(e))?;
    Ok(counts)
}
