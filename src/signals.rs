//! Stopping a run by signal: Ctrl-C (SIGINT), SIGTERM (systemd, `kill`) and SIGHUP (a closed
//! terminal) ask a run to stop; the run finishes what is in flight, records every outcome and
//! exits with 128 + the signal. A second one of them exits at once.

use crate::error::Exit;
use anyhow::{Context, Result};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// A signal that stops a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Int,
    Term,
    Hup,
}

impl Signal {
    pub fn number(self) -> i32 {
        match self {
            Signal::Int => signal_hook::consts::SIGINT,
            Signal::Term => signal_hook::consts::SIGTERM,
            Signal::Hup => signal_hook::consts::SIGHUP,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Signal::Int => "SIGINT",
            Signal::Term => "SIGTERM",
            Signal::Hup => "SIGHUP",
        }
    }

    /// The exit status of a command this signal stopped: 128 + its number.
    pub fn exit(self) -> Exit {
        match self {
            Signal::Int => Exit::Interrupted,
            Signal::Term => Exit::Terminated,
            Signal::Hup => Exit::HungUp,
        }
    }

    fn from_number(n: usize) -> Option<Signal> {
        [Signal::Int, Signal::Term, Signal::Hup]
            .into_iter()
            .find(|s| usize::try_from(s.number()).ok() == Some(n))
    }
}

/// Whether a stop was asked for, and by which signal. Cloning shares it.
#[derive(Clone, Debug, Default)]
pub struct Stop {
    asked: Arc<AtomicBool>,
    which: Arc<AtomicUsize>,
}

impl Stop {
    /// A stop that only [`Stop::ask`] sets (a library caller, the web server's jobs).
    pub fn new() -> Stop {
        Stop::default()
    }

    /// A stop that SIGINT, SIGTERM and SIGHUP set. The second of any of them exits the process
    /// at once with its status, for a user who will not wait for the messages in flight.
    /// `doing`: what the run finishes before it stops, for the line it prints at the first
    /// signal ("the messages in flight", "the links being printed").
    pub fn on_signals(doing: &'static str) -> Result<Stop> {
        let stop = Stop::new();
        for sig in [Signal::Int, Signal::Term, Signal::Hup] {
            let n = sig.number();
            // The order matters: the exit is checked before the first signal arms it.
            signal_hook::flag::register_conditional_shutdown(
                n,
                i32::from(sig.exit().code()),
                Arc::clone(&stop.asked),
            )
            .and_then(|_| {
                signal_hook::flag::register_usize(
                    n,
                    Arc::clone(&stop.which),
                    usize::try_from(n).unwrap_or(0),
                )
            })
            .and_then(|_| signal_hook::flag::register(n, Arc::clone(&stop.asked)))
            .with_context(|| format!("installing the {} handler", sig.name()))?;
        }
        // Say at once that the stop was heard: with a slow relay the messages in flight can
        // take seconds, and a user who sees nothing presses Ctrl-C again. The handlers above
        // have run (and armed the second signal's exit) before this thread wakes.
        let mut heard = signal_hook::iterator::Signals::new(
            [Signal::Int, Signal::Term, Signal::Hup].map(Signal::number),
        )
        .context("installing the signal listener")?;
        std::thread::Builder::new()
            .name("signals".into())
            .spawn(move || {
                if let Some(n) = heard.forever().next() {
                    let name = usize::try_from(n)
                        .ok()
                        .and_then(Signal::from_number)
                        .map_or("a signal", Signal::name);
                    eprintln!(
                        "stopping ({name}): finishing {doing}; press Ctrl-C again (or send the signal again) to stop at once"
                    );
                }
            })
            .context("starting the signal listener")?;
        Ok(stop)
    }

    /// Ask for a stop as if `sig` had arrived.
    pub fn ask(&self, sig: Signal) {
        self.which
            .store(usize::try_from(sig.number()).unwrap_or(0), Ordering::SeqCst);
        self.asked.store(true, Ordering::SeqCst);
    }

    pub fn asked(&self) -> bool {
        self.asked.load(Ordering::SeqCst)
    }

    /// The signal that asked, once one has.
    pub fn signal(&self) -> Option<Signal> {
        if !self.asked() {
            return None;
        }
        Signal::from_number(self.which.load(Ordering::SeqCst)).or(Some(Signal::Int))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_status_is_128_plus_the_signal() {
        assert_eq!(Signal::Int.exit().code(), 130);
        assert_eq!(Signal::Term.exit().code(), 143);
        assert_eq!(Signal::Hup.exit().code(), 129);
    }

    #[test]
    fn ask_records_the_signal() {
        let stop = Stop::new();
        assert_eq!(stop.signal(), None);
        stop.clone().ask(Signal::Term);
        assert!(stop.asked());
        assert_eq!(stop.signal(), Some(Signal::Term));
    }
}
