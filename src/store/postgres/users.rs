//! Users: pwreset's own table, or the application's table through the `[users]` mapping.

use super::{PgStore, TxError, text_lossy, user_from_row, user_id};
use crate::error::{Exit, fail};
use crate::store::{AuditAction, AuditEvent, AuditOutcome, User, UserId, UserSummary};
use crate::token::StoredValue;
use anyhow::Result;
use postgres::fallible_iterator::FallibleIterator;
use postgres::types::{ToSql, Type};

pub(super) fn add(
    s: &mut PgStore,
    email: &str,
    name: Option<&str>,
    now: i64,
    actor: &str,
) -> Result<UserId> {
    let key = crate::email::key(email);
    let insert = format!(
        "INSERT INTO {} (email, email_key, name, password_hash, created_at)
         VALUES ($1, $2, $3, NULL, $4)
         ON CONFLICT (email_key) DO NOTHING RETURNING id",
        s.q.users
    );
    let existing_sql = format!("SELECT email FROM {} WHERE email_key = $1", s.q.users);
    let added = s.in_tx(|c, q, _| {
        // The unique key decides: of two processes adding one address, the second waits for
        // the first and then inserts nothing.
        let row = c.query_typed_opt(
            &insert,
            &[
                (&email, Type::TEXT),
                (&key, Type::TEXT),
                (&name, Type::TEXT),
                (&now, Type::INT8),
            ],
        )?;
        let Some(row) = row else {
            let existing: Option<String> = c
                .query_typed_opt(&existing_sql, &[(&key, Type::TEXT)])?
                .map(|r| r.try_get(0))
                .transpose()?;
            return Ok(Err(existing.unwrap_or_else(|| email.to_owned())));
        };
        let id = UserId::Int(row.try_get(0)?);
        super::audit::insert(
            c,
            q,
            &AuditEvent {
                at: now,
                actor,
                action: AuditAction::UserAdd,
                user_id: Some(&id),
                email: Some(email),
                outcome: AuditOutcome::Ok,
                detail: None,
            },
        )
        .map_err(TxError::Db)?;
        Ok(Ok(id))
    })?;
    added.map_err(|existing| {
        fail(
            Exit::DataErr,
            format!(
                "a user with address {} already exists (addresses match regardless of case and Unicode look-alike forms)",
                crate::ui::escape(&existing)
            ),
        )
    })
}

pub(super) fn with_email(s: &mut PgStore, value: &str) -> Result<Vec<User>> {
    if s.own_users {
        let sql = format!("{} WHERE email_key = $1 LIMIT 2", s.q.select_users);
        let key = crate::email::key(value);
        return query(s, &sql, &[(&key, Type::TEXT)]);
    }
    // The application's own index on its email column serves this; the column is compared as
    // its own type (text, varchar or citext), so that index applies.
    let sql = format!(
        "{} WHERE {} = $1::text LIMIT 2",
        s.q.select_users, s.q.email
    );
    query(s, &sql, &[(&value, Type::TEXT)])
}

pub(super) fn scan(s: &mut PgStore, wanted: &mut dyn FnMut(&str) -> bool) -> Result<Vec<User>> {
    let kind = s.id;
    let server = s.server.clone();
    let sql = s.q.select_users.clone();
    // Rows stream from the server as they are read; only the wanted ones are kept.
    let mut rows = s
        .client
        .query_typed_raw(&sql, std::iter::empty::<(&(dyn ToSql + Sync), Type)>())
        .map_err(|e| super::map_error(&server, e))?;
    let mut out = Vec::new();
    loop {
        let row = match rows.next() {
            Ok(Some(r)) => r,
            Ok(None) => break,
            Err(e) => return Err(super::map_error(&server, e)),
        };
        let keep = match row.try_get::<_, Option<&str>>(1) {
            Ok(Some(text)) => wanted(text),
            Ok(None) => false,
            Err(_) => wanted(&text_lossy(&row, 1).map_err(|e| super::map_error(&server, e))?),
        };
        if keep {
            out.push(user_from_row(kind, &row).map_err(|e| super::map_error(&server, e))?);
        }
    }
    Ok(out)
}

