//! Fixed pools of blocking threads, each with its own store.
//!
//! A [`Store`] is not `Send` (a connection belongs to the thread that opened it), and argon2
//! takes `memory_kib` (19 MiB by default) per hash: both want a fixed number of threads, not
//! tokio's growing blocking pool. Each pool has a bounded queue; when it is full, [`Pool::run`]
//! says so at once and the page answers 503 instead of queueing without limit. A job that
//! does not finish within the pool's timeout (a database that stopped answering without
//! refusing) is given up by its page, which answers 503 too.

use crate::config::Config;
use crate::store::{Access, Store};
use anyhow::Result;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};

/// What a job gets: the worker's store, opened on first use and kept for the next job.
pub struct Worker {
    config: Arc<Config>,
    store: Option<Box<dyn Store>>,
    /// Bumped by any worker of any pool that finds the database server unreachable: every
    /// connection opened before then is presumed dead and opened again on next use.
    generation: Arc<AtomicU64>,
    /// The generation the store was opened in.
    opened_in: u64,
    /// Where the users are, kept between jobs with when it was last given back: an LDAP
    /// directory is a connection and a bind, not worth making again for every page.
    dir: Option<(crate::directory::Directory, std::time::Instant)>,
    /// Where the job of [`Pool::run`] running now is (QUEUED, STARTED, ABANDONED).
    job: Option<Arc<AtomicU8>>,
}

/// A directory connection idle longer than this is made again rather than reused: servers
/// close idle connections (Active Directory after 15 minutes), and a reused dead one would
/// fail the request that finds out.
const DIRECTORY_IDLE: std::time::Duration = std::time::Duration::from_secs(60);

impl Worker {
    pub fn config(&self) -> Arc<Config> {
        Arc::clone(&self.config)
    }

    /// The worker's store, opened now if this is its first job or its connection may have
    /// died since.
    pub fn store(&mut self) -> Result<&mut dyn Store> {
        let now = self.generation.load(Ordering::SeqCst);
        if self.opened_in != now {
            self.store = None;
        }
        let store = match self.store.take() {
            Some(s) => s,
            None => {
                let s = crate::store::open(&self.config, Access::Write)?;
                self.opened_in = now;
                s
            }
        };
        Ok(self.store.insert(store).as_mut())
    }

    /// The worker's directory, taken out for one job: the one kept from the last job when it
    /// was given back and has not been idle long, else a new one. Give it back with
    /// [`Worker::put_directory`] when the job went well; one that saw an error is dropped.
    pub fn take_directory(&mut self) -> Result<crate::directory::Directory> {
        match self.dir.take() {
            Some((d, at)) if at.elapsed() < DIRECTORY_IDLE => Ok(d),
            _ => crate::directory::Directory::open(&self.config),
        }
    }

    pub fn put_directory(&mut self, d: crate::directory::Directory) {
        self.dir = Some((d, std::time::Instant::now()));
    }

    /// Whether the page waiting for this job has given up on it (and answered 503): a job
    /// that was stuck on a stalled server asks before it writes, so that the visitor who was
    /// told to retry does not find their link spent once the server answers again.
    pub fn given_up(&self) -> bool {
        self.watch().given_up()
    }

    /// [`Worker::given_up`] to ask while the store is borrowed.
    pub fn watch(&self) -> Watch {
        Watch(self.job.clone())
    }

    /// Run `job` on this worker's store. When the database server could not be reached,
    /// every pool's connections are dropped (a server that went away took them all), and a
    /// job that ran on a connection from before is run once more on a fresh one: after the
    /// server is back, the next request works, even when serve was idle all the while. Only
    /// jobs that write nothing before their first query may be retried this way, which is
    /// every job here: each begins with a lookup.
    pub fn retrying<T>(&mut self, mut job: impl FnMut(&mut Worker) -> Result<T>) -> Result<T> {
        let had = self.store.is_some();
        let r = job(self);
        if !self.lost(&r) || !had {
            return r;
        }
        let again = job(self);
        self.lost(&again);
        again
    }

    /// `r`, having dropped the connections if it says the server could not be reached; for
    /// jobs that must not run twice.
    pub fn settle<T>(&mut self, r: Result<T>) -> Result<T> {
        self.lost(&r);
        r
    }

    /// Whether `r` says the server could not be reached (then the connections are dropped).
    /// SQLite's busy is a wait, not a lost connection.
    fn lost<T>(&mut self, r: &Result<T>) -> bool {
        let Err(e) = r else { return false };
        let server = matches!(self.config.database, crate::config::Database::Server(_));
        let lost = server
            && matches!(
                crate::error::exit_of(e),
                crate::error::Exit::TempFail | crate::error::Exit::Unavailable
            );
        if lost {
            self.store = None;
            self.generation.fetch_add(1, Ordering::SeqCst);
        }
        lost
    }
}

