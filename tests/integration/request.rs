//! Integration tests for request.

use crate::harness::{Env, decode, default_toml, stderr, stdout};
use serde_json::Value;

const BASE: &str = "https://accounts.example.com/reset_password";

/// An initialised env with these users.
fn env_with(users: &[&str]) -> Env {
    let env = Env::new();
    env.init();
    for u in users {
        env.add_user(u);
    }
    env
}

/// stdout as one JSON object per line.
fn json_lines(out: &str) -> Vec<Value> {
    out.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

fn timestamp(v: &Value) -> jiff::Timestamp {
    v.as_str()
        .expect("a string")
        .parse()
        .expect("an RFC 3339 time")
}

fn now() -> i64 {
    jiff::Timestamp::now().as_second()
}

/// The `To:` header of a message.
fn to_header(eml: &str) -> &str {
    eml.lines()
        .find_map(|l| l.strip_prefix("To: "))
        .expect("a To: header")
}

#[test]
fn sends_one_message_to_the_stored_address() {
    let env = env_with(&["Alice@Example.com", "bob@example.com"]);
    let a = env
        .cmd()
        .args(["request", "alice@EXAMPLE.com"])
        .assert()
        .success();
    assert!(stdout(&a).contains("sent"), "{}", stdout(&a));
    let msgs = env.messages();
    assert_eq!(msgs.len(), 1);
    // The address as stored, not as typed.
    assert_eq!(to_header(&msgs[0]), "Alice@Example.com");
    assert!(!msgs[0].contains("alice@EXAMPLE.com"));
    // One token stored, as a digest only.
    let n = env.i64("SELECT count(*) FROM pwreset_tokens");
    // length() of a binary value is its bytes on every backend: a SHA-256.
    let digest_len = env.i64("SELECT max(length(digest)) FROM pwreset_tokens");
    assert_eq!((n, digest_len), (1, 32));
}

#[test]
fn full_width_look_alike_finds_the_user_and_mails_the_stored_address() {
    let env = env_with(&["alice@example.com"]);
    env.cmd()
        .args(["request", "\u{ff41}lice@example.com"])
        .assert()
        .success();
    let msgs = env.messages();
    assert_eq!(msgs.len(), 1);
    assert_eq!(to_header(&msgs[0]), "alice@example.com");
}

#[test]
fn unknown_user_is_67() {
    let env = env_with(&["alice@example.com"]);
    let a = env
        .cmd()
        .args(["request", "nobody@example.com"])
        .assert()
        .code(67);
    assert!(stderr(&a).contains("nobody@example.com"), "{}", stderr(&a));
    let a = env
        .cmd()
        .args(["request", "--json", "nobody@example.com"])
        .assert()
        .code(67);
    let lines = json_lines(&stdout(&a));
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["status"], "unknown_user");
    assert_eq!(lines[0]["email"], "nobody@example.com");
    assert!(env.messages().is_empty());
}

#[test]
fn invalid_email_is_65() {
    let env = env_with(&["alice@example.com"]);
    env.cmd()
        .args(["request", "not-an-address"])
        .assert()
        .code(65);
    let a = env
        .cmd()
        .args(["request", "--json", "alice@"])
        .assert()
        .code(65);
    let lines = json_lines(&stdout(&a));
    assert_eq!(lines[0]["status"], "invalid");
    assert!(lines[0]["error"].is_string(), "{:?}", lines[0]);
    assert!(env.messages().is_empty());
}

#[test]
fn throttle_is_75_and_force_skips_it() {
    let env = env_with(&["alice@example.com"]);
    env.cmd()
        .args(["request", "alice@example.com"])
        .assert()
        .success();
    let a = env
        .cmd()
        .args(["request", "alice@example.com"])
        .assert()
        .code(75);
    assert!(stderr(&a).contains("--force"), "{}", stderr(&a));
    let a = env
        .cmd()
        .args(["request", "--json", "alice@example.com"])
        .assert()
        .code(75);
    assert_eq!(json_lines(&stdout(&a))[0]["status"], "throttled");
    assert_eq!(env.messages().len(), 1, "a throttled request sent mail");
    env.cmd()
        .args(["request", "--force", "alice@example.com"])
        .assert()
        .success();
    assert_eq!(env.messages().len(), 2);
}

