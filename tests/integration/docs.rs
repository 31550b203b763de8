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
