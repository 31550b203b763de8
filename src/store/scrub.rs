//! Database error text without the secrets pwreset bound. A server's message may quote a value
//! of the statement that failed (PostgreSQL: `invalid input syntax for type integer:
//! "$argon2id$…"`; a trigger's `RAISE` can say anything), and that text reaches the terminal,
//! the web log and the audit trail. So every backend's error passes through here: each value
//! pwreset bound that is worth hiding (a password hash, an address) becomes `<value>`, and so
//! does anything else that reads as a password hash.

use crate::error::{Exit, exit_of, fail, render};

/// What a hidden value is replaced with.
pub const HIDDEN: &str = "<value>";

/// Shorter values are not searched for: a one-digit id would blank every digit.
const MIN_BOUND_LEN: usize = 4;

/// `text` with every occurrence of `bound` and every hash-looking word replaced by `<value>`.
pub fn text(text: &str, bound: &[&str]) -> String {
    let mut out = text.to_owned();
    let mut bound: Vec<&str> = bound
        .iter()
        .copied()
        .filter(|b| b.len() >= MIN_BOUND_LEN)
        .collect();
    // Longest first, so a value that contains another is hidden whole.
    bound.sort_by_key(|b| std::cmp::Reverse(b.len()));
    for b in bound {
        if out.contains(b) {
            out = out.replace(b, HIDDEN);
        }
    }
    hashes(&out)
}

/// Whether `word` reads as a stored password hash: a kind pwreset recognises, or a long
/// `$`-separated string like one (a hash cut short by the server is still a secret).
fn is_hash(word: &str) -> bool {
    if crate::password::identify(word.as_bytes()).is_some() {
        return true;
    }
    let dollars = word.matches('$').count();
    word.len() >= 20 && dollars >= 2 && word.starts_with(|c: char| c == '$' || c.is_alphanumeric())
}

/// Replace the hash-looking words of `text`. A word is a run of the characters hashes are
/// made of, so the quotes and brackets around a value in a server's message stay.
fn hashes(text: &str) -> String {
    let part_of_hash = |c: char| c.is_ascii_alphanumeric() || "$./+=_,:/-".contains(c);
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find(part_of_hash) {
        out.push_str(&rest[..start]);
        let word_len = rest[start..]
            .find(|c: char| !part_of_hash(c))
            .unwrap_or(rest.len() - start);
        let word = &rest[start..start + word_len];
        // A trailing full stop or comma ends the sentence, not the hash.
        let trimmed = word.trim_end_matches(['.', ',', ':']);
        if is_hash(trimmed) {
            out.push_str(HIDDEN);
            out.push_str(&word[trimmed.len()..]);
        } else {
            out.push_str(word);
        }
        rest = &rest[start + word_len..];
    }
    out.push_str(rest);
    out
}

/// `e` with its message scrubbed like [`text`], keeping its exit code. An error with nothing
/// to hide is returned as it was, its chain intact.
pub fn error(e: anyhow::Error, bound: &[&str]) -> anyhow::Error {
    let shown = render(&e);
    let clean = text(&shown, bound);
    if clean == shown {
        return e;
    }
    let exit = exit_of(&e);
    // 70 is what a plain error would exit with; keep it that way.
    if exit == Exit::Software {
        return anyhow::anyhow!(clean);
    }
    fail(exit, clean)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARGON: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHQxMjM0NTY3OA$O0oNQBP2wV+xIdmj4twbe1+3xQbIKMu2s3NT0pc+rOw";

    #[test]
    fn bound_values_and_hashes_are_hidden() {
        let msg = format!("invalid input syntax for type integer: \"{ARGON}\"");
        assert_eq!(
            text(&msg, &[]),
            "invalid input syntax for type integer: \"<value>\""
        );
        assert_eq!(
            text(
                "rejected alice@example.com, id 1",
                &["alice@example.com", "1"]
            ),
            "rejected <value>, id 1"
        );
        for h in [
            "$2y$10$lu6PZHUfuKGvnSr67oFlbe8tiDJGULZ72YRwv188u6JL6f3UqfiV2",
            "pbkdf2_sha256$1500000$abcdefghijklmnopqrstuv$4jXU1rqv4UWtSxbsVLK50vvdX8TUxzIvi+x3N6rhO9o=",
            // Cut short: still not shown.
            "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNh",
        ] {
            let out = text(&format!("value '{h}' is too long."), &[]);
            assert_eq!(out, "value '<value>' is too long.", "{h}");
        }
    }

    #[test]
    fn ordinary_messages_are_left_alone() {
        for m in [
            "relation \"sessions\" does not exist",
            "users.after_reset[1] failed (CHECK constraint failed: email = 'nobody'); the reset was rolled back",
            "cannot reach postgres://pwreset@127.0.0.1:5432/app (connection refused)",
            "column \"user_id\" is of type integer but expression is of type text",
        ] {
            assert_eq!(text(m, &[]), m);
        }
    }

    #[test]
    fn errors_keep_their_exit_code() {
        let e = fail(Exit::TempFail, format!("busy on {ARGON}"));
        let e = error(e, &[]);
        assert_eq!(exit_of(&e), Exit::TempFail);
        assert_eq!(render(&e), "busy on <value>");
        let plain = error(anyhow::anyhow!("x {ARGON}"), &[]);
        assert_eq!(exit_of(&plain), Exit::Software);
    }
}
