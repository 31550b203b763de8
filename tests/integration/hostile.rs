//! Hostile input through the real binary: whatever arrives as a token, a link, an address, a
//! password, a stdin line or a config file, pwreset answers with the contract's exit code and a
//! clean message. It never panics (no 101, no "panicked"), never sends mail for bad input, and
//! never lets an escape sequence from the database reach the terminal raw.

use crate::harness::{BIN, Env};
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::{Command as StdCommand, Stdio};
use std::time::Duration;

/// Long enough for any one command on a loaded machine; only a hang gets near it.
const TIMEOUT: Duration = Duration::from_secs(60);
const TEN_MB: usize = 10 << 20;
const PASSWORD: &str = "correct horse battery staple";

/// Token input: an argument, or bytes on stdin (read when there is no argument).
#[derive(Clone)]
enum Input {
    Arg(OsString),
    Stdin(Vec<u8>),
}

fn arg(s: impl AsRef<OsStr>) -> Input {
    Input::Arg(s.as_ref().to_owned())
}

fn stdin(b: impl Into<Vec<u8>>) -> Input {
    Input::Stdin(b.into())
}

/// One invocation: its name, its arguments, its stdin.
type Run<'a> = (String, Vec<&'a OsStr>, Option<&'a [u8]>);

/// The exit code, after checking the process did not panic.
fn code(what: &str, out: &std::process::Output) -> i32 {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{what}: panicked: {err}");
    let code = out
        .status
        .code()
        .unwrap_or_else(|| panic!("{what}: killed by a signal: {:?}", out.status));
    assert_ne!(code, 101, "{what}: exit 101 (a panic): {err}");
    code
}

/// Neither stream carries a raw ESC, any other C0 or C1 control (but the line breaks and tabs
/// we print ourselves), or a bidi or zero-width mark.
fn assert_no_raw_controls(what: &str, out: &std::process::Output) {
    let raw = |c: char| {
        (c.is_control() && c != '\n' && c != '\t')
            || matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    };
    for (name, bytes) in [("stdout", &out.stdout), ("stderr", &out.stderr)] {
        let text = String::from_utf8_lossy(bytes);
        assert!(
            !text.chars().any(raw),
            "{what}: raw control character on {name}: {text:?}"
        );
    }
}

/// A command of the environment with a timeout, so a hang fails instead of blocking the suite.
fn run(env: &Env, args: &[&OsStr], input: Option<&[u8]>) -> std::process::Output {
    let mut c = env.cmd();
    c.args(args).timeout(TIMEOUT);
    // Without input, assert_cmd gives the child a stdin that is already at end of file.
    if let Some(bytes) = input {
        c.write_stdin(bytes.to_vec());
    }
    c.output().expect("run pwreset")
}

fn os(s: &str) -> &OsStr {
    OsStr::new(s)
}

fn token_rows(env: &Env) -> i64 {
    env.i64("SELECT count(*) FROM pwreset_tokens")
}

fn user_rows(env: &Env) -> i64 {
    env.i64("SELECT count(*) FROM users")
}

fn password_hash(env: &Env, email: &str) -> Option<String> {
    env.one(&format!(
        "SELECT password_hash FROM users WHERE email = {}",
        env.quote(email)
    ))
}

fn alice() -> Env {
    let env = Env::new();
    env.init().add_user("alice@example.com");
    env
}