/// Whether the page has given up on the job running now; see [`Worker::watch`].
pub struct Watch(Option<Arc<AtomicU8>>);

impl Watch {
    pub fn given_up(&self) -> bool {
        self.0
            .as_ref()
            .is_some_and(|s| s.load(Ordering::SeqCst) == ABANDONED)
    }
}

type Job = Box<dyn FnOnce(&mut Worker) + Send>;

/// Why a job did not run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The queue is full: answer 503 and let the client retry.
    Full,
    /// The job died (a bug) or the pool is shutting down.
    Gone,
    /// The job did not finish within the pool's timeout: the database is stalled or
    /// overloaded. Answer 503 and let the client retry.
    TimedOut,
}

/// Where a job of [`Pool::run`] is, so that the page giving up on it and the worker taking
/// it up agree on whether it still runs.
const QUEUED: u8 = 0;
const STARTED: u8 = 1;
const ABANDONED: u8 = 2;

pub struct Pool {
    name: &'static str,
    /// How long jobs waited for a thread, for /metrics.
    wait: Arc<Mutex<super::metrics::Histogram>>,
    tx: Mutex<Option<SyncSender<Job>>>,
    threads: Mutex<Vec<std::thread::JoinHandle<()>>>,
    /// Jobs queued and not yet started, and threads still running: for a bounded close.
    state: Arc<PoolState>,
    /// How long [`Pool::run`] waits for a job, its time in the queue included.
    timeout: std::time::Duration,
    /// The connections' generation shared by all pools (see [`Worker::store`]).
    generation: Arc<AtomicU64>,
}

#[derive(Default)]
struct PoolState {
    queued: std::sync::atomic::AtomicUsize,
    running: Mutex<usize>,
    finished: std::sync::Condvar,
    /// Set when a bounded close is over: queued jobs are dropped, not started.
    closed: std::sync::atomic::AtomicBool,
    /// Jobs being run now.
    busy: std::sync::atomic::AtomicUsize,
}

/// How a bounded close ended ([`Pool::close_within`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Closed {
    /// Queued jobs that never started, and never will.
    pub unstarted: usize,
    /// Jobs still running at the deadline, left to the process's exit.
    pub running: usize,
}

impl Pool {
    /// `workers` threads sharing a queue of `queue` waiting jobs; [`Pool::run`] gives a job up
    /// after `timeout`.
    pub fn new(
        name: &'static str,
        config: Arc<Config>,
        generation: Arc<AtomicU64>,
        workers: usize,
        queue: usize,
        timeout: std::time::Duration,
    ) -> Result<Pool> {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Job>(queue);
        let rx = Arc::new(Mutex::new(rx));
        let state = Arc::new(PoolState::default());
        let mut threads = Vec::with_capacity(workers);
        for i in 0..workers.max(1) {
            let rx = Arc::clone(&rx);
            let config = Arc::clone(&config);
            let pool_generation = Arc::clone(&generation);
            let thread_state = Arc::clone(&state);
            if let Ok(mut n) = state.running.lock() {
                *n += 1;
            }
            let handle = std::thread::Builder::new()
                .name(format!("pwreset-{name}-{i}"))
                .spawn(move || {
                    work(&rx, config, pool_generation, &thread_state);
                    if let Ok(mut n) = thread_state.running.lock() {
                        *n -= 1;
                    }
                    thread_state.finished.notify_all();
                });
            match handle {
                Ok(h) => threads.push(h),
                Err(e) => {
                    if let Ok(mut n) = state.running.lock() {
                        *n -= 1;
                    }
                    return Err(e.into());
                }
            }
        }
        Ok(Pool {
            name,
            wait: Arc::default(),
            tx: Mutex::new(Some(tx)),
            threads: Mutex::new(threads),
            state,
            timeout,
            generation,
        })
    }

    /// Queue a job whose result nobody waits for (mail sent after the page was answered).
    pub fn submit(&self, job: impl FnOnce(&mut Worker) + Send + 'static) -> Result<(), Refused> {
        let guard = self.tx.lock().map_err(|_| Refused::Gone)?;
        let tx = guard.as_ref().ok_or(Refused::Gone)?;
        self.state
            .queued
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let queued_at = std::time::Instant::now();
        let wait = Arc::clone(&self.wait);
        let timed = move |w: &mut Worker| {
            wait.lock()
                .unwrap_or_else(|p| p.into_inner())
                .observe(queued_at.elapsed());
            job(w)
        };
        match tx.try_send(Box::new(timed)) {
            Ok(()) => Ok(()),
            Err(e) => {
                self.state
                    .queued
                    .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                match e {
                    TrySendError::Full(_) => Err(Refused::Full),
                    TrySendError::Disconnected(_) => Err(Refused::Gone),
                }
            }
        }
    }

