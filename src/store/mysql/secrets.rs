//! Secrets several `serve` processes share: written once by whoever asks first, then read.

use super::MysqlStore;
use anyhow::{Result, anyhow};
use mysql::prelude::Queryable;
use zeroize::Zeroizing;

pub(super) fn shared(
    s: &mut MysqlStore,
    name: &str,
    fresh: &[u8; 32],
    now: i64,
) -> Result<Zeroizing<Vec<u8>>> {
    s.tx(|conn, _| {
        // The no-op update locks the row that is there (waiting for a process inserting it
        // at the same moment), and a locking read sees the latest committed row rather than
        // the transaction's snapshot. Not INSERT IGNORE, which would hide other errors too.
        conn.exec_drop(
            "INSERT INTO pwreset_secrets (name, value, created_at) VALUES (?, ?, ?)
             ON DUPLICATE KEY UPDATE name = name",
            (name, &fresh[..], now),
        )?;
        let value: Option<Vec<u8>> = conn.exec_first(
            "SELECT value FROM pwreset_secrets WHERE name = ? LOCK IN SHARE MODE",
            (name,),
        )?;
        value
            .map(Zeroizing::new)
            .ok_or_else(|| anyhow!("the shared secret was not there after it was written"))
    })
}
