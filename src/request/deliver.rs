//! Sending a chunk's messages over the SMTP pool, with each hand-over recorded before the
//! connection that made it takes another message: a crash can only leave the messages in
//! flight (at most one per connection) unrecorded, so only those can go out twice.
//!
//! The connections are threads; the calling thread records. A connection that has sent a
//! message hands its result over and waits for the record to be committed; the recorder
//! takes every result that is ready in one transaction, so four connections cost about one
//! commit per round, not four.
//!
//! On a stop the queue closes: the connections finish the message they hold, for up to
//! `grace`, and take no new one. Whatever is still out at the deadline is left to its thread
//! (the process is about to exit) and reported as abandoned.

use crate::mail::{Mailer, SendError, Sent};
use crate::signals::Stop;
use anyhow::Result;
use lettre::Message;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One message's attempt: its index in the chunk and how it went.
pub(super) type Attempt = (usize, std::result::Result<(), SendError>);

/// How often the recorder looks at the stop flag while no result comes.
const TICK: Duration = Duration::from_millis(50);

/// What became of a chunk's messages besides the results handed to `record`.
#[derive(Debug, Default)]
pub(super) struct Sending {
    /// Connections the relay refused while others were working (a per-client limit).
    pub refused: usize,
    /// Whether any message went through after a connection was refused: the relay was up, so
    /// the refusals were a limit, not an outage.
    pub delivered_after_refusal: bool,
    /// Messages never started because of a stop (their index in the chunk).
    pub not_started: Vec<usize>,
    /// Messages out at the stop's deadline, whose fate is unknown.
    pub abandoned: Vec<usize>,
}

struct Shared {
    queue: Mutex<VecDeque<usize>>,
    closed: AtomicBool,
    /// Connections still working.
    active: AtomicUsize,
    refused: AtomicUsize,
    refused_once: AtomicBool,
    delivered_after_refusal: AtomicBool,
}

impl Shared {
    fn next(&self) -> Option<usize> {
        if self.closed.load(Ordering::SeqCst) {
            return None;
        }
        self.queue.lock().ok().and_then(|mut q| q.pop_front())
    }
}

/// One message's result and the way to tell its connection that it was recorded.
struct Done {
    index: usize,
    result: std::result::Result<(), SendError>,
    recorded: SyncSender<()>,
}

/// Send `msgs` (each with its index in the chunk) over up to `workers` connections. `record`
/// gets every result as it comes, a few at a time, and must have committed them when it
/// returns; an error from it stops the sending and is returned.
pub(super) fn send(
    mailer: &Arc<Mailer>,
    msgs: Vec<(usize, Message)>,
    workers: usize,
    stop: &Stop,
    grace: Duration,
    record: &mut dyn FnMut(&[Attempt]) -> Result<()>,
) -> Result<Sending> {
    let indexes: Vec<usize> = msgs.iter().map(|(i, _)| *i).collect();
    let msgs: Arc<Vec<Message>> = Arc::new(msgs.into_iter().map(|(_, m)| m).collect());
    let workers = workers.clamp(1, msgs.len().max(1));
    let shared = Arc::new(Shared {
        queue: Mutex::new((0..msgs.len()).collect()),
        closed: AtomicBool::new(false),
        active: AtomicUsize::new(workers),
        refused: AtomicUsize::new(0),
        refused_once: AtomicBool::new(false),
        delivered_after_refusal: AtomicBool::new(false),
    });
    let (done_tx, done_rx) = std::sync::mpsc::channel::<Done>();
    // Which message each connection holds, to know what is abandoned at a deadline.
    let holding: Arc<Mutex<Vec<Option<usize>>>> = Arc::new(Mutex::new(vec![None; workers]));
    for w in 0..workers {
        let (mailer, msgs, conn_shared, done_tx, holding) = (
            Arc::clone(mailer),
            Arc::clone(&msgs),
            Arc::clone(&shared),
            done_tx.clone(),
            Arc::clone(&holding),
        );
        let spawned = std::thread::Builder::new()
            .name(format!("pwreset-send-{w}"))
            .spawn(move || connection(w, &mailer, &msgs, &conn_shared, &done_tx, &holding));
        if spawned.is_err() {
            // Fewer connections; the others take the queue.
            shared.active.fetch_sub(1, Ordering::SeqCst);
        }
    }
    drop(done_tx);
    let outcome = recorder(&done_rx, &shared, stop, grace, &indexes, record);
    // Whatever happens next, no connection takes another message.
    shared.closed.store(true, Ordering::SeqCst);
    outcome?;
    let mut sending = Sending {
        refused: shared.refused.load(Ordering::SeqCst),
        delivered_after_refusal: shared.delivered_after_refusal.load(Ordering::SeqCst),
        ..Sending::default()
    };
    if let Ok(q) = shared.queue.lock() {
        sending.not_started = q.iter().map(|&i| indexes[i]).collect();
    }
    if let Ok(h) = holding.lock() {
        sending.abandoned = h.iter().flatten().map(|&i| indexes[i]).collect();
    }
    Ok(sending)
}