/// verify and reset answer every kind of hostile token input with 1 (malformed, or unknown for
/// the well-formed one), never 2, 65 or 101, and never echo the input's control characters.
#[test]
fn verify_and_reset_answer_hostile_token_input_with_1() {
    let env = alice();
    let link = env.link("alice@example.com");
    let token = Env::token_of(&link);
    let base = "https://accounts.example.com/reset_password";
    let huge_line = {
        let mut v = vec![b'a'; TEN_MB];
        v.push(b'\n');
        v
    };
    let mut garbage: Vec<u8> = (0..64 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    garbage.push(b'\n');
    let with_nul = format!("{}\0{}\n", &token[..20], &token[21..]);
    let mut cases: Vec<(&str, Input)> = vec![
        ("empty argument", arg("")),
        ("empty stdin", stdin(Vec::new())),
        ("just a newline on stdin", stdin(b"\n".to_vec())),
        ("10 MB on stdin, no newline", stdin(vec![b'a'; TEN_MB])),
        ("10 MB line on stdin", stdin(huge_line)),
        (
            "100 KB argument",
            arg("pwr_".to_owned() + &"A".repeat(100 * 1024)),
        ),
        (
            "invalid UTF-8 argument",
            arg(OsStr::from_bytes(b"pwr_\xff\xfe\xfd\x80invalid")),
        ),
        (
            "invalid UTF-8 token-length argument",
            arg(OsStr::from_bytes(
                &[b"pwr_".as_slice(), &[0xffu8; 48]].concat(),
            )),
        ),
        ("binary garbage on stdin", stdin(garbage)),
        ("NUL inside a token on stdin", stdin(with_nul.into_bytes())),
        ("only NULs on stdin", stdin(vec![0u8; 100])),
        (
            "ANSI escapes around a token",
            arg(format!("\x1b[31m{token}\x1b[0m")),
        ),
        (
            "ANSI escapes on stdin",
            stdin(format!("\x1b]0;owned\x07\x1b[2J{token}\n").into_bytes()),
        ),
        ("a link without a token", arg(format!("{base}?lang=de"))),
        ("a link with an empty token", arg(format!("{base}?token="))),
        (
            "a link with a cut token",
            arg(format!("{base}?token=pwr_abc")),
        ),
        ("a link with no query", arg(base)),
        ("-token", arg("-token")),
        ("--token", arg("--token")),
        ("--token=<token>", arg(format!("--token={token}"))),
        ("-<token>", arg(format!("-{token}"))),
        ("a token after --", arg(format!("--{token}"))),
        (
            "CRLF and a header inside an argument",
            arg(format!("{token}\r\nBcc: evil@example.com")),
        ),
        (
            "CR inside a token",
            arg(format!("{}\r{}", &token[..10], &token[10..])),
        ),
        ("a lone CRLF on stdin", stdin(b"\r\n".to_vec())),
        (
            "CRLF-separated garbage on stdin",
            stdin(format!("\r\n{token}\r\n").into_bytes()),
        ),
        (
            "a token of the right length and alphabet with a wrong checksum",
            arg(format!("pwr_{}", "A".repeat(token.len() - 4))),
        ),
    ];
    // A token with a correct checksum that was never issued: unknown, still 1.
    let unknown = {
        let env2 = alice();
        Env::token_of(&env2.link("alice@example.com"))
    };
    cases.push(("an unknown token", arg(&unknown)));

    for (name, input) in &cases {
        let runs: Vec<Run<'_>> = match input {
            Input::Arg(a) => vec![
                ("verify".into(), vec![os("verify"), a.as_os_str()], None),
                (
                    "verify --json".into(),
                    vec![os("verify"), os("--json"), a.as_os_str()],
                    None,
                ),
                ("reset".into(), vec![os("reset"), a.as_os_str()], None),
                (
                    "reset --password-stdin".into(),
                    vec![os("reset"), os("--password-stdin"), a.as_os_str()],
                    Some(b"correct horse battery staple\n".as_slice()),
                ),
            ],
            Input::Stdin(bytes) => vec![
                ("verify".into(), vec![os("verify")], Some(bytes.as_slice())),
                (
                    "verify -".into(),
                    vec![os("verify"), os("-")],
                    Some(bytes.as_slice()),
                ),
                ("reset".into(), vec![os("reset")], Some(bytes.as_slice())),
            ],
        };
        for (cmd, args, input) in runs {
            let what = format!("{cmd} with {name}");
            let out = run(&env, &args, input);
            assert_eq!(
                code(&what, &out),
                1,
                "{what}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert_no_raw_controls(&what, &out);
            let all = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(
                all.contains("malformed") || all.contains("unknown"),
                "{what}: {all}"
            );
            if cmd == "verify --json" {
                let v: serde_json::Value =
                    serde_json::from_slice(&out.stdout).expect("verify --json prints JSON");
                let status = v["status"].as_str().expect("status");
                assert!(status == "malformed" || status == "unknown", "{what}: {v}");
            }
        }
    }

    // None of that touched the real token or the password.
    env.cmd().args(["verify", &token]).assert().code(0);
    assert_eq!(password_hash(&env, "alice@example.com"), None);
    assert!(env.messages().is_empty());
}

/// A real token with the line endings a paste brings along still works: verify 0, and reset
/// reading the token from stdin gets as far as asking for a terminal (2, as the contract says for
/// no terminal) instead of hanging (it used to lock stdin twice and deadlock).
#[test]
fn pasted_line_endings_are_tolerated_and_reset_reads_the_token_from_stdin() {
    let env = alice();
    let token = Env::token_of(&env.link("alice@example.com"));
    for ending in ["\n", "\r\n", "", "  \t\n"] {
        let line = format!("{token}{ending}");
        let out = run(&env, &[os("verify")], Some(line.as_bytes()));
        assert_eq!(code("verify", &out), 0, "ending {ending:?}");
    }
    let out = run(
        &env,
        &[os("reset")],
        Some(format!("{token}\r\n").as_bytes()),
    );
    assert_eq!(code("reset, token on stdin", &out), 2);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--password-stdin"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    env.cmd().args(["verify", &token]).assert().code(0);
}

/// A command whose stdout or stderr is a pipe nobody reads any more: no panic (std's eprintln!
/// panics on EPIPE, exit 101), and verify's exit status is still the answer (a closed stdout
/// used to turn "malformed" into 0, which means valid).
#[test]
fn closed_output_pipes_never_panic_or_change_the_answer() {
    let env = alice();
    let token = Env::token_of(&env.link("alice@example.com"));
    let cases: [(&[&str], i32); 5] = [
        (&["verify", "pwr_not_a_token"], 1),
        (&["verify", "--json", "pwr_not_a_token"], 1),
        (&["verify", token.as_str()], 0),
        (&["user", "add", "not an address"], 65),
        (&["request", "nobody@example.com"], 67),
    ];
    for (args, want) in cases {
        for closed in ["stdout", "stderr", "both"] {
            let (reader, writer) = std::io::pipe().expect("pipe");
            drop(reader);
            let mut c = StdCommand::new(BIN);
            c.env_clear()
                .env("PATH", std::env::var_os("PATH").unwrap_or_default())
                .env("HOME", env.dir.path())
                .env("USER", "tester")
                .arg("--config")
                .arg(&env.config)
                .args(args)
                .stdin(Stdio::null());
            match closed {
                "stdout" => {
                    c.stdout(writer).stderr(Stdio::piped());
                }
                "stderr" => {
                    c.stderr(writer).stdout(Stdio::piped());
                }
                _ => {
                    let w2 = writer.try_clone().expect("clone pipe");
                    c.stdout(writer).stderr(w2);
                }
            }
            let out = c.output().expect("run pwreset");
            let what = format!("{args:?} with {closed} closed");
            assert_eq!(code(&what, &out), want, "{what}");
        }
    }
}

/// Addresses built to inject headers, smuggle NULs, overflow, or look like someone else's are
/// refused with 65 by `user add` and `request`; nobody is added, no token is stored, no mail is
/// written.
#[test]
fn hostile_addresses_are_refused_with_65_and_nothing_is_sent() {
    let env = alice();
    let long = format!("{}@example.com", "a".repeat(300));
    let long_domain = format!("a@{}.com", "b".repeat(300));
    let cases: Vec<(&str, OsString)> = vec![
        (
            "CRLF header injection",
            "alice@example.com\r\nBcc: evil@example.com".into(),
        ),
        (
            "LF header injection",
            "alice@example.com\nBcc: evil@example.com".into(),
        ),
        (
            "CR header injection",
            "alice@example.com\rBcc: evil@example.com".into(),
        ),
        (
            "encoded line separator injection",
            "alice@example.com\u{2028}Bcc: evil@example.com".into(),
        ),
        ("NEL", "alice@example.com\u{85}Bcc: evil@example.com".into()),
        ("ESC", "\x1b[31malice@example.com".into()),
        ("300-character local part", long.into()),
        ("300-character domain", long_domain.into()),
        (
            "invalid UTF-8",
            OsStr::from_bytes(b"alice\xff\xfe@example.com").to_owned(),
        ),
        (
            "lone continuation bytes",
            OsStr::from_bytes(b"\x80\x80@example.com").to_owned(),
        ),
        ("zero-width space", "alice\u{200b}@example.com".into()),
        (
            "right-to-left override",
            "ali\u{202e}ecil@example.com".into(),
        ),
        ("byte order mark", "\u{feff}alice@example.com".into()),
        ("soft hyphen", "al\u{ad}ice@example.com".into()),
        ("Cyrillic a", "\u{430}lice@example.com".into()),
        ("Cyrillic e in the domain", "alice@\u{435}xample.com".into()),
        ("Greek alpha", "\u{3b1}lice@example.com".into()),
        (
            "two addresses",
            "alice@example.com, evil@example.com".into(),
        ),
        ("display name", "Alice <alice@example.com>".into()),
        ("empty", "".into()),
    ];
    let users_before = user_rows(&env);
    for (name, email) in &cases {
        for sub in [
            &["user", "add"][..],
            &["request"][..],
            &["request", "--json"][..],
            &["audit", "--user"][..],
        ] {
            let mut args: Vec<&OsStr> = sub.iter().map(|s| os(s)).collect();
            args.push(email.as_os_str());
            let out = run(&env, &args, None);
            let what = format!("{sub:?} with {name}");
            assert_eq!(
                code(&what, &out),
                65,
                "{what}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert_no_raw_controls(&what, &out);
            if sub.contains(&"--json") {
                let v: serde_json::Value =
                    serde_json::from_slice(&out.stdout).expect("request --json prints JSON");
                assert_eq!(v["status"], "invalid", "{what}: {v}");
            }
        }
    }
    // Addresses that match alice's under NFKC and case folding are hers: user add refuses them.
    for twin in [
        "ALICE@EXAMPLE.COM",
        "\u{ff41}lice@example.com",
        "\u{ff21}\u{ff2c}\u{ff29}\u{ff23}\u{ff25}@example.com",
    ] {
        let out = run(&env, &[os("user"), os("add"), os(twin)], None);
        assert_eq!(code(twin, &out), 65, "{twin}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("already exists"),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // A display name gets the same treatment.
    for name in [
        OsStr::from_bytes(b"Bob \xff\xfe"),
        OsStr::new("Bob\r\nBcc: evil@example.com"),
        OsStr::new("Bob\x1b[2J"),
    ] {
        let out = run(
            &env,
            &[
                os("user"),
                os("add"),
                os("bob@example.com"),
                os("--name"),
                name,
            ],
            None,
        );
        assert_eq!(code("--name", &out), 65, "{name:?}: {}", stderr_of(&out));
    }
    assert_eq!(user_rows(&env), users_before);
    assert_eq!(token_rows(&env), 0);
    assert!(env.messages().is_empty(), "{:?}", env.messages());
}

/// `request --from-file` with a 10 MB line, binary garbage, or a NUL: 65, nothing sent, nothing
/// stored, even for a good address on an earlier line of the same file.
#[test]
fn hostile_from_file_input_is_refused_with_65() {
    let env = alice();
    let dir = env.dir.path();
    let mut garbage: Vec<u8> = (0..256 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
        .collect();
    garbage.extend_from_slice(b"\n");
    let files: Vec<(&str, Vec<u8>)> = vec![
        ("a 10 MB line", vec![b'a'; TEN_MB]),
        (
            "a good line, then a 10 MB line",
            [b"alice@example.com\n".as_slice(), &vec![b'x'; TEN_MB]].concat(),
        ),
        ("binary garbage", garbage),
        (
            "invalid UTF-8 after a good line",
            b"alice@example.com\n\xff\xfe\xfd@example.com\n".to_vec(),
        ),
        ("a NUL in an address", b"alice@example.com\0\n".to_vec()),
        (
            "a header injection line",
            b"alice@example.com\rBcc: evil@example.com\n".to_vec(),
        ),
    ];
    for (i, (name, bytes)) in files.iter().enumerate() {
        let path = dir.join(format!("list-{i}.txt"));
        std::fs::write(&path, bytes).expect("write list");
        let out = run(
            &env,
            &[os("request"), os("--from-file"), path.as_os_str()],
            None,
        );
        assert_eq!(code(name, &out), 65, "{name}: {}", stderr_of(&out));
        assert_no_raw_controls(name, &out);
        let out = run(
            &env,
            &[os("request"), os("--from-file"), os("-")],
            Some(bytes),
        );
        assert_eq!(code(name, &out), 65, "{name} on stdin: {}", stderr_of(&out));
    }
    assert_eq!(token_rows(&env), 0);
    assert!(env.messages().is_empty());
}

fn stderr_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `reset --password-stdin` with a 10 MB line, a NUL, invalid UTF-8 and other junk: 65, the
/// password untouched, the token still valid.
#[test]
fn hostile_passwords_on_stdin_are_refused_and_the_token_survives() {
    let env = alice();
    let token = Env::token_of(&env.link("alice@example.com"));
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "a 10 MB line",
            [vec![b'a'; TEN_MB], b"\n".to_vec()].concat(),
        ),
        ("10 MB, no newline", vec![b'b'; TEN_MB]),
        ("a NUL", b"correct horse\0battery staple\n".to_vec()),
        (
            "invalid UTF-8",
            b"correct horse \xff\xfe battery staple\n".to_vec(),
        ),
        (
            "an escape sequence",
            b"correct horse \x1b[2J battery staple\n".to_vec(),
        ),
        ("a CR inside", b"correct horse\rbattery staple\n".to_vec()),
        ("nothing", Vec::new()),
        ("an empty line", b"\n".to_vec()),
        (
            "one character over max_length",
            [vec![b'x'; 1025], b"\n".to_vec()].concat(),
        ),
    ];
    for (name, bytes) in &cases {
        let out = run(
            &env,
            &[os("reset"), os("--password-stdin"), os(&token)],
            Some(bytes),
        );
        assert_eq!(code(name, &out), 65, "{name}: {}", stderr_of(&out));
        assert_no_raw_controls(name, &out);
        assert_eq!(password_hash(&env, "alice@example.com"), None, "{name}");
    }
    env.cmd().args(["verify", &token]).assert().code(0);
    // And the token still does its job.
    env.cmd()
        .args(["reset", "--password-stdin", &token])
        .write_stdin(format!("{PASSWORD}\n"))
        .assert()
        .code(0);
}

/// Config files that are not config: garbage, binary, huge, infinite, nested past any sense, a
/// folder. 78 with a message naming the file, for a command that needs the config.
#[test]
fn config_files_that_are_not_config_exit_78() {
    let env = alice();
    let dir = env.dir.path();
    let mut binary: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 9) as u8)
        .collect();
    binary[0] = 0xff;
    let files: Vec<(&str, Vec<u8>)> = vec![
        ("binary garbage", binary),
        ("NULs", vec![0u8; 4096]),
        (
            "invalid UTF-8 in a value",
            b"database = \"\xff\xfe\"\n".to_vec(),
        ),
        ("a NUL in a string", b"database = \"a\0b\"\n".to_vec()),
        ("an escape in a key", b"\x1b[2J = 1\n".to_vec()),
        ("11 MB of comments", {
            let mut v = Vec::with_capacity(11 << 20);
            while v.len() < 11 << 20 {
                v.extend_from_slice(b"# padding padding padding padding padding padding\n");
            }
            v
        }),
        ("10 MB on one line", vec![b'x'; TEN_MB]),
        (
            "arrays nested 100000 deep",
            format!("x = {}", "[".repeat(100_000)).into_bytes(),
        ),
        (
            "tables nested 100000 deep",
            format!("x = {}", "{a=".repeat(100_000)).into_bytes(),
        ),
        (
            "a million dotted keys",
            format!("{} = 1", "a.".repeat(300_000) + "a").into_bytes(),
        ),
        (
            "a huge integer",
            b"busy_timeout = 99999999999999999999999999999\n".to_vec(),
        ),
        (
            "a huge duration",
            b"busy_timeout = \"99999999999999999999999999999s\"\n".to_vec(),
        ),
        ("a wrong type", b"[password]\nmin_length = -1\n".to_vec()),
    ];
    for (i, (name, bytes)) in files.iter().enumerate() {
        let path = dir.join(format!("bad-{i}.toml"));
        std::fs::write(&path, bytes).expect("write config");
        for sub in [&["user", "list"][..], &["request", "alice@example.com"][..]] {
            let mut args: Vec<&OsStr> = vec![os("--config"), path.as_os_str()];
            args.extend(sub.iter().map(|s| os(s)));
            let out = run_bare(&env, &args);
            let what = format!("{sub:?} with {name}");
            assert_eq!(code(&what, &out), 78, "{what}: {}", stderr_of(&out));
            assert_no_raw_controls(&what, &out);
        }
    }
    for special in ["/dev/zero", "/dev/urandom"] {
        if !Path::new(special).exists() {
            continue;
        }
        let out = run_bare(&env, &[os("--config"), os(special), os("user"), os("list")]);
        assert_eq!(code(special, &out), 78, "{special}: {}", stderr_of(&out));
    }
    let out = run_bare(
        &env,
        &[os("--config"), dir.as_os_str(), os("user"), os("list")],
    );
    assert_eq!(code("a folder", &out), 78, "{}", stderr_of(&out));
    assert!(env.messages().is_empty());
}

/// Like [`run`], without the environment's own `--config`.
fn run_bare(env: &Env, args: &[&OsStr]) -> std::process::Output {
    let mut c = env.bare();
    c.args(args).timeout(TIMEOUT);
    c.output().expect("run pwreset")
}

/// Escape sequences an application (or an attacker with SQL) put in the email column are shown
/// escaped by `user list`, `verify` and `request`: no raw ESC reaches the terminal.
#[test]
fn escape_sequences_stored_in_the_database_are_escaped_on_output() {
    let env = alice();
    let token = Env::token_of(&env.link("alice@example.com"));
    let evil = "evil\x1b]0;owned\x07\x1b[2J\x1b[31m\r\u{9b}1m\u{202e}@example.com";
    env.exec(&format!(
        "INSERT INTO users (email, email_key, password_hash, created_at) VALUES ({}, 'evil-key', NULL, 0)",
        env.quote(evil)
    ));
    // Alice's address becomes hostile too, behind her token's back.
    env.exec(&format!(
        "UPDATE users SET email = {} WHERE email = 'alice@example.com'",
        env.quote(&format!("alice\x1b[8m{evil}"))
    ));

    for args in [
        &["user", "list"][..],
        &["user", "list", "--json"][..],
        &["verify", token.as_str()][..],
        &["verify", "--json", token.as_str()][..],
        &["request", "--all", "--no-email", "--force"][..],
        &["request", "--all", "--no-email", "--force", "--json"][..],
        &["request", "--all", "--force"][..],
        &["audit"][..],
    ] {
        let args: Vec<&OsStr> = args.iter().map(|s| os(s)).collect();
        let out = run(&env, &args, None);
        let what = format!("{args:?}");
        let c = code(&what, &out);
        assert!(c != 2 && c != 70, "{what}: {c}: {}", stderr_of(&out));
        assert_no_raw_controls(&what, &out);
        if args.len() > 1 && args[1] == "list" {
            assert_eq!(c, 0);
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(text.contains("evil"), "{what}: {text}");
            assert!(
                text.contains("\\u{1b}") || text.contains("\\u001b"),
                "{what}: {text}"
            );
        }
        if args[0] == "verify" {
            // The address changed after the token was issued: revoked, exit 1.
            assert_eq!(c, 1, "{what}");
            assert!(stdout_of(&out).contains("revoked"), "{what}");
        }
    }
}

fn stdout_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Peak memory for a 10 MB line on stdin stays near that of a short one: the line is never
/// read whole. Needs GNU time (`/usr/bin/time -f %M`); skipped where there is none.
#[test]
fn peak_memory_is_bounded_for_a_10_mb_stdin_line() {
    let time = Path::new("/usr/bin/time");
    if !time.exists() {
        eprintln!("skipped: no /usr/bin/time");
        return;
    }
    let env = alice();
    let token = Env::token_of(&env.link("alice@example.com"));
    let peak_kib = |args: &[&str], input: &[u8]| -> Option<u64> {
        let out = assert_cmd::Command::new(time)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", env.dir.path())
            .env("USER", "tester")
            .args(["-f", "peak=%M", BIN, "--config"])
            .arg(&env.config)
            .args(args)
            .write_stdin(input.to_vec())
            .timeout(TIMEOUT)
            .output()
            .ok()?;
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains("panicked"), "{err}");
        err.lines()
            .rev()
            .find_map(|l| l.strip_prefix("peak="))
            .and_then(|n| n.trim().parse().ok())
    };
    let big = vec![b'a'; TEN_MB];
    let big_line = [big.as_slice(), b"\n"].concat();
    let cases: [(&[&str], &[u8]); 3] = [
        (&["verify"], &big_line),
        (&["reset", "--password-stdin", token.as_str()], &big_line),
        (&["request", "--no-email", "--from-file", "-"], &big),
    ];
    for (args, input) in cases {
        let (Some(small), Some(large)) = (peak_kib(args, b"x\n"), peak_kib(args, input)) else {
            eprintln!("skipped: /usr/bin/time does not report %M here");
            return;
        };
        eprintln!("{args:?}: peak {large} KiB with a 10 MB line, {small} KiB with a short one");
        // Reading the line whole would add at least 10 MiB; allow a quarter of that for noise.
        assert!(
            large < small + 2560,
            "{args:?}: peak {large} KiB with a 10 MB line, {small} KiB with a short one"
        );
    }
}

