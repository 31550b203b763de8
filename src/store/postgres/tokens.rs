//! Tokens: issuing (with the throttle), looking up, spending, revoking.
//!
//! A bulk request is one statement per chunk: `unnest()` of the chunk's arrays feeds the
//! throttle upsert, the revocation of older tokens, the insert of the new ones and their audit
//! rows, as data-modifying CTEs. One round trip for thousands of users.

use super::{IdArray, IdKind, PgStore, Quoted, TxError, id_arg, stored_value, text_lossy, user_id};
use crate::store::{
    AuditAction, AuditEvent, AuditOutcome, Consume, Consumed, Issued, NewToken, RevokeReason,
    TokenRecord, User, UserId,
};
use crate::token::{Digest, Lifecycle, Status};
use anyhow::Result;
use postgres::Client;
use postgres::types::Type;
use std::collections::{HashMap, HashSet};
use std::time::Duration;

/// The statement that issues one round of tokens (each user at most once).
fn issue_sql(q: &Quoted, id: IdKind) -> String {
    format!(
        "WITH input AS (
            SELECT * FROM unnest({ids}, $2::bytea[], $3::bytea[], $4::text[]) AS x(user_id, digest, binding, email)
         ),
         passed AS (
            -- The throttle: a user's row moves to now only if its last request is older than
            -- the cutoff. Under READ COMMITTED a racing request waits for the row and then
            -- sees the winner's time, so exactly one passes.
            INSERT INTO {throttle} AS th (user_id, last_at)
            SELECT user_id, $5 FROM input
            ON CONFLICT (user_id) DO UPDATE SET last_at = EXCLUDED.last_at
             WHERE th.last_at <= $6
            RETURNING th.user_id
         ),
         revoked AS (
            UPDATE {tokens} SET revoked_at = $5, revoked_reason = 'superseded',
                   dead_at = least(dead_at, $5)
             WHERE user_id IN (SELECT user_id FROM passed)
               AND used_at IS NULL AND revoked_at IS NULL AND dead_at > $5
         ),
         issued AS (
            INSERT INTO {tokens} (digest, user_id, binding, created_at, expires_at, dead_at)
            SELECT i.digest, i.user_id, i.binding, $5, $7, $7
              FROM input i JOIN passed p ON p.user_id = i.user_id
            RETURNING id, digest
         ),
         audited AS (
            INSERT INTO {audit} (at, actor, action, user_id, email, outcome)
            SELECT $5, $8, 'request', i.user_id::text, i.email,
                   CASE WHEN p.user_id IS NULL THEN 'throttled' ELSE 'created' END
              FROM input i LEFT JOIN passed p ON p.user_id = i.user_id
         )
         SELECT id, digest FROM issued",
        ids = id.array_param(1),
        throttle = q.throttle,
        tokens = q.tokens,
        audit = q.audit,
    )
}

