//! Tokens: issuing (with the throttle), settling what became of them, looking up, spending,
//! revoking.
//!
//! A bulk request stores a chunk of users with a handful of multi-row statements instead of
//! several statements per user: one conditional upsert of the throttle rows, one read-back of
//! which rows it moved (skipped when it moved them all), one look for open tokens, one insert
//! of the tokens, one of the audit rows of the refused. Settling a printed chunk is as few: the
//! run's mark, one revocation of older links, one insert of the audit rows.

use super::{MysqlStore, Shared, marks, opt_i64, stored_param, stored_value, text_lossy};
use crate::store::{
    AuditAction, AuditEvent, AuditOutcome, Consume, Consumed, Issue, Issued, NewToken,
    RevokeReason, Settle, Spend, TokenRecord, User, UserId,
};
use crate::token::{Digest, Lifecycle, Status};
use anyhow::Result;
use mysql::prelude::Queryable;
use mysql::{Conn, Value};
use std::collections::{BTreeMap, HashMap, HashSet};

/// Rows per multi-row statement: a whole request chunk (5,000 users), so round trips stop
/// mattering, and about 1 MiB of statement, far below max_allowed_packet (16 MiB by default).
pub(super) const ROWS: usize = 5000;

/// What every token of one `issue` call is stored with.
struct Terms {
    now: i64,
    expires_at: i64,
    /// The throttle in seconds; None with --force.
    throttle: Option<i64>,
    run_id: i64,
    batch: i64,
}

/// A request that got no link, for its audit row: its index in the batch, and the detail.
type Refused = (usize, Option<String>);

