//! The accept loop and each connection's clock: our own loop around hyper's HTTP/1 connection,
//! because `axum::serve` has no timeouts and no cap.
//!
//! Every connection is in one phase at a time, and each phase but one has a deadline:
//! - fresh (accepted, nothing read) and reading a request's head: `header_timeout`, counted from
//!   the accept or from the first byte of the request;
//! - reading a body: `body_timeout`, from the end of the head to the body's last byte;
//! - idle between requests (keep-alive): `idle_timeout`;
//! - handling a request: none (the pools' bounded queues bound that).
//!
//! A connection past its deadline is dropped: its socket closes, a request whose body never
//! came is never handled. Open connections are capped below the open-file limit; at the cap a
//! new connection closes the oldest idle one (fresh or kept alive), so a flood of silent
//! connections cannot lock out a real client; when none is idle, the oldest one still reading
//! its head or body, so a flood that sends a byte now and then (slowloris) cannot either. Only
//! when every connection is being handled is the new one turned away.

use super::Peer;
use axum::Router;
use axum::body::Body;
use hyper::body::Body as _;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{Notify, mpsc, watch};

/// The deadlines of the phases, from `[serve]`.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub header: Duration,
    pub body: Duration,
    pub idle: Duration,
}

/// Why a connection was closed by the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closed {
    Headers,
    Body,
    Idle,
    /// Closed to make room for a new connection at the cap.
    Evicted,
    /// Closed while still reading its request's head or body, to make room at the cap when no
    /// connection was idle: a sign of a flood of slow clients.
    EvictedReading,
}

