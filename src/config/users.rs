//! `[users]`: where the users live, and the columns pwreset reads and writes.

use super::Problem;
use crate::password::FormatSetting;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Where the users live, and the names of the columns pwreset reads and writes.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
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
    /// user in afterwards: `auto` (the format the column holds; argon2id on pwreset's own
    /// table), or one format by name.
    #[serde(
        deserialize_with = "super::from_str",
        serialize_with = "super::named::format"
    )]
    pub password_format: FormatSetting,
    /// An explicit `password_format` that the column does not hold yet is meant: the
    /// application reads both, and new passwords move to the new format.
    pub password_format_migration: bool,
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
            password_format: FormatSetting::Auto,
            password_format_migration: false,
            pepper_file: None,
            after_reset: Vec::new(),
        }
    }
}

impl UsersTable {
    /// The mapping of pwreset's own table: every key at its default, except the two that
    /// only say how passwords are written (argon2id there, whatever they say).
    pub fn is_default_mapping(&self) -> bool {
        let d = UsersTable::default();
        UsersTable {
            password_format: d.password_format,
            password_format_migration: d.password_format_migration,
            ..self.clone()
        } == d
    }

    /// The table, key, address and password column names of pwreset's own table.
    pub fn has_default_names(&self) -> bool {
        let d = UsersTable::default();
        self.table == d.table
            && self.id_column == d.id_column
            && self.email_column == d.email_column
            && self.password_column == d.password_column
    }

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
        if self.pepper_file.is_some()
            && self
                .password_format
                .fixed()
                .is_some_and(|f| !f.uses_pepper())
        {
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
