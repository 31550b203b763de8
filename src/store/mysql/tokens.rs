//! Tokens: issuing (with the throttle), looking up, spending, revoking.
//!
//! A bulk request stores a chunk of users with a handful of multi-row statements instead of
//! several statements per user: one conditional upsert of the throttle rows, one read-back of
//! which rows it moved, one revocation of older open tokens, one insert of the tokens, one of
//! the audit rows.

use super::{MysqlStore, Shared, marks, opt_i64, stored_param, stored_value, text_lossy};
use crate::store::{
    AuditAction, AuditEvent, AuditOutcome, Consume, Consumed, Delivered, Handover, Issued,
    NewToken, RevokeReason, TokenRecord, User, UserId,
};
use crate::token::{Digest, Lifecycle, Status};
use anyhow::Result;
use mysql::prelude::Queryable;
use mysql::{Conn, Value};
use std::collections::{HashMap, HashSet};
use std::time::Duration;

/// Rows per multi-row statement: a whole request chunk (5,000 users), so round trips stop
/// mattering, and about 1 MiB of statement, far below max_allowed_packet (16 MiB by default).
const ROWS: usize = 5000;

pub(super) fn issue(
    s: &mut MysqlStore,
    batch: &[NewToken<'_>],
    now: i64,
    ttl: Duration,
    throttle: Option<Duration>,
    handover: Handover,
    actor: &str,
) -> Result<Vec<Issued>> {
    let printed = handover == Handover::Printed;
    let expires_at = now.saturating_add(i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX / 2));
    let throttle = throttle
        .filter(|t| !t.is_zero())
        .map(|t| i64::try_from(t.as_secs()).unwrap_or(i64::MAX / 2));
    // With --force the rows still move, so the next unforced request waits.
    let cutoff = throttle.map_or(i64::MAX, |t| now.saturating_sub(t));
    s.tx(|conn, sh| {
        let mut out: Vec<Option<Issued>> = vec![None; batch.len()];
        let mut events: Vec<(usize, AuditOutcome)> = Vec::with_capacity(batch.len());
        // A user listed twice must see the first request's throttle row and token, so each
        // run of the batch holds each user once, and runs go in order.
        let mut start = 0;
        while start < batch.len() {
            let mut seen = HashSet::new();
            let mut end = start;
            while end < batch.len() && end - start < ROWS && seen.insert(&batch[end].user.id) {
                end += 1;
            }
            issue_run(
                conn,
                sh,
                &batch[start..end],
                start,
                now,
                expires_at,
                cutoff,
                throttle,
                printed,
                &mut out,
                &mut events,
            )?;
            start = end;
        }
        events.sort_by_key(|(i, _)| *i);
        let audit: Vec<AuditEvent<'_>> = events
            .iter()
            .map(|(i, outcome)| AuditEvent {
                at: now,
                actor,
                action: AuditAction::Request,
                user_id: Some(&batch[*i].user.id),
                email: Some(&batch[*i].user.email),
                outcome: *outcome,
                detail: None,
            })
            .collect();
        super::audit::insert(conn, sh, &audit)?;
        out.into_iter()
            .map(|o| o.ok_or_else(|| anyhow::anyhow!("a request of the batch got no outcome")))
            .collect()
    })
}

