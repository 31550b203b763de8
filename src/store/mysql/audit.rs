//! The audit trail.

use super::{MysqlStore, Shared, opt_i64, text_lossy};
use crate::store::{AuditEntry, AuditEvent, AuditFilter};
use anyhow::Result;
use mysql::prelude::Queryable;
use mysql::{Conn, Value};

/// Rows per INSERT: see tokens::ROWS.
const ROWS: usize = 2000;

/// Write audit rows inside the caller's transaction, several per statement.
pub(super) fn insert(conn: &mut Conn, _sh: &Shared, events: &[AuditEvent<'_>]) -> Result<()> {
    for part in events.chunks(ROWS) {
        let mut params: Vec<Value> = Vec::with_capacity(part.len() * 7);
        for e in part {
            params.extend([
                Value::Int(e.at),
                Value::from(e.actor),
                Value::from(e.action.as_str()),
                e.user_id
                    .map_or(Value::NULL, |u| Value::from(u.to_string())),
                e.email.map_or(Value::NULL, Value::from),
                Value::from(e.outcome.as_str()),
                e.detail.map_or(Value::NULL, Value::from),
            ]);
        }
        super::exec_rows(
            conn,
            "INSERT INTO pwreset_audit (at, actor, action, user_id, email, outcome, detail)",
            7,
            &params,
            "",
        )?;
    }
    Ok(())
}

pub(super) fn entries(
    s: &mut MysqlStore,
    filter: &AuditFilter,
    each: &mut dyn FnMut(AuditEntry) -> Result<()>,
) -> Result<()> {
    let user = filter
        .user_id
        .as_ref()
        .map_or(Value::NULL, |u| Value::from(u.to_string()));
    let since = filter.since.map_or(Value::NULL, Value::Int);
    s.read(|conn, _| {
        let rows = conn.exec_iter(
            "SELECT at, actor, action, user_id, email, outcome, detail FROM pwreset_audit
              WHERE (? IS NULL OR user_id = ?) AND (? IS NULL OR at >= ?)
              ORDER BY at DESC, id DESC LIMIT ?",
            vec![
                user.clone(),
                user,
                since.clone(),
                since,
                Value::UInt(u64::from(filter.limit)),
            ],
        )?;
        for row in rows {
            let mut row = row?;
            let mut text = |i: usize| match row.take::<Value, usize>(i) {
                None | Some(Value::NULL) => None,
                Some(v) => Some(text_lossy(v)),
            };
            let entry = AuditEntry {
                at: 0,
                actor: text(1).unwrap_or_default(),
                action: text(2).unwrap_or_default(),
                user_id: text(3),
                email: text(4),
                outcome: text(5).unwrap_or_default(),
                detail: text(6),
            };
            let at = row.take::<Value, usize>(0).and_then(opt_i64).unwrap_or(0);
            each(AuditEntry { at, ..entry })?;
        }
        Ok(())
    })
}