pub(super) fn after(s: &mut PgStore, after: Option<&UserId>, limit: usize) -> Result<Vec<User>> {
    let id = s.q.id.clone();
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    match after {
        Some(after) => {
            let sql = format!(
                "{} WHERE {id} > {} ORDER BY {id} LIMIT $2",
                s.q.select_users,
                s.id.param(1)
            );
            let a = s.id_arg(after)?;
            query(
                s,
                &sql,
                &[(a.sql(), s.id.wire_type()), (&limit, Type::INT8)],
            )
        }
        None => {
            let sql = format!(
                "{} WHERE {id} IS NOT NULL ORDER BY {id} LIMIT $1",
                s.q.select_users
            );
            query(s, &sql, &[(&limit, Type::INT8)])
        }
    }
}

pub(super) fn by_id(s: &mut PgStore, id: &UserId) -> Result<Option<User>> {
    let sql = format!("{} WHERE {} = {}", s.q.select_users, s.q.id, s.id.param(1));
    let a = s.id_arg(id)?;
    Ok(query(s, &sql, &[(a.sql(), s.id.wire_type())])?.pop())
}

pub(super) fn count(s: &mut PgStore) -> Result<u64> {
    let sql = format!("SELECT count(*) FROM {}", s.q.users);
    let n: i64 = s
        .client
        .query_typed_one(&sql, &[])
        .and_then(|r| r.try_get(0))
        .map_err(|e| super::map_error(&s.server, e))?;
    Ok(n.max(0) as u64)
}

pub(super) fn list(
    s: &mut PgStore,
    now: i64,
    each: &mut dyn FnMut(UserSummary) -> Result<()>,
) -> Result<()> {
    let q = &s.q;
    let sql = format!(
        "SELECT {uid}, u.{email}, u.{pw},
                (SELECT count(*) FROM {tokens} t
                  WHERE t.user_id = u.{id} AND t.used_at IS NULL AND t.revoked_at IS NULL
                    AND t.expires_at > $1),
                {name}
           FROM {users} u ORDER BY u.{id}",
        name = q.name,
        uid = s.id.read(&format!("u.{}", q.id)),
        id = q.id,
        email = q.email,
        pw = q.password,
        tokens = q.tokens,
        users = q.users,
    );
    let kind = s.id;
    let server = s.server.clone();
    let mut rows = s
        .client
        .query_typed_raw(&sql, [(&now as &(dyn ToSql + Sync), Type::INT8)])
        .map_err(|e| super::map_error(&server, e))?;
    loop {
        let row = match rows.next() {
            Ok(Some(r)) => r,
            Ok(None) => break,
            Err(e) => return Err(super::map_error(&server, e)),
        };
        let summary = (|| -> Result<UserSummary, postgres::Error> {
            Ok(UserSummary {
                id: user_id(kind, &row, 0)?,
                email: text_lossy(&row, 1)?,
                has_password: super::stored_value(&row, 2)?.is_set(),
                open_tokens: row.try_get(3)?,
                name: row
                    .try_get::<_, Option<String>>(4)?
                    .filter(|t| !t.trim().is_empty()),
            })
        })()
        .map_err(|e| super::map_error(&server, e))?;
        each(summary)?;
    }
    Ok(())
}

/// The users a query on the users table returns.
fn query(s: &mut PgStore, sql: &str, params: &[(&(dyn ToSql + Sync), Type)]) -> Result<Vec<User>> {
    let rows = s
        .client
        .query_typed(sql, params)
        .map_err(|e| super::map_error(&s.server, e))?;
    rows.iter()
        .map(|r| user_from_row(s.id, r))
        .collect::<Result<Vec<User>, postgres::Error>>()
        .map_err(|e| super::map_error(&s.server, e))
}

pub(super) fn sample_passwords(s: &mut PgStore, limit: usize) -> Result<Vec<StoredValue>> {
    // Compared as text, whatever the column's type, so that a bytea or varchar column works.
    let sql = format!(
        "SELECT {pw} FROM {t} WHERE {pw} IS NOT NULL AND {pw}::text <> '' LIMIT $1",
        pw = s.q.password,
        t = s.q.users
    );
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = s
        .client
        .query_typed(&sql, &[(&limit, Type::INT8)])
        .map_err(|e| super::map_error(&s.server, e))?;
    rows.iter()
        .map(|r| super::stored_value(r, 0))
        .collect::<Result<Vec<_>, postgres::Error>>()
        .map_err(|e| super::map_error(&s.server, e))
}
