//! Stopping and resuming: real signals to the real binary in the middle of a mailed bulk run
//! against the SMTP server of `smtp/server.rs` (slowed down so the run is mid-way), then the
//! same command again; two runs at once; a relay that goes away. On every backend.
//!
//! Each test waits for the relay to have taken enough messages (the server wakes the test at
//! each one) before it sends the signal: no sleeps.

use crate::harness::Env;
use crate::smtp::server::{Options, Server};
use crate::smtp::{plain, token_in, toml};
use std::collections::HashMap;
use std::process::{Child, Output, Stdio};
use std::time::Duration;

/// Users in a bulk test: enough that a run is stopped well before its end.
const USERS: usize = 200;
const CONNECTIONS: usize = 4;

/// An installation with `n` users mailing through `server` over `connections`, with the
/// throttle of a real deployment (an hour).
fn bulk_env(server: &Server, n: usize, connections: usize) -> (Env, Vec<String>) {
    let env = Env::with_toml(|dir| toml(dir, "", ""));
    env.set_config(
        &toml(
            env.dir.path(),
            "",
            &format!("{}\nconnections = {connections}", plain(server)),
        )
        .replace("request_throttle = \"60s\"", "request_throttle = \"1h\""),
    );
    env.init();
    let emails: Vec<String> = (1..=n)
        .map(|i| format!("user-{i:04}@example.com"))
        .collect();
    env.insert_users(&emails);
    (env, emails)
}

fn slow_relay(delay_ms: u64) -> Server {
    Server::start(Options {
        data_delay: Some(Duration::from_millis(delay_ms)),
        ..Options::default()
    })
}

fn spawn(env: &Env, args: &[&str]) -> Child {
    env.std_cmd()
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start pwreset")
}

