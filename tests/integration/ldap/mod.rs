//! Users in an LDAP directory, against a real OpenLDAP slapd (see [`server`]): lookup and
//! mail, a reset through the server's Password Modify operation, the server's policy refusing,
//! tokens bound to the password, locked accounts, filter injection, paging past the size
//! limit, StartTLS and LDAPS with a test CA.

mod ad;
mod server;

use crate::harness::{Env, default_toml, stderr, stdout};
use server::{BIND_DN, BIND_PW, OLD_PW, PEOPLE, Person, Slapd};
use std::path::Path;

/// Long, unrelated to the address, strong enough for any policy here.
const GOOD: &str = "correct horse battery staple";
const OTHER_GOOD: &str = "violet tractor mumbles quietly";

/// The `[ldap]` section for `url`, with the bind password in a 0600 file in `dir`.
fn ldap_section(dir: &Path, url: &str, extra: &str) -> String {
    use std::os::unix::fs::PermissionsExt;
    let pw = dir.join("ldap-password");
    std::fs::write(&pw, format!("{BIND_PW}\n")).expect("write password file");
    std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    format!(
        "\n[ldap]\nurl = \"{url}\"\nbind_dn = \"{BIND_DN}\"\nbind_password_file = \"{}\"\nbase_dn = \"{PEOPLE}\"\n{extra}\n",
        pw.display()
    )
}

/// An initialised installation whose users are in `slapd`, over plain LDAP on loopback.
fn env_for(slapd: &Slapd, extra: &str) -> Env {
    env_with(
        slapd,
        &slapd.url(),
        &format!("starttls = false\n{extra}"),
        "",
    )
}

/// An installation for `url`, `extra` in `[ldap]`, `top` added before it; initialised.
fn env_with(slapd: &Slapd, url: &str, extra: &str, top: &str) -> Env {
    let _ = slapd;
    let env = Env::with_toml(|dir| {
        format!(
            "{}{top}{}",
            default_toml(dir),
            ldap_section(dir, url, extra)
        )
    });
    env.init();
    env
}

fn people() -> Vec<Person<'static>> {
    vec![
        Person {
            uid: "alice",
            mail: "Alice@Example.com",
            cn: "Alice Liddell",
        },
        Person {
            uid: "bob",
            mail: "bob@example.com",
            cn: "Bob Dylan",
        },
    ]
}

fn to_header(eml: &str) -> String {
    eml.lines()
        .find_map(|l| l.strip_prefix("To: "))
        .expect("a To: header")
        .to_owned()
}

fn reset_stdin(env: &Env, link: &str, password: &str) -> assert_cmd::assert::Assert {
    env.cmd()
        .args(["reset", "--password-stdin", link])
        .write_stdin(format!("{password}\n"))
        .assert()
}