/// Issue tokens for distinct users, `first` being the index of `run[0]` in the batch.
#[allow(clippy::too_many_arguments)]
fn issue_run(
    conn: &mut Conn,
    sh: &Shared,
    run: &[NewToken<'_>],
    first: usize,
    now: i64,
    expires_at: i64,
    cutoff: i64,
    throttle: Option<i64>,
    printed: bool,
    out: &mut [Option<Issued>],
    events: &mut Vec<(usize, AuditOutcome)>,
) -> Result<()> {
    let ids: Vec<Value> = run.iter().map(|t| sh.id_value(&t.user.id)).collect();
    // The throttle: a row moves to `now` only if its last request is at or before the cutoff;
    // the rows this statement moved carry its random claim. The upsert reads and locks the
    // latest row, whatever the transaction's snapshot, so of two racing requests for one user
    // the second sees the first's time.
    let claim = i64::from(super::rand_u32()) << 31 | i64::from(super::rand_u32() >> 1);
    let mut values = Vec::with_capacity(run.len() * 3);
    for id in &ids {
        values.extend([id.clone(), Value::Int(now), Value::Int(claim)]);
    }
    super::exec_rows(
        conn,
        "INSERT INTO pwreset_throttle (user_id, last_at, claim)",
        3,
        &values,
        &format!(
            "ON DUPLICATE KEY UPDATE
               claim = IF(last_at <= {cutoff}, VALUES(claim), claim),
               last_at = IF(last_at <= {cutoff}, VALUES(last_at), last_at)"
        ),
    )?;
    // Every row new (the common case of a first bulk run): all of them are ours, no need to
    // read them back. The server says so only together: affected rows count 1 per inserted
    // row, 2 per moved one and 0 per untouched one, and the info line's `Duplicates` counts
    // the rows that hit an existing key; n affected with no duplicate means n inserted.
    let all_new =
        conn.affected_rows() == run.len() as u64 && duplicates(&conn.info_str()) == Some(0);
    let rows: Vec<(Value, Value, Value)> = if all_new {
        Vec::new()
    } else {
        // Which rows moved: ours are the ones with our claim (our own writes, visible to us).
        conn.exec(
            format!(
                "SELECT user_id, last_at, claim = ? FROM pwreset_throttle WHERE user_id IN ({})",
                marks(run.len())
            ),
            std::iter::once(Value::Int(claim))
                .chain(ids.iter().cloned())
                .collect::<Vec<_>>(),
        )?
    };
    let mut state: HashMap<UserId, (i64, bool)> = HashMap::with_capacity(rows.len());
    for (id, last, mine) in rows {
        let mine = opt_i64(mine).unwrap_or(0) == 1;
        state.insert(sh.id_from(id)?, (opt_i64(last).unwrap_or(now), mine));
    }
    let mut winners: Vec<usize> = Vec::with_capacity(run.len());
    for (i, item) in run.iter().enumerate() {
        if all_new {
            winners.push(i);
            continue;
        }
        match state.get(&item.user.id) {
            Some((_, true)) => winners.push(i),
            Some((last, false)) => {
                out[first + i] = Some(Issued::Throttled {
                    retry_at: last.saturating_add(throttle.unwrap_or(0)),
                });
                events.push((first + i, AuditOutcome::Throttled));
            }
            // The row is there (we just upserted it): a missing one means an id that does not
            // compare equal to itself, which pwreset's id types rule out.
            None => anyhow::bail!(
                "the throttle row of user {} could not be read back",
                item.user.id
            ),
        }
    }
    if winners.is_empty() {
        return Ok(());
    }
    // Which of these users have open tokens: one indexed read, because in a bulk run most have
    // none, and then nothing needs revoking (an UPDATE would lock the index ranges all the
    // same). The first run's read is the transaction's first plain read, so its snapshot is
    // taken after the throttle upsert above, which waited for any other transaction holding
    // these users' throttle rows: whatever such a request stored is visible. A later run's
    // snapshot is older than its own upsert, so it reads the latest rows with a locking read.
    let mut params: Vec<Value> = winners.iter().map(|&i| ids[i].clone()).collect();
    params.push(Value::Int(now));
    let open_rows: Vec<Value> = conn.exec(
        format!(
            "SELECT DISTINCT user_id FROM pwreset_tokens
              WHERE user_id IN ({}) AND used_at IS NULL AND revoked_at IS NULL AND dead_at > ?{}",
            marks(winners.len()),
            if first == 0 {
                ""
            } else {
                " LOCK IN SHARE MODE"
            }
        ),
        params,
    )?;
    let mut open: HashSet<UserId> = HashSet::with_capacity(open_rows.len());
    for v in open_rows {
        open.insert(sh.id_from(v)?);
    }
    let superseded: Vec<Value> = winners
        .iter()
        .filter(|&&i| open.contains(&run[i].user.id))
        .map(|&i| ids[i].clone())
        .collect();
    if printed && !superseded.is_empty() {
        // Printed links take over at once: the users' older open tokens are superseded now.
        // (Mailed ones wait for confirm_delivered.) The statement reads the latest rows.
        let n = superseded.len();
        let mut params: Vec<Value> = vec![Value::Int(now), Value::Int(now)];
        params.extend(superseded);
        params.push(Value::Int(now));
        conn.exec_drop(
            format!(
                "UPDATE pwreset_tokens
                    SET revoked_at = ?, revoked_reason = 'superseded', dead_at = LEAST(dead_at, ?)
                  WHERE user_id IN ({}) AND used_at IS NULL AND revoked_at IS NULL AND dead_at > ?",
                marks(n)
            ),
            params,
        )?;
    }
    let mut params: Vec<Value> = Vec::with_capacity(winners.len() * 6);
    for &i in &winners {
        let user = run[i].user;
        let binding = crate::token::binding(&user.email, &user.password);
        params.extend([
            Value::Bytes(run[i].digest.as_bytes().to_vec()),
            ids[i].clone(),
            Value::Bytes(binding.to_vec()),
            Value::Int(now),
            Value::Int(expires_at),
            Value::Int(expires_at),
        ]);
    }
    super::exec_rows(
        conn,
        "INSERT INTO pwreset_tokens (digest, user_id, binding, created_at, expires_at, dead_at)",
        6,
        &params,
        "",
    )?;
    let token_ids = inserted_ids(conn, run, &winners)?;
    for (&i, id) in winners.iter().zip(token_ids) {
        out[first + i] = Some(Issued::Created {
            expires_at,
            id,
            had_open: open.contains(&run[i].user.id),
        });
        // A mailed link's audit row is written when the message is taken (or is not).
        if printed {
            events.push((first + i, AuditOutcome::Created));
        }
    }
    Ok(())
}

/// `Duplicates: N` from a multi-row INSERT's info line ("Records: 3  Duplicates: 0  Warnings:
/// 0"), or None when the line says nothing of the kind.
fn duplicates(info: &str) -> Option<u64> {
    let rest = info.split("Duplicates:").nth(1)?;
    rest.split_whitespace().next()?.parse().ok()
}

/// The ids of the rows a multi-row INSERT just made, in its order. The server reports the
/// first; a simple multi-row INSERT takes consecutive values (steps of
/// auto_increment_increment) under every innodb_autoinc_lock_mode, so the rest follow. They are
/// checked against the digests all the same, and found by digest if the check fails.
fn inserted_ids(conn: &mut Conn, run: &[NewToken<'_>], winners: &[usize]) -> Result<Vec<i64>> {
    let first = i64::try_from(conn.last_insert_id())?;
    let step: i64 = conn
        .query_first::<i64, _>("SELECT @@auto_increment_increment")?
        .unwrap_or(1)
        .max(1);
    let n = winners.len() as i64;
    let rows: Vec<(i64, Vec<u8>)> = conn.exec(
        "SELECT id, digest FROM pwreset_tokens WHERE id BETWEEN ? AND ?",
        (first, first + (n - 1) * step),
    )?;
    let by_id: HashMap<i64, Vec<u8>> = rows.into_iter().collect();
    let expected: Vec<i64> = (0..n).map(|k| first + k * step).collect();
    let all_match = winners
        .iter()
        .zip(&expected)
        .all(|(&i, id)| by_id.get(id).map(Vec::as_slice) == Some(run[i].digest.as_bytes()));
    if all_match {
        return Ok(expected);
    }
    // Ours all come at or after the first: look them up by their digests there.
    let mut params: Vec<Value> = vec![Value::Int(first)];
    params.extend(
        winners
            .iter()
            .map(|&i| Value::Bytes(run[i].digest.as_bytes().to_vec())),
    );
    let rows: Vec<(i64, Vec<u8>)> = conn.exec(
        format!(
            "SELECT id, digest FROM pwreset_tokens WHERE id >= ? AND digest IN ({})",
            marks(winners.len())
        ),
        params,
    )?;
    let by_digest: HashMap<Vec<u8>, i64> = rows.into_iter().map(|(id, d)| (d, id)).collect();
    winners
        .iter()
        .map(|&i| {
            by_digest
                .get(run[i].digest.as_bytes())
                .copied()
                .ok_or_else(|| anyhow::anyhow!("a token just stored could not be read back"))
        })
        .collect()
}

pub(super) fn confirm_delivered(
    s: &mut MysqlStore,
    delivered: &[Delivered<'_>],
    now: i64,
    actor: &str,
) -> Result<()> {
    if delivered.is_empty() {
        return Ok(());
    }
    // Per user, the link that stays: the last one delivered (a user listed twice keeps the
    // newer link, as one statement per delivery in order would leave it).
    let mut keep: HashMap<&UserId, i64> = HashMap::new();
    for d in delivered.iter().filter(|d| d.had_open) {
        keep.insert(&d.user.id, d.token_id);
    }
    let mut keep: Vec<(&UserId, i64)> = keep.into_iter().collect();
    keep.sort_by_key(|(_, id)| *id);
    s.tx(|conn, sh| {
        for part in keep.chunks(ROWS) {
            // Every other open token of these users, whichever it is, older or newer: one
            // statement per chunk. A kept id belongs to its own user, so excluding the whole
            // list from every user's rows excludes exactly each user's own kept link.
            let mut params: Vec<Value> = vec![Value::Int(now), Value::Int(now)];
            params.extend(part.iter().map(|(u, _)| sh.id_value(u)));
            params.extend(part.iter().map(|(_, id)| Value::Int(*id)));
            params.push(Value::Int(now));
            conn.exec_drop(
                format!(
                    "UPDATE pwreset_tokens
                        SET revoked_at = ?, revoked_reason = 'superseded',
                            dead_at = LEAST(dead_at, ?)
                      WHERE user_id IN ({}) AND id NOT IN ({})
                        AND used_at IS NULL AND revoked_at IS NULL AND dead_at > ?",
                    marks(part.len()),
                    marks(part.len())
                ),
                params,
            )?;
        }
        let events: Vec<AuditEvent<'_>> = delivered
            .iter()
            .map(|d| AuditEvent {
                at: now,
                actor,
                action: AuditAction::Request,
                user_id: Some(&d.user.id),
                email: Some(&d.user.email),
                outcome: AuditOutcome::Sent,
                detail: None,
            })
            .collect();
        super::audit::insert(conn, sh, &events)
    })
}

pub(super) fn revoke_token(
    s: &mut MysqlStore,
    token_id: i64,
    reason: &RevokeReason,
    now: i64,
    audit: Option<&AuditEvent<'_>>,
) -> Result<bool> {
    let reason = reason.as_str();
    let result = s.tx_raw(|conn, sh| {
        conn.exec_drop(
            "UPDATE pwreset_tokens
                SET revoked_at = ?, revoked_reason = ?, dead_at = LEAST(dead_at, ?)
              WHERE id = ? AND used_at IS NULL AND revoked_at IS NULL",
            (now, reason.as_str(), now, token_id),
        )?;
        let changed = conn.affected_rows() == 1;
        if let Some(event) = audit {
            super::audit::insert(conn, sh, std::slice::from_ref(event))?;
        }
        Ok(changed)
    });
    match result {
        // A revocation found at lookup (verify) is stored only if this account may write;
        // support staff with read-only grants still get their answer.
        Err(e) if audit.is_none() && s.s.ctx.is_refused_write(&e) => Ok(false),
        Err(e) => Err(s.s.ctx.err(e)),
        Ok(changed) => Ok(changed),
    }
}

pub(super) fn revoke_user_tokens(
    s: &mut MysqlStore,
    user: &User,
    reason: &RevokeReason,
    now: i64,
    actor: &str,
) -> Result<u64> {
    let text = reason.as_str();
    s.tx(|conn, sh| {
        conn.exec_drop(
            "UPDATE pwreset_tokens
                SET revoked_at = ?, revoked_reason = ?, dead_at = LEAST(dead_at, ?)
              WHERE user_id = ? AND used_at IS NULL AND revoked_at IS NULL AND dead_at > ?",
            vec![
                Value::Int(now),
                Value::from(text.as_str()),
                Value::Int(now),
                sh.id_value(&user.id),
                Value::Int(now),
            ],
        )?;
        // Every matched row changes (revoked_at was NULL), so changed rows = matched rows.
        let n = conn.affected_rows();
        let detail = crate::store::revoke_user_detail(n, reason);
        super::audit::insert(
            conn,
            sh,
            &[AuditEvent::revoked_user(user, n, &detail, now, actor)],
        )?;
        Ok(n)
    })
}

pub(super) fn revoke_undelivered(
    s: &mut MysqlStore,
    token_id: i64,
    user: &User,
    reason: &str,
    now: i64,
    actor: &str,
) -> Result<()> {
    s.tx(|conn, sh| {
        conn.exec_drop(
            "UPDATE pwreset_tokens
                SET revoked_at = ?, revoked_reason = 'undelivered', dead_at = LEAST(dead_at, ?)
              WHERE id = ? AND used_at IS NULL AND revoked_at IS NULL",
            (now, now, token_id),
        )?;
        if conn.affected_rows() == 1 {
            // The row is ours and locked now: this read sees it as it is.
            let created: Option<i64> = conn.exec_first(
                "SELECT created_at FROM pwreset_tokens WHERE id = ?",
                (token_id,),
            )?;
            if let Some(created) = created {
                // Only if no later request has moved it since.
                conn.exec_drop(
                    "DELETE FROM pwreset_throttle WHERE user_id = ? AND last_at = ?",
                    (sh.id_value(&user.id), created),
                )?;
            }
        }
        super::audit::insert(
            conn,
            sh,
            &[AuditEvent {
                at: now,
                actor,
                action: AuditAction::Request,
                user_id: Some(&user.id),
                email: Some(&user.email),
                outcome: AuditOutcome::Failed,
                detail: Some(reason),
            }],
        )
    })
}

pub(super) fn lookup(
    s: &mut MysqlStore,
    token_id: i64,
    digest: &Digest,
) -> Result<Option<TokenRecord>> {
    s.read(|conn, sh| select_token(conn, sh, token_id, digest).map(|o| o.map(|(r, _, _)| r)))
}

/// A token with its user's state; also the user's address and password as read, so a change
/// can check they are still the same.
fn select_token(
    conn: &mut Conn,
    sh: &Shared,
    token_id: i64,
    digest: &Digest,
) -> Result<Option<(TokenRecord, Value, Value)>> {
    let row: Option<mysql::Row> =
        conn.exec_first(sh.q.select_token.as_str(), (token_id, digest.as_bytes()))?;
    let Some(mut row) = row else {
        return Ok(None);
    };
    let pw_binary = super::is_binary(&row, 3);
    let mut take = |i: usize| row.take::<Value, usize>(i).unwrap_or(Value::NULL);
    let user_id = sh.id_from(take(0))?;
    let user_exists = opt_i64(take(1)).unwrap_or(0) == 1;
    let email_raw = take(2);
    let email = user_exists.then(|| text_lossy(email_raw.clone()));
    let password = stored_value(take(3), pw_binary);
    let stored = match take(4) {
        Value::Bytes(b) => b,
        _ => Vec::new(),
    };
    let binding_ok = match &email {
        Some(e) => crate::token::binding(e, &password)[..] == stored[..],
        None => false,
    };
    let created_at = opt_i64(take(5)).unwrap_or(0);
    let lifecycle = Lifecycle {
        expires_at: opt_i64(take(6)).unwrap_or(0),
        used_at: opt_i64(take(7)),
        revoked_at: opt_i64(take(8)),
        user_exists,
        binding_ok,
    };
    let revoked_reason = match take(9) {
        Value::NULL => None,
        v => Some(RevokeReason::parse(&text_lossy(v))),
    };
    Ok(Some((
        TokenRecord {
            user_id,
            email,
            created_at,
            lifecycle,
            revoked_reason,
        },
        email_raw,
        stored_param(&password),
    )))
}

pub(super) fn consume(s: &mut MysqlStore, c: &Consume<'_>) -> Result<Consumed> {
    let q = &s.s.q;
    // The password moves only if the address and the old value are still what the token was
    // checked against: an application that changed either meanwhile wins.
    let update_user = format!(
        "UPDATE {table} SET {pw} = ? WHERE {id} = ? AND BINARY {email} <=> ? AND BINARY {pw} <=> ?",
        table = q.table,
        pw = q.password,
        id = q.id,
        email = q.email,
    );
    // Each statement rewritten to positional parameters once, before the transaction.
    let after_reset: Vec<(String, Vec<super::schema::Param>)> =
        s.s.users
            .after_reset
            .iter()
            .enumerate()
            .map(|(i, sql)| {
                super::schema::positional(sql).map_err(|why| {
                    crate::error::fail(
                        crate::error::Exit::Config,
                        format!("users.after_reset[{i}]: {why} (in: {sql})"),
                    )
                })
            })
            .collect::<Result<_>>()?;
    s.tx(|conn, sh| {
        let Some((rec, email_raw, pw_raw)) = select_token(conn, sh, c.token_id, c.digest)? else {
            return Ok(Consumed::NotUsable(Status::Unknown));
        };
        let status = rec.status(c.now);
        if status != Status::Valid || rec.user_id != *c.user_id {
            return Ok(Consumed::NotUsable(status));
        }
        // Spend the token with one conditional statement: it reads the latest row, so of
        // several changes racing with one token exactly one sees a row change.
        conn.exec_drop(
            "UPDATE pwreset_tokens SET used_at = ?, dead_at = LEAST(dead_at, ?)
              WHERE id = ? AND used_at IS NULL AND revoked_at IS NULL AND expires_at > ?",
            (c.now, c.now, c.token_id, c.now),
        )?;
        if conn.affected_rows() != 1 {
            // Not committed: the transaction is rolled back by the caller's ROLLBACK below.
            return Err(NotSpent(Status::Used).into());
        }
        let uid = sh.id_value(c.user_id);
        conn.exec_drop(
            update_user.as_str(),
            vec![Value::from(c.new_hash), uid.clone(), email_raw, pw_raw],
        )?;
        if conn.affected_rows() != 1 {
            return Err(NotSpent(Status::Revoked).into());
        }
        conn.exec_drop(
            "UPDATE pwreset_tokens
                SET revoked_at = ?, revoked_reason = 'password reset', dead_at = LEAST(dead_at, ?)
              WHERE user_id = ? AND used_at IS NULL AND revoked_at IS NULL",
            vec![Value::Int(c.now), Value::Int(c.now), uid],
        )?;
        // The application's own clean-up (ending sessions), in the same transaction: if one
        // fails, nothing of the reset happens and the link still works.
        let email = rec.email.as_deref().unwrap_or_default();
        for (i, (sql, names)) in after_reset.iter().enumerate() {
            let params: Vec<Value> = names
                .iter()
                .map(|p| match p {
                    super::schema::Param::UserId => sh.id_value(c.user_id),
                    super::schema::Param::Email => Value::from(email),
                })
                .collect();
            conn.exec_drop(sql.as_str(), params)
                .map_err(|e| anyhow::Error::from(e).context(AfterReset(i)))?;
        }
        super::audit::insert(
            conn,
            sh,
            &[AuditEvent {
                at: c.now,
                actor: c.actor,
                action: AuditAction::Reset,
                user_id: Some(c.user_id),
                email: rec.email.as_deref(),
                outcome: AuditOutcome::Ok,
                detail: None,
            }],
        )?;
        Ok(Consumed::Changed)
    })
    .or_else(|e| match e.downcast_ref::<NotSpent>() {
        Some(NotSpent(status)) => Ok(Consumed::NotUsable(*status)),
        None => Err(e),
    })
}

/// A change that found the token, or the user's row, no longer as checked: the transaction is
/// rolled back and the caller hears "not usable".
#[derive(Debug, thiserror::Error)]
#[error("the token was no longer usable")]
struct NotSpent(Status);

/// Marks the error of `users.after_reset[i]`, so the message names the statement (see
/// `ErrCtx::err`); the driver error stays underneath, so a deadlock is still retried.
#[derive(Debug, Clone, Copy)]
pub(super) struct AfterReset(pub(super) usize);

impl std::fmt::Display for AfterReset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "users.after_reset[{}]", self.0)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_info_line_says_how_many_rows_were_duplicates() {
        assert_eq!(
            super::duplicates("Records: 2  Duplicates: 0  Warnings: 0"),
            Some(0)
        );
        assert_eq!(
            super::duplicates("Records: 2  Duplicates: 1  Warnings: 0"),
            Some(1)
        );
        assert_eq!(super::duplicates(""), None);
    }
}