#[test]
fn zero_throttle_turns_it_off() {
    let env = Env::with_toml(|d| {
        default_toml(d).replace("request_throttle = \"60s\"", "request_throttle = \"0s\"")
    });
    env.init();
    env.add_user("alice@example.com");
    for _ in 0..2 {
        env.cmd()
            .args(["request", "alice@example.com"])
            .assert()
            .success();
    }
    assert_eq!(env.messages().len(), 2);
}

#[test]
fn a_new_token_revokes_the_old_one() {
    let env = env_with(&["alice@example.com"]);
    let old = env.link("alice@example.com");
    let new = env.link("alice@example.com");
    assert_ne!(old, new);
    let a = env.cmd().args(["verify", &old]).assert().code(1);
    assert!(stdout(&a).starts_with("revoked"), "{}", stdout(&a));
    let a = env.cmd().args(["verify", "--json", &old]).assert().code(1);
    let v: Value = serde_json::from_str(stdout(&a).trim()).unwrap();
    assert_eq!(v["status"], "revoked");
    env.cmd().args(["verify", &new]).assert().success();
}

#[test]
fn ttl_changes_expires_at() {
    let env = env_with(&["alice@example.com", "bob@example.com"]);
    let before = now();
    let a = env
        .cmd()
        .args(["request", "--json", "--ttl", "30m", "alice@example.com"])
        .assert()
        .success();
    let after = now();
    let v = &json_lines(&stdout(&a))[0];
    assert_eq!(v["status"], "sent");
    let exp = timestamp(&v["expires_at"]).as_second();
    assert!(
        (before + 1800..=after + 1800).contains(&exp),
        "expires_at {exp} not 30 minutes after {before}..{after}"
    );
    // The stored expiry is the same.
    let stored = env.i64("SELECT expires_at FROM pwreset_tokens");
    assert_eq!(stored, exp);
    // Without --ttl, the config's token_ttl (1h).
    let before = now();
    let a = env
        .cmd()
        .args(["request", "--json", "bob@example.com"])
        .assert()
        .success();
    let exp = timestamp(&json_lines(&stdout(&a))[0]["expires_at"]).as_second();
    assert!(
        (before + 3600..=now() + 3600).contains(&exp),
        "default ttl is not 1h"
    );
    // Nonsense or out-of-range durations are refused before anything happens.
    env.cmd()
        .args(["request", "--force", "--ttl", "soon", "alice@example.com"])
        .assert()
        .code(2);
    env.cmd()
        .args(["request", "--force", "--ttl", "1s", "alice@example.com"])
        .assert()
        .code(2);
}

#[test]
fn print_link_prints_and_still_sends() {
    let env = env_with(&["alice@example.com"]);
    let a = env
        .cmd()
        .args(["request", "--print-link", "alice@example.com"])
        .assert()
        .success();
    let out = stdout(&a);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 1, "{out}");
    let link = lines[0];
    assert!(link.starts_with(&format!("{BASE}?token=pwr_")), "{out}");
    let msgs = env.messages();
    assert_eq!(msgs.len(), 1);
    assert!(decode(&msgs[0]).contains(link), "the mail has another link");
    env.cmd().args(["verify", link]).assert().success();
}

#[test]
fn no_email_prints_the_link_and_sends_nothing() {
    let env = env_with(&["alice@example.com"]);
    let a = env
        .cmd()
        .args(["request", "--no-email", "alice@example.com"])
        .assert()
        .success();
    let out = stdout(&a);
    assert!(
        out.trim().starts_with(&format!("{BASE}?token=pwr_")),
        "{out}"
    );
    assert!(env.messages().is_empty());
    env.cmd().args(["verify", out.trim()]).assert().success();

    let a = env
        .cmd()
        .args([
            "request",
            "--no-email",
            "--force",
            "--json",
            "alice@example.com",
        ])
        .assert()
        .success();
    let v = &json_lines(&stdout(&a))[0];
    assert_eq!(v["status"], "created");
    assert!(v["link"].as_str().unwrap().starts_with(BASE), "{v}");
    assert!(env.messages().is_empty());
}

