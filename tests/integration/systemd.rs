//! The systemd units in `contrib/systemd/`: the hardening each service promises, the purge
//! command line, and `systemd-analyze verify` (where it is installed).

use crate::harness::{BIN, Env};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

const UNITS: &[&str] = &[
    "pwreset-purge.service",
    "pwreset-purge.timer",
    "pwreset-serve.service",
    "pwreset-serve.socket",
];

const SERVICES: &[&str] = &["pwreset-purge.service", "pwreset-serve.service"];

/// Directives every service must carry, with their exact value ("" = empty, as in
/// `CapabilityBoundingSet=`, which drops every capability).
const HARDENING: &[(&str, &str)] = &[
    ("User", "pwreset"),
    ("Group", "pwreset"),
    ("UMask", "0077"),
    ("StateDirectory", "pwreset"),
    ("StateDirectoryMode", "0700"),
    ("ConfigurationDirectory", "pwreset"),
    ("NoNewPrivileges", "yes"),
    ("ProtectSystem", "strict"),
    ("ReadWritePaths", "/var/lib/pwreset"),
    ("PrivateTmp", "yes"),
    ("ProtectHome", "yes"),
    ("CapabilityBoundingSet", ""),
    ("RestrictAddressFamilies", "AF_UNIX AF_INET AF_INET6"),
    ("SystemCallFilter", "@system-service"),
    ("ProtectKernelTunables", "yes"),
    ("ProtectControlGroups", "yes"),
    ("RestrictNamespaces", "yes"),
    ("LockPersonality", "yes"),
    ("MemoryDenyWriteExecute", "yes"),
];

fn units_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib/systemd")
}

fn read_unit(name: &str) -> String {
    let path = units_dir().join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// `section -> key -> values` (a key may be given more than once). Comments and blank lines
/// are skipped; values are trimmed.
fn parse_unit(text: &str) -> BTreeMap<String, BTreeMap<String, Vec<String>>> {
    let mut out: BTreeMap<String, BTreeMap<String, Vec<String>>> = BTreeMap::new();
    let mut section = String::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.to_owned();
            continue;
        }
        let (key, value) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("not a key=value line: {line:?}"));
        out.entry(section.clone())
            .or_default()
            .entry(key.trim().to_owned())
            .or_default()
            .push(value.trim().to_owned());
    }
    out
}

/// The values of `section.key` in unit `name`.
fn values(name: &str, section: &str, key: &str) -> Vec<String> {
    parse_unit(&read_unit(name))
        .get(section)
        .and_then(|s| s.get(key))
        .cloned()
        .unwrap_or_default()
}

