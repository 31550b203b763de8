//! The messages themselves, through the real binary: what they say (service, support, expiry in
//! words and in `mail.timezone`), in which language, from which template, and that SpamAssassin
//! finds nothing to object to.

use crate::harness::{Env, default_toml, stderr};

const PASSWORD: &str = "Vq8#tLm2!pRz9wXe-kJ4";

/// The default test config with `mail` added to `[mail]`.
fn env_mail(mail: &str) -> Env {
    let env = Env::with_toml(|dir| {
        default_toml(dir).replace(
            "from = \"Accounts <no-reply@example.com>\"\n",
            &format!("from = \"Accounts <no-reply@example.com>\"\n{mail}\n"),
        )
    });
    env.init();
    env.cmd()
        .args(["user", "add", "alice@example.com", "--name", "Alice Martin"])
        .assert()
        .success();
    env
}

fn parse(eml: &str) -> mail_parser::Message<'_> {
    mail_parser::MessageParser::default()
        .parse(eml.as_bytes())
        .expect("a parseable message")
}

/// Request a reset, then reset with the link: the two messages (reset, changed).
fn both_messages(env: &Env) -> (String, String) {
    env.cmd()
        .args(["request", "alice@example.com"])
        .assert()
        .success();
    let reset = env.messages().pop().expect("the reset mail");
    let text = parse(&reset).body_text(0).expect("text").into_owned();
    let at = text.find("token=").expect("a link") + "token=".len();
    let token = &text[at..at + pwreset::token::TEXT_LEN];
    env.cmd()
        .args(["reset", "--password-stdin", token])
        .write_stdin(format!("{PASSWORD}\n"))
        .assert()
        .success();
    let changed = env.messages().pop().expect("the notice");
    (reset, changed)
}

#[test]
fn mail_names_the_service_the_support_and_the_local_expiry() {
    // Asia/Tokyo: no daylight saving time, so the abbreviation is the same all year.
    let env = env_mail(
        "service_name = \"Example Accounts\"\nsupport = \"https://help.example.com/\"\ntimezone = \"Asia/Tokyo\"",
    );
    let (reset, changed) = both_messages(&env);

    let msg = parse(&reset);
    assert_eq!(msg.subject(), Some("Reset your Example Accounts password"));
    let text = msg.body_text(0).expect("text");
    let html = msg.body_html(0).expect("html");
    for needle in [
        "Example Accounts",
        "expires in 1 hour (",
        " JST).",
        "Questions? Contact https://help.example.com/.",
    ] {
        assert!(text.contains(needle), "text lacks {needle:?}:\n{text}");
    }
    // The exact time stays, for reference, in UTC.
    assert!(
        text.contains("Reference: link valid until 20") && text.contains("Z (UTC)"),
        "{text}"
    );
    // A button (a table cell with inline styles), the link as text, no classes, nothing
    // fetched from elsewhere.
    assert!(html.contains("<td align=\"center\" bgcolor="), "{html}");
    assert!(html.contains("Choose a new password</a>"), "{html}");
    assert!(html.contains("word-break: break-all;\">https://"), "{html}");
    assert!(
        html.contains("href=\"https://help.example.com/\""),
        "{html}"
    );
    for absent in ["class=", "<img", "<link", "<style", "url(", "<script"] {
        assert!(!html.contains(absent), "{absent} in\n{html}");
    }

    let msg = parse(&changed);
    assert_eq!(
        msg.subject(),
        Some("Your Example Accounts password was changed")
    );
    let text = msg.body_text(0).expect("text");
    assert!(text.contains(" JST."), "{text}");
    let after = text
        .split_once("If this wasn’t you:")
        .map(|x| x.1)
        .unwrap_or_else(|| panic!("no \"if this wasn't you\" in\n{text}"));
    assert!(
        after.contains("Contact https://help.example.com/ right away"),
        "{text}"
    );
}

#[test]
fn an_unknown_time_zone_is_a_config_error() {
    let env = Env::with_toml(|dir| {
        default_toml(dir).replace("[mail]\n", "[mail]\ntimezone = \"Europe/Atlantis\"\n")
    });
    let a = env.cmd().args(["user", "list"]).assert().code(78);
    let err = stderr(&a);
    assert!(
        err.contains("mail.timezone") && err.contains("Europe/Atlantis"),
        "{err}"
    );
}

#[test]
fn support_must_be_an_address_or_a_url() {
    let env = Env::with_toml(|dir| {
        default_toml(dir).replace("[mail]\n", "[mail]\nsupport = \"ask Bob\"\n")
    });
    let a = env.cmd().args(["user", "list"]).assert().code(78);
    assert!(stderr(&a).contains("mail.support"), "{}", stderr(&a));
}

