//! Tokens: issuing (with the throttle), settling, looking up, spending, revoking.
//!
//! A bulk request is three statements per chunk, fed by `unnest()` of the chunk's arrays: the
//! throttle upsert, the look for open tokens, then the insert of the new tokens (with the
//! audit rows of the users refused, if any, as a data-modifying CTE). Three round trips for
//! thousands of users. Settling a printed chunk is likewise a few array statements.

use super::{IdArray, IdKind, PgStore, Quoted, TxError, id_arg, stored_value, text_lossy, user_id};
use crate::error::{Exit, fail};
use crate::store::{
    AuditAction, AuditEvent, AuditOutcome, Consume, Consumed, Issue, Issued, NewToken,
    RevokeReason, Settle, Spend, TokenRecord, User, UserId,
};
use crate::token::{Digest, Lifecycle, Status};
use anyhow::Result;
use postgres::Client;
use postgres::types::{ToSql, Type};
use std::collections::{HashMap, HashSet};

/// Key lookups only, whatever the statistics say. While a bulk run fills an empty table there
/// are no statistics (autovacuum analyzes only now and then), and the planner, guessing
/// `used_at IS NULL AND revoked_at IS NULL` rare, then scans the whole table for each chunk's
/// open tokens: a request --all slowed from 36,000 to 10,000 tokens/s as the table grew. No
/// plan here is better with a sequential scan, nor with parallel workers, whose start costs
/// more than the 2,000 index probes of a chunk. (`dead_at + 0` keeps the planner off the
/// dead_at index, which it also took.)
pub(super) const BY_KEY: &str =
    "SET LOCAL enable_seqscan = off; SET LOCAL max_parallel_workers_per_gather = 0";

/// The throttle for one round of users (each at most once): a user's row moves to now, and to
/// this run, only if its last request is older than the cutoff. Under READ COMMITTED a racing
/// request waits for the row and then sees the winner's row, so exactly one passes. Returns
/// who passed.
///
/// `guard` (no throttle: --force): the row still moves, so the next unforced request waits,
/// but not away from a run that is still going: that run is making this user's link now, and
/// a second link would mail them twice. A run that ended, or was purged, holds nothing.
fn throttle_sql(q: &Quoted, id: IdKind, guard: bool, returning: bool) -> String {
    format!(
        "INSERT INTO {throttle} AS th (user_id, last_at, run_id)
         SELECT u, $2, $4 FROM unnest({ids}) AS x(u)
         ON CONFLICT (user_id) DO UPDATE SET last_at = EXCLUDED.last_at, run_id = EXCLUDED.run_id
          WHERE th.last_at <= $3 {guard}
         {returning}",
        throttle = q.throttle,
        ids = id.array_param(1),
        guard = if guard {
            format!(
                "AND (th.run_id IS NULL OR th.run_id = EXCLUDED.run_id
                      OR NOT EXISTS (SELECT 1 FROM {runs} r
                                      WHERE r.id = th.run_id AND r.ended_at IS NULL))",
                runs = q.runs
            )
        } else {
            String::new()
        },
        returning = if returning {
            format!("RETURNING {}", id.read("th.user_id"))
        } else {
            String::new()
        },
    )
}

/// Which of the round's users (who passed the throttle) have open tokens: their older links
/// stop when the new one is handed over ([`settle`]).
fn open_sql(q: &Quoted, id: IdKind) -> String {
    format!(
        "SELECT DISTINCT {uid} FROM {tokens}
          WHERE user_id = ANY({ids}) AND used_at IS NULL AND revoked_at IS NULL
            AND dead_at + 0 > $2",
        uid = id.read("user_id"),
        tokens = q.tokens,
        ids = id.array_param(1),
    )
}

