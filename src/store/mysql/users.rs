//! Users: pwreset's own table, or the application's table through the `[users]` mapping.

use super::{MysqlStore, code, server_code};
use crate::error::{Exit, fail};
use crate::store::{AuditAction, AuditEvent, AuditOutcome, User, UserId, UserSummary};
use crate::token::StoredValue;
use anyhow::Result;
use mysql::Value;
use mysql::prelude::Queryable;

pub(super) fn add(
    s: &mut MysqlStore,
    email: &str,
    name: Option<&str>,
    now: i64,
    actor: &str,
) -> Result<UserId> {
    let key = crate::email::key(email);
    let result = s.tx(|conn, sh| {
        conn.exec_drop(
            "INSERT INTO users (email, email_key, name, password_hash, created_at) VALUES (?, ?, ?, NULL, ?)",
            (email, &key, name, now),
        )?;
        let id = UserId::Int(i64::try_from(conn.last_insert_id()).unwrap_or(i64::MAX));
        super::audit::insert(
            conn,
            sh,
            &[AuditEvent {
                at: now,
                actor,
                action: AuditAction::UserAdd,
                user_id: Some(&id),
                email: Some(email),
                outcome: AuditOutcome::Ok,
                detail: None,
            }],
        )?;
        Ok(id)
    });
    match result {
        // The unique key decides, so two processes adding the same address cannot both win.
        Err(e) if server_code(&e) == Some(code::DUP_ENTRY) => {
            let existing: Option<String> = s
                .conn
                .exec_first("SELECT email FROM users WHERE email_key = ?", (&key,))
                .ok()
                .flatten();
            Err(fail(
                Exit::DataErr,
                format!(
                    "a user with address {} already exists (addresses match regardless of case and Unicode look-alike forms)",
                    crate::ui::escape(existing.as_deref().unwrap_or(email))
                ),
            ))
        }
        Err(e) => Err(s.s.ctx.err(e)),
        Ok(id) => Ok(id),
    }
}

pub(super) fn with_email(s: &mut MysqlStore, value: &str) -> Result<Vec<User>> {
    if s.s.own_users {
        let sql = format!("{} WHERE email_key = ? LIMIT 2", s.s.q.select_users);
        let key = crate::email::key(value);
        return query(s, &sql, vec![Value::from(key)]);
    }
    // The application's own index on its email column serves this. Its collation decides what
    // equal means (often case- and accent-insensitive, and blind to trailing spaces), so keep
    // only the rows that are the same address folded the way pwreset folds, and let an exact
    // match win over the others, as a binary comparison would.
    let sql = format!("{} WHERE {} = ? LIMIT 8", s.s.q.select_users, s.s.q.email);
    let found = query(s, &sql, vec![Value::from(value)])?;
    let wanted = crate::email::key(value);
    let mut same: Vec<User> = found
        .into_iter()
        .filter(|u| u.email == value || crate::email::key(&u.email) == wanted)
        .collect();
    if same.iter().any(|u| u.email == value) {
        same.retain(|u| u.email == value);
    }
    same.truncate(2);
    Ok(same)
}

pub(super) fn scan(s: &mut MysqlStore, wanted: &mut dyn FnMut(&str) -> bool) -> Result<Vec<User>> {
    s.read(|conn, sh| {
        // Streams: rows are read off the socket one at a time, never the whole table at once.
        let rows = conn.exec_iter(sh.q.select_users.as_str(), ())?;
        let mut out = Vec::new();
        for row in rows {
            let row = row?;
            let keep = match row.as_ref(1) {
                Some(Value::Bytes(b)) => match std::str::from_utf8(b) {
                    Ok(text) => wanted(text),
                    Err(_) => wanted(&String::from_utf8_lossy(b)),
                },
                _ => false,
            };
            if keep {
                out.push(sh.user(row)?);
            }
        }
        Ok(out)
    })
}