fn verify(env: &Env, link: &str) -> (i32, String) {
    let out = env
        .cmd()
        .args(["verify", link])
        .output()
        .expect("run verify");
    (
        out.status.code().expect("exit code"),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn request_finds_the_person_and_mails_the_address_the_directory_holds() {
    let Some(slapd) = Slapd::start(&people(), "") else {
        return;
    };
    let env = env_for(&slapd, "");
    let a = env
        .cmd()
        .args(["request", "alice@EXAMPLE.com"])
        .assert()
        .success();
    assert!(stdout(&a).contains("sent"), "{}", stdout(&a));
    let msgs = env.messages();
    assert_eq!(msgs.len(), 1);
    // The server's matching rule for mail is case-insensitive; the mail goes to the address
    // the directory holds, not the one typed.
    assert!(
        to_header(&msgs[0]).contains("Alice@Example.com"),
        "{}",
        msgs[0]
    );
    assert!(
        crate::harness::decode(&msgs[0]).contains("Alice Liddell"),
        "greeted by cn"
    );
    // The token is stored against the entryUUID, as text.
    let id = env
        .text("SELECT user_id FROM pwreset_tokens")
        .expect("a token");
    let uuid = slapd.search(&Slapd::dn("alice"), "(objectClass=*)", &["entryUUID"]);
    assert!(uuid.contains(&id), "{id} not in {uuid}");
    // No users table was made: the people are the directory's.
    assert!(
        !env.tables().iter().any(|t| t == "users"),
        "{:?}",
        env.tables()
    );
    // Unknown addresses: 67, as for a table.
    let a = env
        .cmd()
        .args(["request", "nobody@example.com"])
        .assert()
        .code(67);
    assert!(stderr(&a).contains("nobody@example.com") || stdout(&a).contains("unknown_user"));
    // verify says whose the link is.
    let link = env.link("bob@example.com");
    let (code, out) = verify(&env, &link);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("bob@example.com"), "{out}");
}

#[test]
fn reset_goes_through_the_server_and_the_new_password_binds() {
    let Some(slapd) = Slapd::start(&people(), "") else {
        return;
    };
    let env = env_for(&slapd, "");
    let dn = Slapd::dn("alice");
    assert!(slapd.can_bind(&dn, OLD_PW));
    let link = env.link("alice@example.com");
    let other = env.link("alice@example.com");
    let a = reset_stdin(&env, &other, GOOD).success();
    assert!(stdout(&a).contains("password changed"), "{}", stdout(&a));
    assert!(slapd.can_bind(&dn, GOOD), "the new password binds");
    assert!(!slapd.can_bind(&dn, OLD_PW), "the old one does not");
    // The server hashed it (exop): argon2, as olcPasswordHash says, never clear text.
    let stored = slapd.search(&dn, "(objectClass=*)", &["userPassword"]);
    assert!(stored.contains("userPassword:: "), "{stored}");
    assert!(!stored.contains(GOOD), "{stored}");
    // The link is used; the older one (superseded) stays dead.
    assert_eq!(verify(&env, &other).0, 1);
    assert_eq!(verify(&env, &link).0, 1);
    let a = reset_stdin(&env, &other, OTHER_GOOD).code(1);
    assert!(stderr(&a).contains("used"), "{}", stderr(&a));
    assert!(slapd.can_bind(&dn, GOOD), "a used link changes nothing");
    // Audited with the address.
    let audit = env.cmd().args(["audit", "--json"]).assert().success();
    let text = stdout(&audit);
    assert!(
        text.contains("\"action\":\"reset\"") || text.contains("\"action\": \"reset\""),
        "{text}"
    );
    // The notice went to the directory's address.
    assert!(
        env.messages()
            .iter()
            .all(|m| to_header(m).contains("Alice@Example.com"))
    );
}

/// Several resets racing with one link, each its own process: the token is spent before the
/// directory is asked, so exactly one password reaches the directory, on every store backend.
#[test]
fn racing_resets_with_one_link_change_the_password_once() {
    let Some(slapd) = Slapd::start(&people(), "") else {
        return;
    };
    let env = env_for(&slapd, "");
    let dn = Slapd::dn("bob");
    let link = env.link("bob@example.com");
    let passwords: Vec<String> = (0..4).map(|i| format!("{GOOD} number {i}")).collect();
    let children: Vec<std::process::Child> = passwords
        .iter()
        .map(|pw| {
            use std::io::Write;
            let mut child = env
                .std_cmd()
                .args(["reset", "--password-stdin", &link])
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("spawn reset");
            let mut stdin = child.stdin.take().expect("stdin");
            stdin
                .write_all(format!("{pw}\n").as_bytes())
                .expect("write password");
            child
        })
        .collect();
    let outs: Vec<std::process::Output> = children
        .into_iter()
        .map(|c| c.wait_with_output().expect("wait"))
        .collect();
    let codes: Vec<i32> = outs
        .iter()
        .map(|o| o.status.code().expect("exit code"))
        .collect();
    let said: Vec<String> = outs
        .iter()
        .map(|o| String::from_utf8_lossy(&o.stderr).into_owned())
        .collect();
    assert_eq!(
        codes.iter().filter(|c| **c == 0).count(),
        1,
        "{codes:?} {said:?}"
    );
    assert!(
        codes.iter().all(|c| *c == 0 || *c == 1),
        "{codes:?} {said:?}"
    );
    // The winner's password first: the policy locks an entry after a few failed binds.
    let winner = codes.iter().position(|c| *c == 0).unwrap_or_default();
    assert!(slapd.can_bind(&dn, &passwords[winner]), "{said:?}");
    for (i, pw) in passwords.iter().enumerate() {
        if i != winner {
            assert!(
                !slapd.can_bind(&dn, pw),
                "a loser's password reached the directory"
            );
        }
    }
    assert_eq!(
        env.i64("SELECT count(*) FROM pwreset_audit WHERE action = 'reset' AND outcome = 'ok'"),
        1
    );
    assert_eq!(
        env.i64("SELECT count(*) FROM pwreset_tokens WHERE used_at IS NOT NULL"),
        1
    );
}

#[test]
fn the_servers_policy_refuses_with_its_own_words_and_the_link_still_works() {
    let Some(slapd) = Slapd::start(&people(), "") else {
        return;
    };
    // pwreset's own policy steps aside, so the server's is what refuses.
    let env = env_with(
        &slapd,
        &slapd.url(),
        "starttls = false\n",
        "\n[password]\nmin_length = 1\nmin_strength = 0\n",
    );
    let dn = Slapd::dn("bob");
    let link = env.link("bob@example.com");
    // Shorter than pwdMinLength 12: ppolicy's quality check.
    let a = reset_stdin(&env, &link, "short pw").code(65);
    let err = stderr(&a);
    assert!(err.contains("directory's password policy"), "{err}");
    assert!(
        err.contains("quality") || err.contains("Password"),
        "the server's words: {err}"
    );
    assert!(err.contains("link still works"), "{err}");
    assert_eq!(verify(&env, &link).0, 0, "the link is still usable");
    assert!(slapd.can_bind(&dn, OLD_PW), "nothing changed");
    let audit = stdout(&env.cmd().args(["audit", "--json"]).assert().success());
    assert!(audit.contains("refused"), "{audit}");
    // In the history (pwdInHistory 3): set GOOD, then try GOOD again with a new link.
    reset_stdin(&env, &link, GOOD).success();
    let again = env.link("bob@example.com");
    let a = reset_stdin(&env, &again, GOOD).code(65);
    assert!(
        stderr(&a).contains("directory's password policy"),
        "{}",
        stderr(&a)
    );
    assert_eq!(verify(&env, &again).0, 0);
    assert!(slapd.can_bind(&dn, GOOD));
}

#[test]
fn a_link_dies_when_the_password_changes_elsewhere_or_the_entry_goes() {
    let Some(slapd) = Slapd::start(&people(), "") else {
        return;
    };
    let env = env_for(&slapd, "");
    let link = env.link("alice@example.com");
    assert_eq!(verify(&env, &link).0, 0);
    // The user changes their own password at the application (a modify as themselves).
    let out = std::process::Command::new("ldappasswd")
        .args([
            "-x",
            "-H",
            &slapd.url(),
            "-D",
            &Slapd::dn("alice"),
            "-w",
            OLD_PW,
            "-s",
            OTHER_GOOD,
        ])
        .output()
        .expect("run ldappasswd");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (code, out) = verify(&env, &link);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("revoked"), "{out}");
    let a = reset_stdin(&env, &link, GOOD).code(1);
    assert!(stderr(&a).contains("revoked"), "{}", stderr(&a));
    assert!(slapd.can_bind(&Slapd::dn("alice"), OTHER_GOOD));
    // An entry deleted: its link is revoked too.
    let link = env.link("bob@example.com");
    slapd.modify(&format!("dn: {}\nchangetype: delete\n", Slapd::dn("bob")));
    let (code, out) = verify(&env, &link);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("revoked"), "{out}");
}

