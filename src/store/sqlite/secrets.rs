//! Secrets several `serve` processes share: written once by whoever asks first, then read.

use super::{SqliteStore, begin};
use anyhow::Result;
use rusqlite::params;
use zeroize::Zeroizing;

pub(super) fn shared(
    s: &mut SqliteStore,
    name: &str,
    fresh: &[u8; 32],
    now: i64,
) -> Result<Zeroizing<Vec<u8>>> {
    // An immediate transaction holds the write lock from the start: a second process waits,
    // then finds the first one's row and keeps it.
    let tx = begin(&mut s.conn, &s.ctx)?;
    let value = tx
        .execute(
            "INSERT OR IGNORE INTO pwreset_secrets (name, value, created_at) VALUES (?1, ?2, ?3)",
            params![name, &fresh[..], now],
        )
        .and_then(|_| {
            tx.query_row(
                "SELECT value FROM pwreset_secrets WHERE name = ?1",
                [name],
                |r| r.get::<_, Vec<u8>>(0),
            )
        })
        .map(Zeroizing::new)
        .map_err(|e| s.ctx.err(e))?;
    tx.commit().map_err(|e| s.ctx.err(e))?;
    Ok(value)
}
