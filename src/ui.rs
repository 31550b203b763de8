//! Terminal decisions in one place: is stderr a terminal, progress bars, escaping untrusted
//! text, and human-friendly times.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::time::Duration;

/// How chatty stderr is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verbosity {
    Quiet,
    Normal,
    Verbose,
}

/// Escape control characters (and other invisible troublemakers) so a string from the database
/// or from user input cannot move the cursor, recolour or rewrite the terminal.
pub fn escape(s: &str) -> String {
    if !s.chars().any(needs_escape) {
        return s.to_owned();
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if needs_escape(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// A JSON value as one line of text, with the characters serde_json leaves raw but a terminal
/// may act on (C1 controls such as U+009B, the 8-bit CSI; bidi and zero-width marks) written as
/// `\uXXXX` escapes. They can only occur inside JSON strings, so a parser reads the same value.
pub fn json(v: &serde_json::Value) -> String {
    let s = v.to_string();
    if !s.chars().any(needs_escape) {
        return s;
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        if needs_escape(c) {
            let mut units = [0u16; 2];
            for u in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{u:04x}"));
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// A count with its noun, the thousands grouped: `1 duplicate line`, `99,999 duplicate lines`.
pub fn count(n: u64, one: &str, many: &str) -> String {
    format!("{} {}", grouped(n), if n == 1 { one } else { many })
}

/// A number with its thousands grouped: `20,001`.
pub fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut grouped = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(c);
    }
    grouped
}

/// Whether stderr is a terminal that can show a progress bar.
pub fn stderr_is_fancy() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("TERM").is_none_or(|t| t != "dumb")
}

/// A progress bar on stderr when it is a terminal, or a hidden one (no carriage returns, no
/// escape codes: cron mail stays clean).
pub fn progress(len: Option<u64>, verbosity: Verbosity, what: &str) -> ProgressBar {
    if verbosity == Verbosity::Quiet || !stderr_is_fancy() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(len, ProgressDrawTarget::stderr());
    let template = if len.is_some() {
        "{msg} [{bar:30}] {human_pos}/{human_len} ({elapsed}, {eta} left)"
    } else {
        "{msg} {spinner} {human_pos} ({elapsed})"
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(what.to_owned());
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// "47 minutes", "2 hours", "3 days": a rough, readable span.
pub fn rough_span(secs: i64) -> String {
    let secs = secs.unsigned_abs();
    let (n, unit) = if secs < 90 {
        (secs, "second")
    } else if secs < 90 * 60 {
        ((secs + 30) / 60, "minute")
    } else if secs < 36 * 3600 {
        ((secs + 1800) / 3600, "hour")
    } else {
        ((secs + 43200) / 86400, "day")
    };
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

/// RFC 3339 in UTC for a Unix time in seconds.
pub fn rfc3339(unix: i64) -> String {
    match jiff::Timestamp::from_second(unix) {
        Ok(ts) => ts.to_string(),
        Err(_) => format!("@{unix}"),
    }
}

/// Now, as Unix seconds.
pub fn now() -> i64 {
    jiff::Timestamp::now().as_second()
}

// ---- prompts ------------------------------------------------------------------------------

use anyhow::Context as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Read a secret at a prompt with echo off (rpassword). Ctrl-C and Ctrl-D cancel: the terminal
/// is restored, nothing was changed, exit 130.
pub fn read_hidden(guard: &InterruptGuard, prompt: &str) -> anyhow::Result<String> {
    rpassword::prompt_password(prompt).map_err(|e| {
        // rpassword reads the terminal in raw mode, so Ctrl-C arrives as a byte: it raises
        // SIGINT and returns `Interrupted`. Exit 130 here too rather than racing the signal
        // thread with a "cannot read" error (exit 2).
        // Ctrl-D on an empty line is a cancel too, not a usage error.
        if matches!(
            e.kind(),
            std::io::ErrorKind::Interrupted | std::io::ErrorKind::UnexpectedEof
        ) {
            guard.interrupted();
        }
        crate::error::fail(
            crate::error::Exit::Usage,
            format!("cannot read from the terminal ({e}); pipe the input in instead (reset: --password-stdin)"),
        )
    })
}

/// The terminal as it was before the prompt, to put back.
type SavedTty = Option<(std::fs::File, rustix::termios::Termios)>;

/// While it lives, Ctrl-C (SIGINT) or SIGTERM at the prompt restores the terminal (echo back on),
/// says nothing was changed, and exits 130. Nothing is written before the prompt ends, so there
/// is nothing to undo.
pub struct InterruptGuard {
    active: Arc<AtomicBool>,
    saved: Arc<SavedTty>,
}

impl InterruptGuard {
    pub fn install() -> anyhow::Result<InterruptGuard> {
        use signal_hook::consts::{SIGINT, SIGTERM};
        let saved: Arc<SavedTty> = Arc::new(
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open("/dev/tty")
                .ok()
                .and_then(|tty| rustix::termios::tcgetattr(&tty).ok().map(|t| (tty, t))),
        );
        let active = Arc::new(AtomicBool::new(true));
        let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])
            .context("installing the Ctrl-C handler")?;
        let flag = Arc::clone(&active);
        let tty = Arc::clone(&saved);
        std::thread::spawn(move || {
            if let Some(sig) = signals.forever().next() {
                if flag.load(Ordering::SeqCst) {
                    interrupted(&tty);
                }
                // Past the prompt the password is being stored: let the transaction finish,
                // then behave as the default handler would.
                let _ = signal_hook::low_level::emulate_default_handler(sig);
            }
        });
        Ok(InterruptGuard { active, saved })
    }

    /// Ctrl-C at the prompt: restore the terminal, say so, exit 130.
    pub fn interrupted(&self) -> ! {
        interrupted(&self.saved)
    }
}

fn restore(saved: &SavedTty) {
    if let Some((tty, termios)) = saved {
        let _ = rustix::termios::tcsetattr(tty, rustix::termios::OptionalActions::Now, termios);
    }
}

/// Called from the signal thread or from the prompt (whichever sees Ctrl-C first); the first
/// caller exits, a second one waits in `call_once` until the process is gone.
fn interrupted(saved: &SavedTty) -> ! {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        restore(saved);
        eprintln!("\ninterrupted: nothing was changed; the link still works");
        std::process::exit(130);
    });
    loop {
        std::thread::park();
    }
}

impl Drop for InterruptGuard {
    fn drop(&mut self) {
        self.active.store(false, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_control_characters() {
        assert_eq!(escape("plain@example.com"), "plain@example.com");
        assert_eq!(escape("a\u{1b}[31mred"), "a\\u{1b}[31mred");
        assert_eq!(escape("line\nbreak\r"), "line\\nbreak\\r");
        assert_eq!(escape("rtl\u{202e}moc"), "rtl\\u{202e}moc");
    }

    #[test]
    fn json_escapes_what_terminals_act_on_and_round_trips() {
        let v = serde_json::json!({ "email": "a\u{1b}[2J\u{9b}1m\u{202e}\u{85}b@example.com" });
        let text = json(&v);
        assert!(!text.chars().any(needs_escape), "{text}");
        assert!(
            text.contains("\\u009b") && text.contains("\\u202e"),
            "{text}"
        );
        let back: serde_json::Value = serde_json::from_str(&text).expect("should succeed");
        assert_eq!(back, v);
        assert_eq!(json(&serde_json::json!({"a": 1})), "{\"a\":1}");
    }

    #[test]
    fn rough_spans() {
        assert_eq!(rough_span(30), "30 seconds");
        assert_eq!(rough_span(47 * 60), "47 minutes");
        assert_eq!(rough_span(3600), "60 minutes");
        assert_eq!(rough_span(2 * 3600), "2 hours");
        assert_eq!(rough_span(86400 * 3), "3 days");
        assert_eq!(rough_span(60), "60 seconds");
    }

    #[test]
    fn rfc3339_is_utc() {
        assert_eq!(rfc3339(1_795_671_600), "2026-11-26T05:40:00Z");
    }
}
