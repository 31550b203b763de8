//! The checked-in completions and man pages match what the clap definition generates.
//! `PWRESET_REGENERATE=1 cargo test docs` rewrites them.

#[test]
fn generated_files_are_up_to_date() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let regenerate = std::env::var_os("PWRESET_REGENERATE").is_some_and(|v| v == "1");
    let mut stale = Vec::new();
    for (rel, content) in pwreset::docs::generated_files().expect("generate") {
        let path = root.join(&rel);
        let current = std::fs::read(&path).ok();
        if current.as_deref() != Some(&content[..]) {
            if regenerate {
                std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
                std::fs::write(&path, &content).expect("write");
            } else {
                stale.push(rel.display().to_string());
            }
        }
    }
    assert!(
        stale.is_empty(),
        "generated files are out of date: {}; run PWRESET_REGENERATE=1 cargo test docs and commit them",
        stale.join(", ")
    );
}

#[test]
fn man_pages_have_the_sections_sysadmins_look_for() {
    let files = pwreset::docs::generated_files().expect("generate");
    let top = files
        .iter()
        .find(|(p, _)| p.ends_with("pwreset.1"))
        .map(|(_, c)| String::from_utf8_lossy(c).into_owned())
        .expect("pwreset.1");
    for section in ["EXIT STATUS", "FILES", "ENVIRONMENT", "EXAMPLES"] {
        assert!(
            top.contains(&format!(".SH \"{section}\"")),
            "pwreset.1 lacks {section}"
        );
    }
    for sub in [
        "init",
        "request",
        "verify",
        "reset",
        "purge-expired",
        "audit",
        "completions",
        "demo",
        "user-add",
        "user-list",
    ] {
        assert!(
            files
                .iter()
                .any(|(p, _)| p.ends_with(format!("pwreset-{sub}.1"))),
            "no man page for {sub}"
        );
    }
}

fn page(files: &[(std::path::PathBuf, Vec<u8>)], name: &str) -> String {
    files
        .iter()
        .find(|(p, _)| p.ends_with(name))
        .map(|(_, c)| String::from_utf8_lossy(c).into_owned())
        .unwrap_or_else(|| panic!("no {name}"))
}

/// pwreset.conf(5) documents every key, from the same list as `config example`.
#[test]
fn the_conf_page_documents_every_key() {
    let files = pwreset::docs::generated_files().expect("generate");
    let conf = page(&files, "man/pwreset.conf.5");
    for key in pwreset::config::keys::KEYS {
        let name = key.name.replace('-', "\\-");
        assert!(
            conf.contains(&format!("\\fB{name}\\fR = ")),
            "{} is not in pwreset.conf.5",
            key.name
        );
    }
    for section in [
        "[users]",
        "[mail.smtp]",
        "[password.argon2]",
        "[password.bcrypt]",
    ] {
        assert!(conf.contains(&format!(".SH \"{section}\"")), "{section}");
    }
    // contrib/config.toml, which the Debian package installs, is generated too.
    assert!(
        files
            .iter()
            .any(|(p, _)| p.ends_with("contrib/config.toml"))
    );
}

