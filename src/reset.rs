//! The reset service: a token, a new password and an actor in, a typed outcome out. No
//! terminal, no HTTP: `cmd/reset` is its terminal front end, and the web page is another.

use crate::config::Config;
use crate::directory::Directory;
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
pub fn peek(dir: &mut Directory, store: &mut dyn Store, token: Token, now: i64) -> Result<Checked> {
    let record = dir.lookup_token(store, token.id(), &token.digest())?;
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
pub fn check(
    dir: &mut Directory,
    store: &mut dyn Store,
    token: Token,
    now: i64,
) -> Result<Checked> {
    let mut record = dir.lookup_token(store, token.id(), &token.digest())?;
    let status = record.as_ref().map_or(Status::Unknown, |r| r.status(now));
    // Revoked because its user is gone or changed, found just now: store it, so the token
    // stays dead even if a row with the same id and state appears again.
    if let Some(r) = record.as_mut()
        && status == Status::Revoked
        && r.revoked_at().is_none()
        && r.used_at().is_none()
    {
        let reason = if let Some(reason) = r.revoked_reason.clone() {
            // Found by the directory: a locked account.
            reason
        } else if r.lifecycle.user_exists {
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
    dir: Directory,
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
        let dir = Directory::open(config)?;
        Service::in_directory(store, dir, config, actor)
    }

    /// The directory, for the next job (see `web::pool::Worker::put_directory`).
    pub fn into_directory(self) -> Directory {
        self.dir
    }

    /// With a directory opened already (the one the token was checked in).
    pub fn in_directory(
        store: &'a mut dyn Store,
        dir: Directory,
        config: &'a Config,
        actor: &'a str,
    ) -> Result<Service<'a>> {
        // A table's census decides what a reset writes there; a directory hashes the password
        // itself (exop, ad) or takes `[ldap] password_format` (modify).
        let settings = if matches!(dir, Directory::Table) {
            password::census::settings(config, &mut *store)?.settings
        } else {
            config.hash_settings()?
        };
        Ok(Service {
            store,
            dir,
            config,
            actor,
            settings,
        })
    }

    pub fn store(&mut self) -> &mut dyn Store {
        &mut *self.store
    }

    /// A token looked up again, with its user's current state.
    pub fn lookup_token(&mut self, token: &Token) -> Result<Option<TokenRecord>> {
        self.dir
            .lookup_token(&mut *self.store, token.id(), &token.digest())
    }

    /// The user a valid token's record belongs to, as the table holds them now.
    pub fn user_of(&mut self, record: &TokenRecord) -> Result<User> {
        self.dir
            .user_by_id(&mut *self.store, &record.user_id)?
            .context("the token's user disappeared while it was being checked")
    }

    /// Normalise a typed password and check it against the policy (and the current password).
    pub fn accept(&self, user: &User, typed: &str) -> std::result::Result<Accepted, Refusal> {
        let normalised = password::normalise_with(typed, self.config.password.normalize);
        // A directory's user carries what binds the token, not a hash: the server itself
        // refuses a password it holds already, where its policy says so.
        let current =
            (self.dir.is_table() && user.password.is_set()).then(|| user.password.bytes());
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

    /// Hash an accepted password and store it with the token, in one transaction; or, for
    /// a directory, set it there while the token is being spent.
    pub fn set_password(
        &mut self,
        token: &Token,
        user: &User,
        accepted: Accepted,
    ) -> Result<Outcome> {
        #[cfg(feature = "ldap")]
        if let Directory::Ldap(_) = &self.dir {
            return self.set_in_directory(token, user, accepted);
        }
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
            // Only a directory's change is kept back; the table's store never says so.
            Ok(Consumed::Kept) => Ok(Outcome::Busy(
                "the password was not stored; try again".into(),
            )),
            Err(e) if exit_of(&e) == Exit::TempFail => Ok(Outcome::Busy(render(&e))),
            Err(e) => Err(e),
        }
    }

    /// The password set in the directory, the token spent in the same store transaction:
    /// if the directory refuses, the token stays usable.
    #[cfg(feature = "ldap")]
    fn set_in_directory(
        &mut self,
        token: &Token,
        user: &User,
        accepted: Accepted,
    ) -> Result<Outcome> {
        use crate::directory::ldap::SetOutcome;
        let Directory::Ldap(ldap) = &mut self.dir else {
            anyhow::bail!("set_in_directory without a directory");
        };
        let Some(person) = ldap.find_by_id(&user.id)? else {
            self.record_failure(
                user,
                AuditOutcome::NotUsable(Status::Revoked),
                "the entry was gone from the directory",
            )?;
            return Ok(Outcome::NotUsable(Status::Revoked));
        };
        let at = crate::ui::now();
        let mut outcome: Option<SetOutcome> = None;
        let secret = accepted.secret;
        let consumed = self.store.spend_token(
            &crate::store::Spend {
                token_id: token.id(),
                digest: &token.digest(),
                user_id: &user.id,
                email: &user.email,
                now: at,
                actor: self.actor,
            },
            &mut || {
                let o = ldap.set_password(&person.dn, secret.expose())?;
                let changed = o == SetOutcome::Changed;
                outcome = Some(o);
                Ok(changed)
            },
        );
        drop(secret);
        match consumed {
            Ok(Consumed::Changed) => Ok(Outcome::Changed { at }),
            Ok(Consumed::NotUsable(status)) => {
                self.record_failure(
                    user,
                    AuditOutcome::NotUsable(status),
                    "the token stopped being valid before the password was set",
                )?;
                Ok(Outcome::NotUsable(status))
            }
            Ok(Consumed::Kept) => match outcome {
                Some(SetOutcome::Refused(words)) => {
                    self.record_failure(
                        user,
                        AuditOutcome::Refused,
                        &format!("refused by the directory: {words}"),
                    )?;
                    Ok(Outcome::Refused(Refusal::Directory(words)))
                }
                Some(SetOutcome::Locked(why)) => {
                    self.record_failure(
                        user,
                        AuditOutcome::NotUsable(Status::Revoked),
                        &format!("the account is {why}; pwreset does not unlock accounts"),
                    )?;
                    Ok(Outcome::NotUsable(Status::Revoked))
                }
                _ => {
                    self.record_failure(
                        user,
                        AuditOutcome::NotUsable(Status::Revoked),
                        "the entry was gone from the directory",
                    )?;
                    Ok(Outcome::NotUsable(Status::Revoked))
                }
            },
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
