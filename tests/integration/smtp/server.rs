//! A small SMTP server for the tests and the throughput benchmark, on 127.0.0.1 with an
//! ephemeral port: EHLO, STARTTLS or implicit TLS (rustls, ring), AUTH PLAIN and LOGIN,
//! MAIL/RCPT/DATA/RSET/NOOP/QUIT, and reply codes a test chooses. One thread per connection.
//!
//! Everything the client did is recorded in a [`Log`] *before* the server replies, so once the
//! `pwreset` process has exited the log holds every command it sent: no waiting or sleeping.
#![allow(dead_code)]

use base64::Engine as _;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

/// A reply chosen by a test, e.g. `"550 5.1.1 no such mailbox"`.
pub type Reply = String;

/// Chooses the reply to `RCPT TO:<addr>`; None means 250.
pub type RcptReply = Arc<dyn Fn(&str) -> Option<Reply> + Send + Sync>;

/// How the server behaves.
#[derive(Clone)]
pub struct Options {
    /// The TLS identity, for STARTTLS (offered when `implicit_tls` is false) or implicit TLS.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// TLS from the first byte (port 465 style) instead of STARTTLS.
    pub implicit_tls: bool,
    /// Offer STARTTLS in the EHLO reply (when there is a TLS identity).
    pub offer_starttls: bool,
    /// Offer AUTH PLAIN LOGIN and accept only these credentials; MAIL needs a login then.
    pub auth: Option<(String, String)>,
    /// Reply to every MAIL FROM with this instead of 250.
    pub mail_reply: Option<Reply>,
    /// Reply to RCPT TO:<addr> with this instead of 250, when it returns Some.
    pub rcpt_reply: RcptReply,
    /// Reply to the end of DATA with this instead of 250 (the data is kept in `Log::refused`).
    pub data_reply: Option<Reply>,
    /// Accept connections and never say a word (for time-outs).
    pub silent: bool,
    /// Keep the message data (the benchmark only counts).
    pub keep_data: bool,
    /// Hang up after each message, without a word (as a server closing idle connections does).
    pub hang_up_after_message: bool,
    /// At most this many sessions at once; more get `421 too many connections` at the greeting
    /// (Postfix's smtpd_client_connection_count_limit, Microsoft 365's per-client limit).
    pub max_connections: Option<usize>,
    /// Take this long to answer the end of DATA (a slow relay). The message is in the log
    /// before the wait: a client killed meanwhile has still handed it over.
    pub data_delay: Option<Duration>,
    /// Once this many messages were taken, answer every new session and every MAIL with
    /// `421` and hang up: a relay that goes away in the middle of a run.
    pub die_after: Option<usize>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            tls: None,
            implicit_tls: false,
            offer_starttls: true,
            auth: None,
            mail_reply: None,
            rcpt_reply: Arc::new(|_| None),
            data_reply: None,
            silent: false,
            keep_data: true,
            hang_up_after_message: false,
            max_connections: None,
            data_delay: None,
            die_after: None,
        }
    }
}

/// One message the server took.
#[derive(Debug, Clone)]
pub struct Received {
    pub mail_from: String,
    pub rcpt_to: Vec<String>,
    /// The data as sent, dot-unstuffed, with CRLF line ends.
    pub data: Vec<u8>,
    /// Whether the session was encrypted and logged in when the message came.
    pub tls: bool,
    pub authenticated: bool,
}

/// What the clients did.
#[derive(Debug, Default)]
pub struct Log {
    /// Command verbs in arrival order, across connections (AUTH arguments are not kept).
    pub verbs: Vec<String>,
    pub connections: usize,
    /// Connections turned away with 421 (over `max_connections`).
    pub refused_connections: usize,
    pub tls_handshakes: usize,
    pub tls_failures: usize,
    pub auth_ok: usize,
    pub auth_failed: usize,
    /// Every RCPT TO address that was accepted.
    pub accepted_rcpts: Vec<String>,
    pub messages: Vec<Received>,
    /// Data of messages whose end of DATA got `data_reply`.
    pub refused: Vec<Vec<u8>>,
    /// The longest line seen after DATA, in bytes without CRLF.
    pub longest_line: usize,
    /// Anything the server found wrong with the client's side of the protocol.
    pub protocol_errors: Vec<String>,
}

/// A running server; stops accepting when dropped.
pub struct Server {
    pub addr: SocketAddr,
    log: Arc<Mutex<Log>>,
    /// Signalled whenever a message is logged.
    changed: Arc<Condvar>,
    stop: Arc<AtomicBool>,
}