// ---- look-alike addresses ------------------------------------------------------------------

/// The `To:` header of a message, as written.
fn to_header(eml: &str) -> String {
    eml.lines()
        .find_map(|l| l.strip_prefix("To: "))
        .expect("a To: header")
        .trim_end()
        .to_owned()
}

/// A request typed in full-width capitals finds alice (NFKC + case folding), and the mail goes
/// to the address as stored, not as typed.
#[test]
fn full_width_request_finds_alice_and_mails_the_stored_address() {
    let env = alice();
    let out = run(
        &env,
        &[
            os("request"),
            os("\u{ff21}\u{ff2c}\u{ff29}\u{ff23}\u{ff25}@example.com"),
        ],
        None,
    );
    assert_eq!(code("full-width request", &out), 0, "{}", stderr_of(&out));
    let msgs = env.messages();
    assert_eq!(msgs.len(), 1);
    assert_eq!(to_header(&msgs[0]), "alice@example.com");
    assert!(!msgs[0].contains('\u{ff21}'));
}

/// `straße@example.com` is found by `STRASSE@example.com` (full case folding: ß folds to ss),
/// the mail goes to `straße@example.com`, and `strasse@example.com` cannot be added beside it.
#[test]
fn sharp_s_matches_double_s_and_mail_goes_to_the_stored_form() {
    let env = Env::new();
    env.init().add_user("straße@example.com");
    let out = run(&env, &[os("request"), os("STRASSE@example.com")], None);
    assert_eq!(code("STRASSE", &out), 0, "{}", stderr_of(&out));
    let msgs = env.messages();
    assert_eq!(msgs.len(), 1);
    assert_eq!(to_header(&msgs[0]), "straße@example.com");
    let out = run(
        &env,
        &[os("user"), os("add"), os("strasse@example.com")],
        None,
    );
    assert_eq!(code("strasse", &out), 65, "{}", stderr_of(&out));
    assert_eq!(user_rows(&env), 1);
}

