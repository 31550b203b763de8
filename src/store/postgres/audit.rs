//! The audit trail.

use super::{PgStore, Quoted};
use crate::store::{AuditEntry, AuditEvent, AuditFilter};
use anyhow::Result;
use postgres::Client;
use postgres::fallible_iterator::FallibleIterator;
use postgres::types::{ToSql, Type};

/// Write an audit row inside the caller's transaction.
pub(super) fn insert(
    c: &mut Client,
    q: &Quoted,
    e: &AuditEvent<'_>,
) -> Result<(), postgres::Error> {
    let user_id = e.user_id.map(|u| u.to_string());
    c.execute_typed(
        &format!(
            "INSERT INTO {} (at, actor, action, user_id, email, outcome, detail)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
            q.audit
        ),
        &[
            (&e.at, Type::INT8),
            (&e.actor, Type::TEXT),
            (&e.action.as_str(), Type::TEXT),
            (&user_id, Type::TEXT),
            (&e.email, Type::TEXT),
            (&e.outcome.as_str(), Type::TEXT),
            (&e.detail, Type::TEXT),
        ],
    )?;
    Ok(())
}

pub(super) fn entries(
    s: &mut PgStore,
    filter: &AuditFilter,
    each: &mut dyn FnMut(AuditEntry) -> Result<()>,
) -> Result<()> {
    let sql = format!(
        "SELECT at, actor, action, user_id, email, outcome, detail FROM {}
          WHERE ($1::text IS NULL OR user_id = $1) AND ($2::bigint IS NULL OR at >= $2)
          ORDER BY at DESC, id DESC LIMIT $3",
        s.q.audit
    );
    let user_id = filter.user_id.as_ref().map(|u| u.to_string());
    let limit = i64::from(filter.limit);
    let server = s.server.clone();
    let params: [(&(dyn ToSql + Sync), Type); 3] = [
        (&user_id, Type::TEXT),
        (&filter.since, Type::INT8),
        (&limit, Type::INT8),
    ];
    let mut rows = s
        .client
        .query_typed_raw(&sql, params)
        .map_err(|e| super::map_error(&server, e))?;
    loop {
        let row = match rows.next() {
            Ok(Some(r)) => r,
            Ok(None) => break,
            Err(e) => return Err(super::map_error(&server, e)),
        };
        let entry = (|| -> Result<AuditEntry, postgres::Error> {
            Ok(AuditEntry {
                at: row.try_get(0)?,
                actor: row.try_get::<_, Option<String>>(1)?.unwrap_or_default(),
                action: row.try_get::<_, Option<String>>(2)?.unwrap_or_default(),
                user_id: row.try_get(3)?,
                email: row.try_get(4)?,
                outcome: row.try_get::<_, Option<String>>(5)?.unwrap_or_default(),
                detail: row.try_get(6)?,
            })
        })()
        .map_err(|e| super::map_error(&server, e))?;
        each(entry)?;
    }
    Ok(())
}
