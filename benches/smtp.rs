//! SMTP throughput of a bulk run: `pwreset request --all` for N users against an SMTP sink on
//! 127.0.0.1 (the test server of tests/integration/smtp/server.rs, one thread per connection),
//! with `connections = 1` and `connections = 4`, in release mode. Prints messages per second.
//!
//!   cargo bench --bench smtp                         # 5,000 users, connections 1 and 4
//!   N=20000 CONNECTIONS=1,2,4,8 cargo bench --bench smtp
//!   TLS=1 cargo bench --bench smtp                   # STARTTLS + AUTH with a test CA as well
//!   BIN=/path/to/pwreset cargo bench --bench smtp    # measure another build
//!
//! Each run starts from a fresh database holding N users, so every user gets a token and a
//! message; the sink checks that it received each recipient exactly once.

#[path = "../tests/integration/smtp/server.rs"]
mod server;

use server::{Options, Server, TestPki};
use std::path::Path;
use std::process::Command;
use std::time::Instant;

/// The binary to measure: this build's, or another one named by `BIN`.
fn bin() -> String {
    std::env::var("BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_pwreset").to_owned())
}

fn main() {
    let n: usize = std::env::var("N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5000);
    let connections: Vec<u32> = std::env::var("CONNECTIONS")
        .unwrap_or_else(|_| "1,4".into())
        .split(',')
        .filter_map(|c| c.trim().parse().ok())
        .collect();
    let tls = std::env::var("TLS").is_ok_and(|v| v == "1");
    let mut modes = vec![false];
    if tls {
        modes.push(true);
    }
    println!("pwreset request --all, {n} users, SMTP sink on 127.0.0.1");
    println!("| transport | connections | seconds | messages/s |");
    println!("|---|---:|---:|---:|");
    for &tls in &modes {
        for &c in &connections {
            let (secs, rate) = run(n, c, tls);
            let mode = if tls { "STARTTLS + AUTH" } else { "plain" };
            println!("| {mode} | {c} | {secs:.2} | {rate:.0} |");
        }
    }
}

fn run(n: usize, connections: u32, tls: bool) -> (f64, f64) {
    let dir = tempfile::Builder::new()
        .prefix("pwreset-bench-smtp-")
        .tempdir()
        .expect("tempdir");
    let pki = tls.then(|| TestPki::new(&["127.0.0.1"]));
    let server = Server::start(Options {
        tls: pki.as_ref().map(|p| p.server.clone()),
        auth: tls.then(|| ("bench".to_owned(), "bench-password".to_owned())),
        keep_data: false,
        ..Options::default()
    });
    let smtp = match &pki {
        None => format!(
            "host = \"127.0.0.1\"\nport = {}\ntls = \"none\"",
            server.port()
        ),
        Some(p) => {
            let ca = dir.path().join("ca.pem");
            std::fs::write(&ca, &p.ca_pem).expect("ca");
            let pw = dir.path().join("password");
            std::fs::write(&pw, "bench-password").expect("password");
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o600)).expect("chmod");
            format!(
                "host = \"127.0.0.1\"\nport = {}\ntls = \"starttls\"\nca_file = \"{}\"\nusername = \"bench\"\npassword_file = \"{}\"",
                server.port(),
                ca.display(),
                pw.display()
            )
        }
    };
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "database = \"{}\"\nbase_url = \"https://accounts.example.com/reset_password\"\n\n[mail]\ntransport = \"smtp\"\nfrom = \"Accounts <no-reply@example.com>\"\n\n[mail.smtp]\n{smtp}\nconnections = {connections}\n",
            dir.path().join("pwreset.db").display()
        ),
    )
    .expect("config");
    pwreset(&config, &["init", "-q"]);
    add_users(&dir.path().join("pwreset.db"), n);

    let start = Instant::now();
    pwreset(&config, &["request", "--all", "-q"]);
    let secs = start.elapsed().as_secs_f64();

    let log = server.log();
    assert_eq!(log.accepted_rcpts.len(), n, "every message received");
    let mut rcpts = log.accepted_rcpts.clone();
    rcpts.sort_unstable();
    rcpts.dedup();
    assert_eq!(rcpts.len(), n, "each recipient exactly once");
    assert!(
        log.connections <= connections as usize,
        "{} connections for a pool of {connections}",
        log.connections
    );
    (secs, n as f64 / secs)
}

fn pwreset(config: &Path, args: &[&str]) {
    let out = Command::new(bin())
        .arg("--config")
        .arg(config)
        .args(args)
        .env_remove("PWRESET_SMTP_PASSWORD")
        .output()
        .expect("run pwreset");
    assert!(
        out.status.success(),
        "pwreset {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn add_users(db: &Path, n: usize) {
    let mut db = rusqlite::Connection::open(db).expect("open db");
    let tx = db.transaction().expect("tx");
    {
        let mut st = tx
            .prepare("INSERT INTO users (email, email_key, created_at) VALUES (?1, ?1, 0)")
            .expect("prepare");
        for i in 0..n {
            st.execute([format!("user-{i:06}@example.com")])
                .expect("insert");
        }
    }
    tx.commit().expect("commit");
}