// ---- tokens bound to the account state -----------------------------------------------------

fn assert_revoked(env: &Env, token: &str) {
    let out = run(env, &[os("verify"), os(token)], None);
    assert_eq!(code("verify", &out), 1);
    assert!(
        stdout_of(&out).starts_with("revoked"),
        "{}",
        stdout_of(&out)
    );
    let out = run(env, &[os("verify"), os("--json"), os(token)], None);
    assert_eq!(code("verify --json", &out), 1);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["status"], "revoked", "{v}");
}

/// An application changes the user's address in its own table: the token issued for the old
/// address is revoked, and reset refuses it without touching the password.
#[test]
fn token_is_revoked_when_the_email_changes_behind_pwresets_back() {
    let env = alice();
    let token = Env::token_of(&env.link("alice@example.com"));
    env.cmd().args(["verify", &token]).assert().code(0);
    env.exec(
        "UPDATE users SET email = 'mallory@example.com', email_key = 'mallory@example.com' WHERE email = 'alice@example.com'",
    );
    assert_revoked(&env, &token);
    let out = run(
        &env,
        &[os("reset"), os("--password-stdin"), os(&token)],
        Some(format!("{PASSWORD}\n").as_bytes()),
    );
    assert_eq!(code("reset", &out), 1, "{}", stderr_of(&out));
    assert!(stderr_of(&out).contains("revoked"), "{}", stderr_of(&out));
    assert_eq!(password_hash(&env, "mallory@example.com"), None);
    assert!(env.messages().is_empty());
}

