//! Several processes on one database: a writer holding the lock past busy_timeout (exit 75,
//! nothing sent, nothing written), SIGKILL in the middle of a reset (old state or new, never a
//! mix), and verify / request / reset working side by side with a big purge and a bulk request.

use crate::harness::{Env, default_toml, numbers, unix_now};
use std::io::Write;
use std::process::{Child, Command as StdCommand, Output, Stdio};
use std::time::{Duration, Instant};

const PASSWORD: &str = "correct horse battery staple";
const TIMEOUT: Duration = Duration::from_secs(120);

/// An environment whose busy_timeout is `timeout` (the harness default is 2s).
fn env_with_busy_timeout(timeout: &str) -> Env {
    Env::with_toml(|dir| {
        let toml = default_toml(dir);
        let line = toml
            .lines()
            .find(|l| l.starts_with("busy_timeout"))
            .expect("the default config sets busy_timeout")
            .to_owned();
        toml.replace(&line, &format!("busy_timeout = \"{timeout}\""))
    })
}

/// `pwreset --config <env>` as a std Command, for children that run side by side or get killed.
fn pwreset(env: &Env) -> StdCommand {
    env.std_cmd()
}

/// Run to completion with `input` on stdin (none: /dev/null).
fn output(env: &Env, args: &[&str], input: Option<&str>) -> Output {
    let mut c = env.cmd();
    c.args(args).timeout(TIMEOUT);
    // Without input, assert_cmd gives the child a stdin that is already at end of file.
    if let Some(text) = input {
        c.write_stdin(text.to_owned());
    }
    c.output().expect("run pwreset")
}

