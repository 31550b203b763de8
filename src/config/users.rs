//! `[users]`: where the users live, and the columns pwreset reads and writes.

use super::Problem;
use crate::password::Format;
use serde::Deserialize;
use std::path::PathBuf;

/// Where the users live, and the names of the columns pwreset reads and writes.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UsersTable {
    pub table: String,
    pub id_column: String,
    pub email_column: String,
    pub password_column: String,
    /// Optional: the column with the name to greet the user by.
    pub name_column: Option<String>,
    /// Optional: the column with the user's language (`de`, `de-DE`, `de_DE.UTF-8`).
    pub locale_column: Option<String>,
    /// The format `reset` writes into the password column, so the application can log the
    /// user in afterwards.
    #[serde(deserialize_with = "super::from_str")]
    pub password_format: Format,
    /// Devise's `config.pepper`: a secret appended to the password before bcrypt (mode 0600).
    pub pepper_file: Option<PathBuf>,
    /// SQL run inside the reset's transaction, with `:user_id` and `:email` bound: typically
    /// ending the user's sessions.
    pub after_reset: Vec<String>,
}

impl Default for UsersTable {
    fn default() -> Self {
        UsersTable {
            table: "users".into(),
            id_column: "id".into(),
            email_column: "email".into(),
            password_column: "password_hash".into(),
            name_column: None,
            locale_column: None,
            password_format: Format::Argon2id,
            pepper_file: None,
            after_reset: Vec::new(),
        }
    }
}

impl UsersTable {
    pub(super) fn validate(&self) -> Result<(), Problem> {
        for (key, v) in [
            ("users.table", &self.table),
            ("users.id_column", &self.id_column),
            ("users.email_column", &self.email_column),
            ("users.password_column", &self.password_column),
        ]
        .into_iter()
        .chain(
            [
                ("users.name_column", &self.name_column),
                ("users.locale_column", &self.locale_column),
            ]
            .into_iter()
            .filter_map(|(k, v)| v.as_ref().map(|v| (k, v))),
        ) {
            if !is_identifier(v) {
                return Err(Problem::new(
                    key,
                    format!(
                        "{v:?} is not a plain SQL name (letters, digits and _, not starting with a digit)"
                    ),
                ));
            }
        }
        for (i, sql) in self.after_reset.iter().enumerate() {
            if sql.trim().is_empty() || sql.len() > 4096 {
                return Err(Problem::new(
                    format!("users.after_reset[{i}]"),
                    "must be one SQL statement of at most 4096 bytes",
                ));
            }
        }
        if self.after_reset.len() > 32 {
            return Err(Problem::new("users.after_reset", "at most 32 statements"));
        }
        if self.pepper_file.is_some() && !self.password_format.uses_pepper() {
            return Err(Problem::new(
                "users.pepper_file",
                format!(
                    "is only used by password_format = \"bcrypt\" (Devise); {} has no pepper",
                    self.password_format.name()
                ),
            ));
        }
        // The same column for both would have a reset write the hash over the address.
        if self
            .email_column
            .eq_ignore_ascii_case(&self.password_column)
        {
            return Err(Problem::new(
                "users.password_column",
                format!(
                    "is the same column as users.email_column ({:?}); a reset would overwrite the address with the hash",
                    self.email_column
                ),
            ));
        }
        Ok(())
    }
}

/// `[A-Za-z_][A-Za-z0-9_]*`, at most 64 characters.
pub fn is_identifier(s: &str) -> bool {
    let mut bytes = s.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && s.len() <= 64
}