#[test]
fn locked_accounts_get_no_link_and_a_reset_never_unlocks_them() {
    let Some(slapd) = Slapd::start(&people(), "") else {
        return;
    };
    let env = env_for(&slapd, "");
    let dn = Slapd::dn("bob");
    let before = env.link("bob@example.com");
    // Three failed binds: ppolicy locks the account (pwdLockout, pwdMaxFailure 3).
    for _ in 0..3 {
        assert!(!slapd.can_bind(&dn, "wrong password"));
    }
    let locked = slapd.search(&dn, "(objectClass=*)", &["pwdAccountLockedTime"]);
    assert!(locked.contains("pwdAccountLockedTime"), "{locked}");
    let a = env
        .cmd()
        .args(["request", "--json", "bob@example.com"])
        .assert()
        .code(65);
    let out = stdout(&a);
    assert!(out.contains("\"locked\""), "{out}");
    assert!(env.messages().is_empty(), "no mail for a locked account");
    // The link made before the lock is dead, and a reset with it changes nothing.
    let (code, text) = verify(&env, &before);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("locked"), "{text}");
    reset_stdin(&env, &before, GOOD).code(1);
    let still = slapd.search(&dn, "(objectClass=*)", &["pwdAccountLockedTime"]);
    assert!(
        still.contains("pwdAccountLockedTime"),
        "still locked: {still}"
    );
    assert!(!slapd.can_bind(&dn, GOOD));
    // Alice, not locked, is served as before.
    env.cmd()
        .args(["request", "alice@example.com"])
        .assert()
        .success();
}

#[test]
fn addresses_cannot_change_the_filter() {
    let people = vec![
        Person {
            uid: "alice",
            mail: "alice@example.com",
            cn: "Alice",
        },
        // Two entries holding one address (in another case): neither gets a link.
        Person {
            uid: "carol",
            mail: "carol@example.com",
            cn: "Carol",
        },
        Person {
            uid: "carol2",
            mail: "CAROL@example.com",
            cn: "Carol Again",
        },
        Person {
            uid: "star",
            mail: "*@example.org",
            cn: "Star",
        },
    ];
    let Some(slapd) = Slapd::start(&people, "") else {
        return;
    };
    let env = env_for(&slapd, "");
    // Unescaped, (mail=*@example.com) would match alice: a wildcard in the address is a
    // literal asterisk.
    env.cmd()
        .args(["request", "*@example.com"])
        .assert()
        .code(67);
    assert!(env.messages().is_empty());
    // The entry whose address really has an asterisk is found, and only it.
    env.cmd()
        .args(["request", "*@example.org"])
        .assert()
        .success();
    let msgs = env.messages();
    assert_eq!(msgs.len(), 1);
    assert!(to_header(&msgs[0]).contains("*@example.org"), "{}", msgs[0]);
    // Parentheses and backslashes in a quoted local part do not escape the filter either.
    for evil in [
        "\"a)(mail=*\"@example.com",
        "\"x\\\\)(|(uid=*\"@example.com",
    ] {
        let out = env.cmd().args(["request", evil]).output().expect("run");
        assert_ne!(out.status.code(), Some(0), "{evil}");
    }
    assert_eq!(env.messages().len(), 1);
    let a = env
        .cmd()
        .args(["request", "carol@example.com"])
        .assert()
        .code(65);
    assert!(
        stdout(&a).contains("more than one entry") || stderr(&a).contains("more than one entry"),
        "{}{}",
        stdout(&a),
        stderr(&a)
    );
    assert_eq!(env.messages().len(), 1);
}

#[test]
fn request_all_pages_past_the_servers_size_limit() {
    const N: usize = 1200;
    let mut ldif = String::new();
    for i in 0..N {
        ldif.push_str(&server::person_ldif(&Person {
            uid: &format!("user{i:05}"),
            mail: &format!("user{i:05}@example.com"),
            cn: &format!("User {i}"),
        }));
    }
    let Some(slapd) = Slapd::start_with(&ldif) else {
        return;
    };
    let env = env_for(&slapd, "");
    // A plain search stops at the size limit of 500 ...
    let out = std::process::Command::new("ldapsearch")
        .args([
            "-x",
            "-LLL",
            "-H",
            &slapd.url(),
            "-D",
            BIND_DN,
            "-w",
            BIND_PW,
            "-b",
            PEOPLE,
            "(objectClass=inetOrgPerson)",
            "1.1",
        ])
        .output()
        .expect("ldapsearch");
    assert_eq!(
        out.status.code(),
        Some(4),
        "sizeLimitExceeded without paging"
    );
    // ... request --all pages through all of them.
    let a = env
        .cmd()
        .args(["request", "--all", "--no-email", "--force", "--yes", "-q"])
        .assert()
        .success();
    let links = stdout(&a).lines().filter(|l| l.contains("token=")).count();
    assert_eq!(links, N);
    assert_eq!(
        env.i64("SELECT count(DISTINCT user_id) FROM pwreset_tokens"),
        N as i64
    );
}

#[test]
fn starttls_and_ldaps_with_a_test_ca() {
    let Some(slapd) = Slapd::start(&people(), "") else {
        return;
    };
    let ca = format!("ca_file = \"{}\"\n", slapd.ca.display());
    // A new password each time: the policy keeps a history.
    for (url, pw) in [(slapd.url(), GOOD), (slapd.ldaps_url(), OTHER_GOOD)] {
        let env = env_with(&slapd, &url, &ca, "");
        env.cmd()
            .args(["request", "alice@example.com"])
            .assert()
            .success();
        let link = env.link("bob@example.com");
        reset_stdin(&env, &link, pw).success();
        assert!(slapd.can_bind(&Slapd::dn("bob"), pw), "{url}");
    }
    // Without the CA the certificate is not trusted: nothing is sent in clear instead.
    for url in [slapd.url(), slapd.ldaps_url()] {
        let env =
            Env::with_toml(|dir| format!("{}{}", default_toml(dir), ldap_section(dir, &url, "")));
        for args in [&["init"][..], &["request", "alice@example.com"][..]] {
            let a = env.cmd().args(args).assert().code(75);
            let err = stderr(&a);
            assert!(
                err.contains("ldap.ca_file") || err.contains("certificate"),
                "{url}: {err}"
            );
        }
        assert!(env.messages().is_empty());
    }
}