impl Server {
    pub fn start(opts: Options) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        let log = Arc::new(Mutex::new(Log::default()));
        let changed = Arc::new(Condvar::new());
        let stop = Arc::new(AtomicBool::new(false));
        let opts = Arc::new(opts);
        let open = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        {
            let (log, stop, changed) = (Arc::clone(&log), Arc::clone(&stop), Arc::clone(&changed));
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(mut stream) = stream else { continue };
                    if let Some(max) = opts.max_connections
                        && open.load(Ordering::SeqCst) >= max
                    {
                        use std::io::Write as _;
                        lock(&log).refused_connections += 1;
                        let _ =
                            stream.write_all(b"421 4.7.0 too many connections from your host\r\n");
                        continue;
                    }
                    open.fetch_add(1, Ordering::SeqCst);
                    let (log, opts, open, changed) = (
                        Arc::clone(&log),
                        Arc::clone(&opts),
                        Arc::clone(&open),
                        Arc::clone(&changed),
                    );
                    std::thread::spawn(move || {
                        lock(&log).connections += 1;
                        if let Err(e) = session(stream, &opts, &log, &changed)
                            && e.kind() == io::ErrorKind::InvalidData
                        {
                            lock(&log).tls_failures += 1;
                        }
                        open.fetch_sub(1, Ordering::SeqCst);
                    });
                }
            });
        }
        Server {
            addr,
            log,
            changed,
            stop,
        }
    }

    /// Wait until the log satisfies `done`, for at most `within`; whether it did. Woken by
    /// each message, so a test acts the moment the relay has taken enough, not after a sleep.
    pub fn wait_for(&self, within: Duration, done: impl Fn(&Log) -> bool) -> bool {
        let guard = lock(&self.log);
        let (guard, _) = self
            .changed
            .wait_timeout_while(guard, within, |log| !done(log))
            .unwrap_or_else(|p| p.into_inner());
        done(&guard)
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The log, locked.
    pub fn log(&self) -> MutexGuard<'_, Log> {
        lock(&self.log)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so that it sees the flag.
        let _ = TcpStream::connect(self.addr);
    }
}

fn lock(log: &Mutex<Log>) -> MutexGuard<'_, Log> {
    log.lock().unwrap_or_else(|p| p.into_inner())
}

enum Conn {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ServerConnection, TcpStream>>),
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Conn::Plain(s) => s.read(buf),
            Conn::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Conn::Plain(s) => s.write(buf),
            Conn::Tls(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Conn::Plain(s) => s.flush(),
            Conn::Tls(s) => s.flush(),
        }
    }
}

fn tls_wrap(cfg: &Arc<rustls::ServerConfig>, tcp: TcpStream) -> io::Result<Conn> {
    let conn = rustls::ServerConnection::new(Arc::clone(cfg)).map_err(io::Error::other)?;
    let mut s = rustls::StreamOwned::new(conn, tcp);
    // Finish the handshake now, so that a client that gives up is counted here.
    while s.conn.is_handshaking() {
        s.conn
            .complete_io(&mut s.sock)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    }
    Ok(Conn::Tls(Box::new(s)))
}

fn reply(r: &mut BufReader<Conn>, text: &str) -> io::Result<()> {
    let w = r.get_mut();
    w.write_all(text.as_bytes())?;
    w.write_all(b"\r\n")?;
    w.flush()
}

/// A line without its CRLF; None at the end of the stream.
fn read_line(r: &mut BufReader<Conn>) -> io::Result<Option<Vec<u8>>> {
    let mut buf = Vec::with_capacity(128);
    let n = r.by_ref().take(1 << 20).read_until(b'\n', &mut buf)?;
    if n == 0 {
        return Ok(None);
    }
    if buf.ends_with(b"\n") {
        buf.pop();
        if buf.ends_with(b"\r") {
            buf.pop();
        }
    }
    Ok(Some(buf))
}

fn b64(s: &[u8]) -> Option<Vec<u8>> {
    base64::engine::general_purpose::STANDARD.decode(s).ok()
}

/// `<addr>` out of `FROM:<addr> PARAMS`.
fn angle(arg: &str) -> String {
    let start = arg.find('<').map_or(0, |i| i + 1);
    let end = arg[start..].find('>').map_or(arg.len(), |i| start + i);
    arg[start..end].to_owned()
}

