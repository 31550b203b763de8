//! Hashes pwreset writes, checked by the frameworks' own verifiers: Django, Python's bcrypt,
//! argon2-cffi, PHP's password_verify (when `php` is installed) and the documented ASP.NET
//! Identity layout, through tests/fixtures/check_hashes.py.
//!
//! Needs a python3 that imports django, bcrypt and argon2 (`PWRESET_TEST_PYTHON` names another
//! interpreter, e.g. a venv's); without one the test says so on one line and passes.

use pwreset::config::Argon2;
use pwreset::password::{BcryptPrefix, Format, HashSettings, hash_as};
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use zeroize::Zeroizing;

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/check_hashes.py")
}

fn python() -> String {
    std::env::var("PWRESET_TEST_PYTHON").unwrap_or_else(|_| "python3".to_string())
}

/// Why the reference verifiers cannot run here, if they cannot.
fn unavailable() -> Option<String> {
    match Command::new(python()).arg(script()).arg("--probe").output() {
        Err(e) => Some(format!("cannot run {} ({e})", python())),
        Ok(out) if out.status.success() => None,
        Ok(out) => Some(String::from_utf8_lossy(&out.stdout).trim().to_string()),
    }
}

/// Run the checker on JSON lines; its exit status and output.
fn check(lines: &[serde_json::Value]) -> (bool, String) {
    let mut child = Command::new(python())
        .arg(script())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start check_hashes.py");
    {
        let mut stdin = child.stdin.take().expect("stdin");
        for l in lines {
            writeln!(stdin, "{l}").expect("write to check_hashes.py");
        }
    }
    let out = child.wait_with_output().expect("check_hashes.py ends");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn low(format: Format) -> HashSettings {
    HashSettings {
        argon2: Argon2 {
            memory_kib: 8192,
            iterations: 1,
            parallelism: 1,
        },
        bcrypt_cost: 4,
        pbkdf2_iterations: 1000,
        ..HashSettings::for_format(format)
    }
}

fn line(password: &str, s: &HashSettings) -> serde_json::Value {
    let hash = hash_as(password, s).expect("hash_as");
    // The last character changed, not one added: a 72-byte password stays within bcrypt.
    let mut wrong: String = password
        .chars()
        .take(password.chars().count() - 1)
        .collect();
    wrong.push('!');
    let mut v = serde_json::json!({
        "format": s.format.name(),
        "password": password,
        "wrong": wrong,
        "hash": hash,
    });
    if let Some(p) = &s.pepper {
        let hex: String = p.iter().map(|b| format!("{b:02x}")).collect();
        v["pepper_hex"] = hex.into();
    }
    v
}

#[test]
fn written_hashes_verify_with_the_frameworks_own_code() {
    if let Some(why) = unavailable() {
        println!("skipped written_hashes_verify_with_the_frameworks_own_code: {why}");
        return;
    }
    let mut lines = Vec::new();
    for format in Format::ALL {
        for pw in ["correct horse battery staple", "pässwörd ünïcode 🔑 ﬁx"] {
            lines.push(line(pw, &low(format)));
        }
        // And once at the default cost, as a real reset writes it.
        lines.push(line(
            "correct horse battery staple",
            &HashSettings::for_format(format),
        ));
    }
    for prefix in [BcryptPrefix::TwoB, BcryptPrefix::TwoY, BcryptPrefix::TwoA] {
        let s = HashSettings {
            bcrypt_prefix: prefix,
            ..low(Format::Bcrypt)
        };
        lines.push(line("correct horse battery staple", &s));
        lines.push(line("pässwörd ünïcode 🔑", &s));
    }
    let devise = HashSettings {
        pepper: Some(Zeroizing::new(b"devise-pepper".to_vec())),
        ..low(Format::Bcrypt)
    };
    lines.push(line("correct horse battery staple", &devise));
    // Exactly 72 bytes: the most bcrypt takes.
    lines.push(line(&"x".repeat(72), &low(Format::Bcrypt)));

    let (ok, out) = check(&lines);
    assert!(ok, "a reference verifier refused a pwreset hash:\n{out}");
    assert_eq!(
        out.lines().filter(|l| l.starts_with("ok ")).count(),
        lines.len(),
        "{out}"
    );
}

#[test]
fn the_checker_notices_a_wrong_hash() {
    if let Some(why) = unavailable() {
        println!("skipped the_checker_notices_a_wrong_hash: {why}");
        return;
    }
    // Without this, a checker that accepted everything would pass the test above.
    for format in Format::ALL {
        let mut v = line("correct horse battery staple", &low(format));
        v["password"] = "another password".into();
        let (ok, out) = check(&[v]);
        assert!(!ok, "{format}: {out}");
        assert!(out.contains("MISMATCH"), "{format}: {out}");
    }
}
