//! rustls as tokio-postgres's TLS layer: the connector the driver asks for per connection.
//! Written here (about as long as a dependency's glue) so the TLS stack is exactly the crate's
//! rustls + ring, with the verification set up in [`crate::store::net`].

use postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect, TlsStream};
use rustls::pki_types::ServerName;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

#[derive(Clone)]
pub(super) struct MakeRustls(pub Arc<rustls::ClientConfig>);

impl<S> MakeTlsConnect<S> for MakeRustls
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = Stream<S>;
    type TlsConnect = Connect;
    type Error = io::Error;

    fn make_tls_connect(&mut self, domain: &str) -> io::Result<Connect> {
        let name = ServerName::try_from(domain.to_owned()).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{domain:?} is not a host name TLS can verify ({e})"),
            )
        })?;
        Ok(Connect {
            config: self.0.clone(),
            name,
        })
    }
}

pub(super) struct Connect {
    config: Arc<rustls::ClientConfig>,
    name: ServerName<'static>,
}

type Handshake<S> = Pin<Box<dyn Future<Output = io::Result<Stream<S>>> + Send>>;

impl<S> TlsConnect<S> for Connect
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = Stream<S>;
    type Error = io::Error;
    type Future = Handshake<S>;

    fn connect(self, stream: S) -> Handshake<S> {
        Box::pin(async move {
            let tls = tokio_rustls::TlsConnector::from(self.config)
                .connect(self.name, stream)
                .await?;
            Ok(Stream(tls))
        })
    }
}

pub(super) struct Stream<S>(tokio_rustls::client::TlsStream<S>);

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for Stream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Stream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> TlsStream for Stream<S> {
    // SCRAM runs without channel binding (the driver's default is "prefer"): the certificate
    // and host name are already verified, which is what binding would add against a MITM.
    fn channel_binding(&self) -> ChannelBinding {
        ChannelBinding::none()
    }
}

// ---- the guard on a plaintext connection -----------------------------------------------

/// The "TLS" layer of a connection without TLS (to a loopback address): the stream passes
/// through unchanged, but the server's authentication requests are read first, and a request
/// for the password in cleartext (`password` in pg_hba.conf) or as MD5 ends the connection
/// before the driver can answer it. Only SCRAM, which never shows the password to the server
/// (and `trust` or `peer`, which ask for none) gets through: whoever holds the port, a local
/// user who bound it first included, learns nothing from pwreset.
#[derive(Clone, Copy)]
pub(super) struct Guard;

/// What the guard refused, under the driver's I/O error (see `map_error`).
#[derive(Debug)]
pub(super) struct PasswordRequestRefused {
    /// The pg_hba.conf method the server asked by: "password" or "md5".
    pub method: &'static str,
}

impl std::fmt::Display for PasswordRequestRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the server asked for the password by method {:?} over a connection without TLS; refused",
            self.method
        )
    }
}

impl std::error::Error for PasswordRequestRefused {}

impl<S> MakeTlsConnect<S> for Guard
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = Guarded<S>;
    type TlsConnect = Guard;
    type Error = io::Error;

    fn make_tls_connect(&mut self, _domain: &str) -> io::Result<Guard> {
        Ok(Guard)
    }
}

impl<S> TlsConnect<S> for Guard
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = Guarded<S>;
    type Error = io::Error;
    type Future = std::future::Ready<io::Result<Guarded<S>>>;

    fn connect(self, stream: S) -> Self::Future {
        std::future::ready(Ok(Guarded {
            inner: stream,
            watch: Watch::default(),
        }))
    }
}

pub(super) struct Guarded<S> {
    inner: S,
    watch: Watch,
}

/// Where the guard is in the server's messages (a type byte, a 4-byte length counting itself,
/// the body): only the authentication requests ('R') before the first other message matter.
#[derive(Default)]
struct Watch {
    header: [u8; 5],
    header_len: usize,
    /// Body bytes of the current message not read yet.
    left: usize,
    code: [u8; 4],
    code_len: usize,
    /// Authentication is over (AuthenticationOk, an error, or any other message): the rest
    /// passes unread.
    done: bool,
}

impl Watch {
    /// Read `bytes` from the server; the method of a refused request, if one is among them.
    fn feed(&mut self, bytes: &[u8]) -> Option<&'static str> {
        for &b in bytes {
            if self.done {
                return None;
            }
            if self.header_len < 5 {
                self.header[self.header_len] = b;
                self.header_len += 1;
                if self.header_len == 5 {
                    if self.header[0] != b'R' {
                        // The driver takes nothing but 'R' until it is logged in.
                        self.done = true;
                        return None;
                    }
                    let len = u32::from_be_bytes([
                        self.header[1],
                        self.header[2],
                        self.header[3],
                        self.header[4],
                    ]) as usize;
                    self.left = len.saturating_sub(4);
                    self.code_len = 0;
                    if self.left == 0 {
                        self.header_len = 0;
                    }
                }
                continue;
            }
            if self.code_len < 4 {
                self.code[self.code_len] = b;
                self.code_len += 1;
                if self.code_len == 4 {
                    match u32::from_be_bytes(self.code) {
                        0 => {
                            self.done = true;
                            return None;
                        }
                        3 => return Some("password"),
                        5 => return Some("md5"),
                        _ => {}
                    }
                }
            }
            self.left -= 1;
            if self.left == 0 {
                self.header_len = 0;
            }
        }
        None
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for Guarded<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let before = buf.filled().len();
        std::task::ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
        if let Some(method) = this.watch.feed(&buf.filled()[before..]) {
            // The driver never sees the request, so it cannot answer it.
            buf.set_filled(before);
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                PasswordRequestRefused { method },
            )));
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Guarded<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> TlsStream for Guarded<S> {
    // No TLS, so nothing to bind SCRAM to: the driver then uses plain SCRAM-SHA-256.
    fn channel_binding(&self) -> ChannelBinding {
        ChannelBinding::none()
    }
}

#[cfg(test)]
mod tests {
    use super::Watch;

    fn auth(code: u32, extra: &[u8]) -> Vec<u8> {
        let mut m = vec![b'R'];
        m.extend(((8 + extra.len()) as u32).to_be_bytes());
        m.extend(code.to_be_bytes());
        m.extend(extra);
        m
    }

    #[test]
    fn the_guard_refuses_cleartext_and_md5_and_lets_scram_through() {
        assert_eq!(Watch::default().feed(&auth(3, &[])), Some("password"));
        assert_eq!(Watch::default().feed(&auth(5, b"salt")), Some("md5"));
        // SCRAM: the mechanisms, the server's challenge, its final word, then logged in.
        let mut w = Watch::default();
        let mut flow = auth(10, b"SCRAM-SHA-256\0\0");
        flow.extend(auth(11, b"r=abc,s=c2FsdA==,i=4096"));
        flow.extend(auth(12, b"v=xyz"));
        flow.extend(auth(0, &[]));
        // After the login, anything may follow, even bytes that look like a request.
        flow.extend(auth(3, &[]));
        for chunk in flow.chunks(3) {
            assert_eq!(w.feed(chunk), None);
        }
        // Split anywhere, a request is still seen.
        let mut w = Watch::default();
        let msg = auth(3, &[]);
        assert_eq!(w.feed(&msg[..6]), None);
        assert_eq!(w.feed(&msg[6..]), Some("password"));
        // An error first: the driver stops there, and so does the guard.
        let mut w = Watch::default();
        assert_eq!(w.feed(b"E\0\0\0\x05x"), None);
        assert_eq!(w.feed(&auth(3, &[])), None);
    }
}