fn session(tcp: TcpStream, opts: &Options, log: &Mutex<Log>, changed: &Condvar) -> io::Result<()> {
    tcp.set_read_timeout(Some(Duration::from_secs(30)))?;
    tcp.set_nodelay(true)?;
    if opts.silent {
        // Say nothing; wait until the client hangs up.
        let mut sink = Vec::new();
        let _ = (&tcp).read_to_end(&mut sink);
        return Ok(());
    }
    let mut tls_active = false;
    let conn = match (&opts.tls, opts.implicit_tls) {
        (Some(cfg), true) => {
            let c = tls_wrap(cfg, tcp)?;
            tls_active = true;
            lock(log).tls_handshakes += 1;
            c
        }
        _ => Conn::Plain(tcp),
    };
    let mut r = BufReader::new(conn);
    let gone = || {
        opts.die_after
            .is_some_and(|n| lock(log).messages.len() >= n)
    };
    if gone() {
        return reply(&mut r, "421 4.3.2 service shutting down");
    }
    reply(&mut r, "220 localhost ESMTP pwreset-test")?;
    let mut authed = false;
    let mut from: Option<String> = None;
    let mut rcpts: Vec<String> = Vec::new();
    loop {
        let Some(line) = read_line(&mut r)? else {
            return Ok(());
        };
        let line = String::from_utf8_lossy(&line).into_owned();
        let (verb, arg) = match line.split_once(' ') {
            Some((v, a)) => (v.to_ascii_uppercase(), a.to_owned()),
            None => (line.to_ascii_uppercase(), String::new()),
        };
        lock(log).verbs.push(verb.clone());
        match verb.as_str() {
            "EHLO" | "HELO" => {
                let mut lines = vec!["250-localhost greets you".to_owned()];
                if opts.tls.is_some() && opts.offer_starttls && !tls_active {
                    lines.push("250-STARTTLS".into());
                }
                if opts.auth.is_some() {
                    lines.push("250-AUTH PLAIN LOGIN".into());
                }
                lines.push("250-SIZE 10240000".into());
                lines.push("250 8BITMIME".into());
                from = None;
                rcpts.clear();
                reply(&mut r, &lines.join("\r\n"))?;
            }
            "STARTTLS" => {
                let Some(cfg) = opts
                    .tls
                    .as_ref()
                    .filter(|_| opts.offer_starttls && !tls_active)
                else {
                    reply(&mut r, "502 5.5.1 STARTTLS not offered")?;
                    continue;
                };
                reply(&mut r, "220 2.0.0 go ahead")?;
                if !r.buffer().is_empty() {
                    lock(log)
                        .protocol_errors
                        .push("data pipelined after STARTTLS".into());
                    return Ok(());
                }
                let Conn::Plain(tcp) = r.into_inner() else {
                    return Ok(());
                };
                r = BufReader::new(tls_wrap(cfg, tcp)?);
                tls_active = true;
                authed = false;
                from = None;
                rcpts.clear();
                lock(log).tls_handshakes += 1;
            }
            "AUTH" => {
                let Some((user, pass)) = &opts.auth else {
                    reply(&mut r, "502 5.5.1 AUTH not offered")?;
                    continue;
                };
                let mut parts = arg.split_whitespace();
                let mech = parts.next().unwrap_or("").to_ascii_uppercase();
                let initial = parts.next().map(str::to_owned);
                let got: Option<(Vec<u8>, Vec<u8>)> = match mech.as_str() {
                    "PLAIN" => {
                        let resp = match initial {
                            Some(i) => i.into_bytes(),
                            None => {
                                reply(&mut r, "334 ")?;
                                read_line(&mut r)?.unwrap_or_default()
                            }
                        };
                        b64(&resp).and_then(|d| {
                            let mut f = d.split(|&b| b == 0);
                            let _authz = f.next()?;
                            Some((f.next()?.to_vec(), f.next()?.to_vec()))
                        })
                    }
                    "LOGIN" => {
                        let u = match initial {
                            Some(i) => i.into_bytes(),
                            None => {
                                reply(&mut r, "334 VXNlcm5hbWU6")?;
                                read_line(&mut r)?.unwrap_or_default()
                            }
                        };
                        reply(&mut r, "334 UGFzc3dvcmQ6")?;
                        let p = read_line(&mut r)?.unwrap_or_default();
                        b64(&u).zip(b64(&p))
                    }
                    _ => {
                        reply(&mut r, "504 5.5.4 unrecognized authentication type")?;
                        continue;
                    }
                };
                if got.is_some_and(|(u, p)| u == user.as_bytes() && p == pass.as_bytes()) {
                    authed = true;
                    lock(log).auth_ok += 1;
                    reply(&mut r, "235 2.7.0 authentication successful")?;
                } else {
                    lock(log).auth_failed += 1;
                    reply(&mut r, "535 5.7.8 authentication credentials invalid")?;
                }
            }
            "MAIL" => {
                if gone() {
                    return reply(&mut r, "421 4.3.2 service shutting down");
                }
                if opts.auth.is_some() && !authed {
                    reply(&mut r, "530 5.7.0 authentication required")?;
                } else if let Some(rep) = &opts.mail_reply {
                    reply(&mut r, rep)?;
                } else {
                    from = Some(angle(&arg));
                    rcpts.clear();
                    reply(&mut r, "250 2.1.0 ok")?;
                }
            }
            "RCPT" => {
                if from.is_none() {
                    reply(&mut r, "503 5.5.1 MAIL first")?;
                    continue;
                }
                let to = angle(&arg);
                if let Some(rep) = (opts.rcpt_reply)(&to) {
                    reply(&mut r, &rep)?;
                } else {
                    lock(log).accepted_rcpts.push(to.clone());
                    rcpts.push(to);
                    reply(&mut r, "250 2.1.5 ok")?;
                }
            }
            "DATA" => {
                if rcpts.is_empty() {
                    reply(&mut r, "554 5.5.1 no valid recipients")?;
                    continue;
                }
                reply(&mut r, "354 end data with <CR><LF>.<CR><LF>")?;
                let mut data = Vec::with_capacity(4096);
                let mut longest = 0;
                loop {
                    let Some(l) = read_line(&mut r)? else {
                        return Ok(());
                    };
                    if l == b"." {
                        break;
                    }
                    longest = longest.max(l.len());
                    let l = l.strip_prefix(b".").unwrap_or(&l);
                    if opts.keep_data {
                        data.extend_from_slice(l);
                        data.extend_from_slice(b"\r\n");
                    }
                }
                let mail_from = from.take().unwrap_or_default();
                let rcpt_to = std::mem::take(&mut rcpts);
                if let Some(rep) = &opts.data_reply {
                    {
                        let mut g = lock(log);
                        g.longest_line = g.longest_line.max(longest);
                        g.refused.push(data);
                    }
                    reply(&mut r, rep)?;
                } else {
                    {
                        let mut g = lock(log);
                        g.longest_line = g.longest_line.max(longest);
                        g.messages.push(Received {
                            mail_from,
                            rcpt_to,
                            data,
                            tls: tls_active,
                            authenticated: authed,
                        });
                    }
                    changed.notify_all();
                    if let Some(d) = opts.data_delay {
                        std::thread::sleep(d);
                    }
                    reply(&mut r, "250 2.0.0 queued")?;
                    if opts.hang_up_after_message {
                        return Ok(());
                    }
                }
            }
            "RSET" => {
                from = None;
                rcpts.clear();
                reply(&mut r, "250 2.0.0 ok")?;
            }
            "NOOP" => reply(&mut r, "250 2.0.0 ok")?,
            "QUIT" => {
                reply(&mut r, "221 2.0.0 bye")?;
                return Ok(());
            }
            _ => reply(&mut r, "502 5.5.2 command not recognized")?,
        }
    }
}