pub(super) fn issue(
    s: &mut MysqlStore,
    batch: &[NewToken<'_>],
    issue: &Issue<'_>,
) -> Result<Vec<Issued>> {
    let now = issue.now;
    let terms = Terms {
        now,
        expires_at: now.saturating_add(i64::try_from(issue.ttl.as_secs()).unwrap_or(i64::MAX / 2)),
        throttle: issue
            .throttle
            .filter(|t| !t.is_zero())
            .map(|t| i64::try_from(t.as_secs()).unwrap_or(i64::MAX / 2)),
        run_id: issue.run_id,
        batch: issue.batch,
    };
    s.tx(|conn, sh| {
        let mut out: Vec<Option<Issued>> = vec![None; batch.len()];
        let mut refused: Vec<Refused> = Vec::new();
        // A user listed twice must see the first request's throttle row and token, so each
        // part of the batch holds each user once, and parts go in order.
        let mut start = 0;
        while start < batch.len() {
            let mut seen = HashSet::new();
            let mut end = start;
            while end < batch.len() && end - start < ROWS && seen.insert(&batch[end].user.id) {
                end += 1;
            }
            issue_part(
                conn,
                sh,
                &batch[start..end],
                start,
                &terms,
                &mut out,
                &mut refused,
            )?;
            start = end;
        }
        // The others' audit rows wait for the hand-over (`settle`).
        refused.sort_by_key(|(i, _)| *i);
        let audit: Vec<AuditEvent<'_>> = refused
            .iter()
            .map(|(i, detail)| AuditEvent {
                at: now,
                actor: issue.actor,
                action: AuditAction::Request,
                user_id: Some(&batch[*i].user.id),
                email: Some(&batch[*i].user.email),
                outcome: AuditOutcome::Throttled,
                detail: detail.as_deref(),
            })
            .collect();
        super::audit::insert(conn, sh, &audit)?;
        out.into_iter()
            .map(|o| o.ok_or_else(|| anyhow::anyhow!("a request of the batch got no outcome")))
            .collect()
    })
}

/// Issue tokens for distinct users, `first` being the index of `part[0]` in the batch.
fn issue_part(
    conn: &mut Conn,
    sh: &Shared,
    part: &[NewToken<'_>],
    first: usize,
    terms: &Terms,
    out: &mut [Option<Issued>],
    refused: &mut Vec<Refused>,
) -> Result<()> {
    let (now, expires_at) = (terms.now, terms.expires_at);
    let ids: Vec<Value> = part.iter().map(|t| sh.id_value(&t.user.id)).collect();
    // The throttle: a row moves to `now` and to this run only if its last request is at or
    // before the cutoff (with --force, always, so the next unforced request waits)...
    let cutoff = terms.throttle.map_or(i64::MAX, |t| now.saturating_sub(t));
    // ... and, with no throttle to stop a second run, only if the run that moved it last is
    // this one or is over (ended, purged, or none): a run still going is making this user's
    // link now, and two runs at once must not mail anyone twice. On MariaDB the subquery reads
    // the latest committed row without a lock and without taking the transaction's snapshot
    // (a run being ended right now still counts as going: its users are left to it); where a
    // server takes a shared lock instead, it waits for the ending, or deadlocks with it, which
    // `tx` retries.
    let guard = if terms.throttle.is_none() {
        " AND (run_id IS NULL OR run_id = VALUES(run_id)
               OR NOT EXISTS (SELECT 1 FROM pwreset_runs r
                               WHERE r.id = pwreset_throttle.run_id AND r.ended_at IS NULL))"
    } else {
        ""
    };
    // The rows this statement moved carry its random claim. The upsert reads and locks the
    // latest row, whatever the transaction's snapshot, so of two racing requests for one user
    // the second sees the first's row. The condition is decided once, by the claim: the
    // assignments run left to right, each seeing the ones before, so a second test of it
    // would see the row half moved.
    let claim = i64::from(super::rand_u32()) << 31 | i64::from(super::rand_u32() >> 1);
    let mut values = Vec::with_capacity(part.len() * 4);
    for id in &ids {
        values.extend([
            id.clone(),
            Value::Int(now),
            Value::Int(claim),
            Value::Int(terms.run_id),
        ]);
    }
    super::exec_rows(
        conn,
        "INSERT INTO pwreset_throttle (user_id, last_at, claim, run_id)",
        4,
        &values,
        &format!(
            "ON DUPLICATE KEY UPDATE
               claim = IF(last_at <= {cutoff}{guard}, VALUES(claim), claim),
               run_id = IF(claim = VALUES(claim), VALUES(run_id), run_id),
               last_at = IF(claim = VALUES(claim), VALUES(last_at), last_at)"
        ),
    )?;
    // Every row new (the common case of a first bulk run): all of them are ours, no need to
    // read them back. The server says so only together: affected rows count 1 per inserted
    // row, 2 per moved one and 0 per untouched one, and the info line's `Duplicates` counts
    // rows that hit an existing key (MariaDB counts only those it moved): with none, n
    // affected rows are n inserted ones, whichever it counts.
    let all_new =
        conn.affected_rows() == part.len() as u64 && duplicates(&conn.info_str()) == Some(0);
    let rows: Vec<(Value, Value, Value, Value)> = if all_new {
        Vec::new()
    } else {
        // Which rows moved: ours are the ones with our claim. The upsert holds every one of
        // these rows locked already, so a locking read costs nothing more, and it returns them
        // as they are: a later part's snapshot is older than its upsert, and would miss a row
        // another request made since (and show an older holder).
        conn.exec(
            format!(
                "SELECT user_id, last_at, claim = ?, COALESCE(run_id, 0) FROM pwreset_throttle
                  WHERE user_id IN ({}) LOCK IN SHARE MODE",
                marks(part.len())
            ),
            std::iter::once(Value::Int(claim))
                .chain(ids.iter().cloned())
                .collect::<Vec<_>>(),
        )?
    };
    // Per user: when the row was last moved, by which run, and whether by us.
    let mut state: HashMap<UserId, (i64, i64, bool)> = HashMap::with_capacity(rows.len());
    for (id, last, mine, by) in rows {
        let mine = opt_i64(mine).unwrap_or(0) == 1;
        let (last, by) = (opt_i64(last).unwrap_or(now), opt_i64(by).unwrap_or(0));
        state.insert(sh.id_from(id)?, (last, by, mine));
    }
    let mut winners: Vec<usize> = Vec::with_capacity(part.len());
    for (i, item) in part.iter().enumerate() {
        if all_new {
            winners.push(i);
            continue;
        }
        match (state.get(&item.user.id), terms.throttle) {
            (Some((_, _, true)), _) => winners.push(i),
            (Some((last, _, false)), Some(throttle)) => {
                out[first + i] = Some(Issued::Throttled {
                    retry_at: last.saturating_add(throttle),
                });
                refused.push((first + i, None));
            }
            (Some((_, by, false)), None) => {
                out[first + i] = Some(Issued::Busy { run_id: *by });
                refused.push((first + i, Some(crate::store::busy_detail(*by))));
            }
            // The row is there (we just upserted it): a missing one means an id that does not
            // compare equal to itself, which pwreset's id types rule out.
            (None, _) => anyhow::bail!(
                "the throttle row of user {} could not be read back",
                item.user.id
            ),
        }
    }
    if winners.is_empty() {
        return Ok(());
    }
    // Which of these users have open tokens (for `had_open`: the hand-over ends them): one
    // indexed read. The first part's read is the transaction's first plain read, so its
    // snapshot is taken after the throttle upsert above, which waited for any other
    // transaction holding these users' throttle rows: whatever such a request stored is
    // visible. A later part's snapshot is older than its own upsert, so it reads the latest
    // rows with a locking read.
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
    // Pending links: no older link is revoked and no audit row written until the hand-over.
    let mut params: Vec<Value> = Vec::with_capacity(winners.len() * 8);
    for &i in &winners {
        let user = part[i].user;
        let binding = crate::token::binding(&user.email, &user.password);
        params.extend([
            Value::Bytes(part[i].digest.as_bytes().to_vec()),
            ids[i].clone(),
            Value::Bytes(binding.to_vec()),
            Value::Int(now),
            Value::Int(expires_at),
            Value::Int(expires_at),
            Value::Int(terms.run_id),
            Value::Int(terms.batch),
        ]);
    }
    super::exec_rows(
        conn,
        "INSERT INTO pwreset_tokens
                (digest, user_id, binding, created_at, expires_at, dead_at, run_id, batch)",
        8,
        &params,
        "",
    )?;
    let token_ids = inserted_ids(conn, part, &winners)?;
    for (&i, id) in winners.iter().zip(token_ids) {
        out[first + i] = Some(Issued::Created {
            expires_at,
            id,
            had_open: open.contains(&part[i].user.id),
        });
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
fn inserted_ids(conn: &mut Conn, part: &[NewToken<'_>], winners: &[usize]) -> Result<Vec<i64>> {
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
        .all(|(&i, id)| by_id.get(id).map(Vec::as_slice) == Some(part[i].digest.as_bytes()));
    if all_match {
        return Ok(expected);
    }
    // Ours all come at or after the first: look them up by their digests there.
    let mut params: Vec<Value> = vec![Value::Int(first)];
    params.extend(
        winners
            .iter()
            .map(|&i| Value::Bytes(part[i].digest.as_bytes().to_vec())),
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
                .get(part[i].digest.as_bytes())
                .copied()
                .ok_or_else(|| anyhow::anyhow!("a token just stored could not be read back"))
        })
        .collect()
}

pub(super) fn settle(s: &mut MysqlStore, settle: &Settle<'_>) -> Result<()> {
    if settle.handed.is_empty() && settle.released.is_empty() && settle.printed.is_none() {
        return Ok(());
    }
    let now = settle.now;
    // Per user whose older links end, the link that stays: their last one handed over (a user
    // handed two links at once keeps the newer, as one statement per link in order would
    // leave it).
    let mut keep: HashMap<&UserId, i64> = HashMap::new();
    let superseding: HashSet<&UserId> = settle
        .handed
        .iter()
        .filter(|h| h.had_open)
        .map(|h| &h.user.id)
        .collect();
    for h in settle.handed {
        if superseding.contains(&h.user.id) {
            keep.insert(&h.user.id, h.token_id);
        }
    }
    let mut keep: Vec<(&UserId, i64)> = keep.into_iter().collect();
    keep.sort_by_key(|(_, id)| *id);
    let outcome = if settle.printed.is_some() {
        AuditOutcome::Created
    } else {
        AuditOutcome::Sent
    };
    s.tx(|conn, sh| {
        match settle.printed {
            // A printed chunk is handed over as a whole: one write for thousands of links.
            Some(batch) => conn.exec_drop(
                "UPDATE pwreset_runs SET printed_upto = GREATEST(printed_upto, ?) WHERE id = ?",
                (batch, settle.run_id),
            )?,
            None => {
                for part in settle.handed.chunks(ROWS) {
                    let mut params: Vec<Value> = vec![Value::Int(now)];
                    params.extend(part.iter().map(|h| Value::Int(h.token_id)));
                    conn.exec_drop(
                        format!(
                            "UPDATE pwreset_tokens SET handed_over_at = ?
                              WHERE id IN ({}) AND handed_over_at IS NULL AND revoked_at IS NULL",
                            marks(part.len())
                        ),
                        params,
                    )?;
                }
            }
        }
        // A link withdrawn before its hand-over was recorded (its run was ended: stopped at a
        // deadline, or judged dead elsewhere) is not what the user holds: their older links
        // stay. Read first: MySQL cannot name the updated table in a subquery.
        let mut keep = keep.clone();
        for part in keep.clone().chunks(ROWS) {
            let withdrawn: Vec<i64> = conn.exec(
                format!(
                    "SELECT id FROM pwreset_tokens WHERE id IN ({}) AND revoked_at IS NOT NULL",
                    marks(part.len())
                ),
                part.iter()
                    .map(|(_, id)| Value::Int(*id))
                    .collect::<Vec<_>>(),
            )?;
            keep.retain(|(_, id)| !withdrawn.contains(id));
        }
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
        let mut events: Vec<AuditEvent<'_>> =
            Vec::with_capacity(settle.handed.len() + settle.released.len());
        events.extend(settle.handed.iter().map(|h| AuditEvent {
            at: now,
            actor: settle.actor,
            action: AuditAction::Request,
            user_id: Some(&h.user.id),
            email: Some(&h.user.email),
            outcome,
            detail: None,
        }));
        if !settle.released.is_empty() {
            let (undelivered, not_sent): (Vec<_>, Vec<_>) =
                settle.released.iter().partition(|r| r.attempted);
            for (reason, list) in [
                (RevokeReason::Undelivered, undelivered),
                (RevokeReason::NotSent, not_sent),
            ] {
                let ids: Vec<i64> = list.iter().map(|r| r.token_id).collect();
                let revoked = release(conn, &ids, Which::Open, &reason, now)?;
                give_back(conn, settle.run_id, &revoked)?;
            }
            events.extend(settle.released.iter().map(|r| AuditEvent {
                at: now,
                actor: settle.actor,
                action: AuditAction::Request,
                user_id: Some(&r.user.id),
                email: Some(&r.user.email),
                outcome: AuditOutcome::Failed,
                detail: Some(r.why),
            }));
        }
        super::audit::insert(conn, sh, &events)
    })
}

/// A released token, as giving its throttle back needs it: its user (as stored) and when it
/// was made.
pub(super) type ReleasedRow = (Value, i64);

/// Which tokens [`release`] may revoke.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Which {
    /// Any open one: the caller knows the link did not reach its user.
    Open,
    /// Only one not marked as handed over (ending a run, which knows nothing of each link).
    Pending,
}

/// Revoke the tokens `ids` that are still open, with `reason`; which ones were. There is no
/// UPDATE … RETURNING: the rows are locked as they are read, then revoked by id, so what is
/// returned is exactly what was revoked.
pub(super) fn release(
    conn: &mut Conn,
    ids: &[i64],
    which: Which,
    reason: &RevokeReason,
    now: i64,
) -> Result<Vec<ReleasedRow>> {
    let mut out = Vec::new();
    for part in ids.chunks(ROWS) {
        let rows: Vec<(i64, Value, i64)> = conn.exec(
            format!(
                "SELECT id, user_id, created_at FROM pwreset_tokens
                  WHERE id IN ({}) AND used_at IS NULL AND revoked_at IS NULL{} FOR UPDATE",
                marks(part.len()),
                match which {
                    Which::Open => "",
                    Which::Pending => " AND handed_over_at IS NULL",
                }
            ),
            part.iter().map(|id| Value::Int(*id)).collect::<Vec<_>>(),
        )?;
        if rows.is_empty() {
            continue;
        }
        let mut params: Vec<Value> = vec![
            Value::Int(now),
            Value::from(reason.as_str()),
            Value::Int(now),
        ];
        params.extend(rows.iter().map(|(id, _, _)| Value::Int(*id)));
        conn.exec_drop(
            format!(
                "UPDATE pwreset_tokens
                    SET revoked_at = ?, revoked_reason = ?, dead_at = LEAST(dead_at, ?)
                  WHERE id IN ({})",
                marks(rows.len())
            ),
            params,
        )?;
        out.extend(rows.into_iter().map(|(_, user, created)| (user, created)));
    }
    Ok(out)
}

/// Give the throttle back for released links: a link that never reached its user does not
/// count. A row goes only if it is still the one this run's request wrote (same run, same
/// time): a later request's row stays. Grouped by time, since a run's batches share one
/// each, so a chunk takes a statement or two, each a lookup of the primary key.
pub(super) fn give_back(conn: &mut Conn, run_id: i64, released: &[ReleasedRow]) -> Result<()> {
    let mut by_time: BTreeMap<i64, Vec<Value>> = BTreeMap::new();
    for (user, created) in released {
        by_time.entry(*created).or_default().push(user.clone());
    }
    for (created, users) in by_time {
        for part in users.chunks(ROWS) {
            let mut params: Vec<Value> = vec![Value::Int(run_id), Value::Int(created)];
            params.extend(part.iter().cloned());
            conn.exec_drop(
                format!(
                    "DELETE FROM pwreset_throttle
                      WHERE run_id = ? AND last_at = ? AND user_id IN ({})",
                    marks(part.len())
                ),
                params,
            )?;
        }
    }
    Ok(())
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

/// A token by id and digest as stored, with no users table to join (users in a directory).
const SELECT_ALONE: &str = "SELECT user_id, binding, created_at, expires_at, used_at, revoked_at,
        revoked_reason FROM pwreset_tokens WHERE id = ? AND digest = ?";

fn alone_row(sh: &Shared, mut row: mysql::Row) -> Result<(TokenRecord, Vec<u8>)> {
    let mut take = |i: usize| row.take::<Value, usize>(i).unwrap_or(Value::NULL);
    let user_id = sh.id_from(take(0))?;
    let stored = match take(1) {
        Value::Bytes(b) => b,
        _ => Vec::new(),
    };
    Ok((
        TokenRecord::without_user_row(
            user_id,
            opt_i64(take(2)).unwrap_or(0),
            opt_i64(take(3)).unwrap_or(0),
            opt_i64(take(4)),
            opt_i64(take(5)),
            match take(6) {
                Value::NULL => None,
                v => Some(RevokeReason::parse(&text_lossy(v))),
            },
        ),
        stored,
    ))
}

pub(super) fn alone(
    s: &mut MysqlStore,
    token_id: i64,
    digest: &Digest,
) -> Result<Option<(TokenRecord, Vec<u8>)>> {
    s.read(|conn, sh| {
        let row: Option<mysql::Row> =
            conn.exec_first(SELECT_ALONE, (token_id, digest.as_bytes()))?;
        row.map(|r| alone_row(sh, r)).transpose()
    })
}

/// How many times a spend's transaction is tried in all.
const SPEND_ATTEMPTS: u32 = 3;

/// Spend a token for a password set in a directory. Unlike the other transactions here, this
/// one is not simply repeated after a deadlock: the directory's change is not the database's
/// to undo, so it must happen at most once. A deadlock or lock timeout before the change is
/// repeated from the start; after it, only the record is (the token spent, the user's other
/// links revoked, the audit row), since the person now has the new password.
pub(super) fn spend(
    s: &mut MysqlStore,
    sp: &Spend<'_>,
    change: &mut dyn FnMut() -> Result<bool>,
) -> Result<Consumed> {
    let mut changed = false;
    let mut attempt = 1;
    loop {
        let outcome = s
            .conn
            .query_drop("START TRANSACTION")
            .map_err(anyhow::Error::from)
            .and_then(|()| spend_once(&mut s.conn, &s.s, sp, &mut changed, change));
        let outcome = match outcome {
            Ok(Consumed::Changed) => s
                .conn
                .query_drop("COMMIT")
                .map_err(anyhow::Error::from)
                .map(|()| Consumed::Changed),
            // Nothing to keep: the token stays as it was.
            Ok(other) => {
                let _ = s.conn.query_drop("ROLLBACK");
                return Ok(other);
            }
            Err(e) => Err(e),
        };
        let e = match outcome {
            Ok(v) => return Ok(v),
            Err(e) => e,
        };
        // The connection may be gone; the error that matters is `e`.
        let _ = s.conn.query_drop("ROLLBACK");
        let from_db = e.downcast_ref::<mysql::Error>().is_some();
        let again =
            attempt < SPEND_ATTEMPTS && from_db && (changed || super::retryable(&e).is_some());
        if again {
            std::thread::sleep(std::time::Duration::from_millis(20 * u64::from(attempt)));
            attempt += 1;
            continue;
        }
        let e = if from_db { s.s.ctx.err(e) } else { e };
        return Err(if changed {
            e.context(
                "the directory has the new password, but pwreset could not record the reset: the link still works until it expires, and using it again records it",
            )
        } else {
            e
        });
    }
}

/// One try of [`spend`]'s transaction, inside START TRANSACTION; `changed` is set once the
/// directory has the new password, and then only the record is made.
fn spend_once(
    conn: &mut Conn,
    sh: &Shared,
    sp: &Spend<'_>,
    changed: &mut bool,
    change: &mut dyn FnMut() -> Result<bool>,
) -> Result<Consumed> {
    const SPEND: &str = "UPDATE pwreset_tokens SET used_at = ?, dead_at = LEAST(dead_at, ?)
          WHERE id = ? AND used_at IS NULL AND revoked_at IS NULL AND expires_at > ?";
    let uid = sh.id_value(sp.user_id);
    if !*changed {
        // Two resets for one person queue on their throttle row (every person with a link
        // has one), so the second sees the first's spend instead of both changing the
        // password; a request for them waits too.
        conn.exec_drop(
            "SELECT 1 FROM pwreset_throttle WHERE user_id = ? FOR UPDATE",
            (uid.clone(),),
        )?;
        let row: Option<mysql::Row> = conn.exec_first(
            format!("{SELECT_ALONE} FOR UPDATE"),
            (sp.token_id, sp.digest.as_bytes()),
        )?;
        let Some(row) = row else {
            return Ok(Consumed::NotUsable(Status::Unknown));
        };
        let (rec, _) = alone_row(sh, row)?;
        let status = rec.status(sp.now);
        if status != Status::Valid || rec.user_id != *sp.user_id {
            return Ok(Consumed::NotUsable(status));
        }
        // Spent first, so that of several changes racing with one token exactly one reaches
        // the directory; rolled back if the directory does not change the password.
        conn.exec_drop(SPEND, (sp.now, sp.now, sp.token_id, sp.now))?;
        if conn.affected_rows() != 1 {
            return Ok(Consumed::NotUsable(Status::Used));
        }
        if !change()? {
            return Ok(Consumed::Kept);
        }
        *changed = true;
    } else {
        // A repeat after the change: the first try's spend was rolled back with the rest.
        // Whatever happened to the token meanwhile, the password has changed, so the row
        // count does not matter.
        conn.exec_drop(SPEND, (sp.now, sp.now, sp.token_id, sp.now))?;
    }
    conn.exec_drop(
        "UPDATE pwreset_tokens
            SET revoked_at = ?, revoked_reason = 'password reset', dead_at = LEAST(dead_at, ?)
          WHERE user_id = ? AND used_at IS NULL AND revoked_at IS NULL",
        vec![Value::Int(sp.now), Value::Int(sp.now), uid],
    )?;
    super::audit::insert(
        conn,
        sh,
        &[AuditEvent {
            at: sp.now,
            actor: sp.actor,
            action: AuditAction::Reset,
            user_id: Some(sp.user_id),
            email: Some(sp.email),
            outcome: AuditOutcome::Ok,
            detail: None,
        }],
    )?;
    Ok(Consumed::Changed)
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