impl Closed {
    pub fn as_str(self) -> &'static str {
        match self {
            Closed::Headers => "header_timeout",
            Closed::Body => "body_timeout",
            Closed::Idle => "idle_timeout",
            Closed::Evicted => "evicted",
            Closed::EvictedReading => "evicted_reading",
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Phase {
    /// Accepted, nothing read yet.
    Fresh(Instant),
    /// Between requests on a kept-alive connection.
    Idle(Instant),
    /// Reading a request's head, since its first byte (or the accept).
    Head(Instant),
    /// The head is in; reading the body.
    Body(Instant),
    /// The request is with the handler.
    Handling,
}

/// One connection's state, shared by its I/O, its service and its task.
pub struct Conn {
    phase: Mutex<Phase>,
    /// Wakes the connection's task when the phase (and so the deadline) changes, or when it
    /// is evicted.
    wake: Notify,
    evicted: AtomicBool,
}

impl Conn {
    fn new(now: Instant) -> Conn {
        Conn {
            phase: Mutex::new(Phase::Fresh(now)),
            wake: Notify::new(),
            evicted: AtomicBool::new(false),
        }
    }

    fn phase(&self) -> Phase {
        // A poisoned lock still holds a phase: the data is a plain value.
        *self.phase.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn set(&self, p: Phase) {
        *self.phase.lock().unwrap_or_else(|p| p.into_inner()) = p;
        self.wake.notify_one();
    }

    /// Bytes arrived: an idle connection starts a request head.
    fn read_some(&self) {
        let mut phase = self.phase.lock().unwrap_or_else(|p| p.into_inner());
        match *phase {
            // The header clock of a fresh connection started at the accept.
            Phase::Fresh(t) => *phase = Phase::Head(t),
            Phase::Idle(_) => {
                *phase = Phase::Head(Instant::now());
                drop(phase);
                self.wake.notify_one();
            }
            _ => {}
        }
    }

    fn begin(&self, has_body: bool) {
        self.set(if has_body {
            Phase::Body(Instant::now())
        } else {
            Phase::Handling
        });
    }

    fn body_done(&self) {
        let mut phase = self.phase.lock().unwrap_or_else(|p| p.into_inner());
        if let Phase::Body(_) = *phase {
            *phase = Phase::Handling;
            drop(phase);
            self.wake.notify_one();
        }
    }

    fn end(&self) {
        self.set(Phase::Idle(Instant::now()));
    }

    /// Since when the connection has waited for a request, if it is waiting.
    fn idle_since(&self) -> Option<Instant> {
        match self.phase() {
            Phase::Fresh(t) | Phase::Idle(t) => Some(t),
            _ => None,
        }
    }

    /// Since when the connection has been reading a request's head or body, if it is. Closing
    /// it then is what its deadline would do later: the handler has not acted on the request
    /// (it is still waiting for the body, if it was called at all).
    fn reading_since(&self) -> Option<Instant> {
        match self.phase() {
            Phase::Head(t) | Phase::Body(t) => Some(t),
            _ => None,
        }
    }

    fn deadline(&self, t: &Timeouts) -> Option<(Instant, Closed)> {
        match self.phase() {
            Phase::Fresh(s) | Phase::Head(s) => Some((s + t.header, Closed::Headers)),
            Phase::Body(s) => Some((s + t.body, Closed::Body)),
            Phase::Idle(s) => Some((s + t.idle, Closed::Idle)),
            Phase::Handling => None,
        }
    }
}

/// The open connections, for the cap.
pub struct Conns {
    map: Mutex<HashMap<u64, Arc<Conn>>>,
    next: AtomicU64,
    max: usize,
}

impl Conns {
    pub fn new(max: usize) -> Conns {
        Conns {
            map: Mutex::new(HashMap::new()),
            next: AtomicU64::new(0),
            max: max.max(1),
        }
    }

    /// Room for one more: at the cap, the oldest idle connection is told to close (and no
    /// longer counts), or when none is idle the oldest one still reading a request. `None`
    /// when every connection's request is being handled.
    fn register(&self) -> Option<(u64, Arc<Conn>)> {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= self.max && !evict_one_of(&mut map) {
            return None;
        }
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let conn = Arc::new(Conn::new(Instant::now()));
        map.insert(id, Arc::clone(&conn));
        Some((id, conn))
    }

    /// Out of file descriptors: close a connection as at the cap.
    fn evict_one(&self) -> bool {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        evict_one_of(&mut map)
    }

    fn remove(&self, id: u64) {
        self.map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
    }

    pub fn open(&self) -> usize {
        self.map.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

/// Tell one connection to close to make room: the oldest idle one, else the one that has been
/// reading a request the longest. Idle ones go first because closing them loses nothing; a
/// reader is next because a slow client's request is the one that can wait (its client
/// retries), whereas a request being handled has work under way that must finish. False when
/// every connection is being handled.
fn evict_one_of(map: &mut HashMap<u64, Arc<Conn>>) -> bool {
    let oldest_in = |since: fn(&Conn) -> Option<Instant>| {
        map.iter()
            .filter_map(|(id, c)| since(c).map(|t| (t, *id)))
            .min()
    };
    let Some((_, id)) = oldest_in(Conn::idle_since).or_else(|| oldest_in(Conn::reading_since))
    else {
        return false;
    };
    if let Some(c) = map.remove(&id) {
        c.evicted.store(true, Ordering::SeqCst);
        c.wake.notify_one();
    }
    true
}

/// The most connections this process can hold: the open-file limit (raised to its hard limit
/// where allowed) less a reserve for the database, mail, logs and the listener; `configured`
/// (0: automatic, at most 16384) must fit in it.
pub fn cap(configured: usize) -> Result<usize, String> {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut lim = getrlimit(Resource::Nofile);
    if lim.current != lim.maximum {
        let raised = rustix::process::Rlimit {
            current: lim.maximum,
            maximum: lim.maximum,
        };
        // Refused under a seccomp filter without @resources: systemd's LimitNOFILE then
        // sets the limit itself.
        if setrlimit(Resource::Nofile, raised).is_ok() {
            lim = getrlimit(Resource::Nofile);
        }
    }
    let files = lim.current.unwrap_or(u64::MAX);
    let reserve = (files / 8).max(64);
    let room = usize::try_from(files.saturating_sub(reserve)).unwrap_or(usize::MAX);
    match configured {
        0 => Ok(room.clamp(1, 16384)),
        n if n <= room => Ok(n),
        n => Err(format!(
            "serve.max_connections = {n} does not fit in the open-file limit ({files}), which leaves room for {room} connections; raise the limit (LimitNOFILE= in the unit, ulimit -n) or lower max_connections"
        )),
    }
}

/// The socket, noting when a request starts to arrive.
struct Tracked<IO> {
    io: IO,
    conn: Arc<Conn>,
}

impl<IO: AsyncRead + Unpin> AsyncRead for Tracked<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.io).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.conn.read_some();
        }
        r
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Tracked<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

/// A request body that tells its connection when it has been read (or given up on).
struct TimedBody {
    inner: Incoming,
    conn: Arc<Conn>,
}

impl hyper::body::Body for TimedBody {
    type Data = hyper::body::Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let r = Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(r, Poll::Ready(None) | Poll::Ready(Some(Err(_)))) {
            self.conn.body_done();
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for TimedBody {
    fn drop(&mut self) {
        // A handler that never reads the body is done with it all the same.
        self.conn.body_done();
    }
}

/// The router as a hyper service on one connection.
#[derive(Clone)]
struct Svc {
    router: TowerToHyperService<Router>,
    conn: Arc<Conn>,
    peer: Peer,
}

impl hyper::service::Service<hyper::Request<Incoming>> for Svc {
    type Response = axum::response::Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn call(&self, mut req: hyper::Request<Incoming>) -> Self::Future {
        self.conn.begin(!req.body().is_end_stream());
        req.extensions_mut().insert(self.peer);
        let conn = Arc::clone(&self.conn);
        let req = req.map(|inner| {
            Body::new(TimedBody {
                inner,
                conn: Arc::clone(&conn),
            })
        });
        let fut = hyper::service::Service::call(&self.router, req);
        Box::pin(async move {
            let res = fut.await;
            conn.end();
            res
        })
    }
}

/// What every connection's task shares.
pub struct Shared {
    pub router: Router,
    pub conns: Arc<Conns>,
    pub timeouts: Timeouts,
    pub log: super::log::Log,
    /// Told of each connection the server closed, with the peer.
    pub on_close: Box<dyn Fn(Peer, Closed) + Send + Sync>,
}

/// A listening socket of either kind.
pub enum Listener {
    Tcp(tokio::net::TcpListener),
    Unix(tokio::net::UnixListener),
}

/// Accept and serve until `stop` resolves; then finish the requests in flight (idle
/// connections close at once) and return when every connection is closed.
pub async fn serve(listener: Listener, shared: Arc<Shared>, stop: impl Future<Output = ()>) {
    let (stop_tx, stop_rx) = watch::channel(false);
    // Each connection's task holds a sender; when all are dropped, every connection is gone.
    let (alive_tx, mut alive_rx) = mpsc::channel::<()>(1);
    let mut stop = std::pin::pin!(stop);
    let mut out_of_files_said = false;
    loop {
        let accepted = tokio::select! {
            () = &mut stop => break,
            a = accept(&listener) => a,
        };
        match accepted {
            Ok((io, peer)) => {
                let Some((id, conn)) = shared.conns.register() else {
                    // Every connection is mid-request: this one is closed unanswered, which
                    // a client retries like a refused connection.
                    drop(io);
                    continue;
                };
                let task = Task {
                    shared: Arc::clone(&shared),
                    conn,
                    id,
                    peer,
                    stop: stop_rx.clone(),
                    _alive: alive_tx.clone(),
                };
                match io {
                    Stream::Tcp(s) => {
                        tokio::spawn(task.run(s));
                    }
                    Stream::Unix(s) => {
                        tokio::spawn(task.run(s));
                    }
                }
            }
            Err(e) => {
                let out_of_files = e.raw_os_error() == Some(nix::errno::Errno::EMFILE as i32)
                    || e.raw_os_error() == Some(nix::errno::Errno::ENFILE as i32);
                if out_of_files {
                    if !out_of_files_said {
                        shared.log.say(
                            "warning",
                            &format!("pwreset serve ran out of file descriptors ({e}); lower serve.max_connections or raise the open-file limit"),
                        );
                        out_of_files_said = true;
                    }
                    shared.conns.evict_one();
                }
                // Accept errors are about one connection or a passing shortage: wait a little
                // rather than spin.
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    drop(listener);
    let _ = stop_tx.send(true);
    drop(alive_tx);
    // Every task has dropped its sender: all connections are closed.
    let _ = alive_rx.recv().await;
}

/// An accepted stream of either kind.
enum Stream {
    Tcp(tokio::net::TcpStream),
    Unix(tokio::net::UnixStream),
}

async fn accept(l: &Listener) -> std::io::Result<(Stream, Peer)> {
    match l {
        Listener::Tcp(l) => {
            let (s, addr) = l.accept().await?;
            // Small pages answered at once: no point waiting to fill a segment.
            let _ = s.set_nodelay(true);
            Ok((Stream::Tcp(s), Peer::Ip(addr.ip())))
        }
        Listener::Unix(l) => {
            let (s, _) = l.accept().await?;
            Ok((Stream::Unix(s), Peer::Unix))
        }
    }
}

struct Task {
    shared: Arc<Shared>,
    conn: Arc<Conn>,
    id: u64,
    peer: Peer,
    stop: watch::Receiver<bool>,
    _alive: mpsc::Sender<()>,
}

impl Task {
    async fn run<IO>(mut self, io: IO)
    where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let io = TokioIo::new(Tracked {
            io,
            conn: Arc::clone(&self.conn),
        });
        let svc = Svc {
            router: TowerToHyperService::new(self.shared.router.clone()),
            conn: Arc::clone(&self.conn),
            peer: self.peer,
        };
        let mut builder = hyper::server::conn::http1::Builder::new();
        // Our own clocks do this (hyper's would also cut kept-alive connections at the header
        // timeout).
        builder.keep_alive(true).header_read_timeout(None);
        let served = builder.serve_connection(io, svc);
        let mut served = std::pin::pin!(served);
        let mut stopping = *self.stop.borrow();
        if stopping {
            served.as_mut().graceful_shutdown();
        }
        let timeouts = self.shared.timeouts;
        let closed = loop {
            let deadline = self.conn.deadline(&timeouts);
            let sleep = async move {
                match deadline {
                    Some((at, _)) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = served.as_mut() => break None,
                () = sleep => {
                    if let Some((at, why)) = self.conn.deadline(&timeouts)
                        && at <= Instant::now()
                    {
                        break Some(why);
                    }
                }
                () = self.conn.wake.notified() => {
                    if self.conn.evicted.load(Ordering::SeqCst) {
                        if self.conn.idle_since().is_some() {
                            break Some(Closed::Evicted);
                        }
                        if self.conn.reading_since().is_some() {
                            break Some(Closed::EvictedReading);
                        }
                        // Its request went to the handler as it was chosen: answer, then
                        // close.
                        if !stopping {
                            stopping = true;
                            served.as_mut().graceful_shutdown();
                        }
                    }
                }
                _ = self.stop.changed(), if !stopping => {
                    stopping = true;
                    served.as_mut().graceful_shutdown();
                }
            }
        };
        self.shared.conns.remove(self.id);
        if let Some(why) = closed {
            (self.shared.on_close)(self.peer, why);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_idle_connection_makes_room() {
        let conns = Conns::new(3);
        let (a, ca) = conns.register().expect("room");
        let (_b, cb) = conns.register().expect("room");
        let (_c, cc) = conns.register().expect("room");
        // b is busy, c went idle after a request; a is fresh and older than c.
        cb.begin(false);
        cc.begin(false);
        cc.end();
        let (_d, _) = conns.register().expect("an idle one makes room");
        assert!(ca.evicted.load(Ordering::SeqCst), "a was the oldest idle");
        assert!(!cc.evicted.load(Ordering::SeqCst));
        assert_eq!(conns.open(), 3);
        let _ = a;
        cc.begin(false);
        // b and c are being handled, d is fresh: d goes.
        let (_e, ce) = conns.register().expect("d makes room");
        ce.begin(false);
        assert!(conns.register().is_none(), "all busy: no room");
    }

    #[test]
    fn with_none_idle_the_oldest_reader_makes_room() {
        let conns = Conns::new(3);
        let (_a, ca) = conns.register().expect("room");
        let (_b, cb) = conns.register().expect("room");
        let (_c, cc) = conns.register().expect("room");
        // a is handled, b has sent a byte of its head, c is reading a body (its head came
        // later than b's first byte).
        ca.begin(false);
        cb.read_some();
        cc.read_some();
        cc.begin(true);
        let (_d, cd) = conns.register().expect("a reader makes room");
        assert!(cb.evicted.load(Ordering::SeqCst), "b was reading longest");
        assert!(!ca.evicted.load(Ordering::SeqCst) && !cc.evicted.load(Ordering::SeqCst));
        // d is fresh, so idle: it goes before c.
        let (_e, ce) = conns.register().expect("room");
        assert!(cd.evicted.load(Ordering::SeqCst));
        assert!(!cc.evicted.load(Ordering::SeqCst));
        ce.begin(false);
        let (_f, cf) = conns.register().expect("c, reading, makes room");
        assert!(cc.evicted.load(Ordering::SeqCst));
        cf.begin(false);
        assert!(conns.register().is_none(), "every request handled: no room");
    }

    #[test]
    fn phases_have_their_deadlines() {
        let t = Timeouts {
            header: Duration::from_secs(10),
            body: Duration::from_secs(30),
            idle: Duration::from_secs(60),
        };
        let c = Conn::new(Instant::now());
        assert_eq!(c.deadline(&t).map(|d| d.1), Some(Closed::Headers));
        c.read_some();
        assert_eq!(c.deadline(&t).map(|d| d.1), Some(Closed::Headers));
        c.begin(true);
        assert_eq!(c.deadline(&t).map(|d| d.1), Some(Closed::Body));
        c.body_done();
        assert!(c.deadline(&t).is_none());
        c.end();
        assert_eq!(c.deadline(&t).map(|d| d.1), Some(Closed::Idle));
        assert!(c.idle_since().is_some());
        c.read_some();
        assert_eq!(c.deadline(&t).map(|d| d.1), Some(Closed::Headers));
        assert!(c.idle_since().is_none());
    }

    #[test]
    fn the_cap_fits_in_the_file_limit() {
        let auto = cap(0).expect("automatic cap");
        assert!((1..=16384).contains(&auto));
        assert!(cap(usize::MAX).is_err());
    }
}