    /// Jobs waiting for a thread now.
    pub fn queued(&self) -> usize {
        self.state.queued.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// How long jobs have waited for a thread.
    pub fn waits(&self) -> super::metrics::Histogram {
        self.wait.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Run a job on the pool and wait for its result without blocking the async threads, at
    /// most the pool's timeout.
    ///
    /// A connection to a server that stopped answering without refusing (a network
    /// partition, a frozen host) blocks its query until the kernel gives up on the socket;
    /// without a bound here every page and /healthz would hang until the queue filled. The
    /// blocked thread cannot be interrupted, so on timeout: a job still queued is never
    /// started (its visitor was told to retry), and when it had started, every connection
    /// opened until now is presumed stalled and opened anew on next use (as when a server is
    /// found unreachable, see `Worker::lost`), the stuck worker's included once its query
    /// returns.
    pub async fn run<R: Send + 'static>(
        &self,
        job: impl FnOnce(&mut Worker) -> R + Send + 'static,
    ) -> Result<R, Refused> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let state = Arc::new(AtomicU8::new(QUEUED));
        let job_state = Arc::clone(&state);
        self.submit(move |w| {
            if job_state
                .compare_exchange(QUEUED, STARTED, Ordering::SeqCst, Ordering::SeqCst)
                .is_err()
            {
                return;
            }
            w.job = Some(job_state);
            let r = job(w);
            w.job = None;
            // The page may have gone (client hung up): the result is dropped, the work stands.
            let _ = tx.send(r);
        })?;
        match tokio::time::timeout(self.timeout, rx).await {
            Ok(r) => r.map_err(|_| Refused::Gone),
            Err(_) => {
                if state.swap(ABANDONED, Ordering::SeqCst) == STARTED {
                    self.generation.fetch_add(1, Ordering::SeqCst);
                }
                Err(Refused::TimedOut)
            }
        }
    }

    /// Stop taking jobs and give the queued ones until `within` to finish. Then no queued job
    /// starts any more; those still running are left to the process's exit.
    pub fn close_within(&self, within: std::time::Duration) -> Closed {
        if let Ok(mut tx) = self.tx.lock() {
            tx.take();
        }
        let deadline = std::time::Instant::now() + within;
        if let Ok(mut running) = self.state.running.lock() {
            while *running > 0 {
                let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) else {
                    break;
                };
                match self.state.finished.wait_timeout(running, left) {
                    Ok((guard, _)) => running = guard,
                    Err(_) => break,
                }
            }
        }
        // A worker counts itself busy before it looks at the flag (both SeqCst): a job either
        // sees the flag and is dropped, or is counted here.
        self.state.closed.store(true, Ordering::SeqCst);
        Closed {
            unstarted: self.state.queued.load(Ordering::SeqCst),
            running: self.state.busy.load(Ordering::SeqCst),
        }
    }

    /// Stop taking jobs, finish the queued ones, and wait for the threads.
    pub fn close(&self) {
        if let Ok(mut tx) = self.tx.lock() {
            tx.take();
        }
        let threads = self
            .threads
            .lock()
            .map(|mut t| std::mem::take(&mut *t))
            .unwrap_or_default();
        for t in threads {
            if t.join().is_err() {
                eprintln!("warning: a {} thread of pwreset serve failed", self.name);
            }
        }
    }
}

fn work(
    rx: &Mutex<Receiver<Job>>,
    config: Arc<Config>,
    generation: Arc<AtomicU64>,
    state: &PoolState,
) {
    let mut worker = Worker {
        config,
        store: None,
        opened_in: generation.load(Ordering::SeqCst),
        generation,
        dir: None,
        job: None,
    };
    loop {
        // The lock is held only while waiting for the next job, never while running one.
        let job = match rx.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        let Ok(job) = job else { return };
        state.busy.fetch_add(1, Ordering::SeqCst);
        if state.closed.load(Ordering::SeqCst) {
            // Past a bounded close: the run this job would work for is being ended.
            state.busy.fetch_sub(1, Ordering::SeqCst);
            continue;
        }
        state
            .queued
            .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(&mut worker)));
        state.busy.fetch_sub(1, Ordering::SeqCst);
        if ran.is_err() {
            // A bug; the store may be mid-transaction: open a fresh one for the next job.
            worker.store = None;
            worker.dir = None;
        }
    }
}