pub(super) fn issue(
    s: &mut PgStore,
    batch: &[NewToken<'_>],
    now: i64,
    ttl: Duration,
    throttle: Option<Duration>,
    actor: &str,
) -> Result<Vec<Issued>> {
    if batch.is_empty() {
        return Ok(Vec::new());
    }
    let expires_at = now.saturating_add(i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX / 2));
    let throttle = throttle
        .filter(|t| !t.is_zero())
        .map(|t| i64::try_from(t.as_secs()).unwrap_or(i64::MAX / 2));
    // With --force the row is still moved, so the next unforced request waits.
    let cutoff = throttle.map_or(i64::MAX, |t| now.saturating_sub(t));
    // A user listed twice goes into a later round, which sees the first round's token and
    // throttle row, as if the requests came one after the other.
    let mut rounds: Vec<Vec<usize>> = Vec::new();
    let mut seen: Vec<HashSet<&UserId>> = Vec::new();
    for (i, item) in batch.iter().enumerate() {
        let r = seen
            .iter()
            .position(|set| !set.contains(&item.user.id))
            .unwrap_or(seen.len());
        if r == seen.len() {
            seen.push(HashSet::new());
            rounds.push(Vec::new());
        }
        seen[r].insert(&item.user.id);
        rounds[r].push(i);
    }
    // Everything bound, computed before the transaction so a repeat sends the same.
    let kind = s.id;
    let mut args = Vec::with_capacity(rounds.len());
    for round in &rounds {
        let mut ids = IdArray::new(kind, round.len());
        let mut digests: Vec<&[u8]> = Vec::with_capacity(round.len());
        let mut bindings: Vec<Vec<u8>> = Vec::with_capacity(round.len());
        let mut emails: Vec<&str> = Vec::with_capacity(round.len());
        for &i in round {
            let user = batch[i].user;
            ids.push(&user.id)?;
            digests.push(batch[i].digest.as_bytes());
            bindings.push(crate::token::binding(&user.email, &user.password).to_vec());
            emails.push(&user.email);
        }
        args.push((ids, digests, bindings, emails));
    }
    let sql = issue_sql(&s.q, kind);
    let last_sql = format!(
        "SELECT {}, last_at FROM {} WHERE user_id = ANY({})",
        kind.read("user_id"),
        s.q.throttle,
        kind.array_param(1)
    );
    s.in_tx(|c, _, _| {
        let mut out: Vec<Option<Issued>> = vec![None; batch.len()];
        for (round, (ids, digests, bindings, emails)) in rounds.iter().zip(&args) {
            let rows = c.query_typed(
                &sql,
                &[
                    (ids.sql(), kind.wire_array_type()),
                    (digests, Type::BYTEA_ARRAY),
                    (bindings, Type::BYTEA_ARRAY),
                    (emails, Type::TEXT_ARRAY),
                    (&now, Type::INT8),
                    (&cutoff, Type::INT8),
                    (&expires_at, Type::INT8),
                    (&actor, Type::TEXT),
                ],
            )?;
            let mut ids_by_digest: HashMap<Vec<u8>, i64> = HashMap::with_capacity(rows.len());
            for r in &rows {
                ids_by_digest.insert(r.try_get(1)?, r.try_get(0)?);
            }
            let mut throttled = IdArray::new(kind, 0);
            let mut any_throttled = false;
            for &i in round {
                match ids_by_digest.get(batch[i].digest.as_bytes()) {
                    Some(&id) => out[i] = Some(Issued::Created { expires_at, id }),
                    None => {
                        throttled.push(&batch[i].user.id)?;
                        any_throttled = true;
                    }
                }
            }
            if any_throttled {
                let mut last: HashMap<UserId, i64> = HashMap::new();
                for r in c.query_typed(&last_sql, &[(throttled.sql(), kind.wire_array_type())])? {
                    last.insert(user_id(kind, &r, 0)?, r.try_get(1)?);
                }
                for &i in round {
                    if out[i].is_none() {
                        let at = last.get(&batch[i].user.id).copied().unwrap_or(now);
                        out[i] = Some(Issued::Throttled {
                            retry_at: at.saturating_add(throttle.unwrap_or(0)),
                        });
                    }
                }
            }
        }
        Ok(out)
    })?
    .into_iter()
    .map(|o| o.ok_or_else(|| anyhow::anyhow!("a token request got no answer from the database")))
    .collect()
}

pub(super) fn revoke_undelivered(
    s: &mut PgStore,
    token_id: i64,
    user: &User,
    reason: &str,
    now: i64,
    actor: &str,
) -> Result<()> {
    let kind = s.id;
    let uid = id_arg(kind, &user.id)?;
    let revoke = format!(
        "UPDATE {} SET revoked_at = $2, revoked_reason = 'undelivered',
                dead_at = least(dead_at, $2)
          WHERE id = $1 AND used_at IS NULL AND revoked_at IS NULL
         RETURNING created_at",
        s.q.tokens
    );
    let give_back = format!(
        "DELETE FROM {} WHERE user_id = {} AND last_at = $2",
        s.q.throttle,
        kind.param(1)
    );
    s.in_tx(|c, q, _| {
        let created = c
            .query_typed_opt(&revoke, &[(&token_id, Type::INT8), (&now, Type::INT8)])?
            .map(|r| r.try_get::<_, i64>(0))
            .transpose()?;
        if let Some(created) = created {
            // Only if no later request has moved it since.
            c.query_typed(
                &give_back,
                &[(uid.sql(), kind.wire_type()), (&created, Type::INT8)],
            )?;
        }
        super::audit::insert(
            c,
            q,
            &AuditEvent {
                at: now,
                actor,
                action: AuditAction::Request,
                user_id: Some(&user.id),
                email: Some(&user.email),
                outcome: AuditOutcome::Failed,
                detail: Some(reason),
            },
        )
        .map_err(TxError::Db)
    })
}

