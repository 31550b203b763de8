//! Active Directory's password change (`password_change = "ad"`: `unicodePwd` over TLS)
//! against a real domain controller: Samba's AD DC, provisioned in a temporary folder and
//! started on 127.0.0.1. It needs root (the DC listens on 389 and 636, which it cannot be
//! moved from) and Debian's `samba`, `samba-ad-dc` and `samba-ad-provision` packages; without
//! them the test says it was skipped (`.ci/run` installs them and runs as root).

use crate::harness::Env;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SAMBA: &str = "/usr/sbin/samba";
const SCHEMA: &str = "/usr/share/samba/setup/ad-schema";
const ADMIN_PW: &str = "Adm1n-Passw0rd!";
const USERS: &str = "CN=Users,DC=ad,DC=test";

/// A domain controller for the realm AD.TEST, killed when dropped.
struct SambaDc {
    dir: tempfile::TempDir,
    child: Child,
}

impl Drop for SambaDc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `pwreset verify LINK`'s exit code.
fn verify_code(env: &Env, link: &str) -> i32 {
    env.cmd()
        .args(["verify", link])
        .output()
        .expect("run verify")
        .status
        .code()
        .expect("an exit code")
}

fn run(c: &mut Command) -> String {
    let out = c.output().expect("run a samba tool");
    assert!(
        out.status.success(),
        "{c:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

impl SambaDc {
    fn start() -> Option<SambaDc> {
        let root = Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
        if !root || !Path::new(SAMBA).exists() || !Path::new(SCHEMA).exists() {
            println!(
                "skipped: Samba's AD DC needs root and the samba, samba-ad-dc and samba-ad-provision packages (.ci/run installs them)"
            );
            return None;
        }
        if [389, 636]
            .iter()
            .any(|p| std::net::TcpStream::connect(("127.0.0.1", *p)).is_ok())
        {
            println!("skipped: something else listens on 127.0.0.1:389 or :636, where the DC must");
            return None;
        }
        let dir = tempfile::Builder::new()
            .prefix("pwreset-ad-")
            .tempdir()
            .expect("tempdir");
        let d = dir.path();
        run(Command::new("samba-tool")
            .args(["domain", "provision", "--realm=AD.TEST", "--domain=ADTEST"])
            .args(["--server-role=dc", "--dns-backend=NONE", "--host-name=dc1"])
            .arg(format!("--adminpass={ADMIN_PW}"))
            .arg("--host-ip=127.0.0.1")
            .arg(format!("--targetdir={}", d.display()))
            .args([
                "--option=interfaces=127.0.0.1",
                "--option=bind interfaces only=yes",
            ]));
        // A certificate for 127.0.0.1 from a test CA, so that pwreset verifies it as always.
        super::server::write_test_certs(d);
        // Only the directory's services, everything in the folder, and no grace for an old
        // password after a change (AD's default lets it bind for an hour).
        let conf = d.join("etc/smb.conf");
        let text = std::fs::read_to_string(&conf).expect("read smb.conf");
        let mut out = String::new();
        for line in text.lines() {
            let t = line.trim_start();
            if t.starts_with("server services") || t.starts_with("log file") {
                continue;
            }
            out.push_str(line);
            out.push('\n');
            if t == "[global]" {
                out.push_str(&format!(
                    "\tserver services = ldap, cldap, kdc\n\tpid directory = {d}\n\tlog file = {d}/log.%m\n\
                     \ttls enabled = yes\n\ttls keyfile = {d}/server.key\n\ttls certfile = {d}/server.pem\n\
                     \ttls cafile = {d}/ca.pem\n\tldap server require strong auth = no\n\
                     \told password allowed period = 0\n",
                    d = d.display()
                ));
            }
        }
        std::fs::write(&conf, out).expect("write smb.conf");
        let child = Command::new(SAMBA)
            .args(["-i", "-M", "single", "-s"])
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start samba");
        let mut dc = SambaDc { dir, child };
        let deadline = Instant::now() + Duration::from_secs(60);
        while ![389, 636]
            .iter()
            .all(|p| std::net::TcpStream::connect(("127.0.0.1", *p)).is_ok())
        {
            if let Ok(Some(status)) = dc.child.try_wait() {
                panic!("samba exited ({status})");
            }
            assert!(Instant::now() < deadline, "samba did not start within 60s");
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(dc)
    }

    fn conf(&self) -> std::path::PathBuf {
        self.dir.path().join("etc/smb.conf")
    }

    fn samba_tool(&self, args: &[&str]) -> String {
        run(Command::new("samba-tool")
            .args(args)
            .arg("-s")
            .arg(self.conf()))
    }

    /// Whether `cn` binds with `password` (a simple bind over LDAPS, the test CA trusted).
    fn can_bind(&self, cn: &str, password: &str) -> bool {
        Command::new("ldapsearch")
            .env("LDAPTLS_CACERT", self.dir.path().join("ca.pem"))
            .args(["-x", "-H", "ldaps://127.0.0.1", "-D"])
            .arg(format!("CN={cn},{USERS}"))
            .args(["-w", password, "-b", "", "-s", "base", "dn"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("run ldapsearch")
            .success()
    }
}

/// One test for the whole DC (it owns ports 389 and 636): a reset through `unicodePwd`, the
/// domain's policy refusing, a link bound to pwdLastSet, a disabled account getting no link.
#[test]
fn active_directory_through_samba() {
    let Some(dc) = SambaDc::start() else {
        return;
    };
    dc.samba_tool(&[
        "user",
        "create",
        "alice",
        "Old-Passw0rd!1",
        "--mail-address=alice@example.com",
        "--given-name=Alice",
    ]);
    dc.samba_tool(&[
        "user",
        "create",
        "bob",
        "Old-Passw0rd!1",
        "--mail-address=bob@example.com",
    ]);
    dc.samba_tool(&["user", "disable", "bob"]);
    let ca = dc.dir.path().join("ca.pem");
    let env = Env::with_toml(|dir| {
        use std::os::unix::fs::PermissionsExt;
        let pw = dir.join("ad-password");
        std::fs::write(&pw, format!("{ADMIN_PW}\n")).expect("write password file");
        std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        format!(
            "{}\n[password]\nmin_length = 1\nmin_strength = 0\n\n[ldap]\nurl = \"ldaps://127.0.0.1\"\nbind_dn = \"CN=Administrator,{USERS}\"\nbind_password_file = \"{}\"\nbase_dn = \"{USERS}\"\nuser_filter = \"(objectClass=user)\"\nid_attribute = \"objectGUID\"\npassword_change = \"ad\"\nca_file = \"{}\"\n",
            crate::harness::default_toml(dir),
            pw.display(),
            ca.display()
        )
    });
    env.init();
    assert!(dc.can_bind("alice", "Old-Passw0rd!1"));

    // The domain's policy (7 characters at least, and complexity) refuses with its words.
    let link = env.link("alice@example.com");
    let a = env
        .cmd()
        .args(["reset", "--password-stdin", &link])
        .write_stdin("short\n")
        .assert()
        .code(65);
    let err = crate::harness::stderr(&a);
    assert!(err.contains("Constraint violation"), "{err}");
    assert!(err.contains("link still works"), "{err}");
    assert!(dc.can_bind("alice", "Old-Passw0rd!1"));

    // Two resets: Samba also takes the one password before the current for a while, so the
    // original must fail after the second.
    for pw in ["First-Passw0rd!2", "Second-Passw0rd!3"] {
        let link = env.link("alice@example.com");
        env.cmd()
            .args(["reset", "--password-stdin", &link])
            .write_stdin(format!("{pw}\n"))
            .assert()
            .success();
        assert!(dc.can_bind("alice", pw), "{pw} binds");
    }
    assert!(
        !dc.can_bind("alice", "Old-Passw0rd!1"),
        "the original does not"
    );
    // The token is stored against the objectGUID, in its usual text form.
    let id = env
        .text("SELECT user_id FROM pwreset_tokens ORDER BY id DESC LIMIT 1")
        .expect("a token");
    assert_eq!(id.len(), 36, "{id}");

    // A password changed elsewhere (pwdLastSet moves) kills the link issued before.
    let link = env.link("alice@example.com");
    assert_eq!(verify_code(&env, &link), 0);
    dc.samba_tool(&[
        "user",
        "setpassword",
        "alice",
        "--newpassword=Elsewhere-Passw0rd!4",
    ]);
    assert_eq!(
        verify_code(&env, &link),
        1,
        "a link from before the change is dead"
    );

    // A disabled account gets no link.
    let out = env
        .cmd()
        .args(["request", "--no-email", "--json", "bob@example.com"])
        .output()
        .expect("run request");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("\"locked\""), "{text}");
}