/// Synopses show what each option takes; each page lists only its command's exit codes; no
/// page hyphenates (a path broken at a hyphen reads as another path).
#[test]
fn synopses_exit_codes_and_hyphenation() {
    let files = pwreset::docs::generated_files().expect("generate");
    let request = page(&files, "man/pwreset-request.1");
    let synopsis = request
        .split(".SH \"SYNOPSIS\"\n")
        .nth(1)
        .and_then(|s| s.lines().next())
        .expect("synopsis");
    assert!(
        synopsis.contains("\\fB\\-\\-ttl\\fR \\fIDURATION\\fR"),
        "{synopsis}"
    );
    assert!(synopsis.contains("\\fIEMAIL\\fR..."), "{synopsis}");
    let exit = |page: &str| -> Vec<String> {
        page.split(".SH \"EXIT STATUS\"\n")
            .nth(1)
            .expect("EXIT STATUS")
            .split(".SH")
            .next()
            .expect("section")
            .lines()
            .filter_map(|l| l.strip_prefix("\\fB").and_then(|l| l.strip_suffix("\\fR")))
            .map(str::to_owned)
            .collect()
    };
    let verify = exit(&page(&files, "man/pwreset-verify.1"));
    assert!(verify.contains(&"1".to_owned()), "{verify:?}");
    assert!(!verify.contains(&"69".to_owned()), "{verify:?}");
    let completions = exit(&page(&files, "man/pwreset-completions.1"));
    assert_eq!(completions, ["0", "2", "74"]);
    let init = exit(&page(&files, "man/pwreset-init.1"));
    assert!(
        !init.contains(&"1".to_owned()) && !init.contains(&"130".to_owned()),
        "{init:?}"
    );
    for (path, content) in &files {
        if path.starts_with("man") {
            let text = String::from_utf8_lossy(content);
            assert!(text.contains("\n.nh\n"), "{} hyphenates", path.display());
        }
    }
}

/// Every environment variable the code reads (outside its unit tests) is in the ENVIRONMENT
/// sections of pwreset(1) and pwreset.conf(5) and in the header of `config example`: an
/// administrator who keeps a password out of the config file has to learn the variable's name
/// somewhere.
#[test]
fn every_environment_variable_read_is_documented() {
    fn sources(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        for e in std::fs::read_dir(dir).expect("read src") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                sources(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    sources(&root.join("src"), &mut files);
    let mut read = std::collections::BTreeSet::new();
    for f in files {
        let text = std::fs::read_to_string(&f).expect("read source");
        // Variables only the unit tests read are not the user's business.
        let code = text.split("#[cfg(test)]").next().unwrap_or("");
        for pattern in ["env::var(\"", "env = \""] {
            for (i, _) in code.match_indices(pattern) {
                let name: String = code[i + pattern.len()..]
                    .chars()
                    .take_while(|c| c.is_ascii_uppercase() || *c == '_')
                    .collect();
                if name.starts_with("PWRESET_") {
                    read.insert(name);
                }
            }
        }
    }
    assert!(read.contains("PWRESET_LDAP_PASSWORD"), "{read:?}");
    let files = pwreset::docs::generated_files().expect("generate");
    // The section's text, from its heading (quoted or not) to the next.
    let environment = |name: &str| {
        let text = page(&files, name);
        let start = text
            .find(".SH \"ENVIRONMENT\"\n")
            .or_else(|| text.find(".SH ENVIRONMENT\n"))
            .unwrap_or_else(|| panic!("{name} has no ENVIRONMENT section"));
        let rest = &text[start + 4..];
        rest.split("\n.SH").next().unwrap_or("").to_owned()
    };
    let top = environment("man/pwreset.1");
    let conf = environment("man/pwreset.conf.5");
    let example = crate::harness::stdout(
        &crate::harness::Env::new()
            .bare()
            .args(["config", "example"])
            .assert()
            .success(),
    );
    let header: String = example.lines().take_while(|l| l.starts_with('#')).collect();
    let debian = page(&files, "contrib/config.toml");
    let debian: String = debian.lines().take_while(|l| l.starts_with('#')).collect();
    for var in &read {
        let roff = format!("\\fB{}\\fR", var.replace('-', "\\-"));
        assert!(
            top.contains(&roff),
            "{var} is not in pwreset(1) ENVIRONMENT"
        );
        assert!(
            conf.contains(&roff),
            "{var} is not in pwreset.conf(5) ENVIRONMENT"
        );
        assert!(
            header.contains(var.as_str()),
            "{var} is not in config example's header"
        );
        assert!(
            debian.contains(var.as_str()),
            "{var} is not in contrib/config.toml's header"
        );
    }
}