#[test]
fn template_dir_overrides_for_every_language_and_per_language() {
    let env = env_mail("");
    let dir = env.dir.path().join("templates");
    std::fs::create_dir_all(dir.join("de")).expect("mkdir");
    std::fs::write(
        dir.join("reset.txt"),
        "Shared: {{ link }} ({{ expires_in }}, {{ locale }})\n",
    )
    .expect("write");
    std::fs::write(dir.join("reset.subject"), "Ours: {{ service_name }}\n").expect("write");
    std::fs::write(dir.join("de/reset.txt"), "Deutsch: {{ link }}\n").expect("write");
    let text = std::fs::read_to_string(&env.config).expect("config");
    env.set_config(&text.replace(
        "[mail]\n",
        &format!("[mail]\ntemplate_dir = \"{}\"\n", dir.display()),
    ));
    env.cmd()
        .args(["request", "alice@example.com"])
        .assert()
        .success();
    let eml = env.messages().pop().expect("a message");
    let msg = parse(&eml);
    assert_eq!(msg.subject(), Some("Ours: Accounts"));
    let text = msg.body_text(0).expect("text");
    assert!(text.starts_with("Shared: https://"), "{text}");
    assert!(text.contains("(1 hour, en)"), "{text}");
    // What template_dir lacks comes from the built-in templates.
    assert!(
        msg.body_html(0)
            .expect("html")
            .contains("Choose a new password"),
        "{eml}"
    );
}

#[test]
fn one_layout_for_every_language_and_the_words_per_language() {
    let env = env_mail("service_name = \"Example Accounts\"");
    let dir = env.dir.path().join("templates");
    for lang in ["de", "it"] {
        std::fs::create_dir_all(dir.join(lang)).expect("mkdir");
    }
    // One layout for both mails in every language: the admin's changes them all.
    std::fs::write(
        dir.join("layout.html"),
        "<html lang=\"{{ locale }}\"><h1>{% block title %}{% endblock %}</h1>{% block content %}{% endblock %}<footer>Example Corp, {% block footer %}{% endblock %}</footer></html>\n",
    )
    .expect("write");
    // The words of a language: a few keys over the built-in ones, or a new language.
    std::fs::write(
        dir.join("de/strings.toml"),
        "[reset]\nbutton = \"Jetzt ein neues Passwort wählen\"\n",
    )
    .expect("write");
    std::fs::write(
        dir.join("it/strings.toml"),
        "[greeting]\nname = \"Gentile {name},\"\n\n[reset]\nsubject = \"Reimposta la password di {service_name}\"\nbutton = \"Scegli una nuova password\"\n",
    )
    .expect("write");
    let text = std::fs::read_to_string(&env.config).expect("config");
    env.set_config(&text.replace(
        "[mail]\n",
        &format!("[mail]\ntemplate_dir = \"{}\"\n", dir.display()),
    ));
    for (locale, subject, greeting, button) in [
        (
            "de",
            "Ihr Passwort für Example Accounts zurücksetzen",
            "Guten Tag Alice Martin,",
            "Jetzt ein neues Passwort wählen",
        ),
        (
            "it",
            "Reimposta la password di Example Accounts",
            "Gentile Alice Martin,",
            "Scegli una nuova password",
        ),
        (
            "fr",
            "Réinitialisation de votre mot de passe Example Accounts",
            "Bonjour Alice Martin,",
            "Choisir un nouveau mot de passe",
        ),
    ] {
        env.cmd()
            .args([
                "request",
                "--force",
                "--locale",
                locale,
                "alice@example.com",
            ])
            .assert()
            .success();
        let eml = env.messages().pop().expect("a message");
        let msg = parse(&eml);
        assert_eq!(msg.subject(), Some(subject), "{locale}");
        let html = msg.body_html(0).expect("html");
        assert!(
            html.starts_with(&format!("<html lang=\"{locale}\">")),
            "{html}"
        );
        assert!(html.contains(&format!(">{button}</a>")), "{locale}: {html}");
        assert!(
            html.contains("<footer>Example Corp, <p"),
            "{locale}: {html}"
        );
        let text = msg.body_text(0).expect("text");
        assert!(text.starts_with(greeting), "{locale}: {text}");
    }
    // A key no catalogue has is refused, naming the file.
    std::fs::write(dir.join("it/strings.toml"), "[reset]\nbotton = \"x\"\n").expect("write");
    let a = env
        .cmd()
        .args(["request", "alice@example.com"])
        .assert()
        .code(78);
    let err = stderr(&a);
    assert!(
        err.contains("it/strings.toml") && err.contains("reset.botton"),
        "{err}"
    );
}

