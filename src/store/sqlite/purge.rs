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

/// How a purge walks the dead tokens of one cutoff.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Walk {
    /// By ranges of the key, `after` up to the last token that was there when the purge began.
    /// Tokens die in about the order they were made, so the dead ones are mostly a run at the
    /// front of the key: a range is read in key order and its rows deleted where they lie,
    /// the expired ones in a DELETE that returns nothing (reading back every deleted row cost
    /// a third of the purge) and the few used or revoked ones after them, read back to be
    /// counted. Past `last` come tokens made since, which are live.
    ById { cutoff: i64, after: i64, last: i64 },
    /// By the dead_at index, when dead tokens are scattered among live ones: once a range of
    /// the key holds fewer than half dead tokens, reading it is mostly reading live rows.
    ByDead { cutoff: i64 },
}

impl Walk {
    fn cutoff(self) -> i64 {
        match self {
            Walk::ById { cutoff, .. } | Walk::ByDead { cutoff } => cutoff,
        }
    }
}

/// Delete about `limit` dead tokens, in short transactions of at most `limit` rows each;
/// fewer than `limit` only when none is left.
pub(super) fn batch(s: &mut SqliteStore, cutoff: i64, limit: u32) -> Result<PurgeCounts> {
    let walk = match s.purge {
        Some(w) if w.cutoff() == cutoff => w,
        _ => start(s, cutoff)?,
    };
    let mut total = PurgeCounts::default();
    if let Walk::ById { after, last, .. } = walk {
        let (counts, next) = by_id(s, cutoff, after, last, limit)?;
        total.add(counts);
        s.purge = Some(next);
        if total.total() >= u64::from(limit) {
            return Ok(total);
        }
    }
    // By the index: what the key ranges left, or everything when the dead are few.
    let left = u32::try_from(u64::from(limit).saturating_sub(total.total())).unwrap_or(limit);
    total.add(by_dead(s, cutoff, left.max(1))?);
    s.purge = Some(Walk::ByDead { cutoff });
    Ok(total)
}

/// The walk for a new cutoff: by key ranges from the first token, when there is one.
fn start(s: &SqliteStore, cutoff: i64) -> Result<Walk> {
    let (first, last): (Option<i64>, Option<i64>) = s
        .conn
        .query_row("SELECT min(id), max(id) FROM pwreset_tokens", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .map_err(|e| s.ctx.err(e))?;
    Ok(match (first, last) {
        (Some(first), Some(last)) => Walk::ById {
            cutoff,
            after: first.saturating_sub(1),
            last,
        },
        _ => Walk::ByDead { cutoff },
    })
}

/// Key ranges of `limit` ids, one transaction each, until about `limit` tokens are gone, the
/// range ends, or a range holds fewer than half dead tokens (then: by the index). Returns the
/// counts and where to go on.
fn by_id(
    s: &mut SqliteStore,
    cutoff: i64,
    mut after: i64,
    last: i64,
    limit: u32,
) -> Result<(PurgeCounts, Walk)> {
    let mut total = PurgeCounts::default();
    while after < last && total.total() < u64::from(limit) {
        let upto = after.saturating_add(i64::from(limit)).min(last);
        let tx = begin(&mut s.conn, &s.ctx)?;
        let run = || -> rusqlite::Result<PurgeCounts> {
            let expired = tx
                .prepare_cached(
                    "DELETE FROM pwreset_tokens
                      WHERE id > ?1 AND id <= ?2 AND dead_at <= ?3
                        AND used_at IS NULL AND revoked_at IS NULL",
                )?
                .execute(params![after, upto, cutoff])? as u64;
            let mut counts = PurgeCounts {
                expired,
                ..PurgeCounts::default()
            };
            let mut rest = tx.prepare_cached(
                "DELETE FROM pwreset_tokens WHERE id > ?1 AND id <= ?2 AND dead_at <= ?3
                 RETURNING used_at IS NOT NULL",
            )?;
            let mut rows = rest.query(params![after, upto, cutoff])?;
            while let Some(r) = rows.next()? {
                if r.get::<_, bool>(0)? {
                    counts.used += 1;
                } else {
                    counts.revoked += 1;
                }
            }
            Ok(counts)
        };
        let counts = run().map_err(|e| s.ctx.err(e))?;
        tx.commit().map_err(|e| s.ctx.err(e))?;
        total.add(counts);
        let span = u64::try_from(upto - after).unwrap_or(u64::MAX);
        after = upto;
        if counts.total().saturating_mul(2) < span {
            return Ok((total, Walk::ByDead { cutoff }));
        }
    }
    let next = if after < last {
        Walk::ById {
            cutoff,
            after,
            last,
        }
    } else {
        Walk::ByDead { cutoff }
    };
    Ok((total, next))
}

/// Up to `limit` dead tokens by the dead_at index, in one transaction.
fn by_dead(s: &mut SqliteStore, cutoff: i64, limit: u32) -> Result<PurgeCounts> {
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