/// An application sets the user's password itself: the token issued before is revoked, and
/// reset refuses it, leaving the application's hash alone.
#[test]
fn token_is_revoked_when_the_password_hash_changes_behind_pwresets_back() {
    let env = alice();
    let token = Env::token_of(&env.link("alice@example.com"));
    let app_hash = "$argon2id$v=19$m=8192,t=1,p=1$c2FsdHNhbHRzYWx0$YWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWE";
    env.exec(&format!(
        "UPDATE users SET password_hash = {} WHERE email = 'alice@example.com'",
        env.quote(app_hash)
    ));
    assert_revoked(&env, &token);
    let out = run(
        &env,
        &[os("reset"), os("--password-stdin"), os(&token)],
        Some(format!("{PASSWORD}\n").as_bytes()),
    );
    assert_eq!(code("reset", &out), 1, "{}", stderr_of(&out));
    assert_eq!(
        password_hash(&env, "alice@example.com").as_deref(),
        Some(app_hash)
    );
    // A new request binds to the new state and works.
    let fresh = Env::token_of(&env.link("alice@example.com"));
    env.cmd().args(["verify", &fresh]).assert().code(0);
}

/// Strings anyone with SQL access can write into pwreset's own tables reach the terminal
/// escaped: ESC, BEL and C1 controls in a revocation reason, and a newline in an audit row that
/// would otherwise forge an extra row on screen.
#[test]
fn control_characters_from_pwreset_tables_are_escaped_everywhere() {
    let env = Env::new();
    env.init();
    env.add_user("alice@example.com");
    let link = env.link("alice@example.com");
    // The controls go in as literals: char() and || are not portable.
    env.exec(&format!(
        "UPDATE pwreset_tokens SET revoked_at = 1, dead_at = 1, revoked_reason = {}",
        env.quote("evil\x1b[2J\x07\u{9b}31m")
    ));
    let out = run(&env, &[OsStr::new("verify"), OsStr::new(&link)], None);
    assert_eq!(out.status.code(), Some(1));
    assert_no_raw_controls("verify", &out);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("evil"),
        "{out:?}"
    );
    env.exec(&format!(
        "UPDATE pwreset_audit SET action = {}, outcome = {}",
        // A forged row within the 32 characters MySQL's action column holds.
        env.quote("request\n2026-01-01  root  reset"),
        env.quote("ok\x1b]0;owned\x07")
    ));
    for args in [&["audit"][..], &["audit", "--json"][..]] {
        let args: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
        let out = run(&env, &args, None);
        assert_eq!(out.status.code(), Some(0));
        assert_no_raw_controls("audit", &out);
        let text = String::from_utf8_lossy(&out.stdout);
        // One header plus one line per row: the newline did not add a row.
        if args.len() == 1 {
            let rows = env.i64("SELECT count(*) FROM pwreset_audit") as usize;
            assert_eq!(text.lines().count(), rows + 1, "{text}");
        }
    }
}