fn code(what: &str, out: &Output) -> i32 {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{what}: panicked: {err}");
    out.status
        .code()
        .unwrap_or_else(|| panic!("{what}: killed by a signal"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn count(env: &Env, sql: &str) -> i64 {
    env.i64(sql)
}

fn password_hash(env: &Env, email: &str) -> Option<String> {
    env.one(&format!(
        "SELECT password_hash FROM users WHERE email = {}",
        env.quote(email)
    ))
}

// ---- a locked database -------------------------------------------------------------------

/// Everything that must stay unchanged while another process holds the write lock.
#[derive(Debug, PartialEq, Eq)]
struct Snapshot {
    tokens: i64,
    open_tokens: i64,
    users: i64,
    audit: i64,
    hashes: i64,
}

fn snapshot(env: &Env) -> Snapshot {
    Snapshot {
        tokens: count(env, "SELECT count(*) FROM pwreset_tokens"),
        open_tokens: count(
            env,
            "SELECT count(*) FROM pwreset_tokens WHERE used_at IS NULL AND revoked_at IS NULL",
        ),
        users: count(env, "SELECT count(*) FROM users"),
        audit: count(env, "SELECT count(*) FROM pwreset_audit"),
        hashes: count(
            env,
            "SELECT count(*) FROM users WHERE password_hash IS NOT NULL",
        ),
    }
}

/// With `BEGIN IMMEDIATE` held by another connection for longer than busy_timeout (1s),
/// request, reset and the other writers give up after about busy_timeout with 75 and a message
/// that says the database is locked and to try again; no mail goes out and nothing is written.
/// Readers (verify, user list) keep working, as WAL allows.
#[test]
fn writers_exit_75_when_another_process_holds_the_lock() {
    let env = env_with_busy_timeout("1s");
    // A server has no database-wide write lock to hold, and its lock waits are not
    // busy_timeout's.
    if env.sqlite_only("a writer holding the database lock with BEGIN IMMEDIATE") {
        return;
    }
    env.init().add_user("alice@example.com");
    let token = Env::token_of(&env.link("alice@example.com"));
    let before = snapshot(&env);

    let holder = env.sql();
    holder
        .execute_batch("BEGIN IMMEDIATE")
        .expect("take the write lock");
    let password_line = format!("{PASSWORD}\n");
    let writers: [(&str, Vec<&str>, Option<&str>); 5] = [
        ("request", vec!["request", "alice@example.com"], None),
        (
            "request --force --no-email",
            vec!["request", "--force", "--no-email", "alice@example.com"],
            None,
        ),
        (
            "reset --password-stdin",
            vec!["reset", "--password-stdin", token.as_str()],
            Some(password_line.as_str()),
        ),
        ("user add", vec!["user", "add", "bob@example.com"], None),
        ("purge-expired", vec!["purge-expired"], None),
    ];
    for (what, args, input) in &writers {
        let start = Instant::now();
        let out = output(&env, args, *input);
        let elapsed = start.elapsed();
        let err = text(&out.stderr);
        assert_eq!(code(what, &out), 75, "{what}: {err}");
        assert!(err.contains("locked"), "{what}: {err}");
        assert!(err.contains("try again"), "{what}: {err}");
        // It waited for busy_timeout (SQLite's busy handler sleeps until then) and then gave up
        // promptly; the upper bound is loose, for slow machines.
        assert!(
            elapsed >= Duration::from_millis(500),
            "{what}: gave up after {elapsed:?}"
        );
        assert!(
            elapsed < Duration::from_secs(1 + 5),
            "{what}: took {elapsed:?}"
        );
    }
    // Readers are not blocked by a writer.
    for args in [
        vec!["verify", token.as_str()],
        vec!["user", "list"],
        vec!["audit"],
    ] {
        let out = output(&env, &args, None);
        assert_eq!(
            code(&args.join(" "), &out),
            0,
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
    holder.execute_batch("ROLLBACK").expect("release the lock");
    drop(holder);

    assert_eq!(snapshot(&env), before);
    assert!(env.messages().is_empty(), "{:?}", env.messages());
    // The token survived and still works now that the lock is gone.
    env.cmd().args(["verify", &token]).assert().code(0);
    env.cmd()
        .args(["reset", "--password-stdin", &token])
        .write_stdin(format!("{PASSWORD}\n"))
        .assert()
        .code(0);
}

// ---- SIGKILL in the middle of a reset ----------------------------------------------------

/// Kill `reset --password-stdin` with SIGKILL at moments spread over its whole run, about 20
/// times. After each, the reset either happened completely (new hash and the token used) or
/// not at all (old hash, token unused), and on SQLite the file passes `PRAGMA integrity_check`.
#[test]
fn sigkill_during_reset_leaves_the_old_state_or_the_new_one() {
    let env = Env::new();
    // Said once here rather than in every round; servers check their own pages.
    let check_file = !env.sqlite_only("PRAGMA integrity_check after each kill");
    env.init().add_user("alice@example.com");

    // How long a whole reset takes here, to spread the kills over it.
    let token = Env::token_of(&env.link("alice@example.com"));
    let start = Instant::now();
    env.cmd()
        .args(["reset", "--password-stdin", &token])
        .write_stdin(format!("{PASSWORD} warm-up\n"))
        .assert()
        .code(0);
    let full = start.elapsed();

    const ROUNDS: u32 = 20;
    let budget = Instant::now();
    let (mut completed, mut interrupted) = (0u32, 0u32);
    for round in 0..ROUNDS {
        if round > 4 && budget.elapsed() > Duration::from_secs(20) {
            break;
        }
        let link = env.link("alice@example.com");
        let old_hash = password_hash(&env, "alice@example.com");
        let token_id = env.i64("SELECT max(id) FROM pwreset_tokens");

        let mut child: Child = pwreset(&env)
            .args(["reset", "--password-stdin", &link])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn reset");
        let mut stdin = child.stdin.take().expect("stdin");
        // The password goes into the pipe buffer at once; the child reads it when it gets there.
        stdin
            .write_all(format!("{PASSWORD} round {round}\n").as_bytes())
            .expect("write password");
        drop(stdin);
        // Vary the moment of death from "at once" to "a bit after a whole reset": a yield loop,
        // not a sleep; nothing waits on the child.
        let kill_at = full.mul_f64(1.2 * f64::from(round) / f64::from(ROUNDS - 1));
        let spin = Instant::now();
        while spin.elapsed() < kill_at {
            std::thread::yield_now();
        }
        let _ = child.kill();
        let status = child.wait().expect("wait for reset");

        if check_file {
            let ok = env.text("PRAGMA integrity_check");
            assert_eq!(ok.as_deref(), Some("ok"), "round {round}");
        }
        let new_hash = password_hash(&env, "alice@example.com");
        let used = env.one(&format!(
            "SELECT used_at FROM pwreset_tokens WHERE id = {token_id}"
        ));
        let changed = new_hash != old_hash;
        assert_eq!(
            changed,
            used.is_some(),
            "round {round} ({status:?}): password changed: {changed}, token used: {used:?}"
        );
        if changed {
            completed += 1;
            assert!(
                new_hash
                    .as_deref()
                    .is_some_and(|h| h.starts_with("$argon2id$")),
                "round {round}: {new_hash:?}"
            );
        } else {
            interrupted += 1;
        }
    }
    eprintln!(
        "sigkill: {completed} resets completed, {interrupted} interrupted (a whole reset takes {full:?})"
    );
    assert!(completed + interrupted >= 5);

    // The database is still fully usable.
    let token = Env::token_of(&env.link("alice@example.com"));
    env.cmd()
        .args(["reset", "--password-stdin", &token])
        .write_stdin(format!("{PASSWORD} after\n"))
        .assert()
        .code(0);
}

// ---- side by side with a big purge and a bulk request ------------------------------------

/// While `purge-expired --batch-size 1000` works through 200,000 dead tokens and
/// `request --all --no-email` makes links for 3,000 users, other processes' verify,
/// `request --force` and `reset --password-stdin` keep working: every one of them gets its
/// normal answer, none a 75.
#[test]
fn verify_request_and_reset_keep_working_during_purge_and_bulk_request() {
    const DEAD: i64 = 200_000;
    const BULK_USERS: i64 = 3_000;
    // Each batch holds the write lock for milliseconds; the busy_timeout is the margin a loaded
    // test machine (the rest of the suite runs beside this test) needs to show that.
    let env = env_with_busy_timeout("10s");
    env.init().add_user("side@example.com");
    let now = unix_now();
    let bulk: Vec<String> = (1..=BULK_USERS)
        .map(|x| format!("bulk{x}@example.com"))
        .collect();
    env.insert_users(&bulk);
    let side = env.i64("SELECT id FROM users WHERE email = 'side@example.com'");
    // The dead tokens are spread over ids from the first bulk user's on (should the ids have
    // gaps, a dead token of a missing user is purged all the same).
    let first = env.i64("SELECT min(id) FROM users WHERE email LIKE 'bulk%'");
    // Every dead token has the same digest and binding: they are never looked up, only purged,
    // and random bytes have no portable SQL.
    env.exec(&format!(
        "INSERT INTO pwreset_tokens (digest, user_id, binding, created_at, expires_at, dead_at)
         SELECT {digest}, {first} + i % {BULK_USERS}, {binding}, {now} - 7200 - i,
                {now} - 3600 - i, {now} - 3600 - i
           FROM {nums}",
        digest = env.blob(&[0xd0; 32]),
        binding = env.blob(&[0xb1; 16]),
        nums = numbers(DEAD),
    ));
    // side@ has a fresh token, so the bulk request (which honours the throttle) leaves it
    // alone and the side processes' answers do not depend on the bulk run's timing.
    let first = env.link("side@example.com");
    env.cmd().args(["verify", &first]).assert().code(0);

    let mut purge = pwreset(&env)
        .args(["purge-expired", "--batch-size", "1000", "--json"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn purge");
    let mut bulk = pwreset(&env)
        .args(["request", "--all", "--no-email"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn bulk request");

    let started = Instant::now();
    let mut rounds = 0u32;
    let mut overlapped = 0u32;
    loop {
        let busy = matches!(purge.try_wait(), Ok(None)) || matches!(bulk.try_wait(), Ok(None));
        if (!busy && rounds >= 3) || started.elapsed() > Duration::from_secs(90) {
            break;
        }
        if busy {
            overlapped += 1;
        }
        let out = output(
            &env,
            &["request", "--force", "--no-email", "side@example.com"],
            None,
        );
        assert_eq!(
            code("request --force", &out),
            0,
            "round {rounds}: {}",
            text(&out.stderr)
        );
        let link = text(&out.stdout).lines().next().expect("a link").to_owned();

        let out = output(&env, &["verify", "--json", &link], None);
        assert_eq!(
            code("verify", &out),
            0,
            "round {rounds}: {}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
        assert_eq!(v["status"], "valid");
        assert_eq!(v["email"], "side@example.com");

        let password = format!("{PASSWORD} side {rounds}\n");
        let out = output(&env, &["reset", "--password-stdin", &link], Some(&password));
        assert_eq!(
            code("reset", &out),
            0,
            "round {rounds}: {}",
            text(&out.stderr)
        );
        rounds += 1;
    }

    let purge = purge.wait_with_output().expect("purge");
    let bulk = bulk.wait_with_output().expect("bulk request");
    assert_eq!(code("purge-expired", &purge), 0, "{}", text(&purge.stderr));
    let summary: serde_json::Value = serde_json::from_slice(&purge.stdout).expect("purge --json");
    assert!(
        summary["purged"].as_i64().is_some_and(|n| n >= DEAD),
        "{summary}"
    );
    // 75 only because side@ was throttled, never because the database was busy.
    let bulk_err = text(&bulk.stderr);
    assert!(matches!(code("request --all", &bulk), 0 | 75), "{bulk_err}");
    assert!(!bulk_err.contains("locked"), "{bulk_err}");
    assert_eq!(
        count(
            &env,
            &format!("SELECT count(*) FROM pwreset_tokens WHERE expires_at < {now} - 3000")
        ),
        0,
        "every seeded dead token is gone"
    );
    assert_eq!(
        count(
            &env,
            &format!(
                "SELECT count(DISTINCT user_id) FROM pwreset_tokens
                  WHERE used_at IS NULL AND revoked_at IS NULL AND user_id <> {side}"
            )
        ),
        BULK_USERS,
        "every bulk user has an open link"
    );
    eprintln!(
        "side by side: {rounds} rounds of request+verify+reset, {overlapped} while purge or bulk ran, in {:?}",
        started.elapsed()
    );
}
