//! The test harness: a temporary folder with a config, a database and an outbox, and a way to
//! run the real `pwreset` binary against them.
#![allow(dead_code)]

use assert_cmd::Command;
use std::path::{Path, PathBuf};

pub const BIN: &str = env!("CARGO_BIN_EXE_pwreset");

/// One isolated pwreset installation in a temporary folder.
pub struct Env {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub db: PathBuf,
    pub outbox: PathBuf,
}

/// The config every test starts from: file transport, cheap argon2 (the policy is the same),
/// no throttle surprises unless a test sets one.
pub fn default_toml(dir: &Path) -> String {
    format!(
        r#"database = "{db}"
base_url = "https://accounts.example.com/reset_password"
token_ttl = "1h"
request_throttle = "60s"
busy_timeout = "2s"

[mail]
transport = "file"
from = "Accounts <no-reply@example.com>"

[mail.file]
dir = "{outbox}"

[password.argon2]
memory_kib = 8192
iterations = 1
parallelism = 1
"#,
        db = dir.join("pwreset.db").display(),
        outbox = dir.join("outbox").display(),
    )
}

impl Env {
    /// A fresh folder with the default config; the database is not created yet.
    pub fn new() -> Env {
        Env::with_toml(default_toml)
    }

    /// A fresh folder with a config made by `toml(dir)`.
    pub fn with_toml(toml: impl FnOnce(&Path) -> String) -> Env {
        let dir = tempfile::Builder::new()
            .prefix("pwreset-test-")
            .tempdir()
            .expect("tempdir");
        let config = dir.path().join("config.toml");
        std::fs::write(&config, toml(dir.path())).expect("write config");
        Env {
            db: dir.path().join("pwreset.db"),
            outbox: dir.path().join("outbox"),
            config,
            dir,
        }
    }

    /// Rewrite the config file.
    pub fn set_config(&self, text: &str) {
        std::fs::write(&self.config, text).expect("write config");
    }

    /// `pwreset` with no arguments, in an environment that cannot reach the machine's own
    /// config or database: for children that run side by side, get killed or get a terminal.
    pub fn bare_std(&self) -> std::process::Command {
        self.isolated(BIN)
    }

    /// `program` in the isolated environment (`sh` for the pty tests).
    pub fn isolated(&self, program: impl AsRef<std::ffi::OsStr>) -> std::process::Command {
        let dir = self.dir.path();
        let mut c = std::process::Command::new(program);
        c.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", dir)
            .env("XDG_CONFIG_HOME", dir.join("xdg-config"))
            .env("XDG_DATA_HOME", dir.join("xdg-data"))
            .env("USER", "tester")
            .env("TERM", "dumb");
        c
    }

    /// `pwreset --config <this env's config>` as a std Command.
    pub fn std_cmd(&self) -> std::process::Command {
        let mut c = self.bare_std();
        c.arg("--config").arg(&self.config);
        c
    }

    /// `pwreset` without `--config`: the caller decides where the config comes from.
    pub fn bare(&self) -> Command {
        Command::from_std(self.bare_std())
    }

    /// `pwreset --config <this env's config>`.
    pub fn cmd(&self) -> Command {
        Command::from_std(self.std_cmd())
    }

    /// `pwreset init`, asserting success.
    pub fn init(&self) -> &Self {
        self.cmd().arg("init").assert().success();
        self
    }

    /// `pwreset user add EMAIL`, asserting success.
    pub fn add_user(&self, email: &str) -> &Self {
        self.cmd().args(["user", "add", email]).assert().success();
        self
    }

    /// A fresh reset link for `email` (made with --no-email --force).
    pub fn link(&self, email: &str) -> String {
        let out = self
            .cmd()
            .args(["request", "--no-email", "--force", email])
            .output()
            .expect("run request");
        assert!(
            out.status.success(),
            "request failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).expect("utf-8");
        text.lines().next().expect("a link on stdout").to_owned()
    }

    /// The token in a link.
    pub fn token_of(link: &str) -> String {
        link.rsplit("token=").next().expect("token=").to_owned()
    }

    /// The messages in the outbox, oldest first.
    pub fn messages(&self) -> Vec<String> {
        let Ok(rd) = std::fs::read_dir(&self.outbox) else {
            return Vec::new();
        };
        let mut files: Vec<(std::time::SystemTime, PathBuf)> = rd
            .map(|e| {
                let e = e.expect("dir entry");
                (
                    e.metadata().expect("meta").modified().expect("mtime"),
                    e.path(),
                )
            })
            .collect();
        files.sort();
        files
            .into_iter()
            .map(|(_, p)| std::fs::read_to_string(p).expect("read message"))
            .collect()
    }

    /// Open the database directly, as an application (or an attacker) would.
    pub fn sql(&self) -> rusqlite::Connection {
        rusqlite::Connection::open(&self.db).expect("open db")
    }
}

/// Decode a quoted-printable message body so links and text can be searched.
pub fn decode(eml: &str) -> String {
    String::from_utf8_lossy(
        &quoted_printable::decode(eml.as_bytes(), quoted_printable::ParseMode::Robust).expect("qp"),
    )
    .into_owned()
}

/// stdout of an assert as a String.
pub fn stdout(a: &assert_cmd::assert::Assert) -> String {
    String::from_utf8_lossy(&a.get_output().stdout).into_owned()
}

/// stderr of an assert as a String.
pub fn stderr(a: &assert_cmd::assert::Assert) -> String {
    String::from_utf8_lossy(&a.get_output().stderr).into_owned()
}