#[test]
fn ldap_beside_a_users_mapping_or_in_clear_to_a_remote_host_is_refused() {
    let env = Env::with_toml(|dir| {
        format!(
            "{}\n[users]\ntable = \"people\"\n{}",
            default_toml(dir),
            ldap_section(dir, "ldaps://ldap.example.com", "")
        )
    });
    let a = env
        .cmd()
        .args(["request", "a@example.com"])
        .assert()
        .code(78);
    assert!(stderr(&a).contains("[users]"), "{}", stderr(&a));
    let env = Env::with_toml(|dir| {
        format!(
            "{}{}",
            default_toml(dir),
            ldap_section(dir, "ldap://ldap.example.com", "starttls = false\n")
        )
    });
    let a = env
        .cmd()
        .args(["request", "a@example.com"])
        .assert()
        .code(78);
    assert!(stderr(&a).contains("ldap.starttls"), "{}", stderr(&a));
}

/// The numbers in docs/ldap: a lookup by address beside `ldapsearch` doing the same (each a
/// process that binds and searches once), and `request --all` of 10,000 people beside
/// `ldapsearch` paging through the same entries. Not a check: run it by hand with
/// `cargo test --release --features ldap --test integration ldap::numbers -- --ignored --nocapture`.
#[test]
#[ignore]
fn numbers() {
    use std::time::Instant;
    const N: usize = 10_000;
    const RUNS: usize = 20;
    let mut ldif = String::new();
    for i in 0..N {
        ldif.push_str(&server::person_ldif(&Person {
            uid: &format!("user{i:05}"),
            mail: &format!("user{i:05}@example.com"),
            cn: &format!("User {i}"),
        }));
    }
    let Some(slapd) = Slapd::start_with(&ldif) else {
        return;
    };
    let env = env_for(&slapd, "");
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let time = |f: &mut dyn FnMut()| {
        let t = Instant::now();
        f();
        t.elapsed().as_secs_f64() * 1000.0
    };
    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    for i in 0..RUNS {
        let addr = format!("user{:05}@example.com", (i * 487) % N);
        ours.push(time(&mut || {
            env.cmd()
                .args(["request", "--dry-run", &addr])
                .assert()
                .success();
        }));
        theirs.push(time(&mut || {
            let ok = std::process::Command::new("ldapsearch")
                .args([
                    "-x",
                    "-LLL",
                    "-H",
                    &slapd.url(),
                    "-D",
                    BIND_DN,
                    "-w",
                    BIND_PW,
                    "-b",
                    PEOPLE,
                ])
                .arg(format!("(&(objectClass=inetOrgPerson)(mail={addr}))"))
                .args([
                    "mail",
                    "cn",
                    "entryUUID",
                    "pwdChangedTime",
                    "userPassword",
                    "pwdAccountLockedTime",
                ])
                .stdout(std::process::Stdio::null())
                .status()
                .expect("ldapsearch")
                .success();
            assert!(ok);
        }));
    }
    println!(
        "lookup by address, median of {RUNS}: pwreset request --dry-run {:.1} ms, ldapsearch {:.1} ms",
        median(ours),
        median(theirs)
    );
    let all = time(&mut || {
        let a = env
            .cmd()
            .args(["request", "--all", "--no-email", "--force", "--yes", "-q"])
            .assert()
            .success();
        assert_eq!(stdout(&a).lines().count(), N);
    });
    let paged = time(&mut || {
        let ok = std::process::Command::new("ldapsearch")
            .args([
                "-x",
                "-LLL",
                "-E",
                "pr=500/noprompt",
                "-H",
                &slapd.url(),
                "-D",
                BIND_DN,
                "-w",
                BIND_PW,
                "-b",
                PEOPLE,
                "(objectClass=inetOrgPerson)",
            ])
            .args([
                "mail",
                "cn",
                "entryUUID",
                "pwdChangedTime",
                "userPassword",
                "pwdAccountLockedTime",
            ])
            .stdout(std::process::Stdio::null())
            .status()
            .expect("ldapsearch")
            .success();
        assert!(ok);
    });
    println!(
        "{N} people: pwreset request --all --no-email {all:.0} ms (pages, tokens stored, links printed); ldapsearch paging the same entries {paged:.0} ms"
    );
}

