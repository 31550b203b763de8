//! The limits several `serve` processes share: one upsert that counts and reads back.

use super::PgStore;
use crate::store::LimitCount;
use anyhow::Result;
use postgres::types::Type;

pub(super) fn hit(s: &mut PgStore, key: &[u8; 32], window: i64, now: i64) -> Result<LimitCount> {
    // One statement: ON CONFLICT locks the row, so two processes never read the same count.
    let sql = format!(
        "INSERT INTO {} AS l (key_hash, hits, expires_at) VALUES ($1, 1, $2 + $3)
         ON CONFLICT (key_hash) DO UPDATE SET
             hits = CASE WHEN l.expires_at <= $2 THEN 1 ELSE l.hits + 1 END,
             expires_at = CASE WHEN l.expires_at <= $2 THEN $2 + $3 ELSE l.expires_at END
         RETURNING hits, expires_at",
        s.q.limits
    );
    let key = &key[..];
    s.in_tx(|c, _, _| {
        let r = c.query_typed_one(
            &sql,
            &[
                (&key, Type::BYTEA),
                (&now, Type::INT8),
                (&window, Type::INT8),
            ],
        )?;
        Ok(LimitCount {
            hits: r.try_get(0)?,
            expires_at: r.try_get(1)?,
        })
    })
}

pub(super) fn peek(s: &mut PgStore, key: &[u8; 32], now: i64) -> Result<LimitCount> {
    let sql = format!(
        "SELECT hits, expires_at FROM {} WHERE key_hash = $1 AND expires_at > $2",
        s.q.limits
    );
    let key = &key[..];
    s.in_tx(|c, _, _| {
        let rows = c.query_typed(&sql, &[(&key, Type::BYTEA), (&now, Type::INT8)])?;
        Ok(match rows.first() {
            Some(r) => LimitCount {
                hits: r.try_get(0)?,
                expires_at: r.try_get(1)?,
            },
            None => LimitCount {
                hits: 0,
                expires_at: now,
            },
        })
    })
}

pub(super) fn purge(s: &mut PgStore, now: i64) -> Result<u64> {
    let sql = format!("DELETE FROM {} WHERE expires_at <= $1", s.q.limits);
    s.in_tx(|c, _, _| Ok(c.execute_typed(&sql, &[(&now, Type::INT8)])?))
}
