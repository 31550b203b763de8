//! `[users] after_reset`: the application's own SQL run inside the reset's transaction.
//!
//! The config binds `:user_id` and `:email` by name; PostgreSQL binds by position. A statement
//! is rewritten once, at open, by a small scanner that knows where a `:name` cannot be a
//! parameter (inside '…' and E'…' literals, "…" identifiers, $tag$…$tag$ bodies, comments,
//! and the `::` cast), and refuses any other parameter: a `:name` other than the two, a `$n`
//! or a `?`, which would otherwise reach the server unbound and fail only at reset time.

use super::IdKind;

/// One statement, rewritten: `:user_id` is `$1` (cast to the users table's key type) and
/// `:email` is `$2` (text).
#[derive(Debug, Clone)]
pub(super) struct AfterReset {
    pub sql: String,
}

/// Rewrite one statement; `Err` says why it cannot be bound (for `users.after_reset[i]: …`).
pub(super) fn rewrite(sql: &str, kind: IdKind) -> Result<AfterReset, String> {
    let b = sql.as_bytes();
    let mut out = String::with_capacity(sql.len() + 16);
    // Start of the stretch of `sql` not yet copied to `out`.
    let mut copied = 0;
    let mut i = 0;
    // A `$` right after an identifier character is part of that identifier (`a$b`), not a
    // parameter or a dollar quote.
    let mut after_ident = false;
    while i < b.len() {
        let c = b[i];
        match c {
            b'\'' => {
                // E'…' takes backslash escapes; every literal takes '' for a quote.
                let escapes =
                    i > 0 && matches!(b[i - 1], b'E' | b'e') && !before_is_ident(b, i - 1);
                i = skip_quoted(b, i + 1, b'\'', escapes);
                after_ident = false;
            }
            b'"' => {
                i = skip_quoted(b, i + 1, b'"', false);
                after_ident = true;
            }
            b'-' if b.get(i + 1) == Some(&b'-') => {
                i = b[i..]
                    .iter()
                    .position(|&x| x == b'\n')
                    .map_or(b.len(), |p| i + p + 1);
                after_ident = false;
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                i = skip_block_comment(b, i + 2);
                after_ident = false;
            }
            b':' if b.get(i + 1) == Some(&b':') => {
                // A cast: `x::text`.
                i += 2;
                after_ident = false;
            }
            b':' if b.get(i + 1).is_some_and(|&x| is_ident_start(x)) => {
                let end = i + 1 + b[i + 1..].iter().take_while(|&&x| is_ident_char(x)).count();
                let name = &sql[i + 1..end];
                let param = match name {
                    "user_id" => format!("({})", kind.param(1)),
                    "email" => "($2::text)".to_owned(),
                    other => {
                        return Err(format!(
                            "binds :{other}; only :user_id and :email are bound"
                        ));
                    }
                };
                out.push_str(&sql[copied..i]);
                out.push_str(&param);
                copied = end;
                i = end;
                after_ident = false;
            }
            b'$' if !after_ident => {
                if b.get(i + 1).is_some_and(u8::is_ascii_digit) {
                    let end = i + 1 + b[i + 1..].iter().take_while(|x| x.is_ascii_digit()).count();
                    return Err(format!(
                        "has a positional parameter ({}); use :user_id or :email",
                        &sql[i..end]
                    ));
                }
                // A dollar quote: $$…$$ or $tag$…$tag$.
                let tag_len = b[i + 1..]
                    .iter()
                    .take_while(|&&x| is_ident_char(x) && x != b'$')
                    .count();
                if b.get(i + 1 + tag_len) == Some(&b'$') {
                    let tag = &b[i..i + tag_len + 2];
                    let body = i + tag.len();
                    i = b[body..]
                        .windows(tag.len())
                        .position(|w| w == tag)
                        .map_or(b.len(), |p| body + p + tag.len());
                } else {
                    i += 1;
                }
                after_ident = false;
            }
            b'?' => {
                return Err("has a positional parameter (?); use :user_id or :email".into());
            }
            _ => {
                after_ident = is_ident_char(c) || c == b'$';
                i += 1;
            }
        }
    }
    out.push_str(&sql[copied..]);
    Ok(AfterReset { sql: out })
}

fn is_ident_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_' || c >= 0x80
}

fn is_ident_char(c: u8) -> bool {
    is_ident_start(c) || c.is_ascii_digit() || c == b'$'
}

/// Whether the byte before `i` continues an identifier (so `b[i]` is not the start of `E'`).
fn before_is_ident(b: &[u8], i: usize) -> bool {
    i > 0 && is_ident_char(b[i - 1])
}

/// The index after the closing `quote` of a literal or identifier whose body starts at `i`;
/// a doubled quote is a quote inside it. The end of the text when it never closes (the
/// server then says what is wrong).
fn skip_quoted(b: &[u8], mut i: usize, quote: u8, escapes: bool) -> usize {
    while i < b.len() {
        match b[i] {
            b'\\' if escapes => i += 2,
            c if c == quote => {
                if b.get(i + 1) == Some(&quote) {
                    i += 2;
                } else {
                    return i + 1;
                }
            }
            _ => i += 1,
        }
    }
    b.len()
}

/// The index after a `/* … */` comment whose body starts at `i` (they nest in PostgreSQL).
fn skip_block_comment(b: &[u8], mut i: usize) -> usize {
    let mut depth = 1;
    while i < b.len() {
        if b[i] == b'*' && b.get(i + 1) == Some(&b'/') {
            depth -= 1;
            i += 2;
            if depth == 0 {
                return i;
            }
        } else if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
            depth += 1;
            i += 2;
        } else {
            i += 1;
        }
    }
    b.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(sql: &str) -> String {
        rewrite(sql, IdKind::Int).expect("rewrites").sql
    }

    #[test]
    fn names_become_positions_outside_literals_identifiers_and_comments() {
        assert_eq!(
            ok("DELETE FROM s WHERE user_id = :user_id AND e = :email"),
            "DELETE FROM s WHERE user_id = ($1::bigint) AND e = ($2::text)"
        );
        assert_eq!(
            ok("UPDATE t SET note = ':email', \":user_id\" = 1 -- :nope\nWHERE id = :user_id::int"),
            "UPDATE t SET note = ':email', \":user_id\" = 1 -- :nope\nWHERE id = ($1::bigint)::int"
        );
        assert_eq!(
            ok("SELECT 'it''s :x' /* :y /* :z */ */"),
            "SELECT 'it''s :x' /* :y /* :z */ */"
        );
        assert_eq!(
            ok("SELECT E'\\' :x', $$ :y ? $$, $t$ $1 $t$"),
            "SELECT E'\\' :x', $$ :y ? $$, $t$ $1 $t$"
        );
        assert_eq!(ok("SELECT a$1 FROM t"), "SELECT a$1 FROM t");
        assert_eq!(
            rewrite("DELETE FROM s WHERE u = :user_id", IdKind::Uuid)
                .expect("uuid")
                .sql,
            "DELETE FROM s WHERE u = ($1::text::uuid)"
        );
    }

    #[test]
    fn other_parameters_are_refused() {
        let e = |sql: &str| rewrite(sql, IdKind::Int).expect_err(sql);
        assert!(e("DELETE FROM s WHERE u = :uid").contains(":uid"));
        assert!(e("DELETE FROM s WHERE u = ?").contains("positional"));
        assert!(e("DELETE FROM s WHERE u = $1").contains("$1"));
    }
}