#[test]
fn services_carry_the_hardening() {
    let mut missing = Vec::new();
    for service in SERVICES {
        for (key, want) in HARDENING {
            let got = values(service, "Service", key);
            if !got.iter().any(|v| v == want) {
                missing.push(format!("{service}: {key}={want} (found {got:?})"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "missing hardening:\n{}",
        missing.join("\n")
    );
}

#[test]
fn purge_is_an_hourly_oneshot() {
    let svc = "pwreset-purge.service";
    assert_eq!(values(svc, "Service", "Type"), ["oneshot"]);
    assert_eq!(
        values(svc, "Service", "ExecStart"),
        ["/usr/bin/pwreset purge-expired -q"]
    );
    // Network families are there for a database server, and the unit says so.
    let text = read_unit(svc);
    assert!(
        text.contains("PostgreSQL") && text.contains("AF_INET"),
        "{svc} must say why it allows AF_INET/AF_INET6"
    );

    let timer = "pwreset-purge.timer";
    assert_eq!(values(timer, "Timer", "OnCalendar"), ["hourly"]);
    assert_eq!(values(timer, "Timer", "Persistent"), ["true"]);
    let delay = values(timer, "Timer", "RandomizedDelaySec");
    assert_eq!(delay.len(), 1, "{timer}: RandomizedDelaySec once");
    assert!(
        humantime::parse_duration(&delay[0]).is_ok_and(|d| d.as_secs() > 0),
        "{timer}: RandomizedDelaySec={delay:?}"
    );
    assert_eq!(values(timer, "Install", "WantedBy"), ["timers.target"]);
}

#[test]
fn serve_is_socket_activated_on_localhost() {
    assert_eq!(
        values("pwreset-serve.service", "Service", "ExecStart"),
        ["/usr/bin/pwreset serve"]
    );
    assert_eq!(
        values("pwreset-serve.socket", "Socket", "ListenStream"),
        ["127.0.0.1:8080"]
    );
    assert_eq!(
        values("pwreset-serve.socket", "Install", "WantedBy"),
        ["sockets.target"]
    );
}

/// serve caps its connections below the file limit it finds; systemd's default soft limit of
/// 1,024 would leave it a cap of under a thousand, which idle connections fill in a moment.
#[test]
fn serve_unit_raises_the_file_limit() {
    let got = values("pwreset-serve.service", "Service", "LimitNOFILE");
    assert_eq!(got, ["65536"], "pwreset-serve.service: LimitNOFILE");
}

/// The purge unit's command line, run as written (after `/usr/bin/pwreset`) against a real
/// database with dead tokens: it must succeed and print nothing, or the timer would fill the
/// journal (or fail) every hour.
#[test]
fn purge_unit_command_line_runs_silently() {
    let exec = values("pwreset-purge.service", "Service", "ExecStart");
    let args: Vec<&str> = exec[0].split_whitespace().collect();
    assert_eq!(args[0], "/usr/bin/pwreset");

    let env = Env::new();
    env.init().add_user("alice@example.com");
    env.link("alice@example.com");
    env.link("alice@example.com"); // revokes the first: one dead token to purge
    let out = env.std_cmd().args(&args[1..]).output().expect("run purge");
    assert!(
        out.status.success(),
        "{:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
    let open = env.i64("SELECT count(*) FROM pwreset_tokens");
    assert_eq!(open, 1, "the revoked token was purged, the live one kept");
}

/// Each `Documentation=man:NAME(1)` names a man page this crate ships.
#[test]
fn documentation_names_shipped_man_pages() {
    let man = Path::new(env!("CARGO_MANIFEST_DIR")).join("man");
    for unit in UNITS {
        for doc in values(unit, "Unit", "Documentation") {
            for uri in doc.split_whitespace() {
                let page = uri
                    .strip_prefix("man:")
                    .and_then(|p| p.strip_suffix("(1)"))
                    .unwrap_or_else(|| panic!("{unit}: unexpected Documentation {uri}"));
                assert!(
                    man.join(format!("{page}.1")).exists(),
                    "{unit}: no man page {page}.1"
                );
            }
        }
    }
}

/// `program` found in PATH.
fn in_path(program: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

/// A line on the real stderr, past the test harness's capture, so a skip shows in CI logs.
fn say(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// `systemd-analyze verify` on copies of the units whose `/usr/bin/pwreset` is the binary under
/// test (verify fails when ExecStart's program does not exist). verify does not look users up,
/// so `User=pwreset` needs no such user here. It exits 0 on unknown keys and bad values (it only
/// warns), so any output at all fails the test. With `man` installed, the man pages of
/// `Documentation=` are looked up among this crate's pages (verify fails on a missing page).
#[test]
fn units_pass_systemd_analyze_verify() {
    let Some(analyze) = in_path("systemd-analyze") else {
        say(
            "systemd::units_pass_systemd_analyze_verify skipped: systemd-analyze is not in PATH (apt-get install systemd)",
        );
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let mut files = Vec::new();
    for unit in UNITS {
        let text = read_unit(unit).replace("/usr/bin/pwreset", BIN);
        let path = dir.path().join(unit);
        std::fs::write(&path, text).expect("write unit");
        files.push(path);
    }
    let mut cmd = Command::new(&analyze);
    cmd.arg("verify");
    if in_path("man").is_some() {
        let man1 = dir.path().join("man/man1");
        std::fs::create_dir_all(&man1).expect("mkdir man1");
        for page in
            std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("man")).expect("read man/")
        {
            let page = page.expect("dir entry").path();
            std::fs::copy(&page, man1.join(page.file_name().expect("name"))).expect("copy page");
        }
        cmd.env("MANPATH", dir.path().join("man")).arg("--man=yes");
    } else {
        cmd.arg("--man=no");
    }
    let out = cmd
        .args(&files)
        .env("SYSTEMD_LOG_COLOR", "0")
        .output()
        .expect("run systemd-analyze");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && text.trim().is_empty(),
        "systemd-analyze verify: {:?}\n{text}",
        out.status
    );

    // The exposure score of each service, where this systemd can compute it offline (250+):
    // 2.0 or lower ("OK") on its 0-10 scale; the threshold is in tenths.
    for service in SERVICES {
        let out = Command::new(&analyze)
            .args(["security", "--offline=yes", "--threshold=20"])
            .arg(dir.path().join(service))
            .env("SYSTEMD_LOG_COLOR", "0")
            .output()
            .expect("run systemd-analyze security");
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        if text.contains("unrecognized option") || text.contains("Unknown option") {
            say(
                "systemd::units_pass_systemd_analyze_verify: this systemd-analyze has no security --offline; exposure not checked",
            );
            break;
        }
        assert!(
            out.status.success(),
            "{service}: exposure above 2.0:\n{text}"
        );
    }
}
