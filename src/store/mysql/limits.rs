//! The limits several `serve` processes share: an upsert that counts, read back in its
//! transaction.

use super::{MysqlStore, opt_i64};
use crate::store::LimitCount;
use anyhow::Result;
use mysql::Value;
use mysql::prelude::Queryable;

pub(super) fn hit(s: &mut MysqlStore, key: &[u8; 32], window: i64, now: i64) -> Result<LimitCount> {
    s.tx(|conn, _| {
        // The upsert holds the row's lock until commit, so the read that follows sees this
        // hit and no other process's in between. Assignments run left to right: `hits` is
        // decided while `expires_at` is still the old one, which the second test reads too.
        conn.exec_drop(
            "INSERT INTO pwreset_limits (key_hash, hits, expires_at) VALUES (?, 1, ?)
             ON DUPLICATE KEY UPDATE
                 hits = IF(expires_at <= ?, 1, hits + 1),
                 expires_at = IF(expires_at <= ?, ?, expires_at)",
            (&key[..], now + window, now, now, now + window),
        )?;
        let row: Option<(Value, Value)> = conn.exec_first(
            "SELECT hits, expires_at FROM pwreset_limits WHERE key_hash = ?",
            (&key[..],),
        )?;
        let (hits, expires_at) = row.unwrap_or((Value::NULL, Value::NULL));
        Ok(LimitCount {
            hits: opt_i64(hits).unwrap_or(1),
            expires_at: opt_i64(expires_at).unwrap_or(now + window),
        })
    })
}

pub(super) fn peek(s: &mut MysqlStore, key: &[u8; 32], now: i64) -> Result<LimitCount> {
    s.tx(|conn, _| {
        let row: Option<(Value, Value)> = conn.exec_first(
            "SELECT hits, expires_at FROM pwreset_limits WHERE key_hash = ? AND expires_at > ?",
            (&key[..], now),
        )?;
        Ok(match row {
            Some((hits, expires_at)) => LimitCount {
                hits: opt_i64(hits).unwrap_or(0),
                expires_at: opt_i64(expires_at).unwrap_or(now),
            },
            None => LimitCount {
                hits: 0,
                expires_at: now,
            },
        })
    })
}

pub(super) fn purge(s: &mut MysqlStore, now: i64) -> Result<u64> {
    s.tx(|conn, _| {
        conn.exec_drop("DELETE FROM pwreset_limits WHERE expires_at <= ?", (now,))?;
        Ok(conn.affected_rows())
    })
}
