//! The limits several `serve` processes share: one upsert that counts and reads back.

use super::SqliteStore;
use crate::store::LimitCount;
use anyhow::Result;
use rusqlite::{OptionalExtension, params};

pub(super) fn hit(
    s: &mut SqliteStore,
    key: &[u8; 32],
    window: i64,
    now: i64,
) -> Result<LimitCount> {
    // One statement: the row is written and read under SQLite's write lock, so two processes
    // never read the same count. The right-hand sides all see the row as it was.
    s.conn
        .query_row(
            "INSERT INTO pwreset_limits (key_hash, hits, expires_at) VALUES (?1, 1, ?2 + ?3)
             ON CONFLICT (key_hash) DO UPDATE SET
                 hits = CASE WHEN expires_at <= ?2 THEN 1 ELSE hits + 1 END,
                 expires_at = CASE WHEN expires_at <= ?2 THEN ?2 + ?3 ELSE expires_at END
             RETURNING hits, expires_at",
            params![&key[..], now, window],
            |r| {
                Ok(LimitCount {
                    hits: r.get(0)?,
                    expires_at: r.get(1)?,
                })
            },
        )
        .map_err(|e| s.ctx.err(e))
}

pub(super) fn peek(s: &mut SqliteStore, key: &[u8; 32], now: i64) -> Result<LimitCount> {
    let row = s
        .conn
        .query_row(
            "SELECT hits, expires_at FROM pwreset_limits WHERE key_hash = ?1 AND expires_at > ?2",
            params![&key[..], now],
            |r| {
                Ok(LimitCount {
                    hits: r.get(0)?,
                    expires_at: r.get(1)?,
                })
            },
        )
        .optional()
        .map_err(|e| s.ctx.err(e))?;
    Ok(row.unwrap_or(LimitCount {
        hits: 0,
        expires_at: now,
    }))
}

pub(super) fn purge(s: &mut SqliteStore, now: i64) -> Result<u64> {
    let n = s
        .conn
        .execute("DELETE FROM pwreset_limits WHERE expires_at <= ?1", [now])
        .map_err(|e| s.ctx.err(e))?;
    Ok(n as u64)
}
