//! Runs and their lease: a run registers itself, renews a heartbeat while it goes on, and ends.
//! A run found dead (kill -9, a crash, power loss) is ended by the next one, which releases the
//! links it never handed over.
//!
//! Whether a run is alive is decided without waiting wherever that can be known: a run of the
//! same boot and PID namespace is alive exactly while its pid names a process with the start
//! time it registered (a reused pid has another). A run elsewhere (another host sharing a
//! PostgreSQL or MariaDB database, another container) is alive while its heartbeat is recent.

use crate::config::Config;
use crate::store::{Access, Run, RunEnd, RunStart, Store};
use anyhow::Result;
use std::time::Duration;

/// How often a run renews its heartbeat.
pub const HEARTBEAT: Duration = Duration::from_secs(15);
/// How long a run elsewhere counts as alive after its last heartbeat.
pub const LEASE: Duration = Duration::from_secs(90);

/// A process, as the runs table records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Process {
    /// The boot and PID namespace: where a pid means this process; empty where unknown.
    pub host: String,
    pub pid: i64,
    /// Clock ticks after boot at which the process started.
    pub start: i64,
}

impl Process {
    /// This process.
    pub fn this() -> Process {
        let pid = i64::from(std::process::id());
        Process {
            host: host(),
            pid,
            start: start_time(pid).unwrap_or(0),
        }
    }

    /// Whether `run` is still going, seen from this process at `now`.
    pub fn sees_alive(&self, run: &Run, now: i64) -> bool {
        if !self.host.is_empty() && run.host == self.host {
            return start_time(run.pid) == Some(run.proc_start);
        }
        now.saturating_sub(run.heartbeat_at) < LEASE.as_secs() as i64
    }
}

/// The boot id, the PID namespace and the host name: two processes with the same value see the
/// same pids. The host name is only for people reading the table.
fn host() -> String {
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default();
    let ns = std::fs::read_link("/proc/self/ns/pid")
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default();
    if boot.is_empty() || ns.is_empty() {
        return String::new();
    }
    let name = nix::unistd::gethostname()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name: String = name
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(64)
        .collect();
    format!("{name} {boot} {ns}")
}

/// When process `pid` started (field 22 of /proc/PID/stat), or None when there is no such
/// process or only its zombie (killed, not yet reaped by its parent).
fn start_time(pid: i64) -> Option<i64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: fields resume after the last
    // ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?;
    if state == "Z" || state == "X" {
        return None;
    }
    // State is field 3; the start time is field 22.
    fields.nth(18)?.parse().ok()
}

/// A run's place in the runs table, renewed while it lives. Dropping it stops the heartbeat
/// but does not end the run: [`Lease::end`] does.
pub struct Lease {
    pub id: i64,
    beat: Option<std::sync::mpsc::Sender<()>>,
}

impl Lease {
    /// End any dead run (releasing its links), then register this one and start its
    /// heartbeat. Returns the runs that were found dead, with how many links each released.
    pub fn start(
        store: &mut dyn Store,
        config: &Config,
        command: &str,
        job: Option<&str>,
        actor: &str,
    ) -> Result<(Lease, Vec<(Run, u64)>)> {
        let me = Process::this();
        let now = crate::ui::now();
        let reaped = reap(store, &me, now, actor)?;
        let id = store.begin_run(&RunStart {
            command,
            job,
            host: &me.host,
            pid: me.pid,
            proc_start: me.start,
            actor,
            now,
        })?;
        let beat = heartbeat(config.clone(), id);
        Ok((
            Lease {
                id,
                beat: Some(beat),
            },
            reaped,
        ))
    }

    /// End the run: release what it did not hand over, record how it ended. How many links
    /// were released.
    pub fn end(
        mut self,
        store: &mut dyn Store,
        outcome: RunEnd,
        why: &str,
        actor: &str,
    ) -> Result<u64> {
        self.beat.take();
        store.end_run(self.id, outcome, why, crate::ui::now(), actor)
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        // Dropping the sender wakes the heartbeat thread, which then stops.
        self.beat.take();
    }
}

/// Renew run `id`'s heartbeat every [`HEARTBEAT`] on a connection of its own, until the sender
/// is dropped. A missed beat (a busy database) is only a missed beat: a run counts as alive for
/// [`LEASE`], several beats.
fn heartbeat(config: Config, id: i64) -> std::sync::mpsc::Sender<()> {
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let spawned = std::thread::Builder::new()
        .name("pwreset-heartbeat".into())
        .spawn(move || {
            let mut store: Option<Box<dyn Store>> = None;
            while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(HEARTBEAT) {
                if store.is_none() {
                    store = crate::store::open(&config, Access::Write).ok();
                }
                if let Some(s) = store.as_mut()
                    && s.heartbeat(id, crate::ui::now()).is_err()
                {
                    store = None;
                }
            }
        });
    // Without the thread, runs elsewhere see this one alive only for LEASE; runs on this host
    // go by its pid, which is what matters for a crash.
    drop(spawned);
    tx
}

/// End every open run that is no longer alive, as crashed: its links that were never handed
/// over are released. Returns those runs with how many links each released.
pub fn reap(store: &mut dyn Store, me: &Process, now: i64, actor: &str) -> Result<Vec<(Run, u64)>> {
    let mut reaped = Vec::new();
    for run in store.open_runs()? {
        if me.sees_alive(&run, now) {
            continue;
        }
        let why = format!(
            "not sent: run {} ({}, pid {}) ended without handing this link over",
            run.id, run.command, run.pid
        );
        let released = store.end_run(run.id, RunEnd::Crashed, &why, now, actor)?;
        reaped.push((run, released));
    }
    Ok(reaped)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(p: &Process, heartbeat_at: i64) -> Run {
        Run {
            id: 1,
            command: "request".into(),
            job: None,
            host: p.host.clone(),
            pid: p.pid,
            proc_start: p.start,
            actor: "root".into(),
            started_at: 0,
            heartbeat_at,
            ended_at: None,
            outcome: None,
        }
    }

    #[test]
    fn this_process_is_alive_and_a_reused_pid_is_not() {
        let me = Process::this();
        if me.host.is_empty() {
            eprintln!("skipped: no /proc here");
            return;
        }
        // The heartbeat does not matter on the same host: the pid does.
        assert!(me.sees_alive(&run(&me, 0), 1_000_000));
        let mut reused = run(&me, 1_000_000);
        reused.proc_start += 1;
        assert!(!me.sees_alive(&reused, 1_000_000));
        let mut gone = run(&me, 1_000_000);
        gone.pid = i64::from(i32::MAX);
        assert!(!me.sees_alive(&gone, 1_000_000));
    }

    #[test]
    fn a_run_elsewhere_is_alive_while_its_heartbeat_is_recent() {
        let me = Process::this();
        let mut other = run(&me, 1_000);
        other.host = "elsewhere".into();
        assert!(me.sees_alive(&other, 1_000 + 89));
        assert!(!me.sees_alive(&other, 1_000 + 90));
    }
}