pub(super) fn lookup(
    s: &mut PgStore,
    token_id: i64,
    digest: &Digest,
) -> Result<Option<TokenRecord>> {
    let kind = s.id;
    let row = s
        .client
        .query_typed_opt(
            &s.q.select_token,
            &[(&token_id, Type::INT8), (&digest.as_bytes(), Type::BYTEA)],
        )
        .map_err(|e| s.err(e))?;
    row.map(|r| token_from_row(kind, &r))
        .transpose()
        .map_err(|e| s.err(e))
}

fn token_from_row(kind: IdKind, r: &postgres::Row) -> Result<TokenRecord, postgres::Error> {
    let user_exists: bool = r.try_get(1)?;
    let email = if user_exists {
        Some(text_lossy(r, 2)?)
    } else {
        None
    };
    let password = stored_value(r, 3)?;
    let stored: Vec<u8> = r.try_get(4)?;
    let binding_ok = match &email {
        Some(e) => crate::token::binding(e, &password)[..] == stored[..],
        None => false,
    };
    Ok(TokenRecord {
        user_id: user_id(kind, r, 0)?,
        email,
        created_at: r.try_get(5)?,
        lifecycle: Lifecycle {
            expires_at: r.try_get(6)?,
            used_at: r.try_get(7)?,
            revoked_at: r.try_get(8)?,
            user_exists,
            binding_ok,
        },
        revoked_reason: r
            .try_get::<_, Option<String>>(9)?
            .map(|t| RevokeReason::parse(&t)),
    })
}

pub(super) fn consume(s: &mut PgStore, c: &Consume<'_>) -> Result<Consumed> {
    let kind = s.id;
    let uid = id_arg(kind, c.user_id)?;
    let q = &s.q;
    let lock_user = format!(
        "SELECT 1 FROM {} WHERE {} = {} FOR UPDATE",
        q.users,
        q.id,
        kind.param(1)
    );
    let spend = format!(
        "UPDATE {} SET used_at = $2, dead_at = least(dead_at, $2)
          WHERE id = $1 AND used_at IS NULL AND revoked_at IS NULL AND expires_at > $2",
        q.tokens
    );
    let update_user = format!(
        "UPDATE {} SET {} = $2 WHERE {} = {}",
        q.users,
        q.password,
        q.id,
        kind.param(1)
    );
    let revoke_others = format!(
        "UPDATE {} SET revoked_at = $2, revoked_reason = 'password reset',
                dead_at = least(dead_at, $2)
          WHERE user_id = {} AND used_at IS NULL AND revoked_at IS NULL",
        q.tokens,
        kind.param(1)
    );
    let select_token = q.select_token.clone();
    let digest = c.digest.as_bytes();
    s.in_tx(|db: &mut Client, q, _| {
        // Two resets for one user queue here, so the second sees the first's password (and
        // its token revoked) instead of both changing it.
        db.query_typed(&lock_user, &[(uid.sql(), kind.wire_type())])?;
        // Re-check inside the transaction: the account binding is computed here, not in SQL.
        let Some(row) = db.query_typed_opt(
            &select_token,
            &[(&c.token_id, Type::INT8), (&digest, Type::BYTEA)],
        )?
        else {
            return Ok(Consumed::NotUsable(Status::Unknown));
        };
        let rec = token_from_row(kind, &row)?;
        let status = rec.status(c.now);
        if status != Status::Valid || rec.user_id != *c.user_id {
            return Ok(Consumed::NotUsable(status));
        }
        // Spend the token with one conditional statement: of several changes racing with one
        // token, exactly one sees a row change.
        let spent = db.execute_typed(&spend, &[(&c.token_id, Type::INT8), (&c.now, Type::INT8)])?;
        if spent != 1 {
            return Ok(Consumed::NotUsable(Status::Used));
        }
        let changed = db.execute_typed(
            &update_user,
            &[(uid.sql(), kind.wire_type()), (&c.new_hash, Type::TEXT)],
        )?;
        if changed != 1 {
            return Err(TxError::Other(anyhow::anyhow!(
                "updating the password of user {} changed {changed} rows; nothing was committed",
                c.user_id
            )));
        }
        db.execute_typed(
            &revoke_others,
            &[(uid.sql(), kind.wire_type()), (&c.now, Type::INT8)],
        )?;
        super::audit::insert(
            db,
            q,
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
        Ok(Consumed::Changed)
    })
}
