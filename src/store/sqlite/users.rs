//! Users: pwreset's own table, or the application's table through the `[users]` mapping.

use super::{SqliteStore, begin, text_lossy, user_from_row};
use crate::error::{Exit, fail};
use crate::store::{AuditAction, AuditEvent, AuditOutcome, User, UserId, UserSummary};
use anyhow::Result;
use rusqlite::{ErrorCode, params};

pub(super) fn add(
    s: &mut SqliteStore,
    email: &str,
    name: Option<&str>,
    now: i64,
    actor: &str,
) -> Result<UserId> {
    let key = crate::email::key(email);
    let tx = begin(&mut s.conn, &s.ctx)?;
    let inserted = tx.execute(
        "INSERT INTO users (email, email_key, name, password_hash, created_at) VALUES (?1, ?2, ?3, NULL, ?4)",
        params![email, key, name, now],
    );
    match inserted {
        Ok(_) => {}
        // The unique key decides, so two processes adding the same address cannot both win.
        Err(rusqlite::Error::SqliteFailure(f, _)) if f.code == ErrorCode::ConstraintViolation => {
            let existing: String = tx
                .query_row(
                    "SELECT email FROM users WHERE email_key = ?1",
                    [&key],
                    |r| r.get(0),
                )
                .unwrap_or_else(|_| email.to_owned());
            return Err(fail(
                Exit::DataErr,
                format!(
                    "a user with address {} already exists (addresses match regardless of case and Unicode look-alike forms)",
                    crate::ui::escape(&existing)
                ),
            ));
        }
        Err(e) => return Err(s.ctx.err(e)),
    }
    let id = UserId::Int(tx.last_insert_rowid());
    super::audit::insert(
        &tx,
        &AuditEvent {
            at: now,
            actor,
            action: AuditAction::UserAdd,
            user_id: Some(&id),
            email: Some(email),
            outcome: AuditOutcome::Ok,
            detail: None,
        },
    )?;
    tx.commit().map_err(|e| s.ctx.err(e))?;
    Ok(id)
}

pub(super) fn with_email(s: &SqliteStore, value: &str) -> Result<Vec<User>> {
    if s.own_users {
        let sql = format!("{} WHERE email_key = ?1 LIMIT 2", s.q.select_users);
        return query(s, &sql, params![crate::email::key(value)]);
    }
    // The application's own index on its email column serves this.
    let sql = format!("{} WHERE {} = ?1 LIMIT 2", s.q.select_users, s.q.email);
    query(s, &sql, params![value])
}

pub(super) fn scan(s: &SqliteStore, wanted: &mut dyn FnMut(&str) -> bool) -> Result<Vec<User>> {
    let mut stmt = s
        .conn
        .prepare(&s.q.select_users)
        .map_err(|e| s.ctx.err(e))?;
    let mut rows = stmt.query([]).map_err(|e| s.ctx.err(e))?;
    let mut out = Vec::new();
    while let Some(r) = rows.next().map_err(|e| s.ctx.err(e))? {
        // Borrow the text in place: most rows are looked at and dropped.
        let keep = match r.get_ref(1).map_err(|e| s.ctx.err(e))? {
            rusqlite::types::ValueRef::Text(t) => match std::str::from_utf8(t) {
                Ok(text) => wanted(text),
                Err(_) => wanted(&String::from_utf8_lossy(t)),
            },
            _ => false,
        };
        if keep {
            out.push(user_from_row(r).map_err(|e| s.ctx.err(e))?);
        }
    }
    Ok(out)
}

pub(super) fn after(s: &SqliteStore, after: Option<&UserId>, limit: usize) -> Result<Vec<User>> {
    let id = &s.q.id;
    match after {
        Some(after) => {
            let sql = format!(
                "{} WHERE {id} > ?1 ORDER BY {id} LIMIT ?2",
                s.q.select_users
            );
            query(s, &sql, params![after, limit as i64])
        }
        None => {
            let sql = format!(
                "{} WHERE {id} IS NOT NULL ORDER BY {id} LIMIT ?1",
                s.q.select_users
            );
            query(s, &sql, params![limit as i64])
        }
    }
}

pub(super) fn by_id(s: &SqliteStore, id: &UserId) -> Result<Option<User>> {
    let sql = format!("{} WHERE {} = ?1", s.q.select_users, s.q.id);
    Ok(query(s, &sql, params![id])?.pop())
}

pub(super) fn count(s: &SqliteStore) -> Result<u64> {
    let sql = format!("SELECT count(*) FROM {}", s.q.table);
    let n: i64 = s
        .conn
        .query_row(&sql, [], |r| r.get(0))
        .map_err(|e| s.ctx.err(e))?;
    Ok(n.max(0) as u64)
}

pub(super) fn list(
    s: &SqliteStore,
    now: i64,
    each: &mut dyn FnMut(UserSummary) -> Result<()>,
) -> Result<()> {
    let q = &s.q;
    let sql = format!(
        "SELECT u.{id}, u.{email}, u.{pw},
                (SELECT count(*) FROM pwreset_tokens t
                  WHERE t.user_id = u.{id} AND t.used_at IS NULL AND t.revoked_at IS NULL
                    AND t.expires_at > ?1)
           FROM {t} u ORDER BY u.{id}",
        id = q.id,
        email = q.email,
        pw = q.password,
        t = q.table
    );
    let mut stmt = s.conn.prepare(&sql).map_err(|e| s.ctx.err(e))?;
    let mut rows = stmt.query([now]).map_err(|e| s.ctx.err(e))?;
    while let Some(r) = rows.next().map_err(|e| s.ctx.err(e))? {
        let summary = (|| -> rusqlite::Result<UserSummary> {
            Ok(UserSummary {
                id: r.get(0)?,
                email: text_lossy(r.get_ref(1)?),
                has_password: super::stored_value(r.get_ref(2)?).is_set(),
                open_tokens: r.get(3)?,
            })
        })()
        .map_err(|e| s.ctx.err(e))?;
        each(summary)?;
    }
    Ok(())
}

pub(super) fn sample_passwords(
    s: &SqliteStore,
    limit: usize,
) -> Result<Vec<crate::token::StoredValue>> {
    let sql = format!(
        "SELECT {pw} FROM {t} WHERE {pw} IS NOT NULL AND {pw} <> '' LIMIT ?1",
        pw = s.q.password,
        t = s.q.table
    );
    let mut stmt = s.conn.prepare(&sql).map_err(|e| s.ctx.err(e))?;
    let rows = stmt
        .query_map([limit as i64], |r| Ok(super::stored_value(r.get_ref(0)?)))
        .map_err(|e| s.ctx.err(e))?;
    rows.collect::<rusqlite::Result<Vec<_>>>()
        .map_err(|e| s.ctx.err(e))
}

/// The users a query on the users table returns.
fn query(s: &SqliteStore, sql: &str, params: impl rusqlite::Params) -> Result<Vec<User>> {
    let mut stmt = s.conn.prepare_cached(sql).map_err(|e| s.ctx.err(e))?;
    let rows = stmt
        .query_map(params, user_from_row)
        .map_err(|e| s.ctx.err(e))?;
    rows.collect::<rusqlite::Result<Vec<User>>>()
        .map_err(|e| s.ctx.err(e))
}