#[test]
fn a_misspelt_variable_in_a_language_folder_is_a_config_error() {
    let env = env_mail("");
    let dir = env.dir.path().join("templates");
    std::fs::create_dir_all(dir.join("fr")).expect("mkdir");
    std::fs::write(dir.join("fr/changed.txt"), "{{ changed_on }}\n").expect("write");
    let text = std::fs::read_to_string(&env.config).expect("config");
    env.set_config(&text.replace(
        "[mail]\n",
        &format!("[mail]\ntemplate_dir = \"{}\"\n", dir.display()),
    ));
    let a = env
        .cmd()
        .args(["request", "alice@example.com"])
        .assert()
        .code(78);
    let err = stderr(&a);
    assert!(
        err.contains("fr/changed.txt") && err.contains("changed_local"),
        "{err}"
    );
}

#[test]
fn request_with_a_locale_writes_in_that_language() {
    let env = env_mail("service_name = \"Example Accounts\"");
    env.cmd()
        .args(["request", "--locale", "de_DE.UTF-8", "alice@example.com"])
        .assert()
        .success();
    let eml = env.messages().pop().expect("a message");
    let msg = parse(&eml);
    assert_eq!(
        msg.subject(),
        Some("Ihr Passwort für Example Accounts zurücksetzen")
    );
    assert_eq!(
        msg.header("Content-Language").and_then(|h| h.as_text()),
        Some("de")
    );
    let text = msg.body_text(0).expect("text");
    assert!(text.contains("läuft in 1 Stunde ab"), "{text}");
}

#[test]
fn the_greeting_uses_the_name_from_the_users_table() {
    let env = env_mail("");
    let text = std::fs::read_to_string(&env.config).expect("config");
    env.set_config(&text.replace("[mail]\n", "[users]\nname_column = \"name\"\n\n[mail]\n"));
    let (reset, changed) = both_messages(&env);
    for eml in [reset, changed] {
        let text = parse(&eml)
            .body_text(0)
            .expect("text")
            .replace("\r\n", "\n");
        assert!(text.starts_with("Hello Alice Martin,\n"), "{text}");
    }
}

/// SpamAssassin's report: the names of the rules that fired.
fn spamassassin_rules(eml: &str) -> Option<Vec<String>> {
    use std::io::Write as _;
    let mut child = std::process::Command::new("spamassassin")
        .args(["-L", "-t"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .ok()?;
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(eml.as_bytes())
        .expect("write to spamassassin");
    let out = child.wait_with_output().expect("spamassassin ran");
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    let table = report
        .split_once("---- ---------------------- ")
        .map(|x| x.1)
        .unwrap_or_else(|| panic!("no SpamAssassin report in\n{report}"));
    Some(
        table
            .lines()
            .skip(1)
            .filter_map(|l| {
                let mut words = l.split_whitespace();
                let score = words.next()?;
                score.parse::<f64>().ok()?;
                words.next().map(str::to_owned)
            })
            .collect(),
    )
}

#[test]
fn spamassassin_finds_nothing_in_the_messages() {
    // Rules that fire on any message tested as a file rather than received (no Received
    // header, no relay), and on any message with an HTML part, which pwreset's messages have
    // on purpose; each scores 0.
    const NOT_THE_MESSAGE: [&str; 3] = ["NO_RECEIVED", "NO_RELAYS", "HTML_MESSAGE"];
    if std::process::Command::new("spamassassin")
        .arg("-V")
        .output()
        .is_err()
    {
        eprintln!("skipped: spamassassin is not installed (apt-get install spamassassin)");
        return;
    }
    let env = env_mail(
        "service_name = \"Example Accounts\"\nsupport = \"help@example.com\"\ntimezone = \"Europe/Berlin\"",
    );
    let (reset, changed) = both_messages(&env);
    for (which, eml) in [("reset", reset), ("changed", changed)] {
        let rules = spamassassin_rules(&eml).expect("spamassassin runs");
        eprintln!("spamassassin on the {which} mail: {}", rules.join(" "));
        let ours: Vec<&String> = rules
            .iter()
            .filter(|r| !NOT_THE_MESSAGE.contains(&r.as_str()))
            .collect();
        assert!(
            ours.is_empty(),
            "SpamAssassin rules fired on the {which} mail: {ours:?}\n{eml}"
        );
    }
}

#[test]
fn time_zones_work_without_the_systems_tz_database() {
    // A fresh container may have no /usr/share/zoneinfo: pwreset carries its own copy.
    let env = env_mail("timezone = \"Asia/Kolkata\"");
    let empty = env.dir.path().join("no-zoneinfo");
    std::fs::create_dir_all(&empty).expect("mkdir");
    env.cmd()
        .env("TZDIR", &empty)
        .args(["request", "alice@example.com"])
        .assert()
        .success();
    let eml = env.messages().pop().expect("a message");
    let text = parse(&eml).body_text(0).expect("text").into_owned();
    assert!(text.contains(" IST)."), "{text}");
}
