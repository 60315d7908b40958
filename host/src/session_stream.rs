//! An SMTP session's connection, on either side (our server's sessions, our relay's to
//! an upstream): plain TCP until STARTTLS (or from the first byte with implicit TLS),
//! then TLS over it.

use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio_rustls::{TlsAcceptor, TlsStream};

pub enum SessionStream<S> {
    Plain(S),
    Tls(Box<TlsStream<S>>),
    /// A handshake failed half-way, or the session ended: nothing more can be read or
    /// written.
    Broken,
}

impl<S: AsyncRead + AsyncWrite + Unpin> SessionStream<S> {
    pub fn is_tls(&self) -> bool {
        matches!(self, SessionStream::Tls(_))
    }

    /// Ends the server's side once its last reply is flushed: TLS sends its close_notify;
    /// a plain stream is closed at once, which sends the FIN after what was written, as a
    /// `shutdown` would, with one system call fewer (the client had mostly closed already,
    /// and the call failed with ENOTCONN). Either way the stream is then broken, so the
    /// client is not kept waiting for the session's last hooks.
    pub async fn finish(&mut self) -> std::io::Result<()> {
        let ended = match self {
            SessionStream::Tls(_) => self.shutdown().await,
            SessionStream::Plain(_) | SessionStream::Broken => Ok(()),
        };
        *self = SessionStream::Broken;
        ended
    }

    /// The TLS version and cipher suite, once encrypted, as rustls names them.
    pub fn tls_parameters(&self) -> Option<(String, String)> {
        let SessionStream::Tls(tls) = self else {
            return None;
        };
        let connection = tls.get_ref().1;
        let version = connection.protocol_version()?;
        let cipher = connection.negotiated_cipher_suite()?.suite();
        Some((format!("{version:?}"), format!("{cipher:?}")))
    }

    /// Runs the server's side of the TLS handshake over the plain stream. On failure the
    /// stream is broken.
    pub async fn upgrade(&mut self, acceptor: &TlsAcceptor) -> std::io::Result<()> {
        self.upgrade_with(|plain| async move { acceptor.accept(plain).await.map(TlsStream::from) })
            .await
    }

    /// Runs `handshake` (either side's) over the plain stream. On failure the stream is
    /// broken.
    pub async fn upgrade_with<F>(&mut self, handshake: impl FnOnce(S) -> F) -> std::io::Result<()>
    where
        F: Future<Output = std::io::Result<TlsStream<S>>>,
    {
        match std::mem::replace(self, SessionStream::Broken) {
            SessionStream::Plain(plain) => {
                *self = SessionStream::Tls(Box::new(handshake(plain).await?));
                Ok(())
            }
            other => {
                *self = other;
                Err(std::io::Error::other("TLS is already on"))
            }
        }
    }
}

fn broken() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::NotConnected, "the TLS handshake failed")
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for SessionStream<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            SessionStream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            SessionStream::Tls(s) => Pin::new(s).poll_read(cx, buf),
            SessionStream::Broken => Poll::Ready(Err(broken())),
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for SessionStream<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            SessionStream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            SessionStream::Tls(s) => Pin::new(s).poll_write(cx, buf),
            SessionStream::Broken => Poll::Ready(Err(broken())),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            SessionStream::Plain(s) => Pin::new(s).poll_flush(cx),
            SessionStream::Tls(s) => Pin::new(s).poll_flush(cx),
            SessionStream::Broken => Poll::Ready(Err(broken())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            SessionStream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            SessionStream::Tls(s) => Pin::new(s).poll_shutdown(cx),
            SessionStream::Broken => Poll::Ready(Ok(())),
        }
    }
}
