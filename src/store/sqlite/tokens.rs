//! Tokens: issuing (with the throttle), looking up, spending, revoking.

use super::{SqliteStore, begin, stored_value, text_lossy};
use crate::store::{
    AuditAction, AuditEvent, AuditOutcome, Consume, Consumed, Issue, Issued, NewToken,
    RevokeReason, Settle, Spend, TokenRecord, User,
};
use crate::token::{Digest, Lifecycle, Status};
use anyhow::Result;
use rusqlite::{OptionalExtension, params};
use std::collections::HashSet;

/// Spend a token (?1 its id, ?2 now) with one conditional statement: of several changes racing
/// with one token, whatever the engine's isolation, exactly one sees a row change.
const SPEND: &str = "UPDATE pwreset_tokens SET used_at = ?2, dead_at = min(dead_at, ?2)
  WHERE id = ?1 AND used_at IS NULL AND revoked_at IS NULL AND expires_at > ?2";

pub(super) fn issue(
    s: &mut SqliteStore,
    batch: &[NewToken<'_>],
    issue: &Issue<'_>,
) -> Result<Vec<Issued>> {
    let now = issue.now;
    let expires_at = now.saturating_add(i64::try_from(issue.ttl.as_secs()).unwrap_or(i64::MAX / 2));
    let throttle = issue
        .throttle
        .filter(|t| !t.is_zero())
        .map(|t| i64::try_from(t.as_secs()).unwrap_or(i64::MAX / 2));
    let tx = begin(&mut s.conn, &s.ctx)?;
    let mut out = Vec::with_capacity(batch.len());
    let mut run = || -> rusqlite::Result<()> {
        // One indexed look at the whole chunk's open tokens: in a bulk run most users have
        // none, and then the hand-over has nothing to revoke.
        let mut open: HashSet<super::UserId> = HashSet::new();
        for ids in batch.chunks(500) {
            let placeholders = vec!["?"; ids.len()].join(",");
            let mut stmt = tx.prepare(&format!(
                "SELECT DISTINCT user_id FROM pwreset_tokens
                  WHERE user_id IN ({placeholders}) AND used_at IS NULL AND revoked_at IS NULL
                    AND dead_at > ?"
            ))?;
            let mut params: Vec<&dyn rusqlite::ToSql> = Vec::with_capacity(ids.len() + 1);
            params.extend(ids.iter().map(|t| &t.user.id as &dyn rusqlite::ToSql));
            params.push(&now);
            let mut rows = stmt.query(params.as_slice())?;
            while let Some(r) = rows.next()? {
                open.insert(r.get(0)?);
            }
        }
        // The throttle: a user's row moves to `now` (and to this run) only if their last
        // request is older than the cutoff. With no throttle (--force) it always moves, except
        // from a run that is still going: that run is making this user's link now. The unique
        // key makes two racing requests for one user queue on each other, and the second sees
        // the first's row. One multi-row upsert per few hundred users; RETURNING names the
        // users whose row moved, that is, who may have a link. A link released later gives
        // the row back (`settle`, `end_run`).
        let cutoff = throttle.map_or(i64::MAX, |t| now.saturating_sub(t));
        let guard = if throttle.is_none() {
            " AND (pwreset_throttle.run_id IS NULL OR pwreset_throttle.run_id = excluded.run_id
                   OR NOT EXISTS (SELECT 1 FROM pwreset_runs r
                                   WHERE r.id = pwreset_throttle.run_id AND r.ended_at IS NULL))"
        } else {
            ""
        };
        let mut allowed: HashSet<super::UserId> = HashSet::with_capacity(batch.len());
        for part in batch.chunks(300) {
            let values = vec!["(?, ?, ?)"; part.len()].join(",");
            let mut stmt = tx.prepare_cached(&format!(
                "INSERT INTO pwreset_throttle (user_id, last_at, run_id) VALUES {values}
                 ON CONFLICT (user_id) DO UPDATE
                    SET last_at = excluded.last_at, run_id = excluded.run_id
                  WHERE pwreset_throttle.last_at <= ?{guard}
                 RETURNING user_id"
            ))?;
            let mut params: Vec<&dyn rusqlite::ToSql> = Vec::with_capacity(part.len() * 3 + 1);
            for item in part {
                params.push(&item.user.id);
                params.push(&now);
                params.push(&issue.run_id);
            }
            params.push(&cutoff);
            let mut rows = stmt.query(params.as_slice())?;
            while let Some(r) = rows.next()? {
                allowed.insert(r.get(0)?);
            }
        }
        let mut held_by = tx.prepare_cached(
            "SELECT last_at, coalesce(run_id, 0) FROM pwreset_throttle WHERE user_id = ?1",
        )?;
        let mut insert = tx.prepare_cached(
            "INSERT INTO pwreset_tokens
                    (digest, user_id, binding, created_at, expires_at, dead_at, run_id, batch)
             VALUES (?1, ?2, ?3, ?4, ?5, ?5, ?6, ?7)",
        )?;
        // Audit rows of the refused are written together at the end, a few hundred per
        // statement; the others' wait for the hand-over.
        let mut audits: Vec<(&NewToken<'_>, Option<String>)> = Vec::new();
        let mut served: HashSet<&super::UserId> = HashSet::new();
        for item in batch {
            let user = item.user;
            // A user listed twice in one batch: the second is throttled like any repeat.
            let repeat = !served.insert(&user.id) && throttle.is_some();
            if repeat || !allowed.contains(&user.id) {
                let (last, by): (i64, i64) = if repeat {
                    (now, issue.run_id)
                } else {
                    held_by.query_row([&user.id], |r| Ok((r.get(0)?, r.get(1)?)))?
                };
                match throttle {
                    Some(t) => {
                        audits.push((item, None));
                        out.push(Issued::Throttled {
                            retry_at: last.saturating_add(t),
                        });
                    }
                    None => {
                        audits.push((item, Some(crate::store::busy_detail(by))));
                        out.push(Issued::Busy { run_id: by });
                    }
                }
                continue;
            }
            let binding = crate::token::binding(&user.email, &user.password);
            insert.execute(params![
                item.digest.as_bytes(),
                user.id,
                &binding[..],
                now,
                expires_at,
                issue.run_id,
                issue.batch
            ])?;
            let id = tx.last_insert_rowid();
            // A user listed twice in one chunk: the second sees the first's token.
            let had_open = !open.insert(user.id.clone());
            out.push(Issued::Created {
                expires_at,
                id,
                had_open,
            });
        }
        let rows: Vec<AuditRow<'_>> = audits
            .iter()
            .map(|(item, detail)| AuditRow {
                user: item.user,
                outcome: AuditOutcome::Throttled,
                detail: detail.as_deref(),
            })
            .collect();
        insert_audit_rows(&tx, &rows, now, issue.actor)
    };
    run().map_err(|e| s.ctx.err(e))?;
    tx.commit().map_err(|e| s.ctx.err(e))?;
    Ok(out)
}

/// One audit row of a request.
struct AuditRow<'a> {
    user: &'a User,
    outcome: AuditOutcome,
    detail: Option<&'a str>,
}

