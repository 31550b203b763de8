//! The reset service: a token, a new password and an actor in, a typed outcome out. No
//! terminal, no HTTP: `cmd/reset` is its terminal front end, and the web page is another.

use crate::config::Config;
use crate::error::{Exit, exit_of, render};
use crate::password::{self, HashSettings, Refusal, Secret};
use crate::store::{
    AuditAction, AuditEvent, AuditOutcome, Consume, Consumed, RevokeReason, Store, TokenRecord,
    User,
};
use crate::token::{Malformed, Status, Token};
use anyhow::{Context, Result};

/// The outcome of checking token input.
pub struct Checked {
    pub status: Status,
    pub record: Option<TokenRecord>,
    /// The parsed token, when the input was well-formed.
    pub token: Option<Token>,
    pub malformed: Option<Malformed>,
}

impl Checked {
    pub fn malformed(m: Malformed) -> Checked {
        Checked {
            status: Status::Malformed,
            record: None,
            token: None,
            malformed: Some(m),
        }
    }
}

/// Look a well-formed token up, changing nothing at all: what the web form's GET uses, since
/// mail scanners fetch links before people do.
pub fn peek(store: &mut dyn Store, token: Token, now: i64) -> Result<Checked> {
    let record = store.lookup_token(token.id(), &token.digest())?;
    let status = record.as_ref().map_or(Status::Unknown, |r| r.status(now));
    Ok(Checked {
        status,
        record,
        token: Some(token),
        malformed: None,
    })
}

/// Look a well-formed token up. Never consumes it; a revocation found on the way (its user
/// deleted or changed) is stored, so the token stays dead.
pub fn check(store: &mut dyn Store, token: Token, now: i64) -> Result<Checked> {
    let mut record = store.lookup_token(token.id(), &token.digest())?;
    let status = record.as_ref().map_or(Status::Unknown, |r| r.status(now));
    // Revoked because its user is gone or changed, found just now: store it, so the token
    // stays dead even if a row with the same id and state appears again.
    if let Some(r) = record.as_mut()
        && status == Status::Revoked
        && r.revoked_at().is_none()
        && r.used_at().is_none()
    {
        let reason = if r.lifecycle.user_exists {
            RevokeReason::AccountChanged
        } else {
            RevokeReason::UserDeleted
        };
        if store.revoke_token(token.id(), &reason, now, None)? {
            r.lifecycle.revoked_at = Some(now);
            r.revoked_reason = Some(reason);
        }
    }
    Ok(Checked {
        status,
        record,
        token: Some(token),
        malformed: None,
    })
}

/// A password that passed the policy, normalised as it will be hashed.
pub struct Accepted {
    secret: Secret,
    /// Why the `not_current` rule could not be applied, if it could not (for `-v`).
    pub note: Option<String>,
}

/// What became of a reset.
#[derive(Debug)]
pub enum Outcome {
    /// The password was changed, the token spent, the user's other tokens revoked.
    Changed { at: i64 },
    /// The policy refused the password; nothing changed and the token still works.
    Refused(Refusal),
    /// The token stopped being usable (another reset won, it expired, it was revoked).
    NotUsable(Status),
    /// The database was busy; nothing changed, try again. The text says why.
    Busy(String),
}

/// Resets for one store, configuration and actor.
pub struct Service<'a> {
    store: &'a mut dyn Store,
    config: &'a Config,
    actor: &'a str,
    settings: HashSettings,
}

impl<'a> Service<'a> {
    /// Decides the format to write from the census of the users table (see
    /// [`password::census`]): 78 when the table and `[users] password_format` do not give one
    /// clear answer, 77 or 78 when the pepper file cannot be trusted or read.
    pub fn new(
        store: &'a mut dyn Store,
        config: &'a Config,
        actor: &'a str,
    ) -> Result<Service<'a>> {
        let settings = password::census::settings(config, &mut *store)?.settings;
        Ok(Service {
            store,
            config,
            actor,
            settings,
        })
    }

    pub fn store(&mut self) -> &mut dyn Store {
        &mut *self.store
    }

    /// The user a valid token's record belongs to, as the table holds them now.
    pub fn user_of(&mut self, record: &TokenRecord) -> Result<User> {
        self.store
            .user_by_id(&record.user_id)?
            .context("the token's user disappeared while it was being checked")
    }

    /// Normalise a typed password and check it against the policy (and the current password).
    pub fn accept(&self, user: &User, typed: &str) -> std::result::Result<Accepted, Refusal> {
        let normalised = password::normalise_with(typed, self.config.password.normalize);
        let current = user.password.is_set().then(|| user.password.bytes());
        let found = password::check_with(
            &self.config.password,
            &normalised,
            &user.email,
            current,
            &self.settings,
        )?;
        Ok(Accepted {
            secret: Secret::new(normalised.to_string()),
            note: found.note(),
        })
    }

    /// Hash an accepted password and store it with the token, in one transaction.
    pub fn set_password(
        &mut self,
        token: &Token,
        user: &User,
        accepted: Accepted,
    ) -> Result<Outcome> {
        let hash =
            password::hash_as(accepted.secret.expose(), &self.settings).map_err(|e| {
                match e.refusal() {
                    Some(r) => crate::error::fail(Exit::DataErr, format!("password refused: {r}")),
                    None => anyhow::anyhow!(
                        "hashing the password as {}: {e}",
                        self.settings.format.name()
                    ),
                }
            })?;
        drop(accepted);
        let at = crate::ui::now();
        let consumed = self.store.consume_token(&Consume {
            token_id: token.id(),
            digest: &token.digest(),
            user_id: &user.id,
            new_hash: &hash,
            email: &user.email,
            now: at,
            actor: self.actor,
        });
        match consumed {
            Ok(Consumed::Changed) => Ok(Outcome::Changed { at }),
            Ok(Consumed::NotUsable(status)) => {
                self.record_failure(
                    user,
                    AuditOutcome::NotUsable(status),
                    "the token stopped being valid before the password was stored",
                )?;
                Ok(Outcome::NotUsable(status))
            }
            Err(e) if exit_of(&e) == Exit::TempFail => Ok(Outcome::Busy(render(&e))),
            Err(e) => Err(e),
        }
    }

    /// Check, hash and store in one call (the web form's path).
    pub fn reset(&mut self, token: &Token, user: &User, typed: &str) -> Result<Outcome> {
        match self.accept(user, typed) {
            Ok(accepted) => self.set_password(token, user, accepted),
            Err(refusal) => Ok(Outcome::Refused(refusal)),
        }
    }

    /// Record a reset that did not happen.
    pub fn record_failure(
        &mut self,
        user: &User,
        outcome: AuditOutcome,
        detail: &str,
    ) -> Result<()> {
        self.store.record(&AuditEvent {
            at: crate::ui::now(),
            actor: self.actor,
            action: AuditAction::ResetFailed,
            user_id: Some(&user.id),
            email: Some(&user.email),
            outcome,
            detail: Some(detail),
        })
    }
}

/// Send the "your password was changed" notice, when configured.
pub fn send_notice(config: &Config, user: &User, at: i64) -> Result<()> {
    if !config.notify_on_reset {
        return Ok(());
    }
    let mailer = crate::mail::Mailer::new(config)?;
    let msg = mailer.changed_message_to(&user.recipient(), at)?;
    mailer.send(&msg)?;
    Ok(())
}
