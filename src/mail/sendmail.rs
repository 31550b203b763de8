//! The sendmail transport: the message piped to `command -i -f FROM -- RECIPIENT...`, the
//! arguments lettre's `SendmailTransport` uses.
//!
//! Run here rather than through lettre, whose error keeps only stderr and loses the exit status
//! and any signal: without them "internal client error: " was all an admin got from a failing
//! `/bin/false`.

use super::SendError;
use crate::error::Exit;
use std::io::Write as _;
use std::os::unix::process::ExitStatusExt as _;
use std::path::Path;
use std::process::{Command, Stdio};

/// Pipe `data` to `command` for `envelope`, and classify a failure by sendmail's exit status
/// (sysexits.h): 75 EX_TEMPFAIL, 71 EX_OSERR and 74 EX_IOERR are worth retrying (75), as is a
/// command killed by a signal; any other status is a permanent failure (69). A command that
/// cannot be run at all is a configuration error (78).
pub(super) fn send(
    command: &Path,
    envelope: &lettre::address::Envelope,
    data: &[u8],
) -> Result<(), SendError> {
    let shown = crate::ui::escape(&command.display().to_string());
    let mut c = Command::new(command);
    c.arg("-i");
    if let Some(from) = envelope.from() {
        c.arg("-f").arg(AsRef::<str>::as_ref(from));
    }
    c.arg("--")
        .args(envelope.to().iter().map(AsRef::<str>::as_ref))
        .stdin(Stdio::piped())
        // sendmail has nothing to say on stdout, and pwreset's stdout carries results.
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = c.spawn().map_err(|e| SendError {
        exit: Exit::Config,
        message: format!("mail.sendmail.command: cannot run {shown}: {e}"),
    })?;
    let writer = child.stdin.take().map(|mut stdin| {
        let data = data.to_vec();
        // A separate thread, so that a command that fills its stderr before reading its input
        // cannot deadlock with us.
        std::thread::spawn(move || stdin.write_all(&data).and_then(|()| stdin.flush()))
    });
    let output = child.wait_with_output().map_err(|e| SendError {
        exit: Exit::TempFail,
        message: format!("waiting for {shown}: {e}"),
    })?;
    let written = match writer.map(std::thread::JoinHandle::join) {
        Some(Ok(r)) => r,
        Some(Err(_)) => Err(std::io::Error::other("the writer thread panicked")),
        None => Ok(()),
    };
    let first_line = String::from_utf8_lossy(&output.stderr)
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .map(|l| {
            let l: String = l.chars().take(300).collect();
            format!(": \"{}\"", crate::ui::escape(&l))
        })
        .unwrap_or_else(|| " (nothing on stderr)".to_owned());
    let status = output.status;
    if status.success() {
        // A command that exits 0 without reading the whole message did not send it.
        return written.map_err(|e| SendError {
            exit: Exit::TempFail,
            message: format!("{shown} exited 0 but did not read the whole message: {e}"),
        });
    }
    let (exit, how) = match (status.code(), status.signal()) {
        (Some(code), _) => (
            if matches!(code, 71 | 74 | 75) {
                Exit::TempFail
            } else {
                Exit::Unavailable
            },
            format!("exited with status {code}{}", sysexit_name(code)),
        ),
        (None, Some(sig)) => (
            Exit::TempFail,
            format!("was killed by signal {sig}{}", signal_name(sig)),
        ),
        (None, None) => (Exit::TempFail, format!("ended abnormally ({status})")),
    };
    let kind = if exit == Exit::TempFail {
        "temporary failure"
    } else {
        "permanent failure"
    };
    Err(SendError {
        exit,
        message: format!("sendmail command {shown} {how}, {kind}{first_line}"),
    })
}

fn sysexit_name(code: i32) -> &'static str {
    match code {
        64 => " (EX_USAGE)",
        65 => " (EX_DATAERR)",
        66 => " (EX_NOINPUT)",
        67 => " (EX_NOUSER)",
        68 => " (EX_NOHOST)",
        69 => " (EX_UNAVAILABLE)",
        70 => " (EX_SOFTWARE)",
        71 => " (EX_OSERR)",
        72 => " (EX_OSFILE)",
        73 => " (EX_CANTCREAT)",
        74 => " (EX_IOERR)",
        75 => " (EX_TEMPFAIL)",
        76 => " (EX_PROTOCOL)",
        77 => " (EX_NOPERM)",
        78 => " (EX_CONFIG)",
        _ => "",
    }
}

fn signal_name(sig: i32) -> &'static str {
    match sig {
        1 => " (SIGHUP)",
        2 => " (SIGINT)",
        3 => " (SIGQUIT)",
        6 => " (SIGABRT)",
        9 => " (SIGKILL)",
        11 => " (SIGSEGV)",
        13 => " (SIGPIPE)",
        14 => " (SIGALRM)",
        15 => " (SIGTERM)",
        _ => "",
    }
}