#[test]
fn json_is_one_object_per_line_with_the_contract_keys() {
    let env = env_with(&["alice@example.com", "bob@example.com"]);
    let a = env
        .cmd()
        .args(["request", "--json", "alice@example.com", "bob@example.com"])
        .assert()
        .success();
    let lines = json_lines(&stdout(&a));
    assert_eq!(lines.len(), 2);
    for (v, email) in lines.iter().zip(["alice@example.com", "bob@example.com"]) {
        let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(keys, ["email", "expires_at", "status"], "{v}");
        assert_eq!(v["email"], email);
        assert_eq!(v["status"], "sent");
        timestamp(&v["expires_at"]);
        assert!(
            v["expires_at"].as_str().unwrap().ends_with('Z'),
            "not UTC: {v}"
        );
    }
    // With --print-link the link comes along.
    let a = env
        .cmd()
        .args([
            "request",
            "--json",
            "--print-link",
            "--force",
            "alice@example.com",
        ])
        .assert()
        .success();
    let v = &json_lines(&stdout(&a))[0];
    assert!(v["link"].as_str().unwrap().starts_with(BASE), "{v}");
}

#[test]
fn several_users_one_result_each_and_the_worst_exit() {
    let env = env_with(&["alice@example.com", "bob@example.com"]);
    let a = env
        .cmd()
        .args([
            "request",
            "--json",
            "alice@example.com",
            "nobody@example.com",
        ])
        .assert()
        .code(67);
    let lines = json_lines(&stdout(&a));
    let statuses: Vec<&str> = lines
        .iter()
        .map(|v| v["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["sent", "unknown_user"]);
    assert_eq!(
        env.messages().len(),
        1,
        "the good address still got its mail"
    );

    // Bad input data outranks an unknown user.
    let a = env
        .cmd()
        .args([
            "request",
            "--json",
            "nobody@example.com",
            "bob@example.com",
            "bad-address",
        ])
        .assert()
        .code(65);
    let lines = json_lines(&stdout(&a));
    let statuses: Vec<&str> = lines
        .iter()
        .map(|v| v["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["unknown_user", "sent", "invalid"]);
    assert_eq!(env.messages().len(), 2);

    // Human output: every user mentioned once.
    let a = env
        .cmd()
        .args(["request", "--force", "alice@example.com", "bob@example.com"])
        .assert()
        .success();
    let out = stdout(&a);
    assert_eq!(out.lines().count(), 2, "{out}");
    assert_eq!(env.messages().len(), 4);
}

#[test]
fn from_file_skips_comments_and_blank_lines() {
    let env = env_with(&["alice@example.com", "bob@example.com", "carol@example.com"]);
    let file = env.dir.path().join("users.txt");
    std::fs::write(
        &file,
        "# users to reset\nalice@example.com\n\n   \n  bob@example.com  \n# carol@example.com\n",
    )
    .unwrap();
    let a = env
        .cmd()
        .arg("request")
        .arg("--json")
        .arg("--from-file")
        .arg(&file)
        .assert()
        .success();
    let lines = json_lines(&stdout(&a));
    let emails: Vec<&str> = lines.iter().map(|v| v["email"].as_str().unwrap()).collect();
    assert_eq!(emails, ["alice@example.com", "bob@example.com"]);
    assert_eq!(env.messages().len(), 2);
    let mut to: Vec<String> = env
        .messages()
        .iter()
        .map(|m| to_header(m).to_owned())
        .collect();
    to.sort();
    assert_eq!(to, ["alice@example.com", "bob@example.com"]);
}

#[test]
fn from_file_stdin() {
    let env = env_with(&["alice@example.com", "bob@example.com", "carol@example.com"]);
    let a = env
        .cmd()
        .args(["request", "--json", "--from-file", "-"])
        .write_stdin("# from a pipe\ncarol@example.com\n\nnobody@example.com\n")
        .assert()
        .code(67);
    let lines = json_lines(&stdout(&a));
    let statuses: Vec<(&str, &str)> = lines
        .iter()
        .map(|v| (v["email"].as_str().unwrap(), v["status"].as_str().unwrap()))
        .collect();
    assert_eq!(
        statuses,
        [
            ("carol@example.com", "sent"),
            ("nobody@example.com", "unknown_user")
        ]
    );
    assert_eq!(env.messages().len(), 1);
}

#[test]
fn from_file_that_does_not_exist_fails_cleanly() {
    let env = env_with(&["alice@example.com"]);
    let a = env
        .cmd()
        .args(["request", "--from-file", "/nonexistent/users.txt"])
        .assert()
        .failure();
    let code = a.get_output().status.code();
    assert!(matches!(code, Some(65 | 66 | 74)), "exit {code:?}");
    assert!(!stderr(&a).contains("panicked"));
    assert!(env.messages().is_empty());
}

#[test]
fn all_users() {
    let env = env_with(&["alice@example.com", "bob@example.com", "carol@example.com"]);
    let a = env
        .cmd()
        .args(["request", "--all", "--json"])
        .assert()
        .success();
    let lines = json_lines(&stdout(&a));
    assert_eq!(lines.len(), 3);
    assert!(lines.iter().all(|v| v["status"] == "sent"));
    let mut to: Vec<String> = env
        .messages()
        .iter()
        .map(|m| to_header(m).to_owned())
        .collect();
    to.sort();
    assert_eq!(
        to,
        ["alice@example.com", "bob@example.com", "carol@example.com"]
    );
    // --all cannot be combined with addresses.
    env.cmd()
        .args(["request", "--all", "alice@example.com"])
        .assert()
        .code(2);
}

#[test]
fn nothing_to_request_is_a_usage_error() {
    let env = env_with(&["alice@example.com"]);
    env.cmd().arg("request").assert().code(2);
}

#[test]
fn missing_base_url_is_a_config_error() {
    let env = Env::with_toml(|d| {
        default_toml(d)
            .lines()
            .filter(|l| !l.starts_with("base_url"))
            .collect::<Vec<_>>()
            .join("\n")
    });
    env.init();
    env.add_user("alice@example.com");
    let a = env
        .cmd()
        .args(["request", "alice@example.com"])
        .assert()
        .code(78);
    assert!(stderr(&a).contains("base_url"), "{}", stderr(&a));
    assert!(env.messages().is_empty());
    let n = env.i64("SELECT count(*) FROM pwreset_tokens");
    assert_eq!(n, 0, "a token was stored without a link to send");
}

#[test]
fn a_base_url_with_a_query_gets_the_token_appended() {
    let env = Env::with_toml(|d| {
        default_toml(d).replace(
            "base_url = \"https://accounts.example.com/reset_password\"",
            "base_url = \"https://accounts.example.com/reset?lang=de\"",
        )
    });
    env.init();
    env.add_user("alice@example.com");
    let link = env.link("alice@example.com");
    assert!(
        link.starts_with("https://accounts.example.com/reset?lang=de&token=pwr_"),
        "{link}"
    );
    env.cmd().args(["verify", &link]).assert().success();
}

#[test]
fn the_message() {
    let env = env_with(&["alice@example.com"]);
    let a = env
        .cmd()
        .args(["request", "--json", "--print-link", "alice@example.com"])
        .assert()
        .success();
    let v = &json_lines(&stdout(&a))[0];
    let link = v["link"].as_str().unwrap();
    let expires_at = v["expires_at"].as_str().unwrap();
    let msgs = env.messages();
    assert_eq!(msgs.len(), 1);
    let eml = &msgs[0];
    let (head, _) = eml
        .split_once("\r\n\r\n")
        .or_else(|| eml.split_once("\n\n"))
        .unwrap();
    let header = |name: &str| {
        head.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}: ")))
            .unwrap_or_else(|| panic!("no {name} header in\n{head}"))
            .to_owned()
    };
    assert!(
        header("Content-Type").starts_with("multipart/alternative"),
        "{head}"
    );
    assert_eq!(header("Auto-Submitted"), "auto-generated");
    let id = header("Message-ID");
    assert!(
        id.starts_with('<') && id.ends_with('>') && id.contains('@'),
        "{id}"
    );
    let date = header("Date");
    assert!(jiff::fmt::rfc2822::parse(&date).is_ok(), "Date: {date}");
    assert_eq!(header("From"), "Accounts <no-reply@example.com>");
    assert_eq!(header("To"), "alice@example.com");
    assert_eq!(header("Subject"), "Reset your Accounts password");
    assert_eq!(header("Content-Language"), "en");
    assert!(eml.contains("Content-Type: text/plain"), "no text part");
    assert!(eml.contains("Content-Type: text/html"), "no html part");

    let body = decode(eml);
    assert!(body.contains(link), "no link in\n{body}");
    // The expiry as an absolute UTC time, not just "in 60 minutes".
    assert!(expires_at.ends_with('Z'));
    assert!(body.contains(expires_at), "no {expires_at} in\n{body}");
    assert!(body.contains("UTC"), "{body}");
    // Each message has its own Message-ID.
    env.cmd()
        .args(["request", "--force", "alice@example.com"])
        .assert()
        .success();
    let ids: std::collections::BTreeSet<String> = env
        .messages()
        .iter()
        .map(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("Message-ID: "))
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(ids.len(), 2, "{ids:?}");
    assert!(ids.contains(&id));
}

#[test]
fn the_token_is_not_stored_in_clear() {
    let env = env_with(&["alice@example.com"]);
    let link = env.link("alice@example.com");
    let token = Env::token_of(&link);
    // No value in pwreset's tables holds the token or its secret half.
    for table in [
        "pwreset_tokens",
        "pwreset_audit",
        "pwreset_throttle",
        "users",
    ] {
        for row in env.rows(&format!("SELECT * FROM {table}")) {
            for value in row.into_iter().flatten() {
                assert!(
                    !value.contains(&token) && !value.contains(&token[4..24]),
                    "the token is in {table}: {value}"
                );
            }
        }
    }
    // Nor anywhere in SQLite's file and its write-ahead log, whatever the table.
    if env.sqlite_only("reading the database file's bytes") {
        return;
    }
    let db = std::fs::read(&env.db).expect("read the database file");
    let wal = std::fs::read(env.db.with_extension("db-wal")).unwrap_or_default();
    for bytes in [db, wal] {
        assert!(
            !bytes.windows(token.len()).any(|w| w == token.as_bytes()),
            "the token is in the database file"
        );
        assert!(!bytes.windows(20).any(|w| w == &token.as_bytes()[4..24]));
    }
}

#[test]
fn request_to_a_user_in_an_application_table() {
    let env = Env::with_toml(|d| {
        format!(
            "{}\n[users]\ntable = \"accounts\"\nid_column = \"account_id\"\nemail_column = \"mail\"\npassword_column = \"pw_hash\"\n",
            default_toml(d)
        )
    });
    env.exec(
        "CREATE TABLE accounts (account_id INTEGER PRIMARY KEY, mail VARCHAR(254) NOT NULL, pw_hash TEXT);
         INSERT INTO accounts (account_id, mail) VALUES (42, 'Dave@Example.com');",
    );
    env.init();
    env.cmd()
        .args(["request", "dave@example.COM"])
        .assert()
        .success();
    let msgs = env.messages();
    assert_eq!(msgs.len(), 1);
    assert_eq!(to_header(&msgs[0]), "Dave@Example.com");
    assert_eq!(env.i64("SELECT user_id FROM pwreset_tokens"), 42);
}

#[test]
fn bulk_no_email_prints_links_in_input_order_across_chunks() {
    // More users than one write transaction holds, listed in an order unlike their ids.
    let env = Env::new();
    env.init();
    let mut list: Vec<String> = (1..=2500).map(|i| format!("u{i}@example.com")).collect();
    env.insert_users(&list);
    list.reverse();
    let a = env
        .cmd()
        .args(["request", "--no-email", "--from-file", "-"])
        .write_stdin(list.join("\n"))
        .assert()
        .success();
    let links: Vec<String> = stdout(&a).lines().map(str::to_owned).collect();
    assert_eq!(links.len(), 2500);
    assert!(
        stderr(&a).contains("requested 2,500: 2,500 created"),
        "{}",
        stderr(&a)
    );
    // Every token's owner in one query (not one client run per link on a server).
    let owner: std::collections::HashMap<String, String> = env
        .rows("SELECT t.id, u.email FROM pwreset_tokens t JOIN users u ON u.id = t.user_id")
        .into_iter()
        .map(|r| {
            let mut r = r.into_iter().map(|v| v.expect("not NULL"));
            (r.next().expect("id"), r.next().expect("email"))
        })
        .collect();
    for (i, link) in links.iter().enumerate() {
        let token = pwreset::token::Token::parse_input(link).expect("a link");
        let email = owner.get(&token.id().to_string()).expect("the token's row");
        assert_eq!(email, &list[i], "line {i}");
    }
    assert!(env.messages().is_empty());
}

#[test]
fn an_undelivered_link_does_not_count_towards_the_throttle() {
    // A port nothing listens on: bind, note the port, close.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let env = Env::with_toml(|dir| {
        default_toml(dir).replace("transport = \"file\"", "transport = \"smtp\"")
            + &format!(
                "[mail.smtp]\nhost = \"127.0.0.1\"\nport = {port}\ntls = \"none\"\ntimeout = \"5s\"\n"
            )
    });
    env.init();
    env.add_user("alice@example.com");
    for _ in 0..2 {
        let a = env
            .cmd()
            .args(["request", "--json", "alice@example.com"])
            .assert()
            .code(75);
        let v = &json_lines(&stdout(&a))[0];
        assert_eq!(v["status"], "failed", "{v}");
    }
}

/// An env whose config points `template_dir` at a folder holding `files`.
fn env_with_templates(files: &[(&str, &str)]) -> Env {
    let env = Env::with_toml(|dir| {
        let templates = dir.join("templates");
        std::fs::create_dir_all(&templates).expect("mkdir");
        for (name, text) in files {
            std::fs::write(templates.join(name), text).expect("template");
        }
        default_toml(dir).replace(
            "[mail]\n",
            &format!("[mail]\ntemplate_dir = \"{}\"\n", templates.display()),
        )
    });
    env.init();
    env.add_user("alice@example.com");
    env
}

#[test]
fn templates_in_template_dir_override_the_built_in_ones() {
    let env = env_with_templates(&[(
        "reset.txt",
        "Bonjour {{ email }}, votre lien : {{ link }} (valable jusqu'au {{ expires_at }})\n",
    )]);
    env.cmd()
        .args(["request", "alice@example.com"])
        .assert()
        .success();
    let msg = decode(&env.messages()[0]);
    assert!(msg.contains("Bonjour alice@example.com, votre lien : https://accounts.example.com/reset_password?token=pwr_"), "{msg}");
    // reset.html was not overridden: the built-in one is used.
    assert!(msg.contains("Choose a new password"), "{msg}");
}

#[test]
fn a_template_with_an_unknown_variable_stops_before_any_token() {
    for (name, text) in [
        ("reset.txt", "Your link: {{ lnk }}\n"),
        ("changed.html", "<p>{{ expires_at }}</p>\n"),
        ("reset.html", "{% if %}broken\n"),
    ] {
        let env = env_with_templates(&[(name, text)]);
        let a = env
            .cmd()
            .args(["request", "alice@example.com"])
            .assert()
            .code(78);
        assert!(stderr(&a).contains(name), "{name}: {}", stderr(&a));
        let tokens = env.i64("SELECT count(*) FROM pwreset_tokens");
        assert_eq!(tokens, 0, "{name}: no token without a message");
        assert!(env.messages().is_empty());
    }
}

#[test]
fn the_same_address_many_times_is_one_link_and_one_summary_line() {
    let env = Env::new();
    env.init();
    env.add_user("alice@example.com");
    let list = env.dir.path().join("list.txt");
    std::fs::write(&list, "alice@example.com\n".repeat(100_000)).expect("write list");
    let a = env
        .cmd()
        .args(["request", "--no-email", "--from-file"])
        .arg(&list)
        .assert()
        .success();
    let err = stderr(&a);
    assert!(err.contains("99,999 duplicate lines skipped"), "{err}");
    assert!(err.lines().count() < 5, "{err}");
    assert_eq!(stdout(&a).lines().count(), 1);
    // The details are there for whoever asks.
    std::fs::write(&list, "alice@example.com\nALICE@example.com\n").expect("write list");
    let a = env
        .cmd()
        .args(["request", "-v", "--no-email", "--force", "--from-file"])
        .arg(&list)
        .assert()
        .success();
    assert!(
        stderr(&a).contains("ALICE@example.com is listed more than once"),
        "{}",
        stderr(&a)
    );
    assert!(
        stderr(&a).contains("1 duplicate line skipped"),
        "{}",
        stderr(&a)
    );
}

/// A re-request whose mail fails leaves the user's delivered, working link alone: older links
/// are revoked only once the new message was taken for delivery.
#[test]
fn a_failed_re_request_keeps_the_working_link_and_audit_says_sent_or_created() {
    let env = Env::new();
    env.init();
    env.add_user("alice@example.com");
    env.cmd()
        .args(["request", "alice@example.com"])
        .assert()
        .success();
    let first = env.messages().pop().expect("the first mail");
    let link = crate::harness::decode(&first)
        .lines()
        .find(|l| l.starts_with("https://"))
        .expect("a link")
        .trim()
        .to_owned();
    env.cmd().args(["verify", &link]).assert().code(0);
    // The next delivery fails: sendmail refuses the message.
    let config = std::fs::read_to_string(&env.config).expect("config");
    env.set_config(&format!(
        "{}\n[mail.sendmail]\ncommand = \"/bin/false\"\n",
        config.replace("transport = \"file\"", "transport = \"sendmail\"")
    ));
    let a = env
        .cmd()
        .args(["request", "--force", "alice@example.com"])
        .assert()
        .code(69);
    assert!(stderr(&a).contains("failed"), "{}", stderr(&a));
    let a = env.cmd().args(["verify", &link]).assert().code(0);
    assert!(stdout(&a).starts_with("valid"), "{}", stdout(&a));
    // Delivered now: the older link is superseded.
    env.set_config(&config);
    env.cmd()
        .args(["request", "--force", "alice@example.com"])
        .assert()
        .success();
    let a = env.cmd().args(["verify", &link]).assert().code(1);
    assert!(stdout(&a).contains("superseded"), "{}", stdout(&a));
    let outcomes: Vec<String> = env
        .rows("SELECT outcome FROM pwreset_audit WHERE action = 'request' ORDER BY id")
        .into_iter()
        .filter_map(|r| r.into_iter().next().flatten())
        .collect();
    assert_eq!(outcomes, ["sent", "failed", "sent"]);
    env.cmd()
        .args(["request", "--force", "--no-email", "alice@example.com"])
        .assert()
        .success();
    assert_eq!(
        env.text(
            "SELECT outcome FROM pwreset_audit WHERE action = 'request' ORDER BY id DESC LIMIT 1"
        ),
        Some("created".to_string())
    );
}

/// The rule for bulk output: one summary line with every status counted and explained, the
/// first few failing lines, and no line per success or per throttled user (those with -v, and
/// every user with --json).
#[test]
fn a_bulk_run_prints_a_summary_not_a_line_per_user() {
    let env = Env::new();
    env.init();
    let users: Vec<String> = (0..40).map(|i| format!("user{i}@example.com")).collect();
    env.insert_users(&users);
    env.cmd().args(["request", "--all"]).assert().success();
    // Again: everyone is throttled.
    let a = env.cmd().args(["request", "--all"]).assert().code(75);
    let err = stderr(&a);
    assert!(
        err.contains(
            "requested 40: 0 sent, 40 throttled (requested less than 1m ago; --force to override)"
        ),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    assert_eq!(stdout(&a), "");
    // Unknown addresses: the first ten shown, the rest counted.
    let list: Vec<String> = (0..25).map(|i| format!("nobody{i}@example.com")).collect();
    let a = env
        .cmd()
        .args(["request", "--from-file", "-"])
        .write_stdin(list.join("\n"))
        .assert()
        .code(67);
    let err = stderr(&a);
    assert_eq!(
        err.lines()
            .filter(|l| l.starts_with("unknown_user:"))
            .count(),
        10,
        "{err}"
    );
    assert!(
        err.contains("25 unknown_user; 15 lines not shown (-v lists every user)"),
        "{err}"
    );
    let a = env
        .cmd()
        .args(["-v", "request", "--from-file", "-"])
        .write_stdin(list.join("\n"))
        .assert()
        .code(67);
    assert_eq!(
        stderr(&a)
            .lines()
            .filter(|l| l.starts_with("unknown_user:"))
            .count(),
        25
    );
}

#[test]
fn dry_run_says_who_would_get_a_link_and_changes_nothing() {
    let env = Env::new();
    env.init();
    env.add_user("alice@example.com");
    env.add_user("bob@example.com");
    let tokens = env.i64("SELECT count(*) FROM pwreset_tokens");
    let audit = env.i64("SELECT count(*) FROM pwreset_audit");
    let a = env
        .cmd()
        .args(["request", "--dry-run", "--all"])
        .assert()
        .success();
    assert!(
        stderr(&a).contains("requested 2: 2 would_send"),
        "{}",
        stderr(&a)
    );
    let a = env
        .cmd()
        .args([
            "request",
            "--dry-run",
            "--json",
            "alice@example.com",
            "nobody@example.com",
        ])
        .assert()
        .code(67);
    let lines: Vec<Value> = stdout(&a)
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    assert_eq!(lines[0]["status"], "would_send");
    assert_eq!(lines[1]["status"], "unknown_user");
    assert_eq!(env.i64("SELECT count(*) FROM pwreset_tokens"), tokens);
    assert_eq!(env.i64("SELECT count(*) FROM pwreset_audit"), audit);
    assert!(env.messages().is_empty());
}

/// One statement decides the throttle for many users: when some of them are throttled, the
/// others still get their links, and the throttled ones get none.
#[test]
fn a_run_with_some_users_throttled_serves_the_others() {
    let env = env_with(&["alice@example.com", "bob@example.com", "carol@example.com"]);
    env.link("bob@example.com");
    let a = env
        .cmd()
        .args(["request", "--json", "--no-email"])
        .args(["alice@example.com", "bob@example.com", "carol@example.com"])
        .assert()
        .code(75);
    let statuses: Vec<(String, String)> = json_lines(&stdout(&a))
        .iter()
        .map(|l| {
            (
                l["email"].as_str().unwrap_or_default().to_owned(),
                l["status"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        statuses,
        [
            ("alice@example.com".to_owned(), "created".to_owned()),
            ("bob@example.com".to_owned(), "throttled".to_owned()),
            ("carol@example.com".to_owned(), "created".to_owned()),
        ]
    );
    for (email, tokens) in [
        ("alice@example.com", 1),
        ("bob@example.com", 1),
        ("carol@example.com", 1),
    ] {
        assert_eq!(
            env.i64(&format!(
                "SELECT count(*) FROM pwreset_tokens t JOIN users u ON u.id = t.user_id
                  WHERE u.email = '{email}'"
            )),
            tokens,
            "{email}"
        );
    }
}