/// The memory figure in docs/ldap: `request --all --no-email` over 100,000 directory entries
/// (`PWRESET_LDAP_PEOPLE` to change the count), its peak RSS read by `/usr/bin/time -v` (the
/// Debian package `time`), and its rate. `request --all` pages through the directory and
/// issues links page by page, so the peak does not grow with the directory. Not a check: run it
/// by hand with
/// `cargo test --release --features ldap --test integration ldap::memory -- --ignored --nocapture`.
#[test]
#[ignore]
fn memory() {
    const TIME: &str = "/usr/bin/time";
    let n: usize = std::env::var("PWRESET_LDAP_PEOPLE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    if !Path::new(TIME).exists() {
        println!("skipped: {TIME} is not installed (apt-get install time)");
        return;
    }
    let mut ldif = String::new();
    for i in 0..n {
        ldif.push_str(&server::person_ldif(&Person {
            uid: &format!("user{i:06}"),
            mail: &format!("user{i:06}@example.com"),
            cn: &format!("User {i}"),
        }));
    }
    let loading = std::time::Instant::now();
    let Some(slapd) = Slapd::start_with(&ldif) else {
        return;
    };
    drop(ldif);
    println!(
        "{n} people loaded by slapadd in {:.1} s",
        loading.elapsed().as_secs_f64()
    );
    let env = env_for(&slapd, "");
    let links = env.dir.path().join("links.txt");
    let out = env
        .isolated(TIME)
        .arg("-v")
        .arg(crate::harness::BIN)
        .arg("--config")
        .arg(&env.config)
        .args(["request", "--all", "--no-email", "--force", "--yes", "-q"])
        .stdout(std::fs::File::create(&links).expect("create links.txt"))
        .output()
        .expect("run /usr/bin/time");
    let report = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{report}");
    let printed = std::fs::read_to_string(&links).expect("read links.txt");
    assert_eq!(printed.lines().filter(|l| l.contains("token=")).count(), n);
    let field = |name: &str| -> String {
        report
            .lines()
            .find_map(|l| l.trim().strip_prefix(name))
            .map(|v| v.trim().to_owned())
            .unwrap_or_else(|| panic!("no {name:?} in: {report}"))
    };
    let kib: f64 = field("Maximum resident set size (kbytes):")
        .parse()
        .expect("a number of KiB");
    // h:mm:ss or m:ss.ss
    let wall: f64 = field("Elapsed (wall clock) time (h:mm:ss or m:ss):")
        .split(':')
        .map(|p| p.parse::<f64>().expect("a time"))
        .fold(0.0, |acc, p| acc * 60.0 + p);
    println!(
        "request --all --no-email over {n} directory entries: peak RSS {:.1} MiB, {wall:.2} s, {:.0} entries/s",
        kib / 1024.0,
        n as f64 / wall
    );
    // 59-69 MiB in the unoptimised build at 100,000 and 200,000 entries: level once SQLite's
    // 32 MiB bulk page cache is full. A generous bound, for a run that stopped streaming (held
    // its entries or its pages), not for a few MiB more.
    assert!(
        kib < 128.0 * 1024.0,
        "peak RSS {:.1} MiB: does request --all still stream?",
        kib / 1024.0
    );
}

/// The page the link opens and the forgot page go through the same services: the form sets
/// the password in the directory, the server's refusal comes back as a 422 with its words,
/// and the forgot page mails the directory's address.
/// serve's workers keep their directory connection between pages: ten form pages open at
/// most one connection per worker of the pool, not one each.
#[test]
fn serve_reuses_its_directory_connections() {
    use crate::serve::{Server, serve_toml};
    let Some(slapd) = Slapd::start(&people(), "") else {
        return;
    };
    let s = Server::start_users(
        |dir, port| {
            serve_toml(dir, port, "") + &ldap_section(dir, &slapd.url(), "starttls = false\n")
        },
        &[],
    );
    let link = s.env.link("bob@example.com");
    let path = link
        .split_once(&s.addr.to_string())
        .expect("on this server")
        .1;
    assert_eq!(s.get(path).status, 200);
    let before = slapd.connections();
    for _ in 0..10 {
        let form = s.get(path);
        assert_eq!(form.status, 200, "{}", form.body);
    }
    // The database pool has four workers; one more is the count's own ldapsearch.
    let opened = slapd.connections() - before;
    assert!(opened <= 5, "{opened} connections for ten pages");
}

