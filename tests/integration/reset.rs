//! Integration tests for reset: the terminal prompt (through a real pseudo-terminal), the token
//! check before any prompt, `--password-stdin`, the policy, the stored argon2id hash, the one
//! transaction (revocation, races), the "changed" notice, and an application's own users table.

use crate::harness::{BIN, Env, default_toml, stderr};
use expectrl::process::unix::{Signal, WaitStatus};
use expectrl::session::OsSession;
use expectrl::{ControlCode, Eof, Expect, Session};
use std::io::Write;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const EMAIL: &str = "alice@example.com";
/// Long, unrelated to the address, and strong enough for min_strength 3.
const GOOD: &str = "correct horse battery staple";
const OTHER_GOOD: &str = "violet tractor mumbles quietly";
/// How long any single expectation may take: generous, since CI machines can be slow.
const PATIENCE: Duration = Duration::from_secs(20);

// ---- helpers ---------------------------------------------------------------------------------

/// An initialised installation with one user and a fresh token for them.
fn ready() -> (Env, String) {
    let env = Env::new();
    env.init();
    env.add_user(EMAIL);
    let token = Env::token_of(&env.link(EMAIL));
    (env, token)
}

/// `pwreset verify TOKEN`: (exit code, stdout).
fn verify(env: &Env, token: &str) -> (i32, String) {
    let out = env
        .cmd()
        .args(["verify", token])
        .output()
        .expect("run verify");
    (
        out.status.code().expect("verify exited normally"),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

fn assert_valid(env: &Env, token: &str) {
    let (code, out) = verify(env, token);
    assert_eq!(
        code, 0,
        "the token should still be valid, verify said: {out}"
    );
    assert!(out.starts_with("valid"), "{out}");
}

/// The stored hash of a user in pwreset's own users table.
fn stored_hash(env: &Env, email: &str) -> Option<String> {
    env.one(&format!(
        "SELECT password_hash FROM users WHERE email = {}",
        env.quote(email)
    ))
}

/// What the argon2 crate (a standard argon2 library) thinks of `phc` for `password`.
fn argon2_accepts(password: &str, phc: &str) -> bool {
    use argon2::{Argon2, PasswordVerifier};
    Argon2::default()
        .verify_password(password.as_bytes(), phc)
        .is_ok()
}

/// `std::process::Command` for the binary with the same isolated environment as `Env::cmd`.
fn std_cmd(env: &Env) -> Command {
    env.std_cmd()
}

/// `reset --password-stdin TOKEN` with `input` on stdin.
fn reset_stdin(env: &Env, token: &str, input: &[u8]) -> Output {
    env.cmd()
        .args(["reset", "--password-stdin", token])
        .write_stdin(input.to_vec())
        .timeout(PATIENCE)
        .output()
        .expect("run reset")
}

fn code(out: &Output) -> i32 {
    out.status
        .code()
        .unwrap_or_else(|| panic!("killed by a signal: {out:?}"))
}

fn err_text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Wait for a child whose stdin the caller still holds open, so that a child that tried to read
/// it would hang: fails the test instead of hanging when it does not exit in time.
fn wait_within(child: Child, limit: Duration) -> Output {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    rx.recv_timeout(limit)
        .unwrap_or_else(|_| panic!("pwreset did not exit within {limit:?}"))
        .expect("wait for pwreset")
}

/// pwreset running on a real pseudo-terminal, with everything it printed so far.
pub(crate) struct Pty {
    session: OsSession,
    transcript: String,
}

impl Pty {
    /// `pwreset --config … ARGS` on a new pty, with terminal echo switched ON first (the pty
    /// starts with it off), as on a user's terminal: so a password that is not hidden would
    /// show up in the output.
    pub(crate) fn spawn(env: &Env, args: &[&str]) -> Pty {
        let mut c = env.isolated("sh");
        c.arg("-c")
            .arg(r#"stty echo && exec "$0" "$@""#)
            .arg(BIN)
            .arg("--config")
            .arg(&env.config)
            .args(args);
        let mut session = Session::spawn(c).expect("spawn pwreset on a pty");
        session.set_expect_timeout(Some(PATIENCE));
        Pty {
            session,
            transcript: String::new(),
        }
    }

    pub(crate) fn expect(&mut self, what: &str) {
        match self.session.expect(what) {
            Ok(c) => self
                .transcript
                .push_str(&String::from_utf8_lossy(c.as_bytes())),
            Err(e) => panic!(
                "waiting for {what:?}: {e}; output so far:\n{}",
                self.transcript
            ),
        }
    }

    fn send_line(&mut self, line: &str) {
        self.session.send_line(line).expect("write to the pty");
    }

    /// Wait for a prompt, then until the terminal's echo is off. rpassword prints its prompt
    /// and only then switches echo off, so a test typing the instant the prompt shows could beat
    /// it (no person can). This is a check in itself: echo must go off at every prompt.
    fn prompted(&mut self, prompt: &str) {
        self.expect(prompt);
        let deadline = Instant::now() + PATIENCE;
        while self.echo_on() {
            assert!(
                Instant::now() < deadline,
                "echo is still on at {prompt:?}:\n{}",
                self.transcript
            );
            std::thread::yield_now();
        }
    }

    /// Answer one round of "New password:" / "Confirm new password:".
    pub(crate) fn answer(&mut self, first: &str, second: &str) {
        self.prompted("New password: ");
        self.send_line(first);
        self.prompted("Confirm new password: ");
        self.send_line(second);
    }

    /// Read to the end, wait for the process, return its exit code.
    pub(crate) fn finish(&mut self) -> i32 {
        match self.session.expect(Eof) {
            Ok(c) => self
                .transcript
                .push_str(&String::from_utf8_lossy(c.as_bytes())),
            Err(e) => panic!(
                "waiting for the end: {e}; output so far:\n{}",
                self.transcript
            ),
        }
        match self.session.get_process().wait().expect("wait for pwreset") {
            WaitStatus::Exited(_, code) => code,
            other => panic!(
                "pwreset did not exit normally: {other:?}\n{}",
                self.transcript
            ),
        }
    }

    /// Whether the terminal has echo on (termios read through the pty master).
    fn echo_on(&self) -> bool {
        self.session
            .get_process()
            .get_echo()
            .expect("tcgetattr on the pty")
    }
}

// ---- the prompt, on a real terminal -----------------------------------------------------------

#[test]
fn prompt_sets_the_password_and_spends_the_token() {
    let (env, token) = ready();
    let mut p = Pty::spawn(&env, &["reset", &token]);
    p.answer(GOOD, GOOD);
    p.expect("password changed for");
    assert_eq!(p.finish(), 0, "{}", p.transcript);

    let (code, out) = verify(&env, &token);
    assert_eq!(code, 1, "{out}");
    assert!(out.starts_with("used"), "{out}");
    let hash = stored_hash(&env, EMAIL).expect("a hash is stored");
    assert!(argon2_accepts(GOOD, &hash), "{hash}");
    assert!(!argon2_accepts(OTHER_GOOD, &hash));
}

#[test]
fn prompt_asks_again_after_a_mismatch() {
    let (env, token) = ready();
    let mut p = Pty::spawn(&env, &["reset", &token]);
    p.answer(GOOD, OTHER_GOOD);
    p.expect("do not match");
    p.answer(OTHER_GOOD, OTHER_GOOD);
    assert_eq!(p.finish(), 0, "{}", p.transcript);
    let hash = stored_hash(&env, EMAIL).expect("a hash is stored");
    assert!(argon2_accepts(OTHER_GOOD, &hash));
}

#[test]
fn prompt_asks_again_after_a_short_password() {
    let (env, token) = ready();
    let mut p = Pty::spawn(&env, &["reset", &token]);
    p.answer("tiny", "tiny");
    p.expect("min_length");
    p.answer(GOOD, GOOD);
    assert_eq!(p.finish(), 0, "{}", p.transcript);
    assert!(argon2_accepts(
        GOOD,
        &stored_hash(&env, EMAIL).expect("hash")
    ));
}

#[test]
fn prompt_asks_again_after_a_common_password() {
    let (env, token) = ready();
    let mut p = Pty::spawn(&env, &["reset", &token]);
    p.answer("password1234", "password1234");
    p.expect("min_strength");
    p.answer(GOOD, GOOD);
    assert_eq!(p.finish(), 0, "{}", p.transcript);
    let hash = stored_hash(&env, EMAIL).expect("hash");
    assert!(argon2_accepts(GOOD, &hash));
    assert!(!argon2_accepts("password1234", &hash));
}

#[test]
fn prompt_gives_up_after_three_tries_and_the_token_still_works() {
    let (env, token) = ready();
    let mut p = Pty::spawn(&env, &["reset", &token]);
    p.answer(GOOD, OTHER_GOOD);
    p.expect("2 tries left");
    p.answer("tiny", "tiny");
    p.expect("1 try left");
    p.answer("password1234", "password1234");
    assert_eq!(p.finish(), 65, "{}", p.transcript);
    assert!(
        p.transcript.contains("run the same command again"),
        "{}",
        p.transcript
    );
    assert_eq!(stored_hash(&env, EMAIL), None);
    assert_valid(&env, &token);
}

#[test]
fn nothing_typed_at_the_prompt_is_echoed() {
    let (env, token) = ready();
    let mut p = Pty::spawn(&env, &["reset", &token]);
    p.answer("mismatched-secret-one", "mismatched-secret-two");
    p.expect("do not match");
    p.answer(GOOD, GOOD);
    assert_eq!(p.finish(), 0, "{}", p.transcript);
    for secret in [
        "mismatched-secret",
        "secret-one",
        "secret-two",
        "horse",
        GOOD,
    ] {
        assert!(
            !p.transcript.contains(secret),
            "{secret:?} was echoed:\n{}",
            p.transcript
        );
    }
    // The terminal is left as it was found: echo on.
    assert!(p.echo_on(), "echo left off after the prompt");
}

#[test]
fn ctrl_c_at_the_prompt_exits_130_restores_echo_and_changes_nothing() {
    let (env, token) = ready();
    let mut p = Pty::spawn(&env, &["reset", &token]);
    p.prompted("New password: ");
    p.session.send(ControlCode::EndOfText).expect("send Ctrl-C");
    assert_eq!(p.finish(), 130, "{}", p.transcript);
    assert!(p.transcript.contains("interrupted"), "{}", p.transcript);
    assert!(p.echo_on(), "the terminal was left with echo off");
    assert_eq!(stored_hash(&env, EMAIL), None);
    assert_valid(&env, &token);
}

#[test]
fn ctrl_c_at_the_confirmation_prompt_also_exits_130() {
    let (env, token) = ready();
    let mut p = Pty::spawn(&env, &["reset", &token]);
    p.prompted("New password: ");
    p.send_line(GOOD);
    p.prompted("Confirm new password: ");
    p.session.send(ControlCode::EndOfText).expect("send Ctrl-C");
    assert_eq!(p.finish(), 130, "{}", p.transcript);
    assert!(p.echo_on(), "the terminal was left with echo off");
    assert!(!p.transcript.contains("horse"), "{}", p.transcript);
    assert_eq!(stored_hash(&env, EMAIL), None);
    assert_valid(&env, &token);
}

#[test]
fn sigint_from_outside_at_the_prompt_restores_the_terminal_and_exits_130() {
    // A SIGINT that does not come through rpassword (kill -INT, or the terminal's own Ctrl-C
    // outside raw mode): only pwreset's handler can put echo back.
    let (env, token) = ready();
    let mut p = Pty::spawn(&env, &["reset", &token]);
    p.prompted("New password: ");
    p.session
        .get_process_mut()
        .kill(Signal::SIGINT)
        .expect("send SIGINT");
    assert_eq!(p.finish(), 130, "{}", p.transcript);
    assert!(p.transcript.contains("interrupted"), "{}", p.transcript);
    assert!(p.echo_on(), "the terminal was left with echo off");
    assert_valid(&env, &token);
}

#[test]
fn a_used_token_is_refused_on_a_terminal_without_a_prompt() {
    let (env, token) = ready();
    assert_eq!(
        code(&reset_stdin(
            &env,
            &token,
            b"correct horse battery staple\n"
        )),
        0
    );
    let mut p = Pty::spawn(&env, &["reset", &token]);
    assert_eq!(p.finish(), 1, "{}", p.transcript);
    assert!(p.transcript.contains("used"), "{}", p.transcript);
    assert!(!p.transcript.contains("password:"), "{}", p.transcript);
}

// ---- tokens that are not valid: exit 1 before any prompt -------------------------------------

/// Run `reset TOKEN` with no terminal and no --password-stdin: a token that is not valid must
/// be reported (exit 1), not the missing terminal (exit 2), and nothing may be asked.
fn refused_before_prompt(env: &Env, token: &str, status: &str) {
    let mut child = std_cmd(env)
        .args(["reset", token])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn reset");
    let held_open = child.stdin.take();
    let out = wait_within(child, PATIENCE);
    drop(held_open);
    let err = err_text(&out);
    assert_eq!(code(&out), 1, "{status}: {err}");
    assert!(
        err.starts_with(status),
        "expected {status:?} on stderr: {err}"
    );
    assert!(!err.contains("password:"), "{err}");
    assert!(!err.contains("--password-stdin"), "{err}");
}

#[test]
fn used_token_is_refused_before_any_prompt() {
    let (env, token) = ready();
    assert_eq!(
        code(&reset_stdin(
            &env,
            &token,
            b"correct horse battery staple\n"
        )),
        0
    );
    refused_before_prompt(&env, &token, "used");
}

#[test]
fn revoked_token_is_refused_before_any_prompt() {
    let (env, first) = ready();
    let _second = env.link(EMAIL);
    refused_before_prompt(&env, &first, "revoked");
}

#[test]
fn expired_token_is_refused_before_any_prompt() {
    let (env, token) = ready();
    env.exec("UPDATE pwreset_tokens SET expires_at = 1, dead_at = 1");
    refused_before_prompt(&env, &token, "expired");
}

#[test]
fn malformed_token_is_refused_before_any_prompt() {
    let (env, token) = ready();
    // One character changed: the checksum catches it.
    let mut chars: Vec<char> = token.chars().collect();
    let i = chars.len() / 2;
    chars[i] = if chars[i] == 'A' { 'B' } else { 'A' };
    let typo: String = chars.into_iter().collect();
    refused_before_prompt(&env, &typo, "malformed");
    refused_before_prompt(&env, "not-a-token", "malformed");
    refused_before_prompt(
        &env,
        "https://accounts.example.com/reset_password",
        "malformed",
    );
    assert_valid(&env, &token);
}

#[test]
fn unknown_token_is_refused_before_any_prompt() {
    let (env, _) = ready();
    let stranger = pwreset::token::Token::generate().expect("token");
    refused_before_prompt(&env, &stranger.text(), "unknown");
}

#[test]
fn not_valid_tokens_are_refused_with_password_stdin_too() {
    let (env, token) = ready();
    env.exec("UPDATE pwreset_tokens SET expires_at = 1, dead_at = 1");
    let out = reset_stdin(&env, &token, b"correct horse battery staple\n");
    assert_eq!(code(&out), 1, "{}", err_text(&out));
    assert!(err_text(&out).starts_with("expired"), "{}", err_text(&out));
    assert_eq!(stored_hash(&env, EMAIL), None);
}

// ---- no terminal -------------------------------------------------------------------------------

#[test]
fn no_terminal_and_no_password_stdin_is_a_usage_error_that_names_the_option() {
    let (env, token) = ready();
    // stdin is a pipe held open: a reset that tried to read it (or /dev/tty) would hang.
    let mut child = std_cmd(&env)
        .args(["reset", &token])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn reset");
    let held_open = child.stdin.take();
    let out = wait_within(child, PATIENCE);
    drop(held_open);
    let err = err_text(&out);
    assert_eq!(code(&out), 2, "{err}");
    assert!(err.contains("--password-stdin"), "{err}");
    assert!(err.contains("terminal"), "{err}");
    assert_valid(&env, &token);

    // The same with stdin at /dev/null.
    let a = env
        .cmd()
        .args(["reset", &token])
        .timeout(PATIENCE)
        .assert()
        .code(2);
    assert!(stderr(&a).contains("--password-stdin"));
    assert_valid(&env, &token);
}

// ---- --password-stdin --------------------------------------------------------------------------

#[test]
fn password_stdin_sets_the_password() {
    let (env, token) = ready();
    let out = reset_stdin(&env, &token, format!("{GOOD}\n").as_bytes());
    assert_eq!(code(&out), 0, "{}", err_text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("password changed for alice@example.com")
    );
    let hash = stored_hash(&env, EMAIL).expect("hash");
    assert!(argon2_accepts(GOOD, &hash));
    assert!(pwreset::password::verify(GOOD, &hash));
    let (code, out) = verify(&env, &token);
    assert_eq!(code, 1);
    assert!(out.starts_with("used"), "{out}");
}

#[test]
fn password_stdin_without_a_final_newline_works() {
    let (env, token) = ready();
    let out = reset_stdin(&env, &token, GOOD.as_bytes());
    assert_eq!(code(&out), 0, "{}", err_text(&out));
    assert!(argon2_accepts(
        GOOD,
        &stored_hash(&env, EMAIL).expect("hash")
    ));
}

#[test]
fn password_stdin_strips_only_one_newline_and_keeps_trailing_spaces() {
    let (env, token) = ready();
    let with_space = format!("{GOOD} ");
    let out = reset_stdin(&env, &token, format!("{with_space}\n").as_bytes());
    assert_eq!(code(&out), 0, "{}", err_text(&out));
    let hash = stored_hash(&env, EMAIL).expect("hash");
    assert!(
        argon2_accepts(&with_space, &hash),
        "the trailing space was lost"
    );
    assert!(
        !argon2_accepts(GOOD, &hash),
        "the trailing space was stripped"
    );
    assert!(pwreset::password::verify(&with_space, &hash));
}

#[test]
fn password_stdin_keeps_a_trailing_carriage_return_as_part_of_the_line() {
    // Only "\n" is stripped: "\r" stays, and as a control character it is refused rather than
    // silently dropped.
    let (env, token) = ready();
    let out = reset_stdin(&env, &token, format!("{GOOD}\r\n").as_bytes());
    assert_eq!(code(&out), 65, "{}", err_text(&out));
    assert!(err_text(&out).contains("control"), "{}", err_text(&out));
    assert_valid(&env, &token);
}

#[test]
fn each_policy_rule_refuses_with_65_naming_it_and_keeps_the_token() {
    let (env, token) = ready();
    let too_long = "x".repeat(1025);
    let cases: [(&str, &str); 5] = [
        ("short words", "min_length"),
        (&too_long, "max_length"),
        ("alice@example.com", "not_email"),
        ("Alice.Example.Com!", "not_email"),
        ("password1234", "min_strength"),
    ];
    for (pw, rule) in cases {
        let out = reset_stdin(&env, &token, format!("{pw}\n").as_bytes());
        let err = err_text(&out);
        assert_eq!(code(&out), 65, "{rule}: {err}");
        assert!(err.contains(rule), "{rule} not named: {err}");
        assert!(!err.contains(pw), "the password was echoed back: {err}");
        assert_valid(&env, &token);
    }
    assert_eq!(stored_hash(&env, EMAIL), None);
}

#[test]
fn max_length_counts_code_points_and_never_truncates() {
    let (env, token) = ready();
    // 1025 code points refused even without a trailing newline, and a huge line too.
    let long: String = "correct horse battery staple "
        .repeat(40)
        .chars()
        .take(1025)
        .collect();
    let out = reset_stdin(&env, &token, long.as_bytes());
    assert_eq!(code(&out), 65, "{}", err_text(&out));
    assert!(err_text(&out).contains("max_length"));
    let huge = vec![b'y'; 10 * 1024 * 1024];
    let out = reset_stdin(&env, &token, &huge);
    assert_eq!(code(&out), 65, "{}", err_text(&out));
    assert!(err_text(&out).contains("max_length"));
    assert_valid(&env, &token);

    // Exactly 1024 code points of 2-byte characters (2048 bytes) is accepted and stored whole.
    let max: String = "äöü ßé correct horse "
        .repeat(60)
        .chars()
        .take(1024)
        .collect();
    assert_eq!(max.chars().count(), 1024);
    let out = reset_stdin(&env, &token, format!("{max}\n").as_bytes());
    assert_eq!(code(&out), 0, "{}", err_text(&out));
    let hash = stored_hash(&env, EMAIL).expect("hash");
    assert!(argon2_accepts(&max, &hash));
    let shorter: String = max.chars().take(1023).collect();
    assert!(!argon2_accepts(&shorter, &hash));
}

#[test]
fn the_current_password_is_refused() {
    let (env, token) = ready();
    assert_eq!(
        code(&reset_stdin(&env, &token, format!("{GOOD}\n").as_bytes())),
        0
    );
    let token = Env::token_of(&env.link(EMAIL));
    let out = reset_stdin(&env, &token, format!("{GOOD}\n").as_bytes());
    assert_eq!(code(&out), 65, "{}", err_text(&out));
    assert!(err_text(&out).contains("not_current"), "{}", err_text(&out));
    assert_valid(&env, &token);
    let out = reset_stdin(&env, &token, format!("{OTHER_GOOD}\n").as_bytes());
    assert_eq!(code(&out), 0, "{}", err_text(&out));
    assert!(argon2_accepts(
        OTHER_GOOD,
        &stored_hash(&env, EMAIL).expect("hash")
    ));
}

#[test]
fn empty_stdin_is_refused_with_65() {
    let (env, token) = ready();
    for input in [&b""[..], b"\n"] {
        let out = reset_stdin(&env, &token, input);
        assert_eq!(code(&out), 65, "{input:?}: {}", err_text(&out));
        assert!(err_text(&out).contains("stdin"), "{}", err_text(&out));
        assert_valid(&env, &token);
    }
    assert_eq!(stored_hash(&env, EMAIL), None);
}

// ---- what is stored ---------------------------------------------------------------------------

#[test]
fn the_stored_password_is_an_argon2id_phc_string_with_the_configured_parameters() {
    let (env, token) = ready();
    assert_eq!(
        code(&reset_stdin(&env, &token, format!("{GOOD}\n").as_bytes())),
        0
    );
    let hash = stored_hash(&env, EMAIL).expect("hash");
    assert!(hash.starts_with("$argon2id$v=19$m=8192,t=1,p=1$"), "{hash}");
    let parts: Vec<&str> = hash.split('$').collect();
    assert_eq!(parts.len(), 6, "{hash}");
    assert!(parts[4].len() >= 16, "salt too short: {hash}");
    assert!(argon2_accepts(GOOD, &hash));
    assert!(!argon2_accepts("correct horse battery stapler", &hash));

    // A fresh salt every time: the same password hashes differently for another user.
    env.add_user("bob@example.com");
    let bob = Env::token_of(&env.link("bob@example.com"));
    assert_eq!(
        code(&reset_stdin(&env, &bob, format!("{GOOD}\n").as_bytes())),
        0
    );
    assert_ne!(stored_hash(&env, "bob@example.com").expect("hash"), hash);
}

// ---- the transaction ----------------------------------------------------------------------------

#[test]
fn reset_revokes_the_users_other_open_tokens_only() {
    let env = Env::new();
    env.init();
    env.add_user(EMAIL);
    env.add_user("bob@example.com");
    let older = Env::token_of(&env.link(EMAIL));
    let bobs = Env::token_of(&env.link("bob@example.com"));
    // A second open token for alice, made behind the throttle's back as an application might.
    let token = Env::token_of(&env.link(EMAIL));
    env.exec(
        "UPDATE pwreset_tokens SET revoked_at = NULL, revoked_reason = NULL, dead_at = expires_at",
    );
    assert_valid(&env, &older);
    assert_valid(&env, &token);

    let out = reset_stdin(&env, &token, format!("{GOOD}\n").as_bytes());
    assert_eq!(code(&out), 0, "{}", err_text(&out));

    let (c, out) = verify(&env, &older);
    assert_eq!(c, 1);
    assert!(out.starts_with("revoked"), "{out}");
    let reason = env.one(
        "SELECT revoked_reason FROM pwreset_tokens WHERE revoked_at IS NOT NULL AND used_at IS NULL",
    );
    assert_eq!(reason.as_deref(), Some("password reset"));
    assert_valid(&env, &bobs);

    // The used token is refused afterwards, and changes nothing.
    let before = stored_hash(&env, EMAIL);
    let out = reset_stdin(&env, &token, format!("{OTHER_GOOD}\n").as_bytes());
    assert_eq!(code(&out), 1, "{}", err_text(&out));
    assert!(err_text(&out).starts_with("used"), "{}", err_text(&out));
    assert_eq!(stored_hash(&env, EMAIL), before);
}

#[test]
fn racing_resets_with_one_token_exactly_one_wins() {
    let (env, token) = ready();
    const N: usize = 8;
    let mut children: Vec<Child> = (0..N)
        .map(|_| {
            std_cmd(&env)
                .args(["reset", "--password-stdin", &token])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn reset")
        })
        .collect();
    // Everyone is started (and most are blocked on stdin) before anyone gets a password.
    let passwords: Vec<String> = (0..N).map(|i| format!("{GOOD} number {i}")).collect();
    for (child, pw) in children.iter_mut().zip(&passwords) {
        let mut stdin = child.stdin.take().expect("stdin");
        // A process that already saw the token used may have exited: ignore EPIPE.
        let _ = stdin.write_all(format!("{pw}\n").as_bytes());
    }
    let outs: Vec<Output> = children
        .into_iter()
        .map(|c| wait_within(c, Duration::from_secs(60)))
        .collect();

    let winners: Vec<usize> = (0..N).filter(|&i| code(&outs[i]) == 0).collect();
    assert_eq!(winners.len(), 1, "exactly one reset must win: {outs:#?}");
    for (i, out) in outs.iter().enumerate() {
        if i == winners[0] {
            continue;
        }
        assert_eq!(code(out), 1, "loser {i}: {}", err_text(out));
        assert!(
            err_text(out).contains("used"),
            "loser {i}: {}",
            err_text(out)
        );
    }
    let hash = stored_hash(&env, EMAIL).expect("hash");
    assert!(argon2_accepts(&passwords[winners[0]], &hash));
    let used = env.i64("SELECT count(*) FROM pwreset_tokens WHERE used_at IS NOT NULL");
    assert_eq!(used, 1);
    let resets =
        env.i64("SELECT count(*) FROM pwreset_audit WHERE action = 'reset' AND outcome = 'ok'");
    assert_eq!(resets, 1);
}

// ---- the "your password was changed" notice -----------------------------------------------------

#[test]
fn the_changed_notice_is_sent_after_a_reset() {
    let env = Env::new();
    env.init();
    env.add_user(EMAIL);
    // A request that really emails the link: the first message in the outbox.
    let out = env
        .cmd()
        .args(["request", "--print-link", EMAIL])
        .output()
        .expect("request");
    assert!(out.status.success(), "{}", err_text(&out));
    let link = String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .expect("link")
        .to_owned();
    let token = Env::token_of(&link);
    assert_eq!(env.messages().len(), 1);

    let out = reset_stdin(&env, &token, format!("{GOOD}\n").as_bytes());
    assert_eq!(code(&out), 0, "{}", err_text(&out));
    let messages = env.messages();
    assert_eq!(messages.len(), 2, "one reset email and one notice");
    assert!(crate::harness::decode(&messages[0]).contains(&token));
    let notice = crate::harness::decode(&messages[1]);
    assert!(notice.contains(EMAIL), "{notice}");
    assert!(notice.contains("changed"), "{notice}");
    assert!(!notice.contains("pwr_"), "a token in the notice: {notice}");
    assert!(!notice.contains(GOOD), "the password in the notice");
    assert!(!notice.contains("horse"), "the password in the notice");
}

#[test]
fn notify_on_reset_false_sends_no_notice() {
    let env = Env::with_toml(|d| format!("notify_on_reset = false\n{}", default_toml(d)));
    env.init();
    env.add_user(EMAIL);
    let token = Env::token_of(&env.link(EMAIL));
    let out = reset_stdin(&env, &token, format!("{GOOD}\n").as_bytes());
    assert_eq!(code(&out), 0, "{}", err_text(&out));
    assert!(env.messages().is_empty(), "{:?}", env.messages());
    assert!(argon2_accepts(
        GOOD,
        &stored_hash(&env, EMAIL).expect("hash")
    ));
}

#[test]
fn a_notice_that_cannot_be_sent_is_a_warning_and_the_reset_still_succeeds() {
    let (env, token) = ready();
    // The outbox can no longer be created: its parent is a regular file.
    let blocker = env.dir.path().join("blocker");
    std::fs::write(&blocker, "not a folder").expect("write blocker");
    let broken = default_toml(env.dir.path()).replace(
        &env.outbox.display().to_string(),
        &blocker.join("outbox").display().to_string(),
    );
    assert_ne!(broken, default_toml(env.dir.path()));
    env.set_config(&broken);

    let out = reset_stdin(&env, &token, format!("{GOOD}\n").as_bytes());
    let err = err_text(&out);
    assert_eq!(code(&out), 0, "{err}");
    assert!(err.contains("warning"), "{err}");
    assert!(err.contains("notice"), "{err}");
    assert!(argon2_accepts(
        GOOD,
        &stored_hash(&env, EMAIL).expect("hash")
    ));
    let (c, _) = verify(&env, &token);
    assert_eq!(c, 1);
}

// ---- an application's own users table -----------------------------------------------------------

fn rows(env: &Env) -> Vec<Vec<Option<String>>> {
    env.rows("SELECT account_id, mail, pw, display, created FROM accounts ORDER BY account_id")
}

#[test]
fn reset_on_a_mapped_application_table_changes_only_the_password_column() {
    let env = Env::with_toml(|d| {
        format!(
            r#"{}
[users]
table = "accounts"
id_column = "account_id"
email_column = "mail"
password_column = "pw"
password_format = "argon2id"
"#,
            default_toml(d)
        )
    });
    env.exec(
        "CREATE TABLE accounts (account_id INTEGER PRIMARY KEY, mail VARCHAR(254) NOT NULL, pw TEXT,
                                display TEXT, created TEXT);
         INSERT INTO accounts VALUES (7, 'Carol@Example.com', 'legacy$md5$abc', 'Carol C.', '2020-01-02');
         INSERT INTO accounts VALUES (9, 'dave@example.com', 'legacy$md5$def', 'Dave', '2021-03-04');",
    );
    env.init();
    let before = rows(&env);

    let token = Env::token_of(&env.link("carol@example.com"));
    let out = reset_stdin(&env, &token, format!("{GOOD}\n").as_bytes());
    assert_eq!(code(&out), 0, "{}", err_text(&out));

    let after = rows(&env);
    assert_eq!(after.len(), 2);
    assert_eq!(after[1], before[1], "the other row changed");
    for col in [0, 1, 3, 4] {
        assert_eq!(after[0][col], before[0][col], "column {col} changed");
    }
    let pw = env
        .one("SELECT pw FROM accounts WHERE account_id = 7")
        .expect("a password");
    assert!(pw.starts_with("$argon2id$"), "{pw}");
    assert!(argon2_accepts(GOOD, &pw));
    let (c, out) = verify(&env, &token);
    assert_eq!(c, 1);
    assert!(out.starts_with("used"), "{out}");
    // pwreset made no users table of its own beside the application's.
    let tables = env.tables();
    assert!(!tables.iter().any(|t| t == "users"), "{tables:?}");
}

#[test]
fn a_one_character_password_is_one_character() {
    let (env, token) = ready();
    let out = reset_stdin(&env, &token, b"x\n");
    assert_eq!(code(&out), 65);
    let err = err_text(&out);
    assert!(err.contains("1 character,"), "{err}");
    assert!(!err.contains("1 characters"), "{err}");
}

// ---- prompts: the token is a secret, Ctrl-D is a cancel, bulk mail asks first ---------------

#[test]
fn with_no_argument_at_a_terminal_the_token_is_asked_for_without_echo() {
    let (env, token) = ready();
    for cmd in ["verify", "reset"] {
        let mut p = Pty::spawn(&env, &[cmd]);
        p.prompted("Token or link: ");
        p.send_line(&token);
        if cmd == "reset" {
            p.answer(GOOD, GOOD);
        }
        assert_eq!(p.finish(), 0, "{cmd}: {}", p.transcript);
        assert!(
            !p.transcript.contains(&token),
            "{cmd}: the token was echoed:\n{}",
            p.transcript
        );
    }
}

#[test]
fn ctrl_d_at_any_prompt_is_a_cancel_with_exit_130() {
    let (env, token) = ready();
    let mut p = Pty::spawn(&env, &["reset", &token]);
    p.prompted("New password: ");
    p.session
        .send(ControlCode::EndOfTransmission)
        .expect("send Ctrl-D");
    assert_eq!(p.finish(), 130, "{}", p.transcript);
    assert!(
        p.transcript
            .contains("nothing was changed; the link still works"),
        "{}",
        p.transcript
    );
    assert!(p.echo_on(), "the terminal was left with echo off");
    assert_valid(&env, &token);
    let mut p = Pty::spawn(&env, &["verify"]);
    p.prompted("Token or link: ");
    p.session
        .send(ControlCode::EndOfTransmission)
        .expect("send Ctrl-D");
    assert_eq!(p.finish(), 130, "{}", p.transcript);
}

#[test]
fn request_all_on_a_terminal_asks_before_mailing_everyone() {
    let env = Env::new();
    env.init();
    env.add_user("alice@example.com");
    env.add_user("bob@example.com");
    let mut p = Pty::spawn(&env, &["request", "--all"]);
    p.expect("Send reset links to 2 users? [y/N] ");
    p.send_line("n");
    assert_eq!(p.finish(), 130, "{}", p.transcript);
    assert!(
        p.transcript.contains("nothing was sent"),
        "{}",
        p.transcript
    );
    assert!(env.messages().is_empty());
    let mut p = Pty::spawn(&env, &["request", "--all"]);
    p.expect("Send reset links to 2 users? [y/N] ");
    p.send_line("y");
    assert_eq!(p.finish(), 0, "{}", p.transcript);
    assert_eq!(env.messages().len(), 2);
    // One address: no question and no progress bar flashing by.
    let mut p = Pty::spawn(&env, &["request", "--force", "alice@example.com"]);
    assert_eq!(p.finish(), 0, "{}", p.transcript);
    assert!(!p.transcript.contains("requesting"), "{}", p.transcript);
    // --yes, or no terminal: no question (cron keeps working).
    let mut p = Pty::spawn(&env, &["request", "--all", "--yes", "--force"]);
    assert_eq!(p.finish(), 0, "{}", p.transcript);
    assert!(!p.transcript.contains("[y/N]"), "{}", p.transcript);
    env.cmd()
        .args(["request", "--all", "--force"])
        .assert()
        .success();
    assert_eq!(env.messages().len(), 7);
}