pub(super) fn after(s: &mut MysqlStore, after: Option<&UserId>, limit: usize) -> Result<Vec<User>> {
    let id = s.s.q.id.clone();
    let limit = Value::UInt(limit as u64);
    match after {
        Some(after) => {
            let sql = format!(
                "{} WHERE {id} > ? ORDER BY {id} LIMIT ?",
                s.s.q.select_users
            );
            let v = s.s.id_value(after);
            query(s, &sql, vec![v, limit])
        }
        None => {
            let sql = format!(
                "{} WHERE {id} IS NOT NULL ORDER BY {id} LIMIT ?",
                s.s.q.select_users
            );
            query(s, &sql, vec![limit])
        }
    }
}

pub(super) fn by_id(s: &mut MysqlStore, id: &UserId) -> Result<Option<User>> {
    let sql = format!("{} WHERE {} = ?", s.s.q.select_users, s.s.q.id);
    let v = s.s.id_value(id);
    Ok(query(s, &sql, vec![v])?.pop())
}

pub(super) fn count(s: &mut MysqlStore) -> Result<u64> {
    let sql = format!("SELECT COUNT(*) FROM {}", s.s.q.table);
    s.read(|conn, _| Ok(conn.exec_first::<u64, _, _>(sql, ())?.unwrap_or(0)))
}

pub(super) fn list(
    s: &mut MysqlStore,
    now: i64,
    each: &mut dyn FnMut(UserSummary) -> Result<()>,
) -> Result<()> {
    let q = &s.s.q;
    // `name` is a column of u, or NULL when the mapping has no name column.
    let name = if q.name == "NULL" {
        q.name.clone()
    } else {
        format!("u.{}", q.name)
    };
    let sql = format!(
        "SELECT u.{id}, u.{email}, u.{pw},
                (SELECT COUNT(*) FROM pwreset_tokens t
                  WHERE t.user_id = u.{id} AND t.used_at IS NULL AND t.revoked_at IS NULL
                    AND t.expires_at > ?),
                {name}
           FROM {t} u ORDER BY u.{id}",
        id = q.id,
        email = q.email,
        pw = q.password,
        t = q.table
    );
    s.read(|conn, sh| {
        let rows = conn.exec_iter(sql, (now,))?;
        for row in rows {
            let mut row = row?;
            let open = row
                .take::<Value, usize>(3)
                .and_then(super::opt_i64)
                .unwrap_or(0);
            let name = row.take::<Value, usize>(4).and_then(super::optional_text);
            let pw_binary = super::is_binary(&row, 2);
            let mut take = |i: usize| row.take::<Value, usize>(i).unwrap_or(Value::NULL);
            let (id, email, password) = (take(0), take(1), take(2));
            each(UserSummary {
                id: sh.id_from(id)?,
                email: super::text_lossy(email),
                name,
                has_password: super::stored_value(password, pw_binary).is_set(),
                open_tokens: open,
            })?;
        }
        Ok(())
    })
}

/// The users a query on the users table returns.
fn query(s: &mut MysqlStore, sql: &str, params: Vec<Value>) -> Result<Vec<User>> {
    s.read(|conn, sh| {
        let rows: Vec<mysql::Row> = conn.exec(sql, params)?;
        rows.into_iter().map(|r| sh.user(r)).collect()
    })
}

/// Up to `limit` stored password values that are set, for init's census of formats.
pub(super) fn sample_passwords(s: &mut MysqlStore, limit: usize) -> Result<Vec<StoredValue>> {
    let sql = format!(
        "SELECT {pw} FROM {t} WHERE {pw} IS NOT NULL AND {pw} <> '' LIMIT ?",
        pw = s.s.q.password,
        t = s.s.q.table
    );
    s.read(|conn, _| {
        let rows: Vec<mysql::Row> = conn.exec(sql, (limit as u64,))?;
        Ok(rows
            .into_iter()
            .map(|mut r| {
                let binary = super::is_binary(&r, 0);
                super::stored_value(r.take::<Value, usize>(0).unwrap_or(Value::NULL), binary)
            })
            .collect())
    })
}
