//! Exit codes from the contract, and the typed error that carries one.
//!
//! Inside the crate errors are `anyhow::Error` with context. Where a failure has a meaning for
//! the caller (bad input, no such user, busy database ...) the code raises a [`Failure`], which
//! carries its [`Exit`] code; `main` finds the first `Failure` in the chain and exits with it.
//! Anything else is an internal error (70), except I/O errors (74).

/// Process exit status, as listed in the contract's table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Exit {
    /// Success; for verify, the token is valid.
    Ok,
    /// The token is not usable.
    NotUsable,
    /// Usage error (clap, or an option that does not fit the situation).
    Usage,
    /// Bad input data.
    DataErr,
    /// No such user.
    NoUser,
    /// Mail could not be delivered (permanent failure).
    Unavailable,
    /// Internal error.
    Software,
    /// Cannot create the database or an output file.
    CantCreate,
    /// I/O error.
    IoErr,
    /// Temporary failure: retry later.
    TempFail,
    /// Permission problem.
    NoPerm,
    /// Configuration error.
    Config,
    /// Interrupted at a prompt, or a run stopped by SIGINT (128 + 2).
    Interrupted,
    /// A run stopped by SIGTERM (128 + 15).
    Terminated,
    /// A run stopped by SIGHUP (128 + 1).
    HungUp,
}

impl Exit {
    /// The numeric status the process exits with.
    pub fn code(self) -> u8 {
        match self {
            Exit::Ok => 0,
            Exit::NotUsable => 1,
            Exit::Usage => 2,
            Exit::DataErr => 65,
            Exit::NoUser => 67,
            Exit::Unavailable => 69,
            Exit::Software => 70,
            Exit::CantCreate => 73,
            Exit::IoErr => 74,
            Exit::TempFail => 75,
            Exit::NoPerm => 77,
            Exit::Config => 78,
            Exit::Interrupted => 130,
            Exit::Terminated => 143,
            Exit::HungUp => 129,
        }
    }

    /// How bad a result is, for commands that handle several users and exit with the worst.
    /// Temporary failures rank below permanent ones: a re-run can fix them.
    pub fn severity(self) -> u8 {
        match self {
            Exit::Ok => 0,
            Exit::NotUsable => 1,
            Exit::NoUser => 2,
            Exit::TempFail => 3,
            Exit::DataErr => 4,
            Exit::Unavailable => 5,
            Exit::Usage => 6,
            Exit::IoErr => 7,
            Exit::CantCreate => 8,
            Exit::NoPerm => 9,
            Exit::Config => 10,
            Exit::Software => 11,
            Exit::Interrupted => 12,
            Exit::Terminated => 12,
            Exit::HungUp => 12,
        }
    }

    /// The worse of two results.
    pub fn worst(self, other: Exit) -> Exit {
        if other.severity() > self.severity() {
            other
        } else {
            self
        }
    }
}

/// An error that knows which exit code it stands for. Its message is shown to the user as is,
/// so it must say what went wrong and what to do, and never contain a secret.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Failure {
    pub exit: Exit,
    pub message: String,
}

impl Failure {
    pub fn new(exit: Exit, message: impl Into<String>) -> Self {
        Failure {
            exit,
            message: message.into(),
        }
    }
}

/// Shorthand: `return Err(fail(Exit::Config, "..."))`.
pub fn fail(exit: Exit, message: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(Failure::new(exit, message))
}

/// The exit code for an error: the first [`Failure`] in its chain, else 74 for I/O errors,
/// else 70.
pub fn exit_of(err: &anyhow::Error) -> Exit {
    for cause in err.chain() {
        if let Some(f) = cause.downcast_ref::<Failure>() {
            return f.exit;
        }
    }
    for cause in err.chain() {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            return match io.kind() {
                std::io::ErrorKind::PermissionDenied => Exit::NoPerm,
                _ => Exit::IoErr,
            };
        }
    }
    Exit::Software
}

/// True when the error chain holds a broken pipe: the reader of our stdout went away
/// (`pwreset user list | head`), which is not worth a message.
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Render an error as one line: the message and its causes, joined with ": ".
pub fn render(err: &anyhow::Error) -> String {
    let mut out = String::new();
    let mut last = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        // anyhow repeats a cause's text when context wraps an error with the same message.
        if text == last || last.ends_with(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
        last = text;
    }
    crate::ui::escape(&out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_match_the_contract() {
        let table = [
            (Exit::Ok, 0),
            (Exit::NotUsable, 1),
            (Exit::Usage, 2),
            (Exit::DataErr, 65),
            (Exit::NoUser, 67),
            (Exit::Unavailable, 69),
            (Exit::Software, 70),
            (Exit::CantCreate, 73),
            (Exit::IoErr, 74),
            (Exit::TempFail, 75),
            (Exit::NoPerm, 77),
            (Exit::Config, 78),
            (Exit::Interrupted, 130),
            (Exit::Terminated, 143),
            (Exit::HungUp, 129),
        ];
        for (exit, code) in table {
            assert_eq!(exit.code(), code, "{exit:?}");
        }
    }

    #[test]
    fn failure_found_under_context() {
        let err = fail(Exit::Config, "base_url: must be https")
            .context("loading config /etc/pwreset/config.toml");
        assert_eq!(exit_of(&err), Exit::Config);
        assert_eq!(
            render(&err),
            "loading config /etc/pwreset/config.toml: base_url: must be https"
        );
    }

    #[test]
    fn io_errors_are_74_and_others_70() {
        let io = anyhow::Error::new(std::io::Error::other("disk on fire"));
        assert_eq!(exit_of(&io), Exit::IoErr);
        assert_eq!(exit_of(&anyhow::anyhow!("bug")), Exit::Software);
    }

    #[test]
    fn worst_prefers_permanent_failures() {
        assert_eq!(Exit::Ok.worst(Exit::NoUser), Exit::NoUser);
        assert_eq!(Exit::TempFail.worst(Exit::NoUser), Exit::TempFail);
        assert_eq!(Exit::Unavailable.worst(Exit::TempFail), Exit::Unavailable);
    }
}
