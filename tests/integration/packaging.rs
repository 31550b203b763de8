//! What the Debian package ships: the example config (`contrib/config.toml`, installed as
//! `/etc/pwreset/config.toml`) works as written, and every asset `cargo deb` packs exists.
//! The package itself is built, installed and run by `.ci/deb-check`.

use crate::harness::Env;
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn example_config() -> String {
    std::fs::read_to_string(repo().join("contrib/config.toml")).expect("read contrib/config.toml")
}

/// The example with its one writable folder, /var/lib/pwreset, moved into `dir`.
fn relocated(text: &str, dir: &Path) -> String {
    let dir = dir.to_str().expect("utf-8 temp path");
    text.replace("/var/lib/pwreset", dir)
}

/// The lines that are not comments or blank.
fn active_lines(text: &str) -> Vec<&str> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect()
}

#[test]
fn example_config_works_as_shipped() {
    let text = example_config();
    // Safe to install: mail goes to files until an admin chooses a real transport, and the only
    // paths it writes are under /var/lib/pwreset, the units' one writable folder.
    let active = active_lines(&text);
    assert!(active.contains(&r#"transport = "file""#), "{active:#?}");
    for line in &active {
        if let Some(i) = line.find("\"/") {
            assert!(
                line[i + 1..].starts_with("/var/lib/pwreset/"),
                "an active path outside /var/lib/pwreset: {line}"
            );
        }
    }

    let env = Env::with_toml(|dir| relocated(&text, dir));
    env.cmd().arg("init").assert().success();
    assert!(
        env.db.exists(),
        "init made the database of the example config"
    );
    env.add_user("alice@example.com");
    env.cmd()
        .args(["request", "alice@example.com"])
        .assert()
        .success();
    assert_eq!(env.messages().len(), 1, "the reset mail went to the outbox");
}

/// Every commented-out `key = value` (and `[mail.smtp]`-style header) is a real key with a
/// valid value: uncommented, the file still loads. The keys for a database server or for the
/// bcrypt pepper stay commented: they are refused with a SQLite database and argon2id; so do
/// the columns and SQL of an application's table, which pwreset's own table does not have.
/// (A unit test of `config::example` parses the file with all of them.)
#[test]
fn example_config_comments_name_real_keys() {
    let text = example_config();
    let mut out = String::new();
    let mut uncommented = 0;
    // The `[ldap]` section is commented out as a whole (users are in a table or in a
    // directory, not both): its keys stay commented until the next real section.
    let mut in_ldap = false;
    for line in text.lines() {
        if line.starts_with("# Coming in later releases") {
            break;
        }
        if line.starts_with("# [ldap]") {
            in_ldap = true;
        } else if line.starts_with('[') {
            in_ldap = false;
        }
        let rest = if in_ldap {
            ""
        } else {
            line.strip_prefix("# ").unwrap_or("")
        };
        let is_key = rest.split_once(" = ").is_some_and(|(k, _)| {
            !k.is_empty()
                && k.chars().all(|c| c.is_ascii_lowercase() || c == '_')
                && !k.starts_with("database_")
                && ![
                    "schema",
                    "pepper_file",
                    "name_column",
                    "locale_column",
                    "after_reset",
                ]
                .contains(&k)
        });
        let is_header = rest.starts_with("[mail.");
        if is_key || is_header {
            out.push_str(rest);
            uncommented += 1;
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    assert!(uncommented >= 10, "only {uncommented} commented keys found");
    let env = Env::with_toml(|dir| relocated(&out, dir));
    let a = env.cmd().arg("init").assert();
    let err = String::from_utf8_lossy(&a.get_output().stderr).into_owned();
    a.success();
    assert!(!err.contains("unknown"), "{err}");
}

/// The sources of `[package.metadata.deb] assets` exist (globs: at least one match), and the
/// maintainer scripts are executable shell scripts: a renamed file fails here, not in packaging.
#[test]
fn deb_assets_exist() {
    use std::os::unix::fs::PermissionsExt;
    let manifest: toml::Table = std::fs::read_to_string(repo().join("Cargo.toml"))
        .expect("read Cargo.toml")
        .parse()
        .expect("parse Cargo.toml");
    let deb = &manifest["package"]["metadata"]["deb"];
    let assets = deb["assets"].as_array().expect("assets");
    let mut dests = Vec::new();
    for asset in assets {
        let asset = asset.as_array().expect("[source, dest, mode]");
        let source = asset[0].as_str().expect("source");
        dests.push(asset[1].as_str().expect("dest").to_owned());
        if source.starts_with("target/release/") {
            continue; // built by cargo deb
        }
        match source.split_once('*') {
            None => assert!(repo().join(source).is_file(), "no asset {source}"),
            Some((prefix, suffix)) => {
                let (dir, name_prefix) = prefix.rsplit_once('/').unwrap_or((".", prefix));
                let matches = std::fs::read_dir(repo().join(dir))
                    .expect("read asset folder")
                    .filter_map(|e| e.ok()?.file_name().into_string().ok())
                    .filter(|n| n.starts_with(name_prefix) && n.ends_with(suffix))
                    .count();
                assert!(matches > 0, "no file matches asset {source}");
            }
        }
    }
    // Every unit in contrib/systemd is packaged.
    for unit in std::fs::read_dir(repo().join("contrib/systemd")).expect("read units") {
        let name = unit
            .expect("entry")
            .file_name()
            .into_string()
            .expect("utf-8");
        assert!(
            assets
                .iter()
                .any(|a| a[0].as_str() == Some(&format!("contrib/systemd/{name}"))),
            "contrib/systemd/{name} is not a deb asset"
        );
    }
    assert!(dests.iter().any(|d| d == "etc/pwreset/config.toml"));
    // Every man page is packaged, in its section's folder: pwreset.conf(5) too.
    for (glob, dest) in [
        ("man/*.1", "usr/share/man/man1/"),
        ("man/*.5", "usr/share/man/man5/"),
    ] {
        assert!(
            assets
                .iter()
                .any(|a| a[0].as_str() == Some(glob) && a[1].as_str() == Some(dest)),
            "{glob} is not packaged to {dest}"
        );
    }

    let scripts = repo().join(
        deb["maintainer-scripts"]
            .as_str()
            .expect("maintainer-scripts"),
    );
    for name in ["postinst", "prerm", "postrm"] {
        let path = scripts.join(name);
        let meta = std::fs::metadata(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(
            meta.permissions().mode() & 0o111 != 0,
            "{name} is not executable"
        );
        let text = std::fs::read_to_string(&path).expect("read script");
        assert!(text.starts_with("#!/bin/sh\n"), "{name}: #!/bin/sh");
        assert!(text.contains("set -e"), "{name}: set -e");
        let ok = std::process::Command::new("sh")
            .arg("-n")
            .arg(&path)
            .status()
            .expect("run sh -n");
        assert!(ok.success(), "{name}: sh -n failed");
    }
}