/// For the users that passed: insert the new tokens, pending (their run and batch set, not
/// handed over); with `audited`, also the audit rows of the round's refused users (`$9`..).
/// No joins: the client already knows who passed, and a join of `unnest()` outputs, which the
/// planner cannot estimate, turned into nested loops.
fn issue_sql(q: &Quoted, id: IdKind, audited: bool) -> String {
    let audit = if audited {
        format!(
            "WITH audited AS (
                INSERT INTO {audit} (at, actor, action, user_id, email, outcome, detail)
                SELECT $4, $8, 'request', u, e, '{throttled}', d
                  FROM unnest($9::text[], $10::text[], $11::text[]) AS a(u, e, d)
             )",
            audit = q.audit,
            throttled = AuditOutcome::Throttled.as_str(),
        )
    } else {
        String::new()
    };
    format!(
        "{audit}
         INSERT INTO {tokens}
                (digest, user_id, binding, created_at, expires_at, dead_at, run_id, batch)
         SELECT d, u, b, $4, $5, $5, $6, $7
           FROM unnest({ids}, $2::bytea[], $3::bytea[]) AS x(u, d, b)
         RETURNING id, digest",
        ids = id.array_param(1),
        tokens = q.tokens,
    )
}

pub(super) fn issue(
    s: &mut PgStore,
    batch: &[NewToken<'_>],
    issue: &Issue<'_>,
) -> Result<Vec<Issued>> {
    if batch.is_empty() {
        return Ok(Vec::new());
    }
    let now = issue.now;
    let expires_at = now.saturating_add(i64::try_from(issue.ttl.as_secs()).unwrap_or(i64::MAX / 2));
    let throttle = issue
        .throttle
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
    let kind = s.id;
    let bindings: Vec<Vec<u8>> = batch
        .iter()
        .map(|t| crate::token::binding(&t.user.email, &t.user.password).to_vec())
        .collect();
    let guard = throttle.is_none();
    let throttle_count = throttle_sql(&s.q, kind, guard, false);
    let throttle_sql = throttle_sql(&s.q, kind, guard, true);
    let open_sql = open_sql(&s.q, kind);
    let issue_plain = issue_sql(&s.q, kind, false);
    let issue_audited = issue_sql(&s.q, kind, true);
    let held_sql = format!(
        "SELECT {}, last_at, coalesce(run_id, 0) FROM {} WHERE user_id = ANY({})",
        kind.read("user_id"),
        s.q.throttle,
        kind.array_param(1)
    );
    s.in_tx(|c, _, _| {
        // Every statement below finds its rows by key (see BY_KEY).
        c.batch_execute(BY_KEY)?;
        let mut out: Vec<Option<Issued>> = vec![None; batch.len()];
        for round in &rounds {
            let mut ids = IdArray::new(kind, round.len());
            for &i in round {
                ids.push(&batch[i].user.id)?;
            }
            // First the throttle, in a statement of its own: the rows it moves stay locked
            // until commit, so no other request for these users can add a token that the
            // look for open tokens below (a new statement, a new snapshot) would miss.
            // Usually the whole round passes (a bulk run, a first request), and the upsert's
            // row count says so: reading back every id cost a third of the statement. When
            // some were refused, the upsert is undone to the savepoint and run again,
            // naming who passed.
            let params: [(&(dyn ToSql + Sync), Type); 4] = [
                (ids.sql(), kind.wire_array_type()),
                (&now, Type::INT8),
                (&cutoff, Type::INT8),
                (&issue.run_id, Type::INT8),
            ];
            c.batch_execute("SAVEPOINT throttle")?;
            let moved = c.execute_typed(&throttle_count, &params)?;
            let mut passed: HashSet<UserId> = HashSet::with_capacity(round.len());
            if moved == round.len() as u64 {
                c.batch_execute("RELEASE SAVEPOINT throttle")?;
                passed.extend(round.iter().map(|&i| batch[i].user.id.clone()));
            } else {
                c.batch_execute("ROLLBACK TO SAVEPOINT throttle; RELEASE SAVEPOINT throttle")?;
                for r in c.query_typed(&throttle_sql, &params)? {
                    passed.insert(user_id(kind, &r, 0)?);
                }
            }
            let mut new_ids = IdArray::new(kind, passed.len());
            let mut digests: Vec<&[u8]> = Vec::with_capacity(passed.len());
            let mut binds: Vec<&[u8]> = Vec::with_capacity(passed.len());
            let mut refused = IdArray::new(kind, round.len() - passed.len());
            for &i in round {
                let user = batch[i].user;
                if passed.contains(&user.id) {
                    new_ids.push(&user.id)?;
                    digests.push(batch[i].digest.as_bytes());
                    binds.push(&bindings[i]);
                } else {
                    refused.push(&user.id)?;
                }
            }
            // Who holds the rows that did not move: their time says when to retry, their run
            // who is making the link. The upsert locked them, so they are as it saw them.
            let (mut a_ids, mut a_emails, mut a_details) = (Vec::new(), Vec::new(), Vec::new());
            if passed.len() < round.len() {
                let mut held: HashMap<UserId, (i64, i64)> = HashMap::new();
                for r in c.query_typed(&held_sql, &[(refused.sql(), kind.wire_array_type())])? {
                    held.insert(user_id(kind, &r, 0)?, (r.try_get(1)?, r.try_get(2)?));
                }
                for &i in round {
                    let user = batch[i].user;
                    if passed.contains(&user.id) {
                        continue;
                    }
                    let (last, by) = held.get(&user.id).copied().unwrap_or((now, issue.run_id));
                    let (issued, detail) = match throttle {
                        Some(t) => (
                            Issued::Throttled {
                                retry_at: last.saturating_add(t),
                            },
                            None,
                        ),
                        None => (
                            Issued::Busy { run_id: by },
                            Some(crate::store::busy_detail(by)),
                        ),
                    };
                    out[i] = Some(issued);
                    a_ids.push(user.id.to_string());
                    a_emails.push(user.email.as_str());
                    a_details.push(detail);
                }
            }
            let mut open: HashSet<UserId> = HashSet::new();
            if !passed.is_empty() {
                for r in c.query_typed(
                    &open_sql,
                    &[(new_ids.sql(), kind.wire_array_type()), (&now, Type::INT8)],
                )? {
                    open.insert(user_id(kind, &r, 0)?);
                }
            }
            let mut params: Vec<(&(dyn ToSql + Sync), Type)> = vec![
                (new_ids.sql(), kind.wire_array_type()),
                (&digests, Type::BYTEA_ARRAY),
                (&binds, Type::BYTEA_ARRAY),
                (&now, Type::INT8),
                (&expires_at, Type::INT8),
                (&issue.run_id, Type::INT8),
                (&issue.batch, Type::INT8),
            ];
            let audited = !a_ids.is_empty();
            if audited {
                params.extend([
                    (&issue.actor as &(dyn ToSql + Sync), Type::TEXT),
                    (&a_ids, Type::TEXT_ARRAY),
                    (&a_emails, Type::TEXT_ARRAY),
                    (&a_details, Type::TEXT_ARRAY),
                ]);
            }
            let rows = c.query_typed(
                if audited {
                    &issue_audited
                } else {
                    &issue_plain
                },
                &params,
            )?;
            let mut ids_by_digest: HashMap<Vec<u8>, i64> = HashMap::with_capacity(rows.len());
            for r in &rows {
                ids_by_digest.insert(r.try_get(1)?, r.try_get(0)?);
            }
            for &i in round {
                if let Some(&id) = ids_by_digest.get(batch[i].digest.as_bytes()) {
                    out[i] = Some(Issued::Created {
                        expires_at,
                        id,
                        had_open: open.contains(&batch[i].user.id),
                    });
                }
            }
        }
        Ok(out)
    })?
    .into_iter()
    .map(|o| o.ok_or_else(|| anyhow::anyhow!("a token request got no answer from the database")))
    .collect()
}

pub(super) fn settle(s: &mut PgStore, settle: &Settle<'_>) -> Result<()> {
    if settle.handed.is_empty() && settle.released.is_empty() && settle.printed.is_none() {
        return Ok(());
    }
    let kind = s.id;
    let now = settle.now;
    let mailed = settle.printed.is_none();
    // A printed link needs no mark: the run's `printed_upto` covers its batch.
    let marked: Vec<i64> = if mailed {
        settle.handed.iter().map(|h| h.token_id).collect()
    } else {
        Vec::new()
    };
    // The users who had other open links when theirs was made, and the link to keep.
    let mut users = IdArray::new(kind, settle.handed.len());
    let mut keep: Vec<i64> = Vec::with_capacity(settle.handed.len());
    for h in settle.handed.iter().filter(|h| h.had_open) {
        users.push(&h.user.id)?;
        keep.push(h.token_id);
    }
    let released: Vec<i64> = settle.released.iter().map(|r| r.token_id).collect();
    let reasons: Vec<String> = settle
        .released
        .iter()
        .map(|r| {
            if r.attempted {
                RevokeReason::Undelivered
            } else {
                RevokeReason::NotSent
            }
            .as_str()
        })
        .collect();
    let handed = if mailed {
        AuditOutcome::Sent
    } else {
        AuditOutcome::Created
    };
    let rows = settle.handed.len() + settle.released.len();
    let (mut a_ids, mut a_emails, mut a_outcomes, mut a_details) = (
        Vec::with_capacity(rows),
        Vec::with_capacity(rows),
        Vec::with_capacity(rows),
        Vec::with_capacity(rows),
    );
    for h in settle.handed {
        a_ids.push(h.user.id.to_string());
        a_emails.push(h.user.email.as_str());
        a_outcomes.push(handed.as_str());
        a_details.push(None);
    }
    for r in settle.released {
        a_ids.push(r.user.id.to_string());
        a_emails.push(r.user.email.as_str());
        a_outcomes.push(AuditOutcome::Failed.as_str());
        a_details.push(Some(r.why));
    }
    let q = &s.q;
    let printed_sql = format!(
        "UPDATE {} SET printed_upto = greatest(printed_upto, $2) WHERE id = $1",
        q.runs
    );
    let mark_sql = format!(
        "UPDATE {} SET handed_over_at = $2
          WHERE id = ANY($1::bigint[]) AND handed_over_at IS NULL AND revoked_at IS NULL",
        q.tokens
    );
    let supersede_sql = format!(
        "UPDATE {tokens} t SET revoked_at = $3, revoked_reason = 'superseded',
                dead_at = least(t.dead_at, $3)
           FROM unnest({users}, $2::bigint[]) AS d(u, keep)
          WHERE t.user_id = d.u AND t.id <> d.keep
            AND t.used_at IS NULL AND t.revoked_at IS NULL AND t.dead_at + 0 > $3
            AND EXISTS (SELECT 1 FROM {tokens} k WHERE k.id = d.keep AND k.revoked_at IS NULL)",
        tokens = q.tokens,
        users = kind.array_param(1),
    );
    // A released link gives its user's throttle back, unless a later request has moved the
    // row since (its time or its run differ): an undelivered or unsent link does not count.
    let release_sql = format!(
        "WITH released AS (
            UPDATE {tokens} t SET revoked_at = $3, revoked_reason = r.reason,
                   dead_at = least(t.dead_at, $3)
              FROM unnest($1::bigint[], $2::text[]) AS r(id, reason)
             WHERE t.id = r.id AND t.used_at IS NULL AND t.revoked_at IS NULL
            RETURNING t.user_id, t.created_at
         )
         DELETE FROM {throttle} th USING released
          WHERE th.user_id = released.user_id AND th.last_at = released.created_at
            AND th.run_id = $4",
        tokens = q.tokens,
        throttle = q.throttle,
    );
    let audit_sql = format!(
        "INSERT INTO {} (at, actor, action, user_id, email, outcome, detail)
         SELECT $1, $2, 'request', u, e, o, d
           FROM unnest($3::text[], $4::text[], $5::text[], $6::text[]) AS a(u, e, o, d)",
        q.audit
    );
    s.in_tx(|c, _, _| {
        if let Some(batch) = settle.printed {
            c.execute_typed(
                &printed_sql,
                &[(&settle.run_id, Type::INT8), (&batch, Type::INT8)],
            )?;
        }
        if !marked.is_empty() {
            c.execute_typed(
                &mark_sql,
                &[(&marked, Type::INT8_ARRAY), (&now, Type::INT8)],
            )?;
        }
        if !keep.is_empty() {
            // A printed chunk supersedes for up to thousands of users: by key (see BY_KEY).
            c.batch_execute(BY_KEY)?;
            c.execute_typed(
                &supersede_sql,
                &[
                    (users.sql(), kind.wire_array_type()),
                    (&keep, Type::INT8_ARRAY),
                    (&now, Type::INT8),
                ],
            )?;
        }
        if !released.is_empty() {
            c.execute_typed(
                &release_sql,
                &[
                    (&released, Type::INT8_ARRAY),
                    (&reasons, Type::TEXT_ARRAY),
                    (&now, Type::INT8),
                    (&settle.run_id, Type::INT8),
                ],
            )?;
        }
        if !a_ids.is_empty() {
            c.execute_typed(
                &audit_sql,
                &[
                    (&now, Type::INT8),
                    (&settle.actor, Type::TEXT),
                    (&a_ids, Type::TEXT_ARRAY),
                    (&a_emails, Type::TEXT_ARRAY),
                    (&a_outcomes, Type::TEXT_ARRAY),
                    (&a_details, Type::TEXT_ARRAY),
                ],
            )?;
        }
        Ok(())
    })
}