/// Request audit rows, a few hundred per statement.
fn insert_audit_rows(
    tx: &rusqlite::Transaction<'_>,
    rows: &[AuditRow<'_>],
    now: i64,
    actor: &str,
) -> rusqlite::Result<()> {
    let action = AuditAction::Request.as_str();
    for part in rows.chunks(200) {
        let values = vec!["(?, ?, ?, ?, ?, ?, ?)"; part.len()].join(",");
        let mut stmt = tx.prepare_cached(&format!(
            "INSERT INTO pwreset_audit (at, actor, action, user_id, email, outcome, detail)
             VALUES {values}"
        ))?;
        let outcomes: Vec<&str> = part.iter().map(|r| r.outcome.as_str()).collect();
        let mut params: Vec<&dyn rusqlite::ToSql> = Vec::with_capacity(part.len() * 7);
        for (row, outcome) in part.iter().zip(&outcomes) {
            params.push(&now);
            params.push(&actor);
            params.push(&action);
            params.push(&row.user.id);
            params.push(&row.user.email);
            params.push(outcome);
            params.push(&row.detail);
        }
        stmt.execute(params.as_slice())?;
    }
    Ok(())
}

pub(super) fn settle(s: &mut SqliteStore, settle: &Settle<'_>) -> Result<()> {
    if settle.handed.is_empty() && settle.released.is_empty() && settle.printed.is_none() {
        return Ok(());
    }
    let now = settle.now;
    let tx = begin(&mut s.conn, &s.ctx)?;
    let run = || -> rusqlite::Result<()> {
        if let Some(batch) = settle.printed {
            tx.execute(
                "UPDATE pwreset_runs SET printed_upto = max(printed_upto, ?2) WHERE id = ?1",
                params![settle.run_id, batch],
            )?;
        }
        let mut mark = tx.prepare_cached(
            "UPDATE pwreset_tokens SET handed_over_at = ?2
              WHERE id = ?1 AND handed_over_at IS NULL AND revoked_at IS NULL",
        )?;
        // A link withdrawn before its hand-over was recorded (its run was ended: stopped at a
        // deadline, or judged dead elsewhere) is not what the user holds: their older links
        // stay.
        let mut supersede = tx.prepare_cached(
            "UPDATE pwreset_tokens
                SET revoked_at = ?3, revoked_reason = 'superseded', dead_at = min(dead_at, ?3)
              WHERE user_id = ?1 AND id <> ?2 AND used_at IS NULL AND revoked_at IS NULL
                AND dead_at > ?3
                AND EXISTS (SELECT 1 FROM pwreset_tokens k WHERE k.id = ?2 AND k.revoked_at IS NULL)",
        )?;
        let outcome = if settle.printed.is_some() {
            AuditOutcome::Created
        } else {
            AuditOutcome::Sent
        };
        let mut rows: Vec<AuditRow<'_>> =
            Vec::with_capacity(settle.handed.len() + settle.released.len());
        for h in settle.handed {
            if settle.printed.is_none() {
                mark.execute(params![h.token_id, now])?;
            }
            if h.had_open {
                supersede.execute(params![h.user.id, h.token_id, now])?;
            }
            rows.push(AuditRow {
                user: h.user,
                outcome,
                detail: None,
            });
        }
        let mut release = tx.prepare_cached(
            "UPDATE pwreset_tokens
                SET revoked_at = ?2, revoked_reason = ?3, dead_at = min(dead_at, ?2)
              WHERE id = ?1 AND used_at IS NULL AND revoked_at IS NULL
             RETURNING created_at",
        )?;
        let mut give_back = tx.prepare_cached(
            "DELETE FROM pwreset_throttle WHERE user_id = ?1 AND last_at = ?2 AND run_id = ?3",
        )?;
        for r in settle.released {
            let reason = if r.attempted {
                RevokeReason::Undelivered
            } else {
                RevokeReason::NotSent
            };
            let created: Option<i64> = release
                .query_row(params![r.token_id, now, reason.as_str()], |row| row.get(0))
                .optional()?;
            // Only if no later request has moved it since.
            if let Some(created) = created {
                give_back.execute(params![r.user.id, created, settle.run_id])?;
            }
            rows.push(AuditRow {
                user: r.user,
                outcome: AuditOutcome::Failed,
                detail: Some(r.why),
            });
        }
        insert_audit_rows(&tx, &rows, now, settle.actor)
    };
    run().map_err(|e| s.ctx.err(e))?;
    tx.commit().map_err(|e| s.ctx.err(e))
}

pub(super) fn revoke_token(
    s: &mut SqliteStore,
    token_id: i64,
    reason: &RevokeReason,
    now: i64,
    audit: Option<&AuditEvent<'_>>,
) -> Result<bool> {
    const SQL: &str = "UPDATE pwreset_tokens
        SET revoked_at = ?2, revoked_reason = ?3, dead_at = min(dead_at, ?2)
      WHERE id = ?1 AND used_at IS NULL AND revoked_at IS NULL";
    if s.read_only {
        // verify opens the file read-only; a revocation it finds is stored on a connection of
        // its own, and only if this user may write the file (support staff may not).
        let Ok(conn) = rusqlite::Connection::open_with_flags(
            &s.ctx.path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        ) else {
            return Ok(false);
        };
        let _ = conn.busy_timeout(s.ctx.busy_timeout);
        return Ok(conn
            .execute(SQL, params![token_id, now, reason.as_str()])
            .map(|n| n == 1)
            .unwrap_or(false));
    }
    let tx = begin(&mut s.conn, &s.ctx)?;
    let changed = tx
        .execute(SQL, params![token_id, now, reason.as_str()])
        .map_err(|e| s.ctx.err(e))?;
    if let Some(event) = audit {
        super::audit::insert(&tx, event).map_err(|e| s.ctx.err(e))?;
    }
    tx.commit().map_err(|e| s.ctx.err(e))?;
    Ok(changed == 1)
}

pub(super) fn revoke_user_tokens(
    s: &mut SqliteStore,
    user: &User,
    reason: &RevokeReason,
    now: i64,
    actor: &str,
) -> Result<u64> {
    let tx = begin(&mut s.conn, &s.ctx)?;
    let run = || -> rusqlite::Result<u64> {
        let n = tx.execute(
            "UPDATE pwreset_tokens
                SET revoked_at = ?2, revoked_reason = ?3, dead_at = min(dead_at, ?2)
              WHERE user_id = ?1 AND used_at IS NULL AND revoked_at IS NULL AND dead_at > ?2",
            params![user.id, now, reason.as_str()],
        )? as u64;
        let detail = crate::store::revoke_user_detail(n, reason);
        super::audit::insert(&tx, &AuditEvent::revoked_user(user, n, &detail, now, actor))?;
        Ok(n)
    };
    let n = run().map_err(|e| s.ctx.err(e))?;
    tx.commit().map_err(|e| s.ctx.err(e))?;
    Ok(n)
}

pub(super) fn lookup(
    s: &SqliteStore,
    token_id: i64,
    digest: &Digest,
) -> Result<Option<TokenRecord>> {
    let mut stmt = s
        .conn
        .prepare_cached(&s.q.select_token)
        .map_err(|e| s.ctx.err(e))?;
    stmt.query_row(params![token_id, digest.as_bytes()], token_from_row)
        .optional()
        .map_err(|e| s.ctx.err(e))
}

fn token_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<TokenRecord> {
    let user_exists: bool = r.get(1)?;
    let email = if user_exists {
        Some(text_lossy(r.get_ref(2)?))
    } else {
        None
    };
    let password = stored_value(r.get_ref(3)?);
    let stored: Vec<u8> = r.get(4)?;
    let binding_ok = match &email {
        Some(e) => crate::token::binding(e, &password)[..] == stored[..],
        None => false,
    };
    Ok(TokenRecord {
        user_id: r.get(0)?,
        email,
        created_at: r.get(5)?,
        lifecycle: Lifecycle {
            expires_at: r.get(6)?,
            used_at: r.get(7)?,
            revoked_at: r.get(8)?,
            user_exists,
            binding_ok,
        },
        revoked_reason: r
            .get::<_, Option<String>>(9)?
            .map(|t| RevokeReason::parse(&t)),
    })
}

/// An `after_reset` statement failed: a busy database is still 75, anything else 70, both
/// naming the statement.
fn after_reset_error(i: usize, e: rusqlite::Error) -> anyhow::Error {
    let busy = matches!(
        &e,
        rusqlite::Error::SqliteFailure(f, _)
            if matches!(f.code, rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    );
    let msg = format!(
        "users.after_reset[{i}] failed ({}); the reset was rolled back, nothing changed and the link still works",
        crate::store::scrub::text(&e.to_string(), &[])
    );
    if busy {
        crate::error::fail(crate::error::Exit::TempFail, msg)
    } else {
        anyhow::anyhow!(msg)
    }
}

pub(super) fn consume(s: &mut SqliteStore, c: &Consume<'_>) -> Result<Consumed> {
    let q = &s.q;
    let update_user = format!(
        "UPDATE {table} SET {pw} = ?2 WHERE {id} = ?1",
        table = q.table,
        pw = q.password,
        id = q.id
    );
    let after_reset = &s.users.after_reset;
    let tx = begin(&mut s.conn, &s.ctx)?;
    let run = || -> rusqlite::Result<Result<Consumed>> {
        // Re-check inside the transaction: the account binding is computed here, not in SQL.
        let Some(rec) = tx
            .query_row(
                &q.select_token,
                params![c.token_id, c.digest.as_bytes()],
                token_from_row,
            )
            .optional()?
        else {
            return Ok(Ok(Consumed::NotUsable(Status::Unknown)));
        };
        let status = rec.status(c.now);
        if status != Status::Valid || rec.user_id != *c.user_id {
            return Ok(Ok(Consumed::NotUsable(status)));
        }
        // Spend the token with one conditional statement: of several changes racing with one
        // token, whatever the engine's isolation, exactly one sees a row change.
        let spent = tx.execute(SPEND, params![c.token_id, c.now])?;
        if spent != 1 {
            return Ok(Ok(Consumed::NotUsable(Status::Used)));
        }
        let changed = tx.execute(&update_user, params![c.user_id, c.new_hash])?;
        if changed != 1 {
            return Ok(Err(anyhow::anyhow!(
                "updating the password of user {} changed {changed} rows; nothing was committed",
                c.user_id
            )));
        }
        tx.execute(
            "UPDATE pwreset_tokens
                SET revoked_at = ?2, revoked_reason = 'password reset', dead_at = min(dead_at, ?2)
              WHERE user_id = ?1 AND used_at IS NULL AND revoked_at IS NULL",
            params![c.user_id, c.now],
        )?;
        // The application's own clean-up (ending sessions), in the same transaction: if one
        // fails, nothing of the reset happens and the link still works.
        let email = rec.email.clone().unwrap_or_default();
        for (i, sql) in after_reset.iter().enumerate() {
            if let Err(e) = super::schema::run_after_reset(&tx, sql, c.user_id, &email) {
                return Ok(Err(after_reset_error(i, e)));
            }
        }
        super::audit::insert(
            &tx,
            &AuditEvent {
                at: c.now,
                actor: c.actor,
                action: AuditAction::Reset,
                user_id: Some(c.user_id),
                email: rec.email.as_deref(),
                outcome: AuditOutcome::Ok,
                detail: None,
            },
        )?;
        Ok(Ok(Consumed::Changed))
    };
    let outcome = run().map_err(|e| s.ctx.err(e))??;
    if outcome == Consumed::Changed {
        tx.commit().map_err(|e| s.ctx.err(e))?;
    }
    Ok(outcome)
}

/// A token row alone, with its stored binding: `SELECT` without the users table.
const SELECT_ALONE: &str = "SELECT user_id, binding, created_at, expires_at, used_at, revoked_at,
        revoked_reason FROM pwreset_tokens WHERE id = ?1 AND digest = ?2";

fn alone_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(TokenRecord, Vec<u8>)> {
    let binding: Vec<u8> = r.get(1)?;
    Ok((
        TokenRecord::without_user_row(
            r.get(0)?,
            r.get(2)?,
            r.get(3)?,
            r.get(4)?,
            r.get(5)?,
            r.get::<_, Option<String>>(6)?
                .map(|t| RevokeReason::parse(&t)),
        ),
        binding,
    ))
}

pub(super) fn alone(
    s: &SqliteStore,
    token_id: i64,
    digest: &Digest,
) -> Result<Option<(TokenRecord, Vec<u8>)>> {
    let mut stmt = s
        .conn
        .prepare_cached(SELECT_ALONE)
        .map_err(|e| s.ctx.err(e))?;
    stmt.query_row(params![token_id, digest.as_bytes()], alone_from_row)
        .optional()
        .map_err(|e| s.ctx.err(e))
}

pub(super) fn spend(
    s: &mut SqliteStore,
    sp: &Spend<'_>,
    change: &mut dyn FnMut() -> Result<bool>,
) -> Result<Consumed> {
    let tx = begin(&mut s.conn, &s.ctx)?;
    let mut run = || -> rusqlite::Result<Result<Consumed>> {
        let Some((rec, _)) = tx
            .query_row(
                SELECT_ALONE,
                params![sp.token_id, sp.digest.as_bytes()],
                alone_from_row,
            )
            .optional()?
        else {
            return Ok(Ok(Consumed::NotUsable(Status::Unknown)));
        };
        let status = rec.status(sp.now);
        if status != Status::Valid || rec.user_id != *sp.user_id {
            return Ok(Ok(Consumed::NotUsable(status)));
        }
        // Spent first, so that of several changes racing with one token exactly one reaches
        // the directory; rolled back below if the directory does not change the password.
        let spent = tx.execute(SPEND, params![sp.token_id, sp.now])?;
        if spent != 1 {
            return Ok(Ok(Consumed::NotUsable(Status::Used)));
        }
        match change() {
            Ok(true) => {}
            Ok(false) => return Ok(Ok(Consumed::Kept)),
            Err(e) => return Ok(Err(e)),
        }
        tx.execute(
            "UPDATE pwreset_tokens
                SET revoked_at = ?2, revoked_reason = 'password reset', dead_at = min(dead_at, ?2)
              WHERE user_id = ?1 AND used_at IS NULL AND revoked_at IS NULL",
            params![sp.user_id, sp.now],
        )?;
        super::audit::insert(
            &tx,
            &AuditEvent {
                at: sp.now,
                actor: sp.actor,
                action: AuditAction::Reset,
                user_id: Some(sp.user_id),
                email: Some(sp.email),
                outcome: AuditOutcome::Ok,
                detail: None,
            },
        )?;
        Ok(Ok(Consumed::Changed))
    };
    let outcome = run().map_err(|e| s.ctx.err(e))??;
    if outcome == Consumed::Changed {
        // The directory has the new password now: a failed commit leaves the link usable,
        // which only lets the user set a password again.
        tx.commit().map_err(|e| s.ctx.err(e))?;
    }
    Ok(outcome)
}