#[test]
fn serve_pages_reset_through_the_directory() {
    use crate::serve::{Server, reset_fields, serve_toml};
    let Some(slapd) = Slapd::start(&people(), "") else {
        return;
    };
    let s = Server::start_users(
        |dir, port| {
            serve_toml(
                dir,
                port,
                "\n[password]\nmin_length = 1\nmin_strength = 0\n",
            ) + &ldap_section(dir, &slapd.url(), "starttls = false\n")
        },
        &[],
    );
    let link = s.env.link("bob@example.com");
    let path = link
        .split_once(&s.addr.to_string())
        .expect("on this server")
        .1;
    let token = Env::token_of(&link);
    let form = s.get(path);
    assert_eq!(form.status, 200, "{}", form.body);
    assert!(form.body.contains("bob@example.com"), "{}", form.body);
    let csrf = form.field("csrf");
    let r = s.post(
        "/reset_password",
        &[],
        &reset_fields(&token, &csrf, "short pw", "short pw"),
    );
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(
        r.body.contains("quality") || r.body.contains("Password"),
        "{}",
        r.body
    );
    assert!(slapd.can_bind(&Slapd::dn("bob"), OLD_PW));
    let r = s.post(
        "/reset_password",
        &[],
        &reset_fields(&token, &csrf, GOOD, GOOD),
    );
    // Post/redirect/get: the "changed" page.
    assert_eq!(r.status, 303, "{}", r.body);
    assert!(slapd.can_bind(&Slapd::dn("bob"), GOOD));
    assert!(!slapd.can_bind(&Slapd::dn("bob"), OLD_PW));
    // The forgot page: the directory's address gets the mail.
    let page = s.get("/forgot_password");
    let csrf = page.field("csrf");
    let cookie = page.cookie();
    let r = s.post(
        "/forgot_password",
        &[("Cookie", cookie.as_str())],
        &[("email", "ALICE@example.com"), ("csrf", &csrf)],
    );
    assert_eq!(r.status, 200);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !s
        .env
        .messages()
        .iter()
        .any(|m| m.contains("Alice@Example.com"))
    {
        assert!(std::time::Instant::now() < deadline, "no mail for alice");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// `password_change = "modify"`: pwreset hashes ({SSHA}, {ARGON2}) and replaces userPassword,
/// for servers without the Password Modify operation; the server verifies the hash at bind.
/// At the terminal, the directory's refusal is one of the tries: the prompt comes again,
/// with the server's words, and a password it takes then is set.
#[test]
fn a_refusal_at_the_terminal_asks_again() {
    use crate::reset::Pty;
    let Some(slapd) = Slapd::start(&people(), "") else {
        return;
    };
    let env = env_with(
        &slapd,
        &slapd.url(),
        "starttls = false\n",
        "\n[password]\nmin_length = 1\nmin_strength = 0\n",
    );
    let link = env.link("bob@example.com");
    let mut pty = Pty::spawn(&env, &["reset", &link]);
    // Shorter than the policy's pwdMinLength 12: pwreset's own policy lets it through.
    pty.answer("short pw", "short pw");
    pty.expect("2 tries left");
    pty.answer(GOOD, GOOD);
    pty.expect("password changed");
    assert_eq!(pty.finish(), 0);
    assert!(slapd.can_bind(&Slapd::dn("bob"), GOOD));
    assert_eq!(
        env.i64("SELECT count(*) FROM pwreset_audit WHERE action = 'reset_failed' AND outcome = 'refused'"),
        1
    );
}

#[test]
fn modify_writes_a_hash_the_server_binds_with() {
    let mut everyone = people();
    everyone.push(Person {
        uid: "carol",
        mail: "carol@example.com",
        cn: "Carol Danvers",
    });
    let Some(slapd) = Slapd::start(&everyone, "") else {
        return;
    };
    // A hashed value cannot be checked for quality: with pwdCheckQuality 2 the server refuses
    // it, and says so.
    let env = env_for(&slapd, "password_change = \"modify\"\n");
    let link = env.link("alice@example.com");
    let a = reset_stdin(&env, &link, GOOD).code(65);
    assert!(
        stderr(&a).contains("directory's password policy"),
        "{}",
        stderr(&a)
    );
    assert_eq!(verify(&env, &link).0, 0);
    slapd.modify(&format!(
        "dn: cn=default,ou=policies,{}\nchangetype: modify\nreplace: pwdCheckQuality\npwdCheckQuality: 1\n",
        server::SUFFIX
    ));
    for (format, prefix, uid, mail) in [
        ("ssha", "{SSHA}", "alice", "alice@example.com"),
        ("argon2", "{ARGON2}", "bob", "bob@example.com"),
        // Checked by slapd through the system's crypt(3).
        ("crypt", "{CRYPT}$6$", "carol", "carol@example.com"),
    ] {
        let env = env_for(
            &slapd,
            &format!("password_change = \"modify\"\npassword_format = \"{format}\"\n"),
        );
        let link = env.link(mail);
        reset_stdin(&env, &link, GOOD).success();
        let dn = Slapd::dn(uid);
        assert!(slapd.can_bind(&dn, GOOD), "{format}");
        assert!(!slapd.can_bind(&dn, OLD_PW), "{format}");
        let out = std::process::Command::new("ldapsearch")
            .args([
                "-x",
                "-LLL",
                "-o",
                "ldif-wrap=no",
                "-H",
                &slapd.url(),
                "-D",
                server::ROOT_DN,
                "-w",
                server::ROOT_PW,
                "-b",
                &dn,
                "-s",
                "base",
                "userPassword",
            ])
            .output()
            .expect("ldapsearch");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let value = text
            .lines()
            .find_map(|l| l.strip_prefix("userPassword:: "))
            .expect("a userPassword value");
        use base64::Engine as _;
        let raw = base64::engine::general_purpose::STANDARD
            .decode(value)
            .expect("base64");
        assert!(
            raw.starts_with(prefix.as_bytes()),
            "{format}: {}",
            String::from_utf8_lossy(&raw)
        );
    }
}

/// `init` binds, finds the base DN, checks that the filter finds people, reports the password
/// policy, and names what is wrong; `doctor` adds the certificate and a sample lookup.
#[test]
fn init_and_doctor_diagnose_the_directory() {
    let Some(slapd) = Slapd::start(&people(), "") else {
        return;
    };
    let ca = format!("ca_file = \"{}\"\n", slapd.ca.display());
    let env = Env::with_toml(|dir| {
        format!(
            "{}{}",
            default_toml(dir),
            ldap_section(dir, &slapd.ldaps_url(), &ca)
        )
    });
    let a = env.cmd().arg("init").assert().success();
    let err = stderr(&a);
    assert!(err.contains("bound as cn=pwreset"), "{err}");
    assert!(err.contains("finds people"), "{err}");
    assert!(
        err.contains("password policy in force: cn=default,ou=policies"),
        "{err}"
    );
    assert!(err.contains("pwdMinLength 12"), "{err}");
    let a = env.cmd().args(["doctor", "--json"]).assert().success();
    let checks: serde_json::Value = serde_json::from_str(&stdout(&a)).expect("json");
    let names: Vec<(String, String)> = checks
        .as_array()
        .expect("array")
        .iter()
        .map(|c| {
            (
                c["check"].as_str().unwrap_or("").to_owned(),
                c["status"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    assert!(names.contains(&("ldap".into(), "ok".into())), "{names:?}");
    assert!(
        names.contains(&("certificate".into(), "ok".into())),
        "{names:?}"
    );
    assert!(stdout(&a).contains("a lookup by address"), "{}", stdout(&a));

    // What is wrong, named: the bind password, the base DN, the filter.
    for (extra, code, words) in [
        ("starttls = false\n", 78, "invalid credentials"),
        (
            "starttls = false\nbase_dn = \"ou=nobody,dc=example,dc=com\"\n",
            78,
            "ldap.base_dn",
        ),
        (
            "starttls = false\nuser_filter = \"(objectClass=posixAccount)\"\n",
            78,
            "ldap.user_filter",
        ),
    ] {
        let env = Env::with_toml(|dir| {
            let mut section = ldap_section(dir, &slapd.url(), "");
            if words == "invalid credentials" {
                std::fs::write(dir.join("ldap-password"), "wrong\n").expect("write");
            }
            // A later base_dn in [ldap] would be a duplicate key: replace the default one.
            if let Some(base) = extra.lines().find(|l| l.starts_with("base_dn")) {
                section = section.replace(&format!("base_dn = \"{PEOPLE}\""), base);
            }
            let rest: String = extra
                .lines()
                .filter(|l| !l.starts_with("base_dn"))
                .map(|l| format!("{l}\n"))
                .collect();
            format!("{}{section}{rest}", default_toml(dir))
        });
        let a = env.cmd().arg("init").assert().code(code);
        assert!(stderr(&a).contains(words), "{extra}: {}", stderr(&a));
        let a = env.cmd().args(["doctor"]).assert().code(code);
        assert!(stdout(&a).contains(words), "{extra}: {}", stdout(&a));
    }
}

/// pwreset's tables on a server made for an integer-keyed users table cannot hold a
/// directory's text ids: adding [ldap] to such an installation is a 78 that says what to do,
/// not a failure at the first request.
#[test]
fn ldap_on_tables_made_for_integer_ids_is_refused() {
    if crate::harness::backend() == crate::harness::Backend::Sqlite {
        eprintln!(
            "skipped: SQLite keeps any id in the same column (run with PWRESET_TEST_BACKEND)"
        );
        return;
    }
    let env = Env::new();
    env.init();
    let config = std::fs::read_to_string(&env.config).expect("read config");
    std::fs::write(
        &env.config,
        format!(
            "{config}{}",
            ldap_section(env.dir.path(), "ldap://127.0.0.1:1", "starttls = false")
        ),
    )
    .expect("write config");
    let a = env.cmd().arg("init").assert().code(78);
    assert!(stderr(&a).contains("integer keys"), "{}", stderr(&a));
}

/// `revoke`, `audit` and `purge-expired` go through the same services with a directory as
/// with a table: people are found in the directory by address (in any case), their tokens
/// and audit records are pwreset's own.
#[test]
fn revoke_audit_and_purge_work_with_a_directory() {
    let Some(slapd) = Slapd::start(&people(), "") else {
        return;
    };
    let env = env_for(&slapd, "");
    let alices = env.link("alice@example.com");
    let bobs = env.link("bob@example.com");
    let a = env
        .cmd()
        .args([
            "revoke",
            "--user",
            "ALICE@example.com",
            "--reason",
            "ticket 4711",
        ])
        .assert()
        .success();
    assert!(stdout(&a).contains("revoked 1 open link"), "{}", stdout(&a));
    let (code, out) = verify(&env, &alices);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("revoked") && out.contains("ticket 4711"),
        "{out}"
    );
    reset_stdin(&env, &alices, GOOD).code(1);
    assert!(
        slapd.can_bind(&Slapd::dn("alice"), OLD_PW),
        "nothing changed"
    );
    assert_eq!(verify(&env, &bobs).0, 0, "bob's link is not alice's");
    // Once more: nothing left to revoke. An address the directory lacks: 67.
    env.cmd()
        .args(["revoke", "--user", "alice@example.com"])
        .assert()
        .code(1);
    env.cmd()
        .args(["revoke", "--user", "nobody@example.com"])
        .assert()
        .code(67);
    // One link by itself.
    let a = env.cmd().args(["revoke", &bobs]).assert().success();
    assert!(stdout(&a).contains("bob@example.com"), "{}", stdout(&a));
    assert_eq!(verify(&env, &bobs).0, 1);

    // audit --user finds the person in the directory, and shows only their records.
    let a = env
        .cmd()
        .args(["audit", "--json", "--user", "alice@EXAMPLE.COM"])
        .assert()
        .success();
    let entries: serde_json::Value = serde_json::from_str(&stdout(&a)).expect("json");
    let entries = entries.as_array().expect("an array");
    let actions: Vec<&str> = entries
        .iter()
        .map(|e| e["action"].as_str().unwrap_or(""))
        .collect();
    assert!(actions.contains(&"revoke"), "{actions:?}");
    assert!(actions.contains(&"request"), "{actions:?}");
    assert!(
        entries.iter().all(|e| e["email"]
            .as_str()
            .is_some_and(|m| m.eq_ignore_ascii_case("alice@example.com"))),
        "{entries:?}"
    );
    let a = env
        .cmd()
        .args(["audit", "--user", "nobody@example.com"])
        .assert()
        .code(67);
    assert!(stderr(&a).contains("nobody@example.com"), "{}", stderr(&a));

    // purge-expired: the two revoked tokens and an expired one go; the live one stays.
    let live = env.link("bob@example.com");
    let expired = env.link("alice@example.com");
    let uuid = slapd.search(&Slapd::dn("alice"), "(objectClass=*)", &["entryUUID"]);
    let uuid = uuid
        .lines()
        .find_map(|l| l.strip_prefix("entryUUID: "))
        .expect("alice's entryUUID");
    // Dead a while ago, not in the second the purge runs.
    let t = crate::harness::unix_now() - 7200;
    env.exec(&format!(
        "UPDATE pwreset_tokens SET revoked_at = {t}, dead_at = {t} WHERE revoked_at IS NOT NULL"
    ));
    env.exec(&format!(
        "UPDATE pwreset_tokens SET expires_at = {t}, dead_at = {t} WHERE revoked_at IS NULL AND user_id = {}",
        env.quote(uuid)
    ));
    assert_eq!(verify(&env, &expired).0, 1, "expired");
    let a = env
        .cmd()
        .args(["purge-expired", "--json"])
        .assert()
        .success();
    let v: serde_json::Value = serde_json::from_str(stdout(&a).trim()).expect("json");
    assert_eq!(
        v,
        serde_json::json!({"purged": 3, "expired": 1, "used": 0, "revoked": 2, "dry_run": false}),
    );
    assert_eq!(env.i64("SELECT count(*) FROM pwreset_tokens"), 1);
    assert_eq!(verify(&env, &live).0, 0, "the live link survives the purge");
}

/// With no bind_password_file the bind password comes from PWRESET_LDAP_PASSWORD (for
/// systemd's credentials or a secret store); with neither, the 78 names both. A password file
/// others can read is refused with 77 and the chmod that fixes it, the variable set or not.
#[test]
fn the_bind_password_from_the_environment_or_a_private_file() {
    let Some(slapd) = Slapd::start(&people(), "") else {
        return;
    };
    let env = Env::with_toml(|dir| {
        format!(
            "{}\n[ldap]\nurl = \"{}\"\nstarttls = false\nbind_dn = \"{BIND_DN}\"\nbase_dn = \"{PEOPLE}\"\n",
            default_toml(dir),
            slapd.url()
        )
    });
    let a = env.cmd().arg("init").assert().code(78);
    let err = stderr(&a);
    assert!(
        err.contains("PWRESET_LDAP_PASSWORD") && err.contains("bind_password_file"),
        "{err}"
    );
    let a = env
        .cmd()
        .env("PWRESET_LDAP_PASSWORD", BIND_PW)
        .arg("init")
        .assert()
        .success();
    assert!(stderr(&a).contains("bound as cn=pwreset"), "{}", stderr(&a));
    let a = env
        .cmd()
        .env("PWRESET_LDAP_PASSWORD", BIND_PW)
        .args(["request", "--no-email", "--force", "bob@example.com"])
        .assert()
        .success();
    assert!(stdout(&a).contains("token="), "{}", stdout(&a));
    let a = env
        .cmd()
        .env("PWRESET_LDAP_PASSWORD", "not the password")
        .args(["request", "--no-email", "--force", "bob@example.com"])
        .assert()
        .code(78);
    assert!(stderr(&a).contains("invalid credentials"), "{}", stderr(&a));

    let env = Env::with_toml(|dir| {
        format!(
            "{}{}",
            default_toml(dir),
            ldap_section(dir, &slapd.url(), "starttls = false\n")
        )
    });
    let file = env.dir.path().join("ldap-password");
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    }
    for args in [&["init"][..], &["request", "bob@example.com"][..]] {
        for with_variable in [false, true] {
            let mut cmd = env.cmd();
            if with_variable {
                cmd.env("PWRESET_LDAP_PASSWORD", BIND_PW);
            }
            let a = cmd.args(args).assert().code(77);
            let err = stderr(&a);
            assert!(
                err.contains(&file.display().to_string()) && err.contains("chmod 600"),
                "{args:?}: {err}"
            );
            assert!(err.contains("ldap.bind_password_file"), "{err}");
        }
    }
    assert!(env.messages().is_empty());
}

/// The bind DN's rights, named: when it may not read the people's mail or id attribute,
/// `init` and `doctor` say which to grant (77); a directory that is not there is 75, "cannot be
/// reached", not a configuration error.
#[test]
fn init_and_doctor_name_the_rights_the_bind_dn_lacks() {
    let Some(slapd) = Slapd::start(&people(), "") else {
        return;
    };
    let env = env_for(&slapd, "");
    for attr in ["mail", "entryUUID"] {
        let mut rules = server::default_access();
        // Before the rule that lets it read everything else.
        rules.insert(
            1,
            format!("to attrs={attr} by dn.exact=\"{BIND_DN}\" none by * read"),
        );
        slapd.set_access(&rules);
        let a = env.cmd().arg("init").assert().code(77);
        let err = stderr(&a);
        assert!(
            err.contains(&format!("cannot read their {attr}"))
                && err.contains(&format!("grant it read access to {attr}")),
            "{err}"
        );
        let a = env.cmd().args(["doctor", "--json"]).assert().code(77);
        let checks: serde_json::Value = serde_json::from_str(&stdout(&a)).expect("json");
        let ldap = checks
            .as_array()
            .expect("array")
            .iter()
            .find(|c| c["check"] == "ldap" && c["status"] == "fail")
            .unwrap_or_else(|| panic!("no failed ldap check: {checks}"));
        assert!(
            ldap.to_string()
                .contains(&format!("grant it read access to {attr}")),
            "{ldap}"
        );
    }
    slapd.set_access(&server::default_access());
    env.cmd().arg("init").assert().success();

    // Nothing listening: 75, with what to check.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
        l.local_addr().expect("local addr").port()
    };
    let config = std::fs::read_to_string(&env.config).expect("read config");
    env.set_config(&config.replace(&slapd.url(), &format!("ldap://127.0.0.1:{closed}")));
    let a = env.cmd().arg("init").assert().code(75);
    assert!(stderr(&a).contains("cannot be reached"), "{}", stderr(&a));
    assert!(stderr(&a).contains("ldap.url"), "{}", stderr(&a));
    let a = env.cmd().arg("doctor").assert().code(75);
    assert!(stdout(&a).contains("cannot be reached"), "{}", stdout(&a));
}

/// `starttls = false` to `localhost`: allowed, because every address the name has here is
/// loopback; pwreset connects to those addresses (see `connect_urls`' unit test), and works.
#[test]
fn plaintext_to_localhost_works() {
    let Some(slapd) = Slapd::start(&people(), "") else {
        return;
    };
    let url = format!("ldap://localhost:{}", slapd.port);
    let env = env_with(&slapd, &url, "starttls = false\n", "");
    let link = env.link("bob@example.com");
    reset_stdin(&env, &link, GOOD).success();
    assert!(slapd.can_bind(&Slapd::dn("bob"), GOOD));
    let a = env.cmd().arg("doctor").assert().success();
    assert!(
        stdout(&a).contains("plaintext (loopback)"),
        "{}",
        stdout(&a)
    );
}