pub(super) fn revoke_token(
    s: &mut PgStore,
    token_id: i64,
    reason: &RevokeReason,
    now: i64,
    audit: Option<&AuditEvent<'_>>,
) -> Result<bool> {
    let sql = format!(
        "UPDATE {} SET revoked_at = $2, revoked_reason = $3, dead_at = least(dead_at, $2)
          WHERE id = $1 AND used_at IS NULL AND revoked_at IS NULL",
        s.q.tokens
    );
    let reason = reason.as_str();
    let params: [(&(dyn postgres::types::ToSql + Sync), Type); 3] = [
        (&token_id, Type::INT8),
        (&now, Type::INT8),
        (&reason, Type::TEXT),
    ];
    if s.read_only {
        // verify and friends: the revocation found at lookup is stored if this role may write
        // pwreset's tables, and left alone quietly if it may not (support staff's role).
        return Ok(s
            .client
            .execute_typed(&sql, &params)
            .map(|n| n == 1)
            .unwrap_or(false));
    }
    s.in_tx(|c, q, _| {
        let changed = c.execute_typed(&sql, &params)?;
        if let Some(event) = audit {
            super::audit::insert(c, q, event)?;
        }
        Ok(changed == 1)
    })
}

pub(super) fn revoke_user_tokens(
    s: &mut PgStore,
    user: &User,
    reason: &RevokeReason,
    now: i64,
    actor: &str,
) -> Result<u64> {
    let kind = s.id;
    let uid = id_arg(kind, &user.id)?;
    let sql = format!(
        "UPDATE {} SET revoked_at = $2, revoked_reason = $3, dead_at = least(dead_at, $2)
          WHERE user_id = {} AND used_at IS NULL AND revoked_at IS NULL AND dead_at > $2",
        s.q.tokens,
        kind.param(1)
    );
    let why = reason.as_str();
    s.in_tx(|c, q, _| {
        let n = c.execute_typed(
            &sql,
            &[
                (uid.sql(), kind.wire_type()),
                (&now, Type::INT8),
                (&why, Type::TEXT),
            ],
        )?;
        let detail = crate::store::revoke_user_detail(n, reason);
        super::audit::insert(
            c,
            q,
            &AuditEvent::revoked_user(user, n, &detail, now, actor),
        )?;
        Ok(n)
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

/// An `after_reset` statement failed: a lock, serialization or connection failure is 75 (try
/// again), a missing privilege 77 with the GRANT to run (`role` is the one pwreset connects
/// as), anything else 70, all naming the statement. Not repeated like other lost races: the
/// statement is the application's, and its error is worth showing as it is.
fn after_reset_error(i: usize, e: postgres::Error, role: &str) -> anyhow::Error {
    let denied = e.code() == Some(&postgres::error::SqlState::INSUFFICIENT_PRIVILEGE);
    let temporary = e.is_closed()
        || e.code().is_some_and(|c| {
            let c = c.code();
            c.starts_with("40") || c.starts_with("08") || c.starts_with("57P") || c == "55P03"
        })
        || std::error::Error::source(&e).is_some_and(|s| s.is::<std::io::Error>());
    let text = match e.as_db_error() {
        Some(db) => db.message().to_owned(),
        None => e.to_string(),
    };
    let text = crate::ui::escape(&crate::store::scrub::text(&text, &[]));
    if denied {
        // PREPARE does not check privileges on PostgreSQL, so init cannot find this; the
        // statement's own text is the application's, but its error never carries bound values.
        return fail(
            Exit::NoPerm,
            format!(
                "users.after_reset[{i}] was refused for lack of privilege ({text}); the reset was rolled back, nothing changed and the link still works. Role {} needs the rights its after_reset statements use besides pwreset's own: as the tables' owner, grant them (e.g. GRANT DELETE ON sessions TO {};), then use the link again",
                crate::ui::escape(&format!("{role:?}")),
                crate::ui::escape(&super::quote(role))
            ),
        );
    }
    let msg = format!(
        "users.after_reset[{i}] failed ({text}); the reset was rolled back, nothing changed and the link still works"
    );
    if temporary {
        fail(Exit::TempFail, msg)
    } else {
        anyhow::anyhow!(msg)
    }
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
    // A statement that cannot be bound is refused before anything happens (init says so too).
    let mut after_reset: Vec<&str> = Vec::with_capacity(s.after_reset.len());
    for (i, stmt) in s.after_reset.iter().enumerate() {
        match stmt {
            Ok(stmt) => after_reset.push(&stmt.sql),
            Err(why) => {
                return Err(fail(
                    Exit::Config,
                    format!(
                        "users.after_reset[{i}]: {why}; nothing changed and the link still works"
                    ),
                ));
            }
        }
    }
    let after_reset: Vec<String> = after_reset.into_iter().map(str::to_owned).collect();
    let role = s.server.user.clone();
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
        // The application's own clean-up (ending sessions), in the same transaction: if one
        // fails, nothing of the reset happens and the link still works.
        let email = rec.email.clone().unwrap_or_default();
        for (i, sql) in after_reset.iter().enumerate() {
            db.execute_typed(sql, &[(uid.sql(), kind.wire_type()), (&email, Type::TEXT)])
                .map_err(|e| TxError::Other(after_reset_error(i, e, &role)))?;
        }
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

/// A token by id and digest as stored, with no users table to join (users in a directory);
/// `lock`: FOR UPDATE, inside a spend's transaction.
fn alone_sql(q: &Quoted, kind: IdKind, lock: bool) -> String {
    format!(
        "SELECT {}, binding, created_at, expires_at, used_at, revoked_at, revoked_reason
           FROM {} WHERE id = $1 AND digest = $2{}",
        kind.read("user_id"),
        q.tokens,
        if lock { " FOR UPDATE" } else { "" }
    )
}

fn alone_from_row(
    kind: IdKind,
    r: &postgres::Row,
) -> Result<(TokenRecord, Vec<u8>), postgres::Error> {
    Ok((
        TokenRecord::without_user_row(
            user_id(kind, r, 0)?,
            r.try_get(2)?,
            r.try_get(3)?,
            r.try_get(4)?,
            r.try_get(5)?,
            r.try_get::<_, Option<String>>(6)?
                .map(|t| RevokeReason::parse(&t)),
        ),
        r.try_get(1)?,
    ))
}

pub(super) fn alone(
    s: &mut PgStore,
    token_id: i64,
    digest: &Digest,
) -> Result<Option<(TokenRecord, Vec<u8>)>> {
    let kind = s.id;
    let sql = alone_sql(&s.q, kind, false);
    let row = s
        .client
        .query_typed_opt(
            &sql,
            &[(&token_id, Type::INT8), (&digest.as_bytes(), Type::BYTEA)],
        )
        .map_err(|e| s.err(e))?;
    row.map(|r| alone_from_row(kind, &r))
        .transpose()
        .map_err(|e| s.err(e))
}

/// The statements of a spend, made once.
struct SpendSql {
    lock_user: String,
    select: String,
    spend: String,
    revoke_others: String,
}

/// Spend a token for a password set in a directory. Unlike the other transactions here, this
/// one is not simply repeated after a lost race: the directory's change is not the
/// database's to undo, so it must happen at most once. A race lost before the change is
/// repeated from the start; after it, only the record is (the token spent, the user's other
/// links revoked, the audit row), since the person now has the new password.
pub(super) fn spend(
    s: &mut PgStore,
    sp: &Spend<'_>,
    change: &mut dyn FnMut() -> Result<bool>,
) -> Result<Consumed> {
    let kind = s.id;
    let uid = id_arg(kind, sp.user_id)?;
    let sql = SpendSql {
        // Two resets for one person queue on their throttle row (every person with a link
        // has one), so the second sees the first's spend instead of both changing the
        // password; a request for them waits too.
        lock_user: format!(
            "SELECT 1 FROM {} WHERE user_id = {} FOR UPDATE",
            s.q.throttle,
            kind.param(1)
        ),
        select: alone_sql(&s.q, kind, true),
        spend: format!(
            "UPDATE {} SET used_at = $2, dead_at = least(dead_at, $2)
              WHERE id = $1 AND used_at IS NULL AND revoked_at IS NULL AND expires_at > $2",
            s.q.tokens
        ),
        revoke_others: format!(
            "UPDATE {} SET revoked_at = $2, revoked_reason = 'password reset',
                    dead_at = least(dead_at, $2)
              WHERE user_id = {} AND used_at IS NULL AND revoked_at IS NULL",
            s.q.tokens,
            kind.param(1)
        ),
    };
    let begin = s.begin_sql();
    let mut changed = false;
    let mut attempt = 1;
    loop {
        let outcome = s
            .client
            .batch_execute(&begin)
            .map_err(TxError::Db)
            .and_then(|()| {
                spend_once(
                    &mut s.client,
                    &s.q,
                    &sql,
                    &uid,
                    kind,
                    sp,
                    &mut changed,
                    change,
                )
            });
        let outcome = match outcome {
            Ok(Consumed::Changed) => s
                .client
                .batch_execute("COMMIT")
                .map_err(TxError::Db)
                .map(|()| Consumed::Changed),
            // Nothing to keep: the token stays as it was.
            Ok(other) => {
                let _ = s.client.batch_execute("ROLLBACK");
                return Ok(other);
            }
            Err(e) => Err(e),
        };
        let e = match outcome {
            Ok(v) => return Ok(v),
            Err(e) => e,
        };
        if !s.client.is_closed() {
            let _ = s.client.batch_execute("ROLLBACK");
        }
        let again = attempt < super::ATTEMPTS
            && match &e {
                TxError::Db(db) => changed || super::is_retryable(db),
                TxError::Other(_) => false,
            };
        if again {
            std::thread::sleep(std::time::Duration::from_millis(20 * u64::from(attempt)));
            attempt += 1;
            continue;
        }
        let e = match e {
            TxError::Db(db) => s.err(db),
            TxError::Other(other) => other,
        };
        return Err(if changed {
            e.context(
                "the directory has the new password, but pwreset could not record the reset: the link still works until it expires, and using it again records it",
            )
        } else {
            e
        });
    }
}

/// One try of [`spend`]'s transaction, inside BEGIN; `changed` is set once the directory has
/// the new password, and then only the record is made.
#[allow(clippy::too_many_arguments)]
fn spend_once(
    db: &mut Client,
    q: &Quoted,
    sql: &SpendSql,
    uid: &super::IdArg,
    kind: IdKind,
    sp: &Spend<'_>,
    changed: &mut bool,
    change: &mut dyn FnMut() -> Result<bool>,
) -> Result<Consumed, TxError> {
    let spend_args: [(&(dyn ToSql + Sync), Type); 2] =
        [(&sp.token_id, Type::INT8), (&sp.now, Type::INT8)];
    if !*changed {
        db.query_typed(&sql.lock_user, &[(uid.sql(), kind.wire_type())])?;
        let Some(row) = db.query_typed_opt(
            &sql.select,
            &[
                (&sp.token_id, Type::INT8),
                (&sp.digest.as_bytes(), Type::BYTEA),
            ],
        )?
        else {
            return Ok(Consumed::NotUsable(Status::Unknown));
        };
        let (rec, _) = alone_from_row(kind, &row)?;
        let status = rec.status(sp.now);
        if status != Status::Valid || rec.user_id != *sp.user_id {
            return Ok(Consumed::NotUsable(status));
        }
        // Spent first, so that of several changes racing with one token exactly one reaches
        // the directory; rolled back if the directory does not change the password.
        if db.execute_typed(&sql.spend, &spend_args)? != 1 {
            return Ok(Consumed::NotUsable(Status::Used));
        }
        match change() {
            Ok(true) => *changed = true,
            Ok(false) => return Ok(Consumed::Kept),
            Err(e) => return Err(TxError::Other(e)),
        }
    } else {
        // A repeat after the change: the first try's spend was rolled back with the rest.
        // Whatever happened to the token meanwhile, the password has changed, so the row
        // count does not matter.
        db.execute_typed(&sql.spend, &spend_args)?;
    }
    db.execute_typed(
        &sql.revoke_others,
        &[(uid.sql(), kind.wire_type()), (&sp.now, Type::INT8)],
    )?;
    super::audit::insert(
        db,
        q,
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
    Ok(Consumed::Changed)
}
