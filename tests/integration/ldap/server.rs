//! A real OpenLDAP `slapd` (Debian's package) for the tests: its own folder, its own cn=config
//! made from an LDIF with `slapadd -n0`, the ppolicy and argon2 modules, a test CA for LDAPS
//! and StartTLS, on free loopback ports. Dropped, it is killed and its folder removed.
//!
//! The directory: `dc=example,dc=com`, people under `ou=people`, the service account
//! `cn=pwreset,ou=services` (write on userPassword, read elsewhere, no size limit on paged
//! searches; [`default_access`], which a test may narrow with [`Slapd::set_access`]), a
//! default password policy under `ou=policies` (12 characters, quality checked,
//! 3 in history, lockout after 3 failures), and a size limit of 500 for everyone.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const SUFFIX: &str = "dc=example,dc=com";
pub const PEOPLE: &str = "ou=people,dc=example,dc=com";
pub const BIND_DN: &str = "cn=pwreset,ou=services,dc=example,dc=com";
pub const BIND_PW: &str = "service account secret";
pub const ROOT_DN: &str = "cn=admin,dc=example,dc=com";
pub const ROOT_PW: &str = "root secret";
/// Every person's password before a reset.
pub const OLD_PW: &str = "the old password of everyone";

/// Where Debian's slapd and its modules are.
const SLAPD: &str = "/usr/sbin/slapd";
const MODULES: &str = "/usr/lib/ldap";

/// A test CA (`ca.pem`) and a server certificate for 127.0.0.1 and localhost signed by it
/// (`server.pem`, its key `server.key`, mode 0600), written in `d`; the CA's path.
pub fn write_test_certs(d: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("ca params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "pwreset test directory CA");
    ca_params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    let ca_key = rcgen::KeyPair::generate().expect("ca key");
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).expect("ca cert");
    let mut leaf_params =
        rcgen::CertificateParams::new(vec!["localhost".to_owned()]).expect("leaf params");
    leaf_params
        .subject_alt_names
        .push(rcgen::SanType::IpAddress(std::net::IpAddr::V4(
            std::net::Ipv4Addr::LOCALHOST,
        )));
    let leaf_key = rcgen::KeyPair::generate().expect("leaf key");
    let leaf = leaf_params.signed_by(&leaf_key, &ca).expect("leaf cert");
    let ca_path = d.join("ca.pem");
    std::fs::write(&ca_path, ca.pem()).expect("write ca");
    std::fs::write(d.join("server.pem"), leaf.pem()).expect("write cert");
    let key = d.join("server.key");
    std::fs::write(&key, leaf_key.serialize_pem()).expect("write key");
    // Samba refuses a key others can read.
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).expect("chmod key");
    ca_path
}

/// The access rules of the people's database, in order: the service account writes
/// userPassword and reads the rest, people bind and change their own password.
pub fn default_access() -> Vec<String> {
    vec![
        format!(
            "to attrs=userPassword by dn.exact=\"{BIND_DN}\" write by self write by anonymous auth by * none"
        ),
        format!(
            "to attrs=pwdAccountLockedTime,pwdChangedTime,pwdFailureTime,pwdHistory by dn.exact=\"{BIND_DN}\" read by * none"
        ),
        format!("to * by dn.exact=\"{BIND_DN}\" read by self read by * none"),
    ]
}

/// `rules` as olcAccess lines, numbered.
fn access_ldif(rules: &[String]) -> String {
    rules
        .iter()
        .enumerate()
        .map(|(i, r)| format!("olcAccess: {{{i}}}{r}"))
        .collect::<Vec<_>>()
        .join("\n")
}

pub struct Slapd {
    /// The folder, removed when the server is dropped.
    _dir: tempfile::TempDir,
    pub port: u16,
    pub tls_port: u16,
    pub ca: PathBuf,
    child: Child,
}

impl Drop for Slapd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A person to load: uid, mail, cn.
pub struct Person<'a> {
    pub uid: &'a str,
    pub mail: &'a str,
    pub cn: &'a str,
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    l.local_addr().expect("local addr").port()
}

fn run(cmd: &mut Command, input: Option<&str>) -> std::process::Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("run {cmd:?}: {e}"));
    if let Some(text) = input {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(text.as_bytes())
            .expect("write stdin");
    } else {
        drop(child.stdin.take());
    }
    let out = child.wait_with_output().expect("wait");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The LDIF of a person.
pub fn person_ldif(p: &Person<'_>) -> String {
    format!(
        "dn: uid={uid},{PEOPLE}\nobjectClass: inetOrgPerson\nuid: {uid}\ncn: {cn}\nsn: {cn}\nmail: {mail}\nuserPassword: {OLD_PW}\n\n",
        uid = p.uid,
        cn = p.cn,
        mail = p.mail
    )
}