/// The calling thread's part: record results as they come, until every connection is done,
/// or a stop's grace has run out.
fn recorder(
    done_rx: &Receiver<Done>,
    shared: &Shared,
    stop: &Stop,
    grace: Duration,
    indexes: &[usize],
    record: &mut dyn FnMut(&[Attempt]) -> Result<()>,
) -> Result<()> {
    let mut deadline: Option<Instant> = None;
    loop {
        if deadline.is_none() && stop.asked() {
            shared.closed.store(true, Ordering::SeqCst);
            deadline = Some(Instant::now() + grace);
        }
        let wait = match deadline {
            Some(d) => match d.checked_duration_since(Instant::now()) {
                Some(left) => left.min(TICK),
                None => return Ok(()),
            },
            None => TICK,
        };
        let first = match done_rx.recv_timeout(wait) {
            Ok(d) => d,
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => return Ok(()),
        };
        let mut batch = vec![first];
        batch.extend(done_rx.try_iter());
        let results: Vec<Attempt> = batch
            .iter()
            .map(|d| (indexes[d.index], d.result.clone()))
            .collect();
        record(&results)?;
        for d in batch {
            // A connection that is gone needs no answer.
            let _ = d.recorded.send(());
        }
    }
}

/// One connection's loop: take a message, send it, hand the result over, wait until it is
/// recorded, repeat.
fn connection(
    w: usize,
    mailer: &Mailer,
    msgs: &[Message],
    shared: &Shared,
    done_tx: &Sender<Done>,
    holding: &Mutex<Vec<Option<usize>>>,
) {
    let hold = |i: Option<usize>| {
        if let Ok(mut h) = holding.lock()
            && let Some(slot) = h.get_mut(w)
        {
            *slot = i;
        }
    };
    while let Some(i) = shared.next() {
        hold(Some(i));
        // The last connection standing reports its failures like any send.
        let may_shrink = shared.active.load(Ordering::SeqCst) > 1;
        // Only a message begun after a refusal shows the relay still taking mail: one begun
        // before may be the last a dying relay took.
        let begun_after_refusal = shared.refused_once.load(Ordering::SeqCst);
        let result = match mailer.send_or_refused(&msgs[i], may_shrink) {
            Ok(Sent::Delivered) => {
                if begun_after_refusal {
                    shared.delivered_after_refusal.store(true, Ordering::SeqCst);
                }
                Ok(())
            }
            Ok(Sent::RefusedAtConnect(e)) => {
                // Retire this connection unless it is the last one; its message goes back to
                // the front of the queue for the others.
                let retired = shared
                    .active
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                        (n > 1).then(|| n - 1)
                    })
                    .is_ok();
                if retired {
                    shared.refused.fetch_add(1, Ordering::SeqCst);
                    shared.refused_once.store(true, Ordering::SeqCst);
                    if let Ok(mut q) = shared.queue.lock() {
                        q.push_front(i);
                    }
                    hold(None);
                    return;
                }
                Err(e)
            }
            Err(e) => Err(e),
        };
        let (recorded_tx, recorded_rx) = std::sync::mpsc::sync_channel::<()>(1);
        let handed = done_tx.send(Done {
            index: i,
            result,
            recorded: recorded_tx,
        });
        if handed.is_err() || recorded_rx.recv().is_err() {
            // The recorder gave up (a stop's deadline, a database error): leave the message
            // marked as held, so it is reported as abandoned.
            return;
        }
        hold(None);
    }
    shared.active.fetch_sub(1, Ordering::SeqCst);
}