fn kill(child: &Child, signal: &str) {
    let ok = std::process::Command::new("kill")
        .args([&format!("-{signal}"), &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(ok.success(), "kill -{signal}");
}

/// `12,345`, as the summaries write counts.
fn grouped(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn code(out: &Output) -> Option<i32> {
    out.status.code()
}

fn err(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Wait until the relay has taken `n` messages.
fn wait_for_messages(server: &Server, n: usize) {
    assert!(
        server.wait_for(Duration::from_secs(60), |log| log.messages.len() >= n),
        "the relay never got {n} messages"
    );
}

/// How many messages each recipient got from the relays (in the order they were used), and
/// the token of the newest one.
fn mailed(relays: &[&Server]) -> (HashMap<String, usize>, HashMap<String, String>) {
    let mut count: HashMap<String, usize> = HashMap::new();
    let mut newest: HashMap<String, String> = HashMap::new();
    for server in relays {
        for m in &server.log().messages {
            let to = m.rcpt_to.first().cloned().unwrap_or_default();
            *count.entry(to.clone()).or_default() += 1;
            newest.insert(to, token_in(&m.data));
        }
    }
    (count, newest)
}

/// Point the env's config at another relay: the first one went away and this one is up.
fn switch_relay(env: &Env, from: &Server, to: &Server) {
    env.set_config(
        &std::fs::read_to_string(&env.config)
            .expect("config")
            .replace(
                &format!("port = {}", from.port()),
                &format!("port = {}", to.port()),
            ),
    );
}

/// The ids of the links that are usable now, by the store's own rules.
fn usable_ids(env: &Env) -> std::collections::HashSet<i64> {
    let now = crate::harness::unix_now();
    env.rows(&format!(
        "SELECT id FROM pwreset_tokens
          WHERE used_at IS NULL AND revoked_at IS NULL AND expires_at > {now}"
    ))
    .into_iter()
    .map(|r| r[0].as_deref().expect("id").parse().expect("a number"))
    .collect()
}

fn token_id(token: &str) -> i64 {
    pwreset::token::Token::parse(token)
        .expect("a well-formed token in the mail")
        .id()
}

/// After the run and its re-run: every user was mailed, at most `twice` of them twice (the
/// messages in flight at a crash), nobody more, every user's newest link works and is the only
/// one that does, and no link is left that nobody was sent.
fn assert_finished(env: &Env, relays: &[&Server], emails: &[String], twice: usize) {
    let (count, newest) = mailed(relays);
    for e in emails {
        assert!(count.contains_key(e), "{e} was never mailed");
    }
    let doubles: Vec<_> = count.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        doubles.len() <= twice && doubles.iter().all(|(_, n)| **n == 2),
        "mailed more than once: {doubles:?}"
    );
    let usable = usable_ids(env);
    for e in emails {
        let id = token_id(&newest[e]);
        assert!(usable.contains(&id), "{e}'s newest link does not work");
    }
    assert_eq!(
        usable.len(),
        emails.len(),
        "exactly one usable link per user, the one in their newest mail"
    );
}

/// A run stopped by `signal` while the relay is half-way, then run again.
fn stop_and_resume(signal: &str, status: i32) {
    let server = slow_relay(20);
    let (env, emails) = bulk_env(&server, USERS, CONNECTIONS);
    let child = spawn(&env, &["request", "--all", "--yes"]);
    wait_for_messages(&server, 40);
    kill(&child, signal);
    let out = child.wait_with_output().expect("wait");
    assert_eq!(code(&out), Some(status), "{}", err(&out));
    let sent = server.log().messages.len();
    assert!(
        sent < USERS,
        "the run was not stopped mid-way ({sent} sent)"
    );
    let e = err(&out);
    assert!(
        e.contains(&format!("stopped by SIG{signal}: {sent} sent")),
        "the summary counts exactly what the relay took ({sent}): {e}"
    );
    assert!(e.contains(&format!("{} not sent", USERS - sent)), "{e}");
    assert!(e.contains("Run the same command again"), "{e}");
    // Nobody holds a link the relay never took: the rest were withdrawn, and their throttle
    // given back.
    assert_eq!(usable_ids(&env).len(), sent);
    let not_sent = env.i64("SELECT count(*) FROM pwreset_tokens WHERE revoked_reason = 'not sent'");
    assert_eq!(
        env.i64("SELECT count(*) FROM pwreset_tokens") as usize,
        sent + not_sent as usize
    );
    assert_eq!(
        env.i64("SELECT count(*) FROM pwreset_throttle") as usize,
        sent,
        "only the users who were mailed are throttled"
    );

    // The same command again finishes the job: it mails exactly the others.
    let out = spawn(&env, &["request", "--all", "--yes"])
        .wait_with_output()
        .expect("wait");
    let e = err(&out);
    assert_eq!(code(&out), Some(0), "{e}");
    assert!(e.contains("continuing the same request"), "{e}");
    assert!(
        e.contains(&format!(
            "requested {USERS}: {} sent, {sent} already_sent",
            USERS - sent
        )),
        "{e}"
    );
    // The messages in flight at the signal were finished, not sent twice.
    assert_finished(&env, &[&server], &emails, 0);
    // And the run after that is a new one: the throttle holds.
    let out = spawn(&env, &["request", "--all", "--yes"])
        .wait_with_output()
        .expect("wait");
    assert_eq!(code(&out), Some(75), "{}", err(&out));
    assert_eq!(server.log().messages.len(), USERS);
}

#[test]
fn sigint_mid_bulk_run_finishes_in_flight_withdraws_the_rest_and_a_rerun_completes() {
    stop_and_resume("INT", 130);
}

#[test]
fn sigterm_mid_bulk_run_does_the_same_with_143() {
    stop_and_resume("TERM", 143);
}

#[test]
fn sighup_mid_bulk_run_does_the_same_with_129() {
    stop_and_resume("HUP", 129);
}

#[test]
fn kill_9_mid_bulk_run_then_the_same_command_mails_the_rest() {
    let server = slow_relay(20);
    let (env, emails) = bulk_env(&server, USERS, CONNECTIONS);
    let mut child = spawn(&env, &["request", "--all", "--yes"]);
    wait_for_messages(&server, 40);
    kill(&child, "KILL");
    let status = child.wait().expect("wait");
    assert_eq!(status.code(), None, "killed by the signal");
    let before = server.log().messages.len();
    assert!(before < USERS, "the run was not stopped mid-way");

    let out = spawn(&env, &["request", "--all", "--yes"])
        .wait_with_output()
        .expect("wait");
    let e = err(&out);
    assert_eq!(code(&out), Some(0), "{e}");
    assert!(e.contains("ended without finishing"), "{e}");
    assert!(e.contains("continuing the same request"), "{e}");
    // Only the messages in flight at the kill (one per connection) may have gone twice.
    assert_finished(&env, &[&server], &emails, CONNECTIONS);
    let reaped = env.rows("SELECT outcome FROM pwreset_runs ORDER BY id");
    assert_eq!(
        reaped
            .iter()
            .map(|r| r[0].as_deref().unwrap_or("-"))
            .collect::<Vec<_>>(),
        ["crashed", "done"]
    );
}

#[test]
fn a_second_ctrl_c_exits_at_once_and_the_next_run_cleans_up() {
    // A relay so slow that the first Ctrl-C's grace would take seconds.
    let slow = slow_relay(4000);
    let (env, emails) = bulk_env(&slow, 6, 1);
    let mut child = spawn(&env, &["request", "--all", "--yes"]);
    wait_for_messages(&slow, 1);
    kill(&child, "INT");
    // The second signal only after the first was heard: two sent back to back can arrive as
    // one (a pending signal is not queued twice).
    let stderr = std::io::BufReader::new(child.stderr.take().expect("stderr"));
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        use std::io::BufRead;
        let mut all = String::new();
        for line in stderr.lines().map_while(Result::ok) {
            if line.starts_with("stopping (SIGINT)") {
                let _ = tx.send(());
            }
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    rx.recv_timeout(Duration::from_secs(60))
        .expect("the first Ctrl-C is acknowledged on stderr");
    kill(&child, "INT");
    let status = child.wait().expect("wait");
    let e = reader.join().expect("stderr reader");
    assert_eq!(status.code(), Some(130), "{e}");
    assert!(
        !e.contains("stopped by"),
        "no summary: it did not wait for the message in flight: {e}"
    );
    // Its links were left pending; the next run finds it dead and withdraws them first.
    let fast = Server::start(Options::default());
    switch_relay(&env, &slow, &fast);
    let out = spawn(&env, &["request", "--all", "--yes"])
        .wait_with_output()
        .expect("wait");
    assert_eq!(code(&out), Some(0), "{}", err(&out));
    assert!(
        err(&out).contains("ended without finishing"),
        "{}",
        err(&out)
    );
    assert_finished(&env, &[&slow, &fast], &emails, 1);
}

#[test]
fn sigint_during_one_users_mail_waits_for_it_and_says_it_was_sent() {
    let server = slow_relay(1500);
    let (env, emails) = bulk_env(&server, 1, 1);
    let child = spawn(&env, &["request", "--json", &emails[0]]);
    wait_for_messages(&server, 1);
    kill(&child, "INT");
    let out = child.wait_with_output().expect("wait");
    assert_eq!(code(&out), Some(130), "{}", err(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON line");
    assert_eq!(v["status"], "sent", "{v}");
    assert!(
        err(&out).contains("stopped by SIGINT: 1 sent"),
        "{}",
        err(&out)
    );
    assert_finished(&env, &[&server], &emails, 0);
    let audit = env.rows("SELECT outcome FROM pwreset_audit WHERE action = 'request'");
    assert_eq!(audit, [[Some("sent".to_owned())]]);
}

#[test]
fn printed_links_stopped_between_chunks_then_the_rest_are_printed() {
    use std::io::{BufRead, BufReader, Read};
    let env = Env::new();
    env.init();
    // Five chunks' worth: the run is stopped while it writes the first (and, on a server
    // backend, while at most two more are being stored ahead).
    let emails: Vec<String> = (1..=25_000)
        .map(|i| format!("user-{i:05}@example.com"))
        .collect();
    env.insert_users(&emails);
    let mut child = spawn(&env, &["request", "--all", "--no-email"]);
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut first = String::new();
    stdout.read_line(&mut first).expect("read a link");
    assert!(first.contains("token=pwr_"), "{first}");
    // The chunk's links do not fit in the pipe: pwreset is still writing them.
    kill(&child, "TERM");
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).expect("read the rest");
    let out = child.wait_with_output().expect("wait");
    assert_eq!(code(&out), Some(143), "{}", err(&out));
    let printed = 1 + rest.lines().count();
    assert!(printed < emails.len(), "stopped before the end");
    assert!(
        err(&out).contains(&format!("stopped by SIGTERM: {} created", grouped(printed))),
        "{}",
        err(&out)
    );
    // What was printed works; nothing else does.
    assert_eq!(usable_ids(&env).len(), printed);

    let out = spawn(&env, &["request", "--all", "--no-email"])
        .wait_with_output()
        .expect("wait");
    assert_eq!(code(&out), Some(0), "{}", err(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).lines().count(),
        emails.len() - printed,
        "the same command prints the links of the others only"
    );
    assert_eq!(usable_ids(&env).len(), emails.len());
}

#[test]
fn two_runs_at_once_never_mail_anyone_twice() {
    for force in [false, true] {
        let server = slow_relay(20);
        let (env, emails) = bulk_env(&server, USERS, CONNECTIONS);
        let mut args = vec!["request", "--all", "--yes"];
        if force {
            args.push("--force");
        }
        let a = spawn(&env, &args);
        // The second starts while the first is mailing, a second's work from its end.
        wait_for_messages(&server, 1);
        let b = spawn(&env, &args);
        let (a, b) = (
            a.wait_with_output().expect("wait"),
            b.wait_with_output().expect("wait"),
        );
        for out in [&a, &b] {
            assert!(
                matches!(code(out), Some(0 | 75)),
                "force {force}: {}",
                err(out)
            );
        }
        let (count, _) = mailed(&[&server]);
        assert_eq!(count.len(), USERS, "force {force}: everyone mailed");
        assert!(
            count.values().all(|n| *n == 1),
            "force {force}: nobody twice: {:?}",
            count.iter().filter(|(_, n)| **n > 1).collect::<Vec<_>>()
        );
        assert_finished(&env, &[&server], &emails, 0);
    }
}

#[test]
fn a_relay_that_goes_away_is_not_blamed_on_a_connection_limit_and_a_rerun_mails_the_rest() {
    let server = Server::start(Options {
        data_delay: Some(Duration::from_millis(5)),
        die_after: Some(50),
        ..Options::default()
    });
    let (env, emails) = bulk_env(&server, USERS, CONNECTIONS);
    let out = spawn(&env, &["request", "--all", "--yes"])
        .wait_with_output()
        .expect("wait");
    let e = err(&out);
    assert_eq!(code(&out), Some(75), "{e}");
    assert!(!e.contains("limits connections per client"), "{e}");
    let sent = server.log().messages.len();
    assert_eq!(usable_ids(&env).len(), sent);
    // The relay is back (a new one on another port): the same command mails exactly the rest.
    let back = Server::start(Options::default());
    switch_relay(&env, &server, &back);
    let out = spawn(&env, &["request", "--all", "--yes"])
        .wait_with_output()
        .expect("wait");
    assert_eq!(code(&out), Some(0), "{}", err(&out));
    assert_eq!(back.log().messages.len(), USERS - sent);
    assert_finished(&env, &[&server, &back], &emails, 0);
}

#[test]
fn a_link_withdrawn_while_its_mail_was_out_leaves_the_older_link_working() {
    // Another process ends this run while its one message is at the relay (a host that judged
    // it dead, or serve's stop deadline): the link is withdrawn first. The late hand-over must
    // not mark it, nor end the link the user already holds.
    let relay = slow_relay(1500);
    let (env, emails) = bulk_env(&relay, 1, 1);
    let old = token_id(&Env::token_of(&env.link(&emails[0])));
    env.exec("UPDATE pwreset_throttle SET last_at = last_at - 7200");
    let child = spawn(&env, &["request", "--yes", &emails[0]]);
    wait_for_messages(&relay, 1);
    let new = env.i64("SELECT max(id) FROM pwreset_tokens");
    assert_ne!(new, old, "the run has stored its link");
    let now = crate::harness::unix_now();
    env.exec(&format!(
        "UPDATE pwreset_tokens SET revoked_at = {now}, revoked_reason = 'not sent' WHERE id = {new}"
    ));
    let out = child.wait_with_output().expect("wait");
    assert_eq!(code(&out), Some(0), "{}", err(&out));
    let usable = usable_ids(&env);
    assert!(usable.contains(&old), "the link the user holds still works");
    assert_eq!(usable.len(), 1);
    assert_eq!(
        env.i64(&format!(
            "SELECT count(*) FROM pwreset_tokens WHERE id = {new} AND handed_over_at IS NOT NULL"
        )),
        0,
        "a withdrawn link is not marked handed over"
    );
}

// ---- serve -------------------------------------------------------------------------------

use crate::serve::{EMAIL, Server as Web};

/// A `serve` config mailing through `relay`, with forgot-page limits a test of 20 requests does
/// not hit, and `extra` in `[serve]`.
fn web_toml(dir: &std::path::Path, port: u16, smtp: &str, extra: &str) -> String {
    toml(dir, "", smtp)
        .replace(
            "base_url = \"https://accounts.example.com/reset_password\"",
            &format!("base_url = \"http://127.0.0.1:{port}/reset_password\""),
        )
        .replace("request_throttle = \"60s\"", "request_throttle = \"1h\"")
        + &format!("\n[serve]\nforgot_per_ip = 100\nip_attempts = 100\n{extra}\n")
}

/// Ask for a link on the forgot page for each address; every answer is the neutral 200.
fn forgot(web: &Web, emails: &[String], lang: &str) {
    let page = web.get("/forgot_password");
    let (csrf, cookie) = (page.field("csrf"), page.cookie());
    for e in emails {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs([("email", e.as_str()), ("csrf", &csrf)])
            .finish();
        let r = crate::serve::http(
            web.addr,
            "POST",
            "/forgot_password",
            &[
                ("Content-Type", "application/x-www-form-urlencoded"),
                ("Accept-Language", lang),
                ("Cookie", &cookie),
            ],
            &body,
        );
        assert_eq!(r.status, 200, "{}", r.body);
    }
}

fn more_users(web: &Web, n: usize) -> Vec<String> {
    let others: Vec<String> = (2..=n)
        .map(|i| format!("user-{i:02}@example.com"))
        .collect();
    web.env.insert_users(&others);
    std::iter::once(EMAIL.to_owned()).chain(others).collect()
}

#[test]
fn serve_stopped_right_after_forgot_requests_sends_them_all_first() {
    let relay = slow_relay(300);
    let smtp = format!("{}\nconnections = 2", plain(&relay));
    let mut web = Web::start_with(|dir, port| web_toml(dir, port, &smtp, ""));
    let emails = more_users(&web, 20);
    forgot(&web, &emails, "en");
    let status = web.stop();
    assert_eq!(status.code(), Some(0), "{}", web.log());
    // Everyone asked, everyone mailed once, every link works: nobody is left throttled with
    // a link that never left.
    assert_finished(&web.env, &[&relay], &emails, 0);
    assert_eq!(
        web.env.i64("SELECT count(*) FROM pwreset_throttle") as usize,
        emails.len()
    );
}

#[test]
fn serve_withdraws_what_it_could_not_send_within_stop_timeout() {
    let relay = slow_relay(3000);
    let smtp = format!("{}\nconnections = 2", plain(&relay));
    let mut web = Web::start_with(|dir, port| web_toml(dir, port, &smtp, "stop_timeout = \"1s\""));
    let emails = more_users(&web, 4);
    forgot(&web, &emails, "en");
    // Both mail threads are in the middle of a message; two requests wait in the queue.
    wait_for_messages(&relay, 2);
    let status = web.stop();
    assert_eq!(status.code(), Some(0), "{}", web.log());
    let log = web.log();
    assert!(
        log.contains("2 link(s) whose mail had not gone out were withdrawn"),
        "{log}"
    );
    assert!(
        log.contains("2 forgot-password mail(s) were still going out"),
        "{log}"
    );
    assert!(
        log.contains("2 forgot-password request(s) were not served"),
        "{log}"
    );
    // Nothing usable, nobody throttled: the same users can get a link at once.
    assert!(usable_ids(&web.env).is_empty());
    assert_eq!(web.env.i64("SELECT count(*) FROM pwreset_throttle"), 0);
    let fast = Server::start(Options::default());
    switch_relay(&web.env, &relay, &fast);
    let mut args = vec!["request", "--json"];
    args.extend(emails.iter().map(String::as_str));
    let out = spawn(&web.env, &args).wait_with_output().expect("wait");
    assert_eq!(code(&out), Some(0), "{}", err(&out));
    assert_eq!(fast.log().messages.len(), emails.len());
}

#[test]
fn serve_forgot_mail_is_in_the_pages_language() {
    let mut web = Web::start("");
    forgot(&web, &[EMAIL.to_owned()], "de-DE,de;q=0.9,en;q=0.5");
    assert_eq!(web.stop().code(), Some(0), "{}", web.log());
    let mails = web.env.messages();
    assert_eq!(mails.len(), 1);
    assert!(mails[0].contains("Content-Language: de"), "{}", mails[0]);
    assert!(!mails[0].contains("Content-Language: en"), "{}", mails[0]);
}

#[test]
fn serve_forgot_with_the_relay_down_keeps_the_working_link_and_the_throttle() {
    // A port with nothing listening.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let smtp = format!("host = \"127.0.0.1\"\nport = {port}\ntls = \"none\"\ntimeout = \"5s\"");
    let mut web = Web::start_with(|dir, p| web_toml(dir, p, &smtp, ""));
    // A working link from earlier, made long enough ago that a new request may go out.
    let link = web.env.link(EMAIL);
    web.env
        .exec("UPDATE pwreset_throttle SET last_at = last_at - 7200");
    forgot(&web, &[EMAIL.to_owned()], "en");
    assert_eq!(web.stop().code(), Some(0), "{}", web.log());
    let log = web.log();
    assert!(log.contains("was not sent"), "{log}");
    assert!(!log.contains(EMAIL), "the log names no address: {log}");
    let old = token_id(&Env::token_of(&link));
    assert!(
        usable_ids(&web.env).contains(&old),
        "the link the user holds still works"
    );
    assert_eq!(usable_ids(&web.env).len(), 1);
    let audit = web
        .env
        .rows("SELECT actor, outcome FROM pwreset_audit WHERE action = 'request' ORDER BY id");
    assert_eq!(
        audit.last().map(|r| (r[0].as_deref(), r[1].as_deref())),
        Some((Some("web 127.0.0.1"), Some("failed"))),
        "{audit:?}"
    );
    let recent = crate::harness::unix_now() - 3600;
    assert_eq!(
        web.env.i64(&format!(
            "SELECT count(*) FROM pwreset_throttle WHERE last_at > {recent}"
        )),
        0,
        "an undelivered link does not count against the throttle"
    );
}

#[test]
fn serve_gives_a_link_to_a_user_a_killed_run_left_throttled() {
    // serve is already running when a bulk run is killed: it did not end that run at its own
    // start, so the forgot page must see that the run is dead when the throttle refuses.
    let relay = slow_relay(20);
    let smtp = format!("{}\nconnections = {CONNECTIONS}", plain(&relay));
    let mut web = Web::start_with(|dir, port| web_toml(dir, port, &smtp, ""));
    let emails = more_users(&web, 60);
    let mut child = spawn(&web.env, &["request", "--all", "--yes"]);
    wait_for_messages(&relay, 10);
    kill(&child, "KILL");
    assert_eq!(child.wait().expect("wait").code(), None, "killed");
    // A user whose link was issued and never mailed: throttled for an hour by a dead run.
    let (count, _) = mailed(&[&relay]);
    let pending = web.env.rows(
        "SELECT u.email FROM pwreset_tokens t JOIN users u ON u.id = t.user_id
          WHERE t.handed_over_at IS NULL AND t.revoked_at IS NULL ORDER BY t.id DESC",
    );
    let stranded = pending
        .iter()
        .filter_map(|r| r[0].clone())
        .find(|e| !count.contains_key(e))
        .expect("the killed run left a user with a link that never left");
    assert!(emails.contains(&stranded));
    let before = relay.log().messages.len();
    forgot(&web, std::slice::from_ref(&stranded), "en");
    assert_eq!(web.stop().code(), Some(0), "{}", web.log());
    let (count, newest) = mailed(&[&relay]);
    assert_eq!(
        count.get(&stranded),
        Some(&1),
        "mailed once, by the forgot page"
    );
    assert_eq!(relay.log().messages.len(), before + 1);
    let usable = usable_ids(&web.env);
    assert!(usable.contains(&token_id(&newest[&stranded])));
    let outcomes = web
        .env
        .rows("SELECT command, outcome FROM pwreset_runs ORDER BY id");
    assert!(
        outcomes
            .iter()
            .any(|r| r[0].as_deref() == Some("request") && r[1].as_deref() == Some("crashed")),
        "{outcomes:?}"
    );
}