impl Slapd {
    /// Start a directory with `people`, plus `extra` LDIF for the data; None (after one
    /// "skipped" line) when slapd is not installed.
    pub fn start(people: &[Person<'_>], extra: &str) -> Option<Slapd> {
        let mut ldif = String::new();
        for p in people {
            ldif.push_str(&person_ldif(p));
        }
        ldif.push_str(extra);
        Slapd::start_with(&ldif)
    }

    /// Start a directory with `people_ldif` (entries under ou=people) loaded by slapadd.
    pub fn start_with(people_ldif: &str) -> Option<Slapd> {
        if !Path::new(SLAPD).exists() || !Path::new(MODULES).join("ppolicy.so").exists() {
            println!(
                "skipped: OpenLDAP's slapd is not installed (apt-get install slapd ldap-utils; .ci/run does)"
            );
            return None;
        }
        let dir = tempfile::Builder::new()
            .prefix("pwreset-slapd-")
            .tempdir()
            .expect("tempdir");
        let d = dir.path();
        std::fs::create_dir_all(d.join("slapd.d")).expect("mkdir slapd.d");
        std::fs::create_dir_all(d.join("db")).expect("mkdir db");

        let ca_path = write_test_certs(d);

        let config = format!(
            r#"dn: cn=config
objectClass: olcGlobal
cn: config
olcPidFile: {d}/slapd.pid
olcTLSCACertificateFile: {d}/ca.pem
olcTLSCertificateFile: {d}/server.pem
olcTLSCertificateKeyFile: {d}/server.key

dn: cn=module{{0}},cn=config
objectClass: olcModuleList
cn: module{{0}}
olcModulePath: {MODULES}
olcModuleLoad: back_mdb
olcModuleLoad: ppolicy
olcModuleLoad: argon2

dn: cn=schema,cn=config
objectClass: olcSchemaConfig
cn: schema

include: file:///etc/ldap/schema/core.ldif

include: file:///etc/ldap/schema/cosine.ldif

include: file:///etc/ldap/schema/inetorgperson.ldif

dn: olcDatabase={{-1}}frontend,cn=config
objectClass: olcDatabaseConfig
objectClass: olcFrontendConfig
olcDatabase: {{-1}}frontend
olcSizeLimit: 500
olcPasswordHash: {{ARGON2}}

dn: olcDatabase={{0}}config,cn=config
objectClass: olcDatabaseConfig
olcDatabase: {{0}}config
olcAccess: {{0}}to * by dn.exact="{ROOT_DN}" manage by * none

dn: olcDatabase={{1}}mdb,cn=config
objectClass: olcDatabaseConfig
objectClass: olcMdbConfig
olcDatabase: {{1}}mdb
olcSuffix: {SUFFIX}
olcRootDN: {ROOT_DN}
olcRootPW: {ROOT_PW}
olcDbDirectory: {d}/db
olcDbMaxSize: 1073741824
olcSizeLimit: 500
olcLimits: {{0}}dn.exact="{BIND_DN}" size.prtotal=unlimited
{access}

dn: olcDatabase={{2}}monitor,cn=config
objectClass: olcDatabaseConfig
olcDatabase: {{2}}monitor
olcAccess: {{0}}to * by dn.exact="{ROOT_DN}" read by * none

dn: olcOverlay={{0}}ppolicy,olcDatabase={{1}}mdb,cn=config
objectClass: olcOverlayConfig
objectClass: olcPPolicyConfig
olcOverlay: {{0}}ppolicy
olcPPolicyDefault: cn=default,ou=policies,{SUFFIX}
olcPPolicyHashCleartext: TRUE
"#,
            d = d.display(),
            access = access_ldif(&default_access())
        );
        std::fs::write(d.join("config.ldif"), &config).expect("write config.ldif");
        run(
            Command::new("slapadd")
                .args(["-n0", "-F"])
                .arg(d.join("slapd.d"))
                .arg("-l")
                .arg(d.join("config.ldif")),
            None,
        );
        let data = format!(
            "dn: {SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\ndc: example\no: Example\n\n\
dn: ou=people,{SUFFIX}\nobjectClass: organizationalUnit\nou: people\n\n\
dn: ou=services,{SUFFIX}\nobjectClass: organizationalUnit\nou: services\n\n\
dn: ou=policies,{SUFFIX}\nobjectClass: organizationalUnit\nou: policies\n\n\
dn: {BIND_DN}\nobjectClass: organizationalRole\nobjectClass: simpleSecurityObject\ncn: pwreset\nuserPassword: {BIND_PW}\n\n\
dn: cn=default,ou=policies,{SUFFIX}\nobjectClass: organizationalRole\nobjectClass: pwdPolicy\ncn: default\npwdAttribute: userPassword\npwdMinLength: 12\npwdCheckQuality: 2\npwdInHistory: 3\npwdLockout: TRUE\npwdMaxFailure: 3\npwdMustChange: FALSE\npwdAllowUserChange: TRUE\n\n{people_ldif}"
        );
        std::fs::write(d.join("data.ldif"), &data).expect("write data.ldif");
        run(
            Command::new("slapadd")
                .args(["-q", "-n1", "-F"])
                .arg(d.join("slapd.d"))
                .arg("-l")
                .arg(d.join("data.ldif")),
            None,
        );

        let port = free_port();
        let tls_port = free_port();
        let urls = format!("ldap://127.0.0.1:{port}/ ldaps://127.0.0.1:{tls_port}/");
        // -d 0: in the foreground, so the test owns the process and kills it.
        let child = Command::new(SLAPD)
            .arg("-F")
            .arg(d.join("slapd.d"))
            .args(["-h", &urls, "-d", "0"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start slapd");
        let mut s = Slapd {
            _dir: dir,
            port,
            tls_port,
            ca: ca_path,
            child,
        };
        s.wait_ready();
        Some(s)
    }

    /// Until slapd answers a bind on both ports (it opens them after loading the database).
    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                let mut err = String::new();
                if let Some(mut e) = self.child.stderr.take() {
                    let _ = std::io::Read::read_to_string(&mut e, &mut err);
                }
                panic!("slapd exited ({status}): {err}");
            }
            let up = [self.port, self.tls_port]
                .iter()
                .all(|p| std::net::TcpStream::connect(("127.0.0.1", *p)).is_ok());
            if up {
                return;
            }
            assert!(Instant::now() < deadline, "slapd did not start within 20s");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn url(&self) -> String {
        format!("ldap://127.0.0.1:{}", self.port)
    }

    pub fn ldaps_url(&self) -> String {
        format!("ldaps://127.0.0.1:{}", self.tls_port)
    }

    /// `ldapmodify` as the root DN.
    pub fn modify(&self, ldif: &str) {
        run(
            Command::new("ldapmodify").args([
                "-x",
                "-H",
                &self.url(),
                "-D",
                ROOT_DN,
                "-w",
                ROOT_PW,
            ]),
            Some(ldif),
        );
    }

    /// Replace the people's database's access rules with `rules` (in cn=config, which the
    /// root DN may manage): they apply to the next operation.
    pub fn set_access(&self, rules: &[String]) {
        self.modify(&format!(
            "dn: olcDatabase={{1}}mdb,cn=config\nchangetype: modify\nreplace: olcAccess\n{}\n",
            access_ldif(rules)
        ));
    }

    /// `ldapsearch` as the root DN: the LDIF text.
    pub fn search(&self, base: &str, filter: &str, attrs: &[&str]) -> String {
        let out = run(
            Command::new("ldapsearch")
                .args([
                    "-x",
                    "-LLL",
                    "-o",
                    "ldif-wrap=no",
                    "-H",
                    &self.url(),
                    "-D",
                    ROOT_DN,
                    "-w",
                    ROOT_PW,
                    "-b",
                    base,
                    filter,
                ])
                .args(attrs),
            None,
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// How many connections the server has accepted since it started (the monitor
    /// backend's count, which includes the connection that asks).
    pub fn connections(&self) -> u64 {
        let out = Command::new("ldapsearch")
            .args([
                "-x",
                "-LLL",
                "-H",
                &self.url(),
                "-D",
                ROOT_DN,
                "-w",
                ROOT_PW,
                "-b",
                "cn=Total,cn=Connections,cn=Monitor",
                "-s",
                "base",
                "monitorCounter",
            ])
            .output()
            .expect("run ldapsearch");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.lines()
            .find_map(|l| l.strip_prefix("monitorCounter: "))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("no connection count in: {text}"))
    }

    /// Whether `dn` can bind with `password`.
    pub fn can_bind(&self, dn: &str, password: &str) -> bool {
        Command::new("ldapwhoami")
            .args(["-x", "-H", &self.url(), "-D", dn, "-w", password])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("run ldapwhoami")
            .success()
    }

    /// The DN of a person.
    pub fn dn(uid: &str) -> String {
        format!("uid={uid},{PEOPLE}")
    }
}