/// A test CA and a certificate for `localhost` and 127.0.0.1 that it signed, made now.
pub struct TestPki {
    /// The CA certificate, PEM: what `mail.smtp.ca_file` points at.
    pub ca_pem: String,
    /// A server configuration presenting the certificate.
    pub server: Arc<rustls::ServerConfig>,
}

impl TestPki {
    /// A CA and a server certificate for `names` (DNS names or IP addresses).
    pub fn new(names: &[&str]) -> TestPki {
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("ca params");
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "pwreset test CA");
        ca_params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
        ];
        let ca_key = rcgen::KeyPair::generate().expect("ca key");
        let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).expect("ca cert");

        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        let mut leaf_params = rcgen::CertificateParams::new(names).expect("leaf params");
        leaf_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "pwreset test server");
        let leaf_key = rcgen::KeyPair::generate().expect("leaf key");
        let leaf = leaf_params.signed_by(&leaf_key, &ca).expect("leaf cert");

        let key = rustls::pki_types::PrivateKeyDer::Pkcs8(
            rustls::pki_types::PrivatePkcs8KeyDer::from(leaf_key.serialize_der()),
        );
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let server = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_no_client_auth()
            .with_single_cert(vec![leaf.der().clone(), ca.der().clone()], key)
            .expect("server config");
        TestPki {
            ca_pem: ca.pem(),
            server: Arc::new(server),
        }
    }
}
