//! The audit trail.

use super::SqliteStore;
use crate::store::{AuditEntry, AuditEvent, AuditFilter};
use anyhow::Result;
use rusqlite::params;

pub(super) const INSERT: &str =
    "INSERT INTO pwreset_audit (at, actor, action, user_id, email, outcome, detail)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";

/// Write an audit row inside the caller's transaction.
pub(super) fn insert(tx: &rusqlite::Transaction<'_>, e: &AuditEvent<'_>) -> rusqlite::Result<()> {
    let mut stmt = tx.prepare_cached(INSERT)?;
    stmt.execute(params![
        e.at,
        e.actor,
        e.action.as_str(),
        e.user_id,
        e.email,
        e.outcome.as_str(),
        e.detail
    ])?;
    Ok(())
}

pub(super) fn entries(
    s: &SqliteStore,
    filter: &AuditFilter,
    each: &mut dyn FnMut(AuditEntry) -> Result<()>,
) -> Result<()> {
    let mut stmt = s
        .conn
        .prepare(
            "SELECT at, actor, action, user_id, email, outcome, detail FROM pwreset_audit
              WHERE (?1 IS NULL OR user_id = ?1) AND (?2 IS NULL OR at >= ?2)
              ORDER BY at DESC, id DESC LIMIT ?3",
        )
        .map_err(|e| s.ctx.err(e))?;
    let mut rows = stmt
        .query(params![filter.user_id, filter.since, filter.limit])
        .map_err(|e| s.ctx.err(e))?;
    while let Some(r) = rows.next().map_err(|e| s.ctx.err(e))? {
        let text = |i: usize| -> rusqlite::Result<Option<String>> {
            Ok(match r.get_ref(i)? {
                rusqlite::types::ValueRef::Null => None,
                v => Some(super::text_lossy(v)),
            })
        };
        let entry = (|| -> rusqlite::Result<AuditEntry> {
            Ok(AuditEntry {
                at: r.get(0)?,
                actor: text(1)?.unwrap_or_default(),
                action: text(2)?.unwrap_or_default(),
                user_id: text(3)?,
                email: text(4)?,
                outcome: text(5)?.unwrap_or_default(),
                detail: text(6)?,
            })
        })()
        .map_err(|e| s.ctx.err(e))?;
        each(entry)?;
    }
    Ok(())
}
